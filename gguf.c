/* GGUF reader and writer; see gguf.h. Every read goes through a cursor that knows how many bytes
   remain, so no count or length in the file can make the reader leave the buffer. */
#include "gguf.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define MAX_KEY_LEN 65535
#define MAX_NAME_LEN 95        /* fits GgufWriter names; llama.cpp uses 64 */

void gguf_one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static int fail(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, GGUF_ERR, fmt, ap);
    va_end(ap);
    gguf_one_line(err);   /* names and keys come from the file: keep the message on one line */
    return -1;
}

size_t gguf_type_size(uint32_t type) {
    switch (type) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

/* bytes per block and values per block of a tensor type; 0 if unsupported */
static int tensor_block(uint32_t type, uint64_t *block_bytes, uint64_t *block_vals) {
    switch (type) {
    case GGML_F32: *block_bytes = 4; *block_vals = 1; return 1;
    case GGML_F16: *block_bytes = 2; *block_vals = 1; return 1;
    case GGML_Q8_0: *block_bytes = 34; *block_vals = 32; return 1;
    default: return 0;
    }
}

int gguf_tensor_nbytes(uint32_t type, const uint64_t *ne, uint32_t n_dims, uint64_t *out) {
    uint64_t bb, bv, n = 1;
    if (!tensor_block(type, &bb, &bv)) return -1;
    for (uint32_t i = 0; i < n_dims; i++)
        if (ne[i] == 0 || __builtin_mul_overflow(n, ne[i], &n)) return -1;
    if (ne[0] % bv) return -1;
    if (__builtin_mul_overflow(n / bv, bb, out) || *out > (uint64_t)INT64_MAX) return -1;
    return 0;
}

/* ---- reading ---- */

typedef struct { const uint8_t *p, *end; } Cursor;

static int take(Cursor *c, uint64_t n, const uint8_t **out) {
    if ((uint64_t)(c->end - c->p) < n) return -1;
    *out = c->p;
    c->p += n;
    return 0;
}
static int take_u32(Cursor *c, uint32_t *v) { const uint8_t *b; if (take(c, 4, &b)) return -1; memcpy(v, b, 4); return 0; }
static int take_u64(Cursor *c, uint64_t *v) { const uint8_t *b; if (take(c, 8, &b)) return -1; memcpy(v, b, 8); return 0; }
static int take_str(Cursor *c, GgufStr *s) {
    const uint8_t *b;
    if (take_u64(c, &s->len) || take(c, s->len, &b)) return -1;
    s->ptr = (const char *)b;
    return 0;
}

static const char *type_name(uint32_t t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return t < GGUF_N_TYPES ? names[t] : "invalid";
}

/* Skips one value of type t (not an array), checking that it fits. */
static int skip_value(Cursor *c, uint32_t t, char *err, const char *what) {
    const uint8_t *b;
    if (t == GGUF_STRING) {
        GgufStr s;
        if (take_str(c, &s)) return fail(err, "%s: string runs past the end of the file", what);
        return 0;
    }
    size_t sz = gguf_type_size(t);
    if (!sz) return fail(err, "%s: invalid value type %u", what, t);
    if (take(c, sz, &b)) return fail(err, "%s: value runs past the end of the file", what);
    if (t == GGUF_BOOL && *b > 1) return fail(err, "%s: bool value %u is not 0 or 1", what, *b);
    return 0;
}

static int str_eq(GgufStr a, GgufStr b) { return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len); }
int gguf_str_eq(GgufStr s, const char *c) { size_t n = strlen(c); return s.len == n && !memcmp(s.ptr, c, n); }

