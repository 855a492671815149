/* Every differentiable op passes gradcheck in float64, with broadcast,
 * non-contiguous and repeated-index inputs; the last test fails if any op
 * in the registry was not exercised by one of these checks. */
#include "check_util.h"
#include "unary_cases.h"

#include <string.h>

/* Input flags: the domains of unary_cases.h (POSITIVE, SPREAD, WIDE) and */
enum {
  NONCONTIG = 2,    /* inputs are transposed views (2-D and up) */
  LOOSE = 8,        /* eps 1e-2, for functions through float32 */
  FIRST_ORDER = 32, /* no gradgradcheck: an op of first_order_only below */
};

enum { MAX_IN = 10 }; /* the most inputs a case has */
typedef struct {
  const char *name;
  loom_gradcheck_fn fn;
  int n_in;
  int ndim[MAX_IN];
  int64_t shape[MAX_IN][5];
  int flags;
} gc_case;

#define OUT1(expr)                                                             \
  do {                                                                         \
    (void)n;                                                                   \
    (void)max;                                                                 \
    (void)ctx;                                                                 \
    out[0] = (expr);                                                           \
    return out[0] ? 1 : -1;                                                    \
  } while (0)

#define FN(name)                                                               \
  static int name(loom_tensor *const *in, int n, loom_tensor **out, int max,   \
                  void *ctx)

/* ---- elementwise ---- */
FN(f_add) { OUT1(loom_add(in[0], in[1])); }
FN(f_sub) { OUT1(loom_sub(in[0], in[1])); }
FN(f_add_scaled) { OUT1(loom_add_scaled(in[0], in[1], -2.5)); }
FN(f_mul) { OUT1(loom_mul(in[0], in[1])); }
FN(f_div) { OUT1(loom_div(in[0], in[1])); }
FN(f_pow) { OUT1(loom_pow(in[0], in[1])); }
FN(f_maximum) { OUT1(loom_maximum(in[0], in[1])); }
FN(f_minimum) { OUT1(loom_minimum(in[0], in[1])); }

/* ---- views and copies ---- */
FN(f_reshape) { OUT1(loom_reshape(in[0], LOOM_SHAPE(4, -1))); }
FN(f_view) { OUT1(loom_view(in[0], LOOM_SHAPE(3, 2, 2))); }
FN(f_flatten) { OUT1(loom_flatten(in[0], 1, 2)); }
FN(f_squeeze) { OUT1(loom_unsqueeze(loom_squeeze(in[0], 1), -1)); }
FN(f_squeeze_all) { OUT1(loom_squeeze_all(in[0])); }
FN(f_transpose) { OUT1(loom_mul(loom_transpose(in[0], 0, 2), in[1])); }
FN(f_permute) { OUT1(loom_mul(loom_permute(in[0], (int[]){2, 0, 1}), in[1])); }
FN(f_narrow) { OUT1(loom_narrow(in[0], 1, 1, 2)); }
FN(f_slice) { OUT1(loom_slice(in[0], 0, 1, 6, 2)); }
FN(f_select) { OUT1(loom_select(in[0], 1, -1)); }
FN(f_expand) { OUT1(loom_mul(loom_expand(in[0], LOOM_SHAPE(2, 3, 4)), in[1])); }
FN(f_contiguous) { OUT1(loom_contiguous(loom_transpose(in[0], 0, 1))); }
FN(f_clone) { OUT1(loom_mul(loom_clone(in[0]), in[0])); }
FN(f_to_dtype) {
  OUT1(loom_to_dtype(loom_mul_scalar(loom_to_dtype(in[0], LOOM_F32), 2),
                     LOOM_F64));
}
FN(f_concat) { OUT1(loom_concat(in, 3, 1)); }
FN(f_stack) { OUT1(loom_stack(in, 2, 1)); }
FN(f_split) {
  (void)max;
  (void)ctx;
  (void)n;
  loom_tensor *parts[4];
  int k = loom_chunk(in[0], 3, 1, parts, 4);
  if (k != 3)
    return -1;
  out[0] = loom_mul(parts[0], parts[2]);
  out[1] = parts[1];
  return 2;
}

/* ---- rearranging and masks ---- */
FN(f_flip) { OUT1(loom_flip(in[0], (int[]){0, -1}, 2)); }
FN(f_roll) { OUT1(loom_roll(in[0], (int64_t[]){-1, 5}, (int[]){1, 0}, 2)); }
FN(f_roll_flat) { OUT1(loom_roll(in[0], (int64_t[]){4}, NULL, 1)); }
FN(f_pad) {
  OUT1(loom_pad(in[0], (int64_t[]){2, -1, 1, 2}, 4, LOOM_PAD_CONSTANT, 3));
}
FN(f_pad_reflect) {
  OUT1(loom_pad(in[0], (int64_t[]){2, 3, -1, 1}, 4, LOOM_PAD_REFLECT, 0));
}
FN(f_pad_replicate) {
  OUT1(loom_pad(in[0], (int64_t[]){3, -1}, 2, LOOM_PAD_REPLICATE, 0));
}
FN(f_pad_circular) {
  OUT1(loom_pad(in[0], (int64_t[]){1, 2, 3, 0}, 4, LOOM_PAD_CIRCULAR, 0));
}
FN(f_repeat) { OUT1(loom_repeat(in[0], 3, (int64_t[]){2, 1, 3})); }
FN(f_tile) { OUT1(loom_tile(in[0], 1, (int64_t[]){2})); }
FN(f_tril) { OUT1(loom_tril(in[0], 1)); }
FN(f_triu) { OUT1(loom_triu(in[0], -1)); }
FN(f_masked_select) {
  uint8_t m[] = {1, 0, 1, 1, 0, 1, 1, 1};
  OUT1(loom_masked_select(in[0],
                          loom_from_array(LOOM_BOOL, m, LOOM_SHAPE(2, 1, 4))));
}

