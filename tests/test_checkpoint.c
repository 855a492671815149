/* safetensors files and training checkpoints: round trips, every kind of
 * malformed file (each a clear error, never a crash or an out-of-bounds
 * read; this suite also runs under ASan and valgrind), and a resumed
 * training run that continues bit-identically. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"
#include "state_snapshot.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A file image: 8-byte length, the header text, then `data` bytes. */
static size_t image(unsigned char *buf, const char *header, size_t data) {
  uint64_t n = strlen(header);
  memcpy(buf, &n, 8);
  memcpy(buf + 8, header, n);
  for (size_t i = 0; i < data; i++)
    buf[8 + n + i] = (unsigned char)(i * 37 + 1);
  return 8 + n + data;
}

/* Parsing must fail with a format error whose message contains `want`. */
static void expect_bad(const char *header, size_t data, const char *want) {
  unsigned char buf[4096];
  size_t len = image(buf, header, data);
  loom_clear_error();
  loom_tensor_map *m = loom_safetensors_parse(buf, len, "test.safetensors");
  ck_assert_msg(m == NULL, "accepted: %s", header);
  ck_assert_msg(loom_last_status() == LOOM_ERR_FORMAT, "%s: status %d (%s)",
                header, loom_last_status(), loom_last_error());
  ck_assert_msg(strstr(loom_last_error(), want) != NULL,
                "%s: message '%s' lacks '%s'", header, loom_last_error(), want);
  ck_assert_msg(strstr(loom_last_error(), "test.safetensors") != NULL,
                "message names the file: %s", loom_last_error());
  loom_clear_error();
}

START_TEST(test_round_trip) {
  loom_tensor_map *m = loom_tensor_map_new();
  loom_tensor *a = loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(3, 4));
  loom_tensor *t = loom_transpose(a, 0, 1); /* saved contiguous */
  loom_tensor *d = loom_arange(LOOM_F64, 0, 5, 0.5);
  loom_tensor *i = loom_arange(LOOM_I64, -3, 3, 1);
  loom_tensor *u = loom_full(LOOM_U8, 200, LOOM_SHAPE(2, 2));
  loom_tensor *b = loom_gt_scalar(i, 0);
  loom_tensor *s = loom_scalar(LOOM_F32, 2.5);
  loom_tensor_map_set(m, "weights.transposed", t);
  loom_tensor_map_set(m, "double", d);
  loom_tensor_map_set(m, "ints", i);
  loom_tensor_map_set(m, "bytes", u);
  loom_tensor_map_set(m, "mask", b);
  loom_tensor_map_set(m, "scalar", s);
  loom_tensor_map_set(m, "empty", loom_zeros(LOOM_F32, LOOM_SHAPE(0, 3)));
  loom_tensor_map_set_meta(m, "note", "quotes \" and \\ and \xc3\xa9");
  char path[512];
  test_path(path, sizeof path, "rt.safetensors");
  ck_assert_int_eq(loom_safetensors_save(path, m), 0);
  loom_tensor_map *r = loom_safetensors_load(path);
  ck_assert_loom(r);
  ck_assert_int_eq(loom_tensor_map_count(r), 7);
  ck_assert(loom_equal(loom_tensor_map_get(r, "weights.transposed"), t));
  ck_assert(loom_equal(loom_tensor_map_get(r, "double"), d));
  ck_assert(loom_equal(loom_tensor_map_get(r, "ints"), i));
  ck_assert(loom_equal(loom_tensor_map_get(r, "bytes"), u));
  ck_assert_int_eq(loom_dtype_of(loom_tensor_map_get(r, "mask")), LOOM_BOOL);
  ck_assert(loom_equal(loom_tensor_map_get(r, "mask"), b));
  ck_assert_int_eq(loom_ndim(loom_tensor_map_get(r, "scalar")), 0);
  ck_assert_int_eq(loom_numel(loom_tensor_map_get(r, "empty")), 0);
  ck_assert_str_eq(loom_tensor_map_meta(r, "note"),
                   "quotes \" and \\ and \xc3\xa9");
  /* the writer leaves no temporary file behind */
  char tmp[600];
  snprintf(tmp, sizeof tmp, "ls %s | grep -c tmp > /dev/null", test_dir);
  ck_assert_int_ne(system(tmp), 0);
  loom_tensor_map_free(m);
  loom_tensor_map_free(r);
}
END_TEST

