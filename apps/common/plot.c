/* Line plots rendered into an RGB buffer and written with stb_image_write,
 * with a 5x7 bitmap font for titles, ticks and legends. */
#include "common.h"

#include <math.h>
#include <stb_image_write.h>
#include <stdlib.h>
#include <string.h>

/* Rows of 5 pixels (bit 4 = leftmost), 7 rows per glyph. Lowercase letters
 * are drawn with the uppercase glyphs. */
static const struct {
  char c;
  uint8_t rows[7];
} glyphs[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'\'', {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}},
    {'!', {0x04, 0x04, 0x04, 0x04, 0x00, 0x00, 0x04}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
    {'"', {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {';', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}},
};

static const uint8_t *glyph(char c) {
  if (c >= 'a' && c <= 'z')
    c = (char)(c - 'a' + 'A');
  for (size_t i = 0; i < sizeof glyphs / sizeof *glyphs; i++)
    if (glyphs[i].c == c)
      return glyphs[i].rows;
  return NULL; /* space and unknown characters: blank */
}

static void put_pixel(unsigned char *rgb, int w, int h, int x, int y,
                      uint32_t c) {
  if (x < 0 || y < 0 || x >= w || y >= h)
    return;
  unsigned char *p = rgb + 3 * ((size_t)y * (size_t)w + (size_t)x);
  p[0] = (unsigned char)(c >> 16);
  p[1] = (unsigned char)(c >> 8);
  p[2] = (unsigned char)c;
}

void app_draw_text(unsigned char *rgb, int w, int h, int x, int y,
                   const char *text, uint32_t color, int s) {
  for (; *text; text++, x += 6 * s) {
    const uint8_t *g = glyph(*text);
    for (int r = 0; g && r < 7; r++)
      for (int col = 0; col < 5; col++)
        if (g[r] & (0x10 >> col))
          for (int dy = 0; dy < s; dy++)
            for (int dx = 0; dx < s; dx++)
              put_pixel(rgb, w, h, x + col * s + dx, y + r * s + dy, color);
  }
}

static void line(unsigned char *rgb, int w, int h, int x0, int y0, int x1,
                 int y1, uint32_t c, int thick) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0);
  int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
  for (;;) {
    for (int a = 0; a < thick; a++)
      for (int b = 0; b < thick; b++)
        put_pixel(rgb, w, h, x0 + a, y0 + b, c);
    if (x0 == x1 && y0 == y1)
      break;
    int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for a span. */
static double tick_step(double span, int n) {
  double raw = span / n, p = pow(10, floor(log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void format_tick(double v, double step, char *buf, size_t n) {
  if (fabs(v) >= 1e5 || (step < 1e-3 && v != 0))
    snprintf(buf, n, "%.0e", v);
  else if (step >= 1)
    snprintf(buf, n, "%.0f", v);
  else
    snprintf(buf, n, "%.*f", (int)ceil(-log10(step)), v);
}

int app_plot_png(const char *path, const char *title, const char *xlabel,
                 const char *ylabel, const app_series *series, int n_series,
                 int W, int H) {
  unsigned char *rgb = malloc((size_t)W * (size_t)H * 3);
  if (!rgb)
    return -1;
  memset(rgb, 255, (size_t)W * (size_t)H * 3);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int s = 0; s < n_series; s++)
    for (int i = 0; i < series[s].n; i++) {
      double x = series[s].x[i], y = series[s].y[i];
      if (!isfinite(x) || !isfinite(y))
        continue;
      x0 = fmin(x0, x);
      x1 = fmax(x1, x);
      y0 = fmin(y0, y);
      y1 = fmax(y1, y);
    }
  if (!(x0 <= x1)) { /* nothing to draw: an empty frame */
    x0 = 0;
    x1 = 1;
    y0 = 0;
    y1 = 1;
  }
  if (x1 == x0)
    x1 = x0 + 1;
  if (y1 == y0)
    y1 = y0 + 1;
  double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  int L = 70, R = W - 20, T = 40, B = H - 50; /* the plot area */
  uint32_t axis = 0x333333, grid = 0xE4E4E4;
  double xs = tick_step(x1 - x0, 6), ys = tick_step(y1 - y0, 6);
  char buf[64];
  for (double v = ceil(y0 / ys) * ys; v <= y1; v += ys) {
    int y = B - (int)((v - y0) / (y1 - y0) * (B - T));
    line(rgb, W, H, L, y, R, y, grid, 1);
    format_tick(v, ys, buf, sizeof buf);
    app_draw_text(rgb, W, H, L - 8 - 6 * (int)strlen(buf), y - 3, buf, axis, 1);
  }
  for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs) {
    int x = L + (int)((v - x0) / (x1 - x0) * (R - L));
    line(rgb, W, H, x, T, x, B, grid, 1);
    format_tick(v, xs, buf, sizeof buf);
    app_draw_text(rgb, W, H, x - 3 * (int)strlen(buf), B + 8, buf, axis, 1);
  }
  line(rgb, W, H, L, B, R, B, axis, 1);
  line(rgb, W, H, L, T, L, B, axis, 1);
  for (int s = 0; s < n_series; s++) {
    const app_series *sr = &series[s];
    int px = 0, py = 0;
    bool have = false;
    for (int i = 0; i < sr->n; i++) {
      if (!isfinite(sr->x[i]) || !isfinite(sr->y[i])) {
        have = false;
        continue;
      }
      int x = L + (int)((sr->x[i] - x0) / (x1 - x0) * (R - L));
      int y = B - (int)((sr->y[i] - y0) / (y1 - y0) * (B - T));
      if (have)
        line(rgb, W, H, px, py, x, y, sr->rgb, 2);
      else if (sr->n == 1)
        line(rgb, W, H, x, y, x, y, sr->rgb, 4);
      px = x;
      py = y;
      have = true;
    }
    /* legend, top right */
    int ly = T + 8 + 14 * s, lx = R - 8 - 6 * (int)strlen(sr->name) - 24;
    line(rgb, W, H, lx, ly + 3, lx + 16, ly + 3, sr->rgb, 2);
    app_draw_text(rgb, W, H, lx + 22, ly, sr->name, axis, 1);
  }
  if (title)
    app_draw_text(rgb, W, H, L, 14, title, axis, 2);
  if (xlabel)
    app_draw_text(rgb, W, H, (L + R) / 2 - 3 * (int)strlen(xlabel), H - 20,
                  xlabel, axis, 1);
  if (ylabel)
    app_draw_text(rgb, W, H, 6, T - 14, ylabel, axis, 1);
  int ok = stbi_write_png(path, W, H, 3, rgb, W * 3);
  free(rgb);
  return ok ? 0 : -1;
}
