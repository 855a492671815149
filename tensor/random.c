/* Seeded random numbers: xoshiro256** seeded through splitmix64, normals by
 * the polar method (only log and sqrt, so streams agree across machines
 * with IEEE arithmetic and a correctly rounded log). */
#include "kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

struct loom_rng {
  uint64_t s[4];
  uint64_t has_spare; /* the polar method makes normals in pairs */
  double spare;
};

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void loom_rng_seed(loom_rng *g, uint64_t seed) {
  if (!g) { /* the default generator, as everywhere */
    loom_manual_seed(seed);
    return;
  }
  for (int i = 0; i < 4; i++)
    g->s[i] = splitmix(&seed);
  g->has_spare = 0;
  g->spare = 0;
}

static _Thread_local loom_rng default_rng;
static _Thread_local bool default_seeded;

static loom_rng *resolve(loom_rng *g) {
  if (g)
    return g;
  if (!default_seeded) {
    loom_rng_seed(&default_rng, 0x10011001ull);
    default_seeded = true;
  }
  return &default_rng;
}

loom_rng *loom_rng_new(uint64_t seed) {
  loom_rng *g = malloc(sizeof *g);
  if (!g)
    return LOOM_FAIL(LOOM_ERR_MEMORY, "rng_new: out of memory");
  loom_rng_seed(g, seed);
  return g;
}

void loom_rng_free(loom_rng *g) { free(g); }

