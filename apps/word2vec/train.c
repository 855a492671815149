/* Training: the model's matrices, the worker threads, and the walk over
 * sentences and windows that turns the text into examples.
 *
 * The workers take the text in chunks of CHUNK_WORDS words, in order, each
 * the next chunk no one has taken, and update the shared matrices without
 * locks (Hogwild: two threads rarely touch the same row at once, and when
 * they do a lost update costs nothing measurable). The original tool
 * instead gives each thread a fixed slice, so that two threads train on
 * the two halves of the text at once; taking it in order, as gensim's jobs
 * do (theirs hold whole sentences, where a chunk's end here cuts one, once
 * in 10,000 words), scored 1.5 points higher on WordSim-353 with CBOW (24
 * seeds each, see bench/word2vec_seeds.sh), and a slow thread no longer
 * holds up the epoch.
 *
 * A worker cuts its chunk into sentences at </s>, at W2V_MAX_SENTENCE kept
 * words and at the chunk's end, drops frequent words by subsampling,
 * shrinks each window by a random b < window, and hands every (input rows,
 * output rows) example to the fused kernel, or, with the autograd engine,
 * collects them into batches for w2v_autograd_step. The learning rate falls
 * linearly with the position of the chunk in the whole run, to
 * alpha * 1e-4 at the end; it does not depend on the threads' timing.
 *
 * The calling thread only watches: it reports progress while the workers
 * run, then hands each finished epoch to the caller (checkpoints). */
#define _POSIX_C_SOURCE 200809L
#include "kernel.h"
#include "word2vec.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One copy of the walk, with the kernel inlined, per instruction set
 * (AVX-512, AVX2, baseline), chosen when the program starts, as loom's own
 * float kernels are; a plain build under AddressSanitizer, like theirs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&         \
    !defined(__SANITIZE_ADDRESS__)
#define W2V_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define W2V_CLONES
#endif

/* Words in a chunk: the unit of work a worker takes, and of the progress
 * report (the original tool publishes its count every 10,000 words too). */
enum { CHUNK_WORDS = 10000 };

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ------------------------------------------------ the model */

int w2v_model_init(w2v_model *m, int64_t vocab_size, int64_t dim, bool hs,
                   bool negative, uint64_t seed) {
  *m = (w2v_model){.vocab_size = vocab_size, .dim = dim};
  if (vocab_size < 1 || dim < 1 || vocab_size > INT32_MAX ||
      dim > (int64_t)1 << 20) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "word2vec model: %lld words of size "
                   "%lld",
                   (long long)vocab_size, (long long)dim);
    return -1;
  }
  loom_scope *s = loom_scope_begin();
  m->syn0 = loom_keep(loom_empty(LOOM_F32, LOOM_SHAPE(vocab_size, dim)));
  if (hs)
    m->syn1 = loom_keep(loom_zeros(LOOM_F32, LOOM_SHAPE(vocab_size, dim)));
  if (negative)
    m->syn1neg = loom_keep(loom_zeros(LOOM_F32, LOOM_SHAPE(vocab_size, dim)));
  loom_scope_end(s);
  if (!m->syn0 || (hs && !m->syn1) || (negative && !m->syn1neg)) {
    w2v_model_free(m);
    return -1;
  }
  /* uniform in [-0.5, 0.5) / dim: small enough that the first updates are
   * nearly linear, different enough to break the symmetry */
  float *w = loom_data_f32(m->syn0);
  uint64_t r = w2v_rand_seed(seed, 0xC0FFEE);
  for (int64_t i = 0; i < vocab_size * dim; i++)
    w[i] = ((float)(w2v_rand(&r) >> 40) * (1.0f / 16777216.0f) - 0.5f) /
           (float)dim;
  return 0;
}

void w2v_model_free(w2v_model *m) {
  loom_release(m->syn0);
  loom_release(m->syn1);
  loom_release(m->syn1neg);
  *m = (w2v_model){0};
}

void w2v_kernel_example(float *syn0, float *syn1, float *syn1neg, int64_t dim,
                        const w2v_example *ex, float alpha, float *scratch) {
  w2v_example_update(syn0, syn1, syn1neg, dim, ex, alpha, scratch);
}

/* ------------------------------------------------ workers */

