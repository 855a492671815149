/* The training text: a file, or a corpus charlm writes itself so a first
 * run needs no download. The built-in corpus is a play: speeches by eight
 * characters, each one to three sentences drawn from a small English
 * grammar (people, places, objects, verbs, questions, counting), laid out
 * like tinyshakespeare (NAME:\n lines, blank line between speeches). It
 * has real structure at every scale an LSTM learns: spelling, words,
 * capitalisation, punctuation, line layout and speaker turns. */
#include "charlm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"MARGERY",  "OSWALD", "BEATRICE", "TOBIAS",
                                    "ROSALIND", "EDMUND", "CORDELIA", "HUGO"};
static const char *const nouns[] = {
    "lamp",   "boat",  "letter", "garden", "crown",   "horse",  "bell",
    "candle", "river", "sword",  "window", "orchard", "bridge", "lantern",
    "coat",   "apple", "song",   "door",   "ring",    "ship"};
static const char *const adjectives[] = {"old",    "quiet",  "golden", "broken",
                                         "bright", "small",  "heavy",  "green",
                                         "cold",   "strange"};
static const char *const verbs[] = {"found", "carried", "mended", "sold",
                                    "hid",   "painted", "opened", "watched",
                                    "lost",  "kept"};
static const char *const places[] = {
    "by the harbour", "in the hall",     "under the tower",    "near the mill",
    "at the market",  "beside the well", "in the north field", "on the hill"};
static const char *const times[] = {"this morning", "at dusk",
                                    "yesterday",    "before the storm",
                                    "last winter",  "at noon"};
static const char *const numbers[] = {"two", "three", "four",  "five",
                                      "six", "seven", "eight", "nine",
                                      "ten", "twelve"};

typedef struct {
  char *buf;
  size_t len, cap;
  bool failed; /* out of memory: nothing more is added */
} text;

static void put(text *t, const char *s) {
  size_t n = strlen(s);
  if (t->failed)
    return;
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 1 << 16;
    while (cap < t->len + n + 1)
      cap *= 2;
    char *g = realloc(t->buf, cap);
    if (!g) {
      t->failed = true;
      return;
    }
    t->buf = g;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n + 1);
  t->len += n;
}

#define PICK(g, list) list[loom_rng_u64(g) % (sizeof list / sizeof *list)]

/* "MARGERY" -> "Margery": names inside sentences. */
static void title_case(text *t, const char *s) {
  char w[64];
  snprintf(w, sizeof w, "%s", s);
  for (int i = 1; w[i]; i++)
    w[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
  put(t, w);
}

static void sentence(text *t, loom_rng *g, const char *listener) {
  char s[256];
  switch (loom_rng_u64(g) % 6) {
  case 0:
    snprintf(s, sizeof s, "the %s %s %s", PICK(g, adjectives), PICK(g, nouns),
             PICK(g, places));
    put(t, "I ");
    put(t, PICK(g, verbs));
    put(t, " ");
    put(t, s);
    put(t, ".");
    break;
  case 1:
    title_case(t, PICK(g, names));
    put(t, " ");
    put(t, PICK(g, verbs));
    snprintf(s, sizeof s, " %s %s %ss %s.", PICK(g, numbers),
             PICK(g, adjectives), PICK(g, nouns), PICK(g, times));
    put(t, s);
    break;
  case 2:
    snprintf(s, sizeof s, "Where is the %s %s, ", PICK(g, adjectives),
             PICK(g, nouns));
    put(t, s);
    title_case(t, listener);
    put(t, "?");
    break;
  case 3:
    snprintf(s, sizeof s, "We will meet %s %s, and bring the %s.",
             PICK(g, places), PICK(g, times), PICK(g, nouns));
    put(t, s);
    break;
  case 4:
    snprintf(s, sizeof s, "Who %s the %s? Not I, good ", PICK(g, verbs),
             PICK(g, nouns));
    put(t, s);
    title_case(t, listener);
    put(t, ".");
    break;
  default:
    snprintf(s, sizeof s, "The %s is %s, and the %s is %s.", PICK(g, nouns),
             PICK(g, adjectives), PICK(g, nouns), PICK(g, adjectives));
    put(t, s);
  }
}

unsigned char *corpus_generate(size_t bytes, size_t *len) {
  if (bytes > (size_t)CHARLM_CORPUS_MAX) {
    char range[64];
    fprintf(stderr, "charlm: the built-in corpus takes %s bytes, not %zu\n",
            app_int_range_text(0, CHARLM_CORPUS_MAX, range, sizeof range),
            bytes);
    return NULL;
  }
  loom_rng *g = loom_rng_new(20240521);
  text t = {.failed = !g};
  size_t who = 0;
  while (!t.failed && t.len < bytes) {
    size_t next = (who + 1 + loom_rng_u64(g) % 7) % 8;
    const char *speaker = names[who], *listener = names[next];
    put(&t, speaker);
    put(&t, ":\n");
    int n = 1 + (int)(loom_rng_u64(g) % 3);
    for (int i = 0; i < n; i++) {
      sentence(&t, g, listener);
      put(&t, i + 1 < n && loom_rng_u64(g) % 2 ? " " : "\n");
    }
    if (t.len && t.buf[t.len - 1] != '\n')
      put(&t, "\n");
    put(&t, "\n");
    who = next;
  }
  loom_rng_free(g);
  if (t.failed) {
    fprintf(stderr,
            "charlm: out of memory after %zu bytes of the built-in corpus\n",
            t.len);
    free(t.buf);
    return NULL;
  }
  *len = t.len;
  return (unsigned char *)t.buf;
}

int corpus_load(corpus *c, const char *path, size_t bytes) {
  memset(c, 0, sizeof *c);
  c->text =
      path ? app_read_file(path, &c->len) : corpus_generate(bytes, &c->len);
  if (!c->text)
    return -1;
  if (c->len < 1000) {
    fprintf(stderr, "charlm: %s has %zu bytes; need at least 1000\n",
            path ? path : "the corpus", c->len);
    corpus_free(c);
    return -1;
  }
  bool seen[256] = {false};
  for (size_t i = 0; i < c->len; i++)
    seen[c->text[i]] = true;
  for (int b = 0; b < 256; b++) {
    c->ids_of[b] = -1;
    if (seen[b]) {
      c->ids_of[b] = (int16_t)c->vocab;
      c->chars[c->vocab++] = (unsigned char)b;
    }
  }
  c->ids = c->len <= SIZE_MAX / sizeof *c->ids ? malloc(c->len * sizeof *c->ids)
                                               : NULL;
  if (!c->ids) {
    fprintf(stderr, "charlm: out of memory\n");
    corpus_free(c);
    return -1;
  }
  for (size_t i = 0; i < c->len; i++)
    c->ids[i] = c->ids_of[c->text[i]];
  return 0;
}

void corpus_free(corpus *c) {
  free(c->text);
  free(c->ids);
  memset(c, 0, sizeof *c);
}

double corpus_unigram_bits(const corpus *c) {
  double count[256] = {0}, h = 0;
  for (size_t i = 0; i < c->len; i++)
    count[c->text[i]]++;
  for (int b = 0; b < 256; b++)
    if (count[b] > 0) {
      double p = count[b] / (double)c->len;
      h -= p * log2(p);
    }
  return h;
}
