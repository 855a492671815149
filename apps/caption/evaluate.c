/* Scoring captions: corpus BLEU-1..4 against all references of each image
 * (NLTK's corpus_bleu, as the PyTorch baselines score), exact matches
 * (the caption equals one of the references word for word), and two
 * image-blind controls: the caption the model writes for an average image
 * (the baseline's control), and the one training caption that, written
 * for every image, scores best. */
#include "caption.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool same_tokens(const app_tokens *a, const app_tokens *b) {
  if (a->n != b->n)
    return false;
  for (int64_t i = 0; i < a->n; i++)
    if (app_token_len(a, i) != app_token_len(b, i) ||
        memcmp(app_token(a, i), app_token(b, i), app_token_len(a, i)))
      return false;
  return true;
}

int cap_score(const cap_data *d, const cap_corpus *c, const int64_t *images,
              int64_t n, const app_tokens *hyps, cap_scores *s) {
  *s = (cap_scores){.images = n};
  app_nltk_bleu *b = app_nltk_bleu_new(4);
  if (!b)
    return -1;
  app_strtab distinct = {0};
  int rc = 0;
  int64_t words = 0;
  for (int64_t k = 0; rc == 0 && k < n; k++) {
    int64_t i = images[k], r0 = d->first[i], nr = d->first[i + 1] - r0;
    rc = app_nltk_bleu_add(b, &hyps[k], c->words + r0, (int)nr);
    bool exact = false;
    for (int64_t r = 0; r < nr; r++)
      exact |= same_tokens(&hyps[k], &c->words[r0 + r]);
    bool novel = d->novel && d->novel[i];
    s->exact += exact;
    s->novel += novel;
    s->novel_exact += novel && exact;
    words += hyps[k].n;
    app_buf text = {0};
    if (rc == 0)
      rc = cap_tokens_text(&hyps[k], &text);
    if (rc == 0 && app_strtab_intern(&distinct, text.data, text.len) < 0)
      rc = -1;
    app_buf_free(&text);
  }
  for (int order = 1; rc == 0 && order <= 4; order++) {
    app_bleu_result r;
    rc = app_nltk_bleu_get(b, order, NULL, &r);
    s->bleu[order - 1] = r.score;
  }
  s->mean_len = n ? (double)words / (double)n : 0;
  s->distinct = distinct.n;
  app_strtab_free(&distinct);
  app_nltk_bleu_free(b);
  return rc;
}

int cap_choose_caption(const app_vocab *v, const loom_decode_result *r,
                       int64_t k, bool sampled, app_tokens *out) {
  const loom_hypothesis *h = &r->hyps[k * r->nbest];
  if (r->nbest == 1)
    return cap_ids_to_tokens(v, h->tokens, h->len, out);
  /* the candidates: the hypotheses the search found (a short list has
   * empty ones scored -inf at its end) */
  app_tokens *cands = calloc((size_t)r->nbest, sizeof *cands);
  double *w = malloc((size_t)r->nbest * sizeof *w);
  int64_t n = 0, best = 0;
  int rc = cands && w ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  double top = -INFINITY;
  for (int j = 0; j < r->nbest; j++)
    if (h[j].score > top)
      top = h[j].score;
  for (int j = 0; rc == 0 && j < r->nbest; j++)
    if (h[j].score > -INFINITY) {
      /* beam: the n-best's probabilities renormalised; samples: each
       * draw counts once, since they were drawn as likely as they are */
      w[n] = sampled ? 1.0 : exp(h[j].score - top);
      rc = cap_ids_to_tokens(v, h[j].tokens, h[j].len, &cands[n++]);
    }
  if (rc == 0 && n == 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "no caption to choose from");
    rc = -1;
  }
  if (rc == 0)
    rc = app_mbr_choose(cands, w, n, &best, NULL);
  if (rc == 0)
    app_tokens_clear(out);
  for (int64_t t = 0; rc == 0 && t < cands[best].n; t++)
    rc = app_tokens_push(out, app_token(&cands[best], t),
                         app_token_len(&cands[best], t), false);
  cap_tokens_list_free(cands, cands ? r->nbest : 0);
  free(w);
  return rc;
}

int cap_decode_images(cap_model *m, const cap_data *d, const cap_corpus *c,
                      const cap_norm *nm, const int64_t *images, int64_t n,
                      const loom_decode_opts *o, int64_t batch,
                      app_tokens *hyps) {
  int rc = 0;
  for (int64_t k0 = 0; rc == 0 && k0 < n; k0 += batch) {
    int64_t nb = n - k0 < batch ? n - k0 : batch;
    loom_scope *s = loom_scope_begin();
    loom_tensor *x;
    loom_decode_result r = {0};
    rc = cap_images_tensor(d, images + k0, nb, nm, NULL, NULL, &x);
    if (rc == 0)
      rc = cap_describe(m, x, o, &r);
    for (int64_t k = 0; rc == 0 && k < nb; k++)
      rc = cap_choose_caption(&c->vocab, &r, k, o->method == LOOM_DECODE_SAMPLE,
                              &hyps[k0 + k]);
    loom_decode_result_free(&r);
    loom_scope_end(s);
  }
  return rc;
}

