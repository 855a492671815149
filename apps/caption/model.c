/* The captioning model: a small CNN (conv-batchnorm-relu-pool blocks,
 * global average pooling) whose image vector conditions an LSTM language
 * model over caption words, trained jointly.
 *
 * The image enters the LSTM in one of three ways: as the first input step
 * (Show and Tell, and the PyTorch baseline), as the initial state
 * (h0, c0 = tanh of linear maps of it), or beside the word at every step.
 * With attention (Show, Attend and Tell) the LSTM starts from the image's
 * state and, before each word, attends over the CNN's last feature map;
 * the weighted features join the word embedding as its input. */
#include "caption.h"

#include <stdlib.h>
#include <string.h>

static void destroy(loom_module *m) {
  cap_model *c = (cap_model *)m;
  loom_rng_free(c->rng);
  free(c);
}

static loom_module *add(cap_model *m, const char *name, void *child) {
  return loom_module_add_child(&m->base, name, (loom_module *)child);
}

int64_t cap_model_feature_side(const cap_config *cfg) {
  int64_t s = cfg->side;
  for (int i = 0; i < cfg->blocks; i++)
    s /= 2;
  return s;
}

/* The first reason why c makes no model, or NULL; written into why. Each
 * names the value and what it must be, so that a refusal says which
 * option to change. */
static const char *config_problem(const cap_config *c, char *why, size_t size) {
  if (c->side < 4 || c->side > CAP_MAX_INPUT_SIDE)
    snprintf(why, size, "an image side of %lld is not in 4..%d",
             (long long)c->side, CAP_MAX_INPUT_SIDE);
  else if (c->blocks < 1 || c->blocks > CAP_MAX_BLOCKS)
    snprintf(why, size, "%d CNN blocks are not 1..%d", c->blocks,
             CAP_MAX_BLOCKS);
  else if (c->vocab <= APP_UNK || c->vocab > CAP_MAX_VOCAB)
    snprintf(why, size, "a vocabulary of %lld words is not %d..%d",
             (long long)c->vocab, APP_UNK + 1, CAP_MAX_VOCAB);
  else if (c->embed < 1 || c->embed > CAP_MAX_WIDTH)
    snprintf(why, size, "embed %lld is not in 1..%d", (long long)c->embed,
             CAP_MAX_WIDTH);
  else if (c->hidden < 1 || c->hidden > CAP_MAX_WIDTH)
    snprintf(why, size, "hidden %lld is not in 1..%d", (long long)c->hidden,
             CAP_MAX_WIDTH);
  else if (c->image_mode < 0 || c->image_mode >= CAP_IMAGE_MODES)
    snprintf(why, size, "image mode %d is not one of first, init, every",
             c->image_mode);
  else if (c->attention < 0 || c->attention > CAP_MAX_WIDTH)
    snprintf(why, size, "attention %lld is not in 0..%d",
             (long long)c->attention, CAP_MAX_WIDTH);
  else if (!(c->dropout >= 0 && c->dropout < 1))
    snprintf(why, size, "dropout %g is not in [0, 1)", c->dropout);
  else if (cap_model_feature_side(c) < 1) /* each block halves the side */
    snprintf(why, size,
             "an image of side %lld shrinks to 0 pixels through %d CNN "
             "blocks (%lld/2^%d): the image size must be at least %lld for "
             "%d blocks (--image-size), or the blocks fewer (--cnn)",
             (long long)c->side, c->blocks, (long long)c->side, c->blocks,
             (long long)1 << c->blocks, c->blocks);
  else if (c->attention && c->image_mode != CAP_IMAGE_INIT)
    snprintf(why, size,
             "attention needs the image as the initial state (--image "
             "init), not %s",
             cap_image_mode_name(c->image_mode));
  else if ((c->positions || c->attend_after) && !c->attention)
    snprintf(why, size, "positions and attend after need attention");
  else {
    for (int i = 0; i < c->blocks; i++)
      if (c->channels[i] < 1 || c->channels[i] > CAP_MAX_WIDTH) {
        snprintf(why, size, "CNN block %d has %lld channels, not 1..%d", i + 1,
                 (long long)c->channels[i], CAP_MAX_WIDTH);
        return why;
      }
    return NULL;
  }
  return why;
}

