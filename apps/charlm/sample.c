/* Sampling: the model of a checkpoint reads --prime, then writes --length
 * characters, each drawn from its softmax at --temperature (0: the
 * likeliest), among the --top-k likeliest if asked. */
#define _POSIX_C_SOURCE 200809L
#include "charlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The next id from (V) logits; -1 with an error if they are not finite. */
static int64_t pick(const loom_tensor *logits, const charlm_options *o,
                    loom_rng *g) {
  int64_t V = loom_numel(logits);
  double *p = malloc((size_t)V * sizeof *p);
  if (!p) {
    loom_set_error(LOOM_ERR_MEMORY, "charlm: out of memory");
    return -1;
  }
  loom_copy_to_array(logits, LOOM_F64, p, V);
  int64_t best = 0;
  for (int64_t i = 0; i < V; i++) {
    if (!isfinite(p[i])) {
      loom_set_error(LOOM_ERR_NUMERIC,
                     "the model's output is %g (its weights "
                     "are not finite)",
                     p[i]);
      free(p);
      return -1;
    }
    if (p[i] > p[best])
      best = i;
  }
  if (o->temperature == 0) {
    free(p);
    return best;
  }
  double cut = -INFINITY;
  if (o->top_k > 0 && o->top_k < V) { /* the k-th largest logit */
    double *sorted = malloc((size_t)V * sizeof *sorted);
    if (sorted) {
      memcpy(sorted, p, (size_t)V * sizeof *p);
      for (int64_t i = 0; i < o->top_k; i++) /* partial selection */
        for (int64_t j = i + 1; j < V; j++)
          if (sorted[j] > sorted[i]) {
            double t = sorted[i];
            sorted[i] = sorted[j];
            sorted[j] = t;
          }
      cut = sorted[o->top_k - 1];
      free(sorted);
    }
  }
  double total = 0, top = p[best];
  for (int64_t i = 0; i < V; i++) {
    p[i] = p[i] < cut ? 0 : exp((p[i] - top) / o->temperature);
    total += p[i];
  }
  double u = loom_rng_uniform(g) * total;
  int64_t chosen = best;
  for (int64_t i = 0; i < V; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) {
      chosen = i;
      break;
    }
  }
  free(p);
  return chosen;
}

/* Writes the prime and `o->length` characters the model generates after
 * it; 0 or -1 with an error. */
static int generate(charlm *m, const charlm_session *s,
                    const charlm_options *o) {
  int16_t ids_of[256];
  for (int b = 0; b < 256; b++)
    ids_of[b] = -1;
  for (int i = 0; i < s->vocab; i++)
    ids_of[s->chars[i]] = (int16_t)i;
  /* Prime: characters the model does not know are skipped. */
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
  loom_tensor *last = NULL;
  int rc = ids && g && gen && charlm_gen_feed(gen, ids, n, &last) == 0 ? 0 : -1;
  if (rc < 0 && !loom_last_status())
    loom_set_error(LOOM_ERR_MEMORY, "charlm: out of memory");
  for (int64_t i = 0; rc == 0 && i < o->length; i++) {
    int64_t c = pick(last, o, g);
    if (c < 0)
      rc = -1;
    else
      fputc(s->chars[c], stdout);
    loom_release(last);
    last = NULL;
    if (rc == 0 && charlm_gen_feed(gen, &c, 1, &last) < 0)
      rc = -1;
  }
  fputc('\n', stdout);
  loom_release(last);
  charlm_gen_free(gen);
  loom_rng_free(g);
  free(ids);
  return rc;
}

int charlm_sample(const charlm_options *o) {
  /* The session first (the config builds the model), then the weights. */
  charlm_session s;
  charlm *m = NULL;
  int rc = charlm_checkpoint_peek(o->checkpoint, &s);
  if (rc == 0) {
    m = charlm_new(&s.cfg, (uint64_t)o->seed);
    rc = m ? loom_checkpoint_load(o->checkpoint, &m->base, NULL, NULL, NULL,
                                  NULL, NULL)
           : -1;
  }
  if (rc < 0) {
    fprintf(stderr, "charlm: cannot sample from %s: %s\n", o->checkpoint,
            loom_last_error());
  } else {
    loom_module_train(&m->base, false);
    loom_no_grad_begin();
    rc = generate(m, &s, o);
    loom_no_grad_end();
    if (rc < 0)
      fprintf(stderr, "charlm: %s\n", loom_last_error());
  }
  fflush(stdout);
  if (ferror(stdout)) {
    fprintf(stderr, "charlm: cannot write the text to standard output\n");
    rc = -1;
  }
  loom_clear_error();
  charlm_session_free(&s);
  charlm_free(m);
  return rc < 0 ? 1 : 0;
}
