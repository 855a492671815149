/* loom distributed: many processes training one model over MPI.
 *
 * The world. A program started by `mpirun -np N prog` (or another MPI
 * launcher) calls loom_dist_init and becomes rank 0..N-1 of a world of N;
 * started any other way it is a world of one, and every call below still
 * works (a collective over one rank returns its input). A loom built without
 * MPI (meson -Dmpi=disabled, or no libopenmpi-dev) has the same functions:
 * loom_dist_available() is false, a world of one works, and a process that
 * was started by a launcher as one of several fails in loom_dist_init,
 * since N copies each training alone would silently waste N - 1 machines.
 *
 * Collectives. Every rank calls the same collectives in the same order (the
 * MPI rule). None of them can hang forever: each waits at most the timeout
 * (loom_dist_set_timeout; 300 s, or LOOM_DIST_TIMEOUT in the environment),
 * then fails with LOOM_ERR_COMM saying that another rank failed, stopped or
 * is far behind. After a collective failed the world is broken: later ones
 * fail at once, and the program should call loom_dist_abort, which ends
 * every rank of the job. A rank that fails on its own (a bad file, a NaN
 * loss) should do the same, rather than leave the others waiting.
 *
 * The world is the one piece of process-wide state in loom (MPI is
 * process-wide): init, finalize and abort belong to the main thread.
 */
#ifndef LOOM_DISTRIBUTED_H
#define LOOM_DISTRIBUTED_H

#include "../tensor/tensor.h"

typedef struct loom_module loom_module;

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------ the world */

/* Whether this loom was built with MPI. */
LOOM_API bool loom_dist_available(void);

/* Joins the world: under a launcher, initialises MPI (which may remove its
 * own arguments from *argc, *argv; both may be NULL) with library traffic
 * on a communicator of its own whose errors are returned, not fatal;
 * otherwise a world of one, and MPI is not touched. Reads the timeout from
 * LOOM_DIST_TIMEOUT (seconds, in (0, 1e6]) when set. Calling it twice is
 * an error. 0, or -1 with an error (LOOM_ERR_COMM: MPI failed to start,
 * or launched as one of several ranks without MPI; LOOM_ERR_ARGUMENT: a bad
 * LOOM_DIST_TIMEOUT). */
LOOM_API int loom_dist_init(int *argc, char ***argv);
/* Leaves the world (MPI_Finalize when MPI was started), after which
 * loom_dist_init may not be called again. When a collective failed, the
 * ranks cannot finish together, so finalize aborts the job instead
 * (loom_dist_abort(1)). 0, or -1 with an error. A no-op before init. */
LOOM_API int loom_dist_finalize(void);
/* Ends this process with `status`, and under MPI every rank of the job
 * (MPI_Abort). Print the reason first. */
LOOM_API _Noreturn void loom_dist_abort(int status);
/* This process's rank (0 for a world of one, and before init) and the
 * number of ranks (1). */
LOOM_API int loom_dist_rank(void);
LOOM_API int loom_dist_size(void);
/* Whether loom_dist_init has run (and finalize has not). */
LOOM_API bool loom_dist_initialized(void);
/* How long a collective may wait for the other ranks before it fails, in
 * seconds, in (0, 1e6]. Returns the previous value, or -1 with an error
 * (LOOM_ERR_ARGUMENT) for a value outside the range. */
LOOM_API double loom_dist_set_timeout(double seconds);
LOOM_API double loom_dist_timeout(void);

/* ------------------------------------------------ collectives
 * Each returns 0, or -1 with an error: LOOM_ERR_STATE before
 * loom_dist_init, LOOM_ERR_COMM when communication failed or timed out
 * (the world is then broken), LOOM_ERR_DTYPE/SHAPE for bad arguments,
 * LOOM_ERR_ARGUMENT for a bad scalar (a root that is no rank, a count
 * below 0, an op outside loom_dist_op). The
 * tensors are written in place, also parameters that require grad, and
 * their version is bumped as for any in-place write (a world of one
 * writes nothing). */

typedef enum loom_dist_op {
  LOOM_DIST_SUM,
  LOOM_DIST_MEAN, /* the sum divided by the number of ranks (floats only) */
  LOOM_DIST_MAX,
  LOOM_DIST_MIN,
} loom_dist_op;

/* Replaces t (float32, float64 or int64; any shape, contiguous or not) with
 * its reduction over all ranks, elementwise. Every rank must pass the same
 * shape and dtype. */
LOOM_API int loom_dist_all_reduce(loom_tensor *t, loom_dist_op op);
/* The same for n doubles (metrics: loss sums, token counts, BLEU
 * statistics; counts below 2^53 add exactly). */
