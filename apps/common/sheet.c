/* Pictures of images with words: a contact sheet (a grid of images, each
 * with wrapped lines of text under it) and an attention strip (one image
 * per word, lit where the model looked). */
#include "picture.h"

#include <limits.h>
#include <loom/loom.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INK 0x222222u
#define MARGIN 14
#define GAP 14
#define WRAP_LINES 4 /* wrapped lines per line of text */

enum { TEXT_SIZE = 12, WORD_SIZE = 13, TITLE_SIZE = 15 };

static bool image_ok(const unsigned char *rgb, int w, int h) {
  return rgb && w >= 1 && h >= 1 && w <= APP_CANVAS_MAX_SIDE &&
         h <= APP_CANVAS_MAX_SIDE && (int64_t)w * h <= APP_CANVAS_MAX_PIXELS;
}

/* The size of a w x h image fitted into a box x box square, aspect kept. */
static void fit_box(int w, int h, int box, int *dw, int *dh) {
  if (w >= h) {
    *dw = box;
    *dh = (int)fmax(1, lround((double)box * h / w));
  } else {
    *dh = box;
    *dw = (int)fmax(1, lround((double)box * w / h));
  }
}

/* Tiny images (a scale of 3 or more) keep square pixels; others are
 * filtered. */
static app_scale scale_for(int w, int dw) {
  return dw >= 3 * w ? APP_SCALE_NEAREST : APP_SCALE_SMOOTH;
}

/* The height of the item's text when wrapped to `width`; -1 on error. */
static int text_height(const app_sheet_item *it, int width, double line_h) {
  int lines = 0;
  for (int k = 0; k < it->n_lines; k++) {
    int n = app_text_wrap(NULL, it->lines[k] ? it->lines[k] : "", TEXT_SIZE,
                          width, NULL, WRAP_LINES, NULL);
    if (n < 0)
      return -1;
    lines += n;
  }
  return (int)ceil(lines * line_h);
}

static int check_sheet(const app_sheet_item *items, int n, int columns,
                       int cell) {
  if (!items || n < 1 || n > 10000 || columns < 1 || cell < 16 || cell > 2048) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "contact sheet: %d images, %d columns, cells of %d pixels "
                   "(1..10000 images, at least one column, 16..2048 pixels)",
                   n, columns, cell);
    return -1;
  }
  for (int i = 0; i < n; i++)
    if (!image_ok(items[i].rgb, items[i].w, items[i].h) ||
        items[i].n_lines < 0 || items[i].n_lines > 16 ||
        (items[i].n_lines && !items[i].lines)) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "contact sheet: image %d is %d x %d%s with %d lines of "
                     "text (sides 1..%d, 0..16 lines)",
                     i, items[i].w, items[i].h, items[i].rgb ? "" : " (none)",
                     items[i].n_lines, APP_CANVAS_MAX_SIDE);
      return -1;
    }
  return 0;
}

/* The title's height when wrapped to `width` (0 without one). */
static int title_height(const char *title, int width, int *rc) {
  app_text_metrics m;
  if (!title || !*title)
    return 0;
  int n = app_text_measure_lines(NULL, TITLE_SIZE, &m) < 0
              ? -1
              : app_text_wrap(NULL, title, TITLE_SIZE, width, NULL, 3, NULL);
  if (n < 0)
    *rc = -1;
  return n < 0 ? 0 : (int)ceil(n * m.line_height) + 10;
}

static int draw_title(app_canvas *c, const char *title, int width) {
  app_text_style st = {
      .size = TITLE_SIZE, .rgb = INK, .align = APP_ALIGN_CENTER};
  return title && *title &&
                 app_text_draw_wrapped(c, c->w / 2.0, MARGIN, title, &st, width,
                                       3) < 0
             ? -1
             : 0;
}

