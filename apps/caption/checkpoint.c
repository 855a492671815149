/* What a caption checkpoint holds beside the library's part (model,
 * optimizer, schedule, step, generator), under "extra.":
 *
 *   caption.model     metadata "side=64 cnn=32,64,128,256 vocab=.. embed=..
 *                     hidden=.. image=first attention=0 positions=0
 *                     attend=before dropout=0.5" (positions and attend
 *                     absent in older files: 0, before)
 *   caption.data.*    metadata: where the data came from (source=shapes
 *                     and the scenes' options, or the Flickr8k files), the
 *                     tokeniser, the vocabulary's minimum count
 *   norm              float64 (2, 3): the pixels' mean and std per channel
 *   position          int64 (3): epoch, group in the epoch's order,
 *                     groups (of a step's captions of one image)
 *   order             int64 (groups): the epoch's order
 *   smooth            float64 scalar: the smoothed training loss
 *   history.train     float64 (2, n): step and smoothed training loss
 *   history.dev       float64 (6, n): step, BLEU-1..4 and exact-match % on
 *                     the dev split
 * and beside it, FILE.vocab: the vocabulary (app_vocab_save's format).
 *
 * A checkpoint is input like any other: everything read is checked (dtype,
 * shape, range) before use, and a refusal says which entry and why. */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const image_modes[CAP_IMAGE_MODES] = {"first", "init",
                                                         "every"};

const char *cap_image_mode_name(int mode) {
  return mode >= 0 && mode < CAP_IMAGE_MODES ? image_modes[mode] : "?";
}

int cap_image_mode_parse(const char *name) {
  for (int k = 0; k < CAP_IMAGE_MODES; k++)
    if (!strcmp(name, image_modes[k]))
      return k;
  return -1;
}

/* ---- history ---- */

int cap_history_add(cap_history *h, bool dev, const double *row) {
  int64_t width = dev ? CAP_DEV_COLUMNS : 2;
  double **rows = dev ? &h->dev : &h->train;
  int64_t *n = dev ? &h->n_dev : &h->n_train,
          *cap = dev ? &h->cap_dev : &h->cap_train;
  if (*n == *cap) {
    int64_t c = *cap ? 2 * *cap : 256;
    double *g = realloc(*rows, (size_t)(c * width) * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "out of memory for the history");
      return -1;
    }
    *rows = g;
    *cap = c;
  }
  memcpy(*rows + *n * width, row, (size_t)width * sizeof *row);
  (*n)++;
  return 0;
}

void cap_history_free(cap_history *h) {
  free(h->train);
  free(h->dev);
  *h = (cap_history){0};
}

/* ---- writing ---- */

int cap_config_text(const cap_config *c, char *buf, size_t size) {
  char cnn[CAP_MAX_BLOCKS * 12] = "";
  for (int i = 0; i < c->blocks; i++) {
    size_t at = strlen(cnn);
    snprintf(cnn + at, sizeof cnn - at, "%s%lld", i ? "," : "",
             (long long)c->channels[i]);
  }
  int n = snprintf(buf, size,
                   "side=%lld cnn=%s vocab=%lld embed=%lld hidden=%lld "
                   "image=%s attention=%lld positions=%d attend=%s "
                   "dropout=%.17g",
                   (long long)c->side, cnn, (long long)c->vocab,
                   (long long)c->embed, (long long)c->hidden,
                   cap_image_mode_name(c->image_mode), (long long)c->attention,
                   (int)c->positions, c->attend_after ? "after" : "before",
                   c->dropout);
  return n > 0 && (size_t)n < size ? 0 : -1;
}

/* A (rows, n) float64 tensor of a history's rows (stored n x rows). */
static loom_tensor *curves(const double *rows, int64_t n, int64_t width) {
  loom_tensor *t = loom_from_array(LOOM_F64, rows, LOOM_SHAPE(n, width));
  return loom_contiguous(loom_transpose(t, 0, 1));
}

