#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <loom/loom.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double app_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

unsigned char *app_read_file_max(const char *path, size_t max, size_t *len) {
  FILE *f = loom_file_open_read(path);
  if (!f)
    return NULL;
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      if (n > max) { /* a byte past the limit was read */
        loom_set_error(LOOM_ERR_FORMAT, "%s: larger than %zu bytes", path, max);
        break;
      }
      cap = cap && cap <= max / 2 ? 2 * cap : cap ? max + 1 : 1 << 16;
      cap = cap > max + 1 ? max + 1 : cap;
      unsigned char *g = realloc(buf, cap + 1);
      if (!g) {
        loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
        break;
      }
      buf = g;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) {
      if (ferror(f)) {
        loom_set_error(LOOM_ERR_IO, "%s: cannot read: %s", path,
                       strerror(errno));
        break;
      }
      fclose(f);
      buf[n] = 0;
      *len = n;
      return buf;
    }
  }
  fclose(f);
  free(buf);
  return NULL;
}

/* What app_read_file takes from a file whose size is not known. */
#define APP_STREAM_MAX ((size_t)1 << 30)

unsigned char *app_read_file(const char *path, size_t *len) {
  /* A regular file is as long as its size; a pipe or a device may never
   * end (/dev/zero), so it is read up to APP_STREAM_MAX bytes. */
  struct stat st;
  bool regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
  unsigned char *buf =
      app_read_file_max(path, regular ? SIZE_MAX / 2 : APP_STREAM_MAX, len);
  if (!buf && !regular && loom_last_status() == LOOM_ERR_FORMAT)
    fprintf(stderr,
            "%s: not a regular file, and longer than %zu bytes (1 GiB), the "
            "most read from a pipe or device; save it to a file\n",
            path, APP_STREAM_MAX);
  else if (!buf)
    fprintf(stderr, "%s\n", loom_last_error());
  if (!buf)
    loom_clear_error();
  return buf;
}

bool app_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return strcmp(a, b) == 0;
}

int app_refuse_overwrite(const char *prog, const char *out_flag,
                         const char *out, const char *in_flag, const char *in) {
  if (!out || !*out || !in || !*in || !app_same_file(out, in))
    return 0;
  fprintf(stderr, "%s: %s %s is the %s file; refusing to write over it\n", prog,
          out_flag, out, in_flag);
  return -1;
}

int app_refuse_overwrites(const char *prog, const app_named_path *outs,
                          int n_outs, const app_named_path *ins, int n_ins) {
  for (int i = 0; i < n_outs; i++) {
    for (int j = 0; j < n_ins; j++)
      if (app_refuse_overwrite(prog, outs[i].flag, outs[i].path, ins[j].flag,
                               ins[j].path) < 0)
        return -1;
    for (int j = 0; j < i; j++)
      if (app_refuse_overwrite(prog, outs[i].flag, outs[i].path, outs[j].flag,
                               outs[j].path) < 0)
        return -1;
  }
  return 0;
}

bool app_is_stdin(const char *path) {
  struct stat si, sp;
  return fstat(STDIN_FILENO, &si) == 0 && stat(path, &sp) == 0 &&
         si.st_dev == sp.st_dev && si.st_ino == sp.st_ino;
}

int app_refuse_overwrite_stdin(const char *prog, const char *out_flag,
                               const char *out) {
  if (!out || !*out || !strcmp(out, "-") || !app_is_stdin(out))
    return 0;
  fprintf(stderr,
          "%s: %s %s is the standard input; refusing to write over it\n", prog,
          out_flag, out);
  return -1;
}

/* Why no file can be put at path (a folder is there, or a device...), or
 * NULL. */
static const char *not_a_file(const char *path) {
  struct stat st;
  bool exists = stat(path, &st) == 0;
  if (path[strlen(path) - 1] == '/' || (exists && S_ISDIR(st.st_mode)))
    return "it is a folder, not a file";
  if (exists && !S_ISREG(st.st_mode))
    return "it is not a regular file (only a regular file is replaced)";
  return NULL;
}

/* Why files cannot be made in the folder dir, or NULL. */
static const char *folder_problem(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0)
    return strerror(errno);
  if (!S_ISDIR(st.st_mode))
    return strerror(ENOTDIR);
  return access(dir, W_OK | X_OK) != 0 ? strerror(errno) : NULL;
}

