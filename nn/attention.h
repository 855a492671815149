/* Attention and the transformer, composed from ops (included by nn.h).
 *
 * Masks follow torch.nn.MultiheadAttention: a bool (or uint8) mask is
 * true where attention is NOT allowed; a float mask is added to the scores
 * (-inf blocks); an integer mask is refused (LOOM_ERR_DTYPE). A query row with
 * every key blocked gets zero weights (not NaN), so padding never poisons
 * outputs or gradients. Layouts are sequence-first (L, B, E) unless
 * batch_first; parameter names are PyTorch's throughout (in_proj_weight,
 * out_proj.weight, layers.0.linear1.weight, ...).
 */
#ifndef LOOM_ATTENTION_H
#define LOOM_ATTENTION_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* softmax(q k^T / sqrt(E) + mask) v over the last two dims: q (..., L, E),
 * k (..., S, E), v (..., S, Ev); batch dims broadcast. mask: NULL, bool or
 * float, broadcast to (..., L, S); causal blocks keys after each query.
 * dropout p in [0, 1] (with g) is applied to the weights. *weights, if
 * non-NULL, receives them (..., L, S), after dropout as PyTorch returns
 * them. Result (..., L, Ev), scope-owned. Without weights, equal batch
 * dims, one dtype and a mask needing no gradient it is one op,
 * loom_fused_attention (the same function, the weights never stored as
 * separate tensors); otherwise the composition of matmul, softmax and
 * dropout. */
LOOM_API loom_tensor *
loom_scaled_dot_product_attention(const loom_tensor *q, const loom_tensor *k,
                                  const loom_tensor *v, const loom_tensor *mask,
                                  bool causal, double dropout, loom_rng *g,
                                  loom_tensor **weights);
/* (n, n) float mask, 0 on and below the diagonal and -inf above it
 * (nn.Transformer.generate_square_subsequent_mask). A dtype other than
 * float32 or float64 (or the default) is refused (LOOM_ERR_DTYPE). */
LOOM_API loom_tensor *loom_causal_mask(loom_dtype dtype, int64_t n);

/* ------------------------------------------------ seq2seq attention
 * For RNN encoder-decoders: one decoder state attends over the encoder's
 * outputs. */

typedef enum loom_score_kind {
  LOOM_SCORE_DOT,      /* Luong: q . k (needs equal sizes) */
  LOOM_SCORE_GENERAL,  /* Luong: q . (W k), W: attn.weight (Q x K) */
  LOOM_SCORE_CONCAT,   /* Luong: v . tanh(W [q; k]), attn.weight, v */
  LOOM_SCORE_ADDITIVE, /* Bahdanau: v . tanh(W_q q + W_k k + b) */
} loom_score_kind;

typedef struct loom_seq_attention {
  loom_module base;
  loom_score_kind kind;
  int64_t query_size, key_size, hidden;
  loom_linear_layer *attn;                    /* GENERAL, CONCAT */
  loom_linear_layer *query_layer, *key_layer; /* ADDITIVE */
  loom_tensor *v;                             /* CONCAT, ADDITIVE */
} loom_seq_attention;

/* hidden is the size of the tanh layer (CONCAT, ADDITIVE). */
LOOM_API loom_seq_attention *loom_seq_attention_new(loom_score_kind kind,
                                                    int64_t query_size,
                                                    int64_t key_size,
                                                    int64_t hidden);
/* query (B, Q), keys (B, S, K), mask (B, S) bool, true = padding (or NULL):
 * context (B, K) and weights (B, S), scope-owned. 0 or -1. */
LOOM_API int
loom_seq_attention_forward(loom_seq_attention *a, const loom_tensor *query,
                           const loom_tensor *keys, const loom_tensor *mask,
                           loom_tensor **context, loom_tensor **weights);
LOOM_API void loom_seq_attention_free(loom_seq_attention *a);

/* ------------------------------------------------ multi-head attention */

typedef struct loom_multihead_attention_opts {
  int64_t kdim, vdim; /* 0: embed_dim */
  double dropout;     /* on the weights, training only */
  bool no_bias;       /* PyTorch's bias=False */
  bool batch_first;
  loom_rng *rng; /* dropout masks (NULL: default generator) */
} loom_multihead_attention_opts;

typedef struct loom_multihead_attention {
  loom_module base;
  int64_t embed_dim, num_heads, head_dim, kdim, vdim;
  loom_multihead_attention_opts opts;
  /* in_proj_weight (3E x E) when kdim == vdim == E, else q/k/v_proj_weight */
  loom_tensor *in_proj_weight, *q_proj_weight, *k_proj_weight, *v_proj_weight,
      *in_proj_bias;
  loom_linear_layer *out_proj;
} loom_multihead_attention;

LOOM_API loom_multihead_attention *
loom_multihead_attention_new(int64_t embed_dim, int64_t num_heads,
                             loom_multihead_attention_opts opts);
LOOM_API void loom_multihead_attention_free(loom_multihead_attention *m);

