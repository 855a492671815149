/* charlm: train a character-level language model, or sample from one.
 *
 *   charlm train [--data FILE] [options]      (the default command)
 *   charlm sample --checkpoint FILE [--prime TEXT] [options]
 *
 * Training reads the text as bytes, holds out its tail for validation, and
 * runs truncated backpropagation through time over `batch` parallel streams
 * (the hidden state carries across chunks, detached). Progress, validation
 * loss (nats and bits per character), checkpoints that resume exactly, and
 * a PNG of the loss curves. */
#define _POSIX_C_SOURCE 200809L
#include "charlm.h"

#include "../common/common.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define P "charlm" /* in messages */

typedef struct {
  const char *data, *checkpoint, *plot, *prime, *write_corpus;
  charlm_config model;
  int64_t seq, batch, steps, length, top_k, eval_every, save_every,
      corpus_bytes, seed, threads;
  double lr, clip, val_fraction, minutes, temperature, epochs;
  bool resume, quiet;
} options;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: charlm [train] [options]     train a character-level language "
      "model\n"
      "       charlm sample [options]      generate text from a checkpoint\n"
      "\n"
      "training:\n"
      "  --data FILE          text to learn (bytes; any encoding). Without "
      "it,\n"
      "                       charlm writes its own corpus: a play whose "
      "speeches\n"
      "                       come from a small English grammar (see "
      "--write-corpus)\n"
      "  --model NAME         rnn | lstm | gru | peephole | transformer "
      "(lstm)\n"
      "  --layers N           recurrent layers (2)\n"
      "  --hidden N           hidden units (256)\n"
      "  --embed N            embedding size (64)\n"
      "  --heads N, --ff N    transformer heads (4) and feed-forward size "
      "(4*hidden)\n"
      "  --dropout P          dropout between layers and on the embeddings "
      "(0)\n"
      "  --seq N              characters per chunk of truncated BPTT (100)\n"
      "  --batch N            parallel streams (32)\n"
      "  --lr X               Adam learning rate (2e-3)\n"
      "  --clip X             gradient norm clipping, 0 for none (5)\n"
      "  --steps N            training steps (2000); or --epochs X, or "
      "--minutes M\n"
      "  --val-fraction X     tail of the text held out for validation (0.1)\n"
      "  --eval-every N       steps between validation passes (200)\n"
      "  --checkpoint FILE    where to save (charlm.ckpt); written every\n"
      "                       --save-every steps (500) and at the end;\n"
      "                       FILE.best holds the step with the best\n"
      "                       validation loss so far\n"
      "  --resume             continue from --checkpoint, exactly where it "
      "stopped\n"
      "  --plot FILE          loss curves as PNG (charlm-loss.png; '' for "
      "none)\n"
      "  --seed N             random seed (1)\n"
      "  --threads N          loom's kernel threads (all cores)\n"
      "  --corpus-bytes N     size of the built-in corpus (1000000)\n"
      "  --write-corpus FILE  write the built-in corpus and exit\n"
      "\n"
      "sampling:\n"
      "  --checkpoint FILE    a checkpoint written by training (charlm.ckpt)\n"
      "  --prime TEXT         text to start from (\"\\n\")\n"
      "  --length N           characters to generate (500)\n"
      "  --temperature T      sampling temperature; 0 picks the likeliest "
      "(0.8)\n"
      "  --top-k K            sample among the K likeliest characters only (0: "
      "all)\n"
      "  --seed N             random seed (1)\n"
      "\n"
      "  --quiet              no progress line\n"
      "  --help               this text\n");
}

/* The defaults, as --help states them. */
static options defaults(void) {
  return (options){.checkpoint = "charlm.ckpt",
                   .plot = "charlm-loss.png",
                   .prime = "\n",
                   .model = {.cell = "lstm",
                             .embed = 64,
                             .hidden = 256,
                             .layers = 2,
                             .heads = 4},
                   .seq = 100,
                   .batch = 32,
                   .steps = 2000,
                   .length = 500,
                   .eval_every = 200,
                   .save_every = 500,
                   .corpus_bytes = 1000000,
                   .lr = 2e-3,
                   .clip = 5,
                   .val_fraction = 0.1,
                   .temperature = 0.8,
                   .threads = 0,
                   .seed = 1};
}

