/* apps/translate's models and batching, in C (the command line is tested
 * in test_translate.c):
 * - batches hold bos/eos, padding and masks where they belong; an epoch's
 *   plan covers every pair once within the token limit, is the same for
 *   the same (seed, epoch) and differs between epochs;
 * - both models (attention RNN with each score, the transformer with tied
 *   or shared embeddings) are gradient-checked in float64 end to end;
 * - decoding through loom_decode: beam 1 equals greedy, and the scores of
 *   beam search equal the log-probabilities of a teacher-forced pass;
 *   attention rows are distributions over the unpadded source;
 * - both models learn to reverse sequences within seconds. */
#include "check_util.h"

#include "../apps/translate/nmt.h"

#include <string.h>

/* ---- batches and plans ---- */

START_TEST(test_batch_layout) {
  const int32_t a[] = {5, 6, NMT_EOS}, b[] = {7, NMT_EOS};
  const int32_t ta[] = {9}, tb[] = {10, 11, 12};
  const int32_t *src[] = {a, b}, *tgt[] = {ta, tb};
  int64_t sl[] = {3, 2}, tl[] = {1, 3};
  nmt_batch x;
  ck_assert_int_eq(nmt_batch_make(&x, 2, src, sl, tgt, tl), 0);
  ck_assert_int_eq(x.S, 3);
  ck_assert_int_eq(x.T, 4);
  ck_assert_int_eq(x.src_tokens, 5);
  ck_assert_int_eq(x.tgt_tokens, 6);
  const int64_t want_src[] = {5, 7, 6, NMT_EOS, NMT_EOS, NMT_PAD};
  const int64_t want_in[] = {NMT_BOS, NMT_BOS, 9, 10, NMT_PAD, 11, NMT_PAD, 12};
  const int64_t want_out[] = {9,       10, NMT_EOS, 11,
                              NMT_PAD, 12, NMT_PAD, NMT_EOS};
  ck_assert_mem_eq(loom_data_i64(x.src), want_src, sizeof want_src);
  ck_assert_mem_eq(loom_data_i64(x.tgt_in), want_in, sizeof want_in);
  ck_assert_mem_eq(loom_data_i64(x.tgt_out), want_out, sizeof want_out);
  const uint8_t pad_src[] = {0, 0, 0, 0, 0, 1};
  const uint8_t pad_tgt[] = {0, 0, 1, 1, 0, 0, 0, 0};
  ck_assert_mem_eq(loom_data_u8(x.src_pad), pad_src, sizeof pad_src);
  ck_assert_mem_eq(loom_data_u8(x.tgt_pad), pad_tgt, sizeof pad_tgt);
  nmt_batch_free(&x);
}
END_TEST

static void random_corpus(nmt_corpus *c, int64_t n, int64_t vocab,
                          int64_t max_len, loom_rng *g) {
  int32_t s[64], t[64];
  for (int64_t i = 0; i < n; i++) {
    int64_t ls = 1 + (int64_t)(loom_rng_u64(g) % (uint64_t)max_len);
    int64_t lt = 1 + (int64_t)(loom_rng_u64(g) % (uint64_t)max_len);
    for (int64_t k = 0; k < ls; k++)
      s[k] = 4 + (int32_t)(loom_rng_u64(g) % (uint64_t)(vocab - 4));
    s[ls] = NMT_EOS;
    for (int64_t k = 0; k < lt; k++)
      t[k] = 4 + (int32_t)(loom_rng_u64(g) % (uint64_t)(vocab - 4));
    ck_assert_int_eq(nmt_corpus_add(c, s, ls + 1, t, lt, i + 1), 0);
  }
  c->targets = true;
}

