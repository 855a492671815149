/* translate's text commands through its command line: score (and, with
 * the BPE commands, bpe), their output and their errors on bad input. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

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

/* sacreBLEU reads a hypothesis file given with -i as it reads references
 * (smart_open: lines end at "\n" only) and standard input in Python's text
 * mode (also at "\r"): a lone \r is whitespace inside a line of the file,
 * a line break on standard input. */
START_TEST(test_score_input_file_lines_end_at_newline) {
  char hyp[512], ref[512], args[2048], out[4096];
  put("cr_hyp.txt", "the cat\rsat on the mat\nok fine\n", hyp, sizeof hyp);
  put("cr_ref.txt", "the cat sat on the mat\nok fine\n", ref, sizeof ref);
  /* sacreBLEU 2.6: sacrebleu cr_ref.txt -i cr_hyp.txt -m bleu chrf */
  snprintf(args, sizeof args, "score -i '%s' '%s'", hyp, ref);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_str_eq(out, "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 "
                        "ratio = 1.000 hyp_len = 8 ref_len = 8)\nchrF2 = "
                        "100.00\n");
  /* sacreBLEU 2.6: "System and reference streams have different lengths" */
  snprintf(args, sizeof args, "score '%s' < '%s'", ref, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "have 3"));
  snprintf(args, sizeof args, "score -i - '%s' < '%s'", ref, hyp);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "have 3"));
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

/* ----------------------------------------------------------------- bpe */

/* $LOOM_SOURCE_ROOT/tests/data/NAME */
static void data_path(char *buf, size_t n, const char *name) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  snprintf(buf, n, "%s/tests/data/%s", root ? root : ".", name);
}

/* Runs translate with args, its output into the suite's file `out_name`,
 * and checks that the file equals the reference file `want`. */
static void run_to_file(const char *args, const char *want) {
  char out[512], cmd[4096], ref[1024];
  test_path(out, sizeof out, "out.txt");
  remove(out);
  snprintf(cmd, sizeof cmd, "%s -o '%s'", args, out);
  ck_assert_msg(run(cmd, TEST_OUTPUT_NONE, NULL, 0) == 0, "%s failed", cmd);
  data_path(ref, sizeof ref, want);
  size_t n1, n2;
  char *got = test_slurp(out, &n1), *expected = test_slurp(ref, &n2);
  ck_assert_msg(n1 == n2 && !memcmp(got, expected, n1),
                "translate %s differs from subword-nmt's %s", args, want);
  free(got);
  free(expected);
}

