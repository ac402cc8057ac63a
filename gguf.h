/* GGUF v3: a validating, mmap-based reader and a small writer.
   The reader checks everything before anything is used (magic, version, counts, string and array
   lengths, value types, tensor types, dims, offsets, sizes, alignment), so that a damaged or hostile
   file ends in a one-line error, never in a read out of bounds. */
#ifndef GGUF_H
#define GGUF_H
#include <stddef.h>
#include <stdint.h>

enum {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6,
    GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11, GGUF_F64 = 12,
    GGUF_N_TYPES
};
/* tensor types (ggml numbering) */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8 };

#define GGUF_MAX_DIMS 4
#define GGUF_ERR 256   /* size of every error buffer */

typedef struct { const char *ptr; uint64_t len; } GgufStr;   /* not NUL-terminated */

typedef struct {
    GgufStr key;
    uint32_t type;
    const uint8_t *val;        /* the raw value (scalars, strings: length + bytes) */
    uint32_t arr_type;         /* arrays: element type, count, first element */
    uint64_t arr_n;
} GgufKV;

typedef struct {
    GgufStr name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the contiguous dimension; unused dims are 1 */
    uint32_t type;
    uint64_t offset;           /* relative to the data section */
    uint64_t nbytes;
    const void *data;
} GgufTensor;

typedef struct {
    uint8_t *map; size_t size; /* the mapped file (NULL for an in-memory buffer) */
    const uint8_t *buf;        /* the bytes being read */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    GgufKV *kv;
    GgufTensor *tensors;
    uint64_t alignment;
    const uint8_t *data;       /* start of the tensor data section */
} Gguf;

/* Maps and validates a file / validates a buffer (which must outlive g). 0 or -1 with err set. */
int gguf_open(Gguf *g, const char *path, char *err);
int gguf_parse(Gguf *g, const uint8_t *buf, size_t size, char *err);
void gguf_close(Gguf *g);

const GgufKV *gguf_find(const Gguf *g, const char *key);
const GgufTensor *gguf_tensor(const Gguf *g, const char *name);

/* Typed getters: 1 found, 0 missing (out untouched), -1 present with the wrong type or out of
   range (err set). Integers accept any integer type; floats accept f32/f64. */
int gguf_get_int(const Gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err);
int gguf_get_float(const Gguf *g, const char *key, double *out, char *err);
int gguf_get_bool(const Gguf *g, const char *key, int *out, char *err);
int gguf_get_str(const Gguf *g, const char *key, GgufStr *out, char *err);
/* An array of the given element type: count and a pointer to the packed elements. */
int gguf_get_array(const Gguf *g, const char *key, uint32_t elem_type, uint64_t *n, const void **elems, char *err);
/* Fills ptrs/lens (n entries each) from an array of strings found by gguf_get_array. */
void gguf_string_array(const void *elems, uint64_t n, const char **ptrs, uint64_t *lens);
int gguf_str_eq(GgufStr s, const char *c);
/* A validated value as one line of text: numbers, booleans, strings (cut at cap - 1 bytes, control
   characters replaced), arrays as "[type x count]". */
void gguf_format_value(const GgufKV *kv, char *out, size_t cap);

/* ---- writer ---- */
typedef struct {
    uint8_t *kv; size_t kv_len, kv_cap; uint64_t n_kv;
    struct GgufWTensor { char name[96]; uint32_t n_dims; uint64_t ne[GGUF_MAX_DIMS]; uint32_t type;
                         const void *data; uint64_t nbytes; } *tensors;
    uint64_t n_tensors, tensors_cap;
} GgufWriter;

void gguf_w_init(GgufWriter *w);
void gguf_w_free(GgufWriter *w);
void gguf_w_str(GgufWriter *w, const char *key, const char *val);
void gguf_w_u32(GgufWriter *w, const char *key, uint32_t val);
void gguf_w_u64(GgufWriter *w, const char *key, uint64_t val);
void gguf_w_f32(GgufWriter *w, const char *key, float val);
void gguf_w_bool(GgufWriter *w, const char *key, int val);
void gguf_w_array(GgufWriter *w, const char *key, uint32_t elem_type, const void *elems, uint64_t n); /* not strings */
void gguf_w_str_array(GgufWriter *w, const char *key, const char *const *strs, uint64_t n);
/* a key-value pair of a file being read, copied as it is (any type) */
void gguf_w_kv(GgufWriter *w, const GgufKV *kv);
/* data is not copied: it must stay valid until gguf_w_write. */
void gguf_w_tensor(GgufWriter *w, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, const void *data);
int gguf_w_write(const GgufWriter *w, const char *path, char *err);

/* Replaces control characters (from names in a hostile file) so that a message stays one line. */
void gguf_one_line(char *s);
size_t gguf_type_size(uint32_t type);           /* value types; 0 for string/array */
int gguf_tensor_nbytes(uint32_t type, const uint64_t *ne, uint32_t n_dims, uint64_t *out);

#endif
