/* caption: image captioning (internal interfaces).
 *
 * Errors follow the library: a function that can fail returns -1 (or NULL)
 * and records a loom error whose message names the file, and the line or
 * byte when there is one. */
#ifndef CAPTION_H
#define CAPTION_H

#include <loom/loom.h>

#include "../common/common.h"
#include "../common/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- limits: what files and the command line may ask for ---- */

#define CAP_MAX_SIDE 16384                /* an image file's width or height */
#define CAP_MAX_PIXELS ((int64_t)1 << 26) /* ... and its pixel count */
#define CAP_MAX_FILE_BYTES (256 << 20)    /* an image file */
#define CAP_MAX_TAR_ENTRY ((int64_t)1 << 32)
#define CAP_MAX_TEXT_BYTES ((size_t)1 << 30) /* captions and list files */
#define CAP_MAX_LINE 65536                   /* a line of them */
#define CAP_MAX_IMAGES 1000000               /* in a data set */
#define CAP_MAX_INPUT_SIDE 512 /* the model's input images (side) */

/* ---- images (image.c) ---- */

/* An 8-bit RGB image, 3 bytes a pixel, rows top to bottom. */
typedef struct {
  int w, h;
  unsigned char *rgb;
} cap_image;

/* Decodes a JPEG or PNG file's bytes (any bit depth and channels: grey is
 * copied to R, G and B; alpha is composited over white). `name` is used in
 * messages. 0, or -1 (nothing to free) with LOOM_ERR_FORMAT for another
 * format, a corrupt or truncated file, or more than CAP_MAX_SIDE pixels on
 * a side or CAP_MAX_PIXELS in all. */
int cap_image_decode(const void *bytes, size_t len, const char *name,
                     cap_image *out);
/* The same from a file (at most CAP_MAX_FILE_BYTES). */
int cap_image_load(const char *path, cap_image *out);
/* A resized copy (stb_image_resize: Mitchell filter when shrinking, cubic
 * when growing; the aspect ratio is not kept). 0 or -1. */
int cap_image_resize(const cap_image *in, int w, int h, cap_image *out);
void cap_image_free(cap_image *im);
/* RGB bytes to planes (R plane, G plane, B plane: 3 x h x w) and back. */
void cap_image_to_planes(const cap_image *im, unsigned char *chw);
void cap_planes_to_image(const unsigned char *chw, int side,
                         unsigned char *rgb);
/* Decodes an image file's bytes and squeezes it to side x side planes in
 * chw (3 * side * side bytes). 0 or -1. */
int cap_image_fit(const void *bytes, size_t len, const char *name, int side,
                  unsigned char *chw);

/* Per-channel statistics of pixel values scaled to [0, 1]. */
typedef struct {
  double mean[3], std[3];
} cap_norm;
/* Mean and (unbiased) standard deviation of each channel over images
 * `images[0..n)` of `pixels` (n x 3 x side x side planes). */
void cap_norm_fit(cap_norm *nm, const unsigned char *pixels, int side,
                  const int64_t *images, int64_t n);

/* A training image's augmentation: a shift by (dy, dx) pixels (the edge
 * pixels repeat into the gap) and a horizontal flip. */
typedef struct {
  int dy, dx;
  bool flip;
} cap_augment;
/* Draws a shift in [-shift, shift] on each axis and, when `flip`, a flip
 * with probability 1/2, from g. */
void cap_augment_draw(cap_augment *a, int shift, bool flip, loom_rng *g);
/* One image's planes (3 x side x side bytes) as normalised floats
 * (x / 255 - mean) / std, augmented by a (NULL: not), into out. */
void cap_pixels_to_input(const unsigned char *chw, int side, const cap_norm *nm,
                         const cap_augment *a, float *out);

/* ---- tar archives (tar.c) ---- */

typedef struct {
  FILE *f;
  bool owns;
  char name[512];       /* the archive, for messages */
  int64_t size;         /* of the archive */
  int64_t offset;       /* bytes read so far */
  int64_t pending;      /* data bytes of the current entry not yet read */
  int64_t pending_at;   /* where the current entry's header starts */
  char long_name[4096]; /* from a GNU 'L' or pax 'x' record */
} cap_tar;

typedef struct {
  char name[4096]; /* path inside the archive */
  int64_t size;    /* bytes of data */
  int64_t offset;  /* where the data starts */
} cap_tar_entry;

/* Opens an archive file, or bytes in memory (borrowed until closed). 0 or
 * -1. */
int cap_tar_open(cap_tar *t, const char *path);
int cap_tar_open_memory(cap_tar *t, const void *data, size_t len,
                        const char *name);
void cap_tar_close(cap_tar *t);
/* The next regular file (directories, links and other entries are
 * skipped): 1 with *e filled (its data lies inside the archive), 0 at the
 * end of the archive, -1 with an error naming the archive and the byte (a
 * bad header, an entry longer than the rest of the archive, an entry above
 * CAP_MAX_TAR_ENTRY bytes). */
int cap_tar_next(cap_tar *t, cap_tar_entry *e);
/* Reads the data of the entry cap_tar_next just returned (e->size bytes
 * into buf); an entry not read is skipped by the next call. 0 or -1. */
int cap_tar_read(cap_tar *t, const cap_tar_entry *e, void *buf);

/* ---- data sets (flickr.c, scenes.c) ---- */

