/* caption's checkpoint reading on arbitrary bytes: cap_checkpoint_peek
 * (the model's config, where the data came from, the normalisation, the
 * position and order, the history, the smoothed loss, and PATH.vocab,
 * all checked) fails with a message, or gives a session that holds what
 * its header promises; then, for small models, cap_checkpoint_load as
 * `caption describe` calls it, a caption of one image (beam search and
 * the minimum-Bayes-risk choice; with attention, where it looked), and
 * Adam and a schedule resumed from the file as training does it. The
 * vocabulary file beside the checkpoint is always the same (the text_vocab
 * target fuzzes its reader). Built with -DFUZZ_MAKE_SEED, it is instead
 * the program that writes seed checkpoints (a Show and Tell model of
 * generated scenes, and one with attention of a Flickr8k folder). */
#include "fuzz_util.h"

#include "../../apps/caption/caption.h"

#include <math.h>

/* Parameters the config asks for and the CNN's multiply-adds on an image,
 * roughly; fuzzing builds and runs only small models (a valid config may
 * ask for gigabytes). */
static double size_of(const cap_config *c) {
  double e = (double)c->embed, h = (double)c->hidden, v = (double)c->vocab;
  double side = (double)c->side, in = 3, work = 0, params = 0;
  for (int i = 0; i < c->blocks; i++) {
    double ch = (double)c->channels[i];
    params += 9 * in * ch + 4 * ch;
    work += side * side * 9 * in * ch;
    side = floor(side / 2);
    in = ch;
  }
  double k = in + 2; /* attention's keys, with positions */
  return params + work + in * e + 2 * e * h + (h + k) * (double)c->attention +
         v * e + 4 * h * (2 * e + k + h) + (h + k) * v;
}

/* The words of the vocabulary beside every checkpoint here. */
static const char *const words[] = {"a", "blue", "circle", "red", "square"};
enum { N_WORDS = sizeof words / sizeof *words };

/* Writes that vocabulary (the specials, then the words) to PATH.vocab. */
static int write_vocab(const char *path) {
  app_vocab v = {0};
  int rc = 0;
  for (int i = 0; rc == 0 && i < APP_SPECIALS + N_WORDS; i++) {
    const char *w =
        i < APP_SPECIALS ? app_vocab_special(i) : words[i - APP_SPECIALS];
    rc = app_strtab_intern(&v.tokens, w, strlen(w)) == i ? 0 : -1;
  }
  char name[4200];
  snprintf(name, sizeof name, "%s.vocab", path);
  if (rc == 0)
    rc = app_vocab_save(&v, name);
  app_vocab_free(&v);
  return rc;
}

/* What a session read from a file must hold. */
static void check_session(const cap_session *s) {
  const cap_source *d = &s->source;
  bool ok = cap_config_check(&s->cfg) == 0 &&
            app_vocab_size(&s->vocab) == s->cfg.vocab && d->side >= 4 &&
            d->side <= CAP_MAX_INPUT_SIDE && d->min_count >= 1 &&
            d->max_words >= 1 && d->max_words <= CAP_MAX_WORDS;
  if (d->scenes)
    ok = ok && d->scene.n[CAP_TRAIN] >= 1 && d->scene.max_objects >= 1 &&
         d->scene.max_objects <= CAP_SCENE_MAX_OBJECTS &&
         d->scene.colours >= 2 && d->scene.colours <= CAP_SCENE_COLOURS &&
         d->scene.holdout >= 0 && d->scene.holdout < 1;
  for (int k = 0; ok && !d->scenes && k < d->flickr.n_images; k++)
    ok = d->flickr.images[k] != NULL;
  for (int c = 0; ok && c < 3; c++)
    ok = s->norm.mean[c] >= 0 && s->norm.mean[c] <= 1 &&
         s->norm.std[c] > 1e-6 && s->norm.std[c] <= 1;
  ok = ok && s->epoch >= 0 && s->position >= 0 && s->position <= s->n_order &&
       (s->n_order == 0 || s->order);
  for (int64_t i = 0; ok && i < s->n_order; i++)
    ok = s->order[i] >= 0 && s->order[i] < s->n_order;
  for (int64_t i = 0; ok && i < 2 * s->history.n_train; i++)
    ok = isfinite(s->history.train[i]);
  for (int64_t i = 0; ok && i < CAP_DEV_COLUMNS * s->history.n_dev; i++)
    ok = isfinite(s->history.dev[i]);
  ok = ok && (isnan(s->smooth) || (s->smooth >= 0 && s->smooth < 1e6));
  loom_clear_error();
  if (!ok)
    fuzz_fail("a session that breaks its promises was read");
}

