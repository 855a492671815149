/* apps/caption's captions and model: the tokenisers (the PyTorch caption
 * baseline's, the translation baseline's), the vocabulary and ids, a
 * batch's layout, and decoding through the library's loom_decode in every
 * way the image can enter the model: beam 1 equals greedy, every beam
 * hypothesis's score equals the log-probability a teacher-forced pass
 * gives its words, hypotheses come best first, and attention rows are
 * distributions; a batch whose images have several captions each. */
#define _POSIX_C_SOURCE 200809L
#include "../apps/caption/caption.h"
#include "check_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static void expect_tokens(cap_tokenizer k, const char *text,
                          const char *const *want, int n) {
  app_tokens t = {0};
  ck_assert_int_eq(cap_tokenize(k, text, strlen(text), &t, "test"), 0);
  ck_assert_int_eq(t.n, n);
  for (int i = 0; i < n; i++)
    ck_assert_str_eq(app_token(&t, i), want[i]);
  app_tokens_free(&t);
}

START_TEST(tokenizers) {
  /* re.sub(r'[^a-z0-9\s]', '', s.lower()).split() */
  expect_tokens(CAP_TOKENS_ALNUM, "A girl in a T-shirt , 3 dogs .",
                (const char *[]){"a", "girl", "in", "a", "tshirt", "3", "dogs"},
                7);
  expect_tokens(CAP_TOKENS_ALNUM, "Caf\xc3\xa9  na\xc3\xafve\tdog's",
                (const char *[]){"caf", "nave", "dogs"}, 3);
  expect_tokens(CAP_TOKENS_ALNUM, " . , !", NULL, 0);
  /* re.findall(r"\w+|[^\w\s]", s.lower()) */
  expect_tokens(CAP_TOKENS_WORDS, "A T-shirt, 3 dogs.",
                (const char *[]){"a", "t", "-", "shirt", ",", "3", "dogs", "."},
                8);
  app_tokens t = {0};
  ck_assert_int_eq(cap_tokenize(CAP_TOKENS_ALNUM, "bad \xff byte", 10, &t,
                                "caption 2 of x.jpg"),
                   -1);
  ck_assert(strstr(loom_last_error(), "caption 2 of x.jpg"));
  loom_clear_error();
  app_tokens_free(&t);
}
END_TEST

/* A data set of 3 images (2 training, 1 dev) with given captions. */
static void tiny_data(cap_data *d, const char *const *captions,
                      const int64_t *first) {
  *d = (cap_data){.n = 3, .side = 8};
  const char *names[3] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++)
    app_strtab_intern(&d->names, names[i], 1);
  d->split = calloc(3, 1);
  d->split[2] = CAP_DEV;
  d->first = malloc(4 * sizeof *d->first);
  memcpy(d->first, first, 4 * sizeof *first);
  d->n_captions = first[3];
  d->captions = calloc((size_t)first[3], sizeof *d->captions);
  for (int64_t j = 0; j < first[3]; j++)
    d->captions[j] = strdup(captions[j]);
  d->pixels = calloc(3 * 3 * 8 * 8, 1);
  for (int i = 0; i < 3 * 3 * 8 * 8; i++)
    d->pixels[i] = (unsigned char)(i * 37);
}

/* tiny_data's images with its captions tokenised (alnum) into c. */
static void tiny_corpus(cap_data *d, cap_corpus *c, const char *const *captions,
                        const int64_t *first, int64_t min_count,
                        int64_t max_words) {
  tiny_data(d, captions, first);
  cap_source src = {.tokenizer = CAP_TOKENS_ALNUM,
                    .min_count = min_count,
                    .max_words = max_words};
  ck_assert_int_eq(cap_corpus_prepare(&src, d, NULL, c), 0);
}

/* Two training images (2 and 1 captions) and a dev image; words seen
 * twice (min count 2): a, dog, runs; at most 3 words a caption. */
static void dog_corpus(cap_data *d, cap_corpus *c) {
  const char *caps[] = {"a dog runs", "a dog", "the cat runs .",
                        "a zebra sleeps"};
  tiny_corpus(d, c, caps, (int64_t[]){0, 2, 3, 4}, 2, 3);
}

