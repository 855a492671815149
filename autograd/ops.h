/* loom's op surface: every tensor operation a model is written with.
 *
 * Each op returns a new tensor owned by the innermost scope (tensor.h), or
 * NULL with an error naming the op and the shapes; a NULL input gives NULL at
 * once. Ops marked "differentiable" are recorded on the autograd tape when
 * grad mode is on and an input requires grad (autograd.h).
 *
 * Views share storage with their input (writing through one shows in the
 * other); every other op returns fresh memory. Dims may be negative (counted
 * from the end). Binary ops broadcast like NumPy and promote dtypes like
 * PyTorch: bool < uint8 < int64 < float32 < float64; a 0-dimensional float
 * tensor does not raise a float tensor's precision. Where loom differs:
 * elementwise ops of one tensor (the *_scalar ops among them) compute a
 * bool or uint8 tensor as int64 and return int64 (torch keeps uint8,
 * wrapping); loom_pow of two integer tensors returns the default float
 * dtype (torch: int64).
 */
#ifndef LOOM_OPS_H
#define LOOM_OPS_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------ views (differentiable) */

/* Same elements in a new shape; one entry may be -1. A view when the strides
 * allow it, else a copy (like torch.reshape). */
LOOM_API loom_tensor *loom_reshape(const loom_tensor *t, int ndim,
                                   const int64_t *shape);
/* Like loom_reshape but fails instead of copying. */
LOOM_API loom_tensor *loom_view(const loom_tensor *t, int ndim,
                                const int64_t *shape);
LOOM_API loom_tensor *loom_transpose(const loom_tensor *t, int dim0, int dim1);
/* Dimension i of the result is dimension dims[i] of t. */
LOOM_API loom_tensor *loom_permute(const loom_tensor *t, const int *dims);
/* Elements start .. start+length-1 of `dim`. */
LOOM_API loom_tensor *loom_narrow(const loom_tensor *t, int dim, int64_t start,
                                  int64_t length);
/* Python's t[start:end:step] on `dim` (step > 0; start/end clamp, negative
 * counts from the end, like Python). */
LOOM_API loom_tensor *loom_slice(const loom_tensor *t, int dim, int64_t start,
                                 int64_t end, int64_t step);
/* Index `index` of `dim`, removing that dim. */
LOOM_API loom_tensor *loom_select(const loom_tensor *t, int dim, int64_t index);
/* Removes `dim` if its size is 1 (no-op otherwise). */
LOOM_API loom_tensor *loom_squeeze(const loom_tensor *t, int dim);
/* Removes every size-1 dim. */
LOOM_API loom_tensor *loom_squeeze_all(const loom_tensor *t);
LOOM_API loom_tensor *loom_unsqueeze(const loom_tensor *t, int dim);
/* Broadcasts size-1 dims (and new leading dims) to `shape`; -1 keeps a
 * size. No copy: expanded dims have stride 0. */
LOOM_API loom_tensor *loom_expand(const loom_tensor *t, int ndim,
                                  const int64_t *shape);
LOOM_API loom_tensor *loom_expand_as(const loom_tensor *t,
                                     const loom_tensor *like);
/* Merges dims start..end (inclusive) into one. */
LOOM_API loom_tensor *loom_flatten(const loom_tensor *t, int start, int end);
/* Transpose of a 2-D tensor (or of the last two dims of a batch). */
LOOM_API loom_tensor *loom_t(const loom_tensor *t);

/* ------------------------------------------------ copies (differentiable) */

/* `t` itself when already contiguous (a new reference in the scope), else a
 * contiguous copy. */
LOOM_API loom_tensor *loom_contiguous(const loom_tensor *t);
/* Always a fresh contiguous copy. */
LOOM_API loom_tensor *loom_clone(const loom_tensor *t);
/* Converted to `dtype` (a copy; `t` itself when the dtype already matches).
 * Differentiable between float dtypes. */
LOOM_API loom_tensor *loom_to_dtype(const loom_tensor *t, loom_dtype dtype);

/* ------------------------------------------------ joining and splitting */

/* Joins along an existing dim; all other dims must match. Differentiable. */
LOOM_API loom_tensor *loom_concat(loom_tensor *const *ts, int n, int dim);
/* Joins along a new dim. Differentiable. */
LOOM_API loom_tensor *loom_stack(loom_tensor *const *ts, int n, int dim);
/* Splits into pieces of `size` along `dim` (the last may be shorter); writes
 * up to `max_out` views to `out`, returns their count or -1 (a 0-dim t:
 * LOOM_ERR_SHAPE). The pieces of one call are one node of the graph:
 * backward joins their gradients once, so it waits for all of them; a
 * piece no path uses contributes zeros to t's gradient but has none of its
 * own (its hooks are not called, it retains none), as in PyTorch. The
 * views are owned by the innermost scope. */
LOOM_API int loom_split(const loom_tensor *t, int64_t size, int dim,
                        loom_tensor **out, int max_out);
/* Splits into pieces of the given sizes (which must add up to the dim), as
 * loom_split. */
LOOM_API int loom_split_sizes(const loom_tensor *t, const int64_t *sizes, int n,
                              int dim, loom_tensor **out);
/* Splits into `chunks` nearly equal pieces, like torch.chunk: pieces of
 * ceil(len / chunks), so fewer than `chunks` when they run out (6 in 4:
 * 2, 2, 2), and `chunks` empty pieces of an empty dim. Returns the count,
 * or -1 as loom_split (chunks < 1: LOOM_ERR_ARGUMENT). */
LOOM_API int loom_chunk(const loom_tensor *t, int chunks, int dim,
                        loom_tensor **out, int max_out);

/* ------------------------------------------------ rearranging
 * Compositions of index_select, narrow and concat: differentiable, their
 * gradients derived by autograd. Results are new tensors owned by the
 * innermost scope (copies, never views, as in PyTorch). */

