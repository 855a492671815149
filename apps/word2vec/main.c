/* word2vec: train word vectors with the original tool's flags, or query
 * them.
 *
 *   word2vec -train FILE -output FILE [-size 100 -cbow 1 ...]
 *   word2vec neighbours VECTORS [WORD ...]
 *   word2vec analogy VECTORS A B C
 *   word2vec eval VECTORS -questions FILE -wordsim FILE
 *
 * Exit status: 0 done, 1 failed (bad input, I/O), 2 bad command line. */
#define _POSIX_C_SOURCE 200809L
#include "word2vec.h"

#include "../common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define P "word2vec" /* in messages */

/* clang-format off */
static void usage(FILE *f) {
  fprintf(f,
"usage: word2vec -train FILE -output FILE [options]  train word vectors\n"
"       word2vec neighbours VECTORS [WORD...]        the nearest words\n"
"       word2vec analogy VECTORS A B C               A is to B as C is to ?\n"
"       word2vec eval VECTORS [-questions F] [-wordsim F]   evaluate\n"
"\n"
"Training takes the original word2vec tool's flags, with its defaults:\n"
"  -train FILE       text to learn from: words split on spaces, tabs and\n"
"                    newlines (a newline ends a sentence); UTF-8\n"
"  -output FILE      where to write the word vectors (or the classes)\n"
"  -size N           size of the word vectors (100)\n"
"  -window N         largest distance between a word and its context;\n"
"                    each window shrinks by a random amount (5)\n"
"  -sample X         down-sample words more frequent than X of the text;\n"
"                    0 keeps every word (1e-3)\n"
"  -hs 0|1           hierarchical softmax (0)\n"
"  -negative N       negative samples per word, 0 for none (5)\n"
"  -threads N        training threads (12)\n"
"  -iter N           epochs over the text (5)\n"
"  -min-count N      drop words seen fewer than N times (5)\n"
"  -alpha X          starting learning rate, falling linearly to\n"
"                    alpha * 1e-4 (0.025 for skip-gram, 0.05 for CBOW)\n"
"  -cbow 0|1         1: continuous bag of words, 0: skip-gram (1)\n"
"  -classes N        write N word classes (k-means) instead of vectors (0)\n"
"  -binary 0|1       vectors in binary rather than text format (0)\n"
"  -save-vocab FILE  write the vocabulary (\"word count\" lines)\n"
"  -read-vocab FILE  take the vocabulary from FILE instead of counting\n"
"  -debug N          0 quiet, 1 summary, 2 progress line too (2)\n"
"loom's additions:\n"
"  -seed N           random seed; with -threads 1 the same seed gives the\n"
"                    same vectors (1)\n"
"  -engine NAME      fused (the fast kernel) or autograd (the same update\n"
"                    written with loom ops, in batches; slower) (fused)\n"
"  -batch N          examples per autograd step (256)\n"
"  -checkpoint FILE  save the model after every epoch (safetensors)\n"
"  -resume 0|1       continue from -checkpoint after the epoch it holds (0)\n"
"  -stop-after N     stop after epoch N (to -resume later), writing the\n"
"                    vectors as they are then (0: run all -iter epochs)\n"
"\n"
"Queries (VECTORS in text or binary format, detected; -binary 0|1 forces):\n"
"  neighbours VECTORS [WORD...]  the -n nearest words by cosine to each\n"
"                    WORD; without WORDs, reads lines from standard input\n"
"                    (the words of a line are summed)\n"
"  analogy VECTORS A B C         the -n words nearest to B - A + C;\n"
"                    without A B C, reads lines of three words from stdin\n"
"  eval VECTORS      -questions FILE: analogy accuracy on a questions-words\n"
"                    file, per section and in total, among the -threshold\n"
"                    most frequent words (30000, as compute-accuracy; 0:\n"
"                    all); -wordsim FILE: Spearman correlation with human\n"
"                    scores (WordSim-353 format: word1 TAB word2 TAB score)\n"
"  -n N              how many neighbours to print (10)\n"
"\n"
"  --help            this text.  Every flag may have one dash or two.\n");
}
/* clang-format on */

