/* RNN, LSTM and GRU layers against torch.nn (tests/data/rnn_reference,
 * made by scripts/gen_rnn_reference.py): outputs, final states and every
 * gradient, for 1-3 layers, both directions, variable lengths, initial
 * states, batch-first input and layers without biases (bias=False); each
 * through the step-by-step runner and through the cells' fused path; and
 * single cells (loom_cell, torch.nn.LSTMCell / GRUCell / RNNCell) stepped
 * by hand, batched and unbatched, from given and zero states, in float64.
 * The references are float64 truth, so the float32 cases measure loom's
 * own rounding. */
#include "check_values.h"
#include "parity_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

PARITY_REFERENCE(refs, "rnn_reference.safetensors")

static loom_tensor *ref(const char *c, const char *what) {
  char name[256];
  snprintf(name, sizeof name, "%s.%s", c, what);
  return loom_tensor_map_get(refs, name);
}

/* The worst float32 error seen, as a fraction of the tolerance, for the
 * summary line. */
static double worst_f32_;
static char worst_f32_at_[128];

/* |got - want| <= 1e-5 |want| + 1e-6 when loom computed in float32 (the
 * floor covers elements near zero, where rounding of sums dominates);
 * 1e-10 |want| + 1e-12 in float64. `want` is float64 truth either way. */
static void expect_close(const loom_tensor *got, const loom_tensor *want,
                         const char *c, const char *what) {
  ck_assert_msg(got != NULL, "%s %s: missing (%s)", c, what, loom_last_error());
  ck_assert_msg(loom_same_shape(got, want), "%s %s: shape", c, what);
  bool f64 = loom_dtype_of(got) == LOOM_F64;
  double worst = 0;
  int64_t n = loom_numel(want);
  loom_tensor *g = loom_contiguous(loom_to_dtype(got, LOOM_F64));
  loom_tensor *w = loom_contiguous(loom_to_dtype(want, LOOM_F64));
  for (int64_t i = 0; i < n; i++) {
    double a = loom_data_f64(g)[i], b = loom_data_f64(w)[i];
    double err =
        fabs(a - b) / (f64 ? 1e-10 * fabs(b) + 1e-12 : 1e-5 * fabs(b) + 1e-6);
    worst = err > worst ? err : worst;
  }
  ck_assert_msg(worst <= 1, "%s %s: error %.3g of the tolerance", c, what,
                worst);
  if (!f64 && worst > worst_f32_) {
    worst_f32_ = worst;
    snprintf(worst_f32_at_, sizeof worst_f32_at_, "%s %s", c, what);
  }
}

static const loom_cell_type *kind_of(const char *kind) {
  if (!strcmp(kind, "lstm"))
    return &loom_lstm_cell;
  if (!strcmp(kind, "gru"))
    return &loom_gru_cell;
  if (!strcmp(kind, "rnn_tanh"))
    return &loom_rnn_tanh_cell;
  return &loom_rnn_relu_cell;
}

static void run_case(const char *c, const char *settings, bool fused) {
  char kind[32];
  int layers, bidir, bf, use_len, use_init, bias;
  ck_assert_int_eq(sscanf(settings, "%31s %d %d %d %d %d %d", kind, &layers,
                          &bidir, &bf, &use_len, &use_init, &bias),
                   7);
  loom_rnn_opts o = {.input_size = 3,
                     .hidden_size = 4,
                     .num_layers = layers,
                     .bidirectional = bidir,
                     .batch_first = bf,
                     .step_by_step = !fused,
                     .no_bias = !bias};
  loom_dtype prev = loom_set_default_dtype(loom_dtype_of(ref(c, "x")));
  loom_rnn *r = loom_rnn_new(kind_of(kind), o);
  loom_set_default_dtype(prev);
  ck_assert_loom(r);
  /* Load the torch state dict by its names (strictly: the same names,
   * none missing, none left over). */
  loom_tensor_map *sd = loom_tensor_map_new();
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.param.", c);
  for (int i = 0; i < loom_tensor_map_count(refs); i++) {
    const char *name = loom_tensor_map_name(refs, i);
    if (!strncmp(name, prefix, strlen(prefix)))
      loom_tensor_map_set(sd, name + strlen(prefix),
                          loom_tensor_map_at(refs, i));
  }
  ck_assert_msg(loom_module_load_state_dict(&r->base, sd, true) == 0, "%s: %s",
                c, loom_last_error());
  loom_tensor_map_free(sd);
  bool lstm = !strcmp(kind, "lstm");
  loom_tensor *x = loom_set_requires_grad(loom_clone(ref(c, "x")), true);
  loom_tensor *init[2] = {NULL, NULL};
  if (use_init) {
    init[0] = loom_set_requires_grad(loom_clone(ref(c, "h0")), true);
    if (lstm)
      init[1] = loom_set_requires_grad(loom_clone(ref(c, "c0")), true);
  }
  loom_tensor *out, *fin[2];
  int rc = loom_rnn_forward(r, x, use_len ? ref(c, "lengths") : NULL,
                            use_init ? init : NULL, &out, fin);
  ck_assert_msg(rc == 0, "%s: %s", c, loom_last_error());
  expect_close(out, ref(c, "out"), c, "out");
  expect_close(fin[0], ref(c, "h_n"), c, "h_n");
  loom_tensor *loss = loom_add(loom_sum_all(loom_mul(out, ref(c, "r_out"))),
                               loom_sum_all(loom_mul(fin[0], ref(c, "r_h"))));
  if (lstm) {
    expect_close(fin[1], ref(c, "c_n"), c, "c_n");
    loss = loom_add(loss, loom_sum_all(loom_mul(fin[1], ref(c, "r_c"))));
  }
  ck_assert_msg(loom_backward(loss) == 0, "%s: %s", c, loom_last_error());
  expect_close(loom_grad(x), ref(c, "grad.x"), c, "grad.x");
  if (use_init) {
    expect_close(loom_grad(init[0]), ref(c, "grad.h0"), c, "grad.h0");
    if (lstm)
      expect_close(loom_grad(init[1]), ref(c, "grad.c0"), c, "grad.c0");
  }
  loom_tensor_map *params = loom_module_named_parameters(&r->base);
  for (int i = 0; i < loom_tensor_map_count(params); i++) {
    char what[128];
    snprintf(what, sizeof what, "grad.%s", loom_tensor_map_name(params, i));
    expect_close(loom_grad(loom_tensor_map_at(params, i)), ref(c, what), c,
                 what);
  }
  loom_tensor_map_free(params);
  loom_rnn_free(r);
}

static void run_all(bool fused) {
  int cases = 0;
  /* Case names and settings live in the metadata as case.<name>. */
  const char *names[] = {"lstm", "gru", "rnn_tanh", "rnn_relu"};
  for (int k = 0; k < 4; k++)
    for (int layers = 1; layers <= 3; layers++)
      for (int bidir = 0; bidir < 2; bidir++)
        for (int len = 0; len < 2; len++) {
          char c[64], key[80];
          snprintf(c, sizeof c, "%s_l%d%s%s", names[k], layers,
                   bidir ? "_bi" : "", len ? "_len" : "");
          snprintf(key, sizeof key, "case.%s", c);
          const char *settings = loom_tensor_map_meta(refs, key);
          if (!settings)
            continue;
          loom_scope *s = loom_scope_begin();
          run_case(c, settings, fused);
          loom_scope_end(s);
          cases++;
        }
  /* each kind in float32 batch-first and in float64, with biases and
   * without (2 layers, both directions, lengths, initial states) */
  const char *variant[] = {"init_bf", "f64", "nobias_init_bf", "nobias_f64"};
  for (int k = 0; k < 4; k++)
    for (int v = 0; v < 4; v++) {
      char c[64], key[80];
      snprintf(c, sizeof c, "%s_%s", names[k], variant[v]);
      snprintf(key, sizeof key, "case.%s", c);
      const char *settings = loom_tensor_map_meta(refs, key);
      ck_assert_ptr_nonnull(settings);
      loom_scope *s = loom_scope_begin();
      run_case(c, settings, fused);
      loom_scope_end(s);
      cases++;
    }
  ck_assert_int_eq(cases, 56);
}

START_TEST(test_step_by_step_matches_torch) { run_all(false); }
END_TEST

