/* apps/word2vec's logic, linked from the app's sources (no binary, no data
 * files, small sizes so it stays fast under valgrind): the tokenizer, the
 * vocabulary (counts, min-count, sorting, its file), Huffman codes, the
 * negative-sampling table, subsampling, both vector formats, the fused
 * kernel against the autograd step, and the evaluation arithmetic. */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include "../apps/word2vec/word2vec.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int64_t find(const w2v_vocab *v, const char *w) {
  return w2v_vocab_find(v, w, strlen(w));
}

/* ------------------------------------------------ tokenizer */

START_TEST(test_tokens) {
  const char text[] = "a  bb\tc\r\n\nd\r e";
  w2v_reader *r = w2v_reader_memory(text, sizeof text - 1, "t");
  const char *expect[] = {"a", "bb", "c", "</s>", "</s>", "d", "e"};
  for (int i = 0; i < 7; i++) {
    const char *w;
    size_t len;
    w2v_token t = w2v_reader_next(r, &w, &len);
    if (!strcmp(expect[i], "</s>"))
      ck_assert_int_eq(t, W2V_TOKEN_EOS);
    else {
      ck_assert_int_eq(t, W2V_TOKEN_WORD);
      ck_assert_str_eq(w, expect[i]);
      ck_assert_uint_eq(len, strlen(expect[i]));
    }
  }
  const char *w;
  size_t len;
  ck_assert_int_eq(w2v_reader_next(r, &w, &len), W2V_TOKEN_END);
  w2v_reader_close(r);
}
END_TEST

START_TEST(test_long_words_cut_on_characters) {
  /* 99 ASCII bytes then a 2-byte character: 101 bytes, cut to 99 */
  char text[256];
  memset(text, 'x', 99);
  memcpy(text + 99, "\xc3\xa9 ok", 5);
  w2v_reader *r = w2v_reader_memory(text, 104, "t");
  const char *w;
  size_t len;
  ck_assert_int_eq(w2v_reader_next(r, &w, &len), W2V_TOKEN_WORD);
  ck_assert_uint_eq(len, 99);
  ck_assert(w2v_utf8_valid(w, len));
  ck_assert_int_eq(w2v_reader_next(r, &w, &len), W2V_TOKEN_WORD);
  ck_assert_str_eq(w, "ok");
  w2v_reader_close(r);
  /* a plain long word keeps exactly W2V_MAX_WORD bytes */
  memset(text, 'y', 250);
  r = w2v_reader_memory(text, 250, "t");
  ck_assert_int_eq(w2v_reader_next(r, &w, &len), W2V_TOKEN_WORD);
  ck_assert_uint_eq(len, W2V_MAX_WORD);
  w2v_reader_close(r);
}
END_TEST

