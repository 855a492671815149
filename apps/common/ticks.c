/* Axis ranges and "nice" ticks (1, 2 or 5 times a power of ten) for any
 * data: each tick is k * step for a whole k, never a running sum, so huge,
 * tiny and equal values all finish in a bounded number of steps. Spans are
 * computed as hi/2 - lo/2, which cannot overflow even for -1e308..1e308. */
#include "picture.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A span below this fraction of the values' size has no distinct labels. */
#define MIN_RELATIVE_SPAN 1e-9
/* Spans below this (near the denormals) are too small to step through. */
#define MIN_SPAN 1e-290

static double clamp_finite(double v) {
  return v > DBL_MAX ? DBL_MAX : v < -DBL_MAX ? -DBL_MAX : v;
}

/* Tidies printf's exponent: "1.5e+20" to "1.5e20", "2e-05" to "2e-5". */
static void tidy_exponent(char *s) {
  char *e = strchr(s, 'e');
  if (!e)
    return;
  char *from = e + 1, *to = e + 1;
  if (*from == '+')
    from++;
  else if (*from == '-')
    *to++ = *from++;
  while (*from == '0' && from[1])
    from++;
  memmove(to, from, strlen(from) + 1);
}

/* A label for v among ticks `step` apart whose largest size is mag. */
static void format_linear(char *buf, size_t n, double v, double step,
                          double mag) {
  v += 0.0; /* no "-0" */
  int step_exp = (int)floor(log10(step) + 1e-9);
  if (v == 0 && (mag >= 1e6 || mag < 1e-4)) {
    snprintf(buf, n, "0");
  } else if (mag >= 1e6 || mag < 1e-4) {
    int digits = (int)floor(log10(mag)) - step_exp;
    digits = digits < 0 ? 0 : digits > 12 ? 12 : digits;
    snprintf(buf, n, "%.*e", digits, v);
    tidy_exponent(buf);
  } else {
    int decimals = step_exp < 0 ? -step_exp : 0;
    snprintf(buf, n, "%.*f", decimals > 15 ? 15 : decimals, v);
  }
}

/* 10^e as a label: plain for 0.001..1000, else 10 with a superscript. */
static void format_power(char *buf, size_t n, int e) {
  if (e >= -3 && e <= 3) {
    snprintf(buf, n, "%.*f", e < 0 ? -e : 0, pow(10, e));
    return;
  }
  static const char *const sup[10] = {
      "\xe2\x81\xb0", "\xc2\xb9",     "\xc2\xb2",     "\xc2\xb3",
      "\xe2\x81\xb4", "\xe2\x81\xb5", "\xe2\x81\xb6", "\xe2\x81\xb7",
      "\xe2\x81\xb8", "\xe2\x81\xb9"};
  char digits[16];
  snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
  snprintf(buf, n, "10%s", e < 0 ? "\xe2\x81\xbb" : ""); /* superscript - */
  for (const char *d = digits; *d; d++)
    strncat(buf, sup[*d - '0'], n - strlen(buf) - 1);
}

/* Nice ticks k * step inside [lo, hi], at most max_n of them, step at least
 * min_step. False when no valid set exists (the caller draws it flat). */
static bool linear_ticks(double lo, double hi, int target, int max_n,
                         double min_step, double *values, int *n,
                         double *step_out) {
  double raw = (hi / 2 - lo / 2) * (2.0 / target);
  if (!(raw > 0) || !isfinite(raw))
    return false;
  raw = fmax(raw, min_step);
  int e = (int)floor(log10(raw));
  double m = raw / pow(10, e);
  int mant = m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10;
  for (int attempt = 0; attempt < 12; attempt++) {
    if (mant == 10) {
      mant = 1;
      e++;
    }
    double step = mant * pow(10, e);
    if (!(step > 0) || !isfinite(step) || step < min_step)
      return false;
    double k0 = ceil(lo / step), k1 = floor(hi / step);
    if (!isfinite(k0) || !isfinite(k1) || fabs(k0) > 0x1p52 ||
        fabs(k1) > 0x1p52)
      return false;
    if (k1 - k0 + 1 <= max_n) {
      *n = 0;
      for (double k = k0; k <= k1; k++) {
        double v = k * step;
        if (!isfinite(v) || (*n > 0 && v <= values[*n - 1]))
          return false; /* steps below the values' resolution */
        values[(*n)++] = v;
      }
      *step_out = step;
      return *n > 0;
    }
    mant = mant == 1 ? 2 : mant == 2 ? 5 : 10;
  }
  return false;
}

