/* Extreme values: sizes and arguments at the ends of their types reach
 * checked arithmetic and fail with an error naming the op, never signed
 * overflow or a bad shift (UndefinedBehaviorSanitizer aborts on those in
 * CI); NaN and infinities pass through the float32 vector math. */
#include "check_values.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BIG INT64_MAX

/* The pending error has this status and mentions `text`; then cleared. */
#define EXPECT_ERROR(status, text)                                             \
  do {                                                                         \
    CHECK_ERROR(status, text);                                                 \
    loom_clear_error();                                                        \
  } while (0)

START_TEST(test_size_mul) {
  ck_assert_int_eq(loom_size_mul(4, 5, "op"), 20);
  ck_assert_int_eq(loom_size_mul(0, BIG, "op"), 0);
  ck_assert_int_eq(loom_size_mul(BIG, 0, "op"), 0);
  ck_assert_int_eq(loom_size_mul(1, LOOM_MAX_ELEMENTS, "op"),
                   LOOM_MAX_ELEMENTS);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  ck_assert_int_eq(loom_size_mul(2, LOOM_MAX_ELEMENTS, "cell"), -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "cell: size 2 x 576460752303423487");
  ck_assert_int_eq(loom_size_mul(4, BIG, "LSTM"), -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "LSTM: size 4 x 9223372036854775807");
  ck_assert_int_eq(loom_size_mul(-1, 3, "op"), -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "size -1 x 3 is negative");
  ck_assert_int_eq(loom_size_mul(BIG, BIG, "op"), -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "above 576460752303423487");
}
END_TEST

/* Every float32 function of tensor/vmath.h (exp, tanh, sigmoid, erf and
 * what is built on them) and the fused recurrent cells on NaN, +-inf and
 * values beyond the clamps. */
START_TEST(test_nan_and_inf_through_vector_math) {
  loom_tensor *x =
      VEC(LOOM_F32, NAN, -NAN, INFINITY, -INFINITY, 1e30, -1e30, 0, 100, -200);
  CHECK_VALUES(loom_exp(x), 0, NAN, NAN, INFINITY, 0, INFINITY, 0, 1, INFINITY,
               0);
  CHECK_VALUES(loom_tanh(x), 0, NAN, NAN, 1, -1, 1, -1, 0, 1, -1);
  CHECK_VALUES(loom_sigmoid(x), 0, NAN, NAN, 1, 0, 1, 0, 0.5, 1, 0);
  CHECK_VALUES(loom_gelu(x, false), 1e-7, NAN, NAN, INFINITY, NAN, 1e30, 0, 0,
               100, 0);
  /* a NaN in a fused LSTM step reaches only its own sequence */
  loom_tensor *xp = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 2, 4));
  loom_set(xp, (int64_t[]){0, 0, 0}, NAN);
  loom_tensor *w = loom_full(LOOM_F32, 0.5, LOOM_SHAPE(4, 1));
  loom_tensor *b = loom_zeros(LOOM_F32, LOOM_SHAPE(4));
  loom_tensor *h0 = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1));
  loom_tensor *out, *hn, *cn;
  ck_assert_int_eq(
      loom_lstm_sequence(xp, w, b, h0, h0, NULL, NULL, false, &out, &hn, &cn),
      0);
  ck_assert(isnan(loom_get(hn, (int64_t[]){0, 0})));
  ck_assert(!isnan(loom_get(hn, (int64_t[]){1, 0})));
}
END_TEST

/* ---- layers built from user options ---- */

