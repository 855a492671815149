/* Scaled dot-product attention, one (L x S) block of scores per batch
 * element, computed where the block is still in cache: the product q k^T,
 * scale, mask, causal limit and softmax in one pass over the block, then
 * the product with v; backward likewise per block. Operands are read in
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
  loom_tensor *p;         /* (nb, L, S) softmax, contiguous */
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
 * result does not depend on the instruction set's width. */
#define LANES 8

#define ATTENTION(T, S, EXP)                                                   \
  /* scores -> softmax in place, row by row: scale, mask, causal limit         \
   * (keys past it get 0). A row with every key blocked gets zeros. */         \
  LOOM__ISA_FUNCTION(softmax_block_##S,                                        \
                     (T * p, int64_t L, int64_t Sn, T scale, const T *mask,    \
                      int64_t msl, int64_t mss, bool causal),                  \
                     (p, L, Sn, scale, mask, msl, mss, causal)) {              \
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

/* out's rows of batch element b = weights (b's L x S block of w) @ v. */
static void values_block(const attention_job *j, int64_t b,
                         const loom_tensor *w) {
  const loom__attention_args *a = j->a;
  size_t es = loom_dtype_size(a->dtype);
  const char *v = a->v + batch_offset(b, a->nbd, a->batch, a->vs) * es;
  loom__kernel_gemm_raw(a->dtype, false, false, a->L, a->Ev, a->S, 1,
                        w->data + b * a->L * a->S * (int64_t)es, a->S, v,
                        a->v_row, 0, row_block(j->out, b, a), row(j->out));
}

static void scores_part(void *ctx, int64_t b0, int64_t b1) {
  attention_job *j = ctx;
  const loom__attention_args *a = j->a;
  size_t es = loom_dtype_size(a->dtype);
  int64_t L = a->L, S = a->S;
  for (int64_t b = b0; b < b1; b++) {
    const char *q = a->q + batch_offset(b, a->nbd, a->batch, a->qs) * es;
    const char *k = a->k + batch_offset(b, a->nbd, a->batch, a->ks) * es;
    char *p = (char *)j->p->data + b * L * S * (int64_t)es;
    loom__kernel_gemm_raw(a->dtype, false, true, L, S, a->E, 1, q, a->q_row, k,
                          a->k_row, 0, p, S);
    const char *mask =
        a->mask ? a->mask + batch_offset(b, a->nbd, a->batch, a->ms) * es
                : NULL;
    if (a->dtype == LOOM_F32)
      softmax_block_f((float *)p, L, S, (float)a->scale, (const float *)mask,
                      a->mask_row, a->mask_col, a->causal);
    else
      softmax_block_d((double *)p, L, S, a->scale, (const double *)mask,
                      a->mask_row, a->mask_col, a->causal);
    if (j->out) /* the block is still in cache */
      values_block(j, b, j->p);
  }
}

static void values_part(void *ctx, int64_t b0, int64_t b1) {
  attention_job *j = ctx;
  for (int64_t b = b0; b < b1; b++)
    values_block(j, b, j->a->dropped ? j->a->dropped : j->p);
}

static int attention_threads(const loom__attention_args *a) {
  int nt = loom__threads_for(a->nb * a->L * a->S * (a->E + a->Ev) / 16);
  return nt > a->nb ? (int)a->nb : nt;
}

void loom__kernel_attention_scores(const loom__attention_args *a,
                                   loom_tensor *p, loom_tensor *out) {
  attention_job j = {.a = a, .p = p, .out = out};
  loom__parallel_for(attention_threads(a), a->nb, scores_part, &j);
}

void loom__kernel_attention_values(const loom__attention_args *a,
                                   const loom_tensor *p, loom_tensor *out) {
  attention_job j = {.a = a, .p = (loom_tensor *)p, .out = out};
  loom__parallel_for(attention_threads(a), a->nb, values_part, &j);
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

static void grad_part(void *ctx, int64_t b0, int64_t b1) {
  attention_job *j = ctx;
  const loom__attention_args *a = j->a;
  size_t es = loom_dtype_size(a->dtype);
  int64_t L = a->L, S = a->S;
  /* scratch: the weights' gradient and, with dropout, the dropped weights */
  size_t bytes = (size_t)(L * S) * es * (a->drop_mask ? 2 : 1);
  char *dp = malloc(bytes ? bytes : 1); /* malloc(0) may return NULL */
  if (!dp) {
    atomic_store(&j->fail, 1);
    return;
  }
  char *pd = dp + L * S * (int64_t)es;
  for (int64_t b = b0; b < b1; b++) {
    const char *q = a->q + batch_offset(b, a->nbd, a->batch, a->qs) * es;
    const char *k = a->k + batch_offset(b, a->nbd, a->batch, a->ks) * es;
    const char *v = a->v + batch_offset(b, a->nbd, a->batch, a->vs) * es;
    const char *g = row_block(j->g, b, a);
    int64_t g_row = row(j->g);
    const char *p = (const char *)j->p->data + b * L * S * (int64_t)es;
    const uint8_t *m =
        a->drop_mask ? (const uint8_t *)a->drop_mask->data + b * L * S : NULL;
    /* dp = g v^T */
    loom__kernel_gemm_raw(a->dtype, false, true, L, S, a->Ev, 1, g, g_row, v,
                          a->v_row, 0, dp, S);
    if (a->dtype == LOOM_F32)
      grad_block_f((float *)dp, (float *)pd, (const float *)p, m,
                   (float)a->keep, L, S, (float)a->scale);
    else
      grad_block_d((double *)dp, (double *)pd, (const double *)p, m, a->keep, L,
                   S, a->scale);
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
  free(dp);
}

int loom__kernel_attention_backward(const loom__attention_args *a,
                                    const loom_tensor *p, const loom_tensor *g,
                                    loom_tensor *dq, loom_tensor *dk,
                                    loom_tensor *dv) {
  attention_job j = {
      .a = a, .p = (loom_tensor *)p, .g = g, .dq = dq, .dk = dk, .dv = dv};
  loom__parallel_for(attention_threads(a), a->nb, grad_part, &j);
  if (atomic_load(&j.fail)) {
    loom_set_error(LOOM_ERR_MEMORY, "attention backward: out of memory");
    return -1;
  }
  return 0;
}
