/* shapes: a small CNN learns to tell drawn shapes apart, on images the
 * program renders itself (circles, squares, triangles, crosses, at random
 * sizes, positions and stroke widths, with noise). It trains, reports test
 * accuracy, saves a checkpoint, reloads it into a fresh model and checks
 * that the reloaded model predicts exactly the same. */
#define _POSIX_C_SOURCE 200809L
#include <loom/loom.h>

#include "../common/common.h"
#include "../common/shape.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES APP_SHAPE_KINDS

#define P "shapes"         /* in messages */
#define MAX_IMAGES 1000000 /* in each set */

typedef struct {
  int64_t train, test, size, epochs, batch, seed;
  double lr, min_accuracy;
  const char *checkpoint, *picture;
  bool quiet;
} options;

/* ---- the data ---- */

/* One image (size x size, values 0..1) of class c, outline drawn with a
 * soft pen, plus noise. */
static void draw(float *img, int64_t n, int c, loom_rng *g) {
  app_shape s = {.kind = (app_shape_kind)c};
  s.cx = n * (0.35 + 0.3 * loom_rng_uniform(g));
  s.cy = n * (0.35 + 0.3 * loom_rng_uniform(g));
  s.r = n * (0.18 + 0.12 * loom_rng_uniform(g));
  double pen = 0.6 + 0.8 * loom_rng_uniform(g);
  s.angle = 0.5 * (loom_rng_uniform(g) - 0.5);
  for (int64_t y = 0; y < n; y++)
    for (int64_t x = 0; x < n; x++) {
      double v =
          app_shape_outline_coverage(&s, (double)x + 0.5, (double)y + 0.5, pen);
      v += 0.15 * loom_rng_normal(g);
      img[y * n + x] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
}

/* n images (n, 1, size, size) and their labels, kept by the caller. 0,
 * or -1 with an error (n <= MAX_IMAGES and size <= 256 keep the sizes far
 * from overflow; memory may still run out). */
static int dataset(int64_t n, int64_t size, loom_rng *g, loom_tensor **x,
                   loom_tensor **y) {
  float *px = malloc((size_t)(n * size * size) * sizeof *px);
  int64_t *py = malloc((size_t)n * sizeof *py);
  for (int64_t i = 0; px && py && i < n; i++) {
    py[i] = (int64_t)(loom_rng_u64(g) % CLASSES);
    draw(px + i * size * size, size, (int)py[i], g);
  }
  *x = *y = NULL;
  if (px && py) {
    *x = loom_keep(loom_from_array(LOOM_F32, px, LOOM_SHAPE(n, 1, size, size)));
    *y = loom_keep(loom_from_array(LOOM_I64, py, LOOM_SHAPE(n)));
  } else {
    loom_set_error(LOOM_ERR_MEMORY,
                   "out of memory for %lld images of %lld x %lld pixels "
                   "(%.1f GiB)",
                   (long long)n, (long long)size, (long long)size,
                   (double)n * (double)(size * size) * 4 / (1 << 30));
  }
  free(px);
  free(py);
  return *x && *y ? 0 : -1;
}

/* ---- the model: conv-relu-pool twice, then two linear layers ---- */

typedef struct {
  loom_module base;
  loom_conv2d_layer *conv1, *conv2;
  loom_batch_norm_layer *bn1;
  loom_linear_layer *fc1, *fc2;
  int64_t size;
} cnn;

static cnn *cnn_new(int64_t size) {
  cnn *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  loom_module_init(&m->base, "ShapesCNN", NULL);
  m->size = size;
  loom_conv2d_opts pad = {.padding = {1, 1}};
  int64_t flat = 16 * (size / 4) * (size / 4);
  m->conv1 = (loom_conv2d_layer *)loom_module_add_child(
      &m->base, "conv1",
      (loom_module *)loom_conv2d_layer_new(1, 8, 3, 3, pad, true));
  m->bn1 = (loom_batch_norm_layer *)loom_module_add_child(
      &m->base, "bn1",
      (loom_module *)loom_batch_norm_layer_new(8, 1e-5, 0.1, true, true));
  m->conv2 = (loom_conv2d_layer *)loom_module_add_child(
      &m->base, "conv2",
      (loom_module *)loom_conv2d_layer_new(8, 16, 3, 3, pad, true));
  m->fc1 = (loom_linear_layer *)loom_module_add_child(
      &m->base, "fc1", (loom_module *)loom_linear_layer_new(flat, 64, true));
  m->fc2 = (loom_linear_layer *)loom_module_add_child(
      &m->base, "fc2", (loom_module *)loom_linear_layer_new(64, CLASSES, true));
  if (!m->conv1 || !m->bn1 || !m->conv2 || !m->fc1 || !m->fc2) {
    loom_module_free(&m->base);
    return NULL;
  }
  return m;
}

static loom_tensor *cnn_forward(cnn *m, const loom_tensor *x) {
  loom_pool2d_opts pool = {.kernel = {2, 2}};
  loom_tensor *h = loom_relu(loom_batch_norm_layer_forward(
      m->bn1, loom_conv2d_layer_forward(m->conv1, x)));
  h = loom_max_pool2d(h, pool, NULL);
  h = loom_max_pool2d(loom_relu(loom_conv2d_layer_forward(m->conv2, h)), pool,
                      NULL);
  h = loom_relu(loom_linear_layer_forward(m->fc1, loom_flatten(h, 1, -1)));
  return loom_linear_layer_forward(m->fc2, h);
}

/* Predicted classes (n) for all of x (n, 1, size, size), in evaluation
 * mode, batch by batch; NULL with an error. */
static loom_tensor *predict(cnn *m, const loom_tensor *x, int64_t batch) {
  loom_module_train(&m->base, false);
  loom_no_grad_begin();
  int64_t n = loom_size(x, 0);
  int64_t *classes = malloc((size_t)n * sizeof *classes);
  int rc = classes ? 0 : -1;
  if (!classes)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  for (int64_t i = 0; rc == 0 && i < n; i += batch) {
    loom_scope *s = loom_scope_begin();
    int64_t k = i + batch > n ? n - i : batch;
    loom_tensor *p =
        loom_argmax(cnn_forward(m, loom_narrow(x, 0, i, k)), 1, false);
    rc = p ? loom_copy_to_array(p, LOOM_I64, classes + i, k) : -1;
    loom_scope_end(s);
  }
  loom_no_grad_end();
  loom_module_train(&m->base, true);
  loom_tensor *out =
      rc == 0 ? loom_from_array(LOOM_I64, classes, LOOM_SHAPE(n)) : NULL;
  free(classes);
  return out;
}

static double accuracy(const loom_tensor *pred, const loom_tensor *y) {
  return loom_item(loom_mean_all(loom_eq(pred, y)));
}

/* A contact sheet of test images, each with its predicted class (green
 * when right, red with the true class when wrong). 0, or -1 after saying
 * why. */
static int picture(const options *o, const loom_tensor *x,
                   const loom_tensor *pred, const loom_tensor *y) {
  enum { N = 16 };
  int s = (int)o->size, n = loom_size(x, 0) < N ? (int)loom_size(x, 0) : N;
  const float *px = loom_data_f32(loom_contiguous(x));
  unsigned char *rgb = malloc((size_t)N * (size_t)s * (size_t)s * 3);
  app_sheet_item items[N];
  char truth[N][48];
  const char *lines[N][2];
  uint32_t colors[N][2];
  int rc = px && rgb ? 0 : -1;
  if (!rgb)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    unsigned char *im = rgb + (size_t)i * (size_t)s * (size_t)s * 3;
    for (int64_t k = 0; k < (int64_t)s * s; k++) {
      float v = px[(int64_t)i * s * s + k]; /* 1 is ink */
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      im[3 * k] = im[3 * k + 1] = im[3 * k + 2] =
          (unsigned char)lrintf(255 - 255 * v);
    }
    int64_t pr = (int64_t)loom_get(pred, (int64_t[]){i});
    int64_t tr = (int64_t)loom_get(y, (int64_t[]){i});
    snprintf(truth[i], sizeof truth[i], "(is a %s)",
             app_shape_name((app_shape_kind)tr));
    lines[i][0] = app_shape_name((app_shape_kind)pr);
    lines[i][1] = truth[i];
    colors[i][0] = pr == tr ? 0x207020 : 0xc02020;
    colors[i][1] = 0x666666;
    items[i] =
        (app_sheet_item){im, s, s, lines[i], colors[i], pr == tr ? 1 : 2};
  }
  if (rc == 0)
    rc = app_contact_sheet_png(
        o->picture, "shapes: test images and predictions", items, n, 8, 96);
  free(rgb);
  if (rc < 0) {
    app_report_write_error("shapes", o->picture);
  } else if (!o->quiet)
    fprintf(stderr, "predictions: %s\n", o->picture);
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: shapes [options]\n"
          "Trains a small CNN (conv-bn-relu-pool, conv-relu-pool, two linear "
          "layers)\n"
          "to classify circles, squares, triangles and crosses it draws "
          "itself, saves\n"
          "it, reloads it and checks the reloaded model predicts the same.\n"
          "  --train N        training images (4000)\n"
          "  --test N         test images (1000)\n"
          "  --size N         image side, a multiple of 4 (24)\n"
          "  --epochs N       passes over the training images (3)\n"
          "  --batch N        batch size (64)\n"
          "  --lr X           Adam learning rate (3e-3)\n"
          "  --seed N         random seed (1)\n"
          "  --checkpoint F   where to save (shapes.ckpt)\n"
          "  --picture F      PNG of test images with predictions (shapes.png; "
          "'')\n"
          "  --min-accuracy X exit with status 1 if test accuracy is below X\n"
          "  --quiet          no progress output\n"
          "  --help           this text\n");
}

