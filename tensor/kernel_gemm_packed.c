/* Products with a right operand packed once and reused: C += A B for a
 * small number of rows M (a recurrent step's batch) against the same B at
 * every step. BLAS repacks B on each call, which for M = 32 costs about as
 * much as the product; packing once per sequence makes the step ~1.7x
 * faster (bench/rnn) and ~5x at M = 1.
 *
 * B is stored as column panels of NR floats, k-major inside a panel. The
 * micro-kernel keeps a block of C in vector registers, sized for each
 * instruction set's register file so that nothing spills inside the k loop
 * (`objdump -d build/libloom.so | awk '/<block_avx2>:/,/ret/'` shows only
 * vfmadd231ps and loads in it):
 *   AVX-512 (32 zmm): 8 rows x 32 columns = 16 accumulators + 2 of B;
 *   AVX2    (16 ymm): 6 rows x 16 columns = 12 accumulators + 2 of B + A;
 *   baseline (16 xmm): 6 rows x 8 columns, the same shape at 4 floats.
 * Each block's row count is a compile-time constant (one copy per count),
 * so a batch of 1 keeps its accumulators in registers too. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#define NR 32 /* panel width */

struct loom__packed {
  int64_t K, N, panels;
  float *data; /* panels x K x NR, zero-padded past N */
};

loom__packed *loom__kernel_pack(const float *b, int64_t K, int64_t N,
                                int64_t ld, bool trans) {
  loom__packed *p = malloc(sizeof *p);
  int64_t panels = (N + NR - 1) / NR;
  float *d =
      p ? aligned_alloc(64, (size_t)(panels * K * NR) * sizeof *d + 64) : NULL;
  if (!d) {
    free(p);
    loom_set_error(LOOM_ERR_MEMORY, "pack: out of memory");
    return NULL;
  }
  *p = (loom__packed){K, N, panels, d};
  /* Packing runs once per sequence, the product once per step; at batch 1
   * the two read as much memory each, so the copy is kept to whole rows:
   * B's rows go in with memcpy, and B^T's rows (the panel's columns) are
   * written a block of PACK_KB values at a time, so the panel's lines being
   * filled stay in L1 (an element-wise loop took as long as the products). */
  enum { PACK_KB = 64 };
  for (int64_t q = 0; q < panels; q++) {
    float *panel = d + q * K * NR;
    int64_t n0 = q * NR, w = N - n0 < NR ? N - n0 : NR;
    if (w < NR)
      memset(panel, 0, (size_t)(K * NR) * sizeof *panel);
    if (!trans) {
      for (int64_t k = 0; k < K; k++)
        memcpy(panel + k * NR, b + k * ld + n0, (size_t)w * sizeof *b);
      continue;
    }
    for (int64_t k0 = 0; k0 < K; k0 += PACK_KB) {
      int64_t k1 = K - k0 < PACK_KB ? K : k0 + PACK_KB;
      for (int64_t j = 0; j < w; j++) {
        const float *src = b + (n0 + j) * ld;
        for (int64_t k = k0; k < k1; k++)
          panel[k * NR + j] = src[k];
      }
    }
  }
  return p;
}

void loom__kernel_packed_free(loom__packed *p) {
  if (p)
    free(p->data);
  free(p);
}

/* BLOCK(SUFFIX, V, W, MR): block_SUFFIX(rows, ...) computes C rows
 * [0, rows) x columns [0, cols) (+)= A rows x B (K x 2W at stride NR), for
 * rows <= MR and cols <= 2W, with vectors V of W floats. The C block goes
 * through a local tile, so partial blocks need no masking. */