START_TEST(test_bpe_commands_match_subword_nmt) {
  char corpus[1024], text[1024], codes[1024], vocab[1024], args[4096];
  data_path(corpus, sizeof corpus, "bpe_corpus.txt");
  data_path(text, sizeof text, "bpe_text.txt");
  data_path(codes, sizeof codes, "bpe_codes.txt");
  data_path(vocab, sizeof vocab, "bpe_vocab.txt");
  snprintf(args, sizeof args, "bpe learn -s 200 < '%s'", corpus);
  run_to_file(args, "bpe_codes.txt");
  snprintf(args, sizeof args,
           "bpe learn --symbols 150 -t --min-frequency 3 -i '%s'", corpus);
  run_to_file(args, "bpe_codes_total.txt");
  snprintf(args, sizeof args, "bpe learn -s 100 --dict-input < '%s'", vocab);
  run_to_file(args, "bpe_codes_dict.txt");
  snprintf(args, sizeof args, "bpe apply -c '%s' < '%s'", codes, text);
  run_to_file(args, "bpe_apply.txt");
  snprintf(args, sizeof args,
           "bpe apply --codes '%s' --vocabulary '%s' --vocabulary-threshold 3 "
           "< '%s'",
           codes, vocab, text);
  run_to_file(args, "bpe_apply_vocab.txt");
  snprintf(args, sizeof args,
           "bpe apply -c '%s' --glossaries man Stra\xC3\x9F"
           "e "
           "\xCF\x83\xCE\xBF\xCF\x86\xCE\xAF\xCE\xB1 < '%s'",
           codes, text);
  run_to_file(args, "bpe_apply_gloss.txt");
  snprintf(args, sizeof args, "bpe apply -c '%s' -m 50 -s ++ < '%s'", codes,
           text);
  run_to_file(args, "bpe_apply_m50.txt");
  snprintf(args, sizeof args, "bpe apply -c '%s' < '%s' | %s bpe vocab", codes,
           corpus, prog());
  run_to_file(args, "bpe_vocab.txt");
  /* a file given with -i is split at every str.splitlines break, each line
   * keeping its break ("\r\n" written back as it was, "\f" part of a
   * word) */
  char lines[1024];
  data_path(lines, sizeof lines, "bpe_lines.txt");
  snprintf(args, sizeof args, "bpe learn -s 60 --min-frequency 1 -i '%s'",
           lines);
  run_to_file(args, "bpe_lines_codes.txt");
  snprintf(args, sizeof args, "bpe vocab -i '%s'", lines);
  run_to_file(args, "bpe_lines_vocab.txt");
  snprintf(args, sizeof args, "bpe apply -c '%s' -i '%s'", codes, lines);
  run_to_file(args, "bpe_lines_apply.txt");
  /* undo is the sed rule of subword-nmt's README */
  char seg[1024], out[8192], sed[8192];
  data_path(seg, sizeof seg, "bpe_apply.txt");
  snprintf(args, sizeof args, "bpe undo < '%s'", seg);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  snprintf(args, sizeof args, "-r 's/(@@ )|(@@ ?$)//g' < '%s'", seg);
  ck_assert_int_eq(test_run("sed", args, TEST_OUTPUT_STDOUT, sed, sizeof sed),
                   0);
  ck_assert_uint_gt(strlen(out), 1000);
  ck_assert_str_eq(out, sed);
}
END_TEST

