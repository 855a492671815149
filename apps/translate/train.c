/* translate train: learns a translation model from parallel text.
 *
 * The loop, in short (train_step below is all of one update):
 *
 *   for each epoch: batches of similar lengths, in a seeded order
 *     for each batch: logits = model(batch); loss = cross entropy with
 *       label smoothing; backward; clip; Adam (learning rate warmed up,
 *       then falling as 1/sqrt(step), or constant)
 *     validation: loss, perplexity and BLEU of greedy translations; the
 *       best BLEU so far is kept in CHECKPOINT.best
 *
 * A checkpoint holds everything needed to go on bit-identically: the
 * model, Adam's state, the dropout generator, the epoch and the batch
 * within it (an epoch's batches are a function of the seed), the text
 * pipeline (tokenisation, BPE codes, vocabularies) and the history.
 *
 * With --distributed under mpirun, each rank takes its part of the
 * sentence pairs of every batch (loom_dist_shard); its loss is its part's
 * sum over the whole batch's target tokens, and the gradients are summed
 * over the ranks (loom_data_parallel with .sum), which is the whole
 * batch's mean. Every rank validates (the same figures), rank 0 alone
 * prints and writes, and all read the checkpoints: a run resumes on any
 * number of ranks. */
#include "train.h"
#include "translate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- one update ---- */

/* The summed (LOOM_SUM) or mean cross entropy per target token of b,
 * label smoothed when training, or NULL. The logits (T, B, V) go to the
 * fused op as they are, no view between: once the caller's forward scope
 * has ended they are the tape's alone, and backward writes their gradient
 * into their memory (the step's largest tensor, made once, not twice). */
static loom_tensor *batch_loss(nmt_model *m, const nmt_batch *b,
                               double smoothing, loom_reduction r) {
  loom_tensor *sum = loom_sum_all(loom_fused_cross_entropy(
      m->ops->logits(m, b), b->tgt_out, NMT_PAD, smoothing));
  return r == LOOM_SUM ? sum : loom_div_scalar(sum, (double)b->tgt_tokens);
}

/* The learning rate at `step` (1-based): constant, or rising linearly to
 * lr over `warmup` steps and then falling as 1/sqrt(step). */
static double learning_rate(const train_options *o, int64_t step) {
  if (o->warmup <= 0)
    return o->lr;
  double s = (double)step, w = (double)o->warmup;
  return o->lr * fmin(s / w, sqrt(w / s));
}

/* One optimisation step on batch b; *loss receives its mean loss. With
 * several ranks (dp), b is this rank's part (NULL: it has none) of a
 * batch of `tokens` target tokens, and *loss the whole batch's mean, on
 * every rank (so all stop alike on a NaN). */
static int train_step(nmt_model *m, loom_optimizer *opt, loom_data_parallel *dp,
                      loom_tensor **params, int n_params, const nmt_batch *b,
                      int64_t tokens, const train_options *o, int64_t step,
                      double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *l = NULL;
  if (b) {
    /* The forward pass in a scope of its own, ended before backward: what
     * backward does not need goes now, not at the end of the step. */
    loom_scope *forward = loom_scope_begin();
    l = loom_keep(dp ? loom_div_scalar(batch_loss(m, b, o->smoothing, LOOM_SUM),
                                       (double)tokens)
                     : batch_loss(m, b, o->smoothing, LOOM_MEAN));
    loom_scope_end(forward);
    loom_autorelease(l);
  }
  loom_optimizer_zero_grad(opt);
  int rc = !b || l ? 0 : -1;
  *loss = l ? loom_item(l) : 0;
  if (rc == 0 && dp && loom_dist_all_reduce_values(loss, 1, LOOM_DIST_SUM) < 0)
    rc = -1;
  if (rc == 0 && !isfinite(*loss)) {
    loom_set_error(LOOM_ERR_NUMERIC, "the loss is %g", *loss);
    rc = -1;
  }
  if (rc == 0 && l && loom_backward(l) < 0)
    rc = -1;
  if (rc == 0 && dp && loom_data_parallel_wait(dp) < 0)
    rc = -1;
  if (rc == 0) {
    double norm =
        o->clip > 0 ? loom_clip_grad_norm(params, n_params, o->clip, 2) : 0;
    if (!isfinite(norm)) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "the gradient's norm is %g: training diverged", norm);
      rc = -1;
    } else {
      loom_optimizer_set_lr(opt, learning_rate(o, step));
      rc = loom_optimizer_step(opt);
    }
  }
  loom_scope_end(s);
  return rc;
}

