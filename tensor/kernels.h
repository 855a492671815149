/* Kernels: compute into given outputs, know nothing of gradients. The op
 * layer (autograd/) checks shapes and dtypes before calling them; kernels
 * assume valid arguments. Inputs may be strided or broadcast views of the
 * output's shape (stride 0). Not installed. */
#ifndef LOOM_KERNELS_H
#define LOOM_KERNELS_H

#include "internal.h"

/* Hot float loops are compiled for AVX-512 (x86-64-v4), AVX2 with FMA
 * (x86-64-v3) and the baseline, and run at the level loom__isa() picks: the
 * widest the CPU has, or the one the LOOM_ISA environment variable names
 * (tensor/isa.c). loom is built for any x86-64 but runs at the width of the
 * machine it is on.
 *
 *   LOOM__ISA_FUNCTION(scale, (float *x, int64_t n, float s), (x, n, s)) {
 *     for (int64_t i = 0; i < n; i++) x[i] *= s;
 *   }
 *
 * defines `static void scale(float *x, int64_t n, float s)`: the body is an
 * always-inline function, inlined into one wrapper per level (an inlined
 * body is compiled for its caller's target), and scale() calls the wrapper
 * of the chosen level. Only void functions. */
typedef enum {
  LOOM__ISA_BASELINE,
  LOOM__ISA_AVX2,
  LOOM__ISA_AVX512,
} loom__isa_level;
loom__isa_level loom__isa(void);

/* ISO C mode keeps a * b + c as two roundings (GCC's -ffp-contract=off);
 * loops marked LOOM__FMA want fused multiply-adds: twice the throughput on
 * AVX2/AVX-512 and one rounding, as BLAS uses. GCC documents the optimize
 * attribute as meant for debugging, but per function it is the only way to
 * contract one loop without changing the rounding of every other kernel;
 * the objdump check in docs/internals.md shows it takes effect. */
#if defined(__GNUC__) && !defined(__clang__)
#define LOOM__FMA __attribute__((optimize("fp-contract=fast")))
#else
#define LOOM__FMA
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LOOM__ISA_FUNCTION_WITH(ATTR, NAME, PARAMS, ARGS)                      \
  static inline __attribute__((always_inline)) void NAME##_body PARAMS;        \
  __attribute__((target("arch=x86-64-v4")))                                    \
  ATTR static void NAME##_avx512 PARAMS {                                      \
    NAME##_body ARGS;                                                          \
  }                                                                            \
  __attribute__((target("arch=x86-64-v3")))                                    \
  ATTR static void NAME##_avx2 PARAMS {                                        \
    NAME##_body ARGS;                                                          \
  }                                                                            \
  static void NAME##_baseline PARAMS { NAME##_body ARGS; }                     \
  static void NAME PARAMS {                                                    \
    switch (loom__isa()) {                                                     \
    case LOOM__ISA_AVX512:                                                     \
      NAME##_avx512 ARGS;                                                      \
      break;                                                                   \
    case LOOM__ISA_AVX2:                                                       \
      NAME##_avx2 ARGS;                                                        \
      break;                                                                   \
    default:                                                                   \
      NAME##_baseline ARGS;                                                    \
    }                                                                          \
  }                                                                            \
  static inline __attribute__((always_inline)) void NAME##_body PARAMS
#else
#define LOOM__ISA_FUNCTION_WITH(ATTR, NAME, PARAMS, ARGS)                      \
  static void NAME PARAMS
#endif
#define LOOM__ISA_FUNCTION(NAME, PARAMS, ARGS)                                 \
  LOOM__ISA_FUNCTION_WITH(, NAME, PARAMS, ARGS)
/* The same, its AVX-512 and AVX2 copies contracting a * b + c into fused
 * multiply-adds: the float32 loops of vmath.h's functions (their
 * polynomials, ~25 % faster), where every layout of an op's operands runs
 * the same copy, so that a result does not depend on the layout. Vector
 * loops and their scalar tails contract alike only where no sum has two
 * products to choose from (a * b + c * d fused either way, differently in
 * each): write such sums so that one operand is not a product
 * (test_vector_math_layout_free). The baseline copy has no FMA to use:
 * each level its own bits. */
#define LOOM__ISA_FUNCTION_FMA(NAME, PARAMS, ARGS)                             \
  LOOM__ISA_FUNCTION_WITH(LOOM__FMA, NAME, PARAMS, ARGS)

