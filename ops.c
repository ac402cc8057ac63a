/* Transformer operations, forward and backward side by side; see ops.h. Compiled twice: as is
   (float) and with -DREAL=double -D'OPS(n)=n##_f64' for the gradient checks. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buffer.h"
#include "f16.h"
#include "ops.h"

#define ATT_TILE 64

/* exp for the softmaxes. libm's exp is a call the compiler cannot vectorise and was a fifth of
   training time; this one is inline: e^x = 2^n e^r with r in [-ln2/2, ln2/2] and a degree-6
   polynomial for e^r, max relative error ~2e-7 (tests/test_grad.c compares float attention with the
   double build's). The double build
   keeps libm's exp, for the finite-difference checks. */
#ifdef OPS_DOUBLE
#define EXP(x) exp(x)
#else
static inline float fast_exp(float x) {   /* selects, no branches or libm calls: loops over it vectorise */
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = floorf(xc * 1.44269504f + 0.5f), r = xc - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f + r * (8.3333338e-3f + r * 1.3888889e-3f)))));
    union { float f; int32_t i; } scale;
    scale.i = ((int32_t)n + 127) << 23;   /* assigned, not initialised: an initialiser adds a memset that stops vectorisation */
    return x < -87.0f ? 0.0f : p * scale.f;   /* exactly 0 there, also for -inf from masked scores */
}
#define EXP(x) fast_exp(x)
#endif
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ------------------------------------------------------------------------------------------ */
/* matmul. One microkernel does the work of all three products: C (+)= A B with row-major A [M][K],
   B [K][N], computing a block of MR rows x NR columns of C in registers, vectorised over the
   columns (broadcast A, load B, fused multiply-add: no reductions, so no reassociation is needed).
   The large products first copy B into panels of NR columns ([K][NR] each), so that
   the kernel reads B contiguously whatever its layout: the forward's x W^T reads W through the same
   copy, and the weight gradient's dy^T x reads x. The copy costs 1/M of the product. Single rows
   (decoding) use dot products instead, with no copy. */

#define MR 8
#define NR 32
/* Decoding reads each weight once per token, at the memory's pace; asking for rows a few ahead (the
   hardware prefetcher alone left loads waiting) gave ~10% on both stories shapes */
#define PREFETCH_ROWS 4

