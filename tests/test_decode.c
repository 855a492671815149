/* Decoding (nn/decode.h) on small random models whose next-token
 * distribution depends on the whole prefix (a tanh RNN, and a transformer
 * decoder stepping through its caches), so a search that follows the wrong
 * state row is caught:
 * - beam size 1 gives exactly what greedy decoding gives;
 * - exact beam search with a beam that never prunes finds the optimum of
 *   exhaustive enumeration, and its n-best list is enumeration's n best,
 *   with and without the length penalty; fairseq's rule with a beam as wide
 *   as the vocabulary does too at length 1;
 * - every returned score equals the sum of log-probabilities recomputed by
 *   a teacher-forced pass over the hypothesis, and the penalised score is
 *   that sum over ((5 + len) / 6)^alpha;
 * - min and max lengths hold; sampling is seeded, follows the model's
 *   distribution, and top-k 1 / tiny top-p are greedy;
 * - a failing step stops the search with its error; bad options and bad
 *   step outputs are refused with messages. */
#include "check_util.h"

#include <stdio.h>
#include <string.h>

enum { BOS = 0, EOS = 1, H = 6 };

/* ---- a tanh RNN language model in float64 ---- */

typedef struct {
  int64_t V;
  loom_tensor *emb, *w, *out; /* (V, H), (H, H), (H, V), kept */
  loom_tensor *h;             /* (N, H) state rows, kept */
  int64_t steps, rows_seen;   /* for checks on the calls */
  int fail_at;                /* step that fails (-1: none) */
  bool fail_silently;         /* ... without setting an error */
} rnn_lm;

static void lm_init(rnn_lm *m, int64_t V, int64_t n, double sharpness) {
  *m = (rnn_lm){.V = V, .fail_at = -1};
  m->emb = loom_keep(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(V, H)));
  m->w = loom_keep(loom_randn(NULL, LOOM_F64, 0, 0.6, LOOM_SHAPE(H, H)));
  m->out =
      loom_keep(loom_randn(NULL, LOOM_F64, 0, sharpness, LOOM_SHAPE(H, V)));
  m->h = loom_keep(loom_zeros(LOOM_F64, LOOM_SHAPE(n, H)));
}

static void lm_reset(rnn_lm *m, int64_t n) {
  loom_release(m->h);
  m->h = loom_keep(loom_zeros(LOOM_F64, LOOM_SHAPE(n, H)));
}

static void lm_free(rnn_lm *m) {
  loom_release(m->emb);
  loom_release(m->w);
  loom_release(m->out);
  loom_release(m->h);
}

static int lm_step(void *ctx, int64_t t, const loom_tensor *tokens,
                   loom_tensor **lp) {
  rnn_lm *m = ctx;
  if (t == m->fail_at) {
    if (!m->fail_silently)
      loom_set_error(LOOM_ERR_IO, "the model's step %lld broke", (long long)t);
    return -1;
  }
  ck_assert_int_eq(loom_size(tokens, 0), loom_size(m->h, 0));
  m->steps++;
  m->rows_seen += loom_size(tokens, 0);
  loom_tensor *h = loom_tanh(
      loom_add(loom_embedding(m->emb, tokens, -1), loom_matmul(m->h, m->w)));
  loom_release(m->h);
  m->h = loom_keep(h);
  *lp = loom_log_softmax(loom_matmul(h, m->out), -1);
  return *lp ? 0 : -1;
}

static int lm_reorder(void *ctx, const loom_tensor *index) {
  rnn_lm *m = ctx;
  loom_tensor *h = loom_index_select(m->h, 0, index);
  if (!h)
    return -1;
  loom_release(m->h);
  m->h = loom_keep(h);
  return 0;
}

static loom_decode_model lm_model(rnn_lm *m) {
  return (loom_decode_model){lm_step, lm_reorder, m};
}

/* The sum of log-probabilities of tokens[0..len) and eos, one row, from a
 * fresh state: the teacher-forced score. */
static double lm_score(rnn_lm *m, const int64_t *tokens, int64_t len) {
  loom_scope *s = loom_scope_begin();
  lm_reset(m, 1);
  double total = 0;
  int64_t prev = BOS;
  for (int64_t t = 0; t <= len; t++) {
    loom_tensor *lp;
    ck_assert_int_eq(
        lm_step(m, t, loom_from_array(LOOM_I64, &prev, LOOM_SHAPE(1)), &lp), 0);
    int64_t next = t < len ? tokens[t] : EOS;
    total += loom_get(lp, (int64_t[]){0, next});
    prev = next;
  }
  loom_scope_end(s);
  return total;
}