START_TEST(vocabulary_ids_and_batches) {
  cap_data d;
  cap_corpus c;
  dog_corpus(&d, &c);
  /* training words seen twice: a, dog, runs (the dev caption's are not
   * counted) */
  ck_assert_int_eq(app_vocab_size(&c.vocab), APP_SPECIALS + 3);
  ck_assert_str_eq(app_vocab_token(&c.vocab, 4), "a");
  ck_assert_str_eq(app_vocab_token(&c.vocab, 5), "dog");
  ck_assert_str_eq(app_vocab_token(&c.vocab, 6), "runs");
  int64_t want[] = {4, 5, 6, 4, 5, APP_UNK, APP_UNK, 6, 4, APP_UNK, APP_UNK};
  ck_assert_int_eq(c.start[4], 11);
  for (int i = 0; i < 11; i++)
    ck_assert_int_eq(c.ids[i], want[i]);
  /* references keep every word */
  ck_assert_int_eq(c.words[3].n, 3);
  ck_assert_str_eq(app_token(&c.words[3], 1), "zebra");
  /* a batch of the captions "a dog runs" and "a dog": bos-led inputs,
   * targets at the positions that hold a word or the eos */
  cap_norm nm = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  cap_batch b;
  ck_assert_int_eq(cap_batch_build(&d, &c, &nm, (int64_t[]){0, 0}, 2,
                                   (int64_t[]){0, 1}, NULL, 2, NULL, NULL, &b),
                   0);
  ck_assert_int_eq(loom_size(b.inputs, 0), 4);
  int64_t in[] = {APP_BOS, APP_BOS, 4, 4, 5, 5, 6, APP_PAD};
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(loom_data_i64(b.inputs)[i], in[i]);
  int64_t keep[] = {0, 1, 2, 3, 4, 5, 6};
  int64_t tgt[] = {4, 4, 5, 5, 6, APP_EOS, APP_EOS};
  ck_assert_int_eq(loom_numel(b.keep), 7);
  for (int i = 0; i < 7; i++) {
    ck_assert_int_eq(loom_data_i64(b.keep)[i], keep[i]);
    ck_assert_int_eq(loom_data_i64(b.targets)[i], tgt[i]);
  }
  float px = loom_data_f32(b.images)[1];
  ck_assert_float_eq_tol(px, (37 / 255.0 - 0.5) / 0.25, 1e-5);
  cap_corpus_free(&c);
  cap_data_free(&d);
}
END_TEST

/* The teacher-forced log-probability of a caption (ids, eos appended). */
static double forced_logp(cap_model *m, const loom_tensor *image,
                          const int64_t *ids, int64_t n) {
  loom_scope *s = loom_scope_begin();
  loom_no_grad_begin();
  loom_module_train(&m->base, false);
  loom_tensor *in = loom_empty(LOOM_I64, LOOM_SHAPE(n + 1, 1)), *h;
  loom_data_i64(in)[0] = APP_BOS;
  memcpy(loom_data_i64(in) + 1, ids, (size_t)n * sizeof *ids);
  ck_assert_int_eq(cap_model_hidden(m, image, NULL, in, &h, NULL), 0);
  loom_tensor *lp = loom_log_softmax(
      loom_linear_layer_forward(m->out, loom_select(h, 1, 0)), -1);
  double total = 0;
  for (int64_t t = 0; t <= n; t++)
    total += loom_get(lp, (int64_t[]){t, t < n ? ids[t] : APP_EOS});
  loom_no_grad_end();
  loom_scope_end(s);
  return total;
}

