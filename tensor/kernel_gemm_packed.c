/* loom's own float32 products, on one micro-kernel:
 * - a right operand packed once and reused: C += A B for a small number of
 *   rows M (a recurrent step's batch) against the same B at every step.
 *   BLAS repacks B on each call, which for M = 32 costs about as much as
 *   the product; packing once per sequence makes the step ~1.7x faster
 *   (bench/rnn) and ~5x at M = 1;
 * - whole products (loom__kernel_gemm_own), B packed a panel at a time
 *   (and A^T in row chunks), where the kernel's vectors are wider than
 *   those of OpenBLAS's kernels for the CPU (loom__kernel_gemm_raw).
 *
 * B is stored as column panels of NR floats, k-major inside a panel. The
 * micro-kernel keeps a block of C in vector registers, sized for each
 * instruction set's register file so that nothing spills inside the k loop
 * (`objdump -d build/libloom.so | awk '/<block_avx2>:/,/ret/'` shows only
 * vfmadd231ps, loads and the prefetch count's integer steps in it):
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

/* Built by GCC only, as the other per-ISA kernels (__builtin_shuffle). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32)));

/* The 8 x 8 block at src (rows ld apart) transposed into dst (rows NR
 * apart), in three rounds of two-vector shuffles that each instruction set
 * turns into its own instructions (unpack, shuffle, lane swap on AVX2). */
static inline __attribute__((always_inline)) void
transpose8(float *dst, const float *src, int64_t ld) {
  v8 r[8], a[8], b[8];
  /* v8 reads and writes floats in place (GCC lets a vector type alias its
   * element type; aligned(4) makes the moves unaligned ones): memcpy here
   * came out as 64 scalar moves. */
  for (int i = 0; i < 8; i++)
    r[i] = *(const v8 *)(src + i * ld);
  for (int i = 0; i < 8; i += 2) { /* pairs of rows interleaved */
    a[i] = __builtin_shuffle(r[i], r[i + 1], (v8i){0, 8, 1, 9, 4, 12, 5, 13});
    a[i + 1] =
        __builtin_shuffle(r[i], r[i + 1], (v8i){2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 8; i += 4) /* then pairs of pairs */
    for (int h = 0; h < 2; h++) {
      b[i + h] = __builtin_shuffle(a[i + h], a[i + h + 2],
                                   (v8i){0, 1, 8, 9, 4, 5, 12, 13});
      b[i + h + 2] = __builtin_shuffle(a[i + h], a[i + h + 2],
                                       (v8i){2, 3, 10, 11, 6, 7, 14, 15});
    }
  /* b[i] holds columns i (low half) and i + 4 (high half) of rows 0-3,
   * b[i + 4] the same of rows 4-7 */
  for (int i = 0; i < 4; i++) {
    static const int col[4] = {0, 2, 1, 3}; /* b's order of columns */
    v8 lo = __builtin_shuffle(b[i], b[i + 4], (v8i){0, 1, 2, 3, 8, 9, 10, 11});
    v8 hi =
        __builtin_shuffle(b[i], b[i + 4], (v8i){4, 5, 6, 7, 12, 13, 14, 15});
    *(v8 *)(dst + col[i] * NR) = lo;
    *(v8 *)(dst + (col[i] + 4) * NR) = hi;
  }
}

/* pack_panel's B^T (see there), with 8 x 8 blocks transposed in
 * registers, on AVX2 and AVX-512: 2-3.5x the GB/s of the element-wise loop
 * (bench/packed). Only instruction sets with 256-bit shuffles take them:
 * SSE2 split them into scalar moves, slower than the loop. */
#define PACK_TRANSPOSED(SUFFIX, TARGET)                                        \
  TARGET static void pack_transposed_##SUFFIX(                                 \
      float *panel, const float *b, int64_t ld, int64_t k0, int64_t kc,        \
      int64_t n0, int64_t w) {                                                 \
    int64_t w8 = w / 8 * 8, kc8 = kc / 8 * 8;                                  \
    for (int64_t k = 0; k < kc8; k += 8)                                       \
      for (int64_t j = 0; j < w8; j += 8)                                      \
        transpose8(panel + k * NR + j, b + (n0 + j) * ld + k0 + k, ld);        \
    for (int64_t j = 0; j < w; j++) {                                          \
      const float *src = b + (n0 + j) * ld + k0;                               \
      for (int64_t k = j < w8 ? kc8 : 0; k < kc; k++)                          \
        panel[k * NR + j] = src[k];                                            \
    }                                                                          \
  }
PACK_TRANSPOSED(avx2, __attribute__((target("arch=x86-64-v3"))))
PACK_TRANSPOSED(avx512, __attribute__((target("arch=x86-64-v4"))))
#endif

/* pack_panel's B^T at the running instruction set; without 256-bit
 * shuffles, element by element, a block of PACK_KB values of each of B^T's
 * rows (the panel's columns) at a time, so the panel's lines being filled
 * stay in L1. */
static void pack_transposed(float *panel, const float *b, int64_t ld,
                            int64_t k0, int64_t kc, int64_t n0, int64_t w) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  switch (loom__isa()) {
  case LOOM__ISA_AVX512:
    pack_transposed_avx512(panel, b, ld, k0, kc, n0, w);
    return;
  case LOOM__ISA_AVX2:
    pack_transposed_avx2(panel, b, ld, k0, kc, n0, w);
    return;
  default:
    break;
  }
#endif
  enum { PACK_KB = 64 };
  for (int64_t kb = 0; kb < kc; kb += PACK_KB) {
    int64_t ke = kc - kb < PACK_KB ? kc : kb + PACK_KB;
    for (int64_t j = 0; j < w; j++) {
      const float *src = b + (n0 + j) * ld + k0;
      for (int64_t k = kb; k < ke; k++)
        panel[k * NR + j] = src[k];
    }
  }
}

