/* Reading the reference files of scripts/gen_text_reference.py: records of
 * "tag value" lines, strings escaped with \xHH for the bytes 0x00-0x1F,
 * 0x7F and '\'. */
#ifndef LOOM_TESTS_TEXT_UTIL_H
#define LOOM_TESTS_TEXT_UTIL_H

#include "file_util.h"

#include "apps/common/text.h"

#include <string.h>

/* The whole reference file tests/data/NAME (caller frees). */
static inline char *ref_slurp(const char *name, size_t *len) {
  const char *root = getenv("LOOM_SOURCE_ROOT");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
  return test_slurp(path, len);
}

/* Moves *p past the next line of the file, returning it (NUL-terminated
 * in place) or NULL at the end. Comment lines (#) are skipped. */
static inline char *ref_line(char **p) {
  while (**p) {
    char *line = *p, *nl = strchr(line, '\n');
    if (nl) {
      *nl = '\0';
      *p = nl + 1;
    } else {
      *p = line + strlen(line);
    }
    if (line[0] != '#')
      return line;
  }
  return NULL;
}

/* The value after "TAG " (or "TAG" alone: an empty value) of a line that
 * must carry that tag. */
static inline char *ref_value(char *line, const char *tag) {
  size_t n = strlen(tag);
  ck_assert_msg(line && !strncmp(line, tag, n) &&
                    (line[n] == ' ' || line[n] == '\0'),
                "expected a '%s' line, got '%s'", tag, line ? line : "(end)");
  return line[n] ? line + n + 1 : line + n;
}

/* Unescapes s[0..n) into out (cleared first). */
static inline void ref_unescape(const char *s, size_t n, app_buf *out) {
  app_buf_clear(out);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x') {
      char hex[3] = {s[i + 2], s[i + 3], 0};
      char c = (char)strtol(hex, NULL, 16);
      ck_assert_int_eq(app_buf_append(out, &c, 1), 0);
      i += 3;
    } else {
      ck_assert_int_eq(app_buf_append(out, s + i, 1), 0);
    }
  }
  if (!out->data)
    ck_assert_int_eq(app_buf_append(out, "", 0), 0);
}

#endif
