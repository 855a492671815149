/* apps/charlm end to end, through the built program: a resumed run is
 * bit-identical to an uninterrupted one, sampling is deterministic for a
 * seed, bad input fails cleanly, and (with ../shared/data) a few hundred
 * steps on tinyshakespeare beat the text's unigram entropy. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <unistd.h>

static const char *charlm(void) {
  const char *p = getenv("CHARLM");
  return p ? p : "./apps/charlm";
}

/* Runs charlm with arguments; returns its exit status. */
static int run(const char *args) {
  return test_run(charlm(), args, TEST_OUTPUT_NONE, NULL, 0);
}

/* Runs charlm, which must succeed, and captures its stdout into out. */
static void capture(const char *args, char *out, size_t n) {
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_STDOUT, out, n), 0);
}

#define SMALL                                                                  \
  "--corpus-bytes 40000 --hidden 24 --embed 8 --layers 2 --seq 16 "            \
  "--batch 4 --dropout 0.1 --eval-every 5 --save-every 5 --plot '' --quiet"

START_TEST(test_resume_is_exact) {
  char a[512], b[512], args[1024];
  test_path(a, sizeof a, "a.ckpt");
  test_path(b, sizeof b, "b.ckpt");
  snprintf(args, sizeof args, SMALL " --steps 14 --checkpoint %s", a);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, SMALL " --steps 7 --checkpoint %s", b);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, SMALL " --steps 14 --resume --checkpoint %s", b);
  ck_assert_int_eq(run(args), 0);
  loom_tensor_map *ma = loom_safetensors_load(a);
  loom_tensor_map *mb = loom_safetensors_load(b);
  ck_assert_loom(ma);
  ck_assert_loom(mb);
  int compared = 0;
  for (int i = 0; i < loom_tensor_map_count(ma); i++) {
    const char *name = loom_tensor_map_name(ma, i);
    if (strncmp(name, "model.", 6) && strncmp(name, "optim.", 6) &&
        strcmp(name, "rng") && strcmp(name, "step") &&
        strncmp(name, "extra.state", 11))
      continue;
    loom_tensor *tb = loom_tensor_map_get(mb, name);
    ck_assert_msg(tb != NULL, "%s missing after resume", name);
    ck_assert_msg(loom_equal(loom_tensor_map_at(ma, i), tb),
                  "%s differs after resume", name);
    compared++;
  }
  ck_assert_int_gt(compared, 15);
  loom_tensor_map_free(ma);
  loom_tensor_map_free(mb);
}
END_TEST

/* A checkpoint that cannot be resumed from is refused with exit status 1
 * and no leak or crash (CI runs this under ASan): a file that is not a
 * checkpoint, and real ones whose stream position or step was tampered
 * with. A position past the end of the text only restarts the streams. */
START_TEST(test_resume_refuses_bad_checkpoints) {
  char ck[512], bad[512], args[1024];
  test_path(ck, sizeof ck, "r.ckpt");
  test_path(bad, sizeof bad, "bad.ckpt");
  test_write_file(bad, "not a checkpoint", 16);
  snprintf(args, sizeof args, SMALL " --steps 3 --resume --checkpoint %s", bad);
  ck_assert_int_eq(run(args), 1);
  snprintf(args, sizeof args, SMALL " --steps 3 --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  const struct {
    const char *name;
    int64_t value;
    int status;
    const char *says;
  } cases[] = {{"extra.position", -5, 1, "the position -5 is not in 0..2^62"},
               {"extra.position", INT64_MAX, 1,
                "the position 9223372036854775807 is not in 0..2^62"},
               {"step", -3, 1, "its step -3 is not in 0..2^62"},
               {"extra.position", (int64_t)1 << 40, 0, NULL}};
  for (int i = 0; i < 4; i++) {
    loom_tensor_map *m = loom_safetensors_load(ck);
    ck_assert_loom(m);
    ck_assert_ptr_nonnull(loom_tensor_map_get(m, cases[i].name));
    ck_assert_int_eq(loom_tensor_map_set(
                         m, cases[i].name,
                         loom_from_array(LOOM_I64, &cases[i].value, 0, NULL)),
                     0);
    ck_assert_int_eq(loom_safetensors_save(bad, m), 0);
    loom_tensor_map_free(m);
    char out[4096];
    snprintf(args, sizeof args, SMALL " --steps 6 --resume --checkpoint %s",
             bad);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
        cases[i].status);
    if (cases[i].status)
      ck_assert_msg(strstr(out, cases[i].says), "%s", out);
  }
}
END_TEST

START_TEST(test_sampling_is_deterministic) {
  char ck[512], args[1024], s1[2048], s2[2048], s3[2048];
  test_path(ck, sizeof ck, "s.ckpt");
  snprintf(args, sizeof args, SMALL " --steps 10 --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args,
           "sample --checkpoint %s --prime 'HUGO:' --length 200 --seed 9", ck);
  capture(args, s1, sizeof s1);
  capture(args, s2, sizeof s2);
  ck_assert_str_eq(s1, s2);
  ck_assert_int_ge((int)strlen(s1), 200);
  ck_assert(strncmp(s1, "HUGO:", 5) == 0);
  snprintf(args, sizeof args,
           "sample --checkpoint %s --prime 'HUGO:' --length 200 --seed 10", ck);
  capture(args, s3, sizeof s3);
  ck_assert_str_ne(s1, s3);
  snprintf(args, sizeof args,
           "sample --checkpoint %s --length 50 --temperature 0", ck);
  capture(args, s1, sizeof s1);
  capture(args, s2, sizeof s2);
  ck_assert_str_eq(s1, s2); /* greedy */
}
END_TEST

