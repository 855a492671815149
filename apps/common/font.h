/* A loaded font, private to apps/common: font.c loads and checks it,
 * typeset.c lays out and draws text with it through stb_truetype. */
#ifndef LOOM_APPS_FONT_H
#define LOOM_APPS_FONT_H

#include "picture.h"

#include <stb_truetype.h>

struct app_font {
  stbtt_fontinfo info; /* points into data */
  unsigned char *data;
  /* in font units */
  int ascent, descent, line_gap, cap_height, units_per_em;
};

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
 * first subtable when kern is not NULL; each with its length in bytes.
 * NULL when every read lies inside the table and the subtables walked for
 * a pair of glyphs are few enough (4,096), else what is wrong. */
const char *app_font_check_kerning(const unsigned char *kern, size_t kern_len,
                                   const unsigned char *gpos, size_t gpos_len);

/* Draws glyph g of f (0 <= g < numGlyphs), `scale` pixels a font unit
 * (0 < scale <= 32), in s->rgb: its origin at text position x (a fraction
 * places it between pixels) on baseline row `base`. Upright (s->vertical
 * false), text positions are canvas columns and baseline rows canvas rows;
 * turned upwards, text position t is canvas row start - 1 - t and baseline
 * rows are canvas columns. Only the part inside c's clip rectangle is
 * rasterized, so the work is bounded by the canvas. 0, or -1 with
 * LOOM_ERR_MEMORY; s->font and s->size are not read. */
int app_font_draw_glyph(app_canvas *c, const app_font *f, float scale, int g,
                        double x, long base, long start,
                        const app_text_style *s);

#endif
