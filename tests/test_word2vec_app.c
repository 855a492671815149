/* apps/word2vec end to end, through the built program: on a text the test
 * writes with planted structure, every architecture and output layer puts
 * the planted word pairs nearest to each other; the text and binary files
 * agree when read back here in C; the vocabulary file round-trips; a
 * resumed run is bit-identical; the query commands answer; bad input
 * fails cleanly. With ../shared/data, a short run on PTB scores well above
 * chance on the analogy and WordSim-353 evaluations. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include "../apps/word2vec/word2vec.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *word2vec(void) {
  const char *p = getenv("WORD2VEC");
  return p ? p : "./apps/word2vec";
}

static char corpus[512];

/* Runs word2vec with arguments; returns its exit status. */
static int run(const char *args) {
  return test_run(word2vec(), args, TEST_OUTPUT_NONE, NULL, 0);
}

/* Runs word2vec, capturing stdout and stderr into out; its exit status. */
static int capture(const char *args, char *out, size_t n) {
  return test_run(word2vec(), args, TEST_OUTPUT_BOTH, out, n);
}

/* The planted text: sentences walk a random chain over 200 words (each
 * word has 4 possible successors, so every word has its own contexts),
 * and 20 of the words are written as two spellings, "w<k>a" or "w<k>b",
 * at random. The two spellings of a word share every context, so good
 * vectors make them each other's nearest neighbour. */
enum { CHAIN_WORDS = 200, SPLIT = 20, SENTENCES = 4000 };

static int write_planted(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  uint64_t s = w2v_rand_seed(2024, 0);
  int succ[CHAIN_WORDS][4];
  for (int w = 0; w < CHAIN_WORDS; w++)
    for (int k = 0; k < 4; k++)
      succ[w][k] = (int)w2v_rand_below(&s, CHAIN_WORDS);
  for (int i = 0; i < SENTENCES; i++) {
    int w = (int)w2v_rand_below(&s, CHAIN_WORDS);
    for (int j = 0; j < 10; j++) {
      if (w % 2 == 0 && w < 2 * SPLIT)
        fprintf(f, "w%d%c", w, w2v_rand_below(&s, 2) ? 'a' : 'b');
      else
        fprintf(f, "w%d", w);
      fputc(j == 9 ? '\n' : ' ', f);
      w = succ[w][w2v_rand_below(&s, 4)];
    }
  }
  return fclose(f);
}

/* How many of the 2 * SPLIT planted spellings have their twin as nearest
 * neighbour in the vector file. */
static int planted_pairs_found(const char *vectors) {
  w2v_vectors w;
  ck_assert_msg(w2v_load_vectors(&w, vectors, -1, 0) == 0, "%s",
                loom_last_error());
  loom_tensor *normed = w2v_normalized(w.vectors);
  ck_assert_loom(normed);
  int found = 0;
  for (int k = 0; k < SPLIT; k++)
    for (int side = 0; side < 2; side++) {
      char me[16], twin[16];
      snprintf(me, sizeof me, "w%d%c", 2 * k, side ? 'b' : 'a');
      snprintf(twin, sizeof twin, "w%d%c", 2 * k, side ? 'a' : 'b');
      int64_t i = w2v_find_word(&w, me, 0);
      ck_assert_int_ge(i, 0);
      w2v_hit hit;
      ck_assert_int_eq(w2v_nearest(normed, loom_data_f32(normed) + i * w.dim,
                                   &i, 1, 0, 1, &hit),
                       1);
      found += strcmp(w.words[hit.index], twin) == 0;
    }
  w2v_vectors_free(&w);
  return found;
}

#define SMALL "-size 32 -min-count 1 -sample 0 -iter 5 -debug 0"

START_TEST(test_planted_pairs) {
  const char *modes[] = {
      "-cbow 0 -negative 5 -threads 2",       /* skip-gram, negatives */
      "-cbow 1 -negative 5 -threads 2",       /* CBOW, negatives */
      "-cbow 0 -hs 1 -negative 0 -threads 2", /* skip-gram, tree */
      "-cbow 1 -hs 1 -negative 3 -threads 2", /* CBOW, both */
      "-cbow 1 -engine autograd -threads 1",  /* the loom-ops path */
  };
  for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
    char out[512], args[4096];
    test_path(out, sizeof out, "planted.txt.vec");
    snprintf(args, sizeof args, "-train %s -output %s %s " SMALL, corpus, out,
             modes[m]);
    ck_assert_int_eq(run(args), 0);
    int found = planted_pairs_found(out);
    ck_assert_msg(found >= 2 * SPLIT - 2,
                  "%s: %d of %d planted pairs "
                  "nearest",
                  modes[m], found, 2 * SPLIT);
  }
}
END_TEST

