/* sacreBLEU's chrF with its defaults (sacrebleu/metrics/chrf.py: character
 * order 6, word order 0, beta 2, whitespace removed, no epsilon
 * smoothing), computed expression by expression as sacreBLEU does. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>

struct app_chrf {
  app_chrf_opts o;
  int64_t stats[APP_NGRAM_MAX][3]; /* hyp, ref, match n-grams per order */
  app_buf low;
  uint32_t *cps;
  int64_t cps_cap;
  app_ngrams hyp, ref;
};

app_chrf *app_chrf_new(app_chrf_opts o) {
  if (!o.char_order)
    o.char_order = 6;
  if (!o.beta)
    o.beta = 2;
  if (o.char_order < 1 || o.char_order > APP_NGRAM_MAX || o.beta < 1 ||
      o.beta > 1000) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "chrF: character order %d (1..%d) or beta %d (1..1000) "
                   "out of range",
                   o.char_order, APP_NGRAM_MAX, o.beta);
    return NULL;
  }
  app_chrf *c = calloc(1, sizeof *c);
  if (!c) {
    loom_set_error(LOOM_ERR_MEMORY, "chrF: out of memory");
    return NULL;
  }
  c->o = o;
  return c;
}

void app_chrf_free(app_chrf *c) {
  if (!c)
    return;
  app_buf_free(&c->low);
  free(c->cps);
  app_ngrams_free(&c->hyp);
  app_ngrams_free(&c->ref);
  free(c);
}

/* The code points of s without whitespace (''.join(s.split())), lowercased
 * if asked, into c->cps; their number, or -1. */
static int64_t characters(app_chrf *c, const char *s, size_t len) {
  if (app_utf8_check(s, len, "chrF", 0))
    return -1;
  if (c->o.lowercase) {
    app_buf_clear(&c->low);
    if (app_lower(s, len, &c->low) || app_buf_append(&c->low, "", 0))
      return -1;
    s = c->low.data;
    len = c->low.len;
  }
  if ((int64_t)len + 1 > c->cps_cap) {
    uint32_t *g = realloc(c->cps, (len + 1) * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "chrF: out of memory");
      return -1;
    }
    c->cps = g;
    c->cps_cap = (int64_t)len + 1;
  }
  int64_t n = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    i += (size_t)app_utf8_decode(s + i, len - i, &cp);
    if (!app_unicode_is_space(cp))
      c->cps[n++] = cp;
  }
  return n;
}

static int count(app_ngrams *t, const uint32_t *cps, int64_t n, int order) {
  app_ngrams_clear(t);
  for (int k = 1; k <= order; k++)
    for (int64_t i = 0; i + k <= n; i++) {
      app_ngram *g = app_ngrams_get(t, cps + i, k);
      if (!g)
        return -1;
      g->count[0]++;
    }
  return 0;
}

/* CHRF._compute_f_score without epsilon smoothing. */
static double f_score(const int64_t (*stats)[3], int order, int beta) {
  int factor = beta * beta, effective = 0;
  double avg_prec = 0.0, avg_rec = 0.0;
  for (int k = 0; k < order; k++) {
    int64_t n_hyp = stats[k][0], n_ref = stats[k][1], n_match = stats[k][2];
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += (double)n_match / (double)n_hyp;
      avg_rec += (double)n_match / (double)n_ref;
      effective++;
    }
  }
  if (effective == 0) {
    avg_prec = avg_rec = 0.0;
  } else {
    avg_prec /= effective;
    avg_rec /= effective;
  }
  if (avg_prec + avg_rec != 0.0) {
    double score = (1 + factor) * avg_prec * avg_rec;
    score /= (factor * avg_prec) + avg_rec;
    return 100 * score;
  }
  return 0.0;
}

int app_chrf_add(app_chrf *c, const char *hyp, size_t hyp_len,
                 const char *const *refs, const size_t *ref_lens, int n_refs) {
  if (n_refs < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "chrF: a segment without a reference");
    return -1;
  }
  const int order = c->o.char_order;
  int64_t n_hyp = characters(c, hyp, hyp_len);
  if (n_hyp < 0 || count(&c->hyp, c->cps, n_hyp, order))
    return -1;
  int64_t best[APP_NGRAM_MAX][3] = {{0}};
  double best_f = -1.0;
  for (int r = 0; r < n_refs; r++) {
    int64_t n_ref = characters(c, refs[r], ref_lens[r]);
    if (n_ref < 0 || count(&c->ref, c->cps, n_ref, order))
      return -1;
    int64_t stats[APP_NGRAM_MAX][3] = {{0}};
    for (int k = 0; k < order; k++) {
      int64_t h = n_hyp - k > 0 ? n_hyp - k : 0;
      int64_t rr = n_ref - k > 0 ? n_ref - k : 0;
      stats[k][0] = rr > 0 ? h : 0; /* no hits counted without reference */
      stats[k][1] = rr;
    }
    for (int64_t i = 0; i < c->hyp.n_used; i++) {
      const app_ngram *g = &c->hyp.slots[c->hyp.used[i]];
      const app_ngram *m = app_ngrams_find(&c->ref, g->key, g->n);
      if (m)
        stats[g->n - 1][2] +=
            g->count[0] < m->count[0] ? g->count[0] : m->count[0];
    }
    double f = f_score((const int64_t(*)[3])stats, order, c->o.beta);
    if (f > best_f) {
      best_f = f;
      for (int k = 0; k < order; k++)
        for (int j = 0; j < 3; j++)
          best[k][j] = stats[k][j];
    }
  }
  for (int k = 0; k < order; k++)
    for (int j = 0; j < 3; j++)
      c->stats[k][j] += best[k][j];
  return 0;
}

double app_chrf_score(const app_chrf *c) {
  return f_score((const int64_t(*)[3])c->stats, c->o.char_order, c->o.beta);
}

int app_chrf_format(const app_chrf *c, app_buf *out) {
  char s[64];
  int n = snprintf(s, sizeof s, "chrF%d = %.2f", c->o.beta, app_chrf_score(c));
  return app_buf_append(out, s, (size_t)n);
}