START_TEST(test_plan) {
  loom_rng *g = loom_rng_new(3);
  nmt_corpus c = {0};
  random_corpus(&c, 1000, 50, 30, g);
  nmt_plan p, q, r;
  ck_assert_int_eq(nmt_plan_make(&p, &c, 200, 0, true, 7, 0), 0);
  ck_assert_int_eq(nmt_plan_make(&q, &c, 200, 0, true, 7, 0), 0);
  ck_assert_int_eq(nmt_plan_make(&r, &c, 200, 0, true, 7, 1), 0);
  ck_assert_int_eq(p.n, q.n);
  ck_assert_mem_eq(p.order, q.order, 1000 * sizeof *p.order);
  ck_assert_int_ne(memcmp(p.order, r.order, 1000 * sizeof *p.order), 0);
  char *seen = calloc(1000, 1);
  for (int64_t i = 0; i < p.n; i++) {
    int64_t widest = 0, rows = p.start[i + 1] - p.start[i];
    ck_assert_int_gt(rows, 0);
    for (int64_t k = p.start[i]; k < p.start[i + 1]; k++) {
      int64_t j = p.order[k];
      ck_assert_int_eq(seen[j]++, 0);
      int64_t w =
          c.src_len[j] > c.tgt_len[j] + 1 ? c.src_len[j] : c.tgt_len[j] + 1;
      widest = w > widest ? w : widest;
    }
    ck_assert_int_le(rows * widest, 200);
    nmt_batch b;
    ck_assert_int_eq(nmt_plan_batch(&p, &c, i, &b), 0);
    ck_assert_int_eq(b.B, rows);
    nmt_batch_free(&b);
  }
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(seen[i], 1);
  /* a sentence limit */
  nmt_plan s;
  ck_assert_int_eq(nmt_plan_make(&s, &c, 1 << 20, 16, false, 0, 0), 0);
  ck_assert_int_eq(s.n, 63); /* ceil(1000 / 16) */
  free(seen);
  nmt_plan_free(&p);
  nmt_plan_free(&q);
  nmt_plan_free(&r);
  nmt_plan_free(&s);
  nmt_corpus_free(&c);
  loom_rng_free(g);
}
END_TEST

/* ---- small models ---- */

static nmt_config small(const char *model, int variant) {
  nmt_config c = nmt_config_defaults(model);
  c.src_vocab = c.tgt_vocab = 12;
  c.embed = 6;
  c.hidden = 8;
  c.layers = 1 + variant % 2;
  c.d_model = 8;
  c.heads = 2;
  c.ff = 12;
  c.enc_layers = c.dec_layers = 1 + variant % 2;
  c.max_positions = 32;
  c.dropout = 0;
  const char *scores[] = {"general", "dot", "concat", "bahdanau"};
  snprintf(c.attention, sizeof c.attention, "%s", scores[variant % 4]);
  snprintf(c.cell, sizeof c.cell, "%s", variant % 3 == 2 ? "gru" : "lstm");
  c.input_feeding = variant != 1;
  c.tie_output = variant == 1;
  c.share_all = variant == 2;
  c.pre_norm = variant == 3;
  c.learned_positions = variant == 3;
  return c;
}

static nmt_batch tiny_batch(void) {
  const int32_t a[] = {5, 6, 7, NMT_EOS}, b[] = {8, NMT_EOS};
  const int32_t ta[] = {9, 4}, tb[] = {10, 11, 5};
  const int32_t *src[] = {a, b}, *tgt[] = {ta, tb};
  int64_t sl[] = {4, 2}, tl[] = {2, 3};
  nmt_batch x;
  ck_assert_int_eq(nmt_batch_make(&x, 2, src, sl, tgt, tl), 0);
  return x;
}

typedef struct {
  nmt_model *m;
  nmt_batch *b;
} gc_ctx;

/* The summed log-likelihood of the batch's targets, as a function of the
 * model's parameters (which gradcheck perturbs). */
static int gc_fn(loom_tensor *const *in, int n, loom_tensor **out, int max,
                 void *ctx) {
  (void)in;
  (void)n;
  (void)max;
  gc_ctx *g = ctx;
  loom_tensor *lp = loom_log_softmax(g->m->ops->logits(g->m, g->b), -1);
  loom_tensor *mask = loom_ne_scalar(g->b->tgt_out, NMT_PAD);
  loom_tensor *picked =
      loom_squeeze(loom_gather(lp, 2, loom_unsqueeze(g->b->tgt_out, 2)), 2);
  out[0] = loom_sum_all(loom_mul(picked, loom_to_dtype(mask, LOOM_F64)));
  return out[0] ? 1 : -1;
}

START_TEST(test_models_gradcheck) {
  const char *models[] = {"rnn", "transformer"};
  loom_dtype old = loom_set_default_dtype(LOOM_F64);
  for (int k = 0; k < 2; k++)
    for (int variant = 0; variant < 4; variant++) {
      loom_manual_seed(10 + (uint64_t)variant);
      nmt_config c = small(models[k], variant);
      ck_assert_int_eq(nmt_config_check(&c), 0);
      nmt_model *m = nmt_model_new(&c, 1);
      ck_assert_loom(m);
      nmt_batch b = tiny_batch();
      loom_tensor *ps[128];
      int np = loom_module_parameters(&m->base, ps, 128);
      ck_assert_int_le(np, 128);
      gc_ctx g = {m, &b};
      loom_gradcheck_result r;
      loom_gradcheck_opts o = {.fast = true};
      ck_assert_int_eq(loom_gradcheck(gc_fn, &g, ps, np, &o, &r), 1);
      nmt_batch_free(&b);
      loom_module_free(&m->base);
    }
  loom_set_default_dtype(old);
}
END_TEST

