/* Image files in, training pixels out: JPEG and PNG decoding with stb_image
 * (grey, grey+alpha and RGBA turned into RGB), resizing with
 * stb_image_resize, per-channel normalisation and the seeded training
 * augmentation (shift and horizontal flip).
 *
 * Why the checks before stb_image sees a file: only two formats are
 * accepted (by their signatures: stb_image would also try BMP, GIF, PSD,
 * TGA, HDR, PIC and PNM, more code for a hostile file to reach), and the
 * header's size is checked against CAP_MAX_SIDE and CAP_MAX_PIXELS before
 * any pixel is decoded, so a file claiming 60000 x 60000 pixels is an error
 * instead of a 10 GB allocation. A JPEG's structure is checked too, for two
 * faults of the stb_image in Debian 12 (2.27) found by fuzzing
 * (scripts/fuzz): it writes past a Huffman table that lists more than 256
 * codes, and it decodes a scan whose tables were never defined with
 * whatever memory holds (valgrind: uninitialised values used as
 * addresses). */
#include "caption.h"

#include <limits.h>
#include <math.h>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char png_magic[8] = {0x89, 'P',  'N',  'G',
                                           '\r', '\n', 0x1a, '\n'};

/* "JPEG", "PNG", or NULL for anything else. */
static const char *format_of(const unsigned char *b, size_t len) {
  if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
    return "JPEG";
  if (len >= 8 && !memcmp(b, png_magic, 8))
    return "PNG";
  return NULL;
}

/* What a JPEG defines before its scans use it. */
typedef struct {
  bool dc[4], ac[4], quant[4]; /* Huffman and quantisation tables */
  bool frame, progressive;
  int64_t w, h;                    /* the first frame's size */
  int components, id[4], table[4]; /* the frame's: id, quantisation table */
  uint64_t scanned[4]; /* coefficients (bit k: the k-th) some scan covers */
} jpeg_state;

/* One DQT or DHT segment's tables (b[0..n)): NULL, or what is wrong. */
static const char *jpeg_tables(jpeg_state *j, bool huffman,
                               const unsigned char *b, size_t n) {
  for (size_t q = 0; q < n;) {
    unsigned cls = b[q] >> 4, id = b[q] & 15;
    size_t size;
    if (huffman) {
      if (q + 17 > n)
        return "a Huffman table cut short";
      size_t codes = 0;
      for (int i = 1; i <= 16; i++)
        codes += b[q + (size_t)i];
      if (codes > 256)
        return "a Huffman table with more than 256 codes";
      if (cls > 1 || id > 3)
        return "a Huffman table of an unknown class or number";
      size = 17 + codes;
      *(cls ? &j->ac[id] : &j->dc[id]) = true;
    } else {
      if (cls > 1 || id > 3)
        return "a quantisation table of an unknown precision or number";
      size = cls ? 129 : 65;
      j->quant[id] = true;
    }
    if (q + size > n)
      return "a table longer than its segment";
    q += size;
  }
  return NULL;
}

/* A frame header (SOF) b[0..n): precision, height, width, components. */
static const char *jpeg_frame(jpeg_state *j, unsigned marker,
                              const unsigned char *b, size_t n) {
  if (n < 6 || n < 6 + 3 * (size_t)b[5] || b[5] < 1 || b[5] > 4)
    return "a bad frame header";
  if (!j->frame) { /* stb_image reads the first frame's size */
    j->h = (int64_t)b[1] << 8 | b[2];
    j->w = (int64_t)b[3] << 8 | b[4];
  }
  j->frame = true;
  j->progressive = marker == 0xc2;
  j->components = b[5];
  for (int c = 0; c < j->components; c++) {
    j->id[c] = b[6 + 3 * c];
    j->table[c] = b[8 + 3 * c] & 3;
  }
  return NULL;
}

/* A scan header (SOS) b[0..n): every table its components use must have
 * been defined (stb_image decodes with whatever memory holds otherwise). */
