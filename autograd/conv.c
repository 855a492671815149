/* Convolution and pooling over N x C x H x W (a missing batch dim is added
 * and removed around the core op), conv1d as conv2d over one row, and
 * unfold / fold (im2col / col2im), of which conv2d's double backward is
 * made.
 *
 * conv2d and the pools keep fused kernels for plain backward; with
 * create_graph their gradients are written in recorded ops instead:
 * conv2d's from fold, unfold and matrix products, max_pool2d's as a
 * scatter_add by the windows' choices, the average pools' as products with
 * the matrices that average each dim (both pools are separable). */
#include "node.h"

LOOM__OP_GRAPH(conv2d, conv2d_backward, conv2d_graph_backward);
LOOM__OP_GRAPH(max_pool2d, max_pool2d_backward, max_pool2d_graph_backward);
LOOM__OP_GRAPH(avg_pool2d, avg_pool2d_backward, avg_pool2d_graph_backward);
LOOM__OP_GRAPH(adaptive_avg_pool2d, adaptive_avg_pool2d_backward,
               adaptive_avg_pool2d_graph_backward);
LOOM__OP_TWICE(unfold, unfold_backward);
LOOM__OP_TWICE(fold, fold_backward);

static int64_t or_default(int64_t v, int64_t dflt) { return v ? v : dflt; }

/* Output length along one dim, or -1 when the window does not fit. The
 * callers keep in, k and p at most LOOM_MAX_ELEMENTS, so in + 2 p fits;
 * the window's extent d (k - 1) is compared by division, so a huge d or s
 * cannot overflow, and the kernels' offsets (at most the padded length)
 * stay in range. */
static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d,
                       bool ceil_mode) {
  int64_t padded = in + 2 * p;
  if (padded < 1 || (k > 1 && d > (padded - 1) / (k - 1)))
    return -1; /* d (k - 1) + 1 > padded */
  int64_t span = padded - d * (k - 1) - 1;
  int64_t n = span / s + (ceil_mode && span % s ? 1 : 0) + 1;
  if (ceil_mode && (n - 1) * s >= in + p) /* last window must start inside */
    n--;
  return n;
}

/* x as 4-D contiguous; *batched tells whether a batch dim was present. */
static const loom_tensor *as_4d(const loom_tensor *x, bool *batched,
                                const char *op) {
  if (x->ndim != 3 && x->ndim != 4)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: expected (N, C, H, W) or (C, H, W), "
                     "got %s",
                     op, loom_shape_text(x));
  if (loom__check_float(x, op))
    return NULL;
  *batched = x->ndim == 4;
  return loom_contiguous(*batched ? x : loom_unsqueeze(x, 0));
}

static loom_tensor *unbatch(loom_tensor *y, bool batched) {
  return batched || !y ? y : loom_squeeze(y, 0);
}

/* ---- unfold and fold ---- */

static loom_fold_opts fold_opts(const loom__conv_geom *g) {
  return (loom_fold_opts){.kernel = {g->kh, g->kw},
                          .dilation = {g->dh, g->dw},
                          .padding = {g->ph, g->pw},
                          .stride = {g->sh, g->sw}};
}

/* The geometry of unfold (and fold) over an N x C x H x W image: oh x ow
 * blocks. false with an error naming op. */
