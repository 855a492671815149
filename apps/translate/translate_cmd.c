/* translate translate: standard input to standard output, batched, with
 * greedy decoding, beam search or sampling; and translate attention: one
 * sentence's attention weights as a heatmap PNG. */
#include "search.h"
#include "translate.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *checkpoint, *output, *src;
  loom_decode_opts decode;
  int64_t max_tokens, line, seed;
  int threads;
  bool scores;
} options;

/* The model and its text pipeline from a checkpoint, in evaluation mode:
 * the configuration and the weights from one reading of the file. */
static int load(const char *path, nmt_model **m, nmt_text **t) {
  loom_tensor_map *extra = NULL;
  int64_t step;
  nmt_config c;
  *m = NULL;
  *t = NULL;
  loom_tensor_map *file = loom_safetensors_load(path);
  if (!file || loom_checkpoint_restore(file, path, NULL, NULL, NULL, &step,
                                       NULL, &extra) < 0) {
    fprintf(stderr, "translate: cannot read %s: %s\n", path, loom_last_error());
    loom_tensor_map_free(file);
    return -1;
  }
  int rc = nmt_config_load(&c, extra) == 0 &&
                   (*t = nmt_text_load(extra, path)) != NULL
               ? 0
               : -1;
  if (rc == 0 && (nmt_text_vocab_size(*t, false) != c.src_vocab ||
                  nmt_text_vocab_size(*t, true) != c.tgt_vocab)) {
    /* the model's embeddings and output layer are of the vocabularies */
    loom_set_error(LOOM_ERR_FORMAT,
                   "its vocabularies hold %lld and %lld units, its "
                   "configuration says %lld and %lld",
                   (long long)nmt_text_vocab_size(*t, false),
                   (long long)nmt_text_vocab_size(*t, true),
                   (long long)c.src_vocab, (long long)c.tgt_vocab);
    rc = -1;
  }
  loom_tensor_map_free(extra);
  if (rc == 0 && !(*m = nmt_model_new(&c, 0)))
    rc = -1;
  if (rc == 0 && loom_checkpoint_restore(file, path, &(*m)->base, NULL, NULL,
                                         &step, NULL, NULL) < 0)
    rc = -1;
  loom_tensor_map_free(file);
  if (rc < 0) {
    fprintf(stderr, "translate: %s is not a translation model%s%s\n", path,
            loom_last_status() ? ": " : "",
            loom_last_status() ? loom_last_error() : "");
    loom_clear_error();
    if (*m)
      loom_module_free(&(*m)->base);
    nmt_text_free(*t);
    *m = NULL;
    *t = NULL;
    return -1;
  }
  loom_module_train(&(*m)->base, false);
  return 0;
}

static void usage(FILE *f, bool attention) {
  if (attention)
    fprintf(f, "usage: translate attention --checkpoint FILE --output PNG "
               "[options] < text\n"
               "\n"
               "Translates one line of the input (--line N, 1) and draws the\n"
               "attention of each target word over the source words as a "
               "heatmap.\n"
               "Options of `translate translate` apply (--beam ...).\n");
  else
    fprintf(
        f,
        "usage: translate translate --checkpoint FILE [options] < in > out\n"
        "\n"
        "Translates each line of standard input (an empty line gives an\n"
        "empty line).\n"
        "\n"
        "  --checkpoint FILE  a model written by `translate train`\n"
        "  --beam N           beam size; 1 is greedy decoding (5)\n"
        "  --alpha X          length penalty ((5+len)/6)^alpha (0.6)\n"
        "  --nbest N          up to N translations per line (fewer when the\n"
        "                     search holds fewer), best first, as\n"
        "                     'LINE ||| TEXT ||| SCORE ||| PENALISED' (1)\n"
        "  --max-len-a X, --max-len-b N   at most a * source length + b\n"
        "                     tokens (1, 50)\n"
        "  --min-len N        no end of sentence before N tokens (0)\n"
        "  --sample           draw translations instead of searching:\n"
        "                     --temperature X (1) --top-k N (0: all) --top-p X "
        "(1)\n"
        "                     --seed N (1)\n"
        "  --scores           print each line's score as with --nbest\n"
        "  --max-tokens N     source tokens per batch (4096)\n"
        "  --threads N        (all cores)\n");
}

