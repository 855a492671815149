/* Checking a font's kerning tables before stb_truetype reads them: it
 * follows every count and offset it finds in GPOS pair adjustments (or,
 * without GPOS, in the first kern subtable) unchecked, and tries every
 * GPOS subtable for each pair of characters drawn. Each read it can make
 * is bounded here by the table's length, and the subtables it walks per
 * pair are counted. */
#include "font.h"

/* Pair adjustment subtables in a font's GPOS lookups: stb_truetype walks
 * them all for every pair of characters drawn (DejaVu Sans has 2). */
#define MAX_PAIR_SUBTABLES 4096
/* Array entries read while checking: lookups and subtables may share
 * arrays, so this, not the table's size, bounds the time taken (DejaVu
 * Sans needs 20). */
#define MAX_CHECKED_ENTRIES (1u << 22)

typedef struct {
  const unsigned char *d;
  uint64_t len;
  uint64_t entries; /* array entries checked so far */
} table;

/* Whether bytes [at, at + n) lie in t. */
static bool inside(const table *t, uint64_t at, uint64_t n) {
  return at <= t->len && n <= t->len - at;
}

/* Counts n array entries about to be checked; false past the budget. */
static bool spend(table *t, uint64_t n) {
  t->entries += n;
  return t->entries <= MAX_CHECKED_ENTRIES;
}

static const char too_large[] = "its kerning tables are too large to check";

/* A coverage table at `at`: NULL when it lies in t, with *last the largest
 * coverage index it gives (-1: it covers no glyph). */
static const char *check_coverage(table *t, uint64_t at, int64_t *last) {
  *last = -1;
  if (!inside(t, at, 2))
    return "a kerning coverage table lies outside GPOS";
  uint32_t format = app_be16(t->d + at);
  if (format != 1 && format != 2)
    return NULL; /* stb_truetype reads no further */
  if (!inside(t, at, 4))
    return "a kerning coverage table lies outside GPOS";
  uint32_t n = app_be16(t->d + at + 2);
  if (!inside(t, at + 4, (format == 1 ? 2ull : 6ull) * n))
    return "a kerning coverage table runs past GPOS";
  if (format == 1) {
    *last = (int64_t)n - 1;
    return NULL;
  }
  if (!spend(t, n))
    return too_large;
  for (uint32_t i = 0; i < n; i++) { /* start, end, first index */
    const unsigned char *r = t->d + at + 4 + 6 * i;
    uint32_t start = app_be16(r), end = app_be16(r + 2);
    if (start <= end && (int64_t)app_be16(r + 4) + (end - start) > *last)
      *last = (int64_t)app_be16(r + 4) + (end - start);
  }
  return NULL;
}

/* A class definition table at `at`: NULL when what stb_truetype reads of
 * it lies in t. */
static const char *check_classes(const table *t, uint64_t at) {
  if (!inside(t, at, 2))
    return "a kerning class table lies outside GPOS";
  uint32_t format = app_be16(t->d + at);
  bool fits =
      format == 1 ? inside(t, at, 6) &&
                        inside(t, at + 6, 2ull * app_be16(t->d + at + 4))
      : format == 2 ? inside(t, at, 4) &&
                          inside(t, at + 4, 6ull * app_be16(t->d + at + 2))
                    : true;
  return fits ? NULL : "a kerning class table runs past GPOS";
}