START_TEST(test_utf8) {
  ck_assert(w2v_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
  ck_assert(!w2v_utf8_valid("\xc0\xaf", 2));         /* overlong */
  ck_assert(!w2v_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  ck_assert(!w2v_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert(!w2v_utf8_valid("\xe2\x82", 2));         /* cut short */
  ck_assert(!w2v_utf8_valid("\xff", 1));
  ck_assert_uint_eq(w2v_utf8_truncate("ab\xe2\x82\xac", 5, 3), 2);
  ck_assert_uint_eq(w2v_utf8_truncate("ab\xe2\x82\xac", 5, 5), 5);
  /* the reader names the byte offset and line */
  const char bad[] = "good words\nthen \xe9t\xe9 here";
  w2v_reader *r = w2v_reader_memory(bad, sizeof bad - 1, "bad.txt");
  const char *w;
  size_t len;
  w2v_token t;
  while ((t = w2v_reader_next(r, &w, &len)) == W2V_TOKEN_WORD ||
         t == W2V_TOKEN_EOS)
    ;
  ck_assert_int_eq(t, W2V_TOKEN_ERROR);
  ck_assert_msg(strstr(loom_last_error(), "byte offset 16") &&
                    strstr(loom_last_error(), "line 2") &&
                    strstr(loom_last_error(), "bad.txt"),
                "%s", loom_last_error());
  loom_clear_error();
  w2v_reader_close(r);
}
END_TEST

/* ------------------------------------------------ vocabulary */

START_TEST(test_vocab_counts_sorting_min_count) {
  const char text[] = "b a c a b d a\ne e c b\nz";
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_corpus c;
  ck_assert_int_eq(
      w2v_corpus_from_memory(&c, &v, text, sizeof text - 1, true, 2), 0);
  /* a 3, b 3 (ties: first seen first), c 2, e 2; d and z dropped;
   * </s> first whatever its count */
  const char *order[] = {"</s>", "b", "a", "c", "e"};
  const int64_t counts[] = {2, 3, 3, 2, 2};
  ck_assert_int_eq(v.size, 5);
  for (int i = 0; i < 5; i++) {
    ck_assert_str_eq(w2v_vocab_word(&v, i), order[i]);
    ck_assert_int_eq(v.entries[i].count, counts[i]);
    ck_assert_int_eq(find(&v, order[i]), i);
  }
  ck_assert_int_eq(find(&v, "d"), -1);
  ck_assert_int_eq(v.train_words, 12);
  /* the text as ids: rare words left out, newlines as 0 */
  const int32_t ids[] = {1, 2, 3, 2, 1, 2, 0, 4, 4, 3, 1, 0};
  ck_assert_int_eq(c.len, 12);
  for (int i = 0; i < 12; i++)
    ck_assert_int_eq(c.ids[i], ids[i]);
  w2v_corpus_free(&c);
  w2v_vocab_free(&v);
}
END_TEST

START_TEST(test_vocab_file_round_trip) {
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_corpus c;
  const char text[] = "x y y z z z\nq\n";
  ck_assert_int_eq(
      w2v_corpus_from_memory(&c, &v, text, sizeof text - 1, true, 1), 0);
  char path[512];
  test_path(path, sizeof path, "vocab.txt");
  ck_assert_int_eq(w2v_vocab_save(&v, path), 0);
  size_t len;
  FILE *f = fopen(path, "rb");
  char buf[256];
  len = fread(buf, 1, sizeof buf - 1, f);
  buf[len] = 0;
  fclose(f);
  ck_assert_str_eq(buf, "</s> 2\nz 3\ny 2\nx 1\nq 1\n");
  w2v_vocab r;
  w2v_vocab_init(&r);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 2), 0);
  ck_assert_int_eq(r.size, 3); /* min-count applies to a read vocabulary */
  ck_assert_str_eq(w2v_vocab_word(&r, 1), "z");
  ck_assert_int_eq(r.train_words, 7);
  w2v_vocab_free(&r);
  /* malformed files are refused with the line */
  test_write_file(path, "a 1\nb two\n", 10);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 2"), "%s", loom_last_error());
  loom_clear_error();
  test_write_file(path, "a 1\na 2\n", 8);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "twice"), "%s", loom_last_error());
  loom_clear_error();
  /* a NUL byte is refused where it is, not taken for the end of the line
   * (a line starting with one had been skipped as blank) */
  test_write_file(path, "a 1\n\0b 2\nc 3\n", 13);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 2 (byte 4): a NUL byte"), "%s",
                loom_last_error());
  loom_clear_error();
  test_write_file(path, "a 1\0 b\n", 7);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 1 (byte 3): a NUL byte"), "%s",
                loom_last_error());
  loom_clear_error();
  /* endless NUL bytes (/dev/zero) end as a line too long */
  ck_assert_int_eq(w2v_vocab_read(&r, "/dev/zero", 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "too long"), "%s", loom_last_error());
  loom_clear_error();
  /* counts whose sum would overflow (found by fuzzing) */
  const char huge[] = "a 9223372036854775807\nb 5\n";
  test_write_file(path, huge, sizeof huge - 1);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 1 (byte 0): count"), "%s",
                loom_last_error());
  loom_clear_error();
  const char big[] = "a 4611686018427387000\nb 5000\n";
  test_write_file(path, big, sizeof big - 1);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 2 (byte 22): count 5000"), "%s",
                loom_last_error());
  loom_clear_error();
  w2v_vocab_free(&r);
  /* another tool's file with "</s>" elsewhere, or without it: it becomes
   * word 0, since training ends sentences at word 0 */
  test_write_file(path, "the 5\n</s> 3\ncat 2\n", 19);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), 0);
  ck_assert_str_eq(w2v_vocab_word(&r, 0), "</s>");
  ck_assert_int_eq(r.entries[0].count, 3);
  ck_assert_str_eq(w2v_vocab_word(&r, 1), "the");
  w2v_vocab_free(&r);
  test_write_file(path, "the 5\ncat 2\n", 12);
  ck_assert_int_eq(w2v_vocab_read(&r, path, 1), 0);
  ck_assert_int_eq(r.size, 3);
  ck_assert_str_eq(w2v_vocab_word(&r, 0), "</s>");
  ck_assert_str_eq(w2v_vocab_word(&r, 2), "cat");
  w2v_vocab_free(&r);
  /* the text encoded with a given vocabulary: unknown words dropped */
  w2v_vocab_free(&v);
  w2v_corpus_free(&c);
  test_write_file(path, "</s> 1\nz 3\nx 1\n", 15);
  ck_assert_int_eq(w2v_vocab_read(&v, path, 1), 0);
  const char text2[] = "x q z\n";
  ck_assert_int_eq(
      w2v_corpus_from_memory(&c, &v, text2, sizeof text2 - 1, false, 1), 0);
  ck_assert_int_eq(c.len, 3);
  ck_assert_int_eq(c.ids[0], 2);
  ck_assert_int_eq(c.ids[1], 1);
  ck_assert_int_eq(c.ids[2], 0);
  w2v_corpus_free(&c);
  w2v_vocab_free(&v);
}
END_TEST

START_TEST(test_corpus_errors) {
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_corpus c;
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, "", 0, true, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "no words"), "%s", loom_last_error());
  loom_clear_error();
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, "\n\n \n", 4, true, 1), -1);
  loom_clear_error();
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, "a b c a", 7, true, 3), -1);
  ck_assert_msg(strstr(loom_last_error(), "min-count 3"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, "a \x80", 3, true, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "byte offset 2"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, "a\0b", 3, true, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "NUL"), "%s", loom_last_error());
  loom_clear_error();
  char path[512];
  test_path(path, sizeof path, "missing.txt");
  ck_assert_int_eq(w2v_corpus_read(&c, &v, path, true, 1), -1);
  ck_assert_msg(strstr(loom_last_error(), "missing.txt"), "%s",
                loom_last_error());
  loom_clear_error();
  w2v_vocab_free(&v);
}
END_TEST

