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
/* Records that communication failed: from now on the world is broken (an
 * operation in flight can neither finish nor be cancelled) and every
 * collective fails at once. Returns -1. */
int loom__dist_broken(void);
/* Waits for r until the world's timeout; `what` names the operation in the
 * error. 0, or -1 with LOOM_ERR_COMM (the world is then broken). */
int loom__dist_wait(dist_request *r, const char *what);
/* Whether r is done, without waiting: 1, 0, or -1 with an error (the world
 * is then broken). Drives progress on everything in flight. */
int loom__dist_poll(dist_request *r);
/* Seconds on a monotonic clock. */
double loom__dist_now(void);

#endif
