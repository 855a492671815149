/* PyTorch parity of attention and the transformer: each case of
 * tests/data/transformer_reference.safetensors (written by
 * scripts/gen_transformer_reference.py, naming scheme there) is rebuilt
 * with loom, its state dict loaded by PyTorch's names (strict, so the names
 * are checked too), and the output, the attention weights and every
 * gradient of sum(out * r) (+ sum(weights * r_weights)) compared with
 * torch's. Cases whose mask is torch's causal mask run a second time with
 * loom's causal flag instead. Also here: loom_causal_mask and
 * loom_sinusoidal_encoding against the file's tables, and what torch cannot
 * give a reference for: query rows whose keys are all masked (torch: NaN;
 * loom: zero weights and finite gradients). */
#include "parity_util.h"

#define RTOL 1e-5
#define ATOL 1e-6

PARITY_REFERENCE(ref, "transformer_reference.safetensors")
static parity_stat mha_stat = {"multihead attention", 0, ""};
static parity_stat layer_stat = {"transformer layers", 0, ""};
static parity_stat stack_stat = {"transformer stacks", 0, ""};

typedef enum { MHA, ENC_LAYER, DEC_LAYER, ENCODER, TRANSFORMER } case_kind;

typedef struct {
  const char *name;
  case_kind kind;
  /* MultiheadAttention */
  bool self_attn, no_bias, no_weights, per_head;
  int64_t kdim, vdim;
  /* transformer */
  bool gelu, norm_first;
  bool batch_first;
  /* the file's attn_mask (src_mask for encoders, tgt_mask for decoders)
   * is torch's causal mask: run again with loom's causal flag */
  bool causal;
} tcase;

enum { E = 8, HEADS = 2, FF = 16 };

/* Loads the case's "state." entries into m (strict: names must match). */
static void load_state(loom_module *m, const char *c) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.state.", c);
  loom_tensor_map *sd = parity_submap(ref, prefix);
  ck_assert_msg(loom_tensor_map_count(sd) > 0, "%s: no state", c);
  int rc = loom_module_load_state_dict(m, sd, true);
  loom_tensor_map_free(sd);
  ck_assert_msg(rc == 0, "%s: load_state_dict: %s", c, loom_last_error());
}

/* Every "grad." entry of the case names a data input or a parameter of m,
 * and every data input and parameter has one. */
static void check_grads(parity_stat *st, const char *c, loom_module *m,
                        loom_tensor *const *in, const char *const *names,
                        int n_in) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.grad.", c);
  size_t np = strlen(prefix);
  loom_tensor_map *params = loom_module_named_parameters(m);
  int checked = 0, expected = loom_tensor_map_count(params) + n_in;
  for (int i = 0; i < loom_tensor_map_count(ref); i++) {
    const char *name = loom_tensor_map_name(ref, i);
    if (strncmp(name, prefix, np) != 0)
      continue;
    loom_tensor *t = NULL;
    for (int k = 0; k < n_in && !t; k++)
      if (strcmp(names[k], name + np) == 0)
        t = in[k];
    if (!t)
      t = loom_tensor_map_get(params, name + np);
    ck_assert_msg(t != NULL, "%s: no input or parameter for it", name);
    ck_assert_msg(loom_grad(t) != NULL, "%s: no gradient arrived", name);
    parity_check(st, loom_grad(t), loom_tensor_map_at(ref, i), RTOL, ATOL,
                 name);
    checked++;
  }
  loom_tensor_map_free(params);
  ck_assert_msg(checked == expected, "%s: %d gradients checked, %d expected", c,
                checked, expected);
}

/* The file's mask, checked to be the causal mask when the causal flag is
 * to replace it. */
static const loom_tensor *causal_ref(const char *c, const char *suffix) {
  const loom_tensor *m = parity_ref(ref, c, suffix);
  ck_assert_msg(loom_equal(m, loom_causal_mask(LOOM_F32, loom_size(m, 0))),
                "%s%s is not the causal mask", c, suffix);
  return m;
}

static loom_transformer_opts topts(const tcase *tc) {
  return (loom_transformer_opts){.d_model = E,
                                 .nhead = HEADS,
                                 .dim_feedforward = FF,
                                 .gelu = tc->gelu,
                                 .batch_first = tc->batch_first,
                                 .norm_first = tc->norm_first};
}

