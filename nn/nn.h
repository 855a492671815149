/* loom nn: modules with named parameters, initialisers, layers, losses and
 * training checkpoints.
 *
 * The module convention. A module is a struct whose first member is a
 * `loom_module`; it owns its parameters, buffers and child modules, each
 * registered under a name, so a module tree can list its parameters with
 * PyTorch's hierarchical names ("encoder.layers.0.linear1.weight") and
 * save/load a state dict that PyTorch reads. Every layer has `_new`
 * (caller owns the module, free it with its `_free` or loom_module_free),
 * `_forward` (result owned by the innermost scope) and `_free`. Tensors a
 * module exposes in its struct (weight, bias, ...) are borrowed from it.
 *
 * A user-defined module:
 *
 *   typedef struct { loom_module base; loom_linear_layer *in, *out; } mlp;
 *   mlp *m = calloc(1, sizeof *m);
 *   loom_module_init(&m->base, "MLP", free_fn);
 *   m->in = (loom_linear_layer *)loom_module_add_child(&m->base, "in",
 *               (loom_module *)loom_linear_layer_new(4, 16, true));
 *
 * (A module struct begins with its loom_module, so a pointer to it converts
 * to a loom_module pointer and back.)
 *
 * Parameters are created in the thread's default dtype (float32 unless set
 * with loom_set_default_dtype) and initialised from the default generator
 * (loom_manual_seed), with PyTorch's default scheme for each layer.
 */
#ifndef LOOM_NN_H
#define LOOM_NN_H

#include "../autograd/autograd.h"
#include "../optim/optim.h"
#include "../tensor/safetensors.h"
#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------ modules */

typedef struct loom_module loom_module;
typedef struct loom_module_entry loom_module_entry;

struct loom_module {
  const char *type; /* "Linear", "LSTM", ... */
  bool training;
  loom_module_entry *entries;
  int n_entries, cap_entries;
  bool owned; /* registered as a module's child: that parent frees it */
  /* Frees the struct that embeds this module (after its entries are
   * released); NULL means free(). */
  void (*destroy)(loom_module *self);
};

/* Initialises an embedded module (training mode, no entries). */
LOOM_API void loom_module_init(loom_module *m, const char *type,
                               void (*destroy)(loom_module *self));
/* Registers a trainable parameter: the module takes a reference, marks it
 * as requiring grad, and returns it (borrowed). NULL on error:
 * LOOM_ERR_ARGUMENT for a NULL t or a name that is empty, has a '.' or is
 * registered already; LOOM_ERR_DTYPE for a non-float t. */
LOOM_API loom_tensor *loom_module_add_param(loom_module *m, const char *name,
                                            loom_tensor *t);
/* Registers state that is saved but not trained (running statistics):
 * the module takes a reference and returns t (borrowed), or NULL with
 * LOOM_ERR_ARGUMENT (the name rules of loom_module_add_param). */
LOOM_API loom_tensor *loom_module_add_buffer(loom_module *m, const char *name,
                                             loom_tensor *t);
/* Registers a child module; the parent owns it from now on (also on
 * failure, when the child is freed). Returns child or NULL. A child that
 * is m or holds m (a cycle), or that already has a parent, is refused
 * (LOOM_ERR_ARGUMENT) and not freed. Layers share weights by registering
 * the same tensor in both (add_param takes a reference), not a module. */
LOOM_API loom_module *loom_module_add_child(loom_module *m, const char *name,
                                            loom_module *child);
/* The name under which m itself (not a child) registered the tensor t
 * (borrowed, valid until the entry is renamed or freed), or NULL (an
 * error only for a NULL argument). */
LOOM_API const char *loom_module_entry_name(const loom_module *m,
                                            const loom_tensor *t);
/* Renames m's own entry `name` to new_name (a parameter reparametrised
 * by a layer, such as weight normalisation's NAME_v). 0, or -1 with
 * LOOM_ERR_ARGUMENT when there is no such entry, new_name is taken or has
 * a '.'. */
LOOM_API int loom_module_rename(loom_module *m, const char *name,
                                const char *new_name);
