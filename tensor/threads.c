/* How many threads loom's own kernels use, and the workers that run them.
 *
 * Why loom keeps its own workers rather than using OpenMP's: matrix
 * products go to OpenBLAS, whose pthreads share the cores with loom's
 * kernels, and a training step alternates the two thousands of times. An
 * idle libgomp worker spins without yielding for GOMP_SPINCOUNT (300000)
 * pauses by default, 10-20 ms on this machine's CPUs, so with as many
 * threads as cores it held the core an OpenBLAS thread needed for the next
 * product: the fused LSTM step of bench/rnn.c ran 4.5x slower than with
 * OMP_WAIT_POLICY=passive, which users cannot be expected to set. These
 * workers spin briefly, yielding the core to any other runnable thread as
 * they do, then sleep; a short spin still catches the next kernel of a
 * loop without a wake-up.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static atomic_int num_threads; /* 0: all cores; set by any thread */

/* Counted once: the count is a system call, and kernels ask per call. */
static int core_count;
static void count_cores(void) {
#ifdef _OPENMP
  core_count = omp_get_num_procs(); /* honours the affinity mask */
#else
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  core_count = n > 0 ? (int)n : 1;
#endif
}
static int cores(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, count_cores);
  return core_count;
}

void loom_set_num_threads(int n) {
  if (n < 0) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "set_num_threads: %d (0 for the default, or 1 and up)", n);
    return;
  }
  atomic_store_explicit(&num_threads, n, memory_order_relaxed);
}

int loom_num_threads(void) {
  int n = atomic_load_explicit(&num_threads, memory_order_relaxed);
  return n > 0 ? n : cores();
}

int loom__threads_for(int64_t work) {
  if (work < 2 * LOOM__PAR_MIN)
    return 1;
  int64_t want = work / LOOM__PAR_MIN;
  int max = loom_num_threads();
  return want < max ? (int)want : max;
}

/* ---- the workers ---- */

#define MAX_WORKERS 255
/* How long an idle worker keeps looking for work before it sleeps: long
 * enough to span the serial code between two kernels of a step, short
 * enough to leave the core alone between steps. It yields while it looks,
 * so a thread that needs the core gets it at once. A user's LSTM cell
 * unrolled step by step runs chains of small serial ops (32 x 512) between
 * its products: at 50 us its workers fell asleep and were woken about 80
 * times a step (160 futex calls a step under strace, 17 at 200 us), and
 * at 200 us the step ran 4-8 % faster (bench-rnn user_lstm_b32,
 * alternated five and six times, at AVX-512 and AVX2); the fused LSTM and
 * GRU steps at batch 1 and 32 and the encoder step stayed level. */
#define SPIN_NS 200000
/* How long the caller waits with pause before it starts yielding. */
#define CALLER_SPINS 2000

/* The job: `word` is the job's sequence number times 2^16 plus its part
 * count, published last; a worker reads fn, ctx and n only if its index is
 * below that part count, and they stay valid until every worker taking
 * part has reported done. */