/* The transformer masks of the case (each optional in the file). */
static loom_transformer_masks read_masks(const char *c, bool flag) {
  loom_transformer_masks mk = {
      .src_mask = parity_find(ref, c, ".in.src_mask"),
      .tgt_mask = parity_find(ref, c, ".in.tgt_mask"),
      .memory_mask = parity_find(ref, c, ".in.memory_mask"),
      .src_key_padding_mask = parity_find(ref, c, ".in.src_key_padding_mask"),
      .tgt_key_padding_mask = parity_find(ref, c, ".in.tgt_key_padding_mask"),
      .memory_key_padding_mask =
          parity_find(ref, c, ".in.memory_key_padding_mask")};
  if (flag && mk.src_mask) {
    causal_ref(c, ".in.src_mask");
    mk.src_mask = NULL;
    mk.src_causal = true;
  }
  if (flag && mk.tgt_mask) {
    causal_ref(c, ".in.tgt_mask");
    mk.tgt_mask = NULL;
    mk.tgt_causal = true;
  }
  ck_assert_msg(!flag || mk.src_causal || mk.tgt_causal,
                "%s: no causal mask to replace", c);
  return mk;
}

/* One run of a case; `flag`: loom's causal flag for the causal mask. */
static void run_case(const tcase *tc, bool flag) {
  const char *c = tc->name;
  bool weights = tc->kind == MHA && !tc->no_weights;
  const char *names[3];
  int n_in = 0;
  switch (tc->kind) {
  case MHA:
    if (tc->self_attn) {
      names[n_in++] = "x";
    } else {
      names[n_in++] = "query";
      names[n_in++] = "key";
      names[n_in++] = "value";
    }
    break;
  case ENC_LAYER:
  case ENCODER:
    names[n_in++] = "src";
    break;
  case DEC_LAYER:
    names[n_in++] = "tgt";
    names[n_in++] = "memory";
    break;
  case TRANSFORMER:
    names[n_in++] = "src";
    names[n_in++] = "tgt";
    break;
  }
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.in.", c);
  loom_tensor *in[3];
  for (int k = 0; k < n_in; k++)
    in[k] = parity_leaf(parity_ref(ref, prefix, names[k]));
  /* every input in the file is used: a mask under an unknown name would
   * pass unnoticed */
  static const char *const masks[] = {"key_padding_mask",
                                      "attn_mask",
                                      "src_mask",
                                      "tgt_mask",
                                      "memory_mask",
                                      "src_key_padding_mask",
                                      "tgt_key_padding_mask",
                                      "memory_key_padding_mask"};
  int used = n_in;
  for (int k = tc->kind == MHA ? 0 : 2; k < (tc->kind == MHA ? 2 : 8); k++)
    used += parity_find(ref, prefix, masks[k]) != NULL;
  ck_assert_msg(parity_count(ref, prefix, "") == used,
                "%s: inputs in the file that the test does not use", c);

  loom_module *m = NULL;
  loom_tensor *y = NULL, *w = NULL;
  parity_stat *st = &stack_stat;
  loom_transformer_masks mk = {0};
  if (tc->kind != MHA)
    mk = read_masks(c, flag);
  switch (tc->kind) {
  case MHA: {
    st = &mha_stat;
    loom_multihead_attention *a = loom_multihead_attention_new(
        E, HEADS,
        (loom_multihead_attention_opts){.kdim = tc->kdim,
                                        .vdim = tc->vdim,
                                        .no_bias = tc->no_bias,
                                        .batch_first = tc->batch_first});
    ck_assert_loom(a);
    m = &a->base;
    loom_module_train(m, false);
    load_state(m, c);
    loom_multihead_attention_args args = {
        .key_padding_mask = parity_find(ref, c, ".in.key_padding_mask"),
        .attn_mask = parity_find(ref, c, ".in.attn_mask"),
        .need_weights = weights,
        .per_head_weights = tc->per_head};
    if (flag) {
      causal_ref(c, ".in.attn_mask");
      args.attn_mask = NULL;
      args.causal = true;
    }
    loom_tensor *q = in[0], *k = tc->self_attn ? in[0] : in[1],
                *v = tc->self_attn ? in[0] : in[2];
    int rc = loom_multihead_attention_forward(a, q, k, v, &args, &y,
                                              weights ? &w : NULL);
    ck_assert_msg(rc == 0, "%s: %s", c, loom_last_error());
    break;
  }
  case ENC_LAYER: {
    st = &layer_stat;
    loom_transformer_encoder_layer *l =
        loom_transformer_encoder_layer_new(topts(tc));
    ck_assert_loom(l);
    m = &l->base;
    loom_module_train(m, false);
    load_state(m, c);
    y = loom_transformer_encoder_layer_forward(l, in[0], &mk);
    break;
  }
  case DEC_LAYER: {
    st = &layer_stat;
    loom_transformer_decoder_layer *l =
        loom_transformer_decoder_layer_new(topts(tc));
    ck_assert_loom(l);
    m = &l->base;
    loom_module_train(m, false);
    load_state(m, c);
    y = loom_transformer_decoder_layer_forward(l, in[0], in[1], &mk);
    break;
  }
  case ENCODER: {
    loom_transformer_stack *s =
        loom_transformer_encoder_new(topts(tc), 2, true);
    ck_assert_loom(s);
    m = &s->base;
    loom_module_train(m, false);
    load_state(m, c);
    y = loom_transformer_encoder_forward(s, in[0], &mk);
    break;
  }
  case TRANSFORMER: {
    loom_transformer *t = loom_transformer_new(topts(tc), 2, 2);
    ck_assert_loom(t);
    m = &t->base;
    loom_module_train(m, false);
    load_state(m, c);
    y = loom_transformer_forward(t, in[0], in[1], &mk);
    break;
  }
  }
  char what[160];
  snprintf(what, sizeof what, "%s.out%s", c, flag ? " (causal flag)" : "");
  parity_check(st, y, parity_ref(ref, c, ".out"), RTOL, ATOL, what);
  loom_tensor *loss = loom_sum_all(loom_mul(y, parity_ref(ref, c, ".r")));
  ck_assert_msg((parity_find(ref, c, ".weights") != NULL) == weights,
                "%s: weights recorded and asked for differ", c);
  if (weights) {
    snprintf(what, sizeof what, "%s.weights", c);
    parity_check(st, w, parity_ref(ref, c, ".weights"), RTOL, ATOL, what);
    loss = loom_add(
        loss, loom_sum_all(loom_mul(w, parity_ref(ref, c, ".r_weights"))));
  }
  ck_assert_msg(loom_backward(loss) == 0, "%s: backward: %s", c,
                loom_last_error());
  check_grads(st, c, m, in, names, n_in);
  loom_module_free(m);
}

