/* apps/caption's data: image decoding (JPEG and PNG fixtures written here
 * with stb_image_write, grey and alpha conversion, corrupt, truncated and
 * oversized files), resizing, normalisation and augmentation, the tar
 * reader, the captions file and split formats, the Flickr8k layout (a
 * small one written here; the shared 1k subset when it is present), and
 * the generated scenes with their grammar. */
#define _POSIX_C_SOURCE 200809L
#include "../apps/caption/caption.h"
#include "check_util.h"
#include "file_util.h"

#include <stb_image_write.h>
#include <string.h>
#include <sys/stat.h>

/* ---- fixtures ---- */

typedef struct {
  unsigned char *data;
  size_t len, cap;
} membuf;

static void put(void *ctx, void *data, int size) {
  membuf *m = ctx;
  if (m->len + (size_t)size > m->cap) {
    m->cap = 2 * (m->len + (size_t)size);
    m->data = realloc(m->data, m->cap);
    ck_assert_ptr_nonnull(m->data);
  }
  memcpy(m->data + m->len, data, (size_t)size);
  m->len += (size_t)size;
}

/* A w x h image of `comp` channels with a pattern that depends on x, y
 * and the channel. */
static unsigned char *pattern(int w, int h, int comp) {
  unsigned char *p = malloc((size_t)(w * h * comp));
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < comp; c++)
        p[(y * w + x) * comp + c] = (unsigned char)(x * 20 + y * 7 + c * 60);
  return p;
}

static membuf png_of(const unsigned char *px, int w, int h, int comp) {
  membuf m = {0};
  ck_assert(stbi_write_png_to_func(put, &m, w, h, comp, px, w * comp));
  return m;
}

static membuf jpeg_of(const unsigned char *px, int w, int h, int comp) {
  membuf m = {0};
  ck_assert(stbi_write_jpg_to_func(put, &m, w, h, comp, px, 100));
  return m;
}

static void expect_error(const char *fragment) {
  ck_assert_msg(loom_last_status() != LOOM_OK, "no error recorded");
  ck_assert_msg(strstr(loom_last_error(), fragment), "error '%s' lacks '%s'",
                loom_last_error(), fragment);
  loom_clear_error();
}

/* ---- images ---- */

START_TEST(png_rgb_grey_and_alpha) {
  int w = 7, h = 5;
  for (int comp = 1; comp <= 4; comp++) {
    unsigned char *px = pattern(w, h, comp);
    membuf m = png_of(px, w, h, comp);
    cap_image im;
    ck_assert_int_eq(cap_image_decode(m.data, m.len, "x.png", &im), 0);
    ck_assert_int_eq(im.w, w);
    ck_assert_int_eq(im.h, h);
    for (int i = 0; i < w * h; i++) {
      const unsigned char *p = px + i * comp;
      int a = comp == 2 ? p[1] : comp == 4 ? p[3] : 255;
      for (int c = 0; c < 3; c++) {
        int v = comp >= 3 ? p[c] : p[0];
        int want = (v * a + 255 * (255 - a) + 127) / 255; /* over white */
        ck_assert_int_eq(im.rgb[3 * i + c], want);
      }
    }
    cap_image_free(&im);
    free(m.data);
    free(px);
  }
}
END_TEST

START_TEST(jpeg_rgb_and_grey) {
  int w = 16, h = 16;
  for (int comp = 1; comp <= 3; comp += 2) {
    unsigned char *px = malloc((size_t)(w * h * comp));
    for (int i = 0; i < w * h * comp; i++) /* smooth, so JPEG keeps it */
      px[i] = (unsigned char)(40 + (i / comp) % w * 4 + (i % comp) * 50);
    membuf m = jpeg_of(px, w, h, comp);
    cap_image im;
    ck_assert_int_eq(cap_image_decode(m.data, m.len, "x.jpg", &im), 0);
    ck_assert_int_eq(im.w, w);
    int worst = 0;
    for (int i = 0; i < w * h; i++)
      for (int c = 0; c < 3; c++) {
        int d = abs(im.rgb[3 * i + c] - px[i * comp + (comp == 3 ? c : 0)]);
        worst = d > worst ? d : worst;
      }
    ck_assert_int_le(worst, 6); /* quality 100 */
    cap_image_free(&im);
    free(m.data);
    free(px);
  }
}
END_TEST

