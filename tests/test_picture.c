/* The apps' drawing layer (apps/common/picture.h): plots of hostile data
 * finish and write valid PNGs, ticks stay few and ordered, text puts its
 * ink where its measures say, wrapping, a missing or broken font file (its
 * tables, and glyph outlines stb_truetype would read past or recurse
 * through forever), the
 * canvas, heatmaps, contact sheets and attention strips. PNGs are read back
 * with stb_image. */
#define _POSIX_C_SOURCE 200809L
#include "../apps/common/font.h"
#include "../apps/common/picture.h"
#include "file_util.h"

#include <float.h>
#include <pthread.h>
#include <stb_image.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads a PNG back: its pixels (caller frees) and size. */
static unsigned char *read_png(const char *path, int *w, int *h) {
  int comp;
  unsigned char *p = stbi_load(path, w, h, &comp, 3);
  ck_assert_msg(p != NULL, "%s: %s", path, stbi_failure_reason());
  return p;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static uint32_t pixel(const app_canvas *c, int x, int y) {
  const unsigned char *p = c->rgb + 3 * ((size_t)y * c->w + x);
  return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* The bounding box of non-white pixels; false when there are none. */
static bool ink_box(const app_canvas *c, int *x0, int *y0, int *x1, int *y1) {
  *x0 = *y0 = INT32_MAX;
  *x1 = *y1 = -1;
  for (int y = 0; y < c->h; y++)
    for (int x = 0; x < c->w; x++)
      if (pixel(c, x, y) != 0xffffff) {
        *x0 = x < *x0 ? x : *x0;
        *y0 = y < *y0 ? y : *y0;
        *x1 = x > *x1 ? x : *x1;
        *y1 = y > *y1 ? y : *y1;
      }
  return *x1 >= 0;
}

/* ---- plots ---- */

static void plot_axes_ok(const char *name, const double *x, const double *y,
                         int n, bool log_y, bool log_x) {
  char path[512];
  test_path(path, sizeof path, name);
  app_series s = {"data", x, y, n, 0x1f77b4};
  app_panel p = {name, "step", "value", &s, 1, log_y, log_x};
  ck_assert_msg(app_plot_panels_png(path, NULL, &p, 1, 1, 400, 300) == 0,
                "%s: %s", name, loom_last_error());
  int w, h;
  unsigned char *px = read_png(path, &w, &h);
  ck_assert_int_eq(w, 400);
  ck_assert_int_eq(h, 300);
  free(px);
}

static void plot_ok(const char *name, const double *x, const double *y, int n,
                    bool log_y) {
  plot_axes_ok(name, x, y, n, log_y, false);
}

START_TEST(test_plot_hostile_data) {
  /* each finished before it could hang: the old tick loop never ended on
   * the first */
  alarm(300);
  const double x2[2] = {0, 1};
  plot_ok("huge-close", x2, (double[]){1e20, 1e20 + 16384}, 2, false);
  plot_ok("equal", (double[]){1, 2, 3}, (double[]){2.5, 2.5, 2.5}, 3, false);
  plot_ok("zeros", (double[]){1, 2, 3}, (double[]){0, 0, 0}, 3, false);
  plot_ok("non-finite", (double[]){0, 1, NAN, 3, 4, INFINITY},
          (double[]){1, NAN, 2, -INFINITY, 3, 4}, 6, false);
  plot_ok("all-nan", x2, (double[]){NAN, NAN}, 2, false);
  plot_ok("extremes", x2, (double[]){1e308, -1e308}, 2, false);
  plot_ok("max", x2, (double[]){DBL_MAX, -DBL_MAX}, 2, false);
  plot_ok("max-equal", x2, (double[]){DBL_MAX, DBL_MAX}, 2, false);
  plot_ok("denormal", x2, (double[]){5e-324, 1e-320}, 2, false);
  plot_ok("denormal-zero", x2, (double[]){0, 5e-324}, 2, false);
  plot_ok("tiny", x2, (double[]){1e-300, 3e-300}, 2, false);
  plot_ok("huge-x", (double[]){1e300, 1e300}, (double[]){1, 2}, 2, false);
  plot_ok("single", (double[]){7}, (double[]){3}, 1, false);
  plot_ok("none", NULL, NULL, 0, false);
  plot_ok("log", (double[]){0, 1, 2, 3}, (double[]){1e-30, 0, -5, 1e30}, 4,
          true);
  plot_ok("log-nonpositive", x2, (double[]){0, -1}, 2, true);
  plot_ok("log-one-decade", (double[]){0, 1, 2}, (double[]){1.2, 2, 4.5}, 3,
          true);
  plot_ok("log-equal", x2, (double[]){1e-300, 1e-300}, 2, true);
  plot_axes_ok("log-x", (double[]){16, 32, 64, 512}, (double[]){1, 2, 4, 30}, 4,
               true, true);
  plot_axes_ok("log-x-nonpositive", (double[]){0, -1, 8}, (double[]){1, 2, 3},
               3, false, true);
  /* many points: decimated per pixel column, still quick */
  enum { N = 200000 };
  double *y = malloc(N * sizeof *y);
  ck_assert_ptr_nonnull(y);
  for (int i = 0; i < N; i++)
    y[i] = sin(i * 0.37) * (i % 7);
  plot_ok("many", NULL, y, N, false);
  free(y);
  alarm(0);
}
END_TEST

START_TEST(test_plot_panels_and_errors) {
  char path[512];
  test_path(path, sizeof path, "panels.png");
  double x[50], a[50], b[50];
  for (int i = 0; i < 50; i++) {
    x[i] = i;
    a[i] = exp(-i / 10.0);
    b[i] = 30 * (1 - exp(-i / 20.0));
  }
  app_series sa[APP_PLOT_MAX_SERIES];
  for (int s = 0; s < APP_PLOT_MAX_SERIES; s++)
    sa[s] = (app_series){"curve", x, a, 50, 0x101010u * (uint32_t)s};
  app_series sb = {"BLEU", x, b, 50, 0x2ca02c};
  app_panel p[3] = {
      {"loss", "step", "loss", sa, APP_PLOT_MAX_SERIES, true, false},
      {"BLEU", "step", "BLEU", &sb, 1, false, false},
      {NULL, NULL, NULL, NULL, 0, false, false}};
  ck_assert_int_eq(app_plot_panels_png(path, "run", p, 3, 2, 300, 200), 0);
  int w, h;
  free(read_png(path, &w, &h));
  ck_assert_int_eq(w, 600);
  ck_assert_int_gt(h, 400); /* two rows and a title */
  ck_assert_int_lt(h, 450);
  /* too many series, bad sizes, a series without y: refused, no file */
  test_path(path, sizeof path, "refused.png");
  p[0].n_series = APP_PLOT_MAX_SERIES + 1;
  ck_assert_int_eq(app_plot_panels_png(path, NULL, p, 1, 1, 300, 200), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(app_plot_png(path, NULL, NULL, NULL, &sb, 1, 100, 100), -1);
  loom_clear_error();
  app_series bad = {"bad", x, NULL, 3, 0};
  ck_assert_int_eq(app_plot_png(path, NULL, NULL, NULL, &bad, 1, 300, 200), -1);
  ck_assert_msg(strstr(loom_last_error(), "no y values"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert(!exists(path));
  /* an unwritable path: an error naming it */
  ck_assert_int_eq(app_plot_png("/nonexistent-dir/x.png", NULL, NULL, NULL, &sb,
                                1, 300, 200),
                   -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  ck_assert(strstr(loom_last_error(), "/nonexistent-dir/x.png"));
  loom_clear_error();
}
END_TEST

/* Ticks are few, increasing, inside the axis and distinctly labelled. */
static void ticks_sane(const app_ticks *t) {
  ck_assert_int_ge(t->n, 1);
  ck_assert_int_le(t->n, APP_TICKS_MAX);
  for (int i = 0; i < t->n; i++) {
    double p = app_ticks_position(t, t->value[i]);
    ck_assert_msg(p >= -1e-9 && p <= 1 + 1e-9, "tick %s at %g", t->label[i], p);
    if (i) {
      ck_assert(t->value[i] > t->value[i - 1]);
      ck_assert_str_ne(t->label[i], t->label[i - 1]);
    }
  }
}

START_TEST(test_ticks) {
  app_ticks t;
  app_ticks_fit(&t, 0, 10, 6, false, 0);
  ck_assert_int_eq(t.n, 6);
  ck_assert_str_eq(t.label[0], "0");
  ck_assert_str_eq(t.label[5], "10");
  ticks_sane(&t);
  app_ticks_fit(&t, 0, 1, 6, false, 0);
  ck_assert_str_eq(t.label[1], "0.2");
  ticks_sane(&t);
  app_ticks_fit(&t, 0, 3e7, 4, false, 0);
  ck_assert_str_eq(t.label[1], "1e7");
  ticks_sane(&t);
  app_ticks_fit(&t, -1e308, 1e308, 6, false, 0.05);
  ck_assert(!t.flat);
  ticks_sane(&t);
  app_ticks_fit(&t, -DBL_MAX, DBL_MAX, 20, false, 0.5);
  ticks_sane(&t);
  /* collapsed ranges: one labelled value, data in the middle */
  app_ticks_fit(&t, 1e20, 1e20 + 16384, 6, false, 0.05);
  ck_assert(t.flat);
  ck_assert_int_eq(t.n, 1);
  ck_assert_str_eq(t.label[0], "1e20");
  ck_assert_double_eq(app_ticks_position(&t, 1e20 + 16384), 0.5);
  app_ticks_fit(&t, 5e-324, 5e-324, 6, false, 0.05);
  ck_assert(t.flat);
  app_ticks_fit(&t, 0, 5e-324, 6, false, 0.05);
  ck_assert(t.flat);
  /* equal values widen around the value */
  app_ticks_fit(&t, 2.5, 2.5, 6, false, 0);
  ck_assert(!t.flat);
  ck_assert_double_eq(app_ticks_position(&t, 2.5), 0.5);
  ticks_sane(&t);
  /* no data: an empty unit axis */
  app_ticks_fit(&t, INFINITY, -INFINITY, 6, false, 0);
  ck_assert_str_eq(t.label[t.n - 1], "1.0");
  /* at most 20 ticks whatever is asked */
  app_ticks_fit(&t, 0, 1e6, 1000, false, 0);
  ck_assert_int_le(t.n, APP_TICKS_MAX);
  /* log axes: decades, 1-2-5 within a few decades, 10 with a superscript
   * far from 1 */
  app_ticks_fit(&t, 1e-12, 1e12, 6, true, 0);
  ticks_sane(&t);
  ck_assert_str_eq(t.label[0],
                   "10\xe2\x81\xbb\xc2\xb9\xe2\x81\xb0"); /* 10⁻¹⁰ */
  ck_assert_str_eq(t.label[2], "1");
  app_ticks_fit(&t, 1, 100, 6, true, 0);
  ticks_sane(&t);
  ck_assert_str_eq(t.label[0], "1");
  ck_assert_str_eq(t.label[1], "2");
  ck_assert_str_eq(t.label[t.n - 1], "100");
  ck_assert_double_eq_tol(app_ticks_position(&t, 10), 0.5, 1e-12);
}
END_TEST

/* ---- text ---- */

START_TEST(test_text_ink_and_measures) {
  app_canvas c;
  ck_assert_int_eq(app_canvas_init(&c, 300, 80, 0xffffff), 0);
  app_text_metrics m;
  ck_assert_int_eq(app_text_measure_lines(NULL, 20, &m), 0);
  ck_assert(m.ascent > 15 && m.ascent < 22 && m.descent > 2 &&
            m.cap_height > 12 && m.cap_height < m.ascent &&
            m.line_height >= m.ascent + m.descent);
  /* ink of "Hello" lies inside its measured box */
  app_text_style st = {.size = 20, .rgb = 0};
  double w = app_text_width(NULL, "Hello", 20);
  ck_assert(w > 40 && w < 70);
  ck_assert_int_eq(app_text_draw(&c, 50, 10, "Hello", &st), 0);
  int x0, y0, x1, y1;
  ck_assert(ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert_int_ge(x0, 50);
  ck_assert_int_le(x1, 50 + (int)ceil(w));
  ck_assert_int_gt(x1, 50 + (int)w - 4);
  ck_assert_int_ge(y0, 10 + (int)(m.ascent - m.cap_height) - 2);
  ck_assert_int_le(y1, 10 + (int)ceil(m.ascent)); /* no descenders */
  ck_assert_uint_eq(pixel(&c, (x0 + x1) / 2, 5), 0xffffff);
  /* right alignment ends at x, centred is centred */
  app_fill_rect(&c, 0, 0, c.w, c.h, 0xffffff, 1);
  st.align = APP_ALIGN_RIGHT;
  app_text_draw(&c, 200, 10, "Hello", &st);
  ck_assert(ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert_int_le(x1, 200);
  ck_assert_int_ge(x0, 200 - (int)ceil(w) - 1);
  /* widths add up without kerning pairs, and kerning tightens "AV" */
  double a = app_text_width(NULL, "n", 20), b = app_text_width(NULL, "o", 20);
  ck_assert_double_eq_tol(app_text_width(NULL, "no", 20), a + b, 1e-9);
  double av = app_text_width(NULL, "AV", 20);
  ck_assert(av < app_text_width(NULL, "A", 20) + app_text_width(NULL, "V", 20) -
                     0.5);
  /* widths scale with the size */
  ck_assert_double_eq_tol(app_text_width(NULL, "no", 40), 2 * (a + b), 1e-6);
  /* umlauts have ink above the capital */
  app_fill_rect(&c, 0, 0, c.w, c.h, 0xffffff, 1);
  st.align = APP_ALIGN_LEFT;
  app_text_draw(&c, 10, 10, "A", &st);
  int a_top;
  ink_box(&c, &x0, &a_top, &x1, &y1);
  app_fill_rect(&c, 0, 0, c.w, c.h, 0xffffff, 1);
  app_text_draw(&c, 10, 10, "\xc3\x84", &st); /* Ä */
  int u_top;
  ink_box(&c, &x0, &u_top, &x1, &y1);
  ck_assert_int_lt(u_top, a_top - 1);
  /* ß, a missing glyph (.notdef), invalid UTF-8 (U+FFFD), control bytes */
  ck_assert(app_text_width(NULL, "\xc3\x9f", 20) > 5);
  double notdef = app_text_width(NULL, "\xe4\xb8\xad", 20); /* 中 */
  ck_assert(notdef > 5);
  ck_assert_double_eq(notdef, app_text_width(NULL, "\xe6\x96\x87", 20));
  app_fill_rect(&c, 0, 0, c.w, c.h, 0xffffff, 1);
  app_text_draw(&c, 10, 10, "\xe4\xb8\xad", &st);
  ck_assert(ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert_double_eq(app_text_width(NULL, "\xff", 20),
                      app_text_width(NULL, "\xef\xbf\xbd", 20));
  ck_assert_double_eq(app_text_width(NULL, "\xc3", 20),
                      app_text_width(NULL, "\xef\xbf\xbd", 20));
  ck_assert_double_eq(app_text_width(NULL, "a\x01\x7f", 20),
                      app_text_width(NULL, "a", 20));
  ck_assert_double_eq(app_text_width(NULL, "a\nbcd", 20),
                      app_text_width(NULL, "a", 20));
  ck_assert_double_eq(app_text_width(NULL, "", 20), 0);
  /* a bad size */
  ck_assert_double_eq(app_text_width(NULL, "a", 0), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  app_canvas_free(&c);
}
END_TEST

START_TEST(test_text_vertical_and_colour) {
  app_canvas c;
  ck_assert_int_eq(app_canvas_init(&c, 100, 200, 0xffffff), 0);
  app_text_style st = {.size = 16, .rgb = 0xff0000, .vertical = true};
  double w = app_text_width(NULL, "Heading", 16);
  app_text_metrics m;
  app_text_measure_lines(NULL, 16, &m);
  /* reads upwards from y = 150; its top faces left, at x = 40 */
  ck_assert_int_eq(app_text_draw(&c, 40, 150, "Heading", &st), 0);
  int x0, y0, x1, y1;
  ck_assert(ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert_int_ge(x0, 40);
  ck_assert_int_le(x1, 40 + (int)ceil(m.ascent + m.descent));
  ck_assert_int_le(y1, 150);
  ck_assert_int_ge(y0, 150 - (int)ceil(w) - 1);
  ck_assert_int_gt(y1 - y0, (int)w - 6); /* taller than wide */
  ck_assert_int_lt(x1 - x0, y1 - y0);
  /* the ink is red: full coverage gives the colour, partial a blend */
  bool full = false;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      uint32_t p = pixel(&c, x, y);
      ck_assert_uint_eq(p >> 16, 0xff); /* red stays full */
      ck_assert_uint_eq((p >> 8) & 0xff, p & 0xff);
      full |= p == 0xff0000;
    }
  ck_assert(full);
  app_canvas_free(&c);
}
END_TEST

/* The spans' text with the dropped spaces put back as one space. */
static size_t non_space(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += s[i] != ' ' && s[i] != '\n';
  return k;
}

/* Wraps `text` at `width`: expect_lines lines (-1: at least two), each
 * fitting, trimmed, and (when not truncated) together all the text's
 * characters. */
static void check_wrap(const char *text, double width, int max_lines,
                       int expect_lines, bool expect_truncated) {
  app_text_span sp[64];
  bool truncated;
  int n = app_text_wrap(NULL, text, 12, width, sp, max_lines, &truncated);
  if (expect_lines < 0)
    ck_assert_int_ge(n, 2);
  else
    ck_assert_int_eq(n, expect_lines);
  ck_assert_int_eq(truncated, expect_truncated);
  size_t kept = 0;
  for (int i = 0; i < n; i++)
    kept += non_space(text + sp[i].start, sp[i].len);
  if (!truncated)
    ck_assert_uint_eq(kept, non_space(text, strlen(text)));
  for (int i = 0; i < n; i++) {
    char line[256];
    ck_assert_uint_lt(sp[i].len, sizeof line);
    memcpy(line, text + sp[i].start, sp[i].len);
    line[sp[i].len] = '\0';
    double w = app_text_width(NULL, line, 12);
    /* each line fits, unless it is a single character */
    ck_assert_msg(w <= width || sp[i].len <= 4, "line '%s' is %g > %g", line, w,
                  width);
    ck_assert_msg(sp[i].len == 0 ||
                      (line[0] != ' ' && line[sp[i].len - 1] != ' '),
                  "line '%s' keeps spaces", line);
    ck_assert(strchr(line, '\n') == NULL);
  }
}

START_TEST(test_text_wrap) {
  double word = app_text_width(NULL, "aaa bbb", 12);
  app_text_span sp[8];
  bool truncated;
  ck_assert_int_eq(
      app_text_wrap(NULL, "aaa bbb ccc", 12, word + 1, sp, 8, &truncated), 2);
  ck_assert_uint_eq(sp[0].start, 0);
  ck_assert_uint_eq(sp[0].len, 7); /* "aaa bbb" */
  ck_assert_uint_eq(sp[1].start, 8);
  ck_assert_uint_eq(sp[1].len, 3); /* "ccc" */
  ck_assert(!truncated);
  /* fits on one line; empty and blank text give no lines */
  check_wrap("aaa bbb ccc", 1000, 8, 1, false);
  check_wrap("", 100, 8, 0, false);
  check_wrap("    ", 100, 8, 0, false);
  /* a newline breaks; a blank line stays */
  check_wrap("aaa\nbbb", 1000, 8, 2, false);
  check_wrap("aaa\n\nbbb", 1000, 8, 3, false);
  /* a word wider than the line breaks between characters */
  check_wrap("abcdefghijklmnopqrstuvwxyz", 40, 64, -1, false);
  /* narrower than one character: one character a line, still progressing */
  check_wrap("a\xc3\x9f\xc3\xa4 xyz", 1, 64, 6, false);
  /* the line limit truncates */
  check_wrap("one two three four five six seven", 40, 2, 2, true);
  /* a caption wrapped into a picture ends in an ellipsis when cut */
  app_canvas c;
  ck_assert_int_eq(app_canvas_init(&c, 120, 60, 0xffffff), 0);
  app_text_style st = {.size = 12, .rgb = 0};
  ck_assert_int_eq(app_text_draw_wrapped(&c, 0, 0,
                                         "one two three four five six seven "
                                         "eight nine ten eleven",
                                         &st, 100, 2),
                   2);
  int x0, y0, x1, y1;
  ink_box(&c, &x0, &y0, &x1, &y1);
  ck_assert_int_le(x1, 100);
  app_text_metrics m;
  app_text_measure_lines(NULL, 12, &m);
  ck_assert_int_le(y1, (int)ceil(2 * m.line_height));
  ck_assert_int_gt(y1, (int)m.line_height);
  /* shortened to fit with an ellipsis */
  double fit = app_text_draw_fit(&c, 0, 0, "a rather long label", &st, 50);
  ck_assert(fit > 20 && fit <= 50);
  ck_assert_double_eq(app_text_draw_fit(&c, 0, 0, "ab", &st, 50),
                      app_text_width(NULL, "ab", 12));
  app_canvas_free(&c);
}
END_TEST

/* ---- fonts ---- */

/* Run as `test_picture missing-font PATH` with LOOM_FONT=/nonexistent: a
 * plot must fail with an error naming the font and the package, write no
 * file, and later calls fail the same way. Exit status 0 when so. */
static int missing_font_child(const char *path) {
  double y[2] = {1, 2};
  app_series s = {"a", NULL, y, 2, 0};
  int rc = app_plot_png(path, "t", "x", "y", &s, 1, 400, 300);
  const char *e = loom_last_error();
  bool ok = rc == -1 && strstr(e, "/nonexistent") &&
            strstr(e, "fonts-dejavu-core") && strstr(e, "LOOM_FONT") &&
            !exists(path);
  if (!ok)
    fprintf(stderr, "plot returned %d, error '%s'\n", rc, e);
  loom_clear_error();
  ok = ok && app_font_default() == NULL &&
       strstr(loom_last_error(), "/nonexistent");
  loom_clear_error();
  return ok ? 0 : 1;
}

/* Runs this test program again as `test_picture MODE PATH` in a fresh
 * process (the default font is loaded once per process, and this one has
 * loaded it), with LOOM_FONT set to `font` (NULL: unset); its exit status. */
static int run_child(const char *mode, const char *path, const char *font) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  ck_assert(n > 0 && n < (ssize_t)sizeof self - 1);
  self[n] = '\0';
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    if (font)
      setenv("LOOM_FONT", font, 1);
    else
      unsetenv("LOOM_FONT");
    execl(self, "test_picture", mode, path, (char *)NULL);
    _exit(127);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_missing_font_is_an_error) {
  char path[512];
  test_path(path, sizeof path, "no-font.png");
  ck_assert_msg(run_child("missing-font", path, "/nonexistent") == 0,
                "the child did not see the font error");
  ck_assert(!exists(path));
}
END_TEST

/* Run as `test_picture threads -`: four threads at once load the default
 * font and draw the same text into their own canvases; all must equal one
 * drawn afterwards. Exit status 0 when so. */
typedef struct {
  app_canvas c;
  int rc;
} thread_job;

static void *draw_job(void *arg) {
  thread_job *j = arg;
  app_text_style st = {.size = 14, .rgb = 0x203040};
  j->rc = app_canvas_init(&j->c, 200, 40, 0xffffff);
  if (j->rc == 0)
    j->rc = app_text_draw(&j->c, 5, 5, "Grüße, threads", &st);
  return NULL;
}

static int threads_child(void) {
  enum { N = 4 };
  thread_job jobs[N + 1] = {0};
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    if (pthread_create(&t[i], NULL, draw_job, &jobs[i]) != 0)
      return 2;
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  draw_job(&jobs[N]);
  int bad = jobs[N].rc != 0;
  for (int i = 0; i < N; i++)
    bad |=
        jobs[i].rc != 0 || memcmp(jobs[i].c.rgb, jobs[N].c.rgb, 200 * 40 * 3);
  for (int i = 0; i <= N; i++)
    app_canvas_free(&jobs[i].c);
  return bad;
}

START_TEST(test_threads_share_the_font) {
  ck_assert_int_eq(run_child("threads", "-", NULL), 0);
}
END_TEST

/* Loads `data` as a font file; expects it refused with `what` in the
 * message along with the path. */
static void font_refused(const char *name, const void *data, size_t len,
                         const char *what) {
  char path[512];
  test_path(path, sizeof path, name);
  test_write_file(path, data, len);
  ck_assert_ptr_null(app_font_load(path));
  ck_assert_msg(strstr(loom_last_error(), path) &&
                    strstr(loom_last_error(), what),
                "%s: %s", name, loom_last_error());
  loom_clear_error();
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* The table record of `tag` in a TrueType file. */
static unsigned char *record(unsigned char *font, const char *tag) {
  int n = font[4] << 8 | font[5];
  for (int i = 0; i < n; i++)
    if (!memcmp(font + 12 + 16 * i, tag, 4))
      return font + 12 + 16 * i;
  ck_abort_msg("no %s table", tag);
  return NULL;
}

START_TEST(test_broken_font_files) {
  size_t len;
  char *good = test_slurp(APP_FONT_DEFAULT_PATH, &len);
  app_font *f = app_font_load(APP_FONT_DEFAULT_PATH);
  ck_assert_msg(f != NULL, "%s", loom_last_error());
  app_font_free(f);
  ck_assert_ptr_null(app_font_load("/nonexistent.ttf"));
  ck_assert(strstr(loom_last_error(), "/nonexistent.ttf"));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  loom_clear_error();
  ck_assert_ptr_null(app_font_load(test_dir)); /* a folder */
  ck_assert(strstr(loom_last_error(), "not a file"));
  loom_clear_error();
  font_refused("empty.ttf", "", 0, "wrong size");
  font_refused("text.ttf", "this is not a font at all", 25,
               "not a TrueType font");
  font_refused("collection.ttf", "ttcf\0\1\0\0\0\0\0\0", 12, "collection");
  font_refused("truncated.ttf", good, 4000, "past the end");
  unsigned char *bad = malloc(len);
  ck_assert_ptr_nonnull(bad);
  /* a table offset past the end */
  memcpy(bad, good, len);
  put32(record(bad, "glyf") + 8, (uint32_t)len - 10);
  font_refused("offset.ttf", bad, len, "past the end");
  /* a required table renamed away */
  memcpy(bad, good, len);
  memcpy(record(bad, "cmap"), "xmap", 4);
  font_refused("nocmap.ttf", bad, len, "required table");
  /* a glyph location past the glyf table */
  memcpy(bad, good, len);
  unsigned char *loca = (unsigned char *)bad + get32(record(bad, "loca") + 8);
  loca[2] = loca[3] = 0xff; /* glyph 1 at 2 * 0xffff in the short format */
  loca[4] = loca[5] = 0xff;
  const unsigned char *head =
      (unsigned char *)bad + get32(record(bad, "head") + 8);
  if (head[51] == 1) /* long format: an offset past the table */
    put32(loca + 4, 0x7fffffff);
  font_refused("loca.ttf", bad, len, "glyf");
  /* character maps: arrays longer than the map, a format stb_truetype
   * cannot read (it asserts on format 2) */
  memcpy(bad, good, len);
  unsigned char *cmap = (unsigned char *)bad + get32(record(bad, "cmap") + 8);
  int n_maps = cmap[2] << 8 | cmap[3];
  for (int i = 0; i < n_maps; i++) {
    unsigned char *sub = cmap + get32(cmap + 4 + 8 * i + 4);
    if (sub[0] == 0 && sub[1] == 4)
      sub[6] = sub[7] = 0xff; /* segCountX2 */
  }
  font_refused("segments.ttf", bad, len, "shorter than its arrays");
  memcpy(bad, good, len); /* a binary search stepping past the segments */
  for (int i = 0; i < n_maps; i++) {
    unsigned char *sub = cmap + get32(cmap + 4 + 8 * i + 4);
    if (sub[0] == 0 && sub[1] == 4)
      sub[12] = sub[13] = 0xff; /* rangeShift */
  }
  font_refused("search.ttf", bad, len, "search runs past");
  memcpy(bad, good, len); /* glyph numbers past the map */
  for (int i = 0; i < n_maps; i++) {
    unsigned char *sub = cmap + get32(cmap + 4 + 8 * i + 4);
    int segments = (sub[6] << 8 | sub[7]) / 2;
    if (sub[0] == 0 && sub[1] == 4)
      sub[16 + 6 * segments] = sub[17 + 6 * segments] = 0xff; /* segment 0 */
  }
  font_refused("glyph_numbers.ttf", bad, len, "glyph numbers lie outside");
  memcpy(bad, good, len);
  for (int i = 0; i < n_maps; i++) {
    unsigned char *sub = cmap + get32(cmap + 4 + 8 * i + 4);
    sub[0] = 0;
    sub[1] = 2;
  }
  font_refused("format2.ttf", bad, len, "unsupported character map");
  /* too many horizontal metrics for the glyphs */
  memcpy(bad, good, len);
  unsigned char *hhea = (unsigned char *)bad + get32(record(bad, "hhea") + 8);
  hhea[34] = hhea[35] = 0xff;
  font_refused("hhea.ttf", bad, len, "metrics");
  free(bad);
  free(good);
}
END_TEST

/* The glyph outlines of a TrueType file in memory, for tests that break
 * them. */
typedef struct {
  unsigned char *glyf, *loca;
  bool long_loca;
  int n_glyphs;
} outlines;

static outlines outlines_of(unsigned char *font) {
  const unsigned char *head = font + get32(record(font, "head") + 8);
  const unsigned char *maxp = font + get32(record(font, "maxp") + 8);
  return (outlines){font + get32(record(font, "glyf") + 8),
                    font + get32(record(font, "loca") + 8), head[51] == 1,
                    maxp[4] << 8 | maxp[5]};
}

static int get16(const unsigned char *p) { return p[0] << 8 | p[1]; }

static void put16(unsigned char *p, int v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

/* Glyph g's bytes, their count in *len. */
static unsigned char *glyph_at(const outlines *o, int g, size_t *len) {
  size_t start =
      o->long_loca ? get32(o->loca + 4 * g) : 2u * get16(o->loca + 2 * g);
  size_t end = o->long_loca ? get32(o->loca + 4 * g + 4)
                            : 2u * get16(o->loca + 2 * g + 2);
  *len = end - start;
  return o->glyf + start;
}

/* The first glyph after `after` of at least `min_len` bytes that is not
 * `avoid` and, when min_contours > 0, is simple with that many contours
 * and min_points points; aborts the test if there is none. */
static int find_glyph(const outlines *o, int after, int avoid, size_t min_len,
                      int min_contours, int min_points) {
  for (int g = after + 1; g < o->n_glyphs; g++) {
    size_t len;
    const unsigned char *p = glyph_at(o, g, &len);
    if (g == avoid || len < min_len || len < 10)
      continue;
    int contours = (int16_t)get16(p);
    if (min_contours <= 0 ||
        (contours >= min_contours &&
         get16(p + 10 + 2 * (contours - 1)) + 1 >= min_points))
      return g;
  }
  ck_abort_msg("the font has no glyph to break");
  return -1;
}

static int find_empty_glyph(const outlines *o) {
  for (int g = 0; g < o->n_glyphs; g++) {
    size_t len;
    glyph_at(o, g, &len);
    if (len == 0)
      return g;
  }
  ck_abort_msg("the font has no empty glyph");
  return -1;
}

/* Rewrites glyph p (len bytes) as one contour of one point with `flag`,
 * placed by the instructions' length so that `room` bytes follow it. */
static void one_point_glyph(unsigned char *p, size_t len, int flag,
                            size_t room) {
  ck_assert_uint_ge(len, 15 + room);
  put16(p, 1);      /* contours */
  put16(p + 10, 0); /* the contour ends at point 0 */
  put16(p + 12, (int)(len - 15 - room));
  p[len - 1 - room] = (unsigned char)flag;
}

/* Rewrites glyph p (len bytes) as a composite of `count` components, the
 * glyphs `parts`, each with `flags` (and more to come but the last) and
 * byte offsets (0, 0). */
static void composite_glyph(unsigned char *p, size_t len, const int *parts,
                            int count, int flags) {
  ck_assert_uint_ge(len, 10 + 6u * count);
  put16(p, -1);
  for (int k = 0; k < count; k++) {
    unsigned char *c = p + 10 + 6 * k;
    put16(c, flags | (k + 1 < count ? 32 : 0)); /* MORE_COMPONENTS */
    put16(c + 2, parts[k]);
    c[4] = c[5] = 0;
  }
}

/* Glyph chain[k] a composite of chain[k + 1], `n` levels, the last of
 * glyph `leaf`. */
static void chain_glyphs(const outlines *o, const int *chain, int n, int leaf) {
  for (int k = 0; k < n; k++) {
    size_t len;
    int part = k + 1 < n ? chain[k + 1] : leaf;
    unsigned char *p = glyph_at(o, chain[k], &len);
    composite_glyph(p, len, &part, 1, 2);
  }
}

/* Whether the default font is there; says the test (or its rest) is
 * skipped when not. */
static bool have_default_font(const char *test) {
  if (access(APP_FONT_DEFAULT_PATH, R_OK) == 0)
    return true;
  fprintf(stderr, "%s: skipped, no %s\n", test, APP_FONT_DEFAULT_PATH);
  return false;
}

/* Glyph outlines that made stb_truetype read past the glyph and the file
 * (a SEGV drawing text), recurse until the stack ran out, or assert: each
 * font is refused when loaded, and fonts at the limits still load and
 * draw. Derived from the real font; skipped without it. */
START_TEST(test_broken_glyphs) {
  if (!have_default_font("test_broken_glyphs"))
    return;
  size_t len, n;
  unsigned char *good =
      (unsigned char *)test_slurp(APP_FONT_DEFAULT_PATH, &len);
  unsigned char *bad = malloc(len);
  ck_assert_ptr_nonnull(bad);
  /* glyphs are looked for in the real font, broken in a copy */
  memcpy(bad, good, len);
  outlines real = outlines_of(good), o = outlines_of(bad);
  int simple = find_glyph(&real, -1, -1, 18, 2, 0); /* two contours or more */
  size_t ends = 10,
         instructions = 10 + 2 * (size_t)get16(glyph_at(&real, simple, &n));
#define FRESH() memcpy(bad, good, len)
  unsigned char *p = glyph_at(&o, simple, &n);

  /* simple glyphs: counts and lengths stb_truetype reads by */
  FRESH();
  put16(p, 0x7fff);
  font_refused("contours.ttf", bad, len, "contour list runs past");
  FRESH();
  put16(p + instructions, 0xffff);
  font_refused("instructions.ttf", bad, len, "instructions run past");
  FRESH(); /* 65535 points in a few hundred bytes */
  put16(p + instructions - 2, 0xfffe);
  font_refused("points.ttf", bad, len, "run past its end");
  FRESH();
  put16(p + ends, get16(p + ends + 2));
  font_refused("ends.ttf", bad, len, "out of order");
  FRESH(); /* a long x and y: 4 bytes */
  one_point_glyph(p, n, 1, 3);
  font_refused("coordinates.ttf", bad, len, "coordinates run past");
  FRESH(); /* short x and y off the curve: stb starts it at the next point */
  one_point_glyph(p, n, 2 | 4, 2);
  font_refused("offcurve.ttf", bad, len, "one point off the curve");

  /* composite glyphs */
  int a = find_glyph(&real, -1, simple, 16, 0, 0);
  int b = find_glyph(&real, a, simple, 16, 0, 0);
  size_t na, nb;
  unsigned char *pa = glyph_at(&o, a, &na), *pb = glyph_at(&o, b, &nb);
  FRESH();
  composite_glyph(pa, na, &a, 1, 2);
  font_refused("self.ttf", bad, len, "contains itself");
  FRESH();
  composite_glyph(pa, na, &b, 1, 2);
  composite_glyph(pb, nb, &a, 1, 2);
  font_refused("cycle.ttf", bad, len, "contains itself");
  FRESH(); /* placed by matching points: stb_truetype asserts */
  composite_glyph(pa, na, &simple, 1, 0);
  font_refused("matching.ttf", bad, len, "matching points");
  FRESH();
  composite_glyph(pa, na, &o.n_glyphs, 1, 2);
  font_refused("part.ttf", bad, len, "does not have");
  FRESH(); /* as many components as fit, the last saying more follow */
  int fit = (int)((na - 10) / 6), *parts = malloc(fit * sizeof *parts);
  ck_assert_ptr_nonnull(parts);
  for (int k = 0; k < fit; k++)
    parts[k] = find_empty_glyph(&real);
  composite_glyph(pa, na, parts, fit, 2);
  put16(pa + 10 + 6 * (fit - 1), 2 | 32);
  free(parts);
  font_refused("components.ttf", bad, len, "components run past");

  /* nesting: 16 levels draw, 17 are refused */
  enum { LEVELS = 17 };
  int chain[LEVELS];
  for (int k = 0; k < LEVELS; k++)
    chain[k] = find_glyph(&real, k ? chain[k - 1] : -1, simple, 16, 0, 0);
  FRESH();
  chain_glyphs(&o, chain, LEVELS, simple);
  font_refused("deep.ttf", bad, len, "nest too deeply");
  FRESH();
  chain_glyphs(&o, chain + 1, LEVELS - 1, simple);
  char path[512];
  test_path(path, sizeof path, "deep16.ttf");
  test_write_file(path, bad, len);
  app_font *f = app_font_load(path);
  ck_assert_msg(f != NULL, "%s", loom_last_error());
  /* the top of the chain is the simple glyph, placed at (0, 0) */
  stbtt_vertex *top, *leaf;
  int n_top = stbtt_GetGlyphShape(&f->info, chain[1], &top);
  int n_leaf = stbtt_GetGlyphShape(&f->info, simple, &leaf);
  ck_assert_int_gt(n_leaf, 0);
  ck_assert_int_eq(n_top, n_leaf);
  for (int k = 0; k < n_leaf; k++)
    ck_assert(top[k].x == leaf[k].x && top[k].y == leaf[k].y &&
              top[k].type == leaf[k].type);
  stbtt_FreeShape(&f->info, top);
  stbtt_FreeShape(&f->info, leaf);
  app_font_free(f);

  /* points multiplied through nesting: each level holds the last twice */
  int big = find_glyph(&real, -1, -1, 0, 1, 300);
  int twice[9];
  for (int k = 0; k < 9; k++)
    twice[k] = find_glyph(&real, k ? twice[k - 1] : -1, big, 22, 0, 0);
  FRESH();
  for (int k = 0; k < 9; k++) {
    size_t nk;
    int part = k ? twice[k - 1] : big, two[2] = {part, part};
    unsigned char *pk = glyph_at(&o, twice[k], &nk);
    composite_glyph(pk, nk, two, 2, 2);
  }
  font_refused("points2.ttf", bad, len, "too many points");
#undef FRESH
  free(bad);
  free(good);
  f = app_font_load(APP_FONT_DEFAULT_PATH);
  ck_assert_msg(f != NULL, "%s", loom_last_error());
  app_font_free(f);
}
END_TEST

/* Draws `text` at 40 pixels with font f (NULL: the default) on a fresh
 * 120 x 60 canvas at (x, y), upright or turned; c is left to the caller. */
static void draw_40(app_canvas *c, const app_font *f, const char *text,
                    double x, double y, bool vertical) {
  ck_assert_int_eq(app_canvas_init(c, 120, 60, 0xffffff), 0);
  app_text_style st = {.font = f, .size = 40, .rgb = 0, .vertical = vertical};
  ck_assert_int_eq(app_text_draw(c, x, y, text, &st), 0);
}

static bool same_pixels(const app_canvas *a, const app_canvas *b) {
  return !memcmp(a->rgb, b->rgb, (size_t)a->w * (size_t)a->h * 3);
}

/* An outline of `n` points (x, y, type; control point cx, cy for curves)
 * in font units. */
static int outline(stbtt_vertex *v, const int (*p)[5], int n) {
  memset(v, 0, (size_t)n * sizeof *v);
  for (int i = 0; i < n; i++) {
    v[i].x = (stbtt_vertex_type)p[i][0];
    v[i].y = (stbtt_vertex_type)p[i][1];
    v[i].type = (unsigned char)p[i][2];
    v[i].cx = (stbtt_vertex_type)p[i][3];
    v[i].cy = (stbtt_vertex_type)p[i][4];
  }
  return n;
}

static long ink(const unsigned char *b, int n) {
  long sum = 0;
  for (int i = 0; i < n; i++)
    sum += b[i];
  return sum;
}

/* The glyph rasterizer (raster.c): exact covered areas, the nonzero
 * winding rule, outlines reaching far past the bitmap, and agreement with
 * stb_truetype's rasterizer run at a fine flatness on real glyphs. */
START_TEST(test_raster) {
  enum { M = STBTT_vmove, L = STBTT_vline, C = STBTT_vcurve };
  stbtt_vertex v[64];
  unsigned char b[40 * 40];
  /* a rectangle from x = 1.25 to 3.5, y = 0.75 to 2 pixels (units of 1/4
   * pixel; font y up, bitmap rows down): fractions at its edges */
  static const int rect[][5] = {
      {5, -3, M}, {14, -3, L}, {14, -8, L}, {5, -8, L}, {5, -3, L}};
  int n = outline(v, rect, 5);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.25f, 0, 0, 0, 5, 4, b), 0);
  static const unsigned char want[4][5] = {
      {0, 48, 64, 32, 0}, {0, 191, 255, 128, 0}, {0}, {0}};
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 5; i++)
      ck_assert_msg(b[j * 5 + i] == want[j][i], "(%d, %d): %d", i, j,
                    b[j * 5 + i]);
  /* the same a quarter pixel right, by shift_x, and a pixel left and up,
   * by the bitmap's offset */
  ck_assert_int_eq(app_raster_glyph(v, n, 0.25f, 0.25, 0, 0, 5, 4, b), 0);
  ck_assert(b[5 + 1] == 128 && b[5 + 2] == 255 && b[5 + 3] == 191);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.25f, 0, 1, 1, 5, 4, b), 0);
  ck_assert(b[0] == 191 && b[1] == 255 && b[2] == 128 && b[5] == 0);
  /* a triangle's ink is its area; drawn twice the same way round its
   * inside stays covered (nonzero winding; its edges darken, as with any
   * area-accumulating rasterizer), the second turned round cuts a hole */
  static const int tri[][5] = {{0, 0, M}, {60, 0, L}, {0, -90, L}, {0, 0, L}};
  n = outline(v, tri, 4);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.25f, 0.3, 0, 0, 20, 30, b), 0);
  double area = 0.5 * 15 * 22.5;
  ck_assert_msg(fabs(ink(b, 600) / 255.0 - area) < 0.5, "%ld", ink(b, 600));
  memcpy(v + n, v, (size_t)n * sizeof *v);
  ck_assert_int_eq(app_raster_glyph(v, 2 * n, 0.25f, 0.3, 0, 0, 20, 30, b), 0);
  ck_assert(b[5 * 20 + 5] == 255 && b[25 * 20 + 5] == 0);
  static const int two[][5] = {{0, 0, M},   {60, 0, L}, {0, -90, L},
                               {0, 0, L},   {4, -4, M}, {4, -20, L},
                               {20, -4, L}, {4, -4, L}};
  n = outline(v, two, 8);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.25f, 0, 0, 0, 20, 30, b), 0);
  ck_assert_int_eq(b[2 * 20 + 2], 0); /* inside the hole */
  ck_assert_int_eq(b[10 * 20 + 1], 255);
  /* a circle of radius 12 pixels from eight quadratic arcs of 45 degrees
   * (control points on the tangents' crossings): its area within a pixel */
  const double pi = 3.14159265358979323846, r = 48; /* units of 1/4 pixel */
  int k = 0;
  memset(v, 0, sizeof v);
  for (int i = 0; i <= 8; i++, k++) {
    double a = pi / 4 * i, c = a - pi / 8, rc = r / cos(pi / 8);
    v[k].type = i ? C : M;
    v[k].x = (stbtt_vertex_type)lrint(64 + r * cos(a));
    v[k].y = (stbtt_vertex_type)lrint(-64 + r * sin(a));
    v[k].cx = (stbtt_vertex_type)lrint(64 + rc * cos(c));
    v[k].cy = (stbtt_vertex_type)lrint(-64 + rc * sin(c));
  }
  ck_assert_int_eq(app_raster_glyph(v, k, 0.25f, 0, 0, 0, 32, 32, b), 0);
  ck_assert_msg(fabs(ink(b, 32 * 32) / 255.0 - pi * 144) < 1.5, "%ld",
                ink(b, 32 * 32));
  /* a rectangle reaching 10,000 pixels left and right of the bitmap */
  static const int wide[][5] = {{-32000, 0, M},
                                {32000, 0, L},
                                {32000, -8, L},
                                {-32000, -8, L},
                                {-32000, 0, L}};
  n = outline(v, wide, 5);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.3125f, 0, -4, 0, 8, 4, b), 0);
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 8; i++)
      ck_assert_int_eq(b[j * 8 + i], j < 2 ? 255 : j == 2 ? 128 : 0);

  /* the outline 2^31 pixels and more below the bitmap, or left of it:
   * nothing drawn, and no row number out of range */
  for (int i = 0; i < n; i++)
    v[i].y = (stbtt_vertex_type)(v[i].y - 8);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.3125f, 0, 0, -2147483647L, 8, 4, b),
                   0);
  ck_assert_int_eq(ink(b, 32), 0);
  ck_assert_int_eq(app_raster_glyph(v, n, 0.3125f, 0, 2147483647L, 0, 8, 4, b),
                   0);
  ck_assert_int_eq(ink(b, 32), 0);

  /* real glyphs: as stb_truetype's rasterizer computes them with its
   * curves cut 0.01 pixels fine, to a few levels */
  const app_font *f = app_font_default();
  if (!f) {
    fprintf(stderr, "test_raster: the rest skipped, no font\n");
    loom_clear_error();
    return;
  }
  int worst = 0;
  for (const char *c = "aeogQS@&H"; *c; c++) {
    int g = stbtt_FindGlyphIndex(&f->info, *c);
    stbtt_vertex *gv;
    int gn = stbtt_GetGlyphShape(&f->info, g, &gv);
    for (double size = 9; size < 40; size *= 1.7) {
      float scale = stbtt_ScaleForMappingEmToPixels(&f->info, (float)size);
      int x0, y0, x1, y1;
      stbtt_GetGlyphBitmapBoxSubpixel(&f->info, g, scale, scale, 0.375f, 0, &x0,
                                      &y0, &x1, &y1);
      int w = x1 - x0 + 2, h = y1 - y0 + 2;
      ck_assert_int_le(w * h, (int)sizeof b);
      unsigned char ref[sizeof b] = {0};
      stbtt__bitmap bm = {w, h, w, ref};
      stbtt_Rasterize(&bm, 0.01f, gv, gn, scale, scale, 0.375f, 0, x0 - 1,
                      y0 - 1, 1, NULL);
      ck_assert_int_eq(
          app_raster_glyph(gv, gn, scale, 0.375, x0 - 1, y0 - 1, w, h, b), 0);
      for (int i = 0; i < w * h; i++)
        worst = abs(b[i] - ref[i]) > worst ? abs(b[i] - ref[i]) : worst;
    }
    stbtt_FreeShape(&f->info, gv);
  }
  ck_assert_int_le(worst, 6);
}
END_TEST