START_TEST(decoding_through_the_library) {
  const struct {
    int mode;
    int64_t attention;
    bool positions, after;
  } kinds[] = {
      {CAP_IMAGE_FIRST, 0, false, false}, {CAP_IMAGE_INIT, 0, false, false},
      {CAP_IMAGE_EVERY, 0, false, false}, {CAP_IMAGE_INIT, 6, false, false},
      {CAP_IMAGE_INIT, 6, true, false},   {CAP_IMAGE_INIT, 6, true, true}};
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    cap_config cfg = {.side = 16,
                      .channels = {4, 6},
                      .blocks = 2,
                      .vocab = 9,
                      .embed = 5,
                      .hidden = 7,
                      .image_mode = kinds[k].mode,
                      .attention = kinds[k].attention,
                      .positions = kinds[k].positions,
                      .attend_after = kinds[k].after};
    cap_model *m = cap_model_new(&cfg, 3 + k);
    ck_assert_loom(m);
    /* sharper outputs, so that hypotheses differ and end */
    loom_no_grad_begin();
    loom_mul_scalar_(m->out->weight, 6);
    loom_no_grad_end();
    loom_tensor *x = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(3, 3, 16, 16));
    loom_decode_opts o = loom_decode_defaults(APP_BOS, APP_EOS);
    o.max_len_b = 6;
    loom_decode_result greedy, beam1, beam;
    ck_assert_int_eq(cap_describe(m, x, &o, &greedy), 0);
    o.method = LOOM_DECODE_BEAM;
    o.beam = 1;
    ck_assert_int_eq(cap_describe(m, x, &o, &beam1), 0);
    o.beam = 4;
    o.nbest = 4;
    ck_assert_int_eq(cap_describe(m, x, &o, &beam), 0);
    for (int64_t i = 0; i < 3; i++) {
      const loom_hypothesis *g = &greedy.hyps[i], *b1 = &beam1.hyps[i];
      ck_assert_int_eq(g->len, b1->len);
      ck_assert_mem_eq(g->tokens, b1->tokens,
                       (size_t)g->len * sizeof *g->tokens);
      ck_assert_double_le(g->score, beam.hyps[i * 4].score + 1e-9);
      loom_tensor *xi = loom_narrow(x, 0, i, 1);
      for (int h = 0; h < 4; h++) {
        const loom_hypothesis *bh = &beam.hyps[i * 4 + h];
        if (h)
          ck_assert_double_le(bh->score, beam.hyps[i * 4 + h - 1].score);
        ck_assert_msg(
            fabs(forced_logp(m, xi, bh->tokens, bh->len) - bh->score) < 1e-4,
            "kind %zu image %lld hypothesis %d: %g vs %g", k, (long long)i, h,
            forced_logp(m, xi, bh->tokens, bh->len), bh->score);
      }
      if (kinds[k].attention) { /* rows: distributions over 4 x 4 cells */
        const loom_hypothesis *bh = &beam.hyps[i * 4];
        ck_assert_int_eq(cap_model_feature_side(&cfg), 4);
        float *maps = malloc((size_t)(bh->len + 1) * 16 * sizeof *maps);
        ck_assert_int_eq(cap_attention_maps(m, xi, bh->tokens, bh->len, maps),
                         0);
        for (int64_t t = 0; t <= bh->len; t++) {
          double sum = 0;
          for (int c = 0; c < 16; c++)
            sum += maps[t * 16 + c];
          ck_assert_double_eq_tol(sum, 1, 1e-5);
        }
        free(maps);
      }
    }
    loom_decode_result_free(&greedy);
    loom_decode_result_free(&beam1);
    loom_decode_result_free(&beam);
    /* padding and bos rated likeliest are still never written, nor a
     * token the options suppress */
    loom_no_grad_begin();
    float *bias = loom_data_f32(m->out->bias);
    bias[APP_PAD] += 100;
    bias[APP_BOS] += 90;
    bias[5] += 80;
    loom_no_grad_end();
    o.suppress = (const int64_t[]){5};
    o.n_suppress = 1;
    ck_assert_int_eq(cap_describe(m, x, &o, &beam), 0);
    for (int64_t i = 0; i < 3 * 4; i++)
      for (int64_t t = 0; t < beam.hyps[i].len; t++)
        ck_assert(beam.hyps[i].tokens[t] != APP_PAD &&
                  beam.hyps[i].tokens[t] != APP_BOS &&
                  beam.hyps[i].tokens[t] != 5);
    loom_decode_result_free(&beam);
    cap_model_free(m);
  }
}
END_TEST

/* The caption taken from an n-best list: the best hypothesis, or the
 * minimum-Bayes-risk choice weighted by the hypotheses' probabilities or,
 * for samples, uniformly. Expected gains (NLTK sentence_bleu, method2):
 * with weights .6 .2 .2, 0.687 for "a dog runs" against 0.596 for "a dog
 * dog runs"; uniform, 0.585 against 0.624. */
