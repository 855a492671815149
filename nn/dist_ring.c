/* loom's ring all-reduce (see dist_ring.h), as a state machine that each
 * test advances: a step's two messages, and in the reduce-scatter steps the
 * addition of the chunk that came in. */
#include "dist_ring.h"
#include "distributed.h"

#include <stdlib.h>
#include <string.h>

/* Chunk c's first element (c in 0..size; chunk c ends where c + 1 starts). */
static int64_t chunk_start(const dist_ring *g, int c) {
  return g->count * c / g->size;
}

static int64_t chunk_count(const dist_ring *g, int c) {
  return chunk_start(g, c + 1) - chunk_start(g, c);
}

static char *chunk_at(const dist_ring *g, int c) {
  return g->buf + (size_t)chunk_start(g, c) * g->item;
}

static int mod(int a, int p) { return ((a % p) + p) % p; }

/* The chunks of step s: the one sent right and the one received from the
 * left. Reduce-scatter (s < P - 1): send r - s, receive r - s - 1 (to add);
 * all-gather: send r + 1 - s', receive r - s' (s' = s - (P - 1)). */
static void chunks_of(const dist_ring *g, int s, int *out, int *in) {
  int p = g->size, r = g->rank;
  if (s < p - 1) {
    *out = mod(r - s, p);
    *in = mod(r - s - 1, p);
  } else {
    s -= p - 1;
    *out = mod(r + 1 - s, p);
    *in = mod(r - s, p);
  }
}

static int post_step(dist_ring *g) {
  int out, in, p = g->size;
  chunks_of(g, g->step, &out, &in);
  bool reducing = g->step < p - 1;
  g->sent = g->received = false;
  if (loom__transport_receive(reducing ? g->incoming : chunk_at(g, in),
                              chunk_count(g, in) * (int64_t)g->item,
                              mod(g->rank - 1, p), g->tag, &g->receive) < 0)
    return -1;
  return loom__transport_send(chunk_at(g, out),
                              chunk_count(g, out) * (int64_t)g->item,
                              mod(g->rank + 1, p), g->tag, &g->send);
}

/* chunk c += what came in; on the last reduce-scatter step the chunk is
 * finished, and scaled. */
static void add_incoming(dist_ring *g, int c, bool last) {
  int64_t n = chunk_count(g, c);
  if (g->type == DIST_F32) {
    float *dst = (float *)chunk_at(g, c), s = (float)g->scale;
    const float *src = (const float *)g->incoming;
    if (last && s != 1)
      for (int64_t i = 0; i < n; i++)
        dst[i] = (dst[i] + src[i]) * s;
    else
      for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
  } else {
    double *dst = (double *)chunk_at(g, c), s = g->scale;
    const double *src = (const double *)g->incoming;
    if (last && s != 1)
      for (int64_t i = 0; i < n; i++)
        dst[i] = (dst[i] + src[i]) * s;
    else
      for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
  }
}

int loom__ring_start(dist_ring *g, void *buf, int64_t count, dist_type type,
                     double scale, int tag) {
  *g = (dist_ring){.buf = buf,
                   .count = count,
                   .type = type,
                   .scale = scale,
                   .item = type == DIST_F32 ? sizeof(float) : sizeof(double),
                   .rank = loom_dist_rank(),
                   .size = loom_dist_size(),
                   .tag = tag};
  if (g->size == 1)
    return 0;
  int64_t largest = (count + g->size - 1) / g->size;
  g->incoming = malloc((size_t)(largest ? largest : 1) * g->item);
  if (!g->incoming) {
    loom_set_error(LOOM_ERR_MEMORY, "all-reduce: out of memory");
    return -1;
  }
  return post_step(g);
}

int loom__ring_test(dist_ring *g) {
  int steps = 2 * (g->size - 1);
  while (g->step < steps) {
    if (!g->received) {
      int done = loom__transport_test(&g->receive);
      if (done < 0)
        return -1;
      g->received = done;
    }
    if (!g->sent) {
      int done = loom__transport_test(&g->send);
      if (done < 0)
        return -1;
      g->sent = done;
    }
    if (!g->received || !g->sent)
      return 0;
    if (g->step < g->size - 1) {
      int out, in;
      chunks_of(g, g->step, &out, &in);
      add_incoming(g, in, g->step == g->size - 2);
    }
    if (++g->step < steps && post_step(g) < 0)
      return -1;
  }
  return 1;
}

void loom__ring_free(dist_ring *g) {
  free(g->incoming);
  g->incoming = NULL;
}
