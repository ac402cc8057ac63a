/* Rotary core shared by every RoPE method: rotation of q/k pairs (interleaved or half-split, partial
   rotary), and the pure re-rotation of cached keys. The methods in rope_scaling.c only decide θ'
   and the magnitude m. Angles are computed in double from integer positions (pe-spec §16). */
#include <math.h>
#include "encodings/encoding.h"

/* c + i s, per pair, = the rotation from angle pos_from θ_from to pos_to θ_to (any angle an int position gives), with no
   libm call, so that the loop runs in vector lanes: libm's sincos, one pair at a time, was most of the
   time of moving cached keys. Reduction x = k pi/2 + r, |r| <= pi/4, with pi/2 in two parts and the
   first product fused (exact to ~1e-16); Taylor series of sin r to r^15 and cos r to r^16 (the next
   terms < 5e-17 on |r| <= pi/4); the quadrant k mod 4 picks (+-sin r, +-cos r). Within 1e-15 of libm's
   cos and sin (tests/test_encodings.c). */
void pe_rotation(double *c, double *s, int n, const double *theta_to, int pos_to, const double *theta_from, int pos_from) {
    const double pio2_hi = 1.5707963267948966, pio2_lo = 6.123233995736766e-17;
    #pragma omp simd
    for (int i = 0; i < n; i++) {
        double x = (double)pos_to * theta_to[i] - (double)pos_from * theta_from[i], k = floor(x * (2 / M_PI) + 0.5);
        double r = fma(-k, pio2_hi, x) - k * pio2_lo, r2 = r * r;
        double sr = r * (1 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 + r2 * (-1.0 / 39916800
                    + r2 * (1.0 / 6227020800 + r2 * (-1.0 / 1307674368000))))))));
        double cr = 1 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800
                    + r2 * (1.0 / 479001600 + r2 * (-1.0 / 87178291200 + r2 * (1.0 / 20922789888000))))))));
        double quadrant = k - 4 * floor(k * 0.25);   /* k mod 4, exactly */
        s[i] = quadrant == 0 ? sr : quadrant == 1 ? cr : quadrant == 2 ? -sr : -cr;
        c[i] = quadrant == 0 ? cr : quadrant == 1 ? -sr : quadrant == 2 ? -cr : sr;
    }
}

void pe_rope_apply(const Encoding *e, float *v, int n_vecs, const double *c, const double *s) {
    int hd = e->model.head_dim, half = e->set.n_rot / 2;
    for (int h = 0; h < n_vecs; h++) {
        float *x = v + (long)h * hd;
        for (int i = 0; i < e->n_pairs; i++) {
            /* interleaved pairs (2i, 2i+1) as in GGUF llama / llama2.c; half-split (i, i+n/2) as in NeoX / HF */
            int a = e->set.layout == ROPE_INTERLEAVED ? 2 * i : i;
            int b = e->set.layout == ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
            double xa = x[a], xb = x[b];
            x[a] = (float)(xa * c[i] - xb * s[i]);
            x[b] = (float)(xa * s[i] + xb * c[i]);
        }
    }
}

static void rope_rotate(const Encoding *e, int pos, float *q, int n_q, float *k, int n_k) {
    double c[PE_MAX_PAIRS], s[PE_MAX_PAIRS];
    pe_rotation(c, s, e->n_pairs, e->theta, pos, e->theta, 0);
    for (int i = 0; i < e->n_pairs; i++) {
        c[i] *= e->mscale;
        s[i] *= e->mscale;
    }
    if (q) pe_rope_apply(e, q, n_q, c, s);
    if (k) pe_rope_apply(e, k, n_k, c, s);
}

/* A cached key was rotated by pos_from·θ_from (times m); make it pos_to·θ_to (times the same m).
   A pure rotation: m is not applied again (pe-spec pitfall 5). */
static void rope_move_key(const Encoding *to, const Encoding *from, float *k, int n_rows, size_t row_stride, int n_vecs, int pos_from,
                          int pos_to) {
    double c[PE_MAX_PAIRS], s[PE_MAX_PAIRS];
    pe_rotation(c, s, to->n_pairs, to->theta, pos_to, from->theta, pos_from);
    for (int r = 0; r < n_rows; r++) pe_rope_apply(to, k + r * row_stride, n_vecs, c, s);
}

/* Dynamic NTK: every query past L sees a base computed for its own length, so each position past
   L is its own segment; below L all positions share the original base. */
static int dynamic_uniform_until(const Encoding *e, int pos) {
    return pos < e->set.orig_ctx ? e->set.orig_ctx - 1 : pos;
}

int pe_dynamic_retune(Encoding *e, int seq_len);

const EncodingOps pe_rope_ops = {.rotate = rope_rotate, .move_key = rope_move_key, .shiftable = 1};
/* Self-Extend (self_extend.c): plain RoPE, plus the far view at grouped positions */
const EncodingOps pe_self_extend_ops = {.rotate = rope_rotate, .move_key = rope_move_key, .far_pos = pe_self_extend_far_pos, .shiftable = 1};
const EncodingOps pe_dynamic_ops = {.rotate = rope_rotate, .move_key = rope_move_key, .retune = pe_dynamic_retune,
                                    .uniform_until = dynamic_uniform_until, .shiftable = 1};
