/* Data parallelism: the same model on every rank, gradients averaged in
 * buckets whose all-reduces start during backward (see distributed.h).
 *
 * Each bucket holds the gradients of some parameters of one dtype, one
 * after another, and then one flag per parameter: 1 if this rank had a
 * gradient for it, else 0 (its gradient part is zeros). After the sum,
 * a flag counts the ranks that had one. Buckets start strictly in index
 * order, so every rank issues the same collectives in the same order
 * whatever order its hooks ran in.
 *
 * At most one pass over the gradients besides the all-reduce: a gradient
 * is copied into its bucket; the ring divides by the number of ranks as
 * it finishes each chunk; and after it the parameter's gradient becomes
 * its part of the bucket (loom_set_grad takes the tensor itself), so
 * nothing is copied back. A gradient that is still its part at the next
 * step (not zeroed) is not copied at all. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "dist_internal.h"
#include "dist_ring.h"
#include "nn.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BUCKET_BYTES ((int64_t)1 << 30)
/* A model's description line (name, dtype, shape) is cut to this. */
#define LINE 512

typedef struct {
  loom_data_parallel *dp;
  const char *name; /* borrowed from dp->names */
  loom_tensor *param;
  loom_hook *hook;
  int bucket;
  int64_t flag;      /* index of its flag in the bucket */
  loom_tensor *slot; /* its gradient's place in the bucket (kept) */
  bool ready;        /* in the bucket this step */
  int64_t ready_at;  /* when its hook ran this step (-1: not yet) */
} dp_param;

typedef enum { BUCKET_FILLING, BUCKET_IN_FLIGHT, BUCKET_DONE } bucket_state;

typedef struct {
  loom_dtype dtype;
  loom_tensor *storage;    /* 1-D, kept; slots are views of it */
  void *data;              /* its elements */
  int64_t numel, flags_at; /* gradients end, flags begin, at flags_at */
  int pending;             /* parameters not yet in it this step */
  bucket_state state;
  dist_ring ring;
} dp_bucket;

struct loom_data_parallel {
  loom_tensor_map *names; /* the parameters by name (tensors kept) */
  dp_param *params;
  int n;
  int *order; /* parameters in bucket order */
  dp_bucket *buckets;
  int n_buckets, next_start;
  int64_t bucket_bytes;
  bool sum, replanned;
  int no_sync;
  int64_t ready_count;
  loom_data_parallel_stats stats;
  /* The progress thread (opts.progress_us > 0): it polls the buckets in
   * flight while backward computes. The lock guards the buckets' states
   * and rings and next_start whenever the thread exists. */
  bool threaded, stop, thread_failed;
  double progress_s;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  char thread_error[512];
};

/* ---- planning the buckets ---- */

static void free_buckets(loom_data_parallel *dp) {
  for (int i = 0; i < dp->n; i++) {
    loom_release(dp->params[i].slot);
    dp->params[i].slot = NULL;
  }
  for (int b = 0; b < dp->n_buckets; b++)
    loom_release(dp->buckets[b].storage);
  free(dp->buckets);
  dp->buckets = NULL;
  dp->n_buckets = 0;
}

static int64_t bytes_of(const loom_tensor *t) {
  return loom_numel(t) * (int64_t)loom_dtype_size(loom_dtype_of(t));
}

/* Buckets for the parameters in dp->order: a new one when the dtype
 * changes or the next gradient would overflow a non-empty one. A bucket
 * is a tensor, and each gradient's part of it a view, so a gradient that
 * became a part (unstage) stays valid after replanning or freeing. */
