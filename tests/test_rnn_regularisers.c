/* Recurrent regularisers through the runner (weight-drop, zoneout, locked
 * dropout, weight normalisation), embedding dropout and padded batches:
 * values and gradients against PyTorch computing the same thing with the
 * masks loom draws (scripts/gen_rnn_regulariser_reference.py), float64
 * gradchecks with built-in and user cells, the fused paths against the
 * step path, and the errors. */
#include "../examples/cells.h"
#include "parity_util.h"

#include <string.h>

PARITY_REFERENCE(refs, "rnn_regularisers.safetensors")

/* |a - b| <= 1e-10 (1 + |b|) everywhere, naming what differs. */
static void assert_matches(const loom_tensor *got, const char *c,
                           const char *what) {
  const loom_tensor *want = parity_ref(refs, c, what);
  ck_assert_msg(got != NULL, "%s%s: %s", c, what, loom_last_error());
  ck_assert_msg(loom_same_shape(got, want), "%s%s: shape %s, want %s", c, what,
                loom_shape_text(got), loom_shape_text(want));
  double err = loom_item(loom_amax(loom_div(loom_abs(loom_sub(got, want)),
                                            loom_add_scalar(loom_abs(want), 1)),
                                   NULL, 0, false));
  ck_assert_msg(err <= 1e-10, "%s%s: relative error %g", c, what, err);
}

typedef struct {
  const char *name;
  const loom_cell_type *type;
  loom_rnn_opts opts;
  uint64_t seed;
  bool lengths, eval;
} parity_case;

static const parity_case parity_cases[] = {
    {"wd_lstm.",
     &loom_lstm_cell,
     {.input_size = 3,
      .hidden_size = 4,
      .num_layers = 2,
      .bidirectional = true,
      .weight_drop = 0.4},
     11,
     true,
     false},
    {"wd_gru.",
     &loom_gru_cell,
     {.input_size = 3, .hidden_size = 4, .weight_drop = 0.5},
     12,
     false,
     false},
    {"zone_train.",
     &loom_lstm_cell,
     {.input_size = 3, .hidden_size = 4, .zoneout = {0.3, 0.5}},
     13,
     true,
     false},
    {"zone_eval.",
     &loom_lstm_cell,
     {.input_size = 3, .hidden_size = 4, .zoneout = {0.3, 0.5}},
     13,
     true,
     true},
    {"locked.",
     &loom_lstm_cell,
     {.input_size = 3,
      .hidden_size = 4,
      .num_layers = 2,
      .weight_drop = 0.25,
      .dropout = 0.3,
      .variational = true},
     14,
     false,
     false},
    {"wn_lstm.",
     &loom_lstm_cell,
     {.input_size = 3, .hidden_size = 4, .weight_norm = true},
     15,
     false,
     false},
};
enum { N_PARITY = sizeof parity_cases / sizeof parity_cases[0] };

/* Each case on the fused path (where the cell has one) and step by step:
 * the layer loads torch's state dict, draws its masks from a generator
 * seeded as the script's, and must give torch's outputs and gradients. */
