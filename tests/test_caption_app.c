/* apps/caption end to end, through the built program: a short run on
 * generated shapes learns to caption held-out images, writes its
 * checkpoint, curves and contact sheet; describe and eval read the
 * checkpoint (greedy, beam, the blind controls, attention strips); a
 * resumed run is bit-identical to an uninterrupted one; bad input fails
 * with a clear message and status, never a crash. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <stb_image_write.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *caption(void) {
  const char *p = getenv("CAPTION");
  return p ? p : "./apps/caption";
}

static int run(const char *args) {
  return test_run(caption(), args, TEST_OUTPUT_NONE, NULL, 0);
}

/* Runs caption; returns its status, its output (stdout and stderr) in
 * out. */
static int run_both(const char *args, char *out, size_t n) {
  return test_run(caption(), args, TEST_OUTPUT_BOTH, out, n);
}

/* Single shapes at 24 pixels: learnt to a clear accuracy in seconds. */
#define SMALL                                                                  \
  "--objects 1 --shapes 1000 --shapes-dev 100 --shapes-test 200 "              \
  "--image-size 24 --cnn 8,16,32 --embed 32 --hidden 64 --image every "        \
  "--lr 3e-3 --dropout 0 --quiet"

static bool is_png(const char *path) {
  FILE *f = fopen(path, "rb");
  unsigned char head[8] = {0};
  bool ok = f && fread(head, 1, 8, f) == 8 && head[0] == 0x89 &&
            !memcmp(head + 1, "PNG", 3);
  if (f)
    fclose(f);
  return ok;
}

/* The exact-match percentage in a scores line, or -1. */
static double exact_match(const char *out) {
  const char *p = strstr(out, "exact match ");
  return p ? atof(p + 12) : -1;
}