typedef struct {
  const int32_t *ids;
  const w2v_tree *tree;
  const w2v_unigram *unigram;
  const uint64_t *keep; /* NULL: no subsampling */
  w2v_model *m;
  float *syn0, *syn1, *syn1neg;
  int64_t dim, vocab_size, window, negative;
  bool cbow, autograd;
  int batch;
  double alpha0;
  int64_t len, words_total;
  int64_t epoch_start; /* words of the run before this epoch */
  _Atomic int64_t next_chunk;
  _Atomic int64_t words_done;
  _Atomic int finished;
  _Atomic int failed;
  /* a failing worker's error (loom errors are per thread) */
  pthread_mutex_t lock;
  char error[512];
} shared;

/* Examples waiting for an autograd step, copied into flat arrays. */
typedef struct {
  w2v_example *ex;
  int32_t *in, *hs_rows, *ns_rows;
  uint8_t *hs_codes;
  int n, cap, max_in, max_hs, max_ns;
} batch;

/* An example drawn one step ahead of its training, so that its random
 * output rows are on their way into the cache while the example before it
 * trains (without the prefetch, skip-gram runs ~20% slower). */
typedef struct {
  w2v_example e;
  int32_t *ctx, *ns; /* its window (CBOW) and its negatives */
} slot;

/* Where the walk over a sentence is: the centre i, its window lo..hi, the
 * next context j of skip-gram (-1: the centre's window is not drawn). */
typedef struct {
  int i, j, lo, hi;
} cursor;

typedef struct {
  shared *s;
  uint64_t rng;
  int32_t *sen;
  slot slots[2];
  float *scratch;
  batch b;
  double loss;
} worker;

static double current_alpha(const shared *s, int64_t done) {
  double a = 1 - (double)done / (double)(s->words_total + 1);
  return s->alpha0 * (a > 1e-4 ? a : 1e-4);
}

/* Stops every worker and passes this thread's error to the caller's. */
static void fail(shared *s) {
  pthread_mutex_lock(&s->lock);
  if (!s->error[0])
    snprintf(s->error, sizeof s->error, "%s", loom_last_error());
  pthread_mutex_unlock(&s->lock);
  atomic_store(&s->failed, 1);
}

static int batch_flush(worker *w, float alpha) {
  batch *b = &w->b;
  if (b->n == 0)
    return 0;
  double l = w2v_autograd_step(w->s->m, b->ex, b->n, alpha);
  b->n = 0;
  if (l != l) {
    if (loom_last_status() == LOOM_OK) /* the step says why; if not: */
      loom_set_error(LOOM_ERR_NUMERIC, "the autograd step failed");
    return -1;
  }
  w->loss += l;
  return 0;
}

static void batch_add(worker *w, const w2v_example *e, float alpha) {
  batch *b = &w->b;
  int k = b->n;
  w2v_example *x = &b->ex[k];
  int32_t *in = b->in + (int64_t)k * b->max_in;
  int32_t *hr = b->hs_rows + (int64_t)k * b->max_hs;
  uint8_t *hc = b->hs_codes + (int64_t)k * b->max_hs;
  int32_t *nr = b->ns_rows + (int64_t)k * b->max_ns;
  memcpy(in, e->in, (size_t)e->n_in * sizeof *in);
  if (e->n_hs) {
    memcpy(hr, e->hs_rows, (size_t)e->n_hs * sizeof *hr);
    memcpy(hc, e->hs_codes, (size_t)e->n_hs);
  }
  if (e->n_ns)
    memcpy(nr, e->ns_rows, (size_t)e->n_ns * sizeof *nr);
  *x = (w2v_example){in, e->n_in, hr, hc, e->n_hs, nr, e->n_ns};
  if (++b->n == b->cap && batch_flush(w, alpha) < 0)
    fail(w->s);
}

/* The centre word's outputs: its path in the tree and/or itself followed
 * by negatives (a draw of </s> becomes a uniform word, a draw of the word
 * itself is dropped, as in the original tool). */
W2V_INLINE void outputs(worker *w, int32_t word, slot *sl) {
  const shared *s = w->s;
  w2v_example *e = &sl->e;
  if (s->tree) {
    int64_t off = s->tree->offset[word];
    e->hs_rows = s->tree->point + off;
    e->hs_codes = s->tree->code + off;
    e->n_hs = (int)(s->tree->offset[word + 1] - off);
  }
  if (s->negative > 0) {
    int n = 0;
    sl->ns[n++] = word;
    for (int64_t d = 0; d < s->negative; d++) {
      uint64_t r = w2v_rand(&w->rng);
      int32_t t = w2v_unigram_draw(s->unigram, r);
      if (t == 0) {
        if (s->vocab_size < 2)
          continue;
        t = 1 + (int32_t)w2v_rand_below(&w->rng, (uint32_t)(s->vocab_size - 1));
      }
      if (t == word)
        continue;
      const char *row = (const char *)(s->syn1neg + (int64_t)t * s->dim);
      for (int64_t b = 0; b < s->dim * 4; b += 64)
        __builtin_prefetch(row + b, 1);
      sl->ns[n++] = t;
    }
    e->ns_rows = sl->ns;
    e->n_ns = n;
  }
}

