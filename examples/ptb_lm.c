/* Word-level language modelling on the Penn Treebank, as in Zaremba,
 * Sutskever and Vinyals (2014), "Recurrent Neural Network Regularization":
 * an embedding, a stacked LSTM and a softmax over the 10,000 words,
 * trained with truncated backpropagation through time.
 *
 *   ptb_lm --config small    2 x 200, no dropout, 13 epochs (paper: 114.5)
 *   ptb_lm --config medium   2 x 650, dropout 0.5, 39 epochs (paper: 82.7)
 *   ptb_lm --config awd --minutes 120
 *                            2 x 650 with AWD-LSTM's regularisers (weight
 *                            drop, embedding dropout, locked dropout, tied
 *                            weights), the learning rate decayed over a
 *                            fixed time budget
 *
 * Every flag of a configuration can be changed (--help). Each epoch prints
 * the training, validation and test perplexities and the time; --plot
 * draws them. The training step is train_step(). */
#define _POSIX_C_SOURCE 200809L
#include "../apps/common/common.h"
#include "../apps/common/text.h"

#include <loom/loom.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROG "ptb_lm"
#define MAX_EPOCHS 1000

typedef struct {
  const char *name;
  int64_t hidden, layers, batch, steps, epochs, decay_after;
  double lr, decay, clip, init, dropout;
  /* the regularisers of AWD-LSTM (Merity et al. 2018) */
  double weight_drop, embed_dropout, dropout_in, dropout_out;
  bool locked, tie;
  double minutes; /* 0: no time budget */
} config;

/* The paper's settings. The learning rate is divided by `decay` after
 * epoch `decay_after` and each one after it, as the paper says (small: lr
 * 1 for 4 epochs, then halved each epoch; the reference Lua code halves
 * from epoch 6 on, TensorFlow's tutorial as the paper). As in both, the
 * loss is the sum over the unrolled steps of the batch's mean
 * cross-entropy, and its gradient is clipped to norm `clip`; every weight
 * starts U(-init, init). */
static const config configs[] = {
    {.name = "small",
     .hidden = 200,
     .layers = 2,
     .batch = 20,
     .steps = 20,
     .epochs = 13,
     .decay_after = 4,
     .lr = 1,
     .decay = 2,
     .clip = 5,
     .init = 0.1},
    {.name = "medium",
     .hidden = 650,
     .layers = 2,
     .batch = 20,
     .steps = 35,
     .epochs = 39,
     .decay_after = 6,
     .lr = 1,
     .decay = 1.2,
     .clip = 5,
     .init = 0.05,
     .dropout = 0.5},
    /* medium's size in a fixed time budget, regularised as AWD-LSTM is
     * but more lightly, for the few epochs two cores train in 2 hours */
    {.name = "awd",
     .hidden = 650,
     .layers = 2,
     .batch = 20,
     .steps = 35,
     .epochs = 39,
     .decay_after = 6,
     .lr = 1,
     .decay = 1.2,
     .clip = 5,
     .init = 0.05,
     .dropout = 0.25,
     .weight_drop = 0.2,
     .embed_dropout = 0.05,
     .dropout_in = 0.3,
     .dropout_out = 0.3,
     .locked = true,
     .tie = true,
     .minutes = 120},
};

/* ---- the corpus ---- */

typedef struct {
  app_strtab vocab;
  int64_t *ids[3]; /* train, valid, test */
  int64_t n[3];
} corpus;

/* Appends the words of text (split on spaces and tabs; each line ends with
 * "<eos>", as the reference reads the files) to *ids. New words join the
 * vocabulary only when `grow`. 0, or -1 after saying why. */
static int tokenize(corpus *c, const char *path, const char *text, bool grow,
                    int64_t **ids, int64_t *n, int64_t *cap) {
  int64_t line = 1;
  for (const char *p = text;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r')
      p++;
    if (!*p)
      break;
    const char *w = p;
    size_t len;
    if (*p == '\n') {
      w = "<eos>";
      len = 5;
      p++;
    } else {
      while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        p++;
      len = (size_t)(p - w);
    }
    int64_t id = grow ? app_strtab_intern(&c->vocab, w, len)
                      : app_strtab_find(&c->vocab, w, len);
    if (id < 0) {
      if (grow)
        fprintf(stderr, PROG ": %s: %s\n", path, loom_last_error());
      else
        fprintf(stderr,
                PROG ": %s line %lld: '%.*s' is not in the training text's "
                     "vocabulary\n",
                path, (long long)line, (int)len, w);
      return -1;
    }
    if (*n == *cap) {
      int64_t *more = realloc(*ids, (size_t)(*cap * 2 + 1024) * sizeof *more);
      if (!more) {
        fprintf(stderr, PROG ": %s: out of memory\n", path);
        return -1;
      }
      *ids = more;
      *cap = *cap * 2 + 1024;
    }
    (*ids)[(*n)++] = id;
    line += w[0] == '<' && len == 5 && !memcmp(w, "<eos>", 5);
  }
  return 0;
}

