/* Training: teacher forcing over shuffled (image, caption) pairs with
 * augmented images, Adam with gradient clipping and a learning-rate
 * schedule, the dev split scored by BLEU after every epoch (or
 * --eval-every steps) with the best checkpoint kept in FILE.best,
 * checkpoints that resume bit-identically, a wall-clock budget, progress
 * lines and a PNG of the curves; at the end the test split is scored and
 * the contact sheet drawn.
 *
 * The step itself is train_step(); cap_train() is the loop around it. */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One training step: the batch's mean cross entropy (padding excluded) is
 * backpropagated, the gradients' norm clipped to `clip` (0: not clipped)
 * and the optimizer steps. *loss receives the loss. 0, or -1 with an
 * error: an op failed, or the loss or the gradient is not finite (the
 * parameters are then left as they were). */
static int train_step(cap_model *m, loom_optimizer *opt,
                      loom_tensor *const *params, int n_params, double clip,
                      const cap_batch *b, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *l = NULL;
  loom_optimizer_zero_grad(opt);
  /* The forward pass in a scope of its own, ended before backward: what
   * backward does not need goes now, not at the end of the step. */
  loom_scope *forward = loom_scope_begin();
  int rc = cap_model_loss(m, b, &l, NULL);
  l = loom_keep(rc == 0 ? l : NULL);
  loom_scope_end(forward);
  loom_autorelease(l);
  *loss = rc == 0 ? loom_item(l) : NAN;
  if (rc == 0 && !isfinite(*loss)) {
    loom_set_error(LOOM_ERR_NUMERIC, "the loss is %g: training diverged",
                   *loss);
    rc = -1;
  }
  if (rc == 0)
    rc = loom_backward(l);
  if (rc == 0) {
    double norm =
        loom_clip_grad_norm(params, n_params, clip > 0 ? clip : INFINITY, 2);
    if (!isfinite(norm)) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "the gradient's norm is %g: training diverged", norm);
      rc = -1;
    }
  }
  if (rc == 0)
    rc = loom_optimizer_step(opt);
  loom_scope_end(s);
  return rc;
}

/* ---- a training run ---- */

#define MAX_PARAMS 64

typedef struct {
  const cap_options *o;
  cap_data data;
  cap_corpus corpus;
  cap_pairs pairs;
  int64_t *dev, n_dev, *test, n_test; /* images of the dev and test splits */
  cap_model *m;
  loom_optimizer *opt;
  loom_schedule *sched;
  loom_tensor *params[MAX_PARAMS];
  int n_params;
  int64_t step, total, per_epoch;
  cap_session s;
  char best_path[4096];
  double smooth, rate;
  double eval_seconds; /* the latest dev scoring's wall-clock time */
  app_progress bar;
  /* the latest write of the file failed: the run ends with status 1 */
  bool unsaved, unsaved_best, unplotted, unsheeted;
} run;

/* Reports the pending error as "caption: WHAT: MESSAGE" and clears it. */
static void fail(run *r, const char *what) {
  if (!r->o->quiet)
    app_progress_end(&r->bar);
  fprintf(stderr, "caption: %s: %s\n", what, loom_last_error());
  loom_clear_error();
}

static void save(run *r, const char *path, bool *failed) {
  *failed =
      cap_checkpoint_save(path, &r->s, r->m, r->opt, r->sched, r->step) < 0;
  if (*failed) {
    if (!r->o->quiet)
      app_progress_end(&r->bar);
    app_report_write_error("caption", path);
  }
}

double cap_cosine_lr(double lr, double fraction) {
  double f = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
  double floor = lr * CAP_COSINE_FLOOR;
  return floor + (lr - floor) * 0.5 * (1 + cos(acos(-1.0) * f));
}

static loom_schedule *schedule_new(const cap_options *o, loom_optimizer *opt,
                                   int64_t total) {
  loom_schedule_opts so;
  switch (o->schedule) {
  case CAP_SCHEDULE_COSINE:
    /* over the run's steps; a run with --minutes alone has no step count:
     * cap_cosine_lr() sets the rate from the clock instead */
    so = loom_schedule_defaults(LOOM_SCHEDULE_COSINE);
    so.t_max = total > 0 ? total : 1;
    so.eta_min = o->lr * CAP_COSINE_FLOOR;
    break;
  case CAP_SCHEDULE_PLATEAU: /* on the dev BLEU-4, stepped per evaluation */
    so = loom_schedule_defaults(LOOM_SCHEDULE_PLATEAU);
    so.mode_max = true;
    so.patience = 2;
    so.factor = 0.5;
    break;
  default: /* constant: a step schedule that never steps down */
    so = loom_schedule_defaults(LOOM_SCHEDULE_STEP);
    so.gamma = 1;
    so.step_size = 1;
  }
  return loom_schedule_new(opt, so);
}

