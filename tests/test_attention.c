/* The fused attention op (loom_fused_attention) against the composition of
 * public ops it replaces, forward and backward: masks (none, additive with
 * -inf, broadcast padding rows), the causal limit, dropout with the same
 * generator state (the same mask), strided heads as multi-head attention
 * passes them, float64 and float32; the same bits for 1 and 2 threads; and
 * loom_scaled_dot_product_attention, which takes the fused path, still
 * equal to the composition; the op keeps nothing of the weights' size
 * between forward and backward, and the dropout mask it makes again from
 * its key, part by part, is loom_dropout's. The op's gradcheck and
 * gradgradcheck are in test_gradcheck.c. */
#include "check_util.h"
#include "../tensor/kernels.h"

#include <string.h>

/* softmax(q k^T scale + mask, causal) -> dropout -> @ v, in public ops. */
static loom_tensor *composed(const loom_tensor *q, const loom_tensor *k,
                             const loom_tensor *v, const loom_tensor *mask,
                             bool causal, double scale, double p, loom_rng *g) {
  loom_tensor *s =
      loom_mul_scalar(loom_matmul(q, loom_transpose(k, -2, -1)), scale);
  if (mask)
    s = loom_add(s, mask);
  if (causal) {
    int64_t L = loom_size(q, -2), S = loom_size(k, -2);
    loom_tensor *c = loom_zeros(LOOM_BOOL, LOOM_SHAPE(L, S));
    for (int64_t i = 0; i < L; i++)
      for (int64_t j = i + 1; j < S; j++)
        loom_set(c, (int64_t[]){i, j}, 1);
    s = loom_masked_fill(s, c, -INFINITY);
  }
  loom_tensor *w = loom_softmax(s, -1);
  if (p > 0)
    w = loom_dropout(w, p, true, g);
  return loom_matmul(w, v);
}

typedef struct {
  loom_tensor *out, *dq, *dk, *dv;
} result;

/* How q, k, v are stored: (B, H, L, E) as they are, or as multi-head
 * attention's head split leaves them, views of (B, L, H, E) (batch first)
 * or of (L, B, H, E) (sequence first). */
enum { PLAIN, BATCH_FIRST, SEQ_FIRST };
static const int to_heads[3][4] = {{0, 1, 2, 3}, {0, 2, 1, 3}, {1, 2, 0, 3}};

/* Output and input gradients of sum(out * weight) for leaf copies of q, k,
 * v, viewed as (B, H, L, E) from their layout. The fused op writes the
 * output and the gradients in the inputs' memory order, so the head merge
 * (the inverse permutation) is contiguous. */
static result run(bool fused, const loom_tensor *q0, const loom_tensor *k0,
                  const loom_tensor *v0, const loom_tensor *mask, bool causal,
                  double p, int layout) {
  loom_tensor *leaf[3];
  const loom_tensor *src[3] = {q0, k0, v0};
  for (int i = 0; i < 3; i++)
    leaf[i] = loom_set_requires_grad(loom_clone(src[i]), true);
  const loom_tensor *q = leaf[0], *k = leaf[1], *v = leaf[2];
  q = loom_permute(q, to_heads[layout]);
  k = loom_permute(k, to_heads[layout]);
  v = loom_permute(v, to_heads[layout]);
  double scale = 1 / sqrt((double)loom_size(q, -1));
  loom_rng *g = loom_rng_new(11);
  loom_tensor *out =
      fused ? loom_fused_attention(q, k, v, mask, causal, scale, p, g)
            : composed(q, k, v, mask, causal, scale, p, g);
  loom_rng_free(g);
  ck_assert_loom(out);
  if (fused) {
    int back[4];
    for (int d = 0; d < 4; d++)
      back[to_heads[layout][d]] = d;
    ck_assert(loom_is_contiguous(loom_permute(out, back)));
  }
  loom_manual_seed(5); /* the same weight in both runs */
  loom_tensor *weight = loom_randn(NULL, loom_dtype_of(out), 0, 1,
                                   loom_ndim(out), loom_shape(out));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(out, weight))), 0);
  result r = {out, loom_grad(leaf[0]), loom_grad(leaf[1]), loom_grad(leaf[2])};
  ck_assert_loom(r.dq);
  ck_assert_loom(r.dk);
  ck_assert_loom(r.dv);
  return r;
}

static void check_close(const loom_tensor *a, const loom_tensor *b, double tol,
                        const char *what) {
  ck_assert_msg(loom_allclose(a, b, tol, tol), "%s differs (tol %g)", what,
                tol);
}

