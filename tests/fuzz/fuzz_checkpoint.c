/* loom_checkpoint_load of arbitrary bytes into a Linear(3, 2) model with
 * Adam, a Noam schedule and a generator: it succeeds, or fails changing
 * none of them (the header's promise). Built with -DFUZZ_MAKE_SEED, it is
 * instead the program that writes a seed checkpoint. */
#include "fuzz_util.h"

#include "../state_snapshot.h"

typedef struct {
  loom_linear_layer *lin;
  loom_optimizer *opt;
  loom_schedule *sched;
  loom_rng *rng;
} world;

static void make(world *w) {
  w->lin = loom_linear_layer_new(3, 2, true);
  loom_tensor *p[4];
  int n = w->lin ? loom_module_parameters(&w->lin->base, p, 4) : 0;
  w->opt = loom_adam_new(p, n, loom_adam_defaults(1e-3));
  w->sched =
      loom_schedule_new(w->opt, loom_schedule_defaults(LOOM_SCHEDULE_NOAM));
  w->rng = loom_rng_new(42);
  if (!w->lin || !w->opt || !w->sched || !w->rng)
    abort();
}

static void unmake(world *w) {
  loom_schedule_free(w->sched);
  loom_optimizer_free(w->opt);
  loom_module_free(&w->lin->base);
  loom_rng_free(w->rng);
}

/* One training step, so every kind of state has something in it. */
static void step(world *w) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *y =
      loom_linear_layer_forward(w->lin, loom_ones(LOOM_F32, LOOM_SHAPE(4, 3)));
  if (y && loom_backward(loom_sum_all(y)) == 0)
    loom_optimizer_step(w->opt);
  loom_scope_end(s);
  loom_schedule_step(w->sched, 0);
}

#ifdef FUZZ_MAKE_SEED
int main(int argc, char **argv) {
  world w;
  make(&w);
  step(&w);
  loom_tensor_map *extra = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  loom_tensor_map_set(extra, "cfg", loom_ones(LOOM_F64, LOOM_SHAPE(2)));
  loom_tensor_map_set_meta(extra, "name", "seed");
  loom_scope_end(s);
  int rc = loom_checkpoint_save(argc > 1 ? argv[1] : "seed.safetensors",
                                &w.lin->base, w.opt, w.sched, 7, w.rng, extra);
  if (rc)
    fprintf(stderr, "%s\n", loom_last_error());
  loom_tensor_map_free(extra);
  unmake(&w);
  return rc ? 1 : 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("checkpoint");
  fuzz_write(path, data, size);
  world w;
  make(&w);
  step(&w);
  loom_tensor_map *before = state_snapshot(&w.lin->base, w.opt, w.sched, w.rng);
  if (!before)
    abort();
  int64_t at = -1;
  loom_tensor_map *extra = NULL;
  int rc = loom_checkpoint_load(path, &w.lin->base, w.opt, w.sched, &at, w.rng,
                                &extra);
  if (rc < 0) {
    loom_tensor_map *after =
        state_snapshot(&w.lin->base, w.opt, w.sched, w.rng);
    if (!after || state_difference(before, after)) {
      fprintf(stderr, "a failed load (%s) changed the state\n",
              loom_last_error());
      abort();
    }
    loom_tensor_map_free(after);
  } else {
    step(&w); /* the loaded state trains */
  }
  loom_tensor_map_free(before);
  loom_tensor_map_free(extra);
  unmake(&w);
  loom_clear_error();
  return 0;
}
#endif
