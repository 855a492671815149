/* Rasterizing glyph outlines: the area of each pixel an outline covers,
 * accumulated row by row as signed area changes and summed left to right
 * (the winding number integrated over the pixel, its magnitude clamped to
 * 1, as stb_truetype's own rasterizer computes it: where contours do not
 * overlap inside a pixel, the exact area under the nonzero rule). Written
 * here rather than taken from stb_truetype, whose rasterizer asserts on
 * geometry a font can hold and walks every bitmap column for each edge
 * that passes outside the bitmap: a glyph a million pixels wide cut by a
 * canvas cost minutes. Here a line costs the rows and columns it crosses
 * inside the bitmap, and a line wholly left or right of it two steps; and
 * a glyph whose cost, bounded before it is drawn, is past
 * APP_RASTER_BUDGET is not drawn. */
#include "font.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Curves are cut into lines no farther than this from them, in pixels. */
#define FLATNESS 0.02
/* Lines a curve is cut into at most: a control point a million pixels out
 * (a hostile font) must not cost millions of lines. Real fonts at 512
 * pixels bend up to ~700 pixels, 187 lines for FLATNESS. */
#define MAX_PIECES 256

/* app_raster_cost's units: a pixel summed is about 1 (a nanosecond), a
 * cell a line crosses in a row 1, a line ~4 and a row it crosses ~16, the
 * most, as each row lies a bitmap's width away from the last in memory
 * (measured: a 4,096-line zigzag down 32,768 rows took 28 ns a row 16
 * pixels wide and 80 ns a row 1,024 wide, where summing took 2). */
#define LINE_COST 4
#define ROW_COST 16

/* Area changes held at once: the bitmap is accumulated in bands of rows
 * this many cells (1 MiB) or fewer, each band walking the whole outline,
 * so that a glyph filling a 32 M-pixel canvas does not take 128 MiB, and
 * the sums stay in cache. Real glyphs at 512 pixels take up to 12 bands. */
#define BAND_CELLS (1 << 18)

typedef struct {
  float *acc;  /* the band's rows of w + 2 signed area changes */
  float *left; /* the band's rows + 1 changes, down its rows, of what lines
                  wholly left of the bitmap add to each row's first cell */
  int w, h;
  int top, rows; /* the band: bitmap rows top .. top + rows - 1 */
} raster;

/* Adds a line piece within the band's row y, spanning x = a to b, of signed
 * height d, with 0 <= a <= b <= w and a < w: the area right of the piece in
 * each cell it crosses and a full d from the next cell on. */
static void cells(raster *r, int y, double a, double b, double d) {
  float *row = r->acc + (size_t)y * (size_t)(r->w + 2);
  double fa = floor(a), cb = ceil(b);
  int ia = (int)fa, ib = (int)cb;
  if (ib <= ia + 1) { /* within one cell: its share is right of the middle */
    double mid = 0.5 * (a + b) - fa;
    row[ia] += (float)(d * (1 - mid));
    row[ia + 1] += (float)(d * mid);
    return;
  }
  /* across cells: a triangle in the first, trapezoids in between, and
   * what is left of d in the last */
  double s = 1 / (b - a), ta = a - fa, tb = b - cb + 1;
  double first = 0.5 * s * (1 - ta) * (1 - ta), last = 0.5 * s * tb * tb;
  row[ia] += (float)(d * first);
  double done = first;
  for (int x = ia + 1; x < ib - 1; x++) {
    /* through cell x, s (x + 1/2 - a) of d is right of the piece */
    double share = x == ia + 1 ? s * (1.5 - ta) - first : s;
    row[x] += (float)(d * share);
    done += share;
  }
  row[ib - 1] += (float)(d * (1 - done - last));
  row[ib] += (float)(d * last);
}

/* Adds the piece of a line within the band's row y from x = a to b, of signed
 * height d, cut to the bitmap's columns: what lies left of it changes every
 * column, what lies right of it none. */
static void row_piece(raster *r, int y, double a, double b, double d) {
  double lo = a < b ? a : b, hi = a < b ? b : a, w = r->w;
  if (hi <= 0) {
    r->acc[(size_t)y * (size_t)(r->w + 2)] += (float)d;
    return;
  }
  if (lo >= w)
    return;
  if (lo < 0) { /* the height left of column 0 changes them all */
    double left = d * (0 - lo) / (hi - lo);
    r->acc[(size_t)y * (size_t)(r->w + 2)] += (float)left;
    d -= left;
    lo = 0;
  }
  if (hi > w) {
    d -= d * (hi - w) / (hi - lo);
    hi = w;
  }
  cells(r, y, lo, hi, d);
}

/* Adds what lies in the band of the line from (x0, y0) to (x1, y1), in
 * bitmap pixels: computed as for the whole bitmap, every row's share the
 * same whatever the bands. */