typedef struct loom_multihead_attention_args {
  const loom_tensor *key_padding_mask; /* (B, S) bool or float */
  const loom_tensor *attn_mask;        /* (L, S) or (B*heads, L, S) */
  bool causal;                         /* add the causal mask */
  bool need_weights;
  bool per_head_weights; /* weights (B, heads, L, S), else averaged */
} loom_multihead_attention_args;

/* query (L, B, E), key (S, B, kdim), value (S, B, vdim) (batch first if
 * set): *out (L, B, E); *weights (B, L, S), or (B, heads, L, S) per head,
 * if asked. Unbatched, as in PyTorch: query (L, E), key (S, kdim), value
 * (S, vdim), key_padding_mask (S), attn_mask (L, S) or (heads, L, S) give
 * *out (L, E) and *weights (L, S) or (heads, L, S). Results scope-owned;
 * args may be NULL. 0, or -1 with the error set (shapes named). */
LOOM_API int loom_multihead_attention_forward(
    loom_multihead_attention *m, const loom_tensor *query,
    const loom_tensor *key, const loom_tensor *value,
    const loom_multihead_attention_args *args, loom_tensor **out,
    loom_tensor **weights);

/* Incremental self-attention: keys and values of earlier positions are
 * kept, so a step costs O(t), not a recomputation of the prefix. */
typedef struct loom_kv_cache loom_kv_cache;
LOOM_API loom_kv_cache *loom_kv_cache_new(void);
LOOM_API void loom_kv_cache_free(loom_kv_cache *c);
/* Positions cached so far (-1 for a NULL cache). */
LOOM_API int64_t loom_kv_cache_length(const loom_kv_cache *c);
/* Reorders the cached rows (the batch dim) for beam search: row i becomes
 * old row index[i]; index is int64 (N') and N' may differ from the old row
 * count (beams expand, finished sentences drop out). An empty cache is left
 * as it is. 0, or -1 with the error (an index out of range) and the cache
 * unchanged. */
LOOM_API int loom_kv_cache_reorder(loom_kv_cache *c, const loom_tensor *index);
/* One position of causal self-attention: x (B, E) is the new position's
 * input; it attends to itself and everything cached. Result (B, E). B must
 * be the cache's row count (LOOM_ERR_SHAPE; reorder changes it). */
LOOM_API loom_tensor *loom_multihead_attention_step(loom_multihead_attention *m,
                                                    loom_kv_cache *cache,
                                                    const loom_tensor *x);
/* Cross-attention of x (B, E) over memory (S, B, E) (batch first if set);
 * the memory's keys and values are projected once into the cache. A cache
 * holding a self-attention prefix is refused (LOOM_ERR_STATE), as a self
 * step refuses a cross one. */
LOOM_API loom_tensor *loom_multihead_attention_cross_step(
    loom_multihead_attention *m, loom_kv_cache *cache, const loom_tensor *x,
    const loom_tensor *memory, const loom_tensor *key_padding_mask);

/* ------------------------------------------------ positional encodings */

/* The Vaswani et al. table: (n, d), sin on even, cos on odd features.
 * Errors: LOOM_ERR_DTYPE for a dtype other than float32 or float64 (or
 * the default), LOOM_ERR_ARGUMENT for n < 0, d < 1 or n * d too large. */
LOOM_API loom_tensor *loom_sinusoidal_encoding(loom_dtype dtype, int64_t n,
                                               int64_t d);

/* Learned positions: an embedding of positions 0..max_len-1. */
typedef struct loom_learned_positions {
  loom_module base;
  loom_tensor *weight; /* (max_len, d), N(0, 1) like nn.Embedding */
  int64_t max_len, d;
} loom_learned_positions;
LOOM_API loom_learned_positions *loom_learned_positions_new(int64_t max_len,
                                                            int64_t d);
/* Rows offset .. offset+n-1, (n, d). */
LOOM_API loom_tensor *loom_learned_positions_forward(loom_learned_positions *p,
                                                     int64_t offset, int64_t n);
LOOM_API void loom_learned_positions_free(loom_learned_positions *p);

/* ------------------------------------------------ transformer */

typedef struct loom_transformer_opts {
  int64_t d_model, nhead, dim_feedforward; /* dim_feedforward 0: 2048 */
  double dropout;
  double layer_norm_eps; /* 0: 1e-5 */
  bool gelu;             /* activation gelu instead of relu */
  bool batch_first;
  bool norm_first; /* pre-norm instead of PyTorch's post-norm default */
  loom_rng *rng;
} loom_transformer_opts;

typedef struct loom_transformer_encoder_layer {
  loom_module base;
  loom_transformer_opts opts;
  loom_multihead_attention *self_attn;
  loom_linear_layer *linear1, *linear2;
  loom_layer_norm_layer *norm1, *norm2;
} loom_transformer_encoder_layer;

typedef struct loom_transformer_decoder_layer {
  loom_module base;
  loom_transformer_opts opts;
  loom_multihead_attention *self_attn, *multihead_attn;
  loom_linear_layer *linear1, *linear2;
  loom_layer_norm_layer *norm1, *norm2, *norm3;
} loom_transformer_decoder_layer;

