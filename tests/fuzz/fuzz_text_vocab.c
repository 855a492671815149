/* A model vocabulary file on arbitrary input: what loads has the specials
 * first and finds every token again, and saves and loads back the same. */
#include "fuzz_util.h"

#include "apps/common/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("text-vocab");
  fuzz_write(path, data, size);
  app_vocab v;
  if (app_vocab_load(&v, path) == 0) {
    if (app_vocab_size(&v) < APP_SPECIALS)
      abort();
    for (int64_t id = 0; id < app_vocab_size(&v); id++) {
      const char *t = app_vocab_token(&v, id);
      size_t len = app_strtab_len(&v.tokens, id);
      if (app_vocab_id(&v, t, len) != id ||
          (id < APP_SPECIALS && strcmp(t, app_vocab_special(id))))
        abort();
    }
    char again[600];
    snprintf(again, sizeof again, "%s.again", path);
    app_vocab back;
    if (app_vocab_save(&v, again) || app_vocab_load(&back, again) ||
        app_vocab_size(&back) != app_vocab_size(&v))
      abort();
    for (int64_t id = 0; id < app_vocab_size(&v); id++)
      if (strcmp(app_vocab_token(&back, id), app_vocab_token(&v, id)))
        abort();
    app_vocab_free(&back);
    remove(again);
    app_vocab_free(&v);
  }
  loom_clear_error();
  return 0;
}