/* ---- elementwise maps (kernel_unary.c, kernel_binary.c) ----
 * One inner loop per dtype; NULL where the dtype is not supported. Byte
 * strides; p holds the op's scalar parameters. */
typedef void (*loom__map1_fn)(char *o, const char *x, int64_t n, int64_t so,
                              int64_t sx, const double *p);
typedef void (*loom__map2_fn)(char *o, const char *a, const char *b, int64_t n,
                              int64_t so, int64_t sa, int64_t sb,
                              const double *p);

typedef struct loom__unary_kernel {
  const char *name;
  loom__map1_fn loop[LOOM_DTYPE_COUNT];
  int cost; /* relative cost per element, for the thread threshold */
} loom__unary_kernel;

typedef struct loom__binary_kernel {
  const char *name;
  loom__map2_fn loop[LOOM_DTYPE_COUNT]; /* indexed by the input dtype */
  bool to_bool;                         /* output is bool (comparisons) */
  int cost;
} loom__binary_kernel;

/* out = k(x); x broadcast to out's shape, same dtype. -1 + error if the
 * dtype has no loop. */
int loom__kernel_unary(const loom__unary_kernel *k, loom_tensor *out,
                       const loom_tensor *x, const double *p);
/* out = k(a, b); a and b broadcast to out's shape, same dtype. */
int loom__kernel_binary(const loom__binary_kernel *k, loom_tensor *out,
                        const loom_tensor *a, const loom_tensor *b,
                        const double *p);

/* The kernels of the differentiable ops of one tensor (unary_ops.def):
 * loom__<name>_kernel, and loom__<name>_grad_kernel (saved value, incoming
 * gradient -> input gradient) where the gradient is elementwise. */
#define GRAD_DECL_X(name)                                                      \
  extern const loom__binary_kernel loom__##name##_grad_kernel;
#define GRAD_DECL_Y GRAD_DECL_X
#define GRAD_DECL_OPS(name)
#define UNARY(name, dtypes, cost, forward, from, gradient, grad_cost)          \
  extern const loom__unary_kernel loom__##name##_kernel;                       \
  GRAD_DECL_##from(name)
#define UNARY_P UNARY
#include "unary_ops.def"
#undef UNARY
#undef UNARY_P
#undef GRAD_DECL_X
#undef GRAD_DECL_Y
#undef GRAD_DECL_OPS

/* Kernels no gradient passes through. */
extern const loom__unary_kernel loom__eq_scalar_kernel, loom__ne_scalar_kernel,
    loom__lt_scalar_kernel, loom__le_scalar_kernel, loom__gt_scalar_kernel,
    loom__ge_scalar_kernel, loom__logical_not_kernel;
extern const loom__binary_kernel loom__add_kernel, loom__sub_kernel,
    loom__mul_kernel, loom__div_kernel, loom__pow_kernel, loom__maximum_kernel,
    loom__minimum_kernel, loom__add_scaled_kernel, loom__eq_kernel,
    loom__ne_kernel, loom__lt_kernel, loom__le_kernel, loom__gt_kernel,
    loom__ge_kernel, loom__logical_and_kernel, loom__logical_or_kernel;

/* ---- copies (kernel_copy.c) ---- */

/* out = x converted to out's dtype; x broadcast to out's shape. */
void loom__kernel_copy(loom_tensor *out, const loom_tensor *x);
void loom__kernel_fill(loom_tensor *out, double value);
/* out = cond ? a : b (cond bool; all broadcast to out; a, b out's dtype). */
void loom__kernel_where(loom_tensor *out, const loom_tensor *cond,
                        const loom_tensor *a, const loom_tensor *b);
/* out = mask ? value : x. */
void loom__kernel_masked_fill(loom_tensor *out, const loom_tensor *x,
                              const loom_tensor *mask, double value);
/* True when any element is NaN or +-Inf (float dtypes). */
bool loom__kernel_has_nonfinite(const loom_tensor *x);

/* ---- reductions (kernel_reduce.c) ---- */

typedef enum loom__reduce_op {
  LOOM__REDUCE_SUM,
  LOOM__REDUCE_PROD,
  LOOM__REDUCE_MAX,
  LOOM__REDUCE_MIN,
} loom__reduce_op;