START_TEST(test_rnn_sizes) {
  const loom_cell_type *types[] = {&loom_lstm_cell, &loom_gru_cell,
                                   &loom_rnn_tanh_cell};
  for (int i = 0; i < 3; i++) {
    ck_assert_ptr_null(loom_rnn_new(
        types[i], (loom_rnn_opts){.input_size = 3, .hidden_size = BIG}));
    EXPECT_ERROR(LOOM_ERR_ARGUMENT, "hidden 9223372036854775807");
    ck_assert_ptr_null(loom_rnn_new(
        types[i], (loom_rnn_opts){.input_size = BIG, .hidden_size = 3}));
    EXPECT_ERROR(LOOM_ERR_ARGUMENT, "input 9223372036854775807");
  }
  /* in range for the runner, too large for the weights */
  int64_t h = (int64_t)1 << 58;
  ck_assert_ptr_null(loom_lstm_new((loom_rnn_opts){
      .input_size = 3, .hidden_size = h, .bidirectional = true}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "LSTM");
  ck_assert_ptr_null(loom_lstm_new(
      (loom_rnn_opts){.input_size = 3,
                      .hidden_size = h,
                      .cell_config = &(loom_lstm_opts){.layer_norm = true}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "size 4 x 288230376151711744");
  /* a cell made directly (as a checkpoint loader might) checks too */
  loom_module *m = malloc(sizeof *m);
  ck_assert_ptr_nonnull(m);
  loom_module_init(m, "owner", NULL);
  ck_assert_ptr_null(loom_lstm_cell.make(NULL, m, "_l0", 3, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "LSTM: size 4 x 9223372036854775807");
  ck_assert_ptr_null(loom_gru_cell.make(NULL, m, "_l0", 3, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "GRU: size 3 x 9223372036854775807");
  ck_assert_int_eq(loom_module_num_elements(m), 0);
  loom_module_free(m);
}
END_TEST

START_TEST(test_layer_sizes) {
  ck_assert_ptr_null(loom_linear_layer_new(BIG, BIG, true));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_bilinear_new(BIG, BIG, BIG, true));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_embedding_layer_new(BIG, BIG, -1));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(
      loom_conv2d_layer_new(BIG, BIG, BIG, BIG, (loom_conv2d_opts){0}, true));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_batch_norm_layer_new(BIG, 1e-5, 0.1, true, true));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(
      loom_layer_norm_layer_new(2, (int64_t[]){BIG, BIG}, 1e-5, true));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_highway_new(BIG, 0));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
}
END_TEST

START_TEST(test_attention_sizes) {
  ck_assert_ptr_null(
      loom_multihead_attention_new(BIG, 1, (loom_multihead_attention_opts){0}));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "MultiheadAttention: embed_dim");
  int64_t e = (int64_t)1 << 60;
  ck_assert_ptr_null(
      loom_multihead_attention_new(e, 1, (loom_multihead_attention_opts){0}));
  EXPECT_ERROR(LOOM_ERR_SHAPE,
               "MultiheadAttention: size 3 x 1152921504606846976");
  ck_assert_ptr_null(loom_multihead_attention_new(
      4, 2, (loom_multihead_attention_opts){.kdim = BIG, .vdim = BIG}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_seq_attention_new(LOOM_SCORE_CONCAT, BIG, BIG, 4));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "seq_attention");
  ck_assert_ptr_null(loom_transformer_encoder_layer_new(
      (loom_transformer_opts){.d_model = e, .nhead = 1}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "size 3 x");
  ck_assert_ptr_null(loom_transformer_encoder_layer_new((loom_transformer_opts){
      .d_model = 4, .nhead = 2, .dim_feedforward = BIG}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_sinusoidal_encoding(LOOM_F32, BIG, 2));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "sinusoidal_encoding");
  ck_assert_ptr_null(loom_causal_mask(LOOM_F32, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  loom_learned_positions *p = loom_learned_positions_new(4, 2);
  ck_assert_loom(p);
  ck_assert_ptr_null(loom_learned_positions_forward(p, 1, BIG));
  EXPECT_ERROR(LOOM_ERR_INDEX, "beyond the table's 4");
  ck_assert_ptr_null(loom_learned_positions_forward(p, BIG, 1));
  EXPECT_ERROR(LOOM_ERR_INDEX, "beyond the table's 4");
  CHECK_SHAPE(loom_learned_positions_forward(p, 1, 3), 3, 2);
  loom_learned_positions_free(p);
  /* a garbage layer count fails at once (it had built layers until memory
   * ran out) */
  loom_transformer_opts small = {.d_model = 4, .nhead = 2};
  ck_assert_ptr_null(loom_transformer_encoder_new(small, INT_MAX, true));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "layers (1 to 4096)");
  ck_assert_ptr_null(loom_transformer_new(small, 1, INT_MAX));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "layers (1 to 4096)");
}
END_TEST

/* ---- ops given extreme sizes ---- */

START_TEST(test_view_sizes) {
  loom_tensor *t = loom_arange(LOOM_F32, 0, 6, 1);
  ck_assert_ptr_null(loom_narrow(t, 0, 1, BIG));
  EXPECT_ERROR(LOOM_ERR_INDEX, "narrow");
  ck_assert_ptr_null(loom_narrow(t, 0, INT64_MIN, 1));
  EXPECT_ERROR(LOOM_ERR_INDEX, "narrow");
  ck_assert_ptr_null(loom_narrow(t, 0, -1, BIG));
  EXPECT_ERROR(LOOM_ERR_INDEX, "narrow");
  CHECK_VALUES(loom_slice(t, 0, 1, BIG, BIG), 0, 1);
  CHECK_VALUES(loom_slice(t, 0, INT64_MIN, BIG, 4), 0, 0, 4);
  ck_assert_int_eq(loom_numel(loom_slice(t, 0, 2, INT64_MIN, 1)), 0);
  ck_assert_ptr_null(loom_select(t, 0, INT64_MIN));
  EXPECT_ERROR(LOOM_ERR_INDEX, "select");
  ck_assert_ptr_null(loom_reshape(t, LOOM_SHAPE(BIG, -1)));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "cannot view");
  ck_assert_ptr_null(loom_expand(t, LOOM_SHAPE(BIG, 6)));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  loom_tensor *parts[8];
  ck_assert_int_eq(loom_split(t, BIG, 0, parts, 8), 1);
  CHECK_SHAPE(parts[0], 6);
  ck_assert_int_eq(loom_split_sizes(t, (int64_t[]){BIG, BIG, 8}, 3, 0, parts),
                   -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "split");
  ck_assert_int_eq(loom_split_sizes(t, (int64_t[]){BIG, 7}, 2, 0, parts), -1);
  EXPECT_ERROR(LOOM_ERR_SHAPE, "split");
  ck_assert_int_eq(loom_chunk(t, INT32_MAX, 0, parts, 8), 6);
  /* views take no memory, so their sizes can add up beyond any shape */
  loom_tensor *wide = loom_expand(loom_ones(LOOM_F32, LOOM_SHAPE(1)),
                                  LOOM_SHAPE(LOOM_MAX_ELEMENTS));
  ck_assert_loom(wide);
  loom_tensor *many[17];
  for (int i = 0; i < 17; i++)
    many[i] = wide;
  ck_assert_ptr_null(loom_concat(many, 17, 0));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "concat: dim 0 adds up to more than 2^59 - 1");
}
END_TEST

