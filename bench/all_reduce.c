/* All-reduce bandwidth: loom's gradient buckets against MPI's own
 * MPI_Allreduce on the same sizes, float32 sums, under mpirun.
 *
 * For each size, four ways to all-reduce that many bytes:
 *   MPI_Allreduce        in place on a buffer (Open MPI's tuned blocking
 *                        collective: the yardstick);
 *   MPI_Iallreduce+Test  in place, then MPI_Test in a loop until done
 *                        (Open MPI's non-blocking collective, libnbc);
 *   loom ring            loom's ring all-reduce of the buffer, waited for
 *                        as a bucket is (nn/dist_ring.c);
 *   loom bucket          loom_data_parallel_wait on a model of one
 *                        parameter of that size whose gradient is its
 *                        bucket (as after any step): the ring (which
 *                        also divides by the number of ranks) and the
 *                        bookkeeping of flags and buckets.
 * A round times each for a fixed number of calls between barriers (the
 * slowest rank's time counts); rounds alternate the order; the figure is
 * the median over rounds of bytes per second, and the ratio to
 * MPI_Allreduce is the median of the per-round ratios.
 *
 * Last, the ring's cost model (dist_ring.h), 2 (P - 1) alpha +
 * 2 (P - 1) / P * n / beta for n bytes, fitted to the fastest round of
 * each size (the one other work on the machine disturbed least) by least
 * squares on relative errors (alpha >= 0), for each way:
 * the alpha (seconds per message step) and beta (bytes per second) that
 * docs/distributed.md's scaling model takes.
 *
 *   mpirun -np 2 bench-all-reduce [--samples N] [--min-ms M]
 *   (as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1) */
#include "bench_util.h"

#include <loom/loom.h>
#include <mpi.h>

#include "nn/dist_internal.h"
#include "nn/dist_ring.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WAYS = 4 };

typedef struct {
  float *buf;
  int n;
  loom_module *model;
  loom_data_parallel *dp;
} size_case;

static int ring_done(void *ring) { return loom__ring_test(ring); }

