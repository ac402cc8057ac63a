/* Positional-encoding tests: every pe-spec.md test vector that applies to an implemented method
   (rope, linear, ntk, dynamic, yarn, llama3, self-extend, alibi, t5, learned, sinusoidal) and one test per §18
   pitfall that can be seen at the encoding level.

   Every expected number is copied from /work/shared/docs/pe-spec.md (the section is named next to
   it), or is computed here, in the test, from a formula of the spec (marked "independent:"), never
   from the code under test. Tolerances follow the quantity:
     - values the code computes in double (θ', bases, m, corr dims, sinusoids): relative 1e-9,
       or the last printed digit of the spec when that is coarser (it says so at the check);
     - rotated vectors, which the interface stores as float: 1e-6 · max(1, |want|);
     - ALiBi slopes, which the interface stores as float: relative 1e-7.
   Not tested here (not implemented): xPos (§9), LongRoPE (§8), Self-Extend's llama.cpp approximation (§14.3), dynamic YaRN,
   YaRN truncate=false and the DeepSeek mscale/mscale_all_dim variants. §14.1/§14.2 cache arithmetic
   needs a model and belongs to another suite. */
#include <stdio.h>
#include <string.h>
#include <math.h>
#include "tests/test.h"
#include "encodings/encoding.h"

/* ---------------------------------------------------------------------------------------------- */
/* helpers                                                                                        */

#define REL_D 1e-9      /* double quantities vs the spec's printed digits */
#define TOL_F 1e-6      /* float outputs (scaled by max(1,|want|)) */

#define CHECK_REL(a, b, rel, what) CHECK_NEAR((a), (b), (rel) * fabs((double)(b)), (what))

/* A zeroed encoding with the documented defaults: B = 10000, layout interleaved, yarn_ext unset,
   one head of head_dim, train_ctx = run_ctx = 256. Callers adjust fields before init. */
static void enc_prepare(Encoding *e, const char *method, int head_dim) {
    memset(e, 0, sizeof *e);
    snprintf(e->set.method, sizeof e->set.method, "%s", method);
    e->set.rope_base = 10000;
    e->set.layout = ROPE_INTERLEAVED;
    e->set.yarn_ext = -1;
    e->model.head_dim = head_dim;
    e->model.n_heads = 1;
    e->model.n_kv_heads = 1;
    e->model.dim = head_dim;
    e->model.train_ctx = 256;
    e->model.run_ctx = 256;
}

static int enc_init(Encoding *e, PeFamily fam) {
    char err[256] = "";
    int r = encoding_init(e, fam, err);
    CHECK(r == 0, "encoding_init(%s) failed: %s", e->set.method, err);
    return r == 0;
}

/* rope-family encoding: head_dim d, rotary dims n (0 = d), layout, scale s (0 = unset), L (0 = unset) */
static int rope_enc(Encoding *e, const char *method, int d, int n, RopeLayout layout, double s, int L) {
    enc_prepare(e, method, d);
    e->set.n_rot = n;
    e->set.layout = layout;
    e->set.scale = s;
    e->set.orig_ctx = L;
    return enc_init(e, PE_FAMILY_ROPE);
}

static void check_vec(const float *got, const double *want, int n, const char *what) {
    char msg[160];
    for (int j = 0; j < n; j++) {
        snprintf(msg, sizeof msg, "%s [%d]", what, j);
        CHECK_NEAR(got[j], want[j], TOL_F * fmax(1.0, fabs(want[j])), msg);
    }
}

static void check_vec_f(const float *got, const float *want, int n, double tol, const char *what) {
    char msg[160];
    for (int j = 0; j < n; j++) {
        snprintf(msg, sizeof msg, "%s [%d]", what, j);
        CHECK_NEAR(got[j], want[j], tol * fmax(1.0, fabs(want[j])), msg);
    }
}

static double dotf(const float *a, const float *b, int n) {
    double s = 0;
    for (int j = 0; j < n; j++) s += (double)a[j] * b[j];
    return s;
}

static double normf(const float *a, int n) { return sqrt(dotf(a, a, n)); }

static void fill_x(float *x, int n) { for (int j = 0; j < n; j++) x[j] = (float)(j + 1); }

/* a deterministic, non-symmetric test vector */
static void fill_k(float *x, int n) { for (int j = 0; j < n; j++) x[j] = (float)(0.5 + 0.37 * ((j * 7) % 11) - 0.11 * j); }

/* θ_i = B^(−2i/n) — independent: §0 formula */
static double theta_ref(double B, int i, int n) { return pow(B, -2.0 * i / n); }

static const int PERM8[8] = {0, 2, 4, 6, 1, 3, 5, 7};   /* §2 permutation check: x[0,2,4,6,1,3,5,7] */

/* ---------------------------------------------------------------------------------------------- */
/* §2 default RoPE                                                                                */

static void test_rope_theta_table(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 64, 0, ROPE_INTERLEAVED, 0, 0)) return;
    static const struct { int i; double theta, lambda; } rows[] = {   /* §2 table, n = d = 64 */
        {0, 1.000000000000e+00, 6.283185}, {1, 7.498942093325e-01, 8.378762}, {2, 5.623413251903e-01, 11.173259},
        {15, 1.333521432163e-02, 471.172428}, {16, 1.000000000000e-02, 628.318531}, {31, 1.333521432163e-04, 47117.242780},
    };
    CHECK(e.n_pairs == 32, "n_pairs %d, want 32 (n defaults to head_dim)", e.n_pairs);
    CHECK(e.set.n_rot == 64, "n_rot %d, want 64", e.set.n_rot);
    CHECK(e.mscale == 1.0, "rope m = %g, want 1", e.mscale);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char msg[64];
        snprintf(msg, sizeof msg, "theta_%d", rows[r].i);
        CHECK_REL(e.theta[rows[r].i], rows[r].theta, REL_D, msg);
        snprintf(msg, sizeof msg, "lambda_%d (6 printed decimals)", rows[r].i);
        CHECK_NEAR(2 * M_PI / e.theta[rows[r].i], rows[r].lambda, 1e-6, msg);
    }
}

static void test_rope_apply_p3_interleaved(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 8, 0, ROPE_INTERLEAVED, 0, 0)) return;
    float x[8];
    fill_x(x, 8);
    e.ops->rotate(&e, 3, x, 1, NULL, 0);
    static const double want[8] = {-1.272232513, -1.838864985, 1.683928641, 4.707906576,
                                   4.817777168, 6.147277704, 6.975968536, 8.020963969};
    check_vec(x, want, 8, "interleaved p=3");
    /* the same through k instead of q */
    float k[8];
    fill_x(k, 8);
    e.ops->rotate(&e, 3, NULL, 0, k, 1);
    check_vec(k, want, 8, "interleaved p=3 via k");
}

static void test_rope_apply_p3_halfsplit(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 8, 0, ROPE_NEOX, 0, 0)) return;
    float x[8];
    fill_x(x, 8);
    e.ops->rotate(&e, 3, x, 1, NULL, 0);
    static const double want[8] = {-1.695592537, 0.137551738, 2.788681600, 3.975982036,
                                   -4.808842475, 6.323059348, 7.086836737, 8.011963982};
    check_vec(x, want, 8, "half-split p=3");
}

static void test_rope_permutation_check(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 8, 0, ROPE_NEOX, 0, 0)) return;
    float x[8], xp[8];
    fill_x(x, 8);
    for (int j = 0; j < 8; j++) xp[j] = x[PERM8[j]];
    e.ops->rotate(&e, 3, xp, 1, NULL, 0);
    static const double want[8] = {-1.272232513, 1.683928641, 4.817777168, 6.975968536,
                                   -1.838864985, 4.707906576, 6.147277704, 8.020963969};
    check_vec(xp, want, 8, "half-split on permuted x");
}

static const float SCORE_Q[8] = {0.5f, -1, 2, 0.25f, 1.5f, -0.5f, 0.75f, 1};
static const float SCORE_K[8] = {1, 0.5f, -0.5f, 2, 0.25f, 1, -1, 0.5f};

static double rope_score(const Encoding *e, const float *q0, const float *k0, int pq, int pk) {
    float q[8], k[8];
    memcpy(q, q0, sizeof q);
    memcpy(k, k0, sizeof k);
    e->ops->rotate(e, pq, q, 1, NULL, 0);
    e->ops->rotate(e, pk, NULL, 0, k, 1);
    return dotf(q, k, 8);
}

static void test_rope_relative_score(void) {
    Encoding il, nx;
    if (!rope_enc(&il, "rope", 8, 0, ROPE_INTERLEAVED, 0, 0)) return;
    if (!rope_enc(&nx, "rope", 8, 0, ROPE_NEOX, 0, 0)) return;
    const double want = -0.104598314062;   /* §2 relative-position check */
    CHECK_NEAR(rope_score(&il, SCORE_Q, SCORE_K, 7, 3), want, 2e-6, "interleaved score q@7 k@3");
    CHECK_NEAR(rope_score(&il, SCORE_Q, SCORE_K, 107, 103), want, 2e-6, "interleaved score q@107 k@103");
    float qp[8], kp[8];
    for (int j = 0; j < 8; j++) { qp[j] = SCORE_Q[PERM8[j]]; kp[j] = SCORE_K[PERM8[j]]; }
    CHECK_NEAR(rope_score(&nx, qp, kp, 7, 3), want, 2e-6, "half-split score on permuted q,k");
}

/* §18 pitfall 1: running half-split on vectors laid out for interleaved gives another score */
static void test_pitfall1_layout_mismatch(void) {
    Encoding il, nx;
    if (!rope_enc(&il, "rope", 8, 0, ROPE_INTERLEAVED, 0, 0)) return;
    if (!rope_enc(&nx, "rope", 8, 0, ROPE_NEOX, 0, 0)) return;
    double right = rope_score(&il, SCORE_Q, SCORE_K, 7, 3);
    double wrong = rope_score(&nx, SCORE_Q, SCORE_K, 7, 3);
    CHECK_NEAR(wrong, -1.565550322641, 2e-6, "half-split on un-permuted q,k (layout mismatch)");
    CHECK(fabs(right - wrong) > 1.0, "layouts must differ: interleaved %g, half-split %g", right, wrong);
}

static void test_rope_p1000(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 8, 0, ROPE_INTERLEAVED, 0, 0)) return;
    float x[8];
    fill_x(x, 8);
    e.ops->rotate(&e, 1000, x, 1, NULL, 0);
    static const double want[8] = {-1.091380005, 1.951637693, 4.612419181, 1.930178566,
                                   -0.931230980, -7.754534729, -2.949651737, 10.212715341};
    check_vec(x, want, 8, "interleaved p=1000");
}

