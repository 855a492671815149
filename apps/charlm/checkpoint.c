/* What a charlm checkpoint holds beside the library's part (model,
 * optimizer, step, generator), under "extra.":
 *
 *   charlm.config   metadata "CELL vocab embed hidden layers heads ff
 *                   context dropout"
 *   vocab           uint8 (vocab): the characters, increasing
 *   position        int64 scalar: where each stream is
 *   state.K         float32 (layers, batch, hidden): carried states
 *   history.train   float64 (2, n): step and smoothed training loss
 *   history.val     float64 (2, n): step and validation loss
 *
 * A checkpoint is input like any other: everything read here is checked
 * (dtype, shape, range) before anything uses it, with the command line's
 * limits, and a refusal says which entry is wrong and why. */
#include "charlm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- loss history ---- */

static int push(double **a, double **b, int64_t *n, int64_t *cap, double x,
                double y) {
  if (*n == *cap) {
    int64_t c = *cap ? 2 * *cap : 256;
    double *ga = realloc(*a, (size_t)c * sizeof **a);
    if (ga)
      *a = ga;
    double *gb = realloc(*b, (size_t)c * sizeof **b);
    if (gb)
      *b = gb;
    if (!ga || !gb) {
      loom_set_error(LOOM_ERR_MEMORY, "charlm: out of memory for the loss "
                                      "history");
      return -1;
    }
    *cap = c;
  }
  (*a)[*n] = x;
  (*b)[*n] = y;
  (*n)++;
  return 0;
}

int charlm_history_add(charlm_history *h, bool val, double step, double loss) {
  return val ? push(&h->val_step, &h->val, &h->n_val, &h->cap_val, step, loss)
             : push(&h->step, &h->train, &h->n, &h->cap, step, loss);
}

void charlm_history_free(charlm_history *h) {
  free(h->step);
  free(h->train);
  free(h->val_step);
  free(h->val);
  *h = (charlm_history){0};
}

void charlm_session_free(charlm_session *s) {
  for (int k = 0; k < LOOM_RNN_MAX_STATES; k++) {
    loom_release(s->state[k]);
    s->state[k] = NULL;
  }
  charlm_history_free(&s->history);
}

/* ---- writing ---- */

static int config_write(const charlm_config *cfg, loom_tensor_map *extra) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s %lld %lld %lld %lld %lld %lld %lld %.17g",
           cfg->cell, (long long)cfg->vocab, (long long)cfg->embed,
           (long long)cfg->hidden, (long long)cfg->layers,
           (long long)cfg->heads, (long long)cfg->ff, (long long)cfg->context,
           cfg->dropout);
  return loom_tensor_map_set_meta(extra, "charlm.config", buf);
}

/* One curve as a (2, n) tensor of steps and losses. */
static int curve_write(loom_tensor_map *extra, const char *name,
                       const double *step, const double *loss, int64_t n) {
  if (n == 0)
    return 0;
  loom_tensor *rows[2] = {loom_from_array(LOOM_F64, step, LOOM_SHAPE(n)),
                          loom_from_array(LOOM_F64, loss, LOOM_SHAPE(n))};
  return loom_tensor_map_set(extra, name, loom_stack(rows, 2, 0));
}

int charlm_checkpoint_save(const char *path, charlm *m, loom_optimizer *opt,
                           int64_t step, const charlm_session *s) {
  loom_tensor_map *extra = loom_tensor_map_new();
  if (!extra) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  loom_scope *scope = loom_scope_begin();
  int rc = config_write(&s->cfg, extra);
  rc |= loom_tensor_map_set(
      extra, "vocab", loom_from_array(LOOM_U8, s->chars, LOOM_SHAPE(s->vocab)));
  rc |= loom_tensor_map_set(extra, "position",
                            loom_from_array(LOOM_I64, &s->position, 0, NULL));
  for (int k = 0; k < s->n_states; k++)
    if (s->state[k]) {
      char name[32];
      snprintf(name, sizeof name, "state.%d", k);
      rc |= loom_tensor_map_set(extra, name, s->state[k]);
    }
  const charlm_history *h = &s->history;
  rc |= curve_write(extra, "history.train", h->step, h->train, h->n);
  rc |= curve_write(extra, "history.val", h->val_step, h->val, h->n_val);
  if (rc == 0)
    rc = loom_checkpoint_save(path, &m->base, opt, NULL, step, m->rng, extra);
  loom_scope_end(scope);
  loom_tensor_map_free(extra);
  return rc ? -1 : 0;
}

/* ---- reading ---- */

