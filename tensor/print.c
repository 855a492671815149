/* Printing like PyTorch, and value comparison for tests. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

#define EDGE 3       /* elements shown at each end when summarising */
#define SUMMARY 1000 /* summarise tensors with more elements than this */

typedef struct {
  char *buf;
  size_t len, cap;
  bool oom;
} text;

static void put(text *o, const char *s) {
  size_t n = strlen(s);
  if (o->oom)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *grown = realloc(o->buf, cap);
    if (!grown) {
      o->oom = true;
      return;
    }
    o->buf = grown;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, s, n + 1);
  o->len += n;
}

typedef struct {
  const loom_tensor *t;
  bool summarise;
  int kind; /* 0 int, 1 bool, 2 float integral, 3 fixed, 4 scientific */
  int width;
} style;

static const char *element(const loom_tensor *t, const int64_t *idx) {
  int64_t off = 0;
  for (int d = 0; d < t->ndim; d++)
    off += idx[d] * t->strides[d];
  return t->data + off * (int64_t)loom_dtype_size(t->dtype);
}

static double at(const loom_tensor *t, const int64_t *idx) {
  return loom__read(element(t, idx), t->dtype);
}

/* Integers are read as integers: an int64 beyond 2^53 does not survive a
 * double (and 2^63 - 1 would come back as 2^63, which no int64 holds). */
static int64_t at_int(const loom_tensor *t, const int64_t *idx) {
  const char *p = element(t, idx);
  switch (t->dtype) {
  case LOOM_I64:
    return *(const int64_t *)p;
  case LOOM_I32:
    return *(const int32_t *)p;
  default: /* uint8, bool */
    return *(const uint8_t *)p;
  }
}

static void fmt_value(const style *st, const int64_t *idx, char *out,
                      size_t n) {
  if (st->kind <= 1) {
    int64_t i = at_int(st->t, idx);
    if (st->kind == 0)
      snprintf(out, n, "%lld", (long long)i);
    else
      snprintf(out, n, "%s", i != 0 ? "True" : "False");
    return;
  }
  double v = at(st->t, idx);
  if (!isfinite(v))
    snprintf(out, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  else if (st->kind == 2)
    snprintf(out, n, "%.0f.", v);
  else if (st->kind == 3)
    snprintf(out, n, "%.4f", v);
  else
    snprintf(out, n, "%.4e", v);
}

static bool shown(const style *st, int d, int64_t i) {
  int64_t n = st->t->shape[d];
  return !st->summarise || n <= 2 * EDGE || i < EDGE || i >= n - EDGE;
}

/* Visits the shown elements to choose a format. */
static void scan(const style *st, int d, int64_t *idx, double *lo, double *hi,
                 bool *integral, bool *any) {
  const loom_tensor *t = st->t;
  if (d == t->ndim) {
    double v = at(t, idx);
    if (!isfinite(v))
      return;
    double a = fabs(v);
    *any = true;
    if (a < *lo && a > 0)
      *lo = a;
    if (a > *hi)
      *hi = a;
    if (v != floor(v))
      *integral = false;
    return;
  }
  for (idx[d] = 0; idx[d] < t->shape[d]; idx[d]++)
    if (shown(st, d, idx[d]))
      scan(st, d + 1, idx, lo, hi, integral, any);
}

static void width_of(style *st, int d, int64_t *idx) {
  const loom_tensor *t = st->t;
  if (d == t->ndim) {
    char s[64];
    /* PyTorch sizes float columns by the non-zero finite values only */
    if (st->kind >= 2) {
      double v = at(t, idx);
      if (v == 0 || !isfinite(v))
        return;
    }
    fmt_value(st, idx, s, sizeof s);
    int w = (int)strlen(s);
    if (w > st->width)
      st->width = w;
    return;
  }
  for (idx[d] = 0; idx[d] < t->shape[d]; idx[d]++)
    if (shown(st, d, idx[d]))
      width_of(st, d + 1, idx);
}

static void emit(text *o, const style *st, int d, int64_t *idx, int indent) {
  const loom_tensor *t = st->t;
  if (d == t->ndim) {
    char s[64], padded[80];
    fmt_value(st, idx, s, sizeof s);
    snprintf(padded, sizeof padded, "%*s", st->width, s);
    put(o, padded);
    return;
  }
  put(o, "[");
  int64_t n = t->shape[d];
  bool last = d == t->ndim - 1;
  /* Like PyTorch, a row wraps at 80 columns; a summary's " ..." counts as
   * one item. */
  int64_t per_line = (80 - indent) / (st->width + 2), items = 0;
  if (per_line < 1)
    per_line = 1;
  for (idx[d] = 0; idx[d] < n; idx[d]++) {
    bool skip = !shown(st, d, idx[d]);
    if (skip && idx[d] != EDGE)
      continue;
    if (items > 0) {
      bool wrap = !last || items % per_line == 0;
      put(o, wrap ? "," : ", ");
      for (int k = 0; wrap && k < (last ? 1 : t->ndim - 1 - d); k++)
        put(o, "\n");
      for (int k = 0; wrap && k < indent + 1; k++)
        put(o, " ");
    }
    items++;
    if (skip)
      put(o, last ? " ..." : "...");
    else
      emit(o, st, d + 1, idx, indent + 1);
  }
  put(o, "]");
}

static text render(const loom_tensor *t) {
  text o = {0};
  if (!t) {
    put(&o, "(null)");
    return o;
  }
  style st = {t, t->numel > SUMMARY, 0, 1};
  int64_t idx[LOOM_MAX_DIMS] = {0};
  if (t->dtype == LOOM_BOOL)
    st.kind = 1;
  else if (loom_dtype_is_float(t->dtype)) {
    double lo = INFINITY, hi = 0;
    bool integral = true, any = false;
    scan(&st, 0, idx, &lo, &hi, &integral, &any);
    if (any && integral && !(hi / lo > 1000 || hi > 1e8))
      st.kind = 2;
    else if (any && (hi / lo > 1000 || hi > 1e8 || lo < 1e-4))
      st.kind = 4;
    else
      st.kind = 3;
  }
  width_of(&st, 0, idx);
  put(&o, "tensor(");
  if (t->numel == 0 && t->ndim > 0)
    put(&o, "[]");
  else
    emit(&o, &st, 0, idx, 7);
  if (t->numel == 0 && t->ndim > 1) {
    char s[32];
    put(&o, ", size=(");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(s, sizeof s, d ? ", %lld" : "%lld", (long long)t->shape[d]);
      put(&o, s);
    }
    put(&o, ")");
  }
  if (t->dtype != loom_default_dtype() && t->dtype != LOOM_I64 &&
      t->dtype != LOOM_BOOL) {
    put(&o, ", dtype=torch.");
    put(&o, loom_dtype_name(t->dtype));
  }
  put(&o, ")");
  return o;
}