static struct {
  pthread_mutex_t submit; /* one caller at a time; others run serially */
  pthread_mutex_t sleep_lock;
  pthread_cond_t wake;
  pthread_t threads[MAX_WORKERS];
  uint64_t first_seen[MAX_WORKERS];
  int workers;
  pid_t pid; /* of the process that started them (fork leaves none) */
  loom__range_fn fn;
  void *ctx;
  int64_t n;
  _Atomic uint64_t word;
  _Atomic int pending;
  _Atomic int sleepers;
  _Atomic bool stop;
} pool = {.submit = PTHREAD_MUTEX_INITIALIZER,
          .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local bool in_worker;

static void relax(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#endif
}

void loom__spin_wait(atomic_bool *lock) {
  for (int i = 0;; i++) {
    if (!atomic_load_explicit(lock, memory_order_relaxed) &&
        !atomic_exchange_explicit(lock, true, memory_order_acquire))
      return;
    if (i < 100)
      relax();
    else
      sched_yield(); /* the holder may be waiting for this core */
  }
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_part(loom__range_fn fn, void *ctx, int64_t n, int t, int nt) {
  int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
  if (lo < hi)
    fn(ctx, lo, hi);
}

/* Waits until the job word differs from `seen`; returns the new word. */
static uint64_t next_job(uint64_t seen) {
  int64_t start = now_ns();
  for (;;) {
    uint64_t w = atomic_load_explicit(&pool.word, memory_order_acquire);
    if (w != seen)
      return w;
    if (now_ns() - start > SPIN_NS)
      break;
    sched_yield();
  }
  /* Sleep. The caller publishes the word, then looks for sleepers; a
   * worker counts itself, then looks at the word: with both sequentially
   * consistent, one of them sees the other, so no wake-up is lost. */
  pthread_mutex_lock(&pool.sleep_lock);
  atomic_fetch_add(&pool.sleepers, 1);
  uint64_t w;
  while ((w = atomic_load(&pool.word)) == seen)
    pthread_cond_wait(&pool.wake, &pool.sleep_lock);
  atomic_fetch_sub(&pool.sleepers, 1);
  pthread_mutex_unlock(&pool.sleep_lock);
  return w;
}

static void *worker_main(void *arg) {
  int index = (int)(intptr_t)arg; /* 1-based: the caller runs part 0 */
  in_worker = true;
  /* The word as it was before the job that started this worker: read
   * here, it might already be that job's. */
  uint64_t seen = pool.first_seen[index - 1];
  for (;;) {
    seen = next_job(seen);
    if (atomic_load(&pool.stop))
      return NULL;
    int nt = (int)(seen & 0xffff);
    if (index < nt) {
      run_part(pool.fn, pool.ctx, pool.n, index, nt);
      atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
  }
}

static void after_fork_in_child(void) {
  /* The workers did not come along: start afresh. */
  pthread_mutex_init(&pool.submit, NULL);
  pthread_mutex_init(&pool.sleep_lock, NULL);
  pthread_cond_init(&pool.wake, NULL);
  pool.workers = 0;
  atomic_store(&pool.sleepers, 0);
  atomic_store(&pool.pending, 0);
}

/* Workers are joined at exit (and at dlclose), so they never run code that
 * is being unmapped and leak checkers see no live threads. */
__attribute__((destructor)) static void stop_workers(void) {
  if (pool.workers == 0 || pool.pid != getpid())
    return;
  pthread_mutex_lock(&pool.submit);
  atomic_store(&pool.stop, true);
  pthread_mutex_lock(&pool.sleep_lock);
  atomic_fetch_add(&pool.word, (uint64_t)1 << 16);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.sleep_lock);
  for (int i = 0; i < pool.workers; i++)
    pthread_join(pool.threads[i], NULL);
  pool.workers = 0;
  pthread_mutex_unlock(&pool.submit);
}

static void register_fork_handler(void) {
  pthread_atfork(NULL, NULL, after_fork_in_child);
}

/* Starts workers until there are `want` (called with `submit` held). */
static void start_workers(int want) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_fork_handler);
  if (pool.workers == 0)
    pool.pid = getpid();
  while (pool.workers < want && pool.workers < MAX_WORKERS) {
    pool.first_seen[pool.workers] = atomic_load(&pool.word);
    if (pthread_create(&pool.threads[pool.workers], NULL, worker_main,
                       (void *)(intptr_t)(pool.workers + 1)))
      break; /* the caller runs the parts nobody takes */
    pool.workers++;
  }
}

void loom__parallel_for(int nt, int64_t n, loom__range_fn fn, void *ctx) {
  if (n <= 0)
    return;
  if (nt > n)
    nt = (int)n;
  if (nt > MAX_WORKERS + 1)
    nt = MAX_WORKERS + 1;
  /* Nested, or another thread is using the workers: the same parts, one
   * after the other, so results are those of the parallel run. */
  if (nt <= 1 || in_worker || pthread_mutex_trylock(&pool.submit)) {
    for (int t = 0; t < nt; t++)
      run_part(fn, ctx, n, t, nt > 1 ? nt : 1);
    return;
  }
  if (pool.workers < nt - 1)
    start_workers(nt - 1);
  /* Worker i (1-based) takes part i if i < nt; there may be fewer. */
  int helpers = pool.workers < nt - 1 ? pool.workers : nt - 1;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  atomic_store(&pool.pending, helpers);
  uint64_t seq = (atomic_load(&pool.word) >> 16) + 1;
  atomic_store(&pool.word, seq << 16 | (uint64_t)nt);
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.sleep_lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);
  }
  /* Parts no worker could take (thread creation failed) run here. */
  run_part(fn, ctx, n, 0, nt);
  for (int t = helpers + 1; t < nt; t++)
    run_part(fn, ctx, n, t, nt);
  for (int i = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0;
       i++) {
    if (i < CALLER_SPINS)
      relax();
    else
      sched_yield();
  }
  pthread_mutex_unlock(&pool.submit);
}

