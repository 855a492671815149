/* A small strict JSON reader: enough for safetensors headers and loom's own
 * config files. Values point into the source text; nothing is copied until
 * asked. Not installed. */
#ifndef LOOM_JSON_H
#define LOOM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  LOOM__JSON_NULL,
  LOOM__JSON_BOOL,
  LOOM__JSON_NUMBER,
  LOOM__JSON_STRING,
  LOOM__JSON_ARRAY,
  LOOM__JSON_OBJECT,
} loom__json_kind;

typedef struct loom__json {
  loom__json_kind kind;
  const char *text; /* first byte of the value in the source */
  size_t len;       /* its length in bytes (strings: with the quotes) */
  size_t offset;    /* text - source: for error messages */
  bool boolean;
  double number;
  bool is_integer;
  int64_t integer;
  /* arrays and objects: children (objects: keys at even, values at odd
   * positions) */
  struct loom__json *items;
  int n_items;
} loom__json;

/* Parses `len` bytes into a tree (free with loom__json_free). On failure
 * returns NULL and writes a message with the byte offset into err. */
loom__json *loom__json_parse(const char *src, size_t len, char *err,
                             size_t err_size);
void loom__json_free(loom__json *v);
/* Decodes a string value (escapes, \u sequences to UTF-8) into a new
 * NUL-terminated buffer (caller frees); NULL on OOM, a bad escape, or a
 * \u0000 (which the buffer could not hold: "a\u0000b" had read as "a"). */
char *loom__json_string(const loom__json *v);
/* Object member by key, or NULL. */
const loom__json *loom__json_get(const loom__json *obj, const char *key);

#endif
