/* Training: truncated backpropagation through time over `batch` parallel
 * streams of the text (the hidden state carries across chunks, detached),
 * a validation pass every --eval-every steps on the held-out tail,
 * checkpoints that resume exactly, and a PNG of the loss curves.
 *
 * With --distributed under mpirun, each of P ranks runs B/P of the streams
 * (its part of every global batch, loom_dist_shard) and the gradients are
 * averaged (loom_data_parallel), so the model trains as with all B
 * streams in one process; losses are averaged over the ranks, rank 0
 * alone prints, plots and writes checkpoints (with every rank's states
 * gathered), and every rank reads them back: a run may resume on another
 * number of ranks.
 *
 * The step itself is train_step(); charlm_train() is the loop around it. */
#define _POSIX_C_SOURCE 200809L
#include "charlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows b of x (T x count) and y come from stream first + b at offset pos,
 * of B equal slices of ids[0..n). */
static void fill_batch(const int64_t *ids, int64_t n, int64_t B, int64_t first,
                       int64_t count, int64_t T, int64_t pos, int64_t *x,
                       int64_t *y) {
  int64_t stream = n / B;
  for (int64_t b = 0; b < count; b++)
    for (int64_t t = 0; t < T; t++) {
      x[t * count + b] = ids[(first + b) * stream + pos + t];
      y[t * count + b] = ids[(first + b) * stream + pos + t + 1];
    }
}

/* One step of truncated backpropagation through time. The model reads the
 * chunk x (T, B) of ids from the carried states (`state`: its
 * charlm_n_states tensors of (layers, B, hidden), NULL at the streams'
 * start); the cross-entropy against the next characters y (T * B) is
 * backpropagated, the gradients are averaged over the ranks (dp; NULL
 * alone), their norm is clipped to `clip` (0: not clipped), and the
 * optimizer steps. The final states, detached, replace `state`, and *loss
 * is the mean loss in nats per character (over the ranks). 0, or -1 with
 * an error: an op or the communication failed, or the loss or the
 * gradient is not finite (the parameters are then left as they were, on
 * every rank alike). */
static int train_step(charlm *m, loom_optimizer *opt, loom_data_parallel *dp,
                      loom_tensor *const *params, int n_params, double clip,
                      const int64_t *x, const int64_t *y, int64_t T, int64_t B,
                      loom_tensor **state, double *loss) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(T, B));
  loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(T * B));
  loom_tensor *logits, *next[LOOM_RNN_MAX_STATES]; /* (T, B, V) */
  loom_optimizer_zero_grad(opt);
  loom_tensor *l = NULL;
  if (charlm_forward(m, xt, state[0] ? state : NULL, &logits, next) == 0)
    l = loom_cross_entropy(loom_reshape(logits, 2, (int64_t[]){T * B, -1}), yt,
                           NULL);
  *loss = l ? loom_item(l) : NAN;
  /* every rank sees the mean, so all stop together on a NaN */
  if (l && dp && loom_dist_all_reduce_values(loss, 1, LOOM_DIST_MEAN) < 0)
    l = NULL;
  int rc = -1;
  if (l && !isfinite(*loss)) {
    loom_set_error(LOOM_ERR_NUMERIC, "the loss is %g: training diverged",
                   *loss);
  } else if (l && loom_backward(l) == 0 &&
             (!dp || loom_data_parallel_wait(dp) == 0)) {
    double norm =
        loom_clip_grad_norm(params, n_params, clip > 0 ? clip : INFINITY, 2);
    if (!isfinite(norm))
      loom_set_error(LOOM_ERR_NUMERIC,
                     "the gradient's norm is %g: training diverged", norm);
    else if (loom_optimizer_step(opt) == 0)
      rc = 0;
  }
  for (int k = 0; rc == 0 && k < charlm_n_states(m); k++) {
    loom_release(state[k]); /* truncated BPTT: carry, detached */
    state[k] = loom_keep(loom_detach(next[k]));
  }
  loom_scope_end(s);
  return rc;
}

