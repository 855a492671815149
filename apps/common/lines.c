/* Reading text line by line, checking UTF-8, with positions for messages. */
#define _POSIX_C_SOURCE 200809L
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

enum { CHUNK = 1 << 16 };

int app_line_reader_open(app_line_reader *r, const char *path,
                         app_line_ends ends, size_t max_len) {
  *r = (app_line_reader){0};
  r->ends = ends;
  r->max_len = max_len ? max_len : (size_t)64 << 20;
  if (!path || !strcmp(path, "-")) {
    r->f = stdin;
    snprintf(r->name, sizeof r->name, "<stdin>");
  } else {
    snprintf(r->name, sizeof r->name, "%s", path);
    r->f = loom_file_open_read(path);
    if (!r->f)
      return -1;
    r->owns_file = true;
  }
  r->chunk = malloc(CHUNK);
  if (!r->chunk) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", r->name);
    app_line_reader_close(r);
    return -1;
  }
  return 0;
}

int app_line_reader_open_memory(app_line_reader *r, const char *data,
                                size_t len, const char *name,
                                app_line_ends ends, size_t max_len) {
  *r = (app_line_reader){0};
  r->ends = ends;
  r->max_len = max_len ? max_len : (size_t)64 << 20;
  snprintf(r->name, sizeof r->name, "%s", name);
  r->eof = len == 0; /* fmemopen may refuse an empty buffer */
  if (len && !(r->f = fmemopen((void *)data, len, "r"))) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: cannot read from memory", r->name);
    return -1;
  }
  r->owns_file = r->f != NULL;
  r->chunk = malloc(CHUNK);
  if (!r->chunk) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", r->name);
    app_line_reader_close(r);
    return -1;
  }
  return 0;
}

void app_line_reader_close(app_line_reader *r) {
  if (r->owns_file && r->f)
    fclose(r->f);
  free(r->chunk);
  app_buf_free(&r->line);
  *r = (app_line_reader){0};
}

/* Refills the read-ahead: 1 if bytes are available, 0 at the end, -1 on a
 * read error. */
static int fill(app_line_reader *r) {
  if (r->pos < r->end)
    return 1;
  if (r->eof)
    return 0;
  r->pos = 0;
  r->end = fread(r->chunk, 1, CHUNK, r->f);
  if (r->end == 0) {
    r->eof = true;
    if (ferror(r->f)) {
      loom_set_error(LOOM_ERR_IO, "%s: read error at byte %lld", r->name,
                     (long long)r->next);
      return -1;
    }
    return 0;
  }
  return 1;
}

/* The length of the break of str.splitlines other than "\n" and "\r"
 * that starts s[0..n) (valid UTF-8), or 0. */
static size_t other_break(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  if (u[0] == 0x0b || u[0] == 0x0c || (u[0] >= 0x1c && u[0] <= 0x1e))
    return 1;
  if (n >= 2 && u[0] == 0xc2 && u[1] == 0x85) /* U+0085 */
    return 2;
  if (n >= 3 && u[0] == 0xe2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9))
    return 3; /* U+2028, U+2029 */
  return 0;
}

/* APP_LINES_SPLITLINES: the next line of r->line, from r->piece to just
 * after the first break in it, or to its end. */
static int next_piece(app_line_reader *r, const char **line, size_t *len,
                      bool *ended) {
  const char *s = r->line.data;
  size_t n = r->line.len, end = n;
  bool broke = r->line_ended;
  for (size_t i = r->piece; i < n; i++) {
    size_t b = other_break(s + i, n - i);
    if (b) {
      end = i + b;
      broke = true;
      break;
    }
  }
  *line = s + r->piece;
  *len = end - r->piece;
  r->offset = r->line_at + (int64_t)r->piece;
  r->piece = end;
  r->line_no++;
  if (ended)
    *ended = broke;
  return 1;
}

int app_line_reader_next(app_line_reader *r, const char **line, size_t *len,
                         bool *ended) {
  bool split = r->ends == APP_LINES_SPLITLINES;
  if (split && r->piece < r->line.len)
    return next_piece(r, line, len, ended);
  app_buf_clear(&r->line);
  r->piece = SIZE_MAX; /* nothing to split until a line is read whole */
  r->offset = r->next;
  bool got = false, term = false;
  int64_t terminator = 0;
  char last = 0; /* the terminator's last byte */
  for (;;) {
    int f = fill(r);
    if (f < 0)
      return -1;
    if (f == 0)
      break;
    got = true;
    const char *p = r->chunk + r->pos;
    size_t avail = r->end - r->pos, n = 0;
    while (n < avail && p[n] != '\n' &&
           !(r->ends != APP_LINES_LF && p[n] == '\r'))
      n++;
    if (r->line.len + n > r->max_len) {
      loom_set_error(
          LOOM_ERR_FORMAT, "%s:%lld: line longer than %zu bytes (at byte %lld)",
          r->name, (long long)r->line_no + 1, r->max_len, (long long)r->offset);
      return -1;
    }
    if (app_buf_append(&r->line, p, n))
      return -1;
    r->pos += n;
    if (n == avail)
      continue;
    term = true;
    terminator = 1;
    last = r->chunk[r->pos++];
    if (last == '\r') { /* "\r\n" is one terminator */
      f = fill(r);
      if (f < 0)
        return -1;
      if (f > 0 && r->chunk[r->pos] == '\n') {
        r->pos++;
        terminator = 2;
        last = '\n';
      }
    }
    break;
  }
  if (!got && !term && r->line.len == 0)
    return 0;
  r->line_no++;
  r->next = r->offset + (int64_t)r->line.len + terminator;
  if (!r->line.data && app_buf_append(&r->line, "", 0))
    return -1;
  int64_t bad = app_utf8_invalid_at(r->line.data, r->line.len);
  if (bad >= 0) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: invalid UTF-8 at byte %lld (line %lld, byte %lld of "
                   "the line)",
                   r->name, (long long)(r->offset + bad), (long long)r->line_no,
                   (long long)bad + 1);
    return -1;
  }
  if (split) { /* the lines in it, each with its break */
    if ((terminator == 2 && app_buf_putc(&r->line, '\r')) ||
        (term && app_buf_putc(&r->line, last)))
      return -1;
    r->piece = 0;
    r->line_at = r->offset;
    r->line_ended = term;
    r->line_no--; /* next_piece counts each */
    return next_piece(r, line, len, ended);
  }
  *line = r->line.data;
  *len = r->line.len;
  if (ended)
    *ended = term;
  return 1;
}