static void line(raster *r, double x0, double y0, double x1, double y1) {
  if (y0 == y1)
    return;
  double dir = 1;
  if (y0 > y1) {
    double t = x0;
    x0 = x1;
    x1 = t;
    t = y0;
    y0 = y1;
    y1 = t;
    dir = -1;
  }
  double top = y0 > 0 ? y0 : 0, bottom = y1 < r->h ? y1 : r->h;
  if (!(top < bottom) || fmin(x0, x1) >= r->w)
    return; /* above, below or right of the bitmap: nothing in it changes */
  int first = (int)floor(top), last = (int)ceil(bottom) - 1;
  int lo = first > r->top ? first : r->top; /* its rows in the band */
  int hi = last < r->top + r->rows - 1 ? last : r->top + r->rows - 1;
  if (lo > hi)
    return;
  size_t stride = (size_t)(r->w + 2);
  if (fmax(x0, x1) <= 0) { /* left of it: d in every row's first cell */
    if (first == lo) {
      double d0 = dir * (fmin(first + 1, bottom) - top);
      r->acc[(size_t)(first - r->top) * stride] += (float)d0;
    }
    if (last > first && last == hi) {
      double d1 = dir * (bottom - last);
      r->acc[(size_t)(last - r->top) * stride] += (float)d1;
    }
    /* whole rows between */
    int a = first + 1 > lo ? first + 1 : lo, b = last - 1 < hi ? last - 1 : hi;
    if (a <= b) {
      r->left[a - r->top] += (float)dir;
      r->left[b + 1 - r->top] -= (float)dir;
    }
    return;
  }
  double dxdy = (x1 - x0) / (y1 - y0);
  for (int y = lo; y <= hi; y++) {
    double ya = y > top ? y : top, yb = y + 1 < bottom ? y + 1 : bottom;
    row_piece(r, y - r->top, x0 + (ya - y0) * dxdy, x0 + (yb - y0) * dxdy,
              dir * (yb - ya));
  }
}

/* Pieces for a curve whose control polygon bends by `bend` pixels (the
 * largest second difference of its points). */
static int pieces(double bend, double k) {
  double n = ceil(sqrt(k * bend / FLATNESS));
  return n < 1 ? 1 : n > MAX_PIECES ? MAX_PIECES : (int)n;
}

/* The length of [lo, hi] inside [0, size]. */
static double inside(double a, double b, double size) {
  double lo = fmax(fmin(a, b), 0), hi = fmin(fmax(a, b), size);
  return hi > lo ? hi - lo : 0;
}

/* At most the work line() does, in ROW_COST units of a row, for a line,
 * or for `pieces` lines cut from a curve whose control polygon runs
 * through the points xs, ys (m of them): each line a call, then per row of
 * the bitmap it crosses a row piece (up to two cells) and a cell per
 * column it crosses. A line's rows are at most the height it spans inside
 * the bitmap plus 2, its columns the width inside plus 2 a row. A curve
 * crosses any horizontal or vertical line at most as often as its control
 * polygon (Bezier curves diminish variation), so the heights and widths
 * of its pieces inside the bitmap add up to at most the polygon's; and it
 * lies inside the polygon's hull, so wholly left or right of the bitmap
 * when the polygon does, where a line costs a call and two cells. */
static double path_cost(const double *xs, const double *ys, int m, int pieces,
                        int w, int h) {
  double lo = xs[0], hi = xs[0];
  for (int i = 1; i < m; i++) {
    lo = fmin(lo, xs[i]);
    hi = fmax(hi, xs[i]);
  }
  if (hi <= 0 || lo >= w) /* the lines lie in the polygon's hull */
    return (LINE_COST + 2) * pieces;
  double rows = 0, cols = 0;
  for (int i = 0; i + 1 < m; i++) {
    rows += inside(ys[i], ys[i + 1], h);
    cols += inside(xs[i], xs[i + 1], w);
  }
  return LINE_COST * pieces + (ROW_COST + 2) * (rows + 2.0 * pieces) + cols;
}

/* Rows in a band of a bitmap w pixels wide. */
static int band_rows(int w) {
  int rows = BAND_CELLS / (w + 2);
  return rows > 1 ? rows : 1;
}

/* Called for each piece of an outline in bitmap pixels: its m control
 * points (2: a line, 3: a quadratic, 4: a cubic curve) and the k lines
 * the curve is cut into (1 for a line). */
typedef void (*segment_fn)(void *ctx, const double *xs, const double *ys, int m,
                           int k);

/* Walks the outline v (font units) as app_raster_glyph draws it: each
 * contour closed by a line back to its start, the last one too. */
