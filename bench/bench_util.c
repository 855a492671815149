#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FNS 16

/* BENCH_CLOCK=cpu times with the process's CPU time instead of the wall
 * clock: on a machine shared with other work, a run pinned to one core
 * (taskset -c 0) then measures the work done, not the waiting. */
double bench_now(void) {
  static int cpu = -1;
  if (cpu < 0) {
    const char *c = getenv("BENCH_CLOCK");
    cpu = c && !strcmp(c, "cpu");
  }
  struct timespec ts;
  clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_pause_s;

void bench_compare(int n, const bench_fn *fns, void *const *ctxs, int samples,
                   double min_s, double *med, double *times) {
  if (n > MAX_FNS || samples < 1) {
    fprintf(stderr, "bench_compare: bad arguments\n");
    exit(2);
  }
  long iters[MAX_FNS];
  /* Warm up, then size a sample from the slowest of three single calls
   * so that one slow first call does not shrink the sample. */
  for (int f = 0; f < n; f++) {
    fns[f](ctxs[f]);
    double one = 0;
    for (int r = 0; r < 3; r++) {
      double t0 = bench_now();
      fns[f](ctxs[f]);
      double dt = bench_now() - t0;
      one = dt > one ? dt : one;
    }
    iters[f] = (long)(min_s / (one > 1e-9 ? one : 1e-9)) + 1;
  }
  double *t = malloc(sizeof *t * (size_t)(n * samples));
  if (!t) {
    fprintf(stderr, "bench_compare: out of memory\n");
    exit(2);
  }
  for (int s = 0; s < samples; s++) {
    /* Alternate the order so no function always runs right after the
     * same neighbour (cache and turbo state carry over). */
    for (int j = 0; j < n; j++) {
      int f = s % 2 ? n - 1 - j : j;
      if (bench_pause_s > 0) {
        struct timespec ts = {(time_t)bench_pause_s,
                              (long)(fmod(bench_pause_s, 1) * 1e9)};
        nanosleep(&ts, NULL);
      }
      double t0 = bench_now();
      for (long i = 0; i < iters[f]; i++)
        fns[f](ctxs[f]);
      t[f * samples + s] = (bench_now() - t0) / (double)iters[f];
    }
  }
  if (getenv("BENCH_VERBOSE")) /* every sample, to tell noise from effect */
    for (int f = 0; f < n; f++) {
      fprintf(stderr, "# fn %d, %ld calls/sample, us/call:", f, iters[f]);
      for (int s = 0; s < samples; s++)
        fprintf(stderr, " %.1f", t[f * samples + s] * 1e6);
      fprintf(stderr, "\n");
    }
  if (times)
    memcpy(times, t, sizeof *t * (size_t)(n * samples));
  for (int f = 0; f < n; f++)
    med[f] = median(t + f * samples, samples);
  free(t);
}

double bench_speed_ratio(const double *times, int samples, int a, int b) {
  double *r = malloc(sizeof *r * (size_t)samples);
  if (!r) {
    fprintf(stderr, "bench_speed_ratio: out of memory\n");
    exit(2);
  }
  for (int s = 0; s < samples; s++)
    r[s] = times[b * samples + s] / times[a * samples + s];
  double m = median(r, samples);
  free(r);
  return m;
}

float *bench_alloc_f32(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
  float *p = aligned_alloc(64, bytes ? bytes : 64);
  if (!p) {
    fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
    exit(2);
  }
  memset(p, 0, bytes);
  return p;
}

const char *bench_take_option(int *argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < *argc; i++) {
    if (strncmp(argv[i], "--", 2) || strcmp(argv[i] + 2, name))
      continue;
    const char *value = argv[i + 1];
    for (int j = i; j + 2 <= *argc; j++)
      argv[j] = argv[j + 2];
    *argc -= 2;
    return value;
  }
  return NULL;
}

void bench_options(int argc, char **argv, const char *usage, int *samples,
                   double *min_s) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
      *samples = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--min-ms") && i + 1 < argc) {
      *min_s = atof(argv[++i]) / 1e3;
    } else {
      printf("%s", usage);
      exit(strcmp(argv[i], "--help") ? 2 : 0);
    }
  }
  if (*samples < 1)
    *samples = 1;
}

void bench_add_product(bench_product *list, int *len, int cap, int64_t m,
                       int64_t n, int64_t k, double count, bool grad_a,
                       bool grad_b) {
  if (*len + 1 + grad_a + grad_b > cap) {
    fprintf(stderr, "bench_add_product: more than %d products\n", cap);
    exit(2);
  }
  list[(*len)++] = (bench_product){m, n, k, count};
  if (grad_a)
    list[(*len)++] = (bench_product){m, k, n, count};
  if (grad_b)
    list[(*len)++] = (bench_product){k, n, m, count};
}

double bench_products_flops(const bench_product *list, int len) {
  double f = 0;
  for (int i = 0; i < len; i++)
    f += 2.0 * (double)list[i].m * (double)list[i].n * (double)list[i].k *
         list[i].count;
  return f;
}

typedef struct {
  const bench_product *p;
  const float *a, *b;
  float *c;
} sgemm_ctx;

static void run_sgemm(void *ctx) {
  const sgemm_ctx *x = ctx;
  const bench_product *p = x->p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)p->m,
              (blasint)p->n, (blasint)p->k, 1.0f, x->a, (blasint)p->k, x->b,
              (blasint)p->n, 0.0f, x->c, (blasint)p->n);
}

double bench_products_blas_seconds(const bench_product *list, int len,
                                   int threads, int samples, double min_s) {
  double *per_call = malloc(sizeof *per_call * (size_t)(len > 0 ? len : 1));
  if (!per_call) {
    fprintf(stderr, "bench: out of memory\n");
    exit(2);
  }
  openblas_set_num_threads(threads);
  double total = 0;
  for (int i = 0; i < len; i++) {
    const bench_product *p = &list[i];
    int j = 0; /* a shape listed before is not timed again */
    while (j < i &&
           (list[j].m != p->m || list[j].n != p->n || list[j].k != p->k))
      j++;
    if (j < i) {
      per_call[i] = per_call[j];
    } else {
      sgemm_ctx x = {p, bench_alloc_f32((size_t)(p->m * p->k)),
                     bench_alloc_f32((size_t)(p->k * p->n)),
                     bench_alloc_f32((size_t)(p->m * p->n))};
      bench_compare(1, (bench_fn[]){run_sgemm}, (void *[]){&x}, samples, min_s,
                    &per_call[i], NULL);
      free((void *)x.a);
      free((void *)x.b);
      free(x.c);
    }
    total += per_call[i] * p->count;
  }
  openblas_set_num_threads(1);
  free(per_call);
  return total;
}