START_TEST(learns_describes_and_scores) {
  char ck[512], plot[512], sheet[512], args[2048], out[8192];
  test_path(ck, sizeof ck, "m.ckpt");
  test_path(plot, sizeof plot, "curves.png");
  test_path(sheet, sizeof sheet, "sheet.png");
  snprintf(args, sizeof args,
           SMALL " --steps 400 --eval-every 200 --checkpoint %s --plot %s "
                 "--sheet %s",
           ck, plot, sheet);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  /* held-out images: 40 descriptions, 3 phrasings each, chance is ~1% */
  double acc = exact_match(out);
  ck_assert_msg(acc >= 40, "exact match %g%%: %s", acc, out);
  ck_assert(is_png(plot) && is_png(sheet));
  char best[600], vocab[600];
  snprintf(best, sizeof best, "%s.best", ck);
  snprintf(vocab, sizeof vocab, "%s.vocab", ck);
  ck_assert(access(best, R_OK) == 0 && access(vocab, R_OK) == 0);

  /* describe: a PNG and a JPEG written here, one caption a line */
  char png[512], jpg[512];
  test_path(png, sizeof png, "x.png");
  test_path(jpg, sizeof jpg, "x.jpg");
  unsigned char px[40 * 30 * 3];
  for (int i = 0; i < 40 * 30 * 3; i++)
    px[i] = (unsigned char)(i % 3 == 0 && (i / 3) % 40 > 15 ? 220 : 90);
  ck_assert(stbi_write_png(png, 40, 30, 3, px, 40 * 3));
  ck_assert(stbi_write_jpg(jpg, 40, 30, 3, px, 90));
  snprintf(args, sizeof args, "describe --checkpoint %s %s %s --beam 3", ck,
           png, jpg);
  ck_assert_int_eq(
      test_run(caption(), args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_msg(!strncmp(out, "a ", 2) || !strncmp(out, "there ", 6), "%s",
                out);
  char *nl = strchr(out, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_ptr_nonnull(strchr(nl + 1, '\n')); /* two lines */

  /* eval: greedy and beam, and the controls, with a sheet */
  char sheet2[512], lines[512];
  test_path(sheet2, sizeof sheet2, "eval.png");
  test_path(lines, sizeof lines, "captions.tsv");
  snprintf(args, sizeof args,
           "eval --checkpoint %s --controls --sheet %s --output %s --quiet", ck,
           sheet2, lines);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  /* --output: "name<TAB>caption" for each of the 200 test images */
  FILE *f = fopen(lines, "r");
  ck_assert_ptr_nonnull(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    char *tab = strchr(line, '\t');
    ck_assert_msg(
        tab && !strncmp(line, "scene", 5) &&
            (!strncmp(tab + 1, "a ", 2) || !strncmp(tab + 1, "there ", 6)),
        "%s", line);
    n++;
  }
  fclose(f);
  ck_assert_int_eq(n, 200);
  ck_assert(strstr(out, "test (greedy): 200 images  BLEU-1"));
  ck_assert(strstr(out, "control, the average image's caption"));
  ck_assert(strstr(out, "control, the best single training caption"));
  ck_assert(is_png(sheet2));
  snprintf(args, sizeof args, "eval --checkpoint %s --beam 4 --split dev", ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  ck_assert(strstr(out, "dev (beam): 100 images"));
  /* minimum-Bayes-risk choices among a beam's 4 best and 5 samples */
  snprintf(args, sizeof args, "eval --checkpoint %s --mbr 4 --split dev", ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "dev (beam, MBR of 4): 100 images"), "%s", out);
  snprintf(args, sizeof args,
           "eval --checkpoint %s --sample --mbr 5 --split dev --quiet", ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "dev (sampled, MBR of 5): 100 images"), "%s", out);
  snprintf(args, sizeof args, "describe --checkpoint %s %s --mbr 3", ck, png);
  ck_assert_int_eq(
      test_run(caption(), args, TEST_OUTPUT_STDOUT, out, sizeof out), 0);
  ck_assert_msg(!strncmp(out, "a ", 2) || !strncmp(out, "there ", 6), "%s",
                out);
  /* captions and scores that cannot be written are a failure (they exited
   * 0) */
  snprintf(args, sizeof args, "describe --checkpoint %s %s", ck, png);
  ck_assert_int_eq(test_run_stdout_full(caption(), args, out, sizeof out), 1);
  ck_assert_msg(
      strstr(out, "caption: cannot write the captions to standard output"),
      "%s", out);
  snprintf(args, sizeof args, "eval --checkpoint %s --split dev --quiet", ck);
  ck_assert_int_eq(test_run_stdout_full(caption(), args, out, sizeof out), 1);
  ck_assert_msg(
      strstr(out, "caption: cannot write the scores to standard output"), "%s",
      out);
}
END_TEST

START_TEST(attention_strips) {
  char ck[512], args[2048], strip[600], prefix[512];
  test_path(ck, sizeof ck, "a.ckpt");
  test_path(prefix, sizeof prefix, "strip");
  snprintf(args, sizeof args,
           "--objects 2 --shapes 300 --shapes-dev 20 --shapes-test 10 "
           "--image-size 32 --cnn 8,16 --embed 16 --hidden 32 --attention 16 "
           "--positions --attend after --steps 20 --quiet --plot '' --sheet '' "
           "--checkpoint %s",
           ck);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args,
           "eval --checkpoint %s --strips %s --sheet-images 2 --quiet", ck,
           prefix);
  ck_assert_int_eq(run(args), 0);
  snprintf(strip, sizeof strip, "%s-2.png", prefix);
  ck_assert(is_png(strip));
}
END_TEST

static void checkpoint_tensors_equal(const char *a, const char *b) {
  loom_tensor_map *ma = loom_safetensors_load(a);
  loom_tensor_map *mb = loom_safetensors_load(b);
  ck_assert_loom(ma);
  ck_assert_loom(mb);
  ck_assert_int_eq(loom_tensor_map_count(ma), loom_tensor_map_count(mb));
  for (int i = 0; i < loom_tensor_map_count(ma); i++) {
    const char *name = loom_tensor_map_name(ma, i);
    loom_tensor *tb = loom_tensor_map_get(mb, name);
    ck_assert_msg(tb != NULL, "%s missing after resume", name);
    ck_assert_msg(loom_equal(loom_tensor_map_at(ma, i), tb),
                  "%s differs after resume", name);
  }
  loom_tensor_map_free(ma);
  loom_tensor_map_free(mb);
}

START_TEST(resume_is_exact) {
  char a[512], b[512], args[2048];
  test_path(a, sizeof a, "ra.ckpt");
  test_path(b, sizeof b, "rb.ckpt");
  /* dropout, flips and shifts, so that the generator's state matters;
   * steps of 48 images with up to 2 of their 3 captions each: an epoch is
   * 42 steps, so the run crosses into a new order */
  const char *opts = SMALL " --dropout 0.3 --flip --shift 2 --batch 96 "
                           "--captions-per-image 2 --eval-every 30 "
                           "--plot '' --sheet ''";
  snprintf(args, sizeof args, "%s --steps 60 --checkpoint %s", opts, a);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "%s --steps 30 --checkpoint %s", opts, b);
  ck_assert_int_eq(run(args), 0);
  snprintf(args, sizeof args, "%s --steps 60 --resume --checkpoint %s", opts,
           b);
  ck_assert_int_eq(run(args), 0);
  checkpoint_tensors_equal(a, b);
  char ab[600], bb[600];
  snprintf(ab, sizeof ab, "%s.best", a);
  snprintf(bb, sizeof bb, "%s.best", b);
  checkpoint_tensors_equal(ab, bb);
}
END_TEST

