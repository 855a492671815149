/* float64 gradcheck of every cell (built-in variants, with and without
 * biases, and the examples of user-defined cells) and of the runner with
 * layers, both directions and variable lengths: gradients w.r.t. the
 * input, the initial states and every parameter; and every cell type as
 * a single-cell module (loom_cell) stepped by hand. */
#include "../examples/cells.h"
#include "check_util.h"

#include <string.h>

typedef struct {
  const char *name;
  const loom_cell_type *type;
  loom_lstm_opts lstm;
  int layers;
  bool bidirectional, lengths, image;
} rnn_case;

typedef struct {
  loom_rnn *r;
  const loom_tensor *lengths;
  int n_states;
} ctx;

/* in: x, the initial states, then the parameters (perturbed in place). */
static int run(loom_tensor *const *in, int n, loom_tensor **out, int max,
               void *p) {
  (void)n;
  (void)max;
  ctx *c = p;
  loom_tensor *fin[LOOM_RNN_MAX_STATES];
  if (loom_rnn_forward(c->r, in[0], c->lengths, in + 1, &out[0], fin) < 0)
    return -1;
  for (int k = 0; k < c->n_states; k++)
    out[1 + k] = fin[k];
  return 1 + c->n_states;
}

static const rnn_case cases[] = {
    {"rnn tanh", &loom_rnn_tanh_cell, {0}, 1, false, false, false},
    {"rnn relu 2 layers", &loom_rnn_relu_cell, {0}, 2, false, false, false},
    {"lstm", &loom_lstm_cell, {0}, 1, false, false, false},
    {"lstm peephole",
     &loom_lstm_cell,
     {.peephole = true},
     1,
     false,
     false,
     false},
    {"lstm coupled",
     &loom_lstm_cell,
     {.coupled = true},
     1,
     false,
     false,
     false},
    {"lstm coupled peephole",
     &loom_lstm_cell,
     {.coupled = true, .peephole = true},
     1,
     false,
     false,
     false},
    {"lstm layer norm",
     &loom_lstm_cell,
     {.layer_norm = true},
     1,
     false,
     false,
     false},
    {"lstm forget bias",
     &loom_lstm_cell,
     {.forget_bias = 1},
     1,
     false,
     false,
     false},
    {"gru", &loom_gru_cell, {0}, 1, false, false, false},
    {"gru cho2014", &loom_gru_cho2014_cell, {0}, 1, false, false, false},
    {"runner: lstm 2 layers bidirectional lengths",
     &loom_lstm_cell,
     {0},
     2,
     true,
     true,
     false},
    {"runner: gru bidirectional lengths",
     &loom_gru_cell,
     {0},
     1,
     true,
     true,
     false},
    {"example: minimal gated unit, bidirectional",
     &example_mgu_cell,
     {0},
     1,
     true,
     true,
     false},
    {"example: ConvLSTM", &example_convlstm_cell, {0}, 1, false, false, true},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

/* The built-in cells without biases (loom_rnn_opts.no_bias; the LSTM's
 * layer_norm and forget_bias are refused with it), after the cases above. */
static const rnn_case no_bias_cases[] = {
    {"rnn tanh no bias", &loom_rnn_tanh_cell, {0}, 1, false, false, false},
    {"rnn relu no bias 2 layers",
     &loom_rnn_relu_cell,
     {0},
     2,
     false,
     false,
     false},
    {"lstm no bias", &loom_lstm_cell, {0}, 1, false, false, false},
    {"lstm peephole no bias",
     &loom_lstm_cell,
     {.peephole = true},
     1,
     false,
     false,
     false},
    {"lstm coupled peephole no bias",
     &loom_lstm_cell,
     {.coupled = true, .peephole = true},
     1,
     false,
     false,
     false},
    {"gru no bias", &loom_gru_cell, {0}, 1, false, false, false},
    {"gru cho2014 no bias",
     &loom_gru_cho2014_cell,
     {0},
     1,
     false,
     false,
     false},
    {"runner: lstm no bias 2 layers bidirectional lengths",
     &loom_lstm_cell,
     {0},
     2,
     true,
     true,
     false},
    {"runner: gru no bias bidirectional lengths",
     &loom_gru_cell,
     {0},
     1,
     true,
     true,
     false},
    {"runner: rnn relu no bias bidirectional lengths",
     &loom_rnn_relu_cell,
     {0},
     1,
     true,
     true,
     false},
};
enum { N_NO_BIAS = sizeof no_bias_cases / sizeof no_bias_cases[0] };

START_TEST(test_cell_gradcheck) {
  bool no_bias = _i >= N_CASES;
  const rnn_case *tc = no_bias ? &no_bias_cases[_i - N_CASES] : &cases[_i];
  loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(7 + (uint64_t)_i);
  int64_t T = 3, B = 2, I = 2, H = 3, k = 3;
  loom_rnn_opts o = {.input_size = I,
                     .hidden_size = H,
                     .num_layers = tc->layers,
                     .bidirectional = tc->bidirectional,
                     .no_bias = no_bias,
                     .cell_config = tc->image ? (const void *)&k
                                              : (const void *)&tc->lstm};
  if (tc->image) {
    o.input_size = 1;
    o.hidden_size = 2;
  }
  loom_rnn *r = loom_rnn_new(tc->type, o);
  ck_assert_loom(r);
  int ns = tc->type->n_states, D = tc->bidirectional ? 2 : 1;
  loom_tensor *in[64];
  int n = 0;
  in[n++] = tc->image
                ? loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(T, B, 1, 3, 3))
                : loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(T, B, I));
  for (int s = 0; s < ns; s++)
    in[n++] = tc->image ? loom_randn(NULL, LOOM_F64, 0, 0.5,
                                     LOOM_SHAPE(tc->layers * D, B, 2, 3, 3))
                        : loom_randn(NULL, LOOM_F64, 0, 0.5,
                                     LOOM_SHAPE(tc->layers * D, B, H));
  for (int i = 0; i < n; i++)
    loom_set_requires_grad(in[i], true);
  n += loom_module_parameters(&r->base, in + n, 64 - n);
  ck_assert_int_lt(n, 64);
  ctx c = {r, NULL, ns};
  if (tc->lengths)
    c.lengths = loom_from_array(LOOM_I64, (int64_t[]){3, 2}, LOOM_SHAPE(2));
  loom_gradcheck_result res;
  int rc = loom_gradcheck(run, &c, in, n, NULL, &res);
  if (getenv("LOOM_VERBOSE"))
    printf("%s: %d inputs, %s\n", tc->name, n, res.message);
  ck_assert_msg(rc == 1, "%s: %s (%s)", tc->name, res.message,
                loom_last_error());
  /* Second derivatives too (the fused layers differentiate their step
   * composition, ConvLSTM's conv2d its unfold / fold form), with respect
   * to the first 16 inputs (gradgradcheck's limit: the 2-layer case's last
   * 3 parameters are left out). */
  rc = loom_gradgradcheck(run, &c, in, n < 16 ? n : 16, NULL, &res);
  ck_assert_msg(rc == 1, "%s: gradgradcheck: %s (%s)", tc->name, res.message,
                loom_last_error());
  loom_rnn_free(r);
  loom_set_default_dtype(LOOM_F32);
}
END_TEST