/* Reads dir/ptb.{train,valid,test}.txt (train may be split in
 * ptb.train.part1.txt and part2, read in turn). 0, or -1 after saying
 * why. */
static int corpus_read(corpus *c, const char *dir, int64_t limit) {
  static const char *const files[3][3] = {
      {"ptb.train.part1.txt", "ptb.train.part2.txt", NULL},
      {"ptb.valid.txt", NULL, NULL},
      {"ptb.test.txt", NULL, NULL}};
  for (int part = 0; part < 3; part++) {
    int64_t cap = 0;
    for (int f = 0; files[part][f]; f++) {
      char path[4096];
      const char *name = files[part][f];
      snprintf(path, sizeof path, "%s/%s", dir, name);
      FILE *probe = part == 0 && f == 0 ? fopen(path, "rb") : NULL;
      if (part == 0 && f == 0 && !probe) { /* one training file */
        snprintf(path, sizeof path, "%s/ptb.train.txt", dir);
        f = 1;
      }
      if (probe)
        fclose(probe);
      size_t len;
      char *text = (char *)app_read_file_max(path, (size_t)1 << 30, &len);
      if (!text) {
        fprintf(stderr, PROG ": %s\n", loom_last_error());
        loom_clear_error();
        return -1;
      }
      int rc = strlen(text) != len
                   ? (fprintf(stderr, PROG ": %s holds a NUL byte\n", path), -1)
                   : tokenize(c, path, text, part == 0, &c->ids[part],
                              &c->n[part], &cap);
      free(text);
      if (rc < 0)
        return -1;
    }
    if (part == 0 && limit > 0 && c->n[0] > limit)
      c->n[0] = limit;
    if (part > 0 && limit > 0 && c->n[part] > limit / 4 + 2)
      c->n[part] = limit / 4 + 2;
  }
  return 0;
}

static void corpus_free(corpus *c) {
  app_strtab_free(&c->vocab);
  for (int i = 0; i < 3; i++)
    free(c->ids[i]);
}

/* x (T, B) and the next words y (T * B): row b reads stream b (the text cut
 * into B equal streams of `stream` words) from position pos. */
static void fill_batch(const int64_t *ids, int64_t stream, int64_t B, int64_t T,
                       int64_t pos, int64_t *x, int64_t *y) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t b = 0; b < B; b++) {
      x[t * B + b] = ids[b * stream + pos + t];
      y[t * B + b] = ids[b * stream + pos + t + 1];
    }
}

/* ---- the model ---- */

typedef struct {
  loom_module base;
  const config *cfg;
  loom_tensor *embedding, *decoder_weight, *decoder_bias;
  loom_rnn *lstm;
  loom_rng *rng;
} model;

static void model_destroy(loom_module *m) { free(m); }

static model *model_new(const config *cfg, int64_t vocab, loom_rng *rng) {
  model *m = calloc(1, sizeof *m);
  if (!m)
    return LOOM_FAIL(LOOM_ERR_MEMORY, PROG ": out of memory");
  loom_module_init(&m->base, "ptb_lm", model_destroy);
  m->cfg = cfg;
  m->rng = rng;
  loom_scope *s = loom_scope_begin();
  m->embedding = loom_module_add_param(
      &m->base, "embedding_weight",
      loom_zeros(LOOM_F32, LOOM_SHAPE(vocab, cfg->hidden)));
  m->lstm = loom_lstm_new((loom_rnn_opts){.input_size = cfg->hidden,
                                          .hidden_size = cfg->hidden,
                                          .num_layers = (int)cfg->layers,
                                          .dropout = cfg->dropout,
                                          .variational = cfg->locked,
                                          .weight_drop = cfg->weight_drop,
                                          .rng = rng});
  if (m->lstm)
    loom_module_add_child(&m->base, "lstm", &m->lstm->base);
  if (!cfg->tie)
    m->decoder_weight = loom_module_add_param(
        &m->base, "decoder_weight",
        loom_zeros(LOOM_F32, LOOM_SHAPE(vocab, cfg->hidden)));
  m->decoder_bias = loom_module_add_param(
      &m->base, "decoder_bias", loom_zeros(LOOM_F32, LOOM_SHAPE(vocab)));
  loom_scope_end(s);
  if (cfg->tie)
    m->decoder_weight = m->embedding;
  if (!m->embedding || !m->lstm || !m->decoder_weight || !m->decoder_bias) {
    loom_module_free(&m->base);
    return NULL;
  }
  /* The reference initialises every parameter U(-init, init). */
  loom_tensor *params[64];
  int n = loom_module_parameters(&m->base, params, 64);
  for (int i = 0; i < n; i++)
    if (loom_init_uniform_(params[i], -cfg->init, cfg->init, rng) < 0) {
      loom_module_free(&m->base);
      return NULL;
    }
  return m;
}