/* Frees a module, its children, and its references (NULL-safe). */
LOOM_API void loom_module_free(loom_module *m);
/* Switches the module tree to training (true) or evaluation mode. */
LOOM_API void loom_module_train(loom_module *m, bool on);
/* Writes up to max parameters (depth first, registration order) to out
 * (borrowed), a tensor registered under several names (a tied weight) once;
 * returns the total count (-1 for a NULL module). */
LOOM_API int loom_module_parameters(const loom_module *m, loom_tensor **out,
                                    int max);
LOOM_API int64_t loom_module_num_elements(const loom_module *m);
/* A new map of parameters only / parameters and buffers, under their
 * hierarchical names (caller frees the map; tensors are shared). The
 * parameters list a tensor registered under several names (a tied weight)
 * once, under its first; the state dict has every name. */
LOOM_API loom_tensor_map *loom_module_named_parameters(const loom_module *m);
LOOM_API loom_tensor_map *loom_module_state_dict(const loom_module *m);
/* Copies values from map into the module's tensors (converting dtype).
 * Shapes must match; with `strict`, missing and unexpected names are errors
 * too. Nothing is changed unless everything checks. 0 or -1. */
LOOM_API int loom_module_load_state_dict(loom_module *m,
                                         const loom_tensor_map *map,
                                         bool strict);
/* Drops the gradient of every parameter. */
LOOM_API void loom_module_zero_grad(loom_module *m);

/* A container whose children are named "0", "1", ... (torch.nn.ModuleList),
 * for names like "layers.3.linear1.weight". Caller owns the list (free it
 * with loom_module_free, or register it as a child). */
LOOM_API loom_module *loom_module_list_new(void);
/* Appends child (owned by the list from now on); returns it or NULL. */
LOOM_API loom_module *loom_module_list_append(loom_module *list,
                                              loom_module *child);
/* The i-th child of a module (borrowed), or NULL. */
LOOM_API loom_module *loom_module_child(const loom_module *m, int i);
LOOM_API int loom_module_child_count(const loom_module *m);

/* ------------------------------------------------ initialisers
 * In place, under no-grad, from generator g (NULL: the default). 0 or -1.
 * As torch.nn.init: U(a, a) fills a, and a tensor of no elements is left
 * as it is by the fan-based ones (xavier, kaiming; their gains must be
 * finite). */

typedef enum { LOOM_FAN_IN, LOOM_FAN_OUT } loom_fan_mode;

/* torch.nn.init.calculate_gain: "linear", "conv2d", "sigmoid", "tanh",
 * "relu", "leaky_relu" (param = negative slope), "selu". NaN if unknown. */
LOOM_API double loom_init_gain(const char *nonlinearity, double param);
LOOM_API int loom_init_uniform_(loom_tensor *t, double lo, double hi,
                                loom_rng *g);
LOOM_API int loom_init_normal_(loom_tensor *t, double mean, double std,
                               loom_rng *g);
LOOM_API int loom_init_constant_(loom_tensor *t, double value);
LOOM_API int loom_init_xavier_uniform_(loom_tensor *t, double gain,
                                       loom_rng *g);
LOOM_API int loom_init_xavier_normal_(loom_tensor *t, double gain, loom_rng *g);
/* a: the negative slope for leaky_relu. A mode outside loom_fan_mode, an
 * unknown nonlinearity or a NaN slope for leaky_relu is refused
 * (LOOM_ERR_ARGUMENT). */
LOOM_API int loom_init_kaiming_uniform_(loom_tensor *t, double a,
                                        loom_fan_mode mode,
                                        const char *nonlinearity, loom_rng *g);
LOOM_API int loom_init_kaiming_normal_(loom_tensor *t, double a,
                                       loom_fan_mode mode,
                                       const char *nonlinearity, loom_rng *g);
/* A (semi-)orthogonal matrix of the flattened shape rows x rest, times
 * gain, which must be finite (LOOM_ERR_ARGUMENT). */
LOOM_API int loom_init_orthogonal_(loom_tensor *t, double gain, loom_rng *g);
/* The identity (2-D), e.g. for IRNN recurrent weights. */
LOOM_API int loom_init_eye_(loom_tensor *t);
/* fan_in / fan_out as torch computes them; -1 for tensors under 2-D
 * (LOOM_ERR_SHAPE) or a mode outside loom_fan_mode (LOOM_ERR_ARGUMENT). */