/* ATT(name, fields...), LAYER(name, kind, fields...) */
#define ATT(...)                                                               \
  { .kind = MHA, .name = __VA_ARGS__ }
#define LAYER(n, k, ...)                                                       \
  { .name = n, .kind = k, __VA_ARGS__ }

/* In the order of the reference file. */
static const tcase cases[] = {
    ATT("mha_self", .self_attn = true),
    ATT("mha_cross", .no_weights = true),
    ATT("mha_kpm_bool"),
    ATT("mha_kpm_float_finite"),
    ATT("mha_mask_bool2d"),
    ATT("mha_mask_float2d"),
    ATT("mha_mask_float3d", .per_head = true),
    ATT("mha_both_bool"),
    ATT("mha_both_float_attn"),
    ATT("mha_both_float_kpm"),
    ATT("mha_self_causal", .self_attn = true, .causal = true),
    ATT("mha_self_bf", .self_attn = true, .batch_first = true,
        .per_head = true),
    ATT("mha_batch_first", .batch_first = true),
    ATT("mha_kvdim", .kdim = 5, .vdim = 7),
    ATT("mha_kvdim_bf_nobias", .kdim = 5, .vdim = 7, .batch_first = true,
        .no_bias = true, .per_head = true),
    ATT("mha_nobias_self", .self_attn = true, .no_bias = true),
    ATT("mha_per_head", .per_head = true),
    LAYER("enc_relu_post", ENC_LAYER, .causal = true),
    LAYER("enc_gelu_pre", ENC_LAYER, .gelu = true, .norm_first = true),
    LAYER("enc_gelu_post_bf", ENC_LAYER, .gelu = true, .batch_first = true,
          .causal = true),
    LAYER("enc_relu_pre_bf", ENC_LAYER, .norm_first = true,
          .batch_first = true),
    LAYER("dec_relu_post", DEC_LAYER, .causal = true),
    LAYER("dec_gelu_pre", DEC_LAYER, .gelu = true, .norm_first = true),
    LAYER("dec_gelu_post_bf", DEC_LAYER, .gelu = true, .batch_first = true,
          .causal = true),
    LAYER("dec_relu_pre_bf", DEC_LAYER, .norm_first = true,
          .batch_first = true),
    LAYER("encoder_post", ENCODER, .causal = true),
    LAYER("transformer_pre_bf", TRANSFORMER, .gelu = true, .norm_first = true,
          .batch_first = true, .causal = true),
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

START_TEST(test_case) {
  run_case(&cases[_i], false);
  if (cases[_i].causal)
    run_case(&cases[_i], true);
}
END_TEST

/* Every case in the file has a C counterpart above. */
START_TEST(test_every_case_is_run) {
  ck_assert_int_eq(parity_count(ref, "", ".out"), N_CASES);
  for (int i = 0; i < N_CASES; i++)
    ck_assert_msg(parity_find(ref, cases[i].name, ".out") != NULL,
                  "no case '%s' in the file", cases[i].name);
}
END_TEST

/* nn.Transformer.generate_square_subsequent_mask, in both float dtypes. */
START_TEST(test_causal_mask) {
  const int64_t sizes[] = {1, 5, 9};
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "causal_mask.n%lld", (long long)sizes[i]);
    const loom_tensor *want = loom_tensor_map_get(ref, name);
    ck_assert_msg(want != NULL, "no %s", name);
    ck_assert(loom_equal(loom_causal_mask(LOOM_F32, sizes[i]), want));
    loom_tensor *m64 = loom_causal_mask(LOOM_F64, sizes[i]);
    ck_assert_int_eq(loom_dtype_of(m64), LOOM_F64);
    ck_assert(loom_equal(m64, want));
  }
  /* an integer or bool dtype cannot hold -inf: refused (it saturated) */
  ck_assert_ptr_null(loom_causal_mask(LOOM_I64, 3));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  ck_assert_str_eq(loom_last_error(), "causal_mask: dtype int64 (float32 or "
                                      "float64: the mask holds -inf)");
  loom_clear_error();
  ck_assert_ptr_null(loom_causal_mask(LOOM_BOOL, 3));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  ck_assert_int_eq(loom_numel(loom_causal_mask(LOOM_DTYPE_DEFAULT, 2)), 4);
}
END_TEST