typedef struct {
  const char *train, *output, *save_vocab, *read_vocab, *checkpoint;
  const char *questions, *wordsim;
  int64_t size, window, hs, negative, threads, iter, min_count, cbow, classes,
      binary, debug, batch, resume, stop_after, n, threshold, seed;
  double alpha, sample;
  w2v_engine engine;
  const char *command;
  char **args; /* positional arguments of a query */
  int n_args;
} options;

/* Stores the value v of the flag `name` (written `flag`): 0, or -1 after
 * saying what is wrong. */
static int set_flag(options *o, const char *flag, const char *name,
                    const char *v) {
  const struct {
    const char *name, **value;
  } files[] = {{"train", &o->train},           {"output", &o->output},
               {"save-vocab", &o->save_vocab}, {"read-vocab", &o->read_vocab},
               {"checkpoint", &o->checkpoint}, {"questions", &o->questions},
               {"wordsim", &o->wordsim}};
  const int64_t big = (int64_t)1 << 40;
  const struct {
    const char *name;
    int64_t *value, lo, hi;
  } ints[] = {{"size", &o->size, 1, 1 << 16},
              {"window", &o->window, 1, 10000},
              {"hs", &o->hs, 0, 1},
              {"negative", &o->negative, 0, 10000},
              {"threads", &o->threads, 1, 1024},
              {"iter", &o->iter, 1, 1000000},
              {"min-count", &o->min_count, 0, big},
              {"cbow", &o->cbow, 0, 1},
              {"classes", &o->classes, 0, big},
              {"binary", &o->binary, 0, 1},
              {"debug", &o->debug, 0, 100},
              {"batch", &o->batch, 1, 1 << 20},
              {"resume", &o->resume, 0, 1},
              {"stop-after", &o->stop_after, 0, 1000000},
              {"n", &o->n, 1, 100000},
              {"threshold", &o->threshold, 0, big},
              {"seed", &o->seed, 0, INT64_MAX}};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    if (!strcmp(name, files[i].name)) {
      *files[i].value = v;
      return 0;
    }
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
    if (!strcmp(name, ints[i].name))
      return app_parse_int(P, flag, v, ints[i].lo, ints[i].hi, ints[i].value);
  if (!strcmp(name, "alpha"))
    return app_parse_real(P, flag, v,
                          (app_range){.hi = W2V_ALPHA_MAX, .lo_open = true},
                          &o->alpha);
  if (!strcmp(name, "sample"))
    return app_parse_real(P, flag, v, (app_range){.hi = 1e9}, &o->sample);
  if (!strcmp(name, "engine")) {
    if (!strcmp(v, "fused") || !strcmp(v, "autograd")) {
      o->engine = v[0] == 'f' ? W2V_ENGINE_FUSED : W2V_ENGINE_AUTOGRAD;
      return 0;
    }
    fprintf(stderr, "word2vec: %s is fused or autograd, not '%s'\n", flag, v);
    return -1;
  }
  fprintf(stderr, "word2vec: unknown option %s (see --help)\n", flag);
  return -1;
}

/* The command word of a query, or NULL for training; -1 if unknown. */
static int parse_command(const char *word, const char **command) {
  const char *known[] = {"neighbours", "neighbors", "analogy", "eval"};
  *command = NULL;
  if (!strcmp(word, "train"))
    return 0;
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (!strcmp(word, known[i])) {
      *command = word;
      return 0;
    }
  fprintf(stderr, "word2vec: unknown command '%s' (see --help)\n", word);
  return -1;
}