static void set_flat(app_ticks *t, double mid) {
  t->flat = true;
  t->lo = t->hi = mid;
  t->n = 1;
  t->value[0] = t->log ? pow(10, mid) : mid;
  snprintf(t->label[0], sizeof t->label[0], "%.6g", t->value[0]);
  tidy_exponent(t->label[0]);
}

/* Log axes spanning a few decades: 1, 2 and 5 times each power of ten. */
static void log_125_ticks(app_ticks *t) {
  static const int mant[3] = {1, 2, 5};
  for (int e = (int)floor(t->lo); e <= (int)ceil(t->hi); e++)
    for (int k = 0; k < 3 && t->n < APP_TICKS_MAX; k++) {
      double pos = e + log10(mant[k]);
      if (pos < t->lo - 1e-9 || pos > t->hi + 1e-9)
        continue;
      t->value[t->n] = mant[k] * pow(10, e);
      if (mant[k] == 1)
        format_power(t->label[t->n], sizeof t->label[0], e);
      else
        format_linear(t->label[t->n], sizeof t->label[0], t->value[t->n],
                      pow(10, e), fabs(t->value[t->n]));
      t->n++;
    }
}

void app_ticks_fit(app_ticks *t, double lo, double hi, int target, bool log,
                   double pad) {
  *t = (app_ticks){.log = log};
  target = target < 2 ? 2 : target > APP_TICKS_MAX ? APP_TICKS_MAX : target;
  int max_n = target + target / 2;
  max_n = max_n > APP_TICKS_MAX ? APP_TICKS_MAX : max_n;
  pad = isfinite(pad) && pad > 0 ? fmin(pad, 1) : 0;
  if (log) {
    lo = lo > 0 ? log10(lo) : NAN;
    hi = hi > 0 ? log10(hi) : NAN;
  }
  if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi)) { /* no data */
    lo = 0;
    hi = 1;
  }
  if (lo == hi) { /* widen one value to a range around it */
    double d = log ? 0.5 : lo == 0 ? 1 : fabs(lo) * 0.1;
    if (!isfinite(lo + d) || !isfinite(lo - d) || lo + d == lo) {
      set_flat(t, lo);
      return;
    }
    lo -= d;
    hi += d;
  }
  double half = hi / 2 - lo / 2, mag = fmax(fabs(lo), fabs(hi));
  if (half < mag * (MIN_RELATIVE_SPAN / 2) || half < MIN_SPAN) {
    set_flat(t, lo / 2 + hi / 2);
    return;
  }
  t->lo = clamp_finite(lo - 2 * half * pad);
  t->hi = clamp_finite(hi + 2 * half * pad);
  double step;
  if (log && t->hi - t->lo >= 1 && t->hi - t->lo <= 3.5) {
    log_125_ticks(t);
    return;
  }
  if (log && t->hi - t->lo > 3.5) { /* whole decades */
    double e[APP_TICKS_MAX];
    if (!linear_ticks(t->lo, t->hi, target, max_n, 1, e, &t->n, &step)) {
      set_flat(t, lo / 2 + hi / 2);
      return;
    }
    for (int i = 0; i < t->n; i++) {
      t->value[i] = pow(10, e[i]);
      format_power(t->label[i], sizeof t->label[0], (int)e[i]);
    }
    return;
  }
  double vlo = log ? pow(10, t->lo) : t->lo, vhi = log ? pow(10, t->hi) : t->hi;
  double v[APP_TICKS_MAX];
  int n;
  if (!linear_ticks(vlo, vhi, target, max_n, 0, v, &n, &step)) {
    set_flat(t, lo / 2 + hi / 2);
    return;
  }
  double vmag = fmax(fabs(v[0]), fabs(v[n - 1]));
  for (int i = 0; i < n; i++) {
    if (log && !(v[i] > 0))
      continue;
    t->value[t->n] = v[i];
    format_linear(t->label[t->n], sizeof t->label[0], v[i], step, vmag);
    t->n++;
  }
}

double app_ticks_position(const app_ticks *t, double v) {
  if (t->flat)
    return 0.5;
  if (t->log)
    v = v > 0 ? log10(v) : NAN;
  return (v / 2 - t->lo / 2) / (t->hi / 2 - t->lo / 2);
}
