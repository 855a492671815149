/* translate train / translate / attention through the command line:
 * - both models learn a small synthetic task (reverse a sequence of words)
 *   to a tokenised BLEU of at least 90 within seconds, greedy and beam;
 * - with BPE, reversible tokenisation and one joint vocabulary too;
 * - a resumed run ends bit-identical to an uninterrupted one;
 * - translate keeps empty lines, writes n-best lists, refuses invalid
 *   UTF-8 naming the byte; attention writes a PNG;
 * - bad input (line counts, UTF-8, an empty set, options out of range, a
 *   checkpoint of something else, a sentence beyond the positions) is a
 *   clear error and a non-zero exit, never a crash. */
#define _POSIX_C_SOURCE 200809L
#include "check_util.h"
#include "file_util.h"

#include <stb_image.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *translate_exe;

static const char *const vocabulary[] = {"red",   "green", "blue", "big",
                                         "small", "cat",   "dog",  "bird",
                                         "runs",  "sees",  "eats", "sleeps"};

/* n pairs: a line of 4..7 words and the same words reversed (made before
 * the tests run, so failures are reported by exit status). Every line has
 * a 4-gram: NLTK's BLEU counts a shorter one as a miss. */
static int write_pairs(const char *src, const char *tgt, int n, uint64_t seed) {
  loom_rng *g = loom_rng_new(seed);
  FILE *s = fopen(src, "w"), *t = fopen(tgt, "w");
  if (!g || !s || !t)
    return -1;
  for (int i = 0; i < n; i++) {
    int len = 4 + (int)(loom_rng_u64(g) % 4), w[7];
    for (int k = 0; k < len; k++)
      w[k] = (int)(loom_rng_u64(g) % 12);
    for (int k = 0; k < len; k++)
      fprintf(s, "%s%s", k ? " " : "", vocabulary[w[k]]);
    for (int k = len - 1; k >= 0; k--)
      fprintf(t, "%s%s", k < len - 1 ? " " : "", vocabulary[w[k]]);
    fputc('\n', s);
    fputc('\n', t);
  }
  loom_rng_free(g);
  return fclose(s) | fclose(t);
}

static char train_src[512], train_tgt[512], valid_src[512], valid_tgt[512];

static int setup_data(void) {
  test_path(train_src, sizeof train_src, "train.src");
  test_path(train_tgt, sizeof train_tgt, "train.tgt");
  test_path(valid_src, sizeof valid_src, "valid.src");
  test_path(valid_tgt, sizeof valid_tgt, "valid.tgt");
  return write_pairs(train_src, train_tgt, 3000, 1) |
         write_pairs(valid_src, valid_tgt, 200, 2);
}

static const char *model_flags(bool rnn) {
  return rnn ? "--model rnn --embed 32 --hidden 64 --layers 1 --dropout 0"
             : "--model transformer --d-model 64 --heads 4 --ff 128 "
               "--enc-layers 2 --dec-layers 2 --dropout 0";
}

/* Trains into `ckpt`; returns the exit status, output in out. */
static int train(const char *ckpt, const char *extra, char *out, size_t n) {
  char args[4096];
  snprintf(args, sizeof args,
           "train --src %s --tgt %s --valid-src %s --valid-tgt %s "
           "--checkpoint %s --plot '' --max-tokens 512 --lr 2e-3 --quiet "
           "--threads 2 %s",
           train_src, train_tgt, valid_src, valid_tgt, ckpt, extra);
  return test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, n);
}

/* Translates valid_src with `flags` and returns the tokenised BLEU. */
static double bleu_of(const char *ckpt, const char *flags) {
  char hyp[512], args[2048], out[4096];
  test_path(hyp, sizeof hyp, "hyp.txt");
  snprintf(args, sizeof args, "translate --checkpoint %s %s < %s > %s", ckpt,
           flags, valid_src, hyp);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  snprintf(args, sizeof args, "score --tokenized --score-only -m bleu %s < %s",
           valid_tgt, hyp);
  int rc = test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out);
  ck_assert_msg(rc == 0, "score: %s", out);
  return atof(out);
}

/* Trains for `epochs` and translates with the checkpoint of the best
 * validation BLEU. */
static void learns(bool rnn, int epochs, const char *text_flags) {
  char ckpt[512], best[600], out[65536], extra[1024];
  test_path(ckpt, sizeof ckpt, rnn ? "rnn.ckpt" : "tf.ckpt");
  snprintf(best, sizeof best, "%s.best", ckpt);
  /* Batches of 128 tokens: as many sentences seen as with bigger batches
   * learn the task in fewer epochs, and each tensor stays small (under
   * AddressSanitizer, blocks beyond 128 KiB are fresh pages every time). */
  snprintf(extra, sizeof extra,
           "%s --epochs %d --max-tokens 128 --lr 1e-3 --warmup 100 %s",
           model_flags(rnn), epochs, text_flags);
  int rc = train(ckpt, extra, out, sizeof out);
  ck_assert_msg(rc == 0, "train failed (%d): %s", rc, out);
  double greedy = bleu_of(best, "--beam 1");
  double beam = bleu_of(best, "--beam 4");
  printf("%s %s: BLEU %.2f greedy, %.2f beam 4\n", rnn ? "rnn" : "tf",
         text_flags, greedy, beam);
  ck_assert_msg(greedy >= 90 && beam >= 90,
                "%s %s: BLEU %.2f greedy, %.2f beam 4", rnn ? "rnn" : "tf",
                text_flags, greedy, beam);
}