enum {
  OPT_CHECKPOINT = 256,
  OPT_BEAM,
  OPT_ALPHA,
  OPT_NBEST,
  OPT_MAX_LEN_A,
  OPT_MAX_LEN_B,
  OPT_MIN_LEN,
  OPT_SAMPLE,
  OPT_TEMPERATURE,
  OPT_TOP_K,
  OPT_TOP_P,
  OPT_SEED,
  OPT_SCORES,
  OPT_MAX_TOKENS,
  OPT_THREADS,
  OPT_OUTPUT,
  OPT_LINE,
  OPT_HELP,
};

static int parse(int argc, char **argv, options *o, bool attention) {
  static const struct option longs[] = {
      {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
      {"beam", required_argument, NULL, OPT_BEAM},
      {"alpha", required_argument, NULL, OPT_ALPHA},
      {"nbest", required_argument, NULL, OPT_NBEST},
      {"max-len-a", required_argument, NULL, OPT_MAX_LEN_A},
      {"max-len-b", required_argument, NULL, OPT_MAX_LEN_B},
      {"min-len", required_argument, NULL, OPT_MIN_LEN},
      {"sample", no_argument, NULL, OPT_SAMPLE},
      {"temperature", required_argument, NULL, OPT_TEMPERATURE},
      {"top-k", required_argument, NULL, OPT_TOP_K},
      {"top-p", required_argument, NULL, OPT_TOP_P},
      {"seed", required_argument, NULL, OPT_SEED},
      {"scores", no_argument, NULL, OPT_SCORES},
      {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"output", required_argument, NULL, OPT_OUTPUT},
      {"line", required_argument, NULL, OPT_LINE},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  *o = (options){.checkpoint = "translate.ckpt",
                 .decode = loom_decode_defaults(NMT_BOS, NMT_EOS),
                 .max_tokens = 4096,
                 .line = 1,
                 .seed = 1};
  loom_decode_opts *d = &o->decode;
  d->method = LOOM_DECODE_BEAM;
  d->alpha = 0.6;
  d->max_len_a = 1;
  d->max_len_b = 50;
  int64_t beam = 5, nbest = 1, k = 0, v;
  bool sample = false;
  const char *p = "translate";
  optind = 1;
  for (int ch; (ch = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
    const char *a = optarg;
    char flag[32] = "--";
    for (const struct option *l = longs; l->name; l++)
      if (l->val == ch)
        snprintf(flag, sizeof flag, "--%s", l->name);
    int rc = 0;
    switch (ch) {
    case OPT_CHECKPOINT:
      o->checkpoint = a;
      break;
    case OPT_BEAM:
      rc = app_parse_int(p, flag, a, 1, 1024, &beam);
      break;
    case OPT_ALPHA:
      rc = app_parse_real(p, flag, a, (app_range){.hi = 10}, &d->alpha);
      break;
    case OPT_NBEST:
      rc = app_parse_int(p, flag, a, 1, 1024, &nbest);
      break;
    case OPT_MAX_LEN_A:
      rc = app_parse_real(p, flag, a, (app_range){.hi = 100}, &d->max_len_a);
      break;
    case OPT_MAX_LEN_B:
      rc = app_parse_int(p, flag, a, 0, 1000000, &d->max_len_b);
      break;
    case OPT_MIN_LEN:
      rc = app_parse_int(p, flag, a, 0, 1000000, &d->min_len);
      break;
    case OPT_SAMPLE:
      sample = true;
      break;
    case OPT_TEMPERATURE:
      rc = app_parse_real(p, flag, a, (app_range){.hi = 100, .lo_open = true},
                          &d->temperature);
      break;
    case OPT_TOP_K:
      rc = app_parse_int(p, flag, a, 0, INT32_MAX, &k);
      break;
    case OPT_TOP_P:
      rc = app_parse_real(p, flag, a, (app_range){.hi = 1, .lo_open = true},
                          &d->top_p);
      break;
    case OPT_SEED:
      rc = app_parse_int(p, flag, a, 0, INT64_MAX, &o->seed);
      break;
    case OPT_SCORES:
      o->scores = true;
      break;
    case OPT_MAX_TOKENS:
      rc = app_parse_int(p, flag, a, 1, (int64_t)1 << 30, &o->max_tokens);
      break;
    case OPT_THREADS:
      rc = app_parse_int(p, flag, a, 1, 1024, &v);
      o->threads = (int)v;
      break;
    case OPT_OUTPUT:
      o->output = a;
      break;
    case OPT_LINE:
      rc = app_parse_int(p, flag, a, 1, INT64_MAX / 4, &o->line);
      break;
    case OPT_HELP:
      usage(stdout, attention);
      return 1;
    default:
      usage(stderr, attention);
      return -1;
    }
    if (rc < 0)
      return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "translate: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (attention && (!o->output || !*o->output)) {
    fprintf(stderr, "translate attention: --output PNG is required\n");
    return -1;
  }
  if (attention &&
      (app_refuse_overwrite("translate attention", "--output", o->output,
                            "--checkpoint", o->checkpoint) < 0 ||
       app_refuse_overwrite_stdin("translate attention", "--output",
                                  o->output) < 0))
    return -1;
  if (d->min_len > d->max_len_b) {
    fprintf(stderr,
            "translate: --min-len %lld: must be in [0, %lld] "
            "(--max-len-b)\n",
            (long long)d->min_len, (long long)d->max_len_b);
    return -1;
  }
  d->top_k = k;
  d->nbest = (int)nbest;
  d->beam = (int)beam;
  d->method = sample     ? LOOM_DECODE_SAMPLE
              : beam > 1 ? LOOM_DECODE_BEAM
                         : LOOM_DECODE_GREEDY;
  if (!sample && nbest > beam) {
    fprintf(stderr, "translate: --nbest %lld is more than --beam %lld\n",
            (long long)nbest, (long long)beam);
    return -1;
  }
  return 0;
}

/* The input lines as sources; empty lines are kept with no ids (they are
 * not translated). */
static int read_input(const nmt_text *t, const nmt_model *m, nmt_corpus *c,
                      bool *empty_line) {
  app_line_reader rd;
  if (app_line_reader_open(&rd, "-", APP_LINES_LF, 0) < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    return -1;
  }
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  const char *line;
  size_t len;
  int rc;
  while ((rc = app_line_reader_next(&rd, &line, &len, NULL)) > 0) {
    n = 0;
    if (nmt_text_encode(t, false, line, len, rd.name, &ids, &n, &cap) < 0) {
      rc = -1;
      break;
    }
    if (!strcmp(m->cfg.model, "transformer") && n > m->cfg.max_positions) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "<stdin>:%lld: %lld tokens, more than the model's %lld "
                     "positions",
                     (long long)rd.line_no, (long long)n,
                     (long long)m->cfg.max_positions);
      rc = -1;
      break;
    }
    bool empty = n <= 1; /* eos alone */
    if (empty_line)
      empty_line[0] = empty; /* grown below */
    if (nmt_corpus_add(c, ids, empty ? 0 : n, NULL, 0, rd.line_no) < 0) {
      rc = -1;
      break;
    }
  }
  app_line_reader_close(&rd);
  free(ids);
  if (rc < 0) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    return -1;
  }
  return 0;
}