int app_contact_sheet_png(const char *path, const char *title,
                          const app_sheet_item *items, int n, int columns,
                          int cell) {
  if (check_sheet(items, n, columns, cell) < 0)
    return -1;
  columns = columns < n ? columns : n;
  int rows = (n + columns - 1) / columns;
  app_text_metrics m;
  if (app_text_measure_lines(NULL, TEXT_SIZE, &m) < 0)
    return -1;
  int *row_h = calloc((size_t)rows, sizeof *row_h);
  if (!row_h) {
    loom_set_error(LOOM_ERR_MEMORY, "contact sheet: out of memory");
    return -1;
  }
  int rc = 0, width = 2 * MARGIN + columns * cell + (columns - 1) * GAP;
  int head = title_height(title, width - 2 * MARGIN, &rc);
  int64_t height = 2 * MARGIN + head;
  for (int i = 0; rc == 0 && i < n; i++) {
    int th = text_height(&items[i], cell, m.line_height);
    if (th < 0)
      rc = -1;
    int h = cell + 6 + th;
    row_h[i / columns] = row_h[i / columns] > h ? row_h[i / columns] : h;
  }
  for (int r = 0; r < rows; r++)
    height += row_h[r] + (r ? GAP : 0);
  app_canvas c = {0};
  if (rc == 0)
    rc = app_canvas_init(&c, width, (int)(height > INT_MAX ? INT_MAX : height),
                         0xffffff);
  if (rc == 0)
    rc = draw_title(&c, title, width - 2 * MARGIN);
  int y = MARGIN + head;
  for (int i = 0; rc == 0 && i < n; i++) {
    const app_sheet_item *it = &items[i];
    int x = MARGIN + (i % columns) * (cell + GAP), dw, dh;
    app_fill_rect(&c, x, y, cell, cell, 0xf0f0f0, 1);
    fit_box(it->w, it->h, cell, &dw, &dh);
    rc = app_blit(&c, it->rgb, it->w, it->h, x + (cell - dw) / 2,
                  y + (cell - dh) / 2, dw, dh, scale_for(it->w, dw));
    double ty = y + cell + 6;
    for (int k = 0; rc == 0 && k < it->n_lines; k++) {
      app_text_style st = {.size = TEXT_SIZE,
                           .rgb = it->colors ? it->colors[k] : INK};
      int lines = app_text_draw_wrapped(
          &c, x, ty, it->lines[k] ? it->lines[k] : "", &st, cell, WRAP_LINES);
      rc = lines < 0 ? -1 : 0;
      ty += lines * m.line_height;
    }
    if (i % columns == columns - 1)
      y += row_h[i / columns] + GAP;
  }
  if (rc == 0)
    rc = app_canvas_write_png(&c, path);
  app_canvas_free(&c);
  free(row_h);
  return rc;
}

/* The attention map upsampled bilinearly (pixel centres aligned) to dw x
 * dh, divided by its largest value: 0..1, all 0 when it has no positive
 * finite weight. */
static void upsample_map(const float *map, int mh, int mw, int dw, int dh,
                         float *out) {
  double top = 0;
  for (size_t i = 0; i < (size_t)mh * (size_t)mw; i++)
    if (isfinite(map[i]) && map[i] > top)
      top = map[i];
  for (int y = 0; y < dh; y++) {
    double sy = fmin(fmax((y + 0.5) * mh / dh - 0.5, 0), mh - 1);
    int y0 = (int)sy, y1 = y0 + 1 < mh ? y0 + 1 : y0;
    double fy = sy - y0;
    for (int x = 0; x < dw; x++) {
      double sx = fmin(fmax((x + 0.5) * mw / dw - 0.5, 0), mw - 1);
      int x0 = (int)sx, x1 = x0 + 1 < mw ? x0 + 1 : x0;
      double fx = sx - x0, v = 0;
      const int ys[2] = {y0, y1}, xs[2] = {x0, x1};
      const double wy[2] = {1 - fy, fy}, wx[2] = {1 - fx, fx};
      for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
          double m = map[(size_t)ys[a] * (size_t)mw + (size_t)xs[b]];
          v += wy[a] * wx[b] * (isfinite(m) && m > 0 ? m : 0);
        }
      out[(size_t)y * (size_t)dw + (size_t)x] =
          top > 0 ? (float)fmin(v / top, 1) : 0;
    }
  }
}

/* One frame: the image dimmed where a is low, tinted with the heat ramp
 * where it is high. */
