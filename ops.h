/* The operations of the transformer, each forward beside its backward (llm.c style). One source,
   two builds: REAL = float for the runtime and the trainer, REAL = double (names suffixed _f64)
   for the finite-difference gradient checks. Backward functions ACCUMULATE (+=) into gradients.
   Include with REAL/OPS predefined to get the double declarations. */
#ifndef REAL
#define REAL float
#define OPS(name) name
#endif
#include "encodings/encoding.h"

/* y[T][O] = x[T][I] w[O][I]^T + b[O] (b may be NULL) */
void OPS(matmul_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *b, int T, int I, int O);
/* dx[T][I] += dy w; dw[O][I] += dy^T x; db[O] += sum_t dy (any of dx, dw, db may be NULL) */
void OPS(matmul_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *dy, const REAL *x, const REAL *w, int T, int I, int O);

/* LayerNorm (mean != NULL: out = (x - mean) rstd w + b) or RMSNorm (mean == NULL: out = x rstd w).
   mean/rstd [T] are saved for backward. */
void OPS(norm_forward)(REAL *out, REAL *mean, REAL *rstd, const REAL *x, const REAL *w, const REAL *b, int T, int D, double eps);
void OPS(norm_backward)(REAL *dx, REAL *dw, REAL *db, const REAL *dout, const REAL *x, const REAL *mean, const REAL *rstd,
                        const REAL *w, int T, int D);

/* SwiGLU: h = silu(gate) * up */
void OPS(swiglu_forward)(REAL *h, const REAL *gate, const REAL *up, long n);
void OPS(swiglu_backward)(REAL *dgate, REAL *dup, const REAL *dh, const REAL *gate, const REAL *up, long n);
/* GELU, tanh form (GPT-2, llama.cpp) */
void OPS(gelu_forward)(REAL *out, const REAL *x, long n);
void OPS(gelu_backward)(REAL *dx, const REAL *dout, const REAL *x, long n);

/* Causal attention of T queries at positions pos0.. over n_keys cached keys at positions kpos[]:
   streaming softmax over tiles, key j masked iff kpos[j] > query position, bias from the encoding's
   add_bias hook. q [T][H*hd], k/v [n_keys][Hkv*hd] of REAL, or of IEEE half (uint16_t) when
   kv_half (the -kv f16 cache), out [T][H*hd]; lse [T][H] (may be NULL) keeps log-sum-exp of each
   row for backward. q_far/k_far (NULL: none, and no work), laid out as q/k: the encoding's far view
   (encoding.h far_pos); a key at distance >= e->far_window from its query is scored q_far . k_far. */
void OPS(attention_forward)(REAL *out, REAL *lse, const REAL *q, const REAL *q_far, const void *k, const void *k_far, const void *v,
                            int kv_half, const int *kpos, int n_keys, int pos0, int T, int H, int Hkv, int hd, const Encoding *e);
/* Recomputes probabilities from lse (flash-attention style). dq += , dk/dv [n_keys][Hkv*hd] +=,
   and the encoding's bias gradient (T5 table) through its bias_grad hook into dbias_table. */
void OPS(attention_backward)(REAL *dq, REAL *dk, REAL *dv, float *dbias_table, const REAL *dout, const REAL *out, const REAL *lse,
                             const REAL *q, const REAL *k, const REAL *v, const int *kpos, int n_keys, int pos0, int T, int H,
                             int Hkv, int hd, const Encoding *e);

/* Softmax cross-entropy of logits [T][V] against targets [T] with weights [T] (NULL = 1):
   returns sum_t w_t * -log p_t(target); dlogits = (p - onehot) * w_t * dloss_scale. probs is scratch [V]. */
double OPS(crossentropy_forward)(const REAL *logits, const int *targets, const float *weights, int T, int V);
void OPS(crossentropy_backward)(REAL *dlogits, const REAL *logits, const int *targets, const float *weights, double scale, int T, int V);
