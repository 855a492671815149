/* What loom's distributed layer needs from a message-passing library: MPI
 * (dist_mpi.c) or, in a build without it, nothing (dist_single.c). Only
 * these two files know which; nothing else in the library depends on MPI.
 * Not installed.
 *
 * Every operation is non-blocking: it starts, and loom__transport_test
 * says when it is done, so a caller can wait with a deadline (a blocking
 * MPI call would wait forever for a rank that died). The world's size is
 * at least 2 whenever an operation is started: a world of one never calls
 * them. Functions returning int give 0, or -1 with a LOOM_ERR_COMM error
 * that names the operation and the library's own reason. */
#ifndef LOOM_DIST_TRANSPORT_H
#define LOOM_DIST_TRANSPORT_H

#include "../tensor/tensor.h"

typedef enum { DIST_F32, DIST_F64, DIST_I64, DIST_BYTE } dist_type;
typedef enum { DIST_REDUCE_SUM, DIST_REDUCE_MAX, DIST_REDUCE_MIN } dist_reduce;

/* An operation in flight (the library's request handle, stored by value). */
typedef struct dist_request {
  uint64_t handle[2];
} dist_request;

/* Most elements one operation may carry (MPI counts are int). */
#define DIST_MAX_COUNT ((int64_t)1 << 30)

bool loom__transport_available(void);
/* Initialises the library for a process its launcher started: *rank and
 * *size receive its place in the world. `threads`: another thread will
 * call loom__transport_test concurrently (asks for MPI_THREAD_MULTIPLE);
 * *threads_ok says whether the library granted it. */
int loom__transport_init(int *argc, char ***argv, bool threads, int *rank,
                         int *size, bool *threads_ok);
int loom__transport_finalize(void);
_Noreturn void loom__transport_abort(int status);

/* buf[0..count) of `type` reduced over all ranks, in place. */
int loom__transport_all_reduce(void *buf, int64_t count, dist_type type,
                               dist_reduce op, dist_request *r);
/* root's buf[0..count) into every rank's buf. */
int loom__transport_broadcast(void *buf, int64_t count, dist_type type,
                              int root, dist_request *r);
/* Every rank's send[0..count) into recv[rank * count ...]. */
int loom__transport_all_gather(const void *send, void *recv, int64_t count,
                               dist_type type, dist_request *r);
int loom__transport_barrier(dist_request *r);
/* Point-to-point: n bytes to rank `to`, or from rank `from`, with `tag`
 * in 0..DIST_MAX_TAG (messages between two ranks with one tag arrive in
 * the order they were sent). */
#define DIST_MAX_TAG 32767
int loom__transport_send(const void *buf, int64_t n, int to, int tag,
                         dist_request *r);
int loom__transport_receive(void *buf, int64_t n, int from, int tag,
                            dist_request *r);
/* 1 when r is done (its buffers may be used), 0 if not yet, -1 on an
 * error. Also drives the library's progress on everything in flight. */
int loom__transport_test(dist_request *r);

#endif