/* torch.flip: the order of elements reversed along each of the n dims in
 * `dims` (negative count from the end), out[..., i, ...] = t[..., s-1-i,
 * ...]. n == 0 gives a copy. Shape and dtype are t's. Errors:
 * LOOM_ERR_ARGUMENT for a dim out of range or named twice, n < 0, or dims
 * NULL with n > 0. */
LOOM_API loom_tensor *loom_flip(const loom_tensor *t, const int *dims, int n);
/* torch.roll: elements shifted by shifts[k] places along dims[k] (k < n),
 * wrapping around: out[..., (i + shift) mod s, ...] = t[..., i, ...];
 * negative shifts go the other way and any size is taken modulo the dim's.
 * dims NULL: t is rolled as if flattened, by shifts[0] (n must be 1), and
 * keeps its shape. Shape and dtype are t's. Errors: LOOM_ERR_ARGUMENT for
 * n < 1, a dim out of range, or shifts NULL. */
LOOM_API loom_tensor *loom_roll(const loom_tensor *t, const int64_t *shifts,
                                const int *dims, int n);

/* torch.Tensor.repeat: t taken repeats[d] times over along each dim d of
 * n; n >= t's ndim, and t first gains leading size-1 dims up to n. The
 * result has n dims, size repeats[d] * size_d (e.g. [1, 2] repeated (2, 3)
 * is [1, 2, 1, 2, 1, 2] twice over). t's dtype. Errors: LOOM_ERR_ARGUMENT
 * for n below t's ndim or above 8, a negative repeat, or repeats NULL with
 * n > 0; LOOM_ERR_SHAPE for a result too large. */
LOOM_API loom_tensor *loom_repeat(const loom_tensor *t, int n,
                                  const int64_t *repeats);
/* torch.tile: loom_repeat, except that fewer reps than t's dims are taken
 * as the last dims' (the others repeat once). Errors as loom_repeat (n may
 * be anything from 0 to 8). */
LOOM_API loom_tensor *loom_tile(const loom_tensor *t, int n,
                                const int64_t *reps);

/* Padding modes of loom_pad (torch.nn.functional.pad's `mode`). */
typedef enum loom_pad_mode {
  LOOM_PAD_CONSTANT,  /* `value` */
  LOOM_PAD_REFLECT,   /* the mirror image about the end element: 2 1 | 0 1 2 */
  LOOM_PAD_REPLICATE, /* the end element again: 0 0 | 0 1 2 */
  LOOM_PAD_CIRCULAR,  /* from the other end: 1 2 | 0 1 2 */
} loom_pad_mode;

/* torch.nn.functional.pad(t, pad, mode, value): n = 2k sizes pad the last
 * k dims, in PyTorch's order: pad[0] elements before and pad[1] after the
 * last dim, pad[2] and pad[3] around the one before it, and so on. A
 * negative size removes elements instead (not in circular mode), and the
 * padded values are those of the uncropped input, as in PyTorch. Any k up
 * to t's ndim and any mode work on any dims (PyTorch limits reflect,
 * replicate and circular to the last 1-3 dims of 2-D to 5-D inputs).
 * `value` is used in constant mode only. Differentiable. t's dtype; a new
 * tensor owned by the innermost scope. Errors (LOOM_ERR_ARGUMENT): n odd,
 * negative or above 2 x ndim, pad NULL with n > 0, an unknown mode, a size
 * beyond +-(2^59 - 1), a dim left with fewer than 0 elements (constant)
 * or 1 (the other modes), reflect padding not less than the dim's size,
 * replicate padding of an empty dim, circular padding below 0 or above
 * the dim's size; LOOM_ERR_SHAPE for a result too large. */
LOOM_API loom_tensor *loom_pad(const loom_tensor *t, const int64_t *pad, int n,
                               loom_pad_mode mode, double value);

/* ------------------------------------------------ indexing */

/* out[i][j] = t[index[i][j]][j] for dim 0 (and so on); index is int64 (as
 * in PyTorch, not int32) with t's ndim. Differentiable in t (repeated
 * indices accumulate). Errors: LOOM_ERR_DTYPE for another index dtype,
 * LOOM_ERR_INDEX for an index outside [0, t's size along dim). */
LOOM_API loom_tensor *loom_gather(const loom_tensor *t, int dim,
                                  const loom_tensor *index);
/* Picks entries of `dim` by a 1-D int64 or int32 index. Differentiable in
 * t. A 0-dim t takes exactly one index (0), else LOOM_ERR_SHAPE (torch
 * returns t for any index there). */
LOOM_API loom_tensor *loom_index_select(const loom_tensor *t, int dim,
                                        const loom_tensor *index);
/* A copy of t with src added at gathered positions: out[index[i][j]][j] +=
 * src[i][j] (dim 0); index is int64 (as in PyTorch, not int32).
 * Differentiable in t and src. src is converted to t's dtype, but a
 * floating src into an integer t is refused (LOOM_ERR_DTYPE: the result
 * must stay integral, as in loom_add_). */
LOOM_API loom_tensor *loom_scatter_add(const loom_tensor *t, int dim,
                                       const loom_tensor *index,
                                       const loom_tensor *src);
/* A copy of t with alpha * src's slices added at 1-D `index` (int64 or
 * int32) along `dim`. Differentiable in t and src. A 0-dim t takes exactly
 * one index and a 0-dim src, else LOOM_ERR_SHAPE. An integer t refuses a
 * floating src (LOOM_ERR_DTYPE) and a non-integral alpha
 * (LOOM_ERR_ARGUMENT): the result must stay integral, as in loom_add_. */
LOOM_API loom_tensor *loom_index_add(const loom_tensor *t, int dim,
                                     const loom_tensor *index,
                                     const loom_tensor *src, double alpha);
