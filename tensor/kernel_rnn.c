/* The elementwise halves of fused recurrent steps (the GEMMs are done by
 * the caller): one pass over a (B x H) block per time step, forward and
 * backward, for LSTM (with optional peepholes), GRU and plain RNN cells.
 * Rows whose `active` flag is 0 (a sequence already over) keep their state
 * and pass gradients straight through. float32 uses the vectorisable math
 * of vmath.h, compiled for AVX-512/AVX2 when the CPU has them. */
#include "kernels.h"
#include "vmath.h"

#include <math.h>

/* float32's row loops contract into fused multiply-adds, float64's do not
 * (it keeps libm's functions and one rounding per operation). */
#define ISA_f LOOM__ISA_FUNCTION_FMA
#define ISA_d LOOM__ISA_FUNCTION

static inline float sigm_f(float x) { return loom__sigmoidf(x); }
static inline float tanh_f(float x) { return loom__tanhf(x); }
static inline double sigm_d(double x) { return 1 / (1 + exp(-x)); }
static inline double tanh_d(double x) { return tanh(x); }

/* ---- LSTM ----
 * gates: B x 4H pre-activations (i, f, g, o), overwritten with the
 * activations; c_prev, h_prev, c, h, out: B x H (out gets h, or 0 past a
 * sequence's end). peep: the three peephole vectors (H each), zeros for a
 * plain LSTM, so that the row loops have no branches and vectorise. */
/* One row of the LSTM's backward: dh and dc, the incoming gradients of h
 * and c (dh includes the output's), give the gates' gradients in DG and
 * dc_prev in dcp. A holds the activations; DG may be A itself (in place:
 * each element's four gradients are written after its four activations
 * are read, so the in-place function below is the same arithmetic). */
#define LSTM_ROW_BWD(T, S, A, DG)                                              \
  for (int64_t j = 0; j < H; j++) {                                            \
    T i = A[j], f = A[H + j], g = A[2 * H + j], o = A[3 * H + j];              \
    T tc = tanh_##S(cn[j]);                                                    \
    T dao = dh[j] * tc * o * (1 - o);                                          \
    T dct = dc[j] + dh[j] * o * (1 - tc * tc) + dao * po[j];                   \
    T dai = dct * g * i * (1 - i);                                             \
    T daf = dct * cp[j] * f * (1 - f);                                         \
    DG[j] = dai;                                                               \
    DG[H + j] = daf;                                                           \
    DG[2 * H + j] = dct * i * (1 - g * g);                                     \
    DG[3 * H + j] = dao;                                                       \
    dcp[j] = dct * f + dai * pi[j] + daf * pf[j];                              \
  }

