/* sacreBLEU's corpus BLEU (sacrebleu/metrics/bleu.py, default options), and
 * the score string both BLEUs print. The arithmetic follows sacreBLEU's
 * expression by expression, so scores agree to the last bit. */
#include "text.h"

#include <loom/loom.h>

#include <math.h>
#include <stdlib.h>

enum { ORDER = 4 };

struct app_bleu {
  app_bleu_opts o;
  int64_t correct[ORDER], total[ORDER], hyp_len, ref_len;
  /* per segment, reused */
  app_buf low, tok;
  app_tokens words;
  app_strtab ids;
  app_ngrams refs, one_ref;
};

app_bleu *app_bleu_new(app_bleu_opts o) {
  app_bleu *b = calloc(1, sizeof *b);
  if (!b) {
    loom_set_error(LOOM_ERR_MEMORY, "BLEU: out of memory");
    return NULL;
  }
  b->o = o;
  return b;
}

void app_bleu_free(app_bleu *b) {
  if (!b)
    return;
  app_buf_free(&b->low);
  app_buf_free(&b->tok);
  app_tokens_free(&b->words);
  app_strtab_free(&b->ids);
  app_ngrams_free(&b->refs);
  app_ngrams_free(&b->one_ref);
  free(b);
}

/* The segment's tokens as ids (in b->words, ids in `ids`): lowercased if
 * asked, right-stripped, tokenised, split on whitespace. */
static int tokens(app_bleu *b, const char *s, size_t len, uint32_t **ids,
                  int64_t *n) {
  if (app_utf8_check(s, len, "BLEU", 0))
    return -1;
  if (b->o.lowercase) {
    app_buf_clear(&b->low);
    if (app_lower(s, len, &b->low) || app_buf_append(&b->low, "", 0))
      return -1;
    s = b->low.data;
    len = b->low.len;
  }
  len = app_rstrip_len(s, len);
  app_buf_clear(&b->tok);
  if (b->o.tokenizer == APP_BLEU_13A) {
    if (app_tokenize_13a(s, len, &b->tok))
      return -1;
  } else if (app_buf_append(&b->tok, s, len)) {
    return -1;
  }
  app_tokens_clear(&b->words);
  if (app_split_space(b->tok.data ? b->tok.data : "", b->tok.len, &b->words,
                      "BLEU"))
    return -1;
  uint32_t *v = malloc((size_t)(b->words.n ? b->words.n : 1) * sizeof *v);
  if (!v) {
    loom_set_error(LOOM_ERR_MEMORY, "BLEU: out of memory");
    return -1;
  }
  for (int64_t i = 0; i < b->words.n; i++) {
    int64_t id = app_strtab_intern(&b->ids, app_token(&b->words, i),
                                   app_token_len(&b->words, i));
    if (id < 0) {
      free(v);
      return -1;
    }
    v[i] = (uint32_t)id;
  }
  *ids = v;
  *n = b->words.n;
  return 0;
}

/* Adds count k of every n-gram of ids[0..n), orders 1..ORDER, to
 * t's count[which]. */
static int count_ngrams(app_ngrams *t, const uint32_t *ids, int64_t n,
                        int which) {
  for (int order = 1; order <= ORDER; order++)
    for (int64_t i = 0; i + order <= n; i++) {
      app_ngram *g = app_ngrams_get(t, ids + i, order);
      if (!g)
        return -1;
      g->count[which]++;
    }
  return 0;
}

