/* Minimum-Bayes-risk choice among candidate sentences, with NLTK's
 * smoothed sentence BLEU as the utility (text.h). */
#include "text.h"

#include <loom/loom.h>

#include <math.h>
#include <stdlib.h>

int app_mbr_choose(const app_tokens *cands, const double *weights, int64_t n,
                   int64_t *best, double *gains) {
  if (n < 1 || n > APP_MBR_MAX) {
    loom_set_error(LOOM_ERR_ARGUMENT, "MBR: %lld candidates, not 1..%d",
                   (long long)n, APP_MBR_MAX);
    return -1;
  }
  double total = 0;
  for (int64_t j = 0; weights && j < n; j++) {
    if (!isfinite(weights[j]) || weights[j] < 0) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "MBR: candidate %lld's weight %g is not finite and >= 0",
                     (long long)j, weights[j]);
      return -1;
    }
    total += weights[j];
  }
  if (weights && !(total > 0 && isfinite(total))) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "MBR: the weights' sum %g is not positive and finite",
                   total);
    return -1;
  }
  app_nltk_bleu *b = app_nltk_bleu_new(4);
  if (!b)
    return -1;
  int rc = 0;
  double top = -1;
  *best = 0;
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    double gain = 0;
    for (int64_t j = 0; rc == 0 && j < n; j++) {
      double w = weights ? weights[j] / total : 1.0 / (double)n;
      if (w == 0)
        continue;
      app_bleu_result r;
      app_nltk_bleu_reset(b);
      rc = app_nltk_bleu_add(b, &cands[i], &cands[j], 1);
      if (rc == 0)
        rc = app_nltk_bleu_get_smoothed(b, 4, NULL, APP_NLTK_METHOD2, &r);
      if (rc == 0)
        gain += w * r.score / 100;
    }
    if (gains)
      gains[i] = gain;
    if (gain > top) {
      top = gain;
      *best = i;
    }
  }
  app_nltk_bleu_free(b);
  return rc;
}
