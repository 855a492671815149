/* The text tools of apps/common/text.h: UTF-8, Python's Unicode properties
 * and lowercasing, line reading and the tokenisers; reference values from
 * Python (scripts/gen_unicode_tables.py, scripts/gen_text_reference.py). */
#define _POSIX_C_SOURCE 200809L
#include "text_util.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

static void setup(void) { loom_clear_error(); }

/* ----------------------------------------------------------------- UTF-8 */

/* A pool of strings: each copy is followed by a NUL and found again by its
 * offset; a string too long to add leaves the pool as it was. */
START_TEST(test_buf_add_string) {
  app_buf b = {0};
  ck_assert_int_eq(app_buf_add_string(&b, "ab", 2), 0);
  ck_assert_int_eq(app_buf_add_string(&b, "xyz", 0), 3);
  ck_assert_int_eq(app_buf_add_string(&b, "cd", 1), 4);
  ck_assert_uint_eq(b.len, 6);
  ck_assert_mem_eq(b.data, "ab\0\0c\0", 7);
  ck_assert_int_eq(app_buf_add_string(&b, "q", SIZE_MAX / 2), -1);
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_MEMORY);
  char want[96];
  snprintf(want, sizeof want,
           "text buffer: %zu bytes added to 6 is too long", SIZE_MAX / 2);
  ck_assert_str_eq(loom_last_error(), want);
  ck_assert_uint_eq(b.len, 6);
  ck_assert_str_eq(b.data + 4, "c");
  app_buf_free(&b);
}
END_TEST

START_TEST(test_utf8_validation) {
  static const struct {
    const char *s;
    size_t len;
    int64_t bad;
  } cases[] = {
      {"", 0, -1},
      {"plain ascii", 11, -1},
      {"\xC3\xA4\xE2\x82\xAC\xF0\x9F\x91\x8D", 9, -1}, /* ä € 👍 */
      {"\x00", 1, -1},
      {"\xEF\xBF\xBF\xF4\x8F\xBF\xBF", 7, -1}, /* U+FFFF, U+10FFFF */
      {"\xED\x9F\xBF\xEE\x80\x80", 6, -1},     /* around the surrogates */
      {"ab\x80", 3, 2},                        /* lone continuation */
      {"ab\xC0\x80", 4, 2},                    /* overlong NUL */
      {"\xC1\xBF", 2, 0},                      /* overlong */
      {"abc\xE0\x80\xAF", 6, 3},               /* overlong 3-byte */
      {"\xF0\x80\x80\xAF", 4, 0},              /* overlong 4-byte */
      {"x\xED\xA0\x80", 4, 1},                 /* surrogate U+D800 */
      {"x\xED\xBF\xBF", 4, 1},                 /* surrogate U+DFFF */
      {"\xF4\x90\x80\x80", 4, 0},              /* U+110000 */
      {"12345678\xF5\x80\x80\x80", 12, 8},     /* F5 */
      {"\xFF", 1, 0},
      {"ok\xC3", 3, 2},                   /* truncated at the end */
      {"ok\xE2\x82", 4, 2},               /* truncated */
      {"ok\xE2\x82z", 5, 2},              /* truncated by a new character */
      {"ok\xF0\x9F\x91", 5, 2},           /* truncated 4-byte */
      {"abcdefghij\xC3\xA4\xA4", 13, 12}, /* extra continuation */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(app_utf8_invalid_at(cases[i].s, cases[i].len) == cases[i].bad,
                  "case %zu: %lld, expected %lld", i,
                  (long long)app_utf8_invalid_at(cases[i].s, cases[i].len),
                  (long long)cases[i].bad);
  ck_assert_int_eq(app_utf8_check("ab\xC3(", 4, "x.txt", 100), -1);
  ck_assert_str_eq(loom_last_error(), "x.txt: invalid UTF-8 at byte 102");
  loom_clear_error();
  ck_assert_int_eq(app_utf8_check("ab", 2, "x.txt", 0), 0);
}
END_TEST

START_TEST(test_utf8_round_trip) {
  /* every scalar value encodes, validates and decodes back; a cut
   * sequence does not decode (plain checks in the loop: a Check assertion
   * costs a write) */
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    char u[4];
    int n = app_utf8_encode(cp, u);
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      if (n != 0)
        ck_abort_msg("surrogate U+%04X encoded", (unsigned)cp);
      continue;
    }
    uint32_t back = 0;
    int want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n != want || app_utf8_invalid_at(u, (size_t)n) != -1 ||
        app_utf8_decode(u, (size_t)n, &back) != n || back != cp ||
        (n > 1 && app_utf8_decode(u, (size_t)n - 1, &back) != -1))
      ck_abort_msg("U+%04X does not round-trip", (unsigned)cp);
  }
  ck_assert_int_eq(app_utf8_encode(0x110000, (char[4]){0}), 0);
  uint32_t cp;
  ck_assert_int_eq(app_utf8_decode("\xC0\x80", 2, &cp), -1);
  ck_assert_uint_eq(cp, 0xFFFD);
}
END_TEST

/* ------------------------------------------------------------- Unicode */

/* Python's str.lower() of one character, through app_lower. */
static void lower1(uint32_t cp, const char *prefix, const char *suffix,
                   app_buf *out) {
  char in[16];
  size_t n = strlen(prefix);
  memcpy(in, prefix, n);
  n += (size_t)app_utf8_encode(cp, in + n);
  memcpy(in + n, suffix, strlen(suffix));
  n += strlen(suffix);
  app_buf_clear(out);
  if (app_lower(in, n, out))
    ck_abort_msg("lower(U+%04X): %s", (unsigned)cp, loom_last_error());
}

static bool ends_final_sigma(const app_buf *b) {
  return b->len >= 2 && !memcmp(b->data + b->len - 2, "\xCF\x82", 2);
}

/* Recomputes the digest of scripts/gen_unicode_tables.py for every block of
 * 4096 code points, reading the properties only through the public
 * functions (the final-sigma properties as Python's own probes do). */
START_TEST(test_unicode_matches_python) {
  size_t len;
  char *file = ref_slurp("unicode_digest.txt", &len), *p = file, *line;
  app_buf low = {0};
  int64_t block = 0;
  while ((line = ref_line(&p))) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t cp = (uint32_t)block * 4096;
         cp < (uint32_t)block * 4096 + 4096; cp++) {
      if (cp >= 0xD800 && cp <= 0xDFFF)
        continue;
      lower1(cp, "", "\xCE\xA3", &low); /* c + capital sigma */
      bool cased = ends_final_sigma(&low);
      lower1(cp, "A", "\xCE\xA3", &low);
      bool ignorable = ends_final_sigma(&low) && !cased;
      unsigned char data[16];
      int n = 0;
      data[n++] = (unsigned char)(app_unicode_is_word(cp) |
                                  app_unicode_is_space(cp) << 1 | cased << 2 |
                                  ignorable << 3);
      lower1(cp, "", "", &low);
      for (size_t i = 0; i < low.len;) {
        uint32_t c;
        i += (size_t)app_utf8_decode(low.data + i, low.len - i, &c);
        data[n++] = (unsigned char)(c & 255);
        data[n++] = (unsigned char)(c >> 8 & 255);
        data[n++] = (unsigned char)(c >> 16);
      }
      data[n++] = 0xFF;
      for (int i = 0; i < n; i++)
        h = (h ^ data[i]) * 0x100000001b3ULL;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    ck_assert_msg(!strcmp(hex, line),
                  "code points U+%05llX..U+%05llX differ from Python",
                  (long long)block * 4096, (long long)block * 4096 + 4095);
    block++;
  }
  ck_assert_int_eq(block, 0x110000 / 4096);
  app_buf_free(&low);
  free(file);
}
END_TEST

START_TEST(test_lower_cases) {
  static const char *cases[][2] = {
      {"\xC4\xB0", "i\xCC\x87"},                /* İ -> i + U+0307 */
      {"\xCE\xA3", "\xCF\x83"},                 /* Σ alone -> σ */
      {"\xCE\x91\xCE\xA3", "\xCE\xB1\xCF\x82"}, /* ΑΣ -> ας */
      {"\xCE\x91\xCE\xA3\xCE\x91", "\xCE\xB1\xCF\x83\xCE\xB1"}, /* ΑΣΑ */
      {"\xCE\x91\xCE\xA3 x", "\xCE\xB1\xCF\x82 x"},
      {"A\xC2\xAD\xCE\xA3", "a\xC2\xAD\xCF\x82"}, /* soft hyphen ignorable */
      {"\xE1\xBA\x9E", "\xC3\x9F"},               /* ẞ -> ß */
      {"ABC xyz 123", "abc xyz 123"},
  };
  app_buf out = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    app_buf_clear(&out);
    ck_assert_int_eq(app_lower(cases[i][0], strlen(cases[i][0]), &out), 0);
    ck_assert_str_eq(out.data, cases[i][1]);
  }
  ck_assert_int_eq(app_lower("a\xFF", 2, &out), -1);
  ck_assert_str_eq(loom_last_error(), "lowercase: invalid UTF-8 at byte 1");
  app_buf_free(&out);
  ck_assert_str_eq(app_unicode_version(), "14.0.0");
}
END_TEST