START_TEST(test_op_arguments) {
  loom_tensor *ix = IVEC(1, BIG);
  ck_assert_ptr_null(loom_one_hot(ix, -1));
  EXPECT_ERROR(LOOM_ERR_INDEX, "one_hot");
  ck_assert_ptr_null(loom_one_hot(IVEC(1, 2), BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_one_hot(IVEC(INT64_MIN), -1));
  EXPECT_ERROR(LOOM_ERR_INDEX, "one_hot");

  /* squared deviations of {1, 2, 4} add up to 42/9; like PyTorch, the
   * divisor is max(0, n - correction) */
  loom_tensor *v = VEC(LOOM_F64, 1, 2, 4);
  ck_assert_double_eq(loom_item(loom_var(v, (int[]){0}, 1, BIG, false)),
                      INFINITY);
  ck_assert_close(loom_item(loom_var(v, (int[]){0}, 1, INT64_MIN, false)),
                  42.0 / 9 / (3 - (double)INT64_MIN), 1e-12);

  ck_assert_ptr_null(loom_arange(LOOM_F32, -1e300, 1e300, 1e-300));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "arange");
  ck_assert_ptr_null(loom_arange(LOOM_F32, 0, 1e30, 1));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "arange");
  ck_assert_ptr_null(loom_linspace(LOOM_F32, 0, 1, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_eye(LOOM_F32, BIG, -1));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  ck_assert_ptr_null(loom_randperm(NULL, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "too large");
  loom_tensor *r = loom_randint(NULL, LOOM_I64, INT64_MIN, BIG, LOOM_SHAPE(8));
  ck_assert_loom(r);
}
END_TEST

START_TEST(test_conv_and_pool_arguments) {
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(1, 1, 4, 4));
  loom_tensor *w = loom_ones(LOOM_F32, LOOM_SHAPE(1, 1, 2, 2));
  loom_conv2d_opts bad[] = {
      {.padding = {BIG, 0}},
      {.padding = {0, BIG / 2}},
      {.dilation = {BIG, 1}},
      {.dilation = {1, BIG / 2 + 1}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_ptr_null(loom_conv2d(x, w, NULL, bad[i]));
    ck_assert_int_ne(loom_last_status(), LOOM_OK);
    ck_assert_ptr_nonnull(strstr(loom_last_error(), "conv2d"));
    loom_clear_error();
  }
  /* an output that would fit, but not its im2col buffer (64 * 2 * 2 rows
   * of 2^28 * 2^28 positions) */
  loom_tensor *deep = loom_ones(LOOM_F32, LOOM_SHAPE(1, 64, 1, 1));
  loom_tensor *w64 = loom_ones(LOOM_F32, LOOM_SHAPE(1, 64, 2, 2));
  int64_t pad = ((int64_t)1 << 27);
  ck_assert_ptr_null(
      loom_conv2d(deep, w64, NULL, (loom_conv2d_opts){.padding = {pad, pad}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "conv2d: size 256 x");
  /* a huge stride takes one window */
  CHECK_VALUES(
      loom_conv2d(x, w, NULL, (loom_conv2d_opts){.stride = {BIG, BIG}}), 0, 4);
  loom_pool2d_opts pools[] = {
      {.kernel = {2, 2}, .padding = {BIG, 0}},
      {.kernel = {BIG, 2}, .padding = {BIG / 2, 0}},
      {.kernel = {2, 2}, .dilation = {BIG, 1}},
      {.kernel = {BIG, BIG}},
  };
  for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
    ck_assert_ptr_null(loom_max_pool2d(x, pools[i], NULL));
    ck_assert_int_ne(loom_last_status(), LOOM_OK);
    ck_assert_ptr_nonnull(strstr(loom_last_error(), "max_pool2d"));
    loom_clear_error();
    ck_assert_ptr_null(loom_avg_pool2d(x, pools[i]));
    ck_assert_int_ne(loom_last_status(), LOOM_OK);
    loom_clear_error();
  }
  CHECK_VALUES(loom_max_pool2d(x,
                               (loom_pool2d_opts){.kernel = {2, 2},
                                                  .stride = {BIG, BIG},
                                                  .ceil_mode = true},
                               NULL),
               0, 1);
  ck_assert_ptr_null(loom_adaptive_avg_pool2d(x, BIG, BIG));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "adaptive_avg_pool2d: size");
}
END_TEST

START_TEST(test_unfold_and_fold_arguments) {
  loom_tensor *x = loom_ones(LOOM_F64, LOOM_SHAPE(1, 1, 4, 4));
  loom_tensor *cols = loom_ones(LOOM_F64, LOOM_SHAPE(1, 4, 9));
  loom_fold_opts bad[] = {
      {.kernel = {0, 2}},
      {.kernel = {2, BIG}},
      {.kernel = {2, 2}, .padding = {BIG, 0}},
      {.kernel = {2, 2}, .padding = {-1, 0}},
      {.kernel = {2, 2}, .stride = {-1, 1}},
      {.kernel = {2, 2}, .dilation = {1, -3}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_ptr_null(loom_unfold(x, bad[i]));
    EXPECT_ERROR(LOOM_ERR_ARGUMENT, "unfold: kernel");
    ck_assert_ptr_null(loom_fold(cols, 4, 4, bad[i]));
    EXPECT_ERROR(LOOM_ERR_ARGUMENT, "fold: kernel");
  }
  /* windows larger than the padded image */
  loom_fold_opts wide[] = {
      {.kernel = {2, 2}, .dilation = {BIG, 1}},
      {.kernel = {2, 2},
       .padding = {(int64_t)1 << 58, 0},
       .dilation = {BIG, 1}},
      {.kernel = {5, 1}},
  };
  for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
    ck_assert_ptr_null(loom_unfold(x, wide[i]));
    EXPECT_ERROR(LOOM_ERR_SHAPE, "unfold: kernel");
  }
  /* a result that does not fit: 64 * 2 * 2 rows of 2^28 * 2^28 blocks */
  int64_t pad = (int64_t)1 << 27;
  ck_assert_ptr_null(
      loom_unfold(loom_ones(LOOM_F32, LOOM_SHAPE(1, 64, 1, 1)),
                  (loom_fold_opts){.kernel = {2, 2}, .padding = {pad, pad}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "unfold: size");
  ck_assert_ptr_null(
      loom_fold(cols, BIG, 4, (loom_fold_opts){.kernel = {2, 2}}));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "fold: output size");
  ck_assert_ptr_null(
      loom_fold(cols, 4, BIG / 2, (loom_fold_opts){.kernel = {2, 2}}));
  ck_assert_int_ne(loom_last_status(), LOOM_OK);
  loom_clear_error();
  /* rows not a multiple of kH kW, columns not the block count */
  ck_assert_ptr_null(loom_fold(cols, 4, 4, (loom_fold_opts){.kernel = {3, 1}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "fold: input [1, 4, 9]");
  ck_assert_ptr_null(loom_fold(cols, 5, 4, (loom_fold_opts){.kernel = {2, 2}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "fold: input");
  ck_assert_ptr_null(loom_fold(x, 4, 4, (loom_fold_opts){.kernel = {2, 2}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "fold: expected");
  ck_assert_ptr_null(loom_unfold(loom_ones(LOOM_F64, LOOM_SHAPE(4, 9)),
                                 (loom_fold_opts){.kernel = {2, 2}}));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "unfold: expected");
  ck_assert_ptr_null(loom_unfold(loom_ones(LOOM_I64, LOOM_SHAPE(1, 1, 2, 2)),
                                 (loom_fold_opts){.kernel = {2, 2}}));
  EXPECT_ERROR(LOOM_ERR_DTYPE, "unfold");
  /* a huge stride takes one block: the values, and fold puts them back */
  loom_tensor *one =
      loom_unfold(x, (loom_fold_opts){.kernel = {2, 2}, .stride = {BIG, BIG}});
  CHECK_SHAPE(one, 1, 4, 1);
  CHECK_VALUES(one, 0, 1, 1, 1, 1);
  CHECK_VALUES(
      loom_fold(loom_mul_scalar(one, 2), 3, 3,
                (loom_fold_opts){.kernel = {2, 2}, .stride = {BIG, BIG}}),
      0, 2, 2, 0, 2, 2, 0, 0, 0, 0);
}
END_TEST

/* Edge operands a probe against torch found mishandled: a convolution of
 * an empty batch (it divided by zero planning its chunks), forward and
 * backward; in-place writes from a shifted view of the same storage
 * (copy_'s memcpy overlapped; the result must be the source's values
 * before the write); empty planes for adaptive pooling (its output had
 * been left unwritten); and integer tensors given a fractional alpha or a
 * float operand (truncated silently before). */
START_TEST(test_empty_and_overlapping_operands) {
  loom_tensor *w =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(2, 2, 2, 2)), true);
  loom_tensor *b =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(2)), true);
  loom_tensor *y = loom_conv2d(loom_zeros(LOOM_F64, LOOM_SHAPE(0, 2, 3, 3)), w,
                               b, (loom_conv2d_opts){0});
  ck_assert_ptr_nonnull(y);
  ck_assert_int_eq(loom_ndim(y), 4);
  ck_assert_int_eq(loom_size(y, 0), 0);
  ck_assert_int_eq(loom_size(y, 1), 2);
  ck_assert_int_eq(loom_backward(loom_sum_all(y)), 0);
  ck_assert(loom_equal(loom_grad(w), loom_zeros_like(w)));
  ck_assert(loom_equal(loom_grad(b), loom_zeros_like(b)));
  ck_assert_ptr_nonnull(loom_conv1d(loom_zeros(LOOM_F64, LOOM_SHAPE(0, 2, 5)),
                                    loom_ones(LOOM_F64, LOOM_SHAPE(3, 2, 2)),
                                    NULL, (loom_conv1d_opts){0}));

  double v[] = {1, 2, 3, 4, 5};
  for (int way = 0; way < 2; way++) { /* later from earlier, and back */
    loom_tensor *a = loom_from_array(LOOM_F64, v, LOOM_SHAPE(5));
    loom_tensor *hi = loom_slice(a, 0, 1, 5, 1),
                *lo = loom_slice(a, 0, 0, 4, 1);
    ck_assert_ptr_nonnull(way ? loom_copy_(lo, hi) : loom_copy_(hi, lo));
    CHECK_VALUES(a, 0, way ? 2 : 1, way ? 3 : 1, way ? 4 : 2, way ? 5 : 3,
                 way ? 5 : 4);
    a = loom_from_array(LOOM_F64, v, LOOM_SHAPE(5));
    hi = loom_slice(a, 0, 1, 5, 1), lo = loom_slice(a, 0, 0, 4, 1);
    ck_assert_ptr_nonnull(way ? loom_add_(lo, hi, 1) : loom_add_(hi, lo, 1));
    CHECK_VALUES(a, 0, way ? 3 : 1, way ? 5 : 3, way ? 7 : 5, way ? 9 : 7,
                 way ? 5 : 9);
  }

  /* strided, so the kernels' elementwise loops run (a forward pass would
   * read a[2] after writing it) */
  double w10[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int op = 0; op < 2; op++) {
    loom_tensor *a = loom_from_array(LOOM_F64, w10, LOOM_SHAPE(10));
    loom_tensor *dst = loom_slice(a, 0, 2, 10, 2);
    loom_tensor *src = loom_slice(a, 0, 0, 8, 2);
    ck_assert_ptr_nonnull(op ? loom_add_(dst, src, 1) : loom_copy_(dst, src));
    CHECK_VALUES(a, 0, 0, 1, op ? 2 : 0, 3, op ? 6 : 2, 5, op ? 10 : 4, 7,
                 op ? 14 : 6, 9);
  }
  loom_tensor *m = loom_to_dtype(
      loom_from_array(LOOM_F64, (double[]){1, 0, 0, 0, 0}, LOOM_SHAPE(5)),
      LOOM_BOOL);
  ck_assert_ptr_nonnull(loom_masked_fill_(loom_slice(m, 0, 1, 5, 1),
                                          loom_slice(m, 0, 0, 4, 1), 1));
  CHECK_VALUES(m, 0, 1, 1, 0, 0, 0);
  ck_assert_ptr_null(loom_clamp_(loom_ones(LOOM_F64, LOOM_SHAPE(2)), NAN, 2));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "clamp_: bounds [nan, 2]");
  /* no input or output channels: empty output, zero gradients */
  for (int k = 0; k < 2; k++) {
    loom_tensor *cx = loom_set_requires_grad(
        loom_ones(LOOM_F64, LOOM_SHAPE(2, k ? 2 : 0, 3, 3)), true);
    loom_tensor *cw = loom_set_requires_grad(
        loom_ones(LOOM_F64, LOOM_SHAPE(k ? 0 : 2, k ? 2 : 0, 2, 2)), true);
    loom_tensor *cy = loom_conv2d(cx, cw, NULL, (loom_conv2d_opts){0});
    ck_assert_ptr_nonnull(cy);
    ck_assert_int_eq(loom_backward(loom_sum_all(cy)), 0);
    ck_assert(loom_equal(loom_grad(cx), loom_zeros_like(cx)));
  }

  ck_assert_ptr_null(loom_adaptive_avg_pool2d(
      loom_zeros(LOOM_F64, LOOM_SHAPE(1, 1, 0, 4)), 2, 2));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "adaptive_avg_pool2d: input [1, 1, 0, 4] has "
                               "empty planes");
  ck_assert_int_eq(loom_numel(loom_adaptive_avg_pool2d(
                       loom_zeros(LOOM_F64, LOOM_SHAPE(0, 1, 3, 4)), 2, 2)),
                   0);

  loom_tensor *i = loom_ones(LOOM_I64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_add_scaled(i, i, 0.5));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "add_scaled: alpha 0.5 with int64");
  CHECK_VALUES(loom_add_scaled(i, i, -3), 0, -2, -2);
  ck_assert_ptr_null(loom_add_(i, loom_full(LOOM_F64, 0.5, LOOM_SHAPE(2)), 1));
  EXPECT_ERROR(LOOM_ERR_DTYPE, "add_: float64 operand, int64 tensor");
  ck_assert_ptr_null(loom_mul_(i, loom_full(LOOM_F32, 2, LOOM_SHAPE(2))));
  EXPECT_ERROR(LOOM_ERR_DTYPE, "mul_: float32 operand, int64 tensor");
  CHECK_VALUES(i, 0, 1, 1);
}
END_TEST

