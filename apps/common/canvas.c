/* The RGB canvas every picture draws on: rectangles, anti-aliased lines,
 * scaled images, and the PNG writer. */
#define _POSIX_C_SOURCE 200809L
#include "picture.h"

#include <loom/loom.h>
#include <math.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The byte size of a w x h RGB image, or 0 (with an error) when a side is
 * outside 1..APP_CANVAS_MAX_SIDE or the image is too large. */
static size_t image_bytes(int w, int h, const char *what) {
  if (w < 1 || h < 1 || w > APP_CANVAS_MAX_SIDE || h > APP_CANVAS_MAX_SIDE ||
      (int64_t)w * h > APP_CANVAS_MAX_PIXELS) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "%s: %d x %d pixels (each side must be 1..%d, at most "
                   "%lld pixels in all)",
                   what, w, h, APP_CANVAS_MAX_SIDE,
                   (long long)APP_CANVAS_MAX_PIXELS);
    return 0;
  }
  return (size_t)w * (size_t)h * 3;
}

int app_canvas_init(app_canvas *c, int w, int h, uint32_t background) {
  *c = (app_canvas){0};
  size_t bytes = image_bytes(w, h, "canvas");
  if (!bytes)
    return -1;
  c->rgb = malloc(bytes);
  if (!c->rgb) {
    loom_set_error(LOOM_ERR_MEMORY, "canvas: out of memory (%d x %d)", w, h);
    return -1;
  }
  c->w = w;
  c->h = h;
  app_canvas_clip(c, 0, 0, w, h);
  app_fill_rect(c, 0, 0, w, h, background, 1);
  return 0;
}

void app_canvas_free(app_canvas *c) {
  free(c->rgb);
  *c = (app_canvas){0};
}

static int clamp_int(int64_t v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : (int)v;
}

void app_canvas_clip(app_canvas *c, int x, int y, int w, int h) {
  c->clip_x0 = clamp_int(x, 0, c->w);
  c->clip_y0 = clamp_int(y, 0, c->h);
  c->clip_x1 = clamp_int((int64_t)x + (w > 0 ? w : 0), c->clip_x0, c->w);
  c->clip_y1 = clamp_int((int64_t)y + (h > 0 ? h : 0), c->clip_y0, c->h);
}

void app_blend_pixel(app_canvas *c, int x, int y, uint32_t rgb, double alpha) {
  if (x < c->clip_x0 || x >= c->clip_x1 || y < c->clip_y0 || y >= c->clip_y1 ||
      !(alpha > 0))
    return;
  unsigned char *p = c->rgb + 3 * ((size_t)y * (size_t)c->w + (size_t)x);
  if (alpha >= 1) {
    p[0] = (unsigned char)(rgb >> 16);
    p[1] = (unsigned char)(rgb >> 8);
    p[2] = (unsigned char)rgb;
    return;
  }
  for (int k = 0; k < 3; k++) {
    double ink = (double)((rgb >> (16 - 8 * k)) & 0xff);
    p[k] = (unsigned char)lrint(p[k] + (ink - p[k]) * alpha);
  }
}

void app_fill_rect(app_canvas *c, int x, int y, int w, int h, uint32_t rgb,
                   double alpha) {
  int x0 = clamp_int(x, c->clip_x0, c->clip_x1);
  int y0 = clamp_int(y, c->clip_y0, c->clip_y1);
  int x1 = clamp_int((int64_t)x + w, x0, c->clip_x1);
  int y1 = clamp_int((int64_t)y + h, y0, c->clip_y1);
  for (int j = y0; j < y1; j++)
    for (int i = x0; i < x1; i++)
      app_blend_pixel(c, i, j, rgb, alpha);
}

void app_stroke_rect(app_canvas *c, int x, int y, int w, int h, int width,
                     uint32_t rgb) {
  if (w <= 0 || h <= 0 || width <= 0)
    return;
  width = width < w && width < h ? width : (w < h ? w : h);
  app_fill_rect(c, x, y, w, width, rgb, 1);
  app_fill_rect(c, x, y + h - width, w, width, rgb, 1);
  app_fill_rect(c, x, y + width, width, h - 2 * width, rgb, 1);
  app_fill_rect(c, x + w - width, y + width, width, h - 2 * width, rgb, 1);
}

