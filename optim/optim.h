/* loom optimizers, gradient clipping and learning-rate schedules.
 *
 * optim sees tensors and their gradients, never modules: an optimizer is
 * given an array of parameter tensors (it keeps a reference to each). Steps
 * run with recording off and update parameters in place, following
 * torch.optim's formulas operation for operation, so trajectories match.
 * Parameters without a gradient are skipped, as in PyTorch.
 */
#ifndef LOOM_OPTIM_H
#define LOOM_OPTIM_H

#include "../tensor/safetensors.h"
#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_optimizer loom_optimizer;

typedef struct loom_sgd_opts {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
} loom_sgd_opts;

typedef struct loom_adam_opts {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize;
} loom_adam_opts;

typedef struct loom_rmsprop_opts {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
} loom_rmsprop_opts;

typedef struct loom_adagrad_opts {
  double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
  bool maximize;
} loom_adagrad_opts;

/* PyTorch's defaults with the given learning rate; fields are then taken
 * literally (a zero is a zero). */
LOOM_API loom_sgd_opts loom_sgd_defaults(double lr);
LOOM_API loom_adam_opts loom_adam_defaults(double lr);  /* 0.9, 0.999, 1e-8 */
LOOM_API loom_adam_opts loom_adamw_defaults(double lr); /* and decay 1e-2 */
LOOM_API loom_rmsprop_opts loom_rmsprop_defaults(double lr); /* 0.99, 1e-8 */
LOOM_API loom_adagrad_opts loom_adagrad_defaults(double lr); /* eps 1e-10 */

/* Each returns a new optimizer over params[0..n) (caller frees), or NULL
 * with an error (non-float or non-leaf parameter, a parameter given twice,
 * bad hyper-parameter). */
LOOM_API loom_optimizer *loom_sgd_new(loom_tensor *const *params, int n,
                                      loom_sgd_opts opts);
/* Adam with L2 weight decay added to the gradient. */
LOOM_API loom_optimizer *loom_adam_new(loom_tensor *const *params, int n,
                                       loom_adam_opts opts);
/* AdamW: decoupled weight decay (param *= 1 - lr * weight_decay). */
LOOM_API loom_optimizer *loom_adamw_new(loom_tensor *const *params, int n,
                                        loom_adam_opts opts);
LOOM_API loom_optimizer *loom_rmsprop_new(loom_tensor *const *params, int n,
                                          loom_rmsprop_opts opts);
LOOM_API loom_optimizer *loom_adagrad_new(loom_tensor *const *params, int n,
                                          loom_adagrad_opts opts);
LOOM_API void loom_optimizer_free(loom_optimizer *opt);

/* One update of every parameter that has a gradient. 0 or -1. */
LOOM_API int loom_optimizer_step(loom_optimizer *opt);
/* Drops every parameter's gradient. */
LOOM_API void loom_optimizer_zero_grad(loom_optimizer *opt);
LOOM_API double loom_optimizer_lr(const loom_optimizer *opt);
/* 0, or -1 with LOOM_ERR_ARGUMENT (lr kept) for an lr that is not a finite
 * number >= 0, as the constructors refuse it. */
LOOM_API int loom_optimizer_set_lr(loom_optimizer *opt, double lr);
/* The learning rate the optimizer was created with (schedules scale it). */
LOOM_API double loom_optimizer_initial_lr(const loom_optimizer *opt);
LOOM_API const char *loom_optimizer_name(const loom_optimizer *opt);

/* Saves the optimizer's state (per-parameter buffers and step counts, the
 * current lr) into m under "<prefix>..." names; loading checks that names,
 * shapes and the optimizer kind match, and the lr and step counts' ranges,
 * before changing anything. 0 or -1. */
LOOM_API int loom_optimizer_save_state(const loom_optimizer *opt,
                                       loom_tensor_map *m, const char *prefix);
LOOM_API int loom_optimizer_load_state(loom_optimizer *opt,
                                       const loom_tensor_map *m,
                                       const char *prefix);

/* ---- gradient clipping ---- */

/* Scales all gradients so their joint p-norm is at most max_norm (p > 0,
 * or INFINITY; max_norm >= 0); parameters without a gradient are skipped,
 * a NULL in params is an error (as for the optimizers). Returns the norm
 * before clipping, or NaN with an error set and no gradient changed (NaN
 * too, with no error and nothing scaled, when a gradient holds NaN). */