START_TEST(test_fused_matches_torch) { run_all(true); }
END_TEST

START_TEST(test_bad_inputs) {
  loom_rnn *r =
      loom_lstm_new((loom_rnn_opts){.input_size = 3, .hidden_size = 4});
  loom_tensor *out;
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(5, 2, 7));
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &out, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  x = loom_zeros(LOOM_F32, LOOM_SHAPE(5, 2, 3));
  int64_t bad[] = {6, 1};
  ck_assert_int_eq(
      loom_rnn_forward(r, x, loom_from_array(LOOM_I64, bad, LOOM_SHAPE(2)),
                       NULL, &out, NULL),
      -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_INDEX);
  loom_clear_error();
  /* an initial state of the right size but the wrong shape: (1, 4, 2),
   * not (1, B = 2, hidden = 4) */
  loom_tensor *init[2] = {loom_zeros(LOOM_F32, LOOM_SHAPE(1, 4, 2)),
                          loom_zeros(LOOM_F32, LOOM_SHAPE(1, 2, 4))};
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, init, &out, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_msg(strstr(loom_last_error(), "initial state 0 is [1, 4, 2], "
                                          "expected (1, [2, 4])"),
                "%s", loom_last_error());
  loom_rnn_free(r);
}
END_TEST

/* An empty sequence through the layers (each cell type, fused and step by
 * step, two layers both ways): no output steps, the final states are the
 * initial ones, and no error is left behind (a select of the missing
 * first step had set one that failed the next backward). */
START_TEST(test_layer_on_empty_sequence) {
  const loom_cell_type *types[] = {&loom_lstm_cell, &loom_gru_cell,
                                   &loom_rnn_tanh_cell};
  for (int k = 0; k < 3; k++)
    for (int way = 0; way < 2; way++) {
      loom_scope *s = loom_scope_begin();
      loom_rnn *r = loom_rnn_new(types[k], (loom_rnn_opts){
                                               .input_size = 2,
                                               .hidden_size = 3,
                                               .num_layers = 2,
                                               .bidirectional = true,
                                               .step_by_step = way,
                                           });
      ck_assert_loom(r);
      loom_tensor *x = loom_set_requires_grad(
          loom_zeros(LOOM_F64, LOOM_SHAPE(0, 2, 2)), true);
      loom_tensor *init[2], *out, *fin[2];
      for (int j = 0; j < 2; j++)
        init[j] = loom_set_requires_grad(
            loom_full(LOOM_F64, 0.5, LOOM_SHAPE(4, 2, 3)), true);
      ck_assert_int_eq(loom_rnn_forward(r, x, NULL, init, &out, fin), 0);
      ck_assert_int_eq(loom_last_status(), LOOM_OK);
      CHECK_SHAPE(out, 0, 2, 6);
      ck_assert(loom_equal(fin[0], init[0]));
      ck_assert_msg(loom_backward(loom_sum_all(fin[0])) == 0, "%s",
                    loom_last_error());
      ck_assert(loom_equal(loom_grad(init[0]),
                           loom_ones(LOOM_F64, LOOM_SHAPE(4, 2, 3))));
      loom_rnn_free(r);
      loom_scope_end(s);
    }
}
END_TEST

/* A user cell with two states of different ndims: h (B, H) and a
 * memory m (B, H, 2) that decays and takes in h. */
typedef struct {
  loom_tensor *w, *u;
  int64_t hidden;
} two_state_cell;

static void *two_state_make(const void *config, loom_module *owner,
                            const char *suffix, int64_t in, int64_t hidden) {
  (void)config;
  two_state_cell *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  char name[32];
  c->hidden = hidden;
  loom_scope *s = loom_scope_begin();
  snprintf(name, sizeof name, "w%s", suffix);
  c->w = loom_module_add_param(
      owner, name,
      loom_rand(NULL, LOOM_F64, -0.5, 0.5, LOOM_SHAPE(hidden, in)));
  snprintf(name, sizeof name, "u%s", suffix);
  c->u = loom_module_add_param(
      owner, name,
      loom_rand(NULL, LOOM_F64, -0.5, 0.5, LOOM_SHAPE(hidden, hidden)));
  loom_scope_end(s);
  return c;
}

static int two_state_shape(void *cell, int k, const loom_tensor *x,
                           int64_t *shape) {
  shape[0] = loom_shape(x)[0];
  shape[1] = ((two_state_cell *)cell)->hidden;
  shape[2] = 2;
  return k == 0 ? 2 : 3;
}

static int two_state_step(void *cell, const loom_tensor *x,
                          loom_tensor *const *state, loom_tensor **next) {
  two_state_cell *c = cell;
  next[0] = loom_tanh(loom_add(
      loom_add(loom_linear(x, c->w, NULL), loom_linear(state[0], c->u, NULL)),
      loom_sum(state[1], (int[]){2}, 1, false)));
  next[1] =
      loom_add(loom_mul_scalar(state[1], 0.5), loom_unsqueeze(next[0], 2));
  return next[0] && next[1] ? 0 : -1;
}

static const loom_cell_type two_state_type = {.name = "TwoState",
                                              .n_states = 2,
                                              .make = two_state_make,
                                              .state_shape = two_state_shape,
                                              .step = two_state_step};

/* Variable lengths with states of different ndims: each sequence's
 * outputs and final states are those of running it alone. The mask of
 * finished sequences was shaped for state 0, (B, 1), and broadcast
 * against m (B, H, 2) along the wrong dims: silently wrong with B == H,
 * an error otherwise. */
START_TEST(test_lengths_with_states_of_other_ndims) {
  for (int64_t hidden = 3; hidden <= 4; hidden++) {
    loom_scope *s = loom_scope_begin();
    loom_rnn *r =
        loom_rnn_new(&two_state_type, (loom_rnn_opts){.input_size = 2,
                                                      .hidden_size = hidden,
                                                      .bidirectional = true});
    ck_assert_loom(r);
    int64_t len[3] = {4, 2, 1};
    loom_tensor *x = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(4, 3, 2));
    loom_tensor *out, *fin[2];
    ck_assert_msg(
        loom_rnn_forward(r, x, loom_from_array(LOOM_I64, len, LOOM_SHAPE(3)),
                         NULL, &out, fin) == 0,
        "hidden %lld: %s", (long long)hidden, loom_last_error());
    for (int64_t b = 0; b < 3; b++) {
      loom_tensor *alone, *alone_fin[2];
      ck_assert_int_eq(
          loom_rnn_forward(r,
                           loom_narrow(loom_narrow(x, 0, 0, len[b]), 1, b, 1),
                           NULL, NULL, &alone, alone_fin),
          0);
      ck_assert(
          loom_allclose(loom_narrow(loom_narrow(out, 0, 0, len[b]), 1, b, 1),
                        alone, 1e-12, 1e-12));
      for (int k = 0; k < 2; k++)
        ck_assert_msg(loom_allclose(loom_narrow(fin[k], 1, b, 1), alone_fin[k],
                                    1e-12, 1e-12),
                      "hidden %lld, sequence %lld, state %d", (long long)hidden,
                      (long long)b, k);
    }
    loom_rnn_free(r);
    loom_scope_end(s);
  }
}
END_TEST

/* An empty sequence through a cell with state_shape: states of the
 * cell's shapes, initial states of those shapes accepted. (Without a
 * step to ask about, the runner assumed (B, hidden): it refused m0 and
 * gave m_n as (1, B, H).) */
START_TEST(test_empty_sequence_cell_state_shapes) {
  loom_rnn *r = loom_rnn_new(
      &two_state_type, (loom_rnn_opts){.input_size = 2, .hidden_size = 3});
  ck_assert_loom(r);
  loom_tensor *x = loom_zeros(LOOM_F64, LOOM_SHAPE(0, 2, 2)), *out, *fin[2];
  ck_assert_msg(loom_rnn_forward(r, x, NULL, NULL, &out, fin) == 0, "%s",
                loom_last_error());
  CHECK_SHAPE(out, 0, 2, 3);
  CHECK_SHAPE(fin[0], 1, 2, 3);
  CHECK_SHAPE(fin[1], 1, 2, 3, 2);
  loom_tensor *m0 = loom_full(LOOM_F64, 0.5, LOOM_SHAPE(1, 2, 3, 2));
  ck_assert_msg(
      loom_rnn_forward(r, x, NULL, (loom_tensor *[]){NULL, m0}, &out, fin) == 0,
      "%s", loom_last_error());
  ck_assert(loom_equal(fin[1], m0));
  loom_rnn_free(r);
}
END_TEST