static const struct option long_options[] = {
    {"data", 1, 0, 'd'},         {"model", 1, 0, 'm'},
    {"layers", 1, 0, 'L'},       {"hidden", 1, 0, 'H'},
    {"embed", 1, 0, 'E'},        {"heads", 1, 0, 'A'},
    {"ff", 1, 0, 'F'},           {"dropout", 1, 0, 'D'},
    {"seq", 1, 0, 'T'},          {"batch", 1, 0, 'B'},
    {"lr", 1, 0, 'r'},           {"clip", 1, 0, 'c'},
    {"steps", 1, 0, 's'},        {"epochs", 1, 0, 'e'},
    {"minutes", 1, 0, 'M'},      {"val-fraction", 1, 0, 'v'},
    {"eval-every", 1, 0, 'V'},   {"checkpoint", 1, 0, 'k'},
    {"save-every", 1, 0, 'S'},   {"resume", 0, 0, 'R'},
    {"plot", 1, 0, 'p'},         {"seed", 1, 0, 'x'},
    {"threads", 1, 0, 'j'},      {"corpus-bytes", 1, 0, 'b'},
    {"write-corpus", 1, 0, 'w'}, {"prime", 1, 0, 'P'},
    {"length", 1, 0, 'n'},       {"temperature", 1, 0, 't'},
    {"top-k", 1, 0, 'K'},        {"quiet", 0, 0, 'q'},
    {"help", 0, 0, 'h'},         {0, 0, 0, 0}};

/* Stores the value v of option ch (written `flag` on the command line):
 * 0, or -1 after saying what is wrong with it. */
static int set_option(options *o, int ch, const char *flag, const char *v) {
  charlm_config *m = &o->model;
  const int64_t big = CHARLM_MAX_COUNT;
  switch (ch) {
  case 'd':
    o->data = v;
    return 0;
  case 'm':
    snprintf(m->cell, sizeof m->cell, "%s", v);
    return 0;
  case 'L':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_LAYERS, &m->layers);
  case 'H':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->hidden);
  case 'E':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->embed);
  case 'A':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->heads);
  case 'F':
    return app_parse_int(P, flag, v, 1, 4 * CHARLM_MAX_WIDTH, &m->ff);
  case 'D':
    return app_parse_real(P, flag, v, (app_range){.hi = 1, .hi_open = true},
                          &m->dropout);
  case 'T':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_SEQ, &o->seq);
  case 'B':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_BATCH, &o->batch);
  case 'r':
    return app_parse_real(P, flag, v, CHARLM_LR_RANGE, &o->lr);
  case 'c':
    return app_parse_real(P, flag, v, CHARLM_CLIP_RANGE, &o->clip);
  case 's':
    return app_parse_int(P, flag, v, 1, big, &o->steps);
  case 'e':
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->epochs);
  case 'M':
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->minutes);
  case 'v':
    return app_parse_real(
        P, flag, v, (app_range){.hi = 0.5, .lo_open = true, .hi_open = true},
        &o->val_fraction);
  case 'V':
    return app_parse_int(P, flag, v, 1, big, &o->eval_every);
  case 'k':
    o->checkpoint = v;
    return 0;
  case 'S':
    return app_parse_int(P, flag, v, 1, big, &o->save_every);
  case 'p':
    o->plot = v;
    return 0;
  case 'x':
    return app_parse_int(P, flag, v, 0, INT64_MAX, &o->seed);
  case 'j':
    return app_parse_int(P, flag, v, 1, 1024, &o->threads);
  case 'b':
    return app_parse_int(P, flag, v, 1000, CHARLM_CORPUS_MAX, &o->corpus_bytes);
  case 'w':
    o->write_corpus = v;
    return 0;
  case 'P':
    o->prime = v;
    return 0;
  case 'n':
    return app_parse_int(P, flag, v, 0, big, &o->length);
  case 't':
    return app_parse_real(P, flag, v, (app_range){.hi = 100}, &o->temperature);
  case 'K':
    return app_parse_int(P, flag, v, 0, 256, &o->top_k);
  }
  return -1;
}

