/* Learning-rate schedules in closed form of the epoch counter (the values
 * PyTorch's chained updates produce, without their rounding drift). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

struct loom_schedule {
  loom_optimizer *opt;
  loom_schedule_opts o;
  double base;
  int64_t epoch;
  /* plateau */
  double best;
  int64_t bad_epochs, cooldown_left;
};

loom_schedule_opts loom_schedule_defaults(loom_schedule_kind kind) {
  return (loom_schedule_opts){.kind = kind,
                              .gamma = 0.1,
                              .step_size = 1,
                              .t_max = 1,
                              .start_factor = 1.0 / 3,
                              .end_factor = 1,
                              .total_iters = 5,
                              .d_model = 512,
                              .warmup = 4000,
                              .factor = 0.1,
                              .threshold = 1e-4,
                              .eps = 1e-8,
                              .patience = 10};
}

static double lr_at(const loom_schedule *s, int64_t e) {
  const loom_schedule_opts *o = &s->o;
  switch (o->kind) {
  case LOOM_SCHEDULE_STEP:
    return s->base * pow(o->gamma, (double)(e / o->step_size));
  case LOOM_SCHEDULE_MULTISTEP: {
    int passed = 0;
    for (int i = 0; i < o->n_milestones; i++)
      passed += e >= o->milestones[i];
    return s->base * pow(o->gamma, passed);
  }
  case LOOM_SCHEDULE_EXPONENTIAL:
    return s->base * pow(o->gamma, (double)e);
  case LOOM_SCHEDULE_COSINE:
    return o->eta_min + (s->base - o->eta_min) *
                            (1 + cos(PI * (double)e / (double)o->t_max)) / 2;
  case LOOM_SCHEDULE_LINEAR: {
    double t = e < o->total_iters ? (double)e : (double)o->total_iters;
    return s->base * (o->start_factor + (o->end_factor - o->start_factor) * t /
                                            (double)o->total_iters);
  }
  case LOOM_SCHEDULE_NOAM: {
    double step = (double)(e + 1);
    double a = 1 / sqrt(step), b = step * pow((double)o->warmup, -1.5);
    return s->base / sqrt((double)o->d_model) * (a < b ? a : b);
  }
  case LOOM_SCHEDULE_PLATEAU:
    return loom_optimizer_lr(s->opt);
  }
  return s->base;
}

/* Sets the optimizer's lr to the schedule's lr for an epoch, or fails
 * naming the epoch (a gamma above 1 reaches inf in time; the optimizer
 * takes only a finite lr >= 0), the optimizer's lr unchanged. */
static int set_lr(loom_schedule *s, double lr, int64_t epoch, const char *op) {
  if (loom_optimizer_set_lr(s->opt, lr) == 0)
    return 0;
  loom_clear_error(); /* said again with the schedule's epoch */
  loom_set_error(LOOM_ERR_ARGUMENT,
                 "%s: the lr at epoch %lld would be %g (a finite number >= 0)",
                 op, (long long)epoch, lr);
  return -1;
}

loom_schedule *loom_schedule_new(loom_optimizer *opt, loom_schedule_opts o) {
  if (!opt)
    return loom_null_argument("schedule_new");
  const char *rule = NULL; /* the rule o breaks, if it breaks one */
  switch (o.kind) {
  /* a NaN (or infinite) gamma or eta_min was taken, and the lr became NaN
   * at the first step */
  case LOOM_SCHEDULE_STEP:
    if (!(o.step_size > 0 && isfinite(o.gamma)))
      rule = "step: step_size > 0, gamma finite";
    break;
  case LOOM_SCHEDULE_MULTISTEP: {
    bool ok = o.n_milestones >= 0 && o.n_milestones <= 16 && isfinite(o.gamma);
    for (int i = 1; ok && i < o.n_milestones; i++)
      ok = o.milestones[i] > o.milestones[i - 1];
    if (!ok)
      rule = "multistep: 0 to 16 milestones, each after the one before, "
             "gamma finite";
    break;
  }
  case LOOM_SCHEDULE_COSINE:
    if (!(o.t_max > 0 && isfinite(o.eta_min)))
      rule = "cosine: t_max > 0, eta_min finite";
    break;
  case LOOM_SCHEDULE_LINEAR:
    if (!(o.total_iters > 0 && o.start_factor > 0 && o.start_factor <= 1 &&
          o.end_factor >= 0 && o.end_factor <= 1))
      rule = "linear: total_iters > 0, start_factor in (0, 1], end_factor "
             "in [0, 1]";
    break;
  case LOOM_SCHEDULE_NOAM:
    if (!(o.d_model > 0 && o.warmup > 0))
      rule = "noam: d_model > 0 and warmup > 0";
    break;
  case LOOM_SCHEDULE_PLATEAU:
    if (!(o.factor > 0 && o.factor < 1 && o.patience >= 0 && o.cooldown >= 0 &&
          isfinite(o.min_lr) && o.min_lr >= 0))
      rule = "plateau: factor in (0, 1), patience and cooldown >= 0, min_lr "
             "finite and >= 0";
    break;
  case LOOM_SCHEDULE_EXPONENTIAL:
    if (!isfinite(o.gamma))
      rule = "exponential: gamma finite";
    break;
  default:
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "schedule_new: unknown kind %d",
                     (int)o.kind);
  }
  if (rule)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "schedule_new: options outside %s",
                     rule);
  loom_schedule *s = calloc(1, sizeof *s);
  if (!s)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "schedule_new: out of memory");
  s->opt = opt;
  s->o = o;
  s->base = loom_optimizer_initial_lr(opt);
  s->best = o.mode_max ? -INFINITY : INFINITY;
  if (set_lr(s, lr_at(s, 0), 0, "schedule_new") < 0) {
    free(s);
    return NULL;
  }
  return s;
}

