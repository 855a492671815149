/* A list of sequences of different lengths as one padded batch with its
 * lengths, the form the runner takes (loom_rnn_forward), and back. */
#include "rnn.h"

#include <stdlib.h>
#include <string.h>

loom_tensor *loom_pad_sequence(loom_tensor *const *seqs, int n,
                               bool batch_first, double padding_value,
                               loom_tensor **lengths) {
  if (lengths)
    *lengths = NULL;
  if (!seqs)
    return loom_null_argument("pad_sequence");
  if (n < 1)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT,
                     "pad_sequence: %d sequences (at least 1)", n);
  for (int i = 0; i < n; i++)
    if (!seqs[i])
      return loom_null_argument("pad_sequence");
  const loom_tensor *first = seqs[0];
  int nd = loom_ndim(first);
  int64_t T = 0;
  for (int i = 0; i < n; i++) {
    const loom_tensor *s = seqs[i];
    if (nd < 1 || loom_ndim(s) != nd ||
        loom_dtype_of(s) != loom_dtype_of(first) ||
        memcmp(loom_shape(s) + 1, loom_shape(first) + 1,
               (size_t)(nd - 1) * sizeof(int64_t)))
      return LOOM_FAIL(LOOM_ERR_SHAPE,
                       "pad_sequence: sequence %d is %s %s, sequence 0 %s %s "
                       "(all (L, ...) with the same trailing dims and dtype)",
                       i, loom_dtype_name(loom_dtype_of(s)), loom_shape_text(s),
                       loom_dtype_name(loom_dtype_of(first)),
                       loom_shape_text(first));
    if (loom_shape(s)[0] > T)
      T = loom_shape(s)[0];
  }
  loom_tensor **rows = malloc((size_t)n * sizeof *rows);
  int64_t *len = malloc((size_t)n * sizeof *len);
  loom_tensor *out = NULL;
  if (!rows || !len) {
    loom_set_error(LOOM_ERR_MEMORY, "pad_sequence: out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    len[i] = loom_shape(seqs[i])[0];
    rows[i] = seqs[i];
    if (len[i] < T) {
      int64_t shape[LOOM_MAX_DIMS];
      memcpy(shape, loom_shape(seqs[i]), (size_t)nd * sizeof *shape);
      shape[0] = T - len[i];
      loom_tensor *parts[2] = {
          seqs[i], loom_full(loom_dtype_of(first), padding_value, nd, shape)};
      if (!(rows[i] = loom_concat(parts, 2, 0)))
        goto done;
    }
  }
  out = loom_stack(rows, n, batch_first ? 0 : 1);
  if (out && lengths &&
      !(*lengths = loom_from_array(LOOM_I64, len, LOOM_SHAPE(n))))
    out = NULL;
done:
  free(rows);
  free(len);
  return out;
}

int loom_unpad_sequence(const loom_tensor *padded, const loom_tensor *lengths,
                        bool batch_first, loom_tensor **seqs, int n) {
  for (int i = 0; seqs && i < n; i++)
    seqs[i] = NULL;
  if (!padded || !lengths || !seqs)
    return loom_null_argument("unpad_sequence"), -1;
  if (loom_ndim(padded) < 2)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "unpad_sequence: padded %s needs (T, B, ...) dims",
                          loom_shape_text(padded)),
           -1;
  int bdim = batch_first ? 0 : 1;
  int64_t B = loom_shape(padded)[bdim], T = loom_shape(padded)[1 - bdim];
  if (loom_dtype_of(lengths) != LOOM_I64 || loom_ndim(lengths) != 1 ||
      loom_shape(lengths)[0] != B || n != B)
    return loom_set_error(LOOM_ERR_SHAPE,
                          "unpad_sequence: lengths %s %s and room for %d "
                          "sequences, for padded %s (int64 (%lld) and %lld)",
                          loom_dtype_name(loom_dtype_of(lengths)),
                          loom_shape_text(lengths), n, loom_shape_text(padded),
                          (long long)B, (long long)B),
           -1;
  loom_tensor *c = loom_contiguous(lengths);
  const int64_t *len = c ? loom_data_i64(c) : NULL;
  if (!len)
    return -1;
  for (int64_t b = 0; b < B; b++)
    if (len[b] < 0 || len[b] > T)
      return loom_set_error(LOOM_ERR_INDEX,
                            "unpad_sequence: length %lld of sequence %lld "
                            "outside [0, %lld]",
                            (long long)len[b], (long long)b, (long long)T),
             -1;
  for (int64_t b = 0; b < B; b++) {
    seqs[b] = loom_narrow(loom_select(padded, bdim, b), 0, 0, len[b]);
    if (!seqs[b]) {
      for (int64_t i = 0; i < b; i++)
        seqs[i] = NULL;
      return -1;
    }
  }
  return 0;
}