/* The run's model config: the options' with the data's side and the
 * vocabulary's size. */
static cap_config model_config(const run *r) {
  cap_config c = r->o->model;
  c.side = r->o->source.side;
  c.vocab = app_vocab_size(&r->corpus.vocab);
  return c;
}

/* The CNN's channels as --cnn takes them ("16,32,64"). */
static void cnn_text(const cap_config *c, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < c->blocks && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "",
                          (long long)c->channels[i]);
}

/* Why a saved session cannot continue this run, in why, or NULL. Each
 * model option that differs is named with both values, so that the user
 * knows which flag to change (they were only said to differ). */
static const char *mismatch(const run *r, const cap_session *saved, char *why,
                            size_t size) {
  cap_config c = model_config(r);
  const cap_config *s = &saved->cfg;
  /* the vocabulary is the data's, not an option */
  if (c.vocab != s->vocab ||
      app_vocab_size(&saved->vocab) != app_vocab_size(&r->corpus.vocab))
    return "its vocabulary differs from this data's";
  for (int64_t i = 0; i < app_vocab_size(&saved->vocab); i++)
    if (strcmp(app_vocab_token(&saved->vocab, i),
               app_vocab_token(&r->corpus.vocab, i)))
      return "its vocabulary differs from this data's";
  char v[9][2][64];
  cnn_text(&c, v[1][0], sizeof v[1][0]);
  cnn_text(s, v[1][1], sizeof v[1][1]);
  const cap_config *both[2] = {&c, s};
  for (int k = 0; k < 2; k++) {
    const cap_config *x = both[k];
    snprintf(v[0][k], sizeof v[0][k], "%lld", (long long)x->side);
    snprintf(v[2][k], sizeof v[2][k], "%lld", (long long)x->embed);
    snprintf(v[3][k], sizeof v[3][k], "%lld", (long long)x->hidden);
    snprintf(v[4][k], sizeof v[4][k], "%s", cap_image_mode_name(x->image_mode));
    snprintf(v[5][k], sizeof v[5][k], "%lld", (long long)x->attention);
    snprintf(v[6][k], sizeof v[6][k], "%s",
             x->positions ? "--positions" : "--no-positions");
    snprintf(v[7][k], sizeof v[7][k], "%s",
             x->attend_after ? "after" : "before");
    snprintf(v[8][k], sizeof v[8][k], "%g", x->dropout);
  }
  /* "" for a flag whose values are the flags themselves */
  static const char *const flags[9] = {
      "--image-size", "--cnn", "--embed",  "--hidden", "--image",
      "--attention",  "",      "--attend", "--dropout"};
  size_t n = 0;
  for (int i = 0; i < 9; i++)
    if (strcmp(v[i][0], v[i][1]) && n < size)
      n +=
          (size_t)snprintf(why + n, size - n, "%s%s%s%s, the checkpoint has %s",
                           n ? "; " : "the model options differ: ", flags[i],
                           *flags[i] ? " " : "", v[i][0], v[i][1]);
  if (n)
    return why;
  /* anything else the config holds (nothing today) */
  char a[512], b[512];
  cap_config_text(&c, a, sizeof a);
  cap_config_text(s, b, sizeof b);
  if (strcmp(a, b))
    return "the model options differ";
  if (saved->n_order && saved->n_order != r->pairs.n_groups)
    return "it was trained on another number of pairs (or groups of them)";
  return NULL;
}