/* The position tables of the file (PyTorch's tutorial, and the formula
 * for an odd size). */
START_TEST(test_sinusoidal_table) {
  const int64_t shapes[][2] = {{7, 8}, {6, 5}};
  for (int i = 0; i < 2; i++) {
    char name[32];
    snprintf(name, sizeof name, "sinusoidal.n%lld_d%lld",
             (long long)shapes[i][0], (long long)shapes[i][1]);
    const loom_tensor *want = loom_tensor_map_get(ref, name);
    ck_assert_msg(want != NULL, "no %s", name);
    loom_tensor *pe =
        loom_sinusoidal_encoding(LOOM_F64, shapes[i][0], shapes[i][1]);
    ck_assert_loom(pe);
    ck_assert_msg(loom_allclose(pe, want, 1e-12, 1e-12), "%s differs", name);
    ck_assert(loom_allclose(
        loom_sinusoidal_encoding(LOOM_F32, shapes[i][0], shapes[i][1]), want,
        1e-6, 1e-7));
  }
  /* integers would hold the table's 0 and 1 only: refused */
  ck_assert_ptr_null(loom_sinusoidal_encoding(LOOM_I64, 3, 4));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  ck_assert_str_eq(loom_last_error(),
                   "sinusoidal_encoding: dtype int64 (float32 or float64)");
  loom_clear_error();
  ck_assert_ptr_null(loom_sinusoidal_encoding(LOOM_U8, 3, 4));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
}
END_TEST

/* ---- fully masked query rows (torch gives NaN, loom zeros) ---- */

