/* caption: describe images in words with a small CNN and an LSTM.
 *
 *   caption train [options]                 (the default command)
 *   caption describe --checkpoint FILE IMAGE...
 *   caption eval --checkpoint FILE [--split test] [--controls]
 *
 * With no --data, training draws its own images (scenes of coloured
 * shapes, described by a small grammar), so a first run needs nothing
 * else; --data DIR reads a Flickr8k-style folder. */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include "../common/picture.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define P "caption" /* in messages */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: caption [train] [options]           train a captioning model\n"
      "       caption describe [options] IMAGE... caption JPEG or PNG files\n"
      "       caption eval [options]              score a split, draw it\n"
      "\n"
      "data (train; eval reads them from the checkpoint unless given):\n"
      "  --data DIR          a Flickr8k-style folder (captions.txt or\n"
      "                      Flickr8k.token.txt; images.tsv or the\n"
      "                      Flickr_8k.*Images.txt lists; raw image arrays,\n"
      "                      JPEG tar shards or image folders). Without it:\n"
      "                      generated scenes of coloured shapes\n"
      "  --captions F, --split-table F, --train-list F, --dev-list F,\n"
      "  --test-list F       those files, if not in DIR or named otherwise\n"
      "  --images PATH       an image folder or tar archive (repeatable)\n"
      "  --jpeg              decode the JPEGs even if raw arrays exist\n"
      "  --image-size N      image side the model sees (64)\n"
      "  --shapes N          generated training scenes (8000); --shapes-dev N\n"
      "                      (500), --shapes-test N (500)\n"
      "  --objects N         shapes per scene, at most (3; 1..3)\n"
      "  --colours N         colours used (5; 2..5)\n"
      "  --holdout X         fraction of combinations never trained on "
      "(0.25)\n"
      "  --data-seed N       the scenes' seed (1)\n"
      "  --tokens KIND       alnum (lowercase, letters and digits only: the\n"
      "                      PyTorch caption baseline's) or words (\\w+ and\n"
      "                      single other characters) (alnum)\n"
      "  --min-count N       vocabulary: words seen N times in training (3;\n"
      "                      shapes 1)\n"
      "  --max-words N       longest training caption, in words (40)\n"
      "\n"
      "model:\n"
      "  --cnn LIST          channels of the conv-batchnorm-relu-pool blocks\n"
      "                      (32,64,128,256)\n"
      "  --embed N           word and image vector size (256)\n"
      "  --hidden N          LSTM size (512)\n"
      "  --image HOW         first (the image is the first input step), init\n"
      "                      (it sets the initial state) or every (beside\n"
      "                      each word) (first)\n"
      "  --attention N       soft attention over the last feature map with\n"
      "                      an N-unit scorer (implies --image init; 0: none)\n"
      "  --positions, --no-positions  attention reads each cell's x and y\n"
      "                      beside its features (on)\n"
      "  --attend WHEN       before: the state before a word chooses where\n"
      "                      to look for it (Show, Attend and Tell); after:\n"
      "                      the state that has read the previous word does,\n"
      "                      and the output reads what it saw (after)\n"
      "  --dropout P         before the output layer (0.5)\n"
      "\n");
  fprintf(
      f,
      "training:\n"
      "  --batch N           (image, caption) pairs a step (64)\n"
      "  --captions-per-image K  a step takes batch/K images with up to K\n"
      "                      of their captions each, so the CNN runs once\n"
      "                      per image for them (1; at most --batch)\n"
      "  --lr X              Adam learning rate (1e-3)\n"
      "  --schedule KIND     constant, cosine (over the run's steps, or its\n"
      "                      minutes by the clock) or plateau (halve on a\n"
      "                      dev BLEU-4 plateau) (constant)\n"
      "  --clip X            gradient norm clipping, 0 for none (5)\n"
      "  --epochs X, --steps N, --minutes M   how long (10 epochs); the\n"
      "                      minutes include the data and the final scores\n"
      "  --shift N           random shifts of up to N pixels (0)\n"
      "  --flip, --no-flip   random horizontal flips (on; off for shapes,\n"
      "                      whose captions say left and right)\n"
      "  --eval-every N      steps between dev scores (0: every epoch)\n"
      "  --save-every N      steps between checkpoints (1000)\n"
      "  --checkpoint FILE   where to save (caption.ckpt); FILE.best keeps\n"
      "                      the best dev BLEU-4, FILE.vocab the vocabulary\n"
      "  --resume            continue from --checkpoint exactly\n"
      "  --plot FILE         loss and BLEU curves (caption-curves.png; '')\n"
      "  --sheet FILE        test images with their captions "
      "(caption-sheet.png;\n"
      "                      ''); --sheet-images N of them (24)\n"
      "  --seed N            random seed (1)\n"
      "  --threads N         loom's threads (all cores)\n"
      "\n"
      "writing captions (describe, eval, and the scores while training):\n"
      "  --beam N            beam search of width N (1: greedy)\n"
      "  --alpha A           beam length penalty ((5+len)/6)^A (0)\n"
      "  --sample            sample instead; --temperature T (1), --top-k K\n"
      "                      (0: all), --top-p P (1)\n"
      "  --mbr N             minimum-Bayes-risk decoding: of N candidates\n"
      "                      (the N best of a beam as wide as --beam or N,\n"
      "                      or N samples with --sample), the one with the\n"
      "                      highest expected smoothed sentence BLEU against\n"
      "                      the others, weighted by the model's\n"
      "                      probabilities (samples: uniformly) (1: off;\n"
      "                      1..1000)\n"
      "  --max-len N         longest caption written (40)\n"
      "  --eval-batch N      images decoded together (100)\n"
      "\n"
      "eval: --split dev|test (test); --controls adds the image-blind\n"
      "  controls; --output FILE writes each image's name and caption,\n"
      "  tab-separated, a line each; --sheet FILE draws the split;\n"
      "  --strips PREFIX (describe\n"
      "  too) writes PREFIX-K.png: where an attention model looked for each\n"
      "  word of caption K\n"
      "\n"
      "  --quiet             no progress lines\n"
      "  --help              this text\n");
}

