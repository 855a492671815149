/* translate train's command line: usage, defaults and the checks of every
 * option (ranges named in the messages). */
#include "train.h"

#include <getopt.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: translate train --src FILE --tgt FILE [options]\n"
      "\n"
      "Learns to translate the lines of --src into those of --tgt (two "
      "files\n"
      "with the same number of lines, UTF-8).\n"
      "\n"
      "data:\n"
      "  --valid-src F, --valid-tgt F  held-out pairs: loss and BLEU after\n"
      "                       each epoch, the best kept in CHECKPOINT.best\n"
      "  --tokenize lower|reversible   lower: lowercase words and "
      "punctuation\n"
      "                       (\\w+|[^\\w\\s], as the PyTorch baseline); "
      "reversible:\n"
      "                       case kept and spacing recorded, so output is\n"
      "                       detokenised text (lower)\n"
      "  --bpe N              learn N byte-pair merges on the training text "
      "(0:\n"
      "                       whole words) (0)\n"
      "  --joint              one vocabulary (and BPE) for both sides\n"
      "  --min-count N        words seen fewer times are <unk> (2)\n"
      "\n"
      "model:\n"
      "  --model NAME         transformer | rnn (transformer)\n"
      "  --dropout P          (transformer 0.1, rnn 0.3)\n"
      "  transformer: --d-model N (256) --heads N (8) --ff N (512)\n"
      "    --enc-layers N (3) --dec-layers N (3) --max-positions N (1024)\n"
      "    --learned-positions --pre-norm --tie-output\n"
      "    --share-all (one embedding for everything; needs --joint)\n"
      "  rnn: --cell lstm|gru (lstm) --attention dot|general|concat|bahdanau\n"
      "    (general) --embed N (256) --hidden N (512, both directions of the\n"
      "    encoder together) --layers N (2) --no-input-feeding\n"
      "\n"
      "training:\n"
      "  --max-tokens N       padded tokens per batch (4096)\n"
      "  --batch-sentences N  at most N pairs per batch (0: no limit)\n"
      "  --lr X               Adam's learning rate (5e-4)\n"
      "  --warmup N           rise to --lr over N steps, then fall as "
      "1/sqrt(step)\n"
      "                       (0: constant) (0)\n"
      "  --smoothing X        label smoothing (0.1)\n"
      "  --clip X             gradient norm clipping, 0 for none (1)\n"
      "  --epochs N           (20), or --minutes M of wall clock\n"
      "  --valid-beam N       beam for the validation BLEU (1: greedy)\n"
      "  --checkpoint FILE    (translate.ckpt), saved after every epoch\n"
      "  --resume             continue from --checkpoint exactly where it\n"
      "                       stopped (its data and training settings win;\n"
      "                       model options that differ are refused, but\n"
      "                       --dropout)\n"
      "  --plot FILE          loss and BLEU curves as PNG "
      "(translate-curves.png;\n"
      "                       '' for none)\n"
      "  --seed N (1)  --threads N (all cores)  --quiet\n"
      "  --distributed        train as one rank of `mpirun -np N translate\n"
      "                       train ...`: each rank takes its part of every\n"
      "                       batch, the gradients are summed over the ranks,\n"
      "                       rank 0 prints and writes; resumes on any N\n");
}

enum {
  OPT_VALID_SRC = 256,
  OPT_VALID_TGT,
  OPT_TOKENIZE,
  OPT_BPE,
  OPT_JOINT,
  OPT_MIN_COUNT,
  OPT_MODEL,
  OPT_DROPOUT,
  OPT_D_MODEL,
  OPT_HEADS,
  OPT_FF,
  OPT_ENC_LAYERS,
  OPT_DEC_LAYERS,
  OPT_MAX_POSITIONS,
  OPT_LEARNED_POSITIONS,
  OPT_PRE_NORM,
  OPT_TIE_OUTPUT,
  OPT_SHARE_ALL,
  OPT_CELL,
  OPT_ATTENTION,
  OPT_EMBED,
  OPT_HIDDEN,
  OPT_LAYERS,
  OPT_NO_INPUT_FEEDING,
  OPT_MAX_TOKENS,
  OPT_BATCH_SENTENCES,
  OPT_LR,
  OPT_WARMUP,
  OPT_SMOOTHING,
  OPT_CLIP,
  OPT_EPOCHS,
  OPT_MINUTES,
  OPT_VALID_BEAM,
  OPT_CHECKPOINT,
  OPT_RESUME,
  OPT_PLOT,
  OPT_SEED,
  OPT_THREADS,
  OPT_QUIET,
  OPT_DISTRIBUTED,
  OPT_HELP,
};