typedef enum { CAP_TRAIN, CAP_DEV, CAP_TEST, CAP_SPLITS } cap_split;
/* "train", "dev", "test". */
const char *cap_split_name(cap_split s);

/* Images with their captions. Image i is 3 x side x side bytes of planes
 * at pixels + i * 3 * side * side, named app_strtab_str(&names, i), in
 * split[i]; its
 * captions are captions[first[i] .. first[i + 1]). */
typedef struct {
  int64_t n;
  int side;
  unsigned char *pixels;
  app_strtab names;
  unsigned char *split;
  int64_t *first; /* n + 1 */
  char **captions;
  int64_t n_captions;
  /* generated scenes: 1 for an image whose combination of objects never
   * occurs in training; NULL for other data */
  unsigned char *novel;
} cap_data;

void cap_data_free(cap_data *d);
/* The images of split s, in order, into a new array (caller frees) of
 * *count entries; NULL only on a memory error (recorded). */
int64_t *cap_data_split(const cap_data *d, cap_split s, int64_t *count);

/* Where a Flickr8k-style data set is. Any field may be NULL, to be found
 * in `dir`:
 *  - captions: `image#k<TAB>caption` lines (dir/captions.txt or
 *    dir/Flickr8k.token.txt);
 *  - the splits: dir/images.tsv (columns `image` and `split` named in a
 *    header line), or three lists of image names, one a line
 *    (dir/Flickr_8k.trainImages.txt, ...devImages.txt, ...testImages.txt);
 *  - the images: folders of image files and tar archives of them (matched
 *    by file name), dir/images_jpeg.part*.tar, dir/Flicker8k_Dataset or
 *    dir/images; or, when `arrays` and the split comes from images.tsv,
 *    the raw arrays dir/images_SxS_rgb_chw[.partK].u8 of the image size.
 * Images in no split are left out. */
#define CAP_MAX_SOURCES 64
typedef struct {
  const char *dir;
  const char *captions;
  const char *table;    /* images.tsv */
  const char *lists[3]; /* train, dev, test */
  const char *images[CAP_MAX_SOURCES];
  int n_images;
  bool arrays;
} cap_flickr_source;

/* Loads the data set with every image at side x side (squeezed, as the
 * ready-made arrays are). Progress goes to `log` (NULL: none). 0, or -1
 * with an error naming the file (nothing to free). */
int cap_flickr_load(const cap_flickr_source *src, int side, FILE *log,
                    cap_data *d);

/* Reads a captions file into d: lines `image#k<TAB>caption` (a missing
 * `#k` is accepted) for images already named in d; other images' lines
 * are skipped. Sets d->first, d->captions. Every image must get at least
 * one caption. 0 or -1 with an error naming the file and line. */
int cap_captions_read(const char *path, const char *text, size_t len,
                      cap_data *d);

/* ---- generated scenes (scenes.c) ---- */

#define CAP_SCENE_MAX_OBJECTS 3
#define CAP_SCENE_COLOURS 5 /* red, green, blue, yellow, purple */
#define CAP_SCENE_PHRASINGS 4
#define CAP_SCENE_TEXT 192

/* An object: one of app_shape_kind's shapes, a colour, small or large, and
 * where it was drawn (pixels). */
typedef struct {
  int shape, colour;
  bool large;
  double x, y, r;
} cap_object;

/* A scene: 1 object; 2 side by side (objects[0] on the left) or, when
 * vertical, one above the other (objects[0] on top); or 3 in a row from
 * left to right. */
typedef struct {
  int n;
  bool vertical;
  cap_object objects[CAP_SCENE_MAX_OBJECTS];
} cap_scene;

const char *cap_scene_colour_name(int colour);
/* The scene's descriptions (at most max, each NUL-terminated): 3 phrasings
 * of one object ("a small red circle", "there is ...", "... on its own"),
 * 4 of two ("A left of B", "B right of A", "A to the left of B", "B to the
 * right of A"; above / below / on top of / under), 3 of three ("A then B
 * then C", "from left to right A B and C", "from right to left C B and
 * A"). Returns how many. */
int cap_scene_captions(const cap_scene *s, char out[][CAP_SCENE_TEXT], int max);
/* Whether the scene's combination (objects, order, relation) is one of
 * the `fraction` of all combinations kept out of training. */
bool cap_scene_held_out(const cap_scene *s, double fraction);
/* Draws the placed scene (side x side planes into chw) on a random
 * background, with colour jitter and grain from g. */
void cap_scene_draw(const cap_scene *s, int side, loom_rng *g,
                    unsigned char *chw);

typedef struct {
  int side;              /* image side, 8..CAP_MAX_INPUT_SIDE */
  int64_t n[CAP_SPLITS]; /* images per split */
  int max_objects;       /* 1..CAP_SCENE_MAX_OBJECTS */
  int colours;           /* the first 2..CAP_SCENE_COLOURS colours */
  double holdout;        /* fraction of combinations kept out, [0, 1) */
  uint64_t seed;
} cap_scene_opts;

/* Makes the data set: training scenes never show a held-out combination;
 * half of the dev and test scenes do (d->novel marks them). Images are
 * named scene000000, ... 0 or -1 (bad options, memory). */
int cap_scenes_generate(const cap_scene_opts *o, cap_data *d);

#endif