START_TEST(test_parity) {
  const parity_case *pc = &parity_cases[_i / 2];
  const char *c = pc->name;
  loom_set_default_dtype(LOOM_F64);
  loom_rng *g = loom_rng_new(pc->seed);
  loom_rnn_opts o = pc->opts;
  o.rng = g;
  o.step_by_step = _i % 2;
  loom_rnn *r = loom_rnn_new(pc->type, o);
  ck_assert_loom(r);
  loom_tensor_map *sd = parity_submap(refs, c); /* "param.<name>" ... */
  loom_tensor_map *params = loom_tensor_map_new();
  for (int i = 0; i < loom_tensor_map_count(sd); i++)
    if (!strncmp(loom_tensor_map_name(sd, i), "param.", 6))
      loom_tensor_map_set(params, loom_tensor_map_name(sd, i) + 6,
                          loom_tensor_map_at(sd, i));
  ck_assert_msg(loom_module_load_state_dict(&r->base, params, true) == 0, "%s",
                loom_last_error());
  loom_module_train(&r->base, !pc->eval);
  loom_tensor *x =
      loom_set_requires_grad(loom_clone(parity_ref(refs, c, "x")), true);
  loom_tensor *out, *fin[2];
  ck_assert_int_eq(
      loom_rnn_forward(r, x,
                       pc->lengths ? parity_ref(refs, c, "lengths") : NULL,
                       NULL, &out, fin),
      0);
  assert_matches(out, c, "out");
  assert_matches(fin[0], c, "h_n");
  loom_tensor *loss =
      loom_add(loom_sum_all(loom_mul(out, parity_ref(refs, c, "r_out"))),
               loom_sum_all(loom_mul(fin[0], parity_ref(refs, c, "r_h_n"))));
  if (pc->type->n_states == 2) {
    assert_matches(fin[1], c, "c_n");
    loss = loom_add(
        loss, loom_sum_all(loom_mul(fin[1], parity_ref(refs, c, "r_c_n"))));
  }
  ck_assert_int_eq(loom_backward(loss), 0);
  assert_matches(loom_grad(x), c, "grad.x");
  loom_tensor_map *named = loom_module_named_parameters(&r->base);
  ck_assert_int_eq(loom_tensor_map_count(named), loom_tensor_map_count(params));
  for (int i = 0; i < loom_tensor_map_count(named); i++) {
    char what[128];
    snprintf(what, sizeof what, "grad.%s", loom_tensor_map_name(named, i));
    assert_matches(loom_grad(loom_tensor_map_at(named, i)), c, what);
  }
  loom_tensor_map_free(named);
  loom_tensor_map_free(params);
  loom_tensor_map_free(sd);
  loom_rnn_free(r);
  loom_rng_free(g);
  loom_set_default_dtype(LOOM_F32);
}
END_TEST

START_TEST(test_embedding_dropout_parity) {
  loom_rng *g = loom_rng_new(16);
  loom_tensor *w = loom_set_requires_grad(
      loom_clone(parity_ref(refs, "emb.", "param.weight")), true);
  loom_tensor *y = loom_embedding_dropout(w, parity_ref(refs, "emb.", "ids"),
                                          -1, 0.5, true, g);
  assert_matches(y, "emb.", "out");
  ck_assert_int_eq(loom_backward(loom_sum_all(
                       loom_mul(y, parity_ref(refs, "emb.", "r_out")))),
                   0);
  assert_matches(loom_grad(w), "emb.", "grad.weight");
  /* in evaluation, the plain lookup */
  ck_assert(
      loom_equal(loom_embedding_dropout(w, parity_ref(refs, "emb.", "ids"), -1,
                                        0.5, false, g),
                 loom_embedding(w, parity_ref(refs, "emb.", "ids"), -1)));
  loom_rng_free(g);
}
END_TEST

START_TEST(test_pad_sequence_parity) {
  loom_tensor *seqs[3];
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "seq%d", i);
    seqs[i] = parity_ref(refs, "pad.", name);
  }
  loom_tensor *len;
  assert_matches(loom_pad_sequence(seqs, 3, false, -1, &len), "pad.",
                 "time_major");
  ck_assert(loom_equal(
      len, loom_from_array(LOOM_I64, (int64_t[]){3, 1, 4}, LOOM_SHAPE(3))));
  loom_tensor *bf = loom_pad_sequence(seqs, 3, true, -1, NULL);
  assert_matches(bf, "pad.", "batch_first");
  /* and back */
  loom_tensor *back[3];
  ck_assert_int_eq(loom_unpad_sequence(bf, len, true, back, 3), 0);
  for (int i = 0; i < 3; i++)
    ck_assert(loom_equal(back[i], seqs[i]));
  /* int32 token ids stay int32, as torch's pad_sequence keeps the dtype */
  loom_tensor *ids[2] = {
      loom_from_array(LOOM_I32, (int32_t[]){5, INT32_MAX}, LOOM_SHAPE(2)),
      loom_from_array(LOOM_I32, (int32_t[]){7}, LOOM_SHAPE(1))};
  loom_tensor *padded = loom_pad_sequence(ids, 2, true, -1, NULL);
  ck_assert_int_eq(loom_dtype_of(padded), LOOM_I32);
  ck_assert(loom_equal(padded, loom_from_array(LOOM_I32,
                                               (int32_t[]){5, INT32_MAX, 7, -1},
                                               LOOM_SHAPE(2, 2))));
}
END_TEST