/* Mean loss in nats per character over ids[0..n) read as B streams (one
 * if the text is too short for B) in chunks of T, without gradients, in
 * evaluation mode; with several ranks (`distributed`), each reads its
 * part of the streams and the sums are added up. 0 with *loss, or -1 with
 * an error. */
static int evaluate(charlm *m, const int64_t *ids, int64_t n, int64_t T,
                    int64_t B, bool distributed, double *loss) {
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  int64_t stream = n / B;
  if (stream < 2) {
    B = 1;
    stream = n;
  }
  int64_t first = 0, mine = B;
  if (distributed)
    loom_dist_shard(B, &first, &mine);
  int ns = charlm_n_states(m);
  loom_tensor *state[LOOM_RNN_MAX_STATES] = {NULL};
  double total = 0;
  int64_t count = 0;
  int64_t *x = malloc((size_t)(T * mine + 1) * sizeof *x);
  int64_t *y = malloc((size_t)(T * mine + 1) * sizeof *y);
  int rc = x && y ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "charlm: out of memory");
  for (int64_t pos = 0; rc == 0 && mine && pos + 1 < stream; pos += T) {
    int64_t len = pos + T + 1 <= stream ? T : stream - pos - 1;
    loom_scope *s = loom_scope_begin();
    fill_batch(ids, n, B, first, mine, len, pos, x, y);
    loom_tensor *xt = loom_from_array(LOOM_I64, x, LOOM_SHAPE(len, mine));
    loom_tensor *yt = loom_from_array(LOOM_I64, y, LOOM_SHAPE(len * mine));
    loom_tensor *logits, *next[LOOM_RNN_MAX_STATES], *l = NULL;
    if (charlm_forward(m, xt, state[0] ? state : NULL, &logits, next) == 0)
      l = loom_cross_entropy(
          loom_reshape(logits, 2, (int64_t[]){len * mine, -1}), yt,
          &(loom_cross_entropy_opts){.reduction = LOOM_SUM,
                                     .ignore_index = -100});
    if (l) {
      total += loom_item(l);
      count += len * mine;
      for (int k = 0; k < ns; k++) {
        loom_release(state[k]);
        state[k] = loom_keep(next[k]);
      }
    } else {
      rc = -1;
    }
    loom_scope_end(s);
  }
  for (int k = 0; k < ns; k++)
    loom_release(state[k]);
  free(x);
  free(y);
  loom_no_grad_end();
  loom_module_train(&m->base, true);
  double sums[2] = {total, (double)count};
  if (rc == 0 && distributed &&
      loom_dist_all_reduce_values(sums, 2, LOOM_DIST_SUM) < 0)
    rc = -1;
  *loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
  return rc;
}

/* ---- a training run ---- */

typedef struct {
  const charlm_options *o; /* &opts */
  charlm_options opts;     /* quiet and without a plot on ranks but 0 */
  corpus text;             /* training part, then the validation tail */
  int64_t n_train, n_val;
  int64_t T, B, stream, total; /* stream: characters per stream */
  int64_t first, local; /* this rank's streams: first .. first + local - 1 */
  charlm *m;
  loom_data_parallel *dp; /* with --distributed */
  loom_optimizer *opt;
  loom_tensor *params[64];
  int n_params;
  int64_t step;
  charlm_session s; /* config, vocabulary, position, states, history */
  int64_t *x, *y;   /* this rank's part of a batch of ids, (T, local) */
  char best_path[4096];
  double smooth, rate; /* smoothed training loss; characters per second */
  app_progress bar;
  /* The latest write of the file failed: the run ends with status 1. */
  bool unsaved, unsaved_best, unplotted;
} run;

/* Reports the pending error as "charlm: WHAT: MESSAGE" on its own line
 * and clears it. */
static void fail(run *r, const char *what) {
  if (!r->o->quiet)
    app_progress_end(&r->bar);
  fprintf(stderr, "charlm: %s: %s\n", what, loom_last_error());
  loom_clear_error();
}

