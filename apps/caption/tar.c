/* A small reader of tar archives (POSIX ustar, plus the GNU long-name and
 * pax records that tar writes for long paths), enough to take images
 * straight from the shards a data set ships in.
 *
 * Every header is checked before it is believed: its checksum, its size
 * field (octal digits only, at most CAP_MAX_TAR_ENTRY bytes), and that the
 * entry's data lies inside the file; a truncated archive is an error that
 * names the archive and the offset, never a short read taken for data. */
#define _POSIX_C_SOURCE 200809L
#include "caption.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK 512

static int fail(cap_tar *t, int64_t at, const char *what) {
  loom_set_error(LOOM_ERR_FORMAT, "%s: %s at byte %lld", t->name, what,
                 (long long)at);
  return -1;
}

int cap_tar_open(cap_tar *t, const char *path) {
  *t = (cap_tar){0};
  snprintf(t->name, sizeof t->name, "%s", path);
  t->f = fopen(path, "rb");
  if (!t->f) {
    loom_set_error(LOOM_ERR_IO, "%s: cannot open", path);
    return -1;
  }
  t->owns = true;
  /* the size, so that an entry longer than the rest is refused at once */
  long size = fseek(t->f, 0, SEEK_END) == 0 ? ftell(t->f) : -1;
  t->size = size;
  if (size < 0 || fseek(t->f, 0, SEEK_SET) != 0) {
    loom_set_error(LOOM_ERR_IO, "%s: cannot seek", path);
    cap_tar_close(t);
    return -1;
  }
  return 0;
}

int cap_tar_open_memory(cap_tar *t, const void *data, size_t len,
                        const char *name) {
  *t = (cap_tar){0};
  snprintf(t->name, sizeof t->name, "%s", name);
  /* fmemopen refuses a zero size: an empty archive is a one-byte
   * stream cut to nothing. */
  t->f = len ? fmemopen((void *)data, len, "rb") : NULL;
  if (len && !t->f) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: cannot read from memory", name);
    return -1;
  }
  t->owns = true;
  t->size = (int64_t)len;
  return 0;
}

void cap_tar_close(cap_tar *t) {
  if (t->f && t->owns)
    fclose(t->f);
  *t = (cap_tar){0};
}

/* Reads exactly n bytes: 1, 0 at a clean end before the first byte, -1
 * when the file ends part way. */
static int read_exact(cap_tar *t, void *buf, size_t n) {
  if (n == 0)
    return 1;
  size_t got = t->f ? fread(buf, 1, n, t->f) : 0;
  t->offset += (int64_t)got;
  return got == n ? 1 : got == 0 ? 0 : -1;
}

static int skip(cap_tar *t, int64_t n, int64_t entry_at) {
  char buf[BLOCK * 8];
  while (n > 0) {
    size_t k = n < (int64_t)sizeof buf ? (size_t)n : sizeof buf;
    if (read_exact(t, buf, k) != 1)
      return fail(t, entry_at, "archive ends inside the entry starting");
    n -= (int64_t)k;
  }
  return 0;
}

/* An octal field: optional leading spaces, digits, then NULs or spaces to
 * its end. The value, or -1 when malformed or above `max`. */
static int64_t octal(const unsigned char *p, int n, int64_t max) {
  int i = 0;
  while (i < n && p[i] == ' ')
    i++;
  int64_t v = 0;
  int digits = 0;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) {
    v = v * 8 + (p[i] - '0');
    if (v > max)
      return -1;
  }
  for (; i < n; i++)
    if (p[i] != 0 && p[i] != ' ')
      return -1;
  return digits ? v : -1;
}

static bool all_zero(const unsigned char *b) {
  for (int i = 0; i < BLOCK; i++)
    if (b[i])
      return false;
  return true;
}

static int64_t padded(int64_t size) {
  return (size + BLOCK - 1) / BLOCK * BLOCK;
}

/* Copies a field that may fill its width without a NUL. */
static void field(char *dst, const unsigned char *src, int n) {
  int len = 0;
  while (len < n && src[len])
    len++;
  memcpy(dst, src, (size_t)len);
  dst[len] = 0;
}