/* A user cell without a projection (its float64 weights meet the input
 * in its step) takes float32 input as a built-in cell does: its zero
 * states start in float64, the dtype its step gives them. (They started
 * in float32, and the runner refused the first step's float64 states.) */
START_TEST(test_cell_without_projection_on_the_other_dtype) {
  loom_rnn *r = loom_rnn_new(
      &two_state_type, (loom_rnn_opts){.input_size = 2, .hidden_size = 3});
  ck_assert_loom(r);
  loom_tensor *x = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 2, 2)), true);
  loom_tensor *out, *fin[2];
  ck_assert_msg(loom_rnn_forward(r, x, NULL, NULL, &out, fin) == 0, "%s",
                loom_last_error());
  ck_assert_int_eq(loom_dtype_of(out), LOOM_F64);
  ck_assert_int_eq(loom_dtype_of(fin[1]), LOOM_F64);
  loom_tensor *want, *want_fin[2];
  ck_assert_int_eq(loom_rnn_forward(r, loom_to_dtype(x, LOOM_F64), NULL, NULL,
                                    &want, want_fin),
                   0);
  ck_assert(loom_equal(out, want));
  ck_assert_msg(loom_backward(loom_sum_all(out)) == 0, "%s", loom_last_error());
  ck_assert_int_eq(loom_dtype_of(loom_grad(x)), LOOM_F32);
  loom_rnn_free(r);
}
END_TEST

/* The fused sequences give the same bits for any thread count. The steps
 * run over all rows, each product split by columns at 2 and 3 threads; at
 * batch 33 (3 steps, hidden 768 / gates) the rows' work between the
 * products splits by rows into 2 and 3 parts as well. Kinds: LSTM with
 * peepholes, GRU, tanh RNN, LSTM without peepholes
 * (the op makes zero ones itself), and that LSTM and the GRU computing
 * their input part (loom_lstm_sequence_input, loom_gru_sequence_input);
 * with and without lengths (0 to T: with
 * them each step's previous states are kept, without them read from the
 * neighbouring step), both directions; outputs, final states and every
 * gradient. */
enum { FUSED_RESULTS = 12 };

static int run_fused(int kind, int64_t B, bool reverse, bool with_lengths,
                     bool retain, loom_tensor **res) {
  /* sizes whose products split into 2 and 3 parts at 2 and 3 threads, and
   * at batch 33 a few steps whose rows' work splits too (4 B G H = 101376
   * work units: 3 parts, see run_steps), small enough for valgrind */
  bool lstm = kind == 0 || kind == 3 || kind == 4, peep = kind == 0;
  bool wide = B == 33;
  const int64_t G = lstm ? 4 : kind == 1 || kind == 5 ? 3 : 1;
  const int64_t T = wide ? 3 : kind == 2 ? 32 : 16, I = 40;
  const int64_t H = wide ? 768 / G : kind == 2 ? 96 : 64;
  loom_manual_seed(11);
  loom_tensor *in[8];
  int n_in = 0;
  if (kind >= 4) { /* the input part computed by the op: x, w_ih, b_ih */
    in[n_in++] = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(T, B, I));
    in[n_in++] = loom_rand(NULL, LOOM_F32, -0.2, 0.2, LOOM_SHAPE(G * H, I));
    in[n_in++] = loom_rand(NULL, LOOM_F32, -0.2, 0.2, LOOM_SHAPE(G * H));
  } else {
    in[n_in++] = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(T, B, G * H));
  }
  in[n_in++] = loom_rand(NULL, LOOM_F32, -0.1, 0.1, LOOM_SHAPE(G * H, H));
  in[n_in++] = loom_rand(NULL, LOOM_F32, -0.2, 0.2, LOOM_SHAPE(G * H));
  for (int k = 0; k < (lstm ? 2 : 1); k++) /* h0, c0 */
    in[n_in++] = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(B, H));
  for (int k = 0; peep && k < 3; k++) /* peepholes */
    in[n_in++] = loom_rand(NULL, LOOM_F32, -0.5, 0.5, LOOM_SHAPE(H));
  for (int k = 0; k < n_in; k++)
    loom_set_requires_grad(in[k], true);
  int64_t len[33];
  for (int64_t b = 0; b < B; b++)
    len[b] = b * 7 % (T + 1);
  loom_tensor *lengths =
      with_lengths ? loom_from_array(LOOM_I64, len, LOOM_SHAPE(B)) : NULL;
  loom_tensor *out[3] = {NULL, NULL, NULL};
  int rc;
  if (kind == 4)
    rc = loom_lstm_sequence_input(in[0], in[1], in[2], in[3], in[4], in[5],
                                  in[6], NULL, lengths, reverse, &out[0],
                                  &out[1], &out[2]);
  else if (lstm)
    rc = loom_lstm_sequence(in[0], in[1], in[2], in[3], in[4],
                            peep ? in + 5 : NULL, lengths, reverse, &out[0],
                            &out[1], &out[2]);
  else if (kind == 5)
    rc = loom_gru_sequence_input(in[0], in[1], in[2], in[3], in[4], in[5],
                                 lengths, reverse, &out[0], &out[1]);
  else if (kind == 1)
    rc = loom_gru_sequence(in[0], in[1], in[2], in[3], lengths, reverse,
                           &out[0], &out[1]);
  else
    rc = loom_rnn_sequence(in[0], in[1], in[2], in[3], lengths, reverse, false,
                           &out[0], &out[1]);
  ck_assert_msg(rc == 0, "%s", loom_last_error());
  loom_tensor *loss = NULL;
  int n = 0;
  for (int k = 0; k < 3 && out[k]; k++) {
    loom_tensor *r =
        loom_randn(NULL, LOOM_F32, 0, 1, loom_ndim(out[k]), loom_shape(out[k]));
    loom_tensor *term = loom_sum_all(loom_mul(out[k], r));
    loss = loss ? loom_add(loss, term) : term;
    res[n++] = loom_keep(out[k]);
  }
  loom_backward_opts o = {.retain_graph = retain};
  ck_assert_msg(loom_backward_with(loss, loom_ones_like(loss), &o) == 0, "%s",
                loom_last_error());
  for (int k = 0; k < n_in; k++)
    res[n++] = loom_keep(loom_contiguous(loom_grad(in[k])));
  return n;
}

START_TEST(test_fused_bits_any_thread_count) {
  const int64_t batches[] = {8, 32, 33}; /* 33: run_fused's wide case */
  for (int kind = 0; kind < 6; kind++)
    for (int bi = 0; bi < 3; bi++)
      for (int way = 0; way < 4; way++) {
        const int64_t B = batches[bi];
        bool reverse = way & 1, len = way & 2;
        loom_tensor *want[FUSED_RESULTS], *got[FUSED_RESULTS];
        loom_set_num_threads(1);
        int n = run_fused(kind, B, reverse, len, false, want);
        for (int threads = 2; threads <= 3; threads++) {
          loom_set_num_threads(threads);
          ck_assert_int_eq(run_fused(kind, B, reverse, len, false, got), n);
          for (int k = 0; k < n; k++) {
            ck_assert_loom(want[k]);
            ck_assert_loom(got[k]);
            ck_assert_msg(!memcmp(loom_data(want[k]), loom_data(got[k]),
                                  (size_t)loom_numel(got[k]) * 4),
                          "kind %d B %lld reverse %d lengths %d threads %d: "
                          "result %d differs",
                          kind, (long long)B, reverse, len, threads, k);
            loom_release(got[k]);
          }
        }
        for (int k = 0; k < n; k++)
          loom_release(want[k]);
      }
  loom_set_num_threads(0);
}
END_TEST

/* A plain backward writes the LSTM's gate gradients over the saved gate
 * activations, and the GRU's over its activations and the recurrent
 * part's n gate (the node is freed after it); one that retains the graph
 * must not, and gives the same bits from tensors of their own. */
