/* app_buf: a growable byte string. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

int app_buf_append(app_buf *b, const void *s, size_t n) {
  if (n >= SIZE_MAX / 2 - b->len) {
    /* the sizes of both: it had named only the bytes held ("6 bytes is
     * too long" for 6 held and 2^63 to add) */
    loom_set_error(LOOM_ERR_MEMORY,
                   "text buffer: %zu bytes added to %zu is too long", n,
                   b->len);
    return -1;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *g = realloc(b->data, cap);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "text buffer: out of memory at %zu bytes",
                     b->len + n);
      return -1;
    }
    b->data = g;
    b->cap = cap;
  }
  if (n)
    memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int app_buf_putc(app_buf *b, char c) { return app_buf_append(b, &c, 1); }

int64_t app_buf_add_string(app_buf *b, const char *s, size_t n) {
  size_t at = b->len;
  if (app_buf_append(b, s, n) < 0)
    return -1;
  /* the terminator app_buf_append wrote becomes part of the contents */
  if (app_buf_putc(b, '\0') < 0) {
    b->len = at;
    b->data[at] = '\0';
    return -1;
  }
  return (int64_t)at;
}

void app_buf_clear(app_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void app_buf_free(app_buf *b) {
  free(b->data);
  *b = (app_buf){0};
}
