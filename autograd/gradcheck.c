/* gradcheck: analytic gradients (one backward per output element) against
 * central differences (two forwards per input element), in float64. */
#include "node.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

/* ---- coverage: which registry ops some gradcheck has exercised ----
 * One pair of sets for the process (gradchecks may run on several
 * threads), behind a mutex. */

typedef struct {
  const loom__op_def **ops;
  int n, cap;
} op_set;

/* Ops recorded by gradchecks, and ops whose double backward ran in one. */
static op_set covered, covered_twice;
static pthread_mutex_t covered_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(op_set *s, const loom__op_def *op) {
  pthread_mutex_lock(&covered_lock);
  bool seen = false;
  for (int i = 0; i < s->n && !seen; i++)
    seen = s->ops[i] == op;
  if (!seen && s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    const loom__op_def **g = realloc(s->ops, (size_t)cap * sizeof *g);
    if (g) {
      s->ops = g;
      s->cap = cap;
    }
  }
  if (!seen && s->n < s->cap)
    s->ops[s->n++] = op;
  pthread_mutex_unlock(&covered_lock);
}

static bool has(const op_set *s, const char *name) {
  pthread_mutex_lock(&covered_lock);
  bool found = false;
  for (int i = 0; name && i < s->n && !found; i++)
    found = strcmp(s->ops[i]->name, name) == 0;
  pthread_mutex_unlock(&covered_lock);
  return found;
}

void loom__coverage_note(const loom__op_def *op) { note(&covered, op); }
void loom__coverage_note_twice(const loom__op_def *op) {
  note(&covered_twice, op);
}
bool loom_gradcheck_covered(const char *name) { return has(&covered, name); }
bool loom_gradgradcheck_covered(const char *name) {
  return has(&covered_twice, name);
}

/* ---- element access by flat row-major index, for any strides ---- */

static double *element(const loom_tensor *t, int64_t flat) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (flat % t->shape[d]) * t->strides[d];
    flat /= t->shape[d];
  }
  return (double *)t->data + off;
}

#define MAX_OUT 16

typedef struct {
  loom_gradcheck_fn fn;
  void *ctx;
  loom_tensor *const *in;
  int n_in;
} problem;

/* Runs fn; returns the number of outputs (kept by the caller) or -1. */
static int run(const problem *p, loom_tensor **out) {
  int n = p->fn(p->in, p->n_in, out, MAX_OUT, p->ctx);
  if (n < 0) { /* its own error, if it set one, comes first */
    loom_set_error(LOOM_ERR_STATE,
                   "gradcheck: the function returned %d with no error set", n);
    return -1;
  }
  if (n > MAX_OUT) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "gradcheck: the function returned %d outputs (at most %d)",
                   n, MAX_OUT);
    return -1;
  }
  for (int k = 0; k < n; k++) {
    if (!out[k]) {
      loom_set_error(LOOM_ERR_STATE,
                     "gradcheck: the function's output %d is "
                     "NULL with no error set",
                     k);
      return -1;
    }
    if (out[k]->dtype != LOOM_F64) {
      loom_set_error(LOOM_ERR_DTYPE,
                     "gradcheck: output %d is %s, not "
                     "float64",
                     k, loom_dtype_name(out[k]->dtype));
      return -1;
    }
  }
  return n;
}

/* Outputs of fn under no_grad, flattened into one contiguous buffer. */
static int numeric_outputs(const problem *p, double *dst, int64_t total) {
  loom_scope *s = loom_scope_begin();
  loom_no_grad_begin();
  loom_tensor *out[MAX_OUT];
  int n = run(p, out);
  int64_t at = 0;
  for (int k = 0; k < n; k++) {
    if (at + out[k]->numel > total) {
      n = -1;
      break;
    }
    loom_copy_to_array(out[k], LOOM_F64, dst + at, out[k]->numel);
    at += out[k]->numel;
  }
  loom_no_grad_end();
  loom_scope_end(s);
  return n < 0 || at != total ? -1 : 0;
}