#define BLOCK(SUFFIX, V, W, MR)                                                \
  typedef float V __attribute__((vector_size(4 * W), aligned(4)));             \
  static inline __attribute__((always_inline)) void block_##SUFFIX##_rows(     \
      const int64_t rows, int64_t K, const float *a, int64_t lda,              \
      const float *b, float *c, int64_t ldc, int64_t cols, bool accumulate) {  \
    V acc[MR][2];                                                              \
    float tile[MR][2 * W];                                                     \
    _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {               \
      for (int64_t j = 0; j < 2 * W; j++)                                      \
        tile[r][j] = accumulate && j < cols ? c[r * ldc + j] : 0;              \
      memcpy(&acc[r][0], &tile[r][0], sizeof(V));                              \
      memcpy(&acc[r][1], &tile[r][W], sizeof(V));                              \
    }                                                                          \
    for (int64_t k = 0; k < K; k++) {                                          \
      V b0, b1;                                                                \
      memcpy(&b0, b + k * NR, sizeof b0);                                      \
      memcpy(&b1, b + k * NR + W, sizeof b1);                                  \
      _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {             \
        float av = a[r * lda + k];                                             \
        acc[r][0] += av * b0;                                                  \
        acc[r][1] += av * b1;                                                  \
      }                                                                        \
    }                                                                          \
    _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {               \
      memcpy(&tile[r][0], &acc[r][0], sizeof(V));                              \
      memcpy(&tile[r][W], &acc[r][1], sizeof(V));                              \
      for (int64_t j = 0; j < cols; j++)                                       \
        c[r * ldc + j] = tile[r][j];                                           \
    }                                                                          \
  }

/* One function per level, each with its rows 1..MR spelled out; the
 * panel loop runs blocks of MR rows and 2W of the panel's NR columns. */
#define PANELS(SUFFIX, TARGET, MR, W)                                          \
  TARGET LOOM__FMA __attribute__((noinline)) static void block_##SUFFIX(       \
      int64_t rows, int64_t K, const float *a, int64_t lda, const float *b,    \
      float *c, int64_t ldc, int64_t cols, bool acc) {                         \
    switch (rows) {                                                            \
    case MR:                                                                   \
      block_##SUFFIX##_rows(MR, K, a, lda, b, c, ldc, cols, acc);              \
      break;                                                                   \
      ROWS_CASES_##MR(SUFFIX)                                                  \
    }                                                                          \
  }                                                                            \
  TARGET static void panels_##SUFFIX(                                          \
      int64_t M, const float *a, int64_t lda, const loom__packed *p, float *c, \
      int64_t ldc, bool accumulate, int64_t q0, int64_t q1) {                  \
    for (int64_t q = q0; q < q1; q++) {                                        \
      const float *panel = p->data + q * p->K * NR;                            \
      for (int64_t j = 0; j < NR && q * NR + j < p->N; j += 2 * W) {           \
        int64_t left = p->N - q * NR - j;                                      \
        int64_t cols = left < 2 * W ? left : 2 * W;                            \
        for (int64_t m = 0; m < M; m += MR)                                    \
          block_##SUFFIX(M - m < MR ? M - m : MR, p->K, a + m * lda, lda,      \
                         panel + j, c + m * ldc + q * NR + j, ldc, cols,       \
                         accumulate);                                          \
      }                                                                        \
    }                                                                          \
  }
#define ROW_CASE(SUFFIX, R)                                                    \
  case R:                                                                      \
    block_##SUFFIX##_rows(R, K, a, lda, b, c, ldc, cols, acc);                 \
    break;
#define ROWS_CASES_6(S)                                                        \
  ROW_CASE(S, 1) ROW_CASE(S, 2) ROW_CASE(S, 3) ROW_CASE(S, 4) ROW_CASE(S, 5)
#define ROWS_CASES_8(S) ROWS_CASES_6(S) ROW_CASE(S, 6) ROW_CASE(S, 7)

BLOCK(baseline, v4, 4, 6)
PANELS(baseline, , 6, 4)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
BLOCK(avx2, v8, 8, 6)
PANELS(avx2, __attribute__((target("arch=x86-64-v3"))), 6, 8)
BLOCK(avx512, v16, 16, 8)
PANELS(avx512, __attribute__((target("arch=x86-64-v4"))), 8, 16)
#endif

static void panels(int64_t M, const float *a, int64_t lda,
                   const loom__packed *p, float *c, int64_t ldc,
                   bool accumulate, int64_t q0, int64_t q1) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  switch (loom__isa()) {
  case LOOM__ISA_AVX512:
    panels_avx512(M, a, lda, p, c, ldc, accumulate, q0, q1);
    return;
  case LOOM__ISA_AVX2:
    panels_avx2(M, a, lda, p, c, ldc, accumulate, q0, q1);
    return;
  default:
    break;
  }
