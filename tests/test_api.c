/* The public API's contracts on failure: a NULL argument always leaves an
 * error; a user's callback that fails without saying why gets a message
 * naming it; results are set (NULL, or a filled gradcheck result) when a
 * call fails; the sequence runner checks what a cell's step returns and
 * says where an error happened. */
#include "check_values.h"

#include <string.h>

static int failures;

/* call reported failure; the pending error is LOOM_ERR_ARGUMENT and names
 * op and the NULL. Non-fatal, so one run lists every offender. */
static void expect_null_error(bool failed, const char *op, int line) {
  const char *msg = loom_last_error();
  if (!failed || loom_last_status() != LOOM_ERR_ARGUMENT || !strstr(msg, op) ||
      !strstr(msg, "NULL")) {
    fprintf(stderr, "line %d: %s: %s, error %d \"%s\"\n", line, op,
            failed ? "failed" : "did not fail", (int)loom_last_status(), msg);
    failures++;
  }
  loom_clear_error();
}

#define FAILS_P(call, op) expect_null_error((call) == NULL, op, __LINE__)
#define FAILS_I(call, op) expect_null_error((call) < 0, op, __LINE__)
#define FAILS_D(call, op) expect_null_error(isnan(call), op, __LINE__)
/* A void function's error. */
#define FAILED_WITH(op) expect_null_error(true, op, __LINE__)
#define NO_CRASH(call)                                                         \
  do {                                                                         \
    call;                                                                      \
    loom_clear_error();                                                        \
  } while (0)