/* The sample comes out as it is drawn: the first characters of a run of a
 * billion arrive (a sampler that wrote at the end would keep this test
 * waiting), and they are the first characters of a short run's. */
START_TEST(test_sampling_streams) {
  char ck[512], args[1024], cmd[2048], want[512], got[512];
  test_path(ck, sizeof ck, "stream.ckpt");
  snprintf(args, sizeof args, SMALL " --steps 4 --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "sample --checkpoint %s --length 300 --seed 3",
           ck);
  capture(args, want, sizeof want);
  snprintf(cmd, sizeof cmd,
           "%s sample --checkpoint %s --length 1000000000 --seed 3 2>/dev/null",
           charlm(), ck);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t len = fread(got, 1, 200, p);
  pclose(p); /* charlm's next write finds the pipe closed */
  ck_assert_uint_eq(len, 200);
  ck_assert_int_eq(memcmp(got, want, 200), 0);
  /* output that cannot be written stops the run (status 1, one message);
   * unchecked, a billion characters went on being drawn into /dev/full */
  char out[1024];
  snprintf(args, sizeof args, "sample --checkpoint %s --length 1000000000", ck);
  ck_assert_int_eq(test_run_stdout_full(charlm(), args, out, sizeof out), 1);
  ck_assert_str_eq(out, "charlm: cannot write the text to standard output: "
                        "No space left on device\n");
}
END_TEST

/* The decoder-only transformer: resumes exactly and samples past its
 * context (the caches slide) deterministically. */
START_TEST(test_transformer) {
  char a[512], b[512], args[1024], s1[4096], s2[4096];
  test_path(a, sizeof a, "ta.ckpt");
  test_path(b, sizeof b, "tb.ckpt");
  const char *tf = "--model transformer --heads 2 " SMALL;
  snprintf(args, sizeof args, "%s --steps 8 --checkpoint %s", tf, a);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "%s --steps 4 --checkpoint %s", tf, b);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "%s --steps 8 --resume --checkpoint %s", tf, b);
  ck_assert_int_eq(run(args), 0);
  loom_tensor_map *ma = loom_safetensors_load(a);
  loom_tensor_map *mb = loom_safetensors_load(b);
  ck_assert_loom(ma);
  ck_assert_loom(mb);
  ck_assert(loom_equal(loom_tensor_map_get(ma, "model.head.weight"),
                       loom_tensor_map_get(mb, "model.head.weight")));
  ck_assert(loom_equal(
      loom_tensor_map_get(ma, "model.blocks.layers.1.linear2.weight"),
      loom_tensor_map_get(mb, "model.blocks.layers.1.linear2.weight")));
  loom_tensor_map_free(ma);
  loom_tensor_map_free(mb);
  /* 100 characters with a context of 16 */
  snprintf(args, sizeof args, "sample --checkpoint %s --length 100 --seed 5",
           a);
  capture(args, s1, sizeof s1);
  capture(args, s2, sizeof s2);
  ck_assert_str_eq(s1, s2);
  ck_assert_int_ge((int)strlen(s1), 100);
}
END_TEST

START_TEST(test_bad_input) {
  char path[512], args[1024];
  test_path(path, sizeof path, "empty.txt");
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  snprintf(args, sizeof args, "--data %s --quiet", path);
  ck_assert_int_eq(run(args), 1);
  snprintf(args, sizeof args, "--data %s/missing.txt --quiet", test_dir);
  ck_assert_int_eq(run(args), 1);
  ck_assert_int_eq(run("--hidden -3"), 2);
  ck_assert_int_eq(run("--no-such-option"), 2);
  snprintf(args, sizeof args, "sample --checkpoint %s", path);
  ck_assert_int_eq(run(args), 1); /* not a checkpoint */
  ck_assert_int_eq(run("--help"), 0);
}
END_TEST

/* Numbers on the command line are refused whole, with the flag, the value
 * and the range in the message, and status 2: nothing is trained. */