/* A glyph's drawing cost is bounded before anything is drawn: an outline
 * zigzagging 4,096 times down a bitmap 32,768 rows tall took a second (a
 * font's 65,535 points on a canvas 1,024 wide, 32); past APP_RASTER_BUDGET
 * it is refused at once, touching nothing, and apps leave such a glyph out
 * of a picture, saying so once a font. Real glyphs at the largest size the
 * apps draw stay well inside the budget, and so draw exactly as before. */
START_TEST(test_raster_budget) {
  enum { W = 16, H = 32768, ZIGS = 4096 };
  stbtt_vertex *v = calloc(ZIGS, sizeof *v);
  unsigned char *b = malloc((size_t)W * H);
  ck_assert(v && b);
  /* lines from 32,000 units above the bitmap's middle to 32,000 below,
   * inside its columns */
  for (int i = 0; i < ZIGS; i++) {
    v[i].type = i ? STBTT_vline : STBTT_vmove;
    v[i].x = (stbtt_vertex_type)(i % 8);
    v[i].y = (stbtt_vertex_type)(i % 2 ? 32000 : -32000);
  }
  double cost = app_raster_cost(v, ZIGS, 1, 0, -W / 2, -H / 2, W, H);
  ck_assert_msg(cost > APP_RASTER_BUDGET, "%g", cost);
  memset(b, 7, (size_t)W * H);
  ck_assert_int_eq(app_raster_glyph(v, ZIGS, 1, 0, -W / 2, -H / 2, W, H, b), 1);
  ck_assert(b[0] == 7 && b[(size_t)W * H - 1] == 7); /* untouched */
  /* 16 of its points fit, and draw: ink in every row */
  ck_assert_double_le(app_raster_cost(v, 16, 1, 0, -W / 2, -H / 2, W, H),
                      APP_RASTER_BUDGET);
  ck_assert_int_eq(app_raster_glyph(v, 16, 1, 0, -W / 2, -H / 2, W, H, b), 0);
  for (int j = 0; j < H; j += 1000)
    ck_assert_int_gt(ink(b + (size_t)j * W, W), 0);
  /* the cost of a line wholly outside the bitmap does not grow with it */
  static const int far[][5] = {{-32000, 32000, STBTT_vmove},
                               {-32000, -32000, STBTT_vline}};
  stbtt_vertex fv[2];
  outline(fv, far, 2);
  ck_assert_double_le(app_raster_cost(fv, 2, 32, 0, 0, 0, W, H),
                      2.0 * W * H + 100);
  free(v);
  free(b);

  if (!have_default_font("test_raster_budget's font part"))
    return;
  app_font *f = app_font_load(APP_FONT_DEFAULT_PATH);
  ck_assert_msg(f != NULL, "%s", loom_last_error());
  /* every glyph whole at 512 pixels: DejaVu Sans' costliest is 1.4 M */
  float scale = stbtt_ScaleForMappingEmToPixels(&f->info, 512);
  double worst = 0;
  for (int g = 0; g < f->info.numGlyphs; g++) {
    stbtt_vertex *gv;
    int gn = stbtt_GetGlyphShape(&f->info, g, &gv);
    if (gn <= 0)
      continue;
    int x0, y0, x1, y1;
    stbtt_GetGlyphBitmapBoxSubpixel(&f->info, g, scale, scale, 0.5f, 0, &x0,
                                    &y0, &x1, &y1);
    double c = app_raster_cost(gv, gn, scale, 0.5, x0 - 1, y0 - 1, x1 - x0 + 2,
                               y1 - y0 + 2);
    worst = c > worst ? c : worst;
    stbtt_FreeShape(&f->info, gv);
  }
  ck_assert_msg(worst < APP_RASTER_BUDGET / 4, "%g", worst);
  /* 'H' at 32 pixels a unit (a font of 16 units an em at 512 pixels)
   * covers a 256 x 32,768 canvas: left out, the canvas untouched, and
   * said once; a small glyph of the same font still draws */
  app_canvas c;
  ck_assert_int_eq(app_canvas_init(&c, 256, 32768, 0xffffff), 0);
  app_text_style st = {.rgb = 0};
  int h = stbtt_FindGlyphIndex(&f->info, 'H');
  ck_assert(!atomic_load(&f->warned_costly));
  ck_assert_int_eq(app_font_draw_glyph(&c, f, 32, h, -10000, 40000, 0, &st), 1);
  ck_assert(atomic_load(&f->warned_costly));
  int x0, y0, x1, y1;
  ck_assert(!ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert_int_eq(app_font_draw_glyph(&c, f, 32, h, -10000, 40000, 0, &st), 1);
  ck_assert_int_eq(app_font_draw_glyph(&c, f, scale / 16, h, 10, 100, 0, &st),
                   0);
  ck_assert(ink_box(&c, &x0, &y0, &x1, &y1));
  ck_assert(x0 >= 10 && y1 <= 100 && y0 > 40);
  app_canvas_free(&c);
  app_font_free(f);
}
END_TEST

/* The kerning seeds (tests/fuzz/make_kerning_seeds.py), read into *len
 * bytes. */
static unsigned char *kerning_seed(const char *name, size_t *len) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/fuzz/seeds/font/%s", root ? root : ".",
           name);
  return (unsigned char *)test_slurp(path, len);
}