/* Pairs of c with a source, as their own corpus (empty lines are not
 * translated). */
static int non_empty(const nmt_corpus *c, nmt_corpus *out, int64_t *index) {
  for (int64_t i = 0; i < c->n; i++)
    if (c->src_len[i] > 0) {
      index[out->n] = i;
      if (nmt_corpus_add(out, c->ids + c->src_at[i], c->src_len[i], NULL, 0,
                         c->line[i]) < 0)
        return -1;
    }
  return 0;
}

static int translate_all(const options *o, nmt_model *m, const nmt_text *t) {
  nmt_corpus in = {0}, todo = {0};
  loom_decode_result r = {0};
  app_buf text = {0};
  int64_t *index = NULL;
  int rc = read_input(t, m, &in, NULL);
  if (rc == 0) {
    index = malloc(((size_t)in.n + 1) * sizeof *index);
    rc = index && non_empty(&in, &todo, index) == 0 ? 0 : -1;
  }
  loom_decode_opts d = o->decode;
  loom_rng *g =
      d.method == LOOM_DECODE_SAMPLE ? loom_rng_new((uint64_t)o->seed) : NULL;
  d.rng = g;
  bool decoded = rc == 0 && (d.method != LOOM_DECODE_SAMPLE || g) &&
                 nmt_translate_corpus(m, &todo, &d, o->max_tokens, 0, &r) == 0;
  if (rc == 0 && !decoded) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    rc = -1;
  }
  int nb = d.nbest;
  for (int64_t i = 0, j = 0; rc == 0 && i < in.n; i++) {
    bool has = j < todo.n && index[j] == i;
    for (int k = 0; k < nb && rc == 0; k++) {
      const loom_hypothesis *h = has ? &r.hyps[j * nb + k] : NULL;
      /* a search space smaller than --nbest leaves placeholders (no
       * tokens, score -inf) after the real hypotheses: only those are
       * listed, as fairseq lists the hypotheses it has */
      if (h && k > 0 && h->score == -INFINITY)
        break;
      app_buf_clear(&text);
      if (h && nmt_text_decode(t, h->tokens, h->len, &text) < 0) {
        fprintf(stderr, "translate: %s\n", loom_last_error());
        rc = -1;
        break;
      }
      const char *s = text.data ? text.data : "";
      if (nb > 1 || o->scores)
        printf("%lld ||| %s ||| %.6f ||| %.6f\n", (long long)i, s,
               h ? h->score : 0.0, h ? h->penalized : 0.0);
      else
        printf("%s\n", s);
      if (!has)
        break; /* an empty line: one empty translation */
    }
    j += has;
  }
  if (app_finish_stdout("translate", "the translations") < 0)
    rc = -1;
  if (decoded)
    loom_decode_result_free(&r);
  loom_rng_free(g);
  app_buf_free(&text);
  free(index);
  nmt_corpus_free(&in);
  nmt_corpus_free(&todo);
  return rc;
}

