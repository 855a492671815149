/* Strict JSON (RFC 8259) recursive descent with a depth limit. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
  const char *src, *p, *end;
  char *err;
  size_t err_size;
  bool failed;
} parser;

static void fail(parser *ps, const char *what) {
  if (!ps->failed)
    snprintf(ps->err, ps->err_size, "%s at byte %zu", what,
             (size_t)(ps->p - ps->src));
  ps->failed = true;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static bool literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return false;
  ps->p += n;
  return true;
}

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

static bool scan_string(parser *ps) {
  ps->p++; /* opening quote */
  while (ps->p < ps->end) {
    unsigned char c = (unsigned char)*ps->p;
    if (c == '"') {
      ps->p++;
      return true;
    }
    if (c < 0x20) {
      fail(ps, "control character in string");
      return false;
    }
    if (c == '\\') {
      if (ps->end - ps->p < 2) {
        fail(ps, "unfinished escape");
        return false;
      }
      char e = ps->p[1];
      if (e == 'u') {
        if (ps->end - ps->p < 6) {
          fail(ps, "short \\u escape");
          return false;
        }
        for (int i = 2; i < 6; i++)
          if (hexval(ps->p[i]) < 0) {
            fail(ps, "bad \\u escape");
            return false;
          }
        ps->p += 6;
        continue;
      }
      if (!strchr("\"\\/bfnrt", e)) {
        fail(ps, "bad escape");
        return false;
      }
      ps->p += 2;
      continue;
    }
    ps->p++;
  }
  fail(ps, "unterminated string");
  return false;
}

static bool scan_number(parser *ps, loom__json *v) {
  const char *s = ps->p;
  if (ps->p < ps->end && *ps->p == '-')
    ps->p++;
  if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) {
    fail(ps, "bad number");
    return false;
  }
  if (*ps->p == '0')
    ps->p++;
  else
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  bool integer = true;
  if (ps->p < ps->end && *ps->p == '.') {
    integer = false;
    ps->p++;
    if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) {
      fail(ps, "bad fraction");
      return false;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    integer = false;
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
      ps->p++;
    if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) {
      fail(ps, "bad exponent");
      return false;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  }
  char buf[64];
  size_t n = (size_t)(ps->p - s);
  if (n >= sizeof buf) {
    fail(ps, "number too long");
    return false;
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  v->number = strtod(buf, NULL);
  v->is_integer = false;
  if (integer) {
    /* Exact integer parse with overflow detection. */
    const char *q = buf;
    bool neg = *q == '-';
    if (neg)
      q++;
    uint64_t acc = 0;
    bool ok = true;
    for (; *q; q++) {
      uint64_t d = (uint64_t)(*q - '0');
      if (acc > (UINT64_MAX - d) / 10) {
        ok = false;
        break;
      }
      acc = acc * 10 + d;
    }
    if (ok && acc <= (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
      v->is_integer = true;
      v->integer = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    }
  }
  return true;
}

static bool parse_value(parser *ps, loom__json *v, int depth);

static bool push(parser *ps, loom__json *v, int *cap, loom__json **slot) {
  if (v->n_items == *cap) {
    int c = *cap ? 2 * *cap : 4;
    loom__json *g = realloc(v->items, (size_t)c * sizeof *g);
    if (!g) {
      fail(ps, "out of memory");
      return false;
    }
    v->items = g;
    *cap = c;
  }
  *slot = &v->items[v->n_items];
  memset(*slot, 0, sizeof **slot);
  v->n_items++;
  return true;
}

static bool parse_container(parser *ps, loom__json *v, int depth, bool object) {
  char close = object ? '}' : ']';
  int cap = 0;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    return true;
  }
  for (;;) {
    loom__json *item;
    skip_ws(ps);
    if (object) {
      if (ps->p >= ps->end || *ps->p != '"') {
        fail(ps, "expected a key");
        return false;
      }
      if (!push(ps, v, &cap, &item) || !parse_value(ps, item, depth + 1))
        return false;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        fail(ps, "expected ':'");
        return false;
      }
      ps->p++;
      skip_ws(ps);
    }
    if (!push(ps, v, &cap, &item) || !parse_value(ps, item, depth + 1))
      return false;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      return true;
    }
    fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    return false;
  }
}

