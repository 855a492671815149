/* What the fuzz targets share (see scripts/fuzz): loaders that take a path
 * get the input through a file of their own in $TMPDIR. */
#ifndef LOOM_FUZZ_UTIL_H
#define LOOM_FUZZ_UTIL_H

#include <loom/loom.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-process file name for `target`. */
static inline const char *fuzz_path(const char *target) {
  static char path[512];
  if (!path[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/loom-fuzz-%s-%d", tmp ? tmp : "/tmp",
             target, (int)getpid());
  }
  return path;
}

/* Writes the input to `path`; aborts if it cannot (a broken run, not a
 * finding). */
static inline void fuzz_write(const char *path, const uint8_t *data,
                              size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size)
    abort();
  fclose(f);
}

/* A heap copy of exactly `size` bytes, so ASan sees any read past it. */
static inline void *fuzz_copy(const uint8_t *data, size_t size) {
  void *buf = malloc(size ? size : 1);
  if (!buf)
    abort();
  memcpy(buf, data, size);
  return buf;
}

/* A finding: says what broke and aborts, for libFuzzer to keep the input. */
static inline void fuzz_fail(const char *why) {
  fprintf(stderr, "%s\n", why);
  abort();
}

/* After a function returned -1: a finding unless it recorded why. */
static inline void fuzz_said_why(void) {
  if (loom_last_status() == LOOM_OK)
    fuzz_fail("failed without an error message");
  loom_clear_error();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  loom_set_num_threads(1);
  return 0;
}

#endif