/* out (x's ndim, size 1 on reduced dims) = reduction of x over the dims
 * where out has size 1 and x does not. Float sums accumulate in double, in
 * an order fixed by the shape (not the thread count). */
int loom__kernel_reduce(loom__reduce_op op, loom_tensor *out,
                        const loom_tensor *x);
/* Max/min along one dim: values (x's dtype) and int64 indices, both with
 * x's ndim and size 1 on `dim`. Either may be NULL. First occurrence wins;
 * NaN counts as the largest. */
void loom__kernel_arg_reduce(bool is_max, loom_tensor *values,
                             loom_tensor *indices, const loom_tensor *x,
                             int dim);
/* Softmax / log-softmax of contiguous x along dim into contiguous out. */
void loom__kernel_softmax(loom_tensor *out, const loom_tensor *x, int dim,
                          bool log);
/* Their gradients: gin = y * (g - sum(g*y)) or g - exp(y) * sum(g). */
void loom__kernel_softmax_grad(loom_tensor *gin, const loom_tensor *y,
                               const loom_tensor *g, int dim, bool log);
/* Cross entropy of contiguous logits x (..., C), rows of C, against
 * contiguous int64 targets (...), one per row,
 * label smoothed by eps: with m_i = max_j x[i, j] and l_i = log sum_j
 * exp(x[i, j] - m_i), loss[i] = l_i - (1 - eps) (x[i, t_i] - m_i) - eps / C
 * sum_j (x[i, j] - m_i); m_i and l_i go to lse[2 i], lse[2 i + 1] (lse
 * holds 2 N, kept apart: m_i + l_i loses l_i where |m_i| is large). Rows
 * whose target is `ignore` get 0 (all three). Targets are checked by the
 * caller. */
void loom__kernel_cross_entropy(loom_tensor *loss, loom_tensor *lse,
                                const loom_tensor *x, const loom_tensor *target,
                                int64_t ignore, double eps);
/* Its gradient for the loss's gradient g (N): gin[i, j] = g[i] (exp(x[i, j]
 * - m_i - l_i) - eps / C - (1 - eps) [j == t_i]), zero rows where ignored.
 * gin may be x itself (each element is read before it is written). */
void loom__kernel_cross_entropy_grad(loom_tensor *gin, const loom_tensor *x,
                                     const loom_tensor *lse,
                                     const loom_tensor *target,
                                     const loom_tensor *g, int64_t ignore,
                                     double eps);

/* ---- scans and sorting (kernel_scan.c, kernel_sort.c) ---- */

/* out = the cumulative sum (product) of x along dim, from the last element
 * back when reverse; x and out contiguous, of one dtype: float32, float64
 * (accumulated in double) or int64 (wrapping around). */
void loom__kernel_cumulative(loom_tensor *out, const loom_tensor *x, int dim,
                             bool product, bool reverse);
/* indices (int64, contiguous, x's shape) = the positions along dim of each
 * line's elements in ascending (descending) order, equal elements in their
 * order, NaN after every number (before, descending); x contiguous, any
 * dtype. 0, or -1 with an error when out of memory. */
int loom__kernel_sort(loom_tensor *indices, const loom_tensor *x, int dim,
                      bool descending);

/* ---- layer normalisation (kernel_norm.c) ---- */
/* rows x cols contiguous x (float32/64) normalised per row: y = (x - mean)
 * rstd w + b, w and b (cols each) optional (NULL). mean and rstd receive
 * each row's statistics (rows elements of x's dtype). */
void loom__kernel_layer_norm(loom_dtype dtype, int64_t rows, int64_t cols,
                             const void *x, const void *w, const void *b,
                             double eps, void *y, void *mean, void *rstd);
/* Its gradients from gy: dx (rows x cols), dw and db (cols, summed over
 * rows); any of the three may be NULL when not wanted. */
void loom__kernel_layer_norm_grad(loom_dtype dtype, int64_t rows, int64_t cols,
                                  const void *gy, const void *x, const void *w,
                                  const void *mean, const void *rstd, void *dx,
                                  void *dw, void *db);