/* §2 partial rotary vector and §18 pitfall 2 */
static void test_pitfall2_partial_rotary(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 8, 4, ROPE_NEOX, 0, 0)) return;
    CHECK(e.n_pairs == 2, "n_pairs %d, want n/2 = 2", e.n_pairs);
    /* exponent uses n = 4: θ = (1, 10000^(−1/2) = 0.01), angles at p=3 are (3, 0.03) */
    CHECK_REL(e.theta[0], 1.0, REL_D, "theta_0 (n=4)");
    CHECK_REL(e.theta[1], 0.01, REL_D, "theta_1 (n=4): exponent must use n, not d");
    float x[8];
    fill_x(x, 8);
    e.ops->rotate(&e, 3, x, 1, NULL, 0);
    static const double want[8] = {-1.413352521, 1.879118067, -2.828857482, 4.058191135, 5, 6, 7, 8};
    check_vec(x, want, 8, "partial rotary d=8 n=4 half-split p=3");
    /* pass-through dims are copied bit for bit; the NeoX partner of i is i + n/2 (not i + d/2) */
    for (int j = 4; j < 8; j++) CHECK(x[j] == (float)(j + 1), "pass-through dim %d changed: %g", j, x[j]);
    /* several heads: each head's pass-through dims survive, head 1 gets the same result as head 0 */
    float xx[16];
    fill_x(xx, 8);
    fill_x(xx + 8, 8);
    e.ops->rotate(&e, 3, xx, 2, NULL, 0);
    check_vec(xx + 8, want, 8, "partial rotary, second head");
    /* move_key (a K-shift) also leaves the pass-through dims alone */
    float k[8];
    fill_x(k, 8);
    e.ops->move_key(&e, &e, k, 1, 0, 1, 0, 3);
    check_vec(k, want, 8, "partial rotary via move_key 0->3");
}

/* ---------------------------------------------------------------------------------------------- */
/* §3 linear, §4 NTK                                                                              */

static void test_linear_table(void) {
    Encoding e;
    if (!rope_enc(&e, "linear", 64, 0, ROPE_INTERLEAVED, 4, 256)) return;
    CHECK_REL(e.theta[0], 2.500000000000e-01, REL_D, "linear s=4 theta'_0");
    CHECK_REL(e.theta[1], 1.874735523331e-01, REL_D, "linear s=4 theta'_1");
    CHECK_REL(e.theta[31], 3.333803580408e-05, REL_D, "linear s=4 theta'_31");
    CHECK(e.mscale == 1.0, "linear m = %g, want 1", e.mscale);
}

