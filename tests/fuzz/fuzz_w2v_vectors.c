/* word2vec's vector-file reader on arbitrary files. Byte 0 picks the
 * format (detect, text, binary) and a word limit; the rest is the file. */
#include "fuzz_util.h"

#include "apps/word2vec/word2vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int binary = data[0] % 3 - 1;
  int64_t limit = (data[0] >> 2) & 3; /* 0: all */
  const char *path = fuzz_path("w2v-vectors");
  fuzz_write(path, data + 1, size - 1);
  w2v_vectors w;
  if (w2v_load_vectors(&w, path, binary, limit) == 0) {
    for (int64_t i = 0; i < w.n; i++)
      if (!w.words[i])
        abort();
    volatile float sum = 0; /* every element is readable */
    const float *v = loom_data_f32(w.vectors);
    for (int64_t i = 0; i < w.n * w.dim; i++)
      sum += v[i];
    w2v_vectors_free(&w);
  }
  loom_clear_error();
  return 0;
}
