/* The Flickr8k layout: a captions file (`image#k<TAB>caption`), the split
 * (images.tsv of the 1k subset, or the three official lists of names),
 * and the images (folders, tar shards, or the subset's raw arrays). */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CAP_MAX_PARTS 64 /* raw array parts */

/* ---- lines of a text held in memory ---- */

typedef struct {
  const char *text, *path;
  size_t len, pos;
  int64_t line_no;
} lines;

/* The next line without its "\n" or "\r\n": 1, or 0 at the end. A line
 * over CAP_MAX_LINE bytes or holding a NUL byte is an error (-1). */
static int next_line(lines *l, const char **s, size_t *n) {
  if (l->pos >= l->len)
    return 0;
  const char *start = l->text + l->pos;
  const char *nl = memchr(start, '\n', l->len - l->pos);
  size_t len = nl ? (size_t)(nl - start) : l->len - l->pos;
  l->pos += len + (nl ? 1 : 0);
  l->line_no++;
  if (len && start[len - 1] == '\r')
    len--;
  if (len > CAP_MAX_LINE || memchr(start, 0, len)) {
    loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: %s", l->path,
                   (long long)l->line_no,
                   len > CAP_MAX_LINE ? "line longer than 65536 bytes"
                                      : "NUL byte in a text file");
    return -1;
  }
  *s = start;
  *n = len;
  return 1;
}

static void trim(const char **s, size_t *n) {
  while (*n && (**s == ' ' || **s == '\t'))
    (*s)++, (*n)--;
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
    (*n)--;
}

/* buf = dir/name; false (error recorded) when it does not fit. */
static bool join(char *buf, size_t n, const char *dir, const char *name) {
  int w = snprintf(buf, n, "%s/%s", dir, name);
  if (w >= 0 && (size_t)w < n)
    return true;
  loom_set_error(LOOM_ERR_ARGUMENT, "path too long: %.200s/%.200s", dir, name);
  return false;
}

static char *read_text(const char *path, size_t *len) {
  return (char *)app_read_file_max(path, CAP_MAX_TEXT_BYTES, len);
}

static bool exists(const char *path, bool dir) {
  struct stat st;
  return stat(path, &st) == 0 &&
         (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

/* ---- data sets ---- */

const char *cap_split_name(cap_split s) {
  static const char *const names[CAP_SPLITS] = {"train", "dev", "test"};
  return s < CAP_SPLITS ? names[s] : "?";
}

void cap_data_free(cap_data *d) {
  if (!d)
    return;
  free(d->pixels);
  app_strtab_free(&d->names);
  free(d->split);
  free(d->first);
  for (int64_t i = 0; d->captions && i < d->n_captions; i++)
    free(d->captions[i]);
  free(d->captions);
  free(d->novel);
  *d = (cap_data){0};
}

int64_t *cap_data_split(const cap_data *d, cap_split s, int64_t *count) {
  int64_t *idx = malloc((size_t)(d->n + 1) * sizeof *idx), n = 0;
  if (!idx) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return NULL;
  }
  for (int64_t i = 0; i < d->n; i++)
    if (d->split[i] == s)
      idx[n++] = i;
  *count = n;
  return idx;
}

/* Adds an image of split s; -1 if it is already in another split. */
static int add_image(cap_data *d, const char *name, size_t len, cap_split s,
                     const char *path, int64_t line_no) {
  if (len == 0 || len > 255 || memchr(name, '/', len)) {
    loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: '%.*s' is not an image file name",
                   path, (long long)line_no, (int)(len > 80 ? 80 : len), name);
    return -1;
  }
  int64_t before = d->names.n;
  int64_t k = app_strtab_intern(&d->names, name, len);
  if (k < 0)
    return -1;
  if (k < before) {
    loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: image %s listed twice", path,
                   (long long)line_no, app_strtab_str(&d->names, k));
    return -1;
  }
  if (d->names.n > CAP_MAX_IMAGES) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: more than %d images", path,
                   CAP_MAX_IMAGES);
    return -1;
  }
  unsigned char *sp = realloc(d->split, (size_t)d->names.n);
  if (!sp) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return -1;
  }
  d->split = sp;
  sp[k] = (unsigned char)s;
  d->n = d->names.n;
  return 0;
}