START_TEST(bad_images_are_errors_naming_the_file) {
  unsigned char *px = pattern(32, 32, 3);
  membuf png = png_of(px, 32, 32, 3), jpg = jpeg_of(px, 32, 32, 3);
  cap_image im;
  /* every truncation of both formats: an error, never a crash */
  for (size_t cut = 0; cut < png.len; cut += cut < 64 ? 1 : 37) {
    ck_assert_int_eq(cap_image_decode(png.data, cut, "cut.png", &im), -1);
    ck_assert_ptr_null(im.rgb);
    expect_error("cut.png");
  }
  for (size_t cut = 0; cut < jpg.len - 2; cut += cut < 64 ? 1 : 29) {
    if (cap_image_decode(jpg.data, cut, "cut.jpg", &im) == 0) {
      /* stb_image fills a JPEG cut inside its last scan; it must still be
       * the whole image */
      ck_assert_int_eq(im.w, 32);
      cap_image_free(&im);
    } else {
      expect_error("cut.jpg");
    }
  }
  /* flipped bytes inside the data */
  for (size_t at = 16; at < png.len; at += 13) {
    unsigned char *bad = malloc(png.len);
    memcpy(bad, png.data, png.len);
    bad[at] ^= 0x5a;
    if (cap_image_decode(bad, png.len, "flip.png", &im) == 0)
      cap_image_free(&im);
    else
      expect_error("flip.png");
    free(bad);
  }
  /* a Huffman table listing more than 256 codes (Debian's stb_image
   * writes past its table for one) */
  unsigned char *dht = malloc(jpg.len);
  memcpy(dht, jpg.data, jpg.len);
  size_t at = 2;
  while (at + 4 < jpg.len && !(dht[at] == 0xff && dht[at + 1] == 0xc4))
    at += 2 + ((size_t)dht[at + 2] << 8 | dht[at + 3]);
  ck_assert_uint_lt(at + 21, jpg.len);
  dht[at + 4 + 15] = 200; /* code counts of lengths 15 and 16 */
  dht[at + 4 + 16] = 200;
  ck_assert_int_eq(cap_image_decode(dht, jpg.len, "dht.jpg", &im), -1);
  expect_error("dht.jpg: corrupt JPEG (a Huffman table with more than 256");
  free(dht);
  /* other formats and no data */
  ck_assert_int_eq(cap_image_decode("BM\0\0\0\0", 6, "a.bmp", &im), -1);
  expect_error("a.bmp: not a JPEG or PNG");
  ck_assert_int_eq(cap_image_decode("", 0, "empty.png", &im), -1);
  expect_error("empty.png");
  /* a PNG header claiming 20000 x 100 pixels, and a real PNG one pixel
   * wider than allowed */
  unsigned char *huge = malloc(png.len);
  memcpy(huge, png.data, png.len);
  unsigned char dims[8] = {0, 0, 0x4e, 0x20, 0, 0, 0, 100};
  memcpy(huge + 16, dims, 8); /* IHDR width and height */
  ck_assert_int_eq(cap_image_decode(huge, png.len, "huge.png", &im), -1);
  expect_error("huge.png: PNG of 20000 x 100 pixels; 1 to 16384 on a side");
  /* sizes stb_image refuses itself, as an "unknown image type": 20000 x
   * 20000 (more than 2^30 bytes of pixels) and 0 x 0 */
  unsigned char square[8] = {0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20};
  memcpy(huge + 16, square, 8);
  ck_assert_int_eq(cap_image_decode(huge, png.len, "square.png", &im), -1);
  expect_error("square.png: PNG of 20000 x 20000 pixels; 1 to 16384 on a "
               "side and at most 67108864 in all are accepted");
  memset(huge + 16, 0, 8);
  ck_assert_int_eq(cap_image_decode(huge, png.len, "none.png", &im), -1);
  expect_error("none.png: PNG of 0 x 0 pixels; 1 to 16384");
  free(huge);
  unsigned char *flat = malloc(jpg.len);
  memcpy(flat, jpg.data, jpg.len);
  at = 2; /* the frame header (SOF0): precision, height, width */
  while (at + 4 < jpg.len && !(flat[at] == 0xff && flat[at + 1] == 0xc0))
    at += 2 + ((size_t)flat[at + 2] << 8 | flat[at + 3]);
  ck_assert_uint_lt(at + 9, jpg.len);
  memset(flat + at + 5, 0, 4);
  ck_assert_int_eq(cap_image_decode(flat, jpg.len, "flat.jpg", &im), -1);
  expect_error("flat.jpg: JPEG of 0 x 0 pixels; 1 to 16384");
  free(flat);
  unsigned char *row = calloc(3 * (CAP_MAX_SIDE + 1), 1);
  membuf wide = png_of(row, CAP_MAX_SIDE + 1, 1, 3);
  ck_assert_int_eq(cap_image_decode(wide.data, wide.len, "wide.png", &im), -1);
  expect_error("wide.png: PNG of 16385 x 1 pixels");
  free(wide.data);
  free(row);
  ck_assert_int_eq(cap_image_load("/nonexistent/x.jpg", &im), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  expect_error("/nonexistent/x.jpg");
  free(png.data);
  free(jpg.data);
  free(px);
}
END_TEST

START_TEST(resize_and_planes) {
  cap_image im = {.w = 10, .h = 6, .rgb = malloc(180)}, out;
  for (int i = 0; i < 60; i++) {
    im.rgb[3 * i] = 200;
    im.rgb[3 * i + 1] = 100;
    im.rgb[3 * i + 2] = 0;
  }
  ck_assert_int_eq(cap_image_resize(&im, 4, 4, &out), 0);
  unsigned char chw[48];
  cap_image_to_planes(&out, chw);
  for (int i = 0; i < 16; i++) { /* a flat image stays flat */
    ck_assert_int_eq(chw[i], 200);
    ck_assert_int_eq(chw[16 + i], 100);
    ck_assert_int_eq(chw[32 + i], 0);
  }
  unsigned char back[48];
  cap_planes_to_image(chw, 4, back);
  ck_assert_mem_eq(back, out.rgb, 48);
  cap_image_free(&out);
  ck_assert_int_eq(cap_image_resize(&im, 0, 4, &out), -1);
  loom_clear_error();
  cap_image_free(&im);
}
END_TEST

START_TEST(normalise_and_augment) {
  /* two 2x2 images: channel c of image i is constant i * 100 + c */
  unsigned char px[2 * 12];
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 3; c++)
      for (int k = 0; k < 4; k++)
        px[i * 12 + c * 4 + k] = (unsigned char)(i * 100 + c);
  cap_norm nm;
  int64_t both[2] = {0, 1};
  cap_norm_fit(&nm, px, 2, both, 2);
  for (int c = 0; c < 3; c++) {
    ck_assert_close(nm.mean[c], (50.0 + c) / 255, 1e-12);
    /* 8 values, four at each end: unbiased variance 50^2 * 8/7 */
    ck_assert_close(nm.std[c], sqrt(2500.0 * 8 / 7) / 255, 1e-12);
  }
  float out[27];
  cap_pixels_to_input(px + 12, 2, &nm, NULL, out);
  ck_assert_close(out[0], (100 / 255.0 - nm.mean[0]) / nm.std[0], 1e-5);
  /* flip mirrors columns; a shift repeats the edge */
  unsigned char ramp[3 * 9];
  for (int c = 0; c < 3; c++)
    for (int k = 0; k < 9; k++)
      ramp[c * 9 + k] = (unsigned char)k; /* value = y * 3 + x */
  cap_norm unit = {{0, 0, 0}, {1 / 255.0, 1 / 255.0, 1 / 255.0}};
  cap_augment flip = {.flip = true}, shift = {.dx = 1, .dy = -1};
  cap_pixels_to_input(ramp, 3, &unit, &flip, out);
  ck_assert_float_eq_tol(out[0], 2, 1e-4);
  ck_assert_float_eq_tol(out[5], 3, 1e-4);
  float shifted[27];
  cap_pixels_to_input(ramp, 3, &unit, &shift, shifted);
  /* out(y, x) = in(clamp(y - 1), clamp(x + 1)) */
  ck_assert_float_eq_tol(shifted[0], 1, 1e-4);
  ck_assert_float_eq_tol(shifted[2], 2, 1e-4);
  ck_assert_float_eq_tol(shifted[3], 1, 1e-4);
  ck_assert_float_eq_tol(shifted[8], 5, 1e-4);
  /* draws are seeded and in range */
  loom_rng *a = loom_rng_new(3), *b = loom_rng_new(3);
  int flips = 0;
  for (int i = 0; i < 400; i++) {
    cap_augment x, y;
    cap_augment_draw(&x, 2, true, a);
    cap_augment_draw(&y, 2, true, b);
    ck_assert(x.dx == y.dx && x.dy == y.dy && x.flip == y.flip);
    ck_assert(x.dx >= -2 && x.dx <= 2 && x.dy >= -2 && x.dy <= 2);
    flips += x.flip;
  }
  ck_assert_int_gt(flips, 150);
  ck_assert_int_lt(flips, 250);
  cap_augment none;
  cap_augment_draw(&none, 0, false, a);
  ck_assert(none.dx == 0 && none.dy == 0 && !none.flip);
  loom_rng_free(a);
  loom_rng_free(b);
}
END_TEST