START_TEST(test_bpe_bad_input) {
  char path[512], codes[512], args[2048], out[4096], want[2048];
  put("ok.codes", "#version: 0.2\na b\n", codes, sizeof codes);
  /* malformed codes: the file and line in the message, exit status 1 */
  put("bad.codes", "#version: 0.2\na b\nab\n", path, sizeof path);
  snprintf(args, sizeof args, "bpe apply -c '%s' < /dev/null", path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  snprintf(want, sizeof want,
           "translate bpe apply: %s:3: a merge must be two symbols separated "
           "by one space\n",
           path);
  ck_assert_str_eq(out, want);
  put("v3.codes", "#version: 0.3\n", path, sizeof path);
  snprintf(args, sizeof args, "bpe apply -c '%s' < /dev/null", path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, ":1: version '#version: 0.3'"));
  /* invalid UTF-8 in the text: byte offset and line */
  put("bad.txt", "ok\nab\xE2\x82 c\n", path, sizeof path);
  snprintf(args, sizeof args, "bpe apply -c '%s' < '%s'", codes, path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "translate bpe apply: <stdin>: invalid "
                                    "UTF-8 at byte 5 (line 2, byte 3 of the "
                                    "line)"));
  snprintf(args, sizeof args, "bpe learn < '%s'", path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "invalid UTF-8 at byte 5"));
  /* a failed run leaves no output file behind */
  char dest[512];
  test_path(dest, sizeof dest, "never.txt");
  snprintf(args, sizeof args, "bpe learn -i '%s' -o '%s'", path, dest);
  ck_assert_int_eq(run(args, TEST_OUTPUT_NONE, NULL, 0), 1);
  ck_assert_ptr_null(fopen(dest, "r"));
  /* a bad vocabulary file */
  put("bad.vocab", "the 5\nman\n", path, sizeof path);
  snprintf(args, sizeof args, "bpe apply -c '%s' --vocabulary '%s' < /dev/null",
           codes, path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  snprintf(want, sizeof want,
           "translate bpe apply: %s:2: expected a word and a count separated "
           "by one space\n",
           path);
  ck_assert_str_eq(out, want);
  /* usage errors: exit status 2 */
  ck_assert_int_eq(
      run("bpe learn -s 1e10 < /dev/null", TEST_OUTPUT_BOTH, out, sizeof out),
      2);
  ck_assert_ptr_nonnull(strstr(out, "--symbols"));
  ck_assert_int_eq(
      run("bpe learn --min-frequency 0 < /dev/null", TEST_OUTPUT_NONE, NULL, 0),
      2);
  ck_assert_int_eq(
      run("bpe apply < /dev/null", TEST_OUTPUT_BOTH, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "-c CODES is required"));
  snprintf(args, sizeof args, "bpe apply -c '%s' --symbols 5 < /dev/null",
           codes);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "no option --symbols"));
  snprintf(args, sizeof args,
           "bpe apply -c '%s' --glossaries 'a.b' < /dev/null", codes);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "only literal words"));
  ck_assert_int_eq(run("bpe frob", TEST_OUTPUT_NONE, NULL, 0), 2);
  ck_assert_int_eq(run("bpe", TEST_OUTPUT_NONE, NULL, 0), 2);
  ck_assert_int_eq(
      run("bpe learn stray < /dev/null", TEST_OUTPUT_NONE, NULL, 0), 2);
  ck_assert_int_eq(run("bpe --help", TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "--vocabulary-threshold"));
  /* no pair at all: no merges, and apply accepts the codes */
  snprintf(args, sizeof args, "bpe learn < '%s'", codes);
  put("one.txt", "a b c\n", path, sizeof path);
  snprintf(args, sizeof args, "bpe learn < '%s'", path);
  ck_assert_int_eq(run(args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_str_eq(out, "#version: 0.2\n");
}
END_TEST

/* `args` is refused before anything is written: exit status 2, a message
 * with `says` (a format with the victim's path in it), and `victim` as it
 * was, byte for byte. */
static void expect_kept(const char *args, const char *victim,
                        const char *says) {
  char out[4096], want[2048];
  size_t before_len, after_len;
  char *before = test_slurp(victim, &before_len);
  int rc = run(args, TEST_OUTPUT_BOTH, out, sizeof out);
  char *after = test_slurp(victim, &after_len);
  snprintf(want, sizeof want, says, victim);
  ck_assert_msg(rc == 2, "exit %d, not 2, for %s: %s", rc, args, out);
  ck_assert_msg(strstr(out, want), "'%s' lacks '%s' (%s)", out, want, args);
  ck_assert_msg(before_len == after_len && !memcmp(before, after, before_len),
                "%s changed by %s", victim, args);
  free(before);
  free(after);
}

/* -o is never a file the command reads: -i, standard input's file (by
 * any name), -c, --vocabulary. Each had been replaced by the output with
 * exit status 0. */
START_TEST(test_bpe_output_is_not_an_input) {
  char codes[512], text[512], vocab[512], link_path[512], args[4096];
  put("ow.codes", "#version: 0.2\na b\n", codes, sizeof codes);
  put("ow.txt", "a b ab\n", text, sizeof text);
  put("ow.vocab", "ab 1\n", vocab, sizeof vocab);
  snprintf(args, sizeof args, "bpe apply -c %s -o %s < %s", codes, codes, text);
  expect_kept(args, codes, "translate bpe apply: -o %s is the -c file");
  snprintf(args, sizeof args, "bpe apply -c %s -i %s -o %s", codes, text, text);
  expect_kept(args, text, "translate bpe apply: -o %s is the -i file");
  snprintf(args, sizeof args, "bpe apply -c %s --vocabulary %s -o %s < %s",
           codes, vocab, vocab, text);
  expect_kept(args, vocab,
              "translate bpe apply: -o %s is the --vocabulary file");
  snprintf(args, sizeof args, "bpe apply -c %s -o %s < %s", codes, text, text);
  expect_kept(args, text, "translate bpe apply: -o %s is the standard input");
  test_path(link_path, sizeof link_path, "ow-link.txt");
  ck_assert_int_eq(link(text, link_path), 0);
  snprintf(args, sizeof args, "bpe apply -c %s -i - -o %s < %s", codes,
           link_path, text);
  expect_kept(args, link_path,
              "translate bpe apply: -o %s is the standard input");
  snprintf(args, sizeof args, "bpe apply -c %s -i %s -o %s", codes, text,
           link_path);
  expect_kept(args, link_path, "translate bpe apply: -o %s is the -i file");
  snprintf(args, sizeof args, "bpe learn -o %s < %s", text, text);
  expect_kept(args, text, "translate bpe learn: -o %s is the standard input");
  snprintf(args, sizeof args, "bpe undo -i %s -o %s", text, text);
  expect_kept(args, text, "translate bpe undo: -o %s is the -i file");
  snprintf(args, sizeof args, "bpe vocab -o %s < %s", link_path, text);
  expect_kept(args, link_path,
              "translate bpe vocab: -o %s is the standard input");
  /* other files are written as before */
  char dest[512], out[4096];
  test_path(dest, sizeof dest, "ow-out.txt");
  snprintf(args, sizeof args, "bpe apply -c %s -i %s -o %s", codes, text, dest);
  ck_assert_int_eq(run(args, TEST_OUTPUT_BOTH, out, sizeof out), 0);
  size_t len;
  char *got = test_slurp(dest, &len);
  ck_assert_ptr_nonnull(strstr(got, "a b a"));
  free(got);
}
END_TEST

/* A write that fails names the output and the reason, and leaves an older
 * -o file as it was: learn, undo and vocab had said only "BPE codes: write
 * error", "write error" and "word counts: write error". -o fails here for
 * a file size limit (ulimit -f, its signal ignored), standard output on
 * /dev/full. */
START_TEST(test_bpe_failed_writes_named) {
  static const char *cmds[] = {"learn -s 500", "apply -c %s", "undo", "vocab"};
  char codes[512], text[512], dest[512], args[4096], cmd[2048], out[4096];
  put("fw.codes", "#version: 0.2\na b\n", codes, sizeof codes);
  test_path(text, sizeof text, "fw.txt");
  FILE *f = fopen(text, "w");
  ck_assert_ptr_nonnull(f);
  for (int i = 0; i < 4000; i++) /* 150 kB of different words */
    fprintf(f, "ab%d bc%d cd%d de@@ ef\n", i, i * 7, i * 13);
  ck_assert_int_eq(fclose(f), 0);
  test_path(dest, sizeof dest, "fw.out");
  for (int i = 0; i < 4; i++) {
    snprintf(cmd, sizeof cmd, cmds[i], codes);
    test_write_file(dest, "old\n", 4);
    snprintf(args, sizeof args,
             "-c \"trap '' XFSZ; ulimit -f 2; exec %s bpe %s -i %s -o %s\"",
             prog(), cmd, text, dest);
    ck_assert_int_eq(test_run("sh", args, TEST_OUTPUT_BOTH, out, sizeof out),
                     1);
    ck_assert_msg(strstr(out, dest) && strstr(out, "cannot write: File too "
                                                   "large"),
                  "%s: %s", cmd, out);
    size_t len;
    char *got = test_slurp(dest, &len);
    ck_assert_str_eq(got, "old\n");
    free(got);
    snprintf(args, sizeof args, "bpe %s -i %s", cmd, text);
    ck_assert_int_eq(test_run_stdout_full(prog(), args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "standard output: cannot write: No space left "
                              "on device"),
                  "%s: %s", cmd, out);
  }
}
END_TEST

/* FNV-1a-64 of a file, in hex. */
static void file_digest(const char *path, char hex[17], size_t *len) {
  char *data = test_slurp(path, len);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < *len; i++)
    h = (h ^ (unsigned char)data[i]) * 0x100000001b3ULL;
  snprintf(hex, 17, "%016llx", (unsigned long long)h);
  free(data);
}

