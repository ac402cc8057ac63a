/* F16 and Q8_0 weights: the number formats, the kernels against double-precision references (in
   this build's path: AVX-512 / AVX2 with -march=native, the portable loops in make test-portable),
   the quantize converter on llama.cpp fixtures (logits against llama.cpp's F32 logits), and the zoo's
   RoPE model as Q8_0 (perplexity against F32). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif
#include "eval.h"
#include "model.h"
#include "ops.h"
#include "tests/test.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static float uniform(float scale) {   /* in (-scale, scale) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return ((float)(rng_state >> 40) / 16777216.0f * 2 - 1) * scale;
}

/* ------------------------------------------------------------------------------------------ */
/* number formats */

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* every half converts to a float and back to itself; NaNs stay NaNs */
static void test_f16_round_trip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint16_t back = f32_to_f16(f);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !(f != f && (back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) {
            if (bad++ < 5) CHECK(0, "half 0x%04x -> %g -> 0x%04x", h, f, back);
        }
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(f16_to_f32(0x3c00) == 1.0f && f16_to_f32(0xc000) == -2.0f && f16_to_f32(0x7bff) == 65504.0f, "known halves");
    CHECK(f16_to_f32(0x0001) == bits_f32(0x33800000u), "smallest subnormal is 2^-24");
}

/* rounding to nearest, ties to even, at every exponent, into subnormals and to infinity */
static void test_f32_to_f16_rounding(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        {65504.0f, 0x7bff}, {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, {1e9f, 0x7c00}, {-1e9f, 0xfc00},
        {1.0f + 1.0f / 2048, 0x3c00},                       /* halfway between 1 and 1 + 2^-10: even is 1 */
        {1.0f + 3.0f / 2048, 0x3c02},                       /* halfway between 1 + 2^-10 and 1 + 2^-9: even is the upper */
        {1.0f + 1.0f / 2048 + 1.0f / 65536, 0x3c01},        /* just past halfway */
        {0.0f, 0x0000}, {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(f32_to_f16(cases[i].f) == cases[i].h, "%.9g -> 0x%04x, want 0x%04x", cases[i].f, f32_to_f16(cases[i].f), cases[i].h);
    CHECK(f32_to_f16(bits_f32(0x33000000u)) == 0, "2^-25 (half the smallest subnormal) ties to 0");
    CHECK(f32_to_f16(bits_f32(0x33000001u)) == 1, "just above 2^-25 rounds up to the smallest subnormal");
    CHECK(f32_to_f16(bits_f32(0x33c00000u)) == 2, "1.5 * 2^-24 ties to 2 * 2^-24");
    CHECK(f32_to_f16(bits_f32(0x387fc000u)) == 0x03ff, "1023 * 2^-24, the largest subnormal");
    CHECK(f32_to_f16(bits_f32(0x387ff000u)) == 0x0400, "1023.75 * 2^-24 rounds up to the smallest normal");
    CHECK(f32_to_f16(bits_f32(0x7fc00000u)) >= 0x7c01, "NaN stays NaN");
    /* every half's midpoint with its successor, below infinity: ties to the even neighbour */
    int bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double mid = ((double)f16_to_f32((uint16_t)h) + f16_to_f32((uint16_t)(h + 1))) / 2;
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h, got = f32_to_f16((float)mid);
        if (got != want && bad++ < 5) CHECK(0, "midpoint of 0x%04x and 0x%04x -> 0x%04x", h, h + 1, got);
    }
    CHECK(bad == 0, "%d midpoints round wrongly", bad);
#if defined(__F16C__)
    /* and the hardware conversion agrees on random floats of every magnitude */
    bad = 0;
    for (int i = 0; i < 1000000; i++) {
        rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
        float f = bits_f32((uint32_t)(rng_state >> 32));
        if (f != f) continue;   /* NaN payloads may differ */
        if (f32_to_f16(f) != _cvtss_sh(f, 0) && bad++ < 5) CHECK(0, "%.9g: 0x%04x, F16C 0x%04x", f, f32_to_f16(f), _cvtss_sh(f, 0));
    }
    CHECK(bad == 0, "%d floats convert differently from F16C", bad);
#endif
}

/* ggml's quantize_row_q8_0_ref: d = amax / 127 stored as a half, q = roundf(x / d) */
static void test_q8_0_block_format(void) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = uniform(3);
    x[5] = -4.0f;             /* the block's amax: q = -127 */
    for (int i = 32; i < 64; i++) x[i] = 0;   /* an all-zero block: d = 0, q = 0 */
    BlockQ8_0 b[2];
    quantize_row_q8_0(b, x, 64);
    CHECK(f16_to_f32(b[0].d) == f16_to_f32(f32_to_f16(4.0f / 127)), "d = amax / 127 as a half, got %g", f16_to_f32(b[0].d));
    CHECK(b[0].qs[5] == -127, "the amax element is -127, got %d", b[0].qs[5]);
    int bad = 0;
    for (int i = 0; i < 32; i++) bad += b[0].qs[i] != (int8_t)roundf(x[i] * (127 / 4.0f));
    CHECK(bad == 0, "%d values differ from roundf(x / d)", bad);
    CHECK(b[1].d == 0 && b[1].qs[0] == 0 && b[1].qs[31] == 0, "zero block");
    float y[64];
    dequantize_row(y, b, GGML_Q8_0, 64);
    for (int i = 0; i < 32; i++) CHECK_NEAR(y[i], x[i], 4.0 / 127 / 2 * 1.001, "dequantized within half a step");
}

