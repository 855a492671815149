/* What a training run keeps in its checkpoint beyond the model and Adam:
 * where it stands, the settings a resumed run must keep, the text pipeline
 * and the history of its losses and scores; and reading all of it back,
 * checked like the command line, before the model is made. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- history ---- */

/* Room for one more entry in arrays of *cap doubles (n of them used). */
static int reserve(double **const *arrays, int count, int64_t n, int64_t *cap) {
  if (n < *cap)
    return 0;
  int64_t c = *cap ? 2 * *cap : 64;
  for (int i = 0; i < count; i++) {
    double *g = realloc(*arrays[i], (size_t)c * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
      return -1;
    }
    *arrays[i] = g;
  }
  *cap = c;
  return 0;
}

int train_history_push(train_history *h, double step, double loss) {
  if (reserve((double **[]){&h->step, &h->loss}, 2, h->n, &h->cap) < 0)
    return -1;
  h->step[h->n] = step;
  h->loss[h->n++] = loss;
  return 0;
}

int train_history_push_val(train_history *h, double epoch, double loss,
                           double bleu) {
  if (reserve((double **[]){&h->epoch, &h->val_loss, &h->val_bleu}, 3, h->n_val,
              &h->cap_val) < 0)
    return -1;
  h->epoch[h->n_val] = epoch;
  h->val_loss[h->n_val] = loss;
  h->val_bleu[h->n_val++] = bleu;
  return 0;
}

void train_history_free(train_history *h) {
  free(h->step);
  free(h->loss);
  free(h->epoch);
  free(h->val_loss);
  free(h->val_bleu);
  *h = (train_history){0};
}

static const struct {
  const char *name;
  bool validation; /* one entry per validation, else per training point */
  size_t offset;
} series[] = {
    {"history.step", false, offsetof(train_history, step)},
    {"history.loss", false, offsetof(train_history, loss)},
    {"history.epoch", true, offsetof(train_history, epoch)},
    {"history.val_loss", true, offsetof(train_history, val_loss)},
    {"history.val_bleu", true, offsetof(train_history, val_bleu)},
};

static double *const *column(const train_history *h, size_t i) {
  return (double *const *)((const char *)h + series[i].offset);
}

static int history_save(const train_history *h, loom_tensor_map *m) {
  for (size_t i = 0; i < sizeof series / sizeof *series; i++) {
    int64_t n = series[i].validation ? h->n_val : h->n;
    loom_tensor *t = loom_from_array(
        LOOM_F64, n ? *column(h, i) : (double[1]){0}, LOOM_SHAPE(n));
    if (!t || loom_tensor_map_set(m, series[i].name, t) < 0)
      return -1;
  }
  return 0;
}

/* The history from a checkpoint: float64 vectors of matching lengths with
 * finite values. */
static int history_load(train_history *h, const loom_tensor_map *m,
                        const char *path) {
  const double *v[5];
  int64_t len[2] = {-1, -1};
  for (size_t i = 0; i < 5; i++) {
    loom_tensor *t = loom_tensor_map_get(m, series[i].name);
    int64_t n = t && loom_dtype_of(t) == LOOM_F64 && loom_ndim(t) == 1
                    ? loom_numel(t)
                    : -1;
    v[i] = n >= 0 ? loom_data_f64(t) : NULL;
    for (int64_t k = 0; k < n; k++)
      if (!isfinite(v[i][k]))
        n = -1;
    int64_t *want = &len[series[i].validation];
    if (n < 0 || (*want >= 0 && n != *want)) {
      fprintf(stderr, "translate: %s: the history '%s' is malformed\n", path,
              series[i].name);
      return -1;
    }
    *want = n;
  }
  for (int64_t k = 0; k < len[0]; k++)
    if (train_history_push(h, v[0][k], v[1][k]) < 0)
      return -1;
  for (int64_t k = 0; k < len[1]; k++)
    if (train_history_push_val(h, v[2][k], v[3][k], v[4][k]) < 0)
      return -1;
  return 0;
}

/* ---- the settings a resumed run keeps ---- */

static int put_int(loom_tensor_map *m, const char *key, int64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%lld", (long long)v);
  return loom_tensor_map_set_meta(m, key, s);
}

static int put_real(loom_tensor_map *m, const char *key, double v) {
  char s[32];
  snprintf(s, sizeof s, "%.17g", v);
  return loom_tensor_map_set_meta(m, key, s);
}

static int settings_save(const train_options *o, loom_tensor_map *m) {
  return put_int(m, "train.max_tokens", o->max_tokens) |
                 put_int(m, "train.batch_sentences", o->batch_sentences) |
                 put_int(m, "train.warmup", o->warmup) |
                 put_int(m, "train.seed", o->seed) |
                 put_real(m, "train.lr", o->lr) |
                 put_real(m, "train.smoothing", o->smoothing) |
                 put_real(m, "train.clip", o->clip)
             ? -1
             : 0;
}