static int parse_kv(Cursor *c, GgufKV *kv, uint64_t index, char *err) {
    char what[128];
    if (take_str(c, &kv->key)) return fail(err, "key %llu: runs past the end of the file", (unsigned long long)index);
    if (kv->key.len == 0 || kv->key.len > MAX_KEY_LEN) return fail(err, "key %llu: bad key length %llu", (unsigned long long)index, (unsigned long long)kv->key.len);
    snprintf(what, sizeof what, "key '%.*s'", (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.ptr);
    if (take_u32(c, &kv->type)) return fail(err, "%s: type runs past the end of the file", what);
    kv->val = c->p;
    if (kv->type != GGUF_ARRAY) return skip_value(c, kv->type, err, what);
    if (take_u32(c, &kv->arr_type) || take_u64(c, &kv->arr_n)) return fail(err, "%s: array header runs past the end of the file", what);
    if (kv->arr_type == GGUF_ARRAY) return fail(err, "%s: nested arrays are not supported", what);
    kv->val = c->p;
    if (kv->arr_type == GGUF_STRING) {
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (skip_value(c, GGUF_STRING, err, what)) return -1;  /* each string costs >= 8 bytes: the loop ends at EOF */
        return 0;
    }
    size_t sz = gguf_type_size(kv->arr_type);
    uint64_t total;
    const uint8_t *b;
    if (!sz) return fail(err, "%s: invalid array element type %u", what, kv->arr_type);
    if (__builtin_mul_overflow(kv->arr_n, (uint64_t)sz, &total) || take(c, total, &b))
        return fail(err, "%s: array of %llu elements runs past the end of the file", what, (unsigned long long)kv->arr_n);
    if (kv->arr_type == GGUF_BOOL)
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (b[i] > 1) return fail(err, "%s: bool element %llu is not 0 or 1", what, (unsigned long long)i);
    return 0;
}

static int parse_tensor_info(Cursor *c, GgufTensor *t, uint64_t index, char *err) {
    char what[160];
    if (take_str(c, &t->name)) return fail(err, "tensor %llu: name runs past the end of the file", (unsigned long long)index);
    if (t->name.len == 0 || t->name.len > MAX_NAME_LEN)
        return fail(err, "tensor %llu: bad name length %llu", (unsigned long long)index, (unsigned long long)t->name.len);
    snprintf(what, sizeof what, "tensor '%.*s'", (int)t->name.len, t->name.ptr);
    if (memchr(t->name.ptr, 0, t->name.len)) return fail(err, "%s: name contains a NUL byte", what);
    if (take_u32(c, &t->n_dims)) return fail(err, "%s: runs past the end of the file", what);
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) return fail(err, "%s: %u dimensions (1 to %d allowed)", what, t->n_dims, GGUF_MAX_DIMS);
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++)
        if (take_u64(c, &t->ne[i])) return fail(err, "%s: dims run past the end of the file", what);
    if (take_u32(c, &t->type) || take_u64(c, &t->offset)) return fail(err, "%s: runs past the end of the file", what);
    uint64_t bb, bv;
    if (!tensor_block(t->type, &bb, &bv)) return fail(err, "%s: unsupported tensor type %u (F32, F16, Q8_0 are supported)", what, t->type);
    if (gguf_tensor_nbytes(t->type, t->ne, t->n_dims, &t->nbytes))
        return fail(err, "%s: bad shape (a zero dim, a size overflow, or a row not a multiple of the block)", what);
    return 0;
}

