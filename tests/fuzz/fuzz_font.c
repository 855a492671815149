/* The pictures' font loader (apps/common/font.c and glyphs.c) on arbitrary
 * files: a font it accepts has what the apps read of it read for every
 * glyph (metrics, box, outline, a small bitmap) and a range of characters
 * looked up. stb_truetype is compiled here, instrumented, so that ASan sees
 * every read it makes (the apps link Debian's libstb, the same source).
 * Kerning (the kern and GPOS tables) is left out: font.c does not check
 * those tables. Two UBSan checks are off inside stb only, for what it does
 * that is undefined in C but does no harm: its 32-bit reads shift a byte
 * of 128 or more into an int's sign bit, and a composite glyph's scaled
 * and offset points are converted from float to short unchecked (out of
 * range, a wrong point, which the rasterizer clips like any other; the
 * loader does not bound coordinates). */
#include "fuzz_util.h"

#include "apps/common/font.h"

/* after font.h, which includes the declarations */
#define STB_TRUETYPE_IMPLEMENTATION
#pragma clang attribute push(                                                  \
    __attribute__((no_sanitize("shift", "float-cast-overflow"))),              \
    apply_to = function)
#include <stb_truetype.h>
#pragma clang attribute pop

enum { SIDE = 16 }; /* the bitmap drawn, in pixels */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path("font");
  fuzz_write(path, data, size);
  app_font *f = app_font_load(path);
  if (!f) {
    fuzz_said_why();
    return 0;
  }
  const stbtt_fontinfo *info = &f->info;
  for (int c = 0; c < 0x3000; c += c < 0x100 ? 1 : 97)
    stbtt_FindGlyphIndex(info, c);
  float scale = stbtt_ScaleForMappingEmToPixels(info, 12);
  unsigned char bitmap[SIDE * SIDE];
  for (int g = 0; g < info->numGlyphs; g++) {
    int advance, bearing, x0, y0, x1, y1;
    stbtt_GetGlyphHMetrics(info, g, &advance, &bearing);
    stbtt_GetGlyphBitmapBoxSubpixel(info, g, scale, scale, 0.5f, 0, &x0, &y0,
                                    &x1, &y1);
    int w = x1 - x0 < SIDE ? x1 - x0 : SIDE,
        h = y1 - y0 < SIDE ? y1 - y0 : SIDE;
    if (w > 0 && h > 0)
      stbtt_MakeGlyphBitmapSubpixel(info, bitmap, w, h, SIDE, scale, scale,
                                    0.5f, 0, g);
  }
  app_font_free(f);
  loom_clear_error();
  return 0;
}
