/* translate bpe: byte-pair encoding from the command line, a drop-in for
 * subword-nmt's learn-bpe, apply-bpe and get-vocab (same options, same
 * output bytes) and for the sed rule that undoes it. */
#define _POSIX_C_SOURCE 200809L
#include "translate.h"

#include "../common/common.h"
#include "../common/text.h"

#include <loom/loom.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define P "translate bpe"

static void usage(FILE *f) {
  fprintf(
      f, "usage: translate bpe learn [options] < TEXT > CODES\n"
         "       translate bpe apply -c CODES [options] < TEXT > SEGMENTED\n"
         "       translate bpe undo [-s SEP] < SEGMENTED > TEXT\n"
         "       translate bpe vocab < TEXT > VOCABULARY\n"
         "\n"
         "Byte-pair encoding (Sennrich et al., 2016) exactly as subword-nmt's "
         "learn-bpe,\n"
         "apply-bpe and get-vocab: the same merges, codes files and output "
         "bytes. Text is\n"
         "UTF-8, one sentence per line, words separated by spaces.\n"
         "\n"
         "learn: learn merges from the words of TEXT (codes begin "
         "'#version: 0.2')\n"
         "  -s, --symbols N         merges to learn (default 10000)\n"
         "  --min-frequency N       stop when no pair is this frequent "
         "(default 2)\n"
         "  -t, --total-symbols     N counts the characters too\n"
         "  --dict-input            TEXT is 'WORD COUNT' lines, not text\n"
         "  -v, --verbose           print each merge on stderr\n"
         "apply: split words into subwords, '@@ ' after all but a word's last\n"
         "  -c, --codes FILE        the merges (required)\n"
         "  -m, --merges N          use the first N merges only (default all)\n"
         "  -s, --separator SEP     instead of '@@'\n"
         "  --vocabulary FILE       'WORD COUNT' lines (translate bpe vocab of "
         "the segmented\n"
         "                          training text): undo merges that make "
         "other subwords\n"
         "  --vocabulary-threshold N  count only words seen at least N times\n"
         "  --glossaries W [W...]   words never split (literal words)\n"
         "undo: join subwords again, sed -r 's/(@@ )|(@@ ?$)//g'\n"
         "  -s, --separator SEP     instead of '@@'\n"
         "vocab: count the words of TEXT, most frequent first\n"
         "all: -i, --input FILE (default standard input), -o, --output FILE\n"
         "     (default standard output; written whole or not at all)\n");
}

typedef struct {
  const char *input, *output, *codes, *vocabulary, *separator;
  int64_t symbols, min_frequency, merges, threshold;
  bool total_symbols, dict_input, verbose, have_threshold;
  char **glossaries;
  int n_glossaries;
} options;

enum {
  SYMBOLS = 256,
  SEPARATOR,
  MIN_FREQUENCY,
  DICT_INPUT,
  VOCABULARY,
  THRESHOLD,
  GLOSSARIES
};