START_TEST(test_refuses_bad_numbers) {
  const struct {
    const char *args, *says;
  } cases[] = {
      {"--steps abc", "--steps 'abc' is not an integer in 1..10^12"},
      {"--steps 1e30", "--steps '1e30' is not an integer in 1..10^12"},
      {"--lr inf", "--lr 'inf' is not a number in (0, 1000]"},
      {"sample --temperature nan", "--temperature 'nan' is not a number"},
      {"--clip nan", "--clip 'nan' is not a number in [0, 10^6]"},
      {"sample --top-k -5", "--top-k '-5' is not an integer in 0..256"},
      {"--threads -3", "--threads '-3' is not an integer in 1..1024"},
      {"--seq 9223372036854775807", "--seq '9223372036854775807'"},
      {"--epochs 1e30", "--epochs '1e30' is not a number in (0, 10^6]"},
      {"--corpus-bytes 99999999999999",
       "--corpus-bytes '99999999999999' is not an integer in 1000..2^30"},
      {"--dropout 1", "--dropout '1' is not a number in [0, 1)"},
      {"--batch 0", "--batch '0' is not an integer in 1..2^16"},
      /* refused when the model was made, "charlm: charlm: transformer
       * hidden 16, heads 3, context 10", status 1 */
      {"--model transformer --hidden 16 --heads 3",
       "charlm: --heads 3 must divide --hidden 16 (the transformer's width)"},
  };
  char ck[512], args[1024], out[4096];
  test_path(ck, sizeof ck, "never.ckpt");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    snprintf(args, sizeof args, "%s --checkpoint %s", cases[i].args, ck);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out), 2);
    ck_assert_msg(strstr(out, cases[i].says), "%s: %s", cases[i].args, out);
    ck_assert_int_ne(access(ck, F_OK), 0); /* nothing trained or written */
  }
  /* --epochs in range but less than one step of this text */
  snprintf(args, sizeof args, SMALL " --epochs 1e-6 --checkpoint %s", ck);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "--epochs 1e-06 is 0 steps of"), "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0);
}
END_TEST

/* A copy of checkpoint `src` at `dst` with entry `name` replaced by t (or
 * removed, t NULL) and, if meta is given, the config replaced by it. */
static void tamper(const char *src, const char *dst, const char *name,
                   loom_tensor *t, const char *meta) {
  loom_tensor_map *m = loom_safetensors_load(src);
  ck_assert_loom(m);
  loom_tensor_map *out = loom_tensor_map_new();
  for (int i = 0; i < loom_tensor_map_count(m); i++)
    if (!name || strcmp(loom_tensor_map_name(m, i), name))
      ck_assert_int_eq(loom_tensor_map_set(out, loom_tensor_map_name(m, i),
                                           loom_tensor_map_at(m, i)),
                       0);
  if (name && t)
    ck_assert_int_eq(loom_tensor_map_set(out, name, t), 0);
  for (int i = 0; i < loom_tensor_map_meta_count(m); i++) {
    const char *k = loom_tensor_map_meta_key(m, i);
    ck_assert_int_eq(
        loom_tensor_map_set_meta(out, k,
                                 meta && !strcmp(k, "extra.charlm.config")
                                     ? meta
                                     : loom_tensor_map_meta(m, k)),
        0);
  }
  ck_assert_int_eq(loom_safetensors_save(dst, out), 0);
  loom_tensor_map_free(out);
  loom_tensor_map_free(m);
}

/* Every entry charlm reads from a checkpoint is checked before use, for
 * sampling and for resuming alike: a tensor of another dtype or shape, a
 * vocabulary that disagrees with the config, config sizes out of range
 * (2^63-1 among them), a NaN learning rate. Each is refused with status 1
 * and a message that says what is wrong (CI runs this under ASan and
 * UBSan; the vocabulary of another dtype crashed sampling). */
