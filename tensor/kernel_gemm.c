/* Matrix products through OpenBLAS. A 2-D view whose rows or columns are
 * unit-stride goes to BLAS as it is, as a transpose when its columns are
 * the contiguous direction; nothing is copied. */
#include "kernels.h"

#include <cblas.h>

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

bool loom_kernel_gemm_ok(const loom_tensor *m) {
  bool t;
  int64_t ld;
  return m->ndim == 2 &&
         layout(m->shape[0], m->shape[1], m->strides[0], m->strides[1], &t,
                &ld);
}

void loom_kernel_gemm_raw(loom_dtype dtype, bool ta, bool tb, int64_t n,
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
  enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE TB = tb ? CblasTrans : CblasNoTrans;
  if (dtype == LOOM_F32)
    cblas_sgemm(CblasRowMajor, TA, TB, (blasint)n, (blasint)m, (blasint)k,
                (float)alpha, a, (blasint)lda, b, (blasint)ldb, (float)beta,
                c, (blasint)ldc);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, (blasint)n, (blasint)m, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
                (blasint)ldc);
}

void loom_kernel_gemm(loom_tensor *out, const loom_tensor *a,
                      const loom_tensor *b, double alpha, double beta) {
  bool ta = false, tb = false, tc = false;
  int64_t lda = 1, ldb = 1, ldc = 1;
  layout(a->shape[0], a->shape[1], a->strides[0], a->strides[1], &ta, &lda);
  layout(b->shape[0], b->shape[1], b->strides[0], b->strides[1], &tb, &ldb);
  layout(out->shape[0], out->shape[1], out->strides[0], out->strides[1], &tc,
         &ldc);
  if (tc) { /* a column-major out: compute out^T = b^T a^T instead */
    loom_kernel_gemm_raw(out->dtype, !tb, !ta, b->shape[1], a->shape[0],
                         a->shape[1], alpha, b->data, ldb, a->data, lda, beta,
                         out->data, ldc);
    return;
  }
  loom_kernel_gemm_raw(out->dtype, ta, tb, a->shape[0], b->shape[1],
                       a->shape[1], alpha, a->data, lda, b->data, ldb, beta,
                       out->data, ldc);
}
