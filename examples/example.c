/* The runnable examples' options (example.h). Only loom's public API, so an
 * example builds against an installed loom:
 *   cc sentiment.c example.c $(pkg-config --cflags --libs loom) */
#include "example.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole of text as an integer in lo..hi: 0, or -1 after saying why. */
static int parse_int(const char *prog, const char *flag, const char *text,
                     int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi) {
    fprintf(stderr, "%s: %s '%s' is not an integer in %lld..%lld\n", prog, flag,
            text, (long long)lo, (long long)hi);
    return -1;
  }
  *out = v;
  return 0;
}

int example_parse(int argc, char **argv, const char *prog, const char *about,
                  example_options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: %s [--steps N] [--seed N] [--threads N]\n%s", prog, about);
      return 1;
    }
    int64_t *dst = !strcmp(a, "--steps")     ? &o->steps
                   : !strcmp(a, "--seed")    ? &o->seed
                   : !strcmp(a, "--threads") ? &o->threads
                                             : NULL;
    if (!dst) {
      fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, a);
      return 2;
    }
    if (i + 1 == argc) {
      fprintf(stderr, "%s: %s needs a value\n", prog, a);
      return 2;
    }
    int64_t lo = dst == &o->seed ? 0 : 1;
    int64_t hi = dst == &o->steps  ? 10000000
                 : dst == &o->seed ? INT64_MAX
                                   : 1024;
    if (parse_int(prog, a, argv[++i], lo, hi, dst) < 0)
      return 2;
  }
  if (o->threads)
    loom_set_num_threads((int)o->threads);
  return 0;
}

int example_fail(const char *prog, const char *what) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, loom_last_error());
  loom_clear_error();
  return 1;
}
