/* SGD, Adam, AdamW, RMSprop and Adagrad as fused loops over each
 * parameter. The arithmetic mirrors torch.optim's single-tensor code step
 * for step, in the parameter's dtype: scalars are rounded to that dtype the
 * way PyTorch's CPU kernels round them, an `add_(x, alpha=a)` is
 * fma(x, a, self), and an `addcmul_(x, y, value=c)` is fma(c * x, y, self):
 * PyTorch's kernels write `self + c * x * y`, which its compiler contracts
 * into one fused multiply-add, in the vector loop and in the scalar one
 * that takes short tensors and tails alike (checked bit for bit against
 * torch 1.13's float32 steps in tests/test_optim_parity.c). */
#include "optim.h"

#include "../autograd/autograd.h"
#include "../tensor/kernels.h"

#include <math.h>
#include <stdlib.h>

typedef enum { SGD, ADAM, ADAMW, RMSPROP, ADAGRAD } kind;

#define MAX_BUFS 3

struct loom_optimizer {
  kind k;
  int n;
  loom_tensor **params;
  loom_tensor **bufs[MAX_BUFS]; /* per parameter state, allocated lazily */
  int64_t *steps;
  double lr, initial_lr;
  union {
    loom_sgd_opts sgd;
    loom_adam_opts adam;
    loom_rmsprop_opts rms;
    loom_adagrad_opts ada;
  } o;
};

static const char *const names[] = {"sgd", "adam", "adamw", "rmsprop",
                                    "adagrad"};
/* Names of each kind's state buffers, as in PyTorch's state dict. */
static const char *const buf_names[][MAX_BUFS] = {
    [SGD] = {"momentum_buffer"},
    [ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [ADAGRAD] = {"sum"},
};

loom_sgd_opts loom_sgd_defaults(double lr) { return (loom_sgd_opts){.lr = lr}; }
loom_adam_opts loom_adam_defaults(double lr) {
  return (loom_adam_opts){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}
loom_adam_opts loom_adamw_defaults(double lr) {
  loom_adam_opts o = loom_adam_defaults(lr);
  o.weight_decay = 1e-2;
  return o;
}
loom_rmsprop_opts loom_rmsprop_defaults(double lr) {
  return (loom_rmsprop_opts){.lr = lr, .alpha = 0.99, .eps = 1e-8};
}
loom_adagrad_opts loom_adagrad_defaults(double lr) {
  return (loom_adagrad_opts){.lr = lr, .eps = 1e-10};
}

static bool valid_lr(double lr) { return isfinite(lr) && lr >= 0; }

static loom_optimizer *create(kind k, loom_tensor *const *params, int n,
                              double lr) {
  if (!params && n > 0)
    return loom_null_argument(names[k]);
  if (n < 0)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s: %d parameters", names[k], n);
  if (!valid_lr(lr))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: learning rate %g (a finite number >= 0)", names[k],
                     lr);
  for (int i = 0; i < n; i++) {
    if (!params[i]) {
      loom_set_error(LOOM_ERR_ARGUMENT, "%s: parameter %d is NULL", names[k],
                     i);
      return NULL;
    }
    /* stepped twice a step otherwise (PyTorch warns, then refuses) */
    for (int j = 0; j < i; j++)
      if (params[j] == params[i])
        return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                         "%s: parameter %d is parameter %d again", names[k], i,
                         j);
    if (!loom_dtype_is_float(params[i]->dtype) || !loom_is_leaf(params[i]) ||
        !loom__is_contiguous(params[i]))
      return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                       "%s: parameter %d (%s %s) must be a "
                       "contiguous float leaf tensor",
                       names[k], i, loom_dtype_name(params[i]->dtype),
                       loom_shape_text(params[i]));
  }
  loom_optimizer *o = calloc(1, sizeof *o);
  if (!o)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory", names[k]);
  o->k = k;
  o->n = n;
  o->lr = o->initial_lr = lr;
  o->params = calloc((size_t)n + 1, sizeof *o->params);
  o->steps = calloc((size_t)n + 1, sizeof *o->steps);
  bool ok = o->params && o->steps;
  for (int b = 0; b < MAX_BUFS; b++) {
    o->bufs[b] = calloc((size_t)n + 1, sizeof *o->bufs[b]);
    ok = ok && o->bufs[b];
  }
  if (!ok) {
    loom_optimizer_free(o);
    return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory", names[k]);
  }
  for (int i = 0; i < n; i++)
    o->params[i] = loom_keep(params[i]);
  return o;
}