START_TEST(test_gate_gradients_in_place) {
  for (int kind = 0; kind < 6; kind++)
    for (int way = 0; way < 4 && kind != 2; way++) { /* all but the RNN */
      bool reverse = way & 1, len = way & 2;
      loom_tensor *want[FUSED_RESULTS], *got[FUSED_RESULTS];
      int n = run_fused(kind, 32, reverse, len, true, want);
      ck_assert_int_eq(run_fused(kind, 32, reverse, len, false, got), n);
      for (int k = 0; k < n; k++) {
        ck_assert_msg(!memcmp(loom_data(want[k]), loom_data(got[k]),
                              (size_t)loom_numel(got[k]) * 4),
                      "kind %d reverse %d lengths %d: result %d differs", kind,
                      reverse, len, k);
        loom_release(want[k]);
        loom_release(got[k]);
      }
      loom_tape_clear(); /* the retained graph */
    }
}
END_TEST

/* The op-projected sequence (way 1) or the one given xp = linear(x, w_ih,
 * b_ih) (way 0), of an LSTM (in: x, w_ih, b_ih, w_hh, b_hh, h0, c0) or a
 * GRU (the same without c0); returns the number of outputs, or -1. */
static int input_part_run(bool gru, int way, loom_tensor *const *in,
                          loom_tensor **o) {
  if (gru)
    return (way ? loom_gru_sequence_input(in[0], in[1], in[2], in[3], in[4],
                                          in[5], NULL, true, &o[0], &o[1])
                : loom_gru_sequence(loom_linear(in[0], in[1], in[2]), in[3],
                                    in[4], in[5], NULL, true, &o[0], &o[1])) < 0
               ? -1
               : 2;
  return (way ? loom_lstm_sequence_input(in[0], in[1], in[2], in[3], in[4],
                                         in[5], in[6], NULL, NULL, true, &o[0],
                                         &o[1], &o[2])
              : loom_lstm_sequence(loom_linear(in[0], in[1], in[2]), in[3],
                                   in[4], in[5], in[6], NULL, NULL, true, &o[0],
                                   &o[1], &o[2])) < 0
             ? -1
             : 3;
}

/* loom_lstm_sequence_input and loom_gru_sequence_input are the sequence ops
 * of loom_linear's input part: the same outputs and state gradients bit for
 * bit, and the input part's gradients (its own products) to rounding, in
 * float32 and 64. */
START_TEST(test_input_part_in_the_op) {
  for (int gru = 0; gru < 2; gru++)
    for (int f64 = 0; f64 < 2; f64++)
      for (int with_b = 0; with_b < 2; with_b++) {
        loom_dtype t = f64 ? LOOM_F64 : LOOM_F32;
        const int64_t T = 7, B = 5, I = 6, H = 4, G = gru ? 3 : 4;
        loom_manual_seed(3);
        loom_tensor *in[7] = {
            loom_randn(NULL, t, 0, 1, LOOM_SHAPE(T, B, I)),
            loom_rand(NULL, t, -0.5, 0.5, LOOM_SHAPE(G * H, I)),
            with_b ? loom_rand(NULL, t, -0.5, 0.5, LOOM_SHAPE(G * H)) : NULL,
            loom_rand(NULL, t, -0.5, 0.5, LOOM_SHAPE(G * H, H)),
            loom_rand(NULL, t, -0.5, 0.5, LOOM_SHAPE(G * H)),
            loom_randn(NULL, t, 0, 1, LOOM_SHAPE(B, H)),
            gru ? NULL : loom_randn(NULL, t, 0, 1, LOOM_SHAPE(B, H))};
        loom_tensor *res[2][3], *grad[2][7];
        int n_out = 0;
        for (int way = 0; way < 2; way++) {
          for (int k = 0; k < 7; k++)
            if (in[k]) {
              loom_zero_grad(in[k]);
              loom_set_requires_grad(in[k], true);
            }
          loom_tensor **o = res[way];
          n_out = input_part_run(gru, way, in, o);
          ck_assert_msg(n_out > 0, "%s", loom_last_error());
          loom_tensor *loss =
              loom_add(loom_sum_all(loom_square(o[0])), loom_sum_all(o[1]));
          if (n_out == 3)
            loss = loom_add(loss, loom_sum_all(loom_sin(o[2])));
          ck_assert_int_eq(loom_backward(loss), 0);
          for (int k = 0; k < 7; k++)
            grad[way][k] = in[k] ? loom_keep(loom_grad(in[k])) : NULL;
        }
        size_t es = f64 ? 8 : 4;
        for (int k = 0; k < n_out; k++)
          ck_assert(!memcmp(loom_data(res[0][k]), loom_data(res[1][k]),
                            (size_t)loom_numel(res[0][k]) * es));
        for (int k = 0; k < 7; k++) {
          if (!in[k])
            continue;
          if (k >= 3) /* the recurrence's own inputs: the same operations */
            ck_assert_msg(!memcmp(loom_data(grad[0][k]), loom_data(grad[1][k]),
                                  (size_t)loom_numel(grad[0][k]) * es),
                          "gru %d f64 %d bias %d: gradient %d differs", gru,
                          f64, with_b, k);
          else
            ck_assert_msg(loom_allclose(grad[1][k], grad[0][k],
                                        f64 ? 1e-13 : 1e-5, f64 ? 1e-13 : 1e-6),
                          "gru %d f64 %d bias %d: gradient %d", gru, f64,
                          with_b, k);
          loom_release(grad[0][k]);
          loom_release(grad[1][k]);
        }
      }
}
END_TEST

/* One of the five fused ops on x: LSTM, GRU, tanh RNN (x the input part),
 * LSTM or GRU from x (through w_ih); b serves as every bias, h0 as every
 * initial state. */
static int run_kind(int kind, const loom_tensor *x, const loom_tensor *w_ih,
                    const loom_tensor *w, const loom_tensor *b,
                    const loom_tensor *h0, const loom_tensor *lengths,
                    loom_tensor **out, loom_tensor **hn) {
  loom_tensor *cn;
  switch (kind) {
  case 0:
    return loom_lstm_sequence(x, w, b, h0, h0, NULL, lengths, false, out, hn,
                              &cn);
  case 1:
    return loom_gru_sequence(x, w, b, h0, lengths, false, out, hn);
  case 2:
    return loom_rnn_sequence(x, w, b, h0, lengths, false, false, out, hn);
  case 3:
    return loom_lstm_sequence_input(x, w_ih, b, w, b, h0, h0, NULL, lengths,
                                    false, out, hn, &cn);
  default:
    return loom_gru_sequence_input(x, w_ih, b, w, b, h0, lengths, false, out,
                                   hn);
  }
}

/* An empty sequence (T = 0) through each fused op, with and without
 * lengths, given xp or projecting x: the final states are the initial
 * ones, so h0's gradient is h_n's and every weight's is zero. */
START_TEST(test_empty_sequence) {
  for (int kind = 0; kind < 5; kind++) /* LSTM, GRU, RNN, LSTM/GRU from x */
    for (int with_len = 0; with_len < 2; with_len++) {
      loom_scope *s = loom_scope_begin();
      const int64_t B = 2, H = 3, I = 2;
      int64_t G = kind == 0 || kind == 3 ? 4 : kind == 2 ? 1 : 3;
      bool from_x = kind >= 3;
      loom_tensor *x = loom_set_requires_grad(
          loom_zeros(LOOM_F64, LOOM_SHAPE(0, B, from_x ? I : G * H)), true);
      loom_tensor *w_ih = loom_set_requires_grad(
          loom_ones(LOOM_F64, LOOM_SHAPE(G * H, I)), true);
      loom_tensor *w = loom_set_requires_grad(
          loom_ones(LOOM_F64, LOOM_SHAPE(G * H, H)), true);
      loom_tensor *b =
          loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(G * H)), true);
      loom_tensor *h0 = loom_set_requires_grad(
          loom_full(LOOM_F64, 0.5, LOOM_SHAPE(B, H)), true);
      loom_tensor *lengths =
          with_len ? loom_zeros(LOOM_I64, LOOM_SHAPE(B)) : NULL;
      loom_tensor *out, *hn;
      int rc = run_kind(kind, x, w_ih, w, b, h0, lengths, &out, &hn);
      ck_assert_msg(rc == 0, "kind %d: %s", kind, loom_last_error());
      ck_assert_int_eq(loom_shape(out)[0], 0);
      ck_assert(loom_equal(hn, h0));
      ck_assert_msg(loom_backward(loom_sum_all(loom_mul(hn, hn))) == 0, "%s",
                    loom_last_error());
      ck_assert_msg(
          loom_equal(loom_grad(w), loom_zeros(LOOM_F64, LOOM_SHAPE(G * H, H))),
          "kind %d lengths %d: W_hh's gradient", kind, with_len);
      ck_assert(loom_equal(loom_grad(h0), /* 2 h0 */
                           loom_ones(LOOM_F64, LOOM_SHAPE(B, H))));
      loom_scope_end(s);
    }
}
END_TEST

