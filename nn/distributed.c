/* The world (who is running, for how long a collective may wait) and the
 * collectives on tensors and values, over the transport of
 * dist_transport.h. A world of one answers every collective itself. */
#define _POSIX_C_SOURCE 200809L
#include "dist_internal.h"

#include "../autograd/autograd.h"

#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 300.0
#define MAX_TIMEOUT 1e6

static struct {
  bool initialized, finalized;
  bool transport; /* the transport was started (a launcher ran us) */
  bool broken;    /* a collective failed: see loom__dist_broken */
  bool threads;   /* the transport may be called from several threads */
  int rank, size;
  int tag; /* of the last point-to-point operation */
  double timeout;
} world = {.size = 1, .timeout = DEFAULT_TIMEOUT};

bool loom_dist_available(void) { return loom__transport_available(); }
int loom_dist_rank(void) { return world.rank; }
int loom_dist_size(void) { return world.size; }
bool loom_dist_initialized(void) { return world.initialized; }
double loom_dist_timeout(void) { return world.timeout; }

double loom_dist_set_timeout(double seconds) {
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "loom_dist_set_timeout: %g seconds is not in (0, 1e6]",
                   seconds);
    return -1;
  }
  double old = world.timeout;
  world.timeout = seconds;
  return old;
}

double loom__dist_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whether a launcher started this process, and the world size it announced
 * (*size 0 when it did not say): Open MPI's mpirun, PMI (MPICH's hydra,
 * Slurm's srun --mpi=pmi2) and PMIx launchers. */
static bool launched(long *size) {
  const char *s = getenv("OMPI_COMM_WORLD_SIZE");
  if (!s)
    s = getenv("PMI_SIZE");
  *size = s ? strtol(s, NULL, 10) : 0;
  return s || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int read_timeout_env(void) {
  const char *s = getenv("LOOM_DIST_TIMEOUT");
  if (!s)
    return 0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v > 0 && v <= MAX_TIMEOUT)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "loom_dist_init: LOOM_DIST_TIMEOUT=%s is not a number of "
                   "seconds in (0, 1e6]",
                   s);
    return -1;
  }
  world.timeout = v;
  return 0;
}

int loom_dist_init(int *argc, char ***argv) {
  if (world.initialized || world.finalized) {
    loom_set_error(LOOM_ERR_STATE, "loom_dist_init: %s",
                   world.finalized ? "the world was already finalized"
                                   : "called twice");
    return -1;
  }
  if (read_timeout_env() < 0)
    return -1;
  long announced;
  if (launched(&announced) && !loom__transport_available() && announced != 1) {
    char many[32] = "several";
    if (announced > 1)
      snprintf(many, sizeof many, "%ld", announced);
    loom_set_error(LOOM_ERR_COMM,
                   "loom_dist_init: an MPI launcher started this process as "
                   "one of %s, but this loom was built without MPI (install "
                   "libopenmpi-dev and rebuild with meson -Dmpi=enabled)",
                   many);
    return -1;
  }
  if (launched(&announced) && loom__transport_available()) {
    if (loom__transport_init(argc, argv, true, &world.rank, &world.size,
                             &world.threads) < 0)
      return -1;
    world.transport = true;
  }
  world.initialized = true;
  return 0;
}

int loom_dist_finalize(void) {
  if (!world.initialized)
    return 0;
  if (world.broken) {
    fprintf(stderr,
            "loom: rank %d: a collective failed, so the ranks cannot "
            "finish together; aborting the job\n",
            world.rank);
    loom_dist_abort(1);
  }
  world.initialized = false;
  world.finalized = true;
  int rc = world.transport ? loom__transport_finalize() : 0;
  world.transport = false;
  world.rank = 0;
  world.size = 1;
  return rc;
}

_Noreturn void loom_dist_abort(int status) {
  fflush(stdout);
  fflush(stderr);
  if (world.transport)
    loom__transport_abort(status);
  exit(status);
}

/* ---- waiting with a deadline ---- */

