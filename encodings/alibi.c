/* ALiBi (Press et al.): score += -slope_h * (p_q - p_k), after the 1/sqrt(d) scaling, never scaled
   itself; -pe alibi-pi divides the distance by s. Keys are cached unrotated, so a position edit only
   changes the stored positions. */
#include <math.h>
#include "encodings/encoding.h"

/* llama.cpp's form of the reference get_slopes: for n = 2^floor(log2 H), heads h < n get m0^(h+1),
   the rest take every other slope of the 2n sequence, m1^(2(h-n)+1). */
void pe_alibi_slopes(int n_heads, double max_bias, float *slopes) {
    int n = 1;
    while (2 * n <= n_heads) n *= 2;
    double m0 = pow(2.0, -max_bias / n), m1 = pow(2.0, -(max_bias / 2) / n);
    for (int h = 0; h < n_heads; h++) slopes[h] = (float)(h < n ? pow(m0, h + 1) : pow(m1, 2 * (h - n) + 1));
}

static void alibi_bias(const Encoding *e, int head, int pos_q, const int *pos_k, int n, float *scores) {
    float slope = e->slopes[head];
    for (int j = 0; j < n; j++) scores[j] -= slope * (float)(pos_q - pos_k[j]);
}

int pe_alibi_setup(Encoding *e, char *err) {
    if (e->model.n_heads > PE_MAX_HEADS) return encoding_error(err, "ALiBi supports at most %d heads", PE_MAX_HEADS);
    double mb = e->set.alibi_max_bias > 0 ? e->set.alibi_max_bias : 8;
    if (!isfinite(mb)) return encoding_error(err, "ALiBi max bias must be finite");
    e->set.alibi_max_bias = mb;
    pe_alibi_slopes(e->model.n_heads, mb, e->slopes);
    return 0;
}

/* ALiBi + position interpolation (Al-Khateeb et al.): distances divided by s, so that a context of
   s x L spans the biases the model saw within L. Dividing the distance is dividing the slope. */
int pe_alibi_pi_setup(Encoding *e, char *err) {
    if (pe_alibi_setup(e, err) || pe_scaling_check(e, err)) return -1;
    e->set.scale = pe_resolve_scale(e);
    for (int h = 0; h < e->model.n_heads; h++) e->slopes[h] = (float)(e->slopes[h] / e->set.scale);
    return 0;
}

const EncodingOps pe_alibi_ops = {.add_bias = alibi_bias, .shiftable = 1};