START_TEST(test_null_arguments) {
  failures = 0;

  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *ix = loom_zeros(LOOM_I64, LOOM_SHAPE(2));
  loom_tensor *out[4];
  const int64_t two[] = {2};
  /* tensor/tensor.h */
  FAILS_I(loom_ndim(NULL), "ndim");
  FAILS_I(loom_size(NULL, 0), "size");
  FAILS_P(loom_shape(NULL), "shape");
  FAILS_P(loom_strides(NULL), "strides");
  FAILS_P(loom_data(NULL), "data");
  FAILS_P(loom_data_f32(NULL), "data_f32");
  FAILS_P(loom_data_f64(NULL), "data_f64");
  FAILS_P(loom_data_i64(NULL), "data_i64");
  FAILS_P(loom_data_i32(NULL), "data_i32");
  FAILS_P(loom_data_u8(NULL), "data_u8");
  FAILS_D(loom_get(NULL, two), "get");
  FAILS_D(loom_get(x, NULL), "get");
  FAILS_D(loom_item(NULL), "item");
  FAILS_I(loom_set(NULL, two, 1), "set");
  FAILS_I(loom_set(x, NULL, 1), "set");
  FAILS_I(loom_copy_to_array(NULL, LOOM_F32, out, 0), "copy_to_array");
  FAILS_I(loom_copy_to_array(x, LOOM_F32, NULL, 6), "copy_to_array");
  FAILS_P(loom_empty(LOOM_F32, 1, NULL), "empty");
  FAILS_P(loom_zeros(LOOM_F32, 1, NULL), "full");
  FAILS_P(loom_ones(LOOM_F32, 1, NULL), "full");
  FAILS_P(loom_full(LOOM_F32, 1, 1, NULL), "full");
  FAILS_P(loom_empty_like(NULL), "empty_like");
  FAILS_P(loom_zeros_like(NULL), "zeros_like");
  FAILS_P(loom_ones_like(NULL), "ones_like");
  FAILS_P(loom_full_like(NULL, 1), "full_like");
  FAILS_P(loom_from_array(LOOM_F32, NULL, 1, two), "from_array");
  FAILS_P(loom_from_array(LOOM_F32, out, 1, NULL), "from_array");
  FAILS_P(loom_from_buffer(LOOM_F32, NULL, 1, two, NULL, NULL, NULL),
          "from_buffer");
  FAILS_I(loom_rng_set_state(NULL, NULL), "rng_set_state");
  FAILS_P(loom_rand(NULL, LOOM_F32, 0, 1, 1, NULL), "rand");
  FAILS_P(loom_randn(NULL, LOOM_F32, 0, 1, 1, NULL), "randn");
  FAILS_P(loom_randint(NULL, LOOM_I64, 0, 2, 1, NULL), "randint");
  FAILS_P(loom_bernoulli(NULL, LOOM_F32, 0.5, 1, NULL), "bernoulli");
  NO_CRASH(loom_release(NULL));
  NO_CRASH(loom_rng_free(NULL));
  NO_CRASH(loom_rng_seed(NULL, 7)); /* the default generator */
  NO_CRASH(loom_rng_get_state(NULL, NULL));
  FILE *sink = fopen("/dev/null", "w");
  ck_assert_ptr_nonnull(sink);
  NO_CRASH(loom_fprint(sink, NULL));
  /* autograd/ops.h */
  FAILS_P(loom_reshape(NULL, 1, two), "reshape");
  FAILS_P(loom_reshape(x, 1, NULL), "reshape");
  FAILS_P(loom_view(NULL, 1, two), "view");
  FAILS_P(loom_transpose(NULL, 0, 1), "transpose");
  FAILS_P(loom_permute(NULL, (int[]){1, 0}), "permute");
  FAILS_P(loom_permute(x, NULL), "permute");
  FAILS_P(loom_narrow(NULL, 0, 0, 1), "narrow");
  FAILS_P(loom_slice(NULL, 0, 0, 1, 1), "slice");
  FAILS_P(loom_select(NULL, 0, 0), "select");
  FAILS_P(loom_squeeze(NULL, 0), "squeeze");
  FAILS_P(loom_squeeze_all(NULL), "squeeze");
  FAILS_P(loom_unsqueeze(NULL, 0), "unsqueeze");
  FAILS_P(loom_expand(NULL, 1, two), "expand");
  FAILS_P(loom_expand(x, 2, NULL), "expand");
  FAILS_P(loom_expand_as(NULL, x), "expand");
  FAILS_P(loom_expand_as(x, NULL), "expand");
  FAILS_P(loom_flatten(NULL, 0, 1), "flatten");
  FAILS_P(loom_t(NULL), "transpose");
  FAILS_P(loom_contiguous(NULL), "contiguous");
  FAILS_P(loom_clone(NULL), "clone");
  FAILS_P(loom_to_dtype(NULL, LOOM_F64), "to_dtype");
  FAILS_P(loom_concat(NULL, 2, 0), "concat");
  FAILS_P(loom_concat((loom_tensor *[]){x, NULL}, 2, 0), "concat");
  FAILS_P(loom_stack(NULL, 2, 0), "stack");
  FAILS_P(loom_stack((loom_tensor *[]){NULL, x}, 2, 0), "stack");
  FAILS_I(loom_split(NULL, 1, 0, out, 4), "split");
  FAILS_I(loom_split(x, 1, 0, NULL, 4), "split");
  FAILS_I(loom_split_sizes(NULL, (int64_t[]){1, 1}, 2, 0, out), "split");
  FAILS_I(loom_split_sizes(x, NULL, 2, 0, out), "split");
  FAILS_I(loom_split_sizes(x, (int64_t[]){1, 1}, 2, 0, NULL), "split");
  FAILS_I(loom_chunk(NULL, 2, 0, out, 4), "chunk");
  FAILS_I(loom_chunk(x, 2, 0, NULL, 4), "chunk");
  FAILS_P(loom_gather(NULL, 0, ix), "gather");
  FAILS_P(loom_gather(x, 0, NULL), "gather");
  FAILS_P(loom_index_select(NULL, 0, ix), "index_select");
  FAILS_P(loom_index_select(x, 0, NULL), "index_select");
  FAILS_P(loom_scatter_add(NULL, 0, ix, x), "scatter_add");
  FAILS_P(loom_scatter_add(x, 0, NULL, x), "scatter_add");
  FAILS_P(loom_scatter_add(x, 0, ix, NULL), "scatter_add");
  FAILS_P(loom_index_add(NULL, 0, ix, x, 1), "index_add");
  FAILS_P(loom_index_add(x, 0, ix, NULL, 1), "index_add");
  FAILS_P(loom_embedding(NULL, ix, -1), "embedding");
  FAILS_P(loom_embedding(x, NULL, -1), "embedding");
  FAILS_P(loom_one_hot(NULL, 3), "one_hot");
  FAILS_P(loom_masked_fill(NULL, ix, 0), "masked_fill");
  FAILS_P(loom_masked_fill(x, NULL, 0), "masked_fill");
  FAILS_P(loom_where(NULL, x, x), "where");
  FAILS_P(loom_where(ix, NULL, x), "where");
  FAILS_P(loom_where(ix, x, NULL), "where");
  FAILS_P(loom_masked_select(NULL, ix), "masked_select");
  FAILS_P(loom_cumsum(NULL, 0), "cumsum");
  FAILS_P(loom_cumprod(NULL, 0), "cumprod");
  out[0] = x; /* the indices are set on failure */
  FAILS_P(loom_sort(NULL, 0, false, out), "sort");
  ck_assert_ptr_null(out[0]);
  FAILS_P(loom_argsort(NULL, 0, false), "argsort");
  out[0] = x;
  FAILS_P(loom_topk(NULL, 1, 0, true, out), "topk");
  ck_assert_ptr_null(out[0]);
  FAILS_P(loom_masked_select(x, NULL), "masked_select");
  FAILS_P(loom_tril(NULL, 0), "tril");
  FAILS_P(loom_triu(NULL, 0), "triu");
  FAILS_P(loom_flip(NULL, (int[]){0}, 1), "flip");
  FAILS_P(loom_flip(x, NULL, 1), "flip");
  FAILS_P(loom_roll(NULL, two, NULL, 1), "roll");
  FAILS_P(loom_roll(x, NULL, NULL, 1), "roll");
  FAILS_P(loom_repeat(NULL, 2, (int64_t[]){1, 1}), "repeat");
  FAILS_P(loom_repeat(x, 2, NULL), "repeat");
  FAILS_P(loom_tile(NULL, 1, two), "tile");
  FAILS_P(loom_tile(x, 1, NULL), "tile");
  FAILS_P(loom_pad(NULL, two, 0, LOOM_PAD_CONSTANT, 0), "pad");
  FAILS_P(loom_pad(x, NULL, 2, LOOM_PAD_CONSTANT, 0), "pad");
  loom_tensor *(*binary[])(const loom_tensor *, const loom_tensor *) = {
      loom_add,     loom_sub,     loom_mul, loom_div,         loom_pow,
      loom_maximum, loom_minimum, loom_eq,  loom_ne,          loom_lt,
      loom_le,      loom_gt,      loom_ge,  loom_logical_and, loom_logical_or,
      loom_matmul,  loom_bmm};
  for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++) {
    FAILS_P(binary[i](NULL, x), "");
    FAILS_P(binary[i](x, NULL), "");
  }
  FAILS_P(loom_add(NULL, x), "add");
  FAILS_P(loom_matmul(x, NULL), "matmul");
  FAILS_P(loom_add_scaled(NULL, x, 2), "add");
  loom_tensor *(*scalar[])(const loom_tensor *, double) = {
      loom_add_scalar, loom_sub_scalar, loom_rsub_scalar, loom_mul_scalar,
      loom_div_scalar, loom_pow_scalar, loom_eq_scalar,   loom_ne_scalar,
      loom_lt_scalar,  loom_le_scalar,  loom_gt_scalar,   loom_ge_scalar,
      loom_leaky_relu, loom_elu,        loom_full_like};
  for (size_t i = 0; i < sizeof scalar / sizeof scalar[0]; i++)
    FAILS_P(scalar[i](NULL, 1), "");
  FAILS_P(loom_mul_scalar(NULL, 2), "mul");
  loom_tensor *(*unary[])(const loom_tensor *) = {
      loom_logical_not, loom_neg,        loom_exp,  loom_expm1,
      loom_log,         loom_log1p,      loom_sqrt, loom_rsqrt,
      loom_square,      loom_reciprocal, loom_abs,  loom_sign,
      loom_sin,         loom_cos,        loom_tanh, loom_sigmoid,
      loom_log_sigmoid, loom_relu,       loom_silu, loom_sum_all,
      loom_mean_all};
  for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
    FAILS_P(unary[i](NULL), "");
  FAILS_P(loom_tanh(NULL), "tanh");
  FAILS_P(loom_gelu(NULL, false), "gelu");
  FAILS_P(loom_softplus(NULL, 1, 20), "softplus");
  FAILS_P(loom_clamp(NULL, 0, 1), "clamp");
  loom_tensor *(*reduce[])(const loom_tensor *, const int *, int, bool) = {
      loom_sum, loom_mean, loom_prod, loom_logsumexp, loom_amax, loom_amin};
  for (size_t i = 0; i < sizeof reduce / sizeof reduce[0]; i++)
    FAILS_P(reduce[i](NULL, NULL, 0, false), "");
  FAILS_P(loom_sum(NULL, NULL, 0, false), "sum");
  FAILS_P(loom_var(NULL, NULL, 0, 1, false), "var");
  FAILS_P(loom_std(NULL, NULL, 0, 1, false), "var");
  FAILS_P(loom_norm(NULL, 2, NULL, 0, false), "norm");
  FAILS_P(loom_max(NULL, 0, false, NULL), "max");
  FAILS_P(loom_min(NULL, 0, false, NULL), "min");
  FAILS_P(loom_argmax(NULL, 0, false), "max");
  FAILS_P(loom_argmin(NULL, 0, false), "min");
  FAILS_P(loom_softmax(NULL, 0), "softmax");
  FAILS_P(loom_log_softmax(NULL, 0), "log_softmax");
  FAILS_P(loom_layer_norm(NULL, 1, NULL, NULL, 1e-5), "layer_norm");
  FAILS_P(loom_batch_norm_relu(NULL, NULL, NULL, NULL, NULL, 1e-5, NULL, NULL),
          "batch_norm_relu");
  FAILS_P(loom_addmm(NULL, x, x, 1, 1), "addmm");
  FAILS_P(loom_baddbmm(x, x, NULL, 1, 1), "baddbmm");
  FAILS_P(loom_linear(NULL, x, NULL), "linear");
  FAILS_P(loom_linear(x, NULL, NULL), "linear");
  FAILS_P(loom_conv2d(NULL, x, NULL, (loom_conv2d_opts){0}), "conv2d");
  FAILS_P(loom_conv2d(x, NULL, NULL, (loom_conv2d_opts){0}), "conv2d");
  FAILS_P(loom_einsum(NULL, &x, 1), "einsum");
  FAILS_P(loom_einsum("i", NULL, 1), "einsum");
  FAILS_P(loom_conv1d(NULL, x, NULL, (loom_conv1d_opts){0}), "conv1d");
  FAILS_P(loom_conv1d(x, NULL, NULL, (loom_conv1d_opts){0}), "conv1d");
  FAILS_P(loom_max_pool2d(NULL, (loom_pool2d_opts){.kernel = {1, 1}}, NULL),
          "max_pool2d");
  FAILS_P(loom_avg_pool2d(NULL, (loom_pool2d_opts){.kernel = {1, 1}}),
          "avg_pool2d");
  FAILS_P(loom_adaptive_avg_pool2d(NULL, 1, 1), "adaptive_avg_pool2d");
  FAILS_P(loom_unfold(NULL, (loom_fold_opts){.kernel = {1, 1}}), "unfold");
  FAILS_P(loom_fold(NULL, 1, 1, (loom_fold_opts){.kernel = {1, 1}}), "fold");
  FAILS_P(loom_dropout(NULL, 0.5, true, NULL), "dropout");
  FAILS_I(
      loom_lstm_sequence(NULL, x, x, x, x, NULL, NULL, false, out, out, out),
      "lstm");
  FAILS_I(loom_lstm_sequence_input(NULL, x, x, x, x, x, x, NULL, NULL, false,
                                   out, out, out),
          "lstm");
  FAILS_I(loom_lstm_sequence_input(x, NULL, x, x, x, x, x, NULL, NULL, false,
                                   out, out, out),
          "lstm");
  FAILS_I(loom_gru_sequence(NULL, x, x, x, NULL, false, out, out), "gru");
  FAILS_I(loom_gru_sequence_input(NULL, x, x, x, x, x, NULL, false, out, out),
          "gru");
  FAILS_I(loom_gru_sequence_input(x, NULL, x, x, x, x, NULL, false, out, out),
          "gru");
  FAILS_I(loom_rnn_sequence(NULL, x, x, x, NULL, false, false, out, out),
          "rnn");
  FAILS_P(loom_copy_(NULL, x), "copy_");
  FAILS_P(loom_copy_(x, NULL), "copy_");
  FAILS_P(loom_fill_(NULL, 1), "fill_");
  FAILS_P(loom_zero_(NULL), "fill_");
  FAILS_P(loom_add_(NULL, x, 1), "add_");
  FAILS_P(loom_add_(x, NULL, 1), "add_");
  FAILS_P(loom_mul_(NULL, x), "mul_");
  FAILS_P(loom_mul_(x, NULL), "mul_");
  FAILS_P(loom_mul_scalar_(NULL, 2), "mul_");
  FAILS_P(loom_masked_fill_(NULL, ix, 0), "masked_fill_");
  FAILS_P(loom_masked_fill_(x, NULL, 0), "masked_fill_");
  FAILS_P(loom_clamp_(NULL, 0, 1), "clamp_");
  /* autograd/autograd.h */
  FAILS_P(loom_set_requires_grad(NULL, true), "set_requires_grad");
  FAILS_P(loom_grad(NULL), "grad");
  FAILS_P(loom_detach(NULL), "detach");
  FAILS_I(loom_backward(NULL), "backward");
  FAILS_I(loom_backward_with(NULL, x, NULL), "backward");
  FAILS_I(loom_function_apply(NULL, &x, out, NULL), "function_apply");
  FAILS_P(loom_function_saved(NULL, 0), "function_saved");
  FAILS_I(loom_gradcheck(NULL, NULL, &x, 1, NULL, NULL), "gradcheck");
  NO_CRASH(loom_zero_grad(NULL));
  loom_retain_grad(NULL);
  FAILED_WITH("retain_grad");
  loom_graph_print(sink, NULL);
  FAILED_WITH("graph_print");
  loom_graph_print(NULL, x);
  FAILED_WITH("graph_print");
  fclose(sink);
  loom_function_save(NULL, x);
  FAILED_WITH("function_save");
  /* nn/nn.h */
  loom_linear_layer *lin = loom_linear_layer_new(3, 2, true);
  ck_assert_loom(lin);
  loom_module *m = &lin->base;
  FAILS_P(loom_module_add_param(NULL, "w", x), "module");
  FAILS_P(loom_module_add_param(m, NULL, x), "module");
  FAILS_P(loom_module_add_param(m, "w", NULL), "module");
  FAILS_P(loom_module_add_buffer(m, "b", NULL), "module");
  FAILS_P(loom_module_add_child(m, "c", NULL), "module");
  /* a cycle is refused and nothing freed (a module as its own child had
   * recursed without end in the next traversal) */
  loom_linear_layer *kid = loom_linear_layer_new(2, 2, true);
  ck_assert_ptr_eq(loom_module_add_child(m, "kid", &kid->base), &kid->base);
  loom_module *wrong[][2] = {{m, m}, {&kid->base, m}, {&kid->base, &kid->base}};
  for (int i = 0; i < 3; i++) {
    ck_assert_ptr_null(loom_module_add_child(wrong[i][0], "x", wrong[i][1]));
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    loom_clear_error();
  }
  /* so is a second parent, which would free the child a second time */
  loom_linear_layer *other = loom_linear_layer_new(2, 2, true);
  ck_assert_ptr_null(loom_module_add_child(&other->base, "kid", &kid->base));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "already has a parent"));
  loom_clear_error();
  loom_module_free(&other->base);
  ck_assert_int_eq(loom_module_num_elements(m), 3 * 2 + 2 + 2 * 2 + 2);
  FAILS_I(loom_module_parameters(NULL, out, 4), "module_parameters");
  FAILS_I(loom_module_num_elements(NULL), "module_parameters");
  FAILS_P(loom_module_named_parameters(NULL), "module_named_parameters");
  FAILS_P(loom_module_state_dict(NULL), "module_state_dict");
  FAILS_I(loom_module_load_state_dict(NULL, NULL, true), "load_state_dict");
  FAILS_P(loom_module_entry_name(NULL, x), "module_entry_name");
  FAILS_P(loom_module_entry_name(m, NULL), "module_entry_name");
  FAILS_I(loom_module_rename(NULL, "a", "b"), "module_rename");
  FAILS_I(loom_module_rename(m, NULL, "b"), "module_rename");
  FAILS_I(loom_module_rename(m, "a", NULL), "module_rename");
  FAILS_I(loom_module_load_state_dict(m, NULL, true), "load_state_dict");
  FAILS_P(loom_module_list_append(NULL, NULL), "module_list_append");
  FAILS_P(loom_module_child(NULL, 0), "module_child");
  FAILS_I(loom_module_child_count(NULL), "module_child_count");
  FAILS_I(loom_init_uniform_(NULL, 0, 1, NULL), "init");
  FAILS_I(loom_init_normal_(NULL, 0, 1, NULL), "init");
  FAILS_I(loom_init_constant_(NULL, 0), "init");
  FAILS_I(loom_init_xavier_uniform_(NULL, 1, NULL), "init");
  FAILS_I(loom_init_xavier_normal_(NULL, 1, NULL), "init");
  FAILS_I(loom_init_kaiming_uniform_(NULL, 0, LOOM_FAN_IN, "relu", NULL),
          "init");
  FAILS_I(loom_init_kaiming_normal_(NULL, 0, LOOM_FAN_IN, "relu", NULL),
          "init");
  FAILS_I(loom_init_orthogonal_(NULL, 1, NULL), "init");
  FAILS_I(loom_init_eye_(NULL), "init");
  FAILS_I(loom_init_fan(NULL, LOOM_FAN_IN), "init");
  FAILS_P(loom_linear_layer_forward(NULL, x), "Linear");
  FAILS_P(loom_linear_layer_forward(lin, NULL), "linear");
  FAILS_P(loom_bilinear_forward(NULL, x, x), "Bilinear");
  FAILS_P(loom_embedding_layer_forward(NULL, ix), "Embedding");
  FAILS_P(loom_conv2d_layer_forward(NULL, x), "Conv2d");
  FAILS_P(loom_batch_norm_layer_forward(NULL, x), "BatchNorm");
  FAILS_P(loom_batch_norm_layer_forward_relu(NULL, x), "BatchNorm");
  FAILS_P(loom_layer_norm_layer_new(1, NULL, 1e-5, true), "LayerNorm");
  FAILS_P(loom_layer_norm_layer_forward(NULL, x), "LayerNorm");
  FAILS_P(loom_dropout_layer_forward(NULL, x), "Dropout");
  FAILS_P(loom_highway_forward(NULL, x), "Highway");
  FAILS_P(loom_cross_entropy(NULL, ix, NULL), "cross_entropy");
  FAILS_P(loom_cross_entropy(x, NULL, NULL), "cross_entropy");
  FAILS_P(loom_nll_loss(NULL, ix, NULL), "nll_loss");
  FAILS_P(loom_mse_loss(NULL, x, LOOM_MEAN), "mse_loss");
  FAILS_P(loom_mse_loss(x, NULL, LOOM_MEAN), "mse_loss");
  FAILS_P(loom_l1_loss(x, NULL, LOOM_MEAN), "l1_loss");
  FAILS_P(loom_smooth_l1_loss(NULL, x, 1, LOOM_MEAN), "smooth_l1_loss");
  FAILS_P(loom_binary_cross_entropy(NULL, x, NULL, LOOM_MEAN),
          "binary_cross_entropy");
  FAILS_P(loom_binary_cross_entropy_with_logits(x, NULL, NULL, NULL, LOOM_MEAN),
          "binary_cross_entropy_with_logits");
  FAILS_P(loom_kl_div(NULL, x, false, LOOM_MEAN, false), "kl_div");
  FAILS_I(loom_checkpoint_save(NULL, m, NULL, NULL, 0, NULL, NULL),
          "checkpoint");
  FAILS_I(loom_checkpoint_save("unused.ckpt", NULL, NULL, NULL, 0, NULL, NULL),
          "checkpoint");
  FAILS_I(loom_checkpoint_load(NULL, m, NULL, NULL, NULL, NULL, NULL),
          "checkpoint");
  /* nn/rnn.h */
  FAILS_P(
      loom_rnn_new(NULL, (loom_rnn_opts){.input_size = 1, .hidden_size = 1}),
      "rnn_new");
  loom_rnn *rnn =
      loom_gru_new((loom_rnn_opts){.input_size = 3, .hidden_size = 2});
  ck_assert_loom(rnn);
  loom_tensor *seq = loom_ones(LOOM_F32, LOOM_SHAPE(2, 1, 3));
  FAILS_I(loom_rnn_forward(NULL, seq, NULL, NULL, out, NULL), "rnn_forward");
  FAILS_I(loom_rnn_forward(rnn, NULL, NULL, NULL, out, NULL), "GRU");
  FAILS_I(loom_rnn_forward(rnn, seq, NULL, NULL, NULL, NULL), "GRU");
  FAILS_I(loom_rnn_cell_step(NULL, 0, x, out, out), "rnn_cell_step");
  FAILS_I(loom_rnn_cell_step(rnn, 0, NULL, out, out), "GRU");
  FAILS_I(loom_rnn_cell_step(rnn, 0, x, NULL, out), "GRU");
  FAILS_I(loom_rnn_cell_step(rnn, 0, x, (loom_tensor *[]){NULL}, out), "GRU");
  FAILS_I(loom_rnn_cell_step(rnn, 0, x, out, NULL), "GRU");
  FAILS_P(loom_cell_new(NULL, NULL, 3, 2, true), "cell_new");
  loom_cell *cell = loom_cell_new(&loom_gru_cell, NULL, 3, 2, true);
  ck_assert_loom(cell);
  FAILS_I(loom_cell_forward(NULL, x, NULL, out), "cell_forward");
  FAILS_I(loom_cell_forward(cell, NULL, NULL, out), "GRUCell");
  FAILS_I(loom_cell_forward(cell, x, NULL, NULL), "GRUCell");
  loom_cell_free(cell);
  FAILS_P(loom_locked_dropout(NULL, 0.5, true, NULL), "locked_dropout");
  FAILS_P(loom_embedding_dropout(NULL, ix, -1, 0.5, true, NULL),
          "embedding_dropout");
  FAILS_P(loom_embedding_dropout(x, NULL, -1, 0.5, true, NULL),
          "embedding_dropout");
  FAILS_P(loom_zoneout(NULL, x, 0.5, true, NULL), "zoneout");
  FAILS_P(loom_zoneout(x, NULL, 0.5, true, NULL), "zoneout");
  FAILS_P(loom_weight_norm(NULL, x, 0), "weight_norm");
  FAILS_P(loom_weight_norm(x, NULL, 0), "weight_norm");
  FAILS_P(loom_weight_norm_init(NULL, 0), "weight_norm_init");
  FAILS_P(loom_pad_sequence(NULL, 1, false, 0, out), "pad_sequence");
  FAILS_P(loom_pad_sequence((loom_tensor *[]){NULL}, 1, false, 0, out),
          "pad_sequence");
  ck_assert_ptr_null(out[0]);
  FAILS_I(loom_unpad_sequence(NULL, ix, false, out, 2), "unpad_sequence");
  FAILS_I(loom_unpad_sequence(x, NULL, false, out, 2), "unpad_sequence");
  FAILS_I(loom_unpad_sequence(x, ix, false, NULL, 2), "unpad_sequence");
  /* optim/optim.h */
  loom_tensor *params[] = {lin->weight, NULL};
  FAILS_P(loom_sgd_new(NULL, 1, loom_sgd_defaults(0.1)), "sgd");
  FAILS_P(loom_sgd_new(params, 2, loom_sgd_defaults(0.1)),
          "sgd: parameter 1 is NULL");
  FAILS_P(loom_adam_new(params, 2, loom_adam_defaults(0.1)), "adam");
  FAILS_P(loom_adamw_new(params, 2, loom_adamw_defaults(0.1)), "adamw");
  FAILS_P(loom_rmsprop_new(params, 2, loom_rmsprop_defaults(0.1)), "rmsprop");
  FAILS_P(loom_adagrad_new(params, 2, loom_adagrad_defaults(0.1)), "adagrad");
  FAILS_I(loom_optimizer_step(NULL), "optimizer_step");
  FAILS_D(loom_optimizer_lr(NULL), "optimizer_lr");
  FAILS_D(loom_optimizer_initial_lr(NULL), "optimizer_initial_lr");
  FAILS_P(loom_optimizer_name(NULL), "optimizer_name");
  FAILS_I(loom_optimizer_save_state(NULL, NULL, ""), "optimizer_save_state");
  FAILS_I(loom_optimizer_load_state(NULL, NULL, ""), "optimizer_load_state");
  FAILS_D(loom_clip_grad_norm(NULL, 1, 1, 2), "clip_grad_norm");
  FAILS_D(loom_clip_grad_norm(params, 2, 1, 2), "clip_grad_norm");
  FAILS_P(loom_schedule_new(NULL, (loom_schedule_opts){0}), "schedule_new");
  FAILS_D(loom_schedule_step(NULL, 0), "schedule_step");
  FAILS_I(loom_schedule_epoch(NULL), "schedule_epoch");
  FAILS_I(loom_schedule_save_state(NULL, NULL, ""), "schedule_save_state");
  FAILS_I(loom_schedule_load_state(NULL, NULL, ""), "schedule_load_state");
  NO_CRASH(loom_optimizer_free(NULL));
  NO_CRASH(loom_optimizer_zero_grad(NULL));
  FAILS_I(loom_optimizer_set_lr(NULL, 1), "optimizer_set_lr");
  loom_clip_grad_value(params, 2, 1);
  FAILED_WITH("clip_grad_value: parameter 1 is NULL");
  NO_CRASH(loom_schedule_free(NULL));
  /* tensor/safetensors.h */
  FAILS_I(loom_tensor_map_set(NULL, "a", x), "tensor_map_set");
  FAILS_I(loom_tensor_map_set_meta(NULL, "a", "b"), "tensor_map_set_meta");
  FAILS_P(loom_tensor_map_get(NULL, "a"), "tensor_map_get");
  FAILS_P(loom_tensor_map_at(NULL, 0), "tensor_map_at");
  FAILS_P(loom_tensor_map_name(NULL, 0), "tensor_map_name");
  FAILS_P(loom_tensor_map_meta(NULL, "a"), "tensor_map_meta");
  FAILS_P(loom_tensor_map_meta_key(NULL, 0), "tensor_map_meta_key");
  FAILS_I(loom_safetensors_save(NULL, NULL), "safetensors_save");
  FAILS_P(loom_safetensors_load(NULL), "safetensors_load");
  FAILS_P(loom_safetensors_parse(NULL, 8, "x"), "safetensors_parse");
  NO_CRASH(loom_tensor_map_free(NULL));
  /* nn/attention.h */
  loom_multihead_attention *mha =
      loom_multihead_attention_new(4, 2, (loom_multihead_attention_opts){0});
  ck_assert_loom(mha);
  loom_tensor *q = loom_ones(LOOM_F32, LOOM_SHAPE(2, 1, 4));
  FAILS_P(
      loom_scaled_dot_product_attention(NULL, q, q, NULL, false, 0, NULL, NULL),
      "attention");
  FAILS_I(loom_seq_attention_forward(NULL, q, q, NULL, out, NULL),
          "seq_attention");
  FAILS_I(loom_multihead_attention_forward(NULL, q, q, q, NULL, out, NULL),
          "MultiheadAttention");
  FAILS_I(loom_multihead_attention_forward(mha, q, NULL, q, NULL, out, NULL),
          "MultiheadAttention");
  FAILS_I(loom_multihead_attention_forward(mha, q, q, q, NULL, NULL, NULL),
          "MultiheadAttention");
  FAILS_I(loom_kv_cache_length(NULL), "kv_cache_length");
  FAILS_I(loom_kv_cache_reorder(NULL, ix), "kv_cache_reorder");
  FAILS_P(loom_multihead_attention_step(NULL, NULL, q), "attention step");
  FAILS_P(loom_multihead_attention_cross_step(NULL, NULL, q, q, NULL),
          "attention cross step");
  FAILS_P(loom_learned_positions_forward(NULL, 0, 1), "learned_positions");
  FAILS_P(loom_transformer_encoder_layer_forward(NULL, q, NULL),
          "TransformerEncoderLayer");
  FAILS_P(loom_transformer_decoder_layer_forward(NULL, q, q, NULL),
          "TransformerDecoderLayer");
  FAILS_P(loom_transformer_encoder_forward(NULL, q, NULL),
          "TransformerEncoder");
  FAILS_P(loom_transformer_decoder_forward(NULL, q, q, NULL),
          "TransformerDecoder");
  FAILS_P(loom_decoder_state_new(NULL, q, NULL), "decoder_state");
  FAILS_I(loom_decoder_state_reorder(NULL, ix), "decoder_state_reorder");
  FAILS_P(loom_transformer_step(NULL, NULL, q), "transformer_step");
  FAILS_P(loom_transformer_forward(NULL, q, q, NULL), "Transformer");
  NO_CRASH(loom_seq_attention_free(NULL));
  NO_CRASH(loom_kv_cache_free(NULL));
  NO_CRASH(loom_learned_positions_free(NULL));
  NO_CRASH(loom_transformer_stack_free(NULL));
  NO_CRASH(loom_decoder_state_free(NULL));
  NO_CRASH(loom_transformer_free(NULL));
  loom_multihead_attention_free(mha);
  /* nn/decode.h, tensor/file.h */
  FAILS_I(loom_decode(NULL, 1, NULL, NULL, NULL), "decode");
  FAILS_P(loom_file_open_read(NULL), "file_open_read");
  FAILS_P(loom_file_writer_open(NULL), "file_writer");
  FAILS_P(loom_file_writer_stream(NULL), "file_writer");
  FAILS_I(loom_file_writer_commit(NULL), "file_writer_commit");
  NO_CRASH(loom_file_writer_abort(NULL));
  NO_CRASH(loom_decode_result_free(NULL));
  /* modules and objects freed with NULL do nothing */
  NO_CRASH(loom_module_free(NULL));
  NO_CRASH(loom_module_train(NULL, false));
  NO_CRASH(loom_module_zero_grad(NULL));
  NO_CRASH(loom_rnn_free(NULL));
  loom_rnn_free(rnn);
  loom_linear_layer_free(lin);
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- user callbacks that fail, and results on failure ---- */