void loom_manual_seed(uint64_t seed) {
  loom_rng_seed(&default_rng, seed);
  default_seeded = true;
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t loom_rng_u64(loom_rng *g) {
  g = resolve(g);
  uint64_t *s = g->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double loom_rng_uniform(loom_rng *g) {
  return (double)(loom_rng_u64(g) >> 11) * 0x1.0p-53;
}

double loom_rng_normal(loom_rng *g) {
  g = resolve(g);
  if (g->has_spare) {
    g->has_spare = 0;
    return g->spare;
  }
  double u, v, s;
  do {
    u = 2 * loom_rng_uniform(g) - 1;
    v = 2 * loom_rng_uniform(g) - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  double f = sqrt(-2 * log(s) / s);
  g->spare = v * f;
  g->has_spare = 1;
  return u * f;
}

__extension__ typedef unsigned __int128 u128;

/* Unbiased integer in [0, n) (Lemire's method). */
static uint64_t below(loom_rng *g, uint64_t n) {
  u128 m = (u128)loom_rng_u64(g) * n;
  uint64_t l = (uint64_t)m;
  if (l < n) {
    uint64_t t = -n % n;
    while (l < t) {
      m = (u128)loom_rng_u64(g) * n;
      l = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

void loom_rng_get_state(loom_rng *g, uint64_t st[LOOM_RNG_STATE_WORDS]) {
  g = resolve(g);
  if (!st) {
    loom_null_argument("rng_get_state");
    return;
  }
  for (int i = 0; i < 4; i++)
    st[i] = g->s[i];
  st[4] = g->has_spare;
  memcpy(&st[5], &g->spare, sizeof(double));
}

int loom_rng_set_state(loom_rng *g, const uint64_t st[LOOM_RNG_STATE_WORDS]) {
  g = resolve(g);
  if (!st)
    return loom_null_argument("rng_set_state"), -1;
  if ((st[0] | st[1] | st[2] | st[3]) == 0 || st[4] > 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "rng_set_state: invalid state");
    return -1;
  }
  for (int i = 0; i < 4; i++)
    g->s[i] = st[i];
  g->has_spare = st[4];
  memcpy(&g->spare, &st[5], sizeof(double));
  return 0;
}

/* Random tensors are filled in element order on one thread: the stream is
 * the same whatever the thread count. */
#define FILL(NAME, EXPR)                                                       \
  static loom_tensor *NAME##_fill(loom_tensor *t, loom_rng *g, double a,       \
                                  double b) {                                  \
    (void)b;                                                                   \
    if (!t)                                                                    \
      return NULL;                                                             \
    g = resolve(g);                                                            \
    size_t es = loom_dtype_size(t->dtype);                                     \
    for (int64_t i = 0; i < t->numel; i++)                                     \
      loom__write(t->data + (size_t)i * es, t->dtype, (EXPR));                 \
    return t;                                                                  \
  }
FILL(normal, a + b * loom_rng_normal(g))
FILL(bernoulli, loom_rng_uniform(g) < a ? 1.0 : 0.0)

/* ---- loom_rand ----
 * A float draw is taken again until, rounded to the dtype, it lies in
 * [lo, hi): rounding can carry a draw just below 1 up to hi (float32 of
 * 1 - 2^-53 is 1), or one just above an lo float32 cannot hold down below
 * it. rand_range checks first that the range holds a value of the dtype,
 * or the loop would never end: it did for (-inf, inf), for a float32
 * range between two neighbouring floats, for an int64 range with no
 * integer in it. Once such a value is there, at least about a third of
 * the draws are kept (a rounding cell is at most twice as wide as its
 * neighbour's). Integer dtypes draw integers instead (below), so their
 * values cannot saturate out of the range either. */

typedef struct {
  bool integer;
  int64_t first, last; /* integer dtypes: the integers that can come out */
} rand_range;

/* The dtype's integers in [lo, hi): first > last when there are none.
 * Doubles at or beyond 2^63 are compared before any conversion. */
static rand_range integers_in(loom_dtype dtype, double lo, double hi) {
  int64_t min = dtype == LOOM_I64   ? INT64_MIN
                : dtype == LOOM_I32 ? INT32_MIN
                                    : 0,
          max = dtype == LOOM_I64   ? INT64_MAX
                : dtype == LOOM_I32 ? INT32_MAX
                : dtype == LOOM_U8  ? 255
                                    : 1;
  rand_range r = {.integer = true, .first = 1, .last = 0};
  double c = ceil(lo), d = ceil(hi); /* the integers are c .. d - 1 */
  if (c >= 0x1p63 || d <= -0x1p63)
    return r;
  r.first = c <= -0x1p63 ? INT64_MIN : (int64_t)c;
  r.last = d >= 0x1p63 ? INT64_MAX : (int64_t)d - 1;
  r.first = r.first < min ? min : r.first;
  r.last = r.last > max ? max : r.last;
  return r;
}

/* Checks [lo, hi) for loom_rand: true, or false with LOOM_ERR_ARGUMENT
 * naming the range and the dtype. lo == hi is taken for a float dtype
 * (every element lo, as torch's uniform_(a, a); Xavier with gain 0). */
static bool check_range(loom_dtype dtype, double lo, double hi, rand_range *r) {
  const char *dn = loom_dtype_name(dtype);
  bool is_float = dtype == LOOM_F32 || dtype == LOOM_F64;
  *r = (rand_range){0};
  if (!isfinite(lo) || !isfinite(hi)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "rand: range [%g, %g) for %s: the bounds must be finite", lo,
                   hi, dn);
    return false;
  }
  if (is_float ? !(lo <= hi) : !(lo < hi)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "rand: empty range [%g, %g) for %s: %s",
                   lo, hi, dn,
                   is_float ? "lo must not exceed hi" : "lo must be below hi");
    return false;
  }
  if (is_float && !isfinite(hi - lo)) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "rand: range [%g, %g) for %s is too wide: hi - lo "
                   "overflows a double",
                   lo, hi, dn);
    return false;
  }
  if (dtype == LOOM_F32) {
    if (fabs(lo) > FLT_MAX || fabs(hi) > FLT_MAX) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "rand: range [%g, %g) for float32: the bounds must be "
                     "within float32's range [%g, %g]",
                     lo, hi, -(double)FLT_MAX, (double)FLT_MAX);
      return false;
    }
    float first = (float)lo; /* the least float32 at or above lo */
    if (first < lo)
      first = nextafterf(first, INFINITY);
    if (lo < hi && !(first < hi)) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "rand: range [%.17g, %.17g) holds no float32 value (the "
                     "least float32 at or above lo is %.9g)",
                     lo, hi, (double)first);
      return false;
    }
  }
  if (!is_float) {
    *r = integers_in(dtype, lo, hi);
    if (r->first > r->last) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "rand: range [%.10g, %.10g) holds no %s value (no "
                     "integer in it within the dtype's range)",
                     lo, hi, dn);
      return false;
    }
  }
  return true;
}