static void test_ntk_table(void) {
    static const struct { double alpha, base, t1, t31; } rows[] = {   /* §4, n = 64, B = 10000 */
        {2, 20452.228712, 7.333129507705e-01, 6.667607160817e-05},
        {4, 41829.365929, 7.170983281048e-01, 3.333803580408e-05},
        {8, 85550.375886, 7.012422344790e-01, 1.666901790204e-05},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char msg[64];
        snprintf(msg, sizeof msg, "pe_ntk_base alpha=%g", rows[r].alpha);
        CHECK_REL(pe_ntk_base(10000, rows[r].alpha, 64), rows[r].base, REL_D, msg);
        Encoding e;
        if (!rope_enc(&e, "ntk", 64, 0, ROPE_INTERLEAVED, rows[r].alpha, 256)) continue;
        snprintf(msg, sizeof msg, "ntk alpha=%g base_eff", rows[r].alpha);
        CHECK_REL(e.base_eff, rows[r].base, REL_D, msg);
        snprintf(msg, sizeof msg, "ntk alpha=%g theta'_0", rows[r].alpha);
        CHECK_REL(e.theta[0], 1.0, REL_D, msg);   /* highest frequency unchanged (§4 property) */
        snprintf(msg, sizeof msg, "ntk alpha=%g theta'_1", rows[r].alpha);
        CHECK_REL(e.theta[1], rows[r].t1, REL_D, msg);
        snprintf(msg, sizeof msg, "ntk alpha=%g theta'_31", rows[r].alpha);
        CHECK_REL(e.theta[31], rows[r].t31, REL_D, msg);
        /* §4 property: the lowest frequency is exactly θ_31/α */
        snprintf(msg, sizeof msg, "ntk alpha=%g theta'_31 = theta_31/alpha", rows[r].alpha);
        CHECK_REL(e.theta[31], 1.333521432163e-04 / rows[r].alpha, REL_D, msg);
        CHECK(e.mscale == 1.0, "ntk m = %g, want 1", e.mscale);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* §5 dynamic NTK                                                                                 */

static const struct { double s; int seq; double base, t31; } DYN_ROWS[] = {   /* §5, n=64, B=10000, L=256 */
    {2, 1024, 74534.830318, 1.905030617376e-05},
    {4, 1024, 141213.757398, 1.025785717049e-05},
    {8, 1024, 277354.264397, 5.334085728653e-06},
    {8, 257, 10322.741622, 1.293111691795e-04},
    {8, 512, 96610.543623, 1.481690480181e-05},
    {8, 4096, 1412446.462174, 1.102083828234e-06},
};
#define N_DYN (int)(sizeof DYN_ROWS / sizeof DYN_ROWS[0])

static void test_dynamic_base_formula(void) {
    char msg[80];
    for (int r = 0; r < N_DYN; r++) {
        snprintf(msg, sizeof msg, "pe_dynamic_base s=%g seq=%d", DYN_ROWS[r].s, DYN_ROWS[r].seq);
        CHECK_REL(pe_dynamic_base(10000, DYN_ROWS[r].s, DYN_ROWS[r].seq, 256, 64), DYN_ROWS[r].base, REL_D, msg);
    }
    /* "any s, seq ≤ 256 → 10000" */
    static const double ss[] = {1, 2, 4, 8, 16};
    static const int seqs[] = {1, 100, 255, 256};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 4; b++) {
            snprintf(msg, sizeof msg, "pe_dynamic_base s=%g seq=%d (<= L)", ss[a], seqs[b]);
            CHECK_NEAR(pe_dynamic_base(10000, ss[a], seqs[b], 256, 64), 10000.0, 0, msg);
        }
}

static void test_dynamic_retune_table(void) {
    char msg[80];
    for (int r = 0; r < N_DYN; r++) {
        Encoding e;
        if (!rope_enc(&e, "dynamic", 64, 0, ROPE_INTERLEAVED, DYN_ROWS[r].s, 256)) continue;
        /* before any retune: plain RoPE */
        snprintf(msg, sizeof msg, "dynamic s=%g initial theta'_31", DYN_ROWS[r].s);
        CHECK_REL(e.theta[31], 1.333521432163e-04, REL_D, msg);
        int changed = e.ops->retune(&e, DYN_ROWS[r].seq);
        CHECK(changed == 1, "retune(%d) from the initial state returned %d, want 1", DYN_ROWS[r].seq, changed);
        snprintf(msg, sizeof msg, "dynamic s=%g seq=%d base_eff", DYN_ROWS[r].s, DYN_ROWS[r].seq);
        CHECK_REL(e.base_eff, DYN_ROWS[r].base, REL_D, msg);
        snprintf(msg, sizeof msg, "dynamic s=%g seq=%d theta'_31", DYN_ROWS[r].s, DYN_ROWS[r].seq);
        CHECK_REL(e.theta[31], DYN_ROWS[r].t31, REL_D, msg);
        CHECK(e.mscale == 1.0, "dynamic m = %g, want 1", e.mscale);
    }
    /* "any s, seq ≤ 256 → B' = 10000, θ'_31 = 1.333521432163e-04" */
    static const int seqs[] = {1, 100, 256};
    for (int b = 0; b < 3; b++) {
        Encoding e;
        if (!rope_enc(&e, "dynamic", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
        e.ops->retune(&e, seqs[b]);
        snprintf(msg, sizeof msg, "dynamic s=8 seq=%d base_eff", seqs[b]);
        CHECK_REL(e.base_eff, 10000.0, REL_D, msg);
        snprintf(msg, sizeof msg, "dynamic s=8 seq=%d theta'_31", seqs[b]);
        CHECK_REL(e.theta[31], 1.333521432163e-04, REL_D, msg);
    }
}

/* §5 "How large is the stale-key error": p·(θ'_i(seq_old) − θ'_i(seq_new)), the largest over i.
   The spec's numbers are the unreduced angle differences (22.32 rad > 2π), so no reduction mod 2π. */
static void stale_case(int p, int seq_old, int seq_new, int want_i, double want_rad) {
    Encoding e;
    if (!rope_enc(&e, "dynamic", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    double t_old[PE_MAX_PAIRS];
    e.ops->retune(&e, seq_old);
    memcpy(t_old, e.theta, sizeof t_old);
    e.ops->retune(&e, seq_new);
    int best = -1;
    double best_d = 0;
    for (int i = 0; i < e.n_pairs; i++) {
        double d = fabs(p * (t_old[i] - e.theta[i]));
        if (d > best_d) { best_d = d; best = i; }
    }
    CHECK(best == want_i, "p=%d seq %d vs %d: largest angle difference at i=%d, want i=%d", p, seq_old, seq_new, best, want_i);
    char msg[80];
    snprintf(msg, sizeof msg, "stale-key angle difference p=%d seq %d vs %d (2 printed decimals)", p, seq_old, seq_new);
    CHECK_NEAR(best_d, want_rad, 0.005, msg);
}

static void test_pitfall8_dynamic_stale_key_error(void) {
    stale_case(200, 257, 1024, 3, 22.32);
    stale_case(1000, 1001, 4096, 2, 45.06);
}

/* §18 pitfall 8: exact mode (re-rotate on base change) and the reset rule */
static void test_pitfall8_dynamic_exact_and_reset(void) {
    Encoding e, old;
    if (!rope_enc(&e, "dynamic", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    double t0[PE_MAX_PAIRS];
    memcpy(t0, e.theta, sizeof t0);
    for (int i = 0; i < 32; i++) {
        char msg[48];
        snprintf(msg, sizeof msg, "dynamic initial theta_%d", i);
        CHECK_REL(t0[i], theta_ref(10000, i, 64), REL_D, msg);   /* independent: §5 "seq ≤ L is plain RoPE" */
    }
    /* a key written at p = 200 while seq = 256 (original base) */
    float k[64], fresh[64];
    fill_k(k, 64);
    fill_k(fresh, 64);
    e.ops->rotate(&e, 200, NULL, 0, k, 1);
    old = e;
    CHECK(e.ops->retune(&e, 1024) == 1, "retune to 1024 must report a change");
    CHECK(e.theta[31] != old.theta[31], "retune to 1024 did not change theta'");
    /* exact mode: move the key from the old parameters to the new ones at the same position */
    e.ops->move_key(&e, &old, k, 1, 0, 1, 200, 200);
    e.ops->rotate(&e, 200, NULL, 0, fresh, 1);
    check_vec_f(k, fresh, 64, 2e-6, "dynamic: re-rotated stale key vs fresh rotate under new base");
    /* reset rule: going back to a short length restores the original θ */
    e.ops->retune(&e, 100);
    for (int i = 0; i < 32; i++) {
        char msg[48];
        snprintf(msg, sizeof msg, "dynamic after reset theta_%d", i);
        CHECK_REL(e.theta[i], t0[i], 1e-15, msg);
    }
    CHECK_REL(e.base_eff, 10000.0, 1e-15, "dynamic after reset base_eff");
}

/* ---------------------------------------------------------------------------------------------- */
/* §6 YaRN                                                                                        */

static const double YARN_THETA[32] = {   /* §6.5 table, n=64, B=10000, s=8, L=256, β 32/1, ext 1 */
    1.000000000000e+00, 6.994205606274e-01, 4.866415314147e-01, 3.365462479286e-01,
    2.310895213200e-01, 1.573315247026e-01, 1.060128109831e-01, 7.052276804710e-02,
    4.615384615385e-02, 2.956313709868e-02, 1.838423563122e-02, 1.094788999286e-02,
    6.081303192631e-03, 2.964217132077e-03, 2.222849262549e-03, 1.666901790204e-03,
    1.250000000000e-03, 9.373677616656e-04, 7.029266564879e-04, 5.271206292857e-04,
    3.952847075210e-04, 2.964217132077e-04, 2.222849262549e-04, 1.666901790204e-04,
    1.250000000000e-04, 9.373677616656e-05, 7.029266564879e-05, 5.271206292857e-05,
    3.952847075210e-05, 2.964217132077e-05, 2.222849262549e-05, 1.666901790204e-05,
};
static const double YARN_M8 = 1.2079441541679836;    /* §6.5 m = 0.1 ln 8 + 1 */
static const double YARN_M8_SQ = 1.4591290795886054; /* §6.5 m² */

static void check_yarn_table(const Encoding *e, const char *what) {
    char msg[120];
    for (int i = 0; i < 32; i++) {
        snprintf(msg, sizeof msg, "%s: yarn theta'_%d", what, i);
        CHECK_REL(e->theta[i], YARN_THETA[i], REL_D, msg);
    }
    snprintf(msg, sizeof msg, "%s: yarn m", what);
    CHECK_REL(e->mscale, YARN_M8, 1e-12, msg);
}

static void test_yarn_corr_dims(void) {
    CHECK_REL(pe_yarn_corr_dim(64, 256, 32, 10000), 0.8392809490706284, 1e-12, "c(32)");
    CHECK_REL(pe_yarn_corr_dim(64, 256, 1, 10000), 12.880480775629875, 1e-12, "c(1)");
    CHECK(floor(pe_yarn_corr_dim(64, 256, 32, 10000)) == 0, "lo = floor(c(32)) must be 0");
    CHECK(ceil(pe_yarn_corr_dim(64, 256, 1, 10000)) == 13, "hi = ceil(c(1)) must be 13");
    /* small case: n = 8, printed with 4 decimals */
    CHECK_NEAR(pe_yarn_corr_dim(8, 256, 32, 10000), 0.1049, 5e-5, "c(32), n=8");
    CHECK_NEAR(pe_yarn_corr_dim(8, 256, 1, 10000), 1.6101, 5e-5, "c(1), n=8");
}

static void test_yarn_theta_table(void) {
    Encoding e;
    if (!rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    check_yarn_table(&e, "s=8 L=256");
    /* the w_i and θ'/θ columns, 6 printed decimals: θ'/θ = w + (1 − w)/s, so w = (r − 1/s)/(1 − 1/s) */
    for (int i = 0; i < 32; i++) {
        char msg[64];
        double r = e.theta[i] / theta_ref(10000, i, 64);
        double w = (r - 1.0 / 8) / (1 - 1.0 / 8);
        double w_want = i <= 13 ? 1 - i / 13.0 : 0;   /* §6.5: w_i = 1 − i/13 for i ≤ 13, else 0 */
        snprintf(msg, sizeof msg, "yarn w_%d", i);
        CHECK_NEAR(w, w_want, 1e-6, msg);
        snprintf(msg, sizeof msg, "yarn theta'_%d/theta_%d", i, i);
        CHECK_NEAR(r, w_want + (1 - w_want) / 8, 1e-6, msg);
    }
    CHECK_REL(e.mscale * e.mscale, YARN_M8_SQ, 1e-12, "yarn m^2");
    CHECK_REL(pe_yarn_mscale(8), YARN_M8, 1e-12, "pe_yarn_mscale(8)");
    CHECK_REL(pe_yarn_mscale(8) * pe_yarn_mscale(8), YARN_M8_SQ, 1e-12, "pe_yarn_mscale(8)^2");
}

static void test_yarn_cos_sin_p1000(void) {
    Encoding e;
    if (!rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    static const struct { int i; double angle, cm, sm; } rows[] = {   /* §6.5 at p = 1000 */
        {0, 1000, 0.679322518, 0.998824307},
        {6, 106.012810983, 0.840421557, -0.867652400},
        {13, 2.964217132, -1.188991708, 0.213137981},
        {31, 0.016669018, 1.207776341, 0.020134310},
    };
    /* x[2i] = 1, x[2i+1] = 0 for every pair: the rotated pair is (m cos φ_i, m sin φ_i) */
    float x[64] = {0};
    for (int i = 0; i < 32; i++) x[2 * i] = 1;
    e.ops->rotate(&e, 1000, x, 1, NULL, 0);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        int i = rows[r].i;
        char msg[64];
        snprintf(msg, sizeof msg, "yarn angle i=%d p=1000 (9 printed decimals)", i);
        CHECK_NEAR(1000 * e.theta[i], rows[r].angle, 1e-8, msg);
        snprintf(msg, sizeof msg, "yarn cos*m i=%d p=1000", i);
        CHECK_NEAR(x[2 * i], rows[r].cm, TOL_F * 2, msg);
        snprintf(msg, sizeof msg, "yarn sin*m i=%d p=1000", i);
        CHECK_NEAR(x[2 * i + 1], rows[r].sm, TOL_F * 2, msg);
    }
}

static void test_yarn_small_end_to_end(void) {
    static const double theta8[4] = {1, 0.05625, 0.00125, 0.000125};   /* §6.5 small case */
    static const double want_il[8] = {-1.318326097, 2.357469342, 4.885139818, 3.551568097,
                                      -4.973463518, 8.016952943, 7.184834680, 10.642355783};
    static const double want_nx[8] = {-4.314799018, 4.441540543, -6.881567550, 3.589276565,
                                      4.395436895, 6.215937644, 6.105203900, 10.190555437};
    for (int layout = 0; layout < 2; layout++) {
        Encoding e;
        if (!rope_enc(&e, "yarn", 8, 0, layout ? ROPE_NEOX : ROPE_INTERLEAVED, 8, 256)) continue;
        for (int i = 0; i < 4; i++) {
            char msg[48];
            snprintf(msg, sizeof msg, "yarn n=8 theta'_%d", i);
            CHECK_REL(e.theta[i], theta8[i], REL_D, msg);
        }
        CHECK_REL(e.mscale, YARN_M8, 1e-12, "yarn n=8 m");
        float x[8];
        fill_x(x, 8);
        e.ops->rotate(&e, 1000, x, 1, NULL, 0);
        check_vec(x, layout ? want_nx : want_il, 8, layout ? "yarn n=8 p=1000 half-split" : "yarn n=8 p=1000 interleaved");
    }
}

static void test_yarn_mscale_s2(void) {
    CHECK_REL(pe_yarn_mscale(2), 1.0693147180559945, 1e-12, "pe_yarn_mscale(2)");
    Encoding e;
    if (!rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 2, 256)) return;
    CHECK_REL(e.mscale, 1.0693147180559945, 1e-12, "yarn s=2 encoding m");
    /* §6.1: g(s) = 1 for s ≤ 1 */
    CHECK(pe_yarn_mscale(1) == 1.0, "pe_yarn_mscale(1) = %g, want 1", pe_yarn_mscale(1));
    CHECK(pe_yarn_mscale(0.5) == 1.0, "pe_yarn_mscale(0.5) = %g, want 1", pe_yarn_mscale(0.5));
}

/* §18 pitfall 6: the magnitude is applied once (logits × m²), and an explicit factor, 1.0 included,
   overrides the default */
static void test_pitfall6_yarn_magnitude_once(void) {
    Encoding e, unit;
    if (!rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    enc_prepare(&unit, "yarn", 64);
    unit.set.scale = 8;
    unit.set.orig_ctx = 256;
    unit.set.yarn_attn = 1.0;
    if (!enc_init(&unit, PE_FAMILY_ROPE)) return;
    CHECK(unit.mscale == 1.0, "explicit yarn_attn 1.0 gave m = %.17g, want exactly 1", unit.mscale);
    for (int i = 0; i < 32; i++)
        CHECK(unit.theta[i] == e.theta[i], "yarn_attn must not change theta'_%d", i);
    float q[64], k[64], q1[64], k1[64];
    fill_x(q, 64);
    fill_k(k, 64);
    memcpy(q1, q, sizeof q);
    memcpy(k1, k, sizeof k);
    e.ops->rotate(&e, 900, q, 1, NULL, 0);
    e.ops->rotate(&e, 700, NULL, 0, k, 1);
    unit.ops->rotate(&unit, 900, q1, 1, NULL, 0);
    unit.ops->rotate(&unit, 700, NULL, 0, k1, 1);
    double s_m = dotf(q, k, 64), s_1 = dotf(q1, k1, 64);
    CHECK(fabs(s_1) > 1, "degenerate unscaled score %g", s_1);
    CHECK_REL(s_m / s_1, YARN_M8_SQ, 1e-6, "yarn score / unscaled-rotation score = m^2");
    /* the norm of one rotated vector grows by m exactly once */
    float v[64];
    fill_k(v, 64);
    double n0 = normf(v, 64);
    e.ops->rotate(&e, 123, v, 1, NULL, 0);
    CHECK_REL(normf(v, 64) / n0, YARN_M8, 1e-6, "rotate multiplies the norm by m");
    /* another explicit value is honoured too */
    Encoding other;
    enc_prepare(&other, "yarn", 64);
    other.set.scale = 8;
    other.set.orig_ctx = 256;
    other.set.yarn_attn = 1.3;
    if (enc_init(&other, PE_FAMILY_ROPE)) CHECK_REL(other.mscale, 1.3, 1e-15, "explicit yarn_attn 1.3");
}

/* §18 pitfall 7: YaRN parameters */
static void test_pitfall7_yarn_parameters(void) {
    Encoding e;
    /* L comes from orig_ctx (original_context_length), not from the run or the (extended) trained ctx */
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    e.model.train_ctx = 2048;   /* an extended max_position_embeddings */
    e.model.run_ctx = 2048;
    if (enc_init(&e, PE_FAMILY_ROPE)) check_yarn_table(&e, "orig_ctx 256, train_ctx 2048, run_ctx 2048");
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    e.model.run_ctx = 8192;
    if (enc_init(&e, PE_FAMILY_ROPE)) check_yarn_table(&e, "explicit s=8, run_ctx 8192");
    /* an explicit factor is not overridden by ctx/L (here 4096/256 = 16) */
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    e.model.run_ctx = 4096;
    if (enc_init(&e, PE_FAMILY_ROPE)) {
        check_yarn_table(&e, "explicit s=8 with ctx/L = 16");
        CHECK(e.set.scale == 8, "explicit scale overridden: %g", e.set.scale);
    }
    /* orig_ctx unset: L = context_length (§6.2) */
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.model.train_ctx = 256;
    if (enc_init(&e, PE_FAMILY_ROPE)) check_yarn_table(&e, "orig_ctx unset, train_ctx 256");
    /* β = 0 counts as unset: 32 / 1 */
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    e.set.beta_fast = 0;
    e.set.beta_slow = 0;
    if (enc_init(&e, PE_FAMILY_ROPE)) check_yarn_table(&e, "beta 0/0 = unset");
    /* explicit 32 / 1 gives the same */
    enc_prepare(&e, "yarn", 64);
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    e.set.beta_fast = 32;
    e.set.beta_slow = 1;
    if (enc_init(&e, PE_FAMILY_ROPE)) check_yarn_table(&e, "beta 32/1 explicit");
    /* no scale: s = run_ctx / orig_ctx = 2048/256 = 8 */
    enc_prepare(&e, "yarn", 64);
    e.set.orig_ctx = 256;
    e.model.run_ctx = 2048;
    if (enc_init(&e, PE_FAMILY_ROPE)) {
        check_yarn_table(&e, "no scale, run_ctx 2048 / L 256");
        CHECK(e.set.scale == 8, "resolved scale %g, want 8", e.set.scale);
    }
    /* no scale, run_ctx = L (and below): s = 1, YaRN is exactly the identity (§6.2) */
    static const int ctxs[] = {256, 100};
    for (int c = 0; c < 2; c++) {
        enc_prepare(&e, "yarn", 64);
        e.set.orig_ctx = 256;
        e.model.run_ctx = ctxs[c];
        if (!enc_init(&e, PE_FAMILY_ROPE)) continue;
        CHECK(e.mscale == 1.0, "s=1 (run_ctx %d): m = %.17g, want 1", ctxs[c], e.mscale);
        for (int i = 0; i < 32; i++) {
            char msg[64];
            snprintf(msg, sizeof msg, "s=1 (run_ctx %d) theta'_%d = theta_%d", ctxs[c], i, i);
            CHECK_REL(e.theta[i], theta_ref(10000, i, 64), 1e-15, msg);   /* a few ulps at most */
        }
    }
}

/* §18 pitfall 16: with -pe yarn and no scale, θ' depends on -ctx */
static void test_pitfall16_yarn_depends_on_ctx(void) {
    Encoding a, b;
    enc_prepare(&a, "yarn", 64);
    a.set.orig_ctx = 256;
    a.model.run_ctx = 1024;
    enc_prepare(&b, "yarn", 64);
    b.set.orig_ctx = 256;
    b.model.run_ctx = 2048;
    if (!enc_init(&a, PE_FAMILY_ROPE) || !enc_init(&b, PE_FAMILY_ROPE)) return;
    CHECK(a.theta[31] != b.theta[31], "run_ctx 1024 and 2048 gave the same theta'_31 %g", a.theta[31]);
    /* independent: for i ≥ hi = 13 (hi does not depend on s), θ'_i = θ_i / s with s = ctx/L */
    CHECK_REL(a.theta[31], theta_ref(10000, 31, 64) / 4, REL_D, "run_ctx 1024: theta'_31 = theta_31/4");
    CHECK_REL(b.theta[31], 1.666901790204e-05, REL_D, "run_ctx 2048: theta'_31 (§6.5 table)");
    CHECK_REL(a.mscale, 0.1 * log(4) + 1, 1e-12, "run_ctx 1024: m = g(4)");
    CHECK(a.theta[0] == b.theta[0], "theta'_0 (pure extrapolation) must not depend on ctx");
}

/* ---------------------------------------------------------------------------------------------- */
/* §7 Llama 3                                                                                     */

static void test_llama31_table(void) {
    Encoding r, e;
    enc_prepare(&r, "rope", 128);
    r.set.rope_base = 500000;
    if (!enc_init(&r, PE_FAMILY_ROPE)) return;
    enc_prepare(&e, "llama3", 128);
    e.set.rope_base = 500000;
    e.set.scale = 8;
    e.set.orig_ctx = 8192;
    e.model.train_ctx = 131072;
    e.model.run_ctx = 131072;
    if (!enc_init(&e, PE_FAMILY_ROPE)) return;
    static const struct { int i; double theta, theta_p, sigma, div; } rows[] = {   /* §7, σ < 0: "–" */
        {28, 3.211445994753e-03, 3.211445994753e-03, -1, 1},
        {29, 2.616099252925e-03, 2.166570763503e-03, 0.803621042, 1.207483871},
        {30, 2.131119536912e-03, 1.371893567761e-03, 0.592849295, 1.553414629},
        {31, 1.736046702177e-03, 8.567514129196e-04, 0.421150997, 2.026313206},
        {32, 1.414213562373e-03, 5.248461609930e-04, 0.281282605, 2.694529688},
        {33, 1.152042740263e-03, 3.126937503841e-04, 0.167343402, 3.684252528},
        {34, 9.384738703574e-04, 1.785078127680e-04, 0.074526564, 5.257326589},
        {35, 7.644969883172e-04, 9.556212353965e-05, -1, 8},
        {63, 2.455140791132e-06, 3.068925988915e-07, -1, 8},
    };
    char msg[64];
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        int i = rows[k].i;
        snprintf(msg, sizeof msg, "llama3.1 theta_%d (rope B=500000)", i);
        CHECK_REL(r.theta[i], rows[k].theta, REL_D, msg);
        snprintf(msg, sizeof msg, "llama3.1 theta'_%d", i);
        CHECK_REL(e.theta[i], rows[k].theta_p, REL_D, msg);
        snprintf(msg, sizeof msg, "llama3.1 divisor c_%d (9 printed decimals)", i);
        CHECK_NEAR(r.theta[i] / e.theta[i], rows[k].div, 1e-9 * fmax(1, rows[k].div), msg);
        if (rows[k].sigma >= 0) {   /* θ'/θ = (1−σ)/s + σ  ⇒  σ = (θ'/θ − 1/s)/(1 − 1/s) */
            snprintf(msg, sizeof msg, "llama3.1 sigma_%d (9 printed decimals)", i);
            CHECK_NEAR((e.theta[i] / r.theta[i] - 0.125) / 0.875, rows[k].sigma, 1e-9, msg);
        }
    }
    /* bands: 0–28 high (unchanged), 35–63 low (÷8) */
    for (int i = 0; i <= 28; i++) CHECK(e.theta[i] == r.theta[i], "llama3.1 high band theta'_%d changed", i);
    for (int i = 35; i < 64; i++) {
        snprintf(msg, sizeof msg, "llama3.1 low band theta'_%d = theta/8", i);
        CHECK_REL(e.theta[i], r.theta[i] / 8, 1e-15, msg);
    }
    CHECK(e.mscale == 1.0, "llama3 m = %g, want 1", e.mscale);
}

static void test_llama3_tiny_table(void) {
    Encoding e;
    if (!rope_enc(&e, "llama3", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    static const struct { int i; double theta_p, ratio, sigma; } rows[] = {   /* §7 tiny model */
        {9, 5.432798304576e-02, 0.724475298, 0.685114626},
        {10, 2.820678961818e-02, 0.501595532, 0.430394894},
        {11, 1.410403116306e-02, 0.334459286, 0.239382042},
        {12, 6.613106317248e-03, 0.209124784, 0.096142610},
        {13, 2.964217132077e-03, 0.125, -1},
    };
    char msg[64];
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        int i = rows[k].i;
        double ratio = e.theta[i] / theta_ref(10000, i, 64);
        snprintf(msg, sizeof msg, "llama3 tiny theta'_%d", i);
        CHECK_REL(e.theta[i], rows[k].theta_p, REL_D, msg);
        snprintf(msg, sizeof msg, "llama3 tiny theta'_%d/theta_%d (9 printed decimals)", i, i);
        CHECK_NEAR(ratio, rows[k].ratio, 1e-9, msg);
        if (rows[k].sigma >= 0) {
            snprintf(msg, sizeof msg, "llama3 tiny sigma_%d (9 printed decimals)", i);
            CHECK_NEAR((ratio - 0.125) / 0.875, rows[k].sigma, 1e-9, msg);
        }
    }
    /* bands: high 0–8 unchanged, low 13–31 ÷8 */
    for (int i = 0; i <= 8; i++) {
        snprintf(msg, sizeof msg, "llama3 tiny high band theta'_%d", i);
        CHECK_REL(e.theta[i], theta_ref(10000, i, 64), 1e-15, msg);
    }
    for (int i = 13; i < 32; i++) {
        snprintf(msg, sizeof msg, "llama3 tiny low band theta'_%d", i);
        CHECK_REL(e.theta[i], theta_ref(10000, i, 64) / 8, 1e-15, msg);
    }
}

/* §1.4 frequency-divisor hook: θ'_i = θ_i / c_i. The llama3.1 divisors of §7 (as float32, as in
   rope_freqs.weight) on plain rope give the llama3 θ' to float precision. */
static void test_freq_divisor_hook(void) {
    float c[64];
    for (int i = 0; i < 64; i++) c[i] = i <= 28 ? 1.0f : 8.0f;   /* §7: high band 1, low band 8 */
    c[29] = 1.207483871f; c[30] = 1.553414629f; c[31] = 2.026313206f;
    c[32] = 2.694529688f; c[33] = 3.684252528f; c[34] = 5.257326589f;
    Encoding e;
    enc_prepare(&e, "rope", 128);
    e.set.rope_base = 500000;
    e.model.freq_div = c;
    e.model.n_freq_div = 64;
    if (!enc_init(&e, PE_FAMILY_ROPE)) return;
    static const struct { int i; double theta_p; } rows[] = {
        {28, 3.211445994753e-03}, {29, 2.166570763503e-03}, {30, 1.371893567761e-03}, {31, 8.567514129196e-04},
        {32, 5.248461609930e-04}, {33, 3.126937503841e-04}, {34, 1.785078127680e-04}, {35, 9.556212353965e-05},
        {63, 3.068925988915e-07},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        char msg[64];
        snprintf(msg, sizeof msg, "rope + rope_freqs theta'_%d (float divisors)", rows[k].i);
        CHECK_REL(e.theta[rows[k].i], rows[k].theta_p, 2e-7, msg);
    }
    /* a divisor vector of the wrong length is refused */
    Encoding bad;
    enc_prepare(&bad, "rope", 128);
    bad.model.freq_div = c;
    bad.model.n_freq_div = 63;
    char err[256] = "";
    CHECK(encoding_init(&bad, PE_FAMILY_ROPE, err) == -1, "rope_freqs of length 63 for n/2 = 64 accepted");
}

/* ---------------------------------------------------------------------------------------------- */
/* §1.5 and §18 pitfall 5: K-shift                                                                */

static void test_rotation_composition(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 64, 0, ROPE_INTERLEAVED, 0, 0)) return;
    float a[64], b[64], c[64];
    fill_k(a, 64);
    fill_k(b, 64);
    fill_k(c, 64);
    /* by 10, then by −4 ... */
    e.ops->move_key(&e, &e, a, 1, 0, 1, 0, 10);
    e.ops->move_key(&e, &e, a, 1, 0, 1, 10, 6);
    /* ... equals by 6 (pure move) and equals a fresh rotate at 6 */
    e.ops->move_key(&e, &e, b, 1, 0, 1, 0, 6);
    e.ops->rotate(&e, 6, NULL, 0, c, 1);
    check_vec_f(a, b, 64, 2e-6, "rotate 10 then -4 vs 6");
    check_vec_f(a, c, 64, 2e-6, "rotate 10 then -4 vs rotate at 6");
    /* and starting from a key rotated at 10 by the write path */
    float d[64];
    fill_k(d, 64);
    e.ops->rotate(&e, 10, NULL, 0, d, 1);
    e.ops->move_key(&e, &e, d, 1, 0, 1, 10, 6);
    check_vec_f(d, c, 64, 2e-6, "key written at 10, shifted by -4, vs rotate at 6");
}

static void test_pitfall5_shift_accumulates(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 64, 0, ROPE_INTERLEAVED, 0, 0)) return;
    float a[64], b[64], c[64];
    fill_k(a, 64);
    fill_k(b, 64);
    fill_k(c, 64);
    e.ops->rotate(&e, 50, NULL, 0, a, 1);
    e.ops->rotate(&e, 50, NULL, 0, b, 1);
    e.ops->rotate(&e, 42, NULL, 0, c, 1);
    e.ops->move_key(&e, &e, a, 1, 0, 1, 50, 47);   /* −3 */
    e.ops->move_key(&e, &e, a, 1, 0, 1, 47, 42);   /* −5 */
    e.ops->move_key(&e, &e, b, 1, 0, 1, 50, 42);   /* −8 */
    check_vec_f(a, b, 64, 2e-6, "shift -3 then -5 vs shift -8");
    check_vec_f(a, c, 64, 2e-6, "shift -3 then -5 vs rotate at 42");
}

static void test_pitfall5_shift_sign(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 64, 0, ROPE_INTERLEAVED, 0, 0)) return;
    float k[64], want[64], wrong[64];
    fill_k(k, 64);
    fill_k(want, 64);
    fill_k(wrong, 64);
    e.ops->rotate(&e, 10, NULL, 0, k, 1);
    e.ops->move_key(&e, &e, k, 1, 0, 1, 10, 4);     /* Δ = new − old = −6 */
    e.ops->rotate(&e, 4, NULL, 0, want, 1);
    e.ops->rotate(&e, 16, NULL, 0, wrong, 1); /* what the opposite sign would give */
    check_vec_f(k, want, 64, 2e-6, "move 10->4 vs rotate at 4");
    double diff = 0;
    for (int j = 0; j < 64; j++) diff = fmax(diff, fabs(k[j] - wrong[j]));
    CHECK(diff > 0.1, "move 10->4 is indistinguishable from a rotation to 16 (max diff %g)", diff);
    /* a division-style edit ⌊p/G⌋ with Δ = ⌊p/G⌋ − p, negative: p = 37, G = 4 → 9 */
    float d[64], dw[64];
    fill_k(d, 64);
    fill_k(dw, 64);
    e.ops->rotate(&e, 37, NULL, 0, d, 1);
    e.ops->move_key(&e, &e, d, 1, 0, 1, 37, 37 / 4);
    e.ops->rotate(&e, 9, NULL, 0, dw, 1);
    check_vec_f(d, dw, 64, 2e-6, "division edit 37 -> 9 vs rotate at 9");
}

static void test_pitfall5_pure_rotation_yarn(void) {
    Encoding e;
    if (!rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 8, 256)) return;
    float k[64];
    fill_k(k, 64);
    double n0 = normf(k, 64);
    e.ops->rotate(&e, 300, NULL, 0, k, 1);
    double n1 = normf(k, 64);
    CHECK_REL(n1 / n0, YARN_M8, 1e-6, "rotate multiplies the key norm by m");
    for (int t = 0; t < 5; t++) e.ops->move_key(&e, &e, k, 1, 0, 1, 300 - 7 * t, 300 - 7 * (t + 1));
    CHECK_REL(normf(k, 64) / n1, 1.0, 1e-6, "5 move_key calls must keep the norm (pure rotation, no m)");
}

/* after move_key the key equals a fresh rotate at the new position, with the same θ' (and m) */
static void same_theta_case(Encoding *e, const char *what) {
    int d = e->model.head_dim;
    float k[256], want[256];
    fill_k(k, d);
    fill_k(want, d);
    e->ops->rotate(e, 1000, NULL, 0, k, 1);
    e->ops->move_key(e, e, k, 1, 0, 1, 1000, 377);
    e->ops->rotate(e, 377, NULL, 0, want, 1);
    check_vec_f(k, want, d, 3e-6, what);
}

static void test_pitfall5_shift_same_theta(void) {
    Encoding e;
    if (rope_enc(&e, "yarn", 64, 0, ROPE_INTERLEAVED, 8, 256)) same_theta_case(&e, "yarn: move 1000->377 vs rotate at 377");
    if (rope_enc(&e, "yarn", 64, 0, ROPE_NEOX, 8, 256)) same_theta_case(&e, "yarn neox: move 1000->377 vs rotate at 377");
    enc_prepare(&e, "llama3", 128);
    e.set.rope_base = 500000;
    e.set.scale = 8;
    e.set.orig_ctx = 8192;
    if (enc_init(&e, PE_FAMILY_ROPE)) same_theta_case(&e, "llama3: move 1000->377 vs rotate at 377");
    /* a model with frequency divisors (§1.4): independent θ'_i = θ_i / c_i */
    static const float c[4] = {1, 2, 4, 8};
    enc_prepare(&e, "rope", 8);
    e.model.freq_div = c;
    e.model.n_freq_div = 4;
    if (enc_init(&e, PE_FAMILY_ROPE)) {
        static const double want[4] = {1, 0.05, 0.0025, 0.000125};   /* (1, 0.1, 0.01, 0.001) / c */
        for (int i = 0; i < 4; i++) {
            char msg[48];
            snprintf(msg, sizeof msg, "rope + divisors theta'_%d", i);
            CHECK_REL(e.theta[i], want[i], REL_D, msg);
        }
        same_theta_case(&e, "rope + freq divisors: move 1000->377 vs rotate at 377");
    }
    /* partial rotary yarn: the shift covers only the rotary dims */
    if (rope_enc(&e, "yarn", 64, 32, ROPE_NEOX, 8, 256)) same_theta_case(&e, "yarn partial n=32: move vs rotate");
}

/* §16 / §18 pitfall 9: angles computed in double at large positions */
static void test_pitfall9_large_position_angles(void) {
    Encoding e;
    if (!rope_enc(&e, "rope", 64, 0, ROPE_INTERLEAVED, 0, 0)) return;
    const double exact = 24571.783557197, f32 = 24571.783203125;   /* §16 */
    CHECK_NEAR(32767 * e.theta[1], exact, 1e-8, "angle at p=32767, i=1");
    /* the test can tell the exact angle from the float32 one */
    CHECK(fabs(cos(exact) - cos(f32)) > 1e-5 || fabs(sin(exact) - sin(f32)) > 1e-5, "test vector not discriminating");
    float x[64] = {0};
    x[2] = 1;   /* pair 1 = (1, 0) */
    e.ops->rotate(&e, 32767, x, 1, NULL, 0);
    CHECK_NEAR(x[2], cos(exact), 1e-6, "cos at p=32767 i=1");   /* independent: cos/sin of the §16 angle */
    CHECK_NEAR(x[3], sin(exact), 1e-6, "sin at p=32767 i=1");
    /* a position near the int32 limit still gives finite, unit-norm pairs */
    float y[64] = {0};
    y[62] = 1;
    e.ops->rotate(&e, 2147483000, y, 1, NULL, 0);
    CHECK(isfinite(y[62]) && isfinite(y[63]), "non-finite rotation at p=2147483000");
    CHECK_NEAR(y[62] * (double)y[62] + y[63] * (double)y[63], 1.0, 1e-6, "unit norm at p=2147483000");
}

/* pe_rotation (vectorised cos and sin, no libm) against libm's cos and sin of the same double angle, from
   the angles of a first pair (θ = 1) up to the int32 limit down to the slowest pair's, and for moves
   between two bases (dynamic NTK's re-rotation) */
static void test_rotation_vs_libm(void) {
    enum { N = 64 };
    double theta[N], theta2[N], c[N], s[N], worst = 0;
    for (int i = 0; i < N; i++) {
        theta[i] = pow(10000.0, -2.0 * i / N);
        theta2[i] = pow(31622.0, -2.0 * i / N);
    }
    const int positions[] = {0, 1, 2, 3, 5, 100, 255, 256, 4095, 32767, 131071, 1 << 20, 123456789, 2147483000};
    for (size_t k = 0; k < sizeof positions / sizeof *positions; k++) {
        int p = positions[k];
        for (int move = 0; move < 2; move++) {   /* 0: from angle 0; 1: from p·θ2 (a base change at p) */
            pe_rotation(c, s, N, theta, p, move ? theta2 : theta, move ? p : 0);
            for (int i = 0; i < N; i++) {
                double x = (double)p * theta[i] - (move ? (double)p * theta2[i] : 0.0);
                double err = fmax(fabs(c[i] - cos(x)), fabs(s[i] - sin(x)));   /* independent: libm */
                worst = err > worst ? err : worst;
            }
        }
    }
    CHECK(worst <= 1e-15, "pe_rotation differs from libm's cos/sin by %.3g (> 1e-15)", worst);
}

/* ---------------------------------------------------------------------------------------------- */
/* §10 ALiBi                                                                                      */

static void check_slopes(const float *got, const double *want, int n, const char *what) {
    char msg[80];
    for (int h = 0; h < n; h++) {
        snprintf(msg, sizeof msg, "%s slope[%d]", what, h);
        CHECK_REL(got[h], want[h], 1e-7, msg);   /* slopes are float in the interface */
    }
}

static void test_alibi_slopes(void) {
    static const double h6[6] = {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
    static const double h8[8] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625};
    static const double h12[12] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
                                   0.7071067812, 0.3535533906, 0.1767766953, 0.08838834765};
    float s[16];
    pe_alibi_slopes(6, 8, s);
    check_slopes(s, h6, 6, "H=6");
    pe_alibi_slopes(8, 8, s);
    check_slopes(s, h8, 8, "H=8");
    pe_alibi_slopes(12, 8, s);
    check_slopes(s, h12, 12, "H=12");
    /* H = 8, max_bias 16: 0.25, 0.0625, …, 1.525878906e−05; the elided middle from the §10 formula
       slope_h = m0^(h+1), m0 = 2^(−16/8) (independent) */
    double h8b[8];
    for (int h = 0; h < 8; h++) h8b[h] = pow(0.25, h + 1);
    CHECK_REL(h8b[7], 1.525878906e-05, 1e-9, "spec value of the last H=8 max_bias 16 slope");
    pe_alibi_slopes(8, 16, s);
    check_slopes(s, h8b, 8, "H=8 max_bias 16");
    /* through the encoding (max_bias unset = 8) */
    Encoding e;
    enc_prepare(&e, "alibi", 8);
    e.model.n_heads = 6;
    if (enc_init(&e, PE_FAMILY_ALIBI)) check_slopes(e.slopes, h6, 6, "encoding H=6");
    enc_prepare(&e, "alibi", 8);
    e.model.n_heads = 12;
    if (enc_init(&e, PE_FAMILY_ALIBI)) check_slopes(e.slopes, h12, 12, "encoding H=12");
    enc_prepare(&e, "alibi", 8);
    e.model.n_heads = 8;
    e.set.alibi_max_bias = 16;
    if (enc_init(&e, PE_FAMILY_ALIBI)) check_slopes(e.slopes, h8b, 8, "encoding H=8 max_bias 16");
}

