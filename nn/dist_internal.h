/* The world's internals shared by the distributed files (distributed.c,
 * data_parallel.c): starting an operation only in a healthy world, and
 * waiting for one with the world's deadline. Not installed. */
#ifndef LOOM_DIST_INTERNAL_H
#define LOOM_DIST_INTERNAL_H

#include "dist_transport.h"
#include "distributed.h"

/* Whether a collective may start now: false with an error when
 * loom_dist_init has not run (LOOM_ERR_STATE, naming `what`) or an earlier
 * collective failed (LOOM_ERR_COMM). */
bool loom__dist_usable(const char *what);
/* Whether two threads may use the transport at once (MPI granted
 * MPI_THREAD_MULTIPLE, which loom_dist_init asks for; a world of one has
 * nothing to guard). */
bool loom__dist_threads(void);
/* Records that communication failed: from now on the world is broken (an
 * operation in flight can neither finish nor be cancelled) and every
 * collective fails at once. Returns -1. */
int loom__dist_broken(void);
/* Waits for r until the world's timeout; `what` names the operation in the
 * error. 0, or -1 with LOOM_ERR_COMM (the world is then broken). */
int loom__dist_wait(dist_request *r, const char *what);
/* The same for any operation: test(ctx) returns 1 when it is done, 0 if
 * not yet, -1 on an error (which breaks the world). */
int loom__dist_wait_until(int (*test)(void *ctx), void *ctx, const char *what);
/* The tag of the next point-to-point operation: every rank counts the
 * same operations in the same order, so all agree on it. */
int loom__dist_next_tag(void);
/* Seconds on a monotonic clock. */
double loom__dist_now(void);

#endif