START_TEST(test_checkpoint_entries_checked) {
  char ck[512], bad[512], args[1024], out[8192];
  test_path(ck, sizeof ck, "e.ckpt");
  test_path(bad, sizeof bad, "e-bad.ckpt");
  snprintf(args, sizeof args, SMALL " --steps 3 --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  loom_tensor_map *good = loom_safetensors_load(ck);
  ck_assert_loom(good);
  int64_t V = loom_numel(loom_tensor_map_get(good, "extra.vocab"));
  ck_assert_int_gt(V, 10);
  const char *config = loom_tensor_map_meta(good, "extra.charlm.config");
  ck_assert_ptr_nonnull(config);
  char huge[256], nan_dropout[256];
  snprintf(huge, sizeof huge, "lstm %lld 8 9223372036854775807 2 4 0 16 0.1",
           (long long)V);
  snprintf(nan_dropout, sizeof nan_dropout, "lstm %lld 8 24 2 4 0 16 nan",
           (long long)V);
  uint8_t backwards[256];
  for (int64_t i = 0; i < V; i++)
    backwards[i] = (uint8_t)(200 - i);
  double nan = NAN;
  loom_scope *s = loom_scope_begin();
  const struct {
    const char *name;
    loom_tensor *t;
    const char *meta, *says;
    bool samples; /* sampling does not read it: succeeds */
  } cases[] = {
      {"extra.vocab", loom_zeros(LOOM_F32, LOOM_SHAPE(V)), NULL,
       "extra.vocab is float32 with 1 dims, not uint8 (vocab)", false},
      {"extra.vocab", loom_zeros(LOOM_U8, LOOM_SHAPE(V - 1)), NULL,
       "the vocabulary has", false},
      {"extra.vocab", loom_from_array(LOOM_U8, backwards, LOOM_SHAPE(V)), NULL,
       "not distinct bytes in increasing order", false},
      {"extra.vocab", NULL, NULL, "no vocabulary", false},
      {NULL, NULL, huge,
       "hidden '9223372036854775807' is not an integer in 1..2^16", false},
      {NULL, NULL, "lstm 1 2", "expected a model name and eight numbers",
       false},
      {NULL, NULL, nan_dropout, "dropout 'nan' is not a number in [0, 1)",
       false},
      {"extra.history.train", loom_zeros(LOOM_I64, LOOM_SHAPE(2, 3)), NULL,
       "extra.history.train is int64 with 2 dims, not float64 (2, n)", false},
      {"extra.history.val", loom_zeros(LOOM_F64, LOOM_SHAPE(3, 1)), NULL,
       "extra.history.val has 3 rows, not 2", false},
      {"extra.state.0", loom_zeros(LOOM_F32, LOOM_SHAPE(1, 1, 1)), NULL,
       "extra.state.0 is (1, 1, 1), not (layers 2, batch, hidden 24)", false},
      {"extra.state.1", NULL, NULL, "1 of the lstm model's 2 recurrent states",
       false},
      {"extra.position", loom_zeros(LOOM_F64, 0, NULL), NULL,
       "extra.position is float64", false},
      {"optim.lr", loom_from_array(LOOM_F64, &nan, 0, NULL), NULL,
       "'optim.lr' is nan (a finite number >= 0)", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tamper(ck, bad, cases[i].name, cases[i].t, cases[i].meta);
    snprintf(args, sizeof args, "sample --length 20 --checkpoint %s", bad);
    int status = test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out);
    ck_assert_msg(status == (cases[i].samples ? 0 : 1), "case %zu: %d %s", i,
                  status, out);
    if (!cases[i].samples)
      ck_assert_msg(strstr(out, "cannot sample from") &&
                        strstr(out, cases[i].says),
                    "case %zu: %s", i, out);
    snprintf(args, sizeof args, SMALL " --steps 5 --resume --checkpoint %s",
             bad);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "cannot resume from") &&
                      strstr(out, cases[i].says),
                  "case %zu: %s", i, out);
  }
  /* a transformer's config whose heads do not divide its width, said once
   * with the program's name ("charlm: charlm: transformer hidden 16, ...") */
  char heads[256];
  snprintf(heads, sizeof heads, "transformer %lld 16 16 1 3 64 10 0",
           (long long)V);
  tamper(ck, bad, NULL, NULL, heads);
  snprintf(args, sizeof args, "sample --length 20 --checkpoint %s", bad);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "a transformer needs heads that divide its hidden "
                            "size and a context of at least 1 (hidden 16, "
                            "heads 3, context 10)") &&
                    !strstr(out, "charlm: charlm:"),
                "%s", out);
  loom_scope_end(s);
  loom_tensor_map_free(good);
}
END_TEST

/* A run whose loss stops being finite stops with an error and writes no
 * checkpoint over the last one (nor over FILE.best). */
START_TEST(test_diverging_run_keeps_checkpoint) {
  char ck[512], best[600], args[1024], out[8192];
  test_path(ck, sizeof ck, "div.ckpt");
  snprintf(best, sizeof best, "%s.best", ck);
  snprintf(args, sizeof args, SMALL " --steps 3 --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  loom_tensor_map *m = loom_safetensors_load(ck);
  ck_assert_loom(m);
  loom_tensor *bias = loom_tensor_map_get(m, "model.head.bias");
  ck_assert_ptr_nonnull(bias);
  /* logits of +-3e38: the loss of a character at -3e38 overflows to inf
   * (a NaN weight would do too, but sends NaN through expf) */
  float huge[256];
  for (int64_t i = 0; i < loom_numel(bias); i++)
    huge[i] = i % 2 ? -3e38f : 3e38f;
  loom_scope *s = loom_scope_begin();
  tamper(ck, ck, "model.head.bias",
         loom_from_array(LOOM_F32, huge, 1, (int64_t[]){loom_numel(bias)}),
         NULL);
  loom_scope_end(s);
  loom_tensor_map_free(m);
  size_t len_before, best_before, len_after, best_after;
  char *before = test_slurp(ck, &len_before);
  char *best0 = test_slurp(best, &best_before);
  snprintf(args, sizeof args,
           SMALL " --steps 9 --save-every 1 --eval-every 1 --resume "
                 "--checkpoint %s",
           ck);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "step 3 failed") && strstr(out, "diverged"), "%s",
                out);
  char *after = test_slurp(ck, &len_after);
  char *best1 = test_slurp(best, &best_after);
  ck_assert(len_after == len_before && !memcmp(before, after, len_after));
  ck_assert(best_after == best_before && !memcmp(best0, best1, best_after));
  free(before);
  free(after);
  free(best0);
  free(best1);
}
END_TEST