static bool fold_geom(int64_t n, int64_t c, int64_t h, int64_t w,
                      loom_fold_opts o, loom__conv_geom *g, const char *op) {
  *g = (loom__conv_geom){.n = n,
                         .c = c,
                         .h = h,
                         .w = w,
                         .kh = o.kernel[0],
                         .kw = o.kernel[1],
                         .sh = or_default(o.stride[0], 1),
                         .sw = or_default(o.stride[1], 1),
                         .ph = o.padding[0],
                         .pw = o.padding[1],
                         .dh = or_default(o.dilation[0], 1),
                         .dw = or_default(o.dilation[1], 1),
                         .groups = 1};
  if (g->kh < 1 || g->kw < 1 || g->kh > LOOM_MAX_ELEMENTS ||
      g->kw > LOOM_MAX_ELEMENTS || g->sh < 1 || g->sw < 1 || g->dh < 1 ||
      g->dw < 1 || g->ph < 0 || g->pw < 0 || g->ph > LOOM_MAX_ELEMENTS ||
      g->pw > LOOM_MAX_ELEMENTS) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: kernel %lldx%lld, stride %lldx%lld, padding "
                   "%lldx%lld, dilation %lldx%lld (kernel 1 to 2^59 - 1, "
                   "stride and dilation >= 1, padding 0 to 2^59 - 1)",
                   op, (long long)g->kh, (long long)g->kw, (long long)g->sh,
                   (long long)g->sw, (long long)g->ph, (long long)g->pw,
                   (long long)g->dh, (long long)g->dw);
    return false;
  }
  g->oh = out_len(h, g->kh, g->sh, g->ph, g->dh, false);
  g->ow = out_len(w, g->kw, g->sw, g->pw, g->dw, false);
  if (g->oh < 1 || g->ow < 1) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "%s: kernel %lldx%lld dilated %lldx%lld larger than the "
                   "padded %lldx%lld image",
                   op, (long long)g->kh, (long long)g->kw, (long long)g->dh,
                   (long long)g->dw, (long long)(h + 2 * g->ph),
                   (long long)(w + 2 * g->pw));
    return false;
  }
  /* The columns: N x (C kh kw) x (oh ow). */
  int64_t rows = loom_size_mul(loom_size_mul(c, g->kh, op), g->kw, op);
  int64_t cols = loom_size_mul(g->oh, g->ow, op);
  return rows >= 0 && cols >= 0 &&
         loom_size_mul(n, loom_size_mul(rows, cols, op), op) >= 0;
}

static void unfold_backward(loom__node *n, loom_tensor *const *gout) {
  loom__conv_geom g;
  memcpy(&g, n->i, sizeof g);
  loom__accumulate(n, 0, loom_fold(gout[0], g.h, g.w, fold_opts(&g)));
}

loom_tensor *loom_unfold(const loom_tensor *x0, loom_fold_opts o) {
  if (!x0)
    return loom_null_argument("unfold");
  bool batched;
  const loom_tensor *x = as_4d(x0, &batched, "unfold");
  loom__conv_geom g;
  if (!x || !fold_geom(x->shape[0], x->shape[1], x->shape[2], x->shape[3], o,
                       &g, "unfold"))
    return NULL;
  loom_tensor *out = loom__new(
      x->dtype, 3, (int64_t[]){g.n, g.c * g.kh * g.kw, g.oh * g.ow}, "unfold");
  if (!out)
    return NULL;
  loom__kernel_unfold(out, x, &g);
  loom__node *n = loom__record(&loom__op_unfold, out, 1, &x);
  if (n)
    memcpy(n->i, &g, sizeof g);
  return unbatch(out, batched);
}

static void fold_backward(loom__node *n, loom_tensor *const *gout) {
  loom__conv_geom g;
  memcpy(&g, n->i, sizeof g);
  loom__accumulate(n, 0, loom_unfold(gout[0], fold_opts(&g)));
}

loom_tensor *loom_fold(const loom_tensor *cols0, int64_t out_h, int64_t out_w,
                       loom_fold_opts o) {
  if (!cols0)
    return loom_null_argument("fold");
  if (cols0->ndim != 2 && cols0->ndim != 3)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "fold: expected (N, C x kH x kW, L) or (C x kH x kW, L), "
                     "got %s",
                     loom_shape_text(cols0));
  if (loom__check_float(cols0, "fold"))
    return NULL;
  if (out_h < 1 || out_w < 1 || out_h > LOOM_MAX_ELEMENTS ||
      out_w > LOOM_MAX_ELEMENTS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "fold: output size %lldx%lld (each 1 to 2^59 - 1)",
                     (long long)out_h, (long long)out_w);
  bool batched = cols0->ndim == 3;
  const loom_tensor *cols =
      loom_contiguous(batched ? cols0 : loom_unsqueeze(cols0, 0));
  if (!cols)
    return NULL;
  loom__conv_geom g;
  if (!fold_geom(cols->shape[0], 1, out_h, out_w, o, &g, "fold"))
    return NULL;
  int64_t rows = cols->shape[1], area = g.kh * g.kw; /* checked: 1 kh kw */
  if (rows % area || cols->shape[2] != g.oh * g.ow)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "fold: input %s does not hold %lldx%lld blocks of "
                     "kernel %lldx%lld (C x %lld rows, %lld columns)",
                     loom_shape_text(cols0), (long long)g.oh, (long long)g.ow,
                     (long long)g.kh, (long long)g.kw, (long long)area,
                     (long long)(g.oh * g.ow));
  g.c = rows / area;
  if (loom_size_mul(loom_size_mul(g.n, g.c, "fold"),
                    loom_size_mul(out_h, out_w, "fold"), "fold") < 0)
    return NULL;
  loom_tensor *out =
      loom__new(cols->dtype, 4, (int64_t[]){g.n, g.c, out_h, out_w}, "fold");
  if (!out)
    return NULL;
  loom__kernel_fold(out, cols, &g);
  loom__node *n = loom__record(&loom__op_fold, out, 1, &cols);
  if (n)
    memcpy(n->i, &g, sizeof g);
  return unbatch(out, batched);
}