static void light_frame(const unsigned char *img, const float *a, size_t n,
                        unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    uint32_t heat = app_colormap(a[i]);
    double keep = 0.25 + 0.75 * a[i], tint = 0.35;
    for (int k = 0; k < 3; k++) {
      double ink = (double)((heat >> (16 - 8 * k)) & 0xff);
      double v = img[3 * i + k] * keep;
      out[3 * i + k] = (unsigned char)lrint(v + (ink - v) * tint * a[i]);
    }
  }
}

static int check_strip(const unsigned char *rgb, int w, int h,
                       const float *weights, int map_h, int map_w, int n_words,
                       int columns, int frame) {
  if (!image_ok(rgb, w, h) || !weights || map_h < 1 || map_w < 1 ||
      map_h > 1024 || map_w > 1024 || n_words < 1 || n_words > 1000 ||
      columns < 1 || frame < 16 || frame > 2048) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "attention strip: a %d x %d image%s, %d x %d maps%s, %d "
                   "words, %d columns, frames of %d pixels (maps 1..1024 on "
                   "a side, 1..1000 words, at least one column, frames "
                   "16..2048)",
                   w, h, rgb ? "" : " (none)", map_h, map_w,
                   weights ? "" : " (none)", n_words, columns, frame);
    return -1;
  }
  return 0;
}

int app_attention_strip_png(const char *path, const char *title,
                            const unsigned char *rgb, int w, int h,
                            const float *weights, int map_h, int map_w,
                            const char *const *words, int n_words, int columns,
                            int frame) {
  if (check_strip(rgb, w, h, weights, map_h, map_w, n_words, columns, frame) <
      0)
    return -1;
  columns = columns < n_words ? columns : n_words;
  int rows = (n_words + columns - 1) / columns, dw, dh;
  fit_box(w, h, frame, &dw, &dh);
  size_t px = (size_t)dw * (size_t)dh;
  unsigned char *lit = malloc(3 * px);
  float *a = malloc(px * sizeof *a);
  app_text_metrics m;
  app_canvas c = {0}, img = {0}; /* img: the image scaled once */
  int rc = lit && a ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "attention strip: out of memory");
  if (rc == 0)
    rc = app_canvas_init(&img, dw, dh, 0);
  if (rc == 0)
    rc = app_blit(&img, rgb, w, h, 0, 0, dw, dh, scale_for(w, dw));
  if (rc == 0)
    rc = app_text_measure_lines(NULL, WORD_SIZE, &m);
  int width = 2 * MARGIN + columns * frame + (columns - 1) * GAP;
  int head = rc == 0 ? title_height(title, width - 2 * MARGIN, &rc) : 0;
  int cell_h = frame + 4 + (rc == 0 ? (int)ceil(m.line_height) : 0);
  if (rc == 0)
    rc = app_canvas_init(&c, width,
                         2 * MARGIN + head + rows * cell_h + (rows - 1) * GAP,
                         0xffffff);
  if (rc == 0)
    rc = draw_title(&c, title, width - 2 * MARGIN);
  for (int i = 0; rc == 0 && i < n_words; i++) {
    int x = MARGIN + (i % columns) * (frame + GAP);
    int y = MARGIN + head + (i / columns) * (cell_h + GAP);
    upsample_map(weights + (size_t)i * (size_t)map_h * (size_t)map_w, map_h,
                 map_w, dw, dh, a);
    light_frame(img.rgb, a, px, lit);
    app_fill_rect(&c, x, y, frame, frame, 0xf0f0f0, 1);
    rc = app_blit(&c, lit, dw, dh, x + (frame - dw) / 2, y + (frame - dh) / 2,
                  dw, dh, APP_SCALE_NEAREST);
    app_text_style st = {
        .size = WORD_SIZE, .rgb = INK, .align = APP_ALIGN_CENTER};
    const char *word = words && words[i] ? words[i] : "";
    if (rc == 0 && app_text_draw_fit(&c, x + frame / 2.0, y + frame + 4, word,
                                     &st, frame) < 0)
      rc = -1;
  }
  if (rc == 0)
    rc = app_canvas_write_png(&c, path);
  app_canvas_free(&c);
  app_canvas_free(&img);
  free(lit);
  free(a);
  return rc;
}
