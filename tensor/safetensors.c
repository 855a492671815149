/* The safetensors format: an 8-byte little-endian header length, a JSON
 * header (names, dtypes, shapes, data offsets, string metadata), then the
 * raw little-endian data; read into and written from a loom_tensor_map. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include "file.h"
#include "internal.h"
#include "json.h"
#include "kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* A header larger than this is not a model checkpoint but an attack. */
#define MAX_HEADER (100 << 20)

/* ---- dtypes on disk ---- */

typedef struct {
  const char *name;
  size_t size;
  loom_dtype loaded_as;
} disk_dtype;

static const disk_dtype disk_dtypes[] = {
    {"F32", 4, LOOM_F32},  {"F64", 8, LOOM_F64},   {"I64", 8, LOOM_I64},
    {"U8", 1, LOOM_U8},    {"BOOL", 1, LOOM_BOOL}, {"F16", 2, LOOM_F32},
    {"BF16", 2, LOOM_F32}, {"I8", 1, LOOM_I64},    {"I16", 2, LOOM_I64},
    {"I32", 4, LOOM_I32},  {"U16", 2, LOOM_I64},   {"U32", 4, LOOM_I64},
};

static const disk_dtype *disk_dtype_of(const loom__json *v) {
  if (!v || v->kind != LOOM__JSON_STRING)
    return NULL;
  for (size_t i = 0; i < sizeof disk_dtypes / sizeof *disk_dtypes; i++) {
    size_t n = strlen(disk_dtypes[i].name);
    if (v->len == n + 2 && memcmp(v->text + 1, disk_dtypes[i].name, n) == 0)
      return &disk_dtypes[i];
  }
  return NULL;
}