START_TEST(test_text_and_binary_agree) {
  char txt[512], bin[512], args[4096];
  test_path(txt, sizeof txt, "same.txt");
  test_path(bin, sizeof bin, "same.bin");
  /* one thread and a seed: the same vectors both times */
  const char *opts = "-cbow 0 -threads 1 -seed 7 " SMALL;
  snprintf(args, sizeof args, "-train %s -output %s %s", corpus, txt, opts);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "-train %s -output %s -binary 1 %s", corpus, bin,
           opts);
  ck_assert_int_eq(run(args), 0);
  w2v_vectors t, b;
  ck_assert_int_eq(w2v_load_vectors(&t, txt, 0, 0), 0);
  ck_assert_int_eq(w2v_load_vectors(&b, bin, 1, 0), 0);
  ck_assert_int_eq(t.n, b.n);
  ck_assert_int_eq(t.n, 2 * SPLIT + CHAIN_WORDS - SPLIT + 1); /* + </s> */
  ck_assert_int_eq(t.dim, 32);
  for (int64_t i = 0; i < t.n; i++)
    ck_assert_str_eq(t.words[i], b.words[i]);
  ck_assert_str_eq(t.words[0], "</s>");
  /* six decimals, then the float nearest to them */
  ck_assert(loom_allclose(t.vectors, b.vectors, 1.2e-7, 5.01e-7));
  w2v_vectors_free(&t);
  w2v_vectors_free(&b);
}
END_TEST

START_TEST(test_vocabulary_file) {
  char v1[512], v2[512], a[512], b[512], args[4096];
  test_path(v1, sizeof v1, "v1.txt");
  test_path(v2, sizeof v2, "v2.txt");
  test_path(a, sizeof a, "a.bin");
  test_path(b, sizeof b, "b.bin");
  const char *opts = "-threads 1 -binary 1 " SMALL;
  snprintf(args, sizeof args, "-train %s -output %s -save-vocab %s %s", corpus,
           a, v1, opts);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args,
           "-train %s -output %s -read-vocab %s -save-vocab %s %s", corpus, b,
           v1, v2, opts);
  ck_assert_int_eq(run(args), 0);
  size_t l1, l2, la, lb;
  char *s1 = test_slurp(v1, &l1), *s2 = test_slurp(v2, &l2);
  char *sa = test_slurp(a, &la), *sb = test_slurp(b, &lb);
  ck_assert_uint_eq(l1, l2);
  ck_assert(memcmp(s1, s2, l1) == 0);
  ck_assert(strncmp(s1, "</s> 4000\n", 10) == 0); /* one per line */
  /* the same vocabulary gives the same training */
  ck_assert_uint_eq(la, lb);
  ck_assert(memcmp(sa, sb, la) == 0);
  free(s1);
  free(s2);
  free(sa);
  free(sb);
  /* without -output only the vocabulary is written, like the original */
  remove(v2);
  snprintf(args, sizeof args, "-train %s -save-vocab %s -debug 0", corpus, v2);
  ck_assert_int_eq(run(args), 0);
  ck_assert_int_eq(access(v2, F_OK), 0);
}
END_TEST

