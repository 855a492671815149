/* Queries on word vectors: nearest neighbours by cosine, analogies, and the
 * two standard evaluations, analogy accuracy on a questions-words file (as
 * the original compute-accuracy scores it) and Spearman correlation with
 * human similarity scores (WordSim-353).
 *
 * Scores come from loom matrix products of unit-length rows: a chunk of
 * analogy questions against the whole vocabulary is one GEMM. Words are
 * compared without regard to ASCII case, as both the original tool and
 * gensim do, the most frequent spelling standing for the others. */
#define _POSIX_C_SOURCE 200809L
#include "word2vec.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

loom_tensor *w2v_normalized(const loom_tensor *vectors) {
  loom_tensor *out = loom_contiguous(loom_clone(vectors));
  if (!out)
    return NULL;
  int64_t n = loom_size(out, 0), dim = loom_size(out, 1);
  float *d = loom_data_f32(out);
  for (int64_t i = 0; d && i < n; i++) {
    double ss = 0;
    for (int64_t j = 0; j < dim; j++)
      ss += (double)d[i * dim + j] * d[i * dim + j];
    float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0.0f;
    for (int64_t j = 0; j < dim; j++)
      d[i * dim + j] *= inv;
  }
  return d ? out : NULL;
}

static void upper_ascii(char *dst, const char *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    dst[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
  }
  dst[n] = '\0';
}

static bool same_folded(const char *a, const char *b) {
  for (;; a++, b++) {
    char x = (char)(*a >= 'a' && *a <= 'z' ? *a - 32 : *a);
    char y = (char)(*b >= 'a' && *b <= 'z' ? *b - 32 : *b);
    if (x != y)
      return false;
    if (!x)
      return true;
  }
}

int64_t w2v_find_word(const w2v_vectors *w, const char *word, int64_t limit) {
  int64_t n = limit > 0 && limit < w->n ? limit : w->n;
  for (int64_t i = 0; i < n; i++)
    if (same_folded(w->words[i], word))
      return i;
  return -1;
}

/* The first `limit` words folded to upper case in a hash index: folded id
 * -> the first (most frequent) row spelled so, and row -> folded id. */
typedef struct {
  w2v_vocab folded;
  int64_t *first;
  int32_t *fold_of;
  int64_t n;
} folded_index;

static void folded_free(folded_index *x) {
  w2v_vocab_free(&x->folded);
  free(x->first);
  free(x->fold_of);
}

static int folded_build(folded_index *x, const w2v_vectors *w, int64_t limit) {
  *x = (folded_index){0};
  x->n = limit > 0 && limit < w->n ? limit : w->n;
  x->first = malloc((size_t)x->n * sizeof *x->first);
  x->fold_of = malloc((size_t)x->n * sizeof *x->fold_of);
  if (!x->first || !x->fold_of) {
    loom_set_error(LOOM_ERR_MEMORY, "word index: out of memory");
    return -1;
  }
  char buf[4096];
  for (int64_t i = 0; i < x->n; i++) {
    size_t len = strlen(w->words[i]);
    if (len >= sizeof buf)
      len = sizeof buf - 1;
    upper_ascii(buf, w->words[i], len);
    int64_t before = x->folded.size;
    int64_t id = w2v_vocab_add(&x->folded, buf, len);
    if (id < 0)
      return -1;
    if (id == before)
      x->first[id] = i;
    x->fold_of[i] = (int32_t)id;
  }
  return 0;
}

/* Row of a word (folded), or -1. */
static int64_t folded_find(const folded_index *x, const char *word) {
  char buf[4096];
  size_t len = strlen(word);
  if (len >= sizeof buf)
    return -1;
  upper_ascii(buf, word, len);
  int64_t id = w2v_vocab_find(&x->folded, buf, len);
  return id < 0 ? -1 : x->first[id];
}

/* ------------------------------------------------ nearest neighbours */

/* Keeps the k best (index, score) in out[0..*have), best first. */
static void offer(w2v_hit *out, int *have, int k, int64_t index, float score) {
  if (*have == k && score <= out[k - 1].score)
    return;
  int i = *have < k ? (*have)++ : k - 1;
  while (i > 0 && out[i - 1].score < score) {
    out[i] = out[i - 1];
    i--;
  }
  out[i] = (w2v_hit){index, score};
}

