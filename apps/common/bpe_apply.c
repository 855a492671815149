/* Applying BPE merges as subword-nmt's apply_bpe.py does, and undoing
 * them as its README's sed rule does. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

enum { CACHE_MAX = 1 << 20 }; /* segmented words kept before starting over */

struct app_bpe {
  int version;
  char *sep;
  size_t sep_len;
  app_strtab ranks;   /* "A B" -> rank (the id: first-seen order) */
  int64_t *split_at;  /* by rank: the length of A */
  app_strtab reverse; /* "AB" -> reverse_pair[id], the rank of (A, B) */
  int64_t *reverse_pair;
  app_strtab vocab;
  app_tokens glossaries;
  app_strtab cache; /* segment -> cached[id], its subwords joined by ' ' */
  app_tokens cached;
  /* scratch */
  app_buf work, key, joined;
  int64_t *sym_start, *sym_end, *pos;
  int64_t sym_cap;
  app_tokens pieces, segments, next_segments, words;
};

static int oom(void) {
  loom_set_error(LOOM_ERR_MEMORY, "BPE: out of memory");
  return -1;
}

void app_bpe_free(app_bpe *b) {
  if (!b)
    return;
  free(b->sep);
  app_strtab_free(&b->ranks);
  free(b->split_at);
  app_strtab_free(&b->reverse);
  free(b->reverse_pair);
  app_strtab_free(&b->vocab);
  app_tokens_free(&b->glossaries);
  app_strtab_free(&b->cache);
  app_tokens_free(&b->cached);
  app_buf_free(&b->work);
  app_buf_free(&b->key);
  app_buf_free(&b->joined);
  free(b->sym_start);
  free(b->sym_end);
  free(b->pos);
  app_tokens_free(&b->pieces);
  app_tokens_free(&b->segments);
  app_tokens_free(&b->next_segments);
  app_tokens_free(&b->words);
  free(b);
}

app_bpe *app_bpe_new(const app_bpe_codes *codes, const char *separator) {
  app_bpe *b = calloc(1, sizeof *b);
  if (!b) {
    oom();
    return NULL;
  }
  b->version = codes->version;
  if (!separator)
    separator = "@@";
  b->sep_len = strlen(separator);
  b->sep = malloc(b->sep_len + 1);
  int64_t n = codes->merges.n;
  int64_t *last = malloc((size_t)(n ? n : 1) * sizeof *last);
  b->split_at = malloc((size_t)(n ? n : 1) * sizeof *b->split_at);
  if (!b->sep || !last || !b->split_at)
    goto fail;
  memcpy(b->sep, separator, b->sep_len + 1);
  /* ranks: a merge given twice keeps its first place */
  for (int64_t i = 0; i < n; i++) {
    const char *m = app_token(&codes->merges, i);
    size_t len = app_token_len(&codes->merges, i);
    const char *space = memchr(m, ' ', len);
    if (!space) {
      loom_set_error(LOOM_ERR_ARGUMENT, "BPE: merge %lld is not 'A B'",
                     (long long)i + 1);
      goto fail_quiet;
    }
    int64_t id = app_strtab_intern(&b->ranks, m, len);
    if (id < 0)
      goto fail_quiet;
    b->split_at[id] = space - m;
    last[id] = i;
  }
  /* reverse: apply_bpe builds it from a dict whose order puts the merges
   * in decreasing order of their last line, later ones overwriting; so
   * each "AB" keeps the merge whose last line comes first */
  b->reverse_pair =
      malloc((size_t)(b->ranks.n ? b->ranks.n : 1) * sizeof *b->reverse_pair);
  if (!b->reverse_pair)
    goto fail;
  for (int64_t id = 0; id < b->ranks.n; id++) {
    app_buf_clear(&b->key);
    const char *m = app_strtab_str(&b->ranks, id);
    size_t len = app_strtab_len(&b->ranks, id);
    size_t a = (size_t)b->split_at[id];
    if (app_buf_append(&b->key, m, a) ||
        app_buf_append(&b->key, m + a + 1, len - a - 1))
      goto fail_quiet;
    int64_t had = b->reverse.n;
    int64_t r = app_strtab_intern(&b->reverse, b->key.data, b->key.len);
    if (r < 0)
      goto fail_quiet;
    if (r == had || last[id] < last[b->reverse_pair[r]])
      b->reverse_pair[r] = id;
  }
  free(last);
  return b;
fail:
  oom();
fail_quiet:
  free(last);
  app_bpe_free(b);
  return NULL;
}