/* Writes the checkpoint to path; *failed says whether this write failed
 * (a later one that succeeds clears it). With several ranks, every rank
 * gives its streams' states and rank 0 writes them all. */
static void save(run *r, const char *path, bool *failed) {
  charlm_session whole = r->s; /* the states of all B streams */
  loom_scope *scope = loom_scope_begin();
  *failed = false;
  for (int k = 0; r->dp && k < r->s.n_states; k++)
    if (r->s.state[k] &&
        !(whole.state[k] = loom_dist_all_gather(r->s.state[k], 1)))
      *failed = true;
  if (!*failed && loom_dist_rank() == 0)
    *failed = charlm_checkpoint_save(path, r->m, r->opt, r->step, &whole) < 0;
  loom_scope_end(scope);
  if (*failed) {
    if (!r->o->quiet)
      app_progress_end(&r->bar);
    app_report_write_error("charlm", path);
  }
}

/* A resumed session's states (layers, B, hidden) cut to this rank's
 * streams. */
static int take_my_states(run *r) {
  for (int k = 0; k < r->s.n_states && r->local < r->B; k++) {
    loom_tensor *mine = loom_keep(
        loom_clone(loom_narrow(r->s.state[k], 1, r->first, r->local)));
    if (!mine)
      return -1;
    loom_release(r->s.state[k]);
    r->s.state[k] = mine;
  }
  return 0;
}

/* Back to the start of every stream (a new epoch), from zero states. */
static void restart_streams(charlm_session *s) {
  s->position = 0;
  for (int k = 0; k < s->n_states; k++) {
    loom_release(s->state[k]);
    s->state[k] = NULL;
  }
}

/* Total steps of --steps, or of --epochs over steps_per_epoch; -1 after
 * saying why there is no such count. */
static int64_t total_steps(const charlm_options *o, int64_t per_epoch) {
  if (!(o->epochs > 0))
    return o->steps;
  double steps = o->epochs * (double)per_epoch;
  if (steps >= 1 && steps <= (double)CHARLM_MAX_COUNT)
    return (int64_t)steps;
  fprintf(stderr,
          "charlm: --epochs %g is %.0f steps of %lld per epoch, not 1 to "
          "10^12\n",
          o->epochs, floor(steps), (long long)per_epoch);
  return -1;
}

/* Builds everything a run needs: the text, the model, the optimizer, the
 * batch buffers, and with --resume the checkpoint's state. 0, or -1 after
 * saying why. */
