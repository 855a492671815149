/* BPE codes files: subword-nmt's format, read with its rules and with
 * errors that name the line. */
#include "text.h"

#include <loom/loom.h>

#include <stdlib.h>
#include <string.h>

void app_bpe_codes_free(app_bpe_codes *c) {
  app_tokens_free(&c->merges);
  *c = (app_bpe_codes){0};
}

/* The version of a "#version: X" line: 2 for 0.2, 1 for 0.1 (trailing
 * ".0"s ignored, as subword-nmt does), else 0. */
static int parse_version(const char *line, size_t len) {
  /* the last whitespace-separated field */
  size_t end = app_rstrip_len(line, len), start = end;
  while (start > 0) {
    uint32_t cp;
    size_t k = start - 1;
    while (k > 0 && ((unsigned char)line[k] & 0xC0) == 0x80)
      k--;
    app_utf8_decode(line + k, len - k, &cp);
    if (app_unicode_is_space(cp))
      break;
    start = k;
  }
  /* drop (\.0+)* at the end */
  for (;;) {
    size_t e = end;
    while (e > start && line[e - 1] == '0')
      e--;
    if (e == end || e == start || line[e - 1] != '.')
      break;
    end = e - 1;
  }
  size_t n = end - start;
  if (n == 3 && !memcmp(line + start, "0.2", 3))
    return 2;
  if (n == 3 && !memcmp(line + start, "0.1", 3))
    return 1;
  return 0;
}

/* Reads the lines of an opened reader into c (closing the reader). */
static int codes_read(app_bpe_codes *c, app_line_reader *r, int64_t merges) {
  const char *line;
  size_t len;
  int got;
  /* n: index of the line among the merge lines (empty ones included, as
   * subword-nmt counts them); an empty line is an error only if a merge
   * line follows it and it is among the first `merges` */
  int64_t n = -1, empty_line = 0;
  while ((got = app_line_reader_next(r, &line, &len, NULL)) > 0) {
    if (r->line_no == 1 && len >= 9 && !memcmp(line, "#version:", 9)) {
      if (len >= 4 &&
          !memcmp(line + app_rstrip_len(line, len) - 4, "byte", 4)) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "%s:1: byte-level BPE codes are not supported", r->name);
        got = -1;
        break;
      }
      c->version = parse_version(line, len);
      if (!c->version) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "%s:1: version '%.*s' is not 0.1 or 0.2", r->name,
                       (int)(len > 40 ? 40 : len), line);
        got = -1;
        break;
      }
      continue;
    }
    n++;
    bool wanted = merges < 0 || n < merges;
    if (len == 0) {
      if (wanted && !empty_line)
        empty_line = r->line_no;
      continue;
    }
    if (empty_line) {
      loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: an empty line", r->name,
                     (long long)empty_line);
      got = -1;
      break;
    }
    if (!wanted)
      continue; /* read on: the whole file must still be UTF-8 */
    size_t i = 0, end = len;
    while (i < end && strchr("\r\n ", line[i]) && line[i])
      i++;
    while (end > i && strchr("\r\n ", line[end - 1]) && line[end - 1])
      end--;
    const char *space = memchr(line + i, ' ', end - i);
    if (!space || memchr(space + 1, ' ', (size_t)(line + end - space - 1))) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s:%lld: a merge must be two symbols separated by one "
                     "space",
                     r->name, (long long)r->line_no);
      got = -1;
      break;
    }
    if (app_tokens_push(&c->merges, line + i, end - i, false)) {
      got = -1;
      break;
    }
  }
  app_line_reader_close(r);
  if (got < 0) {
    app_bpe_codes_free(c);
    return -1;
  }
  return 0;
}

int app_bpe_codes_read(app_bpe_codes *c, const char *path, int64_t merges) {
  *c = (app_bpe_codes){.version = 1};
  app_line_reader r;
  if (app_line_reader_open(&r, path, APP_LINES_LF, (size_t)1 << 20))
    return -1;
  return codes_read(c, &r, merges);
}

int app_bpe_codes_parse(app_bpe_codes *c, const char *data, size_t len,
                        const char *name, int64_t merges) {
  *c = (app_bpe_codes){.version = 1};
  app_line_reader r;
  if (app_line_reader_open_memory(&r, data, len, name, APP_LINES_LF,
                                  (size_t)1 << 20))
    return -1;
  return codes_read(c, &r, merges);
}

int app_bpe_codes_write(const app_bpe_codes *c, FILE *f) {
  if (c->version == 2)
    fputs("#version: 0.2\n", f);
  for (int64_t i = 0; i < c->merges.n; i++) {
    fwrite(app_token(&c->merges, i), 1, app_token_len(&c->merges, i), f);
    fputc('\n', f);
  }
  if (ferror(f)) {
    loom_set_error(LOOM_ERR_IO, "BPE codes: write error");
    return -1;
  }
  return 0;
}
