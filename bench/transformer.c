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
 *   translate
 *       apps/translate's transformer at its training sizes: nn.Transformer
 *       (d_model 256, 8 heads, 3 + 3 layers, feed-forward 512, dropout 0.1,
 *       post-norm relu, sequence first), source and target embeddings
 *       (8000 and 6000 words) scaled by 16 plus fixed positions, dropout,
 *       a causal target mask, the output layer to 6000 words, cross-entropy
 *       with label smoothing 0.1, clipping to norm 1 and Adam (5e-4, betas
 *       0.9/0.98, eps 1e-9), on a batch of 128 pairs of 15 source and 15
 *       target tokens (no padding); tokens/s counts target tokens
 * bench/transformer_torch.py times the PyTorch counterparts. Cases are
 * sampled in interleaved rounds; figures are medians. Lines starting with
 * "@tf" are for bench/run_models.sh.
 *
 * GF/s is the step's matrix-product FLOPs over its time (case_products
 * lists them: projections, feed-forward, the attention's per-head products
 * and the output layer, forward and backward; softmax, norms and the rest
 * are not counted). --blas 1 also times OpenBLAS's sgemm on the same
 * shapes and prints the rate it reaches there.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <loom/loom.h>

#include <math.h>
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

#define TR_LEN 15
#define TR_BATCH 128
#define TR_SRC_VOCAB 8000
#define TR_TGT_VOCAB 6000
#define TR_MAX_PARAMS 256

typedef struct {
  loom_transformer *tf;
  loom_embedding_layer *src_emb, *tgt_emb;
  loom_linear_layer *out;
  loom_tensor *src, *tgt_in, *tgt_out, *pos; /* kept */
  loom_tensor *params[TR_MAX_PARAMS];
  int n_params;
} translate_model;

typedef struct {
  const char *name, *peer;
  translate_model *tr;           /* the translation case */
  loom_transformer_stack *enc;   /* encoder cases */
  loom_multihead_attention *mha; /* the attention case */
  loom_optimizer *opt;
  loom_tensor *x;
  double loss;
} tf_case;

/* ---- the products of a step ---- */

#define MAX_PRODUCTS 256

typedef struct {
  bench_product p[MAX_PRODUCTS];
  int n;
} products;

static void add(products *l, int64_t m, int64_t n, int64_t k, double count,
                bool grad_a) {
  bench_add_product(l->p, &l->n, MAX_PRODUCTS, m, n, k, count, grad_a, true);
}

/* Attention of `batch` sequences, queries of length sq against keys of
 * length sk: the projections (in one product for self-attention, Q apart
 * from K and V for cross-attention), per (sequence, head) Q K^T and
 * weights x V, and the output projection. grad_in: whether the input
 * needs a gradient (not for a benchmark's fixed input). */
static void attention(products *l, int64_t batch, int64_t sq, int64_t sk,
                      bool cross, bool grad_in) {
  int64_t d = D_MODEL, dh = D_MODEL / HEADS, bh = batch * HEADS;
  if (cross) {
    add(l, batch * sq, d, d, 1, true);
    add(l, batch * sk, 2 * d, d, 1, true);
  } else {
    add(l, batch * sq, 3 * d, d, 1, grad_in);
  }
  add(l, sq, sk, dh, (double)bh, true);
  add(l, sq, dh, sk, (double)bh, true);
  add(l, batch * sq, d, d, 1, true);
}

static void feed_forward(products *l, int64_t tokens, int64_t ff) {
  add(l, tokens, ff, D_MODEL, 1, true);
  add(l, tokens, D_MODEL, ff, 1, true);
}

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

static loom_tensor *embed(translate_model *m, loom_embedding_layer *e,
                          const loom_tensor *ids) {
  return loom_dropout(
      loom_add(loom_mul_scalar(loom_embedding_layer_forward(e, ids), 16),
               m->pos),
      0.1, true, NULL);
}