/* 0, 1 to stop with success (--help), -1 on a bad command line. */
static int parse(int argc, char **argv, options *o) {
  *o = (options){.size = 100,
                 .window = 5,
                 .negative = 5,
                 .threads = 12,
                 .iter = 5,
                 .min_count = 5,
                 .cbow = 1,
                 .debug = 2,
                 .batch = 256,
                 .n = 10,
                 .threshold = 30000,
                 .alpha = -1,
                 .sample = 1e-3,
                 .seed = 1,
                 .binary = -1};
  int i = 1;
  if (argc > 1 && argv[1][0] != '-') {
    if (parse_command(argv[1], &o->command) < 0)
      return -1;
    i = 2;
  }
  o->args = malloc((size_t)argc * sizeof *o->args);
  if (!o->args)
    return -1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0') {
      if (!o->command) {
        fprintf(stderr, "word2vec: unexpected argument '%s'\n", a);
        return -1;
      }
      o->args[o->n_args++] = argv[i];
      continue;
    }
    const char *name = a + (a[1] == '-' ? 2 : 1);
    if (!strcmp(name, "help") || !strcmp(name, "h")) {
      usage(stdout);
      return 1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "word2vec: %s needs a value\n", a);
      return -1;
    }
    if (set_flag(o, a, name, argv[++i]) < 0)
      return -1;
  }
  if (o->alpha < 0)
    o->alpha = o->cbow ? 0.05 : 0.025;
  if (!o->command && o->hs == 0 && o->negative == 0) {
    fprintf(stderr, "word2vec: with -hs 0 and -negative 0 there is nothing "
                    "to train\n");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------ training */

typedef struct {
  const options *o;
  app_progress bar;
  int64_t start_done; /* words of the epochs done before this run */
  w2v_model *m;
  char signature[512];
} run;

static void on_progress(void *ctx, const w2v_progress *p) {
  run *r = ctx;
  if (r->o->debug < 2)
    return;
  char text[96];
  snprintf(text, sizeof text, "words  epoch %d/%d  alpha %.6f", p->epoch,
           p->epochs, p->alpha);
  double rate =
      p->seconds > 0 ? (double)(p->words_done - r->start_done) / p->seconds : 0;
  bool end = p->words_done == p->words_total;
  app_progress_line(&r->bar, p->words_done, p->words_total, rate, "words", text,
                    end);
}

static loom_tensor *rng_tensor(const uint64_t *rng, int n) {
  int64_t *bits = malloc((size_t)n * sizeof *bits);
  if (!bits)
    return NULL;
  memcpy(bits, rng, (size_t)n * sizeof *bits);
  loom_tensor *t = loom_from_array(LOOM_I64, bits, LOOM_SHAPE(n));
  free(bits);
  return t;
}

/* After each epoch: the checkpoint, and -stop-after. */
static int save_checkpoint(void *ctx, int epoch, const uint64_t *rng,
                           int n_rng) {
  run *r = ctx;
  bool stop = r->o->stop_after > 0 && epoch >= r->o->stop_after;
  if (!r->o->checkpoint)
    return stop;
  loom_tensor_map *map = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  int64_t e = epoch;
  int rc = map ? 0 : -1;
  rc |= loom_tensor_map_set(map, "syn0", r->m->syn0);
  if (r->m->syn1)
    rc |= loom_tensor_map_set(map, "syn1", r->m->syn1);
  if (r->m->syn1neg)
    rc |= loom_tensor_map_set(map, "syn1neg", r->m->syn1neg);
  rc |=
      loom_tensor_map_set(map, "epoch", loom_from_array(LOOM_I64, &e, 0, NULL));
  rc |= loom_tensor_map_set(map, "rng", rng_tensor(rng, n_rng));
  rc |= loom_tensor_map_set_meta(map, "word2vec", r->signature);
  if (rc == 0)
    rc = loom_safetensors_save(r->o->checkpoint, map);
  loom_scope_end(s);
  loom_tensor_map_free(map);
  return rc ? -1 : stop;
}

/* Why a checkpoint's signature `had` is not this run's `want` (both as
 * sign() writes them: "key value" pairs), into why[n]: each value that
 * differs named with both, as charlm and translate name options ("-window
 * 3, the checkpoint has 5"; the text's counts as "vocabulary size 170,
 * the checkpoint has 3").
 * Another layout (another version) is said to be one. */
static void signature_difference(const char *want, const char *had, char *why,
                                 size_t n) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s", want);
  snprintf(b, sizeof b, "%s", had);
  char *sa = NULL, *sb = NULL;
  char *ka = strtok_r(a, " ", &sa), *kb = strtok_r(b, " ", &sb);
  size_t used = (size_t)snprintf(why, n,
                                 "it was made with other options or "
                                 "another text:");
  bool any = false;
  while (ka && kb && !strcmp(ka, kb)) {
    char *va = strtok_r(NULL, " ", &sa), *vb = strtok_r(NULL, " ", &sb);
    if (!va || !vb)
      break;
    /* the text's counts by what they are, the rest as their flags */
    const char *what = !strcmp(ka, "vocab")   ? "vocabulary size"
                       : !strcmp(ka, "words") ? "training words"
                       : !strcmp(ka, "text")  ? "text length"
                                              : NULL;
    /* the engine is recorded by its number, named by the flag's word */
    if (!strcmp(ka, "engine")) {
      va = !strcmp(va, "0") ? "fused" : !strcmp(va, "1") ? "autograd" : va;
      vb = !strcmp(vb, "0") ? "fused" : !strcmp(vb, "1") ? "autograd" : vb;
    }
    if (strcmp(va, vb) && used < n)
      used += (size_t)snprintf(
          why + used, n - used, "%s %s%s %s, the checkpoint has %s",
          any ? ";" : "", what ? "" : "-", what ? what : ka, va, vb);
    any = any || strcmp(va, vb);
    ka = strtok_r(NULL, " ", &sa);
    kb = strtok_r(NULL, " ", &sb);
  }
  if (ka || kb || !any) /* another layout */
    snprintf(why, n,
             "its options are recorded as '%.200s', which this "
             "version does not read",
             had);
}

