/* Pictures a person looks at: a contact sheet of images with the caption
 * the model wrote (green when it is one of the references word for word)
 * and a reference under each, and, for a model with attention, a strip per
 * caption showing where it looked for each word. Drawn with apps/common's
 * picture layer (a real font). Scores go to a stream as text. */
#include "caption.h"

#include "../common/picture.h"

#include <stdlib.h>
#include <string.h>

void cap_print_scores(FILE *f, const char *what, const cap_scores *s,
                      bool exact) {
  fprintf(f,
          "%s: %lld images  BLEU-1 %.2f  BLEU-2 %.2f  BLEU-3 %.2f  BLEU-4 "
          "%.2f  mean length %.2f  %lld distinct captions",
          what, (long long)s->images, s->bleu[0], s->bleu[1], s->bleu[2],
          s->bleu[3], s->mean_len, (long long)s->distinct);
  if (exact && s->images) {
    fprintf(f, "  exact match %.2f%% (%lld/%lld)",
            100.0 * (double)s->exact / (double)s->images, (long long)s->exact,
            (long long)s->images);
    if (s->novel)
      fprintf(f, ", unseen combinations %.2f%% (%lld/%lld)",
              100.0 * (double)s->novel_exact / (double)s->novel,
              (long long)s->novel_exact, (long long)s->novel);
  }
  fputc('\n', f);
}

static bool is_reference(const app_tokens *h, const cap_corpus *c,
                         const cap_data *d, int64_t image) {
  for (int64_t r = d->first[image]; r < d->first[image + 1]; r++) {
    const app_tokens *ref = &c->words[r];
    bool same = ref->n == h->n;
    for (int64_t t = 0; same && t < h->n; t++)
      same = app_token_len(ref, t) == app_token_len(h, t) &&
             !memcmp(app_token(ref, t), app_token(h, t), app_token_len(h, t));
    if (same)
      return true;
  }
  return false;
}

int cap_contact_sheet(const char *path, const cap_data *d, const cap_corpus *c,
                      const int64_t *images, const app_tokens *hyps,
                      int64_t n) {
  size_t image = (size_t)3 * (size_t)d->side * (size_t)d->side;
  unsigned char *rgb = malloc(image * (size_t)(n > 0 ? n : 1));
  app_sheet_item *items = calloc((size_t)(n > 0 ? n : 1), sizeof *items);
  app_buf *text = calloc((size_t)(2 * n + 1), sizeof *text);
  const char **lines = calloc((size_t)(2 * n + 1), sizeof *lines);
  uint32_t *colors = calloc((size_t)(2 * n + 1), sizeof *colors);
  int rc = rgb && items && text && lines && colors ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for the contact sheet");
  for (int64_t k = 0; rc == 0 && k < n; k++) {
    int64_t i = images[k];
    cap_planes_to_image(d->pixels + (size_t)i * image, d->side,
                        rgb + (size_t)k * image);
    rc = cap_tokens_text(&hyps[k], &text[2 * k]);
    if (rc == 0)
      rc = app_buf_append(&text[2 * k + 1], "ref: ", 5);
    if (rc == 0)
      rc = app_buf_append(&text[2 * k + 1], d->captions[d->first[i]],
                          strlen(d->captions[d->first[i]]));
    if (rc < 0)
      break;
    lines[2 * k] = text[2 * k].data ? text[2 * k].data : "";
    lines[2 * k + 1] = text[2 * k + 1].data;
    bool exact = is_reference(&hyps[k], c, d, i);
    colors[2 * k] = exact ? 0x1b7d2b : 0x1f3f9f;
    colors[2 * k + 1] = 0x707070;
    items[k] =
        (app_sheet_item){rgb + (size_t)k * image, d->side,        d->side,
                         lines + 2 * k,           colors + 2 * k, 2};
  }
  if (rc == 0)
    rc = app_contact_sheet_png(
        path,
        "caption: the model's captions (blue; green when a reference "
        "word for word) and a reference (grey)",
        items, (int)n, n < 6 ? (int)(n > 0 ? n : 1) : 6,
        d->side < 128 ? 160 : d->side);
  for (int64_t k = 0; text && k < 2 * n; k++)
    app_buf_free(&text[k]);
  free(text);
  free(lines);
  free(colors);
  free(items);
  free(rgb);
  return rc;
}

int cap_attention_strip(const char *path, cap_model *m, const app_vocab *v,
                        const cap_norm *nm, const unsigned char *chw,
                        const int64_t *words, int64_t n) {
  int side = (int)m->cfg.side, s = (int)cap_model_feature_side(&m->cfg);
  int64_t L = (int64_t)s * s;
  float *maps = malloc((size_t)((n + 1) * L) * sizeof *maps);
  unsigned char *rgb = malloc((size_t)side * side * 3);
  const char **names = malloc((size_t)(n + 1) * sizeof *names);
  app_buf title = {0};
  int rc = maps && rgb && names ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for the attention strip");
  loom_scope *sc = loom_scope_begin();
  loom_tensor *x =
      rc == 0 ? loom_empty(LOOM_F32, LOOM_SHAPE(1, 3, side, side)) : NULL;
  if (rc == 0 && !x)
    rc = -1;
  if (rc == 0) {
    cap_pixels_to_input(chw, side, nm, NULL, loom_data_f32(x));
    rc = cap_attention_maps(m, x, words, n, maps);
  }
  for (int64_t k = 0; rc == 0 && k <= n; k++) {
    names[k] = k < n ? app_vocab_token(v, words[k]) : "<end>";
    if ((k && app_buf_append(&title, " ", 1) < 0) ||
        app_buf_append(&title, names[k], strlen(names[k])) < 0)
      rc = -1;
  }
  if (rc == 0) {
    cap_planes_to_image(chw, side, rgb);
    rc = app_attention_strip_png(path, title.data, rgb, side, side, maps, s, s,
                                 names, (int)(n + 1), 8, 128);
  }
  loom_scope_end(sc);
  app_buf_free(&title);
  free(names);
  free(rgb);
  free(maps);
  return rc;
}