typedef enum { TRAIN, DESCRIBE, EVAL } command;

enum {
  O_DATA = 256,
  O_CAPTIONS,
  O_TABLE,
  O_TRAIN_LIST,
  O_DEV_LIST,
  O_TEST_LIST,
  O_IMAGES,
  O_JPEG,
  O_SIDE,
  O_SHAPES,
  O_SHAPES_DEV,
  O_SHAPES_TEST,
  O_OBJECTS,
  O_COLOURS,
  O_HOLDOUT,
  O_DATA_SEED,
  O_TOKENS,
  O_MIN_COUNT,
  O_MAX_WORDS,
  O_CNN,
  O_EMBED,
  O_HIDDEN,
  O_IMAGE,
  O_ATTENTION,
  O_POSITIONS,
  O_ATTEND,
  O_NO_POSITIONS,
  O_DROPOUT,
  O_BATCH,
  O_PER_IMAGE,
  O_LR,
  O_SCHEDULE,
  O_CLIP,
  O_EPOCHS,
  O_STEPS,
  O_MINUTES,
  O_SHIFT,
  O_FLIP,
  O_NO_FLIP,
  O_EVAL_EVERY,
  O_SAVE_EVERY,
  O_CHECKPOINT,
  O_RESUME,
  O_PLOT,
  O_SHEET,
  O_OUTPUT,
  O_SHEET_IMAGES,
  O_SEED,
  O_THREADS,
  O_BEAM,
  O_ALPHA,
  O_SAMPLE,
  O_TEMPERATURE,
  O_TOP_K,
  O_TOP_P,
  O_MBR,
  O_MAX_LEN,
  O_EVAL_BATCH,
  O_SPLIT,
  O_CONTROLS,
  O_STRIPS,
  O_QUIET,
  O_HELP,
};

static const struct option long_options[] = {
    {"data", 1, 0, O_DATA},
    {"captions", 1, 0, O_CAPTIONS},
    {"split-table", 1, 0, O_TABLE},
    {"train-list", 1, 0, O_TRAIN_LIST},
    {"dev-list", 1, 0, O_DEV_LIST},
    {"test-list", 1, 0, O_TEST_LIST},
    {"images", 1, 0, O_IMAGES},
    {"jpeg", 0, 0, O_JPEG},
    {"image-size", 1, 0, O_SIDE},
    {"shapes", 1, 0, O_SHAPES},
    {"shapes-dev", 1, 0, O_SHAPES_DEV},
    {"shapes-test", 1, 0, O_SHAPES_TEST},
    {"objects", 1, 0, O_OBJECTS},
    {"colours", 1, 0, O_COLOURS},
    {"holdout", 1, 0, O_HOLDOUT},
    {"data-seed", 1, 0, O_DATA_SEED},
    {"tokens", 1, 0, O_TOKENS},
    {"min-count", 1, 0, O_MIN_COUNT},
    {"max-words", 1, 0, O_MAX_WORDS},
    {"cnn", 1, 0, O_CNN},
    {"embed", 1, 0, O_EMBED},
    {"hidden", 1, 0, O_HIDDEN},
    {"image", 1, 0, O_IMAGE},
    {"attention", 1, 0, O_ATTENTION},
    {"positions", 0, 0, O_POSITIONS},
    {"attend", 1, 0, O_ATTEND},
    {"no-positions", 0, 0, O_NO_POSITIONS},
    {"dropout", 1, 0, O_DROPOUT},
    {"batch", 1, 0, O_BATCH},
    {"captions-per-image", 1, 0, O_PER_IMAGE},
    {"lr", 1, 0, O_LR},
    {"schedule", 1, 0, O_SCHEDULE},
    {"clip", 1, 0, O_CLIP},
    {"epochs", 1, 0, O_EPOCHS},
    {"steps", 1, 0, O_STEPS},
    {"minutes", 1, 0, O_MINUTES},
    {"shift", 1, 0, O_SHIFT},
    {"flip", 0, 0, O_FLIP},
    {"no-flip", 0, 0, O_NO_FLIP},
    {"eval-every", 1, 0, O_EVAL_EVERY},
    {"save-every", 1, 0, O_SAVE_EVERY},
    {"checkpoint", 1, 0, O_CHECKPOINT},
    {"resume", 0, 0, O_RESUME},
    {"plot", 1, 0, O_PLOT},
    {"sheet", 1, 0, O_SHEET},
    {"output", 1, 0, O_OUTPUT},
    {"sheet-images", 1, 0, O_SHEET_IMAGES},
    {"seed", 1, 0, O_SEED},
    {"threads", 1, 0, O_THREADS},
    {"beam", 1, 0, O_BEAM},
    {"alpha", 1, 0, O_ALPHA},
    {"sample", 0, 0, O_SAMPLE},
    {"temperature", 1, 0, O_TEMPERATURE},
    {"top-k", 1, 0, O_TOP_K},
    {"top-p", 1, 0, O_TOP_P},
    {"mbr", 1, 0, O_MBR},
    {"max-len", 1, 0, O_MAX_LEN},
    {"eval-batch", 1, 0, O_EVAL_BATCH},
    {"split", 1, 0, O_SPLIT},
    {"controls", 0, 0, O_CONTROLS},
    {"strips", 1, 0, O_STRIPS},
    {"quiet", 0, 0, O_QUIET},
    {"help", 0, 0, O_HELP},
    {0, 0, 0, 0}};