START_TEST(test_resume_is_exact) {
  char whole[512], part[512], ck[512], args[4096];
  test_path(whole, sizeof whole, "whole.bin");
  test_path(part, sizeof part, "part.bin");
  test_path(ck, sizeof ck, "w2v.ckpt");
  const char *opts = "-cbow 1 -hs 1 -threads 1 -binary 1 -size 32 "
                     "-min-count 1 -iter 3 -debug 0";
  snprintf(args, sizeof args, "-train %s -output %s %s", corpus, whole, opts);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args,
           "-train %s -output %s %s -checkpoint %s -stop-after 2", corpus, part,
           opts, ck);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args,
           "-train %s -output %s %s -checkpoint %s "
           "-resume 1",
           corpus, part, opts, ck);
  ck_assert_int_eq(run(args), 0);
  size_t la, lb;
  char *a = test_slurp(whole, &la), *b = test_slurp(part, &lb);
  ck_assert_uint_eq(la, lb);
  ck_assert_msg(memcmp(a, b, la) == 0, "a resumed run differs");
  free(a);
  free(b);
  /* a checkpoint of other settings is refused, each one named with both
   * values (it had said only "made with other options or another text") */
  char out[4096];
  snprintf(args, sizeof args,
           "-train %s -output %s %s -window 3 "
           "-checkpoint %s -resume 1",
           corpus, part, opts, ck);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "other options or another text: -window 3, the "
                            "checkpoint has 5\n"),
                "%s", out);
  /* the engine by the flag's word, not the number the checkpoint keeps */
  snprintf(args, sizeof args,
           "-train %s -output %s %s -engine autograd -checkpoint %s -resume 1",
           corpus, part, opts, ck);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "-engine autograd, the checkpoint has fused\n"),
                "%s", out);
  /* another program's checkpoint is said to be one */
  char other[512];
  test_path(other, sizeof other, "other.ckpt");
  loom_scope *scope = loom_scope_begin();
  loom_tensor_map *map = loom_tensor_map_new();
  ck_assert_int_eq(
      loom_tensor_map_set(map, "syn0", loom_zeros(LOOM_F32, LOOM_SHAPE(2, 2))),
      0);
  ck_assert_int_eq(loom_safetensors_save(other, map), 0);
  loom_tensor_map_free(map);
  loom_scope_end(scope);
  snprintf(args, sizeof args,
           "-train %s -output %s %s -checkpoint %s -resume 1", corpus, part,
           opts, other);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "not a word2vec checkpoint"), "%s", out);
}
END_TEST

START_TEST(test_queries) {
  char vec[512], q[512], ws[512], args[4096], out[8192];
  test_path(vec, sizeof vec, "query.bin");
  test_path(q, sizeof q, "questions.txt");
  test_path(ws, sizeof ws, "wordsim.tsv");
  snprintf(args, sizeof args,
           "-train %s -output %s -binary 1 -cbow 1 "
           "-threads 2 -classes 0 " SMALL,
           corpus, vec);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "neighbours %s w0a -n 3", vec);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  ck_assert_msg(strncmp(out, "w0b\t", 4) == 0, "%s", out);
  /* the same through standard input */
  snprintf(args, sizeof args, "neighbours %s -n 1 < /dev/null", vec);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  /* a standard input that cannot be read is not an empty one (closed, it
   * had passed as no queries, status 0) */
  for (int i = 0; i < 2; i++) {
    snprintf(args, sizeof args, "%s %s %s<&-", i ? "analogy" : "neighbours",
             vec, i ? "" : "-n 1 ");
    ck_assert_msg(capture(args, out, sizeof out) == 1 &&
                      strstr(out, "word2vec: cannot read the queries from "
                                  "standard input: Bad file descriptor"),
                  "%s: %s", args, out);
  }
  snprintf(args, sizeof args, "analogy %s w2a w2b w4a -n 5", vec);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  ck_assert_int_ge((int)strlen(out), 10);
  /* results that cannot be written are a failure (they exited 0) */
  const char *lost[] = {"neighbours %s w0a -n 3", "analogy %s w2a w2b w4a",
                        "eval %s -wordsim %s"};
  for (size_t i = 0; i < sizeof lost / sizeof *lost; i++) {
    if (i == 2)
      test_write_file(ws, "w0a\tw0b\t10\nw2a\tw2b\t9\n", 22);
    snprintf(args, sizeof args, lost[i], vec, ws);
    ck_assert_msg(test_run_stdout_full(word2vec(), args, out, sizeof out) ==
                          1 &&
                      strstr(out, "word2vec: cannot write the results to "
                                  "standard output"),
                  "%s: %s", args, out);
  }
  snprintf(args, sizeof args, "neighbours %s no-such-word", vec);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "not in the vocabulary"), "%s", out);
  /* eval: "w0a is to w0b as w2a is to w2b" holds when twins coincide */
  const char questions[] = ": twins\nw0a w0b w2a w2b\nw4a w4b w6b w6a\n"
                           "w0a w0b zz w2b\n: gram-chain\nw1 w3 w5 w7\n";
  test_write_file(q, questions, sizeof questions - 1);
  const char pairs[] = "# twins score high\nw0a\tw0b\t10\nw2a\tw2b\t9\n"
                       "w1\tw3\t1\nw5\tw7\t2\nw9\tw4a\t1.5\n";
  test_write_file(ws, pairs, sizeof pairs - 1);
  snprintf(args, sizeof args, "eval %s -questions %s -wordsim %s", vec, q, ws);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "twins") && strstr(out, "gram-chain") &&
                    strstr(out, "questions seen / total: 3 4") &&
                    strstr(out, "word similarity: spearman") &&
                    strstr(out, "(5 of 5 pairs)"),
                "%s", out);
  /* -classes writes "word class" lines */
  snprintf(args, sizeof args,
           "-train %s -output %s -classes 5 -threads 1 " SMALL, corpus, vec);
  ck_assert_int_eq(run(args), 0);
  size_t len;
  char *cl = test_slurp(vec, &len);
  ck_assert_msg(strncmp(cl, "</s> ", 5) == 0, "%.40s", cl);
  int lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += cl[i] == '\n';
  ck_assert_int_eq(lines, 2 * SPLIT + CHAIN_WORDS - SPLIT + 1);
  free(cl);
}
END_TEST