static void compare(loom_dtype dt, int64_t B, int64_t H, int64_t L, int64_t S,
                    int64_t E, int64_t Ev, int mask_kind, bool causal, double p,
                    int layout) {
  loom_manual_seed(1);
  /* the stored shapes: (B, H, L, E) through to_heads[layout]'s inverse */
  int64_t heads_q[4] = {B, H, L, E}, heads_k[4] = {B, H, S, E},
          heads_v[4] = {B, H, S, Ev}, qs[4], ks[4], vs[4];
  for (int d = 0; d < 4; d++) {
    qs[to_heads[layout][d]] = heads_q[d];
    ks[to_heads[layout][d]] = heads_k[d];
    vs[to_heads[layout][d]] = heads_v[d];
  }
  loom_tensor *q = loom_randn(NULL, dt, 0, 1, 4, qs);
  loom_tensor *k = loom_randn(NULL, dt, 0, 1, 4, ks);
  loom_tensor *v = loom_randn(NULL, dt, 0, 1, 4, vs);
  loom_tensor *mask = NULL;
  if (mask_kind == 1) { /* additive (L, S), one blocked key per row */
    mask = loom_randn(NULL, dt, 0, 1, LOOM_SHAPE(L, S));
    for (int64_t i = 0; i < L; i++)
      loom_set(mask, (int64_t[]){i, (i * 3) % S}, -INFINITY);
  } else if (mask_kind == 2) { /* key padding (B, 1, 1, S) */
    mask = loom_zeros(dt, LOOM_SHAPE(B, 1, 1, S));
    for (int64_t b = 0; b < B; b++)
      for (int64_t j = S - 1 - b; j < S && j >= 1; j++)
        loom_set(mask, (int64_t[]){b, 0, 0, j}, -INFINITY);
  }
  result f = run(true, q, k, v, mask, causal, p, layout);
  result c = run(false, q, k, v, mask, causal, p, layout);
  double tol = dt == LOOM_F64 ? 1e-12 : 2e-5;
  check_close(f.out, c.out, tol, "output");
  check_close(f.dq, c.dq, tol, "dq");
  check_close(f.dk, c.dk, tol, "dk");
  check_close(f.dv, c.dv, tol, "dv");
}

START_TEST(test_fused_equals_composition) {
  for (int dt = 0; dt < 2; dt++) {
    loom_dtype t = dt ? LOOM_F32 : LOOM_F64;
    for (int mask_kind = 0; mask_kind < 3; mask_kind++)
      for (int causal = 0; causal < 2; causal++) {
        compare(t, 2, 3, 5, 7, 4, 6, mask_kind, causal, 0, PLAIN);
        compare(t, 2, 3, 6, 6, 8, 8, mask_kind, causal, 0.3, BATCH_FIRST);
        compare(t, 3, 2, 4, 5, 8, 8, mask_kind, causal, 0.2, SEQ_FIRST);
      }
    compare(t, 1, 1, 1, 1, 3, 2, 0, true, 0, PLAIN);
  }
}
END_TEST

/* q, k and v as the three parts of one projection (..., 3 H E), chunked
 * and split into heads by views as multi-head attention does: the fused
 * op's backward then writes their gradients into one block laid out as the
 * projection, which the chunk's backward takes without a copy. The
 * projection's gradient equals the composition's, with the parts in any
 * order (out of order they are not one block's, and take the copy). */
static loom_tensor *chunked_run(bool fused, const loom_tensor *qkv0,
                                const int *order, int layout,
                                loom_tensor **grad) {
  int64_t A = loom_size(qkv0, 0), Bn = loom_size(qkv0, 1), H = 2, E = 3;
  loom_tensor *leaf = loom_set_requires_grad(loom_clone(qkv0), true), *p[3];
  ck_assert_int_eq(loom_chunk(leaf, 3, -1, p, 3), 3);
  loom_tensor *h[3];
  for (int i = 0; i < 3; i++)
    h[i] = loom_permute(loom_reshape(p[order[i]], LOOM_SHAPE(A, Bn, H, E)),
                        to_heads[layout]);
  double scale = 1 / sqrt((double)E);
  loom_tensor *out =
      fused
          ? loom_fused_attention(h[0], h[1], h[2], NULL, false, scale, 0, NULL)
          : composed(h[0], h[1], h[2], NULL, false, scale, 0, NULL);
  ck_assert_loom(out);
  loom_manual_seed(5);
  loom_tensor *weight =
      loom_randn(NULL, LOOM_F64, 0, 1, loom_ndim(out), loom_shape(out));
  ck_assert_int_eq(loom_backward(loom_sum_all(loom_mul(out, weight))), 0);
  *grad = loom_grad(leaf);
  ck_assert_loom(*grad);
  return out;
}