static int plan(loom_data_parallel *dp) {
  free_buckets(dp);
  dp->buckets = calloc((size_t)(dp->n ? dp->n : 1), sizeof *dp->buckets);
  if (!dp->buckets) {
    loom_set_error(LOOM_ERR_MEMORY, "loom_data_parallel: out of memory");
    return -1;
  }
  int64_t bytes = 0;
  dp_bucket *b = NULL;
  for (int k = 0; k < dp->n; k++) {
    dp_param *p = &dp->params[dp->order[k]];
    loom_dtype d = loom_dtype_of(p->param);
    int64_t size = bytes_of(p->param);
    if (!b || b->dtype != d || (bytes > 0 && bytes + size > dp->bucket_bytes)) {
      b = &dp->buckets[dp->n_buckets++];
      b->dtype = d;
      bytes = 0;
    }
    p->bucket = (int)(b - dp->buckets);
    p->flag = b->numel; /* for now, where its gradient starts */
    b->numel += loom_numel(p->param);
    b->pending++; /* for now, the count of its parameters */
    bytes += size;
  }
  loom_scope *s = loom_scope_begin();
  int rc = 0;
  for (int i = 0; rc == 0 && i < dp->n_buckets; i++) {
    b = &dp->buckets[i];
    b->flags_at = b->numel;
    b->numel += b->pending; /* one flag per parameter */
    b->pending = 0;
    b->storage = loom_keep(loom_zeros(b->dtype, LOOM_SHAPE(b->numel)));
    b->data = loom_data(b->storage);
    rc = b->storage ? 0 : -1;
  }
  for (int k = 0; rc == 0 && k < dp->n; k++) {
    dp_param *p = &dp->params[dp->order[k]];
    b = &dp->buckets[p->bucket];
    p->slot = loom_keep(
        loom_view(loom_narrow(b->storage, 0, p->flag, loom_numel(p->param)),
                  loom_ndim(p->param), loom_shape(p->param)));
    p->flag = b->flags_at + b->pending++;
    rc = p->slot ? 0 : -1;
  }
  loom_scope_end(s);
  dp->stats.buckets = dp->n_buckets;
  dp->stats.bytes = 0;
  for (int i = 0; i < dp->n_buckets; i++)
    dp->stats.bytes +=
        dp->buckets[i].numel * (int64_t)loom_dtype_size(dp->buckets[i].dtype);
  return rc;
}

/* ---- a step ---- */

static void set_flag(dp_bucket *b, int64_t i, double v) {
  if (b->dtype == LOOM_F32)
    ((float *)b->data)[i] = (float)v;
  else
    ((double *)b->data)[i] = v;
}

static double get_flag(const dp_bucket *b, int64_t i) {
  return b->dtype == LOOM_F32 ? ((const float *)b->data)[i]
                              : ((const double *)b->data)[i];
}

/* Copies p's gradient (or zeros) and its flag into its bucket: nothing to
 * copy when the gradient is its part of the bucket already. */
static int stage(loom_data_parallel *dp, dp_param *p) {
  dp_bucket *b = &dp->buckets[p->bucket];
  loom_tensor *g = loom_grad(p->param);
  if (!g) {
    loom_zero_(p->slot);
  } else if (g == p->slot) {
  } else if (loom_is_contiguous(g) && loom_dtype_of(g) == b->dtype) {
    memcpy(loom_data(p->slot), loom_data(g), (size_t)bytes_of(g));
  } else { /* another layout or dtype */
    loom_no_grad_begin();
    loom_tensor *r = loom_copy_(p->slot, g);
    loom_no_grad_end();
    if (!r)
      return -1;
  }
  set_flag(b, p->flag, g ? 1 : 0);
  p->ready = true;
  b->pending--;
  return 0;
}

static char *describe_bucket(const loom_data_parallel *dp, int i, char *buf,
                             size_t n) {
  const dp_bucket *b = &dp->buckets[i];
  snprintf(buf, n, "data parallel: the all-reduce of bucket %d of %d (%lld %s)",
           i + 1, dp->n_buckets, (long long)b->numel,
           loom_dtype_name(b->dtype));
  return buf;
}

/* Starts every full bucket whose predecessors have started. */
static int start_full_buckets(loom_data_parallel *dp) {
  while (dp->next_start < dp->n_buckets &&
         dp->buckets[dp->next_start].pending == 0) {
    dp_bucket *b = &dp->buckets[dp->next_start++];
    if (loom_dist_size() == 1) {
      b->state = BUCKET_DONE;
      continue;
    }
    /* the mean's division happens in the ring (flags too: only whether
     * they are zero matters) */
    double scale = dp->sum ? 1 : 1.0 / loom_dist_size();
    if (loom__ring_start(&b->ring, b->data, b->numel,
                         b->dtype == LOOM_F32 ? DIST_F32 : DIST_F64, scale,
                         loom__dist_next_tag()) < 0)
      return loom__dist_broken();
    b->state = BUCKET_IN_FLIGHT;
  }
  return 0;
}

/* Whether bucket b is done (1), not yet (0), or failed (-1): a
 * loom__dist_wait_until test. */