/* ------------------------------------------------------------- tokens */

/* Tokens of a reference line: escaped tokens separated by spaces. */
static void ref_tokens(const char *s, app_tokens *out) {
  app_tokens_clear(out);
  app_buf b = {0};
  while (*s) {
    const char *e = strchr(s, ' ');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    ref_unescape(s, n, &b);
    ck_assert_int_eq(app_tokens_push(out, b.data, b.len, false), 0);
    s += n + (e ? 1 : 0);
  }
  app_buf_free(&b);
}

static void assert_same_tokens(const app_tokens *got, const app_tokens *want,
                               const char *what, const char *line) {
  ck_assert_msg(got->n == want->n, "%s of '%s': %lld tokens, expected %lld",
                what, line, (long long)got->n, (long long)want->n);
  for (int64_t i = 0; i < got->n; i++)
    ck_assert_msg(app_token_len(got, i) == app_token_len(want, i) &&
                      !memcmp(app_token(got, i), app_token(want, i),
                              app_token_len(got, i)),
                  "%s of '%s': token %lld is '%s', expected '%s'", what, line,
                  (long long)i, app_token(got, i), app_token(want, i));
}

START_TEST(test_tokenize_matches_python) {
  size_t len;
  char *file = ref_slurp("text_tokenize.txt", &len), *p = file, *line;
  app_buf in = {0}, want = {0}, got = {0};
  app_tokens toks = {0}, ref = {0};
  int cases = 0;
  while ((line = ref_line(&p))) {
    char *raw = ref_value(line, "in");
    ref_unescape(raw, strlen(raw), &in);
    char *lower = ref_value(ref_line(&p), "lower");
    ref_unescape(lower, strlen(lower), &want);
    app_buf_clear(&got);
    ck_assert_int_eq(app_lower(in.data, in.len, &got), 0);
    ck_assert_msg(got.len == want.len && !memcmp(got.data, want.data, got.len),
                  "lower('%s') = '%s', expected '%s'", raw, got.data,
                  want.data);

    ref_tokens(ref_value(ref_line(&p), "tok"), &ref);
    app_tokens_clear(&toks);
    ck_assert_int_eq(app_tokenize_lower(in.data, in.len, &toks, "case"), 0);
    assert_same_tokens(&toks, &ref, "tokens", raw);

    /* the reversible split, written with joiners */
    char *rev = ref_value(ref_line(&p), "rev");
    app_tokens_clear(&toks);
    ck_assert_int_eq(app_tokenize_reversible(in.data, in.len, &toks, "case"),
                     0);
    app_buf_clear(&got);
    ck_assert_int_eq(app_tokens_join_marked(&toks, &got), 0);
    ref_unescape(rev, strlen(rev), &want);
    ck_assert_msg(!strcmp(got.data ? got.data : "", want.data),
                  "marked tokens of '%s': '%s', expected '%s'", raw, got.data,
                  want.data);
    cases++;
  }
  ck_assert_int_gt(cases, 200);
  app_buf_free(&in);
  app_buf_free(&want);
  app_buf_free(&got);
  app_tokens_free(&toks);
  app_tokens_free(&ref);
  free(file);
}
END_TEST

/* x with each run of whitespace made one space and the ends trimmed. */
static void normalize_space(const char *s, size_t len, app_buf *out) {
  app_buf_clear(out);
  bool pending = false;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    int n = app_utf8_decode(s + i, len - i, &cp);
    if (app_unicode_is_space(cp)) {
      pending = out->len > 0;
    } else {
      if (pending)
        app_buf_putc(out, ' ');
      pending = false;
      app_buf_append(out, s + i, (size_t)n);
    }
    i += (size_t)n;
  }
  if (!out->data)
    app_buf_append(out, "", 0);
}

START_TEST(test_detokenize_inverts_tokenize) {
  static const uint32_t alphabet[] = {
      'a',   'Z',    '0',     '_',    ' ',    ' ',    '.',  ',',  '\'',
      '-',   '(',    '\t',    0xA0,   0x2028, 0x3000, 0xE4, 0xDF, 0x3A3,
      0x301, 0x4E2D, 0x1F44D, 0xFFED, 0xFFED, 0x200B, 0};
  const int n_alpha = (int)(sizeof alphabet / sizeof alphabet[0]);
  uint64_t state = 14;
  app_buf x = {0}, marked = {0}, back = {0}, want = {0};
  app_tokens toks = {0}, again = {0};
  for (int iter = 0; iter < 3000; iter++) {
    app_buf_clear(&x);
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    int len = (int)(state >> 59);
    for (int i = 0; i < len; i++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      app_buf_put_cp(&x, alphabet[(state >> 33) % n_alpha]);
    }
    /* plain checks in the loop: a Check assertion costs a write */
    const char *s = x.data ? x.data : "";
    app_tokens_clear(&toks);
    app_buf_clear(&back);
    if (app_tokenize_reversible(s, x.len, &toks, "x") ||
        app_detokenize(&toks, &back))
      ck_abort_msg("'%s': %s", s, loom_last_error());
    normalize_space(s, x.len, &want);
    if (strcmp(back.data ? back.data : "", want.data))
      ck_abort_msg("detokenize(tokenize('%s')) = '%s'", s, back.data);
    /* through the marked form and back */
    app_buf_clear(&marked);
    app_tokens_clear(&again);
    if (app_tokens_join_marked(&toks, &marked) ||
        app_tokens_split_marked(marked.data ? marked.data : "", marked.len,
                                &again, "x"))
      ck_abort_msg("'%s': %s", s, loom_last_error());
    bool same = again.n == toks.n;
    for (int64_t i = 0; same && i < toks.n; i++)
      same = !strcmp(app_token(&again, i), app_token(&toks, i)) &&
             again.glued[i] == toks.glued[i];
    if (!same)
      ck_abort_msg("'%s' marked as '%s' does not split back", s, marked.data);
  }
  app_buf_free(&x);
  app_buf_free(&marked);
  app_buf_free(&back);
  app_buf_free(&want);
  app_tokens_free(&toks);
  app_tokens_free(&again);
}
END_TEST

START_TEST(test_tokenize_errors) {
  app_tokens t = {0};
  ck_assert_int_eq(app_tokenize_lower("ok \xE2\x82", 5, &t, "train.de:7"), -1);
  ck_assert_str_eq(loom_last_error(), "train.de:7: invalid UTF-8 at byte 3");
  loom_clear_error();
  ck_assert_int_eq(app_tokenize_reversible("\xC0\xAF", 2, &t, "s"), -1);
  loom_clear_error();
  ck_assert_int_eq(app_tokens_split_marked("a \xFF", 3, &t, "m"), -1);
  ck_assert_int_eq(t.n, 0);
  loom_clear_error();
  app_tokens_free(&t);
}
END_TEST

/* ------------------------------------------------------------- scores */

/* A corpus of the reference file: segments of one hypothesis and their
 * references (all unescaped, in one token list as plain strings). */
typedef struct {
  app_tokens text; /* hyp, ref, ref, hyp, ref, ... */
  int64_t n_seg;
  int64_t seg_start[512]; /* index of each segment's hyp in text */
  int n_refs[512];
} ref_corpus;

/* Checks that a score line "TAG STRING" and "TAG.score REPR" match. */
static void check_score(char **p, const char *tag, const char *corpus,
                        const char *got, double score) {
  char want_tag[64];
  ck_assert_str_eq(ref_value(ref_line(p), tag), got);
  snprintf(want_tag, sizeof want_tag, "%s.score", tag);
  double want = strtod(ref_value(ref_line(p), want_tag), NULL);
  ck_assert_msg(score == want, "%s of %s: %.17g, expected %.17g", tag, corpus,
                score, want);
}

static void score_bleu(const ref_corpus *c, app_bleu_opts o, app_buf *line,
                       double *score) {
  app_bleu *b = app_bleu_new(o);
  ck_assert_loom(b);
  for (int64_t s = 0; s < c->n_seg; s++) {
    const char *refs[8];
    size_t lens[8];
    int64_t h = c->seg_start[s];
    for (int r = 0; r < c->n_refs[s]; r++) {
      refs[r] = app_token(&c->text, h + 1 + r);
      lens[r] = app_token_len(&c->text, h + 1 + r);
    }
    ck_assert_int_eq(app_bleu_add(b, app_token(&c->text, h),
                                  app_token_len(&c->text, h), refs, lens,
                                  c->n_refs[s]),
                     0);
  }
  app_bleu_result r;
  app_bleu_get(b, &r);
  app_buf_clear(line);
  ck_assert_int_eq(app_bleu_format(&r, line), 0);
  *score = r.score;
  app_bleu_free(b);
}

