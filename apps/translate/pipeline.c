/* From text to ids and back. A line is tokenised (lowercased words and
 * punctuation as the PyTorch baseline does, or case kept with each glued
 * token marked by the joiner), the tokens are split into subwords by
 * byte-pair encoding when the side has codes (subword-nmt's rules, on the
 * line of tokens), and the units are looked up in the side's vocabulary
 * (the baseline's: <pad> <bos> <eos> <unk>, then the units seen min_count
 * times, sorted). Decoding runs the same way backwards. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

struct nmt_text {
  nmt_text_opts o;
  app_vocab vocab[2];       /* source, target (the same units when joint) */
  app_bpe_codes codes[2];   /* merges; none without BPE */
  app_bpe *bpe[2];          /* NULL without BPE */
  app_tokens tokens, units; /* scratch for one line */
  app_buf line, segmented;
};

nmt_text_opts nmt_text_defaults(void) {
  return (nmt_text_opts){.tokenize = "lower", .min_count = 2};
}

const nmt_text_opts *nmt_text_options(const nmt_text *t) { return &t->o; }

int64_t nmt_text_vocab_size(const nmt_text *t, bool target) {
  return app_vocab_size(&t->vocab[target]);
}

void nmt_text_free(nmt_text *t) {
  if (!t)
    return;
  for (int s = 0; s < 2; s++) {
    app_vocab_free(&t->vocab[s]);
    app_bpe_codes_free(&t->codes[s]);
    app_bpe_free(t->bpe[s]);
  }
  app_tokens_free(&t->tokens);
  app_tokens_free(&t->units);
  app_buf_free(&t->line);
  app_buf_free(&t->segmented);
  free(t);
}

static bool lowercased(const nmt_text *t) {
  return !strcmp(t->o.tokenize, "lower");
}

/* ---- one line to units ---- */

/* The tokens of a line as one line of words separated by single spaces,
 * into t->line: glued tokens carry the joiner in reversible mode. */
static int words_of(nmt_text *t, const char *line, size_t len,
                    const char *name) {
  app_tokens_clear(&t->tokens);
  app_buf_clear(&t->line);
  if (lowercased(t)) {
    if (app_tokenize_lower(line, len, &t->tokens, name) < 0)
      return -1;
    for (int64_t i = 0; i < t->tokens.n; i++)
      if ((i && app_buf_putc(&t->line, ' ') < 0) ||
          app_buf_append(&t->line, app_token(&t->tokens, i),
                         app_token_len(&t->tokens, i)) < 0)
        return -1;
    return app_buf_append(&t->line, "", 0);
  }
  return app_tokenize_reversible(line, len, &t->tokens, name) < 0 ||
                 app_tokens_join_marked(&t->tokens, &t->line) < 0 ||
                 app_buf_append(&t->line, "", 0) < 0
             ? -1
             : 0;
}

/* Splits s at single spaces into t->units. */
static int split_units(nmt_text *t, const char *s, size_t len) {
  app_tokens_clear(&t->units);
  for (size_t at = 0; at < len;) {
    const char *sp = memchr(s + at, ' ', len - at);
    size_t n = sp ? (size_t)(sp - (s + at)) : len - at;
    if (n && app_tokens_push(&t->units, s + at, n, false) < 0)
      return -1;
    at += n + 1;
  }
  return 0;
}

/* The units of a line (tokens, split into subwords when the side has
 * codes) into t->units. */
static int units_of(nmt_text *t, bool target, const char *line, size_t len,
                    const char *name) {
  if (words_of(t, line, len, name) < 0)
    return -1;
  if (!t->bpe[target])
    return split_units(t, t->line.data, t->line.len);
  app_buf_clear(&t->segmented);
  return app_bpe_apply_line(t->bpe[target], t->line.data, t->line.len, false,
                            &t->segmented) < 0 ||
                 app_buf_append(&t->segmented, "", 0) < 0
             ? -1
             : split_units(t, t->segmented.data, t->segmented.len);
}

/* ---- learning ---- */

typedef enum { WORDS, UNITS } counting;

/* Counts one side's file: its word lines (what BPE learns from) or its
 * units (what the vocabulary is built from). */