static int meta_int(loom_tensor_map *m, const char *key, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  return loom_tensor_map_set_meta(m, key, buf);
}

static int meta_real(loom_tensor_map *m, const char *key, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  return loom_tensor_map_set_meta(m, key, buf);
}

static int data_write(const cap_source *d, loom_tensor_map *m) {
  int rc = loom_tensor_map_set_meta(m, "caption.data.source",
                                    d->scenes ? "shapes" : "flickr");
  rc |= meta_int(m, "caption.data.side", d->side);
  rc |= loom_tensor_map_set_meta(m, "caption.data.tokens",
                                 cap_tokenizer_name(d->tokenizer));
  rc |= meta_int(m, "caption.data.min_count", d->min_count);
  rc |= meta_int(m, "caption.data.max_words", d->max_words);
  if (d->scenes) {
    const cap_scene_opts *s = &d->scene;
    rc |= meta_int(m, "caption.data.train", s->n[CAP_TRAIN]);
    rc |= meta_int(m, "caption.data.dev", s->n[CAP_DEV]);
    rc |= meta_int(m, "caption.data.test", s->n[CAP_TEST]);
    rc |= meta_int(m, "caption.data.objects", s->max_objects);
    rc |= meta_int(m, "caption.data.colours", s->colours);
    rc |= meta_real(m, "caption.data.holdout", s->holdout);
    rc |= meta_int(m, "caption.data.seed", (int64_t)s->seed);
    return rc;
  }
  const cap_flickr_source *f = &d->flickr;
  const struct {
    const char *key, *value;
  } paths[] = {{"caption.data.dir", f->dir},
               {"caption.data.captions", f->captions},
               {"caption.data.table", f->table},
               {"caption.data.train_list", f->lists[0]},
               {"caption.data.dev_list", f->lists[1]},
               {"caption.data.test_list", f->lists[2]}};
  for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
    if (paths[k].value)
      rc |= loom_tensor_map_set_meta(m, paths[k].key, paths[k].value);
  for (int k = 0; k < f->n_images; k++) {
    char key[48];
    snprintf(key, sizeof key, "caption.data.images.%d", k);
    rc |= loom_tensor_map_set_meta(m, key, f->images[k]);
  }
  rc |= meta_int(m, "caption.data.arrays", f->arrays);
  return rc;
}

int cap_checkpoint_save(const char *path, const cap_session *s, cap_model *m,
                        loom_optimizer *opt, loom_schedule *sched,
                        int64_t step) {
  loom_tensor_map *extra = loom_tensor_map_new();
  if (!extra)
    return -1;
  loom_scope *scope = loom_scope_begin();
  char text[512];
  int rc = cap_config_text(&m->cfg, text, sizeof text);
  rc |= loom_tensor_map_set_meta(extra, "caption.model", text);
  rc |= data_write(&s->source, extra);
  double norm[6];
  for (int c = 0; c < 3; c++) {
    norm[c] = s->norm.mean[c];
    norm[3 + c] = s->norm.std[c];
  }
  rc |= loom_tensor_map_set(extra, "norm",
                            loom_from_array(LOOM_F64, norm, LOOM_SHAPE(2, 3)));
  int64_t pos[3] = {s->epoch, s->position, s->n_order};
  rc |= loom_tensor_map_set(extra, "position",
                            loom_from_array(LOOM_I64, pos, LOOM_SHAPE(3)));
  rc |= loom_tensor_map_set(extra, "smooth",
                            loom_from_array(LOOM_F64, &s->smooth, 0, NULL));
  if (s->n_order)
    rc |= loom_tensor_map_set(
        extra, "order",
        loom_from_array(LOOM_I64, s->order, LOOM_SHAPE(s->n_order)));
  if (s->history.n_train)
    rc |= loom_tensor_map_set(extra, "history.train",
                              curves(s->history.train, s->history.n_train, 2));
  if (s->history.n_dev)
    rc |= loom_tensor_map_set(
        extra, "history.dev",
        curves(s->history.dev, s->history.n_dev, CAP_DEV_COLUMNS));
  char vocab[4096];
  if (snprintf(vocab, sizeof vocab, "%s.vocab", path) >= (int)sizeof vocab) {
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: path too long", path);
    rc = -1;
  }
  if (rc == 0)
    rc = app_vocab_save(&s->vocab, vocab);
  if (rc == 0)
    rc = loom_checkpoint_save(path, &m->base, opt, sched, step, m->rng, extra);
  loom_scope_end(scope);
  loom_tensor_map_free(extra);
  return rc ? -1 : 0;
}