static void score_chrf(const ref_corpus *c, bool lowercase, app_buf *line,
                       double *score) {
  app_chrf *ch = app_chrf_new((app_chrf_opts){.lowercase = lowercase});
  ck_assert_loom(ch);
  for (int64_t s = 0; s < c->n_seg; s++) {
    const char *refs[8];
    size_t lens[8];
    int64_t h = c->seg_start[s];
    for (int r = 0; r < c->n_refs[s]; r++) {
      refs[r] = app_token(&c->text, h + 1 + r);
      lens[r] = app_token_len(&c->text, h + 1 + r);
    }
    ck_assert_int_eq(app_chrf_add(ch, app_token(&c->text, h),
                                  app_token_len(&c->text, h), refs, lens,
                                  c->n_refs[s]),
                     0);
  }
  app_buf_clear(line);
  ck_assert_int_eq(app_chrf_format(ch, line), 0);
  *score = app_chrf_score(ch);
  app_chrf_free(ch);
}

/* NLTK's BLEU-1..4 on the baseline's tokens. */
static void score_nltk(const ref_corpus *c, double out[4]) {
  app_nltk_bleu *b = app_nltk_bleu_new(4);
  ck_assert_loom(b);
  app_tokens hyp = {0}, refs[8] = {0};
  for (int64_t s = 0; s < c->n_seg; s++) {
    int64_t h = c->seg_start[s];
    app_tokens_clear(&hyp);
    ck_assert_int_eq(app_tokenize_lower(app_token(&c->text, h),
                                        app_token_len(&c->text, h), &hyp, "h"),
                     0);
    for (int r = 0; r < c->n_refs[s]; r++) {
      app_tokens_clear(&refs[r]);
      ck_assert_int_eq(app_tokenize_lower(app_token(&c->text, h + 1 + r),
                                          app_token_len(&c->text, h + 1 + r),
                                          &refs[r], "r"),
                       0);
    }
    ck_assert_int_eq(app_nltk_bleu_add(b, &hyp, refs, c->n_refs[s]), 0);
  }
  for (int order = 1; order <= 4; order++) {
    app_bleu_result r;
    ck_assert_int_eq(app_nltk_bleu_get(b, order, NULL, &r), 0);
    out[order - 1] = r.score; /* 100 * corpus_bleu's value */
  }
  app_tokens_free(&hyp);
  for (int r = 0; r < 8; r++)
    app_tokens_free(&refs[r]);
  app_nltk_bleu_free(b);
}

START_TEST(test_scores_match_sacrebleu_and_nltk) {
  size_t len;
  char *file = ref_slurp("text_scores.txt", &len), *p = file, *line;
  app_buf un = {0}, got = {0};
  ref_corpus *c = calloc(1, sizeof *c);
  int corpora = 0;
  while ((line = ref_line(&p))) {
    char name[64];
    snprintf(name, sizeof name, "%s", ref_value(line, "corpus"));
    app_tokens_clear(&c->text);
    c->n_seg = 0;
    char *l;
    while ((l = ref_line(&p)) &&
           (!strncmp(l, "hyp", 3) || !strncmp(l, "ref", 3))) {
      bool hyp = l[0] == 'h';
      char *v = l + (l[3] ? 4 : 3);
      ref_unescape(v, strlen(v), &un);
      if (hyp) {
        ck_assert_int_lt(c->n_seg, 512);
        c->seg_start[c->n_seg] = c->text.n;
        c->n_refs[c->n_seg++] = 0;
      } else {
        ck_assert_int_lt(c->n_refs[c->n_seg - 1], 8);
        c->n_refs[c->n_seg - 1]++;
      }
      ck_assert_int_eq(app_tokens_push(&c->text, un.data, un.len, false), 0);
    }
    double score;
    static const struct {
      const char *tag;
      app_bleu_opts o;
    } bleus[] = {{"bleu", {false, APP_BLEU_13A}},
                 {"bleu_lc", {true, APP_BLEU_13A}},
                 {"bleu_none", {false, APP_BLEU_TOKENIZE_NONE}}};
    for (int k = 0; k < 3; k++) {
      score_bleu(c, bleus[k].o, &got, &score);
      /* l holds the first score line already */
      if (k == 0) {
        ck_assert_str_eq(ref_value(l, "bleu"), got.data);
        double want = strtod(ref_value(ref_line(&p), "bleu.score"), NULL);
        ck_assert_msg(score == want, "bleu of %s: %.17g, expected %.17g", name,
                      score, want);
      } else {
        check_score(&p, bleus[k].tag, name, got.data, score);
      }
    }
    score_chrf(c, false, &got, &score);
    check_score(&p, "chrf", name, got.data, score);
    score_chrf(c, true, &got, &score);
    check_score(&p, "chrf_lc", name, got.data, score);
    double nltk[4];
    score_nltk(c, nltk);
    char *v = ref_value(ref_line(&p), "nltk");
    for (int k = 0; k < 4; k++) {
      double want = strtod(v, &v) * 100;
      ck_assert_msg(nltk[k] == want,
                    "NLTK BLEU-%d of %s: %.17g, expected %.17g", k + 1, name,
                    nltk[k], want);
    }
    ref_value(ref_line(&p), "end");
    corpora++;
  }
  ck_assert_int_eq(corpora, 16);
  app_tokens_free(&c->text);
  free(c);
  app_buf_free(&un);
  app_buf_free(&got);
  free(file);
}
END_TEST

/* Worked by hand from the rules of tokenizer 13a (and checked against
 * sacreBLEU's Tokenizer13a). */
START_TEST(test_13a_by_hand) {
  static const char *cases[][2] = {
      {"Hello, world!", "Hello , world !"}, /* , after a letter; ! always */
      {"1,000.50", "1,000.50"},             /* between digits: kept */
      {"a.b", "a . b"},                     /* after a non-digit */
      {"2.", "2 ."},                        /* before a non-digit */
      {".5", ". 5"}, /* the padding space before it is a non-digit */
      {"1.a", "1 . a"},
      {"x.,y", "x . , y"},
      {"\xC3\x9C.\xC3\x96", "\xC3\x9C . \xC3\x96"}, /* Ü.Ö: one character */
      {"3-4", "3 - 4"},                             /* a dash after a digit */
      {"x-y", "x-y"},                               /* otherwise kept */
      {"don't", "don't"},
      {"(a)", "( a )"},
      {"&quot;hi&quot;", "\" hi \""},
      {"&amp;lt;", "<"}, /* &amp; first, then &lt; */
      {"a<skipped>b", "ab"},
      {"e-\nmail", "email"},
      {"  \t ", ""},
  };
  app_buf out = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    app_buf_clear(&out);
    ck_assert_int_eq(app_tokenize_13a(cases[i][0], strlen(cases[i][0]), &out),
                     0);
    ck_assert_str_eq(out.data, cases[i][1]);
  }
  app_buf_free(&out);
}
END_TEST

/* BLEU of one segment from its counts, worked by hand. */
static void bleu1(const char *hyp, const char *ref, app_bleu_result *r) {
  app_bleu *b = app_bleu_new((app_bleu_opts){0});
  ck_assert_loom(b);
  size_t len = strlen(ref);
  ck_assert_int_eq(app_bleu_add(b, hyp, strlen(hyp), &ref, &len, 1), 0);
  app_bleu_get(b, r);
  app_bleu_free(b);
}

