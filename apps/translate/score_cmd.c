/* translate score: BLEU and chrF of hypotheses against references, read
 * and printed as sacreBLEU's command line reads and prints them. */
#define _POSIX_C_SOURCE 200809L
#include "translate.h"

#include "../common/common.h"
#include "../common/text.h"

#include <loom/loom.h>

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define P "translate score"

static void usage(FILE *f) {
  fprintf(f, "usage: translate score [options] REF [REF...] < HYP\n"
             "\n"
             "Scores hypotheses (one per line) against one or more reference "
             "files (line i of\n"
             "each is a reference for hypothesis i) and prints sacreBLEU's "
             "score lines:\n"
             "  BLEU = 48.89 85.7/66.7/40.0/25.0 (BP = 1.000 ratio = 1.000 "
             "hyp_len = 7 ref_len = 7)\n"
             "  chrF2 = 67.17\n"
             "BLEU is sacreBLEU's default corpus BLEU (tokenizer 13a, "
             "exponential smoothing),\n"
             "chrF its default chrF (character 6-grams, beta 2). Lines are "
             "compared without\n"
             "trailing whitespace; hypotheses and references must have the "
             "same number of lines.\n"
             "\n"
             "options:\n"
             "  -i, --input FILE     hypotheses from FILE (default: standard "
             "input)\n"
             "  -m, --metrics LIST   bleu, chrf or bleu,chrf (default "
             "bleu,chrf)\n"
             "  -lc, --lowercase     compare lowercased text (BLEU and chrF)\n"
             "  -tok, --tokenize T   BLEU's tokenizer: 13a (default) or none\n"
             "  --tokenized          BLEU as the PyTorch baseline computes it: "
             "NLTK's corpus_bleu\n"
             "                       (4-grams, no smoothing) on lowercased "
             "\\w+|[^\\w\\s] tokens, x100,\n"
             "                       printed in the same form\n"
             "  -b, --score-only     print the scores only\n"
             "  -h, --help           this text\n");
}

typedef struct {
  const char *input;
  bool bleu, chrf, lowercase, tokenized, score_only;
  app_bleu_tokenizer tokenizer;
  char **refs;
  int n_refs;
} options;

/* 0, 1 after --help, or 2 after saying what is wrong. */
static int parse(int argc, char **argv, options *o) {
  *o = (options){.bleu = true, .chrf = true, .tokenizer = APP_BLEU_13A};
  static const struct option longs[] = {{"input", required_argument, 0, 'i'},
                                        {"metrics", required_argument, 0, 'm'},
                                        {"lowercase", no_argument, 0, 'l'},
                                        {"lc", no_argument, 0, 'l'},
                                        {"tokenize", required_argument, 0, 't'},
                                        {"tok", required_argument, 0, 't'},
                                        {"tokenized", no_argument, 0, 'T'},
                                        {"score-only", no_argument, 0, 'b'},
                                        {"help", no_argument, 0, 'h'},
                                        {0, 0, 0, 0}};
  optind = 1;
  int ch;
  while ((ch = getopt_long_only(argc, argv, "i:m:bh", longs, NULL)) != -1) {
    switch (ch) {
    case 'i':
      o->input = optarg;
      break;
    case 'm':
      if (!strcmp(optarg, "bleu"))
        o->bleu = true, o->chrf = false;
      else if (!strcmp(optarg, "chrf"))
        o->bleu = false, o->chrf = true;
      else if (!strcmp(optarg, "bleu,chrf") || !strcmp(optarg, "chrf,bleu"))
        o->bleu = o->chrf = true;
      else {
        fprintf(stderr, P ": --metrics '%s' is not bleu, chrf or bleu,chrf\n",
                optarg);
        return 2;
      }
      break;
    case 'l':
      o->lowercase = true;
      break;
    case 't':
      if (!strcmp(optarg, "13a"))
        o->tokenizer = APP_BLEU_13A;
      else if (!strcmp(optarg, "none"))
        o->tokenizer = APP_BLEU_TOKENIZE_NONE;
      else {
        fprintf(stderr, P ": --tokenize '%s' is not 13a or none\n", optarg);
        return 2;
      }
      break;
    case 'T':
      o->tokenized = true;
      break;
    case 'b':
      o->score_only = true;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, P ": give at least one reference file (see --help)\n");
    return 2;
  }
  o->refs = argv + optind;
  o->n_refs = argc - optind;
  return 0;
}

/* The lines of a file, without trailing whitespace, as sacreBLEU reads
 * them: files (references, and hypotheses given with -i) split at "\n"
 * only, as its smart_open opens them (newline="\n"); hypotheses on standard
 * input in Python's text mode (also at "\r\n" and "\r"), as its
 * io.TextIOWrapper of sys.stdin.buffer reads them. A hypothesis line is
 * one hypothesis even if it holds tabs (sacreBLEU's command line would read
 * tab-separated fields as the outputs of several systems). -1 with a message on
 * error. */
