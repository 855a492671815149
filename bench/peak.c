/* The CPU's float32 multiply-add peak: what no product can beat, and the
 * yardstick for every GFLOP/s figure the other programs print.
 *
 * Each thread runs a loop of twelve independent fused multiply-add chains
 * on 256-bit (AVX2) and, where the CPU has it, 512-bit (AVX-512) vectors:
 * enough chains to cover the units' latency times their throughput on
 * current x86 cores, and no loads. The figure is the median over samples
 * of GFLOP/s per core, with 1 and with all cores busy (a CPU that slows
 * its clock under wide vectors on every core shows it there).
 *
 * Any other program running takes its share of a core from these
 * figures: run it on a quiet machine.
 *
 * Usage: bench-peak [--samples N]
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ITERS 200000000L /* about 0.1 s at 2 multiply-adds a cycle */

#if defined(__GNUC__) && defined(__x86_64__)
/* Twelve chains: each vfmadd231ps adds r0 * r1 into its own register. */
#define CHAINS(R)                                                              \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "2\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "3\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "4\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "5\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "6\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "7\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "8\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "9\n\t"                               \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "10\n\t"                              \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "11\n\t"                              \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "12\n\t"                              \
  "vfmadd231ps %%" R "0, %%" R "1, %%" R "13\n\t"
#define CLOBBERS                                                               \
  "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",        \
      "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"

/* run_NAME(n) runs n iterations and returns the FLOPs done: 12 chains x
 * LANES x 2 per iteration. */
#define RUN(NAME, TARGET, R, LANES)                                            \
  __attribute__((target(TARGET))) static double run_##NAME(long n) {           \
    long k = n;                                                                \
    __asm__ volatile("vxorps %%" R "0, %%" R "0, %%" R "0\n\t"                 \
                     "vxorps %%" R "1, %%" R "1, %%" R "1\n\t"                 \
                     "1:\n\t" CHAINS(R) "dec %0\n\t"                           \
                                        "jnz 1b"                               \
                     : "+r"(k)                                                 \
                     :                                                         \
                     : CLOBBERS);                                              \
    return 12.0 * LANES * 2 * (double)n;                                       \
  }
RUN(avx2, "avx2,fma", "ymm", 8)
RUN(avx512, "avx512f", "zmm", 16)
#endif

typedef double (*kernel)(long);

typedef struct {
  kernel fn;
  double gflops;
} job;

static void *thread_main(void *arg) {
  job *j = arg;
  double t0 = bench_now();
  double flops = j->fn(ITERS);
  j->gflops = flops / (bench_now() - t0) * 1e-9;
  return NULL;
}

/* The slowest thread's GFLOP/s with `threads` threads running fn at once. */
static double sample(kernel fn, int threads) {
  job jobs[64];
  pthread_t ids[64];
  int started = 0;
  for (int i = 0; i < threads; i++) {
    jobs[i] = (job){fn, 0};
    if (pthread_create(&ids[i], NULL, thread_main, &jobs[i]) != 0)
      break;
    started++;
  }
  double slowest = started == threads ? 1e300 : 0;
  for (int i = 0; i < started; i++) {
    pthread_join(ids[i], NULL);
    slowest = jobs[i].gflops < slowest ? jobs[i].gflops : slowest;
  }
  return slowest;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(kernel fn, int threads, int samples) {
  double v[101];
  for (int s = 0; s < samples; s++)
    v[s] = sample(fn, threads);
  qsort(v, (size_t)samples, sizeof *v, by_value);
  return v[samples / 2];
}

int main(int argc, char **argv) {
  int samples = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 101) {
        fprintf(stderr, "bench-peak: --samples %s is not in 1..101\n", argv[i]);
        return 2;
      }
      samples = (int)v;
    } else {
      fprintf(stderr, "usage: bench-peak [--samples N (1..101)]\n"
                      "float32 multiply-add peak, GFLOP/s per core, with 1 "
                      "and with all cores busy\n");
      return !strcmp(argv[i], "--help") ? 0 : 2;
    }
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int all = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  struct {
    const char *name;
    kernel fn;
    bool has;
  } isas[] = {
      {"avx2", run_avx2,
       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
      {"avx512", run_avx512, __builtin_cpu_supports("avx512f")},
  };
  printf("# float32 multiply-add peak, GFLOP/s per core (median of %d); "
         "%d cores\n",
         samples, all);
  printf("# isa      1 core   %d cores   machine\n", all);
  for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
    if (!isas[i].has)
      continue;
    double one = median(isas[i].fn, 1, samples);
    double busy = median(isas[i].fn, all, samples);
    printf("%-8s %8.1f %9.1f %9.1f\n", isas[i].name, one, busy, busy * all);
    printf("@peak %s %.2f %.2f %d\n", isas[i].name, one, busy, all);
  }
#else
  (void)samples;
  (void)all;
  printf("# bench-peak measures x86-64 vector units only\n");
#endif
  return 0;
}