int app_bleu_add(app_bleu *b, const char *hyp, size_t hyp_len,
                 const char *const *refs, const size_t *ref_lens, int n_refs) {
  if (n_refs < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "BLEU: a segment without a reference");
    return -1;
  }
  app_strtab_clear(&b->ids);
  app_ngrams_clear(&b->refs);
  uint32_t *hyp_ids = NULL, *ids = NULL;
  int64_t n_hyp, n, closest_diff = -1, closest_len = -1;
  if (tokens(b, hyp, hyp_len, &hyp_ids, &n_hyp))
    return -1;
  int rc = -1;
  /* refs' count[1]: the largest count of each n-gram in any reference */
  for (int r = 0; r < n_refs; r++) {
    if (tokens(b, refs[r], ref_lens[r], &ids, &n))
      goto done;
    app_ngrams_clear(&b->one_ref);
    int counted = count_ngrams(&b->one_ref, ids, n, 0);
    free(ids);
    if (counted)
      goto done;
    for (int64_t i = 0; i < b->one_ref.n_used; i++) {
      const app_ngram *g = &b->one_ref.slots[b->one_ref.used[i]];
      app_ngram *m = app_ngrams_get(&b->refs, g->key, g->n);
      if (!m)
        goto done;
      if (g->count[0] > m->count[1])
        m->count[1] = g->count[0];
    }
    /* the closest reference length, ties to the shorter */
    int64_t diff = llabs(n_hyp - n);
    if (closest_diff == -1 || diff < closest_diff) {
      closest_diff = diff;
      closest_len = n;
    } else if (diff == closest_diff && n < closest_len) {
      closest_len = n;
    }
  }
  if (count_ngrams(&b->refs, hyp_ids, n_hyp, 0))
    goto done;
  for (int64_t i = 0; i < b->refs.n_used; i++) {
    const app_ngram *g = &b->refs.slots[b->refs.used[i]];
    b->total[g->n - 1] += g->count[0];
    b->correct[g->n - 1] +=
        g->count[0] < g->count[1] ? g->count[0] : g->count[1];
  }
  b->hyp_len += n_hyp;
  b->ref_len += closest_len;
  rc = 0;
done:
  free(hyp_ids);
  return rc;
}

/* sacreBLEU's my_log: log, with log(0) floored to -9999999999. */
static double floored_log(double x) {
  return x == 0.0 ? -9999999999.0 : log(x);
}

void app_bleu_get(const app_bleu *b, app_bleu_result *r) {
  *r = (app_bleu_result){
      .order = ORDER, .hyp_len = b->hyp_len, .ref_len = b->ref_len};
  for (int k = 0; k < ORDER; k++) {
    r->correct[k] = b->correct[k];
    r->total[k] = b->total[k];
  }
  int64_t sys_len = b->hyp_len, ref_len = b->ref_len;
  r->bp = 1.0;
  if (sys_len < ref_len)
    r->bp = sys_len > 0 ? exp(1 - (double)ref_len / (double)sys_len) : 0.0;
  r->ratio = ref_len ? (double)sys_len / (double)ref_len : 0;
  bool any = false;
  for (int k = 0; k < ORDER; k++)
    any = any || b->correct[k];
  if (!any)
    return; /* score 0, precisions 0 */
  double smooth = 1.0;
  for (int k = 0; k < ORDER; k++) {
    if (b->total[k] == 0)
      break;
    if (b->correct[k] == 0) {
      smooth *= 2;
      r->precision[k] = 100. / (smooth * (double)b->total[k]);
    } else {
      r->precision[k] = 100. * (double)b->correct[k] / (double)b->total[k];
    }
  }
  double sum = 0;
  for (int k = 0; k < ORDER; k++)
    sum += floored_log(r->precision[k]);
  r->score = r->bp * exp(sum / ORDER);
}

int app_bleu_format(const app_bleu_result *r, app_buf *out) {
  char s[512];
  int n = snprintf(s, sizeof s, "BLEU = %.2f ", r->score);
  for (int k = 0; k < r->order && n < 400; k++)
    n += snprintf(s + n, sizeof s - (size_t)n, "%s%.1f", k ? "/" : "",
                  r->precision[k]);
  n += snprintf(s + n, sizeof s - (size_t)n,
                " (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)",
                r->bp, r->ratio, (long long)r->hyp_len, (long long)r->ref_len);
  return app_buf_append(out, s, (size_t)n);
}