static int resume(run *r) {
  const cap_options *o = r->o;
  cap_session saved;
  /* the session and the weights from one reading of the file */
  loom_tensor_map *file = loom_safetensors_load(o->checkpoint);
  if (!file || cap_checkpoint_peek_file(file, o->checkpoint, &saved) < 0) {
    loom_tensor_map_free(file);
    return -1;
  }
  char why[1024];
  const char *bad = mismatch(r, &saved, why, sizeof why);
  if (bad)
    loom_set_error(LOOM_ERR_FORMAT, "%s", bad);
  if (bad || loom_checkpoint_restore(file, o->checkpoint, &r->m->base, r->opt,
                                     r->sched, &r->step, r->m->rng, NULL) < 0) {
    loom_tensor_map_free(file);
    cap_session_free(&saved);
    return -1;
  }
  loom_tensor_map_free(file);
  /* the run's own source and vocabulary stay; the rest continues */
  r->s.norm = saved.norm;
  r->s.epoch = saved.epoch;
  r->s.position = saved.position;
  free(r->s.order);
  r->s.order = saved.order;
  r->s.n_order = saved.n_order;
  saved.order = NULL;
  cap_history_free(&r->s.history);
  r->s.history = saved.history;
  saved.history = (cap_history){0};
  r->s.smooth = r->smooth = saved.smooth;
  cap_session_free(&saved);
  return 0;
}

/* Groups of captions (one image each) a step takes. */
static int64_t images_per_step(const cap_options *o) {
  return o->batch / o->per_image;
}

/* Everything a run needs; 0, or -1 after saying why. */
static int setup(run *r, const cap_options *o) {
  *r = (run){.o = o, .smooth = NAN};
  app_progress_begin(&r->bar);
  if (snprintf(r->best_path, sizeof r->best_path, "%s.best", o->checkpoint) >=
      (int)sizeof r->best_path) {
    fprintf(stderr, "caption: checkpoint path too long\n");
    return -1;
  }
  if (cap_source_load(&o->source, o->quiet ? NULL : stderr, &r->data) < 0 ||
      cap_corpus_prepare(&o->source, &r->data, NULL, &r->corpus) < 0 ||
      cap_pairs_of(&r->data, CAP_TRAIN, o->per_image, &r->pairs) < 0 ||
      !(r->dev = cap_data_split(&r->data, CAP_DEV, &r->n_dev)) ||
      !(r->test = cap_data_split(&r->data, CAP_TEST, &r->n_test))) {
    fail(r, "data");
    return -1;
  }
  if (r->pairs.n == 0) {
    fprintf(stderr, "caption: the training split has no images\n");
    return -1;
  }
  /* The sheet draws the test split at the end: refused now rather than
   * found missing after the training. */
  if (r->n_test == 0 && o->sheet && *o->sheet) {
    fprintf(stderr,
            "caption: --sheet %s draws the test split, which has no images "
            "(--sheet '' for none)\n",
            o->sheet);
    return -1;
  }
  /* The plateau schedule steps on dev scores only: without them it would
   * be a constant rate. */
  if (r->n_dev == 0 && o->schedule == CAP_SCHEDULE_PLATEAU) {
    fprintf(stderr, "caption: --schedule plateau steps on the dev BLEU-4, "
                    "but the dev split has no images\n");
    return -1;
  }
  /* A dev split may be left empty (--shapes-dev 0); FILE.best, the best
   * dev BLEU-4, then has nothing to keep, which is said rather than left
   * for the user to find. */
  if (r->n_dev == 0)
    fprintf(stderr,
            "caption: the dev split has no images: no dev scores, and no "
            "%s is written\n",
            r->best_path);
  int64_t groups = images_per_step(o);
  r->per_epoch = (r->pairs.n_groups + groups - 1) / groups;
  r->total = o->epochs > 0 ? (int64_t)ceil(o->epochs * (double)r->per_epoch)
                           : o->steps;
  cap_config cfg = model_config(r);
  r->m = cap_model_new(&cfg, (uint64_t)o->seed);
  r->n_params =
      r->m ? loom_module_parameters(&r->m->base, r->params, MAX_PARAMS) : 0;
  r->opt =
      r->m && r->n_params <= MAX_PARAMS
          ? loom_adam_new(r->params, r->n_params, loom_adam_defaults(o->lr))
          : NULL;
  r->sched = r->opt ? schedule_new(o, r->opt, r->total) : NULL;
  int64_t n_train = 0;
  int64_t *all_train =
      r->sched ? cap_data_split(&r->data, CAP_TRAIN, &n_train) : NULL;
  if (!r->sched || !all_train) {
    fail(r, "model");
    free(all_train);
    return -1;
  }
  r->s = (cap_session){.cfg = r->m->cfg, .source = o->source, .smooth = NAN};
  r->s.source.n_paths = 0; /* the paths belong to the options */
  cap_norm_fit(&r->s.norm, r->data.pixels, r->data.side, all_train, n_train);
  free(all_train);
  for (int64_t i = 0; i < app_vocab_size(&r->corpus.vocab); i++)
    app_strtab_intern(&r->s.vocab.tokens, app_vocab_token(&r->corpus.vocab, i),
                      app_strtab_len(&r->corpus.vocab.tokens, i));
  if (o->resume) {
    if (resume(r) < 0) {
      char what[4200];
      snprintf(what, sizeof what, "cannot resume from %s", o->checkpoint);
      fail(r, what);
      return -1;
    }
    fprintf(stderr, "resumed from %s at step %lld\n", o->checkpoint,
            (long long)r->step);
  }
  return 0;
}