START_TEST(bad_input) {
  char ck[512], args[2048], out[8192], bad[512], corrupt[512];
  test_path(ck, sizeof ck, "good.ckpt");
  snprintf(args, sizeof args,
           SMALL " --steps 2 --plot '' --sheet '' --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  /* without attention, asking for none of it is not an error */
  snprintf(args, sizeof args,
           SMALL " --no-positions --steps 1 --plot '' --sheet '' "
                 "--checkpoint %s",
           ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  snprintf(args, sizeof args,
           SMALL " --attend before --steps 1 --plot '' --sheet '' "
                 "--checkpoint %s",
           ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  /* with several captions a step, the rate is of pairs, not images */
  char pairs_ck[512];
  test_path(pairs_ck, sizeof pairs_ck, "pairs.ckpt");
  snprintf(args, sizeof args,
           "--objects 1 --shapes 100 --shapes-dev 10 --shapes-test 10 "
           "--image-size 24 --cnn 8,16,32 --embed 32 --hidden 64 "
           "--captions-per-image 2 --steps 2 --plot '' --sheet '' "
           "--checkpoint %s",
           pairs_ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  ck_assert_msg(strstr(out, " pairs/s while training"), "%s", out);
  const struct {
    const char *args;
    int status;
    const char *says;
  } cases[] = {
      {"frobnicate", 2, "command 'frobnicate' is not one of"},
      {"--steps 0", 2, "--steps '0' is not an integer in 1.."},
      {"--lr -1", 2, "--lr '-1' is not a number in (0, 10]"},
      {"--objects 4", 2, "--objects '4' is not an integer in 1..3"},
      {"--cnn 8,x", 2, "--cnn '8,x' is not 1 to 6 channel counts"},
      {"--image sideways", 2, "--image 'sideways' is not one of"},
      {"--mbr 0", 2, "--mbr '0' is not an integer in 1..1000"},
      {"--captions-per-image 65", 2,
       "--captions-per-image 65: must be in [1, 64] (--batch)"},
      {"--positions --steps 1 --quiet", 1,
       "positions and attend after need attention"},
      {"--data /nonexistent/flickr --steps 1", 1,
       "/nonexistent/flickr: no split"},
      /* the cause named (it listed the whole config and blamed
       * attention) */
      {"--data shapes --image-size 8 --cnn 8,8,8,8 --steps 1 --quiet", 1,
       "an image of side 8 shrinks to 0 pixels through 4 CNN blocks "
       "(8/2^4): the image size must be at least 16 for 4 blocks "
       "(--image-size), or the blocks fewer (--cnn)"},
      {"describe", 2, "describe needs at least one image file"},
      {"eval --checkpoint /nonexistent.ckpt", 1, "/nonexistent.ckpt"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    ck_assert_msg(run_both(cases[k].args, out, sizeof out) == cases[k].status,
                  "%s: %s", cases[k].args, out);
    ck_assert_msg(strstr(out, cases[k].says), "%s: '%s' lacks '%s'",
                  cases[k].args, out, cases[k].says);
  }
  /* a file that is not a checkpoint; a corrupt image to describe */
  test_path(bad, sizeof bad, "bad.ckpt");
  test_write_file(bad, "not a checkpoint", 16);
  snprintf(args, sizeof args, "eval --checkpoint %s", bad);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert(strstr(out, bad));
  test_path(corrupt, sizeof corrupt, "corrupt.jpg");
  test_write_file(corrupt, "\xff\xd8\xff\xe0 garbage", 12);
  snprintf(args, sizeof args, "describe --checkpoint %s %s", ck, corrupt);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "corrupt.jpg: "), "%s", out);
  /* resuming with other model options is refused, each named with both
   * values (they were only said to differ) */
  snprintf(args, sizeof args,
           SMALL " --hidden 65 --embed 31 --steps 4 --resume --plot '' "
                 "--sheet '' --checkpoint %s",
           ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "the model options differ: --embed 31, the "
                            "checkpoint has 32; --hidden 65, the checkpoint "
                            "has 64\n"),
                "%s", out);
  /* a picture that cannot be written makes the status 1 */
  snprintf(args, sizeof args,
           SMALL " --steps 2 --plot /nonexistent/dir/p.png --sheet '' "
                 "--checkpoint %s",
           ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "/nonexistent/dir/p.png"), "%s", out);
}
END_TEST

/* A copy of checkpoint `from` and its vocabulary at `to`, its model line
 * without positions= and attend= (as checkpoints before those options
 * were written) and with `more` appended. */
static void with_model_line(const char *from, const char *to,
                            const char *more) {
  loom_tensor_map *m = loom_safetensors_load(from);
  ck_assert_ptr_nonnull(m);
  const char *line = loom_tensor_map_meta(m, "extra.caption.model");
  ck_assert_ptr_nonnull(line);
  char edited[1024] = "", token[256];
  for (const char *p = line; *p;) {
    size_t len = strcspn(p, " ");
    ck_assert_uint_lt(len, sizeof token);
    memcpy(token, p, len);
    token[len] = 0;
    if (strncmp(token, "positions=", 10) && strncmp(token, "attend=", 7)) {
      size_t at = strlen(edited);
      snprintf(edited + at, sizeof edited - at, "%s%s", at ? " " : "", token);
    }
    p += len + (p[len] == ' ');
  }
  size_t at = strlen(edited);
  snprintf(edited + at, sizeof edited - at, "%s", more);
  ck_assert_int_eq(loom_tensor_map_set_meta(m, "extra.caption.model", edited),
                   0);
  ck_assert_int_eq(loom_safetensors_save(to, m), 0);
  loom_tensor_map_free(m);
  char vocab_from[600], vocab_to[600];
  snprintf(vocab_from, sizeof vocab_from, "%s.vocab", from);
  snprintf(vocab_to, sizeof vocab_to, "%s.vocab", to);
  size_t len;
  char *vocab = test_slurp(vocab_from, &len);
  test_write_file(vocab_to, vocab, len);
  free(vocab);
}

/* The optional fields of the model line: absent, they take their defaults
 * (a checkpoint from before them loads); present but too long to read,
 * they make the checkpoint malformed (they had been taken as absent, so a
 * corrupt file loaded as a model with other options). */
START_TEST(optional_model_fields) {
  char ck[512], edited[512], args[2048], out[8192];
  test_path(ck, sizeof ck, "fields.ckpt");
  test_path(edited, sizeof edited, "edited.ckpt");
  snprintf(args, sizeof args,
           SMALL " --steps 1 --plot '' --sheet '' --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  char digits[101] = {0}, word[81] = {0}, more[200];
  memset(digits, '0', 100);
  memset(word, 'b', 80);
  with_model_line(ck, edited, "");
  snprintf(args, sizeof args, "eval --checkpoint %s --split dev --quiet",
           edited);
  ck_assert_msg(run_both(args, out, sizeof out) == 0, "%s", out);
  const char *keys[2] = {"positions", "attend"};
  for (int k = 0; k < 2; k++) {
    snprintf(more, sizeof more, " %s=%s", keys[k], k ? word : digits);
    with_model_line(ck, edited, more);
    ck_assert_msg(run_both(args, out, sizeof out) == 1, "%s: %s", more, out);
    char says[64];
    snprintf(says, sizeof says, ": %s is ", keys[k]);
    ck_assert_msg(strstr(out, says), "'%s' lacks '%s'", out, says);
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
static void expect_refused(const char *args, const char *victim,
                           const char *says) {
  char out[8192], want[2048];
  size_t before_len, after_len;
  char *before = test_slurp(victim, &before_len);
  int rc = run_both(args, out, sizeof out);
  char *after = test_slurp(victim, &after_len);
  ck_assert_msg(rc == 2, "exit %d, not 2, for %s: %s", rc, args, out);
  snprintf(want, sizeof want, says, victim);
  ck_assert_msg(strstr(out, want), "'%s' lacks '%s' (%s)", out, want, args);
  ck_assert_msg(before_len == after_len && !memcmp(before, after, before_len),
                "%s changed by %s", victim, args);
  free(before);
  free(after);
}

/* No output may be an input, nor another output, however named: the
 * checkpoint (and FILE.vocab) eval and describe read, the data's files,
 * the images described; the derived names training writes (FILE.vocab,
 * FILE.best), the strips (PREFIX-K.png). Each had been overwritten with
 * exit status 0. */
START_TEST(outputs_never_overwrite_inputs) {
  char ck[512], vocab[600], link_path[512], png[512], other[512], best[600],
      captions[512], strip_ck[600], strip_vocab[700], prefix[512], image[600],
      args[4096];
  test_path(ck, sizeof ck, "ow.ckpt");
  snprintf(vocab, sizeof vocab, "%s.vocab", ck);
  snprintf(args, sizeof args,
           SMALL " --steps 1 --plot '' --sheet '' --checkpoint %s", ck);
  ck_assert_int_eq(run(args), 0);
  /* eval: --output and --sheet against the checkpoint and each other */
  snprintf(args, sizeof args,
           "eval --checkpoint %s --output %s --sheet '' --quiet", ck, ck);
  expect_refused(args, ck, "--output %s is the --checkpoint file");
  snprintf(args, sizeof args, "eval --checkpoint %s --sheet %s --quiet", ck,
           ck);
  expect_refused(args, ck, "--sheet %s is the --checkpoint file");
  snprintf(args, sizeof args,
           "eval --checkpoint %s --output %s --sheet '' --quiet", ck, vocab);
  expect_refused(args, vocab,
                 "--output %s is the --checkpoint (FILE.vocab) file");
  test_path(png, sizeof png, "ow-sheet.png");
  test_write_file(png, "an earlier sheet", 16);
  snprintf(args, sizeof args,
           "eval --checkpoint %s --sheet %s --output %s --quiet", ck, png, png);
  expect_refused(args, png, "--sheet %s is the --output file");
  /* the same file by another name */
  test_path(link_path, sizeof link_path, "ow-link.ckpt");
  ck_assert_int_eq(link(ck, link_path), 0);
  snprintf(args, sizeof args,
           "eval --checkpoint %s --output %s --sheet '' --quiet", ck,
           link_path);
  expect_refused(args, link_path, "--output %s is the --checkpoint file");
  /* a strip's name is the checkpoint's */
  test_path(prefix, sizeof prefix, "ow-strip");
  snprintf(strip_ck, sizeof strip_ck, "%s-2.png", prefix);
  snprintf(strip_vocab, sizeof strip_vocab, "%s.vocab", strip_ck);
  copy_file(ck, strip_ck);
  copy_file(vocab, strip_vocab);
  snprintf(args, sizeof args,
           "eval --checkpoint %s --strips %s --sheet-images 3 --sheet '' "
           "--quiet",
           strip_ck, prefix);
  expect_refused(args, strip_ck,
                 "--strips (PREFIX-K.png) %s is the --checkpoint file");
  /* describe: a strip's name is an image's */
  snprintf(image, sizeof image, "%s-1.png", prefix);
  test_write_file(image, "an image", 8);
  snprintf(args, sizeof args, "describe --checkpoint %s --strips %s %s", ck,
           prefix, image);
  expect_refused(args, image, "--strips (PREFIX-K.png) %s is the image file");
  /* train: the plot, the sheet and the derived names */
  snprintf(args, sizeof args,
           SMALL " --steps 1 --plot %s --sheet '' --checkpoint %s", ck, ck);
  expect_refused(args, ck, "--plot %s is the --checkpoint file");
  snprintf(args, sizeof args,
           SMALL " --steps 1 --plot %s --sheet '' --checkpoint %s", vocab, ck);
  expect_refused(args, vocab,
                 "--plot %s is the --checkpoint (FILE.vocab) file");
  test_path(other, sizeof other, "ow-other.ckpt");
  snprintf(best, sizeof best, "%s.best", other);
  copy_file(ck, best);
  snprintf(args, sizeof args,
           SMALL " --steps 1 --plot '' --sheet %s --checkpoint %s", best,
           other);
  expect_refused(args, best, "--sheet %s is the --checkpoint (FILE.best) file");
  /* and the data's files */
  test_path(captions, sizeof captions, "ow-captions.txt");
  test_write_file(captions, "a.jpg#0\ta dog\n", 14);
  snprintf(args, sizeof args,
           "--captions %s --steps 1 --plot '' --sheet '' --checkpoint %s",
           captions, captions);
  expect_refused(args, captions, "--checkpoint %s is the --captions file");
}
END_TEST

/* An output that is a file --data DIR holds is refused though no flag
 * names it (only the flags' files were checked): the split, the captions,
 * the raw arrays, the image archives. The files need not be valid: the
 * refusal comes before they are read. */
START_TEST(outputs_are_not_data_folder_files) {
  char dir[512], lists[512], file[700], args[4096];
  test_path(dir, sizeof dir, "flickr");
  test_path(lists, sizeof lists, "flickr-lists");
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  ck_assert_int_eq(mkdir(lists, 0755), 0);
  const char *names[] = {"images.tsv", "captions.txt",
                         "images_24x24_rgb_chw.u8", "images_jpeg.part0.tar"};
  const char *flags[] = {"--plot", "--sheet", "--checkpoint", "--plot"};
  for (int k = 0; k < 4; k++) {
    snprintf(file, sizeof file, "%s/%s", dir, names[k]);
    test_write_file(file, "data", 4);
  }
  for (int k = 0; k < 4; k++) {
    char says[200];
    snprintf(file, sizeof file, "%s/%s", dir, names[k]);
    snprintf(says, sizeof says, "%s %%s is the --data (%s) file", flags[k],
             names[k]);
    snprintf(args, sizeof args,
             "--data %s --image-size 24 --steps 1 --plot '' --sheet '' "
             "--checkpoint %s/c.ckpt %s %s",
             dir, test_dir, flags[k], file);
    expect_refused(args, file, says);
  }
  /* the official lists and Flickr8k's captions file */
  snprintf(file, sizeof file, "%s/Flickr8k.token.txt", lists);
  test_write_file(file, "data", 4);
  snprintf(args, sizeof args,
           "--data %s --steps 1 --plot '' --sheet %s --checkpoint %s/c.ckpt",
           lists, file, test_dir);
  expect_refused(args, file, "--sheet %s is the --data (Flickr8k.token.txt)");
  snprintf(file, sizeof file, "%s/Flickr_8k.devImages.txt", lists);
  test_write_file(file, "data", 4);
  snprintf(args, sizeof args,
           "--data %s --steps 1 --plot %s --sheet '' --checkpoint %s/c.ckpt",
           lists, file, test_dir);
  expect_refused(args, file,
                 "--plot %s is the --data (Flickr_8k.devImages.txt)");
  snprintf(file, sizeof file, "%s/c.ckpt", test_dir);
  ck_assert_int_ne(access(file, F_OK), 0);
}
END_TEST

/* Files written after the work, in a folder that is missing or that are
 * folders, are refused before it (train wrote them after training, eval
 * after scoring the split): status 1, or 2 for '' where a name is needed,
 * and nothing written. */
START_TEST(outputs_checked_first) {
  char ck[512], args[4096], flags[1200], says[1600], out[8192];
  test_path(ck, sizeof ck, "first.ckpt");
  const char *train = SMALL " --steps 100000 --plot '' --sheet ''";
  const struct {
    const char *flags, *says;
    int status;
  } cases[] = {
      {"--checkpoint %s/missing/c.ckpt",
       "cannot write --checkpoint %s/missing/c.ckpt: the folder %s/missing: "
       "No such file",
       1},
      {"--checkpoint ''", "--checkpoint '' is not a file name", 2},
      {"--checkpoint %s/first.ckpt --plot %s/missing/p.png",
       "cannot write --plot %s/missing/p.png: the folder %s/missing", 1},
      {"--checkpoint %s/first.ckpt --sheet %s", "--sheet %s: it is a folder",
       1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    snprintf(flags, sizeof flags, cases[i].flags, test_dir, test_dir);
    snprintf(says, sizeof says, cases[i].says, test_dir, test_dir);
    snprintf(args, sizeof args, "%s %s", train, flags);
    int rc = run_both(args, out, sizeof out);
    ck_assert_msg(rc == cases[i].status && strstr(out, says), "%d %s: %s", rc,
                  args, out);
  }
  ck_assert_int_ne(access(ck, F_OK), 0);
  /* eval, with a checkpoint of a step of a tiny model */
  snprintf(args, sizeof args,
           "--shapes 16 --shapes-dev 4 --shapes-test 4 --image-size 16 --cnn 4 "
           "--embed 8 --hidden 8 --quiet --steps 1 --plot '' --sheet '' "
           "--checkpoint %s",
           ck);
  ck_assert_int_eq(run(args), 0);
  const struct {
    const char *flags, *says;
    int status;
  } evals[] = {
      {"--output %s/missing/o.txt", "--output %s/missing/o.txt: the folder", 1},
      {"--output ''", "--output '' is not a file name", 2},
      {"--output %s", "--output %s: it is a folder", 1},
      {"--sheet %s/missing/s.png", "--sheet %s/missing/s.png: the folder", 1},
      {"--strips %s/missing/s",
       "--strips (PREFIX-K.png) %s/missing/s-1.png: the folder", 1},
  };
  for (size_t i = 0; i < sizeof evals / sizeof *evals; i++) {
    snprintf(flags, sizeof flags, evals[i].flags, test_dir);
    snprintf(says, sizeof says, evals[i].says, test_dir);
    snprintf(args, sizeof args, "eval --checkpoint %s --quiet %s", ck, flags);
    int rc = run_both(args, out, sizeof out);
    ck_assert_msg(rc == evals[i].status && strstr(out, says) &&
                      !strstr(out, "BLEU"),
                  "%d %s: %s", rc, args, out);
  }
}
END_TEST

/* An output that needs a split the data leaves empty: the sheet (the test
 * split) is refused before training, not found missing after it with
 * status 0; the plateau schedule without dev scores likewise; FILE.best
 * without a dev split is said not to be written. Refused runs write no
 * checkpoint: they end before the training. */
START_TEST(empty_splits_said_first) {
  char ck[512], sheet[512], best[600], args[4096], out[8192];
  test_path(ck, sizeof ck, "split.ckpt");
  test_path(sheet, sizeof sheet, "split-sheet.png");
  snprintf(best, sizeof best, "%s.best", ck);
  const char *tiny = "--shapes 16 --image-size 16 --cnn 4 --embed 8 "
                     "--hidden 8 --quiet --plot ''";
  snprintf(args, sizeof args,
           "%s --shapes-test 0 --steps 2 --sheet %s --checkpoint %s", tiny,
           sheet, ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "draws the test split, which has no images "
                            "(--sheet '' for none)"),
                "%s", out);
  snprintf(args, sizeof args,
           "%s --shapes-dev 0 --schedule plateau --steps 2 --sheet '' "
           "--checkpoint %s",
           tiny, ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 1);
  ck_assert_msg(strstr(out, "--schedule plateau steps on the dev BLEU-4, but "
                            "the dev split has no images"),
                "%s", out);
  ck_assert_int_ne(access(ck, F_OK), 0);
  ck_assert_int_ne(access(sheet, F_OK), 0);
  snprintf(args, sizeof args,
           "%s --shapes-dev 0 --steps 1 --sheet %s --checkpoint %s", tiny,
           sheet, ck);
  ck_assert_int_eq(run_both(args, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "the dev split has no images: no dev scores, and "
                            "no "),
                "%s", out);
  ck_assert_msg(strstr(out, best), "%s", out);
  ck_assert(is_png(sheet));
  ck_assert_int_eq(access(ck, F_OK), 0);
  ck_assert_int_ne(access(best, F_OK), 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("caption_app");
  TCase *t = tcase_create("app");
  tcase_set_timeout(t, 900);
  tcase_add_test(t, learns_describes_and_scores);
  tcase_add_test(t, attention_strips);
  tcase_add_test(t, resume_is_exact);
  tcase_add_test(t, bad_input);
  tcase_add_test(t, optional_model_fields);
  tcase_add_test(t, outputs_never_overwrite_inputs);
  tcase_add_test(t, outputs_are_not_data_folder_files);
  tcase_add_test(t, outputs_checked_first);
  tcase_add_test(t, empty_splits_said_first);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  if (test_dir_make("caption-app") < 0)
    return 1;
  int rc = loom_run_suite(suite());
  test_dir_remove();
  return rc;
}