/* Packs rows [k0, k0 + kc) of B's columns [n0, n0 + w) (w <= NR) into one
 * panel of kc x NR floats, zero past w. B is K x N at leading dimension
 * ld, or its rows are rows[0..K) when rows is not NULL, or B is N x K read
 * as its transpose when trans (rows NULL then): B's rows go in with
 * memcpy, B^T's through pack_transposed (packing W_hh^T once per sequence
 * had taken as long as the products it fed at batch 1, done naively). */
static void pack_panel(float *panel, const float *b, int64_t ld,
                       const float *const *rows, bool trans, int64_t k0,
                       int64_t kc, int64_t n0, int64_t w) {
  if (w < NR)
    memset(panel, 0, (size_t)(kc * NR) * sizeof *panel);
  if (!trans) {
#define ROW(k) ((rows ? rows[k0 + (k)] : b + (k0 + (k)) * ld) + n0)
    if (w == NR) /* as in pack_rows */
      for (int64_t k = 0; k < kc; k++)
        memcpy(panel + k * NR, ROW(k), NR * sizeof *b);
    else
      for (int64_t k = 0; k < kc; k++)
        memcpy(panel + k * NR, ROW(k), (size_t)w * sizeof *b);
#undef ROW
    return;
  }
  pack_transposed(panel, b, ld, k0, kc, n0, w);
}

typedef struct {
  loom__packed *p;
  const float *b;
  int64_t ld;
  bool trans;
} pack_job;

static void pack_part(void *ctx, int64_t q0, int64_t q1) {
  const pack_job *j = ctx;
  int64_t K = j->p->K, N = j->p->N;
  for (int64_t q = q0; q < q1; q++)
    pack_panel(j->p->data + q * K * NR, j->b, j->ld, NULL, j->trans, 0, K,
               q * NR, N - q * NR < NR ? N - q * NR : NR);
}

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
   * the two read as much memory each, hence pack_panel's care, and the
   * threads share the panels as they share the products. */
  pack_job job = {p, b, ld, trans};
  int nt = loom__threads_for(K * N);
  if (nt > 1)
    loom__parallel_for(nt, panels, pack_part, &job);
  else
    pack_part(&job, 0, panels);
  return p;
}

void loom__kernel_packed_free(loom__packed *p) {
  if (p)
    free(p->data);
  free(p);
}

/* BLOCK(SUFFIX, V, W, MR): block_SUFFIX_rows(rows, at, ...) computes C rows
 * [0, rows) x columns [0, cols) (+)= A rows x B (K x 2W at stride NR), for
 * rows <= MR and cols <= 2W, with vectors V of W floats. A is row-major
 * (row r at a + r lda), or column-major when at (row r's values at
 * a + r + k lda): the kernel broadcasts one value of A per row and k, so
 * either layout is read in place. Without accumulate, C starts from the
 * row vector bias (columns [0, cols)) when it is not NULL, else from 0. A
 * whole block moves between C and the registers as vectors; a partial one goes
 * through a local tile, so it needs no masking. (Routing whole blocks through
 * the tile as well had GCC assemble it with scalar moves and inserts: some 250
 * cycles a block, 15 % of a product at K = 256, bench/packed.) Each C element
 * is one chain of fused multiply-adds in k order, starting from 0 or from C: a
 * product cut into k ranges that accumulate gives the same bits as one
 * pass, and a bias added first gives the bits of C = bias then C += A B.
 * The block also prefetches pf_lines cache lines from pf on, spread evenly
 * over its K steps (pf_lines 0: none; see PANELS for why). */
