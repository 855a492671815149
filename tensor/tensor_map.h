/* Named tensors: a map from names to tensors, with string metadata. State
 * dicts, optimizer states and checkpoints are maps, and a safetensors file
 * (safetensors.h) holds one.
 *
 * A loom_tensor_map owns its names, metadata strings, and one reference to
 * each tensor it holds; tensors taken out of it with loom_tensor_map_get are
 * borrowed (valid while the map holds them).
 */
#ifndef LOOM_TENSOR_MAP_H
#define LOOM_TENSOR_MAP_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_tensor_map loom_tensor_map;

/* An empty map (caller frees with loom_tensor_map_free); NULL on OOM. */
LOOM_API loom_tensor_map *loom_tensor_map_new(void);
LOOM_API void loom_tensor_map_free(loom_tensor_map *m);
/* Adds or replaces `name` (copied; the map keeps a reference to t). 0, or
 * -1 with an error: LOOM_ERR_ARGUMENT for a NULL argument, or a name a
 * safetensors file cannot hold: "__metadata__" (the file's metadata key)
 * or one that is not valid UTF-8 (the header is JSON). Any other name is
 * taken, the empty one included; the writer escapes quotes, backslashes
 * and control characters. */
LOOM_API int loom_tensor_map_set(loom_tensor_map *m, const char *name,
                                 loom_tensor *t);
/* The tensor named `name`, borrowed; NULL (no error set) if absent. */
LOOM_API loom_tensor *loom_tensor_map_get(const loom_tensor_map *m,
                                          const char *name);
/* Entries in insertion (for loaded maps: file offset) order. */
LOOM_API int loom_tensor_map_count(const loom_tensor_map *m);
LOOM_API const char *loom_tensor_map_name(const loom_tensor_map *m, int i);
LOOM_API loom_tensor *loom_tensor_map_at(const loom_tensor_map *m, int i);
/* String metadata (the file's "__metadata__"). Keys and values are taken
 * as bytes (an app's vocabulary may not be UTF-8): loom reads back what it
 * wrote, but readers that decode the header as JSON text refuse a file
 * whose metadata is not valid UTF-8. */
LOOM_API int loom_tensor_map_set_meta(loom_tensor_map *m, const char *key,
                                      const char *value);
LOOM_API const char *loom_tensor_map_meta(const loom_tensor_map *m,
                                          const char *key);
/* Metadata keys in insertion order (borrowed; NULL past the end). */
LOOM_API int loom_tensor_map_meta_count(const loom_tensor_map *m);
LOOM_API const char *loom_tensor_map_meta_key(const loom_tensor_map *m, int i);

#ifdef __cplusplus
}
#endif
#endif