/* Writes a font file, loads it and returns it; fails the test if it is
 * refused. */
static app_font *font_written(const char *name, const void *data, size_t len) {
  char path[512];
  test_path(path, sizeof path, name);
  test_write_file(path, data, len);
  app_font *f = app_font_load(path);
  ck_assert_msg(f != NULL, "%s: %s", name, loom_last_error());
  return f;
}

/* Kerning as stb_truetype reads it, from GPOS pair adjustments (format 1
 * pair sets, format 2 classes) and, without GPOS, a kern table; and every
 * count or offset in them that it would follow out of the table, or a
 * lookup list making it walk thousands of subtables per pair of
 * characters, refused at load. */
START_TEST(test_kerning) {
  size_t len, klen;
  unsigned char *good = kerning_seed("abc_gpos.ttf", &len);
  unsigned char *kern = kerning_seed("abc_kern.ttf", &klen);
  app_font *f = font_written("gpos.ttf", good, len);
  /* glyphs 1, 2, 3 are a, b, c; format 1 is tried first */
  static const int gpos_pairs[][3] = {{1, 2, -50}, {2, 1, -30}, {1, 3, -20},
                                      {3, 2, -40}, {3, 3, -40}, {2, 3, 0},
                                      {2, 2, 0},   {0, 1, 0}};
  for (size_t i = 0; i < sizeof gpos_pairs / sizeof gpos_pairs[0]; i++)
    ck_assert_int_eq(
        stbtt_GetGlyphKernAdvance(&f->info, gpos_pairs[i][0], gpos_pairs[i][1]),
        gpos_pairs[i][2]);
  app_font_free(f);
  f = font_written("kern.ttf", kern, klen);
  ck_assert_int_eq(stbtt_GetGlyphKernAdvance(&f->info, 1, 2), -60);
  ck_assert_int_eq(stbtt_GetGlyphKernAdvance(&f->info, 2, 3), -10);
  ck_assert_int_eq(stbtt_GetGlyphKernAdvance(&f->info, 2, 1), 0);
  app_font_free(f);

  unsigned char *bad = malloc(len);
  ck_assert_ptr_nonnull(bad);
  memcpy(bad, good, len);
  unsigned char *gpos = bad + get32(record(bad, "GPOS") + 8);
  unsigned char *lookup = gpos + 14; /* the seed's only lookup */
  unsigned char *f1 = lookup + get16(lookup + 6),
                *f2 = lookup + get16(lookup + 8);
#define FRESH() memcpy(bad, good, len)
  FRESH();
  put16(gpos + 10, 0x7fff); /* lookups */
  font_refused("lookups.ttf", bad, len, "lookup list runs past");
  FRESH();
  put16(lookup + 4, 0x7fff); /* subtables */
  font_refused("subtables.ttf", bad, len, "subtables run past");
  FRESH();
  put16(f1 + 2, 0xfff0); /* the coverage table's offset */
  font_refused("coverage.ttf", bad, len, "coverage table lies outside");
  FRESH();
  put16(f1 + 2 + get16(f1 + 2), 0x7fff); /* covered glyphs */
  font_refused("covered.ttf", bad, len, "coverage table runs past");
  FRESH();
  put16(f1 + 8, 1); /* pair sets, for two covered glyphs */
  font_refused("sets.ttf", bad, len, "more glyphs than it has pair sets");
  FRESH();
  put16(f1 + get16(f1 + 10), 0x7fff); /* pairs in the first set */
  font_refused("pairs.ttf", bad, len, "pair set runs past");
  FRESH();
  put16(f2 + 12, 0xffff); /* first-glyph classes */
  font_refused("matrix.ttf", bad, len, "class matrix runs past");
  FRESH();
  put16(f2 + 8, 0xfff0); /* the first class table's offset */
  font_refused("classes.ttf", bad, len, "class table lies outside");
  FRESH();
  put16(f2 + get16(f2 + 10) + 2, 0x7fff); /* the second's ranges */
  font_refused("ranges.ttf", bad, len, "class table runs past");
  FRESH(); /* a version stb_truetype does not read: nothing more is */
  put16(gpos, 2);
  put16(gpos + 10, 0x7fff);
  app_font_free(font_written("version.ttf", bad, len));
  FRESH(); /* another value format: stb reads no pairs or classes */
  put16(f1 + 4, 5);
  put16(f1 + 8, 1);
  put16(f2 + 4, 5);
  put16(f2 + 12, 0xffff);
  app_font_free(font_written("value_format.ttf", bad, len));
#undef FRESH
  /* stb_truetype takes a table at offset 0 for none: a second GPOS would
   * go unread, with glyf there it would parse the font as CFF, and with
   * maxp there it would take 65,535 glyphs for the few loca holds */
  static const char *const at0[] = {"GPOS", "glyf", "maxp"};
  for (int k = 0; k < 3; k++) {
    memcpy(bad, good, len);
    put32(record(bad, at0[k]) + 8, 0);
    font_refused("offset0.ttf", bad, len, "offset 0");
  }
  free(bad);
  /* without GPOS: the kern table's pairs */
  unsigned char *k = kern + get32(record(kern, "kern") + 8);
  put16(k + 10, 0xffff);
  font_refused("kern_pairs.ttf", kern, klen, "kern table's pairs run past");
  put16(k + 8, 0x0100); /* a vertical table, which stb_truetype skips */
  app_font_free(font_written("kern_vertical.ttf", kern, klen));
  free(kern);
  free(good);

  /* the real font: its GPOS kerning draws, and 4,097 pair subtables are
   * refused */
  if (!have_default_font("test_kerning's real-font part"))
    return;
  good = (unsigned char *)test_slurp(APP_FONT_DEFAULT_PATH, &len);
  gpos = good + get32(record(good, "GPOS") + 8);
  unsigned char *list = gpos + get16(gpos + 8);
  int n = get16(list);
  for (int i = 0; i < n; i++) {
    lookup = list + get16(list + 2 + 2 * i);
    if (get16(lookup) == 2) {
      put16(lookup + 4, 4097);
      break;
    }
  }
  font_refused("many_subtables.ttf", good, len, "more than 4096 kerning");
  free(good);
}
END_TEST