static REAL dot(const REAL *a, const REAL *b, int n) {
    REAL acc = 0;
    #pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* C[0..mr) x [0..nr) (+)= A[0..mr) B[.][0..nr), mr <= MR, nr <= NR; A's element (r, k) is
   A[r * lda + k * acs] (acs 1: a matrix; lda 1: the transpose of one; A is only broadcast, so either
   costs the same), B [K][.] with ldb, C with ldc */
/* acc[0..rows) += A[0..rows) B over full NR-wide rows of B, vectorised over the columns; inlined with
   rows = MR so that the block stays in registers */
static inline __attribute__((always_inline)) void gemm_rows(REAL acc[MR][NR], const REAL *A, int lda, int acs, const REAL *B,
                                                            int ldb, int K, int rows) {
    for (int k = 0; k < K; k++) {
        const REAL *b = B + (size_t)k * ldb;
        for (int r = 0; r < rows; r++) {
            REAL a = A[(size_t)r * lda + (size_t)k * acs];
            #pragma omp simd
            for (int j = 0; j < NR; j++) acc[r][j] += a * b[j];
        }
    }
}

static void gemm_block(REAL *C, int ldc, const REAL *A, int lda, int acs, const REAL *B, int ldb, int K, int mr, int nr,
                       int accumulate) {
    REAL acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = accumulate && r < mr && j < nr ? C[(size_t)r * ldc + j] : 0;
    if (mr == MR && nr == NR) {
        gemm_rows(acc, A, lda, acs, B, ldb, K, MR);
    } else if (nr == NR) {   /* fewer rows (a decoding step's single query): still vectorised over the columns */
        gemm_rows(acc, A, lda, acs, B, ldb, K, mr);
    } else {
        for (int k = 0; k < K; k++)
            for (int r = 0; r < mr; r++) {
                REAL a = A[(size_t)r * lda + (size_t)k * acs];
                for (int j = 0; j < nr; j++) acc[r][j] += a * B[(size_t)k * ldb + j];
            }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) C[(size_t)r * ldc + j] = acc[r][j];
}

/* C[M][N] (+)= A[M][K] B[K][N], strided (A as in gemm_block), in MR x NR register blocks, on the
   calling thread (attention) */
static void gemm_serial(REAL *C, const REAL *A, const REAL *B, int M, int K, int N, int lda, int acs, int ldb, int ldc,
                        int accumulate) {
    for (int m0 = 0; m0 < M; m0 += MR)
        for (int n0 = 0; n0 < N; n0 += NR)
            gemm_block(C + (size_t)m0 * ldc + n0, ldc, A + (size_t)m0 * lda, lda, acs, B + n0, ldb, K, MIN(MR, M - m0),
                       MIN(NR, N - n0), accumulate);
}

/* a reusable per-thread buffer (two: slot 0 and 1) for transposes and panels */
static REAL *scratch(int slot, size_t n) {
    static _Thread_local void *buf[2];
    static _Thread_local size_t cap[2];
    return buffer_reserve(&buf[slot], &cap[slot], n * sizeof(REAL), "in matmul");
}

/* C[M][N] (+)= A[M][K] B[K][N], A dense; B's element (k, n) is B[k * bk + n * bn], so that B may be
   a matrix or the transpose of one. Threads share the panel copy, then the blocks. */
static void gemm(REAL *C, const REAL *A, const REAL *B, long bk, long bn, int M, int K, int N, int accumulate) {
    int mb = (M + MR - 1) / MR, nb = (N + NR - 1) / NR;
    REAL *panels = scratch(1, (size_t)nb * K * NR);
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int p = 0; p < nb; p++) {
            REAL *dst = panels + (size_t)p * K * NR;
            for (int j = 0; j < MIN(NR, N - p * NR); j++) {   /* along k: contiguous reads when B is a transpose (bk = 1) */
                const REAL *src = B + (p * NR + j) * bn;
                for (int k = 0; k < K; k++) dst[(size_t)k * NR + j] = src[k * bk];
            }
        }
        #pragma omp for collapse(2) schedule(static)
        for (int bj = 0; bj < nb; bj++)   /* a panel stays in cache while the row blocks pass it */
            for (int bi = 0; bi < mb; bi++)
                gemm_block(C + (size_t)bi * MR * N + (size_t)bj * NR, N, A + (size_t)bi * MR * K, K, 1, panels + (size_t)bj * K * NR, NR, K,
                           MIN(MR, M - bi * MR), MIN(NR, N - bj * NR), accumulate);
    }
}

static void transpose(REAL *dst, const REAL *src, int rows, int cols) {   /* dst[cols][rows] = src[rows][cols]^T */
    for (int r0 = 0; r0 < rows; r0 += 32)
        for (int c0 = 0; c0 < cols; c0 += 32)
            for (int r = r0; r < MIN(rows, r0 + 32); r++)
                for (int c = c0; c < MIN(cols, c0 + 32); c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

void OPS(matmul_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *b, int T, int I, int O) {
    if (T < MR) {   /* decoding: one pass over the weights, each row fetched PREFETCH_ROWS rows ahead of its use */
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < O; o++) {
            for (int c = 0; o + PREFETCH_ROWS < O && c < I; c += 64 / (int)sizeof(REAL))
                __builtin_prefetch(w + (size_t)(o + PREFETCH_ROWS) * I + c);
            for (int t = 0; t < T; t++) y[(size_t)t * O + o] = dot(x + (size_t)t * I, w + (size_t)o * I, I) + (b ? b[o] : 0);
        }
        return;
    }
    if (b)
        for (int t = 0; t < T; t++) memcpy(y + (size_t)t * O, b, (size_t)O * sizeof *y);
    gemm(y, x, w, 1, I, T, I, O, b != NULL);   /* B = w^T: element (i, o) is w[o * I + i] */
}

void OPS(matmul_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *dy, const REAL *x, const REAL *w, int T, int I, int O) {
    if (dx) gemm(dx, dy, w, I, 1, T, O, I, 1);   /* dx[T][I] += dy[T][O] w[O][I] */
    if (dw) {                                     /* dw[O][I] += dy^T[O][T] x[T][I] */
        REAL *dyt = scratch(0, (size_t)T * O);
        transpose(dyt, dy, T, O);
        gemm(dw, dyt, x, I, 1, O, T, I, 1);
    }
    if (db)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < O; o++) db[o] += dy[(size_t)t * O + o];
}