/* Dropout of rate p on x (T, B, H): one mask per sequence for every step
 * (locked, or variational, dropout) or a new one per element. */
static loom_tensor *drop(const model *m, const loom_tensor *x, double p) {
  if (!m->base.training || p == 0)
    return (loom_tensor *)x;
  if (!m->cfg->locked)
    return loom_dropout(x, p, true, m->rng);
  return loom_locked_dropout(x, p, true, m->rng);
}

/* Logits (T * B, V) for the words x (T, B) from the states init (NULL:
 * zeros); the final states go to final[2]. */
static loom_tensor *model_forward(model *m, const loom_tensor *x,
                                  loom_tensor *const *init,
                                  loom_tensor **final) {
  const config *c = m->cfg;
  loom_tensor *e = loom_embedding_dropout(m->embedding, x, -1, c->embed_dropout,
                                          m->base.training, m->rng);
  e = drop(m, e, c->dropout_in > 0 ? c->dropout_in : c->dropout);
  loom_tensor *out;
  if (!e || loom_rnn_forward(m->lstm, e, NULL, init, &out, final) < 0)
    return NULL;
  out = drop(m, out, c->dropout_out > 0 ? c->dropout_out : c->dropout);
  return loom_linear(loom_reshape(out, 2, (int64_t[]){-1, c->hidden}),
                     m->decoder_weight, m->decoder_bias);
}

/* ---- training ---- */

/* One step of truncated backpropagation through time on the words x (T, B)
 * and their successors y (T * B): the loss is the sum over the T steps of
 * the batch's mean cross-entropy (as in the paper's code, which the
 * learning rate and the clipping norm assume), its gradient's norm is
 * clipped to `clip`, and SGD steps. The final states, detached, replace
 * state[2] (NULL at a stream's start). *loss is the mean per word. 0, or -1
 * with an error (a failed op, or a loss or gradient that is not finite). */
static int train_step(model *m, loom_optimizer *opt, loom_tensor *const *params,
                      int n_params, const int64_t *x, const int64_t *y,
                      int64_t T, int64_t B, loom_tensor **state, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(T, B));
  loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(T * B));
  loom_tensor *next[2];
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = loom_cross_entropy(
      model_forward(m, xt, state[0] ? state : NULL, next), yt, NULL);
  *loss = l ? loom_item(l) : NAN;
  int rc = -1;
  if (l && !isfinite(*loss)) {
    loom_set_error(LOOM_ERR_NUMERIC, "the loss is %g: training diverged",
                   *loss);
  } else if (l && loom_backward(loom_mul_scalar(l, (double)T)) == 0) {
    double norm = loom_clip_grad_norm(params, n_params, m->cfg->clip, 2);
    if (!isfinite(norm))
      loom_set_error(LOOM_ERR_NUMERIC,
                     "the gradient's norm is %g: training diverged", norm);
    else if (loom_optimizer_step(opt) == 0)
      rc = 0;
  }
  for (int k = 0; rc == 0 && k < 2; k++) {
    loom_release(state[k]);
    state[k] = loom_keep(loom_detach(next[k]));
  }
  loom_scope_end(s);
  return rc;
}

/* Perplexity of ids[0..n) read as B streams in chunks of T words, the
 * states carried from chunk to chunk, in evaluation mode. NaN with an
 * error on failure. */
