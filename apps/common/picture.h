/* The apps' drawing layer: an RGB canvas written as PNG, text in a real
 * TrueType font (stb_truetype, DejaVu Sans), line plots with several panels,
 * attention heatmaps, contact sheets of captioned images and attention
 * strips.
 *
 * Colours are 0xRRGGBB. Errors are reported the library's way: a function
 * that fails returns -1 (or NULL) and records a message with loom_set_error
 * (loom_last_error reads it); a picture that failed is not written. Every
 * size is checked before anything is allocated. The functions may be called
 * from several threads at once on different canvases. */
#ifndef LOOM_APPS_PICTURE_H
#define LOOM_APPS_PICTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- canvas */

/* An RGB image, 3 bytes a pixel, rows top to bottom. Drawing is limited to
 * the clip rectangle [clip_x0, clip_x1) x [clip_y0, clip_y1). */
typedef struct {
  int w, h;
  unsigned char *rgb;
  int clip_x0, clip_y0, clip_x1, clip_y1;
} app_canvas;

/* The largest canvas: APP_CANVAS_MAX_SIDE on a side and
 * APP_CANVAS_MAX_PIXELS in all (32 M pixels, 96 MiB). */
#define APP_CANVAS_MAX_SIDE 32768
#define APP_CANVAS_MAX_PIXELS (INT64_C(1) << 25)

/* Makes a w x h canvas filled with `background`. 0, or -1 with
 * LOOM_ERR_ARGUMENT for a size outside 1..APP_CANVAS_MAX_SIDE or more than
 * APP_CANVAS_MAX_PIXELS pixels, LOOM_ERR_MEMORY when allocation fails (c is
 * then empty and app_canvas_free is harmless). */
int app_canvas_init(app_canvas *c, int w, int h, uint32_t background);
/* Frees the pixels (NULL-safe, idempotent). */
void app_canvas_free(app_canvas *c);
/* Limits drawing to the rectangle (x, y, w, h) intersected with the canvas;
 * app_canvas_clip(c, 0, 0, c->w, c->h) lifts the limit. */
void app_canvas_clip(app_canvas *c, int x, int y, int w, int h);

/* Blends `rgb` with weight alpha (0..1, clamped; NaN draws nothing) into
 * one pixel, if it is inside the clip rectangle. */
void app_blend_pixel(app_canvas *c, int x, int y, uint32_t rgb, double alpha);
/* Fills the rectangle (x, y, w, h), blended with weight alpha. */
void app_fill_rect(app_canvas *c, int x, int y, int w, int h, uint32_t rgb,
                   double alpha);
/* Strokes the rectangle's outline, `width` pixels inside its edge. */
void app_stroke_rect(app_canvas *c, int x, int y, int w, int h, int width,
                     uint32_t rgb);

/* An anti-aliased line `width` pixels wide with round ends, between pixel
 * centres given in pixel coordinates (pixel (i, j) covers [i, i+1) x
 * [j, j+1), so its centre is (i + 0.5, j + 0.5)). Non-finite coordinates
 * draw nothing. */
void app_draw_line(app_canvas *c, double x0, double y0, double x1, double y1,
                   double width, uint32_t rgb);
/* The same for the n points' connected segments, each pixel blended once
 * (joins are not darker). Points with a non-finite coordinate break the
 * line; a point with no neighbour is drawn as a dot 2.5 widths across.
 * 0, or -1 with LOOM_ERR_MEMORY. */
int app_draw_polyline(app_canvas *c, const double *x, const double *y, int n,
                      double width, uint32_t rgb);

/* How app_blit scales. SMOOTH filters (stb_image_resize: no aliasing when
 * shrinking); NEAREST keeps small images' pixels square. */
typedef enum { APP_SCALE_SMOOTH, APP_SCALE_NEAREST } app_scale;
/* Draws the w x h RGB image `rgb` (3 bytes a pixel, rows top to bottom)
 * scaled to the rectangle (x, y, dw, dh). 0, or -1 with LOOM_ERR_ARGUMENT
 * for a size below 1 or above the canvas limits, LOOM_ERR_MEMORY. */