START_TEST(test_transformer_learns) { learns(false, 3, ""); }
END_TEST

START_TEST(test_rnn_learns) { learns(true, 3, ""); }
END_TEST

/* 30 merges leave "sleeps" in four pieces: subwords are learned, applied
 * and undone; case and spacing go through the joiner marks. */
START_TEST(test_bpe_joint_reversible) {
  learns(false, 4, "--bpe 30 --joint --share-all --tokenize reversible");
}
END_TEST

/* The model's and optimizer's tensors of two checkpoints are equal. */
static void expect_same_state(const char *a, const char *b) {
  loom_tensor_map *x = loom_safetensors_load(a), *y = loom_safetensors_load(b);
  ck_assert_loom(x);
  ck_assert_loom(y);
  int compared = 0;
  for (int i = 0; i < loom_tensor_map_count(x); i++) {
    const char *name = loom_tensor_map_name(x, i);
    if (strncmp(name, "model.", 6) && strncmp(name, "optimizer.", 10))
      continue;
    loom_tensor *u = loom_tensor_map_at(x, i),
                *v = loom_tensor_map_get(y, name);
    ck_assert_msg(v && loom_equal(u, v), "%s differs after resuming", name);
    compared++;
  }
  ck_assert_int_gt(compared, 10);
  loom_tensor_map_free(x);
  loom_tensor_map_free(y);
}

START_TEST(test_resume_is_bit_identical) {
  char once[512], twice[512], out[65536], extra[1024];
  test_path(once, sizeof once, "once.ckpt");
  test_path(twice, sizeof twice, "twice.ckpt");
  const char *flags = "--model transformer --d-model 32 --heads 2 --ff 64 "
                      "--enc-layers 1 --dec-layers 1 --dropout 0.1";
  snprintf(extra, sizeof extra, "%s --epochs 2", flags);
  ck_assert_int_eq(train(once, extra, out, sizeof out), 0);
  snprintf(extra, sizeof extra, "%s --epochs 1", flags);
  ck_assert_int_eq(train(twice, extra, out, sizeof out), 0);
  ck_assert_msg(train(twice, "--resume --epochs 2", out, sizeof out) == 0,
                "resume: %s", out);
  expect_same_state(once, twice);
}
END_TEST

START_TEST(test_translate_io) {
  char ckpt[512], in[512], args[2048], out[65536];
  test_path(ckpt, sizeof ckpt, "io.ckpt");
  ck_assert_int_eq(train(ckpt,
                         "--model rnn --embed 8 --hidden 8 --layers 1 "
                         "--epochs 1",
                         out, sizeof out),
                   0);
  test_path(in, sizeof in, "in.txt");
  test_write_file(in, "red cat\n\nblue dog runs\n", 23);
  snprintf(args, sizeof args, "translate --checkpoint %s --beam 3 < %s", ckpt,
           in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  ck_assert_int_eq(lines, 3);
  ck_assert_msg(strstr(out, "\n\n") != NULL, "empty line lost: %s", out);
  snprintf(args, sizeof args,
           "translate --checkpoint %s --beam 3 --nbest 3 < %s", ckpt, in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "0 ||| "));
  ck_assert_ptr_nonnull(strstr(out, "2 ||| "));
  /* with no room for a word the eos alone is a translation: the two
   * placeholders after it are not listed ("0 |||  ||| -inf ||| -inf") */
  snprintf(args, sizeof args,
           "translate --checkpoint %s --beam 3 --nbest 3 --max-len-a 0 "
           "--max-len-b 0 < %s",
           ckpt, in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  ck_assert_msg(lines == 3 && !strstr(out, "inf") &&
                    !strncmp(out, "0 |||  ||| ", 11) &&
                    strstr(out, "\n1 |||  ||| 0.000000 ||| 0.000000\n2 |||  "
                                "||| "),
                "%s", out);
  /* invalid UTF-8 names the byte */
  test_write_file(in, "red cat\nblue \xff dog\n", 18);
  snprintf(args, sizeof args, "translate --checkpoint %s < %s", ckpt, in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "invalid UTF-8 at byte 13"), "%s", out);
  /* the attention picture */
  char png[512];
  test_path(png, sizeof png, "attention.png");
  test_write_file(in, "red cat sees dog\n", 17);
  snprintf(args, sizeof args, "attention --checkpoint %s --output %s < %s",
           ckpt, png, in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out), 0);
  int w, h, comp;
  ck_assert_int_eq(stbi_info(png, &w, &h, &comp), 1);
  ck_assert_int_gt(w, 100);
  /* a line past the input: its message alone (an empty "translate: " line
   * followed it), and so for an input that cannot be read (said twice) */
  snprintf(args, sizeof args,
           "attention --checkpoint %s --output %s --line 5 < %s", ckpt, png,
           in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  ck_assert_msg(!strcmp(out, "translate: the input has no line 5 with text\n"),
                "%s", out);
  test_write_file(in, "red \xff dog\n", 10);
  snprintf(args, sizeof args, "attention --checkpoint %s --output %s < %s",
           ckpt, png, in);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out), 1);
  const char *said = strstr(out, "invalid UTF-8 at byte 4");
  ck_assert_msg(said && !strstr(said + 1, "invalid UTF-8"), "%s", out);
}
END_TEST

