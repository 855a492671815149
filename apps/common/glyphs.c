/* Checking a font's glyph outlines before stb_truetype draws them.
 *
 * stb_truetype reads a glyph's outline (stbtt_GetGlyphShape, which the
 * bitmap functions call, and stbtt_GetGlyphBox) trusting every count and
 * length in it: the point count an outline declares, its instructions'
 * length and its flag and coordinate arrays are read wherever they lead,
 * past the glyph and past the file; a composite glyph's components are
 * drawn by recursing into them with no depth limit (a glyph containing
 * itself overflows the stack), and a component placed by matching points
 * rather than by an offset trips an assert. So every glyph of the font is
 * checked once, at load, against exactly what stb_truetype will read; the
 * font is refused when one is wrong, whether or not the text drawn would
 * use it. */
#include "font.h"

#include <stdlib.h>

/* Composite glyphs nest a few levels in real fonts (DejaVu: up to 4);
 * stb_truetype recurses once per level. */
#define GLYPH_MAX_DEPTH 16
/* The points a glyph is drawn from, its components' included. A simple
 * glyph holds at most 65536 (its point numbers are 16-bit); a composite's
 * can multiply through nesting, and stb_truetype keeps them all in memory
 * and copies them once per component, so they are held to the same. */
#define GLYPH_MAX_POINTS 65536u

/* A simple glyph's point flags (the TrueType glyf table). */
enum {
  ON_CURVE = 1,
  X_SHORT = 2, /* x is one byte, its sign in X_SAME */
  Y_SHORT = 4,
  REPEAT = 8,  /* the next byte repeats this flag for that many more points */
  X_SAME = 16, /* long x: no bytes, the same x as the point before */
  Y_SAME = 32,
};

/* A composite glyph's component flags. */
enum {
  ARGS_ARE_WORDS = 1,
  ARGS_ARE_XY = 2, /* else the args are point numbers to match: stb asserts */
  HAVE_SCALE = 8,
  MORE_COMPONENTS = 32,
  HAVE_XY_SCALE = 64,
  HAVE_2X2 = 128,
};

const char app_font_out_of_memory[] = "out of memory";

typedef enum { UNSEEN, OPEN, DONE } visit;

/* What is known of one glyph while the font is checked. */
typedef struct {
  unsigned char visit; /* OPEN: being checked, so meeting it again is a cycle */
  unsigned char depth; /* composite levels below it; 0 for a simple glyph */
  uint32_t points;     /* points drawn, its components' included */
} glyph_note;

typedef struct {
  const unsigned char *glyf, *loca;
  size_t glyf_len;
  bool long_loca;
  uint32_t n_glyphs;
  glyph_note *notes;
} glyph_checker;

/* Glyph g's bytes in glyf, from its loca entry and the next; false when
 * they are not a range inside glyf (check_font has seen to that already,
 * but this file trusts nothing it did not check). */
static bool glyph_bytes(const glyph_checker *c, uint32_t g,
                        const unsigned char **p, size_t *len) {
  size_t start, end;
  if (c->long_loca) {
    start = app_be32(c->loca + 4 * (size_t)g);
    end = app_be32(c->loca + 4 * (size_t)g + 4);
  } else {
    start = 2 * (size_t)app_be16(c->loca + 2 * (size_t)g);
    end = 2 * (size_t)app_be16(c->loca + 2 * (size_t)g + 2);
  }
  if (start > end || end > c->glyf_len)
    return false;
  *p = c->glyf + start;
  *len = end - start;
  return true;
}

/* The contours' last point numbers must rise: stb_truetype takes the last
 * one as the point count, and starts a contour only where the previous one
 * ended. The point count in *n_points. */
static const char *check_contour_ends(const unsigned char *ends, int n_contours,
                                      uint32_t *n_points) {
  uint32_t prev = 0;
  for (int k = 0; k < n_contours; k++) {
    uint32_t end = app_be16(ends + 2 * k);
    if (k > 0 && end <= prev)
      return "a glyph's contours end out of order";
    prev = end;
  }
  *n_points = prev + 1;
  return NULL;
}

/* The flags, one per point with runs, then the x and then the y
 * coordinates, whose byte sizes the flags give: all must fit in the
 * `len` bytes at p. stb_truetype also starts a contour that begins off the
 * curve at the point after it, which for a contour of one such point is
 * another contour's point, or past the last one. */
static const char *check_points(const unsigned char *p, size_t len,
                                const unsigned char *ends, int n_contours,
                                uint32_t n_points) {
  size_t at = 0, x_bytes = 0, y_bytes = 0;
  int contour = 0; /* the next contour whose first point is to come */
  uint32_t contour_start = 0;
  for (uint32_t i = 0; i < n_points;) {
    if (at >= len)
      return "a glyph's point flags run past its end";
    unsigned flags = p[at++];
    uint32_t run = 1;
    if (flags & REPEAT) {
      if (at >= len)
        return "a glyph's point flags run past its end";
      run += p[at++];
    }
    if (run > n_points - i) /* stb_truetype stops at the last point */
      run = n_points - i;
    x_bytes += run * (flags & X_SHORT ? 1 : flags & X_SAME ? 0 : 2);
    y_bytes += run * (flags & Y_SHORT ? 1 : flags & Y_SAME ? 0 : 2);
    for (; contour < n_contours && contour_start < i + run; contour++) {
      uint32_t end = app_be16(ends + 2 * contour);
      if (end == contour_start && !(flags & ON_CURVE))
        return "a glyph has a contour of one point off the curve";
      contour_start = end + 1;
    }
    i += run;
  }
  if (x_bytes + y_bytes > len - at)
    return "a glyph's coordinates run past its end";
  return NULL;
}