static void test_alibi_bias_rows(void) {
    Encoding e;
    enc_prepare(&e, "alibi", 8);
    e.model.n_heads = 4;
    if (!enc_init(&e, PE_FAMILY_ALIBI)) return;
    static const double sl[4] = {0.25, 0.0625, 0.015625, 0.00390625};
    check_slopes(e.slopes, sl, 4, "H=4");
    static const int pk[6] = {0, 1, 2, 3, 4, 5};
    static const double h0[6] = {-1.25, -1.0, -0.75, -0.5, -0.25, 0};
    static const double h3[6] = {-0.01953125, -0.015625, -0.01171875, -0.0078125, -0.00390625, 0};
    float sc[6] = {0};
    e.ops->add_bias(&e, 0, 5, pk, 6, sc);
    for (int j = 0; j < 6; j++) CHECK(sc[j] == (float)h0[j], "H=4 head 0 q=5 k=%d: bias %.9g want %.9g", j, sc[j], h0[j]);
    memset(sc, 0, sizeof sc);
    e.ops->add_bias(&e, 3, 5, pk, 6, sc);
    for (int j = 0; j < 6; j++) CHECK(sc[j] == (float)h3[j], "H=4 head 3 q=5 k=%d: bias %.9g want %.9g", j, sc[j], h3[j]);
    /* H = 8, head 0, q 10, k 7: −1.5 */
    enc_prepare(&e, "alibi", 8);
    e.model.n_heads = 8;
    if (!enc_init(&e, PE_FAMILY_ALIBI)) return;
    int k7 = 7;
    float s1 = 0;
    e.ops->add_bias(&e, 0, 10, &k7, 1, &s1);
    CHECK(s1 == -1.5f, "H=8 head 0 q=10 k=7: bias %g want -1.5", s1);
    /* keys are stored unrotated: a position edit needs no key re-encoding (§10 KV, §14.5) */
    CHECK(e.ops->move_key == NULL && e.ops->rotate == NULL, "ALiBi must not rotate or re-encode keys");
    CHECK(e.ops->shiftable == 1, "ALiBi positions can be edited");
}

