/* GGUF reader tests: a corpus of malformed files, each of which must end in a clean one-line error
   (never a crash or a read out of bounds), a seeded mutation fuzz loop, model-level validation in
   model_open, and a writer -> reader round trip.
   Damaged files are made in memory from valid bases (two llama.cpp fixtures, or small files built
   here). Every buffer handed to gguf_parse is an exact-size heap copy (no slack), so that under
   `make test-asan` AddressSanitizer turns any read past the end into an abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "gguf.h"
#include "model.h"

#define P63 (1ull << 63)
#define P62 (1ull << 62)
#define P40 (1ull << 40)
#define ALL1 UINT64_MAX

/* ------------------------------------------------------------------------------------------ */
/* helpers */

static uint8_t *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = n > 0 ? malloc((size_t)n) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    *size = p ? (size_t)n : 0;
    return p;
}

static int spit(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) | (w != n)) ? -1 : 0;
}

static const char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmp_dir, name);
    return path;
}

/* exact-size copy; an empty file still gets a real (1-byte) block so the pointer is never NULL */
static uint8_t *copy_exact(const uint8_t *src, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    if (n) memcpy(p, src, n);
    return p;
}

/* Does msg contain one of the '|'-separated alternatives (NULL: anything goes)? */
static int mentions(const char *msg, const char *alts) {
    if (!alts) return 1;
    for (const char *p = alts;;) {
        const char *bar = strchr(p, '|');
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
        if (strstr(msg, word)) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

/* A clean error: non-empty, terminated inside the buffer, one line, naming the problem. */
static int clean_msg(const char *what, const char *err, const char *alts) {
    size_t len = strnlen(err, GGUF_ERR);
    CHECK(len > 0 && len < GGUF_ERR, "%s: error message is empty or unterminated", what);
    if (!(len > 0 && len < GGUF_ERR)) return 0;
    int one_line = !strpbrk(err, "\r\n");
    CHECK(one_line, "%s: message is not one line: %s", what, err);
    CHECK(mentions(err, alts), "%s: message \"%s\" mentions none of \"%s\"", what, err, alts);
    return one_line && mentions(err, alts);
}

/* gguf_parse of an exact-size copy of buf[0..size) must fail cleanly and leave nothing to free */
static void expect_parse_fail(const char *what, const uint8_t *buf, size_t size, const char *alts) {
    uint8_t *copy = copy_exact(buf, size);
    Gguf g;
    char err[GGUF_ERR] = "";
    int r = gguf_parse(&g, copy, size, err);
    CHECK(r == -1, "%s: gguf_parse returned %d, want -1", what, r);
    if (r == 0) gguf_close(&g);
    else {
        clean_msg(what, err, alts);
        CHECK(!g.kv && !g.tensors, "%s: a failed parse left allocations behind", what);
    }
    free(copy);
}

static int parse_ok(const char *what, const uint8_t *buf, size_t size) {
    uint8_t *copy = copy_exact(buf, size);
    Gguf g;
    char err[GGUF_ERR] = "";
    int r = gguf_parse(&g, copy, size, err);
    CHECK(r == 0, "%s: a valid file must parse: %s", what, err);
    if (r == 0) gguf_close(&g);
    free(copy);
    return r == 0;
}

static void put_le(uint8_t *p, int width, uint64_t v) {
    for (int i = 0; i < width; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- a valid base file, its parse, and the positions of its fields ---- */

typedef struct {
    const char *name;
    uint8_t *buf;
    size_t size;
    Gguf g;
    size_t info_start, header_end;             /* the tensor infos */
    size_t data_start, data_end;               /* start of the data, end of the last tensor */
} Base;

static int base_open(Base *b, const char *fixture) {
    char path[512], err[GGUF_ERR] = "";
    memset(b, 0, sizeof *b);
    b->name = fixture;
    snprintf(path, sizeof path, "%s/%s/model.gguf", test_fixtures_dir, fixture);
    b->buf = slurp(path, &b->size);
    CHECK(b->buf, "cannot read %s", path);
    if (!b->buf) return -1;
    int r = gguf_parse(&b->g, b->buf, b->size, err);
    CHECK(r == 0 && b->g.n_tensors > 1, "%s: the unmodified base must parse: %s", path, err);
    if (r) { free(b->buf); b->buf = NULL; return -1; }
    const GgufTensor *last = &b->g.tensors[b->g.n_tensors - 1];
    b->info_start = (size_t)((const uint8_t *)b->g.tensors[0].name.ptr - b->buf) - 8;
    b->header_end = (size_t)((const uint8_t *)last->name.ptr - b->buf) + last->name.len + 4 + 8 * last->n_dims + 4 + 8;
    b->data_start = (size_t)(b->g.data - b->buf);
    for (uint64_t i = 0; i < b->g.n_tensors; i++) {
        size_t end = (size_t)((const uint8_t *)b->g.tensors[i].data - b->buf) + b->g.tensors[i].nbytes;
        if (end > b->data_end) b->data_end = end;
    }
    return 0;
}

static void base_close(Base *b) {
    if (b->buf) gguf_close(&b->g);
    free(b->buf);
    memset(b, 0, sizeof *b);
}

enum { K_LEN, K_TYPE, K_VAL, K_ARR_TYPE, K_ARR_N };   /* K_VAL: scalar / string length / first element */
static size_t kv_at(const Base *b, const char *key, int field) {
    const GgufKV *kv = gguf_find(&b->g, key);
    CHECK(kv, "%s has no key %s", b->name, key);
    if (!kv) return SIZE_MAX;
    size_t k = (size_t)((const uint8_t *)kv->key.ptr - b->buf);
    switch (field) {
    case K_LEN: return k - 8;
    case K_TYPE: return k + kv->key.len;
    case K_ARR_TYPE: return k + kv->key.len + 4;
    case K_ARR_N: return k + kv->key.len + 8;
    default: return (size_t)(kv->val - b->buf);
    }
}

enum { T_NAME_LEN, T_NAME, T_NDIMS, T_NE0, T_NE1, T_TYPE, T_OFFSET };
static size_t t_at(const Base *b, const char *name, int field) {
    const GgufTensor *t = gguf_tensor(&b->g, name);
    CHECK(t && (field != T_NE1 || t->n_dims >= 2), "%s has no tensor %s (of the dims needed)", b->name, name);
    if (!t || (field == T_NE1 && t->n_dims < 2)) return SIZE_MAX;
    size_t n = (size_t)((const uint8_t *)t->name.ptr - b->buf);
    switch (field) {
    case T_NAME_LEN: return n - 8;
    case T_NAME: return n;
    case T_NDIMS: return n + t->name.len;
    case T_NE0: return n + t->name.len + 4;
    case T_NE1: return n + t->name.len + 12;
    case T_TYPE: return n + t->name.len + 4 + 8 * t->n_dims;
    default: return n + t->name.len + 8 + 8 * t->n_dims;
    }
}

/* Writes val (width bytes, little-endian) at `at` in a copy of the base; the copy must fail to parse. */
static void expect_patch_fail(const Base *b, const char *what, size_t at, int width, uint64_t val, const char *alts) {
    char name[200];
    snprintf(name, sizeof name, "%s: %s", b->name, what);
    CHECK(at != SIZE_MAX && at + (size_t)width <= b->size, "%s: patch position out of the file", name);
    if (at == SIZE_MAX || at + (size_t)width > b->size) return;
    uint8_t *m = copy_exact(b->buf, b->size);
    put_le(m + at, width, val);
    expect_parse_fail(name, m, b->size, alts);
    free(m);
}

/* ---- a byte builder for small files made from scratch ---- */

typedef struct { uint8_t *p; size_t n, cap; } Bytes;

static void b_raw(Bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u8(Bytes *b, uint8_t v) { b_raw(b, &v, 1); }
static void b_u32(Bytes *b, uint32_t v) { uint8_t t[4]; put_le(t, 4, v); b_raw(b, t, 4); }
static void b_u64(Bytes *b, uint64_t v) { uint8_t t[8]; put_le(t, 8, v); b_raw(b, t, 8); }
static void b_str(Bytes *b, const char *s) { b_u64(b, strlen(s)); b_raw(b, s, strlen(s)); }
static void b_head(Bytes *b, uint64_t n_tensors, uint64_t n_kv) { b_raw(b, "GGUF", 4); b_u32(b, 3); b_u64(b, n_tensors); b_u64(b, n_kv); }
static void b_key(Bytes *b, const char *key, uint32_t type) { b_str(b, key); b_u32(b, type); }
static void b_arr(Bytes *b, const char *key, uint32_t elem, uint64_t n) { b_key(b, key, GGUF_ARRAY); b_u32(b, elem); b_u64(b, n); }

/* header + the given key-value bytes + one F32 tensor "w" [4] (16 bytes of data), alignment 32 */
static Bytes b_file(const Bytes *kvs, uint64_t n_kv) {
    Bytes b = {0};
    b_head(&b, 1, n_kv);
    b_raw(&b, kvs->p, kvs->n);
    b_str(&b, "w"); b_u32(&b, 1); b_u64(&b, 4); b_u32(&b, GGML_F32); b_u64(&b, 0);
    while (b.n % 32) b_u8(&b, 0);
    for (int i = 0; i < 16; i++) b_u8(&b, (uint8_t)i);
    return b;
}

/* ------------------------------------------------------------------------------------------ */
/* round trip and getters */

static void test_roundtrip_and_getters(void) {
    GgufWriter w;
    gguf_w_init(&w);
    static const uint8_t u8s[] = {0, 1, 255};
    static const int16_t i16s[] = {-32768, 7};
    static const int32_t i32s[] = {-1, 2, INT32_MAX};
    static const float f32s[] = {0.25f, -3.0f};
    static const double f64s[] = {1e300, -2.0};
    static const int64_t i64s[] = {INT64_MIN, 5};
    static const uint8_t bools[] = {1, 0, 1};
    static const char *const strs[] = {"a", "", "three"};
    gguf_w_str(&w, "t.str", "hello, gguf");
    gguf_w_str(&w, "t.empty", "");
    gguf_w_u32(&w, "t.u32", 4000000000u);
    gguf_w_u64(&w, "t.u64", P40);
    gguf_w_u64(&w, "t.u64big", P63);
    gguf_w_f32(&w, "t.f32", -1.5f);
    gguf_w_bool(&w, "t.true", 1);
    gguf_w_bool(&w, "t.false", 0);
    gguf_w_array(&w, "t.a_u8", GGUF_U8, u8s, 3);
    gguf_w_array(&w, "t.a_i16", GGUF_I16, i16s, 2);
    gguf_w_array(&w, "t.a_i32", GGUF_I32, i32s, 3);
    gguf_w_array(&w, "t.a_f32", GGUF_F32, f32s, 2);
    gguf_w_array(&w, "t.a_f64", GGUF_F64, f64s, 2);
    gguf_w_array(&w, "t.a_i64", GGUF_I64, i64s, 2);
    gguf_w_array(&w, "t.a_bool", GGUF_BOOL, bools, 3);
    gguf_w_str_array(&w, "t.a_str", strs, 3);
    gguf_w_str_array(&w, "t.a_none", strs, 0);
    gguf_w_str(&w, "t.lines", "two\nlines");
    const uint64_t n_kv = 18;
    static const float ta[6] = {1, 2, 3, 4, 5, 6};
    static const uint16_t tb[4] = {0x3C00, 0xC000, 0, 0x7BFF};   /* f16: 1, -2, 0, 65504 */
    uint8_t tc[68];
    for (int i = 0; i < 68; i++) tc[i] = (uint8_t)(i * 7);
    gguf_w_tensor(&w, "a", 2, (const uint64_t[]){3, 2}, GGML_F32, ta);
    gguf_w_tensor(&w, "b", 1, (const uint64_t[]){4}, GGML_F16, tb);
    gguf_w_tensor(&w, "c", 2, (const uint64_t[]){32, 2}, GGML_Q8_0, tc);
    const char *path = tmp_path("gguf_roundtrip.gguf");
    char err[GGUF_ERR] = "";
    int r = gguf_w_write(&w, path, err);
    gguf_w_free(&w);
    CHECK(r == 0, "write %s: %s", path, err);
    if (r) return;

    Gguf g;
    r = gguf_open(&g, path, err);
    CHECK(r == 0, "gguf_open on the written file: %s", err);
    if (r) return;
    CHECK(g.version == 3 && g.n_kv == n_kv && g.n_tensors == 3 && g.alignment == 32,
          "header: version %u, %llu keys, %llu tensors, alignment %llu", g.version, (unsigned long long)g.n_kv,
          (unsigned long long)g.n_tensors, (unsigned long long)g.alignment);

    GgufStr s = {0};
    CHECK(gguf_get_str(&g, "t.str", &s, err) == 1 && gguf_str_eq(s, "hello, gguf"), "t.str read back as '%.*s'", (int)s.len, s.ptr ? s.ptr : "");
    CHECK(gguf_get_str(&g, "t.empty", &s, err) == 1 && s.len == 0, "t.empty: length %llu", (unsigned long long)s.len);
    int64_t v = 0;
    CHECK(gguf_get_int(&g, "t.u32", 0, INT64_MAX, &v, err) == 1 && v == 4000000000ll, "t.u32 read back as %lld", (long long)v);
    CHECK(gguf_get_int(&g, "t.u64", 0, INT64_MAX, &v, err) == 1 && v == (int64_t)P40, "t.u64 read back as %lld", (long long)v);
    double d = 0;
    CHECK(gguf_get_float(&g, "t.f32", &d, err) == 1 && d == -1.5, "t.f32 read back as %g", d);
    int bv = -1;
    CHECK(gguf_get_bool(&g, "t.true", &bv, err) == 1 && bv == 1, "t.true read back as %d", bv);
    CHECK(gguf_get_bool(&g, "t.false", &bv, err) == 1 && bv == 0, "t.false read back as %d", bv);

    static const struct { const char *key; uint32_t type; const void *want; uint64_t n, size; } arrays[] = {
        {"t.a_u8", GGUF_U8, u8s, 3, 1}, {"t.a_i16", GGUF_I16, i16s, 2, 2}, {"t.a_i32", GGUF_I32, i32s, 3, 4},
        {"t.a_f32", GGUF_F32, f32s, 2, 4}, {"t.a_f64", GGUF_F64, f64s, 2, 8}, {"t.a_i64", GGUF_I64, i64s, 2, 8},
        {"t.a_bool", GGUF_BOOL, bools, 3, 1},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
        uint64_t n = 0;
        const void *e = NULL;
        r = gguf_get_array(&g, arrays[i].key, arrays[i].type, &n, &e, err);
        CHECK(r == 1 && n == arrays[i].n && !memcmp(e, arrays[i].want, n * arrays[i].size), "array %s: r %d, %llu elements or contents differ",
              arrays[i].key, r, (unsigned long long)n);
    }
    uint64_t n = 0;
    const void *e = NULL;
    r = gguf_get_array(&g, "t.a_str", GGUF_STRING, &n, &e, err);
    CHECK(r == 1 && n == 3, "t.a_str: r %d, %llu elements", r, (unsigned long long)n);
    if (r == 1 && n == 3) {
        const char *ptrs[3];
        uint64_t lens[3];
        gguf_string_array(e, n, ptrs, lens);
        for (int i = 0; i < 3; i++)
            CHECK(lens[i] == strlen(strs[i]) && !memcmp(ptrs[i], strs[i], lens[i]), "t.a_str[%d] read back as '%.*s'", i, (int)lens[i], ptrs[i]);
    }
    CHECK(gguf_get_array(&g, "t.a_none", GGUF_STRING, &n, &e, err) == 1 && n == 0, "t.a_none: %llu elements", (unsigned long long)n);

    /* tensors: shapes, sizes, offsets in order at 32-byte steps, data intact, aligned in the file */
    static const struct { const char *name; uint32_t n_dims, type; uint64_t ne0, ne1, nbytes, offset; const void *data; } ts[] = {
        {"a", 2, GGML_F32, 3, 2, 24, 0, ta}, {"b", 1, GGML_F16, 4, 1, 8, 32, tb}, {"c", 2, GGML_Q8_0, 32, 2, 68, 64, NULL}};
    for (int i = 0; i < 3; i++) {
        const GgufTensor *t = gguf_tensor(&g, ts[i].name);
        CHECK(t, "tensor %s missing", ts[i].name);
        if (!t) continue;
        CHECK(t->n_dims == ts[i].n_dims && t->type == ts[i].type && t->ne[0] == ts[i].ne0 && t->ne[1] == ts[i].ne1 &&
              t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == ts[i].nbytes && t->offset == ts[i].offset,
              "tensor %s: dims %u type %u ne [%llu %llu] nbytes %llu offset %llu", ts[i].name, t->n_dims, t->type,
              (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        const void *want = ts[i].data ? ts[i].data : tc;
        CHECK(!memcmp(t->data, want, ts[i].nbytes), "tensor %s: data differs", ts[i].name);
        CHECK(((const uint8_t *)t->data - g.map) % 32 == 0, "tensor %s: data not 32-byte aligned in the file", ts[i].name);
    }

    /* values as text (./run -m info): exact digits, strings on one line, arrays by type and count */
    static const struct { const char *key, *want; } texts[] = {
        {"t.str", "hello, gguf"}, {"t.empty", ""}, {"t.u32", "4000000000"}, {"t.u64big", "9223372036854775808"},
        {"t.f32", "-1.5"}, {"t.true", "true"}, {"t.false", "false"}, {"t.a_f64", "[f64 x 2]"}, {"t.a_str", "[string x 3]"},
        {"t.lines", "two?lines"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        const GgufKV *kv = gguf_find(&g, texts[i].key);
        char text[64] = "(missing)";
        if (kv) gguf_format_value(kv, text, sizeof text);
        CHECK(!strcmp(text, texts[i].want), "%s as text: '%s', want '%s'", texts[i].key, text, texts[i].want);
    }
    char cut[6];
    gguf_format_value(gguf_find(&g, "t.str"), cut, sizeof cut);
    CHECK(!strcmp(cut, "hello"), "t.str cut to 6 bytes: '%s', want 'hello'", cut);

    /* getter errors: wrong type and out of range are -1 with a one-line message; missing is 0, out untouched */
    char e2[GGUF_ERR];
    e2[0] = 0;
    CHECK(gguf_get_int(&g, "t.str", 0, 10, &v, e2) == -1, "get_int on a string must be -1");
    clean_msg("get_int on a string", e2, "string");
    e2[0] = 0;
    CHECK(gguf_get_int(&g, "t.f32", 0, 10, &v, e2) == -1, "get_int on an f32 must be -1");
    clean_msg("get_int on an f32", e2, "f32");
    e2[0] = 0;
    CHECK(gguf_get_int(&g, "t.u32", 0, 100, &v, e2) == -1, "get_int of 4e9 in [0, 100] must be -1");
    clean_msg("get_int out of range", e2, "range");
    e2[0] = 0;
    CHECK(gguf_get_int(&g, "t.u64big", 0, INT64_MAX, &v, e2) == -1, "get_int of u64 2^63 must be -1");
    clean_msg("get_int of u64 above INT64_MAX", e2, "range");
    e2[0] = 0;
    CHECK(gguf_get_float(&g, "t.u32", &d, e2) == -1, "get_float on a u32 must be -1");
    clean_msg("get_float on a u32", e2, "float");
    e2[0] = 0;
    CHECK(gguf_get_bool(&g, "t.u32", &bv, e2) == -1, "get_bool on a u32 must be -1");
    clean_msg("get_bool on a u32", e2, "bool");
    e2[0] = 0;
    CHECK(gguf_get_str(&g, "t.u32", &s, e2) == -1, "get_str on a u32 must be -1");
    clean_msg("get_str on a u32", e2, "string");
    e2[0] = 0;
    CHECK(gguf_get_array(&g, "t.a_f32", GGUF_I32, &n, &e, e2) == -1, "get_array(i32) on an f32 array must be -1");
    clean_msg("get_array with the wrong element type", e2, "array");
    e2[0] = 0;
    CHECK(gguf_get_array(&g, "t.u32", GGUF_U32, &n, &e, e2) == -1, "get_array on a scalar must be -1");
    clean_msg("get_array on a scalar", e2, "array");

    v = 42; d = 4.5; bv = 7; n = 9; s.len = 11;
    CHECK(gguf_get_int(&g, "t.missing", 0, 10, &v, e2) == 0 && v == 42, "get_int on a missing key: must be 0, out untouched");
    CHECK(gguf_get_float(&g, "t.missing", &d, e2) == 0 && d == 4.5, "get_float on a missing key: must be 0, out untouched");
    CHECK(gguf_get_bool(&g, "t.missing", &bv, e2) == 0 && bv == 7, "get_bool on a missing key: must be 0, out untouched");
    CHECK(gguf_get_str(&g, "t.missing", &s, e2) == 0 && s.len == 11, "get_str on a missing key: must be 0, out untouched");
    CHECK(gguf_get_array(&g, "t.missing", GGUF_U8, &n, &e, e2) == 0 && n == 9, "get_array on a missing key: must be 0, out untouched");
    CHECK(!gguf_find(&g, "t.st") && !gguf_find(&g, "t.strx") && !gguf_tensor(&g, "ab"), "prefix / extension of a name must not match");

    /* the same bytes parse from memory too */
    size_t size;
    uint8_t *raw = slurp(path, &size);
    CHECK(raw && parse_ok("written file via gguf_parse", raw, size), "written file re-read from memory");
    free(raw);
    gguf_close(&g);
    remove(path);
}

/* ------------------------------------------------------------------------------------------ */
/* truncation */

/* gguf_parse on every prefix up to the end of the header and on 200 prefixes inside the data */
static void truncate_base(const char *fixture) {
    Base b;
    if (base_open(&b, fixture)) return;
    char what[160];
    int bad = 0;
    for (size_t k = 0; k <= b.data_start && bad < 10; k++) {
        snprintf(what, sizeof what, "%s truncated to %zu bytes (header)", fixture, k);
        int before = test_current_failed;
        test_current_failed = 0;
        expect_parse_fail(what, b.buf, k, "past the end|truncated|too small|impossible|ends before");
        bad += test_current_failed;
        test_current_failed |= before;
    }
    for (int i = 0; i < 200; i++) {
        size_t k = b.data_start + 1 + (size_t)((uint64_t)(b.data_end - b.data_start - 1) * (uint64_t)i / 199);
        if (k >= b.data_end) k = b.data_end - 1;
        snprintf(what, sizeof what, "%s truncated to %zu bytes (data)", fixture, k);
        expect_parse_fail(what, b.buf, k, "past the end");
    }
    CHECK(parse_ok(fixture, b.buf, b.data_end), "%s up to the end of its last tensor must parse", fixture);
    base_close(&b);
}

static void test_truncation(void) {
    truncate_base("llama-rope");
    truncate_base("gpt2-learned");

    /* on disk, through gguf_open and model_open */
    Base b;
    if (base_open(&b, "llama-rope")) return;
    const char *path = tmp_path("gguf_truncated.gguf");
    size_t cuts[] = {0, 3, 23, 24, 40, 600, b.header_end - 1, b.header_end, b.data_start + 1, b.data_start + 100000, b.size - 1};
    char err[GGUF_ERR], what[160];
    Model *m = malloc(sizeof *m);
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        snprintf(what, sizeof what, "model_open on llama-rope truncated to %zu bytes", cuts[i]);
        if (spit(path, b.buf, cuts[i])) { CHECK(0, "%s: cannot write %s", what, path); continue; }
        err[0] = 0;
        int r = model_open(m, path, err);
        CHECK(r == -1, "%s: returned %d", what, r);
        if (r == 0) model_close(m);
        else if (clean_msg(what, err, "past the end|truncated|too small|impossible|ends before"))
            CHECK(strstr(err, path), "%s: message does not name the file: %s", what, err);
    }
    CHECK(spit(path, b.buf, b.size) == 0, "cannot write %s", path);
    err[0] = 0;
    int r = model_open(m, path, err);
    CHECK(r == 0, "model_open on the untruncated copy must succeed: %s", err);
    if (r == 0) model_close(m);
    free(m);
    remove(path);

    /* not a file at all */
    Gguf g;
    err[0] = 0;
    r = gguf_open(&g, tmp_path("gguf_no_such_file.gguf"), err);
    CHECK(r == -1, "gguf_open on a missing file returned %d", r);
    if (r == 0) gguf_close(&g); else clean_msg("gguf_open on a missing file", err, "No such file");
    err[0] = 0;
    r = gguf_open(&g, test_tmp_dir, err);
    CHECK(r == -1, "gguf_open on a directory returned %d", r);
    if (r == 0) gguf_close(&g); else clean_msg("gguf_open on a directory", err, "not a regular file");
    base_close(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* header: magic, version, counts */

static void test_magic_version(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    expect_patch_fail(&b, "magic GGUX", 3, 1, 'X', "magic");
    expect_patch_fail(&b, "magic zeroed", 0, 4, 0, "magic");
    expect_patch_fail(&b, "magic byte-swapped (FUGG)", 0, 4, 0x47475546u, "magic");
    expect_patch_fail(&b, "magic GGML (the old format)", 0, 4, 0x4C4D4747u, "magic");
    static const uint32_t bad_versions[] = {0, 1, 4, 0xFFFFFFFFu, 0x7FFFFFFFu};
    char what[64];
    for (size_t i = 0; i < sizeof bad_versions / sizeof *bad_versions; i++) {
        snprintf(what, sizeof what, "version %u", bad_versions[i]);
        expect_patch_fail(&b, what, 4, 4, bad_versions[i], "version");
    }
    expect_patch_fail(&b, "big-endian version 3 (0x03000000)", 4, 4, 0x03000000u, "big-endian");
    /* the reader supports v2 (same layout as v3): a control that the version field is what failed above */
    uint8_t *m = copy_exact(b.buf, b.size);
    put_le(m + 4, 4, 2);
    CHECK(parse_ok("llama-rope as version 2", m, b.size), "version 2 must be accepted");
    free(m);
    base_close(&b);
}

static void test_counts(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    static const uint64_t huge[] = {P63, P40, ALL1, 1ull << 32};
    char what[96];
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        snprintf(what, sizeof what, "n_tensors = %llu", (unsigned long long)huge[i]);
        expect_patch_fail(&b, what, 8, 8, huge[i], "tensor count|impossible");
        snprintf(what, sizeof what, "n_kv = %llu", (unsigned long long)huge[i]);
        expect_patch_fail(&b, what, 16, 8, huge[i], "key-value count|impossible");
    }
    /* one too many: the reader runs into the next section and must notice */
    expect_patch_fail(&b, "n_tensors one too many", 8, 8, b.g.n_tensors + 1, NULL);
    expect_patch_fail(&b, "n_kv one too many", 16, 8, b.g.n_kv + 1, NULL);
    /* the largest count the size bound allows still has to fail further in */
    expect_patch_fail(&b, "n_kv at the size bound", 16, 8, (b.size - 24) / 13, NULL);
    expect_patch_fail(&b, "n_tensors at the size bound", 8, 8, (b.size - 24) / 32, NULL);
    base_close(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* key-value pairs */

static void test_kv_lengths(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    size_t k0 = kv_at(&b, "general.architecture", K_LEN);
    expect_patch_fail(&b, "key length UINT64_MAX", k0, 8, ALL1, "past the end");
    expect_patch_fail(&b, "key length 2^63", k0, 8, P63, "past the end");
    expect_patch_fail(&b, "key length = file size (past the end)", k0, 8, b.size, "past the end");
    expect_patch_fail(&b, "key length 0", k0, 8, 0, "key length");
    expect_patch_fail(&b, "key length 65536 (inside the file, over the limit)", k0, 8, 65536, "key length");

    size_t name = kv_at(&b, "general.name", K_VAL);
    expect_patch_fail(&b, "string value length UINT64_MAX", name, 8, ALL1, "past the end");
    expect_patch_fail(&b, "string value length 2^63", name, 8, P63, "past the end");
    expect_patch_fail(&b, "string value length = file size", name, 8, b.size, "past the end");

    /* array counts whose byte size overflows 64 bits (2^62 * 4 wraps to exactly 0) or runs past the end */
    static const uint64_t counts[] = {P62, P62 + 1, P63, ALL1};
    char what[128];
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        snprintf(what, sizeof what, "f32 array count %llu", (unsigned long long)counts[i]);
        expect_patch_fail(&b, what, kv_at(&b, "tokenizer.ggml.scores", K_ARR_N), 8, counts[i], "past the end");
        snprintf(what, sizeof what, "i32 array count %llu", (unsigned long long)counts[i]);
        expect_patch_fail(&b, what, kv_at(&b, "tokenizer.ggml.token_type", K_ARR_N), 8, counts[i], "past the end");
        snprintf(what, sizeof what, "string array count %llu", (unsigned long long)counts[i]);
        expect_patch_fail(&b, what, kv_at(&b, "tokenizer.ggml.tokens", K_ARR_N), 8, counts[i], "past the end");
    }
    expect_patch_fail(&b, "string array element length UINT64_MAX", kv_at(&b, "tokenizer.ggml.tokens", K_VAL), 8, ALL1, "past the end");
    /* one element too many: the array swallows the next key's length and the reader must notice later */
    const GgufKV *tt = gguf_find(&b.g, "tokenizer.ggml.token_type");
    if (tt) expect_patch_fail(&b, "i32 array count one too many", kv_at(&b, "tokenizer.ggml.token_type", K_ARR_N), 8, tt->arr_n + 1, NULL);
    base_close(&b);

    /* u8 arrays (not in the fixtures): built here, with a valid control first */
    for (int i = -1; i < 3; i++) {
        static const uint64_t n8[] = {ALL1, P63, 1000};
        Bytes kv = {0};
        b_arr(&kv, "t.bytes", GGUF_U8, i < 0 ? 3 : n8[i]);
        b_u8(&kv, 1); b_u8(&kv, 2); b_u8(&kv, 3);
        Bytes f = b_file(&kv, 1);
        snprintf(what, sizeof what, "u8 array count %llu", i < 0 ? 3ull : (unsigned long long)n8[i]);
        if (i < 0) parse_ok(what, f.p, f.n);
        else expect_parse_fail(what, f.p, f.n, "past the end");
        free(kv.p); free(f.p);
    }
}

static void test_kv_types(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    size_t ft = kv_at(&b, "general.file_type", K_TYPE);
    expect_patch_fail(&b, "value type 13", ft, 4, 13, "type");
    expect_patch_fail(&b, "value type 0xFFFFFFFF", ft, 4, 0xFFFFFFFFu, "type");
    size_t at = kv_at(&b, "tokenizer.ggml.scores", K_ARR_TYPE);
    expect_patch_fail(&b, "array element type 13", at, 4, 13, "element type");
    expect_patch_fail(&b, "array element type 0xFFFFFFFF", at, 4, 0xFFFFFFFFu, "element type");
    expect_patch_fail(&b, "nested array (element type ARRAY)", at, 4, GGUF_ARRAY, "nested");
    /* a string retyped as an array: its length and bytes become an element type and a huge count */
    expect_patch_fail(&b, "string value retyped as an array", kv_at(&b, "general.architecture", K_TYPE), 4, GGUF_ARRAY, "past the end");
    /* a u32 turned into a bool whose byte is 2 */
    uint8_t *m = copy_exact(b.buf, b.size);
    put_le(m + ft, 4, GGUF_BOOL);
    put_le(m + kv_at(&b, "general.file_type", K_VAL), 1, 2);
    expect_parse_fail("llama-rope: bool value 2", m, b.size, "bool");
    free(m);
    base_close(&b);

    /* bool arrays: a valid one, then an element of 2 */
    for (int bad = 0; bad < 2; bad++) {
        Bytes kv = {0};
        b_arr(&kv, "t.flags", GGUF_BOOL, 3);
        b_u8(&kv, 1); b_u8(&kv, 0); b_u8(&kv, bad ? 2 : 1);
        Bytes f = b_file(&kv, 1);
        if (bad) expect_parse_fail("bool array element 2", f.p, f.n, "bool");
        else parse_ok("bool array 1 0 1", f.p, f.n);
        free(kv.p); free(f.p);
    }
    /* a nested array built properly (an array of arrays of u8) */
    Bytes kv = {0};
    b_arr(&kv, "t.nested", GGUF_ARRAY, 1);
    b_u32(&kv, GGUF_U8); b_u64(&kv, 1); b_u8(&kv, 5);
    Bytes f = b_file(&kv, 1);
    expect_parse_fail("array of arrays", f.p, f.n, "nested");
    free(kv.p); free(f.p);
}

static void test_duplicates_and_alignment(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    /* eos_token_id -> bos_token_id: same length, so only the name changes */
    expect_patch_fail(&b, "duplicate key", kv_at(&b, "tokenizer.ggml.eos_token_id", K_LEN) + 8 + strlen("tokenizer.ggml."), 1, 'b',
                      "duplicate key");
    size_t al = kv_at(&b, "general.alignment", K_VAL);
    expect_patch_fail(&b, "general.alignment 0", al, 4, 0, "alignment");
    expect_patch_fail(&b, "general.alignment 3", al, 4, 3, "alignment");
    expect_patch_fail(&b, "general.alignment 48", al, 4, 48, "alignment");
    expect_patch_fail(&b, "general.alignment 2^31", al, 4, 1u << 31, "alignment");
    expect_patch_fail(&b, "general.alignment as f32", kv_at(&b, "general.alignment", K_TYPE), 4, GGUF_F32, "alignment");
    /* an alignment the data offsets do not follow */
    expect_patch_fail(&b, "general.alignment 1024 (offsets not aligned to it)", al, 4, 1024, "offset");
    base_close(&b);

    /* alignment written as a string, with the u32 control */
    for (int bad = 0; bad < 2; bad++) {
        Bytes kv = {0};
        if (bad) { b_key(&kv, "general.alignment", GGUF_STRING); b_str(&kv, "32"); }
        else { b_key(&kv, "general.alignment", GGUF_U32); b_u32(&kv, 32); }
        Bytes f = b_file(&kv, 1);
        if (bad) expect_parse_fail("general.alignment as a string", f.p, f.n, "alignment");
        else parse_ok("general.alignment u32 32", f.p, f.n);
        free(kv.p); free(f.p);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* tensor infos */

static void test_tensor_infos(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    const char *q = "blk.0.attn_q.weight";        /* 2-D [64, 64], not the first tensor */
    expect_patch_fail(&b, "n_dims 0", t_at(&b, q, T_NDIMS), 4, 0, "dimensions");
    expect_patch_fail(&b, "n_dims 5", t_at(&b, q, T_NDIMS), 4, 5, "dimensions");
    expect_patch_fail(&b, "n_dims 0xFFFFFFFF", t_at(&b, q, T_NDIMS), 4, 0xFFFFFFFFu, "dimensions");
    expect_patch_fail(&b, "dim 0 of 0", t_at(&b, q, T_NE0), 8, 0, "shape");
    expect_patch_fail(&b, "dim 1 of 0", t_at(&b, q, T_NE1), 8, 0, "shape");
    {   /* 2^32 x 2^32 elements: the element count overflows */
        uint8_t *m = copy_exact(b.buf, b.size);
        put_le(m + t_at(&b, q, T_NE0), 8, 1ull << 32);
        put_le(m + t_at(&b, q, T_NE1), 8, 1ull << 32);
        expect_parse_fail("llama-rope: dims 2^32 x 2^32", m, b.size, "shape");
        free(m);
    }
    expect_patch_fail(&b, "dim 2^62 (F32 byte size overflows)", t_at(&b, q, T_NE0), 8, P62, "shape");
    expect_patch_fail(&b, "dim UINT64_MAX", t_at(&b, q, T_NE0), 8, ALL1, "shape");
    /* Q8_0 needs rows that are a multiple of 32: ffn_down rows are 172 */
    expect_patch_fail(&b, "Q8_0 with 172-wide rows", t_at(&b, "blk.0.ffn_down.weight", T_TYPE), 4, GGML_Q8_0, "shape");
    expect_patch_fail(&b, "tensor type 2 (Q4_0)", t_at(&b, q, T_TYPE), 4, 2, "type");
    expect_patch_fail(&b, "tensor type 99", t_at(&b, q, T_TYPE), 4, 99, "type");
    expect_patch_fail(&b, "tensor type 0xFFFFFFFF", t_at(&b, q, T_TYPE), 4, 0xFFFFFFFFu, "type");

    /* offsets */
    const GgufTensor *tq = gguf_tensor(&b.g, q), *t0 = &b.g.tensors[0], *tl = &b.g.tensors[b.g.n_tensors - 1];
    const char *last = "output.weight";
    CHECK(tq && gguf_str_eq(tl->name, last), "llama-rope layout changed: last tensor is not %s", last);
    if (!tq || !gguf_str_eq(tl->name, last)) { base_close(&b); return; }
    expect_patch_fail(&b, "offset not aligned (+4)", t_at(&b, q, T_OFFSET), 8, tq->offset + 4, "offset");
    expect_patch_fail(&b, "offset past the end", t_at(&b, last, T_OFFSET), 8, b.size, "offset|past the end");
    expect_patch_fail(&b, "offset UINT64_MAX", t_at(&b, last, T_OFFSET), 8, ALL1, "offset|past the end");
    expect_patch_fail(&b, "offset 2^63 (aligned)", t_at(&b, last, T_OFFSET), 8, P63, "offset|past the end");
    expect_patch_fail(&b, "offset + size past the end (last tensor one row longer)", t_at(&b, last, T_NE1), 8, tl->ne[1] + 1, "past the end");
    expect_patch_fail(&b, "offset + size past the end (last tensor 2^40 rows)", t_at(&b, last, T_NE1), 8, P40, "past the end");
    /* the second tensor pointing into the first, and a later one pointing back at the start */
    char n1[100];
    snprintf(n1, sizeof n1, "%.*s", (int)b.g.tensors[1].name.len, b.g.tensors[1].name.ptr);
    expect_patch_fail(&b, "second tensor overlaps the first", t_at(&b, n1, T_OFFSET), 8, t0->offset + 64, "offset");
    expect_patch_fail(&b, "tensor overlapping the first (offset 0)", t_at(&b, q, T_OFFSET), 8, 0, "offset");

    /* names: attn_k -> attn_q (same length) duplicates a name; lengths and NUL */
    expect_patch_fail(&b, "duplicate tensor name", t_at(&b, "blk.0.attn_k.weight", T_NAME) + 11, 1, 'q', "duplicate tensor");
    expect_patch_fail(&b, "tensor name length 0", t_at(&b, q, T_NAME_LEN), 8, 0, "name length");
    expect_patch_fail(&b, "tensor name length UINT64_MAX", t_at(&b, q, T_NAME_LEN), 8, ALL1, "past the end");
    expect_patch_fail(&b, "tensor name with a NUL byte", t_at(&b, q, T_NAME) + 3, 1, 0, "NUL");
    base_close(&b);

    /* a name over the 95-byte limit, with a 95-byte control */
    for (int len = 95; len <= 96; len++) {
        Bytes f = {0};
        char name[100];
        memset(name, 'n', (size_t)len);
        name[len] = 0;
        b_head(&f, 1, 0);
        b_str(&f, name); b_u32(&f, 1); b_u64(&f, 4); b_u32(&f, GGML_F32); b_u64(&f, 0);
        while (f.n % 32) b_u8(&f, 0);
        for (int i = 0; i < 16; i++) b_u8(&f, 0);
        if (len == 95) parse_ok("tensor name of 95 bytes", f.p, f.n);
        else expect_parse_fail("tensor name of 96 bytes", f.p, f.n, "name length");
        free(f.p);
    }

    /* gguf_tensor_nbytes directly */
    uint64_t nb = 0;
    CHECK(gguf_tensor_nbytes(GGML_F32, (const uint64_t[]){3, 2}, 2, &nb) == 0 && nb == 24, "F32 [3,2]: %llu bytes", (unsigned long long)nb);
    CHECK(gguf_tensor_nbytes(GGML_Q8_0, (const uint64_t[]){64, 3}, 2, &nb) == 0 && nb == 204, "Q8_0 [64,3]: %llu bytes", (unsigned long long)nb);
    CHECK(gguf_tensor_nbytes(GGML_Q8_0, (const uint64_t[]){33}, 1, &nb) == -1, "Q8_0 [33] must be rejected");
    CHECK(gguf_tensor_nbytes(GGML_F32, (const uint64_t[]){3, 0}, 2, &nb) == -1, "a zero dim must be rejected");
    CHECK(gguf_tensor_nbytes(2, (const uint64_t[]){32}, 1, &nb) == -1, "type Q4_0 must be rejected");
    CHECK(gguf_tensor_nbytes(GGML_F16, (const uint64_t[]){1ull << 31, 1ull << 31}, 2, &nb) == -1, "F16 2^62 elements (2^63 bytes) must be rejected");
    CHECK(gguf_tensor_nbytes(GGML_F32, (const uint64_t[]){1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, 4, &nb) == -1, "2^80 elements must be rejected");
}

/* ------------------------------------------------------------------------------------------ */
/* model level: a small pelab model written with exactly one defect */

typedef struct {
    const char *drop;       /* a key or tensor left out */
    const char *swap;       /* a 2-D tensor written with its two dims swapped */
    const char *dim3;       /* a 2-D tensor written with a third dim of 2 */
    const char *q8;         /* a tensor written as Q8_0 */
    const char *key;        /* a key written with another value: the string sval, or else the u32 ival */
    const char *sval;
    uint32_t ival;
    const char *extra;      /* an extra key of no meaning to the loader (u32 1) */
    int dim, key_length;    /* embedding length (0: 32); attention.key_length (0: not written) */
} Defect;

static float pool[4096];    /* tensor data shared by every tensor (the writer does not copy) */

static int is(const char *a, const char *b) { return a && !strcmp(a, b); }

static void put_u32(GgufWriter *w, const Defect *d, const char *key, uint32_t v) {
    if (is(d->drop, key)) return;
    if (is(d->key, key) && d->sval) gguf_w_str(w, key, d->sval);
    else gguf_w_u32(w, key, is(d->key, key) ? d->ival : v);
}

static void put_str(GgufWriter *w, const Defect *d, const char *key, const char *v) {
    if (is(d->drop, key)) return;
    if (is(d->key, key) && !d->sval) gguf_w_u32(w, key, d->ival);
    else gguf_w_str(w, key, is(d->key, key) ? d->sval : v);
}

static void put_tensor(GgufWriter *w, const Defect *d, const char *name, uint64_t ne0, uint64_t ne1) {
    if (is(d->drop, name)) return;
    uint64_t ne[3] = {ne0, ne1, 2};
    if (is(d->swap, name)) { ne[0] = ne1; ne[1] = ne0; }
    gguf_w_tensor(w, name, is(d->dim3, name) ? 3 : ne1 ? 2 : 1, ne, is(d->q8, name) ? GGML_Q8_0 : GGML_F32, pool);
}

/* pelab, rope, 1 layer, 4 heads / 2 KV heads, hidden 48, vocab 64, no tokenizer (optional) */
static int write_model(const char *path, const Defect *d) {
    for (int i = 0; i < 4096; i++) pool[i] = (float)((i * 37) % 17 - 8) / 64.0f;
    int D = d->dim ? d->dim : 32, nh = 4, nkv = 2, H = 48, V = 64;
    int hd = d->key_length ? d->key_length : D / nh, qd = nh * hd, kvd = nkv * hd;
    GgufWriter w;
    gguf_w_init(&w);
    put_str(&w, d, "general.architecture", "pelab");
    put_u32(&w, d, "pelab.context_length", 32);
    put_u32(&w, d, "pelab.embedding_length", (uint32_t)D);
    put_u32(&w, d, "pelab.block_count", 1);
    put_u32(&w, d, "pelab.feed_forward_length", (uint32_t)H);
    put_u32(&w, d, "pelab.attention.head_count", (uint32_t)nh);
    put_u32(&w, d, "pelab.attention.head_count_kv", (uint32_t)nkv);
    if (d->key_length) put_u32(&w, d, "pelab.attention.key_length", (uint32_t)d->key_length);
    put_str(&w, d, "pelab.pe", "rope");
    put_str(&w, d, "pelab.norm", "rmsnorm");
    put_str(&w, d, "pelab.mlp", "swiglu");
    if (d->extra) gguf_w_u32(&w, d->extra, 1);
    put_tensor(&w, d, "token_embd.weight", (uint64_t)D, (uint64_t)V);
    put_tensor(&w, d, "blk.0.attn_norm.weight", (uint64_t)D, 0);
    put_tensor(&w, d, "blk.0.attn_q.weight", (uint64_t)D, (uint64_t)qd);
    put_tensor(&w, d, "blk.0.attn_k.weight", (uint64_t)D, (uint64_t)kvd);
    put_tensor(&w, d, "blk.0.attn_v.weight", (uint64_t)D, (uint64_t)kvd);
    put_tensor(&w, d, "blk.0.attn_output.weight", (uint64_t)qd, (uint64_t)D);
    put_tensor(&w, d, "blk.0.ffn_norm.weight", (uint64_t)D, 0);
    put_tensor(&w, d, "blk.0.ffn_gate.weight", (uint64_t)D, (uint64_t)H);
    put_tensor(&w, d, "blk.0.ffn_up.weight", (uint64_t)D, (uint64_t)H);
    put_tensor(&w, d, "blk.0.ffn_down.weight", (uint64_t)H, (uint64_t)D);
    put_tensor(&w, d, "output_norm.weight", (uint64_t)D, 0);
    put_tensor(&w, d, "output.weight", (uint64_t)D, (uint64_t)V);
    char err[GGUF_ERR];
    int r = gguf_w_write(&w, path, err);
    if (r) fprintf(stderr, "  %s\n", err);
    gguf_w_free(&w);
    return r;
}

/* Writes the model with defect d and opens it: want_ok 1 expects success, 0 a clean error naming alts. */
static void model_case(const char *what, const Defect *d, int want_ok, const char *alts) {
    const char *path = tmp_path("gguf_model.gguf");
    if (write_model(path, d)) { CHECK(0, "%s: cannot write %s", what, path); return; }
    Model *m = malloc(sizeof *m);
    char err[GGUF_ERR] = "";
    int r = model_open(m, path, err);
    if (want_ok) CHECK(r == 0, "%s: model_open must succeed: %s", what, err);
    else {
        CHECK(r == -1, "%s: model_open returned %d, want -1", what, r);
        if (r == -1 && clean_msg(what, err, alts)) CHECK(strstr(err, path), "%s: message does not name the file: %s", what, err);
    }
    if (r == 0) model_close(m);
    free(m);
    remove(path);
}

static void test_model_config(void) {
    const Defect ok = {0};
    model_case("the valid base model", &ok, 1, NULL);
    static const struct { const char *what; Defect d; const char *alts; } cases[] = {
        {"missing general.architecture", {.drop = "general.architecture"}, "general.architecture"},
        {"unknown architecture gptx", {.key = "general.architecture", .sval = "gptx"}, "unknown architecture"},
        {"general.architecture as a u32", {.key = "general.architecture", .ival = 1}, "general.architecture"},
        {"context_length as a string", {.key = "pelab.context_length", .sval = "32"}, "context_length"},
        {"context_length 0", {.key = "pelab.context_length", .ival = 0}, "context_length"},
        {"context_length 2^31", {.key = "pelab.context_length", .ival = 1u << 31}, "context_length"},
        {"missing context_length", {.drop = "pelab.context_length"}, "context_length"},
        {"missing embedding_length", {.drop = "pelab.embedding_length"}, "embedding_length"},
        {"block_count 0", {.key = "pelab.block_count", .ival = 0}, "block_count"},
        {"block_count 257 (over MAX_LAYERS)", {.key = "pelab.block_count", .ival = 257}, "block_count"},
        {"head_count 0", {.key = "pelab.attention.head_count", .ival = 0}, "head_count"},
        {"head_count_kv 3 (does not divide 4)", {.key = "pelab.attention.head_count_kv", .ival = 3}, "KV head count"},
        {"head_count_kv 8 (more than head_count)", {.key = "pelab.attention.head_count_kv", .ival = 8}, "head_count_kv"},
        {"head_count_kv 0", {.key = "pelab.attention.head_count_kv", .ival = 0}, "head_count_kv"},
        {"unknown pelab.pe wavelet", {.key = "pelab.pe", .sval = "wavelet"}, "pelab.pe"},
        {"missing pelab.pe", {.drop = "pelab.pe"}, "pelab.pe"},
        {"pelab.pe as a u32", {.key = "pelab.pe", .ival = 3}, "pelab.pe"},
        {"unknown pelab.norm", {.key = "pelab.norm", .sval = "batchnorm"}, "pelab.norm"},
        {"unknown pelab.mlp", {.key = "pelab.mlp", .sval = "relu"}, "pelab.mlp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) model_case(cases[i].what, &cases[i].d, 0, cases[i].alts);
}

static void test_model_tensors(void) {
    static const struct { const char *what; Defect d; const char *alts; } cases[] = {
        {"ffn_up with its dims swapped", {.swap = "blk.0.ffn_up.weight"}, "shape"},
        {"ffn_down with its dims swapped", {.swap = "blk.0.ffn_down.weight"}, "shape"},
        {"token_embd with its dims swapped", {.swap = "token_embd.weight"}, "shape"},
        {"output with its dims swapped", {.swap = "output.weight"}, "shape"},
        {"ffn_up with a third dim of 2", {.dim3 = "blk.0.ffn_up.weight"}, "shape"},
        {"missing token_embd.weight", {.drop = "token_embd.weight"}, "missing tensor"},
        {"missing blk.0.attn_k.weight", {.drop = "blk.0.attn_k.weight"}, "missing tensor"},
        {"missing blk.0.ffn_gate.weight (swiglu)", {.drop = "blk.0.ffn_gate.weight"}, "missing tensor"},
        {"missing output_norm.weight", {.drop = "output_norm.weight"}, "missing tensor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) model_case(cases[i].what, &cases[i].d, 0, cases[i].alts);
    /* Q8_0 wherever its rows allow (the tensor-info tests: where they do not): matrices are used as
       stored, other tensors converted at load */
    static const char *q8_ok[] = {"token_embd.weight", "output.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight"};
    for (size_t i = 0; i < sizeof q8_ok / sizeof *q8_ok; i++) {
        const Defect d = {.q8 = q8_ok[i]};
        char what[96];
        snprintf(what, sizeof what, "%s as Q8_0", q8_ok[i]);
        model_case(what, &d, 1, NULL);
    }
    /* output.weight is optional (tied to token_embd), a control for the missing-tensor cases */
    const Defect tied = {.drop = "output.weight"};
    model_case("no output.weight (tied)", &tied, 1, NULL);
}

/* head_dim = embedding_length / head_count unless attention.key_length says otherwise */
static void test_model_head_dim_rules(void) {
    const Defect kl16 = {.key_length = 16};
    model_case("key_length 16 with dim 32, 4 heads", &kl16, 1, NULL);
    const Defect d30 = {.dim = 30};
    model_case("dim 30, 4 heads, no key_length", &d30, 0, "multiple of the head count");
    /* an unrelated key must not change validation (model.c consults a key named "x") */
    const Defect d30x = {.dim = 30, .extra = "x"};
    model_case("dim 30, 4 heads, no key_length, plus an unrelated key \"x\"", &d30x, 0, "multiple of the head count");
    /* with key_length given the head count need not divide the embedding length (as in llama.cpp) */
    const Defect d30k = {.dim = 30, .key_length = 8};
    model_case("dim 30, 4 heads, key_length 8", &d30k, 1, NULL);
}

/* general.alignment 1 is a power of two, so the reader accepts it; the data then need not be
   float-aligned. model_open must either refuse such a file or hand out aligned F32 weights
   (reading a float through a misaligned pointer is undefined behaviour). */
static void test_model_unaligned_data(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    /* the fixture's tensors are back to back, so with alignment 1 their offsets stay valid; an extra
       21-byte key moves the data start off a multiple of 4 */
    size_t kv_end = b.info_start;
    Bytes f = {0};
    b_head(&f, b.g.n_tensors, b.g.n_kv + 1);
    b_raw(&f, b.buf + 24, kv_end - 24);
    put_le(f.p + kv_at(&b, "general.alignment", K_VAL), 4, 1);
    b_key(&f, "test.pad", GGUF_U8);
    b_u8(&f, 0);
    b_raw(&f, b.buf + kv_end, b.header_end - kv_end);
    size_t data_at = f.n;
    b_raw(&f, b.buf + b.data_start, b.size - b.data_start);
    CHECK(data_at % 4 != 0, "the data should start off a multiple of 4, not at %zu", data_at);
    int ok = parse_ok("llama-rope with alignment 1", f.p, f.n);
    const char *path = tmp_path("gguf_align1.gguf");
    if (ok && spit(path, f.p, f.n) == 0) {
        Model *m = malloc(sizeof *m);
        char err[GGUF_ERR] = "";
        int r = model_open(m, path, err);
        if (r == 0) {
            const void *ptrs[] = {m->w.tok_embd.f, m->w.layers[0].wq.f, m->w.layers[0].w_down.f, m->w.out_norm, m->w.output.f};
            const char *names[] = {"token_embd", "blk.0.attn_q", "blk.0.ffn_down", "output_norm", "output"};
            for (int i = 0; i < 5; i++)
                CHECK(ptrs[i] && (uintptr_t)ptrs[i] % _Alignof(float) == 0, "alignment-1 file: %s weights at %p are not float-aligned",
                      names[i], ptrs[i]);
            model_close(m);
        } else clean_msg("alignment-1 file refused", err, "align");
        free(m);
        remove(path);
    }
    free(f.p);
    base_close(&b);
}

/* Names come from the file and are quoted in messages: a line break inside one must not break the
   one-line rule (a log line, or the CLI's single error line, would be split or forged). */
static void test_names_with_line_breaks(void) {
    Base b;
    if (base_open(&b, "llama-rope")) return;
    uint8_t *m = copy_exact(b.buf, b.size);
    size_t ft = kv_at(&b, "general.file_type", K_LEN) + 8;
    m[ft + 7] = '\n';                                          /* general\nfile_type */
    put_le(m + kv_at(&b, "general.file_type", K_TYPE), 4, 13);
    expect_parse_fail("key 'general\\nfile_type' with invalid value type 13", m, b.size, "type");
    free(m);

    m = copy_exact(b.buf, b.size);
    size_t bos = kv_at(&b, "tokenizer.ggml.bos_token_id", K_LEN) + 8, eos = kv_at(&b, "tokenizer.ggml.eos_token_id", K_LEN) + 8;
    m[bos + 14] = m[eos + 14] = '\n';                          /* tokenizer.ggml\n[be]os_token_id */
    m[eos + 15] = 'b';
    expect_parse_fail("duplicate key with a line break", m, b.size, "duplicate key");
    free(m);

    m = copy_exact(b.buf, b.size);
    m[t_at(&b, "blk.0.attn_q.weight", T_NAME) + 5] = '\r';     /* blk.0\rattn_q.weight */
    put_le(m + t_at(&b, "blk.0.attn_q.weight", T_TYPE), 4, 99);
    expect_parse_fail("tensor 'blk.0\\rattn_q.weight' with type 99", m, b.size, "type");
    free(m);

    m = copy_exact(b.buf, b.size);
    m[t_at(&b, "blk.0.attn_q.weight", T_NAME) + 5] = '\n';
    put_le(m + t_at(&b, "blk.0.attn_q.weight", T_OFFSET), 8, 4);
    expect_parse_fail("tensor 'blk.0\\nattn_q.weight' at a wrong offset", m, b.size, "offset");
    free(m);
    base_close(&b);

    const Defect arch = {.key = "general.architecture", .sval = "pel\nab"};
    model_case("architecture 'pel\\nab'", &arch, 0, "unknown architecture");
}

/* ------------------------------------------------------------------------------------------ */
/* fuzz */

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

typedef struct { size_t at; int width; } Field;

/* the positions of the base's length, count, type, dim and offset fields */
static int fields_of(const Base *b, Field *f, int max) {
    int n = 0;
#define ADDF(a, w) do { if (n < max) f[n++] = (Field){(a), (w)}; } while (0)
    ADDF(4, 4); ADDF(8, 8); ADDF(16, 8);
    for (uint64_t i = 0; i < b->g.n_kv; i++) {
        const GgufKV *kv = &b->g.kv[i];
        size_t k = (size_t)((const uint8_t *)kv->key.ptr - b->buf);
        ADDF(k - 8, 8);
        ADDF(k + kv->key.len, 4);
        if (kv->type == GGUF_STRING) ADDF((size_t)(kv->val - b->buf), 8);
        else if (kv->type == GGUF_ARRAY) {
            ADDF(k + kv->key.len + 4, 4);
            ADDF(k + kv->key.len + 8, 8);
            if (kv->arr_type == GGUF_STRING && kv->arr_n) ADDF((size_t)(kv->val - b->buf), 8);
        } else ADDF((size_t)(kv->val - b->buf), (int)gguf_type_size(kv->type) >= 4 ? 4 : 1);
    }
    for (uint64_t i = 0; i < b->g.n_tensors; i++) {
        const GgufTensor *t = &b->g.tensors[i];
        size_t p = (size_t)((const uint8_t *)t->name.ptr - b->buf);
        ADDF(p - 8, 8);
        p += t->name.len;
        ADDF(p, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) ADDF(p + 4 + 8 * d, 8);
        ADDF(p + 4 + 8 * t->n_dims, 4);
        ADDF(p + 8 + 8 * t->n_dims, 8);
    }
#undef ADDF
    return n;
}

static uint64_t interesting(size_t size) {
    const uint64_t v[] = {0, 1, 2, 3, 5, 7, 8, 9, 12, 13, 31, 32, 33, 64, 255, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF,
                          1ull << 32, P40, P62, P62 + 1, P63, ALL1, ALL1 - 1, size, size - 1, size + 1, size / 2};
    uint64_t r = rnd() % (sizeof v / sizeof *v + 2);
    return r < sizeof v / sizeof *v ? v[r] : rnd() >> (rnd() % 64);
}

static int within(const uint8_t *buf, size_t size, const void *p, uint64_t n) {
    uintptr_t a = (uintptr_t)buf, q = (uintptr_t)p;
    return q >= a && q - a <= size && n <= size - (q - a);
}

/* After a successful parse, everything the reader hands out must lie inside the buffer. */
static const char *escapes(const Gguf *g, const uint8_t *buf, size_t size) {
    static char why[160];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        uint64_t nb;
        if (!within(buf, size, t->name.ptr, t->name.len)) return "a tensor name lies outside the buffer";
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS || gguf_tensor_nbytes(t->type, t->ne, t->n_dims, &nb) || nb != t->nbytes)
            return "a tensor has invalid dims, type or size";
        if (!within(buf, size, t->data, t->nbytes)) {
            snprintf(why, sizeof why, "tensor %llu data (%llu bytes at +%lld) lies outside the buffer", (unsigned long long)i,
                     (unsigned long long)t->nbytes, (long long)((const uint8_t *)t->data - buf));
            return why;
        }
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const GgufKV *kv = &g->kv[i];
        if (!within(buf, size, kv->key.ptr, kv->key.len)) return "a key lies outside the buffer";
        uint64_t len;
        if (kv->type == GGUF_STRING) {
            if (!within(buf, size, kv->val, 8)) return "a string value lies outside the buffer";
            memcpy(&len, kv->val, 8);
            if (!within(buf, size, kv->val + 8, len)) return "a string value lies outside the buffer";
        } else if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING) {
            const uint8_t *p = kv->val;
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                if (!within(buf, size, p, 8)) return "a string array element lies outside the buffer";
                memcpy(&len, p, 8);
                if (!within(buf, size, p + 8, len)) return "a string array element lies outside the buffer";
                p += 8 + len;
            }
        } else if (kv->type == GGUF_ARRAY) {
            size_t sz = gguf_type_size(kv->arr_type);
            if (!sz || kv->arr_n > size / sz || !within(buf, size, kv->val, kv->arr_n * sz)) return "an array lies outside the buffer";
        } else if (!gguf_type_size(kv->type) || !within(buf, size, kv->val, gguf_type_size(kv->type)))
            return "a scalar value lies outside the buffer or has an invalid type";
    }
    return NULL;
}

static void test_fuzz(void) {
    Base bases[2];
    if (base_open(&bases[0], "llama-rope")) return;
    if (base_open(&bases[1], "gpt2-learned")) { base_close(&bases[0]); return; }
    static Field fields[2][512];
    int nf[2] = {fields_of(&bases[0], fields[0], 512), fields_of(&bases[1], fields[1], 512)};
    const char *path = tmp_path("gguf_fuzz.gguf");
    Model *m = malloc(sizeof *m);
    int n_ok = 0, n_fail = 0, n_model = 0, bad = 0;
    rng = 0x2545F4914F6CDD1Dull;
    for (int it = 0; it < 3000 && bad < 10; it++) {
        const Base *b = &bases[it & 1];
        const Field *fl = fields[it & 1];
        uint8_t *buf = copy_exact(b->buf, b->size);
        char what[160];
        int kind = (int)(rnd() % 4);
        if (kind == 0) {   /* flip 1-4 random bytes of the header; half the time in the tensor infos, which
                              the long token list would otherwise crowd out */
            int n = 1 + (int)(rnd() % 4);
            size_t lo = rnd() % 2 ? b->info_start : 0;
            for (int j = 0; j < n; j++) buf[lo + rnd() % (b->data_start - lo)] ^= (uint8_t)(1 + rnd() % 255);
            snprintf(what, sizeof what, "fuzz %d (%s): %d bytes flipped", it, b->name, n);
        } else if (kind == 1 || kind == 2) {   /* a known field: an extreme value, or nudged by a little */
            Field f = fl[rnd() % (uint64_t)nf[it & 1]];
            uint64_t v = 0;
            memcpy(&v, buf + f.at, (size_t)f.width);
            if (kind == 1) v = interesting(b->size);
            else v += (uint64_t)((int64_t)(rnd() % 17) - 8);
            put_le(buf + f.at, f.width, v);
            snprintf(what, sizeof what, "fuzz %d (%s): field at %zu set to %llu", it, b->name, f.at, (unsigned long long)v);
        } else {   /* any 8 bytes of the header */
            size_t at = rnd() % (b->data_start - 8);
            uint64_t v = interesting(b->size);
            put_le(buf + at, 8, v);
            snprintf(what, sizeof what, "fuzz %d (%s): u64 at %zu set to %llu", it, b->name, at, (unsigned long long)v);
        }
        Gguf g;
        char err[GGUF_ERR] = "";
        int before = test_current_failed;
        test_current_failed = 0;
        int r = gguf_parse(&g, buf, b->size, err);
        CHECK(r == 0 || r == -1, "%s: gguf_parse returned %d", what, r);
        if (r == 0) {
            n_ok++;
            const char *why = escapes(&g, buf, b->size);
            CHECK(!why, "%s: parsed, but %s", what, why);
            gguf_close(&g);
            /* some of the files that still parse go through model_open as well */
            if (!why && n_ok % 5 == 0 && spit(path, buf, b->size) == 0) {
                n_model++;
                err[0] = 0;
                int mr = model_open(m, path, err);
                CHECK(mr == 0 || mr == -1, "%s: model_open returned %d", what, mr);
                if (mr == 0) model_close(m);
                else if (mr == -1) clean_msg(what, err, NULL);
            }
        } else if (r == -1) {
            n_fail++;
            clean_msg(what, err, NULL);
        }
        bad += test_current_failed;
        test_current_failed |= before;
        free(buf);
    }
    CHECK(bad < 10, "stopped after %d failing fuzz iterations", bad);
    /* the mutations must exercise both outcomes, or the loop proves little */
    CHECK(n_ok > 100 && n_fail > 1000 && n_model > 20, "fuzz: %d parsed, %d rejected, %d through model_open", n_ok, n_fail, n_model);
    free(m);
    remove(path);
    base_close(&bases[0]);
    base_close(&bases[1]);
}

void suite_gguf(void) {
    RUN(test_roundtrip_and_getters);
    RUN(test_truncation);
    RUN(test_magic_version);
    RUN(test_counts);
    RUN(test_kv_lengths);
    RUN(test_kv_types);
    RUN(test_duplicates_and_alignment);
    RUN(test_tensor_infos);
    RUN(test_names_with_line_breaks);
    RUN(test_model_config);
    RUN(test_model_tensors);
    RUN(test_model_head_dim_rules);
    RUN(test_model_unaligned_data);
    RUN(test_fuzz);
}
