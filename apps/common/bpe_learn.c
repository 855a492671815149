/* Learning BPE merges exactly as subword-nmt's learn_bpe.py does.
 *
 * subword-nmt keeps the count of every symbol pair (`stats`), an index from
 * each pair to the words holding it with the number of times (`indices`),
 * and updates both incrementally after each merge from the words the merge
 * changed. To make max() cheap it prunes `stats` to the pairs above a
 * threshold, keeping the rest in `big_stats`, and goes back to those when
 * the best remaining pair falls below the threshold. Its results depend on
 * that bookkeeping in corner cases (a pruned pair that gains counts before
 * it comes back restarts from the gain alone), and on its regular
 * expression (?<!\S)A B(?!\S) replacing pairs in words that contain
 * whitespace other than spaces, so this file keeps the same two
 * dictionaries with the same updates, in C: `stats` is a binary heap of
 * pairs ordered as subword-nmt's max() orders them, `big_stats` a value
 * beside each pair, and the index a hash table from (pair, word) to a
 * count. */
#include "text.h"

#include <loom/loom.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 wide;

typedef struct {
  uint32_t *sym; /* the word's symbols */
  int32_t len;
  int64_t freq;
} word;

typedef struct {
  uint32_t a, b;
  int64_t val, big; /* stats[pair], big_stats[pair] */
  bool in_stats, in_big;
  int32_t heap;    /* position in the heap, -1 outside */
  uint32_t epoch;  /* of its index: bumped when indices[pair] is reset */
  uint32_t *words; /* words with an index entry this epoch, first-seen order */
  int32_t n_words, cap_words;
} pair;

/* indices[pair][word] for one epoch of the pair */
typedef struct {
  uint32_t pair, epoch, word;
  bool used;
  int64_t count;
} index_entry;

typedef struct {
  app_strtab syms;
  word *words;
  int64_t n_words;
  pair *pairs;
  int64_t n_pairs, cap_pairs;
  int64_t *pair_slots; /* (a, b) -> pair id, -1 empty */
  int64_t n_pair_slots;
  index_entry *index;
  int64_t n_index, cap_index;
  int32_t *heap;
  int64_t n_heap, cap_heap;
  app_buf joined, scratch; /* replace_pair's working strings */
} learner;

static int oom(void) {
  loom_set_error(LOOM_ERR_MEMORY, "BPE learning: out of memory");
  return -1;
}

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

/* ------------------------------------------------------------- symbols */

static int compare_bytes(const char *x, size_t nx, const char *y, size_t ny) {
  int c = memcmp(x, y, nx < ny ? nx : ny);
  if (c)
    return c;
  return (nx > ny) - (nx < ny);
}

static int compare_syms(const learner *L, uint32_t x, uint32_t y) {
  return compare_bytes(app_strtab_str(&L->syms, x), app_strtab_len(&L->syms, x),
                       app_strtab_str(&L->syms, y),
                       app_strtab_len(&L->syms, y));
}

/* ------------------------------------------------------------- pairs */

static int grow_pair_slots(learner *L) {
  int64_t n = L->n_pair_slots ? 2 * L->n_pair_slots : 1 << 16;
  int64_t *slots = malloc((size_t)n * sizeof *slots);
  if (!slots)
    return oom();
  memset(slots, 0xFF, (size_t)n * sizeof *slots);
  uint64_t mask = (uint64_t)n - 1;
  for (int64_t p = 0; p < L->n_pairs; p++) {
    uint64_t k = mix((uint64_t)L->pairs[p].a << 32 | L->pairs[p].b) & mask;
    while (slots[k] >= 0)
      k = (k + 1) & mask;
    slots[k] = p;
  }
  free(L->pair_slots);
  L->pair_slots = slots;
  L->n_pair_slots = n;
  return 0;
}