/* ---- float64 gradchecks: masks redrawn from the same seed each call ---- */

typedef struct {
  loom_rnn *r;
  loom_rng *g;
  const loom_tensor *lengths;
} grad_ctx;

static int run_layer(loom_tensor *const *in, int n, loom_tensor **out, int max,
                     void *p) {
  (void)n, (void)max;
  grad_ctx *c = p;
  loom_rng_seed(c->g, 99);
  loom_tensor *fin[LOOM_RNN_MAX_STATES];
  if (loom_rnn_forward(c->r, in[0], c->lengths, NULL, &out[0], fin) < 0)
    return -1;
  out[1] = fin[0];
  return 2;
}

typedef struct {
  const char *name;
  const loom_cell_type *type;
  loom_rnn_opts opts;
} grad_case;

static const grad_case grad_cases[] = {
    {"lstm: weight-drop, fused",
     &loom_lstm_cell,
     {.num_layers = 2, .bidirectional = true, .weight_drop = 0.3}},
    {"lstm: weight-drop and weight norm, step by step",
     &loom_lstm_cell,
     {.weight_drop = 0.3, .weight_norm = true, .step_by_step = true}},
    {"lstm: zoneout, locked dropout",
     &loom_lstm_cell,
     {.num_layers = 2,
      .zoneout = {0.2, 0.4},
      .dropout = 0.3,
      .variational = true}},
    {"gru: weight-drop, weight norm, zoneout",
     &loom_gru_cell,
     {.weight_drop = 0.4, .weight_norm = true, .zoneout = {0.3}}},
    {"rnn relu: weight-drop, fused", &loom_rnn_relu_cell, {.weight_drop = 0.5}},
    {"user cell (MGU): weight-drop, weight norm, zoneout",
     &example_mgu_cell,
     {.bidirectional = true,
      .weight_drop = 0.3,
      .weight_norm = true,
      .zoneout = {0.25}}},
};
enum { N_GRAD = sizeof grad_cases / sizeof grad_cases[0] };

START_TEST(test_gradcheck) {
  const grad_case *gc = &grad_cases[_i];
  loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(31 + (uint64_t)_i);
  grad_ctx c = {.g = loom_rng_new(99)};
  loom_rnn_opts o = gc->opts;
  o.input_size = 2;
  o.hidden_size = 3;
  o.rng = c.g;
  c.r = loom_rnn_new(gc->type, o);
  ck_assert_loom(c.r);
  c.lengths = loom_from_array(LOOM_I64, (int64_t[]){3, 2}, LOOM_SHAPE(2));
  loom_tensor *in[64];
  in[0] = loom_set_requires_grad(
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(3, 2, 2)), true);
  int n = 1 + loom_module_parameters(&c.r->base, in + 1, 63);
  ck_assert_int_lt(n, 64);
  loom_gradcheck_result res;
  int rc = loom_gradcheck(run_layer, &c, in, n, NULL, &res);
  ck_assert_msg(rc == 1, "%s: %s (%s)", gc->name, res.message,
                loom_last_error());
  loom_rnn_free(c.r);
  loom_rng_free(c.g);
  loom_set_default_dtype(LOOM_F32);
}
END_TEST

typedef struct {
  loom_rng *g;
  int which;
} fn_ctx;

