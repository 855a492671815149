/* Line plots: panels of curves with nice ticks, grid, axis labels, a title
 * and a legend, written as one PNG. */
#include "picture.h"

#include <loom/loom.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INK 0x222222u
#define MUTED 0x555555u
#define GRID 0xe6e6e6u
#define FRAME 0x9a9a9au

enum { TITLE_SIZE = 15, LABEL_SIZE = 13, TICK_SIZE = 12, LEGEND_SIZE = 12 };

static bool point_shown(const app_series *s, int i, bool log_x, bool log_y) {
  double x = s->x ? s->x[i] : i, y = s->y[i];
  return isfinite(x) && isfinite(y) && (!log_x || x > 0) && (!log_y || y > 0);
}

/* The data's bounds over the points shown (lo > hi when there are none). */
static void data_bounds(const app_panel *p, double *x0, double *x1, double *y0,
                        double *y1) {
  *x0 = *y0 = INFINITY;
  *x1 = *y1 = -INFINITY;
  for (int s = 0; s < p->n_series; s++)
    for (int i = 0; i < p->series[s].n; i++)
      if (point_shown(&p->series[s], i, p->log_x, p->log_y)) {
        double x = p->series[s].x ? p->series[s].x[i] : i;
        *x0 = fmin(*x0, x);
        *x1 = fmax(*x1, x);
        *y0 = fmin(*y0, p->series[s].y[i]);
        *y1 = fmax(*y1, p->series[s].y[i]);
      }
}

static double widest_label(const app_ticks *t, double size, int *rc) {
  double w = 0;
  for (int i = 0; i < t->n; i++) {
    double lw = app_text_width(NULL, t->label[i], size);
    if (lw < 0)
      *rc = -1;
    w = fmax(w, lw);
  }
  return w;
}

/* The series' points in pixels, at most about four per pixel column (the
 * first, lowest, highest and last of each column, in order), non-finite
 * where the line breaks. *n_out points; -1 on allocation failure. */
static int map_series(const app_series *s, const app_ticks *tx,
                      const app_ticks *ty, bool log_x, bool log_y, double ax,
                      double ay, double aw, double ah, double **px, double **py,
                      int *n_out) {
  size_t n = (size_t)s->n;
  *px = malloc((n ? n : 1) * sizeof **px);
  *py = malloc((n ? n : 1) * sizeof **py);
  if (!*px || !*py) {
    loom_set_error(LOOM_ERR_MEMORY, "plot: out of memory (%zu points)", n);
    return -1;
  }
  int k = 0;
  long column = -1;
  int first = 0; /* where the current column's points start in the output */
  for (int i = 0; i < s->n; i++) {
    if (!point_shown(s, i, log_x, log_y)) {
      if (k > 0 && isfinite((*px)[k - 1])) {
        (*px)[k] = (*py)[k] = NAN;
        k++;
      }
      column = -1;
      continue;
    }
    double x = ax + app_ticks_position(tx, s->x ? s->x[i] : i) * aw;
    double y = ay + (1 - app_ticks_position(ty, s->y[i])) * ah;
    long col = (long)floor(x);
    if (col != column || k - first < 4) {
      if (col != column)
        first = k;
      column = col;
      (*px)[k] = x;
      (*py)[k] = y;
      k++;
      continue;
    }
    /* a fifth point in one column: keep first, min, max and this as last */
    double *cy = *py + first;
    double lo = fmin(fmin(cy[1], cy[2]), fmin(cy[3], y));
    double hi = fmax(fmax(cy[1], cy[2]), fmax(cy[3], y));
    cy[1] = lo;
    cy[2] = hi;
    cy[3] = y;
    (*px)[first + 3] = x;
  }
  *n_out = k;
  return 0;
}

/* The legend's box: its size from the names, and the corner of the plot
 * area (x, y, w, h) where the fewest points lie under it. */
typedef struct {
  int x, y, w, h, rows, row_h;
  double names; /* width of the names column */
} legend;

static int legend_size(const app_panel *p, int aw, legend *L) {
  app_text_metrics m;
  if (app_text_measure_lines(NULL, LEGEND_SIZE, &m) < 0)
    return -1;
  *L = (legend){0};
  for (int s = 0; s < p->n_series; s++)
    if (p->series[s].name && *p->series[s].name) {
      double w = app_text_width(NULL, p->series[s].name, LEGEND_SIZE);
      if (w < 0)
        return -1;
      L->names = fmax(L->names, w);
      L->rows++;
    }
  L->row_h = (int)ceil(m.line_height) + 2;
  L->names = fmin(L->names, fmax(aw * 0.6 - 46, 20));
  L->w = (int)ceil(L->names) + 46;
  L->h = L->rows * L->row_h + 16;
  return 0;
}

