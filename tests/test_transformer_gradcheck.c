/* float64 gradchecks of attention and the transformer: scaled dot-product
 * attention with every kind of mask, multi-head attention (self and cross,
 * masked), encoder and decoder layers in both norm orders, the four
 * seq2seq score kinds and learned positions, with respect to the inputs
 * and every parameter (modules are built with float64 as the default
 * dtype, so their parameters are float64 leaves the check perturbs in
 * place). Plus value tests of the sinusoidal table against the Vaswani et
 * al. formula, of loom_causal_mask and of learned positions. */
#include "check_util.h"

static loom_dtype saved_dtype_;

static void setup(void) {
  loom_test_setup();
  saved_dtype_ = loom_set_default_dtype(LOOM_F64);
  loom_manual_seed(4321);
}

static void teardown(void) {
  loom_set_default_dtype(saved_dtype_);
  loom_test_teardown();
}

/* Small sizes: a full Jacobian stays cheap (also under valgrind). */
enum { E = 4, HEADS = 2, FF = 6, L = 3, S = 4, B = 2 };

static loom_tensor *input(int ndim, const int64_t *shape) {
  loom_tensor *t = loom_randn(NULL, LOOM_F64, 0, 1, ndim, shape);
  ck_assert_loom(t);
  return loom_set_requires_grad(t, true);
}
#define INPUT(...) input(LOOM_SHAPE(__VA_ARGS__))

/* (B, n) bool key padding: batch element 1 has its last `pad` keys padded. */
static loom_tensor *padding(int64_t n, int64_t pad) {
  loom_tensor *m = loom_zeros(LOOM_BOOL, LOOM_SHAPE(B, n));
  ck_assert_loom(m);
  for (int64_t j = n - pad; j < n; j++)
    loom_set(m, (int64_t[]){1, j}, 1);
  return m;
}

static void expect_pass(const char *what, loom_gradcheck_fn fn, void *ctx,
                        loom_tensor *const *in, int n) {
  loom_gradcheck_result res;
  int rc = loom_gradcheck(fn, ctx, in, n, NULL, &res);
  ck_assert_msg(rc == 1, "%s: %s%s", what, rc < 0 ? loom_last_error() : "",
                rc < 0 ? "" : res.message);
  /* A check that perturbed nothing would pass without looking. */
  for (int i = 0; i < n; i++)
    ck_assert_msg(loom_requires_grad(in[i]), "%s: input %d is not checked",
                  what, i);
  if (getenv("LOOM_VERBOSE"))
    printf("%s: %d inputs, %s\n", what, n, res.message);
}

/* Appends m's parameters to in[n..); returns the new count. */
static int with_params(loom_module *m, loom_tensor **in, int n, int max) {
  int np = loom_module_parameters(m, in + n, max - n);
  ck_assert_int_le(n + np, max);
  for (int i = n; i < n + np; i++)
    ck_assert_int_eq(loom_dtype_of(in[i]), LOOM_F64);
  return n + np;
}

/* ---- scaled dot-product attention ---- */

typedef struct {
  const loom_tensor *mask;    /* fixed, or NULL */
  bool causal, mask_is_input; /* in[3] is a float mask to check too */
} sdpa_ctx;

static int sdpa_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                   void *p) {
  (void)n;
  (void)max;
  const sdpa_ctx *c = p;
  out[0] = loom_scaled_dot_product_attention(in[0], in[1], in[2],
                                             c->mask_is_input ? in[3] : c->mask,
                                             c->causal, 0, NULL, &out[1]);
  return out[0] ? 2 : -1;
}