int app_bpe_set_vocabulary(app_bpe *b, const app_word_counts *words) {
  app_strtab_clear(&b->vocab);
  app_strtab_clear(&b->cache);
  app_tokens_clear(&b->cached);
  for (int64_t i = 0; i < words->words.n; i++)
    if (app_strtab_intern(&b->vocab, app_strtab_str(&words->words, i),
                          app_strtab_len(&words->words, i)) < 0)
      return -1;
  return 0;
}

int app_bpe_add_glossary(app_bpe *b, const char *word, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (strchr(".^$*+?{}[]\\|() ", word[i]) && word[i]) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "BPE: glossary '%.*s': only literal words (no space or "
                     "regular-expression character .^$*+?{}[]\\|())",
                     (int)len, word);
      return -1;
    }
  if (!len) {
    loom_set_error(LOOM_ERR_ARGUMENT, "BPE: an empty glossary word");
    return -1;
  }
  if (app_utf8_check(word, len, "BPE glossary", 0))
    return -1;
  app_strtab_clear(&b->cache);
  app_tokens_clear(&b->cached);
  return app_tokens_push(&b->glossaries, word, len, false);
}

/* ------------------------------------------------------------- encoding */

static int reserve_symbols(app_bpe *b, int64_t n) {
  if (n <= b->sym_cap)
    return 0;
  int64_t cap = b->sym_cap ? b->sym_cap : 64;
  while (cap < n)
    cap *= 2;
  int64_t *s = realloc(b->sym_start, (size_t)cap * sizeof *s);
  if (s)
    b->sym_start = s;
  int64_t *e = realloc(b->sym_end, (size_t)cap * sizeof *e);
  if (e)
    b->sym_end = e;
  int64_t *p = realloc(b->pos, (size_t)cap * sizeof *p);
  if (p)
    b->pos = p;
  if (!s || !e || !p)
    return oom();
  b->sym_cap = cap;
  return 0;
}

/* The rank of merging symbols i and i + 1 of the work buffer, or -1. */
static int64_t rank_at(app_bpe *b, int64_t i) {
  const char *w = b->work.data;
  app_buf_clear(&b->key);
  if (app_buf_append(&b->key, w + b->sym_start[i],
                     (size_t)(b->sym_end[i] - b->sym_start[i])) ||
      app_buf_putc(&b->key, ' ') ||
      app_buf_append(&b->key, w + b->sym_start[i + 1],
                     (size_t)(b->sym_end[i + 1] - b->sym_start[i + 1])))
    return -2;
  return app_strtab_find(&b->ranks, b->key.data, b->key.len);
}

static bool in_vocab(app_bpe *b, const char *s, size_t len, bool with_sep) {
  app_buf_clear(&b->key);
  if (app_buf_append(&b->key, s, len) ||
      (with_sep && app_buf_append(&b->key, b->sep, b->sep_len)))
    return false;
  return app_strtab_find(&b->vocab, b->key.data, b->key.len) >= 0;
}

/* s[0..len) without its last n code points (Python's s[:-n]). */
static size_t drop_chars(const char *s, size_t len, int n) {
  for (int k = 0; k < n && len > 0; k++) {
    len--;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
      len--;
  }
  return len;
}

/* recursive_split of one subword, pushing its parts to out; an explicit
 * stack keeps apply_bpe's generator order. Parts are copied out of the
 * codes' strings, which stay put while b lives. */
