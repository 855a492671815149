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

#include <stddef.h>

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

#endif