/* Fills `sl` with the sentence's next example; false after the last. */
W2V_INLINE bool next_example(worker *w, int n, cursor *c, slot *sl) {
  const shared *s = w->s;
  const int32_t *sen = w->sen;
  while (c->i < n) {
    if (c->j < 0) { /* a new centre: shrink its window at random */
      int reach =
          (int)s->window - (int)w2v_rand_below(&w->rng, (uint32_t)s->window);
      c->lo = c->i - reach < 0 ? 0 : c->i - reach;
      c->hi = c->i + reach >= n ? n - 1 : c->i + reach;
      c->j = c->lo;
      if (s->cbow) {
        int cw = 0;
        for (int j = c->lo; j <= c->hi; j++)
          if (j != c->i)
            sl->ctx[cw++] = sen[j];
        int centre = c->i++;
        c->j = -1;
        if (cw == 0)
          continue;
        sl->e.in = sl->ctx;
        sl->e.n_in = cw;
        outputs(w, sen[centre], sl);
        return true;
      }
    }
    if (c->j > c->hi) {
      c->i++;
      c->j = -1;
      continue;
    }
    if (c->j == c->i) {
      c->j++;
      continue;
    }
    sl->e.in = &sen[c->j++];
    sl->e.n_in = 1;
    outputs(w, sen[c->i], sl); /* fresh negatives for every pair */
    return true;
  }
  return false;
}

W2V_INLINE void run_example(worker *w, const w2v_example *e, float alpha) {
  const shared *s = w->s;
  if (s->autograd)
    batch_add(w, e, alpha);
  else
    w2v_example_update(s->syn0, s->syn1, s->syn1neg, s->dim, e, alpha,
                       w->scratch);
}

W2V_INLINE void train_sentence(worker *w, int n, float alpha) {
  cursor c = {0, -1, 0, 0};
  slot *now = &w->slots[0], *ahead = &w->slots[1];
  bool have = next_example(w, n, &c, now);
  while (have) {
    bool more = next_example(w, n, &c, ahead);
    run_example(w, &now->e, alpha);
    slot *t = now;
    now = ahead;
    ahead = t;
    have = more;
  }
}

/* Trains ids[begin, end), one chunk. */
W2V_CLONES static void train_chunk(worker *w, int64_t begin, int64_t end,
                                   float alpha) {
  const shared *s = w->s;
  const int32_t *ids = s->ids;
  int64_t pos = begin;
  while (pos < end && !atomic_load_explicit(&s->failed, memory_order_relaxed)) {
    int n = 0;
    while (pos < end) {
      int32_t word = ids[pos++];
      if (word == 0)
        break;
      if (s->keep && (w2v_rand(&w->rng) >> 32) >= s->keep[word])
        continue;
      w->sen[n++] = word;
      if (n == W2V_MAX_SENTENCE)
        break;
    }
    train_sentence(w, n, alpha);
  }
}

/* One epoch: chunks until the text is used up. */
static void train_epoch(worker *w) {
  shared *s = w->s;
  float alpha = (float)s->alpha0;
  while (!atomic_load_explicit(&s->failed, memory_order_relaxed)) {
    int64_t begin =
        atomic_fetch_add_explicit(&s->next_chunk, 1, memory_order_relaxed) *
        CHUNK_WORDS;
    if (begin >= s->len)
      break;
    int64_t end = s->len - begin > CHUNK_WORDS ? begin + CHUNK_WORDS : s->len;
    alpha = (float)current_alpha(s, s->epoch_start + begin);
    train_chunk(w, begin, end, alpha);
    atomic_fetch_add_explicit(&s->words_done, end - begin,
                              memory_order_relaxed);
  }
  if (s->autograd && batch_flush(w, alpha) < 0)
    fail(s);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  train_epoch(w);
  if (w->s->autograd)
    loom_cleanup(); /* the thread's scopes and tape */
  atomic_fetch_add(&w->s->finished, 1);
  return NULL;
}

static void worker_free(worker *w) {
  free(w->sen);
  for (int k = 0; k < 2; k++) {
    free(w->slots[k].ctx);
    free(w->slots[k].ns);
  }
  free(w->scratch);
  free(w->b.ex);
  free(w->b.in);
  free(w->b.hs_rows);
  free(w->b.hs_codes);
  free(w->b.ns_rows);
}