/* ---- reading ---- */

static bool whole(const char *text, bool real, double *out) {
  char *end;
  errno = 0;
  *out = real ? strtod(text, &end) : (double)strtoll(text, &end, 10);
  return text && end != text && !*end && !errno && isfinite(*out);
}

/* The value of key=VALUE in a config line, copied to buf: 1, or 0 if the
 * key is absent, or -1 with an error naming the key if the value does not
 * fit. A value too long for buf is a malformed file, never an absent key:
 * an optional field would otherwise take its default without a word. */
static int field(const char *line, const char *key, char *buf, size_t size) {
  size_t klen = strlen(key);
  for (const char *p = line; p && *p;) {
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
      size_t vlen = len - klen - 1;
      if (vlen >= size) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "caption.model '%.200s': %s is %zu characters long, "
                       "more than the %zu it may have",
                       line, key, vlen, size - 1);
        return -1;
      }
      memcpy(buf, p + klen + 1, vlen);
      buf[vlen] = 0;
      return 1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* An integer field in lo..hi into *out; -1 with an error naming it. An
 * optional field that is absent leaves *out as it is. */
static int int_field(const char *line, const char *key, bool required,
                     int64_t lo, int64_t hi, int64_t *out) {
  char buf[64], range[80];
  double v;
  int got = field(line, key, buf, sizeof buf);
  if (got < 0)
    return -1;
  if (!got && !required)
    return 0;
  if (!got || !whole(buf, false, &v) || v < (double)lo || v > (double)hi) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.model '%.200s': %s is not an integer in %s", line,
                   key, app_int_range_text(lo, hi, range, sizeof range));
    return -1;
  }
  *out = (int64_t)v;
  return 0;
}

int cap_config_parse(const char *line, cap_config *c) {
  *c = (cap_config){0};
  if (!line) {
    loom_set_error(LOOM_ERR_FORMAT, "not a caption checkpoint (no "
                                    "caption.model)");
    return -1;
  }
  char cnn[256], mode[64], attend[64], dropout_text[64];
  double dropout;
  /* positions and attend are absent in checkpoints written before the
   * options existed: 0 and before */
  int64_t positions = 0;
  int has_cnn = 0, has_attend = 0, has_mode = 0, has_dropout = 0;
  if (int_field(line, "side", true, 4, CAP_MAX_INPUT_SIDE, &c->side) < 0 ||
      int_field(line, "vocab", true, APP_SPECIALS, CAP_MAX_VOCAB, &c->vocab) <
          0 ||
      int_field(line, "embed", true, 1, CAP_MAX_WIDTH, &c->embed) < 0 ||
      int_field(line, "hidden", true, 1, CAP_MAX_WIDTH, &c->hidden) < 0 ||
      int_field(line, "attention", true, 0, CAP_MAX_WIDTH, &c->attention) < 0 ||
      int_field(line, "positions", false, 0, 1, &positions) < 0 ||
      (has_cnn = field(line, "cnn", cnn, sizeof cnn)) < 0 ||
      (has_attend = field(line, "attend", attend, sizeof attend)) < 0 ||
      (has_mode = field(line, "image", mode, sizeof mode)) < 0 ||
      (has_dropout =
           field(line, "dropout", dropout_text, sizeof dropout_text)) < 0)
    return -1;
  c->positions = positions;
  if (has_attend && strcmp(attend, "before") && strcmp(attend, "after")) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.model '%.200s': attend is not before or after",
                   line);
    return -1;
  }
  c->attend_after = has_attend && !strcmp(attend, "after");
  if (!has_cnn || cap_channels_parse(cnn, c) < 0) {
    loom_clear_error();
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.model '%.200s': cnn is not 1 to %d channel "
                   "counts",
                   line, CAP_MAX_BLOCKS);
    return -1;
  }
  c->image_mode = has_mode ? cap_image_mode_parse(mode) : -1;
  if (c->image_mode < 0 || !has_dropout ||
      !whole(dropout_text, true, &dropout) || !(dropout >= 0 && dropout < 1)) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.model '%.200s': image is not first, init or "
                   "every, or dropout not in [0, 1)",
                   line);
    return -1;
  }
  c->dropout = dropout;
  if (cap_config_check(c) < 0) {
    char why[400]; /* the reason, kept under the file's context */
    snprintf(why, sizeof why, "%s", loom_last_error());
    loom_clear_error();
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.model '%.200s' does not make a model: %s", line,
                   why);
    return -1;
  }
  return 0;
}