/* ------------------------------------------------------------------------------------------ */
/* norms */

void OPS(norm_forward)(REAL *out, REAL *mean, REAL *rstd, const REAL *x, const REAL *w, const REAL *b, int T, int D, double eps) {
    for (int t = 0; t < T; t++) {
        const REAL *xt = x + (size_t)t * D;
        REAL *ot = out + (size_t)t * D;
        double mu = 0, var = 0;
        if (mean) {
            for (int i = 0; i < D; i++) mu += xt[i];
            mu /= D;
            mean[t] = (REAL)mu;
        }
        for (int i = 0; i < D; i++) var += (xt[i] - mu) * (xt[i] - mu);
        REAL r = (REAL)(1.0 / sqrt(var / D + eps));
        rstd[t] = r;
        for (int i = 0; i < D; i++) ot[i] = (REAL)(xt[i] - mu) * r * w[i] + (b ? b[i] : 0);
    }
}

void OPS(norm_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *dout, const REAL *x, const REAL *mean, const REAL *rstd,
                        const REAL *w, int T, int D) {
    for (int t = 0; t < T; t++) {
        const REAL *xt = x + (size_t)t * D, *dot_ = dout + (size_t)t * D;
        REAL mu = mean ? mean[t] : 0, r = rstd[t];
        double dnorm_mean = 0, dnorm_norm_mean = 0;
        for (int i = 0; i < D; i++) {
            REAL norm = (xt[i] - mu) * r, dnorm = dot_[i] * w[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= D;
        dnorm_norm_mean /= D;
        if (!mean) dnorm_mean = 0;   /* RMSNorm subtracts no mean, so its gradient has no mean term */
        for (int i = 0; i < D; i++) {
            REAL norm = (xt[i] - mu) * r, dnorm = dot_[i] * w[i];
            dx[(size_t)t * D + i] += r * (REAL)(dnorm - dnorm_mean - norm * dnorm_norm_mean);
            if (dw) dw[i] += dot_[i] * norm;
            if (db) db[i] += dot_[i];
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* activations */

static REAL sigmoid(REAL x) { return 1 / (1 + exp(-x)); }

void OPS(swiglu_forward)(REAL *h, const REAL *gate, const REAL *up, long n) {
    for (long i = 0; i < n; i++) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void OPS(swiglu_backward)(REAL *dgate, REAL *dup, const REAL *dh, const REAL *gate, const REAL *up, long n) {
    for (long i = 0; i < n; i++) {
        REAL s = sigmoid(gate[i]);
        dgate[i] += dh[i] * up[i] * s * (1 + gate[i] * (1 - s));
        dup[i] += dh[i] * gate[i] * s;
    }
}

#define GELU_K 0.7978845608028654   /* sqrt(2/pi) */
#define GELU_C 0.044715

void OPS(gelu_forward)(REAL *out, const REAL *x, long n) {
    for (long i = 0; i < n; i++) out[i] = (REAL)0.5 * x[i] * (1 + tanh((REAL)GELU_K * (x[i] + (REAL)GELU_C * x[i] * x[i] * x[i])));
}

void OPS(gelu_backward)(REAL *dx, const REAL *dout, const REAL *x, long n) {
    for (long i = 0; i < n; i++) {
        REAL u = (REAL)GELU_K * (x[i] + (REAL)GELU_C * x[i] * x[i] * x[i]), th = tanh(u);
        REAL du = (REAL)GELU_K * (1 + 3 * (REAL)GELU_C * x[i] * x[i]);
        dx[i] += dout[i] * ((REAL)0.5 * (1 + th) + (REAL)0.5 * x[i] * (1 - th * th) * du);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* attention */

/* Both passes walk key tiles of ATT_TILE keys. The forward takes a block of up to QB queries of one
   head at a time and keeps the tile's scores transposed, [key][query]: the product that makes them
   reads the cached key rows where they lie, and the softmax runs across the block's queries in vector
   lanes. The backward, one query at a time, transposes each tile once so that a query's scores are
   computed across the tile's keys in vector lanes. Masked keys get -inf and an exp of exactly 0, so
   the loops have no branches. */
#define QB 32
/* Decoding streams every cached key row once per token, a head's part of each row being a few cache
   lines a row apart: asking for rows this far ahead took one 8192-token dynamic NTK needle prompt on
   one thread from 38-44 s (median 41) to 25-41 s (median 32) (interleaved runs; 16 rows: the same) */
#define KEY_PREFETCH_ROWS 8

/* kt[i][j] = dimension i of key row j (rows of stride ld) */
static void tile_transpose(REAL *kt, const REAL *rows, int ld, int n, int hd) {
    for (int j = 0; j < ATT_TILE; j++)   /* a short last tile is padded with zeros (masked anyway) */
        for (int i = 0; i < hd; i++) kt[i * ATT_TILE + j] = j < n ? rows[(size_t)j * ld + i] : 0;
}

/* Rows j0 .. j0+n-1 of KV head g in cached keys or values, as REAL rows with stride *ld: the cache's
   own rows when it holds REAL, else half rows converted into buf [ATT_TILE][hd] as the tile loads,
   so the cache stays half in memory and the products run in REAL. */
static const REAL *tile_rows(REAL *buf, int *ld, const void *kv, int kv_half, int j0, int n, int g, int kvd, int hd) {
    size_t at = (size_t)j0 * kvd + (size_t)g * hd;
    if (!kv_half) {
        *ld = kvd;
        return (const REAL *)kv + at;
    }
    const uint16_t *src = (const uint16_t *)kv + at;
    for (int j = 0; j < n; j++) {
#ifdef OPS_DOUBLE   /* the double build compiles the same function; its callers never pass a half cache */
        for (int i = 0; i < hd; i++) buf[(size_t)j * hd + i] = f16_to_f32(src[(size_t)j * kvd + i]);
#else
        f16_to_f32_row(buf + (size_t)j * hd, src + (size_t)j * kvd, (size_t)hd);
#endif
    }
    *ld = hd;
    return buf;
}

/* adds the encoding's bias to one query's raw scores and masks keys past it or past the tile; returns
   their maximum */
static REAL tile_finish(REAL *sc, const int *kpos, int n, int pq, int h, const Encoding *e) {
    if (e->ops->add_bias) {
        float bias[ATT_TILE] = {0};
        e->ops->add_bias(e, h, pq, kpos, n, bias);
        for (int j = 0; j < n; j++) sc[j] += bias[j];
    }
    REAL mx = -INFINITY;
    for (int j = 0; j < ATT_TILE; j++) {
        if (j >= n || kpos[j] > pq) sc[j] = -INFINITY;   /* masked by stored position, never by slot */
        mx = sc[j] > mx ? sc[j] : mx;
    }
    return mx;
}

/* sc[j] = scale q . k_j for the keys of a transposed tile, across the keys in vector lanes */
static void tile_dots(REAL *sc, const REAL *q, const REAL *kt, int hd, REAL scale) {
    for (int j = 0; j < ATT_TILE; j++) sc[j] = 0;
    for (int i = 0; i < hd; i++) {
        REAL qi = q[i] * scale;
        #pragma omp simd
        for (int j = 0; j < ATT_TILE; j++) sc[j] += qi * kt[i * ATT_TILE + j];
    }
}

/* scaled, masked, biased scores of one query against a transposed tile; returns their maximum */
static REAL tile_scores(REAL *sc, const REAL *q, const REAL *kt, const int *kpos, int n, int hd, int pq, int h, REAL scale,
                        const Encoding *e) {
    tile_dots(sc, q, kt, hd, scale);
    return tile_finish(sc, kpos, n, pq, h, e);
}

/* The softmax step of one tile for the block's queries r < nq at positions pq0 + r, on scores
   st[j * ls + r] of keys j < n: adds the encoding's bias, masks keys past each query (by stored
   position, never by slot), and turns the scores into p = exp(score - running maximum), rescaling
   what acc [nq][hd] and sum hold when a maximum grows (exp(old - new): exactly 1 where it stays).
   A query with no live key yet keeps -inf as its maximum and exponentiates against 0 instead, so its
   p and its rescale are 0. Returns 0, doing nothing more, when every key is in the block's future.
   Inlined with constants: for one query (ls = 1, nq = 1) the loops run across keys in vector lanes,
   for a block (ls = QB) across its queries. */
static inline __attribute__((always_inline)) int tile_softmax(REAL *st, int ls, int n, int nq, const int *kpos, int pq0, int h,
                                                              const Encoding *e, REAL *mx, REAL *sum, REAL *acc, int hd) {
    REAL tmax[QB], m_use[QB], tsum[QB];
    if (e->ops->add_bias)
        for (int r = 0; r < nq; r++) {
            float bias[ATT_TILE] = {0};
            e->ops->add_bias(e, h, pq0 + r, kpos, n, bias);
            for (int j = 0; j < n; j++) st[j * ls + r] += bias[j];
        }
    for (int r = 0; r < nq; r++) tmax[r] = -INFINITY;
    for (int j = 0; j < n; j++)
        #pragma omp simd
        for (int r = 0; r < nq; r++) {
            REAL x = kpos[j] > pq0 + r ? -INFINITY : st[j * ls + r];
            st[j * ls + r] = x;
            tmax[r] = x > tmax[r] ? x : tmax[r];
        }
    int live = 0;
    for (int r = 0; r < nq; r++) live |= tmax[r] > -INFINITY;
    if (!live) return 0;
    for (int r = 0; r < nq; r++) {
        REAL m = tmax[r] > mx[r] ? tmax[r] : mx[r];
        m_use[r] = m == -INFINITY ? 0 : m;
        REAL c = EXP(mx[r] - m_use[r]);
        mx[r] = m;
        sum[r] *= c;
        tsum[r] = 0;
        if (c != 1)
            for (int i = 0; i < hd; i++) acc[r * hd + i] *= c;
    }
    for (int j = 0; j < n; j++)
        #pragma omp simd
        for (int r = 0; r < nq; r++) {
            REAL p = EXP(st[j * ls + r] - m_use[r]);
            st[j * ls + r] = p;
            tsum[r] += p;
        }
    for (int r = 0; r < nq; r++) sum[r] += tsum[r];
    return 1;
}

/* st = the tile's raw scores against the block's scaled queries qt: for one query a dot product per key
   row ([key], ls = 1; 5% faster than transposing the tile to put keys in vector lanes), for a block a
   product with the queries transposed ([key][QB]) */
static void tile_product(REAL *st, const REAL *kr, int ld, const REAL *qt, int n, int nq, int hd) {
    if (nq == 1) {   /* not a product with 31 idle columns: a dot product per cached row, where it lies */
        for (int j = 0; j < n; j++) {
            const REAL *ahead = kr + (size_t)MIN(j + KEY_PREFETCH_ROWS, n - 1) * ld;
            for (int i = 0; i < hd; i += 64 / (int)sizeof(REAL)) __builtin_prefetch(ahead + i);
            st[j] = dot(qt, kr + (size_t)j * ld, hd);
        }
    } else {
        gemm_serial(st, kr, qt, n, hd, QB, ld, 1, QB, QB, 0);
    }
}

/* The encoding's far view (Self-Extend): the scores st [key][ls] of keys at distance >= e->far_window
   from their query become q_far . k_far, from the far view's queries qf and the tile's rows in the far
   keys; sf is scratch like st. Tiles with no such key cost one pass over their positions. */
static void tile_far_scores(REAL *st, REAL *sf, int ls, const REAL *qf, const void *k_far, int kv_half, REAL *krows,
                            const int *kpos, int j0, int n, int nq, int pq0, int g, int kvd, int hd, const Encoding *e) {
    int W = e->far_window, far = 0, ld;
    for (int j = 0; j < n; j++) far |= pq0 + nq - 1 - kpos[j] >= W;
    if (!far) return;
    const REAL *kr = tile_rows(krows, &ld, k_far, kv_half, j0, n, g, kvd, hd);
    tile_product(sf, kr, ld, qf, n, nq, hd);
    for (int j = 0; j < n; j++)
        for (int r = 0; r < nq; r++)
            if (pq0 + r - kpos[j] >= W) st[j * ls + r] = sf[j * ls + r];
}

void OPS(attention_forward)(REAL *out, REAL *lse, const REAL *q, const REAL *q_far, const void *k, const void *k_far, const void *v,
                            int kv_half, const int *kpos, int n_keys, int pos0, int T, int H, int Hkv, int hd, const Encoding *e) {
    int qd = H * hd, kvd = Hkv * hd, group = H / Hkv, n_blocks = (T + QB - 1) / QB;
    REAL scale = (REAL)(1.0 / sqrt((double)hd));
    /* per block of QB queries and tile of keys, two small products in register blocks: the scores
       St = K (scale Q)^T against the queries transposed once per block, and O += P V, with P read
       through St (the product only broadcasts its left operand, so the transpose costs nothing) */
    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int h = 0; h < H; h++) {
        for (int blk = 0; blk < n_blocks; blk++) {
            int t0 = blk * QB, nq = MIN(QB, T - t0), g = h / group, pq0 = pos0 + t0;
            REAL st[ATT_TILE * QB], mx[QB], sum[QB];   /* st: the tile's scores, then p, [key][query] */
            /* qt [hd][QB] (scaled queries, transposed), acc [QB][hd], the half cache's converted tile
               rows [ATT_TILE][hd], and for a far view its queries qf [hd][QB] and scores sf [ATT_TILE][QB] */
            REAL *qt = scratch(0, (size_t)hd * (3 * QB + 2 * ATT_TILE) + ATT_TILE * QB), *acc = qt + (size_t)hd * QB;
            REAL *krows = acc + (size_t)hd * QB, *vrows = krows + (size_t)hd * ATT_TILE;
            REAL *qf = vrows + (size_t)hd * ATT_TILE, *sf = qf + (size_t)hd * QB;
            int ls = nq == 1 ? 1 : QB;   /* qt's and st's query stride: one query (decoding) keeps its rows as is */
            for (int r = 0; r < ls; r++) {   /* columns past nq: zeros, so the product runs full width */
                mx[r] = -INFINITY;
                sum[r] = 0;
                for (int i = 0; i < hd; i++) {
                    acc[r * hd + i] = 0;
                    qt[i * ls + r] = r < nq ? q[(size_t)(t0 + r) * qd + (size_t)h * hd + i] * scale : 0;
                    if (q_far) qf[i * ls + r] = r < nq ? q_far[(size_t)(t0 + r) * qd + (size_t)h * hd + i] * scale : 0;
                }
            }
            for (int j0 = 0; j0 < n_keys; j0 += ATT_TILE) {
                int n = MIN(ATT_TILE, n_keys - j0), ld;
                const REAL *kr = tile_rows(krows, &ld, k, kv_half, j0, n, g, kvd, hd);
                tile_product(st, kr, ld, qt, n, nq, hd);
                if (q_far) tile_far_scores(st, sf, ls, qf, k_far, kv_half, krows, kpos + j0, j0, n, nq, pq0, g, kvd, hd, e);
                /* inlined with constant strides: across keys for one query, across queries for a block */
                int live = nq == 1 ? tile_softmax(st, 1, n, 1, kpos + j0, pq0, h, e, mx, sum, acc, hd)
                                   : tile_softmax(st, QB, n, nq, kpos + j0, pq0, h, e, mx, sum, acc, hd);
                if (!live) continue;   /* every key of the tile is in the block's future */
                const REAL *vr = tile_rows(vrows, &ld, v, kv_half, j0, n, g, kvd, hd);
                gemm_serial(acc, st, vr, nq, n, hd, 1, ls, ld, hd, 1);
            }
            for (int r = 0; r < nq; r++) {   /* sum > 0: a query's own key is never masked */
                REAL *ot = out + (size_t)(t0 + r) * qd + (size_t)h * hd;
                for (int i = 0; i < hd; i++) ot[i] = acc[r * hd + i] / sum[r];
                if (lse) lse[(size_t)(t0 + r) * H + h] = mx[r] + log(sum[r]);
            }
        }
    }
}

void OPS(attention_backward)(REAL *dq, REAL *dk, REAL *dv, float *dbias_table, const REAL *dout, const REAL *out, const REAL *lse,
                             const REAL *q, const REAL *k, const REAL *v, const int *kpos, int n_keys, int pos0, int T, int H,
                             int Hkv, int hd, const Encoding *e) {
    int qd = H * hd, kvd = Hkv * hd, group = H / Hkv;
    REAL scale = (REAL)(1.0 / sqrt((double)hd));
    /* one KV head per iteration: its dk/dv rows, and its heads' dq and bias columns, are disjoint */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int g = 0; g < Hkv; g++) {
        REAL kt[PE_MAX_HEAD_DIM * ATT_TILE], vt[PE_MAX_HEAD_DIM * ATT_TILE], sc[ATT_TILE], dp[ATT_TILE];
        for (int j0 = 0; j0 < n_keys; j0 += ATT_TILE) {
            int n = MIN(ATT_TILE, n_keys - j0);
            size_t at = (size_t)j0 * kvd + (size_t)g * hd;
            tile_transpose(kt, k + at, kvd, n, hd);
            tile_transpose(vt, v + at, kvd, n, hd);
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    const REAL *qt = q + (size_t)t * qd + (size_t)h * hd, *dot_ = dout + (size_t)t * qd + (size_t)h * hd;
                    if (tile_scores(sc, qt, kt, kpos + j0, n, hd, pos0 + t, h, scale, e) == -INFINITY) continue;
                    REAL L = lse[(size_t)t * H + h], D = dot(dot_, out + (size_t)t * qd + (size_t)h * hd, hd);
                    for (int j = 0; j < ATT_TILE; j++) dp[j] = 0;
                    for (int i = 0; i < hd; i++) {   /* dp[j] = dout . v_j, across the tile */
                        REAL di = dot_[i];
                        #pragma omp simd
                        for (int j = 0; j < ATT_TILE; j++) dp[j] += di * vt[i * ATT_TILE + j];
                    }
                    float dbias[ATT_TILE];
                    #pragma omp simd
                    for (int j = 0; j < ATT_TILE; j++) {
                        REAL p = EXP(sc[j] - L);
                        sc[j] = p;                    /* p, for dv */
                        dp[j] = p * (dp[j] - D);      /* ds = dS/dscore */
                        dbias[j] = (float)dp[j];
                    }
                    REAL *dqt = dq + (size_t)t * qd + (size_t)h * hd;
                    for (int j = 0; j < n; j++) {
                        const REAL *kj = k + (size_t)(j0 + j) * kvd + (size_t)g * hd;
                        REAL *dkj = dk + (size_t)(j0 + j) * kvd + (size_t)g * hd, *dvj = dv + (size_t)(j0 + j) * kvd + (size_t)g * hd;
                        REAL ds = dp[j] * scale, p = sc[j];
                        #pragma omp simd
                        for (int i = 0; i < hd; i++) {
                            dqt[i] += ds * kj[i];
                            dkj[i] += ds * qt[i];
                            dvj[i] += p * dot_[i];
                        }
                    }
                    if (e->ops->bias_grad && dbias_table) e->ops->bias_grad(e, h, pos0 + t, kpos + j0, n, dbias, dbias_table);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* loss */

double OPS(crossentropy_forward)(const REAL *logits, const int *targets, const float *weights, int T, int V) {
    double loss = 0;
    for (int t = 0; t < T; t++) {
        const REAL *l = logits + (size_t)t * V;
        double mx = l[0], sum = 0, w = weights ? weights[t] : 1;
        if (w == 0) continue;
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
        loss += w * (mx + log(sum) - l[targets[t]]);
    }
    return loss;
}

void OPS(crossentropy_backward)(REAL *dlogits, const REAL *logits, const int *targets, const float *weights, double scale, int T, int V) {
    for (int t = 0; t < T; t++) {
        const REAL *l = logits + (size_t)t * V;
        REAL *dl = dlogits + (size_t)t * V;
        double mx = l[0], sum = 0, w = (weights ? weights[t] : 1) * scale;
        if (w == 0) continue;
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
        for (int i = 0; i < V; i++) dl[i] += (REAL)(w * (exp(l[i] - mx) / sum - (i == targets[t])));
    }
}