static int setup(run *r, const charlm_options *o) {
  *r = (run){.opts = *o, .T = o->seq, .B = o->batch, .smooth = NAN};
  r->o = &r->opts;
  if (loom_dist_rank() != 0) { /* rank 0 speaks for all */
    r->opts.quiet = true;
    r->opts.plot = "";
  }
  o = r->o;
  app_progress_begin(&r->bar);
  if (snprintf(r->best_path, sizeof r->best_path, "%s.best", o->checkpoint) >=
      (int)sizeof r->best_path) {
    fprintf(stderr, "charlm: checkpoint path too long\n");
    return -1;
  }
  if (corpus_load(&r->text, o->data, (size_t)o->corpus_bytes) < 0)
    return -1;
  int64_t n = (int64_t)r->text.len;
  r->n_val = (int64_t)(o->val_fraction * (double)n);
  r->n_train = n - r->n_val;
  r->stream = r->n_train / r->B;
  if (r->n_val < 2) {
    fprintf(stderr,
            "charlm: --val-fraction %.3g of %lld characters holds out %lld for "
            "validation; it needs at least 2\n",
            o->val_fraction, (long long)n, (long long)r->n_val);
    return -1;
  }
  if (r->stream < r->T + 2) {
    fprintf(stderr,
            "charlm: %lld characters (%lld after the validation part) is too "
            "little text for batch %lld x seq %lld\n",
            (long long)n, (long long)r->n_train, (long long)r->B,
            (long long)r->T);
    return -1;
  }
  r->total = total_steps(o, (r->stream - 1) / r->T);
  if (r->total < 0)
    return -1;
  r->local = r->B;
  if (o->distributed && (r->B % loom_dist_size() ||
                         loom_dist_shard(r->B, &r->first, &r->local) < 0)) {
    if (loom_dist_rank() == 0) { /* the same on every rank: said once */
      fprintf(stderr,
              "charlm: --batch %lld is not a multiple of the %d ranks: each "
              "rank runs an equal part of the streams\n",
              (long long)r->B, loom_dist_size());
      fflush(stderr);
    }
    /* Every rank refuses, and main ends the job with MPI_Abort, which kills
     * all ranks: a rank that got there first could kill rank 0 before it
     * had printed the message (lost now and then under load). So the
     * others wait here until rank 0 has said it. */
    loom_dist_barrier();
    return -1;
  }
  charlm_config cfg = o->model;
  cfg.vocab = r->text.vocab;
  cfg.context = o->seq; /* the transformer attends within a chunk */
  r->m = charlm_new(&cfg, (uint64_t)o->seed);
  r->n_params = r->m ? loom_module_parameters(&r->m->base, r->params, 64) : 0;
  r->opt = r->m && r->n_params <= 64 ? loom_adam_new(r->params, r->n_params,
                                                     loom_adam_defaults(o->lr))
                                     : NULL;
  /* with --distributed: the same model on every rank (rank 0's values) */
  if (r->opt && o->distributed)
    r->dp = loom_data_parallel_new(&r->m->base, NULL);
  r->x = malloc((size_t)(r->T * r->local) * sizeof *r->x);
  r->y = malloc((size_t)(r->T * r->local) * sizeof *r->y);
  if (!r->opt || (o->distributed && !r->dp) || !r->x || !r->y) {
    fprintf(stderr, "charlm: %s\n",
            loom_last_status() ? loom_last_error() : "out of memory");
    loom_clear_error();
    return -1;
  }
  /* the session: the model's own settings filled in */
  r->s = (charlm_session){.cfg = r->m->cfg,
                          .vocab = r->text.vocab,
                          .n_states = charlm_n_states(r->m)};
  memcpy(r->s.chars, r->text.chars, sizeof r->s.chars);
  if (o->resume) {
    if (charlm_checkpoint_resume(o->checkpoint, r->m, r->opt, &r->step, &r->s) <
        0) {
      fprintf(stderr, "charlm: cannot resume from %s: %s\n", o->checkpoint,
              loom_last_error());
      loom_clear_error();
      return -1;
    }
    /* states of another batch size belong to other streams: start anew */
    if (r->s.state[0] && loom_size(r->s.state[0], 1) != r->B)
      restart_streams(&r->s);
    if (r->s.state[0] && take_my_states(r) < 0) {
      fprintf(stderr, "charlm: %s\n", loom_last_error());
      return -1;
    }
    if (loom_dist_rank() == 0)
      fprintf(stderr, "resumed from %s at step %lld\n", o->checkpoint,
              (long long)r->step);
    /* a new dropout is allowed (fine-tuning often changes it), said */
    if (loom_dist_rank() == 0 && r->s.resumed_dropout != r->m->cfg.dropout)
      fprintf(stderr,
              "charlm: note: --dropout %g, the checkpoint was trained with "
              "%g: training goes on with %g (not as the run would have)\n",
              r->m->cfg.dropout, r->s.resumed_dropout, r->m->cfg.dropout);
  }
  return 0;
}

/* The validation loss now, printed and added to the history; the
 * checkpoint FILE.best when it is the best so far (over this run and the
 * one it resumed: past the best step a long run overfits a small text).
 * 0, or -1 after saying why (a failed pass, or a loss not finite). */
