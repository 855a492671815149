/* Matrix products through OpenBLAS, or float32 ones through loom's packed
 * micro-kernel where that is faster (own_products below). A 2-D view
 * whose rows or columns are unit-stride goes to BLAS as it is, as a
 * transpose when its columns are the contiguous direction; nothing is
 * copied.
 *
 * Why loom splits large products over its own workers and runs OpenBLAS on
 * one thread per call: an idle OpenBLAS thread keeps polling with
 * sched_yield for a long while after each product (about 0.1 s), so in a
 * training step that alternates products with loom's kernels it competed
 * with loom's workers for the cores: 12% of the LSTM step's CPU time went
 * to yielding. One set of threads for everything removes that, and a
 * product split into row or column blocks runs as fast as OpenBLAS's own
 * split. */
#include "kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <strings.h>

/* How BLAS should read a rows x cols view: returns false if it cannot. */
static bool layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                   bool *trans, int64_t *ld) {
  if (cols <= 1 && rows <= 1) {
    *trans = false;
    *ld = cols > 1 ? cols : 1;
    return true;
  }
  if ((s1 == 1 || cols == 1) && s0 >= (cols > 1 ? cols : 1) && rows > 0) {
    *trans = false;
    *ld = rows == 1 ? (cols > 1 ? cols : 1) : s0;
    return true;
  }
  if ((s0 == 1 || rows == 1) && s1 >= (rows > 1 ? rows : 1)) {
    *trans = true;
    *ld = cols == 1 ? (rows > 1 ? rows : 1) : s1;
    return true;
  }
  return false;
}

bool loom__kernel_gemm_ok(const loom_tensor *m) {
  bool t;
  int64_t ld;
  return m->ndim == 2 && layout(m->shape[0], m->shape[1], m->strides[0],
                                m->strides[1], &t, &ld);
}

/* Multiply-adds of the smallest part of a split product (about 20 us, and
 * above OpenBLAS's small-matrix kernels, ~1e6). */
#define GEMM_PART_MIN ((int64_t)1 << 21)
/* At most this many parts, a power of two so that 2, 4 and 8 threads share
 * them evenly. */
#define GEMM_MAX_PARTS 8
/* Each part repacks the whole operand that is not split (OpenBLAS's own
 * threads share one packing), a memory-bound pass: beyond two parts, a part
 * must do this many multiply-adds per element of that operand. (Four parts
 * of a 2048^3 product, 512 per element, ran at 0.92-0.94x OpenBLAS's own
 * threads; two at 0.96-0.98x.) */
#define GEMM_REPACK_RATIO 1024
/* Block edges are multiples of this, a multiple of BLAS's register tiles. */
#define GEMM_ALIGN 16

typedef struct {
  loom_dtype dtype;
  bool ta, tb, by_rows;
  int64_t n, m, k, lda, ldb, ldc, parts;
  double alpha, beta;
  const char *a, *b;
  char *c;
} gemm_job;

static void blas_call(const gemm_job *j, const void *a, const void *b, void *c,
                      int64_t n, int64_t m) {
  enum CBLAS_TRANSPOSE TA = j->ta ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE TB = j->tb ? CblasTrans : CblasNoTrans;
  if (j->dtype == LOOM_F32)
    cblas_sgemm(CblasRowMajor, TA, TB, (blasint)n, (blasint)m, (blasint)j->k,
                (float)j->alpha, a, (blasint)j->lda, b, (blasint)j->ldb,
                (float)j->beta, c, (blasint)j->ldc);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, (blasint)n, (blasint)m, (blasint)j->k,
                j->alpha, a, (blasint)j->lda, b, (blasint)j->ldb, j->beta, c,
                (blasint)j->ldc);
}

/* Parts [lo, hi) of the product, each its own BLAS call: rows of C and
 * op(A), or columns of C and op(B), cut at aligned edges. The parts depend
 * on the shape only, so each element is computed by the same call whatever
 * the thread count: results are the same with 1 thread or 8. */