#define BLOCK(SUFFIX, V, W, MR)                                                \
  typedef float V __attribute__((vector_size(4 * W), aligned(4)));             \
  static inline __attribute__((always_inline)) void block_##SUFFIX##_rows(     \
      const int64_t rows, const bool at, int64_t K, const float *a,            \
      int64_t lda, const float *b, float *c, int64_t ldc, int64_t cols,        \
      bool accumulate, const float *bias, const float *pf, int64_t pf_lines) { \
    V acc[MR][2], init[2] = {{0}, {0}};                                        \
    float tile[MR][2 * W];                                                     \
    const bool whole = cols == 2 * W;                                          \
    if (bias && !accumulate) {                                                 \
      for (int64_t j = 0; j < 2 * W; j++)                                      \
        tile[0][j] = j < cols ? bias[j] : 0;                                   \
      memcpy(&init[0], &tile[0][0], sizeof(V));                                \
      memcpy(&init[1], &tile[0][W], sizeof(V));                                \
    }                                                                          \
    _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {               \
      if (!accumulate) {                                                       \
        acc[r][0] = init[0];                                                   \
        acc[r][1] = init[1];                                                   \
      } else if (whole) {                                                      \
        acc[r][0] = *(const V *)(c + r * ldc);                                 \
        acc[r][1] = *(const V *)(c + r * ldc + W);                             \
      } else {                                                                 \
        for (int64_t j = 0; j < 2 * W; j++)                                    \
          tile[r][j] = j < cols ? c[r * ldc + j] : 0;                          \
        memcpy(&acc[r][0], &tile[r][0], sizeof(V));                            \
        memcpy(&acc[r][1], &tile[r][W], sizeof(V));                            \
      }                                                                        \
    }                                                                          \
    int64_t due = 0; /* pf's lines owed, times K */                            \
    for (int64_t k = 0; k < K; k++) {                                          \
      V b0, b1;                                                                \
      memcpy(&b0, b + k * NR, sizeof b0);                                      \
      memcpy(&b1, b + k * NR + W, sizeof b1);                                  \
      for (due += pf_lines; due >= K; due -= K, pf += 16)                      \
        __builtin_prefetch(pf, 0, 2); /* to L2: a panel is larger than L1 */   \
      _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {             \
        float av = at ? a[k * lda + r] : a[r * lda + k];                       \
        acc[r][0] += av * b0;                                                  \
        acc[r][1] += av * b1;                                                  \
      }                                                                        \
    }                                                                          \
    _Pragma("GCC unroll 8") for (int64_t r = 0; r < rows; r++) {               \
      if (whole) {                                                             \
        *(V *)(c + r * ldc) = acc[r][0];                                       \
        *(V *)(c + r * ldc + W) = acc[r][1];                                   \
        continue;                                                              \
      }                                                                        \
      memcpy(&tile[r][0], &acc[r][0], sizeof(V));                              \
      memcpy(&tile[r][W], &acc[r][1], sizeof(V));                              \
      for (int64_t j = 0; j < cols; j++)                                       \
        c[r * ldc + j] = tile[r][j];                                           \
    }                                                                          \
  }

/* The jobs of a whole product (loom__kernel_gemm_own): C's rows in chunks
 * and its columns in panels of NR. Job i is row chunk i / panels, panel
 * i % panels, so a part's jobs span few chunks and pack each chunk's rows
 * of A once for many panels (see own_SUFFIX); or, by_panels, panel
 * i / chunks, chunk i % chunks, so that parts share out B's panels
 * instead of each packing all of them (see own_run). */
typedef struct {
  bool ta, tb, accumulate, by_panels;
  int64_t M, N, K, lda, ldb, ldc, panels, chunks, chunk_rows;
  int64_t kc; /* B's rows a pass: K cut evenly into passes of at most KC */
  int64_t mr; /* the running level's block rows: 8 (AVX-512) or 6 (AVX2) */
  const float *a, *b;
  const float *bias; /* NULL, or the row C starts from (not accumulate) */
  /* or A's and B's K rows anywhere (loom__kernel_gemm_rows): ta, !tb */
  const float *const *arows, *const *brows;
  float *c;
  float *scratch; /* per part, part floats: a chunk of A^T packed,
                     chunk_rows x KC rounded to whole lines (alen, when
                     ta), then up to NCP panels of B, KC x NR each */
  int64_t alen, part;
} own_job;

/* At most this many rows of B packed at a time for a whole product (a
 * 64 KiB panel), which stays in L2 while the rows of A stream past it. */
#define KC 512
/* At most this many rows of A in a chunk (384 KiB at KC), which
 * stays in L2 beside the panels; a multiple of every level's block rows. */
#define MC 192
/* Panels of B kept packed for a part's chunks: 1 MiB at KC, which with
 * A's chunk stays in a 2 MiB L2 (the Xeon's; 8 panels, half as many, cost
 * an LSTM's W_hh gradient 4 % packing A twice). With a smaller L2 the
 * panels come back from L3, as B's rows did when every chunk packed them
 * again. At most 32: a bit each. */
