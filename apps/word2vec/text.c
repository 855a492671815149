/* The tokenizer: the original tool's word boundaries (space, tab, newline;
 * carriage returns dropped; a newline is the sentence end "</s>"), with the
 * text checked to be UTF-8 as it streams by, because gensim refuses vector
 * files that are not, and a word cut at W2V_MAX_WORD bytes is cut on a
 * character boundary. */
#define _POSIX_C_SOURCE 200809L
#include "word2vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An incremental UTF-8 check: how many continuation bytes are still due
 * and the range the next one must fall in (narrower after E0, ED, F0, F4,
 * which is what rules out overlongs, surrogates and > U+10FFFF). */
typedef struct {
  int need;
  unsigned char lo, hi;
} utf8_state;

/* Feeds one byte; false if it cannot continue well-formed UTF-8. */
static inline bool utf8_step(utf8_state *s, unsigned char b) {
  if (s->need == 0) {
    if (b < 0x80)
      return true;
    s->lo = 0x80;
    s->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
      s->need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
      s->need = 2;
      if (b == 0xE0)
        s->lo = 0xA0;
      else if (b == 0xED)
        s->hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      s->need = 3;
      if (b == 0xF0)
        s->lo = 0x90;
      else if (b == 0xF4)
        s->hi = 0x8F;
    } else
      return false;
    return true;
  }
  if (b < s->lo || b > s->hi)
    return false;
  s->need--;
  s->lo = 0x80;
  s->hi = 0xBF;
  return true;
}

bool w2v_utf8_valid(const char *s, size_t len) {
  utf8_state st = {0, 0x80, 0xBF};
  for (size_t i = 0; i < len; i++)
    if (!utf8_step(&st, (unsigned char)s[i]))
      return false;
  return st.need == 0;
}

size_t w2v_utf8_truncate(const char *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  size_t n = max;
  /* back up over continuation bytes to the start of the cut character */
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

struct w2v_reader {
  FILE *f;
  const unsigned char *buf;
  unsigned char *own; /* the buffer, for files */
  size_t pos, len;
  int64_t base;      /* file offset of buf[0] */
  int64_t line;      /* 1-based line of the current position */
  int64_t seq_start; /* offset where the current multi-byte character began */
  bool pending_eos, done;
  utf8_state utf8;
  char name[256];
  char word[W2V_MAX_WORD + 8];
};

enum { READ_CHUNK = 1 << 20 };

static w2v_reader *reader_new(const char *name) {
  w2v_reader *r = calloc(1, sizeof *r);
  if (!r) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", name);
    return NULL;
  }
  snprintf(r->name, sizeof r->name, "%s", name);
  r->line = 1;
  r->utf8 = (utf8_state){0, 0x80, 0xBF};
  return r;
}

w2v_reader *w2v_reader_open(const char *path) {
  w2v_reader *r = reader_new(path);
  if (!r)
    return NULL;
  r->f = loom_file_open_read(path);
  r->own = r->f ? malloc(READ_CHUNK) : NULL;
  if (!r->f || !r->own) {
    if (r->f)
      loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    w2v_reader_close(r);
    return NULL;
  }
  r->buf = r->own;
  return r;
}

w2v_reader *w2v_reader_memory(const void *data, size_t len, const char *name) {
  w2v_reader *r = reader_new(name);
  if (r) {
    r->buf = data;
    r->len = len;
  }
  return r;
}

void w2v_reader_close(w2v_reader *r) {
  if (!r)
    return;
  if (r->f)
    fclose(r->f);
  free(r->own);
  free(r);
}

int64_t w2v_reader_offset(const w2v_reader *r) {
  return r->base + (int64_t)r->pos;
}

/* Refills the buffer: 1 if bytes are available, 0 at the end, -1 on a
 * read error. */
static int refill(w2v_reader *r) {
  if (r->pos < r->len)
    return 1;
  if (!r->f)
    return 0;
  r->base += (int64_t)r->len;
  r->pos = 0;
  r->len = fread(r->own, 1, READ_CHUNK, r->f);
  if (r->len > 0)
    return 1;
  if (ferror(r->f)) {
    loom_set_error(LOOM_ERR_IO, "%s: read error at byte %lld", r->name,
                   (long long)r->base);
    return -1;
  }
  return 0;
}

static w2v_token fail_utf8(w2v_reader *r, int64_t at) {
  r->done = true;
  loom_set_error(LOOM_ERR_FORMAT,
                 "%s: invalid UTF-8 at byte offset %lld (line %lld); the "
                 "text must be UTF-8",
                 r->name, (long long)at, (long long)r->line);
  return W2V_TOKEN_ERROR;
}

w2v_token w2v_reader_next(w2v_reader *r, const char **word, size_t *len) {
  if (r->pending_eos) {
    r->pending_eos = false;
    return W2V_TOKEN_EOS;
  }
  if (r->done)
    return W2V_TOKEN_END;
  size_t n = 0; /* bytes stored (at most sizeof word - 1) */
  bool have = false;
  for (;;) {
    int more = refill(r);
    if (more < 0) {
      r->done = true;
      return W2V_TOKEN_ERROR;
    }
    if (more == 0) {
      r->done = true;
      if (r->utf8.need)
        return fail_utf8(r, r->seq_start);
      break;
    }
    unsigned char b = r->buf[r->pos];
    int64_t at = r->base + (int64_t)r->pos;
    r->pos++;
    if (b >= 0x80 || r->utf8.need) {
      if (r->utf8.need == 0)
        r->seq_start = at;
      if (!utf8_step(&r->utf8, b))
        return fail_utf8(r, r->utf8.need ? r->seq_start : at);
    } else if (b == 0) {
      r->done = true;
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: NUL byte at byte offset %lld (line %lld); the "
                     "text must be UTF-8 text, not binary data",
                     r->name, (long long)at, (long long)r->line);
      return W2V_TOKEN_ERROR;
    }
    if (b == '\r')
      continue;
    if (b == ' ' || b == '\t' || b == '\n') {
      if (b == '\n')
        r->line++;
      if (have) {
        r->pending_eos = b == '\n';
        break;
      }
      if (b == '\n')
        return W2V_TOKEN_EOS;
      continue;
    }
    have = true;
    if (n < sizeof r->word - 1)
      r->word[n++] = (char)b;
  }
  if (!have)
    return W2V_TOKEN_END;
  n = w2v_utf8_truncate(r->word, n, W2V_MAX_WORD);
  r->word[n] = '\0';
  *word = r->word;
  *len = n;
  return W2V_TOKEN_WORD;
}