START_TEST(test_bleu_smoothing_by_hand) {
  app_bleu_result r;
  app_buf s = {0};
  /* matches 3/4, 1/3, 0/2, 0/1: 'exp' smoothing makes the zero orders
   * 1/(2*2) and 1/(4*1), so BLEU = (75 * 33.3 * 25 * 25)^(1/4) =
   * sqrt(1250) */
  bleu1("a b c d", "a b x d", &r);
  ck_assert_int_eq(r.correct[2], 0);
  ck_assert_int_eq(r.total[3], 1);
  ck_assert_double_eq_tol(r.precision[2], 25.0, 1e-12);
  ck_assert_double_eq_tol(r.precision[3], 25.0, 1e-12);
  ck_assert_double_eq_tol(r.score, sqrt(1250.0), 1e-12);
  ck_assert_int_eq(app_bleu_format(&r, &s), 0);
  ck_assert_str_eq(s.data, "BLEU = 35.36 75.0/33.3/25.0/25.0 (BP = 1.000 "
                           "ratio = 1.000 hyp_len = 4 ref_len = 4)");
  /* no 4-grams in the hypothesis: that precision stays 0 and BLEU is 0;
   * the brevity penalty is exp(1 - 6/3) */
  bleu1("a b c", "a b c d e f", &r);
  ck_assert_double_eq_tol(r.bp, exp(-1.0), 1e-15);
  ck_assert_double_eq(r.score, 0.0);
  app_buf_clear(&s);
  ck_assert_int_eq(app_bleu_format(&r, &s), 0);
  ck_assert_str_eq(s.data, "BLEU = 0.00 100.0/100.0/100.0/0.0 (BP = 0.368 "
                           "ratio = 0.500 hyp_len = 3 ref_len = 6)");
  app_buf_free(&s);

  /* NLTK: no smoothing, a zero order counts as the smallest double */
  app_nltk_bleu *n = app_nltk_bleu_new(4);
  app_tokens h = {0}, ref = {0};
  ck_assert_int_eq(app_split_space("a b c d", 7, &h, "h"), 0);
  ck_assert_int_eq(app_split_space("a b x d", 7, &ref, "r"), 0);
  ck_assert_int_eq(app_nltk_bleu_add(n, &h, &ref, 1), 0);
  ck_assert_int_eq(app_nltk_bleu_get(n, 2, NULL, &r), 0);
  ck_assert_double_eq_tol(r.score, 50.0, 1e-12); /* sqrt(3/4 * 1/3) */
  ck_assert_int_eq(app_nltk_bleu_get(n, 4, NULL, &r), 0);
  /* (3/4 * 1/3)^(1/4) * DBL_MIN^(1/2) */
  ck_assert_double_eq_tol(r.score / (100 * sqrt(0.5) * sqrt(DBL_MIN)), 1.0,
                          1e-12);
  ck_assert_int_eq(app_nltk_bleu_get(n, 5, NULL, &r), -1);
  loom_clear_error();
  /* a hypothesis shorter than n adds 1 to that order's denominator */
  app_tokens_clear(&h);
  ck_assert_int_eq(app_split_space("a", 1, &h, "h"), 0);
  ck_assert_int_eq(app_nltk_bleu_add(n, &h, &ref, 1), 0);
  ck_assert_int_eq(app_nltk_bleu_get(n, 4, NULL, &r), 0);
  ck_assert_int_eq(r.total[3], 2);
  ck_assert_int_eq(r.correct[0], 4);
  app_tokens_free(&h);
  app_tokens_free(&ref);
  app_nltk_bleu_free(n);
}
END_TEST

/* app_mbr_choose and the sentence BLEU it uses against NLTK's values
 * (scripts/gen_mbr_reference.py). */
START_TEST(test_mbr_matches_nltk) {
  size_t len;
  char *file = ref_slurp("mbr.txt", &len), *p = file, *line;
  app_nltk_bleu *b = app_nltk_bleu_new(4);
  ck_assert_loom(b);
  int cases = 0;
  while ((line = ref_line(&p))) {
    char name[64];
    snprintf(name, sizeof name, "%s", ref_value(line, "case"));
    app_tokens cands[16] = {0};
    double weights[16], gains[16];
    int64_t n = 0, best = -1;
    while ((line = ref_line(&p)) && !strncmp(line, "cand", 4)) {
      ck_assert_int_lt(n, 16);
      char *v = ref_value(line, "cand");
      ck_assert_int_eq(app_split_space(v, strlen(v), &cands[n++], "c"), 0);
    }
    char *v = ref_value(line, "weights");
    bool uniform = !*v;
    for (int64_t i = 0; !uniform && i < n; i++)
      weights[i] = strtod(v, &v);
    /* each ordered pair's sentence BLEU, bit for bit */
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        char *l = ref_value(ref_line(&p), "bleu");
        ck_assert_int_eq(strtol(l, &l, 10), i);
        ck_assert_int_eq(strtol(l, &l, 10), j);
        double want = strtod(l, NULL) * 100;
        app_bleu_result r;
        app_nltk_bleu_reset(b);
        ck_assert_int_eq(app_nltk_bleu_add(b, &cands[i], &cands[j], 1), 0);
        ck_assert_int_eq(
            app_nltk_bleu_get_smoothed(b, 4, NULL, APP_NLTK_METHOD2, &r), 0);
        ck_assert_msg(r.score == want,
                      "%s: U(%lld, %lld) %.17g, expected %.17g", name,
                      (long long)i, (long long)j, r.score, want);
      }
    ck_assert_int_eq(
        app_mbr_choose(cands, uniform ? NULL : weights, n, &best, gains), 0);
    for (int64_t i = 0; i < n; i++) {
      char *l = ref_value(ref_line(&p), "gain");
      ck_assert_int_eq(strtol(l, &l, 10), i);
      ck_assert_double_eq_tol(gains[i], strtod(l, NULL), 1e-13);
    }
    ck_assert_int_eq(best, strtol(ref_value(ref_line(&p), "best"), NULL, 10));
    ref_value(ref_line(&p), "end");
    for (int64_t i = 0; i < n; i++)
      app_tokens_free(&cands[i]);
    cases++;
  }
  ck_assert_int_eq(cases, 11);
  app_nltk_bleu_free(b);
  free(file);
}
END_TEST

/* By hand: method2 against method0, reset, and the choice's rules. */
START_TEST(test_mbr_by_hand) {
  app_nltk_bleu *b = app_nltk_bleu_new(4);
  app_tokens t[3] = {0};
  ck_assert_int_eq(app_split_space("a b c d", 7, &t[0], "h"), 0);
  ck_assert_int_eq(app_split_space("a b x d", 7, &t[1], "r"), 0);
  ck_assert_int_eq(app_split_space("q", 1, &t[2], "q"), 0);
  app_bleu_result r;
  ck_assert_int_eq(app_nltk_bleu_add(b, &t[0], &t[1], 1), 0);
  /* precisions 3/4, (1+1)/(3+1), (0+1)/(2+1), (0+1)/(1+1); bp 1 */
  ck_assert_int_eq(app_nltk_bleu_get_smoothed(b, 4, NULL, APP_NLTK_METHOD2, &r),
                   0);
  ck_assert_double_eq_tol(r.score,
                          100 * pow(0.75 * 0.5 * (1 / 3.0) * 0.5, 0.25), 1e-12);
  /* the unsmoothed score of the same sentence is not touched */
  ck_assert_int_eq(app_nltk_bleu_get(b, 2, NULL, &r), 0);
  ck_assert_double_eq_tol(r.score, 50.0, 1e-12);
  ck_assert_int_eq(
      app_nltk_bleu_get_smoothed(b, 4, NULL, (app_nltk_smoothing)1, &r), -1);
  loom_clear_error();
  /* reset: a new corpus; no unigram match scores 0 even smoothed */
  app_nltk_bleu_reset(b);
  ck_assert_int_eq(app_nltk_bleu_add(b, &t[2], &t[1], 1), 0);
  ck_assert_int_eq(app_nltk_bleu_get_smoothed(b, 4, NULL, APP_NLTK_METHOD2, &r),
                   0);
  ck_assert_double_eq(r.score, 0.0);
  ck_assert_int_eq(r.hyp_len, 1);
  ck_assert_int_eq(r.ref_len, 4);

  /* U(0,1) = U(1,0) = u, U(i,i) = 1, U(2, .) = U(., 2) = 0: uniform
   * gains (1 + u) / 3 for the first two, 1/3 for "q" */
  int64_t best = -1;
  double gains[3], u = pow(0.75 * 0.5 * (1 / 3.0) * 0.5, 0.25);
  app_tokens long_[3] = {0};
  const char *text[3] = {"a b c d", "a b x d", "q r s t"};
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(app_split_space(text[i], 7, &long_[i], "t"), 0);
  ck_assert_int_eq(app_mbr_choose(long_, NULL, 3, &best, gains), 0);
  ck_assert_double_eq_tol(gains[0], (1 + u) / 3, 1e-12);
  ck_assert_double_eq_tol(gains[1], (1 + u) / 3, 1e-12);
  ck_assert_double_eq_tol(gains[2], 1 / 3.0, 1e-12);
  ck_assert_int_eq(best, 0); /* a tie goes to the first */
  /* all the weight on "q r s t": it is the choice */
  ck_assert_int_eq(
      app_mbr_choose(long_, (double[]){0.1, 0.1, 0.8}, 3, &best, NULL), 0);
  ck_assert_int_eq(best, 2);
  /* errors: the range named */
  ck_assert_int_eq(app_mbr_choose(long_, NULL, 0, &best, NULL), -1);
  ck_assert_str_eq(loom_last_error(), "MBR: 0 candidates, not 1..10000");
  loom_clear_error();
  ck_assert_int_eq(app_mbr_choose(long_, (double[]){1, -1, 1}, 3, &best, NULL),
                   -1);
  ck_assert_str_eq(loom_last_error(),
                   "MBR: candidate 1's weight -1 is not finite and >= 0");
  loom_clear_error();
  ck_assert_int_eq(app_mbr_choose(long_, (double[]){1, NAN, 1}, 3, &best, NULL),
                   -1);
  loom_clear_error();
  ck_assert_int_eq(app_mbr_choose(long_, (double[]){0, 0, 0}, 3, &best, NULL),
                   -1);
  ck_assert_str_eq(loom_last_error(),
                   "MBR: the weights' sum 0 is not positive and finite");
  loom_clear_error();
  for (int i = 0; i < 3; i++) {
    app_tokens_free(&t[i]);
    app_tokens_free(&long_[i]);
  }
  app_nltk_bleu_free(b);
}
END_TEST