int translate_translate_main(int argc, char **argv) {
  options o;
  int p = parse(argc, argv, &o, false);
  if (p != 0)
    return p > 0 ? 0 : 2;
  if (o.threads)
    loom_set_num_threads(o.threads);
  nmt_model *m;
  nmt_text *t;
  if (load(o.checkpoint, &m, &t) < 0)
    return 1;
  int rc = translate_all(&o, m, t);
  loom_module_free(&m->base);
  nmt_text_free(t);
  loom_cleanup();
  return rc < 0 ? 1 : 0;
}

/* ---- the attention picture ---- */

/* Labels of ids as the model saw them, with "</s>" for the end. */
static char **labels(const nmt_text *t, bool target, const int64_t *ids,
                     int64_t n, app_tokens *units) {
  char **l = calloc((size_t)n + 2, sizeof *l);
  if (!l || nmt_text_units(t, target, ids, n, units) < 0 || units->n != n) {
    free(l);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++)
    l[i] = (char *)app_token(units, i);
  l[n] = "</s>";
  return l;
}

static int draw(const options *o, nmt_model *m, const nmt_text *t,
                const nmt_corpus *one, const loom_hypothesis *h) {
  /* the translation, teacher-forced, gives the weights it was made with */
  const int32_t *src = one->ids + one->src_at[0];
  int32_t *tgt = malloc(((size_t)h->len + 1) * sizeof *tgt);
  int64_t *src64 = malloc(((size_t)one->src_len[0] + 1) * sizeof *src64);
  if (!tgt || !src64) {
    free(tgt);
    free(src64);
    return -1;
  }
  for (int64_t i = 0; i < h->len; i++)
    tgt[i] = (int32_t)h->tokens[i];
  for (int64_t i = 0; i < one->src_len[0]; i++)
    src64[i] = src[i];
  nmt_batch b;
  int rc = nmt_batch_make(&b, 1, &src, &one->src_len[0],
                          (const int32_t *const *)&tgt, &h->len);
  loom_scope *s = loom_scope_begin();
  loom_tensor *w = rc == 0 ? m->ops->attention(m, &b) : NULL; /* (T, 1, S) */
  loom_tensor *w2 =
      loom_contiguous(loom_to_dtype(loom_squeeze(w, 1), LOOM_F32));
  app_tokens su = {0}, tu = {0};
  int64_t S = one->src_len[0] - 1; /* the source ids end with eos */
  char **cols = labels(t, false, src64, S, &su);
  char **rows = labels(t, true, h->tokens, h->len, &tu);
  rc = w2 && cols && rows ? 0 : -1;
  if (rc == 0) {
    char title[64];
    snprintf(title, sizeof title, "attention of each target word (%s)",
             m->cfg.model);
    app_heatmap hm = {.values = loom_data_f32(w2),
                      .rows = (int)loom_size(w2, 0),
                      .cols = (int)loom_size(w2, 1),
                      .row_labels = (const char *const *)rows,
                      .col_labels = (const char *const *)cols,
                      .title = title,
                      .colorbar = true};
    rc = app_heatmap_png(o->output, &hm);
  }
  if (rc < 0) /* names the picture once, where the error names it too */
    app_report_write_error("translate", o->output);
  loom_clear_error();
  free(cols);
  free(rows);
  app_tokens_free(&su);
  app_tokens_free(&tu);
  loom_scope_end(s);
  nmt_batch_free(&b);
  free(tgt);
  free(src64);
  return rc;
}