typedef struct {
  double worst;   /* largest excess over the tolerance */
  double max_err; /* largest |analytic - numeric| */
  int64_t compared;
  int err_input;
  int64_t err_index;
  loom_gradcheck_result r;
} verdict;

static void judge(verdict *v, const loom_gradcheck_opts *o, double a,
                  double num, int input, int output, int64_t ii, int64_t oi) {
  double excess = fabs(a - num) - (o->atol + o->rtol * fabs(num));
  if (isnan(a) != isnan(num) || (isnan(excess) && !(isnan(a) && isnan(num))))
    excess = INFINITY;
  v->compared++;
  if (fabs(a - num) > v->max_err || v->err_input < 0) {
    v->max_err = fabs(a - num);
    v->err_input = input;
    v->err_index = ii;
  }
  if (excess > v->worst || (v->r.input < 0 && !isnan(excess))) {
    v->worst = excess;
    v->r.input = input;
    v->r.output = output;
    v->r.in_index = ii;
    v->r.out_index = oi;
    v->r.analytic = a;
    v->r.numeric = num;
  }
}

static void save_grads(loom_tensor *const *in, int n, loom_tensor **saved) {
  for (int i = 0; i < n; i++) {
    saved[i] = in[i]->grad;
    in[i]->grad = NULL;
  }
}

static void restore_grads(loom_tensor *const *in, int n, loom_tensor **saved) {
  for (int i = 0; i < n; i++) {
    loom_zero_grad(in[i]);
    in[i]->grad = saved[i];
  }
}

/* Sum over inputs of <grad_i, u_i> given the seeds for every output. */
static int backward_all(loom_tensor **out, int n_out,
                        loom_tensor *const *seeds) {
  for (int k = 0; k < n_out; k++) {
    if (!out[k]->requires_grad)
      continue;
    loom_backward_opts bo = {.retain_graph = true};
    if (loom_backward_with(out[k], seeds[k], &bo) < 0)
      return -1;
  }
  return 0;
}

static int full_check(const problem *p, const loom_gradcheck_opts *o,
                      verdict *v) {
  loom_tensor *out[MAX_OUT];
  loom__coverage_set(true);
  int n_out = run(p, out);
  loom__coverage_set(false);
  if (n_out < 0)
    return -1;
  int64_t total = 0;
  for (int k = 0; k < n_out; k++)
    total += out[k]->numel;
  /* analytic[i][j][e]: d out element j / d input i element e */
  int64_t in_total = 0;
  for (int i = 0; i < p->n_in; i++)
    in_total += p->in[i]->numel;
  double *analytic = calloc((size_t)(total * in_total) + 1, sizeof(double));
  double *plus = malloc((size_t)total * sizeof(double) + 8);
  double *minus = malloc((size_t)total * sizeof(double) + 8);
  int rc = analytic && plus && minus ? 0 : -1;
  int64_t row = 0;
  for (int k = 0; k < n_out && rc == 0; k++) {
    for (int64_t j = 0; j < out[k]->numel && rc == 0; j++, row++) {
      loom_scope *s = loom_scope_begin();
      loom_tensor *seeds[MAX_OUT];
      for (int q = 0; q < n_out; q++)
        seeds[q] = loom_zeros(LOOM_F64, out[q]->ndim, out[q]->shape);
      ((double *)seeds[k]->data)[j] = 1;
      rc = out[k]->requires_grad ? backward_all(&out[k], 1, &seeds[k]) : 0;
      int64_t col = 0;
      for (int i = 0; i < p->n_in && rc == 0; i++) {
        const loom_tensor *g = p->in[i]->grad;
        for (int64_t e = 0; e < p->in[i]->numel; e++, col++)
          analytic[row * in_total + col] = g ? *element(g, e) : 0;
        loom_zero_grad(p->in[i]);
      }
      loom_scope_end(s);
    }
  }
  /* numeric, one input element at a time */
  int64_t col = 0;
  for (int i = 0; i < p->n_in && rc == 0; i++) {
    loom_tensor *x = p->in[i];
    if (!x->requires_grad) {
      col += x->numel;
      continue;
    }
    for (int64_t e = 0; e < x->numel && rc == 0; e++, col++) {
      double *xe = element(x, e), keep = *xe;
      *xe = keep + o->eps;
      rc = numeric_outputs(p, plus, total);
      *xe = keep - o->eps;
      if (rc == 0)
        rc = numeric_outputs(p, minus, total);
      *xe = keep;
      int64_t r = 0;
      for (int k = 0; k < n_out && rc == 0; k++)
        for (int64_t j = 0; j < out[k]->numel; j++, r++)
          judge(v, o, analytic[r * in_total + col],
                (plus[r] - minus[r]) / (2 * o->eps), i, k, e, j);
    }
  }
  free(analytic);
  free(plus);
  free(minus);
  return rc;
}