/* Coverage of the pixel centred at (px, py) by the capsule of radius r
 * around the segment (x0, y0)-(x1, y1): 1 inside, falling to 0 across one
 * pixel at the edge. */
static double capsule_coverage(double px, double py, double x0, double y0,
                               double x1, double y1, double r) {
  double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  double ex = px - (x0 + t * dx), ey = py - (y0 + t * dy);
  double cov = r + 0.5 - sqrt(ex * ex + ey * ey);
  return cov < 0 ? 0 : cov > 1 ? 1 : cov;
}

/* Calls paint(ctx, i, j, coverage) for each pixel of the clip rectangle the
 * segment's capsule covers. */
static void rasterize_segment(const app_canvas *c, double x0, double y0,
                              double x1, double y1, double width,
                              void (*paint)(void *, int, int, double),
                              void *ctx) {
  if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) ||
      !(width > 0))
    return;
  double r = width / 2, m = r + 1;
  /* the box, clamped in double first so huge coordinates cannot overflow */
  double bx0 = fmax(fmin(x0, x1) - m, c->clip_x0);
  double by0 = fmax(fmin(y0, y1) - m, c->clip_y0);
  double bx1 = fmin(fmax(x0, x1) + m, c->clip_x1);
  double by1 = fmin(fmax(y0, y1) + m, c->clip_y1);
  if (!(bx0 < bx1 && by0 < by1))
    return;
  for (int j = (int)floor(by0); j < (int)ceil(by1); j++)
    for (int i = (int)floor(bx0); i < (int)ceil(bx1); i++) {
      double cov = capsule_coverage(i + 0.5, j + 0.5, x0, y0, x1, y1, r);
      if (cov > 0)
        paint(ctx, i, j, cov);
    }
}

typedef struct {
  app_canvas *c;
  uint32_t rgb;
} blend_ctx;

static void paint_blend(void *ctx, int i, int j, double cov) {
  blend_ctx *b = ctx;
  app_blend_pixel(b->c, i, j, b->rgb, cov);
}

void app_draw_line(app_canvas *c, double x0, double y0, double x1, double y1,
                   double width, uint32_t rgb) {
  blend_ctx b = {c, rgb};
  rasterize_segment(c, x0, y0, x1, y1, width, paint_blend, &b);
}

/* A polyline's coverage over the clip rectangle, the maximum over its
 * segments, so each pixel is blended once. */
typedef struct {
  float *cov;
  int x0, y0, w;
} coverage_ctx;

static void paint_max(void *ctx, int i, int j, double cov) {
  coverage_ctx *m = ctx;
  float *p = m->cov + (size_t)(j - m->y0) * (size_t)m->w + (size_t)(i - m->x0);
  if (*p < cov)
    *p = (float)cov;
}

static bool point_ok(const double *x, const double *y, int i) {
  return isfinite(x[i]) && isfinite(y[i]);
}

