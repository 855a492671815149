/* The vocabulary (words, counts, a hash index), its file, and the corpus
 * held in memory as word ids.
 *
 * Counting and encoding happen in one read of the text: words get ids in
 * the order they are first seen, the text is kept as those ids, and after
 * sorting one remapping pass turns them into final ids (rare words drop
 * out). The original tool reads the text again for every epoch and
 * thread; ids are read at memory speed instead. */
#define _POSIX_C_SOURCE 200809L
#include "word2vec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void w2v_vocab_init(w2v_vocab *v) { *v = (w2v_vocab){0}; }

void w2v_vocab_free(w2v_vocab *v) {
  free(v->entries);
  app_buf_free(&v->pool);
  free(v->hash);
  *v = (w2v_vocab){0};
}

static uint64_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

static bool same(const w2v_vocab *v, int64_t i, const char *s, size_t len) {
  return v->entries[i].len == (int32_t)len &&
         memcmp(v->pool.data + v->entries[i].offset, s, len) == 0;
}

int64_t w2v_vocab_find(const w2v_vocab *v, const char *word, size_t len) {
  if (!v->hash_cap)
    return -1;
  uint64_t mask = (uint64_t)v->hash_cap - 1;
  for (uint64_t h = hash_bytes(word, len) & mask;; h = (h + 1) & mask) {
    int32_t i = v->hash[h];
    if (i < 0)
      return -1;
    if (same(v, i, word, len))
      return i;
  }
}

/* Rebuilds the index for `cap` slots (a power of two). */
static int rehash(w2v_vocab *v, int64_t cap) {
  int32_t *h = malloc((size_t)cap * sizeof *h);
  if (!h)
    return -1;
  memset(h, 0xFF, (size_t)cap * sizeof *h);
  uint64_t mask = (uint64_t)cap - 1;
  for (int64_t i = 0; i < v->size; i++) {
    const w2v_entry *e = &v->entries[i];
    uint64_t k = hash_bytes(v->pool.data + e->offset, (size_t)e->len) & mask;
    while (h[k] >= 0)
      k = (k + 1) & mask;
    h[k] = (int32_t)i;
  }
  free(v->hash);
  v->hash = h;
  v->hash_cap = cap;
  return 0;
}

int64_t w2v_vocab_add(w2v_vocab *v, const char *word, size_t len) {
  int64_t found = w2v_vocab_find(v, word, len);
  if (found >= 0)
    return found;
  if (v->size >= INT32_MAX - 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "vocabulary: more than 2^31 words");
    return -1;
  }
  if (v->size == v->cap) {
    int64_t cap = v->cap ? 2 * v->cap : 1024;
    w2v_entry *g = realloc(v->entries, (size_t)cap * sizeof *g);
    if (!g)
      goto oom;
    v->entries = g;
    v->cap = cap;
  }
  int64_t at = app_buf_add_string(&v->pool, word, len);
  if (at < 0) {
    loom_clear_error(); /* the first error set is kept: oom's names more */
    goto oom;
  }
  v->entries[v->size] =
      (w2v_entry){.count = 0, .offset = at, .len = (int32_t)len};
  v->size++;
  /* keep the index at most half full */
  if (2 * v->size > v->hash_cap) {
    if (rehash(v, v->hash_cap ? 2 * v->hash_cap : 4096) < 0) {
      v->size--;
      goto oom;
    }
  } else {
    uint64_t mask = (uint64_t)v->hash_cap - 1;
    uint64_t k = hash_bytes(word, len) & mask;
    while (v->hash[k] >= 0)
      k = (k + 1) & mask;
    v->hash[k] = (int32_t)(v->size - 1);
  }
  return v->size - 1;
oom:
  loom_set_error(LOOM_ERR_MEMORY, "vocabulary: out of memory at %lld words",
                 (long long)v->size);
  return -1;
}

/* Most frequent first; equal counts keep their order (the index breaks
 * ties), so the result does not depend on the sort algorithm. */
typedef struct {
  int64_t count;
  int32_t index;
} ranked;