int cap_channels_parse(const char *text, cap_config *c) {
  c->blocks = 0;
  const char *p = text;
  while (*p) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 1 || v > CAP_MAX_WIDTH ||
        c->blocks == CAP_MAX_BLOCKS || (*end && *end != ',')) {
      loom_set_error(LOOM_ERR_ARGUMENT, "bad channel list '%s'", text);
      return -1;
    }
    c->channels[c->blocks++] = v;
    p = *end ? end + 1 : end;
  }
  if (c->blocks == 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "empty channel list");
    return -1;
  }
  return 0;
}

static const char *meta(const loom_tensor_map *m, const char *key) {
  return loom_tensor_map_meta(m, key);
}

static int meta_int_read(const loom_tensor_map *m, const char *key, int64_t lo,
                         int64_t hi, int64_t *out) {
  const char *s = meta(m, key);
  double v;
  char range[80];
  if (!s || !whole(s, false, &v) || v < (double)lo || v > (double)hi) {
    loom_set_error(LOOM_ERR_FORMAT, "%s '%s' is not an integer in %s", key,
                   s ? s : "(missing)",
                   app_int_range_text(lo, hi, range, sizeof range));
    return -1;
  }
  *out = (int64_t)v;
  return 0;
}

/* Copies a path from the checkpoint (owned by the session). */
static int keep_path(cap_source *d, const char *value, const char **out) {
  *out = NULL;
  if (!value)
    return 0;
  if (d->n_paths == CAP_MAX_SOURCES + 6) {
    loom_set_error(LOOM_ERR_FORMAT, "too many paths in caption.data");
    return -1;
  }
  char *copy = strdup(value);
  if (!copy) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return -1;
  }
  d->paths[d->n_paths++] = copy;
  *out = copy;
  return 0;
}

void cap_source_free(cap_source *d) {
  for (int k = 0; k < d->n_paths; k++)
    free(d->paths[k]);
  d->n_paths = 0;
}