/* in[0] is the tensor under test; the others what the function needs. */
static int run_function(loom_tensor *const *in, int n, loom_tensor **out,
                        int max, void *p) {
  (void)n, (void)max;
  fn_ctx *c = p;
  loom_rng_seed(c->g, 5);
  switch (c->which) {
  case 0:
    out[0] = loom_embedding_dropout(
        in[0],
        loom_from_array(LOOM_I64, (int64_t[]){0, 3, 3, 1, 4, 0},
                        LOOM_SHAPE(2, 3)),
        -1, 0.4, true, c->g);
    break;
  case 1:
    out[0] = loom_locked_dropout(in[0], 0.5, true, c->g);
    break;
  case 2:
    out[0] = loom_zoneout(in[0], in[1], 0.5, true, c->g);
    break;
  case 3:
    out[0] = loom_zoneout(in[0], in[1], 0.3, false, c->g);
    break;
  case 4:
    out[0] = loom_weight_norm(in[0], in[1], 0);
    break;
  case 5:
    out[0] = loom_weight_norm(in[0], in[2], 1);
    break;
  case 6: {
    loom_tensor *seqs[2] = {in[0], loom_narrow(in[1], 0, 0, 1)};
    loom_tensor *len, *back[2];
    out[0] = loom_pad_sequence(seqs, 2, true, 0, &len);
    if (!out[0] || loom_unpad_sequence(out[0], len, true, back, 2) < 0)
      return -1;
    out[1] = loom_mul_scalar(back[1], 3);
    return 2;
  }
  }
  return out[0] ? 1 : -1;
}

START_TEST(test_function_gradcheck) {
  loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(3);
  fn_ctx c = {loom_rng_new(5), _i};
  loom_tensor *in[3] = {
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(5, 2, 3)),
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(5, 2, 3)),
      loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2)),
  };
  int n = 2;
  if (_i == 0 || _i == 1)
    n = 1;
  if (_i == 0)
    in[0] = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(5, 3));
  if (_i == 4)
    in[1] = loom_randn(NULL, LOOM_F64, 1, 0.5, LOOM_SHAPE(5, 1, 1));
  if (_i == 5)
    n = 3;
  for (int i = 0; i < n; i++)
    loom_set_requires_grad(in[i], true);
  loom_gradcheck_result res;
  int rc = loom_gradcheck(run_function, &c, in, n, NULL, &res);
  ck_assert_msg(rc == 1, "function %d: %s (%s)", (int)_i, res.message,
                loom_last_error());
  loom_rng_free(c.g);
  loom_set_default_dtype(LOOM_F32);
}
END_TEST

/* ---- behaviour ---- */

/* Gradients of every parameter and x after loss = sum(out * w). */
static void forward_backward(loom_rnn *r, const loom_tensor *x,
                             loom_tensor **out, loom_tensor **grads, int *n) {
  loom_module_zero_grad(&r->base);
  loom_tensor *fin[2];
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, out, fin), 0);
  loom_manual_seed(1);
  loom_tensor *w = loom_randn(NULL, loom_dtype_of(*out), 0, 1, loom_ndim(*out),
                              loom_shape(*out));
  ck_assert_int_eq(loom_backward(loom_add(loom_sum_all(loom_mul(*out, w)),
                                          loom_sum_all(fin[1]))),
                   0);
  loom_tensor *p[32];
  *n = loom_module_parameters(&r->base, p, 32);
  for (int i = 0; i < *n; i++)
    grads[i] = loom_clone(loom_grad(p[i]));
}

/* Weight-drop keeps the fused LSTM equal to the step-by-step cell: the same
 * masks (same seed) give the same outputs and gradients, in float32 at a
 * size where the fused op's own kernels run. */
START_TEST(test_weight_drop_fused_equals_steps) {
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(7, 5, 6));
  loom_tensor *out[2], *grads[2][32];
  int n[2];
  for (int s = 0; s < 2; s++) {
    loom_manual_seed(8);
    loom_rng *g = loom_rng_new(4);
    loom_rnn *r = loom_lstm_new((loom_rnn_opts){.input_size = 6,
                                                .hidden_size = 16,
                                                .num_layers = 2,
                                                .bidirectional = true,
                                                .weight_drop = 0.5,
                                                .step_by_step = s,
                                                .rng = g});
    ck_assert_loom(r);
    forward_backward(r, x, &out[s], grads[s], &n[s]);
    loom_rnn_free(r);
    loom_rng_free(g);
  }
  ck_assert(loom_allclose(out[0], out[1], 1e-5, 1e-6));
  ck_assert_int_eq(n[0], n[1]);
  for (int i = 0; i < n[0]; i++)
    ck_assert_msg(loom_allclose(grads[0][i], grads[1][i], 1e-4, 1e-5),
                  "gradient of parameter %d", i);
}
END_TEST

/* Training draws new masks each forward and leaves the weights as they
 * were; evaluation uses the plain weights. */
