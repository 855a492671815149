/* What the runnable examples share: their few command-line options,
 * checked as the apps check theirs. */
#ifndef LOOM_EXAMPLE_H
#define LOOM_EXAMPLE_H

#include <loom/loom.h>
#include <stdint.h>

typedef struct {
  int64_t steps;   /* training steps (each example has its default) */
  int64_t seed;    /* for the data and the initial weights */
  int64_t threads; /* 0: loom's default (all cores) */
} example_options;

/* Parses --steps N (1..10^7), --seed N, --threads N (1..1024) and --help
 * into *o (which holds the defaults). 0 to go on, 1 after --help, 2 after
 * saying what is wrong on stderr. `about` is the --help text. */
int example_parse(int argc, char **argv, const char *prog, const char *about,
                  example_options *o);

/* Prints "PROG: WHAT: <loom's pending error>" on stderr, clears the error
 * and returns 1 (the exit status). */
int example_fail(const char *prog, const char *what);

#endif
