/* Gradient checks. Every operation: its backward against central finite differences of its
   forward, both in double precision (ops.c built with REAL = double). Every encoding: the whole
   trainer model's gradients against finite differences of its float loss, and the adjoint
   identities the backward relies on. */
#include <stdlib.h>
#include <string.h>
#include "f16.h"
#include "ops.h"
#undef REAL
#undef OPS
#define REAL double
#define OPS(name) name##_f64
#include "ops.h"
#include "tests/test.h"
#include "trainer.h"

static uint64_t rng_state = 12345;
static double urand(void) {   /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1;
}
static double *rand_vec(size_t n, double scale) {
    double *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = urand() * scale;
    return p;
}

/* Compares an analytic gradient with central differences of loss() over every entry of x. */
typedef double (*LossFn)(void *ctx);
static void check_fd(const char *what, double *x, size_t n, const double *analytic, LossFn loss, void *ctx) {
    const double h = 1e-6;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h; double lp = loss(ctx);
        x[i] = keep - h; double lm = loss(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - analytic[i]);
        worst = err > worst ? err : worst;
        scale = fabs(fd) > scale ? fabs(fd) : scale;
    }
    CHECK(scale > 1e-3, "%s: the gradient is ~0 everywhere (max |fd| %.3g): the check would prove nothing", what, scale);
    CHECK(worst <= 1e-6 * (1 + scale), "%s: max |analytic - finite difference| = %.3g (gradient scale %.3g)", what, worst, scale);
}

static double dotv(const double *a, const double *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s; }

/* ---- matmul ---- */
enum { MT = 5, MI = 7, MO = 6 };
typedef struct { double *x, *w, *b, *r, y[MT * MO]; } MatCtx;
static double mat_loss(void *p) { MatCtx *c = p; matmul_forward_f64(c->y, c->x, c->w, c->b, MT, MI, MO); return dotv(c->y, c->r, MT * MO); }
static void test_grad_matmul(void) {
    MatCtx c = {rand_vec(MT * MI, 1), rand_vec(MO * MI, 1), rand_vec(MO, 1), rand_vec(MT * MO, 1), {0}};
    double dx[MT * MI] = {0}, dw[MO * MI] = {0}, db[MO] = {0};
    matmul_backward_f64(dx, dw, db, c.r, c.x, c.w, MT, MI, MO);
    check_fd("matmul dx", c.x, MT * MI, dx, mat_loss, &c);
    check_fd("matmul dw", c.w, MO * MI, dw, mat_loss, &c);
    check_fd("matmul db", c.b, MO, db, mat_loss, &c);
    free(c.x); free(c.w); free(c.b); free(c.r);
}

/* ---- norms ---- */
enum { NT = 3, ND = 9 };
typedef struct { double *x, *w, *b, *r, out[NT * ND], mean[NT], rstd[NT]; int layer; } NormCtx;
static double norm_loss(void *p) {
    NormCtx *c = p;
    norm_forward_f64(c->out, c->layer ? c->mean : NULL, c->rstd, c->x, c->w, c->layer ? c->b : NULL, NT, ND, 1e-5);
    return dotv(c->out, c->r, NT * ND);
}
static void test_grad_norms(void) {
    for (int layer = 0; layer < 2; layer++) {
        NormCtx c = {rand_vec(NT * ND, 2), rand_vec(ND, 1), rand_vec(ND, 1), rand_vec(NT * ND, 1), {0}, {0}, {0}, layer};
        double dx[NT * ND] = {0}, dw[ND] = {0}, db[ND] = {0};
        norm_loss(&c);
        norm_backward_f64(dx, dw, layer ? db : NULL, c.r, c.x, layer ? c.mean : NULL, c.rstd, c.w, NT, ND);
        check_fd(layer ? "layernorm dx" : "rmsnorm dx", c.x, NT * ND, dx, norm_loss, &c);
        check_fd(layer ? "layernorm dw" : "rmsnorm dw", c.w, ND, dw, norm_loss, &c);
        if (layer) check_fd("layernorm db", c.b, ND, db, norm_loss, &c);
        free(c.x); free(c.w); free(c.b); free(c.r);
    }
}

