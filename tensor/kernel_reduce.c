/* Reductions over any set of dims, arg-max/min along a dim, and softmax.
 *
 * Determinism: every output element is reduced in an order fixed by the
 * shapes. Threads either own disjoint output elements or, for a reduction to
 * a single value, fixed-size blocks whose partial results are combined in
 * block order; which path runs depends on sizes, never on the thread count.
 */
#include "iter.h"
#include "kernels.h"
#include "vmath.h"

#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#define BLOCK 65536

typedef struct {
  loom__reduce_op op;
  loom_dtype xt; /* input dtype; the accumulator is double for float32 */
} red_ctx;

#define MAXOP(acc, x) (((x) > (acc) || (x) != (x)) ? (x) : (acc))
#define MINOP(acc, x) (((x) < (acc) || (x) != (x)) ? (x) : (acc))
#define PRODOP(acc, x) ((acc) * (x))
/* Integer sums and products wrap in two's complement, as in PyTorch
 * (computed in uint64_t: int64_t overflow would be undefined). */
#define WRAP_SUMOP(acc, x) ((int64_t)((uint64_t)(acc) + (uint64_t)(x)))
#define WRAP_PRODOP(acc, x) ((int64_t)((uint64_t)(acc) * (uint64_t)(x)))

/* acc (type TA) op= x (type TX) along a run; a zero accumulator stride means
 * the whole run folds into one accumulator. */
#define ROW(NAME, TA, TX, OP)                                                  \
  static void NAME(char *a_, const char *x_, int64_t n, int64_t sa,            \
                   int64_t sx) {                                               \
    if (sa == 0) {                                                             \
      TA acc = *(TA *)a_;                                                      \
      for (int64_t i = 0; i < n; i++)                                          \
        acc = OP(acc, (TA) * (const TX *)(x_ + i * sx));                       \
      *(TA *)a_ = acc;                                                         \
    } else {                                                                   \
      for (int64_t i = 0; i < n; i++) {                                        \
        TA *a = (TA *)(a_ + i * sa);                                           \
        *a = OP(*a, (TA) * (const TX *)(x_ + i * sx));                         \
      }                                                                        \
    }                                                                          \
  }

/* Contiguous float sums fold into eight partial sums, which lets the
 * compiler use vector adds without reassociating a single chain. */
#define SUM_ROW(NAME, TX)                                                      \
  static void NAME(char *a_, const char *x_, int64_t n, int64_t sa,            \
                   int64_t sx) {                                               \
    if (sa == 0 && sx == (int64_t)sizeof(TX)) {                                \
      const TX *x = (const TX *)x_;                                            \
      double s[8] = {0};                                                       \
      int64_t i = 0;                                                           \
      for (; i + 8 <= n; i += 8)                                               \
        for (int j = 0; j < 8; j++)                                            \
          s[j] += (double)x[i + j];                                            \
      double tail = 0;                                                         \
      for (; i < n; i++)                                                       \
        tail += (double)x[i];                                                  \
      *(double *)a_ += ((s[0] + s[4]) + (s[1] + s[5])) +                       \
                       ((s[2] + s[6]) + (s[3] + s[7])) + tail;                 \
    } else if (sa == 0) {                                                      \
      double acc = *(double *)a_;                                              \
      for (int64_t i = 0; i < n; i++)                                          \
        acc += (double)*(const TX *)(x_ + i * sx);                             \
      *(double *)a_ = acc;                                                     \
    } else if (sa == (int64_t)sizeof(double) && sx == (int64_t)sizeof(TX)) {   \
      /* a column sum's row: unit strides let this loop vectorise */           \
      double *a = (double *)a_;                                                \
      const TX *x = (const TX *)x_;                                            \
      for (int64_t i = 0; i < n; i++)                                          \
        a[i] += (double)x[i];                                                  \
    } else {                                                                   \
      for (int64_t i = 0; i < n; i++)                                          \
        *(double *)(a_ + i * sa) += (double)*(const TX *)(x_ + i * sx);        \
    }                                                                          \
  }

SUM_ROW(sum_f32, float)
SUM_ROW(sum_f64, double)
ROW(sum_i64, int64_t, int64_t, WRAP_SUMOP)
ROW(prod_f32, double, float, PRODOP)
ROW(prod_f64, double, double, PRODOP)
ROW(prod_i64, int64_t, int64_t, WRAP_PRODOP)
ROW(max_f32, float, float, MAXOP)
ROW(max_f64, double, double, MAXOP)
ROW(max_i32, int32_t, int32_t, MAXOP)
ROW(max_i64, int64_t, int64_t, MAXOP)
ROW(max_u8, uint8_t, uint8_t, MAXOP)
ROW(min_f32, float, float, MINOP)
ROW(min_f64, double, double, MINOP)
ROW(min_i32, int32_t, int32_t, MINOP)
ROW(min_i64, int64_t, int64_t, MINOP)
ROW(min_u8, uint8_t, uint8_t, MINOP)

