/* For the suites that run as every rank of a world: `prog --ranks N` runs
 * under `mpirun -np N` (N = 1 also runs directly, as a world of one). When
 * the world is not the size asked for because this loom has no MPI, or
 * mpirun was not found when it was built, the suite is skipped (exit
 * status 77, meson's "skipped"), never failed. */
#ifndef LOOM_TESTS_DIST_UTIL_H
#define LOOM_TESTS_DIST_UTIL_H

#include "check_util.h"

#include <stdio.h>
#include <string.h>

#define TEST_SKIPPED 77

/* The N of `--ranks N` (1 without it). */
static inline int dist_wanted_ranks(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--ranks"))
      return atoi(argv[i + 1]);
  return 1;
}

/* Joins the world; returns -1 to go on, or the exit status to end with
 * (0 is never returned: a failure is 1, a skip TEST_SKIPPED). */
static inline int dist_test_start(int *argc, char ***argv) {
  int wanted = dist_wanted_ranks(*argc, *argv);
  if (loom_dist_init(argc, argv) < 0) {
    fprintf(stderr, "%s\n", loom_last_error());
    return 1;
  }
  if (loom_dist_size() == wanted)
    return -1;
  fprintf(stderr, "skipped: %d ranks wanted, the world has %d (%s)\n", wanted,
          loom_dist_size(),
          loom_dist_available() ? "run under mpirun -np N"
                                : "this loom was built without MPI");
  loom_dist_finalize();
  return TEST_SKIPPED;
}

/* Runs the suite on this rank; the exit status, failed if any rank
 * failed (so every rank ends the same way). */
static inline int dist_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  double failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (loom_dist_all_reduce_values(&failed, 1, LOOM_DIST_SUM) < 0) {
    fprintf(stderr, "rank %d: %s\n", loom_dist_rank(), loom_last_error());
    failed = 1;
  }
  loom_cleanup();
  if (loom_dist_finalize() < 0)
    failed = 1;
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