static const char *jpeg_scan(jpeg_state *j, const unsigned char *b, size_t n) {
  if (!j->frame)
    return "a scan before the frame header";
  if (n < 1 || n < 1 + 2 * (size_t)b[0] + 3 || b[0] < 1 || b[0] > 4)
    return "a bad scan header";
  int ns = b[0];
  unsigned first = b[1 + 2 * ns]; /* Ss: 0 for DC coefficients */
  for (int k = 0; k < ns; k++) {
    int c = 0;
    while (c < j->components && j->id[c] != b[1 + 2 * k])
      c++;
    if (c == j->components)
      return "a scan of a component the frame does not have";
    unsigned td = b[2 + 2 * k] >> 4, ta = b[2 + 2 * k] & 15;
    if (!j->quant[j->table[c]])
      return "a scan before its quantisation table";
    bool need_dc = !j->progressive || first == 0;
    bool need_ac = !j->progressive || first > 0;
    if ((need_dc && (td > 3 || !j->dc[td])) ||
        (need_ac && (ta > 3 || !j->ac[ta])))
      return "a scan before its Huffman tables";
    unsigned last = b[2 + 2 * ns] > 63 ? 63 : b[2 + 2 * ns]; /* Se */
    if (!j->progressive) /* a baseline scan holds every coefficient */
      first = 0, last = 63;
    for (unsigned q = first; q <= last; q++)
      j->scanned[c] |= (uint64_t)1 << q;
  }
  return NULL;
}

/* At the end: every coefficient of every component was in some scan
 * (stb_image leaves the others as whatever memory held). */
static const char *jpeg_end(const jpeg_state *j) {
  for (int c = 0; j->frame && c < j->components; c++)
    if (j->scanned[c] != ~(uint64_t)0)
      return "a component some of whose coefficients no scan holds";
  return NULL;
}

/* Walks a JPEG's marker segments up to the end of the data or the EOI
 * marker, skipping entropy-coded data after each scan header. NULL when
 * every segment is whole, every table is well-formed and every scan's
 * tables were defined before it, else what is wrong. Entropy-coded data
 * that ends early is left to the decoder. *w and *h: the frame's size
 * (-1 without a frame header). */
static const char *jpeg_check(const unsigned char *b, size_t len, int64_t *w,
                              int64_t *h) {
  jpeg_state j = {.w = -1, .h = -1};
  *w = *h = -1;
  size_t p = 2; /* after the SOI marker */
  while (p + 1 < len) {
    if (b[p] != 0xff)
      return "no marker where one should be";
    while (p + 1 < len && b[p + 1] == 0xff) /* fill bytes */
      p++;
    if (p + 1 >= len)
      break;
    unsigned m = b[p + 1];
    p += 2;
    if (m == 0xd9) /* EOI */
      break;
    if ((m >= 0xd0 && m <= 0xd7) || m == 0x01) /* no length */
      continue;
    size_t seg = p + 2 <= len ? (size_t)b[p] << 8 | b[p + 1] : 2;
    if (seg < 2)
      return "a marker segment shorter than its length field";
    if (p + seg > len) /* stb_image would read zeros past the end */
      return "the data ends inside a marker segment";
    const unsigned char *body = b + p + 2;
    size_t n = seg - 2;
    const char *bad = NULL;
    if (m == 0xc4 || m == 0xdb)
      bad = jpeg_tables(&j, m == 0xc4, body, n);
    else if (m >= 0xc0 && m <= 0xcf && m != 0xc8 && m != 0xcc)
      bad = jpeg_frame(&j, m, body, n);
    else if (m == 0xda)
      bad = jpeg_scan(&j, body, n);
    if (bad)
      return bad;
    p += seg;
    if (m == 0xda) /* entropy-coded data up to the next marker */
      while (p + 1 < len && (b[p] != 0xff || b[p + 1] == 0 ||
                             (b[p + 1] >= 0xd0 && b[p + 1] <= 0xd7)))
        p++;
  }
  *w = j.w;
  *h = j.h;
  return jpeg_end(&j);
}

/* The size in a PNG's IHDR chunk, which the format puts first: *w and *h,
 * or -1 when the header is cut short or not there. */
static void png_size(const unsigned char *b, size_t len, int64_t *w,
                     int64_t *h) {
  *w = *h = -1;
  if (len < 24 || memcmp(b + 12, "IHDR", 4))
    return;
  *w = (int64_t)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
  *h = (int64_t)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
}

/* 0 when a w x h image is within CAP_MAX_SIDE and CAP_MAX_PIXELS, else -1
 * after an error naming the file and the limits. */