/* ------------------------------------------------------------------------------------------ */
/* kernels */

/* Q8_0 weights [O][I] and activations [T][I]; y = linear_forward. Checks y against the double sum
   of the dequantized weights times the quantized activations (the kernel's exact integer sums
   leave only float rounding: relative 1e-5 of the sum of |terms|) and against the F32 product
   (quantization error, stated: 2% of the sum of |w x|). Rows of -128 test the int8 edge. */
static void check_q8_0_product(int T, int I, int O, double *worst_tight, double *worst_loose) {
    int nb = I / QK8_0;
    float *w = malloc((size_t)O * I * sizeof *w), *x = malloc((size_t)T * I * sizeof *x), *y = malloc((size_t)T * O * sizeof *y);
    float *yf = malloc((size_t)T * O * sizeof *yf), *wd = malloc((size_t)O * I * sizeof *wd), *xd = malloc((size_t)I * sizeof *xd);
    BlockQ8_0 *wq = malloc((size_t)O * nb * sizeof *wq), *xq = malloc((size_t)nb * sizeof *xq);
    for (size_t i = 0; i < (size_t)O * I; i++) w[i] = uniform(1);
    for (size_t i = 0; i < (size_t)T * I; i++) x[i] = uniform(2);
    for (int o = 0; o < O; o++) quantize_row_q8_0(wq + (size_t)o * nb, w + (size_t)o * I, (size_t)I);
    if (O > 2)   /* a row of -128 (a file may hold it; quantize_row_q8_0 never writes it) */
        for (int i = 0; i < nb; i++) memset(wq[(size_t)2 * nb + i].qs, 0x80, QK8_0);
    dequantize_row(wd, wq, GGML_Q8_0, (size_t)O * I);
    Mat W = {.q = wq, .type = GGML_Q8_0}, Wf = {.f = w, .type = GGML_F32};
    linear_forward(y, x, &W, NULL, T, I, O);
    linear_forward(yf, x, &Wf, NULL, T, I, O);
    for (int t = 0; t < T; t++) {
        quantize_row_q8_0(xq, x + (size_t)t * I, (size_t)I);
        dequantize_row(xd, xq, GGML_Q8_0, (size_t)I);
        for (int o = 0; o < O; o++) {
            double ref = 0, mag = 0, mag_f = 0;
            for (int i = 0; i < I; i++) {
                ref += (double)wd[(size_t)o * I + i] * xd[i];
                mag += fabs((double)wd[(size_t)o * I + i] * xd[i]);
                mag_f += fabs((double)w[(size_t)o * I + i] * x[(size_t)t * I + i]);
            }
            double got = y[(size_t)t * O + o], tight = fabs(got - ref) / (mag + 1e-30);
            *worst_tight = fmax(*worst_tight, tight);
            CHECK(tight <= 1e-5, "T %d I %d O %d, y[%d][%d] = %.9g, reference %.9g (relative to sum |terms| %.3g)", T, I, O, t, o, got, ref, tight);
            if (o == 2 && O > 2) continue;   /* the -128 row is not a quantization of w */
            double loose = fabs(got - yf[(size_t)t * O + o]) / mag_f;
            *worst_loose = fmax(*worst_loose, loose);
            CHECK(loose <= 0.02, "T %d I %d O %d, y[%d][%d] = %.6g, F32 %.6g (relative to sum |w x| %.3g)", T, I, O, t, o, got,
                  yf[(size_t)t * O + o], loose);
        }
    }
    free(w); free(x); free(y); free(yf); free(wd); free(xd); free(wq); free(xq);
}