START_TEST(test_score_errors) {
  app_bleu *b = app_bleu_new((app_bleu_opts){0});
  const char *ref = "ok";
  size_t len = 2;
  ck_assert_int_eq(app_bleu_add(b, "x", 1, &ref, &len, 0), -1);
  loom_clear_error();
  ck_assert_int_eq(app_bleu_add(b, "\xFF", 1, &ref, &len, 1), -1);
  ck_assert_str_eq(loom_last_error(), "BLEU: invalid UTF-8 at byte 0");
  loom_clear_error();
  app_bleu_free(b);
  app_chrf *c = app_chrf_new((app_chrf_opts){0});
  ck_assert_int_eq(app_chrf_add(c, "ok", 2, &ref, &len, 0), -1);
  loom_clear_error();
  app_chrf_free(c);
  ck_assert_ptr_null(app_chrf_new((app_chrf_opts){.char_order = 7}));
  loom_clear_error();
  ck_assert_ptr_null(app_nltk_bleu_new(0));
  loom_clear_error();
}
END_TEST

/* --------------------------------------------------------------- BPE */

/* The whole of a reference file as a string (caller frees). */
static char *ref_file(const char *name) {
  size_t len;
  return ref_slurp(name, &len);
}

/* The codes as their file holds them (caller frees). */
static char *codes_text(const app_bpe_codes *c) {
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(app_bpe_codes_write(c, f), 0);
  fclose(f);
  return text;
}

/* Word counts of a text file read as learn-bpe reads standard input. */
static void count_file(const char *name, app_word_counts *wc) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/%s", getenv("LOOM_SOURCE_ROOT"),
           name);
  app_line_reader r;
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_LF, 0), 0);
  const char *line;
  size_t len;
  int got;
  while ((got = app_line_reader_next(&r, &line, &len, NULL)) > 0)
    ck_assert_int_eq(app_word_counts_add_line(wc, line, len), 0);
  ck_assert_int_eq(got, 0);
  app_line_reader_close(&r);
}

static void learn_and_compare(const app_word_counts *wc, app_bpe_learn_opts o,
                              const char *want) {
  app_bpe_codes codes;
  ck_assert_int_eq(app_bpe_learn(wc, &o, &codes), 0);
  char *got = codes_text(&codes), *expected = ref_file(want);
  ck_assert_msg(!strcmp(got, expected), "merges differ from subword-nmt's %s",
                want);
  free(got);
  free(expected);
  app_bpe_codes_free(&codes);
}

/* Sennrich et al.'s example, worked by hand. Words as symbols:
 * l o w</w> x5, l o w e r</w> x2, n e w e s t</w> x6, w i d e s t</w> x3.
 * (e, s) and (s, t</w>) both occur 9 times; the tie goes to the larger
 * pair in code-point order, (s, t</w>). Then (e, st</w>) 9 and (l, o) 7.
 * Then (n, e), (e, w) and (w, est</w>) have 6 each: (w, est</w>) wins
 * ('w' > 'n' > 'e'); then (n, e) and (e, west</w>) tie at 6 and (n, e)
 * wins; then (ne, west</w>) 6 and (lo, w</w>) 5. */
START_TEST(test_bpe_learn_by_hand) {
  app_word_counts wc = {0};
  ck_assert_int_eq(app_word_counts_add(&wc, "low", 3, 5), 0);
  ck_assert_int_eq(app_word_counts_add(&wc, "lower", 5, 2), 0);
  ck_assert_int_eq(app_word_counts_add(&wc, "newest", 6, 6), 0);
  ck_assert_int_eq(app_word_counts_add(&wc, "widest", 6, 3), 0);
  app_bpe_codes c;
  app_bpe_learn_opts o = {.symbols = 7, .min_frequency = 2};
  ck_assert_int_eq(app_bpe_learn(&wc, &o, &c), 0);
  char *text = codes_text(&c);
  ck_assert_str_eq(text, "#version: 0.2\ns t</w>\ne st</w>\nl o\nw est</w>\n"
                         "n e\nne west</w>\nlo w</w>\n");
  free(text);

  /* "lowest": l o w e s t</w> -> s t</w> (rank 0) -> e st</w> (1) ->
   * l o (2) -> w est</w> (3): lo west; "newer": n e (4), then nothing
   * merges w e: "ne@@ w@@ e@@ r"; one character stays */
  app_bpe *b = app_bpe_new(&c, NULL);
  ck_assert_loom(b);
  app_buf out = {0};
  const char *line = " lowest  newer x\n";
  ck_assert_int_eq(app_bpe_apply_line(b, line, strlen(line) - 1, true, &out),
                   0);
  ck_assert_str_eq(out.data, " lo@@ west ne@@ w@@ e@@ r x\n");
  /* undo gives the words back (spaces inside runs are not kept) */
  app_buf back = {0};
  ck_assert_int_eq(app_bpe_undo_line(out.data, out.len, NULL, &back), 0);
  ck_assert_str_eq(back.data, " lowest newer x\n");
  app_buf_free(&out);
  app_buf_free(&back);
  app_bpe_free(b);
  app_bpe_codes_free(&c);

  /* the minimum frequency stops learning: the eighth merge would be
   * (w, i), 3 times */
  o = (app_bpe_learn_opts){.symbols = 100, .min_frequency = 4};
  ck_assert_int_eq(app_bpe_learn(&wc, &o, &c), 0);
  ck_assert_int_eq(c.merges.n, 7);
  app_bpe_codes_free(&c);
  app_word_counts_free(&wc);
}
END_TEST

START_TEST(test_bpe_learn_matches_subword_nmt) {
  app_word_counts wc = {0};
  count_file("bpe_corpus.txt", &wc);
  learn_and_compare(&wc,
                    (app_bpe_learn_opts){.symbols = 200, .min_frequency = 2},
                    "bpe_codes.txt");
  learn_and_compare(&wc,
                    (app_bpe_learn_opts){.symbols = 150,
                                         .min_frequency = 3,
                                         .total_symbols = true},
                    "bpe_codes_total.txt");
  app_word_counts_free(&wc);

  /* the words of a vocabulary file (--dict-input) */
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/bpe_vocab.txt",
           getenv("LOOM_SOURCE_ROOT"));
  ck_assert_int_eq(app_word_counts_read(&wc, path, 0), 0);
  learn_and_compare(&wc,
                    (app_bpe_learn_opts){.symbols = 100, .min_frequency = 2},
                    "bpe_codes_dict.txt");
  app_word_counts_free(&wc);

  /* words with tabs inside, where subword-nmt's regular expression merges
   * more than the pair (its merges differ from plain greedy BPE's) */
  count_file("bpe_quirk.txt", &wc);
  learn_and_compare(&wc,
                    (app_bpe_learn_opts){.symbols = 400, .min_frequency = 2},
                    "bpe_codes_quirk.txt");
  app_word_counts_free(&wc);
}
END_TEST

/* Applies codes (a reference file, as a version 0.1 file if asked) to
 * bpe_text.txt and compares with subword-nmt's output. */
static void apply_and_compare(const char *codes_name, bool as_v01,
                              int64_t merges, const char *sep,
                              const app_word_counts *vocab,
                              const char *glossary[], const char *want) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/%s", getenv("LOOM_SOURCE_ROOT"),
           codes_name);
  if (as_v01) { /* the same merges without the version line */
    char *text = ref_file(codes_name), *rest = strchr(text, '\n') + 1;
    test_path(path, sizeof path, "codes01.txt");
    test_write_file(path, rest, strlen(rest));
    free(text);
  }
  app_bpe_codes c;
  ck_assert_int_eq(app_bpe_codes_read(&c, path, merges), 0);
  ck_assert_int_eq(c.version, as_v01 ? 1 : 2);
  app_bpe *b = app_bpe_new(&c, sep);
  ck_assert_loom(b);
  if (vocab)
    ck_assert_int_eq(app_bpe_set_vocabulary(b, vocab), 0);
  for (int g = 0; glossary && glossary[g]; g++)
    ck_assert_int_eq(app_bpe_add_glossary(b, glossary[g], strlen(glossary[g])),
                     0);
  snprintf(path, sizeof path, "%s/tests/data/bpe_text.txt",
           getenv("LOOM_SOURCE_ROOT"));
  app_line_reader r;
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, 0), 0);
  app_buf out = {0};
  const char *line;
  size_t len;
  bool ended;
  while (app_line_reader_next(&r, &line, &len, &ended) > 0)
    ck_assert_int_eq(app_bpe_apply_line(b, line, len, ended, &out), 0);
  app_line_reader_close(&r);
  char *expected = ref_file(want);
  ck_assert_msg(!strcmp(out.data, expected), "output differs from %s", want);
  free(expected);
  app_buf_free(&out);
  app_bpe_free(b);
  app_bpe_codes_free(&c);
}