/* int32 is read and written as I32, exactly: the bytes PyTorch's
 * safetensors writes for a torch.int32 tensor load as int32, and a file
 * loom writes reads back, and saves again, bit for bit. */
START_TEST(test_int32_files) {
  const char *header = "{\"n\":{\"dtype\":\"I32\",\"shape\":[2,2],"
                       "\"data_offsets\":[0,16]}}";
  const int32_t values[4] = {INT32_MIN, -1, 7, INT32_MAX};
  unsigned char buf[256];
  size_t len = image(buf, header, 0);
  memcpy(buf + len, values, sizeof values); /* little-endian, as on disk */
  len += sizeof values;
  loom_tensor_map *m = loom_safetensors_parse(buf, len, "i32.safetensors");
  ck_assert_loom(m);
  loom_tensor *n = loom_tensor_map_get(m, "n");
  ck_assert_int_eq(loom_dtype_of(n), LOOM_I32);
  ck_assert_int_eq(loom_size(n, 1), 2);
  ck_assert_int_eq(memcmp(loom_data_i32(n), values, sizeof values), 0);
  expect_bad("{\"n\":{\"dtype\":\"I32\",\"shape\":[3],"
             "\"data_offsets\":[0,8]}}",
             8, "shape needs 12");

  /* a strided int32 tensor is saved contiguous; the file names I32 */
  loom_tensor_map_set(m, "t", loom_transpose(n, 0, 1));
  char path[512], again[512];
  test_path(path, sizeof path, "i32.safetensors");
  test_path(again, sizeof again, "i32_again.safetensors");
  ck_assert_int_eq(loom_safetensors_save(path, m), 0);
  loom_tensor_map *r = loom_safetensors_load(path);
  ck_assert_loom(r);
  loom_tensor *t = loom_tensor_map_get(r, "t");
  ck_assert_int_eq(loom_dtype_of(t), LOOM_I32);
  ck_assert_int_eq(loom_data_i32(t)[1], 7);
  ck_assert(loom_equal(loom_tensor_map_get(r, "n"), n));
  ck_assert_int_eq(loom_safetensors_save(again, r), 0);
  size_t size = 0, size_again = 0;
  char *bytes = test_slurp(path, &size),
       *bytes_again = test_slurp(again, &size_again);
  ck_assert(bytes && bytes_again && size == size_again);
  ck_assert_int_eq(memcmp(bytes, bytes_again, size), 0);
  ck_assert_ptr_nonnull(strstr(bytes + 8, "\"dtype\":\"I32\""));
  free(bytes);
  free(bytes_again);
  loom_tensor_map_free(r);
  loom_tensor_map_free(m);
}
END_TEST

START_TEST(test_malformed_headers) {
  const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                   "\"data_offsets\":[0,8]}}";
  unsigned char buf[512];
  size_t len = image(buf, ok, 8);
  loom_tensor_map *m = loom_safetensors_parse(buf, len, "test.safetensors");
  ck_assert_loom(m); /* the baseline is valid */
  loom_tensor_map_free(m);

  expect_bad("{}", 8, "cover 0 data bytes"); /* trailing data */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}",
             8, "JSON");
  expect_bad("[1,2]", 0, "not a JSON object");
  expect_bad("{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             8, "unknown dtype");
  expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],"
             "\"data_offsets\":[0,8]}}",
             8, "bad size");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],"
             "\"data_offsets\":[0,8]}}",
             8, "bad size");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
             "\"data_offsets\":[0,4]}}",
             4, "shape");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
             "\"data_offsets\":[0,8]}}",
             8, "shape needs 12");
  /* no bytes, but strides past 2^63 (found by fuzzing) */
  expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296],"
             "\"data_offsets\":[0,0]}}",
             0, "too large");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,800]}}",
             8, "800");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[8,0]}}",
             8, "data_offsets");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0]}}",
             8, "data_offsets");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12, "overlaps");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[12,16]}}",
             16, "gap");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[8,16]}}",
             16, "twice");
  expect_bad("{\"__metadata__\":[1],\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,8]}}",
             8, "__metadata__");
  expect_bad("{\"__metadata__\":{\"k\":3},\"a\":{\"dtype\":\"F32\","
             "\"shape\":[2],\"data_offsets\":[0,8]}}",
             8, "strings");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
             "\"data_offsets\":[0,8]}}",
             8, "bad size");
  expect_bad("{\"a\":\"x\\q\"}", 0, "escape");
}
END_TEST