START_TEST(test_bad_input) {
  char path[512], out_path[512], args[4096], out[4096];
  test_path(out_path, sizeof out_path, "bad.vec");
  test_path(path, sizeof path, "empty.txt");
  test_write_file(path, "", 0);
  snprintf(args, sizeof args, "-train %s -output %s", path, out_path);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "no words"), "%s", out);
  test_write_file(path, "\n\n\n", 3);
  ck_assert_int_eq(run(args), 1);
  test_write_file(path, "a b c d a b\n", 12); /* nothing reaches -min-count 5 */
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "min-count 5"), "%s", out);
  test_write_file(path, "fine words\nthen \xff\xfe bad\n", 24);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "UTF-8") && strstr(out, "byte offset 16"), "%s",
                out);
  ck_assert_int_ne(access(out_path, F_OK), 0); /* nothing written */
  snprintf(args, sizeof args, "-train %s/none.txt -output %s", test_dir,
           out_path);
  ck_assert_int_eq(run(args), 1);
  /* absurd or malformed options */
  const char *usage_errors[] = {
      "-size 0",           "-size 1e12",   "-window -1",      "-threads 0",
      "-iter 0",           "-negative -5", "-alpha 0",        "-sample -1",
      "-hs 0 -negative 0", "-size abc",    "-no-such-flag 1", "-cbow 2",
      "-engine gpu",       "-iter",        "-alpha 1001",     "-alpha nan",
      "-seed -1",          "-size 5x",     "-window 1.5"};
  for (size_t i = 0; i < sizeof usage_errors / sizeof *usage_errors; i++) {
    snprintf(args, sizeof args, "-train %s -output %s %s", corpus, out_path,
             usage_errors[i]);
    ck_assert_msg(run(args) == 2, "'%s' should be a usage error",
                  usage_errors[i]);
  }
  /* the largest -alpha the command line takes, training takes too (and
   * diverges with: see test_divergence_writes_nothing) */
  snprintf(args, sizeof args,
           "-train %s -output %s -threads 1 " SMALL " -alpha 1000 -iter 1",
           corpus, out_path);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "training diverged") && !strstr(out, "-alpha must"),
                "%s", out);
  ck_assert_int_ne(access(out_path, F_OK), 0);
  /* a refusal names the flag, the value and the range */
  snprintf(args, sizeof args, "-train %s -output %s -alpha inf", corpus,
           out_path);
  ck_assert_int_eq(capture(args, out, sizeof out), 2);
  ck_assert_msg(strstr(out, "-alpha 'inf' is not a number in (0, 1000]"), "%s",
                out);
  ck_assert_int_eq(run("frobnicate x"), 2);
  ck_assert_int_eq(run("-output x"), 2); /* no -train */
  ck_assert_int_eq(run("--help"), 0);
  ck_assert_int_eq(run(""), 0); /* the usage, like the original */
  /* a vocabulary file that is not one */
  test_write_file(path, "a b c\n", 6);
  snprintf(args, sizeof args, "-train %s -output %s -read-vocab %s", corpus,
           out_path, path);
  ck_assert_int_eq(run(args), 1);
  /* query commands on files that are not vectors */
  snprintf(args, sizeof args, "neighbours %s w0a", path);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "first line"), "%s", out);
  test_write_file(path, "3 4\nx 1 2 3 4\n", 14);
  snprintf(args, sizeof args, "eval %s -wordsim %s", path, path);
  ck_assert_int_eq(run(args), 1);
  snprintf(args, sizeof args, "eval %s", corpus);
  ck_assert_int_eq(run(args), 2);
}
END_TEST

