/* PyTorch parity of the tensor ops: each case of
 * tests/data/ops_reference.safetensors (scripts/gen_ops_reference.py,
 * whose metadata names the torch call each case repeats) gives the inputs,
 * torch's results and the gradients of sum(out * r), which loom must
 * reproduce; float64 throughout, so to 1e-10. */
#include "parity_util.h"

#define RTOL 1e-10
#define ATOL 1e-12
#define MAX_IN 4
#define MAX_OUT 3

PARITY_REFERENCE(ref, "ops_reference.safetensors")
static parity_stat ops_stat = {"ops", 0, ""};

/* Computes a case's results from its inputs (in the order of `inputs`);
 * returns how many, or -1. */
typedef int (*case_fn)(loom_tensor *const *in, loom_tensor **out);

typedef struct {
  const char *name;
  const char *inputs[MAX_IN]; /* NULL-terminated when fewer */
  case_fn fn;
} ops_case;

#define ONE(expr)                                                              \
  do {                                                                         \
    out[0] = (expr);                                                           \
    return out[0] ? 1 : -1;                                                    \
  } while (0)
#define FN(name) static int name(loom_tensor *const *in, loom_tensor **out)

/* ---- rearranging ---- */
FN(flip_two_dims) { ONE(loom_flip(in[0], (int[]){0, 2}, 2)); }
FN(flip_last) { ONE(loom_flip(in[0], (int[]){-1}, 1)); }
FN(roll_two_dims) {
  ONE(loom_roll(in[0], (int64_t[]){2, -7}, (int[]){0, 1}, 2));
}
FN(roll_flat) { ONE(loom_roll(in[0], (int64_t[]){5}, NULL, 1)); }
FN(roll_same_dim_twice) {
  ONE(loom_roll(in[0], (int64_t[]){3, -1}, (int[]){0, 0}, 2));
}

