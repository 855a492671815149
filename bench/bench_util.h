/* Timing helpers shared by the benchmark programs.
 *
 * Rule used by every program: each function is called a few times to warm
 * up (caches, page faults, thread pools), then timed in `samples` samples;
 * a sample is a run of back-to-back calls lasting at least `min_s`
 * seconds, and the figure reported is the median seconds per call. When
 * several functions are compared they are sampled in interleaved rounds,
 * so a noisy neighbour or a frequency change hits all of them alike.
 */
#ifndef LOOM_BENCH_UTIL_H
#define LOOM_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*bench_fn)(void *ctx);

/* Monotonic wall-clock time in seconds. */
double bench_now(void);

/* Times fns[i](ctxs[i]) for i < n as described above and writes the
 * median seconds per call of each to med[i]. If `times` is not NULL it
 * receives every sample: times[i * samples + s] is function i in round s. */
void bench_compare(int n, const bench_fn *fns, void *const *ctxs, int samples,
                   double min_s, double *med, double *times);
/* Seconds bench_compare sleeps before each sample (0 by default), so that
 * threads one function left polling are asleep when the next starts. */
extern double bench_pause_s;

/* How many times faster function a ran than function b, as the median
 * over rounds of the ratio within each round: a round's two samples are
 * taken back to back, so the ratio cancels slow drifts of the machine
 * that the ratio of two medians would not. */
double bench_speed_ratio(const double *times, int samples, int a, int b);

/* A 64-byte aligned buffer of n floats, written once so its pages exist
 * before timing starts. Exits the program on out of memory. */
float *bench_alloc_f32(size_t n);

/* Removes "--name VALUE" from argv (updating *argc) and returns VALUE, or
 * NULL when absent: how a program takes its own options before
 * bench_options sees the rest. */
const char *bench_take_option(int *argc, char **argv, const char *name);

/* Parses "--samples N" / "--min-ms M" style options shared by all
 * programs; unknown arguments make it print `usage` and exit. */
void bench_options(int argc, char **argv, const char *usage, int *samples,
                   double *min_s);

/* ---- how far a step is from the matrix products' limit ----
 * A benchmark lists the products one step computes (forward and backward,
 * in the shapes the library runs them); the step's FLOPs are the sum of
 * 2 m n k over them (multiply and add counted apart, elementwise work not
 * counted), so achieved GFLOP/s = FLOPs / step time, and the rate OpenBLAS
 * reaches on the same shapes says how fast the products alone could go. */
typedef struct {
  int64_t m, n, k; /* C (m x n) = A (m x k) B (k x n) */
  double count;    /* how many such products per step */
} bench_product;

/* Appends the product (m, n, k) x count to list[*len], and for training
 * its backward products: dA = dC B^T (m, k, n) when grad_a, dB = A^T dC
 * (k, n, m) when grad_b. Exits the program when more than `cap` entries
 * would be needed. */
void bench_add_product(bench_product *list, int *len, int cap, int64_t m,
                       int64_t n, int64_t k, double count, bool grad_a,
                       bool grad_b);

/* Sum of 2 m n k count over list[0, len). */
double bench_products_flops(const bench_product *list, int len);

/* Seconds cblas_sgemm (row major, no transposes, beta 0) takes for all
 * the products of the list on `threads` OpenBLAS threads: each distinct
 * shape is timed alone (median of `samples` samples of >= min_s seconds)
 * and multiplied by its count. FLOPs / this = OpenBLAS's rate for the
 * step's shapes. OpenBLAS is left at one thread, as loom runs it. */
double bench_products_blas_seconds(const bench_product *list, int len,
                                   int threads, int samples, double min_s);

#endif