/* The id of pair (a, b), made if it is new; -1 on a memory error. */
static int64_t pair_of(learner *L, uint32_t a, uint32_t b) {
  uint64_t key = (uint64_t)a << 32 | b;
  if (L->n_pair_slots) {
    uint64_t mask = (uint64_t)L->n_pair_slots - 1;
    for (uint64_t k = mix(key) & mask;; k = (k + 1) & mask) {
      int64_t p = L->pair_slots[k];
      if (p < 0)
        break;
      if (L->pairs[p].a == a && L->pairs[p].b == b)
        return p;
    }
  }
  if (L->n_pairs >= INT32_MAX - 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "BPE learning: more than 2^31 pairs");
    return -1;
  }
  if (2 * (L->n_pairs + 1) > L->n_pair_slots && grow_pair_slots(L))
    return -1;
  if (L->n_pairs == L->cap_pairs) {
    int64_t cap = L->cap_pairs ? 2 * L->cap_pairs : 1 << 14;
    pair *g = realloc(L->pairs, (size_t)cap * sizeof *g);
    if (!g)
      return oom();
    L->pairs = g;
    L->cap_pairs = cap;
  }
  int64_t p = L->n_pairs++;
  L->pairs[p] = (pair){.a = a, .b = b, .heap = -1};
  uint64_t mask = (uint64_t)L->n_pair_slots - 1, k = mix(key) & mask;
  while (L->pair_slots[k] >= 0)
    k = (k + 1) & mask;
  L->pair_slots[k] = p;
  return p;
}

/* ------------------------------------------------------------- stats */

/* subword-nmt's order: by count, then by (first, second). */
static bool above(const learner *L, int32_t p, int32_t q) {
  const pair *x = &L->pairs[p], *y = &L->pairs[q];
  if (x->val != y->val)
    return x->val > y->val;
  int c = compare_syms(L, x->a, y->a);
  if (c)
    return c > 0;
  return compare_syms(L, x->b, y->b) > 0;
}

static void heap_set(learner *L, int64_t i, int32_t p) {
  L->heap[i] = p;
  L->pairs[p].heap = (int32_t)i;
}