/* v^T J u per input, for random u (per input) and v (per output). */
static int fast_check(const problem *p, const loom_gradcheck_opts *o,
                      verdict *v) {
  loom_tensor *out[MAX_OUT];
  loom__coverage_set(true);
  int n_out = run(p, out);
  loom__coverage_set(false);
  if (n_out < 0)
    return -1;
  loom_rng *g = loom_rng_new(1234);
  if (!g) {
    loom_set_error(LOOM_ERR_MEMORY, "gradcheck: out of memory");
    return -1;
  }
  loom_tensor *vs[MAX_OUT];
  int64_t total = 0;
  for (int k = 0; k < n_out; k++) {
    vs[k] = loom_randn(g, LOOM_F64, 0, 1, out[k]->ndim, out[k]->shape);
    total += out[k]->numel;
  }
  int rc = backward_all(out, n_out, vs);
  double *plus = malloc((size_t)total * sizeof(double) + 8);
  double *minus = malloc((size_t)total * sizeof(double) + 8);
  double *vflat = malloc((size_t)total * sizeof(double) + 8);
  if (!plus || !minus || !vflat)
    rc = -1;
  for (int k = 0, at = 0; k < n_out && rc == 0; at += (int)vs[k]->numel, k++)
    loom_copy_to_array(vs[k], LOOM_F64, vflat + at, vs[k]->numel);
  for (int i = 0; i < p->n_in && rc == 0; i++) {
    loom_tensor *x = p->in[i];
    if (!x->requires_grad)
      continue;
    loom_tensor *u = loom_randn(g, LOOM_F64, 0, 1, x->ndim, x->shape);
    double analytic = 0;
    for (int64_t e = 0; e < x->numel; e++)
      analytic += (x->grad ? *element(x->grad, e) : 0) * ((double *)u->data)[e];
    double *keep = malloc((size_t)x->numel * sizeof(double) + 8);
    if (!keep) {
      rc = -1;
      break;
    }
    for (int64_t e = 0; e < x->numel; e++) {
      keep[e] = *element(x, e);
      *element(x, e) = keep[e] + o->eps * ((double *)u->data)[e];
    }
    rc = numeric_outputs(p, plus, total);
    for (int64_t e = 0; e < x->numel; e++)
      *element(x, e) = keep[e] - o->eps * ((double *)u->data)[e];
    if (rc == 0)
      rc = numeric_outputs(p, minus, total);
    for (int64_t e = 0; e < x->numel; e++)
      *element(x, e) = keep[e];
    free(keep);
    double numeric = 0;
    for (int64_t r = 0; r < total; r++)
      numeric += (plus[r] - minus[r]) / (2 * o->eps) * vflat[r];
    judge(v, o, analytic, numeric, i, -1, -1, -1);
  }
  free(plus);
  free(minus);
  free(vflat);
  loom_rng_free(g);
  return rc;
}