/* ------------------------------------------------ Huffman codes */

/* The cost sum(count * length) of an optimal code, by the textbook
 * quadratic algorithm (merge the two smallest each time). */
static int64_t optimal_cost(const int64_t *counts, int n) {
  int64_t w[64], cost = 0;
  for (int i = 0; i < n; i++)
    w[i] = counts[i];
  for (int m = n; m > 1; m--) {
    for (int k = 0; k < 2; k++) { /* move the smallest two to the end */
      int lo = 0;
      for (int i = 1; i < m - k; i++)
        if (w[i] < w[lo])
          lo = i;
      int64_t t = w[lo];
      w[lo] = w[m - k - 1];
      w[m - k - 1] = t;
    }
    w[m - 2] += w[m - 1];
    cost += w[m - 2];
  }
  return cost;
}

START_TEST(test_huffman_codes) {
  const int64_t counts[] = {40, 100, 60, 30, 30, 20, 9, 5, 5, 3, 1, 1};
  int n = 12;
  w2v_tree t;
  ck_assert_int_eq(w2v_tree_build(&t, counts, n), 0);
  double kraft = 0;
  int64_t cost = 0;
  for (int w = 0; w < n; w++) {
    int64_t len = t.offset[w + 1] - t.offset[w];
    ck_assert_int_gt(len, 0);
    ck_assert_int_le(len, t.max_len);
    kraft += ldexp(1, -(int)len);
    cost += counts[w] * len;
    /* every path starts at the root, row n - 2, and stays in range */
    ck_assert_int_eq(t.point[t.offset[w]], n - 2);
    for (int64_t d = t.offset[w]; d < t.offset[w + 1]; d++) {
      ck_assert_int_ge(t.point[d], 0);
      ck_assert_int_lt(t.point[d], n - 1);
      ck_assert_uint_le(t.code[d], 1);
    }
    /* a more frequent word never has a longer code */
    for (int u = 0; u < n; u++)
      if (counts[u] > counts[w])
        ck_assert_int_le(t.offset[u + 1] - t.offset[u], len);
  }
  ck_assert_double_eq_tol(kraft, 1.0, 1e-12); /* a full binary tree */
  ck_assert_int_eq(cost, optimal_cost(counts, n));
  /* prefix-free: no code is a prefix of another */
  for (int a = 0; a < n; a++)
    for (int b = 0; b < n; b++) {
      int64_t la = t.offset[a + 1] - t.offset[a];
      int64_t lb = t.offset[b + 1] - t.offset[b];
      if (a == b || la > lb)
        continue;
      ck_assert_msg(
          memcmp(t.code + t.offset[a], t.code + t.offset[b], (size_t)la) != 0,
          "code of %d is a prefix of %d's", a, b);
    }
  /* equal codes along a shared prefix pass the same inner nodes */
  w2v_tree_free(&t);
  const int64_t one[] = {7};
  ck_assert_int_eq(w2v_tree_build(&t, one, 1), 0);
  ck_assert_int_eq(t.offset[1], 0);
  w2v_tree_free(&t);
}
END_TEST

/* ------------------------------------------------ sampling */

START_TEST(test_unigram_table) {
  const int64_t counts[] = {50, 1000, 300, 300, 7, 1, 0, 120};
  int n = 8;
  w2v_unigram u;
  ck_assert_int_eq(w2v_unigram_build(&u, counts, n, 0.75), 0);
  double z = 0;
  for (int i = 0; i < n; i++)
    z += pow((double)counts[i], 0.75);
  double total = 0;
  for (int i = 0; i < n; i++) {
    double want = pow((double)counts[i], 0.75) / z;
    double got = w2v_unigram_probability(&u, i);
    ck_assert_msg(fabs(got - want) < 1e-6, "word %d: %g, want %g", i, got,
                  want);
    total += got;
  }
  ck_assert_double_eq_tol(total, 1.0, 1e-9);
  /* and draws follow it */
  int64_t seen[8] = {0};
  uint64_t s = w2v_rand_seed(3, 0);
  int draws = 200000;
  for (int k = 0; k < draws; k++)
    seen[w2v_unigram_draw(&u, w2v_rand(&s))]++;
  ck_assert_int_eq(seen[6], 0);
  for (int i = 0; i < n; i++) {
    double p = w2v_unigram_probability(&u, i);
    double sd = sqrt(draws * p * (1 - p));
    ck_assert_msg(fabs((double)seen[i] - draws * p) <= 5 * sd + 1,
                  "word %d drawn %lld times, expected %.0f", i,
                  (long long)seen[i], draws * p);
  }
  w2v_unigram_free(&u);
}
END_TEST