static void outline(const stbtt_vertex *v, int n, float scale, double shift_x,
                    long off_x, long off_y, segment_fn f, void *ctx) {
  /* font units to bitmap pixels, rows down */
#define PX(u) ((u) * (double)scale + shift_x - (double)off_x)
#define PY(u) (-(u) * (double)scale - (double)off_y)
  double sx = 0, sy = 0, x = 0, y = 0; /* the contour's start, the pen */
  for (int i = 0; i < n; i++) {
    double nx = PX(v[i].x), ny = PY(v[i].y);
    if (v[i].type == STBTT_vmove) {
      f(ctx, (double[]){x, sx}, (double[]){y, sy}, 2, 1);
      sx = x = nx;
      sy = y = ny;
      continue;
    }
    if (v[i].type == STBTT_vcurve) {
      double cx = PX(v[i].cx), cy = PY(v[i].cy);
      int k = pieces(hypot(x - 2 * cx + nx, y - 2 * cy + ny), 0.25);
      f(ctx, (double[]){x, cx, nx}, (double[]){y, cy, ny}, 3, k);
    } else if (v[i].type == STBTT_vcubic) {
      double ax = PX(v[i].cx), ay = PY(v[i].cy);
      double bx = PX(v[i].cx1), by = PY(v[i].cy1);
      double bend = fmax(hypot(x - 2 * ax + bx, y - 2 * ay + by),
                         hypot(ax - 2 * bx + nx, ay - 2 * by + ny));
      f(ctx, (double[]){x, ax, bx, nx}, (double[]){y, ay, by, ny}, 4,
        pieces(bend, 0.75));
    } else {
      f(ctx, (double[]){x, nx}, (double[]){y, ny}, 2, 1);
    }
    x = nx;
    y = ny;
  }
  f(ctx, (double[]){x, sx}, (double[]){y, sy}, 2, 1);
#undef PX
#undef PY
}

typedef struct {
  double cost, lines;
  int w, h;
} cost_sum;

static void add_cost(void *ctx, const double *xs, const double *ys, int m,
                     int k) {
  cost_sum *c = ctx;
  c->cost += path_cost(xs, ys, m, k, c->w, c->h);
  c->lines += k;
}

double app_raster_cost(const stbtt_vertex *v, int n, float scale,
                       double shift_x, long off_x, long off_y, int w, int h) {
  /* every pixel's cell is cleared, summed and stored; each band after the
   * first walks the outline again, a call for each of its lines */
  cost_sum c = {2.0 * w * h, 0, w, h};
  outline(v, n, scale, shift_x, off_x, off_y, add_cost, &c);
  int bands = (h - 1) / band_rows(w) + 1;
  return c.cost + (bands - 1) * LINE_COST * c.lines;
}

/* q kept within the m control points' range: a point of a curve lies in
 * their hull, but evaluated in floating point it can round an ulp past it
 * (past the bitmap's edge, say), where app_raster_cost did not count its
 * rows. */
static double in_hull(double q, const double *c, int m) {
  double lo = c[0], hi = c[0];
  for (int i = 1; i < m; i++) {
    lo = fmin(lo, c[i]);
    hi = fmax(hi, c[i]);
  }
  return fmin(fmax(q, lo), hi);
}

/* The point at t of the curve through the m control points c. */
static double bezier(const double *c, int m, double t) {
  double u = 1 - t;
  double q = m == 3 ? u * u * c[0] + 2 * u * t * c[1] + t * t * c[2]
                    : u * u * u * c[0] + 3 * u * u * t * c[1] +
                          3 * u * t * t * c[2] + t * t * t * c[3];
  return in_hull(q, c, m);
}

/* Adds a piece of the outline, cut into its k lines, to the band. */
static void add_lines(void *ctx, const double *xs, const double *ys, int m,
                      int k) {
  raster *r = ctx;
  double px = xs[0], py = ys[0];
  for (int j = 1; j < k; j++) {
    double t = (double)j / k, qx = bezier(xs, m, t), qy = bezier(ys, m, t);
    line(r, px, py, qx, qy);
    px = qx;
    py = qy;
  }
  line(r, px, py, xs[m - 1], ys[m - 1]);
}

int app_raster_glyph(const stbtt_vertex *v, int n, float scale, double shift_x,
                     long off_x, long off_y, int w, int h, unsigned char *out) {
  if (app_raster_cost(v, n, scale, shift_x, off_x, off_y, w, h) >
      APP_RASTER_BUDGET)
    return 1;
  int rows = band_rows(w) < h ? band_rows(w) : h;
  raster r = {malloc((size_t)(w + 2) * (size_t)rows * sizeof(float)),
              malloc(((size_t)rows + 1) * sizeof(float)),
              w,
              h,
              0,
              rows};
  if (!r.acc || !r.left) {
    free(r.acc);
    free(r.left);
    return -1;
  }
  for (r.top = 0; r.top < h; r.top += r.rows) {
    r.rows = h - r.top < rows ? h - r.top : rows;
    memset(r.acc, 0, (size_t)(w + 2) * (size_t)r.rows * sizeof(float));
    memset(r.left, 0, ((size_t)r.rows + 1) * sizeof(float));
    outline(v, n, scale, shift_x, off_x, off_y, add_lines, &r);
    /* whole-row sums left of the bitmap start again each band: the lines
     * crossing its top add theirs in it too */
    double left = 0;
    for (int j = 0; j < r.rows; j++) {
      const float *row = r.acc + (size_t)j * (size_t)(w + 2);
      left += r.left[j];
      double sum = left;
      unsigned char *o = out + (size_t)(r.top + j) * (size_t)w;
      for (int i = 0; i < w; i++) {
        sum += row[i];
        double a = fabs(sum);
        o[i] = (unsigned char)(a >= 1 ? 255 : (int)(a * 255 + 0.5));
      }
    }
  }
  free(r.acc);
  free(r.left);
  return 0;
}