static const struct option long_options[] = {{"train", 1, 0, 't'},
                                             {"test", 1, 0, 'T'},
                                             {"size", 1, 0, 's'},
                                             {"epochs", 1, 0, 'e'},
                                             {"batch", 1, 0, 'b'},
                                             {"lr", 1, 0, 'l'},
                                             {"seed", 1, 0, 'x'},
                                             {"checkpoint", 1, 0, 'c'},
                                             {"picture", 1, 0, 'p'},
                                             {"quiet", 0, 0, 'q'},
                                             {"help", 0, 0, 'h'},
                                             {"min-accuracy", 1, 0, 'm'},
                                             {0, 0, 0, 0}};

/* Stores the value v of option ch (written `flag`): 0, or -1 after saying
 * what is wrong with it. */
static int set_option(options *o, int ch, const char *flag, const char *v) {
  switch (ch) {
  case 't':
    return app_parse_int(P, flag, v, 1, MAX_IMAGES, &o->train);
  case 'T':
    return app_parse_int(P, flag, v, 1, MAX_IMAGES, &o->test);
  case 's':
    if (app_parse_int(P, flag, v, 8, 256, &o->size) < 0)
      return -1;
    if (o->size % 4) {
      fprintf(stderr, "shapes: %s '%s' is not a multiple of 4\n", flag, v);
      return -1;
    }
    return 0;
  case 'e':
    return app_parse_int(P, flag, v, 1, 1000000, &o->epochs);
  case 'b':
    return app_parse_int(P, flag, v, 1, 65536, &o->batch);
  case 'l':
    return app_parse_real(P, flag, v, (app_range){.hi = 1000, .lo_open = true},
                          &o->lr);
  case 'x':
    return app_parse_int(P, flag, v, 0, INT64_MAX, &o->seed);
  case 'c':
    o->checkpoint = v;
    return 0;
  case 'p':
    o->picture = v;
    return 0;
  case 'm':
    return app_parse_real(P, flag, v, (app_range){.hi = 1}, &o->min_accuracy);
  }
  return -1;
}