LOOM_API int64_t loom_init_fan(const loom_tensor *t, loom_fan_mode mode);

/* ------------------------------------------------ layers
 * Activations are the ops in ops.h (loom_relu, loom_gelu, ...) and pooling
 * is stateless (loom_max_pool2d, loom_avg_pool2d, loom_adaptive_avg_pool2d
 * with their option structs): neither needs a module. */

/* Linear: y = x W^T + b; W: out x in. new: sizes >= 0 (else NULL,
 * LOOM_ERR_ARGUMENT). forward: x (..., in) or (in) -> (..., out)
 * (scope-owned); NULL with LOOM_ERR_SHAPE when x's last dim is not in,
 * LOOM_ERR_DTYPE for a non-float x. */
typedef struct loom_linear_layer {
  loom_module base;
  loom_tensor *weight, *bias; /* bias NULL if none */
  int64_t in_features, out_features;
} loom_linear_layer;
LOOM_API loom_linear_layer *loom_linear_layer_new(int64_t in, int64_t out,
                                                  bool bias);
LOOM_API loom_tensor *loom_linear_layer_forward(loom_linear_layer *l,
                                                const loom_tensor *x);
LOOM_API void loom_linear_layer_free(loom_linear_layer *l);

/* Bilinear: y_k = x1^T W_k x2 + b_k; W: out x in1 x in2. new: sizes >= 1
 * (else NULL, LOOM_ERR_ARGUMENT). forward: x1 (..., in1) and x2 (...,
 * in2) with the same leading dims -> (..., out) (scope-owned); NULL with
 * LOOM_ERR_SHAPE otherwise. */
typedef struct loom_bilinear {
  loom_module base;
  loom_tensor *weight, *bias;
  int64_t in1, in2, out;
} loom_bilinear;
LOOM_API loom_bilinear *loom_bilinear_new(int64_t in1, int64_t in2, int64_t out,
                                          bool bias);
LOOM_API loom_tensor *loom_bilinear_forward(loom_bilinear *l,
                                            const loom_tensor *x1,
                                            const loom_tensor *x2);
LOOM_API void loom_bilinear_free(loom_bilinear *l);

/* Embedding: rows of weight (num x dim) by int64 or int32 index. padding_idx <
 * 0: none (its row starts at zero and gets no gradient). max_norm > 0: rows
 * looked up are renormalised in place to at most that norm (p = norm_type,
 * 2 when 0), like PyTorch. A NaN or negative max_norm or norm_type fails
 * the forward with LOOM_ERR_ARGUMENT. new: num >= 1, dim >= 1 and
 * padding_idx < num (else NULL, LOOM_ERR_ARGUMENT). forward: indices of
 * any shape -> (indices..., dim) (scope-owned); NULL with LOOM_ERR_INDEX
 * for an index outside [0, num), LOOM_ERR_DTYPE for indices neither int64
 * nor int32. */
typedef struct loom_embedding_layer {
  loom_module base;
  loom_tensor *weight;
  int64_t num, dim, padding_idx;
  double max_norm, norm_type;
} loom_embedding_layer;
LOOM_API loom_embedding_layer *
loom_embedding_layer_new(int64_t num, int64_t dim, int64_t padding_idx);
LOOM_API loom_tensor *loom_embedding_layer_forward(loom_embedding_layer *e,
                                                   const loom_tensor *indices);
LOOM_API void loom_embedding_layer_free(loom_embedding_layer *e);

/* Conv2d (nn.Conv2d): weight (out_channels, in_channels / groups, kh,
 * kw), bias (out_channels) or NULL; opts as loom_conv2d's (stride,
 * padding, dilation, groups). new: NULL with LOOM_ERR_ARGUMENT for a size
 * below 1 or channels the groups do not divide. forward: x (N, C, H, W)
 * -> (N, out_channels, H', W'), or unbatched (C, H, W) -> (out_channels,
 * H', W') (scope-owned); NULL with LOOM_ERR_SHAPE when C is not
 * in_channels or the kernel does not fit the padded input. */