static double perplexity(model *m, const int64_t *ids, int64_t n, int64_t B,
                         int64_t T) {
  int64_t stream = n / B;
  if (stream < 2)
    return loom_set_error(LOOM_ERR_ARGUMENT,
                          PROG ": %lld words are too few for %lld streams",
                          (long long)n, (long long)B),
           NAN;
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  int64_t *x = malloc((size_t)(T * B) * sizeof *x);
  int64_t *y = malloc((size_t)(T * B) * sizeof *y);
  loom_tensor *state[2] = {NULL, NULL};
  double total = 0;
  int64_t count = 0;
  bool ok = x && y;
  if (!ok)
    loom_set_error(LOOM_ERR_MEMORY, PROG ": out of memory");
  for (int64_t pos = 0; ok && pos + 1 < stream; pos += T) {
    int64_t len = pos + T + 1 <= stream ? T : stream - pos - 1;
    loom_scope *s = loom_scope_begin();
    fill_batch(ids, stream, B, len, pos, x, y);
    loom_tensor *next[2];
    loom_tensor *l = loom_cross_entropy(
        model_forward(m, loom_from_array(LOOM_I64, x, LOOM_SHAPE(len, B)),
                      state[0] ? state : NULL, next),
        loom_from_array(LOOM_I64, y, LOOM_SHAPE(len * B)),
        &(loom_cross_entropy_opts){.reduction = LOOM_SUM,
                                   .ignore_index = -100});
    ok = l != NULL;
    if (ok) {
      total += loom_item(l);
      count += len * B;
      for (int k = 0; k < 2; k++) {
        loom_release(state[k]);
        state[k] = loom_keep(next[k]);
      }
    }
    loom_scope_end(s);
  }
  for (int k = 0; k < 2; k++)
    loom_release(state[k]);
  free(x);
  free(y);
  loom_no_grad_end();
  loom_module_train(&m->base, true);
  return ok ? exp(total / (double)count) : NAN;
}

/* ---- the command line ---- */

typedef struct {
  config cfg;
  const char *data, *plot, *checkpoint;
  int64_t seed, threads, limit, evals;
  bool quiet, resume;
} options;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: " PROG " [--config small|medium|awd] [options]\n"
      "Trains a word-level LSTM language model on the Penn Treebank and\n"
      "prints the training, validation and test perplexity of each epoch.\n"
      "  --data DIR          ptb.{train,valid,test}.txt, the training text\n"
      "                      possibly as ptb.train.part1.txt + part2\n"
      "                      (default ../shared/data/ptb)\n"
      "  --config NAME       small, medium (Zaremba et al. 2014) or awd\n"
      "                      (medium's size with AWD-LSTM's regularisers)\n"
      "  --hidden N --layers N --batch N --steps N (unrolled) --epochs N\n"
      "  --lr X --decay X --decay-after N   lr / decay after each epoch > N\n"
      "  --clip X --init X   gradient norm clip; weights U(-init, init)\n"
      "  --dropout P         between layers (and in/out unless given)\n"
      "  --dropout-in P --dropout-out P   on the embeddings / the output\n"
      "  --weight-drop P     DropConnect on the recurrent weights\n"
      "  --embed-dropout P   drops whole words from the embedding\n"
      "  --locked 0|1        one dropout mask per sequence\n"
      "  --tie 0|1           the softmax uses the embedding matrix\n"
      "  --minutes M         stop training after M minutes; the learning\n"
      "                      rate then decays linearly over the budget\n"
      "                      (instead of --decay)\n"
      "  --evals-per-epoch K evaluate K times an epoch (default 1)\n"
      "  --limit N           use only the first N training words (tests)\n"
      "  --checkpoint FILE   saved after each epoch (model, SGD, history)\n"
      "  --resume            continue the run saved in --checkpoint\n"
      "  --seed N --threads N --plot PNG --quiet\n");
}