/* Counts the occurrences of needle in haystack. */
static int count(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = haystack; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

/* A checkpoint or plot that cannot be written is reported once per
 * attempt with its file name, the error is cleared (training goes on: the
 * step after a failed save used to fail with the save's message), and the
 * run ends with status 1 (it was 0 when only the last save failed). The
 * writes fail here for a file size limit (ulimit -f, its signal ignored):
 * a checkpoint in a folder that does not exist is refused before training
 * (test_checkpoint_path_checked_first). */
START_TEST(test_failed_writes_reported) {
  char ck[512], plot[512], args[2048], cmd[2600], out[8192];
  test_path(ck, sizeof ck, "w.ckpt");
  snprintf(args, sizeof args,
           SMALL " --steps 3 --save-every 100 --eval-every 100 "
                 "--checkpoint %s",
           ck);
  snprintf(cmd, sizeof cmd, "-c \"trap '' XFSZ; ulimit -f 8; exec %s %s\"",
           charlm(), args);
  ck_assert_int_eq(test_run("sh", cmd, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(count(out, "w.ckpt: cannot write") == 1 &&
                    count(out, "w.ckpt.best: cannot write") == 1,
                "%s", out);
  snprintf(args, sizeof args,
           SMALL " --steps 6 --save-every 2 --eval-every 100 "
                 "--checkpoint %s",
           ck);
  snprintf(cmd, sizeof cmd, "-c \"trap '' XFSZ; ulimit -f 8; exec %s %s\"",
           charlm(), args);
  ck_assert_int_eq(test_run("sh", cmd, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(count(out, "w.ckpt: cannot write") == 3 &&
                    !strstr(out, "failed"),
                "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0);
  /* a plot the file system refuses (a folder that is missing is refused
   * before training): the checkpoint (6 kB, under the limit of 8 or 16 kB
   * as the shell counts) is written, the status says what was not (the
   * plot is over 30 kB) */
  test_path(plot, sizeof plot, "loss.png");
  snprintf(args, sizeof args,
           "-c \"trap '' XFSZ; ulimit -f 16; exec %s --corpus-bytes 40000 "
           "--hidden 2 --embed 2 --layers 1 --seq 16 --batch 4 --steps 10 "
           "--quiet --checkpoint %s --plot %s\"",
           charlm(), ck, plot);
  ck_assert_int_eq(test_run("sh", args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(count(out, "loss.png") == 1 && strstr(out, "cannot write"),
                "%s", out);
  ck_assert_int_eq(access(ck, F_OK), 0);
}
END_TEST

/* Resuming with other model options is refused, each differing option
 * named with both values (--heads used to pass silently and change the
 * model; --ff and --seq failed on the optimizer's state). A recurrent
 * model has no heads to differ. A new --dropout is taken, with a note. */
START_TEST(test_resume_names_differing_options) {
  char tf[512], lstm[512], copy[512], args[2048], out[8192];
  test_path(tf, sizeof tf, "opt-tf.ckpt");
  test_path(lstm, sizeof lstm, "opt-lstm.ckpt");
  test_path(copy, sizeof copy, "opt-copy.ckpt");
  snprintf(args, sizeof args,
           "--model transformer --heads 2 " SMALL " --steps 2 --checkpoint %s",
           tf);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, SMALL " --steps 2 --checkpoint %s", lstm);
  ck_assert_int_eq(run(args), 0);
  const struct {
    const char *ckpt, *opts, *says;
  } cases[] = {
      {tf, "--model transformer --heads 4",
       "the model options differ: --heads 4, the checkpoint has 2"},
      {tf, "--model transformer --heads 2 --ff 32",
       "the model options differ: --ff 32, the checkpoint has 96"},
      {tf, "--model transformer --heads 2 --seq 8",
       "the model options differ: --seq 8, the checkpoint has 16"},
      {tf, "--model transformer --heads 4 --layers 1",
       "the model options differ: --layers 1, the checkpoint has 2; --heads "
       "4, the checkpoint has 2"},
      {lstm, "--model gru",
       "the model options differ: --model gru, the checkpoint has lstm"},
      {lstm, "--hidden 16 --embed 4",
       "the model options differ: --hidden 16, the checkpoint has 24; "
       "--embed 4, the checkpoint has 8"},
      {lstm, "--model transformer",
       "the model options differ: --model transformer, the checkpoint has "
       "lstm"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    /* a copy: a refused resume must not write over the checkpoint */
    size_t len;
    char *bytes = test_slurp(cases[i].ckpt, &len);
    test_write_file(copy, bytes, len);
    snprintf(args, sizeof args, SMALL " %s --steps 4 --resume --checkpoint %s",
             cases[i].opts, copy);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "cannot resume from") &&
                      strstr(out, cases[i].says),
                  "%s: %s", cases[i].opts, out);
    size_t len_after;
    char *after = test_slurp(copy, &len_after);
    ck_assert(len_after == len && !memcmp(after, bytes, len));
    free(after);
    free(bytes);
  }
  /* heads mean nothing to an LSTM; a new dropout is taken, said */
  snprintf(args, sizeof args,
           SMALL " --heads 8 --dropout 0.3 --steps 4 --resume --checkpoint %s",
           lstm);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   0);
  ck_assert_msg(strstr(out, "note: --dropout 0.3, the checkpoint was trained "
                            "with 0.1"),
                "%s", out);
}
END_TEST

/* Options whose trouble showed late or wrongly: an empty validation split
 * is named as such; a --minutes budget shorter than a step still trains
 * one (it trained none, printed "-1 steps" and wrote the untrained model
 * with status 0); a checkpoint that cannot be written is refused before
 * the text is read; /dev/zero as --data stops at the limit for pipes and
 * devices, while a normal text through a pipe trains. */
START_TEST(test_options_checked_first) {
  char ck[512], data[512], args[2048], out[8192];
  test_path(ck, sizeof ck, "first.ckpt");
  const char *tiny = "--corpus-bytes 20000 --hidden 8 --embed 4 --layers 1 "
                     "--seq 16 --batch 4 --plot ''";
  snprintf(args, sizeof args, "%s --val-fraction 1e-320 --checkpoint %s", tiny,
           ck);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "--val-fraction 1e-320 of 20") &&
                    strstr(out, "holds out 0 for validation") &&
                    !strstr(out, "too little text"),
                "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0);
  /* --minutes */
  snprintf(args, sizeof args, "%s --minutes 1e-9 --checkpoint %s", tiny, ck);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   0);
  ck_assert_msg(strstr(out, "under a second (at least one step) of 4 x 16") &&
                    !strstr(out, "-1 steps") && strstr(out, "done: 1 steps"),
                "%s", out);
  loom_tensor_map *m = loom_safetensors_load(ck);
  ck_assert_loom(m);
  loom_tensor *step = loom_tensor_map_get(m, "step");
  ck_assert_ptr_nonnull(step);
  ck_assert_int_eq(loom_data_i64(step)[0], 1);
  loom_tensor_map_free(m);
  /* checkpoints that cannot be written: refused before anything runs */
  const struct {
    const char *path, *says;
    int status;
  } paths[] = {
      {"''", "--checkpoint '' is not a file name", 2},
      {"%s/missing-dir/x.ckpt",
       "missing-dir/x.ckpt: the folder %s/missing-dir: No such file", 1},
      {"%s", "cannot write --checkpoint %s: it is a folder, not a file", 1},
      {"%s/first.ckpt/x", "the folder %s/first.ckpt: Not a directory", 1},
      /* the plot, written at the end (it was checked only then) */
      {"%s/first.ckpt --plot %s/missing-dir/x.png",
       "cannot write --plot %s/missing-dir/x.png: the folder "
       "%s/missing-dir: No such file",
       1},
      {"%s/first.ckpt --plot %s", "--plot %s: it is a folder, not a file", 1},
  };
  for (int i = 0; i < 6; i++) {
    char path[600], says[1200];
    snprintf(path, sizeof path, paths[i].path, test_dir, test_dir);
    snprintf(says, sizeof says, paths[i].says, test_dir, test_dir);
    snprintf(args, sizeof args, "%s --steps 100000 --checkpoint %s", tiny,
             path);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
        paths[i].status);
    ck_assert_msg(strstr(out, says) && !strstr(out, "model:"), "%s: %s", path,
                  out);
  }
  ck_assert_int_ne(access("'.best", F_OK), 0); /* no stray file */
  /* a pipe */
  test_path(data, sizeof data, "piped.txt");
  char text[20000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = "abcdefg hij\n"[(i * 7 + i / 13) % 12];
  test_write_file(data, text, sizeof text);
  snprintf(args, sizeof args,
           "-c \"cat '%s' | %s --data /dev/stdin %s --steps 2 --quiet "
           "--checkpoint '%s'\"",
           data, charlm(), tiny, ck);
  ck_assert_int_eq(test_run("sh", args, TEST_OUTPUT_BOTH, out, sizeof out), 0);
  /* a device without an end */
  snprintf(args, sizeof args, "--data /dev/zero %s --quiet --checkpoint %s",
           tiny, ck);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "/dev/zero: not a regular file, and longer than "
                            "1073741824 bytes (1 GiB)"),
                "%s", out);
}
END_TEST

/* An output that is an input, or another output, is refused before
 * anything is read or written; a folder is not read as a file. */
START_TEST(test_outputs_are_not_inputs) {
  char data[512], link[512], args[2048], out[4096];
  test_path(data, sizeof data, "text.txt");
  test_path(link, sizeof link, "text-link.txt");
  char text[3000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = (char)('a' + i % 7);
  test_write_file(data, text, sizeof text);
  ck_assert_int_eq(symlink(data, link), 0);
  const char *outs[] = {"--checkpoint %s", "--plot %s",
                        "--checkpoint %s --plot x.png", "--write-corpus %s"};
  for (int i = 0; i < 4; i++) {
    char o[600];
    snprintf(o, sizeof o, outs[i], link); /* the same file, another path */
    snprintf(args, sizeof args, "--data %s %s --steps 1 --quiet", data, o);
    ck_assert_int_eq(
        test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "refusing to write over it"), "%s", out);
  }
  snprintf(args, sizeof args, "--checkpoint %s/c --plot %s/c.best --quiet",
           test_dir, test_dir);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   2);
  ck_assert_msg(strstr(out, "is the --checkpoint (FILE.best) file"), "%s", out);
  size_t len;
  char *after = test_slurp(data, &len);
  ck_assert(len == sizeof text && !memcmp(after, text, len));
  free(after);
  /* folders */
  snprintf(args, sizeof args, "--data %s --quiet", test_dir);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "is a directory"), "%s", out);
  snprintf(args, sizeof args, "sample --checkpoint %s", test_dir);
  ck_assert_int_eq(test_run(charlm(), args, TEST_OUTPUT_BOTH, out, sizeof out),
                   1);
  ck_assert_msg(strstr(out, "is a directory"), "%s", out);
}
END_TEST