/* ---- activations ---- */
enum { AN = 40 };
typedef struct { double *a, *b, *r, out[AN]; int gelu; } ActCtx;
static double act_loss(void *p) {
    ActCtx *c = p;
    if (c->gelu) gelu_forward_f64(c->out, c->a, AN);
    else swiglu_forward_f64(c->out, c->a, c->b, AN);
    return dotv(c->out, c->r, AN);
}
static void test_grad_activations(void) {
    ActCtx c = {rand_vec(AN, 4), rand_vec(AN, 2), rand_vec(AN, 1), {0}, 0};
    double da[AN] = {0}, db[AN] = {0};
    swiglu_backward_f64(da, db, c.r, c.a, c.b, AN);
    check_fd("swiglu dgate", c.a, AN, da, act_loss, &c);
    check_fd("swiglu dup", c.b, AN, db, act_loss, &c);
    c.gelu = 1;
    memset(da, 0, sizeof da);
    gelu_backward_f64(da, c.r, c.a, AN);
    check_fd("gelu dx", c.a, AN, da, act_loss, &c);
    free(c.a); free(c.b); free(c.r);
}

/* ---- cross-entropy ---- */
enum { CT = 4, CV = 11 };
typedef struct { double *logits; int targets[CT]; float weights[CT]; } CeCtx;
static double ce_loss(void *p) { CeCtx *c = p; return crossentropy_forward_f64(c->logits, c->targets, c->weights, CT, CV) / 3.0; }
static void test_grad_crossentropy(void) {
    CeCtx c = {rand_vec(CT * CV, 3), {1, 5, 10, 0}, {1, 4, 0, 0.5f}};
    double d[CT * CV] = {0};
    crossentropy_backward_f64(d, c.logits, c.targets, c.weights, 1 / 3.0, CT, CV);
    check_fd("crossentropy dlogits (weighted, one weight 0)", c.logits, CT * CV, d, ce_loss, &c);
    free(c.logits);
}

/* ---- attention, with each encoding's bias ---- */
enum { QT = 24, NK = 150, AH = 4, AHKV = 2, HD = 6 };   /* 150 keys: three tiles of the streaming softmax */
typedef struct { double *q, *k, *v, *r, out[QT * AH * HD], lse[QT * AH]; int kpos[NK]; const Encoding *e; } AttCtx;
static double att_loss(void *p) {
    AttCtx *c = p;
    attention_forward_f64(c->out, c->lse, c->q, NULL, c->k, NULL, c->v, 0, c->kpos, NK, NK - QT, QT, AH, AHKV, HD, c->e);
    return dotv(c->out, c->r, QT * AH * HD);
}
static float t5_table[32 * AH];
static void encoding_for(Encoding *e, const char *method, PeFamily fam) {
    char err[256];
    memset(e, 0, sizeof *e);
    snprintf(e->set.method, sizeof e->set.method, "%s", method);
    e->set.rope_base = 10000;
    e->set.yarn_ext = -1;
    e->model = (PeModel){.dim = AH * HD, .n_heads = AH, .n_kv_heads = AHKV, .head_dim = HD, .train_ctx = 64, .run_ctx = 64, .rel_bias = t5_table};
    e->set.t5_buckets = 8;        /* few buckets and a short max distance, so these keys reach the log buckets */
    e->set.t5_max_distance = 6;
    CHECK(encoding_init(e, fam, err) == 0, "%s: %s", method, err);
}
static void test_grad_attention(void) {
    const char *methods[] = {"none", "alibi", "t5"};
    PeFamily fams[] = {PE_FAMILY_NONE, PE_FAMILY_ALIBI, PE_FAMILY_T5};
    for (int i = 0; i < 32 * AH; i++) t5_table[i] = (float)urand();
    for (int mi = 0; mi < 3; mi++) {
        Encoding e;
        encoding_for(&e, methods[mi], fams[mi]);
        AttCtx c = {rand_vec(QT * AH * HD, 1), rand_vec(NK * AHKV * HD, 1), rand_vec(NK * AHKV * HD, 1), rand_vec(QT * AH * HD, 1),
                    {0}, {0}, {0}, &e};
        for (int j = 0; j < NK; j++) c.kpos[j] = j;   /* the queries are the last QT of these positions */
        double dq[QT * AH * HD] = {0}, dk[NK * AHKV * HD] = {0}, dv[NK * AHKV * HD] = {0};
        static float dtable[32 * AH];
        memset(dtable, 0, sizeof dtable);
        att_loss(&c);
        attention_backward_f64(dq, dk, dv, dtable, c.r, c.out, c.lse, c.q, c.k, c.v, c.kpos, NK, NK - QT, QT, AH, AHKV, HD, &e);
        char what[64];
        snprintf(what, sizeof what, "attention (%s) dq", methods[mi]); check_fd(what, c.q, QT * AH * HD, dq, att_loss, &c);
        snprintf(what, sizeof what, "attention (%s) dk", methods[mi]); check_fd(what, c.k, NK * AHKV * HD, dk, att_loss, &c);
        snprintf(what, sizeof what, "attention (%s) dv", methods[mi]); check_fd(what, c.v, NK * AHKV * HD, dv, att_loss, &c);
        if (mi == 2) {   /* the T5 table: finite differences on its float entries */
            double worst = 0, scale = 0;
            for (int i = 0; i < 32 * AH; i++) {
                float keep = t5_table[i];
                const float h = 1.0f / 1024;   /* exact in float */
                t5_table[i] = keep + h; double lp = att_loss(&c);
                t5_table[i] = keep - h; double lm = att_loss(&c);
                t5_table[i] = keep;
                double fd = (lp - lm) / (2 * h);
                worst = fabs(fd - dtable[i]) > worst ? fabs(fd - dtable[i]) : worst;
                scale = fabs(fd) > scale ? fabs(fd) : scale;
            }
            CHECK(scale > 1e-3 && worst <= 1e-5 * (1 + scale), "T5 table gradient: max error %.3g (scale %.3g)", worst, scale);
        }
        free(c.q); free(c.k); free(c.v); free(c.r);
    }
}