/* ---- indexing ---- */
static loom_tensor *ix(int64_t n, const int64_t *v) {
  return loom_from_array(LOOM_I64, v, 1, &n);
}
FN(f_gather) {
  int64_t idx[] = {0, 2, 2, 1, 0, 0};
  OUT1(loom_gather(in[0], 1, loom_from_array(LOOM_I64, idx, LOOM_SHAPE(2, 3))));
}
FN(f_index_select) {
  OUT1(loom_index_select(in[0], 0, ix(5, (int64_t[]){3, 0, 3, 1, 3})));
}
FN(f_scatter_add) {
  int64_t idx[] = {1, 1, 0, 3, 3, 3};
  OUT1(loom_scatter_add(
      in[0], 1, loom_from_array(LOOM_I64, idx, LOOM_SHAPE(2, 3)), in[1]));
}
FN(f_index_add) {
  OUT1(loom_index_add(in[0], 0, ix(3, (int64_t[]){2, 0, 2}), in[1], 0.5));
}
FN(f_embedding) {
  int64_t idx[] = {1, 3, 3, 0, 2, 1};
  OUT1(loom_embedding(in[0], loom_from_array(LOOM_I64, idx, LOOM_SHAPE(2, 3)),
                      -1));
}
FN(f_masked_fill) {
  uint8_t m[] = {1, 0, 0, 1};
  OUT1(loom_masked_fill(in[0], loom_from_array(LOOM_BOOL, m, LOOM_SHAPE(4)),
                        -7));
}
FN(f_where) {
  uint8_t m[] = {1, 0, 1, 0, 0, 1};
  OUT1(loom_where(loom_from_array(LOOM_BOOL, m, LOOM_SHAPE(2, 3)), in[0],
                  in[1]));
}

/* ---- reductions ---- */
FN(f_sum) { OUT1(loom_sum(in[0], (int[]){0, 2}, 2, false)); }
FN(f_sum_keep) { OUT1(loom_sum(in[0], (int[]){1}, 1, true)); }
FN(f_mean) { OUT1(loom_mean(in[0], (int[]){-1}, 1, false)); }
FN(f_var) { OUT1(loom_var(in[0], (int[]){1}, 1, 1, false)); }
FN(f_std) { OUT1(loom_std(in[0], NULL, 0, 0, true)); }
FN(f_prod) { OUT1(loom_prod(in[0], (int[]){1}, 1, false)); }
FN(f_prod_zero) {
  loom_tensor *z =
      loom_mul(in[0], loom_from_array(LOOM_F64, (double[]){1, 0, 1, 1, 1, 1},
                                      LOOM_SHAPE(2, 3)));
  OUT1(loom_prod(z, NULL, 0, false));
}
/* Reduced over dims 0 and 2: one group with two zeros, one with one. */
FN(f_prod_two_zeros) {
  double mask[12];
  for (int i = 0; i < 12; i++)
    mask[i] = i == 0 || i == 3 || i == 7 ? 0 : 1;
  loom_tensor *z =
      loom_mul(in[0], loom_from_array(LOOM_F64, mask, LOOM_SHAPE(2, 3, 2)));
  OUT1(loom_prod(z, (int[]){0, 2}, 2, true));
}
FN(f_norm2) { OUT1(loom_norm(in[0], 2, (int[]){1}, 1, false)); }
FN(f_norm1) { OUT1(loom_norm(in[0], 1, NULL, 0, false)); }
FN(f_norm3) { OUT1(loom_norm(in[0], 3, (int[]){0}, 1, true)); }
FN(f_norm_inf) { OUT1(loom_norm(in[0], INFINITY, (int[]){1}, 1, false)); }
FN(f_logsumexp) { OUT1(loom_logsumexp(in[0], (int[]){1}, 1, false)); }
FN(f_amax) { OUT1(loom_amax(in[0], (int[]){0, 1}, 2, false)); }
FN(f_amin) { OUT1(loom_amin(in[0], (int[]){1}, 1, true)); }
FN(f_max) { OUT1(loom_max(in[0], 1, false, NULL)); }
FN(f_min) { OUT1(loom_min(in[0], 0, true, NULL)); }
FN(f_cumsum) { OUT1(loom_cumsum(in[0], 1)); }
FN(f_cumprod) { OUT1(loom_cumprod(in[0], -1)); }
FN(f_cumprod_zeros) {
  loom_tensor *z = loom_mul(
      in[0], loom_from_array(LOOM_F64, (double[]){1, 0, 1, 0, 1, 1, 1, 1, 0},
                             LOOM_SHAPE(3, 3)));
  OUT1(loom_cumprod(z, 0));
}
FN(f_sort) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_sort(in[0], 0, true, NULL);
  return out[0] ? 1 : -1;
}
FN(f_topk) {
  (void)n, (void)max, (void)ctx;
  out[0] = loom_topk(in[0], 2, -1, false, NULL);
  return out[0] ? 1 : -1;
}
FN(f_softmax) { OUT1(loom_softmax(in[0], 1)); }
FN(f_log_softmax) { OUT1(loom_log_softmax(in[0], -1)); }
/* logits (4, 5): one row's target ignored, label smoothing 0.2. */
FN(f_fused_cross_entropy) {
  OUT1(loom_fused_cross_entropy(in[0], ix(4, (int64_t[]){2, -1, 0, 4}), -1,
                                0.2));
}
FN(f_layer_norm) { OUT1(loom_layer_norm(in[0], 2, in[1], in[2], 1e-5)); }
FN(f_layer_norm_plain) { OUT1(loom_layer_norm(in[0], 1, NULL, NULL, 0.1)); }
FN(f_batch_norm) {
  OUT1(loom_batch_norm(in[0], in[1], in[2], NULL, NULL, 1e-5, NULL, NULL));
}
FN(f_batch_norm_plain) {
  OUT1(loom_batch_norm(in[0], NULL, NULL, NULL, NULL, 0.1, NULL, NULL));
}
FN(f_batch_norm_eval) {
  loom_tensor *mean =
      loom_from_array(LOOM_F64, (double[]){0.3, -1}, LOOM_SHAPE(2));
  loom_tensor *var =
      loom_from_array(LOOM_F64, (double[]){0.5, 2}, LOOM_SHAPE(2));
  OUT1(loom_batch_norm(in[0], in[1], in[2], mean, var, 1e-3, NULL, NULL));
}
FN(f_batch_norm_relu) {
  OUT1(loom_batch_norm_relu(in[0], in[1], in[2], NULL, NULL, 1e-5, NULL, NULL));
}
FN(f_batch_norm_relu_eval) {
  loom_tensor *mean =
      loom_from_array(LOOM_F64, (double[]){0.3, -1}, LOOM_SHAPE(2));
  loom_tensor *var =
      loom_from_array(LOOM_F64, (double[]){0.5, 2}, LOOM_SHAPE(2));
  OUT1(loom_batch_norm_relu(in[0], in[1], in[2], mean, var, 1e-3, NULL, NULL));
}
FN(f_layer_norm_bias) { OUT1(loom_layer_norm(in[0], 1, NULL, in[1], 1e-5)); }
FN(f_layer_norm_weight) { OUT1(loom_layer_norm(in[0], 2, in[1], NULL, 1e-3)); }

