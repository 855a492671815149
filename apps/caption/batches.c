/* Training pairs and batches: every (image, caption) pair of a split, an
 * epoch's order drawn from the generator, and a batch as the model takes
 * it (normalised, augmented images; bos-led inputs, the positions that
 * hold a target, and the targets). */
#include "caption.h"

#include <stdlib.h>
#include <string.h>

void cap_pairs_free(cap_pairs *p) {
  free(p->image);
  free(p->caption);
  free(p->group);
  *p = (cap_pairs){0};
}

int cap_pairs_of(const cap_data *d, cap_split s, int64_t per_image,
                 cap_pairs *p) {
  *p = (cap_pairs){0};
  int64_t n = 0, groups = 0;
  for (int64_t i = 0; i < d->n; i++)
    if (d->split[i] == s) {
      int64_t k = d->first[i + 1] - d->first[i];
      n += k;
      groups += (k + per_image - 1) / per_image;
    }
  p->image = malloc((size_t)(n + 1) * sizeof *p->image);
  p->caption = malloc((size_t)(n + 1) * sizeof *p->caption);
  p->group = malloc((size_t)(groups + 1) * sizeof *p->group);
  if (!p->image || !p->caption || !p->group) {
    cap_pairs_free(p);
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for %lld pairs",
                   (long long)n);
    return -1;
  }
  for (int64_t i = 0; i < d->n; i++)
    for (int64_t j = d->first[i]; d->split[i] == s && j < d->first[i + 1];
         j++) {
      if ((j - d->first[i]) % per_image == 0)
        p->group[p->n_groups++] = p->n;
      p->image[p->n] = i;
      p->caption[p->n++] = j;
    }
  p->group[p->n_groups] = p->n;
  return 0;
}

void cap_shuffle(int64_t *order, int64_t n, loom_rng *g) {
  for (int64_t i = 0; i < n; i++)
    order[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t k = (int64_t)(loom_rng_u64(g) % (uint64_t)(i + 1));
    int64_t t = order[i];
    order[i] = order[k];
    order[k] = t;
  }
}

int cap_images_tensor(const cap_data *d, const int64_t *images, int64_t n,
                      const cap_norm *nm, const cap_augment_opts *aug,
                      loom_rng *g, loom_tensor **out) {
  int64_t s = d->side, size = 3 * s * s;
  *out = loom_empty(LOOM_F32, LOOM_SHAPE(n, 3, s, s));
  if (!*out)
    return -1;
  float *px = loom_data_f32(*out);
  for (int64_t i = 0; i < n; i++) {
    cap_augment a = {0};
    if (aug)
      cap_augment_draw(&a, aug->shift, aug->flip, g);
    cap_pixels_to_input(d->pixels + (size_t)(images[i] * size), (int)s, nm,
                        aug ? &a : NULL, px + i * size);
  }
  return 0;
}

int cap_batch_build(const cap_data *d, const cap_corpus *c, const cap_norm *nm,
                    const int64_t *images, int64_t n_images,
                    const int64_t *captions, const int64_t *image_of, int64_t B,
                    const cap_augment_opts *aug, loom_rng *g, cap_batch *b) {
  *b = (cap_batch){0};
  int64_t T = 0, N = 0; /* steps: bos + the longest caption; targets */
  for (int64_t k = 0; k < B; k++) {
    int64_t len = c->start[captions[k] + 1] - c->start[captions[k]];
    T = len + 1 > T ? len + 1 : T;
    N += len + 1;
  }
  if (cap_images_tensor(d, images, n_images, nm, aug, g, &b->images) < 0)
    return -1;
  if (image_of &&
      !(b->image_of = loom_from_array(LOOM_I64, image_of, LOOM_SHAPE(B))))
    return -1;
  b->inputs = loom_zeros(LOOM_I64, LOOM_SHAPE(T, B)); /* APP_PAD is 0 */
  b->keep = loom_empty(LOOM_I64, LOOM_SHAPE(N));
  b->targets = loom_empty(LOOM_I64, LOOM_SHAPE(N));
  if (!b->inputs || !b->keep || !b->targets)
    return -1;
  int64_t *in = loom_data_i64(b->inputs), *keep = loom_data_i64(b->keep),
          *y = loom_data_i64(b->targets), n = 0;
  for (int64_t t = 0; t < T; t++) /* positions in order: t * B + k */
    for (int64_t k = 0; k < B; k++) {
      const int64_t *ids = c->ids + c->start[captions[k]];
      int64_t len = c->start[captions[k] + 1] - c->start[captions[k]];
      if (t > len)
        continue;
      in[t * B + k] = t == 0 ? APP_BOS : ids[t - 1];
      keep[n] = t * B + k;
      y[n++] = t < len ? ids[t] : APP_EOS;
    }
  return 0;
}
