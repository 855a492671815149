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
/* The files cap_flickr_load would read from the folder src->dir, or
 * beside the split table, without a flag naming them: the split table or
 * lists, the captions, the raw arrays at side x side and the image
 * archives. Each path into out (the caller frees each); how many, at most
 * max. The images inside image folders are not listed (only the split
 * names them). */
int cap_flickr_dir_files(const cap_flickr_source *src, int side, char **out,
                         int max);
/* Room for all of them: the split's 4 files, a captions file, the raw
 * arrays (one, or up to 64 parts) and the archives. */
#define CAP_MAX_DIR_FILES (5 + 65 + CAP_MAX_SOURCES)

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
/* Whether the scene (of several objects) is a combination (objects, order,
 * relation) of the `fraction` of all combinations kept out of training.
 * Scenes of one object are never held out. */
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

/* ---- the model (model.c) ---- */

#define CAP_MAX_BLOCKS 6
#define CAP_MAX_WIDTH 4096
#define CAP_MAX_VOCAB 1000000

/* How the image vector enters the LSTM. */
typedef enum {
  CAP_IMAGE_FIRST, /* as the first input step (Show and Tell) */
  CAP_IMAGE_INIT,  /* as the initial state: h0, c0 = tanh(W v + b) */
  CAP_IMAGE_EVERY, /* beside the word embedding at every step */
  CAP_IMAGE_MODES
} cap_image_mode;

typedef struct {
  int64_t side;                     /* input images: 3 x side x side */
  int64_t channels[CAP_MAX_BLOCKS]; /* CNN blocks' output channels */
  int blocks;
  int64_t vocab, embed, hidden; /* embed: words and the image vector */
  int image_mode;               /* a cap_image_mode */
  int64_t attention;            /* additive attention's hidden size; 0: none */
  bool positions; /* attention: each cell's coordinates join its features */
  /* attention from the state that has read the previous word (its
   * context beside that state into the output layer, and into the next
   * step's input), not from the state before it (Show, Attend and Tell) */
  bool attend_after;
  double dropout; /* before the output layer */
} cap_config;

/* 0, or -1 with an error saying what does not fit. Attention needs
 * CAP_IMAGE_INIT (the image enters through the state and attention). */
int cap_config_check(const cap_config *c);
/* The side of the CNN's last feature map (attention has its square). */
int64_t cap_model_feature_side(const cap_config *cfg);

typedef struct {
  loom_module base;
  cap_config cfg;
  loom_conv2d_layer *conv[CAP_MAX_BLOCKS];
  loom_batch_norm_layer *bn[CAP_MAX_BLOCKS];
  loom_linear_layer *image;           /* pooled features -> image vector */
  loom_linear_layer *init_h, *init_c; /* CAP_IMAGE_INIT */
  loom_seq_attention *attend;         /* with attention */
  loom_embedding_layer *embed;
  loom_rnn *lstm;
  loom_dropout_layer *drop;
  loom_linear_layer *out;
  loom_rng *rng; /* dropout masks; owned */
} cap_model;

/* A model with fresh parameters drawn from `seed` (caller frees). NULL
 * with an error on a bad config. */
cap_model *cap_model_new(const cap_config *cfg, uint64_t seed);
void cap_model_free(cap_model *m);

/* The CNN on images (B, 3, side, side): the last feature map (B, C, s, s)
 * into *features (if non-NULL) and the image vector (B, embed). 0 or -1;
 * results scope-owned. */
int cap_model_encode(cap_model *m, const loom_tensor *images,
                     loom_tensor **features, loom_tensor **vector);

/* A teacher-forced batch: images (I, 3, side, side); image_of (B) int64
 * the image of each caption (NULL when I is B and caption b is image b's);
 * inputs (T, B) int64 hold bos w1 .. wn of each caption then padding;
 * keep (N) int64 lists the positions t * B + b that predict a word or the
 * eos, targets (N) those words. */
typedef struct {
  loom_tensor *images, *image_of, *inputs, *keep, *targets;
} cap_batch;

/* The LSTM's outputs (T, B, hidden) over inputs (T, B) for images (I, 3,
 * side, side): caption b is image image_of[b]'s (int64 (B), or NULL when
 * I is B and caption b is image b's). With attention, *alpha receives the
 * weights (T, B, s * s) (NULL without). 0 or -1. */
int cap_model_hidden(cap_model *m, const loom_tensor *images,
                     const loom_tensor *image_of, const loom_tensor *inputs,
                     loom_tensor **hidden, loom_tensor **alpha);
/* One word's step of an attention model (model.c explains before and
 * after): state (h, c) (B, hidden) is replaced by the next one; *z is the
 * previous context (B, K) when attending after (read, then replaced) and
 * receives the new one; *out what the output layer reads (B, hidden) or
 * (B, hidden + K); *alpha the weights (B, s * s). word: (B, embed). 0 or
 * -1; results scope-owned. */