/* ---- products ---- */
FN(f_dot) { OUT1(loom_matmul(in[0], in[1])); }
FN(f_matmul) { OUT1(loom_matmul(in[0], in[1])); }
FN(f_addmm) { OUT1(loom_addmm(in[0], in[1], in[2], 0.5, -1.5)); }
FN(f_bmm) { OUT1(loom_bmm(in[0], in[1])); }
FN(f_baddbmm) { OUT1(loom_baddbmm(in[0], in[1], in[2], 2, 0.5)); }
FN(f_linear) { OUT1(loom_linear(in[0], in[1], in[2])); }

FN(f_einsum_matmul) { OUT1(loom_einsum("ij,jk->ik", in, 2)); }
FN(f_einsum_diagonal) { OUT1(loom_einsum("iji->ij", in, 1)); }
FN(f_einsum_three) { OUT1(loom_einsum("bn,anm,bm->ba", in, 3)); }
FN(f_einsum_broadcast) { OUT1(loom_einsum("...i,...i", in, 2)); }
FN(f_einsum_size1) { OUT1(loom_einsum("ij,j->ij", in, 2)); }

/* ---- convolution, pooling, dropout ---- */
FN(f_conv) {
  OUT1(loom_conv2d(in[0], in[1], in[2],
                   (loom_conv2d_opts){.stride = {2, 1},
                                      .padding = {1, 1},
                                      .dilation = {1, 2},
                                      .groups = 2}));
}
FN(f_conv_1x1) { OUT1(loom_conv2d(in[0], in[1], NULL, (loom_conv2d_opts){0})); }
FN(f_conv1d) {
  OUT1(loom_conv1d(in[0], in[1], in[2],
                   (loom_conv1d_opts){
                       .stride = 2, .padding = 2, .dilation = 2, .groups = 2}));
}
FN(f_conv1d_causal) {
  OUT1(loom_conv1d(in[0], in[1], NULL,
                   (loom_conv1d_opts){.dilation = 2, .causal = true}));
}
FN(f_max_pool) {
  OUT1(loom_max_pool2d(
      in[0],
      (loom_pool2d_opts){.kernel = {2, 3}, .stride = {2, 2}, .padding = {1, 1}},
      NULL));
}
FN(f_avg_pool) {
  OUT1(loom_avg_pool2d(in[0], (loom_pool2d_opts){.kernel = {3, 3},
                                                 .stride = {2, 2},
                                                 .padding = {1, 1},
                                                 .ceil_mode = true}));
}
FN(f_avg_pool_ex) {
  OUT1(loom_avg_pool2d(in[0], (loom_pool2d_opts){.kernel = {2, 2},
                                                 .padding = {1, 1},
                                                 .exclude_pad = true}));
}
FN(f_adaptive) { OUT1(loom_adaptive_avg_pool2d(in[0], 3, 2)); }
FN(f_adaptive_up) { OUT1(loom_adaptive_avg_pool2d(in[0], 3, 5)); }
FN(f_conv_unbatched) {
  OUT1(loom_conv2d(in[0], in[1], in[2],
                   (loom_conv2d_opts){.stride = {1, 2}, .padding = {2, 0}}));
}
FN(f_max_pool_ceil) {
  OUT1(loom_max_pool2d(in[0],
                       (loom_pool2d_opts){.kernel = {2, 2},
                                          .stride = {2, 1},
                                          .dilation = {2, 1},
                                          .ceil_mode = true},
                       NULL));
}
FN(f_unfold) {
  OUT1(loom_unfold(in[0], (loom_fold_opts){.kernel = {2, 3},
                                           .dilation = {1, 2},
                                           .padding = {1, 0},
                                           .stride = {2, 1}}));
}
FN(f_unfold_unbatched) {
  OUT1(loom_unfold(in[0], (loom_fold_opts){.kernel = {2, 2}}));
}
FN(f_fold) {
  OUT1(loom_fold(
      in[0], 3, 4,
      (loom_fold_opts){.kernel = {2, 2}, .padding = {1, 1}, .stride = {2, 2}}));
}
FN(f_fold_dilated) {
  OUT1(loom_fold(in[0], 4, 4,
                 (loom_fold_opts){.kernel = {2, 2}, .dilation = {2, 2}}));
}
FN(f_dropout) {
  loom_rng *g = loom_rng_new(7); /* the same mask in every evaluation */
  loom_tensor *y = loom_dropout(in[0], 0.4, true, g);
  loom_rng_free(g);
  OUT1(y);
}

/* q (2, 2, 3, 4), k (2, 2, 4, 4), v (2, 2, 4, 3): an additive mask with a
 * blocked key, the causal limit and dropout (one mask in every call). */
FN(f_fused_attention) {
  loom_tensor *mask = loom_reshape(
      loom_mul_scalar(loom_arange(LOOM_F64, 0, 12, 1), 0.1), LOOM_SHAPE(3, 4));
  loom_set(mask, (int64_t[]){2, 1}, -INFINITY);
  loom_rng *g = loom_rng_new(5);
  loom_tensor *y =
      loom_fused_attention(in[0], in[1], in[2], mask, true, 0.7, 0.25, g);
  loom_rng_free(g);
  OUT1(y);
}

/* ---- fused recurrences: inputs xp, w_hh, b_hh, h0 (, c0, peepholes) ---- */
static loom_tensor *seq_lengths(void) {
  return loom_from_array(LOOM_I64, (int64_t[]){3, 1}, LOOM_SHAPE(2));
}
FN(f_lstm_seq) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *fin[2];
  if (loom_lstm_sequence(in[0], in[1], in[2], in[3], in[4], in + 5,
                         seq_lengths(), true, &out[0], &fin[0], &fin[1]) < 0)
    return -1;
  out[1] = fin[0];
  out[2] = fin[1];
  return 3;
}
FN(f_lstm_seq_plain) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *h, *c;
  if (loom_lstm_sequence(in[0], in[1], NULL, in[2], in[3], NULL, NULL, false,
                         &out[0], &h, &c) < 0)
    return -1;
  out[1] = c;
  return 2;
}
/* The input part computed by the op: x, w_ih, b_ih, w_hh, b_hh, h0, c0,
 * peepholes; and without biases. */
