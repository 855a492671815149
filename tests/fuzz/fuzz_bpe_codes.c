/* The BPE codes reader on arbitrary files, then segmenting with what it
 * read. Byte 0: bits 0-2 pick how many merges to read (7: all), bit 3 a
 * vocabulary filter, bit 4 a glossary word; the rest is the codes file.
 * Without a vocabulary, undoing a segmentation must give the words back. */
#include "fuzz_util.h"

#include "apps/common/text.h"

static const char *const lines[] = {
    "lower newest widest lowest",
    "  Zwei M\xC3\xA4nner stra\xC3\x9F"
    "e  ",
    "a b c aaaa abab \xCF\x83\xCE\xBF\xCF\x86\xCE\xAF\xCE\xB1 \xE6\x9D\xB1",
    "tab\there x</w>y </w> e", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const char *path = fuzz_path("bpe-codes");
  fuzz_write(path, data + 1, size - 1);
  int64_t merges = (data[0] & 7) == 7 ? -1 : (data[0] & 7) * 3;
  bool vocab = data[0] & 8, glossary = data[0] & 16;
  app_bpe_codes codes;
  if (app_bpe_codes_read(&codes, path, merges) == 0) {
    app_bpe *b = app_bpe_new(&codes, NULL);
    app_word_counts words = {0};
    if (b && vocab) {
      static const char *const known[] = {"lo@@", "w",   "new@@", "est",
                                          "e",    "a@@", "b"};
      for (int i = 0; i < 7; i++)
        app_word_counts_add(&words, known[i], strlen(known[i]), 1);
      if (app_bpe_set_vocabulary(b, &words))
        abort();
    }
    if (b && glossary && app_bpe_add_glossary(b, "ab", 2))
      abort();
    app_buf out = {0}, back = {0};
    for (size_t i = 0; b && i < sizeof lines / sizeof lines[0]; i++) {
      app_buf_clear(&out);
      app_buf_clear(&back);
      size_t len = strlen(lines[i]);
      if (app_bpe_apply_line(b, lines[i], len, true, &out) ||
          app_bpe_undo_line(out.data, out.len, NULL, &back))
        abort();
      /* the lines have no "@" and no double space between words */
      if (!vocab && (back.len != len + 1 || memcmp(back.data, lines[i], len)))
        abort();
    }
    app_buf_free(&out);
    app_buf_free(&back);
    app_word_counts_free(&words);
    app_bpe_free(b);
    app_bpe_codes_free(&codes);
  }
  loom_clear_error();
  return 0;
}