/* ---- balanced parts ----
 * Each part's unclaimed items are [front, back) of its range, packed in one
 * word (front in the low half) so that a claim from either end is one
 * compare-and-swap. A part claims from its own front, then from the backs
 * of the others: items near the part's end are the ones others take, and
 * the front stays the owner's, whose next panel its prefetches expect. */
#define BALANCED_MAX 64

typedef struct {
  _Alignas(64) _Atomic uint64_t span; /* a line each: owners claim apart */
} balanced_range;

typedef struct {
  loom__piece_fn fn;
  void *ctx;
  int64_t n, grain, tail;
  int nt;
  balanced_range *ranges; /* NULL: each part its own range, same pieces */
} balanced_job;

static uint64_t span_of(int64_t front, int64_t back) {
  return (uint64_t)front | (uint64_t)back << 32;
}

/* How many of `left` items a piece takes: up to `most`, or all but
 * `leave` of them when that is more (INT64_MAX: never). */
static int64_t piece_size(int64_t left, int64_t most, int64_t leave) {
  int64_t take = left < most ? left : most;
  return left - leave > take ? left - leave : take;
}

/* Claims a piece of range r from its front (piece_size's rule) or its
 * back (up to `most` items); false when none are left. */
static bool claim(balanced_range *r, int64_t most, int64_t leave,
                  bool from_front, int64_t *lo, int64_t *hi) {
  uint64_t s = atomic_load_explicit(&r->span, memory_order_relaxed);
  for (;;) {
    int64_t front = (int64_t)(s & 0xffffffff), back = (int64_t)(s >> 32);
    if (front >= back)
      return false;
    int64_t take =
        piece_size(back - front, most, from_front ? leave : INT64_MAX);
    *lo = from_front ? front : back - take;
    *hi = *lo + take;
    uint64_t to =
        from_front ? span_of(front + take, back) : span_of(front, back - take);
    if (atomic_compare_exchange_weak_explicit(
            &r->span, &s, to, memory_order_relaxed, memory_order_relaxed))
      return true;
  }
}

static void balanced_part(void *ctx, int64_t t0, int64_t t1) {
  const balanced_job *j = ctx;
  for (int t = (int)t0; t < t1; t++) {
    int64_t lo, hi;
    if (!j->ranges) { /* static: the same pieces, all the part's own */
      int64_t end = j->n * (t + 1) / j->nt, leave = j->tail;
      for (lo = j->n * t / j->nt; lo < end; lo = hi, leave = INT64_MAX) {
        hi = lo + piece_size(end - lo, j->grain, leave);
        j->fn(j->ctx, t, lo, hi);
      }
      continue;
    }
    /* the first claim all but the tail, as one piece */
    for (int64_t leave = j->tail;
         claim(&j->ranges[t], j->grain, leave, true, &lo, &hi);
         leave = INT64_MAX)
      j->fn(j->ctx, t, lo, hi);
    for (int k = 1; k < j->nt; k++) {
      balanced_range *victim = &j->ranges[(t + k) % j->nt];
      while (claim(victim, j->grain, INT64_MAX, false, &lo, &hi))
        j->fn(j->ctx, t, lo, hi);
    }
  }
}

void loom__parallel_for_balanced(int nt, int64_t n, int64_t grain, int64_t tail,
                                 loom__piece_fn fn, void *ctx) {
  if (n <= 0)
    return;
  grain = grain < 1 ? 1 : grain > n ? n : grain;
  if (nt > n)
    nt = (int)n;
  nt = nt < 1 ? 1 : nt > BALANCED_MAX ? BALANCED_MAX : nt;
  balanced_job job = {fn, ctx, n, grain, tail < 0 ? 0 : tail, nt, NULL};
  balanced_range ranges[BALANCED_MAX];
  if (nt > 1 && n <= UINT32_MAX) {
    for (int t = 0; t < nt; t++)
      atomic_init(&ranges[t].span, span_of(n * t / nt, n * (t + 1) / nt));
    job.ranges = ranges;
  }
  if (nt == 1)
    balanced_part(&job, 0, 1);
  else
    loom__parallel_for(nt, nt, balanced_part, &job);
}

void loom__parallel_for_even_out(int nt, int64_t n, loom__piece_fn fn,
                                 void *ctx) {
  /* the part count loom__parallel_for_balanced will use */
  int parts = nt < 1 ? 1 : nt > BALANCED_MAX ? BALANCED_MAX : nt;
  int64_t range = n > parts ? n / parts : 1;
  loom__parallel_for_balanced(nt, n, range / 16 > 0 ? range / 16 : 1, range / 4,
                              fn, ctx);
}
