/* apps/shapes through its command line: bad numbers are refused with a
 * message naming the flag, the value and the range. (The training run
 * itself is a test of its own in tests/meson.build: the program checks its
 * accuracy and the reloaded checkpoint.) */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <unistd.h>

static const char *shapes(void) {
  const char *p = getenv("SHAPES");
  return p ? p : "./apps/shapes";
}

START_TEST(test_refuses_bad_numbers) {
  const struct {
    const char *args, *says;
  } cases[] = {
      {"--train abc", "--train 'abc' is not an integer in 1..10^6"},
      {"--train 99999999999", "--train '99999999999' is not an integer"},
      {"--epochs 1e30", "--epochs '1e30' is not an integer in 1..10^6"},
      {"--lr inf", "--lr 'inf' is not a number in (0, 1000]"},
      {"--lr nan", "--lr 'nan' is not a number in (0, 1000]"},
      {"--size 10", "--size '10' is not a multiple of 4"},
      {"--size 1024", "--size '1024' is not an integer in 8..256"},
      {"--min-accuracy 2", "--min-accuracy '2' is not a number in [0, 1]"},
      {"--batch -1", "--batch '-1' is not an integer in 1..2^16"},
  };
  char ck[512], args[1024], out[4096];
  test_path(ck, sizeof ck, "never.ckpt");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    snprintf(args, sizeof args, "%s --checkpoint %s --picture ''",
             cases[i].args, ck);
    ck_assert_int_eq(
        test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out), 2);
    ck_assert_msg(strstr(out, cases[i].says), "%s: %s", cases[i].args, out);
    ck_assert_int_ne(access(ck, F_OK), 0);
  }
  ck_assert_int_eq(test_run(shapes(), "--help", TEST_OUTPUT_NONE, NULL, 0), 0);
}
END_TEST

int main(void) {
  if (test_dir_make("shapes") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("shapes");
  TCase *tc = tcase_create("app");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_refuses_bad_numbers);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