static double penalty(double alpha, int64_t len) {
  return pow((5.0 + (double)len) / 6.0, alpha);
}

/* Checks every hypothesis's scores against the teacher-forced pass. */
static void expect_scores(rnn_lm *m, const loom_decode_result *r, double alpha,
                          int64_t max_len) {
  for (int64_t i = 0; i < r->n * r->nbest; i++) {
    const loom_hypothesis *h = &r->hyps[i];
    if (h->score == -INFINITY)
      continue;
    ck_assert_int_le(h->len, max_len);
    for (int64_t k = 0; k < h->len; k++)
      ck_assert_int_ne(h->tokens[k], EOS);
    double want = lm_score(m, h->tokens, h->len);
    ck_assert_msg(fabs(h->score - want) <= 1e-12 * (1 + fabs(want)),
                  "hypothesis %lld: score %.15g, teacher-forced %.15g",
                  (long long)i, h->score, want);
    ck_assert_double_eq_tol(h->penalized, want / penalty(alpha, h->len + 1),
                            1e-12);
  }
}

static loom_decode_result decode(rnn_lm *m, int64_t n, const int64_t *src,
                                 loom_decode_opts o) {
  loom_decode_result r;
  lm_reset(m, n);
  loom_decode_model model = lm_model(m);
  ck_assert_msg(loom_decode(&model, n, src, &o, &r) == 0, "decode: %s",
                loom_last_error());
  ck_assert_int_eq(r.n, n);
  return r;
}

/* ---- tests ---- */

START_TEST(test_beam_one_is_greedy) {
  for (int seed = 0; seed < 8; seed++) {
    loom_manual_seed(100 + (uint64_t)seed);
    rnn_lm m;
    lm_init(&m, 7 + seed, 5, 1.5);
    int64_t src[5] = {3, 9, 1, 6, 4};
    loom_decode_opts o = loom_decode_defaults(BOS, EOS);
    o.max_len_a = 1.5;
    o.max_len_b = 2;
    o.max_len = 10; /* caps sentence 1's 15 */
    o.min_len = seed % 3;
    o.alpha = seed % 2 ? 0.6 : 0;
    loom_decode_result g = decode(&m, 5, src, o);
    o.method = LOOM_DECODE_BEAM;
    o.beam = 1;
    loom_decode_result b = decode(&m, 5, src, o);
    for (int i = 0; i < 5; i++) {
      ck_assert_int_eq(g.hyps[i].len, b.hyps[i].len);
      ck_assert_int_ge(g.hyps[i].len, o.min_len);
      int64_t limit = (int64_t)(1.5 * (double)src[i]) + 2;
      ck_assert_int_le(g.hyps[i].len, limit < 10 ? limit : 10);
      for (int64_t k = 0; k < g.hyps[i].len; k++)
        ck_assert_int_eq(g.hyps[i].tokens[k], b.hyps[i].tokens[k]);
      ck_assert(g.hyps[i].score == b.hyps[i].score);
    }
    expect_scores(&m, &g, o.alpha, 1000);
    loom_decode_result_free(&g);
    loom_decode_result_free(&b);
    lm_free(&m);
  }
}
END_TEST

/* Exhaustive enumeration: every sequence of non-eos tokens up to max_len,
 * closed by eos; the best `keep` penalised scores, descending. */
static void enumerate(rnn_lm *m, int64_t max_len, double alpha, double *best,
                      int keep) {
  for (int k = 0; k < keep; k++)
    best[k] = -INFINITY;
  int64_t tok[8];
  for (int64_t len = 0; len <= max_len; len++) {
    int64_t count = 1;
    for (int64_t k = 0; k < len; k++)
      count *= m->V - 1;
    for (int64_t c = 0; c < count; c++) {
      int64_t x = c;
      for (int64_t k = 0; k < len; k++, x /= m->V - 1) {
        int64_t v = x % (m->V - 1);
        tok[k] = v >= EOS ? v + 1 : v; /* skip eos */
      }
      double s = lm_score(m, tok, len) / penalty(alpha, len + 1);
      for (int k = 0; k < keep; k++)
        if (s > best[k]) {
          memmove(best + k + 1, best + k,
                  (size_t)(keep - k - 1) * sizeof *best);
          best[k] = s;
          break;
        }
    }
  }
}