/* A simple glyph: its header (10 bytes, checked by the caller), the
 * contours' ends, the instructions (skipped, but their length is trusted),
 * then the points. */
static const char *check_simple_glyph(const unsigned char *p, size_t len,
                                      int n_contours, uint32_t *n_points) {
  size_t ends_end = 10 + 2 * (size_t)n_contours;
  if (ends_end + 2 > len)
    return "a glyph's contour list runs past its end";
  const char *bad = check_contour_ends(p + 10, n_contours, n_points);
  if (bad)
    return bad;
  size_t points_at = ends_end + 2 + app_be16(p + ends_end);
  if (points_at > len)
    return "a glyph's instructions run past its end";
  return check_points(p + points_at, len - points_at, p + 10, n_contours,
                      *n_points);
}

static const char *check_glyph(glyph_checker *c, uint32_t g, int depth);

/* The bytes of a component's arguments and transform after its flags and
 * glyph index, in the precedence stb_truetype reads them (one scale form,
 * the first set of scale, x and y scale, 2 x 2). */
static size_t component_size(unsigned flags) {
  size_t args = flags & ARGS_ARE_WORDS ? 4 : 2;
  size_t scale = flags & HAVE_SCALE      ? 2
                 : flags & HAVE_XY_SCALE ? 4
                 : flags & HAVE_2X2      ? 8
                                         : 0;
  return args + scale;
}

/* A composite glyph: component records from byte 10 until one without
 * MORE_COMPONENTS, each placing a glyph that must itself be usable. Its
 * nesting depth and point count in *note. */
static const char *check_composite_glyph(glyph_checker *c,
                                         const unsigned char *p, size_t len,
                                         int depth, glyph_note *note) {
  size_t at = 10;
  unsigned flags;
  uint32_t points = 0, below = 0;
  do {
    if (at + 4 > len)
      return "a composite glyph's components run past its end";
    flags = app_be16(p + at);
    uint32_t part = app_be16(p + at + 2);
    at += 4;
    if (!(flags & ARGS_ARE_XY))
      return "a composite glyph places a component by matching points";
    at += component_size(flags);
    if (at > len)
      return "a composite glyph's components run past its end";
    if (part >= c->n_glyphs)
      return "a composite glyph names a glyph the font does not have";
    const char *bad = check_glyph(c, part, depth + 1);
    if (bad)
      return bad;
    const glyph_note *n = &c->notes[part];
    below = n->depth > below ? n->depth : below;
    points += n->points;
    if (points > GLYPH_MAX_POINTS)
      return "a composite glyph has too many points";
  } while (flags & MORE_COMPONENTS);
  note->depth = (unsigned char)(below + 1);
  note->points = points;
  return NULL;
}

/* Glyph g, reached through `depth` composite glyphs; once per glyph. */
static const char *check_glyph(glyph_checker *c, uint32_t g, int depth) {
  glyph_note *note = &c->notes[g];
  if (note->visit == DONE)
    return note->depth + depth > GLYPH_MAX_DEPTH
               ? "composite glyphs nest too deeply"
               : NULL;
  if (note->visit == OPEN)
    return "a composite glyph contains itself";
  /* each level down is a level of the caller's recursion too */
  if (depth > GLYPH_MAX_DEPTH)
    return "composite glyphs nest too deeply";
  note->visit = OPEN;
  const unsigned char *p;
  size_t len;
  const char *bad = NULL;
  if (!glyph_bytes(c, g, &p, &len))
    bad = "a glyph lies outside the glyf table";
  else if (len == 0) /* no outline: stb_truetype reads nothing */
    *note = (glyph_note){DONE, 0, 0};
  else if (len < 10) /* the contour count and bounding box */
    bad = "a glyph is shorter than its header";
  else if ((int16_t)app_be16(p) >= 0) {
    uint32_t n_points = 0;
    int n_contours = (int16_t)app_be16(p);
    if (n_contours > 0)
      bad = check_simple_glyph(p, len, n_contours, &n_points);
    *note = (glyph_note){DONE, 0, n_points};
  } else {
    bad = check_composite_glyph(c, p, len, depth, note);
    note->visit = DONE;
  }
  return bad;
}

const char *app_font_check_glyphs(const unsigned char *glyf, size_t glyf_len,
                                  const unsigned char *loca, bool long_loca,
                                  uint32_t n_glyphs) {
  glyph_checker c = {.glyf = glyf,
                     .loca = loca,
                     .glyf_len = glyf_len,
                     .long_loca = long_loca,
                     .n_glyphs = n_glyphs,
                     .notes = calloc(n_glyphs, sizeof(glyph_note))};
  if (!c.notes)
    return app_font_out_of_memory;
  const char *bad = NULL;
  for (uint32_t g = 0; g < n_glyphs && !bad; g++)
    bad = check_glyph(&c, g, 0);
  free(c.notes);
  return bad;
}