/* "WHAT: NAME V is not in LO..HI"; -1. */
static int out_of_range(const char *what, const char *name, int64_t v,
                        int64_t lo, int64_t hi) {
  char range[80];
  loom_set_error(LOOM_ERR_FORMAT, "%s: %s %lld is not in %s", what, name,
                 (long long)v, app_int_range_text(lo, hi, range, sizeof range));
  return -1;
}

/* A whole token as a number: an integer (real false) or a real. */
static bool number(const char *token, bool real, double *out) {
  char *end;
  errno = 0;
  *out = real ? strtod(token, &end) : (double)strtoll(token, &end, 10);
  return end != token && !*end && !errno;
}

/* The config: the model's name and eight numbers, each in the range the
 * command line allows. */
static int config_read(charlm_config *cfg, const loom_tensor_map *extra) {
  const char *text = loom_tensor_map_meta(extra, "charlm.config");
  memset(cfg, 0, sizeof *cfg);
  char buf[256], *save = NULL;
  if (!text || strlen(text) >= sizeof buf) {
    loom_set_error(LOOM_ERR_FORMAT, text ? "charlm.config is too long"
                                         : "not a charlm checkpoint (no "
                                           "charlm.config)");
    return -1;
  }
  strcpy(buf, text);
  char *tokens[10];
  int n = 0;
  for (char *t = strtok_r(buf, " ", &save); t && n < 10;
       t = strtok_r(NULL, " ", &save))
    tokens[n++] = t;
  if (n != 9 || strlen(tokens[0]) >= sizeof cfg->cell) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "config '%s': expected a model name and eight numbers",
                   text);
    return -1;
  }
  strcpy(cfg->cell, tokens[0]);
  static const char *const cells[] = {"rnn", "lstm", "gru", "peephole",
                                      "transformer"};
  bool known = false;
  for (int i = 0; i < 5; i++)
    known |= !strcmp(cfg->cell, cells[i]);
  if (!known) {
    loom_set_error(LOOM_ERR_FORMAT, "config '%s': unknown model '%s'", text,
                   cfg->cell);
    return -1;
  }
  const struct {
    const char *name;
    int64_t *value, lo, hi;
  } fields[] = {{"vocab", &cfg->vocab, 1, 256},
                {"embed", &cfg->embed, 1, CHARLM_MAX_WIDTH},
                {"hidden", &cfg->hidden, 1, CHARLM_MAX_WIDTH},
                {"layers", &cfg->layers, 1, CHARLM_MAX_LAYERS},
                {"heads", &cfg->heads, 1, CHARLM_MAX_WIDTH},
                {"ff", &cfg->ff, 0, 4 * CHARLM_MAX_WIDTH},
                {"context", &cfg->context, 1, CHARLM_MAX_SEQ}};
  char range[80];
  for (int i = 0; i < 7; i++) {
    double v;
    if (!number(tokens[i + 1], false, &v) || v < (double)fields[i].lo ||
        v > (double)fields[i].hi) {
      loom_set_error(
          LOOM_ERR_FORMAT, "config '%s': %s '%s' is not an integer in %s", text,
          fields[i].name, tokens[i + 1],
          app_int_range_text(fields[i].lo, fields[i].hi, range, sizeof range));
      return -1;
    }
    *fields[i].value = (int64_t)v;
  }
  if (!number(tokens[8], true, &cfg->dropout) ||
      !app_in_range(cfg->dropout, CHARLM_DROPOUT_RANGE)) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "config '%s': dropout '%s' is not a number in %s", text,
                   tokens[8],
                   app_range_text(CHARLM_DROPOUT_RANGE, range, sizeof range));
    return -1;
  }
  return 0;
}

/* The tensor `name` if it is a `dtype` tensor of `ndim` dims; NULL, with an
 * error if it is present but of another kind. */
static loom_tensor *entry(const loom_tensor_map *extra, const char *name,
                          loom_dtype dtype, int ndim, const char *expected) {
  loom_tensor *t = loom_tensor_map_get(extra, name);
  if (t && (loom_dtype_of(t) != dtype || loom_ndim(t) != ndim)) {
    loom_set_error(LOOM_ERR_FORMAT, "extra.%s is %s with %d dims, not %s", name,
                   loom_dtype_name(loom_dtype_of(t)), loom_ndim(t), expected);
    return NULL;
  }
  return t;
}