static void fail(void) {
  fprintf(stderr, "bench-all-reduce: %s\n", loom_last_error());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static void run_way(size_case *c, int way) {
  MPI_Request req;
  dist_ring ring;
  int done = 0;
  switch (way) {
  case 0:
    MPI_Allreduce(MPI_IN_PLACE, c->buf, c->n, MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    break;
  case 1:
    MPI_Iallreduce(MPI_IN_PLACE, c->buf, c->n, MPI_FLOAT, MPI_SUM,
                   MPI_COMM_WORLD, &req);
    while (!done)
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    break;
  case 2:
    if (loom__ring_start(&ring, c->buf, c->n, DIST_F32, 1,
                         loom__dist_next_tag()) < 0 ||
        loom__dist_wait_until(ring_done, &ring, "ring") < 0)
      fail();
    loom__ring_free(&ring);
    break;
  default:
    if (loom_data_parallel_wait(c->dp) < 0)
      fail();
  }
}

/* Seconds per call of `way`, calls times over, on the slowest rank. */
static double time_way(size_case *c, int way, int calls) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now();
  for (int i = 0; i < calls; i++)
    run_way(c, way);
  double dt = (bench_now() - t0) / calls, slowest;
  MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double smallest(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    m = v[i] < m ? v[i] : m;
  return m;
}

/* alpha and beta of t[i] = 2 (P - 1) alpha + 2 (P - 1) / P * bytes[i] /
 * beta, least squares on the relative error (each size counts alike):
 * t[i] = x * a + y * b with a = 2 (P - 1), b = 2 (P - 1) / P * bytes[i],
 * x = alpha, y = 1 / beta; dividing row i by t[i] gives 1 = x u + y v. */
static void fit_ring(const double *bytes, const double *t, int n, int P,
                     double *alpha, double *beta) {
  double suu = 0, suv = 0, svv = 0, su = 0, sv = 0;
  for (int i = 0; i < n; i++) {
    double u = 2.0 * (P - 1) / t[i], v = 2.0 * (P - 1) / P * bytes[i] / t[i];
    suu += u * u, suv += u * v, svv += v * v, su += u, sv += v;
  }
  double det = suu * svv - suv * suv;
  double x = (su * svv - sv * suv) / det, y = (suu * sv - suv * su) / det;
  if (x < 0) { /* noise at the small sizes: no latency, bandwidth alone */
    x = 0;
    y = sv / svv;
  }
  *alpha = x;
  *beta = y > 0 ? 1 / y : 0;
}

int main(int argc, char **argv) {
  if (loom_dist_init(&argc, &argv) < 0) {
    fprintf(stderr, "bench-all-reduce: %s\n", loom_last_error());
    return 1;
  }
  int samples;
  double min_s;
  bench_options(argc, argv,
                "usage: mpirun -np P bench-all-reduce [--samples N] "
                "[--min-ms M]",
                &samples, &min_s);
  int rank = loom_dist_rank(), size = loom_dist_size();
  if (size < 2) { /* a world of one never started MPI */
    fprintf(stderr, "bench-all-reduce: run it under mpirun -np P, P >= 2\n");
    return 2;
  }
  if (rank == 0)
    printf("# all-reduce of float32 sums over %d ranks; median of %d rounds "
           "of >= %.0f ms each\n"
           "%10s %9s %11s %9s %11s %11s %9s %11s\n",
           size, samples, min_s * 1e3, "bytes", "MPI GB/s", "Iallreduce",
           "ring", "bucket", "Iallr/MPI", "ring/MPI", "bucket/MPI");
  enum { SIZES = 8 };
  double sizes[SIZES], fastest[WAYS][SIZES];
  int n_sizes = 0;
  for (int64_t bytes = 4096; bytes <= ((int64_t)64 << 20); bytes *= 4) {
    size_case c = {.n = (int)(bytes / 4)};
    c.buf = bench_alloc_f32((size_t)c.n);
    c.model = calloc(1, sizeof *c.model); /* freed by loom_module_free */
    if (!c.model)
      MPI_Abort(MPI_COMM_WORLD, 1);
    loom_module_init(c.model, "Bucket", NULL);
    loom_scope *s = loom_scope_begin();
    loom_tensor *w = loom_module_add_param(
        c.model, "w", loom_zeros(LOOM_F32, LOOM_SHAPE(c.n)));
    c.dp = loom_data_parallel_new(
        c.model, &(loom_data_parallel_opts){.bucket_bytes = bytes});
    if (!w || !c.dp || loom_set_grad(w, loom_ones(LOOM_F32, LOOM_SHAPE(c.n)))) {
      fprintf(stderr, "bench-all-reduce: %s\n", loom_last_error());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    loom_scope_end(s);
    /* calls per sample from a warm-up call of the slowest way */
    for (int way = 0; way < WAYS; way++)
      run_way(&c, way);
    double one = 0;
    for (int way = 0; way < WAYS; way++) {
      double t = time_way(&c, way, 1);
      one = t > one ? t : one;
    }
    int calls = (int)(min_s / (one > 1e-7 ? one : 1e-7)) + 1;
    double t[WAYS][64], ratio[WAYS][64];
    if (samples > 64)
      samples = 64;
    for (int r = 0; r < samples; r++)
      for (int j = 0; j < WAYS; j++) {
        int way = r % 2 ? WAYS - 1 - j : j;
        t[way][r] = time_way(&c, way, calls);
      }
    for (int r = 0; r < samples; r++)
      for (int way = 0; way < WAYS; way++)
        ratio[way][r] = t[0][r] / t[way][r];
    double gbs[WAYS];
    sizes[n_sizes] = (double)bytes;
    for (int way = 0; way < WAYS; way++) {
      fastest[way][n_sizes] = smallest(t[way], samples);
      gbs[way] = (double)bytes / median(t[way], samples) / 1e9;
    }
    n_sizes++;
    double r1 = median(ratio[1], samples), r2 = median(ratio[2], samples),
           r3 = median(ratio[3], samples);
    if (rank == 0) {
      printf("%10lld %9.3f %11.3f %9.3f %11.3f %11.2f %9.2f %11.2f\n",
             (long long)bytes, gbs[0], gbs[1], gbs[2], gbs[3], r1, r2, r3);
      printf("@all_reduce %lld %.4f %.4f %.4f %.4f %.3f %.3f %.3f\n",
             (long long)bytes, gbs[0], gbs[1], gbs[2], gbs[3], r1, r2, r3);
      fflush(stdout);
    }
    loom_data_parallel_free(c.dp);
    loom_module_free(c.model);
    free(c.buf);
  }
  static const char *const name[WAYS] = {"MPI_Allreduce", "Iallreduce",
                                         "loom ring", "loom bucket"};
  for (int way = 0; rank == 0 && size > 1 && way < WAYS; way++) {
    double alpha, beta;
    fit_ring(sizes, fastest[way], n_sizes, size, &alpha, &beta);
    printf("# %-13s fit 2(P-1) alpha + 2(P-1)/P n / beta: alpha %.2f us, "
           "beta %.3f GB/s\n",
           name[way], alpha * 1e6, beta / 1e9);
    printf("@all_reduce_fit %d %.4g %.4g\n", way, alpha, beta);
  }
  loom_cleanup();
  return loom_dist_finalize() < 0 ? 1 : 0;
}