/* Binary cross-entropy at saturated probabilities: as torch 1.13, the
 * loss clamps each log at -100 and the gradient in x is (x - y) /
 * max(x (1 - x), 1e-12 as a float), finite (it had been NaN at 0 and 1,
 * also where the loss is 0). The target's gradient is log(1 - x) - log x,
 * clamped: the loss's own derivative, finite where torch's -logit(x) is
 * infinite. Second derivatives are finite everywhere. */
START_TEST(test_saturated_binary_cross_entropy) {
  loom_tensor *p = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 1, 1, 0, 0.5}, LOOM_SHAPE(5)),
      true);
  loom_tensor *t = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 1, 0, 1, 1}, LOOM_SHAPE(5)),
      true);
  loom_tensor *loss = loom_binary_cross_entropy(p, t, NULL, LOOM_SUM);
  CHECK_VALUES(loss, 1e-15, 200 + log(2));
  ck_assert_int_eq(loom_backward(loss), 0);
  double big = 1 / (double)1e-12f; /* torch's epsilon is a float */
  CHECK_VALUES(loom_grad(p), 1e-15, 0, 0, big, -big, -2);
  CHECK_VALUES(loom_grad(t), 1e-15, 100, -100, -100, 100, 0);
  loom_tensor *g[2], *h[2];
  loss = loom_binary_cross_entropy(p, t, NULL, LOOM_SUM);
  ck_assert_int_eq(loom_autograd_grad(&loss, 1, (loom_tensor *[]){p, t}, 2,
                                      NULL, g,
                                      &(loom_grad_opts){.create_graph = true}),
                   0);
  loom_tensor *both = loom_add(loom_sum_all(g[0]), loom_sum_all(g[1]));
  ck_assert_int_eq(
      loom_autograd_grad(&both, 1, (loom_tensor *[]){p, t}, 2, NULL, h, NULL),
      0);
  for (int k = 0; k < 2; k++) {
    double v[5];
    loom_copy_to_array(h[k], LOOM_F64, v, 5);
    for (int i = 0; i < 5; i++)
      ck_assert_msg(isfinite(v[i]), "second derivative %d of %d: %g", i, k,
                    v[i]);
  }
}
END_TEST