static void teardown(run *r) {
  r->s.source.n_paths = 0;
  cap_session_free(&r->s);
  cap_pairs_free(&r->pairs);
  free(r->dev);
  free(r->test);
  loom_schedule_free(r->sched);
  loom_optimizer_free(r->opt);
  cap_model_free(r->m);
  cap_corpus_free(&r->corpus);
  cap_data_free(&r->data);
}

static void introduce(const run *r) {
  const cap_options *o = r->o;
  if (o->quiet)
    return;
  char cfg[512];
  cap_config_text(&r->m->cfg, cfg, sizeof cfg);
  int64_t counts[CAP_SPLITS] = {0};
  for (int64_t i = 0; i < r->data.n; i++)
    counts[r->data.split[i]]++;
  fprintf(stderr,
          "caption: %lld training pairs (%lld images), %lld dev and %lld "
          "test images; vocabulary %lld (%s tokens, min count %lld)\n"
          "model: %s; %lld parameters\n",
          (long long)r->pairs.n, (long long)counts[CAP_TRAIN],
          (long long)counts[CAP_DEV], (long long)counts[CAP_TEST],
          (long long)app_vocab_size(&r->corpus.vocab),
          cap_tokenizer_name(o->source.tokenizer),
          (long long)o->source.min_count, cfg,
          (long long)loom_module_num_elements(&r->m->base));
}

/* The next batch: groups of pairs in the epoch's order (a new order at an
 * epoch's start); tensors scope-owned. *size: its pairs. */
static int next_batch(run *r, cap_batch *b, int64_t *size) {
  cap_session *s = &r->s;
  const cap_pairs *p = &r->pairs;
  if (s->position >= s->n_order) { /* a new epoch */
    if (s->n_order != p->n_groups) {
      free(s->order);
      s->order = malloc((size_t)p->n_groups * sizeof *s->order);
      if (!s->order) {
        loom_set_error(LOOM_ERR_MEMORY, "out of memory");
        return -1;
      }
      s->n_order = p->n_groups;
    }
    if (s->position > 0 || s->epoch > 0)
      s->epoch++;
    cap_shuffle(s->order, s->n_order, r->m->rng);
    s->position = 0;
  }
  int64_t G = images_per_step(r->o), n = 0;
  if (G > s->n_order - s->position)
    G = s->n_order - s->position;
  /* a group is at most per_image pairs, so a batch is at most --batch */
  int64_t *images = malloc((size_t)G * sizeof *images),
          *captions = malloc((size_t)r->o->batch * sizeof *captions),
          *image_of = malloc((size_t)r->o->batch * sizeof *image_of);
  for (int64_t g = 0; images && captions && image_of && g < G; g++) {
    int64_t group = s->order[s->position + g];
    images[g] = p->image[p->group[group]];
    for (int64_t k = p->group[group]; k < p->group[group + 1]; k++) {
      captions[n] = p->caption[k];
      image_of[n++] = g;
    }
  }
  int rc = -1;
  if (!images || !captions || !image_of)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for a batch");
  else
    rc = cap_batch_build(&r->data, &r->corpus, &s->norm, images, G, captions,
                         r->o->per_image > 1 ? image_of : NULL, n, &r->o->aug,
                         r->m->rng, b);
  s->position += G;
  *size = n;
  free(images);
  free(captions);
  free(image_of);
  return rc;
}

/* Dev scores now, printed and added to the history; FILE.best when its
 * BLEU-4 is the best so far. 0, or -1 after saying why. */
