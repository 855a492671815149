/* Sentence pairs as padded, sequence-first id matrices with their masks. */
#include "nmt.h"

#include <stdlib.h>
#include <string.h>

void nmt_batch_free(nmt_batch *b) {
  loom_tensor **all[] = {&b->src,    &b->src_len, &b->src_pad,
                         &b->tgt_in, &b->tgt_out, &b->tgt_pad};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    loom_release(*all[i]);
  *b = (nmt_batch){0};
}

static int64_t longest(int64_t B, const int64_t *len) {
  int64_t n = 0;
  for (int64_t i = 0; i < B; i++)
    n = len[i] > n ? len[i] : n;
  return n;
}

/* (L, B) ids from rows[i] (len[i] of them) shifted by `shift` positions,
 * `first` before them when shift is 1, `last` after them when >= 0; PAD
 * elsewhere. The padding mask (B, L) goes to *pad when asked. */
static loom_tensor *matrix(int64_t L, int64_t B, const int32_t *const *rows,
                           const int64_t *len, int shift, int64_t first,
                           int64_t last, loom_tensor **pad) {
  loom_tensor *t = loom_full(LOOM_I64, NMT_PAD, LOOM_SHAPE(L, B));
  loom_tensor *p = pad ? loom_ones(LOOM_BOOL, LOOM_SHAPE(B, L)) : NULL;
  int64_t *d = loom_data_i64(t);
  uint8_t *m = p ? loom_data_u8(p) : NULL;
  if (!d || (pad && !m))
    return NULL;
  for (int64_t i = 0; i < B; i++) {
    int64_t n = len[i] + (shift || last >= 0);
    if (shift)
      d[i] = first;
    for (int64_t k = 0; k < len[i]; k++)
      d[(k + shift) * B + i] = rows[i][k];
    if (last >= 0)
      d[len[i] * B + i] = last;
    if (m)
      memset(m + i * L, 0, (size_t)n);
  }
  if (pad)
    *pad = p;
  return t;
}

int nmt_batch_make(nmt_batch *b, int64_t B, const int32_t *const *src,
                   const int64_t *src_len, const int32_t *const *tgt,
                   const int64_t *tgt_len) {
  *b = (nmt_batch){.B = B};
  if (B < 1) {
    loom_set_error(LOOM_ERR_ARGUMENT, "translate: an empty batch");
    return -1;
  }
  loom_scope *s = loom_scope_begin();
  b->S = longest(B, src_len);
  b->T = tgt ? longest(B, tgt_len) + 1 : 0;
  for (int64_t i = 0; i < B; i++) {
    b->src_tokens += src_len[i];
    b->tgt_tokens += tgt ? tgt_len[i] + 1 : 0;
  }
  loom_tensor *src_pad = NULL, *tgt_pad = NULL;
  loom_tensor *x = matrix(b->S, B, src, src_len, 0, 0, -1, &src_pad);
  loom_tensor *len = loom_from_array(LOOM_I64, src_len, LOOM_SHAPE(B));
  loom_tensor *in = NULL, *out = NULL;
  if (tgt) {
    in = matrix(b->T, B, tgt, tgt_len, 1, NMT_BOS, -1, &tgt_pad);
    out = matrix(b->T, B, tgt, tgt_len, 0, 0, NMT_EOS, NULL);
  }
  bool ok = x && len && src_pad && (!tgt || (in && out && tgt_pad));
  if (ok) {
    b->src = loom_keep(x);
    b->src_len = loom_keep(len);
    b->src_pad = loom_keep(src_pad);
    b->tgt_in = loom_keep(in);
    b->tgt_out = loom_keep(out);
    b->tgt_pad = loom_keep(tgt_pad);
  }
  loom_scope_end(s);
  return ok ? 0 : -1;
}