START_TEST(test_bpe_apply_matches_subword_nmt) {
  apply_and_compare("bpe_codes.txt", false, -1, NULL, NULL, NULL,
                    "bpe_apply.txt");
  apply_and_compare("bpe_codes.txt", false, 50, "++", NULL, NULL,
                    "bpe_apply_m50.txt");
  apply_and_compare("bpe_codes.txt", true, -1, NULL, NULL, NULL,
                    "bpe_apply_v01.txt");
  const char *glossary[] = {"man",
                            "Stra\xC3\x9F"
                            "e",
                            "\xCF\x83\xCE\xBF\xCF\x86\xCE\xAF\xCE\xB1", NULL};
  apply_and_compare("bpe_codes.txt", false, -1, NULL, NULL, glossary,
                    "bpe_apply_gloss.txt");
  /* --vocabulary bpe_vocab.txt --vocabulary-threshold 3 */
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/bpe_vocab.txt",
           getenv("LOOM_SOURCE_ROOT"));
  app_word_counts vocab = {0};
  ck_assert_int_eq(app_word_counts_read(&vocab, path, 3), 0);
  apply_and_compare("bpe_codes.txt", false, -1, NULL, &vocab, NULL,
                    "bpe_apply_vocab.txt");
  app_word_counts_free(&vocab);

  /* get-vocab of the segmented corpus */
  app_bpe_codes c;
  snprintf(path, sizeof path, "%s/tests/data/bpe_codes.txt",
           getenv("LOOM_SOURCE_ROOT"));
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  app_bpe *b = app_bpe_new(&c, NULL);
  snprintf(path, sizeof path, "%s/tests/data/bpe_corpus.txt",
           getenv("LOOM_SOURCE_ROOT"));
  app_line_reader r;
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, 0), 0);
  app_buf out = {0};
  const char *line;
  size_t len;
  bool ended;
  app_word_counts wc = {0};
  while (app_line_reader_next(&r, &line, &len, &ended) > 0) {
    app_buf_clear(&out);
    ck_assert_int_eq(app_bpe_apply_line(b, line, len, ended, &out), 0);
    ck_assert_int_eq(app_word_counts_add_line(&wc, out.data, out.len), 0);
  }
  app_line_reader_close(&r);
  char *text;
  size_t n;
  FILE *f = open_memstream(&text, &n);
  ck_assert_int_eq(app_word_counts_write(&wc, f), 0);
  fclose(f);
  char *expected = ref_file("bpe_vocab.txt");
  ck_assert_str_eq(text, expected);
  free(text);
  free(expected);
  app_word_counts_free(&wc);
  app_buf_free(&out);
  app_bpe_free(b);
  app_bpe_codes_free(&c);
}
END_TEST

/* The learned merges are the greedy ones on the training words: after
 * applying the first k merges, the most frequent adjacent pair (ties to
 * the larger in code-point order) is merge k + 1. Random words over a
 * small alphabet, so symbols are often made in more than one way. */
START_TEST(test_bpe_merges_are_greedy_on_training_words) {
  uint64_t state = 7;
  app_word_counts wc = {0};
  for (int w = 0; w < 150; w++) {
    char word[16];
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    int len = 1 + (int)(state >> 60) % 10;
    for (int i = 0; i < len; i++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      word[i] = "abcde"[(state >> 33) % 5];
    }
    ck_assert_int_eq(app_word_counts_add(&wc, word, (size_t)len,
                                         1 + (int64_t)(state >> 40) % 50),
                     0);
  }
  app_bpe_codes all;
  app_bpe_learn_opts o = {.symbols = 80, .min_frequency = 2};
  ck_assert_int_eq(app_bpe_learn(&wc, &o, &all), 0);
  ck_assert_int_eq(all.merges.n, 80);
  app_buf seg = {0}, key = {0}, best = {0};
  app_word_counts pairs = {0};
  for (int64_t k = 0; k < all.merges.n; k++) {
    app_bpe_codes first = {.version = 2};
    for (int64_t i = 0; i < k; i++)
      ck_assert_int_eq(app_tokens_push(&first.merges, app_token(&all.merges, i),
                                       app_token_len(&all.merges, i), false),
                       0);
    app_bpe *b = app_bpe_new(&first, " ");
    ck_assert_loom(b);
    /* count the pairs of the segmented words (separator " " leaves the
     * subwords separated by spaces: "lo w" for lo@@ w) */
    app_word_counts_free(&pairs);
    for (int64_t w = 0; w < wc.words.n; w++) {
      app_buf_clear(&seg);
      ck_assert_int_eq(app_bpe_apply_line(b, app_strtab_str(&wc.words, w),
                                          app_strtab_len(&wc.words, w), false,
                                          &seg),
                       0);
      app_tokens subs = {0};
      ck_assert_int_eq(app_split_space(seg.data, seg.len, &subs, "seg"), 0);
      for (int64_t i = 0; i + 1 < subs.n; i++) {
        app_buf_clear(&key);
        app_buf_append(&key, app_token(&subs, i), app_token_len(&subs, i));
        app_buf_putc(&key, ' ');
        app_buf_append(&key, app_token(&subs, i + 1),
                       app_token_len(&subs, i + 1));
        if (i + 2 == subs.n)
          app_buf_append(&key, "</w>", 4);
        ck_assert_int_eq(
            app_word_counts_add(&pairs, key.data, key.len, wc.count[w]), 0);
      }
      app_tokens_free(&subs);
    }
    int64_t top = -1;
    for (int64_t p = 0; p < pairs.words.n; p++) {
      int c = top < 0 ? 1 : 0;
      if (top >= 0 && pairs.count[p] != pairs.count[top])
        c = pairs.count[p] > pairs.count[top] ? 1 : -1;
      if (top >= 0 && !c) { /* (first, second) in code-point order */
        const char *x = app_strtab_str(&pairs.words, p),
                   *y = app_strtab_str(&pairs.words, top);
        size_t xa = strcspn(x, " "), ya = strcspn(y, " ");
        int a = memcmp(x, y, xa < ya ? xa : ya);
        a = a ? a : (xa > ya) - (xa < ya);
        c = a ? a : strcmp(x + xa + 1, y + ya + 1);
      }
      if (c > 0)
        top = p;
    }
    ck_assert_int_ge(top, 0);
    ck_assert_msg(
        !strcmp(app_strtab_str(&pairs.words, top), app_token(&all.merges, k)),
        "merge %lld is '%s', the most frequent pair '%s'", (long long)k + 1,
        app_token(&all.merges, k), app_strtab_str(&pairs.words, top));
    app_bpe_free(b);
    app_bpe_codes_free(&first);
  }
  app_word_counts_free(&pairs);
  app_word_counts_free(&wc);
  app_buf_free(&seg);
  app_buf_free(&key);
  app_buf_free(&best);
  app_bpe_codes_free(&all);
}
END_TEST

/* Applying then undoing gives each line back, with runs of spaces between
 * words made one (apply_bpe keeps the ends of a line as they are). */
START_TEST(test_bpe_apply_then_undo) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/bpe_codes.txt",
           getenv("LOOM_SOURCE_ROOT"));
  app_bpe_codes c;
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  app_bpe *b = app_bpe_new(&c, NULL);
  snprintf(path, sizeof path, "%s/tests/data/bpe_text.txt",
           getenv("LOOM_SOURCE_ROOT"));
  app_line_reader r;
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, 0), 0);
  app_buf seg = {0}, back = {0}, want = {0};
  const char *line;
  size_t len;
  int lines = 0;
  while (app_line_reader_next(&r, &line, &len, NULL) > 0) {
    app_buf_clear(&seg);
    app_buf_clear(&back);
    ck_assert_int_eq(app_bpe_apply_line(b, line, len, false, &seg), 0);
    ck_assert_int_eq(app_bpe_undo_line(seg.data, seg.len, NULL, &back), 0);
    size_t lead = 0, end = len;
    while (lead < len && line[lead] == ' ')
      lead++;
    while (end > lead && line[end - 1] == ' ')
      end--;
    app_buf_clear(&want);
    app_buf_append(&want, line, lead);
    for (size_t i = lead; i < end; i++)
      if (line[i] != ' ' || line[i - 1] != ' ')
        app_buf_putc(&want, line[i]);
    if (end > lead) /* a line of spaces comes back as it was */
      app_buf_append(&want, line + end, len - end);
    ck_assert_str_eq(back.data, want.data);
    lines++;
  }
  ck_assert_int_gt(lines, 50);
  app_line_reader_close(&r);
  app_buf_free(&seg);
  app_buf_free(&back);
  app_buf_free(&want);
  app_bpe_free(b);
  app_bpe_codes_free(&c);
}
END_TEST

