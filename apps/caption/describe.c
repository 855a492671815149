/* Captions from images through the library's decoder (nn/decode.h):
 * greedy, sampling or beam search over the LSTM stepped one word at a
 * time, its state rows (h, c, and what each row attends to or is
 * conditioned on) following the hypotheses the search keeps. Attention
 * maps of a caption come from a teacher-forced pass over it. */
#include "caption.h"

#include <stdlib.h>
#include <string.h>

/* The decoder's state: one row per live hypothesis, kept tensors. */
typedef struct {
  cap_model *m;
  loom_tensor *h, *c; /* (N, hidden) */
  loom_tensor *keys;  /* with attention: (N, s*s, C) */
  loom_tensor *z;     /* attending after: the latest context (N, C) */
  loom_tensor *image; /* CAP_IMAGE_EVERY: the image vector (N, embed) */
} decoder;

static void swap(loom_tensor **slot, loom_tensor *t) {
  loom_tensor *kept = loom_keep(t);
  loom_release(*slot);
  *slot = kept;
}

static int step(void *ctx, int64_t t, const loom_tensor *tokens,
                loom_tensor **log_probs) {
  (void)t;
  decoder *d = ctx;
  cap_model *m = d->m;
  loom_tensor *x = loom_embedding_layer_forward(m->embed, tokens);
  if (d->image)
    x = loom_concat((loom_tensor *[]){x, d->image}, 2, 1);
  loom_tensor *state[2] = {d->h, d->c}, *out;
  if (d->keys) {
    loom_tensor *z = d->z, *a;
    if (cap_model_attend_step(m, d->keys, x, state, &z, &out, &a) < 0)
      return -1;
    if (d->z)
      swap(&d->z, z);
  } else {
    loom_tensor *next[2];
    if (loom_rnn_cell_step(m->lstm, 0, x, state, next) < 0)
      return -1;
    state[0] = out = next[0];
    state[1] = next[1];
  }
  swap(&d->h, state[0]);
  swap(&d->c, state[1]);
  *log_probs = loom_log_softmax(loom_linear_layer_forward(m->out, out), -1);
  return *log_probs ? 0 : -1;
}

static int reorder(void *ctx, const loom_tensor *index) {
  decoder *d = ctx;
  loom_tensor **rows[5] = {&d->h, &d->c, &d->keys, &d->z, &d->image};
  for (int k = 0; k < 5; k++)
    if (*rows[k]) {
      loom_tensor *r = loom_index_select(*rows[k], 0, index);
      if (!r)
        return -1;
      swap(rows[k], r);
    }
  return 0;
}

/* The state before the first word, for the n images' features. */
static int start(decoder *d, const loom_tensor *images) {
  cap_model *m = d->m;
  loom_tensor *f, *v;
  if (cap_model_encode(m, images, &f, &v) < 0)
    return -1;
  int64_t n = loom_size(v, 0), H = m->cfg.hidden;
  loom_tensor *h = loom_zeros(LOOM_F32, LOOM_SHAPE(n, H)), *c = h;
  if (m->cfg.image_mode == CAP_IMAGE_FIRST) { /* the image is step 0 */
    loom_tensor *next[2];
    if (loom_rnn_cell_step(m->lstm, 0, v, (loom_tensor *[]){h, c}, next) < 0)
      return -1;
    h = next[0];
    c = next[1];
  } else if (m->cfg.image_mode == CAP_IMAGE_INIT) {
    h = loom_tanh(loom_linear_layer_forward(m->init_h, v));
    c = loom_tanh(loom_linear_layer_forward(m->init_c, v));
  } else {
    swap(&d->image, v);
  }
  if (m->cfg.attention)
    swap(&d->keys, cap_model_keys(m, f));
  if (m->cfg.attend_after && d->keys)
    swap(&d->z, cap_model_first_context(d->keys));
  swap(&d->h, h);
  swap(&d->c, c);
  return d->h && d->c && (!m->cfg.attention || d->keys) &&
                 (!m->cfg.attend_after || d->z)
             ? 0
             : -1;
}

static void finish(decoder *d) {
  loom_release(d->h);
  loom_release(d->c);
  loom_release(d->keys);
  loom_release(d->z);
  loom_release(d->image);
}

int cap_describe(cap_model *m, const loom_tensor *images,
                 const loom_decode_opts *o, loom_decode_result *r) {
  *r = (loom_decode_result){0};
  bool was_training = m->base.training;
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  decoder d = {.m = m};
  loom_decode_opts od = *o;
  int64_t *never = app_never_written(o->suppress, o->n_suppress,
                                     &od.n_suppress);
  od.suppress = never;
  int rc = never ? start(&d, images) : -1;
  if (rc == 0)
    rc = loom_decode(&(loom_decode_model){step, reorder, &d},
                     loom_size(images, 0), NULL, &od, r);
  finish(&d);
  free(never);
  loom_scope_end(s);
  loom_no_grad_end();
  loom_module_train(&m->base, was_training);
  return rc;
}

int cap_attention_maps(cap_model *m, const loom_tensor *image,
                       const int64_t *words, int64_t n, float *maps) {
  if (!m->cfg.attention) {
    loom_set_error(LOOM_ERR_ARGUMENT, "the model has no attention");
    return -1;
  }
  bool was_training = m->base.training;
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  loom_scope *s = loom_scope_begin();
  loom_tensor *in = loom_empty(LOOM_I64, LOOM_SHAPE(n + 1, 1)), *h, *alpha;
  int rc = in ? 0 : -1;
  if (rc == 0) {
    int64_t *p = loom_data_i64(in);
    p[0] = APP_BOS;
    memcpy(p + 1, words, (size_t)n * sizeof *words);
    rc = cap_model_hidden(m, image, NULL, in, &h, &alpha);
  }
  /* step t attended before writing word t (its last the eos) */
  if (rc == 0)
    rc = loom_copy_to_array(loom_contiguous(alpha), LOOM_F32, maps,
                            loom_numel(alpha));
  loom_scope_end(s);
  loom_no_grad_end();
  loom_module_train(&m->base, was_training);
  return rc;
}