static void test_q8_0_product(void) {
    /* block counts odd and even, row counts around the 4 x 4 register blocks and the 64 x 16 tiles */
    static const int shapes[][3] = {{1, 32, 1}, {1, 96, 7}, {1, 288, 64}, {2, 64, 5}, {3, 288, 9}, {4, 128, 4}, {5, 32, 67},
                                    {17, 160, 13}, {37, 2048, 70}, {64, 96, 130}};
    double tight = 0, loose = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) check_q8_0_product(shapes[s][0], shapes[s][1], shapes[s][2], &tight, &loose);
    printf("     Q8_0 product: max error %.2e of sum |terms| against the dequantized double reference, %.2e of sum |w x| against F32\n",
           tight, loose);
}

/* dot_q8_0 alone against the exact integer sums: the int parts agree bit for bit on every path */
static void test_q8_0_dot_exact_integers(void) {
    BlockQ8_0 w[5], x[5];
    for (int b = 0; b < 5; b++) {
        w[b].d = x[b].d = f32_to_f16(1.0f);   /* unit scales: the result is the integer sum itself */
        for (int i = 0; i < QK8_0; i++) {
            w[b].qs[i] = (int8_t)(b == 1 ? -128 : (int)(uniform(128)));
            x[b].qs[i] = (int8_t)(b == 2 ? -127 : (int)(uniform(127.5f)));
        }
    }
    for (int nb = 1; nb <= 5; nb++) {
        int64_t want = 0;
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < QK8_0; i++) want += w[b].qs[i] * x[b].qs[i];
        float got = dot_q8_0(w, x, nb);
        CHECK(got == (float)want, "%d blocks: %.1f, want %lld", nb, got, (long long)want);
    }
}

static void test_f16_product(void) {
    enum { T = 5, I = 200, O = 19 };   /* I not a multiple of 16: the vector loops' tails */
    float w[O * I], x[T * I], y[T * O], wd[O * I];
    uint16_t wh[O * I];
    for (int i = 0; i < O * I; i++) { wh[i] = f32_to_f16(uniform(1)); wd[i] = f16_to_f32(wh[i]); }
    for (int i = 0; i < T * I; i++) x[i] = uniform(2);
    (void)w;
    Mat W = {.q = wh, .type = GGML_F16};
    linear_forward(y, x, &W, NULL, T, I, O);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < O; o++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < I; i++) { ref += (double)wd[o * I + i] * x[t * I + i]; mag += fabs((double)wd[o * I + i] * x[t * I + i]); }
            worst = fmax(worst, fabs(y[t * O + o] - ref) / mag);
        }
    CHECK(worst <= 1e-5, "F16 product: error %.3g of sum |terms|", worst);
}

