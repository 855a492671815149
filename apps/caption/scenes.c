/* A captioning data set the program makes itself, so a first run needs no
 * download: scenes of one to three coloured shapes on varied backgrounds,
 * each described by a small grammar in several phrasings ("a small red
 * circle left of a large blue square", "a large blue square right of a
 * small red circle", ...).
 *
 * A scene of several shapes is a combination - its objects, their order
 * and the relation - and a fixed fraction of all combinations (chosen by a
 * hash, so the same for every seed) is kept out of training; the held-out
 * images draw half their scenes from those. Every object appears in
 * training, alone and in other combinations: a model that memorised
 * image-caption pairs fails the unseen ones, a model that composes the
 * objects and their places passes. */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include "../common/shape.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const colour_names[CAP_SCENE_COLOURS] = {
    "red", "green", "blue", "yellow", "purple"};
static const double colour_hues[CAP_SCENE_COLOURS] = {0, 125, 225, 55, 290};

const char *cap_scene_colour_name(int c) {
  return c >= 0 && c < CAP_SCENE_COLOURS ? colour_names[c] : "?";
}

/* ---- the grammar ---- */

static void noun_phrase(char *buf, size_t n, const cap_object *o) {
  snprintf(buf, n, "a %s %s %s", o->large ? "large" : "small",
           colour_names[o->colour], app_shape_name((app_shape_kind)o->shape));
}

int cap_scene_captions(const cap_scene *s, char out[][CAP_SCENE_TEXT],
                       int max) {
  char a[40], b[40], c[40];
  noun_phrase(a, sizeof a, &s->objects[0]);
  if (s->n > 1)
    noun_phrase(b, sizeof b, &s->objects[1]);
  if (s->n > 2)
    noun_phrase(c, sizeof c, &s->objects[2]);
  const char *first = s->vertical ? "above" : "left of";
  const char *second = s->vertical ? "below" : "right of";
  const char *first_long = s->vertical ? "on top of" : "to the left of";
  const char *second_long = s->vertical ? "under" : "to the right of";
  char texts[CAP_SCENE_PHRASINGS][CAP_SCENE_TEXT];
  int k = 0;
#define SAY(...) snprintf(texts[k++], CAP_SCENE_TEXT, __VA_ARGS__)
  if (s->n == 1) {
    SAY("%s", a);
    SAY("there is %s", a);
    SAY("%s on its own", a);
  } else if (s->n == 2) {
    SAY("%s %s %s", a, first, b);
    SAY("%s %s %s", b, second, a);
    SAY("%s %s %s", a, first_long, b);
    SAY("%s %s %s", b, second_long, a);
  } else {
    SAY("%s then %s then %s", a, b, c);
    SAY("from left to right %s %s and %s", a, b, c);
    SAY("from right to left %s %s and %s", c, b, a);
  }
#undef SAY
  int n = k < max ? k : max;
  for (int i = 0; i < n; i++)
    memcpy(out[i], texts[i], CAP_SCENE_TEXT);
  return n;
}