static const struct option longs[] = {
    {"input", required_argument, 0, 'i'},
    {"output", required_argument, 0, 'o'},
    {"symbols", required_argument, 0, SYMBOLS},
    {"separator", required_argument, 0, SEPARATOR},
    {"min-frequency", required_argument, 0, MIN_FREQUENCY},
    {"total-symbols", no_argument, 0, 't'},
    {"dict-input", no_argument, 0, DICT_INPUT},
    {"verbose", no_argument, 0, 'v'},
    {"codes", required_argument, 0, 'c'},
    {"merges", required_argument, 0, 'm'},
    {"vocabulary", required_argument, 0, VOCABULARY},
    {"vocabulary-threshold", required_argument, 0, THRESHOLD},
    {"glossaries", no_argument, 0, GLOSSARIES},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* Whether command cmd has option ch. */
static bool has_option(const char *cmd, int ch) {
  switch (ch) {
  case SYMBOLS:
  case MIN_FREQUENCY:
  case DICT_INPUT:
  case 't':
  case 'v':
    return !strcmp(cmd, "learn");
  case 'c':
  case 'm':
  case VOCABULARY:
  case THRESHOLD:
  case GLOSSARIES:
    return !strcmp(cmd, "apply");
  case SEPARATOR:
    return !strcmp(cmd, "apply") || !strcmp(cmd, "undo");
  default:
    return true;
  }
}

/* 0, 1 after --help, or 2 after saying what is wrong. */
static int parse(const char *cmd, int argc, char **argv, options *o) {
  *o = (options){.symbols = 10000, .min_frequency = 2, .merges = -1};
  bool learning = !strcmp(cmd, "learn"), glossaries = false;
  char prog[64];
  snprintf(prog, sizeof prog, P " %s", cmd);
  optind = 1;
  for (;;) {
    int at = -1;
    int ch = getopt_long(argc, argv, "i:o:s:tvc:m:h", longs, &at);
    if (ch == -1)
      break;
    if (ch == 's') /* subword-nmt's -s: --symbols to learn, else --separator */
      ch = learning ? SYMBOLS : SEPARATOR;
    if (ch != '?' && !has_option(cmd, ch)) {
      if (at >= 0)
        fprintf(stderr, "%s: no option --%s (see --help)\n", prog,
                longs[at].name);
      else
        fprintf(stderr, "%s: no option -%c (see --help)\n", prog,
                optopt ? optopt : ch);
      return 2;
    }
    switch (ch) {
    case 'i':
      o->input = optarg;
      break;
    case 'o':
      o->output = optarg;
      break;
    case SYMBOLS:
      if (app_parse_int(prog, "--symbols", optarg, 0, INT32_MAX, &o->symbols))
        return 2;
      break;
    case SEPARATOR:
      o->separator = optarg;
      break;
    case MIN_FREQUENCY:
      if (app_parse_int(prog, "--min-frequency", optarg, 1, (int64_t)1 << 62,
                        &o->min_frequency))
        return 2;
      break;
    case 't':
      o->total_symbols = true;
      break;
    case DICT_INPUT:
      o->dict_input = true;
      break;
    case 'v':
      o->verbose = true;
      break;
    case 'c':
      o->codes = optarg;
      break;
    case 'm':
      if (app_parse_int(prog, "--merges", optarg, -1, INT32_MAX, &o->merges))
        return 2;
      break;
    case VOCABULARY:
      o->vocabulary = optarg;
      break;
    case THRESHOLD:
      if (app_parse_int(prog, "--vocabulary-threshold", optarg,
                        -((int64_t)1 << 62), (int64_t)1 << 62, &o->threshold))
        return 2;
      o->have_threshold = true;
      break;
    case GLOSSARIES:
      glossaries = true;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return 2;
    }
  }
  /* the words after --glossaries (getopt moved them to the end) */
  if (optind < argc && !glossaries) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
    return 2;
  }
  o->glossaries = argv + optind;
  o->n_glossaries = argc - optind;
  if (glossaries && !o->n_glossaries) {
    fprintf(stderr, "%s: --glossaries needs at least one word\n", prog);
    return 2;
  }
  if (!strcmp(cmd, "apply") && !o->codes) {
    fprintf(stderr, "%s: -c CODES is required (see --help)\n", prog);
    return 2;
  }
  if (o->separator && !o->separator[0]) {
    fprintf(stderr, "%s: the separator is empty\n", prog);
    return 2;
  }
  /* the output replaces its file only when done, but then an input there
   * would be gone: -o may not be -i (or standard input's file), -c nor
   * --vocabulary */
  const char *out = o->output && strcmp(o->output, "-") ? o->output : NULL;
  const char *in = o->input && strcmp(o->input, "-") ? o->input : NULL;
  const app_named_path ins[3] = {
      {"-i", in}, {"-c", o->codes}, {"--vocabulary", o->vocabulary}};
  const app_named_path outs[1] = {{"-o", out}};
  if (app_refuse_overwrites(prog, outs, 1, ins, 3) < 0 ||
      (!in && app_refuse_overwrite_stdin(prog, "-o", out) < 0))
    return 2;
  return 0;
}