int gguf_parse(Gguf *g, const uint8_t *buf, size_t size, char *err) {
    memset(g, 0, sizeof *g);
    g->buf = buf;
    Cursor c = {buf, buf + size};
    const uint8_t *magic;
    if (take(&c, 4, &magic)) return fail(err, "file too small to be GGUF (%zu bytes)", size);
    if (memcmp(magic, GGUF_MAGIC, 4)) return fail(err, "bad magic (not a GGUF file)");
    if (take_u32(&c, &g->version)) return fail(err, "truncated header");
    if (g->version == 0x03000000u || g->version == 0x02000000u) return fail(err, "big-endian GGUF is not supported");
    if (g->version != 3 && g->version != 2) return fail(err, "unsupported GGUF version %u (2 and 3 are supported)", g->version);
    if (take_u64(&c, &g->n_tensors) || take_u64(&c, &g->n_kv)) return fail(err, "truncated header");
    /* a key-value pair takes at least 13 bytes and a tensor info at least 32: bound the counts by the
       file size before allocating anything */
    uint64_t remain = (uint64_t)(c.end - c.p);
    if (g->n_kv > remain / 13) return fail(err, "key-value count %llu is impossible for a %zu-byte file", (unsigned long long)g->n_kv, size);
    if (g->n_tensors > remain / 32) return fail(err, "tensor count %llu is impossible for a %zu-byte file", (unsigned long long)g->n_tensors, size);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) { gguf_close(g); return fail(err, "out of memory"); }

    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (parse_kv(&c, &g->kv[i], i, err)) { gguf_close(g); return -1; }
        for (uint64_t j = 0; j < i; j++)
            if (str_eq(g->kv[j].key, g->kv[i].key)) {
                fail(err, "duplicate key '%.*s'", (int)(g->kv[i].key.len > 80 ? 80 : g->kv[i].key.len), g->kv[i].key.ptr);
                gguf_close(g);
                return -1;
            }
    }
    g->alignment = 32;
    int64_t al;
    int r = gguf_get_int(g, "general.alignment", 1, 1 << 30, &al, err);
    if (r < 0) { gguf_close(g); return -1; }
    if (r == 1) {
        if (al & (al - 1)) { gguf_close(g); return fail(err, "general.alignment %lld is not a power of two", (long long)al); }
        g->alignment = (uint64_t)al;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (parse_tensor_info(&c, &g->tensors[i], i, err)) { gguf_close(g); return -1; }
        for (uint64_t j = 0; j < i; j++)
            if (str_eq(g->tensors[j].name, g->tensors[i].name)) {
                fail(err, "duplicate tensor '%.*s'", (int)g->tensors[i].name.len, g->tensors[i].name.ptr);
                gguf_close(g);
                return -1;
            }
    }
    uint64_t header = (uint64_t)(c.p - buf);
    uint64_t data_start = (header + g->alignment - 1) / g->alignment * g->alignment;
    if (data_start > size && g->n_tensors) { gguf_close(g); return fail(err, "file ends before the tensor data section"); }
    g->data = buf + (data_start > size ? size : data_start);
    uint64_t data_size = size > data_start ? size - data_start : 0;
    /* tensors are laid out in order, each at the aligned end of the previous one (as llama.cpp requires) */
    uint64_t expect = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset != expect) {
            fail(err, "tensor '%.*s': data offset %llu, expected %llu", (int)t->name.len, t->name.ptr,
                 (unsigned long long)t->offset, (unsigned long long)expect);
            gguf_close(g);
            return -1;
        }
        if (t->nbytes > data_size || t->offset > data_size - t->nbytes) {
            fail(err, "tensor '%.*s': data (%llu bytes at offset %llu) runs past the end of the file", (int)t->name.len,
                 t->name.ptr, (unsigned long long)t->nbytes, (unsigned long long)t->offset);
            gguf_close(g);
            return -1;
        }
        t->data = g->data + t->offset;
        expect = (t->offset + t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    return 0;
}

int gguf_open(Gguf *g, const char *path, char *err) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) { close(fd); return fail(err, "%s: not a regular file", path); }
    if (st.st_size < 24) { close(fd); return fail(err, "%s: file too small to be GGUF (%lld bytes)", path, (long long)st.st_size); }
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail(err, "%s: mmap failed: %s", path, strerror(errno));
    char inner[GGUF_ERR];
    if (gguf_parse(g, map, (size_t)st.st_size, inner)) {
        munmap(map, (size_t)st.st_size);
        return fail(err, "%s: %s", path, inner);
    }
    g->map = map;
    g->size = (size_t)st.st_size;
    return 0;
}

void gguf_close(Gguf *g) {
    free(g->kv);
    free(g->tensors);
    if (g->map) munmap(g->map, g->size);
    memset(g, 0, sizeof *g);
}

