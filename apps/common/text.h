/* Text tools shared by the apps (translation, captioning, charlm): UTF-8,
 * Unicode properties as Python sees them, line reading, tokenisers,
 * vocabularies, byte-pair encoding (as subword-nmt), and the scores of
 * machine translation (BLEU and chrF as sacreBLEU, BLEU as NLTK).
 *
 * Conventions: text is UTF-8 given as (pointer, length) and may hold any
 * code point, U+0000 included. A function that can fail returns a negative
 * value or NULL and records a loom error (loom_last_error) whose message
 * names the file and the line or byte when there is one. Structures start
 * zero-initialised and are released with their *_free; results a function
 * appends to a caller's buffer or list belong to the caller. */
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
/* Appends s[0..n) and a NUL, for a pool of strings that refer to theirs by
 * offset (the pool may move as it grows): the copy's offset in b->data, or
 * -1 (memory error recorded) leaving b as it was. */
int64_t app_buf_add_string(app_buf *b, const char *s, size_t n);
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

/* re's \w on str patterns: str.isalnum() or '_' (the letters, digits and
 * numerals of every script; not combining marks). */
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

/* Where a line ends, as the tools loom imitates read text:
 *   APP_LINES_LF          at "\n" only (sed; Python's sys.stdin on Unix);
 *   APP_LINES_UNIVERSAL   also at "\r\n" and a lone "\r" (Python's text
 *                         mode);
 *   APP_LINES_SPLITLINES  at every break of Python's str.splitlines: those,
 *                         and \v, \f, \x1c, \x1d, \x1e, U+0085, U+2028 and
 *                         U+2029. Each line keeps its break as the last bytes
 *                         of its text: a file read through Python's codecs
 *                         module (subword-nmt's -i FILE) comes so, and the
 *                         break is written back as it was. */
typedef enum {
  APP_LINES_LF,
  APP_LINES_UNIVERSAL,
  APP_LINES_SPLITLINES
} app_line_ends;

/* Reads text line by line from a file or standard input, checking that it
 * is UTF-8 and keeping the line number and byte offset for messages. */
typedef struct {
  FILE *f;
  char name[256]; /* the path, or "<stdin>" */
  bool owns_file;
  app_line_ends ends;
  size_t max_len;  /* longest line accepted, in bytes */
  int64_t line_no; /* 1-based number of the line last returned */
  int64_t offset;  /* byte offset of the line last returned */
  int64_t next;    /* byte offset of the next line */
  app_buf line;    /* APP_LINES_SPLITLINES: the text up to "\n" or "\r", */
  size_t piece;    /* with its break; its lines from line.data + piece on */
  int64_t line_at; /* are still to be returned; line.data is at line_at */
  bool line_ended; /* line ended at "\n" or "\r" */
  char *chunk;     /* read-ahead */
  size_t pos, end;
  bool eof;
} app_line_reader;

/* Opens `path` ("-" or NULL: standard input), lines ending as `ends` says.
 * Lines longer than max_len bytes (0: 64 MiB) are an error. 0, or -1 with
 * the error recorded. */
int app_line_reader_open(app_line_reader *r, const char *path,
                         app_line_ends ends, size_t max_len);

/* The next line in *line / *len (valid until the next call): without its
 * terminator and NUL-terminated, or at APP_LINES_SPLITLINES with its break
 * and followed by the next line of the same "\n" or "\r" (use *len). *ended
 * tells whether a terminator ended it (only the last line of a file can lack
 * one); NULL if not wanted. Returns 1, 0 at the end of the input, or -1 on an
 * error: a read error, a line over the limit, or invalid UTF-8 ("NAME: invalid
 * UTF-8 at byte N (line L)"). */
int app_line_reader_next(app_line_reader *r, const char **line, size_t *len,
                         bool *ended);

/* The same over the bytes data[0..len) (not copied: they must outlive the
 * reader); `name` stands for them in messages. */
int app_line_reader_open_memory(app_line_reader *r, const char *data,
                                size_t len, const char *name,
                                app_line_ends ends, size_t max_len);

void app_line_reader_close(app_line_reader *r);

/* ------------------------------------------------------------- tokens */

