/* Transformer operations, forward and backward side by side; see ops.h. Compiled twice: as is
   (float) and with -DREAL=double -D'OPS(n)=n##_f64' for the gradient checks. */
#include <math.h>
#include <string.h>
#include "ops.h"

#define ATT_TILE 64
#define MAX_HD (2 * PE_MAX_PAIRS)
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ------------------------------------------------------------------------------------------ */
/* matmul: the inner loops are written so that the compiler vectorises them: a 4x4 block of dot
   products shares its loads; the simd pragma licenses the reordered (vector) sums. */

static REAL dot(const REAL *a, const REAL *b, int n) {
    REAL acc = 0;
    #pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

void OPS(matmul_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *b, int T, int I, int O) {
    #pragma omp parallel for schedule(static)
    for (int ob = 0; ob < O; ob += 4) {
        int on = MIN(4, O - ob);
        for (int tb = 0; tb < T; tb += 4) {
            int tn = MIN(4, T - tb);
            REAL acc[4][4];
            if (on == 4 && tn == 4) {
                const REAL *x0 = x + (size_t)tb * I, *x1 = x0 + I, *x2 = x1 + I, *x3 = x2 + I;
                const REAL *w0 = w + (size_t)ob * I, *w1 = w0 + I, *w2 = w1 + I, *w3 = w2 + I;
                REAL a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
                REAL a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
                #pragma omp simd reduction(+ : a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)
                for (int i = 0; i < I; i++) {
                    REAL u0 = x0[i], u1 = x1[i], u2 = x2[i], u3 = x3[i], v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
                    a00 += u0 * v0; a01 += u0 * v1; a02 += u0 * v2; a03 += u0 * v3;
                    a10 += u1 * v0; a11 += u1 * v1; a12 += u1 * v2; a13 += u1 * v3;
                    a20 += u2 * v0; a21 += u2 * v1; a22 += u2 * v2; a23 += u2 * v3;
                    a30 += u3 * v0; a31 += u3 * v1; a32 += u3 * v2; a33 += u3 * v3;
                }
                REAL blk[4][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
                memcpy(acc, blk, sizeof acc);
            } else {
                for (int t = 0; t < tn; t++)
                    for (int o = 0; o < on; o++) acc[t][o] = dot(x + (size_t)(tb + t) * I, w + (size_t)(ob + o) * I, I);
            }
            for (int t = 0; t < tn; t++)
                for (int o = 0; o < on; o++) y[(size_t)(tb + t) * O + ob + o] = acc[t][o] + (b ? b[ob + o] : 0);
        }
    }
}

void OPS(matmul_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *dy, const REAL *x, const REAL *w, int T, int I, int O) {
    if (dx) {
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++) {   /* dx[t] += sum_o dy[t][o] w[o]: axpy rows, no reduction */
            REAL *dxt = dx + (size_t)t * I;
            for (int o = 0; o < O; o++) {
                REAL a = dy[(size_t)t * O + o];
                const REAL *wo = w + (size_t)o * I;
                #pragma omp simd
                for (int i = 0; i < I; i++) dxt[i] += a * wo[i];
            }
        }
    }
    if (dw || db) {
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < O; o++) {   /* dw[o] += sum_t dy[t][o] x[t] */
            REAL *dwo = dw ? dw + (size_t)o * I : NULL, bsum = 0;
            for (int t = 0; t < T; t++) {
                REAL a = dy[(size_t)t * O + o];
                const REAL *xt = x + (size_t)t * I;
                bsum += a;
                if (dwo) {
                    #pragma omp simd
                    for (int i = 0; i < I; i++) dwo[i] += a * xt[i];
                }
            }
            if (db) db[o] += bsum;
        }
    }
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

/* scores of one query against keys [j0, j0+n) of one KV head, masked by stored position, plus the
   encoding's bias; returns the tile maximum (-inf when every key is masked) */
static REAL score_tile(REAL *sc, const REAL *q, const REAL *k, const int *kpos, int j0, int n, int kvd, int hd, int pq, int h,
                       REAL scale, const Encoding *e) {
    for (int j = 0; j < n; j++)
        sc[j] = kpos[j0 + j] > pq ? -INFINITY : dot(q, k + (size_t)(j0 + j) * kvd, hd) * scale;
    if (e->ops->add_bias) {
        float bias[ATT_TILE] = {0};
        e->ops->add_bias(e, h, pq, kpos + j0, n, bias);
        for (int j = 0; j < n; j++) sc[j] += bias[j];
    }
    REAL mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
    return mx;
}

void OPS(attention_forward)(REAL *out, REAL *lse, const REAL *q, const REAL *k, const REAL *v, const int *kpos, int n_keys,
                            int pos0, int T, int H, int Hkv, int hd, const Encoding *e) {
    int qd = H * hd, kvd = Hkv * hd, group = H / Hkv;
    REAL scale = (REAL)(1.0 / sqrt((double)hd));
    #pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            const REAL *qt = q + (size_t)t * qd + (size_t)h * hd;
            const REAL *kh = k + (size_t)(h / group) * hd, *vh = v + (size_t)(h / group) * hd;
            REAL acc[MAX_HD] = {0}, sc[ATT_TILE], mx = -INFINITY, sum = 0;
            for (int j0 = 0; j0 < n_keys; j0 += ATT_TILE) {
                int n = MIN(ATT_TILE, n_keys - j0);
                REAL tmax = score_tile(sc, qt, kh, kpos, j0, n, kvd, hd, pos0 + t, h, scale, e);
                if (tmax == -INFINITY) continue;
                if (tmax > mx) {   /* rescale what was accumulated under the old maximum */
                    REAL r = exp(mx - tmax);
                    sum *= r;
                    for (int i = 0; i < hd; i++) acc[i] *= r;
                    mx = tmax;
                }
                for (int j = 0; j < n; j++) {
                    if (sc[j] == -INFINITY) continue;
                    REAL p = exp(sc[j] - mx);
                    const REAL *vj = vh + (size_t)(j0 + j) * kvd;
                    sum += p;
                    #pragma omp simd
                    for (int i = 0; i < hd; i++) acc[i] += p * vj[i];
                }
            }
            REAL *ot = out + (size_t)t * qd + (size_t)h * hd;
            for (int i = 0; i < hd; i++) ot[i] = acc[i] / sum;   /* sum > 0: the query's own key is never masked */
            if (lse) lse[(size_t)t * H + h] = mx + log(sum);
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
        const REAL *kg = k + (size_t)g * hd, *vg = v + (size_t)g * hd;
        REAL *dkg = dk + (size_t)g * hd, *dvg = dv + (size_t)g * hd;
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int t = 0; t < T; t++) {
                const REAL *qt = q + (size_t)t * qd + (size_t)h * hd, *dot_ = dout + (size_t)t * qd + (size_t)h * hd;
                REAL *dqt = dq + (size_t)t * qd + (size_t)h * hd;
                REAL D = dot(dot_, out + (size_t)t * qd + (size_t)h * hd, hd), L = lse[(size_t)t * H + h], sc[ATT_TILE];
                for (int j0 = 0; j0 < n_keys; j0 += ATT_TILE) {
                    int n = MIN(ATT_TILE, n_keys - j0);
                    if (score_tile(sc, qt, kg, kpos, j0, n, kvd, hd, pos0 + t, h, scale, e) == -INFINITY) continue;
                    float dbias[ATT_TILE];
                    for (int j = 0; j < n; j++) {
                        dbias[j] = 0;
                        if (sc[j] == -INFINITY) continue;
                        const REAL *kj = kg + (size_t)(j0 + j) * kvd, *vj = vg + (size_t)(j0 + j) * kvd;
                        REAL *dkj = dkg + (size_t)(j0 + j) * kvd, *dvj = dvg + (size_t)(j0 + j) * kvd;
                        REAL p = exp(sc[j] - L), ds = p * (dot(dot_, vj, hd) - D);
                        dbias[j] = (float)ds;
                        #pragma omp simd
                        for (int i = 0; i < hd; i++) {
                            dqt[i] += ds * scale * kj[i];
                            dkj[i] += ds * scale * qt[i];
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
