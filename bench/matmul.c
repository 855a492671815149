/* loom_matmul against a direct cblas_sgemm on the same buffers.
 *
 * For each shape (M x K) @ (K x N), float32:
 *   NN: loom_matmul(a, b)          vs cblas_sgemm(NoTrans, NoTrans)
 *   NT: loom_matmul(a, loom_t(bt)) vs cblas_sgemm(NoTrans, Trans), with bt
 *       stored N x K as a PyTorch-style weight is (a layer's forward);
 *   TN: loom_matmul(loom_t(at), b) vs cblas_sgemm(Trans, NoTrans), with at
 *       stored K x M (a weight's gradient: the output gradient's columns
 *       against the input's, K the rows of a batch).
 * The shapes are squares, a recurrent step's (M the batch) and the
 * products of the two training steps bench-rnn and bench-transformer time
 * (an LSTM 256 -> 512 over 35 x 32 positions; an encoder layer of d_model
 * 256 and ff 1024 over 64 x 32 tokens).
 * The loom figure includes what a user pays per call: a scope begin/end,
 * the view for the transpose, the output allocation and its release.
 * loom runs OpenBLAS on one thread per call and splits large products
 * over its own workers; the direct call gets OpenBLAS's own threads (as
 * many as at start-up, printed), set before each call and reset after, so
 * the baseline is OpenBLAS at its best. Idle OpenBLAS threads poll for
 * about 0.1 s after a call and would slow the loom sample that follows
 * (which never happens in loom's own use), so each sample starts after a
 * 0.15 s pause. Prints GFLOP/s
 * (2 M N K / t, median of interleaved samples) and the ratio loom / BLAS
 * (median of the per-round ratios, see bench_speed_ratio).
 * Lines starting with "@matmul" are for bench/run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum { NN, NT, TN, ALL } mm_layout;
static const char *const layout_names[] = {"NN", "NT", "TN"};

typedef struct {
  const char *name;
  int64_t m, n, k;
  mm_layout lay; /* the layout to time, or ALL three */
} shape;

typedef struct {
  int64_t m, n, k;
  mm_layout lay;
  loom_tensor *a, *b; /* a is M x K (K x M for TN), b K x N (N x K for NT) */
  float *c;           /* BLAS's output */
} mm_ctx;

static loom_tensor *product(const mm_ctx *x) {
  return loom_matmul(x->lay == TN ? loom_t(x->a) : x->a,
                     x->lay == NT ? loom_t(x->b) : x->b);
}

static void run_loom(void *p) {
  mm_ctx *x = p;
  loom_scope *s = loom_scope_begin();
  loom_tensor *y = product(x);
  if (!y) {
    fprintf(stderr, "matmul: %s\n", loom_last_error());
    exit(1);
  }
  loom_scope_end(s);
}

static int blas_threads; /* OpenBLAS's own count, read before loom runs */

static void run_blas(void *p) {
  mm_ctx *x = p;
  openblas_set_num_threads(blas_threads);
  cblas_sgemm(CblasRowMajor, x->lay == TN ? CblasTrans : CblasNoTrans,
              x->lay == NT ? CblasTrans : CblasNoTrans, (blasint)x->m,
              (blasint)x->n, (blasint)x->k, 1.0f, loom_data_f32(x->a),
              (blasint)(x->lay == TN ? x->m : x->k), loom_data_f32(x->b),
              (blasint)(x->lay == NT ? x->k : x->n), 0.0f, x->c, (blasint)x->n);
  openblas_set_num_threads(1);
}

/* Largest |loom - blas| relative to the largest |blas|: both must compute
 * the same product, or the timing compares different work. */
static double check(mm_ctx *x) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *y = product(x);
  run_blas(x);
  const float *yl = loom_data_f32(y);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < x->m * x->n; i++) {
    diff = fmax(diff, fabs((double)yl[i] - x->c[i]));
    scale = fmax(scale, fabs((double)x->c[i]));
  }
  loom_scope_end(s);
  return diff / (scale > 0 ? scale : 1);
}