/* A map holds only names a safetensors file can: "__metadata__" had been
 * taken and written beside the metadata object of that name (a file load
 * then refused), and the JSON header holds only UTF-8. Any other name
 * round-trips, quotes, backslashes, control characters, non-ASCII and the
 * empty name included; the reader takes the metadata key however it is
 * escaped, and refuses a name that is not UTF-8 as a format error. */
START_TEST(test_tensor_names) {
  loom_tensor_map *m = loom_tensor_map_new();
  loom_tensor *one = loom_ones(LOOM_F32, LOOM_SHAPE(3));
  static const char *const refused[] = {"__metadata__",
                                        "\xff",
                                        "caf\xc3",
                                        "\xc0\xaf" /* overlong */,
                                        "\xed\xa0\x80" /* a surrogate */,
                                        "\xf4\x90\x80\x80" /* > U+10FFFF */};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    ck_assert_int_eq(loom_tensor_map_set(m, refused[i], one), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    ck_assert_msg(strstr(loom_last_error(), "tensor_map_set"), "%s",
                  loom_last_error());
    loom_clear_error();
  }
  ck_assert_int_eq(loom_tensor_map_count(m), 0);
  static const char *const names[] = {
      "a",           "",
      "q\"uote",     "back\\slash",
      "tab\tline\n", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa7\xb5",
      "__metadata",  "q\"\\\xc3\xa9"};
  enum { N = sizeof names / sizeof *names };
  loom_tensor *ts[N];
  for (int i = 0; i < N; i++) {
    ts[i] = loom_full(LOOM_F32, i, LOOM_SHAPE(i + 1));
    ck_assert_int_eq(loom_tensor_map_set(m, names[i], ts[i]), 0);
  }
  ck_assert_int_eq(loom_tensor_map_set_meta(m, "__metadata__", "a key"), 0);
  char path[512];
  test_path(path, sizeof path, "names.safetensors");
  ck_assert_msg(loom_safetensors_save(path, m) == 0, "%s", loom_last_error());
  loom_tensor_map *r = loom_safetensors_load(path);
  ck_assert_loom(r);
  ck_assert_int_eq(loom_tensor_map_count(r), N);
  for (int i = 0; i < N; i++) {
    ck_assert_str_eq(loom_tensor_map_name(r, i), names[i]);
    ck_assert(loom_equal(loom_tensor_map_get(r, names[i]), ts[i]));
  }
  ck_assert_str_eq(loom_tensor_map_meta(r, "__metadata__"), "a key");
  loom_tensor_map_free(r);
  loom_tensor_map_free(m);

  /* the metadata key escaped is still the metadata key */
  unsigned char buf[256];
  size_t len = image(buf,
                     "{\"\\u005f_metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":"
                     "\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                     4);
  r = loom_safetensors_parse(buf, len, "test.safetensors");
  ck_assert_loom(r);
  ck_assert_int_eq(loom_tensor_map_count(r), 1);
  ck_assert_str_eq(loom_tensor_map_meta(r, "k"), "v");
  loom_tensor_map_free(r);
  expect_bad("{\"__metadata__\":{},\"\\u005f_metadata__\":{}}", 0, "twice");
  expect_bad("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[0,4]}}",
             4, "not valid UTF-8");
  expect_bad("{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[0,4]}}",
             4, "not valid UTF-8");
  /* a NUL no C string holds: "a\u0000b" had loaded as "a" (and two such
   * names as one) */
  expect_bad("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[0,4]}}",
             4, "holds a NUL");
  expect_bad("{\"__metadata__\":{\"k\":\"v\\u0000w\"}}", 0, "without \\u0000");
}
END_TEST

START_TEST(test_lengths_checked_first) {
  unsigned char buf[64];
  uint64_t huge = (uint64_t)1 << 62;
  memcpy(buf, &huge, 8);
  memcpy(buf + 8, "{}", 2);
  ck_assert_ptr_null(loom_safetensors_parse(buf, 10, "test.safetensors"));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_FORMAT);
  ck_assert(strstr(loom_last_error(), "exceeds the file") != NULL);
  loom_clear_error();
  ck_assert_ptr_null(loom_safetensors_parse(buf, 5, "test.safetensors"));
  ck_assert(strstr(loom_last_error(), "too short") != NULL);
  loom_clear_error();
  ck_assert_ptr_null(loom_safetensors_load("/nonexistent/dir/file"));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  loom_clear_error();
}
END_TEST

