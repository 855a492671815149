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

#endif