bool loom__dist_usable(const char *what) {
  if (!world.initialized) {
    loom_set_error(LOOM_ERR_STATE, "%s: call loom_dist_init first", what);
    return false;
  }
  if (world.broken) {
    loom_set_error(LOOM_ERR_COMM,
                   "%s: an earlier collective failed, so the ranks are out "
                   "of step; end the job (loom_dist_abort)",
                   what);
    return false;
  }
  return true;
}

bool loom__dist_threads(void) { return world.threads || world.size == 1; }

int loom__dist_broken(void) {
  world.broken = true;
  return -1;
}

static int test_request(void *r) { return loom__transport_test(r); }

int loom__dist_wait(dist_request *r, const char *what) {
  return loom__dist_wait_until(test_request, r, what);
}

int loom__dist_wait_until(int (*test)(void *ctx), void *ctx, const char *what) {
  double start = loom__dist_now();
  for (unsigned i = 1;; i++) {
    int done = test(ctx);
    if (done)
      return done > 0 ? 0 : loom__dist_broken();
    /* Polling, not MPI_Wait, so that the wait can end; yielding lets the
     * other ranks run when the machine has fewer cores than processes. */
    if (i % 64 == 0) {
      double waited = loom__dist_now() - start;
      if (waited > world.timeout) {
        loom_set_error(LOOM_ERR_COMM,
                       "%s: rank %d of %d had no answer from the other "
                       "ranks within %g s: one of them failed, stopped, or "
                       "is far behind (the limit: LOOM_DIST_TIMEOUT or "
                       "loom_dist_set_timeout)",
                       what, world.rank, world.size, world.timeout);
        return loom__dist_broken();
      }
      sched_yield();
    }
  }
}

int loom__dist_next_tag(void) {
  world.tag = world.tag == DIST_MAX_TAG ? 0 : world.tag + 1;
  return world.tag;
}

/* ---- collectives ---- */

static bool dist_type_of(loom_dtype d, dist_type *t) {
  *t = d == LOOM_F32 ? DIST_F32 : d == LOOM_F64 ? DIST_F64 : DIST_I64;
  return d == LOOM_F32 || d == LOOM_F64 || d == LOOM_I64;
}

static const size_t type_size[] = {
    [DIST_F32] = 4, [DIST_F64] = 8, [DIST_I64] = 8, [DIST_BYTE] = 1};

/* buf[0..count) reduced (SUM, MAX, MIN) over all ranks, in pieces the
 * transport can carry. */
static int reduce_buffer(void *buf, int64_t count, dist_type type,
                         loom_dist_op op, const char *what) {
  dist_reduce r = op == LOOM_DIST_MAX   ? DIST_REDUCE_MAX
                  : op == LOOM_DIST_MIN ? DIST_REDUCE_MIN
                                        : DIST_REDUCE_SUM;
  for (int64_t done = 0; done < count; done += DIST_MAX_COUNT) {
    int64_t n = count - done < DIST_MAX_COUNT ? count - done : DIST_MAX_COUNT;
    dist_request req;
    if (loom__transport_all_reduce((char *)buf + done * type_size[type], n,
                                   type, r, &req) < 0)
      return loom__dist_broken();
    if (loom__dist_wait(&req, what) < 0)
      return -1;
  }
  return 0;
}

static int broadcast_buffer(void *buf, int64_t count, dist_type type, int root,
                            const char *what) {
  for (int64_t done = 0; done < count; done += DIST_MAX_COUNT) {
    int64_t n = count - done < DIST_MAX_COUNT ? count - done : DIST_MAX_COUNT;
    dist_request req;
    if (loom__transport_broadcast((char *)buf + done * type_size[type], n, type,
                                  root, &req) < 0)
      return loom__dist_broken();
    if (loom__dist_wait(&req, what) < 0)
      return -1;
  }
  return 0;
}

static bool check_root(int root, const char *what) {
  if (root >= 0 && root < world.size)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT, "%s: root %d is not a rank (0 to %d)", what,
                 root, world.size - 1);
  return false;
}

/* A new contiguous copy of t (owned by the innermost scope), which the
 * collectives work on: t itself is only written through loom_copy_, so
 * its version is bumped and a graph that saved it notices. */