static int data_read(cap_source *d, const loom_tensor_map *m) {
  *d = (cap_source){0};
  const char *source = meta(m, "caption.data.source");
  const char *tokens = meta(m, "caption.data.tokens");
  int64_t v;
  if (!source || (strcmp(source, "shapes") && strcmp(source, "flickr")) ||
      !tokens || (strcmp(tokens, "alnum") && strcmp(tokens, "words"))) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.data.source is not shapes or flickr, or "
                   "caption.data.tokens not alnum or words");
    return -1;
  }
  d->scenes = !strcmp(source, "shapes");
  d->tokenizer = strcmp(tokens, "words") ? CAP_TOKENS_ALNUM : CAP_TOKENS_WORDS;
  if (meta_int_read(m, "caption.data.side", 4, CAP_MAX_INPUT_SIDE, &d->side) <
          0 ||
      meta_int_read(m, "caption.data.min_count", 1, CAP_MAX_COUNT,
                    &d->min_count) < 0 ||
      meta_int_read(m, "caption.data.max_words", 1, CAP_MAX_WORDS,
                    &d->max_words) < 0)
    return -1;
  if (d->scenes) {
    cap_scene_opts *s = &d->scene;
    const char *keys[3] = {"caption.data.train", "caption.data.dev",
                           "caption.data.test"};
    for (int k = 0; k < 3; k++)
      if (meta_int_read(m, keys[k], k == CAP_TRAIN, CAP_MAX_IMAGES, &s->n[k]) <
          0)
        return -1;
    if (meta_int_read(m, "caption.data.objects", 1, CAP_SCENE_MAX_OBJECTS, &v) <
        0)
      return -1;
    s->max_objects = (int)v;
    if (meta_int_read(m, "caption.data.colours", 2, CAP_SCENE_COLOURS, &v) < 0)
      return -1;
    s->colours = (int)v;
    if (meta_int_read(m, "caption.data.seed", 0, INT64_MAX, &v) < 0)
      return -1;
    s->seed = (uint64_t)v;
    double h;
    const char *ht = meta(m, "caption.data.holdout");
    if (!ht || !whole(ht, true, &h) || !(h >= 0 && h < 1)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "caption.data.holdout is not a number in [0, 1)");
      return -1;
    }
    s->holdout = h;
    s->side = (int)d->side;
    return 0;
  }
  cap_flickr_source *f = &d->flickr;
  if (keep_path(d, meta(m, "caption.data.dir"), &f->dir) < 0 ||
      keep_path(d, meta(m, "caption.data.captions"), &f->captions) < 0 ||
      keep_path(d, meta(m, "caption.data.table"), &f->table) < 0 ||
      keep_path(d, meta(m, "caption.data.train_list"), &f->lists[0]) < 0 ||
      keep_path(d, meta(m, "caption.data.dev_list"), &f->lists[1]) < 0 ||
      keep_path(d, meta(m, "caption.data.test_list"), &f->lists[2]) < 0)
    return -1;
  for (int k = 0; k < CAP_MAX_SOURCES; k++) {
    char key[48];
    snprintf(key, sizeof key, "caption.data.images.%d", k);
    const char *p = meta(m, key);
    if (!p)
      break;
    if (keep_path(d, p, &f->images[f->n_images]) < 0)
      return -1;
    f->n_images++;
  }
  if (meta_int_read(m, "caption.data.arrays", 0, 1, &v) < 0)
    return -1;
  f->arrays = v;
  return 0;
}

/* The tensor `name` if it is `dtype` with `ndim` dims; NULL, with an error
 * if it is present but of another kind or absent when required. */
static loom_tensor *entry(const loom_tensor_map *extra, const char *name,
                          loom_dtype dtype, int ndim, bool required) {
  loom_tensor *t = loom_tensor_map_get(extra, name);
  if ((!t && required) ||
      (t && (loom_dtype_of(t) != dtype || loom_ndim(t) != ndim))) {
    loom_set_error(LOOM_ERR_FORMAT, "extra.%s is %s, not %s with %d dims", name,
                   t ? loom_dtype_name(loom_dtype_of(t)) : "missing",
                   loom_dtype_name(dtype), ndim);
    return NULL;
  }
  return t;
}

static int norm_read(cap_session *s, const loom_tensor_map *extra) {
  loom_tensor *t = entry(extra, "norm", LOOM_F64, 2, true);
  if (!t)
    return -1;
  const double *v = loom_data_f64(t);
  bool ok = loom_size(t, 0) == 2 && loom_size(t, 1) == 3;
  for (int c = 0; ok && c < 3; c++) {
    ok = v[c] >= 0 && v[c] <= 1 && v[3 + c] > 1e-6 && v[3 + c] <= 1;
    s->norm.mean[c] = v[c];
    s->norm.std[c] = v[3 + c];
  }
  if (!ok) {
    loom_set_error(LOOM_ERR_FORMAT, "extra.norm is not (2, 3) means in [0, 1] "
                                    "and deviations in (1e-6, 1]");
    return -1;
  }
  return 0;
}