/* images.tsv: a header naming the columns, then one row per image. Rows
 * of the split "none" are left out; row[i] receives image i's row. */
static int read_table(const char *path, cap_data *d, int64_t **row,
                      int64_t *rows) {
  size_t len;
  char *text = read_text(path, &len);
  if (!text)
    return -1;
  lines l = {.text = text, .len = len, .path = path};
  const char *s;
  size_t n;
  int col_image = -1, col_split = -1, rc = 0, got;
  int64_t r = 0, cap = 0;
  *row = NULL;
  if ((got = next_line(&l, &s, &n)) > 0) {
    int c = 0;
    for (size_t i = 0, start = 0; i <= n; i++)
      if (i == n || s[i] == '\t') {
        if (i - start == 5 && !memcmp(s + start, "image", 5))
          col_image = c;
        if (i - start == 5 && !memcmp(s + start, "split", 5))
          col_split = c;
        c++;
        start = i + 1;
      }
  }
  if (got >= 0 && (col_image < 0 || col_split < 0)) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s:1: the header names no 'image' and 'split' columns",
                   path);
    got = -1;
  }
  while (got >= 0 && (got = next_line(&l, &s, &n)) > 0) {
    if (n == 0)
      continue;
    const char *cell[2] = {NULL, NULL};
    size_t cell_len[2] = {0, 0};
    int c = 0;
    for (size_t i = 0, start = 0; i <= n; i++)
      if (i == n || s[i] == '\t') {
        int which = c == col_image ? 0 : c == col_split ? 1 : -1;
        if (which >= 0) {
          cell[which] = s + start;
          cell_len[which] = i - start;
        }
        c++;
        start = i + 1;
      }
    int sp = -1;
    for (int k = 0; cell[1] && k < CAP_SPLITS; k++)
      if (cell_len[1] == strlen(cap_split_name(k)) &&
          !memcmp(cell[1], cap_split_name(k), cell_len[1]))
        sp = k;
    bool none = cell[1] && cell_len[1] == 4 && !memcmp(cell[1], "none", 4);
    if (!cell[0] || (sp < 0 && !none)) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s:%lld: expected an image name and a split (train, "
                     "dev, test or none)",
                     path, (long long)l.line_no);
      got = -1;
      break;
    }
    if (!none) {
      if (add_image(d, cell[0], cell_len[0], (cap_split)sp, path, l.line_no) <
          0) {
        got = -1;
        break;
      }
      if (d->n > cap) {
        cap = cap ? 2 * cap : 1024;
        int64_t *g = realloc(*row, (size_t)cap * sizeof *g);
        if (!g) {
          loom_set_error(LOOM_ERR_MEMORY, "out of memory");
          got = -1;
          break;
        }
        *row = g;
      }
      (*row)[d->n - 1] = r;
    }
    r++;
  }
  free(text);
  if (got < 0)
    rc = -1;
  *rows = r;
  return rc;
}

static int read_list(const char *path, cap_split s, cap_data *d) {
  size_t len;
  char *text = read_text(path, &len);
  if (!text)
    return -1;
  lines l = {.text = text, .len = len, .path = path};
  const char *line;
  size_t n;
  int got;
  while ((got = next_line(&l, &line, &n)) > 0) {
    trim(&line, &n);
    if (n && add_image(d, line, n, s, path, l.line_no) < 0) {
      got = -1;
      break;
    }
  }
  free(text);
  return got;
}

/* The image name of a captions line's key: "name#k" -> "name". */
static void key_name(const char *key, size_t len, size_t *name_len) {
  size_t hash = len;
  for (size_t i = len; i-- > 0;)
    if (key[i] == '#') {
      hash = i;
      break;
    }
  bool digits = hash + 1 < len;
  for (size_t i = hash + 1; i < len; i++)
    digits &= key[i] >= '0' && key[i] <= '9';
  *name_len = digits ? hash : len;
}

