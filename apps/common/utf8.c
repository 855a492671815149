/* UTF-8: validation with the offset of the first bad byte, decoding and
 * encoding of single code points. */
#include "text.h"

#include <loom/loom.h>

#include <string.h>

/* The length of the well-formed sequence at s (len > 0 bytes available),
 * or 0 if it is ill-formed (Unicode's table of well-formed byte
 * sequences: the second byte's range depends on the first, which rules
 * out overlongs, surrogates and code points above U+10FFFF). */
static int sequence_length(const unsigned char *s, size_t len) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  int n;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else
    return 0;
  if (len < (size_t)n || s[1] < lo || s[1] > hi)
    return 0;
  for (int i = 2; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return n;
}

int64_t app_utf8_invalid_at(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    /* eight ASCII bytes at a time */
    if (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!(w & 0x8080808080808080ULL)) {
        i += 8;
        continue;
      }
    }
    int n = sequence_length(s + i, len - i);
    if (!n)
      return (int64_t)i;
    i += (size_t)n;
  }
  return -1;
}

int app_utf8_check(const char *s, size_t len, const char *name, int64_t base) {
  int64_t at = app_utf8_invalid_at(s, len);
  if (at < 0)
    return 0;
  loom_set_error(LOOM_ERR_FORMAT, "%s: invalid UTF-8 at byte %lld", name,
                 (long long)(base + at));
  return -1;
}

int app_utf8_decode(const char *text, size_t len, uint32_t *cp) {
  const unsigned char *s = (const unsigned char *)text;
  int n = sequence_length(s, len);
  switch (n) {
  case 1:
    *cp = s[0];
    break;
  case 2:
    *cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    break;
  case 3:
    *cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 |
          (s[2] & 0x3F);
    break;
  case 4:
    *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
          (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    break;
  default:
    *cp = 0xFFFD;
    return -1;
  }
  return n;
}

int app_utf8_encode(uint32_t cp, char out[4]) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | cp >> 6);
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp >= 0xD800 && cp <= 0xDFFF)
    return 0;
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | cp >> 12);
    o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  if (cp <= 0x10FFFF) {
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
  }
  return 0;
}

int app_buf_put_cp(app_buf *b, uint32_t cp) {
  char u[4];
  int n = app_utf8_encode(cp, u);
  if (!n) {
    loom_set_error(LOOM_ERR_ARGUMENT, "U+%04X is not a Unicode scalar value",
                   (unsigned)cp);
    return -1;
  }
  return app_buf_append(b, u, (size_t)n);
}