/* Variable lengths behave like separate runs of each sequence. */
START_TEST(test_lengths_equal_separate_runs) {
  loom_rnn *r = loom_lstm_new((loom_rnn_opts){
      .input_size = 2, .hidden_size = 3, .bidirectional = true});
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 2, 2));
  loom_tensor *len =
      loom_from_array(LOOM_I64, (int64_t[]){4, 2}, LOOM_SHAPE(2));
  loom_tensor *out, *fin[2], *out1, *fin1[2];
  ck_assert_int_eq(loom_rnn_forward(r, x, len, NULL, &out, fin), 0);
  /* sequence 1 alone, cut to its length */
  loom_tensor *x1 = loom_narrow(loom_narrow(x, 1, 1, 1), 0, 0, 2);
  ck_assert_int_eq(loom_rnn_forward(r, x1, NULL, NULL, &out1, fin1), 0);
  ck_assert(loom_allclose(loom_narrow(loom_narrow(out, 1, 1, 1), 0, 0, 2), out1,
                          1e-6, 1e-7));
  for (int k = 0; k < 2; k++)
    ck_assert(loom_allclose(loom_narrow(fin[k], 1, 1, 1), fin1[k], 1e-6, 1e-7));
  /* and its outputs past the end are zero */
  ck_assert_double_eq(loom_item(loom_sum_all(loom_abs(
                          loom_narrow(loom_narrow(out, 1, 1, 1), 0, 2, 2)))),
                      0);
  loom_rnn_free(r);
}
END_TEST