#endif
  panels_baseline(M, a, lda, p, c, ldc, accumulate, q0, q1);
}

typedef struct {
  int64_t M, lda, ldc;
  const float *a;
  const loom__packed *p;
  float *c;
  bool accumulate;
} packed_job;

static void packed_part(void *ctx, int64_t q0, int64_t q1) {
  const packed_job *j = ctx;
  panels(j->M, j->a, j->lda, j->p, j->c, j->ldc, j->accumulate, q0, q1);
}

void loom__kernel_gemm_packed(int64_t M, const float *a, int64_t lda,
                              const loom__packed *p, float *c, int64_t ldc,
                              bool accumulate) {
  int nt = loom__threads_for(M * (p->N * p->K / 16)); /* M <= 128 */
  if (nt > p->panels)
    nt = (int)p->panels;
  if (nt <= 1) {
    panels(M, a, lda, p, c, ldc, accumulate, 0, p->panels);
    return;
  }
  /* Threads take whole panels: each element is computed by one thread in
   * a fixed order, so results do not depend on the thread count. */
  loom__parallel_for(nt, p->panels, packed_part,
                     &(packed_job){M, lda, ldc, a, p, c, accumulate});
}

/* ---- packings reused within a region ---- */

/* Entries in least-recently-used order; a matrix is packed at its second
 * use (a product used once gains nothing from packing), so an entry's p is
 * NULL until then. */
#define REUSE_SLOTS 16

typedef struct {
  loom_tensor *m; /* retained: its address stays its own */
  int64_t version;
  bool trans;
  loom__packed *p;
} reuse_entry;

static _Thread_local int reuse_depth;
static _Thread_local reuse_entry reuse[REUSE_SLOTS];
static _Thread_local int reuse_n;

static void reuse_drop(int i) {
  loom__kernel_packed_free(reuse[i].p);
  loom_release(reuse[i].m);
  memmove(&reuse[i], &reuse[i + 1], (size_t)(reuse_n - i - 1) * sizeof *reuse);
  reuse_n--;
}

void loom__kernel_reuse_begin(void) { reuse_depth++; }

void loom__kernel_reuse_end(void) {
  if (reuse_depth > 0 && --reuse_depth == 0)
    while (reuse_n > 0)
      reuse_drop(reuse_n - 1);
}

static bool same_matrix(const reuse_entry *e, const loom_tensor *m,
                        bool trans) {
  if (e->trans != trans || e->m->storage != m->storage ||
      e->m->data != m->data || e->version != m->storage->version)
    return false;
  for (int d = 0; d < 2; d++)
    if (e->m->shape[d] != m->shape[d] || e->m->strides[d] != m->strides[d])
      return false;
  return true;
}

const loom__packed *loom__kernel_pack_reused(const loom_tensor *m, bool trans) {
  if (reuse_depth == 0 || !m || m->ndim != 2 || m->dtype != LOOM_F32 ||
      !m->requires_grad || m->strides[1] != 1 || m->strides[0] < m->shape[1] ||
      loom_last_status() != LOOM_OK)
    return NULL;
  int i = 0;
  while (i < reuse_n && !same_matrix(&reuse[i], m, trans))
    i++;
  if (i == reuse_n) { /* first use: remember it, let BLAS do this one */
    if (reuse_n == REUSE_SLOTS)
      reuse_drop(0);
    reuse[reuse_n++] = (reuse_entry){loom_keep((loom_tensor *)m),
                                     m->storage->version, trans, NULL};
    return NULL;
  }
  reuse_entry e = reuse[i]; /* to the most recent end */
  memmove(&reuse[i], &reuse[i + 1], (size_t)(reuse_n - i - 1) * sizeof *reuse);
  reuse[reuse_n - 1] = e;
  reuse_entry *last = &reuse[reuse_n - 1];
  if (!last->p) {
    int64_t rows = m->shape[0], cols = m->shape[1];
    last->p = trans ? loom__kernel_pack((const float *)m->data, cols, rows,
                                        m->strides[0], true)
                    : loom__kernel_pack((const float *)m->data, rows, cols,
                                        m->strides[0], false);
    if (!last->p) /* optional: the caller falls back to BLAS, so no error */
      loom_clear_error();
  }
  return last->p;
}
