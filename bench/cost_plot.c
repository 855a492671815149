/* Draws bench/cost.sh's sweep: time and the step's memory of a training
 * step against sequence length, batch and hidden size, loom and PyTorch
 * on the same log-log axes, one PNG of six panels.
 *
 *   bench-cost-plot RESULTS.txt OUT.png
 *
 * RESULTS.txt holds "@cost WHO MODEL T B H ms peak_mib step_mib" lines
 * (bench-cost and bench/cost_torch.py print them); other lines are
 * skipped. A sweep along one axis is the lines whose other two sizes are
 * the sweep's fixed ones (seq: B 32, H 256; batch: T 64, H 256; hidden:
 * T 64, B 32). */
#include "../apps/common/picture.h"

#include <loom/loom.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 32

typedef struct {
  char who[16], model[16];
  long t, b, h;
  double ms, step_mib;
} row;

/* The sweeps: which size varies, and the other two fixed. */
static const struct {
  const char *name, *xlabel;
  int axis; /* 0: T, 1: B, 2: H */
  long fixed[3];
} sweeps[3] = {
    {"sequence length",
     "sequence length (batch 32, hidden 256)",
     0,
     {0, 32, 256}},
    {"batch", "batch (sequence 64, hidden 256)", 1, {64, 0, 256}},
    {"hidden size", "hidden size (sequence 64, batch 32)", 2, {64, 32, 0}},
};

static const struct {
  const char *who, *model, *label;
  uint32_t rgb;
} curves[4] = {
    {"loom", "lstm", "loom LSTM", 0x1f77b4u},
    {"torch", "lstm", "PyTorch LSTM", 0x9ecae1u},
    {"loom", "encoder", "loom encoder", 0xd62728u},
    {"torch", "encoder", "PyTorch encoder", 0xf4a3a3u},
};

static long size_of(const row *r, int axis) {
  return axis == 0 ? r->t : axis == 1 ? r->b : r->h;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bench-cost-plot RESULTS.txt OUT.png\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  row rows[1024];
  int n = 0;
  char line[512];
  while (n < 1024 && fgets(line, sizeof line, f)) {
    row r;
    double peak;
    if (sscanf(line, "@cost %15s %15s %ld %ld %ld %lf %lf %lf", r.who, r.model,
               &r.t, &r.b, &r.h, &r.ms, &peak, &r.step_mib) == 8) {
      if (!strncmp(r.who, "torch", 5))
        strcpy(r.who, "torch");
      rows[n++] = r;
    }
  }
  fclose(f);
  /* x and y per panel and curve */
  static double xs[3][4][MAX_POINTS], ts[3][4][MAX_POINTS],
      ms[3][4][MAX_POINTS];
  int count[3][4] = {{0}};
  for (int s = 0; s < 3; s++)
    for (int c = 0; c < 4; c++)
      for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        bool on = !strcmp(r->who, curves[c].who) &&
                  !strcmp(r->model, curves[c].model);
        for (int a = 0; a < 3 && on; a++)
          if (a != sweeps[s].axis && size_of(r, a) != sweeps[s].fixed[a])
            on = false;
        if (!on || count[s][c] == MAX_POINTS)
          continue;
        int k = count[s][c]++;
        /* keep the points sorted by x */
        double x = (double)size_of(r, sweeps[s].axis);
        while (k > 0 && xs[s][c][k - 1] > x) {
          xs[s][c][k] = xs[s][c][k - 1];
          ts[s][c][k] = ts[s][c][k - 1];
          ms[s][c][k] = ms[s][c][k - 1];
          k--;
        }
        xs[s][c][k] = x;
        ts[s][c][k] = r->ms;
        ms[s][c][k] = r->step_mib;
      }
  app_series series[6][4];
  app_panel panels[6];
  for (int s = 0; s < 3; s++)
    for (int kind = 0; kind < 2; kind++) {
      int p = kind * 3 + s;
      for (int c = 0; c < 4; c++)
        series[p][c] =
            (app_series){curves[c].label, xs[s][c], kind ? ms[s][c] : ts[s][c],
                         count[s][c], curves[c].rgb};
      panels[p] =
          (app_panel){.title = kind ? "memory of a step" : "time of a step",
                      .xlabel = sweeps[s].xlabel,
                      .ylabel = kind ? "MiB (peak RSS less RSS before)" : "ms",
                      .series = series[p],
                      .n_series = 4,
                      .log_x = true,
                      .log_y = true};
    }
  if (app_plot_panels_png(argv[2],
                          "Training step (fwd + bwd + Adam): loom vs PyTorch",
                          panels, 6, 3, 420, 320) < 0) {
    fprintf(stderr, "bench-cost-plot: %s\n", loom_last_error());
    return 1;
  }
  return 0;
}