/* bias, fused QKV row views and the embedding row lookup on every type */
static void test_mat_views(void) {
    enum { R = 6, C = 64 };
    float w[R * C], row[C];
    for (int i = 0; i < R * C; i++) w[i] = uniform(1);
    BlockQ8_0 q[R * C / QK8_0];
    uint16_t h[R * C];
    for (int r = 0; r < R; r++) quantize_row_q8_0(q + r * (C / QK8_0), w + r * C, C);
    for (int i = 0; i < R * C; i++) h[i] = f32_to_f16(w[i]);
    Mat mats[3] = {{.f = w, .type = GGML_F32}, {.q = h, .type = GGML_F16}, {.q = q, .type = GGML_Q8_0}};
    float want[C];
    for (int k = 0; k < 3; k++) {
        Mat v = mat_rows(mats[k], 4, C);   /* rows 4 and 5 */
        mat_row(row, &v, 1, C);
        dequantize_row(want, k == 0 ? (const void *)(w + 5 * C) : k == 1 ? (const void *)(h + 5 * C) : (const void *)(q + 5 * (C / QK8_0)),
                       mats[k].type, C);
        CHECK(!memcmp(row, want, sizeof row), "type %d: row 1 of the view at row 4 is not row 5", mats[k].type);
        float x[C], y[2], bias[2] = {0.5f, -1.0f}, yb[2];
        for (int i = 0; i < C; i++) x[i] = uniform(1);
        linear_forward(y, x, &v, NULL, 1, C, 2);
        linear_forward(yb, x, &v, bias, 1, C, 2);
        CHECK(yb[0] == y[0] + 0.5f && yb[1] == y[1] - 1.0f, "type %d: bias added", mats[k].type);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* quantized models */

static const char *tmp_file(const char *name) {
    static char path[4][600];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 600, "%s/quant-%ld-%s", test_tmp_dir, (long)getpid(), name);
    return p;
}

/* the fixture's logits (llama.cpp, F32 weights) and this runtime's for `model` */
static int fixture_logits(const char *fixture, const char *model, float **got, float **want, size_t *n, int *vocab) {
    char path[600], err[GGUF_ERR] = "";
    snprintf(path, sizeof path, "%s/%s/case.txt", test_fixtures_dir, fixture);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot read %s", path);
    if (!f) return -1;
    int *tokens = NULL, n_tok = 0, pos0 = 0, n_read = 0;
    char key[64];
    while (fscanf(f, "%63s", key) == 1) {   /* n_tokens precedes tokens in every case file */
        if (!strcmp(key, "n_tokens")) { if (fscanf(f, "%d", &n_tok) != 1 || n_tok < 1 || n_tok > 4096) break; }
        else if (!strcmp(key, "pos0")) { if (fscanf(f, "%d", &pos0) != 1) break; }
        else if (!strcmp(key, "tokens") && n_tok > 0 && !tokens) {
            tokens = malloc((size_t)n_tok * sizeof *tokens);
            while (n_read < n_tok && fscanf(f, "%d", &tokens[n_read]) == 1) n_read++;
        } else { int ch; while ((ch = fgetc(f)) != '\n' && ch != EOF) {} }
    }
    fclose(f);
    CHECK(tokens && n_read == n_tok, "%s: %d of %d tokens", fixture, n_read, n_tok);
    Model m;
    if (!tokens || n_read != n_tok || model_open(&m, model, err)) { CHECK(!tokens || n_read != n_tok, "%s", err); free(tokens); return -1; }
    *vocab = m.c.vocab_size;
    *n = (size_t)n_tok * m.c.vocab_size;
    *got = malloc(*n * sizeof **got);
    *want = malloc(*n * sizeof **want);
    snprintf(path, sizeof path, "%s/%s/logits.f32", test_fixtures_dir, fixture);
    f = fopen(path, "rb");
    int ok = f && fread(*want, sizeof **want, *n, f) == *n;
    if (f) fclose(f);
    CHECK(ok, "cannot read %zu floats from %s", *n, path);
    ok = ok && model_prepare(&m, &m.c.pe, n_tok, KV_F32, 512, err) == 0 && model_forward(&m, tokens, n_tok, pos0, *got, 1, err) == 0;
    CHECK(ok, "%s: %s", model, err);
    model_close(&m);
    free(tokens);
    if (!ok) { free(*got); free(*want); }
    return ok ? 0 : -1;
}

static double max_diff(const float *a, const float *b, size_t n, double *rms) {
    double worst = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;   /* NaN wins */
        sq += d * d;
    }
    *rms = sqrt(sq / n);
    return worst;
}