static int bucket_done(void *ctx) {
  dp_bucket *b = ctx;
  if (b->state != BUCKET_IN_FLIGHT)
    return 1;
  int done = loom__ring_test(&b->ring);
  if (done > 0) {
    b->state = BUCKET_DONE;
    loom__ring_free(&b->ring);
  }
  return done;
}

/* Lets the buckets in flight move along (MPI only moves inside calls). */
static int progress(loom_data_parallel *dp) {
  for (int i = 0; i < dp->next_start; i++)
    if (bucket_done(&dp->buckets[i]) < 0)
      return -1;
  return 0;
}

static void lock(loom_data_parallel *dp) {
  if (dp->threaded)
    pthread_mutex_lock(&dp->lock);
}

static void unlock(loom_data_parallel *dp) {
  if (dp->threaded)
    pthread_mutex_unlock(&dp->lock);
}

/* The thread's failure, as this thread's error (under the lock). */
static int thread_failure(loom_data_parallel *dp) {
  loom_set_error(LOOM_ERR_COMM, "%s", dp->thread_error);
  return loom__dist_broken();
}

static void *progress_thread(void *arg) {
  loom_data_parallel *dp = arg;
  struct timespec nap = {0, (long)(dp->progress_s * 1e9)};
  pthread_mutex_lock(&dp->lock);
  while (!dp->stop) {
    bool flying = false;
    for (int i = 0; i < dp->next_start; i++)
      flying |= dp->buckets[i].state == BUCKET_IN_FLIGHT;
    if (!flying || dp->thread_failed) {
      pthread_cond_wait(&dp->wake, &dp->lock);
      continue;
    }
    if (progress(dp) < 0) { /* errors are per thread: hand it over */
      snprintf(dp->thread_error, sizeof dp->thread_error, "%s",
               loom_last_error());
      loom_clear_error();
      dp->thread_failed = true;
    }
    pthread_mutex_unlock(&dp->lock);
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&dp->lock);
  }
  pthread_mutex_unlock(&dp->lock);
  return NULL;
}

/* Starts the full buckets and moves those in flight along, from a hook or
 * the wait; wakes the progress thread. */
static int start_and_progress(loom_data_parallel *dp) {
  lock(dp);
  int rc = dp->thread_failed ? thread_failure(dp)
           : start_full_buckets(dp) < 0 || progress(dp) < 0
               ? loom__dist_broken()
               : 0;
  if (dp->threaded)
    pthread_cond_signal(&dp->wake);
  unlock(dp);
  return rc;
}

typedef struct {
  loom_data_parallel *dp;
  dp_bucket *b;
} bucket_of;

/* bucket_done under the lock (a loom__dist_wait_until test). */
static int locked_bucket_done(void *ctx) {
  bucket_of *w = ctx;
  lock(w->dp);
  int rc = w->dp->thread_failed ? thread_failure(w->dp) : bucket_done(w->b);
  unlock(w->dp);
  return rc;
}

static int on_grad_ready(loom_tensor *leaf, void *ctx) {
  (void)leaf;
  dp_param *p = ctx;
  loom_data_parallel *dp = p->dp;
  if (dp->no_sync)
    return 0;
  if (p->ready) {
    loom_set_error(LOOM_ERR_STATE,
                   "data parallel: backward finished the gradient of %s "
                   "twice in one step: call loom_data_parallel_wait after "
                   "each backward, or run all but a step's last backward "
                   "inside loom_data_parallel_no_sync_begin/end",
                   p->name);
    return -1;
  }
  if (!loom__dist_usable("data parallel"))
    return -1;
  double t0 = loom__dist_now();
  p->ready_at = dp->ready_count++;
  int rc = stage(dp, p) == 0 && start_and_progress(dp) == 0 ? 0 : -1;
  dp->stats.hook_seconds += loom__dist_now() - t0;
  return rc;
}

/* Each parameter some rank had a gradient for now has its bucket part as
 * its gradient. */
static int unstage(loom_data_parallel *dp) {
  for (int i = 0; i < dp->n; i++) {
    dp_param *p = &dp->params[i];
    if (get_flag(&dp->buckets[p->bucket], p->flag) == 0)
      continue; /* no rank had a gradient: it stays without one */
    if (loom_grad(p->param) != p->slot && loom_set_grad(p->param, p->slot) < 0)
      return -1;
  }
  return 0;
}

/* After the first step: buckets in the order rank 0's backward finished
 * the parameters (those it never finished last, as they were), sent to
 * every rank so all plan the same buckets. */
