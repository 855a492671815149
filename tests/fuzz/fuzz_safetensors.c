/* loom_safetensors_parse on arbitrary bytes: it fails cleanly or gives a
 * map whose every entry can be read. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  void *buf = fuzz_copy(data, size);
  loom_tensor_map *m = loom_safetensors_parse(buf, size, "fuzz");
  for (int i = 0; m && i < loom_tensor_map_count(m); i++) {
    const char *name = loom_tensor_map_name(m, i);
    loom_tensor *t = loom_tensor_map_at(m, i);
    if (!name || !t || loom_tensor_map_get(m, name) != t)
      abort();
    volatile double sum = 0; /* every element is readable */
    loom_scope *s = loom_scope_begin();
    if (loom_numel(t) > 0) /* any dtype: I32's and I64's too */
      sum += loom_item(loom_sum_all(loom_to_dtype(t, LOOM_F64)));
    loom_scope_end(s);
  }
  for (int i = 0; m && i < loom_tensor_map_meta_count(m); i++)
    if (!loom_tensor_map_meta(m, loom_tensor_map_meta_key(m, i)))
      abort();
  loom_tensor_map_free(m);
  loom_clear_error();
  free(buf);
  return 0;
}
