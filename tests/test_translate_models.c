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
 * - the text pipeline gives back what it was given, through BPE and a
 *   checkpoint (the models learning a task: tests/test_translate.c). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "check_util.h"

#include "../apps/translate/pipeline.h"

#include <unistd.h>

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

/* ---- the text pipeline ---- */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_ge(fputs(text, f), 0);
  ck_assert_int_eq(fclose(f), 0);
}

/* Side `target` of a line as ids, by t and by u: the same. */
static void same_ids(const nmt_text *t, const nmt_text *u, bool target,
                     const char *line) {
  int32_t *ids[2] = {NULL, NULL};
  int64_t n[2] = {0, 0}, cap[2] = {0, 0};
  for (int k = 0; k < 2; k++)
    ck_assert_int_eq(nmt_text_encode(k ? u : t, target, line, strlen(line),
                                     "line", &ids[k], &n[k], &cap[k]),
                     0);
  ck_assert_int_eq(n[0], n[1]);
  for (int64_t i = 0; i < n[0]; i++)
    ck_assert_int_eq(ids[0][i], ids[1][i]);
  free(ids[0]);
  free(ids[1]);
}

/* Lines encoded and decoded again come back as they were (reversible: the
 * text with single spaces; lower: the baseline's tokens), through BPE; a
 * pipeline read back from a checkpoint encodes both sides as the one
 * saved. */
START_TEST(test_pipeline_round_trip) {
  char dir[] = "/tmp/loom-pipeline-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char src[64], tgt[64];
  snprintf(src, sizeof src, "%s/src", dir);
  snprintf(tgt, sizeof tgt, "%s/tgt", dir);
  const char *lines[] = {"Ein Mann, der (schnell) läuft!", "Ein Mann läuft.",
                         "Zwei Hunde spielen im Schnee.",
                         "Straße: 3,5 km - weiß?"};
  const char *targets[] = {"A man who runs (fast)!", "A man runs.",
                           "Two dogs play in the snow.",
                           "Street: 3.5 km - white?"};
  write_text(src, "Ein Mann, der (schnell) läuft!\nEin Mann läuft.\n"
                  "Zwei Hunde spielen im Schnee.\nStraße: 3,5 km - weiß?\n");
  write_text(tgt, "A man who runs (fast)!\nA man runs.\n"
                  "Two dogs play in the snow.\nStreet: 3.5 km - white?\n");
  for (int mode = 0; mode < 2; mode++)
    for (int merges = 0; merges <= 20; merges += 20) {
      nmt_text_opts o = nmt_text_defaults();
      snprintf(o.tokenize, sizeof o.tokenize, "%s",
               mode ? "reversible" : "lower");
      o.min_count = 1;
      o.bpe_merges = merges;
      o.joint = true; /* the source words are known on the target side */
      nmt_text *t = nmt_text_learn(&o, src, tgt);
      ck_assert_ptr_nonnull(t);
      ck_assert_int_eq(nmt_text_vocab_size(t, false),
                       nmt_text_vocab_size(t, true));
      for (int i = 0; i < 4; i++) {
        int32_t *ids = NULL;
        int64_t n = 0, cap = 0;
        ck_assert_int_eq(nmt_text_encode(t, true, lines[i], strlen(lines[i]),
                                         "line", &ids, &n, &cap),
                         0);
        int64_t ids64[64];
        for (int64_t k = 0; k < n; k++) {
          ck_assert_int_ne(ids[k], NMT_UNK);
          ids64[k] = ids[k];
        }
        app_buf out = {0}, want = {0};
        app_tokens tok = {0};
        ck_assert_int_eq(nmt_text_decode(t, ids64, n, &out), 0);
        if (mode) {
          ck_assert_int_eq(app_buf_append(&want, lines[i], strlen(lines[i])),
                           0);
        } else { /* the baseline's tokens, joined by spaces */
          ck_assert_int_eq(
              app_tokenize_lower(lines[i], strlen(lines[i]), &tok, "x"), 0);
          for (int64_t k = 0; k < tok.n; k++)
            ck_assert_int_eq((k && app_buf_putc(&want, ' ')) ||
                                 app_buf_append(&want, app_token(&tok, k),
                                                app_token_len(&tok, k)),
                             0);
        }
        ck_assert_str_eq(out.data, want.data);
        app_buf_free(&out);
        app_buf_free(&want);
        app_tokens_free(&tok);
        free(ids);
      }
      /* and the same after a trip through a checkpoint's map */
      loom_tensor_map *m = loom_tensor_map_new();
      ck_assert_int_eq(nmt_text_save(t, m), 0);
      nmt_text *u = nmt_text_load(m, "a map");
      ck_assert_ptr_nonnull(u);
      ck_assert_int_eq(nmt_text_vocab_size(u, true),
                       nmt_text_vocab_size(t, true));
      ck_assert_int_eq(nmt_text_options(u)->bpe_merges, merges);
      /* the joint merges segment the target too (its copy once went
       * unsaved, and a resumed run read its targets as whole words) */
      for (int i = 0; i < 4; i++) {
        same_ids(t, u, false, lines[i]);
        same_ids(t, u, true, targets[i]);
      }
      nmt_text_free(u);
      loom_tensor_map_free(m);
      nmt_text_free(t);
    }
  /* the codes a checkpoint holds are the ones learned: fewer than asked
   * when the pairs run out, and then those load; cut short, emptied, or
   * with BPE off, they are refused (they had segmented the input
   * otherwise than in training) */
  nmt_text_opts o = nmt_text_defaults();
  o.min_count = 1;
  o.bpe_merges = 1000;
  nmt_text *t = nmt_text_learn(&o, src, tgt);
  ck_assert_ptr_nonnull(t);
  loom_tensor_map *m = loom_tensor_map_new();
  ck_assert_int_eq(nmt_text_save(t, m), 0);
  const char *learned = loom_tensor_map_meta(m, "text.bpe_learned.src");
  ck_assert_ptr_nonnull(learned);
  ck_assert_int_gt(atoi(learned), 1);
  ck_assert_int_lt(atoi(learned), 1000);
  nmt_text *u = nmt_text_load(m, "a map");
  ck_assert_ptr_nonnull(u);
  nmt_text_free(u);
  loom_tensor *codes = loom_tensor_map_get(m, "text.bpe.src");
  ck_assert_ptr_nonnull(codes);
  loom_keep(codes);
  const char *bytes = (const char *)loom_data_u8(codes);
  const char *second = strchr(strchr(bytes, '\n') + 1, '\n') + 1;
  int64_t keep[2] = {second - bytes, 0};
  for (int k = 0; k < 2; k++) {
    loom_scope *sc = loom_scope_begin();
    ck_assert_int_eq(loom_tensor_map_set(
                         m, "text.bpe.src",
                         loom_from_array(LOOM_U8, bytes, LOOM_SHAPE(keep[k]))),
                     0);
    loom_scope_end(sc);
    ck_assert_ptr_null(nmt_text_load(m, "a map"));
  }
  ck_assert_int_eq(loom_tensor_map_set(m, "text.bpe.src", codes), 0);
  ck_assert_ptr_nonnull(u = nmt_text_load(m, "a map"));
  nmt_text_free(u);
  ck_assert_int_eq(loom_tensor_map_set_meta(m, "text.bpe_merges", "0"), 0);
  ck_assert_ptr_null(nmt_text_load(m, "a map"));
  loom_release(codes);
  loom_tensor_map_free(m);
  nmt_text_free(t);
  remove(src);
  remove(tgt);
  rmdir(dir);
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
  tcase_add_test(tc, test_pipeline_round_trip);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