static int validate(run *r) {
  double v;
  charlm_history *h = &r->s.history;
  if (evaluate(r->m, r->text.ids + r->n_train, r->n_val, r->T, r->B,
               r->dp != NULL, &v) == 0 &&
      !isfinite(v))
    loom_set_error(LOOM_ERR_NUMERIC,
                   "the validation loss is %g: training diverged", v);
  bool best = true;
  for (int64_t i = 0; i < h->n_val; i++)
    best &= v < h->val[i];
  if (loom_last_status() ||
      charlm_history_add(h, true, (double)r->step, v) < 0) {
    char what[64];
    snprintf(what, sizeof what, "validation at step %lld failed",
             (long long)r->step);
    fail(r, what);
    return -1;
  }
  if (best)
    save(r, r->best_path, &r->unsaved_best);
  if (!r->o->quiet) {
    app_progress_end(&r->bar);
    fprintf(stderr,
            "step %lld: validation %.4f nats/char, %.4f "
            "bits/char (train %.4f)\n",
            (long long)r->step, v, v / log(2), r->smooth);
  }
  return 0;
}

/* The loss curves in bits per character; 0, or -1 after saying so. */
static int plot(const run *r) {
  const charlm_options *o = r->o;
  const charlm_history *h = &r->s.history;
  if (!o->plot || !*o->plot)
    return 0; /* drawn with no points too: the user asked for the file */
  int n = h->n > INT32_MAX ? INT32_MAX : (int)h->n;
  int n_val = h->n_val > INT32_MAX ? INT32_MAX : (int)h->n_val;
  double *tb = malloc((size_t)(n + 1) * sizeof *tb);
  double *vb = malloc((size_t)(n_val + 1) * sizeof *vb);
  int rc = -1;
  if (tb && vb) {
    for (int i = 0; i < n; i++)
      tb[i] = h->train[i] / log(2);
    for (int i = 0; i < n_val; i++)
      vb[i] = h->val[i] / log(2);
    app_series s[2] = {{"train", h->step, tb, n, 0x1f77b4},
                       {"validation", h->val_step, vb, n_val, 0xd62728}};
    rc = app_plot_png(o->plot, "charlm loss", "step", "bits/char", s,
                      n_val ? 2 : 1, 800, 480);
  }
  free(tb);
  free(vb);
  if (rc < 0)
    app_report_write_error("charlm", o->plot);
  else if (!o->quiet)
    fprintf(stderr, "loss curves: %s\n", o->plot);
  return rc;
}

static void summary(const run *r) {
  const charlm_history *h = &r->s.history;
  if (r->o->quiet || !h->n_val)
    return;
  int64_t b = 0;
  for (int64_t i = 1; i < h->n_val; i++)
    b = h->val[i] < h->val[b] ? i : b;
  fprintf(stderr,
          "done: %lld steps, %.0f chars/s while training, "
          "validation %.4f bits/char (unigram %.3f), checkpoint %s; "
          "best validation %.4f nats/char (%.4f bits/char) at step %lld, "
          "in %s\n",
          (long long)r->step, r->rate, h->val[h->n_val - 1] / log(2),
          corpus_unigram_bits(&r->text), r->o->checkpoint, h->val[b],
          h->val[b] / log(2), (long long)h->val_step[b], r->best_path);
}

static void teardown(run *r) {
  loom_data_parallel_free(r->dp);
  charlm_session_free(&r->s);
  free(r->x);
  free(r->y);
  loom_optimizer_free(r->opt);
  charlm_free(r->m);
  corpus_free(&r->text);
}

static void introduce(const run *r) {
  const charlm_options *o = r->o;
  const charlm_config *cfg = &r->m->cfg;
  if (o->quiet)
    return;
  char steps[64], minutes[32];
  if (o->minutes > 0) { /* the budget, not a step count */
    app_duration(o->minutes * 60, minutes, sizeof minutes);
    snprintf(steps, sizeof steps, "%s (at least one step)",
             o->minutes * 60 < 1 ? "under a second" : minutes);
  } else
    snprintf(steps, sizeof steps, "%lld steps", (long long)r->total);
  fprintf(stderr,
          "charlm: %s%s, %lld characters (%d distinct), unigram entropy "
          "%.3f bits/char\nmodel: %s, %lld layers, hidden %lld, embed "
          "%lld: %lld parameters; %s of %lld x %lld characters\n",
          o->data ? "" : "built-in corpus", o->data ? o->data : "",
          (long long)r->text.len, r->text.vocab, corpus_unigram_bits(&r->text),
          cfg->cell, (long long)cfg->layers, (long long)cfg->hidden,
          (long long)cfg->embed,
          (long long)loom_module_num_elements(&r->m->base), steps,
          (long long)r->B, (long long)r->T);
}