static void legend_place(legend *L, double *const *px, double *const *py,
                         const int *n, int n_series, int ax, int ay, int aw,
                         int ah) {
  int best = -1;
  long fewest = 0;
  for (int corner = 0; corner < 4; corner++) {
    int x = corner & 1 ? ax + 10 : ax + aw - L->w - 10;
    int y = corner & 2 ? ay + ah - L->h - 10 : ay + 10;
    long under = 0;
    for (int s = 0; s < n_series; s++)
      for (int i = 0; i < n[s]; i++)
        under += px[s][i] >= x - 4 && px[s][i] <= x + L->w + 4 &&
                 py[s][i] >= y - 4 && py[s][i] <= y + L->h + 4;
    if (best < 0 || under < fewest) {
      best = corner;
      fewest = under;
      L->x = x;
      L->y = y;
    }
  }
}

static int draw_legend(app_canvas *c, const app_panel *p, const legend *L) {
  if (!L->rows)
    return 0;
  app_fill_rect(c, L->x, L->y, L->w, L->h, 0xffffff, 0.88);
  app_stroke_rect(c, L->x, L->y, L->w, L->h, 1, 0xd0d0d0);
  app_text_style st = {
      .size = LEGEND_SIZE, .rgb = INK, .valign = APP_VALIGN_MIDDLE};
  int row = 0;
  for (int s = 0; s < p->n_series; s++) {
    if (!p->series[s].name || !*p->series[s].name)
      continue;
    double cy = L->y + 8 + row * L->row_h + L->row_h / 2.0;
    app_draw_line(c, L->x + 8, cy, L->x + 30, cy, 2.5, p->series[s].rgb);
    if (app_text_draw_fit(c, L->x + 38, cy, p->series[s].name, &st, L->names) <
        0)
      return -1;
    row++;
  }
  return 0;
}

/* One panel into the rectangle (x, y, w, h) of the canvas. */
static int draw_panel(app_canvas *c, const app_panel *p, int x, int y, int w,
                      int h) {
  app_text_metrics title_m, label_m, tick_m;
  if (app_text_measure_lines(NULL, TITLE_SIZE, &title_m) < 0 ||
      app_text_measure_lines(NULL, LABEL_SIZE, &label_m) < 0 ||
      app_text_measure_lines(NULL, TICK_SIZE, &tick_m) < 0)
    return -1;
  bool has_title = p->title && *p->title, has_x = p->xlabel && *p->xlabel;
  bool has_y = p->ylabel && *p->ylabel;
  int top = 12 + (has_title ? (int)ceil(title_m.line_height) + 6 : 0);
  int bottom = 12 + (int)ceil(tick_m.line_height) + 6 +
               (has_x ? (int)ceil(label_m.line_height) + 2 : 0);
  int ah = h - top - bottom;
  double x0, x1, y0, y1;
  data_bounds(p, &x0, &x1, &y0, &y1);
  app_ticks ty, tx;
  app_ticks_fit(&ty, y0, y1, ah / 45, p->log_y, 0.05);
  int rc = 0;
  int left = 12 + (has_y ? (int)ceil(label_m.line_height) + 4 : 0) +
             (int)ceil(widest_label(&ty, TICK_SIZE, &rc)) + 8;
  int aw = w - left - 16;
  /* fewer x ticks until their labels have room */
  for (int target = aw / 90; rc == 0; target--) {
    app_ticks_fit(&tx, x0, x1, target, p->log_x, 0.02);
    double widest = widest_label(&tx, TICK_SIZE, &rc);
    if (target <= 2 || (widest + 16) * tx.n <= aw)
      break;
  }
  if (rc < 0 || aw < 20 || ah < 20) {
    if (rc == 0)
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "plot: a %d x %d panel leaves no room for the data", w, h);
    return -1;
  }
  int ax = x + left, ay = y + top;
  /* grid, frame and ticks */
  app_text_style tick = {.size = TICK_SIZE, .rgb = MUTED};
  for (int i = 0; i < ty.n; i++) {
    double py = ay + (1 - app_ticks_position(&ty, ty.value[i])) * ah;
    app_draw_line(c, ax, py, ax + aw, py, 1, GRID);
    app_draw_line(c, ax - 4, py, ax, py, 1, FRAME);
    tick.align = APP_ALIGN_RIGHT;
    tick.valign = APP_VALIGN_MIDDLE;
    rc |= app_text_draw(c, ax - 7, py, ty.label[i], &tick);
  }
  for (int i = 0; i < tx.n; i++) {
    double px = ax + app_ticks_position(&tx, tx.value[i]) * aw;
    app_draw_line(c, px, ay, px, ay + ah, 1, GRID);
    app_draw_line(c, px, ay + ah, px, ay + ah + 4, 1, FRAME);
    tick.align = APP_ALIGN_CENTER;
    tick.valign = APP_VALIGN_TOP;
    rc |= app_text_draw(c, px, ay + ah + 6, tx.label[i], &tick);
  }
  app_stroke_rect(c, ax, ay, aw + 1, ah + 1, 1, FRAME);
  /* labels and title */
  app_text_style label = {
      .size = LABEL_SIZE, .rgb = INK, .align = APP_ALIGN_CENTER};
  if (has_x)
    rc |= app_text_draw_fit(c, ax + aw / 2.0,
                            ay + ah + 6 + ceil(tick_m.line_height) + 2,
                            p->xlabel, &label, aw) < 0;
  if (has_y) {
    label.vertical = true;
    rc |=
        app_text_draw_fit(c, x + 10, ay + ah / 2.0, p->ylabel, &label, ah) < 0;
  }
  if (has_title) {
    app_text_style st = {
        .size = TITLE_SIZE, .rgb = INK, .align = APP_ALIGN_CENTER};
    rc |=
        app_text_draw_fit(c, ax + aw / 2.0, y + 10, p->title, &st, w - 20) < 0;
  }
  /* the curves, clipped to the plot area, then the legend where it hides
   * the fewest points */
  double *px[APP_PLOT_MAX_SERIES] = {0}, *py[APP_PLOT_MAX_SERIES] = {0};
  int n[APP_PLOT_MAX_SERIES] = {0};
  app_canvas_clip(c, ax + 1, ay + 1, aw - 1, ah - 1);
  for (int s = 0; rc == 0 && s < p->n_series; s++) {
    rc = map_series(&p->series[s], &tx, &ty, p->log_x, p->log_y, ax + 0.5,
                    ay + 0.5, aw, ah, &px[s], &py[s], &n[s]);
    if (rc == 0)
      rc = app_draw_polyline(c, px[s], py[s], n[s], 2, p->series[s].rgb);
  }
  app_canvas_clip(c, 0, 0, c->w, c->h);
  legend L;
  if (rc == 0)
    rc = legend_size(p, aw, &L);
  if (rc == 0) {
    legend_place(&L, px, py, n, p->n_series, ax, ay, aw, ah);
    rc = draw_legend(c, p, &L);
  }
  for (int s = 0; s < p->n_series; s++) {
    free(px[s]);
    free(py[s]);
  }
  return rc ? -1 : 0;
}