/* Files training writes are refused when they are files it reads (also
 * through a symbolic link) or one another; folders are named as such; a
 * -read-vocab file that -min-count empties says so. */
START_TEST(test_inputs_and_outputs) {
  char link[512], vocab[512], args[4096], out[4096];
  test_path(link, sizeof link, "planted-link.txt");
  test_path(vocab, sizeof vocab, "io-vocab.txt");
  ck_assert_int_eq(symlink(corpus, link), 0);
  size_t len_before;
  char *before = test_slurp(corpus, &len_before);
  const char *cases[][2] = {
      {"-output %s", "-output"},
      {"-save-vocab %s -output %s", "-save-vocab"},
      {"-checkpoint %s -output %s", "-checkpoint"},
  };
  char xvec[512];
  test_path(xvec, sizeof xvec, "x.vec");
  for (int i = 0; i < 3; i++) {
    char o[1200];
    snprintf(o, sizeof o, cases[i][0], link, xvec);
    snprintf(args, sizeof args, "-train %s %s " SMALL, corpus, o);
    ck_assert_int_eq(capture(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, cases[i][1]) && strstr(out, "is the -train file"),
                  "%s", out);
  }
  snprintf(args, sizeof args,
           "-train %s -output %s -save-vocab %s -threads 1 " SMALL, corpus,
           vocab, vocab);
  ck_assert_int_eq(capture(args, out, sizeof out), 2);
  ck_assert_msg(strstr(out, "-save-vocab") &&
                    strstr(out, "is the -output file"),
                "%s", out);
  test_write_file(vocab, "a 1\nb 2\n", 8);
  snprintf(args, sizeof args, "-train %s -read-vocab %s -save-vocab %s", corpus,
           vocab, vocab);
  ck_assert_int_eq(capture(args, out, sizeof out), 2);
  ck_assert_msg(strstr(out, "is the -read-vocab file"), "%s", out);
  size_t len_after;
  char *after = test_slurp(corpus, &len_after);
  ck_assert(len_after == len_before && !memcmp(before, after, len_after));
  free(before);
  free(after);
  /* -min-count empties a vocabulary file: said so */
  snprintf(args, sizeof args, "-train %s -read-vocab %s -output %s", corpus,
           vocab, xvec);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "none of its 2 words is counted -min-count 5 "
                            "times or more"),
                "%s", out);
  /* folders are not files */
  const char *folders[] = {"-train %s -output %s/x.vec",
                           "-train %s -read-vocab %s -output x.vec",
                           "neighbours %s w0a", "eval %s -questions %s"};
  char vec[512];
  test_path(vec, sizeof vec, "io.vec");
  for (int i = 0; i < 4; i++) {
    char f[1200];
    const char *first = i == 1 || i == 3 ? corpus : test_dir;
    if (i == 3) {
      snprintf(args, sizeof args, "-train %s -output %s -threads 1 " SMALL,
               corpus, vec);
      ck_assert_int_eq(run(args), 0);
      first = vec;
    }
    snprintf(f, sizeof f, folders[i], first, test_dir);
    ck_assert_int_eq(capture(f, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "is a directory"), "%s: %s", f, out);
  }
}
END_TEST

/* Outputs are written whole through the library's writer: an old output
 * keeps its mode; temporary files of a killed run go. A file that cannot
 * be written is refused before the text is read, named once with the
 * reason: status 1, or 2 for '' (each was found only when written, after
 * training for -output and -checkpoint). */