void loom_optimizer_free(loom_optimizer *o) {
  if (!o)
    return;
  for (int i = 0; i < o->n; i++) {
    if (o->params)
      loom_release(o->params[i]);
    for (int b = 0; b < MAX_BUFS; b++)
      if (o->bufs[b])
        loom_release(o->bufs[b][i]);
  }
  for (int b = 0; b < MAX_BUFS; b++)
    free(o->bufs[b]);
  free(o->params);
  free(o->steps);
  free(o);
}

#define CHECK_NONNEG(cond, what)                                               \
  if (!(cond))                                                                 \
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "%s", what);

loom_optimizer *loom_sgd_new(loom_tensor *const *params, int n,
                             loom_sgd_opts opts) {
  CHECK_NONNEG(opts.momentum >= 0, "sgd: momentum < 0");
  CHECK_NONNEG(opts.weight_decay >= 0, "sgd: weight_decay < 0");
  CHECK_NONNEG(!opts.nesterov || (opts.momentum > 0 && opts.dampening == 0),
               "sgd: nesterov needs momentum and zero dampening");
  loom_optimizer *o = create(SGD, params, n, opts.lr);
  if (o)
    o->o.sgd = opts;
  return o;
}

static loom_optimizer *adam_like(kind k, loom_tensor *const *params, int n,
                                 loom_adam_opts opts) {
  CHECK_NONNEG(opts.beta1 >= 0 && opts.beta1 < 1 && opts.beta2 >= 0 &&
                   opts.beta2 < 1,
               "adam: betas must be in [0, 1)");
  CHECK_NONNEG(opts.eps >= 0 && opts.weight_decay >= 0,
               "adam: eps and weight_decay must be >= 0");
  loom_optimizer *o = create(k, params, n, opts.lr);
  if (o)
    o->o.adam = opts;
  return o;
}

loom_optimizer *loom_adam_new(loom_tensor *const *params, int n,
                              loom_adam_opts opts) {
  return adam_like(ADAM, params, n, opts);
}

loom_optimizer *loom_adamw_new(loom_tensor *const *params, int n,
                               loom_adam_opts opts) {
  return adam_like(ADAMW, params, n, opts);
}

loom_optimizer *loom_rmsprop_new(loom_tensor *const *params, int n,
                                 loom_rmsprop_opts opts) {
  CHECK_NONNEG(opts.alpha >= 0 && opts.eps >= 0 && opts.momentum >= 0 &&
                   opts.weight_decay >= 0,
               "rmsprop: alpha, eps, momentum, weight_decay must be >= 0");
  loom_optimizer *o = create(RMSPROP, params, n, opts.lr);
  if (o)
    o->o.rms = opts;
  return o;
}

loom_optimizer *loom_adagrad_new(loom_tensor *const *params, int n,
                                 loom_adagrad_opts opts) {
  CHECK_NONNEG(opts.lr_decay >= 0 && opts.weight_decay >= 0 &&
                   opts.initial_accumulator_value >= 0 && opts.eps >= 0,
               "adagrad: lr_decay, weight_decay, initial value, eps >= 0");
  loom_optimizer *o = create(ADAGRAD, params, n, opts.lr);
  if (o)
    o->o.ada = opts;
  return o;
}

/* RMSprop's update of every parameter, centred (ga: the gradients'
 * average) and with momentum (buf) as the constants say. */
#define RMSPROP_LOOP(T, FMAF, SQRT, CENTRED, MOMENTUM)                         \
  for (int64_t i = 0; i < n; i++) {                                            \
    T gi = neg ? -g[i] : g[i];                                                 \
    gi = l2 ? FMAF(p[i], wd, gi) : gi;                                         \
    T si = FMAF(c * gi, gi, sq[i] * al), gai = 0;                              \
    sq[i] = si;                                                                \
    if (CENTRED) {                                                             \
      gai = FMAF(gi, c, ga[i] * al);                                           \
      ga[i] = gai;                                                             \
    }                                                                          \
    T avg = SQRT(CENTRED ? FMAF(-gai, gai, si) : si) + eps;                    \
    if (MOMENTUM) {                                                            \
      T bi = buf[i] * mom + (T)1 * gi / avg;                                   \
      buf[i] = bi;                                                             \
      p[i] = FMAF(bi, nlr, p[i]);                                              \
    } else {                                                                   \
      p[i] = p[i] + nlr * gi / avg;                                            \
    }                                                                          \
  }