/* The output: a file written whole or not at all, or standard output. */
typedef struct {
  loom_file_writer *w;
  FILE *f;
} output;

static int output_open(output *out, const char *path) {
  *out = (output){0};
  if (!path || !strcmp(path, "-")) {
    out->f = stdout;
    return 0;
  }
  out->w = loom_file_writer_open(path);
  if (!out->w)
    return -1;
  out->f = loom_file_writer_stream(out->w);
  return 0;
}

/* Finishes the output: 0, or -1 when it could not be written (rc != 0
 * drops it). A write to it that failed is what is reported, naming the
 * output and the reason ("PATH: cannot write: No space left on device"),
 * over the run's own error, which knows only the stream ("BPE codes:
 * write error"); `e` is errno as the run left it. */
static int output_close(output *out, int rc, int e) {
  if (out->f && ferror(out->f))
    loom_clear_error(); /* the first error set is kept: make way */
  if (out->w) {
    /* commit refuses a stream whose write failed, with the writer's
     * reason and the path, and removes the temporary file */
    if (rc && !ferror(out->f)) {
      loom_file_writer_abort(out->w);
      return -1;
    }
    return loom_file_writer_commit(out->w);
  }
  errno = 0;
  if (out->f && (fflush(out->f) || ferror(out->f))) {
    e = errno ? errno : e;
    loom_set_error(LOOM_ERR_IO, "standard output: cannot write%s%s",
                   e ? ": " : "", e ? strerror(e) : "");
    return -1;
  }
  return rc ? -1 : 0;
}

/* Where subword-nmt's lines end. Standard input: at "\n" only for
 * learn-bpe and get-vocab (Python's sys.stdin on Unix), also at "\r\n" and
 * "\r" for apply-bpe (its own text-mode wrapper): `on_stdin`. A file given
 * with -i it reads through Python's codecs module, in lines split at every
 * str.splitlines break, each keeping its break: apply-bpe then writes a
 * "\r\n" back as it was, and a word can end in a \f. */
static app_line_ends input_ends(const options *o, app_line_ends on_stdin) {
  return o->input && strcmp(o->input, "-") ? APP_LINES_SPLITLINES : on_stdin;
}

static int learn(const options *o, output *out) {
  app_word_counts words = {0};
  app_bpe_codes codes = {0};
  int rc = -1;
  if (o->dict_input) {
    if (app_word_counts_read(&words, o->input, 0))
      goto done;
  } else {
    app_line_reader r;
    if (app_line_reader_open(&r, o->input, input_ends(o, APP_LINES_LF), 0))
      goto done;
    const char *line;
    size_t len;
    int got;
    while ((got = app_line_reader_next(&r, &line, &len, NULL)) > 0)
      if (app_word_counts_add_line(&words, line, len)) {
        got = -1;
        break;
      }
    app_line_reader_close(&r);
    if (got < 0)
      goto done;
  }
  app_bpe_learn_opts lo = {.symbols = o->symbols,
                           .min_frequency = o->min_frequency,
                           .total_symbols = o->total_symbols,
                           .verbose = o->verbose,
                           .log = stderr};
  if (app_bpe_learn(&words, &lo, &codes) || app_bpe_codes_write(&codes, out->f))
    goto done;
  rc = 0;
done:
  app_word_counts_free(&words);
  app_bpe_codes_free(&codes);
  return rc;
}

