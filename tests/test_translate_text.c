/* translate's text commands through its command line: score (and, with
 * the BPE commands, bpe), their output and their errors on bad input. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <string.h>

static const char *prog(void) {
  const char *p = getenv("TRANSLATE");
  ck_assert_msg(p != NULL, "set TRANSLATE to the program");
  return p;
}

/* Writes `text` to the suite's file `name`; its path in path. */
static void put(const char *name, const char *text, char *path, size_t n) {
  test_path(path, n, name);
  test_write_file(path, text, strlen(text));
}

/* Runs translate with args (a shell fragment), output kept as asked. */
static int run(const char *args, test_output keep, char *out, size_t n) {
  return test_run(prog(), args, keep, out, n);
}

START_TEST(test_score_prints_as_sacrebleu) {
  char hyp[512], ref[512], ref2[512], args[2048], out[4096];
  put("hyp.txt",
      "The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n",
      hyp, sizeof hyp);
  /* CRLF references: sacreBLEU strips the \r with the trailing space */
  put("ref.txt",
      "The dog bit the man.\r\nIt was not surprising.\r\nThe man had just "
      "bitten him.\r\n",
      ref, sizeof ref);
  snprintf(args, sizeof args, "score '%s' < '%s'", ref, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  /* the values of sacreBLEU 2.6 (tests/data/text_scores.txt, "simple") */
  ck_assert_str_eq(out, "BLEU = 50.18 82.4/57.1/45.5/37.5 (BP = 0.943 ratio "
                        "= 0.944 hyp_len = 17 ref_len = 18)\nchrF2 = 50.86\n");
  snprintf(args, sizeof args, "score -b -m chrf -i '%s' '%s'", hyp, ref);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_str_eq(out, "50.86\n");
  /* NLTK's corpus_bleu on the baseline's tokens: 0.5017826940694657 */
  snprintf(args, sizeof args, "score --tokenized -m bleu '%s' < '%s'", ref,
           hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_str_eq(out, "BLEU = 50.18 82.4/57.1/45.5/37.5 (BP = 0.943 ratio "
                        "= 0.944 hyp_len = 17 ref_len = 18)\n");
  /* two references */
  put("ref2.txt", "A dog bit the man.\nIt was not unexpected.\nx\n", ref2,
      sizeof ref2);
  snprintf(args, sizeof args, "score '%s' '%s' < '%s'", ref, ref2, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  /* sacreBLEU 2.6's figures for the same files */
  ck_assert_str_eq(out, "BLEU = 66.72 88.2/71.4/63.6/62.5 (BP = 0.943 ratio "
                        "= 0.944 hyp_len = 17 ref_len = 18)\nchrF2 = 72.15\n");
  ck_assert_int_eq(run("--help", TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "score"));
  ck_assert_ptr_nonnull(strstr(out, "bpe"));
  ck_assert_int_eq(run("score --help", TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "--lowercase"));
}
END_TEST

START_TEST(test_score_bad_input) {
  char hyp[512], ref[512], bad[512], empty[512], args[2048], out[4096];
  put("hyp.txt", "one two\nthree\n", hyp, sizeof hyp);
  put("short.txt", "one two\n", ref, sizeof ref);
  snprintf(args, sizeof args, "score '%s' < '%s'", ref, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  char want[2048];
  snprintf(want, sizeof want,
           "translate score: %s has 1 lines but the hypotheses (<stdin>) "
           "have 2\n",
           ref);
  ck_assert_str_eq(out, want);

  put("bad.txt", "one two\nthr\xC3\xA9\xC3 e\n", bad, sizeof bad);
  snprintf(args, sizeof args, "score '%s' < '%s'", hyp, bad);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_str_eq(out, "translate score: <stdin>: invalid UTF-8 at byte 13 "
                        "(line 2, byte 6 of the line)\n");
  snprintf(args, sizeof args, "score '%s' < '%s'", bad, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  snprintf(want, sizeof want,
           "translate score: %s: invalid UTF-8 at byte 13 (line 2, byte 6 of "
           "the line)\n",
           bad);
  ck_assert_str_eq(out, want);

  put("empty.txt", "", empty, sizeof empty);
  snprintf(args, sizeof args, "score '%s' < '%s'", empty, empty);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_str_eq(out, "translate score: <stdin>: no hypotheses\n");

  snprintf(args, sizeof args, "score '%s/missing' < '%s'", test_dir, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "No such file"));

  ck_assert_int_eq(run("score < /dev/null", TEST_OUTPUT_NONE, NULL, 0), 2);
  snprintf(args, sizeof args, "score -m bleu,ter '%s' < '%s'", hyp, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "--metrics 'bleu,ter'"));
  ck_assert_int_eq(run("score --nonsense x", TEST_OUTPUT_NONE, NULL, 0), 2);
  ck_assert_int_eq(run("frobnicate", TEST_OUTPUT_NONE, NULL, 0), 2);
  ck_assert_int_eq(run("", TEST_OUTPUT_NONE, NULL, 0), 2);
}
END_TEST

int main(void) {
  if (test_dir_make("translate-text"))
    return EXIT_FAILURE;
  Suite *s = suite_create("translate_text");
  TCase *tc = tcase_create("commands");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_score_prints_as_sacrebleu);
  tcase_add_test(tc, test_score_bad_input);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
