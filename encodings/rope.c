/* Rotary core shared by every RoPE method: rotation of q/k pairs (interleaved or half-split, partial
   rotary), and the pure re-rotation of cached keys. The methods in rope_scaling.c only decide θ'
   and the magnitude m. Angles are computed in double from integer positions (pe-spec §16). */
#include <math.h>
#include "encodings/encoding.h"

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
    for (int i = 0; i < e->n_pairs; i++) {
        double angle = (double)pos * e->theta[i];
        c[i] = cos(angle) * e->mscale;
        s[i] = sin(angle) * e->mscale;
    }
    if (q) pe_rope_apply(e, q, n_q, c, s);
    if (k) pe_rope_apply(e, k, n_k, c, s);
}

/* A cached key was rotated by pos_from·θ_from (times m); make it pos_to·θ_to (times the same m).
   A pure rotation: m is not applied again (pe-spec pitfall 5). */
static void rope_move_key(const Encoding *to, const Encoding *from, float *k, int n_k, int pos_from, int pos_to) {
    double c[PE_MAX_PAIRS], s[PE_MAX_PAIRS];
    for (int i = 0; i < to->n_pairs; i++) {
        double delta = (double)pos_to * to->theta[i] - (double)pos_from * from->theta[i];
        c[i] = cos(delta);
        s[i] = sin(delta);
    }
    pe_rope_apply(to, k, n_k, c, s);
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