static int check_panel(const app_panel *p, int i) {
  if (p->n_series < 0 || p->n_series > APP_PLOT_MAX_SERIES ||
      (p->n_series && !p->series)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "plot: panel %d has %d series (0..%d)", i,
                   p->n_series, APP_PLOT_MAX_SERIES);
    return -1;
  }
  for (int s = 0; s < p->n_series; s++)
    if (p->series[s].n < 0 || (p->series[s].n && !p->series[s].y)) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "plot: panel %d series %d has %d points and %s y values",
                     i, s, p->series[s].n, p->series[s].y ? "" : "no");
      return -1;
    }
  return 0;
}

int app_plot_panels_png(const char *path, const char *title,
                        const app_panel *panels, int n_panels, int columns,
                        int panel_w, int panel_h) {
  if (n_panels < 1 || n_panels > 64 || !panels || columns < 1 ||
      panel_w < 200 || panel_h < 150 || panel_w > 8192 || panel_h > 8192) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "plot: %d panels, %d columns, %d x %d pixels each (1..64 "
                   "panels, at least one column, 200..8192 x 150..8192)",
                   n_panels, columns, panel_w, panel_h);
    return -1;
  }
  for (int i = 0; i < n_panels; i++)
    if (check_panel(&panels[i], i) < 0)
      return -1;
  columns = columns < n_panels ? columns : n_panels;
  int rows = (n_panels + columns - 1) / columns;
  app_text_metrics m;
  if (app_text_measure_lines(NULL, TITLE_SIZE + 2, &m) < 0)
    return -1;
  int head = title && *title ? (int)ceil(m.line_height) + 14 : 0;
  app_canvas c;
  if (app_canvas_init(&c, columns * panel_w, rows * panel_h + head, 0xffffff) <
      0)
    return -1;
  int rc = 0;
  if (head) {
    app_text_style st = {
        .size = TITLE_SIZE + 2, .rgb = INK, .align = APP_ALIGN_CENTER};
    rc = app_text_draw_fit(&c, c.w / 2.0, 10, title, &st, c.w - 20) < 0;
  }
  for (int i = 0; rc == 0 && i < n_panels; i++)
    rc = draw_panel(&c, &panels[i], i % columns * panel_w,
                    head + i / columns * panel_h, panel_w, panel_h);
  if (rc == 0)
    rc = app_canvas_write_png(&c, path);
  app_canvas_free(&c);
  return rc ? -1 : 0;
}

int app_plot_png(const char *path, const char *title, const char *xlabel,
                 const char *ylabel, const app_series *series, int n_series,
                 int width, int height) {
  app_panel p = {title, xlabel, ylabel, series, n_series, false, false};
  return app_plot_panels_png(path, NULL, &p, 1, 1, width, height);
}