#define LSTM(T, S)                                                             \
  ISA_##S(lstm_row_##S,                                                        \
          (int64_t H, T *restrict g, const T *restrict cp, T *restrict cn,     \
           T *restrict hn, T *restrict o, const T *restrict pi,                \
           const T *restrict pf, const T *restrict po),                        \
          (H, g, cp, cn, hn, o, pi, pf, po)) {                                 \
    for (int64_t j = 0; j < H; j++) {                                          \
      T i = sigm_##S(g[j] + pi[j] * cp[j]);                                    \
      T f = sigm_##S(g[H + j] + pf[j] * cp[j]);                                \
      T gg = tanh_##S(g[2 * H + j]);                                           \
      T cc = f * cp[j] + i * gg;                                               \
      T oo = sigm_##S(g[3 * H + j] + po[j] * cc);                              \
      T hh = oo * tanh_##S(cc);                                                \
      g[j] = i;                                                                \
      g[H + j] = f;                                                            \
      g[2 * H + j] = gg;                                                       \
      g[3 * H + j] = oo;                                                       \
      cn[j] = cc;                                                              \
      hn[j] = hh;                                                              \
      o[j] = hh;                                                               \
    }                                                                          \
  }                                                                            \
  ISA_##S(lstm_row_bwd_##S,                                                    \
          (int64_t H, const T *restrict a, const T *restrict cp,               \
           const T *restrict cn, const T *restrict dh, const T *restrict dc,   \
           T *restrict dg, T *restrict dcp, const T *restrict pi,              \
           const T *restrict pf, const T *restrict po),                        \
          (H, a, cp, cn, dh, dc, dg, dcp, pi, pf, po)) {                       \
    LSTM_ROW_BWD(T, S, a, dg);                                                 \
  }                                                                            \
  ISA_##S(lstm_row_bwd_in_place_##S,                                           \
          (int64_t H, T *restrict ag, const T *restrict cp,                    \
           const T *restrict cn, const T *restrict dh, const T *restrict dc,   \
           T *restrict dcp, const T *restrict pi, const T *restrict pf,        \
           const T *restrict po),                                              \
          (H, ag, cp, cn, dh, dc, dcp, pi, pf, po)) {                          \
    LSTM_ROW_BWD(T, S, ag, ag);                                                \
  }                                                                            \
  static void lstm_fwd_##S(int64_t B, int64_t H, T *gates, const T *c_prev,    \
                           const T *h_prev, T *c, T *h, T *out,                \
                           const T *const *p, const uint8_t *active) {         \
    for (int64_t b = 0; b < B; b++) {                                          \
      if (active && !active[b]) {                                              \
        memcpy(c + b * H, c_prev + b * H, (size_t)H * sizeof(T));              \
        memcpy(h + b * H, h_prev + b * H, (size_t)H * sizeof(T));              \
        memset(out + b * H, 0, (size_t)H * sizeof(T));                         \
        continue;                                                              \
      }                                                                        \
      lstm_row_##S(H, gates + b * 4 * H, c_prev + b * H, c + b * H, h + b * H, \
                   out + b * H, p[0], p[1], p[2]);                             \
    }                                                                          \
  }                                                                            \
  static void lstm_bwd_##S(int64_t B, int64_t H, const T *act,                 \
                           const T *c_prev, const T *c, const T *dh,           \
                           const T *dc, T *dgates, T *dc_prev,                 \
                           const T *const *p, const uint8_t *active) {         \
    for (int64_t b = 0; b < B; b++) {                                          \
      T *dg = dgates + b * 4 * H;                                              \
      if (active && !active[b]) {                                              \
        memset(dg, 0, (size_t)(4 * H) * sizeof(T));                            \
        memcpy(dc_prev + b * H, dc + b * H, (size_t)H * sizeof(T));            \
        continue;                                                              \
      }                                                                        \
      const T *cp = c_prev + b * H, *cn = c + b * H;                           \
      if (dg == act + b * 4 * H)                                               \
        lstm_row_bwd_in_place_##S(H, dg, cp, cn, dh + b * H, dc + b * H,       \
                                  dc_prev + b * H, p[0], p[1], p[2]);          \
      else                                                                     \
        lstm_row_bwd_##S(H, act + b * 4 * H, cp, cn, dh + b * H, dc + b * H,   \
                         dg, dc_prev + b * H, p[0], p[1], p[2]);               \
    }                                                                          \
  }                                                                            \
  static void lstm_peep_##S(int64_t B, int64_t H, const T *dgates,             \
                            const T *c_prev, const T *c, double *dp,           \
                            const uint8_t *active) {                           \
    for (int64_t b = 0; b < B; b++) {                                          \
      if (active && !active[b])                                                \
        continue;                                                              \
      const T *dg = dgates + b * 4 * H, *cp = c_prev + b * H, *cn = c + b * H; \
      for (int64_t j = 0; j < H; j++) {                                        \
        dp[j] += (double)dg[j] * cp[j];                                        \
        dp[H + j] += (double)dg[H + j] * cp[j];                                \
        dp[2 * H + j] += (double)dg[3 * H + j] * cn[j];                        \
      }                                                                        \
    }                                                                          \
  }
LSTM(float, f)
LSTM(double, d)

void loom__kernel_lstm_step(loom_dtype t, int64_t B, int64_t H, void *gates,
                            const void *c_prev, const void *h_prev, void *c,
                            void *h, void *out, const void *const *peep,
                            const uint8_t *active) {
  if (t == LOOM_F32)
    lstm_fwd_f(B, H, gates, c_prev, h_prev, c, h, out,
               (const float *const *)peep, active);
  else
    lstm_fwd_d(B, H, gates, c_prev, h_prev, c, h, out,
               (const double *const *)peep, active);
}

void loom__kernel_lstm_step_backward(loom_dtype t, int64_t B, int64_t H,
                                     const void *act, const void *c_prev,
                                     const void *c, const void *dh,
                                     const void *dc, void *dgates,
                                     void *dc_prev, const void *const *peep,
                                     const uint8_t *active) {
  if (t == LOOM_F32)
    lstm_bwd_f(B, H, act, c_prev, c, dh, dc, dgates, dc_prev,
               (const float *const *)peep, active);
  else
    lstm_bwd_d(B, H, act, c_prev, c, dh, dc, dgates, dc_prev,
               (const double *const *)peep, active);
}

