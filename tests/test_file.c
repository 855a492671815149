/* tensor/file.c: inputs that say what is wrong with them, and outputs
 * written whole or not at all: the contents appear at once, the old mode
 * or the umask decides the new file's mode, temporary files of killed
 * writers go and a live writer's stays, and a failed write leaves the old
 * file and no temporary behind. */
#define _DEFAULT_SOURCE /* flock */
#include "file_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files in the suite's folder whose name starts with `prefix`. */
static int count_files(const char *prefix) {
  DIR *d = opendir(test_dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

static void write_text(const char *path, const char *text) {
  loom_file_writer *w = loom_file_writer_open(path);
  ck_assert_loom(w);
  ck_assert_int_ge(fputs(text, loom_file_writer_stream(w)), 0);
  ck_assert_msg(loom_file_writer_commit(w) == 0, "%s", loom_last_error());
}

static void assert_contents(const char *path, const char *text) {
  size_t len;
  char *got = test_slurp(path, &len);
  ck_assert_str_eq(got, text);
  free(got);
}

static mode_t mode_of(const char *path) {
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return st.st_mode & 07777;
}

START_TEST(test_writes_whole_file) {
  char path[512];
  test_path(path, sizeof path, "whole.txt");
  write_text(path, "first\n");
  assert_contents(path, "first\n");
  loom_file_writer *w = loom_file_writer_open(path);
  ck_assert_loom(w);
  fputs("second\n", loom_file_writer_stream(w));
  fflush(loom_file_writer_stream(w));
  assert_contents(path, "first\n"); /* not yet */
  ck_assert_int_eq(count_files("whole.txt.tmp"), 1);
  ck_assert_int_eq(loom_file_writer_commit(w), 0);
  assert_contents(path, "second\n");
  ck_assert_int_eq(count_files("whole.txt.tmp"), 0);
  /* abort: the old file stays, the temporary goes */
  w = loom_file_writer_open(path);
  ck_assert_loom(w);
  fputs("third\n", loom_file_writer_stream(w));
  loom_file_writer_abort(w);
  assert_contents(path, "second\n");
  ck_assert_int_eq(count_files("whole.txt.tmp"), 0);
}
END_TEST

START_TEST(test_mode_kept_or_from_umask) {
  char path[512];
  test_path(path, sizeof path, "mode.bin");
  mode_t old = umask(027);
  write_text(path, "new"); /* a new file: 0666 less the umask */
  ck_assert_int_eq(mode_of(path), 0640);
  ck_assert_int_eq(chmod(path, 0600), 0);
  umask(0);
  write_text(path, "again"); /* an old file's mode is kept */
  ck_assert_int_eq(mode_of(path), 0600);
  ck_assert_int_eq(chmod(path, 0751), 0);
  write_text(path, "once more");
  ck_assert_int_eq(mode_of(path), 0751);
  umask(old);
  /* the same through a checkpoint save */
  ck_assert_int_eq(chmod(path, 0600), 0);
  loom_tensor_map *m = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  ck_assert_int_eq(
      loom_tensor_map_set(m, "x", loom_ones(LOOM_F32, LOOM_SHAPE(3))), 0);
  loom_scope_end(s);
  ck_assert_int_eq(loom_safetensors_save(path, m), 0);
  ck_assert_int_eq(mode_of(path), 0600);
  loom_tensor_map_free(m);
}
END_TEST

/* Temporary files of killed writers go when the path is next written; a
 * live writer's (locked) stays, and names that only look alike stay. */
START_TEST(test_stale_temporaries_removed) {
  char path[512], stale[600], live[600], other[600], longer[600];
  test_path(path, sizeof path, "st.ckpt");
  snprintf(stale, sizeof stale, "%s.tmpAb12Cd", path);
  snprintf(live, sizeof live, "%s.tmpLive01", path);
  snprintf(other, sizeof other, "%s.tmpfoo", path);
  snprintf(longer, sizeof longer, "%s.best.tmpAb12Cd", path);
  test_write_file(stale, "killed", 6);
  test_write_file(live, "writing", 7);
  test_write_file(other, "mine", 4);
  test_write_file(longer, "best", 4);
  int fd = open(live, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(flock(fd, LOCK_EX), 0); /* a writer still at work */
  loom_tensor_map *m = loom_tensor_map_new();
  loom_scope *s = loom_scope_begin();
  ck_assert_int_eq(
      loom_tensor_map_set(m, "x", loom_ones(LOOM_F32, LOOM_SHAPE(2))), 0);
  loom_scope_end(s);
  ck_assert_int_eq(loom_safetensors_save(path, m), 0);
  loom_tensor_map_free(m);
  ck_assert_int_ne(access(stale, F_OK), 0);
  ck_assert_int_eq(access(live, F_OK), 0);
  ck_assert_int_eq(access(other, F_OK), 0);
  ck_assert_int_eq(access(longer, F_OK), 0);
  close(fd); /* that writer is killed: its file goes on the next save */
  write_text(path, "x");
  ck_assert_int_ne(access(live, F_OK), 0);
  /* two writers at once keep each other's temporary files */
  loom_file_writer *a = loom_file_writer_open(path);
  loom_file_writer *b = loom_file_writer_open(path);
  ck_assert_loom(a);
  ck_assert_loom(b);
  fputs("a", loom_file_writer_stream(a));
  fputs("b", loom_file_writer_stream(b));
  ck_assert_int_eq(loom_file_writer_commit(a), 0);
  ck_assert_int_eq(loom_file_writer_commit(b), 0);
  assert_contents(path, "b");
  ck_assert_int_eq(count_files("st.ckpt.tmp"), 1); /* only "other" */
}
END_TEST

/* A write that fails (here: over the file size limit) leaves the old file
 * and no temporary, and the error names the path and the reason the write
 * gave (EFBIG here; ENOSPC on a full disk), not "Input/output error". */
START_TEST(test_failed_write_changes_nothing) {
  char path[512];
  test_path(path, sizeof path, "full.txt");
  write_text(path, "old\n");
  struct rlimit saved, small;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
  small = saved;
  small.rlim_cur = 4096;
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
  loom_file_writer *w = loom_file_writer_open(path);
  ck_assert_loom(w);
  for (int i = 0; i < 1000; i++)
    fputs("0123456789", loom_file_writer_stream(w));
  /* a block larger than the stream's buffer is written past it, as a
   * checkpoint's tensors are: after it fails nothing is left to flush */
  static char block[65536];
  fwrite(block, 1, sizeof block, loom_file_writer_stream(w));
  int rc = loom_file_writer_commit(w);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, was);
  ck_assert_int_eq(rc, -1);
  ck_assert_msg(strstr(loom_last_error(), path) &&
                    strstr(loom_last_error(), "cannot write") &&
                    strstr(loom_last_error(), strerror(EFBIG)),
                "%s", loom_last_error());
  loom_clear_error();
  assert_contents(path, "old\n");
  ck_assert_int_eq(count_files("full.txt.tmp"), 0);
}
END_TEST

START_TEST(test_bad_paths_named) {
  char path[512];
  test_path(path, sizeof path, "no-such-dir/out.ckpt");
  ck_assert_ptr_null(loom_file_writer_open(path));
  ck_assert_msg(strstr(loom_last_error(), path) &&
                    strstr(loom_last_error(), "No such file"),
                "%s", loom_last_error());
  loom_clear_error();
  /* a directory is neither written over nor read as a file */
  ck_assert_ptr_null(loom_file_writer_open(test_dir));
  ck_assert_msg(strstr(loom_last_error(), "is a directory"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert_ptr_null(loom_file_open_read(test_dir));
  ck_assert_msg(strstr(loom_last_error(), "is a directory"), "%s",
                loom_last_error());
  loom_clear_error();
  ck_assert_ptr_null(loom_safetensors_load(test_dir));
  ck_assert_msg(strstr(loom_last_error(), test_dir) &&
                    strstr(loom_last_error(), "is a directory"),
                "%s", loom_last_error());
  loom_clear_error();
}
END_TEST

/* Only a regular file is replaced: the rename would put a file in place of
 * a FIFO (or, as root, of a device node such as /dev/null) instead of
 * writing to it. A FIFO at PATH, or a link to one, is refused at open and
 * stays a FIFO; one that appears after open is refused at commit. A link
 * to a regular file is itself replaced, its target left as it was. */
/* The pending error is the refusal to replace the FIFO at path; cleared. */
static void expect_fifo_refused(const char *path) {
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  ck_assert_msg(strstr(loom_last_error(), path) &&
                    strstr(loom_last_error(), "is a FIFO"),
                "%s", loom_last_error());
  loom_clear_error();
}

START_TEST(test_only_regular_files_replaced) {
  char fifo[512], link[512], target[512], late[512];
  test_path(fifo, sizeof fifo, "pipe");
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  ck_assert_ptr_null(loom_file_writer_open(fifo));
  expect_fifo_refused(fifo);
  loom_tensor_map *m = loom_tensor_map_new();
  loom_tensor *one = loom_ones(LOOM_F32, LOOM_SHAPE(3));
  ck_assert_int_eq(loom_tensor_map_set(m, "a", one), 0);
  ck_assert_int_eq(loom_safetensors_save(fifo, m), -1);
  expect_fifo_refused(fifo);
  struct stat st;
  ck_assert_int_eq(lstat(fifo, &st), 0);
  ck_assert(S_ISFIFO(st.st_mode));
  ck_assert_int_eq(count_files("pipe.tmp"), 0);
  /* nor read: opening it would wait for a writer that never comes */
  ck_assert_ptr_null(loom_safetensors_load(fifo));
  ck_assert_int_eq(loom_last_status(), LOOM_ERR_IO);
  ck_assert_ptr_nonnull(strstr(loom_last_error(), "not a regular file"));
  loom_clear_error();

  test_path(link, sizeof link, "pipe-link");
  ck_assert_int_eq(symlink(fifo, link), 0);
  ck_assert_ptr_null(loom_file_writer_open(link));
  expect_fifo_refused(link);
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert(S_ISLNK(st.st_mode));

  /* a FIFO made while the writer is open */
  test_path(late, sizeof late, "late");
  loom_file_writer *w = loom_file_writer_open(late);
  ck_assert_loom(w);
  fputs("data\n", loom_file_writer_stream(w));
  ck_assert_int_eq(mkfifo(late, 0600), 0);
  ck_assert_int_eq(loom_file_writer_commit(w), -1);
  expect_fifo_refused(late);
  ck_assert_int_eq(lstat(late, &st), 0);
  ck_assert(S_ISFIFO(st.st_mode));
  ck_assert_int_eq(count_files("late.tmp"), 0);

  /* a link to a regular file: the link becomes the new file */
  test_path(target, sizeof target, "target.txt");
  test_path(link, sizeof link, "file-link");
  write_text(target, "target\n");
  ck_assert_int_eq(symlink(target, link), 0);
  write_text(link, "new\n");
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  assert_contents(link, "new\n");
  assert_contents(target, "target\n");
  loom_tensor_map_free(m);
}
END_TEST

int main(void) {
  if (test_dir_make("file") < 0)
    return EXIT_FAILURE;
  Suite *s = suite_create("file");
  TCase *tc = tcase_create("file");
  tcase_add_test(tc, test_writes_whole_file);
  tcase_add_test(tc, test_mode_kept_or_from_umask);
  tcase_add_test(tc, test_stale_temporaries_removed);
  tcase_add_test(tc, test_failed_write_changes_nothing);
  tcase_add_test(tc, test_bad_paths_named);
  tcase_add_test(tc, test_only_regular_files_replaced);
  suite_add_tcase(s, tc);
  int rc = loom_run_suite(s);
  test_dir_remove();
  return rc;
}