LOOM_API int loom_dist_all_reduce_values(double *values, int64_t n,
                                         loom_dist_op op);
/* Copies root's t into t on every rank (same shape and dtype everywhere). */
LOOM_API int loom_dist_broadcast(loom_tensor *t, int root);
/* Copies root's n bytes into buf on every rank. */
LOOM_API int loom_dist_broadcast_bytes(void *buf, int64_t n, int root);
/* Every rank's t, concatenated along `dim` in rank order (a new contiguous
 * tensor owned by the innermost scope). The ranks' tensors must have the
 * same dtype and shape; otherwise every rank fails with LOOM_ERR_SHAPE
 * naming the first rank that differs. NULL on error. */
LOOM_API loom_tensor *loom_dist_all_gather(const loom_tensor *t, int dim);
/* Returns once every rank has called it. */
LOOM_API int loom_dist_barrier(void);

/* ------------------------------------------------ sharding the data
 *
 * Each rank trains on its own part of every global batch. The sequence of
 * global batches is the same whatever the number of ranks (a seeded order
 * of the items, cut into batches), so a run on 2 ranks sees the data a
 * run on 8 or on 1 sees, and a resumed run with another number of ranks
 * continues the same sequence. */

/* This rank's part of n items (a global batch, in rank order): items
 * [*start, *start + *count). Parts differ in size by at most one (the
 * first n % P ranks take one more); data parallelism averages gradients,
 * so a mean loss over each rank's part equals the mean over the global
 * batch only when n is a multiple of P. 0, or -1 with LOOM_ERR_ARGUMENT
 * (n < 0, a NULL pointer). */
LOOM_API int loom_dist_shard(int64_t n, int64_t *start, int64_t *count);

typedef struct loom_dist_sampler loom_dist_sampler;

/* Global batches of `batch` items out of items 0..n_items-1: each epoch
 * the items in an order drawn from (seed, epoch) (or in order, without
 * `shuffle`), cut into floor(n_items / batch) batches (the incomplete
 * rest is left out). Caller frees. NULL with LOOM_ERR_ARGUMENT unless
 * 1 <= batch <= n_items <= LOOM_MAX_ELEMENTS. */
LOOM_API loom_dist_sampler *loom_dist_sampler_new(int64_t n_items,
                                                  int64_t batch, uint64_t seed,
                                                  bool shuffle);
LOOM_API void loom_dist_sampler_free(loom_dist_sampler *s);
/* Global batches per epoch. */
LOOM_API int64_t loom_dist_sampler_batches(const loom_dist_sampler *s);
/* Global batch `index` (0 <= index < batches) of `epoch` (>= 0): all of
 * it (`whole`), or this rank's part (loom_dist_shard of the batch), into
 * items[0..max). Returns the count, or -1 with LOOM_ERR_ARGUMENT (index
 * or epoch out of range, max too small) or LOOM_ERR_MEMORY. */
LOOM_API int64_t loom_dist_sampler_items(loom_dist_sampler *s, int64_t epoch,
                                         int64_t index, bool whole,
                                         int64_t *items, int64_t max);

/* ------------------------------------------------ data parallelism
 *
 * Every rank holds the same model and trains it on its own part of each
 * global batch; after backward the gradients are averaged over the ranks,
 * so every rank's optimizer takes the same step and the models stay equal
 * (as PyTorch's DistributedDataParallel and Horovod do). A step:
 *
 *   loom_data_parallel *dp = loom_data_parallel_new(&model->base, NULL);
 *   ...
 *   loom_optimizer_zero_grad(opt);
 *   loss = <forward on this rank's part of the batch, mean over it>;
 *   loom_backward(loss);              all-reduces start during backward
 *   loom_data_parallel_wait(dp);      gradients are now averaged
 *   loom_clip_grad_norm(...);         (optional: after the wait)
 *   loom_optimizer_step(opt);
 *
 * The gradients travel in buckets of a few MiB. Each parameter's gradient
 * is copied into its bucket by a grad-ready hook as soon as backward has
 * finished with it, and a bucket's non-blocking all-reduce starts as soon
 * as all of its gradients are in, so communication overlaps the rest of
 * backward; buckets start in one fixed order on every rank (the MPI rule),
 * filled in the order the first step's backward finished the parameters
 * on rank 0 (before that, the reverse of registration order). The hooks
 * also drive MPI's progress, which only happens inside MPI calls.
 *
 * A parameter that gets no gradient in a step (unused by this rank's
 * batch, or by the whole model) is sent as zeros with a flag, so no rank
 * waits for it: after the wait it has the average over the ranks that gave
 * one (divided by the number of ranks, as PyTorch does), or no gradient
 * when no rank gave one.
 *
 * From backward to the wait a gradient is in flight (divided by the number
 * of ranks as it goes into its bucket, then summed there): read or change
 * gradients (clipping) only after loom_data_parallel_wait. After it, each
 * parameter's gradient is its part of a bucket (a view, so nothing is
 * copied back); zeroing it as usual drops that view, and a backward into a
 * gradient left in place adds to it there.
 */