#define NCP 16

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* Copies, for each of the n rows src[0..n) (rows kb.. of a chunk), the
 * whole blocks' mr values into their blocks (block i at dst + i mr kc, row
 * k at k mr inside it); mr a constant at each call, so that each copy is
 * one vector move rather than a call to memmove (3.8 % of an LSTM step's
 * samples with the calls, 1.6 % without). */
static inline __attribute__((always_inline)) void
pack_group(float *dst, const float *const *src, int64_t n, int64_t whole,
           int64_t kc, int64_t kb, const int64_t mr) {
  for (int64_t i = 0; i < whole; i++)
    for (int64_t k = 0; k < n; k++)
      memcpy(dst + i * mr * kc + (kb + k) * mr, src[k] + i * mr,
             (size_t)mr * sizeof *dst);
}

/* Rows of A^T packed a group at a time: at most this many, whose lines
 * stay in L1 while all the chunk's blocks take their values. */
#define PACK_GROUP 8

/* Packs columns [r0, r1) and rows [k0, k0 + kc) of A (K x M, the
 * transpose the product reads; its rows at lda, or rows[0..K) when rows is
 * not NULL) into blocks of mr columns, k-major inside
 * a block, as the kernel's column-major A reads them. Read in place, the
 * rows are a leading dimension apart, often a power of two: the lines a
 * block needed at once fell into a few cache sets and came again from
 * memory for every block of rows (a weight's gradient ran at half the rate
 * of the other products, bench/matmul's TN shapes). A's own rows, read in
 * place, have no such trouble. */
static void pack_rows(float *dst, const float *a, int64_t lda,
                      const float *const *rows, int64_t r0, int64_t r1,
                      int64_t k0, int64_t kc, int64_t mr) {
  int64_t whole = (r1 - r0) / mr, rest = (r1 - r0) % mr;
  float *last = dst + whole * mr * kc;
  /* PACK_GROUP rows of A^T at a time, each of their lines read once for
   * all the blocks, and each block given those rows' values together
   * (mr PACK_GROUP contiguous floats). A row at a time, the blocks' pieces
   * (mr kc floats apart, a power of two times mr) fell into a few cache
   * sets and each line was taken twice from L2 (one thread, an encoder's
   * weight gradient 1024 x 256 x 2048: 16 % of the samples in packing, 11
   * % now; best of 100, 128-130 -> 136-139 GFLOP/s at AVX-512, 67-70 ->
   * 75-77 at AVX2); a block at a time, the second block of a line found
   * it gone (a power-of-two leading dimension puts all of a block's rows
   * in a few sets). Eight rows of a power-of-two leading dimension take 8
   * ways of each set they fall in. */
  for (int64_t kb = 0; kb < kc; kb += PACK_GROUP) {
    int64_t n = kc - kb < PACK_GROUP ? kc - kb : PACK_GROUP;
    const float *src[PACK_GROUP];
    for (int64_t k = 0; k < n; k++)
      src[k] = (rows ? rows[k0 + kb + k] : a + (k0 + kb + k) * lda) + r0;
    if (mr == 8)
      pack_group(dst, src, n, whole, kc, kb, 8);
    else if (mr == 6)
      pack_group(dst, src, n, whole, kc, kb, 6);
    else
      pack_group(dst, src, n, whole, kc, kb, mr);
    if (rest)
      for (int64_t k = 0; k < n; k++)
        memcpy(last + (kb + k) * mr, src[k] + whole * mr,
               (size_t)rest * sizeof *a);
  }
}
#endif

/* BLOCKS(SUFFIX, NAME, TARGET, MR, AT): NAME(rows, ...) runs a block of
 * 1..MR rows, each row count its own copy, A column-major when AT. */
#define BLOCKS(SUFFIX, NAME, TARGET, MR, AT)                                   \
  TARGET LOOM__FMA __attribute__((noinline)) static void NAME(                 \
      int64_t rows, int64_t K, const float *a, int64_t lda, const float *b,    \
      float *c, int64_t ldc, int64_t cols, bool acc, const float *bias,        \
      const float *pf, int64_t pf_lines) {                                     \
    switch (rows) {                                                            \
    case MR:                                                                   \
      block_##SUFFIX##_rows(MR, AT, K, a, lda, b, c, ldc, cols, acc, bias, pf, \
                            pf_lines);                                         \
      break;                                                                   \
      ROWS_CASES_##MR(SUFFIX, AT)                                              \
    }                                                                          \
  }