/* ALiBi over H heads of hd dimensions: the biased encoding the attention comparisons run with */
static void alibi_heads(Encoding *e, int H, int hd) {
    encoding_for(e, "alibi", PE_FAMILY_ALIBI);
    e->model.head_dim = hd;
    e->model.dim = H * hd;
}

/* The float build's attention (inline exp, vectorised tiles) against the double build (libm exp):
   the same inputs, including a masked key tail and several tiles, agree to float precision. */
static void test_attention_float_matches_double(void) {
    enum { FT = 70, FNK = 150, FH = 4, FHKV = 2, FHD = 16 };
    Encoding e;
    alibi_heads(&e, FH, FHD);
    size_t nq = (size_t)FT * FH * FHD, nk = (size_t)FNK * FHKV * FHD;
    double *qd = rand_vec(nq, 2), *kd = rand_vec(nk, 2), *vd = rand_vec(nk, 1), *od = malloc(nq * sizeof *od), lsed[FT * FH];
    float *qf = malloc(nq * sizeof *qf), *kf = malloc(nk * sizeof *kf), *vf = malloc(nk * sizeof *vf), *of = malloc(nq * sizeof *of), lsef[FT * FH];
    int kpos[FNK];
    for (int j = 0; j < FNK; j++) kpos[j] = 1000 + j;
    for (size_t i = 0; i < nq; i++) qf[i] = (float)(qd[i] = (float)qd[i]);
    for (size_t i = 0; i < nk; i++) { kf[i] = (float)(kd[i] = (float)kd[i]); vf[i] = (float)(vd[i] = (float)vd[i]); }
    /* queries at positions 1060..1129: the last 20 keys are in their future and masked */
    attention_forward(of, lsef, qf, NULL, kf, NULL, vf, 0, kpos, FNK, 1060, FT, FH, FHKV, FHD, &e);
    attention_forward_f64(od, lsed, qd, NULL, kd, NULL, vd, 0, kpos, FNK, 1060, FT, FH, FHKV, FHD, &e);
    double worst = 0, worst_lse = 0;
    for (size_t i = 0; i < nq; i++) worst = fmax(worst, fabs(of[i] - od[i]));
    for (int i = 0; i < FT * FH; i++) worst_lse = fmax(worst_lse, fabs(lsef[i] - lsed[i]));
    printf("     float vs double attention: out %.3g, lse %.3g\n", worst, worst_lse);
    CHECK(worst < 6e-7 && worst_lse < 1e-6, "float attention differs from double: out %.3g, lse %.3g", worst, worst_lse);
    free(qd); free(kd); free(vd); free(od); free(qf); free(kf); free(vf); free(of);
}

/* A half cache (-kv f16): attention over half keys and values, converted to float as each tile
   loads, equals to the bit the float attention over the same values rounded to half (grouped
   heads, a masked tail, several tiles, a head dim that leaves conversion tails). */