static int set_text(char *dst, size_t size, const char *flag, const char *v,
                    const char *choices) {
  char list[96];
  snprintf(list, sizeof list, "|%s|", choices);
  char want[40];
  snprintf(want, sizeof want, "|%.36s|", v);
  if (strlen(v) >= size || !strstr(list, want)) {
    fprintf(stderr, "translate: %s '%s' is not one of %s\n", flag, v, choices);
    return -1;
  }
  snprintf(dst, size, "%s", v);
  return 0;
}

/* The files training writes: the checkpoint, CHECKPOINT.best and the
 * plot, and a new run CHECKPOINT.src.vocab and .tgt.vocab (and with --bpe
 * .src.bpe and .tgt.bpe), into outs (their names into paths); how many. */
static int output_files(const train_options *o, char paths[6][4200],
                        app_named_path outs[7]) {
  static const char *const suffix[6][2] = {
      {"", "--checkpoint"},
      {".best", "--checkpoint (CHECKPOINT.best)"},
      {".src.vocab", "--checkpoint (CHECKPOINT.src.vocab)"},
      {".tgt.vocab", "--checkpoint (CHECKPOINT.tgt.vocab)"},
      {".src.bpe", "--checkpoint (CHECKPOINT.src.bpe)"},
      {".tgt.bpe", "--checkpoint (CHECKPOINT.tgt.bpe)"}};
  int n = o->resume ? 2 : o->text.bpe_merges > 0 ? 6 : 4;
  for (int k = 0; k < n; k++) {
    snprintf(paths[k], sizeof paths[k], "%s%s", o->checkpoint, suffix[k][0]);
    outs[k] = (app_named_path){suffix[k][1], paths[k]};
  }
  outs[n] = (app_named_path){"--plot", o->plot};
  return n + 1;
}

/* None of the files training writes may be a file it reads, nor another
 * it writes. 0, or -1 after saying which flags name the same file. */
static int check_outputs(const train_options *o) {
  char paths[6][4200];
  app_named_path outs[7];
  int n = output_files(o, paths, outs);
  const app_named_path ins[4] = {{"--src", o->src},
                                 {"--tgt", o->tgt},
                                 {"--valid-src", o->valid_src},
                                 {"--valid-tgt", o->valid_tgt}};
  return app_refuse_overwrites("translate train", outs, n, ins, 4);
}

int train_check_writable(const train_options *o) {
  char paths[6][4200];
  app_named_path outs[7];
  int n = output_files(o, paths, outs);
  for (int k = 0; k < n; k++) /* outs[0] is --checkpoint: '' refused */
    if ((k == 0 || *outs[k].path) &&
        app_check_writable("translate train", outs[k].flag, outs[k].path) < 0)
      return *o->checkpoint ? 1 : 2;
  return 0;
}

/* Appends "FLAG MINE, the checkpoint has THEIRS" to why (n bytes used). */
static void differs(char *why, size_t size, size_t *n, const char *flag,
                    const char *mine, const char *theirs) {
  if (*n < size)
    *n +=
        (size_t)snprintf(why + *n, size - *n, "%s%s%s%s, the checkpoint has %s",
                         *n ? "; " : "the model options differ: ", flag,
                         *mine ? " " : "", mine, theirs);
}