static int read_lines(const char *path, app_line_ends ends, app_tokens *out) {
  app_line_reader r;
  if (app_line_reader_open(&r, path, ends, 0))
    return -1;
  const char *line;
  size_t len;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, NULL)) > 0)
    if (app_tokens_push(out, line, app_rstrip_len(line, len), false)) {
      got = -1;
      break;
    }
  app_line_reader_close(&r);
  return got;
}

/* Scores and prints: 0, or 1 after a message. */
static int score(const options *o, const app_tokens *hyps,
                 const app_tokens *refs) {
  int rc = 1;
  const char **seg = malloc((size_t)o->n_refs * sizeof *seg);
  size_t *lens = malloc((size_t)o->n_refs * sizeof *lens);
  app_bleu *bleu = NULL;
  app_chrf *chrf = NULL;
  app_nltk_bleu *nltk = NULL;
  app_tokens hyp_toks = {0};
  app_tokens *ref_toks = calloc((size_t)o->n_refs, sizeof *ref_toks);
  app_buf line = {0};
  if (!seg || !lens || !ref_toks) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    goto done;
  }
  if (o->bleu && !o->tokenized &&
      !(bleu = app_bleu_new((app_bleu_opts){o->lowercase, o->tokenizer})))
    goto done;
  if (o->bleu && o->tokenized && !(nltk = app_nltk_bleu_new(4)))
    goto done;
  if (o->chrf &&
      !(chrf = app_chrf_new((app_chrf_opts){.lowercase = o->lowercase})))
    goto done;
  for (int64_t i = 0; i < hyps->n; i++) {
    for (int r = 0; r < o->n_refs; r++) {
      seg[r] = app_token(&refs[r], i);
      lens[r] = app_token_len(&refs[r], i);
    }
    const char *h = app_token(hyps, i);
    size_t hl = app_token_len(hyps, i);
    if (bleu && app_bleu_add(bleu, h, hl, seg, lens, o->n_refs))
      goto done;
    if (chrf && app_chrf_add(chrf, h, hl, seg, lens, o->n_refs))
      goto done;
    if (nltk) {
      app_tokens_clear(&hyp_toks);
      if (app_tokenize_lower(h, hl, &hyp_toks, "hypothesis"))
        goto done;
      for (int r = 0; r < o->n_refs; r++) {
        app_tokens_clear(&ref_toks[r]);
        if (app_tokenize_lower(seg[r], lens[r], &ref_toks[r], o->refs[r]))
          goto done;
      }
      if (app_nltk_bleu_add(nltk, &hyp_toks, ref_toks, o->n_refs))
        goto done;
    }
  }
  app_bleu_result res;
  if (bleu || nltk) {
    if (bleu)
      app_bleu_get(bleu, &res);
    else if (app_nltk_bleu_get(nltk, 4, NULL, &res))
      goto done;
    if (o->score_only) {
      printf("%.2f\n", res.score);
    } else {
      app_buf_clear(&line);
      if (app_bleu_format(&res, &line))
        goto done;
      printf("%s\n", line.data);
    }
  }
  if (chrf) {
    if (o->score_only) {
      printf("%.2f\n", app_chrf_score(chrf));
    } else {
      app_buf_clear(&line);
      if (app_chrf_format(chrf, &line))
        goto done;
      printf("%s\n", line.data);
    }
  }
  rc = 0;
done:
  free(seg);
  free(lens);
  app_bleu_free(bleu);
  app_chrf_free(chrf);
  app_nltk_bleu_free(nltk);
  app_tokens_free(&hyp_toks);
  for (int r = 0; ref_toks && r < o->n_refs; r++)
    app_tokens_free(&ref_toks[r]);
  free(ref_toks);
  app_buf_free(&line);
  return rc;
}

int translate_score_main(int argc, char **argv) {
  options o;
  int rc = parse(argc, argv, &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  rc = 1;
  app_tokens hyps = {0};
  app_tokens *refs = calloc((size_t)o.n_refs, sizeof *refs);
  const char *hyp_name = o.input ? o.input : "<stdin>";
  if (!refs) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    goto done;
  }
  /* "-" is standard input here, as everywhere in loom's apps (sacreBLEU's
   * -i - would open a file named "-") */
  bool from_stdin = !o.input || !strcmp(o.input, "-");
  if (read_lines(o.input, from_stdin ? APP_LINES_UNIVERSAL : APP_LINES_LF,
                 &hyps))
    goto done;
  if (hyps.n == 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: no hypotheses", hyp_name);
    goto done;
  }
  for (int r = 0; r < o.n_refs; r++) {
    if (read_lines(o.refs[r], APP_LINES_LF, &refs[r]))
      goto done;
    if (refs[r].n != hyps.n) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s has %lld lines but the hypotheses (%s) have %lld",
                     o.refs[r], (long long)refs[r].n, hyp_name,
                     (long long)hyps.n);
      goto done;
    }
  }
  rc = score(&o, &hyps, refs);
done:
  if (rc)
    fprintf(stderr, P ": %s\n", loom_last_error());
  else if (app_finish_stdout(P, "the scores") < 0)
    rc = 1;
  app_tokens_free(&hyps);
  for (int r = 0; refs && r < o.n_refs; r++)
    app_tokens_free(&refs[r]);
  free(refs);
  return rc;
}
