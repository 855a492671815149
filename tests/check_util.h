/* Shared helpers for loom's Check suites. */
#ifndef LOOM_CHECK_UTIL_H
#define LOOM_CHECK_UTIL_H

#include <check.h>
#include <loom/loom.h>
#include <math.h>
#include <stdlib.h>

/* Fails with the pending loom error when p is NULL. */
#define ck_assert_loom(p)                                                      \
  ck_assert_msg((p) != NULL, "loom error: %s", loom_last_error())

#define ck_assert_close(a, b, tol)                                             \
  do {                                                                         \
    double a_ = (a), b_ = (b);                                                 \
    ck_assert_msg(fabs(a_ - b_) <= (tol) * (1 + fabs(b_)),                     \
                  "%s = %.10g, expected %.10g", #a, a_, b_);                   \
  } while (0)

/* Every test starts with no error and a scope, and ends with the scope
 * drained and nothing leaked. */
static loom_scope *test_scope_;
static int64_t test_live_;

static inline void loom_test_setup(void) {
  loom_clear_error();
  test_live_ = loom_debug_live_tensors();
  test_scope_ = loom_scope_begin();
}

static inline void loom_test_teardown(void) {
  loom_scope_end(test_scope_);
  loom_tape_clear();
  ck_assert_int_eq(loom_debug_live_tensors(), test_live_);
}

/* The suite runner every test file's main() uses. */
static inline int loom_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  loom_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
