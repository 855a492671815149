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
  } cases[] = {{"extra.position", -5, 1},
               {"extra.position", INT64_MAX, 1},
               {"step", -3, 1},
               {"extra.position", (int64_t)1 << 40, 0}};
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
      ck_assert_msg(strstr(out, "no valid position or step"), "%s", out);
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

int main(void) {
  if (test_dir_make("charlm") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("charlm");
  TCase *tc = tcase_create("app");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_resume_is_exact);
  tcase_add_test(tc, test_resume_refuses_bad_checkpoints);
  tcase_add_test(tc, test_sampling_is_deterministic);
  tcase_add_test(tc, test_transformer);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_refuses_bad_numbers);
  tcase_add_test(tc, test_tinyshakespeare_learns);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