START_TEST(test_chunked_projection) {
  static const int orders[3][3] = {{0, 1, 2}, {2, 0, 1}, {1, 0, 2}};
  for (int layout = BATCH_FIRST; layout <= SEQ_FIRST; layout++)
    for (int o = 0; o < 3; o++) {
      loom_manual_seed(3);
      /* (B, L, 3 H E) batch first, (L, B, 3 H E) sequence first */
      loom_tensor *qkv = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 5, 18));
      loom_tensor *gf, *gc;
      loom_tensor *f = chunked_run(true, qkv, orders[o], layout, &gf);
      loom_tensor *c = chunked_run(false, qkv, orders[o], layout, &gc);
      check_close(f, c, 1e-12, "output");
      check_close(gf, gc, 1e-12, "projection's gradient");
    }
}
END_TEST

/* A row whose keys are all masked gives zeros, as the composition does. */
START_TEST(test_fully_masked_row) {
  loom_tensor *q = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(1, 2, 3));
  loom_tensor *k = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(1, 4, 3));
  loom_tensor *v = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(1, 4, 3));
  loom_tensor *mask = loom_zeros(LOOM_F64, LOOM_SHAPE(2, 4));
  for (int64_t j = 0; j < 4; j++)
    loom_set(mask, (int64_t[]){1, j}, -INFINITY);
  loom_tensor *out = loom_fused_attention(q, k, v, mask, false, 0.5, 0, NULL);
  ck_assert_loom(out);
  for (int64_t j = 0; j < 3; j++)
    ck_assert(loom_get(out, (int64_t[]){0, 1, j}) == 0);
  check_close(out, composed(q, k, v, mask, false, 0.5, 0, NULL), 1e-12,
              "masked row");
}
END_TEST

/* No queries or no keys: empty or zero outputs, as the composition gives,
 * and gradients of the same shapes. */
START_TEST(test_empty) {
  const int64_t sizes[2][2] = {{0, 3}, {4, 0}}; /* L, S */
  for (int c = 0; c < 2; c++) {
    int64_t L = sizes[c][0], S = sizes[c][1];
    loom_tensor *in[3] = {
        loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, L, 3)),
        loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, S, 3)),
        loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, S, 5))};
    for (int i = 0; i < 3; i++)
      loom_set_requires_grad(in[i], true);
    loom_tensor *out =
        loom_fused_attention(in[0], in[1], in[2], NULL, true, 1, 0.5, NULL);
    ck_assert_loom(out);
    check_close(out, composed(in[0], in[1], in[2], NULL, true, 1, 0, NULL), 0,
                "empty");
    ck_assert_int_eq(loom_backward(loom_sum_all(out)), 0);
    for (int i = 0; i < 3; i++)
      ck_assert(loom_same_shape(loom_grad(in[i]), in[i]));
  }
}
END_TEST

START_TEST(test_threads_bitwise) {
  loom_tensor *res[2][4];
  for (int t = 0; t < 2; t++) {
    loom_set_num_threads(t + 1);
    loom_manual_seed(3);
    loom_tensor *q = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 8, 64, 32));
    loom_tensor *k = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 8, 64, 32));
    loom_tensor *v = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(4, 8, 64, 32));
    result r = run(true, q, k, v, NULL, true, 0.1, PLAIN);
    res[t][0] = r.out;
    res[t][1] = r.dq;
    res[t][2] = r.dk;
    res[t][3] = r.dv;
  }
  loom_set_num_threads(0);
  for (int i = 0; i < 4; i++)
    ck_assert(loom_equal(res[0][i], res[1][i]));
}
END_TEST

/* loom_scaled_dot_product_attention takes the fused path when it can and
 * stays equal to the composition (bool masks become -inf). */
START_TEST(test_scaled_dot_product_attention_path) {
  loom_manual_seed(2);
  loom_tensor *q = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2, 5, 4));
  loom_tensor *k = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2, 6, 4));
  loom_tensor *v = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(2, 2, 6, 3));
  loom_tensor *pad = loom_zeros(LOOM_BOOL, LOOM_SHAPE(2, 1, 1, 6));
  loom_set(pad, (int64_t[]){1, 0, 0, 5}, 1);
  loom_tensor *additive = loom_masked_fill(
      loom_zeros(LOOM_F64, LOOM_SHAPE(2, 1, 1, 6)), pad, -INFINITY);
  loom_tensor *a =
      loom_scaled_dot_product_attention(q, k, v, pad, true, 0, NULL, NULL);
  loom_tensor *b = composed(q, k, v, additive, true, 0.5, 0, NULL);
  ck_assert_loom(a);
  check_close(a, b, 1e-12, "sdpa");
}
END_TEST