START_TEST(test_subsampling) {
  /* (sqrt(c / (s T)) + 1) (s T) / c with s T = 100 */
  int64_t T = 100000;
  double s = 1e-3;
  ck_assert_double_eq_tol(w2v_keep_probability(400, s, T),
                          (sqrt(4.0) + 1) * 100 / 400, 1e-12);
  ck_assert_double_eq_tol(w2v_keep_probability(10000, s, T),
                          (sqrt(100.0) + 1) * 100 / 10000, 1e-12);
  ck_assert_double_eq(w2v_keep_probability(100, s, T), 1); /* capped */
  ck_assert_double_eq(w2v_keep_probability(10000, 0, T), 1);
  /* frequent words are kept less often */
  ck_assert(w2v_keep_probability(20000, s, T) <
            w2v_keep_probability(5000, s, T));
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_vocab_add(&v, "a", 1);
  w2v_vocab_add(&v, "b", 1);
  v.entries[0].count = 99000;
  v.entries[1].count = 90; /* sT = 100: kept every time */
  v.train_words = T;
  uint64_t *keep = w2v_keep_thresholds(&v, s);
  ck_assert_ptr_nonnull(keep);
  double p = w2v_keep_probability(99000, s, T);
  ck_assert_double_eq_tol((double)keep[0] / 4294967296.0, p, 1e-9);
  ck_assert_uint_eq(keep[1], (uint64_t)1 << 32);
  free(keep);
  w2v_vocab_free(&v);
}
END_TEST

/* ------------------------------------------------ file formats */

static void small_vocab(w2v_vocab *v, int n) {
  w2v_vocab_init(v);
  const char *words[] = {"</s>", "the", "caf\xc3\xa9", "a", "x-y", "dog"};
  for (int i = 0; i < n; i++) {
    w2v_vocab_add(v, words[i], strlen(words[i]));
    v->entries[i].count = 10 - i;
  }
}

START_TEST(test_formats_round_trip) {
  w2v_vocab v;
  small_vocab(&v, 6);
  const float vals[] = {0.5f,        -0.25f, 1e-7f,      -3e-7f,
                        123.456789f, -0.0f,  0.1234565f, 2.5e-6f};
  loom_tensor *m = loom_empty(LOOM_F32, LOOM_SHAPE(6, 4));
  float *d = loom_data_f32(m);
  for (int i = 0; i < 24; i++)
    d[i] = vals[i % 8] * (float)(1 + i / 8);
  char text[512], bin[512];
  test_path(text, sizeof text, "v.txt");
  test_path(bin, sizeof bin, "v.bin");
  ck_assert_int_eq(w2v_save_vectors(text, &v, m, false), 0);
  ck_assert_int_eq(w2v_save_vectors(bin, &v, m, true), 0);
  /* the text is exactly what "%f " prints, with the header and words */
  char want[4096];
  int k = snprintf(want, sizeof want, "6 4\n");
  for (int i = 0; i < 6; i++) {
    k += snprintf(want + k, sizeof want - (size_t)k, "%s ",
                  w2v_vocab_word(&v, i));
    for (int j = 0; j < 4; j++)
      k += snprintf(want + k, sizeof want - (size_t)k, "%f ",
                    (double)d[i * 4 + j]);
    k += snprintf(want + k, sizeof want - (size_t)k, "\n");
  }
  char got[4096];
  FILE *f = fopen(text, "rb");
  size_t len = fread(got, 1, sizeof got - 1, f);
  fclose(f);
  got[len] = 0;
  ck_assert_str_eq(got, want);
  /* binary: header, then word, space, raw floats, newline */
  f = fopen(bin, "rb");
  len = fread(got, 1, sizeof got, f);
  fclose(f);
  ck_assert_uint_eq(len, 4 + 6 * (4 * 4 + 2) + 4 + 3 + 5 + 1 + 3 + 3);
  ck_assert(memcmp(got, "6 4\n</s> ", 9) == 0);
  ck_assert(memcmp(got + 9, d, 16) == 0);
  ck_assert_int_eq(got[25], '\n');
  /* both read back; detected or forced; text within its six decimals */
  for (int mode = -1; mode <= 1; mode++) {
    w2v_vectors tv, bv;
    ck_assert_int_eq(w2v_load_vectors(&tv, text, mode < 0 ? -1 : 0, 0), 0);
    ck_assert_int_eq(w2v_load_vectors(&bv, bin, mode < 0 ? -1 : 1, 0), 0);
    ck_assert_int_eq(tv.n, 6);
    ck_assert_int_eq(bv.dim, 4);
    for (int i = 0; i < 6; i++) {
      ck_assert_str_eq(tv.words[i], w2v_vocab_word(&v, i));
      ck_assert_str_eq(bv.words[i], w2v_vocab_word(&v, i));
    }
    ck_assert(loom_equal(bv.vectors, m));
    ck_assert(loom_allclose(tv.vectors, m, 0, 5.1e-7 * 4));
    ck_assert(loom_allclose(tv.vectors, bv.vectors, 0, 5.1e-7 * 4));
    w2v_vectors_free(&tv);
    w2v_vectors_free(&bv);
  }
  /* a limit reads only the first words */
  w2v_vectors lv;
  ck_assert_int_eq(w2v_load_vectors(&lv, bin, -1, 2), 0);
  ck_assert_int_eq(lv.n, 2);
  w2v_vectors_free(&lv);
  w2v_vocab_free(&v);
}
END_TEST