/* A zero initial state that needs no gradient, the layers' default: the
 * ops skip the products that would only feed it (the state's gradient at
 * the first step; h0's part of W_hh's, where zeros times finite gate
 * gradients add nothing). Every other result is the same as with a state
 * that wants its gradient, bit for bit; and a non-finite gate gradient at
 * the first step still makes W_hh's NaN (0 x inf), as the product would. */
static int zero_state_run(int kind, loom_dtype dt, bool state_grad,
                          bool inf_seed, loom_tensor **res) {
  const int64_t T = 6, B = 16, H = 64, I = 24;
  int64_t G = kind == 0 || kind == 3 ? 4 : kind == 2 ? 1 : 3;
  loom_manual_seed(5);
  loom_tensor *x =
      loom_randn(NULL, dt, 0, 1, LOOM_SHAPE(T, B, kind >= 3 ? I : G * H));
  loom_tensor *w_ih = loom_rand(NULL, dt, -0.2, 0.2, LOOM_SHAPE(G * H, I));
  loom_tensor *w = loom_rand(NULL, dt, -0.1, 0.1, LOOM_SHAPE(G * H, H));
  loom_tensor *b = loom_rand(NULL, dt, -0.2, 0.2, LOOM_SHAPE(G * H));
  loom_tensor *h0 = loom_zeros(dt, LOOM_SHAPE(B, H));
  loom_tensor *in[] = {x, w_ih, w, b};
  for (int k = 0; k < 4; k++)
    loom_set_requires_grad(in[k], true);
  loom_set_requires_grad(h0, state_grad);
  loom_tensor *out, *hn;
  ck_assert_msg(run_kind(kind, x, w_ih, w, b, h0, NULL, &out, &hn) == 0, "%s",
                loom_last_error());
  loom_tensor *r = loom_randn(NULL, dt, 0, 1, LOOM_SHAPE(T, B, H));
  if (inf_seed) /* the first step's output, row 0 */
    ck_assert_int_eq(loom_set(r, (int64_t[]){0, 0, 0}, INFINITY), 0);
  ck_assert_msg(loom_backward(loom_add(loom_sum_all(loom_mul(out, r)),
                                       loom_sum_all(hn))) == 0,
                "%s", loom_last_error());
  int n = 0;
  res[n++] = loom_keep(out);
  for (int k = 0; k < 4; k++)
    if (kind >= 3 || k != 1) /* w_ih is an input of the op from x only */
      res[n++] = loom_keep(loom_contiguous(loom_grad(in[k])));
  return n;
}

START_TEST(test_zero_initial_state) {
  loom_dtype dts[] = {LOOM_F32, LOOM_F64};
  for (int kind = 0; kind < 5; kind++)
    for (int d = 0; d < 2; d++) {
      loom_scope *s = loom_scope_begin();
      loom_tensor *want[5], *got[5];
      int n = zero_state_run(kind, dts[d], true, false, want);
      ck_assert_int_eq(zero_state_run(kind, dts[d], false, false, got), n);
      for (int k = 0; k < n; k++) {
        ck_assert_loom(want[k]);
        ck_assert_loom(got[k]);
        ck_assert_msg(
            !memcmp(loom_data(want[k]), loom_data(got[k]),
                    (size_t)loom_numel(got[k]) * loom_dtype_size(dts[d])),
            "kind %d %s: result %d differs", kind, loom_dtype_name(dts[d]), k);
        loom_release(want[k]);
        loom_release(got[k]);
      }
      n = zero_state_run(kind, dts[d], false, true, got);
      const loom_tensor *dw = got[n - 2]; /* W_hh's, then b's */
      loom_tensor *d64 = loom_to_dtype(dw, LOOM_F64);
      bool nan = false;
      for (int64_t i = 0; i < loom_numel(d64); i++)
        nan |= isnan(((const double *)loom_data(d64))[i]);
      ck_assert_msg(nan, "kind %d %s: W_hh's gradient lost 0 x inf", kind,
                    loom_dtype_name(dts[d]));
      for (int k = 0; k < n; k++)
        loom_release(got[k]);
      loom_scope_end(s);
    }
}
END_TEST

/* The fused relu RNN passes the gradient through a NaN output, as
 * loom_relu does (it had zeroed it): xp's gradient equals the composition's,
 * with a NaN in the last step's input. */
START_TEST(test_relu_nan_gradient) {
  loom_rng *g = loom_rng_new(3);
  int64_t T = 3, B = 2, H = 4;
  loom_tensor *xp0 = loom_randn(g, LOOM_F64, 0.5, 1, LOOM_SHAPE(T, B, H));
  loom_tensor *w = loom_randn(g, LOOM_F64, 0, 0.5, LOOM_SHAPE(H, H));
  loom_tensor *b = loom_randn(g, LOOM_F64, 0, 0.5, LOOM_SHAPE(H));
  loom_tensor *h0 = loom_zeros(LOOM_F64, LOOM_SHAPE(B, H));
  ck_assert_int_eq(loom_set(xp0, (int64_t[]){T - 1, 0, 1}, NAN), 0);
  loom_tensor *grad[2];
  for (int fused = 0; fused < 2; fused++) {
    loom_tensor *xp = loom_set_requires_grad(loom_clone(xp0), true);
    loom_tensor *out = NULL, *h = h0, *hn = NULL, *steps[3];
    if (fused) {
      ck_assert_int_eq(
          loom_rnn_sequence(xp, w, b, h0, NULL, false, true, &out, &hn), 0);
    } else {
      for (int64_t t = 0; t < T; t++)
        steps[t] = h = loom_relu(loom_add(loom_add(loom_select(xp, 0, t), b),
                                          loom_matmul(h, loom_t(w))));
      out = loom_stack(steps, 3, 0);
    }
    ck_assert_loom(out);
    ck_assert_int_eq(loom_backward(loom_sum_all(out)), 0);
    grad[fused] = loom_grad(xp);
  }
  ck_assert(loom_get(grad[1], (int64_t[]){T - 1, 0, 1}) == 1);
  ck_assert_double_eq_tol(
      loom_item(
          loom_amax(loom_abs(loom_sub(grad[0], grad[1])), NULL, 0, false)),
      0, 1e-12);
  loom_rng_free(g);
}
END_TEST

/* Layers of no hidden units (H == 0) differentiate twice: the recorded
 * backward recomposes each step from its gates' columns (loom_chunk makes
 * no chunks of a 0-wide tensor, and that recomposition used to fail). The
 * gradient of x is then zeros, and so is that gradient's. */
