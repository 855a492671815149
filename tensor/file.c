/* Opening inputs, and writing outputs whole or not at all (see file.h). */
#define _GNU_SOURCE /* flock, fopencookie */
#include "file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

FILE *loom_file_open_read(const char *path) {
  if (!path) {
    loom_set_error(LOOM_ERR_ARGUMENT, "file_open_read: NULL path");
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  struct stat st;
  if (!f || fstat(fileno(f), &st) != 0) {
    loom_set_error(LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    if (f)
      fclose(f);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    loom_set_error(LOOM_ERR_IO, "%s: is a directory, not a file", path);
    fclose(f);
    return NULL;
  }
  return f;
}

struct loom_file_writer {
  char *path, *tmp;
  FILE *f;
  int fd;  /* the temporary file; f writes through it (stream_write) */
  int err; /* errno of the first write that failed, or 0 */
};

#define SUFFIX ".tmp" /* then six letters or digits */

static const char letters[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* The directory part of path ("." for none), and the name after it. */
static char *dir_of(const char *path, const char **base) {
  const char *slash = strrchr(path, '/');
  *base = slash ? slash + 1 : path;
  if (!slash)
    return strdup(".");
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, path, n);
    d[n] = '\0';
  }
  return d;
}

/* Is `name` BASE.tmpXXXXXX? */
static bool is_temp_of(const char *name, const char *base) {
  size_t b = strlen(base), s = strlen(SUFFIX);
  if (strncmp(name, base, b) || strncmp(name + b, SUFFIX, s) ||
      strlen(name) != b + s + 6)
    return false;
  return strspn(name + b + s, letters) == 6;
}

/* Removes the temporary files of killed writers of `path`: a live writer
 * holds a lock on its own, so one that can be locked is abandoned. */
static void remove_stale(const char *path) {
  const char *base;
  char *dir = dir_of(path, &base);
  int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!d && dfd >= 0)
    close(dfd);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!is_temp_of(e->d_name, base))
      continue;
    int fd =
        openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0)
      unlinkat(dfd, e->d_name, 0);
    if (fd >= 0)
      close(fd); /* drops the lock */
  }
  if (d)
    closedir(d);
  free(dir);
}

/* Creates PATH.tmpXXXXXX with mode 0666 (the umask applies) and locks it;
 * the descriptor, or -1 with errno set. */
static int create_temp(char *tmp, size_t at) {
  static _Atomic uint64_t counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
               ((uint64_t)getpid() << 40);
  for (int attempt = 0; attempt < 100; attempt++) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL * ++counter; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    for (int i = 0; i < 6; i++, z /= 62)
      tmp[at + i] = letters[z % 62];
    tmp[at + 6] = '\0';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      if (flock(fd, LOCK_EX) == 0)
        return fd;
      int e = errno;
      close(fd);
      unlink(tmp);
      errno = e;
      return -1;
    }
    if (errno != EEXIST)
      return -1;
  }
  return -1;
}

/* What `st` is when it is not a regular file ("a FIFO", ...), or NULL.
 * The rename at commit would put a regular file in its place: a FIFO or a
 * device node (as root, /dev/null) would be destroyed, not written to. */
static const char *not_regular(const struct stat *st) {
  if (S_ISREG(st->st_mode))
    return NULL;
  return S_ISDIR(st->st_mode)    ? "a directory"
         : S_ISFIFO(st->st_mode) ? "a FIFO"
         : S_ISCHR(st->st_mode)  ? "a character device"
         : S_ISBLK(st->st_mode)  ? "a block device"
         : S_ISSOCK(st->st_mode) ? "a socket"
                                 : "not a regular file";
}

static void refuse(const char *path, const char *what) {
  loom_set_error(LOOM_ERR_IO,
                 "%s: cannot write: is %s (only a regular file is replaced)",
                 path, what);
}

/* The stream's writes, kept so that commit can say why one failed: a
 * stream only keeps that one did (ferror), and errno is overwritten by
 * whatever runs between a failed fwrite and commit. Without this a full
 * disk was reported as "Input/output error". */
static ssize_t stream_write(void *cookie, const char *buf, size_t n) {
  loom_file_writer *w = cookie;
  size_t done = 0;
  while (done < n) {
    ssize_t k = write(w->fd, buf + done, n - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (!w->err)
        w->err = k < 0 ? errno : EIO;
      errno = w->err;
      break; /* fewer bytes than asked marks the stream's error */
    }
    done += (size_t)k;
  }
  return (ssize_t)done;
}

