/* Typesetting: lines of UTF-8 (decoded by the text tools) laid out with
 * kerning, glyph coverage drawn into a canvas (upright or turned upwards),
 * measuring, shortening with an ellipsis and wrapping. */
#include "font.h"
#include "text.h"

#include <loom/loom.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */

/* Walks one line of text glyph by glyph. */
typedef struct {
  const app_font *f;
  float scale;
  const unsigned char *p, *end;
  int prev;   /* the previous glyph, for kerning; -1 at the start */
  double pen; /* where the next glyph starts, in pixels */
} layout;

static void layout_begin(layout *l, const app_font *f, float scale,
                         const char *text, size_t len) {
  *l = (layout){
      f,  scale, (const unsigned char *)text, (const unsigned char *)text + len,
      -1, 0};
}

/* The next character: its code point, byte length, glyph (-1: draws
 * nothing) and the pen position the glyph is drawn at; moves the pen past
 * it. False at the end. */
static bool layout_next(layout *l, uint32_t *cp, size_t *bytes, int *glyph,
                        double *x) {
  if (l->p >= l->end)
    return false;
  /* an ill-formed sequence is U+FFFD, one byte long */
  int n = app_utf8_decode((const char *)l->p, (size_t)(l->end - l->p), cp);
  *bytes = n > 0 ? (size_t)n : 1;
  l->p += *bytes;
  uint32_t c = *cp == '\t' ? ' ' : *cp;
  if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
    *glyph = -1;
    *x = l->pen;
    return true;
  }
  int g = stbtt_FindGlyphIndex(&l->f->info, (int)c);
  if (g < 0 || g >= l->f->info.numGlyphs) /* a map past the glyphs */
    g = 0;
  if (l->prev >= 0)
    l->pen += stbtt_GetGlyphKernAdvance(&l->f->info, l->prev, g) * l->scale;
  int advance, bearing;
  stbtt_GetGlyphHMetrics(&l->f->info, g, &advance, &bearing);
  *glyph = g;
  *x = l->pen;
  l->pen += advance * l->scale;
  l->prev = g;
  return true;
}

/* The font to use and its scale for an em size; NULL with an error. */
static const app_font *font_at(const app_font *f, double size, float *scale) {
  if (!(size >= 1 && size <= 512)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "text: size %g pixels (must be 1..512)",
                   size);
    return NULL;
  }
  if (!f)
    f = app_font_default();
  if (f)
    *scale = stbtt_ScaleForMappingEmToPixels(&f->info, (float)size);
  return f;
}

static double range_width(const app_font *f, float scale, const char *text,
                          size_t len) {
  layout l;
  layout_begin(&l, f, scale, text, len);
  uint32_t cp;
  size_t n;
  int g;
  double x;
  while (layout_next(&l, &cp, &n, &g, &x))
    ;
  return l.pen;
}

/* How many bytes of text[0..len) fit in max_width pixels. */
static size_t range_fit(const app_font *f, float scale, const char *text,
                        size_t len, double max_width) {
  layout l;
  layout_begin(&l, f, scale, text, len);
  uint32_t cp;
  size_t n, fit = 0;
  int g;
  double x;
  while (layout_next(&l, &cp, &n, &g, &x) && l.pen <= max_width)
    fit = (size_t)(l.p - (const unsigned char *)text);
  return fit;
}

int app_text_measure_lines(const app_font *font, double size,
                           app_text_metrics *m) {
  float scale;
  const app_font *f = font_at(font, size, &scale);
  if (!f)
    return -1;
  m->ascent = f->ascent * scale;
  m->descent = -f->descent * scale;
  m->line_height = (f->ascent - f->descent + f->line_gap) * scale;
  m->cap_height = f->cap_height * scale;
  return 0;
}

double app_text_width(const app_font *font, const char *text, double size) {
  float scale;
  const app_font *f = font_at(font, size, &scale);
  return f ? range_width(f, scale, text, strcspn(text, "\n")) : -1;
}

/* Widens [*lo, *hi] to hold v. */
static void widen(float v, float *lo, float *hi) {
  *lo = v < *lo ? v : *lo;
  *hi = v > *hi ? v : *hi;
}