START_TEST(test_exact_beam_is_exhaustive) {
  /* peaked models (sharpness 3) make long answers win, flat ones short */
  const struct {
    int64_t V, max_len;
    int beam;
    double alpha, sharpness;
  } cases[] = {{10, 2, 10, 0, 0.8}, /* a beam as wide as the vocabulary */
               {10, 2, 10, 0.8, 3}, {4, 3, 9, 0, 3},    {4, 3, 9, 1.0, 0.8},
               {3, 5, 16, 0.6, 3},  {3, 5, 16, 0, 0.8}, {5, 3, 16, 0.6, 3}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int seed = 0; seed < 3; seed++) {
      loom_manual_seed(200 + 10 * c + (uint64_t)seed);
      rnn_lm m;
      lm_init(&m, cases[c].V, 1, cases[c].sharpness);
      enum { NB = 4 };
      double best[NB];
      enumerate(&m, cases[c].max_len, cases[c].alpha, best, NB);
      loom_decode_opts o = loom_decode_defaults(BOS, EOS);
      o.method = LOOM_DECODE_BEAM;
      o.exact = true;
      o.beam = cases[c].beam;
      o.nbest = NB;
      o.alpha = cases[c].alpha;
      o.max_len_b = cases[c].max_len;
      loom_decode_result r = decode(&m, 1, NULL, o);
      for (int k = 0; k < NB; k++)
        ck_assert_msg(fabs(r.hyps[k].penalized - best[k]) <= 1e-12,
                      "case %zu seed %d: n-best %d is %.15g, enumeration "
                      "%.15g",
                      c, seed, k, r.hyps[k].penalized, best[k]);
      expect_scores(&m, &r, o.alpha, cases[c].max_len);
      loom_decode_result_free(&r);
      /* fairseq's rule with a beam as wide as the vocabulary: exhaustive
       * at length 1 */
      enumerate(&m, 1, cases[c].alpha, best, 1);
      o.exact = false;
      o.beam = (int)cases[c].V;
      o.nbest = 1;
      o.max_len_b = 1;
      r = decode(&m, 1, NULL, o);
      ck_assert_double_eq_tol(r.hyps[0].penalized, best[0], 1e-12);
      loom_decode_result_free(&r);
      lm_free(&m);
    }
}
END_TEST

/* A batch of sentences with different limits, decoded together, gives what
 * each gives alone; n-best lists are ordered and their scores exact. */
START_TEST(test_batched_beam_equals_one_by_one) {
  loom_manual_seed(300);
  rnn_lm m;
  enum { N = 6 };
  lm_init(&m, 12, N, 1.2);
  int64_t src[N] = {1, 4, 7, 2, 9, 3};
  for (int exact = 0; exact < 2; exact++) {
    loom_decode_opts o = loom_decode_defaults(BOS, EOS);
    o.method = LOOM_DECODE_BEAM;
    o.beam = 4;
    o.nbest = 3;
    o.alpha = 0.6;
    o.min_len = 1;
    o.max_len_a = 1;
    o.max_len_b = 2;
    o.exact = exact;
    m.rows_seen = 0;
    loom_decode_result all = decode(&m, N, src, o);
    ck_assert_int_le(m.rows_seen, (int64_t)N * o.beam * 12);
    expect_scores(&m, &all, o.alpha, 11);
    for (int i = 0; i < N; i++) {
      for (int k = 1; k < o.nbest; k++)
        ck_assert(all.hyps[i * 3 + k].penalized <=
                  all.hyps[i * 3 + k - 1].penalized);
      for (int k = 0; k < o.nbest; k++)
        ck_assert_int_ge(all.hyps[i * 3 + k].len, 1);
      loom_decode_result one = decode(&m, 1, &src[i], o);
      for (int k = 0; k < o.nbest; k++) {
        const loom_hypothesis *a = &all.hyps[i * 3 + k], *b = &one.hyps[k];
        ck_assert_int_eq(a->len, b->len);
        ck_assert_msg(fabs(a->score - b->score) <= 1e-12,
                      "sentence %d hyp %d: %.15g alone %.15g", i, k, a->score,
                      b->score);
        ck_assert_mem_eq(a->tokens, b->tokens,
                         (size_t)a->len * sizeof *a->tokens);
      }
      loom_decode_result_free(&one);
    }
    loom_decode_result_free(&all);
  }
  lm_free(&m);
}
END_TEST