static bool all_finite(const loom_tensor *t) {
  ck_assert_msg(t != NULL, "no tensor (%s)", loom_last_error());
  int64_t n = loom_numel(t);
  double *v = malloc((size_t)(n + 1) * sizeof *v);
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(loom_copy_to_array(t, LOOM_F64, v, n), 0);
  bool ok = true;
  for (int64_t i = 0; i < n; i++)
    ok = ok && isfinite(v[i]);
  free(v);
  return ok;
}

static double max_abs(const loom_tensor *t) {
  return loom_item(loom_amax(loom_abs(t), NULL, 0, false));
}

static loom_tensor *leaf(int ndim, const int64_t *shape) {
  return loom_set_requires_grad(loom_randn(NULL, LOOM_F32, 0, 1, ndim, shape),
                                true);
}

/* Row 1 of batch 0 and every row of batch 1 are fully blocked, by a bool
 * mask and by its -inf float form: their weights and outputs are zero,
 * other rows still sum to one, and every gradient is finite (the blocked
 * rows pass none back to their query). */
START_TEST(test_fully_masked_rows_sdpa) {
  loom_manual_seed(11);
  for (int as_float = 0; as_float < 2; as_float++) {
    loom_tensor *q = leaf(LOOM_SHAPE(2, 3, 4));
    loom_tensor *k = leaf(LOOM_SHAPE(2, 5, 4));
    loom_tensor *v = leaf(LOOM_SHAPE(2, 5, 4));
    loom_tensor *mask = loom_zeros(LOOM_BOOL, LOOM_SHAPE(2, 3, 5));
    for (int64_t j = 0; j < 5; j++) {
      loom_set(mask, (int64_t[]){0, 1, j}, 1);
      for (int64_t i = 0; i < 3; i++)
        loom_set(mask, (int64_t[]){1, i, j}, 1);
    }
    loom_set(mask, (int64_t[]){0, 2, 3}, 1); /* a partly blocked row */
    const loom_tensor *mk = mask;
    if (as_float)
      mk = loom_masked_fill(loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3, 5)), mask,
                            -INFINITY);
    loom_tensor *w;
    loom_tensor *o =
        loom_scaled_dot_product_attention(q, k, v, mk, false, 0, NULL, &w);
    ck_assert_loom(o);
    ck_assert(all_finite(o) && all_finite(w));
    ck_assert_double_eq(max_abs(loom_select(loom_select(w, 0, 0), 0, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(loom_select(o, 0, 0), 0, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(w, 0, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(o, 0, 1)), 0);
    ck_assert_double_eq(loom_get(w, (int64_t[]){0, 2, 3}), 0);
    ck_assert_close(
        loom_get(loom_sum(w, (int[]){2}, 1, false), (int64_t[]){0, 2}), 1,
        1e-6);
    loom_tensor *r = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(2, 3, 4));
    loom_tensor *rw = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(2, 3, 5));
    ck_assert_int_eq(loom_backward(loom_add(loom_sum_all(loom_mul(o, r)),
                                            loom_sum_all(loom_mul(w, rw)))),
                     0);
    ck_assert(all_finite(loom_grad(q)) && all_finite(loom_grad(k)) &&
              all_finite(loom_grad(v)));
    ck_assert_double_eq(max_abs(loom_select(loom_grad(q), 0, 1)), 0);
    ck_assert_double_eq(
        max_abs(loom_select(loom_select(loom_grad(q), 0, 0), 0, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(loom_grad(k), 0, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(loom_grad(v), 0, 1)), 0);
    ck_assert(max_abs(loom_select(loom_grad(q), 0, 0)) > 0);
  }
}
END_TEST

/* A batch element whose keys are all padding: MultiheadAttention gives it
 * zero weights and the output projection's bias as output; a transformer
 * encoder layer and decoder stay finite, forward and backward. */
START_TEST(test_fully_masked_rows_modules) {
  loom_manual_seed(12);
  int64_t L = 3, S = 4, B = 2;
  loom_tensor *kpm = loom_zeros(LOOM_BOOL, LOOM_SHAPE(B, S));
  for (int64_t j = 0; j < S; j++)
    loom_set(kpm, (int64_t[]){1, j}, 1);
  loom_set(kpm, (int64_t[]){0, 3}, 1);
  loom_tensor *kpm_float =
      loom_masked_fill(loom_zeros(LOOM_F32, LOOM_SHAPE(B, S)), kpm, -INFINITY);
  for (int as_float = 0; as_float < 2; as_float++) {
    loom_multihead_attention *m = loom_multihead_attention_new(
        E, HEADS, (loom_multihead_attention_opts){0});
    ck_assert_loom(m);
    loom_init_uniform_(m->out_proj->bias, -1, 1, NULL);
    loom_tensor *q = leaf(LOOM_SHAPE(L, B, E)), *kv = leaf(LOOM_SHAPE(S, B, E));
    loom_multihead_attention_args a = {
        .key_padding_mask = as_float ? kpm_float : kpm,
        .attn_mask = loom_causal_mask(LOOM_F32, S),
        .need_weights = true};
    a.attn_mask = loom_narrow(a.attn_mask, 0, 0, L);
    loom_tensor *y, *w;
    ck_assert_int_eq(loom_multihead_attention_forward(m, q, kv, kv, &a, &y, &w),
                     0);
    ck_assert(all_finite(y) && all_finite(w));
    ck_assert_double_eq(max_abs(loom_select(w, 0, 1)), 0);
    ck_assert(loom_allclose(loom_select(y, 1, 1),
                            loom_expand(m->out_proj->bias, LOOM_SHAPE(L, E)), 0,
                            0));
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y, y))), 0);
    ck_assert(all_finite(loom_grad(q)) && all_finite(loom_grad(kv)));
    ck_assert_double_eq(max_abs(loom_select(loom_grad(q), 1, 1)), 0);
    ck_assert_double_eq(max_abs(loom_select(loom_grad(kv), 1, 1)), 0);
    loom_tensor *ps[16];
    int np = loom_module_parameters(&m->base, ps, 16);
    for (int i = 0; i < np; i++)
      ck_assert(all_finite(loom_grad(ps[i])));
    loom_multihead_attention_free(m);
  }

  loom_transformer_opts o = {
      .d_model = E, .nhead = HEADS, .dim_feedforward = FF};
  loom_transformer *t = loom_transformer_new(o, 1, 1);
  ck_assert_loom(t);
  loom_module_train(&t->base, false);
  loom_tensor *src = leaf(LOOM_SHAPE(S, B, E)),
              *tgt = leaf(LOOM_SHAPE(L, B, E));
  loom_transformer_masks mk = {.src_key_padding_mask = kpm,
                               .memory_key_padding_mask = kpm,
                               .tgt_causal = true};
  loom_tensor *y = loom_transformer_forward(t, src, tgt, &mk);
  ck_assert_loom(y);
  ck_assert(all_finite(y));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y, y))), 0);
  ck_assert(all_finite(loom_grad(src)) && all_finite(loom_grad(tgt)));
  /* batch 1's source is never seen */
  ck_assert_double_eq(max_abs(loom_select(loom_grad(src), 1, 1)), 0);
  loom_tensor *ps[64];
  int np = loom_module_parameters(&t->base, ps, 64);
  ck_assert_int_le(np, 64);
  for (int i = 0; i < np; i++)
    ck_assert(all_finite(loom_grad(ps[i])));
  loom_transformer_free(t);
}
END_TEST