/* The command (sample or train) and the options: 0, 1 after --help, or -1
 * after saying what is wrong. */
static int parse(int argc, char **argv, options *o, bool *sample) {
  *o = defaults();
  *sample = false;
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    if (!strcmp(argv[1], "sample"))
      *sample = true;
    else if (strcmp(argv[1], "train")) {
      fprintf(stderr, "charlm: unknown command '%s' (train or sample)\n",
              argv[1]);
      return -1;
    }
    first = 2;
  }
  optind = first;
  int ch, at = 0;
  while ((ch = getopt_long(argc, argv, "h", long_options, &at)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      return 1;
    }
    if (ch == '?') {
      usage(stderr);
      return -1;
    }
    if (ch == 'R')
      o->resume = true;
    else if (ch == 'q')
      o->quiet = true;
    else {
      char flag[32];
      snprintf(flag, sizeof flag, "--%s", long_options[at].name);
      if (set_option(o, ch, flag, optarg) < 0)
        return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "charlm: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  return 0;
}

/* ---- data streams ---- */

/* Rows b of x (T x B) and y come from stream b at offset pos: B equal
 * slices of ids[0..n). */
static void fill_batch(const int64_t *ids, int64_t n, int64_t B, int64_t T,
                       int64_t pos, int64_t *x, int64_t *y) {
  int64_t stream = n / B;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      x[t * B + b] = ids[b * stream + pos + t];
      y[t * B + b] = ids[b * stream + pos + t + 1];
    }
}

/* Mean validation loss in nats per character (no grad, eval mode). */
static double evaluate(charlm *m, const int64_t *ids, int64_t n, int64_t T,
                       int64_t B) {
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  int64_t stream = n / B;
  if (stream < 2) {
    B = 1;
    stream = n;
  }
  int ns = charlm_n_states(m);
  loom_tensor *state[LOOM_RNN_MAX_STATES] = {NULL};
  double total = 0;
  int64_t count = 0;
  int64_t *x = malloc((size_t)(T * B) * sizeof *x);
  int64_t *y = malloc((size_t)(T * B) * sizeof *y);
  for (int64_t pos = 0; x && y && pos + 1 < stream; pos += T) {
    int64_t len = pos + T + 1 <= stream ? T : stream - pos - 1;
    loom_scope *s = loom_scope_begin();
    fill_batch(ids, n, B, len, pos, x, y);
    loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(len, B));
    loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(len * B));
    loom_tensor *logits, *next[LOOM_RNN_MAX_STATES];
    if (charlm_forward(m, xt, state[0] ? state : NULL, &logits, next) == 0) {
      loom_tensor *loss = loom_cross_entropy(
          loom_reshape(logits, 2, (int64_t[]){len * B, -1}), yt,
          &(loom_cross_entropy_opts){.reduction = LOOM_SUM,
                                     .ignore_index = -100});
      total += loom_item(loss);
      count += len * B;
      for (int k = 0; k < ns; k++) {
        loom_release(state[k]);
        state[k] = loom_keep(next[k]);
      }
    }
    loom_scope_end(s);
  }
  for (int k = 0; k < ns; k++)
    loom_release(state[k]);
  free(x);
  free(y);
  loom_no_grad_end();
  loom_module_train(&m->base, true);
  return count ? total / (double)count : NAN;
}

/* ---- loss history (kept in the checkpoint, drawn at the end) ---- */

typedef struct {
  double *step, *train, *val_step, *val;
  int n, n_val, cap, cap_val;
} history;

