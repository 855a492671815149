/* Scaled dot-product attention, one (L x S) block of scores per batch
 * element, computed where the block is still in cache: the product q k^T,
 * scale, mask, causal limit, softmax and dropout in one pass over the
 * block, then the product with v; backward likewise per block. The blocks
 * live in one thread's scratch memory and are not kept: backward computes
 * each again by the same code, so it gets the forward's weights to the
 * bit, and the dropout mask again from its key (random.c). Kept, the
 * weights were (nb, L, S) floats and the mask (nb, L, S) bytes per layer:
 * at 512 positions, 8 heads and batch 32, 320 MiB of the 2.2 GiB an
 * encoder layer's training step held. Operands are read in
 * place at their strides (rows of q, k, v and of the output and gradients
 * need only a contiguous last dim), so heads split and merged by views
 * cost no copies. Each block is computed by one thread, and the products
 * split by their sizes alone, so results do not depend on the thread
 * count. */
#include "kernels.h"
#include "vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
  const loom__attention_args *a;
  const loom_tensor *out; /* forward: the output */
  const loom_tensor *g;   /* backward: the output's gradient */
  loom_tensor *dq, *dk, *dv;
  atomic_int fail; /* a part could not get its scratch memory */
} attention_job;

/* Element offset of batch element i in a tensor whose leading nbd dims
 * are the batch (strides st, shape sh). */
static int64_t batch_offset(int64_t i, int nbd, const int64_t *sh,
                            const int64_t *st) {
  int64_t off = 0;
  for (int d = nbd - 1; d >= 0; d--) {
    off += (i % sh[d]) * st[d];
    i /= sh[d];
  }
  return off;
}

/* Partial sums and maxima in fixed lanes, so the loops vectorise and the
 * result does not depend on the vectors' width (AVX2's and AVX-512's
 * give the same bits; the baseline, without fused multiply-adds, its
 * own). */
#define LANES 8

/* float32's softmax contracts into fused multiply-adds, as the float32
 * loops of vmath.h's functions do elsewhere (kernels.h); float64's not. */
#define ISA_f LOOM__ISA_FUNCTION_FMA
#define ISA_d LOOM__ISA_FUNCTION

#define ATTENTION(T, S, EXP)                                                   \
  /* scores -> softmax in place, row by row: scale, mask, causal limit         \
   * (keys past it get 0). A row with every key blocked gets zeros. */         \
  ISA_##S(softmax_block_##S,                                                   \
          (T * p, int64_t L, int64_t Sn, T scale, const T *mask, int64_t msl,  \
           int64_t mss, bool causal),                                          \
          (p, L, Sn, scale, mask, msl, mss, causal)) {                         \
    for (int64_t i = 0; i < L; i++) {                                          \
      T *restrict r = p + i * Sn;                                              \
      int64_t end = causal && i + 1 < Sn ? i + 1 : Sn;                         \
      const T *mr = mask ? mask + i * msl : NULL;                              \
      if (mr && mss == 1)                                                      \
        for (int64_t j = 0; j < end; j++)                                      \
          r[j] = r[j] * scale + mr[j];                                         \
      else if (mr)                                                             \
        for (int64_t j = 0; j < end; j++)                                      \
          r[j] = r[j] * scale + mr[j * mss];                                   \
      else                                                                     \
        for (int64_t j = 0; j < end; j++)                                      \
          r[j] *= scale;                                                       \
      T mp[LANES];                                                             \
      for (int w = 0; w < LANES; w++)                                          \
        mp[w] = -INFINITY;                                                     \
      int64_t j = 0;                                                           \
      for (; j + LANES <= end; j += LANES)                                     \
        for (int w = 0; w < LANES; w++)                                        \
          mp[w] = r[j + w] > mp[w] ? r[j + w] : mp[w];                         \
      for (; j < end; j++)                                                     \
        mp[0] = r[j] > mp[0] ? r[j] : mp[0];                                   \
      T m = -INFINITY;                                                         \
      for (int w = 0; w < LANES; w++)                                          \
        m = mp[w] > m ? mp[w] : m;                                             \
      if (m == -INFINITY)                                                      \
        m = 0;                                                                 \
      _Pragma("GCC ivdep") for (j = 0; j < end; j++) r[j] = EXP(r[j] - m);     \
      double sp[LANES] = {0};                                                  \
      for (j = 0; j + LANES <= end; j += LANES)                                \
        for (int w = 0; w < LANES; w++)                                        \
          sp[w] += r[j + w];                                                   \
      for (; j < end; j++)                                                     \
        sp[0] += r[j];                                                         \
      double sum = ((sp[0] + sp[4]) + (sp[1] + sp[5])) +                       \
                   ((sp[2] + sp[6]) + (sp[3] + sp[7]));                        \
      T inv = sum > 0 ? (T)(1 / sum) : 0;                                      \
      for (j = 0; j < end; j++)                                                \
        r[j] *= inv;                                                           \
      for (j = end; j < Sn; j++)                                               \
        r[j] = 0;                                                              \
    }                                                                          \
  }