START_TEST(test_formats_damage) {
  char path[512];
  test_path(path, sizeof path, "bad.vec");
  w2v_vectors w;
  const char *cases[] = {
      "",                              /* no header */
      "2 3\nfoo 1 2 3\n",              /* one vector missing */
      "1 3\nfoo 1 2\n",                /* too few numbers */
      "1 2\nfoo 1 2 3\n",              /* too many */
      "1 2\nfoo 1 zz\n",               /* not a number */
      "1000000000 1000000\nfoo 1 2\n", /* absurd sizes */
      "-1 3\n",                        /* negative */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    test_write_file(path, cases[i], strlen(cases[i]));
    ck_assert_msg(w2v_load_vectors(&w, path, -1, 0) == -1, "case %zu", i);
    ck_assert_msg(strstr(loom_last_error(), "bad.vec"), "%s",
                  loom_last_error());
    loom_clear_error();
  }
  /* binary cut inside the vector */
  char bin[64] = "2 2\nab ";
  memset(bin + 7, 0x11, 8);
  memcpy(bin + 15, "\ncd \x01\x02", 6);
  test_write_file(path, bin, 21);
  ck_assert_int_eq(w2v_load_vectors(&w, path, 1, 0), -1);
  ck_assert_msg(strstr(loom_last_error(), "vector 2"), "%s", loom_last_error());
  loom_clear_error();
}
END_TEST

/* ------------------------------------------------ kernel vs autograd */

static void random_model(w2v_model *m, uint64_t seed) {
  ck_assert_int_eq(w2v_model_init(m, 12, 8, true, true, seed), 0);
  uint64_t s = w2v_rand_seed(seed, 7);
  loom_tensor *mats[2] = {m->syn1, m->syn1neg};
  for (int k = 0; k < 2; k++) {
    float *d = loom_data_f32(mats[k]);
    for (int i = 0; i < 12 * 8; i++)
      d[i] = (float)((double)(w2v_rand(&s) >> 11) / 9007199254740992.0 - 0.5);
  }
  float *d = loom_data_f32(m->syn0);
  for (int i = 0; i < 12 * 8; i++) /* bigger than the init, so scores vary */
    d[i] *= 40;
}

static void copy_model(w2v_model *dst, const w2v_model *src) {
  ck_assert_int_eq(w2v_model_init(dst, 12, 8, true, true, 0), 0);
  loom_copy_(dst->syn0, src->syn0);
  loom_copy_(dst->syn1, src->syn1);
  loom_copy_(dst->syn1neg, src->syn1neg);
}

static void assert_same_update(const w2v_example *ex, int n, float alpha) {
  w2v_model a, b;
  random_model(&a, 11);
  copy_model(&b, &a);
  float scratch[64];
  for (int k = 0; k < n; k++)
    w2v_kernel_example(loom_data_f32(a.syn0), loom_data_f32(a.syn1),
                       loom_data_f32(a.syn1neg), 8, &ex[k], alpha, scratch);
  loom_tensor *before = loom_clone(b.syn0);
  double loss = w2v_autograd_step(&b, ex, n, alpha);
  ck_assert_msg(loss == loss, "autograd step failed: %s", loom_last_error());
  ck_assert(loss > 0);
  ck_assert(!loom_equal(before, b.syn0)); /* something moved */
  const char *names[3] = {"syn0", "syn1", "syn1neg"};
  loom_tensor *x[3] = {a.syn0, a.syn1, a.syn1neg};
  loom_tensor *y[3] = {b.syn0, b.syn1, b.syn1neg};
  for (int k = 0; k < 3; k++) {
    const float *p = loom_data_f32(x[k]), *q = loom_data_f32(y[k]);
    for (int i = 0; i < 12 * 8; i++)
      ck_assert_msg(fabsf(p[i] - q[i]) <= 2e-6f * (1 + fabsf(p[i])),
                    "%s[%d]: kernel %.9g, autograd %.9g", names[k], i, p[i],
                    q[i]);
  }
  w2v_model_free(&a);
  w2v_model_free(&b);
}

START_TEST(test_kernel_matches_autograd) {
  const uint8_t codes[] = {0, 1, 1, 0};
  /* one example at a time: skip-gram and CBOW, each output kind and both,
   * with a repeated negative and a repeated context word */
  const int32_t in1[] = {1}, ns1[] = {2, 3, 4};
  const int32_t in2[] = {5}, hs2[] = {0, 1, 2};
  const int32_t in3[] = {6}, hs3[] = {3, 4}, ns3[] = {7, 8, 7};
  const int32_t in4[] = {9, 10, 9}, hs4[] = {5, 6}, ns4[] = {10, 11, 5};
  w2v_example single[] = {{in1, 1, NULL, NULL, 0, ns1, 3},
                          {in2, 1, hs2, codes, 3, NULL, 0},
                          {in3, 1, hs3, codes + 1, 2, ns3, 3},
                          {in4, 3, hs4, codes, 2, ns4, 3},
                          {in4, 3, NULL, NULL, 0, ns4, 3}};
  for (int k = 0; k < 5; k++)
    assert_same_update(&single[k], 1, 0.025f);
  /* a batch whose examples share no row: sequential = batched */
  const int32_t bi1[] = {1}, bn1[] = {2, 3};
  const int32_t bi2[] = {4, 5}, bn2[] = {6, 7}, bh2[] = {0};
  const int32_t bi3[] = {8}, bh3[] = {1, 2}, bn3[] = {9};
  w2v_example batch[] = {{bi1, 1, NULL, NULL, 0, bn1, 2},
                         {bi2, 2, bh2, codes, 1, bn2, 2},
                         {bi3, 1, bh3, codes + 2, 2, bn3, 1}};
  assert_same_update(batch, 3, 0.05f);
}
END_TEST

/* Trains a model of `dim` on text with options o (counts, tree and table
 * built from the text); returns a copy of syn0 (scope-owned) and the
 * training statistics in *st (NULL: not wanted). */