/* An input outside [0, 1] is no probability: refused as torch refuses it
 * (2 against a target of 1 gave a negative loss), NaN too; the target is
 * not checked, as in torch. */
START_TEST(test_binary_cross_entropy_input_range) {
  loom_tensor *one = loom_ones(LOOM_F32, LOOM_SHAPE(3));
  ck_assert_ptr_null(loom_binary_cross_entropy(
      loom_full(LOOM_F32, 2, LOOM_SHAPE(3)), one, NULL, LOOM_MEAN));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT,
               "binary_cross_entropy: all elements of input should be "
               "between 0 and 1 (element 0 is 2)");
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0.5, 1, -1e-300}, LOOM_SHAPE(3)),
      true);
  ck_assert_ptr_null(loom_binary_cross_entropy(x, one, NULL, LOOM_SUM));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "(element 2 is -1e-300)");
  loom_tensor *nan = loom_t(loom_reshape(VEC(LOOM_F32, 0, 0.25, 1, NAN),
                                         LOOM_SHAPE(2, 2))); /* strided */
  ck_assert_ptr_null(loom_binary_cross_entropy(
      nan, loom_ones(LOOM_F32, LOOM_SHAPE(2, 2)), NULL, LOOM_NONE));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "(element 3 is nan)");
  /* the ends are probabilities; a target outside [0, 1] is taken */
  CHECK_VALUES(loom_binary_cross_entropy(VEC(LOOM_F64, 0, 1, 0.5),
                                         VEC(LOOM_F64, 0, 1, 2), NULL,
                                         LOOM_NONE),
               1e-15, 0, 0, log(2));
}
END_TEST

/* Gradients at the points where a composition would meet 0 x inf, as
 * torch 1.13 gives them: std of a constant line (0, as torch masks
 * std == 0; it had been NaN), a p < 1 norm at a zero element (0
 * there; NaN before), and sign's (zeros; it had been none). */
