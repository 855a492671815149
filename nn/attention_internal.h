/* What the attention files share and users do not see: mask handling and
 * the parts of multi-head attention its incremental steps reuse. */
#ifndef LOOM_NN_ATTENTION_INTERNAL_H
#define LOOM_NN_ATTENTION_INTERNAL_H

#include "attention.h"

/* True for bool and uint8 masks (true = blocked), false for additive float
 * masks. */
bool loom__is_bool_mask(const loom_tensor *mask);
/* A bool mask as an additive float one of dtype (-inf where blocked); a
 * float mask itself; an integer one is NULL with an error (NULL: NULL). */
const loom_tensor *loom__additive_mask(const loom_tensor *mask,
                                       loom_dtype dtype);
/* scores with a mask applied: bool masks fill -inf, float masks add; NULL
 * mask: scores itself; an integer mask is refused (NULL, an error). */
loom_tensor *loom__apply_mask(loom_tensor *scores, const loom_tensor *mask);

/* Projection i (0: q, 1: k, 2: v) of x (..., in) -> (..., E). */
loom_tensor *
loom__multihead_attention_project(const loom_multihead_attention *m, int i,
                                  const loom_tensor *x);
/* (N, B, E) seq-first (or (B, N, E)) -> (B, heads, N, head_dim), a view. */
loom_tensor *
loom__multihead_attention_split_heads(const loom_multihead_attention *m,
                                      const loom_tensor *x);

/* Whether memory and key padding mask suit a cross step of m over a batch
 * of b rows: memory (S, b, E) float (batch first: (b, S, E)) with E m's
 * kdim and vdim, kpm NULL or (b, S) bool, uint8 or float. Else false with
 * LOOM_ERR_SHAPE or LOOM_ERR_DTYPE naming op, the argument and what it
 * needs (b < 0: any batch). */
bool loom__cross_memory_ok(const loom_multihead_attention *m,
                           const loom_tensor *memory, const loom_tensor *kpm,
                           int64_t b, const char *op);

#endif
