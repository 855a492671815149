/* Tokenisers: the PyTorch baseline's lowercase regex split, and a
 * reversible split that keeps case and where the whitespace was. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

void app_tokens_clear(app_tokens *t) {
  t->n = 0;
  app_buf_clear(&t->pool);
}

void app_tokens_free(app_tokens *t) {
  app_buf_free(&t->pool);
  free(t->start);
  free(t->len_);
  free(t->glued);
  *t = (app_tokens){0};
}

int app_tokens_push(app_tokens *t, const char *s, size_t len, bool glued) {
  if (t->n == t->cap) {
    int64_t cap = t->cap ? 2 * t->cap : 64;
    int64_t *start = realloc(t->start, (size_t)cap * sizeof *start);
    if (start)
      t->start = start;
    int64_t *lens = realloc(t->len_, (size_t)cap * sizeof *lens);
    if (lens)
      t->len_ = lens;
    bool *g = realloc(t->glued, (size_t)cap * sizeof *g);
    if (g)
      t->glued = g;
    if (!start || !lens || !g)
      goto oom;
    t->cap = cap;
  }
  int64_t at = app_buf_add_string(&t->pool, s, len);
  if (at < 0) {
    loom_clear_error(); /* the first error set is kept: oom's names more */
    goto oom;
  }
  t->start[t->n] = at;
  t->len_[t->n] = (int64_t)len;
  t->glued[t->n] = t->n > 0 && glued;
  t->n++;
  return 0;
oom:
  loom_set_error(LOOM_ERR_MEMORY, "tokens: out of memory at %lld tokens",
                 (long long)t->n);
  return -1;
}

/* The regex split \w+|[^\w\s] over valid UTF-8 s. */
static int split(const char *s, size_t len, app_tokens *out) {
  size_t i = 0, word = 0;
  bool in_word = false, space_before = false;
  int64_t first = out->n;
#define GLUED (out->n > first && !space_before)
  while (i < len) {
    uint32_t cp;
    int n = app_utf8_decode(s + i, len - i, &cp);
    bool w = app_unicode_is_word(cp);
    if (in_word && !w) {
      if (app_tokens_push(out, s + word, i - word, GLUED))
        return -1;
      in_word = false;
      space_before = false;
    }
    if (w) {
      if (!in_word) {
        in_word = true;
        word = i;
      }
    } else if (app_unicode_is_space(cp)) {
      space_before = true;
    } else {
      if (app_tokens_push(out, s + i, (size_t)n, GLUED))
        return -1;
      space_before = false;
    }
    i += (size_t)n;
  }
  if (in_word && app_tokens_push(out, s + word, len - word, GLUED))
    return -1;
  return 0;
#undef GLUED
}

int app_tokenize_lower(const char *line, size_t len, app_tokens *out,
                       const char *name) {
  if (app_utf8_check(line, len, name, 0))
    return -1;
  app_buf low = {0};
  int rc = app_lower(line, len, &low);
  if (rc == 0)
    rc = split(low.data ? low.data : "", low.len, out);
  app_buf_free(&low);
  return rc;
}

int app_tokenize_reversible(const char *line, size_t len, app_tokens *out,
                            const char *name) {
  if (app_utf8_check(line, len, name, 0))
    return -1;
  return split(line, len, out);
}

int app_split_space(const char *s, size_t len, app_tokens *out,
                    const char *name) {
  if (app_utf8_check(s, len, name, 0))
    return -1;
  size_t i = 0, start = 0;
  bool in_token = false;
  while (i < len) {
    uint32_t cp;
    int n = app_utf8_decode(s + i, len - i, &cp);
    bool space = app_unicode_is_space(cp);
    if (space && in_token) {
      if (app_tokens_push(out, s + start, i - start, false))
        return -1;
      in_token = false;
    } else if (!space && !in_token) {
      start = i;
      in_token = true;
    }
    i += (size_t)n;
  }
  if (in_token && app_tokens_push(out, s + start, len - start, false))
    return -1;
  return 0;
}

size_t app_rstrip_len(const char *s, size_t len) {
  while (len > 0) {
    size_t k = len - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
      k--;
    uint32_t cp;
    if (app_utf8_decode(s + k, len - k, &cp) < 0 || !app_unicode_is_space(cp))
      break;
    len = k;
  }
  return len;
}

static const size_t joiner_len = sizeof APP_JOINER - 1;

int app_tokens_join_marked(const app_tokens *t, app_buf *out) {
  for (int64_t i = 0; i < t->n; i++) {
    if (i > 0 && app_buf_putc(out, ' '))
      return -1;
    if (i > 0 && t->glued[i] && app_buf_append(out, APP_JOINER, joiner_len))
      return -1;
    if (app_buf_append(out, app_token(t, i), app_token_len(t, i)))
      return -1;
  }
  return 0;
}

int app_tokens_split_marked(const char *line, size_t len, app_tokens *out,
                            const char *name) {
  if (app_utf8_check(line, len, name, 0))
    return -1;
  int64_t first = out->n;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    int n = app_utf8_decode(line + i, len - i, &cp);
    if (app_unicode_is_space(cp)) {
      i += (size_t)n;
      continue;
    }
    size_t start = i;
    while (i < len) {
      n = app_utf8_decode(line + i, len - i, &cp);
      if (app_unicode_is_space(cp))
        break;
      i += (size_t)n;
    }
    const char *tok = line + start;
    size_t tlen = i - start;
    bool glued = tlen > joiner_len && !memcmp(tok, APP_JOINER, joiner_len);
    if (glued) {
      tok += joiner_len;
      tlen -= joiner_len;
    }
    if (app_tokens_push(out, tok, tlen, glued && out->n > first))
      return -1;
  }
  return 0;
}

int app_detokenize(const app_tokens *t, app_buf *out) {
  for (int64_t i = 0; i < t->n; i++) {
    if (i > 0 && !t->glued[i] && app_buf_putc(out, ' '))
      return -1;
    if (app_buf_append(out, app_token(t, i), app_token_len(t, i)))
      return -1;
  }
  return 0;
}