/* Every truncation of a valid file fails cleanly; random corruptions never
 * crash (ASan/valgrind watch the reads). */
START_TEST(test_truncated_and_corrupted) {
  loom_tensor_map *m = loom_tensor_map_new();
  loom_tensor_map_set(m, "w",
                      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(3, 5)));
  loom_tensor_map_set(m, "i", loom_arange(LOOM_I64, 0, 7, 1));
  loom_tensor_map_set_meta(m, "k", "v");
  char path[512];
  test_path(path, sizeof path, "valid.safetensors");
  ck_assert_int_eq(loom_safetensors_save(path, m), 0);
  loom_tensor_map_free(m);
  FILE *f = fopen(path, "rb");
  unsigned char buf[4096];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  for (size_t cut = 0; cut < len; cut++) {
    ck_assert_ptr_null(loom_safetensors_parse(buf, cut, "cut"));
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_FORMAT);
    loom_clear_error();
  }
  loom_rng *g = loom_rng_new(5);
  for (int trial = 0; trial < 2000; trial++) {
    unsigned char bad[4096];
    memcpy(bad, buf, len);
    int flips = 1 + (int)(loom_rng_u64(g) % 3);
    for (int k = 0; k < flips; k++)
      bad[loom_rng_u64(g) % len] = (unsigned char)loom_rng_u64(g);
    loom_tensor_map *r = loom_safetensors_parse(bad, len, "fuzz");
    if (r) { /* whatever parsed must be self-consistent */
      for (int i = 0; i < loom_tensor_map_count(r); i++)
        ck_assert_int_ge(loom_numel(loom_tensor_map_at(r, i)), 0);
      loom_tensor_map_free(r);
    }
    loom_clear_error();
  }
  loom_rng_free(g);
}
END_TEST

/* ---- resume determinism ---- */

typedef struct {
  loom_module base;
  loom_linear_layer *a, *b;
  loom_dropout_layer *drop;
} net;

static net *net_new(loom_rng *g) {
  net *n = calloc(1, sizeof *n);
  loom_module_init(&n->base, "Net", NULL);
  n->a = (loom_linear_layer *)loom_module_add_child(
      &n->base, "a", (loom_module *)loom_linear_layer_new(6, 16, true));
  n->drop = (loom_dropout_layer *)loom_module_add_child(
      &n->base, "drop", (loom_module *)loom_dropout_layer_new(0.3, g));
  n->b = (loom_linear_layer *)loom_module_add_child(
      &n->base, "b", (loom_module *)loom_linear_layer_new(16, 3, true));
  return n;
}

static void train_steps(net *n, loom_optimizer *opt, loom_schedule *sched,
                        loom_rng *data, int steps) {
  for (int s = 0; s < steps; s++) {
    loom_scope *sc = loom_scope_begin();
    loom_tensor *x = loom_randn(data, LOOM_F32, 0, 1, LOOM_SHAPE(8, 6));
    loom_tensor *y = loom_randint(data, LOOM_I64, 0, 3, LOOM_SHAPE(8));
    loom_tensor *h = loom_dropout_layer_forward(
        n->drop, loom_tanh(loom_linear_layer_forward(n->a, x)));
    loom_tensor *loss =
        loom_cross_entropy(loom_linear_layer_forward(n->b, h), y, NULL);
    loom_optimizer_zero_grad(opt);
    ck_assert_int_eq(loom_backward(loss), 0);
    ck_assert_int_eq(loom_optimizer_step(opt), 0);
    loom_schedule_step(sched, 0);
    loom_scope_end(sc);
  }
}

static loom_optimizer *make_opt(net *n) {
  loom_tensor *ps[8];
  int np = loom_module_parameters(&n->base, ps, 8);
  loom_adam_opts o = loom_adamw_defaults(0.01);
  o.amsgrad = true;
  return loom_adamw_new(ps, np, o);
}

static loom_schedule *make_sched(loom_optimizer *opt) {
  loom_schedule_opts s = loom_schedule_defaults(LOOM_SCHEDULE_STEP);
  s.step_size = 4;
  s.gamma = 0.5;
  return loom_schedule_new(opt, s);
}