START_TEST(minimum_bayes_risk_choice) {
  cap_data d;
  cap_corpus c;
  dog_corpus(&d, &c);
  /* ids: 4 a, 5 dog, 6 runs */
  int64_t adr[] = {4, 5, 6}, r[] = {6}, addr[] = {4, 5, 5, 6};
  loom_hypothesis h[4] = {{adr, 3, log(0.6), 0},
                          {r, 1, log(0.2), 0},
                          {addr, 4, log(0.2), 0},
                          {NULL, 0, -INFINITY, -INFINITY}};
  loom_decode_result res = {.n = 1, .nbest = 4, .hyps = h};
  app_tokens out = {0};
  app_buf text = {0};
  ck_assert_int_eq(cap_choose_caption(&c.vocab, &res, 0, false, &out), 0);
  ck_assert_int_eq(cap_tokens_text(&out, &text), 0);
  ck_assert_str_eq(text.data, "a dog runs");
  ck_assert_int_eq(cap_choose_caption(&c.vocab, &res, 0, true, &out), 0);
  ck_assert_int_eq(cap_tokens_text(&out, &text), 0);
  ck_assert_str_eq(text.data, "a dog dog runs");
  /* the probabilities count, not the order: the same list reversed */
  loom_hypothesis rev[3] = {h[2], h[1], h[0]};
  res = (loom_decode_result){.n = 1, .nbest = 3, .hyps = rev};
  ck_assert_int_eq(cap_choose_caption(&c.vocab, &res, 0, false, &out), 0);
  ck_assert_int_eq(cap_tokens_text(&out, &text), 0);
  ck_assert_str_eq(text.data, "a dog runs");
  /* one hypothesis a sentence: that one, for sentence k */
  res = (loom_decode_result){.n = 3, .nbest = 1, .hyps = h};
  ck_assert_int_eq(cap_choose_caption(&c.vocab, &res, 1, false, &out), 0);
  ck_assert_int_eq(cap_tokens_text(&out, &text), 0);
  ck_assert_str_eq(text.data, "runs");
  /* nothing found: an error, not a guess */
  res = (loom_decode_result){.n = 1, .nbest = 2, .hyps = h + 2};
  h[2].score = -INFINITY;
  ck_assert_int_eq(cap_choose_caption(&c.vocab, &res, 0, false, &out), -1);
  ck_assert_str_eq(loom_last_error(), "no caption to choose from");
  loom_clear_error();
  app_tokens_free(&out);
  app_buf_free(&text);
  cap_corpus_free(&c);
  cap_data_free(&d);
}
END_TEST

/* The loss and parameter gradients of one training batch. */
static double batch_grads(cap_model *m, const cap_batch *b, double *grads,
                          int64_t n) {
  loom_scope *s = loom_scope_begin();
  loom_tensor *params[32], *loss;
  int np = loom_module_parameters(&m->base, params, 32);
  for (int i = 0; i < np; i++)
    loom_zero_grad(params[i]);
  ck_assert_int_eq(cap_model_loss(m, b, &loss, NULL), 0);
  ck_assert_int_eq(loom_backward(loss), 0);
  int64_t at = 0;
  for (int i = 0; i < np; i++) {
    loom_tensor *g = loom_to_dtype(loom_grad(params[i]), LOOM_F64);
    int64_t k = loom_numel(g);
    ck_assert_int_le(at + k, n);
    memcpy(grads + at, loom_data(loom_contiguous(g)),
           (size_t)k * sizeof *grads);
    at += k;
  }
  ck_assert_int_eq(at, n);
  double l = loom_item(loss);
  loom_scope_end(s);
  return l;
}

/* A step over images with several captions each runs the CNN once per
 * image: the same loss and gradients as the pairs with the image repeated
 * (batch norm's statistics are the same over an image set repeated). */