/* ---- validation ---- */

/* Loss per target token over a corpus (no smoothing), in evaluation mode. */
static double corpus_loss(nmt_model *m, const nmt_corpus *c, int64_t max_tokens,
                          int64_t max_sentences) {
  nmt_plan p;
  if (nmt_plan_make(&p, c, max_tokens, max_sentences, false, 0, 0) < 0)
    return NAN;
  double total = 0;
  int64_t tokens = 0;
  loom_no_grad_begin();
  for (int64_t i = 0; i < p.n && !isnan(total); i++) {
    nmt_batch b;
    if (nmt_plan_batch(&p, c, i, &b) < 0) {
      total = NAN;
      break;
    }
    loom_scope *s = loom_scope_begin();
    loom_tensor *l = batch_loss(m, &b, 0, LOOM_SUM);
    total = l ? total + loom_item(l) : NAN;
    tokens += b.tgt_tokens;
    loom_scope_end(s);
    nmt_batch_free(&b);
  }
  loom_no_grad_end();
  nmt_plan_free(&p);
  return tokens ? total / (double)tokens : NAN;
}

/* ---- the run ---- */

typedef struct {
  train_options o;
  nmt_text *text;
  nmt_corpus train, valid;
  nmt_model *m;
  loom_data_parallel *dp; /* with --distributed */
  loom_optimizer *opt;
  loom_tensor **params;
  int n_params;
  train_position at;
  train_history h;
  double best_bleu, best_loss;
  /* with --resume: the checkpoint as read, until the model is restored
   * from it (the state before the model exists, then the model and Adam,
   * from one reading of the file) */
  loom_tensor_map *resume_file;
} run;

static void run_free(run *r) {
  loom_data_parallel_free(r->dp);
  nmt_text_free(r->text);
  nmt_corpus_free(&r->train);
  nmt_corpus_free(&r->valid);
  loom_optimizer_free(r->opt);
  if (r->m)
    loom_module_free(&r->m->base);
  free(r->params);
  train_history_free(&r->h);
  loom_tensor_map_free(r->resume_file);
}

/* Whether every pair of corpus k (read from src and tgt) fits the
 * transformer's positions; -1 after naming the first that does not. A
 * longer one would fail only when its batch came, losing the epoch (or,
 * in the validation data, the whole training). Lengths are in the units
 * the model counts: tokens after tokenisation and BPE, with the source's
 * end-of-sentence and the target's beginning-of-sentence token. */
static int check_positions(const train_options *o, const nmt_corpus *k,
                           const char *src, const char *tgt) {
  const nmt_config *c = &o->model;
  if (strcmp(c->model, "transformer"))
    return 0; /* the rnn has no positions */
  for (int64_t i = 0; i < k->n; i++) {
    bool source = k->src_len[i] > c->max_positions;
    if (!source && k->tgt_len[i] + 1 <= c->max_positions)
      continue;
    char limit[64] = "fixed by the checkpoint";
    if (!o->resume)
      snprintf(limit, sizeof limit, "--max-positions, 2..%d",
               NMT_MAX_POSITIONS);
    fprintf(stderr,
            "translate: %s:%lld: a sentence of %lld tokens (%s), more than "
            "the model's %lld positions (%s)\n",
            source ? src : tgt, (long long)k->line[i],
            (long long)(source ? k->src_len[i] : k->tgt_len[i] + 1),
            source ? "its end-of-sentence token counted"
                   : "the beginning-of-sentence token counted",
            (long long)c->max_positions, limit);
    return -1;
  }
  return 0;
}

