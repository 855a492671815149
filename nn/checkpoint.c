/* Training checkpoints: model, optimizer, schedule, step and RNG state in
 * one safetensors file. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

#define FORMAT "loom-checkpoint-1"

static int add_prefixed(loom_tensor_map *dst, const loom_tensor_map *src,
                        const char *prefix) {
  char name[1024];
  for (int i = 0; i < loom_tensor_map_count(src); i++) {
    snprintf(name, sizeof name, "%s%s", prefix, loom_tensor_map_name(src, i));
    if (loom_tensor_map_set(dst, name, loom_tensor_map_at(src, i)) < 0)
      return -1;
  }
  return 0;
}

/* The entries of src under prefix, with the prefix removed (new map). */
static loom_tensor_map *strip(const loom_tensor_map *src, const char *prefix) {
  loom_tensor_map *m = loom_tensor_map_new();
  size_t n = strlen(prefix);
  for (int i = 0; m && i < loom_tensor_map_count(src); i++) {
    const char *name = loom_tensor_map_name(src, i);
    if (strncmp(name, prefix, n) == 0 &&
        loom_tensor_map_set(m, name + n, loom_tensor_map_at(src, i)) < 0) {
      loom_tensor_map_free(m);
      return NULL;
    }
  }
  return m;
}

int loom_checkpoint_save(const char *path, const loom_module *model,
                         const loom_optimizer *opt, const loom_schedule *sched,
                         int64_t step, loom_rng *rng,
                         const loom_tensor_map *extra) {
  if (!path || !model)
    return loom_null_argument("checkpoint_save"), -1;
  loom_tensor_map *m = loom_tensor_map_new();
  if (!m)
    return -1;
  loom_scope *s = loom_scope_begin();
  int rc = loom_tensor_map_set_meta(m, "format", FORMAT);
  if (rc == 0 && model) {
    loom_tensor_map *sd = loom_module_state_dict(model);
    rc = sd ? add_prefixed(m, sd, "model.") : -1;
    loom_tensor_map_free(sd);
  }
  if (rc == 0 && opt)
    rc = loom_optimizer_save_state(opt, m, "optim.");
  if (rc == 0 && sched)
    rc = loom_schedule_save_state(sched, m, "sched.");
  if (rc == 0 && extra) {
    rc = add_prefixed(m, extra, "extra.");
    char key[1024];
    for (int i = 0; rc == 0 && i < loom_tensor_map_meta_count(extra); i++) {
      const char *k = loom_tensor_map_meta_key(extra, i);
      snprintf(key, sizeof key, "extra.%s", k);
      rc = loom_tensor_map_set_meta(m, key, loom_tensor_map_meta(extra, k));
    }
  }
  if (rc == 0)
    rc = loom_tensor_map_set(m, "step",
                             loom_from_array(LOOM_I64, &step, 0, NULL));
  if (rc == 0 && rng) {
    uint64_t st[LOOM_RNG_STATE_WORDS];
    loom_rng_get_state(rng, st);
    rc = loom_tensor_map_set(
        m, "rng",
        loom_from_array(LOOM_I64, st, LOOM_SHAPE(LOOM_RNG_STATE_WORDS)));
  }
  if (rc == 0)
    rc = loom_safetensors_save(path, m);
  loom_scope_end(s);
  loom_tensor_map_free(m);
  return rc;
}

/* What a load may change besides the model, saved so that a failure can
 * put it back: the optimizer's state map holds its old buffers (a load
 * replaces them, never writes into them), the rest are copies. */
typedef struct {
  loom_tensor_map *opt_sched;
  uint64_t rng[LOOM_RNG_STATE_WORDS];
} undo;

static int undo_save(undo *u, const loom_optimizer *opt,
                     const loom_schedule *sched, loom_rng *rng) {
  u->opt_sched = loom_tensor_map_new();
  if (!u->opt_sched ||
      (opt && loom_optimizer_save_state(opt, u->opt_sched, "optim.") < 0) ||
      (sched && loom_schedule_save_state(sched, u->opt_sched, "sched.") < 0))
    return -1;
  if (rng)
    loom_rng_get_state(rng, u->rng);
  return 0;
}