START_TEST(test_gradients_at_degenerate_points) {
  loom_tensor *a = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){2, 2, 2}, LOOM_SHAPE(3)), true);
  loom_tensor *s = loom_std(a, NULL, 0, 1, false);
  CHECK_VALUES(s, 0, 0);
  ck_assert_int_eq(loom_backward(s), 0);
  CHECK_VALUES(loom_grad(a), 0, 0, 0, 0);
  loom_tensor *b = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 1, 2}, LOOM_SHAPE(3)), true);
  ck_assert_int_eq(loom_backward(loom_norm(b, 0.5, NULL, 0, false)), 0);
  CHECK_VALUES(loom_grad(b), 1e-15, 0, 2.414213562373095, 1.7071067811865472);
  /* elsewhere std is sqrt(var) to the bit */
  loom_tensor *c =
      loom_from_array(LOOM_F64, (double[]){1, 2, 4}, LOOM_SHAPE(3));
  ck_assert(loom_equal(loom_std(c, NULL, 0, 1, false),
                       loom_sqrt(loom_var(c, NULL, 0, 1, false))));
  /* the inf-norm of NaN elements: the NaN ones share its gradient, as
   * torch 1.13's; every element's is 0 (sign(NaN) is 0), -0 for negative
   * ones */
  loom_tensor *e = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){1, NAN, -3, 2, 2, -1},
                      LOOM_SHAPE(2, 3)),
      true);
  ck_assert_int_eq(
      loom_backward(loom_sum_all(loom_norm(e, INFINITY, (int[]){1}, 1, false))),
      0);
  CHECK_VALUES(loom_grad(e), 0, 0, 0, 0, 0.5, 0.5, 0);
  ck_assert(signbit(loom_data_f64(loom_grad(e))[2]));
  /* sign's gradient is zeros, not none, as torch's */
  loom_tensor *d = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){-2, 0, NAN}, LOOM_SHAPE(3)), true);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_sign(d))), 0);
  CHECK_VALUES(loom_grad(d), 0, 0, 0, 0);
}
END_TEST

/* div's gradient for the divisor at tiny divisors: -g (a / b) / b, as
 * torch's, so it is finite where it is (-g a / b^2 had squared b to 0: NaN
 * for a = 0, inf for a = b = 1e-200, or 1e-30 in float32). */
START_TEST(test_div_gradient_at_tiny_divisors) {
  loom_tensor *a = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){0, 1e-200, -1e-200, INFINITY},
                      LOOM_SHAPE(4)),
      true);
  loom_tensor *b = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){5e-324, 1e-200, 1e-200, 1e308},
                      LOOM_SHAPE(4)),
      true);
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_div(a, b))), 0);
  CHECK_VALUES(loom_grad(b), 0, -0.0, -1e200, 1e200, -INFINITY);
  loom_tensor *c = loom_set_requires_grad(
      loom_from_array(LOOM_F32, (float[]){1e-30f, 2e-30f}, LOOM_SHAPE(2)),
      true);
  loom_tensor *num =
      loom_from_array(LOOM_F32, (float[]){1e-30f, -4e-30f}, LOOM_SHAPE(2));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_div(num, c))), 0);
  CHECK_VALUES(loom_grad(c), 1e-6, -1e30, 1e30);
}
END_TEST

/* elu's gradient at NaN is g, as torch's (its x <= 0 test fails there),
 * as relu's is; it was g alpha exp(NaN), NaN. The same in a recorded
 * backward (create_graph), whose gradient is made of ops. */
START_TEST(test_elu_gradient_at_nan) {
  for (int create = 0; create < 2; create++) {
    loom_tensor *x = loom_set_requires_grad(
        loom_from_array(LOOM_F64, (double[]){NAN, -1, 0, 2}, LOOM_SHAPE(4)),
        true);
    loom_backward_opts o = {.create_graph = create};
    ck_assert_int_eq(
        loom_backward_with(loom_sum_all(loom_elu(x, 0.5)), NULL, &o), 0);
    CHECK_VALUES(loom_grad(x), 1e-15, 1, 0.5 * exp(-1), 0.5, 1);
    loom_zero_grad(x);
  }
}
END_TEST

/* prod's gradient is the product of the other elements, also beside an
 * inf or a NaN (as its header says; torch gives NaN for the others) */
START_TEST(test_prod_gradient_beside_inf_and_nan) {
  const double cases[3][3] = {{NAN, 1, 4}, {INFINITY, 2, 4}, {0, 3, 4}};
  const double want[3][3] = {
      {4, NAN, NAN}, {8, INFINITY, INFINITY}, {12, 0, 0}};
  for (int c = 0; c < 3; c++) {
    loom_tensor *x = loom_set_requires_grad(
        loom_from_array(LOOM_F64, cases[c], LOOM_SHAPE(3)), true);
    ck_assert_int_eq(loom_backward(loom_prod(x, NULL, 0, false)), 0);
    const double *g = loom_data_f64(loom_grad(x));
    for (int i = 0; i < 3; i++)
      ck_assert_msg(isnan(want[c][i]) ? isnan(g[i]) : g[i] == want[c][i],
                    "case %d, element %d: %g", c, i, g[i]);
  }
}
END_TEST

/* Whether t holds exactly the bits of want[0..n) (NaN as any NaN). */
static bool same_bits(const loom_tensor *t, const double *want, int n) {
  const double *d = loom_data_f64(t);
  for (int i = 0; i < n; i++)
    if (!(isnan(d[i]) && isnan(want[i])) && memcmp(&d[i], &want[i], 8))
      return false;
  return true;
}

/* pow_scalar at the exponents PyTorch computes without pow (0.5, -0.5, 2,
 * 3, -1, -2) takes its forms, so values match it to the bit (pow(x, 0.5)
 * was 1 ulp off sqrt in ~1 case in 1,500, pow(x, -0.5) off 1 / sqrt in 1 in
 * 7), and at signed zeros and infinities too (torch 1.13's values); the
 * gradient is g (p x^(p - 1)) in that order, as torch's. */