/* PyTorch's unbatched calls (no batch dim; key_padding_mask (S);
 * attn_mask (L, S) or (heads, L, S)) give exactly what a batch of one
 * gives, forward and backward: MultiheadAttention seq-first and
 * batch-first, self-attention with a 2-D mask and averaged weights, cross
 * (kdim, vdim) with a 3-D mask and weights per head, and a whole
 * nn.Transformer with padding masks. Masks of the wrong size are errors
 * that give the unbatched shapes. */
static void unbatched_mha(bool bf, bool self) {
  int64_t L = self ? 4 : 3, S = 4, kdim = self ? E : 3, vdim = self ? E : 5;
  loom_multihead_attention *m = loom_multihead_attention_new(
      E, HEADS,
      (loom_multihead_attention_opts){
          .batch_first = bf, .kdim = kdim, .vdim = vdim});
  ck_assert_loom(m);
  loom_tensor *q = leaf(LOOM_SHAPE(L, E));
  loom_tensor *k = self ? q : leaf(LOOM_SHAPE(S, kdim));
  loom_tensor *v = self ? q : leaf(LOOM_SHAPE(S, vdim));
  loom_tensor *kpm = loom_zeros(LOOM_BOOL, LOOM_SHAPE(S));
  loom_set(kpm, (int64_t[]){2}, 1);
  loom_multihead_attention_args a = {
      .key_padding_mask = kpm,
      .attn_mask =
          self ? loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(L, S))
               : loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(HEADS, L, S)),
      .need_weights = true,
      .per_head_weights = !self};
  loom_tensor *r = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(L, E));
  loom_tensor *y[2], *w[2], *gq[2], *gw[2];
  for (int batched = 0; batched < 2; batched++) {
    int d = bf ? 0 : 1;
    loom_multihead_attention_args ab = a;
    const loom_tensor *qb = q, *kb = k, *vb = v;
    if (batched) {
      qb = loom_unsqueeze(q, d);
      kb = self ? qb : loom_unsqueeze(k, d);
      vb = self ? qb : loom_unsqueeze(v, d);
      ab.key_padding_mask = loom_unsqueeze(kpm, 0);
    }
    loom_module_zero_grad(&m->base);
    loom_zero_grad(q);
    ck_assert_int_eq(loom_multihead_attention_forward(m, qb, kb, vb, &ab,
                                                      &y[batched], &w[batched]),
                     0);
    if (batched) {
      y[1] = loom_squeeze(y[1], d);
      w[1] = loom_squeeze(w[1], 0);
    }
    ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(y[batched], r))), 0);
    gq[batched] = loom_clone(loom_grad(q));
    gw[batched] = loom_clone(loom_grad(m->out_proj->weight));
  }
  ck_assert_int_eq(loom_ndim(y[0]), 2);
  ck_assert_int_eq(loom_ndim(w[0]), self ? 2 : 3);
  ck_assert(loom_equal(y[0], y[1]) && loom_equal(w[0], w[1]));
  ck_assert(loom_equal(gq[0], gq[1]) && loom_equal(gw[0], gw[1]));
  loom_multihead_attention_free(m);
}

