/* Text tools shared by the apps (translation, captioning, charlm): UTF-8,
 * Unicode properties as Python sees them, line reading, tokenisers,
 * vocabularies, byte-pair encoding (as subword-nmt), and the scores of
 * machine translation (BLEU and chrF as sacreBLEU, BLEU as NLTK).
 *
 * Conventions: text is UTF-8 given as (pointer, length) and may hold any
 * code point, U+0000 included. A function that can fail returns a negative
 * value or NULL and records a loom error (loom_last_error) whose message
 * names the file and the line or byte when there is one. Structures are
 * zero-initialised (or *_init) and released with their *_free; results a
 * function appends to a caller's buffer or list belong to the caller. */
#ifndef LOOM_APPS_TEXT_H
#define LOOM_APPS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------- buffers */

/* A growable byte string, always NUL-terminated after its `len` bytes
 * (data is NULL until the first append). */
typedef struct {
  char *data;
  size_t len, cap;
} app_buf;

/* Appends n bytes; 0, or -1 (memory error recorded) leaving b as it was. */
int app_buf_append(app_buf *b, const void *s, size_t n);
int app_buf_putc(app_buf *b, char c);
/* Empties b, keeping its memory. */
void app_buf_clear(app_buf *b);
void app_buf_free(app_buf *b);

/* ------------------------------------------------------------- UTF-8 */

/* The byte offset of the first ill-formed sequence in s[0..len) (an
 * unexpected continuation byte, a truncated sequence, an overlong form, a
 * surrogate, a code point above U+10FFFF, or the bytes C0, C1, F5..FF), or
 * -1 when all of it is well-formed UTF-8 (RFC 3629). */
int64_t app_utf8_invalid_at(const char *s, size_t len);

/* Checks s as app_utf8_invalid_at does; on failure records
 * "NAME: invalid UTF-8 at byte N" with N = base + the offset, and returns
 * -1. `name` is a file name or a description of the text. */
int app_utf8_check(const char *s, size_t len, const char *name, int64_t base);

/* Decodes the code point starting at s (len > 0 bytes available): its byte
 * length (1..4), or -1 if the sequence there is ill-formed (*cp is then
 * U+FFFD). */
int app_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Encodes cp into out: 1..4 bytes, or 0 if cp is a surrogate or above
 * U+10FFFF. */
int app_utf8_encode(uint32_t cp, char out[4]);

/* Appends the UTF-8 of cp to b: 0, or -1 (an invalid cp or no memory). */
int app_buf_put_cp(app_buf *b, uint32_t cp);

/* ------------------------------------------ Unicode, as Python sees it */

/* The Unicode version of the tables (that of the Python which generated
 * them: see scripts/gen_unicode_tables.py). */
const char *app_unicode_version(void);

/* re's \w on str patterns: str.isalnum() or '_' (letters, marks counted as
 * letters by Python, digits and numerals of every script). */
bool app_unicode_is_word(uint32_t cp);

/* re's \s on str patterns, and what str.split() splits on:
 * str.isspace() (ASCII 9-13 and 28-32, U+0085, U+00A0, the Unicode
 * spaces). */
bool app_unicode_is_space(uint32_t cp);

/* Python's str.lower() of valid UTF-8 s[0..len), appended to out: the full
 * lowercase mapping of each character (U+0130 becomes "i" + U+0307) and the
 * final-sigma rule for U+03A3. 0, or -1 if s is not valid UTF-8 or memory
 * ran out. */
int app_lower(const char *s, size_t len, app_buf *out);

/* ------------------------------------------------------------- lines */

/* Reads text line by line from a file or standard input, checking that it
 * is UTF-8 and keeping the line number and byte offset for messages. */
typedef struct {
  FILE *f;
  char name[256]; /* the path, or "<stdin>" */
  bool owns_file;
  bool universal;  /* lines also end at "\r\n" and at a lone "\r" */
  size_t max_len;  /* longest line accepted, in bytes */
  int64_t line_no; /* 1-based number of the line last returned */
  int64_t offset;  /* byte offset of the line last returned */
  int64_t next;    /* byte offset of the next line */
  app_buf line;
  char *chunk; /* read-ahead */
  size_t pos, end;
  bool eof;
} app_line_reader;

