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
 * (the world is then broken), LOOM_ERR_DTYPE/SHAPE for bad arguments. The
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

#ifdef __cplusplus
}
#endif
#endif