/* What the command line said, before defaults that depend on the data. */
typedef struct {
  cap_options o;
  bool data_given, min_count_given, flip_given, epochs_given, sheet_given;
  bool scene_given; /* any scene option */
  bool attend_given, positions_given;
} parsed;

static int word(const char *flag, const char *v, const char *const *words,
                int n, int *out) {
  for (int k = 0; k < n; k++)
    if (!strcmp(v, words[k])) {
      *out = k;
      return 0;
    }
  fprintf(stderr, P ": %s '%s' is not one of:", flag, v);
  for (int k = 0; k < n; k++)
    fprintf(stderr, " %s", words[k]);
  fputc('\n', stderr);
  return -1;
}

/* Stores the value v of option ch (written `flag`): 0, or -1 after saying
 * what is wrong with it. */
static int set_option(parsed *p, int ch, const char *flag, const char *v) {
  cap_options *o = &p->o;
  cap_source *s = &o->source;
  cap_scene_opts *sc = &s->scene;
  int64_t n;
  int k;
  const int64_t big = CAP_MAX_COUNT;
  switch (ch) {
  case O_DATA:
    p->data_given = true;
    s->scenes = !strcmp(v, "shapes");
    s->flickr.dir = s->scenes ? NULL : v;
    return 0;
  case O_CAPTIONS:
    p->data_given = true;
    s->scenes = false;
    s->flickr.captions = v;
    return 0;
  case O_TABLE:
    p->data_given = true;
    s->scenes = false;
    s->flickr.table = v;
    return 0;
  case O_TRAIN_LIST:
  case O_DEV_LIST:
  case O_TEST_LIST:
    p->data_given = true;
    s->scenes = false;
    s->flickr.lists[ch - O_TRAIN_LIST] = v;
    return 0;
  case O_IMAGES:
    if (s->flickr.n_images == CAP_MAX_SOURCES) {
      fprintf(stderr, P ": --images at most %d times\n", CAP_MAX_SOURCES);
      return -1;
    }
    p->data_given = true;
    s->scenes = false;
    s->flickr.images[s->flickr.n_images++] = v;
    return 0;
  case O_JPEG:
    s->flickr.arrays = false;
    return 0;
  case O_SIDE:
    return app_parse_int(P, flag, v, 8, CAP_MAX_INPUT_SIDE, &s->side);
  case O_SHAPES:
  case O_SHAPES_DEV:
  case O_SHAPES_TEST:
    p->scene_given = true;
    return app_parse_int(P, flag, v, ch == O_SHAPES, CAP_MAX_IMAGES / 3,
                         &sc->n[ch - O_SHAPES]);
  case O_OBJECTS:
    p->scene_given = true;
    if (app_parse_int(P, flag, v, 1, CAP_SCENE_MAX_OBJECTS, &n) < 0)
      return -1;
    sc->max_objects = (int)n;
    return 0;
  case O_COLOURS:
    p->scene_given = true;
    if (app_parse_int(P, flag, v, 2, CAP_SCENE_COLOURS, &n) < 0)
      return -1;
    sc->colours = (int)n;
    return 0;
  case O_HOLDOUT:
    p->scene_given = true;
    return app_parse_real(P, flag, v, (app_range){.hi = 1, .hi_open = true},
                          &sc->holdout);
  case O_DATA_SEED:
    p->scene_given = true;
    if (app_parse_int(P, flag, v, 0, INT64_MAX, &n) < 0)
      return -1;
    sc->seed = (uint64_t)n;
    return 0;
  case O_TOKENS:
    if (word(flag, v, (const char *[]){"alnum", "words"}, 2, &k) < 0)
      return -1;
    s->tokenizer = (cap_tokenizer)k;
    return 0;
  case O_MIN_COUNT:
    p->min_count_given = true;
    return app_parse_int(P, flag, v, 1, big, &s->min_count);
  case O_MAX_WORDS:
    return app_parse_int(P, flag, v, 1, CAP_MAX_WORDS, &s->max_words);
  case O_CNN:
    if (cap_channels_parse(v, &o->model) < 0) {
      loom_clear_error();
      fprintf(stderr,
              P ": %s '%s' is not 1 to %d channel counts in 1..%d, "
                "separated by commas\n",
              flag, v, CAP_MAX_BLOCKS, CAP_MAX_WIDTH);
      return -1;
    }
    return 0;
  case O_EMBED:
    return app_parse_int(P, flag, v, 1, CAP_MAX_WIDTH, &o->model.embed);
  case O_HIDDEN:
    return app_parse_int(P, flag, v, 1, CAP_MAX_WIDTH, &o->model.hidden);
  case O_IMAGE:
    return word(flag, v, (const char *[]){"first", "init", "every"}, 3,
                &o->model.image_mode);
  case O_ATTENTION:
    return app_parse_int(P, flag, v, 0, CAP_MAX_WIDTH, &o->model.attention);
  case O_ATTEND: {
    int after;
    if (word(flag, v, (const char *[]){"before", "after"}, 2, &after) < 0)
      return -1;
    o->model.attend_after = after;
    p->attend_given = true;
    return 0;
  }
  case O_POSITIONS:
  case O_NO_POSITIONS:
    o->model.positions = ch == O_POSITIONS;
    p->positions_given = true;
    return 0;
  case O_DROPOUT:
    return app_parse_real(P, flag, v, (app_range){.hi = 1, .hi_open = true},
                          &o->model.dropout);
  case O_BATCH:
    return app_parse_int(P, flag, v, 1, CAP_MAX_BATCH, &o->batch);
  case O_PER_IMAGE:
    return app_parse_int(P, flag, v, 1, CAP_MAX_BATCH, &o->per_image);
  case O_LR:
    return app_parse_real(P, flag, v, (app_range){.hi = 10, .lo_open = true},
                          &o->lr);
  case O_SCHEDULE:
    return word(flag, v, (const char *[]){"constant", "cosine", "plateau"}, 3,
                &o->schedule);
  case O_CLIP:
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6}, &o->clip);
  case O_EPOCHS:
    p->epochs_given = true;
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->epochs);
  case O_STEPS:
    return app_parse_int(P, flag, v, 1, big, &o->steps);
  case O_MINUTES:
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->minutes);
  case O_SHIFT:
    if (app_parse_int(P, flag, v, 0, 64, &n) < 0)
      return -1;
    o->aug.shift = (int)n;
    return 0;
  case O_FLIP:
  case O_NO_FLIP:
    p->flip_given = true;
    o->aug.flip = ch == O_FLIP;
    return 0;
  case O_EVAL_EVERY:
    return app_parse_int(P, flag, v, 0, big, &o->eval_every);
  case O_SAVE_EVERY:
    return app_parse_int(P, flag, v, 1, big, &o->save_every);
  case O_CHECKPOINT:
    o->checkpoint = v;
    return 0;
  case O_RESUME:
    o->resume = true;
    return 0;
  case O_PLOT:
    o->plot = v;
    return 0;
  case O_OUTPUT:
    o->output = v;
    return 0;
  case O_SHEET:
    p->sheet_given = true;
    o->sheet = v;
    return 0;
  case O_SHEET_IMAGES:
    return app_parse_int(P, flag, v, 1, 1000, &o->sheet_images);
  case O_SEED:
    return app_parse_int(P, flag, v, 0, INT64_MAX, &o->seed);
  case O_THREADS:
    return app_parse_int(P, flag, v, 1, 1024, &o->threads);
  case O_BEAM:
    if (app_parse_int(P, flag, v, 1, 1000, &n) < 0)
      return -1;
    o->decode.method = n > 1 ? LOOM_DECODE_BEAM : LOOM_DECODE_GREEDY;
    o->decode.beam = (int)n;
    return 0;
  case O_ALPHA:
    return app_parse_real(P, flag, v, (app_range){.hi = 10}, &o->decode.alpha);
  case O_SAMPLE:
    o->decode.method = LOOM_DECODE_SAMPLE;
    return 0;
  case O_TEMPERATURE:
    return app_parse_real(P, flag, v, (app_range){.hi = 100, .lo_open = true},
                          &o->decode.temperature);
  case O_TOP_K:
    return app_parse_int(P, flag, v, 0, CAP_MAX_VOCAB, &o->decode.top_k);
  case O_TOP_P:
    return app_parse_real(P, flag, v, (app_range){.hi = 1, .lo_open = true},
                          &o->decode.top_p);
  case O_MBR:
    return app_parse_int(P, flag, v, 1, 1000, &o->mbr);
  case O_MAX_LEN:
    return app_parse_int(P, flag, v, 1, CAP_MAX_WORDS, &o->decode.max_len_b);
  case O_EVAL_BATCH:
    return app_parse_int(P, flag, v, 1, 100000, &o->eval_batch);
  case O_SPLIT:
    if (word(flag, v, (const char *[]){"train", "dev", "test"}, 3, &k) < 0)
      return -1;
    o->split = (cap_split)k;
    return 0;
  case O_CONTROLS:
    o->controls = true;
    return 0;
  case O_STRIPS:
    o->strips = v;
    return 0;
  case O_QUIET:
    o->quiet = true;
    return 0;
  }
  return -1;
}

