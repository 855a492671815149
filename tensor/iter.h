/* A strided iterator over up to four operands of one shape: what every
 * elementwise and index kernel runs on. Dims are coalesced (size-1 dims
 * dropped, contiguous neighbours merged), so a contiguous tensor is one
 * long row; rows are split over threads by element ranges. */
#ifndef LOOM_ITER_H
#define LOOM_ITER_H

#include "internal.h"

#define LOOM__ITER_MAX_OPS 4

typedef struct loom__iter {
  int nops;
  int ndim; /* >= 1; dim ndim-1 is inner */
  int64_t numel;
  int64_t shape[LOOM_MAX_DIMS];
  int64_t strides[LOOM__ITER_MAX_OPS][LOOM_MAX_DIMS]; /* bytes */
  char *base[LOOM__ITER_MAX_OPS];
} loom__iter;

/* One run of n elements: ptrs[k] is operand k's first element, step[k]
 * its byte stride. */
typedef void (*loom__iter_fn)(char **ptrs, const int64_t *step, int64_t n,
                              void *ctx);

/* Operands are viewed with `shape` (each tensor's shape must broadcast to
 * it; broadcast dims get stride 0). */
void loom__iter_init(loom__iter *it, int nops, const loom_tensor *const *ops,
                     int ndim, const int64_t *shape);
/* Calls fn over all elements; `cost` scales the thread threshold (1 for a
 * cheap op, ~10 for exp/tanh). Threads split element ranges, so results do
 * not depend on the thread count. */
void loom__iter_run(const loom__iter *it, loom__iter_fn fn, void *ctx,
                    int cost);

/* The same on the calling thread only (for kernels whose ctx is not
 * thread-safe). */
void loom__iter_run_serial(const loom__iter *it, loom__iter_fn fn, void *ctx);

#endif