static int validate(run *r) {
  cap_scores sc;
  if (r->n_dev == 0)
    return 0;
  double started = app_now();
  if (cap_evaluate(r->m, &r->data, &r->corpus, &r->s.norm, r->dev, r->n_dev,
                   &r->o->decode, r->o->eval_batch, &sc, NULL) < 0) {
    fail(r, "validation");
    return -1;
  }
  r->eval_seconds = app_now() - started;
  cap_history *h = &r->s.history;
  bool best = true;
  for (int64_t i = 0; i < h->n_dev; i++)
    best &= sc.bleu[3] > h->dev[i * CAP_DEV_COLUMNS + 4];
  double row[CAP_DEV_COLUMNS] = {
      (double)r->step, sc.bleu[0],
      sc.bleu[1],      sc.bleu[2],
      sc.bleu[3],      100.0 * (double)sc.exact / (double)sc.images};
  if (cap_history_add(h, true, row) < 0) {
    fail(r, "history");
    return -1;
  }
  if (r->o->schedule == CAP_SCHEDULE_PLATEAU)
    loom_schedule_step(r->sched, sc.bleu[3]);
  if (best)
    save(r, r->best_path, &r->unsaved_best);
  if (!r->o->quiet) {
    app_progress_end(&r->bar);
    fprintf(stderr,
            "step %lld (epoch %.2f): dev BLEU-1 %.1f BLEU-4 %.1f, exact "
            "%.1f%% (train loss %.3f)%s\n",
            (long long)r->step, (double)r->step / (double)r->per_epoch,
            sc.bleu[0], sc.bleu[3], row[5], r->smooth, best ? " *" : "");
  }
  return 0;
}

/* The loss and BLEU curves, two panels. 0, or -1 after saying so. */
static int plot(const run *r) {
  const cap_options *o = r->o;
  const cap_history *h = &r->s.history;
  if (!o->plot || !*o->plot)
    return 0; /* drawn with no points too: the user asked for the file */
  int64_t n = h->n_train, k = h->n_dev;
  double *x = malloc((size_t)(n + 1) * sizeof *x);
  double *y = malloc((size_t)(n + 1) * sizeof *y);
  double *dx = malloc((size_t)(k + 1) * sizeof *dx);
  double *b[3];
  for (int c = 0; c < 3; c++)
    b[c] = malloc((size_t)(k + 1) * sizeof *b[c]);
  int rc = -1;
  if (x && y && dx && b[0] && b[1] && b[2]) {
    for (int64_t i = 0; i < n; i++) {
      x[i] = h->train[2 * i];
      y[i] = h->train[2 * i + 1];
    }
    for (int64_t i = 0; i < k; i++) {
      const double *row = h->dev + i * CAP_DEV_COLUMNS;
      dx[i] = row[0];
      b[0][i] = row[1];
      b[1][i] = row[4];
      b[2][i] = row[5];
    }
    app_series loss = {"training loss", x, y, (int)n, 0x1f77b4};
    app_series dev[3] = {{"BLEU-1", dx, b[0], (int)k, 0x2ca02c},
                         {"BLEU-4", dx, b[1], (int)k, 0xd62728},
                         {"exact match %", dx, b[2], (int)k, 0x9467bd}};
    app_panel panels[2] = {{"training loss (cross entropy, nats per word)",
                            "step", "loss", &loss, 1, false, false},
                           {"dev split", "step", "score", dev,
                            r->s.source.scenes ? 3 : 2, false, false}};
    rc = app_plot_panels_png(o->plot, "caption: training", panels, k ? 2 : 1, 2,
                             640, 420);
  }
  free(x);
  free(y);
  free(dx);
  for (int c = 0; c < 3; c++)
    free(b[c]);
  if (rc < 0)
    app_report_write_error("caption", o->plot);
  else if (!o->quiet)
    fprintf(stderr, "curves: %s\n", o->plot);
  return rc;
}

/* The test split with the model as it ended, and the contact sheet. */
static int finish(run *r) {
  const cap_options *o = r->o;
  if (r->n_test == 0)
    return 0;
  cap_scores sc;
  app_tokens *hyps = NULL;
  if (cap_evaluate(r->m, &r->data, &r->corpus, &r->s.norm, r->test, r->n_test,
                   &o->decode, o->eval_batch, &sc, &hyps) < 0) {
    fail(r, "test");
    return -1;
  }
  cap_print_scores(stdout, "test", &sc, r->data.novel != NULL);
  int rc = 0;
  if (o->sheet && *o->sheet) {
    rc = cap_contact_sheet(o->sheet, &r->data, &r->corpus, r->test, hyps,
                           r->n_test < o->sheet_images ? r->n_test
                                                       : o->sheet_images);
    if (rc < 0)
      app_report_write_error("caption", o->sheet);
    else if (!o->quiet)
      fprintf(stderr, "contact sheet: %s\n", o->sheet);
  }
  cap_tokens_list_free(hyps, r->n_test);
  return rc;
}