static int replan(loom_data_parallel *dp) {
  int64_t *order = malloc((size_t)(dp->n ? dp->n : 1) * sizeof *order);
  if (!order) {
    loom_set_error(LOOM_ERR_MEMORY, "loom_data_parallel: out of memory");
    return -1;
  }
  int k = 0;
  for (int64_t t = 0; t < dp->ready_count; t++) /* finished, in order */
    for (int i = 0; i < dp->n; i++)
      if (dp->params[i].ready_at == t)
        order[k++] = i;
  for (int j = 0; j < dp->n; j++) /* then the others, as they were */
    if (dp->params[dp->order[j]].ready_at < 0)
      order[k++] = dp->order[j];
  int rc = loom_dist_broadcast_bytes(order, (int64_t)dp->n * sizeof *order, 0);
  for (int i = 0; rc == 0 && i < dp->n; i++)
    dp->order[i] = (int)order[i];
  free(order);
  return rc == 0 ? plan(dp) : -1;
}

static void reset_step(loom_data_parallel *dp) {
  for (int i = 0; i < dp->n; i++) {
    dp->params[i].ready = false;
    dp->params[i].ready_at = -1;
  }
  for (int b = 0; b < dp->n_buckets; b++) {
    dp->buckets[b].state = BUCKET_FILLING;
    dp->buckets[b].pending = 0;
  }
  for (int i = 0; i < dp->n; i++)
    dp->buckets[dp->params[i].bucket].pending++;
  dp->next_start = 0;
  dp->ready_count = 0;
}

int loom_data_parallel_wait(loom_data_parallel *dp) {
  if (!dp)
    return -1;
  if (dp->no_sync)
    return 0;
  if (!loom__dist_usable("loom_data_parallel_wait"))
    return -1;
  double t0 = loom__dist_now();
  int rc = 0;
  for (int k = 0; rc == 0 && k < dp->n; k++) {
    dp_param *p = &dp->params[dp->order[k]];
    if (!p->ready)
      rc = stage(dp, p);
  }
  if (rc == 0)
    rc = start_and_progress(dp);
  char what[160];
  for (int i = 0; rc == 0 && i < dp->n_buckets; i++)
    rc = loom__dist_wait_until(locked_bucket_done,
                               &(bucket_of){dp, &dp->buckets[i]},
                               describe_bucket(dp, i, what, sizeof what));
  dp->stats.wait_seconds += loom__dist_now() - t0;
  lock(dp); /* the progress thread reads the buckets */
  if (rc == 0)
    rc = unstage(dp);
  if (rc == 0 && !dp->replanned) {
    dp->replanned = true;
    rc = replan(dp);
  }
  if (rc == 0) {
    dp->stats.steps++;
    reset_step(dp);
  }
  unlock(dp);
  return rc;
}

/* ---- the model, the same on every rank ---- */

/* "name dtype shape" of each tensor of m, one per line. NULL on no memory. */
static char *describe_model(const loom_tensor_map *m) {
  int n = loom_tensor_map_count(m);
  char *text = malloc((size_t)n * LINE + 1);
  if (!text)
    return NULL;
  size_t len = 0;
  text[0] = '\0';
  for (int i = 0; i < n; i++) {
    loom_tensor *t = loom_tensor_map_at(m, i);
    int w = snprintf(text + len, LINE, "%s %s %s\n", loom_tensor_map_name(m, i),
                     loom_dtype_name(loom_dtype_of(t)), loom_shape_text(t));
    len += w >= LINE ? LINE - 1 : (size_t)w;
    text[len - 1] = '\n'; /* a cut line still ends its line */
  }
  return text;
}

/* Line i of text into out (without its newline; "" past the end). */
static void line_of(const char *text, int64_t i, char *out) {
  for (; i > 0 && *text; i--)
    text = strchr(text, '\n') + 1;
  size_t n = *text ? strcspn(text, "\n") : 0;
  memcpy(out, text, n);
  out[n] = '\0';
}

/* The first line where a and b differ, or -1. */
static int64_t first_difference(const char *a, const char *b) {
  for (int64_t i = 0;; i++) {
    size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");
    if (na != nb || memcmp(a, b, na) || !a[na] != !b[nb])
      return i;
    if (!a[na])
      return -1;
    a += na + 1;
    b += nb + 1;
    if (!*a && !*b)
      return -1;
  }
}

/* Every rank compares its model's description with rank 0's; the first
 * difference on any rank (the lowest line, then rank) is named on all. */