/* Rows of `weight` (V x D) picked by int64 or int32 `indices` of any
 * shape: the result has shape indices.shape + [D]. Differentiable in weight;
 * the row `padding_idx` (if >= 0) receives no gradient. */
LOOM_API loom_tensor *loom_embedding(const loom_tensor *weight,
                                     const loom_tensor *indices,
                                     int64_t padding_idx);
/* int64 indices -> int64 one-hot vectors of length num_classes (-1: the
 * largest index + 1). Errors: LOOM_ERR_ARGUMENT for num_classes below -1,
 * LOOM_ERR_INDEX for an index outside [0, num_classes), LOOM_ERR_SHAPE for
 * a result too large. */
LOOM_API loom_tensor *loom_one_hot(const loom_tensor *indices,
                                   int64_t num_classes);
/* Positions where mask (bool, broadcast to t) is true take `value`.
 * Differentiable in t. */
LOOM_API loom_tensor *loom_masked_fill(const loom_tensor *t,
                                       const loom_tensor *mask, double value);
/* cond ? a : b elementwise (cond bool; all three broadcast). Differentiable
 * in a and b. */
LOOM_API loom_tensor *loom_where(const loom_tensor *cond, const loom_tensor *a,
                                 const loom_tensor *b);

/* torch.masked_select: the elements of t where mask (bool) is true, as a
 * 1-D tensor in row-major order; t and mask broadcast to a common shape
 * first (an element of t selected by several mask positions appears that
 * many times). Differentiable in t (gradients of repeats add up). Result
 * of t's dtype, owned by the innermost scope. Errors: LOOM_ERR_DTYPE for a
 * mask that is not bool or uint8, LOOM_ERR_SHAPE for shapes that do not
 * broadcast. */
LOOM_API loom_tensor *loom_masked_select(const loom_tensor *t,
                                         const loom_tensor *mask);
/* torch.tril / torch.triu: of each matrix in the last two dims of t (rows
 * i, columns j), the elements with j - i <= diagonal (tril) or j - i >=
 * diagonal (triu) kept, the others zero. diagonal 0 is the main diagonal,
 * > 0 above it, < 0 below (any int64). Differentiable (the gradient passes
 * where elements are kept). Shape and dtype are t's; the result is owned
 * by the innermost scope. Errors: LOOM_ERR_SHAPE when t has under 2 dims.
 */
LOOM_API loom_tensor *loom_tril(const loom_tensor *t, int64_t diagonal);
LOOM_API loom_tensor *loom_triu(const loom_tensor *t, int64_t diagonal);

/* ------------------------------------------------ elementwise binary
 * Broadcasting; differentiable in both inputs (float dtypes). */