int cap_model_attend_step(cap_model *m, const loom_tensor *keys,
                          const loom_tensor *word, loom_tensor **state,
                          loom_tensor **z, loom_tensor **out,
                          loom_tensor **alpha);
/* Attending after: the context before the first word, zeros (B, K) for
 * keys (B, L, K); scope-owned. */
loom_tensor *cap_model_first_context(const loom_tensor *keys);
/* Mean cross entropy of the targets (dropout applies in training mode);
 * alpha as cap_model_hidden. 0 or -1. */
int cap_model_loss(cap_model *m, const cap_batch *b, loom_tensor **loss,
                   loom_tensor **alpha);

/* ---- captions as tokens and ids (captions.c) ---- */

/* How a caption is split into words: ALNUM as the PyTorch caption
 * baseline (lowercased, every character but a-z, 0-9 and whitespace
 * deleted, split at whitespace: "T-shirt ." is "tshirt"); WORDS as the
 * translation baseline (app_tokenize_lower: \w+ runs and single other
 * characters). */
typedef enum { CAP_TOKENS_ALNUM, CAP_TOKENS_WORDS } cap_tokenizer;
const char *cap_tokenizer_name(cap_tokenizer k);
/* Appends the tokens of text[0..len) to out; 0, or -1 (invalid UTF-8
 * named as `name` with the byte, memory). */
int cap_tokenize(cap_tokenizer k, const char *text, size_t len, app_tokens *out,
                 const char *name);

/* Every caption of a data set as tokens (the references BLEU compares
 * with), the vocabulary, and the ids the model trains on. */
typedef struct {
  int64_t n; /* captions */
  cap_tokenizer tokenizer;
  app_tokens *words; /* n */
  app_vocab vocab;
  int64_t *ids, *start; /* caption j: ids[start[j] .. start[j + 1]) */
} cap_corpus;

/* Tokenises d's captions (c->words); 0 or -1. */
int cap_corpus_tokenize(const cap_data *d, cap_tokenizer k, cap_corpus *c);
/* The vocabulary of the training split's tokens seen min_count times. */
int cap_corpus_build_vocab(cap_corpus *c, const cap_data *d, int64_t min_count);
/* Each caption's ids (unknown words APP_UNK), at most max_words. */
int cap_corpus_map(cap_corpus *c, int64_t max_words);
void cap_corpus_free(cap_corpus *c);
/* ids as vocabulary tokens into out (cleared first). 0 or -1. */
int cap_ids_to_tokens(const app_vocab *v, const int64_t *ids, int64_t n,
                      app_tokens *out);
/* The tokens joined by single spaces into out (cleared first). */
int cap_tokens_text(const app_tokens *t, app_buf *out);
void cap_tokens_list_free(app_tokens *list, int64_t n);

/* ---- pairs and batches (batches.c) ---- */

/* The (image, caption) pairs a split trains on: every caption of every
 * image, in groups of up to `per_image` captions of one image (group g
 * holds pairs group[g] .. group[g + 1] - 1). A step takes whole groups,
 * so the CNN sees each image once for all its captions in the group. */
typedef struct {
  int64_t n, n_groups;
  int64_t *image, *caption, *group;
} cap_pairs;
int cap_pairs_of(const cap_data *d, cap_split s, int64_t per_image,
                 cap_pairs *p);
void cap_pairs_free(cap_pairs *p);
/* order = a random permutation of 0 .. n-1 drawn from g. */
void cap_shuffle(int64_t *order, int64_t n, loom_rng *g);

/* Training augmentation: shifts of up to `shift` pixels, flips. */
typedef struct {
  int shift;
  bool flip;
} cap_augment_opts;

/* The images (n, 3, side, side) float32, normalised, augmented from g
 * when aug is non-NULL; *out scope-owned. 0 or -1. */
int cap_images_tensor(const cap_data *d, const int64_t *images, int64_t n,
                      const cap_norm *nm, const cap_augment_opts *aug,
                      loom_rng *g, loom_tensor **out);
/* A batch of B pairs: n_images images, and captions[k] of image
 * image_of[k] (an index into images; NULL when pair k is image k and
 * n_images is B); tensors scope-owned. */
int cap_batch_build(const cap_data *d, const cap_corpus *c, const cap_norm *nm,
                    const int64_t *images, int64_t n_images,
                    const int64_t *captions, const int64_t *image_of, int64_t B,
                    const cap_augment_opts *aug, loom_rng *g, cap_batch *b);

/* ---- writing captions (describe.c) ---- */

/* Decodes captions for images (N, 3, side, side) with o (greedy, sampling
 * or beam; bos/eos APP_BOS/APP_EOS; APP_PAD and APP_BOS suppressed beside
 * the tokens o suppresses), in evaluation mode without gradients. *r as
 * loom_decode fills it. 0 or -1. */