static void translate_step(void *p) {
  tf_case *c = p;
  translate_model *m = c->tr;
  loom_scope *s = loom_scope_begin();
  loom_optimizer_zero_grad(c->opt);
  loom_transformer_masks mk = {.tgt_causal = true};
  loom_tensor *h =
      loom_transformer_forward(m->tf, embed(m, m->src_emb, m->src),
                               embed(m, m->tgt_emb, m->tgt_in), &mk);
  loom_tensor *logits =
      loom_reshape(loom_linear_layer_forward(m->out, h),
                   LOOM_SHAPE(TR_LEN * TR_BATCH, TR_TGT_VOCAB));
  loom_cross_entropy_opts ce = loom_cross_entropy_defaults();
  ce.label_smoothing = 0.1;
  loom_tensor *loss = loom_cross_entropy(
      logits, loom_reshape(m->tgt_out, LOOM_SHAPE(TR_LEN * TR_BATCH)), &ce);
  if (!loss || loom_backward(loss) < 0 ||
      isnan(loom_clip_grad_norm(m->params, m->n_params, 1, 2)) ||
      loom_optimizer_step(c->opt) < 0)
    fail(c->name);
  c->loss = loom_item(loss);
  loom_scope_end(s);
}

static int add_params(translate_model *m, const loom_module *mod) {
  int n = loom_module_parameters(mod, m->params + m->n_params,
                                 TR_MAX_PARAMS - m->n_params);
  if (n < 0 || m->n_params + n > TR_MAX_PARAMS)
    return -1;
  m->n_params += n;
  return 0;
}

static void make_translate(tf_case *c) {
  loom_manual_seed(0);
  *c = (tf_case){.name = "translate", .peer = "translate"};
  translate_model *m = c->tr = calloc(1, sizeof *m);
  if (!m)
    fail("translate");
  loom_transformer_opts o = {.d_model = D_MODEL,
                             .nhead = HEADS,
                             .dim_feedforward = 512,
                             .dropout = 0.1};
  m->tf = loom_transformer_new(o, 3, 3);
  m->src_emb = loom_embedding_layer_new(TR_SRC_VOCAB, D_MODEL, -1);
  m->tgt_emb = loom_embedding_layer_new(TR_TGT_VOCAB, D_MODEL, -1);
  m->out = loom_linear_layer_new(D_MODEL, TR_TGT_VOCAB, true);
  loom_scope *s = loom_scope_begin();
  m->src = loom_keep(loom_randint(NULL, LOOM_I64, 4, TR_SRC_VOCAB,
                                  LOOM_SHAPE(TR_LEN, TR_BATCH)));
  m->tgt_in = loom_keep(loom_randint(NULL, LOOM_I64, 4, TR_TGT_VOCAB,
                                     LOOM_SHAPE(TR_LEN, TR_BATCH)));
  m->tgt_out = loom_keep(loom_randint(NULL, LOOM_I64, 4, TR_TGT_VOCAB,
                                      LOOM_SHAPE(TR_LEN, TR_BATCH)));
  m->pos = loom_keep(
      loom_randn(NULL, LOOM_F32, 0, 1, LOOM_SHAPE(TR_LEN, 1, D_MODEL)));
  loom_scope_end(s);
  if (!m->tf || !m->src_emb || !m->tgt_emb || !m->out || !m->pos ||
      add_params(m, &m->tf->base) < 0 || add_params(m, &m->src_emb->base) < 0 ||
      add_params(m, &m->tgt_emb->base) < 0 || add_params(m, &m->out->base) < 0)
    fail("translate");
  loom_adam_opts a = loom_adam_defaults(5e-4);
  a.beta2 = 0.98;
  a.eps = 1e-9;
  c->opt = loom_adam_new(m->params, m->n_params, a);
  if (!c->opt)
    fail("translate");
  loom_module_train(&m->tf->base, true);
}