typedef enum {
  CELL_OK,
  CELL_WIDE_STATE,  /* returns (B, H + 1) */
  CELL_F64_STATE,   /* returns float64 */
  CELL_SILENT_FAIL, /* returns -1 with no error set */
  CELL_BAD_OP_AT_2, /* an op fails inside the step at t = 2 */
  CELL_NO_MAKE,     /* make returns NULL with no error set */
  CELL_NO_PROJECT,  /* project returns NULL with no error set */
} cell_mode;

typedef struct {
  cell_mode mode;
  int64_t t;
  loom_tensor *w;
} test_cell;

static void *cell_make(const void *config, loom_module *owner,
                       const char *suffix, int64_t in, int64_t hidden) {
  cell_mode mode = *(const cell_mode *)config;
  if (mode == CELL_NO_MAKE)
    return NULL;
  test_cell *c = calloc(1, sizeof *c);
  char name[32];
  snprintf(name, sizeof name, "w%s", suffix);
  loom_scope *s = loom_scope_begin();
  c->mode = mode;
  c->w = loom_module_add_param(
      owner, name, loom_full(LOOM_F32, 0.1, LOOM_SHAPE(hidden, in)));
  loom_scope_end(s);
  return c;
}

static loom_tensor *cell_project(void *cell, const loom_tensor *x) {
  test_cell *c = cell;
  return c->mode == CELL_NO_PROJECT ? NULL : loom_linear(x, c->w, NULL);
}

