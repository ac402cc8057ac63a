/* IEEE 754 half precision (binary16) <-> float, for F16 tensors in model files and the -kv f16
   cache. float -> half rounds to nearest, ties to even; half -> float is exact. The F16C and
   AVX-512 conversion instructions are used when the build targets them (-march=native on x86);
   the portable versions (_soft) are the fallback and stay visible so the tests can check them
   against the hardware. */
#ifndef F16_H
#define F16_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline float f16_to_f32_soft(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (!man) bits = sign;
        else {   /* subnormal: normalise */
            exp = 113;
            while (!(man & 1024)) { man <<= 1; exp--; }
            bits = sign | exp << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man ? 0x400000u : 0) | man << 13;   /* NaN quieted, as F16C does */
    else bits = sign | (exp + 112) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* m >> shift, rounded to nearest, ties to even (1 <= shift <= 31) */
static inline uint32_t f16_shift_rne(uint32_t m, int shift) {
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1)));
}

static inline uint16_t f32_to_f16_soft(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7fffffff;
    if (a > 0x7f800000) return (uint16_t)(sign | 0x7e00 | (a >> 13 & 0x3ff));   /* NaN, quieted as F16C does */
    if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00);   /* 65520 and up round past 65504: infinity */
    if (a >= 0x38800000)   /* normal (2^-14 and up): rebias, round off 13 bits; a carry into the exponent is right */
        return (uint16_t)(sign | f16_shift_rne(a - 0x38000000, 13));
    if (a <= 0x33000000) return (uint16_t)sign;   /* at most half of the smallest subnormal 2^-24: zero */
    /* subnormal: the value in units of 2^-24; rounding up to 0x400 gives the smallest normal */
    uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
    return (uint16_t)(sign | f16_shift_rne(m, 126 - (int)e));
}

static inline float f16_to_f32(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    return f16_to_f32_soft(h);
#endif
}

static inline uint16_t f32_to_f16(float f) {
#ifdef __F16C__
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    return f32_to_f16_soft(f);
#endif
}

static inline void f16_to_f32_row(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
#ifdef __AVX512F__
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
#ifdef __F16C__
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

static inline void f32_to_f16_row(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
#ifdef __AVX512F__
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
#ifdef __F16C__
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = f32_to_f16(src[i]);
}

#endif
