/* Numbers from the command line, validated: the whole argument must be a
 * number (strtoll / strtod, nothing left over), finite and in its range; a
 * refusal names the program, the flag, the value and the range allowed, so
 * "--steps abc" or "--lr inf" can never turn into 0 or a NaN run. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A bound as people read it: 10^12, 2^20, 2^63-1, or the plain number. */
static void format_int(int64_t v, char *buf, size_t size) {
  if (v == INT64_MAX) {
    snprintf(buf, size, "2^63-1");
    return;
  }
  if (v == INT64_MIN) {
    snprintf(buf, size, "-2^63");
    return;
  }
  const char *sign = v < 0 ? "-" : "";
  int64_t a = v < 0 ? -v : v;
  int k = 0;
  int64_t p = 1;
  while (p < a && p <= INT64_MAX / 10) {
    p *= 10;
    k++;
  }
  if (p == a && k >= 4) {
    snprintf(buf, size, "%s10^%d", sign, k);
    return;
  }
  if (a >= 65536 && (a & (a - 1)) == 0) {
    for (k = 0; ((int64_t)1 << k) != a; k++)
      ;
    snprintf(buf, size, "%s2^%d", sign, k);
    return;
  }
  snprintf(buf, size, "%lld", (long long)v);
}

static void format_real(double v, char *buf, size_t size) {
  if (v == floor(v) && fabs(v) < 9e15)
    format_int((int64_t)v, buf, size);
  else
    snprintf(buf, size, "%g", v);
}

/* strtoll or strtod must consume all of s, which must not start with a
 * blank (strto* would skip it) and must not be empty. */
static bool starts_well(const char *s) {
  return s && *s && !isspace((unsigned char)*s);
}

const char *app_int_range_text(int64_t lo, int64_t hi, char *buf, size_t size) {
  char a[32], b[32];
  format_int(lo, a, sizeof a);
  format_int(hi, b, sizeof b);
  snprintf(buf, size, "%s..%s", a, b);
  return buf;
}

bool app_in_range(double v, app_range r) {
  return (r.lo_open ? v > r.lo : v >= r.lo) &&
         (r.hi_open ? v < r.hi : v <= r.hi);
}

const char *app_range_text(app_range r, char *buf, size_t size) {
  char a[32], b[32];
  format_real(r.lo, a, sizeof a);
  format_real(r.hi, b, sizeof b);
  snprintf(buf, size, "%c%s, %s%c", r.lo_open ? '(' : '[', a, b,
           r.hi_open ? ')' : ']');
  return buf;
}

int app_parse_int(const char *prog, const char *flag, const char *text,
                  int64_t lo, int64_t hi, int64_t *out) {
  bool ok = starts_well(text);
  int64_t v = 0;
  if (ok) {
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (end != text && !*end && !errno) {
      v = n;
    } else if (strspn(text, "0123456789+-.eE") == strlen(text)) {
      /* "1e6" and "2000.0" are whole numbers people write */
      errno = 0;
      double d = strtod(text, &end);
      ok = end != text && !*end && !errno && d == floor(d) && fabs(d) <= 0x1p53;
      v = ok ? (int64_t)d : 0;
    } else {
      ok = false;
    }
    ok = ok && v >= lo && v <= hi;
  }
  if (!ok) {
    char range[80];
    fprintf(stderr, "%s: %s '%s' is not an integer in %s\n", prog, flag,
            text ? text : "", app_int_range_text(lo, hi, range, sizeof range));
    return -1;
  }
  *out = v;
  return 0;
}

int app_parse_real(const char *prog, const char *flag, const char *text,
                   app_range r, double *out) {
  bool ok = starts_well(text);
  double v = 0;
  if (ok) {
    char *end;
    v = strtod(text, &end);
    /* an underflow (ERANGE, a tiny or zero v) is left to the range test */
    ok = end != text && !*end && isfinite(v) && app_in_range(v, r);
  }
  if (!ok) {
    char range[80];
    fprintf(stderr, "%s: %s '%s' is not a number in %s\n", prog, flag,
            text ? text : "", app_range_text(r, range, sizeof range));
    return -1;
  }
  *out = v;
  return 0;
}