/* Beam 1 is greedy; beam scores are teacher-forced log-probabilities;
 * attention rows are distributions over the unpadded source. */
START_TEST(test_models_decode) {
  const char *models[] = {"rnn", "transformer"};
  loom_dtype old = loom_set_default_dtype(LOOM_F64);
  for (int k = 0; k < 2; k++)
    for (int variant = 0; variant < 4; variant++) {
      loom_manual_seed(20 + (uint64_t)variant);
      nmt_config c = small(models[k], variant);
      nmt_model *m = nmt_model_new(&c, 1);
      ck_assert_loom(m);
      loom_module_train(&m->base, false);
      nmt_batch b = tiny_batch();
      loom_decode_opts o = loom_decode_defaults(NMT_BOS, NMT_EOS);
      o.max_len_b = 6;
      loom_decode_result greedy, beam;
      loom_decode_model dm;
      ck_assert_int_eq(m->ops->decode_begin(m, &b, &dm), 0);
      ck_assert_msg(loom_decode(&dm, 2, NULL, &o, &greedy) == 0, "%s",
                    loom_last_error());
      m->ops->decode_end(&dm);
      o.method = LOOM_DECODE_BEAM;
      o.beam = 1;
      ck_assert_int_eq(m->ops->decode_begin(m, &b, &dm), 0);
      ck_assert_int_eq(loom_decode(&dm, 2, NULL, &o, &beam), 0);
      m->ops->decode_end(&dm);
      for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(greedy.hyps[i].len, beam.hyps[i].len);
        ck_assert_mem_eq(greedy.hyps[i].tokens, beam.hyps[i].tokens,
                         (size_t)beam.hyps[i].len * sizeof(int64_t));
      }
      loom_decode_result_free(&greedy);
      loom_decode_result_free(&beam);
      o.beam = 3;
      o.nbest = 3;
      o.alpha = 0.6;
      ck_assert_int_eq(m->ops->decode_begin(m, &b, &dm), 0);
      ck_assert_int_eq(loom_decode(&dm, 2, NULL, &o, &beam), 0);
      m->ops->decode_end(&dm);
      for (int h = 0; h < 6; h++) {
        const loom_hypothesis *y = &beam.hyps[h];
        int i = h / 3;
        const int32_t *src = i ? (const int32_t[]){8, NMT_EOS}
                               : (const int32_t[]){5, 6, 7, NMT_EOS};
        int64_t sl = i ? 2 : 4;
        int32_t tgt[16];
        for (int64_t t = 0; t < y->len; t++)
          tgt[t] = (int32_t)y->tokens[t];
        nmt_batch one;
        const int32_t *tp = tgt;
        ck_assert_int_eq(nmt_batch_make(&one, 1, &src, &sl, &tp, &y->len), 0);
        loom_scope *s = loom_scope_begin();
        loom_tensor *lp = loom_log_softmax(m->ops->logits(m, &one), -1);
        double want = 0;
        for (int64_t t = 0; t <= y->len; t++)
          want +=
              loom_get(lp, (int64_t[]){t, 0, t < y->len ? tgt[t] : NMT_EOS});
        ck_assert_msg(fabs(want - y->score) < 1e-10,
                      "%s variant %d hyp %d: beam %.12g, teacher-forced "
                      "%.12g",
                      models[k], variant, h, y->score, want);
        loom_tensor *w = m->ops->attention(m, &one); /* (T, 1, S) */
        ck_assert_loom(w);
        for (int64_t t = 0; t <= y->len; t++)
          ck_assert_double_eq_tol(
              loom_item(loom_sum_all(loom_select(loom_select(w, 0, t), 0, 0))),
              1, 1e-12);
        loom_scope_end(s);
        nmt_batch_free(&one);
      }
      loom_decode_result_free(&beam);
      nmt_batch_free(&b);
      loom_module_free(&m->base);
    }
  loom_set_default_dtype(old);
}
END_TEST