/* Loads -checkpoint into m; the epoch to start from, or -1. */
static int resume(run *r, uint64_t *rng, int n_rng) {
  loom_tensor_map *map = loom_safetensors_load(r->o->checkpoint);
  if (!map) {
    fprintf(stderr, "word2vec: cannot resume: %s\n", loom_last_error());
    return -1;
  }
  const char *sig = loom_tensor_map_meta(map, "word2vec");
  const char *names[3] = {"syn0", "syn1", "syn1neg"};
  loom_tensor *dst[3] = {r->m->syn0, r->m->syn1, r->m->syn1neg};
  loom_tensor *ep = loom_tensor_map_get(map, "epoch");
  loom_tensor *st = loom_tensor_map_get(map, "rng");
  const char *bad = NULL;
  char why[640];
  if (!sig)
    bad = "not a word2vec checkpoint (no 'word2vec' signature)";
  else if (strcmp(sig, r->signature)) {
    signature_difference(r->signature, sig, why, sizeof why);
    bad = why;
  } else if (!ep || loom_dtype_of(ep) != LOOM_I64 || loom_numel(ep) != 1 ||
             !st || loom_dtype_of(st) != LOOM_I64 || loom_numel(st) != n_rng)
    bad = "its epoch or generator state is missing";
  for (int k = 0; !bad && k < 3; k++) {
    loom_tensor *t = loom_tensor_map_get(map, names[k]);
    if (!dst[k])
      continue;
    if (!t || !loom_same_shape(t, dst[k]) || loom_dtype_of(t) != LOOM_F32) {
      bad = "a matrix is missing or has the wrong shape";
      continue;
    }
    int64_t i = w2v_first_non_finite(t);
    if (i >= 0) {
      snprintf(why, sizeof why,
               "its matrix %s holds %g at row %lld (a run that diverged?)",
               names[k], (double)loom_data_f32(t)[i],
               (long long)(i / loom_size(t, 1)));
      bad = why;
    } else
      memcpy(loom_data_f32(dst[k]), loom_data_f32(t),
             (size_t)loom_numel(t) * sizeof(float));
  }
  int64_t epoch = bad ? 0 : loom_data_i64(ep)[0];
  if (!bad && (epoch < 1 || epoch > r->o->iter))
    bad = "its epoch is out of range";
  if (!bad)
    memcpy(rng, loom_data_i64(st), (size_t)n_rng * sizeof *rng);
  loom_tensor_map_free(map);
  if (bad) {
    fprintf(stderr, "word2vec: cannot resume from %s: %s\n", r->o->checkpoint,
            bad);
    return -1;
  }
  return (int)epoch + 1;
}