int cap_describe(cap_model *m, const loom_tensor *images,
                 const loom_decode_opts *o, loom_decode_result *r);
/* Where the model looked: for image (1, 3, side, side) and the caption's
 * n word ids, the attention weights before each word and before the eos,
 * (n + 1) x s*s floats into maps. 0 or -1 (no attention, ...). */
int cap_attention_maps(cap_model *m, const loom_tensor *image,
                       const int64_t *words, int64_t n, float *maps);
/* The feature map (B, C, s, s) as attention keys (B, s*s, C), or
 * (B, s*s, C + 2) with the cells' x and y after their features when the
 * model has positions. NULL with an error; scope-owned. */
loom_tensor *cap_model_keys(const cap_model *m, const loom_tensor *features);

/* ---- scores (evaluate.c) ---- */

typedef struct {
  double bleu[4];             /* corpus BLEU-1..4, x100 */
  int64_t images, exact;      /* exact: the caption is one of the references */
  int64_t novel, novel_exact; /* images of held-out combinations */
  double mean_len;
  int64_t distinct; /* different captions written */
} cap_scores;

/* Scores hyps[k], the caption of image images[k], against the image's
 * references. 0 or -1. */
int cap_score(const cap_data *d, const cap_corpus *c, const int64_t *images,
              int64_t n, const app_tokens *hyps, cap_scores *s);
/* The caption of sentence k of r into out (cleared first): its best
 * hypothesis, or when r holds nbest > 1 candidates the minimum-Bayes-risk
 * choice among them (app_mbr_choose), weighted by the model's
 * probabilities renormalised over them (beam search's n-best) or
 * uniformly (`sampled`: each draw counts once). 0 or -1. */
int cap_choose_caption(const app_vocab *v, const loom_decode_result *r,
                       int64_t k, bool sampled, app_tokens *out);
/* Captions for images[0..n) of d, `batch` at a time, into hyps (n lists,
 * cleared first), each chosen by cap_choose_caption. */
int cap_decode_images(cap_model *m, const cap_data *d, const cap_corpus *c,
                      const cap_norm *nm, const int64_t *images, int64_t n,
                      const loom_decode_opts *o, int64_t batch,
                      app_tokens *hyps);
/* Both: decodes and scores; *hyps (if non-NULL) receives the captions
 * (free with cap_tokens_list_free(*hyps, n)). */
int cap_evaluate(cap_model *m, const cap_data *d, const cap_corpus *c,
                 const cap_norm *nm, const int64_t *images, int64_t n,
                 const loom_decode_opts *o, int64_t batch, cap_scores *s,
                 app_tokens **hyps);
/* The baseline's blind control: the caption written for an all-average
 * image (*caption), scored as every image's. */
int cap_blind_average(cap_model *m, const cap_data *d, const cap_corpus *c,
                      const int64_t *images, int64_t n,
                      const loom_decode_opts *o, app_tokens *caption,
                      cap_scores *s);
/* The strongest blind control: of the training captions, the one that
 * scores the best BLEU-4 written for every image (*best_caption: its
 * index in d). */
int cap_blind_best(const cap_data *d, const cap_corpus *c,
                   const int64_t *images, int64_t n, int64_t *best_caption,
                   cap_scores *s);

/* ---- where the data comes from, and checkpoints (checkpoint.c) ---- */

#define CAP_MAX_COUNT 1000000000000LL /* steps, epochs, counts */
#define CAP_MAX_WORDS 1000            /* words of a training caption */

/* A run's data, saved in its checkpoints so that eval can rebuild the
 * splits: generated scenes (with their options) or a Flickr8k-style
 * folder, the image side, the tokeniser, the vocabulary's minimum count
 * and the longest training caption. */
typedef struct {
  bool scenes;
  cap_scene_opts scene;
  cap_flickr_source flickr;
  int64_t side;
  cap_tokenizer tokenizer;
  int64_t min_count, max_words;
  char *paths[CAP_MAX_SOURCES + 6]; /* copies the struct owns (read from a
                                       checkpoint) */
  int n_paths;
} cap_source;
/* Loads the data set (progress to log, NULL: none). 0 or -1. */
int cap_source_load(const cap_source *src, FILE *log, cap_data *d);
void cap_source_free(cap_source *src);

/* Loss and dev-split scores over training. */
#define CAP_DEV_COLUMNS 6 /* step, BLEU-1..4, exact match in percent */
typedef struct {
  double *train; /* n_train rows (step, smoothed loss) */
  double *dev;   /* n_dev rows of CAP_DEV_COLUMNS */
  int64_t n_train, n_dev, cap_train, cap_dev;
} cap_history;
int cap_history_add(cap_history *h, bool dev, const double *row);
void cap_history_free(cap_history *h);