int app_blit(app_canvas *c, const unsigned char *rgb, int w, int h, int x,
             int y, int dw, int dh, app_scale scale);

/* Writes the canvas as a PNG file through a temporary file in the same
 * folder renamed over `path`, so a failure leaves no partial file. 0, or -1
 * with LOOM_ERR_IO naming the path and the reason. */
int app_canvas_write_png(const app_canvas *c, const char *path);

/* ------------------------------------------------------------------- font */

/* A TrueType font. Font files are trusted system data: app_font_load
 * checks that the file is a TrueType font whose tables, glyph locations and
 * metrics lie inside the file, which catches a truncated or wrong file, but
 * stb_truetype does not guard against a crafted one. */
typedef struct app_font app_font;

/* Loads a TrueType font (.ttf, or the first font of a .ttc). The caller
 * frees it with app_font_free. NULL with LOOM_ERR_IO when the file cannot
 * be read, LOOM_ERR_FORMAT naming the path and what is wrong. */
app_font *app_font_load(const char *path);
void app_font_free(app_font *f);
/* The pictures' font: the file named by the environment variable LOOM_FONT,
 * else APP_FONT_DEFAULT_PATH. Loaded on first use, once per process (safe
 * from several threads); it lives until the process ends. NULL, with an
 * error naming the path and saying to install fonts-dejavu-core or set
 * LOOM_FONT, when it cannot be loaded (every later call fails the same
 * way). */
const app_font *app_font_default(void);
#define APP_FONT_DEFAULT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

/* ------------------------------------------------------------------- text */

/* Strings are UTF-8. A character the font lacks draws as the font's
 * .notdef glyph (a box); an invalid byte sequence draws U+FFFD; control
 * characters draw nothing (a tab draws as a space). Kerning pairs of the
 * font are applied. */

typedef enum { APP_ALIGN_LEFT, APP_ALIGN_CENTER, APP_ALIGN_RIGHT } app_align;
/* Where y falls on the line: the top of the line box (ascent), the middle
 * of capital letters and digits, or the baseline. */
typedef enum {
  APP_VALIGN_TOP,
  APP_VALIGN_MIDDLE,
  APP_VALIGN_BASELINE
} app_valign;

typedef struct {
  const app_font *font; /* NULL: app_font_default() */
  double size;          /* em size in pixels, 1..512 (13 reads well) */
  uint32_t rgb;         /* the ink, blended by the glyphs' coverage */
  app_align align;      /* where x falls along the line */
  app_valign valign;
  /* Turned 90 degrees counter-clockwise: the text reads upwards, and the
   * roles of x and y swap (y runs along the line, `align` left means the
   * text starts at y and rises from it; x is across it, the top of the
   * letters facing left). */
  bool vertical;
} app_text_style;

/* Vertical measures of a line at an em size, in pixels. */
typedef struct {
  double ascent;      /* baseline to the top of the line box */
  double descent;     /* baseline to the bottom (positive) */
  double line_height; /* baseline to baseline */
  double cap_height;  /* baseline to the top of capitals */
} app_text_metrics;

/* Metrics of `font` (NULL: the default) at em size `size`. 0, or -1 with
 * the font's error or LOOM_ERR_ARGUMENT for a size outside 1..512. */
int app_text_measure_lines(const app_font *font, double size,
                           app_text_metrics *m);
/* The advance width in pixels of `text` on one line (the sum of glyph
 * advances and kerning: where the next character would start). -1 with an
 * error as above. */
double app_text_width(const app_font *font, const char *text, double size);
/* Draws one line of `text` at (x, y) in style s (a newline ends it). 0, or
 * -1 with an error as above (nothing is drawn). */
int app_text_draw(app_canvas *c, double x, double y, const char *text,
                  const app_text_style *s);
