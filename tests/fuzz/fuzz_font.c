/* The pictures' font loader (apps/common/font.c, glyphs.c, kerning.c) on
 * arbitrary files: a font it accepts has what the apps read of it read for
 * every glyph (metrics, kerning beside a few others, the outline drawn
 * whole and cut by the canvas, by the apps' own drawer in typeset.c) and
 * a range of characters looked up. The seeds with kerning tables come from
 * make_kerning_seeds.py. stb_truetype is compiled here, instrumented, so
 * that ASan sees every read it makes (the apps link Debian's libstb, the
 * same source). Two UBSan checks are off inside stb only, for what it does
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

enum { SIDE = 24 }; /* the canvas, in pixels */

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
  app_canvas c;
  if (app_canvas_init(&c, SIDE, SIDE, 0xffffff))
    abort();
  /* every glyph as the apps draw it: small and whole, upright and turned,
   * then large and cut by the canvas' edges, upright at the baseline */
  float small = stbtt_ScaleForMappingEmToPixels(info, 12),
        large = stbtt_ScaleForMappingEmToPixels(info, 96);
  app_text_style up = {.rgb = 0}, turned = {.rgb = 0, .vertical = true};
  for (int g = 0; g < info->numGlyphs; g++) {
    int advance, bearing;
    stbtt_GetGlyphHMetrics(info, g, &advance, &bearing);
    int last = info->numGlyphs - 1, seconds[] = {0, 1, 2, 3, g, last - g, last};
    for (int k = 0; k < 7; k++)
      if (seconds[k] <= last)
        stbtt_GetGlyphKernAdvance(info, g, seconds[k]);
    /* 1: a glyph too costly to draw, left out */
    if (app_font_draw_glyph(&c, f, small, g, 2.5, 18, 0, &up) < 0 ||
        app_font_draw_glyph(&c, f, small, g, 0.25, 6, SIDE - 2, &turned) < 0 ||
        app_font_draw_glyph(&c, f, large, g, -20.75, 0, 0, &up) < 0 ||
        app_font_draw_glyph(&c, f, large, g, -3.5, -4, SIDE + 40, &turned) < 0)
      break;
  }
  app_canvas_free(&c);
  app_font_free(f);
  loom_clear_error();
  return 0;
}
