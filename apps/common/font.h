/* A loaded font, private to apps/common: font.c loads and checks it,
 * typeset.c lays out and draws text with it through stb_truetype. */
#ifndef LOOM_APPS_FONT_H
#define LOOM_APPS_FONT_H

#include "picture.h"

#include <stb_truetype.h>
#include <stdatomic.h>

struct app_font {
  stbtt_fontinfo info; /* points into data */
  unsigned char *data;
  /* in font units */
  int ascent, descent, line_gap, cap_height, units_per_em;
  /* whether a glyph too costly to draw was reported (typeset.c) */
  atomic_bool warned_costly;
};

/* Big-endian integers, as TrueType stores them. */
static inline uint32_t app_be16(const unsigned char *p) {
  return (uint32_t)p[0] << 8 | p[1];
}
static inline uint32_t app_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* Checks every glyph outline of a TrueType font against what stb_truetype
 * reads of it (glyphs.c): glyf and its length, loca (long_loca: 32-bit
 * offsets) holding n_glyphs + 1 entries. NULL when all are usable, else
 * what is wrong; app_font_out_of_memory when it could not look. */
const char *app_font_check_glyphs(const unsigned char *glyf, size_t glyf_len,
                                  const unsigned char *loca, bool long_loca,
                                  uint32_t n_glyphs);
extern const char app_font_out_of_memory[];

/* Checks what stb_truetype reads of a font's kerning (kerning.c): the GPOS
 * table's pair adjustments when gpos is not NULL, else the kern table's
 * first subtable when kern is not NULL; each with its length in bytes, and
 * NULL exactly when stb_truetype finds no such table (its first with the
 * tag, offset 0 counting as none). NULL when every read lies inside the
 * table and a pair of glyphs makes stb walk at most 4,096 pair subtables,
 * else what is wrong (also when checking would take more than 4M array
 * entries). */
const char *app_font_check_kerning(const unsigned char *kern, size_t kern_len,
                                   const unsigned char *gpos, size_t gpos_len);

/* The coverage of outline v[0..n) (stb_truetype's vertices, in font units;
 * contours closed or not) at `scale` pixels a unit (finite, 0 < scale <=
 * 32), shifted shift_x pixels right (0 <= shift_x < 1), in the w x h bitmap
 * `out` (w, h >= 1; w * h bytes, row-major) whose pixel (0, 0) lies off_x
 * pixels right of the glyph's origin and off_y pixels below it (|off_x|,
 * |off_y| < 2^31): 0..255 per pixel, the area covered under the nonzero
 * rule where contours do not overlap inside the pixel (raster.c: overlaps
 * the same way round darken an edge, as in stb_truetype's rasterizer). Any
 * part of the outline may lie outside the bitmap. 0; 1, with nothing
 * done, when app_raster_cost is over APP_RASTER_BUDGET; or -1 when memory
 * ran out (out is then unset; no error is set). */
int app_raster_glyph(const stbtt_vertex *v, int n, float scale, double shift_x,
                     long off_x, long off_y, int w, int h, unsigned char *out);

/* An upper bound on the work app_raster_glyph does with these arguments,
 * found from the points alone in time linear in n, in units of about a
 * nanosecond: a pixel of the bitmap costs 2, a line of the outline cut
 * into lines 4 for each band of rows it is walked in (raster.c), each row
 * it crosses 18 and each column 1. */
double app_raster_cost(const stbtt_vertex *v, int n, float scale,
                       double shift_x, long off_x, long off_y, int w, int h);
/* Work a glyph may cost; a glyph past it is not drawn. A font's outline
 * can hold 65,535 points a canvas' height apart: 2e9 row crossings, 30 to
 * 45 seconds to draw one character. Real glyphs cost up to 6.5 M units at
 * 512 pixels, the largest size drawn (Noto Nastaliq Urdu Bold, the
 * costliest of all DejaVu, Liberation, Free and Noto glyphs: 2,543 x 1,145
 * pixels, 6 to 25 ms), 120 K at 40; this is 2.6 times the most, and keeps
 * a glyph's bitmap of coverage to 8 MiB. */
#define APP_RASTER_BUDGET 16777216.0 /* 2^24 */

/* Draws glyph g of f (0 <= g < numGlyphs), `scale` pixels a font unit
 * (0 < scale <= 32), in s->rgb: its origin at text position x (a fraction
 * places it between pixels) on baseline row `base`. Upright (s->vertical
 * false), text positions are canvas columns and baseline rows canvas rows;
 * turned upwards, text position t is canvas row start - 1 - t and baseline
 * rows are canvas columns. Only the part inside c's clip rectangle is
 * rasterized (app_raster_glyph), from the box the glyph's points span, not
 * the one it stores. 0; 1 when the glyph is left out, its visible part
 * costing more than APP_RASTER_BUDGET (a hostile font: the first such
 * glyph of a font says so on stderr, once, and the rest of the picture is
 * drawn); or -1 with LOOM_ERR_MEMORY. s->font and s->size are not read. */
int app_font_draw_glyph(app_canvas *c, const app_font *f, float scale, int g,
                        double x, long base, long start,
                        const app_text_style *s);

#endif