static bool parse_value(parser *ps, loom__json *v, int depth) {
  if (depth > MAX_DEPTH) {
    fail(ps, "nesting too deep");
    return false;
  }
  skip_ws(ps);
  if (ps->p >= ps->end) {
    fail(ps, "unexpected end");
    return false;
  }
  v->text = ps->p;
  v->offset = (size_t)(ps->p - ps->src);
  bool ok;
  switch (*ps->p) {
  case '{':
    v->kind = LOOM__JSON_OBJECT;
    ok = parse_container(ps, v, depth, true);
    break;
  case '[':
    v->kind = LOOM__JSON_ARRAY;
    ok = parse_container(ps, v, depth, false);
    break;
  case '"':
    v->kind = LOOM__JSON_STRING;
    ok = scan_string(ps);
    break;
  case 't':
  case 'f':
    v->kind = LOOM__JSON_BOOL;
    v->boolean = *ps->p == 't';
    ok = literal(ps, v->boolean ? "true" : "false");
    if (!ok)
      fail(ps, "bad literal");
    break;
  case 'n':
    v->kind = LOOM__JSON_NULL;
    ok = literal(ps, "null");
    if (!ok)
      fail(ps, "bad literal");
    break;
  default:
    v->kind = LOOM__JSON_NUMBER;
    ok = scan_number(ps, v);
  }
  v->len = (size_t)(ps->p - v->text);
  return ok;
}

static void free_items(loom__json *v) {
  for (int i = 0; i < v->n_items; i++)
    free_items(&v->items[i]);
  free(v->items);
}

void loom__json_free(loom__json *v) {
  if (!v)
    return;
  free_items(v);
  free(v);
}

loom__json *loom__json_parse(const char *src, size_t len, char *err,
                             size_t err_size) {
  parser ps = {src, src, src + len, err, err_size, false};
  loom__json *v = calloc(1, sizeof *v);
  if (!v) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  bool ok = parse_value(&ps, v, 0);
  if (ok) {
    skip_ws(&ps);
    if (ps.p != ps.end) {
      fail(&ps, "trailing characters");
      ok = false;
    }
  }
  if (!ok) {
    loom__json_free(v);
    return NULL;
  }
  return v;
}

static size_t utf8(uint32_t c, char *out) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

static uint32_t hex4(const char *p) {
  return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 |
                    hexval(p[3]));
}

char *loom__json_string(const loom__json *v) {
  if (!v || v->kind != LOOM__JSON_STRING)
    return NULL;
  char *out = malloc(v->len + 1), *o = out;
  if (!out)
    return NULL;
  const char *p = v->text + 1, *end = v->text + v->len - 1;
  while (p < end) {
    if (*p != '\\') {
      *o++ = *p++;
      continue;
    }
    char e = p[1];
    p += 2;
    switch (e) {
    case 'b':
      *o++ = '\b';
      break;
    case 'f':
      *o++ = '\f';
      break;
    case 'n':
      *o++ = '\n';
      break;
    case 'r':
      *o++ = '\r';
      break;
    case 't':
      *o++ = '\t';
      break;
    case 'u': {
      uint32_t c = hex4(p);
      p += 4;
      if (c >= 0xD800 && c < 0xDC00 && end - p >= 6 && p[0] == '\\' &&
          p[1] == 'u') { /* a surrogate pair */
        uint32_t lo = hex4(p + 2);
        if (lo >= 0xDC00 && lo < 0xE000) {
          c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
      }
      if (c == 0) { /* a C string ends there: the rest would be lost */
        free(out);
        return NULL;
      }
      o += utf8(c, o); /* \u escapes take 6 bytes, their UTF-8 at most 4 */
      break;
    }
    default:
      *o++ = e;
    }
  }
  *o = '\0';
  return out;
}

const loom__json *loom__json_get(const loom__json *obj, const char *key) {
  if (!obj || obj->kind != LOOM__JSON_OBJECT)
    return NULL;
  size_t n = strlen(key);
  for (int i = 0; i + 1 < obj->n_items; i += 2) {
    const loom__json *k = &obj->items[i];
    /* Fast path for keys without escapes. */
    if (k->len == n + 2 && memcmp(k->text + 1, key, n) == 0)
      return &obj->items[i + 1];
    if (memchr(k->text, '\\', k->len)) {
      char *s = loom__json_string(k);
      bool eq = s && strcmp(s, key) == 0;
      free(s);
      if (eq)
        return &obj->items[i + 1];
    }
  }
  return NULL;
}