static loom_tensor *train_text(const char *text, size_t len, int64_t dim,
                               uint64_t init_seed, const w2v_train_opts *o,
                               w2v_train_stats *st, int64_t *corpus_len) {
  w2v_vocab v;
  w2v_vocab_init(&v);
  w2v_corpus c;
  ck_assert_int_eq(w2v_corpus_from_memory(&c, &v, text, len, true, 1), 0);
  int64_t counts[64];
  ck_assert_int_le(v.size, 64);
  for (int i = 0; i < v.size; i++)
    counts[i] = v.entries[i].count;
  w2v_tree t;
  w2v_unigram u;
  w2v_model m;
  ck_assert_int_eq(w2v_tree_build(&t, counts, v.size), 0);
  ck_assert_int_eq(w2v_unigram_build(&u, counts, v.size, 0.75), 0);
  ck_assert_int_eq(w2v_model_init(&m, v.size, dim, true, true, init_seed), 0);
  ck_assert_msg(w2v_train(&m, &v, &c, &t, &u, o, 1, NULL, st) == 0, "%s",
                loom_last_error());
  if (corpus_len)
    *corpus_len = c.len;
  loom_tensor *out = loom_clone(m.syn0);
  w2v_model_free(&m);
  w2v_tree_free(&t);
  w2v_unigram_free(&u);
  w2v_corpus_free(&c);
  w2v_vocab_free(&v);
  return out;
}

START_TEST(test_training_is_deterministic) {
  /* a few hundred words, one thread: the same seed, the same vectors */
  char text[8192];
  int k = 0;
  uint64_t s = w2v_rand_seed(5, 0);
  for (int i = 0; i < 600; i++)
    k += snprintf(text + k, sizeof text - (size_t)k, "%c%s",
                  'a' + (int)w2v_rand_below(&s, 12), i % 10 == 9 ? "\n" : " ");
  w2v_train_opts o = {.hs = true,
                      .window = 3,
                      .negative = 3,
                      .iter = 2,
                      .threads = 1,
                      .alpha = 0.05,
                      .sample = 1e-2,
                      .seed = 9};
  loom_tensor *out[2];
  for (int run = 0; run < 2; run++) {
    w2v_train_stats st;
    int64_t len;
    out[run] = train_text(text, (size_t)k, 10, 3, &o, &st, &len);
    ck_assert_int_eq(st.words, 2 * len);
  }
  ck_assert(loom_equal(out[0], out[1]));
}
END_TEST

/* Threads take the text in chunks of 10,000 words: with more threads than
 * needed and a short last chunk, every chunk is still trained once. Each
 * 5,000-word region of the text has a word of its own, which moves only
 * if its region was trained. */
START_TEST(test_threads_cover_every_chunk) {
  enum { WORDS = 42000, REGION = 5000 };
  size_t cap = (size_t)WORDS * 4;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  size_t k = 0;
  uint64_t s = w2v_rand_seed(11, 0);
  for (int i = 0; i < WORDS; i++) {
    char word[8];
    if (w2v_rand_below(&s, 8) == 0) /* the region's own word */
      snprintf(word, sizeof word, "r%d", i / REGION);
    else
      snprintf(word, sizeof word, "%c", 'a' + (int)w2v_rand_below(&s, 20));
    k += (size_t)snprintf(text + k, cap - k, "%s%s", word,
                          i % 10 == 9 ? "\n" : " ");
  }
  w2v_train_opts o = {.window = 2,
                      .negative = 2,
                      .iter = 1,
                      .threads = 8,
                      .alpha = 0.05,
                      .seed = 3};
  loom_tensor *out = train_text(text, k, 8, 6, &o, NULL, NULL);
  free(text);
  w2v_model init;
  int64_t n = loom_size(out, 0);
  ck_assert_int_eq(n, 1 + 20 + (WORDS + REGION - 1) / REGION);
  ck_assert_int_eq(w2v_model_init(&init, n, 8, false, true, 6), 0);
  const float *a = loom_data_f32(out), *z = loom_data_f32(init.syn0);
  for (int64_t w = 1; w < n; w++) { /* row 0, </s>, is never an input */
    double moved = 0;
    for (int j = 0; j < 8; j++)
      moved = fmax(moved, fabs(a[w * 8 + j] - z[w * 8 + j]));
    ck_assert_msg(moved > 1e-3, "word %lld did not train", (long long)w);
  }
  w2v_model_free(&init);
}
END_TEST

/* The two engines walk the text identically (same draws from the same
 * generator), so with one example per autograd step a whole training run
 * of each gives the same vectors, to rounding. */