typedef struct loom_conv2d_layer {
  loom_module base;
  loom_tensor *weight, *bias;
  loom_conv2d_opts opts;
} loom_conv2d_layer;
LOOM_API loom_conv2d_layer *
loom_conv2d_layer_new(int64_t in_channels, int64_t out_channels, int64_t kh,
                      int64_t kw, loom_conv2d_opts opts, bool bias);
LOOM_API loom_tensor *loom_conv2d_layer_forward(loom_conv2d_layer *c,
                                                const loom_tensor *x);
LOOM_API void loom_conv2d_layer_free(loom_conv2d_layer *c);

/* BatchNorm over the channel dim 1 of (N, C), (N, C, L) or (N, C, H, W):
 * batch statistics in training (updating running_mean/var with momentum
 * and the unbiased variance), running statistics in evaluation. */
typedef struct loom_batch_norm_layer {
  loom_module base;
  loom_tensor *weight, *bias;              /* NULL unless affine */
  loom_tensor *running_mean, *running_var; /* NULL unless tracked */
  loom_tensor *num_batches_tracked;        /* int64 scalar */
  int64_t features;
  double eps, momentum;
} loom_batch_norm_layer;
/* momentum 0.1 and eps 1e-5 are PyTorch's defaults. new: NULL with
 * LOOM_ERR_ARGUMENT for features < 1, eps not > 0 or a momentum outside
 * [0, 1]. forward: x's shape (scope-owned); NULL with LOOM_ERR_SHAPE
 * for an input not (N, features, ...), or one value per channel in
 * training. */
LOOM_API loom_batch_norm_layer *
loom_batch_norm_layer_new(int64_t features, double eps, double momentum,
                          bool affine, bool track_running_stats);
LOOM_API loom_tensor *loom_batch_norm_layer_forward(loom_batch_norm_layer *b,
                                                    const loom_tensor *x);
/* loom_relu(loom_batch_norm_layer_forward(b, x)) as one op
 * (loom_batch_norm_relu): the same values, gradients, running statistics
 * and errors, with less memory and time. */
LOOM_API loom_tensor *
loom_batch_norm_layer_forward_relu(loom_batch_norm_layer *b,
                                   const loom_tensor *x);
LOOM_API void loom_batch_norm_layer_free(loom_batch_norm_layer *b);

/* LayerNorm over the last `ndims` dims, whose sizes are `shape` (copied).
 * new: NULL with LOOM_ERR_ARGUMENT for ndims outside 1..8, a NULL shape or
 * eps not > 0. forward: x (..., shape) -> x's shape (scope-owned); NULL
 * with LOOM_ERR_SHAPE when x does not end in shape. */
typedef struct loom_layer_norm_layer {
  loom_module base;
  loom_tensor *weight, *bias; /* NULL unless elementwise_affine */
  int ndims;
  int64_t shape[LOOM_MAX_DIMS];
  double eps;
} loom_layer_norm_layer;
LOOM_API loom_layer_norm_layer *loom_layer_norm_layer_new(int ndims,
                                                          const int64_t *shape,
                                                          double eps,
                                                          bool affine);
LOOM_API loom_tensor *loom_layer_norm_layer_forward(loom_layer_norm_layer *l,
                                                    const loom_tensor *x);
LOOM_API void loom_layer_norm_layer_free(loom_layer_norm_layer *l);

/* Dropout: loom_dropout with this p in training mode, identity in eval.
 * g: the generator for masks (NULL: the default; borrowed). new: p in
 * [0, 1] (1 zeroes everything, as torch), else NULL with
 * LOOM_ERR_ARGUMENT. forward: x's shape (scope-owned); NULL with
 * LOOM_ERR_DTYPE for a non-float x. */
typedef struct loom_dropout_layer {
  loom_module base;
  double p;
  loom_rng *g;
} loom_dropout_layer;
LOOM_API loom_dropout_layer *loom_dropout_layer_new(double p, loom_rng *g);
LOOM_API loom_tensor *loom_dropout_layer_forward(loom_dropout_layer *d,
                                                 const loom_tensor *x);
LOOM_API void loom_dropout_layer_free(loom_dropout_layer *d);

