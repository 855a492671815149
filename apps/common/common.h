/* Helpers shared by the bundled apps: validated numbers from the command
 * line, a progress line, small file and timing utilities, and the drawing
 * layer of picture.h (plots, heatmaps, captioned images). */
#ifndef LOOM_APPS_COMMON_H
#define LOOM_APPS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "picture.h"

/* ---- Numbers from the command line (options.c) ----
 *
 * Each parser takes the whole of `text` as one number (nothing may come
 * before or after it), checks it is finite and in range, and stores it in
 * *out, returning 0. Otherwise it leaves *out alone, prints one line naming
 * the program, the flag, the value and the range allowed, and returns -1:
 *   charlm: --steps 'abc' is not an integer in 1..10^12
 *   charlm: --lr 'inf' is not a number in (0, 1000]
 * `prog` and `flag` are used only in that message. */

/* An integer in lo..hi (inclusive). Decimal digits with an optional sign;
 * a whole number written with a fraction or exponent ("1e6", "20.0") is
 * accepted when it is exact (at most 2^53). */
int app_parse_int(const char *prog, const char *flag, const char *text,
                  int64_t lo, int64_t hi, int64_t *out);

/* The range of a real option; an open end excludes its bound:
 * (app_range){.lo = 0, .hi = 1, .hi_open = true} is [0, 1). */
typedef struct {
  double lo, hi;
  bool lo_open, hi_open;
} app_range;

/* A finite real (strtod's syntax; inf and nan are refused) in range r. */
int app_parse_real(const char *prog, const char *flag, const char *text,
                   app_range r, double *out);

/* For values read from files, checked as the command line's are: whether
 * v (finite or not) lies in r, and the ranges as the messages above write
 * them ("(0, 1000]", "1..10^12"), into buf. */
bool app_in_range(double v, app_range r);
const char *app_range_text(app_range r, char *buf, size_t size);
const char *app_int_range_text(int64_t lo, int64_t hi, char *buf, size_t size);

/* ---- Time, files, progress ---- */

/* Seconds on a monotonic clock. */
double app_now(void);

/* Reads a whole file (caller frees); NULL with a message on stderr (a
 * directory is refused as one). A pipe or device (not a regular file) is
 * read up to 1 GiB: /dev/zero would never end. */
unsigned char *app_read_file(const char *path, size_t *len);
/* Reads a whole file of at most max bytes (caller frees; a NUL follows the
 * *len bytes). NULL with a loom error naming the path: LOOM_ERR_IO when it
 * cannot be opened or read, LOOM_ERR_FORMAT when it is larger than max,
 * LOOM_ERR_MEMORY. */
unsigned char *app_read_file_max(const char *path, size_t max, size_t *len);

/* Whether two paths name one file: the same device and inode when both
 * exist, else the same path. */
bool app_same_file(const char *a, const char *b);
/* An output must not be an input: 0 if `out` (given as out_flag) is not
 * the file `in` (in_flag) or either is NULL or ""; else -1 after saying
 * "PROG: --checkpoint X is the --data file; refusing to write over it". */
int app_refuse_overwrite(const char *prog, const char *out_flag,
                         const char *out, const char *in_flag, const char *in);
/* A file and the flag that names it (flag: "--checkpoint", or a derived
 * name's "--checkpoint (FILE.best)"). */
typedef struct {
  const char *flag, *path;
} app_named_path;
/* app_refuse_overwrite for every output against every input and against
 * the outputs before it (NULL and "" paths are skipped): 0, or -1 after
 * the first refusal. */
int app_refuse_overwrites(const char *prog, const app_named_path *outs,
                          int n_outs, const app_named_path *ins, int n_ins);
/* Whether `path` is the file open as standard input (its device and
 * inode); false when it does not exist or the input is not a file. */
bool app_is_stdin(const char *path);
/* 0 if `out` is not standard input's file (or is NULL, "" or "-"); else -1
 * after saying "PROG: --output X is the standard input; refusing to write
 * over it". */
int app_refuse_overwrite_stdin(const char *prog, const char *out_flag,
                               const char *out);
/* Whether a file written after long work (training) can be written at
 * `path`, named by `flag` in messages, so that a run is not lost for it at
 * the end. The path must name a file: not "", not ending in '/', not an
 * existing folder or other non-regular file (the writer replaces only a
 * regular file, by renaming a new one over it, so an existing read-only
 * file is fine), in a folder that exists and may be written to and
 * searched, with a name the folder takes with the writer's temporary
 * suffix (.tmpXXXXXX) after it. Nothing is created or opened. NULL is
 * skipped; "" is refused: an app that documents '' as "no such output"
 * skips the call for it. 0, or -1 after one line such as
 *   charlm: --checkpoint '' is not a file name
 *   charlm: cannot write --plot /x/y.png: the folder /x: No such file or
 *   directory
 *   charlm: cannot write --plot out: it is a folder, not a file
 * Apps refuse '' as a bad argument and the rest as I/O errors: tell them
 * apart by *path. */
int app_check_writable(const char *prog, const char *flag, const char *path);
/* Reports a failed write of `path` from the pending loom error, naming the
 * path once ("PROG: PATH: cannot write: No space left on device"), and
 * clears the error. */
void app_report_write_error(const char *prog, const char *path);
/* Flushes standard output and checks that all written to it arrived (a
 * full disk, `> /dev/full`, would otherwise pass with status 0). 0, or -1
 * after one line such as
 *   caption: cannot write the captions to standard output: No space left
 *   on device */
int app_finish_stdout(const char *prog, const char *what);

/* A progress line redrawn in place on a terminal (plain lines otherwise):
 * "step 120/2000  loss 1.873 (2.70 bpc)  41.2k chars/s  ETA 3m12s". */
typedef struct {
  double start, last_print;
  bool tty;
} app_progress;
void app_progress_begin(app_progress *p);
/* Prints when at least `every` seconds passed (or force); done and total
 * give the ETA (total <= 0: none); text is the middle part. */
void app_progress_line(app_progress *p, int64_t done, int64_t total,
                       double rate, const char *unit, const char *text,
                       bool force);
void app_progress_end(app_progress *p);
/* "3m12s", "1h02m" into buf. */
char *app_duration(double seconds, char *buf, size_t size);

#endif