/* `caption describe` on one image: every token written is a word of the
 * vocabulary (never padding, bos or eos) within the length limit, the
 * chosen caption is text, and an attention model's maps are of its
 * feature map's cells. */
static void describe(cap_model *m, const cap_session *s) {
  int side = (int)m->cfg.side;
  size_t plane = (size_t)side * (size_t)side;
  unsigned char *chw = malloc(3 * plane);
  if (!chw)
    abort();
  for (size_t i = 0; i < 3 * plane; i++)
    chw[i] = (unsigned char)(i * 37);
  loom_scope *scope = loom_scope_begin();
  loom_tensor *x = loom_empty(LOOM_F32, LOOM_SHAPE(1, 3, side, side));
  if (!x)
    abort();
  cap_pixels_to_input(chw, side, &s->norm, NULL, loom_data_f32(x));
  loom_decode_opts o = loom_decode_defaults(APP_BOS, APP_EOS);
  o.method = LOOM_DECODE_BEAM;
  o.beam = o.nbest = 2;
  o.max_len_b = 4;
  loom_decode_result r;
  app_tokens chosen = {0};
  app_buf text = {0};
  if (cap_describe(m, x, &o, &r) < 0) {
    fuzz_said_why();
  } else {
    for (int k = 0; k < 2; k++) {
      const loom_hypothesis *h = &r.hyps[k];
      bool ok = r.n == 1 && h->len >= 0 && h->len <= 4;
      for (int64_t i = 0; ok && i < h->len; i++)
        ok = h->tokens[i] > APP_EOS && h->tokens[i] < m->cfg.vocab;
      if (!ok)
        fuzz_fail("a caption holds tokens the model cannot write");
    }
    if (cap_choose_caption(&s->vocab, &r, 0, false, &chosen) < 0 ||
        cap_tokens_text(&chosen, &text) < 0)
      fuzz_said_why();
    const loom_hypothesis *best = &r.hyps[0];
    int64_t cells = cap_model_feature_side(&m->cfg);
    float *maps = malloc((size_t)(best->len + 1) * (size_t)(cells * cells) *
                         sizeof *maps);
    if (!maps)
      abort();
    if (m->cfg.attention &&
        cap_attention_maps(m, x, best->tokens, best->len, maps) < 0)
      fuzz_said_why();
    free(maps);
    loom_decode_result_free(&r);
  }
  app_tokens_free(&chosen);
  app_buf_free(&text);
  loom_scope_end(scope);
  free(chw);
}

/* Training's resume: Adam and a cosine schedule restored from the file. */
static void resume(cap_model *m, const char *path) {
  loom_tensor *params[64];
  int n = loom_module_parameters(&m->base, params, 64);
  loom_optimizer *opt =
      n <= 64 ? loom_adam_new(params, n, loom_adam_defaults(1e-3)) : NULL;
  loom_schedule_opts so = loom_schedule_defaults(LOOM_SCHEDULE_COSINE);
  so.t_max = 100;
  so.eta_min = 1e-5;
  loom_schedule *sched = opt ? loom_schedule_new(opt, so) : NULL;
  int64_t step = -1;
  if (!sched ||
      loom_checkpoint_load(path, &m->base, opt, sched, &step, m->rng, NULL) < 0)
    fuzz_said_why();
  else if (step < 0)
    fuzz_fail("a run resumed at a negative step");
  loom_schedule_free(sched);
  loom_optimizer_free(opt);
}

#ifdef FUZZ_MAKE_SEED
/* A checkpoint as training writes it (and no vocabulary file beside it:
 * the fuzzer writes its own), of a tiny model: Show and Tell on generated
 * scenes, or with attention (after the word, with positions) on a
 * Flickr8k folder. */
