/* What the search of loom_decode costs per token, and that it stays the
 * same however long the output: greedy decoding, sampling and beam search
 * (beam 4) of a model whose step is nothing but a fixed row of
 * log-probabilities per state row (4 tokens, no eos), so that what is
 * timed is the search's own bookkeeping (choosing, the hypotheses' tokens,
 * the rows handed back), for outputs of 1,000 to 256,000 tokens.
 *
 * Columns: median microseconds per generated token (per step) at each
 * length. A search that copied each hypothesis's tokens at every step
 * (as loom_decode did before its tree of tokens) grows linearly along a
 * row; charlm's sampling of 40,000 characters had taken 13 s.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>

#define V 4

typedef struct {
  loom_decode_opts opts;
  loom_tensor *row; /* (1, V) log-probabilities, kept */
} decode_ctx;

static void fail(void) {
  fprintf(stderr, "bench-decode: %s\n", loom_last_error());
  exit(1);
}

/* Every row gets the same fixed row: the model keeps no per-row state, so
 * it has no reorder either. */
static int step(void *ctx, int64_t t, const loom_tensor *tokens,
                loom_tensor **lp) {
  (void)t;
  decode_ctx *c = ctx;
  *lp = loom_expand(c->row, LOOM_SHAPE(loom_size(tokens, 0), V));
  return *lp ? 0 : -1;
}

static void run(void *p) {
  decode_ctx *c = p;
  loom_decode_result r;
  if (loom_decode(&(loom_decode_model){step, NULL, c}, 1, NULL, &c->opts, &r) <
      0)
    fail();
  if (r.hyps[0].len != c->opts.max_len) {
    fprintf(stderr, "bench-decode: %lld tokens, not %lld\n",
            (long long)r.hyps[0].len, (long long)c->opts.max_len);
    exit(1);
  }
  loom_decode_result_free(&r);
}

int main(int argc, char **argv) {
  int samples = argc > 1 ? atoi(argv[1]) : 5;
  if (samples < 1 || samples > 1000) {
    fprintf(stderr, "usage: bench-decode [samples 1-1000]\n");
    return 2;
  }
  static const char *names[] = {"greedy", "sample", "beam 4"};
  static const int64_t lengths[] = {1000, 16000, 256000};
  const double lp[V] = {-0.5, -1.5, -2.5, -3.0};
  decode_ctx c = {
      .row = loom_keep(loom_from_array(LOOM_F64, lp, LOOM_SHAPE(1, V)))};
  if (!c.row)
    fail();
  loom_manual_seed(1);
  printf("# loom_decode's search, microseconds per token (median of %d)\n",
         samples);
  printf("%-8s", "method");
  for (int j = 0; j < 3; j++)
    printf(" %9lld", (long long)lengths[j]);
  printf("\n");
  for (int m = 0; m < 3; m++) {
    printf("%-8s", names[m]);
    for (int j = 0; j < 3; j++) {
      c.opts = loom_decode_defaults(0, LOOM_DECODE_NO_EOS);
      c.opts.method = (loom_decode_method)m;
      c.opts.beam = 4;
      c.opts.max_len = c.opts.max_len_b = lengths[j];
      double med;
      bench_compare(1, (bench_fn[]){run}, (void *[]){&c}, samples, 0.2, &med,
                    NULL);
      printf(" %9.3f", med / (double)lengths[j] * 1e6);
      fflush(stdout);
    }
    printf("\n");
  }
  loom_release(c.row);
  return 0;
}
