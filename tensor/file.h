/* Files as loom reads and writes them: an input that names what is wrong
 * with it, and outputs written whole or not at all (checkpoints, and the
 * apps' vectors, vocabularies and pictures).
 *
 * A loom_file_writer writes into a temporary file beside its target,
 * PATH.tmpXXXXXX, and commit flushes it to the disk, renames it over PATH
 * and syncs the directory: a crash or a kill at any moment leaves either
 * the old file or the new one, never a part. The new file keeps the mode
 * the old one had; a file that did not exist gets 0666 less the umask, as
 * fopen would make it. Opening a writer removes the temporary files that
 * earlier writers of the same PATH left when they were killed (a live
 * writer's is locked and kept).
 *
 * Only a regular file at PATH is replaced: a directory, FIFO, device node
 * or socket there is refused (LOOM_ERR_IO naming the path and what it is)
 * when the writer opens and again at commit, as the rename would put a
 * file in its place instead of writing to it. A symbolic link at PATH is
 * judged by what it points to (a link to a FIFO is refused); a link to a
 * regular file, or a dangling one, is itself replaced by the new file, and
 * the file it pointed to is left as it was. */
#ifndef LOOM_FILE_H
#define LOOM_FILE_H

#include "tensor.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* fopen(path, "rb"), refusing a directory: NULL with an error naming the
 * path and the reason ("is a directory", or the system's). */
LOOM_API FILE *loom_file_open_read(const char *path);

typedef struct loom_file_writer loom_file_writer;

/* Starts writing `path` (a new temporary file; PATH itself is untouched
 * until commit). NULL with an error naming the path: something other than
 * a regular file there (a directory, FIFO, device, socket), or the
 * temporary file cannot be made. */
LOOM_API loom_file_writer *loom_file_writer_open(const char *path);
/* The stream to write the contents to (owned by the writer). It writes
 * through stdio only: it has no descriptor of its own (fileno gives -1), so
 * that the reason of a failed write is kept for commit. */
LOOM_API FILE *loom_file_writer_stream(loom_file_writer *w);
/* Makes the contents PATH: 0, or -1 with an error naming the path and the
 * reason (a failed write, a full disk, something other than a regular
 * file now at PATH, ...), the temporary file removed and PATH as it was.
 * Frees w either way. */
LOOM_API int loom_file_writer_commit(loom_file_writer *w);
/* Drops what was written: removes the temporary file, frees w (NULL is
 * ignored). PATH is untouched. */
LOOM_API void loom_file_writer_abort(loom_file_writer *w);

#ifdef __cplusplus
}
#endif
#endif