/* -classes: "word class" lines. 0 or -1 with an error. */
static int write_classes(const options *o, const w2v_vocab *v,
                         const w2v_model *m) {
  int32_t *cl = malloc((size_t)v->size * sizeof *cl);
  if (!cl)
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
  int rc = cl ? w2v_kmeans(m->syn0, o->classes, 10, cl) : -1;
  loom_file_writer *out = rc == 0 ? loom_file_writer_open(o->output) : NULL;
  FILE *f = loom_file_writer_stream(out);
  for (int64_t i = 0; f && i < v->size; i++)
    fprintf(f, "%s %d\n", w2v_vocab_word(v, i), cl[i]);
  free(cl);
  return f ? loom_file_writer_commit(out) : -1;
}

/* Files training writes may not be files it reads, nor one another. 0,
 * or -1 after saying so. */
static int check_outputs(const options *o) {
  /* without -output only the vocabulary is made: no checkpoint written */
  const char *outs[3][2] = {{"-output", o->output},
                            {"-save-vocab", o->save_vocab},
                            {"-checkpoint", o->output ? o->checkpoint : NULL}};
  const char *ins[2][2] = {{"-train", o->train},
                           {"-read-vocab", o->read_vocab}};
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 2; j++)
      if (app_refuse_overwrite(P, outs[i][0], outs[i][1], ins[j][0],
                               ins[j][1]) < 0)
        return -1;
    for (int j = 0; j < i; j++)
      if (app_refuse_overwrite(P, outs[i][0], outs[i][1], outs[j][0],
                               outs[j][1]) < 0)
        return -1;
  }
  return 0;
}

/* Whether the files training writes can be written (app_check_writable):
 * -save-vocab after reading the text, -checkpoint after each epoch,
 * -output at the end. Checked before the text is read, so that the work
 * is not lost for one. The exit status: 0, 2 for '' (no file name), else
 * 1. */
static int check_writable(const options *o) {
  const char *outs[3][2] = {{"-output", o->output},
                            {"-save-vocab", o->save_vocab},
                            /* without -output, only the vocabulary */
                            {"-checkpoint", o->output ? o->checkpoint : NULL}};
  for (int i = 0; i < 3; i++)
    if (app_check_writable(P, outs[i][0], outs[i][1]) < 0)
      return outs[i][1] && *outs[i][1] ? 1 : 2;
  return 0;
}

/* The vocabulary (-read-vocab, or counted from the text, then -min-count)
 * and the text as its ids; -save-vocab. 0 or -1 with an error. */
static int read_text(const options *o, w2v_vocab *v, w2v_corpus *c) {
  double t0 = app_now();
  if (o->read_vocab && w2v_vocab_read(v, o->read_vocab, o->min_count) < 0)
    return -1;
  if (w2v_corpus_read(c, v, o->train, !o->read_vocab, o->min_count) < 0)
    return -1;
  if (o->debug > 0)
    fprintf(stderr,
            "vocabulary: %lld words (min-count %lld), %lld words of the "
            "text in it (%.2fs)\n",
            (long long)v->size, (long long)o->min_count, (long long)c->len,
            app_now() - t0);
  return o->save_vocab ? w2v_vocab_save(v, o->save_vocab) : 0;
}

/* The Huffman tree (-hs), the unigram table (-negative) and the matrices,
 * after checking the machine can hold them (rather than be killed for it
 * halfway through initialising them). 0 or -1 with an error. */
static int build_model(const options *o, const w2v_vocab *v, w2v_tree *tree,
                       w2v_unigram *uni, w2v_model *m) {
  double need = (double)v->size * (double)o->size * sizeof(float) *
                (1 + (o->hs ? 1 : 0) + (o->negative > 0 ? 1 : 0));
  double have = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
  if (have > 0 && need > 0.9 * have) {
    loom_set_error(LOOM_ERR_MEMORY,
                   "%lld words of size %lld need %.1f GiB for the model; "
                   "this machine has %.1f GiB",
                   (long long)v->size, (long long)o->size, need / (1 << 30),
                   have / (1 << 30));
    return -1;
  }
  int64_t *counts = malloc((size_t)v->size * sizeof *counts);
  if (!counts) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return -1;
  }
  for (int64_t i = 0; i < v->size; i++)
    counts[i] = v->entries[i].count;
  int rc = (o->hs && w2v_tree_build(tree, counts, v->size) < 0) ||
                   (o->negative > 0 &&
                    w2v_unigram_build(uni, counts, v->size, 0.75) < 0)
               ? -1
               : 0;
  free(counts);
  if (rc == 0)
    rc = w2v_model_init(m, v->size, o->size, o->hs, o->negative > 0,
                        (uint64_t)o->seed);
  return rc;
}