START_TEST(test_weight_drop_masks_and_restore) {
  loom_manual_seed(2);
  loom_rnn *plain =
      loom_lstm_new((loom_rnn_opts){.input_size = 2, .hidden_size = 5});
  loom_manual_seed(2);
  loom_rnn *r = loom_lstm_new(
      (loom_rnn_opts){.input_size = 2, .hidden_size = 5, .weight_drop = 0.5});
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 3, 2));
  loom_tensor *a, *b, *p;
  ck_assert_int_eq(loom_rnn_forward(plain, x, NULL, NULL, &p, NULL), 0);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &a, NULL), 0);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &b, NULL), 0);
  ck_assert(!loom_allclose(a, b, 0, 0));
  ck_assert(!loom_allclose(a, p, 0, 0));
  loom_module_train(&r->base, false);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &a, NULL), 0);
  ck_assert(loom_equal(a, p));
  loom_rnn_free(plain);
  loom_rnn_free(r);
}
END_TEST

/* In training each zoned-out unit is exactly its old or its new value. */
START_TEST(test_zoneout_keeps_or_updates) {
  loom_rng *g = loom_rng_new(1);
  loom_tensor *prev = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(100, 40));
  loom_tensor *next = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(100, 40));
  loom_tensor *z = loom_zoneout(prev, next, 0.3, true, g);
  loom_tensor *kept = loom_eq(z, prev), *moved = loom_eq(z, next);
  ck_assert_int_eq(loom_item(loom_sum_all(
                       loom_to_dtype(loom_logical_or(kept, moved), LOOM_F32))),
                   4000);
  double frac = loom_item(loom_mean_all(loom_to_dtype(kept, LOOM_F32)));
  ck_assert_msg(fabs(frac - 0.3) < 0.03, "kept %g", frac);
  loom_rng_free(g);
}
END_TEST

/* Embedding dropout drops a word at every position it takes. */
START_TEST(test_embedding_dropout_whole_words) {
  loom_rng *g = loom_rng_new(2);
  loom_tensor *w = loom_rand(NULL, LOOM_F32, 1, 2, LOOM_SHAPE(400, 3));
  int64_t ids[800];
  for (int i = 0; i < 800; i++)
    ids[i] = i % 400;
  loom_tensor *y = loom_embedding_dropout(
      w, loom_from_array(LOOM_I64, ids, LOOM_SHAPE(2, 400)), -1, 0.25, true, g);
  ck_assert(loom_equal(loom_select(y, 0, 0), loom_select(y, 0, 1)));
  loom_tensor *zero =
      loom_eq_scalar(loom_sum(loom_select(y, 0, 0), (int[]){1}, 1, false), 0);
  double frac = loom_item(loom_mean_all(loom_to_dtype(zero, LOOM_F32)));
  ck_assert_msg(fabs(frac - 0.25) < 0.07, "dropped %g", frac);
  /* the others scaled by 1 / (1 - p) */
  loom_tensor *kept = loom_logical_not(zero);
  loom_tensor *ratio = loom_div(loom_select(y, 0, 0), w);
  ck_assert(loom_allclose(
      loom_masked_fill(ratio, loom_logical_not(loom_unsqueeze(kept, 1)),
                       4.0 / 3),
      loom_full_like(ratio, 4.0 / 3), 1e-6, 1e-6));
  loom_rng_free(g);
}
END_TEST

/* PyTorch's names for weight normalisation, g starting at the rows' norms
 * (so the layer computes what it did before), and a step taken alone
 * sees the normalised weight too. */