/* ---- batch normalisation (kernel_batch_norm.c) ---- */
/* Contiguous x of n x c x l (float32/64) normalised per channel: y = (x -
 * mean) rstd w + b, w and b (c each) optional, then relu(y) if relu.
 * train: mean and var (c) receive the batch's statistics (var biased);
 * else they hold the statistics to use. rstd (c) receives
 * 1 / sqrt(var + eps). */
void loom__kernel_batch_norm(loom_dtype dtype, int64_t n, int64_t c, int64_t l,
                             const void *x, const void *w, const void *b,
                             double eps, bool train, bool relu, void *mean,
                             void *var, void *rstd, void *y);
/* Its gradients from gy: dx (n x c x l; through the batch statistics when
 * train), dw and db (c); any of the three may be NULL. relu_y: NULL, or
 * the output of a forward with relu (gy then passes where it is > 0).
 * Returns 0, or -1 with LOOM_ERR_MEMORY. */
int loom__kernel_batch_norm_grad(loom_dtype dtype, int64_t n, int64_t c,
                                 int64_t l, const void *gy, const void *x,
                                 const void *w, const void *mean,
                                 const void *rstd, bool train,
                                 const void *relu_y, void *dx, void *dw,
                                 void *db);

/* ---- matrix products (kernel_gemm.c) ---- */

/* out = alpha * a @ b + beta * out, for 2-D a (n x k), b (k x m), out
 * (n x m) with unit inner stride; a and b may have either unit stride. */
void loom__kernel_gemm(loom_tensor *out, const loom_tensor *a,
                       const loom_tensor *b, double alpha, double beta);
/* out = bias + a @ b, bias (out's columns, contiguous float32) in every
 * row, in one pass where loom's kernel does the product: the bits of
 * copying bias into out's rows and then out += a @ b. a, b and out as for
 * loom__kernel_gemm (views BLAS reads in place). False, having done
 * nothing, wherever loom__kernel_gemm_own would not run (the product
 * would go to OpenBLAS, fewer than 16 columns, no scratch memory) and for
 * a float64 or column-major out or an empty inner dimension: the caller
 * then copies and accumulates. */
bool loom__kernel_gemm_bias(loom_tensor *out, const loom_tensor *a,
                            const loom_tensor *b, const float *bias);
/* True if a 2-D view can be passed to BLAS without a copy. */
bool loom__kernel_gemm_ok(const loom_tensor *m);
/* The same on raw pointers (row-major, element strides), for batched and
 * im2col callers. */
void loom__kernel_gemm_raw(loom_dtype dtype, bool ta, bool tb, int64_t n,
                           int64_t m, int64_t k, double alpha, const void *a,
                           int64_t lda, const void *b, int64_t ldb, double beta,
                           void *c, int64_t ldc);

/* ---- fused attention (kernel_attention.c) ----
 * softmax(q k^T scale + mask) v per batch element: nb = product of the nbd
 * batch sizes; q (..., L, E), k (..., S, E), v (..., S, Ev) read in place
 * (element strides: per batch dim, and between rows; the last dim
 * contiguous); mask NULL or additive, at broadcast strides (0 on broadcast
 * dims). */
typedef struct {
  loom_dtype dtype;
  int nbd;
  int64_t nb, batch[LOOM_MAX_DIMS];
  int64_t L, S, E, Ev;
  const char *q, *k, *v, *mask;
  int64_t qs[LOOM_MAX_DIMS], ks[LOOM_MAX_DIMS], vs[LOOM_MAX_DIMS],
      ms[LOOM_MAX_DIMS];
  int64_t q_row, k_row, v_row, mask_row, mask_col;
  double scale;
  bool causal; /* key j > query i blocked */
  /* dropout of the weights with probability `dropout` (0: none): the mask
   * is elements [b L S, (b + 1) L S) of loom__dropout_mask's with drop_key
   * for batch element b, made again where needed, never stored */
  double dropout;
  uint64_t drop_key;
} loom__attention_args;
/* out (batch..., L, Ev; rows at out's strides) = the weights @ v, block by
 * block: each block of weights lives in one thread's scratch memory while
 * it is in cache, and nothing of it is kept. -1 + error when out of
 * memory. */
int loom__kernel_attention(const loom__attention_args *a, loom_tensor *out);
/* Gradients of q, k, v (NULL where not wanted; rows at their strides, as
 * for g, the output's gradient), each block of weights computed again
 * exactly as the forward pass did. -1 + error when out of memory. */
