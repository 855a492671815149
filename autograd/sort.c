/* Sorting: torch.sort, torch.argsort and torch.topk. The positions come
 * from a stable merge sort of each line (tensor/kernel_sort.c); the values
 * are gather(t, dim, positions), so their gradient is gather's, which
 * returns each value's gradient to the place it came from. */
#include "node.h"

/* Positions (int64, t's shape) of each line's elements in sorted order. */
static loom_tensor *positions(const loom_tensor *t, int d, bool descending,
                              const char *op) {
  const loom_tensor *x = loom_contiguous(loom_detach(t));
  loom_tensor *ix = x ? loom__new(LOOM_I64, x->ndim, x->shape, op) : NULL;
  if (!ix || loom__kernel_sort(ix, x, d, descending) < 0)
    return NULL;
  return ix;
}

loom_tensor *loom_sort(const loom_tensor *t, int dim, bool descending,
                       loom_tensor **indices) {
  if (indices)
    *indices = NULL;
  if (!t)
    return loom_null_argument("sort");
  int d = loom__dim(dim, t->ndim, "sort");
  loom_tensor *ix = d < 0 ? NULL : positions(t, d, descending, "sort");
  loom_tensor *values = ix ? loom_gather(t, d, ix) : NULL;
  if (values && indices)
    *indices = ix;
  return values;
}

loom_tensor *loom_argsort(const loom_tensor *t, int dim, bool descending) {
  if (!t)
    return loom_null_argument("argsort");
  int d = loom__dim(dim, t->ndim, "argsort");
  return d < 0 ? NULL : positions(t, d, descending, "argsort");
}

loom_tensor *loom_topk(const loom_tensor *t, int64_t k, int dim, bool largest,
                       loom_tensor **indices) {
  if (indices)
    *indices = NULL;
  if (!t)
    return loom_null_argument("topk");
  int d = loom__dim(dim, t->ndim, "topk");
  if (d < 0)
    return NULL;
  int64_t size = t->ndim ? t->shape[d] : 1;
  if (k < 0 || k > size)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "topk: k = %lld outside 0..%lld, the size of dim %d of %s",
                     (long long)k, (long long)size, d, loom_shape_text(t));
  loom_tensor *all = positions(t, d, largest, "topk");
  loom_tensor *ix =
      all ? loom_contiguous(t->ndim ? loom_narrow(all, d, 0, k) : all) : NULL;
  loom_tensor *values = ix ? loom_gather(t, d, ix) : NULL;
  if (values && indices)
    *indices = ix;
  return values;
}