/* a[0..cols) += the column sums of the rows ROW(0..rows) (a const TX *
 * each: a matrix's rows, or rows anywhere), in double, rows eight at a
 * time: each accumulator is loaded and stored once per eight rows instead
 * of once per row, and the additions into it stay in row order, so the
 * bits are those of the row-by-row loop. The row-by-row loop had spent as
 * long as the products' own packing on the bias gradients of a
 * transformer step (2048 rows). */
#define COLUMN_SUMS_BODY(TX, ROW, rows, cols)                                  \
  int64_t r = 0;                                                               \
  for (; r + 8 <= rows; r += 8) {                                              \
    const TX *x0 = ROW(r), *x1 = ROW(r + 1), *x2 = ROW(r + 2);                 \
    const TX *x3 = ROW(r + 3), *x4 = ROW(r + 4), *x5 = ROW(r + 5);             \
    const TX *x6 = ROW(r + 6), *x7 = ROW(r + 7);                               \
    for (int64_t i = 0; i < cols; i++) {                                       \
      double s = a[i];                                                         \
      s += (double)x0[i];                                                      \
      s += (double)x1[i];                                                      \
      s += (double)x2[i];                                                      \
      s += (double)x3[i];                                                      \
      s += (double)x4[i];                                                      \
      s += (double)x5[i];                                                      \
      s += (double)x6[i];                                                      \
      s += (double)x7[i];                                                      \
      a[i] = s;                                                                \
    }                                                                          \
  }                                                                            \
  for (; r < rows; r++) {                                                      \
    const TX *xr = ROW(r);                                                     \
    for (int64_t i = 0; i < cols; i++)                                         \
      a[i] += (double)xr[i];                                                   \
  }

/* Column sums of a row-major float matrix (rows ld apart). */
#define STRIDED_ROW(r) (x + (r)*ld)
#define COLUMN_SUMS(NAME, TX)                                                  \
  LOOM__ISA_FUNCTION(NAME,                                                     \
                     (double *restrict a, const TX *restrict x, int64_t rows,  \
                      int64_t cols, int64_t ld),                               \
                     (a, x, rows, cols, ld)) {                                 \
    COLUMN_SUMS_BODY(TX, STRIDED_ROW, rows, cols)                              \
  }
COLUMN_SUMS(column_sums_f32, float)
COLUMN_SUMS(column_sums_f64, double)

typedef void (*row_fn)(char *, const char *, int64_t, int64_t, int64_t);

static row_fn pick(loom__reduce_op op, loom_dtype t) {
  static const row_fn table[4][LOOM_DTYPE_COUNT] = {
      [LOOM__REDUCE_SUM] =
          {[LOOM_F32] = sum_f32, [LOOM_F64] = sum_f64, [LOOM_I64] = sum_i64},
      [LOOM__REDUCE_PROD] =
          {[LOOM_F32] = prod_f32, [LOOM_F64] = prod_f64, [LOOM_I64] = prod_i64},
      [LOOM__REDUCE_MAX] = {[LOOM_F32] = max_f32,
                            [LOOM_F64] = max_f64,
                            [LOOM_I32] = max_i32,
                            [LOOM_I64] = max_i64,
                            [LOOM_BOOL] = max_u8,
                            [LOOM_U8] = max_u8},
      [LOOM__REDUCE_MIN] = {[LOOM_F32] = min_f32,
                            [LOOM_F64] = min_f64,
                            [LOOM_I32] = min_i32,
                            [LOOM_I64] = min_i64,
                            [LOOM_BOOL] = min_u8,
                            [LOOM_U8] = min_u8},
  };
  return table[op][t];
}

static void run_row(char **p, const int64_t *s, int64_t n, void *c) {
  row_fn fn = *(row_fn *)c;
  fn(p[0], p[1], n, s[0], s[1]);
}

static double identity(loom__reduce_op op, loom_dtype t) {
  switch (op) {
  case LOOM__REDUCE_SUM:
    return 0;
  case LOOM__REDUCE_PROD:
    return 1;
  /* Written with loom__write, which saturates to an integer dtype's range
   * (bool is 1 unless 0). */
  case LOOM__REDUCE_MAX:
    return loom_dtype_is_float(t) ? -INFINITY : t == LOOM_BOOL ? 0 : -9.3e18;
  case LOOM__REDUCE_MIN:
    return loom_dtype_is_float(t) ? INFINITY : 9.3e18;
  }
  return 0;
}

/* A shallow copy of t's geometry with dims ordered by decreasing |stride|
 * of `x`, so the innermost loop walks x's memory in order. */
