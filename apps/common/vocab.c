/* A model's vocabulary: built from token counts as the PyTorch baseline
 * builds it, saved beside the model as one token per line, and read back
 * with every line checked. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

static const char *const specials[APP_SPECIALS] = {"<pad>", "<bos>", "<eos>",
                                                   "<unk>"};

const char *app_vocab_special(int64_t id) {
  return id >= 0 && id < APP_SPECIALS ? specials[id] : NULL;
}

void app_vocab_free(app_vocab *v) { app_strtab_free(&v->tokens); }

int64_t app_vocab_id(const app_vocab *v, const char *token, size_t len) {
  int64_t id = app_strtab_find(&v->tokens, token, len);
  return id < 0 ? APP_UNK : id;
}

static int add_specials(app_vocab *v) {
  for (int i = 0; i < APP_SPECIALS; i++)
    if (app_strtab_intern(&v->tokens, specials[i], strlen(specials[i])) < 0)
      return -1;
  return 0;
}

/* A token a vocabulary file can hold on a line of its own; else records
 * why not. */
static bool storable(const char *t, size_t len) {
  if (len == 0 || len > APP_VOCAB_MAX_TOKEN_BYTES || memchr(t, '\n', len) ||
      memchr(t, '\r', len)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "vocabulary: token '%.*s' is empty, longer than %zu bytes "
                   "or holds a line break",
                   (int)(len > 40 ? 40 : len), t, APP_VOCAB_MAX_TOKEN_BYTES);
    return false;
  }
  return true;
}

typedef struct {
  const char *s;
  size_t len;
} text;

static int by_text(const void *a, const void *b) {
  const text *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

int app_vocab_build(app_vocab *v, const app_word_counts *counts,
                    int64_t min_count) {
  *v = (app_vocab){0};
  if (min_count < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "vocabulary: minimum count %lld is not >= 1",
                   (long long)min_count);
    return -1;
  }
  const app_strtab *w = &counts->words;
  text *order = malloc((size_t)(w->n ? w->n : 1) * sizeof *order);
  int64_t n = 0;
  if (!order) {
    loom_set_error(LOOM_ERR_MEMORY, "vocabulary: out of memory");
    return -1;
  }
  for (int64_t i = 0; i < w->n; i++)
    if (counts->count[i] >= min_count)
      order[n++] = (text){app_strtab_str(w, i), app_strtab_len(w, i)};
  /* code-point order is byte order in UTF-8 (the strings all differ) */
  qsort(order, (size_t)n, sizeof *order, by_text);
  int rc = add_specials(v);
  for (int64_t k = 0; k < n && !rc; k++) {
    if (!storable(order[k].s, order[k].len) ||
        app_strtab_intern(&v->tokens, order[k].s, order[k].len) < 0)
      rc = -1;
    else if (v->tokens.n > APP_VOCAB_MAX_TOKENS) {
      loom_set_error(LOOM_ERR_ARGUMENT, "vocabulary: more than %lld tokens",
                     (long long)APP_VOCAB_MAX_TOKENS);
      rc = -1;
    }
  }
  free(order);
  if (rc)
    app_vocab_free(v);
  return rc;
}

int app_vocab_save(const app_vocab *v, const char *path) {
  loom_file_writer *w = loom_file_writer_open(path);
  if (!w)
    return -1;
  FILE *f = loom_file_writer_stream(w);
  for (int64_t id = 0; id < v->tokens.n; id++) {
    const char *t = app_strtab_str(&v->tokens, id);
    size_t len = app_strtab_len(&v->tokens, id);
    if (!storable(t, len)) {
      loom_file_writer_abort(w);
      return -1;
    }
    fwrite(t, 1, len, f);
    fputc('\n', f);
  }
  return loom_file_writer_commit(w);
}

/* Reads the lines of an opened reader into v (closing the reader). */
static int vocab_read(app_vocab *v, app_line_reader *r) {
  const char *line;
  size_t len;
  int got;
  while ((got = app_line_reader_next(r, &line, &len, NULL)) > 0) {
    long long at = (long long)r->line_no;
    int64_t id = r->line_no - 1;
    const char *why = NULL;
    if (id < APP_SPECIALS &&
        (len != strlen(specials[id]) || memcmp(line, specials[id], len)))
      why = "the first four lines must be <pad>, <bos>, <eos>, <unk>";
    else if (len == 0)
      why = "an empty line";
    else if (memchr(line, '\r', len))
      why = "a carriage return (a file with \\r\\n line ends?)";
    else if (id >= APP_VOCAB_MAX_TOKENS)
      why = "more tokens than a vocabulary may hold (2^24)";
    if (why) {
      loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: %s", r->name, at, why);
      got = -1;
      break;
    }
    int64_t had = app_strtab_find(&v->tokens, line, len);
    if (had >= 0) {
      loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: '%.*s' repeats line %lld",
                     r->name, at, (int)(len > 40 ? 40 : len), line,
                     (long long)had + 1);
      got = -1;
      break;
    }
    if (app_strtab_intern(&v->tokens, line, len) < 0) {
      got = -1;
      break;
    }
  }
  if (got == 0 && v->tokens.n < APP_SPECIALS) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: %lld lines, but a vocabulary starts with <pad>, "
                   "<bos>, <eos>, <unk>",
                   r->name, (long long)v->tokens.n);
    got = -1;
  }
  app_line_reader_close(r);
  if (got < 0) {
    app_vocab_free(v);
    return -1;
  }
  return 0;
}

int app_vocab_load(app_vocab *v, const char *path) {
  *v = (app_vocab){0};
  app_line_reader r;
  if (app_line_reader_open(&r, path, APP_LINES_LF, APP_VOCAB_MAX_TOKEN_BYTES))
    return -1;
  return vocab_read(v, &r);
}

int app_vocab_parse(app_vocab *v, const char *data, size_t len,
                    const char *name) {
  *v = (app_vocab){0};
  app_line_reader r;
  if (app_line_reader_open_memory(&r, data, len, name, APP_LINES_LF,
                                  APP_VOCAB_MAX_TOKEN_BYTES))
    return -1;
  return vocab_read(v, &r);
}

int64_t *app_never_written(const int64_t *ids, int64_t n, int64_t *n_out) {
  *n_out = 0;
  int64_t *all = n >= 0 && n < INT64_MAX / 8 - 2
                     ? malloc((size_t)(n + 2) * sizeof *all)
                     : NULL;
  if (!all) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return NULL;
  }
  all[0] = APP_PAD;
  all[1] = APP_BOS;
  for (int64_t i = 0; i < n; i++)
    all[2 + i] = ids[i];
  *n_out = n + 2;
  return all;
}