static void bench_shape(const shape *sh, mm_layout lay, int samples,
                        double min_s) {
  loom_scope *s = loom_scope_begin();
  mm_ctx x = {sh->m, sh->n, sh->k, lay, NULL, NULL, NULL};
  x.a = lay == TN ? loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(sh->k, sh->m))
                  : loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(sh->m, sh->k));
  x.b = lay == NT ? loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(sh->n, sh->k))
                  : loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(sh->k, sh->n));
  if (!x.a || !x.b) {
    fprintf(stderr, "matmul: %s\n", loom_last_error());
    exit(1);
  }
  x.c = bench_alloc_f32((size_t)(sh->m * sh->n));
  double err = check(&x);
  bench_fn fns[2] = {run_loom, run_blas};
  void *ctxs[2] = {&x, &x};
  double med[2], *times = malloc(sizeof *times * 2 * (size_t)samples);
  if (!times)
    exit(2);
  bench_compare(2, fns, ctxs, samples, min_s, med, times);
  double ratio = bench_speed_ratio(times, samples, 0, 1);
  free(times);
  double flop = 2.0 * (double)sh->m * (double)sh->n * (double)sh->k;
  double gl = flop / med[0] * 1e-9, gb = flop / med[1] * 1e-9;
  const char *layout = layout_names[lay];
  printf("%-10s %s %5lld %5lld %5lld %10.3f %9.2f %9.2f %7.3f  %.1e\n",
         sh->name, layout, (long long)sh->m, (long long)sh->n, (long long)sh->k,
         med[0] * 1e3, gl, gb, ratio, err);
  printf("@matmul %s %s %lld %lld %lld %.3f %.3f %.4f\n", sh->name, layout,
         (long long)sh->m, (long long)sh->n, (long long)sh->k, gl, gb, ratio);
  fflush(stdout);
  free(x.c);
  loom_scope_end(s);
}

int main(int argc, char **argv) {
  blas_threads = openblas_get_num_threads();
  bench_pause_s = 0.15;
  int samples = 9;
  double min_s = 0.04;
  const char *only = bench_take_option(&argc, argv, "m"); /* one M only */
  bench_options(argc, argv,
                "usage: bench-matmul [--samples N] [--min-ms MS] [--m M]\n"
                "loom_matmul vs cblas_sgemm GFLOP/s, float32.\n",
                &samples, &min_s);
  static const shape shapes[] = {
      {"square", 64, 64, 64, ALL},
      {"square", 128, 128, 128, ALL},
      {"square", 256, 256, 256, ALL},
      {"square", 512, 512, 512, ALL},
      {"square", 1024, 1024, 1024, ALL},
      {"square", 2048, 2048, 2048, ALL},
      {"lstm", 32, 2048, 512, NT},
      {"lstm", 32, 2048, 768, NT},
      {"lstm", 64, 2048, 512, NT},
      {"lstm", 64, 2048, 768, NT},
      /* the LSTM step: input projection, its input's gradient, W_ih's
       * and W_hh's */
      {"lstm_x", 1120, 2048, 256, NT},
      {"lstm_dx", 1120, 256, 2048, NN},
      {"lstm_dw", 2048, 256, 1120, TN},
      {"lstm_dwh", 2048, 512, 1120, TN},
      /* the encoder: q/k/v, the feed-forward pair, their gradients */
      {"enc_qkv", 2048, 768, 256, NT},
      {"enc_ff1", 2048, 1024, 256, NT},
      {"enc_ff2", 2048, 256, 1024, NT},
      {"enc_dx", 2048, 256, 1024, NN},
      {"enc_dw", 1024, 256, 2048, TN},
      {"enc_dw2", 256, 1024, 2048, TN},
  };
  loom_manual_seed(1);
  printf("# OpenBLAS %s, core %s, %d threads; %d samples of >= %.0f ms\n",
         openblas_get_config(), openblas_get_corename(), blas_threads, samples,
         min_s * 1e3);
  printf("%-10s %s %5s %5s %5s %10s %9s %9s %7s  %s\n", "# shape", "op", "M",
         "N", "K", "loom_ms", "loom_GF/s", "blas_GF/s", "ratio", "rel_err");
  for (unsigned t = NN; t <= TN; t++)
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
      if ((!only || atoll(only) == shapes[i].m) &&
          (shapes[i].lay == t || shapes[i].lay == ALL))
        bench_shape(&shapes[i], (mm_layout)t, samples, min_s);
  loom_cleanup();
  return 0;
}