/* 0, 1 after --help, or -1 after saying what is wrong. */
static int parse(int argc, char **argv, options *o) {
  *o = (options){.train = 4000,
                 .test = 1000,
                 .size = 24,
                 .epochs = 3,
                 .batch = 64,
                 .lr = 3e-3,
                 .seed = 1,
                 .checkpoint = "shapes.ckpt",
                 .picture = "shapes.png"};
  int ch, at = 0;
  while ((ch = getopt_long(argc, argv, "h", long_options, &at)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      return 1;
    }
    if (ch == '?') {
      usage(stderr);
      return -1;
    }
    if (ch == 'q') {
      o->quiet = true;
      continue;
    }
    char flag[32];
    snprintf(flag, sizeof flag, "--%s", long_options[at].name);
    if (set_option(o, ch, flag, optarg) < 0)
      return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "shapes: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  return 0;
}

/* Epochs of Adam on shuffled batches; *step counts the steps. 0, or -1
 * with an error. */
static int train(const options *o, cnn *m, loom_optimizer *opt,
                 const loom_tensor *x, const loom_tensor *y, loom_rng *g,
                 int64_t *step) {
  app_progress pr;
  app_progress_begin(&pr);
  int64_t steps = o->epochs * ((o->train + o->batch - 1) / o->batch);
  double t0 = app_now();
  int rc = 0;
  for (int64_t e = 0; rc == 0 && e < o->epochs; e++) {
    loom_scope *s = loom_scope_begin();
    loom_tensor *perm = loom_randperm(g, o->train);
    for (int64_t i = 0; rc == 0 && i < o->train; i += o->batch, ++*step) {
      loom_scope *b = loom_scope_begin();
      int64_t n = i + o->batch > o->train ? o->train - i : o->batch;
      loom_tensor *idx = loom_narrow(perm, 0, i, n);
      loom_tensor *loss =
          loom_cross_entropy(cnn_forward(m, loom_index_select(x, 0, idx)),
                             loom_index_select(y, 0, idx), NULL);
      loom_optimizer_zero_grad(opt);
      if (!loss || loom_backward(loss) < 0 || loom_optimizer_step(opt) < 0)
        rc = -1;
      else if (!o->quiet) {
        char text[64];
        snprintf(text, sizeof text, "epoch %lld  loss %.4f", (long long)e + 1,
                 loom_item(loss));
        app_progress_line(&pr, *step + 1, steps,
                          (double)(i + n + e * o->train) / (app_now() - t0),
                          "images", text, false);
      }
      loom_scope_end(b);
    }
    loom_scope_end(s);
  }
  if (!o->quiet)
    app_progress_end(&pr);
  return rc;
}

/* Saves the model, loads the file into a fresh one, and checks that it
 * predicts exactly as `pred` says. 0, or -1 after saying what failed. */
static int save_and_reload(const options *o, cnn *m, loom_optimizer *opt,
                           int64_t step, loom_rng *g, const loom_tensor *x,
                           const loom_tensor *pred) {
  if (loom_checkpoint_save(o->checkpoint, &m->base, opt, NULL, step, g, NULL) <
      0) {
    app_report_write_error(P, o->checkpoint);
    return -1;
  }
  cnn *fresh = cnn_new(o->size);
  loom_tensor *again = NULL;
  if (fresh && loom_checkpoint_load(o->checkpoint, &fresh->base, NULL, NULL,
                                    NULL, NULL, NULL) == 0)
    again = predict(fresh, x, o->batch);
  int rc = again ? 0 : -1;
  if (!again) {
    fprintf(stderr, "shapes: cannot reload %s: %s\n", o->checkpoint,
            loom_last_error());
    loom_clear_error();
  } else {
    bool same = loom_equal(again, pred);
    printf("saved to %s; reloaded model predicts %s\n", o->checkpoint,
           same ? "identically" : "DIFFERENTLY");
    rc = same ? 0 : -1;
  }
  loom_module_free(fresh ? &fresh->base : NULL);
  return rc;
}

int main(int argc, char **argv) {
  options o;
  int p = parse(argc, argv, &o);
  if (p != 0)
    return p < 0 ? 2 : 0;
  if (app_refuse_overwrite(P, "--picture", o.picture, "--checkpoint",
                           o.checkpoint) < 0)
    return 2;
  /* both are written after training: checked before it ('' is no
   * picture, and a bad --checkpoint) */
  if (app_check_writable(P, "--checkpoint", o.checkpoint) < 0)
    return *o.checkpoint ? 1 : 2;
  if (*o.picture && app_check_writable(P, "--picture", o.picture) < 0)
    return 1;
  loom_rng *g = loom_rng_new((uint64_t)o.seed);
  loom_manual_seed((uint64_t)o.seed);
  loom_tensor *xtr = NULL, *ytr = NULL, *xte = NULL, *yte = NULL;
  cnn *m = NULL;
  loom_optimizer *opt = NULL;
  loom_tensor *params[32];
  int64_t step = 0;
  int rc = 1;
  double t0 = app_now();
  if (!g || dataset(o.train, o.size, g, &xtr, &ytr) < 0 ||
      dataset(o.test, o.size, g, &xte, &yte) < 0 || !(m = cnn_new(o.size))) {
    fprintf(stderr, "shapes: %s\n", loom_last_error());
    goto done;
  }
  int np = loom_module_parameters(&m->base, params, 32);
  opt = loom_adam_new(params, np, loom_adam_defaults(o.lr));
  t0 = app_now();
  if (!opt || train(&o, m, opt, xtr, ytr, g, &step) < 0) {
    fprintf(stderr, "shapes: training failed: %s\n", loom_last_error());
    goto done;
  }
  loom_scope *s = loom_scope_begin();
  loom_tensor *pred = predict(m, xte, o.batch);
  double acc = pred ? accuracy(pred, yte) : NAN;
  if (pred) {
    printf("test accuracy %.2f%% on %lld images (%lld training images, %lld "
           "epochs, %.1f s)\n",
           100 * acc, (long long)o.test, (long long)o.train,
           (long long)o.epochs, app_now() - t0);
    rc = save_and_reload(&o, m, opt, step, g, xte, pred) < 0 ? 1 : 0;
  } else {
    fprintf(stderr, "shapes: %s\n", loom_last_error());
  }
  if (pred && !(acc >= o.min_accuracy)) {
    fprintf(stderr, "shapes: accuracy %.4f is below %.4f\n", acc,
            o.min_accuracy);
    rc = 1;
  }
  if (pred && o.picture && *o.picture && picture(&o, xte, pred, yte) < 0)
    rc = 1;
  loom_scope_end(s);
done:
  loom_clear_error();
  loom_optimizer_free(opt);
  loom_module_free(m ? &m->base : NULL);
  loom_release(xtr);
  loom_release(ytr);
  loom_release(xte);
  loom_release(yte);
  loom_rng_free(g);
  loom_cleanup();
  return rc;
}
