/* charlm's checkpoint reading on arbitrary bytes: charlm_checkpoint_peek
 * (the config, vocabulary, position, states and history, all checked)
 * fails with a message, or gives a session that holds what its header
 * promises; then a small model built from that config loads the file,
 * generates characters and resumes from it (which fails with a message or
 * succeeds). Built with -DFUZZ_MAKE_SEED, it is instead the program that
 * writes seed checkpoints (a recurrent model with states and history, and
 * a transformer). */
#include "fuzz_util.h"

#include "../../apps/charlm/charlm.h"

#include <math.h>

/* Parameters the config asks for, roughly; fuzzing builds only small
 * models (a valid config may ask for gigabytes). */
static double size_of(const charlm_config *c) {
  double e = (double)c->embed, h = (double)c->hidden;
  return (double)c->vocab * (e + h) + (double)c->layers * 4 * h * (e + h + 8) +
         (double)c->context * h + (double)c->ff * h * (double)c->layers;
}

/* What a session read from a file must hold. */
static void check_session(const charlm_session *s) {
  bool ok = s->vocab == s->cfg.vocab && s->vocab >= 1 && s->vocab <= 256;
  for (int i = 1; ok && i < s->vocab; i++)
    ok = s->chars[i] > s->chars[i - 1];
  for (int k = 0; ok && k < s->n_states; k++)
    ok = !s->state[k] ||
         (loom_dtype_of(s->state[k]) == LOOM_F32 &&
          loom_size(s->state[k], 0) == s->cfg.layers &&
          loom_size(s->state[k], 2) == s->cfg.hidden);
  for (int64_t i = 0; ok && i < s->history.n; i++)
    ok = isfinite(s->history.train[i]) && s->history.step[i] >= 0;
  if (!ok) {
    fprintf(stderr, "a session that breaks its promises was read\n");
    abort();
  }
}

static void generate(charlm *m, const charlm_session *s) {
  charlm_gen *g = charlm_gen_new(m);
  int64_t ids[3] = {0, s->vocab - 1, 0};
  loom_tensor *logits = NULL;
  loom_no_grad_begin();
  if (!g || charlm_gen_feed(g, ids, 3, &logits) < 0)
    fuzz_said_why();
  else if (loom_numel(logits) != s->vocab)
    abort();
  loom_no_grad_end();
  loom_release(logits);
  charlm_gen_free(g);
}

static void resume(charlm *m, const char *path, const charlm_session *read) {
  loom_tensor *params[64];
  int n = loom_module_parameters(&m->base, params, 64);
  loom_optimizer *opt =
      n <= 64 ? loom_adam_new(params, n, loom_adam_defaults(1e-3)) : NULL;
  charlm_session s = {.cfg = read->cfg, .vocab = read->vocab};
  memcpy(s.chars, read->chars, sizeof s.chars);
  int64_t step = 0;
  if (!opt || charlm_checkpoint_resume(path, m, opt, &step, &s) < 0)
    fuzz_said_why();
  else if (step < 0 || s.position < 0 ||
           !app_in_range(loom_optimizer_lr(opt), CHARLM_LR_RANGE))
    abort();
  charlm_session_free(&s);
  loom_optimizer_free(opt);
}

#ifdef FUZZ_MAKE_SEED
/* A checkpoint as training writes it, of a tiny model of `cell`. */
static int seed(const char *path, const char *cell) {
  charlm_config cfg = {.vocab = 5, .embed = 4, .hidden = 8, .layers = 1,
                       .heads = 2, .context = 6};
  snprintf(cfg.cell, sizeof cfg.cell, "%s", cell);
  charlm *m = charlm_new(&cfg, 1);
  loom_tensor *params[64];
  int n = m ? loom_module_parameters(&m->base, params, 64) : 0;
  loom_optimizer *opt = loom_adam_new(params, n, loom_adam_defaults(2e-3));
  if (!m || !opt)
    return -1;
  charlm_session s = {.cfg = m->cfg, .vocab = 5, .position = 3,
                      .n_states = charlm_n_states(m)};
  memcpy(s.chars, "\n :ab", 5);
  loom_scope *scope = loom_scope_begin();
  for (int k = 0; k < s.n_states; k++)
    s.state[k] = loom_keep(loom_zeros(LOOM_F32, LOOM_SHAPE(1, 2, 8)));
  loom_scope_end(scope);
  int rc = 0;
  for (int i = 1; rc == 0 && i <= 3; i++)
    rc = charlm_history_add(&s.history, false, 10.0 * i, 2.0 / i) |
         charlm_history_add(&s.history, true, 10.0 * i, 2.5 / i);
  if (rc == 0)
    rc = charlm_checkpoint_save(path, m, opt, 30, &s);
  charlm_session_free(&s);
  loom_optimizer_free(opt);
  charlm_free(m);
  return rc;
}

int main(int argc, char **argv) {
  int rc = argc < 3 ? -1 : seed(argv[1], "lstm") | seed(argv[2], "transformer");
  if (rc)
    fprintf(stderr, "no seed: %s\n", loom_last_error());
  return rc ? 1 : 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("charlm_checkpoint");
  fuzz_write(path, data, size);
  charlm_session s;
  loom_tensor_map *file = loom_safetensors_load(path);
  if (!file || charlm_checkpoint_peek(file, path, &s) < 0) {
    loom_tensor_map_free(file);
    fuzz_said_why();
    return 0;
  }
  check_session(&s);
  if (size_of(&s.cfg) < 1e6) {
    charlm *m = charlm_new(&s.cfg, 1);
    if (!m || loom_checkpoint_restore(file, path, &m->base, NULL, NULL, NULL,
                                      NULL, NULL) < 0)
      fuzz_said_why();
    else {
      generate(m, &s);
      resume(m, path, &s);
    }
    charlm_free(m);
  }
  loom_tensor_map_free(file);
  charlm_session_free(&s);
  loom_clear_error();
  return 0;
}
#endif