/* What a checkpoint must have been made with to be resumed: the text and
 * every option that changes the training. */
static void sign(run *r, const w2v_vocab *v, const w2v_corpus *c) {
  const options *o = r->o;
  snprintf(r->signature, sizeof r->signature,
           "vocab %lld words %lld text %lld size %lld window %lld hs %lld "
           "negative %lld cbow %lld iter %lld threads %lld alpha %g sample "
           "%g seed %llu engine %d batch %lld",
           (long long)v->size, (long long)v->train_words, (long long)c->len,
           (long long)o->size, (long long)o->window, (long long)o->hs,
           (long long)o->negative, (long long)o->cbow, (long long)o->iter,
           (long long)o->threads, o->alpha, o->sample,
           (unsigned long long)o->seed, (int)o->engine, (long long)o->batch);
}

static void report_training(const options *o, const w2v_train_stats *st) {
  if (o->debug > 0)
    fprintf(stderr,
            "trained %s %s, size %lld: %lld words in %.2fs, %.0f "
            "words/s on %lld threads\n",
            o->cbow ? "cbow" : "skip-gram",
            o->hs && o->negative ? "hs+negative"
            : o->hs              ? "hs"
                                 : "negative",
            (long long)o->size, (long long)st->words, st->seconds,
            st->words_per_second, (long long)o->threads);
}

/* Training from epoch `first` (1, or after the epoch a checkpoint holds,
 * whose generator states are rng) to -iter, with the progress line and a
 * checkpoint after each epoch. 0, or -1 with an error. */
static int fit(run *r, const w2v_vocab *v, const w2v_corpus *c,
               const w2v_tree *tree, const w2v_unigram *uni, int first,
               const uint64_t *rng, w2v_train_stats *stats) {
  const options *o = r->o;
  w2v_train_opts to = {.cbow = o->cbow,
                       .hs = o->hs,
                       .window = o->window,
                       .negative = o->negative,
                       .iter = o->iter,
                       .threads = o->threads,
                       .alpha = o->alpha,
                       .sample = o->sample,
                       .seed = (uint64_t)o->seed,
                       .engine = o->engine,
                       .batch = (int)o->batch,
                       .progress = on_progress,
                       .progress_ctx = r,
                       .progress_every = 0.5,
                       .epoch_done = save_checkpoint,
                       .epoch_ctx = r};
  app_progress_begin(&r->bar);
  int rc =
      w2v_train(r->m, v, c, o->hs ? tree : NULL, o->negative > 0 ? uni : NULL,
                &to, first, first > 1 ? rng : NULL, stats);
  if (o->debug >= 2)
    app_progress_end(&r->bar);
  return rc;
}

/* Trains and writes -output (the vectors, or with -classes the classes);
 * without -output, only the vocabulary. The exit status. */