/* Counters read back from a file are checked before use (fuzzing found a
 * schedule epoch of 4e252 converted to an integer): a negative step, a
 * NaN, negative or infinite learning rate, an epoch that is not a whole
 * count. */
START_TEST(test_tampered_counters_refused) {
  loom_manual_seed(3);
  net *n = net_new(NULL);
  loom_optimizer *o = make_opt(n);
  loom_schedule *s = make_sched(o);
  for (int c = 0; c < 10; c++) {
    loom_tensor_map *m = loom_tensor_map_new();
    ck_assert_int_eq(loom_optimizer_save_state(o, m, "o."), 0);
    ck_assert_int_eq(loom_schedule_save_state(s, m, "s."), 0);
    loom_tensor *steps = loom_tensor_map_get(m, "o.step");
    loom_tensor *lr = loom_tensor_map_get(m, "o.lr");
    loom_tensor *sched = loom_tensor_map_get(m, "s.schedule");
    ck_assert_ptr_nonnull(steps);
    ck_assert_ptr_nonnull(lr);
    ck_assert_ptr_nonnull(sched);
    const double bad_counts[] = {4e252, -1, 0.5, NAN};
    if (c == 0)
      loom_set(steps, (int64_t[]){1}, -3);
    else if (c == 6) /* the next step would overflow */
      ((int64_t *)loom_data(steps))[2] = INT64_MAX;
    else if (c == 1) /* far below zero */
      loom_set(steps, (int64_t[]){0}, -1e18);
    else if (c >= 7) /* a learning rate the constructors refuse */
      loom_set(lr, NULL, (double[]){NAN, -1, INFINITY}[c - 7]);
    else
      loom_set(sched, (int64_t[]){c == 2 ? 0 : 2}, bad_counts[c - 2]);
    bool optim = c < 2 || c >= 6;
    int rc = optim ? loom_optimizer_load_state(o, m, "o.")
                   : loom_schedule_load_state(s, m, "s.");
    ck_assert_msg(rc == -1, "case %d loaded", c);
    ck_assert_msg(strstr(loom_last_error(), optim ? "optimizer_load_state"
                                                  : "schedule_load_state"),
                  "%s", loom_last_error());
    loom_clear_error();
    loom_tensor_map_free(m);
  }
  /* the untouched state still loads */
  loom_tensor_map *m = loom_tensor_map_new();
  ck_assert_int_eq(loom_optimizer_save_state(o, m, "o."), 0);
  ck_assert_int_eq(loom_schedule_save_state(s, m, "s."), 0);
  ck_assert_int_eq(loom_optimizer_load_state(o, m, "o."), 0);
  ck_assert_int_eq(loom_schedule_load_state(s, m, "s."), 0);
  /* into a schedule of another kind it does not (a plateau's best loss
   * had become a cosine's counters), and a state without the kind's name
   * (saved before it was named) still does */
  loom_schedule *cosine = loom_schedule_new(
      o, (loom_schedule_opts){.kind = LOOM_SCHEDULE_COSINE, .t_max = 10});
  ck_assert_ptr_nonnull(cosine);
  ck_assert_int_eq(loom_schedule_load_state(cosine, m, "s."), -1);
  ck_assert_msg(strstr(loom_last_error(),
                       "state is for a step schedule, this one is cosine"),
                "%s", loom_last_error());
  loom_clear_error();
  loom_tensor_map *old = loom_tensor_map_new();
  ck_assert_int_eq(loom_tensor_map_set(old, "s.schedule",
                                       loom_tensor_map_get(m, "s.schedule")),
                   0);
  ck_assert_int_eq(loom_schedule_load_state(cosine, old, "s."), 0);
  loom_tensor_map_free(old);
  loom_schedule_free(cosine);
  loom_tensor_map_free(m);
  loom_schedule_free(s);
  loom_optimizer_free(o);
  loom_module_free(&n->base);
}
END_TEST