static void order_like(loom_tensor *view, const loom_tensor *t,
                       const int *perm) {
  *view = loom__geometry(t);
  for (int i = 0; i < t->ndim; i++) {
    view->shape[i] = t->shape[perm[i]];
    view->strides[i] = t->strides[perm[i]];
  }
}

typedef struct {
  row_fn fn;
  loom_dtype at;
  double id;
  char *part;
  const char *x;
  int64_t n, sx;
} blocks_job;

static void reduce_block_range(void *ctx, int64_t b0, int64_t b1) {
  const blocks_job *j = ctx;
  size_t es = loom_dtype_size(j->at);
  for (int64_t b = b0; b < b1; b++) {
    char *pb = j->part + b * (int64_t)es;
    loom__write(pb, j->at, j->id);
    int64_t lo = b * BLOCK, len = j->n - lo < BLOCK ? j->n - lo : BLOCK;
    j->fn(pb, j->x + lo * j->sx, len, 0, j->sx);
  }
}

static void reduce_blocks(const loom__iter *it, row_fn fn, loom__reduce_op op,
                          loom_dtype at, char *acc) {
  int64_t n = it->numel, nb = (n + BLOCK - 1) / BLOCK;
  size_t es = loom_dtype_size(at);
  char *part = malloc((size_t)nb * es);
  int64_t sx = it->strides[1][0];
  int nt = loom__threads_for(n);
  if (!part) { /* fall back to one pass */
    fn(acc, it->base[1], n, 0, sx);
    return;
  }
  loom__parallel_for(
      nt, nb, reduce_block_range,
      &(blocks_job){fn, at, identity(op, at), part, it->base[1], n, sx});
  /* Combine partials in block order with the same row function, reading
   * them as an accumulator-typed run. */
  if (at == LOOM_F64 && (op == LOOM__REDUCE_SUM))
    for (int64_t b = 0; b < nb; b++)
      *(double *)acc += ((double *)part)[b];
  else if (at == LOOM_F64 && op == LOOM__REDUCE_PROD)
    for (int64_t b = 0; b < nb; b++)
      *(double *)acc *= ((double *)part)[b];
  else
    pick(op, at)(acc, part, nb, 0, (int64_t)es);
  free(part);
}

/* Column sums of float32 rows anywhere in memory (rows[0..n), columns
 * [c0, c0 + w) of each) into double accumulators: COLUMN_SUMS's
 * additions in the same order. */
#define POINTED_ROW(r) (rows[r] + c0)
LOOM__ISA_FUNCTION(pointer_column_sums_f32,
                   (double *restrict a, const float *const *rows, int64_t n,
                    int64_t c0, int64_t w),
                   (a, rows, n, c0, w)) {
  COLUMN_SUMS_BODY(float, POINTED_ROW, n, w)
}

typedef struct {
  float *out;
  const float *const *rows;
  int64_t n, cols;
} pointer_sums_job;

enum { SUM_SPAN = 256 }; /* columns a part sums at once: doubles in L1 */

static void pointer_sums_part(void *ctx, int64_t b0, int64_t b1) {
  const pointer_sums_job *j = ctx;
  double a[SUM_SPAN];
  for (int64_t b = b0; b < b1; b++) {
    int64_t c0 = b * SUM_SPAN;
    int64_t w = j->cols - c0 < SUM_SPAN ? j->cols - c0 : SUM_SPAN;
    for (int64_t i = 0; i < w; i++)
      a[i] = 0;
    pointer_column_sums_f32(a, j->rows, j->n, c0, w);
    for (int64_t i = 0; i < w; i++)
      j->out[c0 + i] = (float)a[i];
  }
}

void loom__kernel_row_pointer_sums(float *out, const float *const *rows,
                                   int64_t n, int64_t cols) {
  int64_t blocks = (cols + SUM_SPAN - 1) / SUM_SPAN;
  pointer_sums_job j = {out, rows, n, cols};
  loom__parallel_for(loom__threads_for(n * cols), blocks, pointer_sums_part,
                     &j);
}

/* Slices [lo, hi) of dim `split`, along which the outputs differ: each
 * output element is reduced by one thread, whatever the thread count. */
typedef struct {
  const loom__iter *it;
  int split;
  row_fn fn;
} slices_job;

/* Whether the iterator is a float sum over the rows of a matrix with unit
 * column strides (a bias gradient's shape): dim 0 the rows, dim 1 the
 * columns, the accumulator a double run. */
static bool is_column_sum(const loom__iter *it, row_fn fn) {
  int64_t es = fn == sum_f32 ? 4 : fn == sum_f64 ? 8 : 0;
  return es && it->ndim == 2 && it->strides[0][0] == 0 &&
         it->strides[0][1] == (int64_t)sizeof(double) &&
         it->strides[1][1] == es && it->strides[1][0] % es == 0;
}

