/* nn/distributed.h's world and collectives, run as every rank of a world
 * (`mpirun -np 2 test_distributed --ranks 2`) and as a world of one
 * (directly). Each rank's values depend on its rank, and each expectation
 * is computed for the world's size, so the same assertions check real
 * communication with two ranks and the world of one's identities. */
#define _POSIX_C_SOURCE 200809L
#include "dist_util.h"

static int rank_, size_;

/* ---- before loom_dist_init (these run first) ---- */

START_TEST(test_collectives_need_init) {
  ck_assert(!loom_dist_initialized());
  ck_assert_int_eq(loom_dist_rank(), 0);
  ck_assert_int_eq(loom_dist_size(), 1);
  double v = 1;
  ck_assert_int_eq(loom_dist_all_reduce_values(&v, 1, LOOM_DIST_SUM), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "loom_dist_init first"));
  loom_clear_error();
  ck_assert_int_eq(loom_dist_barrier(), -1);
  loom_clear_error();
  ck_assert_int_eq(loom_dist_finalize(), 0); /* a no-op before init */
}
END_TEST

/* A bad LOOM_DIST_TIMEOUT is refused and leaves the world uninitialised. */
START_TEST(test_bad_timeout_env) {
  const char *bad[] = {"abc", "0", "-3", "1e7", "5s", ""};
  double before = loom_dist_timeout();
  const char *was = getenv("LOOM_DIST_TIMEOUT");
  char saved[64] = "";
  if (was)
    snprintf(saved, sizeof saved, "%s", was);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("LOOM_DIST_TIMEOUT", bad[i], 1);
    ck_assert_int_eq(loom_dist_init(NULL, NULL), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(), "(0, 1e6]"));
    loom_clear_error();
    ck_assert(!loom_dist_initialized());
  }
  if (was)
    setenv("LOOM_DIST_TIMEOUT", saved, 1);
  else
    unsetenv("LOOM_DIST_TIMEOUT");
  ck_assert_double_eq(loom_dist_timeout(), before);
}
END_TEST

START_TEST(test_set_timeout_range) {
  double old = loom_dist_timeout();
  const double bad[] = {0, -1, NAN, 1e7, INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_double_eq(loom_dist_set_timeout(bad[i]), -1);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
    loom_clear_error();
  }
  ck_assert_double_eq(loom_dist_set_timeout(12.5), old);
  ck_assert_double_eq(loom_dist_set_timeout(old), 12.5);
}
END_TEST

/* ---- in the world ---- */

START_TEST(test_world) {
  ck_assert(loom_dist_initialized());
  ck_assert_int_ge(rank_, 0);
  ck_assert_int_lt(rank_, size_);
  /* every rank has a different rank, 0..size-1 */
  double ranks[2] = {rank_, 1};
  ck_assert_int_eq(loom_dist_all_reduce_values(ranks, 2, LOOM_DIST_SUM), 0);
  ck_assert_double_eq(ranks[0], size_ * (size_ - 1) / 2.0);
  ck_assert_double_eq(ranks[1], size_);
  ck_assert_int_eq(loom_dist_init(NULL, NULL), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "twice"));
  loom_clear_error();
  ck_assert_int_eq(loom_dist_barrier(), 0);
}
END_TEST

/* Element i of rank r holds (r + 1) * (i + 1) - 3: the sum over ranks is
 * (i + 1) S - 3P with S = P(P+1)/2, the max is rank P-1's, the min rank
 * 0's. */
static double value(int r, int64_t i) { return (r + 1.0) * (i + 1.0) - 3; }

static void check_reduced(const loom_tensor *t, loom_dist_op op) {
  double S = size_ * (size_ + 1) / 2.0;
  for (int64_t i = 0; i < loom_numel(t); i++) {
    double want = op == LOOM_DIST_SUM    ? (i + 1.0) * S - 3.0 * size_
                  : op == LOOM_DIST_MEAN ? ((i + 1.0) * S - 3.0 * size_) / size_
                  : op == LOOM_DIST_MAX  ? value(size_ - 1, i)
                                         : value(0, i);
    double got = loom_get(t, (int64_t[]){i / 3, i % 3});
    ck_assert_msg(got == want, "op %d element %lld: %g, expected %g", op,
                  (long long)i, got, want);
  }
}