static int apply(const options *o, output *out) {
  app_bpe_codes codes;
  app_bpe *b = NULL;
  app_word_counts vocab = {0};
  app_line_reader r = {0};
  app_buf line_out = {0};
  int rc = -1;
  if (app_bpe_codes_read(&codes, o->codes, o->merges))
    return -1;
  b = app_bpe_new(&codes, o->separator);
  if (!b)
    goto done;
  if (o->vocabulary &&
      (app_word_counts_read(&vocab, o->vocabulary,
                            o->have_threshold ? o->threshold : 0) ||
       app_bpe_set_vocabulary(b, &vocab)))
    goto done;
  /* a threshold at or below 0 keeps every word, as in apply_bpe */
  for (int g = 0; g < o->n_glossaries; g++)
    if (app_bpe_add_glossary(b, o->glossaries[g], strlen(o->glossaries[g])))
      goto done;
  app_line_ends ends = input_ends(o, APP_LINES_UNIVERSAL);
  if (app_line_reader_open(&r, o->input, ends, 0))
    goto done;
  const char *line;
  size_t len;
  bool ended;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, &ended)) > 0) {
    app_buf_clear(&line_out);
    /* a line of -i FILE holds its break */
    bool add_newline = ended && ends != APP_LINES_SPLITLINES;
    if (app_bpe_apply_line(b, line, len, add_newline, &line_out)) {
      got = -1;
      break;
    }
    if (fwrite(line_out.data, 1, line_out.len, out->f) != line_out.len) {
      loom_set_error(LOOM_ERR_IO, "%s: write error",
                     o->output ? o->output : "<stdout>");
      got = -1;
      break;
    }
  }
  if (got == 0)
    rc = 0;
done:
  app_line_reader_close(&r);
  app_buf_free(&line_out);
  app_bpe_free(b);
  app_bpe_codes_free(&codes);
  app_word_counts_free(&vocab);
  return rc;
}

/* sed reads lines ending at "\n" and keeps a "\r". */
static int undo(const options *o, output *out) {
  app_line_reader r;
  if (app_line_reader_open(&r, o->input, APP_LINES_LF, 0))
    return -1;
  app_buf buf = {0};
  const char *line;
  size_t len;
  bool ended;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, &ended)) > 0) {
    app_buf_clear(&buf);
    if (app_bpe_undo_line(line, len, o->separator, &buf) ||
        (ended && app_buf_putc(&buf, '\n')) ||
        fwrite(buf.data, 1, buf.len, out->f) != buf.len) {
      if (!loom_last_status())
        loom_set_error(LOOM_ERR_IO, "write error");
      got = -1;
      break;
    }
  }
  app_buf_free(&buf);
  app_line_reader_close(&r);
  return got;
}

static int vocab(const options *o, output *out) {
  app_line_reader r;
  if (app_line_reader_open(&r, o->input, input_ends(o, APP_LINES_LF), 0))
    return -1;
  app_word_counts words = {0};
  const char *line;
  size_t len;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, NULL)) > 0)
    if (app_word_counts_add_line(&words, line, len)) {
      got = -1;
      break;
    }
  app_line_reader_close(&r);
  if (got == 0 && app_word_counts_write(&words, out->f))
    got = -1;
  app_word_counts_free(&words);
  return got;
}

int translate_bpe_main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *cmd = argv[1];
  int (*run)(const options *, output *) = !strcmp(cmd, "learn")   ? learn
                                          : !strcmp(cmd, "apply") ? apply
                                          : !strcmp(cmd, "undo")  ? undo
                                          : !strcmp(cmd, "vocab") ? vocab
                                                                  : NULL;
  if (!run) {
    fprintf(stderr, P ": unknown command '%s' (learn, apply, undo, vocab)\n",
            cmd);
    return 2;
  }
  options o;
  int rc = parse(cmd, argc - 1, argv + 1, &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  output out;
  if (output_open(&out, o.output)) {
    fprintf(stderr, P " %s: %s\n", cmd, loom_last_error());
    return 1;
  }
  errno = 0;
  rc = run(&o, &out);
  if (output_close(&out, rc, errno) || rc) {
    fprintf(stderr, P " %s: %s\n", cmd, loom_last_error());
    return 1;
  }
  return 0;
}