/* Between forward and backward the op keeps its inputs and output, not
 * the (B, H, L, S) weights or dropout mask: the composition keeps several
 * of them. */
START_TEST(test_keeps_no_weights) {
  int64_t B = 2, H = 4, L = 64, E = 8, weights = B * H * L * L * 4;
  for (int fused = 0; fused < 2; fused++) {
    loom_manual_seed(4);
    loom_tensor *in[3];
    for (int i = 0; i < 3; i++)
      in[i] = loom_set_requires_grad(
          loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(B, H, L, E)), true);
    loom_rng *g = loom_rng_new(2);
    int64_t before = loom_debug_live_bytes();
    loom_scope *s = loom_scope_begin();
    loom_tensor *out =
        fused ? loom_fused_attention(in[0], in[1], in[2], NULL, true, 0.3, 0.1,
                                     g)
              : composed(in[0], in[1], in[2], NULL, true, 0.3, 0.1, g);
    loom_tensor *loss = loom_keep(loom_sum_all(out));
    loom_scope_end(s);
    int64_t kept = loom_debug_live_bytes() - before;
    printf("%s: kept %lld bytes; the weights are %lld\n",
           fused ? "fused" : "composed", (long long)kept, (long long)weights);
    if (fused)
      ck_assert_int_lt(kept, weights / 4);
    else
      ck_assert_int_ge(kept, weights);
    ck_assert_int_eq(loom_backward(loss), 0);
    ck_assert_loom(loom_grad(in[0]));
    loom_release(loss);
    loom_rng_free(g);
  }
}
END_TEST

/* Any part of a dropout mask, made again from the key (odd and even
 * starts and lengths), is the part of the mask loom_dropout drew. */
START_TEST(test_mask_parts) {
  int64_t n = 1001;
  loom_rng *g = loom_rng_new(9);
  loom_tensor *kept = loom_dropout(loom_ones(LOOM_F32, LOOM_SHAPE(n)), 0.37,
                                   true, g);
  ck_assert_loom(kept);
  loom_rng_seed(g, 9);
  uint64_t key = loom__dropout_key(g);
  loom_rng_free(g);
  const float *k = loom_data_f32(kept);
  uint8_t part[1001];
  int64_t starts[] = {0, 1, 2, 7, 500, 999, 1000, 1001};
  for (size_t a = 0; a < sizeof starts / sizeof *starts; a++)
    for (int64_t len = 0; starts[a] + len <= n; len += len < 4 ? 1 : 97) {
      memset(part, 7, sizeof part);
      loom__dropout_mask(part, starts[a], len, key, 0.37);
      for (int64_t i = 0; i < len; i++)
        ck_assert_int_eq(part[i], k[starts[a] + i] != 0);
      if (starts[a] + len < n)
        ck_assert_int_eq(part[len], 7); /* nothing past the part */
    }
}
END_TEST

/* Backward computes the weights and the dropout mask again; it must get
 * the forward's bits. With v the identity (S = Ev) the output is the
 * dropped weights exactly, and with the output's gradient the identity
 * (L = Ev) dv is their transpose exactly, as backward made them: any
 * difference between the two passes (a rounding, a mask part from the
 * wrong offset) shows. L x S odd, so batch elements' mask parts start at
 * odd elements; 1 and 2 threads. */
START_TEST(test_backward_sees_forward_weights) {
  int64_t B = 2, H = 3, L = 7;
  for (int dt = 0; dt < 2; dt++)
    for (int t = 1; t <= 2; t++)
      for (int drop = 0; drop < 2; drop++) {
        loom_dtype d = dt ? LOOM_F64 : LOOM_F32;
        loom_set_num_threads(t);
        loom_manual_seed(21);
        loom_tensor *q = loom_set_requires_grad(
            loom_randn(NULL, d, 0, 2, LOOM_SHAPE(B, H, L, 5)), true);
        loom_tensor *k = loom_set_requires_grad(
            loom_randn(NULL, d, 0, 2, LOOM_SHAPE(B, H, L, 5)), true);
        loom_tensor *eye = loom_eye(d, L, L);
        loom_tensor *v = loom_set_requires_grad(
            loom_contiguous(loom_expand(eye, LOOM_SHAPE(B, H, L, L))), true);
        loom_tensor *mask = loom_randn(NULL, d, 0, 1, LOOM_SHAPE(L, L));
        loom_set(mask, (int64_t[]){2, 0}, -INFINITY);
        loom_rng *g = loom_rng_new(3);
        loom_tensor *out =
            loom_fused_attention(q, k, v, mask, true, 0.4, drop ? 0.3 : 0, g);
        loom_rng_free(g);
        ck_assert_loom(out);
        ck_assert_int_eq(
            loom_backward_with(out, loom_expand(eye, LOOM_SHAPE(B, H, L, L)),
                               NULL),
            0);
        ck_assert_msg(loom_equal(loom_grad(v), loom_transpose(out, -2, -1)),
                      "dtype %d, %d threads, dropout %d: backward's weights "
                      "are not forward's",
                      dt, t, drop);
      }
  loom_set_num_threads(0);
}
END_TEST