static void push(double **a, double **b, int *n, int *cap, double x, double y) {
  if (*n == *cap) {
    int c = *cap ? 2 * *cap : 256;
    double *ga = realloc(*a, (size_t)c * sizeof **a);
    if (ga)
      *a = ga;
    double *gb = realloc(*b, (size_t)c * sizeof **b);
    if (gb)
      *b = gb;
    if (!ga || !gb)
      return;
    *cap = c;
  }
  (*a)[*n] = x;
  (*b)[*n] = y;
  (*n)++;
}

static int history_save(const history *h, loom_tensor_map *extra) {
  loom_scope *s = loom_scope_begin();
  int rc = 0;
  if (h->n)
    rc |= loom_tensor_map_set(
        extra, "history.train",
        loom_stack(
            (loom_tensor *[]){
                loom_from_array(LOOM_F64, h->step, LOOM_SHAPE(h->n)),
                loom_from_array(LOOM_F64, h->train, LOOM_SHAPE(h->n))},
            2, 0));
  if (h->n_val)
    rc |= loom_tensor_map_set(
        extra, "history.val",
        loom_stack(
            (loom_tensor *[]){
                loom_from_array(LOOM_F64, h->val_step, LOOM_SHAPE(h->n_val)),
                loom_from_array(LOOM_F64, h->val, LOOM_SHAPE(h->n_val))},
            2, 0));
  loom_scope_end(s);
  return rc;
}

static void history_load(history *h, const loom_tensor_map *extra) {
  const char *names[2] = {"history.train", "history.val"};
  for (int k = 0; k < 2; k++) {
    loom_tensor *t = loom_tensor_map_get(extra, names[k]);
    if (!t || loom_dtype_of(t) != LOOM_F64 || loom_ndim(t) != 2 ||
        loom_size(t, 0) != 2)
      continue;
    int64_t n = loom_size(t, 1);
    const double *v = loom_data_f64(t);
    for (int64_t i = 0; i < n; i++) {
      if (!(v[i] >= 0 && v[i] <= 0x1p53 && v[i] == floor(v[i])))
        continue; /* not a step */
      if (k == 0)
        push(&h->step, &h->train, &h->n, &h->cap, v[i], v[n + i]);
      else
        push(&h->val_step, &h->val, &h->n_val, &h->cap_val, v[i], v[n + i]);
    }
  }
}

static void history_free(history *h) {
  free(h->step);
  free(h->train);
  free(h->val_step);
  free(h->val);
  *h = (history){0};
}

/* ---- training ---- */

/* Continues from o->checkpoint: the model, the optimizer, the step, the
 * position in the streams, the recurrent states and the loss history. 0,
 * or -1 after saying why, with no states or history loaded. */
static int resume(const options *o, charlm *m, loom_optimizer *opt,
                  const charlm_config *cfg, int64_t *step, int64_t *pos,
                  loom_tensor **state, int ns, history *h) {
  loom_tensor_map *extra = NULL;
  charlm_config saved;
  if (loom_checkpoint_load(o->checkpoint, &m->base, opt, NULL, step, m->rng,
                           &extra) < 0 ||
      charlm_config_load(&saved, extra) < 0 || saved.vocab != cfg->vocab ||
      strcmp(saved.cell, cfg->cell) || saved.hidden != cfg->hidden ||
      saved.layers != cfg->layers || saved.embed != cfg->embed) {
    fprintf(stderr, "charlm: cannot resume from %s: %s\n", o->checkpoint,
            loom_last_status() ? loom_last_error()
                               : "the model options differ");
    loom_tensor_map_free(extra);
    return -1;
  }
  /* a position past the end of this text (a shorter one, a larger
   * batch) restarts the streams, as an epoch's end does */
  loom_tensor *p = loom_tensor_map_get(extra, "position");
  *pos = p && loom_dtype_of(p) == LOOM_I64 && loom_numel(p) == 1
             ? *(const int64_t *)loom_data(p)
             : -1;
  if (*pos < 0 || *pos > (int64_t)1 << 62 || *step < 0 ||
      *step > (int64_t)1 << 62) {
    fprintf(stderr,
            "charlm: cannot resume from %s: no valid position or step\n",
            o->checkpoint);
    loom_tensor_map_free(extra);
    return -1;
  }
  for (int k = 0; k < ns; k++) {
    char name[32];
    snprintf(name, sizeof name, "state.%d", k);
    state[k] = loom_keep(loom_tensor_map_get(extra, name));
  }
  history_load(h, extra);
  loom_tensor_map_free(extra);
  fprintf(stderr, "resumed from %s at step %lld\n", o->checkpoint,
          (long long)*step);
  return 0;
}