START_TEST(test_engines_train_alike) {
  char text[4096];
  int k = 0;
  uint64_t s = w2v_rand_seed(8, 0);
  for (int i = 0; i < 240; i++)
    k += snprintf(text + k, sizeof text - (size_t)k, "%c%s",
                  'a' + (int)w2v_rand_below(&s, 10), i % 12 == 11 ? "\n" : " ");
  loom_tensor *out[2];
  for (int engine = 0; engine < 2; engine++) {
    w2v_train_opts o = {.cbow = true,
                        .hs = true,
                        .window = 3,
                        .negative = 2,
                        .iter = 1,
                        .threads = 1,
                        .alpha = 0.05,
                        .sample = 0.1,
                        .seed = 2,
                        .engine =
                            engine ? W2V_ENGINE_AUTOGRAD : W2V_ENGINE_FUSED,
                        .batch = 1};
    out[engine] = train_text(text, (size_t)k, 8, 4, &o, NULL, NULL);
  }
  /* the runs moved the vectors, and moved them alike */
  w2v_model init;
  ck_assert_int_eq(
      w2v_model_init(&init, loom_size(out[0], 0), 8, false, true, 4), 0);
  double moved = 0, apart = 0;
  const float *a = loom_data_f32(out[0]), *b = loom_data_f32(out[1]);
  const float *z = loom_data_f32(init.syn0);
  for (int64_t i = 0; i < loom_numel(out[0]); i++) {
    moved = fmax(moved, fabs(a[i] - z[i]));
    apart = fmax(apart, fabs(a[i] - b[i]));
  }
  w2v_model_free(&init);
  ck_assert_msg(moved > 5e-3 && apart < 1e-4 * moved,
                "moved %g, engines apart by %g", moved, apart);
}
END_TEST

/* ------------------------------------------------ evaluation */

START_TEST(test_spearman) {
  const double x[] = {1, 2, 3, 4, 5}, y[] = {5, 6, 7, 8, 7};
  /* ranks of y with the tie averaged: 1 2 3.5 5 3.5 -> rho = 0.8208 */
  ck_assert_double_eq_tol(w2v_spearman(x, y, 5), 0.8207826816681233, 1e-12);
  const double z[] = {5, 4, 3, 2, 1};
  ck_assert_double_eq_tol(w2v_spearman(x, z, 5), -1, 1e-12);
}
END_TEST

START_TEST(test_analogy_and_similarity) {
  /* king - man + woman = queen in a hand-made space */
  const char vec[] = "6 3\n"
                     "man 1 0 0 \nwoman 1 1 0 \nking 1 0 1 \nQueen 1 1 1 \n"
                     "apple 0 0 -1 \npear 0 -1 -1 \n";
  char vpath[512], qpath[512], spath[512];
  test_path(vpath, sizeof vpath, "a.txt");
  test_path(qpath, sizeof qpath, "q.txt");
  test_path(spath, sizeof spath, "s.tsv");
  test_write_file(vpath, vec, sizeof vec - 1);
  const char q[] = ": royal\nMan King Woman queen\nman woman king apple\n"
                   "man king woman unicorn\n: gram-fruit\n"
                   "king queen apple pear\n";
  test_write_file(qpath, q, sizeof q - 1);
  w2v_vectors w;
  ck_assert_int_eq(w2v_load_vectors(&w, vpath, -1, 0), 0);
  w2v_accuracy a;
  ck_assert_int_eq(w2v_analogy_accuracy(&w, qpath, 0, &a), 0);
  ck_assert_int_eq(a.questions, 4);
  ck_assert_int_eq(a.seen, 3); /* unicorn is unknown */
  ck_assert_int_eq(a.n_sections, 2);
  ck_assert_str_eq(a.sections[0].name, "royal");
  ck_assert_int_eq(a.sections[0].seen, 2);
  ck_assert_int_eq(a.sections[0].correct, 1);
  ck_assert_int_eq(a.correct, 2);
  ck_assert_int_eq(a.semantic_seen, 2); /* "gram..." sections: syntactic */
  ck_assert_int_eq(a.syntactic_seen, 1);
  ck_assert_int_eq(a.syntactic_correct, 1);
  w2v_accuracy_free(&a);
  /* restricted to the 4 most frequent words, the apple questions go */
  ck_assert_int_eq(w2v_analogy_accuracy(&w, qpath, 4, &a), 0);
  ck_assert_int_eq(a.seen, 1);
  ck_assert_int_eq(a.correct, 1);
  w2v_accuracy_free(&a);
  /* a word of any length is one word: 300 letters and three words make a
   * question (of an unknown word), with two words a malformed line (read
   * through 255-byte buffers, the long word had been two) */
  char long_q[512];
  for (int three = 0; three < 2; three++) {
    int n = snprintf(long_q, sizeof long_q, ": royal\nman king woman queen\n");
    memset(long_q + n, 'k', 300);
    snprintf(long_q + n + 300, sizeof long_q - (size_t)n - 300, " %s\n",
             three ? "man woman queen" : "man woman");
    test_write_file(qpath, long_q, strlen(long_q));
    int rc = w2v_analogy_accuracy(&w, qpath, 0, &a);
    if (three) {
      ck_assert_int_eq(rc, 0);
      ck_assert_int_eq(a.questions, 2);
      ck_assert_int_eq(a.seen, 1);
      w2v_accuracy_free(&a);
    } else {
      ck_assert_int_eq(rc, -1);
      ck_assert_int_eq(loom_last_status(), LOOM_ERR_FORMAT);
      loom_clear_error();
    }
  }
  const char s[] = "# comment\nman\twoman\t8\nking\tqueen\t9\n"
                   "man\tapple\t1\nman\tunicorn\t3\napple\tpear\t7\n";
  test_write_file(spath, s, sizeof s - 1);
  w2v_similarity sim;
  ck_assert_int_eq(w2v_word_similarity(&w, spath, 0, &sim), 0);
  ck_assert_int_eq(sim.pairs, 5);
  /* a score must be a whole finite number */
  const char *bad_scores[] = {"8abc", "nan", "inf", "1e999", "-"};
  for (int k = 0; k < 5; k++) {
    char bad[128];
    snprintf(bad, sizeof bad, "man\twoman\t8\nking\tqueen\t%s\n",
             bad_scores[k]);
    test_write_file(spath, bad, strlen(bad));
    w2v_similarity bs;
    ck_assert_msg(w2v_word_similarity(&w, spath, 0, &bs) == -1, "score %s",
                  bad_scores[k]);
    ck_assert_int_eq(loom_last_status(), LOOM_ERR_FORMAT);
    loom_clear_error();
  }
  /* a NUL byte is an error naming the line, in either file (a line
   * starting with one had been skipped as blank), and so is a line without
   * end (/dev/zero had been read until memory ran out) */
  const char nul_s[] = "man\twoman\t8\n\0king\tqueen\t9\n";
  test_write_file(spath, nul_s, sizeof nul_s - 1);
  w2v_similarity ns;
  ck_assert_int_eq(w2v_word_similarity(&w, spath, 0, &ns), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 2: a NUL byte"), "%s",
                loom_last_error());
  loom_clear_error();
  const char nul_q[] =
      ": royal\nman king woman queen\n\0man king woman queen\n";
  test_write_file(qpath, nul_q, sizeof nul_q - 1);
  ck_assert_int_eq(w2v_analogy_accuracy(&w, qpath, 0, &a), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 3: a NUL byte"), "%s",
                loom_last_error());
  loom_clear_error();
  char *endless = malloc(((size_t)1 << 20) + 2);
  memset(endless, 'x', ((size_t)1 << 20) + 1);
  test_write_file(spath, endless, ((size_t)1 << 20) + 1);
  ck_assert_int_eq(w2v_word_similarity(&w, spath, 0, &ns), -1);
  ck_assert_msg(strstr(loom_last_error(), "line 1: longer than 1 MiB"), "%s",
                loom_last_error());
  loom_clear_error();
  /* a line of 1 MiB is read, with its "\n" as without (a comment here,
   * before the pairs) */
  size_t mib = (size_t)1 << 20;
  char *long_line = realloc(endless, mib + 1 + sizeof s);
  ck_assert_ptr_nonnull(long_line);
  long_line[0] = '#';
  long_line[mib] = '\n';
  memcpy(long_line + mib + 1, s, sizeof s - 1);
  test_write_file(spath, long_line, mib + sizeof s);
  free(long_line);
  ck_assert_int_eq(w2v_word_similarity(&w, spath, 0, &ns), 0);
  ck_assert_int_eq(ns.used, 4);
  test_write_file(spath, s, sizeof s - 1);
  ck_assert_int_eq(sim.used, 4);
  /* cosines 0.7071, 0.8165, 0.0, 0.7071 against 8, 9, 1, 7 */
  double h[] = {8, 9, 1, 7}, c[] = {0.70710678, 0.81649658, 0, 0.70710678};
  ck_assert_double_eq_tol(sim.spearman, w2v_spearman(h, c, 4), 1e-9);
  /* neighbours: nearest to king is queen (cosine 0.8165) */
  loom_tensor *normed = w2v_normalized(w.vectors);
  int64_t king = w2v_find_word(&w, "KING", 0);
  ck_assert_int_eq(king, 2);
  w2v_hit hits[2];
  ck_assert_int_eq(w2v_nearest(normed, loom_data_f32(w.vectors) + 2 * 3, &king,
                               1, 0, 2, hits),
                   2);
  ck_assert_int_eq(hits[0].index, 3);
  ck_assert_double_eq_tol(hits[0].score, 0.81649658, 1e-6);
  w2v_vectors_free(&w);
}
END_TEST

