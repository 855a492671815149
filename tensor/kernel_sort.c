/* Sorting positions along a dim (sort, argsort, topk): a bottom-up merge
 * sort of each line, stable, as torch.sort(stable=True) is. Each line is
 * sorted by one thread, so results never depend on the thread count.
 *
 * Keys are read into doubles (exact for every float32, int32, bool and
 * uint8 value) or, for int64, kept as int64 (a double would merge neighbours
 * above 2^53). NaN counts as larger than any number, as in PyTorch: last
 * in ascending order, first in descending.
 */
#include "kernels.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Whether key a goes strictly before key b. */
#define ASC_F(a, b) ((a) < (b) || ((b) != (b) && (a) == (a)))
#define DESC_F(a, b) ((a) > (b) || ((a) != (a) && (b) == (b)))
#define ASC_I(a, b) ((a) < (b))
#define DESC_I(a, b) ((a) > (b))

/* Sorts idx[0..n) by key[idx[.]] with tmp as scratch; the result ends in
 * idx. Runs of width w are merged pairwise, w = 1, 2, 4, ...; on a tie
 * the left run's element goes first, which keeps the sort stable. */
#define MERGE_SORT(NAME, K, BEFORE)                                            \
  static void NAME(int64_t *idx, int64_t *tmp, const K *key, int64_t n) {      \
    int64_t *from = idx, *to = tmp;                                            \
    for (int64_t w = 1; w < n; w *= 2) {                                       \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                              \
        int64_t mid = lo + w < n ? lo + w : n;                                 \
        int64_t hi = mid + w < n ? mid + w : n;                                \
        int64_t a = lo, b = mid, o = lo;                                       \
        while (a < mid && b < hi)                                              \
          to[o++] =                                                            \
              BEFORE(key[from[b]], key[from[a]]) ? from[b++] : from[a++];      \
        while (a < mid)                                                        \
          to[o++] = from[a++];                                                 \
        while (b < hi)                                                         \
          to[o++] = from[b++];                                                 \
      }                                                                        \
      int64_t *swap = from;                                                    \
      from = to;                                                               \
      to = swap;                                                               \
    }                                                                          \
    if (from != idx)                                                           \
      memcpy(idx, from, (size_t)n * sizeof *idx);                              \
  }

MERGE_SORT(sort_asc_f, double, ASC_F)
MERGE_SORT(sort_desc_f, double, DESC_F)
MERGE_SORT(sort_asc_i, int64_t, ASC_I)
MERGE_SORT(sort_desc_i, int64_t, DESC_I)

typedef struct {
  const loom_tensor *x;
  loom_tensor *indices;
  int64_t len, inner;
  bool descending;
  atomic_bool failed;
} sort_job;

/* Lines [l0, l1): line l is outer l / inner, lane l % inner. */
static void sort_lines(void *ctx, int64_t l0, int64_t l1) {
  sort_job *j = ctx;
  int64_t len = j->len, inner = j->inner;
  bool ints = j->x->dtype == LOOM_I64;
  /* keys, positions and scratch for one line: 3 len words */
  int64_t *buf = malloc((size_t)(3 * len) * sizeof(int64_t));
  if (!buf) {
    atomic_store(&j->failed, true);
    return;
  }
  double *fkey = (double *)buf;
  int64_t *ikey = buf, *idx = buf + len, *tmp = buf + 2 * len;
  size_t es = loom_dtype_size(j->x->dtype);
  int64_t *out = (int64_t *)j->indices->data;
  for (int64_t l = l0; l < l1; l++) {
    int64_t base = l / inner * len * inner + l % inner;
    const char *x = j->x->data + (size_t)base * es;
    for (int64_t k = 0; k < len; k++) {
      if (ints)
        ikey[k] = ((const int64_t *)x)[k * inner];
      else
        fkey[k] = loom__read(x + (size_t)(k * inner) * es, j->x->dtype);
      idx[k] = k;
    }
    if (ints)
      (j->descending ? sort_desc_i : sort_asc_i)(idx, tmp, ikey, len);
    else
      (j->descending ? sort_desc_f : sort_asc_f)(idx, tmp, fkey, len);
    for (int64_t k = 0; k < len; k++)
      out[base + k * inner] = idx[k];
  }
  free(buf);
}

int loom__kernel_sort(loom_tensor *indices, const loom_tensor *x, int dim,
                      bool descending) {
  if (x->numel == 0)
    return 0;
  sort_job j = {.x = x,
                .indices = indices,
                .len = x->ndim ? x->shape[dim] : 1,
                .inner = 1,
                .descending = descending};
  atomic_init(&j.failed, false);
  for (int i = dim + 1; i < x->ndim; i++)
    j.inner *= x->shape[i];
  int64_t lines = x->numel / j.len;
  /* about len log2(len) comparisons per line */
  int64_t log_len = 1;
  while (log_len < 62 && ((int64_t)1 << log_len) < j.len)
    log_len++;
  int64_t work = x->numel > LOOM_MAX_ELEMENTS / 64 ? LOOM_MAX_ELEMENTS
                                                   : x->numel * log_len;
  loom__parallel_for(loom__threads_for(work), lines, sort_lines, &j);
  if (atomic_load(&j.failed)) {
    loom_set_error(LOOM_ERR_MEMORY, "sort: out of memory for lines of %lld",
                   (long long)j.len);
    return -1;
  }
  return 0;
}