int w2v_nearest(const loom_tensor *normed, const float *query,
                const int64_t *exclude, int n_exclude, int64_t limit, int k,
                w2v_hit *out) {
  int64_t n = loom_size(normed, 0), dim = loom_size(normed, 1);
  if (limit > 0 && limit < n)
    n = limit;
  loom_scope *s = loom_scope_begin();
  double ss = 0;
  for (int64_t j = 0; j < dim; j++)
    ss += (double)query[j] * query[j];
  loom_tensor *q = loom_from_array(LOOM_F32, query, LOOM_SHAPE(dim));
  loom_tensor *scores = loom_contiguous(
      loom_matmul(loom_narrow(normed, 0, 0, n),
                  loom_mul_scalar(q, ss > 0 ? 1 / sqrt(ss) : 0)));
  int have = 0;
  const float *sc = scores ? loom_data_f32(scores) : NULL;
  for (int64_t i = 0; sc && i < n; i++) {
    bool skip = false;
    for (int e = 0; e < n_exclude; e++)
      skip |= exclude[e] == i;
    if (!skip)
      offer(out, &have, k, i, sc[i]);
  }
  loom_scope_end(s);
  return sc ? have : -1;
}

/* ------------------------------------------------ analogy accuracy */

void w2v_accuracy_free(w2v_accuracy *acc) {
  free(acc->sections);
  *acc = (w2v_accuracy){0};
}

typedef struct {
  int64_t a, b, c, d;
  int section;
} question;

/* Answers questions q[0..n): the nearest row to b - a + c among the first
 * `limit` rows, a, b and c excluded; counts the right ones. */
static int answer(const loom_tensor *normed, const folded_index *x,
                  const question *q, int64_t n, w2v_accuracy *acc) {
  int64_t dim = loom_size(normed, 1), rows = x->n;
  loom_scope *s = loom_scope_begin();
  loom_tensor *target = loom_empty(LOOM_F32, LOOM_SHAPE(n, dim));
  const float *m = loom_data_f32(normed);
  float *t = target ? loom_data_f32(target) : NULL;
  for (int64_t i = 0; t && i < n; i++)
    for (int64_t j = 0; j < dim; j++)
      t[i * dim + j] =
          m[q[i].b * dim + j] - m[q[i].a * dim + j] + m[q[i].c * dim + j];
  loom_tensor *scores = loom_contiguous(
      loom_matmul(target, loom_t(loom_narrow(normed, 0, 0, rows))));
  const float *sc = scores ? loom_data_f32(scores) : NULL;
  for (int64_t i = 0; sc && i < n; i++) {
    const float *row = sc + i * rows;
    int64_t best = -1;
    float top = -INFINITY;
    for (int64_t r = 0; r < rows; r++)
      if (row[r] > top && r != q[i].a && r != q[i].b && r != q[i].c) {
        top = row[r];
        best = r;
      }
    w2v_section *sec = &acc->sections[q[i].section];
    bool ok = best >= 0 && x->fold_of[best] == x->fold_of[q[i].d];
    sec->seen++;
    sec->correct += ok;
    bool syntactic = strncmp(sec->name, "gram", 4) == 0;
    acc->seen++;
    acc->correct += ok;
    acc->syntactic_seen += syntactic;
    acc->syntactic_correct += syntactic && ok;
    acc->semantic_seen += !syntactic;
    acc->semantic_correct += !syntactic && ok;
  }
  loom_scope_end(s);
  return sc ? 0 : -1;
}

/* Splits line in place into its words, runs of bytes between ASCII
 * whitespace as the original tool reads them (not app_split_space: vector
 * files hold any bytes, not only UTF-8), pointing up to n of word[] at
 * them; returns how many there are (maybe more than n). Words of any
 * length: read through fixed buffers, a long word became two and the
 * line's words shifted. */
static int split_words(char *line, char **word, int n) {
  int count = 0;
  for (char *p = line;;) {
    while (*p && isspace((unsigned char)*p))
      p++;
    if (!*p)
      return count;
    if (count < n)
      word[count] = p;
    count++;
    while (*p && !isspace((unsigned char)*p))
      p++;
    if (*p)
      *p++ = 0;
  }
}

/* The longest line an evaluation file may have: WordSim's and the
 * questions' lines are a few words. */
#define EVAL_MAX_LINE ((size_t)1 << 20)

/* One line of an evaluation file into *line (grown as getline grows it):
 * 1, 0 at the end of the file, or -1 after an error naming the file and
 * line. getline, which this replaces, read a line without end (/dev/zero)
 * until memory ran out and then ended as if at the end of the file, and the
 * string functions stopped at a NUL byte, so a line starting with one was
 * skipped as blank. */