static int check_same_model(const loom_tensor_map *state) {
  int rank = loom_dist_rank(), size = loom_dist_size();
  char *mine = describe_model(state), *theirs = NULL;
  int64_t len = mine ? (int64_t)strlen(mine) : 0;
  int rc = mine ? 0 : -1;
  if (rc == 0)
    rc = loom_dist_broadcast_bytes(&len, sizeof len, 0);
  if (rc == 0 && !(theirs = rank == 0 ? mine : malloc((size_t)len + 1)))
    rc = -1;
  if (rc == 0)
    rc = loom_dist_broadcast_bytes(theirs, len, 0);
  if (rc < 0) {
    if (mine && !theirs)
      loom_set_error(LOOM_ERR_MEMORY, "loom_data_parallel_new: out of memory");
    free(mine);
    return -1;
  }
  theirs[len] = '\0';
  int64_t diff = first_difference(mine, theirs);
  loom_scope *s = loom_scope_begin();
  int64_t key = diff < 0 ? INT64_MAX : diff * size + rank;
  loom_tensor *k = loom_from_array(LOOM_I64, &key, 0, NULL);
  rc = loom_dist_all_reduce(k, LOOM_DIST_MIN);
  key = rc == 0 ? loom_data_i64(k)[0] : INT64_MAX;
  loom_scope_end(s);
  if (rc == 0 && key != INT64_MAX) {
    int64_t line = key / size;
    int who = (int)(key % size);
    char at0[LINE], at_who[LINE];
    line_of(theirs, line, at0);
    line_of(mine, line, at_who);
    rc = loom_dist_broadcast_bytes(at_who, LINE, who);
    if (rc == 0) {
      loom_set_error(LOOM_ERR_STATE,
                     "loom_data_parallel_new: the model differs across "
                     "ranks: tensor %lld is `%s` on rank 0 but `%s` on rank "
                     "%d",
                     (long long)line, *at0 ? at0 : "(none)",
                     *at_who ? at_who : "(none)", who);
      rc = -1;
    }
  }
  if (theirs != mine)
    free(theirs);
  free(mine);
  return rc;
}

/* Every tensor of the state (parameters and buffers) from rank 0. */
static int broadcast_state(const loom_tensor_map *state) {
  for (int i = 0; i < loom_tensor_map_count(state); i++)
    if (loom_dist_broadcast(loom_tensor_map_at(state, i), 0) < 0)
      return -1;
  return 0;
}

void loom_data_parallel_free(loom_data_parallel *dp) {
  if (!dp)
    return;
  if (dp->threaded) {
    pthread_mutex_lock(&dp->lock);
    dp->stop = true;
    pthread_cond_signal(&dp->wake);
    pthread_mutex_unlock(&dp->lock);
    pthread_join(dp->thread, NULL);
    pthread_mutex_destroy(&dp->lock);
    pthread_cond_destroy(&dp->wake);
  }
  free_buckets(dp);
  for (int i = 0; i < dp->n; i++)
    loom_hook_remove(dp->params[i].hook);
  free(dp->params);
  free(dp->order);
  loom_tensor_map_free(dp->names);
  free(dp);
}

