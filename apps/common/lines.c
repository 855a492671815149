/* Reading text line by line, checking UTF-8, with positions for messages. */
#define _POSIX_C_SOURCE 200809L
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

enum { CHUNK = 1 << 16 };

int app_line_reader_open(app_line_reader *r, const char *path, bool universal,
                         size_t max_len) {
  *r = (app_line_reader){0};
  r->universal = universal;
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
                                size_t len, const char *name, bool universal,
                                size_t max_len) {
  *r = (app_line_reader){0};
  r->universal = universal;
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

int app_line_reader_next(app_line_reader *r, const char **line, size_t *len,
                         bool *ended) {
  app_buf_clear(&r->line);
  r->offset = r->next;
  bool got = false, term = false;
  int64_t terminator = 0;
  for (;;) {
    int f = fill(r);
    if (f < 0)
      return -1;
    if (f == 0)
      break;
    got = true;
    const char *p = r->chunk + r->pos;
    size_t avail = r->end - r->pos, n = 0;
    while (n < avail && p[n] != '\n' && !(r->universal && p[n] == '\r'))
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
    char c = r->chunk[r->pos++];
    if (c == '\r') { /* "\r\n" is one terminator */
      f = fill(r);
      if (f < 0)
        return -1;
      if (f > 0 && r->chunk[r->pos] == '\n') {
        r->pos++;
        terminator = 2;
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
  *line = r->line.data;
  *len = r->line.len;
  if (ended)
    *ended = term;
  return 1;
}
