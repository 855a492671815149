/* When a rank dies or stops taking part, the others end with a message
 * within seconds instead of waiting forever. This suite runs `mpirun -np 2`
 * on itself in worker mode (`--worker SCENARIO`), where rank 1 misbehaves
 * before an all-reduce that rank 0 waits in, and checks how the job ends:
 *   exit: rank 1 exits with status 3 without finalizing; mpirun ends the job;
 *   hang: rank 1 sleeps through the all-reduce (90 s); rank 0's wait times
 *         out (LOOM_DIST_TIMEOUT=2), it says so and aborts the job.
 * A job must end within 60 s: well short of the hang, and far above the
 * 4 s a hang job takes on an idle machine, since mpirun's start and the
 * abort's teardown stretch under load (27.9 s once, under AddressSanitizer
 * beside a build on both cores).
 * Skipped without MPI or mpirun (MPIRUN in the environment). */
#define _POSIX_C_SOURCE 200809L
#include "dist_util.h"
#include "file_util.h"

#include <time.h>
#include <unistd.h>

#define HANG_SECONDS 90
#define JOB_SECONDS 60

static const char *self;

static int worker(const char *scenario) {
  if (loom_dist_init(NULL, NULL) < 0) {
    fprintf(stderr, "worker: %s\n", loom_last_error());
    return 1;
  }
  if (loom_dist_rank() == 1) {
    if (!strcmp(scenario, "exit")) {
      fprintf(stderr, "worker: rank 1 exits early\n");
      exit(3);
    }
    if (!strcmp(scenario, "hang"))
      sleep(HANG_SECONDS);
  }
  double v = 1;
  if (loom_dist_all_reduce_values(&v, 1, LOOM_DIST_SUM) < 0) {
    fprintf(stderr, "worker: rank %d: %s\n", loom_dist_rank(),
            loom_last_error());
    loom_dist_abort(1);
  }
  loom_dist_finalize();
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs the scenario on two ranks; its exit status, output and seconds. */
static int run_job(const char *scenario, char *out, size_t n, double *seconds) {
  char args[1024];
  snprintf(args, sizeof args,
           "--oversubscribe --bind-to none -np 2 %s --worker %s", self,
           scenario);
  double t0 = now();
  int status = test_run(getenv("MPIRUN"), args, TEST_OUTPUT_BOTH, out, n);
  *seconds = now() - t0;
  return status;
}

START_TEST(test_rank_exits) {
  char out[8192];
  double seconds;
  int status = run_job("exit", out, sizeof out, &seconds);
  ck_assert_msg(status != 0, "the job succeeded: %s", out);
  ck_assert_msg(seconds < JOB_SECONDS, "the job took %.1f s", seconds);
  ck_assert_msg(strstr(out, "rank 1 exits early") &&
                    strstr(out, "non-zero status"),
                "unexpected output: %s", out);
}
END_TEST

START_TEST(test_rank_hangs) {
  char out[8192];
  double seconds;
  int status = run_job("hang", out, sizeof out, &seconds);
  ck_assert_msg(status != 0, "the job succeeded: %s", out);
  ck_assert_msg(seconds < JOB_SECONDS, "the job took %.1f s", seconds);
  ck_assert_msg(strstr(out, "worker: rank 0: loom_dist_all_reduce_values: "
                            "rank 0 of 2 had no answer from the other ranks "
                            "within 2 s"),
                "no timeout message: %s", out);
}
END_TEST

int main(int argc, char **argv) {
  self = argv[0];
  if (argc == 3 && !strcmp(argv[1], "--worker"))
    return worker(argv[2]);
  if (!loom_dist_available() || !getenv("MPIRUN") || !*getenv("MPIRUN")) {
    fprintf(stderr, "skipped: %s\n",
            loom_dist_available() ? "mpirun was not found"
                                  : "this loom was built without MPI");
    return TEST_SKIPPED;
  }
  setenv("LOOM_DIST_TIMEOUT", "2", 1);
  Suite *s = suite_create("dist_failure");
  TCase *tc = tcase_create("failure");
  tcase_set_timeout(tc, 2 * HANG_SECONDS + 30);
  tcase_add_test(tc, test_rank_exits);
  tcase_add_test(tc, test_rank_hangs);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