START_TEST(test_resume_is_bit_identical) {
  char path[512];
  test_path(path, sizeof path, "run.ckpt");
  /* uninterrupted: 20 steps */
  loom_manual_seed(11);
  loom_rng *drop = loom_rng_new(1), *data = loom_rng_new(2);
  net *full = net_new(drop);
  loom_optimizer *o1 = make_opt(full);
  loom_schedule *s1 = make_sched(o1);
  train_steps(full, o1, s1, data, 20);
  /* interrupted: 10 steps, checkpoint, a fresh process state, 10 more */
  loom_manual_seed(11);
  loom_rng *drop2 = loom_rng_new(1), *data2 = loom_rng_new(2);
  net *half = net_new(drop2);
  loom_optimizer *o2 = make_opt(half);
  loom_schedule *s2 = make_sched(o2);
  train_steps(half, o2, s2, data2, 10);
  /* the data stream's position travels as an extra tensor */
  uint64_t st[LOOM_RNG_STATE_WORDS];
  loom_rng_get_state(data2, st);
  loom_tensor_map *extra = loom_tensor_map_new();
  loom_tensor_map_set(
      extra, "data_rng",
      loom_from_array(LOOM_I64, st, LOOM_SHAPE(LOOM_RNG_STATE_WORDS)));
  loom_tensor_map_set_meta(extra, "note", "half way");
  ck_assert_int_eq(
      loom_checkpoint_save(path, &half->base, o2, s2, 10, drop2, extra), 0);
  loom_tensor_map_free(extra);
  loom_manual_seed(999); /* different init: the checkpoint must overwrite */
  loom_rng *drop3 = loom_rng_new(77), *data3 = loom_rng_new(78);
  net *resumed = net_new(drop3);
  loom_optimizer *o3 = make_opt(resumed);
  loom_schedule *s3 = make_sched(o3);
  int64_t step = -1;
  loom_tensor_map *got = NULL;
  ck_assert_int_eq(
      loom_checkpoint_load(path, &resumed->base, o3, s3, &step, drop3, &got),
      0);
  ck_assert_int_eq(step, 10);
  ck_assert_str_eq(loom_tensor_map_meta(got, "note"), "half way");
  ck_assert_int_eq(
      loom_rng_set_state(data3, (const uint64_t *)loom_data(
                                    loom_tensor_map_get(got, "data_rng"))),
      0);
  loom_tensor_map_free(got);
  ck_assert_double_eq(loom_optimizer_lr(o3), loom_optimizer_lr(o2));
  train_steps(resumed, o3, s3, data3, 10);
  loom_tensor_map *a = loom_module_state_dict(&full->base);
  loom_tensor_map *b = loom_module_state_dict(&resumed->base);
  for (int i = 0; i < loom_tensor_map_count(a); i++)
    ck_assert_msg(
        loom_equal(loom_tensor_map_at(a, i),
                   loom_tensor_map_get(b, loom_tensor_map_name(a, i))),
        "%s differs", loom_tensor_map_name(a, i));
  ck_assert_double_eq(loom_optimizer_lr(o1), loom_optimizer_lr(o3));
  loom_tensor_map_free(a);
  loom_tensor_map_free(b);
  /* a checkpoint that does not fit the model leaves it untouched */
  loom_linear_layer *other = loom_linear_layer_new(6, 17, true);
  loom_tensor *before = loom_clone(other->weight);
  ck_assert_int_eq(
      loom_checkpoint_load(path, &other->base, NULL, NULL, NULL, NULL, NULL),
      -1);
  ck_assert(loom_equal(before, other->weight));
  loom_clear_error();
  /* A load that fails late (here on the generator's state, after the
   * optimizer and schedule, or on the model, which loads last) changes
   * nothing at all: found by fuzzing, when the model loaded first. */
  char tampered[512];
  test_path(tampered, sizeof tampered, "tampered.ckpt");
  loom_tensor_map *file = loom_safetensors_load(path);
  ck_assert_loom(file);
  ck_assert_int_eq(
      loom_tensor_map_set(
          file, "rng", loom_zeros(LOOM_I64, LOOM_SHAPE(LOOM_RNG_STATE_WORDS))),
      0);
  ck_assert_int_eq(loom_safetensors_save(tampered, file), 0);
  loom_tensor_map_free(file);
  /* an lr set by hand (not the schedule's) must survive too */
  loom_optimizer_set_lr(o3, 0.123);
  for (int late = 0; late < 2; late++) {
    loom_module *target = late ? &other->base : &resumed->base;
    loom_tensor_map *was = state_snapshot(target, o3, s3, drop3);
    ck_assert_loom(was);
    ck_assert_int_eq(loom_checkpoint_load(late ? path : tampered, target, o3,
                                          s3, NULL, drop3, NULL),
                     -1);
    ck_assert_msg(strstr(loom_last_error(), late ? "weight" : "rng"), "%s",
                  loom_last_error());
    loom_clear_error();
    loom_tensor_map *now = state_snapshot(target, o3, s3, drop3);
    ck_assert_loom(now);
    const char *changed = state_difference(was, now);
    ck_assert_msg(!changed, "%s changed by a failed load", changed);
    loom_tensor_map_free(was);
    loom_tensor_map_free(now);
  }
  loom_linear_layer_free(other);
  loom_schedule_free(s1);
  loom_schedule_free(s2);
  loom_schedule_free(s3);
  loom_optimizer_free(o1);
  loom_optimizer_free(o2);
  loom_optimizer_free(o3);
  loom_module_free(&full->base);
  loom_module_free(&half->base);
  loom_module_free(&resumed->base);
  loom_rng_free(drop);
  loom_rng_free(data);
  loom_rng_free(drop2);
  loom_rng_free(data2);
  loom_rng_free(drop3);
  loom_rng_free(data3);
}
END_TEST