int train_check_resumed_model(train_options *o) {
  const nmt_config *a = &o->asked;
  nmt_config *c = &o->model;
  uint32_t given = o->asked_flags;
#define GIVEN(opt) (given & (1u << ((opt)-OPT_MODEL)))
  char why[2048];
  size_t n = 0;
  if (GIVEN(OPT_MODEL) && strcmp(a->model, c->model)) {
    differs(why, sizeof why, &n, "--model", a->model, c->model);
  } else {
    bool tf = !strcmp(c->model, "transformer");
    /* the options of the checkpoint's kind of model; the other kind's
     * make no part of it */
    const struct {
      int opt;
      const char *flag;
      int64_t mine, theirs;
      bool used;
    } ints[] = {
        {OPT_D_MODEL, "--d-model", a->d_model, c->d_model, tf},
        {OPT_HEADS, "--heads", a->heads, c->heads, tf},
        {OPT_FF, "--ff", a->ff, c->ff, tf},
        {OPT_ENC_LAYERS, "--enc-layers", a->enc_layers, c->enc_layers, tf},
        {OPT_DEC_LAYERS, "--dec-layers", a->dec_layers, c->dec_layers, tf},
        {OPT_MAX_POSITIONS, "--max-positions", a->max_positions,
         c->max_positions, tf},
        {OPT_EMBED, "--embed", a->embed, c->embed, !tf},
        {OPT_HIDDEN, "--hidden", a->hidden, c->hidden, !tf},
        {OPT_LAYERS, "--layers", a->layers, c->layers, !tf},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
      if (ints[i].used && GIVEN(ints[i].opt) &&
          ints[i].mine != ints[i].theirs) {
        char mine[32], theirs[32];
        snprintf(mine, sizeof mine, "%lld", (long long)ints[i].mine);
        snprintf(theirs, sizeof theirs, "%lld", (long long)ints[i].theirs);
        differs(why, sizeof why, &n, ints[i].flag, mine, theirs);
      }
    const struct {
      int opt;
      const char *flag, *mine, *theirs;
      bool used;
    } words[] = {
        {OPT_CELL, "--cell", a->cell, c->cell, !tf},
        {OPT_ATTENTION, "--attention", a->attention, c->attention, !tf}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
      if (words[i].used && GIVEN(words[i].opt) &&
          strcmp(words[i].mine, words[i].theirs))
        differs(why, sizeof why, &n, words[i].flag, words[i].mine,
                words[i].theirs);
    /* switches: given, they are on; the checkpoint's may be off */
    const struct {
      int opt;
      const char *flag;
      bool theirs, used;
    } switches[] = {
        {OPT_LEARNED_POSITIONS, "--learned-positions", c->learned_positions,
         tf},
        {OPT_PRE_NORM, "--pre-norm", c->pre_norm, tf},
        {OPT_TIE_OUTPUT, "--tie-output", c->tie_output, tf},
        {OPT_SHARE_ALL, "--share-all", c->share_all, tf},
        {OPT_NO_INPUT_FEEDING, "--no-input-feeding", !c->input_feeding, !tf},
    };
    for (size_t i = 0; i < sizeof switches / sizeof *switches; i++)
      if (switches[i].used && GIVEN(switches[i].opt) && !switches[i].theirs)
        differs(why, sizeof why, &n, switches[i].flag, "", "it off");
  }
  if (n) {
    fprintf(stderr, "translate: cannot resume from %s: %s\n", o->checkpoint,
            why);
    return -1;
  }
  /* a new dropout is allowed (fine-tuning often changes it), said */
  if (GIVEN(OPT_DROPOUT) && a->dropout != c->dropout) {
    if (loom_dist_rank() == 0)
      fprintf(stderr,
              "translate: note: --dropout %g, the checkpoint was trained with "
              "%g: training goes on with %g (not as the run would have)\n",
              a->dropout, c->dropout, a->dropout);
    c->dropout = a->dropout;
  }
#undef GIVEN
  return 0;
}

int train_parse(int argc, char **argv, train_options *o) {
  static const struct option longs[] = {
      {"src", required_argument, NULL, 's'},
      {"tgt", required_argument, NULL, 't'},
      {"valid-src", required_argument, NULL, OPT_VALID_SRC},
      {"valid-tgt", required_argument, NULL, OPT_VALID_TGT},
      {"tokenize", required_argument, NULL, OPT_TOKENIZE},
      {"bpe", required_argument, NULL, OPT_BPE},
      {"joint", no_argument, NULL, OPT_JOINT},
      {"min-count", required_argument, NULL, OPT_MIN_COUNT},
      {"model", required_argument, NULL, OPT_MODEL},
      {"dropout", required_argument, NULL, OPT_DROPOUT},
      {"d-model", required_argument, NULL, OPT_D_MODEL},
      {"heads", required_argument, NULL, OPT_HEADS},
      {"ff", required_argument, NULL, OPT_FF},
      {"enc-layers", required_argument, NULL, OPT_ENC_LAYERS},
      {"dec-layers", required_argument, NULL, OPT_DEC_LAYERS},
      {"max-positions", required_argument, NULL, OPT_MAX_POSITIONS},
      {"learned-positions", no_argument, NULL, OPT_LEARNED_POSITIONS},
      {"pre-norm", no_argument, NULL, OPT_PRE_NORM},
      {"tie-output", no_argument, NULL, OPT_TIE_OUTPUT},
      {"share-all", no_argument, NULL, OPT_SHARE_ALL},
      {"cell", required_argument, NULL, OPT_CELL},
      {"attention", required_argument, NULL, OPT_ATTENTION},
      {"embed", required_argument, NULL, OPT_EMBED},
      {"hidden", required_argument, NULL, OPT_HIDDEN},
      {"layers", required_argument, NULL, OPT_LAYERS},
      {"no-input-feeding", no_argument, NULL, OPT_NO_INPUT_FEEDING},
      {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
      {"batch-sentences", required_argument, NULL, OPT_BATCH_SENTENCES},
      {"lr", required_argument, NULL, OPT_LR},
      {"warmup", required_argument, NULL, OPT_WARMUP},
      {"smoothing", required_argument, NULL, OPT_SMOOTHING},
      {"clip", required_argument, NULL, OPT_CLIP},
      {"epochs", required_argument, NULL, OPT_EPOCHS},
      {"minutes", required_argument, NULL, OPT_MINUTES},
      {"valid-beam", required_argument, NULL, OPT_VALID_BEAM},
      {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
      {"resume", no_argument, NULL, OPT_RESUME},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"seed", required_argument, NULL, OPT_SEED},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"distributed", no_argument, NULL, OPT_DISTRIBUTED},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  const char *model = "transformer";
  for (int i = 1; i + 1 < argc; i++) /* the model's defaults come first */
    if (!strcmp(argv[i], "--model"))
      model = argv[i + 1];
  *o = (train_options){.checkpoint = "translate.ckpt",
                       .plot = "translate-curves.png",
                       .model = nmt_config_defaults(model),
                       .text = nmt_text_defaults(),
                       .max_tokens = 4096,
                       .epochs = 20,
                       .valid_beam = 1,
                       .seed = 1,
                       .lr = 5e-4,
                       .smoothing = 0.1,
                       .clip = 1};
  nmt_config *c = &o->model;
  const char *p = "translate";
  int64_t v;
  optind = 1;
  for (int ch; (ch = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
    const char *a = optarg, *flag = longs[0].name;
    for (const struct option *l = longs; l->name; l++)
      if (l->val == ch)
        flag = l->name;
    char dash[64];
    snprintf(dash, sizeof dash, "--%s", flag);
    int rc = 0;
    switch (ch) {
    case 's':
      o->src = a;
      break;
    case 't':
      o->tgt = a;
      break;
    case OPT_VALID_SRC:
      o->valid_src = a;
      break;
    case OPT_VALID_TGT:
      o->valid_tgt = a;
      break;
    case OPT_TOKENIZE:
      rc = set_text(o->text.tokenize, sizeof o->text.tokenize, dash, a,
                    "lower|reversible");
      break;
    case OPT_BPE:
      rc = app_parse_int(p, dash, a, 0, 1000000, &v);
      o->text.bpe_merges = v;
      break;
    case OPT_JOINT:
      o->text.joint = true;
      break;
    case OPT_MIN_COUNT:
      rc = app_parse_int(p, dash, a, 1, INT64_MAX / 4, &o->text.min_count);
      break;
    case OPT_MODEL:
      rc = set_text(c->model, sizeof c->model, dash, a, "rnn|transformer");
      break;
    case OPT_DROPOUT:
      rc = app_parse_real(p, dash, a, (app_range){.hi = 1, .hi_open = true},
                          &c->dropout);
      break;
    case OPT_D_MODEL:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_WIDTH, &c->d_model);
      break;
    case OPT_HEADS:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_WIDTH, &c->heads);
      break;
    case OPT_FF:
      rc = app_parse_int(p, dash, a, 1, 4 * NMT_MAX_WIDTH, &c->ff);
      break;
    case OPT_ENC_LAYERS:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_LAYERS, &c->enc_layers);
      break;
    case OPT_DEC_LAYERS:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_LAYERS, &c->dec_layers);
      break;
    case OPT_MAX_POSITIONS:
      rc = app_parse_int(p, dash, a, 2, NMT_MAX_POSITIONS, &c->max_positions);
      break;
    case OPT_LEARNED_POSITIONS:
      c->learned_positions = true;
      break;
    case OPT_PRE_NORM:
      c->pre_norm = true;
      break;
    case OPT_TIE_OUTPUT:
      c->tie_output = true;
      break;
    case OPT_SHARE_ALL:
      c->share_all = true;
      break;
    case OPT_CELL:
      rc = set_text(c->cell, sizeof c->cell, dash, a, "lstm|gru");
      break;
    case OPT_ATTENTION:
      rc = set_text(c->attention, sizeof c->attention, dash, a,
                    "dot|general|concat|bahdanau");
      break;
    case OPT_EMBED:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_WIDTH, &c->embed);
      break;
    case OPT_HIDDEN:
      rc = app_parse_int(p, dash, a, 2, NMT_MAX_WIDTH, &c->hidden);
      break;
    case OPT_LAYERS:
      rc = app_parse_int(p, dash, a, 1, NMT_MAX_LAYERS, &c->layers);
      break;
    case OPT_NO_INPUT_FEEDING:
      c->input_feeding = false;
      break;
    case OPT_MAX_TOKENS:
      rc = app_parse_int(p, dash, a, 1, (int64_t)1 << 30, &o->max_tokens);
      break;
    case OPT_BATCH_SENTENCES:
      rc = app_parse_int(p, dash, a, 0, (int64_t)1 << 30, &o->batch_sentences);
      break;
    case OPT_LR:
      rc = app_parse_real(p, dash, a, TRANSLATE_LR_RANGE, &o->lr);
      break;
    case OPT_WARMUP:
      rc = app_parse_int(p, dash, a, 0, (int64_t)1 << 40, &o->warmup);
      break;
    case OPT_SMOOTHING:
      rc = app_parse_real(p, dash, a, (app_range){.hi = 1}, &o->smoothing);
      break;
    case OPT_CLIP:
      rc = app_parse_real(p, dash, a, TRANSLATE_CLIP_RANGE, &o->clip);
      break;
    case OPT_EPOCHS:
      rc = app_parse_int(p, dash, a, 1, 1000000, &o->epochs);
      break;
    case OPT_MINUTES:
      rc = app_parse_real(
          p, dash, a, (app_range){.hi = 525600, .lo_open = true}, &o->minutes);
      break;
    case OPT_VALID_BEAM:
      rc = app_parse_int(p, dash, a, 1, 64, &o->valid_beam);
      break;
    case OPT_CHECKPOINT:
      o->checkpoint = a;
      break;
    case OPT_RESUME:
      o->resume = true;
      break;
    case OPT_PLOT:
      o->plot = a;
      break;
    case OPT_SEED:
      rc = app_parse_int(p, dash, a, 0, INT64_MAX, &o->seed);
      break;
    case OPT_THREADS:
      rc = app_parse_int(p, dash, a, 1, 1024, &v);
      o->threads = (int)v;
      break;
    case OPT_QUIET:
      o->quiet = true;
      break;
    case OPT_DISTRIBUTED:
      o->distributed = true;
      break;
    case OPT_HELP:
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -1;
    }
    if (rc < 0)
      return -1;
    if (ch >= OPT_MODEL && ch <= OPT_NO_INPUT_FEEDING)
      o->asked_flags |= 1u << (ch - OPT_MODEL);
  }
  o->asked = o->model;
  if (optind < argc) {
    fprintf(stderr, "translate train: unexpected argument '%s'\n",
            argv[optind]);
    return -1;
  }
  if (!o->src || !o->tgt) {
    fprintf(stderr, "translate train: --src and --tgt are required (see "
                    "--help)\n");
    return -1;
  }
  if (!o->valid_src != !o->valid_tgt) {
    fprintf(stderr,
            "translate train: --valid-src and --valid-tgt go together\n");
    return -1;
  }
  if (check_outputs(o) < 0)
    return -1;
  if (c->share_all && !o->text.joint) {
    fprintf(stderr, "translate train: --share-all needs --joint\n");
    return -1;
  }
  return 0;
}