START_TEST(test_sdpa) {
  int64_t H = 2, D = 3, Dv = 2;
  /* bool (B, H, L, S), random, with one row fully blocked */
  loom_tensor *bmask = loom_lt_scalar(
      loom_rand(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(B, H, L, S)), 0.3);
  for (int64_t j = 0; j < S; j++)
    loom_set(bmask, (int64_t[]){1, 0, 2, j}, 1);
  /* float (L, S): random additive values, -inf at two keys */
  loom_tensor *fmask = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(L, S));
  loom_set(fmask, (int64_t[]){0, 1}, -INFINITY);
  loom_set(fmask, (int64_t[]){2, 3}, -INFINITY);
  /* key padding as a (B, 1, 1, S) bool broadcast over heads and rows */
  loom_tensor *kpm = loom_reshape(padding(S, 2), 4, (int64_t[]){B, 1, 1, S});
  struct {
    const char *what;
    sdpa_ctx c;
    int64_t Lq;
  } runs[] = {
      {"sdpa, no mask", {NULL, false, false}, L},
      {"sdpa, bool mask", {bmask, false, false}, L},
      {"sdpa, float mask (checked too)", {NULL, false, true}, L},
      {"sdpa, causal", {NULL, true, false}, L},
      {"sdpa, causal, as many queries as keys", {NULL, true, false}, S},
      {"sdpa, key padding (B, 1, 1, S)", {kpm, false, false}, L},
      {"sdpa, key padding and causal", {kpm, true, false}, L},
  };
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    loom_tensor *in[4] = {INPUT(B, H, runs[r].Lq, D), INPUT(B, H, S, D),
                          INPUT(B, H, S, Dv), NULL};
    int n = 3;
    if (runs[r].c.mask_is_input)
      in[n++] = loom_set_requires_grad(loom_clone(fmask), true);
    expect_pass(runs[r].what, sdpa_fn, &runs[r].c, in, n);
  }
}
END_TEST

/* ---- multi-head attention ---- */

typedef struct {
  loom_multihead_attention *m;
  bool self;
  loom_multihead_attention_args args;
} mha_ctx;

static int mha_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                  void *p) {
  (void)n;
  (void)max;
  mha_ctx *c = p;
  const loom_tensor *k = c->self ? in[0] : in[1], *v = c->self ? in[0] : in[2];
  return loom_multihead_attention_forward(c->m, in[0], k, v, &c->args, &out[0],
                                          &out[1]) < 0
             ? -1
             : 2;
}

static void check_mha(const char *what, loom_multihead_attention_opts o,
                      bool self, loom_multihead_attention_args args) {
  loom_multihead_attention *m = loom_multihead_attention_new(E, HEADS, o);
  ck_assert_loom(m);
  /* random biases: zeros would hide their gradients' mistakes */
  if (m->in_proj_bias)
    loom_init_uniform_(m->in_proj_bias, -0.5, 0.5, NULL);
  if (m->out_proj->bias)
    loom_init_uniform_(m->out_proj->bias, -0.5, 0.5, NULL);
  int64_t kdim = o.kdim ? o.kdim : E, vdim = o.vdim ? o.vdim : E;
  int64_t Lq = self ? S : L;
  loom_tensor *in[16];
  int n = 0;
  in[n++] = o.batch_first ? INPUT(B, Lq, E) : INPUT(Lq, B, E);
  if (!self) {
    in[n++] = o.batch_first ? INPUT(B, S, kdim) : INPUT(S, B, kdim);
    in[n++] = o.batch_first ? INPUT(B, S, vdim) : INPUT(S, B, vdim);
  }
  n = with_params(&m->base, in, n, 16);
  mha_ctx c = {m, self, args};
  expect_pass(what, mha_fn, &c, in, n);
  loom_multihead_attention_free(m);
}

