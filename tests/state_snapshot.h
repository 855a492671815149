/* Everything loom_checkpoint_load may change (model, optimizer, schedule,
 * generator) as a map of copies, and where two such maps differ: the
 * checkpoint suite and its fuzz target check that a failed load changes
 * nothing. */
#ifndef LOOM_TESTS_STATE_SNAPSHOT_H
#define LOOM_TESTS_STATE_SNAPSHOT_H

#include <loom/loom.h>

/* A new map (caller frees); NULL if the state cannot be saved. */
static inline loom_tensor_map *state_snapshot(const loom_module *model,
                                              const loom_optimizer *opt,
                                              const loom_schedule *sched,
                                              loom_rng *rng) {
  loom_scope *sc = loom_scope_begin();
  loom_tensor_map *m = loom_tensor_map_new();
  loom_tensor_map *sd = loom_module_state_dict(model);
  int rc = m && sd ? 0 : -1;
  for (int i = 0; rc == 0 && i < loom_tensor_map_count(sd); i++)
    rc = loom_tensor_map_set(m, loom_tensor_map_name(sd, i),
                             loom_clone(loom_tensor_map_at(sd, i)));
  loom_tensor_map_free(sd);
  uint64_t st[LOOM_RNG_STATE_WORDS];
  loom_rng_get_state(rng, st);
  if (rc < 0 || loom_optimizer_save_state(opt, m, "optim.") < 0 ||
      loom_schedule_save_state(sched, m, "sched.") < 0 ||
      loom_tensor_map_set(
          m, "rng",
          loom_from_array(LOOM_I64, st, LOOM_SHAPE(LOOM_RNG_STATE_WORDS))) <
          0) {
    loom_tensor_map_free(m);
    m = NULL;
  }
  loom_scope_end(sc);
  return m;
}

/* The name of an entry of a that b lacks or holds different values for;
 * NULL when the two maps hold the same. */
static inline const char *state_difference(const loom_tensor_map *a,
                                           const loom_tensor_map *b) {
  if (loom_tensor_map_count(a) != loom_tensor_map_count(b))
    return "(the number of entries)";
  for (int i = 0; i < loom_tensor_map_count(a); i++) {
    loom_tensor *t = loom_tensor_map_get(b, loom_tensor_map_name(a, i));
    if (!t || !loom_equal(loom_tensor_map_at(a, i), t))
      return loom_tensor_map_name(a, i);
  }
  return NULL;
}

#endif