LOOM_API loom_tensor *loom_add(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_sub(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_mul(const loom_tensor *a, const loom_tensor *b);
/* True division: integer inputs give the default float dtype. */
LOOM_API loom_tensor *loom_div(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_pow(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_maximum(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_minimum(const loom_tensor *a, const loom_tensor *b);
/* a + alpha * b, in one pass. */
LOOM_API loom_tensor *loom_add_scaled(const loom_tensor *a,
                                      const loom_tensor *b, double alpha);

/* With a scalar operand (the tensor's dtype is kept for float tensors). */
LOOM_API loom_tensor *loom_add_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_sub_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_rsub_scalar(const loom_tensor *t,
                                       double s); /* s-t */
LOOM_API loom_tensor *loom_mul_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_div_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_pow_scalar(const loom_tensor *t, double exponent);

/* Comparisons give bool tensors; not differentiable. */
LOOM_API loom_tensor *loom_eq(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_ne(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_lt(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_le(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_gt(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_ge(const loom_tensor *a, const loom_tensor *b);
LOOM_API loom_tensor *loom_eq_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_ne_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_lt_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_le_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_gt_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_ge_scalar(const loom_tensor *t, double s);
LOOM_API loom_tensor *loom_logical_and(const loom_tensor *a,
                                       const loom_tensor *b);
LOOM_API loom_tensor *loom_logical_or(const loom_tensor *a,
                                      const loom_tensor *b);
LOOM_API loom_tensor *loom_logical_not(const loom_tensor *t);

/* ------------------------------------------------ elementwise unary
 * Float dtypes; differentiable. neg, abs and sign also take int64. */

LOOM_API loom_tensor *loom_neg(const loom_tensor *t);
LOOM_API loom_tensor *loom_exp(const loom_tensor *t);
LOOM_API loom_tensor *loom_expm1(const loom_tensor *t);
LOOM_API loom_tensor *loom_log(const loom_tensor *t);
LOOM_API loom_tensor *loom_log1p(const loom_tensor *t);
LOOM_API loom_tensor *loom_sqrt(const loom_tensor *t);
LOOM_API loom_tensor *loom_rsqrt(const loom_tensor *t);
LOOM_API loom_tensor *loom_square(const loom_tensor *t);
LOOM_API loom_tensor *loom_reciprocal(const loom_tensor *t);
LOOM_API loom_tensor *loom_abs(const loom_tensor *t);
LOOM_API loom_tensor *loom_sign(const loom_tensor *t); /* gradient zero */
LOOM_API loom_tensor *loom_sin(const loom_tensor *t);
LOOM_API loom_tensor *loom_cos(const loom_tensor *t);
LOOM_API loom_tensor *loom_tanh(const loom_tensor *t);
LOOM_API loom_tensor *loom_sigmoid(const loom_tensor *t);
/* log(sigmoid(t)), computed without overflow. */
LOOM_API loom_tensor *loom_log_sigmoid(const loom_tensor *t);
LOOM_API loom_tensor *loom_relu(const loom_tensor *t);
LOOM_API loom_tensor *loom_leaky_relu(const loom_tensor *t, double slope);
/* x * Phi(x) with the exact erf form, or the tanh approximation. */
LOOM_API loom_tensor *loom_gelu(const loom_tensor *t, bool tanh_approx);
LOOM_API loom_tensor *loom_elu(const loom_tensor *t, double alpha);
LOOM_API loom_tensor *loom_silu(const loom_tensor *t);
/* log(1 + exp(beta x)) / beta; linear where beta x > threshold. */
LOOM_API loom_tensor *loom_softplus(const loom_tensor *t, double beta,
                                    double threshold);
/* Limits to [lo, hi]; pass -INFINITY / INFINITY for no bound. The gradient
 * passes where lo <= x <= hi. LOOM_ERR_ARGUMENT for lo > hi or a NaN
 * bound (torch gives hi everywhere, or NaN). An int32 or int64 tensor
 * keeps its dtype (uint8 and bool give int64, as loom's other one-tensor
 * ops; torch keeps uint8) unless a finite bound is not an integer or lies
 * beyond int64: then the result has the default float dtype, as torch's
 * (loom_clamp_ refuses that, LOOM_ERR_ARGUMENT). */
LOOM_API loom_tensor *loom_clamp(const loom_tensor *t, double lo, double hi);

/* ------------------------------------------------ reductions
 * `dims` lists the dims to reduce (n == 0 or dims == NULL: all of them);
 * keepdim keeps them with size 1. Differentiable. */

LOOM_API loom_tensor *loom_sum(const loom_tensor *t, const int *dims, int n,
                               bool keepdim);
LOOM_API loom_tensor *loom_mean(const loom_tensor *t, const int *dims, int n,
                                bool keepdim);
/* Variance with `correction` (1: unbiased, 0: population). */
LOOM_API loom_tensor *loom_var(const loom_tensor *t, const int *dims, int n,
                               int64_t correction, bool keepdim);
LOOM_API loom_tensor *loom_std(const loom_tensor *t, const int *dims, int n,
                               int64_t correction, bool keepdim);
/* Product. Its gradient at each element is the product of the others,
 * also where an element is 0, inf or NaN. torch divides the product by the
 * element when none is 0, so an inf or a NaN makes other gradients NaN
 * there: prod([nan, 1]) has gradient [1, nan] here and [nan, nan] in
 * torch, prod([inf, 2]) [2, inf] here and [nan, inf] in torch. */
LOOM_API loom_tensor *loom_prod(const loom_tensor *t, const int *dims, int n,
                                bool keepdim);
/* (sum |x|^p)^(1/p); p = INFINITY gives max |x|. */
LOOM_API loom_tensor *loom_norm(const loom_tensor *t, double p, const int *dims,
                                int n, bool keepdim);
LOOM_API loom_tensor *loom_logsumexp(const loom_tensor *t, const int *dims,
                                     int n, bool keepdim);
/* Largest values over dims (ties: gradient shared evenly, like amax). */
LOOM_API loom_tensor *loom_amax(const loom_tensor *t, const int *dims, int n,
                                bool keepdim);
LOOM_API loom_tensor *loom_amin(const loom_tensor *t, const int *dims, int n,
                                bool keepdim);
/* Max/min along one dim; if `indices` is non-NULL it receives the int64
 * positions (first occurrence; owned by the scope). The gradient goes to the
 * chosen position. LOOM_ERR_SHAPE when `dim` has size 0 (no extreme);
 * other dims of size 0 give empty results. */
LOOM_API loom_tensor *loom_max(const loom_tensor *t, int dim, bool keepdim,
                               loom_tensor **indices);
LOOM_API loom_tensor *loom_min(const loom_tensor *t, int dim, bool keepdim,
                               loom_tensor **indices);
/* Positions of max/min along dim (int64; not differentiable). */
LOOM_API loom_tensor *loom_argmax(const loom_tensor *t, int dim, bool keepdim);
LOOM_API loom_tensor *loom_argmin(const loom_tensor *t, int dim, bool keepdim);
/* Sum of all elements / mean of all elements, as 0-dim tensors. */
LOOM_API loom_tensor *loom_sum_all(const loom_tensor *t);
LOOM_API loom_tensor *loom_mean_all(const loom_tensor *t);

/* ------------------------------------------------ scans and sorting */

/* torch.cumsum: out[..., i, ...] = sum of t[..., k, ...] for k <= i along
 * dim (negative counts from the end). Float tensors keep their dtype and
 * sum in double (as PyTorch's CPU kernel); integer and bool tensors give
 * int64 (wrapping around on overflow, as in PyTorch). Differentiable: the
 * gradient is the sum of g from the end. t's shape; a new tensor owned by
 * the innermost scope. Errors: LOOM_ERR_ARGUMENT for a dim out of range.
 * ON-LSTM's cumax(x) is loom_cumsum(loom_softmax(x, -1), -1). */
LOOM_API loom_tensor *loom_cumsum(const loom_tensor *t, int dim);
/* torch.cumprod: out[..., i, ...] = product of t[..., k, ...] for k <= i
 * along dim; dtypes, shape, ownership and errors as loom_cumsum.
 * Differentiable, zeros included: d out_j / d t_k = product of t_i for
 * i <= j, i != k (computed in O(n) per line; when the gradient is itself
 * recorded to be differentiated again and t holds a zero, in O(n^2)). */
LOOM_API loom_tensor *loom_cumprod(const loom_tensor *t, int dim);

/* torch.sort(t, dim, descending, stable=True): each line along dim in
 * ascending (descending) order; equal elements keep their order, NaN
 * counts as larger than any number (last ascending, first descending).
 * Returns the values (t's shape and dtype; differentiable, each value's
 * gradient going back to its place); if `indices` is not NULL it receives
 * their positions along dim (int64, t's shape), or NULL on failure. Both
 * owned by the innermost scope. Errors: LOOM_ERR_ARGUMENT for a dim out of
 * range; LOOM_ERR_MEMORY. */
LOOM_API loom_tensor *loom_sort(const loom_tensor *t, int dim, bool descending,
                                loom_tensor **indices);
/* torch.argsort(t, dim, descending, stable=True): the positions loom_sort
 * gives (int64, t's shape; not differentiable). Errors as loom_sort. */
LOOM_API loom_tensor *loom_argsort(const loom_tensor *t, int dim,
                                   bool descending);
/* torch.topk(t, k, dim, largest, sorted=True): the k largest (smallest
 * when !largest) elements of each line along dim, in descending
 * (ascending) order; t's shape with k along dim. Ties go in the order of
 * their positions (PyTorch leaves that order unspecified) and NaN counts
 * as the largest. Values differentiable as loom_sort's; `indices` (may be
 * NULL) receives their int64 positions, or NULL on failure. Each line is
 * sorted whole, O(n log n). Owned by the innermost scope. Errors:
 * LOOM_ERR_ARGUMENT for a dim out of range or k outside 0..the dim's size;
 * LOOM_ERR_MEMORY. */
LOOM_API loom_tensor *loom_topk(const loom_tensor *t, int64_t k, int dim,
                                bool largest, loom_tensor **indices);

/* Softmax along dim, computed stably (max subtracted). Differentiable. A
 * row of -inf alone (a fully masked attention row) gives zeros, where
 * torch gives NaN, so that no NaN reaches outputs or gradients; NaN or
 * +inf in a row gives NaN throughout it, as in torch. */
LOOM_API loom_tensor *loom_softmax(const loom_tensor *t, int dim);
LOOM_API loom_tensor *loom_log_softmax(const loom_tensor *t, int dim);
/* Cross entropy of each row of logits (..., C) against its class index:
 * loss[r] = -(1 - label_smoothing) log p[r, target[r]]
 *           - label_smoothing / C sum_j log p[r, j],  p = softmax over C,
 * and 0 where target[r] == ignore_index. logits: float, any layout;
 * target: int64 shaped as logits without the last dim, each in [0, C) or
 * ignore_index. Result shaped as target, logits' dtype, owned by the
 * scope. One pass per row: the tape keeps the logits and each row's max
 * and log-sum-exp, and backward writes the logits' gradient alone (the
 * composition in log_softmax, gather and sum keeps four (N, C) tensors at
 * its peak), into the logits' memory when nothing but the tape holds them
 * and the graph is not retained (end the forward pass's scope before
 * backward, as a training step can: the largest tensor of a language
 * model's step is then made once). loom_cross_entropy (nn/nn.h) uses it
 * for (N, C) logits without class weights. Differentiable in the logits
 * to any order (the double backward differentiates the composition).
 * Errors: LOOM_ERR_SHAPE, LOOM_ERR_DTYPE, LOOM_ERR_ARGUMENT for
 * label_smoothing outside [0, 1], LOOM_ERR_INDEX naming a target out of
 * range, LOOM_ERR_MEMORY. */
LOOM_API loom_tensor *loom_fused_cross_entropy(const loom_tensor *logits,
                                               const loom_tensor *target,
                                               int64_t ignore_index,
                                               double label_smoothing);

/* Layer normalisation over the last `ndims` dims of x, as torch's
 * F.layer_norm: (x - mean) / sqrt(var + eps) * weight + bias, with the mean
 * and the biased variance over those dims. weight and bias (each may be
 * NULL) have the shape of those dims and any float dtype: x, weight and
 * bias are promoted to one dtype as loom_linear's operands are (a float64
 * x through float32 parameters computes in float64, and their gradients
 * arrive as float32). One fused kernel forward and backward;
 * differentiable in x, weight and bias. Returns a new tensor owned by the
 * innermost scope; NULL with LOOM_ERR_DTYPE for a non-float x, weight or
 * bias, LOOM_ERR_SHAPE naming both shapes for a weight or bias that does
 * not match, LOOM_ERR_ARGUMENT for ndims outside 1..x's ndim or a negative
 * eps. The module form is loom_layer_norm_layer (nn.h). */
LOOM_API loom_tensor *loom_layer_norm(const loom_tensor *x, int ndims,
                                      const loom_tensor *weight,
                                      const loom_tensor *bias, double eps);

/* Batch normalisation over dim 1 of x (N, C) or (N, C, d1, ...), as
 * torch's F.batch_norm: each channel c becomes (x - m_c) / sqrt(v_c + eps)
 * * weight_c + bias_c. Training (mean and var NULL): m and v are the
 * batch's mean and biased variance over every dim but 1, and *batch_mean,
 * *batch_var (each may be NULL) receive them (C), for running averages;
 * evaluation: m and v are the given mean and var (C). weight, bias, mean
 * and var (C, each may be NULL) may be of another float dtype than x: all
 * are promoted to one, as in loom_layer_norm (the statistics returned are
 * of that dtype). One fused kernel forward and backward; differentiable
 * in x, weight and bias (not in mean and var). Returns a new tensor owned
 * by the innermost scope (the statistics too); NULL with LOOM_ERR_DTYPE
 * for a tensor that is not float, LOOM_ERR_SHAPE naming both shapes for a
 * per-channel tensor that does not match or for training on one value per
 * channel, LOOM_ERR_ARGUMENT for x under 2-D, a negative eps, or a mean
 * without a var. The module form is loom_batch_norm_layer (nn.h). */
LOOM_API loom_tensor *
loom_batch_norm(const loom_tensor *x, const loom_tensor *weight,
                const loom_tensor *bias, const loom_tensor *mean,
                const loom_tensor *var, double eps, loom_tensor **batch_mean,
                loom_tensor **batch_var);
/* loom_relu(loom_batch_norm(...)) with the same arguments, values,
 * gradients and errors (named "batch_norm_relu"), as one op: it writes no
 * normalised tensor and its graph keeps x and its output but not the
 * normalised values (a conv-batchnorm-relu block keeps one activation
 * tensor fewer); backward takes the relu's gradient from the output. */
LOOM_API loom_tensor *
loom_batch_norm_relu(const loom_tensor *x, const loom_tensor *weight,
                     const loom_tensor *bias, const loom_tensor *mean,
                     const loom_tensor *var, double eps,
                     loom_tensor **batch_mean, loom_tensor **batch_var);

/* ------------------------------------------------ matrix products
 * Float dtypes through BLAS; transposed operands are passed as transposes,
 * not copied. Differentiable in every tensor argument. */

/* A stretch of code in which the weights that products read do not change,
 * such as a recurrent cell's steps: between begin and end, products of a
 * few rows (up to 128) with the same float32 weight that requires grad
 * (loom_linear) pack it at its second use and reuse that, instead of BLAS
 * repacking it for every product, which for a batch of 32 roughly halves
 * their cost. A write into such a weight by a loom op (which bumps its
 * version) makes the next product pack it anew, but a write through
 * loom_data would go unseen: don't. Nestable; the sequence runner
 * opens one around its steps and backward around its pass, so users need
 * it only for loops of their own. Memory is freed at the outermost end. */
LOOM_API void loom_fixed_weights_begin(void);
LOOM_API void loom_fixed_weights_end(void);

/* torch.matmul: 1-D x 1-D dot, 2-D mm, matrix-vector, and batched products
 * with broadcast batch dims. */
LOOM_API loom_tensor *loom_matmul(const loom_tensor *a, const loom_tensor *b);
/* beta * c + alpha * (a @ b), a: n x k, b: k x m, c broadcast to n x m. */
LOOM_API loom_tensor *loom_addmm(const loom_tensor *c, const loom_tensor *a,
                                 const loom_tensor *b, double beta,
                                 double alpha);
/* Batched: a: B x n x k, b: B x k x m. */
LOOM_API loom_tensor *loom_bmm(const loom_tensor *a, const loom_tensor *b);
/* beta * c + alpha * bmm(a, b), c broadcast to B x n x m. */
LOOM_API loom_tensor *loom_baddbmm(const loom_tensor *c, const loom_tensor *a,
                                   const loom_tensor *b, double beta,
                                   double alpha);
/* x @ weight^T + bias (bias may be NULL), for x of any rank >= 1. */
LOOM_API loom_tensor *loom_linear(const loom_tensor *x,
                                  const loom_tensor *weight,
                                  const loom_tensor *bias);
/* Attention in one op: softmax(q k^T scale + mask) @ v, with the keys
 * after each query's position blocked when causal (key j > query i, top
 * left aligned), and dropout of the weights with probability `dropout`
 * (training; the generator g, NULL for the thread's, draws the same mask
 * as loom_dropout would on the weights). q (..., L, E), k (..., S, E),
 * v (..., S, Ev) with equal batch dims, one float dtype; mask NULL or an
 * additive float mask (-inf blocks) of that dtype broadcast to
 * (..., L, S), which must not require grad. Result (..., L, Ev), owned by
 * the scope, laid out in q's memory order (q, k, v as multi-head
 * attention's head split leaves them, views of (B, L, heads, E) storage:
 * the result's heads permuted back are contiguous). Equal to
 * loom_scaled_dot_product_attention's composition (nn/attention.h), which
 * uses it when no weights are asked for; differentiable in q, k and v to
 * any order (the double backward differentiates the composition); backward
 * reads the mask again (it computes the weights again), so a mask written
 * in place before then fails backward, as a modified input does. Errors:
 * shapes, dtypes, dropout outside [0, 1), a non-finite scale, weights
 * (..., L, S) of more than 2^59 - 1 elements, a mask that requires grad. */
LOOM_API loom_tensor *
loom_fused_attention(const loom_tensor *q, const loom_tensor *k,
                     const loom_tensor *v, const loom_tensor *mask, bool causal,
                     double scale, double dropout, loom_rng *g);

/* torch.einsum(equation, operands): the sum, over the subscripts missing
 * from the output, of the products of the operands' elements, e.g. "ij,jk->ik"
 * a matrix product, "bij,bkj->bik" a batched one against a transpose,
 * "ii->i" a diagonal, "ii" a trace, "i,j->ij" an outer product, "...ij->...ji"
 * a transpose of the last two dims. Subscripts are letters (a-z, A-Z), one
 * per dim of each operand, with spaces ignored; "..." stands for the dims no
 * letter names, broadcast between operands (aligned at the right). Without
 * "->" the output is the ellipsis dims, then the letters found exactly once,
 * in ASCII order; an explicit output leaves out the ellipsis to sum its
 * dims. A letter's dims must have equal sizes, or size 1 to broadcast
 * (within one operand: equal). Operands are contracted left to right, each
 * pair as one bmm (no path optimisation). n from 1 to
 * LOOM_EINSUM_MAX_OPERANDS float operands, promoted to a common dtype.
 * Differentiable, to any order. A new tensor owned by the innermost scope
 * (never a view of an operand). Errors: LOOM_ERR_ARGUMENT for a malformed
 * equation (a character other than letters, spaces, one "->", commas and
 * "..."; a number of terms other than n; an output letter repeated or in no
 * operand); LOOM_ERR_SHAPE for a term whose subscripts do not match its
 * operand's rank, sizes that do not broadcast, or an output or intermediate
 * of more than 8 dims; LOOM_ERR_DTYPE for an integer operand. */
#define LOOM_EINSUM_MAX_OPERANDS 16
LOOM_API loom_tensor *loom_einsum(const char *equation,
                                  loom_tensor *const *operands, int n);

/* ------------------------------------------------ convolution and pooling
 * Inputs are N x C x H x W (or C x H x W). Zero fields in the option
 * structs mean the default: stride 1 (pools: the kernel size), dilation 1,
 * groups 1, padding 0. Differentiable. */

typedef struct loom_conv2d_opts {
  int64_t stride[2], padding[2], dilation[2];
  int64_t groups;
} loom_conv2d_opts;

/* weight: C_out x C_in/groups x kH x kW; bias: C_out or NULL. */
LOOM_API loom_tensor *loom_conv2d(const loom_tensor *x,
                                  const loom_tensor *weight,
                                  const loom_tensor *bias,
                                  loom_conv2d_opts opts);

/* Options of loom_conv1d; zero fields mean stride 1, padding 0, dilation
 * 1, groups 1. */
typedef struct loom_conv1d_opts {
  int64_t stride, padding, dilation, groups;
  /* Causal convolution (temporal convolutions, QRNN): dilation x (K - 1)
   * zeros before the sequence and none after, so output step i sees input
   * steps up to i x stride only; padding must then be 0. */
  bool causal;
} loom_conv1d_opts;

/* torch.nn.functional.conv1d: x N x C_in x L (or C_in x L), weight C_out x
 * C_in/groups x K with K >= 1, bias C_out or NULL; the result is N x C_out x
 * L_out (or C_out x L_out), L_out = (L + 2 padding - dilation (K - 1) - 1)
 * / stride + 1, or (L - 1) / stride + 1 when causal. Float inputs, promoted
 * to a common dtype. Differentiable to any order (it is conv2d over one
 * row). A new tensor owned by the innermost
 * scope. Errors: LOOM_ERR_SHAPE for ranks or sizes that do not fit together
 * (input channels against weight and groups, a kernel longer than the
 * padded input, a bias of the wrong size); LOOM_ERR_ARGUMENT for stride,
 * dilation or groups below 1, padding outside 0..2^59 - 1, or padding with
 * causal; LOOM_ERR_DTYPE for integer inputs. */
LOOM_API loom_tensor *loom_conv1d(const loom_tensor *x,
                                  const loom_tensor *weight,
                                  const loom_tensor *bias,
                                  loom_conv1d_opts opts);

typedef struct loom_pool2d_opts {
  int64_t kernel[2], stride[2], padding[2], dilation[2];
  bool ceil_mode;
  bool exclude_pad; /* avg_pool2d: divide by the in-bounds count, i.e.
                       count_include_pad=False */
} loom_pool2d_opts;

/* If `indices` is non-NULL it receives int64 flat positions within each
 * input plane, like PyTorch's return_indices. */
LOOM_API loom_tensor *loom_max_pool2d(const loom_tensor *x,
                                      loom_pool2d_opts opts,
                                      loom_tensor **indices);
LOOM_API loom_tensor *loom_avg_pool2d(const loom_tensor *x,
                                      loom_pool2d_opts opts);
/* The mean of each of out_h x out_w windows that tile each plane of x
 * (C, H, W) or (N, C, H, W), as torch's adaptive_avg_pool2d.
 * LOOM_ERR_ARGUMENT for an output size below 1, LOOM_ERR_SHAPE for empty
 * planes (H or W 0; an empty batch or channel dim is fine). */
LOOM_API loom_tensor *loom_adaptive_avg_pool2d(const loom_tensor *x,
                                               int64_t out_h, int64_t out_w);

/* Options of loom_unfold and loom_fold: the block's kernel (each >= 1,
 * required) and, where zero, dilation 1, padding 0, stride 1. */
typedef struct loom_fold_opts {
  int64_t kernel[2], dilation[2], padding[2], stride[2];
} loom_fold_opts;

/* torch.nn.functional.unfold (im2col): the sliding kH x kW blocks of x, N x
 * C x H x W (or C x H x W), as the columns of an N x (C kH kW) x L result
 * (or (C kH kW) x L). Block l = bi oW + bj of the oH x oW blocks, oH = (H +
 * 2 padding - dilation (kH - 1) - 1) / stride + 1 (oW likewise), has in row
 * (c kH + i) kW + j the value x[c, bi stride - padding + i dilation, bj
 * stride - padding + j dilation], 0 in the padding. conv2d is a product
 * with these columns. Float x; differentiable to any order (its gradient
 * is loom_fold, and fold's is unfold). A new tensor owned by the
 * innermost scope. Errors: LOOM_ERR_SHAPE for x not 3-D or 4-D, a dilated
 * kernel larger than the padded image, or a result of more than 2^59 - 1
 * elements; LOOM_ERR_ARGUMENT for a kernel outside 1..2^59 - 1, stride or
 * dilation below 1 or padding outside 0..2^59 - 1; LOOM_ERR_DTYPE for an
 * integer x; LOOM_ERR_MEMORY. */
LOOM_API loom_tensor *loom_unfold(const loom_tensor *x, loom_fold_opts opts);

/* torch.nn.functional.fold (col2im), the adjoint of loom_unfold: cols, N x
 * (C kH kW) x L (or (C kH kW) x L), holds the blocks of an out_h x out_w
 * image, L = oH oW of them as loom_unfold counts them; each value is added
 * at its block position, overlaps summed and positions in the padding
 * dropped, into an N x C x out_h x out_w result (or C x out_h x out_w).
 * Float cols; differentiable to any order. A new tensor owned by the
 * innermost scope. Errors: LOOM_ERR_SHAPE for cols not 2-D or 3-D, rows
 * not a multiple of kH kW, columns other than L, or a dilated kernel
 * larger than the padded image; LOOM_ERR_ARGUMENT for out_h or out_w
 * outside 1..2^59 - 1 and the options as loom_unfold's; LOOM_ERR_DTYPE for
 * integer cols; LOOM_ERR_MEMORY. */
LOOM_API loom_tensor *loom_fold(const loom_tensor *cols, int64_t out_h,
                                int64_t out_w, loom_fold_opts opts);

/* ------------------------------------------------ dropout */

/* With probability p an element is zeroed, else scaled by 1/(1-p). The
 * identity when !training or p == 0. Differentiable (the mask is saved). */
LOOM_API loom_tensor *loom_dropout(const loom_tensor *t, double p,
                                   bool training, loom_rng *g);

/* ------------------------------------------------ fused recurrences
 * A whole sequence of a recurrent cell in one op: per step one GEMM and one
 * elementwise pass, the recurrent weights' gradient as products over all
 * steps. xp (T, B, G*H) holds the input's part of every step (x W_ih^T +
 * b_ih); w_hh is (G*H, H), b_hh (G*H); states are (B, H). lengths (int64
 * (B) or NULL): steps past a sequence's end keep its state and output 0.
 * reverse runs t = T-1 .. 0. Results (out (T, B, H) and final states) are
 * scope-owned; differentiable in every tensor but lengths. 0 or -1. The
 * step-by-step cells of nn/ compute the same values. Without lengths,
 * backward reads each step's previous state from out and h0 (c0) rather
 * than keeping copies, as torch does: writing into them in place between
 * forward and backward fails backward with LOOM_ERR_STATE. */

/* LSTM, gates i, f, g, o; peephole: NULL or {w_ci, w_cf, w_co} (H each);
 * b_hh may be NULL. */
LOOM_API int loom_lstm_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                                const loom_tensor *b_hh, const loom_tensor *h0,
                                const loom_tensor *c0,
                                loom_tensor *const *peephole,
                                const loom_tensor *lengths, bool reverse,
                                loom_tensor **out, loom_tensor **h_n,
                                loom_tensor **c_n);
/* loom_lstm_sequence of xp = x w_ih^T + b_ih, computed inside the op: x
 * (T, B, I), w_ih (4H, I), b_ih (4H) or NULL, the rest as above. The same
 * values as loom_lstm_sequence(loom_linear(x, w_ih, b_ih), ...), but xp
 * lives only while the forward runs: backward forms the gradients of x,
 * w_ih and b_ih from the gates' (as linear's backward would), so a
 * training step keeps a (T, B, 4H) tensor less (the LSTM layers use it).
 * Differentiable in every tensor but lengths, to any order. 0, or -1 with
 * the errors of loom_lstm_sequence and LOOM_ERR_SHAPE or LOOM_ERR_DTYPE
 * for an x, w_ih or b_ih that do not fit w_hh. */
LOOM_API int loom_lstm_sequence_input(
    const loom_tensor *x, const loom_tensor *w_ih, const loom_tensor *b_ih,
    const loom_tensor *w_hh, const loom_tensor *b_hh, const loom_tensor *h0,
    const loom_tensor *c0, loom_tensor *const *peephole,
    const loom_tensor *lengths, bool reverse, loom_tensor **out,
    loom_tensor **h_n, loom_tensor **c_n);
/* GRU in PyTorch's formulation, gates r, z, n; b_hh may be NULL (a layer
 * without biases: n = tanh(xp_n + r * (h W_hn^T))). */
LOOM_API int loom_gru_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                               const loom_tensor *b_hh, const loom_tensor *h0,
                               const loom_tensor *lengths, bool reverse,
                               loom_tensor **out, loom_tensor **h_n);
/* loom_gru_sequence of xp = x w_ih^T + b_ih, computed inside the op: x
 * (T, B, I), w_ih (3H, I), b_ih (3H) or NULL, the rest as above. The same
 * values as loom_gru_sequence(loom_linear(x, w_ih, b_ih), ...); xp lives
 * only while the forward runs (backward reads none of it), so a training
 * step keeps a (T, B, 3H) tensor less (the GRU layers use it).
 * Differentiable in every tensor but lengths, to any order. 0, or -1 with
 * the errors of loom_gru_sequence and LOOM_ERR_SHAPE or LOOM_ERR_DTYPE for
 * an x, w_ih or b_ih that do not fit w_hh. */
LOOM_API int loom_gru_sequence_input(
    const loom_tensor *x, const loom_tensor *w_ih, const loom_tensor *b_ih,
    const loom_tensor *w_hh, const loom_tensor *b_hh, const loom_tensor *h0,
    const loom_tensor *lengths, bool reverse, loom_tensor **out,
    loom_tensor **h_n);
/* h' = tanh (or relu) of xp_t + b_hh + h W_hh^T; b_hh may be NULL. */
LOOM_API int loom_rnn_sequence(const loom_tensor *xp, const loom_tensor *w_hh,
                               const loom_tensor *b_hh, const loom_tensor *h0,
                               const loom_tensor *lengths, bool reverse,
                               bool relu, loom_tensor **out, loom_tensor **h_n);

/* ------------------------------------------------ in-place updates
 * They write into `t` and return it (no new tensor). Not differentiable:
 * with grad mode on, a tensor that requires grad is refused; a write into
 * a tensor a recorded op saved is reported at backward. A t whose
 * elements share memory (expanded, or a borrowed buffer with overlapping
 * strides) is refused with LOOM_ERR_STATE. */

/* Copies src (broadcast, converted) into dst. */
LOOM_API loom_tensor *loom_copy_(loom_tensor *dst, const loom_tensor *src);
LOOM_API loom_tensor *loom_fill_(loom_tensor *t, double value);
LOOM_API loom_tensor *loom_zero_(loom_tensor *t);
/* t += alpha * other (broadcast). */
LOOM_API loom_tensor *loom_add_(loom_tensor *t, const loom_tensor *other,
                                double alpha);
LOOM_API loom_tensor *loom_mul_(loom_tensor *t, const loom_tensor *other);
LOOM_API loom_tensor *loom_mul_scalar_(loom_tensor *t, double s);
LOOM_API loom_tensor *loom_masked_fill_(loom_tensor *t, const loom_tensor *mask,
                                        double value);
LOOM_API loom_tensor *loom_clamp_(loom_tensor *t, double lo, double hi);

#ifdef __cplusplus
}
#endif
#endif