/* ---- the update loops, for T = float and double ----
 * Compiled per instruction set (LOOM__ISA_FUNCTION): with FMA, fmaf is one
 * instruction rather than a call into libm (the same exactly rounded result):
 * Adam's loop ran at ~10 cycles per parameter through three fmaf calls, 7% of
 * an LSTM training step (bench/rnn.c); SGD's fmaf calls were 2.7% of the
 * Penn Treebank example's step (examples/ptb_lm.c, perf). */
#define UPDATES(T, FMAF, SQRT)                                                 \
  LOOM__ISA_FUNCTION(sgd_##T,                                                  \
                     (T * p, const T *g, T *buf, int64_t n, bool first,        \
                      const loom_sgd_opts *s, double lr),                      \
                     (p, g, buf, n, first, s, lr)) {                           \
    T wd = (T)s->weight_decay, mom = (T)s->momentum,                           \
      damp = (T)(1 - s->dampening), nlr = (T)-lr;                              \
    /* Options in locals, branches as selects, as in Adam's loop. */           \
    bool neg = s->maximize, l2 = s->weight_decay != 0, nest = s->nesterov;     \
    if (s->momentum == 0) {                                                    \
      for (int64_t i = 0; i < n; i++) {                                        \
        T d = neg ? -g[i] : g[i];                                              \
        d = l2 ? FMAF(p[i], wd, d) : d;                                        \
        p[i] = FMAF(d, nlr, p[i]);                                             \
      }                                                                        \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++) {                                          \
      T d = neg ? -g[i] : g[i];                                                \
      d = l2 ? FMAF(p[i], wd, d) : d;                                          \
      T bi = first ? d : FMAF(d, damp, buf[i] * mom);                          \
      buf[i] = bi;                                                             \
      d = nest ? FMAF(bi, mom, d) : bi;                                        \
      p[i] = FMAF(d, nlr, p[i]);                                               \
    }                                                                          \
  }                                                                            \
  LOOM__ISA_FUNCTION(adam_##T,                                                 \
                     (T * p, const T *g, T *m, T *v, T *vmax, int64_t n,       \
                      int64_t step, const loom_adam_opts *a, double lr,        \
                      bool decoupled),                                         \
                     (p, g, m, v, vmax, n, step, a, lr, decoupled)) {          \
    T b1 = (T)a->beta1, b2 = (T)a->beta2, c1 = (T)(1 - a->beta1),              \
      c2 = (T)(1 - a->beta2), wd = (T)a->weight_decay, eps = (T)a->eps;        \
    /* Options read into locals and branches as selects, so the loop           \
     * vectorizes (a->maximize read through the pointer, which the stores      \
     * might alias, kept it scalar: ~2 ms of a 9 ms LSTM step at batch 1);     \
     * p * 1 and sqrt's float or double are exact, so every bit is as it was.  \
     */                                                                        \
    T keep = decoupled ? (T)(1 - lr * a->weight_decay) : 1;                    \
    bool neg = a->maximize, l2 = !decoupled && a->weight_decay != 0;           \
    double bc1 = 1 - pow(a->beta1, (double)step);                              \
    double bc2 = 1 - pow(a->beta2, (double)step);                              \
    T nstep = (T)(-(lr / bc1)), bc2s = (T)sqrt(bc2);                           \
    if (vmax) {                                                                \
      for (int64_t i = 0; i < n; i++) {                                        \
        T pi = p[i] * keep, gi = neg ? -g[i] : g[i];                           \
        gi = l2 ? FMAF(pi, wd, gi) : gi;                                       \
        T mi = FMAF(gi, c1, m[i] * b1), vi = FMAF(c2 * gi, gi, v[i] * b2);     \
        T s = vmax[i] > vi ? vmax[i] : vi;                                     \
        m[i] = mi;                                                             \
        v[i] = vi;                                                             \
        vmax[i] = s;                                                           \
        p[i] = pi + nstep * mi / (SQRT(s) / bc2s + eps);                       \
      }                                                                        \
      return;                                                                  \
    }                                                                          \
    for (int64_t i = 0; i < n; i++) {                                          \
      T pi = p[i] * keep, gi = neg ? -g[i] : g[i];                             \
      gi = l2 ? FMAF(pi, wd, gi) : gi;                                         \
      T mi = FMAF(gi, c1, m[i] * b1), vi = FMAF(c2 * gi, gi, v[i] * b2);       \
      m[i] = mi;                                                               \
      v[i] = vi;                                                               \
      p[i] = pi + nstep * mi / (SQRT(vi) / bc2s + eps);                        \
    }                                                                          \
  }                                                                            \
  LOOM__ISA_FUNCTION(rmsprop_##T,                                              \
                     (T * p, const T *g, T *sq, T *buf, T *ga, int64_t n,      \
                      const loom_rmsprop_opts *r, double lr),                  \
                     (p, g, sq, buf, ga, n, r, lr)) {                          \
    T al = (T)r->alpha, c = (T)(1 - r->alpha), wd = (T)r->weight_decay,        \
      eps = (T)r->eps, mom = (T)r->momentum, nlr = (T)-lr;                     \
    bool neg = r->maximize, l2 = r->weight_decay != 0;                         \
    /* One loop per use of the optional buffers, so none has a branch. */      \
    if (ga && buf)                                                             \
      RMSPROP_LOOP(T, FMAF, SQRT, 1, 1)                                        \
    else if (ga)                                                               \
      RMSPROP_LOOP(T, FMAF, SQRT, 1, 0)                                        \
    else if (buf)                                                              \
      RMSPROP_LOOP(T, FMAF, SQRT, 0, 1)                                        \
    else                                                                       \
      RMSPROP_LOOP(T, FMAF, SQRT, 0, 0)                                        \
  }                                                                            \
  LOOM__ISA_FUNCTION(adagrad_##T,                                              \
                     (T * p, const T *g, T *sum, int64_t n, int64_t step,      \
                      const loom_adagrad_opts *a, double lr),                  \
                     (p, g, sum, n, step, a, lr)) {                            \
    T wd = (T)a->weight_decay, eps = (T)a->eps;                                \
    T nclr = (T)(-(lr / (1 + (double)(step - 1) * a->lr_decay)));              \
    bool neg = a->maximize, l2 = a->weight_decay != 0;                         \
    for (int64_t i = 0; i < n; i++) {                                          \
      T gi = neg ? -g[i] : g[i];                                               \
      gi = l2 ? FMAF(p[i], wd, gi) : gi;                                       \
      T si = FMAF(gi, gi, sum[i]);                                             \
      sum[i] = si;                                                             \
      p[i] = p[i] + nclr * gi / (SQRT(si) + eps);                              \
    }                                                                          \
  }