int cap_captions_read(const char *path, const char *text, size_t len,
                      cap_data *d) {
  int64_t *count = calloc((size_t)d->n + 1, sizeof *count);
  if (!count) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory");
    return -1;
  }
  /* Two passes: count each image's captions, then place them. */
  int got = 0;
  for (int pass = 0; pass < 2 && got >= 0; pass++) {
    lines l = {.text = text, .len = len, .path = path};
    const char *s;
    size_t n;
    while ((got = next_line(&l, &s, &n)) > 0) {
      if (n == 0)
        continue;
      const char *tab = memchr(s, '\t', n);
      if (!tab) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "%s:%lld: no tab between the image name and the "
                       "caption",
                       path, (long long)l.line_no);
        got = -1;
        break;
      }
      size_t name_len;
      key_name(s, (size_t)(tab - s), &name_len);
      int64_t i = app_strtab_find(&d->names, s, name_len);
      if (i < 0)
        continue;
      const char *cap = tab + 1;
      size_t cap_len = n - (size_t)(cap - s);
      trim(&cap, &cap_len);
      if (cap_len == 0) {
        loom_set_error(LOOM_ERR_FORMAT, "%s:%lld: empty caption", path,
                       (long long)l.line_no);
        got = -1;
        break;
      }
      if (pass == 0) {
        count[i]++;
        continue;
      }
      char *c = malloc(cap_len + 1);
      if (!c) {
        loom_set_error(LOOM_ERR_MEMORY, "out of memory");
        got = -1;
        break;
      }
      memcpy(c, cap, cap_len);
      c[cap_len] = 0;
      d->captions[d->first[i] + count[i]++] = c;
      d->n_captions++;
    }
    if (got < 0 || pass == 1)
      break;
    for (int64_t i = 0; i < d->n; i++)
      if (count[i] == 0) {
        loom_set_error(LOOM_ERR_FORMAT, "%s: no caption for image %s", path,
                       app_strtab_str(&d->names, i));
        got = -1;
        break;
      }
    if (got < 0)
      break;
    d->first = malloc((size_t)(d->n + 1) * sizeof *d->first);
    int64_t total = 0;
    for (int64_t i = 0; d->first && i < d->n; i++) {
      d->first[i] = total;
      total += count[i];
      count[i] = 0;
    }
    d->captions =
        d->first ? calloc((size_t)total + 1, sizeof *d->captions) : NULL;
    if (!d->captions) {
      loom_set_error(LOOM_ERR_MEMORY, "out of memory");
      got = -1;
      break;
    }
    d->first[d->n] = total;
  }
  free(count);
  return got < 0 ? -1 : 0;
}

/* ---- pixels ---- */

/* The subset's raw arrays: dir/images_SxS_rgb_chw.u8, or its parts
 * .part0.u8, .part1.u8, ... joined in order, holding `rows` images. 0 with
 * *all NULL when there are none, 0 with the bytes in *all (caller frees),
 * or -1 when they do not hold `rows` images or cannot be read. */
static bool array_path(char *buf, size_t n, const char *dir, int side,
                       int part) {
  char name[64];
  if (part < 0)
    snprintf(name, sizeof name, "images_%dx%d_rgb_chw.u8", side, side);
  else
    snprintf(name, sizeof name, "images_%dx%d_rgb_chw.part%d.u8", side, side,
             part);
  return join(buf, n, dir, name);
}

