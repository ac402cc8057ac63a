/* RoPE scaling methods: each computes the per-pair inverse frequencies θ'_i and the magnitude m
   (pe-spec §2-§7). Every rule uses n = rotary dims, never head_dim. */
#include <math.h>
#include "encodings/encoding.h"

double pe_ntk_base(double base, double alpha, int n_rot) { return base * pow(alpha, (double)n_rot / (n_rot - 2)); }

double pe_dynamic_base(double base, double scale, int seq, int orig_ctx, int n_rot) {
    if (seq <= orig_ctx) return base;
    return base * pow(scale * seq / orig_ctx - (scale - 1), (double)n_rot / (n_rot - 2));
}

double pe_yarn_corr_dim(int n_rot, int orig_ctx, double beta, double base) {
    return n_rot * log(orig_ctx / (beta * 2 * M_PI)) / (2 * log(base));
}

double pe_yarn_mscale(double s) { return s <= 1 ? 1.0 : 0.1 * log(s) + 1.0; }

/* θ_i = B^(-2i/n), divided by the file's per-pair divisors (rope_freqs.weight) when present */
static void base_theta(Encoding *e, double base, int use_divisors) {
    for (int i = 0; i < e->n_pairs; i++) {
        e->theta[i] = pow(base, -2.0 * i / e->set.n_rot);
        if (use_divisors && e->model.freq_div) e->theta[i] /= e->model.freq_div[i];
    }
    e->base_eff = base;
}

int pe_scaling_check(Encoding *e, char *err) {
    if (e->set.orig_ctx <= 0) e->set.orig_ctx = e->model.train_ctx;
    if (e->set.orig_ctx <= 0) return encoding_error(err, "the original context length is unknown: give -orig-ctx");
    if (e->set.scale < 0 || !isfinite(e->set.scale)) return encoding_error(err, "scale %g must be positive", e->set.scale);
    return 0;
}

double pe_resolve_scale(const Encoding *e) {
    if (e->set.scale > 0) return e->set.scale;
    double s = (double)e->model.run_ctx / e->set.orig_ctx;
    return s > 1 ? s : 1;
}

static int check_common(Encoding *e, char *err) {
    int hd = e->model.head_dim;
    if (e->set.n_rot <= 0) e->set.n_rot = hd;
    if (e->set.n_rot % 2 || e->set.n_rot > hd || e->set.n_rot / 2 > PE_MAX_PAIRS)
        return encoding_error(err, "rotary dims %d must be even and at most the head dim %d", e->set.n_rot, hd);
    if (!(e->set.rope_base > 1) || !isfinite(e->set.rope_base))
        return encoding_error(err, "rope base %g must be a finite number > 1", e->set.rope_base);
    if (pe_scaling_check(e, err)) return -1;
    if (e->model.freq_div && e->model.n_freq_div != e->set.n_rot / 2)
        return encoding_error(err, "rope_freqs.weight has %d entries, expected rotary dims / 2 = %d", e->model.n_freq_div, e->set.n_rot / 2);
    for (int i = 0; e->model.freq_div && i < e->model.n_freq_div; i++)
        if (!(e->model.freq_div[i] > 0) || !isfinite(e->model.freq_div[i]))
            return encoding_error(err, "rope_freqs.weight[%d] = %g is not a positive divisor", i, e->model.freq_div[i]);
    e->n_pairs = e->set.n_rot / 2;
    return 0;
}

int pe_rope_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    base_theta(e, e->set.rope_base, 1);
    return 0;
}

int pe_linear_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    double s = pe_resolve_scale(e);
    base_theta(e, e->set.rope_base, 1);
    for (int i = 0; i < e->n_pairs; i++) e->theta[i] /= s;
    e->set.scale = s;
    return 0;
}

int pe_ntk_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    if (e->set.n_rot < 4) return encoding_error(err, "-pe ntk needs at least 4 rotary dims");
    e->set.scale = pe_resolve_scale(e);
    base_theta(e, pe_ntk_base(e->set.rope_base, e->set.scale, e->set.n_rot), 1);
    return 0;
}

int pe_dynamic_retune(Encoding *e, int seq_len) {
    int seq = seq_len > e->set.orig_ctx ? seq_len : e->set.orig_ctx;
    if (seq == e->seq_len) return 0;
    e->seq_len = seq;
    base_theta(e, pe_dynamic_base(e->set.rope_base, e->set.scale, seq, e->set.orig_ctx, e->set.n_rot), 1);
    return 1;
}

int pe_dynamic_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    if (e->set.n_rot < 4) return encoding_error(err, "-pe dynamic needs at least 4 rotary dims");
    e->set.scale = pe_resolve_scale(e);
    e->seq_len = 0;
    pe_dynamic_retune(e, 0);
    return 0;
}

int pe_yarn_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    double s = pe_resolve_scale(e);
    double beta_fast = e->set.beta_fast > 0 ? e->set.beta_fast : 32;   /* 0 counts as unset (HF `x or 32`) */
    double beta_slow = e->set.beta_slow > 0 ? e->set.beta_slow : 1;
    double ext = e->set.yarn_ext >= 0 ? e->set.yarn_ext : 1;
    int n = e->set.n_rot;
    double lo = floor(pe_yarn_corr_dim(n, e->set.orig_ctx, beta_fast, e->set.rope_base));
    double hi = ceil(pe_yarn_corr_dim(n, e->set.orig_ctx, beta_slow, e->set.rope_base));
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    double span = hi - lo > 0.001 ? hi - lo : 0.001;
    base_theta(e, e->set.rope_base, 1);
    for (int i = 0; i < e->n_pairs; i++) {
        double ramp = (i - lo) / span;
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double w = (1 - ramp) * ext;   /* extrapolation weight: 1 keeps θ, 0 interpolates to θ/s */
        e->theta[i] = e->theta[i] * w + e->theta[i] / s * (1 - w);
    }
    /* m is computed once here and multiplied into cos/sin once (pe-spec §6.3) */
    e->mscale = e->set.yarn_attn > 0 ? e->set.yarn_attn : pe_yarn_mscale(s);
    if (e->set.attn_factor > 0) e->mscale *= e->set.attn_factor;
    e->set.scale = s;
    return 0;
}

int pe_llama3_setup(Encoding *e, char *err) {
    if (check_common(e, err)) return -1;
    double s = pe_resolve_scale(e);
    double low = e->set.llama3_low > 0 ? e->set.llama3_low : 1;
    double high = e->set.llama3_high > 0 ? e->set.llama3_high : 4;
    if (high <= low) return encoding_error(err, "llama3 high frequency factor %g must exceed the low factor %g", high, low);
    double L = e->set.orig_ctx, wl_high = L / high, wl_low = L / low;
    base_theta(e, e->set.rope_base, 0);   /* llama3 computes its own divisors instead of the file's */
    for (int i = 0; i < e->n_pairs; i++) {
        double wavelen = 2 * M_PI / e->theta[i];
        if (wavelen < wl_high) continue;
        if (wavelen > wl_low) { e->theta[i] /= s; continue; }
        double sigma = (L / wavelen - low) / (high - low);
        e->theta[i] = (1 - sigma) * e->theta[i] / s + sigma * e->theta[i];
    }
    e->set.scale = s;
    return 0;
}