/* Runs a command expected to fail with exit `status` and say `words`. */
static void expect_refusal(const char *args, int status, const char *words) {
  char out[65536];
  int rc = test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out);
  ck_assert_msg(rc == status, "exit %d, not %d, for %s: %s", rc, status, args,
                out);
  ck_assert_msg(strstr(out, words), "'%s' not in the output of %s: %s", words,
                args, out);
  ck_assert_ptr_null(strstr(out, "Sanitizer"));
}

START_TEST(test_bad_input) {
  char a[512], b[512], ckpt[512], args[4096];
  test_path(a, sizeof a, "bad.src");
  test_path(b, sizeof b, "bad.tgt");
  test_path(ckpt, sizeof ckpt, "bad.ckpt");
  test_write_file(a, "a b\nc d\ne f\n", 12);
  test_write_file(b, "b a\nd c\n", 8);
  snprintf(args, sizeof args, "train --src %s --tgt %s --checkpoint %s --quiet",
           a, b, ckpt);
  expect_refusal(args, 1, "has 3 lines but");
  test_write_file(b, "b a\nd \xc3\x28 c\nf e\n", 14);
  expect_refusal(args, 1, "invalid UTF-8 at byte 6");
  test_write_file(a, "\n\n", 2);
  test_write_file(b, "x\n\n", 3);
  expect_refusal(args, 1, "no pair with text on both sides");
  /* validation files without a usable pair, refused before training and
   * before anything is written (they gave no validation and no
   * CHECKPOINT.best, with status 0) */
  char none[512];
  test_path(none, sizeof none, "none.ckpt");
  snprintf(args, sizeof args,
           "train --src %s --tgt %s --valid-src %s --valid-tgt %s "
           "--checkpoint %s --quiet --plot '' --model rnn --embed 8 "
           "--hidden 8 --layers 1 --epochs 1",
           train_src, train_tgt, a, b, none);
  expect_refusal(args, 1, "hold no pair with text on both sides");
  char vocab[600];
  snprintf(vocab, sizeof vocab, "%s.src.vocab", none);
  ck_assert_int_ne(access(none, F_OK), 0);
  ck_assert_int_ne(access(vocab, F_OK), 0);
  const char *flags[][2] = {
      {"--max-tokens 0", "--max-tokens '0' is not an integer in"},
      {"--lr nan", "--lr 'nan'"},
      {"--model transformer --d-model 64 --heads 3", "must divide"},
      {"--model rnn --hidden 63", "must be even"},
      {"--tokenize words", "is not one of lower|reversible"},
      {"--epochs 1e30", "--epochs"},
      {"--share-all", "needs --joint"},
  };
  for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
    snprintf(args, sizeof args,
             "train --src %s --tgt %s --checkpoint %s --quiet %s", train_src,
             train_tgt, ckpt, flags[i][0]);
    expect_refusal(args, 2 - (i == 2 || i == 3), flags[i][1]);
  }
  /* a checkpoint of something else */
  loom_linear_layer *l = loom_linear_layer_new(2, 2, true);
  ck_assert_int_eq(
      loom_checkpoint_save(ckpt, &l->base, NULL, NULL, 0, NULL, NULL), 0);
  loom_linear_layer_free(l);
  snprintf(args, sizeof args, "translate --checkpoint %s < %s", ckpt, a);
  expect_refusal(args, 1, "is not a translation model");
  snprintf(args, sizeof args, "translate --checkpoint %s/none < %s", ckpt, a);
  expect_refusal(args, 1, "cannot read");
  /* a sentence longer than the positions */
  char small[512], out[65536], longline[4096];
  test_path(small, sizeof small, "small.ckpt");
  int rc = train(small,
                 "--model transformer --d-model 16 --heads 2 --ff 16 "
                 "--enc-layers 1 --dec-layers 1 --max-positions 12 --epochs 1",
                 out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  size_t n = 0;
  for (int i = 0; i < 20; i++)
    n += (size_t)snprintf(longline + n, sizeof longline - n, "red ");
  longline[n - 1] = '\n';
  test_write_file(a, longline, n);
  snprintf(args, sizeof args, "translate --checkpoint %s < %s", small, a);
  expect_refusal(args, 1, "more than the model's 12 positions");
  /* a translation no shorter than its longest */
  snprintf(args, sizeof args,
           "translate --checkpoint %s --min-len 60 --max-len-b 50 < %s", small,
           a);
  expect_refusal(args, 2, "--min-len 60: must be in [0, 50] (--max-len-b)");
  snprintf(args, sizeof args,
           "attention --checkpoint %s --min-len 51 --output %s/x.png < %s",
           small, test_dir, a);
  expect_refusal(args, 2, "--min-len 51: must be in [0, 50] (--max-len-b)");
}
END_TEST