const GgufKV *gguf_find(const Gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_tensor(const Gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

int gguf_get_int(const Gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err) {
    const GgufKV *kv = gguf_find(g, key);
    if (!kv) return 0;
    const uint8_t *p = kv->val;
    int64_t v;
    switch (kv->type) {
    case GGUF_U8: v = *p; break;
    case GGUF_I8: v = (int8_t)*p; break;
    case GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
    case GGUF_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
    case GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
    case GGUF_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
    case GGUF_U64: { uint64_t x; memcpy(&x, p, 8); if (x > (uint64_t)INT64_MAX) goto range; v = (int64_t)x; break; }
    case GGUF_I64: memcpy(&v, p, 8); break;
    default: return fail(err, "key '%s' has type %s, expected an integer", key, type_name(kv->type));
    }
    if (v < lo || v > hi) goto range;
    *out = v;
    return 1;
range:
    return fail(err, "key '%s' is out of range [%lld, %lld]", key, (long long)lo, (long long)hi);
}

int gguf_get_float(const Gguf *g, const char *key, double *out, char *err) {
    const GgufKV *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type == GGUF_F32) { float f; memcpy(&f, kv->val, 4); *out = f; }
    else if (kv->type == GGUF_F64) memcpy(out, kv->val, 8);
    else return fail(err, "key '%s' has type %s, expected a float", key, type_name(kv->type));
    if (*out != *out) return fail(err, "key '%s' is NaN", key);
    return 1;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, char *err) {
    const GgufKV *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return fail(err, "key '%s' has type %s, expected a bool", key, type_name(kv->type));
    *out = kv->val[0];
    return 1;
}

int gguf_get_str(const Gguf *g, const char *key, GgufStr *out, char *err) {
    const GgufKV *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_STRING) return fail(err, "key '%s' has type %s, expected a string", key, type_name(kv->type));
    memcpy(&out->len, kv->val, 8);
    out->ptr = (const char *)kv->val + 8;
    return 1;
}

int gguf_get_array(const Gguf *g, const char *key, uint32_t elem_type, uint64_t *n, const void **elems, char *err) {
    const GgufKV *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_ARRAY || kv->arr_type != elem_type)
        return fail(err, "key '%s' is not an array of %s", key, type_name(elem_type));
    *n = kv->arr_n;
    *elems = kv->val;
    return 1;
}

void gguf_string_array(const void *elems, uint64_t n, const char **ptrs, uint64_t *lens) {
    const uint8_t *p = elems;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(&lens[i], p, 8);
        ptrs[i] = (const char *)p + 8;
        p += 8 + lens[i];
    }
}

void gguf_format_value(const GgufKV *kv, char *out, size_t cap) {
    const uint8_t *v = kv->val;
    if (kv->type == GGUF_ARRAY) {
        snprintf(out, cap, "[%s x %llu]", type_name(kv->arr_type), (unsigned long long)kv->arr_n);
        return;
    }
    if (kv->type == GGUF_STRING) {
        uint64_t len;
        memcpy(&len, v, 8);
        snprintf(out, cap, "%.*s", (int)(len > cap ? cap : len), (const char *)v + 8);
        gguf_one_line(out);
        return;
    }
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } x;
    memcpy(&x, v, gguf_type_size(kv->type));
    switch (kv->type) {
    case GGUF_U8: snprintf(out, cap, "%u", x.u8); break;
    case GGUF_I8: snprintf(out, cap, "%d", x.i8); break;
    case GGUF_U16: snprintf(out, cap, "%u", x.u16); break;
    case GGUF_I16: snprintf(out, cap, "%d", x.i16); break;
    case GGUF_U32: snprintf(out, cap, "%u", x.u32); break;
    case GGUF_I32: snprintf(out, cap, "%d", x.i32); break;
    case GGUF_F32: snprintf(out, cap, "%.9g", x.f32); break;
    case GGUF_BOOL: snprintf(out, cap, "%s", x.u8 ? "true" : "false"); break;
    case GGUF_U64: snprintf(out, cap, "%llu", (unsigned long long)x.u64); break;
    case GGUF_I64: snprintf(out, cap, "%lld", (long long)x.i64); break;
    default: snprintf(out, cap, "%.17g", x.f64); break;
    }
}

/* ---- writing ---- */

void gguf_w_init(GgufWriter *w) { memset(w, 0, sizeof *w); }
void gguf_w_free(GgufWriter *w) { free(w->kv); free(w->tensors); memset(w, 0, sizeof *w); }

static void put(GgufWriter *w, const void *p, size_t n) {
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        uint8_t *nb = realloc(w->kv, cap);
        if (!nb) { fprintf(stderr, "error: out of memory writing GGUF metadata\n"); exit(1); }
        w->kv = nb;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}
