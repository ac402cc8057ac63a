/* F16 and Q8_0 weights: conversions, the products on them, and the GGUF converter; see quant.h.
   The SIMD paths are chosen at build time (-march=native: AVX-512 VNNI, AVX-VNNI or AVX2, F16C);
   each loop leaves what it did not do to the next, down to the portable loops, which alone run in
   a build without those extensions (make test-portable). Integer block sums are exact, so every
   path computes the same int32 per block; only the float sums of scaled blocks differ in order. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif
/* the instruction sets the kernels use, as the compiler targets them */
#if defined(__AVX2__) && defined(__FMA__)
#define HAVE_AVX2 1
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define HAVE_AVX512_VNNI 1
#endif
#include "buffer.h"
#include "encodings/encoding.h"
#include "gguf.h"
#include "ops.h"
#include "quant.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))


void quantize_row_q8_0(BlockQ8_0 *y, const float *x, size_t n) {
    for (size_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0;
        for (int i = 0; i < QK8_0; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;   /* NaN: skipped */
        float d = amax / 127, id = d ? 1 / d : 0;
        y[b].d = f32_to_f16(d);
        /* clamped only so that the cast is defined for any input (inf, NaN: -127); finite values are in
           range. Comparisons, not fminf/fmaxf, which are library calls unless math is "finite-only". */
        for (int i = 0; i < QK8_0; i++) {
            float v = xb[i] * id;
            y[b].qs[i] = (int8_t)roundf(!(v >= -127) ? -127 : v > 127 ? 127 : v);
        }
    }
}

/* Byte by byte: src may sit at any offset of a file (general.alignment 1) */
void dequantize_row(float *y, const void *src, int type, size_t n) {
    const uint8_t *p = src;
    if (type == GGML_F32) {
        memcpy(y, p, n * sizeof *y);
    } else if (type == GGML_F16) {
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); y[i] = f16_to_f32(h); }
    } else {
        for (size_t b = 0; b < n / QK8_0; b++, p += sizeof(BlockQ8_0)) {
            uint16_t h;
            memcpy(&h, p, 2);
            float d = f16_to_f32(h);
            for (int i = 0; i < QK8_0; i++) y[b * QK8_0 + i] = d * (float)(int8_t)p[2 + i];
        }
    }
}

static size_t row_bytes(int type, size_t cols) {
    return type == GGML_Q8_0 ? cols / QK8_0 * sizeof(BlockQ8_0) : type == GGML_F16 ? 2 * cols : 4 * cols;
}

Mat mat_rows(Mat M, size_t first, int cols) {
    if (M.type == GGML_F32) M.f += first * cols;
    else M.q = (const uint8_t *)M.q + first * row_bytes(M.type, cols);
    return M;
}

void mat_row(float *out, const Mat *M, size_t r, int cols) {
    Mat row = mat_rows(*M, r, cols);
    dequantize_row(out, M->type == GGML_F32 ? (const void *)row.f : row.q, M->type, cols);
}

/* ------------------------------------------------------------------------------------------ */
/* dot products */

#ifdef HAVE_AVX2
/* 8 int32 lanes that sum to w . x over one block of 32 int8 pairs. dpbusd and maddubs multiply
   unsigned by signed bytes, so they get |w| and x with the sign of w (llama.cpp's trick). |.| goes
   on the weights because a file may hold -128, whose magnitude 128 is exact as an unsigned byte;
   x, quantized here, stays in [-127, 127], so flipping its sign cannot overflow. */
static inline __m256i block_dot_lanes(__m256i w, __m256i x) {
    __m256i aw = _mm256_sign_epi8(w, w), sx = _mm256_sign_epi8(x, w);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), aw, sx);
#else   /* pairs of products fit int16: 2 * 128 * 127 < 32768 */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

