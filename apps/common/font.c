/* Loading TrueType fonts: the file's tables are checked to lie inside it,
 * and its glyphs and kerning to be what they say (glyphs.c, kerning.c),
 * before stb_truetype
 * (which trusts every offset and count it reads) sees it, and the
 * pictures' default font is loaded once per process. */
#define _POSIX_C_SOURCE 200809L
#include "font.h"

#include <errno.h>
#include <fcntl.h>
#include <loom/loom.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* DejaVu Sans is 0.7 MiB; a font file past this is not one we draw with. */
#define FONT_MAX_BYTES (64u << 20)

/* The whole file; NULL with an error. */
static unsigned char *read_font_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    loom_set_error(LOOM_ERR_IO, "font %s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 12 ||
      (uint64_t)st.st_size > FONT_MAX_BYTES) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "font %s: not a font file (%s; a TrueType font is a file "
                   "of 12 bytes to %u MiB)",
                   path, S_ISREG(st.st_mode) ? "wrong size" : "not a file",
                   FONT_MAX_BYTES >> 20);
    close(fd);
    return NULL;
  }
  size_t n = (size_t)st.st_size, got = 0;
  unsigned char *data = malloc(n);
  if (!data) {
    loom_set_error(LOOM_ERR_MEMORY, "font %s: out of memory", path);
    close(fd);
    return NULL;
  }
  while (got < n) {
    ssize_t r = read(fd, data + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (got != n) {
    loom_set_error(LOOM_ERR_IO, "font %s: read error", path);
    free(data);
    return NULL;
  }
  *len = n;
  return data;
}

/* A table of the font's directory: where it lies in the file. */
typedef struct {
  uint32_t offset, length;
} table;

/* A format 4 character map of `len` bytes at s, whose arrays fit in it:
 * stb_truetype's binary search starts and steps by the map's own search
 * fields, and a segment's idRangeOffset points at its glyph numbers; both
 * are trusted. NULL when they stay inside the map's arrays. */
static const char *check_format4(const unsigned char *s, uint64_t len) {
  uint32_t segments = app_be16(s + 6) / 2;
  /* the search ends at segment rangeShift + searchRange/2 + searchRange/4
   * + ... (entrySelector halvings) at most, and reads none past it; the
   * fields as the TrueType spec sets them end at the last segment */
  uint32_t step = app_be16(s + 8) / 2, last = app_be16(s + 12) / 2;
  for (uint32_t k = app_be16(s + 10); k > 0 && step > 0; k--)
    last += step >>= 1;
  if (segments == 0 || last >= segments)
    return "a character map's search runs past its segments";
  for (uint32_t i = 0; i < segments; i++) {
    uint32_t end = app_be16(s + 14 + 2 * i),
             start = app_be16(s + 16 + 2 * segments + 2 * i);
    uint64_t at = 16 + 6ull * segments + 2 * i; /* idRangeOffset[i] */
    uint32_t offset = app_be16(s + at);
    if (offset && start <= end && at + offset + 2ull * (end - start) + 2 > len)
      return "a character map's glyph numbers lie outside it";
  }
  return NULL;
}

/* The checks, in the order stb_truetype relies on them; NULL when the font
 * is usable, else what is wrong. */
static const char *check_font(const unsigned char *d, size_t n) {
  /* stbtt_GetFontOffsetForIndex reads up to 16 bytes of a collection's
   * header */
  if (!memcmp(d, "ttcf", 4) && (n < 16 || app_be32(d + 8) < 1))
    return "a font collection without fonts";
  int at = stbtt_GetFontOffsetForIndex(d, 0);
  if (at < 0 || (size_t)at > n - 12)
    return "not a TrueType font (no font at index 0)";
  uint32_t version = app_be32(d + at);
  if (version != 0x00010000 && memcmp(d + at, "true", 4) != 0)
    return "not a TrueType font (only TrueType outlines are supported)";
  uint32_t n_tables = app_be16(d + at + 4);
  if ((uint64_t)at + 12 + 16ull * n_tables > n)
    return "the table directory runs past the end of the file";
  static const char *const tags[] = {"cmap", "head", "hhea", "hmtx",
                                     "maxp", "loca", "glyf"};
  enum { CMAP, HEAD, HHEA, HMTX, MAXP, LOCA, GLYF, N_REQUIRED };
  table t[N_REQUIRED] = {0}, kern = {0}, gpos = {0};
  bool found[N_REQUIRED] = {0};
  for (uint32_t i = 0; i < n_tables; i++) {
    const unsigned char *r = d + at + 12 + 16 * i;
    uint32_t off = app_be32(r + 8), len = app_be32(r + 12);
    if ((uint64_t)off + len > n)
      return "a table runs past the end of the file";
    /* stb_truetype takes a table at offset 0 for a missing one: a glyf
     * there would have it parse the font as CFF, unchecked */
    if (off == 0)
      return "a table at offset 0, over the file's header";
    for (int k = 0; k < N_REQUIRED; k++)
      if (!memcmp(r, tags[k], 4) && !found[k]) { /* stbtt takes the first */
        found[k] = true;
        t[k] = (table){off, len};
      }
    /* the first kern and GPOS too (offsets are not 0 here) */
    if (!memcmp(r, "kern", 4) && !kern.offset)
      kern = (table){off, len};
    if (!memcmp(r, "GPOS", 4) && !gpos.offset)
      gpos = (table){off, len};
  }
  for (int k = 0; k < N_REQUIRED; k++)
    if (!found[k])
      return "a required table (cmap, head, hhea, hmtx, maxp, loca, glyf) "
             "is missing";
  if (t[HEAD].length < 54 || t[HHEA].length < 36 || t[MAXP].length < 6 ||
      t[CMAP].length < 4)
    return "the head, hhea, maxp or cmap table is too short";
  uint32_t n_glyphs = app_be16(d + t[MAXP].offset + 4);
  uint32_t loc_format = app_be16(d + t[HEAD].offset + 50);
  uint32_t n_metrics = app_be16(d + t[HHEA].offset + 34);
  if (n_glyphs < 1 || loc_format > 1 || n_metrics < 1 || n_metrics > n_glyphs)
    return "bad glyph count, glyph location format or metrics count";
  if ((uint64_t)t[HMTX].length <
      4ull * n_metrics + 2ull * (n_glyphs - n_metrics))
    return "the hmtx table is too short for the glyphs";
  uint32_t entry = loc_format ? 4 : 2;
  if ((uint64_t)t[LOCA].length < (uint64_t)entry * (n_glyphs + 1))
    return "the loca table is too short for the glyphs";
  const unsigned char *loca = d + t[LOCA].offset;
  uint64_t prev = 0;
  for (uint32_t g = 0; g <= n_glyphs; g++) {
    uint64_t o =
        loc_format ? app_be32(loca + 4 * g) : 2ull * app_be16(loca + 2 * g);
    if (o < prev || o > t[GLYF].length)
      return "a glyph lies outside the glyf table";
    prev = o;
  }
  const char *bad_glyph = app_font_check_glyphs(
      d + t[GLYF].offset, t[GLYF].length, loca, loc_format == 1, n_glyphs);
  if (bad_glyph)
    return bad_glyph;
  const char *bad_kerning =
      app_font_check_kerning(kern.offset ? d + kern.offset : NULL, kern.length,
                             gpos.offset ? d + gpos.offset : NULL, gpos.length);
  if (bad_kerning)
    return bad_kerning;
  uint32_t n_maps = app_be16(d + t[CMAP].offset + 2);
  if (4ull + 8ull * n_maps > t[CMAP].length)
    return "the cmap table is too short for its encodings";
  for (uint32_t i = 0; i < n_maps; i++) {
    uint32_t sub = app_be32(d + t[CMAP].offset + 4 + 8 * i + 4);
    if ((uint64_t)sub + 8 > t[CMAP].length)
      return "a character map lies outside the cmap table";
    const unsigned char *s = d + t[CMAP].offset + sub;
    uint32_t format = app_be16(s);
    bool wide = format == 12 || format == 13;
    if (wide && (uint64_t)sub + 16 > t[CMAP].length)
      return "a character map lies outside the cmap table";
    uint64_t len = wide ? app_be32(s + 4) : app_be16(s + 2);
    if ((uint64_t)sub + len > t[CMAP].length)
      return "a character map runs past the cmap table";
    /* the arrays stb_truetype walks must fit in the map's length */
    uint64_t need = format == 0   ? 262
                    : format == 4 ? 16 + 8ull * (app_be16(s + 6) / 2)
                    : format == 6 ? 10 + 2ull * app_be16(s + 8)
                    : wide        ? 16 + 12ull * app_be32(s + 12)
                                  : 0;
    if (len < need)
      return "a character map is shorter than its arrays";
    const char *bad_map = format == 4 ? check_format4(s, len) : NULL;
    if (bad_map)
      return bad_map;
  }
  return NULL;
}

app_font *app_font_load(const char *path) {
  size_t n;
  unsigned char *data = read_font_file(path, &n);
  if (!data)
    return NULL;
  app_font *f = calloc(1, sizeof *f);
  const char *bad = f ? check_font(data, n) : NULL;
  if (f && !bad &&
      !stbtt_InitFont(&f->info, data, stbtt_GetFontOffsetForIndex(data, 0)))
    bad = "no Unicode character map";
  /* the map chosen must be one stb_truetype reads (format 2 asserts) */
  uint32_t format = f && !bad ? app_be16(data + f->info.index_map) : 0;
  if (f && !bad && format != 0 && format != 4 && format != 6 && format != 12 &&
      format != 13)
    bad = "an unsupported character map format";
  if (!f || bad) {
    if (!f || bad == app_font_out_of_memory)
      loom_set_error(LOOM_ERR_MEMORY, "font %s: out of memory", path);
    else
      loom_set_error(LOOM_ERR_FORMAT, "font %s: %s", path, bad);
    free(f);
    free(data);
    return NULL;
  }
  f->data = data;
  atomic_init(&f->warned_costly, false);
  stbtt_GetFontVMetrics(&f->info, &f->ascent, &f->descent, &f->line_gap);
  f->units_per_em = (int)app_be16(data + f->info.head + 18);
  /* a format 12 map can give any glyph number, negative ones too, which
   * stb_truetype's box lookup would take as an offset into loca */
  int h = stbtt_FindGlyphIndex(&f->info, 'H'), x0, y0, x1, y1;
  f->cap_height = h > 0 && h < f->info.numGlyphs &&
                          stbtt_GetGlyphBox(&f->info, h, &x0, &y0, &x1, &y1)
                      ? y1
                      : f->ascent * 3 / 4;
  if (f->units_per_em < 16 || f->ascent <= f->descent) {
    loom_set_error(LOOM_ERR_FORMAT, "font %s: bad em size or line metrics",
                   path);
    app_font_free(f);
    return NULL;
  }
  return f;
}

void app_font_free(app_font *f) {
  if (f)
    free(f->data);
  free(f);
}

/* The default font and, when it could not be loaded, why. */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static app_font *default_font;
static char default_error[1024];
static loom_status default_status;

static void load_default(void) {
  const char *path = getenv("LOOM_FONT");
  if (!path || !*path)
    path = APP_FONT_DEFAULT_PATH;
  /* the load's error is ours to move into default_error, not the caller's:
   * keep a pending one aside */
  char pending[1024];
  loom_status pending_status = loom_last_status();
  snprintf(pending, sizeof pending, "%s", loom_last_error());
  loom_clear_error();
  default_font = app_font_load(path);
  default_status = loom_last_status();
  if (!default_font)
    snprintf(default_error, sizeof default_error,
             "%s (pictures need a TrueType font: install fonts-dejavu-core, "
             "or set LOOM_FONT to a .ttf file)",
             loom_last_error());
  loom_clear_error();
  if (pending_status != LOOM_OK)
    loom_set_error(pending_status, "%s", pending);
}

const app_font *app_font_default(void) {
  pthread_once(&default_once, load_default);
  if (!default_font)
    loom_set_error(default_status, "%s", default_error);
  return default_font;
}