static int train(const options *o) {
  if (!o->train) {
    fprintf(stderr, "word2vec: -train FILE is required (see --help)\n");
    return 2;
  }
  if (o->resume && !o->checkpoint) {
    fprintf(stderr, "word2vec: -resume 1 needs -checkpoint FILE\n");
    return 2;
  }
  if (check_outputs(o) < 0)
    return 2;
  int unwritable = check_writable(o);
  if (unwritable)
    return unwritable;
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_corpus c = {0};
  w2v_tree tree = {0};
  w2v_unigram uni = {0};
  w2v_model m = {0};
  run r = {.o = o, .m = &m};
  uint64_t *rng = NULL;
  int first = 1, rc = 1;
  double t0 = app_now();
  if (read_text(o, &v, &c) < 0)
    goto fail;
  if (!o->output) { /* like the original: vocabulary only */
    rc = 0;
    goto done;
  }
  if (o->classes > v.size) { /* said now, not after training */
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "-classes %lld: must be in 1..%lld (the vocabulary size)",
                   (long long)o->classes, (long long)v.size);
    goto fail;
  }
  if (build_model(o, &v, &tree, &uni, &m) < 0)
    goto fail;
  sign(&r, &v, &c);
  rng = calloc((size_t)o->threads, sizeof *rng);
  if (!rng) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    goto fail;
  }
  if (o->resume && (first = resume(&r, rng, (int)o->threads)) < 0)
    goto fail_quiet;
  r.start_done = (int64_t)(first - 1) * c.len;
  if (o->debug > 0 && first > 1)
    fprintf(stderr, "resuming from %s after epoch %d\n", o->checkpoint,
            first - 1);
  w2v_train_stats stats = {0};
  if (first <= o->iter && fit(&r, &v, &c, &tree, &uni, first, rng, &stats) < 0)
    goto fail;
  report_training(o, &stats);
  double t1 = app_now();
  if (o->classes > 0
          ? write_classes(o, &v, &m) < 0
          : w2v_save_vectors(o->output, &v, m.syn0, o->binary > 0) < 0)
    goto fail;
  if (o->debug > 0)
    fprintf(stderr, "wrote %s (%.2fs); total %.2fs\n", o->output,
            app_now() - t1, app_now() - t0);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "word2vec: %s\n", loom_last_error());
fail_quiet:
  rc = 1;
done:
  loom_clear_error();
  free(rng);
  w2v_model_free(&m);
  w2v_unigram_free(&uni);
  w2v_tree_free(&tree);
  w2v_corpus_free(&c);
  w2v_vocab_free(&v);
  return rc;
}

/* ------------------------------------------------ queries */

static int load(const options *o, w2v_vectors *w, int64_t limit) {
  if (o->n_args < 1) {
    fprintf(stderr, "word2vec %s: which vector file? (see --help)\n",
            o->command);
    return 2;
  }
  if (w2v_load_vectors(w, o->args[0], (int)o->binary, limit) < 0) {
    fprintf(stderr, "word2vec: %s\n", loom_last_error());
    return 1;
  }
  return 0;
}

/* Sums the unit vectors of the words of `line` (minus the first one's for
 * an analogy, which reads b - a + c); prints the -n nearest. */
static int query(const options *o, const w2v_vectors *w,
                 const loom_tensor *normed, char **words, int n, bool analogy) {
  int64_t dim = w->dim, idx[64];
  if (n > 64)
    n = 64;
  if (analogy && n != 3) {
    fprintf(stderr, "word2vec analogy: give three words A B C\n");
    return 1;
  }
  float *q = calloc((size_t)dim, sizeof *q);
  w2v_hit *hits = malloc((size_t)o->n * sizeof *hits);
  if (!q || !hits) {
    free(q);
    free(hits);
    return 1;
  }
  const float *m = loom_data_f32(normed);
  for (int i = 0; i < n; i++) {
    idx[i] = w2v_find_word(w, words[i], 0);
    if (idx[i] < 0) {
      fprintf(stderr, "word2vec: '%s' is not in the vocabulary\n", words[i]);
      free(q);
      free(hits);
      return 1;
    }
    float sign = analogy && i == 0 ? -1.0f : 1.0f;
    for (int64_t j = 0; j < dim; j++)
      q[j] += sign * m[idx[i] * dim + j];
  }
  int got = w2v_nearest(normed, q, idx, n, 0, (int)o->n, hits);
  for (int i = 0; i < got; i++)
    printf("%s\t%.6f\n", w->words[hits[i].index], hits[i].score);
  fflush(stdout);
  free(q);
  free(hits);
  return got < 0 ? 1 : 0;
}