int translate_attention_main(int argc, char **argv) {
  options o;
  int p = parse(argc, argv, &o, true);
  if (p != 0)
    return p > 0 ? 0 : 2;
  if (o.threads)
    loom_set_num_threads(o.threads);
  nmt_model *m;
  nmt_text *t;
  if (load(o.checkpoint, &m, &t) < 0)
    return 1;
  nmt_corpus in = {0}, one = {0};
  loom_decode_result r = {0};
  int rc = read_input(t, m, &in, NULL);
  if (rc == 0 && (o.line > in.n || in.src_len[o.line - 1] == 0)) {
    fprintf(stderr, "translate: the input has no line %lld with text\n",
            (long long)o.line);
    rc = -1;
  }
  int64_t i = o.line - 1;
  loom_decode_opts d = o.decode;
  d.nbest = 1;
  if (d.method == LOOM_DECODE_SAMPLE) /* the picture shows the best */
    d.method = LOOM_DECODE_BEAM;
  /* each failure is reported where it happens: the input's have been */
  if (rc == 0 && (nmt_corpus_add(&one, in.ids + in.src_at[i], in.src_len[i],
                                 NULL, 0, o.line) < 0 ||
                  nmt_translate_corpus(m, &one, &d, o.max_tokens, 0, &r) < 0)) {
    fprintf(stderr, "translate: %s\n", loom_last_error());
    loom_clear_error();
    rc = -1;
  }
  app_buf text = {0};
  if (rc == 0 &&
      nmt_text_decode(t, r.hyps[0].tokens, r.hyps[0].len, &text) == 0)
    printf("%s\n", text.data ? text.data : "");
  if (rc == 0)
    rc = draw(&o, m, t, &one, &r.hyps[0]);
  if (rc == 0)
    fprintf(stderr, "attention: %s\n", o.output);
  app_buf_free(&text);
  loom_decode_result_free(&r);
  nmt_corpus_free(&in);
  nmt_corpus_free(&one);
  loom_module_free(&m->base);
  nmt_text_free(t);
  loom_cleanup();
  return rc < 0 ? 1 : 0;
}