/* Sequences of 1..7 tokens reversed: both models learn it within a few
 * hundred steps. */
static void reversal(loom_rng *g, int32_t *src, int64_t *sl, int32_t *tgt,
                     int64_t *tl) {
  int n = 1 + (int)(loom_rng_u64(g) % 7);
  for (int i = 0; i < n; i++)
    src[i] = 4 + (int32_t)(loom_rng_u64(g) % 12);
  for (int i = 0; i < n; i++)
    tgt[i] = src[n - 1 - i];
  src[n] = NMT_EOS;
  *sl = n + 1;
  *tl = n;
}

START_TEST(test_models_learn) {
  const char *models[] = {"rnn", "transformer"};
  for (int k = 0; k < 2; k++) {
    loom_manual_seed(1);
    nmt_config c = nmt_config_defaults(models[k]);
    c.src_vocab = c.tgt_vocab = 16;
    c.embed = 32;
    c.hidden = 64;
    c.layers = 1;
    c.d_model = 64;
    c.heads = 4;
    c.ff = 128;
    c.enc_layers = c.dec_layers = 2;
    c.dropout = 0;
    nmt_model *m = nmt_model_new(&c, 1);
    ck_assert_loom(m);
    loom_tensor *ps[128];
    int np = loom_module_parameters(&m->base, ps, 128);
    loom_adam_opts ao = loom_adam_defaults(1e-3);
    ao.beta2 = 0.98;
    loom_optimizer *opt = loom_adam_new(ps, np, ao);
    loom_rng *g = loom_rng_new(5);
    int32_t src[64][8], tgt[64][8];
    int64_t sl[64], tl[64];
    const int32_t *sp[64], *tp[64];
    for (int step = 0; step < 800; step++) {
      for (int i = 0; i < 32; i++) {
        reversal(g, src[i], &sl[i], tgt[i], &tl[i]);
        sp[i] = src[i];
        tp[i] = tgt[i];
      }
      nmt_batch b;
      ck_assert_int_eq(nmt_batch_make(&b, 32, sp, sl, tp, tl), 0);
      loom_scope *s = loom_scope_begin();
      loom_cross_entropy_opts co = {.ignore_index = NMT_PAD};
      loom_tensor *loss = loom_cross_entropy(
          loom_reshape(m->ops->logits(m, &b), 2, (int64_t[]){-1, 16}),
          loom_reshape(b.tgt_out, 1, (int64_t[]){-1}), &co);
      loom_optimizer_zero_grad(opt);
      ck_assert_msg(loss && loom_backward(loss) == 0, "%s", loom_last_error());
      loom_clip_grad_norm(ps, np, 1.0, 2);
      ck_assert_int_eq(loom_optimizer_step(opt), 0);
      loom_scope_end(s);
      nmt_batch_free(&b);
    }
    loom_module_train(&m->base, false);
    for (int i = 0; i < 64; i++) {
      reversal(g, src[i], &sl[i], tgt[i], &tl[i]);
      sp[i] = src[i];
    }
    nmt_batch b;
    ck_assert_int_eq(nmt_batch_make(&b, 64, sp, sl, NULL, NULL), 0);
    loom_decode_model dm;
    ck_assert_int_eq(m->ops->decode_begin(m, &b, &dm), 0);
    loom_decode_opts o = loom_decode_defaults(NMT_BOS, NMT_EOS);
    o.method = LOOM_DECODE_BEAM;
    o.beam = 3;
    o.max_len_b = 10;
    loom_decode_result r;
    ck_assert_int_eq(loom_decode(&dm, 64, NULL, &o, &r), 0);
    m->ops->decode_end(&dm);
    int exact = 0;
    for (int i = 0; i < 64; i++) {
      bool same = r.hyps[i].len == tl[i];
      for (int64_t t = 0; same && t < tl[i]; t++)
        same = r.hyps[i].tokens[t] == tgt[i][t];
      exact += same;
    }
    ck_assert_msg(exact >= 58, "%s: %d of 64 reversed exactly", models[k],
                  exact);
    loom_decode_result_free(&r);
    nmt_batch_free(&b);
    loom_rng_free(g);
    loom_optimizer_free(opt);
    loom_module_free(&m->base);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("translate_models");
  TCase *tc = tcase_create("models");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_batch_layout);
  tcase_add_test(tc, test_plan);
  tcase_add_test(tc, test_models_gradcheck);
  tcase_add_test(tc, test_models_decode);
  tcase_add_test(tc, test_models_learn);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