static void expect_init_error(Encoding *e, PeFamily fam, const char *what);

/* ALiBi + PI (study.md: "distances divided by s"): at s = 4 the bias of distance 4d is ALiBi's bias of
   distance d; s defaults to run ctx / L (at least 1), -scale (set.scale) wins, and a run within L is
   plain ALiBi */
static void test_alibi_pi(void) {
    Encoding e;
    static const int pk[3] = {0, 4, 8};
    static const double want[3] = {-0.5, -0.25, 0};   /* head 0 of 4: slope 1/4, distances 8, 4, 0 over s = 4 */
    for (int k = 0; k < 2; k++) {
        enc_prepare(&e, "alibi-pi", 8);
        e.model.n_heads = 4;
        if (k == 0) e.model.run_ctx = 1024;   /* s = 1024 / 256 */
        else e.set.scale = 4;
        if (!enc_init(&e, PE_FAMILY_ALIBI)) return;
        CHECK(e.set.scale == 4, "alibi-pi %s: s = %g, want 4", k ? "-scale 4" : "at 4L", e.set.scale);
        float sc[3] = {0};
        e.ops->add_bias(&e, 0, 8, pk, 3, sc);
        for (int j = 0; j < 3; j++) CHECK(sc[j] == (float)want[j], "alibi-pi s=4 q=8 k=%d: bias %.9g want %.9g", pk[j], sc[j], want[j]);
    }
    enc_prepare(&e, "alibi-pi", 8);
    e.model.n_heads = 4;
    e.model.run_ctx = 128;
    if (!enc_init(&e, PE_FAMILY_ALIBI)) return;
    static const double sl[4] = {0.25, 0.0625, 0.015625, 0.00390625};
    CHECK(e.set.scale == 1, "alibi-pi within L: s = %g, want 1", e.set.scale);
    check_slopes(e.slopes, sl, 4, "alibi-pi within L");
    enc_prepare(&e, "alibi-pi", 8);
    expect_init_error(&e, PE_FAMILY_ROPE, "alibi-pi on a RoPE model");
}