START_TEST(test_mha) {
  loom_tensor *fmask = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(L, S));
  loom_set(fmask, (int64_t[]){1, 2}, -INFINITY);
  loom_tensor *bmask3 = loom_lt_scalar(
      loom_rand(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(B * HEADS, L, S)), 0.3);
  for (int64_t i = 0; i < B * HEADS; i++)
    for (int64_t l = 0; l < L; l++)
      loom_set(bmask3, (int64_t[]){i, l, 0}, 0);
  loom_tensor *kpm_float =
      loom_masked_fill(loom_randn(NULL, LOOM_F64, 0, 0.5, LOOM_SHAPE(B, S)),
                       padding(S, 1), -INFINITY);
  check_mha("mha self, causal, key padding", (loom_multihead_attention_opts){0},
            true,
            (loom_multihead_attention_args){.key_padding_mask = padding(S, 2),
                                            .causal = true,
                                            .need_weights = true});
  check_mha("mha cross, key padding, float mask, per-head weights",
            (loom_multihead_attention_opts){0}, false,
            (loom_multihead_attention_args){.key_padding_mask = padding(S, 1),
                                            .attn_mask = fmask,
                                            .need_weights = true,
                                            .per_head_weights = true});
  check_mha("mha cross, kdim/vdim, 3-D bool mask, float key padding",
            (loom_multihead_attention_opts){.kdim = 3, .vdim = 5}, false,
            (loom_multihead_attention_args){.key_padding_mask = kpm_float,
                                            .attn_mask = bmask3,
                                            .need_weights = true});
  check_mha(
      "mha cross, batch first, no bias, key padding",
      (loom_multihead_attention_opts){.batch_first = true, .no_bias = true},
      false,
      (loom_multihead_attention_args){.key_padding_mask = padding(S, 3),
                                      .need_weights = true});
}
END_TEST

/* ---- transformer layers ---- */

typedef struct {
  loom_module *layer;
  bool decoder;
  loom_transformer_masks masks;
} layer_ctx;

static int layer_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                    void *p) {
  (void)n;
  (void)max;
  layer_ctx *c = p;
  out[0] = c->decoder ? loom_transformer_decoder_layer_forward(
                            (loom_transformer_decoder_layer *)c->layer, in[0],
                            in[1], &c->masks)
                      : loom_transformer_encoder_layer_forward(
                            (loom_transformer_encoder_layer *)c->layer, in[0],
                            &c->masks);
  return out[0] ? 1 : -1;
}

/* Gives biases and norm affines random values (so zeros and ones hide no
 * mistake in their gradients). */
static void randomize_vectors(loom_module *m) {
  loom_tensor *ps[64];
  int np = loom_module_parameters(m, ps, 64);
  ck_assert_int_le(np, 64);
  for (int i = 0; i < np; i++)
    if (loom_ndim(ps[i]) == 1)
      ck_assert_int_eq(loom_init_uniform_(ps[i], 0.5, 1.5, NULL), 0);
}

static loom_transformer_opts layer_opts(bool norm_first, bool gelu) {
  return (loom_transformer_opts){.d_model = E,
                                 .nhead = HEADS,
                                 .dim_feedforward = FF,
                                 .gelu = gelu,
                                 .norm_first = norm_first};
}

START_TEST(test_encoder_layer) {
  for (int norm_first = 0; norm_first < 2; norm_first++) {
    loom_transformer_encoder_layer *l =
        loom_transformer_encoder_layer_new(layer_opts(norm_first, norm_first));
    ck_assert_loom(l);
    loom_module_train(&l->base, false);
    randomize_vectors(&l->base);
    loom_tensor *in[32] = {INPUT(S, B, E)};
    int n = with_params(&l->base, in, 1, 32);
    layer_ctx c = {&l->base,
                   false,
                   {.src_key_padding_mask = padding(S, 1), .src_causal = true}};
    expect_pass(norm_first ? "encoder layer, pre-norm, gelu"
                           : "encoder layer, post-norm, relu",
                layer_fn, &c, in, n);
    loom_module_free(&l->base);
  }
}
END_TEST

START_TEST(test_decoder_layer) {
  loom_tensor *mmask = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(L, S));
  loom_set(mmask, (int64_t[]){2, 0}, -INFINITY);
  for (int norm_first = 0; norm_first < 2; norm_first++) {
    loom_transformer_decoder_layer *l =
        loom_transformer_decoder_layer_new(layer_opts(norm_first, !norm_first));
    ck_assert_loom(l);
    loom_module_train(&l->base, false);
    randomize_vectors(&l->base);
    loom_tensor *in[48] = {INPUT(L, B, E), INPUT(S, B, E)};
    int n = with_params(&l->base, in, 2, 48);
    layer_ctx c = {&l->base,
                   true,
                   {.tgt_causal = true,
                    .tgt_key_padding_mask = padding(L, 1),
                    .memory_mask = mmask,
                    .memory_key_padding_mask = padding(S, 2)}};
    expect_pass(norm_first ? "decoder layer, pre-norm, relu"
                           : "decoder layer, post-norm, gelu",
                layer_fn, &c, in, n);
    loom_module_free(&l->base);
  }
}
END_TEST

