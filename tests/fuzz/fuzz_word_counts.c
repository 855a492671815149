/* "WORD COUNT" files (subword-nmt's vocabularies, learn-bpe --dict-input)
 * on arbitrary input, then BPE learned from what was read and applied to
 * its words: each word's subwords, joined, are the word. Byte 0 is the
 * --vocabulary-threshold (0..7); the rest is the file. */
#include "fuzz_util.h"

#include "apps/common/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const char *path = fuzz_path("word-counts");
  fuzz_write(path, data + 1, size - 1);
  app_word_counts wc = {0};
  if (app_word_counts_read(&wc, path, data[0] & 7) == 0) {
    app_bpe_codes codes;
    app_bpe_learn_opts o = {.symbols = 30, .min_frequency = 1};
    if (app_bpe_learn(&wc, &o, &codes) == 0) {
      app_bpe *b = app_bpe_new(&codes, "");
      app_buf out = {0};
      for (int64_t w = 0; b && w < wc.words.n; w++) {
        const char *word = app_strtab_str(&wc.words, w);
        size_t len = app_strtab_len(&wc.words, w);
        app_buf_clear(&out);
        if (app_bpe_apply_line(b, word, len, false, &out))
          abort();
        /* with an empty separator the subwords are joined by spaces */
        size_t k = 0;
        for (size_t i = 0; i < out.len; i++)
          if (out.data[i] != ' ' && (k >= len || out.data[i] != word[k++]))
            abort();
        if (k != len)
          abort();
      }
      app_buf_free(&out);
      app_bpe_free(b);
      app_bpe_codes_free(&codes);
    }
  }
  app_word_counts_free(&wc);
  loom_clear_error();
  return 0;
}