/* Why a file named base cannot be written in the folder dir by
 * loom_file_writer, or NULL: it writes BASE.tmpXXXXXX first (tensor/file.h),
 * so a name within that suffix of the folder's limit passes a check of
 * the name alone and fails once the work is done. */
static const char *name_problem(const char *dir, const char *base, char *why,
                                size_t size) {
  size_t n = strlen(base), extra = strlen(".tmpXXXXXX");
  long max = pathconf(dir, _PC_NAME_MAX);
  if (max <= 0 || n + extra <= (size_t)max)
    return NULL;
  snprintf(why, size,
           "its name is %zu bytes, and it is written as NAME.tmpXXXXXX "
           "first, %zu bytes, where the folder takes names of at most %ld",
           n, n + extra, max);
  return why;
}

int app_check_writable(const char *prog, const char *flag, const char *path) {
  if (!path)
    return 0;
  if (!*path) {
    fprintf(stderr, "%s: %s '' is not a file name\n", prog, flag);
    return -1;
  }
  const char *why = not_a_file(path);
  if (why) {
    fprintf(stderr, "%s: cannot write %s %s: %s\n", prog, flag, path, why);
    return -1;
  }
  const char *slash = strrchr(path, '/');
  size_t len = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
  char *dir = slash ? strndup(path, len) : strdup(".");
  if (!dir) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return -1;
  }
  why = folder_problem(dir);
  char name_why[256];
  if (why)
    fprintf(stderr, "%s: cannot write %s %s: the folder %s: %s\n", prog, flag,
            path, dir, why);
  else if ((why = name_problem(dir, slash ? slash + 1 : path, name_why,
                               sizeof name_why)))
    fprintf(stderr, "%s: cannot write %s %s: %s\n", prog, flag, path, why);
  free(dir);
  return why ? -1 : 0;
}

void app_report_write_error(const char *prog, const char *path) {
  const char *why = loom_last_status() ? loom_last_error() : "out of memory";
  size_t n = strlen(path);
  if (!strncmp(why, path, n) && why[n] == ':')
    fprintf(stderr, "%s: %s\n", prog, why);
  else
    fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, why);
  loom_clear_error();
}

int app_finish_stdout(const char *prog, const char *what) {
  errno = 0;
  /* the error flag also keeps failures of writes flushed earlier */
  if (fflush(stdout) == 0 && !ferror(stdout))
    return 0;
  if (errno)
    fprintf(stderr, "%s: cannot write %s to standard output: %s\n", prog, what,
            strerror(errno));
  else
    fprintf(stderr, "%s: cannot write %s to standard output\n", prog, what);
  return -1;
}

char *app_duration(double s, char *buf, size_t size) {
  if (!(s >= 0) || s > 1e8)
    snprintf(buf, size, "?");
  else if (s < 60)
    snprintf(buf, size, "%.0fs", s);
  else if (s < 3600)
    snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
  else
    snprintf(buf, size, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
  return buf;
}

void app_progress_begin(app_progress *p) {
  p->start = app_now();
  p->last_print = 0;
  p->tty = isatty(fileno(stderr));
}

void app_progress_line(app_progress *p, int64_t done, int64_t total,
                       double rate, const char *unit, const char *text,
                       bool force) {
  double now = app_now();
  if (!force && now - p->last_print < (p->tty ? 0.5 : 10))
    return;
  p->last_print = now;
  char eta[32] = "", r[32];
  if (total > 0 && done > 0) {
    double left = (now - p->start) / (double)done * (double)(total - done);
    char d[24];
    snprintf(eta, sizeof eta, "  ETA %s", app_duration(left, d, sizeof d));
  }
  if (rate >= 1e6)
    snprintf(r, sizeof r, "%.2fM", rate / 1e6);
  else if (rate >= 1e3)
    snprintf(r, sizeof r, "%.1fk", rate / 1e3);
  else
    snprintf(r, sizeof r, "%.0f", rate);
  if (total > 0)
    fprintf(stderr, "%s%lld/%lld  %s  %s %s/s%s%s", p->tty ? "\r\033[K" : "",
            (long long)done, (long long)total, text, r, unit, eta,
            p->tty ? "" : "\n");
  else
    fprintf(stderr, "%s%lld  %s  %s %s/s%s", p->tty ? "\r\033[K" : "",
            (long long)done, text, r, unit, p->tty ? "" : "\n");
  fflush(stderr);
}

void app_progress_end(app_progress *p) {
  if (p->tty)
    fprintf(stderr, "\n");
}