/* Whether --minutes is up. The budget covers the whole command: making
 * or loading the data, training, and the scores at the end (the dev and
 * the test split, reckoned at the latest dev scoring's pace), so a run
 * stops early enough to end on time. */
static bool out_of_time(const run *r, double t0) {
  if (r->o->minutes <= 0)
    return false;
  double per_image = r->n_dev ? r->eval_seconds / (double)r->n_dev : 0;
  double end = per_image * (double)(r->n_dev + r->n_test);
  return app_now() - t0 + end >= r->o->minutes * 60;
}

int cap_train(const cap_options *o) {
  double t0 = app_now(), seconds = 0;
  run r;
  int rc = setup(&r, o) < 0 ? 1 : 0;
  if (rc == 0)
    introduce(&r);
  int64_t first = r.step, images = 0;
  /* until the time is up (--minutes) or the steps are done (--epochs,
   * --steps), whichever comes first */
  while (rc == 0 && !out_of_time(&r, t0) &&
         (r.total <= 0 || r.step < r.total)) {
    double started = app_now(), loss;
    int64_t n = 0;
    loom_scope *s = loom_scope_begin();
    cap_batch b;
    if (next_batch(&r, &b, &n) < 0 ||
        train_step(r.m, r.opt, r.params, r.n_params, o->clip, &b, &loss) < 0) {
      loom_scope_end(s);
      char what[64];
      snprintf(what, sizeof what, "step %lld failed", (long long)r.step);
      fail(&r, what);
      rc = 1;
      break;
    }
    loom_scope_end(s);
    r.step++;
    images += n;
    if (o->schedule == CAP_SCHEDULE_COSINE && r.total > 0)
      loom_schedule_step(r.sched, 0);
    else if (o->schedule == CAP_SCHEDULE_COSINE) /* by the clock */
      loom_optimizer_set_lr(
          r.opt, cap_cosine_lr(o->lr, (app_now() - t0) / (o->minutes * 60)));
    seconds += app_now() - started; /* training only, not validation */
    r.rate = (double)images / seconds;
    r.smooth = isnan(r.smooth) ? loss : 0.95 * r.smooth + 0.05 * loss;
    r.s.smooth = r.smooth;
    double row[2] = {(double)r.step, r.smooth};
    if ((r.step % 10 == 0 || r.step == 1) &&
        cap_history_add(&r.s.history, false, row) < 0) {
      fail(&r, "history");
      rc = 1;
      break;
    }
    if (!o->quiet) {
      char text[96];
      snprintf(text, sizeof text, "epoch %lld  loss %.3f",
               (long long)r.s.epoch + 1, r.smooth);
      app_progress_line(&r.bar, r.step, r.total, r.rate, "pairs", text, false);
    }
    bool last = out_of_time(&r, t0) || (r.total > 0 && r.step >= r.total);
    bool epoch_end = r.s.position >= r.s.n_order;
    bool eval = o->eval_every > 0 ? r.step % o->eval_every == 0 : epoch_end;
    if ((eval || last) && validate(&r) < 0) {
      rc = 1;
      break;
    }
    if (eval || last || r.step % o->save_every == 0)
      save(&r, o->checkpoint, &r.unsaved);
  }
  if (!o->quiet)
    app_progress_end(&r.bar);
  (void)first;
  if (rc == 0 && !o->quiet)
    fprintf(stderr, "trained %lld steps, %.1f pairs/s while training\n",
            (long long)r.step, r.rate);
  if (rc == 0 && r.step == first)
    save(&r, o->checkpoint, &r.unsaved);
  if (rc == 0)
    r.unplotted = plot(&r) < 0;
  if (rc == 0)
    r.unsheeted = finish(&r) < 0;
  teardown(&r);
  return rc || r.unsaved || r.unsaved_best || r.unplotted || r.unsheeted ? 1
                                                                         : 0;
}
