/* caption's text readers on arbitrary files. Byte 0 picks the reader:
 * even, the captions file (for images a.jpg, b.jpg and c.jpg); odd, the
 * split table (images.tsv) through the Flickr8k loader, whose captions and
 * images then come from files that do not exist. Captions read must
 * belong to their images, non-empty and NUL-free. */
#include "fuzz_util.h"

#include "apps/caption/caption.h"

static void captions(const uint8_t *data, size_t size) {
  cap_data d = {0};
  const char *names[] = {"a.jpg", "b.jpg", "c.jpg"};
  for (int i = 0; i < 3; i++)
    if (app_strtab_intern(&d.names, names[i], 5) != i)
      abort();
  d.n = 3;
  d.split = calloc(3, 1);
  char *text = fuzz_copy(data, size);
  if (cap_captions_read("fuzz", text, size, &d) == 0) {
    if (d.first[0] != 0 || d.first[3] != d.n_captions)
      abort();
    for (int i = 0; i < 3; i++)
      if (d.first[i + 1] <= d.first[i])
        abort();
    for (int64_t c = 0; c < d.n_captions; c++)
      if (!d.captions[c] || !d.captions[c][0])
        abort();
  }
  free(text);
  cap_data_free(&d);
}

static void table(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("caption-table");
  fuzz_write(path, data, size);
  cap_flickr_source src = {.table = path, .captions = "/nonexistent/c.txt"};
  cap_data d;
  if (cap_flickr_load(&src, 8, NULL, &d) == 0)
    abort(); /* its captions cannot be read */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  if (data[0] & 1)
    table(data + 1, size - 1);
  else
    captions(data + 1, size - 1);
  loom_clear_error();
  return 0;
}
