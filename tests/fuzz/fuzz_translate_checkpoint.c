/* translate's checkpoint reading on arbitrary bytes, both ways the app
 * reads one: as `translate translate` does (translate_cmd.c's load, static
 * there, step by step: the library's part with the extra tensors, the
 * model's configuration, the text pipeline, whose vocabularies must be the
 * configuration's, then a model made from it loads its weights), and as
 * `translate train --resume` does (train_read_state: position,
 * configuration, settings, history and pipeline, then a model and Adam
 * restored from the file as train.c's prepare does it). Each step fails
 * with a message or gives what it promises; a model that loads translates
 * a short line by beam search, and a resumed one stands at the file's
 * step. Built with -DFUZZ_MAKE_SEED, it is instead the program that writes
 * seed checkpoints as training does (an attention RNN with BPE, and a
 * transformer with a joint vocabulary). */
#include "fuzz_util.h"

#include "../../apps/translate/train.h"

#include <math.h>

/* Parameters (and position rows) the config asks for, roughly; fuzzing
 * builds only small models (a valid config may ask for gigabytes). */
static double size_of(const nmt_config *c) {
  double sv = (double)c->src_vocab, tv = (double)c->tgt_vocab;
  if (!strcmp(c->model, "rnn")) {
    double e = (double)c->embed, h = (double)c->hidden;
    return (sv + tv) * e + tv * h +
           (double)c->layers * 4 * h * (2 * e + 3 * h) + 6 * h * h;
  }
  double d = (double)c->d_model, ff = (double)c->ff;
  return (sv + 2 * tv) * d +
         (double)(c->enc_layers + 2 * c->dec_layers) * d * (4 * d + 2 * ff) +
         (double)c->max_positions * d;
}

/* The app's readers print their refusals ("translate: ...") instead: while
 * they run, stderr is a memory stream. ASan and UBSan write to file
 * descriptor 2 and libFuzzer to its own stream, so their reports still
 * show. */
static FILE *real_stderr;
static char *printed;
static size_t printed_len;

static void hear_begin(void) {
  real_stderr = stderr;
  stderr = open_memstream(&printed, &printed_len);
  if (!stderr)
    abort(); /* a broken run, not a finding */
}

/* Ends hearing: whether the app printed a message of its own. */
static bool hear_end(void) {
  fclose(stderr);
  stderr = real_stderr;
  bool said = printed_len > 11 && !strncmp(printed, "translate: ", 11);
  free(printed);
  printed = NULL;
  return said;
}

/* What a configuration and a pipeline read from a file must hold. */
static void check_read(const nmt_config *c, const nmt_text *t) {
  hear_begin();
  bool ok = nmt_config_check(c) == 0;
  hear_end();
  const nmt_text_opts *o = nmt_text_options(t);
  ok = ok &&
       (!strcmp(o->tokenize, "lower") || !strcmp(o->tokenize, "reversible"));
  ok = ok && o->bpe_merges >= 0 && o->min_count >= 1;
  for (int s = 0; ok && s < 2; s++)
    ok = nmt_text_vocab_size(t, s) >= APP_SPECIALS;
  if (!ok)
    fuzz_fail("a configuration or pipeline that breaks its promises was read");
}

/* translate_cmd.c's load: the model (small ones only; NULL otherwise or
 * when the file is refused) and its pipeline (*t, also after a refusal of
 * the model). */
static nmt_model *load(const char *path, nmt_text **t) {
  loom_tensor_map *extra = NULL;
  int64_t step;
  nmt_config c;
  *t = NULL;
  if (loom_checkpoint_load(path, NULL, NULL, NULL, &step, NULL, &extra) < 0) {
    fuzz_said_why();
    return NULL;
  }
  hear_begin();
  int rc = nmt_config_load(&c, extra) == 0 &&
                   (*t = nmt_text_load(extra, path)) != NULL
               ? 0
               : -1;
  if (!hear_end() && rc < 0)
    fuzz_fail("failed without an error message");
  loom_tensor_map_free(extra);
  if (rc < 0)
    return NULL;
  check_read(&c, *t);
  /* the app refuses a pipeline of other vocabularies than the model's */
  if (nmt_text_vocab_size(*t, false) != c.src_vocab ||
      nmt_text_vocab_size(*t, true) != c.tgt_vocab || size_of(&c) > 1e6)
    return NULL;
  nmt_model *m = nmt_model_new(&c, 0);
  if (!m ||
      loom_checkpoint_load(path, &m->base, NULL, NULL, &step, NULL, NULL) < 0) {
    fuzz_said_why();
    if (m)
      loom_module_free(&m->base);
    return NULL;
  }
  loom_module_train(&m->base, false);
  return m;
}