typedef struct {
  const char *s;
  size_t len;
  bool final;
  int stage;
  const char *left, *right;
  size_t left_len, right_len;
} split_frame;

static int recursive_split(app_bpe *b, const char *s, size_t len, bool final,
                           app_tokens *out) {
  int64_t cap = 64, top = 0;
  split_frame *st = malloc((size_t)cap * sizeof *st);
  if (!st)
    return oom();
  st[top++] = (split_frame){.s = s, .len = len, .final = final};
  int rc = 0;
  while (top > 0 && !rc) {
    split_frame *f = &st[top - 1];
    split_frame next = {0};
    bool push = false;
    if (f->stage == 0) {
      app_buf_clear(&b->key);
      if (app_buf_append(&b->key, f->s, f->len) ||
          (f->final && app_buf_append(&b->key, "</w>", 4))) {
        rc = -1;
        break;
      }
      int64_t r = app_strtab_find(&b->reverse, b->key.data, b->key.len);
      if (r < 0) {
        rc = app_tokens_push(out, f->s, f->len, false);
        top--;
        continue;
      }
      int64_t id = b->reverse_pair[r];
      const char *m = app_strtab_str(&b->ranks, id);
      size_t a = (size_t)b->split_at[id];
      f->left = m;
      f->left_len = a;
      f->right = m + a + 1;
      f->right_len = app_strtab_len(&b->ranks, id) - a - 1;
      if (f->final)
        f->right_len = drop_chars(f->right, f->right_len, 4);
      f->stage = 1;
      if (in_vocab(b, f->left, f->left_len, true)) {
        rc = app_tokens_push(out, f->left, f->left_len, false);
      } else {
        next = (split_frame){.s = f->left, .len = f->left_len};
        push = true;
      }
    } else if (f->stage == 1) {
      f->stage = 2;
      if (in_vocab(b, f->right, f->right_len, !f->final)) {
        rc = app_tokens_push(out, f->right, f->right_len, false);
      } else {
        next = (split_frame){
            .s = f->right, .len = f->right_len, .final = f->final};
        push = true;
      }
    } else {
      top--;
    }
    if (push) {
      if (top == cap) {
        split_frame *g = realloc(st, (size_t)(2 * cap) * sizeof *g);
        if (!g) {
          rc = oom();
          break;
        }
        st = g;
        cap *= 2;
      }
      st[top++] = next;
    }
  }
  free(st);
  return rc;
}