/* ---- conv2d ---- */

static void conv2d_backward(loom__node *n, loom_tensor *const *gout) {
  loom__conv_geom g;
  memcpy(&g, n->i, sizeof g);
  const loom_tensor *x = loom__saved(n, 0), *w = loom__saved(n, 1);
  loom_tensor *go = loom_contiguous(gout[0]);
  if (!x || !w || !go)
    return;
  loom_tensor *gx = loom__needs_grad(n, 0) ? loom_empty_like(x) : NULL;
  loom_tensor *gw = loom__needs_grad(n, 1) ? loom_empty_like(w) : NULL;
  loom_tensor *gb = n->n_in > 2 && loom__needs_grad(n, 2)
                        ? loom_empty(go->dtype, 1, &g.oc)
                        : NULL;
  if (loom__kernel_conv2d_backward(go, x, w, gx, gw, gb, &g) < 0)
    return;
  loom__accumulate(n, 0, gx);
  loom__accumulate(n, 1, gw);
  if (gb)
    loom__accumulate(n, 2, gb);
}

/* The same gradients in recorded ops, per group g of channels (K = C/groups
 * kh kw rows of columns, L = oh ow blocks): the input's is the fold of
 * w_g^T gout_g, the weight's sum_n gout_g unfold(x)_g^T, as one product
 * over the N L blocks of all samples, and the bias's the sum of gout. */
static void conv2d_graph_backward(loom__node *n, loom_tensor *const *gout) {
  loom__conv_geom g;
  memcpy(&g, n->i, sizeof g);
  const loom_tensor *x = loom__saved(n, 0), *w = loom__saved(n, 1);
  if (!x || !w)
    return;
  int64_t groups = g.groups, og = g.oc / groups, L = g.oh * g.ow;
  int64_t K = g.c / groups * g.kh * g.kw;
  loom_fold_opts f = fold_opts(&g);
  loom_tensor *go = loom_reshape(gout[0], LOOM_SHAPE(g.n, groups, og, L));
  if (loom__needs_grad(n, 0)) {
    loom_tensor *wt =
        loom_transpose(loom_reshape(w, LOOM_SHAPE(groups, og, K)), 1, 2);
    loom_tensor *cols = loom_matmul(wt, go); /* N x groups x K x L */
    loom__accumulate(
        n, 0,
        loom_fold(loom_reshape(cols, LOOM_SHAPE(g.n, groups * K, L)), g.h, g.w,
                  f));
  }
  if (loom__needs_grad(n, 1)) {
    loom_tensor *cols =
        loom_reshape(loom_unfold(x, f), LOOM_SHAPE(g.n, groups, K, L));
    loom_tensor *a = loom_reshape(loom_permute(go, (int[]){1, 2, 0, 3}),
                                  LOOM_SHAPE(groups, og, g.n * L));
    loom_tensor *b = loom_reshape(loom_permute(cols, (int[]){1, 0, 3, 2}),
                                  LOOM_SHAPE(groups, g.n * L, K));
    loom__accumulate(n, 1, loom_reshape(loom_bmm(a, b), w->ndim, w->shape));
  }
  if (n->n_in > 2 && loom__needs_grad(n, 2))
    loom__accumulate(n, 2, loom_sum(gout[0], (int[]){0, 2, 3}, 3, false));
}

_Static_assert(sizeof(loom__conv_geom) <= sizeof(((loom__node *)0)->i),
               "conv geometry fits in a node");

