/* app_word_counts: words with counts, counted from text or read from
 * "WORD COUNT" files, as subword-nmt counts, reads and writes them. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

#define MAX_COUNT ((int64_t)1 << 62)

int app_word_counts_add(app_word_counts *c, const char *w, size_t len,
                        int64_t k) {
  int64_t id = app_strtab_intern(&c->words, w, len);
  if (id < 0)
    return -1;
  if (id >= c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 1024;
    int64_t *g = realloc(c->count, (size_t)cap * sizeof *g);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "word counts: out of memory");
      return -1;
    }
    memset(g + c->cap, 0, (size_t)(cap - c->cap) * sizeof *g);
    c->count = g;
    c->cap = cap;
  }
  if (k < 0 || k > MAX_COUNT - c->count[id]) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "word counts: a count outside 0..2^62 for '%s'",
                   app_strtab_str(&c->words, id));
    return -1;
  }
  c->count[id] += k;
  return 0;
}

/* line[*start, *end) stripped of '\r', '\n' and ' ' (Python's
 * strip('\r\n ')). */
static void strip(const char *line, size_t *start, size_t *end) {
  while (*start < *end && strchr("\r\n ", line[*start]) && line[*start])
    (*start)++;
  while (*end > *start && strchr("\r\n ", line[*end - 1]) && line[*end - 1])
    (*end)--;
}

int app_word_counts_add_line(app_word_counts *c, const char *line, size_t len) {
  size_t i = 0, end = len;
  strip(line, &i, &end);
  while (i < end) {
    size_t j = i;
    while (j < end && line[j] != ' ')
      j++;
    if (j > i && app_word_counts_add(c, line + i, j - i, 1))
      return -1;
    i = j + 1;
  }
  return 0;
}

/* A count: decimal digits with an optional sign, in 0..2^62. */
static bool parse_count(const char *s, size_t len, int64_t *out) {
  size_t i = 0;
  if (i < len && s[i] == '+')
    i++;
  if (i == len)
    return false;
  int64_t v = 0;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    if (v > (MAX_COUNT - (s[i] - '0')) / 10)
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int app_word_counts_read(app_word_counts *c, const char *path,
                         int64_t keep_at_least) {
  app_line_reader r;
  if (app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, (size_t)1 << 20))
    return -1;
  const char *line;
  size_t len;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, NULL)) > 0) {
    size_t i = 0, end = len;
    strip(line, &i, &end);
    const char *space = memchr(line + i, ' ', end - i);
    int64_t k;
    if (!space || memchr(space + 1, ' ', (size_t)(line + end - space - 1)) ||
        space == line + i) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s:%lld: expected a word and a count separated by one "
                     "space",
                     r.name, (long long)r.line_no);
      got = -1;
      break;
    }
    if (!parse_count(space + 1, (size_t)(line + end - space - 1), &k)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s:%lld: the count is not a whole number in 0..2^62",
                     r.name, (long long)r.line_no);
      got = -1;
      break;
    }
    if (keep_at_least > 0 && k < keep_at_least)
      continue;
    if (app_word_counts_add(c, line + i, (size_t)(space - line) - i, k)) {
      loom_clear_error();
      loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: counts add up beyond 2^62",
                     r.name, (long long)r.line_no);
      got = -1;
      break;
    }
  }
  app_line_reader_close(&r);
  return got < 0 ? -1 : 0;
}

typedef struct {
  int64_t count, id;
} ranked;

static int by_count(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

int app_word_counts_write(const app_word_counts *c, FILE *f) {
  int64_t n = c->words.n;
  ranked *order = malloc((size_t)(n ? n : 1) * sizeof *order);
  if (!order) {
    loom_set_error(LOOM_ERR_MEMORY, "word counts: out of memory");
    return -1;
  }
  for (int64_t i = 0; i < n; i++)
    order[i] = (ranked){c->count[i], i};
  qsort(order, (size_t)n, sizeof *order, by_count);
  for (int64_t i = 0; i < n; i++) {
    fwrite(app_strtab_str(&c->words, order[i].id), 1,
           app_strtab_len(&c->words, order[i].id), f);
    fprintf(f, " %lld\n", (long long)order[i].count);
  }
  free(order);
  if (ferror(f)) {
    loom_set_error(LOOM_ERR_IO, "word counts: write error");
    return -1;
  }
  return 0;
}

void app_word_counts_free(app_word_counts *c) {
  app_strtab_free(&c->words);
  free(c->count);
  *c = (app_word_counts){0};
}