/* Parses argv into o; 0, 1 after --help, or 2 after saying what is wrong. */
static int parse(int argc, char **argv, options *o) {
  *o = (options){
      .cfg = configs[0], .data = "../shared/data/ptb", .seed = 1, .evals = 1};
  for (int i = 1; i < argc; i++) /* the configuration first: flags edit it */
    if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      size_t k = 0;
      while (k < sizeof configs / sizeof *configs &&
             strcmp(configs[k].name, argv[i + 1]))
        k++;
      if (k == sizeof configs / sizeof *configs) {
        fprintf(stderr, PROG ": --config '%s' is not small, medium or awd\n",
                argv[i + 1]);
        return 2;
      }
      o->cfg = configs[k];
    }
  config *c = &o->cfg;
  const app_range prob = {.lo = 0, .hi = 1, .hi_open = true};
  const app_range pos = {.lo = 0, .hi = 1000, .lo_open = true};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t iv = 0;
    int rc = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 1;
    }
    if (!strcmp(a, "--quiet") || !strcmp(a, "--resume")) {
      *(a[2] == 'q' ? &o->quiet : &o->resume) = true;
      continue;
    }
    if (!v) {
      fprintf(stderr, PROG ": %s needs a value (see --help)\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--config"))
      continue;
    else if (!strcmp(a, "--data"))
      o->data = v;
    else if (!strcmp(a, "--plot"))
      o->plot = v;
    else if (!strcmp(a, "--checkpoint"))
      o->checkpoint = v;
    else if (!strcmp(a, "--hidden"))
      rc = app_parse_int(PROG, a, v, 1, 1 << 16, &c->hidden);
    else if (!strcmp(a, "--layers"))
      rc = app_parse_int(PROG, a, v, 1, LOOM_RNN_MAX_LAYERS, &c->layers);
    else if (!strcmp(a, "--batch"))
      rc = app_parse_int(PROG, a, v, 1, 1 << 16, &c->batch);
    else if (!strcmp(a, "--steps"))
      rc = app_parse_int(PROG, a, v, 1, 1 << 16, &c->steps);
    else if (!strcmp(a, "--epochs"))
      rc = app_parse_int(PROG, a, v, 1, MAX_EPOCHS, &c->epochs);
    else if (!strcmp(a, "--decay-after"))
      rc = app_parse_int(PROG, a, v, 0, MAX_EPOCHS, &c->decay_after);
    else if (!strcmp(a, "--lr"))
      rc = app_parse_real(PROG, a, v, pos, &c->lr);
    else if (!strcmp(a, "--decay"))
      rc = app_parse_real(PROG, a, v, (app_range){.lo = 1, .hi = 1000},
                          &c->decay);
    else if (!strcmp(a, "--clip"))
      rc = app_parse_real(PROG, a, v, pos, &c->clip);
    else if (!strcmp(a, "--init"))
      rc = app_parse_real(PROG, a, v, pos, &c->init);
    else if (!strcmp(a, "--dropout"))
      rc = app_parse_real(PROG, a, v, prob, &c->dropout);
    else if (!strcmp(a, "--dropout-in"))
      rc = app_parse_real(PROG, a, v, prob, &c->dropout_in);
    else if (!strcmp(a, "--dropout-out"))
      rc = app_parse_real(PROG, a, v, prob, &c->dropout_out);
    else if (!strcmp(a, "--weight-drop"))
      rc = app_parse_real(PROG, a, v, prob, &c->weight_drop);
    else if (!strcmp(a, "--embed-dropout"))
      rc = app_parse_real(PROG, a, v, prob, &c->embed_dropout);
    else if (!strcmp(a, "--minutes"))
      rc = app_parse_real(PROG, a, v, (app_range){.lo = 0, .hi = 1e6},
                          &c->minutes);
    else if (!strcmp(a, "--locked") || !strcmp(a, "--tie")) {
      rc = app_parse_int(PROG, a, v, 0, 1, &iv);
      *(a[2] == 'l' ? &c->locked : &c->tie) = iv != 0;
    } else if (!strcmp(a, "--seed"))
      rc = app_parse_int(PROG, a, v, 0, INT64_MAX, &o->seed);
    else if (!strcmp(a, "--threads"))
      rc = app_parse_int(PROG, a, v, 1, 1024, &o->threads);
    else if (!strcmp(a, "--evals-per-epoch"))
      rc = app_parse_int(PROG, a, v, 1, 1000, &o->evals);
    else if (!strcmp(a, "--limit"))
      rc = app_parse_int(PROG, a, v, 2, INT64_MAX, &o->limit);
    else {
      fprintf(stderr, PROG ": unknown option %s (see --help)\n", a);
      return 2;
    }
    if (rc < 0)
      return 2;
  }
  if (o->resume && !o->checkpoint) {
    fprintf(stderr, PROG ": --resume needs --checkpoint\n");
    return 2;
  }
  return 0;
}

/* ---- a run ---- */

#define MAX_POINTS 4096

/* The perplexities at each evaluation: epochs done (fractional), the mean
 * training perplexity since the last point, validation and test. */
typedef struct {
  double epoch[MAX_POINTS], train[MAX_POINTS], valid[MAX_POINTS],
      test[MAX_POINTS], minutes[MAX_POINTS];
  int n;
} history;