float dot_q8_0(const BlockQ8_0 *w, const BlockQ8_0 *x, int nb) {
    int b = 0;
    float sum = 0;
#ifdef HAVE_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; b < nb; b++) {
        __m256i s = block_dot_lanes(_mm256_loadu_si256((const __m256i *)w[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16_to_f32(w[b].d) * f16_to_f32(x[b].d)), acc);
    }
    sum = hsum256(acc);
#endif
    for (; b < nb; b++) {   /* portable: the exact block sum, then its scale */
        int32_t s = 0;
        for (int i = 0; i < QK8_0; i++) s += w[b].qs[i] * x[b].qs[i];
        sum += (float)s * (f16_to_f32(w[b].d) * f16_to_f32(x[b].d));
    }
    return sum;
}

#ifdef HAVE_AVX512_VNNI
#define TILE_W 4   /* weight rows per register tile; activation rows: up to 4 */
/* Decoding streams every weight once per token; the hardware prefetcher, following four rows at
   once, left the loads waiting on memory. Asking ~2 KB ahead of each row took decoding of the 110M
   shape from ~150 to ~190 tokens/s. */
#define PREFETCH_BYTES 2048

/* blocks p[0] and p[1] side by side in one register; p[1] zero when it is past the row */
static inline __m512i load_pair(const BlockQ8_0 *p, int both) {
    __m256i hi = both ? _mm256_loadu_si256((const __m256i *)p[1].qs) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p[0].qs)), hi, 1);
}

static inline __m512 scale_pair(const BlockQ8_0 *p, int both) {
    return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(f16_to_f32(p[0].d)), _mm512_set1_ps(both ? f16_to_f32(p[1].d) : 0));
}

/* y[j * ldy + i] = w_i . x_j for TILE_W weight rows and NX activation rows (nb blocks each, rows
   consecutive), two blocks per step, every pair's sum in registers. dpbusd multiplies unsigned by
   signed bytes: the weights go in as w + 128 (w ^ 0x80, exact for any int8), and 128 sum(x) per
   lane, one dpbusd per activation block, starts each lane's sum below zero to take it back out,
   so every lane's int32 is exactly its part of w . x. */
static inline __attribute__((always_inline)) void tile_q8_0(float *y, size_t ldy, const BlockQ8_0 *w, const BlockQ8_0 *x, int nb,
                                                            const int NX) {
    const __m512i offset = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512 acc[4][TILE_W];
    for (int j = 0; j < NX; j++)
        for (int i = 0; i < TILE_W; i++) acc[j][i] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b += 2) {
        int both = b + 1 < nb;
        for (int i = 0; i < TILE_W; i++) _mm_prefetch((const char *)(w + (size_t)i * nb + b) + PREFETCH_BYTES, _MM_HINT_T0);
        __m512i wu[TILE_W];
        __m512 dw[TILE_W];
        for (int i = 0; i < TILE_W; i++) {
            wu[i] = _mm512_xor_si512(load_pair(w + (size_t)i * nb + b, both), offset);
            dw[i] = scale_pair(w + (size_t)i * nb + b, both);
        }
        for (int j = 0; j < NX; j++) {
            __m512i xq = load_pair(x + (size_t)j * nb + b, both);
            __m512i start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, offset, xq));
            __m512 dx = scale_pair(x + (size_t)j * nb + b, both);
            for (int i = 0; i < TILE_W; i++)
                acc[j][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, wu[i], xq)), _mm512_mul_ps(dw[i], dx), acc[j][i]);
        }
    }
    for (int j = 0; j < NX; j++)
        for (int i = 0; i < TILE_W; i++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[j][i]);
}
#endif