static int queries(const options *o, bool analogy) {
  w2v_vectors w;
  int rc = load(o, &w, 0);
  if (rc)
    return rc;
  loom_scope *s = loom_scope_begin();
  loom_tensor *normed = w2v_normalized(w.vectors);
  if (!normed)
    rc = 1;
  else if (o->n_args > 1) {
    if (analogy)
      rc = query(o, &w, normed, o->args + 1, o->n_args - 1, true);
    else
      for (int i = 1; i < o->n_args && rc == 0; i++) {
        if (o->n_args > 2)
          printf("%s:\n", o->args[i]);
        rc = query(o, &w, normed, &o->args[i], 1, false);
      }
  } else {
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
      char *words[64], *save = NULL;
      int n = 0;
      for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 64;
           t = strtok_r(NULL, " \t\r\n", &save))
        words[n++] = t;
      if (n == 0)
        continue;
      query(o, &w, normed, words, n, analogy); /* a miss is not fatal */
      printf("\n");
    }
    /* getline ends at a read error as at the end: a closed or unreadable
     * standard input had passed as no queries, with status 0 */
    if (ferror(stdin)) {
      fprintf(stderr,
              "word2vec: cannot read the queries from standard "
              "input: %s\n",
              strerror(errno));
      rc = 1;
    }
    free(line);
  }
  loom_scope_end(s);
  w2v_vectors_free(&w);
  return rc;
}

static int evaluate(const options *o) {
  if (!o->questions && !o->wordsim) {
    fprintf(stderr, "word2vec eval: give -questions FILE and/or -wordsim "
                    "FILE\n");
    return 2;
  }
  w2v_vectors w;
  int rc = load(o, &w, 0);
  if (rc)
    return rc;
  printf("vectors: %s, %lld words of size %lld\n", o->args[0], (long long)w.n,
         (long long)w.dim);
  if (o->questions) {
    w2v_accuracy a;
    if (w2v_analogy_accuracy(&w, o->questions, o->threshold, &a) < 0) {
      fprintf(stderr, "word2vec: %s\n", loom_last_error());
      rc = 1;
    } else {
      for (int i = 0; i < a.n_sections; i++) {
        const w2v_section *s = &a.sections[i];
        printf("%-28s %6.2f %%  (%lld / %lld)\n", s->name,
               s->seen ? 100.0 * (double)s->correct / (double)s->seen : 0.0,
               (long long)s->correct, (long long)s->seen);
      }
      printf("analogy accuracy: %.2f %% (%lld / %lld)  semantic %.2f %%  "
             "syntactic %.2f %%\n",
             a.seen ? 100.0 * (double)a.correct / (double)a.seen : 0.0,
             (long long)a.correct, (long long)a.seen,
             a.semantic_seen
                 ? 100.0 * (double)a.semantic_correct / (double)a.semantic_seen
                 : 0.0,
             a.syntactic_seen ? 100.0 * (double)a.syntactic_correct /
                                    (double)a.syntactic_seen
                              : 0.0);
      printf("questions seen / total: %lld %lld  %.2f %% (threshold "
             "%lld)\n",
             (long long)a.seen, (long long)a.questions,
             a.questions ? 100.0 * (double)a.seen / (double)a.questions : 0.0,
             (long long)o->threshold);
      w2v_accuracy_free(&a);
    }
  }
  if (o->wordsim) {
    w2v_similarity sim;
    if (w2v_word_similarity(&w, o->wordsim, 0, &sim) < 0) {
      fprintf(stderr, "word2vec: %s\n", loom_last_error());
      rc = 1;
    } else
      printf("word similarity: spearman %.4f  pearson %.4f  (%lld of %lld "
             "pairs)\n",
             sim.spearman, sim.pearson, (long long)sim.used,
             (long long)sim.pairs);
  }
  w2v_vectors_free(&w);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 1) { /* like the original tool: no arguments, the usage */
    usage(stdout);
    return 0;
  }
  options o;
  int p = parse(argc, argv, &o);
  int rc = p < 0 ? 2 : 0;
  if (p == 0) {
    if (!o.command)
      rc = train(&o);
    else if (!strcmp(o.command, "eval"))
      rc = evaluate(&o);
    else
      rc = queries(&o, !strcmp(o.command, "analogy"));
    /* the neighbours and the scores go to standard output: lost, they are
     * an output not written */
    if (o.command && app_finish_stdout("word2vec", "the results") < 0 &&
        rc == 0)
      rc = 1;
  }
  free(o.args);
  loom_cleanup();
  return rc;
}