static int worker_alloc(worker *w, shared *s, int max_hs) {
  int64_t dim = s->dim;
  w->sen = malloc(W2V_MAX_SENTENCE * sizeof *w->sen);
  for (int k = 0; k < 2; k++) {
    slot *sl = &w->slots[k];
    sl->ctx = malloc((size_t)(2 * s->window + 1) * sizeof *sl->ctx);
    sl->ns = malloc((size_t)(s->negative + 1) * sizeof *sl->ns);
    if (!sl->ctx || !sl->ns)
      return -1;
  }
  w->scratch = malloc((size_t)(2 * (dim + max_hs + s->negative + 1)) *
                      sizeof *w->scratch);
  if (!w->sen || !w->scratch)
    return -1;
  if (s->autograd) {
    batch *b = &w->b;
    b->cap = s->batch;
    b->max_in = s->cbow ? (int)(2 * s->window) : 1;
    b->max_hs = max_hs > 0 ? max_hs : 1;
    b->max_ns = (int)s->negative + 1;
    b->ex = malloc((size_t)b->cap * sizeof *b->ex);
    b->in = malloc((size_t)b->cap * (size_t)b->max_in * sizeof *b->in);
    b->hs_rows =
        malloc((size_t)b->cap * (size_t)b->max_hs * sizeof *b->hs_rows);
    b->hs_codes = malloc((size_t)b->cap * (size_t)b->max_hs);
    b->ns_rows =
        malloc((size_t)b->cap * (size_t)b->max_ns * sizeof *b->ns_rows);
    if (!b->ex || !b->in || !b->hs_rows || !b->hs_codes || !b->ns_rows)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------ the epochs */

static int check_opts(const w2v_model *m, const w2v_vocab *v,
                      const w2v_tree *tree, const w2v_unigram *unigram,
                      const w2v_train_opts *o, int first_epoch) {
  const char *bad = NULL;
  char alpha[64];
  snprintf(alpha, sizeof alpha, "-alpha must be in (0, %g]", W2V_ALPHA_MAX);
  if (o->window < 1 || o->window > 10000)
    bad = "-window must be in 1..10000";
  else if (o->negative < 0 || o->negative > 10000)
    bad = "-negative must be in 0..10000";
  else if (!o->hs && o->negative == 0)
    bad = "use -hs 1 or -negative > 0 (there is nothing to train)";
  else if (o->iter < 1 || first_epoch < 1)
    bad = "-iter must be at least 1";
  else if (o->threads < 1 || o->threads > 1024)
    bad = "-threads must be in 1..1024";
  else if (!(o->alpha > 0 && o->alpha <= W2V_ALPHA_MAX))
    bad = alpha;
  else if (!(o->sample >= 0))
    bad = "-sample must not be negative";
  else if (o->engine == W2V_ENGINE_AUTOGRAD &&
           (o->batch < 1 || o->batch > 1 << 20))
    bad = "the autograd batch must be in 1..2^20";
  else if (!m->syn0 || m->vocab_size != v->size)
    bad = "the model does not match the vocabulary";
  else if (o->hs && (!m->syn1 || !tree || tree->n != v->size))
    bad = "-hs needs syn1 and the Huffman tree";
  else if (o->negative > 0 &&
           (!m->syn1neg || !unigram || unigram->n != v->size))
    bad = "-negative needs syn1neg and the unigram table";
  if (bad)
    loom_set_error(LOOM_ERR_ARGUMENT, "word2vec training: %s", bad);
  return bad ? -1 : 0;
}

int64_t w2v_first_non_finite(const loom_tensor *t) {
  const float *x = loom_data_f32(t);
  int64_t n = loom_numel(t);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return i;
  return -1;
}

/* The first matrix of the model holding a value that is not finite, or
 * NULL. */
static const char *non_finite_matrix(const w2v_model *m) {
  const char *names[3] = {"syn0", "syn1", "syn1neg"};
  const loom_tensor *t[3] = {m->syn0, m->syn1, m->syn1neg};
  for (int k = 0; k < 3; k++)
    if (t[k] && w2v_first_non_finite(t[k]) >= 0)
      return names[k];
  return NULL;
}

int w2v_train(w2v_model *m, const w2v_vocab *v, const w2v_corpus *c,
              const w2v_tree *tree, const w2v_unigram *unigram,
              const w2v_train_opts *o, int first_epoch,
              const uint64_t *rng_state, w2v_train_stats *stats) {
  if (check_opts(m, v, tree, unigram, o, first_epoch) < 0)
    return -1;
  int T = (int)o->threads;
  shared s = {.ids = c->ids,
              .tree = o->hs ? tree : NULL,
              .unigram = o->negative > 0 ? unigram : NULL,
              .m = m,
              .syn0 = loom_data_f32(m->syn0),
              .syn1 = o->hs ? loom_data_f32(m->syn1) : NULL,
              .syn1neg = o->negative > 0 ? loom_data_f32(m->syn1neg) : NULL,
              .dim = m->dim,
              .vocab_size = v->size,
              .window = o->window,
              .negative = o->negative,
              .cbow = o->cbow,
              .autograd = o->engine == W2V_ENGINE_AUTOGRAD,
              .batch = o->batch,
              .alpha0 = o->alpha,
              .len = c->len,
              .words_total = o->iter * c->len,
              .lock = PTHREAD_MUTEX_INITIALIZER};
  uint64_t *keep = o->sample > 0 ? w2v_keep_thresholds(v, o->sample) : NULL;
  s.keep = keep;
  worker *w = calloc((size_t)T, sizeof *w);
  pthread_t *tid = calloc((size_t)T, sizeof *tid);
  uint64_t *rng = calloc((size_t)T, sizeof *rng);
  int rc = (o->sample > 0 && !keep) || !w || !tid || !rng ? -1 : 0;
  for (int t = 0; rc == 0 && t < T; t++) {
    w[t].s = &s;
    w[t].rng = rng_state ? rng_state[t] : w2v_rand_seed(o->seed, (uint64_t)t);
    if (w[t].rng == 0)
      w[t].rng = w2v_rand_seed(o->seed, (uint64_t)t);
    rc = worker_alloc(&w[t], &s, tree ? tree->max_len : 0);
    if (rc < 0)
      loom_set_error(LOOM_ERR_MEMORY, "word2vec training: out of memory");
  }
  double start = seconds_now(), trained = 0;
  int64_t words = 0;
  for (int epoch = first_epoch; rc == 0 && epoch <= o->iter; epoch++) {
    s.epoch_start = (int64_t)(epoch - 1) * c->len;
    atomic_store(&s.words_done, s.epoch_start);
    atomic_store(&s.next_chunk, 0);
    atomic_store(&s.finished, 0);
    double t0 = seconds_now(), last = t0;
    int started = 0;
    for (; started < T; started++)
      if (pthread_create(&tid[started], NULL, worker_main, &w[started]))
        break;
    if (started < T) {
      atomic_store(&s.failed, 1);
      loom_set_error(LOOM_ERR_STATE,
                     "word2vec training: cannot start "
                     "thread %d of %d",
                     started + 1, T);
    }
    while (atomic_load(&s.finished) < started) {
      nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
      double now = seconds_now();
      if (o->progress && now - last >= o->progress_every) {
        int64_t done = atomic_load(&s.words_done);
        o->progress(o->progress_ctx,
                    &(w2v_progress){done, s.words_total, epoch, (int)o->iter,
                                    current_alpha(&s, done), now - start});
        last = now;
      }
    }
    for (int t = 0; t < started; t++)
      pthread_join(tid[t], NULL);
    if (atomic_load(&s.failed)) {
      if (s.error[0])
        loom_set_error(LOOM_ERR_STATE, "%s", s.error);
      rc = -1;
      break;
    }
    /* A learning rate too large for the text makes the vectors overflow
     * to inf and NaN: stop before a checkpoint or the output holds them. */
    const char *bad = non_finite_matrix(m);
    if (bad) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "training diverged in epoch %d: the vectors are not "
                     "finite (%s holds NaN or infinity); try a smaller "
                     "-alpha than %g",
                     epoch, bad, o->alpha);
      rc = -1;
      break;
    }
    trained += seconds_now() - t0;
    words += c->len;
    int64_t done = (int64_t)epoch * c->len;
    if (o->progress)
      o->progress(o->progress_ctx,
                  &(w2v_progress){done, s.words_total, epoch, (int)o->iter,
                                  current_alpha(&s, done),
                                  seconds_now() - start});
    for (int t = 0; t < T; t++)
      rng[t] = w[t].rng;
    int after = o->epoch_done ? o->epoch_done(o->epoch_ctx, epoch, rng, T) : 0;
    if (after < 0)
      rc = -1;
    if (after != 0)
      break;
  }
  if (stats)
    *stats = (w2v_train_stats){words, trained,
                               trained > 0 ? (double)words / trained : 0};
  for (int t = 0; w && t < T; t++)
    worker_free(&w[t]);
  free(w);
  free(tid);
  free(rng);
  free(keep);
  return rc;
}