/* The corpus generator stops with an error when memory runs out (it spun
 * forever). Under a 400 MB address-space limit, so not with
 * AddressSanitizer (skipped there). */
START_TEST(test_corpus_out_of_memory) {
  char cmd[2048], out[4096], dst[512];
  test_path(dst, sizeof dst, "big.txt");
  if (TEST_UNDER_ASAN) {
    fprintf(stderr, "test_corpus_out_of_memory: AddressSanitizer cannot run "
                    "under ulimit -v, skipped\n");
    return;
  }
  snprintf(cmd, sizeof cmd,
           "-c 'ulimit -v 400000; exec timeout 60 %s --corpus-bytes 1073741824 "
           "--write-corpus %s'",
           charlm(), dst);
  ck_assert_int_eq(test_run("sh", cmd, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "out of memory after"), "%s", out);
  ck_assert_int_ne(access(dst, F_OK), 0);
}
END_TEST

/* Needs ../shared/data/tinyshakespeare (skips without it). */
START_TEST(test_tinyshakespeare_learns) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  char data[1024], ck[512], args[2048];
  snprintf(data, sizeof data, "%s/../shared/data/tinyshakespeare/input.txt",
           root ? root : "..");
  size_t len = 0;
  FILE *f = fopen(data, "rb");
  if (!f) {
    fprintf(stderr, "test_tinyshakespeare_learns: %s absent, skipped\n", data);
    return;
  }
  double count[256] = {0};
  int c;
  while ((c = fgetc(f)) != EOF) {
    count[c]++;
    len++;
  }
  fclose(f);
  double unigram = 0; /* nats per character */
  for (int i = 0; i < 256; i++)
    if (count[i] > 0)
      unigram -= count[i] / (double)len * log(count[i] / (double)len);
  test_path(ck, sizeof ck, "ts.ckpt");
  snprintf(args, sizeof args,
           "--data %s --hidden 128 --embed 32 --layers 1 --seq 50 --batch 32 "
           "--steps 300 --eval-every 300 --plot '' --quiet --checkpoint %s",
           data, ck);
  ck_assert_int_eq(run(args), 0);
  loom_tensor_map *m = loom_safetensors_load(ck);
  ck_assert_loom(m);
  loom_tensor *val = loom_tensor_map_get(m, "extra.history.val");
  ck_assert_ptr_nonnull(val);
  int64_t n = loom_size(val, 1);
  double last = loom_data_f64(val)[2 * n - 1];
  ck_assert_msg(last < unigram - 0.5,
                "validation %.3f nats/char, unigram "
                "%.3f",
                last, unigram);
  loom_tensor_map_free(m);
}
END_TEST

