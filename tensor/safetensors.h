/* The safetensors file format: how loom saves models and checkpoints, and
 * exchanges weights with PyTorch (a file holds a loom_tensor_map).
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

#include "tensor_map.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes m to `path` (through a temporary file and a rename: a symbolic
 * link to a file at `path` is replaced, not written through, and a FIFO,
 * device, socket or directory there is refused; see file.h). Tensors of dtype float32, float64, int64,
 * int32, uint8 and bool are written as F32, F64, I64, I32, U8, BOOL. 0 or
 * -1 with an error naming the path. */
LOOM_API int loom_safetensors_save(const char *path, const loom_tensor_map *m);
/* Reads a file into a new map (caller frees). F32, F64, I64, I32, U8 and
 * BOOL are read as they are; F16, BF16 are widened to float32 and I8, I16,
 * U16, U32 to int64. NULL with an error naming
 * the file and offset on any malformed input; a path that is not a
 * regular file (a directory, a FIFO, a device) is refused (LOOM_ERR_IO),
 * without waiting for a FIFO's writer. */
LOOM_API loom_tensor_map *loom_safetensors_load(const char *path);
/* The same from memory; `source` names the buffer in error messages. */
LOOM_API loom_tensor_map *loom_safetensors_parse(const void *data, size_t len,
                                                 const char *source);

#ifdef __cplusplus
}
#endif
#endif