static int count_file(nmt_text *t, bool target, const char *path, counting what,
                      app_word_counts *c) {
  app_line_reader rd;
  if (app_line_reader_open(&rd, path, APP_LINES_LF, 0) < 0)
    return -1;
  const char *line;
  size_t len;
  int rc;
  while ((rc = app_line_reader_next(&rd, &line, &len, NULL)) > 0) {
    if (what == WORDS) {
      rc = words_of(t, line, len, rd.name) < 0 ||
                   app_word_counts_add_line(c, t->line.data, t->line.len) < 0
               ? -1
               : 0;
    } else {
      rc = units_of(t, target, line, len, rd.name);
      for (int64_t i = 0; rc == 0 && i < t->units.n; i++)
        rc = app_word_counts_add(c, app_token(&t->units, i),
                                 app_token_len(&t->units, i), 1);
    }
    if (rc < 0)
      break;
  }
  app_line_reader_close(&rd);
  return rc;
}

/* BPE codes for side s (or both when joint) learned from the files. */
static int learn_codes(nmt_text *t, const char *const *paths, int s) {
  app_word_counts wc = {0};
  int rc = 0;
  for (int f = 0; rc == 0 && f < 2; f++)
    if (f == s || t->o.joint)
      rc = count_file(t, f, paths[f], WORDS, &wc);
  app_bpe_learn_opts lo = {.symbols = t->o.bpe_merges, .min_frequency = 2};
  if (rc == 0)
    rc = app_bpe_learn(&wc, &lo, &t->codes[s]);
  app_word_counts_free(&wc);
  if (rc == 0 && !(t->bpe[s] = app_bpe_new(&t->codes[s], NULL)))
    rc = -1;
  return rc;
}

nmt_text *nmt_text_learn(const nmt_text_opts *o, const char *src_path,
                         const char *tgt_path) {
  nmt_text *t = calloc(1, sizeof *t);
  if (!t) {
    fprintf(stderr, "translate: out of memory\n");
    return NULL;
  }
  t->o = *o;
  const char *const paths[2] = {src_path, tgt_path};
  int rc = 0;
  for (int s = 0; rc == 0 && s < 2 && o->bpe_merges > 0; s++) {
    if (o->joint && s == 1) /* the same merges for both sides */
      rc = (t->bpe[1] = app_bpe_new(&t->codes[0], NULL)) ? 0 : -1;
    else
      rc = learn_codes(t, paths, s);
  }
  app_word_counts c[2] = {0};
  for (int s = 0; rc == 0 && s < 2; s++)
    rc = count_file(t, s, paths[s], UNITS, &c[o->joint ? 0 : s]);
  for (int s = 0; rc == 0 && s < 2; s++)
    rc = app_vocab_build(&t->vocab[s], &c[o->joint ? 0 : s], o->min_count);
  app_word_counts_free(&c[0]);
  app_word_counts_free(&c[1]);
  if (rc < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    loom_clear_error();
    nmt_text_free(t);
    return NULL;
  }
  return t;
}

/* ---- beside the model, and in its checkpoint ---- */

static const char *const side_name[2] = {"src", "tgt"};

/* The merges side s segments with: a joint pipeline learns one set, kept
 * in t->codes[0] for both sides (t->codes[1] stays empty). */
static const app_bpe_codes *codes_of(const nmt_text *t, int s) {
  return &t->codes[t->o.joint ? 0 : s];
}

/* What a function writing to a FILE writes, as bytes (malloc'd). */
static char *to_bytes(int (*write)(const void *, FILE *), const void *what,
                      size_t *len) {
  char *data = NULL;
  FILE *f = open_memstream(&data, len);
  if (!f || write(what, f) < 0) {
    if (f)
      fclose(f);
    free(data);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return NULL;
  }
  if (fclose(f) != 0) {
    free(data);
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return NULL;
  }
  return data;
}

static int write_vocab(const void *v, FILE *f) {
  const app_vocab *voc = v;
  for (int64_t i = 0; i < app_vocab_size(voc); i++)
    if (fprintf(f, "%s\n", app_vocab_token(voc, i)) < 0)
      return -1;
  return 0;
}

static int write_codes(const void *c, FILE *f) {
  return app_bpe_codes_write(c, f);
}

int nmt_text_write_files(const nmt_text *t, const char *prefix) {
  for (int s = 0; s < 2; s++) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s.%s.vocab", prefix, side_name[s]) >=
            (int)sizeof path ||
        app_vocab_save(&t->vocab[s], path) < 0)
      goto fail;
    if (!t->bpe[s])
      continue;
    loom_file_writer *w = NULL;
    if (snprintf(path, sizeof path, "%s.%s.bpe", prefix, side_name[s]) >=
            (int)sizeof path ||
        !(w = loom_file_writer_open(path)))
      goto fail;
    if (app_bpe_codes_write(codes_of(t, s), loom_file_writer_stream(w)) < 0) {
      loom_file_writer_abort(w);
      loom_set_error(LOOM_ERR_IO, "%s: cannot write", path);
      goto fail;
    }
    if (loom_file_writer_commit(w) < 0)
      goto fail;
  }
  return 0;