START_TEST(captions_of_one_image_share_its_pass) {
  const char *caps[] = {"a dog runs", "a dog", "the cat runs", "a cat",
                        "a zebra sleeps"};
  cap_data d;
  cap_corpus c;
  tiny_corpus(&d, &c, caps, (int64_t[]){0, 2, 4, 5}, 1, 5);
  cap_pairs p;
  ck_assert_int_eq(cap_pairs_of(&d, CAP_TRAIN, 2, &p), 0);
  ck_assert_int_eq(p.n, 4);
  ck_assert_int_eq(p.n_groups, 2);
  ck_assert_int_eq(p.group[1], 2);
  cap_pairs_free(&p);
  ck_assert_int_eq(cap_pairs_of(&d, CAP_TRAIN, 1, &p), 0);
  ck_assert_int_eq(p.n_groups, 4);
  cap_pairs_free(&p);
  cap_norm nm = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  for (int kind = 0; kind < 2; kind++) {
    cap_config cfg = {.side = 8,
                      .channels = {4, 6},
                      .blocks = 2,
                      .vocab = app_vocab_size(&c.vocab),
                      .embed = 5,
                      .hidden = 7,
                      .image_mode = kind ? CAP_IMAGE_INIT : CAP_IMAGE_FIRST,
                      .attention = kind ? 3 : 0,
                      .positions = kind,
                      .attend_after = kind};
    cap_model *m = cap_model_new(&cfg, 11);
    ck_assert_loom(m);
    int64_t n = loom_module_num_elements(&m->base);
    double *a = malloc((size_t)n * sizeof *a),
           *b = malloc((size_t)n * sizeof *b);
    loom_scope *s = loom_scope_begin();
    cap_batch pairs, grouped;
    ck_assert_int_eq(cap_batch_build(&d, &c, &nm, (int64_t[]){0, 0, 1, 1}, 4,
                                     (int64_t[]){0, 1, 2, 3}, NULL, 4, NULL,
                                     NULL, &pairs),
                     0);
    ck_assert_int_eq(cap_batch_build(&d, &c, &nm, (int64_t[]){0, 1}, 2,
                                     (int64_t[]){0, 1, 2, 3},
                                     (int64_t[]){0, 0, 1, 1}, 4, NULL, NULL,
                                     &grouped),
                     0);
    ck_assert_int_eq(loom_size(grouped.images, 0), 2);
    double la = batch_grads(m, &pairs, a, n);
    double lb = batch_grads(m, &grouped, b, n);
    ck_assert_double_eq_tol(la, lb, 1e-6 * fabs(la));
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
      worst = fmax(worst, fabs(a[i] - b[i]));
      scale = fmax(scale, fabs(a[i]));
    }
    ck_assert_msg(scale > 0 && worst <= 1e-5 * scale,
                  "kind %d: gradients differ by %g (largest %g)", kind, worst,
                  scale);
    loom_scope_end(s);
    free(a);
    free(b);
    cap_model_free(m);
  }
  cap_corpus_free(&c);
  cap_data_free(&d);
}
END_TEST

/* --schedule cosine's curve, which a --minutes run follows by the clock:
 * from lr to a hundredth of it, halfway at the middle, clamped. */
START_TEST(cosine_rate) {
  ck_assert_double_eq_tol(cap_cosine_lr(2e-3, 0), 2e-3, 1e-15);
  ck_assert_double_eq_tol(cap_cosine_lr(2e-3, 0.5), (2e-3 + 2e-5) / 2, 1e-15);
  ck_assert_double_eq_tol(cap_cosine_lr(2e-3, 1), 2e-5, 1e-15);
  /* a quarter of the way: (1 + cos(pi / 4)) / 2 of the span */
  ck_assert_double_eq_tol(cap_cosine_lr(1, 0.25),
                          0.01 + 0.99 * (1 + sqrt(0.5)) / 2, 1e-15);
  ck_assert_double_eq_tol(cap_cosine_lr(1, -3), 1, 1e-15);
  ck_assert_double_eq_tol(cap_cosine_lr(1, 7), 0.01, 1e-15);
}
END_TEST