/* As app_text_draw, but shortened with "…" to fit max_width pixels (as
 * much of the text as fits, at least nothing and the ellipsis). Returns the
 * width drawn, or -1 with an error as above. */
double app_text_draw_fit(app_canvas *c, double x, double y, const char *text,
                         const app_text_style *s, double max_width);

/* A line of wrapped text: `len` bytes of the text from byte `start`. */
typedef struct {
  size_t start, len;
} app_text_span;
/* Breaks `text` into lines no wider than max_width pixels at em size
 * `size`: at spaces, at newlines, and inside a word only where the word
 * alone is too wide (each line holds at least one character). Spaces at a
 * break are dropped. Fills at most max_lines spans and returns how many;
 * *truncated (may be NULL) says whether text remained. Linear in the
 * text's length. -1 with an error as above. */
int app_text_wrap(const app_font *font, const char *text, double size,
                  double max_width, app_text_span *lines, int max_lines,
                  bool *truncated);
/* Draws `text` wrapped to max_width in at most max_lines lines (the last
 * ends with "…" when text remained), the first line's box top at y, each
 * line aligned about x as s->align says (s->valign and s->vertical are
 * ignored). Returns the number of lines drawn, or -1 with an error. */
int app_text_draw_wrapped(app_canvas *c, double x, double y, const char *text,
                          const app_text_style *s, double max_width,
                          int max_lines);

/* ------------------------------------------------------------- line plots */

/* One curve: n points (x[i], y[i]); x may be NULL (then x = 0, 1, ...).
 * Points with a non-finite coordinate (and on a log axis, one <= 0) are
 * skipped and break the line. */
typedef struct {
  const char *name; /* legend text; NULL or "": not in the legend */
  const double *x, *y;
  int n;
  uint32_t rgb;
} app_series;

#define APP_PLOT_MAX_SERIES 8

/* One plot: its own axes, title and legend. */
typedef struct {
  const char *title, *xlabel, *ylabel; /* each may be NULL */
  const app_series *series;
  int n_series; /* 0..APP_PLOT_MAX_SERIES */
  bool log_y;   /* a logarithmic y axis */
  bool log_x;   /* a logarithmic x axis */
} app_panel;

/* Draws n_panels plots into one PNG, `columns` a row (rows follow), each
 * panel_w x panel_h pixels (at least 200 x 150), under an optional overall
 * title. Any data plots in bounded time: at most 20 ticks an axis; a range
 * too narrow for distinct tick labels (all values equal, or a spread below
 * 1e-9 of their size) is widened when it can be and drawn flat at one
 * labelled value otherwise; no data gives empty axes. 0, or -1 with
 * LOOM_ERR_ARGUMENT (bad counts or sizes, a series with n < 0 or no y),
 * the font's error, or LOOM_ERR_IO/LOOM_ERR_MEMORY; the file is then not
 * written. */
int app_plot_panels_png(const char *path, const char *title,
                        const app_panel *panels, int n_panels, int columns,
                        int panel_w, int panel_h);
/* One panel of up to APP_PLOT_MAX_SERIES series, width x height pixels. */
int app_plot_png(const char *path, const char *title, const char *xlabel,
                 const char *ylabel, const app_series *series, int n_series,
                 int width, int height);

/* ------------------------------------------------------------ axis ticks */

#define APP_TICKS_MAX 20

/* The ticks of one axis. Values are in data units; positions on a log axis
 * are log10 of them. */
typedef struct {
  double lo, hi; /* the axis' range (log axes: log10 of it) */
  bool flat;     /* the range collapsed: data sits at one labelled value */
  bool log;
  int n; /* 0..APP_TICKS_MAX */
  double value[APP_TICKS_MAX];
  char label[APP_TICKS_MAX][32];
} app_ticks;

/* Chooses a range and at most `target` (2..APP_TICKS_MAX) "nice" ticks (1,
 * 2 or 5 times a power of ten; on a log axis powers of ten when the data
 * spans a decade) for data in [lo, hi] (finite, lo <= hi; log: positive;
 * lo > hi means no data). pad adds that fraction of the span on each side.
 * Bounded time for any input. */