static void gemm_parts(void *ctx, int64_t lo, int64_t hi) {
  const gemm_job *j = ctx;
  int64_t size = j->dtype == LOOM_F32 ? 4 : 8;
  int64_t len = j->by_rows ? j->n : j->m;
  int64_t blocks = (len + GEMM_ALIGN - 1) / GEMM_ALIGN;
  for (int64_t p = lo; p < hi; p++) {
    int64_t r0 = blocks * p / j->parts * GEMM_ALIGN;
    int64_t r1 = blocks * (p + 1) / j->parts * GEMM_ALIGN;
    r1 = r1 < len ? r1 : len;
    if (r0 >= r1)
      continue;
    if (j->by_rows)
      blas_call(j, j->a + (j->ta ? r0 : r0 * j->lda) * size, j->b,
                j->c + r0 * j->ldc * size, r1 - r0, j->m);
    else
      blas_call(j, j->a, j->b + (j->tb ? r0 * j->ldb : r0) * size,
                j->c + r0 * size, j->n, r1 - r0);
  }
}

static void blas_single_threaded(void) { openblas_set_num_threads(1); }

/* Whether float32 products go to loom's packed micro-kernel instead: when
 * its vectors are wider than those of the kernels OpenBLAS chose for this
 * CPU. On the 2-core AMD EPYC (Zen 5) with OpenBLAS at its Haswell
 * kernels, loom's 512-bit ones ran 1.3-2.1x OpenBLAS's GFLOP/s from 64^3
 * to 2048^3 (bench/matmul); against OpenBLAS's own AVX-512 kernels it
 * ranged from 0.6x to 1.25x, so those keep the products. An OpenBLAS older
 * than the CPU falls back to its oldest kernels: Debian 12's 0.3.21 runs
 * Prescott's SSE3 code on a 2-core Xeon of model 207, 30 GFLOP/s a core
 * where the CPU does 160, and there loom's AVX2 kernel takes over too
 * (LOOM_ISA=avx2: the encoder's step 342 -> 158 ms, bench/run_models.sh). */
static bool own_products;

/* The vector bits of OpenBLAS's float32 kernels for the core it named:
 * 512 for its AVX-512 cores, 256 for its AVX2 ones (Haswell's kernels,
 * which Zen runs too), 128 for the rest (SSE, AVX without FMA, and the
 * Bulldozer family's FMA4 kernels, Excavator's included). */
static int blas_vector_bits(const char *core) {
  static const char *const wide[] = {"skylakex", "cooperlake",
                                     "sapphirerapids"};
  static const char *const fma256[] = {"haswell", "zen"};
  for (size_t i = 0; core && i < sizeof wide / sizeof *wide; i++)
    if (strcasecmp(core, wide[i]) == 0)
      return 512;
  for (size_t i = 0; core && i < sizeof fma256 / sizeof *fma256; i++)
    if (strcasecmp(core, fma256[i]) == 0)
      return 256;
  return 128;
}