START_TEST(bad_model_configs) {
  cap_config cfg = {.side = 16,
                    .channels = {4, 6},
                    .blocks = 2,
                    .vocab = 9,
                    .embed = 5,
                    .hidden = 7,
                    .image_mode = CAP_IMAGE_FIRST,
                    .attention = 3};
  ck_assert_ptr_null(cap_model_new(&cfg, 1)); /* attention needs init */
  ck_assert(strstr(loom_last_error(), "attention needs"));
  loom_clear_error();
  cfg.attention = 0;
  cfg.blocks = 5; /* 16 pixels halved 5 times */
  ck_assert_ptr_null(cap_model_new(&cfg, 1));
  loom_clear_error();
  char text[256];
  cfg.blocks = 2;
  ck_assert_int_eq(cap_config_text(&cfg, text, sizeof text), 0);
  cap_config back;
  ck_assert_int_eq(cap_config_parse(text, &back), 0);
  ck_assert_int_eq(back.blocks, 2);
  ck_assert_int_eq(back.channels[1], 6);
  ck_assert_int_eq(back.hidden, 7);
  ck_assert(!back.positions);
  cfg.image_mode = CAP_IMAGE_INIT;
  cfg.positions = true; /* positions need attention */
  ck_assert_ptr_null(cap_model_new(&cfg, 1));
  ck_assert(
      strstr(loom_last_error(), "positions and attend after need attention"));
  loom_clear_error();
  cfg.attention = 3;
  ck_assert_int_eq(cap_config_text(&cfg, text, sizeof text), 0);
  ck_assert_int_eq(cap_config_parse(text, &back), 0);
  ck_assert(back.positions && back.attention == 3 && !back.attend_after);
  cfg.attend_after = true;
  ck_assert_int_eq(cap_config_text(&cfg, text, sizeof text), 0);
  ck_assert_int_eq(cap_config_parse(text, &back), 0);
  ck_assert(back.attend_after);
  /* written before positions existed */
  ck_assert_int_eq(cap_config_parse("side=16 cnn=4,6 vocab=9 embed=5 "
                                    "hidden=7 image=init attention=3 "
                                    "dropout=0",
                                    &back),
                   0);
  ck_assert(!back.positions);
  const char *bad[] = {
      "side=16 cnn=4,6 vocab=9 embed=5 hidden=7 image=first attention=0",
      "side=16 cnn=4,x vocab=9 embed=5 hidden=7 image=first attention=0 "
      "dropout=0",
      "side=16 cnn=4,6 vocab=2 embed=5 hidden=7 image=first attention=0 "
      "dropout=0",
      "side=16 cnn=4,6 vocab=9 embed=5 hidden=7 image=last attention=0 "
      "dropout=0",
      "side=99999999 cnn=4,6 vocab=9 embed=5 hidden=7 image=first "
      "attention=0 dropout=0",
      "side=16 cnn=4,6 vocab=9 embed=5 hidden=7 image=init attention=3 "
      "positions=2 dropout=0",
      "side=16 cnn=4,6 vocab=9 embed=5 hidden=7 image=init attention=3 "
      "attend=later dropout=0",
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    ck_assert_int_eq(cap_config_parse(bad[k], &back), -1);
    ck_assert(strstr(loom_last_error(), "caption"));
    loom_clear_error();
  }
}
END_TEST

/* A value too long for the reader's buffer is a malformed checkpoint, also
 * for the optional fields: read as absent, positions=<100 digits> had
 * loaded as positions 0 and attend=<a long word> as attend before. */