/* loom_gradcheck but for the result on failure (-1). */
static int gradcheck(loom_gradcheck_fn fn, void *ctx,
                     loom_tensor *const *inputs, int n_inputs,
                     const loom_gradcheck_opts *opts,
                     loom_gradcheck_result *res) {
  loom_gradcheck_opts o = opts ? *opts : (loom_gradcheck_opts){0};
  if (!(o.eps >= 0 && o.atol >= 0 && o.rtol >= 0) || isinf(o.eps) ||
      isinf(o.atol) || isinf(o.rtol)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "gradcheck: eps %g, atol %g, rtol %g (each 0 for its "
                   "default, or finite and positive)",
                   o.eps, o.atol, o.rtol);
    return -1;
  }
  o.eps = o.eps > 0 ? o.eps : 1e-6;
  o.atol = o.atol > 0 ? o.atol : 1e-5;
  o.rtol = o.rtol > 0 ? o.rtol : 1e-3;
  verdict v = {.worst = -INFINITY, .err_input = -1, .r = {.input = -1}};
  if (!fn || (!inputs && n_inputs > 0))
    return loom_null_argument("gradcheck"), -1;
  if (n_inputs < 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "gradcheck: %d inputs", n_inputs);
    return -1;
  }
  for (int i = 0; i < n_inputs; i++) {
    if (!inputs[i])
      return loom_null_argument("gradcheck"), -1;
    if (inputs[i]->dtype != LOOM_F64) {
      loom_set_error(LOOM_ERR_DTYPE,
                     "gradcheck: input %d is %s; gradcheck "
                     "needs float64",
                     i, loom_dtype_name(inputs[i]->dtype));
      return -1;
    }
  }
  problem p = {fn, ctx, inputs, n_inputs};
  loom_tensor *small[16],
      **saved =
          n_inputs <= 16 ? small : malloc((size_t)n_inputs * sizeof *saved);
  if (!saved) {
    loom_set_error(LOOM_ERR_MEMORY, "gradcheck: out of memory");
    return -1;
  }
  save_grads(inputs, n_inputs, saved);
  loom_scope *s = loom_scope_begin();
  int rc = o.fast ? fast_check(&p, &o, &v) : full_check(&p, &o, &v);
  loom_scope_end(s);
  restore_grads(inputs, n_inputs, saved);
  if (saved != small)
    free(saved);
  if (rc < 0)
    return -1;
  v.r.worst_excess = v.worst;
  v.r.passed = v.worst <= 0 || v.r.input < 0;
  if (v.r.input < 0)
    snprintf(v.r.message, sizeof v.r.message,
             "gradcheck: nothing to check (no input requires grad)");
  else if (o.fast)
    snprintf(v.r.message, sizeof v.r.message,
             "gradcheck %s: input %d, v^T J u analytic %.10g vs numeric "
             "%.10g",
             v.r.passed ? "passed" : "FAILED", v.r.input, v.r.analytic,
             v.r.numeric);
  else if (v.r.passed)
    snprintf(v.r.message, sizeof v.r.message,
             "gradcheck passed: %lld Jacobian entries, largest |analytic - "
             "numeric| %.3g (input %d element %lld)",
             (long long)v.compared, v.max_err, v.err_input,
             (long long)v.err_index);
  else
    snprintf(v.r.message, sizeof v.r.message,
             "gradcheck %s: worst at input %d element %lld, output %d "
             "element %lld: analytic %.10g vs numeric %.10g",
             v.r.passed ? "passed" : "FAILED", v.r.input,
             (long long)v.r.in_index, v.r.output, (long long)v.r.out_index,
             v.r.analytic, v.r.numeric);
  *res = v.r;
  return v.r.passed ? 1 : 0;
}

int loom_gradcheck(loom_gradcheck_fn fn, void *ctx, loom_tensor *const *inputs,
                   int n_inputs, const loom_gradcheck_opts *opts,
                   loom_gradcheck_result *res) {
  loom_gradcheck_result r;
  int rc = gradcheck(fn, ctx, inputs, n_inputs, opts, &r);
  if (rc < 0) {
    /* Every path above sets an error; this keeps the promise if one does
     * not. */
    loom_set_error(LOOM_ERR_STATE, "gradcheck: failed");
    r = (loom_gradcheck_result){.input = -1,
                                .output = -1,
                                .in_index = -1,
                                .out_index = -1,
                                .analytic = NAN,
                                .numeric = NAN,
                                .worst_excess = NAN};
    snprintf(r.message, sizeof r.message, "gradcheck could not run: %s",
             loom_last_error());
  }
  if (res)
    *res = r;
  return rc;
}

/* ---- gradgradcheck ---- */