static int read_arrays(const char *dir, int side, int64_t rows,
                       unsigned char **all) {
  char path[4096];
  int64_t size = 0;
  int first = -1, n = 0; /* parts first .. first + n - 1 */
  struct stat st;
  if (!array_path(path, sizeof path, dir, side, -1))
    return -1;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    size = st.st_size;
    n = 1;
  } else {
    for (first = 0; n < CAP_MAX_PARTS; n++) {
      if (!array_path(path, sizeof path, dir, side, n))
        return -1;
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        break;
      size += st.st_size;
    }
  }
  *all = NULL;
  if (n == 0)
    return 0;
  int64_t want = (int64_t)3 * side * side * rows;
  if (size != want) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s/images_%dx%d_rgb_chw*.u8: %lld bytes in %d file(s), "
                   "expected %lld (%lld images of 3 x %d x %d)",
                   dir, side, side, (long long)size, n, (long long)want,
                   (long long)rows, side, side);
    return -1;
  }
  unsigned char *buf = malloc((size_t)want + 1);
  if (!buf) {
    loom_set_error(LOOM_ERR_MEMORY, "out of memory for %lld images",
                   (long long)rows);
    return -1;
  }
  int64_t have = 0;
  for (int k = 0; k < n; k++) {
    size_t len;
    array_path(path, sizeof path, dir, side, first < 0 ? -1 : k);
    unsigned char *b = app_read_file_max(path, (size_t)(want - have), &len);
    if (!b) {
      free(buf);
      return -1;
    }
    memcpy(buf + have, b, len);
    have += (int64_t)len;
    free(b);
  }
  if (have != want) { /* a file shrank while being read */
    loom_set_error(LOOM_ERR_IO, "%s: changed while read", path);
    free(buf);
    return -1;
  }
  *all = buf;
  return 0;
}

/* The part of a path after its last '/'. */
static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int from_folder(const char *dir, cap_data *d, bool *found,
                       int64_t *missing) {
  char path[4096];
  for (int64_t i = 0; i < d->n; i++) {
    if (found[i])
      continue;
    if (!join(path, sizeof path, dir, app_strtab_str(&d->names, i)))
      return -1;
    if (!exists(path, false))
      continue;
    size_t len;
    unsigned char *b = app_read_file_max(path, CAP_MAX_FILE_BYTES, &len);
    size_t image = (size_t)3 * (size_t)d->side * (size_t)d->side;
    if (!b || cap_image_fit(b, len, path, d->side,
                            d->pixels + (size_t)i * image) < 0) {
      free(b);
      return -1;
    }
    free(b);
    found[i] = true;
    (*missing)--;
  }
  return 0;
}

static int from_tar(const char *path, cap_data *d, bool *found,
                    int64_t *missing) {
  cap_tar t;
  if (cap_tar_open(&t, path) < 0)
    return -1;
  cap_tar_entry e;
  int r = 0;
  size_t image = (size_t)3 * (size_t)d->side * (size_t)d->side;
  unsigned char *buf = NULL;
  while (*missing > 0 && (r = cap_tar_next(&t, &e)) > 0) {
    const char *name = base_name(e.name);
    int64_t i = app_strtab_find(&d->names, name, strlen(name));
    if (i < 0 || found[i])
      continue;
    if (e.size > CAP_MAX_FILE_BYTES) {
      loom_set_error(LOOM_ERR_FORMAT, "%s: %s: %lld bytes, more than %d", path,
                     e.name, (long long)e.size, CAP_MAX_FILE_BYTES);
      r = -1;
      break;
    }
    unsigned char *g = realloc(buf, (size_t)e.size + 1);
    if (!g) {
      loom_set_error(LOOM_ERR_MEMORY, "out of memory");
      r = -1;
      break;
    }
    buf = g;
    char label[8192];
    if (snprintf(label, sizeof label, "%s:%s", path, e.name) < 0)
      label[0] = 0;
    if (cap_tar_read(&t, &e, buf) < 0 ||
        cap_image_fit(buf, (size_t)e.size, label, d->side,
                      d->pixels + (size_t)i * image) < 0) {
      r = -1;
      break;
    }
    found[i] = true;
    (*missing)--;
  }
  free(buf);
  cap_tar_close(&t);
  return r < 0 ? -1 : 0;
}