static void sift_up(learner *L, int64_t i) {
  int32_t p = L->heap[i];
  while (i > 0 && above(L, p, L->heap[(i - 1) / 2])) {
    heap_set(L, i, L->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_set(L, i, p);
}

static void sift_down(learner *L, int64_t i) {
  int32_t p = L->heap[i];
  for (;;) {
    int64_t c = 2 * i + 1;
    if (c >= L->n_heap)
      break;
    if (c + 1 < L->n_heap && above(L, L->heap[c + 1], L->heap[c]))
      c++;
    if (!above(L, L->heap[c], p))
      break;
    heap_set(L, i, L->heap[c]);
    i = c;
  }
  heap_set(L, i, p);
}

/* stats[p] exists (0 if it was absent), as a defaultdict access makes it */
static int stats_touch(learner *L, int64_t p) {
  pair *x = &L->pairs[p];
  if (x->in_stats)
    return 0;
  if (L->n_heap == L->cap_heap) {
    int64_t cap = L->cap_heap ? 2 * L->cap_heap : 1 << 14;
    int32_t *g = realloc(L->heap, (size_t)cap * sizeof *g);
    if (!g)
      return oom();
    L->heap = g;
    L->cap_heap = cap;
  }
  x->in_stats = true;
  x->val = 0;
  heap_set(L, L->n_heap++, (int32_t)p);
  sift_up(L, L->n_heap - 1);
  return 0;
}

/* stats[p] += delta */
static int stats_add(learner *L, int64_t p, int64_t delta) {
  if (stats_touch(L, p))
    return -1;
  pair *x = &L->pairs[p];
  x->val += delta;
  if (delta > 0)
    sift_up(L, x->heap);
  else
    sift_down(L, x->heap);
  return 0;
}

/* stats[p] = v */
static int stats_set(learner *L, int64_t p, int64_t v) {
  if (stats_touch(L, p))
    return -1;
  return stats_add(L, p, v - L->pairs[p].val);
}

static void heap_rebuild(learner *L) {
  for (int64_t i = L->n_heap / 2; i-- > 0;)
    sift_down(L, i);
}

/* v < t for an integer and a double, exactly (as Python compares them). */
static bool less(int64_t v, double t) {
  if (t >= 0x1p63)
    return true;
  if (t < -0x1p63)
    return false;
  double f = floor(t);
  return f == t ? v < (int64_t)f : v <= (int64_t)f;
}

/* prune_stats: pairs below the threshold leave stats for big_stats (a
 * negative count is a change since the pair was pruned, so it is added;
 * any other replaces big_stats' value). */
static void prune(learner *L, double threshold) {
  int64_t kept = 0;
  for (int64_t i = 0; i < L->n_heap; i++) {
    int32_t p = L->heap[i];
    pair *x = &L->pairs[p];
    if (less(x->val, threshold)) {
      if (x->val < 0)
        x->big = (x->in_big ? x->big : 0) + x->val;
      else
        x->big = x->val;
      x->in_big = true;
      x->in_stats = false;
      x->heap = -1;
    } else {
      heap_set(L, kept++, p);
    }
  }
  L->n_heap = kept;
  heap_rebuild(L);
}

/* stats = copy.deepcopy(big_stats) */
static int restore(learner *L) {
  L->n_heap = 0;
  for (int64_t p = 0; p < L->n_pairs; p++) {
    pair *x = &L->pairs[p];
    x->in_stats = false;
    x->heap = -1;
  }
  for (int64_t p = 0; p < L->n_pairs; p++) {
    pair *x = &L->pairs[p];
    if (!x->in_big)
      continue;
    if (stats_touch(L, p))
      return -1;
    x->val = x->big;
  }
  heap_rebuild(L);
  return 0;
}

/* ------------------------------------------------------------- index */

static uint64_t index_hash(uint32_t p, uint32_t epoch, uint32_t w) {
  return mix(((uint64_t)p << 32 | w) ^ mix(epoch + 0x9E3779B97F4A7C15ULL));
}

static int grow_index(learner *L) {
  int64_t cap = L->cap_index ? 2 * L->cap_index : 1 << 16;
  index_entry *g = calloc((size_t)cap, sizeof *g);
  if (!g)
    return oom();
  uint64_t mask = (uint64_t)cap - 1;
  for (int64_t i = 0; i < L->cap_index; i++) {
    const index_entry *e = &L->index[i];
    if (!e->used)
      continue;
    uint64_t k = index_hash(e->pair, e->epoch, e->word) & mask;
    while (g[k].used)
      k = (k + 1) & mask;
    g[k] = *e;
  }
  free(L->index);
  L->index = g;
  L->cap_index = cap;
  return 0;
}

/* indices[p][w] += delta (the entry made at 0 if absent). */
static int index_add(learner *L, int64_t p, uint32_t w, int64_t delta) {
  pair *x = &L->pairs[p];
  if (L->cap_index) {
    uint64_t mask = (uint64_t)L->cap_index - 1;
    for (uint64_t k = index_hash((uint32_t)p, x->epoch, w) & mask;;
         k = (k + 1) & mask) {
      index_entry *e = &L->index[k];
      if (!e->used)
        break;
      if (e->pair == (uint32_t)p && e->epoch == x->epoch && e->word == w) {
        e->count += delta;
        return 0;
      }
    }
  }
  if (2 * (L->n_index + 1) > L->cap_index && grow_index(L))
    return -1;
  if (x->n_words == x->cap_words) {
    int32_t cap = x->cap_words ? 2 * x->cap_words : 4;
    if (x->cap_words > INT32_MAX / 2)
      return oom();
    uint32_t *g = realloc(x->words, (size_t)cap * sizeof *g);
    if (!g)
      return oom();
    x->words = g;
    x->cap_words = cap;
  }
  x->words[x->n_words++] = w;
  uint64_t mask = (uint64_t)L->cap_index - 1;
  uint64_t k = index_hash((uint32_t)p, x->epoch, w) & mask;
  while (L->index[k].used)
    k = (k + 1) & mask;
  L->index[k] = (index_entry){(uint32_t)p, x->epoch, w, true, delta};
  L->n_index++;
  return 0;
}

static int64_t index_get(const learner *L, int64_t p, uint32_t w) {
  const pair *x = &L->pairs[p];
  if (!L->cap_index)
    return 0;
  uint64_t mask = (uint64_t)L->cap_index - 1;
  for (uint64_t k = index_hash((uint32_t)p, x->epoch, w) & mask;;
       k = (k + 1) & mask) {
    const index_entry *e = &L->index[k];
    if (!e->used)
      return 0;
    if (e->pair == (uint32_t)p && e->epoch == x->epoch && e->word == w)
      return e->count;
  }
}

/* indices[p] = defaultdict(int) */
static void index_reset(learner *L, int64_t p) {
  L->pairs[p].epoch++;
  L->pairs[p].n_words = 0;
}

/* ------------------------------------------------------------- merging */

/* A word changed by a merge: its symbols before and after. */
typedef struct {
  uint32_t word;
  int64_t old_at, new_at; /* offsets into the change buffer */
  int32_t old_len, new_len;
} change;

typedef struct {
  change *list;
  int64_t n, cap;
  uint32_t *syms;
  int64_t n_syms, cap_syms;
} changes;

static int push_syms(changes *c, const uint32_t *s, int32_t n) {
  if (c->n_syms + n > c->cap_syms) {
    int64_t cap = c->cap_syms ? c->cap_syms : 1024;
    while (cap < c->n_syms + n)
      cap *= 2;
    uint32_t *g = realloc(c->syms, (size_t)cap * sizeof *g);
    if (!g)
      return oom();
    c->syms = g;
    c->cap_syms = cap;
  }
  memcpy(c->syms + c->n_syms, s, (size_t)n * sizeof *s);
  c->n_syms += n;
  return 0;
}

/* Is the character of valid UTF-8 s ending just before `at` (or starting
 * at `at`) whitespace to Python's \s? */
static bool space_before(const char *s, size_t at) {
  size_t k = at - 1;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
    k--;
  uint32_t cp;
  app_utf8_decode(s + k, at - k, &cp);
  return app_unicode_is_space(cp);
}

static bool space_at(const char *s, size_t len, size_t at) {
  uint32_t cp;
  app_utf8_decode(s + at, len - at, &cp);
  return app_unicode_is_space(cp);
}

/* replace_pair for one word: its symbols joined by spaces, every match of
 * (?<!\S)FIRST SECOND(?!\S) (left to right, without overlaps) replaced by
 * FIRSTSECOND, split at the spaces again. The new symbols go to c. */
static int replace_in_word(learner *L, const word *w, const char *pattern,
                           size_t np, const char *merged, size_t nm,
                           changes *c) {
  app_buf *j = &L->joined, *out = &L->scratch;
  app_buf_clear(j);
  app_buf_clear(out);
  for (int32_t i = 0; i < w->len; i++)
    if ((i && app_buf_putc(j, ' ')) ||
        app_buf_append(j, app_strtab_str(&L->syms, w->sym[i]),
                       app_strtab_len(&L->syms, w->sym[i])))
      return -1;
  size_t i = 0;
  while (i < j->len) {
    if (j->len - i >= np && !memcmp(j->data + i, pattern, np) &&
        (i == 0 || space_before(j->data, i)) &&
        (i + np == j->len || space_at(j->data, j->len, i + np))) {
      if (app_buf_append(out, merged, nm))
        return -1;
      i += np;
    } else if (app_buf_putc(out, j->data[i++])) {
      return -1;
    }
  }
  int32_t n = 0;
  for (size_t s = 0; s <= out->len;) {
    size_t e = s;
    while (e < out->len && out->data[e] != ' ')
      e++;
    int64_t id = app_strtab_intern(&L->syms, out->data + s, e - s);
    if (id < 0)
      return -1;
    uint32_t sym = (uint32_t)id;
    if (push_syms(c, &sym, 1))
      return -1;
    n++;
    s = e + 1;
  }
  c->list[c->n - 1].new_len = n;
  return 0;
}

/* replace_pair: the words indexed under pair p (with a count >= 1) get
 * the merge; their old and new symbols are recorded in c. */
static int replace_pair(learner *L, int64_t p, changes *c) {
  const pair *x = &L->pairs[p];
  size_t na = app_strtab_len(&L->syms, x->a),
         nb = app_strtab_len(&L->syms, x->b);
  char *pattern = malloc(na + nb + 1);
  if (!pattern)
    return oom();
  memcpy(pattern, app_strtab_str(&L->syms, x->a), na);
  pattern[na] = ' ';
  memcpy(pattern + na + 1, app_strtab_str(&L->syms, x->b), nb);
  char *merged = malloc(na + nb + 1);
  if (!merged) {
    free(pattern);
    return oom();
  }
  memcpy(merged, pattern, na);
  memcpy(merged + na, pattern + na + 1, nb);
  int rc = 0;
  c->n = 0;
  c->n_syms = 0;
  for (int32_t k = 0; k < x->n_words && !rc; k++) {
    uint32_t wid = x->words[k];
    if (index_get(L, p, wid) < 1)
      continue;
    word *w = &L->words[wid];
    if (c->n == c->cap) {
      int64_t cap = c->cap ? 2 * c->cap : 256;
      change *g = realloc(c->list, (size_t)cap * sizeof *g);
      if (!g) {
        rc = oom();
        break;
      }
      c->list = g;
      c->cap = cap;
    }
    change *ch = &c->list[c->n++];
    *ch = (change){.word = wid, .old_at = c->n_syms, .old_len = w->len};
    rc = push_syms(c, w->sym, w->len);
    if (rc)
      break;
    c->list[c->n - 1].new_at = c->n_syms;
    rc = replace_in_word(L, w, pattern, na + nb + 1, merged, na + nb, c);
  }
  /* the words take their new symbols (never more than before) */
  for (int64_t k = 0; k < c->n && !rc; k++) {
    const change *ch = &c->list[k];
    word *w = &L->words[ch->word];
    memcpy(w->sym, c->syms + ch->new_at, (size_t)ch->new_len * sizeof *w->sym);
    w->len = ch->new_len;
  }
  free(pattern);
  free(merged);
  return rc;
}

static int32_t find_sym(const uint32_t *s, int32_t n, uint32_t sym,
                        int32_t from) {
  for (int32_t i = from; i < n; i++)
    if (s[i] == sym)
      return i;
  return -1;
}

/* stats[(a, b)] += delta and indices[(a, b)][w] += step */
static int count_pair(learner *L, uint32_t a, uint32_t b, uint32_t w,
                      int64_t delta, int64_t step) {
  int64_t p = pair_of(L, a, b);
  if (p < 0 || stats_add(L, p, delta) || index_add(L, p, w, step))
    return -1;
  return 0;
}

/* update_pair_statistics */
static int update_stats(learner *L, int64_t p, const changes *c) {
  if (stats_set(L, p, 0))
    return -1;
  index_reset(L, p);
  uint32_t first = L->pairs[p].a, second = L->pairs[p].b;
  size_t na = app_strtab_len(&L->syms, first),
         nb = app_strtab_len(&L->syms, second);
  app_buf_clear(&L->scratch);
  if (app_buf_append(&L->scratch, app_strtab_str(&L->syms, first), na) ||
      app_buf_append(&L->scratch, app_strtab_str(&L->syms, second), nb))
    return -1;
  int64_t np = app_strtab_intern(&L->syms, L->scratch.data, L->scratch.len);
  if (np < 0)
    return -1;
  uint32_t new_pair = (uint32_t)np;
  for (int64_t k = 0; k < c->n; k++) {
    const change *ch = &c->list[k];
    const uint32_t *old = c->syms + ch->old_at, *nw = c->syms + ch->new_at;
    int32_t n = ch->old_len;
    int64_t freq = L->words[ch->word].freq;
    for (int32_t i = 0;;) {
      i = find_sym(old, n, first, i);
      if (i < 0)
        break;
      if (i < n - 1 && old[i + 1] == second) {
        if (i && count_pair(L, old[i - 1], old[i], ch->word, -freq, -1))
          return -1;
        if (i < n - 2 &&
            (old[i + 2] != first || i >= n - 3 || old[i + 3] != second) &&
            count_pair(L, old[i + 1], old[i + 2], ch->word, -freq, -1))
          return -1;
        i += 2;
      } else {
        i += 1;
      }
    }
    n = ch->new_len;
    for (int32_t i = 0;;) {
      i = find_sym(nw, n, new_pair, i);
      if (i < 0)
        break;
      if (i && count_pair(L, nw[i - 1], nw[i], ch->word, freq, 1))
        return -1;
      if (i < n - 1 && nw[i + 1] != new_pair &&
          count_pair(L, nw[i], nw[i + 1], ch->word, freq, 1))
        return -1;
      i += 1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------- setup */

/* The words as symbols: characters, the last one with "</w>". */
static int split_words(learner *L, const app_word_counts *wc) {
  L->n_words = wc->words.n;
  L->words = calloc((size_t)(L->n_words ? L->n_words : 1), sizeof *L->words);
  if (!L->words)
    return oom();
  app_buf b = {0};
  for (int64_t i = 0; i < L->n_words; i++) {
    const char *s = app_strtab_str(&wc->words, i);
    size_t len = app_strtab_len(&wc->words, i);
    if (app_utf8_check(s, len, "BPE learning", 0))
      goto fail;
    if (len > INT32_MAX / 2) {
      loom_set_error(LOOM_ERR_ARGUMENT, "BPE learning: a word of %zu bytes",
                     len);
      goto fail;
    }
    word *w = &L->words[i];
    w->freq = wc->count[i];
    w->sym = malloc((len ? len : 1) * sizeof *w->sym);
    if (!w->sym) {
      oom();
      goto fail;
    }
    for (size_t at = 0; at < len;) {
      uint32_t cp;
      int n = app_utf8_decode(s + at, len - at, &cp);
      app_buf_clear(&b);
      if (app_buf_append(&b, s + at, (size_t)n) ||
          (at + (size_t)n == len && app_buf_append(&b, "</w>", 4)))
        goto fail;
      int64_t id = app_strtab_intern(&L->syms, b.data, b.len);
      if (id < 0)
        goto fail;
      w->sym[w->len++] = (uint32_t)id;
      at += (size_t)n;
    }
  }
  app_buf_free(&b);
  return 0;
fail:
  app_buf_free(&b);
  return -1;
}

static void learner_free(learner *L) {
  app_strtab_free(&L->syms);
  for (int64_t i = 0; i < L->n_words; i++)
    free(L->words[i].sym);
  free(L->words);
  for (int64_t p = 0; p < L->n_pairs; p++)
    free(L->pairs[p].words);
  free(L->pairs);
  free(L->pair_slots);
  free(L->index);
  free(L->heap);
  app_buf_free(&L->joined);
  app_buf_free(&L->scratch);
}

/* --total-symbols: the distinct word-internal and word-final symbols. */
static int64_t count_characters(learner *L, FILE *log) {
  int64_t n_syms = L->syms.n;
  unsigned char *seen = calloc((size_t)(n_syms ? n_syms : 1), 1);
  if (!seen) {
    oom();
    return -1;
  }
  int64_t internal = 0, final = 0;
  for (int64_t i = 0; i < L->n_words; i++) {
    const word *w = &L->words[i];
    for (int32_t k = 0; k < w->len; k++) {
      unsigned char bit = k == w->len - 1 ? 2 : 1;
      if (!(seen[w->sym[k]] & bit)) {
        seen[w->sym[k]] |= bit;
        *(bit == 1 ? &internal : &final) += 1;
      }
    }
  }
  free(seen);
  if (log) {
    fprintf(log, "Number of word-internal characters: %lld\n",
            (long long)internal);
    fprintf(log, "Number of word-final characters: %lld\n", (long long) final);
    fprintf(log, "Reducing number of merge operations by %lld\n",
            (long long)(internal + final));
  }
  return internal + final;
}

/* ------------------------------------------------------------- learning */

static int write_merge(learner *L, int64_t p, app_bpe_codes *out) {
  app_buf_clear(&L->scratch);
  const pair *x = &L->pairs[p];
  if (app_buf_append(&L->scratch, app_strtab_str(&L->syms, x->a),
                     app_strtab_len(&L->syms, x->a)) ||
      app_buf_putc(&L->scratch, ' ') ||
      app_buf_append(&L->scratch, app_strtab_str(&L->syms, x->b),
                     app_strtab_len(&L->syms, x->b)))
    return -1;
  return app_tokens_push(&out->merges, L->scratch.data, L->scratch.len, false);
}

int app_bpe_learn(const app_word_counts *wc, const app_bpe_learn_opts *o,
                  app_bpe_codes *out) {
  *out = (app_bpe_codes){.version = 2};
  if (o->symbols < 0 || o->symbols > INT32_MAX || o->min_frequency < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "BPE learning: %lld symbols (0..2^31) or minimum "
                   "frequency %lld (>= 1) out of range",
                   (long long)o->symbols, (long long)o->min_frequency);
    return -1;
  }
  learner L = {0};
  changes c = {0};
  int rc = -1;
  if (split_words(&L, wc))
    goto done;
  /* every pair count is a sum of these, so they cannot overflow */
  int64_t total = 0;
  for (int64_t i = 0; i < L.n_words; i++) {
    int64_t pairs = L.words[i].len - 1;
    if (pairs > 0 && L.words[i].freq > (((int64_t)1 << 62) - total) / pairs) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "BPE learning: the words' counts times their lengths add "
                     "up beyond 2^62");
      goto done;
    }
    if (pairs > 0)
      total += L.words[i].freq * pairs;
  }
  /* get_pair_statistics */
  for (int64_t i = 0; i < L.n_words; i++) {
    const word *w = &L.words[i];
    for (int32_t k = 0; k + 1 < w->len; k++)
      if (count_pair(&L, w->sym[k], w->sym[k + 1], (uint32_t)i, w->freq, 1))
        goto done;
  }
  for (int64_t p = 0; p < L.n_pairs; p++) { /* big_stats = copy of stats */
    L.pairs[p].in_big = true;
    L.pairs[p].big = L.pairs[p].val;
  }
  int64_t symbols = o->symbols;
  if (o->total_symbols) {
    int64_t chars = count_characters(&L, o->log);
    if (chars < 0)
      goto done;
    symbols -= chars;
  }
  if (L.n_heap == 0) { /* no pair at all: subword-nmt's max() fails */
    rc = 0;
    goto done;
  }
  double threshold = (double)L.pairs[L.heap[0]].val / 10;
  for (int64_t i = 0; i < symbols; i++) {
    int64_t best = L.n_heap ? L.heap[0] : -1;
    if (best < 0 || (i && less(L.pairs[best].val, threshold))) {
      /* the best pair may have been pruned: back to the full statistics */
      prune(&L, threshold);
      if (restore(&L))
        goto done;
      best = L.heap[0];
      threshold = (double)((wide)L.pairs[best].val * i) / ((double)i + 10000.0);
      prune(&L, threshold);
    }
    if (stats_touch(&L, best))
      goto done;
    if (L.pairs[best].val < o->min_frequency) {
      if (o->log)
        fprintf(o->log, "no pair has frequency >= %lld. Stopping\n",
                (long long)o->min_frequency);
      break;
    }
    if (o->verbose && o->log) {
      const pair *x = &L.pairs[best];
      fprintf(o->log, "pair %lld: %s %s -> %s%s (frequency %lld)\n",
              (long long)i, app_strtab_str(&L.syms, x->a),
              app_strtab_str(&L.syms, x->b), app_strtab_str(&L.syms, x->a),
              app_strtab_str(&L.syms, x->b), (long long)x->val);
    }
    if (write_merge(&L, best, out) || replace_pair(&L, best, &c) ||
        update_stats(&L, best, &c) || stats_set(&L, best, 0))
      goto done;
    if (i % 100 == 0)
      prune(&L, threshold);
  }
  rc = 0;
done:
  free(c.list);
  free(c.syms);
  learner_free(&L);
  if (rc)
    app_bpe_codes_free(out);
  return rc;
}