static int plot(const char *path, const config *c, const history *h) {
  app_series s[3] = {
      {"training", h->epoch, h->train, h->n, 0x1f77b4},
      {"validation", h->epoch, h->valid, h->n, 0xff7f0e},
      {"test", h->epoch, h->test, h->n, 0x2ca02c},
  };
  char title[160];
  snprintf(title, sizeof title,
           "PTB word LM, %lld x %lld LSTM (%s): test perplexity %.1f",
           (long long)c->layers, (long long)c->hidden, c->name,
           h->test[h->n - 1]);
  app_panel p = {.title = title,
                 .xlabel = "epoch",
                 .ylabel = "perplexity",
                 .series = s,
                 .n_series = 3,
                 .log_y = true};
  return app_plot_panels_png(path, NULL, &p, 1, 1, 800, 500);
}

/* Draws the curves so far to --plot (after each point, so a run stopped
 * early leaves its picture); *failed says whether the latest write failed. */
static void redraw(const options *o, const history *h, bool *failed) {
  if (!o->plot || h->n == 0)
    return;
  *failed = plot(o->plot, &o->cfg, h) < 0;
  if (*failed)
    app_report_write_error(PROG, o->plot);
}

/* Adds a point after `epochs` epochs whose training loss summed to `sum`
 * over `count` steps, and prints it. 0, or -1 after saying why. */
static int add_point(history *h, model *m, const corpus *data, const config *c,
                     double epochs, double lr, double sum, int64_t count,
                     double minutes) {
  if (h->n == MAX_POINTS)
    return 0;
  int i = h->n;
  h->epoch[i] = epochs;
  h->train[i] = exp(sum / (double)count);
  h->valid[i] = perplexity(m, data->ids[1], data->n[1], c->batch, c->steps);
  /* the reference reads the test text as one stream */
  h->test[i] = perplexity(m, data->ids[2], data->n[2], 1, c->steps);
  h->minutes[i] = minutes;
  if (isnan(h->valid[i]) || isnan(h->test[i])) {
    fprintf(stderr, PROG ": evaluation: %s\n", loom_last_error());
    loom_clear_error();
    return -1;
  }
  h->n++;
  printf("%.2f  %.4g  %.2f  %.2f  %.2f  %.1f\n", epochs, lr, h->train[i],
         h->valid[i], h->test[i], minutes);
  fflush(stdout);
  return 0;
}

/* The settings a checkpoint must have been made with, as numbers (all
 * but the number of epochs: a run may be extended). */
static loom_tensor *settings(const options *o) {
  const config *c = &o->cfg;
  double v[] = {(double)c->hidden,
                (double)c->layers,
                (double)c->batch,
                (double)c->steps,
                (double)c->decay_after,
                c->lr,
                c->decay,
                c->clip,
                c->init,
                c->dropout,
                c->weight_drop,
                c->embed_dropout,
                c->dropout_in,
                c->dropout_out,
                c->locked,
                c->tie,
                c->minutes,
                (double)o->limit,
                (double)o->evals,
                (double)o->seed};
  return loom_from_array(LOOM_F64, v, LOOM_SHAPE(sizeof v / sizeof *v));
}

/* Saves the run after `epoch` epochs: the model, SGD, the dropout
 * generator, the learning rate, the history and the settings. */
static int save(const options *o, model *m, loom_optimizer *opt, int64_t epoch,
                double lr, const history *h) {
  loom_scope *s = loom_scope_begin();
  loom_tensor_map *extra = loom_tensor_map_new();
  double rows[MAX_POINTS * 5];
  for (int i = 0; i < h->n; i++) {
    double r[5] = {h->epoch[i], h->train[i], h->valid[i], h->test[i],
                   h->minutes[i]};
    memcpy(rows + 5 * i, r, sizeof r);
  }
  int rc =
      extra && loom_tensor_map_set(extra, "settings", settings(o)) == 0 &&
              loom_tensor_map_set(
                  extra, "lr", loom_full(LOOM_F64, lr, LOOM_SHAPE(1))) == 0 &&
              (h->n == 0 ||
               loom_tensor_map_set(
                   extra, "history",
                   loom_from_array(LOOM_F64, rows, LOOM_SHAPE(h->n, 5))) == 0)
          ? loom_checkpoint_save(o->checkpoint, &m->base, opt, NULL, epoch,
                                 m->rng, extra)
          : -1;
  loom_tensor_map_free(extra);
  loom_scope_end(s);
  if (rc < 0)
    app_report_write_error(PROG, o->checkpoint);
  return rc;
}

/* Loads a run saved by save() made with the same settings: the epochs it
 * had done, its learning rate and history. 0, or -1 after saying why. */