/* A pair adjustment subtable at `at`. */
static const char *check_pairs(table *t, uint64_t at) {
  if (!inside(t, at, 4))
    return "a kerning subtable lies outside GPOS";
  int64_t last;
  const char *bad = check_coverage(t, at + app_be16(t->d + at + 2), &last);
  uint32_t format = app_be16(t->d + at);
  if (bad || last < 0 || (format != 1 && format != 2))
    return bad;
  if (!inside(t, at, format == 1 ? 10 : 16))
    return "a kerning subtable lies outside GPOS";
  /* stb_truetype reads on only for an x advance on the first glyph */
  if (app_be16(t->d + at + 4) != 4 || app_be16(t->d + at + 6) != 0)
    return NULL;
  if (format == 2) {
    if ((bad = check_classes(t, at + app_be16(t->d + at + 8))) ||
        (bad = check_classes(t, at + app_be16(t->d + at + 10))))
      return bad;
    uint64_t classes =
        (uint64_t)app_be16(t->d + at + 12) * app_be16(t->d + at + 14);
    return inside(t, at + 16, 2 * classes)
               ? NULL
               : "a kerning class matrix runs past GPOS";
  }
  /* format 1: a pair set per covered glyph, each a count and sorted
   * (second glyph, advance) pairs */
  uint32_t sets = app_be16(t->d + at + 8);
  if (last >= sets)
    return "a kerning subtable covers more glyphs than it has pair sets";
  if (!inside(t, at + 10, 2ull * sets))
    return "a kerning subtable's pair sets run past GPOS";
  if (!spend(t, sets))
    return too_large;
  for (uint32_t k = 0; k < sets; k++) {
    uint64_t set = at + app_be16(t->d + at + 10 + 2 * k);
    if (!inside(t, set, 2) || !inside(t, set + 2, 4ull * app_be16(t->d + set)))
      return "a kerning pair set runs past GPOS";
  }
  return NULL;
}

static const char *check_gpos(table *t) {
  if (!inside(t, 0, 4))
    return "the GPOS table is too short";
  if (app_be16(t->d) != 1 || app_be16(t->d + 2) != 0)
    return NULL; /* a version stb_truetype does not read */
  if (!inside(t, 0, 10))
    return "the GPOS table is too short";
  uint64_t list = app_be16(t->d + 8);
  if (!inside(t, list, 2) || !inside(t, list + 2, 2ull * app_be16(t->d + list)))
    return "the GPOS lookup list runs past the table";
  uint32_t n_lookups = app_be16(t->d + list), n_pairs = 0;
  if (!spend(t, n_lookups))
    return too_large;
  for (uint32_t i = 0; i < n_lookups; i++) {
    uint64_t lookup = list + app_be16(t->d + list + 2 + 2 * i);
    if (!inside(t, lookup, 6))
      return "a GPOS lookup lies outside the table";
    if (app_be16(t->d + lookup) != 2) /* not pair adjustment */
      continue;
    uint32_t n = app_be16(t->d + lookup + 4);
    if (!inside(t, lookup + 6, 2ull * n))
      return "a GPOS lookup's subtables run past the table";
    if ((n_pairs += n) > MAX_PAIR_SUBTABLES)
      return "more than 4096 kerning subtables";
    for (uint32_t k = 0; k < n; k++) {
      const char *bad =
          check_pairs(t, lookup + app_be16(t->d + lookup + 6 + 2 * k));
      if (bad)
        return bad;
    }
  }
  return NULL;
}

/* The first subtable of a kern table: its sorted (glyph pair, advance)
 * records, when it is a horizontal one of format 0. */
static const char *check_kern(const table *t) {
  if (!inside(t, 0, 4))
    return "the kern table is too short";
  if (app_be16(t->d + 2) < 1)
    return NULL;
  if (!inside(t, 0, 10))
    return "the kern table is too short";
  if (app_be16(t->d + 8) != 1)
    return NULL;
  if (!inside(t, 0, 12) || !inside(t, 18, 6ull * app_be16(t->d + 10)))
    return "the kern table's pairs run past it";
  return NULL;
}

const char *app_font_check_kerning(const unsigned char *kern, size_t kern_len,
                                   const unsigned char *gpos, size_t gpos_len) {
  /* stb_truetype reads GPOS when the font has one, else kern */
  table t = {gpos ? gpos : kern, gpos ? gpos_len : kern_len, 0};
  if (!t.d)
    return NULL;
  return gpos ? check_gpos(&t) : check_kern(&t);
}