static loom_tensor *filled(loom_dtype d) {
  loom_tensor *t = loom_empty(d, LOOM_SHAPE(4, 3));
  for (int64_t i = 0; i < 12; i++)
    loom_set(t, (int64_t[]){i / 3, i % 3}, value(rank_, i));
  return t;
}

START_TEST(test_all_reduce_ops_and_dtypes) {
  const loom_dtype dtypes[] = {LOOM_F32, LOOM_F64, LOOM_I64};
  const loom_dist_op ops[] = {LOOM_DIST_SUM, LOOM_DIST_MEAN, LOOM_DIST_MAX,
                              LOOM_DIST_MIN};
  for (int d = 0; d < 3; d++)
    for (int o = 0; o < 4; o++) {
      if (dtypes[d] == LOOM_I64 && ops[o] == LOOM_DIST_MEAN)
        continue;
      loom_tensor *t = filled(dtypes[d]);
      ck_assert_int_eq(loom_dist_all_reduce(t, ops[o]), 0);
      check_reduced(t, ops[o]);
    }
}
END_TEST

/* A strided view is reduced in place: its base sees the result where the
 * view lies, and nothing elsewhere changes. */
START_TEST(test_all_reduce_strided_view) {
  loom_tensor *base = filled(LOOM_F64);
  loom_tensor *view = loom_t(base); /* (3, 4), not contiguous */
  ck_assert(!loom_is_contiguous(view));
  ck_assert_int_eq(loom_dist_all_reduce(view, LOOM_DIST_MAX), 0);
  check_reduced(base, LOOM_DIST_MAX);
  loom_tensor *part = loom_narrow(base, 0, 1, 2); /* rows 1, 2 */
  ck_assert_int_eq(loom_dist_all_reduce(part, LOOM_DIST_SUM), 0);
  ck_assert_double_eq(loom_get(base, (int64_t[]){0, 0}),
                      value(size_ - 1, 0)); /* untouched since the max */
  for (int64_t i = 3; i < 9; i++)
    ck_assert_double_eq(loom_get(base, (int64_t[]){i / 3, i % 3}),
                        size_ * value(size_ - 1, i));
  ck_assert_double_eq(loom_get(base, (int64_t[]){3, 2}), value(size_ - 1, 11));
}
END_TEST

START_TEST(test_all_reduce_refusals) {
  loom_tensor *i = filled(LOOM_I64);
  ck_assert_int_eq(loom_dist_all_reduce(i, LOOM_DIST_MEAN), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "no mean"));
  loom_clear_error();
  loom_tensor *b = loom_zeros(LOOM_BOOL, LOOM_SHAPE(3));
  ck_assert_int_eq(loom_dist_all_reduce(b, LOOM_DIST_SUM), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_DTYPE);
  loom_clear_error();
  ck_assert_int_eq(loom_dist_all_reduce(NULL, LOOM_DIST_SUM), -1);
  double v = 0;
  ck_assert_int_eq(loom_dist_all_reduce_values(&v, -1, LOOM_DIST_SUM), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(loom_dist_all_reduce_values(NULL, 0, LOOM_DIST_SUM), 0);
  /* an op outside the enum was summed */
  loom_tensor *f = filled(LOOM_F32), *before = loom_clone(f);
  ck_assert_int_eq(loom_dist_all_reduce(f, (loom_dist_op)99), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(
      loom_last_error(), "loom_dist_all_reduce: op 99 is not a loom_dist_op"));
  loom_clear_error();
  ck_assert(loom_equal(f, before));
  ck_assert_int_eq(loom_dist_all_reduce(f, (loom_dist_op)-1), -1);
  ck_assert_ptr_nonnull(
      strstr(loom_last_error(), "op -1 is not a loom_dist_op"));
  loom_clear_error();
  v = 1;
  ck_assert_int_eq(loom_dist_all_reduce_values(&v, 1, (loom_dist_op)4), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_ptr_nonnull(
      strstr(loom_last_error(),
             "loom_dist_all_reduce_values: op 4 is not a loom_dist_op"));
  loom_clear_error();
  ck_assert_double_eq(v, 1);
}
END_TEST

/* A parameter (a leaf that requires grad) can be written: its version is
 * bumped, so a graph that saved it refuses to backpropagate through the
 * old values. A world of one writes nothing, and backward works. */
START_TEST(test_all_reduce_bumps_version) {
  loom_tensor *w =
      loom_set_requires_grad(loom_ones(LOOM_F64, LOOM_SHAPE(3)), true);
  loom_tensor *y = loom_sum_all(loom_mul(w, w));
  ck_assert_int_eq(loom_dist_all_reduce(w, LOOM_DIST_SUM), 0);
  ck_assert_double_eq(loom_get(w, (int64_t[]){2}), size_);
  if (size_ == 1) {
    ck_assert_int_eq(loom_backward(y), 0);
    return;
  }
  ck_assert_int_eq(loom_backward(y), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "modified in place"));
  loom_clear_error();
}
END_TEST