static bool is_tar(const char *p) {
  size_t n = strlen(p);
  return n > 4 && !strcmp(p + n - 4, ".tar");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dir/images_jpeg.part*.tar in name order, then the usual image folders:
 * paths into out (caller frees each), their count. */
static int default_sources(const char *dir, char **out, int max) {
  int n = 0;
  DIR *dp = opendir(dir);
  for (struct dirent *e; dp && n < max && (e = readdir(dp));)
    if (!strncmp(e->d_name, "images_jpeg", 11) && is_tar(e->d_name)) {
      size_t len = strlen(dir) + strlen(e->d_name) + 2;
      if ((out[n] = malloc(len)))
        snprintf(out[n++], len, "%s/%s", dir, e->d_name);
    }
  if (dp)
    closedir(dp);
  qsort(out, (size_t)n, sizeof *out, cmp_str);
  const char *folders[] = {"Flicker8k_Dataset", "Flickr8k_Dataset", "images"};
  for (int k = 0; k < 3 && n < max; k++) {
    char path[4096];
    if (!join(path, sizeof path, dir, folders[k]))
      loom_clear_error(); /* a path too long is simply not there */
    else if (exists(path, true))
      out[n++] = strdup(path);
  }
  return n;
}

static int load_pixels(const cap_flickr_source *src, cap_data *d, FILE *log) {
  bool *found = calloc((size_t)d->n + 1, sizeof *found);
  char *defaults[CAP_MAX_SOURCES] = {0};
  const char *const *sources = src->images;
  int n_sources = src->n_images;
  if (n_sources == 0 && src->dir) {
    n_sources = default_sources(src->dir, defaults, CAP_MAX_SOURCES);
    sources = (const char *const *)defaults;
  }
  int64_t missing = d->n;
  int rc = found ? 0 : -1;
  for (int s = 0; rc == 0 && s < n_sources && missing > 0; s++) {
    if (!sources[s])
      continue;
    if (log)
      fprintf(log, "caption: reading images from %s\n", sources[s]);
    if (exists(sources[s], true))
      rc = from_folder(sources[s], d, found, &missing);
    else if (exists(sources[s], false))
      rc = from_tar(sources[s], d, found, &missing);
    else {
      loom_set_error(LOOM_ERR_IO, "%s: no such folder or file", sources[s]);
      rc = -1;
    }
  }
  for (int64_t i = 0; rc == 0 && i < d->n; i++)
    if (!found[i]) {
      loom_set_error(LOOM_ERR_IO, "image %s (%s) was not found in %s",
                     app_strtab_str(&d->names, i), cap_split_name(d->split[i]),
                     n_sources ? "the image folders and archives given"
                               : "any image folder or archive");
      rc = -1;
    }
  for (int s = 0; s < CAP_MAX_SOURCES; s++)
    free(defaults[s]);
  free(found);
  return rc;
}

/* ---- the whole data set ---- */

static const char *in_dir(const char *dir, const char *name, char *buf,
                          size_t n) {
  if (!dir || !join(buf, n, dir, name)) {
    loom_clear_error(); /* a path too long is simply not there */
    return NULL;
  }
  return exists(buf, false) ? buf : NULL;
}

/* The split's files: src's own, or images.tsv, else the three lists,
 * found in src->dir (names kept in b[0..3]). */
static void find_split(const cap_flickr_source *src, const char **table,
                       const char *lists[3], char b[4][4096]) {
  static const char *const names[3] = {"Flickr_8k.trainImages.txt",
                                       "Flickr_8k.devImages.txt",
                                       "Flickr_8k.testImages.txt"};
  *table = src->table;
  for (int s = 0; s < 3; s++)
    lists[s] = src->lists[s];
  if (*table || lists[0] || lists[1] || lists[2])
    return;
  if ((*table = in_dir(src->dir, "images.tsv", b[0], sizeof b[0])))
    return;
  for (int s = 0; s < 3; s++)
    lists[s] = in_dir(src->dir, names[s], b[s + 1], sizeof b[s + 1]);
}

/* The captions file: src's own, or one found in src->dir (kept in buf). */
static const char *find_captions(const cap_flickr_source *src, char *buf,
                                 size_t n) {
  const char *captions = src->captions;
  if (!captions && src->dir &&
      !(captions = in_dir(src->dir, "captions.txt", buf, n)))
    captions = in_dir(src->dir, "Flickr8k.token.txt", buf, n);
  return captions;
}

/* The folder of the split table, where the raw arrays are. */
static void table_dir(const char *table, char dir[4096]) {
  snprintf(dir, 4096, ".");
  const char *slash = strrchr(table, '/');
  if (slash && slash - table < 4096) {
    memcpy(dir, table, (size_t)(slash - table));
    dir[slash - table] = 0;
  }
}

/* Adds a copy of path to out[*n] when there is room and it names a
 * file. */
static void add_file(char **out, int *n, int max, const char *path) {
  if (path && *n < max && exists(path, false) && (out[*n] = strdup(path)))
    (*n)++;
}

int cap_flickr_dir_files(const cap_flickr_source *src, int side, char **out,
                         int max) {
  char b[4][4096], cb[4096], dir[4096], path[4096];
  const char *table, *lists[3];
  int n = 0;
  find_split(src, &table, lists, b);
  if (table != src->table)
    add_file(out, &n, max, table);
  for (int s = 0; s < 3; s++)
    if (lists[s] != src->lists[s])
      add_file(out, &n, max, lists[s]);
  const char *captions = find_captions(src, cb, sizeof cb);
  if (captions != src->captions)
    add_file(out, &n, max, captions);
  if (table && src->arrays) {
    table_dir(table, dir);
    for (int part = -1; part < CAP_MAX_PARTS; part++)
      if (array_path(path, sizeof path, dir, side, part))
        add_file(out, &n, max, path);
    loom_clear_error(); /* a path too long is simply not there */
  }
  if (src->n_images == 0 && src->dir) { /* the archives; folders are not */
    char *found[CAP_MAX_SOURCES] = {0};
    int k = default_sources(src->dir, found, CAP_MAX_SOURCES);
    for (int i = 0; i < k; i++) {
      add_file(out, &n, max, found[i]);
      free(found[i]);
    }
  }
  return n;
}

int cap_flickr_load(const cap_flickr_source *src, int side, FILE *log,
                    cap_data *d) {
  *d = (cap_data){.side = side};
  char b[4][4096];
  const char *table, *lists[3];
  find_split(src, &table, lists, b);
  if (!table && !lists[0] && !lists[1] && !lists[2]) {
    loom_set_error(LOOM_ERR_IO,
                   "%s: no split (images.tsv or Flickr_8k.*Images.txt)",
                   src->dir ? src->dir : "the data set");
    return -1;
  }
  int64_t *row = NULL, rows = 0;
  int rc = 0;
  if (table)
    rc = read_table(table, d, &row, &rows);
  for (int s = 0; rc == 0 && !table && s < 3; s++)
    if (lists[s])
      rc = read_list(lists[s], (cap_split)s, d);
  if (rc == 0 && d->n == 0) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: no images in any split",
                   table ? table : "the split lists");
    rc = -1;
  }
  char cb[4096];
  const char *captions = find_captions(src, cb, sizeof cb);
  if (rc == 0 && !captions) {
    loom_set_error(LOOM_ERR_IO,
                   "%s: no captions file (captions.txt or "
                   "Flickr8k.token.txt)",
                   src->dir ? src->dir : "the data set");
    rc = -1;
  }
  if (rc == 0) {
    size_t len;
    char *text = read_text(captions, &len);
    rc = text ? cap_captions_read(captions, text, len, d) : -1;
    free(text);
  }
  size_t image = (size_t)3 * (size_t)side * (size_t)side;
  if (rc == 0 && table && src->arrays) {
    char dir[4096];
    table_dir(table, dir);
    unsigned char *all = NULL;
    rc = read_arrays(dir, side, rows, &all);
    if (all) {
      if (log)
        fprintf(log, "caption: %lld images from %s/images_%dx%d_rgb_chw*.u8\n",
                (long long)d->n, dir, side, side);
      d->pixels = malloc(image * (size_t)d->n + 1);
      for (int64_t i = 0; d->pixels && i < d->n; i++)
        memcpy(d->pixels + (size_t)i * image, all + (size_t)row[i] * image,
               image);
      free(all);
      if (!d->pixels) {
        loom_set_error(LOOM_ERR_MEMORY, "out of memory");
        rc = -1;
      }
    }
  }
  free(row);
  if (rc == 0 && !d->pixels) {
    d->pixels = malloc(image * (size_t)d->n + 1);
    rc = d->pixels ? load_pixels(src, d, log) : -1;
    if (!d->pixels)
      loom_set_error(LOOM_ERR_MEMORY, "out of memory for %lld images",
                     (long long)d->n);
  }
  if (rc < 0)
    cap_data_free(d);
  return rc;
}