/* Q8_0 and F16 copies of llama.cpp fixtures (random weights, logits of std ~1.0 and max |logit|
   ~4.6): logits within the stated tolerances of llama.cpp's F32 logits. Measured (printed) on
   llama-rope, gpt2-learned, bloom-alibi: Q8_0 max |diff| 0.21-0.23, rms 0.020-0.034; F16 max
   0.0058-0.0083, rms 0.0006-0.0011 -- the ratio of their number formats' precision (Q8_0 rounds
   weights and activations to steps of max|block| / 127). Tolerances: Q8_0 max 0.5, rms 0.08; F16
   max 0.025, rms 0.003. The fixtures' 172-wide MLP rows take -fallback f16. The F16 file converted
   back to F32 holds the same values for the F32 path: it must match the F16 kernels (5e-5; measured
   4e-6 to 8e-6, float sums in another order). */
static void test_quantized_fixtures(void) {
    static const char *fixtures[] = {"llama-rope", "gpt2-learned", "bloom-alibi"};
    for (size_t k = 0; k < sizeof fixtures / sizeof *fixtures; k++) {
        char src[600], err[GGUF_ERR] = "";
        snprintf(src, sizeof src, "%s/%s/model.gguf", test_fixtures_dir, fixtures[k]);
        const char *q8 = tmp_file("q8_0.gguf"), *f16 = tmp_file("f16.gguf"), *back = tmp_file("f16-f32.gguf");
        int ok = quantize_gguf(src, q8, GGML_Q8_0, GGML_F16, err) == 0 && quantize_gguf(src, f16, GGML_F16, -1, err) == 0 &&
                 quantize_gguf(f16, back, GGML_F32, -1, err) == 0;
        CHECK(ok, "%s: %s", fixtures[k], err);
        float *want, *got_q8, *got_f16, *got_back, *want2, *want3;
        size_t n;
        int vocab;
        if (ok && fixture_logits(fixtures[k], q8, &got_q8, &want, &n, &vocab) == 0) {
            if (fixture_logits(fixtures[k], f16, &got_f16, &want2, &n, &vocab) == 0) {
                if (fixture_logits(fixtures[k], back, &got_back, &want3, &n, &vocab) == 0) {
                    double rq, rh, rhb, dq = max_diff(got_q8, want, n, &rq), dh = max_diff(got_f16, want, n, &rh),
                                       dhb = max_diff(got_f16, got_back, n, &rhb);
                    printf("     %-13s against llama.cpp's F32 logits: Q8_0 max |diff| %.2e (rms %.1e), F16 %.2e (rms %.1e); "
                           "F16 kernels against the same values as F32 %.1e\n", fixtures[k], dq, rq, dh, rh, dhb);
                    CHECK(dq <= 0.5 && rq <= 0.08, "%s as Q8_0: max |diff| %.3g, rms %.3g from llama.cpp's F32 logits (tolerances 0.5, 0.08)",
                          fixtures[k], dq, rq);
                    CHECK(dh <= 0.025 && rh <= 0.003, "%s as F16: max |diff| %.3g, rms %.3g from llama.cpp's F32 logits (tolerances 0.025, 0.003)",
                          fixtures[k], dh, rh);
                    CHECK(dhb <= 5e-5, "%s: F16 kernels differ from the same values as F32 by %.3g (tolerance 5e-5)", fixtures[k], dhb);
                    free(got_back); free(want3);
                }
                free(got_f16); free(want2);
            }
            free(got_q8); free(want);
        }
        unlink(q8); unlink(f16); unlink(back);
    }
}

