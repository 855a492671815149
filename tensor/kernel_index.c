/* Index kernels: gather/scatter along a dim, index_select/index_add of
 * whole slices. Views here are shallow stack copies of a tensor's geometry:
 * they never outlive the call, so they take no references. */
#include "iter.h"
#include "kernels.h"

static loom_tensor slice_view(const loom_tensor *t, int dim, int64_t i) {
  loom_tensor v = loom__geometry(t);
  v.data = t->data + i * t->strides[dim] * (int64_t)loom_dtype_size(t->dtype);
  v.shape[dim] = 1;
  v.numel = t->shape[dim] ? t->numel / t->shape[dim] : 0;
  return v;
}

int loom__kernel_check_index(const loom_tensor *index, int64_t size,
                             const char *op) {
  loom_tensor *c = (loom_tensor *)index;
  loom__iter it;
  loom__iter_init(&it, 1, (const loom_tensor *[]){c}, index->ndim,
                  index->shape);
  int64_t bad = 0;
  bool found = false;
  int nd = it.ndim;
  int64_t inner = it.shape[nd - 1], idx[LOOM_MAX_DIMS] = {0};
  int64_t rows = inner ? it.numel / inner : 0;
  for (int64_t r = 0; r < rows && !found; r++) {
    const char *p = it.base[0];
    for (int d = 0; d < nd - 1; d++)
      p += idx[d] * it.strides[0][d];
    for (int64_t i = 0; i < inner; i++) {
      int64_t v = *(const int64_t *)(p + i * it.strides[0][nd - 1]);
      if (v < 0 || v >= size) {
        bad = v;
        found = true;
        break;
      }
    }
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < it.shape[d])
        break;
      idx[d] = 0;
    }
  }
  if (found) {
    loom_set_error(LOOM_ERR_INDEX, "%s: index %lld out of range [0, %lld)", op,
                   (long long)bad, (long long)size);
    return -1;
  }
  return 0;
}

typedef struct {
  int64_t step; /* bytes per index unit along dim */
  size_t es;
} gather_ctx;

static void gather_fn(char **p, const int64_t *s, int64_t n, void *c) {
  const gather_ctx *g = c;
  for (int64_t i = 0; i < n; i++) {
    int64_t j = *(const int64_t *)(p[1] + i * s[1]);
    memcpy(p[0] + i * s[0], p[2] + i * s[2] + j * g->step, g->es);
  }
}

/* x seen with index's shape, stride 0 along dim: the index supplies it. */
static loom_tensor along(const loom_tensor *x, int dim,
                         const loom_tensor *index) {
  loom_tensor v = loom__geometry(x);
  for (int d = 0; d < x->ndim; d++)
    v.shape[d] = index->shape[d];
  v.strides[dim] = 0;
  v.numel = index->numel;
  return v;
}

void loom__kernel_gather(loom_tensor *out, const loom_tensor *x, int dim,
                         const loom_tensor *index) {
  loom_tensor xv = along(x, dim, index);
  /* (a 0-dim x has no stride: its one element is at offset 0) */
  gather_ctx g = {(x->ndim ? x->strides[dim] : 0) *
                      (int64_t)loom_dtype_size(x->dtype),
                  loom_dtype_size(x->dtype)};
  loom__iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){out, index, &xv}, out->ndim,
                  out->shape);
  loom__iter_run(&it, gather_fn, &g, 2);
}

typedef struct {
  int64_t step;
  loom_dtype t;
} scatter_ctx;