loom_file_writer *loom_file_writer_open(const char *path) {
  if (!path)
    return loom_null_argument("file_writer_open");
  if (!*path) {
    loom_set_error(LOOM_ERR_ARGUMENT, "file_writer_open: no path");
    return NULL;
  }
  /* stat follows a symbolic link: a link to a FIFO is refused as the FIFO
   * is, though the rename would replace only the link, since whoever
   * names it means the thing it points to. */
  struct stat st;
  const char *what;
  if (stat(path, &st) == 0 && (what = not_regular(&st))) {
    refuse(path, what);
    return NULL;
  }
  remove_stale(path);
  loom_file_writer *w = calloc(1, sizeof *w);
  size_t n = strlen(path);
  if (w) {
    w->fd = -1;
    w->path = strdup(path);
    w->tmp = malloc(n + strlen(SUFFIX) + 7);
  }
  if (!w || !w->path || !w->tmp) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    loom_file_writer_abort(w);
    return NULL;
  }
  memcpy(w->tmp, path, n);
  memcpy(w->tmp + n, SUFFIX, strlen(SUFFIX));
  int fd = create_temp(w->tmp, n + strlen(SUFFIX));
  w->fd = fd;
  static const cookie_io_functions_t io = {.write = stream_write};
  if (fd < 0 || !(w->f = fopencookie(w, "wb", io))) {
    loom_set_error(LOOM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(w->tmp);
    }
    w->fd = -1;
    free(w->tmp);
    w->tmp = NULL; /* nothing to remove */
    loom_file_writer_abort(w);
    return NULL;
  }
  return w;
}

FILE *loom_file_writer_stream(loom_file_writer *w) {
  return w ? w->f : loom_null_argument("file_writer_stream");
}

/* fsync of the directory holding path, so the rename is on the disk too;
 * file systems that cannot sync a directory (EINVAL) are not an error. */
static int sync_dir(const char *path) {
  const char *base;
  char *dir = dir_of(path, &base);
  int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  int rc = fd >= 0 && (fsync(fd) == 0 || errno == EINVAL) ? 0 : -1;
  int e = errno;
  if (fd >= 0)
    close(fd);
  free(dir);
  errno = e;
  return rc;
}

int loom_file_writer_commit(loom_file_writer *w) {
  if (!w) {
    loom_set_error(LOOM_ERR_ARGUMENT, "file_writer_commit: NULL writer");
    return -1;
  }
  /* The temporary file stays open, and so locked, until after the rename:
   * no other writer can take it for abandoned. */
  int fd = w->fd, e = 0;
  bool renamed = false, exists = false;
  struct stat old;
  const char *what = NULL;
  errno = 0;
  if (fflush(w->f) != 0 || ferror(w->f))
    e = w->err ? w->err : errno ? errno : EIO;
  /* checked again: something other than a file may have appeared at PATH
   * since open */
  else if ((exists = stat(w->path, &old) == 0) && (what = not_regular(&old)))
    e = EEXIST;
  else if (exists && fchmod(fd, old.st_mode & 07777) != 0)
    e = errno;
  else if (fsync(fd) != 0 || rename(w->tmp, w->path) != 0)
    e = errno;
  else {
    renamed = true;
    if (sync_dir(w->path) != 0)
      e = errno;
  }
  if (fclose(w->f) != 0 && !e)
    e = errno ? errno : EIO;
  w->f = NULL;
  if (close(fd) != 0 && !e) /* drops the lock */
    e = errno;
  w->fd = -1;
  if (e) {
    if (what)
      refuse(w->path, what);
    else
      loom_set_error(LOOM_ERR_IO, "%s: cannot write: %s", w->path,
                     strerror(e));
    if (!renamed)
      unlink(w->tmp);
  }
  free(w->tmp);
  w->tmp = NULL;
  loom_file_writer_abort(w);
  return e ? -1 : 0;
}

void loom_file_writer_abort(loom_file_writer *w) {
  if (!w)
    return;
  if (w->f)
    fclose(w->f);
  if (w->fd >= 0)
    close(w->fd);
  if (w->tmp)
    unlink(w->tmp);
  free(w->tmp);
  free(w->path);
  free(w);
}