static int resume(const options *o, model *m, loom_optimizer *opt,
                  int64_t *epoch, double *lr, history *h) {
  loom_scope *s = loom_scope_begin();
  loom_tensor_map *extra = NULL;
  int rc = loom_checkpoint_load(o->checkpoint, &m->base, opt, NULL, epoch,
                                m->rng, &extra);
  const char *why = NULL;
  loom_tensor *set = rc == 0 ? loom_tensor_map_get(extra, "settings") : NULL;
  loom_tensor *l = rc == 0 ? loom_tensor_map_get(extra, "lr") : NULL;
  loom_tensor *hist = rc == 0 ? loom_tensor_map_get(extra, "history") : NULL;
  if (rc < 0)
    why = loom_last_error();
  else if (!set || !loom_equal(set, settings(o)))
    why = "it was made with other settings (flags) than these";
  else if (!l || loom_numel(l) != 1 || !(loom_item(l) > 0) ||
           (hist && (loom_ndim(hist) != 2 || loom_shape(hist)[1] != 5 ||
                     loom_shape(hist)[0] > MAX_POINTS ||
                     loom_dtype_of(hist) != LOOM_F64)) ||
           !(*epoch >= 0 && *epoch <= o->cfg.epochs))
    why = "its learning rate, history or epoch is malformed";
  if (!why) {
    *lr = loom_item(l);
    h->n = hist ? (int)loom_shape(hist)[0] : 0;
    const double *v = hist ? loom_data_f64(loom_contiguous(hist)) : NULL;
    for (int i = 0; i < h->n; i++) {
      h->epoch[i] = v[5 * i];
      h->train[i] = v[5 * i + 1];
      h->valid[i] = v[5 * i + 2];
      h->test[i] = v[5 * i + 3];
      h->minutes[i] = v[5 * i + 4];
    }
  } else {
    fprintf(stderr, PROG ": cannot resume from %s: %s\n", o->checkpoint, why);
  }
  loom_clear_error();
  loom_tensor_map_free(extra);
  loom_scope_end(s);
  return why ? -1 : 0;
}