START_TEST(test_no_hidden_units_twice) {
  for (int kind = 0; kind < 5; kind++) /* LSTM, GRU, RNN, LSTM/GRU from x */
    for (int with_len = 0; with_len < 2; with_len++) {
      loom_scope *s = loom_scope_begin();
      const int64_t T = 3, B = 2, I = 2;
      bool from_x = kind >= 3;
      loom_tensor *x = loom_set_requires_grad(
          loom_ones(LOOM_F64, LOOM_SHAPE(T, B, from_x ? I : 0)), true);
      loom_tensor *w_ih = loom_zeros(LOOM_F64, LOOM_SHAPE(0, I));
      loom_tensor *w = loom_zeros(LOOM_F64, LOOM_SHAPE(0, 0));
      loom_tensor *b = loom_zeros(LOOM_F64, LOOM_SHAPE(0));
      loom_tensor *h0 = loom_zeros(LOOM_F64, LOOM_SHAPE(B, 0));
      int64_t len[2] = {3, 1};
      loom_tensor *lengths =
          with_len ? loom_from_array(LOOM_I64, len, LOOM_SHAPE(B)) : NULL;
      loom_tensor *out, *hn;
      int rc = run_kind(kind, x, w_ih, w, b, h0, lengths, &out, &hn);
      ck_assert_msg(rc == 0, "kind %d: %s", kind, loom_last_error());
      loom_tensor *dx;
      loom_grad_opts twice = {.create_graph = true};
      ck_assert_msg(loom_autograd_grad((loom_tensor *[]){loom_sum_all(out)}, 1,
                                       &x, 1, NULL, &dx, &twice) == 0,
                    "kind %d lengths %d: %s", kind, with_len,
                    loom_last_error());
      ck_assert(loom_equal(dx, loom_zeros_like(x)));
      loom_tensor *ddx;
      ck_assert_msg(loom_autograd_grad(
                        (loom_tensor *[]){loom_sum_all(dx)}, 1, &x, 1, NULL,
                        &ddx, &(loom_grad_opts){.allow_unused = true}) == 0,
                    "kind %d lengths %d, twice: %s", kind, with_len,
                    loom_last_error());
      ck_assert(!ddx || loom_equal(ddx, loom_zeros_like(x)));
      loom_scope_end(s);
    }
}
END_TEST

/* A layer takes input of the other float dtype, as its projection
 * promotes it: a float64 layer on float32 input (the LSTM's fused path
 * that projects inside the op gives way to the promoting projection, and
 * the zero states follow its dtype) and a float32 layer on float64 input
 * (the fused ops take one dtype, so the steps run one by one); plain,
 * coupled and layer-normalised LSTMs, a GRU and a plain RNN, with
 * backward. */
START_TEST(test_layer_input_of_the_other_dtype) {
  for (int wide_layer = 0; wide_layer < 2; wide_layer++)
    for (int v = 0; v < 5; v++) {
      loom_scope *s = loom_scope_begin();
      loom_dtype lt = wide_layer ? LOOM_F64 : LOOM_F32;
      loom_dtype xt = wide_layer ? LOOM_F32 : LOOM_F64;
      loom_lstm_opts lo = {.coupled = v == 1, .layer_norm = v == 2};
      loom_set_default_dtype(lt);
      loom_rnn_opts o = {.input_size = 3, .hidden_size = 4, .cell_config = &lo};
      loom_rnn *r = v == 3   ? loom_gru_new(o)
                    : v == 4 ? loom_rnn_new(&loom_rnn_tanh_cell, o)
                             : loom_lstm_new(o);
      loom_set_default_dtype(LOOM_F32);
      ck_assert_loom(r);
      loom_tensor *x = loom_set_requires_grad(
          loom_randn(NULL, xt, 0, 1, LOOM_SHAPE(5, 2, 3)), true);
      loom_tensor *out = NULL, *fin[2];
      ck_assert_msg(loom_rnn_forward(r, x, NULL, NULL, &out, fin) == 0,
                    "layer %s, variant %d: %s", loom_dtype_name(lt), v,
                    loom_last_error());
      ck_assert_int_eq(loom_dtype_of(out), LOOM_F64);
      ck_assert_int_eq(loom_dtype_of(fin[0]), LOOM_F64);
      ck_assert_msg(loom_backward(loom_sum_all(out)) == 0, "%s",
                    loom_last_error());
      ck_assert_int_eq(loom_dtype_of(loom_grad(x)), xt);
      loom_rnn_free(r);
      loom_scope_end(s);
    }
}
END_TEST

/* Layers without biases (no_bias): the built-in cells through their fused
 * paths and step by step give the same outputs, final states and
 * gradients (2 layers, both directions, lengths, initial states, float32
 * and float64), and they have no bias parameters: a peephole LSTM keeps
 * its peepholes, so its fused op runs with no b_hh; the GRU's and the
 * RNN's fused ops take a NULL b_hh. */
static int no_bias_run(int kind, loom_dtype dt, bool fused,
                       const loom_tensor_map *load, loom_tensor **res,
                       loom_tensor_map **sd) {
  static const loom_lstm_opts peephole = {.peephole = true};
  const loom_cell_type *types[] = {&loom_rnn_tanh_cell, &loom_rnn_relu_cell,
                                   &loom_lstm_cell, &loom_lstm_cell,
                                   &loom_gru_cell};
  const int64_t T = 6, B = 3, I = 5, H = 7;
  loom_dtype prev = loom_set_default_dtype(dt);
  loom_rnn *r = loom_rnn_new(
      types[kind],
      (loom_rnn_opts){.input_size = I,
                      .hidden_size = H,
                      .num_layers = 2,
                      .bidirectional = true,
                      .step_by_step = !fused,
                      .no_bias = true,
                      .cell_config = kind == 3 ? &peephole : NULL});
  loom_set_default_dtype(prev);
  ck_assert_loom(r);
  if (load)
    ck_assert_msg(loom_module_load_state_dict(&r->base, load, true) == 0, "%s",
                  loom_last_error());
  else
    *sd = loom_module_state_dict(&r->base);
  loom_tensor_map *params = loom_module_named_parameters(&r->base);
  int n_states = kind == 2 || kind == 3 ? 2 : 1;
  /* weight_ih and weight_hh of 4 cells, and 3 peepholes each */
  ck_assert_int_eq(loom_tensor_map_count(params), kind == 3 ? 20 : 8);
  for (int i = 0; i < loom_tensor_map_count(params); i++)
    ck_assert_msg(!strstr(loom_tensor_map_name(params, i), "bias"), "%s",
                  loom_tensor_map_name(params, i));
  loom_manual_seed(17);
  loom_tensor *x = loom_set_requires_grad(
      loom_randn(NULL, dt, 0, 1, LOOM_SHAPE(T, B, I)), true);
  loom_tensor *init[2] = {NULL, NULL};
  for (int k = 0; k < n_states; k++)
    init[k] = loom_set_requires_grad(
        loom_randn(NULL, dt, 0, 0.5, LOOM_SHAPE(4, B, H)), true);
  loom_tensor *lengths = IVEC(6, 2, 5);
  loom_tensor *out, *fin[2];
  ck_assert_msg(loom_rnn_forward(r, x, lengths, init, &out, fin) == 0, "%s",
                loom_last_error());
  loom_tensor *loss = loom_sum_all(loom_mul(out, loom_sin(out)));
  for (int k = 0; k < n_states; k++)
    loss = loom_add(loss, loom_sum_all(loom_square(fin[k])));
  ck_assert_msg(loom_backward(loss) == 0, "%s", loom_last_error());
  int n = 0;
  res[n++] = loom_keep(out);
  for (int k = 0; k < n_states; k++) {
    res[n++] = loom_keep(fin[k]);
    res[n++] = loom_keep(loom_grad(init[k]));
  }
  res[n++] = loom_keep(loom_grad(x));
  for (int i = 0; i < loom_tensor_map_count(params); i++)
    res[n++] = loom_keep(loom_grad(loom_tensor_map_at(params, i)));
  loom_tensor_map_free(params);
  loom_rnn_free(r);
  return n;
}

START_TEST(test_no_bias_fused_equals_steps) {
  loom_dtype dts[] = {LOOM_F32, LOOM_F64};
  for (int kind = 0; kind < 5; kind++)
    for (int d = 0; d < 2; d++) {
      loom_scope *s = loom_scope_begin();
      loom_tensor *fused[32], *steps[32];
      loom_tensor_map *sd = NULL;
      int n = no_bias_run(kind, dts[d], true, NULL, fused, &sd);
      ck_assert_int_eq(no_bias_run(kind, dts[d], false, sd, steps, NULL), n);
      bool f64 = dts[d] == LOOM_F64;
      for (int k = 0; k < n; k++) {
        ck_assert_loom(fused[k]);
        ck_assert_loom(steps[k]);
        ck_assert_msg(loom_allclose(fused[k], steps[k], f64 ? 1e-12 : 1e-5,
                                    f64 ? 1e-13 : 1e-6),
                      "kind %d %s: result %d differs", kind,
                      loom_dtype_name(dts[d]), k);
        loom_release(fused[k]);
        loom_release(steps[k]);
      }
      loom_tensor_map_free(sd);
      loom_scope_end(s);
    }
}
END_TEST