static int by_count(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

int w2v_vocab_sort(w2v_vocab *v, int64_t min_count, int32_t *remap) {
  if (v->size == 0)
    return 0;
  ranked *order = malloc((size_t)v->size * sizeof *order);
  w2v_entry *sorted = malloc((size_t)v->size * sizeof *sorted);
  if (!order || !sorted) {
    free(order);
    free(sorted);
    loom_set_error(LOOM_ERR_MEMORY, "vocabulary: out of memory sorting");
    return -1;
  }
  for (int64_t i = 0; i < v->size; i++)
    order[i] = (ranked){v->entries[i].count, (int32_t)i};
  qsort(order + 1, (size_t)(v->size - 1), sizeof *order, by_count);
  if (remap)
    for (int64_t i = 0; i < v->size; i++)
      remap[i] = -1;
  int64_t n = 0;
  v->train_words = 0;
  for (int64_t k = 0; k < v->size; k++) {
    const w2v_entry *e = &v->entries[order[k].index];
    if (k > 0 && e->count < min_count)
      continue;
    if (remap)
      remap[order[k].index] = (int32_t)n;
    sorted[n++] = *e;
    v->train_words += e->count;
  }
  free(order);
  free(v->entries);
  v->entries = sorted;
  v->size = v->cap = n;
  int64_t cap = 4096;
  while (cap < 2 * n)
    cap *= 2;
  if (rehash(v, cap) < 0) {
    loom_set_error(LOOM_ERR_MEMORY, "vocabulary: out of memory");
    return -1;
  }
  return 0;
}

int w2v_vocab_save(const w2v_vocab *v, const char *path) {
  loom_file_writer *out = loom_file_writer_open(path);
  FILE *f = loom_file_writer_stream(out);
  if (!f)
    return -1;
  for (int64_t i = 0; i < v->size; i++)
    fprintf(f, "%s %lld\n", w2v_vocab_word(v, i),
            (long long)v->entries[i].count);
  return loom_file_writer_commit(out); /* reports a failed write */
}

/* Training takes word 0 for the sentence end: a vocabulary file written
 * by another tool may list "</s>" elsewhere or not at all, so it is moved
 * (or added, count 0) to the front, the other words keeping their order. */
static int eos_first(w2v_vocab *v) {
  int64_t e = w2v_vocab_find(v, W2V_EOS, strlen(W2V_EOS));
  if (e == 0)
    return 0;
  w2v_vocab u;
  w2v_vocab_init(&u);
  int rc = w2v_vocab_add(&u, W2V_EOS, strlen(W2V_EOS)) == 0 ? 0 : -1;
  if (rc == 0)
    u.entries[0].count = e > 0 ? v->entries[e].count : 0;
  for (int64_t i = 0; rc == 0 && i < v->size; i++)
    if (i != e) {
      int64_t k = w2v_vocab_add(&u, w2v_vocab_word(v, i), v->entries[i].len);
      if (k < 0)
        rc = -1;
      else
        u.entries[k].count = v->entries[i].count;
    }
  if (rc == 0) {
    w2v_vocab_free(v);
    *v = u;
  } else {
    w2v_vocab_free(&u);
  }
  return rc;
}

/* One line of f, its '\n' included, into line (at most cap - 1 bytes, then
 * a NUL): its length, counting any NUL bytes it holds, or 0 at the end of
 * the file. fgets, which this replaces, leaves the length to strlen, which
 * stops at a NUL: a line starting with one read as blank and was skipped,
 * and /dev/zero gave blank lines forever. */
static size_t read_line(FILE *f, char *line, size_t cap) {
  size_t n = 0;
  int c;
  while (n < cap - 1 && (c = getc(f)) != EOF) {
    line[n++] = (char)c;
    if (c == '\n')
      break;
  }
  line[n] = '\0';
  return n;
}

int w2v_vocab_read(w2v_vocab *v, const char *path, int64_t min_count) {
  FILE *f = loom_file_open_read(path);
  if (!f)
    return -1;
  w2v_vocab_free(v);
  char line[4 * W2V_MAX_WORD + 64];
  int64_t lineno = 0, offset = 0;
  /* the counts' sum, kept far from overflow (the trainer adds them up) */
  int64_t total = 0;
  const int64_t max_total = (int64_t)1 << 62;
  int rc = 0;
  size_t n;
  while (rc == 0 && (n = read_line(f, line, sizeof line)) > 0) {
    lineno++;
    int64_t at = offset;
    offset += (int64_t)n;
    if (n == sizeof line - 1 && line[n - 1] != '\n') {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld) is too "
                     "long for a \"word count\" line",
                     path, (long long)lineno, (long long)at);
      rc = -1;
      break;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      line[--n] = '\0';
    if (n == 0)
      continue;
    const char *nul = memchr(line, '\0', n);
    if (nul) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld): a NUL byte; expected "
                     "\"word count\" text",
                     path, (long long)lineno, (long long)(at + (nul - line)));
      rc = -1;
      break;
    }
    char *sp = strrchr(line, ' ');
    char *end = NULL;
    errno = 0;
    long long count = sp ? strtoll(sp + 1, &end, 10) : -1;
    size_t wlen = sp ? (size_t)(sp - line) : 0;
    if (!sp || wlen == 0 || end == sp + 1 || *end || memchr(line, '\t', wlen) ||
        memchr(line, ' ', wlen)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld): expected "
                     "\"word count\"",
                     path, (long long)lineno, (long long)at);
      rc = -1;
    } else if (errno == ERANGE || count < 0 || count > max_total) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld): count %.40s is not in "
                     "0..2^62",
                     path, (long long)lineno, (long long)at, sp + 1);
      rc = -1;
    } else if (count > max_total - total) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld): count %lld makes the "
                     "counts add up to more than 2^62",
                     path, (long long)lineno, (long long)at, count);
      rc = -1;
    } else if (!w2v_utf8_valid(line, wlen)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld (byte %lld): the word "
                     "is not valid UTF-8",
                     path, (long long)lineno, (long long)at);
      rc = -1;
    } else {
      wlen = w2v_utf8_truncate(line, wlen, W2V_MAX_WORD);
      if (w2v_vocab_find(v, line, wlen) >= 0) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "%s: line %lld: word '%.*s' "
                       "appears twice",
                       path, (long long)lineno, (int)wlen, line);
        rc = -1;
      } else {
        int64_t i = w2v_vocab_add(v, line, wlen);
        if (i < 0) {
          rc = -1;
        } else {
          v->entries[i].count = count;
          total += count;
        }
      }
    }
  }
  if (rc == 0 && ferror(f)) {
    loom_set_error(LOOM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    rc = -1;
  }
  fclose(f);
  if (rc == 0 && v->size == 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: the vocabulary file is empty", path);
    rc = -1;
  }
  int64_t listed = v->size;
  if (rc == 0)
    rc = eos_first(v);
  if (rc == 0)
    rc = w2v_vocab_sort(v, min_count, NULL);
  if (rc == 0 && v->size <= 1) { /* only the sentence end is left */
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: none of its %lld words is counted -min-count %lld "
                   "times or more; lower -min-count",
                   path, (long long)listed, (long long)min_count);
    rc = -1;
  }
  return rc;
}