START_TEST(test_all_reduce_values) {
  double v[3] = {rank_ + 0.5, -rank_, 7};
  ck_assert_int_eq(loom_dist_all_reduce_values(v, 3, LOOM_DIST_MEAN), 0);
  ck_assert_double_eq(v[0], (size_ - 1) / 2.0 + 0.5);
  ck_assert_double_eq(v[1], -(size_ - 1) / 2.0);
  ck_assert_double_eq(v[2], 7);
  double w[2] = {rank_, -rank_};
  ck_assert_int_eq(loom_dist_all_reduce_values(w, 2, LOOM_DIST_MAX), 0);
  ck_assert_double_eq(w[0], size_ - 1);
  ck_assert_double_eq(w[1], 0);
}
END_TEST

START_TEST(test_broadcast) {
  int root = size_ - 1;
  loom_tensor *t = filled(LOOM_F32);
  ck_assert_int_eq(loom_dist_broadcast(loom_t(t), root), 0);
  for (int64_t i = 0; i < 12; i++)
    ck_assert_double_eq(loom_get(t, (int64_t[]){i / 3, i % 3}), value(root, i));
  char text[32];
  snprintf(text, sizeof text, "from rank %d", rank_);
  ck_assert_int_eq(loom_dist_broadcast_bytes(text, sizeof text, 0), 0);
  ck_assert_str_eq(text, "from rank 0");
  ck_assert_int_eq(loom_dist_broadcast(t, size_), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "not a rank"));
  loom_clear_error();
  ck_assert_int_eq(loom_dist_broadcast_bytes(text, 4, -1), -1);
  loom_clear_error();
}
END_TEST

START_TEST(test_all_gather) {
  loom_tensor *t = filled(LOOM_F64); /* (4, 3) */
  loom_tensor *rows = loom_dist_all_gather(t, 0);
  loom_tensor *cols = loom_dist_all_gather(t, -1);
  ck_assert_loom(rows);
  ck_assert_loom(cols);
  ck_assert_int_eq(loom_size(rows, 0), 4 * size_);
  ck_assert_int_eq(loom_size(cols, 1), 3 * size_);
  for (int r = 0; r < size_; r++)
    for (int64_t i = 0; i < 12; i++) {
      ck_assert_double_eq(loom_get(rows, (int64_t[]){4 * r + i / 3, i % 3}),
                          value(r, i));
      ck_assert_double_eq(loom_get(cols, (int64_t[]){i / 3, 3 * r + i % 3}),
                          value(r, i));
    }
  ck_assert_ptr_null(loom_dist_all_gather(t, 2));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_ptr_null(loom_dist_all_gather(loom_scalar(LOOM_F64, 1), 0));
  loom_clear_error();
}
END_TEST