START_TEST(test_dropout_between_layers) {
  loom_rng *g = loom_rng_new(3);
  loom_rnn *r = loom_gru_new((loom_rnn_opts){.input_size = 2,
                                             .hidden_size = 4,
                                             .num_layers = 2,
                                             .dropout = 0.5,
                                             .variational = true,
                                             .rng = g});
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(5, 3, 2));
  loom_tensor *a, *b, *c;
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &a, NULL), 0);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &b, NULL), 0);
  ck_assert(!loom_allclose(a, b, 0, 0)); /* fresh masks in training */
  loom_module_train(&r->base, false);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &b, NULL), 0);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &c, NULL), 0);
  ck_assert(loom_equal(b, c)); /* none in evaluation */
  loom_rnn_free(r);
  loom_rng_free(g);
}
END_TEST

START_TEST(test_parameter_names) {
  loom_lstm_opts peep = {.peephole = true};
  loom_rnn *r = loom_lstm_new((loom_rnn_opts){.input_size = 2,
                                              .hidden_size = 3,
                                              .num_layers = 2,
                                              .bidirectional = true,
                                              .cell_config = &peep});
  loom_tensor_map *m = loom_module_named_parameters(&r->base);
  const char *want[] = {"weight_ih_l0",         "weight_hh_l0",
                        "bias_ih_l0",           "bias_hh_l0",
                        "weight_ci_l0",         "weight_co_l0",
                        "weight_cf_l0",         "weight_ih_l0_reverse",
                        "weight_hh_l1_reverse", "bias_hh_l1_reverse"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(loom_tensor_map_get(m, want[i]) != NULL, "no %s", want[i]);
  ck_assert_int_eq(loom_size(loom_tensor_map_get(m, "weight_ih_l1"), 1), 6);
  loom_tensor_map_free(m);
  loom_rnn_free(r);
}
END_TEST

/* Truncated BPTT through the runner: the state carried across chunks is
 * detached, so memory is the same after chunk 5 and after chunk 60. */
START_TEST(test_truncated_bptt_memory_is_flat) {
  loom_rnn *r = loom_lstm_new(
      (loom_rnn_opts){.input_size = 3, .hidden_size = 8, .num_layers = 2});
  loom_tensor *ps[16];
  int np = loom_module_parameters(&r->base, ps, 16);
  loom_optimizer *opt = loom_adam_new(ps, np, loom_adam_defaults(1e-3));
  loom_tensor *state[2] = {NULL, NULL};
  int64_t live = 0, bytes = 0;
  for (int chunk = 0; chunk < 60; chunk++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(7, 2, 3));
    loom_tensor *out, *fin[2];
    ck_assert_int_eq(
        loom_rnn_forward(r, x, NULL, state[0] ? state : NULL, &out, fin), 0);
    loom_optimizer_zero_grad(opt);
    ck_assert_int_eq(loom_backward(loom_mean_all(loom_square(out))), 0);
    loom_clip_grad_norm(ps, np, 1.0, 2);
    loom_optimizer_step(opt);
    for (int k = 0; k < 2; k++) {
      loom_release(state[k]);
      state[k] = loom_keep(loom_detach(fin[k]));
    }
    loom_scope_end(s);
    ck_assert_int_eq(loom_tape_size(), 0);
    if (chunk == 5) {
      live = loom_debug_live_tensors();
      bytes = loom_debug_live_bytes();
    }
  }
  ck_assert_int_eq(loom_debug_live_tensors(), live);
  ck_assert_int_eq(loom_debug_live_bytes(), bytes);
  loom_release(state[0]);
  loom_release(state[1]);
  loom_optimizer_free(opt);
  loom_rnn_free(r);
}
END_TEST

