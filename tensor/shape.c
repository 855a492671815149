/* Shape, stride and dtype arithmetic shared by every op. */
#include "internal.h"

#include <math.h>

static _Thread_local loom_dtype default_dtype = LOOM_F32;

size_t loom_dtype_size(loom_dtype dtype) {
  switch (dtype) {
  case LOOM_F32:
    return 4;
  case LOOM_F64:
    return 8;
  case LOOM_I64:
    return 8;
  case LOOM_BOOL:
    return 1;
  case LOOM_U8:
    return 1;
  case LOOM_I32:
    return 4;
  default:
    return 0;
  }
}

const char *loom_dtype_name(loom_dtype dtype) {
  switch (dtype) {
  case LOOM_DTYPE_DEFAULT:
    return "default";
  case LOOM_F32:
    return "float32";
  case LOOM_F64:
    return "float64";
  case LOOM_I64:
    return "int64";
  case LOOM_BOOL:
    return "bool";
  case LOOM_U8:
    return "uint8";
  case LOOM_I32:
    return "int32";
  default:
    return "invalid";
  }
}

bool loom_dtype_is_float(loom_dtype dtype) {
  dtype = loom__resolve(dtype);
  return dtype == LOOM_F32 || dtype == LOOM_F64;
}

loom_dtype loom_set_default_dtype(loom_dtype dtype) {
  loom_dtype old = default_dtype;
  if (dtype == LOOM_F32 || dtype == LOOM_F64)
    default_dtype = dtype;
  else
    loom_set_error(LOOM_ERR_DTYPE,
                   "set_default_dtype: %s is not float32 or "
                   "float64",
                   loom_dtype_name(dtype));
  return old;
}

loom_dtype loom_default_dtype(void) { return default_dtype; }

loom_dtype loom__resolve(loom_dtype dtype) {
  return dtype == LOOM_DTYPE_DEFAULT ? default_dtype : dtype;
}

/* Rank in the promotion lattice
 * bool < uint8 < int32 < int64 < float32 < float64. */
static int rank(loom_dtype d) {
  switch (d) {
  case LOOM_BOOL:
    return 0;
  case LOOM_U8:
    return 1;
  case LOOM_I32:
    return 2;
  case LOOM_I64:
    return 3;
  case LOOM_F32:
    return 4;
  case LOOM_F64:
    return 5;
  default:
    return -1;
  }
}

static bool is_integer(loom_dtype d) {
  return d == LOOM_U8 || d == LOOM_I32 || d == LOOM_I64;
}

loom_dtype loom__promote(loom_dtype a, loom_dtype b) {
  return rank(a) >= rank(b) ? a : b;
}

loom_dtype loom__promote_tensors(const loom_tensor *a, const loom_tensor *b) {
  /* As in PyTorch, a 0-dim operand of the same kind (both floating or both
   * integer) does not raise a sized operand's dtype. */
  bool af = loom_dtype_is_float(a->dtype), bf = loom_dtype_is_float(b->dtype);
  bool same_kind = (af && bf) || (is_integer(a->dtype) && is_integer(b->dtype));
  if (same_kind && (a->ndim == 0) != (b->ndim == 0))
    return a->ndim == 0 ? b->dtype : a->dtype;
  return loom__promote(a->dtype, b->dtype);
}

double loom__read(const char *p, loom_dtype dtype) {
  switch (dtype) {
  case LOOM_F32:
    return *(const float *)p;
  case LOOM_F64:
    return *(const double *)p;
  case LOOM_I64:
    return (double)*(const int64_t *)p;
  case LOOM_I32:
    return *(const int32_t *)p;
  case LOOM_BOOL:
  case LOOM_U8:
    return *(const uint8_t *)p;
  default:
    return NAN;
  }
}

void loom__write(char *p, loom_dtype dtype, double v) {
  switch (dtype) {
  case LOOM_F32:
    *(float *)p = (float)v;
    break;
  case LOOM_F64:
    *(double *)p = v;
    break;
  case LOOM_I64:
    *(int64_t *)p = loom__to_i64(v);
    break;
  case LOOM_I32:
    *(int32_t *)p = loom__to_i32(v);
    break;
  case LOOM_BOOL:
    *(uint8_t *)p = v != 0;
    break;
  case LOOM_U8:
    *(uint8_t *)p = loom__to_u8(v);
    break;
  default:
    break;
  }
}

int64_t loom__numel_of(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

bool loom__sizes_fit(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] <= 1)
      continue;
    if (n > LOOM_MAX_ELEMENTS / shape[i])
      return false;
    n *= shape[i];
  }
  return true;
}

int64_t loom_size_mul(int64_t a, int64_t b, const char *op) {
  if (a >= 0 && b >= 0 && (b == 0 || a <= LOOM_MAX_ELEMENTS / b))
    return a * b;
  loom_set_error(LOOM_ERR_SHAPE,
                 "%s: size %lld x %lld is negative or above %lld (2^59 - 1)",
                 op ? op : "size_mul", (long long)a, (long long)b,
                 (long long)LOOM_MAX_ELEMENTS);
  return -1;
}

void loom__contiguous_strides(int ndim, const int64_t *shape,
                              int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i] > 1 ? shape[i] : 1;
  }
}

bool loom__is_contiguous(const loom_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != s)
      return t->numel == 0;
    s *= t->shape[i];
  }
  return true;
}

int loom__dim(int dim, int ndim, const char *op) {
  int n = ndim > 0 ? ndim : 1;
  if (dim < -n || dim >= n) {
    loom_set_error(LOOM_ERR_ARGUMENT, "%s: dim %d out of range for %d dims", op,
                   dim, ndim);
    return -1;
  }
  return dim < 0 ? dim + n : dim;
}

int loom__broadcast_shape(const loom_tensor *a, const loom_tensor *b,
                          int64_t *out, const char *op) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < n; i++) {
    int ia = a->ndim - n + i, ib = b->ndim - n + i;
    int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char s1[96], s2[96];
      loom_set_error(LOOM_ERR_SHAPE,
                     "%s: shapes %s and %s do not broadcast "
                     "(dim %d: %lld vs %lld)",
                     op, loom_shape_str(a, s1, sizeof s1),
                     loom_shape_str(b, s2, sizeof s2), i, (long long)sa,
                     (long long)sb);
      return -1;
    }
    out[i] = sa == 1 ? sb : sa;
  }
  return n;
}

void loom__broadcast_strides(const loom_tensor *t, int ndim,
                             const int64_t *shape, int64_t *strides) {
  for (int i = 0; i < ndim; i++) {
    int it = t->ndim - ndim + i;
    strides[i] =
        it < 0 || (t->shape[it] == 1 && shape[i] != 1) ? 0 : t->strides[it];
  }
}

char *loom_format_shape(int ndim, const int64_t *shape, char *buf,
                        size_t size) {
  if (!buf || (ndim > 0 && !shape))
    return loom_null_argument("format_shape");
  size_t used = 0;
  used += (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                             (long long)shape[i]);
  if (used < size)
    snprintf(buf + used, size - used, "]");
  return buf;
}

const char *loom_shape_text(const loom_tensor *t) {
  static _Thread_local char ring[4][128];
  static _Thread_local int next;
  char *buf = ring[next++ & 3];
  return loom_shape_str(t, buf, 128);
}