/* Columns [lo, hi) of such a sum. */
static void column_sum_part(const loom__iter *it, row_fn fn, int64_t lo,
                            int64_t hi) {
  double *a = (double *)it->base[0] + lo;
  int64_t rows = it->shape[0];
  if (fn == sum_f32)
    column_sums_f32(a, (const float *)it->base[1] + lo, rows, hi - lo,
                    it->strides[1][0] / 4);
  else
    column_sums_f64(a, (const double *)it->base[1] + lo, rows, hi - lo,
                    it->strides[1][0] / 8);
}

static void reduce_slices(void *ctx, int64_t lo, int64_t hi) {
  const slices_job *j = ctx;
  if (j->split == 1 && is_column_sum(j->it, j->fn)) {
    column_sum_part(j->it, j->fn, lo, hi);
    return;
  }
  loom__iter part = *j->it;
  int64_t len = j->it->shape[j->split];
  part.shape[j->split] = hi - lo;
  part.numel = j->it->numel / len * (hi - lo);
  for (int k = 0; k < 2; k++)
    part.base[k] += lo * j->it->strides[k][j->split];
  row_fn fn = j->fn;
  loom__iter_run_serial(&part, run_row, &fn);
}

int loom__kernel_reduce(loom__reduce_op op, loom_tensor *out,
                        const loom_tensor *x) {
  loom_dtype xt = x->dtype;
  row_fn fn = pick(op, xt);
  if (!fn) {
    loom_set_error(LOOM_ERR_DTYPE, "reduce: not defined for %s",
                   loom_dtype_name(xt));
    return -1;
  }
  bool wide = op == LOOM__REDUCE_SUM || op == LOOM__REDUCE_PROD;
  loom_dtype at = wide && loom_dtype_is_float(xt) ? LOOM_F64 : xt;
  loom_tensor *acc = out;
  if (at != out->dtype) {
    acc = loom__alloc(at, out->ndim, out->shape, "reduce");
    if (!acc)
      return -1;
  }
  loom__kernel_fill(acc, identity(op, at));
  if (x->numel > 0) {
    int perm[LOOM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
      perm[i] = i;
    for (int i = 1; i < x->ndim; i++) /* stable insertion sort */
      for (int j = i;
           j > 0 && llabs(x->strides[perm[j - 1]]) < llabs(x->strides[perm[j]]);
           j--) {
        int tmp = perm[j];
        perm[j] = perm[j - 1];
        perm[j - 1] = tmp;
      }
    loom_tensor xv, av;
    order_like(&xv, x, perm);
    loom_tensor accv = loom__geometry(acc);
    int64_t bs[LOOM_MAX_DIMS];
    loom__broadcast_strides(acc, x->ndim, x->shape, bs);
    for (int i = 0; i < x->ndim; i++)
      accv.strides[i] = bs[i];
    accv.ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++)
      accv.shape[i] = x->shape[i];
    order_like(&av, &accv, perm);
    loom__iter it;
    loom__iter_init(&it, 2, (const loom_tensor *[]){&av, &xv}, xv.ndim,
                    xv.shape);
    int split = -1;
    for (int d = 0; d < it.ndim && split < 0; d++)
      if (it.strides[0][d] != 0 && it.shape[d] > 1)
        split = d;
    int nt = loom__threads_for(it.numel);
    if (split < 0 && it.ndim == 1 && it.numel >= 2 * BLOCK) {
      reduce_blocks(&it, fn, op, at, acc->data);
    } else if (split >= 0 && nt > 1) {
      loom__parallel_for(nt, it.shape[split], reduce_slices,
                         &(slices_job){&it, split, fn});
    } else if (is_column_sum(&it, fn)) {
      column_sum_part(&it, fn, 0, it.shape[1]);
    } else {
      loom__iter_run_serial(&it, run_row, &fn);
    }
  }
  if (acc != out) {
    loom__kernel_copy(out, acc);
    loom__unref(acc);
  }
  return 0;
}

/* ---- max/min with indices along one dim ---- */

typedef struct {
  int64_t len, step; /* along the reduced dim: count and byte stride */
  loom_dtype t;
  bool is_max;
} arg_ctx;

#define ARG_SCAN(T)                                                            \
  do {                                                                         \
    T best = *(const T *)row;                                                  \
    int64_t bi = 0;                                                            \
    for (int64_t j = 1; j < a->len && best == best; j++) {                     \
      T v = *(const T *)(row + j * a->step);                                   \
      if (v != v || (a->is_max ? v > best : v < best)) {                       \
        best = v;                                                              \
        bi = j;                                                                \
      }                                                                        \
    }                                                                          \
    *(T *)vo = best;                                                           \
    *(int64_t *)io = bi;                                                       \
  } while (0)

