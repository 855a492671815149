/* Heatmaps of a weight matrix (attention of target tokens over source
 * tokens): coloured cells, row labels on the left, column labels turned
 * upwards above or below, a title and a colour bar. */
#include "picture.h"

#include <loom/loom.h>
#include <math.h>
#include <string.h>

#define INK 0x222222u
#define MUTED 0x555555u
#define MAX_LABEL 240 /* pixels; longer labels end in an ellipsis */
#define MARGIN 14
#define GAP 6 /* between labels and cells */
#define BAR_W 16

enum { TITLE_SIZE = 15, TICK_SIZE = 12 };

/* Where everything goes, from the matrix size and the labels' widths. */
typedef struct {
  int cell, label_size, label_every; /* draw every k-th label */
  int row_label_w, col_label_h, title_h, bar_w;
  int grid_x, grid_y, grid_w, grid_h, width, height;
  app_ticks ticks; /* the colour scale */
} layout;

static const char *label_at(const char *const *labels, int i) {
  return labels && labels[i] ? labels[i] : "";
}

static int widest(const char *const *labels, int n, double size, int every,
                  int *w) {
  double m = 0;
  for (int i = 0; labels && i < n; i += every) {
    double lw = app_text_width(NULL, label_at(labels, i), size);
    if (lw < 0)
      return -1;
    m = fmax(m, lw);
  }
  *w = (int)ceil(fmin(m, MAX_LABEL));
  return 0;
}

static int plan(const app_heatmap *h, layout *L) {
  if (!h || !h->values || h->rows < 1 || h->cols < 1 || h->rows > 4096 ||
      h->cols > 4096) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "heatmap: %d x %d values%s (1..4096 rows and columns)",
                   h ? h->rows : 0, h ? h->cols : 0,
                   h && h->values ? "" : " (none given)");
    return -1;
  }
  *L = (layout){0};
  int most = h->rows > h->cols ? h->rows : h->cols;
  L->cell = 800 / most;
  L->cell = L->cell > 44 ? 44 : L->cell < 1 ? 1 : L->cell;
  if (most <= 50 && L->cell < 18) /* each label its own line */
    L->cell = 18;
  L->label_size = L->cell >= 16 ? 12 : 11;
  app_text_metrics m, tm;
  if (app_text_measure_lines(NULL, L->label_size, &m) < 0 ||
      app_text_measure_lines(NULL, TITLE_SIZE, &tm) < 0)
    return -1;
  L->label_every = (int)ceil(m.line_height / L->cell);
  if (widest(h->row_labels, h->rows, L->label_size, L->label_every,
             &L->row_label_w) < 0 ||
      widest(h->col_labels, h->cols, L->label_size, L->label_every,
             &L->col_label_h) < 0)
    return -1;
  L->row_label_w += h->row_labels ? GAP : 0;
  L->col_label_h += h->col_labels ? GAP : 0;
  L->title_h = h->title && *h->title ? (int)ceil(tm.line_height) + 8 : 0;
  L->grid_w = h->cols * L->cell;
  L->grid_h = h->rows * L->cell;
  /* the colour scale: [0, 1] or the finite values' range */
  double lo = 0, hi = 1;
  if (h->auto_scale) {
    lo = INFINITY;
    hi = -INFINITY;
    for (size_t i = 0; i < (size_t)h->rows * (size_t)h->cols; i++)
      if (isfinite(h->values[i])) {
        lo = fmin(lo, h->values[i]);
        hi = fmax(hi, h->values[i]);
      }
  }
  int bar_h = L->grid_h > 140 ? L->grid_h : 140;
  app_ticks_fit(&L->ticks, lo, hi, bar_h / 60, false, 0);
  if (h->colorbar) {
    int tick_w = 0;
    for (int i = 0; i < L->ticks.n; i++) {
      double w = app_text_width(NULL, L->ticks.label[i], TICK_SIZE);
      if (w < 0)
        return -1;
      tick_w = tick_w > (int)ceil(w) ? tick_w : (int)ceil(w);
    }
    L->bar_w = 2 * MARGIN + BAR_W + 6 + tick_w;
  }
  L->grid_x = MARGIN + L->row_label_w;
  L->grid_y = MARGIN + L->title_h + (h->labels_below ? 0 : L->col_label_h);
  int body = L->grid_h + (h->labels_below ? L->col_label_h : 0);
  int bar =
      h->colorbar ? bar_h + (L->ticks.n ? (int)ceil(m.line_height) : 0) : 0;
  L->width = L->grid_x + L->grid_w + (h->colorbar ? L->bar_w : MARGIN);
  L->height = L->grid_y + (body > bar ? body : bar) + MARGIN;
  /* the title must fit too */
  if (L->title_h) {
    double tw = app_text_width(NULL, h->title, TITLE_SIZE);
    if (tw < 0)
      return -1;
    int need = (int)ceil(fmin(tw, 1200)) + 2 * MARGIN;
    L->width = L->width > need ? L->width : need;
  }
  return 0;
}