void loom_fprint(FILE *f, const loom_tensor *t) {
  if (!f) {
    loom_null_argument("fprint");
    return;
  }
  text o = render(t);
  if (o.buf)
    fprintf(f, "%s\n", o.buf);
  free(o.buf);
}

void loom_print(const loom_tensor *t) { loom_fprint(stdout, t); }

size_t loom_format(const loom_tensor *t, char *buf, size_t size) {
  if (!buf && size > 0) /* (NULL, 0) asks for the length, as snprintf */
    return loom_null_argument("format"), 0;
  text o = render(t);
  size_t n = o.len;
  if (size > 0) {
    size_t c = n < size - 1 ? n : size - 1;
    if (o.buf)
      memcpy(buf, o.buf, c);
    buf[c] = '\0';
  }
  free(o.buf);
  return n;
}

/* ---- comparing ---- */

#define TWO_63 9223372036854775808.0

/* |i - j|, exact. */
static uint64_t int_distance(int64_t i, int64_t j) {
  return i >= j ? (uint64_t)i - (uint64_t)j : (uint64_t)j - (uint64_t)i;
}

/* |i - f| for a finite f, rounded once at most and never to 0 unless
 * i == f: (double)i - f would round 2^62 + 1 to 2^62 first. f is split at
 * 2^63 or into its whole and fractional parts, each exact. */
static double mixed_distance(int64_t i, double f) {
  if (f >= TWO_63)
    return i <= 0 ? f - (double)i
                  : (f - TWO_63) + (double)(((uint64_t)1 << 63) - (uint64_t)i);
  if (f < -TWO_63)
    return i >= 0 ? (double)i - f
                  : (double)((uint64_t)i - (uint64_t)INT64_MIN) + (-TWO_63 - f);
  double whole = trunc(f), frac = f - whole;
  int64_t w = (int64_t)whole;
  double d = (double)int_distance(i, w);
  return fabs(i >= w ? d - frac : d + frac);
}

/* Integers compare as integers, exactly; a float beside an integer
 * compares with the integer's exact value; floats as doubles. */
static bool close_at(const loom_tensor *a, const loom_tensor *b,
                     const int64_t *idx, double rtol, double atol, bool exact) {
  bool fa = loom_dtype_is_float(a->dtype), fb = loom_dtype_is_float(b->dtype);
  if (!fa && !fb) {
    int64_t i = at_int(a, idx), j = at_int(b, idx);
    if (i == j)
      return true;
    if (exact)
      return false;
    double tol = atol + rtol * fabs((double)j);
    if (!(tol >= 0))
      return false;
    /* the distance is whole, so comparing with floor(tol) is exact */
    return tol >= 0x1p64 || int_distance(i, j) <= (uint64_t)tol;
  }
  double x = fa ? at(a, idx) : 0, y = fb ? at(b, idx) : 0, dist;
  if (fa && fb) {
    if (isnan(x) && isnan(y))
      return true;
    dist = x == y ? 0 : fabs(x - y);
  } else {
    int64_t i = fa ? at_int(b, idx) : at_int(a, idx);
    double f = fa ? x : y;
    dist = isfinite(f) ? mixed_distance(i, f) : fabs(f);
    if (!fb)
      y = (double)i;
  }
  if (dist == 0)
    return true;
  /* an infinity is close to itself alone (rtol |inf| had let any finite
   * value be close to it), as in torch.isclose */
  if (isinf(x) || isinf(y))
    return false;
  return !exact && dist <= atol + rtol * fabs(y);
}

static bool walk_close(const loom_tensor *a, const loom_tensor *b, double rtol,
                       double atol, bool exact) {
  int64_t idx[LOOM_MAX_DIMS] = {0};
  for (int64_t i = 0; i < a->numel; i++) {
    if (!close_at(a, b, idx, rtol, atol, exact))
      return false;
    for (int d = a->ndim - 1; d >= 0; d--) {
      if (++idx[d] < a->shape[d])
        break;
      idx[d] = 0;
    }
  }
  return true;
}

bool loom_allclose(const loom_tensor *a, const loom_tensor *b, double rtol,
                   double atol) {
  return a && b && loom_same_shape(a, b) && walk_close(a, b, rtol, atol, false);
}

bool loom_equal(const loom_tensor *a, const loom_tensor *b) {
  return a && b && loom_same_shape(a, b) && walk_close(a, b, 0, 0, true);
}