/* encode(): the subwords of one segment (no separators) into out. */
static int encode(app_bpe *b, const char *orig, size_t len, app_tokens *out) {
  int64_t c = app_strtab_find(&b->cache, orig, len);
  if (c >= 0) { /* the cached subwords, joined by single spaces */
    const char *s = app_token(&b->cached, c);
    size_t n = app_token_len(&b->cached, c);
    for (size_t i = 0;;) {
      const char *e = memchr(s + i, ' ', n - i);
      size_t j = e ? (size_t)(e - s) : n;
      if (app_tokens_push(out, s + i, j - i, false))
        return -1;
      if (!e)
        return 0;
      i = j + 1;
    }
  }
  int64_t first = out->n;
  for (int64_t g = 0; g < b->glossaries.n; g++)
    if (app_token_len(&b->glossaries, g) == len &&
        !memcmp(app_token(&b->glossaries, g), orig, len)) {
      if (app_tokens_push(out, orig, len, false))
        return -1;
      goto cache;
    }
  uint32_t cp;
  if ((size_t)app_utf8_decode(orig, len, &cp) == len) /* one character */
    return app_tokens_push(out, orig, len, false);

  /* the characters, "</w>" joined to the last (version 1: after it) */
  app_buf_clear(&b->work);
  if (app_buf_append(&b->work, orig, len) ||
      app_buf_append(&b->work, "</w>", 4) ||
      reserve_symbols(b, (int64_t)len + 1))
    return -1;
  int64_t n = 0;
  for (size_t i = 0; i < len;) {
    int k = app_utf8_decode(orig + i, len - i, &cp);
    b->sym_start[n] = (int64_t)i;
    b->sym_end[n++] = (int64_t)(i + (size_t)k);
    i += (size_t)k;
  }
  if (b->version == 2) {
    b->sym_end[n - 1] += 4;
  } else {
    b->sym_start[n] = (int64_t)len;
    b->sym_end[n++] = (int64_t)len + 4;
  }
  while (n > 1) {
    /* the first merge in the codes among the word's pairs, and where */
    int64_t best = -1, n_pos = 0;
    for (int64_t i = 0; i + 1 < n; i++) {
      int64_t r = rank_at(b, i);
      if (r < -1)
        return -1;
      b->pos[i] = r;
      if (r >= 0 && (best < 0 || r < best))
        best = r;
    }
    if (best < 0)
      break;
    /* merge it everywhere, left to right, skipping overlaps */
    int64_t m = 0, i = 0;
    while (i < n) {
      if (i + 1 < n && b->pos[i] == best) {
        b->sym_start[m] = b->sym_start[i];
        b->sym_end[m++] = b->sym_end[i + 1];
        i += 2;
        n_pos++;
      } else {
        b->sym_start[m] = b->sym_start[i];
        b->sym_end[m++] = b->sym_end[i];
        i++;
      }
    }
    n = m;
  }
  /* end-of-word marks are not printed */
  const char *w = b->work.data;
  int64_t last_len = b->sym_end[n - 1] - b->sym_start[n - 1];
  if (last_len == 4 && !memcmp(w + b->sym_start[n - 1], "</w>", 4))
    n--;
  else if (last_len >= 4 && !memcmp(w + b->sym_end[n - 1] - 4, "</w>", 4))
    b->sym_end[n - 1] -= 4;
  if (b->vocab.n == 0) {
    for (int64_t i = 0; i < n; i++)
      if (app_tokens_push(out, w + b->sym_start[i],
                          (size_t)(b->sym_end[i] - b->sym_start[i]), false))
        return -1;
  } else {
    /* check_vocab_and_split: the pieces are copied first, as the work
     * buffer is reused */
    app_tokens_clear(&b->pieces);
    for (int64_t i = 0; i < n; i++)
      if (app_tokens_push(&b->pieces, w + b->sym_start[i],
                          (size_t)(b->sym_end[i] - b->sym_start[i]), false))
        return -1;
    for (int64_t i = 0; i < n; i++) {
      const char *s = app_token(&b->pieces, i);
      size_t sl = app_token_len(&b->pieces, i);
      bool final = i == n - 1;
      int rc = in_vocab(b, s, sl, !final)
                   ? app_tokens_push(out, s, sl, false)
                   : recursive_split(b, s, sl, final, out);
      if (rc)
        return -1;
    }
  }
cache:
  if (b->cache.n >= CACHE_MAX) {
    app_strtab_clear(&b->cache);
    app_tokens_clear(&b->cached);
  }
  app_buf_clear(&b->joined);
  for (int64_t i = first; i < out->n; i++)
    if ((i > first && app_buf_putc(&b->joined, ' ')) ||
        app_buf_append(&b->joined, app_token(out, i), app_token_len(out, i)))
      return -1;
  if (app_strtab_intern(&b->cache, orig, len) < 0 ||
      app_tokens_push(&b->cached, b->joined.data ? b->joined.data : "",
                      b->joined.len, false))
    return -1;
  return 0;
}

/* isolate_glossary for every glossary word in turn: the word split around
 * each occurrence, the occurrences kept as segments of their own. */
