/* charlm: train a character-level language model, or sample from one.
 *
 *   charlm train [--data FILE] [options]      (the default command)
 *   charlm sample --checkpoint FILE [--prime TEXT] [options]
 *
 * Training reads the text as bytes, holds out its tail for validation, and
 * runs truncated backpropagation through time over `batch` parallel streams
 * (the hidden state carries across chunks, detached). Progress, validation
 * loss (nats and bits per character), checkpoints that resume exactly, and
 * a PNG of the loss curves. */
#define _POSIX_C_SOURCE 200809L
#include "charlm.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define P "charlm" /* in messages */

typedef charlm_options options;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: charlm [train] [options]     train a character-level language "
      "model\n"
      "       charlm sample [options]      generate text from a checkpoint\n"
      "\n"
      "training:\n"
      "  --data FILE          text to learn (bytes; any encoding). Without "
      "it,\n"
      "                       charlm writes its own corpus: a play whose "
      "speeches\n"
      "                       come from a small English grammar (see "
      "--write-corpus)\n"
      "  --model NAME         rnn | lstm | gru | peephole | transformer "
      "(lstm)\n"
      "  --layers N           recurrent layers (2)\n"
      "  --hidden N           hidden units (256)\n"
      "  --embed N            embedding size (64)\n"
      "  --heads N, --ff N    transformer heads (4) and feed-forward size "
      "(4*hidden)\n"
      "  --dropout P          dropout between layers and on the embeddings "
      "(0)\n"
      "  --seq N              characters per chunk of truncated BPTT (100)\n"
      "  --batch N            parallel streams (32)\n"
      "  --lr X               Adam learning rate (2e-3)\n"
      "  --clip X             gradient norm clipping, 0 for none (5)\n"
      "  --steps N            training steps (2000); or --epochs X, or "
      "--minutes M\n"
      "                       (a time budget: one step at least)\n"
      "  --val-fraction X     tail of the text held out for validation (0.1)\n"
      "  --eval-every N       steps between validation passes (200)\n"
      "  --checkpoint FILE    where to save (charlm.ckpt); written every\n"
      "                       --save-every steps (500) and at the end;\n"
      "                       FILE.best holds the step with the best\n"
      "                       validation loss so far\n"
      "  --resume             continue from --checkpoint, exactly where it "
      "stopped;\n"
      "                       the model options must be the checkpoint's,\n"
      "                       but --dropout may change (with a note)\n"
      "  --plot FILE          loss curves as PNG (charlm-loss.png; '' for "
      "none)\n"
      "  --seed N             random seed (1)\n"
      "  --threads N          loom's kernel threads (all cores)\n"
      "  --distributed        train as one rank of `mpirun -np N charlm ...`:\n"
      "                       each rank runs batch/N of the streams (batch\n"
      "                       must be a multiple of N), gradients are\n"
      "                       averaged over the ranks, rank 0 prints and\n"
      "                       writes; a checkpoint resumes on any N\n"
      "  --corpus-bytes N     size of the built-in corpus (1000000)\n"
      "  --write-corpus FILE  write the built-in corpus and exit\n"
      "\n"
      "sampling:\n"
      "  --checkpoint FILE    a checkpoint written by training (charlm.ckpt)\n"
      "  --prime TEXT         text to start from (\"\\n\")\n"
      "  --length N           characters to generate (500)\n"
      "  --temperature T      sampling temperature; 0 picks the likeliest "
      "(0.8)\n"
      "  --top-k K            sample among the K likeliest characters only (0: "
      "all)\n"
      "  --seed N             random seed (1)\n"
      "\n"
      "  --quiet              no progress line\n"
      "  --help               this text\n");
}

/* The defaults, as --help states them. */
static options defaults(void) {
  return (options){.checkpoint = "charlm.ckpt",
                   .plot = "charlm-loss.png",
                   .prime = "\n",
                   .model = {.cell = "lstm",
                             .embed = 64,
                             .hidden = 256,
                             .layers = 2,
                             .heads = 4},
                   .seq = 100,
                   .batch = 32,
                   .steps = 2000,
                   .length = 500,
                   .eval_every = 200,
                   .save_every = 500,
                   .corpus_bytes = 1000000,
                   .lr = 2e-3,
                   .clip = 5,
                   .val_fraction = 0.1,
                   .temperature = 0.8,
                   .threads = 0,
                   .seed = 1};
}