int app_draw_polyline(app_canvas *c, const double *x, const double *y, int n,
                      double width, uint32_t rgb) {
  /* the coverage buffer spans the points' box within the clip rectangle */
  double bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
  for (int i = 0; i < n; i++)
    if (point_ok(x, y, i)) {
      bx0 = fmin(bx0, x[i]);
      by0 = fmin(by0, y[i]);
      bx1 = fmax(bx1, x[i]);
      by1 = fmax(by1, y[i]);
    }
  if (!(bx0 <= bx1) || !(width > 0) || !isfinite(width))
    return 0; /* nothing to draw */
  double reach = width + 2;
  int x0 = (int)fmin(fmax(floor(bx0 - reach), c->clip_x0), c->clip_x1);
  int y0 = (int)fmin(fmax(floor(by0 - reach), c->clip_y0), c->clip_y1);
  int x1 = (int)fmax(fmin(ceil(bx1 + reach), c->clip_x1), x0);
  int y1 = (int)fmax(fmin(ceil(by1 + reach), c->clip_y1), y0);
  if (x0 >= x1 || y0 >= y1)
    return 0;
  app_canvas box = *c; /* the same pixels, clipped to the box */
  app_canvas_clip(&box, x0, y0, x1 - x0, y1 - y0);
  int cw = box.clip_x1 - box.clip_x0, ch = box.clip_y1 - box.clip_y0;
  coverage_ctx m = {calloc((size_t)cw * (size_t)ch, sizeof(float)), box.clip_x0,
                    box.clip_y0, cw};
  if (!m.cov) {
    loom_set_error(LOOM_ERR_MEMORY, "polyline: out of memory");
    return -1;
  }
  c = &box; /* draws into the same pixels */
  for (int i = 0; i < n; i++) {
    if (!point_ok(x, y, i))
      continue;
    bool next = i + 1 < n && point_ok(x, y, i + 1);
    bool prev = i > 0 && point_ok(x, y, i - 1);
    if (next)
      rasterize_segment(c, x[i], y[i], x[i + 1], y[i + 1], width, paint_max,
                        &m);
    else if (!prev) /* an isolated point: a dot */
      rasterize_segment(c, x[i], y[i], x[i], y[i], width * 2.5, paint_max, &m);
  }
  for (int j = 0; j < ch; j++)
    for (int i = 0; i < cw; i++) {
      float v = m.cov[(size_t)j * (size_t)cw + (size_t)i];
      if (v > 0)
        app_blend_pixel(c, c->clip_x0 + i, c->clip_y0 + j, rgb, v);
    }
  free(m.cov);
  return 0;
}

int app_blit(app_canvas *c, const unsigned char *rgb, int w, int h, int x,
             int y, int dw, int dh, app_scale scale) {
  size_t src_bytes = image_bytes(w, h, "image");
  size_t dst_bytes = src_bytes ? image_bytes(dw, dh, "scaled image") : 0;
  if (!dst_bytes)
    return -1;
  unsigned char *scaled = NULL;
  if (scale == APP_SCALE_SMOOTH && (w != dw || h != dh)) {
    scaled = malloc(dst_bytes);
    if (!scaled) {
      loom_set_error(LOOM_ERR_MEMORY, "image: out of memory");
      return -1;
    }
    if (!stbir_resize_uint8_srgb(rgb, w, h, w * 3, scaled, dw, dh, dw * 3, 3,
                                 STBIR_ALPHA_CHANNEL_NONE, 0)) {
      free(scaled);
      loom_set_error(LOOM_ERR_MEMORY, "image: cannot scale %d x %d to %d x %d",
                     w, h, dw, dh);
      return -1;
    }
  }
  for (int j = 0; j < dh; j++) {
    int64_t cy = (int64_t)y + j;
    if (cy < c->clip_y0 || cy >= c->clip_y1)
      continue;
    for (int i = 0; i < dw; i++) {
      int64_t cx = (int64_t)x + i;
      if (cx < c->clip_x0 || cx >= c->clip_x1)
        continue;
      const unsigned char *s;
      if (scaled)
        s = scaled + 3 * ((size_t)j * (size_t)dw + (size_t)i);
      else {
        size_t sx = (size_t)((int64_t)i * w / dw);
        size_t sy = (size_t)((int64_t)j * h / dh);
        s = rgb + 3 * (sy * (size_t)w + sx);
      }
      memcpy(c->rgb + 3 * ((size_t)cy * (size_t)c->w + (size_t)cx), s, 3);
    }
  }
  free(scaled);
  return 0;
}

/* stb_image_write's callback: the encoded bytes go to the stream (a
 * failed write shows in its error flag, which the commit reports). */
static void png_to_stream(void *ctx, void *data, int size) {
  if (size > 0)
    fwrite(data, 1, (size_t)size, ctx);
}

int app_canvas_write_png(const app_canvas *c, const char *path) {
  /* through the library's writer: the file appears whole or not at all */
  loom_file_writer *w = c->rgb ? loom_file_writer_open(path) : NULL;
  if (w && stbi_write_png_to_func(png_to_stream, loom_file_writer_stream(w),
                                  c->w, c->h, 3, c->rgb, c->w * 3))
    return loom_file_writer_commit(w);
  if (w || !c->rgb)
    loom_set_error(LOOM_ERR_MEMORY, "%s: cannot encode the PNG (out of memory)",
                   path);
  loom_file_writer_abort(w);
  return -1;
}
