/* Per-thread reuse of the memory behind tensors, so that the allocator is
 * not what a loop of ops spends its time in.
 *
 * Why: every op returns a fresh tensor (a struct and a storage block) and
 * its scope frees it moments later. Two cases hurt with glibc alone:
 *  - small blocks: malloc + aligned_alloc + two frees cost more than the
 *    whole rest of an op on a 1 x 1 tensor (bench/overhead.c);
 *  - blocks above 32 MiB come straight from mmap, so an op on 16M floats
 *    gets fresh pages on every call and the kernel's page faults (zeroing
 *    and accounting) cost twice the arithmetic (bench/elementwise.c);
 *  - a training step frees tens of blocks of 64 KiB - 8 MiB at its end
 *    (the tape's intermediates) and glibc returns the top of its heap to
 *    the system, so the next step faulted them in again (2-3% of an LSTM
 *    or transformer step in page faults, bench/rnn.c).
 *  - a transformer training step at translation sizes (bench/transformer.c
 *    translate: 3 + 3 layers, 128 x 15 tokens, 6000 words) holds some 420
 *    big blocks (765 MiB) at its peak; with room for 64 blocks and 256 MiB
 *    it faulted 320 MB of fresh pages a step (~7% of the step).
 * So freed tensor structs, small blocks (by power-of-two class) and up to
 * 512 big blocks (1 GiB) are kept on per-thread lists for the next
 * allocation: what a step freed is there for the next step. Every
 * list is bounded, and big blocks are handed back when requests stop
 * fitting them (make_room); loom_cleanup frees them all. Memory freed on
 * another thread than it was made on simply joins that thread's lists. Under
 * AddressSanitizer nothing is kept, so it still sees every free.
 */
#include "internal.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define KEEP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP 0
#endif
#endif
#ifndef KEEP
#define KEEP 1
#endif

/* Small blocks: classes of 128 << c bytes; each list holds at most about
 * 512 KiB. */
#define SMALL_CLASSES 6
#define SMALL_MIN ((size_t)128)
#define SMALL_MAX (SMALL_MIN << (SMALL_CLASSES - 1))
#define SMALL_LIST_BYTES ((size_t)512 << 10)
/* Big blocks: reused for a request they exceed by at most a quarter;
 * at most BIG_SLOTS blocks and BIG_BYTES bytes, the oldest evicted. */
#define BIG_MIN ((size_t)64 << 10)
#define BIG_BYTES ((size_t)1024 << 20)
#define BIG_SLOTS 512
/* Tensor structs. */
#define TENSOR_LIST 4096

typedef struct free_item {
  struct free_item *next;
} free_item;

typedef struct {
  char *block;
  size_t bytes;
} big_block;

static _Thread_local free_item *small[SMALL_CLASSES];
static _Thread_local int small_n[SMALL_CLASSES];
static _Thread_local big_block big[BIG_SLOTS]; /* oldest first */
static _Thread_local int big_n;
static _Thread_local size_t big_bytes;
/* Bytes of big blocks handed out and not yet back (signed: a block may be
 * freed on another thread than it was made on). */
static _Thread_local int64_t big_live;
static _Thread_local int64_t big_peak; /* the most big_live has been */
/* loom_set_cache_slack's percentage, or -1: the eighth-of-live rule. */
static _Atomic int slack_percent = LOOM_CACHE_SLACK_DEFAULT;
static _Thread_local free_item *tensors;
static _Thread_local int tensors_n;

static int small_class(size_t bytes) {
  int c = 0;
  while ((SMALL_MIN << c) < bytes)
    c++;
  return c;
}

static void big_drop(int i) {
  big_bytes -= big[i].bytes;
  memmove(&big[i], &big[i + 1], (size_t)(big_n - i - 1) * sizeof *big);
  big_n--;
}

/* A miss for `want` bytes. In a loop of unchanging shapes misses stop
 * after the first step; with shapes that change from step to step (a
 * translation run's batches of varying length) the cache would fill with
 * blocks no request fits and hold them beside the new ones: such a run
 * peaked at 1.6 GB with 0.8 GB live. So cached blocks go back to malloc,
 * which can make the new block from them: under the first rule
 * (loom_set_cache_slack(-1)) as many bytes as the request while the cache
 * holds more than an eighth of the live bytes.
 *
 * Which blocks: those nearest the request in size (by ratio) first, as a
 * change of shape leaves blocks of the sizes it no longer asks for: the
 * old lengths' versions of the tensors now missing. The oldest went first
 * before (and above a quarter of the live bytes: an eighth then evicted
 * blocks the next step needed), but a training step frees its gradients
 * before its activations, so in a CNN-LSTM captioning step the forward's
 * misses (captions of another length) evicted the CNN's gradient blocks,
 * and the backward faulted them in again, 110 MB a step.
 *
 * That rule (loom_set_cache_slack(-1)) evicts too eagerly: a training step
 * starts with nearly all of the previous step's memory cached and little
 * live, so a miss early in the forward pass evicts blocks the rest of the
 * step needs, which then miss in turn. The Flickr8k captioning step
 * (captions of another length each batch) faulted in ~80 MB of fresh pages
 * a step, and even a loop of unchanging shapes settled into such a cycle
 * (the LSTM of bench/cost.c at batch 64: a 4 MiB miss evicting the 16 MiB
 * block backward needed, 23 MB of fresh pages a step; the 2-layer encoder
 * at 256 positions 515 ms and 628 MiB a step). So by default the rule is
 * a slack: the bytes held, live and cached, stay within 25 % above the
 * most the thread has had live (a peak that fades at misses, below). Those
 * two then ran 74 MiB and 43 ms, and 566 MiB and 385-433 ms; the
 * translation step held 638 MB instead of 666; captioning asks for 50 %
 * (an eighth or a quarter kept its cascade going). */