static int cell_step(void *cell, const loom_tensor *xp,
                     loom_tensor *const *state, loom_tensor **next) {
  test_cell *c = cell;
  int64_t t = c->t++;
  next[0] = loom_tanh(loom_add(xp, state[0]));
  switch (c->mode) {
  case CELL_WIDE_STATE:
    next[0] = loom_concat(
        (loom_tensor *[]){next[0], loom_narrow(next[0], 1, 0, 1)}, 2, 1);
    break;
  case CELL_F64_STATE:
    next[0] = loom_to_dtype(next[0], LOOM_F64);
    break;
  case CELL_SILENT_FAIL:
    return -1;
  case CELL_BAD_OP_AT_2:
    if (t == 2)
      next[0] = loom_add(next[0], loom_ones(LOOM_F32, LOOM_SHAPE(5)));
    break;
  default:
    break;
  }
  return next[0] ? 0 : -1;
}

static const loom_cell_type test_cell_type = {.name = "Test",
                                              .n_states = 1,
                                              .make = cell_make,
                                              .project = cell_project,
                                              .step = cell_step};

/* A layer of the test cell run on (T 4, B 2, I 3) with hidden 3; returns
 * forward's result, with out and final set to a non-NULL guard first. */
static int run_test_cell(cell_mode mode, int layers, bool bidirectional,
                         loom_tensor **out, loom_tensor **final) {
  loom_rnn *r = loom_rnn_new(&test_cell_type,
                             (loom_rnn_opts){.input_size = 3,
                                             .hidden_size = 3,
                                             .num_layers = layers,
                                             .bidirectional = bidirectional,
                                             .cell_config = &mode});
  ck_assert_loom(r);
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(4, 2, 3));
  *out = final[0] = x; /* a guard: failure must reset them */
  int rc = loom_rnn_forward(r, x, NULL, NULL, out, final);
  loom_rnn_free(r);
  return rc;
}