/* One pass (4 x 4 register blocks), chunks of 3 and token by token (4 x 1) give the same logits on
   a Q8_0 model: every pair's sum takes the same steps in every block shape. The zoo model's 160-wide
   rows are 5 blocks; the llama fixture adds F16 and Q8_0 side by side (-fallback f16). */
static void test_quantized_chunks_equal_token_by_token(void) {
    char src[600], err[GGUF_ERR] = "";
    snprintf(src, sizeof src, "%s/llama-rope/model.gguf", test_fixtures_dir);
    const char *sources[2] = {"models/zoo/rope.gguf", src};
    for (int k = 0; k < 2; k++) {
        const char *q8 = tmp_file("chunks.gguf");
        Model m;
        enum { N = 40 };
        if (quantize_gguf(sources[k], q8, GGML_Q8_0, GGML_F16, err) || model_open(&m, q8, err)) { CHECK(0, "%s", err); continue; }
        int V = m.c.vocab_size, ids[N];
        for (int i = 0; i < N; i++) ids[i] = (i * 37 + 11) % V;
        float *one = malloc((size_t)N * V * sizeof *one), *step = malloc((size_t)N * V * sizeof *step);
        double worst[2] = {0, 0};
        for (int chunk = 3, r = 0; r < 2; r++, chunk = 1) {
            int ok = model_prepare(&m, &m.c.pe, N, KV_F32, 512, err) == 0 && model_forward(&m, ids, N, 0, one, 1, err) == 0;
            model_reset(&m);
            for (int a = 0; ok && a < N; a += chunk)
                ok = model_forward(&m, ids + a, a + chunk > N ? N - a : chunk, a, step + (size_t)a * V, 1, err) == 0;
            CHECK(ok, "%s: %s", sources[k], err);
            for (size_t i = 0; ok && i < (size_t)N * V; i++) worst[r] = fmax(worst[r], fabs((double)one[i] - step[i]));
            model_reset(&m);
        }
        CHECK(worst[0] <= 1e-5 && worst[1] <= 1e-5, "%s as Q8_0: one pass and chunks of 3 / of 1 differ by %.3g / %.3g", sources[k], worst[0],
              worst[1]);
        free(one);
        free(step);
        model_close(&m);
        unlink(q8);
    }
}

/* what quantize_gguf writes: the types by tensor, general.file_type, every other key kept */
static void test_quantize_layout(void) {
    char src[600], err[GGUF_ERR] = "";
    snprintf(src, sizeof src, "%s/gpt2-learned/model.gguf", test_fixtures_dir);
    const char *q8 = tmp_file("layout.gguf");
    CHECK(quantize_gguf(src, q8, GGML_Q8_0, GGML_F32, err) == 0, "%s", err);
    Gguf in, out;
    if (gguf_open(&in, src, err)) { CHECK(0, "%s", err); return; }
    if (gguf_open(&out, q8, err)) { CHECK(0, "%s", err); gguf_close(&in); return; }
    int64_t ft = -1;
    CHECK(gguf_get_int(&out, "general.file_type", 0, 100, &ft, err) == 1 && ft == 7, "general.file_type %lld, want 7 (MOSTLY_Q8_0)", (long long)ft);
    static const struct { const char *name; int type; } want[] = {
        {"token_embd.weight", GGML_Q8_0}, {"position_embd.weight", GGML_F32}, {"blk.0.attn_norm.weight", GGML_F32},
        {"blk.0.attn_qkv.weight", GGML_Q8_0}, {"blk.0.attn_qkv.bias", GGML_F32}, {"blk.0.ffn_up.weight", GGML_Q8_0},
        {"blk.0.ffn_down.weight", GGML_F32} /* 172-wide rows: the fallback */, {"output.weight", GGML_Q8_0}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const GgufTensor *t = gguf_tensor(&out, want[i].name);
        CHECK(t && (int)t->type == want[i].type, "%s: type %d, want %d", want[i].name, t ? (int)t->type : -1, want[i].type);
    }
    CHECK(out.n_tensors == in.n_tensors, "%llu tensors, want %llu", (unsigned long long)out.n_tensors, (unsigned long long)in.n_tensors);
    int missing = 0;
    for (uint64_t i = 0; i < in.n_kv; i++) {
        const GgufKV *a = &in.kv[i];
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        if (!strcmp(key, "general.file_type") || !strcmp(key, "general.alignment")) continue;
        const GgufKV *b = gguf_find(&out, key);
        int same = b && b->type == a->type && b->arr_type == a->arr_type && b->arr_n == a->arr_n;
        if (same && i + 1 < in.n_kv) same = !memcmp(a->val, b->val, (size_t)(in.kv[i + 1].key.ptr - 8 - (const char *)a->val));
        if (!same && missing++ < 3) CHECK(0, "key %s not copied as it was", key);
    }
    CHECK(missing == 0, "%d keys not copied", missing);
    gguf_close(&in);
    gguf_close(&out);
    unlink(q8);
}