loom_tensor *loom_conv2d(const loom_tensor *x0, const loom_tensor *weight,
                         const loom_tensor *bias, loom_conv2d_opts o) {
  if (!x0 || !weight)
    return loom_null_argument("conv2d");
  bool batched;
  const loom_tensor *x = as_4d(x0, &batched, "conv2d");
  if (!x || loom__check_float(weight, "conv2d") ||
      (bias && loom__check_float(bias, "conv2d")))
    return NULL;
  loom__conv_geom g = {.n = x->shape[0],
                       .c = x->shape[1],
                       .h = x->shape[2],
                       .w = x->shape[3],
                       .sh = or_default(o.stride[0], 1),
                       .sw = or_default(o.stride[1], 1),
                       .ph = o.padding[0],
                       .pw = o.padding[1],
                       .dh = or_default(o.dilation[0], 1),
                       .dw = or_default(o.dilation[1], 1),
                       .groups = or_default(o.groups, 1)};
  if (weight->ndim != 4 || g.groups < 1 || g.c % g.groups ||
      weight->shape[0] % g.groups || weight->shape[1] * g.groups != g.c)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "conv2d: weight %s does not fit input %s "
                     "with %lld groups",
                     loom_shape_text(weight), loom_shape_text(x0),
                     (long long)g.groups);
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0 ||
      g.ph > LOOM_MAX_ELEMENTS || g.pw > LOOM_MAX_ELEMENTS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "conv2d: stride %lldx%lld, padding %lldx%lld, dilation "
                     "%lldx%lld (stride and dilation >= 1, padding 0 to "
                     "2^59 - 1)",
                     (long long)g.sh, (long long)g.sw, (long long)g.ph,
                     (long long)g.pw, (long long)g.dh, (long long)g.dw);
  g.oc = weight->shape[0];
  g.kh = weight->shape[2];
  g.kw = weight->shape[3];
  g.oh = out_len(g.h, g.kh, g.sh, g.ph, g.dh, false);
  g.ow = out_len(g.w, g.kw, g.sw, g.pw, g.dw, false);
  if (g.oh <= 0 || g.ow <= 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "conv2d: kernel %lldx%lld larger than "
                     "padded input %s",
                     (long long)g.kh, (long long)g.kw, loom_shape_text(x0));
  /* The kernels' im2col buffer: C/groups * kH * kW (a part of the weight)
   * by oH * oW. */
  if (loom_size_mul(weight->shape[1] * g.kh * g.kw,
                    loom_size_mul(g.oh, g.ow, "conv2d"), "conv2d") < 0)
    return NULL;
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.oc))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "conv2d: bias %s for %lld channels",
                     loom_shape_text(bias), (long long)g.oc);
  loom_dtype t = loom__promote(x->dtype, weight->dtype);
  x = loom_to_dtype(x, t);
  const loom_tensor *w = loom_contiguous(loom_to_dtype(weight, t));
  const loom_tensor *b = bias ? loom_contiguous(loom_to_dtype(bias, t)) : NULL;
  loom_tensor *out =
      x && w && (b || !bias)
          ? loom__new(t, 4, (int64_t[]){g.n, g.oc, g.oh, g.ow}, "conv2d")
          : NULL;
  if (!out || loom__kernel_conv2d(out, x, w, b, &g) < 0)
    return NULL;
  loom__node *n = loom__record(&loom__op_conv2d, out, b ? 3 : 2,
                               (const loom_tensor *[]){x, w, b});
  if (n) {
    memcpy(n->i, &g, sizeof g);
    loom__save(n, x);
    loom__save(n, w);
  }
  return unbatch(out, batched);
}

/* ---- conv1d: conv2d over a single row ---- */