/* A glyph's stored box need not hold its points: one claiming to lie
 * below the baseline made stb_truetype's rasterizer assert (an abort in
 * every app that draws). Glyphs are drawn from their points, so the lying
 * box changes nothing; and text cut by the canvas edges draws what shows
 * of it exactly as a canvas holding it whole would. */
START_TEST(test_glyph_box_and_clipping) {
  if (!have_default_font("test_glyph_box_and_clipping"))
    return;
  size_t len, n;
  unsigned char *font =
      (unsigned char *)test_slurp(APP_FONT_DEFAULT_PATH, &len);
  app_font *real = app_font_load(APP_FONT_DEFAULT_PATH);
  ck_assert_msg(real != NULL, "%s", loom_last_error());
  outlines o = outlines_of(font);
  int h = stbtt_FindGlyphIndex(&real->info, 'H');
  unsigned char *p = glyph_at(&o, h, &n);
  ck_assert_uint_ge(n, 10);
  put16(p + 4, -10); /* yMin */
  put16(p + 8, 0);   /* yMax */
  char path[512];
  test_path(path, sizeof path, "lying_box.ttf");
  test_write_file(path, font, len);
  app_font *lying = app_font_load(path);
  ck_assert_msg(lying != NULL, "%s", loom_last_error());
  app_canvas want, got;
  for (int turned = 0; turned < 2; turned++) {
    draw_40(&want, real, "HH", 10.5, turned ? 50 : 10, turned);
    draw_40(&got, lying, "HH", 10.5, turned ? 50 : 10, turned);
    ck_assert(same_pixels(&want, &got));
    int x0, y0, x1, y1;
    ck_assert(ink_box(&got, &x0, &y0, &x1, &y1));
    app_canvas_free(&want);
    app_canvas_free(&got);
  }
  app_font_free(lying);
  /* "Hgj" cut at each edge matches the whole text drawn on a canvas
   * larger by the cut, read back at the offset */
  app_text_metrics m;
  ck_assert_int_eq(app_text_measure_lines(NULL, 40, &m), 0);
  /* left, right, top, bottom, a corner; at the baseline */
  const struct {
    double x, y;
  } cuts[2][6] = {{{-17.25, 10},
                   {95.5, 10},
                   {20, -25},
                   {20, 30},
                   {-8, -20},
                   {20, -m.ascent}},
                  {{-17.25, 50},
                   {95.5, 50},
                   {20, 40},
                   {20, 90},
                   {-8, 40},
                   {-m.ascent, 50}}};
  for (int turned = 0; turned < 2; turned++)
    for (size_t k = 0; k < 6; k++) {
      app_canvas cut, whole;
      draw_40(&cut, real, "Hgj", cuts[turned][k].x, cuts[turned][k].y, turned);
      int x0, y0, x1, y1;
      ck_assert_msg(ink_box(&cut, &x0, &y0, &x1, &y1), "cut %zu turned %d", k,
                    turned);
      ck_assert_int_eq(app_canvas_init(&whole, 320, 260, 0xffffff), 0);
      app_text_style st = {.size = 40, .rgb = 0, .vertical = turned};
      ck_assert_int_eq(app_text_draw(&whole, cuts[turned][k].x + 100,
                                     cuts[turned][k].y + 100, "Hgj", &st),
                       0);
      for (int y = 0; y < cut.h; y++)
        ck_assert_msg(
            !memcmp(cut.rgb + (size_t)y * cut.w * 3,
                    whole.rgb + ((size_t)(y + 100) * whole.w + 100) * 3,
                    (size_t)cut.w * 3),
            "cut %zu turned %d: row %d differs", k, turned, y);
      app_canvas_free(&cut);
      app_canvas_free(&whole);
    }
  app_font_free(real);
  free(font);
}
END_TEST

