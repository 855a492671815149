/* Transformer: one training step of torch_transformer.py's cases in loom.
 *
 *   encoder_drop0.1, encoder_drop0.0
 *       a TransformerEncoder of 2 layers (d_model 256, 8 heads, feed-forward
 *       1024, relu, post-norm, batch first, no final norm) in training
 *       mode on a fixed input (32, 64, 256): zero_grad + forward + loss
 *       mean(out^2) + backward + Adam (lr 1e-4) step
 *   mha
 *       MultiheadAttention(256, 8, batch first) self-attention on the same
 *       input (which requires grad), training mode, no weights returned:
 *       forward + mean(out^2) + backward, no optimizer
 * bench/transformer_torch.py times the PyTorch counterparts. Cases are
 * sampled in interleaved rounds; figures are medians. Lines starting with
 * "@tf" are for bench/run_models.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D_MODEL 256
#define HEADS 8
#define FF 1024
#define LAYERS 2
#define SEQ 64
#define BATCH 32

static void fail(const char *what) {
  fprintf(stderr, "transformer: %s: %s\n", what, loom_last_error());
  exit(1);
}

typedef struct {
  const char *name, *peer;
  loom_transformer_stack *enc;   /* encoder cases */
  loom_multihead_attention *mha; /* the attention case */
  loom_optimizer *opt;
  loom_tensor *x;
  double loss;
} tf_case;

static void encoder_step(void *p) {
  tf_case *c = p;
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(c->opt);
  loom_tensor *loss = loom_mean_all(
      loom_square(loom_transformer_encoder_forward(c->enc, c->x, NULL)));
  if (!loss || loom_backward(loss) < 0 || loom_optimizer_step(c->opt) < 0)
    fail(c->name);
  c->loss = loom_item(loss);
  loom_scope_end(s);
}

static void mha_step(void *p) {
  tf_case *c = p;
  loom_scope *s = loom_scope_begin();
  loom_module_zero_grad(&c->mha->base);
  loom_zero_grad(c->x);
  loom_tensor *out;
  if (loom_multihead_attention_forward(c->mha, c->x, c->x, c->x, NULL, &out,
                                       NULL) < 0)
    fail(c->name);
  loom_tensor *loss = loom_mean_all(loom_square(out));
  if (!loss || loom_backward(loss) < 0)
    fail(c->name);
  c->loss = loom_item(loss);
  loom_scope_end(s);
}

static loom_tensor *input(bool requires_grad) {
  loom_tensor *x =
      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(BATCH, SEQ, D_MODEL));
  return loom_keep(requires_grad ? loom_set_requires_grad(x, true) : x);
}

static void make_encoder(tf_case *c, const char *name, const char *peer,
                         double dropout) {
  loom_manual_seed(0);
  *c = (tf_case){.name = name, .peer = peer};
  loom_transformer_opts o = {.d_model = D_MODEL,
                             .nhead = HEADS,
                             .dim_feedforward = FF,
                             .dropout = dropout,
                             .batch_first = true};
  c->enc = loom_transformer_encoder_new(o, LAYERS, false);
  loom_tensor *params[64];
  int n = c->enc ? loom_module_parameters(&c->enc->base, params, 64) : 0;
  c->opt = n > 0 && n <= 64 ? loom_adam_new(params, n, loom_adam_defaults(1e-4))
                            : NULL;
  c->x = input(false);
  if (!c->enc || !c->opt || !c->x)
    fail(name);
  loom_module_train(&c->enc->base, true);
}

static void make_mha(tf_case *c) {
  loom_manual_seed(0);
  *c = (tf_case){.name = "mha", .peer = "mha"};
  c->mha = loom_multihead_attention_new(
      D_MODEL, HEADS, (loom_multihead_attention_opts){.batch_first = true});
  c->x = input(true);
  if (!c->mha || !c->x)
    fail("mha");
  loom_module_train(&c->mha->base, true);
}

enum { ENC_DROP, ENC_NODROP, MHA, N_CASES };

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.3;
  const char *usage =
      "usage: bench-transformer [--samples N] [--min-ms M] [--case NAME]\n"
      "ms per training step of a 2-layer TransformerEncoder (d 256, 8 heads,\n"
      "ff 1024, seq 64, batch 32) and of MultiheadAttention fwd+bwd.\n"
      "--case runs one case alone (for a profiler).\n";
  const char *only = bench_take_option(&argc, argv, "case");
  bench_options(argc, argv, usage, &samples, &min_s);

  tf_case cases[N_CASES];
  make_encoder(&cases[ENC_DROP], "encoder_drop0.1", "encoder_drop0.1", 0.1);
  make_encoder(&cases[ENC_NODROP], "encoder_drop0.0", "encoder_drop0.0", 0);
  make_mha(&cases[MHA]);
  bench_fn fns[N_CASES] = {encoder_step, encoder_step, mha_step};
  void *ctxs[N_CASES];
  int first = 0, n = N_CASES;
  for (int i = 0; i < N_CASES; i++) {
    ctxs[i] = &cases[i];
    if (only && !strcmp(only, cases[i].name)) {
      first = i;
      n = 1;
    }
  }
  if (only && n != 1) {
    fprintf(stderr, "transformer: no case '%s'\n", only);
    return 2;
  }
  double med[N_CASES];
  bench_compare(n, fns + first, ctxs + first, samples, min_s, med, NULL);

  printf("# TransformerEncoder %d layers, d_model %d, %d heads, ff %d, seq "
         "%d, batch %d, batch first, post-norm, relu; loom threads %d; %d "
         "samples of >= %.0f ms\n",
         LAYERS, D_MODEL, HEADS, FF, SEQ, BATCH, loom_num_threads(), samples,
         min_s * 1e3);
  printf("%-18s %10s %12s %12s\n", "# case", "ms/step", "tokens/s", "loss");
  for (int i = 0; i < n; i++) {
    tf_case *c = &cases[first + i];
    double ms = med[i] * 1e3;
    printf("%-18s %10.3f %12.0f %12.6f\n", c->name, ms, SEQ * BATCH / med[i],
           c->loss);
    printf("@tf loom %s %.4f\n", c->name, ms);
  }
  for (int i = 0; i < N_CASES; i++) {
    loom_optimizer_free(cases[i].opt);
    loom_transformer_stack_free(cases[i].enc);
    loom_multihead_attention_free(cases[i].mha);
    loom_release(cases[i].x);
  }
  loom_cleanup();
  return 0;
}