fail:
  if (loom_last_status() == LOOM_OK)
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: the path is too long", prefix);
  fprintf(stderr, "translate: %s\n", loom_last_error());
  loom_clear_error();
  return -1;
}

/* Puts bytes into the map as a uint8 vector `name`. */
static int put_bytes(loom_tensor_map *m, const char *name, const char *data,
                     size_t len) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *b =
      loom_from_array(LOOM_U8, len ? data : "", LOOM_SHAPE((int64_t)len));
  int rc = b ? loom_tensor_map_set(m, name, b) : -1;
  loom_scope_end(s);
  return rc;
}

int nmt_text_save(const nmt_text *t, loom_tensor_map *extra) {
  char merges[32], min_count[32];
  snprintf(merges, sizeof merges, "%lld", (long long)t->o.bpe_merges);
  snprintf(min_count, sizeof min_count, "%lld", (long long)t->o.min_count);
  if (loom_tensor_map_set_meta(extra, "text.tokenize", t->o.tokenize) < 0 ||
      loom_tensor_map_set_meta(extra, "text.bpe_merges", merges) < 0 ||
      loom_tensor_map_set_meta(extra, "text.min_count", min_count) < 0 ||
      loom_tensor_map_set_meta(extra, "text.joint", t->o.joint ? "1" : "0") < 0)
    return -1;
  for (int s = 0; s < 2; s++) {
    char name[32];
    size_t len;
    char *v = to_bytes(write_vocab, &t->vocab[s], &len);
    snprintf(name, sizeof name, "text.vocab.%s", side_name[s]);
    int rc = v ? put_bytes(extra, name, v, len) : -1;
    free(v);
    if (rc == 0 && t->bpe[s]) {
      char *c = to_bytes(write_codes, codes_of(t, s), &len);
      snprintf(name, sizeof name, "text.bpe.%s", side_name[s]);
      rc = c ? put_bytes(extra, name, c, len) : -1;
      free(c);
      /* as many as were learned: fewer than asked when pairs ran out */
      char learned[32];
      snprintf(name, sizeof name, "text.bpe_learned.%s", side_name[s]);
      snprintf(learned, sizeof learned, "%lld",
               (long long)codes_of(t, s)->merges.n);
      if (rc == 0)
        rc = loom_tensor_map_set_meta(extra, name, learned);
    }
    if (rc < 0)
      return -1;
  }
  return 0;
}

/* The bytes of a uint8 vector `name` of the checkpoint, or NULL. */
static const char *bytes_of(const loom_tensor_map *m, const char *name,
                            size_t *len) {
  loom_tensor *t = loom_tensor_map_get(m, name);
  if (!t || loom_dtype_of(t) != LOOM_U8 || loom_ndim(t) != 1)
    return NULL;
  *len = (size_t)loom_numel(t);
  return *len ? (const char *)loom_data_u8(t) : "";
}

/* Whether side s's codes, as read from a checkpoint, are the ones
 * training learned: what it writes ("#version: 0.2" and the merges), no
 * more merges than text.bpe_merges asked for (none without BPE), and as
 * many as text.bpe_learned.SIDE records (subword-nmt stops early when no
 * pair is frequent enough; files from before it was recorded lack it).
 * Other codes segment the input otherwise than the model was trained on.
 * 0, or -1 with an error naming the checkpoint and the counts. */