START_TEST(test_sampling) {
  loom_manual_seed(400);
  rnn_lm m;
  lm_init(&m, 9, 3, 1.0);
  int64_t src[3] = {4, 4, 4};
  loom_decode_opts o = loom_decode_defaults(BOS, EOS);
  o.method = LOOM_DECODE_SAMPLE;
  o.nbest = 5;
  o.max_len_b = 6;
  loom_rng *g = loom_rng_new(7);
  o.rng = g;
  loom_decode_result a = decode(&m, 3, src, o);
  expect_scores(&m, &a, 0, 6);
  loom_rng_seed(g, 7);
  loom_decode_result b = decode(&m, 3, src, o);
  bool differ = false;
  for (int i = 0; i < 15; i++) {
    ck_assert_int_eq(a.hyps[i].len, b.hyps[i].len);
    ck_assert_mem_eq(a.hyps[i].tokens, b.hyps[i].tokens,
                     (size_t)a.hyps[i].len * sizeof(int64_t));
    if (i % 5 && (a.hyps[i].len != a.hyps[i - 1].len ||
                  memcmp(a.hyps[i].tokens, a.hyps[i - 1].tokens,
                         (size_t)a.hyps[i].len * sizeof(int64_t))))
      differ = true;
  }
  ck_assert_msg(differ, "15 samples were all alike");
  loom_decode_result_free(&a);
  loom_decode_result_free(&b);
  /* top-k 1, a tiny top-p and a tiny temperature are greedy, also one so
   * small that every log-probability over it is -inf (the weights had been
   * NaN and the last token was taken) */
  loom_decode_opts go = loom_decode_defaults(BOS, EOS);
  go.max_len_b = 6;
  loom_decode_result greedy = decode(&m, 3, src, go);
  const double tiny[] = {1e-4, 1e-310, 4.9e-324};
  for (int variant = 0; variant < 5; variant++) {
    loom_decode_opts so = o;
    so.nbest = 1;
    so.top_k = variant == 0 ? 1 : 0;
    so.top_p = variant == 1 ? 1e-9 : 1;
    so.temperature = variant >= 2 ? tiny[variant - 2] : 1;
    loom_decode_result s = decode(&m, 3, src, so);
    for (int i = 0; i < 3; i++) {
      ck_assert_int_eq(s.hyps[i].len, greedy.hyps[i].len);
      ck_assert_mem_eq(s.hyps[i].tokens, greedy.hyps[i].tokens,
                       (size_t)s.hyps[i].len * sizeof(int64_t));
    }
    loom_decode_result_free(&s);
  }
  loom_decode_result_free(&greedy);
  /* the first token follows the model: 20,000 draws of length 1 */
  loom_decode_opts fo = o;
  fo.nbest = 1;
  fo.max_len_b = 1;
  fo.min_len = 1;
  fo.temperature = 1.5;
  fo.top_k = 5;
  enum { DRAWS = 20000 };
  int64_t counts[9] = {0};
  lm_reset(&m, 1);
  loom_tensor *lp;
  int64_t bos = BOS;
  ck_assert_int_eq(
      lm_step(&m, 0, loom_from_array(LOOM_I64, &bos, LOOM_SHAPE(1)), &lp), 0);
  /* expected: tempered probabilities of the 5 likeliest non-eos tokens */
  double p[9], total = 0;
  for (int v = 0; v < 9; v++)
    p[v] = v == EOS ? 0 : exp(loom_get(lp, (int64_t[]){0, v}) / 1.5);
  for (int v = 0; v < 9; v++) {
    int above = 0;
    for (int u = 0; u < 9; u++)
      above += p[u] > p[v];
    if (above >= 5)
      p[v] = 0;
    total += p[v];
  }
  loom_decode_result d = decode(&m, DRAWS, NULL, fo);
  for (int i = 0; i < DRAWS; i++) {
    ck_assert_int_eq(d.hyps[i].len, 1);
    counts[d.hyps[i].tokens[0]]++;
  }
  loom_decode_result_free(&d);
  for (int v = 0; v < 9; v++) {
    double q = p[v] / total, sd = sqrt(q * (1 - q) / DRAWS);
    double f = (double)counts[v] / DRAWS;
    ck_assert_msg(fabs(f - q) <= 5 * sd + 1e-12,
                  "token %d drawn %.4f of the time, expected %.4f", v, f, q);
  }
  loom_rng_free(g);
  lm_free(&m);
}
END_TEST

/* Without an end token every sequence runs to its limit: src_len tokens
 * here (a = 1, b = 0), a sentence with limit 0 gets none and the model
 * never sees its row; the score is the tokens' log-probabilities; exact
 * beam search is exhaustive over sequences of that length. */