/* Ranks that give different shapes are all refused, naming the rank. */
START_TEST(test_all_gather_different_shapes) {
  loom_tensor *t = loom_zeros(LOOM_F32, LOOM_SHAPE(2, rank_ == 1 ? 5 : 3));
  loom_tensor *g = loom_dist_all_gather(t, 0);
  if (size_ == 1) {
    ck_assert_loom(g);
    return;
  }
  ck_assert_ptr_null(g);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_SHAPE);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "rank 1 gives a different"));
  loom_clear_error();
  /* the world is still in step */
  ck_assert_int_eq(loom_dist_barrier(), 0);
}
END_TEST

/* Every rank's (start, count) of n items: contiguous parts in rank order
 * that cover 0..n-1, differing in size by at most one. */
START_TEST(test_shard_covers_in_rank_order) {
  const int64_t ns[] = {0, 1, 2, 7, 8, 12, 1001};
  for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
    int64_t part[2];
    ck_assert_int_eq(loom_dist_shard(ns[k], &part[0], &part[1]), 0);
    loom_tensor *all = loom_dist_all_gather(
        loom_from_array(LOOM_I64, part, LOOM_SHAPE(1, 2)), 0);
    ck_assert_loom(all);
    const int64_t *v = loom_data_i64(all);
    int64_t next = 0, lo = INT64_MAX, hi = 0;
    for (int r = 0; r < size_; r++) {
      ck_assert_int_eq(v[2 * r], next);
      next += v[2 * r + 1];
      lo = v[2 * r + 1] < lo ? v[2 * r + 1] : lo;
      hi = v[2 * r + 1] > hi ? v[2 * r + 1] : hi;
    }
    ck_assert_int_eq(next, ns[k]);
    ck_assert_int_le(hi - lo, 1);
  }
  int64_t a, b;
  ck_assert_int_eq(loom_dist_shard(-1, &a, &b), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
}
END_TEST

/* The ranks' parts of each global batch, put together in rank order, are
 * the whole batch, which does not depend on the world; an epoch's batches
 * hold distinct items; epochs are shuffled differently; the same seed
 * gives the same batches. */
START_TEST(test_sampler_batches_independent_of_ranks) {
  enum { ITEMS = 50, BATCH = 12 };
  loom_dist_sampler *s = loom_dist_sampler_new(ITEMS, BATCH, 5, true);
  loom_dist_sampler *again = loom_dist_sampler_new(ITEMS, BATCH, 5, true);
  ck_assert_loom(s);
  ck_assert_int_eq(loom_dist_sampler_batches(s), 4);
  int64_t whole[3][4][BATCH], mine[BATCH];
  for (int e = 0; e < 3; e++) {
    bool seen[ITEMS] = {false};
    for (int i = 0; i < 4; i++) {
      ck_assert_int_eq(
          loom_dist_sampler_items(s, e, i, true, whole[e][i], BATCH), BATCH);
      int64_t n = loom_dist_sampler_items(s, e, i, false, mine, BATCH);
      ck_assert_int_eq(n, BATCH / size_);
      loom_tensor *parts = loom_dist_all_gather(
          loom_from_array(LOOM_I64, mine, LOOM_SHAPE(n)), 0);
      ck_assert_loom(parts);
      for (int j = 0; j < BATCH; j++) {
        ck_assert_int_eq(loom_data_i64(parts)[j], whole[e][i][j]);
        ck_assert(!seen[whole[e][i][j]]);
        seen[whole[e][i][j]] = true;
      }
    }
  }
  ck_assert(memcmp(whole[0], whole[1], sizeof whole[0]));
  for (int e = 2; e >= 0; e--) /* any epoch again, in any order */
    for (int i = 0; i < 4; i++) {
      int64_t b[BATCH];
      loom_dist_sampler_items(again, e, i, true, b, BATCH);
      ck_assert(!memcmp(b, whole[e][i], sizeof b));
    }
  loom_dist_sampler *plain = loom_dist_sampler_new(ITEMS, BATCH, 5, false);
  ck_assert_int_eq(loom_dist_sampler_items(plain, 3, 2, true, mine, BATCH),
                   BATCH);
  for (int j = 0; j < BATCH; j++)
    ck_assert_int_eq(mine[j], 24 + j);
  ck_assert_int_eq(loom_dist_sampler_items(plain, 0, 4, true, mine, BATCH), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "4 batches per epoch"));
  loom_clear_error();
  ck_assert_int_eq(loom_dist_sampler_items(plain, 0, 0, true, mine, 3), -1);
  loom_clear_error();
  ck_assert_ptr_null(loom_dist_sampler_new(5, 6, 1, true));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  loom_dist_sampler_free(plain);
  loom_dist_sampler_free(again);
  loom_dist_sampler_free(s);
}
END_TEST