/* NoPE + log-n temperature (study.md §11.3): queries at p >= L scaled by ln(p+1)/ln(L), keys never;
   at L = 256 the factor at p = 511 is ln 512 / ln 256 = 9/8 and at p = 1023 it is 10/8 */
static void test_none_logn(void) {
    static const struct { int pos; double f; } want[] = {{0, 1}, {254, 1}, {255, 1}, {256, log(257.0) / log(256.0)}, {511, 1.125}, {1023, 1.25}};
    for (int i = 0; i < 6; i++) CHECK_REL(pe_logn_factor(want[i].pos, 256), want[i].f, REL_D, "logn factor");
    Encoding e;
    enc_prepare(&e, "none-logn", 4);
    e.model.n_heads = 2;
    if (!enc_init(&e, PE_FAMILY_NONE)) return;
    float q[8], k[4], q0[8], k0[4];
    fill_x(q0, 8);
    fill_k(k0, 4);
    static const int at[] = {100, 1023, -1023};   /* -p: the backward pass's adjoint call */
    static const double f[] = {1, 1.25, 1.25};
    for (int c = 0; c < 3; c++) {
        memcpy(q, q0, sizeof q);
        memcpy(k, k0, sizeof k);
        e.ops->rotate(&e, at[c], q, 2, k, 1);
        for (int j = 0; j < 8; j++) CHECK(q[j] == (float)(q0[j] * (float)f[c]), "logn at %d: q[%d] = %g, want %g", at[c], j, q[j], q0[j] * f[c]);
        CHECK(!memcmp(k, k0, sizeof k), "logn at %d changed a key", at[c]);
    }
    enc_prepare(&e, "none-logn", 4);
    expect_init_error(&e, PE_FAMILY_ROPE, "none-logn on a RoPE model");
    enc_prepare(&e, "none-logn", 4);
    e.model.train_ctx = 0;
    expect_init_error(&e, PE_FAMILY_NONE, "none-logn without a training length");
}

/* §18 pitfall 10 */
static void test_pitfall10_alibi(void) {
    float s[16];
    /* head 0 slope is 2^(−8/H), not 1 (independent: §10 formula) */
    static const int Hs[] = {1, 2, 4, 8, 16};
    for (int k = 0; k < 5; k++) {
        pe_alibi_slopes(Hs[k], 8, s);
        char msg[48];
        snprintf(msg, sizeof msg, "H=%d head 0 slope = 2^(-8/H)", Hs[k]);
        CHECK_REL(s[0], pow(2, -8.0 / Hs[k]), 1e-7, msg);
    }
    /* non-power-of-2 order: H=6 is not the paper-text geometric sequence 0.39685, 0.15749, 0.0625 … */
    pe_alibi_slopes(6, 8, s);
    CHECK(fabs(s[0] - 0.39685) > 0.1 && fabs(s[1] - 0.15749) > 0.05, "H=6 slopes follow the paper-text sequence");
    CHECK(s[4] == 0.5f && s[5] == 0.125f, "H=6 tail slopes %g %g, want 0.5 0.125", s[4], s[5]);
    /* the bias is added as is: no 1/√d scaling, scores keep their value plus exactly −slope·distance */
    Encoding e;
    enc_prepare(&e, "alibi", 64);   /* head_dim 64: a 1/√d = 1/8 scaling would be visible */
    e.model.n_heads = 8;
    if (!enc_init(&e, PE_FAMILY_ALIBI)) return;
    int pk[4] = {0, 3, 9, 10};
    float sc[4] = {2, 2, 2, 2};
    e.ops->add_bias(&e, 1, 10, pk, 4, sc);   /* slope 0.25 */
    static const float want[4] = {2 - 2.5f, 2 - 1.75f, 2 - 0.25f, 2};
    for (int j = 0; j < 4; j++) CHECK(sc[j] == want[j], "add_bias k=%d: %g want %g (exactly -slope*distance)", pk[j], sc[j], want[j]);
    /* −m(i−j) form: equivalent to +m·j up to a per-row constant, i.e. the bias rises by m per key step */
    int keys[6] = {0, 1, 2, 3, 4, 5};
    float row[6] = {0};
    e.ops->add_bias(&e, 0, 5, keys, 6, row);   /* slope 0.5 */
    for (int j = 0; j < 6; j++) {
        CHECK(row[j] == -0.5f * (5 - j), "-m(i-j): head 0 q=5 k=%d bias %g", j, row[j]);
        CHECK(row[j] - row[0] == 0.5f * j, "+m*j form (shifted by a row constant): k=%d", j);
    }
    /* stored positions, not slots: a key at position 1000 from a query at 1040 */
    int far_k = 1000;
    float f = 0;
    e.ops->add_bias(&e, 0, 1040, &far_k, 1, &f);
    CHECK(f == -20.0f, "q=1040 k=1000 head 0: %g want -20", f);
    /* large distances stay exact in f32 (no f16 rounding): 32769 · 0.5 */
    int k0 = 0;
    f = 0;
    e.ops->add_bias(&e, 0, 32769, &k0, 1, &f);
    CHECK(f == -16384.5f, "distance 32769 head 0: %g want -16384.5", f);
}