static int check_codes(const nmt_text *t, const loom_tensor_map *extra, int s,
                       const char *source) {
  const app_bpe_codes *c = &t->codes[s];
  long long n = (long long)c->merges.n, asked = (long long)t->o.bpe_merges;
  const char *side = side_name[s];
  char key[64];
  snprintf(key, sizeof key, "text.bpe_learned.%s", side);
  const char *v = loom_tensor_map_meta(extra, key);
  char *end = NULL;
  long long learned = v ? strtoll(v, &end, 10) : -1;
  if (v && (!*v || *end || learned < 0 || learned > asked)) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: %s '%.40s' is not a count of merges in 0..%lld "
                   "(text.bpe_merges)",
                   source, key, v, asked);
    return -1;
  }
  if (asked == 0) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: text.bpe.%s holds %lld merges, but text.bpe_merges "
                   "is 0 (no BPE)",
                   source, side, n);
    return -1;
  }
  if (c->version != 2) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: text.bpe.%s (%lld merges, text.bpe_merges %lld) "
                   "lacks the '#version: 0.2' line training writes",
                   source, side, n, asked);
    return -1;
  }
  if (n > asked) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: text.bpe.%s holds %lld merges, more than "
                   "text.bpe_merges %lld",
                   source, side, n, asked);
    return -1;
  }
  if (v && n != learned) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: text.bpe.%s holds %lld merges, but %s says %lld were "
                   "learned (text.bpe_merges %lld)",
                   source, side, n, key, learned, asked);
    return -1;
  }
  return 0;
}

/* The settings and side s's vocabulary and codes from a checkpoint. */
static int load_side(nmt_text *t, const loom_tensor_map *extra, int s,
                     const char *source) {
  char name[64], where[4200];
  size_t len;
  snprintf(name, sizeof name, "text.vocab.%s", side_name[s]);
  snprintf(where, sizeof where, "%s (%s)", source, name);
  const char *v = bytes_of(extra, name, &len);
  if (!v || app_vocab_parse(&t->vocab[s], v, len, where) < 0) {
    if (!v)
      loom_set_error(LOOM_ERR_FORMAT, "%s: no %s", source, name);
    return -1;
  }
  /* a joint pipeline's target segments with the source's merges, as
   * learned (files written before its text.bpe.tgt held them have an
   * empty one) */
  if (s == 1 && t->o.joint)
    return t->bpe[0] && !(t->bpe[1] = app_bpe_new(&t->codes[0], NULL)) ? -1 : 0;
  snprintf(name, sizeof name, "text.bpe.%s", side_name[s]);
  snprintf(where, sizeof where, "%s (%s)", source, name);
  const char *c = bytes_of(extra, name, &len);
  if (!c && t->o.bpe_merges > 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: no %s", source, name);
    return -1;
  }
  if (c && (app_bpe_codes_parse(&t->codes[s], c, len, where, -1) < 0 ||
            check_codes(t, extra, s, source) < 0 ||
            !(t->bpe[s] = app_bpe_new(&t->codes[s], NULL))))
    return -1;
  return 0;
}

nmt_text *nmt_text_load(const loom_tensor_map *extra, const char *source) {
  nmt_text *t = calloc(1, sizeof *t);
  if (!t) {
    fprintf(stderr, "translate: out of memory\n");
    return NULL;
  }
  const char *tok = loom_tensor_map_meta(extra, "text.tokenize");
  const char *merges = loom_tensor_map_meta(extra, "text.bpe_merges");
  const char *min = loom_tensor_map_meta(extra, "text.min_count");
  const char *joint = loom_tensor_map_meta(extra, "text.joint");
  int rc = tok && (!strcmp(tok, "lower") || !strcmp(tok, "reversible")) &&
                   merges && min && joint &&
                   (!strcmp(joint, "0") || !strcmp(joint, "1")) &&
                   app_parse_int("translate", "text.bpe_merges", merges, 0,
                                 1000000, &t->o.bpe_merges) == 0 &&
                   app_parse_int("translate", "text.min_count", min, 1,
                                 INT64_MAX / 4, &t->o.min_count) == 0
               ? 0
               : -1;
  if (rc < 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: no valid text pipeline settings",
                   source);
  } else {
    snprintf(t->o.tokenize, sizeof t->o.tokenize, "%s", tok);
    t->o.joint = joint[0] == '1';
  }
  for (int s = 0; rc == 0 && s < 2; s++)
    rc = load_side(t, extra, s, source);
  if (rc < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    loom_clear_error();
    nmt_text_free(t);
    return NULL;
  }
  return t;
}

/* ---- encoding and decoding ---- */

int nmt_text_encode(const nmt_text *tc, bool target, const char *line,
                    size_t len, const char *name, int32_t **ids, int64_t *n,
                    int64_t *cap) {
  nmt_text *t = (nmt_text *)tc; /* its scratch buffers only */
  if (units_of(t, target, line, len, name) < 0)
    return -1;
  int64_t need = *n + t->units.n + 1;
  if (need > *cap) {
    int64_t c = *cap ? *cap : 64;
    while (c < need)
      c *= 2;
    int32_t *g = realloc(*ids, (size_t)c * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
      return -1;
    }
    *ids = g;
    *cap = c;
  }
  for (int64_t i = 0; i < t->units.n; i++)
    (*ids)[(*n)++] =
        (int32_t)app_vocab_id(&t->vocab[target], app_token(&t->units, i),
                              app_token_len(&t->units, i));
  if (!target)
    (*ids)[(*n)++] = NMT_EOS;
  return 0;
}

