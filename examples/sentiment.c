/* Sentiment-style classification, many to one: sentences of different
 * lengths are embedded, padded into one batch with their lengths, read by
 * a bidirectional LSTM, and the two final states decide the label.
 *
 * The data is generated: short "reviews" of filler words and one or three
 * opinion words ("good", "dull", ...), some negated ("not good"); the label
 * is the majority opinion after negation, so word counts alone do not
 * tell it. Prints the test accuracy; the exit status is 0 when it reaches
 * 80%. */
#include "example.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>

#define PROG "sentiment"
enum { EMBED = 16, HIDDEN = 32, BATCH = 32, TEST = 512 };

static const char *const vocabulary[] = {
    "the",   "movie",  "film",  "plot",   "acting", "story",     "was",
    "is",    "and",    "but",   "really", "very",   "quite",     "this",
    "not",   "good",   "great", "fun",    "lovely", "brilliant", "bad",
    "awful", "boring", "dull",  "poor"};
enum {
  FILLERS = 14,
  NOT = 14,
  POSITIVE = 15,
  NEGATIVE = 20,
  OPINIONS = 5,
  V = 25,
  MAX_LEN = 16
};

typedef struct {
  int64_t ids[MAX_LEN];
  int64_t len;
  int64_t label; /* 1 positive, 0 negative */
} review;

static int64_t pick(loom_rng *g, int64_t n) {
  return (int64_t)(loom_rng_uniform(g) * (double)n);
}

/* 3 to 8 fillers with 1 or 3 opinions, each negated with probability 0.3,
 * inserted at random places. */
static void generate(loom_rng *g, review *r) {
  int64_t opinions = pick(g, 2) ? 3 : 1, score = 0;
  r->len = 3 + pick(g, 6);
  for (int64_t i = 0; i < r->len; i++)
    r->ids[i] = pick(g, FILLERS);
  for (int64_t k = 0; k < opinions; k++) {
    bool positive = pick(g, 2), negated = loom_rng_uniform(g) < 0.3;
    int64_t at = pick(g, r->len + 1), n = negated ? 2 : 1;
    for (int64_t i = r->len - 1; i >= at; i--) /* make room */
      r->ids[i + n] = r->ids[i];
    if (negated)
      r->ids[at] = NOT;
    r->ids[at + n - 1] = (positive ? POSITIVE : NEGATIVE) + pick(g, OPINIONS);
    r->len += n;
    score += positive != negated ? 1 : -1;
  }
  r->label = score > 0;
}

typedef struct {
  loom_module base;
  loom_tensor *embedding, *w_out, *b_out;
  loom_rnn *lstm;
} classifier;

static void classifier_destroy(loom_module *m) { free(m); }

static classifier *classifier_new(void) {
  classifier *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  loom_module_init(&c->base, "Classifier", classifier_destroy);
  loom_scope *s = loom_scope_begin();
  c->embedding = loom_module_add_param(
      &c->base, "embedding",
      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(V, EMBED)));
  c->lstm = loom_lstm_new((loom_rnn_opts){
      .input_size = EMBED, .hidden_size = HIDDEN, .bidirectional = true});
  if (c->lstm)
    loom_module_add_child(&c->base, "lstm", &c->lstm->base);
  c->w_out = loom_module_add_param(
      &c->base, "w_out",
      loom_rand(NULL, LOOM_F32, -0.1, 0.1, LOOM_SHAPE(2, 2 * HIDDEN)));
  c->b_out = loom_module_add_param(&c->base, "b_out",
                                   loom_zeros(LOOM_F32, LOOM_SHAPE(2)));
  loom_scope_end(s);
  if (!c->embedding || !c->lstm || !c->w_out || !c->b_out) {
    loom_module_free(&c->base);
    return NULL;
  }
  return c;
}

/* Logits (n, 2) for n reviews: each embedded (len, EMBED), padded to one
 * (T, n, EMBED) batch with its lengths, and the final states of both
 * directions joined. */