START_TEST(test_pow_special_exponents) {
  enum { N = 8 };
  double xs[N] = {-0.0, -INFINITY,   0.0, INFINITY,
                  -4,   5.044420928, 0.3, 6.404230};
  loom_tensor *x = loom_set_requires_grad(
      loom_from_array(LOOM_F64, xs, LOOM_SHAPE(N)), true);
  double want[N];
  for (int i = 0; i < N; i++)
    want[i] = sqrt(xs[i]);
  ck_assert(same_bits(loom_pow_scalar(x, 0.5), want, N));
  for (int i = 0; i < N; i++)
    want[i] = 1 / sqrt(xs[i]);
  ck_assert(same_bits(loom_pow_scalar(x, -0.5), want, N));
  for (int i = 0; i < N; i++)
    want[i] = xs[i] * xs[i] * xs[i];
  ck_assert(same_bits(loom_pow_scalar(x, 3), want, N));
  for (int i = 0; i < N; i++)
    want[i] = 1 / (xs[i] * xs[i]);
  ck_assert(same_bits(loom_pow_scalar(x, -2), want, N));
  /* torch 1.13 at -0, -inf, 0, inf, -4 */
  double half[5] = {-0.0, NAN, 0, INFINITY, NAN};
  ck_assert(same_bits(loom_pow_scalar(loom_narrow(x, 0, 0, 5), 0.5), half, 5));
  double minus_half[5] = {-INFINITY, NAN, INFINITY, 0, NAN};
  ck_assert(
      same_bits(loom_pow_scalar(loom_narrow(x, 0, 0, 5), -0.5), minus_half, 5));
  double recip[5] = {-INFINITY, -0.0, INFINITY, 0, -0.25};
  ck_assert(same_bits(loom_pow_scalar(loom_narrow(x, 0, 0, 5), -1), recip, 5));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_pow_scalar(x, 0.5))), 0);
  for (int i = 0; i < N; i++)
    want[i] = 1.0 * (0.5 * (1 / sqrt(xs[i])));
  ck_assert(same_bits(loom_grad(x), want, N));
  double at_half[5] = {-INFINITY, NAN, INFINITY, 0, NAN};
  ck_assert(same_bits(loom_grad(x), at_half, 5));
  /* float32 the same way */
  loom_tensor *y = loom_to_dtype(x, LOOM_F32);
  const float *r = loom_data_f32(loom_pow_scalar(y, -0.5));
  for (int i = 4; i < N; i++) {
    float v = (float)xs[i], w = 1 / sqrtf(v);
    ck_assert(isnan(w) ? isnan(r[i]) : r[i] == w);
  }
}
END_TEST

/* Arguments out of range are refused where they are given: a Conv2d's
 * negative stride (it had waited for the first forward), an Embedding's
 * NaN max_norm (ignored before), smooth_l1's NaN beta (taken); and
 * kl_div of a negative probability is NaN with the input's gradient -t,
 * as torch 1.13 (it had been masked to 0 as a zero target is). */
START_TEST(test_argument_ranges_of_layers_and_losses) {
  ck_assert_ptr_null(loom_conv2d_layer_new(
      1, 1, 3, 3, (loom_conv2d_opts){.stride = {-1, 1}}, true));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "Conv2d: stride -1x1");
  loom_embedding_layer *e = loom_embedding_layer_new(4, 2, -1);
  e->max_norm = NAN;
  ck_assert_ptr_null(
      loom_embedding_layer_forward(e, loom_zeros(LOOM_I64, LOOM_SHAPE(1))));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "Embedding: max_norm nan");
  loom_embedding_layer_free(e);
  loom_tensor *x = loom_zeros(LOOM_F64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_smooth_l1_loss(x, x, NAN, LOOM_MEAN));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "smooth_l1_loss: beta nan");
  loom_tensor *in = loom_set_requires_grad(
      loom_from_array(LOOM_F64, (double[]){-1, -2, -0.5}, LOOM_SHAPE(3)), true);
  loom_tensor *t =
      loom_from_array(LOOM_F64, (double[]){0.5, 0, -0.2}, LOOM_SHAPE(3));
  loom_tensor *l = loom_kl_div(in, t, false, LOOM_SUM, false);
  ck_assert(isnan(loom_item(l)));
  ck_assert_int_eq(loom_backward(l), 0);
  CHECK_VALUES(loom_grad(in), 0, -0.5, 0, 0.2);
}
END_TEST

/* A reduction outside loom_reduction is refused by every loss (each had
 * taken it as the mean). */
START_TEST(test_loss_reduction_outside_the_enum) {
  loom_tensor *x = loom_full(LOOM_F32, 0.5, LOOM_SHAPE(4, 3));
  loom_tensor *c = loom_zeros(LOOM_I64, LOOM_SHAPE(4));
  loom_cross_entropy_opts o = loom_cross_entropy_defaults();
  o.reduction = (loom_reduction)7;
  ck_assert_ptr_null(loom_cross_entropy(x, c, &o));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT,
               "cross_entropy: reduction 7 is not a loom_reduction "
               "(LOOM_MEAN, LOOM_SUM or LOOM_NONE: 0 to 2)");
  ck_assert_ptr_null(loom_cross_entropy(x, x, &o)); /* probabilities */
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "cross_entropy: reduction 7");
  o.reduction = (loom_reduction)-1;
  ck_assert_ptr_null(loom_nll_loss(x, c, &o));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "nll_loss: reduction -1");
  loom_reduction r = (loom_reduction)3;
  ck_assert_ptr_null(loom_mse_loss(x, x, r));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "mse_loss: reduction 3");
  ck_assert_ptr_null(loom_l1_loss(x, x, r));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "l1_loss: reduction 3");
  ck_assert_ptr_null(loom_smooth_l1_loss(x, x, 1, r));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "smooth_l1_loss: reduction 3");
  ck_assert_ptr_null(loom_binary_cross_entropy(x, x, NULL, r));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "binary_cross_entropy: reduction 3");
  ck_assert_ptr_null(
      loom_binary_cross_entropy_with_logits(x, x, NULL, NULL, r));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT,
               "binary_cross_entropy_with_logits: reduction 3");
  ck_assert_ptr_null(loom_kl_div(x, x, true, r, false));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "kl_div: reduction 3");
  ck_assert_ptr_null(loom_kl_div(x, x, false, r, true));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "kl_div: reduction 3");
  /* the three of the enum are taken */
  CHECK_SCALAR_SHAPE(loom_mse_loss(x, x, LOOM_MEAN));
  CHECK_SCALAR_SHAPE(loom_l1_loss(x, x, LOOM_SUM));
  CHECK_SHAPE(loom_kl_div(x, x, true, LOOM_NONE, false), 4, 3);
}
END_TEST