static void scatter_fn(char **p, const int64_t *s, int64_t n, void *c) {
  const scatter_ctx *g = c;
  for (int64_t i = 0; i < n; i++) {
    int64_t j = *(const int64_t *)(p[0] + i * s[0]);
    char *dst = p[2] + i * s[2] + j * g->step;
    const char *src = p[1] + i * s[1];
    switch (g->t) {
    case LOOM_F32:
      *(float *)dst += *(const float *)src;
      break;
    case LOOM_F64:
      *(double *)dst += *(const double *)src;
      break;
    case LOOM_I64: /* integer sums wrap (see kernel_binary.c) */
      *(int64_t *)dst =
          (int64_t)(*(const uint64_t *)dst + *(const uint64_t *)src);
      break;
    case LOOM_I32:
      *(int32_t *)dst =
          (int32_t)(*(const uint32_t *)dst + *(const uint32_t *)src);
      break;
    default:
      *(uint8_t *)dst += *(const uint8_t *)src;
      break;
    }
  }
}

void loom__kernel_scatter_add(loom_tensor *out, int dim,
                              const loom_tensor *index,
                              const loom_tensor *src) {
  loom_tensor ov = along(out, dim, index);
  scatter_ctx g = {(out->ndim ? out->strides[dim] : 0) *
                       (int64_t)loom_dtype_size(out->dtype),
                   out->dtype};
  loom__iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){index, src, &ov}, index->ndim,
                  index->shape);
  /* Serial: repeated indices add into the same element. */
  loom__iter_run_serial(&it, scatter_fn, &g);
}

typedef struct {
  char *out;
  const char *x;
  const int64_t *ix;
  int64_t is;
  size_t row;
} rows_job;

static void copy_rows(void *ctx, int64_t lo, int64_t hi) {
  const rows_job *r = ctx;
  for (int64_t j = lo; j < hi; j++)
    memcpy(r->out + (size_t)j * r->row,
           r->x + (size_t)r->ix[j * r->is] * r->row, r->row);
}

void loom__kernel_index_select(loom_tensor *out, const loom_tensor *x, int dim,
                               const loom_tensor *index) {
  const int64_t *ix = (const int64_t *)index->data;
  int64_t n = index->numel, is = index->ndim ? index->strides[0] : 0;
  size_t es = loom_dtype_size(x->dtype);
  if (dim == 0 && loom__is_contiguous(x) && loom__is_contiguous(out)) {
    /* Rows of a contiguous table: the embedding lookup. */
    size_t row = (size_t)(n ? out->numel / n : 0) * es;
    loom__parallel_for(loom__threads_for(out->numel), n, copy_rows,
                       &(rows_job){out->data, x->data, ix, is, row});
    return;
  }
  for (int64_t j = 0; j < n; j++) {
    loom_tensor o = slice_view(out, dim, j), s = slice_view(x, dim, ix[j * is]);
    loom__kernel_copy(&o, &s);
  }
}

void loom__kernel_index_add(loom_tensor *out, int dim, const loom_tensor *index,
                            const loom_tensor *src, double alpha) {
  const int64_t *ix = (const int64_t *)index->data;
  int64_t n = index->numel, is = index->ndim ? index->strides[0] : 0;
  if (dim == 0 && alpha == 1 && loom__is_contiguous(out) &&
      loom__is_contiguous(src) && loom_dtype_is_float(out->dtype)) {
    int64_t row = n ? src->numel / n : 0;
    for (int64_t j = 0; j < n; j++) {
      if (out->dtype == LOOM_F32) {
        float *o = (float *)out->data + ix[j * is] * row;
        const float *s = (const float *)src->data + j * row;
        for (int64_t k = 0; k < row; k++)
          o[k] += s[k];
      } else {
        double *o = (double *)out->data + ix[j * is] * row;
        const double *s = (const double *)src->data + j * row;
        for (int64_t k = 0; k < row; k++)
          o[k] += s[k];
      }
    }
    return;
  }
  double p[1] = {alpha};
  for (int64_t j = 0; j < n; j++) {
    loom_tensor o = slice_view(out, dim, ix[j * is]),
                s = slice_view(src, dim, j);
    loom__kernel_binary(&loom__add_scaled_kernel, &o, &o, &s, p);
  }
}