START_TEST(test_runner_checks_user_cells) {
  loom_tensor *out, *final[1];
  ck_assert_int_eq(run_test_cell(CELL_OK, 2, true, &out, final), 0);
  CHECK_SHAPE(out, 4, 2, 6);
  CHECK_SHAPE(final[0], 4, 2, 3);
  /* a state of the wrong shape: named, with where (was silently wrong with
   * one layer, an unrelated error with two) */
  for (int layers = 1; layers <= 2; layers++) {
    ck_assert_int_eq(run_test_cell(CELL_WIDE_STATE, layers, false, &out, final),
                     -1);
    ck_assert_ptr_null(out);
    ck_assert_ptr_null(final[0]);
    CHECK_ERROR(LOOM_ERR_SHAPE,
                "Test: step callback returned state 0 as float32 [2, 4]; it "
                "was given float32 [2, 3] (in Test layer 0, forward "
                "direction, step 0)");
    loom_clear_error();
  }
  ck_assert_int_eq(run_test_cell(CELL_F64_STATE, 1, false, &out, final), -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "state 0 as float64 [2, 3]");
  loom_clear_error();
  ck_assert_int_eq(run_test_cell(CELL_SILENT_FAIL, 1, false, &out, final), -1);
  CHECK_ERROR(LOOM_ERR_STATE,
              "Test: step callback returned non-zero with no error set (in "
              "Test layer 0, forward direction, step 0)");
  loom_clear_error();
  /* an op's own error, then where it happened (the first layer's forward
   * direction fails first, at its third step) */
  ck_assert_int_eq(run_test_cell(CELL_BAD_OP_AT_2, 2, true, &out, final), -1);
  ck_assert_msg(strstr(loom_last_error(), "add: "), "%s", loom_last_error());
  CHECK_ERROR(LOOM_ERR_SHAPE, "(in Test layer 0, forward direction, step 2)");
  ck_assert_ptr_null(
      loom_rnn_new(&test_cell_type,
                   (loom_rnn_opts){.input_size = 3,
                                   .hidden_size = 3,
                                   .cell_config = &(cell_mode){CELL_NO_MAKE}}));
  CHECK_ERROR(LOOM_ERR_STATE, "Test: make callback returned NULL with no "
                              "error set (in Test layer 0, forward direction)");
  loom_clear_error();
  ck_assert_int_eq(run_test_cell(CELL_NO_PROJECT, 1, false, &out, final), -1);
  CHECK_ERROR(LOOM_ERR_STATE, "Test: project callback returned NULL");
  loom_clear_error();
}
END_TEST

/* A cell defined wrongly by its config: state_shape's batch or sizes, a
 * recurrent weight named twice, a fused path's final state or output of
 * the wrong shape. */
typedef enum {
  DEF_OK,
  DEF_BATCH,
  DEF_NEGATIVE,
  DEF_TWICE,
  DEF_FUSED_FINAL,
  DEF_FUSED_OUTPUT,
  DEF_FUSED_SILENT
} def_mode;

typedef struct {
  def_mode mode;
  loom_tensor *u;
} def_cell;

static void *def_make(const void *config, loom_module *owner,
                      const char *suffix, int64_t in, int64_t hidden) {
  (void)in;
  def_cell *c = calloc(1, sizeof *c);
  char name[32];
  snprintf(name, sizeof name, "u%s", suffix);
  loom_scope *s = loom_scope_begin();
  c->mode = *(const def_mode *)config;
  c->u = loom_module_add_param(
      owner, name, loom_full(LOOM_F32, 0.1, LOOM_SHAPE(hidden, hidden)));
  loom_scope_end(s);
  return c;
}

static int def_state_shape(void *cell, int k, const loom_tensor *x,
                           int64_t *shape) {
  (void)k;
  def_cell *c = cell;
  shape[0] = loom_shape(x)[0] + (c->mode == DEF_BATCH);
  shape[1] = c->mode == DEF_NEGATIVE ? -3 : loom_shape(c->u)[0];
  return 2;
}

static int def_step(void *cell, const loom_tensor *x, loom_tensor *const *state,
                    loom_tensor **next) {
  def_cell *c = cell;
  next[0] = loom_tanh(
      loom_add(loom_narrow(x, 1, 0, 3), loom_linear(state[0], c->u, NULL)));
  return next[0] ? 0 : -1;
}

static int def_recurrent_weights(void *cell, loom_tensor ***slots) {
  def_cell *c = cell;
  slots[0] = slots[1] = &c->u;
  return c->mode == DEF_TWICE ? 2 : 1;
}

static int def_sequence(void *cell, const loom_tensor *xs,
                        const loom_tensor *lengths, bool reverse,
                        loom_tensor *const *init, loom_tensor **out,
                        loom_tensor **final) {
  (void)lengths, (void)reverse;
  def_cell *c = cell;
  if (c->mode != DEF_FUSED_FINAL && c->mode != DEF_FUSED_OUTPUT &&
      c->mode != DEF_FUSED_SILENT)
    return 1;
  int64_t T = loom_shape(xs)[0], B = loom_shape(init[0])[0];
  if (c->mode == DEF_FUSED_SILENT) /* 0, with no final state written */
    return (*out = loom_zeros(LOOM_F32, LOOM_SHAPE(T, B, 3))) ? 0 : -1;
  *out = loom_zeros(LOOM_F32,
                    LOOM_SHAPE(T, B, c->mode == DEF_FUSED_OUTPUT ? 2 : 3));
  final[0] =
      loom_zeros(LOOM_F32, LOOM_SHAPE(B, c->mode == DEF_FUSED_FINAL ? 4 : 3));
  return 0;
}

static const loom_cell_type def_cell_type = {.name = "Def",
                                             .n_states = 1,
                                             .make = def_make,
                                             .state_shape = def_state_shape,
                                             .step = def_step,
                                             .sequence = def_sequence,
                                             .recurrent_weights =
                                                 def_recurrent_weights};

/* A cell type the runner cannot use is named as the culprit: a state_shape
 * of another batch (was an add error inside the step) or with a negative
 * size (was "full: negative size", with no context), a recurrent weight
 * named twice (was normalised twice, u_l0_v_v), a type without a name
 * (was a NULL for %s in every message). The next forward works. */