static double uniform_below(loom_rng *g, loom_dtype t, double a, double b) {
  for (;;) {
    double v = a + (b - a) * loom_rng_uniform(g);
    char r[8];
    loom__write(r, t, v);
    double x = loom__read(r, t);
    if (a == b || (x >= a && x < b))
      return v;
  }
}

loom_tensor *loom_rand(loom_rng *g, loom_dtype dtype, double lo, double hi,
                       int ndim, const int64_t *shape) {
  loom_dtype d = loom__resolve(dtype);
  rand_range r = {0};
  /* an unknown dtype is loom__new's to report */
  if (d > LOOM_DTYPE_DEFAULT && d < LOOM_DTYPE_COUNT &&
      !check_range(d, lo, hi, &r))
    return NULL;
  loom_tensor *t = loom__new(dtype, ndim, shape, "rand");
  if (!t)
    return NULL;
  g = resolve(g);
  size_t es = loom_dtype_size(t->dtype);
  /* every integer of the range equally likely, as randint */
  uint64_t span = (uint64_t)r.last - (uint64_t)r.first + 1; /* 0: 2^64 */
  for (int64_t i = 0; i < t->numel; i++) {
    char *p = t->data + (size_t)i * es;
    if (!r.integer) {
      loom__write(p, t->dtype, uniform_below(g, t->dtype, lo, hi));
      continue;
    }
    int64_t v = (int64_t)((uint64_t)r.first +
                          (span ? below(g, span) : loom_rng_u64(g)));
    if (t->dtype == LOOM_I64)
      memcpy(p, &v, sizeof v);
    else
      loom__write(p, t->dtype, (double)v); /* exact: within the dtype */
  }
  return t;
}

loom_tensor *loom_randn(loom_rng *g, loom_dtype dtype, double mean, double std,
                        int ndim, const int64_t *shape) {
  /* A normal draw written to an integer dtype had been truncated toward
   * zero (saturated, NaN as 0; bool: any non-zero draw 1), and a negative
   * or NaN std taken silently: both refused, as torch's normal_ refuses
   * them. */
  loom_dtype d = loom__resolve(dtype);
  if (d > LOOM_DTYPE_DEFAULT && d < LOOM_DTYPE_COUNT && !loom_dtype_is_float(d))
    return LOOM_FAIL(LOOM_ERR_DTYPE,
                     "randn: dtype %s is not float32 or float64 (a normal "
                     "draw is a real number)",
                     loom_dtype_name(d));
  if (!isfinite(mean) || !(std >= 0) || !isfinite(std))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "randn: mean %g, std %g: the mean must be finite and the "
                     "std a finite number >= 0",
                     mean, std);
  return normal_fill(loom__new(dtype, ndim, shape, "randn"), g, mean, std);
}

loom_tensor *loom_bernoulli(loom_rng *g, loom_dtype dtype, double p, int ndim,
                            const int64_t *shape) {
  if (!(p >= 0 && p <= 1))
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "bernoulli: p = %g not in [0, 1]", p);
  return bernoulli_fill(loom__new(dtype, ndim, shape, "bernoulli"), g, p, 0);
}

/* The integers dtype holds exactly, false for int64 (all of them). A
 * value beyond them would saturate (uint8, bool) or round (float32 above
 * 2^24, float64 above 2^53), landing outside [lo, hi) or on a neighbour
 * that then comes up twice as often. */
static bool exact_integers(loom_dtype dtype, int64_t *min, int64_t *max) {
  switch (dtype) {
  case LOOM_F32:
    *min = -(*max = 1ll << 24);
    return true;
  case LOOM_F64:
    *min = -(*max = 1ll << 53);
    return true;
  case LOOM_I32:
    *min = INT32_MIN, *max = INT32_MAX;
    return true;
  case LOOM_U8:
    *min = 0, *max = UINT8_MAX;
    return true;
  case LOOM_BOOL:
    *min = 0, *max = 1;
    return true;
  default:
    return false;
  }
}