loom_data_parallel *
loom_data_parallel_new(loom_module *model,
                       const loom_data_parallel_opts *opts) {
  const char *what = "loom_data_parallel_new";
  loom_data_parallel_opts o = opts ? *opts : (loom_data_parallel_opts){0};
  if (!o.bucket_bytes)
    o.bucket_bytes = LOOM_DATA_PARALLEL_BUCKET_BYTES;
  if (!model)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s: the model is NULL", what);
  if (o.bucket_bytes < 1 || o.bucket_bytes > MAX_BUCKET_BYTES)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: bucket_bytes %lld is not in 1..2^30", what,
                     (long long)o.bucket_bytes);
  if (!(o.progress_us >= 0 && o.progress_us <= 1e6))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s: progress_us %g is not in [0, 1e6]",
                     what, o.progress_us);
  if (!loom__dist_usable(what))
    return NULL;
  if (o.progress_us > 0 && !loom__dist_threads())
    return LOOM_FAIL(LOOM_ERR_COMM,
                     "%s: a progress thread needs MPI_THREAD_MULTIPLE, "
                     "which this MPI did not grant",
                     what);
  loom_tensor_map *state = loom_module_state_dict(model);
  loom_data_parallel *dp = calloc(1, sizeof *dp);
  if (!state || !dp) {
    loom_tensor_map_free(state);
    free(dp);
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory", what);
  }
  dp->bucket_bytes = o.bucket_bytes;
  dp->sum = o.sum;
  int rc = check_same_model(state);
  if (rc == 0)
    rc = broadcast_state(state);
  loom_tensor_map_free(state);
  dp->names = rc == 0 ? loom_module_named_parameters(model) : NULL;
  dp->n = dp->names ? loom_tensor_map_count(dp->names) : 0;
  if (dp->names) {
    dp->params = calloc((size_t)(dp->n ? dp->n : 1), sizeof *dp->params);
    dp->order = calloc((size_t)(dp->n ? dp->n : 1), sizeof *dp->order);
  }
  rc = dp->params && dp->order ? 0 : -1;
  for (int i = 0; rc == 0 && i < dp->n; i++) {
    dp_param *p = &dp->params[i];
    *p = (dp_param){.dp = dp,
                    .name = loom_tensor_map_name(dp->names, i),
                    .param = loom_tensor_map_at(dp->names, i),
                    .ready_at = -1};
    p->hook = loom_register_grad_ready_hook(p->param, on_grad_ready, p);
    dp->order[i] = dp->n - 1 - i; /* backward meets the last ones first */
    if (!p->hook)
      rc = -1;
  }
  if (rc == 0)
    rc = plan(dp);
  if (rc < 0) {
    if (loom_last_status() == LOOM_OK)
      loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", what);
    loom_data_parallel_free(dp);
    return NULL;
  }
  reset_step(dp);
  if (o.progress_us > 0 && loom_dist_size() > 1) {
    dp->progress_s = o.progress_us * 1e-6;
    dp->threaded = pthread_mutex_init(&dp->lock, NULL) == 0;
    if (dp->threaded && pthread_cond_init(&dp->wake, NULL)) {
      pthread_mutex_destroy(&dp->lock);
      dp->threaded = false;
    }
    if (dp->threaded &&
        pthread_create(&dp->thread, NULL, progress_thread, dp)) {
      pthread_mutex_destroy(&dp->lock);
      pthread_cond_destroy(&dp->wake);
      dp->threaded = false;
    }
    if (!dp->threaded) {
      loom_set_error(LOOM_ERR_MEMORY, "%s: cannot start a thread", what);
      loom_data_parallel_free(dp);
      return NULL;
    }
  }
  return dp;
}

void loom_data_parallel_no_sync_begin(loom_data_parallel *dp) {
  if (dp)
    dp->no_sync++;
}

void loom_data_parallel_no_sync_end(loom_data_parallel *dp) {
  if (dp && dp->no_sync > 0)
    dp->no_sync--;
}

loom_data_parallel_stats
loom_data_parallel_stats_of(const loom_data_parallel *dp) {
  return dp ? dp->stats : (loom_data_parallel_stats){0};
}

/* FNV-1a over a tensor's bytes, row-major. */
static uint64_t hash_of(const loom_tensor *t) {
  const unsigned char *b = loom_data(loom_contiguous(t));
  uint64_t h = 14695981039346656037ull;
  for (int64_t i = 0; b && i < bytes_of(t); i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

int loom_data_parallel_check_in_sync(loom_data_parallel *dp) {
  if (!dp)
    return -1;
  if (!loom__dist_usable("loom_data_parallel_check_in_sync"))
    return -1;
  loom_scope *s = loom_scope_begin();
  loom_tensor *lo = loom_empty(LOOM_I64, LOOM_SHAPE(dp->n));
  for (int i = 0; lo && i < dp->n; i++)
    loom_data_i64(lo)[i] = (int64_t)hash_of(dp->params[i].param);
  loom_tensor *hi = loom_clone(lo);
  int rc = hi && loom_dist_all_reduce(lo, LOOM_DIST_MIN) == 0 &&
                   loom_dist_all_reduce(hi, LOOM_DIST_MAX) == 0
               ? 0
               : -1;
  for (int i = 0; rc == 0 && i < dp->n; i++)
    if (loom_data_i64(lo)[i] != loom_data_i64(hi)[i]) {
      loom_set_error(LOOM_ERR_STATE,
                     "data parallel: the ranks' models have drifted apart: "
                     "%s is the first parameter that differs",
                     dp->params[i].name);
      rc = -1;
    }
  loom_scope_end(s);
  return rc;
}