static int position_read(cap_session *s, const loom_tensor_map *extra) {
  loom_tensor *t = entry(extra, "position", LOOM_I64, 1, false);
  if (!t)
    return loom_last_status() ? -1 : 0;
  const int64_t *p = loom_data_i64(t);
  if (loom_numel(t) != 3 || p[0] < 0 || p[0] > CAP_MAX_COUNT || p[2] < 0 ||
      p[2] > (int64_t)CAP_MAX_IMAGES * 1000 || p[1] < 0 || p[1] > p[2]) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "extra.position is not an epoch, a pair within the "
                   "epoch's order and the pairs");
    return -1;
  }
  s->epoch = p[0];
  s->position = p[1];
  s->n_order = p[2];
  loom_tensor *o = entry(extra, "order", LOOM_I64, 1, s->n_order > 0);
  if (s->n_order && !o)
    return -1;
  if (!s->n_order)
    return 0;
  if (loom_numel(o) != s->n_order) {
    loom_set_error(LOOM_ERR_FORMAT, "extra.order holds %lld pairs, not %lld",
                   (long long)loom_numel(o), (long long)s->n_order);
    return -1;
  }
  s->order = malloc((size_t)s->n_order * sizeof *s->order);
  bool *seen = calloc((size_t)s->n_order, 1);
  const int64_t *v = loom_data_i64(o);
  int rc = s->order && seen ? 0 : -1;
  for (int64_t i = 0; rc == 0 && i < s->n_order; i++) {
    if (v[i] < 0 || v[i] >= s->n_order || seen[v[i]]) {
      loom_set_error(LOOM_ERR_FORMAT, "extra.order is not a permutation");
      rc = -1;
      break;
    }
    seen[v[i]] = true;
    s->order[i] = v[i];
  }
  if (!s->order || !seen)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  free(seen);
  return rc;
}

static int smooth_read(cap_session *s, const loom_tensor_map *extra) {
  s->smooth = NAN;
  loom_tensor *t = entry(extra, "smooth", LOOM_F64, 0, false);
  if (!t)
    return loom_last_status() ? -1 : 0;
  double v = loom_data_f64(t)[0];
  if (!(v >= 0 && v < 1e6) && !isnan(v)) {
    loom_set_error(LOOM_ERR_FORMAT, "extra.smooth %g is not a loss", v);
    return -1;
  }
  s->smooth = v;
  return 0;
}

static int history_read(cap_session *s, const loom_tensor_map *extra) {
  const char *names[2] = {"history.train", "history.dev"};
  for (int k = 0; k < 2; k++) {
    int64_t width = k ? CAP_DEV_COLUMNS : 2;
    loom_tensor *t = entry(extra, names[k], LOOM_F64, 2, false);
    if (!t && loom_last_status())
      return -1;
    if (!t)
      continue;
    if (loom_size(t, 0) != width) {
      loom_set_error(LOOM_ERR_FORMAT, "extra.%s has %lld rows, not %lld",
                     names[k], (long long)loom_size(t, 0), (long long)width);
      return -1;
    }
    int64_t n = loom_size(t, 1);
    const double *v = loom_data_f64(t);
    for (int64_t i = 0; i < n; i++) {
      double row[CAP_DEV_COLUMNS];
      bool ok = v[i] >= 0 && v[i] <= 0x1p53 && v[i] == floor(v[i]);
      for (int64_t r = 0; r < width; r++) {
        row[r] = v[r * n + i];
        ok &= isfinite(row[r]);
      }
      if (ok && cap_history_add(&s->history, k == 1, row) < 0)
        return -1;
    }
  }
  return 0;
}