/* A line as `translate translate` reads it (ids, eos last; too long for a
 * transformer's positions, the app refuses it) and its beam search: every
 * token written is a target word, never padding, bos or eos, within the
 * length limit, and the best translation decodes to text. */
static void translate(nmt_model *m, const nmt_text *t) {
  static const char line[] = "a b";
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  if (nmt_text_encode(t, false, line, strlen(line), "fuzz", &ids, &n, &cap) <
      0) {
    fuzz_said_why();
    return;
  }
  bool ok = n >= 1 && ids[n - 1] == NMT_EOS;
  for (int64_t i = 0; ok && i < n; i++)
    ok = ids[i] >= 0 && ids[i] < m->cfg.src_vocab;
  if (!ok)
    fuzz_fail("a line was read as ids outside the vocabulary, or without eos");
  nmt_corpus c = {0};
  loom_decode_result r = {0};
  loom_decode_opts o = loom_decode_defaults(NMT_BOS, NMT_EOS);
  o.method = LOOM_DECODE_BEAM;
  o.beam = o.nbest = 2;
  o.alpha = 0.6;
  o.max_len_a = 1;
  o.max_len_b = 2;
  bool too_long =
      !strcmp(m->cfg.model, "transformer") && n > m->cfg.max_positions;
  if (too_long || nmt_corpus_add(&c, ids, n, NULL, 0, 1) < 0 ||
      nmt_translate_corpus(m, &c, &o, 4096, 0, &r) < 0) {
    if (!too_long)
      fuzz_said_why();
    nmt_corpus_free(&c);
    free(ids);
    return;
  }
  for (int k = 0; k < 2; k++) {
    const loom_hypothesis *h = &r.hyps[k];
    bool fits = r.n == 1 && h->len >= 0 && h->len <= n + 2;
    for (int64_t i = 0; fits && i < h->len; i++)
      fits = h->tokens[i] > NMT_EOS && h->tokens[i] < m->cfg.tgt_vocab;
    if (!fits)
      fuzz_fail("a translation holds tokens the model cannot write");
  }
  app_buf text = {0};
  if (nmt_text_decode(t, r.hyps[0].tokens, r.hyps[0].len, &text) < 0)
    fuzz_said_why();
  app_buf_free(&text);
  loom_decode_result_free(&r);
  nmt_corpus_free(&c);
  free(ids);
}

/* What a resumed run reads must be what its flags could have set. */
static void check_state(const train_options *o, const train_position *at,
                        const train_history *h) {
  const int64_t most = (int64_t)1 << 40;
  bool ok = at->step >= 0 && at->step <= most && at->epoch >= 0 &&
            at->epoch <= most && at->batch >= 0 && at->batch <= most &&
            at->seconds >= 0 && at->seconds < 1e12;
  ok = ok && o->max_tokens >= 1 && o->batch_sentences >= 0 && o->warmup >= 0 &&
       o->seed >= 0 && app_in_range(o->lr, TRANSLATE_LR_RANGE) &&
       o->smoothing >= 0 && o->smoothing <= 1 &&
       app_in_range(o->clip, TRANSLATE_CLIP_RANGE);
  for (int64_t i = 0; ok && i < h->n; i++)
    ok = isfinite(h->step[i]) && isfinite(h->loss[i]);
  for (int64_t i = 0; ok && i < h->n_val; i++)
    ok = isfinite(h->epoch[i]) && isfinite(h->val_loss[i]) &&
         isfinite(h->val_bleu[i]);
  if (!ok)
    fuzz_fail("a training state that breaks its promises was read");
}

/* `translate train --resume`: the state, then (for small models) the
 * model and Adam from the file. */
