/* Circles, squares, triangles and crosses measured per pixel (shape.h). */
#include "shape.h"

#include <math.h>

#define PI 3.14159265358979323846

const char *app_shape_name(app_shape_kind kind) {
  static const char *const names[APP_SHAPE_KINDS] = {"circle", "square",
                                                     "triangle", "cross"};
  return kind >= 0 && kind < APP_SHAPE_KINDS ? names[kind] : "?";
}

/* Distance from point p to segment ab. */
static double segment_distance(double px, double py, double ax, double ay,
                               double bx, double by) {
  double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
  double t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  double cx = ax + t * dx - px, cy = ay + t * dy - py;
  return sqrt(cx * cx + cy * cy);
}

static void triangle_corners(const app_shape *s, double *px, double *py) {
  for (int k = 0; k < 3; k++) {
    double a = s->angle + 2 * PI * k / 3 - PI / 2;
    px[k] = s->cx + s->r * cos(a);
    py[k] = s->cy + s->r * sin(a);
  }
}

static double triangle_edge_distance(const app_shape *s, double x, double y) {
  double px[3], py[3];
  triangle_corners(s, px, py);
  return fmin(segment_distance(x, y, px[0], py[0], px[1], py[1]),
              fmin(segment_distance(x, y, px[1], py[1], px[2], py[2]),
                   segment_distance(x, y, px[2], py[2], px[0], py[0])));
}

/* Distance to the nearer of the cross's two diagonal strokes. */
static double cross_stroke_distance(const app_shape *s, double x, double y) {
  double cx = s->cx, cy = s->cy, r = s->r;
  return fmin(segment_distance(x, y, cx - r, cy - r, cx + r, cy + r),
              segment_distance(x, y, cx - r, cy + r, cx + r, cy - r));
}

double app_shape_outline_distance(const app_shape *s, double x, double y) {
  switch (s->kind) {
  case APP_SHAPE_CIRCLE:
    return fabs(hypot(x - s->cx, y - s->cy) - s->r);
  case APP_SHAPE_SQUARE: {
    double ux = fabs(x - s->cx), uy = fabs(y - s->cy), h = s->r * 0.8;
    return ux > uy ? fabs(ux - h) + (uy > h ? uy - h : 0)
                   : fabs(uy - h) + (ux > h ? ux - h : 0);
  }
  case APP_SHAPE_TRIANGLE:
    return triangle_edge_distance(s, x, y);
  default:
    return cross_stroke_distance(s, x, y);
  }
}

double app_shape_outline_coverage(const app_shape *s, double x, double y,
                                  double pen) {
  double d = app_shape_outline_distance(s, x, y);
  return d < pen ? 1 : d < pen + 1 ? pen + 1 - d : 0;
}

/* Signed distance to the filled shape's edge: negative inside. */
static double signed_distance(const app_shape *s, double x, double y) {
  switch (s->kind) {
  case APP_SHAPE_CIRCLE:
    return hypot(x - s->cx, y - s->cy) - s->r;
  case APP_SHAPE_SQUARE: {
    double h = s->r * 0.8;
    double qx = fabs(x - s->cx) - h, qy = fabs(y - s->cy) - h;
    return hypot(fmax(qx, 0), fmax(qy, 0)) + fmin(fmax(qx, qy), 0);
  }
  case APP_SHAPE_TRIANGLE: {
    double px[3], py[3];
    triangle_corners(s, px, py);
    /* inside when on the same side of all three edges */
    int sides = 0;
    for (int k = 0; k < 3; k++) {
      int j = (k + 1) % 3;
      double cr = (px[j] - px[k]) * (y - py[k]) - (py[j] - py[k]) * (x - px[k]);
      sides += cr > 0 ? 1 : cr < 0 ? -1 : 0;
    }
    double d = triangle_edge_distance(s, x, y);
    return sides == 3 || sides == -3 ? -d : d;
  }
  default:
    return cross_stroke_distance(s, x, y) - 0.225 * s->r;
  }
}

double app_shape_fill_coverage(const app_shape *s, double x, double y) {
  double c = 0.5 - signed_distance(s, x, y);
  return c < 0 ? 0 : c > 1 ? 1 : c;
}
