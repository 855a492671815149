/* The word2vec vector formats, as the original tool writes them and
 * gensim's KeyedVectors.load_word2vec_format reads them:
 *
 *   text:   "V dim\n", then per word: the word, a space, dim numbers each
 *           printed as "%f " (six decimals, a trailing space), "\n"
 *   binary: "V dim\n", then per word: the word, a space, dim float32 in
 *           the machine's byte order (little-endian here), "\n"
 *
 * The reader takes either (and detects which), checks every size against
 * the file before it allocates, and names the word and byte offset of any
 * damage. */
#define _POSIX_C_SOURCE 200809L
#include "word2vec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* printf("%f ", x) for a float, ~10x faster: x * 10^6 is exact in double
 * (24 + 14 significant bits), so rounding it to an integer (to nearest,
 * ties to even, like glibc's printf) gives the same six decimals. */
static int format_f6(char *out, float x) {
  double y = (double)x * 1e6;
  if (!(fabs(y) < 9e15)) /* inf, nan, or huge: let printf do it */
    return snprintf(out, 64, "%f ", (double)x);
  double r = rint(y);
  unsigned long long v = (unsigned long long)fabs(r);
  char digits[24];
  int n = 0;
  while (v > 0 || n < 7) { /* at least "0" and six decimals */
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  }
  int k = 0;
  if (signbit(x))
    out[k++] = '-';
  for (int i = n - 1; i >= 6; i--)
    out[k++] = digits[i];
  out[k++] = '.';
  for (int i = 5; i >= 0; i--)
    out[k++] = digits[i];
  out[k++] = ' ';
  return k;
}

int w2v_save_vectors(const char *path, const w2v_vocab *v,
                     const loom_tensor *syn0, bool binary) {
  int64_t n = v->size, dim = loom_size(syn0, 1);
  const float *w = loom_data_f32(syn0);
  if (!w || loom_size(syn0, 0) != n) {
    loom_set_error(LOOM_ERR_SHAPE, "%s: %lld words but %lld vectors", path,
                   (long long)n, (long long)loom_size(syn0, 0));
    return -1;
  }
  char *line = malloc((size_t)(dim * 64 + W2V_MAX_WORD + 8));
  loom_file_writer *out = line ? loom_file_writer_open(path) : NULL;
  FILE *f = loom_file_writer_stream(out);
  if (!f) {
    if (!line)
      loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    free(line);
    return -1;
  }
  fprintf(f, "%lld %lld\n", (long long)n, (long long)dim);
  for (int64_t i = 0; i < n; i++) {
    const float *row = w + i * dim;
    size_t k =
        (size_t)snprintf(line, W2V_MAX_WORD + 8, "%s ", w2v_vocab_word(v, i));
    if (binary) {
      memcpy(line + k, row, (size_t)dim * sizeof *row);
      k += (size_t)dim * sizeof *row;
    } else
      for (int64_t j = 0; j < dim; j++)
        k += (size_t)format_f6(line + k, row[j]);
    line[k++] = '\n';
    if (fwrite(line, 1, k, f) != k)
      break;
  }
  free(line);
  return loom_file_writer_commit(out); /* reports a failed write */
}

void w2v_vectors_free(w2v_vectors *w) {
  free(w->words);
  app_buf_free(&w->pool);
  loom_release(w->vectors);
  *w = (w2v_vectors){0};
}

/* Reads a word: skips newlines before it (gensim does too), stops at a
 * space. 0, or -1 at EOF / a word longer than `cap` - 1 bytes, or -2 at a
 * NUL byte (the word would end there as a string: "\0ab" was read as the
 * word ""). */
static int read_word(FILE *f, char *word, size_t cap, size_t *len) {
  int ch;
  do
    ch = getc(f);
  while (ch == '\n');
  size_t n = 0;
  while (ch != EOF && ch != ' ') {
    if (ch == 0)
      return -2;
    if (n + 1 >= cap)
      return -1;
    word[n++] = (char)ch;
    ch = getc(f);
  }
  word[n] = '\0';
  *len = n;
  return ch == ' ' && n > 0 ? 0 : -1;
}

/* Is the first record binary? It is text if the rest of its line (up to
 * the first newline) reads as exactly dim numbers (anything strtof takes:
 * decimals, exponents, hex floats, inf and nan, which the reader then
 * refuses by name) separated by blanks, with no NUL byte. The dim float32
 * of a binary record are 4 * dim bytes that would have to spell out dim
 * blank-separated numbers and nothing else: they never do (a 0x0a byte
 * among them ends the "line" early, leaving too few numbers). */
static int detect_binary(FILE *f, int64_t dim, int64_t file_size) {
  long at = ftell(f);
  char word[4096];
  /* a line of dim numbers, but never more than the file holds */
  int64_t left = at >= 0 && file_size > at ? file_size - at : 0;
  size_t len, cap = (size_t)(dim * 64 + 64 < left ? dim * 64 + 64 : left),
              n = 0;
  char *rest = malloc(cap + 1);
  int binary = 0,
      got = at >= 0 && rest ? read_word(f, word, sizeof word, &len) : -1;
  if (got == -2) /* a NUL byte: not text (the reader then names it) */
    binary = 1;
  if (got == 0) {
    int ch;
    while (n < cap && (ch = getc(f)) != EOF && ch != '\n') {
      if (!ch)
        binary = 1;
      rest[n++] = (char)ch;
    }
    rest[n] = '\0';
    int64_t numbers = 0;
    char *p = rest, *end;
    for (; !binary && numbers <= dim; p = end, numbers++) {
      while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
      if (!*p)
        break;
      strtof(p, &end);
      if (end == p || (*end && !strchr(" \t\r", *end)))
        binary = 1; /* not a number, or one run into other characters */
    }
    binary = binary || numbers != dim;
  }
  free(rest);
  if (at >= 0)
    fseek(f, at, SEEK_SET);
  return binary;
}

int w2v_load_vectors(w2v_vectors *out, const char *path, int binary,
                     int64_t limit) {
  *out = (w2v_vectors){0};
  FILE *f = loom_file_open_read(path);
  struct stat st;
  if (!f)
    return -1;
  if (fstat(fileno(f), &st) != 0) {
    loom_set_error(LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    fclose(f);
    return -1;
  }
  long long n = 0, dim = 0;
  char head[128];
  if (!fgets(head, sizeof head, f) ||
      sscanf(head, "%lld %lld", &n, &dim) != 2 || n < 1 || dim < 1 ||
      dim > (1 << 20) || n > INT32_MAX) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: the first line must be \"<words> "
                   "<size>\" with sizes in range",
                   path);
    fclose(f);
    return -1;
  }
  bool sniffed =
      binary < 0 && (binary = detect_binary(f, dim, (int64_t)st.st_size));
  /* every record needs at least dim*4 bytes (binary) or 2 per number */
  double need = (double)n * (double)dim * (binary ? 4.0 : 2.0);
  if (need > (double)st.st_size) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: the header promises %lld vectors "
                   "of size %lld, more than the file's %lld bytes hold",
                   path, n, dim, (long long)st.st_size);
    fclose(f);
    return -1;
  }
  if (limit > 0 && n > limit)
    n = limit;
  out->n = n;
  out->dim = dim;
  out->words = malloc((size_t)n * sizeof *out->words);
  int64_t *offsets = malloc((size_t)n * sizeof *offsets);
  loom_scope *s = loom_scope_begin();
  out->vectors = loom_keep(loom_empty(LOOM_F32, LOOM_SHAPE(n, dim)));
  loom_scope_end(s);
  char *line = NULL;
  size_t line_cap = 0;
  int rc = out->words && offsets && out->vectors ? 0 : -1;
  if (rc < 0)
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory for %lld x %lld", path,
                   n, dim);
  float *m = out->vectors ? loom_data_f32(out->vectors) : NULL;
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    long at = ftell(f);
    char word[4096], why[160];
    size_t len = 0;
    const char *bad = NULL;
    int64_t bad_value = -1; /* the number (from 0) that is not finite */
    float *row = m + i * dim;
    if (binary) {
      int got = read_word(f, word, sizeof word, &len);
      if (got < 0)
        bad = got == -2 ? "a NUL byte in the word"
                        : "expected a word and a space";
      else if (fread(row, sizeof *row, (size_t)dim, f) != (size_t)dim)
        bad = "the file ends inside the vector";
      for (int64_t j = 0; !bad && j < dim; j++)
        if (!isfinite(row[j]))
          bad_value = j, bad = "";
    } else {
      ssize_t got = getline(&line, &line_cap, f);
      char *p = line, *end;
      if (got <= 0) {
        bad = "the file ends early";
      } else {
        char *sp = strchr(line, ' ');
        len = sp ? (size_t)(sp - line) : 0;
        if (!sp || len == 0 || len >= sizeof word)
          bad = "expected a word and a space";
        else {
          memcpy(word, line, len);
          word[len] = '\0';
          p = sp;
          for (int64_t j = 0; j < dim && !bad; j++) {
            errno = 0;
            row[j] = strtof(p, &end);
            if (end == p)
              bad = "fewer numbers than the size";
            else if (!isfinite(row[j])) /* nan, inf, or beyond float */
              bad_value = j, bad = "";
            p = end;
          }
          while (!bad && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
          if (!bad && *p)
            bad = "more numbers than the size, or a malformed number";
        }
      }
    }
    if (!bad && (offsets[i] = app_buf_add_string(&out->pool, word, len)) < 0) {
      loom_clear_error(); /* the message below names the file */
      bad = "out of memory";
    }
    if (bad && bad_value >= 0) {
      char number[64] = "";
      if (!binary) { /* the number as the file writes it */
        const char *q = line + len;
        for (int64_t j = 0; j <= bad_value; j++) {
          while (*q == ' ' || *q == '\t')
            q++;
          size_t k = strcspn(q, " \t\r\n");
          if (j == bad_value)
            snprintf(number, sizeof number, " ('%.*s')", (int)(k < 40 ? k : 40),
                     q);
          q += k;
        }
      }
      snprintf(why, sizeof why,
               "the word '%.40s': number %lld of %lld%s is %s, not a finite "
               "float32",
               word, (long long)bad_value + 1, (long long)dim, number,
               isnan(row[bad_value]) ? "NaN" : "infinite");
      bad = why;
    }
    if (bad) {
      char where[48] = "";
      if (!binary)
        snprintf(where, sizeof where, "line %lld, ", (long long)i + 2);
      char hint[128] = "";
      if (sniffed)
        snprintf(hint, sizeof hint,
                 " (read as binary: the line after the header is not a word "
                 "and %lld numbers; -binary 0 reads it as text)",
                 (long long)dim);
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: vector %lld of %lld (%sbyte %ld): %s%s", path,
                     (long long)i + 1, n, where, at, bad, hint);
      rc = -1;
      break;
    }
  }
  /* the pool has stopped moving */
  for (int64_t i = 0; rc == 0 && i < n; i++)
    out->words[i] = out->pool.data + offsets[i];
  free(offsets);
  free(line);
  fclose(f);
  if (rc < 0)
    w2v_vectors_free(out);
  return rc;
}
