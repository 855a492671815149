/* A run's data from its description: generated scenes or a Flickr8k-style
 * folder, then its captions as tokens and ids. */
#include "caption.h"

int cap_source_load(const cap_source *src, FILE *log, cap_data *d) {
  if (src->scenes) {
    cap_scene_opts o = src->scene;
    o.side = (int)src->side;
    if (log)
      fprintf(log,
              "caption: generating %lld + %lld + %lld scenes of up to %d "
              "shapes, %dx%d pixels\n",
              (long long)o.n[CAP_TRAIN], (long long)o.n[CAP_DEV],
              (long long)o.n[CAP_TEST], o.max_objects, o.side, o.side);
    return cap_scenes_generate(&o, d);
  }
  return cap_flickr_load(&src->flickr, (int)src->side, log, d);
}

int cap_corpus_prepare(const cap_source *src, const cap_data *d,
                       const app_vocab *vocab, cap_corpus *c) {
  if (cap_corpus_tokenize(d, src->tokenizer, c) < 0)
    return -1;
  int rc = 0;
  if (vocab) { /* a checkpoint's: a copy in the corpus */
    for (int64_t i = 0; rc == 0 && i < app_vocab_size(vocab); i++)
      if (app_strtab_intern(&c->vocab.tokens, app_vocab_token(vocab, i),
                            app_strtab_len(&vocab->tokens, i)) != i)
        rc = -1;
  } else {
    rc = cap_corpus_build_vocab(c, d, src->min_count);
  }
  if (rc == 0)
    rc = cap_corpus_map(c, src->max_words);
  if (rc < 0)
    cap_corpus_free(c);
  return rc;
}