START_TEST(test_runner_checks_cell_definitions) {
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(4, 2, 3)), *out, *fin[1];
  for (def_mode m = DEF_BATCH; m <= DEF_NEGATIVE; m++) {
    loom_rnn *r = loom_rnn_new(
        &def_cell_type,
        (loom_rnn_opts){.input_size = 3, .hidden_size = 3, .cell_config = &m});
    ck_assert_loom(r);
    ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &out, fin), -1);
    CHECK_ERROR(LOOM_ERR_STATE,
                m == DEF_BATCH
                    ? "Def: state_shape callback gave state 0 as [3, 3] for a "
                      "step input [2, 3] (batch 2 first, sizes >= 0) (in Def "
                      "layer 0, forward direction)"
                    : "Def: state_shape callback gave state 0 as [2, -3]");
    loom_clear_error();
    ((def_cell *)r->cells[0])->mode = DEF_OK; /* the cell put right */
    ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &out, fin), 0);
    loom_rnn_free(r);
  }
  def_mode twice = DEF_TWICE;
  ck_assert_ptr_null(
      loom_rnn_new(&def_cell_type, (loom_rnn_opts){.input_size = 3,
                                                   .hidden_size = 3,
                                                   .weight_norm = true,
                                                   .cell_config = &twice}));
  CHECK_ERROR(LOOM_ERR_STATE, "Def: recurrent_weights callback gave weights 0 "
                              "and 1 as the same tensor");
  loom_clear_error();
  /* a fused path's results are checked as a step's (were taken as they
   * were, or failed in the next layer's product) */
  for (def_mode m = DEF_FUSED_FINAL; m <= DEF_FUSED_OUTPUT; m++) {
    loom_rnn *r = loom_rnn_new(
        &def_cell_type,
        (loom_rnn_opts){.input_size = 3, .hidden_size = 3, .cell_config = &m});
    ck_assert_loom(r);
    ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &out, fin), -1);
    CHECK_ERROR(LOOM_ERR_SHAPE,
                m == DEF_FUSED_FINAL
                    ? "Def: sequence callback returned state 0 as float32 "
                      "[2, 4]; it was given float32 [2, 3] (in Def layer 0, "
                      "forward direction)"
                    : "Def: sequence callback returned output float32 [4, 2, "
                      "2] for 4 steps of state 0 float32 [2, 3] (in Def "
                      "layer 0, forward direction)");
    loom_clear_error();
    loom_rnn_free(r);
  }
  /* a fused path that returns 0 without writing its final state: its
   * results were read uninitialised, as garbage tensors (a message of
   * garbage shapes, or a crash); now a NULL result, on every call */
  def_mode silent = DEF_FUSED_SILENT;
  loom_rnn *quiet =
      loom_rnn_new(&def_cell_type, (loom_rnn_opts){.input_size = 3,
                                                   .hidden_size = 3,
                                                   .cell_config = &silent});
  ck_assert_loom(quiet);
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(loom_rnn_forward(quiet, x, NULL, NULL, &out, fin), -1);
    CHECK_ERROR(LOOM_ERR_STATE, "Def: sequence callback returned 0 with state "
                                "0 NULL (in Def layer 0, forward direction)");
    loom_clear_error();
  }
  loom_rnn_free(quiet);
  loom_cell_type unnamed = def_cell_type;
  unnamed.name = NULL;
  ck_assert_ptr_null(loom_rnn_new(
      &unnamed, (loom_rnn_opts){.input_size = 3, .hidden_size = 3}));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "cell type (unnamed) needs a name");
  loom_clear_error();
}
END_TEST

START_TEST(test_runner_outputs_on_failure) {
  loom_rnn *r = loom_lstm_new(
      (loom_rnn_opts){.input_size = 3, .hidden_size = 2, .num_layers = 2});
  ck_assert_loom(r);
  loom_tensor *x = loom_ones(LOOM_F32, LOOM_SHAPE(4, 2, 3));
  loom_tensor *out = x, *final[2] = {x, x};
  /* wrong features */
  ck_assert_int_eq(loom_rnn_forward(r, loom_ones(LOOM_F32, LOOM_SHAPE(4, 2, 5)),
                                    NULL, NULL, &out, final),
                   -1);
  ck_assert_ptr_null(out);
  ck_assert_ptr_null(final[0]);
  ck_assert_ptr_null(final[1]);
  CHECK_ERROR(LOOM_ERR_SHAPE, "5 features");
  loom_clear_error();
  /* initial states with the right element count but transposed */
  loom_tensor *h0 = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 2, 2));
  loom_tensor *bad = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1, 4));
  ck_assert_int_eq(
      loom_rnn_forward(r, x, NULL, (loom_tensor *[]){h0, bad}, &out, final),
      -1);
  CHECK_ERROR(LOOM_ERR_SHAPE,
              "initial state 1 is [2, 1, 4], expected (2, [2, 2])");
  loom_clear_error();
  loom_tensor *wide = loom_zeros(LOOM_F32, LOOM_SHAPE(3, 2, 2));
  ck_assert_int_eq(
      loom_rnn_forward(r, x, NULL, (loom_tensor *[]){wide, h0}, &out, final),
      -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "initial state 0 is [3, 2, 2]");
  loom_clear_error();
  ck_assert_int_eq(
      loom_rnn_forward(r, x, NULL, (loom_tensor *[]){h0, h0}, &out, final), 0);
  CHECK_SHAPE(out, 4, 2, 2);
  /* one step on its own: states checked, new_state reset on failure */
  loom_tensor *ns[2] = {x, x};
  ck_assert_int_eq(loom_rnn_cell_step(r, 5,
                                      loom_ones(LOOM_F32, LOOM_SHAPE(2, 3)),
                                      (loom_tensor *[]){h0, h0}, ns),
                   -1);
  ck_assert_ptr_null(ns[0]);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "LSTM: no layer 5 (it has 2)");
  loom_clear_error();
  loom_rnn_free(r);
}
END_TEST

static int silent_gradcheck_fn(loom_tensor *const *in, int n, loom_tensor **out,
                               int max, void *ctx) {
  (void)in, (void)n, (void)out, (void)max, (void)ctx;
  return -1;
}

static int silent_forward(loom_function_ctx *c, loom_tensor *const *in, int n,
                          loom_tensor **out) {
  (void)c, (void)in, (void)n, (void)out;
  return -1;
}

static int no_backward(loom_function_ctx *c, loom_tensor *const *gout,
                       loom_tensor **gin) {
  (void)c, (void)gout, (void)gin;
  return -1;
}

START_TEST(test_callbacks_failing_silently) {
  loom_tensor *x =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(2)), true);
  loom_gradcheck_result res;
  memset(&res, 0x55, sizeof res); /* not a result */
  ck_assert_int_eq(loom_gradcheck(silent_gradcheck_fn, NULL, &x, 1, NULL, &res),
                   -1);
  CHECK_ERROR(LOOM_ERR_STATE,
              "gradcheck: the function returned -1 with no error set");
  ck_assert(!res.passed);
  ck_assert_int_eq(res.input, -1);
  ck_assert_int_eq(res.output, -1);
  ck_assert(isnan(res.analytic) && isnan(res.numeric) &&
            isnan(res.worst_excess));
  ck_assert_str_eq(res.message, "gradcheck could not run: gradcheck: the "
                                "function returned -1 with no error set");
  loom_clear_error();
  /* a float32 input: the error is the result's message too */
  loom_tensor *f = loom_ones(LOOM_F32, LOOM_SHAPE(2));
  ck_assert_int_eq(loom_gradcheck(silent_gradcheck_fn, NULL, &f, 1, NULL, &res),
                   -1);
  ck_assert(strstr(res.message, "needs float64"));
  loom_clear_error();

  static const loom_function quiet = {"Quiet", 1, 1, silent_forward,
                                      no_backward};
  loom_tensor *y;
  ck_assert_int_eq(loom_function_apply(&quiet, &x, &y, NULL), -1);
  CHECK_ERROR(LOOM_ERR_STATE,
              "Quiet: forward callback returned -1 with no error set");
  loom_clear_error();
}
END_TEST

/* A schedule's options outside their ranges are refused naming the rule
 * they break (the message had given only the kind's number). */