/* A sentence beyond the transformer's positions, in the training or the
 * validation data, is refused before training, naming the file, the line
 * and its length in the model's units (it failed only when its batch, or
 * the validation, came: the epoch lost). The lines of 4..7 words fill 8
 * positions exactly, with the source's eos or the target's bos. */
START_TEST(test_positions_checked_first) {
  char src[512], tgt[512], vsrc[512], vtgt[512], ck[512], args[4096],
      out[65536];
  test_path(src, sizeof src, "pos.src");
  test_path(tgt, sizeof tgt, "pos.tgt");
  test_path(vsrc, sizeof vsrc, "pos-valid.src");
  test_path(vtgt, sizeof vtgt, "pos-valid.tgt");
  test_path(ck, sizeof ck, "pos.ckpt");
  ck_assert_int_eq(write_pairs(src, tgt, 100, 5), 0);
  const char *model = "--model transformer --d-model 16 --heads 2 --ff 16 "
                      "--enc-layers 1 --dec-layers 1 --max-positions 8 "
                      "--epochs 1 --quiet --plot ''";
  snprintf(args, sizeof args, "train --src %s --tgt %s --checkpoint %s %s", src,
           tgt, ck, model);
  int rc = test_run(translate_exe, args, TEST_OUTPUT_BOTH, out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  unlink(ck);
  const struct {
    const char *src, *tgt, *says;
  } cases[] = {
      {"red cat\nred cat sees big blue dog runs sleeps\n", "cat red\nx\n",
       "%s:2: a sentence of 9 tokens (its end-of-sentence token counted), "
       "more than the model's 8 positions (--max-positions, 2..65536)"},
      {"red cat\nred cat\n", "cat red\nred cat sees big blue dog runs x\n",
       "%s:2: a sentence of 9 tokens (the beginning-of-sentence token "
       "counted), more than the model's 8 positions"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char says[1024];
    test_write_file(vsrc, cases[i].src, strlen(cases[i].src));
    test_write_file(vtgt, cases[i].tgt, strlen(cases[i].tgt));
    snprintf(says, sizeof says, cases[i].says, i == 0 ? vsrc : vtgt);
    snprintf(args, sizeof args,
             "train --src %s --tgt %s --valid-src %s --valid-tgt %s "
             "--checkpoint %s %s",
             src, tgt, vsrc, vtgt, ck, model);
    expect_refusal(args, 1, says);
    /* as training data too */
    snprintf(says, sizeof says, cases[i].says, i == 0 ? vsrc : vtgt);
    snprintf(args, sizeof args, "train --src %s --tgt %s --checkpoint %s %s",
             vsrc, vtgt, ck, model);
    expect_refusal(args, 1, says);
    ck_assert_int_ne(access(ck, F_OK), 0);
  }
}
END_TEST

/* Copies file `from` to `to`. */
static void copy_file(const char *from, const char *to) {
  size_t len;
  char *data = test_slurp(from, &len);
  test_write_file(to, data, len);
  free(data);
}

/* `args` is refused before anything is written: exit status 2, a message
 * with `says` (a format with the victim's path in it), and `victim` as it
 * was, byte for byte. */
static void expect_kept(const char *args, const char *victim,
                        const char *says) {
  char want[2048];
  size_t before_len, after_len;
  char *before = test_slurp(victim, &before_len);
  snprintf(want, sizeof want, says, victim);
  expect_refusal(args, 2, want);
  char *after = test_slurp(victim, &after_len);
  ck_assert_msg(before_len == after_len && !memcmp(before, after, before_len),
                "%s changed by %s", victim, args);
  free(before);
  free(after);
}

/* A run too short for a point of the training curve (its points are means
 * of 10 steps) still writes the curves the user asked for (it wrote
 * nothing and exited 0), and so does a resumed run with nothing left to
 * train. */
START_TEST(test_short_run_writes_curves) {
  char ck[512], png[512], extra[1024], out[65536];
  test_path(ck, sizeof ck, "short.ckpt");
  test_path(png, sizeof png, "short.png");
  snprintf(extra, sizeof extra,
           "--model rnn --embed 8 --hidden 8 --layers 1 --epochs 1 "
           "--max-tokens 8192 --plot %s",
           png);
  int rc = train(ck, extra, out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  int w, h, comp;
  ck_assert_int_eq(stbi_info(png, &w, &h, &comp), 1);
  /* resumed with its epochs all done, the curves are drawn from the
   * history (they were not written, status 0) */
  char again[512];
  test_path(again, sizeof again, "short-again.png");
  snprintf(extra, sizeof extra,
           "--model rnn --embed 8 --hidden 8 --layers 1 --epochs 1 "
           "--max-tokens 8192 --resume --plot %s",
           again);
  rc = train(ck, extra, out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  ck_assert_int_eq(stbi_info(again, &w, &h, &comp), 1);
}
END_TEST

/* Model options given to a resumed run that differ from the checkpoint's
 * are refused, each named with both values (they were silently ignored);
 * the other kind of model's are no part of it; a new --dropout is taken
 * with a note. */
START_TEST(test_resume_names_differing_options) {
  char ck[512], extra[1024], out[65536];
  test_path(ck, sizeof ck, "differ.ckpt");
  const char *rnn = "--model rnn --embed 8 --hidden 8 --layers 1 --epochs 1 "
                    "--max-tokens 8192";
  int rc = train(ck, rnn, out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  const struct {
    const char *flags, *says;
  } cases[] = {
      {"--model transformer --d-model 64",
       "cannot resume from %s: the model options differ: --model "
       "transformer, the checkpoint has rnn\n"},
      {"--embed 8 --hidden 16 --cell gru --no-input-feeding --d-model 64",
       "cannot resume from %s: the model options differ: --hidden 16, the "
       "checkpoint has 8; --cell gru, the checkpoint has lstm; "
       "--no-input-feeding, the checkpoint has it off\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char args[4096], says[1024];
    snprintf(args, sizeof args,
             "train --src %s --tgt %s --checkpoint %s --plot '' --quiet "
             "--resume --epochs 2 %s",
             train_src, train_tgt, ck, cases[i].flags);
    snprintf(says, sizeof says, cases[i].says, ck);
    expect_refusal(args, 1, says);
  }
  snprintf(extra, sizeof extra,
           "--model rnn --hidden 8 --d-model 64 --dropout 0.5 --resume "
           "--epochs 1");
  rc = train(ck, extra, out, sizeof out);
  ck_assert_msg(rc == 0 && strstr(out, "translate: note: --dropout 0.5, the "
                                       "checkpoint was trained with 0.3"),
                "%s", out);
}
END_TEST

/* No output of train or attention may be an input, nor another output,
 * the names train derives from the checkpoint's included (each of these
 * had been overwritten, all but the first with exit status 0). */
START_TEST(test_outputs_never_overwrite_inputs) {
  char ck[512], out[65536], args[4096], in[512], copy[512], name[512],
      derived[600];
  test_path(ck, sizeof ck, "ow.ckpt");
  int rc = train(ck, "--model rnn --embed 8 --hidden 8 --layers 1 --epochs 1",
                 out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  const char *data = "--max-tokens 512 --quiet --plot ''";
  snprintf(args, sizeof args, "train --src %s --tgt %s --checkpoint %s %s",
           train_src, train_tgt, train_tgt, data);
  expect_kept(args, train_tgt, "--checkpoint %s is the --tgt file");
  /* the plot is the checkpoint */
  test_path(copy, sizeof copy, "ow-copy.ckpt");
  copy_file(ck, copy);
  snprintf(args, sizeof args,
           "train --src %s --tgt %s --checkpoint %s --max-tokens 512 --quiet "
           "--plot %s",
           train_src, train_tgt, copy, copy);
  expect_kept(args, copy, "--plot %s is the --checkpoint file");
  /* CHECKPOINT.best is the validation source */
  test_path(name, sizeof name, "ow-y");
  snprintf(derived, sizeof derived, "%s.best", name);
  copy_file(valid_src, derived);
  snprintf(args, sizeof args,
           "train --src %s --tgt %s --valid-src %s --valid-tgt %s "
           "--checkpoint %s %s",
           train_src, train_tgt, derived, valid_tgt, name, data);
  expect_kept(args, derived,
              "--checkpoint (CHECKPOINT.best) %s is the --valid-src file");
  /* CHECKPOINT.src.vocab is the training source */
  snprintf(derived, sizeof derived, "%s.src.vocab", name);
  copy_file(train_src, derived);
  snprintf(args, sizeof args, "train --src %s --tgt %s --checkpoint %s %s",
           derived, train_tgt, name, data);
  expect_kept(args, derived,
              "--checkpoint (CHECKPOINT.src.vocab) %s is the --src file");
  /* with --bpe, CHECKPOINT.tgt.bpe is the training target */
  snprintf(derived, sizeof derived, "%s.tgt.bpe", name);
  copy_file(train_tgt, derived);
  snprintf(args, sizeof args,
           "train --src %s --tgt %s --checkpoint %s --bpe 10 %s", train_src,
           derived, name, data);
  expect_kept(args, derived,
              "--checkpoint (CHECKPOINT.tgt.bpe) %s is the --tgt file");
  /* attention: the picture is the checkpoint, or standard input's file
   * (by another name: through a hard link) */
  snprintf(args, sizeof args, "attention --checkpoint %s --output %s < %s",
           copy, copy, valid_src);
  expect_kept(args, copy, "--output %s is the --checkpoint file");
  test_path(in, sizeof in, "ow-in.txt");
  test_path(name, sizeof name, "ow-in-link.txt");
  test_write_file(in, "red cat sees dog\n", 17);
  ck_assert_int_eq(link(in, name), 0);
  snprintf(args, sizeof args, "attention --checkpoint %s --output %s < %s", ck,
           name, in);
  expect_kept(args, name, "--output %s is the standard input");
}
END_TEST

/* Files training writes in a folder that is missing, or that are
 * folders, are refused before the data is read: nothing is written (a
 * --plot there failed only after training, or not at all when the run
 * was too short to draw; a --checkpoint after reading the data). */
START_TEST(test_outputs_checked_first) {
  char ck[512], dir[512], args[4096], path[1200], says[1600];
  test_path(ck, sizeof ck, "first.ckpt");
  test_path(dir, sizeof dir, "first.ckpt.src.vocab");
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  const struct {
    const char *flags, *says;
    int status;
  } cases[] = {
      {"--checkpoint %s/missing/x.ckpt",
       "cannot write --checkpoint %s/missing/x.ckpt: the folder %s/missing: "
       "No such file",
       1},
      {"--checkpoint ''", "--checkpoint '' is not a file name", 2},
      {"--checkpoint %s", "--checkpoint %s: it is a folder, not a file", 1},
      {"--checkpoint %s/first.ckpt",
       "--checkpoint (CHECKPOINT.src.vocab) %s/first.ckpt.src.vocab: it is a "
       "folder",
       1},
      {"--checkpoint %s/x.ckpt --plot %s/missing/p.png",
       "cannot write --plot %s/missing/p.png: the folder %s/missing: No such "
       "file",
       1},
      {"--checkpoint %s/x.ckpt --plot %s", "--plot %s: it is a folder", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    snprintf(path, sizeof path, cases[i].flags, test_dir, test_dir);
    snprintf(says, sizeof says, cases[i].says, test_dir, test_dir);
    snprintf(args, sizeof args,
             "train --src %s --tgt %s --epochs 1000 --max-tokens 512 %s",
             train_src, train_tgt, path);
    expect_refusal(args, cases[i].status, says);
  }
  ck_assert_int_ne(access(ck, F_OK), 0);
  test_path(path, sizeof path, "x.ckpt.src.vocab");
  ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* Checkpoint `from` saved as `to` with its source side's BPE codes (the
 * tensor extra.text.bpe.src) cut to their first `keep` bytes. */
static void with_codes_cut(const char *from, const char *to, size_t keep) {
  loom_tensor_map *m = loom_safetensors_load(from);
  ck_assert_loom(m);
  loom_tensor *codes = loom_tensor_map_get(m, "extra.text.bpe.src");
  ck_assert_ptr_nonnull(codes);
  ck_assert_uint_ge((size_t)loom_numel(codes), keep);
  loom_scope *s = loom_scope_begin();
  loom_tensor *cut =
      loom_from_array(LOOM_U8, loom_data_u8(codes), LOOM_SHAPE((int64_t)keep));
  ck_assert_loom(cut);
  ck_assert_int_eq(loom_tensor_map_set(m, "extra.text.bpe.src", cut), 0);
  loom_scope_end(s);
  ck_assert_int_eq(loom_safetensors_save(to, m), 0);
  loom_tensor_map_free(m);
}

/* A checkpoint's BPE codes are the ones training learned: emptied or cut
 * short they had been accepted, and the input segmented otherwise than
 * in training. */
START_TEST(test_checkpoint_codes_checked) {
  char ck[512], cut[512], out[65536], args[4096], want[1024];
  test_path(ck, sizeof ck, "codes.ckpt");
  test_path(cut, sizeof cut, "codes-cut.ckpt");
  int rc = train(ck,
                 "--model rnn --embed 8 --hidden 8 --layers 1 --epochs 1 "
                 "--bpe 10",
                 out, sizeof out);
  ck_assert_msg(rc == 0, "%s", out);
  loom_tensor_map *m = loom_safetensors_load(ck);
  ck_assert_loom(m);
  const char *learned = loom_tensor_map_meta(m, "extra.text.bpe_learned.src");
  ck_assert_ptr_nonnull(learned);
  ck_assert_str_eq(learned, "10");
  loom_tensor_map_free(m);
  snprintf(args, sizeof args, "translate --checkpoint %s < %s", ck, valid_src);
  ck_assert_int_eq(
      test_run(translate_exe, args, TEST_OUTPUT_NONE, out, sizeof out), 0);
  /* "#version: 0.2\n" and the first merge line and more */
  size_t len;
  char *codes = NULL;
  {
    loom_tensor_map *k = loom_safetensors_load(ck);
    loom_tensor *t = loom_tensor_map_get(k, "extra.text.bpe.src");
    len = (size_t)loom_numel(t);
    codes = malloc(len + 1);
    memcpy(codes, loom_data_u8(t), len);
    codes[len] = 0;
    loom_tensor_map_free(k);
  }
  const char *third = strchr(strchr(codes, '\n') + 1, '\n') + 1;
  with_codes_cut(ck, cut, (size_t)(third - codes)); /* one merge left */
  snprintf(args, sizeof args, "translate --checkpoint %s < %s", cut, valid_src);
  snprintf(want, sizeof want,
           "%s: text.bpe.src holds 1 merges, but text.bpe_learned.src says 10 "
           "were learned (text.bpe_merges 10)",
           cut);
  expect_refusal(args, 1, want);
  with_codes_cut(ck, cut, 0);
  snprintf(want, sizeof want,
           "%s: text.bpe.src (0 merges, text.bpe_merges 10) lacks the "
           "'#version: 0.2' line",
           cut);
  expect_refusal(args, 1, want);
  free(codes);
}
END_TEST

/* ---- --distributed, under mpirun (skipped without MPI or mpirun) ---- */

static char small_src[512], small_tgt[512];

/* Trains on the small set with `ranks` ranks of mpirun (0: alone); the
 * exit status, output in out. */
static int train_small(int ranks, const char *ckpt, const char *extra,
                       char *out, size_t n) {
  char args[4096], prog[1024], launch[1024] = "";
  if (ranks) {
    snprintf(launch, sizeof launch, "--oversubscribe --bind-to none -np %d %s",
             ranks, translate_exe);
    /* LeakSanitizer off: Open MPI leaks at exit */
    snprintf(prog, sizeof prog, "LSAN_OPTIONS=detect_leaks=0 %s",
             getenv("MPIRUN"));
  } else {
    snprintf(prog, sizeof prog, "%s", translate_exe);
  }
  snprintf(args, sizeof args,
           "%s train --src %s --tgt %s --valid-src %s --valid-tgt %s "
           "--checkpoint %s --plot '' --max-tokens 512 --lr 2e-3 --threads 1 "
           "--model transformer --d-model 32 --heads 2 --ff 64 --enc-layers 1 "
           "--dec-layers 1 --dropout 0 %s %s",
           launch, small_src, small_tgt, valid_src, valid_tgt, ckpt,
           ranks ? "--distributed" : "", extra);
  return test_run(prog, args, TEST_OUTPUT_BOTH, out, n);
}

/* How far apart the models of two checkpoints are: the largest
 * difference, and how many of the n elements are further apart than
 * `far`. The attention key biases are left out: softmax ignores a constant
 * added to every score, so their gradient is zero but for rounding, and
 * Adam (eps 1e-9) turns that noise into steps of about lr / 2 of either
 * sign, different in any two runs that round differently. */
typedef struct {
  double worst;
  int64_t far, n;
} distance;

static distance model_distance(const char *a, const char *b, double far) {
  loom_tensor_map *x = loom_safetensors_load(a), *y = loom_safetensors_load(b);
  ck_assert_loom(x);
  ck_assert_loom(y);
  distance d = {0};
  for (int i = 0; i < loom_tensor_map_count(x); i++) {
    const char *name = loom_tensor_map_name(x, i);
    if (strncmp(name, "model.", 6))
      continue;
    loom_tensor *u = loom_tensor_map_at(x, i),
                *v = loom_tensor_map_get(y, name);
    ck_assert_msg(v && loom_same_shape(u, v), "%s differs in shape", name);
    const char *suffix = "in_proj_bias";
    size_t ln = strlen(name), ls = strlen(suffix);
    bool keyed = ln > ls && !strcmp(name + ln - ls, suffix);
    int64_t n = loom_numel(u), third = n / 3;
    loom_scope *s = loom_scope_begin(); /* element k of both, flattened */
    loom_tensor *fu = loom_reshape(u, 1, &n), *fv = loom_reshape(v, 1, &n);
    ck_assert_loom(fu);
    ck_assert_loom(fv);
    for (int64_t k = 0; k < n; k++) {
      if (keyed && k >= third && k < 2 * third)
        continue;
      int64_t at[1] = {k};
      double e = fabs(loom_get(fu, at) - loom_get(fv, at));
      d.worst = fmax(d.worst, e);
      d.far += !(e <= far); /* NaN counts as far */
      d.n++;
    }
    loom_scope_end(s);
  }
  loom_tensor_map_free(x);
  loom_tensor_map_free(y);
  return d;
}

/* Whether a run with ranks trained as one process did: all but 1% of the
 * elements within 1e-4 (a twentieth of the learning rate) of it. Not every
 * element, nor closer: the ranks sum the gradients in another order, so
 * the models differ in their last bits (1.2e-7, measured), and a ReLU unit
 * whose input lies within that of 0 for some token can be on in one run
 * and off in the other; the unit's weights then take other steps, and the
 * rest of the model a ripple of them that grows with the steps. Measured
 * over --seed 1 to 30 of these runs: with Adam's second moment rounded as
 * a product and a sum, 5 of the 30 ended with elements further than 1e-5
 * apart; rounded as one fused multiply-add (as torch does), the same 5 and
 * --seed 1, this test's. At worst 1366 of the 23056 elements (5.9%, after
 * the second epoch) further than 1e-5, 26 (0.11%) further than 1e-4, the
 * furthest 4.1e-4. A rank that loses its part of the batch leaves 97% of
 * them further than 1e-4 (measured with batches of half the tokens). */
static void expect_one_process(const char *a, const char *b, const char *what) {
  distance d = model_distance(a, b, 1e-4);
  ck_assert_msg(d.n > 0 && d.far * 100 <= d.n,
                "%s: %lld of %lld elements more than 1e-4 from one process "
                "(the furthest %g)",
                what, (long long)d.far, (long long)d.n, d.worst);
}

/* 2 ranks (each with its part of the sentence pairs of every batch) train
 * as one process: after an epoch of 5 steps the models agree (as
 * expect_one_process says); a run of 2 ranks resumed alone for a second
 * epoch, and a run of one process resumed on 2 ranks (each reading the
 * checkpoint), agree with one process's two. Rank 0 alone reports. */
START_TEST(test_distributed_trains_as_one_process) {
  char one[512], two[512], one2[512], mixed[512], grown[512], out[65536];
  test_path(one, sizeof one, "dist1.ckpt");
  test_path(two, sizeof two, "dist2.ckpt");
  test_path(one2, sizeof one2, "dist1e2.ckpt");
  test_path(mixed, sizeof mixed, "dist21.ckpt");
  test_path(grown, sizeof grown, "dist12.ckpt");
  ck_assert_msg(train_small(0, one, "--epochs 1 --quiet", out, sizeof out) == 0,
                "%s", out);
  ck_assert_msg(train_small(2, two, "--epochs 1", out, sizeof out) == 0, "%s",
                out);
  const char *said = strstr(out, "validation after 1.00 epochs");
  ck_assert_msg(said && !strstr(said + 1, "validation after"), "%s", out);
  expect_one_process(one, two, "2 ranks");
  ck_assert_int_eq(train_small(0, one2, "--epochs 2 --quiet", out, sizeof out),
                   0);
  ck_assert_int_eq(train_small(2, mixed, "--epochs 1 --quiet", out, sizeof out),
                   0);
  ck_assert_msg(train_small(0, mixed, "--epochs 2 --resume --quiet", out,
                            sizeof out) == 0,
                "%s", out);
  expect_one_process(one2, mixed, "2 ranks then 1");
  ck_assert_int_eq(train_small(0, grown, "--epochs 1 --quiet", out, sizeof out),
                   0);
  ck_assert_msg(train_small(2, grown, "--epochs 2 --resume", out, sizeof out) ==
                    0,
                "%s", out);
  said = strstr(out, "resumed from"); /* rank 0 alone */
  ck_assert_msg(said && !strstr(said + 1, "resumed from"), "%s", out);
  expect_one_process(one2, grown, "1 process then 2 ranks");
}
END_TEST

int main(void) {
  translate_exe = getenv("TRANSLATE");
  if (!translate_exe) {
    fprintf(stderr, "TRANSLATE is not set\n");
    return 1;
  }
  if (test_dir_make("translate") < 0 || setup_data() < 0)
    return 1;
  test_path(small_src, sizeof small_src, "small.src");
  test_path(small_tgt, sizeof small_tgt, "small.tgt");
  if (write_pairs(small_src, small_tgt, 300, 1) < 0)
    return 1;
  Suite *s = suite_create("translate");
  TCase *tc = tcase_create("translate");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_transformer_learns);
  tcase_add_test(tc, test_rnn_learns);
  tcase_add_test(tc, test_bpe_joint_reversible);
  tcase_add_test(tc, test_resume_is_bit_identical);
  tcase_add_test(tc, test_translate_io);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_outputs_never_overwrite_inputs);
  tcase_add_test(tc, test_outputs_checked_first);
  tcase_add_test(tc, test_checkpoint_codes_checked);
  tcase_add_test(tc, test_short_run_writes_curves);
  tcase_add_test(tc, test_positions_checked_first);
  tcase_add_test(tc, test_resume_names_differing_options);
  if (loom_dist_available() && getenv("MPIRUN") && *getenv("MPIRUN"))
    tcase_add_test(tc, test_distributed_trains_as_one_process);
  else
    fprintf(stderr, "translate --distributed: skipped (%s)\n",
            loom_dist_available() ? "no mpirun" : "loom has no MPI");
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