static void choose_products(void) {
  loom__isa_level isa = loom__isa();
  int own_bits = isa == LOOM__ISA_AVX512 ? 512
                 : isa == LOOM__ISA_AVX2 ? 256
                                         : 0;
  own_products = own_bits > blas_vector_bits(openblas_get_corename());
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT,
                      products_chosen = PTHREAD_ONCE_INIT;

bool loom__kernel_gemm_rows(int64_t M, int64_t N, int64_t K,
                            const float *const *a_rows,
                            const float *const *b_rows, bool accumulate,
                            float *c, int64_t ldc) {
  pthread_once(&products_chosen, choose_products);
  return own_products && loom__kernel_gemm_own_rows(M, N, K, a_rows, b_rows,
                                                    accumulate, c, ldc);
}

void loom__kernel_gemm_raw(loom_dtype dtype, bool ta, bool tb, int64_t n,
                           int64_t m, int64_t k, double alpha, const void *a,
                           int64_t lda, const void *b, int64_t ldb, double beta,
                           void *c, int64_t ldc) {
  if (n == 0 || m == 0)
    return;
  if (k == 0) { /* BLAS leaves C alone when k == 0 only if beta == 1 */
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < m; j++) {
        if (dtype == LOOM_F32) {
          float *p = (float *)c + i * ldc + j;
          *p = beta == 0 ? 0.0f : (float)(*p * beta);
        } else {
          double *p = (double *)c + i * ldc + j;
          *p = beta == 0 ? 0.0 : *p * beta;
        }
      }
    return;
  }
  /* OpenBLAS at one thread from loom's first product on, whichever does
   * it (README: Threads). */
  pthread_once(&blas_once, blas_single_threaded);
  pthread_once(&products_chosen, choose_products);
  if (own_products && dtype == LOOM_F32 && alpha == 1 &&
      (beta == 0 || beta == 1) &&
      loom__kernel_gemm_own(ta, tb, n, m, k, a, lda, b, ldb, NULL, beta == 1, c,
                            ldc))
    return;
  gemm_job j = {.dtype = dtype,
                .ta = ta,
                .tb = tb,
                .by_rows = n >= m,
                .n = n,
                .m = m,
                .k = k,
                .lda = lda,
                .ldb = ldb,
                .ldc = ldc,
                .alpha = alpha,
                .beta = beta,
                .a = a,
                .b = b,
                .c = c};
  /* As many parts as keep the smallest (one block short of the others)
   * above GEMM_PART_MIN, rounded down to a power of two. */
  int64_t len = j.by_rows ? n : m;
  int64_t blocks = (len + GEMM_ALIGN - 1) / GEMM_ALIGN;
  int64_t per_block = n * m * k / len * GEMM_ALIGN;
  int64_t parts = 1;
  int64_t whole = j.by_rows ? k * m : n * k; /* the operand not split */
  while (parts < GEMM_MAX_PARTS &&
         (blocks / (2 * parts)) * per_block >= GEMM_PART_MIN &&
         (parts == 1 ||
          (blocks / (2 * parts)) * per_block >= GEMM_REPACK_RATIO * whole))
    parts *= 2;
  if (parts == 1) {
    blas_call(&j, a, b, c, n, m);
    return;
  }
  j.parts = parts;
  int64_t nt = loom_num_threads();
  loom__parallel_for((int)(nt < parts ? nt : parts), parts, gemm_parts, &j);
}

/* How BLAS reads the three views of out = a @ b (see layout). */
typedef struct {
  bool ta, tb, tc;
  int64_t lda, ldb, ldc;
} views;

static views layouts(const loom_tensor *out, const loom_tensor *a,
                     const loom_tensor *b) {
  views v = {false, false, false, 1, 1, 1};
  layout(a->shape[0], a->shape[1], a->strides[0], a->strides[1], &v.ta, &v.lda);
  layout(b->shape[0], b->shape[1], b->strides[0], b->strides[1], &v.tb, &v.ldb);
  layout(out->shape[0], out->shape[1], out->strides[0], out->strides[1], &v.tc,
         &v.ldc);
  return v;
}

void loom__kernel_gemm(loom_tensor *out, const loom_tensor *a,
                       const loom_tensor *b, double alpha, double beta) {
  views v = layouts(out, a, b);
  if (v.tc) { /* a column-major out: compute out^T = b^T a^T instead */
    loom__kernel_gemm_raw(out->dtype, !v.tb, !v.ta, b->shape[1], a->shape[0],
                          a->shape[1], alpha, b->data, v.ldb, a->data, v.lda,
                          beta, out->data, v.ldc);
    return;
  }
  loom__kernel_gemm_raw(out->dtype, v.ta, v.tb, a->shape[0], b->shape[1],
                        a->shape[1], alpha, a->data, v.lda, b->data, v.ldb,
                        beta, out->data, v.ldc);
}

bool loom__kernel_gemm_bias(loom_tensor *out, const loom_tensor *a,
                            const loom_tensor *b, const float *bias) {
  views v = layouts(out, a, b);
  /* with K = 0 the caller's copied bias is the whole result */
  if (out->dtype != LOOM_F32 || v.tc || a->shape[1] == 0)
    return false;
  pthread_once(&blas_once, blas_single_threaded);
  pthread_once(&products_chosen, choose_products);
  return own_products &&
         loom__kernel_gemm_own(v.ta, v.tb, a->shape[0], b->shape[1],
                               a->shape[1], (const float *)a->data, v.lda,
                               (const float *)b->data, v.ldb, bias, false,
                               (float *)out->data, v.ldc);
}