loom_tensor *loom_conv1d(const loom_tensor *x, const loom_tensor *weight,
                         const loom_tensor *bias, loom_conv1d_opts o) {
  if (!x || !weight)
    return loom_null_argument("conv1d");
  if (loom__check_float(x, "conv1d") || loom__check_float(weight, "conv1d") ||
      (bias && loom__check_float(bias, "conv1d")))
    return NULL;
  int64_t s = or_default(o.stride, 1), p = o.padding,
          d = or_default(o.dilation, 1), groups = or_default(o.groups, 1);
  if (s < 1 || d < 1 || groups < 1 || p < 0 || p > LOOM_MAX_ELEMENTS ||
      (o.causal && p))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "conv1d: stride %lld, padding %lld%s, dilation %lld, "
                     "groups %lld (stride, dilation and groups >= 1, padding "
                     "0 to 2^59 - 1, and 0 when causal)",
                     (long long)o.stride, (long long)p,
                     o.causal ? " (causal)" : "", (long long)o.dilation,
                     (long long)o.groups);
  if (x->ndim != 2 && x->ndim != 3)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "conv1d: expected (N, C, L) or (C, L), "
                     "got %s",
                     loom_shape_text(x));
  int64_t c = x->shape[x->ndim - 2], len = x->shape[x->ndim - 1];
  if (weight->ndim != 3 || weight->shape[2] < 1 || c % groups ||
      weight->shape[0] % groups || weight->shape[1] * groups != c)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "conv1d: weight %s does not fit input %s with %lld "
                     "groups (C_out x C_in/groups x K, K >= 1)",
                     loom_shape_text(weight), loom_shape_text(x),
                     (long long)groups);
  int64_t k = weight->shape[2];
  if (o.causal ? len < 1 : out_len(len, k, s, p, d, false) < 1)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "conv1d: kernel %lld dilated %lld times longer than "
                     "the padded input %s",
                     (long long)k, (long long)d, loom_shape_text(x));
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    return LOOM_FAIL(LOOM_ERR_SHAPE, "conv1d: bias %s for %lld channels",
                     loom_shape_text(bias), (long long)weight->shape[0]);
  const loom_tensor *row = x;
  if (o.causal && k > 1) {
    int64_t before = loom_size_mul(k - 1, d, "conv1d");
    if (before < 0)
      return NULL;
    row = loom_pad(x, (int64_t[]){before, 0}, 2, LOOM_PAD_CONSTANT, 0);
  }
  loom_tensor *y =
      loom_conv2d(loom_unsqueeze(row, -2), loom_unsqueeze(weight, 2), bias,
                  (loom_conv2d_opts){.stride = {1, s},
                                     .padding = {0, p},
                                     .dilation = {1, d},
                                     .groups = groups});
  return y ? loom_squeeze(y, -2) : NULL;
}

/* ---- pools ---- */

static bool pool_geom(const loom_tensor *x, loom_pool2d_opts o,
                      loom__pool_geom *g, const char *op) {
  *g = (loom__pool_geom){.planes = x->shape[0] * x->shape[1],
                         .h = x->shape[2],
                         .w = x->shape[3],
                         .kh = o.kernel[0],
                         .kw = o.kernel[1],
                         .sh = or_default(o.stride[0], o.kernel[0]),
                         .sw = or_default(o.stride[1], o.kernel[1]),
                         .ph = o.padding[0],
                         .pw = o.padding[1],
                         .dh = or_default(o.dilation[0], 1),
                         .dw = or_default(o.dilation[1], 1),
                         .exclude_pad = o.exclude_pad};
  if (g->kh < 1 || g->kw < 1 || g->kh > LOOM_MAX_ELEMENTS ||
      g->kw > LOOM_MAX_ELEMENTS || g->sh < 1 || g->sw < 1 || g->dh < 1 ||
      g->dw < 1 || g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 ||
      g->pw > g->kw / 2) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: bad kernel %lldx%lld (1 to 2^59 - 1), stride, "
                   "padding (at most half the kernel) or dilation",
                   op, (long long)g->kh, (long long)g->kw);
    return false;
  }
  g->oh = out_len(g->h, g->kh, g->sh, g->ph, g->dh, o.ceil_mode);
  g->ow = out_len(g->w, g->kw, g->sw, g->pw, g->dw, o.ceil_mode);
  if (g->oh <= 0 || g->ow <= 0) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: window larger than input %s", op,
                   loom_shape_text(x));
    return false;
  }
  return true;
}

_Static_assert(sizeof(loom__pool_geom) <= sizeof(((loom__node *)0)->i),
               "pool geometry fits in a node");

/* Node: input x (4-D, contiguous), the geometry in i[]. Backward finds
 * each window's choice again in x (kernel_pool.c says why). */
static void max_pool2d_backward(loom__node *n, loom_tensor *const *gout) {
  loom__pool_geom g;
  memcpy(&g, n->i, sizeof g);
  const loom_tensor *x = loom__input_value(n, 0);
  loom_tensor *go = x ? loom_contiguous(gout[0]) : NULL;
  loom_tensor *gx = go ? loom_empty(go->dtype, x->ndim, x->shape) : NULL;
  if (!gx)
    return;
  loom__kernel_max_pool2d_backward(gx, go, x, &g);
  loom__accumulate(n, 0, gx);
}