static parsed defaults(void) {
  parsed p = {0};
  cap_options *o = &p.o;
  o->source = (cap_source){.scenes = true,
                           .scene = {.n = {8000, 500, 500},
                                     .max_objects = 3,
                                     .colours = 5,
                                     .holdout = 0.25,
                                     .seed = 1},
                           .flickr = {.arrays = true},
                           .side = 64,
                           .tokenizer = CAP_TOKENS_ALNUM,
                           .min_count = 3,
                           .max_words = 40};
  o->model = (cap_config){.channels = {32, 64, 128, 256},
                          .blocks = 4,
                          .embed = 256,
                          .hidden = 512,
                          .image_mode = CAP_IMAGE_FIRST,
                          .positions = true, /* with --attention */
                          .attend_after = true,
                          .dropout = 0.5};
  o->batch = 64;
  o->per_image = 1;
  o->lr = 1e-3;
  o->clip = 5;
  o->epochs = 10;
  o->save_every = 1000;
  o->seed = 1;
  o->eval_batch = 100;
  o->sheet_images = 24;
  o->aug.flip = true;
  o->checkpoint = "caption.ckpt";
  o->plot = "caption-curves.png";
  o->sheet = "caption-sheet.png";
  o->split = CAP_TEST;
  o->decode = loom_decode_defaults(APP_BOS, APP_EOS);
  o->decode.max_len_b = 40;
  o->decode.beam = 1;
  o->mbr = 1;
  return p;
}