START_TEST(test_no_eos) {
  loom_manual_seed(700);
  rnn_lm m;
  lm_init(&m, 5, 4, 2.0);
  int64_t src[4] = {3, 0, 1, 4};
  for (int method = 0; method < 3; method++) {
    loom_decode_opts o = loom_decode_defaults(BOS, LOOM_DECODE_NO_EOS);
    o.method = (loom_decode_method)method;
    o.max_len_a = 1;
    o.max_len_b = 0;
    o.beam = 25;
    o.exact = true;
    o.nbest = method == LOOM_DECODE_SAMPLE ? 2 : 1;
    loom_decode_result r = decode(&m, 4, src, o);
    for (int i = 0; i < 4; i++)
      for (int k = 0; k < o.nbest; k++) {
        const loom_hypothesis *h = &r.hyps[i * o.nbest + k];
        ck_assert_int_eq(h->len, src[i]);
        /* teacher-forced: the tokens' log-probabilities, no eos term */
        loom_scope *sc = loom_scope_begin();
        lm_reset(&m, 1);
        double want = 0;
        int64_t prev = BOS;
        for (int64_t t = 0; t < h->len; t++) {
          loom_tensor *lp;
          ck_assert_int_eq(
              lm_step(&m, t, loom_from_array(LOOM_I64, &prev, LOOM_SHAPE(1)),
                      &lp),
              0);
          want += loom_get(lp, (int64_t[]){0, h->tokens[t]});
          prev = h->tokens[t];
        }
        loom_scope_end(sc);
        ck_assert_double_eq_tol(h->score, want, 1e-12);
      }
    if (method == LOOM_DECODE_BEAM) { /* 5^3 sequences of sentence 0 */
      double best = -INFINITY;
      for (int64_t c = 0; c < 125; c++) {
        int64_t tok[3] = {c % 5, c / 5 % 5, c / 25};
        loom_scope *sc = loom_scope_begin();
        lm_reset(&m, 1);
        double sum = 0;
        int64_t prev = BOS;
        for (int t = 0; t < 3; t++) {
          loom_tensor *lp;
          ck_assert_int_eq(
              lm_step(&m, t, loom_from_array(LOOM_I64, &prev, LOOM_SHAPE(1)),
                      &lp),
              0);
          sum += loom_get(lp, (int64_t[]){0, tok[t]});
          prev = tok[t];
        }
        loom_scope_end(sc);
        best = fmax(best, sum);
      }
      ck_assert_double_eq_tol(r.hyps[0].score, best, 1e-12);
    }
    loom_decode_result_free(&r);
  }
  lm_free(&m);
}
END_TEST

/* ---- a transformer decoder stepping through its caches ---- */

enum { TV = 9, TE = 8, TS = 4 };

typedef struct {
  loom_transformer_stack *dec;
  loom_tensor *emb, *out, *pos; /* (TV, TE), (TV, TE), (32, TE), kept */
  loom_decoder_state *st;
} tf_lm;

static loom_tensor *tf_input(tf_lm *m, const loom_tensor *tokens, int64_t t,
                             int64_t n) {
  return loom_add(loom_mul_scalar(loom_embedding(m->emb, tokens, -1), 2.0),
                  loom_narrow(m->pos, 0, t, n));
}

static int tf_step(void *ctx, int64_t t, const loom_tensor *tokens,
                   loom_tensor **lp) {
  tf_lm *m = ctx;
  loom_tensor *y = loom_transformer_step(
      m->dec, m->st, loom_squeeze(tf_input(m, tokens, t, 1), 0));
  *lp = loom_log_softmax(loom_linear(y, m->out, NULL), -1);
  return *lp ? 0 : -1;
}

static int tf_reorder(void *ctx, const loom_tensor *index) {
  return loom_decoder_state_reorder(((tf_lm *)ctx)->st, index);
}

/* Beam search over the transformer, then every hypothesis scored by the
 * full (non-incremental) causal pass against its own sentence's memory. */