static int train(const options *o, corpus *data) {
  const config *c = &o->cfg;
  int64_t V = data->vocab.n, B = c->batch, T = c->steps;
  int64_t stream = data->n[0] / B;
  int64_t per_epoch = (stream - 1) / T;
  if (per_epoch < 1) {
    fprintf(stderr,
            PROG ": %lld training words make no step of %lld x %lld words\n",
            (long long)data->n[0], (long long)B, (long long)T);
    return 2;
  }
  /* evaluations: each epoch's end, and --evals-per-epoch within it */
  int64_t every = per_epoch / o->evals > 0 ? per_epoch / o->evals : 1;
  loom_rng *rng = loom_rng_new((uint64_t)o->seed);
  model *m = rng ? model_new(c, V, rng) : NULL;
  loom_tensor *params[64];
  int n_params = m ? loom_module_parameters(&m->base, params, 64) : 0;
  loom_optimizer *opt =
      m ? loom_sgd_new(params, n_params, loom_sgd_defaults(c->lr)) : NULL;
  int64_t *x = malloc((size_t)(B * T) * sizeof *x);
  int64_t *y = malloc((size_t)(B * T) * sizeof *y);
  history *h = calloc(1, sizeof *h);
  if (!opt || !x || !y || !h) {
    fprintf(stderr, PROG ": %s\n",
            loom_last_error() ? loom_last_error() : "out of memory");
    loom_clear_error();
    loom_optimizer_free(opt);
    if (m)
      loom_module_free(&m->base);
    loom_rng_free(rng);
    free(x), free(y), free(h);
    return 1;
  }
  printf("# %s: %lld x %lld LSTM, vocabulary %lld, %lld parameters; "
         "%lld / %lld / %lld words; batch %lld x %lld steps, lr %g; "
         "dropout %g (in %g, out %g), weight-drop %g, embedding dropout %g, "
         "locked %d, tied %d; threads %d\n",
         c->name, (long long)c->layers, (long long)c->hidden, (long long)V,
         (long long)loom_module_num_elements(&m->base), (long long)data->n[0],
         (long long)data->n[1], (long long)data->n[2], (long long)B,
         (long long)T, c->lr, c->dropout, c->dropout_in, c->dropout_out,
         c->weight_drop, c->embed_dropout, c->locked, c->tie,
         loom_num_threads());
  printf("# epoch  lr  train  valid  test  minutes\n");
  fflush(stdout);
  double lr = c->lr;
  int64_t first = 1; /* the first epoch to train */
  if (o->resume) {
    int64_t done = 0;
    if (resume(o, m, opt, &done, &lr, h) < 0) {
      loom_optimizer_free(opt);
      loom_module_free(&m->base);
      loom_rng_free(rng);
      free(x), free(y), free(h);
      return 1;
    }
    first = done + 1;
    loom_optimizer_set_lr(opt, lr);
    for (int i = 0; i < h->n; i++)
      printf("%.2f  -  %.2f  %.2f  %.2f  %.1f  (before resuming)\n",
             h->epoch[i], h->train[i], h->valid[i], h->test[i], h->minutes[i]);
  }
  app_progress bar;
  app_progress_begin(&bar);
  /* minutes count training time, across resumed runs too */
  double start = app_now() - (h->n ? h->minutes[h->n - 1] * 60 : 0);
  double budget = c->minutes * 60;
  double sum = 0; /* training loss since the last evaluation */
  int64_t count = 0;
  int status = 0;
  bool out_of_time = false, unplotted = false;
  for (int64_t epoch = first; epoch <= c->epochs && !out_of_time && !status;
       epoch++) {
    loom_tensor *state[2] = {NULL, NULL};
    double epoch_start = app_now();
    int64_t step = 0;
    for (; step < per_epoch; step++) {
      double elapsed = app_now() - start;
      if (budget > 0 && elapsed >= budget) {
        out_of_time = true;
        break;
      }
      if (budget > 0) /* linear decay to zero over the budget */
        loom_optimizer_set_lr(opt, lr * (1 - elapsed / budget));
      fill_batch(data->ids[0], stream, B, T, step * T, x, y);
      double loss;
      if (train_step(m, opt, params, n_params, x, y, T, B, state, &loss) < 0) {
        if (!o->quiet)
          app_progress_end(&bar);
        fprintf(stderr, PROG ": epoch %lld step %lld: %s\n", (long long)epoch,
                (long long)step + 1, loom_last_error());
        loom_clear_error();
        status = 1;
        break;
      }
      sum += loss;
      count++;
      if (!o->quiet) {
        char text[96];
        snprintf(text, sizeof text, "epoch %lld  perplexity %.1f",
                 (long long)epoch, exp(sum / (double)count));
        app_progress_line(&bar, step + 1, per_epoch,
                          (double)(B * T * (step + 1)) /
                              (app_now() - epoch_start + 1e-9),
                          "words", text, false);
      }
      bool last = step + 1 == per_epoch;
      if (last || (step + 1) % every == 0) {
        if (!o->quiet)
          app_progress_end(&bar);
        if (add_point(h, m, data, c,
                      (double)(epoch - 1) +
                          (double)(step + 1) / (double)per_epoch,
                      loom_optimizer_lr(opt), sum, count,
                      (app_now() - start) / 60) < 0) {
          status = 1;
          break;
        }
        redraw(o, h, &unplotted);
        sum = 0;
        count = 0;
      }
    }
    for (int k = 0; k < 2; k++)
      loom_release(state[k]);
    if (out_of_time && count > 0 && !status) { /* the budget's last point */
      if (!o->quiet)
        app_progress_end(&bar);
      status = add_point(h, m, data, c,
                         (double)(epoch - 1) + (double)step / (double)per_epoch,
                         loom_optimizer_lr(opt), sum, count,
                         (app_now() - start) / 60) < 0;
      redraw(o, h, &unplotted);
    }
    if (budget == 0 && epoch >= c->decay_after) { /* lr for the next */
      lr /= c->decay;
      loom_optimizer_set_lr(opt, lr);
    }
    if (!status && !out_of_time && o->checkpoint &&
        save(o, m, opt, epoch, lr, h) < 0)
      status = 1;
  }
  if (h->n > 0 && !status)
    printf("# test perplexity %.2f (validation %.2f) after %.2f epochs, "
           "%.1f minutes\n",
           h->test[h->n - 1], h->valid[h->n - 1], h->epoch[h->n - 1],
           h->minutes[h->n - 1]);
  if (!status && unplotted)
    status = 1;
  loom_optimizer_free(opt);
  loom_module_free(&m->base);
  loom_rng_free(rng);
  free(x), free(y), free(h);
  return status;
}

int main(int argc, char **argv) {
  options o;
  int rc = parse(argc, argv, &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  if (o.threads)
    loom_set_num_threads((int)o.threads);
  corpus data = {0};
  rc = corpus_read(&data, o.data, o.limit) < 0 ? 2 : train(&o, &data);
  corpus_free(&data);
  loom_cleanup();
  return rc;
}
