/* Unicode character properties and lowercasing exactly as Python 3's str
 * methods and `re` module apply them, from the tables that
 * scripts/gen_unicode_tables.py generates out of Python itself. */
#include "text.h"
#include "unicode_tables.h"

#include <loom/loom.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *app_unicode_version(void) { return APP_UNICODE_VERSION; }

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < r[mid][0])
      hi = mid;
    else if (cp > r[mid][1])
      lo = mid + 1;
    else
      return true;
  }
  return false;
}

bool app_unicode_is_word(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
           (cp >= 'A' && cp <= 'Z') || cp == '_';
  return in_ranges(app_word_ranges, COUNT(app_word_ranges), cp);
}

bool app_unicode_is_space(uint32_t cp) {
  return in_ranges(app_space_ranges, COUNT(app_space_ranges), cp);
}

static bool is_cased(uint32_t cp) {
  return in_ranges(app_cased_ranges, COUNT(app_cased_ranges), cp);
}

static bool is_case_ignorable(uint32_t cp) {
  return in_ranges(app_case_ignorable_ranges, COUNT(app_case_ignorable_ranges),
                   cp);
}

/* The lowercase of one character other than U+03A3: 1 to 3 code points. */
static int lower_of(uint32_t cp, uint32_t out[3]) {
  if (cp < 0x80) {
    out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return 1;
  }
  for (size_t i = 0; i < COUNT(app_lower_multi); i++)
    if (app_lower_multi[i].cp == cp) {
      for (int k = 0; k < app_lower_multi[i].n; k++)
        out[k] = app_lower_multi[i].lower[k];
      return app_lower_multi[i].n;
    }
  /* the last run starting at or before cp */
  size_t lo = 0, hi = COUNT(app_lower_runs);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (app_lower_runs[mid].first <= cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  out[0] = cp;
  if (lo > 0) {
    size_t r = lo - 1;
    if (cp <= app_lower_runs[r].last &&
        (cp - app_lower_runs[r].first) % app_lower_runs[r].stride == 0)
      out[0] = (uint32_t)((int64_t)cp + app_lower_runs[r].delta);
  }
  return 1;
}

/* Python's Final_Sigma test for the capital sigma at s[at..): a cased
 * letter before it (skipping case-ignorable characters), and none after
 * it in the same way. s is valid UTF-8. */
static bool final_sigma(const char *s, size_t len, size_t at, size_t next) {
  uint32_t c = 0;
  size_t j = at;
  bool found = false;
  while (j > 0) {
    size_t k = j - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
      k--;
    app_utf8_decode(s + k, len - k, &c);
    j = k;
    if (!is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  if (!found || !is_cased(c))
    return false;
  for (size_t i = next; i < len;) {
    int n = app_utf8_decode(s + i, len - i, &c);
    i += (size_t)n;
    if (!is_case_ignorable(c))
      return !is_cased(c);
  }
  return true;
}

int app_lower(const char *s, size_t len, app_buf *out) {
  int64_t bad = app_utf8_invalid_at(s, len);
  if (bad >= 0) {
    loom_set_error(LOOM_ERR_FORMAT, "lowercase: invalid UTF-8 at byte %lld",
                   (long long)bad);
    return -1;
  }
  size_t i = 0;
  while (i < len) {
    unsigned char b = (unsigned char)s[i];
    if (b < 0x80) {
      if (app_buf_putc(out, b >= 'A' && b <= 'Z' ? (char)(b + 32) : (char)b))
        return -1;
      i++;
      continue;
    }
    uint32_t cp, low[3];
    int n = app_utf8_decode(s + i, len - i, &cp);
    int k =
        cp == 0x3A3
            ? (low[0] = final_sigma(s, len, i, i + (size_t)n) ? 0x3C2 : 0x3C3,
               1)
            : lower_of(cp, low);
    for (int j = 0; j < k; j++)
      if (app_buf_put_cp(out, low[j]))
        return -1;
    i += (size_t)n;
  }
  return 0;
}