START_TEST(test_transformer_beam_scores) {
  loom_manual_seed(600);
  loom_dtype old = loom_set_default_dtype(LOOM_F64);
  enum { N = 3 };
  tf_lm m = {0};
  m.dec = loom_transformer_decoder_new(
      (loom_transformer_opts){.d_model = TE, .nhead = 2, .dim_feedforward = 16},
      2, true);
  ck_assert_loom(m.dec);
  loom_module_train(&m.dec->base, false);
  m.emb = loom_keep(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(TV, TE)));
  m.out = loom_keep(loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(TV, TE)));
  m.pos = loom_keep(loom_sinusoidal_encoding(LOOM_F64, 32, TE));
  loom_tensor *mem = loom_randn(NULL, LOOM_F64, 0, 1, LOOM_SHAPE(TS, N, TE));
  loom_tensor *kpm = loom_zeros(LOOM_BOOL, LOOM_SHAPE(N, TS));
  loom_set(kpm, (int64_t[]){1, TS - 1}, 1); /* sentence 1 is shorter */
  m.st = loom_decoder_state_new(m.dec, mem, kpm);
  ck_assert_loom(m.st);
  loom_decode_opts o = loom_decode_defaults(BOS, EOS);
  o.method = LOOM_DECODE_BEAM;
  o.beam = 4;
  o.nbest = 4;
  o.alpha = 0.6;
  o.max_len_b = 7;
  loom_decode_model model = {tf_step, tf_reorder, &m};
  loom_decode_result r;
  ck_assert_msg(loom_decode(&model, N, NULL, &o, &r) == 0, "%s",
                loom_last_error());
  for (int64_t i = 0; i < N * 4; i++) {
    const loom_hypothesis *h = &r.hyps[i];
    int64_t b = i / 4, len = h->len, tok[16] = {BOS};
    memcpy(tok + 1, h->tokens, (size_t)len * sizeof *tok);
    loom_scope *sc = loom_scope_begin();
    loom_tensor *x = loom_unsqueeze(
        tf_input(&m, loom_from_array(LOOM_I64, tok, LOOM_SHAPE(len + 1)), 0,
                 len + 1),
        1); /* (len+1, 1, TE) */
    loom_transformer_masks mk = {.tgt_causal = true,
                                 .memory_key_padding_mask =
                                     loom_narrow(kpm, 0, b, 1)};
    loom_tensor *y = loom_transformer_decoder_forward(
        m.dec, x, loom_narrow(mem, 1, b, 1), &mk);
    loom_tensor *lp = loom_log_softmax(loom_linear(y, m.out, NULL), -1);
    ck_assert_loom(lp);
    double want = 0;
    for (int64_t t = 0; t <= len; t++)
      want += loom_get(lp, (int64_t[]){t, 0, t < len ? tok[t + 1] : EOS});
    ck_assert_msg(fabs(want - h->score) <= 1e-10 * (1 + fabs(want)),
                  "sentence %lld hypothesis %lld: beam %.15g, full pass "
                  "%.15g",
                  (long long)b, (long long)(i % 4), h->score, want);
    loom_scope_end(sc);
  }
  loom_decode_result_free(&r);
  loom_decoder_state_free(m.st);
  loom_transformer_stack_free(m.dec);
  loom_release(m.emb);
  loom_release(m.out);
  loom_release(m.pos);
  loom_set_default_dtype(old);
}
END_TEST

/* A step that fails stops the search with its error; one that fails
 * silently, or returns the wrong shape or NaN, gets a message; bad options
 * are refused naming the range. */
static int bad_shape_step(void *ctx, int64_t t, const loom_tensor *tokens,
                          loom_tensor **lp) {
  (void)ctx;
  (void)t;
  *lp = loom_zeros(LOOM_F32, LOOM_SHAPE(loom_size(tokens, 0) + 1, 5));
  return 0;
}

static int nan_step(void *ctx, int64_t t, const loom_tensor *tokens,
                    loom_tensor **lp) {
  (void)ctx;
  *lp = loom_full(LOOM_F64, t == 2 ? NAN : -1.6,
                  LOOM_SHAPE(loom_size(tokens, 0), 5));
  return 0;
}

/* SAMPLE, 3 rows of a 3-token vocabulary: at step 0 the middle row (the
 * second sample) can only take eos, the others only token 2; step 1 fails.
 * The second sample has then finished before the first. */
static int second_sample_first_step(void *ctx, int64_t t,
                                    const loom_tensor *tokens,
                                    loom_tensor **lp) {
  (void)ctx;
  if (t == 1) {
    loom_set_error(LOOM_ERR_IO, "step 1 broke");
    return -1;
  }
  ck_assert_int_eq(loom_size(tokens, 0), 3);
  const double no = -INFINITY;
  *lp = loom_from_array(LOOM_F64,
                        (const double[]){no, no, 0, no, 0, no, no, no, 0},
                        LOOM_SHAPE(3, 3));
  return 0;
}