/* ---- --distributed, under mpirun (skipped without MPI or mpirun) ---- */

/* Runs `mpirun -np ranks charlm args`; its exit status, and all its output
 * in out. LeakSanitizer is off under mpirun (Open MPI leaks at exit). */
static int run_ranks(int ranks, const char *args, char *out, size_t n) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "--oversubscribe --bind-to none -np %d %s --distributed %s", ranks,
           charlm(), args);
  char prog[1024];
  snprintf(prog, sizeof prog, "LSAN_OPTIONS=detect_leaks=0 %s",
           getenv("MPIRUN"));
  return test_run(prog, cmd, TEST_OUTPUT_BOTH, out, n);
}

/* The largest difference between the models, optimizer states and
 * recurrent states of two checkpoints (and that they hold the same step
 * and the same entries of those). */
static double checkpoint_distance(const char *a, const char *b) {
  loom_tensor_map *ma = loom_safetensors_load(a);
  loom_tensor_map *mb = loom_safetensors_load(b);
  ck_assert_loom(ma);
  ck_assert_loom(mb);
  double worst = 0;
  int compared = 0;
  for (int i = 0; i < loom_tensor_map_count(ma); i++) {
    const char *name = loom_tensor_map_name(ma, i);
    if (strncmp(name, "model.", 6) && strncmp(name, "optim.", 6) &&
        strncmp(name, "extra.state", 11) && strcmp(name, "step"))
      continue;
    loom_tensor *x = loom_tensor_map_at(ma, i);
    loom_tensor *y = loom_tensor_map_get(mb, name);
    ck_assert_msg(y && loom_same_shape(x, y), "%s differs in shape", name);
    loom_tensor *d = loom_amax(loom_abs(loom_sub(loom_to_dtype(x, LOOM_F64),
                                                 loom_to_dtype(y, LOOM_F64))),
                               NULL, 0, false);
    ck_assert_loom(d);
    worst = fmax(worst, loom_item(d));
    compared++;
  }
  ck_assert_int_gt(compared, 15);
  loom_tensor_map_free(ma);
  loom_tensor_map_free(mb);
  return worst;
}