void loom__kernel_lstm_peephole_grad(loom_dtype t, int64_t B, int64_t H,
                                     const void *dgates, const void *c_prev,
                                     const void *c, double *dpeep,
                                     const uint8_t *active) {
  if (t == LOOM_F32)
    lstm_peep_f(B, H, dgates, c_prev, c, dpeep, active);
  else
    lstm_peep_d(B, H, dgates, c_prev, c, dpeep, active);
}

/* ---- GRU (PyTorch's formulation) ----
 * act: B x 3H, holding the input part (with b_ih), receives r, z, n in
 * its place; hg: B x 3H recurrent part (with b_hh). */
#define GRU(T, S)                                                              \
  /* Separate row functions with restrict pointers, so the compiler knows      \
   * the outputs alias no input and vectorises the loops (it did not when      \
   * they were inline in the batch loop: the forward pass cost 5x the          \
   * LSTM's per element, 13% of a GRU training step). In place: each           \
   * element of a is read before it is written, at the same index. */          \
  ISA_##S(gru_row_##S,                                                         \
          (int64_t H, T *restrict a, const T *restrict hh,                     \
           const T *restrict hp, T *restrict hn),                              \
          (H, a, hh, hp, hn)) {                                                \
    for (int64_t j = 0; j < H; j++) {                                          \
      T r = sigm_##S(a[j] + hh[j]);                                            \
      T z = sigm_##S(a[H + j] + hh[H + j]);                                    \
      T n = tanh_##S(a[2 * H + j] + r * hh[2 * H + j]);                        \
      a[j] = r;                                                                \
      a[H + j] = z;                                                            \
      a[2 * H + j] = n;                                                        \
      hn[j] = n + z * (hp[j] - n);                                             \
    }                                                                          \
  }                                                                            \
  static void gru_fwd_##S(int64_t B, int64_t H, const T *hg, const T *h_prev,  \
                          T *act, T *h, T *out, const uint8_t *active) {       \
    for (int64_t b = 0; b < B; b++) {                                          \
      const T *hh = hg + b * 3 * H, *hp = h_prev + b * H;                      \
      T *a = act + b * 3 * H, *hn = h + b * H, *o = out ? out + b * H : NULL;  \
      if (active && !active[b]) {                                              \
        for (int64_t j = 0; j < H; j++)                                        \
          hn[j] = hp[j];                                                       \
        if (o)                                                                 \
          for (int64_t j = 0; j < H; j++)                                      \
            o[j] = 0;                                                          \
        continue;                                                              \
      }                                                                        \
      gru_row_##S(H, a, hh, hp, hn);                                           \
      if (o)                                                                   \
        memcpy(o, hn, (size_t)H * sizeof(T));                                  \
    }                                                                          \
  }                                                                            \
  /* In place: a's r, z, n (B x 3H) become the input part's gradient and       \
   * hn, the recurrent part's n gate (B x H; all backward reads of that        \
   * part), becomes its gradient; dhg receives the recurrent part's whole      \
   * gradient (B x 3H) for the product with W_hh, and dh_prev the direct       \
   * part z * dh only (the caller adds dhg @ W_hh). Each element is read       \
   * before it is written, at the same index. */                               \
  ISA_##S(gru_row_bwd_##S,                                                     \
          (int64_t H, T *restrict a, T *restrict hh, const T *restrict hp,     \
           const T *restrict d, T *restrict dr, T *restrict dp),               \
          (H, a, hh, hp, d, dr, dp)) {                                         \
    for (int64_t j = 0; j < H; j++) {                                          \
      T r = a[j], z = a[H + j], n = a[2 * H + j];                              \
      T dan = d[j] * (1 - z) * (1 - n * n);                                    \
      T daz = d[j] * (hp[j] - n) * z * (1 - z);                                \
      T dar = dan * hh[j] * r * (1 - r);                                       \
      a[j] = dar;                                                              \
      a[H + j] = daz;                                                          \
      a[2 * H + j] = dan;                                                      \
      hh[j] = dan * r;                                                         \
      dr[j] = dar;                                                             \
      dr[H + j] = daz;                                                         \
      dr[2 * H + j] = dan * r;                                                 \
      dp[j] = d[j] * z;                                                        \
    }                                                                          \
  }                                                                            \
  static void gru_bwd_##S(int64_t B, int64_t H, T *act, T *hn,                 \
                          const T *h_prev, const T *dh, T *dhg, T *dh_prev,    \
                          const uint8_t *active) {                             \
    for (int64_t b = 0; b < B; b++) {                                          \
      T *a = act + b * 3 * H, *hh = hn + b * H, *dr = dhg + b * 3 * H;         \
      const T *hp = h_prev + b * H, *d = dh + b * H;                           \
      T *dp = dh_prev + b * H;                                                 \
      if (active && !active[b]) {                                              \
        for (int64_t j = 0; j < 3 * H; j++)                                    \
          a[j] = dr[j] = 0;                                                    \
        for (int64_t j = 0; j < H; j++) {                                      \
          hh[j] = 0;                                                           \
          dp[j] = d[j];                                                        \
        }                                                                      \
        continue;                                                              \
      }                                                                        \
      gru_row_bwd_##S(H, a, hh, hp, d, dr, dp);                                \
    }                                                                          \
  }