typedef struct {
  loom_gradcheck_fn fn;
  void *ctx;
  int n_in, n_out;
} twice;

/* (inputs, v) -> the gradients of fn(inputs) seeded with v, recorded.
 * Grad mode is on even when gradcheck evaluates it for differences. */
static int gradients_of(loom_tensor *const *in, int n, loom_tensor **out,
                        int max, void *ctx) {
  (void)n;
  const twice *q = ctx;
  int depth = loom__swap_no_grad_depth(0);
  loom_tensor *y[MAX_OUT], *ys[MAX_OUT], *vs[MAX_OUT], *x[MAX_OUT];
  int n_y = q->fn(in, q->n_in, y, MAX_OUT, q->ctx), m = 0, nx = 0, rc = 0;
  if (n_y != q->n_out) {
    if (n_y >= 0)
      loom_set_error(LOOM_ERR_STATE,
                     "gradgradcheck: the function returned %d outputs, then %d",
                     q->n_out, n_y);
    rc = -1;
  }
  for (int k = 0; rc == 0 && k < n_y; k++)
    if (y[k] && y[k]->requires_grad) {
      ys[m] = y[k];
      vs[m++] = in[q->n_in + k];
    }
  for (int i = 0; i < q->n_in; i++)
    if (in[i]->requires_grad && nx < max)
      x[nx++] = in[i];
  loom_tensor *g[MAX_OUT] = {NULL};
  loom_grad_opts o = {.create_graph = true, .allow_unused = true};
  if (rc == 0 && m > 0)
    rc = loom_autograd_grad(ys, m, x, nx, vs, g, &o);
  for (int i = 0; rc == 0 && i < nx; i++)
    out[i] = g[i] ? g[i] : loom_zeros(LOOM_F64, x[i]->ndim, x[i]->shape);
  loom__swap_no_grad_depth(depth);
  return rc < 0 ? -1 : nx;
}

int loom_gradgradcheck(loom_gradcheck_fn fn, void *ctx,
                       loom_tensor *const *inputs, int n_inputs,
                       const loom_gradcheck_opts *opts,
                       loom_gradcheck_result *res) {
  if (!fn || (!inputs && n_inputs > 0) || n_inputs < 0 || n_inputs > MAX_OUT) {
    if (fn && (inputs || n_inputs <= 0))
      loom_set_error(LOOM_ERR_ARGUMENT, "gradgradcheck: %d inputs (0 to %d)",
                     n_inputs, MAX_OUT);
    else
      loom_null_argument("gradgradcheck");
    return loom_gradcheck(NULL, NULL, NULL, 0, opts, res);
  }
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i]) {
      loom_null_argument("gradgradcheck");
      return loom_gradcheck(NULL, NULL, NULL, 0, opts, res);
    }
  /* One run to learn the outputs' shapes, for the v's. */
  loom_scope *s = loom_scope_begin();
  loom_tensor *y[MAX_OUT];
  problem p = {fn, ctx, inputs, n_inputs};
  int n_y = run(&p, y);
  loom_tensor *all[2 * MAX_OUT];
  loom_rng *g = n_y >= 0 ? loom_rng_new(4321) : NULL;
  int rc = g ? 0 : -1;
  if (n_y >= 0 && !g)
    loom_set_error(LOOM_ERR_MEMORY, "gradgradcheck: out of memory");
  for (int i = 0; i < n_inputs; i++)
    all[i] = inputs[i];
  for (int k = 0; rc == 0 && k < n_y; k++) {
    loom_tensor *v = loom_randn(g, LOOM_F64, 0, 1, y[k]->ndim, y[k]->shape);
    all[n_inputs + k] = loom_set_requires_grad(v, true);
    if (!all[n_inputs + k])
      rc = -1;
  }
  loom_rng_free(g);
  twice q = {fn, ctx, n_inputs, n_y};
  if (rc == 0)
    rc = loom_gradcheck(gradients_of, &q, all, n_inputs + n_y, opts, res);
  else
    rc = loom_gradcheck(NULL, NULL, NULL, 0, opts, res);
  loom_scope_end(s);
  return rc;
}
