/* Weight matrices stored as F32, F16 or Q8_0 (llama.cpp's formats), used in place from the mapped
   file: the number formats, the products on them, and the file converter behind ./quantize.
   The forward pass multiplies by every weight matrix through linear_forward, whatever its type;
   the trainer and the backward pass only ever see F32. */
#ifndef QUANT_H
#define QUANT_H
#include <stddef.h>
#include <stdint.h>
#include "f16.h"

/* Q8_0 (ggml's block_q8_0): blocks of 32 values d * qs[i], with d an IEEE half. 34 bytes. */
#define QK8_0 32
typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} BlockQ8_0;
_Static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 is 34 bytes");

/* A weight matrix [rows][cols] as stored (type: GGML_F32, GGML_F16, GGML_Q8_0). A zeroed Mat is
   F32: the trainer's weights and gradients set only f. */
typedef struct {
    float *f;          /* F32 values */
    const void *q;     /* F16: uint16_t halves; Q8_0: cols / 32 blocks per row */
    int type;
} Mat;

/* x[0..n) (n a multiple of 32) to n / 32 blocks, as ggml's quantize_row_q8_0_ref: d = max|x| / 127,
   q = roundf(x / d) */
void quantize_row_q8_0(BlockQ8_0 *y, const float *x, size_t n);
/* n values of a tensor of type (F32, F16 or Q8_0) to floats */
void dequantize_row(float *y, const void *src, int type, size_t n);

/* sum over nb blocks of d_w d_x (w . x): the int8 products summed exactly in int32 per block */
float dot_q8_0(const BlockQ8_0 *w, const BlockQ8_0 *x, int nb);
/* w . x with w in F16 */
float dot_f16(const uint16_t *w, const float *x, int n);

/* The rows [first, ..) of M, rows of cols values: the Q, K and V parts of a fused QKV matrix */
Mat mat_rows(Mat M, size_t first, int cols);
/* Row r of M as floats (the embedding lookup) */
void mat_row(float *out, const Mat *M, size_t r, int cols);

/* y[T][O] = x[T][I] W[O][I]^T + b[O] (b may be NULL), for W of any type. Q8_0: every row of x is
   quantized to Q8_0 once, then products of int8 blocks (llama.cpp's vec_dot_q8_0_q8_0). */
void linear_forward(float *y, const float *x, const Mat *W, const float *b, int T, int I, int O);

/* ./quantize: copies the GGUF file `in` to `out` with its weight matrices converted to `type`
   (GGML_Q8_0, GGML_F16 or GGML_F32; F32 converts every tensor). Q8_0 needs rows that are a multiple
   of 32 values; fallback (GGML_F16, GGML_F32, or -1: none, an error) is the type for a matrix whose
   rows are not. Writes general.file_type. 0, or -1 with err. */
int quantize_gguf(const char *in, const char *out, int type, int fallback, char *err);

#endif