static const char *disk_name(loom_dtype t) {
  switch (t) {
  case LOOM_F32:
    return "F32";
  case LOOM_F64:
    return "F64";
  case LOOM_I64:
    return "I64";
  case LOOM_I32:
    return "I32";
  case LOOM_U8:
    return "U8";
  case LOOM_BOOL:
    return "BOOL";
  default:
    return NULL;
  }
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F,
           man = h & 0x3FF, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Converts n raw elements of a widened disk dtype into dst. */
static void widen(const disk_dtype *d, const unsigned char *src, int64_t n,
                  void *dst) {
  for (int64_t i = 0; i < n; i++) {
    const unsigned char *p = src + (size_t)i * d->size;
    if (d->loaded_as == LOOM_F32) {
      uint16_t h;
      memcpy(&h, p, 2);
      float f;
      if (d->name[0] == 'B') {
        uint32_t bits = (uint32_t)h << 16;
        memcpy(&f, &bits, 4);
      } else {
        f = half_to_float(h);
      }
      ((float *)dst)[i] = f;
    } else {
      int64_t v;
      if (!strcmp(d->name, "I8"))
        v = (int8_t)p[0];
      else if (!strcmp(d->name, "I16")) {
        int16_t x;
        memcpy(&x, p, 2);
        v = x;
      } else if (!strcmp(d->name, "U16")) {
        uint16_t x;
        memcpy(&x, p, 2);
        v = x;
      } else {
        uint32_t x;
        memcpy(&x, p, 4);
        v = x;
      }
      ((int64_t *)dst)[i] = v;
    }
  }
}

/* ---- reading ---- */

typedef struct {
  char *name;
  const disk_dtype *dtype;
  int ndim;
  int64_t shape[LOOM_MAX_DIMS];
  uint64_t begin, end;
} header_entry;

static int by_begin(const void *a, const void *b) {
  const header_entry *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

#define BAD(...) (loom_set_error(LOOM_ERR_FORMAT, __VA_ARGS__), false)

static bool read_entry(const char *src, const loom__json *key,
                       const loom__json *v, header_entry *e, size_t hbase) {
  size_t at = hbase + v->offset;
  if (v->kind != LOOM__JSON_OBJECT)
    return BAD("%s: header entry at byte %zu is not an object", src, at);
  e->dtype = disk_dtype_of(loom__json_get(v, "dtype"));
  const loom__json *shape = loom__json_get(v, "shape");
  const loom__json *offs = loom__json_get(v, "data_offsets");
  e->name = loom__json_string(key);
  if (!e->name)
    return BAD("%s: the tensor name at byte %zu holds a NUL (\\u0000), "
               "which ends a C string (or memory ran out)",
               src, hbase + key->offset);
  /* a name a map refuses (not UTF-8) is the file's fault, said as such */
  const char *problem = loom__tensor_name_problem(e->name);
  if (problem)
    return BAD("%s: the tensor name at byte %zu %s", src, hbase + key->offset,
               problem);
  if (!e->dtype)
    return BAD("%s: tensor '%s' (byte %zu): missing or unknown dtype", src,
               e->name, at);
  if (!shape || shape->kind != LOOM__JSON_ARRAY ||
      shape->n_items > LOOM_MAX_DIMS)
    return BAD("%s: tensor '%s' (byte %zu): shape must be an array of at "
               "most %d sizes",
               src, e->name, at, LOOM_MAX_DIMS);
  e->ndim = shape->n_items;
  for (int d = 0; d < e->ndim; d++) {
    const loom__json *s = &shape->items[d];
    if (s->kind != LOOM__JSON_NUMBER || !s->is_integer || s->integer < 0)
      return BAD("%s: tensor '%s' (byte %zu): bad size in shape", src, e->name,
                 hbase + s->offset);
    e->shape[d] = s->integer;
  }
  /* the sizes bound the bytes and the strides, zeros or not */
  if (!loom__sizes_fit(e->ndim, e->shape))
    return BAD("%s: tensor '%s' (byte %zu): shape too large", src, e->name, at);
  uint64_t bytes = e->dtype->size * (uint64_t)loom__numel_of(e->ndim, e->shape);
  if (!offs || offs->kind != LOOM__JSON_ARRAY || offs->n_items != 2 ||
      !offs->items[0].is_integer || !offs->items[1].is_integer ||
      offs->items[0].integer < 0 || offs->items[1].integer < 0)
    return BAD("%s: tensor '%s' (byte %zu): data_offsets must be two "
               "non-negative integers",
               src, e->name, at);
  e->begin = (uint64_t)offs->items[0].integer;
  e->end = (uint64_t)offs->items[1].integer;
  if (e->end < e->begin || e->end - e->begin != bytes)
    return BAD("%s: tensor '%s' (byte %zu): data_offsets [%llu, %llu] hold "
               "%llu bytes, its shape needs %llu",
               src, e->name, at, (unsigned long long)e->begin,
               (unsigned long long)e->end,
               (unsigned long long)(e->end - e->begin),
               (unsigned long long)bytes);
  return true;
}

static loom_tensor_map *build(const char *src, const header_entry *es, int n,
                              const unsigned char *data) {
  loom_tensor_map *m = loom_tensor_map_new();
  for (int i = 0; m && i < n; i++) {
    const header_entry *e = &es[i];
    loom_tensor *t =
        loom__alloc(e->dtype->loaded_as, e->ndim, e->shape, "safetensors_load");
    if (!t) {
      loom_tensor_map_free(m);
      return NULL;
    }
    if (e->dtype->size == loom_dtype_size(t->dtype))
      memcpy(t->data, data + e->begin, (size_t)(e->end - e->begin));
    else
      widen(e->dtype, data + e->begin, t->numel, t->data);
    if (t->dtype == LOOM_BOOL) /* only 0 and 1 are bools */
      for (int64_t k = 0; k < t->numel; k++)
        ((uint8_t *)t->data)[k] = ((uint8_t *)t->data)[k] != 0;
    int rc = loom_tensor_map_set(m, e->name, t);
    loom__unref(t);
    if (rc < 0) {
      loom_tensor_map_free(m);
      return NULL;
    }
  }
  (void)src;
  return m;
}

loom_tensor_map *loom_safetensors_parse(const void *buf, size_t len,
                                        const char *src) {
  const unsigned char *bytes = buf;
  if (!src)
    src = "(buffer)";
  if (!buf && len > 0)
    return loom_null_argument("safetensors_parse");
  if (len < 8)
    return LOOM_FAIL(LOOM_ERR_FORMAT,
                     "%s: %zu bytes, too short for a "
                     "safetensors header",
                     src, len);
  uint64_t hlen;
  memcpy(&hlen, bytes, 8);
  if (hlen > MAX_HEADER || hlen > len - 8)
    return LOOM_FAIL(LOOM_ERR_FORMAT,
                     "%s: header length %llu at byte 0 "
                     "exceeds the file (%zu bytes)",
                     src, (unsigned long long)hlen, len);
  char err[160];
  loom__json *h =
      loom__json_parse((const char *)bytes + 8, (size_t)hlen, err, sizeof err);
  if (!h)
    return LOOM_FAIL(LOOM_ERR_FORMAT, "%s: bad JSON header: %s (+8)", src, err);
  loom_tensor_map *m = NULL;
  int n = 0;
  header_entry *es = NULL;
  const loom__json *meta = NULL;
  if (h->kind != LOOM__JSON_OBJECT) {
    loom_set_error(LOOM_ERR_FORMAT, "%s: header is not a JSON object", src);
    goto done;
  }
  es = calloc((size_t)h->n_items / 2 + 1, sizeof *es);
  if (!es) {
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", src);
    goto done;
  }
  for (int i = 0; i + 1 < h->n_items; i += 2) {
    const loom__json *key = &h->items[i], *v = &h->items[i + 1];
    /* the key is the metadata's however it is escaped ("\u005f_meta...") */
    bool is_meta =
        key->len == 14 && memcmp(key->text, "\"__metadata__\"", 14) == 0;
    if (!is_meta && memchr(key->text, '\\', key->len)) {
      char *k = loom__json_string(key);
      is_meta = k && strcmp(k, "__metadata__") == 0;
      free(k);
    }
    if (is_meta && meta) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: __metadata__ appears twice (byte %zu)", src,
                     8 + key->offset);
      goto done;
    }
    if (is_meta) {
      meta = v;
      if (v->kind != LOOM__JSON_OBJECT) {
        loom_set_error(LOOM_ERR_FORMAT,
                       "%s: __metadata__ (byte %zu) is not "
                       "an object",
                       src, 8 + v->offset);
        goto done;
      }
      continue;
    }
    if (!read_entry(src, key, v, &es[n++], 8))
      goto done;
  }
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if (strcmp(es[i].name, es[j].name) == 0) {
        loom_set_error(LOOM_ERR_FORMAT, "%s: tensor '%s' appears twice", src,
                       es[i].name);
        goto done;
      }
  qsort(es, (size_t)n, sizeof *es, by_begin);
  uint64_t data_len = len - 8 - hlen, at = 0;
  for (int i = 0; i < n; i++) {
    if (es[i].begin != at) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: tensor '%s' starts at data byte "
                     "%llu, expected %llu (%s)",
                     src, es[i].name, (unsigned long long)es[i].begin,
                     (unsigned long long)at,
                     es[i].begin < at ? "overlaps the previous tensor"
                                      : "leaves a gap");
      goto done;
    }
    at = es[i].end;
  }
  if (at != data_len) {
    loom_set_error(LOOM_ERR_FORMAT,
                   "%s: tensors cover %llu data bytes, the "
                   "file has %llu (offset %llu)",
                   src, (unsigned long long)at, (unsigned long long)data_len,
                   (unsigned long long)(8 + hlen + at));
    goto done;
  }
  m = build(src, es, n, bytes + 8 + hlen);
  for (int i = 0; m && meta && i + 1 < meta->n_items; i += 2) {
    char *k = loom__json_string(&meta->items[i]);
    char *v = loom__json_string(&meta->items[i + 1]);
    if (!k || !v) {
      loom_set_error(LOOM_ERR_FORMAT,
                     "%s: __metadata__ keys and values must be "
                     "strings without \\u0000 (byte %zu)",
                     src, 8 + meta->items[i].offset);
      loom_tensor_map_free(m);
      m = NULL;
    } else if (loom_tensor_map_set_meta(m, k, v) < 0) {
      loom_tensor_map_free(m);
      m = NULL;
    }
    free(k);
    free(v);
  }