/* Reads the data of a long-name record ('L', or a pax 'x' record's path)
 * into t->long_name. */
static int read_long_name(cap_tar *t, int64_t size, int64_t at, bool pax) {
  if (size >= (int64_t)sizeof t->long_name)
    return fail(t, at, "a long name or pax record over 4 KiB");
  char buf[sizeof t->long_name];
  if (read_exact(t, buf, (size_t)size) != 1)
    return fail(t, at, "archive ends inside the entry starting");
  if (skip(t, padded(size) - size, at) < 0)
    return -1;
  buf[size] = 0;
  if (!pax) {
    snprintf(t->long_name, sizeof t->long_name, "%s", buf);
    return 0;
  }
  /* pax records: "<len> <key>=<value>\n"; only path matters here */
  for (int64_t i = 0; i < size;) {
    char *end;
    long len = strtol(buf + i, &end, 10);
    if (len <= 0 || len > size - i || *end != ' ')
      return fail(t, at, "malformed pax record in the entry starting");
    const char *kv = end + 1, *stop = buf + i + len - 1;
    if (*stop != '\n')
      return fail(t, at, "malformed pax record in the entry starting");
    if (stop - kv > 5 && !strncmp(kv, "path=", 5))
      snprintf(t->long_name, sizeof t->long_name, "%.*s", (int)(stop - kv - 5),
               kv + 5);
    i += len;
  }
  return 0;
}

int cap_tar_next(cap_tar *t, cap_tar_entry *e) {
  *e = (cap_tar_entry){0};
  if (t->pending > 0 && skip(t, t->pending, t->pending_at) < 0)
    return -1;
  t->pending = 0;
  for (;;) {
    unsigned char h[BLOCK];
    int64_t at = t->offset;
    int r = read_exact(t, h, BLOCK);
    if (r == 0)
      return 0; /* the end without the two zero blocks: tolerated */
    if (r < 0)
      return fail(t, at, "archive ends inside the header starting");
    if (all_zero(h))
      return 0;
    unsigned sum = 0;
    for (int i = 0; i < BLOCK; i++)
      sum += i >= 148 && i < 156 ? ' ' : h[i];
    int64_t stored = octal(h + 148, 8, 0777777);
    if (stored < 0 || (unsigned)stored != sum)
      return fail(t, at, "not a tar header (bad checksum)");
    int64_t size = octal(h + 124, 12, CAP_MAX_TAR_ENTRY);
    if (size < 0)
      return fail(t, at, "bad or too large size in the header");
    char type = (char)h[156];
    if (type == 'L' || type == 'x') {
      if (read_long_name(t, size, at, type == 'x') < 0)
        return -1;
      continue;
    }
    if (type != '0' && type != 0 && type != '7') { /* not a regular file */
      if (skip(t, padded(size), at) < 0)
        return -1;
      t->long_name[0] = 0;
      continue;
    }
    if (t->long_name[0]) {
      snprintf(e->name, sizeof e->name, "%s", t->long_name);
      t->long_name[0] = 0;
    } else {
      char name[101], prefix[156];
      field(name, h, 100);
      field(prefix, h + 345, 155);
      bool ustar = !memcmp(h + 257, "ustar", 5);
      snprintf(e->name, sizeof e->name, "%s%s%s", ustar ? prefix : "",
               ustar && prefix[0] ? "/" : "", name);
    }
    if (size > t->size - t->offset)
      return fail(t, at, "archive ends inside the entry starting");
    e->size = size;
    e->offset = t->offset;
    t->pending = padded(size);
    t->pending_at = at;
    return 1;
  }
}

int cap_tar_read(cap_tar *t, const cap_tar_entry *e, void *buf) {
  if (t->offset != e->offset || t->pending != padded(e->size)) {
    loom_set_error(LOOM_ERR_STATE, "%s: entry %s read out of order", t->name,
                   e->name);
    return -1;
  }
  if (read_exact(t, buf, (size_t)e->size) != 1)
    return fail(t, t->pending_at, "archive ends inside the entry starting");
  t->pending -= e->size; /* the padding, skipped by the next call */
  return 0;
}