static bool room_needed(size_t freed, size_t want) {
  int slack = slack_percent;
  if (slack < 0)
    return freed < want && (int64_t)big_bytes > big_live / 8;
  /* big_live is below zero on a thread that frees other threads' blocks */
  int64_t live = big_live > 0 ? big_live : 0;
  return (int64_t)big_bytes + live > big_peak + big_peak / 100 * slack;
}

/* Hands cached blocks back, nearest the request in size first, while
 * room_needed says so. */
static void make_room(size_t want) {
  for (size_t freed = 0; big_n > 0 && room_needed(freed, want);) {
    int near = 0;
    double best = 0;
    for (int i = 0; i < big_n; i++) {
      double r = (double)big[i].bytes / (double)want;
      r = r < 1 ? 1 / r : r;
      if (i == 0 || r < best) {
        near = i;
        best = r;
      }
    }
    freed += big[near].bytes;
    free(big[near].block);
    big_drop(near);
  }
}

int loom_set_cache_slack(int percent) {
  if (percent < -1 || percent > 1000) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "set_cache_slack: %d%% is outside -1..1000", percent);
    return -1;
  }
  slack_percent = percent;
  return 0;
}

void *loom__block_alloc(size_t *bytes) {
  size_t want = *bytes;
  if (want <= SMALL_MAX) {
    int c = small_class(want);
    *bytes = SMALL_MIN << c;
    free_item *it = small[c];
    if (it) {
      small[c] = it->next;
      small_n[c]--;
      return it;
    }
    return aligned_alloc(64, *bytes);
  }
  int best = -1;
  for (int i = 0; want >= BIG_MIN && i < big_n; i++)
    if (big[i].bytes >= want && big[i].bytes - want <= want / 4 &&
        (best < 0 || big[i].bytes < big[best].bytes))
      best = i;
  if (want >= BIG_MIN) {
    big_live += (int64_t)(best < 0 ? want : big[best].bytes);
    big_peak = big_live > big_peak ? big_live : big_peak;
  }
  if (best < 0) {
    /* A past peak (one pass at a large batch) must not license a large
     * cache for good: each miss lets the peak fade by 1/64 of its
     * distance to what is live (after a few hundred misses it is gone),
     * and allocations raise it again as live bytes grow. A steady loop has
     * no misses, so its peak stays; a few misses early in a step, with
     * little live, lower it by a few percent, within the slack. */
    if (want >= BIG_MIN && big_peak > big_live)
      big_peak -= (big_peak - big_live) / 64;
    if (want >= BIG_MIN)
      make_room(want);
    void *block = aligned_alloc(64, want);
    if (!block && want >= BIG_MIN) /* not handed out after all */
      big_live -= (int64_t)want;
    return block;
  }
  char *block = big[best].block;
  *bytes = big[best].bytes;
  big_drop(best);
  return block;
}

void loom__block_free(void *block, size_t bytes) {
  if (KEEP && bytes <= SMALL_MAX) {
    int c = small_class(bytes);
    if ((size_t)small_n[c] * bytes < SMALL_LIST_BYTES) {
      free_item *it = block;
      it->next = small[c];
      small[c] = it;
      small_n[c]++;
      return;
    }
    free(block);
    return;
  }
  if (bytes >= BIG_MIN)
    big_live -= (int64_t)bytes;
  if (KEEP && bytes >= BIG_MIN && bytes <= BIG_BYTES) {
    while (big_n == BIG_SLOTS || big_bytes + bytes > BIG_BYTES) {
      free(big[0].block);
      big_drop(0);
    }
    big[big_n++] = (big_block){block, bytes};
    big_bytes += bytes;
    return;
  }
  free(block);
}

loom_tensor *loom__tensor_struct_alloc(void) {
  free_item *it = tensors;
  if (!it)
    return malloc(sizeof(loom_tensor));
  tensors = it->next;
  tensors_n--;
  return (loom_tensor *)it;
}

void loom__tensor_struct_free(loom_tensor *t) {
  if (!KEEP || tensors_n >= TENSOR_LIST) {
    free(t);
    return;
  }
  free_item *it = (free_item *)t;
  it->next = tensors;
  tensors = it;
  tensors_n++;
}

void loom__alloc_release(void) {
  for (int c = 0; c < SMALL_CLASSES; c++) {
    while (small[c]) {
      free_item *it = small[c];
      small[c] = it->next;
      free(it);
    }
    small_n[c] = 0;
  }
  while (big_n > 0) {
    free(big[0].block);
    big_drop(0);
  }
  big_peak = big_live > 0 ? big_live : 0;
  while (tensors) {
    free_item *it = tensors;
    tensors = it->next;
    free(it);
  }
  tensors_n = 0;
}
