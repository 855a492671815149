/* caption's tar reader on arbitrary archives: every entry it returns lies
 * inside the archive, reading it or skipping it is safe, and a bad archive
 * is an error. Byte 0 says which entries to read (bit k: the k-th). */
#include "fuzz_util.h"

#include "apps/caption/caption.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t which = data[0];
  void *bytes = fuzz_copy(data + 1, size - 1);
  cap_tar t;
  if (cap_tar_open_memory(&t, bytes, size - 1, "fuzz.tar") < 0)
    abort();
  cap_tar_entry e;
  int r, k = 0;
  while ((r = cap_tar_next(&t, &e)) > 0) {
    if (e.size < 0 || e.offset + e.size > (int64_t)size - 1 || e.offset % 512 ||
        !memchr(e.name, 0, sizeof e.name))
      abort();
    if (which >> (k++ % 8) & 1) {
      void *buf = malloc((size_t)e.size + 1);
      if (!buf || cap_tar_read(&t, &e, buf) < 0)
        abort(); /* the data is there (checked above) */
      free(buf);
    }
  }
  if (r < 0 && loom_last_status() == LOOM_OK)
    abort();
  cap_tar_close(&t);
  loom_clear_error();
  free(bytes);
  return 0;
}
