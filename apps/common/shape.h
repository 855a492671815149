/* Drawn shapes for the apps that learn from pictures they make themselves
 * (apps/shapes classifies them, apps/caption describes scenes of them):
 * circles, squares, triangles and crosses at any centre, size and
 * rotation, measured per pixel so a caller can draw them as outlines or
 * filled, in grey or in colour, with soft (anti-aliased) edges. */
#ifndef LOOM_APPS_SHAPE_H
#define LOOM_APPS_SHAPE_H

typedef enum {
  APP_SHAPE_CIRCLE,
  APP_SHAPE_SQUARE,
  APP_SHAPE_TRIANGLE,
  APP_SHAPE_CROSS,
  APP_SHAPE_KINDS
} app_shape_kind;

/* "circle", "square", "triangle", "cross" ("?" for anything else). */
const char *app_shape_name(app_shape_kind kind);

/* A shape centred at (cx, cy) in pixel units (pixel (i, j) covers
 * [i, i+1) x [j, j+1)) of radius r: the circle's radius, the square's
 * half-side is 0.8 r, the triangle's corners and the cross's arm ends lie
 * on the circle of radius r. The triangle is turned by `angle` radians
 * from pointing up; the other shapes ignore it. */
typedef struct {
  app_shape_kind kind;
  double cx, cy, r, angle;
} app_shape;

/* Distance from the point (x, y) to the shape's outline, >= 0 (for the
 * square an L1-like distance, cheap and good enough for a pen). */
double app_shape_outline_distance(const app_shape *s, double x, double y);

/* How much of a pen stroke of width `pen` along the outline covers the
 * point: 1 within pen of it, falling linearly to 0 one pixel further. */
double app_shape_outline_coverage(const app_shape *s, double x, double y,
                                  double pen);

/* How much of the filled shape covers the point, 0..1, with a one-pixel
 * soft edge. The cross is filled as two bars 0.45 r wide. */
double app_shape_fill_coverage(const app_shape *s, double x, double y);

#endif