START_TEST(test_schedule_rules_named) {
  loom_tensor *w =
      loom_set_requires_grad(loom_zeros(LOOM_F32, LOOM_SHAPE(2)), true);
  loom_optimizer *opt = loom_sgd_new(&w, 1, loom_sgd_defaults(0.1));
  loom_schedule_opts lin = loom_schedule_defaults(LOOM_SCHEDULE_LINEAR);
  lin.total_iters = 0;
  loom_schedule_opts ms = loom_schedule_defaults(LOOM_SCHEDULE_MULTISTEP);
  ms.n_milestones = 3;
  ms.milestones[0] = 2, ms.milestones[1] = 2, ms.milestones[2] = 5;
  /* NaN gammas and eta_min were taken (the lr became NaN), where NaN
   * plateau factors were refused */
  loom_schedule_opts step = loom_schedule_defaults(LOOM_SCHEDULE_STEP);
  step.step_size = 1, step.gamma = NAN;
  loom_schedule_opts ms_nan = loom_schedule_defaults(LOOM_SCHEDULE_MULTISTEP);
  ms_nan.gamma = NAN;
  loom_schedule_opts ex = loom_schedule_defaults(LOOM_SCHEDULE_EXPONENTIAL);
  ex.gamma = INFINITY;
  loom_schedule_opts cosine = loom_schedule_defaults(LOOM_SCHEDULE_COSINE);
  cosine.t_max = 10, cosine.eta_min = NAN;
  loom_schedule_opts pl = loom_schedule_defaults(LOOM_SCHEDULE_PLATEAU);
  pl.factor = NAN;
  loom_schedule_opts pl_min = loom_schedule_defaults(LOOM_SCHEDULE_PLATEAU);
  pl_min.min_lr = -1; /* the lr it fell to would be refused */
  loom_schedule_opts bad[] = {lin,    ms, {.kind = (loom_schedule_kind)99},
                              step,   ms_nan, ex, cosine, pl, pl_min};
  const char *said[] = {"linear: total_iters > 0",
                        "multistep: 0 to 16",
                        "unknown kind 99",
                        "step: step_size > 0, gamma finite",
                        "the one before, gamma finite",
                        "exponential: gamma finite",
                        "cosine: t_max > 0, eta_min finite",
                        "plateau: factor in (0, 1)",
                        "min_lr finite and >= 0"};
  for (int i = 0; i < 9; i++) {
    ck_assert_ptr_null(loom_schedule_new(opt, bad[i]));
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    ck_assert_msg(strstr(loom_last_error(), said[i]), "%s", loom_last_error());
    loom_clear_error();
  }
  ck_assert_double_eq(loom_optimizer_lr(opt), 0.1);
  /* an lr the optimizer refuses stops the schedule loudly: it had gone on
   * at the old lr with the optimizer's refusal pending */
  loom_schedule_opts neg = loom_schedule_defaults(LOOM_SCHEDULE_EXPONENTIAL);
  neg.gamma = -0.5;
  loom_schedule *s = loom_schedule_new(opt, neg);
  ck_assert_ptr_nonnull(s);
  ck_assert(isnan(loom_schedule_step(s, 0)));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_msg(strstr(loom_last_error(), "the lr at epoch 1 would be -0.05"),
                "%s", loom_last_error());
  loom_clear_error();
  ck_assert_int_eq(loom_schedule_epoch(s), 0);
  ck_assert_double_eq(loom_optimizer_lr(opt), 0.1);
  loom_schedule_free(s);
  loom_schedule_opts big = loom_schedule_defaults(LOOM_SCHEDULE_EXPONENTIAL);
  big.gamma = 1e300;
  s = loom_schedule_new(opt, big);
  ck_assert_ptr_nonnull(s);
  ck_assert_double_eq(loom_schedule_step(s, 0), 0.1 * 1e300);
  ck_assert(isnan(loom_schedule_step(s, 0))); /* inf */
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  loom_schedule_free(s);
  loom_optimizer_free(opt);
}
END_TEST

/* An optimizer's parameters and learning rate, and clipping's norm, are
 * checked: a parameter given twice was stepped twice a step; a NaN or
 * negative lr was taken by set_lr; a p that loom_norm refuses made
 * clip_grad_norm return 1 and scale the gradients anyway. */
START_TEST(test_optimizer_rules_named) {
  loom_tensor *w =
      loom_set_requires_grad(loom_ones(LOOM_F32, LOOM_SHAPE(3)), true);
  loom_tensor *twice[2] = {w, w};
  ck_assert_ptr_null(loom_sgd_new(twice, 2, loom_sgd_defaults(0.1)));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_msg(strstr(loom_last_error(), "parameter 1 is parameter 0 again"),
                "%s", loom_last_error());
  loom_clear_error();
  loom_optimizer *opt = loom_adam_new(&w, 1, loom_adam_defaults(0.1));
  ck_assert_ptr_nonnull(opt);
  const double bad_lr[] = {NAN, -1, INFINITY};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(loom_optimizer_set_lr(opt, bad_lr[i]), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    loom_clear_error();
    ck_assert_double_eq(loom_optimizer_lr(opt), 0.1);
    ck_assert_ptr_null(loom_sgd_new(&w, 1, loom_sgd_defaults(bad_lr[i])));
    loom_clear_error();
  }
  ck_assert_int_eq(loom_optimizer_set_lr(opt, 0), 0);
  ck_assert_double_eq(loom_optimizer_lr(opt), 0);
  loom_optimizer_free(opt);
  ck_assert_int_eq(loom_set_grad(w, loom_full(LOOM_F32, 5, LOOM_SHAPE(3))), 0);
  const double bad_clip[][2] = {{1, 0}, {1, -2}, {1, NAN}, {NAN, 2}, {-1, 2}};
  for (int i = 0; i < 5; i++) {
    double max = bad_clip[i][0], p = bad_clip[i][1];
    ck_assert(isnan(loom_clip_grad_norm(&w, 1, max, p)));
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    ck_assert_msg(strstr(loom_last_error(), "clip_grad_norm"), "%s",
                  loom_last_error());
    loom_clear_error();
    ck_assert_float_eq(loom_data_f32(loom_grad(w))[0], 5);
  }
  /* a weight registered twice (tied) is one parameter, as in PyTorch */
  loom_module *m = malloc(sizeof *m), *child = malloc(sizeof *child);
  ck_assert(m && child);
  loom_module_init(m, "tied", NULL);
  loom_module_init(child, "child", NULL);
  ck_assert_ptr_eq(loom_module_add_param(m, "a", w), w);
  loom_tensor *other =
      loom_module_add_param(m, "b", loom_zeros(LOOM_F32, LOOM_SHAPE(2)));
  ck_assert_ptr_eq(loom_module_add_param(child, "a_again", w), w);
  ck_assert_ptr_nonnull(loom_module_add_child(m, "child", child));
  loom_tensor *ps[4] = {NULL};
  ck_assert_int_eq(loom_module_parameters(m, ps, 4), 2);
  ck_assert_ptr_eq(ps[0], w);
  ck_assert_ptr_eq(ps[1], other);
  ck_assert_int_eq(loom_module_num_elements(m), 5);
  loom_tensor_map *named = loom_module_named_parameters(m);
  ck_assert_int_eq(loom_tensor_map_count(named), 2);
  ck_assert_ptr_eq(loom_tensor_map_get(named, "a"), w);
  ck_assert_ptr_null(loom_tensor_map_get(named, "child.a_again"));
  loom_tensor_map_free(named);
  loom_tensor_map *state = loom_module_state_dict(m);
  ck_assert_int_eq(loom_tensor_map_count(state), 3);
  loom_tensor_map_free(state);
  loom_module_free(m);
}
END_TEST

/* The initialisers refuse arguments outside their ranges with an error
 * that names them, and leave the tensor as it was. */