START_TEST(overlong_config_values) {
  const char *head = "side=16 cnn=4,6 vocab=9 embed=5 hidden=7 image=init "
                     "attention=3";
  char digits[101], word[81], line[512];
  memset(digits, '0', 100);
  digits[99] = '1';
  digits[100] = 0;
  memset(word, 'a', 80);
  word[80] = 0;
  const struct {
    const char *key, *value;
  } cases[] = {{"positions", digits}, {"attend", word},   {"cnn", word},
               {"image", word},       {"dropout", word},  {"hidden", digits},
               {"side", digits},      {"attention", word}};
  cap_config back;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    /* first, where it is the one read if the key comes twice */
    snprintf(line, sizeof line, "%s=%s %s dropout=0", cases[k].key,
             cases[k].value, head);
    ck_assert_msg(cap_config_parse(line, &back) == -1, "%s", line);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_FORMAT);
    char says[64];
    snprintf(says, sizeof says, ": %s is ", cases[k].key);
    ck_assert_msg(strstr(loom_last_error(), says), "'%s' lacks '%s'",
                  loom_last_error(), says);
    loom_clear_error();
  }
  /* the longest values that fit still parse as values */
  snprintf(line, sizeof line, "%s dropout=0 positions=%s", head, digits + 37);
  ck_assert_int_eq(cap_config_parse(line, &back), 0);
  ck_assert(back.positions);
  snprintf(line, sizeof line, "%s dropout=0 attend=%s", head, word + 17);
  ck_assert_int_eq(cap_config_parse(line, &back), -1);
  ck_assert(strstr(loom_last_error(), "attend is not before or after"));
  loom_clear_error();
  /* without the optional keys (an older checkpoint): their defaults */
  snprintf(line, sizeof line, "%s dropout=0", head);
  ck_assert_int_eq(cap_config_parse(line, &back), 0);
  ck_assert(!back.positions && !back.attend_after && back.attention == 3);
}
END_TEST

/* A checkpoint's step is checked like the rest of it: the library takes
 * any, and a negative one had resumed a run before its start. So is its
 * data's image side against the model's (eval made images of one side
 * for a model of the other). */
START_TEST(checkpoint_step_in_range) {
  char dir[] = "/tmp/loom-caption-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[64], vocab[80];
  snprintf(path, sizeof path, "%s/ck", dir);
  snprintf(vocab, sizeof vocab, "%s.vocab", path);
  cap_config cfg = {.side = 8,
                    .channels = {4},
                    .blocks = 1,
                    .vocab = 5,
                    .embed = 3,
                    .hidden = 4,
                    .image_mode = CAP_IMAGE_FIRST};
  cap_session s = {.cfg = cfg, .smooth = NAN};
  s.source =
      (cap_source){.scenes = true, .side = 8, .min_count = 1, .max_words = 5};
  s.source.scene =
      (cap_scene_opts){.n = {1, 0, 0}, .max_objects = 1, .colours = 2};
  for (int c = 0; c < 3; c++)
    s.norm.std[c] = 1;
  const char *tokens[] = {"<pad>", "<bos>", "<eos>", "<unk>", "red"};
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(
        app_strtab_intern(&s.vocab.tokens, tokens[i], strlen(tokens[i])), i);
  cap_model *m = cap_model_new(&cfg, 1);
  ck_assert_ptr_nonnull(m);
  const int64_t steps[] = {0, 7, -1, CAP_MAX_COUNT + 1};
  for (int k = 0; k < 4; k++) {
    ck_assert_int_eq(cap_checkpoint_save(path, &s, m, NULL, NULL, steps[k]), 0);
    cap_session back;
    int rc = cap_checkpoint_peek(path, &back);
    ck_assert_int_eq(rc, k < 2 ? 0 : -1);
    if (rc == 0)
      cap_session_free(&back);
    else
      ck_assert_msg(strstr(loom_last_error(), "step"), "%s", loom_last_error());
    loom_clear_error();
  }
  /* and the data's image side is the model's */
  s.source.side = 16;
  ck_assert_int_eq(cap_checkpoint_save(path, &s, m, NULL, NULL, 0), 0);
  cap_session back;
  ck_assert_int_eq(cap_checkpoint_peek(path, &back), -1);
  ck_assert_msg(strstr(loom_last_error(), "caption.data.side 16"), "%s",
                loom_last_error());
  loom_clear_error();
  cap_model_free(m);
  cap_session_free(&s);
  remove(path);
  remove(vocab);
  rmdir(dir);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("caption");
  TCase *t = tcase_create("caption");
  tcase_add_checked_fixture(t, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, tokenizers);
  tcase_add_test(t, vocabulary_ids_and_batches);
  tcase_add_test(t, decoding_through_the_library);
  tcase_add_test(t, minimum_bayes_risk_choice);
  tcase_add_test(t, captions_of_one_image_share_its_pass);
  tcase_add_test(t, cosine_rate);
  tcase_add_test(t, bad_model_configs);
  tcase_add_test(t, overlong_config_values);
  tcase_add_test(t, checkpoint_step_in_range);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return loom_run_suite(suite()); }
