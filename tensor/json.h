/* A small strict JSON reader: enough for safetensors headers and loom's own
 * config files. Values point into the source text; nothing is copied until
 * asked. Not installed. */
#ifndef LOOM_JSON_H
#define LOOM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  LOOM_JSON_NULL,
  LOOM_JSON_BOOL,
  LOOM_JSON_NUMBER,
  LOOM_JSON_STRING,
  LOOM_JSON_ARRAY,
  LOOM_JSON_OBJECT,
} loom_json_kind;

typedef struct loom_json {
  loom_json_kind kind;
  const char *text; /* first byte of the value in the source */
  size_t len;       /* its length in bytes (strings: with the quotes) */
  size_t offset;    /* text - source: for error messages */
  bool boolean;
  double number;
  bool is_integer;
  int64_t integer;
  /* arrays and objects: children (objects: keys at even, values at odd
   * positions) */
  struct loom_json *items;
  int n_items;
} loom_json;

/* Parses `len` bytes into a tree (free with loom_json_free). On failure
 * returns NULL and writes a message with the byte offset into err. */
loom_json *loom_json_parse(const char *src, size_t len, char *err,
                           size_t err_size);
void loom_json_free(loom_json *v);
/* Decodes a string value (escapes, \u sequences to UTF-8) into a new
 * NUL-terminated buffer (caller frees); NULL on OOM or a bad escape. */
char *loom_json_string(const loom_json *v);
/* Object member by key, or NULL. */
const loom_json *loom_json_get(const loom_json *obj, const char *key);

#endif
