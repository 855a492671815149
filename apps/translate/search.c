/* Translating a corpus in batches through the library's decoder, and
 * scoring translations against references. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nmt_translate_corpus(nmt_model *m, const nmt_corpus *c,
                         const loom_decode_opts *o, int64_t max_tokens,
                         int64_t max_sentences, loom_decode_result *r) {
  *r = (loom_decode_result){.n = c->n, .nbest = o->nbest};
  r->hyps = calloc((size_t)(c->n * o->nbest) + 1, sizeof *r->hyps);
  nmt_plan p = {0};
  if (!r->hyps) {
    loom_set_error(LOOM_ERR_MEMORY, "translate: out of memory");
    return -1;
  }
  /* beams multiply the rows: keep a batch's decoding rows near the limits */
  int per = o->method == LOOM_DECODE_BEAM ? o->beam : o->nbest;
  int64_t sentences =
      max_sentences ? (max_sentences / per > 0 ? max_sentences / per : 1) : 0;
  int rc = nmt_plan_make(&p, c, max_tokens / per > 0 ? max_tokens / per : 1,
                         sentences, false, 0, 0);
  loom_decode_opts d = *o;
  _Static_assert((int)NMT_PAD == (int)APP_PAD && (int)NMT_BOS == (int)APP_BOS,
                 "translate numbers the specials as the vocabulary does");
  int64_t *never = app_never_written(o->suppress, o->n_suppress, &d.n_suppress);
  d.suppress = never;
  if (!never)
    rc = -1;
  /* a transformer has a position per token */
  int64_t room = m->cfg.max_positions - 1;
  if (!strcmp(m->cfg.model, "transformer") && (!d.max_len || d.max_len > room))
    d.max_len = room;
  bool was_training = m->base.training;
  loom_module_train(&m->base, false);
  for (int64_t i = 0; rc == 0 && i < p.n; i++) {
    nmt_batch b;
    if ((rc = nmt_plan_batch(&p, c, i, &b)) < 0)
      break;
    loom_decode_model dm;
    loom_decode_result one;
    int64_t *len = loom_data_i64(b.src_len);
    rc = m->ops->decode_begin(m, &b, &dm);
    if (rc == 0) {
      rc = loom_decode(&dm, b.B, len, &d, &one);
      m->ops->decode_end(&dm);
    }
    for (int64_t k = 0; rc == 0 && k < b.B; k++) {
      int64_t j = p.order[p.start[i] + k];
      memcpy(r->hyps + j * o->nbest, one.hyps + k * o->nbest,
             (size_t)o->nbest * sizeof *r->hyps);
      memset(one.hyps + k * o->nbest, 0, (size_t)o->nbest * sizeof *r->hyps);
    }
    if (rc == 0)
      loom_decode_result_free(&one);
    nmt_batch_free(&b);
  }
  loom_module_train(&m->base, was_training);
  nmt_plan_free(&p);
  free(never);
  if (rc < 0)
    loom_decode_result_free(r);
  return rc;
}

/* Line numbers wanted (ascending within a corpus read from the files) and
 * the text of each: reads ref_path once. */
static char **reference_lines(const char *path, const nmt_corpus *c) {
  char **lines = calloc((size_t)c->n + 1, sizeof *lines);
  app_line_reader rd;
  if (!lines || app_line_reader_open(&rd, path, APP_LINES_LF, 0) < 0) {
    free(lines);
    return NULL;
  }
  const char *line;
  size_t len;
  int64_t next = 0, got = 0;
  int rc;
  /* pairs are in file order, so one pass finds them all */
  while (next < c->n && (rc = app_line_reader_next(&rd, &line, &len, NULL)) > 0)
    while (next < c->n && c->line[next] == rd.line_no) {
      lines[next] = strdup(line);
      got += lines[next++] != NULL;
    }
  app_line_reader_close(&rd);
  if (got < c->n) {
    if (loom_last_status() == LOOM_OK)
      loom_set_error(LOOM_ERR_FORMAT, "%s: fewer lines than the corpus", path);
    for (int64_t i = 0; i < c->n; i++)
      free(lines[i]);
    free(lines);
    return NULL;
  }
  return lines;
}

int nmt_score_corpus(nmt_model *m, const nmt_text *t, const nmt_corpus *c,
                     const char *ref_path, int64_t beam, int64_t max_tokens,
                     int64_t max_sentences, nmt_scores *s) {
  *s = (nmt_scores){0};
  loom_decode_opts o = loom_decode_defaults(NMT_BOS, NMT_EOS);
  o.method = beam > 1 ? LOOM_DECODE_BEAM : LOOM_DECODE_GREEDY;
  o.beam = (int)beam;
  o.max_len_a = 1; /* as the baseline: source length (eos in) + 50 */
  o.max_len_b = 49;
  loom_decode_result r;
  char **refs = reference_lines(ref_path, c);
  bool lower = !strcmp(nmt_text_options(t)->tokenize, "lower");
  app_bleu *sacre = app_bleu_new((app_bleu_opts){.lowercase = lower});
  app_chrf *chrf = app_chrf_new((app_chrf_opts){.lowercase = lower});
  app_nltk_bleu *nltk = app_nltk_bleu_new(4);
  app_buf hyp = {0};
  app_tokens ht = {0}, rt = {0};
  int rc = refs && sacre && chrf && nltk ? 0 : -1;
  bool translated = rc == 0 && nmt_translate_corpus(m, c, &o, max_tokens,
                                                    max_sentences, &r) == 0;
  rc = translated ? 0 : -1;
  for (int64_t i = 0; rc == 0 && i < c->n; i++) {
    const loom_hypothesis *h = &r.hyps[i];
    const char *const *ref = (const char *const *)&refs[i];
    size_t ref_len = strlen(refs[i]);
    app_buf_clear(&hyp);
    app_tokens_clear(&ht);
    app_tokens_clear(&rt);
    if (nmt_text_decode(t, h->tokens, h->len, &hyp) < 0 ||
        app_buf_append(&hyp, "", 0) < 0 || /* data is never NULL after */
        app_tokenize_lower(hyp.data, hyp.len, &ht, "a translation") < 0 ||
        app_tokenize_lower(refs[i], ref_len, &rt, ref_path) < 0 ||
        app_nltk_bleu_add(nltk, &ht, &rt, 1) < 0 ||
        app_bleu_add(sacre, hyp.data, hyp.len, ref, &ref_len, 1) < 0 ||
        app_chrf_add(chrf, hyp.data, hyp.len, ref, &ref_len, 1) < 0)
      rc = -1;
  }
  if (translated)
    loom_decode_result_free(&r);
  if (rc == 0) {
    app_bleu_get(sacre, &s->sacre);
    rc = app_nltk_bleu_get(nltk, 4, NULL, &s->nltk);
    s->bleu = s->nltk.score;
    s->sacrebleu = s->sacre.score;
    s->chrf = app_chrf_score(chrf);
  }
  if (refs)
    for (int64_t i = 0; i < c->n; i++)
      free(refs[i]);
  free(refs);
  app_bleu_free(sacre);
  app_chrf_free(chrf);
  app_nltk_bleu_free(nltk);
  app_buf_free(&hyp);
  app_tokens_free(&ht);
  app_tokens_free(&rt);
  return rc < 0 ? -1 : 0;
}