/* Training on 2 ranks (2 of the 4 streams each) ends where one process
 * ends: the same step, model, Adam moments and stream states, up to the
 * rounding of other summation orders (1.4e-7 measured after 14 steps);
 * and a run resumed on another number of ranks (2 then 1, 4 then 2) goes
 * on as the uninterrupted one. No dropout: its masks are drawn per rank. */
#define DIST                                                                   \
  "--corpus-bytes 40000 --hidden 24 --embed 8 --layers 2 "                     \
  "--seq 16 --batch 4 --eval-every 5 --save-every 5 --plot '' "                \
  "--threads 1 --quiet"

START_TEST(test_distributed_trains_as_one_process) {
  char one[512], two[512], r21[512], r42[512], args[1024], out[8192];
  test_path(one, sizeof one, "d1.ckpt");
  test_path(two, sizeof two, "d2.ckpt");
  test_path(r21, sizeof r21, "d21.ckpt");
  test_path(r42, sizeof r42, "d42.ckpt");
  snprintf(args, sizeof args, DIST " --steps 14 --checkpoint %s", one);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, DIST " --steps 14 --checkpoint %s", two);
  ck_assert_msg(run_ranks(2, args, out, sizeof out) == 0, "%s", out);
  double d = checkpoint_distance(one, two);
  ck_assert_msg(d <= 1e-6, "2 ranks end %g from one process", d);

  snprintf(args, sizeof args, DIST " --steps 7 --checkpoint %s", r21);
  ck_assert_msg(run_ranks(2, args, out, sizeof out) == 0, "%s", out);
  snprintf(args, sizeof args, DIST " --steps 14 --resume --checkpoint %s", r21);
  ck_assert_int_eq(run(args), 0);
  d = checkpoint_distance(one, r21);
  ck_assert_msg(d <= 1e-6, "2 ranks then 1 end %g from one process", d);

  snprintf(args, sizeof args, DIST " --steps 7 --checkpoint %s", r42);
  ck_assert_msg(run_ranks(4, args, out, sizeof out) == 0, "%s", out);
  snprintf(args, sizeof args, DIST " --steps 14 --resume --checkpoint %s", r42);
  ck_assert_msg(run_ranks(2, args, out, sizeof out) == 0, "%s", out);
  d = checkpoint_distance(one, r42);
  ck_assert_msg(d <= 1e-6, "4 ranks then 2 end %g from one process", d);
}
END_TEST

/* Counts the occurrences of `what` in text. */
static int occurrences(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
    n++;
  return n;
}

/* Rank 0 alone prints the run (once, not once per rank) and draws the
 * plot; a batch the ranks cannot share evenly is refused, once. */
START_TEST(test_distributed_rank_0_speaks) {
  char ck[512], png[512], args[2048], out[16384];
  test_path(ck, sizeof ck, "ds.ckpt");
  test_path(png, sizeof png, "ds.png");
  snprintf(args, sizeof args,
           "--corpus-bytes 40000 --hidden 24 --embed 8 --seq 16 --batch 4 "
           "--steps 10 --eval-every 5 --threads 1 --checkpoint %s --plot %s",
           ck, png);
  ck_assert_msg(run_ranks(2, args, out, sizeof out) == 0, "%s", out);
  ck_assert_int_eq(occurrences(out, "step 5: validation"), 1);
  ck_assert_int_eq(occurrences(out, "done: 10 steps"), 1);
  ck_assert_int_eq(occurrences(out, "loss curves:"), 1);
  FILE *f = fopen(png, "rb");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  snprintf(args, sizeof args, DIST " --steps 3 --checkpoint %s", ck);
  int status = run_ranks(3, args, out, sizeof out);
  ck_assert_int_ne(status, 0);
  ck_assert_int_eq(
      occurrences(out, "--batch 4 is not a multiple of the 3 ranks"), 1);
}
END_TEST

int main(void) {
  if (test_dir_make("charlm") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("charlm");
  TCase *tc = tcase_create("app");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_resume_is_exact);
  tcase_add_test(tc, test_resume_refuses_bad_checkpoints);
  tcase_add_test(tc, test_sampling_is_deterministic);
  tcase_add_test(tc, test_sampling_streams);
  tcase_add_test(tc, test_transformer);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_refuses_bad_numbers);
  tcase_add_test(tc, test_checkpoint_entries_checked);
  tcase_add_test(tc, test_diverging_run_keeps_checkpoint);
  tcase_add_test(tc, test_failed_writes_reported);
  tcase_add_test(tc, test_outputs_are_not_inputs);
  tcase_add_test(tc, test_resume_names_differing_options);
  tcase_add_test(tc, test_options_checked_first);
  tcase_add_test(tc, test_corpus_out_of_memory);
  tcase_add_test(tc, test_tinyshakespeare_learns);
  if (loom_dist_available() && getenv("MPIRUN") && *getenv("MPIRUN")) {
    tcase_add_test(tc, test_distributed_trains_as_one_process);
    tcase_add_test(tc, test_distributed_rank_0_speaks);
  } else {
    fprintf(stderr, "charlm --distributed: skipped (%s)\n",
            loom_dist_available() ? "no mpirun" : "loom has no MPI");
  }
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