/* The same as a recorded scatter_add of gout by the windows' choices,
 * within each plane (its own gradient is a gather by them). */
static void max_pool2d_graph_backward(loom__node *n, loom_tensor *const *gout) {
  loom__pool_geom g;
  memcpy(&g, n->i, sizeof g);
  const loom_tensor *x = loom__input_value(n, 0);
  int64_t shape[4] = {g.planes, 1, g.oh, g.ow};
  loom_tensor *out = x ? loom_empty(x->dtype, 4, shape) : NULL;
  loom_tensor *idx = out ? loom_empty(LOOM_I64, 4, shape) : NULL;
  if (!idx)
    return;
  loom__kernel_max_pool2d(out, idx, x, &g);
  int64_t per = g.oh * g.ow;
  loom_tensor *flat = loom_scatter_add(
      loom_zeros(gout[0]->dtype, LOOM_SHAPE(g.planes, g.h * g.w)), 1,
      loom_reshape(idx, LOOM_SHAPE(g.planes, per)),
      loom_reshape(gout[0], LOOM_SHAPE(g.planes, per)));
  loom__accumulate(n, 0, loom_reshape(flat, x->ndim, x->shape));
}

loom_tensor *loom_max_pool2d(const loom_tensor *x0, loom_pool2d_opts o,
                             loom_tensor **indices) {
  if (!x0)
    return loom_null_argument("max_pool2d");
  bool batched;
  loom__pool_geom g;
  const loom_tensor *x = as_4d(x0, &batched, "max_pool2d");
  if (!x || !pool_geom(x, o, &g, "max_pool2d"))
    return NULL;
  int64_t shape[4] = {x->shape[0], x->shape[1], g.oh, g.ow};
  loom_tensor *out = loom__new(x->dtype, 4, shape, "max_pool2d");
  loom_tensor *idx =
      indices && out ? loom__new(LOOM_I64, 4, shape, "max_pool2d") : NULL;
  if (!out || (indices && !idx))
    return NULL;
  loom__kernel_max_pool2d(out, idx, x, &g);
  loom__node *n = loom__record(&loom__op_max_pool2d, out, 1, &x);
  if (n)
    memcpy(n->i, &g, sizeof g);
  if (indices)
    *indices = unbatch(idx, batched);
  return unbatch(out, batched);
}

static void avg_pool2d_backward(loom__node *n, loom_tensor *const *gout) {
  loom__pool_geom g;
  memcpy(&g, n->i, sizeof g);
  const loom_tensor *x = loom__input(n, 0);
  loom_tensor *go = loom_contiguous(gout[0]);
  loom_tensor *gx = go ? loom_empty(go->dtype, x->ndim, x->shape) : NULL;
  if (!gx)
    return;
  loom__kernel_avg_pool2d(gx, go, &g, true);
  loom__accumulate(n, 0, gx);
}

/* The out x in matrix (dtype t) that averages one dim of a pool: row o
 * holds 1 / count over the inputs [lo, hi) that output o reads. The
 * average pools are separable (a window is a rectangle and its divisor a
 * product of the two dims' counts), so a pool is A_h x A_w^T per plane and
 * its gradient A_h^T gout A_w: linear in gout, which a create_graph pass
 * records. g gives avg_pool2d's windows along h (rows) or w; NULL,
 * adaptive pooling's. */
static loom_tensor *averaging(loom_dtype t, const loom__pool_geom *g, bool rows,
                              int64_t out, int64_t in, const char *op) {
  if (loom_size_mul(out, in, op) < 0)
    return NULL;
  loom_tensor *m = loom_zeros(LOOM_F64, LOOM_SHAPE(out, in));
  if (!m)
    return NULL;
  double *v = (double *)m->data;
  for (int64_t o = 0; o < out; o++) {
    int64_t lo, hi, count;
    if (g) {
      loom__avg_pool_window(o, rows ? g->sh : g->sw, rows ? g->ph : g->pw,
                            rows ? g->kh : g->kw, in, &lo, &hi, &count);
      if (g->exclude_pad)
        count = hi - lo;
    } else {
      loom__adaptive_pool_window(o, out, in, &lo, &hi);
      count = hi - lo;
    }
    for (int64_t i = lo; i < hi && count > 0; i++)
      v[o * in + i] = 1.0 / (double)count;
  }
  return loom_to_dtype(m, t);
}

