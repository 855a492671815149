#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

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