void loom_schedule_free(loom_schedule *s) { free(s); }

int64_t loom_schedule_epoch(const loom_schedule *s) {
  return s ? s->epoch : (loom_null_argument("schedule_epoch"), -1);
}

static bool better(const loom_schedule *s, double a) {
  const loom_schedule_opts *o = &s->o;
  if (o->mode_max)
    return o->threshold_abs ? a > s->best + o->threshold
                            : a > s->best * (1 + o->threshold);
  return o->threshold_abs ? a < s->best - o->threshold
                          : a < s->best * (1 - o->threshold);
}

double loom_schedule_step(loom_schedule *s, double metric) {
  if (!s)
    return loom_null_argument("schedule_step"), NAN;
  if (s->o.kind != LOOM_SCHEDULE_PLATEAU) {
    if (set_lr(s, lr_at(s, s->epoch + 1), s->epoch + 1, "schedule_step") < 0)
      return NAN; /* the epoch not counted */
    s->epoch++;
    return loom_optimizer_lr(s->opt);
  }
  s->epoch++;
  if (better(s, metric)) {
    s->best = metric;
    s->bad_epochs = 0;
  } else {
    s->bad_epochs++;
  }
  if (s->cooldown_left > 0) {
    s->cooldown_left--;
    s->bad_epochs = 0;
  }
  if (s->bad_epochs > s->o.patience) {
    double old = loom_optimizer_lr(s->opt);
    double lr =
        old * s->o.factor > s->o.min_lr ? old * s->o.factor : s->o.min_lr;
    if (old - lr > s->o.eps && set_lr(s, lr, s->epoch, "schedule_step") < 0)
      return NAN;
    s->cooldown_left = s->o.cooldown;
    s->bad_epochs = 0;
  }
  return loom_optimizer_lr(s->opt);
}

/* A schedule's state names its kind: the counters of one kind mean
 * nothing to another (a plateau's best loss as a cosine's). */
static const char *const kind_names[] = {
    [LOOM_SCHEDULE_STEP] = "step",
    [LOOM_SCHEDULE_MULTISTEP] = "multistep",
    [LOOM_SCHEDULE_EXPONENTIAL] = "exponential",
    [LOOM_SCHEDULE_COSINE] = "cosine",
    [LOOM_SCHEDULE_LINEAR] = "linear",
    [LOOM_SCHEDULE_NOAM] = "noam",
    [LOOM_SCHEDULE_PLATEAU] = "plateau"};

int loom_schedule_save_state(const loom_schedule *s, loom_tensor_map *m,
                             const char *prefix) {
  if (!s || !m)
    return loom_null_argument("schedule_save_state"), -1;
  char k[256];
  double v[4] = {(double)s->epoch, s->best, (double)s->bad_epochs,
                 (double)s->cooldown_left};
  loom_scope *sc = loom_scope_begin();
  snprintf(k, sizeof k, "%sschedule", prefix ? prefix : "");
  int rc =
      loom_tensor_map_set(m, k, loom_from_array(LOOM_F64, v, LOOM_SHAPE(4)));
  snprintf(k, sizeof k, "%sschedule_kind", prefix ? prefix : "");
  rc = rc < 0 ? rc : loom_tensor_map_set_meta(m, k, kind_names[s->o.kind]);
  loom_scope_end(sc);
  return rc;
}

int loom_schedule_load_state(loom_schedule *s, const loom_tensor_map *m,
                             const char *prefix) {
  if (!s || !m)
    return loom_null_argument("schedule_load_state"), -1;
  char k[256];
  /* states saved before the kind was named load as before */
  snprintf(k, sizeof k, "%sschedule_kind", prefix ? prefix : "");
  const char *kind = loom_tensor_map_meta(m, k);
  if (kind && strcmp(kind, kind_names[s->o.kind]) != 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "schedule_load_state: state is for a %s schedule, this "
                   "one is %s",
                   kind, kind_names[s->o.kind]);
    return -1;
  }
  snprintf(k, sizeof k, "%sschedule", prefix ? prefix : "");
  loom_tensor *t = loom_tensor_map_get(m, k);
  if (!t || loom_dtype_of(t) != LOOM_F64 || loom_numel(t) != 4) {
    loom_set_error(LOOM_ERR_STATE,
                   "schedule_load_state: no '%s' of 4 "
                   "float64 values",
                   k);
    return -1;
  }
  const double *v = loom_data_f64(t);
  /* the counters are whole numbers a double holds exactly */
  for (int i = 0; i < 4; i++)
    if (i != 1 && !(v[i] >= 0 && v[i] <= 0x1p53 && v[i] == floor(v[i]))) {
      loom_set_error(LOOM_ERR_STATE,
                     "schedule_load_state: '%s' value %d is %g, not a "
                     "count",
                     k, i, v[i]);
      return -1;
    }
  int64_t epoch = (int64_t)v[0];
  if (s->o.kind != LOOM_SCHEDULE_PLATEAU &&
      set_lr(s, lr_at(s, epoch), epoch, "schedule_load_state") < 0)
    return -1;
  s->epoch = epoch;
  s->best = v[1];
  s->bad_epochs = (int64_t)v[2];
  s->cooldown_left = (int64_t)v[3];
  return 0;
}
