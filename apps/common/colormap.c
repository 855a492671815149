/* The heat ramp used by heatmaps and attention pictures. It is defined by
 * five colours in OKLCh (OKLab's lightness, chroma and hue: Ottosson 2020),
 * with lightness rising in equal steps from 0.24 to 0.94 and the hue
 * turning from violet through blue, teal and green to yellow, so the ramp
 * reads in order in colour and in grey. Colours outside sRGB lose chroma,
 * never lightness. */
#include "picture.h"

#include <math.h>
#include <pthread.h>

#define RAMP_SIZE 1024

static const struct {
  double chroma, hue; /* hue in degrees; lightness is 0.24 + 0.7 t */
} stops[5] = {{0.11, 305}, {0.14, 262}, {0.11, 205}, {0.15, 145}, {0.16, 105}};

static uint32_t ramp[RAMP_SIZE];
static pthread_once_t ramp_once = PTHREAD_ONCE_INIT;

static double srgb_gamma(double v) {
  return v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

/* OKLab to linear sRGB; false when the colour is outside [0, 1]^3. */
static bool oklab_to_linear(double L, double a, double b, double rgb[3]) {
  double l = L + 0.3963377774 * a + 0.2158037573 * b;
  double m = L - 0.1055613458 * a - 0.0638541728 * b;
  double s = L - 0.0894841775 * a - 1.2914855480 * b;
  l = l * l * l;
  m = m * m * m;
  s = s * s * s;
  rgb[0] = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s;
  rgb[1] = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s;
  rgb[2] = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s;
  for (int k = 0; k < 3; k++)
    if (rgb[k] < -1e-9 || rgb[k] > 1 + 1e-9)
      return false;
  return true;
}

static uint32_t ramp_colour(double t) {
  double pos = t * 4;
  int i = pos >= 4 ? 3 : (int)pos;
  double f = pos - i;
  double L = 0.24 + 0.70 * t;
  double chroma = stops[i].chroma + (stops[i + 1].chroma - stops[i].chroma) * f;
  double hue = (stops[i].hue + (stops[i + 1].hue - stops[i].hue) * f) *
               (3.14159265358979323846 / 180);
  double rgb[3];
  /* the largest chroma (to 1/64 of it) that sRGB can show at L */
  double lo = 0, hi = chroma;
  if (!oklab_to_linear(L, hi * cos(hue), hi * sin(hue), rgb))
    for (int k = 0; k < 6; k++) {
      double c = (lo + hi) / 2;
      if (oklab_to_linear(L, c * cos(hue), c * sin(hue), rgb))
        lo = c;
      else
        hi = c;
    }
  else
    lo = hi;
  oklab_to_linear(L, lo * cos(hue), lo * sin(hue), rgb);
  uint32_t out = 0;
  for (int k = 0; k < 3; k++) {
    double v = srgb_gamma(fmin(fmax(rgb[k], 0), 1));
    out = out << 8 | (uint32_t)lrint(v * 255);
  }
  return out;
}

static void build_ramp(void) {
  for (int i = 0; i < RAMP_SIZE; i++)
    ramp[i] = ramp_colour(i / (double)(RAMP_SIZE - 1));
}

uint32_t app_colormap(double t) {
  if (isnan(t))
    return 0xb4b4b4;
  pthread_once(&ramp_once, build_ramp);
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  return ramp[lrint(t * (RAMP_SIZE - 1))];
}