static int eval_line(FILE *f, const char *path, int64_t lineno, char **line,
                     size_t *cap) {
  size_t n = 0;
  int c = EOF;
  while ((c = getc(f)) != EOF) {
    if (c == 0 || (n == EVAL_MAX_LINE && c != '\n')) {
      loom_set_error(LOOM_ERR_FORMAT, "%s: line %lld: %s", path,
                     (long long)lineno,
                     c == 0 ? "a NUL byte; expected text"
                            : "longer than 1 MiB; expected a few words");
      return -1;
    }
    if (n + 2 > *cap) {
      size_t grown = *cap ? 2 * *cap : 256;
      char *g = realloc(*line, grown);
      if (!g) {
        loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
        return -1;
      }
      *line = g;
      *cap = grown;
    }
    (*line)[n++] = (char)c;
    if (c == '\n')
      break;
  }
  if (ferror(f)) {
    loom_set_error(LOOM_ERR_IO, "%s: read error at line %lld", path,
                   (long long)lineno);
    return -1;
  }
  if (n == 0)
    return 0;
  (*line)[n] = '\0';
  return 1;
}

int w2v_analogy_accuracy(const w2v_vectors *w, const char *path, int64_t limit,
                         w2v_accuracy *acc) {
  *acc = (w2v_accuracy){0};
  FILE *f = loom_file_open_read(path);
  if (!f)
    return -1;
  folded_index x;
  int rc = folded_build(&x, w, limit);
  loom_scope *s = loom_scope_begin();
  loom_tensor *normed = rc == 0 ? w2v_normalized(w->vectors) : NULL;
  /* questions per GEMM: up to 512, the scores within 64 MiB */
  int64_t chunk = ((int64_t)1 << 24) / (x.n > 0 ? x.n : 1);
  chunk = chunk < 1 ? 1 : chunk > 512 ? 512 : chunk;
  question *q = malloc((size_t)chunk * sizeof *q);
  if (!normed || !q)
    rc = -1;
  int64_t nq = 0, lineno = 0;
  int cap = 0;
  char *line = NULL;
  size_t line_cap = 0;
  while (rc == 0) {
    int more = eval_line(f, path, ++lineno, &line, &line_cap);
    if (more <= 0) {
      rc = more;
      break;
    }
    if (line[0] == ':') {
      if (acc->n_sections == cap) {
        cap = cap ? 2 * cap : 16;
        w2v_section *g = realloc(acc->sections, (size_t)cap * sizeof *g);
        if (!g) {
          loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
          rc = -1;
          break;
        }
        acc->sections = g;
      }
      w2v_section *sec = &acc->sections[acc->n_sections++];
      *sec = (w2v_section){0};
      if (sscanf(line + 1, "%63s", sec->name) != 1)
        snprintf(sec->name, sizeof sec->name, "section %d", acc->n_sections);
      continue;
    }
    char *wd[4];
    int got = split_words(line, wd, 4);
    if (got == 0)
      continue; /* a blank line */
    if (got != 4 || acc->n_sections == 0) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld: expected \": "
                     "section\" or four words",
                     path, (long long)lineno);
      rc = -1;
      break;
    }
    acc->questions++;
    question qq = {folded_find(&x, wd[0]), folded_find(&x, wd[1]),
                   folded_find(&x, wd[2]), folded_find(&x, wd[3]),
                   acc->n_sections - 1};
    if (qq.a < 0 || qq.b < 0 || qq.c < 0 || qq.d < 0)
      continue;
    q[nq++] = qq;
    if (nq == chunk) {
      rc = answer(normed, &x, q, nq, acc);
      nq = 0;
    }
  }
  if (rc == 0 && nq > 0)
    rc = answer(normed, &x, q, nq, acc);
  if (rc == 0 && acc->n_sections == 0) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: no \": section\" line; not a "
                   "questions-words file",
                   path);
    rc = -1;
  }
  free(line);
  free(q);
  loom_scope_end(s);
  folded_free(&x);
  fclose(f);
  if (rc < 0)
    w2v_accuracy_free(acc);
  return rc;
}

/* ------------------------------------------------ word similarity */

/* Ranks 1..n, ties sharing their average rank. */
static int rank(const double *x, int64_t n, double *r) {
  int64_t *order = malloc((size_t)n * sizeof *order);
  if (!order)
    return -1;
  for (int64_t i = 0; i < n; i++)
    order[i] = i;
  /* insertion sort: n is a few hundred pairs */
  for (int64_t i = 1; i < n; i++) {
    int64_t k = order[i], j = i;
    while (j > 0 && x[order[j - 1]] > x[k]) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = k;
  }
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && x[order[j + 1]] == x[order[i]])
      j++;
    for (int64_t k = i; k <= j; k++)
      r[order[k]] = (double)(i + j) / 2 + 1;
    i = j + 1;
  }
  free(order);
  return 0;
}

