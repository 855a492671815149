/* Named tensors and the safetensors file format: how loom saves models and
 * checkpoints, and exchanges weights with PyTorch.
 *
 * A loom_tensor_map owns its names, metadata strings, and one reference to
 * each tensor it holds; tensors taken out of it with loom_tensor_map_get are
 * borrowed (valid while the map holds them).
 *
 * The reader checks the whole header before it touches tensor data: header
 * length against the file size, JSON syntax, dtype names, shapes, and that
 * the data offsets are in bounds, match each shape's byte size, and tile
 * the data area in order without overlap or gaps. Errors name the file and
 * the byte offset. Writers write a temporary file and rename it, so a crash
 * mid-save leaves the previous file intact.
 */
#ifndef LOOM_SAFETENSORS_H
#define LOOM_SAFETENSORS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_tensor_map loom_tensor_map;

/* An empty map (caller frees with loom_tensor_map_free); NULL on OOM. */
LOOM_API loom_tensor_map *loom_tensor_map_new(void);
LOOM_API void loom_tensor_map_free(loom_tensor_map *m);
/* Adds or replaces `name` (the map keeps a reference to t). 0 or -1. */
LOOM_API int loom_tensor_map_set(loom_tensor_map *m, const char *name,
                                 loom_tensor *t);
/* The tensor named `name`, borrowed; NULL (no error set) if absent. */
LOOM_API loom_tensor *loom_tensor_map_get(const loom_tensor_map *m,
                                          const char *name);
/* Entries in insertion (for loaded maps: file offset) order. */
LOOM_API int loom_tensor_map_count(const loom_tensor_map *m);
LOOM_API const char *loom_tensor_map_name(const loom_tensor_map *m, int i);
LOOM_API loom_tensor *loom_tensor_map_at(const loom_tensor_map *m, int i);
/* String metadata (the file's "__metadata__"). */
LOOM_API int loom_tensor_map_set_meta(loom_tensor_map *m, const char *key,
                                      const char *value);
LOOM_API const char *loom_tensor_map_meta(const loom_tensor_map *m,
                                          const char *key);
/* Metadata keys in insertion order (borrowed; NULL past the end). */
LOOM_API int loom_tensor_map_meta_count(const loom_tensor_map *m);
LOOM_API const char *loom_tensor_map_meta_key(const loom_tensor_map *m, int i);

/* Writes m to `path` (through a temporary file and a rename). Tensors of
 * dtype float32, float64, int64, uint8 and bool are written as F32, F64,
 * I64, U8, BOOL. 0 or -1 with an error naming the path. */
LOOM_API int loom_safetensors_save(const char *path, const loom_tensor_map *m);
/* Reads a file into a new map (caller frees). F16, BF16 are widened to
 * float32 and I8, I16, I32, U16, U32 to int64. NULL with an error naming
 * the file and offset on any malformed input. */
LOOM_API loom_tensor_map *loom_safetensors_load(const char *path);
/* The same from memory; `source` names the buffer in error messages. */
LOOM_API loom_tensor_map *loom_safetensors_parse(const void *data, size_t len,
                                                 const char *source);

#ifdef __cplusplus
}
#endif
#endif