/* One function per level; the panel loop runs blocks of up to MR rows and
 * 2W of the panel's NR columns. The rows are dealt out evenly over the
 * fewest blocks that hold them: a block of r rows runs 2r independent
 * chains of multiply-adds, and with fewer chains than the FMA units'
 * latency x throughput (8 on current x86) it waits on its own results. A
 * batch of 32 on AVX2 (MR 6) had run as 6+6+6+6+6+2, the 2-row block at
 * two thirds of a whole block's time for a third of its work; as
 * 6+6+5+5+5+5 no block waits. Each element is still one chain in k order,
 * so the bits do not change.
 * While a panel's blocks run, they prefetch the next panel, each block an
 * equal share of its lines. A weight larger than L2 (an LSTM's W_hh, 4 MiB
 * at hidden 512) comes from L3 at every step, and the first block of each
 * panel asked for it faster than L3 delivers (a line of 64 bytes per 4-6
 * cycles, ~40 GB/s, against ~27 from L3 on the Xeon); spread over all of
 * a panel's blocks, a batch of 32 needs a fourth to a sixth of that. Its
 * LSTM product went from 137-142 to 162-166 GFLOP/s at AVX-512 on one
 * thread, 72-75 to 77-81 at AVX2 (bench/packed; a 1 MiB weight, held in
 * L2, runs at 169 and 81-85). The panel after the range's last is
 * prefetched too: gemm_packed's threads call this a panel at a time and
 * mostly take the following one next (a thread taking another's panels
 * from the back prefetches one it has just done). */
