/* word2vec's tokenizer and corpus reader on arbitrary text, learning the
 * vocabulary and then reading the text again with it: every id is a word
 * of the vocabulary. */
#include "fuzz_util.h"

#include "apps/word2vec/word2vec.h"

static void check(const w2v_corpus *c, const w2v_vocab *v) {
  for (int64_t i = 0; i < c->len; i++)
    if (c->ids[i] < 0 || c->ids[i] >= v->size)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  void *buf = fuzz_copy(data, size);
  w2v_vocab v;
  w2v_corpus c, again;
  w2v_vocab_init(&v);
  if (w2v_corpus_from_memory(&c, &v, buf, size, true, 1) == 0) {
    check(&c, &v);
    if (w2v_corpus_from_memory(&again, &v, buf, size, false, 1) == 0) {
      check(&again, &v);
      w2v_corpus_free(&again);
    }
    w2v_corpus_free(&c);
  }
  w2v_vocab_free(&v);
  loom_clear_error();
  free(buf);
  return 0;
}