#define FMA_F(a, b, c) fmaf((a), (b), (c))
#define FMA_D(a, b, c) fma((a), (b), (c))
UPDATES(float, FMA_F, sqrtf)
UPDATES(double, FMA_D, sqrt)

/* State buffer b of parameter i, made (filled with `init`) on first use. */
static loom_tensor *state(loom_optimizer *o, int b, int i, double init) {
  if (!o->bufs[b][i]) {
    loom_tensor *p = o->params[i];
    loom_tensor *t = loom__alloc(p->dtype, p->ndim, p->shape, names[o->k]);
    if (!t)
      return NULL;
    loom__kernel_fill(t, init);
    o->bufs[b][i] = t;
  }
  return o->bufs[b][i];
}

#define PTR(T, t) ((t) ? (T *)(t)->data : NULL)

/* Adam over parts of a parameter on loom's threads: elementwise, so the
 * result does not depend on how it is split. */
typedef struct {
  loom_tensor *p, *g, *m, *v, *vmax;
  int64_t step;
  const loom_adam_opts *a;
  double lr;
  bool decoupled;
} adam_job;

#define AT(T, t, lo) ((t) ? (T *)(t)->data + (lo) : NULL)

static void adam_part(void *ctx, int64_t lo, int64_t hi) {
  const adam_job *j = ctx;
  if (j->p->dtype == LOOM_F32)
    adam_float(AT(float, j->p, lo), AT(float, j->g, lo), AT(float, j->m, lo),
               AT(float, j->v, lo), AT(float, j->vmax, lo), hi - lo, j->step,
               j->a, j->lr, j->decoupled);
  else
    adam_double(AT(double, j->p, lo), AT(double, j->g, lo),
                AT(double, j->m, lo), AT(double, j->v, lo),
                AT(double, j->vmax, lo), hi - lo, j->step, j->a, j->lr,
                j->decoupled);
}