/* ---------------------------------------------------------------------------------------------- */
/* §11 T5                                                                                         */

static void test_t5_unidirectional(void) {
    static const int pairs[][2] = {   /* §11 δ → bucket, NB 32, D 128, unidirectional */
        {0, 0}, {1, 1}, {2, 2}, {3, 3}, {7, 7}, {8, 8}, {15, 15}, {16, 16}, {17, 16}, {19, 17}, {20, 17},
        {23, 18}, {24, 19}, {31, 21}, {32, 21}, {33, 21}, {45, 23}, {46, 24}, {63, 26}, {64, 26}, {90, 29},
        {91, 29}, {127, 31}, {128, 31}, {129, 31}, {1000, 31}, {100000, 31},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int b = pe_t5_bucket(-pairs[k][0], 0, 32, 128);   /* r = p_k − p_q = −δ */
        CHECK(b == pairs[k][1], "unidirectional delta %d: bucket %d want %d", pairs[k][0], b, pairs[k][1]);
    }
    static const int fut[] = {1, 5, 100};
    for (int k = 0; k < 3; k++) {
        int b = pe_t5_bucket(fut[k], 0, 32, 128);
        CHECK(b == 0, "future key r=+%d: bucket %d want 0", fut[k], b);
    }
}

static void test_t5_first_distance_per_bucket(void) {
    static const int first[16] = {16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87, 99, 113};   /* buckets 16..31 */
    for (int k = 0; k < 16; k++) {
        int b = 16 + k, d = first[k];
        int got = pe_t5_bucket(-d, 0, 32, 128), before = pe_t5_bucket(-(d - 1), 0, 32, 128);
        CHECK(got == b, "bucket(first delta %d) = %d, want %d", d, got, b);
        CHECK(before == b - 1, "bucket(first delta %d - 1) = %d, want %d", d, before, b - 1);
    }
}

/* The encoding reads a distance's bucket from the table it computes once (PE_T5_TABLE distances) and
   computes farther ones: both must agree with pe_t5_bucket, on either side of the table's end and of
   max_distance (here past the table, so that the table ends inside the log buckets). */
static void test_t5_bucket_table(void) {
    static float table[32];
    for (int b = 0; b < 32; b++) table[b] = (float)b;
    Encoding e;
    enc_prepare(&e, "t5", 64);
    e.model.n_heads = 1;
    e.model.rel_bias = table;
    e.set.t5_max_distance = 3 * PE_T5_TABLE;
    if (!enc_init(&e, PE_FAMILY_T5)) return;
    int bad = 0, last = 0;
    for (int d = 0; d <= 4 * PE_T5_TABLE; d++) {
        int pk = 0;
        float sc = 0;
        e.ops->add_bias(&e, 0, d, &pk, 1, &sc);
        int want = pe_t5_bucket(-d, 0, 32, 3 * PE_T5_TABLE);
        if (sc != (float)want && bad++ < 3) CHECK(0, "t5 distance %d: bucket %g, want %d", d, sc, want);
        last = want;
    }
    CHECK(bad == 0, "%d distances in the wrong bucket", bad);
    CHECK(last == 31, "the farthest distance must reach the last bucket (got %d)", last);
}

static void test_t5_bidirectional(void) {
    static const int pairs[][2] = {   /* §11 r → bucket, bidirectional */
        {-1000, 15}, {-128, 15}, {-64, 14}, {-20, 10}, {-8, 8}, {-7, 7}, {-1, 1}, {0, 0},
        {1, 17}, {7, 23}, {8, 24}, {20, 26}, {64, 30}, {128, 31}, {1000, 31},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int b = pe_t5_bucket(pairs[k][0], 1, 32, 128);
        CHECK(b == pairs[k][1], "bidirectional r=%d: bucket %d want %d", pairs[k][0], b, pairs[k][1]);
    }
}

/* §18 pitfall 11, and the bias through the encoding: r = key − query, bias table [bucket][head],
   added to the raw score (no 1/√d) */
static void test_pitfall11_t5(void) {
    CHECK(pe_t5_bucket(0, 0, 32, 128) == 0, "delta 0 bucket must be 0");
    CHECK(pe_t5_bucket(0, 1, 32, 128) == 0, "bidirectional r=0 bucket must be 0");
    static float table[32 * 3];
    for (int b = 0; b < 32; b++)
        for (int h = 0; h < 3; h++) table[b * 3 + h] = (float)(100 * b + h);
    Encoding e;
    enc_prepare(&e, "t5", 64);
    e.model.n_heads = 3;
    e.model.rel_bias = table;
    if (!enc_init(&e, PE_FAMILY_T5)) return;
    /* query at 1000; keys 1000, 999, 984, 955, 0, and a future key 1005 → buckets 0, 1, 16, 23, 31, 0 */
    int pk[6] = {1000, 999, 984, 955, 0, 1005};
    static const int bk[6] = {0, 1, 16, 23, 31, 0};
    for (int h = 0; h < 3; h++) {
        float sc[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
        e.ops->add_bias(&e, h, 1000, pk, 6, sc);
        for (int j = 0; j < 6; j++) {
            float want = 0.5f + (float)(100 * bk[j] + h);
            CHECK(sc[j] == want && !isnan(sc[j]), "t5 head %d q=1000 k=%d: score %g want %g", h, pk[j], sc[j], want);
        }
    }
    CHECK(e.ops->move_key == NULL && e.ops->rotate == NULL, "T5 must not rotate or re-encode keys");
}

/* ---------------------------------------------------------------------------------------------- */
/* §12 learned, §13 sinusoidal                                                                    */

static void test_sinusoid_values(void) {
    static const struct { int p, j; double v; } d64[] = {   /* §13, d_model 64 */
        {0, 0, 0}, {0, 1, 1}, {1, 0, 0.841470984808}, {1, 1, 0.540302305868}, {1, 2, 0.681561350355},
        {1, 3, 0.731760975799}, {10, 0, -0.544021110889}, {10, 2, 0.937632744137}, {10, 3, 0.347627440116},
        {100, 62, 0.013334819096}, {100, 63, 0.999911087347}, {1000, 10, -0.998602454471},
        {1000, 11, -0.052850145931},
    };
    static const struct { int p, j; double v; } d512[] = {   /* §13, d_model 512 */
        {1, 2, 0.821856190018}, {1, 3, 0.569695008693}, {10, 2, -0.220023185468}, {10, 3, -0.975494642659},
        {100, 62, 0.978956762708}, {100, 63, 0.204067774888}, {1000, 10, -0.296569844477}, {1000, 11, 0.955011166085},
    };
    static const struct { int p, j; double v; } fs[] = {   /* §13 fairseq, d = 64 */
        {1, 1, 0.676473731060}, {1, 33, 0.736466761766}, {10, 1, 0.911309790752}, {10, 33, 0.411721344211},
    };
    char msg[64];
    /* printed to 12 decimals: tolerance 1e-11 absolute */
    for (size_t k = 0; k < sizeof d64 / sizeof d64[0]; k++) {
        snprintf(msg, sizeof msg, "sinusoid d=64 (%d,%d)", d64[k].p, d64[k].j);
        CHECK_NEAR(pe_sinusoid(d64[k].p, d64[k].j, 64, SINUSOID_VASWANI), d64[k].v, 1e-11, msg);
    }
    for (size_t k = 0; k < sizeof d512 / sizeof d512[0]; k++) {
        snprintf(msg, sizeof msg, "sinusoid d=512 (%d,%d)", d512[k].p, d512[k].j);
        CHECK_NEAR(pe_sinusoid(d512[k].p, d512[k].j, 512, SINUSOID_VASWANI), d512[k].v, 1e-11, msg);
    }
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
        snprintf(msg, sizeof msg, "sinusoid fairseq d=64 (%d,%d)", fs[k].p, fs[k].j);
        CHECK_NEAR(pe_sinusoid(fs[k].p, fs[k].j, 64, SINUSOID_FAIRSEQ), fs[k].v, 1e-11, msg);
    }
}

static void test_sinusoid_encoding(void) {
    static const struct { int p, j; double v; } d64[] = {   /* §13, d_model 64 */
        {10, 0, -0.544021110889}, {10, 2, 0.937632744137}, {10, 3, 0.347627440116},
    };
    Encoding e;
    enc_prepare(&e, "sinusoidal", 64);
    if (!enc_init(&e, PE_FAMILY_ABSOLUTE)) return;
    float x[64];
    for (int j = 0; j < 64; j++) x[j] = 1;
    e.ops->add_input(&e, x, 10);
    for (size_t k = 0; k < 3; k++)
        CHECK_NEAR(x[d64[k].j], 1 + d64[k].v, TOL_F, "sinusoidal add_input at p=10");
    enc_prepare(&e, "sinusoidal", 64);
    e.set.sinusoid = SINUSOID_FAIRSEQ;
    if (!enc_init(&e, PE_FAMILY_ABSOLUTE)) return;
    float y[64] = {0};
    e.ops->add_input(&e, y, 10);
    CHECK_NEAR(y[1], 0.911309790752, TOL_F, "fairseq add_input (10,1)");
    CHECK_NEAR(y[33], 0.411721344211, TOL_F, "fairseq add_input (10,33)");
    enc_prepare(&e, "sinusoidal", 64);   /* an amplitude scales the values */
    e.set.sinusoid_scale = 0.02;
    if (!enc_init(&e, PE_FAMILY_ABSOLUTE)) return;
    float z[64] = {0};
    e.ops->add_input(&e, z, 10);
    CHECK_NEAR(z[2], 0.02 * 0.937632744137, TOL_F, "sinusoid_scale 0.02 at (10,2)");
}