START_TEST(test_bpe_undo_rule) {
  /* sed -r 's/(@@ )|(@@ ?$)//g' */
  static const char *cases[][2] = {
      {"lo@@ west ne@@ wer", "lowest newer"},
      {"end@@", "end"},
      {"end@@ ", "end"},
      {"a@@ @@ b", "ab"},
      {"@@@@ x", "@@x"},
      {"a @@b", "a @@b"},
      {"x@@\r", "x@@\r"}, /* $ is the end of the line, not before "\r" */
      {"", ""},
  };
  app_buf out = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    app_buf_clear(&out);
    ck_assert_int_eq(
        app_bpe_undo_line(cases[i][0], strlen(cases[i][0]), NULL, &out), 0);
    ck_assert_str_eq(out.data, cases[i][1]);
  }
  app_buf_clear(&out);
  ck_assert_int_eq(app_bpe_undo_line("a++ b++", 7, "++", &out), 0);
  ck_assert_str_eq(out.data, "ab");
  app_buf_free(&out);
}
END_TEST

/* Writes text to the suite's file name; its path in path. */
static void put_file(const char *name, const char *text, char *path, size_t n) {
  test_path(path, n, name);
  test_write_file(path, text, strlen(text));
}

static void codes_error(const char *text, int64_t merges, const char *want) {
  char path[512], msg[1024];
  put_file("bad.codes", text, path, sizeof path);
  app_bpe_codes c;
  ck_assert_int_eq(app_bpe_codes_read(&c, path, merges), -1);
  snprintf(msg, sizeof msg, "%s:%s", path, want);
  ck_assert_str_eq(loom_last_error(), msg);
  ck_assert_int_eq(c.merges.n, 0);
  loom_clear_error();
  ck_assert_int_eq(app_bpe_codes_parse(&c, text, strlen(text), "kept", merges),
                   -1);
  snprintf(msg, sizeof msg, "kept:%s", want);
  ck_assert_str_eq(loom_last_error(), msg);
  ck_assert_int_eq(c.merges.n, 0);
  loom_clear_error();
}

START_TEST(test_bpe_codes_errors) {
  codes_error("#version: 0.3\na b\n", -1,
              "1: version '#version: 0.3' is not "
              "0.1 or 0.2");
  codes_error("#version: 0.2 byte\na b\n", -1,
              "1: byte-level BPE codes are not supported");
  codes_error("#version: 0.2\na b\nab\n", -1,
              "3: a merge must be two symbols separated by one space");
  codes_error("#version: 0.2\na b c\n", -1,
              "2: a merge must be two symbols separated by one space");
  codes_error("#version: 0.2\na  b\n", -1,
              "2: a merge must be two symbols separated by one space");
  codes_error("#version: 0.2\na b\n\nc d\n", -1, "3: an empty line");
  codes_error("#version: 0.2\na b\n \n", -1,
              "3: a merge must be two symbols separated by one space");
  codes_error("#version: 0.2\na b\nc \xC3(\n", -1,
              " invalid UTF-8 at byte 20 (line 3, byte 3 of the line)");
  /* a line over 1 MiB */
  size_t big = ((size_t)1 << 20) + 10;
  char *huge = malloc(big + 40);
  strcpy(huge, "#version: 0.2\n");
  memset(huge + 14, 'a', big);
  strcpy(huge + 14 + big, " b\n");
  codes_error(huge, -1, "2: line longer than 1048576 bytes (at byte 14)");
  free(huge);

  /* fine: trailing empty lines, "\r\n" ends, bad lines past -m, no
   * version line (0.1), no merges at all */
  char path[512];
  app_bpe_codes c;
  put_file("ok.codes", "#version: 0.2\r\na b\r\nc d\n\n\n", path, sizeof path);
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  ck_assert_int_eq(c.merges.n, 2);
  ck_assert_str_eq(app_token(&c.merges, 1), "c d");
  app_bpe_codes_free(&c);
  put_file("ok.codes", "#version: 0.2\na b\nbad\n\nx y\n", path, sizeof path);
  ck_assert_int_eq(app_bpe_codes_read(&c, path, 1), 0);
  ck_assert_int_eq(c.merges.n, 1);
  app_bpe_codes_free(&c);
  put_file("ok.codes", "#version: 0.1\na b\n", path, sizeof path);
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  ck_assert_int_eq(c.version, 1);
  app_bpe_codes_free(&c);
  put_file("ok.codes", "#version: 0.2.0\n", path, sizeof path);
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  ck_assert_int_eq(c.version, 2);
  ck_assert_int_eq(c.merges.n, 0);
  app_bpe_codes_free(&c);
  put_file("ok.codes", "e r</w>\n", path, sizeof path);
  ck_assert_int_eq(app_bpe_codes_read(&c, path, -1), 0);
  ck_assert_int_eq(c.version, 1);
  ck_assert_int_eq(c.merges.n, 1);
  app_bpe_codes_free(&c);
}
END_TEST

static void counts_error(const char *text, const char *want) {
  char path[512], msg[1024];
  put_file("bad.vocab", text, path, sizeof path);
  app_word_counts wc = {0};
  ck_assert_int_eq(app_word_counts_read(&wc, path, 0), -1);
  snprintf(msg, sizeof msg, "%s:%s", path, want);
  ck_assert_str_eq(loom_last_error(), msg);
  loom_clear_error();
  app_word_counts_free(&wc);
}

START_TEST(test_word_counts) {
  counts_error("the 5\nword\n",
               "2: expected a word and a count separated by one space");
  counts_error("a b 5\n",
               "1: expected a word and a count separated by one space");
  counts_error("a -1\n", "1: the count is not a whole number in 0..2^62");
  counts_error("a 12x\n", "1: the count is not a whole number in 0..2^62");
  counts_error("a 99999999999999999999\n",
               "1: the count is not a whole number in 0..2^62");
  counts_error("a 4611686018427387904\na 1\n", "2: counts add up beyond 2^62");
  char path[512];
  put_file("ok.vocab", "the 5\r\nman 2\nthe 3\n  dog 1  \n", path, sizeof path);
  app_word_counts wc = {0};
  ck_assert_int_eq(app_word_counts_read(&wc, path, 0), 0);
  ck_assert_int_eq(wc.words.n, 3);
  ck_assert_int_eq(wc.count[0], 8);
  ck_assert_str_eq(app_strtab_str(&wc.words, 2), "dog");
  app_word_counts_free(&wc);
  ck_assert_int_eq(app_word_counts_read(&wc, path, 3), 0); /* threshold */
  ck_assert_int_eq(wc.words.n, 1);
  app_word_counts_free(&wc);
  /* counting text: split at single spaces, a tab is part of a word */
  ck_assert_int_eq(app_word_counts_add_line(&wc, " a  b\tc a\r", 10), 0);
  ck_assert_int_eq(wc.words.n, 2);
  ck_assert_int_eq(wc.count[0], 2);
  ck_assert_str_eq(app_strtab_str(&wc.words, 1), "b\tc");
  app_word_counts_free(&wc);
}
END_TEST

/* ------------------------------------------------------- vocabularies */

static void vocab_error(const char *text, const char *want) {
  char path[512], msg[1024];
  put_file("bad.vocab", text, path, sizeof path);
  app_vocab v;
  ck_assert_int_eq(app_vocab_load(&v, path), -1);
  snprintf(msg, sizeof msg, "%s%s", path, want);
  ck_assert_str_eq(loom_last_error(), msg);
  ck_assert_int_eq(app_vocab_size(&v), 0);
  loom_clear_error();
  /* the same from memory (a vocabulary inside a checkpoint) */
  ck_assert_int_eq(app_vocab_parse(&v, text, strlen(text), "kept"), -1);
  snprintf(msg, sizeof msg, "kept%s", want);
  ck_assert_str_eq(loom_last_error(), msg);
  ck_assert_int_eq(app_vocab_size(&v), 0);
  loom_clear_error();
}