/* ---- tar ---- */

/* Appends a ustar header and data; type '0' file, '5' folder, 'L' long
 * name. checksum_delta spoils the checksum. */
static void tar_add(membuf *m, const char *name, char type, const void *data,
                    size_t len, int checksum_delta) {
  unsigned char h[512] = {0};
  snprintf((char *)h, 100, "%s", name);
  memcpy(h + 100, "0000644", 8);
  snprintf((char *)h + 124, 12, "%011o", (unsigned)len);
  memset(h + 148, ' ', 8);
  h[156] = (unsigned char)type;
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum + (unsigned)checksum_delta);
  put(m, h, 512);
  if (len)
    put(m, (void *)data, (int)len);
  static const unsigned char zero[512];
  if (len % 512)
    put(m, (void *)zero, (int)(512 - len % 512));
}

static void tar_end(membuf *m) {
  static const unsigned char zero[1024];
  put(m, (void *)zero, 1024);
}

START_TEST(tar_entries) {
  membuf m = {0};
  char long_name[300];
  memset(long_name, 'n', sizeof long_name);
  snprintf(long_name + 280, 20, "/long.jpg");
  tar_add(&m, "images/", '5', NULL, 0, 0);
  tar_add(&m, "images/a.jpg", '0', "hello", 5, 0);
  tar_add(&m, "././@LongLink", 'L', long_name, strlen(long_name) + 1, 0);
  tar_add(&m, "truncated-name", '0', "0123456789abcdef", 16, 0);
  tar_add(&m, "empty", '0', "", 0, 0);
  tar_end(&m);
  cap_tar t;
  cap_tar_entry e;
  ck_assert_int_eq(cap_tar_open_memory(&t, m.data, m.len, "mem.tar"), 0);
  ck_assert_int_eq(cap_tar_next(&t, &e), 1);
  ck_assert_str_eq(e.name, "images/a.jpg");
  ck_assert_int_eq(e.size, 5);
  char buf[32];
  ck_assert_int_eq(cap_tar_read(&t, &e, buf), 0);
  ck_assert_mem_eq(buf, "hello", 5);
  ck_assert_int_eq(cap_tar_next(&t, &e), 1);
  ck_assert_str_eq(e.name, long_name);
  ck_assert_int_eq(e.size, 16); /* not read: the next call skips it */
  ck_assert_int_eq(cap_tar_next(&t, &e), 1);
  ck_assert_str_eq(e.name, "empty");
  ck_assert_int_eq(cap_tar_read(&t, &e, buf), 0);
  ck_assert_int_eq(cap_tar_next(&t, &e), 0);
  cap_tar_close(&t);
  /* every truncation is an error or a clean end, never a crash */
  for (size_t cut = 0; cut < m.len; cut += 97) {
    ck_assert_int_eq(cap_tar_open_memory(&t, m.data, cut, "cut.tar"), 0);
    int r;
    while ((r = cap_tar_next(&t, &e)) > 0)
      if (cap_tar_read(&t, &e, buf) < 0) {
        r = -1;
        break;
      }
    if (r < 0)
      expect_error("cut.tar");
    cap_tar_close(&t);
  }
  free(m.data);
}
END_TEST