static int check_size(const char *name, const char *format, int64_t w,
                      int64_t h) {
  if (w >= 1 && h >= 1 && w <= CAP_MAX_SIDE && h <= CAP_MAX_SIDE &&
      w * h <= CAP_MAX_PIXELS)
    return 0;
  loom_set_error(LOOM_ERR_FORMAT,
                 "%s: %s of %lld x %lld pixels; 1 to %d on a side and at most "
                 "%lld in all are accepted",
                 name, format, (long long)w, (long long)h, CAP_MAX_SIDE,
                 (long long)CAP_MAX_PIXELS);
  return -1;
}

int cap_image_decode(const void *bytes, size_t len, const char *name,
                     cap_image *out) {
  *out = (cap_image){0};
  const unsigned char *b = bytes;
  const char *format = format_of(b, len);
  if (!format) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: not a JPEG or PNG file", name);
    return -1;
  }
  if (len > CAP_MAX_FILE_BYTES || len > INT_MAX) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: %zu bytes, more than the %d allowed",
                   name, len, CAP_MAX_FILE_BYTES);
    return -1;
  }
  int64_t hw, hh; /* the size the header claims */
  const char *bad = NULL;
  if (format[0] == 'J')
    bad = jpeg_check(b, len, &hw, &hh);
  else
    png_size(b, len, &hw, &hh);
  if (bad) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: corrupt JPEG (%s)", name, bad);
    return -1;
  }
  /* Before stb_image reads the header: it refuses sizes it will not decode
   * (a PNG of more than 2^30 bytes of pixels, a 0 x 0 JPEG or PNG) and then
   * tries its other formats, so its reason is "unknown image type". */
  if (hw >= 0 && check_size(name, format, hw, hh))
    return -1;
  int w, h, channels;
  if (!stbi_info_from_memory(b, (int)len, &w, &h, &channels)) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: unreadable %s header (%s)", name,
                   format, stbi_failure_reason());
    return -1;
  }
  if (check_size(name, format, w, h))
    return -1;
  int dw, dh;
  unsigned char *px =
      stbi_load_from_memory(b, (int)len, &dw, &dh, &channels, 0);
  if (!px || dw != w || dh != h || channels < 1 || channels > 4) {
    stbi_image_free(px);
    loom_set_error(LOOM_ERR_FORMAT, "%s: corrupt or truncated %s (%s)", name,
                   format, px ? "size changed" : stbi_failure_reason());
    return -1;
  }
  unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
  if (!rgb) {
    stbi_image_free(px);
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory for %d x %d pixels",
                   name, w, h);
    return -1;
  }
  /* Grey is spread to the three channels; alpha is composited over white
   * (a transparent background reads as paper, not as black). */
  size_t n = (size_t)w * (size_t)h;
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = px + i * (size_t)channels;
    unsigned char *q = rgb + 3 * i;
    int r = p[0], g = channels >= 3 ? p[1] : p[0],
        bl = channels >= 3 ? p[2] : p[0];
    int a = channels == 2 ? p[1] : channels == 4 ? p[3] : 255;
    q[0] = (unsigned char)((r * a + 255 * (255 - a) + 127) / 255);
    q[1] = (unsigned char)((g * a + 255 * (255 - a) + 127) / 255);
    q[2] = (unsigned char)((bl * a + 255 * (255 - a) + 127) / 255);
  }
  stbi_image_free(px);
  *out = (cap_image){.w = w, .h = h, .rgb = rgb};
  return 0;
}

int cap_image_load(const char *path, cap_image *out) {
  *out = (cap_image){0};
  size_t len;
  unsigned char *bytes = app_read_file_max(path, CAP_MAX_FILE_BYTES, &len);
  if (!bytes)
    return -1;
  int rc = cap_image_decode(bytes, len, path, out);
  free(bytes);
  return rc;
}