ATTENTION(float, f, loom__expf)
ATTENTION(double, d, exp)

/* Batch element b's rows of t (batch..., rows, cols), and their stride. */
static char *row_block(const loom_tensor *t, int64_t b,
                       const loom__attention_args *a) {
  return t->data + batch_offset(b, a->nbd, a->batch, t->strides) *
                       (int64_t)loom_dtype_size(t->dtype);
}

static int64_t row(const loom_tensor *t) { return t->strides[t->ndim - 2]; }

static const char *at(const char *base, int64_t b, const int64_t *st,
                      const loom__attention_args *a) {
  return base + batch_offset(b, a->nbd, a->batch, st) *
                    (int64_t)loom_dtype_size(a->dtype);
}

/* w (L x S) = batch element b's weights before dropout: q k^T, scaled,
 * masked, softmax. */
static void weights_block(const loom__attention_args *a, int64_t b, char *w) {
  int64_t L = a->L, S = a->S;
  loom__kernel_gemm_raw(a->dtype, false, true, L, S, a->E, 1,
                        at(a->q, b, a->qs, a), a->q_row, at(a->k, b, a->ks, a),
                        a->k_row, 0, w, S);
  const char *mask = a->mask ? at(a->mask, b, a->ms, a) : NULL;
  if (a->dtype == LOOM_F32)
    softmax_block_f((float *)w, L, S, (float)a->scale, (const float *)mask,
                    a->mask_row, a->mask_col, a->causal);
  else
    softmax_block_d((double *)w, L, S, a->scale, (const double *)mask,
                    a->mask_row, a->mask_col, a->causal);
}

/* m (L x S bytes) = batch element b's part of the dropout mask. */
static void mask_block(const loom__attention_args *a, int64_t b, uint8_t *m) {
  loom__dropout_mask(m, b * a->L * a->S, a->L * a->S, a->drop_key, a->dropout);
}

#define DROP(T)                                                                \
  LOOM__ISA_FUNCTION(                                                          \
      drop_##T, (T *restrict w, const uint8_t *restrict m, int64_t n, T keep), \
      (w, m, n, keep)) {                                                       \
    for (int64_t i = 0; i < n; i++)                                            \
      w[i] = m[i] ? w[i] * keep : 0;                                           \
  }
DROP(float)
DROP(double)

/* Scratch for one thread: `floats` blocks of L x S elements, then, with
 * dropout, L x S bytes for the mask. NULL (and the job failed) when out of
 * memory. */
static char *scratch(attention_job *j, int floats) {
  const loom__attention_args *a = j->a;
  size_t n = (size_t)(a->L * a->S), es = loom_dtype_size(a->dtype);
  size_t bytes = n * es * (size_t)floats + (a->dropout > 0 ? n : 0);
  char *s = malloc(bytes ? bytes : 1); /* malloc(0) may return NULL */
  if (!s)
    atomic_store(&j->fail, 1);
  return s;
}

static void forward_part(void *ctx, int part, int64_t b0, int64_t b1) {
  attention_job *j = ctx;
  (void)part;
  const loom__attention_args *a = j->a;
  int64_t n = a->L * a->S;
  char *w = scratch(j, 1);
  if (!w)
    return;
  uint8_t *m = (uint8_t *)w + n * (int64_t)loom_dtype_size(a->dtype);
  for (int64_t b = b0; b < b1; b++) {
    weights_block(a, b, w);
    if (a->dropout > 0) {
      mask_block(a, b, m);
      if (a->dtype == LOOM_F32)
        drop_float((float *)w, m, n, (float)(1 / (1 - a->dropout)));
      else
        drop_double((double *)w, m, n, 1 / (1 - a->dropout));
    }
    loom__kernel_gemm_raw(a->dtype, false, false, a->L, a->Ev, a->S, 1, w, a->S,
                          at(a->v, b, a->vs, a), a->v_row, 0,
                          row_block(j->out, b, a), row(j->out));
  }
  free(w);
}

/* Runs fn over the blocks on the threads the work is worth; a piece
 * allocates its own scratch. */
static void attention_parts(const loom__attention_args *a, loom__piece_fn fn,
                            attention_job *j) {
  int nt = loom__threads_for(a->nb * a->L * a->S * (a->E + a->Ev) / 16);
  loom__parallel_for_even_out(nt, a->nb, fn, j);
}

static int finish(attention_job *j, const char *pass) {
  if (!atomic_load(&j->fail))
    return 0;
  loom_set_error(LOOM_ERR_MEMORY, "attention %s: out of memory", pass);
  return -1;
}

int loom__kernel_attention(const loom__attention_args *a, loom_tensor *out) {
  attention_job j = {.a = a, .out = out};
  attention_parts(a, forward_part, &j);
  return finish(&j, "forward");
}

