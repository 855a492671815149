/* Float32 exp, tanh and sigmoid that compilers vectorise: branch-free
 * Cody-Waite reduction and Cephes minimax polynomials, ~1 ulp for exp,
 * <= 2 ulp for tanh/sigmoid, NaN propagating, correct limits at +-inf.
 * Used by the float32 kernels of exp-based ops and the fused recurrent
 * cells; float64 stays with libm. Not installed. */
#ifndef LOOM_VMATH_H
#define LOOM_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float loom__bits_to_float(int32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static inline float loom__expf(float x) {
  /* Clamp to where the result is finite and non-zero (keeping NaN:
   * comparisons with NaN fail). */
  float c = x > 88.7228391f ? 88.7228391f : x;
  c = c < -103.972077f ? -103.972077f : c;
  /* k = round(c / ln 2) by the 1.5 * 2^23 trick; r = c - k ln 2 in two
   * parts so r is exact to ~1 ulp. */
  float k = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = c - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  /* 2^k in two factors, so k down to -150 (subnormal results) and up to
   * 128 (just below overflow) stay exact. */
  int32_t ki = (int32_t)k, k1 = ki / 2, k2 = ki - k1;
  float y = p * loom__bits_to_float((k1 + 127) << 23) *
            loom__bits_to_float((k2 + 127) << 23);
  y = x > 88.7228391f ? (float)__builtin_inff() : y;
  y = x < -103.972077f ? 0.0f : y;
  return x != x ? x : y;
}

static inline float loom__tanhf(float x) {
  float a = x < 0 ? -x : x;
  /* |x| < 0.625: odd polynomial; else 1 - 2 / (e^{2|x|} + 1). */
  float x2 = x * x;
  float p = -5.70498872745e-3f;
  p = p * x2 + 2.06390887954e-2f;
  p = p * x2 - 5.37397155531e-2f;
  p = p * x2 + 1.33314422036e-1f;
  p = p * x2 - 3.33332819422e-1f;
  float small = x + x * x2 * p;
  float e = loom__expf(2.0f * (a > 9.0f ? 9.0f : a));
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = a > 9.0f ? 1.0f : big; /* tanh(9) rounds to 1 in float */
  big = x < 0 ? -big : big;
  float y = a < 0.625f ? small : big;
  return x != x ? x : y;
}

/* 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below, both from
 * e = e^-|x| <= 1: no overflow, and tiny results keep their precision. */
static inline float loom__sigmoidf(float x) {
  float e = loom__expf(x < 0 ? x : -x);
  float r = 1.0f / (1.0f + e);
  return x >= 0 ? r : e * r;
}

#endif