/* no_bias where it cannot hold: an LSTM with layer_norm (its norms' own
 * biases would remain) or a forget_bias (nothing to add it to), and a cell
 * type without make_no_bias, are refused naming the option; a biased
 * state dict does not load strictly into a bias-free layer. */
START_TEST(test_no_bias_refused) {
  loom_lstm_opts ln = {.layer_norm = true}, fb = {.forget_bias = 1};
  loom_rnn_opts o = {.input_size = 3, .hidden_size = 4, .no_bias = true};
  o.cell_config = &ln;
  ck_assert_ptr_null(loom_lstm_new(o));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "no_bias with layer_norm");
  loom_clear_error();
  o.cell_config = &fb;
  ck_assert_ptr_null(loom_lstm_new(o));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "no_bias with forget_bias 1 (");
  loom_clear_error();
  o.cell_config = NULL;
  loom_cell_type bare = loom_gru_cell;
  bare.make_no_bias = NULL;
  ck_assert_ptr_null(loom_rnn_new(&bare, o));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "no_bias needs the cell type's make_no_bias");
  loom_clear_error();
  loom_rnn *biased =
      loom_gru_new((loom_rnn_opts){.input_size = 3, .hidden_size = 4});
  loom_rnn *plain = loom_gru_new(o);
  ck_assert_loom(biased);
  ck_assert_loom(plain);
  loom_tensor_map *sd = loom_module_state_dict(&biased->base);
  ck_assert_int_eq(loom_module_load_state_dict(&plain->base, sd, true), -1);
  loom_clear_error();
  loom_tensor_map_free(sd);
  loom_rnn_free(biased);
  loom_rnn_free(plain);
}
END_TEST

/* ------------------------------------------------ single cells */

/* One torch.nn.LSTMCell / GRUCell / RNNCell case (cell_* in the reference
 * file): its state dict loaded strictly into a loom_cell, the cell stepped
 * by hand as torch's was, then the outputs and the gradients of x, the
 * initial states and every parameter compared. */
static void run_cell_case(const char *c, const char *settings) {
  char kind[32];
  int batched, use_init, bias;
  ck_assert_int_eq(
      sscanf(settings, "%31s %d %d %d", kind, &batched, &use_init, &bias), 4);
  bool lstm = !strcmp(kind, "lstm");
  loom_dtype prev = loom_set_default_dtype(LOOM_F64);
  loom_cell *cell = loom_cell_new(kind_of(kind), NULL, 3, 4, bias);
  loom_set_default_dtype(prev);
  ck_assert_loom(cell);
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.param.", c);
  loom_tensor_map *sd = parity_submap(refs, prefix);
  ck_assert_msg(loom_module_load_state_dict(&cell->base, sd, true) == 0,
                "%s: %s", c, loom_last_error());
  loom_tensor_map_free(sd);
  loom_tensor *x = loom_set_requires_grad(loom_clone(ref(c, "x")), true);
  loom_tensor *init[2] = {NULL, NULL};
  if (use_init) {
    init[0] = loom_set_requires_grad(loom_clone(ref(c, "h0")), true);
    if (lstm)
      init[1] = loom_set_requires_grad(loom_clone(ref(c, "c0")), true);
  }
  int64_t T = loom_shape(x)[0];
  loom_tensor *outs[8], *state[2] = {init[0], init[1]};
  ck_assert_int_le(T, 8);
  for (int64_t t = 0; t < T; t++) {
    loom_tensor *next[2];
    ck_assert_msg(loom_cell_forward(cell, loom_select(x, 0, t),
                                    use_init || t > 0 ? state : NULL,
                                    next) == 0,
                  "%s step %lld: %s", c, (long long)t, loom_last_error());
    outs[t] = next[0];
    state[0] = next[0];
    state[1] = lstm ? next[1] : NULL;
  }
  loom_tensor *out = loom_stack(outs, (int)T, 0);
  expect_close(out, ref(c, "out"), c, "out");
  expect_close(state[0], ref(c, "h_n"), c, "h_n");
  loom_tensor *loss = loom_sum_all(loom_mul(out, ref(c, "r_out")));
  if (lstm) {
    expect_close(state[1], ref(c, "c_n"), c, "c_n");
    loss = loom_add(loss, loom_sum_all(loom_mul(state[1], ref(c, "r_c"))));
  }
  ck_assert_msg(loom_backward(loss) == 0, "%s: %s", c, loom_last_error());
  expect_close(loom_grad(x), ref(c, "grad.x"), c, "grad.x");
  if (use_init) {
    expect_close(loom_grad(init[0]), ref(c, "grad.h0"), c, "grad.h0");
    if (lstm)
      expect_close(loom_grad(init[1]), ref(c, "grad.c0"), c, "grad.c0");
  }
  loom_tensor_map *params = loom_module_named_parameters(&cell->base);
  ck_assert_int_eq(loom_tensor_map_count(params), bias ? 4 : 2);
  for (int i = 0; i < loom_tensor_map_count(params); i++) {
    char what[128];
    snprintf(what, sizeof what, "grad.%s", loom_tensor_map_name(params, i));
    expect_close(loom_grad(loom_tensor_map_at(params, i)), ref(c, what), c,
                 what);
  }
  loom_tensor_map_free(params);
  loom_cell_free(cell);
}

START_TEST(test_cells_match_torch) {
  const char *names[] = {"lstm", "gru", "rnn_tanh", "rnn_relu"};
  int cases = 0;
  for (int k = 0; k < 4; k++)
    for (int bias = 1; bias >= 0; bias--)
      for (int batched = 1; batched >= 0; batched--)
        for (int init = 1; init >= 0; init--) {
          char c[64], key[80];
          snprintf(c, sizeof c, "cell_%s%s_%s_%s", names[k],
                   bias ? "" : "_nobias", batched ? "batched" : "unbatched",
                   init ? "init" : "zero");
          snprintf(key, sizeof key, "cell.%s", c);
          const char *settings = loom_tensor_map_meta(refs, key);
          ck_assert_msg(settings != NULL, "reference file lacks %s", key);
          loom_scope *s = loom_scope_begin();
          run_cell_case(c, settings);
          loom_scope_end(s);
          cases++;
        }
  ck_assert_int_eq(cases, 32);
}
END_TEST

/* What a cell is given is checked before it runs, and the error names the
 * argument: x of the wrong size, rank or dtype, a state of the wrong
 * shape (batch, features, or batched for an unbatched x) or dtype. next[]
 * is NULL after a failure. */