LOOM_API double loom_clip_grad_norm(loom_tensor *const *params, int n,
                                    double max_norm, double p);
/* Clamps every gradient element to [-clip, clip] (a NULL in params, or a
 * clip that is not a number >= 0: an error, LOOM_ERR_ARGUMENT, nothing
 * clamped). */
LOOM_API void loom_clip_grad_value(loom_tensor *const *params, int n,
                                   double clip);

/* ---- learning-rate schedules ----
 * A schedule sets its optimizer's lr from the initial lr and the number of
 * loom_schedule_step calls so far (PyTorch's epoch counter). */

typedef enum loom_schedule_kind {
  LOOM_SCHEDULE_STEP,        /* lr * gamma^(epoch / step_size) */
  LOOM_SCHEDULE_MULTISTEP,   /* lr * gamma^(milestones passed) */
  LOOM_SCHEDULE_EXPONENTIAL, /* lr * gamma^epoch */
  LOOM_SCHEDULE_COSINE,      /* cosine from lr to eta_min over t_max */
  LOOM_SCHEDULE_LINEAR,      /* factor start_factor -> end_factor over
                                total_iters (linear warmup) */
  LOOM_SCHEDULE_NOAM,        /* lr * d_model^-0.5 * min(s^-0.5,
                                s * warmup^-1.5), s = epoch + 1 */
  LOOM_SCHEDULE_PLATEAU,     /* ReduceLROnPlateau */
} loom_schedule_kind;

typedef struct loom_schedule_opts {
  loom_schedule_kind kind;
  double gamma;           /* STEP, MULTISTEP, EXPONENTIAL */
  int64_t step_size;      /* STEP */
  int64_t milestones[16]; /* MULTISTEP, increasing */
  int n_milestones;
  int64_t t_max;                   /* COSINE */
  double eta_min;                  /* COSINE */
  double start_factor, end_factor; /* LINEAR */
  int64_t total_iters;             /* LINEAR */
  int64_t d_model, warmup;         /* NOAM */
  /* PLATEAU: reduce lr by `factor` after `patience` epochs without an
   * improvement beyond `threshold` (relative, or absolute when
   * threshold_abs), then wait `cooldown` epochs; never below min_lr;
   * changes smaller than eps are skipped; mode_max: higher is better. */
  double factor, threshold, min_lr, eps;
  int64_t patience, cooldown;
  bool threshold_abs, mode_max;
} loom_schedule_opts;

typedef struct loom_schedule loom_schedule;

/* PyTorch's defaults for a kind (gamma 0.1, start_factor 1/3, total_iters
 * 5, factor 0.1, patience 10, threshold 1e-4, eps 1e-8, ...). */
LOOM_API loom_schedule_opts loom_schedule_defaults(loom_schedule_kind kind);

/* A schedule driving opt (which must outlive it). Sets the epoch-0 lr.
 * Caller frees. NULL on a bad option (LOOM_ERR_ARGUMENT naming the rule
 * it breaks: gamma and eta_min finite, plateau's factor in (0, 1), ...),
 * or an epoch-0 lr that is not a finite number >= 0. */
LOOM_API loom_schedule *loom_schedule_new(loom_optimizer *opt,
                                          loom_schedule_opts opts);
LOOM_API void loom_schedule_free(loom_schedule *s);
/* Advances one epoch/step (metric is used by PLATEAU only) and sets the
 * optimizer's lr. Returns the new lr; NaN with LOOM_ERR_ARGUMENT, the
 * epoch and lr as they were, when the lr would not be a finite number >= 0
 * (a gamma above 1 overflows in time, a negative one changes sign). */
LOOM_API double loom_schedule_step(loom_schedule *s, double metric);
LOOM_API int64_t loom_schedule_epoch(const loom_schedule *s);
/* State for checkpoints (epoch and PLATEAU's counters, and the kind's
 * name: loading into a schedule of another kind fails with
 * LOOM_ERR_STATE). 0 or -1. */
LOOM_API int loom_schedule_save_state(const loom_schedule *s,
                                      loom_tensor_map *m, const char *prefix);
LOOM_API int loom_schedule_load_state(loom_schedule *s,
                                      const loom_tensor_map *m,
                                      const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
