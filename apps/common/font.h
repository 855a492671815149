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

#endif