static loom_tensor *working_copy(const loom_tensor *t) {
  loom_no_grad_begin();
  loom_tensor *c = loom_clone(t);
  loom_no_grad_end();
  return c;
}

static int write_back(loom_tensor *t, const loom_tensor *c) {
  loom_no_grad_begin();
  loom_tensor *r = loom_copy_(t, c);
  loom_no_grad_end();
  return r ? 0 : -1;
}

static int64_t bytes_of(const loom_tensor *t) {
  return loom_numel(t) * (int64_t)loom_dtype_size(loom_dtype_of(t));
}

static void divide(void *buf, int64_t n, dist_type type, double by) {
  if (type == DIST_F32)
    for (int64_t i = 0; i < n; i++)
      ((float *)buf)[i] = (float)(((float *)buf)[i] / by);
  else
    for (int64_t i = 0; i < n; i++)
      ((double *)buf)[i] /= by;
}

/* An op outside the enum used to be taken as a sum: refuse it instead. */
static bool check_op(loom_dist_op op, const char *what) {
  if ((int)op >= LOOM_DIST_SUM && (int)op <= LOOM_DIST_MIN)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: op %d is not a loom_dist_op (LOOM_DIST_SUM, MEAN, MAX "
                 "or MIN: 0 to 3)",
                 what, (int)op);
  return false;
}

int loom_dist_all_reduce(loom_tensor *t, loom_dist_op op) {
  const char *what = "loom_dist_all_reduce";
  if (!t || !check_op(op, what))
    return -1;
  dist_type type;
  if (!dist_type_of(loom_dtype_of(t), &type) ||
      (op == LOOM_DIST_MEAN && type == DIST_I64)) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: %s %s%s", what,
                   loom_dtype_name(loom_dtype_of(t)), loom_shape_text(t),
                   type == DIST_I64 ? " has no mean (sum it)"
                                    : " (float32, float64 or int64 only)");
    return -1;
  }
  if (!loom__dist_usable(what))
    return -1;
  if (world.size == 1)
    return 0;
  loom_tensor *c = working_copy(t);
  if (!c || reduce_buffer(loom_data(c), loom_numel(c), type, op, what) < 0)
    return -1;
  if (op == LOOM_DIST_MEAN)
    divide(loom_data(c), loom_numel(c), type, world.size);
  return write_back(t, c);
}

int loom_dist_all_reduce_values(double *values, int64_t n, loom_dist_op op) {
  const char *what = "loom_dist_all_reduce_values";
  if (!check_op(op, what))
    return -1;
  if (n < 0 || (n > 0 && !values)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: %lld values at %p", what,
                   (long long)n, (void *)values);
    return -1;
  }
  if (!loom__dist_usable(what))
    return -1;
  if (world.size == 1 || n == 0)
    return 0;
  int rc = reduce_buffer(values, n, DIST_F64, op, what);
  if (rc == 0 && op == LOOM_DIST_MEAN)
    divide(values, n, DIST_F64, world.size);
  return rc;
}

int loom_dist_broadcast(loom_tensor *t, int root) {
  const char *what = "loom_dist_broadcast";
  if (!t)
    return -1;
  if (!loom__dist_usable(what) || !check_root(root, what))
    return -1;
  if (world.size == 1)
    return 0;
  loom_tensor *c = working_copy(t);
  if (!c ||
      broadcast_buffer(loom_data(c), bytes_of(c), DIST_BYTE, root, what) < 0)
    return -1;
  return write_back(t, c);
}

int loom_dist_broadcast_bytes(void *buf, int64_t n, int root) {
  const char *what = "loom_dist_broadcast_bytes";
  if (n < 0 || (n > 0 && !buf)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: %lld bytes at %p", what,
                   (long long)n, buf);
    return -1;
  }
  if (!loom__dist_usable(what) || !check_root(root, what))
    return -1;
  if (world.size == 1 || n == 0)
    return 0;
  return broadcast_buffer(buf, n, DIST_BYTE, root, what);
}