int nmt_text_units(const nmt_text *t, bool target, const int64_t *ids,
                   int64_t n, app_tokens *out) {
  const app_vocab *v = &t->vocab[target];
  for (int64_t i = 0; i < n; i++) {
    int64_t id = ids[i] >= 0 && ids[i] < app_vocab_size(v) ? ids[i] : NMT_UNK;
    const char *u = app_vocab_token(v, id);
    if (app_tokens_push(out, u, strlen(u), false) < 0)
      return -1;
  }
  return 0;
}

int nmt_text_decode(const nmt_text *tc, const int64_t *ids, int64_t n,
                    app_buf *out) {
  nmt_text *t = (nmt_text *)tc;
  app_tokens_clear(&t->units);
  app_buf_clear(&t->line);
  app_buf_clear(&t->segmented);
  if (nmt_text_units(t, true, ids, n, &t->units) < 0 ||
      app_tokens_join_marked(&t->units, &t->line) < 0 ||
      app_buf_append(&t->line, "", 0) < 0)
    return -1;
  app_buf *words = &t->line;
  if (t->bpe[1]) {
    if (app_bpe_undo_line(t->line.data, t->line.len, NULL, &t->segmented) < 0 ||
        app_buf_append(&t->segmented, "", 0) < 0)
      return -1;
    words = &t->segmented;
  }
  if (lowercased(t))
    return app_buf_append(out, words->data, words->len);
  app_tokens_clear(&t->tokens);
  return app_tokens_split_marked(words->data, words->len, &t->tokens,
                                 "a translation") < 0 ||
                 app_detokenize(&t->tokens, out) < 0
             ? -1
             : 0;
}

/* ---- corpora ---- */

int nmt_text_read_corpus(const nmt_text *tc, const char *src_path,
                         const char *tgt_path, bool skip_empty, nmt_corpus *c,
                         int64_t *skipped) {
  nmt_text *t = (nmt_text *)tc;
  app_line_reader rd[2];
  const char *paths[2] = {src_path, tgt_path};
  int sides = tgt_path ? 2 : 1, open = 0;
  while (open < sides &&
         app_line_reader_open(&rd[open], paths[open], APP_LINES_LF, 0) == 0)
    open++;
  int32_t *ids[2] = {NULL, NULL};
  int64_t n[2] = {0, 0}, cap[2] = {0, 0}, skip = 0;
  int rc = open == sides ? 0 : -1;
  c->targets = tgt_path != NULL;
  while (rc == 0) {
    const char *line[2];
    size_t len[2];
    int got[2] = {0, 0};
    for (int s = 0; s < sides; s++)
      got[s] = app_line_reader_next(&rd[s], &line[s], &len[s], NULL);
    if (got[0] < 0 || got[1] < 0) {
      rc = -1;
    } else if (sides == 2 && got[0] != got[1]) { /* count the rest out */
      int longer = got[0] ? 0 : 1;
      while (app_line_reader_next(&rd[longer], &line[0], &len[0], NULL) > 0)
        ;
      loom_clear_error();
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s has %lld lines but %s has %lld: a parallel corpus "
                     "needs one line per pair",
                     src_path, (long long)rd[0].line_no, tgt_path,
                     (long long)rd[1].line_no);
      rc = -1;
    }
    if (rc < 0 || !got[0])
      break;
    n[0] = n[1] = 0;
    for (int s = 0; rc == 0 && s < sides; s++)
      rc = nmt_text_encode(t, s, line[s], len[s], rd[s].name, &ids[s], &n[s],
                           &cap[s]);
    if (rc == 0 && skip_empty && (n[0] <= 1 || (sides == 2 && n[1] == 0)))
      skip++; /* eos alone, or no target */
    else if (rc == 0)
      rc = nmt_corpus_add(c, ids[0], n[0], ids[1], n[1], rd[0].line_no);
  }
  for (int s = 0; s < open; s++)
    app_line_reader_close(&rd[s]);
  free(ids[0]);
  free(ids[1]);
  if (skipped)
    *skipped = skip;
  if (rc < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    loom_clear_error();
  }
  return rc;
}