START_TEST(test_weight_norm_names_and_step) {
  loom_manual_seed(4);
  loom_rnn *plain =
      loom_gru_new((loom_rnn_opts){.input_size = 2, .hidden_size = 3});
  loom_manual_seed(4);
  loom_rnn *r = loom_gru_new(
      (loom_rnn_opts){.input_size = 2, .hidden_size = 3, .weight_norm = true});
  ck_assert_loom(r);
  loom_tensor_map *sd = loom_module_state_dict(&r->base);
  ck_assert_ptr_nonnull(loom_tensor_map_get(sd, "weight_hh_l0_g"));
  ck_assert_ptr_nonnull(loom_tensor_map_get(sd, "weight_hh_l0_v"));
  ck_assert_ptr_null(loom_tensor_map_get(sd, "weight_hh_l0"));
  int64_t gs[2] = {9, 1};
  ck_assert(!memcmp(loom_shape(loom_tensor_map_get(sd, "weight_hh_l0_g")), gs,
                    sizeof gs));
  loom_tensor_map_free(sd);
  loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(1, 2, 2));
  loom_tensor *a, *b, *h0 = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3)), *s;
  ck_assert_int_eq(loom_rnn_forward(plain, x, NULL, NULL, &a, NULL), 0);
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &b, NULL), 0);
  ck_assert(loom_allclose(a, b, 1e-6, 1e-6));
  /* scaling g scales the weight: a single step must see it */
  loom_tensor *p[8];
  int n = loom_module_parameters(&r->base, p, 8);
  for (int i = 0; i < n; i++)
    if (loom_ndim(p[i]) == 2 && loom_shape(p[i])[1] == 1) {
      loom_no_grad_begin();
      loom_mul_scalar_(p[i], 3);
      loom_no_grad_end();
    }
  ck_assert_int_eq(loom_rnn_forward(r, x, NULL, NULL, &b, NULL), 0);
  ck_assert_int_eq(loom_rnn_cell_step(r, 0, loom_select(x, 0, 0), &h0, &s), 0);
  ck_assert(loom_allclose(loom_select(b, 0, 0), s, 1e-6, 1e-6));
  loom_rnn_free(plain);
  loom_rnn_free(r);
}
END_TEST

/* A padded batch with its lengths through the runner gives each sequence
 * what it gives alone, and its outputs come back unpadded. */
START_TEST(test_padded_batch_through_runner) {
  loom_rnn *r = loom_gru_new((loom_rnn_opts){
      .input_size = 2, .hidden_size = 3, .bidirectional = true});
  loom_tensor *seqs[3] = {loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(2, 2)),
                          loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(5, 2)),
                          loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(3, 2))};
  loom_tensor *len, *out, *fin, *back[3];
  loom_tensor *x = loom_pad_sequence(seqs, 3, true, 0, &len);
  r->opts.batch_first = true;
  ck_assert_int_eq(loom_rnn_forward(r, x, len, NULL, &out, &fin), 0);
  ck_assert_int_eq(loom_unpad_sequence(out, len, true, back, 3), 0);
  r->opts.batch_first = false;
  for (int i = 0; i < 3; i++) {
    loom_tensor *alone, *fin1;
    ck_assert_int_eq(loom_rnn_forward(r, loom_unsqueeze(seqs[i], 1), NULL, NULL,
                                      &alone, &fin1),
                     0);
    ck_assert(loom_allclose(back[i], loom_select(alone, 1, 0), 1e-5, 1e-6));
    ck_assert(loom_allclose(loom_select(fin, 1, i), loom_select(fin1, 1, 0),
                            1e-5, 1e-6));
  }
  loom_rnn_free(r);
}
END_TEST

static bool fails_with(bool failed, const char *text) {
  bool ok = failed && loom_last_error() && strstr(loom_last_error(), text);
  if (!ok)
    fprintf(stderr, "expected an error with '%s', got: %s\n", text,
            loom_last_error() ? loom_last_error() : "(none)");
  loom_clear_error();
  return ok;
}

