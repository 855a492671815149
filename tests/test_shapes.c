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

/* Counts the occurrences of needle in haystack. */
static int count(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = haystack; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

/* A checkpoint or picture that cannot be written, and outputs that are
 * one file, fail with the file named once and a status that says so; a
 * folder that is missing or a path that is a folder before training (the
 * picture's was found after it). */
START_TEST(test_outputs) {
  char ck[512], pic[512], args[2048], out[8192];
  const char *small = "--train 200 --test 100 --epochs 1 --quiet";
  test_path(ck, sizeof ck, "missing-dir/s.ckpt");
  snprintf(args, sizeof args, "%s --checkpoint %s --picture ''", small, ck);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "cannot write --checkpoint") &&
                    strstr(out, "missing-dir: No such file") &&
                    count(out, "s.ckpt") == 1 && !strstr(out, "epoch"),
                "%s", out);
  test_path(ck, sizeof ck, "s.ckpt");
  test_path(pic, sizeof pic, "missing-dir/s.png");
  snprintf(args, sizeof args, "%s --checkpoint %s --picture %s", small, ck,
           pic);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, pic) && strstr(out, "missing-dir: No such file"),
                "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0);
  snprintf(args, sizeof args, "%s --checkpoint %s --picture %s", small, ck,
           test_dir);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "it is a folder, not a file"), "%s", out);
  /* a name the folder takes, but not with the writer's .tmpXXXXXX after
   * it: refused before training, not after it */
  char name[256];
  memset(name, 'n', 250);
  name[250] = '\0';
  snprintf(pic, sizeof pic, "%s/%s", test_dir, name);
  snprintf(args, sizeof args, "%s --checkpoint %s --picture ''", small, pic);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "its name is 250 bytes") &&
                    strstr(out, "at most 255") && !strstr(out, "epoch"),
                "%s", out);
  ck_assert_int_ne(access(pic, F_OK), 0);
  ck_assert_int_ne(access(ck, F_OK), 0);
  snprintf(args, sizeof args, "%s --checkpoint ''", small);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   2);
  ck_assert_msg(strstr(out, "--checkpoint '' is not a file name"), "%s", out);
  snprintf(args, sizeof args, "%s --checkpoint %s --picture %s", small, ck, ck);
  ck_assert_int_eq(test_run(shapes(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   2);
  ck_assert_msg(strstr(out, "refusing to write over it"), "%s", out);
  /* writes the file system refuses (a file size limit, its signal
   * ignored): each file named once ("cannot write P: P: cannot write" had
   * named the picture twice) */
  char cmd[2600];
  test_path(pic, sizeof pic, "s.png");
  snprintf(args, sizeof args, "%s --checkpoint %s --picture %s", small, ck,
           pic);
  snprintf(cmd, sizeof cmd, "-c \"trap '' XFSZ; ulimit -f 20; exec %s %s\"",
           shapes(), args);
  ck_assert_int_eq(test_run("sh", cmd, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(count(out, "s.png") == 1 && count(out, "s.ckpt") == 1 &&
                    strstr(out, "s.png: cannot write: File too large"),
                "%s", out);
}
END_TEST

/* Images the machine cannot hold are refused with a message that says so
 * (it was "shapes: " and nothing). Under a 2 GB address-space limit, so
 * not with AddressSanitizer (skipped there). */
START_TEST(test_impossible_sizes_named) {
  char cmd[2048], out[4096];
  if (TEST_UNDER_ASAN) {
    fprintf(stderr, "test_impossible_sizes_named: AddressSanitizer cannot run "
                    "under ulimit -v, skipped\n");
    return;
  }
  snprintf(cmd, sizeof cmd,
           "-c 'ulimit -v 2000000; exec %s --train 1000000 --size 256 "
           "--picture \"\" --checkpoint %s/never.ckpt'",
           shapes(), test_dir);
  ck_assert_int_eq(test_run("sh", cmd, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "out of memory for 1000000 images of 256 x 256"),
                "%s", out);
}
END_TEST

int main(void) {
  if (test_dir_make("shapes") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("shapes");
  TCase *tc = tcase_create("app");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_refuses_bad_numbers);
  tcase_add_test(tc, test_outputs);
  tcase_add_test(tc, test_impossible_sizes_named);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