static int vocab_read(charlm_session *s, const loom_tensor_map *extra) {
  loom_tensor *t = entry(extra, "vocab", LOOM_U8, 1, "uint8 (vocab)");
  if (!t) {
    if (loom_last_status() == LOOM_OK)
      loom_set_error(LOOM_ERR_FORMAT, "no vocabulary (extra.vocab)");
    return -1;
  }
  if (loom_numel(t) != s->cfg.vocab) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "the vocabulary has %lld characters, the config says %lld",
                   (long long)loom_numel(t), (long long)s->cfg.vocab);
    return -1;
  }
  const uint8_t *c = loom_data_u8(t);
  for (int64_t i = 1; i < s->cfg.vocab; i++)
    if (c[i] <= c[i - 1]) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "the vocabulary is not distinct bytes in increasing "
                     "order (character %lld)",
                     (long long)i);
      return -1;
    }
  s->vocab = (int)s->cfg.vocab;
  memcpy(s->chars, c, (size_t)s->vocab);
  return 0;
}

static int position_read(charlm_session *s, const loom_tensor_map *extra) {
  s->position = -1;
  loom_tensor *t = loom_tensor_map_get(extra, "position");
  if (!t)
    return 0;
  if (loom_dtype_of(t) != LOOM_I64 || loom_numel(t) != 1) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "extra.position is %s with %lld values, "
                   "not one int64",
                   loom_dtype_name(loom_dtype_of(t)), (long long)loom_numel(t));
    return -1;
  }
  int64_t v = loom_data_i64(t)[0];
  if (v < 0 || v > (int64_t)1 << 62)
    return out_of_range("extra.position", "the position", v, 0,
                        (int64_t)1 << 62);
  s->position = v;
  return 0;
}

static int n_states_of(const charlm_config *cfg) {
  if (!strcmp(cfg->cell, "lstm") || !strcmp(cfg->cell, "peephole"))
    return 2;
  return strcmp(cfg->cell, "transformer") ? 1 : 0;
}

static int states_read(charlm_session *s, const loom_tensor_map *extra) {
  const charlm_config *cfg = &s->cfg;
  s->n_states = n_states_of(cfg);
  int found = 0;
  int64_t batch = 0;
  for (int k = 0; k < s->n_states; k++) {
    char name[32];
    snprintf(name, sizeof name, "state.%d", k);
    loom_tensor *t =
        entry(extra, name, LOOM_F32, 3, "float32 (layers, batch, hidden)");
    if (!t) {
      if (loom_last_status() != LOOM_OK)
        return -1;
      continue;
    }
    int64_t b = loom_size(t, 1);
    if (loom_size(t, 0) != cfg->layers || loom_size(t, 2) != cfg->hidden ||
        b < 1 || b > CHARLM_MAX_BATCH || (found && b != batch)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "extra.%s is (%lld, %lld, %lld), not (layers %lld, "
                     "batch%s, hidden %lld)",
                     name, (long long)loom_size(t, 0), (long long)b,
                     (long long)loom_size(t, 2), (long long)cfg->layers,
                     found ? " of state.0" : "", (long long)cfg->hidden);
      return -1;
    }
    batch = b;
    found++;
  }
  if (found && found != s->n_states) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%d of the %s model's %d recurrent states are saved", found,
                   cfg->cell, s->n_states);
    return -1;
  }
  for (int k = 0; found && k < s->n_states; k++) {
    char name[32];
    snprintf(name, sizeof name, "state.%d", k);
    s->state[k] = loom_keep(loom_tensor_map_get(extra, name));
  }
  return 0;
}

static int history_read(charlm_session *s, const loom_tensor_map *extra) {
  const char *names[2] = {"history.train", "history.val"};
  for (int k = 0; k < 2; k++) {
    loom_tensor *t = entry(extra, names[k], LOOM_F64, 2, "float64 (2, n)");
    if (!t && loom_last_status() != LOOM_OK)
      return -1;
    if (!t)
      continue;
    if (loom_size(t, 0) != 2) {
      loom_set_error(LOOM_ERR_FORMAT, "extra.%s has %lld rows, not 2", names[k],
                     (long long)loom_size(t, 0));
      return -1;
    }
    int64_t n = loom_size(t, 1);
    const double *v = loom_data_f64(t);
    for (int64_t i = 0; i < n; i++) {
      bool step = v[i] >= 0 && v[i] <= 0x1p53 && v[i] == floor(v[i]);
      if (step && isfinite(v[n + i]) &&
          charlm_history_add(&s->history, k == 1, v[i], v[n + i]) < 0)
        return -1;
    }
  }
  return 0;
}

int charlm_session_read(charlm_session *s, const loom_tensor_map *extra) {
  memset(s, 0, sizeof *s);
  if (config_read(&s->cfg, extra) < 0 || vocab_read(s, extra) < 0 ||
      position_read(s, extra) < 0 || states_read(s, extra) < 0 ||
      history_read(s, extra) < 0) {
    charlm_session_free(s);
    memset(s, 0, sizeof *s);
    return -1;
  }
  return 0;
}

