/* The transport over MPI: non-blocking collectives on a communicator of
 * loom's own (a duplicate of MPI_COMM_WORLD, so a program's own MPI
 * messages never match loom's), whose errors are returned, not fatal. */
#include "dist_transport.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(MPI_Request) <= sizeof(((dist_request *)0)->handle),
               "dist_request holds an MPI_Request");

static MPI_Comm comm = MPI_COMM_NULL;
static bool started_mpi; /* loom called MPI_Init, so it finalizes */

/* Records MPI's own description of error code `code` from `what`. */
static int mpi_failed(const char *what, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    snprintf(text, sizeof text, "error code %d", code);
  loom_set_error(LOOM_ERR_COMM, "%s failed in MPI: %s", what, text);
  return -1;
}

static MPI_Datatype mpi_type(dist_type t) {
  switch (t) {
  case DIST_F32:
    return MPI_FLOAT;
  case DIST_F64:
    return MPI_DOUBLE;
  case DIST_I64:
    return MPI_INT64_T;
  default:
    return MPI_BYTE;
  }
}

static MPI_Op mpi_op(dist_reduce op) {
  return op == DIST_REDUCE_MAX   ? MPI_MAX
         : op == DIST_REDUCE_MIN ? MPI_MIN
                                 : MPI_SUM;
}

static MPI_Request *request(dist_request *r) { return (MPI_Request *)r; }

bool loom__transport_available(void) { return true; }

int loom__transport_init(int *argc, char ***argv, bool threads, int *rank,
                         int *size, bool *threads_ok) {
  int ready = 0, provided = MPI_THREAD_SINGLE, rc;
  MPI_Initialized(&ready);
  if (ready) { /* the program started MPI itself */
    MPI_Query_thread(&provided);
  } else {
    int wanted = threads ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED;
    rc = MPI_Init_thread(argc, argv, wanted, &provided);
    if (rc != MPI_SUCCESS)
      return mpi_failed("MPI_Init_thread", rc);
    started_mpi = true;
  }
  *threads_ok = provided >= MPI_THREAD_MULTIPLE;
  /* Errors come back as codes, so loom can say what failed and a timeout
   * is ours to enforce. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_rank(comm, rank);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_size(comm, size);
  return rc == MPI_SUCCESS ? 0 : mpi_failed("joining the world", rc);
}

int loom__transport_finalize(void) {
  if (comm != MPI_COMM_NULL)
    MPI_Comm_free(&comm);
  if (!started_mpi)
    return 0;
  started_mpi = false;
  int rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Finalize", rc);
}

_Noreturn void loom__transport_abort(int status) {
  int ready = 0, done = 0;
  MPI_Initialized(&ready);
  MPI_Finalized(&done);
  if (ready && !done)
    MPI_Abort(MPI_COMM_WORLD, status);
  exit(status);
}

int loom__transport_all_reduce(void *buf, int64_t count, dist_type type,
                               dist_reduce op, dist_request *r) {
  int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(type),
                          mpi_op(op), comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Iallreduce", rc);
}

int loom__transport_broadcast(void *buf, int64_t count, dist_type type,
                              int root, dist_request *r) {
  int rc = MPI_Ibcast(buf, (int)count, mpi_type(type), root, comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Ibcast", rc);
}

int loom__transport_all_gather(const void *send, void *recv, int64_t count,
                               dist_type type, dist_request *r) {
  int rc = MPI_Iallgather(send, (int)count, mpi_type(type), recv, (int)count,
                          mpi_type(type), comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Iallgather", rc);
}

int loom__transport_barrier(dist_request *r) {
  int rc = MPI_Ibarrier(comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Ibarrier", rc);
}

int loom__transport_test(dist_request *r) {
  int flag = 0;
  int rc = MPI_Test(request(r), &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS)
    return mpi_failed("MPI_Test", rc);
  return flag ? 1 : 0;
}

int loom__transport_send(const void *buf, int64_t n, int to, int tag,
                         dist_request *r) {
  int rc = MPI_Isend(buf, (int)n, MPI_BYTE, to, tag, comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Isend", rc);
}

int loom__transport_receive(void *buf, int64_t n, int from, int tag,
                            dist_request *r) {
  int rc = MPI_Irecv(buf, (int)n, MPI_BYTE, from, tag, comm, request(r));
  return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Irecv", rc);
}
