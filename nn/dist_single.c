/* The transport of a loom built without MPI: there is no one to talk to.
 * A world of one never starts an operation, and distributed.c refuses to
 * start a world of several, so everything here only says so. */
#include "dist_transport.h"

#include <stdlib.h>

static int unavailable(const char *what) {
  loom_set_error(LOOM_ERR_COMM,
                 "%s: this loom was built without MPI (install "
                 "libopenmpi-dev and rebuild with meson -Dmpi=enabled)",
                 what);
  return -1;
}

bool loom__transport_available(void) { return false; }

int loom__transport_init(int *argc, char ***argv, bool threads, int *rank,
                         int *size, bool *threads_ok) {
  (void)argc, (void)argv, (void)threads, (void)rank, (void)size;
  *threads_ok = false;
  return unavailable("loom_dist_init");
}

int loom__transport_finalize(void) { return 0; }

_Noreturn void loom__transport_abort(int status) { exit(status); }

int loom__transport_all_reduce(void *buf, int64_t count, dist_type type,
                               dist_reduce op, dist_request *r) {
  (void)buf, (void)count, (void)type, (void)op, (void)r;
  return unavailable("all-reduce");
}

int loom__transport_broadcast(void *buf, int64_t count, dist_type type,
                              int root, dist_request *r) {
  (void)buf, (void)count, (void)type, (void)root, (void)r;
  return unavailable("broadcast");
}

int loom__transport_all_gather(const void *send, void *recv, int64_t count,
                               dist_type type, dist_request *r) {
  (void)send, (void)recv, (void)count, (void)type, (void)r;
  return unavailable("all-gather");
}

int loom__transport_barrier(dist_request *r) {
  (void)r;
  return unavailable("barrier");
}

int loom__transport_test(dist_request *r) {
  (void)r;
  return unavailable("waiting");
}

int loom__transport_send(const void *buf, int64_t n, int to, int tag,
                         dist_request *r) {
  (void)buf, (void)n, (void)to, (void)tag, (void)r;
  return unavailable("sending");
}

int loom__transport_receive(void *buf, int64_t n, int from, int tag,
                            dist_request *r) {
  (void)buf, (void)n, (void)from, (void)tag, (void)r;
  return unavailable("receiving");
}