/* loom_checkpoint_restore works on the file as first read: the
 * configuration (extra) and the weights come from the same checkpoint
 * even when the path is replaced between the two restores, as a run
 * saving to it would; the reading is left unchanged and can be restored
 * from again. */
START_TEST(test_restore_from_one_reading) {
  char path[512];
  test_path(path, sizeof path, "restore.ckpt");
  loom_rng *g = loom_rng_new(3);
  net *first = net_new(g), *second = net_new(g), *into = net_new(g);
  loom_tensor_map *cfg = loom_tensor_map_new();
  ck_assert_int_eq(loom_tensor_map_set_meta(cfg, "run", "first"), 0);
  ck_assert_int_eq(
      loom_checkpoint_save(path, &first->base, NULL, NULL, 7, NULL, cfg), 0);
  loom_tensor_map *file = loom_safetensors_load(path);
  ck_assert_loom(file);
  int n = loom_tensor_map_count(file);
  loom_tensor_map *extra = NULL;
  int64_t step = -1;
  ck_assert_int_eq(loom_checkpoint_restore(file, path, NULL, NULL, NULL, &step,
                                           NULL, &extra),
                   0);
  ck_assert_int_eq(step, 7);
  ck_assert_str_eq(loom_tensor_map_meta(extra, "run"), "first");
  loom_tensor_map_free(extra);
  /* another run's checkpoint replaces the file */
  ck_assert_int_eq(loom_tensor_map_set_meta(cfg, "run", "second"), 0);
  ck_assert_int_eq(
      loom_checkpoint_save(path, &second->base, NULL, NULL, 9, NULL, cfg), 0);
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(loom_checkpoint_restore(file, path, &into->base, NULL,
                                             NULL, &step, NULL, NULL),
                     0);
    ck_assert_int_eq(step, 7);
    ck_assert(loom_equal(into->a->weight, first->a->weight));
    ck_assert(loom_equal(into->b->bias, first->b->bias));
    ck_assert(!loom_equal(into->a->weight, second->a->weight));
    ck_assert_int_eq(loom_tensor_map_count(file), n);
    /* the model got copies: training it leaves the reading as it was */
    loom_no_grad_begin();
    ck_assert_ptr_nonnull(loom_fill_(into->a->weight, 0.5));
    loom_no_grad_end();
  }
  /* a null file or path is an argument error, not a crash */
  ck_assert_int_eq(loom_checkpoint_restore(NULL, path, &into->base, NULL, NULL,
                                           NULL, NULL, NULL),
                   -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(loom_checkpoint_restore(file, NULL, &into->base, NULL, NULL,
                                           NULL, NULL, NULL),
                   -1);
  loom_clear_error();
  loom_tensor_map_free(file);
  loom_tensor_map_free(cfg);
  loom_module_free(&first->base);
  loom_module_free(&second->base);
  loom_module_free(&into->base);
  loom_rng_free(g);
}
END_TEST

int main(void) {
  if (test_dir_make("ckpt") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("files");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_int32_files);
  tcase_add_test(tc, test_malformed_headers);
  tcase_add_test(tc, test_tensor_names);
  tcase_add_test(tc, test_lengths_checked_first);
  tcase_add_test(tc, test_truncated_and_corrupted);
  tcase_add_test(tc, test_resume_is_bit_identical);
  tcase_add_test(tc, test_tampered_counters_refused);
  tcase_add_test(tc, test_restore_from_one_reading);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