static int step_one(loom_optimizer *o, int i) {
  loom_tensor *p = o->params[i], *g = p->grad;
  if (!g)
    return 0;
  if (!loom_same_shape(g, p) || g->dtype != p->dtype ||
      !loom__is_contiguous(g)) {
    loom_set_error(LOOM_ERR_STATE,
                   "%s: gradient %s of parameter %d %s does "
                   "not match it",
                   names[o->k], loom_shape_text(g), i, loom_shape_text(p));
    return -1;
  }
  bool f32 = p->dtype == LOOM_F32;
  int64_t n = p->numel, step = ++o->steps[i];
  switch (o->k) {
  case SGD: {
    loom_tensor *buf = NULL;
    bool first = o->bufs[0][i] == NULL;
    if (o->o.sgd.momentum != 0 && !(buf = state(o, 0, i, 0)))
      return -1;
    if (f32)
      sgd_float(PTR(float, p), PTR(float, g), PTR(float, buf), n, first,
                &o->o.sgd, o->lr);
    else
      sgd_double(PTR(double, p), PTR(double, g), PTR(double, buf), n, first,
                 &o->o.sgd, o->lr);
    break;
  }
  case ADAM:
  case ADAMW: {
    loom_tensor *m = state(o, 0, i, 0), *v = state(o, 1, i, 0);
    loom_tensor *vmax = o->o.adam.amsgrad ? state(o, 2, i, 0) : NULL;
    if (!m || !v || (o->o.adam.amsgrad && !vmax))
      return -1;
    loom__parallel_for(
        loom__threads_for(4 * n), n, adam_part,
        &(adam_job){p, g, m, v, vmax, step, &o->o.adam, o->lr, o->k == ADAMW});
    break;
  }
  case RMSPROP: {
    loom_tensor *sq = state(o, 0, i, 0);
    loom_tensor *buf = o->o.rms.momentum > 0 ? state(o, 1, i, 0) : NULL;
    loom_tensor *ga = o->o.rms.centered ? state(o, 2, i, 0) : NULL;
    if (!sq || (o->o.rms.momentum > 0 && !buf) || (o->o.rms.centered && !ga))
      return -1;
    if (f32)
      rmsprop_float(PTR(float, p), PTR(float, g), PTR(float, sq),
                    PTR(float, buf), PTR(float, ga), n, &o->o.rms, o->lr);
    else
      rmsprop_double(PTR(double, p), PTR(double, g), PTR(double, sq),
                     PTR(double, buf), PTR(double, ga), n, &o->o.rms, o->lr);
    break;
  }
  case ADAGRAD: {
    loom_tensor *sum = state(o, 0, i, o->o.ada.initial_accumulator_value);
    if (!sum)
      return -1;
    if (f32)
      adagrad_float(PTR(float, p), PTR(float, g), PTR(float, sum), n, step,
                    &o->o.ada, o->lr);
    else
      adagrad_double(PTR(double, p), PTR(double, g), PTR(double, sum), n, step,
                     &o->o.ada, o->lr);
    break;
  }
  }
  loom__bump_version(p);
  return 0;
}

int loom_optimizer_step(loom_optimizer *o) {
  if (!o)
    return loom_null_argument("optimizer_step"), -1;
  for (int i = 0; i < o->n; i++)
    if (step_one(o, i) < 0)
      return -1;
  return 0;
}

void loom_optimizer_zero_grad(loom_optimizer *o) {
  for (int i = 0; o && i < o->n; i++)
    loom_zero_grad(o->params[i]);
}

