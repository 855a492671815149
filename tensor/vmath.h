/* Float32 exp, tanh, sigmoid and erf that compilers vectorise: branch-free
 * Cody-Waite reduction and Cephes minimax polynomials, NaN propagating,
 * correct limits at +-inf. The worst error over every float against
 * double, in ulps (test_vector_math_ulps with LOOM_ULPS_ALL=1; erf by a
 * standalone loop): exp 1.01, tanh 1.33, sigmoid 2.83 (x e^x / (1 + e^x)
 * below 0: e^x's error, the sum's and the division's), erf 2.76 (2.3 on
 * the grid its coefficients were fitted on), the same where the loops
 * contract into fused multiply-adds (AVX2, AVX-512:
 * LOOM__ISA_FUNCTION_FMA) and at the baseline level, but exp's 0.99 there.
 * Used by the float32 kernels of exp-based ops, softmax and the fused
 * recurrent cells; float64 stays with libm. Not installed. */
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
  /* Clamp to where the result is finite and non-zero. A NaN fails the
   * first comparison and becomes the upper bound (it is put back at the
   * end), so the conversion to an integer below always sees a number in
   * range: a NaN there gave INT_MIN, and 2^k a left shift of a negative
   * value. */
  float c = x < 88.7228391f ? x : 88.7228391f;
  c = c > -103.972077f ? c : -103.972077f;
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

/* erf: x P(x^2) below 0.875; above, 1 - e^{-x^2} S(1/x) / x, with S =
 * x erfc(x) e^{x^2} fitted in 1/x on [0.875, 2) and [2, 4) (weighted
 * least squares in double, coefficients rounded to float; the worst error
 * over a fine grid of [-4.5, 4.5] is 2.3 ulp); 1 from 4 on, where erf
 * rounds to 1. */
static inline float loom__erff(float x) {
  float a = x < 0 ? -x : x, z = x * x;
  float p = 8.776292088e-05f;
  p = p * z - 8.232936379e-04f;
  p = p * z + 5.208509509e-03f;
  p = p * z - 2.686223574e-02f;
  p = p * z + 1.128374413e-01f;
  p = p * z - 3.761263788e-01f;
  p = p * z + 1.128379226e+00f;
  float small = x * p;
  float u = 1.0f / (a < 0.875f ? 0.875f : a);
  float t1 = u - 8.214285970e-01f, t2 = u - 3.750000000e-01f;
  float s1 = 6.434109528e-03f;
  s1 = s1 * t1 + 2.600307809e-03f;
  s1 = s1 * t1 - 1.695671864e-02f;
  s1 = s1 * t1 + 3.031096421e-02f;
  s1 = s1 * t1 - 3.835551441e-02f;
  s1 = s1 * t1 + 2.766282670e-02f;
  s1 = s1 * t1 + 2.656740695e-02f;
  s1 = s1 * t1 - 1.657691002e-01f;
  s1 = s1 * t1 + 4.562145174e-01f;
  float s2 = -2.516303062e-01f;
  s2 = s2 * t2 + 1.998652369e-01f;
  s2 = s2 * t2 - 3.782360628e-02f;
  s2 = s2 * t2 - 1.163134724e-01f;
  s2 = s2 * t2 + 1.772679389e-01f;
  s2 = s2 * t2 - 9.203989804e-02f;
  s2 = s2 * t2 - 1.515855342e-01f;
  s2 = s2 * t2 + 5.308603644e-01f;
  float s = a < 2.0f ? s1 : s2;
  float big = 1.0f - loom__expf(-(a < 4.0f ? a * a : 16.0f)) * (s * u);
  big = a >= 4.0f ? 1.0f : big;
  big = x < 0 ? -big : big;
  float y = a < 0.875f ? small : big;
  return x != x ? x : y;
}

/* GELU, x Phi(x), and its derivative Phi(x) + x phi(x). Every sum in
 * these functions has at most one product among its operands: where
 * multiply-adds are fused (LOOM__ISA_FUNCTION_FMA) a sum of two products
 * may fuse either, and GCC chose differently in vector and scalar code
 * (Phi(x) was 0.5 (1 + erf), and the gradient's bits depended on where a
 * range's vector loop ended). */
static inline float loom__geluf(float x) {
  return 0.5f * x * (1.0f + loom__erff(x * 0.70710678118654752f));
}
static inline float loom__gelu_gradf(float x) {
  float cdf = 0.5f + 0.5f * loom__erff(x * 0.70710678118654752f);
  return cdf + x * 0.39894228040143267794f * loom__expf(-0.5f * x * x);
}

#endif