static const struct option long_options[] = {{"data", 1, 0, 'd'},
                                             {"model", 1, 0, 'm'},
                                             {"layers", 1, 0, 'L'},
                                             {"hidden", 1, 0, 'H'},
                                             {"embed", 1, 0, 'E'},
                                             {"heads", 1, 0, 'A'},
                                             {"ff", 1, 0, 'F'},
                                             {"dropout", 1, 0, 'D'},
                                             {"seq", 1, 0, 'T'},
                                             {"batch", 1, 0, 'B'},
                                             {"lr", 1, 0, 'r'},
                                             {"clip", 1, 0, 'c'},
                                             {"steps", 1, 0, 's'},
                                             {"epochs", 1, 0, 'e'},
                                             {"minutes", 1, 0, 'M'},
                                             {"val-fraction", 1, 0, 'v'},
                                             {"eval-every", 1, 0, 'V'},
                                             {"checkpoint", 1, 0, 'k'},
                                             {"save-every", 1, 0, 'S'},
                                             {"resume", 0, 0, 'R'},
                                             {"plot", 1, 0, 'p'},
                                             {"seed", 1, 0, 'x'},
                                             {"threads", 1, 0, 'j'},
                                             {"corpus-bytes", 1, 0, 'b'},
                                             {"write-corpus", 1, 0, 'w'},
                                             {"prime", 1, 0, 'P'},
                                             {"length", 1, 0, 'n'},
                                             {"temperature", 1, 0, 't'},
                                             {"top-k", 1, 0, 'K'},
                                             {"quiet", 0, 0, 'q'},
                                             {"distributed", 0, 0, 'N'},
                                             {"help", 0, 0, 'h'},
                                             {0, 0, 0, 0}};

/* Stores the value v of option ch (written `flag` on the command line):
 * 0, or -1 after saying what is wrong with it. */
static int set_option(options *o, int ch, const char *flag, const char *v) {
  charlm_config *m = &o->model;
  const int64_t big = CHARLM_MAX_COUNT;
  switch (ch) {
  case 'd':
    o->data = v;
    return 0;
  case 'm':
    snprintf(m->cell, sizeof m->cell, "%s", v);
    return 0;
  case 'L':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_LAYERS, &m->layers);
  case 'H':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->hidden);
  case 'E':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->embed);
  case 'A':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_WIDTH, &m->heads);
  case 'F':
    return app_parse_int(P, flag, v, 1, 4 * CHARLM_MAX_WIDTH, &m->ff);
  case 'D':
    return app_parse_real(P, flag, v, (app_range){.hi = 1, .hi_open = true},
                          &m->dropout);
  case 'T':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_SEQ, &o->seq);
  case 'B':
    return app_parse_int(P, flag, v, 1, CHARLM_MAX_BATCH, &o->batch);
  case 'r':
    return app_parse_real(P, flag, v, CHARLM_LR_RANGE, &o->lr);
  case 'c':
    return app_parse_real(P, flag, v, CHARLM_CLIP_RANGE, &o->clip);
  case 's':
    return app_parse_int(P, flag, v, 1, big, &o->steps);
  case 'e':
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->epochs);
  case 'M':
    return app_parse_real(P, flag, v, (app_range){.hi = 1e6, .lo_open = true},
                          &o->minutes);
  case 'v':
    return app_parse_real(
        P, flag, v, (app_range){.hi = 0.5, .lo_open = true, .hi_open = true},
        &o->val_fraction);
  case 'V':
    return app_parse_int(P, flag, v, 1, big, &o->eval_every);
  case 'k':
    o->checkpoint = v;
    return 0;
  case 'S':
    return app_parse_int(P, flag, v, 1, big, &o->save_every);
  case 'p':
    o->plot = v;
    return 0;
  case 'x':
    return app_parse_int(P, flag, v, 0, INT64_MAX, &o->seed);
  case 'j':
    return app_parse_int(P, flag, v, 1, 1024, &o->threads);
  case 'b':
    return app_parse_int(P, flag, v, 1000, CHARLM_CORPUS_MAX, &o->corpus_bytes);
  case 'w':
    o->write_corpus = v;
    return 0;
  case 'P':
    o->prime = v;
    return 0;
  case 'n':
    return app_parse_int(P, flag, v, 0, big, &o->length);
  case 't':
    return app_parse_real(P, flag, v, (app_range){.hi = 100}, &o->temperature);
  case 'K':
    return app_parse_int(P, flag, v, 0, 256, &o->top_k);
  }
  return -1;
}

/* The command (sample or train) and the options: 0, 1 after --help, or -1
 * after saying what is wrong. */