void app_ticks_fit(app_ticks *t, double lo, double hi, int target, bool log,
                   double pad);
/* Where value v falls on the axis, 0 at lo and 1 at hi (0.5 when flat). */
double app_ticks_position(const app_ticks *t, double v);

/* ------------------------------------------------------------ colour maps */

/* The heat ramp: t in [0, 1] (clamped; NaN gives grey) to a colour, from
 * dark violet through blue, teal and green to light yellow, with lightness
 * rising evenly (a ramp defined in the OKLab colour space, so equal steps
 * of t look like equal steps). */
uint32_t app_colormap(double t);

/* --------------------------------------------------------------- heatmaps */

/* A rows x cols matrix of weights (row-major floats), e.g. attention of
 * target tokens (rows) over source tokens (columns). */
typedef struct {
  const float *values;
  int rows, cols;                /* 1..4096 each */
  const char *const *row_labels; /* rows UTF-8 strings, or NULL */
  const char *const *col_labels; /* cols strings, or NULL */
  const char *title;             /* NULL: none */
  bool colorbar;                 /* a colour bar with ticks on the right */
  /* false: values clamp to [0, 1]; true: the ramp spans the finite values'
   * [min, max]. Non-finite values draw as grey cells. */
  bool auto_scale;
  bool labels_below; /* column labels under the matrix instead of above */
} app_heatmap;

/* Draws the heatmap as a PNG: cells sized from the matrix size (large
 * matrices get small cells and every k-th label), column labels turned to
 * read upwards, labels longer than 240 pixels shortened with "…". 0, or -1
 * with LOOM_ERR_ARGUMENT (sizes, NULL values), the font's error,
 * LOOM_ERR_MEMORY or LOOM_ERR_IO; the file is then not written. The
 * image's size is app_heatmap_size's. */
int app_heatmap_png(const char *path, const app_heatmap *h);
/* The pixel size app_heatmap_png draws h at. 0, or -1 with an error. */
int app_heatmap_size(const app_heatmap *h, int *width, int *height);

/* ----------------------------------------------- contact sheets and strips */

/* One image of a contact sheet: w x h RGB pixels (3 bytes a pixel, rows
 * top to bottom) and n_lines lines of text under it, each wrapped to the
 * cell's width (at most 4 lines each). colors[i] is line i's colour (NULL:
 * all dark grey). */
typedef struct {
  const unsigned char *rgb;
  int w, h;
  const char *const *lines;
  const uint32_t *colors;
  int n_lines;
} app_sheet_item;

/* Draws n items in a grid of `columns`, each image scaled (aspect kept,
 * centred) into a cell x cell square (16..2048) with its text under it;
 * each row as tall as its tallest text. 0, or -1 with LOOM_ERR_ARGUMENT
 * (counts, sizes, NULL images), the font's error, LOOM_ERR_MEMORY or
 * LOOM_ERR_IO; the file is then not written. */
int app_contact_sheet_png(const char *path, const char *title,
                          const app_sheet_item *items, int n, int columns,
                          int cell);

/* Where a model looked while writing each word: the w x h RGB image once
 * per word, scaled to frame x frame pixels (16..2048), with word i's
 * attention map (weights + i*map_h*map_w, row-major, map_h x map_w)
 * upsampled bilinearly and blended over it (each map scaled by its own
 * maximum: light where the weight is high, the image dimmed where it is
 * low), the word under each frame, `columns` frames a row, under an
 * optional title (e.g. the whole caption). 0, or -1 with an error as
 * app_contact_sheet_png. */
int app_attention_strip_png(const char *path, const char *title,
                            const unsigned char *rgb, int w, int h,
                            const float *weights, int map_h, int map_w,
                            const char *const *words, int n_words, int columns,
                            int frame);

#endif