static void expect_failure(const loom_decode_model *model, int64_t n,
                           loom_decode_opts o, loom_status status,
                           const char *words) {
  loom_decode_result r = {.n = 99};
  ck_assert_int_eq(loom_decode(model, n, NULL, &o, &r), -1);
  ck_assert_int_eq(r.n, 0);
  ck_assert_ptr_null(r.hyps);
  ck_assert_int_eq(loom_last_status(), status);
  ck_assert_msg(strstr(loom_last_error(), words), "message '%s' lacks '%s'",
                loom_last_error(), words);
  loom_clear_error();
}

/* Suppressed tokens are never written: greedy, beam and sampling give
 * what they give on the same model with those tokens' log-probabilities
 * set to -inf, and the test picks a token the model does write. With every
 * token but eos suppressed, min_len yields and the sentences are empty. */
typedef struct {
  rnn_lm *m;
  const int64_t *banned;
  int64_t n_banned;
} banning_lm;

static int banning_step(void *ctx, int64_t t, const loom_tensor *tokens,
                        loom_tensor **lp) {
  banning_lm *b = ctx;
  if (lm_step(b->m, t, tokens, lp) < 0)
    return -1;
  loom_tensor *mask = loom_zeros(LOOM_BOOL, LOOM_SHAPE(b->m->V));
  for (int64_t i = 0; i < b->n_banned; i++)
    loom_set(mask, (int64_t[]){b->banned[i]}, 1);
  *lp = loom_masked_fill(*lp, mask, -INFINITY);
  return *lp ? 0 : -1;
}

static int banning_reorder(void *ctx, const loom_tensor *index) {
  return lm_reorder(((banning_lm *)ctx)->m, index);
}

START_TEST(test_suppress) {
  loom_manual_seed(77);
  rnn_lm m;
  lm_init(&m, 7, 4, 2.0);
  int64_t src[4] = {0};
  /* the token greedy decoding writes most, besides eos */
  loom_decode_opts o = loom_decode_defaults(BOS, EOS);
  o.max_len_b = 6;
  loom_decode_result g = decode(&m, 4, src, o);
  int64_t count[7] = {0}, most = 2;
  for (int64_t i = 0; i < 4; i++)
    for (int64_t k = 0; k < g.hyps[i].len; k++)
      count[g.hyps[i].tokens[k]]++;
  for (int64_t v = 2; v < 7; v++)
    if (count[v] > count[most])
      most = v;
  ck_assert_int_gt(count[most], 0);
  loom_decode_result_free(&g);
  int64_t banned[2] = {BOS, most};
  for (int method = 0; method < 3; method++) {
    o = loom_decode_defaults(BOS, EOS);
    o.max_len_b = 6;
    o.method = (loom_decode_method)method;
    o.beam = 3;
    o.nbest = method == LOOM_DECODE_GREEDY ? 1 : 3;
    loom_rng *rng = loom_rng_new(5);
    o.rng = rng;
    o.suppress = banned;
    o.n_suppress = 2;
    loom_decode_result r = decode(&m, 4, src, o);
    loom_decode_opts plain = o;
    plain.suppress = NULL;
    plain.n_suppress = 0;
    loom_rng_seed(rng, 5);
    banning_lm b = {&m, banned, 2};
    lm_reset(&m, 4);
    loom_decode_result w;
    ck_assert_int_eq(loom_decode(&(loom_decode_model){banning_step,
                                                      banning_reorder, &b},
                                 4, src, &plain, &w),
                     0);
    for (int64_t i = 0; i < 4 * o.nbest; i++) {
      ck_assert_int_eq(r.hyps[i].len, w.hyps[i].len);
      ck_assert(r.hyps[i].score == w.hyps[i].score);
      for (int64_t k = 0; k < r.hyps[i].len; k++) {
        ck_assert_int_eq(r.hyps[i].tokens[k], w.hyps[i].tokens[k]);
        ck_assert_int_ne(r.hyps[i].tokens[k], most);
        ck_assert_int_ne(r.hyps[i].tokens[k], BOS);
      }
    }
    expect_scores(&m, &r, 0, 6);
    loom_decode_result_free(&r);
    loom_decode_result_free(&w);
    loom_rng_free(rng);
  }
  /* one word left besides eos: min_len still holds, with that word */
  int64_t all[5] = {0, 2, 3, 4, 5};
  o = loom_decode_defaults(BOS, EOS);
  o.min_len = 3;
  o.suppress = all;
  o.n_suppress = 5;
  loom_decode_result r = decode(&m, 2, NULL, o);
  for (int64_t i = 0; i < 2; i++) {
    ck_assert_int_ge(r.hyps[i].len, 3);
    for (int64_t k = 0; k < r.hyps[i].len; k++)
      ck_assert_int_eq(r.hyps[i].tokens[k], 6);
  }
  loom_decode_result_free(&r);
  /* nothing but eos left: min_len yields */
  int64_t every[6] = {0, 2, 3, 4, 5, 6};
  o.suppress = every;
  o.n_suppress = 6;
  r = decode(&m, 2, NULL, o);
  for (int64_t i = 0; i < 2; i++)
    ck_assert_int_eq(r.hyps[i].len, 0);
  loom_decode_result_free(&r);
  lm_free(&m);
}
END_TEST

