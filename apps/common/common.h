/* Helpers shared by the bundled apps: a progress line, line plots written
 * as PNG, small file and timing utilities. */
#ifndef LOOM_APPS_COMMON_H
#define LOOM_APPS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Seconds on a monotonic clock. */
double app_now(void);

/* Reads a whole file (caller frees); NULL with a message on stderr. */
unsigned char *app_read_file(const char *path, size_t *len);

/* A progress line redrawn in place on a terminal (plain lines otherwise):
 * "step 120/2000  loss 1.873 (2.70 bpc)  41.2k chars/s  ETA 3m12s". */
typedef struct {
  double start, last_print;
  bool tty;
} app_progress;
void app_progress_begin(app_progress *p);
/* Prints when at least `every` seconds passed (or force); done and total
 * give the ETA (total <= 0: none); text is the middle part. */
void app_progress_line(app_progress *p, int64_t done, int64_t total,
                       double rate, const char *unit, const char *text,
                       bool force);
void app_progress_end(app_progress *p);
/* "3m12s", "1h02m" into buf. */
char *app_duration(double seconds, char *buf, size_t size);

/* A line plot of up to 4 series, written as a PNG. */
typedef struct {
  const char *name;
  const double *x, *y;
  int n;
  uint32_t rgb;
} app_series;
int app_plot_png(const char *path, const char *title, const char *xlabel,
                 const char *ylabel, const app_series *series, int n_series,
                 int width, int height);

/* Text drawing into an RGB image (5x7 font, scale s), for plots and other
 * pictures (captions, attention maps). */
void app_draw_text(unsigned char *rgb, int w, int h, int x, int y,
                   const char *text, uint32_t color, int scale);

#endif