START_TEST(tar_bad_headers) {
  membuf m = {0};
  tar_add(&m, "a.jpg", '0', "x", 1, 1);
  tar_end(&m);
  cap_tar t;
  cap_tar_entry e;
  cap_tar_open_memory(&t, m.data, m.len, "sum.tar");
  ck_assert_int_eq(cap_tar_next(&t, &e), -1);
  expect_error("sum.tar: not a tar header (bad checksum) at byte 0");
  cap_tar_close(&t);
  /* a size field with a non-octal digit (checksum made to match) */
  memcpy(m.data + 124, "0000000009x", 11);
  unsigned sum = 0;
  memset(m.data + 148, ' ', 8);
  for (int i = 0; i < 512; i++)
    sum += m.data[i];
  snprintf((char *)m.data + 148, 8, "%06o", sum);
  cap_tar_open_memory(&t, m.data, m.len, "size.tar");
  ck_assert_int_eq(cap_tar_next(&t, &e), -1);
  expect_error("size.tar: bad or too large size");
  cap_tar_close(&t);
  /* an entry claiming more data than the archive holds */
  membuf big = {0};
  tar_add(&big, "b.jpg", '0', "y", 1, 0);
  snprintf((char *)big.data + 124, 12, "%011o", 4096u);
  sum = 0;
  memset(big.data + 148, ' ', 8);
  for (int i = 0; i < 512; i++)
    sum += big.data[i];
  snprintf((char *)big.data + 148, 8, "%06o", sum);
  cap_tar_open_memory(&t, big.data, big.len, "short.tar");
  ck_assert_int_eq(cap_tar_next(&t, &e), -1);
  expect_error("short.tar: archive ends inside the entry starting at byte 0");
  cap_tar_close(&t);
  ck_assert_int_eq(cap_tar_open(&t, "/nonexistent.tar"), -1);
  expect_error("/nonexistent.tar");
  free(big.data);
  free(m.data);
}
END_TEST