/* ---- backward ---- */

#define ATTENTION_GRAD(T, S)                                                   \
  /* dp (the gradient of the dropped weights, L x Sn) -> the gradient of       \
   * the scores before scaling, in place: through dropout (mask, keep),        \
   * then softmax: p (dp - sum(dp p)), then the scale. With dropout, pd        \
   * gets the dropped weights, for dv. */                                      \
  LOOM__ISA_FUNCTION(grad_block_##S,                                           \
                     (T * dp, T * pd, const T *p, const uint8_t *mask, T keep, \
                      int64_t L, int64_t Sn, T scale),                         \
                     (dp, pd, p, mask, keep, L, Sn, scale)) {                  \
    for (int64_t i = 0; i < L; i++) {                                          \
      T *restrict r = dp + i * Sn;                                             \
      const T *restrict pr = p + i * Sn;                                       \
      if (mask) {                                                              \
        const uint8_t *restrict mr = mask + i * Sn;                            \
        T *restrict dr = pd + i * Sn;                                          \
        for (int64_t j = 0; j < Sn; j++) {                                     \
          r[j] = mr[j] ? r[j] * keep : 0;                                      \
          dr[j] = mr[j] ? pr[j] * keep : 0;                                    \
        }                                                                      \
      }                                                                        \
      double sp[LANES] = {0};                                                  \
      int64_t j = 0;                                                           \
      for (; j + LANES <= Sn; j += LANES)                                      \
        for (int w = 0; w < LANES; w++)                                        \
          sp[w] += (double)r[j + w] * pr[j + w];                               \
      for (; j < Sn; j++)                                                      \
        sp[0] += (double)r[j] * pr[j];                                         \
      T dot = (T)(((sp[0] + sp[4]) + (sp[1] + sp[5])) +                        \
                  ((sp[2] + sp[6]) + (sp[3] + sp[7])));                        \
      for (j = 0; j < Sn; j++)                                                 \
        r[j] = pr[j] * (r[j] - dot) * scale;                                   \
    }                                                                          \
  }
ATTENTION_GRAD(float, f)
ATTENTION_GRAD(double, d)

static void grad_part(void *ctx, int part, int64_t b0, int64_t b1) {
  attention_job *j = ctx;
  (void)part;
  const loom__attention_args *a = j->a;
  size_t es = loom_dtype_size(a->dtype);
  int64_t L = a->L, S = a->S, n = L * S;
  bool dropout = a->dropout > 0;
  /* scratch: the weights, their gradient and, with dropout, the dropped
   * weights and the mask */
  char *p = scratch(j, dropout ? 3 : 2);
  if (!p)
    return;
  char *dp = p + n * (int64_t)es, *pd = dp + n * (int64_t)es;
  uint8_t *m = dropout ? (uint8_t *)(pd + n * (int64_t)es) : NULL;
  for (int64_t b = b0; b < b1; b++) {
    const char *q = at(a->q, b, a->qs, a), *k = at(a->k, b, a->ks, a),
               *v = at(a->v, b, a->vs, a), *g = row_block(j->g, b, a);
    int64_t g_row = row(j->g);
    weights_block(a, b, p);
    if (m)
      mask_block(a, b, m);
    /* dp = g v^T */
    loom__kernel_gemm_raw(a->dtype, false, true, L, S, a->Ev, 1, g, g_row, v,
                          a->v_row, 0, dp, S);
    double keep = dropout ? 1 / (1 - a->dropout) : 1;
    if (a->dtype == LOOM_F32)
      grad_block_f((float *)dp, (float *)pd, (const float *)p, m, (float)keep,
                   L, S, (float)a->scale);
    else
      grad_block_d((double *)dp, (double *)pd, (const double *)p, m, keep, L, S,
                   a->scale);
    const char *weights = m ? pd : p;
    if (j->dv) /* dv = weights^T g */
      loom__kernel_gemm_raw(a->dtype, true, false, S, a->Ev, L, 1, weights, S,
                            g, g_row, 0, row_block(j->dv, b, a), row(j->dv));
    if (j->dq) /* dq = ds k */
      loom__kernel_gemm_raw(a->dtype, false, false, L, a->E, S, 1, dp, S, k,
                            a->k_row, 0, row_block(j->dq, b, a), row(j->dq));
    if (j->dk) /* dk = ds^T q */
      loom__kernel_gemm_raw(a->dtype, true, false, S, a->E, L, 1, dp, S, q,
                            a->q_row, 0, row_block(j->dk, b, a), row(j->dk));
  }
  free(p);
}

int loom__kernel_attention_backward(const loom__attention_args *a,
                                    const loom_tensor *g, loom_tensor *dq,
                                    loom_tensor *dk, loom_tensor *dv) {
  attention_job j = {.a = a, .g = g, .dq = dq, .dk = dk, .dv = dv};
  attention_parts(a, grad_part, &j);
  return finish(&j, "backward");
}