#define ARG_SCAN_INT(T)                                                        \
  do {                                                                         \
    T best = *(const T *)row;                                                  \
    int64_t bi = 0;                                                            \
    for (int64_t j = 1; j < a->len; j++) {                                     \
      T v = *(const T *)(row + j * a->step);                                   \
      if (a->is_max ? v > best : v < best) {                                   \
        best = v;                                                              \
        bi = j;                                                                \
      }                                                                        \
    }                                                                          \
    *(T *)vo = best;                                                           \
    *(int64_t *)io = bi;                                                       \
  } while (0)

static void arg_run(char **p, const int64_t *s, int64_t n, void *c) {
  const arg_ctx *a = c;
  for (int64_t i = 0; i < n; i++) {
    char *vo = p[0] + i * s[0], *io = p[1] + i * s[1];
    const char *row = p[2] + i * s[2];
    switch (a->t) {
    case LOOM_F32:
      ARG_SCAN(float);
      break;
    case LOOM_F64:
      ARG_SCAN(double);
      break;
    case LOOM_I32:
      ARG_SCAN_INT(int32_t);
      break;
    case LOOM_I64:
      ARG_SCAN_INT(int64_t);
      break;
    default:
      ARG_SCAN_INT(uint8_t);
      break;
    }
  }
}

void loom__kernel_arg_reduce(bool is_max, loom_tensor *values,
                             loom_tensor *indices, const loom_tensor *x,
                             int dim) {
  /* x with `dim` collapsed to its first element */
  loom_tensor rows = loom__geometry(x);
  rows.shape[dim] = 1;
  arg_ctx a = {x->shape[dim],
               x->strides[dim] * (int64_t)loom_dtype_size(x->dtype), x->dtype,
               is_max};
  loom__iter it;
  loom__iter_init(&it, 3, (const loom_tensor *[]){values, indices, &rows},
                  values->ndim, values->shape);
  loom__iter_run(&it, arg_run, &a, (int)(a.len > 1000 ? 1000 : a.len));
}

/* ---- softmax ---- */

/* Rows [o0, o1) of the outer dims. */
#define SOFTMAX(T)                                                             \
  static void softmax_##T(T *y, const T *x, int64_t o0, int64_t o1,            \
                          int64_t len, int64_t inner, bool log_) {             \
    for (int64_t o = o0; o < o1; o++)                                          \
      for (int64_t k = 0; k < inner; k++) {                                    \
        const T *xr = x + o * len * inner + k;                                 \
        T *yr = y + o * len * inner + k;                                       \
        T m = -INFINITY;                                                       \
        for (int64_t j = 0; j < len; j++)                                      \
          m = xr[j * inner] > m ? xr[j * inner] : m;                           \
        if (m == -INFINITY)                                                    \
          m = 0; /* a row of -inf: keep exp(-inf - 0) = 0 */                   \
        double s = 0;                                                          \
        for (int64_t j = 0; j < len; j++) {                                    \
          T e = (T)exp(xr[j * inner] - m);                                     \
          s += e;                                                              \
          if (!log_)                                                           \
            yr[j * inner] = e;                                                 \
        }                                                                      \
        if (log_) {                                                            \
          T ls = (T)log(s);                                                    \
          for (int64_t j = 0; j < len; j++)                                    \
            yr[j * inner] = xr[j * inner] - m - ls;                            \
        } else {                                                               \
          /* A row with nothing allowed (all -inf, a fully masked attention    \
           * row) gets zeros, not 0/0: no NaN reaches outputs or grads. A NaN  \
           * sum (NaN or +inf in the row) makes the whole row NaN, as torch.   \
           */                                                                  \
          T r = s > 0 ? (T)(1 / s) : s == 0 ? 0 : (T)NAN;                      \
          for (int64_t j = 0; j < len; j++)                                    \
            yr[j * inner] *= r;                                                \
        }                                                                      \
      }                                                                        \
  }                                                                            \
  static void softmax_grad_##T(T *gi, const T *y, const T *g, int64_t o0,      \
                               int64_t o1, int64_t len, int64_t inner,         \
                               bool log_) {                                    \
    for (int64_t o = o0; o < o1; o++)                                          \
      for (int64_t k = 0; k < inner; k++) {                                    \
        int64_t base = o * len * inner + k;                                    \
        double s = 0;                                                          \
        for (int64_t j = 0; j < len; j++)                                      \
          s += log_ ? (double)g[base + j * inner]                              \
                    : (double)g[base + j * inner] * y[base + j * inner];       \
        T ts = (T)s;                                                           \
        for (int64_t j = 0; j < len; j++) {                                    \
          int64_t i = base + j * inner;                                        \
          gi[i] = log_ ? g[i] - (T)exp(y[i]) * ts : y[i] * (g[i] - ts);        \
        }                                                                      \
      }                                                                        \
  }
SOFTMAX(float)
SOFTMAX(double)