/* ---- captions, splits, the Flickr8k layout ---- */

static void names_for(cap_data *d, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(app_strtab_intern(&d->names, names[i], strlen(names[i])),
                     i);
  d->n = n;
  d->split = calloc((size_t)n, 1);
}

START_TEST(captions_file) {
  const char *names[] = {"a.jpg", "b.jpg"};
  cap_data d = {0};
  names_for(&d, names, 2);
  const char *text = "b.jpg#0\tA dog runs .\r\n"
                     "other.jpg#0\tskipped\n"
                     "a.jpg#0\tTwo  cats\n"
                     "\n"
                     "a.jpg#1\t  a cat sleeps \n"
                     "b.jpg\tno index is fine";
  ck_assert_int_eq(cap_captions_read("c.txt", text, strlen(text), &d), 0);
  ck_assert_int_eq(d.n_captions, 4);
  ck_assert_int_eq(d.first[0], 0);
  ck_assert_int_eq(d.first[1], 2);
  ck_assert_int_eq(d.first[2], 4);
  ck_assert_str_eq(d.captions[0], "Two  cats");
  ck_assert_str_eq(d.captions[1], "a cat sleeps");
  ck_assert_str_eq(d.captions[2], "A dog runs .");
  ck_assert_str_eq(d.captions[3], "no index is fine");
  cap_data_free(&d);
  struct {
    const char *text, *error;
  } bad[] = {
      {"a.jpg#0\tok\nb.jpg#0 no tab\n", "c.txt:2: no tab"},
      {"a.jpg#0\tok\nb.jpg#0\t   \n", "c.txt:2: empty caption"},
      {"a.jpg#0\tonly a\n", "c.txt: no caption for image b.jpg"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    names_for(&d, names, 2);
    ck_assert_int_eq(
        cap_captions_read("c.txt", bad[k].text, strlen(bad[k].text), &d), -1);
    expect_error(bad[k].error);
    cap_data_free(&d);
  }
  names_for(&d, names, 2);
  const char nul[] = "a.jpg#0\tx\0y\nb.jpg#0\tz\n";
  ck_assert_int_eq(cap_captions_read("c.txt", nul, sizeof nul - 1, &d), -1);
  expect_error("c.txt:1: NUL byte");
  cap_data_free(&d);
}
END_TEST

static void write_text(const char *name, const char *text) {
  char path[512];
  test_path(path, sizeof path, name);
  test_write_file(path, text, strlen(text));
}

/* A tiny Flickr8k-style folder: 4 images (3 in splits, 1 "none"), two as
 * JPEG files in a folder, two in a tar shard; returns its path. */
static const char *small_flickr(unsigned char pixels[4][3 * 8 * 8]) {
  static char dir[512];
  test_path(dir, sizeof dir, "flickr");
  mkdir(dir, 0755);
  char sub[600];
  snprintf(sub, sizeof sub, "%s/images", dir);
  mkdir(sub, 0755);
  write_text("flickr/images.tsv", "index\timage\tsplit\twidth\n"
                                  "0\tp0.jpg\ttrain\t1\n"
                                  "1\tp1.jpg\tnone\t1\n"
                                  "2\tp2.jpg\tdev\t1\n"
                                  "3\tp3.jpg\ttest\t1\n");
  write_text("flickr/captions.txt", "p0.jpg#0\tA red thing .\n"
                                    "p1.jpg#0\tnot used\n"
                                    "p2.jpg#0\tgreen\np2.jpg#1\tGreen !\n"
                                    "p3.jpg#0\tblue\n");
  membuf tar = {0};
  for (int i = 0; i < 4; i++) {
    unsigned char *px = malloc(20 * 12 * 3);
    for (int k = 0; k < 20 * 12; k++)
      for (int c = 0; c < 3; c++)
        px[3 * k + c] = (unsigned char)(i * 60 + c * 20 + (k % 20) * 2);
    membuf j = jpeg_of(px, 20, 12, 3);
    char name[64];
    snprintf(name, sizeof name, "images/p%d.jpg", i);
    if (i % 2 == 0) {
      char path[700];
      snprintf(path, sizeof path, "%s/%s", dir, name);
      test_write_file(path, j.data, j.len);
    } else {
      tar_add(&tar, name, '0', j.data, j.len, 0);
    }
    ck_assert_int_eq(cap_image_fit(j.data, j.len, name, 8, pixels[i]), 0);
    free(j.data);
    free(px);
  }
  tar_end(&tar);
  char path[700];
  snprintf(path, sizeof path, "%s/images_jpeg.part0.tar", dir);
  test_write_file(path, tar.data, tar.len);
  free(tar.data);
  return dir;
}

START_TEST(flickr_layout) {
  unsigned char pixels[4][3 * 8 * 8];
  const char *dir = small_flickr(pixels);
  cap_data d;
  cap_flickr_source src = {.dir = dir, .arrays = true};
  ck_assert_int_eq(cap_flickr_load(&src, 8, NULL, &d), 0);
  ck_assert_int_eq(d.n, 3);
  ck_assert_str_eq(app_strtab_str(&d.names, 1), "p2.jpg");
  ck_assert_int_eq(d.split[0], CAP_TRAIN);
  ck_assert_int_eq(d.split[1], CAP_DEV);
  ck_assert_int_eq(d.split[2], CAP_TEST);
  ck_assert_int_eq(d.first[2] - d.first[1], 2);
  int rows[3] = {0, 2, 3};
  for (int i = 0; i < 3; i++) /* from the folder and from the tar */
    ck_assert_mem_eq(d.pixels + i * 192, pixels[rows[i]], 192);
  int64_t n;
  int64_t *dev = cap_data_split(&d, CAP_DEV, &n);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(dev[0], 1);
  free(dev);
  cap_data_free(&d);
  /* raw arrays in two parts take precedence; a wrong size is an error */
  unsigned char arrays[4 * 192];
  for (int i = 0; i < 4 * 192; i++)
    arrays[i] = (unsigned char)(i * 7);
  char path[700];
  snprintf(path, sizeof path, "%s/images_8x8_rgb_chw.part0.u8", dir);
  test_write_file(path, arrays, 2 * 192);
  snprintf(path, sizeof path, "%s/images_8x8_rgb_chw.part1.u8", dir);
  test_write_file(path, arrays + 2 * 192, 2 * 192);
  ck_assert_int_eq(cap_flickr_load(&src, 8, NULL, &d), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_mem_eq(d.pixels + i * 192, arrays + rows[i] * 192, 192);
  cap_data_free(&d);
  test_write_file(path, arrays, 100);
  ck_assert_int_eq(cap_flickr_load(&src, 8, NULL, &d), -1);
  expect_error("expected 768");
  remove(path);
  snprintf(path, sizeof path, "%s/images_8x8_rgb_chw.part0.u8", dir);
  remove(path);
  /* missing images, captions and splits are named */
  snprintf(path, sizeof path, "%s/images/p0.jpg", dir);
  rename(path, "/tmp/loom-caption-moved.jpg");
  ck_assert_int_eq(cap_flickr_load(&src, 8, NULL, &d), -1);
  expect_error("image p0.jpg (train) was not found");
  rename("/tmp/loom-caption-moved.jpg", path);
  write_text("flickr/bad.tsv", "index\timage\n0\tp0.jpg\n");
  cap_flickr_source bad = src;
  char table[700];
  snprintf(table, sizeof table, "%s/bad.tsv", dir);
  bad.table = table;
  ck_assert_int_eq(cap_flickr_load(&bad, 8, NULL, &d), -1);
  expect_error("bad.tsv:1: the header names no 'image' and 'split'");
  write_text("flickr/bad.tsv", "image\tsplit\np0.jpg\ttrain\np0.jpg\ttest\n");
  ck_assert_int_eq(cap_flickr_load(&bad, 8, NULL, &d), -1);
  expect_error("bad.tsv:3: image p0.jpg listed twice");
  write_text("flickr/bad.tsv", "image\tsplit\np0.jpg\tvalidation\n");
  ck_assert_int_eq(cap_flickr_load(&bad, 8, NULL, &d), -1);
  expect_error("bad.tsv:2: expected an image name and a split");
  cap_flickr_source none = {.dir = "/nonexistent"};
  ck_assert_int_eq(cap_flickr_load(&none, 8, NULL, &d), -1);
  expect_error("/nonexistent: no split");
  /* the official lists, with a captions file named as Flickr8k's */
  write_text("flickr/train.txt", "p0.jpg\n\n");
  write_text("flickr/test.txt", "p3.jpg\np2.jpg\n");
  char train[700], test[700];
  snprintf(train, sizeof train, "%s/train.txt", dir);
  snprintf(test, sizeof test, "%s/test.txt", dir);
  cap_flickr_source lists = {.dir = dir, .lists = {train, NULL, test}};
  ck_assert_int_eq(cap_flickr_load(&lists, 8, NULL, &d), 0);
  ck_assert_int_eq(d.n, 3);
  ck_assert_str_eq(app_strtab_str(&d.names, 2), "p2.jpg");
  ck_assert_int_eq(d.split[2], CAP_TEST);
  ck_assert_mem_eq(d.pixels + 2 * 192, pixels[2], 192);
  cap_data_free(&d);
}
END_TEST

/* The shared Flickr8k 1k subset, when present: raw arrays and JPEGs
 * from its tar shards. */
START_TEST(flickr8k_1k_subset) {
  const char *dir = "../shared/data/flickr8k_1k";
  char root[600];
  const char *src_root = getenv("LOOM_SOURCE_ROOT");
  snprintf(root, sizeof root, "%s/%s", src_root ? src_root : ".", dir);
  char table[700];
  snprintf(table, sizeof table, "%s/images.tsv", root);
  FILE *f = fopen(table, "r");
  if (!f) {
    fprintf(stderr, "flickr8k_1k_subset: skipped (no %s)\n", table);
    return;
  }
  fclose(f);
  cap_data d;
  cap_flickr_source src = {.dir = root, .arrays = true};
  ck_assert_int_eq(cap_flickr_load(&src, 32, NULL, &d), 0);
  ck_assert_int_eq(d.n, 991);
  int64_t counts[3];
  for (int s = 0; s < 3; s++)
    free(cap_data_split(&d, (cap_split)s, &counts[s]));
  ck_assert_int_eq(counts[0], 753);
  ck_assert_int_eq(counts[1], 113);
  ck_assert_int_eq(counts[2], 125);
  ck_assert_int_eq(d.n_captions, 5 * 991);
  ck_assert_str_eq(app_strtab_str(&d.names, 0), "1000268201_693b08cb0e.jpg");
  ck_assert_str_eq(d.captions[0],
                   "A child in a pink dress is climbing up a set of stairs in "
                   "an entry way .");
  /* the first image from its JPEG (in the first shard) against its 32x32
   * array: both squeeze the photo; the filters differ a little */
  cap_data j;
  write_text("one.txt", "1000268201_693b08cb0e.jpg\n");
  char list[600], shard[700];
  test_path(list, sizeof list, "one.txt");
  snprintf(shard, sizeof shard, "%s/images_jpeg.part0.tar", root);
  char caps[700];
  snprintf(caps, sizeof caps, "%s/captions.txt", root);
  cap_flickr_source one = {.captions = caps,
                           .lists = {list, NULL, NULL},
                           .images = {shard},
                           .n_images = 1};
  ck_assert_int_eq(cap_flickr_load(&one, 32, NULL, &j), 0);
  ck_assert_int_eq(j.n, 1);
  double diff = 0;
  for (int k = 0; k < 3 * 32 * 32; k++)
    diff += abs(j.pixels[k] - d.pixels[k]);
  ck_assert_double_lt(diff / (3 * 32 * 32), 8);
  cap_data_free(&j);
  cap_data_free(&d);
}
END_TEST

/* ---- generated scenes ---- */

START_TEST(scene_grammar) {
  cap_scene s = {.n = 2,
                 .objects = {{.shape = 0, .colour = 0, .large = false},
                             {.shape = 1, .colour = 2, .large = true}}};
  char texts[CAP_SCENE_PHRASINGS][CAP_SCENE_TEXT];
  ck_assert_int_eq(cap_scene_captions(&s, texts, CAP_SCENE_PHRASINGS), 4);
  ck_assert_str_eq(texts[0], "a small red circle left of a large blue square");
  ck_assert_str_eq(texts[1], "a large blue square right of a small red circle");
  ck_assert_str_eq(texts[2],
                   "a small red circle to the left of a large blue square");
  ck_assert_str_eq(texts[3],
                   "a large blue square to the right of a small red circle");
  s.vertical = true;
  cap_scene_captions(&s, texts, CAP_SCENE_PHRASINGS);
  ck_assert_str_eq(texts[0], "a small red circle above a large blue square");
  ck_assert_str_eq(texts[3], "a large blue square under a small red circle");
  s = (cap_scene){.n = 1,
                  .objects = {{.shape = 2, .colour = 3, .large = true}}};
  ck_assert_int_eq(cap_scene_captions(&s, texts, CAP_SCENE_PHRASINGS), 3);
  ck_assert_str_eq(texts[0], "a large yellow triangle");
  ck_assert_str_eq(texts[1], "there is a large yellow triangle");
  ck_assert_str_eq(texts[2], "a large yellow triangle on its own");
  s = (cap_scene){.n = 3,
                  .objects = {{.shape = 3, .colour = 4},
                              {.shape = 0, .colour = 1, .large = true},
                              {.shape = 1, .colour = 0}}};
  ck_assert_int_eq(cap_scene_captions(&s, texts, 2), 2);
  ck_assert_str_eq(texts[0], "a small purple cross then a large green circle "
                             "then a small red square");
  ck_assert_str_eq(texts[1], "from left to right a small purple cross a "
                             "large green circle and a small red square");
}
END_TEST

START_TEST(scenes_generated) {
  cap_scene_opts o = {.side = 32,
                      .n = {300, 40, 200},
                      .max_objects = 3,
                      .colours = 5,
                      .holdout = 0.3,
                      .seed = 5};
  cap_data d, e;
  ck_assert_int_eq(cap_scenes_generate(&o, &d), 0);
  ck_assert_int_eq(cap_scenes_generate(&o, &e), 0);
  ck_assert_int_eq(d.n, 540);
  ck_assert_mem_eq(d.pixels, e.pixels, (size_t)540 * 3 * 32 * 32);
  int novel_test = 0;
  int objects[4] = {0};
  for (int64_t i = 0; i < d.n; i++) {
    ck_assert_int_ge(d.first[i + 1] - d.first[i], 3);
    ck_assert_str_eq(d.captions[d.first[i]], e.captions[e.first[i]]);
    if (d.split[i] == CAP_TRAIN)
      ck_assert_int_eq(d.novel[i], 0);
    if (d.split[i] == CAP_TEST)
      novel_test += d.novel[i];
    /* 1, 2 or 3 objects: count the "a " noun phrases */
    int a = 0;
    for (const char *p = d.captions[d.first[i]]; (p = strstr(p, "a ")); p++)
      a += p == d.captions[d.first[i]] || p[-1] == ' ';
    ck_assert(a >= 1 && a <= 3);
    objects[a]++;
  }
  ck_assert_int_gt(novel_test, 70);
  ck_assert_int_lt(novel_test, 130);
  ck_assert_int_gt(objects[1], 100);
  ck_assert_int_gt(objects[3], 100);
  cap_data_free(&e);
  cap_data_free(&d);
  o.max_objects = 4;
  ck_assert_int_eq(cap_scenes_generate(&o, &d), -1);
  expect_error("bad options");
}
END_TEST

/* The pixel under each shape's centre has its colour's hue. */
START_TEST(scene_colours) {
  loom_rng *g = loom_rng_new(1);
  for (int colour = 0; colour < CAP_SCENE_COLOURS; colour++) {
    cap_scene s = {.n = 1,
                   .objects = {{.shape = 0,
                                .colour = colour,
                                .large = true,
                                .x = 16,
                                .y = 16,
                                .r = 6}}};
    unsigned char chw[3 * 32 * 32];
    cap_scene_draw(&s, 32, g, chw);
    int r = chw[16 * 32 + 16], gr = chw[1024 + 16 * 32 + 16],
        b = chw[2048 + 16 * 32 + 16];
    int top = r > gr ? (r > b ? 0 : 2) : (gr > b ? 1 : 2);
    int expected[CAP_SCENE_COLOURS] = {0, 1, 2, -1, -1};
    if (expected[colour] >= 0)
      ck_assert_int_eq(top, expected[colour]);
    if (colour == 3) /* yellow: red and green high, blue low */
      ck_assert(r > b + 60 && gr > b + 60);
    if (colour == 4) /* purple: red and blue above green */
      ck_assert(r > gr + 40 && b > gr + 40);
  }
  loom_rng_free(g);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("caption_data");
  TCase *t = tcase_create("data");
  tcase_add_checked_fixture(t, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(t, 600);
  tcase_add_test(t, png_rgb_grey_and_alpha);
  tcase_add_test(t, jpeg_rgb_and_grey);
  tcase_add_test(t, bad_images_are_errors_naming_the_file);
  tcase_add_test(t, resize_and_planes);
  tcase_add_test(t, normalise_and_augment);
  tcase_add_test(t, tar_entries);
  tcase_add_test(t, tar_bad_headers);
  tcase_add_test(t, captions_file);
  tcase_add_test(t, flickr_layout);
  tcase_add_test(t, flickr8k_1k_subset);
  tcase_add_test(t, scene_grammar);
  tcase_add_test(t, scenes_generated);
  tcase_add_test(t, scene_colours);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  if (test_dir_make("caption-data") < 0)
    return 1;
  int rc = loom_run_suite(suite());
  test_dir_remove();
  return rc;
}