int app_heatmap_size(const app_heatmap *h, int *width, int *height) {
  layout L;
  if (plan(h, &L) < 0)
    return -1;
  *width = L.width;
  *height = L.height;
  return 0;
}

static int draw_labels(app_canvas *c, const app_heatmap *h, const layout *L) {
  app_text_style st = {.size = L->label_size,
                       .rgb = INK,
                       .align = APP_ALIGN_RIGHT,
                       .valign = APP_VALIGN_MIDDLE};
  for (int i = 0; h->row_labels && i < h->rows; i += L->label_every)
    if (app_text_draw_fit(c, L->grid_x - GAP, L->grid_y + (i + 0.5) * L->cell,
                          label_at(h->row_labels, i), &st, MAX_LABEL) < 0)
      return -1;
  /* column labels read upwards, anchored at the grid */
  st.vertical = true;
  st.align = h->labels_below ? APP_ALIGN_RIGHT : APP_ALIGN_LEFT;
  double y = h->labels_below ? L->grid_y + L->grid_h + GAP : L->grid_y - GAP;
  for (int j = 0; h->col_labels && j < h->cols; j += L->label_every)
    if (app_text_draw_fit(c, L->grid_x + (j + 0.5) * L->cell, y,
                          label_at(h->col_labels, j), &st, MAX_LABEL) < 0)
      return -1;
  return 0;
}

static int draw_colorbar(app_canvas *c, const layout *L) {
  int x = L->grid_x + L->grid_w + MARGIN, y = L->grid_y;
  int bar_h = L->grid_h > 140 ? L->grid_h : 140;
  for (int j = 0; j < bar_h; j++)
    app_fill_rect(c, x, y + j, BAR_W, 1, app_colormap(1 - (j + 0.5) / bar_h),
                  1);
  app_stroke_rect(c, x, y, BAR_W, bar_h, 1, 0x9a9a9a);
  app_text_style st = {
      .size = TICK_SIZE, .rgb = MUTED, .valign = APP_VALIGN_MIDDLE};
  for (int i = 0; i < L->ticks.n; i++) {
    double py = y + (1 - app_ticks_position(&L->ticks, L->ticks.value[i])) *
                        (bar_h - 1);
    app_draw_line(c, x + BAR_W, py + 0.5, x + BAR_W + 4, py + 0.5, 1, 0x9a9a9a);
    if (app_text_draw(c, x + BAR_W + 6, py + 0.5, L->ticks.label[i], &st) < 0)
      return -1;
  }
  return 0;
}

int app_heatmap_png(const char *path, const app_heatmap *h) {
  layout L;
  app_canvas c;
  if (plan(h, &L) < 0 || app_canvas_init(&c, L.width, L.height, 0xffffff) < 0)
    return -1;
  for (int i = 0; i < h->rows; i++)
    for (int j = 0; j < h->cols; j++) {
      double v = h->values[(size_t)i * (size_t)h->cols + (size_t)j];
      double t = isfinite(v) ? app_ticks_position(&L.ticks, v) : NAN;
      app_fill_rect(&c, L.grid_x + j * L.cell, L.grid_y + i * L.cell, L.cell,
                    L.cell, app_colormap(t), 1);
    }
  if (L.cell >= 12) { /* hairlines between cells */
    for (int i = 1; i < h->rows; i++)
      app_fill_rect(&c, L.grid_x, L.grid_y + i * L.cell, L.grid_w, 1, 0xffffff,
                    0.6);
    for (int j = 1; j < h->cols; j++)
      app_fill_rect(&c, L.grid_x + j * L.cell, L.grid_y, 1, L.grid_h, 0xffffff,
                    0.6);
  }
  int rc = draw_labels(&c, h, &L);
  if (rc == 0 && h->colorbar)
    rc = draw_colorbar(&c, &L);
  if (rc == 0 && L.title_h) {
    app_text_style st = {
        .size = TITLE_SIZE, .rgb = INK, .align = APP_ALIGN_CENTER};
    rc = app_text_draw_fit(&c, L.width / 2.0, MARGIN, h->title, &st,
                           L.width - 2 * MARGIN) < 0
             ? -1
             : 0;
  }
  if (rc == 0)
    rc = app_canvas_write_png(&c, path);
  app_canvas_free(&c);
  return rc;
}
