/* loom tensor core: dtypes, errors, memory (refcounts + scopes), creation,
 * queries, random numbers, printing.
 *
 * Ownership, in one paragraph (every function below follows it):
 * a function that returns a `loom_tensor *` hands its result to the innermost
 * open scope (see loom_scope_begin); the caller may use it until that scope
 * ends and must not release it. To keep a tensor beyond its scope, take a
 * reference with loom_keep() and later drop it with loom_release(). A thread
 * always has an outermost scope that only loom_cleanup() drains, so results
 * made outside any explicit scope live until then: long loops should open a
 * scope per iteration.
 *
 * Errors: functions that can fail return NULL (or a negative int) and record a
 * thread-local error (loom_last_status / loom_last_error) whose message names
 * the operation and the shapes involved. A function given a NULL tensor
 * (or module, optimizer, ...) fails at once: if an error is pending the NULL
 * is an earlier call's failed result and that first error stays, so a chain
 * of calls can be checked once, at its end; if none is, it records
 * "op: NULL argument". Functions that free, and loom_keep / loom_release,
 * take NULL as nothing to do. Nothing in the library aborts.
 *
 * Threads: reference counts are atomic, so threads may share tensors: any
 * number of threads may read a tensor, keep and release references to it,
 * take views of it and pass it to ops at once (a model's parameters, used
 * by forward passes in every thread). Writing a tensor another thread
 * reads (in-place ops, loom_set, an optimizer step) is a data race unless
 * the program orders the two. Per thread: scopes, the error, the tape and
 * grad mode, the default dtype and the default generator (every thread's
 * starts from the same seed: seed each with loom_manual_seed). A result
 * of a recorded op belongs to the tape of the thread that made it: end its
 * life and backpropagate through it on that thread (loom_detach gives a
 * tensor any thread may use). Call loom_cleanup before a thread ends. The
 * README's "Threads" section has the whole list.
 */
#ifndef LOOM_TENSOR_H
#define LOOM_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LOOM_BUILDING_LIBRARY)
#define LOOM_API __attribute__((visibility("default")))
#else
#define LOOM_API
#endif

#if defined(__GNUC__)
#define LOOM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LOOM_PRINTF(f, a)
#endif

/* Largest number of dimensions a tensor may have. */
#define LOOM_MAX_DIMS 8

/* `LOOM_SHAPE(2, 3)` expands to `2, (int64_t[]){2, 3}`: an (ndim, dims) pair.
 */