typedef struct loom_data_parallel loom_data_parallel;

typedef struct loom_data_parallel_opts {
  /* Gradient bytes per bucket (a larger gradient has a bucket of its
   * own); 0: LOOM_DATA_PARALLEL_BUCKET_BYTES. */
  int64_t bucket_bytes;
  /* Sum the ranks' gradients instead of averaging them: when each rank
   * divides its loss by a global count (tokens in the global batch). */
  bool sum;
  /* > 0: a thread of its own polls the buckets in flight every that many
   * microseconds (in [0, 1e6]) while backward computes, besides the hooks'
   * polls; needs MPI_THREAD_MULTIPLE (docs/distributed.md measures it).
   * 0: the hooks and the wait alone move the buckets along. */
  double progress_us;
} loom_data_parallel_opts;

#define LOOM_DATA_PARALLEL_BUCKET_BYTES ((int64_t)1 << 20)

/* Data parallelism over `model`'s parameters (loom_module_parameters;
 * the module must outlive the result, and gain no parameters meanwhile).
 * First checks that every rank's model has the same parameters and
 * buffers (names, dtypes, shapes, in order), then copies rank 0's values
 * of all of them to every rank, and registers a grad-ready hook on each
 * parameter. A collective: every rank calls it. opts may be NULL. Caller
 * frees. NULL with an error: LOOM_ERR_STATE naming the first tensor that
 * differs across ranks ("tensor 3 is `rnn.weight_ih_l0 float32 [32, 8]`
 * on rank 0 but `rnn.weight_ih_l0 float32 [24, 8]` on rank 1"), or before
 * loom_dist_init; LOOM_ERR_ARGUMENT for a bucket size below 1 or above
 * 2^30 bytes; LOOM_ERR_COMM. */
LOOM_API loom_data_parallel *
loom_data_parallel_new(loom_module *model, const loom_data_parallel_opts *opts);
/* Removes the hooks and frees dp (NULL-safe). Buckets still in flight
 * cannot be recalled: free only after loom_data_parallel_wait. */
LOOM_API void loom_data_parallel_free(loom_data_parallel *dp);

/* Waits until every bucket of this step is all-reduced (starting the
 * buckets of parameters no backward reached) and writes the averaged
 * gradients into the parameters. Then the next step may begin. Does
 * nothing inside no_sync. A collective: every rank calls it once per step,
 * also a rank that ran no backward. 0, or -1 with an error: LOOM_ERR_COMM
 * (failed or timed out: the world is then broken), LOOM_ERR_STATE. */
LOOM_API int loom_data_parallel_wait(loom_data_parallel *dp);

/* Between begin and end (nestable) backward only accumulates gradients
 * locally, as PyTorch's no_sync: for gradient accumulation over
 * micro-batches, run all but the last backward of a step inside it, and
 * the last (whose hooks send the accumulated sums) and the wait outside.
 * Every rank must do the same. */
LOOM_API void loom_data_parallel_no_sync_begin(loom_data_parallel *dp);
LOOM_API void loom_data_parallel_no_sync_end(loom_data_parallel *dp);

/* Checks that every rank's parameters are bit-identical (each rank hashes
 * its values; a collective). 0, or -1 with LOOM_ERR_STATE naming the
 * first parameter that differs (or LOOM_ERR_COMM). */
LOOM_API int loom_data_parallel_check_in_sync(loom_data_parallel *dp);

typedef struct loom_data_parallel_stats {
  int buckets;         /* per step */
  int64_t bytes;       /* all-reduced per step, flags included */
  int64_t steps;       /* loom_data_parallel_wait calls that synced */
  double wait_seconds; /* blocked in loom_data_parallel_wait */
  double hook_seconds; /* in the hooks: copies, starts, progress */
} loom_data_parallel_stats;

/* What dp has done so far. */
LOOM_API loom_data_parallel_stats
loom_data_parallel_stats_of(const loom_data_parallel *dp);

#ifdef __cplusplus
}
#endif
#endif
