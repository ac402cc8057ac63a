/* Absolute encodings, added to the token embedding: a learned table (GPT-2) or fixed sinusoids.
   The position is baked into every cached key and value, so these cannot follow a context shift. */
#include <math.h>
#include "encodings/encoding.h"

double pe_sinusoid(int pos, int j, int dim, SinusoidVariant v) {
    if (v == SINUSOID_VASWANI) {   /* PE(p,2i) = sin(p/10000^(2i/d)), PE(p,2i+1) = cos(...) */
        int i = j / 2;
        double a = pos / pow(10000.0, 2.0 * i / dim);
        return j % 2 ? cos(a) : sin(a);
    }
    int h = dim / 2, k = j % h;    /* fairseq: [sin(p w_k)] ++ [cos(p w_k)], w_k = exp(-k ln(10000)/(h-1)) */
    double a = pos * exp(-k * log(10000.0) / (h - 1));
    return j < h ? sin(a) : cos(a);
}

static void learned_add(const Encoding *e, float *x, int pos) {
    const float *row = e->model.pos_table + (long)pos * e->model.dim;
    for (int j = 0; j < e->model.dim; j++) x[j] += row[j];
}

/* The amplitude is a setting because the paper's sinusoids (amplitude 1) are sized for embeddings scaled
   by sqrt(d); next to GPT-2-initialised embeddings (std 0.02) they swamp the token ~35:1 in RMS. */
static void sinusoid_add(const Encoding *e, float *x, int pos) {
    double a = e->set.sinusoid_scale;
    for (int j = 0; j < e->model.dim; j++) x[j] += (float)(a * pe_sinusoid(pos, j, e->model.dim, e->set.sinusoid));
}

static void learned_grad(const Encoding *e, const float *dx, int pos, float *dtable) {
    float *row = dtable + (long)pos * e->model.dim;
    for (int j = 0; j < e->model.dim; j++) row[j] += dx[j];
}

int pe_learned_setup(Encoding *e, char *err) {
    if (!e->model.pos_table) return encoding_error(err, "-pe learned needs a position_embd.weight table, and the model has none");
    /* rows past the training length were never trained: refuse them too (pe-spec §12) */
    int rows = e->model.pos_rows;
    e->max_pos = (e->model.train_ctx > 0 && e->model.train_ctx < rows ? e->model.train_ctx : rows) - 1;
    return 0;
}

int pe_sinusoidal_setup(Encoding *e, char *err) {
    if (e->model.dim % 2 || (e->set.sinusoid == SINUSOID_FAIRSEQ && e->model.dim < 4))
        return encoding_error(err, "sinusoidal positions need an even model dim (got %d)", e->model.dim);
    if (e->set.sinusoid_scale < 0 || !isfinite(e->set.sinusoid_scale))
        return encoding_error(err, "sinusoid scale %g must be a positive number", e->set.sinusoid_scale);
    if (e->set.sinusoid_scale == 0) e->set.sinusoid_scale = 1;   /* unset: the paper's amplitude */
    return 0;
}

const EncodingOps pe_learned_ops = {.add_input = learned_add, .input_grad = learned_grad, .shiftable = 0};
const EncodingOps pe_sinusoidal_ops = {.add_input = sinusoid_add, .shiftable = 0};   /* no parameters to learn */