#define LOOM_SHAPE(...)                                                        \
  (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                   \
      (const int64_t[]) {                                                      \
    __VA_ARGS__                                                                \
  }

typedef struct loom_tensor loom_tensor;
typedef struct loom_scope loom_scope;
typedef struct loom_rng loom_rng;

/* Element types: float32, float64, int64, bool, uint8 and int32 (torch's
 * names). LOOM_DTYPE_DEFAULT (zero) stands for the thread's default
 * floating dtype (float32 unless changed) wherever a dtype is an argument;
 * a tensor never has it as its dtype. Promotion follows PyTorch's order
 * bool < uint8 < int32 < int64 < float32 < float64, and its rule that a
 * 0-dim operand does not raise the dtype of a sized one of the same kind
 * (integer or float). Integer arithmetic wraps in two's complement as in
 * PyTorch; conversions from floats to integers saturate (NaN gives 0),
 * int64 to int32 wraps, and integers saturate to uint8's range (but a
 * 0-dim integer operand of an op with a uint8 tensor wraps into uint8, as
 * PyTorch casts it). */
typedef enum loom_dtype {
  LOOM_DTYPE_DEFAULT = 0,
  LOOM_F32,
  LOOM_F64,
  LOOM_I64,
  LOOM_BOOL, /* one byte, 0 or 1 */
  LOOM_U8,
  LOOM_I32,
  LOOM_DTYPE_COUNT
} loom_dtype;

/* ---------------------------------------------------------------- errors */

typedef enum loom_status {
  LOOM_OK = 0,
  LOOM_ERR_ARGUMENT, /* a bad scalar argument: dim out of range, p < 0, ... */
  LOOM_ERR_SHAPE,    /* shapes that do not fit together */
  LOOM_ERR_DTYPE,    /* a dtype the operation does not accept */
  LOOM_ERR_INDEX,    /* an index value out of range */
  LOOM_ERR_MEMORY,   /* allocation failed */
  LOOM_ERR_IO,       /* a file could not be opened, read or written */
  LOOM_ERR_FORMAT,   /* a file or text is malformed */
  LOOM_ERR_STATE,    /* misuse of state: autograd, scopes, in-place writes */
  LOOM_ERR_NUMERIC,  /* NaN/Inf found by anomaly mode */
  LOOM_ERR_COMM,     /* communication between processes failed (MPI) */
} loom_status;

/* Status of the first error recorded since the last loom_clear_error(). */
LOOM_API loom_status loom_last_status(void);
/* Its message ("" when none). The text is owned by the thread. */
LOOM_API const char *loom_last_error(void);
LOOM_API void loom_clear_error(void);
/* Records an error unless one is already pending (the first error wins, as
 * it is the cause). For user code that reports errors the library's way. */
LOOM_API void loom_set_error(loom_status status, const char *fmt, ...)
    LOOM_PRINTF(2, 3);
/* Records an error (loom_set_error) and evaluates to NULL: how a function
 * returning a pointer fails in one line,
 *   return LOOM_FAIL(LOOM_ERR_SHAPE, "f: x is %s", loom_shape_text(x)); */
#define LOOM_FAIL(status, ...) (loom_set_error((status), __VA_ARGS__), NULL)
/* For a function given a NULL it needs: records "op: NULL argument"
 * (LOOM_ERR_ARGUMENT) unless an error is pending, and returns NULL, so a
 * function returning a pointer can `return loom_null_argument("op");`. */
LOOM_API void *loom_null_argument(const char *op);
/* Appends " (in <context>)" to the pending error's message, formatted like
 * printf, so an error raised deep inside a call says where it happened (the
 * sequence runner names the cell, layer, direction and step). Nothing when
 * no error is pending; a message that would grow past 511 bytes is cut. */
LOOM_API void loom_error_context(const char *fmt, ...) LOOM_PRINTF(1, 2);

/* ---------------------------------------------------------------- memory */

/* Opens a scope: tensors returned from now on belong to it until it ends. */
LOOM_API loom_scope *loom_scope_begin(void);
/* Ends `s` and any scope opened inside it that is still open, dropping the
 * reference each holds to its tensors. A handle of a scope that is no
 * longer open (ended, drained by loom_cleanup) or that another thread
 * opened ends nothing: LOOM_ERR_STATE. */
LOOM_API void loom_scope_end(loom_scope *s);
/* Ends `s` as loom_scope_end does, except for `t` (NULL-safe), a result
 * made inside it, which moves to the scope that is innermost afterwards;
 * returns t. How a function that computes in a scope of its own returns
 * its result: its temporaries go at once, and when autograd records, only
 * what backward reads stays. A NULL `s` (loom_scope_begin failed) ends
 * nothing: t is returned as it is. Multiple results: loom_keep each, end
 * the scope, loom_autorelease each. */
LOOM_API loom_tensor *loom_scope_return(loom_scope *s, loom_tensor *t);
/* Gives the caller its own reference to `t` (returns `t`; NULL-safe). */
LOOM_API loom_tensor *loom_keep(loom_tensor *t);
/* Drops a reference taken with loom_keep (NULL-safe). */
LOOM_API void loom_release(loom_tensor *t);
/* Hands one of the caller's references to the innermost scope (returns `t`):
 * how a function that computes in its own scope returns a result. */
LOOM_API loom_tensor *loom_autorelease(loom_tensor *t);
/* Releases what the calling thread holds: the tensors its scopes own (the
 * outermost scope's too), its autograd tape, and the memory it keeps for
 * reuse. Tensors kept with loom_keep stay valid, and so does the state of
 * the thread's default generator. Call before a thread or the program ends;
 * loom works as before afterwards. Called while a backward pass runs on the
 * thread (from a hook), it frees nothing and sets LOOM_ERR_STATE. */
LOOM_API void loom_cleanup(void);

/* How much freed memory each thread keeps for reuse. A thread's cache of
 * big blocks (64 KiB and up) is trimmed, on a request it cannot serve,
 * only while the bytes held, live and cached, exceed the most the thread
 * has had live by more than `percent` percent (default
 * LOOM_CACHE_SLACK_DEFAULT; the peak fades a little at each such request
 * and loom_cleanup resets it): a training loop, even one whose shapes
 * change a little from step to step (caption lengths), then reuses what
 * the previous step freed instead of faulting in fresh pages, for at most
 * that much more memory. With -1 each such request instead hands back
 * about its own size while the cache holds more than an eighth of the
 * live bytes: less held, but blocks a step needs later can go.
 * Process-wide; call it before the work starts. 0, or -1 with
 * LOOM_ERR_ARGUMENT for a percent outside -1..1000. */
#define LOOM_CACHE_SLACK_DEFAULT 25
LOOM_API int loom_set_cache_slack(int percent);

/* Live tensor objects and storage bytes in the process (for leak tests). */
LOOM_API int64_t loom_debug_live_tensors(void);
LOOM_API int64_t loom_debug_live_bytes(void);

/* ---------------------------------------------------------------- dtypes */

/* Bytes per element; 0 for an unknown dtype and for LOOM_DTYPE_DEFAULT,
 * which is not resolved here (loom_default_dtype() gives what it means). */
LOOM_API size_t loom_dtype_size(loom_dtype dtype);
/* "float32", ..., "default" for LOOM_DTYPE_DEFAULT, "invalid" for an
 * unknown dtype (a static string; no error recorded). */
LOOM_API const char *loom_dtype_name(loom_dtype dtype);
/* float32 or float64, LOOM_DTYPE_DEFAULT resolved to the thread's. */
LOOM_API bool loom_dtype_is_float(loom_dtype dtype);
/* The dtype LOOM_DTYPE_DEFAULT stands for on this thread (float32 or
 * float64; gradient checks switch it to float64). Returns the previous.
 * Any other dtype is refused (LOOM_ERR_DTYPE) and the default kept. */
LOOM_API loom_dtype loom_set_default_dtype(loom_dtype dtype);
LOOM_API loom_dtype loom_default_dtype(void);

/* ---------------------------------------------------------------- queries */

/* Number of dims (0 for a scalar); -1 with an error for a NULL t. */
LOOM_API int loom_ndim(const loom_tensor *t);
/* Size of dimension `dim` (negative counts from the end); -1 on error. */
LOOM_API int64_t loom_size(const loom_tensor *t, int dim);
/* The shape and strides arrays (ndim entries, strides in elements); borrowed
 * from `t`, valid while `t` lives. */
LOOM_API const int64_t *loom_shape(const loom_tensor *t);
LOOM_API const int64_t *loom_strides(const loom_tensor *t);
/* For a NULL t these three give 0, LOOM_DTYPE_DEFAULT and false, and
 * record no error (loom_ndim, loom_size, loom_shape and loom_strides do
 * record one). */
LOOM_API int64_t loom_numel(const loom_tensor *t);
LOOM_API loom_dtype loom_dtype_of(const loom_tensor *t);
LOOM_API bool loom_is_contiguous(const loom_tensor *t);
LOOM_API bool loom_same_shape(const loom_tensor *a, const loom_tensor *b);
/* Writes "[2, 3]" into buf (at most size bytes, cut short if need be; a
 * NULL t gives "(null)"); returns buf, or NULL with an error for a NULL
 * buf. */
LOOM_API char *loom_shape_str(const loom_tensor *t, char *buf, size_t size);
/* The same for a shape given as ndim sizes (not a tensor's); NULL with an
 * error for a NULL buf, or a NULL shape with ndim > 0. */
LOOM_API char *loom_format_shape(int ndim, const int64_t *shape, char *buf,
                                 size_t size);
/* t's shape as "[2, 3]" in one of four thread-local buffers, for error
 * messages (one message can name four shapes; the fifth call on the thread
 * reuses the first buffer). "(null)" for NULL. */
LOOM_API const char *loom_shape_text(const loom_tensor *t);
/* Address of the first element (element i of a contiguous tensor is at
 * index i). Typed variants return NULL and record an error on a dtype
 * mismatch. Writing through these bypasses autograd's version checks. */
LOOM_API void *loom_data(const loom_tensor *t);
LOOM_API float *loom_data_f32(const loom_tensor *t);
LOOM_API double *loom_data_f64(const loom_tensor *t);
LOOM_API int64_t *loom_data_i64(const loom_tensor *t);
LOOM_API int32_t *loom_data_i32(const loom_tensor *t);
LOOM_API uint8_t *loom_data_u8(const loom_tensor *t); /* bool or uint8 */
/* The element at `index` (ndim entries) as a double; NaN on error. */
LOOM_API double loom_get(const loom_tensor *t, const int64_t *index);
/* The value of a one-element tensor; NaN on error. */
LOOM_API double loom_item(const loom_tensor *t);
/* Writes `value` at `index` (converted to the dtype). 0 or -1. */
LOOM_API int loom_set(loom_tensor *t, const int64_t *index, double value);
/* Copies the elements, in row-major order, into `dst` (n elements of
 * `dtype`, converting). 0, or -1 with an error: LOOM_ERR_SHAPE if n !=
 * numel, LOOM_ERR_DTYPE for an unknown dtype, LOOM_ERR_ARGUMENT for a
 * NULL t, or a NULL dst when n > 0 (with n == 0 dst may be NULL). */
LOOM_API int loom_copy_to_array(const loom_tensor *t, loom_dtype dtype,
                                void *dst, int64_t n);

/* ---------------------------------------------------------------- creation
 * All return a new contiguous tensor owned by the innermost scope, or NULL
 * with an error (bad shape, dtype or out of memory). A shape's sizes must be
 * >= 0 and multiply, zeros counted as ones, to at most LOOM_MAX_ELEMENTS
 * (so element counts, byte counts and strides cannot overflow); a larger
 * one fails with LOOM_ERR_SHAPE ("too large"). */

#define LOOM_MAX_ELEMENTS (INT64_MAX / 16) /* 2^59 - 1 */

/* a * b for sizes computed from user options (a layer's 4 * hidden rows, a
 * sequence's T * B steps): the product when a, b >= 0 and it is at most
 * LOOM_MAX_ELEMENTS, else -1 with a LOOM_ERR_SHAPE error naming `op` and
 * both sizes. A -1 passed on as a size fails the next call without
 * replacing that error, so a chain can be checked once, at its end. */
LOOM_API int64_t loom_size_mul(int64_t a, int64_t b, const char *op);

LOOM_API loom_tensor *loom_empty(loom_dtype dtype, int ndim,
                                 const int64_t *shape);
LOOM_API loom_tensor *loom_zeros(loom_dtype dtype, int ndim,
                                 const int64_t *shape);
LOOM_API loom_tensor *loom_ones(loom_dtype dtype, int ndim,
                                const int64_t *shape);
LOOM_API loom_tensor *loom_full(loom_dtype dtype, double value, int ndim,
                                const int64_t *shape);
/* A 0-dimensional tensor holding `value`. */
LOOM_API loom_tensor *loom_scalar(loom_dtype dtype, double value);
LOOM_API loom_tensor *loom_empty_like(const loom_tensor *t);
LOOM_API loom_tensor *loom_zeros_like(const loom_tensor *t);
LOOM_API loom_tensor *loom_ones_like(const loom_tensor *t);
LOOM_API loom_tensor *loom_full_like(const loom_tensor *t, double value);
/* start, start+step, ... < end (> end for negative step), 1-D. NULL with
 * LOOM_ERR_ARGUMENT for a step of 0, a bound or step not finite, or an end
 * on the other side of start than the step goes (torch's rule; end ==
 * start gives an empty tensor); LOOM_ERR_SHAPE past 2^59 - 1 elements. */
LOOM_API loom_tensor *loom_arange(loom_dtype dtype, double start, double end,
                                  double step);
/* `steps` points evenly from start to end inclusive, 1-D: as PyTorch's,
 * the first half from start and the rest from end, so both ends are
 * exact. Computed in float64 for every dtype (PyTorch computes a float32
 * linspace in float32, so a float32 point can differ from its in the
 * last bit). LOOM_ERR_ARGUMENT for steps < 0 or a bound that is not
 * finite. */
LOOM_API loom_tensor *loom_linspace(loom_dtype dtype, double start, double end,
                                    int64_t steps);
/* n x m identity (m < 0 means m = n). */
LOOM_API loom_tensor *loom_eye(loom_dtype dtype, int64_t n, int64_t m);
/* Copies numel elements of `dtype` from `data`. */
LOOM_API loom_tensor *loom_from_array(loom_dtype dtype, const void *data,
                                      int ndim, const int64_t *shape);
/* Wraps an external buffer without copying. `strides` (in elements) may be
 * NULL (contiguous). Each stride must be in [0, LOOM_MAX_ELEMENTS] and the
 * furthest element, the sum of (size - 1) * stride over the dims of size
 * above 1, at most LOOM_MAX_ELEMENTS, else NULL with LOOM_ERR_SHAPE. No
 * negative strides: loom makes no such view, and its kernels are not
 * written for them. A stride of 0 repeats one element along its
 * dim, as a broadcast (loom_expand) view does. The buffer must hold the
 * furthest element. `release(data, ctx)` is called when the last tensor
 * viewing the buffer is gone (may be NULL). On failure `release` is not
 * called. */
LOOM_API loom_tensor *loom_from_buffer(loom_dtype dtype, void *data, int ndim,
                                       const int64_t *shape,
                                       const int64_t *strides,
                                       void (*release)(void *data, void *ctx),
                                       void *ctx);

/* ---------------------------------------------------------------- random
 * A seeded generator (xoshiro256**) whose streams are the same on every
 * machine. Functions taking `loom_rng *g` use the thread's default
 * generator when g is NULL. */

/* A new generator (caller frees with loom_rng_free, NULL-safe); NULL
 * with LOOM_ERR_MEMORY. */
LOOM_API loom_rng *loom_rng_new(uint64_t seed);
LOOM_API void loom_rng_free(loom_rng *g);
/* Reseeds g (NULL: the thread's default, as loom_manual_seed). */
LOOM_API void loom_rng_seed(loom_rng *g, uint64_t seed);
/* Reseeds the thread's default generator. */
LOOM_API void loom_manual_seed(uint64_t seed);
LOOM_API uint64_t loom_rng_u64(loom_rng *g);
LOOM_API double loom_rng_uniform(loom_rng *g); /* [0, 1) */
LOOM_API double loom_rng_normal(loom_rng *g);  /* mean 0, std 1 */
/* A generator's complete state as LOOM_RNG_STATE_WORDS words, for
 * checkpoints; set returns -1 on an invalid state. */
#define LOOM_RNG_STATE_WORDS 6
LOOM_API void loom_rng_get_state(loom_rng *g,
                                 uint64_t state[LOOM_RNG_STATE_WORDS]);
LOOM_API int loom_rng_set_state(loom_rng *g,
                                const uint64_t state[LOOM_RNG_STATE_WORDS]);

/* Uniform [lo, hi): every value is one of the dtype's in that range. A
 * float dtype draws a real number and rounds it (again until it lands in
 * the range); lo == hi gives lo everywhere, as torch's uniform_(lo, lo).
 * An integer dtype (and bool: 0, 1) draws each of its integers in [lo, hi)
 * with equal probability, those beyond the dtype's range left out (uint8
 * on [-5, 300) gives 0..255). NULL with LOOM_ERR_ARGUMENT naming the range
 * and dtype when a bound is not finite, lo > hi (lo == hi for an integer
 * dtype), hi - lo overflows, a float32 bound is beyond float32's range, or
 * the range holds no value of the dtype (float32 [1 - 1e-9, 1 - 5e-10),
 * int64 [-0.9, -0.2)). */
LOOM_API loom_tensor *loom_rand(loom_rng *g, loom_dtype dtype, double lo,
                                double hi, int ndim, const int64_t *shape);
/* Normal(mean, std), float dtypes only. NULL with LOOM_ERR_DTYPE for an
 * integer or bool dtype, LOOM_ERR_ARGUMENT for a mean that is not finite
 * or a std that is not a finite number >= 0 (0 gives mean everywhere). */
LOOM_API loom_tensor *loom_randn(loom_rng *g, loom_dtype dtype, double mean,
                                 double std, int ndim, const int64_t *shape);
/* Integers uniform in [lo, hi). dtype defaults to int64. An empty range,
 * or one holding an integer the dtype cannot hold exactly, is refused
 * (LOOM_ERR_ARGUMENT, naming the dtype's range: int32's, uint8 [0, 255],
 * bool [0, 1], float32 [-2^24, 2^24], float64 [-2^53, 2^53]). */
LOOM_API loom_tensor *loom_randint(loom_rng *g, loom_dtype dtype, int64_t lo,
                                   int64_t hi, int ndim, const int64_t *shape);
/* 1 with probability p, else 0. */
LOOM_API loom_tensor *loom_bernoulli(loom_rng *g, loom_dtype dtype, double p,
                                     int ndim, const int64_t *shape);
/* A random permutation of 0..n-1 (int64). */
LOOM_API loom_tensor *loom_randperm(loom_rng *g, int64_t n);

/* ---------------------------------------------------------------- printing */

/* Prints like PyTorch: nested brackets, a common format per tensor, rows
 * summarised with "..." beyond 1000 elements. Integers print exactly. */
LOOM_API void loom_print(const loom_tensor *t);
/* A NULL f prints nothing and records a NULL-argument error. */
LOOM_API void loom_fprint(FILE *f, const loom_tensor *t);
/* Formats into buf (truncating, NUL-terminated when size > 0); returns the
 * length it would need. buf may be NULL when size is 0 (asking only for
 * the length, as snprintf); a NULL buf with size > 0 gives 0 and a
 * NULL-argument error. */
LOOM_API size_t loom_format(const loom_tensor *t, char *buf, size_t size);

/* ---------------------------------------------------------------- comparing */

/* Same shape and |a - b| <= atol + rtol * |b| everywhere (NaNs equal when
 * both are NaN; an infinity is close only to the same infinity). Dtypes
 * may differ. Integers are compared exactly, not
 * through a double (int64 values beyond 2^53 stay distinct; the distance
 * of an integer from a float is that of its exact value). False on NULL. */
LOOM_API bool loom_allclose(const loom_tensor *a, const loom_tensor *b,
                            double rtol, double atol);
/* Same shape and equal values, integers compared exactly (as above). */
LOOM_API bool loom_equal(const loom_tensor *a, const loom_tensor *b);

/* ---------------------------------------------------------------- threads */

/* Threads used by loom's kernels and matrix products, which run on loom's
 * own workers (at most 256 run); 0 restores the default (all cores the
 * affinity mask allows); a negative n is refused (LOOM_ERR_ARGUMENT, the
 * setting unchanged). For the process: any thread may set it. One thread at a time
 * uses the workers: a kernel called while another thread's is running
 * runs its parts on its own thread, with the same results. Note: loom splits
 * large products over its workers and calls OpenBLAS on one thread per call, so
 * its first product sets OpenBLAS to one thread (openblas_set_num_threads(1))
 * for the whole process; a program that also calls OpenBLAS directly and wants
 * its threads must set them back around its own calls. */
LOOM_API void loom_set_num_threads(int n);
LOOM_API int loom_num_threads(void);

/* The instruction set loom's vector loops run with: "avx512", "avx2" or
 * "baseline" (a static string). loom picks the widest the CPU supports;
 * the environment variable LOOM_ISA, read once at the first kernel call,
 * can ask for a narrower one (avx2 or baseline on an AVX-512 machine, to
 * measure or test that path). A level the CPU lacks falls to the best it
 * has, and an unknown name is ignored. Results may differ in the last bits
 * between levels (vector widths change summation orders in places). */
LOOM_API const char *loom_isa(void);

#ifdef __cplusplus
}
#endif
#endif
