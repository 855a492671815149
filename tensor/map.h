/* Macros that stamp out the inner loops of elementwise kernels: one loop
 * per (op, dtype), with a unit-stride path the compiler vectorises and a
 * general strided path. EXPR sees the element(s) as x (a, b) of type
 * scalar_t (LOOM__MAP2_AS names them) and the op's parameters as p[]. Float
 * math goes through <tgmath.h>, so one expression serves float and double;
 * write non-integer literals as (scalar_t)c so float loops stay in float. */
#ifndef LOOM_MAP_H
#define LOOM_MAP_H

#include "kernels.h"

#include <tgmath.h>

/* The body of a loop function with map1_fn's parameters (o_, x_, n, so,
 * sx, p); LOOM__MAP1 wraps it in a plain function, per-ISA loops in theirs
 * (kernel_unary.c). */
#define LOOM__MAP1_BODY(T, TO, EXPR)                                           \
  typedef T scalar_t;                                                          \
  (void)p;                                                                     \
  if (so == (int64_t)sizeof(TO) && sx == (int64_t)sizeof(T)) {                 \
    TO *o = (TO *)o_;                                                          \
    const T *xs = (const T *)x_;                                               \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t x = xs[i];                                                      \
      o[i] = (TO)(EXPR);                                                       \
    }                                                                          \
  } else {                                                                     \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t x = *(const T *)(x_ + i * sx);                                  \
      *(TO *)(o_ + i * so) = (TO)(EXPR);                                       \
    }                                                                          \
  }

#define LOOM__MAP1(NAME, T, TO, EXPR)                                          \
  static void NAME(char *o_, const char *x_, int64_t n, int64_t so,            \
                   int64_t sx, const double *p) {                              \
    LOOM__MAP1_BODY(T, TO, EXPR)                                               \
  }

/* The same for map2_fn's parameters (o_, a_, b_, n, so, sa, sb, p). */
#define LOOM__MAP2_BODY(T, TO, A, B, EXPR)                                     \
  typedef T scalar_t;                                                          \
  (void)p;                                                                     \
  const int64_t es = (int64_t)sizeof(T);                                       \
  if (so == (int64_t)sizeof(TO) && sa == es && sb == es) {                     \
    TO *o = (TO *)o_;                                                          \
    const T *as = (const T *)a_, *bs = (const T *)b_;                          \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t A = as[i], B = bs[i];                                           \
      o[i] = (TO)(EXPR);                                                       \
    }                                                                          \
  } else if (so == (int64_t)sizeof(TO) && sa == es && sb == 0) {               \
    TO *o = (TO *)o_;                                                          \
    const T *as = (const T *)a_;                                               \
    const scalar_t B = *(const T *)b_;                                         \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t A = as[i];                                                      \
      o[i] = (TO)(EXPR);                                                       \
    }                                                                          \
  } else if (so == (int64_t)sizeof(TO) && sa == 0 && sb == es) {               \
    TO *o = (TO *)o_;                                                          \
    const scalar_t A = *(const T *)a_;                                         \
    const T *bs = (const T *)b_;                                               \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t B = bs[i];                                                      \
      o[i] = (TO)(EXPR);                                                       \
    }                                                                          \
  } else {                                                                     \
    for (int64_t i = 0; i < n; i++) {                                          \
      scalar_t A = *(const T *)(a_ + i * sa), B = *(const T *)(b_ + i * sb);   \
      *(TO *)(o_ + i * so) = (TO)(EXPR);                                       \
    }                                                                          \
  }

#define LOOM__MAP2_AS(NAME, T, TO, A, B, EXPR)                                 \
  static void NAME(char *o_, const char *a_, const char *b_, int64_t n,        \
                   int64_t so, int64_t sa, int64_t sb, const double *p) {      \
    LOOM__MAP2_BODY(T, TO, A, B, EXPR)                                         \
  }

/* The operands named a and b. */
#define LOOM__MAP2(NAME, T, TO, EXPR) LOOM__MAP2_AS(NAME, T, TO, a, b, EXPR)

#endif