static int seed(const char *path, bool attention) {
  cap_config cfg = {.side = 8,
                    .channels = {4, 8},
                    .blocks = 2,
                    .vocab = APP_SPECIALS + N_WORDS,
                    .embed = 4,
                    .hidden = 6,
                    .image_mode = attention ? CAP_IMAGE_INIT : CAP_IMAGE_FIRST,
                    .attention = attention ? 5 : 0,
                    .positions = attention,
                    .attend_after = attention,
                    .dropout = 0.3};
  cap_session s = {
      .cfg = cfg, .epoch = 1, .position = 1, .n_order = 3, .smooth = 1.5};
  cap_source *d = &s.source;
  d->side = 8;
  d->tokenizer = attention ? CAP_TOKENS_WORDS : CAP_TOKENS_ALNUM;
  d->min_count = 1;
  d->max_words = 12;
  d->scenes = !attention;
  d->scene = (cap_scene_opts){.side = 8,
                              .n = {3, 1, 1},
                              .max_objects = 2,
                              .colours = 3,
                              .holdout = 0.25,
                              .seed = 7};
  d->flickr = (cap_flickr_source){.dir = "flickr8k",
                                  .captions = "flickr8k/captions.txt",
                                  .images = {"flickr8k/a.tar", "flickr8k/b"},
                                  .n_images = 2};
  for (int c = 0; c < 3; c++) {
    s.norm.mean[c] = 0.4 + 0.05 * c;
    s.norm.std[c] = 0.25;
  }
  int64_t order[3] = {2, 0, 1};
  s.order = order;
  int rc = 0;
  for (int i = 1; rc == 0 && i <= 3; i++)
    rc = cap_history_add(&s.history, false, (double[]){10.0 * i, 2.0 / i}) |
         cap_history_add(&s.history, true,
                         (double[]){10.0 * i, 40, 20, 10, 5, 12.5 * i});
  char vocab[4200];
  snprintf(vocab, sizeof vocab, "%s.vocab", path);
  rc |= write_vocab(path) | app_vocab_load(&s.vocab, vocab);
  cap_model *m = rc == 0 ? cap_model_new(&cfg, 1) : NULL;
  loom_tensor *params[64];
  int n = m ? loom_module_parameters(&m->base, params, 64) : 0;
  loom_optimizer *opt =
      m && n <= 64 ? loom_adam_new(params, n, loom_adam_defaults(1e-3)) : NULL;
  loom_schedule_opts so = loom_schedule_defaults(LOOM_SCHEDULE_COSINE);
  so.t_max = 100;
  so.eta_min = 1e-5;
  loom_schedule *sched = opt ? loom_schedule_new(opt, so) : NULL;
  rc = sched ? cap_checkpoint_save(path, &s, m, opt, sched, 30) : -1;
  remove(vocab);
  loom_schedule_free(sched);
  loom_optimizer_free(opt);
  cap_model_free(m);
  s.order = NULL; /* the array above */
  cap_session_free(&s);
  return rc;
}

int main(int argc, char **argv) {
  int rc = argc < 3 ? -1 : seed(argv[1], false) | seed(argv[2], true);
  if (rc)
    fprintf(stderr, "no seed: %s\n", loom_last_error());
  return rc ? 1 : 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("caption_checkpoint");
  static bool vocab_written;
  if (!vocab_written && write_vocab(path) < 0)
    abort(); /* a broken run, not a finding */
  vocab_written = true;
  fuzz_write(path, data, size);
  cap_session s;
  if (cap_checkpoint_peek(path, &s) < 0) {
    fuzz_said_why();
    return 0;
  }
  check_session(&s);
  if (size_of(&s.cfg) < 2e6) {
    cap_session loaded;
    cap_model *m;
    if (cap_checkpoint_load(path, &loaded, &m, NULL, NULL, NULL) < 0) {
      fuzz_said_why();
    } else {
      describe(m, &loaded);
      resume(m, path);
      cap_model_free(m);
      cap_session_free(&loaded);
    }
  }
  cap_session_free(&s);
  loom_clear_error();
  return 0;
}
#endif