/* Float rows along the last dim (inner 1), the common case, in loops the
 * compiler vectorises: partial maxima and sums, and loom__expf where the
 * general loop above calls libm per element (6% of a transformer step).
 * The sums are in double, in a fixed order. */
#define PART 8
static double sum_parts(const double *p) {
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

/* The largest of len floats, in partial maxima the compiler vectorises;
 * inlined, so it is compiled for each instruction set's caller. */
static inline __attribute__((always_inline)) float row_max_f32(const float *xr,
                                                               int64_t len) {
  float mp[2 * PART];
  for (int w = 0; w < 2 * PART; w++)
    mp[w] = -INFINITY;
  int64_t j = 0;
  for (; j + 2 * PART <= len; j += 2 * PART)
    for (int w = 0; w < 2 * PART; w++)
      mp[w] = xr[j + w] > mp[w] ? xr[j + w] : mp[w];
  float m = -INFINITY;
  for (int w = 0; w < 2 * PART; w++)
    m = mp[w] > m ? mp[w] : m;
  for (; j < len; j++)
    m = xr[j] > m ? xr[j] : m;
  return m;
}

LOOM__ISA_FUNCTION_FMA(softmax_last_f32,
                       (float *restrict y, const float *restrict x, int64_t o0,
                        int64_t o1, int64_t len, bool log_),
                       (y, x, o0, o1, len, log_)) {
  for (int64_t o = o0; o < o1; o++) {
    const float *xr = x + o * len;
    float *yr = y + o * len;
    float m = row_max_f32(xr, len);
    if (m == -INFINITY)
      m = 0; /* a row of -inf: keep exp(-inf - 0) = 0 */
    int64_t j;
    /* exp first, in a pass of its own (it vectorises), then the sum */
    _Pragma("GCC ivdep") for (j = 0; j < len; j++) yr[j] =
        loom__expf(xr[j] - m);
    double sp[PART] = {0};
    for (j = 0; j + PART <= len; j += PART)
      for (int w = 0; w < PART; w++)
        sp[w] += yr[j + w];
    for (; j < len; j++)
      sp[j % PART] += yr[j];
    double sum = sum_parts(sp);
    if (log_) {
      float ls = (float)log(sum);
      for (j = 0; j < len; j++)
        yr[j] = xr[j] - m - ls;
    } else {
      /* fully masked: zeros; NaN or +inf in the row: NaN, as above */
      float r = sum > 0 ? (float)(1 / sum) : sum == 0 ? 0 : NAN;
      for (j = 0; j < len; j++)
        yr[j] *= r;
    }
  }
}

/* Not contracted: g - e^y s is +0 where the two are equal, as torch's;
 * fused into a negated multiply-add it is +0 on the CPU too, but -0 under
 * valgrind's emulation of the instruction, where the suite also runs (44
 * cases of test_loss_parity's log-softmax gradients). */
LOOM__ISA_FUNCTION(softmax_grad_last_f32,
                   (float *gi, const float *y, const float *g, int64_t o0,
                    int64_t o1, int64_t len, bool log_),
                   (gi, y, g, o0, o1, len, log_)) {
  for (int64_t o = o0; o < o1; o++) {
    const float *yr = y + o * len, *gr = g + o * len;
    float *out = gi + o * len;
    double sp[PART] = {0};
    int64_t j = 0;
    if (log_) {
      for (; j + PART <= len; j += PART)
        for (int w = 0; w < PART; w++)
          sp[w] += gr[j + w];
      for (; j < len; j++)
        sp[j % PART] += gr[j];
      float ts = (float)sum_parts(sp);
      for (j = 0; j < len; j++)
        out[j] = gr[j] - loom__expf(yr[j]) * ts;
    } else {
      for (; j + PART <= len; j += PART)
        for (int w = 0; w < PART; w++)
          sp[w] += (double)gr[j + w] * yr[j + w];
      for (; j < len; j++)
        sp[j % PART] += (double)gr[j] * yr[j];
      float ts = (float)sum_parts(sp);
      for (j = 0; j < len; j++)
        out[j] = yr[j] * (gr[j] - ts);
    }
  }
}

static void geometry(const loom_tensor *t, int dim, int64_t *outer,
                     int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < dim; i++)
    *outer *= t->shape[i];
  for (int i = dim + 1; i < t->ndim; i++)
    *inner *= t->shape[i];
}

typedef struct {
  void *out;
  const void *y, *x, *g; /* softmax reads x; its gradient reads y and g */
  int64_t len, inner;
  bool log_, f32;
} softmax_job;

static void softmax_rows(void *ctx, int64_t o0, int64_t o1) {
  const softmax_job *j = ctx;
  if (j->f32 && j->inner == 1)
    softmax_last_f32(j->out, j->x, o0, o1, j->len, j->log_);
  else if (j->f32)
    softmax_float(j->out, j->x, o0, o1, j->len, j->inner, j->log_);
  else
    softmax_double(j->out, j->x, o0, o1, j->len, j->inner, j->log_);
}