/* Whether the run is over: --minutes spent (as rank 0's clock says, so
 * that all ranks stop at the same step; but one step at least, which a
 * budget shorter than a step would not give) or --steps done. */
static bool finished(const run *r, double t0, int64_t first) {
  if (!(r->o->minutes > 0))
    return r->step >= r->total;
  if (r->step == first)
    return false;
  double over = app_now() - t0 >= r->o->minutes * 60;
  if (r->dp && loom_dist_broadcast_bytes(&over, sizeof over, 0) < 0)
    return true; /* the next collective reports it */
  return over;
}

/* Dropout masks drawn per rank and step, from the seed alone, so a run
 * resumed on as many ranks goes on as it would have. */
static void seed_dropout(const run *r) {
  if (r->dp && r->m->cfg.dropout > 0)
    loom_rng_seed(r->m->rng,
                  (uint64_t)r->o->seed ^
                      (0x9E3779B97F4A7C15ull * (uint64_t)(r->step + 1)) ^
                      ((uint64_t)loom_dist_rank() << 48));
}

int charlm_train(const charlm_options *options) {
  run r;
  int rc = setup(&r, options) < 0 ? 1 : 0;
  const charlm_options *o = r.o;
  if (rc == 0)
    introduce(&r);
  double t0 = app_now(), seconds = 0;
  int64_t first = r.step, T = r.T, B = r.B;
  bool done = rc == 0 && finished(&r, t0, first);
  while (rc == 0 && !done) {
    if (r.s.position + T + 1 > r.stream) /* a new epoch */
      restart_streams(&r.s);
    double started = app_now(), loss;
    fill_batch(r.text.ids, r.n_train, B, r.first, r.local, T, r.s.position, r.x,
               r.y);
    seed_dropout(&r);
    if (train_step(r.m, r.opt, r.dp, r.params, r.n_params, o->clip, r.x, r.y, T,
                   r.local, r.s.state, &loss) < 0) {
      char what[64];
      snprintf(what, sizeof what, "step %lld failed", (long long)r.step);
      fail(&r, what);
      rc = 1;
      break;
    }
    r.s.position += T;
    r.step++;
    seconds += app_now() - started; /* training only, not validation */
    r.rate = (double)((r.step - first) * T * B) / seconds;
    r.smooth = isnan(r.smooth) ? loss : 0.98 * r.smooth + 0.02 * loss;
    if ((r.step % 10 == 0 || r.step == 1) &&
        charlm_history_add(&r.s.history, false, (double)r.step, r.smooth) < 0) {
      fail(&r, "history");
      rc = 1;
      break;
    }
    if (!o->quiet) {
      char text[96];
      snprintf(text, sizeof text, "loss %.3f nats (%.3f bits/char)", r.smooth,
               r.smooth / log(2));
      app_progress_line(&r.bar, r.step, o->minutes > 0 ? 0 : r.total, r.rate,
                        "chars", text, false);
    }
    done = finished(&r, t0, first);
    if ((r.step % o->eval_every == 0 || done) && validate(&r) < 0) {
      rc = 1;
      break;
    }
    if (r.step % o->save_every == 0 || done)
      save(&r, o->checkpoint, &r.unsaved);
  }
  if (!o->quiet)
    app_progress_end(&r.bar);
  if (rc == 0 && r.step == first)
    save(&r, o->checkpoint, &r.unsaved);
  r.unplotted = plot(&r) < 0;
  if (rc == 0)
    summary(&r);
  teardown(&r);
  return rc || r.unsaved || r.unsaved_best || r.unplotted ? 1 : 0;
}
