/* Sampling: the model of a checkpoint reads --prime, then writes --length
 * characters, each drawn from its softmax at --temperature (0: the
 * likeliest), among the --top-k likeliest if asked, through the library's
 * decoder (nn/decode.h). */
#define _POSIX_C_SOURCE 200809L
#include "charlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  charlm_gen *gen;
  const unsigned char *chars; /* id -> byte */
} sampler;

/* The library's decoder drives generation: a step feeds the previous
 * character to the model (its recurrent state, or the transformer's
 * caches) and returns the log-probabilities of the next. From the second
 * step on, the character fed is the one just drawn, and it is written
 * then: the text comes out as it is made, not at the end. */
static int step(void *ctx, int64_t t, const loom_tensor *tokens,
                loom_tensor **log_probs) {
  sampler *p = ctx;
  int64_t c = loom_data_i64(tokens)[0];
  if (t > 0) {
    fputc(p->chars[c], stdout);
    if (ferror(stdout)) {
      /* a full disk, or a closed pipe with SIGPIPE ignored: stop drawing
       * (charlm_sample's app_finish_stdout says why) */
      loom_set_error(LOOM_ERR_IO, "standard output failed");
      return -1;
    }
  }
  loom_tensor *logits = NULL;
  if (charlm_gen_feed(p->gen, &c, 1, &logits) < 0)
    return -1;
  *log_probs = loom_log_softmax(loom_unsqueeze(logits, 0), -1); /* (1, V) */
  loom_release(logits);
  return *log_probs ? 0 : -1;
}

/* Characters a call of the decoder draws at most: the decoder keeps every
 * token it draws until it returns, and a run as long as --length allows
 * (10^12) is written as it goes, so it is drawn in parts, each going on
 * from the model's state and the last character of the one before (the
 * same text as one call would give). */
#define PART 65536

/* Writes the prime and `o->length` characters the model generates after
 * it; 0 or -1 with an error. */
static int generate(charlm *m, const charlm_session *s,
                    const charlm_options *o) {
  int16_t ids_of[256];
  for (int b = 0; b < 256; b++)
    ids_of[b] = -1;
  for (int i = 0; i < s->vocab; i++)
    ids_of[s->chars[i]] = (int16_t)i;
  /* Prime: characters the model does not know are skipped. Its last one
   * is the decoder's first token; the rest is fed before. */
  size_t plen = strlen(o->prime);
  int64_t *ids = malloc((plen + 1) * sizeof *ids);
  int64_t n = 0;
  for (size_t i = 0; ids && i < plen; i++)
    if (ids_of[(unsigned char)o->prime[i]] >= 0)
      ids[n++] = ids_of[(unsigned char)o->prime[i]];
  if (n == 0 && ids)
    ids[n++] = 0;
  fwrite(o->prime, 1, plen, stdout);
  loom_rng *g = loom_rng_new((uint64_t)o->seed);
  charlm_gen *gen = charlm_gen_new(m);
  loom_tensor *unused = NULL;
  int rc = ids && g && gen &&
                   (n == 1 || charlm_gen_feed(gen, ids, n - 1, &unused) == 0)
               ? 0
               : -1;
  loom_release(unused);
  if (rc < 0 && !loom_last_status())
    loom_set_error(LOOM_ERR_MEMORY, "charlm: out of memory");
  loom_decode_opts d =
      loom_decode_defaults(ids ? ids[n - 1] : 0, LOOM_DECODE_NO_EOS);
  d.method = o->temperature == 0 ? LOOM_DECODE_GREEDY : LOOM_DECODE_SAMPLE;
  d.temperature = o->temperature == 0 ? 1 : o->temperature;
  d.top_k = o->top_k;
  d.rng = g;
  sampler p = {gen, s->chars};
  for (int64_t done = 0; rc == 0 && done < o->length;) {
    d.max_len_b = o->length - done < PART ? o->length - done : PART;
    loom_decode_result r = {0};
    if (loom_decode(&(loom_decode_model){step, NULL, &p}, 1, NULL, &d, &r) < 0)
      rc = -1;
    else { /* the steps wrote every character but the last: no step read it */
      d.bos = r.hyps[0].tokens[d.max_len_b - 1];
      fputc(s->chars[d.bos], stdout);
      done += d.max_len_b;
    }
    loom_decode_result_free(&r);
  }
  fputc('\n', stdout);
  charlm_gen_free(gen);
  loom_rng_free(g);
  free(ids);
  return rc;
}

int charlm_sample(const charlm_options *o) {
  /* The session first (the config builds the model), then the weights,
   * both from one reading of the file. */
  charlm_session s = {0};
  charlm *m = NULL;
  loom_tensor_map *file = loom_safetensors_load(o->checkpoint);
  int rc = file ? charlm_checkpoint_peek(file, o->checkpoint, &s) : -1;
  if (rc == 0) {
    m = charlm_new(&s.cfg, (uint64_t)o->seed);
    rc = m ? loom_checkpoint_restore(file, o->checkpoint, &m->base, NULL, NULL,
                                     NULL, NULL, NULL)
           : -1;
  }
  loom_tensor_map_free(file);
  if (rc < 0) {
    fprintf(stderr, "charlm: cannot sample from %s: %s\n", o->checkpoint,
            loom_last_error());
  } else {
    loom_module_train(&m->base, false);
    loom_no_grad_begin();
    rc = generate(m, &s, o);
    loom_no_grad_end();
    if (rc < 0 && !ferror(stdout)) /* else app_finish_stdout says it */
      fprintf(stderr, "charlm: %s\n", loom_last_error());
  }
  if (app_finish_stdout("charlm", "the text") < 0)
    rc = -1;
  loom_clear_error();
  charlm_session_free(&s);
  charlm_free(m);
  return rc < 0 ? 1 : 0;
}