int loom__kernel_attention_backward(const loom__attention_args *a,
                                    const loom_tensor *g, loom_tensor *dq,
                                    loom_tensor *dk, loom_tensor *dv);

/* A right-hand operand packed once for many products (float32 only;
 * kernel_gemm_packed.c): B is K x N, read from b with leading dimension ld,
 * or as the transpose of an N x K matrix when trans. */
typedef struct loom__packed loom__packed;
loom__packed *loom__kernel_pack(const float *b, int64_t K, int64_t N,
                                int64_t ld, bool trans);
void loom__kernel_packed_free(loom__packed *p);
/* C (M x N, ldc) = A (M x K, lda) B, or C += A B when accumulate. */
void loom__kernel_gemm_packed(int64_t M, const float *a, int64_t lda,
                              const loom__packed *p, float *c, int64_t ldc,
                              bool accumulate);
/* C (M x N, ldc) = bias + A B, bias (N floats) added to every row; the
 * same bits as C = bias followed by the accumulating product, without the
 * pass that writes and reads C first. */
void loom__kernel_gemm_packed_bias(int64_t M, const float *a, int64_t lda,
                                   const loom__packed *p, const float *bias,
                                   float *c, int64_t ldc);

/* C (M x N, ldc) = op(A) op(B), or C += op(A) op(B) when accumulate, with
 * op(A) M x K (A stored M x K at lda, or K x M when ta) and op(B) K x N (B
 * stored K x N at ldb, or N x K when tb), by the packed micro-kernel, B
 * packed a panel at a time. Leading dimensions at least the stored rows'
 * lengths; C must not overlap A, B or bias (it holds partial sums
 * between chunks of k). Without accumulate C is only written (NaN there is
 * ignored), each row starting from bias (N floats) when it is not NULL:
 * the bits of C = bias in every row, then C += op(A) op(B); with
 * accumulate bias is ignored. Runs on the AVX-512 and AVX2 paths, for N
 * >= 16; whether it is the faster choice there is the caller's
 * (loom__kernel_gemm_raw asks what OpenBLAS runs). Returns false, having
 * done nothing, where it does not run or its scratch memory is not there:
 * the caller then uses BLAS; no error is recorded. Results are the same
 * for any thread count. */
bool loom__kernel_gemm_own(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                           const float *a, int64_t lda, const float *b,
                           int64_t ldb, const float *bias, bool accumulate,
                           float *c, int64_t ldc);
/* The same product C (M x N, ldc) [+]= A^T B with A (K x M) and B (K x N)
 * given as K row pointers each: a_rows[k] holds A's row k (M floats),
 * b_rows[k] B's (N floats), rows anywhere in memory. Same returns. */
bool loom__kernel_gemm_own_rows(int64_t M, int64_t N, int64_t K,
                                const float *const *a_rows,
                                const float *const *b_rows, bool accumulate,
                                float *c, int64_t ldc);
/* loom__kernel_gemm_own_rows where loom__kernel_gemm_raw would take a
 * float32 product to loom's kernel; false, having done nothing, where it
 * would go to OpenBLAS: the caller then stacks the rows into matrices (a
 * weight's gradient summed over the steps' separate tensors, without
 * that copy where it can). */
bool loom__kernel_gemm_rows(int64_t M, int64_t N, int64_t K,
                            const float *const *a_rows,
                            const float *const *b_rows, bool accumulate,
                            float *c, int64_t ldc);

/* out[0..cols) = the column sums of the float32 rows rows[0..n) (cols
 * floats each, anywhere in memory), each in double in row order and
 * rounded once: loom_sum's bits over the same rows stacked into a matrix
 * (a bias's gradient over the steps' separate gradient tensors). Results
 * do not depend on the thread count. */
void loom__kernel_row_pointer_sums(float *out, const float *const *rows,
                                   int64_t n, int64_t cols);

/* Packings reused across products: while a reuse region is open on this
 * thread (a sequence runner's steps, one backward pass), the packing of a
 * 2-D float32 matrix that requires grad (a parameter, or a value computed
 * from them; never a scratch buffer written through loom_data) is made on
 * first use and returned again while the matrix's storage version and
 * geometry are unchanged. The region keeps the matrix alive, so its
 * address cannot be reused; closing the outermost region frees all. NULL
 * outside a region, for other matrices, or with an error recorded: the
 * caller then uses BLAS. trans: B = m^T. */