START_TEST(test_vocab) {
  app_word_counts wc = {0};
  app_tokens toks = {0};
  const char *lines[] = {"Zwei junge Männer, zwei Hunde.",
                         "Ein Mann und zwei Hunde <unk> spielen."};
  for (int l = 0; l < 2; l++) {
    app_tokens_clear(&toks);
    ck_assert_int_eq(
        app_tokenize_lower(lines[l], strlen(lines[l]), &toks, "line"), 0);
    for (int64_t i = 0; i < toks.n; i++)
      ck_assert_int_eq(app_word_counts_add(&wc, app_token(&toks, i),
                                           app_token_len(&toks, i), 1),
                       0);
  }
  app_vocab v;
  ck_assert_int_eq(app_vocab_build(&v, &wc, 2), 0);
  /* the baseline's sorted(w for w, n in counts.items() if n >= 2) */
  const char *want[] = {"<pad>", "<bos>", "<eos>", "<unk>",
                        ".",     "hunde", "zwei"};
  ck_assert_int_eq(app_vocab_size(&v), 7);
  for (int i = 0; i < 7; i++)
    ck_assert_str_eq(app_vocab_token(&v, i), want[i]);
  ck_assert_int_eq(app_vocab_id(&v, "zwei", 4), 6);
  ck_assert_int_eq(app_vocab_id(&v, "männer", 7), APP_UNK);
  ck_assert_int_eq(app_vocab_id(&v, "<eos>", 5), APP_EOS);
  char path[512];
  test_path(path, sizeof path, "model.vocab");
  ck_assert_int_eq(app_vocab_save(&v, path), 0);
  app_vocab back;
  ck_assert_int_eq(app_vocab_load(&back, path), 0);
  ck_assert_int_eq(app_vocab_size(&back), 7);
  for (int i = 0; i < 7; i++)
    ck_assert_str_eq(app_vocab_token(&back, i), want[i]);
  app_vocab_free(&back);
  size_t len;
  char *bytes = test_slurp(path, &len);
  ck_assert_int_eq(app_vocab_parse(&back, bytes, len, "kept"), 0);
  ck_assert_int_eq(app_vocab_size(&back), 7);
  ck_assert_str_eq(app_vocab_token(&back, 6), "zwei");
  app_vocab_free(&back);
  free(bytes);
  app_vocab_free(&v);
  ck_assert_int_eq(app_vocab_build(&v, &wc, 0), -1);
  loom_clear_error();
  app_word_counts_free(&wc);
  app_tokens_free(&toks);

  vocab_error("", ": 0 lines, but a vocabulary starts with <pad>, <bos>, "
                  "<eos>, <unk>");
  vocab_error("<pad>\n<bos>\n<unk>\n<eos>\n",
              ":3: the first four lines must be <pad>, <bos>, <eos>, <unk>");
  vocab_error("<pad>\n<bos>\n<eos>\n<unk>\nHaus\nMaus\nHaus\n",
              ":7: 'Haus' repeats line 5");
  vocab_error("<pad>\n<bos>\n<eos>\n<unk>\na\n\nb\n", ":6: an empty line");
  vocab_error("<pad>\r\n<bos>\r\n",
              ":1: the first four lines must be <pad>, <bos>, <eos>, <unk>");
  vocab_error("<pad>\n<bos>\n<eos>\n<unk>\nx\r\n",
              ":5: a carriage return (a file with \\r\\n line ends?)");
  vocab_error("<pad>\n<bos>\n<eos>\n<unk>\nM\xC3\xA4nner\nM\xC3nner\n",
              ": invalid UTF-8 at byte 33 (line 6, byte 2 of the line)");
}
END_TEST

/* ------------------------------------------------------------- lines */

START_TEST(test_line_reader) {
  char path[512];
  test_path(path, sizeof path, "lines.txt");
  static const char text[] = "one\r\ntwo\rthree\n\nfour";
  test_write_file(path, text, sizeof text - 1);
  for (int universal = 0; universal < 2; universal++) {
    app_line_reader r;
    ck_assert_int_eq(
        app_line_reader_open(&r, path,
                             universal ? APP_LINES_UNIVERSAL : APP_LINES_LF, 0),
        0);
    const char *want_u[] = {"one", "two", "three", "", "four"};
    const char *want_n[] = {"one\r", "two\rthree", "", "four"};
    const char **want = universal ? want_u : want_n;
    int n = universal ? 5 : 4;
    const char *line;
    size_t len;
    bool ended;
    for (int i = 0; i < n; i++) {
      ck_assert_int_eq(app_line_reader_next(&r, &line, &len, &ended), 1);
      ck_assert_str_eq(line, want[i]);
      ck_assert_uint_eq(len, strlen(want[i]));
      ck_assert_int_eq(ended, i < n - 1);
      ck_assert_int_eq(r.line_no, i + 1);
    }
    ck_assert_int_eq(app_line_reader_next(&r, &line, &len, &ended), 0);
    ck_assert_int_eq(r.next, (int64_t)sizeof text - 1);
    app_line_reader_close(&r);
  }

  /* Python's str.splitlines: every break ends a line and stays in it */
  static const char py[] = "a\vb c\r\n\xE2\x80\xA8x\x1E\xC2\x85\rend";
  test_write_file(path, py, sizeof py - 1);
  const char *want_py[] = {"a\v",      "b c\r\n", "\xE2\x80\xA8", "x\x1E",
                           "\xC2\x85", "\r",      "end"};
  const int64_t at_py[] = {0, 2, 7, 10, 12, 14, 15};
  app_line_reader pr;
  ck_assert_int_eq(app_line_reader_open(&pr, path, APP_LINES_SPLITLINES, 0), 0);
  for (int i = 0; i < 7; i++) {
    const char *line;
    size_t len;
    bool ended;
    ck_assert_int_eq(app_line_reader_next(&pr, &line, &len, &ended), 1);
    ck_assert_uint_eq(len, strlen(want_py[i]));
    ck_assert(!memcmp(line, want_py[i], len));
    ck_assert_int_eq(ended, i < 6);
    ck_assert_int_eq(pr.line_no, i + 1);
    ck_assert_int_eq(pr.offset, at_py[i]);
  }
  ck_assert_int_eq(app_line_reader_next(&pr, NULL, NULL, NULL), 0);
  app_line_reader_close(&pr);

  /* invalid UTF-8: the message names the file, byte and line */
  static const char bad[] = "fine\nalso fine\nbad \xC3( here\n";
  test_write_file(path, bad, sizeof bad - 1);
  app_line_reader r;
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, 0), 0);
  const char *line;
  size_t len;
  ck_assert_int_eq(app_line_reader_next(&r, &line, &len, NULL), 1);
  ck_assert_int_eq(app_line_reader_next(&r, &line, &len, NULL), 1);
  ck_assert_int_eq(app_line_reader_next(&r, &line, &len, NULL), -1);
  char want[600];
  snprintf(want, sizeof want,
           "%s: invalid UTF-8 at byte 19 (line 3, byte 5 of the line)", path);
  ck_assert_str_eq(loom_last_error(), want);
  loom_clear_error();
  app_line_reader_close(&r);

  /* a line over the limit */
  ck_assert_int_eq(app_line_reader_open(&r, path, APP_LINES_UNIVERSAL, 8), 0);
  ck_assert_int_eq(app_line_reader_next(&r, &line, &len, NULL), 1);
  ck_assert_int_eq(app_line_reader_next(&r, &line, &len, NULL), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), ":2: line longer than 8"));
  loom_clear_error();
  app_line_reader_close(&r);

  ck_assert_int_eq(
      app_line_reader_open(&r, "/nonexistent/x", APP_LINES_UNIVERSAL, 0), -1);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "/nonexistent/x: "));
  loom_clear_error();
}
END_TEST

int main(void) {
  if (test_dir_make("text"))
    return EXIT_FAILURE;
  Suite *s = suite_create("text");
  TCase *tc = tcase_create("text");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_buf_add_string);
  tcase_add_test(tc, test_utf8_validation);
  tcase_add_test(tc, test_utf8_round_trip);
  tcase_add_test(tc, test_unicode_matches_python);
  tcase_add_test(tc, test_lower_cases);
  tcase_add_test(tc, test_tokenize_matches_python);
  tcase_add_test(tc, test_detokenize_inverts_tokenize);
  tcase_add_test(tc, test_tokenize_errors);
  tcase_add_test(tc, test_scores_match_sacrebleu_and_nltk);
  tcase_add_test(tc, test_13a_by_hand);
  tcase_add_test(tc, test_bleu_smoothing_by_hand);
  tcase_add_test(tc, test_score_errors);
  tcase_add_test(tc, test_mbr_matches_nltk);
  tcase_add_test(tc, test_mbr_by_hand);
  tcase_add_test(tc, test_bpe_learn_by_hand);
  tcase_add_test(tc, test_bpe_learn_matches_subword_nmt);
  tcase_add_test(tc, test_bpe_apply_matches_subword_nmt);
  tcase_add_test(tc, test_bpe_merges_are_greedy_on_training_words);
  tcase_add_test(tc, test_bpe_apply_then_undo);
  tcase_add_test(tc, test_bpe_undo_rule);
  tcase_add_test(tc, test_bpe_codes_errors);
  tcase_add_test(tc, test_word_counts);
  tcase_add_test(tc, test_vocab);
  tcase_add_test(tc, test_line_reader);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