static void softmax_grad_rows(void *ctx, int64_t o0, int64_t o1) {
  const softmax_job *j = ctx;
  if (j->f32 && j->inner == 1)
    softmax_grad_last_f32(j->out, j->y, j->g, o0, o1, j->len, j->log_);
  else if (j->f32)
    softmax_grad_float(j->out, j->y, j->g, o0, o1, j->len, j->inner, j->log_);
  else
    softmax_grad_double(j->out, j->y, j->g, o0, o1, j->len, j->inner, j->log_);
}

void loom__kernel_softmax(loom_tensor *out, const loom_tensor *x, int dim,
                          bool log_) {
  int64_t outer, inner, len = x->ndim ? x->shape[dim] : 1;
  geometry(x, dim, &outer, &inner);
  softmax_job j = {.out = out->data,
                   .x = x->data,
                   .len = len,
                   .inner = inner,
                   .log_ = log_,
                   .f32 = x->dtype == LOOM_F32};
  loom__parallel_for(loom__threads_for(outer * len * inner * 8), outer,
                     softmax_rows, &j);
}

void loom__kernel_softmax_grad(loom_tensor *gin, const loom_tensor *y,
                               const loom_tensor *g, int dim, bool log_) {
  int64_t outer, inner, len = y->ndim ? y->shape[dim] : 1;
  geometry(y, dim, &outer, &inner);
  softmax_job j = {.out = gin->data,
                   .y = y->data,
                   .g = g->data,
                   .len = len,
                   .inner = inner,
                   .log_ = log_,
                   .f32 = y->dtype == LOOM_F32};
  loom__parallel_for(loom__threads_for(outer * len * inner * 4), outer,
                     softmax_grad_rows, &j);
}

/* ---- cross entropy ---- */

/* Rows [o0, o1) of the loss and of lse, which holds each row's max m and
 * log sum_j exp(x_j - m) apart: their sum would absorb the log where the
 * logits are large (m = -1e30: m + log 4 == m), and the loss and the
 * gradient, formed from it, lose what is left. Both are formed from the
 * differences x_j - m, as log_softmax forms them; the sums in double, in
 * an order fixed by C alone. Float rows take exp in chunks the compiler
 * vectorises (loom__expf), as softmax_last_f32 does. */
#define CHUNK 256
LOOM__ISA_FUNCTION_FMA(cross_entropy_f32,
                       (float *restrict loss, float *restrict lse,
                        const float *restrict x, const int64_t *restrict target,
                        int64_t o0, int64_t o1, int64_t C, int64_t ignore,
                        double eps),
                       (loss, lse, x, target, o0, o1, C, ignore, eps)) {
  for (int64_t o = o0; o < o1; o++) {
    if (target[o] == ignore) {
      loss[o] = lse[2 * o] = lse[2 * o + 1] = 0;
      continue;
    }
    const float *xr = x + o * C;
    float m = row_max_f32(xr, C);
    if (m == -INFINITY)
      m = 0; /* a row of -inf: the sum of exps is 0, its log -inf */
    int64_t j;
    double sp[PART] = {0}, xp[PART] = {0}, dm = m;
    float e[CHUNK];
    for (int64_t j0 = 0; j0 < C; j0 += CHUNK) {
      int64_t n = C - j0 < CHUNK ? C - j0 : CHUNK;
      _Pragma("GCC ivdep") for (j = 0; j < n; j++) e[j] =
          loom__expf(xr[j0 + j] - m);
      for (j = 0; j + PART <= n; j += PART)
        for (int w = 0; w < PART; w++) {
          sp[w] += e[j + w];
          xp[w] += xr[j0 + j + w] - dm;
        }
      for (; j < n; j++) {
        sp[j % PART] += e[j];
        xp[j % PART] += xr[j0 + j] - dm;
      }
    }
    double l = log(sum_parts(sp));
    lse[2 * o] = m;
    lse[2 * o + 1] = (float)l;
    /* without smoothing a -inf logit elsewhere costs nothing (not 0 inf) */
    double smooth = eps > 0 ? eps / (double)C * sum_parts(xp) : 0;
    loss[o] = (float)(l - (1 - eps) * (xr[target[o]] - dm) - smooth);
  }
}

