/* Helpers for the PyTorch parity suites: reference files written by
 * scripts/gen_nn_reference.py (naming scheme documented there), found under
 * $LOOM_SOURCE_ROOT/tests/data, and comparisons that remember the worst
 * relative error of each group for the summary line. */
#ifndef LOOM_PARITY_UTIL_H
#define LOOM_PARITY_UTIL_H

#include "check_util.h"

#include <stdio.h>
#include <string.h>

/* Loads tests/data/<file> (caller frees); fails the test if it cannot. */
static inline loom_tensor_map *parity_load(const char *file) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", file);
  loom_tensor_map *m = loom_safetensors_load(path);
  ck_assert_msg(m != NULL, "cannot load %s (set LOOM_SOURCE_ROOT): %s", path,
                loom_last_error());
  return m;
}

/* A suite's reference file: defines `static loom_tensor_map *var` and the
 * functions var_open / var_close that load it before a test case's tests
 * and free it after (tcase_add_unchecked_fixture(tc, var_open, var_close):
 * loaded once, not once per test). */
#define PARITY_REFERENCE(var, file)                                            \
  static loom_tensor_map *var;                                                 \
  static void var##_open(void) { var = parity_load(file); }                    \
  static void var##_close(void) {                                              \
    loom_tensor_map_free(var);                                                 \
    var = NULL;                                                                \
  }

/* The entry "<prefix><suffix>" of m, borrowed; NULL if absent. */
static inline loom_tensor *parity_find(const loom_tensor_map *m,
                                       const char *prefix, const char *suffix) {
  char name[256];
  snprintf(name, sizeof name, "%s%s", prefix, suffix);
  return loom_tensor_map_get(m, name);
}

/* The same entry, which must exist. */
static inline loom_tensor *parity_ref(const loom_tensor_map *m,
                                      const char *prefix, const char *suffix) {
  loom_tensor *t = parity_find(m, prefix, suffix);
  ck_assert_msg(t != NULL, "reference file lacks '%s%s'", prefix, suffix);
  return t;
}

/* A new map of the entries named "<prefix>..." with the prefix removed
 * (tensors shared): a case's state dict out of a reference file. */
static inline loom_tensor_map *parity_submap(const loom_tensor_map *m,
                                             const char *prefix) {
  loom_tensor_map *sub = loom_tensor_map_new();
  ck_assert_loom(sub);
  size_t n = strlen(prefix);
  for (int i = 0; i < loom_tensor_map_count(m); i++) {
    const char *name = loom_tensor_map_name(m, i);
    if (strncmp(name, prefix, n) == 0)
      ck_assert_int_eq(
          loom_tensor_map_set(sub, name + n, loom_tensor_map_at(m, i)), 0);
  }
  return sub;
}

/* How many entries of m are named "<prefix>...<suffix>" (prefix may be
 * ""): the suites count cases to be sure none is left unchecked. */
static inline int parity_count(const loom_tensor_map *m, const char *prefix,
                               const char *suffix) {
  int count = 0;
  size_t np = strlen(prefix), ns = strlen(suffix);
  for (int i = 0; i < loom_tensor_map_count(m); i++) {
    const char *name = loom_tensor_map_name(m, i);
    size_t len = strlen(name);
    count += len >= np + ns && strncmp(name, prefix, np) == 0 &&
             strcmp(name + len - ns, suffix) == 0;
  }
  return count;
}

/* Worst error seen by a group of comparisons (for the summary line). */
typedef struct {
  const char *group;
  double worst;
  char where[160];
} parity_stat;

/* got must match want in shape and be within rtol relative error
 * everywhere, where values smaller than floor / rtol count as that size:
 * floor = atol * max(1, max |want|). The floor grows with the tensor's
 * scale because float32 sums err in proportion to their terms, not their
 * result: an element that cancels down to 1e-2 among terms of size 10
 * carries ~1e-6 of rounding in torch and in loom alike. The error recorded
 * in st is |got - want| / max(|want|, floor / rtol); rtol 0 asks for
 * equality. */
static inline void parity_check(parity_stat *st, const loom_tensor *got,
                                const loom_tensor *want, double rtol,
                                double atol, const char *what) {
  ck_assert_msg(got != NULL, "%s: no tensor (loom error: %s)", what,
                loom_last_error());
  char a[96], b[96];
  ck_assert_msg(loom_same_shape(got, want), "%s: shape %s, expected %s", what,
                loom_shape_str(got, a, sizeof a),
                loom_shape_str(want, b, sizeof b));
  int64_t n = loom_numel(want);
  double *g = malloc((size_t)(2 * n + 1) * sizeof *g), *w = g + n;
  ck_assert_ptr_nonnull(g);
  ck_assert_int_eq(loom_copy_to_array(got, LOOM_F64, g, n), 0);
  ck_assert_int_eq(loom_copy_to_array(want, LOOM_F64, w, n), 0);
  double worst = 0;
  int64_t at = 0;
  double big = 1;
  for (int64_t i = 0; i < n; i++)
    big = fabs(w[i]) > big ? fabs(w[i]) : big;
  double floor = rtol > 0 ? atol * big / rtol : 0;
  for (int64_t i = 0; i < n; i++) {
    double diff = fabs(g[i] - w[i]);
    double scale = fabs(w[i]) > floor ? fabs(w[i]) : floor;
    double err = diff == 0 ? 0 : diff / scale;
    if (!(err <= worst)) { /* NaN counts as the worst */
      worst = err;
      at = i;
    }
  }
  double got_at = n ? g[at] : 0, want_at = n ? w[at] : 0;
  free(g);
  if (st && worst > st->worst) {
    st->worst = worst;
    snprintf(st->where, sizeof st->where, "%s", what);
  }
  ck_assert_msg(worst <= rtol,
                "%s: element %lld is %.9g, expected %.9g "
                "(relative error %.3g > %.3g)",
                what, (long long)at, got_at, want_at, worst, rtol);
}

static inline void parity_report(const parity_stat *st) {
  printf("%s: worst relative error %.3g (%s)\n", st->group, st->worst,
         st->worst > 0 ? st->where : "all exact");
}

/* A leaf copy of a reference input: float inputs require grad. */
static inline loom_tensor *parity_leaf(const loom_tensor *t) {
  loom_tensor *c = loom_clone(t);
  ck_assert_loom(c);
  if (loom_dtype_is_float(loom_dtype_of(c)))
    ck_assert_loom(loom_set_requires_grad(c, true));
  return c;
}

#endif
