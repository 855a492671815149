/* sacreBLEU's tokenizer 13a, the tokenisation of mteval-v13a.pl that WMT
 * scores with: a few string replacements, then four regular expressions
 * applied in turn (each scanning left to right without overlaps, as
 * Python's re.sub does), then whitespace normalised. */
#include "text.h"

#include <loom/loom.h>

#include <string.h>

/* out = in with every non-overlapping pat replaced by rep (str.replace). */
static int replace_all(const app_buf *in, const char *pat, const char *rep,
                       app_buf *out) {
  size_t np = strlen(pat), nr = strlen(rep);
  app_buf_clear(out);
  size_t i = 0;
  while (i < in->len) {
    if (in->len - i >= np && !memcmp(in->data + i, pat, np)) {
      if (app_buf_append(out, rep, nr))
        return -1;
      i += np;
    } else if (app_buf_putc(out, in->data[i++])) {
      return -1;
    }
  }
  return app_buf_append(out, "", 0);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and space except
 * ' , - . */
static bool split_off(char c) {
  unsigned char u = (unsigned char)c;
  return (u >= '{' && u <= '~') || (u >= '[' && u <= '`') ||
         (u >= ' ' && u <= '&') || (u >= '(' && u <= '+') ||
         (u >= ':' && u <= '@') || u == '/';
}

/* The byte length of the UTF-8 character at s[i] (valid text). */
static size_t char_len(const app_buf *s, size_t i) {
  unsigned char c = (unsigned char)s->data[i];
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

#define PUT(b, s, n)                                                           \
  do {                                                                         \
    if (app_buf_append((b), (s), (n)))                                         \
      return -1;                                                               \
  } while (0)

static int regexes(const app_buf *a, app_buf *b) {
  /* ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 ' */
  app_buf_clear(b);
  for (size_t i = 0; i < a->len; i++) {
    if (split_off(a->data[i])) {
      char t[3] = {' ', a->data[i], ' '};
      PUT(b, t, 3);
    } else {
      PUT(b, a->data + i, 1);
    }
  }
  app_buf t1 = {0}, t2 = {0};
  int rc = -1;
  /* ([^0-9])([\.,]) -> '\1 \2 ' */
  for (size_t i = 0; i < b->len;) {
    size_t k = char_len(b, i);
    if (!is_digit(b->data[i]) && i + k < b->len &&
        (b->data[i + k] == '.' || b->data[i + k] == ',')) {
      if (app_buf_append(&t1, b->data + i, k) || app_buf_putc(&t1, ' ') ||
          app_buf_putc(&t1, b->data[i + k]) || app_buf_putc(&t1, ' '))
        goto done;
      i += k + 1;
    } else {
      if (app_buf_append(&t1, b->data + i, k))
        goto done;
      i += k;
    }
  }
  /* ([\.,])([^0-9]) -> ' \1 \2' */
  for (size_t i = 0; i < t1.len;) {
    if ((t1.data[i] == '.' || t1.data[i] == ',') && i + 1 < t1.len &&
        !is_digit(t1.data[i + 1])) {
      size_t k = char_len(&t1, i + 1);
      if (app_buf_putc(&t2, ' ') || app_buf_putc(&t2, t1.data[i]) ||
          app_buf_putc(&t2, ' ') || app_buf_append(&t2, t1.data + i + 1, k))
        goto done;
      i += 1 + k;
    } else {
      size_t k = char_len(&t1, i);
      if (app_buf_append(&t2, t1.data + i, k))
        goto done;
      i += k;
    }
  }
  /* ([0-9])(-) -> '\1 \2 ' */
  app_buf_clear(b);
  for (size_t i = 0; i < t2.len;) {
    if (is_digit(t2.data[i]) && i + 1 < t2.len && t2.data[i + 1] == '-') {
      char t[4] = {t2.data[i], ' ', '-', ' '};
      if (app_buf_append(b, t, 4))
        goto done;
      i += 2;
    } else {
      size_t k = char_len(&t2, i);
      if (app_buf_append(b, t2.data + i, k))
        goto done;
      i += k;
    }
  }
  rc = app_buf_append(b, "", 0);
done:
  app_buf_free(&t1);
  app_buf_free(&t2);
  return rc;
}

int app_tokenize_13a(const char *s, size_t len, app_buf *out) {
  int64_t bad = app_utf8_invalid_at(s, len);
  if (bad >= 0) {
    loom_set_error(LOOM_ERR_FORMAT, "tokenizer 13a: invalid UTF-8 at byte %lld",
                   (long long)bad);
    return -1;
  }
  app_buf a = {0}, b = {0};
  app_tokens words = {0};
  int rc = -1;
  if (app_buf_append(&a, s, len) || replace_all(&a, "<skipped>", "", &b) ||
      replace_all(&b, "-\n", "", &a) || replace_all(&a, "\n", " ", &b))
    goto done;
  if (memchr(b.data, '&', b.len)) {
    if (replace_all(&b, "&quot;", "\"", &a) ||
        replace_all(&a, "&amp;", "&", &b) || replace_all(&b, "&lt;", "<", &a) ||
        replace_all(&a, "&gt;", ">", &b))
      goto done;
  }
  /* f' {line} ' */
  app_buf_clear(&a);
  if (app_buf_putc(&a, ' ') || app_buf_append(&a, b.data, b.len) ||
      app_buf_putc(&a, ' ') || regexes(&a, &b) ||
      app_split_space(b.data, b.len, &words, "tokenizer 13a"))
    goto done;
  for (int64_t i = 0; i < words.n; i++)
    if ((i > 0 && app_buf_putc(out, ' ')) ||
        app_buf_append(out, app_token(&words, i), app_token_len(&words, i)))
      goto done;
  rc = app_buf_append(out, "", 0);
done:
  app_buf_free(&a);
  app_buf_free(&b);
  app_tokens_free(&words);
  return rc;
}