/* Everything a checkpoint holds beside the weights and optimizer. */
typedef struct {
  cap_config cfg;
  cap_source source;
  app_vocab vocab;
  cap_norm norm;
  int64_t epoch, position, n_order; /* where training is in the epoch */
  int64_t *order;                   /* n_order pairs: the epoch's order */
  cap_history history;
  double smooth; /* the smoothed training loss (NaN before a step) */
} cap_session;
void cap_session_free(cap_session *s);

const char *cap_image_mode_name(int mode);
int cap_image_mode_parse(const char *name); /* -1 if unknown */
/* "32,64,128,256" into c->channels and c->blocks; 0 or -1. */
int cap_channels_parse(const char *text, cap_config *c);
/* The config as "key=value" text, and back (checked as cap_config_check
 * does). 0 or -1. */
int cap_config_text(const cap_config *c, char *buf, size_t size);
int cap_config_parse(const char *line, cap_config *c);

/* Writes a checkpoint (the weights, opt and sched (either may be NULL),
 * the step, the model's generator, the session) and PATH.vocab. 0 or -1. */
int cap_checkpoint_save(const char *path, const cap_session *s, cap_model *m,
                        loom_optimizer *opt, loom_schedule *sched,
                        int64_t step);
/* Reads a checkpoint's session (and PATH.vocab), checking every entry. */
int cap_session_read(cap_session *s, const char *path,
                     const loom_tensor_map *extra);
/* The session of the checkpoint at `path` (0, or -1 with an error and *s
 * empty); _file: of that checkpoint as loom_safetensors_load read it
 * (borrowed), so that the weights can be restored from the same reading. */
int cap_checkpoint_peek(const char *path, cap_session *s);
int cap_checkpoint_peek_file(const loom_tensor_map *file, const char *path,
                             cap_session *s);
/* The session and a model made from it with the saved weights (*m:
 * caller frees); opt, sched and step are restored when non-NULL. 0, or -1
 * with nothing to free. */
int cap_checkpoint_load(const char *path, cap_session *s, cap_model **m,
                        loom_optimizer *opt, loom_schedule *sched,
                        int64_t *step);

/* ---- the commands (train.c, main.c) and pictures (pictures.c) ---- */

#define CAP_MAX_BATCH 65536

typedef enum {
  CAP_SCHEDULE_CONSTANT,
  CAP_SCHEDULE_COSINE,
  CAP_SCHEDULE_PLATEAU
} cap_schedule;

typedef struct {
  cap_source source;
  cap_config model;  /* side and vocab come from the data */
  int64_t per_image; /* a step's captions of one image at most */
  int64_t batch, steps, eval_every, save_every, seed, threads, eval_batch,
      sheet_images;
  double lr, clip, epochs, minutes;
  int schedule; /* a cap_schedule */
  cap_augment_opts aug;
  const char *checkpoint, *plot, *sheet, *strips, *output;
  bool resume, quiet, controls;
  cap_split split;
  loom_decode_opts decode;
  int64_t mbr; /* candidates of the minimum-Bayes-risk choice (1: off);
                  parsing sets decode.nbest to it */
} cap_options;

/* --schedule cosine: the rate at `fraction` (clamped to [0, 1]) of the
 * run, from lr down to CAP_COSINE_FLOOR * lr at the end, on half a cosine
 * (the step-counted schedule's curve). A run with --minutes and no step
 * count takes the fraction from the clock: the time gone of its budget,
 * so that it anneals within its minutes (and a resumed run follows its
 * own clock, not bit-identically). */
#define CAP_COSINE_FLOOR 0.01
double cap_cosine_lr(double lr, double fraction);

/* caption train: the exit status (0 done, 1 failed or something asked for
 * was not written). */
int cap_train(const cap_options *o);

/* The corpus of d for a run's source: tokens, the vocabulary (built from
 * the training split, or a copy of `vocab` when given) and ids. */
int cap_corpus_prepare(const cap_source *src, const cap_data *d,
                       const app_vocab *vocab, cap_corpus *c);

/* "WHAT: N images  BLEU-1 ..  BLEU-4 ..  [exact match ..]" on a line. */
void cap_print_scores(FILE *f, const char *what, const cap_scores *s,
                      bool exact);
/* A contact sheet of images[0..n) of d with hyps[k] (green when it is a
 * reference) and the first reference under each. 0 or -1. */
int cap_contact_sheet(const char *path, const cap_data *d, const cap_corpus *c,
                      const int64_t *images, const app_tokens *hyps, int64_t n);
/* For an attention model: the image (planes) once per word of the
 * caption's ids (and the end), with where the model looked. 0 or -1. */
int cap_attention_strip(const char *path, cap_model *m, const app_vocab *v,
                        const cap_norm *nm, const unsigned char *chw,
                        const int64_t *words, int64_t n);

#endif