loom_tensor *loom_randint(loom_rng *g, loom_dtype dtype, int64_t lo, int64_t hi,
                          int ndim, const int64_t *shape) {
  if (hi <= lo)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "randint: empty range [%lld, %lld)",
                     (long long)lo, (long long)hi);
  if (dtype == LOOM_DTYPE_DEFAULT)
    dtype = LOOM_I64;
  int64_t min, max;
  if (exact_integers(dtype, &min, &max) && (lo < min || hi - 1 > max))
    return LOOM_FAIL(
        LOOM_ERR_ARGUMENT,
        "randint: range [%lld, %lld) does not fit %s [%lld, %lld]%s",
        (long long)lo, (long long)hi, loom_dtype_name(dtype), (long long)min,
        (long long)max,
        loom_dtype_is_float(dtype) ? " (the integers it holds exactly)" : "");
  loom_tensor *t = loom__new(dtype, ndim, shape, "randint");
  if (!t)
    return NULL;
  g = resolve(g);
  size_t es = loom_dtype_size(t->dtype);
  uint64_t span = (uint64_t)hi - (uint64_t)lo;
  for (int64_t i = 0; i < t->numel; i++) {
    int64_t v = (int64_t)((uint64_t)lo + below(g, span));
    if (t->dtype == LOOM_I64)
      ((int64_t *)t->data)[i] = v;
    else
      loom__write(t->data + (size_t)i * es, t->dtype, (double)v);
  }
  return t;
}

loom_tensor *loom_randperm(loom_rng *g, int64_t n) {
  loom_tensor *t = loom__new(LOOM_I64, 1, &n, "randperm");
  if (!t)
    return NULL;
  g = resolve(g);
  int64_t *p = (int64_t *)t->data;
  for (int64_t i = 0; i < n; i++)
    p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t j = (int64_t)below(g, (uint64_t)i + 1);
    int64_t tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return t;
}

/* ---- dropout ----
 * Masks come from a counter-based stream: element pair q takes the two
 * halves of SplitMix64's output number q + 1 after `key` (one draw from
 * the caller's generator per mask). Any part of a mask can be made without
 * the others, so it is made in parallel and vectorised, and it is the same
 * whatever the thread count. The scalar loop it replaces drew a double per
 * element and then took two more passes (scale the mask, multiply): 30% of
 * a transformer step with dropout 0.1 (bench/transformer.c). */

#define GOLDEN 0x9e3779b97f4a7c15ull

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

typedef struct {
  char *out;
  uint8_t *mask;
  const char *x;
  int64_t n;
  uint64_t key, keep; /* keep an element when its 32 bits are below */
  double scale;
  loom_dtype dtype;
} dropout_job;

/* Pairs [q0, q1) of elements, all of them whole pairs. */
#define DROPOUT_PAIRS(T)                                                       \
  LOOM__ISA_FUNCTION(dropout_pairs_##T,                                        \
                     (T *restrict out, uint8_t *restrict mask,                 \
                      const T *restrict x, int64_t q0, int64_t q1,             \
                      uint64_t key, uint64_t keep, T scale),                   \
                     (out, mask, x, q0, q1, key, keep, scale)) {               \
    for (int64_t q = q0; q < q1; q++) {                                        \
      uint64_t r = mix64(key + (uint64_t)(q + 1) * GOLDEN);                    \
      uint8_t k0 = (r & 0xffffffffu) < keep, k1 = (r >> 32) < keep;            \
      mask[2 * q] = k0;                                                        \
      mask[2 * q + 1] = k1;                                                    \
      out[2 * q] = k0 ? x[2 * q] * scale : 0;                                  \
      out[2 * q + 1] = k1 ? x[2 * q + 1] * scale : 0;                          \
    }                                                                          \
  }
DROPOUT_PAIRS(float)
DROPOUT_PAIRS(double)

static void dropout_part(void *ctx, int64_t q0, int64_t q1) {
  const dropout_job *j = ctx;
  int64_t whole = j->n / 2; /* pairs with both elements */
  int64_t hi = q1 < whole ? q1 : whole;
  if (j->dtype == LOOM_F32)
    dropout_pairs_float((float *)j->out, j->mask, (const float *)j->x, q0, hi,
                        j->key, j->keep, (float)j->scale);
  else
    dropout_pairs_double((double *)j->out, j->mask, (const double *)j->x, q0,
                         hi, j->key, j->keep, j->scale);
  if (q1 > whole) { /* the odd last element: the low half of its pair */
    int64_t i = j->n - 1;
    uint64_t r = mix64(j->key + (uint64_t)(whole + 1) * GOLDEN);
    uint8_t k = (r & 0xffffffffu) < j->keep;
    j->mask[i] = k;
    if (j->dtype == LOOM_F32)
      ((float *)j->out)[i] = k ? ((const float *)j->x)[i] * (float)j->scale : 0;
    else
      ((double *)j->out)[i] = k ? ((const double *)j->x)[i] * j->scale : 0;
  }
}