/* ------------------------------------------------ the corpus */

void w2v_corpus_free(w2v_corpus *c) {
  free(c->ids);
  *c = (w2v_corpus){0};
}

static int push_id(w2v_corpus *c, int64_t *cap, int32_t id) {
  if (c->len == *cap) {
    int64_t n = *cap ? 2 * *cap : 1 << 20;
    int32_t *g = realloc(c->ids, (size_t)n * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "corpus: out of memory at %lld words",
                     (long long)c->len);
      return -1;
    }
    c->ids = g;
    *cap = n;
  }
  c->ids[c->len++] = id;
  return 0;
}

/* Reads every token; *raw counts the words (not sentence ends) read. */
static int read_tokens(w2v_corpus *c, w2v_vocab *v, w2v_reader *r, bool learn,
                       int64_t *raw) {
  int64_t cap = 0;
  int32_t eos = 0;
  if (learn) {
    if (w2v_vocab_add(v, W2V_EOS, strlen(W2V_EOS)) != 0)
      return -1;
  } else {
    int64_t e = w2v_vocab_find(v, W2V_EOS, strlen(W2V_EOS));
    eos = e >= 0 ? (int32_t)e : -1; /* without it, lines do not matter */
  }
  for (;;) {
    const char *w;
    size_t len;
    w2v_token t = w2v_reader_next(r, &w, &len);
    if (t == W2V_TOKEN_END)
      return 0;
    if (t == W2V_TOKEN_ERROR)
      return -1;
    int64_t id = eos;
    if (t == W2V_TOKEN_WORD) {
      ++*raw;
      id = learn ? w2v_vocab_add(v, w, len) : w2v_vocab_find(v, w, len);
    }
    if (learn && id < 0)
      return -1;
    if (id < 0)
      continue;
    if (learn)
      v->entries[id].count++;
    if (push_id(c, &cap, (int32_t)id) < 0)
      return -1;
  }
}

static int corpus_read(w2v_corpus *c, w2v_vocab *v, w2v_reader *r,
                       const char *name, bool learn, int64_t min_count) {
  *c = (w2v_corpus){0};
  if (!r)
    return -1;
  if (learn)
    w2v_vocab_free(v);
  int64_t raw = 0;
  int rc = read_tokens(c, v, r, learn, &raw);
  w2v_reader_close(r);
  if (rc == 0 && learn) {
    int32_t *remap = malloc((size_t)v->size * sizeof *remap);
    rc = remap ? w2v_vocab_sort(v, min_count, remap) : -1;
    if (!remap)
      loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", name);
    int64_t n = 0;
    for (int64_t i = 0; rc == 0 && i < c->len; i++)
      if (remap[c->ids[i]] >= 0)
        c->ids[n++] = remap[c->ids[i]];
    c->len = n;
    free(remap);
  }
  int64_t words = 0; /* ids other than the sentence end */
  for (int64_t i = 0; rc == 0 && i < c->len; i++)
    words += c->ids[i] != 0;
  if (rc == 0 && words == 0) {
    if (raw == 0)
      loom_set_error(LOOM_ERR_FORMAT, "%s: the text holds no words", name);
    else if (learn)
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: no word occurs -min-count %lld times (%lld words "
                     "read); lower -min-count",
                     name, (long long)min_count, (long long)raw);
    else
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: none of its %lld words is in the vocabulary", name,
                     (long long)raw);
    rc = -1;
  }
  if (rc < 0)
    w2v_corpus_free(c);
  return rc;
}

int w2v_corpus_read(w2v_corpus *c, w2v_vocab *v, const char *path, bool learn,
                    int64_t min_count) {
  return corpus_read(c, v, w2v_reader_open(path), path, learn, min_count);
}

int w2v_corpus_from_memory(w2v_corpus *c, w2v_vocab *v, const void *text,
                           size_t len, bool learn, int64_t min_count) {
  return corpus_read(c, v, w2v_reader_memory(text, len, "<memory>"), "<memory>",
                     learn, min_count);
}