/* The correlation of finite x and y. It does not depend on their scale,
 * so each is first divided by its largest magnitude: scores of 1e308 (or
 * 1e-308) neither overflow nor underflow in the sums and squares. */
static double pearson(const double *x, const double *y, int64_t n) {
  double ax = 0, ay = 0;
  for (int64_t i = 0; i < n; i++) {
    ax = fmax(ax, fabs(x[i]));
    ay = fmax(ay, fabs(y[i]));
  }
  if (!(ax > 0 && ay > 0 && isfinite(ax) && isfinite(ay)))
    return NAN; /* constant zero: no correlation */
  double mx = 0, my = 0;
  for (int64_t i = 0; i < n; i++) {
    mx += x[i] / ax;
    my += y[i] / ay;
  }
  mx /= (double)n;
  my /= (double)n;
  double sxy = 0, sxx = 0, syy = 0;
  for (int64_t i = 0; i < n; i++) {
    double dx = x[i] / ax - mx, dy = y[i] / ay - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / (sqrt(sxx) * sqrt(syy)) : NAN;
}

double w2v_spearman(const double *x, const double *y, int64_t n) {
  if (n < 2)
    return NAN;
  double *rx = malloc((size_t)n * sizeof *rx);
  double *ry = malloc((size_t)n * sizeof *ry);
  double rho = NAN;
  if (rx && ry && rank(x, n, rx) == 0 && rank(y, n, ry) == 0)
    rho = pearson(rx, ry, n);
  free(rx);
  free(ry);
  return rho;
}

int w2v_word_similarity(const w2v_vectors *w, const char *path, int64_t limit,
                        w2v_similarity *sim) {
  *sim = (w2v_similarity){0};
  FILE *f = loom_file_open_read(path);
  if (!f)
    return -1;
  folded_index x;
  int rc = folded_build(&x, w, limit);
  int64_t cap = 512, lineno = 0;
  double *human = malloc((size_t)cap * sizeof *human);
  double *model = malloc((size_t)cap * sizeof *model);
  if (rc == 0 && (!human || !model)) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    rc = -1;
  }
  const float *m = loom_data_f32(w->vectors);
  char *line = NULL;
  size_t line_cap = 0;
  while (rc == 0) {
    int more = eval_line(f, path, ++lineno, &line, &line_cap);
    if (more <= 0) {
      rc = more;
      break;
    }
    if (line[0] == '#')
      continue;
    char *save = NULL;
    char *a = strtok_r(line, "\t\r\n", &save);
    char *b = strtok_r(NULL, "\t\r\n", &save);
    char *score = strtok_r(NULL, "\t\r\n", &save), *end = NULL;
    if (!a)
      continue;
    double h = score ? strtod(score, &end) : NAN;
    while (end && isspace((unsigned char)*end))
      end++;
    if (!b || !score || end == score || *end || !isfinite(h)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: line %lld: expected "
                     "\"word1<TAB>word2<TAB>score\" with a finite score",
                     path, (long long)lineno);
      rc = -1;
      break;
    }
    sim->pairs++;
    int64_t i = folded_find(&x, a), j = folded_find(&x, b);
    if (i < 0 || j < 0)
      continue;
    if (sim->used == cap) {
      cap *= 2;
      double *gh = realloc(human, (size_t)cap * sizeof *gh);
      if (gh)
        human = gh;
      double *gm = realloc(model, (size_t)cap * sizeof *gm);
      if (gm)
        model = gm;
      if (!gh || !gm) {
        loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
        rc = -1;
        break;
      }
    }
    double dot = 0, ni = 0, nj = 0;
    for (int64_t k = 0; k < w->dim; k++) {
      double p = m[i * w->dim + k], r = m[j * w->dim + k];
      dot += p * r;
      ni += p * p;
      nj += r * r;
    }
    human[sim->used] = h;
    model[sim->used] = ni > 0 && nj > 0 ? dot / sqrt(ni * nj) : 0;
    sim->used++;
  }
  if (rc == 0 && sim->pairs == 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: no word pairs found", path);
    rc = -1;
  }
  if (rc == 0) {
    sim->spearman = w2v_spearman(human, model, sim->used);
    sim->pearson = sim->used >= 2 ? pearson(human, model, sim->used) : NAN;
  }
  if (rc < 0 && loom_last_status() == LOOM_OK)
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
  free(line);
  free(human);
  free(model);
  folded_free(&x);
  fclose(f);
  return rc;
}