int app_font_draw_glyph(app_canvas *c, const app_font *f, float scale, int g,
                        double x, long base, long start,
                        const app_text_style *s) {
  if (!(fabs(x) < 0x1p30))
    return 0; /* nowhere on any canvas */
  long ix = (long)floor(x);
  float fx = (float)(x - (double)ix);
  stbtt_vertex *v;
  /* no points: an empty glyph, or stb_truetype out of memory, which it
   * does not tell apart */
  int n = stbtt_GetGlyphShape(&f->info, g, &v);
  if (n <= 0)
    return 0;
  /* The box comes from the points, control points too, not from the box
   * a glyph stores, which need not hold them. */
  float lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
  for (int i = 0; i < n; i++) {
    widen(v[i].x, &lo_x, &hi_x);
    widen(v[i].y, &lo_y, &hi_y);
    if (v[i].type == STBTT_vcurve || v[i].type == STBTT_vcubic) {
      widen(v[i].cx, &lo_x, &hi_x);
      widen(v[i].cy, &lo_y, &hi_y);
    }
    if (v[i].type == STBTT_vcubic) {
      widen(v[i].cx1, &lo_x, &hi_x);
      widen(v[i].cy1, &lo_y, &hi_y);
    }
  }
  /* bitmap rows run down, font units up; at most 32 pixels a unit */
  double sc = scale; /* as raster.c computes: float rounds a sliver off */
  long x0 = lrint(floor(lo_x * sc + fx)), x1 = lrint(ceil(hi_x * sc + fx));
  long y0 = lrint(floor(-hi_y * sc)), y1 = lrint(ceil(-lo_y * sc));
  /* Only what lands inside the clip rectangle is rasterized: the bitmap's
   * column i is text position ix + x0 + i, row j is baseline + y0 + j.
   * Upright, text positions are canvas columns and baseline rows canvas
   * rows; turned upwards, text position t is canvas row start - 1 - t and
   * baseline rows are canvas columns. */
  long cx0 = s->vertical ? start - c->clip_y1 : c->clip_x0;
  long cx1 = s->vertical ? start - c->clip_y0 : c->clip_x1;
  long cy0 = s->vertical ? c->clip_x0 : c->clip_y0;
  long cy1 = s->vertical ? c->clip_x1 : c->clip_y1;
  long vx0 = cx0 - ix > x0 ? cx0 - ix : x0, vx1 = cx1 - ix < x1 ? cx1 - ix : x1;
  long vy0 = cy0 - base > y0 ? cy0 - base : y0;
  long vy1 = cy1 - base < y1 ? cy1 - base : y1;
  if (vx0 >= vx1 || vy0 >= vy1) {
    stbtt_FreeShape(&f->info, v);
    return 0;
  }
  int w = (int)(vx1 - vx0), h = (int)(vy1 - vy0); /* at most the canvas' */
  /* the cost is known before the bitmap is allocated */
  unsigned char *pixels = NULL;
  int rc = 1;
  if (app_raster_cost(v, n, scale, fx, vx0, vy0, w, h) <= APP_RASTER_BUDGET) {
    pixels = malloc((size_t)w * (size_t)h);
    rc =
        pixels ? app_raster_glyph(v, n, scale, fx, vx0, vy0, w, h, pixels) : -1;
  }
  stbtt_FreeShape(&f->info, v);
  if (rc != 0) {
    free(pixels);
    if (rc < 0) {
      loom_set_error(LOOM_ERR_MEMORY, "text: out of memory");
      return -1;
    }
    /* Left out rather than failing the picture: only a hostile font has
     * such glyphs, and the rest of the picture is still worth having;
     * rather than drawn as a box, which would be as large as the canvas.
     * Said once a font, not once a glyph, to keep a label's worth of
     * them from flooding stderr. */
    if (!atomic_exchange((atomic_bool *)&f->warned_costly, true))
      fprintf(stderr,
              "warning: glyph %d of the font is too complex to draw at this "
              "size (a broken or hostile font?); it and any others like it "
              "are left out of the pictures\n",
              g);
    return 1;
  }
  for (int j = 0; j < h; j++)
    for (int i = 0; i < w; i++) {
      unsigned char a = pixels[(size_t)j * (size_t)w + (size_t)i];
      if (!a)
        continue;
      long t = ix + vx0 + i, r = base + vy0 + j; /* text position, row */
      long px = s->vertical ? r : t, py = s->vertical ? start - 1 - t : r;
      app_blend_pixel(c, (int)px, (int)py, s->rgb, a / 255.0);
    }
  free(pixels);
  return 0;
}

/* Draws text[0..len) as app_text_draw does; its width in *width. */
static int draw_range(app_canvas *c, double x, double y, const char *text,
                      size_t len, const app_text_style *s, double *width) {
  float scale;
  const app_font *f = font_at(s->font, s->size, &scale);
  if (!f)
    return -1;
  double w = range_width(f, scale, text, len);
  if (width)
    *width = w;
  double along = s->vertical ? y : x, across = s->vertical ? x : y;
  double dir = s->vertical ? -1 : 1; /* upwards when turned */
  along -= dir * (s->align == APP_ALIGN_CENTER  ? w / 2
                  : s->align == APP_ALIGN_RIGHT ? w
                                                : 0);
  double rise = s->valign == APP_VALIGN_TOP      ? f->ascent * scale
                : s->valign == APP_VALIGN_MIDDLE ? f->cap_height * scale / 2
                                                 : 0;
  /* the baseline on whole pixels keeps horizontal strokes crisp */
  long base = lrint(across + rise);
  long start = lrint(along);
  if (!isfinite(along) || !isfinite(across) || labs(base) > (1L << 30) ||
      labs(start) > (1L << 30))
    return 0; /* nowhere on any canvas */
  layout l;
  layout_begin(&l, f, scale, text, len);
  uint32_t cp;
  size_t n;
  int g;
  double pen;
  int rc = 0;
  while (layout_next(&l, &cp, &n, &g, &pen)) {
    if (g < 0)
      continue;
    /* horizontal text keeps the pen's fraction (sub-pixel positioning) */
    double origin = s->vertical ? pen : (double)start + pen;
    if (app_font_draw_glyph(c, f, scale, g, origin, base, start, s) < 0) {
      rc = -1;
      break;
    }
  }
  return rc;
}