START_TEST(test_failures) {
  loom_manual_seed(500);
  rnn_lm m;
  lm_init(&m, 6, 2, 1.0);
  loom_decode_model model = lm_model(&m);
  loom_decode_opts o = loom_decode_defaults(BOS, EOS);
  o.method = LOOM_DECODE_BEAM;
  o.beam = 3;
  m.fail_at = 2;
  expect_failure(&model, 2, o, LOOM_ERR_IO, "step 2 broke");
  lm_reset(&m, 2);
  m.fail_silently = true;
  expect_failure(&model, 2, o, LOOM_ERR_STATE, "step callback");
  m.fail_at = -1;
  loom_decode_model shape = {bad_shape_step, NULL, NULL};
  expect_failure(&shape, 2, o, LOOM_ERR_SHAPE, "expected (2, V)");
  loom_decode_model nan = {nan_step, NULL, NULL};
  expect_failure(&nan, 2, o, LOOM_ERR_NUMERIC, "log-probability nan");
  loom_decode_opts b = o;
  b.beam = 0;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "beam 0 is outside");
  b = o;
  b.nbest = 4;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "nbest 4 is outside 1..3");
  b = o;
  b.method = LOOM_DECODE_SAMPLE;
  b.top_p = 0;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "top_p in (0, 1]");
  b.top_p = 1;
  b.temperature = NAN;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "temperature");
  b = o;
  b.eos = 6;
  lm_reset(&m, 2);
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "vocabulary size 6");
  b = o;
  b.max_len_a = -1;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "max_len_a");
  expect_failure(NULL, 2, o, LOOM_ERR_ARGUMENT, "NULL model");
  int64_t banned[2] = {3, EOS};
  b = o;
  b.suppress = banned;
  b.n_suppress = 2;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "other than eos");
  banned[1] = 6;
  lm_reset(&m, 2);
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "suppressed token 6");
  b.suppress = NULL;
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "n_suppress 2");
  int64_t all[6] = {0, 1, 2, 3, 4, 5};
  b = o;
  b.eos = LOOM_DECODE_NO_EOS;
  b.suppress = all;
  b.n_suppress = 6;
  lm_reset(&m, 2);
  expect_failure(&model, 2, b, LOOM_ERR_ARGUMENT, "every one of the 6");
  /* a sample that finished before an earlier one is freed when a later
   * step fails (the finished ones sit by slot, not first come: freeing
   * the first n_fin slots had leaked it; ASan's leak check sees it) */
  loom_decode_model second = {second_sample_first_step, NULL, NULL};
  b = loom_decode_defaults(BOS, EOS);
  b.method = LOOM_DECODE_SAMPLE;
  b.nbest = 3;
  expect_failure(&second, 1, b, LOOM_ERR_IO, "step 1 broke");
  /* no sentences: nothing to do, nothing called */
  loom_decode_result r;
  ck_assert_int_eq(loom_decode(&model, 0, NULL, &o, &r), 0);
  ck_assert_int_eq(r.n, 0);
  loom_decode_result_free(&r);
  lm_free(&m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("decode");
  TCase *tc = tcase_create("decode");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_beam_one_is_greedy);
  tcase_add_test(tc, test_exact_beam_is_exhaustive);
  tcase_add_test(tc, test_batched_beam_equals_one_by_one);
  tcase_add_test(tc, test_sampling);
  tcase_add_test(tc, test_no_eos);
  tcase_add_test(tc, test_transformer_beam_scores);
  tcase_add_test(tc, test_suppress);
  tcase_add_test(tc, test_failures);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
