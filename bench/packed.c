/* The packed-weight product of recurrent steps (tensor/kernel_gemm_packed.c)
 * against cblas_sgemm on the same operands, at the shapes of bench/rnn.c's
 * LSTM (C[M x 2048] += A[M x 512] B[512 x 2048], B a weight W_hh^T packed
 * once) and GRU (N 1536), for batches M 1, 8, 32 and 64, float32, on one
 * thread (loom_set_num_threads(1), OpenBLAS set to one thread), so the
 * figure is the micro-kernel's. Prints GFLOP/s (2 M N K / t, medians of
 * interleaved samples) at the instruction set loom runs (loom_isa(); set
 * LOOM_ISA to measure another). Then the packing itself, once per
 * sequence: W_hh (2048 x 512) as W_hh^T (transposed, the forward's) and
 * as it is (the backward's), in GB/s of floats packed (each call allocates
 * its panels, as the library does), next to memcpy of as many bytes. Lines
 * starting with "@packed" or "@pack" are for scripts.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include "../tensor/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t m, n, k;
  float *a, *b, *c;
  loom__packed *p;
} packed_ctx;

static void run_packed(void *ctx) {
  packed_ctx *x = ctx;
  loom__kernel_gemm_packed(x->m, x->a, x->k, x->p, x->c, x->n, true);
}

typedef struct {
  int64_t k, n;
  bool trans;
  float *b, *copy;
} pack_ctx;

static void run_pack(void *ctx) {
  pack_ctx *x = ctx;
  loom__packed *p =
      loom__kernel_pack(x->b, x->k, x->n, x->trans ? x->k : x->n, x->trans);
  if (!p) { /* a failed pack would be timed as a fast one */
    fprintf(stderr, "packed: %s\n", loom_last_error());
    exit(1);
  }
  loom__kernel_packed_free(p);
}

static void run_memcpy(void *ctx) {
  pack_ctx *x = ctx;
  memcpy(x->copy, x->b, (size_t)(x->k * x->n) * sizeof *x->b);
}

/* GB/s of packing a K x N right operand (stored N x K when trans). */
static void pack_case(int64_t k, int64_t n, bool trans, int samples,
                      double min_s) {
  pack_ctx x = {k, n, trans, bench_alloc_f32((size_t)(k * n)),
                bench_alloc_f32((size_t)(k * n))};
  for (int64_t i = 0; i < k * n; i++)
    x.b[i] = (float)(i % 13) * 0.01f;
  double med[2];
  bench_compare(2, (bench_fn[]){run_pack, run_memcpy}, (void *[]){&x, &x},
                samples, min_s, med, NULL);
  double bytes = (double)(k * n) * sizeof(float);
  printf("%-13s %5lld %5lld %10.1f %10.1f\n", trans ? "pack W^T" : "pack W",
         (long long)k, (long long)n, bytes / med[0] * 1e-9,
         bytes / med[1] * 1e-9);
  printf("@pack %s %s %.2f %.2f\n", loom_isa(), trans ? "transposed" : "plain",
         bytes / med[0] * 1e-9, bytes / med[1] * 1e-9);
  free(x.b);
  free(x.copy);
}

static void run_blas(void *ctx) {
  packed_ctx *x = ctx;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)x->m, (int)x->n,
              (int)x->k, 1, x->a, (int)x->k, x->b, (int)x->n, 1, x->c,
              (int)x->n);
}

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.1;
  bench_options(argc, argv,
                "usage: bench-packed [--samples N] [--min-ms MS]\n"
                "GFLOP/s of the packed-weight product vs cblas_sgemm, one "
                "thread.\n",
                &samples, &min_s);
  loom_set_num_threads(1);
  openblas_set_num_threads(1);
  const int64_t K = 512, Ns[] = {2048, 1536}, Ms[] = {1, 8, 32, 64};
  printf("# isa %s; one thread; K %lld; %d samples of >= %.0f ms\n", loom_isa(),
         (long long)K, samples, min_s * 1e3);
  printf("%-6s %5s %5s %10s %10s %7s\n", "# case", "M", "N", "packed", "sgemm",
         "ratio");
  for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
      packed_ctx x = {Ms[mi],
                      Ns[ni],
                      K,
                      bench_alloc_f32((size_t)(Ms[mi] * K)),
                      bench_alloc_f32((size_t)(K * Ns[ni])),
                      bench_alloc_f32((size_t)(Ms[mi] * Ns[ni])),
                      NULL};
      for (int64_t i = 0; i < x.m * K; i++)
        x.a[i] = (float)(i % 7) * 0.01f;
      for (int64_t i = 0; i < K * x.n; i++)
        x.b[i] = (float)(i % 11) * 0.01f;
      x.p = loom__kernel_pack(x.b, K, x.n, x.n, false);
      if (!x.p) {
        fprintf(stderr, "packed: %s\n", loom_last_error());
        return 1;
      }
      double med[2];
      bench_compare(2, (bench_fn[]){run_packed, run_blas}, (void *[]){&x, &x},
                    samples, min_s, med, NULL);
      double flop = 2.0 * (double)(x.m * x.n * K);
      printf("%-6s %5lld %5lld %10.1f %10.1f %7.2f\n",
             x.n == 2048 ? "lstm" : "gru", (long long)x.m, (long long)x.n,
             flop / med[0] * 1e-9, flop / med[1] * 1e-9, med[1] / med[0]);
      printf("@packed %s %s %lld %lld %.2f %.2f\n", loom_isa(),
             x.n == 2048 ? "lstm" : "gru", (long long)x.m, (long long)x.n,
             flop / med[0] * 1e-9, flop / med[1] * 1e-9);
      loom__kernel_packed_free(x.p);
      free(x.a);
      free(x.b);
      free(x.c);
    }
  printf("%-13s %5s %5s %10s %10s\n", "# packing", "K", "N", "GB/s", "memcpy");
  pack_case(K, 2048, true, samples, min_s);
  pack_case(2048, K, false, samples, min_s);
  loom_cleanup();
  return 0;
}