int cap_config_check(const cap_config *c) {
  char why[320];
  if (!config_problem(c, why, sizeof why))
    return 0;
  loom_set_error(LOOM_ERR_ARGUMENT, "%s", why);
  return -1;
}

cap_model *cap_model_new(const cap_config *cfg, uint64_t seed) {
  if (cap_config_check(cfg) < 0)
    return NULL;
  cap_model *m = calloc(1, sizeof *m);
  if (!m) {
    loom_set_error(LOOM_ERR_MEMORY, "caption model: out of memory");
    return NULL;
  }
  loom_module_init(&m->base, "Captioner", destroy);
  m->cfg = *cfg;
  m->rng = loom_rng_new(seed);
  loom_manual_seed(seed); /* parameter initialisation */
  bool ok = m->rng != NULL;
  int64_t in = 3;
  for (int i = 0; ok && i < cfg->blocks; i++) {
    char name[16];
    snprintf(name, sizeof name, "conv%d", i);
    m->conv[i] = (loom_conv2d_layer *)add(
        m, name,
        loom_conv2d_layer_new(in, cfg->channels[i], 3, 3,
                              (loom_conv2d_opts){.padding = {1, 1}}, false));
    snprintf(name, sizeof name, "bn%d", i);
    m->bn[i] = (loom_batch_norm_layer *)add(
        m, name,
        loom_batch_norm_layer_new(cfg->channels[i], 1e-5, 0.1, true, true));
    ok = m->conv[i] && m->bn[i];
    in = cfg->channels[i];
  }
  int64_t feat = cfg->channels[cfg->blocks - 1], H = cfg->hidden;
  int64_t lstm_in = cfg->embed;
  if (cfg->image_mode == CAP_IMAGE_EVERY)
    lstm_in += cfg->embed;
  int64_t keys = feat + (cfg->attention && cfg->positions ? 2 : 0);
  if (cfg->attention)
    lstm_in += keys;
  if (ok)
    ok = (m->image = (loom_linear_layer *)add(
              m, "image", loom_linear_layer_new(feat, cfg->embed, true)));
  if (ok && cfg->image_mode == CAP_IMAGE_INIT)
    ok = (m->init_h = (loom_linear_layer *)add(
              m, "init_h", loom_linear_layer_new(cfg->embed, H, true))) &&
         (m->init_c = (loom_linear_layer *)add(
              m, "init_c", loom_linear_layer_new(cfg->embed, H, true)));
  if (ok && cfg->attention)
    ok = (m->attend = (loom_seq_attention *)add(
              m, "attend",
              loom_seq_attention_new(LOOM_SCORE_ADDITIVE, H, keys,
                                     cfg->attention)));
  /* attending after the word, the output reads the context too */
  int64_t out_in = H + (cfg->attention && cfg->attend_after ? keys : 0);
  if (ok)
    ok = (m->embed = (loom_embedding_layer *)add(
              m, "embed",
              loom_embedding_layer_new(cfg->vocab, cfg->embed, APP_PAD))) &&
         (m->lstm =
              (loom_rnn *)add(m, "lstm",
                              loom_lstm_new((loom_rnn_opts){
                                  .input_size = lstm_in, .hidden_size = H}))) &&
         (m->drop = (loom_dropout_layer *)add(
              m, "drop", loom_dropout_layer_new(cfg->dropout, m->rng))) &&
         (m->out = (loom_linear_layer *)add(
              m, "out", loom_linear_layer_new(out_in, cfg->vocab, true)));
  if (!ok) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

void cap_model_free(cap_model *m) { loom_module_free(m ? &m->base : NULL); }

int cap_model_encode(cap_model *m, const loom_tensor *images,
                     loom_tensor **features, loom_tensor **vector) {
  const loom_tensor *h = images;
  loom_pool2d_opts pool = {.kernel = {2, 2}};
  for (int i = 0; i < m->cfg.blocks; i++)
    h = loom_max_pool2d(loom_batch_norm_layer_forward_relu(
                            m->bn[i], loom_conv2d_layer_forward(m->conv[i], h)),
                        pool, NULL);
  loom_tensor *f = (loom_tensor *)h;
  loom_tensor *v = loom_linear_layer_forward(
      m->image, loom_mean(f, (int[]){2, 3}, 2, false));
  if (features)
    *features = f;
  *vector = v;
  return v ? 0 : -1;
}

/* The cells' coordinates (1, h*w, 2), x then y, each in (-1, 1). */
static loom_tensor *coordinates(int64_t h, int64_t w) {
  loom_tensor *xy = loom_empty(LOOM_F32, LOOM_SHAPE(1, h * w, 2));
  float *p = xy ? loom_data(xy) : NULL;
  for (int64_t i = 0; p && i < h; i++)
    for (int64_t j = 0; j < w; j++) {
      p[2 * (i * w + j)] = (float)(2 * j + 1) / (float)w - 1;
      p[2 * (i * w + j) + 1] = (float)(2 * i + 1) / (float)h - 1;
    }
  return xy;
}

/* The feature map (B, C, h, w) as attention keys (B, h*w, C), or with
 * positions (B, h*w, C + 2): each cell's features followed by where it is,
 * so that the weighted sum the LSTM reads says where it looked, not only
 * what it saw there (the features of a shape are the same wherever it
 * stands). */
loom_tensor *cap_model_keys(const cap_model *m, const loom_tensor *f) {
  loom_tensor *k = loom_transpose(loom_flatten(f, 2, 3), 1, 2);
  if (!m->cfg.positions)
    return loom_contiguous(k);
  int64_t B = loom_size(f, 0), h = loom_size(f, 2), w = loom_size(f, 3);
  loom_tensor *xy = coordinates(h, w);
  return loom_concat(
      (loom_tensor *[]){k, loom_expand(xy, 3, (int64_t[]){B, h * w, 2})}, 2, 2);
}

/* The LSTM's initial state from the image vector (INIT mode). */
static int initial_state(cap_model *m, const loom_tensor *v,
                         loom_tensor **state) {
  state[0] = loom_tanh(loom_linear_layer_forward(m->init_h, v));
  state[1] = loom_tanh(loom_linear_layer_forward(m->init_c, v));
  return state[0] && state[1] ? 0 : -1;
}

/* One step of the LSTM with attention: from the state (h, c) and, when
 * attending after, the previous context z, the next state and context
 * (*out: what the output layer reads, h or [h, z]; *alpha the weights).
 * Before (Show, Attend and Tell): z = attend(h), then the LSTM reads
 * [word, z]. After: the LSTM reads [word, previous z], then z =
 * attend(new h), so the state that chooses where to look has read the
 * word just written (after "a small", the small shape's colour). */
int cap_model_attend_step(cap_model *m, const loom_tensor *keys,
                          const loom_tensor *word, loom_tensor **state,
                          loom_tensor **z, loom_tensor **out,
                          loom_tensor **alpha) {
  loom_tensor *next[2];
  if (!m->cfg.attend_after) {
    if (loom_seq_attention_forward(m->attend, state[0], keys, NULL, z, alpha) <
            0 ||
        loom_rnn_cell_step(
            m->lstm, 0,
            loom_concat((loom_tensor *[]){(loom_tensor *)word, *z}, 2, 1),
            state, next) < 0)
      return -1;
    state[0] = *out = next[0];
    state[1] = next[1];
    return 0;
  }
  if (loom_rnn_cell_step(
          m->lstm, 0,
          loom_concat((loom_tensor *[]){(loom_tensor *)word, *z}, 2, 1), state,
          next) < 0 ||
      loom_seq_attention_forward(m->attend, next[0], keys, NULL, z, alpha) < 0)
    return -1;
  state[0] = next[0];
  state[1] = next[1];
  *out = loom_concat((loom_tensor *[]){next[0], *z}, 2, 1);
  return *out ? 0 : -1;
}

/* The context before the first word when attending after: zeros (B, K). */
loom_tensor *cap_model_first_context(const loom_tensor *keys) {
  return loom_zeros(loom_dtype_of(keys),
                    LOOM_SHAPE(loom_size(keys, 0), loom_size(keys, 2)));
}

/* Attention: the LSTM stepped word by word (cap_model_attend_step). out
 * (T, B, H or H + K); alpha (T, B, L) if asked. */
static int attend_steps(cap_model *m, const loom_tensor *keys,
                        const loom_tensor *v, const loom_tensor *emb,
                        loom_tensor **out, loom_tensor **alpha) {
  int64_t T = loom_size(emb, 0);
  loom_tensor *state[2];
  if (initial_state(m, v, state) < 0)
    return -1;
  loom_tensor *z = m->cfg.attend_after ? cap_model_first_context(keys) : NULL;
  loom_tensor **hs = malloc((size_t)T * sizeof *hs);
  loom_tensor **as = malloc((size_t)T * sizeof *as);
  int rc = hs && as && (z || !m->cfg.attend_after) ? 0 : -1;
  loom_fixed_weights_begin();
  for (int64_t t = 0; rc == 0 && t < T; t++)
    rc = cap_model_attend_step(m, keys, loom_select(emb, 0, t), state, &z,
                               &hs[t], &as[t]);
  loom_fixed_weights_end();
  if (rc == 0) {
    *out = loom_stack(hs, (int)T, 0);
    if (alpha)
      *alpha = loom_stack(as, (int)T, 0);
    rc = *out && (!alpha || *alpha) ? 0 : -1;
  }
  free(hs);
  free(as);
  return rc;
}

int cap_model_hidden(cap_model *m, const loom_tensor *images,
                     const loom_tensor *image_of, const loom_tensor *inputs,
                     loom_tensor **hidden, loom_tensor **alpha) {
  loom_tensor *f, *v;
  if (cap_model_encode(m, images, &f, &v) < 0)
    return -1;
  if (image_of) { /* each image once through the CNN, then per caption */
    f = m->cfg.attention ? loom_index_select(f, 0, image_of) : f;
    v = loom_index_select(v, 0, image_of);
  }
  loom_tensor *emb = loom_embedding_layer_forward(m->embed, inputs);
  if (!emb)
    return -1;
  if (m->cfg.attention)
    return attend_steps(m, cap_model_keys(m, f), v, emb, hidden, alpha);
  if (alpha)
    *alpha = NULL;
  int64_t T = loom_size(inputs, 0), B = loom_size(inputs, 1);
  loom_tensor *x = emb, *init[2] = {NULL, NULL}, *out;
  switch (m->cfg.image_mode) {
  case CAP_IMAGE_FIRST: /* the image is step 0; its output is not used */
    x = loom_concat((loom_tensor *[]){loom_unsqueeze(v, 0), emb}, 2, 0);
    break;
  case CAP_IMAGE_INIT:
    if (initial_state(m, v, init) < 0)
      return -1;
    init[0] = loom_unsqueeze(init[0], 0);
    init[1] = loom_unsqueeze(init[1], 0);
    break;
  default: /* beside every word */
    x = loom_concat(
        (loom_tensor *[]){emb, loom_expand(loom_unsqueeze(v, 0), 3,
                                           (int64_t[]){T, B, m->cfg.embed})},
        2, 2);
  }
  /* Padding needs no lengths here: it only follows a caption's end, the
   * LSTM runs forwards, and the loss reads no padded position. */
  if (loom_rnn_forward(m->lstm, x, NULL, init[0] ? init : NULL, &out, NULL) < 0)
    return -1;
  *hidden =
      m->cfg.image_mode == CAP_IMAGE_FIRST ? loom_narrow(out, 0, 1, T) : out;
  return *hidden ? 0 : -1;
}

int cap_model_loss(cap_model *m, const cap_batch *b, loom_tensor **loss,
                   loom_tensor **alpha) {
  loom_tensor *h;
  if (cap_model_hidden(m, b->images, b->image_of, b->inputs, &h, alpha) < 0)
    return -1;
  /* only positions that hold a target reach the output layer: padding
   * costs no product */
  int64_t T = loom_size(b->inputs, 0), B = loom_size(b->inputs, 1);
  loom_tensor *rows =
      loom_index_select(loom_reshape(h, 2, (int64_t[]){T * B, -1}), 0, b->keep);
  loom_tensor *logits = loom_linear_layer_forward(
      m->out, loom_dropout_layer_forward(m->drop, rows));
  *loss = loom_cross_entropy(logits, b->targets, NULL);
  return *loss ? 0 : -1;
}