int cap_image_resize(const cap_image *in, int w, int h, cap_image *out) {
  *out = (cap_image){0};
  if (w < 1 || h < 1 || w > CAP_MAX_SIDE || h > CAP_MAX_SIDE) {
    loom_set_error(LOOM_ERR_ARGUMENT, "image resize: %d x %d pixels", w, h);
    return -1;
  }
  unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
  if (!rgb) {
    loom_set_error(LOOM_ERR_MEMORY, "image resize: out of memory");
    return -1;
  }
  if (in->w == w && in->h == h)
    memcpy(rgb, in->rgb, (size_t)w * (size_t)h * 3);
  else if (!stbir_resize_uint8(in->rgb, in->w, in->h, 0, rgb, w, h, 0, 3)) {
    free(rgb);
    loom_set_error(LOOM_ERR_MEMORY, "image resize: out of memory");
    return -1;
  }
  *out = (cap_image){.w = w, .h = h, .rgb = rgb};
  return 0;
}

void cap_image_free(cap_image *im) {
  if (!im)
    return;
  free(im->rgb);
  *im = (cap_image){0};
}

void cap_image_to_planes(const cap_image *im, unsigned char *chw) {
  size_t n = (size_t)im->w * (size_t)im->h;
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 3; c++)
      chw[c * n + i] = im->rgb[3 * i + (size_t)c];
}

void cap_planes_to_image(const unsigned char *chw, int side,
                         unsigned char *rgb) {
  size_t n = (size_t)side * (size_t)side;
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 3; c++)
      rgb[3 * i + (size_t)c] = chw[c * n + i];
}

int cap_image_fit(const void *bytes, size_t len, const char *name, int side,
                  unsigned char *chw) {
  cap_image im, small;
  if (cap_image_decode(bytes, len, name, &im) < 0)
    return -1;
  int rc = cap_image_resize(&im, side, side, &small);
  cap_image_free(&im);
  if (rc < 0)
    return -1;
  cap_image_to_planes(&small, chw);
  cap_image_free(&small);
  return 0;
}

/* ---- normalisation and augmentation ---- */

void cap_norm_fit(cap_norm *nm, const unsigned char *pixels, int side,
                  const int64_t *images, int64_t n) {
  size_t plane = (size_t)side * (size_t)side;
  for (int c = 0; c < 3; c++) {
    /* exact integer sums, then the unbiased standard deviation (as
     * torch.std, which the PyTorch baseline uses) */
    uint64_t s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
      const unsigned char *p =
          pixels + ((size_t)images[i] * 3 + (size_t)c) * plane;
      for (size_t k = 0; k < plane; k++) {
        s += p[k];
        ss += (uint64_t)p[k] * p[k];
      }
    }
    double count = (double)n * (double)plane;
    double mean = count > 0 ? (double)s / count : 0;
    double var =
        count > 1 ? ((double)ss - count * mean * mean) / (count - 1) : 0;
    nm->mean[c] = mean / 255;
    nm->std[c] = var > 0 ? sqrt(var) / 255 : 1;
  }
}

void cap_augment_draw(cap_augment *a, int shift, bool flip, loom_rng *g) {
  *a = (cap_augment){0};
  if (shift > 0) {
    a->dy = (int)(loom_rng_u64(g) % (uint64_t)(2 * shift + 1)) - shift;
    a->dx = (int)(loom_rng_u64(g) % (uint64_t)(2 * shift + 1)) - shift;
  }
  if (flip)
    a->flip = loom_rng_uniform(g) < 0.5;
}

void cap_pixels_to_input(const unsigned char *chw, int side, const cap_norm *nm,
                         const cap_augment *a, float *out) {
  size_t plane = (size_t)side * (size_t)side;
  int dy = a ? a->dy : 0, dx = a ? a->dx : 0;
  bool flip = a && a->flip;
  for (int c = 0; c < 3; c++) {
    float scale = (float)(1 / (255 * nm->std[c]));
    float shift = (float)(nm->mean[c] / nm->std[c]);
    const unsigned char *p = chw + (size_t)c * plane;
    float *o = out + (size_t)c * plane;
    for (int y = 0; y < side; y++) {
      /* the shifted image's edge pixels repeat into the gap */
      int sy = y + dy < 0 ? 0 : y + dy >= side ? side - 1 : y + dy;
      for (int x = 0; x < side; x++) {
        int ux = flip ? side - 1 - x : x;
        int sx = ux + dx < 0 ? 0 : ux + dx >= side ? side - 1 : ux + dx;
        o[y * side + x] = (float)p[sy * side + sx] * scale - shift;
      }
    }
  }
}