START_TEST(test_errors) {
  loom_tensor *q = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 3, 4));
  loom_tensor *k = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 5, 4));
  loom_tensor *v = loom_zeros(LOOM_F32, LOOM_SHAPE(2, 5, 2));
  ck_assert_ptr_null(loom_fused_attention(q, v, v, NULL, false, 1, 0, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_attention(
      q, k, v, loom_zeros(LOOM_F32, LOOM_SHAPE(3, 4)), false, 1, 0, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  loom_clear_error();
  ck_assert_ptr_null(
      loom_fused_attention(q, k, loom_zeros(LOOM_F64, LOOM_SHAPE(2, 5, 2)),
                           NULL, false, 1, 0, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_attention(q, k, v, NULL, false, 1, 1, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  loom_tensor *m =
      loom_set_requires_grad(loom_zeros(LOOM_F32, LOOM_SHAPE(3, 5)), true);
  ck_assert_ptr_null(loom_fused_attention(q, k, v, m, false, 1, 0, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_ptr_null(loom_fused_attention(NULL, k, v, NULL, false, 1, 0, NULL));
  loom_clear_error();
  /* weights of 2^62 elements, though q, k and v have none: refused (the
   * kernels' scratch size would wrap around) */
  int64_t n = (int64_t)1 << 31;
  loom_tensor *e = loom_zeros(LOOM_F32, LOOM_SHAPE(1, n, 0));
  ck_assert_loom(e);
  ck_assert_ptr_null(loom_fused_attention(e, e, e, NULL, false, 1, 0, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_msg(strstr(loom_last_error(), "too large"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert_ptr_null(loom_scaled_dot_product_attention(q, k, v, NULL, false,
                                                       NAN, NULL, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT); /* was ignored */
  loom_clear_error();
  /* an integer mask (0/1 could mean blocked or an added score) is refused
   * by every path, as torch refuses it; it had been added to the scores */
  loom_tensor *im = loom_zeros(LOOM_I64, LOOM_SHAPE(3, 5));
  ck_assert_ptr_null(loom_scaled_dot_product_attention(q, k, v, im, false, 0,
                                                       NULL, NULL));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  loom_multihead_attention *mha = loom_multihead_attention_new(
      4, 2, (loom_multihead_attention_opts){.batch_first = true});
  loom_tensor *out;
  loom_tensor *bm = loom_zeros(LOOM_BOOL, LOOM_SHAPE(2, 3));
  loom_multihead_attention_args args[] = {
      {.attn_mask = loom_zeros(LOOM_I32, LOOM_SHAPE(3, 3))},
      {.key_padding_mask = loom_zeros(LOOM_I64, LOOM_SHAPE(2, 3))},
      {.attn_mask = loom_zeros(LOOM_BOOL, LOOM_SHAPE(3, 3)),
       .key_padding_mask = loom_zeros(LOOM_I64, LOOM_SHAPE(2, 3))},
      {.attn_mask = loom_zeros(LOOM_I64, LOOM_SHAPE(3, 3)),
       .key_padding_mask = bm}};
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(
        loom_multihead_attention_forward(mha, q, q, q, &args[i], &out, NULL),
        -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
    loom_clear_error();
  }
  loom_multihead_attention_free(mha);
}
END_TEST

int main(void) {
  Suite *s = suite_create("attention");
  TCase *tc = tcase_create("fused");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fused_equals_composition);
  tcase_add_test(tc, test_chunked_projection);
  tcase_add_test(tc, test_fully_masked_row);
  tcase_add_test(tc, test_empty);
  tcase_add_test(tc, test_threads_bitwise);
  tcase_add_test(tc, test_scaled_dot_product_attention_path);
  tcase_add_test(tc, test_keeps_no_weights);
  tcase_add_test(tc, test_mask_parts);
  tcase_add_test(tc, test_backward_sees_forward_weights);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