/* A combination's hash in [0, 1): objects, order and relation. */
static double combination_hash(const cap_scene *s) {
  uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(s->n + 2 * s->vertical + 1);
  for (int i = 0; i < s->n; i++) {
    const cap_object *o = &s->objects[i];
    h ^= (uint64_t)(o->shape + APP_SHAPE_KINDS *
                                   (o->colour + CAP_SCENE_COLOURS * o->large));
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  h *= 0x94d049bb133111ebull;
  h ^= h >> 29;
  return (double)(h >> 11) * 0x1p-53;
}

bool cap_scene_held_out(const cap_scene *s, double fraction) {
  return s->n > 1 && combination_hash(s) < fraction;
}

/* ---- drawing ---- */

static double uniform(loom_rng *g, double lo, double hi) {
  return lo + (hi - lo) * loom_rng_uniform(g);
}

/* HSV (h in degrees) to RGB in [0, 1]. */
static void hsv(double h, double s, double v, double *rgb) {
  h = fmod(h + 360, 360) / 60;
  int i = (int)h;
  double f = h - i, p = v * (1 - s), q = v * (1 - s * f),
         t = v * (1 - s * (1 - f));
  double r[6][3] = {{v, t, p}, {q, v, p}, {p, v, t},
                    {p, q, v}, {t, p, v}, {v, p, q}};
  memcpy(rgb, r[i % 6], sizeof r[0]);
}

/* Radii as fractions of the side: small and large never come close. */
static double radius(loom_rng *g, bool large, int side) {
  return side * (large ? uniform(g, 0.125, 0.15) : uniform(g, 0.07, 0.09));
}

/* Places the scene's objects: 1 anywhere; 2 side by side or one above the
 * other, or 3 in a row from left to right, their extents apart along that
 * axis (the free space split at random) and near one line across it, so
 * the relation is never in doubt. Shapes do not overlap or touch the
 * border. false when the radii drawn do not fit (the caller tries again). */
static bool place(cap_scene *s, int side, loom_rng *g) {
  double m = 1.5; /* pixels between a shape and the border or another */
  double free_space = side - m * (s->n + 1), big = 0;
  for (int i = 0; i < s->n; i++) {
    cap_object *o = &s->objects[i];
    o->r = radius(g, o->large, side);
    free_space -= 2 * o->r;
    big = o->r > big ? o->r : big;
  }
  if (free_space < 0)
    return false;
  if (s->n == 1) {
    cap_object *o = &s->objects[0];
    o->x = uniform(g, o->r + m, side - o->r - m);
    o->y = uniform(g, o->r + m, side - o->r - m);
    return true;
  }
  /* the free space in n + 1 random shares, before, between and after */
  double share[CAP_SCENE_MAX_OBJECTS + 1], total = 0;
  for (int i = 0; i <= s->n; i++)
    total += share[i] = -log(1 - loom_rng_uniform(g));
  double along = m, line = uniform(g, big + m, side - big - m);
  for (int i = 0; i < s->n; i++) {
    cap_object *o = &s->objects[i];
    along += free_space * share[i] / total + o->r;
    double jitter = 0.2 * o->r * (2 * loom_rng_uniform(g) - 1);
    double across = line + jitter;
    *(s->vertical ? &o->y : &o->x) = along;
    *(s->vertical ? &o->x : &o->y) = across;
    along += o->r + m;
  }
  return true;
}

void cap_scene_draw(const cap_scene *s, int side, loom_rng *g,
                    unsigned char *chw) {
  /* background: a muted colour with a gradient and grain */
  double base[3], tint[3];
  hsv(uniform(g, 0, 360), uniform(g, 0, 0.2), uniform(g, 0.25, 0.75), base);
  hsv(uniform(g, 0, 360), uniform(g, 0, 0.2), uniform(g, 0.25, 0.75), tint);
  double angle = uniform(g, 0, 2 * 3.14159265358979), ca = cos(angle),
         sa = sin(angle);
  double ink[CAP_SCENE_MAX_OBJECTS][3];
  app_shape shape[CAP_SCENE_MAX_OBJECTS];
  for (int i = 0; i < s->n; i++) {
    const cap_object *o = &s->objects[i];
    hsv(colour_hues[o->colour] + uniform(g, -12, 12), uniform(g, 0.7, 1),
        uniform(g, 0.75, 1), ink[i]);
    shape[i] = (app_shape){.kind = (app_shape_kind)o->shape,
                           .cx = o->x,
                           .cy = o->y,
                           .r = o->r,
                           .angle = uniform(g, -0.25, 0.25)};
  }
  size_t plane = (size_t)side * (size_t)side;
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++) {
      double u = ((x - side / 2.0) * ca + (y - side / 2.0) * sa) / side + 0.5;
      double px[3];
      for (int c = 0; c < 3; c++)
        px[c] = base[c] + (tint[c] - base[c]) * u;
      for (int i = 0; i < s->n; i++) {
        double a = app_shape_fill_coverage(&shape[i], x + 0.5, y + 0.5);
        for (int c = 0; a > 0 && c < 3; c++)
          px[c] += (ink[i][c] - px[c]) * a;
      }
      for (int c = 0; c < 3; c++) {
        double v = px[c] + 0.03 * loom_rng_normal(g);
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        chw[(size_t)c * plane + (size_t)y * side + x] =
            (unsigned char)lround(v * 255);
      }
    }
}