static int save(const char *path, charlm *m, loom_optimizer *opt, int64_t step,
                int64_t pos, loom_tensor *const *state, const history *h,
                const corpus *c) {
  loom_tensor_map *extra = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  int rc = charlm_config_save(&m->cfg, extra);
  rc |= loom_tensor_map_set(
      extra, "vocab", loom_from_array(LOOM_U8, c->chars, LOOM_SHAPE(c->vocab)));
  rc |= loom_tensor_map_set(extra, "position",
                            loom_from_array(LOOM_I64, &pos, 0, NULL));
  for (int k = 0; k < charlm_n_states(m); k++)
    if (state[k]) {
      char name[32];
      snprintf(name, sizeof name, "state.%d", k);
      rc |= loom_tensor_map_set(extra, name, state[k]);
    }
  rc |= history_save(h, extra);
  if (rc == 0)
    rc = loom_checkpoint_save(path, &m->base, opt, NULL, step, m->rng, extra);
  loom_scope_end(s);
  loom_tensor_map_free(extra);
  if (rc)
    fprintf(stderr, "\ncharlm: cannot save %s: %s\n", path, loom_last_error());
  return rc;
}

static void plot(const options *o, const history *h) {
  if (!o->plot || !*o->plot || !h->n)
    return;
  /* bits per character for both curves */
  double *tb = malloc((size_t)h->n * sizeof *tb);
  double *vb = malloc((size_t)(h->n_val + 1) * sizeof *vb);
  if (tb && vb) {
    for (int i = 0; i < h->n; i++)
      tb[i] = h->train[i] / log(2);
    for (int i = 0; i < h->n_val; i++)
      vb[i] = h->val[i] / log(2);
    app_series s[2] = {{"train", h->step, tb, h->n, 0x1f77b4},
                       {"validation", h->val_step, vb, h->n_val, 0xd62728}};
    if (app_plot_png(o->plot, "charlm loss", "step", "bits/char", s,
                     h->n_val ? 2 : 1, 800, 480) < 0) {
      fprintf(stderr, "charlm: cannot write %s: %s\n", o->plot,
              loom_last_error());
      loom_clear_error();
    } else if (!o->quiet)
      fprintf(stderr, "loss curves: %s\n", o->plot);
  }
  free(tb);
  free(vb);
}