/* The layers, stacks and the transformer take unbatched inputs too, as
 * PyTorch does: no batch dim in the sequences, key padding masks (S). (Not
 * the incremental decoding below, whose x is always (B, E).) */
typedef struct loom_transformer_masks {
  const loom_tensor *src_mask, *tgt_mask, *memory_mask;
  const loom_tensor *src_key_padding_mask, *tgt_key_padding_mask,
      *memory_key_padding_mask;
  bool src_causal, tgt_causal;
} loom_transformer_masks;

LOOM_API loom_transformer_encoder_layer *
loom_transformer_encoder_layer_new(loom_transformer_opts opts);
/* src (S, B, E) -> (S, B, E); masks may be NULL (uses src_*). */
LOOM_API loom_tensor *
loom_transformer_encoder_layer_forward(loom_transformer_encoder_layer *l,
                                       const loom_tensor *src,
                                       const loom_transformer_masks *masks);
LOOM_API void
loom_transformer_encoder_layer_free(loom_transformer_encoder_layer *l);
LOOM_API loom_transformer_decoder_layer *
loom_transformer_decoder_layer_new(loom_transformer_opts opts);
/* tgt (T, B, E), memory (S, B, E) -> (T, B, E); uses tgt_* and memory_*. */
LOOM_API loom_tensor *loom_transformer_decoder_layer_forward(
    loom_transformer_decoder_layer *l, const loom_tensor *tgt,
    const loom_tensor *memory, const loom_transformer_masks *masks);
LOOM_API void
loom_transformer_decoder_layer_free(loom_transformer_decoder_layer *l);

/* Stacks: children "layers" (0..n-1) and, if final_norm, "norm".
 * num_layers 1 to 4096, else LOOM_ERR_ARGUMENT. */
typedef struct loom_transformer_stack {
  loom_module base;
  loom_module *layers;
  loom_layer_norm_layer *norm;
  int n;
  bool decoder;
  loom_transformer_opts opts;
} loom_transformer_stack;

LOOM_API loom_transformer_stack *
loom_transformer_encoder_new(loom_transformer_opts opts, int num_layers,
                             bool final_norm);
LOOM_API loom_transformer_stack *
loom_transformer_decoder_new(loom_transformer_opts opts, int num_layers,
                             bool final_norm);
LOOM_API loom_tensor *
loom_transformer_encoder_forward(loom_transformer_stack *s,
                                 const loom_tensor *src,
                                 const loom_transformer_masks *masks);
LOOM_API loom_tensor *loom_transformer_decoder_forward(
    loom_transformer_stack *s, const loom_tensor *tgt,
    const loom_tensor *memory, const loom_transformer_masks *masks);
LOOM_API void loom_transformer_stack_free(loom_transformer_stack *s);

/* Incremental decoding: one target position at a time, keys and values of
 * earlier positions cached per layer (self-attention) and the memory's
 * projected once (cross-attention; memory NULL for a decoder-only stack of
 * encoder layers run causally). Equal to the full pass with a causal
 * target mask (tested). */
typedef struct loom_decoder_state loom_decoder_state;
LOOM_API loom_decoder_state *
loom_decoder_state_new(loom_transformer_stack *s, const loom_tensor *memory,
                       const loom_tensor *memory_key_padding_mask);
LOOM_API void loom_decoder_state_free(loom_decoder_state *st);
/* Reorders the batch rows of every cache and of the memory (row i becomes
 * old row index[i], int64 (N')), as loom_kv_cache_reorder: beam search
 * calls it after choosing which hypotheses go on. 0 or -1. */
LOOM_API int loom_decoder_state_reorder(loom_decoder_state *st,
                                        const loom_tensor *index);
/* x (B, E): the next position's input; returns its output (B, E). st must
 * have been made for s (else LOOM_ERR_ARGUMENT): its caches hold s's keys
 * and values. */
LOOM_API loom_tensor *loom_transformer_step(loom_transformer_stack *s,
                                            loom_decoder_state *st,
                                            const loom_tensor *x);

/* nn.Transformer: children "encoder" and "decoder", both with a final
 * norm; parameters of 2+ dims start xavier-uniform as in PyTorch. */
typedef struct loom_transformer {
  loom_module base;
  loom_transformer_stack *encoder, *decoder;
  loom_transformer_opts opts;
} loom_transformer;
LOOM_API loom_transformer *loom_transformer_new(loom_transformer_opts opts,
                                                int num_encoder_layers,
                                                int num_decoder_layers);
/* src (S, B, E), tgt (T, B, E) -> (T, B, E), scope-owned (batch first if
 * set); unbatched src (S, E), tgt (T, E) -> (T, E), as in PyTorch. */
LOOM_API loom_tensor *loom_transformer_forward(loom_transformer *t,
                                               const loom_tensor *src,
                                               const loom_tensor *tgt,
                                               const loom_transformer_masks *m);
LOOM_API void loom_transformer_free(loom_transformer *t);

#ifdef __cplusplus
}
#endif
#endif