done:
  for (int i = 0; es && i < n; i++)
    free(es[i].name);
  free(es);
  loom__json_free(h);
  return m;
}

/* path opened for reading if it is a regular file (the reader needs its
 * size). Opened without blocking and then checked: opening a FIFO would
 * wait for a writer, for ever if none comes. */
static FILE *open_regular(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    loom_set_error(LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  FILE *f = NULL;
  int flags = fcntl(fd, F_GETFL);
  if (S_ISDIR(st.st_mode))
    loom_set_error(LOOM_ERR_IO, "%s: is a directory, not a file", path);
  else if (!S_ISREG(st.st_mode))
    loom_set_error(LOOM_ERR_IO, "%s: cannot read: not a regular file", path);
  else if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
           !(f = fdopen(fd, "rb")))
    loom_set_error(LOOM_ERR_IO, "%s: %s", path, strerror(errno));
  if (!f)
    close(fd);
  return f;
}

loom_tensor_map *loom_safetensors_load(const char *path) {
  if (!path)
    return loom_null_argument("safetensors_load");
  FILE *f = open_regular(path);
  if (!f)
    return NULL;
  char *buf = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0)
    size = ftell(f);
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0)
    buf = malloc((size_t)size + 1);
  errno = 0;
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    int e = errno;
    fclose(f);
    free(buf);
    if (size < 0)
      return LOOM_FAIL(LOOM_ERR_IO, "%s: cannot read: not a regular file",
                       path);
    if (!buf)
      return LOOM_FAIL(LOOM_ERR_MEMORY, "%s: out of memory for %ld bytes", path,
                       size);
    return LOOM_FAIL(LOOM_ERR_IO, "%s: cannot read: %s", path,
                     e ? strerror(e) : "the file changed size");
  }
  fclose(f);
  loom_tensor_map *m = loom_safetensors_parse(buf, (size_t)size, path);
  free(buf);
  return m;
}