void loom__kernel_reuse_begin(void);
void loom__kernel_reuse_end(void);
const loom__packed *loom__kernel_pack_reused(const loom_tensor *m, bool trans);
/* Rows of A below which a packed product beats BLAS's (which repacks B). */
#define LOOM__PACKED_MAX_ROWS 128

/* ---- indexing (kernel_index.c) ---- */

/* out[..i..] = x[..index[..i..]..] along dim; index int64, values checked
 * by the caller. */
void loom__kernel_gather(loom_tensor *out, const loom_tensor *x, int dim,
                         const loom_tensor *index);
/* out[..index[..i..]..] += src[..i..] along dim (out already holds the base
 * values). */
void loom__kernel_scatter_add(loom_tensor *out, int dim,
                              const loom_tensor *index, const loom_tensor *src);
/* out = x.index_select(dim, index) (index 1-D). */
void loom__kernel_index_select(loom_tensor *out, const loom_tensor *x, int dim,
                               const loom_tensor *index);
/* out.index_select(dim, index) += alpha * src, accumulating repeats. */
void loom__kernel_index_add(loom_tensor *out, int dim, const loom_tensor *index,
                            const loom_tensor *src, double alpha);
/* -1 + error naming op when an index is outside [0, size). */
int loom__kernel_check_index(const loom_tensor *index, int64_t size,
                             const char *op);

/* ---- convolution and pooling (kernel_conv.c, kernel_pool.c) ---- */

typedef struct loom__conv_geom {
  int64_t n, c, h, w; /* input */
  int64_t oc, kh, kw; /* weight: oc x c/groups x kh x kw */
  int64_t oh, ow;     /* output */
  int64_t sh, sw, ph, pw, dh, dw, groups;
} loom__conv_geom;

/* Contiguous NCHW. bias may be NULL. */
int loom__kernel_conv2d(loom_tensor *out, const loom_tensor *x,
                        const loom_tensor *w, const loom_tensor *bias,
                        const loom__conv_geom *g);
/* Gradients of conv2d; any output may be NULL (not needed); gx and gw are
 * overwritten. */
int loom__kernel_conv2d_backward(const loom_tensor *gout, const loom_tensor *x,
                                 const loom_tensor *w, loom_tensor *gx,
                                 loom_tensor *gw, loom_tensor *gb,
                                 const loom__conv_geom *g);

/* F.unfold and F.fold over contiguous N x C x H x W planes and N x (C kh
 * kw) x (oh ow) columns (g->c channels, groups unused): unfold writes every
 * column, fold overwrites x with the sum of the columns placed back
 * (positions in the padding are dropped). */
void loom__kernel_unfold(loom_tensor *cols, const loom_tensor *x,
                         const loom__conv_geom *g);
void loom__kernel_fold(loom_tensor *x, const loom_tensor *cols,
                       const loom__conv_geom *g);

typedef struct loom__pool_geom {
  int64_t planes, h, w, oh, ow;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool exclude_pad;
} loom__pool_geom;

/* Max pool of contiguous x into out; indices (int64, out's shape) may be
 * NULL. Backward: gx = the gradient gout sends to the positions of x each
 * output took (found again in x). */
void loom__kernel_max_pool2d(loom_tensor *out, loom_tensor *indices,
                             const loom_tensor *x, const loom__pool_geom *g);
void loom__kernel_max_pool2d_backward(loom_tensor *gx, const loom_tensor *gout,
                                      const loom_tensor *x,
                                      const loom__pool_geom *g);
void loom__kernel_avg_pool2d(loom_tensor *out, const loom_tensor *x,
                             const loom__pool_geom *g, bool backward);
void loom__kernel_adaptive_avg_pool2d(loom_tensor *out, const loom_tensor *x,
                                      bool backward);
/* The inputs [lo, hi) that output position o of one dim averages: for
 * avg_pool2d (stride s, padding p, kernel k over `size` inputs), with
 * *padded the window's length counting padding (count_include_pad's
 * divisor), and for adaptive pooling to `out` positions. */
void loom__avg_pool_window(int64_t o, int64_t s, int64_t p, int64_t k,
                           int64_t size, int64_t *lo, int64_t *hi,
                           int64_t *padded);