/* subword-nmt's joint-BPE recipe on Multi30k, compared through digests of
 * its outputs (tests/data/bpe_multi30k.txt). Needs ../shared/data (or
 * $LOOM_SHARED_DATA); skips without it. */
START_TEST(test_bpe_multi30k_matches_subword_nmt) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  const char *shared = getenv("LOOM_SHARED_DATA");
  char data[512];
  if (shared)
    snprintf(data, sizeof data, "%s/multi30k", shared);
  else
    snprintf(data, sizeof data, "%s/../shared/data/multi30k",
             root ? root : ".");
  char probe[600];
  snprintf(probe, sizeof probe, "%s/train.de", data);
  FILE *f = fopen(probe, "r");
  if (!f) {
    printf("skipped: no Multi30k at %s\n", data);
    return;
  }
  fclose(f);
  char codes[512], vocab[512], test_de[512], test_en[512], args[4096];
  test_path(codes, sizeof codes, "m30k.codes");
  test_path(vocab, sizeof vocab, "m30k.vocab");
  test_path(test_de, sizeof test_de, "m30k.test.de");
  test_path(test_en, sizeof test_en, "m30k.test.en");
  char joint[512];
  test_path(joint, sizeof joint, "m30k.joint");
  snprintf(args, sizeof args, "cat '%s/train.de' '%s/train.en' > '%s'", data,
           data, joint);
  ck_assert_int_eq(system(args), 0);
  snprintf(args, sizeof args, "bpe learn -s 3000 -i '%s' -o '%s'", joint,
           codes);
  ck_assert_int_eq(run(args, TEST_OUTPUT_NONE, NULL, 0), 0);
  snprintf(args, sizeof args,
           "bpe apply -c '%s' < '%s/train.de' | %s bpe vocab -o '%s'", codes,
           data, prog(), vocab);
  ck_assert_int_eq(run(args, TEST_OUTPUT_NONE, NULL, 0), 0);
  snprintf(args, sizeof args,
           "bpe apply -c '%s' --vocabulary '%s' --vocabulary-threshold 50 -o "
           "'%s' < '%s/test_2016_flickr.de'",
           codes, vocab, test_de, data);
  ck_assert_int_eq(run(args, TEST_OUTPUT_NONE, NULL, 0), 0);
  snprintf(args, sizeof args,
           "bpe apply -c '%s' -o '%s' < '%s/test_2016_flickr.en'", codes,
           test_en, data);
  ck_assert_int_eq(run(args, TEST_OUTPUT_NONE, NULL, 0), 0);
  char ref[1024];
  data_path(ref, sizeof ref, "bpe_multi30k.txt");
  size_t n;
  char *want = test_slurp(ref, &n), *p = want;
  const char *names[] = {"codes", "vocab", "test_de", "test_en"};
  const char *paths[] = {codes, vocab, test_de, test_en};
  for (int k = 0; k < 4; k++) {
    char line[128], hex[17];
    size_t len;
    file_digest(paths[k], hex, &len);
    snprintf(line, sizeof line, "%s %s %zu\n", names[k], hex, len);
    ck_assert_msg(strstr(p, line) != NULL,
                  "%s differs from subword-nmt's (%s %s %zu bytes)", names[k],
                  names[k], hex, len);
  }
  free(want);
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
  tcase_add_test(tc, test_score_input_file_lines_end_at_newline);
  tcase_add_test(tc, test_bpe_commands_match_subword_nmt);
  tcase_add_test(tc, test_bpe_bad_input);
  tcase_add_test(tc, test_bpe_output_is_not_an_input);
  tcase_add_test(tc, test_bpe_failed_writes_named);
  tcase_add_test(tc, test_bpe_multi30k_matches_subword_nmt);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