/* Highway: y = g * relu(W_h x + b_h) + (1 - g) * x, g = sigmoid(W_g x +
 * b_g); children "transform" and "gate"; the gate bias starts at
 * gate_bias (negative: carry the input at first). new: NULL with
 * LOOM_ERR_ARGUMENT for a negative size or a gate_bias that is not
 * finite. forward: x (..., size) -> y of x's shape (scope-owned); NULL
 * with LOOM_ERR_SHAPE when the last dim is not size. */
typedef struct loom_highway {
  loom_module base;
  loom_linear_layer *transform, *gate;
} loom_highway;
LOOM_API loom_highway *loom_highway_new(int64_t size, double gate_bias);
LOOM_API loom_tensor *loom_highway_forward(loom_highway *h,
                                           const loom_tensor *x);
LOOM_API void loom_highway_free(loom_highway *h);

/* ------------------------------------------------ losses
 * All differentiable (composed from ops); results owned by the scope. A
 * reduction outside loom_reduction is refused (NULL, LOOM_ERR_ARGUMENT). */

typedef enum loom_reduction {
  LOOM_MEAN = 0,
  LOOM_SUM,
  LOOM_NONE,
} loom_reduction;

typedef struct loom_cross_entropy_opts {
  loom_reduction reduction;
  int64_t ignore_index;      /* PyTorch's default is -100 */
  double label_smoothing;    /* in [0, 1] */
  const loom_tensor *weight; /* per-class weights (C) or NULL */
} loom_cross_entropy_opts;
/* {LOOM_MEAN, -100, 0, NULL}. */
LOOM_API loom_cross_entropy_opts loom_cross_entropy_defaults(void);

/* logits: (N, C) or (N, C, d1, ...). target: int64 class indices (N) or
 * (N, d1, ...), or float probabilities shaped like logits. opts NULL:
 * defaults. Mean over non-ignored targets (weighted, like PyTorch): the
 * weighted sum over the kept targets' weight sum W, both summed in the
 * logits' dtype (with class weights in PyTorch's order; (N, C) logits
 * without them take one fused sum, within a few ulps of PyTorch's). Where W is 0 (every target ignored,
 * kept targets of weight 0, or negative class weights that cancel) the
 * mean is the sum / 0 as in PyTorch, NaN or +-inf, and the log-
 * probabilities' gradient w (-(g / W)) for kept targets and 0 for ignored
 * ones; a zero weight's gradient is -0 as PyTorch's. (N, C) logits with class
 * indices and no class weights take one fused op (loom_fused_cross_entropy: the
 * tape keeps the logits alone, not four (N, C) tensors); the rest is composed
 * from ops. Returns a scope-owned tensor, 0-dim, or shaped like target for
 * LOOM_NONE; NULL with LOOM_ERR_SHAPE for shapes that do not fit,
 * LOOM_ERR_DTYPE for targets neither int64 nor float, LOOM_ERR_INDEX for a kept
 * target outside [0, C), LOOM_ERR_ARGUMENT for label_smoothing outside [0, 1].
 */
LOOM_API loom_tensor *loom_cross_entropy(const loom_tensor *logits,
                                         const loom_tensor *target,
                                         const loom_cross_entropy_opts *opts);
/* The same on log-probabilities (no label smoothing). */
LOOM_API loom_tensor *loom_nll_loss(const loom_tensor *log_probs,
                                    const loom_tensor *target,
                                    const loom_cross_entropy_opts *opts);
/* Mean squared error and mean absolute error of input against target
 * (dtypes promoted), elementwise: a scope-owned 0-dim tensor (LOOM_MEAN,
 * LOOM_SUM) or one shaped like input (LOOM_NONE). The target must have
 * input's shape: where torch broadcasts a target of another shape (with a
 * warning, usually a mistake such as (N, 1) against (N)), loom refuses it
 * (NULL, LOOM_ERR_SHAPE); so do smooth_l1_loss and kl_div. */
LOOM_API loom_tensor *loom_mse_loss(const loom_tensor *input,
                                    const loom_tensor *target,
                                    loom_reduction r);
LOOM_API loom_tensor *loom_l1_loss(const loom_tensor *input,
                                   const loom_tensor *target, loom_reduction r);