/* The text pipeline, the data, the model and the optimizer. */
static int prepare(run *r) {
  train_options *o = &r->o;
  if (o->resume && !(r->resume_file = loom_safetensors_load(o->checkpoint))) {
    fprintf(stderr, "translate: cannot resume from %s: %s\n", o->checkpoint,
            loom_last_error());
    return -1;
  }
  if (o->resume ? train_read_state(r->resume_file, o->checkpoint, o, &r->at,
                                   &r->h, &r->text) < 0 ||
                      train_check_resumed_model(o) < 0
                : !(r->text = nmt_text_learn(&o->text, o->src, o->tgt)))
    return -1;
  int64_t skipped = 0;
  if (nmt_text_read_corpus(r->text, o->src, o->tgt, true, &r->train, &skipped) <
          0 ||
      (o->valid_src && nmt_text_read_corpus(r->text, o->valid_src, o->valid_tgt,
                                            true, &r->valid, NULL) < 0))
    return -1;
  if (r->train.n == 0) {
    fprintf(stderr,
            "translate: %s and %s hold no pair with text on both "
            "sides\n",
            o->src, o->tgt);
    return -1;
  }
  /* Validation files without a pair would silently give no validation and
   * no CHECKPOINT.best: refused, as training files without one are. */
  if (o->valid_src && r->valid.n == 0) {
    fprintf(stderr,
            "translate: --valid-src %s and --valid-tgt %s hold no pair with "
            "text on both sides\n",
            o->valid_src, o->valid_tgt);
    return -1;
  }
  if (check_positions(o, &r->train, o->src, o->tgt) < 0 ||
      check_positions(o, &r->valid, o->valid_src, o->valid_tgt) < 0)
    return -1;
  /* the vocabularies' files once the data is known to be usable, so that
   * a refused run writes nothing */
  if (!o->resume && loom_dist_rank() == 0 && /* every rank learns the same */
      nmt_text_write_files(r->text, o->checkpoint) < 0)
    return -1;
  if (skipped && !o->quiet)
    fprintf(stderr, "translate: skipped %lld pairs with an empty side\n",
            (long long)skipped);
  o->model.src_vocab = nmt_text_vocab_size(r->text, false);
  o->model.tgt_vocab = nmt_text_vocab_size(r->text, true);
  if (nmt_config_check(&o->model) < 0)
    return -1;
  loom_manual_seed((uint64_t)o->seed);
  r->m = nmt_model_new(&o->model, (uint64_t)o->seed);
  int n = r->m ? loom_module_parameters(&r->m->base, NULL, 0) : 0;
  r->params = r->m ? malloc(((size_t)n + 1) * sizeof *r->params) : NULL;
  if (r->params) {
    r->n_params = loom_module_parameters(&r->m->base, r->params, n);
    loom_adam_opts a = loom_adam_defaults(o->lr);
    a.beta2 = 0.98; /* the transformer recipe's Adam */
    a.eps = 1e-9;
    r->opt = loom_adam_new(r->params, r->n_params, a);
  }
  if (!r->opt) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    return -1;
  }
  if (o->resume) {
    int64_t step;
    int rc = loom_checkpoint_restore(r->resume_file, o->checkpoint, &r->m->base,
                                     r->opt, NULL, &step, r->m->rng, NULL);
    loom_tensor_map_free(r->resume_file);
    r->resume_file = NULL;
    if (rc < 0) {
      fprintf(stderr, "translate: cannot resume from %s: %s\n", o->checkpoint,
              loom_last_error());
      return -1;
    }
    for (int64_t i = 0; i < r->h.n_val; i++) {
      r->best_bleu = fmax(r->best_bleu, r->h.val_bleu[i]);
      r->best_loss =
          i ? fmin(r->best_loss, r->h.val_loss[i]) : r->h.val_loss[i];
    }
    if (!o->quiet)
      fprintf(stderr, "resumed from %s: epoch %lld, step %lld\n", o->checkpoint,
              (long long)r->at.epoch + 1, (long long)r->at.step);
  }
  /* the same model on every rank (rank 0's values), gradients summed */
  if (o->distributed &&
      !(r->dp = loom_data_parallel_new(
            &r->m->base, &(loom_data_parallel_opts){.sum = true}))) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    return -1;
  }
  return 0;
}