/* The single-cell module (loom_cell) of every cell type, built-in (with
 * and without biases) and user-defined, stepped twice by hand from given
 * states (batched, and unbatched where the input is 1-D): gradients
 * w.r.t. x, the initial states and every parameter. */
typedef struct {
  const char *name;
  const loom_cell_type *type;
  loom_lstm_opts lstm;
  bool bias, unbatched, image;
} cell_case;

static const cell_case cell_cases[] = {
    {"RNNCell tanh", &loom_rnn_tanh_cell, {0}, true, false, false},
    {"RNNCell tanh unbatched", &loom_rnn_tanh_cell, {0}, true, true, false},
    {"RNNCell relu no bias", &loom_rnn_relu_cell, {0}, false, false, false},
    {"LSTMCell", &loom_lstm_cell, {0}, true, false, false},
    {"LSTMCell unbatched no bias", &loom_lstm_cell, {0}, false, true, false},
    {"LSTMCell peephole",
     &loom_lstm_cell,
     {.peephole = true},
     true,
     false,
     false},
    {"LSTMCell coupled peephole no bias",
     &loom_lstm_cell,
     {.coupled = true, .peephole = true},
     false,
     false,
     false},
    {"LSTMCell layer norm",
     &loom_lstm_cell,
     {.layer_norm = true},
     true,
     false,
     false},
    {"GRUCell", &loom_gru_cell, {0}, true, false, false},
    {"GRUCell unbatched", &loom_gru_cell, {0}, true, true, false},
    {"GRUCell no bias", &loom_gru_cell, {0}, false, false, false},
    {"GRUCell cho2014", &loom_gru_cho2014_cell, {0}, true, false, false},
    {"GRUCell cho2014 no bias unbatched",
     &loom_gru_cho2014_cell,
     {0},
     false,
     true,
     false},
    {"example: MGU cell", &example_mgu_cell, {0}, true, false, false},
    {"example: ConvLSTM cell", &example_convlstm_cell, {0}, true, false, true},
};
enum { N_CELL_CASES = sizeof cell_cases / sizeof cell_cases[0] };

typedef struct {
  loom_cell *cell;
  int n_states;
} cell_ctx;

/* in: x (2, ...) of two steps, the initial states, then the parameters;
 * out: each step's output, then the final states after the first. */
static int run_cell(loom_tensor *const *in, int n, loom_tensor **out, int max,
                    void *p) {
  (void)n;
  (void)max;
  cell_ctx *c = p;
  loom_tensor *state[LOOM_RNN_MAX_STATES], *next[LOOM_RNN_MAX_STATES];
  for (int k = 0; k < c->n_states; k++)
    state[k] = in[1 + k];
  for (int t = 0; t < 2; t++) {
    if (loom_cell_forward(c->cell, loom_select(in[0], 0, t), state, next) < 0)
      return -1;
    out[t] = next[0];
    for (int k = 0; k < c->n_states; k++)
      state[k] = next[k];
  }
  for (int k = 1; k < c->n_states; k++)
    out[1 + k] = state[k];
  return 1 + c->n_states;
}

