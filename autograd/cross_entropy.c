/* Cross entropy of logits against class indices in one op, label smoothing
 * and ignored targets included: per row, the log-sum-exp and the loss in
 * one pass (tensor/kernel_reduce.c). It replaces the composition of
 * loom_cross_entropy (nn/loss.c) for (N, C) logits without class weights:
 * there log_softmax's output, the gather's scattered gradient, their sum
 * and log_softmax's gradient were four (N, C) tensors at the peak of a
 * step (a translation model's output layer is 10^7 floats a batch); here
 * the tape keeps the logits and each row's max and log-sum-exp (apart: their
 * sum loses the log beside a large max), and backward writes
 * the one gradient, into the logits' own memory when nothing else can
 * read them again (loom__input_disposable: a training step that ended the
 * forward pass's scope before backward). tests/test_cross_entropy.c holds
 * it equal to the composition, forward and backward.
 *
 * Double backward (create_graph): by composition (loom__backward_by_
 * composition), so any order of derivative works. */
#include "node.h"

LOOM__OP_GRAPH(fused_cross_entropy, cross_entropy_backward,
               cross_entropy_graph_backward);

static void cross_entropy_backward(loom__node *n, loom_tensor *const *g) {
  const loom_tensor *x = loom__input_value(n, 0), *target = loom__saved(n, 0),
                    *lse = loom__saved(n, 1);
  const loom_tensor *gc = g[0] ? loom_contiguous(g[0]) : NULL;
  if (!x || !target || !lse || !gc)
    return;
  /* The kernel reads each logit before it writes the gradient there. The
   * gradient is a tensor of its own over that memory, not the logits'
   * tensor, which requires grad and names its node: a gradient handed on
   * as is (by an add, say) may reach the user (loom_autograd_grad). */
  loom_tensor *gin = loom__input_disposable(n, 0)
                         ? loom__to_scope(loom__view_of(x, x->ndim, x->shape,
                                                        x->strides, x->offset))
                         : loom_empty(x->dtype, x->ndim, x->shape);
  if (!gin)
    return;
  loom__kernel_cross_entropy_grad(gin, x, lse, target, gc, n->i[0], n->d[0]);
  loom__accumulate(n, 0, gin);
}

/* The op in public ops, for a create_graph pass: the label-smoothed
 * negative log-likelihood of each row, zero where the target is ignored. */
static int compose(const loom__node *n, loom_tensor *const *in,
                   loom_tensor **out) {
  const loom_tensor *target = loom__saved(n, 0);
  double eps = n->d[0], classes = (double)loom_size(in[0], -1);
  loom_tensor *keep = loom_ne_scalar(target, (double)n->i[0]);
  loom_tensor *safe = loom_masked_fill(target, loom_logical_not(keep), 0);
  loom_tensor *logp = loom_log_softmax(in[0], -1);
  loom_tensor *picked =
      loom_squeeze(loom_gather(logp, -1, loom_unsqueeze(safe, -1)), -1);
  loom_tensor *all = loom_sum(logp, (int[]){-1}, 1, false);
  loom_tensor *loss = loom_neg(loom_add(loom_mul_scalar(picked, 1 - eps),
                                        loom_mul_scalar(all, eps / classes)));
  out[0] = loom_mul(loss, loom_to_dtype(keep, in[0]->dtype));
  return out[0] ? 0 : -1;
}

static void cross_entropy_graph_backward(loom__node *n, loom_tensor *const *g) {
  loom__backward_by_composition(n, g, compose);
}

loom_tensor *loom_fused_cross_entropy(const loom_tensor *logits,
                                      const loom_tensor *target,
                                      int64_t ignore_index,
                                      double label_smoothing) {
  const char *op = "fused_cross_entropy";
  if (!logits || !target)
    return loom_null_argument(op);
  bool rows = logits->ndim >= 1 && target->ndim == logits->ndim - 1 &&
              logits->shape[logits->ndim - 1] >= 1;
  for (int d = 0; rows && d < target->ndim; d++)
    rows = target->shape[d] == logits->shape[d];
  if (!rows)
    return LOOM_FAIL(LOOM_ERR_SHAPE,
                     "%s: logits %s and targets %s (expected (..., C) with "
                     "C >= 1 and (...))",
                     op, loom_shape_text(logits), loom_shape_text(target));
  if (!loom_dtype_is_float(logits->dtype) || target->dtype != LOOM_I64)
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "%s: logits must be float and targets int64, got %s "
                     "and %s",
                     op, loom_dtype_name(logits->dtype),
                     loom_dtype_name(target->dtype));
  double eps = label_smoothing;
  if (!(eps >= 0 && eps <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "%s: label_smoothing %g is outside [0, 1]", op, eps);
  const loom_tensor *x = loom_contiguous(logits);
  const loom_tensor *t = loom_contiguous(target);
  if (!x || !t)
    return NULL;
  int64_t N = t->numel, C = x->shape[x->ndim - 1];
  const int64_t *tv = (const int64_t *)t->data;
  for (int64_t i = 0; i < N; i++)
    if (tv[i] != ignore_index && (tv[i] < 0 || tv[i] >= C))
      return LOOM_FAIL(LOOM_ERR_INDEX,
                       "%s: target %lld (row %lld) out of range for %lld "
                       "classes",
                       op, (long long)tv[i], (long long)i, (long long)C);
  loom_tensor *loss = loom__new(x->dtype, t->ndim, t->shape, op);
  loom_tensor *lse = loss ? loom_empty(x->dtype, 1, (int64_t[]){2 * N}) : NULL;
  if (!lse)
    return NULL;
  loom__kernel_cross_entropy(loss, lse, x, t, ignore_index, eps);
  loom__node *n = loom__record(&loom__op_fused_cross_entropy, loss, 1, &x);
  if (n) {
    n->i[0] = ignore_index;
    n->d[0] = eps;
    loom__save(n, t);
    loom__save(n, lse);
  }
  return loss;
}