START_TEST(test_outputs_written_safely) {
  char vec[512], stale[600], args[4096], out[4096], says[1200];
  const char *what[] = {"-output", "-save-vocab", "-checkpoint"};
  const struct {
    const char *path, *says;
    int status;
  } paths[] = {
      {"%s/missing-dir/out.file",
       "cannot write %s %s/missing-dir/out.file: the folder %s/missing-dir: "
       "No such file",
       1},
      {"%s", "cannot write %s %s: it is a folder, not a file", 1},
      {"''", "%s '' is not a file name", 2},
  };
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      snprintf(vec, sizeof vec, paths[k].path, test_dir);
      snprintf(says, sizeof says, paths[k].says, what[i], test_dir, test_dir);
      snprintf(args, sizeof args,
               "-train %s %s %s %s -threads 1 " SMALL " -debug 1 -iter 1000",
               corpus, i ? "-output x.vec" : "", what[i], vec);
      ck_assert_int_eq(capture(args, out, sizeof out), paths[k].status);
      ck_assert_msg(strstr(out, says) && !strstr(out, "vocabulary:"), "%s: %s",
                    args, out);
    }
  /* without -output only the vocabulary is written: -checkpoint is never
   * written, so its folder is not checked (that refused a vocabulary run) */
  test_path(vec, sizeof vec, "only.vocab");
  snprintf(args, sizeof args,
           "-train %s -save-vocab %s -checkpoint %s/missing-dir/ck -threads 1 "
           "-min-count 1",
           corpus, vec, test_dir);
  ck_assert_msg(capture(args, out, sizeof out) == 0, "%s: %s", args, out);
  ck_assert_int_eq(access(vec, R_OK), 0);
  test_path(vec, sizeof vec, "safe.vec");
  snprintf(stale, sizeof stale, "%s.tmpK1lled", vec);
  test_write_file(stale, "partial", 7);
  test_write_file(vec, "old", 3);
  ck_assert_int_eq(chmod(vec, 0600), 0);
  snprintf(args, sizeof args, "-train %s -output %s -threads 1 " SMALL, corpus,
           vec);
  ck_assert_int_eq(run(args), 0);
  struct stat st;
  ck_assert_int_eq(stat(vec, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_gt(st.st_size, 1000);
  ck_assert_int_ne(access(stale, F_OK), 0);
}
END_TEST

/* A learning rate that makes the vectors overflow fails the run with a
 * message saying so, whatever the engine, output layer or output: no NaN
 * vectors, classes or checkpoint are written (the original tool writes
 * the NaN with status 0). */
START_TEST(test_divergence_writes_nothing) {
  char vec[512], ck[512], args[4096], out[4096];
  test_path(vec, sizeof vec, "diverged.vec");
  test_path(ck, sizeof ck, "diverged.ckpt");
  const char *modes[] = {"-cbow 0", "-cbow 0 -hs 1 -negative 0",
                         "-cbow 1 -classes 5", "-cbow 0 -binary 1",
                         "-cbow 1 -engine autograd"};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    snprintf(args, sizeof args,
             "-train %s -output %s -checkpoint %s -threads 1 " SMALL
             " -alpha 1000 -iter 2 %s",
             corpus, vec, ck, modes[i]);
    ck_assert_int_eq(capture(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "word2vec: training diverged") &&
                      strstr(out, "try a smaller -alpha"),
                  "%s: %s", modes[i], out);
    ck_assert_msg(access(vec, F_OK) != 0 && access(ck, F_OK) != 0,
                  "%s: an output was written", modes[i]);
  }
}
END_TEST

/* A checkpoint whose matrices hold NaN or infinity is refused, naming the
 * checkpoint and the matrix. */
START_TEST(test_resume_refuses_non_finite) {
  char vec[512], ck[512], bad[512], args[4096], out[4096];
  test_path(vec, sizeof vec, "nf.vec");
  test_path(ck, sizeof ck, "nf.ckpt");
  test_path(bad, sizeof bad, "nf-bad.ckpt");
  const char *opts = "-cbow 0 -hs 1 -negative 2 -threads 1 -size 8 "
                     "-min-count 1 -iter 2 -debug 0";
  snprintf(args, sizeof args,
           "-train %s -output %s %s -checkpoint %s -stop-after 1", corpus, vec,
           opts, ck);
  ck_assert_int_eq(run(args), 0);
  const char *names[] = {"syn0", "syn1", "syn1neg"};
  const float values[] = {NAN, INFINITY, -INFINITY};
  for (int k = 0; k < 3; k++) {
    loom_tensor_map *m = loom_safetensors_load(ck);
    ck_assert_loom(m);
    loom_tensor *t = loom_tensor_map_get(m, names[k]);
    ck_assert_loom(t);
    loom_data_f32(t)[3 * 8 + 5] = values[k]; /* row 3 */
    ck_assert_int_eq(loom_safetensors_save(bad, m), 0);
    loom_tensor_map_free(m);
    remove(vec);
    snprintf(args, sizeof args,
             "-train %s -output %s %s -checkpoint %s "
             "-resume 1",
             corpus, vec, opts, bad);
    ck_assert_int_eq(capture(args, out, sizeof out), 1);
    char says[700];
    snprintf(says, sizeof says, "cannot resume from %s: its matrix %s holds",
             bad, names[k]);
    ck_assert_msg(strstr(out, says) && strstr(out, "at row 3"), "%s", out);
    ck_assert_int_ne(access(vec, F_OK), 0);
  }
}
END_TEST