int charlm_checkpoint_peek(const loom_tensor_map *file, const char *path,
                           charlm_session *s) {
  memset(s, 0, sizeof *s);
  loom_tensor_map *extra = NULL;
  int rc =
      loom_checkpoint_restore(file, path, NULL, NULL, NULL, NULL, NULL, &extra);
  if (rc == 0)
    rc = charlm_session_read(s, extra);
  loom_tensor_map_free(extra);
  return rc;
}

/* Why the saved session cannot continue this run's, in `why`, or NULL:
 * every model option the checkpoint stores must be this run's, but the
 * dropout, which changes no parameter. */
static const char *mismatch(const charlm_session *run,
                            const charlm_session *saved, char *why,
                            size_t size) {
  const charlm_config *a = &run->cfg, *b = &saved->cfg;
  if (strcmp(a->cell, b->cell)) {
    snprintf(why, size,
             "the model options differ: --model %s, the checkpoint has %s",
             a->cell, b->cell);
    return why;
  }
  bool tf = !strcmp(a->cell, "transformer");
  const struct {
    const char *flag;
    int64_t mine, theirs;
    bool used; /* stored, and part of this kind of model */
  } opts[] = {{"--hidden", a->hidden, b->hidden, true},
              {"--embed", a->embed, b->embed, !tf}, /* tf: embed = hidden */
              {"--layers", a->layers, b->layers, true},
              {"--heads", a->heads, b->heads, tf},
              {"--ff", a->ff, b->ff, tf},
              {"--seq", a->context, b->context, tf}}; /* its positions */
  size_t n = 0;
  for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
    if (opts[i].used && opts[i].mine != opts[i].theirs && n < size)
      n += (size_t)snprintf(
          why + n, size - n,
          "%s%s %lld, the checkpoint has "
          "%lld",
          n ? "; " : "the model options differ: ", opts[i].flag,
          (long long)opts[i].mine, (long long)opts[i].theirs);
  if (n)
    return why;
  if (run->vocab != saved->vocab ||
      memcmp(run->chars, saved->chars, (size_t)run->vocab))
    return "it was trained on a text with other characters";
  if (saved->position < 0)
    return "it has no stream position";
  return NULL;
}

int charlm_checkpoint_resume(const char *path, charlm *m, loom_optimizer *opt,
                             int64_t *step, charlm_session *s) {
  loom_tensor_map *extra = NULL;
  charlm_session saved = {0};
  const char *bad = NULL;
  char range[80], why[512];
  loom_tensor_map *file = loom_safetensors_load(path);
  if (!file)
    return -1;
  if (loom_checkpoint_restore(file, path, &m->base, opt, NULL, step, m->rng,
                              &extra) < 0 ||
      charlm_session_read(&saved, extra) < 0) {
    loom_tensor_map_free(extra);
    /* Other model options give parameters of other shapes, which the
     * load refuses tensor by tensor: say which options differ instead. */
    char error[512];
    snprintf(error, sizeof error, "%s", loom_last_error());
    loom_status status = loom_last_status();
    loom_clear_error();
    if (charlm_checkpoint_peek(file, path, &saved) == 0 &&
        (bad = mismatch(s, &saved, why, sizeof why)))
      loom_set_error(LOOM_ERR_FORMAT, "%s", bad);
    else
      loom_set_error(status, "%s", error);
    charlm_session_free(&saved);
    loom_tensor_map_free(file);
    return -1;
  }
  loom_tensor_map_free(file);
  loom_tensor_map_free(extra);
  double lr = loom_optimizer_lr(opt);
  int rc = -1;
  if ((bad = mismatch(s, &saved, why, sizeof why)))
    loom_set_error(LOOM_ERR_FORMAT, "%s", bad);
  else if (*step < 0 || *step > (int64_t)1 << 62)
    out_of_range("the checkpoint", "its step", *step, 0, (int64_t)1 << 62);
  else if (!app_in_range(lr, CHARLM_LR_RANGE))
    loom_set_error(LOOM_ERR_FORMAT, "its learning rate %g is not in %s", lr,
                   app_range_text(CHARLM_LR_RANGE, range, sizeof range));
  else
    rc = 0;
  if (rc < 0) {
    charlm_session_free(&saved);
    return -1;
  }
  charlm_session_free(s);
  s->resumed_dropout = saved.cfg.dropout;
  s->position = saved.position;
  s->n_states = saved.n_states;
  memcpy(s->state, saved.state, sizeof s->state);
  s->history = saved.history;
  return 0;
}