/* ---- seq2seq attention ---- */

typedef struct {
  loom_seq_attention *a;
  const loom_tensor *mask;
} seq_ctx;

static int seq_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                  void *p) {
  (void)n;
  (void)max;
  seq_ctx *c = p;
  return loom_seq_attention_forward(c->a, in[0], in[1], c->mask, &out[0],
                                    &out[1]) < 0
             ? -1
             : 2;
}

START_TEST(test_seq_attention) {
  const struct {
    const char *what;
    loom_score_kind kind;
    int64_t q;
  } kinds[] = {{"seq attention, dot", LOOM_SCORE_DOT, 4},
               {"seq attention, general", LOOM_SCORE_GENERAL, 3},
               {"seq attention, concat", LOOM_SCORE_CONCAT, 3},
               {"seq attention, additive", LOOM_SCORE_ADDITIVE, 3}};
  int64_t K = 4, hidden = 5;
  for (int k = 0; k < 4; k++) {
    loom_seq_attention *a =
        loom_seq_attention_new(kinds[k].kind, kinds[k].q, K, hidden);
    ck_assert_loom(a);
    loom_tensor *in[16] = {INPUT(B, kinds[k].q), INPUT(B, S, K)};
    int n = with_params(&a->base, in, 2, 16);
    seq_ctx c = {a, padding(S, 2)};
    expect_pass(kinds[k].what, seq_fn, &c, in, n);
    /* padded keys get no weight, the others all of it */
    loom_tensor *ctxv, *w;
    ck_assert_int_eq(
        loom_seq_attention_forward(a, in[0], in[1], c.mask, &ctxv, &w), 0);
    ck_assert_double_eq(loom_get(w, (int64_t[]){1, S - 1}), 0);
    ck_assert_double_eq(loom_get(w, (int64_t[]){1, S - 2}), 0);
    for (int64_t b = 0; b < B; b++)
      ck_assert_close(
          loom_get(loom_sum(w, (int[]){1}, 1, false), (int64_t[]){b}), 1,
          1e-12);
    loom_seq_attention_free(a);
  }
}
END_TEST

/* ---- positional encodings ---- */

typedef struct {
  loom_learned_positions *p;
  int64_t offset, n;
} pos_ctx;

/* tanh(x + positions) so the check sees a nonlinear use of them. */
static int pos_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                  void *p) {
  (void)n;
  (void)max;
  pos_ctx *c = p;
  out[0] = loom_tanh(
      loom_add(in[0], loom_learned_positions_forward(c->p, c->offset, c->n)));
  return out[0] ? 1 : -1;
}

START_TEST(test_learned_positions) {
  int64_t max_len = 6, d = 3;
  loom_learned_positions *p = loom_learned_positions_new(max_len, d);
  ck_assert_loom(p);
  loom_tensor *in[2] = {INPUT(B, 3, d), p->weight};
  pos_ctx c = {p, 2, 3};
  expect_pass("learned positions", pos_fn, &c, in, 2);
  /* rows offset .. offset + n - 1, and only those receive a gradient */
  loom_tensor *rows = loom_learned_positions_forward(p, 2, 3);
  ck_assert(loom_equal(rows, loom_narrow(p->weight, 0, 2, 3)));
  loom_zero_grad(p->weight);
  ck_assert_int_eq(loom_backward(loom_sum_all(rows)), 0);
  for (int64_t i = 0; i < max_len; i++)
    for (int64_t j = 0; j < d; j++)
      ck_assert_double_eq(loom_get(loom_grad(p->weight), (int64_t[]){i, j}),
                          i >= 2 && i < 5 ? 1 : 0);
  ck_assert_ptr_null(loom_learned_positions_forward(p, 4, 3));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_INDEX);
  loom_clear_error();
  loom_tensor_map *sd = loom_module_state_dict(&p->base);
  ck_assert_int_eq(loom_tensor_map_count(sd), 1);
  ck_assert_ptr_eq(loom_tensor_map_get(sd, "weight"), p->weight);
  loom_tensor_map_free(sd);
  loom_module_free(&p->base);
}
END_TEST

/* PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d)),
 * computed here with pow (loom uses exp and log). */
START_TEST(test_sinusoidal_formula) {
  const int64_t dims[] = {1, 6, 7, 16};
  for (int k = 0; k < 4; k++) {
    int64_t n = 9, d = dims[k];
    loom_tensor *pe = loom_sinusoidal_encoding(LOOM_F64, n, d);
    ck_assert_loom(pe);
    ck_assert_int_eq(loom_size(pe, 0), n);
    ck_assert_int_eq(loom_size(pe, 1), d);
    loom_tensor *pe32 = loom_sinusoidal_encoding(LOOM_F32, n, d);
    ck_assert_int_eq(loom_dtype_of(pe32), LOOM_F32);
    for (int64_t p = 0; p < n; p++)
      for (int64_t i = 0; i < d; i++) {
        double a = (double)p / pow(10000.0, (double)(i - i % 2) / (double)d);
        double want = i % 2 ? cos(a) : sin(a);
        int64_t at[2] = {p, i};
        ck_assert_msg(fabs(loom_get(pe, at) - want) <= 1e-12,
                      "d %lld: PE(%lld, %lld) = %.17g, expected %.17g",
                      (long long)d, (long long)p, (long long)i,
                      loom_get(pe, at), want);
        ck_assert(fabs(loom_get(pe32, at) - want) <= 1e-6);
      }
  }
  ck_assert_int_eq(loom_numel(loom_sinusoidal_encoding(LOOM_F64, 0, 4)), 0);
  ck_assert_ptr_null(loom_sinusoidal_encoding(LOOM_F64, 3, 0));
  loom_clear_error();
}
END_TEST

START_TEST(test_causal_mask_values) {
  loom_dtype dtypes[] = {LOOM_F32, LOOM_F64};
  for (int k = 0; k < 2; k++)
    for (int64_t n = 1; n <= 6; n++) {
      loom_tensor *m = loom_causal_mask(dtypes[k], n);
      ck_assert_loom(m);
      ck_assert_int_eq(loom_dtype_of(m), dtypes[k]);
      ck_assert_int_eq(loom_ndim(m), 2);
      ck_assert_int_eq(loom_size(m, 0), n);
      ck_assert_int_eq(loom_size(m, 1), n);
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
          double v = loom_get(m, (int64_t[]){i, j});
          if (j > i)
            ck_assert(isinf(v) && v < 0);
          else
            ck_assert_double_eq(v, 0);
        }
    }
  /* the mask and the causal flag give the same attention */
  loom_tensor *q = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 5, 3));
  loom_tensor *k = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 5, 3));
  loom_tensor *v = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 5, 4));
  loom_tensor *a = loom_scaled_dot_product_attention(
      q, k, v, loom_causal_mask(LOOM_F64, 5), false, 0, NULL, NULL);
  loom_tensor *b =
      loom_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL, NULL);
  ck_assert(loom_allclose(a, b, 1e-14, 1e-14));
}
END_TEST

int main(void) {
  Suite *s = suite_create("transformer_gradcheck");
  TCase *tc = tcase_create("gradcheck");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_sdpa);
  tcase_add_test(tc, test_mha);
  tcase_add_test(tc, test_encoder_layer);
  tcase_add_test(tc, test_decoder_layer);
  tcase_add_test(tc, test_seq_attention);
  tcase_add_test(tc, test_learned_positions);
  suite_add_tcase(s, tc);
  TCase *tv = tcase_create("values");
  tcase_add_checked_fixture(tv, setup, teardown);
  tcase_add_test(tv, test_sinusoidal_formula);
  tcase_add_test(tv, test_causal_mask_values);
  suite_add_tcase(s, tv);
  return loom_run_suite(s);
}