LOOM__ISA_FUNCTION_FMA(cross_entropy_grad_f32,
                       (float *gin, const float *x, /* may be one buffer */
                        const float *restrict lse,
                        const int64_t *restrict target, const float *restrict g,
                        int64_t o0, int64_t o1, int64_t C, int64_t ignore,
                        double eps),
                       (gin, x, lse, target, g, o0, o1, C, ignore, eps)) {
  for (int64_t o = o0; o < o1; o++) {
    float *out = gin + o * C;
    if (target[o] == ignore) {
      memset(out, 0, (size_t)C * sizeof *out);
      continue;
    }
    const float *xr = x + o * C;
    float gi = g[o], m = lse[2 * o], l = lse[2 * o + 1];
    float u = (float)(eps / (double)C);
    _Pragma("GCC ivdep") for (int64_t j = 0; j < C; j++) out[j] =
        gi * (loom__expf(xr[j] - m - l) - u);
    out[target[o]] -= gi * (float)(1 - eps);
  }
}

/* Double rows: the same quantities, summed in order. */
static void cross_entropy_f64(double *loss, double *lse, const double *x,
                              const int64_t *target, int64_t o0, int64_t o1,
                              int64_t C, int64_t ignore, double eps) {
  for (int64_t o = o0; o < o1; o++) {
    if (target[o] == ignore) {
      loss[o] = lse[2 * o] = lse[2 * o + 1] = 0;
      continue;
    }
    const double *xr = x + o * C;
    double m = -INFINITY, s = 0, sx = 0;
    for (int64_t j = 0; j < C; j++)
      m = xr[j] > m ? xr[j] : m;
    if (m == -INFINITY)
      m = 0;
    for (int64_t j = 0; j < C; j++) {
      s += exp(xr[j] - m);
      sx += xr[j] - m;
    }
    double l = log(s);
    lse[2 * o] = m;
    lse[2 * o + 1] = l;
    loss[o] = l - (1 - eps) * (xr[target[o]] - m) -
              (eps > 0 ? eps / (double)C * sx : 0);
  }
}

static void cross_entropy_grad_f64(double *gin, const double *x,
                                   const double *lse, const int64_t *target,
                                   const double *g, int64_t o0, int64_t o1,
                                   int64_t C, int64_t ignore, double eps) {
  for (int64_t o = o0; o < o1; o++) {
    double *out = gin + o * C;
    if (target[o] == ignore) {
      memset(out, 0, (size_t)C * sizeof *out);
      continue;
    }
    const double *xr = x + o * C;
    double m = lse[2 * o], l = lse[2 * o + 1];
    for (int64_t j = 0; j < C; j++)
      out[j] = g[o] * (exp(xr[j] - m - l) - eps / (double)C);
    out[target[o]] -= g[o] * (1 - eps);
  }
}

typedef struct {
  void *out, *lse;
  const void *x, *g;
  const int64_t *target;
  int64_t C, ignore;
  double eps;
  bool f32;
} cross_entropy_job;

static void cross_entropy_rows(void *ctx, int64_t o0, int64_t o1) {
  const cross_entropy_job *j = ctx;
  if (j->f32)
    cross_entropy_f32(j->out, j->lse, j->x, j->target, o0, o1, j->C, j->ignore,
                      j->eps);
  else
    cross_entropy_f64(j->out, j->lse, j->x, j->target, o0, o1, j->C, j->ignore,
                      j->eps);
}

static void cross_entropy_grad_rows(void *ctx, int64_t o0, int64_t o1) {
  const cross_entropy_job *j = ctx;
  if (j->f32)
    cross_entropy_grad_f32(j->out, j->x, j->lse, j->target, j->g, o0, o1, j->C,
                           j->ignore, j->eps);
  else
    cross_entropy_grad_f64(j->out, j->x, j->lse, j->target, j->g, o0, o1, j->C,
                           j->ignore, j->eps);
}

void loom__kernel_cross_entropy(loom_tensor *loss, loom_tensor *lse,
                                const loom_tensor *x, const loom_tensor *target,
                                int64_t ignore, double eps) {
  int64_t N = loss->numel, C = x->shape[x->ndim - 1];
  cross_entropy_job j = {.out = loss->data,
                         .lse = lse->data,
                         .x = x->data,
                         .target = (const int64_t *)target->data,
                         .C = C,
                         .ignore = ignore,
                         .eps = eps,
                         .f32 = x->dtype == LOOM_F32};
  loom__parallel_for(loom__threads_for(N * C * 8), N, cross_entropy_rows, &j);
}

void loom__kernel_cross_entropy_grad(loom_tensor *gin, const loom_tensor *x,
                                     const loom_tensor *lse,
                                     const loom_tensor *target,
                                     const loom_tensor *g, int64_t ignore,
                                     double eps) {
  int64_t N = target->numel, C = x->shape[x->ndim - 1];
  cross_entropy_job j = {.out = gin->data,
                         .lse = (void *)lse->data,
                         .x = x->data,
                         .g = g->data,
                         .target = (const int64_t *)target->data,
                         .C = C,
                         .ignore = ignore,
                         .eps = eps,
                         .f32 = x->dtype == LOOM_F32};
  loom__parallel_for(loom__threads_for(N * C * 4), N, cross_entropy_grad_rows,
                     &j);
}