/* Reductions of empty tensors, as torch 1.13: over dims that are not
 * empty they give empty results (they had been refused, and max, min,
 * argmax and argmin were until later), over an empty one amax refuses (no
 * extreme) and logsumexp gives -inf; clamp refuses a NaN bound as it
 * refuses lo > hi. */
START_TEST(test_empty_reductions_and_clamp_bounds) {
  loom_tensor *a = loom_zeros(LOOM_F64, LOOM_SHAPE(0, 3));
  CHECK_SHAPE(loom_amax(a, (int[]){1}, 1, false), 0);
  CHECK_SHAPE(loom_amin(a, (int[]){1}, 1, false), 0);
  CHECK_SHAPE(loom_norm(a, INFINITY, (int[]){1}, 1, false), 0);
  CHECK_SHAPE(loom_logsumexp(a, (int[]){1}, 1, false), 0);
  CHECK_VALUES(loom_logsumexp(a, (int[]){0}, 1, false), 0, -INFINITY, -INFINITY,
               -INFINITY);
  ck_assert_ptr_null(loom_amax(a, (int[]){0}, 1, false));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "amax: empty tensor [0, 3]");
  /* max and min along a dim, with their indices, likewise */
  loom_tensor *ix = NULL;
  loom_tensor *e =
      loom_set_requires_grad(loom_zeros(LOOM_F64, LOOM_SHAPE(0, 3)), true);
  loom_tensor *m = loom_max(e, 1, true, &ix);
  CHECK_SHAPE(m, 0, 1);
  CHECK_SHAPE(ix, 0, 1);
  ck_assert_int_eq(loom_backward(loom_sum_all(m)), 0);
  CHECK_SHAPE(loom_grad(e), 0, 3);
  ck_assert_int_eq(loom_dtype_of(ix), LOOM_I64);
  CHECK_SHAPE(loom_min(a, -1, false, NULL), 0);
  CHECK_SHAPE(loom_argmax(a, 1, false), 0);
  CHECK_SHAPE(loom_argmin(a, 1, true), 0, 1);
  ck_assert_ptr_null(loom_argmax(a, 0, false));
  EXPECT_ERROR(LOOM_ERR_SHAPE, "max: empty tensor [0, 3]");
  loom_tensor *x = loom_ones(LOOM_F64, LOOM_SHAPE(2));
  ck_assert_ptr_null(loom_clamp(x, NAN, 1));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "clamp: bounds [nan, 1]");
  ck_assert_ptr_null(loom_clamp(x, 2, 1));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "clamp: bounds [2, 1]");
  /* an integer tensor between fractional bounds gives floats, as torch's
   * (it had rounded them inwards to [1, 0]: -7, 0, 3 -> 1, 1, 0) */
  loom_tensor *i =
      loom_from_array(LOOM_I64, (int64_t[]){-7, 0, 3}, 1, (int64_t[]){3});
  loom_tensor *c = loom_clamp(i, 0.25, 0.75);
  ck_assert_int_eq(loom_dtype_of(c), LOOM_F32);
  CHECK_VALUES(c, 0, 0.25, 0.25, 0.75);
  CHECK_VALUES(loom_clamp(i, -1, 1.5), 0, -1, 0, 1.5);
  c = loom_clamp(i, -INFINITY, 2); /* an open side keeps the dtype */
  ck_assert_int_eq(loom_dtype_of(c), LOOM_I64);
  CHECK_VALUES(c, 0, -7, 0, 2);
  ck_assert_ptr_null(loom_clamp_(i, 0.25, 0.75));
  EXPECT_ERROR(LOOM_ERR_ARGUMENT, "clamp_: bounds [0.25, 0.75] on a int64");
  CHECK_VALUES(loom_clamp_(i, -2, INFINITY), 0, -2, 0, 3);
}
END_TEST

int main(void) {
  Suite *s = suite_create("extremes");
  TCase *tc = tcase_create("extremes");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_size_mul);
  tcase_add_test(tc, test_nan_and_inf_through_vector_math);
  tcase_add_test(tc, test_rnn_sizes);
  tcase_add_test(tc, test_layer_sizes);
  tcase_add_test(tc, test_attention_sizes);
  tcase_add_test(tc, test_argument_ranges_of_layers_and_losses);
  tcase_add_test(tc, test_loss_reduction_outside_the_enum);
  tcase_add_test(tc, test_view_sizes);
  tcase_add_test(tc, test_op_arguments);
  tcase_add_test(tc, test_conv_and_pool_arguments);
  tcase_add_test(tc, test_unfold_and_fold_arguments);
  tcase_add_test(tc, test_empty_and_overlapping_operands);
  tcase_add_test(tc, test_saturated_binary_cross_entropy);
  tcase_add_test(tc, test_binary_cross_entropy_input_range);
  tcase_add_test(tc, test_gradients_at_degenerate_points);
  tcase_add_test(tc, test_empty_reductions_and_clamp_bounds);
  tcase_add_test(tc, test_pow_special_exponents);
  tcase_add_test(tc, test_div_gradient_at_tiny_divisors);
  tcase_add_test(tc, test_elu_gradient_at_nan);
  tcase_add_test(tc, test_prod_gradient_beside_inf_and_nan);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