void loom__adaptive_pool_window(int64_t o, int64_t out, int64_t size,
                                int64_t *lo, int64_t *hi);

/* ---- fused recurrent steps (kernel_rnn.c) ----
 * Elementwise parts of one time step over B x H blocks of dtype t;
 * `active` (B flags or NULL) marks rows still inside their sequence. The
 * LSTM's peep is its three peephole vectors (H each; zeros without). */
void loom__kernel_lstm_step(loom_dtype t, int64_t B, int64_t H, void *gates,
                            const void *c_prev, const void *h_prev, void *c,
                            void *h, void *out, const void *const *peep,
                            const uint8_t *active);
/* dgates may be act itself: the gradients then replace the activations. */
void loom__kernel_lstm_step_backward(loom_dtype t, int64_t B, int64_t H,
                                     const void *act, const void *c_prev,
                                     const void *c, const void *dh,
                                     const void *dc, void *dgates,
                                     void *dc_prev, const void *const *peep,
                                     const uint8_t *active);
/* dpeep (3H, float64) += the peepholes' gradients of one step: its gates'
 * gradients dgates (B x 4H) times the cell states they saw, c_prev for the
 * input and forget gates and c for the output gate (B x H), rows in order. */
void loom__kernel_lstm_peephole_grad(loom_dtype t, int64_t B, int64_t H,
                                     const void *dgates, const void *c_prev,
                                     const void *c, double *dpeep,
                                     const uint8_t *active);
/* One GRU step, in place: act (B x 3H) holds the input part (with b_ih)
 * and receives the gates r, z, n; hg (B x 3H) is the recurrent part (with
 * b_hh); h (B x H) receives the new state, out (or NULL) a copy of it.
 * Inactive rows keep h_prev and output zeros; their act is left as is. */
void loom__kernel_gru_step(loom_dtype t, int64_t B, int64_t H, const void *hg,
                           const void *h_prev, void *act, void *h, void *out,
                           const uint8_t *active);
/* One step back, in place: act (B x 3H: r, z, n) becomes the gradient of
 * the input part, hn (the recurrent part's n gate, B x H, all of that part
 * backward reads) the gradient of that part's n columns. dhg (B x 3H)
 * receives the recurrent part's gradient; dh_prev (B x H) the part of the
 * previous state's gradient that does not pass through W_hh. Inactive
 * rows: zero gradients, dh passed on whole. */
void loom__kernel_gru_step_backward(loom_dtype t, int64_t B, int64_t H,
                                    void *act, void *hn, const void *h_prev,
                                    const void *dh, void *dhg, void *dh_prev,
                                    const uint8_t *active);
/* One plain RNN step: h = act(pre), out a copy (past a sequence's end h
 * keeps h_prev, out 0). h may be h_prev: element j is read before it is
 * written, at j (so no restrict on these pointers). */
void loom__kernel_rnn_step(loom_dtype t, int64_t B, int64_t H, const void *pre,
                           const void *h_prev, void *h, void *out, bool relu,
                           const uint8_t *active);
/* h: the step's output (read at live rows only); dpre = act'(h) * dh, 0
 * past a sequence's end. */
void loom__kernel_rnn_step_backward(loom_dtype t, int64_t B, int64_t H,
                                    const void *h, const void *dh, void *dpre,
                                    bool relu, const uint8_t *active);

/* ---- dropout (random.c) ----
 * out = x * mask / (1 - p), mask (uint8, 1 keeps) drawn with keep
 * probability 1 - p, p in (0, 1); all contiguous, x float. Advances g by
 * one draw whatever the size. */
void loom__kernel_dropout(loom_tensor *out, loom_tensor *mask,
                          const loom_tensor *x, double p, loom_rng *g);
/* The draw loom__kernel_dropout makes from g for its mask (its key), and
 * elements [first, first + n) of the mask it makes from that key with drop
 * probability p, into mask[0..n): any part of a mask can be made again
 * later from the key alone. */
uint64_t loom__dropout_key(loom_rng *g);
void loom__dropout_mask(uint8_t *mask, int64_t first, int64_t n, uint64_t key,
                        double p);
/* gin = g * mask / (1 - p); all contiguous. */
void loom__kernel_dropout_backward(loom_tensor *gin, const loom_tensor *g,
                                   const loom_tensor *mask, double p);

#endif
