/* Cumulative sums and products along a dim (cumsum, cumprod and the
 * reversed sum their gradients use).
 *
 * Each line is scanned by one thread in its own order, so results never
 * depend on the thread count. Float lines accumulate in double, as
 * PyTorch's CPU kernels do; int64 lines wrap around on overflow, as
 * PyTorch's do, computed unsigned (where C defines the wrap). When the
 * dim is not the last, LANES neighbouring lines are scanned side by side,
 * so each step reads a contiguous run instead of one element per line.
 */
#include "kernels.h"

#define LANES 64

typedef struct {
  char *out;
  const char *x;
  int64_t len, inner, blocks; /* blocks: runs of LANES lines per outer */
  bool reverse;
} scan_job;

#define ADD(acc, v) ((acc) + (v))
#define MUL(acc, v) ((acc) * (v))

/* Units [u0, u1): with inner == 1 a unit is one line, else a run of up to
 * LANES neighbouring lines of one outer index. */
#define SCAN(NAME, T, ACC, OP, INIT)                                           \
  static void NAME(const scan_job *j, int64_t u0, int64_t u1) {                \
    int64_t len = j->len, step = j->reverse ? -j->inner : j->inner;            \
    if (j->inner == 1) {                                                       \
      for (int64_t u = u0; u < u1; u++) {                                      \
        const T *x = (const T *)j->x + u * len + (j->reverse ? len - 1 : 0);   \
        T *y = (T *)j->out + (x - (const T *)j->x);                            \
        ACC acc = INIT;                                                        \
        for (int64_t k = 0; k < len; k++) {                                    \
          acc = OP(acc, (ACC)x[k * step]);                                     \
          y[k * step] = (T)acc;                                                \
        }                                                                      \
      }                                                                        \
      return;                                                                  \
    }                                                                          \
    for (int64_t u = u0; u < u1; u++) {                                        \
      int64_t o = u / j->blocks, i0 = u % j->blocks * LANES;                   \
      int lanes = (int)(j->inner - i0 < LANES ? j->inner - i0 : LANES);        \
      int64_t first =                                                          \
          o * len * j->inner + i0 + (j->reverse ? (len - 1) * j->inner : 0);   \
      const T *x = (const T *)j->x + first;                                    \
      T *y = (T *)j->out + first;                                              \
      ACC acc[LANES];                                                          \
      for (int l = 0; l < lanes; l++)                                          \
        acc[l] = INIT;                                                         \
      for (int64_t k = 0; k < len; k++, x += step, y += step)                  \
        for (int l = 0; l < lanes; l++) {                                      \
          acc[l] = OP(acc[l], (ACC)x[l]);                                      \
          y[l] = (T)acc[l];                                                    \
        }                                                                      \
    }                                                                          \
  }

SCAN(sum_f32, float, double, ADD, 0)
SCAN(sum_f64, double, double, ADD, 0)
SCAN(sum_i64, int64_t, uint64_t, ADD, 0)
SCAN(prod_f32, float, double, MUL, 1)
SCAN(prod_f64, double, double, MUL, 1)
SCAN(prod_i64, int64_t, uint64_t, MUL, 1)

typedef void (*scan_fn)(const scan_job *j, int64_t u0, int64_t u1);

typedef struct {
  scan_job job;
  scan_fn fn;
} scan_task;

static void scan_part(void *ctx, int64_t u0, int64_t u1) {
  const scan_task *t = ctx;
  t->fn(&t->job, u0, u1);
}

void loom__kernel_cumulative(loom_tensor *out, const loom_tensor *x, int dim,
                             bool product, bool reverse) {
  if (x->numel == 0)
    return;
  static const scan_fn fns[2][3] = {{sum_f32, sum_f64, sum_i64},
                                    {prod_f32, prod_f64, prod_i64}};
  int type = x->dtype == LOOM_F32 ? 0 : x->dtype == LOOM_F64 ? 1 : 2;
  scan_task t = {.job = {.out = out->data,
                         .x = x->data,
                         .len = x->ndim ? x->shape[dim] : 1,
                         .inner = 1,
                         .reverse = reverse},
                 .fn = fns[product][type]};
  int64_t outer = 1;
  for (int i = 0; i < dim; i++)
    outer *= x->shape[i];
  for (int i = dim + 1; i < x->ndim; i++)
    t.job.inner *= x->shape[i];
  t.job.blocks = t.job.inner == 1 ? 1 : (t.job.inner + LANES - 1) / LANES;
  loom__parallel_for(loom__threads_for(x->numel * 2), outer * t.job.blocks,
                     scan_part, &t);
}