/* The shuffled orders are pinned: a checkpoint resumed by a later build
 * must see the same batches. Every epoch an int64 holds is valid, the
 * last one too (its seed was computed with a signed overflow). */
START_TEST(test_sampler_orders_pinned) {
  loom_dist_sampler *s = loom_dist_sampler_new(10, 10, 5, true);
  ck_assert_loom(s);
  const int64_t epochs[] = {0, 1, 41, INT64_MAX};
  const int64_t want[][10] = {{2, 4, 7, 1, 3, 5, 8, 9, 6, 0},
                              {4, 6, 9, 1, 7, 0, 3, 8, 2, 5},
                              {8, 1, 5, 4, 0, 9, 6, 2, 7, 3},
                              {3, 0, 2, 7, 9, 8, 5, 4, 6, 1}};
  for (int e = 0; e < 4; e++) {
    int64_t items[10];
    ck_assert_int_eq(loom_dist_sampler_items(s, epochs[e], 0, true, items, 10),
                     10);
    for (int i = 0; i < 10; i++)
      ck_assert_int_eq(items[i], want[e][i]);
  }
  loom_dist_sampler_free(s);
}
END_TEST

int main(int argc, char **argv) {
  /* First, alone: what happens before the world is joined. */
  Suite *first = suite_create("distributed_before_init");
  TCase *before = tcase_create("before_init");
  tcase_add_checked_fixture(before, loom_test_setup, loom_test_teardown);
  tcase_add_test(before, test_collectives_need_init);
  tcase_add_test(before, test_bad_timeout_env);
  tcase_add_test(before, test_set_timeout_range);
  suite_add_tcase(first, before);
  SRunner *sr = srunner_create(first);
  srunner_run_all(sr, CK_NORMAL);
  int failed_before = srunner_ntests_failed(sr);
  srunner_free(sr);

  int status = dist_test_start(&argc, &argv);
  if (status >= 0)
    return failed_before ? EXIT_FAILURE : status;
  rank_ = loom_dist_rank();
  size_ = loom_dist_size();
  /* Then every rank runs the world's tests in the same order. */
  Suite *s = suite_create("distributed");
  TCase *tc = tcase_create("world");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_add_test(tc, test_world);
  tcase_add_test(tc, test_all_reduce_ops_and_dtypes);
  tcase_add_test(tc, test_all_reduce_strided_view);
  tcase_add_test(tc, test_all_reduce_refusals);
  tcase_add_test(tc, test_all_reduce_bumps_version);
  tcase_add_test(tc, test_all_reduce_values);
  tcase_add_test(tc, test_broadcast);
  tcase_add_test(tc, test_all_gather);
  tcase_add_test(tc, test_all_gather_different_shapes);
  tcase_add_test(tc, test_shard_covers_in_rank_order);
  tcase_add_test(tc, test_sampler_batches_independent_of_ranks);
  tcase_add_test(tc, test_sampler_orders_pinned);
  suite_add_tcase(s, tc);
  status = dist_run_suite(s);
  return failed_before ? EXIT_FAILURE : status;
}