/* Quadratic below beta, linear above (beta 0: the L1 loss); beta NaN or
 * negative: LOOM_ERR_ARGUMENT. */
LOOM_API loom_tensor *loom_smooth_l1_loss(const loom_tensor *input,
                                          const loom_tensor *target,
                                          double beta, loom_reduction r);
/* Binary cross entropy on probabilities, as PyTorch: each log clamped at
 * -100, and the gradient in input (input - target) / max(input (1 -
 * input), 1e-12f), finite at 0 and 1; differentiable in the target too
 * (log(1 - input) - log(input), each clamped: finite at 0 and 1, where
 * torch's is infinite), and twice, finite everywhere. weight may be NULL.
 * An input element outside [0, 1] (or NaN) is refused as torch refuses it
 * (LOOM_ERR_ARGUMENT, "all elements of input should be between 0 and 1");
 * the target is not checked, as in torch. */
LOOM_API loom_tensor *loom_binary_cross_entropy(const loom_tensor *input,
                                                const loom_tensor *target,
                                                const loom_tensor *weight,
                                                loom_reduction r);
/* The same on logits, computed stably; pos_weight (per class) may be NULL. */
LOOM_API loom_tensor *loom_binary_cross_entropy_with_logits(
    const loom_tensor *logits, const loom_tensor *target,
    const loom_tensor *weight, const loom_tensor *pos_weight, loom_reduction r);
/* KL divergence with input as log-probabilities; target as probabilities,
 * or as log-probabilities when log_target. batchmean divides the sum by
 * the batch size (PyTorch's reduction='batchmean'). Computed as torch
 * 1.13's xlogy(t, t) - t input, values and gradients to the bit. Where a
 * probability target is 0 the term is 0 and its input gradient -t (a zero
 * of t's sign, as torch's); its target gradient is 0 there, where torch's
 * is NaN (0 / 0 in xlogy's backward), so that a target that underflowed
 * to 0 (a teacher's softmax) does not turn what made it into NaN. A
 * negative target gives NaN, as in torch. */
LOOM_API loom_tensor *loom_kl_div(const loom_tensor *input,
                                  const loom_tensor *target, bool log_target,
                                  loom_reduction r, bool batchmean);

/* ------------------------------------------------ checkpoints */

/* A resumable training checkpoint in one safetensors file: the model's
 * state dict ("model.<name>"), optimizer and schedule state, the step, the
 * generator's state and any `extra` tensors and metadata strings (an
 * app's configuration, say). opt, sched, rng, extra may be NULL. Written
 * through a temporary file and a rename. 0 or -1. */
LOOM_API int loom_checkpoint_save(const char *path, const loom_module *model,
                                  const loom_optimizer *opt,
                                  const loom_schedule *sched, int64_t step,
                                  loom_rng *rng, const loom_tensor_map *extra);
/* Restores what was saved (NULL arguments are skipped); *step receives the
 * step. `extra`, if non-NULL, receives a new map of the extra tensors
 * (caller frees). 0, or -1 leaving the model, optimizer, schedule and
 * generator as they were. */
LOOM_API int loom_checkpoint_load(const char *path, loom_module *model,
                                  loom_optimizer *opt, loom_schedule *sched,
                                  int64_t *step, loom_rng *rng,
                                  loom_tensor_map **extra);
/* The same from a checkpoint already read: `file` as
 * loom_safetensors_load(path) returned it (borrowed and left unchanged;
 * the model and optimizer get copies of its tensors), `path` naming it
 * in messages. A program that builds its model from the configuration in
 * `extra` reads the file once and restores from it twice, `extra` first
 * and then the model: reading the path twice could pair one file's
 * configuration with another's weights, if a run saving to that path
 * replaced the file in between. */
LOOM_API int loom_checkpoint_restore(const loom_tensor_map *file,
                                     const char *path, loom_module *model,
                                     loom_optimizer *opt, loom_schedule *sched,
                                     int64_t *step, loom_rng *rng,
                                     loom_tensor_map **extra);

#ifdef __cplusplus
}
#endif

#include "attention.h"
#include "decode.h"
#include "distributed.h"
#include "rnn.h"
#endif