/* The zoo's RoPE model (every row a multiple of 32) as Q8_0: perplexity of held-out text within
   0.01 bits/byte of F32 (measured: 2.1610 vs 2.1606 on these 8k bytes; 2.2609 vs 2.2609 on 64k) */
static void test_zoo_rope_q8_0_perplexity(void) {
    const char *q8 = tmp_file("rope-q8_0.gguf");
    char err[GGUF_ERR] = "";
    int ok = quantize_gguf("models/zoo/rope.gguf", q8, GGML_Q8_0, -1, err) == 0;
    CHECK(ok, "%s", err);
    const char *paths[2] = {"models/zoo/rope.gguf", q8};
    double bpb[2] = {0};
    for (int k = 0; ok && k < 2; k++) {
        Model m;
        Corpus c = {0};
        Tokens t = {0};
        if (model_open(&m, paths[k], err)) { CHECK(0, "%s", err); break; }
        Ppl p = {.window = 256, .stride = 256, .bucket = 256, .chunk = 256};
        ok = corpus_load(&c, "data/brown-heldout.txt", err) == 0;
        ok = ok && corpus_tokenize(&c, &m.tok, &t, err) == 0;
        ok = ok && model_prepare(&m, &m.c.pe, 256, KV_F32, 256, err) == 0 && eval_ppl(&m, t.ids, t.n < 8193 ? t.n : 8193, &p, err) == 0;
        CHECK(ok, "%s: %s", paths[k], err);
        if (ok) bpb[k] = p.nll / log(2.0) / (double)p.bytes;
        if (t.ids) tokens_free(&t);
        if (c.text) corpus_free(&c);
        model_close(&m);
    }
    if (ok) {
        printf("     zoo rope, 8192 held-out bytes: %.4f bits/byte F32, %.4f Q8_0\n", bpb[0], bpb[1]);
        CHECK(fabs(bpb[1] - bpb[0]) <= 0.01, "Q8_0 %.4f bits/byte, F32 %.4f (tolerance 0.01)", bpb[1], bpb[0]);
    }
    unlink(q8);
}

void suite_quant(void) {
    RUN(test_f16_round_trip);
    RUN(test_f32_to_f16_rounding);
    RUN(test_q8_0_block_format);
    RUN(test_q8_0_product);
    RUN(test_q8_0_dot_exact_integers);
    RUN(test_f16_product);
    RUN(test_mat_views);
    RUN(test_quantized_fixtures);
    RUN(test_quantized_chunks_equal_token_by_token);
    RUN(test_quantize_layout);
    RUN(test_zoo_rope_q8_0_perplexity);
}
