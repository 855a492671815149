/* Training checkpoints: model, optimizer, schedule, step and RNG state in
 * one safetensors file. */
#include "nn.h"

#include "../tensor/internal.h"

#include <stdlib.h>

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

int loom_checkpoint_load(const char *path, loom_module *model,
                         loom_optimizer *opt, loom_schedule *sched,
                         int64_t *step, loom_rng *rng,
                         loom_tensor_map **extra) {
  loom_tensor_map *m = loom_safetensors_load(path);
  if (!m)
    return -1;
  int rc = 0;
  const char *format = loom_tensor_map_meta(m, "format");
  loom_tensor *st = loom_tensor_map_get(m, "step");
  loom_tensor *rs = loom_tensor_map_get(m, "rng");
  if (!format || strcmp(format, FORMAT) != 0 || !st || st->dtype != LOOM_I64 ||
      st->numel != 1 ||
      (rng &&
       (!rs || rs->dtype != LOOM_I64 || rs->numel != LOOM_RNG_STATE_WORDS))) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: not a loom checkpoint (format, step "
                   "or rng state missing)",
                   path);
    rc = -1;
  }
  if (rc == 0 && model) {
    loom_tensor_map *sd = strip(m, "model.");
    rc = sd ? loom_module_load_state_dict(model, sd, true) : -1;
    loom_tensor_map_free(sd);
  }
  if (rc == 0 && opt)
    rc = loom_optimizer_load_state(opt, m, "optim.");
  if (rc == 0 && sched)
    rc = loom_schedule_load_state(sched, m, "sched.");
  if (rc == 0 && rng)
    rc = loom_rng_set_state(rng, (const uint64_t *)loom_data(rs));
  if (rc == 0 && step)
    *step = *(const int64_t *)loom_data(st);
  if (rc == 0 && extra) {
    *extra = strip(m, "extra.");
    rc = *extra ? 0 : -1;
    for (int i = 0; rc == 0 && i < loom_tensor_map_meta_count(m); i++) {
      const char *k = loom_tensor_map_meta_key(m, i);
      if (!strncmp(k, "extra.", 6))
        rc =
            loom_tensor_map_set_meta(*extra, k + 6, loom_tensor_map_meta(m, k));
    }
  }
  loom_tensor_map_free(m);
  return rc;
}