uint64_t loom__dropout_key(loom_rng *g) { return loom_rng_u64(resolve(g)); }

static uint64_t keep_below(double p) {
  return (uint64_t)((1 - p) * 4294967296.0);
}

/* The mask alone, for pairs [q0, q1): mask[0] is element 2 q0's. */
LOOM__ISA_FUNCTION(mask_pairs,
                   (uint8_t *restrict mask, int64_t q0, int64_t q1,
                    uint64_t key, uint64_t keep),
                   (mask, q0, q1, key, keep)) {
  for (int64_t q = q0; q < q1; q++) {
    uint64_t r = mix64(key + (uint64_t)(q + 1) * GOLDEN);
    mask[2 * (q - q0)] = (r & 0xffffffffu) < keep;
    mask[2 * (q - q0) + 1] = (r >> 32) < keep;
  }
}

void loom__dropout_mask(uint8_t *mask, int64_t first, int64_t n, uint64_t key,
                        double p) {
  uint64_t keep = keep_below(p);
  int64_t i = first, end = first + n;
  if (i < end && i % 2) { /* an odd first element: its pair's high half */
    mask[0] = mix64(key + (uint64_t)(i / 2 + 1) * GOLDEN) >> 32 < keep;
    i++;
  }
  int64_t whole = (end - i) / 2;
  mask_pairs(mask + (i - first), i / 2, i / 2 + whole, key, keep);
  i += 2 * whole;
  if (i < end) /* an odd last element: its pair's low half */
    mask[i - first] =
        (mix64(key + (uint64_t)(i / 2 + 1) * GOLDEN) & 0xffffffffu) < keep;
}

void loom__kernel_dropout(loom_tensor *out, loom_tensor *mask,
                          const loom_tensor *x, double p, loom_rng *g) {
  dropout_job j = {out->data,
                   (uint8_t *)mask->data,
                   x->data,
                   x->numel,
                   loom__dropout_key(g),
                   keep_below(p),
                   1 / (1 - p),
                   x->dtype};
  int64_t pairs = (x->numel + 1) / 2;
  loom__parallel_for(loom__threads_for(x->numel * 2), pairs, dropout_part, &j);
}

typedef struct {
  char *gin;
  const char *g;
  const uint8_t *mask;
  double scale;
  loom_dtype dtype;
} dropout_grad_job;

#define DROPOUT_GRAD(T)                                                        \
  LOOM__ISA_FUNCTION(dropout_grad_##T,                                         \
                     (T *restrict gin, const T *restrict g,                    \
                      const uint8_t *restrict m, int64_t lo, int64_t hi,       \
                      T scale),                                                \
                     (gin, g, m, lo, hi, scale)) {                             \
    for (int64_t i = lo; i < hi; i++)                                          \
      gin[i] = m[i] ? g[i] * scale : 0;                                        \
  }
DROPOUT_GRAD(float)
DROPOUT_GRAD(double)

static void dropout_grad_part(void *ctx, int64_t lo, int64_t hi) {
  const dropout_grad_job *j = ctx;
  if (j->dtype == LOOM_F32)
    dropout_grad_float((float *)j->gin, (const float *)j->g, j->mask, lo, hi,
                       (float)j->scale);
  else
    dropout_grad_double((double *)j->gin, (const double *)j->g, j->mask, lo, hi,
                        j->scale);
}

void loom__kernel_dropout_backward(loom_tensor *gin, const loom_tensor *g,
                                   const loom_tensor *mask, double p) {
  dropout_grad_job j = {gin->data, g->data, (const uint8_t *)mask->data,
                        1 / (1 - p), g->dtype};
  loom__parallel_for(loom__threads_for(g->numel), g->numel, dropout_grad_part,
                     &j);
}