START_TEST(test_cell_module_gradcheck) {
  const cell_case *tc = &cell_cases[_i];
  loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(70 + (uint64_t)_i);
  int64_t k = 3;
  loom_cell *cell = loom_cell_new(
      tc->type, tc->image ? (const void *)&k : (const void *)&tc->lstm,
      tc->image ? 1 : 2, tc->image ? 2 : 3, tc->bias);
  ck_assert_loom(cell);
  int ns = tc->type->n_states;
  loom_tensor *in[32];
  int n = 0;
  if (tc->image)
    in[n++] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2, 1, 3, 3));
  else if (tc->unbatched)
    in[n++] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2));
  else
    in[n++] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2, 2));
  for (int s = 0; s < ns; s++)
    in[n++] =
        tc->image ? loom_randn(NULL, LOOM_F64, 0, 0.5, LOOM_SHAPE(2, 2, 3, 3))
        : tc->unbatched ? loom_randn(NULL, LOOM_F64, 0, 0.5, LOOM_SHAPE(3))
                        : loom_randn(NULL, LOOM_F64, 0, 0.5, LOOM_SHAPE(2, 3));
  for (int i = 0; i < n; i++)
    loom_set_requires_grad(in[i], true);
  n += loom_module_parameters(&cell->base, in + n, 32 - n);
  ck_assert_int_lt(n, 32);
  cell_ctx c = {cell, ns};
  loom_gradcheck_result res;
  int rc = loom_gradcheck(run_cell, &c, in, n, NULL, &res);
  if (getenv("LOOM_VERBOSE"))
    printf("%s: %d inputs, %s\n", tc->name, n, res.message);
  ck_assert_msg(rc == 1, "%s: %s (%s)", tc->name, res.message,
                loom_last_error());
  loom_cell_free(cell);
  loom_set_default_dtype(LOOM_F32);
}
END_TEST

/* A cell type with a state_shape callback takes batched input only: an
 * image without its batch dim is refused before the cell sees it. */
START_TEST(test_cell_module_image_input) {
  loom_cell *cell = loom_cell_new(&example_convlstm_cell, NULL, 1, 2, true);
  ck_assert_loom(cell);
  ck_assert_str_eq(cell->base.type, "ConvLSTMCell");
  loom_tensor *next[2];
  ck_assert_int_eq(
      loom_cell_forward(cell, loom_zeros(LOOM_F32, LOOM_SHAPE(1)), NULL, next),
      -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_msg(
      strstr(loom_last_error(), "ConvLSTMCell: x is [1]; expected (B, 1, ...)"),
      "%s", loom_last_error());
  loom_clear_error();
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 1, 3, 3));
  loom_tensor *h = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 2, 3, 4));
  ck_assert_int_eq(loom_cell_forward(cell, x, (loom_tensor *[]){h, NULL}, next),
                   -1);
  ck_assert_msg(strstr(loom_last_error(), "ConvLSTMCell: state[0] is [2, 2, "
                                          "3, 4]; expected [2, 2, 3, 3]"),
                "%s", loom_last_error());
  loom_clear_error();
  ck_assert_int_eq(loom_cell_forward(cell, x, NULL, next), 0);
  ck_assert_int_eq(loom_ndim(next[1]), 4);
  loom_cell_free(cell);
}
END_TEST

int main(void) {
  Suite *s = suite_create("rnn_gradcheck");
  TCase *tc = tcase_create("cells");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, test_cell_gradcheck, 0, N_CASES + N_NO_BIAS);
  tcase_add_loop_test(tc, test_cell_module_gradcheck, 0, N_CELL_CASES);
  tcase_add_test(tc, test_cell_module_image_input);
  tcase_add_test(tc, test_lengths_equal_separate_runs);
  tcase_add_test(tc, test_dropout_between_layers);
  tcase_add_test(tc, test_parameter_names);
  tcase_add_test(tc, test_truncated_bptt_memory_is_flat);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