START_TEST(test_initialiser_arguments) {
  loom_tensor *w = loom_ones(LOOM_F32, LOOM_SHAPE(3, 3));
  loom_tensor *before = loom_clone(w);
  /* a fan mode outside the enum was taken as LOOM_FAN_OUT */
  ck_assert_int_eq(
      loom_init_kaiming_uniform_(w, 0, (loom_fan_mode)7, "relu", NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_kaiming_uniform_: fan mode 7 is not a "
                                 "loom_fan_mode (LOOM_FAN_IN or LOOM_FAN_OUT");
  loom_clear_error();
  ck_assert_int_eq(
      loom_init_kaiming_normal_(w, 0, (loom_fan_mode)-1, "relu", NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_kaiming_normal_: fan mode -1");
  loom_clear_error();
  ck_assert_int_eq(loom_init_fan(w, (loom_fan_mode)2), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_fan: fan mode 2");
  loom_clear_error();
  /* also for a tensor of no elements, which the mode would not change */
  ck_assert_int_eq(
      loom_init_kaiming_uniform_(loom_zeros(LOOM_F32, LOOM_SHAPE(0, 3)), 0,
                                 (loom_fan_mode)7, "relu", NULL),
      -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "fan mode 7");
  loom_clear_error();
  /* a gain that is not finite, as xavier's: orthogonal_ had filled NaN,
   * kaiming's NaN slope had failed without an error */
  ck_assert_int_eq(loom_init_orthogonal_(w, NAN, NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_orthogonal_: gain nan is not finite");
  loom_clear_error();
  ck_assert_int_eq(loom_init_orthogonal_(w, -INFINITY, NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_orthogonal_: gain -inf is not finite");
  loom_clear_error();
  ck_assert_int_eq(
      loom_init_kaiming_uniform_(w, NAN, LOOM_FAN_IN, "leaky_relu", NULL), -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "init_kaiming_uniform_: gain nan (negative slope a = nan)");
  loom_clear_error();
  ck_assert_int_eq(loom_init_kaiming_normal_(w, 0, LOOM_FAN_IN, "swish", NULL),
                   -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "init_gain: unknown nonlinearity 'swish'");
  loom_clear_error();
  ck_assert(loom_equal(w, before));
  ck_assert_int_eq(loom_init_orthogonal_(w, 2, NULL), 0);
  ck_assert_int_eq(loom_init_fan(w, LOOM_FAN_OUT), 3);
  ck_assert_int_eq(loom_init_kaiming_normal_(w, 0, LOOM_FAN_OUT, "relu", NULL),
                   0);
}
END_TEST

/* Highway's gate bias fills the gate's bias: a NaN or infinite one had
 * made every output NaN (or the gate stuck) without an error. */
START_TEST(test_highway_arguments) {
  ck_assert_ptr_null(loom_highway_new(4, NAN));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "Highway: size 4 (0 and up), gate_bias nan");
  loom_clear_error();
  ck_assert_ptr_null(loom_highway_new(4, -INFINITY));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "gate_bias -inf (finite)");
  loom_clear_error();
  ck_assert_ptr_null(loom_highway_new(-1, -1));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "Highway: size -1");
  loom_clear_error();
  loom_highway *h = loom_highway_new(4, -2);
  ck_assert_ptr_nonnull(h);
  ck_assert(loom_equal(h->gate->bias, loom_full(LOOM_F32, -2, LOOM_SHAPE(4))));
  loom_highway_free(h);
}
END_TEST

/* Bilinear's inputs share their leading dims: (2, 3, in1) with (3, 2, in2)
 * had paired rows of different positions (both flatten to 6 rows) and
 * returned a result; (4, in1) with (2, in2) failed inside mul. */
START_TEST(test_bilinear_leading_dims) {
  loom_scope *s = loom_scope_begin();
  loom_bilinear *l = loom_bilinear_new(3, 2, 1, false);
  ck_assert_ptr_nonnull(l);
  ck_assert_ptr_null(
      loom_bilinear_forward(l, loom_ones(LOOM_F32, LOOM_SHAPE(2, 3, 3)),
                            loom_ones(LOOM_F32, LOOM_SHAPE(3, 2, 2))));
  CHECK_ERROR(LOOM_ERR_SHAPE, "Bilinear: inputs [2, 3, 3] and [3, 2, 2]");
  loom_clear_error();
  ck_assert_ptr_null(
      loom_bilinear_forward(l, loom_ones(LOOM_F32, LOOM_SHAPE(4, 3)),
                            loom_ones(LOOM_F32, LOOM_SHAPE(2, 2))));
  CHECK_ERROR(LOOM_ERR_SHAPE, "Bilinear: inputs [4, 3] and [2, 2]");
  loom_clear_error();
  loom_tensor *y =
      loom_bilinear_forward(l, loom_ones(LOOM_F32, LOOM_SHAPE(2, 3, 3)),
                            loom_ones(LOOM_F32, LOOM_SHAPE(2, 3, 2)));
  ck_assert_ptr_nonnull(y);
  ck_assert_int_eq(loom_size(y, 0), 2);
  ck_assert_int_eq(loom_size(y, 1), 3);
  ck_assert_int_eq(loom_size(y, 2), 1);
  loom_bilinear_free(l);
  loom_scope_end(s);
}
END_TEST

/* clip_grad_value's clip must be >= 0: a negative or NaN one had failed
 * inside loom_clamp_ with a message naming neither the function nor the
 * argument. Nothing is clamped then. */
START_TEST(test_clip_grad_value_range) {
  loom_tensor *w =
      loom_set_requires_grad(loom_zeros(LOOM_F32, LOOM_SHAPE(2)), true);
  ck_assert_int_eq(loom_set_grad(w, VEC(LOOM_F32, 10, -10)), 0);
  loom_clip_grad_value(&w, 1, -1);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "clip_grad_value: clip -1 (>= 0, or INFINITY)");
  loom_clear_error();
  loom_clip_grad_value(&w, 1, NAN);
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "clip_grad_value: clip nan");
  loom_clear_error();
  ck_assert(loom_equal(loom_grad(w), VEC(LOOM_F32, 10, -10)));
  loom_clip_grad_value(&w, 1, 3);
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  ck_assert(loom_equal(loom_grad(w), VEC(LOOM_F32, 3, -3)));
}
END_TEST

START_TEST(test_mixed_dtypes_named) {
  loom_tensor *xp = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1, 4));
  loom_tensor *w = loom_zeros(LOOM_F64, LOOM_SHAPE(4, 1));
  loom_tensor *b = loom_zeros(LOOM_F32, LOOM_SHAPE(4));
  loom_tensor *h = loom_zeros(LOOM_F32, LOOM_SHAPE(1, 1));
  loom_tensor *h64 = loom_zeros(LOOM_F64, LOOM_SHAPE(1, 1));
  loom_tensor *o, *hn, *cn;
  ck_assert_int_eq(
      loom_lstm_sequence(xp, w, b, h, h, NULL, NULL, false, &o, &hn, &cn), -1);
  CHECK_ERROR(LOOM_ERR_DTYPE,
              "lstm_sequence: mixed dtypes: inputs float32, weight float64");
  loom_clear_error();
  ck_assert_int_eq(loom_lstm_sequence(xp, loom_to_dtype(w, LOOM_F32), b, h, h64,
                                      NULL, NULL, false, &o, &hn, &cn),
                   -1);
  CHECK_ERROR(LOOM_ERR_DTYPE, "inputs float32, state 1 float64");
  loom_clear_error();
  /* the op's own input part: x (T, B, I), w_ih (4H, I), b_ih (4H) */
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1, 3));
  loom_tensor *wf = loom_to_dtype(w, LOOM_F32);
  loom_tensor *wih = loom_zeros(LOOM_F32, LOOM_SHAPE(4, 3));
  ck_assert_int_eq(
      loom_lstm_sequence_input(x, loom_zeros(LOOM_F32, LOOM_SHAPE(4, 2)), b, wf,
                               b, h, h, NULL, NULL, false, &o, &hn, &cn),
      -1);
  CHECK_ERROR(LOOM_ERR_SHAPE, "lstm_sequence_input: input [2, 1, 3], "
                              "weight_ih [4, 2], bias_ih [4] for weight_hh "
                              "[4, 1]");
  loom_clear_error();
  ck_assert_int_eq(loom_lstm_sequence_input(x, loom_to_dtype(wih, LOOM_F64), b,
                                            wf, b, h, h, NULL, NULL, false, &o,
                                            &hn, &cn),
                   -1);
  CHECK_ERROR(LOOM_ERR_DTYPE, "lstm_sequence_input: mixed dtypes: input "
                              "float32, weight_ih float64, bias_ih float32");
  loom_clear_error();
  ck_assert_int_eq(loom_lstm_sequence_input(x, wih, b, wf, b, h, h, NULL, NULL,
                                            false, &o, &hn, &cn),
                   0);
  /* the GRU's: w_ih (3H, I) */
  loom_tensor *b3 = loom_zeros(LOOM_F32, LOOM_SHAPE(3));
  loom_tensor *whh3 = loom_zeros(LOOM_F32, LOOM_SHAPE(3, 1));
  ck_assert_int_eq(
      loom_gru_sequence_input(x, wih, b3, whh3, b3, h, NULL, false, &o, &hn),
      -1);
  CHECK_ERROR(LOOM_ERR_SHAPE,
              "gru_sequence_input: input [2, 1, 3], "
              "weight_ih [4, 3], bias_ih [3] for weight_hh "
              "[3, 1] (want (T, B, I), (3H, I), (3H), (3H, H))");
  loom_clear_error();
  loom_tensor *wih3 = loom_zeros(LOOM_F32, LOOM_SHAPE(3, 3));
  ck_assert_int_eq(loom_gru_sequence_input(x, wih3, loom_to_dtype(b3, LOOM_F64),
                                           whh3, b3, h, NULL, false, &o, &hn),
                   -1);
  CHECK_ERROR(LOOM_ERR_DTYPE, "gru_sequence_input: mixed dtypes: input "
                              "float32, weight_ih float32, bias_ih float64");
  loom_clear_error();
  ck_assert_int_eq(
      loom_gru_sequence_input(x, wih3, NULL, whh3, b3, h, NULL, false, &o, &hn),
      0);
}
END_TEST

START_TEST(test_anomaly_contract) {
  loom_set_anomaly_mode(true);
  loom_tensor *x = loom_set_requires_grad(VEC(LOOM_F64, -1, 4), true);
  /* the op records the error and returns its output for inspection */
  loom_tensor *y = loom_sqrt(x);
  ck_assert_loom(y);
  CHECK_VALUES(y, 0, NAN, 2);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_NUMERIC);
  ck_assert(strstr(loom_last_error(), "anomaly: sqrt produced NaN/Inf"));
  /* a later op's NaN does not replace it, and backward refuses */
  loom_tensor *loss = loom_sum_all(loom_log(y));
  ck_assert_loom(loss);
  ck_assert_int_eq(loom_backward(loss), -1);
  CHECK_ERROR(LOOM_ERR_NUMERIC, "sqrt");
  loom_set_anomaly_mode(false);
}
END_TEST

int main(void) {
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("api");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_null_arguments);
  tcase_add_test(tc, test_runner_checks_user_cells);
  tcase_add_test(tc, test_runner_checks_cell_definitions);
  tcase_add_test(tc, test_runner_outputs_on_failure);
  tcase_add_test(tc, test_callbacks_failing_silently);
  tcase_add_test(tc, test_mixed_dtypes_named);
  tcase_add_test(tc, test_schedule_rules_named);
  tcase_add_test(tc, test_optimizer_rules_named);
  tcase_add_test(tc, test_initialiser_arguments);
  tcase_add_test(tc, test_highway_arguments);
  tcase_add_test(tc, test_bilinear_leading_dims);
  tcase_add_test(tc, test_clip_grad_value_range);
  tcase_add_test(tc, test_anomaly_contract);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