static void test_attention_half_cache(void) {
    enum { FT = 70, FNK = 150, FH = 4, FHKV = 2, FHD = 20 };
    Encoding e;
    alibi_heads(&e, FH, FHD);
    size_t nq = (size_t)FT * FH * FHD, nk = (size_t)FNK * FHKV * FHD;
    double *qd = rand_vec(nq, 2), *kd = rand_vec(nk, 2), *vd = rand_vec(nk, 1);
    float *q = malloc(nq * sizeof *q), *k = malloc(nk * sizeof *k), *v = malloc(nk * sizeof *v);
    float *out32 = malloc(nq * sizeof *out32), *out16 = malloc(nq * sizeof *out16), lse32[FT * FH], lse16[FT * FH];
    uint16_t *kh = malloc(nk * sizeof *kh), *vh = malloc(nk * sizeof *vh);
    int kpos[FNK];
    for (int j = 0; j < FNK; j++) kpos[j] = 1000 + j;
    for (size_t i = 0; i < nq; i++) q[i] = (float)qd[i];
    for (size_t i = 0; i < nk; i++) {
        kh[i] = f32_to_f16((float)kd[i]);
        vh[i] = f32_to_f16((float)vd[i]);
        k[i] = f16_to_f32(kh[i]);
        v[i] = f16_to_f32(vh[i]);
    }
    attention_forward(out32, lse32, q, NULL, k, NULL, v, 0, kpos, FNK, 1060, FT, FH, FHKV, FHD, &e);
    attention_forward(out16, lse16, q, NULL, kh, NULL, vh, 1, kpos, FNK, 1060, FT, FH, FHKV, FHD, &e);
    CHECK(!memcmp(out32, out16, nq * sizeof *out32) && !memcmp(lse32, lse16, sizeof lse32),
          "attention over a half cache differs from float attention over the half-rounded values");
    free(qd); free(kd); free(vd); free(q); free(k); free(v); free(out32); free(out16); free(kh); free(vh);
}

/* ---- encodings: adjoint identities the backward relies on ---- */
static void test_rope_adjoint(void) {
    const char *methods[] = {"rope", "linear", "yarn", "llama3"};
    for (int mi = 0; mi < 4; mi++) {
        Encoding e;
        char err[256];
        memset(&e, 0, sizeof e);
        snprintf(e.set.method, sizeof e.set.method, "%s", methods[mi]);
        e.set.rope_base = 10000;
        e.set.yarn_ext = -1;
        e.set.scale = 4;
        e.model = (PeModel){.dim = 32, .n_heads = 2, .n_kv_heads = 1, .head_dim = 16, .train_ctx = 64, .run_ctx = 64};
        if (encoding_init(&e, PE_FAMILY_ROPE, err)) { CHECK(0, "%s", err); continue; }
        float x[32], y[32], rx[32], ry[32];
        for (int i = 0; i < 32; i++) { x[i] = (float)urand(); y[i] = (float)urand(); }
        memcpy(rx, x, sizeof x);
        memcpy(ry, y, sizeof y);
        e.ops->rotate(&e, 777, rx, 2, NULL, 0);    /* <R x, y> */
        e.ops->rotate(&e, -777, ry, 2, NULL, 0);   /* <x, R^T y> */
        double a = 0, b = 0;
        for (int i = 0; i < 32; i++) { a += (double)rx[i] * y[i]; b += (double)x[i] * ry[i]; }
        CHECK(fabs(a - b) <= 1e-5 * (1 + fabs(a)), "%s: <R x, y> = %.9g but <x, R(-p) y> = %.9g", methods[mi], a, b);
    }
}

/* ---- the whole trainer model, for every trainable encoding ---- */
static Config tiny_config(PeFamily fam, int layernorm) {
    Config c = {0};
    c.arch = ARCH_PELAB;
    c.dim = 16; c.hidden_dim = 24; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.head_dim = 4;
    c.vocab_size = 256; c.train_ctx = 12; c.norm_eps = 1e-5f;
    c.norm = layernorm ? NORM_LAYER : NORM_RMS;
    c.mlp = layernorm ? MLP_GELU : MLP_SWIGLU;
    c.linear_bias = layernorm;
    c.tied_output = !layernorm;
    c.pe_family = fam;
    return c;
}