/* Vector files holding NaN, infinity or a number beyond float32 are
 * refused by the queries, naming the word, line and byte; a text file
 * with hex floats is still read as text; a failed read of a file taken
 * for binary says so. */
START_TEST(test_queries_refuse_non_finite_vectors) {
  char path[512], args[1024], out[4096];
  test_path(path, sizeof path, "nonfinite.txt");
  const struct {
    const char *file, *says;
  } cases[] = {
      {"2 3\nfoo nan inf -inf\nbar 1 2 3\n",
       "vector 1 of 2 (line 2, byte 4): the word 'foo': number 1 of 3 ('nan') "
       "is NaN"},
      {"2 3\nbar 1 2 3\nfoo 1 2 -inf\n",
       "(line 3, byte 14): the word 'foo': number 3 of 3 ('-inf') is "
       "infinite"},
      {"2 2\nfoo 0x1p3 1e400\nbar 1 2\n",
       "the word 'foo': number 2 of 2 ('1e400') is infinite"},
      {"2 3\nfoo 1 2 x\nbar 1 2 3\n",
       "(read as binary: the line after the header is not a word and 3 "
       "numbers; -binary 0 reads it as text)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    test_write_file(path, cases[i].file, strlen(cases[i].file));
    snprintf(args, sizeof args, "neighbours %s bar", path);
    ck_assert_int_eq(capture(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, cases[i].says), "%zu: %s", i, out);
  }
  const char hex[] = "2 2\nfoo 0x1p3 1e-3\nbar 8 0\n"; /* hex is text */
  test_write_file(path, hex, sizeof hex - 1);
  snprintf(args, sizeof args, "neighbours %s bar", path);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  ck_assert_msg(strncmp(out, "foo\t1.0000", 10) == 0, "%s", out);
  /* binary: "foo" holds a NaN */
  char bin[64];
  size_t n = 0;
  float foo[2] = {1, NAN}, bar[2] = {1, 2};
  n += (size_t)sprintf(bin, "2 2\nfoo ");
  memcpy(bin + n, foo, sizeof foo);
  n += sizeof foo;
  n += (size_t)sprintf(bin + n, "\nbar ");
  memcpy(bin + n, bar, sizeof bar);
  n += sizeof bar;
  bin[n++] = '\n';
  test_write_file(path, bin, n);
  snprintf(args, sizeof args, "neighbours %s bar", path);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "vector 1 of 2 (byte 4): the word 'foo': number 2 "
                            "of 2 is NaN"),
                "%s", out);
  /* binary: a word holding a NUL byte (it had been read as the word "") */
  foo[1] = 2;
  memcpy(bin + 8, foo, sizeof foo);
  bin[17] = '\0';
  test_write_file(path, bin, n);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "vector 2 of 2 (byte 16): a NUL byte in the word"),
                "%s", out);
}
END_TEST

/* Smaller checks: a -read-vocab count past int64 is quoted as written;
 * -classes beyond the vocabulary is refused before training (no
 * checkpoint is written); WordSim scores of +-1e308 correlate as the same
 * scores scaled down. */