static void free_translate(translate_model *m) {
  if (!m)
    return;
  loom_transformer_free(m->tf);
  loom_embedding_layer_free(m->src_emb);
  loom_embedding_layer_free(m->tgt_emb);
  loom_linear_layer_free(m->out);
  loom_release(m->src);
  loom_release(m->tgt_in);
  loom_release(m->tgt_out);
  loom_release(m->pos);
  free(m);
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

enum { ENC_DROP, ENC_NODROP, MHA, TRANSLATE, N_CASES };

static products case_products(int c) {
  products l = {.n = 0};
  if (c == MHA) {
    attention(&l, BATCH, SEQ, SEQ, false, true);
  } else if (c == TRANSLATE) { /* embeddings need the input's gradient */
    for (int i = 0; i < 3; i++) {
      attention(&l, TR_BATCH, TR_LEN, TR_LEN, false, true);
      feed_forward(&l, TR_BATCH * TR_LEN, 512);
    }
    for (int i = 0; i < 3; i++) {
      attention(&l, TR_BATCH, TR_LEN, TR_LEN, false, true);
      attention(&l, TR_BATCH, TR_LEN, TR_LEN, true, true);
      feed_forward(&l, TR_BATCH * TR_LEN, 512);
    }
    add(&l, TR_BATCH * TR_LEN, TR_TGT_VOCAB, D_MODEL, 1, true);
  } else {
    for (int i = 0; i < LAYERS; i++) {
      attention(&l, BATCH, SEQ, SEQ, false, i > 0);
      feed_forward(&l, BATCH * SEQ, FF);
    }
  }
  return l;
}

int main(int argc, char **argv) {
  int samples = 7;
  double min_s = 0.3;
  const char *usage =
      "usage: bench-transformer [--samples N] [--min-ms M] [--case NAME]\n"
      "                         [--blas 0|1]\n"
      "ms per training step of a 2-layer TransformerEncoder (d 256, 8 heads,\n"
      "ff 1024, seq 64, batch 32), of MultiheadAttention fwd+bwd and of\n"
      "apps/translate's transformer (3+3 layers, batch 128 x 15 tokens).\n"
      "--case runs one case alone (for a profiler).\n"
      "--blas 1 adds OpenBLAS's GFLOP/s on each case's product shapes.\n";
  const char *only = bench_take_option(&argc, argv, "case");
  const char *blas_opt = bench_take_option(&argc, argv, "blas");
  bool with_blas = blas_opt && atoi(blas_opt);
  bench_options(argc, argv, usage, &samples, &min_s);

  tf_case cases[N_CASES];
  make_encoder(&cases[ENC_DROP], "encoder_drop0.1", "encoder_drop0.1", 0.1);
  make_encoder(&cases[ENC_NODROP], "encoder_drop0.0", "encoder_drop0.0", 0);
  make_mha(&cases[MHA]);
  make_translate(&cases[TRANSLATE]);
  bench_fn fns[N_CASES] = {encoder_step, encoder_step, mha_step,
                           translate_step};
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
  printf("%-18s %10s %12s %12s %8s %10s\n", "# case", "ms/step", "tokens/s",
         "loss", "GF/s", "blas_GF/s");
  for (int i = 0; i < n; i++) {
    tf_case *c = &cases[first + i];
    double ms = med[i] * 1e3;
    double tokens = c->tr ? TR_LEN * TR_BATCH : SEQ * BATCH;
    products l = case_products(first + i);
    double flops = bench_products_flops(l.p, l.n);
    double blas = with_blas ? flops / bench_products_blas_seconds(
                                          l.p, l.n, loom_num_threads(), 5, 0.05)
                            : NAN;
    printf("%-18s %10.3f %12.0f %12.6f %8.1f %10.1f\n", c->name, ms,
           tokens / med[i], c->loss, flops / med[i] * 1e-9, blas * 1e-9);
    printf("@tf loom %s %.4f\n", c->name, ms);
  }
  for (int i = 0; i < N_CASES; i++) {
    loom_optimizer_free(cases[i].opt);
    loom_transformer_stack_free(cases[i].enc);
    loom_multihead_attention_free(cases[i].mha);
    loom_release(cases[i].x);
    free_translate(cases[i].tr);
  }
  loom_cleanup();
  return 0;
}