START_TEST(test_unbatched) {
  loom_manual_seed(13);
  for (int bf = 0; bf < 2; bf++)
    for (int self = 0; self < 2; self++)
      unbatched_mha(bf, self);
  loom_transformer *t = loom_transformer_new(
      (loom_transformer_opts){
          .d_model = E, .nhead = HEADS, .dim_feedforward = FF},
      1, 1);
  ck_assert_loom(t);
  loom_module_train(&t->base, false);
  loom_tensor *src = leaf(LOOM_SHAPE(5, E)), *tgt = leaf(LOOM_SHAPE(3, E));
  loom_tensor *src_pad = loom_zeros(LOOM_BOOL, LOOM_SHAPE(5));
  loom_tensor *tgt_pad = loom_zeros(LOOM_BOOL, LOOM_SHAPE(3));
  loom_set(src_pad, (int64_t[]){4}, 1);
  loom_set(tgt_pad, (int64_t[]){2}, 1);
  loom_transformer_masks mk = {.src_key_padding_mask = src_pad,
                               .memory_key_padding_mask = src_pad,
                               .tgt_key_padding_mask = tgt_pad,
                               .tgt_causal = true};
  loom_tensor *y = loom_transformer_forward(t, src, tgt, &mk);
  loom_transformer_masks mk1 = mk;
  mk1.src_key_padding_mask = mk1.memory_key_padding_mask =
      loom_unsqueeze(src_pad, 0);
  mk1.tgt_key_padding_mask = loom_unsqueeze(tgt_pad, 0);
  loom_tensor *y1 = loom_transformer_forward(t, loom_unsqueeze(src, 1),
                                             loom_unsqueeze(tgt, 1), &mk1);
  ck_assert_loom(y);
  ck_assert_loom(y1);
  ck_assert(loom_equal(y, loom_squeeze(y1, 1)));
  loom_transformer_free(t);
  /* a 2-D query with batched keys: an error that names the shapes */
  loom_multihead_attention *m = loom_multihead_attention_new(
      E, HEADS, (loom_multihead_attention_opts){0});
  ck_assert_loom(m);
  loom_tensor *kv = leaf(LOOM_SHAPE(5, 1, E)), *out;
  ck_assert_int_eq(
      loom_multihead_attention_forward(m, src, kv, kv, NULL, &out, NULL), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "unbatched query [5, 8]"));
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "[5, 1, 8]"));
  loom_clear_error();
  /* masks of the wrong size, named in unbatched terms */
  loom_tensor *x = leaf(LOOM_SHAPE(4, E)), *kv2 = leaf(LOOM_SHAPE(5, E));
  loom_multihead_attention_args bad = {.key_padding_mask = tgt_pad};
  ck_assert_int_eq(
      loom_multihead_attention_forward(m, x, kv2, kv2, &bad, &out, NULL), -1);
  ck_assert_ptr_nonnull(
      strstr(loom_last_error(), "key_padding_mask [3], expected (5)"));
  loom_clear_error();
  bad = (loom_multihead_attention_args){
      .attn_mask = loom_zeros(LOOM_F32, LOOM_SHAPE(1, 4, 5))};
  ck_assert_int_eq(
      loom_multihead_attention_forward(m, x, kv2, kv2, &bad, &out, NULL), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(),
                               "attn_mask [1, 4, 5], expected (4, 5) or "
                               "(2, 4, 5)"));
  loom_clear_error();
  loom_multihead_attention_free(m);
}
END_TEST