/* ---- canvas ---- */

START_TEST(test_canvas) {
  app_canvas c;
  ck_assert_int_eq(app_canvas_init(&c, 0, 10, 0), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert_int_eq(app_canvas_init(&c, APP_CANVAS_MAX_SIDE + 1, 1, 0), -1);
  loom_clear_error();
  ck_assert_int_eq(app_canvas_init(&c, 8192, 8192, 0), -1); /* 64 M pixels */
  ck_assert(strstr(loom_last_error(), "8192 x 8192"));
  loom_clear_error();
  app_canvas_free(&c); /* harmless on a failed canvas */
  ck_assert_int_eq(app_canvas_init(&c, 40, 20, 0x123456), 0);
  ck_assert_uint_eq(pixel(&c, 39, 19), 0x123456);
  /* clipping, blending */
  app_canvas_clip(&c, 10, 5, 10, 10);
  app_fill_rect(&c, -100, -100, 1000, 1000, 0xffffff, 1);
  ck_assert_uint_eq(pixel(&c, 9, 5), 0x123456);
  ck_assert_uint_eq(pixel(&c, 10, 5), 0xffffff);
  ck_assert_uint_eq(pixel(&c, 19, 14), 0xffffff);
  ck_assert_uint_eq(pixel(&c, 20, 14), 0x123456);
  app_canvas_clip(&c, 0, 0, c.w, c.h);
  app_fill_rect(&c, 0, 0, 40, 20, 0x000000, 1);
  app_fill_rect(&c, 0, 0, 1, 1, 0xffffff, 0.5);
  ck_assert_uint_eq(pixel(&c, 0, 0), 0x808080);
  app_blend_pixel(&c, 1, 0, 0xffffff, NAN);
  ck_assert_uint_eq(pixel(&c, 1, 0), 0);
  /* a polyline through a middle point blends each pixel once: the same
   * pixels as one straight line */
  app_canvas d;
  ck_assert_int_eq(app_canvas_init(&d, 40, 20, 0), 0);
  app_fill_rect(&c, 0, 0, 40, 20, 0, 1);
  app_draw_line(&c, 2.5, 10.3, 37.5, 10.3, 1.5, 0xffffff);
  ck_assert_int_eq(app_draw_polyline(&d, (double[]){2.5, 20, 37.5},
                                     (double[]){10.3, 10.3, 10.3}, 3, 1.5,
                                     0xffffff),
                   0);
  ck_assert_mem_eq(c.rgb, d.rgb, 40 * 20 * 3);
  ck_assert_uint_eq(pixel(&c, 20, 10), 0xffffff);
  ck_assert_uint_gt(pixel(&c, 20, 11), 0);
  ck_assert_uint_lt(pixel(&c, 20, 11), 0xffffff);
  ck_assert_uint_eq(pixel(&c, 20, 5), 0);
  /* non-finite points break a polyline and draw nothing themselves */
  app_fill_rect(&d, 0, 0, 40, 20, 0, 1);
  ck_assert_int_eq(app_draw_polyline(&d, (double[]){NAN, INFINITY, 1e300},
                                     (double[]){1, 2, 1e300}, 3, 2, 0xffffff),
                   0);
  for (int i = 0; i < 40 * 20 * 3; i++)
    ck_assert_uint_eq(d.rgb[i], 0);
  /* a point between breaks is a dot */
  ck_assert_int_eq(app_draw_polyline(&d, (double[]){NAN, 30.5, 2},
                                     (double[]){1, 10.5, NAN}, 3, 2, 0xffffff),
                   0);
  ck_assert_uint_eq(pixel(&d, 30, 10), 0xffffff);
  ck_assert_uint_eq(pixel(&d, 31, 11), 0xffffff);
  ck_assert_uint_eq(pixel(&d, 30, 14), 0);
  /* blits: nearest repeats pixels, smooth keeps a flat colour flat */
  const unsigned char img[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9};
  ck_assert_int_eq(app_blit(&d, img, 2, 2, 4, 4, 4, 4, APP_SCALE_NEAREST), 0);
  ck_assert_uint_eq(pixel(&d, 4, 4), 0xff0000);
  ck_assert_uint_eq(pixel(&d, 5, 5), 0xff0000);
  ck_assert_uint_eq(pixel(&d, 6, 4), 0x00ff00);
  ck_assert_uint_eq(pixel(&d, 7, 7), 0x090909);
  unsigned char flat[5 * 3 * 3];
  memset(flat, 77, sizeof flat);
  ck_assert_int_eq(app_blit(&d, flat, 5, 3, 10, 0, 17, 9, APP_SCALE_SMOOTH), 0);
  ck_assert_uint_eq(pixel(&d, 18, 4), 0x4d4d4d);
  ck_assert_int_eq(app_blit(&d, flat, 0, 3, 10, 0, 17, 9, APP_SCALE_SMOOTH),
                   -1);
  loom_clear_error();
  /* written PNGs read back equal; a failed write leaves nothing */
  char path[512];
  test_path(path, sizeof path, "canvas.png");
  ck_assert_int_eq(app_canvas_write_png(&d, path), 0);
  int w, h;
  unsigned char *back = read_png(path, &w, &h);
  ck_assert_int_eq(w, 40);
  ck_assert_int_eq(h, 20);
  ck_assert_mem_eq(back, d.rgb, 40 * 20 * 3);
  free(back);
  ck_assert_int_eq(app_canvas_write_png(&d, "/nonexistent-dir/c.png"), -1);
  ck_assert(strstr(loom_last_error(), "/nonexistent-dir/c.png"));
  loom_clear_error();
  app_canvas_free(&c);
  app_canvas_free(&d);
}
END_TEST

/* ---- colours, heatmaps, sheets ---- */

static double luminance(uint32_t c) {
  return 0.2126 * (c >> 16) + 0.7152 * ((c >> 8) & 0xff) + 0.0722 * (c & 0xff);
}

START_TEST(test_colormap) {
  for (int i = 1; i <= 20; i++)
    ck_assert_msg(luminance(app_colormap(i / 20.0)) >
                      luminance(app_colormap((i - 1) / 20.0)) + 3,
                  "the ramp does not brighten at %d/20", i);
  ck_assert_uint_eq(app_colormap(-5), app_colormap(0));
  ck_assert_uint_eq(app_colormap(7), app_colormap(1));
  uint32_t nan = app_colormap(NAN);
  ck_assert_uint_eq(nan >> 16, nan & 0xff); /* grey */
  ck_assert(luminance(app_colormap(0)) < 60);
  ck_assert(luminance(app_colormap(1)) > 200);
}
END_TEST

static long count_colour(const unsigned char *px, int w, int h, uint32_t c) {
  long n = 0;
  for (long i = 0; i < (long)w * h; i++)
    n += ((uint32_t)px[3 * i] << 16 | (uint32_t)px[3 * i + 1] << 8 |
          px[3 * i + 2]) == c;
  return n;
}

START_TEST(test_heatmap) {
  char path[512];
  test_path(path, sizeof path, "heat.png");
  const float v[6] = {0, 1, 0.5f, NAN, 2, -1};
  const char *rows[2] = {"Straße", "über"};
  const char *cols[3] = {"a", "much longer token", NULL};
  app_heatmap hm = {v, 2, 3, rows, cols, "attention", true, false, false};
  int w, h, pw, ph;
  ck_assert_int_eq(app_heatmap_size(&hm, &w, &h), 0);
  ck_assert_int_eq(app_heatmap_png(path, &hm), 0);
  unsigned char *px = read_png(path, &pw, &ph);
  ck_assert_int_eq(pw, w);
  ck_assert_int_eq(ph, h);
  /* cells in [0, 1]: 2 clamps to 1 and -1 to 0; NaN is grey */
  long top = count_colour(px, pw, ph, app_colormap(1));
  long bottom = count_colour(px, pw, ph, app_colormap(0));
  ck_assert_int_gt(count_colour(px, pw, ph, app_colormap(0.5)), 400);
  ck_assert_int_gt(count_colour(px, pw, ph, app_colormap(NAN)), 400);
  ck_assert_int_gt(top, 2 * 400);
  ck_assert_int_gt(bottom, 2 * 400);
  free(px);
  /* longer labels and more rows make it larger; no labels, smaller */
  const char *long_rows[2] = {"a considerably longer row label", "x"};
  app_heatmap longer = hm;
  longer.row_labels = long_rows;
  int lw, lh;
  ck_assert_int_eq(app_heatmap_size(&longer, &lw, &lh), 0);
  ck_assert_int_gt(lw, w + 50);
  ck_assert_int_eq(lh, h);
  app_heatmap bare = {v, 2, 3, NULL, NULL, NULL, false, false, false};
  int bw, bh;
  ck_assert_int_eq(app_heatmap_size(&bare, &bw, &bh), 0);
  ck_assert_int_lt(bw, w);
  ck_assert_int_lt(bh, h);
  /* auto scale: the ramp spans -1..2, so 0.5 is mid-ramp */
  hm.auto_scale = true;
  test_path(path, sizeof path, "heat-auto.png");
  ck_assert_int_eq(app_heatmap_png(path, &hm), 0);
  px = read_png(path, &pw, &ph);
  ck_assert_int_gt(count_colour(px, pw, ph, app_colormap(0.5)), 400);
  ck_assert_int_gt(count_colour(px, pw, ph, app_colormap(1.0 / 3)), 400);
  free(px);
  /* a large matrix gets small cells and stays a sane size */
  float *big = calloc(1000 * 1000, sizeof *big);
  ck_assert_ptr_nonnull(big);
  app_heatmap large = {big, 1000, 1000, NULL, NULL, NULL, true, false, false};
  ck_assert_int_eq(app_heatmap_size(&large, &w, &h), 0);
  ck_assert_int_lt(w, 1200);
  ck_assert_int_lt(h, 1200);
  free(big);
  /* bad sizes */
  app_heatmap none = {NULL, 2, 3, NULL, NULL, NULL, false, false, false};
  test_path(path, sizeof path, "heat-bad.png");
  ck_assert_int_eq(app_heatmap_png(path, &none), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
  ck_assert(!exists(path));
}
END_TEST

START_TEST(test_contact_sheet) {
  char path[512];
  test_path(path, sizeof path, "sheet.png");
  unsigned char red[10 * 10 * 3], wide[40 * 10 * 3];
  for (int i = 0; i < 100; i++) {
    red[3 * i] = 220;
    red[3 * i + 1] = red[3 * i + 2] = 20;
  }
  for (int i = 0; i < 400; i++) {
    wide[3 * i] = 40;
    wide[3 * i + 1] = 90;
    wide[3 * i + 2] = 160;
  }
  const char *short_text[1] = {"a red square"};
  const char *long_text[2] = {
      "a generated caption long enough to wrap over several lines of the cell",
      "reference: a square that is red"};
  uint32_t colours[2] = {0x222222, 0x0000c0};
  app_sheet_item items[5];
  for (int i = 0; i < 5; i++)
    items[i] = (app_sheet_item){red, 10, 10, short_text, NULL, 1};
  items[1] = (app_sheet_item){wide, 40, 10, long_text, colours, 2};
  ck_assert_int_eq(app_contact_sheet_png(path, "sheet", items, 5, 3, 100), 0);
  int w, h;
  unsigned char *px = read_png(path, &w, &h);
  ck_assert_int_eq(w, 2 * 14 + 3 * 100 + 2 * 14);
  ck_assert_int_gt(h, 2 * 100 + 60);
  /* four red squares of 100 x 100 and the wide image letterboxed */
  ck_assert_int_eq(count_colour(px, w, h, 0xdc1414), 4 * 100 * 100);
  ck_assert_int_eq(count_colour(px, w, h, 0x285aa0), 100 * 25);
  long blue = 0; /* the reference line's ink */
  for (long i = 0; i < (long)w * h; i++)
    blue += px[3 * i + 2] > px[3 * i] + 60 && px[3 * i] == px[3 * i + 1];
  ck_assert_int_gt(blue, 100);
  free(px);
  /* only short text: shorter rows */
  items[1] = items[0];
  ck_assert_int_eq(app_contact_sheet_png(path, "sheet", items, 5, 3, 100), 0);
  int h2;
  free(read_png(path, &w, &h2));
  ck_assert_int_lt(h2, h);
  /* bad input */
  items[2].rgb = NULL;
  ck_assert_int_eq(app_contact_sheet_png(path, NULL, items, 5, 3, 100), -1);
  ck_assert(strstr(loom_last_error(), "image 2"));
  loom_clear_error();
  ck_assert_int_eq(app_contact_sheet_png(path, NULL, items, 0, 3, 100), -1);
  loom_clear_error();
}
END_TEST

START_TEST(test_attention_strip) {
  char path[512];
  test_path(path, sizeof path, "strip.png");
  unsigned char img[8 * 8 * 3];
  memset(img, 200, sizeof img);
  /* word 0 looks at the top left, word 1 at the bottom right, word 2
   * nowhere */
  float maps[3 * 2 * 2] = {1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  const char *words[3] = {"a", "dog", NULL};
  ck_assert_int_eq(app_attention_strip_png(path, "a dog", img, 8, 8, maps, 2, 2,
                                           words, 3, 2, 64),
                   0);
  int w, h;
  unsigned char *px = read_png(path, &w, &h);
  ck_assert_int_eq(w, 2 * 14 + 2 * 64 + 14);
  ck_assert_int_gt(h, 2 * 64 + 14);
  /* frame 0 (at x 14, below the title) is lit top left, frame 1 bottom
   * right */
  int y0 = -1;
  for (int y = 0; y < h && y0 < 0; y++)
    if (px[3 * ((size_t)y * w + 20)] != 255)
      y0 = y;
  ck_assert_int_gt(y0, 14);
#define AT(x, y) px[3 * ((size_t)(y)*w + (x))]
  ck_assert_int_gt(AT(14 + 4, y0 + 4), AT(14 + 60, y0 + 60) + 40);
  ck_assert_int_gt(AT(92 + 60, y0 + 60), AT(92 + 4, y0 + 4) + 40);
#undef AT
  free(px);
  ck_assert_int_eq(app_attention_strip_png(path, NULL, img, 8, 8, maps, 0, 2,
                                           words, 3, 2, 64),
                   -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_ARGUMENT);
  loom_clear_error();
}
END_TEST

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "missing-font"))
    return missing_font_child(argv[2]);
  if (argc == 3 && !strcmp(argv[1], "threads"))
    return threads_child();
  if (test_dir_make("picture") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("picture");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_plot_hostile_data);
  tcase_add_test(tc, test_plot_panels_and_errors);
  tcase_add_test(tc, test_ticks);
  tcase_add_test(tc, test_text_ink_and_measures);
  tcase_add_test(tc, test_text_vertical_and_colour);
  tcase_add_test(tc, test_text_wrap);
  tcase_add_test(tc, test_missing_font_is_an_error);
  tcase_add_test(tc, test_threads_share_the_font);
  tcase_add_test(tc, test_broken_font_files);
  tcase_add_test(tc, test_broken_glyphs);
  tcase_add_test(tc, test_glyph_box_and_clipping);
  tcase_add_test(tc, test_kerning);
  tcase_add_test(tc, test_raster);
  tcase_add_test(tc, test_raster_budget);
  tcase_add_test(tc, test_canvas);
  tcase_add_test(tc, test_colormap);
  tcase_add_test(tc, test_heatmap);
  tcase_add_test(tc, test_contact_sheet);
  tcase_add_test(tc, test_attention_strip);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
