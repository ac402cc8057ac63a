/* NoPE with log-n attention scaling (-pe none-logn): a query at position p >= L is multiplied by
   ln(p+1) / ln(L), so its scores over p+1 keys keep the sharpness they had over L (the entropy-invariance
   argument; Qwen's logn_attn uses the same factor). Wang et al. (arXiv 2404.12224) find NoPE fails past L
   because its attention flattens, and restore it with tuned per-head temperatures; this is study.md
   §11.3's global stand-in for them. Within L it is NoPE exactly, so any NoPE model can use it. */
#include <math.h>
#include "encodings/encoding.h"

double pe_logn_factor(int pos, int train_ctx) {
    return pos + 1 > train_ctx && train_ctx > 1 ? log(pos + 1.0) / log((double)train_ctx) : 1.0;
}

/* A scaling is its own adjoint: the backward pass calls this at -p (a rotation's transpose), so the
   factor depends on |p|. Keys are untouched, so a context shift has nothing to re-encode. */
static void logn_scale_query(const Encoding *e, int pos, float *q, int n_q, float *k, int n_k) {
    float f = (float)pe_logn_factor(pos < 0 ? -pos : pos, e->model.train_ctx);
    if (f == 1.0f) return;
    for (int i = 0; i < n_q * e->model.head_dim; i++) q[i] *= f;
}

int pe_logn_setup(Encoding *e, char *err) {
    if (e->model.train_ctx < 2) return encoding_error(err, "-pe none-logn needs the model's training length (context_length >= 2)");
    return 0;
}

const EncodingOps pe_logn_ops = {.rotate = logn_scale_query, .shiftable = 1};