START_TEST(test_errors) {
  loom_rnn_opts o = {.input_size = 2, .hidden_size = 3};
  o.weight_drop = 1;
  ck_assert(fails_with(!loom_lstm_new(o), "weight_drop 1 is not in [0, 1)"));
  o.weight_drop = NAN;
  ck_assert(fails_with(!loom_lstm_new(o), "weight_drop"));
  o.weight_drop = 0;
  o.zoneout[1] = 0.5;
  ck_assert(fails_with(!loom_gru_new(o), "zoneout 0.5 of state 1"));
  o.zoneout[1] = 0;
  o.zoneout[0] = -0.1;
  ck_assert(fails_with(!loom_gru_new(o), "zoneout -0.1 of state 0"));
  o.zoneout[0] = 0;
  /* a cell with no recurrent_weights cannot drop them */
  loom_cell_type bare = example_convlstm_cell;
  o.weight_drop = 0.2;
  ck_assert(fails_with(!loom_rnn_new(&bare, o), "recurrent_weights callback"));
  o.weight_drop = 0;
  o.weight_norm = true;
  ck_assert(fails_with(!loom_rnn_new(&bare, o), "recurrent_weights callback"));
  loom_tensor *t = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3));
  /* renaming a module's entry */
  loom_rnn *r =
      loom_gru_new((loom_rnn_opts){.input_size = 2, .hidden_size = 3});
  ck_assert(
      fails_with(loom_module_rename(&r->base, "weight_hh_l0", "bias_hh_l0") < 0,
                 "'bias_hh_l0' is already registered"));
  ck_assert(fails_with(loom_module_rename(&r->base, "weight_hh", "w") < 0,
                       "no entry 'weight_hh'"));
  ck_assert(fails_with(loom_module_rename(&r->base, "weight_hh_l0", "a.b") < 0,
                       "bad entry name 'a.b'"));
  ck_assert_ptr_null(loom_module_entry_name(&r->base, t));
  ck_assert_int_eq(loom_last_status(), LOOM_OK);
  loom_rnn_free(r);
  /* functions */
  ck_assert(fails_with(!loom_locked_dropout(t, 1, true, NULL), "p 1"));
  ck_assert(fails_with(
      !loom_zoneout(t, loom_zeros(LOOM_F32, LOOM_SHAPE(3)), 0.1, true, NULL),
      "differ"));
  ck_assert(
      fails_with(!loom_embedding_dropout(t, loom_zeros(LOOM_I64, LOOM_SHAPE(2)),
                                         -1, -1, true, NULL),
                 "p -1"));
  ck_assert(
      fails_with(!loom_weight_norm(t, loom_zeros(LOOM_F32, LOOM_SHAPE(3)), 0),
                 "needs 2 elements"));
  ck_assert(fails_with(!loom_weight_norm(t, t, 2), "dim 2"));
  ck_assert(
      fails_with(!loom_pad_sequence(&t, 0, false, 0, NULL), "0 sequences"));
  loom_tensor *two[2] = {t, loom_zeros(LOOM_F32, LOOM_SHAPE(2, 4))};
  ck_assert(fails_with(!loom_pad_sequence(two, 2, false, 0, NULL),
                       "sequence 1 is float32 [2, 4]"));
  loom_tensor *out[3];
  ck_assert(fails_with(
      loom_unpad_sequence(
          loom_zeros(LOOM_F32, LOOM_SHAPE(4, 2, 1)),
          loom_from_array(LOOM_I64, (int64_t[]){5, 1}, LOOM_SHAPE(2)), false,
          out, 2) < 0,
      "length 5 of sequence 0 outside [0, 4]"));
  ck_assert_ptr_null(out[0]);
  ck_assert(fails_with(
      loom_unpad_sequence(
          loom_zeros(LOOM_F32, LOOM_SHAPE(4, 2, 1)),
          loom_from_array(LOOM_I64, (int64_t[]){1, 1}, LOOM_SHAPE(2)), false,
          out, 3) < 0,
      "room for 3"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("rnn_regularisers");
  TCase *tc = tcase_create("regularisers");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_unchecked_fixture(tc, refs_open, refs_close);
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, test_parity, 0, 2 * N_PARITY);
  tcase_add_test(tc, test_embedding_dropout_parity);
  tcase_add_test(tc, test_pad_sequence_parity);
  tcase_add_loop_test(tc, test_gradcheck, 0, N_GRAD);
  tcase_add_loop_test(tc, test_function_gradcheck, 0, 7);
  tcase_add_test(tc, test_weight_drop_fused_equals_steps);
  tcase_add_test(tc, test_weight_drop_masks_and_restore);
  tcase_add_test(tc, test_zoneout_keeps_or_updates);
  tcase_add_test(tc, test_embedding_dropout_whole_words);
  tcase_add_test(tc, test_weight_norm_names_and_step);
  tcase_add_test(tc, test_padded_batch_through_runner);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