/* Options out of range are refused by every constructor with a message
 * that names each option's valid range (it had listed the values alone:
 * "transformer: d_model 6, nhead 4, feed-forward 2048, dropout 0"). */
START_TEST(test_bad_opts) {
  static const struct {
    loom_transformer_opts o;
    const char *expect;
  } bad[] = {
      {{.d_model = 6, .nhead = 4},
       "d_model 6 must be positive and divide into nhead 4 (>= 1) heads"},
      {{.d_model = 6, .nhead = 0}, "nhead 0 (>= 1)"},
      {{.d_model = 0, .nhead = 1}, "d_model 0 must be positive"},
      {{.d_model = 6, .nhead = 2, .dim_feedforward = -3},
       "dim_feedforward -3 be positive (0: 2048)"},
      {{.d_model = 6, .nhead = 2, .dropout = 1}, "dropout 1 be in [0, 1)"},
      {{.d_model = 6, .nhead = 2, .dropout = -0.5},
       "dropout -0.5 be in [0, 1)"},
      {{.d_model = 6, .nhead = 2, .dropout = NAN}, "be in [0, 1)"},
      {{.d_model = 6, .nhead = 2, .layer_norm_eps = -1},
       "transformer: d_model 6 must be positive and divide into nhead 2 "
       "(>= 1) heads, dim_feedforward 2048 be positive (0: 2048), dropout 0 "
       "be in [0, 1), layer_norm_eps -1 be > 0 (0: 1e-5)"},
      {{.d_model = 6, .nhead = 2, .layer_norm_eps = NAN},
       "layer_norm_eps nan be > 0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    for (int which = 0; which < 4; which++) {
      void *m =
          which == 0   ? (void *)loom_transformer_encoder_layer_new(bad[i].o)
          : which == 1 ? (void *)loom_transformer_decoder_layer_new(bad[i].o)
          : which == 2 ? (void *)loom_transformer_encoder_new(bad[i].o, 1, true)
                       : (void *)loom_transformer_new(bad[i].o, 1, 1);
      ck_assert_ptr_null(m);
      ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
      ck_assert_msg(strstr(loom_last_error(), bad[i].expect), "case %zu: %s", i,
                    loom_last_error());
      loom_clear_error();
    }
}
END_TEST

int main(void) {
  Suite *s = suite_create("transformer_parity");
  TCase *tc = tcase_create("torch");
  tcase_add_unchecked_fixture(tc, ref_open, ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_case, 0, N_CASES);
  tcase_add_test(tc, test_every_case_is_run);
  tcase_add_test(tc, test_causal_mask);
  tcase_add_test(tc, test_sinusoidal_table);
  tcase_add_test(tc, test_unbatched);
  tcase_add_test(tc, test_bad_opts);
  suite_add_tcase(s, tc);
  TCase *tm = tcase_create("fully masked");
  tcase_add_checked_fixture(tm, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tm, 120);
  tcase_add_test(tm, test_fully_masked_rows_sdpa);
  tcase_add_test(tm, test_fully_masked_rows_modules);
  suite_add_tcase(s, tm);
  int rc = loom_run_suite(s);
  parity_report(&mha_stat);
  parity_report(&layer_stat);
  parity_report(&stack_stat);
  return rc;
}