static void undo_apply(const undo *u, loom_optimizer *opt, loom_schedule *sched,
                       loom_rng *rng) {
  /* the error that made the load fail stays the one reported */
  loom_status status = loom_last_status();
  char message[1024];
  snprintf(message, sizeof message, "%s", loom_last_error());
  /* the schedule first: it resets the lr from its formula, and the
   * optimizer's own lr (perhaps set by hand) must be the one that stays */
  bool back =
      (!sched ||
       loom_schedule_load_state(sched, u->opt_sched, "sched.") == 0) &&
      (!opt || loom_optimizer_load_state(opt, u->opt_sched, "optim.") == 0) &&
      (!rng || loom_rng_set_state(rng, u->rng) == 0);
  loom_clear_error();
  /* only an allocation can make putting it back fail */
  loom_set_error(status, "%s%s", message,
                 back ? ""
                      : " (and the earlier optimizer, schedule and "
                        "generator state could not all be put back)");
}

int loom_checkpoint_restore(const loom_tensor_map *m, const char *path,
                            loom_module *model, loom_optimizer *opt,
                            loom_schedule *sched, int64_t *step, loom_rng *rng,
                            loom_tensor_map **extra) {
  if (!m || !path)
    return loom_null_argument("checkpoint_restore"), -1;
  int rc = 0;
  const char *format = loom_tensor_map_meta(m, "format");
  loom_tensor *st = loom_tensor_map_get(m, "step");
  loom_tensor *rs = loom_tensor_map_get(m, "rng");
  if (!format || strcmp(format, FORMAT) != 0 || !st ||
      loom_dtype_of(st) != LOOM_I64 || loom_numel(st) != 1 ||
      (rng && (!rs || loom_dtype_of(rs) != LOOM_I64 ||
               loom_numel(rs) != LOOM_RNG_STATE_WORDS))) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: not a loom checkpoint (format, step "
                   "or rng state missing)",
                   path);
    rc = -1;
  }
  loom_tensor_map *ex = NULL;
  if (rc == 0 && extra) {
    ex = strip(m, "extra.");
    rc = ex ? 0 : -1;
    for (int i = 0; rc == 0 && i < loom_tensor_map_meta_count(m); i++) {
      const char *k = loom_tensor_map_meta_key(m, i);
      if (!strncmp(k, "extra.", 6))
        rc = loom_tensor_map_set_meta(ex, k + 6, loom_tensor_map_meta(m, k));
    }
  }
  /* All or nothing: the optimizer, schedule and generator load first and
   * are put back if anything after them fails; the model loads last, and
   * checks everything before it changes anything. */
  undo u = {0};
  if (rc == 0)
    rc = undo_save(&u, opt, sched, rng);
  bool saved = rc == 0;
  if (rc == 0 && opt)
    rc = loom_optimizer_load_state(opt, m, "optim.");
  if (rc == 0 && sched)
    rc = loom_schedule_load_state(sched, m, "sched.");
  if (rc == 0 && rng)
    rc = loom_rng_set_state(rng, (const uint64_t *)loom_data(rs));
  if (rc == 0 && model) {
    loom_tensor_map *sd = strip(m, "model.");
    rc = sd ? loom_module_load_state_dict(model, sd, true) : -1;
    loom_tensor_map_free(sd);
  }
  if (rc < 0 && saved)
    undo_apply(&u, opt, sched, rng);
  loom_tensor_map_free(u.opt_sched);
  if (rc == 0 && step)
    *step = *(const int64_t *)loom_data(st);
  if (rc == 0 && extra)
    *extra = ex;
  else
    loom_tensor_map_free(ex);
  return rc;
}

int loom_checkpoint_load(const char *path, loom_module *model,
                         loom_optimizer *opt, loom_schedule *sched,
                         int64_t *step, loom_rng *rng,
                         loom_tensor_map **extra) {
  if (!path)
    return loom_null_argument("checkpoint_load"), -1;
  loom_tensor_map *m = loom_safetensors_load(path);
  int rc =
      m ? loom_checkpoint_restore(m, path, model, opt, sched, step, rng, extra)
        : -1;
  loom_tensor_map_free(m);
  return rc;
}