/* train_save on rank 0 (which writes for all); 0 on the others. With
 * several ranks, all first check that their models are still the same
 * bits, so a checkpoint never holds rank 0's view of a model the others
 * no longer share (a rank that resumed only part of the state). */
static int save(const run *r, const char *path) {
  if (r->dp && loom_data_parallel_check_in_sync(r->dp) < 0) {
    fprintf(stderr, "\ntranslate: not saving %s: %s\n", path,
            loom_last_error());
    return -1;
  }
  return loom_dist_rank() == 0
             ? train_save(path, r->m, r->opt, &r->o, r->text, &r->at, &r->h)
             : 0;
}

/* Validation loss, perplexity and BLEU after an epoch (or part of one);
 * keeps CHECKPOINT.best. */
static int validate(run *r, double epochs_done, const char *best_path) {
  if (!r->valid.n)
    return 0;
  loom_module_train(&r->m->base, false);
  /* batches as in training (fairseq's validation defaults) */
  double loss =
      corpus_loss(r->m, &r->valid, r->o.max_tokens, r->o.batch_sentences);
  nmt_scores s = {0};
  int rc = isnan(loss)
               ? -1
               : nmt_score_corpus(r->m, r->text, &r->valid, r->o.valid_tgt,
                                  r->o.valid_beam, r->o.max_tokens,
                                  r->o.batch_sentences, &s);
  loom_module_train(&r->m->base, true);
  if (rc < 0) {
    fprintf(stderr, "\ntranslate: validation failed: %s\n", loom_last_error());
    return -1;
  }
  if (train_history_push_val(&r->h, epochs_done, loss, s.bleu) < 0)
    return -1;
  bool best = r->h.n_val == 1 || s.bleu > r->best_bleu;
  r->best_bleu = fmax(r->best_bleu, s.bleu);
  if (!r->o.quiet)
    fprintf(stderr,
            "validation after %.2f epochs: loss %.3f, perplexity %.2f, BLEU "
            "%.2f%s\n",
            epochs_done, loss, exp(loss), s.bleu, best ? " (best)" : "");
  return best ? save(r, best_path) : 0;
}

/* Loss curves (training, smoothed, against epochs; validation) and the
 * validation BLEU, side by side in one PNG. */
static int plot(const run *r, double steps_per_epoch) {
  const train_history *h = &r->h;
  if (!r->o.plot || !*r->o.plot)
    return 0; /* drawn with no points too: the user asked for the file */
  double *x = malloc((size_t)(h->n + 1) * sizeof *x);
  if (!x) {
    fprintf(stderr, "translate: out of memory for the plot\n");
    return -1;
  }
  for (int64_t i = 0; i < h->n; i++)
    x[i] = h->step[i] / steps_per_epoch;
  app_series loss[2] = {
      {"training (label-smoothed, means of 10 steps)", x, h->loss, (int)h->n,
       0x1f77b4},
      {"validation", h->epoch, h->val_loss, (int)h->n_val, 0xd62728}};
  app_series bleu = {"validation BLEU", h->epoch, h->val_bleu, (int)h->n_val,
                     0x2ca02c};
  app_panel panels[2] = {
      {"loss per target token", "epoch", "nats", loss, h->n_val ? 2 : 1, false,
       false},
      {"BLEU (greedy, tokenised)", "epoch", "BLEU", &bleu, 1, false, false}};
  int rc = app_plot_panels_png(r->o.plot, "translate", panels, h->n_val ? 2 : 1,
                               2, 640, 420);
  free(x);
  if (rc < 0) {
    app_report_write_error("translate", r->o.plot);
  } else if (!r->o.quiet) {
    fprintf(stderr, "curves: %s\n", r->o.plot);
  }
  return rc;
}