double loom_optimizer_lr(const loom_optimizer *o) {
  return o ? o->lr : (loom_null_argument("optimizer_lr"), NAN);
}
int loom_optimizer_set_lr(loom_optimizer *o, double lr) {
  if (!o)
    return loom_null_argument("optimizer_set_lr"), -1;
  if (!valid_lr(lr)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "optimizer_set_lr: learning rate %g (a finite number >= 0)",
                   lr);
    return -1;
  }
  o->lr = lr;
  return 0;
}
double loom_optimizer_initial_lr(const loom_optimizer *o) {
  return o ? o->initial_lr : (loom_null_argument("optimizer_initial_lr"), NAN);
}
const char *loom_optimizer_name(const loom_optimizer *o) {
  return o ? names[o->k] : loom_null_argument("optimizer_name");
}

/* ---- state ---- */

static void key(char *buf, size_t n, const char *prefix, const char *what,
                int i) {
  snprintf(buf, n, "%s%s.%d", prefix ? prefix : "", what, i);
}

int loom_optimizer_save_state(const loom_optimizer *o, loom_tensor_map *m,
                              const char *prefix) {
  if (!o || !m)
    return loom_null_argument("optimizer_save_state"), -1;
  char k[256];
  for (int i = 0; i < o->n; i++) {
    for (int b = 0; b < MAX_BUFS; b++) {
      if (!buf_names[o->k][b] || !o->bufs[b][i])
        continue;
      key(k, sizeof k, prefix, buf_names[o->k][b], i);
      if (loom_tensor_map_set(m, k, o->bufs[b][i]) < 0)
        return -1;
    }
  }
  loom_scope *s = loom_scope_begin();
  int64_t n = o->n;
  loom_tensor *steps = loom_from_array(LOOM_I64, o->steps, 1, &n);
  loom_tensor *lr = loom_from_array(LOOM_F64, &o->lr, 0, NULL);
  snprintf(k, sizeof k, "%sstep", prefix ? prefix : "");
  int rc = loom_tensor_map_set(m, k, steps);
  snprintf(k, sizeof k, "%slr", prefix ? prefix : "");
  rc = rc < 0 ? rc : loom_tensor_map_set(m, k, lr);
  snprintf(k, sizeof k, "%skind", prefix ? prefix : "");
  rc = rc < 0 ? rc : loom_tensor_map_set_meta(m, k, names[o->k]);
  loom_scope_end(s);
  return rc;
}

int loom_optimizer_load_state(loom_optimizer *o, const loom_tensor_map *m,
                              const char *prefix) {
  if (!o || !m)
    return loom_null_argument("optimizer_load_state"), -1;
  char k[256];
  snprintf(k, sizeof k, "%skind", prefix ? prefix : "");
  const char *kind_name = loom_tensor_map_meta(m, k);
  if (kind_name && strcmp(kind_name, names[o->k]) != 0) {
    loom_set_error(LOOM_ERR_STATE,
                   "optimizer_load_state: state is for %s, "
                   "this optimizer is %s",
                   kind_name, names[o->k]);
    return -1;
  }
  snprintf(k, sizeof k, "%sstep", prefix ? prefix : "");
  loom_tensor *steps = loom_tensor_map_get(m, k);
  snprintf(k, sizeof k, "%slr", prefix ? prefix : "");
  loom_tensor *lr = loom_tensor_map_get(m, k);
  if (!steps || steps->dtype != LOOM_I64 || steps->ndim != 1 ||
      steps->shape[0] != o->n || !lr || lr->numel != 1) {
    loom_set_error(LOOM_ERR_STATE,
                   "optimizer_load_state: missing or "
                   "mismatched '%sstep'/'%slr' (%d parameters)",
                   prefix ? prefix : "", prefix ? prefix : "", o->n);
    return -1;
  }
  /* Check everything before changing anything. */
  if (!valid_lr(loom_item(lr))) {
    loom_set_error(LOOM_ERR_STATE,
                   "optimizer_load_state: '%slr' is %g (a finite number >= 0)",
                   prefix ? prefix : "", loom_item(lr));
    return -1;
  }
  for (int i = 0; i < o->n; i++)
    if (((const int64_t *)steps->data)[i] < 0 ||
        ((const int64_t *)steps->data)[i] > (int64_t)1 << 62) {
      loom_set_error(LOOM_ERR_STATE,
                     "optimizer_load_state: '%sstep' of parameter %d is "
                     "%lld",
                     prefix ? prefix : "", i,
                     (long long)((const int64_t *)steps->data)[i]);
      return -1;
    }
  for (int i = 0; i < o->n; i++)
    for (int b = 0; b < MAX_BUFS; b++) {
      if (!buf_names[o->k][b])
        continue;
      key(k, sizeof k, prefix, buf_names[o->k][b], i);
      loom_tensor *t = loom_tensor_map_get(m, k);
      if (t && !loom_same_shape(t, o->params[i])) {
        loom_set_error(LOOM_ERR_SHAPE,
                       "optimizer_load_state: '%s' is %s, "
                       "parameter %d is %s",
                       k, loom_shape_text(t), i, loom_shape_text(o->params[i]));
        return -1;
      }
    }
  for (int i = 0; i < o->n; i++) {
    o->steps[i] = ((const int64_t *)steps->data)[i];
    for (int b = 0; b < MAX_BUFS; b++) {
      if (!buf_names[o->k][b])
        continue;
      key(k, sizeof k, prefix, buf_names[o->k][b], i);
      loom_tensor *t = loom_tensor_map_get(m, k);
      loom_release(o->bufs[b][i]);
      o->bufs[b][i] = NULL;
      if (t) {
        loom_tensor *c = loom__alloc(o->params[i]->dtype, t->ndim, t->shape,
                                     "optimizer_load_state");
        if (!c)
          return -1;
        loom__kernel_copy(c, t);
        o->bufs[b][i] = c;
      }
    }
  }
  o->lr = loom_item(lr);
  return 0;
}