int loom_dist_barrier(void) {
  if (!loom__dist_usable("loom_dist_barrier"))
    return -1;
  if (world.size == 1)
    return 0;
  dist_request req;
  if (loom__transport_barrier(&req) < 0)
    return loom__dist_broken();
  return loom__dist_wait(&req, "loom_dist_barrier");
}

/* ---- all-gather ---- */

/* What every rank's tensor must agree on: dtype, ndim and shape. */
#define DESCRIPTION_WORDS (2 + LOOM_MAX_DIMS)

static void describe(const loom_tensor *t, int64_t *d) {
  memset(d, 0, DESCRIPTION_WORDS * sizeof *d);
  d[0] = loom_dtype_of(t);
  d[1] = loom_ndim(t);
  memcpy(d + 2, loom_shape(t), (size_t)loom_ndim(t) * sizeof *d);
}

static int gather_buffer(const void *send, void *recv, int64_t count,
                         dist_type type, const char *what) {
  if (count > DIST_MAX_COUNT / world.size) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: %lld elements from each of %d ranks is more than "
                   "one operation carries (%lld in all)",
                   what, (long long)count, world.size,
                   (long long)DIST_MAX_COUNT);
    return -1;
  }
  dist_request req;
  if (loom__transport_all_gather(send, recv, count, type, &req) < 0)
    return loom__dist_broken();
  return loom__dist_wait(&req, what);
}

/* The first rank whose description differs from rank 0's, or -1. */
static int first_different(const int64_t *all) {
  for (int r = 1; r < world.size; r++)
    if (memcmp(all, all + r * DESCRIPTION_WORDS,
               DESCRIPTION_WORDS * sizeof *all))
      return r;
  return -1;
}

/* The slices of the gathered ranks, (size, shape...), joined along dim. */
static loom_tensor *join(loom_tensor *gathered, const loom_tensor *t, int dim) {
  loom_tensor **parts = malloc((size_t)world.size * sizeof *parts);
  if (!parts)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "loom_dist_all_gather: out of memory");
  for (int r = 0; r < world.size; r++)
    parts[r] = loom_reshape(loom_narrow(gathered, 0, r, 1), loom_ndim(t),
                            loom_shape(t));
  loom_tensor *out = loom_concat(parts, world.size, dim);
  free(parts);
  return out;
}

loom_tensor *loom_dist_all_gather(const loom_tensor *t, int dim) {
  const char *what = "loom_dist_all_gather";
  if (!t)
    return NULL;
  int ndim = loom_ndim(t), d = dim < 0 ? dim + ndim : dim;
  if (ndim == 0 || d < 0 || d >= ndim)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s: dim %d of a tensor %s", what, dim,
                     loom_shape_text(t));
  if (!loom__dist_usable(what))
    return NULL;
  loom_no_grad_begin();
  loom_tensor *out = NULL;
  int64_t *all = malloc((size_t)world.size * DESCRIPTION_WORDS * sizeof *all);
  int64_t mine[DESCRIPTION_WORDS];
  describe(t, mine);
  if (!all)
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", what);
  else if (world.size == 1)
    out = loom_clone(t);
  else if (gather_buffer(mine, all, DESCRIPTION_WORDS, DIST_I64, what) == 0) {
    int r = first_different(all);
    if (r >= 0) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "%s: rank %d gives a different dtype or shape from "
                     "rank 0's (this is rank %d, with %s %s)",
                     what, r, world.rank, loom_dtype_name(loom_dtype_of(t)),
                     loom_shape_text(t));
    } else {
      int64_t shape[LOOM_MAX_DIMS + 1] = {world.size};
      memcpy(shape + 1, loom_shape(t), (size_t)ndim * sizeof *shape);
      loom_tensor *src = loom_contiguous(t);
      loom_tensor *g = loom_empty(loom_dtype_of(t), ndim + 1, shape);
      if (src && g &&
          gather_buffer(loom_data(src), loom_data(g), bytes_of(t), DIST_BYTE,
                        what) == 0)
        out = join(g, t, d);
    }
  }
  free(all);
  loom_no_grad_end();
  return out;
}
