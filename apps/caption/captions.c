/* Captions as tokens and ids: the tokenisers, the vocabulary built from
 * the training captions, and each caption's ids. */
#include "caption.h"

#include <stdlib.h>
#include <string.h>

const char *cap_tokenizer_name(cap_tokenizer k) {
  return k == CAP_TOKENS_WORDS ? "words" : "alnum";
}

/* The PyTorch caption baseline's tokens: re.sub(r'[^a-z0-9\s]', '',
 * s.lower()).split() - lowercased as str.lower() does, every character but
 * a-z, 0-9 and whitespace deleted (so "t-shirt" is one token and a final
 * " ." vanishes), then split at whitespace. */
static int tokenize_alnum(const char *text, size_t len, app_tokens *out,
                          const char *name) {
  app_buf lower = {0}, kept = {0};
  int rc = app_utf8_check(text, len, name, 0);
  if (rc == 0)
    rc = app_lower(text, len, &lower);
  for (size_t i = 0; rc == 0 && i < lower.len;) {
    uint32_t cp;
    int n = app_utf8_decode(lower.data + i, lower.len - i, &cp);
    if (n < 1) { /* app_lower checked it: cannot happen */
      rc = -1;
      break;
    }
    bool keep = (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') ||
                app_unicode_is_space(cp);
    if (keep)
      rc = app_buf_append(&kept, lower.data + i, (size_t)n);
    i += (size_t)n;
  }
  if (rc == 0)
    rc = app_split_space(kept.data ? kept.data : "", kept.len, out, name);
  app_buf_free(&lower);
  app_buf_free(&kept);
  return rc;
}

int cap_tokenize(cap_tokenizer k, const char *text, size_t len, app_tokens *out,
                 const char *name) {
  if (k == CAP_TOKENS_WORDS)
    return app_tokenize_lower(text, len, out, name);
  return tokenize_alnum(text, len, out, name);
}

void cap_corpus_free(cap_corpus *c) {
  for (int64_t i = 0; c->words && i < c->n; i++)
    app_tokens_free(&c->words[i]);
  free(c->words);
  free(c->ids);
  free(c->start);
  app_vocab_free(&c->vocab);
  *c = (cap_corpus){0};
}

int cap_corpus_tokenize(const cap_data *d, cap_tokenizer k, cap_corpus *c) {
  *c = (cap_corpus){.n = d->n_captions, .tokenizer = k};
  c->words = calloc((size_t)c->n + 1, sizeof *c->words);
  if (!c->words) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for %lld captions",
                   (long long)c->n);
    return -1;
  }
  for (int64_t i = 0; i < d->n; i++)
    for (int64_t j = d->first[i]; j < d->first[i + 1]; j++) {
      char name[300];
      snprintf(name, sizeof name, "caption %lld of %s",
               (long long)(j - d->first[i]), app_strtab_str(&d->names, i));
      if (cap_tokenize(k, d->captions[j], strlen(d->captions[j]), &c->words[j],
                       name) < 0) {
        cap_corpus_free(c);
        return -1;
      }
    }
  return 0;
}

int cap_corpus_build_vocab(cap_corpus *c, const cap_data *d,
                           int64_t min_count) {
  app_word_counts counts = {0};
  int rc = 0;
  for (int64_t i = 0; rc == 0 && i < d->n; i++)
    for (int64_t j = d->first[i];
         rc == 0 && d->split[i] == CAP_TRAIN && j < d->first[i + 1]; j++)
      for (int64_t t = 0; rc == 0 && t < c->words[j].n; t++)
        rc = app_word_counts_add(&counts, app_token(&c->words[j], t),
                                 app_token_len(&c->words[j], t), 1);
  app_vocab_free(&c->vocab);
  if (rc == 0)
    rc = app_vocab_build(&c->vocab, &counts, min_count);
  app_word_counts_free(&counts);
  return rc;
}

int cap_corpus_map(cap_corpus *c, int64_t max_words) {
  int64_t total = 0;
  for (int64_t j = 0; j < c->n; j++)
    total += c->words[j].n < max_words ? c->words[j].n : max_words;
  free(c->ids);
  free(c->start);
  c->ids = malloc((size_t)(total + 1) * sizeof *c->ids);
  c->start = malloc((size_t)(c->n + 1) * sizeof *c->start);
  if (!c->ids || !c->start) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for caption ids");
    return -1;
  }
  int64_t at = 0;
  for (int64_t j = 0; j < c->n; j++) {
    c->start[j] = at;
    for (int64_t t = 0; t < c->words[j].n && t < max_words; t++)
      c->ids[at++] = app_vocab_id(&c->vocab, app_token(&c->words[j], t),
                                  app_token_len(&c->words[j], t));
  }
  c->start[c->n] = at;
  return 0;
}

int cap_ids_to_tokens(const app_vocab *v, const int64_t *ids, int64_t n,
                      app_tokens *out) {
  app_tokens_clear(out);
  for (int64_t i = 0; i < n; i++) {
    const char *t = ids[i] >= 0 && ids[i] < app_vocab_size(v)
                        ? app_vocab_token(v, ids[i])
                        : app_vocab_special(APP_UNK);
    if (app_tokens_push(out, t, strlen(t), false) < 0)
      return -1;
  }
  return 0;
}

int cap_tokens_text(const app_tokens *t, app_buf *out) {
  app_buf_clear(out);
  for (int64_t i = 0; i < t->n; i++)
    if ((i && app_buf_append(out, " ", 1) < 0) ||
        app_buf_append(out, app_token(t, i), app_token_len(t, i)) < 0)
      return -1;
  return out->data ? 0 : app_buf_append(out, "", 0);
}