static int train(const options *o) {
  char best_path[4096];
  if (snprintf(best_path, sizeof best_path, "%s.best", o->checkpoint) >=
      (int)sizeof best_path) {
    fprintf(stderr, "charlm: checkpoint path too long\n");
    return 1;
  }
  corpus c;
  if (corpus_load(&c, o->data, (size_t)o->corpus_bytes) < 0)
    return 1;
  int64_t n = (int64_t)c.len, n_val = (int64_t)(o->val_fraction * n);
  int64_t n_train = n - n_val, T = o->seq, B = o->batch;
  if (n_train / B < T + 2 || n_val < 2) {
    fprintf(stderr,
            "charlm: %lld characters is too little text for batch "
            "%lld x seq %lld\n",
            (long long)n, (long long)B, (long long)T);
    corpus_free(&c);
    return 1;
  }
  charlm_config cfg = o->model;
  cfg.vocab = c.vocab;
  cfg.context = o->seq; /* the transformer attends within a chunk */
  charlm *m = charlm_new(&cfg, (uint64_t)o->seed);
  if (m)
    cfg = m->cfg; /* with the model's own settings filled in */
  loom_tensor *params[64];
  int np = m ? loom_module_parameters(&m->base, params, 64) : 0;
  loom_optimizer *opt =
      m ? loom_adam_new(params, np, loom_adam_defaults(o->lr)) : NULL;
  if (!m || !opt || np > 64) {
    fprintf(stderr, "charlm: %s\n", loom_last_error());
    loom_optimizer_free(opt);
    charlm_free(m);
    corpus_free(&c);
    return 1;
  }
  int ns = charlm_n_states(m);
  loom_tensor *state[LOOM_RNN_MAX_STATES] = {NULL};
  int64_t step = 0, pos = 0;
  history h = {0};
  int64_t stream = n_train / B, per_epoch = (stream - 1) / T;
  if (o->resume && resume(o, m, opt, &cfg, &step, &pos, state, ns, &h) < 0) {
    loom_optimizer_free(opt);
    charlm_free(m);
    corpus_free(&c);
    return 1;
  }
  int64_t total =
      o->epochs > 0 ? (int64_t)(o->epochs * (double)per_epoch) : o->steps;
  if (!o->quiet)
    fprintf(stderr,
            "charlm: %s%s, %lld characters (%d distinct), unigram entropy "
            "%.3f bits/char\nmodel: %s, %lld layers, hidden %lld, embed "
            "%lld: %lld parameters; %lld steps of %lld x %lld characters\n",
            o->data ? "" : "built-in corpus", o->data ? o->data : "",
            (long long)n, c.vocab, corpus_unigram_bits(&c), cfg.cell,
            (long long)cfg.layers, (long long)cfg.hidden, (long long)cfg.embed,
            (long long)loom_module_num_elements(&m->base),
            o->minutes > 0 ? -1LL : (long long)total, (long long)B,
            (long long)T);
  int64_t *xb = malloc((size_t)(T * B) * sizeof *xb);
  int64_t *yb = malloc((size_t)(T * B) * sizeof *yb);
  app_progress pr;
  app_progress_begin(&pr);
  double t0 = app_now(), smooth = NAN, deadline = o->minutes * 60;
  double train_seconds = 0, train_rate = 0; /* excluding validation */
  int64_t start_step = step;
  int rc = 0;
  while (xb && yb &&
         (o->minutes > 0 ? app_now() - t0 < deadline : step < total)) {
    if (pos + T + 1 > stream) { /* a new epoch: streams restart */
      pos = 0;
      for (int k = 0; k < ns; k++) {
        loom_release(state[k]);
        state[k] = NULL;
      }
    }
    double step_start = app_now();
    loom_scope *s = loom_scope_begin();
    fill_batch(c.ids, n_train, B, T, pos, xb, yb);
    loom_tensor *x = loom_from_array(LOOM_I64, xb, LOOM_SHAPE(T, B));
    loom_tensor *y = loom_from_array(LOOM_I64, yb, LOOM_SHAPE(T * B));
    loom_tensor *logits, *next[LOOM_RNN_MAX_STATES];
    loom_optimizer_zero_grad(opt);
    loom_tensor *loss = NULL;
    if (charlm_forward(m, x, state[0] ? state : NULL, &logits, next) == 0)
      loss = loom_cross_entropy(loom_reshape(logits, 2, (int64_t[]){T * B, -1}),
                                y, NULL);
    if (!loss || loom_backward(loss) < 0) {
      fprintf(stderr, "\ncharlm: step %lld failed: %s\n", (long long)step,
              loom_last_error());
      rc = 1;
      loom_scope_end(s);
      break;
    }
    if (o->clip > 0)
      loom_clip_grad_norm(params, np, o->clip, 2);
    loom_optimizer_step(opt);
    for (int k = 0; k < ns; k++) { /* truncated BPTT: carry, detached */
      loom_release(state[k]);
      state[k] = loom_keep(loom_detach(next[k]));
    }
    double l = loom_item(loss);
    smooth = isnan(smooth) ? l : 0.98 * smooth + 0.02 * l;
    loom_scope_end(s);
    pos += T;
    step++;
    train_seconds += app_now() - step_start;
    train_rate = (double)((step - start_step) * T * B) / train_seconds;
    if (step % 10 == 0 || step == 1)
      push(&h.step, &h.train, &h.n, &h.cap, (double)step, smooth);
    double rate = train_rate;
    if (!o->quiet) {
      char text[96];
      snprintf(text, sizeof text, "loss %.3f nats (%.3f bits/char)", smooth,
               smooth / log(2));
      int64_t shown_total = o->minutes > 0 ? 0 : total;
      app_progress_line(&pr, step, shown_total, rate, "chars", text, false);
    }
    bool last = o->minutes > 0 ? app_now() - t0 >= deadline : step == total;
    if (step % o->eval_every == 0 || last) {
      double v = evaluate(m, c.ids + n_train, n_val, T, B);
      bool best = true; /* over this run and the one it resumed */
      for (int i = 0; i < h.n_val; i++)
        best &= v < h.val[i];
      push(&h.val_step, &h.val, &h.n_val, &h.cap_val, (double)step, v);
      /* Past the best step a long run overfits a small text: keep it. */
      if (best)
        save(best_path, m, opt, step, pos, state, &h, &c);
      if (!o->quiet) {
        app_progress_end(&pr);
        fprintf(stderr,
                "step %lld: validation %.4f nats/char, %.4f "
                "bits/char (train %.4f)\n",
                (long long)step, v, v / log(2), smooth);
      }
    }
    if (step % o->save_every == 0 || last)
      save(o->checkpoint, m, opt, step, pos, state, &h, &c);
  }
  if (!o->quiet)
    app_progress_end(&pr);
  if (rc == 0 && step == start_step)
    save(o->checkpoint, m, opt, step, pos, state, &h, &c);
  plot(o, &h);
  if (!o->quiet && h.n_val) {
    int b = 0;
    for (int i = 1; i < h.n_val; i++)
      b = h.val[i] < h.val[b] ? i : b;
    fprintf(stderr,
            "done: %lld steps, %.0f chars/s while training, "
            "validation %.4f bits/char (unigram %.3f), checkpoint %s; "
            "best validation %.4f nats/char (%.4f bits/char) at step %lld, "
            "in %s\n",
            (long long)step, train_rate, h.val[h.n_val - 1] / log(2),
            corpus_unigram_bits(&c), o->checkpoint, h.val[b], h.val[b] / log(2),
            (long long)h.val_step[b], best_path);
  }
  for (int k = 0; k < ns; k++)
    loom_release(state[k]);
  free(xb);
  free(yb);
  history_free(&h);
  loom_optimizer_free(opt);
  charlm_free(m);
  corpus_free(&c);
  return rc;
}