#define PANELS(SUFFIX, TARGET, MR, W)                                          \
  BLOCKS(SUFFIX, block_##SUFFIX, TARGET, MR, false)                            \
  TARGET static void panels_##SUFFIX(int64_t M, const float *a, int64_t lda,   \
                                     const loom__packed *p, const float *bias, \
                                     float *c, int64_t ldc, bool accumulate,   \
                                     int64_t q0, int64_t q1) {                 \
    if (M <= 0)                                                                \
      return;                                                                  \
    int64_t blocks = (M + MR - 1) / MR;                                        \
    /* the first `longer` blocks take base + 1 rows, the rest base */          \
    int64_t base = M / blocks, longer = M % blocks;                            \
    /* nb blocks a panel, which holds `lines` 64-byte lines (2 K) */           \
    int64_t nb = blocks * (NR / (2 * W)), lines = p->K * NR / 16;              \
    for (int64_t q = q0; q < q1; q++) {                                        \
      const float *panel = p->data + q * p->K * NR;                            \
      const float *next = q + 1 < p->panels ? panel + p->K * NR : NULL;        \
      int64_t bidx = 0;                                                        \
      for (int64_t j = 0; j < NR && q * NR + j < p->N; j += 2 * W) {           \
        int64_t left = p->N - q * NR - j;                                      \
        int64_t cols = left < 2 * W ? left : 2 * W;                            \
        for (int64_t i = 0, m = 0; i < blocks; i++) {                          \
          int64_t rows = base + (i < longer);                                  \
          block_##SUFFIX(rows, p->K, a + m * lda, lda, panel + j,              \
                         c + m * ldc + q * NR + j, ldc, cols, accumulate,      \
                         bias ? bias + q * NR + j : NULL,                      \
                         next ? next + bidx * lines / nb * 16 : NULL,          \
                         next ? (bidx + 1) * lines / nb - bidx * lines / nb    \
                              : 0);                                            \
          bidx++;                                                              \
          m += rows;                                                           \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The chunks [*c0, *c1) and panels [*q0, *q1) that jobs [i0, i1) (not
 * empty) touch: all of the inner ones once the jobs span several outer.
 * (Used by own_SUFFIX, built by GCC only as the other per-ISA kernels.) */
static void job_span(const own_job *o, int64_t i0, int64_t i1, int64_t *c0,
                     int64_t *c1, int64_t *q0, int64_t *q1) {
  int64_t inner = o->by_panels ? o->chunks : o->panels;
  int64_t o0 = i0 / inner, o1 = (i1 - 1) / inner + 1;
  int64_t n0 = o1 - o0 > 1 ? 0 : i0 % inner;
  int64_t n1 = o1 - o0 > 1 ? inner : (i1 - 1) % inner + 1;
  if (o->by_panels)
    *q0 = o0, *q1 = o1, *c0 = n0, *c1 = n1;
  else
    *c0 = o0, *c1 = o1, *q0 = n0, *q1 = n1;
}

/* The panels [*q0, *q1) of chunk ch among jobs [i0, i1). */
static void chunk_panels(const own_job *o, int64_t ch, int64_t i0, int64_t i1,
                         int64_t *q0, int64_t *q1) {
  if (!o->by_panels) { /* job ch panels + q */
    int64_t first = ch * o->panels;
    *q0 = i0 - first < 0 ? 0 : i0 - first;
    *q1 = i1 - first < o->panels ? i1 - first : o->panels;
  } else { /* job q chunks + ch: the first q at or past i0, and past i1 */
    *q0 = i0 <= ch ? 0 : (i0 - ch + o->chunks - 1) / o->chunks;
    *q1 = i1 <= ch ? 0 : (i1 - ch + o->chunks - 1) / o->chunks;
  }
}
#endif

/* own_SUFFIX runs jobs [i0, i1) of a whole product. For each group of up
 * to NCP of their panels and KC rows of B at a time, it packs each
 * chunk's part of A and runs the blocks over the group's panels, packing
 * a panel of B at its first use and keeping it for the part's later
 * chunks (packed per job, a panel was packed again for every chunk). Jobs
 * of one chunk make one group of all their panels, each packed just
 * before its blocks into the same place: none is used twice, and A's
 * chunk is packed once. Each C element is still one chain of
 * multiply-adds in k order. */
#define OWN(SUFFIX, TARGET, MR, W)                                             \
  BLOCKS(SUFFIX, block_t_##SUFFIX, TARGET, MR, true)                           \
  TARGET static void own_##SUFFIX(const own_job *o, int64_t i0, int64_t i1,    \
                                  float *abuf, float *bbuf) {                  \
    if (i0 >= i1)                                                              \
      return;                                                                  \
    int64_t c0, c1, qlo, qhi; /* the chunks and panels of the jobs */          \
    job_span(o, i0, i1, &c0, &c1, &qlo, &qhi);                                 \
    bool keep = c1 - c0 > 1; /* panels serve several chunks */                 \
    int64_t span = keep ? NCP : qhi - qlo;                                     \
    for (int64_t g0 = qlo; g0 < qhi; g0 += span) {                             \
      int64_t g1 = qhi - g0 < span ? qhi : g0 + span;                          \
      for (int64_t k0 = 0; k0 < o->K; k0 += o->kc) {                           \
        int64_t kc = o->K - k0 < o->kc ? o->K - k0 : o->kc;                    \
        unsigned packed = 0; /* bit q - g0: panel q holds rows k0.. */         \
        for (int64_t ch = c0; ch < c1; ch++) {                                 \
          int64_t q0, q1; /* chunk ch's panels among the jobs, in the group */ \
          chunk_panels(o, ch, i0, i1, &q0, &q1);                               \
          q0 = q0 > g0 ? q0 : g0;                                              \
          q1 = q1 < g1 ? q1 : g1;                                              \
          if (q0 >= q1)                                                        \
            continue;                                                          \
          int64_t r0 = ch * o->chunk_rows;                                     \
          int64_t r1 = o->M - r0 < o->chunk_rows ? o->M : r0 + o->chunk_rows;  \
          if (o->ta)                                                           \
            pack_rows(abuf, o->a, o->lda, o->arows, r0, r1, k0, kc, MR);       \
          for (int64_t q = q0; q < q1; q++) {                                  \
            int64_t n0 = q * NR, w = o->N - n0 < NR ? o->N - n0 : NR;          \
            float *panel = bbuf + (keep ? q - g0 : 0) * kc * NR;               \
            if (!keep || !(packed >> (q - g0) & 1)) {                          \
              pack_panel(panel, o->b, o->ldb, o->brows, o->tb, k0, kc, n0, w); \
              packed |= keep ? 1u << (q - g0) : 0;                             \
            }                                                                  \
            for (int64_t j = 0; j < w; j += 2 * W)                             \
              for (int64_t m = r0; m < r1; m += MR)                            \
                (o->ta ? block_t_##SUFFIX : block_##SUFFIX)(                   \
                    r1 - m < MR ? r1 - m : MR, kc,                             \
                    o->ta ? abuf + (m - r0) * kc : o->a + m * o->lda + k0,     \
                    o->ta ? MR : o->lda, panel + j,                            \
                    o->c + m * o->ldc + n0 + j, o->ldc,                        \
                    w - j < 2 * W ? w - j : 2 * W, o->accumulate || k0 > 0,    \
                    o->bias ? o->bias + n0 + j : NULL, NULL, 0);               \
          }                                                                    \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }

#define ROW_CASE(SUFFIX, R, AT)                                                \
  case R:                                                                      \
    block_##SUFFIX##_rows(R, AT, K, a, lda, b, c, ldc, cols, acc, bias, pf,    \
                          pf_lines);                                           \
    break;
#define ROWS_CASES_6(S, AT)                                                    \
  ROW_CASE(S, 1, AT)                                                           \
  ROW_CASE(S, 2, AT)                                                           \
  ROW_CASE(S, 3, AT) ROW_CASE(S, 4, AT) ROW_CASE(S, 5, AT)
#define ROWS_CASES_8(S, AT)                                                    \
  ROWS_CASES_6(S, AT) ROW_CASE(S, 6, AT) ROW_CASE(S, 7, AT)

BLOCK(baseline, v4, 4, 6)
PANELS(baseline, , 6, 4)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
BLOCK(avx2, v8, 8, 6)
PANELS(avx2, __attribute__((target("arch=x86-64-v3"))), 6, 8)
BLOCK(avx512, v16, 16, 8)
PANELS(avx512, __attribute__((target("arch=x86-64-v4"))), 8, 16)
OWN(avx2, __attribute__((target("arch=x86-64-v3"))), 6, 8)
OWN(avx512, __attribute__((target("arch=x86-64-v4"))), 8, 16)
#endif

static void panels(int64_t M, const float *a, int64_t lda,
                   const loom__packed *p, const float *bias, float *c,
                   int64_t ldc, bool accumulate, int64_t q0, int64_t q1) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  switch (loom__isa()) {
  case LOOM__ISA_AVX512:
    panels_avx512(M, a, lda, p, bias, c, ldc, accumulate, q0, q1);
    return;
  case LOOM__ISA_AVX2:
    panels_avx2(M, a, lda, p, bias, c, ldc, accumulate, q0, q1);
    return;
  default:
    break;
  }
#endif
  panels_baseline(M, a, lda, p, bias, c, ldc, accumulate, q0, q1);
}

typedef struct {
  int64_t M, lda, ldc;
  const float *a;
  const loom__packed *p;
  const float *bias;
  float *c;
  bool accumulate;
} packed_job;

static void packed_pieces(void *ctx, int part, int64_t q0, int64_t q1) {
  const packed_job *j = ctx;
  (void)part;
  panels(j->M, j->a, j->lda, j->p, j->bias, j->c, j->ldc, j->accumulate, q0,
         q1);
}

static void gemm_packed(int64_t M, const float *a, int64_t lda,
                        const loom__packed *p, const float *bias, float *c,
                        int64_t ldc, bool accumulate) {
  int nt = loom__threads_for(M * (p->N * p->K / 16)); /* M <= 128 */
  if (nt > p->panels)
    nt = (int)p->panels;
  if (nt <= 1) {
    panels(M, a, lda, p, bias, c, ldc, accumulate, 0, p->panels);
    return;
  }
  /* Threads take whole panels, one at a time, and one that finishes its
   * own takes the last of the others' (a recurrence runs this once a step,
   * and each time the threads had waited for each other for 5-11 % of it:
   * the host slows one core or the other by turns). Cutting a panel's rows
   * into pieces too, for finer sharing when panels are few, read each
   * panel once a piece and made the AVX-512 LSTM step 2-4 % slower. Below
   * 8 rows the product is as fast as its panels come, and a thread's own
   * panels stay in its L2 from step to step: each part's first piece is
   * all of its range, so a thread takes another's panels only when that
   * one has not started (balanced, the batch-1 LSTM step was 7-11 %
   * slower at AVX-512). Each element is computed by one thread in a
   * fixed order, so results do not depend on the thread count. */
  loom__parallel_for_balanced(
      nt, p->panels, 1, M >= 8 ? p->panels : 0, packed_pieces,
      &(packed_job){M, lda, ldc, a, p, bias, c, accumulate});
}

void loom__kernel_gemm_packed(int64_t M, const float *a, int64_t lda,
                              const loom__packed *p, float *c, int64_t ldc,
                              bool accumulate) {
  gemm_packed(M, a, lda, p, NULL, c, ldc, accumulate);
}

void loom__kernel_gemm_packed_bias(int64_t M, const float *a, int64_t lda,
                                   const loom__packed *p, const float *bias,
                                   float *c, int64_t ldc) {
  gemm_packed(M, a, lda, p, bias, c, ldc, false);
}

/* ---- whole products ---- */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
static void own_piece(void *ctx, int part, int64_t i0, int64_t i1) {
  const own_job *o = ctx;
  float *abuf = o->scratch + part * o->part, *bbuf = abuf + o->alen;
  if (o->mr == 8)
    own_avx512(o, i0, i1, abuf, bbuf);
  else
    own_avx2(o, i0, i1, abuf, bbuf);
}
#endif

/* Runs the product o describes (its operands, sizes, ta and tb and
 * accumulate set): chooses the parts, chunks and scratch. */
static bool own_run(own_job o) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  loom__isa_level isa = loom__isa();
  /* Below 16 columns most of each 32-column panel would be padding. */
  if (isa < LOOM__ISA_AVX2 || o.M <= 0 || o.N < 16 || o.K <= 0)
    return false;
  int64_t M = o.M, N = o.N, K = o.K;
  int64_t mr = isa == LOOM__ISA_AVX512 ? 8 : 6;
  /* K in even passes: 1120 as 374 + 374 + 372, not 512 + 512 + 96, whose
   * short last pass loaded and stored C and packed A^T and B for little
   * work (one thread, W_ih's gradient 2048 x 256 x 1120: 143 -> 149
   * GFLOP/s at AVX-512, 73-75 -> 78 at AVX2) */
  int64_t passes = (K + KC - 1) / KC, kc = (K + passes - 1) / passes;
  int64_t panels = (N + NR - 1) / NR;
  int64_t macs = M * N > INT64_MAX / K ? INT64_MAX : M * N * K;
  int nt = loom__threads_for(macs / 64); /* 2^21 multiply-adds a part */
  /* Chunks of whole blocks of rows, at most MC, whether A is packed or read
   * in place: a chunk stays in L2 while the part's kept panels pass over it
   * (all of a 2048-row A, 2-4 MiB at KC, came from L3 again for every
   * panel: one thread, AVX-512, 2048^3 ran at 125 GFLOP/s against 140,
   * the encoder's 2048-row products at 136-146 against 156-162; AVX2
   * 67-77 against 74-83). More chunks when the panels alone would leave
   * threads idle or unevenly loaded (a thin C, as attention's). */
  int64_t chunks = (M + MC - 1) / MC;
  int64_t rows = ((M + chunks - 1) / chunks + mr - 1) / mr * mr;
  while (nt > 1 && panels * chunks < 4 * nt && rows > 64) {
    chunks *= 2;
    rows = ((M + chunks - 1) / chunks + mr - 1) / mr * mr;
  }
  chunks = (M + rows - 1) / rows;
  if (nt > panels * chunks)
    nt = (int)(panels * chunks);
  /* A's chunk rounded to whole lines, so that B's panel starts on one, as
   * its vector loads assume (32 bytes off split every load: 7 % slower);
   * the panel is whole lines too, as aligned_alloc wants */
  int64_t alen = ((o.ta ? rows : 0) * kc + 15) / 16 * 16;
  /* slots for the panels a part keeps: none kept in a single chunk */
  int64_t slots = chunks == 1 ? 1 : panels < NCP ? panels : NCP;
  int64_t part = alen + slots * NR * kc;
  float *scratch = aligned_alloc(64, (size_t)(nt * part) * sizeof *scratch);
  if (!scratch) /* BLAS can still do it */
    return false;
  o.panels = panels;
  o.chunks = chunks;
  o.chunk_rows = rows;
  /* Parts that take whole chunks each pack all of B's panels; parts that
   * take whole panels each pack all of A's chunks, which only A^T needs
   * packed (A is read in place): with more columns than rows, a weight's
   * gradient of more outputs than inputs (an encoder's second feed-forward
   * layer, 256 x 1024 over 2048 rows: B 8 MiB, A 2), the parts share out
   * B instead (that product at 2 threads, best of 100: 255-262 -> 260-266
   * GFLOP/s at AVX-512). */
  o.by_panels = o.ta && nt > 1 && N > M;
  o.kc = kc;
  o.mr = mr;
  o.scratch = scratch;
  o.alen = alen;
  o.part = part;
  /* A part runs the first seven eighths of its jobs as one piece, with all
   * the reuse of packed operands described at own_SUFFIX, and the rest in
   * pieces of a few jobs, which a part that is done with its own takes
   * from the others (their threads had run at speeds 3-10 % apart for
   * seconds at a time, the host's doing, and one had waited for the other
   * 5-7 % of an encoder step's products; the short last chunk of rows also
   * leaves one part less work). A small piece packs its operands for
   * itself, B's panels again for each of them. Each element of C is
   * computed by one job in one order, whatever the pieces and parts:
   * results do not depend on the thread count. */
  int64_t jobs = chunks * panels, range = jobs / nt;
  loom__parallel_for_balanced(nt, jobs, (range / 8 + 3) / 4, range / 8,
                              own_piece, &o);
  free(scratch);
  return true;
#else
  (void)o;
  return false;
#endif
}

bool loom__kernel_gemm_own(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                           const float *a, int64_t lda, const float *b,
                           int64_t ldb, const float *bias, bool accumulate,
                           float *c, int64_t ldc) {
  return own_run((own_job){.ta = ta,
                           .tb = tb,
                           .accumulate = accumulate,
                           .bias = accumulate ? NULL : bias,
                           .M = M,
                           .N = N,
                           .K = K,
                           .lda = lda,
                           .ldb = ldb,
                           .ldc = ldc,
                           .a = a,
                           .b = b,
                           .c = c});
}

bool loom__kernel_gemm_own_rows(int64_t M, int64_t N, int64_t K,
                                const float *const *a_rows,
                                const float *const *b_rows, bool accumulate,
                                float *c, int64_t ldc) {
  return own_run((own_job){.ta = true,
                           .accumulate = accumulate,
                           .M = M,
                           .N = N,
                           .K = K,
                           .arows = a_rows,
                           .brows = b_rows,
                           .ldc = ldc,
                           .c = c});
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