/* gout (N x C x oh x ow) to the input's gradient: A_h^T gout A_w. */
static void average_back(loom__node *n, const loom_tensor *gout,
                         const loom__pool_geom *g, const char *op) {
  const loom_tensor *x = loom__input(n, 0);
  int64_t h = x->shape[2], w = x->shape[3];
  int64_t oh = gout->shape[2], ow = gout->shape[3];
  loom_tensor *ah = averaging(gout->dtype, g, true, oh, h, op);
  loom_tensor *aw = averaging(gout->dtype, g, false, ow, w, op);
  if (ah && aw)
    loom__accumulate(
        n, 0, loom_matmul(loom_matmul(loom_transpose(ah, 0, 1), gout), aw));
}

static void avg_pool2d_graph_backward(loom__node *n, loom_tensor *const *gout) {
  loom__pool_geom g;
  memcpy(&g, n->i, sizeof g);
  average_back(n, gout[0], &g, "avg_pool2d");
}

loom_tensor *loom_avg_pool2d(const loom_tensor *x0, loom_pool2d_opts o) {
  if (!x0)
    return loom_null_argument("avg_pool2d");
  bool batched;
  loom__pool_geom g;
  const loom_tensor *x = as_4d(x0, &batched, "avg_pool2d");
  if (!x || !pool_geom(x, o, &g, "avg_pool2d"))
    return NULL;
  if (g.dh != 1 || g.dw != 1)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "avg_pool2d: no dilation");
  loom_tensor *out =
      loom__new(x->dtype, 4, (int64_t[]){x->shape[0], x->shape[1], g.oh, g.ow},
                "avg_pool2d");
  if (!out)
    return NULL;
  loom__kernel_avg_pool2d(out, x, &g, false);
  loom__node *n = loom__record(&loom__op_avg_pool2d, out, 1, &x);
  if (n)
    memcpy(n->i, &g, sizeof g);
  return unbatch(out, batched);
}

static void adaptive_avg_pool2d_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input(n, 0);
  loom_tensor *go = loom_contiguous(g[0]);
  loom_tensor *gx = go ? loom_empty(go->dtype, x->ndim, x->shape) : NULL;
  if (!gx)
    return;
  loom__kernel_adaptive_avg_pool2d(gx, go, true);
  loom__accumulate(n, 0, gx);
}

static void adaptive_avg_pool2d_graph_backward(loom__node *n,
                                               loom_tensor *const *g) {
  average_back(n, g[0], NULL, "adaptive_avg_pool2d");
}

loom_tensor *loom_adaptive_avg_pool2d(const loom_tensor *x0, int64_t out_h,
                                      int64_t out_w) {
  if (!x0)
    return loom_null_argument("adaptive_avg_pool2d");
  bool batched;
  const loom_tensor *x = as_4d(x0, &batched, "adaptive_avg_pool2d");
  if (!x)
    return NULL;
  if (out_h < 1 || out_w < 1)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "adaptive_avg_pool2d: output %lldx%lld",
                     (long long)out_h, (long long)out_w);
  /* An empty plane has no mean to give an output pixel (torch refuses it
   * too); an empty batch or channel dim is fine. */
  if (x->shape[2] == 0 || x->shape[3] == 0)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "adaptive_avg_pool2d: input %s has empty planes",
                     loom_shape_text(x0));
  /* The kernel's window bounds multiply output and input positions. */
  if (loom_size_mul(out_h, x->shape[2], "adaptive_avg_pool2d") < 0 ||
      loom_size_mul(out_w, x->shape[3], "adaptive_avg_pool2d") < 0)
    return NULL;
  loom_tensor *out = loom__new(
      x->dtype, 4, (int64_t[]){x->shape[0], x->shape[1], out_h, out_w},
      "adaptive_avg_pool2d");
  if (!out)
    return NULL;
  loom__kernel_adaptive_avg_pool2d(out, x, false);
  loom__record(&loom__op_adaptive_avg_pool2d, out, 1, &x);
  return unbatch(out, batched);
}