static loom_tensor *classify(classifier *c, const review *r, int n) {
  loom_tensor *seqs[BATCH > TEST ? BATCH : TEST], *lengths, *out, *final[2];
  for (int i = 0; i < n; i++)
    seqs[i] = loom_embedding(
        c->embedding, loom_from_array(LOOM_I64, r[i].ids, LOOM_SHAPE(r[i].len)),
        -1);
  loom_tensor *x = loom_pad_sequence(seqs, n, false, 0, &lengths);
  if (!x || loom_rnn_forward(c->lstm, x, lengths, NULL, &out, final) < 0)
    return NULL;
  loom_tensor *h[2] = {loom_select(final[0], 0, 0),  /* forward, at the end */
                       loom_select(final[0], 0, 1)}; /* reverse, at the start */
  return loom_linear(loom_concat(h, 2, 1), c->w_out, c->b_out);
}

/* One step: cross-entropy of a batch, backward, clipping, Adam. */
static int train_step(classifier *c, loom_optimizer *opt,
                      loom_tensor *const *params, int n_params,
                      const review *batch, double *loss) {
  loom_scope *s = loom_scope_begin();
  int64_t labels[BATCH];
  for (int i = 0; i < BATCH; i++)
    labels[i] = batch[i].label;
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = loom_cross_entropy(
      classify(c, batch, BATCH),
      loom_from_array(LOOM_I64, labels, LOOM_SHAPE(BATCH)), NULL);
  int rc = l && loom_backward(l) == 0 ? 0 : -1;
  if (rc == 0) {
    *loss = loom_item(l);
    double norm = loom_clip_grad_norm(params, n_params, 1.0, 2);
    rc = isfinite(norm) ? loom_optimizer_step(opt) : -1; /* NaN: an error */
  }
  loom_scope_end(s);
  return rc;
}

/* Fraction of the reviews classified right (evaluation mode, no graph). */
static double accuracy(classifier *c, const review *r, int n) {
  loom_module_train(&c->base, false);
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  loom_tensor *pred = loom_argmax(classify(c, r, n), 1, false);
  double right = -1;
  if (pred) {
    right = 0;
    for (int i = 0; i < n; i++)
      right += loom_data_i64(pred)[i] == r[i].label;
  }
  loom_scope_end(s);
  loom_no_grad_end();
  loom_module_train(&c->base, true);
  return right / n;
}

int main(int argc, char **argv) {
  example_options o = {.steps = 400, .seed = 1};
  int rc = example_parse(argc, argv, PROG,
                         "Trains a bidirectional LSTM to classify generated "
                         "reviews (negations included).\n",
                         &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  loom_manual_seed((uint64_t)o.seed);
  loom_rng *data = loom_rng_new((uint64_t)o.seed + 1);
  review *test = malloc(TEST * sizeof *test);
  classifier *c = data && test ? classifier_new() : NULL;
  loom_tensor *params[16];
  int n = c ? loom_module_parameters(&c->base, params, 16) : 0;
  loom_optimizer *opt =
      c ? loom_adam_new(params, n, loom_adam_defaults(1e-2)) : NULL;
  if (!opt)
    return example_fail(PROG, "setup");
  for (int i = 0; i < TEST; i++)
    generate(data, &test[i]);
  printf("reviews of %d words, e.g. \"", V);
  for (int64_t i = 0; i < test[0].len; i++)
    printf("%s%s", i ? " " : "", vocabulary[test[0].ids[i]]);
  printf("\" is %s\n", test[0].label ? "positive" : "negative");
  double loss = 0, acc = 0;
  for (int64_t step = 1; step <= o.steps && rc == 0; step++) {
    review batch[BATCH];
    for (int i = 0; i < BATCH; i++)
      generate(data, &batch[i]);
    if (train_step(c, opt, params, n, batch, &loss) < 0)
      rc = example_fail(PROG, "training");
    else if (step % 100 == 0 || step == o.steps)
      printf("step %lld  loss %.4f  test accuracy %.1f%%\n", (long long)step,
             loss, 100 * (acc = accuracy(c, test, TEST)));
  }
  if (rc == 0 && acc < 0)
    rc = example_fail(PROG, "evaluation");
  else if (rc == 0 && acc < 0.8)
    rc = (fprintf(stderr, PROG ": test accuracy %.1f%% is below 80%%\n",
                  100 * acc),
          1);
  loom_optimizer_free(opt);
  loom_module_free(c ? &c->base : NULL);
  loom_rng_free(data);
  free(test);
  loom_cleanup();
  return rc;
}
