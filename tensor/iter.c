#include "iter.h"

void loom__iter_init(loom__iter *it, int nops, const loom_tensor *const *ops,
                     int ndim, const int64_t *shape) {
  int64_t st[LOOM__ITER_MAX_OPS][LOOM_MAX_DIMS];
  for (int k = 0; k < nops; k++) {
    loom__broadcast_strides(ops[k], ndim, shape, st[k]);
    int64_t es = (int64_t)loom_dtype_size(ops[k]->dtype);
    for (int d = 0; d < ndim; d++)
      st[k][d] *= es;
    it->base[k] = ops[k]->data;
  }
  it->nops = nops;
  it->numel = loom__numel_of(ndim, shape);
  /* Drop size-1 dims, then merge a dim into its inner neighbour when every
   * operand steps through both as one. */
  int n = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1)
      continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < nops && merge; k++)
        merge = it->strides[k][n - 1] == st[k][d] * shape[d];
      if (merge) {
        it->shape[n - 1] *= shape[d];
        for (int k = 0; k < nops; k++)
          it->strides[k][n - 1] = st[k][d];
        continue;
      }
    }
    it->shape[n] = shape[d];
    for (int k = 0; k < nops; k++)
      it->strides[k][n] = st[k][d];
    n++;
  }
  if (n == 0) {
    it->shape[0] = it->numel; /* 1, or 0 for an empty tensor */
    for (int k = 0; k < nops; k++)
      it->strides[k][0] = 0;
    n = 1;
  }
  it->ndim = n;
}

static void run_range(const loom__iter *it, int64_t begin, int64_t end,
                      loom__iter_fn fn, void *ctx) {
  int nd = it->ndim, nops = it->nops;
  int64_t inner = it->shape[nd - 1];
  int64_t row = begin / inner, col = begin % inner;
  int64_t idx[LOOM_MAX_DIMS];
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = row % it->shape[d];
    row /= it->shape[d];
  }
  int64_t step[LOOM__ITER_MAX_OPS];
  for (int k = 0; k < nops; k++)
    step[k] = it->strides[k][nd - 1];
  while (begin < end) {
    char *ptrs[LOOM__ITER_MAX_OPS];
    for (int k = 0; k < nops; k++) {
      int64_t off = col * step[k];
      for (int d = 0; d < nd - 1; d++)
        off += idx[d] * it->strides[k][d];
      ptrs[k] = it->base[k] + off;
    }
    int64_t n = inner - col < end - begin ? inner - col : end - begin;
    fn(ptrs, step, n, ctx);
    begin += n;
    col = 0;
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < it->shape[d])
        break;
      idx[d] = 0;
    }
  }
}

typedef struct {
  const loom__iter *it;
  loom__iter_fn fn;
  void *ctx;
} iter_job;

static void iter_piece(void *p, int part, int64_t lo, int64_t hi) {
  const iter_job *j = p;
  (void)part;
  run_range(j->it, lo, hi, j->fn, j->ctx);
}

void loom__iter_run(const loom__iter *it, loom__iter_fn fn, void *ctx,
                    int cost) {
  int64_t total = it->numel;
  if (total == 0)
    return;
  int nt = loom__threads_for(total * (cost > 0 ? cost : 1));
  if (nt <= 1) {
    run_range(it, 0, total, fn, ctx);
    return;
  }
  loom__parallel_for_even_out(nt, total, iter_piece, &(iter_job){it, fn, ctx});
}

void loom__iter_run_serial(const loom__iter *it, loom__iter_fn fn, void *ctx) {
  if (it->numel > 0)
    run_range(it, 0, it->numel, fn, ctx);
}