/* Dropout masks drawn per rank and step from the seed, so each rank
 * draws its own and a run resumed on as many ranks goes on as before. */
static void seed_dropout(const run *r) {
  if (r->dp)
    loom_rng_seed(r->m->rng,
                  (uint64_t)r->o.seed ^
                      (0x9E3779B97F4A7C15ull * (uint64_t)(r->at.step + 1)) ^
                      ((uint64_t)loom_dist_rank() << 48));
}

/* A resumed run whose epochs were all done: the curves the user asked
 * for are drawn from its history, and the run said to be over (it wrote
 * nothing, with status 0). 0, or -1 after saying why. */
static int finished(const run *r) {
  const train_options *o = &r->o;
  /* the steps of an epoch, for the curves' axis, as its plan made them */
  nmt_plan plan;
  if (nmt_plan_make(&plan, &r->train, o->max_tokens, o->batch_sentences, true,
                    (uint64_t)o->seed, r->at.epoch - 1) < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    return -1;
  }
  double per_epoch = plan.n > 0 ? (double)plan.n : 1;
  nmt_plan_free(&plan);
  if (!o->quiet)
    fprintf(stderr,
            "done: %s has %lld epoch%s done (step %lld), --epochs %lld; "
            "nothing left to train\n",
            o->checkpoint, (long long)r->at.epoch, r->at.epoch == 1 ? "" : "s",
            (long long)r->at.step, (long long)o->epochs);
  return plot(r, per_epoch);
}

/* Trains until --epochs are done or --minutes are up. 0, or -1 after
 * saying why (a failed step, a diverging loss, a failed save). */