/* ---- padding and repeating ---- */
#define PAD(...)                                                               \
  (int64_t[]){__VA_ARGS__},                                                    \
      (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
FN(pad_constant_two_dims) {
  ONE(loom_pad(in[0], PAD(1, 2, -1, 3), LOOM_PAD_CONSTANT, 0.5));
}
FN(pad_constant_crop) {
  ONE(loom_pad(in[0], PAD(-2, 1), LOOM_PAD_CONSTANT, -1));
}
FN(pad_reflect_two_dims) {
  ONE(loom_pad(in[0], PAD(2, 1, 3, 0), LOOM_PAD_REFLECT, 0));
}
FN(pad_reflect_crop) { ONE(loom_pad(in[0], PAD(-2, 4), LOOM_PAD_REFLECT, 0)); }
FN(pad_replicate_three_dims) {
  ONE(loom_pad(in[0], PAD(1, 2, 0, 3, 2, 1), LOOM_PAD_REPLICATE, 0));
}
FN(pad_replicate_crop) {
  ONE(loom_pad(in[0], PAD(-3, 5), LOOM_PAD_REPLICATE, 0));
}
FN(pad_circular) {
  ONE(loom_pad(in[0], PAD(1, 3, 4, 0), LOOM_PAD_CIRCULAR, 0));
}
FN(repeat_new_dim) { ONE(loom_repeat(in[0], 3, (int64_t[]){2, 1, 3})); }
FN(repeat_zero) { ONE(loom_repeat(in[0], 2, (int64_t[]){0, 2})); }
FN(tile_fewer_reps) { ONE(loom_tile(in[0], 1, (int64_t[]){2})); }
FN(tile_more_reps) { ONE(loom_tile(in[0], 3, (int64_t[]){2, 1, 2})); }

/* ---- masks ---- */
FN(tril_batched) { ONE(loom_tril(in[0], -1)); }
FN(triu_wide) { ONE(loom_triu(in[0], 2)); }
FN(tril_past_corner) { ONE(loom_tril(in[0], 10)); }
FN(triu_below) { ONE(loom_triu(in[0], -2)); }
FN(masked_select) { ONE(loom_masked_select(in[0], in[1])); }

/* ---- scans and sorting ---- */
FN(cumsum_middle_dim) { ONE(loom_cumsum(in[0], -2)); }
FN(cumsum_dim1) { ONE(loom_cumsum(in[0], 1)); }
FN(cumsum_int64) { ONE(loom_cumsum(in[0], 0)); }
FN(cumprod_signs) { ONE(loom_cumprod(in[0], 1)); }
FN(cumprod_zeros) { ONE(loom_cumprod(in[0], -1)); }
FN(sort_descending_ties) {
  out[0] = loom_sort(in[0], 0, true, &out[1]);
  return out[0] ? 2 : -1;
}
FN(sort_nan) {
  out[0] = loom_sort(in[0], -1, false, &out[1]);
  return out[0] ? 2 : -1;
}
FN(argsort_int64) { ONE(loom_argsort(in[0], 0, false)); }
FN(topk_largest) {
  out[0] = loom_topk(in[0], 3, -1, true, &out[1]);
  return out[0] ? 2 : -1;
}
FN(topk_smallest_dim0) {
  out[0] = loom_topk(in[0], 2, 0, false, &out[1]);
  return out[0] ? 2 : -1;
}

/* ---- int32 ---- */
#define I32_THREE(a, b, c)                                                     \
  do {                                                                         \
    out[0] = (a), out[1] = (b), out[2] = (c);                                  \
    return out[0] && out[1] && out[2] ? 3 : -1;                                \
  } while (0)
FN(int32_add_wraps) { ONE(loom_add(in[0], in[1])); }
FN(int32_sub_wraps) { ONE(loom_sub(in[0], in[1])); }
FN(int32_mul_wraps) { ONE(loom_mul(in[0], in[1])); }
FN(int32_neg_abs_square) {
  I32_THREE(loom_neg(in[0]), loom_abs(in[0]), loom_square(in[0]));
}
FN(int32_scalars) {
  I32_THREE(loom_add_scalar(in[0], 0x1p40 + 3), loom_mul_scalar(in[0], 3),
            loom_rsub_scalar(in[0], 5));
}
FN(int32_clamp) { ONE(loom_clamp(in[0], -10, 50000)); }
FN(int32_binary) { ONE(loom_add(in[0], in[1])); }
FN(int32_plus_int64_0dim) {
  ONE(loom_add(in[0], loom_scalar(LOOM_I64, 0x1p33 + 1)));
}
FN(int32_div) {
  out[0] = loom_div(in[0], loom_from_array(LOOM_I32, (int32_t[]){3, -7, 2, 5},
                                           LOOM_SHAPE(4)));
  out[1] = loom_div_scalar(in[0], 4);
  return out[0] && out[1] ? 2 : -1;
}
FN(int32_compare) {
  out[0] = loom_lt(in[0], loom_from_array(LOOM_I32, (int32_t[]){0, 5, -3, 2},
                                          LOOM_SHAPE(4)));
  out[1] = loom_eq_scalar(in[0], 3);
  return out[0] && out[1] ? 2 : -1;
}
FN(int32_sum_prod) {
  I32_THREE(loom_sum_all(in[0]), loom_sum(in[0], (int[]){1}, 1, false),
            loom_prod(in[0], (int[]){0}, 1, false));
}
FN(int32_max_dim) {
  out[0] = loom_max(in[0], 1, false, &out[1]);
  return out[0] ? 2 : -1;
}
FN(int32_min_argmax) {
  I32_THREE(loom_amin(in[0], NULL, 0, false), loom_argmax(in[0], 0, false),
            loom_maximum(in[0], in[1]));
}
FN(int32_cumsum) { ONE(loom_cumsum(in[0], 1)); }
FN(int32_sort) {
  out[0] = loom_sort(in[0], -1, true, &out[1]);
  return out[0] ? 2 : -1;
}
FN(int32_argsort_dim0) { ONE(loom_argsort(in[0], 0, false)); }
FN(int32_topk) {
  out[0] = loom_topk(in[0], 3, -1, true, &out[1]);
  return out[0] ? 2 : -1;
}
FN(int32_convert) { ONE(loom_to_dtype(in[0], LOOM_I32)); }
FN(int32_to_others) {
  I32_THREE(loom_to_dtype(in[0], LOOM_F64), loom_to_dtype(in[0], LOOM_I64),
            loom_to_dtype(in[0], LOOM_F32));
}
FN(int32_embedding) { ONE(loom_embedding(in[0], in[1], -1)); }
FN(int32_index_select) { ONE(loom_index_select(in[0], 1, in[1])); }
FN(int32_index_add) { ONE(loom_index_add(in[0], 0, in[1], in[2], 2)); }

/* ---- convolution ---- */
FN(conv1d_groups) {
  ONE(loom_conv1d(in[0], in[1], in[2],
                  (loom_conv1d_opts){
                      .stride = 2, .padding = 3, .dilation = 2, .groups = 2}));
}
FN(conv1d_unbatched) {
  ONE(loom_conv1d(in[0], in[1], NULL, (loom_conv1d_opts){.padding = 1}));
}
FN(conv1d_causal) {
  ONE(loom_conv1d(in[0], in[1], in[2],
                  (loom_conv1d_opts){.dilation = 2, .causal = true}));
}
FN(conv1d_causal_strided) {
  ONE(loom_conv1d(in[0], in[1], NULL,
                  (loom_conv1d_opts){.stride = 3, .causal = true}));
}

/* ---- unfold and fold ---- */
FN(unfold_strided_dilated) {
  ONE(loom_unfold(in[0], (loom_fold_opts){.kernel = {2, 3},
                                          .dilation = {2, 1},
                                          .padding = {1, 2},
                                          .stride = {1, 2}}));
}
FN(unfold_unbatched) {
  ONE(loom_unfold(
      in[0],
      (loom_fold_opts){.kernel = {3, 3}, .padding = {1, 1}, .stride = {2, 2}}));
}
FN(fold_overlapping) {
  ONE(loom_fold(in[0], 5, 4,
                (loom_fold_opts){
                    .kernel = {3, 2}, .dilation = {1, 2}, .padding = {1, 0}}));
}
FN(fold_unbatched_strided) {
  ONE(loom_fold(
      in[0], 6, 5,
      (loom_fold_opts){.kernel = {2, 2}, .padding = {1, 1}, .stride = {2, 3}}));
}

/* ---- einsum ---- */
#define EINSUM(name, eq, n)                                                    \
  FN(name) { ONE(loom_einsum(eq, in, n)); }
EINSUM(einsum_matmul, "ij,jk->ik", 2)
EINSUM(einsum_batched_transposed, "bij,bkj->bik", 2)
EINSUM(einsum_implicit, "kj,ji", 2)
EINSUM(einsum_implicit_case, "aB,Bc", 2)
EINSUM(einsum_diagonal, "ii->i", 1)
EINSUM(einsum_trace, "ii", 1)
EINSUM(einsum_batch_diagonal, "iji->j", 1)
EINSUM(einsum_outer, "i,j->ij", 2)
EINSUM(einsum_sum_all, "ijk->", 1)
EINSUM(einsum_three, "ij,jk,kl->il", 3)
EINSUM(einsum_bilinear, "bn,anm,bm->ba", 3)
EINSUM(einsum_attention, "bhqd,bhkd->bhqk", 2)
EINSUM(einsum_ellipsis, "...ij,...jk->...ik", 2)
EINSUM(einsum_ellipsis_broadcast, "...i,...i", 2)
EINSUM(einsum_ellipsis_summed, " ...ij -> j ", 1)
EINSUM(einsum_size1_broadcast, "ij,j->ij", 2)
EINSUM(einsum_shared_kept, "ij,ij,j->i", 3)
EINSUM(einsum_permute, "abc->cab", 1)

#define X                                                                      \
  { "x" }
static const ops_case cases[] = {
    {"flip_two_dims", X, flip_two_dims},
    {"flip_last", X, flip_last},
    {"roll_two_dims", X, roll_two_dims},
    {"roll_flat", X, roll_flat},
    {"roll_same_dim_twice", X, roll_same_dim_twice},
    {"pad_constant_two_dims", X, pad_constant_two_dims},
    {"pad_constant_crop", X, pad_constant_crop},
    {"pad_reflect_two_dims", X, pad_reflect_two_dims},
    {"pad_reflect_crop", X, pad_reflect_crop},
    {"pad_replicate_three_dims", X, pad_replicate_three_dims},
    {"pad_replicate_crop", X, pad_replicate_crop},
    {"pad_circular", X, pad_circular},
    {"repeat_new_dim", X, repeat_new_dim},
    {"repeat_zero", X, repeat_zero},
    {"tile_fewer_reps", X, tile_fewer_reps},
    {"tile_more_reps", X, tile_more_reps},
    {"tril_batched", X, tril_batched},
    {"triu_wide", X, triu_wide},
    {"tril_past_corner", X, tril_past_corner},
    {"triu_below", X, triu_below},
    {"masked_select_mask_broadcast", {"x", "mask"}, masked_select},
    {"masked_select_input_broadcast", {"x", "mask"}, masked_select},
    {"cumsum_middle_dim", X, cumsum_middle_dim},
    {"cumsum_float32", X, cumsum_dim1},
    {"cumsum_int64", X, cumsum_int64},
    {"cumprod_signs", X, cumprod_signs},
    {"cumprod_zeros", X, cumprod_zeros},
    {"sort_descending_ties", X, sort_descending_ties},
    {"sort_nan", X, sort_nan},
    {"argsort_int64_beyond_double", X, argsort_int64},
    {"topk_largest", X, topk_largest},
    {"topk_smallest_dim0", X, topk_smallest_dim0},
    {"int32_add_wraps", {"a", "b"}, int32_add_wraps},
    {"int32_sub_wraps", {"a", "b"}, int32_sub_wraps},
    {"int32_mul_wraps", {"a", "b"}, int32_mul_wraps},
    {"int32_neg_abs_square", {"a"}, int32_neg_abs_square},
    {"int32_scalars", {"a"}, int32_scalars},
    {"int32_clamp", {"a"}, int32_clamp},
    {"int32_plus_int64", {"a", "b"}, int32_binary},
    {"int32_plus_float64", {"a", "x"}, int32_binary},
    {"int32_plus_uint8", {"a", "u"}, int32_binary},
    {"int32_plus_bool", {"a", "m"}, int32_binary},
    {"int32_plus_int64_0dim", {"a"}, int32_plus_int64_0dim},
    {"int32_div", {"a"}, int32_div},
    {"int32_compare", {"a"}, int32_compare},
    {"int32_sum_prod", {"a"}, int32_sum_prod},
    {"int32_max_dim", {"a"}, int32_max_dim},
    {"int32_min_argmax", {"a", "b"}, int32_min_argmax},
    {"int32_cumsum", {"a"}, int32_cumsum},
    {"int32_sort", {"a"}, int32_sort},
    {"int32_argsort_dim0", {"a"}, int32_argsort_dim0},
    {"int32_topk", {"a"}, int32_topk},
    {"int32_from_float64", {"x"}, int32_convert},
    {"int32_from_int64_wraps", {"n"}, int32_convert},
    {"int32_to_others", {"a"}, int32_to_others},
    {"int32_embedding", {"w", "ix"}, int32_embedding},
    {"int32_index_select", {"x", "ix"}, int32_index_select},
    {"int32_index_add", {"x", "ix", "s"}, int32_index_add},
    {"conv1d_groups", {"x", "w", "b"}, conv1d_groups},
    {"conv1d_unbatched", {"x", "w"}, conv1d_unbatched},
    {"conv1d_causal", {"x", "w", "b"}, conv1d_causal},
    {"conv1d_causal_strided", {"x", "w"}, conv1d_causal_strided},
    {"unfold_strided_dilated", X, unfold_strided_dilated},
    {"unfold_unbatched", X, unfold_unbatched},
    {"fold_overlapping", X, fold_overlapping},
    {"fold_unbatched_strided", X, fold_unbatched_strided},
    {"einsum_matmul", {"x0", "x1"}, einsum_matmul},
    {"einsum_batched_transposed", {"x0", "x1"}, einsum_batched_transposed},
    {"einsum_implicit", {"x0", "x1"}, einsum_implicit},
    {"einsum_implicit_case", {"x0", "x1"}, einsum_implicit_case},
    {"einsum_diagonal", {"x0"}, einsum_diagonal},
    {"einsum_trace", {"x0"}, einsum_trace},
    {"einsum_batch_diagonal", {"x0"}, einsum_batch_diagonal},
    {"einsum_outer", {"x0", "x1"}, einsum_outer},
    {"einsum_sum_all", {"x0"}, einsum_sum_all},
    {"einsum_three", {"x0", "x1", "x2"}, einsum_three},
    {"einsum_bilinear", {"x0", "x1", "x2"}, einsum_bilinear},
    {"einsum_attention", {"x0", "x1"}, einsum_attention},
    {"einsum_ellipsis", {"x0", "x1"}, einsum_ellipsis},
    {"einsum_ellipsis_broadcast", {"x0", "x1"}, einsum_ellipsis_broadcast},
    {"einsum_ellipsis_summed", {"x0"}, einsum_ellipsis_summed},
    {"einsum_size1_broadcast", {"x0", "x1"}, einsum_size1_broadcast},
    {"einsum_shared_kept", {"x0", "x1", "x2"}, einsum_shared_kept},
    {"einsum_permute", {"x0"}, einsum_permute},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* parity_check, with NaN where torch has NaN (sorting puts them in place). */
static void compare(const loom_tensor *got, const loom_tensor *want,
                    const char *what) {
  ck_assert_msg(got != NULL, "%s: no tensor (loom error: %s)", what,
                loom_last_error());
  loom_tensor *nan = loom_ne(want, want);
  ck_assert_msg(loom_equal(loom_ne(got, got), nan), "%s: NaN elsewhere", what);
  parity_check(&ops_stat, loom_masked_fill(got, nan, 0),
               loom_masked_fill(want, nan, 0), RTOL, ATOL, what);
}

START_TEST(test_case) {
  const ops_case *c = &cases[_i];
  char what[160], suffix[32];
  loom_tensor *in[MAX_IN] = {NULL}, *out[MAX_OUT] = {NULL};
  int n_in = 0;
  for (; n_in < MAX_IN && c->inputs[n_in]; n_in++) {
    snprintf(suffix, sizeof suffix, ".in.%s", c->inputs[n_in]);
    in[n_in] = parity_leaf(parity_ref(ref, c->name, suffix));
  }
  snprintf(what, sizeof what, "%s.in.", c->name);
  ck_assert_int_eq(parity_count(ref, what, ""), n_in);
  int n_out = c->fn(in, out);
  ck_assert_msg(n_out > 0, "%s: %s", c->name, loom_last_error());
  for (int i = 0; i < n_out; i++) {
    snprintf(suffix, sizeof suffix, i ? ".out%d" : ".out", i);
    snprintf(what, sizeof what, "%s%s", c->name, suffix);
    compare(out[i], parity_ref(ref, c->name, suffix), what);
    ck_assert_int_eq(loom_dtype_of(out[i]),
                     loom_dtype_of(parity_ref(ref, c->name, suffix)));
  }
  snprintf(what, sizeof what, "%s.out", c->name);
  ck_assert_int_eq(parity_count(ref, what, ""), n_out);
  loom_tensor *r = parity_find(ref, c->name, ".r");
  if (!r)
    return;
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(out[0], r))), 0);
  int n_grad = 0;
  for (int i = 0; i < n_in; i++) {
    snprintf(suffix, sizeof suffix, ".grad.%s", c->inputs[i]);
    loom_tensor *want = parity_find(ref, c->name, suffix);
    if (!want)
      continue;
    snprintf(what, sizeof what, "%s%s", c->name, suffix);
    compare(loom_grad(in[i]), want, what);
    n_grad++;
  }
  snprintf(what, sizeof what, "%s.grad.", c->name);
  ck_assert_int_eq(parity_count(ref, what, ""), n_grad);
}
END_TEST

/* Every case in the file has a row in the table above. */
START_TEST(test_every_case_is_run) {
  ck_assert_int_eq(parity_count(ref, "", ".out"), N_CASES);
  for (int i = 0; i < N_CASES; i++)
    ck_assert_msg(parity_find(ref, cases[i].name, ".out") != NULL,
                  "no case '%s' in the file", cases[i].name);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ops_parity");
  TCase *tc = tcase_create("ops");
  tcase_add_unchecked_fixture(tc, ref_open, ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_case, 0, N_CASES);
  tcase_add_test(tc, test_every_case_is_run);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  parity_report(&ops_stat);
  return rc;
}
