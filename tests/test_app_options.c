/* apps/common/options.c: the command-line number parsers every app uses.
 * Each value is accepted or refused whole, and a refusal's one line names
 * the program, the flag, the value and the range. */
#define _POSIX_C_SOURCE 200809L
#include "check_util.h"

#include "../apps/common/common.h"

#include <math.h>
#include <unistd.h>

/* What the last parser call printed on stderr. */
static char said[512];

/* stderr goes to a temporary file from capture_begin to capture_end,
 * which puts what was written in `said`. */
static FILE *captured;
static int saved_stderr;

static void capture_begin(void) {
  fflush(stderr);
  captured = tmpfile();
  ck_assert_ptr_nonnull(captured);
  saved_stderr = dup(2);
  ck_assert_int_ge(saved_stderr, 0);
  ck_assert_int_eq(dup2(fileno(captured), 2), 2);
}

static void capture_end(void) {
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  rewind(captured);
  size_t n = fread(said, 1, sizeof said - 1, captured);
  said[n] = '\0';
  fclose(captured);
}

static int parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out) {
  capture_begin();
  int rc = app_parse_int("prog", "--n", text, lo, hi, out);
  capture_end();
  return rc;
}

static int parse_real(const char *text, app_range r, double *out) {
  capture_begin();
  int rc = app_parse_real("prog", "--x", text, r, out);
  capture_end();
  return rc;
}

START_TEST(test_int_accepts_whole_numbers) {
  const struct {
    const char *text;
    int64_t value;
  } good[] = {{"0", 0},
              {"42", 42},
              {"-7", -7},
              {"+9", 9},
              {"1e6", 1000000},
              {"2000.0", 2000},
              {"1E3", 1000},
              {"9223372036854775807", INT64_MAX},
              {"-1000000", -1000000}};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    int64_t v = 12345;
    ck_assert_msg(parse_int(good[i].text, INT64_MIN, INT64_MAX, &v) == 0,
                  "'%s' refused: %s", good[i].text, said);
    ck_assert_int_eq(v, good[i].value);
    ck_assert_str_eq(said, "");
  }
}
END_TEST

START_TEST(test_int_refuses) {
  const char *bad[] = {
      "abc", "",    " 5",   "5 ",   "5x",  "1.5",  "1e30",
      "inf", "nan", "0x10", "1e-3", "--5", "1e16", "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int64_t v = 12345;
    ck_assert_msg(parse_int(bad[i], INT64_MIN, INT64_MAX, &v) == -1,
                  "'%s' accepted", bad[i]);
    ck_assert_int_eq(v, 12345); /* untouched */
  }
  int64_t v = 3;
  ck_assert_int_eq(parse_int(NULL, 0, 1, &v), -1);
  ck_assert_int_eq(v, 3);
}
END_TEST

START_TEST(test_int_range_and_message) {
  int64_t v = 0;
  ck_assert_int_eq(parse_int("1", 1, 1000000000000, &v), 0);
  ck_assert_int_eq(parse_int("1000000000000", 1, 1000000000000, &v), 0);
  ck_assert_int_eq(parse_int("0", 1, 1000000000000, &v), -1);
  ck_assert_str_eq(said, "prog: --n '0' is not an integer in 1..10^12\n");
  ck_assert_int_eq(parse_int("abc", 1, 1000000000000, &v), -1);
  ck_assert_str_eq(said, "prog: --n 'abc' is not an integer in 1..10^12\n");
  ck_assert_int_eq(parse_int("-3", 0, 1024, &v), -1);
  ck_assert_str_eq(said, "prog: --n '-3' is not an integer in 0..1024\n");
  ck_assert_int_eq(parse_int("1e30", 0, INT64_MAX, &v), -1);
  ck_assert_str_eq(said, "prog: --n '1e30' is not an integer in 0..2^63-1\n");
  ck_assert_int_eq(parse_int("2000000", 1, (int64_t)1 << 20, &v), -1);
  ck_assert_str_eq(said, "prog: --n '2000000' is not an integer in 1..2^20\n");
  ck_assert_int_eq(parse_int("-5", -4, 100, &v), -1);
  ck_assert_str_eq(said, "prog: --n '-5' is not an integer in -4..100\n");
}
END_TEST

START_TEST(test_real_accepts) {
  const struct {
    const char *text;
    double value;
  } good[] = {{"0.5", 0.5},     {"2e-3", 2e-3}, {"1", 1},
              {"-0.25", -0.25}, {"1e-400", 0},  {"0x1p-2", 0.25}};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    double v = 99;
    ck_assert_msg(
        parse_real(good[i].text, (app_range){.lo = -1, .hi = 1}, &v) == 0,
        "'%s' refused: %s", good[i].text, said);
    ck_assert(v == good[i].value);
  }
}
END_TEST

START_TEST(test_real_refuses) {
  const char *bad[] = {"inf", "-inf", "nan", "NAN",   "",    " 1",
                       "1 ",  "1,5",  "abc", "1e400", "0.5x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    double v = 99;
    ck_assert_msg(
        parse_real(bad[i], (app_range){.lo = -1e300, .hi = 1e300}, &v) == -1,
        "'%s' accepted", bad[i]);
    ck_assert(v == 99);
  }
}
END_TEST

START_TEST(test_real_open_and_closed_ends) {
  double v = 0;
  app_range unit_open_hi = {.lo = 0, .hi = 1, .hi_open = true};
  ck_assert_int_eq(parse_real("0", unit_open_hi, &v), 0);
  ck_assert_int_eq(parse_real("1", unit_open_hi, &v), -1);
  ck_assert_str_eq(said, "prog: --x '1' is not a number in [0, 1)\n");
  app_range positive = {.lo = 0, .hi = 1000, .lo_open = true};
  ck_assert_int_eq(parse_real("1000", positive, &v), 0);
  ck_assert(v == 1000);
  ck_assert_int_eq(parse_real("0", positive, &v), -1);
  ck_assert_str_eq(said, "prog: --x '0' is not a number in (0, 1000]\n");
  ck_assert_int_eq(parse_real("inf", positive, &v), -1);
  ck_assert_str_eq(said, "prog: --x 'inf' is not a number in (0, 1000]\n");
  ck_assert_int_eq(parse_real("nan", (app_range){.lo = 1e-12, .hi = 0.5}, &v),
                   -1);
  ck_assert_str_eq(said, "prog: --x 'nan' is not a number in [1e-12, 0.5]\n");
  ck_assert_int_eq(parse_real("2e12", (app_range){.lo = 0, .hi = 1e12}, &v),
                   -1);
  ck_assert_str_eq(said, "prog: --x '2e12' is not a number in [0, 10^12]\n");
}
END_TEST

int main(void) {
  Suite *s = suite_create("app_options");
  TCase *tc = tcase_create("parsers");
  tcase_add_test(tc, test_int_accepts_whole_numbers);
  tcase_add_test(tc, test_int_refuses);
  tcase_add_test(tc, test_int_range_and_message);
  tcase_add_test(tc, test_real_accepts);
  tcase_add_test(tc, test_real_refuses);
  tcase_add_test(tc, test_real_open_and_closed_ends);
  suite_add_tcase(s, tc);
  return loom_run_suite(s);
}