GRU(float, f)
GRU(double, d)

void loom__kernel_gru_step(loom_dtype t, int64_t B, int64_t H, const void *hg,
                           const void *h_prev, void *act, void *h, void *out,
                           const uint8_t *active) {
  if (t == LOOM_F32)
    gru_fwd_f(B, H, hg, h_prev, act, h, out, active);
  else
    gru_fwd_d(B, H, hg, h_prev, act, h, out, active);
}

void loom__kernel_gru_step_backward(loom_dtype t, int64_t B, int64_t H,
                                    void *act, void *hn, const void *h_prev,
                                    const void *dh, void *dhg, void *dh_prev,
                                    const uint8_t *active) {
  if (t == LOOM_F32)
    gru_bwd_f(B, H, act, hn, h_prev, dh, dhg, dh_prev, active);
  else
    gru_bwd_d(B, H, act, hn, h_prev, dh, dhg, dh_prev, active);
}

/* ---- plain RNN ----
 * pre: B x H pre-activation; h = act(pre). */
#define RNN(T, S)                                                              \
  ISA_##S(rnn_fwd_##S,                                                         \
          (int64_t B, int64_t H, const T *pre, const T *h_prev, T *h, T *out,  \
           bool relu, const uint8_t *active),                                  \
          (B, H, pre, h_prev, h, out, relu, active)) {                         \
    for (int64_t b = 0; b < B; b++) {                                          \
      const T *p = pre + b * H, *hp = h_prev + b * H;                          \
      T *hn = h + b * H, *o = out ? out + b * H : NULL;                        \
      bool on = !active || active[b];                                          \
      for (int64_t j = 0; j < H; j++) {                                        \
        T v = relu ? (p[j] < 0 ? 0 : p[j]) : tanh_##S(p[j]);                   \
        hn[j] = on ? v : hp[j];                                                \
        if (o)                                                                 \
          o[j] = on ? v : 0;                                                   \
      }                                                                        \
    }                                                                          \
  }                                                                            \
  ISA_##S(rnn_bwd_##S,                                                         \
          (int64_t B, int64_t H, const T *h, const T *dh, T *dpre, bool relu,  \
           const uint8_t *active),                                             \
          (B, H, h, dh, dpre, relu, active)) {                                 \
    for (int64_t b = 0; b < B; b++) {                                          \
      const T *hb = h + b * H, *d = dh + b * H;                                \
      T *dp = dpre + b * H;                                                    \
      bool on = !active || active[b];                                          \
      for (int64_t j = 0; j < H; j++)                                          \
        dp[j] = !on    ? 0                                                     \
                : relu ? (hb[j] <= 0 ? 0 : d[j]) /* NaN passes, as relu's */   \
                       : d[j] * (1 - hb[j] * hb[j]);                           \
    }                                                                          \
  }
RNN(float, f)
RNN(double, d)

void loom__kernel_rnn_step(loom_dtype t, int64_t B, int64_t H, const void *pre,
                           const void *h_prev, void *h, void *out, bool relu,
                           const uint8_t *active) {
  if (t == LOOM_F32)
    rnn_fwd_f(B, H, pre, h_prev, h, out, relu, active);
  else
    rnn_fwd_d(B, H, pre, h_prev, h, out, relu, active);
}

void loom__kernel_rnn_step_backward(loom_dtype t, int64_t B, int64_t H,
                                    const void *h, const void *dh, void *dpre,
                                    bool relu, const uint8_t *active) {
  if (t == LOOM_F32)
    rnn_bwd_f(B, H, h, dh, dpre, relu, active);
  else
    rnn_bwd_d(B, H, h, dh, dpre, relu, active);
}