START_TEST(test_vocab_classes_and_wordsim_ranges) {
  char path[512], vec[512], ck[512], args[4096], out[4096];
  test_path(path, sizeof path, "ranges.txt");
  test_path(vec, sizeof vec, "ranges.vec");
  test_path(ck, sizeof ck, "ranges.ckpt");
  const char vocab[] = "</s> 5\nw1 99999999999999999999999\n";
  test_write_file(path, vocab, sizeof vocab - 1);
  snprintf(args, sizeof args, "-train %s -read-vocab %s -output %s", corpus,
           path, vec);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "line 2 (byte 7): count 99999999999999999999999 "
                            "is not in 0..2^62"),
                "%s", out);
  snprintf(
      args, sizeof args,
      "-train %s -output %s -checkpoint %s -classes 100000 -threads 1 " SMALL,
      corpus, vec, ck);
  ck_assert_int_eq(capture(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "-classes 100000: must be in 1..221 (the "
                            "vocabulary size)"),
                "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0); /* no epoch was trained */
  const char vectors[] = "3 2\na 1 0\nb 0.5 0.5\nc 0 1\n";
  test_write_file(vec, vectors, sizeof vectors - 1);
  const char *scores[] = {"a\tb\t1e308\na\tc\t-1e308\nb\tc\t0\n",
                          "a\tb\t1\na\tc\t-1\nb\tc\t0\n",
                          "a\tb\t1e-308\na\tc\t-1e-308\nb\tc\t0\n"};
  for (int i = 0; i < 3; i++) {
    test_write_file(path, scores[i], strlen(scores[i]));
    snprintf(args, sizeof args, "eval %s -wordsim %s", vec, path);
    ck_assert_int_eq(capture(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "spearman 0.8660  pearson 0.8660"), "%d: %s", i,
                  out);
  }
}
END_TEST

/* Needs ../shared/data (skips without it): CBOW on PTB's training text. */
START_TEST(test_ptb_scores_above_chance) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  char data[1024], ptb[512], vec[512], args[4096], out[8192];
  snprintf(data, sizeof data, "%s/../shared/data", root ? root : "..");
  char p1[1200], p2[1200], q[1200], ws[1200];
  snprintf(p1, sizeof p1, "%s/ptb/ptb.train.part1.txt", data);
  snprintf(p2, sizeof p2, "%s/ptb/ptb.train.part2.txt", data);
  snprintf(q, sizeof q, "%s/word2vec_eval/questions-words.txt", data);
  snprintf(ws, sizeof ws, "%s/word2vec_eval/wordsim353.tsv", data);
  if (access(p1, R_OK) || access(p2, R_OK) || access(q, R_OK) ||
      access(ws, R_OK)) {
    fprintf(stderr, "test_ptb_scores_above_chance: %s absent, skipped\n", data);
    return;
  }
  test_path(ptb, sizeof ptb, "ptb.txt");
  test_path(vec, sizeof vec, "ptb.bin");
  snprintf(args, sizeof args, "cat '%s' '%s' > '%s'", p1, p2, ptb);
  ck_assert_int_eq(system(args), 0);
  snprintf(args, sizeof args,
           "-train %s -output %s -binary 1 -cbow 1 "
           "-iter 5 -threads 2 -debug 0",
           ptb, vec);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "eval %s -questions %s -wordsim %s", vec, q, ws);
  ck_assert_int_eq(capture(args, out, sizeof out), 0);
  double acc = 0, rho = 0;
  const char *a = strstr(out, "analogy accuracy: ");
  const char *r = strstr(out, "spearman ");
  ck_assert_msg(a && r, "%s", out);
  acc = atof(a + 18);
  rho = atof(r + 9);
  /* chance is 1 in ~10,000 words; 5 epochs reach ~3.4 % and ~0.23 */
  ck_assert_msg(acc >= 1.5 && rho >= 0.12,
                "analogy %.2f %%, WordSim "
                "Spearman %.3f",
                acc, rho);
}
END_TEST

int main(void) {
  if (test_dir_make("w2v-app") < 0)
    return EXIT_FAILURE;
  test_path(corpus, sizeof corpus, "planted.txt");
  if (write_planted(corpus) != 0) {
    perror(corpus);
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("word2vec_app");
  TCase *tc = tcase_create("app");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_planted_pairs);
  tcase_add_test(tc, test_text_and_binary_agree);
  tcase_add_test(tc, test_vocabulary_file);
  tcase_add_test(tc, test_resume_is_exact);
  tcase_add_test(tc, test_queries);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_inputs_and_outputs);
  tcase_add_test(tc, test_outputs_written_safely);
  tcase_add_test(tc, test_divergence_writes_nothing);
  tcase_add_test(tc, test_resume_refuses_non_finite);
  tcase_add_test(tc, test_queries_refuse_non_finite_vectors);
  tcase_add_test(tc, test_vocab_classes_and_wordsim_ranges);
  tcase_add_test(tc, test_ptb_scores_above_chance);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
