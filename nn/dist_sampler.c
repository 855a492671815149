/* Sharding the data: a rank's part of a global batch, and global batches
 * in a seeded order that does not depend on the number of ranks. */
#include "distributed.h"

#include <stdlib.h>

int loom_dist_shard(int64_t n, int64_t *start, int64_t *count) {
  if (n < 0 || !start || !count) {
    loom_set_error(LOOM_ERR_ARGUMENT, "loom_dist_shard: %lld items",
                   (long long)n);
    return -1;
  }
  int64_t p = loom_dist_size(), r = loom_dist_rank();
  int64_t base = n / p, extra = n % p;
  *count = base + (r < extra);
  *start = r * base + (r < extra ? r : extra);
  return 0;
}

struct loom_dist_sampler {
  int64_t n, batch;
  uint64_t seed;
  bool shuffle;
  int64_t epoch; /* whose order `order` holds; -1: none yet */
  int64_t *order;
  loom_rng *rng;
};

loom_dist_sampler *loom_dist_sampler_new(int64_t n_items, int64_t batch,
                                         uint64_t seed, bool shuffle) {
  if (!(batch >= 1 && batch <= n_items && n_items <= LOOM_MAX_ELEMENTS))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "loom_dist_sampler_new: batches of %lld out of %lld "
                     "items (1 <= batch <= items)",
                     (long long)batch, (long long)n_items);
  loom_dist_sampler *s = calloc(1, sizeof *s);
  if (s)
    s->order = malloc((size_t)n_items * sizeof *s->order);
  if (s)
    s->rng = loom_rng_new(seed);
  if (!s || !s->order || !s->rng) {
    loom_dist_sampler_free(s);
    return LOOM_FAIL(LOOM_ERR_MEMORY, "loom_dist_sampler_new: out of memory");
  }
  *s = (loom_dist_sampler){.n = n_items,
                           .batch = batch,
                           .seed = seed,
                           .shuffle = shuffle,
                           .epoch = -1,
                           .order = s->order,
                           .rng = s->rng};
  return s;
}

void loom_dist_sampler_free(loom_dist_sampler *s) {
  if (!s)
    return;
  free(s->order);
  loom_rng_free(s->rng);
  free(s);
}

int64_t loom_dist_sampler_batches(const loom_dist_sampler *s) {
  return s ? s->n / s->batch : 0;
}

/* The order of an epoch: a Fisher-Yates shuffle from a generator seeded
 * by (seed, epoch) alone, so any epoch can be made again on resuming.
 * epoch + 1 is taken unsigned: INT64_MAX is a valid epoch. */
static void order_epoch(loom_dist_sampler *s, int64_t epoch) {
  for (int64_t i = 0; i < s->n; i++)
    s->order[i] = i;
  if (s->shuffle) {
    loom_rng_seed(s->rng,
                  s->seed ^ (0x9E3779B97F4A7C15ull * ((uint64_t)epoch + 1)));
    for (int64_t i = s->n - 1; i > 0; i--) {
      int64_t j = (int64_t)(loom_rng_u64(s->rng) % (uint64_t)(i + 1));
      int64_t t = s->order[i];
      s->order[i] = s->order[j];
      s->order[j] = t;
    }
  }
  s->epoch = epoch;
}

int64_t loom_dist_sampler_items(loom_dist_sampler *s, int64_t epoch,
                                int64_t index, bool whole, int64_t *items,
                                int64_t max) {
  if (!s)
    return -1;
  int64_t start = 0, count = s->batch;
  if (!whole && loom_dist_shard(s->batch, &start, &count) < 0)
    return -1;
  if (epoch < 0 || index < 0 || index >= s->n / s->batch || max < count ||
      (count > 0 && !items)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "loom_dist_sampler_items: batch %lld of epoch %lld (%lld "
                   "batches per epoch), room for %lld of its %lld items",
                   (long long)index, (long long)epoch,
                   (long long)(s->n / s->batch), (long long)max,
                   (long long)count);
    return -1;
  }
  if (s->epoch != epoch)
    order_epoch(s, epoch);
  for (int64_t i = 0; i < count; i++)
    items[i] = s->order[index * s->batch + start + i];
  return count;
}