/* The command and the options: 0, 1 after --help, or -1 after saying what
 * is wrong. Image paths (describe) are left in argv[*first ..]. */
static int parse(int argc, char **argv, parsed *p, command *cmd, int *first) {
  *p = defaults();
  *cmd = TRAIN;
  int start = 1;
  if (argc > 1 && argv[1][0] != '-') {
    static const char *const names[] = {"train", "describe", "eval"};
    int k;
    if (word("command", argv[1], names, 3, &k) < 0)
      return -1;
    *cmd = (command)k;
    start = 2;
  }
  optind = start;
  int ch, at = 0;
  while ((ch = getopt_long(argc, argv, "h", long_options, &at)) != -1) {
    if (ch == 'h' || ch == O_HELP) {
      usage(stdout);
      return 1;
    }
    if (ch == '?') {
      usage(stderr);
      return -1;
    }
    char flag[40];
    snprintf(flag, sizeof flag, "--%s", long_options[at].name);
    if (set_option(p, ch, flag, optarg) < 0)
      return -1;
  }
  *first = optind;
  if (*cmd != DESCRIBE && optind < argc) {
    fprintf(stderr, P ": unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (*cmd == DESCRIBE && optind == argc) {
    fprintf(stderr, P ": describe needs at least one image file\n");
    return -1;
  }
  cap_options *o = &p->o;
  if (o->mbr > 1) { /* the candidates: an n-best list or samples */
    o->decode.nbest = (int)o->mbr;
    if (o->decode.method != LOOM_DECODE_SAMPLE) {
      o->decode.method = LOOM_DECODE_BEAM;
      if (o->decode.beam < o->mbr)
        o->decode.beam = (int)o->mbr;
    }
  }
  if (o->model.attention)
    o->model.image_mode = CAP_IMAGE_INIT;
  else { /* the defaults are for attention: without it, only what was asked */
    o->model.positions = p->positions_given && o->model.positions;
    o->model.attend_after = p->attend_given && o->model.attend_after;
  }
  if (o->per_image > o->batch) {
    fprintf(stderr,
            P ": --captions-per-image %lld: must be in [1, %lld] (--batch)\n",
            (long long)o->per_image, (long long)o->batch);
    return -1;
  }
  /* defaults that depend on the data: scenes have left and right in their
   * captions (no flips) and a small vocabulary */
  if (o->source.scenes) {
    if (!p->flip_given)
      o->aug.flip = false;
    if (!p->min_count_given)
      o->source.min_count = 1;
  } else if (p->scene_given) {
    fprintf(stderr, P ": the scene options go with generated data, not "
                      "--data DIR\n");
    return -1;
  }
  o->source.scene.side = (int)o->source.side;
  /* --steps or --minutes alone replace the default 10 epochs */
  if (!p->epochs_given && (o->steps > 0 || o->minutes > 0))
    o->epochs = 0;
  return 0;
}

/* ---- files ---- */

static void free_all(char **p, int n) {
  for (int k = 0; k < n; k++)
    free(p[k]);
}

/* No file a command writes may be one it reads, nor another it writes:
 * train writes the checkpoint, FILE.vocab, FILE.best, FILE.best.vocab,
 * the plot and the sheet; eval --output, --sheet and the strips; describe
 * the strips. They read the data's files (src: the command line's, or
 * eval's from the checkpoint), eval and describe the checkpoint and its
 * vocabulary, describe its images (argv[first ..]). 0, or -1 after
 * saying which flags name the same file. */
static int check_outputs(const parsed *p, command cmd, const cap_source *src,
                         int argc, char **argv, int first) {
  const cap_options *o = &p->o;
  const cap_flickr_source *f = &src->flickr;
  char vocab[4200], best[4200], best_vocab[4200];
  snprintf(vocab, sizeof vocab, "%s.vocab", o->checkpoint);
  snprintf(best, sizeof best, "%s.best", o->checkpoint);
  snprintf(best_vocab, sizeof best_vocab, "%s.best.vocab", o->checkpoint);
  int n_images = cmd == DESCRIBE ? argc - first : 0;
  app_named_path *ins =
      malloc((size_t)(n_images + 8 + CAP_MAX_SOURCES + CAP_MAX_DIR_FILES) *
             sizeof *ins);
  /* the files --data DIR holds that no flag names, as "--data (NAME)" */
  char *found[CAP_MAX_DIR_FILES], flags[CAP_MAX_DIR_FILES][80];
  int n_found = src->scenes ? 0
                            : cap_flickr_dir_files(f, (int)src->side, found,
                                                   CAP_MAX_DIR_FILES);
  if (!ins) {
    fprintf(stderr, P ": out of memory\n");
    free_all(found, n_found);
    return -1;
  }
  int n_ins = 0;
  for (int k = 0; k < n_found; k++) {
    const char *slash = strrchr(found[k], '/');
    snprintf(flags[k], sizeof flags[k], "--data (%.60s)",
             slash ? slash + 1 : found[k]);
    ins[n_ins++] = (app_named_path){flags[k], found[k]};
  }
  if (!src->scenes) {
    static const char *const lists[3] = {"--train-list", "--dev-list",
                                         "--test-list"};
    ins[n_ins++] = (app_named_path){"--data", f->dir};
    ins[n_ins++] = (app_named_path){"--captions", f->captions};
    ins[n_ins++] = (app_named_path){"--split-table", f->table};
    for (int k = 0; k < 3; k++)
      ins[n_ins++] = (app_named_path){lists[k], f->lists[k]};
    for (int k = 0; k < f->n_images; k++)
      ins[n_ins++] = (app_named_path){"--images", f->images[k]};
  }
  app_named_path outs[6] = {{0}};
  int n_outs = 0;
  if (cmd == TRAIN) {
    outs[n_outs++] = (app_named_path){"--checkpoint", o->checkpoint};
    outs[n_outs++] = (app_named_path){"--checkpoint (FILE.vocab)", vocab};
    outs[n_outs++] = (app_named_path){"--checkpoint (FILE.best)", best};
    outs[n_outs++] =
        (app_named_path){"--checkpoint (FILE.best.vocab)", best_vocab};
    outs[n_outs++] = (app_named_path){"--plot", o->plot};
    outs[n_outs++] = (app_named_path){"--sheet", o->sheet};
  } else {
    ins[n_ins++] = (app_named_path){"--checkpoint", o->checkpoint};
    ins[n_ins++] = (app_named_path){"--checkpoint (FILE.vocab)", vocab};
    if (cmd == EVAL) {
      outs[n_outs++] = (app_named_path){"--output", o->output};
      outs[n_outs++] =
          (app_named_path){"--sheet", p->sheet_given ? o->sheet : NULL};
    }
  }
  for (int a = first; a < first + n_images; a++)
    ins[n_ins++] = (app_named_path){"image", argv[a]};
  int rc = app_refuse_overwrites(P, outs, n_outs, ins, n_ins);
  /* the strips: PREFIX-K.png for each image described, or each of the
   * split's first --sheet-images */
  bool strips = cmd != TRAIN && o->strips && *o->strips;
  int64_t n_strips = cmd == DESCRIBE ? n_images : o->sheet_images;
  for (int64_t k = 1; rc == 0 && strips && k <= n_strips; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s-%lld.png", o->strips, (long long)k);
    app_named_path both[3] = {
        outs[0], outs[1], {"--strips (PREFIX-K.png)", path}};
    rc = app_refuse_overwrites(P, both + 2 - n_outs, n_outs + 1, ins, n_ins);
  }
  free(ins);
  free_all(found, n_found);
  return rc;
}

/* Whether the files a command writes after its work can be written
 * (app_check_writable): train's checkpoint and the names derived from it,
 * the plot and the sheet ('' for none); eval's --output, --sheet and
 * strips; describe's strips, one for each of its n_images. Checked before
 * the work, so that it is not lost for one. The exit status: 0, 2 for ''
 * where a file name is needed, else 1. */
static int check_writable(const parsed *p, command cmd, int n_images) {
  const cap_options *o = &p->o;
  const char *ck = o->checkpoint;
  char names[4][4200];
  static const char *const suffix[4][2] = {
      {"", "--checkpoint"},
      {".vocab", "--checkpoint (FILE.vocab)"},
      {".best", "--checkpoint (FILE.best)"},
      {".best.vocab", "--checkpoint (FILE.best.vocab)"}};
  for (int k = 0; cmd == TRAIN && k < 4; k++) {
    snprintf(names[k], sizeof names[k], "%s%s", ck, suffix[k][0]);
    if (app_check_writable(P, suffix[k][1], names[k]) < 0)
      return *ck ? 1 : 2;
  }
  const char *plot = cmd == TRAIN ? o->plot : NULL,
             *sheet = cmd == TRAIN || p->sheet_given ? o->sheet : NULL,
             *output = cmd == EVAL ? o->output : NULL;
  if ((plot && *plot && app_check_writable(P, "--plot", plot) < 0) ||
      (sheet && *sheet && cmd != DESCRIBE &&
       app_check_writable(P, "--sheet", sheet) < 0))
    return 1;
  if (output && app_check_writable(P, "--output", output) < 0)
    return *output ? 1 : 2;
  bool strips = cmd != TRAIN && o->strips && *o->strips;
  int64_t n_strips = cmd == DESCRIBE ? n_images : o->sheet_images;
  for (int64_t k = 1; strips && k <= n_strips; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s-%lld.png", o->strips, (long long)k);
    if (app_check_writable(P, "--strips (PREFIX-K.png)", path) < 0)
      return 1;
  }
  return 0;
}

/* ---- describe ---- */

/* The attention strip of a caption (words) of the image's planes chw into
 * path. 0, or -1 after saying so. */
static int strip(const char *path, cap_model *m, const cap_session *s,
                 const unsigned char *chw, const app_tokens *words) {
  int64_t *ids = malloc((size_t)(words->n + 1) * sizeof *ids);
  for (int64_t t = 0; ids && t < words->n; t++)
    ids[t] =
        app_vocab_id(&s->vocab, app_token(words, t), app_token_len(words, t));
  int rc = ids ? cap_attention_strip(path, m, &s->vocab, &s->norm, chw, ids,
                                     words->n)
               : -1;
  if (rc < 0)
    app_report_write_error(P, path);
  free(ids);
  return rc;
}

static int describe(const cap_options *o, int argc, char **argv, int first) {
  cap_session s;
  cap_model *m;
  if (cap_checkpoint_load(o->checkpoint, &s, &m, NULL, NULL, NULL) < 0) {
    fprintf(stderr, P ": %s: %s\n", o->checkpoint, loom_last_error());
    return 1;
  }
  int side = (int)s.cfg.side, rc = 0;
  size_t size = (size_t)3 * side * side;
  unsigned char *chw = malloc(size);
  for (int a = first; chw && a < argc; a++) {
    size_t len;
    unsigned char *bytes = app_read_file_max(argv[a], CAP_MAX_FILE_BYTES, &len);
    loom_scope *sc = loom_scope_begin();
    loom_tensor *x = loom_empty(LOOM_F32, LOOM_SHAPE(1, 3, side, side));
    loom_decode_result r = {0};
    if (!bytes || cap_image_fit(bytes, len, argv[a], side, chw) < 0 || !x) {
      fprintf(stderr, P ": %s\n", loom_last_error());
      loom_clear_error();
      rc = 1;
    } else {
      cap_pixels_to_input(chw, side, &s.norm, NULL, loom_data_f32(x));
      app_tokens words = {0};
      app_buf text = {0};
      if (cap_describe(m, x, &o->decode, &r) < 0 ||
          cap_choose_caption(&s.vocab, &r, 0,
                             o->decode.method == LOOM_DECODE_SAMPLE,
                             &words) < 0 ||
          cap_tokens_text(&words, &text) < 0) {
        fprintf(stderr, P ": %s: %s\n", argv[a], loom_last_error());
        loom_clear_error();
        rc = 1;
      } else {
        printf("%s\n", text.data ? text.data : "");
        fflush(stdout);
      }
      if (rc == 0 && o->strips && *o->strips && m->cfg.attention) {
        char path[4096];
        snprintf(path, sizeof path, "%s-%d.png", o->strips, a - first + 1);
        if (strip(path, m, &s, chw, &words) < 0)
          rc = 1;
      }
      loom_decode_result_free(&r);
      app_tokens_free(&words);
      app_buf_free(&text);
    }
    free(bytes);
    loom_scope_end(sc);
  }
  if (!chw)
    rc = 1;
  if (o->strips && *o->strips && !m->cfg.attention)
    fprintf(stderr, P ": --strips: the model has no attention\n"), rc = 1;
  free(chw);
  cap_model_free(m);
  cap_session_free(&s);
  return rc;
}

/* ---- eval ---- */

/* "name<TAB>caption" for each image, in the split's order, written whole
 * or not at all. */
static int write_captions(const char *path, const cap_data *d,
                          const int64_t *images, const app_tokens *hyps,
                          int64_t n) {
  loom_file_writer *w = loom_file_writer_open(path);
  FILE *f = loom_file_writer_stream(w);
  if (!f)
    return -1;
  int rc = 0;
  app_buf text = {0};
  for (int64_t k = 0; rc == 0 && k < n; k++) {
    rc = cap_tokens_text(&hyps[k], &text);
    if (rc == 0 && fprintf(f, "%s\t%s\n", app_strtab_str(&d->names, images[k]),
                           text.data ? text.data : "") < 0)
      rc = -1; /* the commit names the failed write */
  }
  app_buf_free(&text);
  if (rc < 0 && loom_last_status() != LOOM_OK) {
    loom_file_writer_abort(w);
    return -1;
  }
  return loom_file_writer_commit(w);
}

static int eval(const parsed *p) {
  const cap_options *o = &p->o;
  cap_session s;
  cap_model *m;
  if (cap_checkpoint_load(o->checkpoint, &s, &m, NULL, NULL, NULL) < 0) {
    fprintf(stderr, P ": %s: %s\n", o->checkpoint, loom_last_error());
    return 1;
  }
  /* the checkpoint's data unless the command line names other data */
  cap_source src = s.source;
  if (p->data_given) {
    src = o->source;
    src.n_paths = 0;
    src.side = s.source.side;
    src.tokenizer = s.source.tokenizer;
    src.max_words = s.source.max_words;
  }
  if (check_outputs(p, EVAL, &src, 0, NULL, 0) < 0) {
    cap_model_free(m);
    cap_session_free(&s);
    return 2;
  }
  cap_data d = {0};
  cap_corpus c = {0};
  int64_t n = 0, *images = NULL;
  int rc = 0;
  if (cap_source_load(&src, o->quiet ? NULL : stderr, &d) < 0 ||
      cap_corpus_prepare(&src, &d, &s.vocab, &c) < 0 ||
      !(images = cap_data_split(&d, o->split, &n))) {
    fprintf(stderr, P ": %s\n", loom_last_error());
    rc = 1;
  }
  cap_scores sc;
  app_tokens *hyps = NULL;
  if (rc == 0 && n == 0) {
    fprintf(stderr, P ": the %s split has no images\n",
            cap_split_name(o->split));
    rc = 1;
  }
  if (rc == 0 && cap_evaluate(m, &d, &c, &s.norm, images, n, &o->decode,
                              o->eval_batch, &sc, &hyps) < 0) {
    fprintf(stderr, P ": %s\n", loom_last_error());
    rc = 1;
  }
  if (rc == 0) {
    char what[96], mbr[40] = "";
    if (o->mbr > 1)
      snprintf(mbr, sizeof mbr, ", MBR of %lld", (long long)o->mbr);
    snprintf(what, sizeof what, "%s (%s%s)", cap_split_name(o->split),
             o->decode.method == LOOM_DECODE_BEAM     ? "beam"
             : o->decode.method == LOOM_DECODE_SAMPLE ? "sampled"
                                                      : "greedy",
             mbr);
    cap_print_scores(stdout, what, &sc, d.novel != NULL);
  }
  if (rc == 0 && o->controls) {
    app_tokens blind = {0};
    app_buf text = {0};
    cap_scores bs;
    int64_t best;
    if (cap_blind_average(m, &d, &c, images, n, &o->decode, &blind, &bs) < 0 ||
        cap_tokens_text(&blind, &text) < 0) {
      fprintf(stderr, P ": %s\n", loom_last_error());
      rc = 1;
    } else {
      char what[600];
      snprintf(what, sizeof what,
               "control, the average image's caption "
               "for all (\"%.500s\")",
               text.data ? text.data : "");
      cap_print_scores(stdout, what, &bs, false);
    }
    if (rc == 0 && cap_blind_best(&d, &c, images, n, &best, &bs) == 0) {
      cap_tokens_text(&c.words[best], &text);
      char what[600];
      snprintf(what, sizeof what,
               "control, the best single training "
               "caption for all (\"%.500s\")",
               text.data ? text.data : "");
      cap_print_scores(stdout, what, &bs, false);
    } else if (rc == 0) {
      fprintf(stderr, P ": %s\n", loom_last_error());
      rc = 1;
    }
    app_tokens_free(&blind);
    app_buf_free(&text);
  }
  if (rc == 0 && o->output &&
      write_captions(o->output, &d, images, hyps, n) < 0) {
    app_report_write_error(P, o->output);
    rc = 1;
  }
  bool sheet = p->sheet_given && *o->sheet;
  if (rc == 0 && sheet) {
    if (cap_contact_sheet(o->sheet, &d, &c, images, hyps,
                          n < o->sheet_images ? n : o->sheet_images) < 0) {
      app_report_write_error(P, o->sheet);
      rc = 1;
    } else if (!o->quiet) {
      fprintf(stderr, "contact sheet: %s\n", o->sheet);
    }
  }
  if (rc == 0 && o->strips && *o->strips) {
    if (!m->cfg.attention) {
      fprintf(stderr, P ": --strips: the model has no attention\n");
      rc = 1;
    }
    size_t size = (size_t)3 * d.side * d.side;
    for (int64_t k = 0; rc == 0 && k < n && k < o->sheet_images; k++) {
      char path[4096];
      snprintf(path, sizeof path, "%s-%lld.png", o->strips, (long long)k + 1);
      if (strip(path, m, &s, d.pixels + (size_t)images[k] * size, &hyps[k]) < 0)
        rc = 1;
    }
  }
  cap_tokens_list_free(hyps, n);
  free(images);
  cap_corpus_free(&c);
  cap_data_free(&d);
  cap_model_free(m);
  cap_session_free(&s);
  return rc;
}

int main(int argc, char **argv) {
  parsed p;
  command cmd;
  int first, rc = parse(argc, argv, &p, &cmd, &first);
  if (rc != 0)
    return rc < 0 ? 2 : 0;
  /* eval checks its outputs against the data its checkpoint names */
  if (cmd != EVAL && check_outputs(&p, cmd, &p.o.source, argc, argv, first) < 0)
    return 2;
  rc = check_writable(&p, cmd, argc - first);
  if (rc != 0)
    return rc;
  if (p.o.threads > 0)
    loom_set_num_threads((int)p.o.threads);
  /* The training step's shapes change with each batch's caption length:
   * keep up to half again its peak memory for reuse, not fresh pages each
   * step (0.65 CPU s a step on the Flickr8k subset against 0.77, peak RSS
   * 470 MB against 430; README). */
  if (loom_set_cache_slack(50) < 0) {
    fprintf(stderr, P ": %s\n", loom_last_error());
    return 1;
  }
  rc = cmd == TRAIN      ? cap_train(&p.o)
       : cmd == DESCRIBE ? describe(&p.o, argc, argv, first)
                         : eval(&p);
  /* the captions and the scores go to standard output: lost, they are an
   * output not written */
  if (app_finish_stdout(P, cmd == DESCRIBE ? "the captions" : "the scores") <
          0 &&
      rc == 0)
    rc = 1;
  loom_cleanup();
  return rc;
}