static void resume(const char *path) {
  train_options o = {0};
  train_position at;
  train_history h = {0};
  nmt_text *t = NULL;
  hear_begin();
  loom_tensor_map *file = loom_safetensors_load(path);
  int rc = file ? train_read_state(file, path, &o, &at, &h, &t) : -1;
  if (rc == 0) { /* the vocabularies are the pipeline's */
    o.model.src_vocab = nmt_text_vocab_size(t, false);
    o.model.tgt_vocab = nmt_text_vocab_size(t, true);
    rc = nmt_config_check(&o.model);
  }
  if (!hear_end() && rc < 0 && loom_last_status() == LOOM_OK)
    fuzz_fail("failed without an error message");
  loom_clear_error();
  if (rc == 0) {
    check_read(&o.model, t);
    check_state(&o, &at, &h);
  }
  nmt_model *m =
      rc == 0 && size_of(&o.model) < 1e6 ? nmt_model_new(&o.model, 1) : NULL;
  loom_tensor *params[256];
  int n = m ? loom_module_parameters(&m->base, params, 256) : 0;
  loom_adam_opts a = loom_adam_defaults(o.lr);
  a.beta2 = 0.98;
  a.eps = 1e-9;
  loom_optimizer *opt = m && n <= 256 ? loom_adam_new(params, n, a) : NULL;
  int64_t step = -1;
  if (rc == 0 && size_of(&o.model) < 1e6) {
    if (!opt || loom_checkpoint_restore(file, path, &m->base, opt, NULL, &step,
                                        m->rng, NULL) < 0)
      fuzz_said_why();
    else if (step != at.step)
      fuzz_fail("a run resumed at another step than its position's");
  }
  loom_optimizer_free(opt);
  if (m)
    loom_module_free(&m->base);
  loom_tensor_map_free(file);
  nmt_text_free(t);
  train_history_free(&h);
}

#ifdef FUZZ_MAKE_SEED
static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  int rc = f && fputs(text, f) >= 0 ? 0 : -1;
  if (f && fclose(f) != 0)
    rc = -1;
  return rc;
}

/* A checkpoint as `translate train` writes it, of a tiny `model` with its
 * pipeline learned from a few lines. */
static int seed(const char *path, const char *model) {
  bool rnn = !strcmp(model, "rnn");
  char src[4200], tgt[4200];
  snprintf(src, sizeof src, "%s.src", path);
  snprintf(tgt, sizeof tgt, "%s.tgt", path);
  if (write_text(src, "Ein Mann läuft schnell.\nZwei Hunde spielen im "
                      "Schnee.\nein kleiner Hund läuft .\n") < 0 ||
      write_text(tgt, "A man runs fast.\nTwo dogs play in the snow.\n"
                      "a small dog runs .\n") < 0)
    return -1;
  nmt_text_opts to = nmt_text_defaults();
  snprintf(to.tokenize, sizeof to.tokenize, "%s", rnn ? "lower" : "reversible");
  to.min_count = 1;
  to.bpe_merges = 12;
  to.joint = !rnn;
  nmt_text *t = nmt_text_learn(&to, src, tgt);
  remove(src);
  remove(tgt);
  if (!t)
    return -1;
  nmt_config c = nmt_config_defaults(model);
  c.src_vocab = nmt_text_vocab_size(t, false);
  c.tgt_vocab = nmt_text_vocab_size(t, true);
  c.embed = 4;
  c.hidden = 6;
  c.layers = 1;
  c.d_model = 8;
  c.heads = 2;
  c.ff = 16;
  c.enc_layers = c.dec_layers = 1;
  c.max_positions = 16;
  c.learned_positions = c.pre_norm = c.share_all = !rnn;
  nmt_model *m = nmt_model_new(&c, 1);
  loom_tensor *params[256];
  int n = m ? loom_module_parameters(&m->base, params, 256) : 0;
  loom_optimizer *opt =
      m ? loom_adam_new(params, n, loom_adam_defaults(5e-4)) : NULL;
  train_options o = {.max_tokens = 64,
                     .warmup = 10,
                     .seed = 1,
                     .lr = 5e-4,
                     .smoothing = 0.1,
                     .clip = 1};
  train_position at = {.step = 30, .epoch = 1, .batch = 2, .seconds = 12.5};
  train_history h = {0};
  int rc = opt ? 0 : -1;
  for (int i = 1; rc == 0 && i <= 3; i++)
    rc = train_history_push(&h, 10.0 * i, 3.0 / i);
  if (rc == 0)
    rc = train_history_push_val(&h, 1, 2.5, 3.25);
  if (rc == 0)
    rc = train_save(path, m, opt, &o, t, &at, &h);
  train_history_free(&h);
  loom_optimizer_free(opt);
  if (m)
    loom_module_free(&m->base);
  nmt_text_free(t);
  return rc;
}

int main(int argc, char **argv) {
  int rc = argc < 3 ? -1 : seed(argv[1], "rnn") | seed(argv[2], "transformer");
  if (rc)
    fprintf(stderr, "no seed: %s\n", loom_last_error());
  return rc ? 1 : 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("translate_checkpoint");
  fuzz_write(path, data, size);
  nmt_text *t;
  nmt_model *m = load(path, &t);
  if (m) {
    translate(m, t);
    loom_module_free(&m->base);
  }
  nmt_text_free(t);
  resume(path);
  loom_clear_error();
  return 0;
}
#endif