static void put_u32(GgufWriter *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(GgufWriter *w, uint64_t v) { put(w, &v, 8); }
static void put_str(GgufWriter *w, const char *s) { put_u64(w, strlen(s)); put(w, s, strlen(s)); }
static void put_key(GgufWriter *w, const char *key, uint32_t type) { put_str(w, key); put_u32(w, type); w->n_kv++; }

void gguf_w_str(GgufWriter *w, const char *key, const char *val) { put_key(w, key, GGUF_STRING); put_str(w, val); }
void gguf_w_u32(GgufWriter *w, const char *key, uint32_t val) { put_key(w, key, GGUF_U32); put_u32(w, val); }
void gguf_w_u64(GgufWriter *w, const char *key, uint64_t val) { put_key(w, key, GGUF_U64); put_u64(w, val); }
void gguf_w_f32(GgufWriter *w, const char *key, float val) { put_key(w, key, GGUF_F32); put(w, &val, 4); }
void gguf_w_bool(GgufWriter *w, const char *key, int val) { uint8_t b = val != 0; put_key(w, key, GGUF_BOOL); put(w, &b, 1); }

void gguf_w_array(GgufWriter *w, const char *key, uint32_t elem_type, const void *elems, uint64_t n) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(w, elem_type);
    put_u64(w, n);
    put(w, elems, n * gguf_type_size(elem_type));
}

/* bytes of a validated value: a scalar, a string (length + bytes), or an array's elements */
static uint64_t value_bytes(uint32_t type, const uint8_t *val, uint64_t n) {
    uint64_t total = 0, len;
    if (type != GGUF_STRING) return n * gguf_type_size(type);
    for (uint64_t i = 0; i < n; i++) { memcpy(&len, val + total, 8); total += 8 + len; }
    return total;
}

void gguf_w_kv(GgufWriter *w, const GgufKV *kv) {
    put_u64(w, kv->key.len);
    put(w, kv->key.ptr, kv->key.len);
    put_u32(w, kv->type);
    w->n_kv++;
    if (kv->type != GGUF_ARRAY) { put(w, kv->val, value_bytes(kv->type, kv->val, 1)); return; }
    put_u32(w, kv->arr_type);
    put_u64(w, kv->arr_n);
    put(w, kv->val, value_bytes(kv->arr_type, kv->val, kv->arr_n));
}

void gguf_w_str_array(GgufWriter *w, const char *key, const char *const *strs, uint64_t n) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(w, GGUF_STRING);
    put_u64(w, n);
    for (uint64_t i = 0; i < n; i++) put_str(w, strs[i]);
}

void gguf_w_tensor(GgufWriter *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, const void *data) {
    if (w->n_tensors == w->tensors_cap) {
        w->tensors_cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        void *nt = realloc(w->tensors, w->tensors_cap * sizeof *w->tensors);
        if (!nt) { fprintf(stderr, "error: out of memory writing GGUF tensors\n"); exit(1); }
        w->tensors = nt;
    }
    struct GgufWTensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = i < (int)n_dims ? ne[i] : 1;
    t->type = type;
    t->data = data;
    if (gguf_tensor_nbytes(type, t->ne, n_dims, &t->nbytes)) { fprintf(stderr, "error: bad tensor shape for %s\n", name); exit(1); }
}

int gguf_w_write(const GgufWriter *w, const char *path, char *err) {
    const uint64_t align = 32;
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, "cannot write %s: %s", path, strerror(errno));
    uint32_t version = 3;
    uint64_t pos = 0, off = 0;
    static const uint8_t zeros[32];
    fwrite(GGUF_MAGIC, 1, 4, f);
    fwrite(&version, 4, 1, f);
    fwrite(&w->n_tensors, 8, 1, f);
    fwrite(&w->n_kv, 8, 1, f);
    fwrite(w->kv, 1, w->kv_len, f);
    pos = 24 + w->kv_len;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct GgufWTensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        fwrite(&len, 8, 1, f);
        fwrite(t->name, 1, len, f);
        fwrite(&t->n_dims, 4, 1, f);
        fwrite(t->ne, 8, t->n_dims, f);
        fwrite(&t->type, 4, 1, f);
        fwrite(&off, 8, 1, f);
        pos += 8 + len + 4 + 8 * t->n_dims + 4 + 8;
        off = (off + t->nbytes + align - 1) / align * align;
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        fwrite(zeros, 1, (align - pos % align) % align, f);
        pos += (align - pos % align) % align;
        fwrite(w->tensors[i].data, 1, w->tensors[i].nbytes, f);
        pos += w->tensors[i].nbytes;
    }
    if (ferror(f) | fclose(f)) return fail(err, "error writing %s", path);
    return 0;
}
