/* word2vec's evaluation readers on arbitrary files: byte 0 picks the
 * reader (analogy questions or word-similarity pairs) and a word limit;
 * the rest is the file. The vectors are a fixed small set. */
#include "fuzz_util.h"

#include "apps/word2vec/word2vec.h"

static w2v_vectors vectors;

static const w2v_vectors *fixed_vectors(void) {
  if (vectors.n)
    return &vectors;
  static const char text[] = "5 3\n"
                             "man 1 0 0\nwoman 1 1 0\nking 1 0 1\n"
                             "queen 1 1 1\napple 0 0 -1\n";
  const char *path = fuzz_path("w2v-eval-vectors");
  fuzz_write(path, (const uint8_t *)text, sizeof text - 1);
  if (w2v_load_vectors(&vectors, path, -1, 0) < 0)
    abort(); /* a broken run, not a finding */
  return &vectors;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const w2v_vectors *w = fixed_vectors();
  int64_t limit = (data[0] >> 1) & 3; /* 0: all */
  const char *path = fuzz_path("w2v-eval");
  fuzz_write(path, data + 1, size - 1);
  if (data[0] & 1) {
    w2v_similarity sim;
    if (w2v_word_similarity(w, path, limit, &sim) == 0 && sim.used > sim.pairs)
      abort();
  } else {
    w2v_accuracy acc;
    if (w2v_analogy_accuracy(w, path, limit, &acc) == 0) {
      if (acc.seen > acc.questions || acc.correct > acc.seen)
        abort();
      w2v_accuracy_free(&acc);
    }
  }
  loom_clear_error();
  return 0;
}