/* A random scene's content (objects and relation), not yet placed. */
static void draw_content(cap_scene *s, const cap_scene_opts *o, loom_rng *g) {
  *s = (cap_scene){.n = 1 + (int)(loom_rng_u64(g) % (uint64_t)o->max_objects)};
  s->vertical = s->n == 2 && loom_rng_uniform(g) < 0.5;
  for (int i = 0; i < s->n; i++)
    s->objects[i] =
        (cap_object){.shape = (int)(loom_rng_u64(g) % APP_SHAPE_KINDS),
                     .colour = (int)(loom_rng_u64(g) % (uint64_t)o->colours),
                     .large = loom_rng_uniform(g) < 0.5};
}

/* A scene for split sp: training scenes avoid held-out combinations;
 * others are held-out ones half of the time (*novel tells which). */
static void draw_scene(cap_scene *s, const cap_scene_opts *o, cap_split sp,
                       loom_rng *g, bool *novel) {
  bool want_novel =
      sp != CAP_TRAIN && o->holdout > 0 && loom_rng_uniform(g) < 0.5;
  for (int tries = 0;; tries++) {
    draw_content(s, o, g);
    bool held = cap_scene_held_out(s, o->holdout);
    /* when held-out combinations are too rare to draw, a seen one will do */
    if (held != want_novel && !(tries > 10000 && !held))
      continue;
    for (int k = 0; k < 100; k++) /* three large shapes may not fit */
      if (place(s, o->side, g)) {
        *novel = held;
        return;
      }
  }
}

int cap_scenes_generate(const cap_scene_opts *o, cap_data *d) {
  *d = (cap_data){.side = o->side};
  int64_t n = o->n[CAP_TRAIN] + o->n[CAP_DEV] + o->n[CAP_TEST];
  size_t image = (size_t)3 * (size_t)o->side * (size_t)o->side;
  if (o->side < 8 || o->side > CAP_MAX_INPUT_SIDE || n < 1 ||
      n > CAP_MAX_IMAGES || o->max_objects < 1 ||
      o->max_objects > CAP_SCENE_MAX_OBJECTS || o->colours < 2 ||
      o->colours > CAP_SCENE_COLOURS || !(o->holdout >= 0 && o->holdout < 1)) {
    loom_set_error(LOOM_ERR_ARGUMENT, "generated scenes: bad options");
    return -1;
  }
  d->pixels = malloc(image * (size_t)n);
  d->split = malloc((size_t)n);
  d->novel = malloc((size_t)n);
  d->first = malloc((size_t)(n + 1) * sizeof *d->first);
  d->captions = calloc((size_t)n * CAP_SCENE_PHRASINGS, sizeof *d->captions);
  loom_rng *g = loom_rng_new(o->seed);
  if (!d->pixels || !d->split || !d->novel || !d->first || !d->captions || !g) {
    loom_rng_free(g);
    cap_data_free(d);
    loom_set_error(LOOM_ERR_MEMORY,
                   "generated scenes: out of memory for "
                   "%lld images",
                   (long long)n);
    return -1;
  }
  int64_t i = 0;
  for (int sp = 0; sp < CAP_SPLITS; sp++)
    for (int64_t k = 0; k < o->n[sp]; k++, i++) {
      cap_scene s;
      bool novel;
      draw_scene(&s, o, (cap_split)sp, g, &novel);
      cap_scene_draw(&s, o->side, g, d->pixels + (size_t)i * image);
      char name[32], texts[CAP_SCENE_PHRASINGS][CAP_SCENE_TEXT];
      snprintf(name, sizeof name, "scene%06lld", (long long)i);
      int m = cap_scene_captions(&s, texts, CAP_SCENE_PHRASINGS);
      d->first[i] = d->n_captions;
      for (int c = 0; c < m; c++)
        if (!(d->captions[d->n_captions++] = strdup(texts[c])))
          break;
      d->split[i] = (unsigned char)sp;
      d->novel[i] = novel;
      if (app_strtab_intern(&d->names, name, strlen(name)) < 0 ||
          !d->captions[d->n_captions - 1]) {
        loom_rng_free(g);
        cap_data_free(d);
        loom_set_error(LOOM_ERR_MEMORY, "generated scenes: out of memory");
        return -1;
      }
      d->n = i + 1;
    }
  d->first[n] = d->n_captions;
  loom_rng_free(g);
  return 0;
}