START_TEST(test_kmeans) {
  loom_tensor *m = loom_from_array(
      LOOM_F32, (float[]){1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f, 1, 0.05f},
      LOOM_SHAPE(5, 2));
  int32_t cl[5];
  ck_assert_int_eq(w2v_kmeans(m, 2, 10, cl), 0);
  ck_assert_int_eq(cl[0], cl[1]);
  ck_assert_int_eq(cl[0], cl[4]);
  ck_assert_int_eq(cl[2], cl[3]);
  ck_assert_int_ne(cl[0], cl[2]);
  ck_assert_int_eq(w2v_kmeans(m, 9, 10, cl), -1);
  loom_clear_error();
}
END_TEST

int main(void) {
  if (test_dir_make("w2v") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("word2vec");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tokens);
  tcase_add_test(tc, test_long_words_cut_on_characters);
  tcase_add_test(tc, test_utf8);
  tcase_add_test(tc, test_vocab_counts_sorting_min_count);
  tcase_add_test(tc, test_vocab_file_round_trip);
  tcase_add_test(tc, test_corpus_errors);
  tcase_add_test(tc, test_huffman_codes);
  tcase_add_test(tc, test_unigram_table);
  tcase_add_test(tc, test_subsampling);
  tcase_add_test(tc, test_formats_round_trip);
  tcase_add_test(tc, test_formats_damage);
  tcase_add_test(tc, test_kernel_matches_autograd);
  tcase_add_test(tc, test_training_is_deterministic);
  tcase_add_test(tc, test_threads_cover_every_chunk);
  tcase_add_test(tc, test_engines_train_alike);
  tcase_add_test(tc, test_spearman);
  tcase_add_test(tc, test_analogy_and_similarity);
  tcase_add_test(tc, test_kmeans);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