int cap_evaluate(cap_model *m, const cap_data *d, const cap_corpus *c,
                 const cap_norm *nm, const int64_t *images, int64_t n,
                 const loom_decode_opts *o, int64_t batch, cap_scores *s,
                 app_tokens **hyps_out) {
  app_tokens *hyps = calloc((size_t)n + 1, sizeof *hyps);
  int rc = hyps ? 0 : -1;
  if (!hyps)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  if (rc == 0)
    rc = cap_decode_images(m, d, c, nm, images, n, o, batch, hyps);
  if (rc == 0)
    rc = cap_score(d, c, images, n, hyps, s);
  if (rc == 0 && hyps_out) {
    *hyps_out = hyps;
    return 0;
  }
  cap_tokens_list_free(hyps, n);
  return rc;
}

void cap_tokens_list_free(app_tokens *list, int64_t n) {
  for (int64_t i = 0; list && i < n; i++)
    app_tokens_free(&list[i]);
  free(list);
}

int cap_blind_average(cap_model *m, const cap_data *d, const cap_corpus *c,
                      const int64_t *images, int64_t n,
                      const loom_decode_opts *o, app_tokens *caption,
                      cap_scores *s) {
  /* the average image is all zeros once normalised */
  loom_scope *sc = loom_scope_begin();
  loom_tensor *x = loom_zeros(LOOM_F32, LOOM_SHAPE(1, 3, d->side, d->side));
  loom_decode_result r = {0};
  int rc = x ? cap_describe(m, x, o, &r) : -1;
  if (rc == 0)
    rc = cap_choose_caption(&c->vocab, &r, 0, o->method == LOOM_DECODE_SAMPLE,
                            caption);
  loom_decode_result_free(&r);
  loom_scope_end(sc);
  app_tokens *all = rc == 0 ? calloc((size_t)n + 1, sizeof *all) : NULL;
  for (int64_t k = 0; all && rc == 0 && k < n; k++)
    for (int64_t t = 0; rc == 0 && t < caption->n; t++)
      rc = app_tokens_push(&all[k], app_token(caption, t),
                           app_token_len(caption, t), false);
  if (rc == 0)
    rc = all ? cap_score(d, c, images, n, all, s) : -1;
  cap_tokens_list_free(all, n);
  return rc;
}

int cap_blind_best(const cap_data *d, const cap_corpus *c,
                   const int64_t *images, int64_t n, int64_t *best_caption,
                   cap_scores *s) {
  /* the candidates: each distinct training caption */
  app_strtab seen = {0};
  app_tokens *all = calloc((size_t)n + 1, sizeof *all);
  int rc = all ? 0 : -1;
  double best = -1;
  *best_caption = -1;
  for (int64_t i = 0; rc == 0 && i < d->n; i++)
    for (int64_t j = d->first[i];
         rc == 0 && d->split[i] == CAP_TRAIN && j < d->first[i + 1]; j++) {
      app_buf text = {0};
      int64_t before = seen.n;
      rc = cap_tokens_text(&c->words[j], &text);
      if (rc == 0 && app_strtab_intern(&seen, text.data, text.len) < 0)
        rc = -1;
      app_buf_free(&text);
      if (rc < 0 || seen.n == before)
        continue;
      app_nltk_bleu *b = app_nltk_bleu_new(4);
      rc = b ? 0 : -1;
      for (int64_t k = 0; rc == 0 && k < n; k++) {
        int64_t r0 = d->first[images[k]];
        rc = app_nltk_bleu_add(b, &c->words[j], c->words + r0,
                               (int)(d->first[images[k] + 1] - r0));
      }
      app_bleu_result r;
      if (rc == 0 && app_nltk_bleu_get(b, 4, NULL, &r) == 0 && r.score > best) {
        best = r.score;
        *best_caption = j;
      }
      app_nltk_bleu_free(b);
    }
  for (int64_t k = 0; rc == 0 && *best_caption >= 0 && k < n; k++)
    for (int64_t t = 0; rc == 0 && t < c->words[*best_caption].n; t++)
      rc = app_tokens_push(&all[k], app_token(&c->words[*best_caption], t),
                           app_token_len(&c->words[*best_caption], t), false);
  if (rc == 0 && *best_caption < 0) {
    loom_set_error(LOOM_ERR_ARGUMENT, "no training caption to try");
    rc = -1;
  }
  if (rc == 0)
    rc = cap_score(d, c, images, n, all, s);
  cap_tokens_list_free(all, n);
  app_strtab_free(&seen);
  return rc;
}