/* ---- sampling ---- */

static int pick(const loom_tensor *logits, const options *o, loom_rng *g) {
  int64_t V = loom_numel(logits);
  double *p = malloc((size_t)V * sizeof *p);
  if (!p)
    return 0;
  loom_copy_to_array(logits, LOOM_F64, p, V);
  int best = 0;
  for (int64_t i = 1; i < V; i++)
    if (p[i] > p[best])
      best = (int)i;
  if (o->temperature == 0) {
    free(p);
    return best;
  }
  double cut = -INFINITY;
  if (o->top_k > 0 && o->top_k < V) { /* the k-th largest logit */
    double *sorted = malloc((size_t)V * sizeof *sorted);
    if (sorted) {
      memcpy(sorted, p, (size_t)V * sizeof *p);
      for (int64_t i = 0; i < o->top_k; i++) /* partial selection */
        for (int64_t j = i + 1; j < V; j++)
          if (sorted[j] > sorted[i]) {
            double t = sorted[i];
            sorted[i] = sorted[j];
            sorted[j] = t;
          }
      cut = sorted[o->top_k - 1];
      free(sorted);
    }
  }
  double total = 0, top = p[best];
  for (int64_t i = 0; i < V; i++) {
    p[i] = p[i] < cut ? 0 : exp((p[i] - top) / o->temperature);
    total += p[i];
  }
  double u = loom_rng_uniform(g) * total;
  int chosen = best;
  for (int64_t i = 0; i < V; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) {
      chosen = (int)i;
      break;
    }
  }
  free(p);
  return chosen;
}