/* §12 and §18 pitfall 12 */
static void test_pitfall12_absolute(void) {
    static float table[16 * 4];
    for (int r = 0; r < 16; r++)
        for (int j = 0; j < 4; j++) table[r * 4 + j] = (float)(10 * r + j);
    Encoding e;
    enc_prepare(&e, "learned", 4);
    e.model.train_ctx = 16;
    e.model.pos_table = table;
    e.model.pos_rows = 16;
    if (enc_init(&e, PE_FAMILY_ABSOLUTE)) {
        CHECK(e.max_pos == 15, "learned max_pos %d, want rows - 1 = 15 (p = n_ctx_train refused)", e.max_pos);
        CHECK(e.ops->shiftable == 0, "learned must not be shiftable");
        CHECK(e.ops->move_key == NULL && e.ops->rotate == NULL, "learned has no key hooks");
        float x[4] = {0.5f, 0.5f, 0.5f, 0.5f};
        e.ops->add_input(&e, x, 3);
        for (int j = 0; j < 4; j++) CHECK(x[j] == 0.5f + 30 + j, "learned add_input p=3 [%d] = %g", j, x[j]);
        float z[4] = {0};
        e.ops->add_input(&e, z, 15);
        CHECK(z[0] == 150 && z[3] == 153, "learned add_input at the last row p=15: %g %g", z[0], z[3]);
    }
    /* a table longer than the training length: its extra rows were never trained, p >= n_ctx_train is refused */
    enc_prepare(&e, "learned", 4);
    e.model.train_ctx = 12;
    e.model.pos_table = table;
    e.model.pos_rows = 16;
    if (enc_init(&e, PE_FAMILY_ABSOLUTE)) CHECK(e.max_pos == 11, "learned max_pos %d with 16 rows and n_ctx_train 12, want 11", e.max_pos);
    enc_prepare(&e, "sinusoidal", 64);
    if (enc_init(&e, PE_FAMILY_ABSOLUTE)) {
        CHECK(e.ops->shiftable == 0, "sinusoidal must not be shiftable");
        CHECK(e.ops->move_key == NULL, "sinusoidal has no move_key");
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* encoding_init errors                                                                           */

static void expect_init_error(Encoding *e, PeFamily fam, const char *what) {
    char err[256];
    memset(err, 0, sizeof err);
    int r = encoding_init(e, fam, err);
    CHECK(r == -1, "%s: encoding_init returned %d, want -1", what, r);
    CHECK(err[0] != 0, "%s: no error message", what);
    CHECK(strchr(err, '\n') == NULL, "%s: message is not one line: %s", what, err);
}

static void test_init_errors(void) {
    Encoding e;
    enc_prepare(&e, "rope-ish", 8);
    expect_init_error(&e, PE_FAMILY_ROPE, "unknown method");
    enc_prepare(&e, "yarn", 8);
    e.model.n_heads = 4;
    expect_init_error(&e, PE_FAMILY_ALIBI, "yarn on an ALiBi model");
    enc_prepare(&e, "alibi", 8);
    expect_init_error(&e, PE_FAMILY_ROPE, "alibi on a RoPE model");
    enc_prepare(&e, "learned", 8);
    expect_init_error(&e, PE_FAMILY_ROPE, "learned on a RoPE model");
    enc_prepare(&e, "rope", 8);
    e.set.n_rot = 7;
    expect_init_error(&e, PE_FAMILY_ROPE, "odd n_rot");
    enc_prepare(&e, "yarn", 8);
    e.set.n_rot = 5;
    e.set.scale = 8;
    e.set.orig_ctx = 256;
    expect_init_error(&e, PE_FAMILY_ROPE, "odd n_rot (yarn)");
    enc_prepare(&e, "rope", 8);
    e.set.n_rot = 16;
    expect_init_error(&e, PE_FAMILY_ROPE, "n_rot > head_dim");
    enc_prepare(&e, "learned", 8);
    expect_init_error(&e, PE_FAMILY_ABSOLUTE, "learned without a table");
    enc_prepare(&e, "t5", 8);
    expect_init_error(&e, PE_FAMILY_T5, "t5 without a table");
    /* and the positive control: the same settings with the table succeed */
    static float tab[32];
    enc_prepare(&e, "t5", 8);
    e.model.rel_bias = tab;
    char err[256] = "";
    CHECK(encoding_init(&e, PE_FAMILY_T5, err) == 0, "t5 with a table failed: %s", err);
}

/* ---------------------------------------------------------------------------------------------- */
/* §14.3 Self-Extend (exact form)                                                                 */

/* pe-spec §14.3's vectors, G = 8, W = 1024: (i, j) -> kind, q-pos, k-pos (-1: not given), relative distance */
static void test_self_extend_vectors(void) {
    static const struct { int i, j, grouped, q, k, rel; } v[] = {
        {5000, 4500, 0, -1, -1, 500}, {5000, 3977, 0, -1, -1, 1023}, {5000, 3976, 1, 1521, 497, 1024},
        {5000, 100, 1, 1521, 12, 1509}, {5000, 0, 1, -1, -1, 1521}, {4095, 0, 1, 1407, -1, 1407}, {8191, 0, 1, -1, -1, 1919},
    };
    for (int n = 0; n < (int)(sizeof v / sizeof v[0]); n++) {
        int q, k, grouped = pe_self_extend(v[n].i, v[n].j, 8, 1024, &q, &k);
        CHECK(grouped == v[n].grouped, "(%d, %d): %s, want %s", v[n].i, v[n].j, grouped ? "grouped" : "neighbour", v[n].grouped ? "grouped" : "neighbour");
        if (v[n].q >= 0) CHECK(q == v[n].q, "(%d, %d): q at %d, want %d", v[n].i, v[n].j, q, v[n].q);
        if (v[n].k >= 0) CHECK(k == v[n].k, "(%d, %d): k at %d, want %d", v[n].i, v[n].j, k, v[n].k);
        if (!grouped) CHECK(q == v[n].i && k == v[n].j, "(%d, %d): a neighbour is rotated at (%d, %d)", v[n].i, v[n].j, q, k);
        CHECK(q - k == v[n].rel, "(%d, %d): relative distance %d, want %d", v[n].i, v[n].j, q - k, v[n].rel);
    }
    /* §14.3's usable length, L = 4096: 25599 is the largest query whose farthest key stays below L */
    int q, k;
    pe_self_extend(25599, 0, 8, 1024, &q, &k);
    CHECK(q - k < 4096, "i 25599: distance %d should stay below 4096", q - k);
    pe_self_extend(25600, 0, 8, 1024, &q, &k);
    CHECK(q - k == 4096, "i 25600: distance %d, want 4096", q - k);
}

/* The encoding's far view is the same rule: far_pos of the query and the key give §14.3's positions,
   the window is W, and the near rotation is plain RoPE's */
static void test_self_extend_encoding(void) {
    Encoding e, r;
    char err[256] = "";
    enc_prepare(&e, "self-extend", 8);
    e.set.group_n = 8;
    e.set.group_w = 1024;
    CHECK(encoding_init(&e, PE_FAMILY_ROPE, err) == 0, "self-extend G 8 W 1024: %s", err);
    CHECK(e.far_window == 1024, "far window %d, want W = 1024", e.far_window);
    CHECK(e.ops->far_pos && e.ops->far_pos(&e, 5000, 1) == 1521 && e.ops->far_pos(&e, 3976, 0) == 497,
          "far_pos: q %d (want 1521), k %d (want 497)", e.ops->far_pos ? e.ops->far_pos(&e, 5000, 1) : -1, e.ops->far_pos ? e.ops->far_pos(&e, 3976, 0) : -1);
    enc_prepare(&r, "rope", 8);
    CHECK(encoding_init(&r, PE_FAMILY_ROPE, err) == 0, "rope: %s", err);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
    memcpy(b, a, sizeof a);
    e.ops->rotate(&e, 777, a, 1, NULL, 0);
    r.ops->rotate(&r, 777, b, 1, NULL, 0);
    CHECK(!memcmp(a, b, sizeof a), "the neighbour rotation should be plain RoPE's");
    CHECK(r.ops->far_pos == NULL, "plain RoPE has no far view");
    /* bad settings: one line each, no crash */
    const int bad[][2] = {{3, 1024}, {0, 1024}, {8, 0}, {-1, 8}, {0, 0}};
    for (int n = 0; n < 5; n++) {
        enc_prepare(&e, "self-extend", 8);
        e.set.group_n = bad[n][0];
        e.set.group_w = bad[n][1];
        err[0] = 0;
        CHECK(encoding_init(&e, PE_FAMILY_ROPE, err) == -1 && err[0] && !strchr(err, '\n'), "G %d W %d should be refused: '%s'", bad[n][0], bad[n][1], err);
    }
    enc_prepare(&e, "self-extend", 8);
    e.set.group_n = e.set.group_w = 8;
    CHECK(encoding_init(&e, PE_FAMILY_ALIBI, err) == -1 && strstr(err, "family"), "self-extend on an ALiBi model: '%s'", err);
}

/* ---------------------------------------------------------------------------------------------- */

void suite_encodings(void) {
    /* §2 */
    RUN(test_rope_theta_table);
    RUN(test_rope_apply_p3_interleaved);
    RUN(test_rope_apply_p3_halfsplit);
    RUN(test_rope_permutation_check);
    RUN(test_rope_relative_score);
    RUN(test_rope_p1000);
    RUN(test_pitfall1_layout_mismatch);
    RUN(test_pitfall2_partial_rotary);
    /* §3, §4 */
    RUN(test_linear_table);
    RUN(test_ntk_table);
    /* §5 */
    RUN(test_dynamic_base_formula);
    RUN(test_dynamic_retune_table);
    RUN(test_pitfall8_dynamic_stale_key_error);
    RUN(test_pitfall8_dynamic_exact_and_reset);
    /* §6 */
    RUN(test_yarn_corr_dims);
    RUN(test_yarn_theta_table);
    RUN(test_yarn_cos_sin_p1000);
    RUN(test_yarn_small_end_to_end);
    RUN(test_yarn_mscale_s2);
    RUN(test_pitfall6_yarn_magnitude_once);
    RUN(test_pitfall7_yarn_parameters);
    RUN(test_pitfall16_yarn_depends_on_ctx);
    /* §7, §1.4 */
    RUN(test_llama31_table);
    RUN(test_llama3_tiny_table);
    RUN(test_freq_divisor_hook);
    /* §1.5, pitfalls 5 and 9 */
    RUN(test_rotation_composition);
    RUN(test_pitfall5_shift_accumulates);
    RUN(test_pitfall5_shift_sign);
    RUN(test_pitfall5_pure_rotation_yarn);
    RUN(test_pitfall5_shift_same_theta);
    RUN(test_pitfall9_large_position_angles);
    RUN(test_rotation_vs_libm);
    /* §10 */
    RUN(test_alibi_slopes);
    RUN(test_alibi_pi);
    RUN(test_alibi_bias_rows);
    RUN(test_pitfall10_alibi);
    /* §11 */
    RUN(test_t5_unidirectional);
    RUN(test_t5_first_distance_per_bucket);
    RUN(test_t5_bucket_table);
    RUN(test_t5_bidirectional);
    RUN(test_pitfall11_t5);
    /* §12, §13 */
    RUN(test_sinusoid_values);
    RUN(test_sinusoid_encoding);
    RUN(test_pitfall12_absolute);
    RUN(test_none_logn);
    /* errors */
    RUN(test_init_errors);
    /* §14.3 */
    RUN(test_self_extend_vectors);
    RUN(test_self_extend_encoding);
}