/* A list of tokens. Token i is app_token(t, i), app_token_len(t, i) bytes
 * plus a NUL; glued[i] says it followed token i - 1 with no whitespace
 * between (always false for the first token a tokeniser appends). */
typedef struct {
  app_buf pool; /* the tokens, each followed by a NUL */
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
  return t->pool.data + t->start[i];
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

/* Python's str.split() with no argument: the runs of non-whitespace
 * characters (app_unicode_is_space) of valid UTF-8, appended to out. 0, or
 * -1 (invalid UTF-8, memory). */
int app_split_space(const char *s, size_t len, app_tokens *out,
                    const char *name);

/* The length of valid UTF-8 s[0..len) without its trailing whitespace, as
 * Python's str.rstrip() with no argument. */
size_t app_rstrip_len(const char *s, size_t len);

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

/* ------------------------------------------------------- string tables */

/* Interned byte strings with dense ids 0, 1, 2, ... in order of first
 * insertion, found again through a hash index. At most 2^31 - 2 strings. */
typedef struct {
  app_buf pool; /* the strings, each followed by a NUL */
  int64_t *start, *len_;
  uint64_t *hash;
  int64_t n, cap;
  int32_t *slots; /* open addressing, -1 = empty */
  int64_t n_slots;
} app_strtab;

/* The id of s[0..len), or -1 if absent. */
int64_t app_strtab_find(const app_strtab *t, const char *s, size_t len);
/* The id of s[0..len), added if absent; -1 on a memory error or when the
 * table is full (recorded). */
int64_t app_strtab_intern(app_strtab *t, const char *s, size_t len);
static inline const char *app_strtab_str(const app_strtab *t, int64_t id) {
  return t->pool.data + t->start[id];
}
static inline size_t app_strtab_len(const app_strtab *t, int64_t id) {
  return (size_t)t->len_[id];
}
/* Forgets every string, keeping the memory. */
void app_strtab_clear(app_strtab *t);
void app_strtab_free(app_strtab *t);

/* ------------------------------------------------------- n-gram counts */

/* Counts of n-grams of ids (token ids, or code points for characters), up
 * to APP_NGRAM_MAX long, two counts each (say hypothesis and reference).
 * The scores below use them; entries are listed in t->used (slot indices
 * into t->slots) in insertion order. */
#define APP_NGRAM_MAX 6
typedef struct {
  uint32_t key[APP_NGRAM_MAX];
  int32_t n; /* 0: an empty slot */
  int64_t count[2];
} app_ngram;

typedef struct {
  app_ngram *slots;
  int64_t n_slots;
  int64_t *used;
  int64_t n_used, used_cap;
} app_ngrams;

/* The entry of key[0..n) (1 <= n <= APP_NGRAM_MAX), added with zero counts
 * if absent; valid until the next insertion. NULL on a memory error. */
app_ngram *app_ngrams_get(app_ngrams *t, const uint32_t *key, int n);
/* The entry of key[0..n), or NULL if absent. */
const app_ngram *app_ngrams_find(const app_ngrams *t, const uint32_t *key,
                                 int n);
/* Forgets every entry, keeping the memory. */
void app_ngrams_clear(app_ngrams *t);
void app_ngrams_free(app_ngrams *t);

/* ------------------------------------------------------------- scores */

/* sacreBLEU's tokenizer 13a (mteval-v13a's) of valid UTF-8 s[0..len):
 * "<skipped>" removed, "-\n" joined, "\n" made a space, &quot; &amp; &lt;
 * &gt; unescaped, ASCII punctuation other than . , - ' split off, "." and
 * "," split off unless between digits, "-" split off after a digit; the
 * tokens are appended to out separated by single spaces. 0, or -1 (invalid
 * UTF-8, memory). */
int app_tokenize_13a(const char *s, size_t len, app_buf *out);

/* BLEU's statistics and score, for printing in sacreBLEU's form. */
typedef struct {
  double score;                    /* 0..100 */
  int order;                       /* n-gram orders used: 1..order */
  double precision[APP_NGRAM_MAX]; /* percent */
  int64_t correct[APP_NGRAM_MAX], total[APP_NGRAM_MAX];
  double bp, ratio;
  int64_t hyp_len, ref_len;
} app_bleu_result;

/* Appends sacreBLEU's score string, e.g.
 * "BLEU = 48.89 85.7/66.7/40.0/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 7
 * ref_len = 7)" (one line, no newline). 0, or -1 (memory). */
int app_bleu_format(const app_bleu_result *r, app_buf *out);

/* sacreBLEU's default corpus BLEU (BLEU(), corpus_score): 4-gram
 * precisions over the corpus, exponential smoothing ('exp': the k-th order
 * with no match counts 1 / 2^k matches), brevity penalty from the total
 * hypothesis length and the sum of the closest reference lengths (ties to
 * the shorter), tokenizer 13a or none, optionally lowercased with
 * str.lower() first. */
typedef enum { APP_BLEU_13A, APP_BLEU_TOKENIZE_NONE } app_bleu_tokenizer;
typedef struct {
  bool lowercase;
  app_bleu_tokenizer tokenizer;
} app_bleu_opts;

typedef struct app_bleu app_bleu;
/* A new, empty corpus; NULL on a memory error. Free with app_bleu_free. */
app_bleu *app_bleu_new(app_bleu_opts o);
void app_bleu_free(app_bleu *b);
/* Adds a segment: hypothesis hyp[0..hyp_len) and n_refs >= 1 references
 * refs[i][0..ref_lens[i]), UTF-8, trailing whitespace ignored. 0, or -1
 * (invalid UTF-8, no reference, memory). */
int app_bleu_add(app_bleu *b, const char *hyp, size_t hyp_len,
                 const char *const *refs, const size_t *ref_lens, int n_refs);
/* The corpus score so far (sacreBLEU's numbers, bit for bit). */
void app_bleu_get(const app_bleu *b, app_bleu_result *r);

/* sacreBLEU's default chrF (CHRF(): character n-grams of orders 1..6 over
 * the text with all whitespace removed, no word n-grams, beta 2): per
 * segment the reference with the best F-score, statistics summed over the
 * corpus, the F-score from the precision and recall averaged over the
 * orders that have both hypothesis and reference n-grams. */
typedef struct {
  int char_order; /* 1..APP_NGRAM_MAX; 0 means 6 */
  int beta;       /* >= 1; 0 means 2 */
  bool lowercase;
} app_chrf_opts;

typedef struct app_chrf app_chrf;
/* NULL on a memory error or options out of range. */
app_chrf *app_chrf_new(app_chrf_opts o);
void app_chrf_free(app_chrf *c);
/* As app_bleu_add. */
int app_chrf_add(app_chrf *c, const char *hyp, size_t hyp_len,
                 const char *const *refs, const size_t *ref_lens, int n_refs);
/* The corpus score, 0..100. */
double app_chrf_score(const app_chrf *c);
/* Appends sacreBLEU's score string, "chrF2 = 67.17". 0 or -1. */
int app_chrf_format(const app_chrf *c, app_buf *out);

/* NLTK's corpus_bleu (nltk.translate.bleu_score) on token lists, as the
 * PyTorch baseline scores translations: per sentence and order the
 * hypothesis n-grams clipped by their largest count in any reference, over
 * max(1, hypothesis n-grams); sums over the corpus; no smoothing (an order
 * with no match counts as the smallest double, so the score is tiny but
 * not 0, as in NLTK); 0 if no unigram matches; brevity penalty from the
 * closest reference lengths (ties to the shorter); weights summed in
 * log space with math.fsum's exact sum. */
typedef struct app_nltk_bleu app_nltk_bleu;
/* Counts n-grams of orders 1..max_order (1..APP_NGRAM_MAX); NULL on a
 * memory error or a bad order. */
app_nltk_bleu *app_nltk_bleu_new(int max_order);
void app_nltk_bleu_free(app_nltk_bleu *b);
/* Adds a sentence: the hypothesis tokens and n_refs >= 1 reference token
 * lists refs[0..n_refs). 0 or -1 (no reference, memory). */
int app_nltk_bleu_add(app_nltk_bleu *b, const app_tokens *hyp,
                      const app_tokens *refs, int n_refs);
/* corpus_bleu(..., weights) over orders 1..order (order <= max_order) with
 * weights[0..order) (NULL: uniform 1/order, as NLTK's BLEU-1..4 are
 * usually asked for); r->score is 100 times its value (the baseline's
 * figure), r->precision the corpus precisions in percent. 0, or -1 for a
 * bad order. */
int app_nltk_bleu_get(const app_nltk_bleu *b, int order, const double *weights,
                      app_bleu_result *r);
/* NLTK's smoothing functions (SmoothingFunction().methodN) implemented:
 * METHOD0 none (as above); METHOD2 Lin and Och's add-one, the precision
 * of each order from 2 up counted as (matches + 1) / (n-grams + 1), so
 * that a sentence with a unigram match scores above 0 (what sentence-level
 * comparisons need). */
typedef enum { APP_NLTK_METHOD0 = 0, APP_NLTK_METHOD2 = 2 } app_nltk_smoothing;
/* As app_nltk_bleu_get with that smoothing (r->precision stays the
 * unsmoothed counts' ratio). 0, or -1 for a bad order or smoothing. */
int app_nltk_bleu_get_smoothed(const app_nltk_bleu *b, int order,
                               const double *weights,
                               app_nltk_smoothing smoothing,
                               app_bleu_result *r);
/* Forgets the sentences added, keeping the memory (a new corpus). */
void app_nltk_bleu_reset(app_nltk_bleu *b);

/* Minimum-Bayes-risk choice (Kumar and Byrne, 2004) among n candidate
 * sentences, e.g. a model's n-best list or samples: the candidate with the
 * highest expected BLEU against the others taken as the model's
 * distribution,
 *   gains[i] = sum_j w[j] U(cands[i], cands[j]) / sum_j w[j]
 * (j = i included), U(h, r) NLTK's sentence_bleu(r, h) with BLEU-4's
 * uniform weights and SmoothingFunction().method2 (0 without a common
 * word; 1 for h = r of 4 words or more, less for shorter ones, whose
 * missing orders count 1/2). weights: n finite values >= 0 with a positive
 * sum (say the candidates' probabilities, renormalised here), or NULL for
 * uniform (samples: a candidate drawn twice counts twice). *best: the
 * index of the largest gain, the first one on ties; gains (NULL: not
 * wanted) receives the n gains in [0, 1]. 0, or -1 with an error: n not
 * in 1..APP_MBR_MAX, bad weights, memory. Cost: n^2 sentence BLEUs. */
#define APP_MBR_MAX 10000
int app_mbr_choose(const app_tokens *cands, const double *weights, int64_t n,
                   int64_t *best, double *gains);

/* ------------------------------------------------------- word counts */

/* Words (any strings) with counts, in order of first appearance: the
 * vocabulary subword-nmt's get_vocab counts and the token counts a model's
 * vocabulary is built from. */
typedef struct {
  app_strtab words;
  int64_t *count; /* by word id */
  int64_t cap;
} app_word_counts;

/* Adds k (>= 0) to the count of w[0..len): 0, or -1 (memory, or a total
 * above 2^62). */
int app_word_counts_add(app_word_counts *c, const char *w, size_t len,
                        int64_t k);
/* Counts the words of a line as subword-nmt does: the line stripped of
 * "\r", "\n" and " " at both ends, split at single spaces, empty words
 * skipped (a tab or any other character is part of a word). 0 or -1. */
int app_word_counts_add_line(app_word_counts *c, const char *line, size_t len);
/* Reads a file of "WORD COUNT" lines (subword-nmt's vocabulary files and
 * learn_bpe's --dict-input): each line, stripped of "\r", "\n" and " ",
 * must split at single spaces into exactly two fields, the second a count
 * in 0..2^62; counts of a word given twice add up. If keep_at_least > 0,
 * lines whose count is below it are skipped (apply_bpe's
 * --vocabulary-threshold). 0, or -1 with "PATH:LINE: what is wrong". */
int app_word_counts_read(app_word_counts *c, const char *path,
                         int64_t keep_at_least);
/* Writes "WORD COUNT" lines, most frequent first, ties in order of first
 * appearance (subword-nmt's get_vocab). 0, or -1 on a write error. */
int app_word_counts_write(const app_word_counts *c, FILE *f);
void app_word_counts_free(app_word_counts *c);

/* ------------------------------------------------- byte-pair encoding */

/* Merge operations, in order, as subword-nmt's codes files hold them. */
typedef struct {
  /* 2: "#version: 0.2" - the end-of-word mark "</w>" is joined to a word's
   * last character; 1: no version line (subword-nmt 0.1) - "</w>" is a
   * symbol of its own */
  int version;
  app_tokens merges; /* "A B": merge symbol A with the next symbol B */
} app_bpe_codes;

/* Reads a codes file as subword-nmt's apply_bpe does: an optional first
 * line "#version: 0.2" (a line not starting with "#version:" is a merge of
 * a version 0.1 file), then one merge per line, each stripped of "\r",
 * "\n" and " " and split at single spaces into exactly two symbols; empty
 * lines at the end are ignored; only the first `merges` merges are read
 * (merges < 0: all). Errors name the file and line: another version, a
 * byte-level ("byte") file, a line that is not two symbols, a line over
 * 1 MiB, invalid UTF-8. Zero merges are allowed (subword-nmt refuses). 0
 * or -1; c is zero-initialised first. */
int app_bpe_codes_read(app_bpe_codes *c, const char *path, int64_t merges);
/* The same from the bytes of a codes file; `name` names them. */
int app_bpe_codes_parse(app_bpe_codes *c, const char *data, size_t len,
                        const char *name, int64_t merges);
/* Writes "#version: 0.2" (or nothing for version 1) and the merges, one
 * per line. 0, or -1 on a write error. */
int app_bpe_codes_write(const app_bpe_codes *c, FILE *f);
void app_bpe_codes_free(app_bpe_codes *c);

/* What app_bpe_learn learns, as subword-nmt's learn_bpe options. */
typedef struct {
  int64_t symbols;       /* merges to learn (-s; 0..2^31) */
  int64_t min_frequency; /* stop when no pair is this frequent (>= 1) */
  bool total_symbols;    /* -t: symbols counts the characters as well */
  bool verbose;          /* a line per merge on the log */
  FILE *log;             /* subword-nmt's messages (stderr); NULL: none */
} app_bpe_learn_opts;

/* Learns merges from word counts exactly as subword-nmt's learn_bpe (the
 * same merges in the same order, ties included: the most frequent pair,
 * among equals the largest in code-point order of (first, second)),
 * including the effects of its pruned pair statistics and of its
 * regular-expression replacement on words that hold whitespace other than
 * spaces. Words of one character only yield no pairs; with no pair at all
 * no merge is learned (subword-nmt fails). The pair counts are updated
 * incrementally through an index from pairs to words, and the most
 * frequent pair comes from a heap. The result (version 2) is written into
 * *out (zero-initialised first). 0, or -1 (options out of range, counts
 * whose pair counts could pass 2^62, memory). */
int app_bpe_learn(const app_word_counts *words, const app_bpe_learn_opts *o,
                  app_bpe_codes *out);

/* Applies merges to text exactly as subword-nmt's apply_bpe (the same
 * output bytes): each word (split at single spaces; other whitespace is
 * part of a word) becomes its characters, the last with "</w>" (version
 * 2), and the pair of adjacent symbols whose merge comes first in the
 * codes is merged everywhere in the word (left to right, without
 * overlaps) until no pair has a merge; "</w>" is dropped and every
 * subword but a word's last gets the separator ("@@"). With a vocabulary,
 * a subword outside it is split again by undoing merges (apply_bpe's
 * --vocabulary). Glossary words are never split, and split off from the
 * words that contain them (literal strings only: apply_bpe's regular
 * expressions are not supported). */
typedef struct app_bpe app_bpe;
/* An encoder for `codes` (copied) and the separator (NULL: "@@"); NULL on
 * a memory error. Free with app_bpe_free. */
app_bpe *app_bpe_new(const app_bpe_codes *codes, const char *separator);
void app_bpe_free(app_bpe *b);
/* Keeps subwords in the vocabulary `words` (all the words counted;
 * app_word_counts_read's threshold does apply_bpe's
 * --vocabulary-threshold). As in apply_bpe, an empty vocabulary filters
 * nothing. 0 or -1 (memory). */
int app_bpe_set_vocabulary(app_bpe *b, const app_word_counts *words);
/* Adds a glossary word: 0, or -1 if it is empty, holds a space or a
 * regular-expression character (.^$*+?{}[]\|()), or memory ran out. */
int app_bpe_add_glossary(app_bpe *b, const char *word, size_t len);
/* Segments one line as apply_bpe's process_line: leading spaces (and a
 * line of spaces) kept, the words segmented and joined by single spaces,
 * trailing spaces kept; `ended` adds the "\n" the line ended with. Appends
 * to out. 0, or -1 (invalid UTF-8, memory). */
int app_bpe_apply_line(app_bpe *b, const char *line, size_t len, bool ended,
                       app_buf *out);
/* Undoes the segmentation of one line as subword-nmt's README says,
 * sed -r 's/(@@ )|(@@ ?$)//g' with the separator for "@@" (NULL: "@@").
 * Appends to out; 0 or -1 (memory). */
int app_bpe_undo_line(const char *line, size_t len, const char *separator,
                      app_buf *out);

/* --------------------------------------------------------- vocabularies */

/* A model's vocabulary: tokens with ids, the four special tokens first
 * (the PyTorch baseline's order), then the tokens in code-point order
 * (Python's sorted()). */
enum { APP_PAD = 0, APP_BOS = 1, APP_EOS = 2, APP_UNK = 3, APP_SPECIALS = 4 };
#define APP_VOCAB_MAX_TOKENS ((int64_t)1 << 24)
#define APP_VOCAB_MAX_TOKEN_BYTES ((size_t)1 << 16)

typedef struct {
  app_strtab tokens; /* id -> token */
} app_vocab;

/* "<pad>", "<bos>", "<eos>" or "<unk>" for ids 0..3. */
const char *app_vocab_special(int64_t id);

/* The tokens a decoder must never write: ids[0..n) and APP_PAD and
 * APP_BOS, never words (an undertrained model may still rate them
 * likeliest), for loom_decode_opts.suppress; *n_out of them. A new list
 * the caller frees, or NULL with a loom error when out of memory. */
int64_t *app_never_written(const int64_t *ids, int64_t n, int64_t *n_out);

/* The baseline's build_vocab: the specials, then every counted token seen
 * at least min_count (>= 1) times, sorted; a token spelled like a special
 * keeps the special's id. v is zero-initialised first. 0, or -1 (a bad
 * min_count, an empty token or one with "\r" or "\n", too many tokens,
 * memory). */
int app_vocab_build(app_vocab *v, const app_word_counts *counts,
                    int64_t min_count);
/* The id of a token, APP_UNK when it is not in the vocabulary. */
int64_t app_vocab_id(const app_vocab *v, const char *token, size_t len);
static inline int64_t app_vocab_size(const app_vocab *v) { return v->tokens.n; }
/* The token of id (0 <= id < size), NUL-terminated. */
static inline const char *app_vocab_token(const app_vocab *v, int64_t id) {
  return app_strtab_str(&v->tokens, id);
}
/* Writes one token per line in id order (written whole or not at all). 0,
 * or -1 with the error naming the path. */
int app_vocab_save(const app_vocab *v, const char *path);
/* Reads a file app_vocab_save wrote, checking it: the specials on lines
 * 1-4, no empty line, no token twice, no "\r", valid UTF-8, lines of at
 * most APP_VOCAB_MAX_TOKEN_BYTES bytes, at most APP_VOCAB_MAX_TOKENS
 * tokens; errors say "PATH:LINE: what". 0 or -1; v is zero-initialised
 * first and empty after a failure. */
int app_vocab_load(app_vocab *v, const char *path);
/* The same from the bytes of such a file (a vocabulary kept inside a
 * checkpoint); `name` stands for them in messages. */
int app_vocab_parse(app_vocab *v, const char *data, size_t len,
                    const char *name);
void app_vocab_free(app_vocab *v);

#endif
