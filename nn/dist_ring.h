/* loom's ring all-reduce: the sum of a float32 or float64 buffer over all
 * ranks, in place, over the transport's point-to-point messages, as
 * Baidu's ring all-reduce, Horovod and NCCL do it. The buffer is cut into
 * one chunk per rank; in P - 1 steps each rank passes a chunk to its right
 * neighbour and adds the one from its left (a reduce-scatter: rank r then
 * holds the whole sum of chunk r + 1), and in P - 1 more the finished
 * chunks go round (an all-gather). Each rank sends and receives
 * 2 (P - 1) / P of the buffer in 2 (P - 1) steps, whatever P is: the cost
 * alpha 2 (P - 1) + 2 (P - 1) / P * n / beta that docs/distributed.md
 * builds on. Every element is summed in one order, then copied, so every
 * rank ends with the same bits. A scale (1 / P for a mean) is applied as
 * each finished chunk is made, to n / P elements per rank rather than a
 * pass over the whole buffer. Not installed. */
#ifndef LOOM_DIST_RING_H
#define LOOM_DIST_RING_H

#include "dist_transport.h"

typedef struct dist_ring {
  char *buf, *incoming; /* incoming: one chunk's room (owned) */
  int64_t count;
  size_t item;
  dist_type type;
  int rank, size, tag;
  double scale;
  int step; /* 0 .. 2 (size - 1): reduce-scatter steps, then all-gather */
  bool sent, received;
  dist_request send, receive;
} dist_ring;

/* Starts the sum of buf[0..count) (float32 or float64) over all ranks,
 * times `scale` (rounded to the buffer's type; a world of one is left
 * as it is), with messages tagged `tag` (every rank gives the same, and
 * no other ring in flight has it). 0, or -1 with an error. */
int loom__ring_start(dist_ring *g, void *buf, int64_t count, dist_type type,
                     double scale, int tag);
/* Moves the ring along as far as messages allow: 1 when done (buf holds
 * the sum), 0 if not yet, -1 with an error. */
int loom__ring_test(dist_ring *g);
/* Frees what the ring holds (after it is done, or the world failed). */
void loom__ring_free(dist_ring *g);

#endif