void cap_session_free(cap_session *s) {
  cap_source_free(&s->source);
  app_vocab_free(&s->vocab);
  cap_history_free(&s->history);
  free(s->order);
  *s = (cap_session){0};
}

int cap_session_read(cap_session *s, const char *path,
                     const loom_tensor_map *extra) {
  *s = (cap_session){0};
  char vocab[4096];
  int rc = snprintf(vocab, sizeof vocab, "%s.vocab", path) < (int)sizeof vocab
               ? 0
               : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: path too long", path);
  if (rc == 0)
    rc =
        cap_config_parse(loom_tensor_map_meta(extra, "caption.model"), &s->cfg);
  if (rc == 0)
    rc = data_read(&s->source, extra);
  /* training builds the model for its data's images; eval makes images of
   * the data's side for the model */
  if (rc == 0 && s->source.side != s->cfg.side) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "caption.data.side %lld is not the model's side %lld",
                   (long long)s->source.side, (long long)s->cfg.side);
    rc = -1;
  }
  if (rc == 0)
    rc = norm_read(s, extra);
  if (rc == 0)
    rc = position_read(s, extra);
  if (rc == 0)
    rc = history_read(s, extra);
  if (rc == 0)
    rc = smooth_read(s, extra);
  if (rc == 0)
    rc = app_vocab_load(&s->vocab, vocab);
  if (rc == 0 && app_vocab_size(&s->vocab) != s->cfg.vocab) {
    loom_set_error(
        LOOM_ERR_FORMAT, "%s holds %lld tokens, the model's vocabulary %lld",
        vocab, (long long)app_vocab_size(&s->vocab), (long long)s->cfg.vocab);
    rc = -1;
  }
  if (rc < 0)
    cap_session_free(s);
  return rc;
}

int cap_checkpoint_peek_file(const loom_tensor_map *file, const char *path,
                             cap_session *s) {
  loom_tensor_map *extra = NULL;
  int64_t step;
  int rc = loom_checkpoint_restore(file, path, NULL, NULL, NULL, &step, NULL,
                                   &extra);
  /* the library takes any step; a resumed run counts on from it (its
   * steps, schedule and history), and every load peeks first */
  if (rc == 0 && (step < 0 || step > CAP_MAX_COUNT)) {
    char range[80];
    loom_set_error(LOOM_ERR_FORMAT, "%s: step %lld is not in %s", path,
                   (long long)step,
                   app_int_range_text(0, CAP_MAX_COUNT, range, sizeof range));
    rc = -1;
  }
  if (rc == 0)
    rc = cap_session_read(s, path, extra);
  else
    *s = (cap_session){0};
  loom_tensor_map_free(extra);
  return rc;
}

int cap_checkpoint_peek(const char *path, cap_session *s) {
  loom_tensor_map *file = loom_safetensors_load(path);
  int rc = file ? cap_checkpoint_peek_file(file, path, s) : -1;
  if (!file)
    *s = (cap_session){0};
  loom_tensor_map_free(file);
  return rc;
}

int cap_checkpoint_load(const char *path, cap_session *s, cap_model **m,
                        loom_optimizer *opt, loom_schedule *sched,
                        int64_t *step) {
  *m = NULL;
  loom_tensor_map *file = loom_safetensors_load(path);
  if (!file || cap_checkpoint_peek_file(file, path, s) < 0) {
    if (!file)
      *s = (cap_session){0};
    loom_tensor_map_free(file);
    return -1;
  }
  *m = cap_model_new(&s->cfg, 1);
  int rc = *m ? loom_checkpoint_restore(file, path, &(*m)->base, opt, sched,
                                        step, (*m)->rng, NULL)
              : -1;
  loom_tensor_map_free(file);
  if (rc < 0) {
    cap_model_free(*m);
    *m = NULL;
    cap_session_free(s);
    return -1;
  }
  return 0;
}