/* Opens `path` ("-" or NULL: standard input). universal: Python's text
 * mode (a "\r\n" or a lone "\r" also ends a line); otherwise only "\n"
 * does. Lines longer than max_len bytes (0: 64 MiB) are an error. 0, or -1
 * with the error recorded. */
int app_line_reader_open(app_line_reader *r, const char *path, bool universal,
                         size_t max_len);

/* The next line, without its terminator, in *line / *len (valid until the
 * next call; NUL-terminated). *ended tells whether a terminator followed it
 * (only the last line of a file can lack one); NULL if not wanted. Returns
 * 1, 0 at the end of the input, or -1 on an error: a read error, a line
 * over the limit, or invalid UTF-8 ("NAME: invalid UTF-8 at byte N
 * (line L)"). */
int app_line_reader_next(app_line_reader *r, const char **line, size_t *len,
                         bool *ended);

void app_line_reader_close(app_line_reader *r);

/* ------------------------------------------------------------- tokens */

/* A list of tokens. Token i is app_token(t, i), app_token_len(t, i) bytes
 * plus a NUL; glued[i] says it followed token i - 1 with no whitespace
 * between (always false for the first token a tokeniser appends). */
typedef struct {
  char *pool;
  size_t pool_len, pool_cap;
  int64_t *start, *len_;
  bool *glued;
  int64_t n, cap;
} app_tokens;

void app_tokens_clear(app_tokens *t);
void app_tokens_free(app_tokens *t);
/* Appends a token (glued is ignored for the first of the list): 0, or -1
 * on a memory error. */
int app_tokens_push(app_tokens *t, const char *s, size_t len, bool glued);
static inline const char *app_token(const app_tokens *t, int64_t i) {
  return t->pool + t->start[i];
}
static inline size_t app_token_len(const app_tokens *t, int64_t i) {
  return (size_t)t->len_[i];
}

/* The tokenisation of the PyTorch translation baseline:
 * re.findall(r"\w+|[^\w\s]", line.lower()) in Python 3 - the line is
 * lowercased as str.lower() does, then every maximal run of word
 * characters is a token and every other non-space character is a token by
 * itself ("Don't!" gives don ' t !). Tokens are appended to out. 0, or -1
 * if the line is not valid UTF-8 (the message says `name` and the byte)
 * or memory ran out. */
int app_tokenize_lower(const char *line, size_t len, app_tokens *out,
                       const char *name);

/* The same split with the case kept, recording for each token whether
 * whitespace preceded it, so app_detokenize can put the text back. */
int app_tokenize_reversible(const char *line, size_t len, app_tokens *out,
                            const char *name);

/* The joiner that marks a glued token in a token line (OpenNMT's U+FFED,
 * "￭"). */
#define APP_JOINER "\xEF\xBF\xAD"

/* Writes tokens as one line, separated by single spaces, each glued token
 * (except a first one) prefixed with the joiner: "Hello ￭, world ￭!". A
 * token that is itself the joiner character stays unambiguous: alone it is
 * "￭", glued "￭￭". Appends to out; 0 or -1 (memory). */
int app_tokens_join_marked(const app_tokens *t, app_buf *out);

/* Splits a marked line (as written by app_tokens_join_marked) back into
 * tokens with their glued flags, appended to out. 0, or -1 (invalid
 * UTF-8, memory). */
int app_tokens_split_marked(const char *line, size_t len, app_tokens *out,
                            const char *name);

/* The text of tokens: joined by single spaces except before glued ones.
 * detokenize(tokenize_reversible(x)) is x with each run of whitespace
 * turned into one space and the ends trimmed. Appends to out; 0 or -1. */
int app_detokenize(const app_tokens *t, app_buf *out);

#endif