/* y[j * ldy + i] = w_i . x_j for nw weight rows and nx <= 4 activation rows */
static void block_q8_0(float *y, size_t ldy, const BlockQ8_0 *w, const BlockQ8_0 *x, int nb, int nw, int nx) {
#ifdef HAVE_AVX512_VNNI
    if (nw == TILE_W) {   /* constant row counts, so that the tile's loops unroll into registers */
        switch (nx) {
        case 1: tile_q8_0(y, ldy, w, x, nb, 1); return;
        case 2: tile_q8_0(y, ldy, w, x, nb, 2); return;
        case 3: tile_q8_0(y, ldy, w, x, nb, 3); return;
        case 4: tile_q8_0(y, ldy, w, x, nb, 4); return;
        }
    }
#endif
    for (int j = 0; j < nx; j++)
        for (int i = 0; i < nw; i++) y[j * ldy + i] = dot_q8_0(w + (size_t)i * nb, x + (size_t)j * nb, nb);
}

float dot_f16(const uint16_t *w, const float *x, int n) {
    int i = 0;
    float sum = 0;
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), acc);
    sum = _mm512_reduce_add_ps(acc);
#elif defined(HAVE_AVX2) && defined(__F16C__)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), acc);
    sum = hsum256(acc);
#endif
    for (; i < n; i++) sum += f16_to_f32(w[i]) * x[i];
    return sum;
}

/* ------------------------------------------------------------------------------------------ */
/* the product */

/* Tiles of W_TILE weight rows x X_TILE rows of x, the threads' unit of work (small enough to share
   a 288-row matrix evenly at T = 1; the tile's rows stay in L1/L2 while they meet), worked in blocks
   of 4 x 4 (register blocking) */
enum { W_TILE = 16, X_TILE = 16, BLOCK = 4 };

void linear_forward(float *y, const float *x, const Mat *W, const float *b, int T, int I, int O) {
    if (W->type == GGML_F32) {
        matmul_forward(y, x, W->f, b, T, I, O);
        return;
    }
    int nb = I / QK8_0;
    BlockQ8_0 *xq = NULL;
    if (W->type == GGML_Q8_0) {
        /* kept between products: a decoding step makes seven per layer */
        static _Thread_local void *buf;
        static _Thread_local size_t cap;
        xq = buffer_reserve(&buf, &cap, (size_t)T * nb * sizeof *xq, "in linear_forward");
        #pragma omp parallel for schedule(static) if (T > 1)
        for (int t = 0; t < T; t++) quantize_row_q8_0(xq + (size_t)t * nb, x + (size_t)t * I, (size_t)I);
    }
    int n_wt = (O + W_TILE - 1) / W_TILE, n_xt = (T + X_TILE - 1) / X_TILE;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int wt = 0; wt < n_wt; wt++)
        for (int xt = 0; xt < n_xt; xt++) {
            int o1 = MIN(O, (wt + 1) * W_TILE), t1 = MIN(T, (xt + 1) * X_TILE);
            for (int o = wt * W_TILE; o < o1; o += BLOCK)
                for (int t = xt * X_TILE; t < t1; t += BLOCK) {
                    int nw = MIN(BLOCK, o1 - o), nx = MIN(BLOCK, t1 - t);
                    float *yb = y + (size_t)t * O + o;
                    if (xq) block_q8_0(yb, (size_t)O, (const BlockQ8_0 *)W->q + (size_t)o * nb, xq + (size_t)t * nb, nb, nw, nx);
                    else
                        for (int j = 0; j < nx; j++)
                            for (int i = 0; i < nw; i++)
                                yb[(size_t)j * O + i] = dot_f16((const uint16_t *)W->q + (size_t)(o + i) * I, x + (size_t)(t + j) * I, I);
                    for (int j = 0; b && j < nx; j++)
                        for (int i = 0; i < nw; i++) yb[(size_t)j * O + i] += b[o + i];
                }
        }
}

/* ------------------------------------------------------------------------------------------ */
/* ./quantize */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The tensors llama.cpp's quantize converts: 2-D, named *.weight, except norms, learned positions
   and the T5 bias table; and not the AdamW state a pelab checkpoint carries (opt.*). */
static int is_weight_matrix(const char *name, const GgufTensor *t) {
    return t->n_dims == 2 && ends_with(name, ".weight") && !strstr(name, "_norm.weight") && strcmp(name, "position_embd.weight") &&
           !strstr(name, "attn_rel_b") && strncmp(name, "opt.", 4);
}

