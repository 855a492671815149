/* word2vec's vocabulary-file reader on arbitrary files. Byte 0 picks
 * min_count (0..3); the rest is the file. Every word read is found again. */
#include "fuzz_util.h"

#include "apps/word2vec/word2vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const char *path = fuzz_path("w2v-vocab");
  fuzz_write(path, data + 1, size - 1);
  w2v_vocab v;
  w2v_vocab_init(&v);
  if (w2v_vocab_read(&v, path, data[0] & 3) == 0)
    for (int64_t i = 0; i < v.size; i++) {
      const char *w = w2v_vocab_word(&v, i);
      if (w2v_vocab_find(&v, w, strlen(w)) != i)
        abort();
    }
  w2v_vocab_free(&v);
  loom_clear_error();
  return 0;
}