/* ---- writing ---- */

typedef struct {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *g = realloc(b->p, cap);
    if (!g) {
      b->oom = true;
      return;
    }
    b->p = g;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(sbuf *b, const char *s) {
  puts_(b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      puts_(b, esc);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  puts_(b, "\"");
}

int loom_safetensors_save(const char *path, const loom_tensor_map *m) {
  if (!path || !m)
    return loom_null_argument("safetensors_save"), -1;
  sbuf h = {0};
  puts_(&h, "{");
  bool first = true;
  int n_meta = loom_tensor_map_meta_count(m), n = loom_tensor_map_count(m);
  if (n_meta > 0) {
    puts_(&h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      const char *key = loom_tensor_map_meta_key(m, i);
      if (i)
        puts_(&h, ",");
      put_json_string(&h, key);
      puts_(&h, ":");
      put_json_string(&h, loom_tensor_map_meta(m, key));
    }
    puts_(&h, "}");
    first = false;
  }
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    const loom_tensor *t = loom_tensor_map_at(m, i);
    const char *name = loom_tensor_map_name(m, i);
    const char *dn = disk_name(t->dtype);
    if (!dn) {
      free(h.p);
      loom_set_error(LOOM_ERR_DTYPE, "%s: cannot save %s tensor '%s'", path,
                     loom_dtype_name(t->dtype), name);
      return -1;
    }
    char num[96];
    if (!first)
      puts_(&h, ",");
    first = false;
    put_json_string(&h, name);
    puts_(&h, ":{\"dtype\":\"");
    puts_(&h, dn);
    puts_(&h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
      puts_(&h, num);
    }
    uint64_t bytes = (uint64_t)t->numel * loom_dtype_size(t->dtype);
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
             (unsigned long long)at, (unsigned long long)(at + bytes));
    puts_(&h, num);
    at += bytes;
  }
  puts_(&h, "}");
  while (!h.oom && h.len % 8) /* keep the data 8-byte aligned */
    puts_(&h, " ");
  if (h.oom) {
    free(h.p);
    loom_set_error(LOOM_ERR_MEMORY, "%s: out of memory", path);
    return -1;
  }
  loom_file_writer *w = loom_file_writer_open(path);
  FILE *f = loom_file_writer_stream(w);
  uint64_t hlen = h.len;
  bool ok = f && fwrite(&hlen, 8, 1, f) == 1 &&
            fwrite(h.p, 1, h.len, f) == h.len,
       oom = false;
  for (int i = 0; ok && i < n; i++) {
    const loom_tensor *t = loom_tensor_map_at(m, i);
    size_t bytes = (size_t)t->numel * loom_dtype_size(t->dtype);
    loom_tensor *c = NULL;
    if (!loom__is_contiguous(t)) { /* written as a contiguous copy */
      c = loom__alloc(t->dtype, t->ndim, t->shape, "save");
      oom = !c;
      if (c)
        loom__kernel_copy(c, t);
    }
    ok = !oom && fwrite(c ? c->data : t->data, 1, bytes, f) == bytes;
    loom__unref(c);
  }
  free(h.p);
  if (oom || !w) {
    loom_file_writer_abort(w);
    return -1;
  }
  /* a failed write leaves the stream's error set: commit reports it */
  return loom_file_writer_commit(w);
}