/* ---- clipping ---- */

/* NULL, or a NULL in the array, is an argument error (as for optimizers):
 * a parameter the caller lost should not quietly escape clipping. */
static bool all_there(loom_tensor *const *params, int n, const char *op) {
  for (int i = 0; params && i < n; i++)
    if (!params[i]) {
      loom_set_error(LOOM_ERR_ARGUMENT, "%s: parameter %d is NULL", op, i);
      return false;
    }
  if (!params && n > 0)
    loom_null_argument(op);
  return params || n <= 0;
}

double loom_clip_grad_norm(loom_tensor *const *params, int n, double max_norm,
                           double p) {
  if (!all_there(params, n, "clip_grad_norm"))
    return NAN;
  if (!(max_norm >= 0) || !(p > 0)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "clip_grad_norm: max_norm %g (>= 0), p %g (> 0, or "
                   "INFINITY)",
                   max_norm, p);
    return NAN;
  }
  loom_scope *s = loom_scope_begin();
  loom_no_grad_begin();
  double total = 0;
  int count = 0;
  bool ok = true;
  for (int i = 0; ok && i < n; i++) {
    loom_tensor *g = params[i] ? params[i]->grad : NULL;
    if (!g)
      continue;
    loom_tensor *norm = loom_norm(g, p, NULL, 0, false);
    double v = loom_item(norm);
    ok = norm != NULL;
    total = isinf(p) ? (v > total ? v : total) : total + pow(v, p);
    count++;
  }
  if (!isinf(p))
    total = pow(total, 1 / p);
  if (!ok)
    total = NAN; /* and nothing scaled */
  double coef = max_norm / (total + 1e-6);
  if (ok && count > 0 && coef < 1)
    for (int i = 0; i < n; i++)
      if (params[i] && params[i]->grad)
        loom_mul_scalar_(params[i]->grad, coef);
  loom_no_grad_end();
  loom_scope_end(s);
  return total;
}

void loom_clip_grad_value(loom_tensor *const *params, int n, double clip) {
  if (!all_there(params, n, "clip_grad_value"))
    return;
  /* A negative or NaN clip had reached loom_clamp_, whose error ("clamp_:
   * bounds [1, -1]") named neither this function nor its argument. */
  if (!(clip >= 0)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "clip_grad_value: clip %g (>= 0, or INFINITY)", clip);
    return;
  }
  loom_no_grad_begin();
  for (int i = 0; i < n; i++)
    if (params[i] && params[i]->grad)
      loom_clamp_(params[i]->grad, -clip, clip);
  loom_no_grad_end();
}