/* src (rows of ne0 values, of type from) converted row by row to dst of type to */
static int convert(void *dst, int to, const GgufTensor *t, char *err) {
    size_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *row = malloc(ne0 * sizeof *row);
    if (!row) return encoding_error(err, "out of memory converting a tensor");
    for (size_t r = 0; r < rows; r++) {
        void *out = (uint8_t *)dst + r * row_bytes(to, ne0);
        dequantize_row(to == GGML_F32 ? out : row, (const uint8_t *)t->data + r * row_bytes((int)t->type, ne0), (int)t->type, ne0);
        if (to == GGML_Q8_0) quantize_row_q8_0(out, row, ne0);
        if (to == GGML_F16)
            for (size_t i = 0; i < ne0; i++) { uint16_t h = f32_to_f16(row[i]); memcpy((uint8_t *)out + 2 * i, &h, 2); }
    }
    free(row);
    return 0;
}

int quantize_gguf(const char *in, const char *out, int type, int fallback, char *err) {
    Gguf g;
    if (gguf_open(&g, in, err)) return -1;
    GgufWriter w;
    gguf_w_init(&w);
    /* general.alignment is not copied: the writer aligns to the default, 32 */
    for (uint64_t i = 0; i < g.n_kv; i++) {
        GgufStr k = g.kv[i].key;
        if (!gguf_str_eq(k, "general.alignment") && !gguf_str_eq(k, "general.file_type") && !gguf_str_eq(k, "general.quantization_version"))
            gguf_w_kv(&w, &g.kv[i]);
    }
    gguf_w_u32(&w, "general.quantization_version", 2);   /* as llama.cpp's quantize (ggml's GGML_QNT_VERSION) */
    gguf_w_u32(&w, "general.file_type", type == GGML_Q8_0 ? 7 : type == GGML_F16 ? 1 : 0);   /* llama_ftype: MOSTLY_Q8_0, MOSTLY_F16, ALL_F32 */
    void **owned = calloc(g.n_tensors ? g.n_tensors : 1, sizeof *owned);
    int r = owned ? 0 : encoding_error(err, "out of memory");
    for (uint64_t i = 0; i < g.n_tensors && !r; i++) {
        const GgufTensor *t = &g.tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int to = type == GGML_F32 ? GGML_F32 : is_weight_matrix(name, t) ? type : (int)t->type;
        if (to == GGML_Q8_0 && t->ne[0] % QK8_0) {
            if (fallback < 0) {
                r = encoding_error(err, "%s: tensor '%s' has rows of %llu values, not a multiple of %d as Q8_0 needs (-fallback f16 or f32 "
                                   "writes such tensors unquantized)", in, name, (unsigned long long)t->ne[0], QK8_0);
                gguf_one_line(err);   /* the name comes from the file */
                break;
            }
            to = fallback;
        }
        const void *data = t->data;
        if (to != (int)t->type) {
            uint64_t nbytes;
            gguf_tensor_nbytes((uint32_t)to, t->ne, t->n_dims, &nbytes);
            data = owned[i] = malloc(nbytes);
            r = owned[i] ? convert(owned[i], to, t, err) : encoding_error(err, "out of memory converting a tensor");
        }
        gguf_w_tensor(&w, name, t->n_dims, t->ne, (uint32_t)to, data);
    }
    /* written beside the target and renamed: never a half-written file, and `in` may be `out` */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part", out);
    if (!r && (r = gguf_w_write(&w, tmp, err)) == 0 && rename(tmp, out)) {
        r = encoding_error(err, "cannot write %s: %s", out, strerror(errno));
        gguf_one_line(err);
    }
    if (r) unlink(tmp);
    for (uint64_t i = 0; owned && i < g.n_tensors; i++) free(owned[i]);
    free(owned);
    gguf_w_free(&w);
    gguf_close(&g);
    return r;
}