int app_text_draw(app_canvas *c, double x, double y, const char *text,
                  const app_text_style *s) {
  return draw_range(c, x, y, text, strcspn(text, "\n"), s, NULL);
}

/* Draws text[0..len) shortened with an ellipsis to max_width; the width
 * drawn in *width. */
static int draw_range_fit(app_canvas *c, double x, double y, const char *text,
                          size_t len, const app_text_style *s, double max_width,
                          bool force_ellipsis, double *width) {
  float scale;
  const app_font *f = font_at(s->font, s->size, &scale);
  if (!f)
    return -1;
  if (!force_ellipsis && range_width(f, scale, text, len) <= max_width)
    return draw_range(c, x, y, text, len, s, width);
  double dots = range_width(f, scale, ELLIPSIS, strlen(ELLIPSIS));
  size_t keep = range_fit(f, scale, text, len, max_width - dots);
  while (keep > 0 && text[keep - 1] == ' ')
    keep--;
  char *buf = malloc(keep + sizeof ELLIPSIS);
  if (!buf) {
    loom_set_error(LOOM_ERR_MEMORY, "text: out of memory");
    return -1;
  }
  memcpy(buf, text, keep);
  memcpy(buf + keep, ELLIPSIS, sizeof ELLIPSIS);
  int rc = draw_range(c, x, y, buf, keep + strlen(ELLIPSIS), s, width);
  free(buf);
  return rc;
}

double app_text_draw_fit(app_canvas *c, double x, double y, const char *text,
                         const app_text_style *s, double max_width) {
  double w = 0;
  if (draw_range_fit(c, x, y, text, strcspn(text, "\n"), s, max_width, false,
                     &w) < 0)
    return -1;
  return w;
}

int app_text_wrap(const app_font *font, const char *text, double size,
                  double max_width, app_text_span *lines, int max_lines,
                  bool *truncated) {
  float scale;
  const app_font *f = font_at(font, size, &scale);
  if (!f)
    return -1;
  const unsigned char *end = (const unsigned char *)text + strlen(text);
  const unsigned char *p = (const unsigned char *)text;
  int count = 0;
  for (;;) {
    while (p < end && *p == ' ')
      p++;
    if (p >= end || count >= max_lines)
      break;
    /* one line from p: ends at a newline, at the last space before the
     * text overflows, or (a word too long alone) before the character
     * that overflows */
    layout l;
    layout_begin(&l, f, scale, (const char *)p, (size_t)(end - p));
    const unsigned char *line_end = end, *next = end, *space = NULL;
    uint32_t cp;
    size_t n;
    int g;
    double x;
    for (const unsigned char *at = p; layout_next(&l, &cp, &n, &g, &x);
         at = l.p) {
      if (cp == '\n') {
        line_end = at;
        next = l.p;
        break;
      }
      if (cp == ' ') {
        space = at;
        continue; /* trailing spaces take no room */
      }
      if (l.pen > max_width && at > p) {
        line_end = space ? space : at;
        next = space ? space : at;
        break;
      }
    }
    while (line_end > p && line_end[-1] == ' ')
      line_end--;
    if (lines)
      lines[count] = (app_text_span){(size_t)(p - (const unsigned char *)text),
                                     (size_t)(line_end - p)};
    count++;
    p = next;
  }
  while (p < end && (*p == ' ' || *p == '\n'))
    p++;
  if (truncated)
    *truncated = p < end;
  return count;
}

int app_text_draw_wrapped(app_canvas *c, double x, double y, const char *text,
                          const app_text_style *s, double max_width,
                          int max_lines) {
  if (max_lines < 1 || max_lines > 4096) {
    loom_set_error(LOOM_ERR_ARGUMENT, "text: %d lines (must be 1..4096)",
                   max_lines);
    return -1;
  }
  app_text_metrics m;
  app_text_span *lines = malloc((size_t)max_lines * sizeof *lines);
  bool truncated;
  int n = lines && app_text_measure_lines(s->font, s->size, &m) == 0
              ? app_text_wrap(s->font, text, s->size, max_width, lines,
                              max_lines, &truncated)
              : -1;
  if (!lines)
    loom_set_error(LOOM_ERR_MEMORY, "text: out of memory");
  app_text_style line = *s;
  line.valign = APP_VALIGN_TOP;
  line.vertical = false;
  for (int i = 0; i < n; i++) {
    bool last = i == n - 1 && truncated;
    if (draw_range_fit(c, x, y + i * m.line_height, text + lines[i].start,
                       lines[i].len, &line, max_width, last, NULL) < 0) {
      n = -1;
      break;
    }
  }
  free(lines);
  return n;
}