static int parse(int argc, char **argv, options *o, bool *sample) {
  *o = defaults();
  *sample = false;
  int first = 1;
  if (argc > 1 && argv[1][0] != '-') {
    if (!strcmp(argv[1], "sample"))
      *sample = true;
    else if (strcmp(argv[1], "train")) {
      fprintf(stderr, "charlm: unknown command '%s' (train or sample)\n",
              argv[1]);
      return -1;
    }
    first = 2;
  }
  optind = first;
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
    if (ch == 'R')
      o->resume = true;
    else if (ch == 'q')
      o->quiet = true;
    else if (ch == 'N')
      o->distributed = true;
    else {
      char flag[32];
      snprintf(flag, sizeof flag, "--%s", long_options[at].name);
      if (set_option(o, ch, flag, optarg) < 0)
        return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "charlm: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  /* the heads split the transformer's width: said here, with the flags,
   * rather than when the model is made */
  const charlm_config *m = &o->model;
  if (!*sample && !strcmp(m->cell, "transformer") && m->hidden % m->heads) {
    fprintf(stderr,
            "charlm: --heads %lld must divide --hidden %lld (the "
            "transformer's width)\n",
            (long long)m->heads, (long long)m->hidden);
    return -1;
  }
  return 0;
}

static int write_corpus(const options *o) {
  size_t len = 0;
  unsigned char *t = corpus_generate((size_t)o->corpus_bytes, &len);
  if (!t)
    return 1;
  loom_file_writer *w = loom_file_writer_open(o->write_corpus);
  FILE *f = loom_file_writer_stream(w);
  if (f)
    fwrite(t, 1, len, f); /* a failed write is the commit's to report */
  free(t);
  if (!f || loom_file_writer_commit(w) < 0) {
    app_report_write_error(P, o->write_corpus);
    return 1;
  }
  fprintf(stderr, "wrote %zu bytes to %s\n", len, o->write_corpus);
  return 0;
}

/* Training writes the checkpoint, FILE.best and the plot: none of them
 * may be the text it reads, nor one another. 0, or -1 after saying so. */
static int check_outputs(const options *o) {
  char best[4096];
  snprintf(best, sizeof best, "%s.best", o->checkpoint);
  const char *outs[3][2] = {{"--checkpoint", o->checkpoint},
                            {"--checkpoint (FILE.best)", best},
                            {"--plot", o->plot}};
  for (int i = 0; i < 3; i++) {
    if (app_refuse_overwrite(P, outs[i][0], outs[i][1], "--data", o->data) < 0)
      return -1;
    for (int j = 0; j < i; j++)
      if (app_refuse_overwrite(P, outs[i][0], outs[i][1], outs[j][0],
                               outs[j][1]) < 0)
        return -1;
  }
  return 0;
}

/* The files training writes can be written: checked before training, so
 * that a run is not lost for one at the end. '' is a bad --checkpoint
 * (status 2) and no --plot; the rest is an I/O error (1). The exit
 * status, 0 when all can be written. */
static int check_writable(const options *o) {
  char best[4200];
  snprintf(best, sizeof best, "%s.best", o->checkpoint);
  if (app_check_writable(P, "--checkpoint", o->checkpoint) < 0)
    return *o->checkpoint ? 1 : 2;
  if (app_check_writable(P, "--checkpoint (FILE.best)", best) < 0 ||
      (*o->plot && app_check_writable(P, "--plot", o->plot) < 0))
    return 1;
  return 0;
}

int main(int argc, char **argv) {
  options o;
  bool sample;
  int p = parse(argc, argv, &o, &sample);
  if (p != 0)
    return p < 0 ? 2 : 0;
  /* --write-corpus ignores --data, but must not replace it */
  if (o.write_corpus)
    return app_refuse_overwrite(P, "--write-corpus", o.write_corpus, "--data",
                                o.data) < 0
               ? 2
               : write_corpus(&o);
  if (!sample && check_outputs(&o) < 0)
    return 2;
  int unwritable = sample ? 0 : check_writable(&o);
  if (unwritable)
    return unwritable;
  if (o.threads > 0)
    loom_set_num_threads((int)o.threads);
  if (sample || !o.distributed) {
    int rc = sample ? charlm_sample(&o) : charlm_train(&o);
    loom_cleanup();
    return rc;
  }
  if (loom_dist_init(&argc, &argv) < 0) {
    fprintf(stderr, "charlm: %s\n", loom_last_error());
    return 1;
  }
  int rc = charlm_train(&o);
  loom_cleanup();
  if (rc != 0 && loom_dist_size() > 1)
    loom_dist_abort(rc); /* the other ranks may be waiting for this one */
  return loom_dist_finalize() < 0 ? 1 : rc;
}