static int train(run *r, const char *best_path) {
  const train_options *o = &r->o;
  app_progress pr;
  app_progress_begin(&pr);
  double start = app_now(), run_start = start, recent = 0, shown = NAN;
  double per_epoch = 1;
  int64_t tokens = 0, first_step = r->at.step;
  double step_seconds = 0;
  bool out_of_time = false;
  int rc = 0;
  if (r->at.epoch >= o->epochs) /* resumed with nothing left to train */
    return finished(r);
  while (rc == 0 && r->at.epoch < o->epochs && !out_of_time) {
    nmt_plan plan;
    if (nmt_plan_make(&plan, &r->train, o->max_tokens, o->batch_sentences, true,
                      (uint64_t)o->seed, r->at.epoch) < 0) {
      fprintf(stderr, "translate: %s\n", loom_last_error());
      return -1;
    }
    per_epoch = (double)plan.n;
    for (; rc == 0 && r->at.batch < plan.n && !out_of_time; r->at.batch++) {
      nmt_batch b = {0};
      double t0 = app_now(), loss = NAN;
      /* this rank's pairs of the batch (all of them alone) */
      int64_t first = 0,
              mine = plan.start[r->at.batch + 1] - plan.start[r->at.batch];
      if (r->dp)
        loom_dist_shard(mine, &first, &mine);
      int64_t batch_tokens =
          nmt_plan_batch_tokens(&plan, &r->train, r->at.batch);
      if (mine)
        rc =
            nmt_plan_batch_part(&plan, &r->train, r->at.batch, first, mine, &b);
      seed_dropout(r);
      if (rc == 0)
        rc = train_step(r->m, r->opt, r->dp, r->params, r->n_params,
                        mine ? &b : NULL, batch_tokens, o, r->at.step + 1,
                        &loss);
      tokens += batch_tokens;
      nmt_batch_free(&b);
      if (rc < 0) {
        fprintf(stderr, "\ntranslate: step %lld failed: %s\n",
                (long long)r->at.step + 1, loom_last_error());
        break;
      }
      r->at.step++;
      step_seconds += app_now() - t0;
      recent += loss; /* the curve: means of 10 steps */
      if (r->at.step % 10 == 0) {
        shown = recent / 10;
        recent = 0;
        if (train_history_push(&r->h, (double)r->at.step, shown) < 0)
          rc = -1;
      }
      /* the budget is this invocation's wall clock (rank 0's, for all) */
      out_of_time = o->minutes > 0 && app_now() - run_start >= o->minutes * 60;
      if (o->minutes > 0 && r->dp &&
          loom_dist_broadcast_bytes(&out_of_time, sizeof out_of_time, 0) < 0)
        rc = -1;
      if (!o->quiet) {
        char text[128];
        double l = isnan(shown) ? loss : shown;
        snprintf(text, sizeof text,
                 "epoch %lld batch %lld/%lld  loss %.3f  ppl %.1f",
                 (long long)r->at.epoch + 1, (long long)r->at.batch + 1,
                 (long long)plan.n, l, exp(l));
        /* steps of this run, and how many it will take (the ETA) */
        int64_t done = r->at.step - first_step, total;
        if (o->minutes > 0)
          total = (int64_t)((double)done * o->minutes * 60 /
                            fmax(app_now() - run_start, 1e-3));
        else
          total = done + (o->epochs - r->at.epoch) * plan.n - r->at.batch - 1;
        app_progress_line(&pr, done, total > done ? total : done,
                          (double)tokens / fmax(step_seconds, 1e-9), "tok",
                          text, false);
      }
    }
    bool finished = r->at.batch == plan.n;
    double done = (double)r->at.epoch + (double)r->at.batch / per_epoch;
    nmt_plan_free(&plan);
    if (rc < 0)
      break;
    if (finished) {
      r->at.epoch++;
      r->at.batch = 0;
    }
    if (!o->quiet)
      app_progress_end(&pr);
    r->at.seconds += app_now() - start;
    start = app_now();
    if (validate(r, done, best_path) < 0 || save(r, o->checkpoint) < 0 ||
        plot(r, per_epoch) < 0)
      rc = -1;
  }
  if (!o->quiet && rc == 0 && r->at.step > first_step)
    fprintf(stderr,
            "trained %lld steps in %.0f s (%.0f target tokens/s while "
            "stepping); checkpoint %s%s%s\n",
            (long long)(r->at.step - first_step), r->at.seconds,
            (double)tokens / step_seconds, o->checkpoint,
            r->valid.n ? ", best " : "", r->valid.n ? best_path : "");
  return rc;
}

int translate_train_main(int argc, char **argv) {
  run r = {0};
  int p = train_parse(argc, argv, &r.o);
  if (p != 0)
    return p > 0 ? 0 : 2;
  int unwritable = train_check_writable(&r.o);
  if (unwritable)
    return unwritable;
  if (r.o.threads)
    loom_set_num_threads(r.o.threads);
  if (r.o.distributed) {
    if (loom_dist_init(&argc, &argv) < 0) {
      fprintf(stderr, "translate: %s\n", loom_last_error());
      return 1;
    }
    if (loom_dist_rank() != 0) { /* rank 0 speaks and draws for all */
      r.o.quiet = true;
      r.o.plot = "";
    }
  }
  char best_path[4096];
  if (snprintf(best_path, sizeof best_path, "%s.best", r.o.checkpoint) >=
      (int)sizeof best_path) {
    fprintf(stderr, "translate: the checkpoint path is too long\n");
    return 2;
  }
  int rc = prepare(&r) == 0 && train(&r, best_path) == 0 ? 0 : 1;
  run_free(&r);
  loom_cleanup();
  if (!r.o.distributed)
    return rc;
  if (rc != 0 && loom_dist_size() > 1)
    loom_dist_abort(rc); /* the other ranks may be waiting for this one */
  return loom_dist_finalize() < 0 ? 1 : rc;
}