static int isolate_glossaries(app_bpe *b, const char *word, size_t len) {
  app_tokens *cur = &b->segments, *next = &b->next_segments;
  app_tokens_clear(cur);
  if (app_tokens_push(cur, word, len, false))
    return -1;
  for (int64_t g = 0; g < b->glossaries.n; g++) {
    const char *gl = app_token(&b->glossaries, g);
    size_t gn = app_token_len(&b->glossaries, g);
    app_tokens_clear(next);
    for (int64_t k = 0; k < cur->n; k++) {
      const char *s = app_token(cur, k);
      size_t sl = app_token_len(cur, k);
      /* the first occurrence */
      const char *at = NULL;
      for (size_t i = 0; !at && i + gn <= sl; i++)
        if (!memcmp(s + i, gl, gn))
          at = s + i;
      if ((sl == gn && at) || !at) {
        if (app_tokens_push(next, s, sl, false))
          return -1;
        continue;
      }
      /* re.split with the glossary as a group: empty pieces dropped,
       * except that a final piece is kept if not empty */
      size_t i = 0;
      while (i <= sl) {
        const char *hit = NULL;
        for (size_t j = i; !hit && j + gn <= sl; j++)
          if (!memcmp(s + j, gl, gn))
            hit = s + j;
        size_t end = hit ? (size_t)(hit - s) : sl;
        if (end > i && app_tokens_push(next, s + i, end - i, false))
          return -1;
        if (!hit)
          break;
        if (app_tokens_push(next, gl, gn, false))
          return -1;
        i = end + gn;
      }
    }
    app_tokens *t = cur;
    cur = next;
    next = t;
  }
  if (cur != &b->segments) { /* leave the result in b->segments */
    app_tokens t = b->segments;
    b->segments = b->next_segments;
    b->next_segments = t;
  }
  return 0;
}

static bool strip_char(char c) { return c == '\r' || c == '\n' || c == ' '; }

int app_bpe_apply_line(app_bpe *b, const char *line, size_t len, bool ended,
                       app_buf *out) {
  if (app_utf8_check(line, len, "BPE input", 0))
    return -1;
  /* the line as Python sees it: with its "\n" */
  size_t full = len + (ended ? 1 : 0);
#define AT(i) ((i) < len ? line[i] : '\n')
  size_t lead = 0, trail = 0;
  while (lead < full && strip_char(AT(lead)))
    lead++;
  while (trail < full && strip_char(AT(full - 1 - trail)))
    trail++;
  for (size_t i = 0; i < lead; i++)
    if (app_buf_putc(out, AT(i)))
      return -1;
  /* the words between */
  size_t i = lead, end = full - (trail < full ? trail : full);
  bool any = false;
  while (i < end) {
    size_t j = i;
    while (j < end && line[j] != ' ')
      j++;
    if (j > i) {
      if (isolate_glossaries(b, line + i, j - i))
        return -1;
      app_tokens_clear(&b->words);
      for (int64_t k = 0; k < b->segments.n; k++)
        if (encode(b, app_token(&b->segments, k),
                   app_token_len(&b->segments, k), &b->words))
          return -1;
      for (int64_t k = 0; k < b->words.n; k++) {
        if ((any && app_buf_putc(out, ' ')) ||
            app_buf_append(out, app_token(&b->words, k),
                           app_token_len(&b->words, k)) ||
            (k + 1 < b->words.n && app_buf_append(out, b->sep, b->sep_len)))
          return -1;
        any = true;
      }
    }
    i = j + 1;
  }
  if (trail && trail != full)
    for (size_t k = full - trail; k < full; k++)
      if (app_buf_putc(out, AT(k)))
        return -1;
#undef AT
  return app_buf_append(out, "", 0);
}

int app_bpe_undo_line(const char *line, size_t len, const char *separator,
                      app_buf *out) {
  if (!separator)
    separator = "@@";
  size_t n = strlen(separator), i = 0;
  while (i < len) {
    if (n && len - i >= n && !memcmp(line + i, separator, n)) {
      if (i + n < len && line[i + n] == ' ') { /* (@@ ) */
        i += n + 1;
        continue;
      }
      if (i + n == len) { /* (@@ ?$) */
        i += n;
        continue;
      }
    }
    if (app_buf_putc(out, line[i++]))
      return -1;
  }
  return app_buf_append(out, "", 0);
}