/* A setting's text, or NULL after saying it is missing. */
static const char *setting(const loom_tensor_map *m, const char *key,
                           const char *path) {
  const char *v = loom_tensor_map_meta(m, key);
  if (!v)
    fprintf(stderr, "translate: %s has no '%s'\n", path, key);
  return v;
}

/* Each value is checked as its flag is on the command line. */
static int settings_load(train_options *o, const loom_tensor_map *m,
                         const char *path) {
  const char *p = "translate";
  const char *v;
#define INT(key, lo, hi, field)                                                \
  ((v = setting(m, key, path)) && app_parse_int(p, key, v, lo, hi, field) == 0)
#define REAL(key, range, field)                                                \
  ((v = setting(m, key, path)) && app_parse_real(p, key, v, range, field) == 0)
  bool ok =
      INT("train.max_tokens", 1, (int64_t)1 << 30, &o->max_tokens) &&
      INT("train.batch_sentences", 0, (int64_t)1 << 30, &o->batch_sentences) &&
      INT("train.warmup", 0, (int64_t)1 << 40, &o->warmup) &&
      INT("train.seed", 0, INT64_MAX, &o->seed) &&
      REAL("train.lr", TRANSLATE_LR_RANGE, &o->lr) &&
      REAL("train.smoothing", ((app_range){.hi = 1}), &o->smoothing) &&
      REAL("train.clip", TRANSLATE_CLIP_RANGE, &o->clip);
#undef INT
#undef REAL
  return ok ? 0 : -1;
}

/* ---- the position ---- */

static const char *const position_names[3] = {"train.step", "train.epoch",
                                              "train.batch"};

static int position_save(const train_position *at, loom_tensor_map *m) {
  const int64_t v[3] = {at->step, at->epoch, at->batch};
  for (int i = 0; i < 3; i++)
    if (loom_tensor_map_set(m, position_names[i],
                            loom_from_array(LOOM_I64, &v[i], 0, NULL)) < 0)
      return -1;
  return loom_tensor_map_set(m, "train.seconds",
                             loom_scalar(LOOM_F64, at->seconds));
}

static int position_load(train_position *at, const loom_tensor_map *m,
                         int64_t step, const char *path) {
  int64_t v[3];
  for (int i = 0; i < 3; i++) {
    loom_tensor *t = loom_tensor_map_get(m, position_names[i]);
    v[i] = t && loom_dtype_of(t) == LOOM_I64 && loom_numel(t) == 1
               ? *loom_data_i64(t)
               : -1;
  }
  loom_tensor *s = loom_tensor_map_get(m, "train.seconds");
  double seconds = s && loom_dtype_of(s) == LOOM_F64 && loom_numel(s) == 1
                       ? *loom_data_f64(s)
                       : NAN;
  const int64_t most = (int64_t)1 << 40;
  if (v[0] != step || v[0] < 0 || v[0] > most || v[1] < 0 || v[1] > most ||
      v[2] < 0 || v[2] > most || !(seconds >= 0 && seconds < 1e12)) {
    fprintf(stderr, "translate: %s holds no valid training position\n", path);
    return -1;
  }
  *at = (train_position){v[0], v[1], v[2], seconds};
  return 0;
}

/* ---- all of it ---- */

int train_save(const char *path, nmt_model *m, loom_optimizer *opt,
               const train_options *o, const nmt_text *text,
               const train_position *at, const train_history *h) {
  loom_tensor_map *extra = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  int rc = extra && position_save(at, extra) == 0 &&
                   nmt_config_save(&m->cfg, extra) == 0 &&
                   settings_save(o, extra) == 0 &&
                   nmt_text_save(text, extra) == 0 &&
                   history_save(h, extra) == 0
               ? loom_checkpoint_save(path, &m->base, opt, NULL, at->step,
                                      m->rng, extra)
               : -1;
  loom_scope_end(s);
  loom_tensor_map_free(extra);
  if (rc < 0) {
    fprintf(stderr, "\ntranslate: cannot save %s: %s\n", path,
            loom_last_error());
    loom_clear_error();
  }
  return rc;
}

int train_read_state(const loom_tensor_map *file, const char *path,
                     train_options *o, train_position *at, train_history *h,
                     nmt_text **text) {
  loom_tensor_map *extra = NULL;
  int64_t step;
  if (loom_checkpoint_restore(file, path, NULL, NULL, NULL, &step, NULL,
                              &extra) < 0) {
    fprintf(stderr, "translate: cannot resume from %s: %s\n", path,
            loom_last_error());
    loom_clear_error();
    return -1;
  }
  int rc = position_load(at, extra, step, path) == 0 &&
                   nmt_config_load(&o->model, extra) == 0 &&
                   settings_load(o, extra, path) == 0 &&
                   history_load(h, extra, path) == 0 &&
                   (*text = nmt_text_load(extra, path)) != NULL
               ? 0
               : -1;
  loom_tensor_map_free(extra);
  return rc;
}
