/* Helpers for the suites that write files or run a built program: one
 * temporary folder per suite, whole-file writes and reads, and running a
 * program through the shell with its output discarded or captured. */
#ifndef LOOM_TESTS_FILE_UTIL_H
#define LOOM_TESTS_FILE_UTIL_H

#include "check_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* 1 when this build runs under AddressSanitizer (the programs a suite
 * drives are built the same way): its shadow memory cannot live under a
 * small address-space limit (ulimit -v), so such tests skip. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif

/* The suite's folder, made by test_dir_make in main() before the tests. */
static char test_dir[256];

/* Makes $TMPDIR/loom-<name>-XXXXXX (TMPDIR default /tmp); 0, or -1 after
 * printing why. */
static inline int test_dir_make(const char *name) {
  const char *tmp = getenv("TMPDIR");
  snprintf(test_dir, sizeof test_dir, "%s/loom-%s-XXXXXX", tmp ? tmp : "/tmp",
           name);
  if (mkdtemp(test_dir))
    return 0;
  perror("mkdtemp");
  return -1;
}

/* Removes the folder and everything in it (at the end of main()). */
static inline void test_dir_remove(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", test_dir);
}

/* buf = the path of `name` in the suite's folder. */
static inline void test_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", test_dir, name);
}

static inline void test_write_file(const char *path, const void *data,
                                   size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* The whole file, NUL-terminated (malloc'd: the caller frees it); its
 * length in *len. */
static inline char *test_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  ck_assert_int_ge(n, 0);
  char *buf = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* What test_run keeps of the program's output. */
typedef enum {
  TEST_OUTPUT_NONE,   /* discarded */
  TEST_OUTPUT_STDOUT, /* stdout into out; stderr discarded */
  TEST_OUTPUT_BOTH    /* stdout and stderr into out */
} test_output;

/* Runs "prog args" through the shell; its exit status (-1: it did not
 * exit). The output `keep` asks for goes into out (n bytes, NUL-terminated;
 * out may be NULL with TEST_OUTPUT_NONE). */
static inline int test_run(const char *prog, const char *args, test_output keep,
                           char *out, size_t n) {
  static const char *redirect[] = {">/dev/null 2>&1", "2>/dev/null", "2>&1"};
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s %s %s", prog, args, redirect[keep]);
  int st;
  if (keep == TEST_OUTPUT_NONE) {
    st = system(cmd);
  } else {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    st = pclose(p);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs "prog args" with its standard output on /dev/full, where every
 * write fails (no space left); its exit status, its standard error in out
 * (n bytes, NUL-terminated). */
static inline int test_run_stdout_full(const char *prog, const char *args,
                                       char *out, size_t n) {
  char group[1024], rest[6144]; /* within test_run's command */
  /* a group, so that the outer 2>&1 sends standard error to out */
  snprintf(group, sizeof group, "{ %s", prog);
  snprintf(rest, sizeof rest, "%s >/dev/full; }", args);
  return test_run(group, rest, TEST_OUTPUT_BOTH, out, n);
}

#endif