static void test_grad_model_every_encoding(void) {
    const struct { const char *method; PeFamily fam; } encs[] = {
        {"none", PE_FAMILY_NONE}, {"learned", PE_FAMILY_ABSOLUTE}, {"sinusoidal", PE_FAMILY_ABSOLUTE}, {"rope", PE_FAMILY_ROPE},
        {"linear", PE_FAMILY_ROPE}, {"yarn", PE_FAMILY_ROPE}, {"alibi", PE_FAMILY_ALIBI}, {"t5", PE_FAMILY_T5},
        {"none-logn", PE_FAMILY_NONE}};
    enum { B = 2, T = 12 };
    int inputs[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) { inputs[i] = (int)((i * 37 + 11) % 256); targets[i] = (int)((i * 53 + 7) % 256); }
    for (int ei = 0; ei < (int)(sizeof encs / sizeof encs[0]); ei++) {
        for (int ln = 0; ln < 2; ln++) {
            Config c = tiny_config(encs[ei].fam, ln);
            if (!strcmp(encs[ei].method, "none-logn")) c.train_ctx = 6;   /* queries 6..11 are scaled */
            PeSettings pe = {0};
            snprintf(pe.method, sizeof pe.method, "%s", encs[ei].method);
            pe.rope_base = 10000; pe.yarn_ext = -1; pe.scale = 2; pe.alibi_max_bias = 8; pe.t5_buckets = 8; pe.t5_max_distance = 6;
            TrainModel tm;
            TrainStream st;
            char err[256];
            if (trainmodel_init(&tm, &c, &pe, 7, 0.02, 0.02, err) || stream_init(&st, &tm, T, err)) { CHECK(0, "%s: %s", encs[ei].method, err); continue; }
            /* larger weights than the 0.02 init, so that every path carries gradient, but not so large
               that softmaxes saturate and a finite-difference step crosses a kink */
            for (size_t i = 0; i < tm.n_params; i++) tm.params[i] = tm.params[i] * 3 + (float)(0.02 * urand());
            train_gradients(&tm, &st, 1, inputs, targets, NULL, NULL, B, T);
            /* per tensor, directional derivatives: along the gradient itself (expect |g|) and along two
               random directions (expect <g, d>), by central differences of the float loss. A whole-
               tensor step carries far more signal than float noise, unlike single entries whose true
               gradient may be ~0 (a key bias, which softmax ignores). */
            double worst_rel = 0;
            const char *worst_name = "";
            for (int k = 0; k < tm.n_tensors; k++) {
                const ParamTensor *t = &tm.tensors[k];
                float *p = tm.params + t->offset, *keep = malloc(t->n * sizeof(float));
                double *d = malloc(t->n * sizeof(double)), gnorm = 0;
                memcpy(keep, p, t->n * sizeof(float));
                for (size_t i = 0; i < t->n; i++) gnorm += (double)tm.grads[t->offset + i] * tm.grads[t->offset + i];
                gnorm = sqrt(gnorm);
                for (int dir = 0; dir < 3; dir++) {
                    double dn = 0, expect = 0;
                    for (size_t i = 0; i < t->n; i++) { d[i] = dir == 0 ? tm.grads[t->offset + i] : urand(); dn += d[i] * d[i]; }
                    dn = sqrt(dn) > 0 ? sqrt(dn) : 1;
                    for (size_t i = 0; i < t->n; i++) { d[i] /= dn; expect += d[i] * tm.grads[t->offset + i]; }
                    const double h = 1e-3;   /* curvature error ~h^2, float noise in the loss ~1e-6 / h */
                    for (size_t i = 0; i < t->n; i++) p[i] = keep[i] + (float)(h * d[i]);
                    double lp = train_loss(&tm, &st, 1, inputs, targets, NULL, B, T);
                    for (size_t i = 0; i < t->n; i++) p[i] = keep[i] - (float)(h * d[i]);
                    double lm = train_loss(&tm, &st, 1, inputs, targets, NULL, B, T);
                    memcpy(p, keep, t->n * sizeof(float));
                    /* relative to |g|, with an absolute floor of 0.1 for tensors whose gradient is ~0
                       (k biases): there the float noise of the difference dominates */
                    double rel = fabs((lp - lm) / (2 * h) - expect) / (gnorm + 0.1);
                    if (rel > worst_rel) { worst_rel = rel; worst_name = t->name; }
                }
                free(keep);
                free(d);
            }
            CHECK(worst_rel < 0.02, "%s (%s): gradient vs finite differences off by %.3g relative at %s", encs[ei].method,
                  ln ? "layernorm/gelu/bias" : "rmsnorm/swiglu/tied", worst_rel, worst_name);
            stream_free(&st);
            trainmodel_free(&tm);
        }
    }
}

void suite_grad(void) {
    RUN(test_grad_matmul);
    RUN(test_grad_norms);
    RUN(test_grad_activations);
    RUN(test_grad_crossentropy);
    RUN(test_grad_attention);
    RUN(test_attention_float_matches_double);
    RUN(test_attention_half_cache);
    RUN(test_rope_adjoint);
    RUN(test_grad_model_every_encoding);
}