START_TEST(test_cell_bad_inputs) {
  loom_cell *c = loom_cell_new(&loom_lstm_cell, NULL, 3, 4, true);
  ck_assert_loom(c);
  ck_assert_str_eq(c->base.type, "LSTMCell");
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3));
  loom_tensor *h = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 4));
  loom_tensor *next[2] = {x, x};
  struct {
    loom_tensor *x, *h, *c;
    loom_status status;
    const char *text;
  } bad[] = {
      {loom_zeros(LOOM_F32, LOOM_SHAPE(2, 5)), NULL, NULL, LOOM_ERR_SHAPE,
       "LSTMCell: x is [2, 5]; expected (B, 3) or (3)"},
      {loom_zeros(LOOM_F32, LOOM_SHAPE(1, 2, 3)), NULL, NULL, LOOM_ERR_SHAPE,
       "LSTMCell: x is [1, 2, 3]; expected (B, 3) or (3)"},
      {loom_zeros(LOOM_F32, LOOM_SHAPE(4)), NULL, NULL, LOOM_ERR_SHAPE,
       "LSTMCell: x is [4]; expected (B, 3) or (3)"},
      {loom_zeros(LOOM_I64, LOOM_SHAPE(2, 3)), NULL, NULL, LOOM_ERR_DTYPE,
       "LSTMCell: x is int64 [2, 3]; it must be a float tensor"},
      {x, loom_zeros(LOOM_F32, LOOM_SHAPE(3, 4)), NULL, LOOM_ERR_SHAPE,
       "LSTMCell: state[0] is [3, 4]; expected [2, 4] for x [2, 3]"},
      {x, h, loom_zeros(LOOM_F32, LOOM_SHAPE(2, 5)), LOOM_ERR_SHAPE,
       "LSTMCell: state[1] is [2, 5]; expected [2, 4] for x [2, 3]"},
      {x, h, loom_zeros(LOOM_F32, LOOM_SHAPE(8)), LOOM_ERR_SHAPE,
       "LSTMCell: state[1] is [8]; expected [2, 4]"},
      {loom_zeros(LOOM_F32, LOOM_SHAPE(3)), h, NULL, LOOM_ERR_SHAPE,
       "LSTMCell: state[0] is [2, 4]; expected [4] for x [3]"},
      {x, NULL, loom_zeros(LOOM_F64, LOOM_SHAPE(2, 4)), LOOM_ERR_DTYPE,
       "LSTMCell: state[1] is float64; expected float32"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    loom_clear_error();
    loom_tensor *st[2] = {bad[i].h, bad[i].c};
    next[0] = next[1] = x;
    ck_assert_int_eq(loom_cell_forward(c, bad[i].x, st, next), -1);
    ck_assert_ptr_null(next[0]);
    ck_assert_ptr_null(next[1]);
    CHECK_ERROR(bad[i].status, bad[i].text);
  }
  loom_clear_error();
  /* a float32 x into a float64 cell is projected to float64: its states
   * are float64, as zeros start */
  loom_dtype prev = loom_set_default_dtype(LOOM_F64);
  loom_cell *c64 = loom_cell_new(&loom_gru_cell, NULL, 3, 4, true);
  loom_set_default_dtype(prev);
  ck_assert_loom(c64);
  ck_assert_int_eq(loom_cell_forward(c64, x, NULL, next), 0);
  ck_assert_int_eq(loom_dtype_of(next[0]), LOOM_F64);
  ck_assert_int_eq(loom_cell_forward(c64, x, next, next), 0);
  ck_assert_int_eq(loom_cell_forward(c64, x, &h, next), -1);
  CHECK_ERROR(LOOM_ERR_DTYPE, "GRUCell: state[0] is float32; expected float64 "
                              "(the dtype of the step's input, x float32");
  loom_clear_error();
  loom_cell_free(c64);
  loom_cell_free(c);
}
END_TEST

/* The cell's arguments: sizes, types without make_no_bias, the LSTM's
 * options that need biases, a make that fails without saying why. */
static void *silent_make(const void *config, loom_module *owner,
                         const char *suffix, int64_t in, int64_t hidden) {
  (void)config, (void)owner, (void)suffix, (void)in, (void)hidden;
  return NULL;
}

START_TEST(test_cell_new_refused) {
  ck_assert_ptr_null(loom_cell_new(&loom_gru_cell, NULL, 0, 4, true));
  CHECK_ERROR(LOOM_ERR_ARGUMENT,
              "GRUCell: input_size 0, hidden_size 4 (each 1 to 2^59 - 1)");
  loom_clear_error();
  ck_assert_ptr_null(loom_cell_new(&loom_gru_cell, NULL, 3, -1, true));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "hidden_size -1");
  loom_clear_error();
  loom_cell_type bare = loom_gru_cell;
  bare.make_no_bias = NULL;
  ck_assert_ptr_null(loom_cell_new(&bare, NULL, 3, 4, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "GRUCell: bias false needs the cell type's "
                                 "make_no_bias callback");
  loom_clear_error();
  loom_lstm_opts ln = {.layer_norm = true};
  ck_assert_ptr_null(loom_cell_new(&loom_lstm_cell, &ln, 3, 4, false));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "no_bias with layer_norm");
  loom_clear_error();
  bare.make = silent_make;
  ck_assert_ptr_null(loom_cell_new(&bare, NULL, 3, 4, true));
  CHECK_ERROR(LOOM_ERR_STATE, "GRU: make callback returned NULL");
  loom_clear_error();
  bare.step = NULL;
  ck_assert_ptr_null(loom_cell_new(&bare, NULL, 3, 4, true));
  CHECK_ERROR(LOOM_ERR_ARGUMENT, "cell type GRU needs make and step");
  loom_clear_error();
  /* a bias-free LSTM with peepholes: torch's names without the biases */
  loom_lstm_opts peep = {.peephole = true};
  loom_cell *c = loom_cell_new(&loom_lstm_cell, &peep, 3, 4, false);
  ck_assert_loom(c);
  loom_tensor_map *m = loom_module_named_parameters(&c->base);
  const char *want[] = {"weight_ih", "weight_hh", "weight_ci", "weight_co",
                        "weight_cf"};
  ck_assert_int_eq(loom_tensor_map_count(m), 5);
  for (int i = 0; i < 5; i++)
    ck_assert_str_eq(loom_tensor_map_name(m, i), want[i]);
  loom_tensor_map_free(m);
  loom_cell_free(c);
}
END_TEST

/* An LSTM given h and no c starts c at zeros; the unbatched step equals
 * the batched one of batch 1; next may be the state array itself. */
START_TEST(test_cell_partial_and_unbatched_states) {
  loom_cell *c = loom_cell_new(&loom_lstm_cell, NULL, 3, 4, true);
  ck_assert_loom(c);
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(1, 3));
  loom_tensor *h = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(1, 4));
  loom_tensor *a[2], *b[2], *u[2];
  ck_assert_int_eq(loom_cell_forward(c, x, (loom_tensor *[]){h, NULL}, a), 0);
  ck_assert_int_eq(
      loom_cell_forward(c, x, (loom_tensor *[]){h, loom_zeros_like(h)}, b), 0);
  ck_assert(loom_equal(a[0], b[0]) && loom_equal(a[1], b[1]));
  ck_assert_int_eq(
      loom_cell_forward(c, loom_select(x, 0, 0),
                        (loom_tensor *[]){loom_select(h, 0, 0), NULL}, u),
      0);
  ck_assert_int_eq(loom_ndim(u[0]), 1);
  ck_assert(loom_equal(u[0], loom_select(a[0], 0, 0)));
  ck_assert(loom_equal(u[1], loom_select(a[1], 0, 0)));
  /* the results written over the states they came from */
  loom_tensor *st[2] = {h, NULL};
  ck_assert_int_eq(loom_cell_forward(c, x, st, st), 0);
  ck_assert(loom_equal(st[0], a[0]) && loom_equal(st[1], a[1]));
  loom_cell_free(c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("rnn");
  TCase *tc = tcase_create("parity");
  tcase_add_unchecked_fixture(tc, refs_open, refs_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_step_by_step_matches_torch);
  tcase_add_test(tc, test_fused_matches_torch);
  tcase_add_test(tc, test_bad_inputs);
  tcase_add_test(tc, test_gate_gradients_in_place);
  tcase_add_test(tc, test_input_part_in_the_op);
  tcase_add_test(tc, test_layer_input_of_the_other_dtype);
  tcase_add_test(tc, test_empty_sequence);
  tcase_add_test(tc, test_layer_on_empty_sequence);
  tcase_add_test(tc, test_lengths_with_states_of_other_ndims);
  tcase_add_test(tc, test_empty_sequence_cell_state_shapes);
  tcase_add_test(tc, test_cell_without_projection_on_the_other_dtype);
  tcase_add_test(tc, test_zero_initial_state);
  tcase_add_test(tc, test_no_hidden_units_twice);
  tcase_add_test(tc, test_relu_nan_gradient);
  tcase_add_test(tc, test_no_bias_fused_equals_steps);
  tcase_add_test(tc, test_no_bias_refused);
  tcase_add_test(tc, test_cells_match_torch);
  tcase_add_test(tc, test_cell_bad_inputs);
  tcase_add_test(tc, test_cell_new_refused);
  tcase_add_test(tc, test_cell_partial_and_unbatched_states);
  suite_add_tcase(s, tc);
  /* Tagged so that CI's valgrind run can leave it out: under valgrind the
   * pool's threads take turns on one core and this case alone took four
   * minutes; the plain, ASan and TSan runs keep it. */
  TCase *threads = tcase_create("threads");
  tcase_set_tags(threads, "threads");
  tcase_add_checked_fixture(threads, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(threads, 300);
  tcase_add_test(threads, test_fused_bits_any_thread_count);
  suite_add_tcase(s, threads);
  int rc = loom_run_suite(s);
  printf("rnn layers, float32 against float64 truth: worst error %.3g of the "
         "tolerance (%s)\n",
         worst_f32_, worst_f32_at_);
  return rc;
}