static int sample(const options *o) {
  loom_tensor_map *extra = NULL;
  charlm_config cfg;
  /* The config comes first (to build the model), then the weights. */
  loom_tensor_map *peek = NULL;
  if (loom_checkpoint_load(o->checkpoint, NULL, NULL, NULL, NULL, NULL, &peek) <
          0 ||
      charlm_config_load(&cfg, peek) < 0) {
    fprintf(stderr, "charlm: %s: %s\n", o->checkpoint, loom_last_error());
    loom_tensor_map_free(peek);
    return 1;
  }
  loom_tensor *vocab = loom_tensor_map_get(peek, "vocab");
  charlm *m = charlm_new(&cfg, (uint64_t)o->seed);
  if (!m || !vocab || loom_numel(vocab) != cfg.vocab ||
      loom_checkpoint_load(o->checkpoint, &m->base, NULL, NULL, NULL, NULL,
                           &extra) < 0) {
    fprintf(stderr, "charlm: %s: %s\n", o->checkpoint,
            vocab ? loom_last_error() : "no vocabulary");
    loom_tensor_map_free(peek);
    charlm_free(m);
    return 1;
  }
  loom_tensor_map_free(extra);
  const uint8_t *chars = loom_data_u8(vocab);
  int16_t ids_of[256];
  for (int b = 0; b < 256; b++)
    ids_of[b] = -1;
  for (int i = 0; i < cfg.vocab; i++)
    ids_of[chars[i]] = (int16_t)i;
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  loom_rng *g = loom_rng_new((uint64_t)o->seed);
  /* Prime: characters the model does not know are skipped. */
  size_t plen = strlen(o->prime);
  int64_t *ids = malloc((plen + 1) * sizeof *ids);
  int64_t np = 0;
  for (size_t i = 0; ids && i < plen; i++)
    if (ids_of[(unsigned char)o->prime[i]] >= 0)
      ids[np++] = ids_of[(unsigned char)o->prime[i]];
  if (np == 0 && ids)
    ids[np++] = 0;
  fwrite(o->prime, 1, plen, stdout);
  charlm_gen *gen = charlm_gen_new(m);
  loom_tensor *last = NULL;
  int rc = ids && gen && charlm_gen_feed(gen, ids, np, &last) == 0 ? 0 : 1;
  for (int64_t i = 0; rc == 0 && i < o->length; i++) {
    int64_t c = pick(last, o, g);
    fputc(chars[c], stdout);
    loom_release(last);
    rc = charlm_gen_feed(gen, &c, 1, &last) == 0 ? 0 : 1;
  }
  if (rc)
    fprintf(stderr, "charlm: %s\n", loom_last_error());
  fputc('\n', stdout);
  loom_release(last);
  charlm_gen_free(gen);
  free(ids);
  loom_rng_free(g);
  loom_no_grad_end();
  loom_tensor_map_free(peek);
  charlm_free(m);
  return rc;
}

static int write_corpus(const options *o) {
  size_t len = 0;
  unsigned char *t = corpus_generate((size_t)o->corpus_bytes, &len);
  FILE *f = t ? fopen(o->write_corpus, "wb") : NULL;
  bool ok = f && fwrite(t, 1, len, f) == len;
  if (f)
    ok = fclose(f) == 0 && ok;
  free(t);
  if (ok)
    fprintf(stderr, "wrote %zu bytes to %s\n", len, o->write_corpus);
  else
    fprintf(stderr, "charlm: cannot write %s\n", o->write_corpus);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  options o;
  bool do_sample;
  int p = parse(argc, argv, &o, &do_sample);
  if (p != 0)
    return p < 0 ? 2 : 0;
  if (o.write_corpus)
    return write_corpus(&o);
  if (o.threads > 0)
    loom_set_num_threads((int)o.threads);
  int rc = do_sample ? sample(&o) : train(&o);
  loom_cleanup();
  return rc;
}