FN(f_lstm_seq_input) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *fin[2];
  if (loom_lstm_sequence_input(in[0], in[1], in[2], in[3], in[4], in[5], in[6],
                               in + 7, seq_lengths(), true, &out[0], &fin[0],
                               &fin[1]) < 0)
    return -1;
  out[1] = fin[0];
  out[2] = fin[1];
  return 3;
}
FN(f_lstm_seq_input_plain) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *h, *c;
  if (loom_lstm_sequence_input(in[0], in[1], NULL, in[2], NULL, in[3], in[4],
                               NULL, NULL, false, &out[0], &h, &c) < 0)
    return -1;
  out[1] = c;
  return 2;
}
/* Lengths with an empty sequence: its row keeps the initial states. */
static loom_tensor *seq_lengths_empty(void) {
  return loom_from_array(LOOM_I64, (int64_t[]){0, 2}, LOOM_SHAPE(2));
}
FN(f_lstm_seq_peephole) {
  (void)n, (void)max, (void)ctx;
  if (loom_lstm_sequence(in[0], in[1], in[2], in[3], in[4], in + 5, NULL, false,
                         &out[0], &out[1], &out[2]) < 0)
    return -1;
  return 3;
}
FN(f_lstm_seq_lengths) {
  (void)n, (void)max, (void)ctx;
  if (loom_lstm_sequence(in[0], in[1], in[2], in[3], in[4], NULL,
                         seq_lengths_empty(), false, &out[0], &out[1],
                         &out[2]) < 0)
    return -1;
  return 3;
}
FN(f_gru_seq_reverse) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence(in[0], in[1], in[2], in[3], NULL, true, &out[0],
                        &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_rnn_seq_relu_lengths) {
  (void)n, (void)max, (void)ctx;
  if (loom_rnn_sequence(in[0], in[1], in[2], in[3], seq_lengths_empty(), true,
                        true, &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_gru_seq) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence(in[0], in[1], in[2], in[3], seq_lengths(), false,
                        &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
/* The input part computed by the op: x, w_ih, b_ih, w_hh, b_hh, h0; and
 * without b_ih, forward. */
FN(f_gru_seq_input) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence_input(in[0], in[1], in[2], in[3], in[4], in[5],
                              seq_lengths(), true, &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_gru_seq_input_no_bias_ih) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence_input(in[0], in[1], NULL, in[2], in[3], in[4], NULL,
                              false, &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
/* Without biases (a bias=False layer): GRU xp, w_hh, h0, with lengths,
 * reverse; GRU x, w_ih, w_hh, h0 with the input part in the op; RNN xp,
 * w_hh, h0, tanh with lengths, reverse, and relu. */
FN(f_gru_seq_no_bias) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence(in[0], in[1], NULL, in[2], seq_lengths(), true,
                        &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_gru_seq_input_no_bias) {
  (void)n, (void)max, (void)ctx;
  if (loom_gru_sequence_input(in[0], in[1], NULL, in[2], NULL, in[3],
                              seq_lengths(), false, &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_rnn_seq_no_bias) {
  (void)n, (void)max, (void)ctx;
  if (loom_rnn_sequence(in[0], in[1], NULL, in[2], seq_lengths(), true, false,
                        &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_rnn_seq_relu_no_bias) {
  (void)n, (void)max, (void)ctx;
  if (loom_rnn_sequence(in[0], in[1], NULL, in[2], NULL, false, true, &out[0],
                        &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_rnn_seq) {
  (void)n, (void)max, (void)ctx;
  if (loom_rnn_sequence(in[0], in[1], in[2], in[3], seq_lengths(), true, false,
                        &out[0], &out[1]) < 0)
    return -1;
  return 2;
}
FN(f_rnn_seq_relu) {
  (void)n, (void)max, (void)ctx;
  if (loom_rnn_sequence(in[0], in[1], in[2], in[3], NULL, false, true, &out[0],
                        &out[1]) < 0)
    return -1;
  return 2;
}

/* ---- custom function ---- */
static int cube_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                    loom_tensor **out) {
  (void)n;
  loom_function_save(c, in[0]);
  out[0] = loom_mul(loom_square(in[0]), in[0]);
  out[1] = loom_mul_scalar(in[1], 2);
  return 0;
}
static int cube_bwd(loom_function_ctx *c, loom_tensor *const *g,
                    loom_tensor **gin) {
  const loom_tensor *x = loom_function_saved(c, 0);
  gin[0] = loom_mul(g[0], loom_mul_scalar(loom_square(x), 3));
  gin[1] = loom_mul_scalar(g[1], 2);
  return 0;
}
static const loom_function cube = {"cube_and_double", 2, 2, cube_fwd, cube_bwd};
FN(f_custom) {
  (void)n;
  (void)max;
  (void)ctx;
  loom_tensor *o[2];
  if (loom_function_apply(&cube, in, o, NULL) < 0)
    return -1;
  out[0] = loom_add(o[0], o[1]);
  out[1] = o[1];
  return 2;
}

/* ---- checkpointing: a segment of two inputs and two outputs ---- */
static int segment(loom_tensor *const *in, int n, loom_tensor **out, int max,
                   void *ctx) {
  (void)n, (void)max, (void)ctx;
  loom_tensor *h = loom_tanh(loom_mul(in[0], in[1]));
  out[0] = loom_mul(h, in[0]);
  out[1] = loom_sum(h, (int[]){0}, 1, false);
  return 2;
}
FN(f_checkpoint) {
  (void)n, (void)max, (void)ctx;
  return loom_checkpoint(segment, NULL, in, 2, out, 2, NULL) < 0 ? -1 : 2;
}

#define S(...)                                                                 \
  { __VA_ARGS__ }
static const gc_case cases[] = {
    {"add broadcast", f_add, 2, S(2, 1), S(S(2, 3), S(3)), 0},
    {"add noncontig", f_add, 2, S(2, 2), S(S(3, 4), S(3, 4)), NONCONTIG},
    {"sub broadcast", f_sub, 2, S(3, 2), S(S(2, 1, 3), S(4, 3)), 0},
    {"add_scaled", f_add_scaled, 2, S(2, 2), S(S(2, 3), S(1, 3)), 0},
    {"mul broadcast", f_mul, 2, S(3, 2), S(S(2, 1, 3), S(4, 3)), 0},
    {"div", f_div, 2, S(2, 1), S(S(2, 3), S(3)), POSITIVE},
    {"pow", f_pow, 2, S(2, 2), S(S(2, 3), S(2, 3)), POSITIVE},
    {"maximum", f_maximum, 2, S(2, 2), S(S(2, 3), S(2, 3)), SPREAD},
    {"minimum", f_minimum, 2, S(2, 1), S(S(2, 3), S(3)), SPREAD},
    {"reshape", f_reshape, 1, S(3), S(S(2, 3, 2)), NONCONTIG},
    {"view", f_view, 1, S(2), S(S(4, 3)), 0},
    {"flatten", f_flatten, 1, S(3), S(S(2, 3, 2)), 0},
    {"squeeze/unsqueeze", f_squeeze, 1, S(3), S(S(2, 1, 3)), 0},
    {"squeeze_all", f_squeeze_all, 1, S(3), S(S(1, 3, 1)), 0},
    {"transpose", f_transpose, 2, S(3, 3), S(S(2, 3, 4), S(4, 3, 2)), 0},
    {"permute", f_permute, 2, S(3, 3), S(S(2, 3, 4), S(4, 2, 3)), 0},
    {"narrow", f_narrow, 1, S(2), S(S(3, 4)), NONCONTIG},
    {"slice step", f_slice, 1, S(2), S(S(7, 2)), 0},
    {"select", f_select, 1, S(3), S(S(2, 3, 2)), 0},
    {"expand", f_expand, 2, S(2, 3), S(S(3, 1), S(2, 3, 4)), 0},
    {"contiguous", f_contiguous, 1, S(2), S(S(3, 4)), 0},
    {"clone", f_clone, 1, S(2), S(S(2, 3)), 0},
    {"to_dtype", f_to_dtype, 1, S(1), S(S(4)), LOOSE},
    {"concat", f_concat, 3, S(2, 2, 2), S(S(2, 1), S(2, 3), S(2, 2)), 0},
    {"stack", f_stack, 2, S(2, 2), S(S(2, 3), S(2, 3)), NONCONTIG},
    {"chunk", f_split, 1, S(2), S(S(2, 6)), 0},
    {"flip", f_flip, 1, S(3), S(S(3, 2, 4)), NONCONTIG},
    {"roll", f_roll, 1, S(2), S(S(3, 4)), NONCONTIG},
    {"roll flattened", f_roll_flat, 1, S(2), S(S(2, 3)), 0},
    {"pad constant", f_pad, 1, S(2), S(S(3, 4)), NONCONTIG},
    {"pad reflect", f_pad_reflect, 1, S(3), S(S(2, 3, 4)), NONCONTIG},
    {"pad replicate", f_pad_replicate, 1, S(2), S(S(2, 3)), 0},
    {"pad circular", f_pad_circular, 1, S(2), S(S(4, 3)), NONCONTIG},
    {"repeat", f_repeat, 1, S(2), S(S(2, 3)), NONCONTIG},
    {"tile", f_tile, 1, S(2), S(S(3, 2)), 0},
    {"tril batched", f_tril, 1, S(3), S(S(2, 3, 4)), NONCONTIG},
    {"triu", f_triu, 1, S(2), S(S(4, 3)), 0},
    {"masked_select broadcast", f_masked_select, 1, S(2), S(S(3, 1)),
     NONCONTIG},
    {"gather repeated", f_gather, 1, S(2), S(S(2, 4)), 0},
    {"index_select repeated", f_index_select, 1, S(2), S(S(4, 3)), NONCONTIG},
    {"scatter_add", f_scatter_add, 2, S(2, 2), S(S(2, 4), S(2, 3)), 0},
    {"index_add", f_index_add, 2, S(2, 2), S(S(3, 2), S(3, 2)), 0},
    {"embedding repeated", f_embedding, 1, S(2), S(S(4, 3)), 0},
    {"masked_fill", f_masked_fill, 1, S(2), S(S(3, 4)), 0},
    {"where", f_where, 2, S(2, 1), S(S(2, 3), S(3)), 0},
    {"sum dims", f_sum, 1, S(3), S(S(2, 3, 4)), NONCONTIG},
    {"sum keepdim", f_sum_keep, 1, S(2), S(S(3, 4)), 0},
    {"mean", f_mean, 1, S(2), S(S(3, 4)), 0},
    {"var", f_var, 1, S(2), S(S(3, 4)), 0},
    {"std", f_std, 1, S(2), S(S(3, 4)), 0},
    {"prod", f_prod, 1, S(2), S(S(2, 4)), NONCONTIG},
    {"prod with zero", f_prod_zero, 1, S(2), S(S(2, 3)), 0},
    {"prod with two zeros", f_prod_two_zeros, 1, S(3), S(S(2, 3, 2)),
     NONCONTIG},
    {"norm 2", f_norm2, 1, S(2), S(S(3, 4)), 0},
    {"norm 1", f_norm1, 1, S(2), S(S(3, 4)), SPREAD},
    {"norm 3", f_norm3, 1, S(2), S(S(3, 4)), SPREAD},
    {"norm inf", f_norm_inf, 1, S(2), S(S(3, 4)), SPREAD},
    {"logsumexp", f_logsumexp, 1, S(2), S(S(3, 4)), 0},
    {"amax", f_amax, 1, S(3), S(S(2, 3, 2)), SPREAD},
    {"amin", f_amin, 1, S(2), S(S(3, 4)), SPREAD},
    {"max dim", f_max, 1, S(2), S(S(3, 4)), SPREAD | NONCONTIG},
    {"min dim", f_min, 1, S(2), S(S(3, 4)), SPREAD},
    {"cumsum", f_cumsum, 1, S(3), S(S(2, 3, 4)), NONCONTIG},
    {"cumprod", f_cumprod, 1, S(2), S(S(3, 4)), NONCONTIG},
    {"cumprod with zeros", f_cumprod_zeros, 1, S(2), S(S(3, 3)), 0},
    {"sort descending", f_sort, 1, S(2), S(S(4, 3)), SPREAD | NONCONTIG},
    {"topk smallest", f_topk, 1, S(2), S(S(3, 5)), SPREAD},
    {"softmax", f_softmax, 1, S(3), S(S(2, 4, 3)), 0},
    {"log_softmax", f_log_softmax, 1, S(2), S(S(3, 5)), NONCONTIG},
    {"fused_cross_entropy", f_fused_cross_entropy, 1, S(2), S(S(4, 5)),
     NONCONTIG},
    {"layer_norm affine", f_layer_norm, 3, S(3, 2, 2),
     S(S(2, 4, 3), S(4, 3), S(4, 3)), 0},
    {"layer_norm noncontig", f_layer_norm, 3, S(3, 2, 2),
     S(S(3, 2, 5), S(2, 5), S(2, 5)), NONCONTIG},
    {"layer_norm plain", f_layer_norm_plain, 1, S(2), S(S(4, 6)), 0},
    {"layer_norm bias only", f_layer_norm_bias, 2, S(2, 1), S(S(3, 4), S(4)),
     0},
    {"layer_norm weight only", f_layer_norm_weight, 2, S(3, 2),
     S(S(2, 3, 4), S(3, 4)), NONCONTIG},
    {"batch_norm train", f_batch_norm, 3, S(4, 1, 1),
     S(S(3, 2, 2, 3), S(2), S(2)), 0},
    {"batch_norm 2-D noncontig", f_batch_norm_plain, 1, S(2), S(S(5, 3)),
     NONCONTIG},
    {"batch_norm eval", f_batch_norm_eval, 3, S(3, 1, 1),
     S(S(4, 2, 3), S(2), S(2)), 0},
    {"batch_norm_relu train", f_batch_norm_relu, 3, S(4, 1, 1),
     S(S(3, 2, 2, 3), S(2), S(2)), 0},
    {"batch_norm_relu eval noncontig", f_batch_norm_relu_eval, 3, S(3, 1, 1),
     S(S(4, 2, 3), S(2), S(2)), NONCONTIG},
    {"dot", f_dot, 2, S(1, 1), S(S(4), S(4)), 0},
    {"matrix-vector", f_matmul, 2, S(2, 1), S(S(3, 4), S(4)), 0},
    {"vector-matrix", f_matmul, 2, S(1, 2), S(S(3), S(3, 4)), 0},
    {"mm noncontig", f_matmul, 2, S(2, 2), S(S(3, 4), S(4, 2)), NONCONTIG},
    {"batched broadcast", f_matmul, 2, S(4, 3), S(S(2, 1, 3, 4), S(3, 4, 2)),
     0},
    {"batched x matrix", f_matmul, 2, S(3, 2), S(S(2, 3, 4), S(4, 2)), 0},
    {"addmm", f_addmm, 3, S(1, 2, 2), S(S(4), S(2, 3), S(3, 4)), 0},
    {"bmm", f_bmm, 2, S(3, 3), S(S(2, 2, 3), S(2, 3, 2)), 0},
    {"baddbmm", f_baddbmm, 3, S(3, 3, 3), S(S(1, 2, 1), S(2, 2, 3), S(2, 3, 2)),
     0},
    {"linear 3-D", f_linear, 3, S(3, 2, 1), S(S(2, 2, 3), S(4, 3), S(4)), 0},
    {"einsum matmul", f_einsum_matmul, 2, S(2, 2), S(S(3, 4), S(4, 2)),
     NONCONTIG},
    {"einsum diagonal", f_einsum_diagonal, 1, S(3), S(S(3, 2, 3)), 0},
    {"einsum three operands", f_einsum_three, 3, S(2, 3, 2),
     S(S(2, 3), S(2, 3, 4), S(2, 4)), 0},
    {"einsum ellipsis broadcast", f_einsum_broadcast, 2, S(3, 2),
     S(S(2, 1, 3), S(4, 3)), 0},
    {"einsum size-1 broadcast", f_einsum_size1, 2, S(2, 1), S(S(3, 4), S(1)),
     0},
    {"conv2d groups", f_conv, 3, S(4, 4, 1),
     S(S(2, 4, 5, 5), S(4, 2, 3, 2), S(4)), 0},
    {"conv2d 1x1", f_conv_1x1, 2, S(3, 4), S(S(3, 4, 4), S(2, 3, 1, 1)), 0},
    {"conv2d unbatched strided", f_conv_unbatched, 3, S(3, 4, 1),
     S(S(2, 3, 5), S(3, 2, 2, 3), S(3)), NONCONTIG},
    {"conv1d groups", f_conv1d, 3, S(3, 3, 1), S(S(2, 4, 7), S(4, 2, 3), S(4)),
     0},
    {"conv1d causal", f_conv1d_causal, 2, S(2, 3), S(S(3, 6), S(2, 3, 3)),
     NONCONTIG},
    {"unfold", f_unfold, 1, S(4), S(S(2, 2, 5, 6)), 0},
    {"unfold unbatched", f_unfold_unbatched, 1, S(3), S(S(2, 3, 4)), NONCONTIG},
    {"fold", f_fold, 1, S(3), S(S(1, 8, 6)), 0},
    {"fold dilated unbatched", f_fold_dilated, 1, S(2), S(S(4, 4)), 0},
    {"max_pool2d", f_max_pool, 1, S(4), S(S(1, 2, 5, 6)), SPREAD},
    {"max_pool2d ceil dilated unbatched", f_max_pool_ceil, 1, S(3),
     S(S(2, 5, 6)), SPREAD},
    {"avg_pool2d", f_avg_pool, 1, S(4), S(S(2, 1, 5, 5)), 0},
    {"avg_pool2d exclude pad", f_avg_pool_ex, 1, S(3), S(S(2, 3, 4)), 0},
    {"adaptive_avg_pool2d", f_adaptive, 1, S(4), S(S(1, 2, 5, 7)), 0},
    {"adaptive_avg_pool2d unbatched upsampling", f_adaptive_up, 1, S(3),
     S(S(2, 4, 3)), 0},
    {"dropout", f_dropout, 1, S(2), S(S(4, 5)), 0},
    {"fused_attention", f_fused_attention, 3, S(4, 4, 4),
     S(S(2, 2, 3, 4), S(2, 2, 4, 4), S(2, 2, 4, 3)), NONCONTIG},
    {"custom function", f_custom, 2, S(2, 1), S(S(2, 3), S(3)), 0},
    {"checkpoint", f_checkpoint, 2, S(2, 1), S(S(2, 3), S(3)), 0},
    {"lstm_sequence peephole lengths reverse", f_lstm_seq, 8,
     S(3, 2, 1, 2, 2, 1, 1, 1),
     S(S(3, 2, 8), S(8, 2), S(8), S(2, 2), S(2, 2), S(2), S(2), S(2)), 0},
    {"lstm_sequence plain", f_lstm_seq_plain, 4, S(3, 2, 2, 2),
     S(S(3, 2, 8), S(8, 2), S(2, 2), S(2, 2)), 0},
    {"lstm_sequence_input peephole lengths reverse", f_lstm_seq_input, 10,
     S(3, 2, 1, 2, 1, 2, 2, 1, 1, 1),
     S(S(3, 2, 3), S(8, 3), S(8), S(8, 2), S(8), S(2, 2), S(2, 2), S(2), S(2),
       S(2)),
     0},
    {"lstm_sequence_input plain", f_lstm_seq_input_plain, 5, S(3, 2, 2, 2, 2),
     S(S(3, 2, 3), S(8, 3), S(8, 2), S(2, 2), S(2, 2)), 0},
    {"gru_sequence lengths", f_gru_seq, 4, S(3, 2, 1, 2),
     S(S(3, 2, 6), S(6, 2), S(6), S(2, 2)), 0},
    {"gru_sequence_input lengths reverse", f_gru_seq_input, 6,
     S(3, 2, 1, 2, 1, 2),
     S(S(3, 2, 3), S(6, 3), S(6), S(6, 2), S(6), S(2, 2)), 0},
    {"gru_sequence_input without b_ih", f_gru_seq_input_no_bias_ih, 5,
     S(3, 2, 2, 1, 2), S(S(3, 2, 3), S(6, 3), S(6, 2), S(6), S(2, 2)), 0},
    {"rnn_sequence tanh reverse lengths", f_rnn_seq, 4, S(3, 2, 1, 2),
     S(S(3, 2, 3), S(3, 3), S(3), S(2, 3)), 0},
    {"rnn_sequence relu", f_rnn_seq_relu, 4, S(3, 2, 1, 2),
     S(S(3, 2, 3), S(3, 3), S(3), S(2, 3)), 0},
    {"lstm_sequence peephole", f_lstm_seq_peephole, 8,
     S(3, 2, 1, 2, 2, 1, 1, 1),
     S(S(4, 3, 8), S(8, 2), S(8), S(3, 2), S(3, 2), S(2), S(2), S(2)), 0},
    {"lstm_sequence lengths with an empty sequence", f_lstm_seq_lengths, 5,
     S(3, 2, 1, 2, 2), S(S(3, 2, 12), S(12, 3), S(12), S(2, 3), S(2, 3)),
     NONCONTIG},
    {"lstm_sequence of no steps", f_lstm_seq_plain, 4, S(3, 2, 2, 2),
     S(S(0, 2, 8), S(8, 2), S(2, 2), S(2, 2)), 0},
    {"gru_sequence reverse", f_gru_seq_reverse, 4, S(3, 2, 1, 2),
     S(S(3, 3, 6), S(6, 2), S(6), S(3, 2)), NONCONTIG},
    {"rnn_sequence relu reverse lengths", f_rnn_seq_relu_lengths, 4,
     S(3, 2, 1, 2), S(S(3, 2, 3), S(3, 3), S(3), S(2, 3)), 0},
    {"gru_sequence without b_hh lengths reverse", f_gru_seq_no_bias, 3,
     S(3, 2, 2), S(S(3, 2, 6), S(6, 2), S(2, 2)), 0},
    {"gru_sequence_input without biases lengths", f_gru_seq_input_no_bias, 4,
     S(3, 2, 2, 2), S(S(3, 2, 3), S(6, 3), S(6, 2), S(2, 2)), 0},
    {"rnn_sequence tanh without b_hh lengths reverse", f_rnn_seq_no_bias, 3,
     S(3, 2, 2), S(S(3, 2, 3), S(3, 3), S(2, 3)), 0},
    {"rnn_sequence relu without b_hh", f_rnn_seq_relu_no_bias, 3, S(3, 2, 2),
     S(S(3, 2, 3), S(3, 3), S(2, 3)), 0},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static loom_tensor *make_input(int nd, const int64_t *shape, int flags,
                               loom_rng *g) {
  loom_tensor *t = loom_randn(g, LOOM_F64, 0, 1, nd, shape);
  if (flags & SPREAD) { /* a shuffled ladder: values >= 0.27 apart */
    int64_t n = loom_numel(t);
    loom_tensor *perm = loom_to_dtype(loom_randperm(g, n), LOOM_F64);
    loom_tensor *jitter = loom_rand(g, LOOM_F64, 0, 0.1, 1, &n);
    t = loom_reshape(
        loom_add(loom_mul_scalar(loom_sub_scalar(perm, n / 2.0), 0.37), jitter),
        nd, shape);
  }
  if (flags & POSITIVE)
    t = loom_add_scalar(loom_abs(t), 0.5);
  if (flags & WIDE)
    t = loom_mul_scalar(t, 8);
  if ((flags & NONCONTIG) && nd >= 2) /* same values, transposed layout */
    t = loom_transpose(loom_contiguous(loom_transpose(t, 0, 1)), 0, 1);
  return loom_set_requires_grad(loom_detach(t), true);
}

/* A fused op's graph backward (or composition) is a second implementation
 * of its gradient, and gradgradcheck only checks that it is differentiated
 * consistently: the first derivatives a create_graph pass records must
 * also be the plain backward's. */
static void check_graph_gradients(const gc_case *c, loom_tensor *const *in) {
  loom_tensor *grads[2][MAX_IN] = {{NULL}};
  loom_rng *g = loom_rng_new(77);
  for (int pass = 0; pass < 2; pass++) {
    loom_tensor *y[8], *ys[8], *v[8];
    int n_y = c->fn(in, c->n_in, y, 8, NULL), m = 0;
    ck_assert_msg(n_y > 0, "%s: %s", c->name, loom_last_error());
    loom_rng_seed(g, 77); /* the same v in both passes */
    for (int k = 0; k < n_y; k++)
      if (loom_requires_grad(y[k])) {
        ys[m] = y[k];
        v[m++] =
            loom_randn(g, LOOM_F64, 0, 1, loom_ndim(y[k]), loom_shape(y[k]));
      }
    loom_grad_opts o = {.create_graph = pass == 1, .allow_unused = true};
    ck_assert_msg(loom_autograd_grad(ys, m, in, c->n_in, v, grads[pass], &o) ==
                      0,
                  "%s: %s", c->name, loom_last_error());
  }
  loom_rng_free(g);
  for (int i = 0; i < c->n_in; i++) /* no gradient: zeros */
    ck_assert_msg(
        loom_allclose(grads[1][i] ? grads[1][i] : loom_zeros_like(in[i]),
                      grads[0][i] ? grads[0][i] : loom_zeros_like(in[i]), 1e-9,
                      1e-12),
        "%s: input %d's gradient with create_graph differs from "
        "the plain backward's",
        c->name, i);
}

START_TEST(test_case) {
  const gc_case *c = &cases[_i];
  loom_rng *g = loom_rng_new(100 + (uint64_t)_i);
  loom_tensor *in[MAX_IN];
  for (int i = 0; i < c->n_in; i++) {
    in[i] = make_input(c->ndim[i], c->shape[i], c->flags, g);
    ck_assert_loom(in[i]);
  }
  loom_rng_free(g);
  loom_gradcheck_opts o = {0};
  if (c->flags & LOOSE)
    o = (loom_gradcheck_opts){.eps = 1e-2, .atol = 1e-3, .rtol = 1e-2};
  loom_gradcheck_result r;
  int rc = loom_gradcheck(c->fn, NULL, in, c->n_in, &o, &r);
  ck_assert_msg(rc >= 0, "%s: gradcheck could not run: %s", c->name,
                loom_last_error());
  ck_assert_msg(rc == 1, "%s: %s", c->name, r.message);
  if (c->flags & FIRST_ORDER)
    return;
  check_graph_gradients(c, in);
  rc = loom_gradgradcheck(c->fn, NULL, in, c->n_in, &o, &r);
  ck_assert_msg(rc >= 0, "%s: gradgradcheck could not run: %s", c->name,
                loom_last_error());
  ck_assert_msg(rc == 1, "%s: gradgradcheck: %s", c->name, r.message);
}
END_TEST

/* Each op of unary_cases.h, on 6 contiguous values and on a transposed
 * 2 x 3 view. */
FN(f_unary) { OUT1(((const unary_case *)ctx)->op(in[0])); }

START_TEST(test_unary) {
  const unary_case *c = &unary_cases[_i / 2];
  bool transposed = _i % 2;
  loom_rng *g = loom_rng_new(500 + (uint64_t)_i);
  loom_tensor *x = transposed
                       ? make_input(LOOM_SHAPE(2, 3), c->domain | NONCONTIG, g)
                       : make_input(LOOM_SHAPE(6), c->domain, g);
  loom_rng_free(g);
  ck_assert_loom(x);
  loom_gradcheck_result r;
  int rc = loom_gradcheck(f_unary, (void *)c, &x, 1, NULL, &r);
  ck_assert_msg(rc == 1, "%s%s: %s %s", c->name,
                transposed ? " (transposed)" : "", r.message,
                rc < 0 ? loom_last_error() : "");
  rc = loom_gradgradcheck(f_unary, (void *)c, &x, 1, NULL, &r);
  ck_assert_msg(rc == 1, "%s%s: gradgradcheck: %s %s", c->name,
                transposed ? " (transposed)" : "", r.message,
                rc < 0 ? loom_last_error() : "");
}
END_TEST

/* The checker itself must be able to fail: a wrong backward is caught and
 * located. */
static int wrong_fwd(loom_function_ctx *c, loom_tensor *const *in, int n,
                     loom_tensor **out) {
  (void)n;
  loom_function_save(c, in[0]);
  out[0] = loom_square(in[0]);
  return 0;
}
static int wrong_bwd(loom_function_ctx *c, loom_tensor *const *g,
                     loom_tensor **gin) {
  gin[0] = loom_mul(g[0], loom_function_saved(c, 0)); /* should be 2x */
  return 0;
}
static const loom_function wrong = {"wrong_square", 1, 1, wrong_fwd, wrong_bwd};
FN(f_square) { OUT1(loom_square(in[0])); }
FN(f_wrong) {
  (void)n;
  (void)max;
  (void)ctx;
  return loom_function_apply(&wrong, in, out, NULL) < 0 ? -1 : 1;
}

START_TEST(test_wrong_backward_is_caught) {
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){1, 2, 3}, LOOM_SHAPE(3)), true);
  loom_gradcheck_result r;
  ck_assert_int_eq(loom_gradcheck(f_wrong, NULL, &x, 1, NULL, &r), 0);
  ck_assert(!r.passed);
  ck_assert_int_eq(r.input, 0);
  ck_assert_int_eq(r.in_index, 2); /* the largest error: 3 vs 6 */
  ck_assert_close(r.analytic, 3, 1e-9);
  ck_assert_close(r.numeric, 6, 1e-6);
  ck_assert(strstr(r.message, "FAILED") != NULL);
  loom_gradcheck_opts fast = {.fast = true};
  ck_assert_int_eq(loom_gradcheck(f_wrong, NULL, &x, 1, &fast, &r), 0);
  ck_assert_int_eq(loom_gradcheck(f_square, NULL, &x, 1, &fast, &r), 1);
}
END_TEST

START_TEST(test_rejects_float32) {
  loom_tensor *x =
      loom_set_requires_grad(loom_ones(LOOM_F32, LOOM_SHAPE(2)), true);
  ck_assert_int_eq(loom_gradcheck(f_square, NULL, &x, 1, NULL, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  /* steps and tolerances that are not finite and positive (NaN and
   * negative ones had silently become the defaults, inf had been used) */
  loom_tensor *y = loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(2)),
                                          true);
  loom_gradcheck_opts bad[] = {
      {.eps = NAN}, {.eps = -1e-6}, {.eps = INFINITY}, {.atol = -1},
      {.rtol = NAN}};
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(loom_gradcheck(f_square, NULL, &y, 1, &bad[i], NULL), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    loom_clear_error();
  }
}
END_TEST

/* The ops whose gradients cannot be differentiated (LOOM__OP in
 * autograd/node.h), each with the reason (and their cases flagged
 * FIRST_ORDER): none today. With create_graph their gradients are still
 * computed; differentiating through one fails naming the op
 * (test_higher_order.c). */
static const struct {
  const char *op, *why;
} first_order_only[] = {
    {NULL, NULL}, /* the end */
};

static const char *first_order_reason(const char *op) {
  for (int i = 0; first_order_only[i].op; i++)
    if (strcmp(first_order_only[i].op, op) == 0)
      return first_order_only[i].why;
  return NULL;
}

/* Runs last: every op in the registry was seen by some gradcheck above,
 * and by a gradgradcheck unless it is listed as first-order only. */
START_TEST(test_registry_covered) {
  int n = loom_op_count();
  ck_assert_int_ge(n, 70);
  for (int i = 0; i < n; i++) {
    const char *op = loom_op_name(i);
    ck_assert_msg(loom_gradcheck_covered(op),
                  "op '%s' is in the registry but no gradcheck test used it",
                  op);
    ck_assert_msg(loom_gradgradcheck_covered(op) || first_order_reason(op),
                  "op '%s' is in the registry but no gradgradcheck test ran "
                  "its double backward (nor is it listed as first-order only)",
                  op);
    ck_assert_msg(!loom_gradgradcheck_covered(op) || !first_order_reason(op),
                  "op '%s' is listed as first-order only but passed a "
                  "gradgradcheck",
                  op);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("gradcheck");
  TCase *tc = tcase_create("ops");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_case, 0, N_CASES);
  tcase_add_loop_test(tc, test_unary, 0, 2 * N_UNARY_CASES);
  tcase_add_test(tc, test_wrong_backward_is_caught);
  tcase_add_test(tc, test_rejects_float32);
  tcase_add_test(tc, test_registry_covered);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
