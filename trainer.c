/* The trainer's model and optimizer; see trainer.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "data.h"
#include "ops.h"
#include "trainer.h"

/* ------------------------------------------------------------------------------------------ */
/* parameter layout: one walk over the architecture's tensors, used to count and name them
   (base == NULL) and to point a Weights view into an array */

typedef struct { TrainModel *tm; float *base; size_t off; int record; } Layout;

static float *take(Layout *L, const char *name, uint64_t ne0, uint64_t ne1, int decay) {
    size_t n = (size_t)ne0 * (ne1 ? ne1 : 1);
    if (L->record) {
        ParamTensor *t = &L->tm->tensors[L->tm->n_tensors++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->n_dims = ne1 ? 2 : 1;
        t->ne[0] = ne0;
        t->ne[1] = ne1 ? ne1 : 1;
        t->offset = L->off;
        t->n = n;
        t->decay = decay;
    }
    float *p = L->base ? L->base + L->off : NULL;
    L->off += n;
    return p;
}

static size_t layout(TrainModel *tm, float *base, Weights *w, int record) {
    const Config *c = &tm->c;
    Layout L = {tm, base, 0, record};
    uint64_t D = c->dim, H = c->hidden_dim, qd = (uint64_t)c->n_heads * c->head_dim, kvd = (uint64_t)c->n_kv_heads * c->head_dim;
    int ln = c->norm == NORM_LAYER, bias = c->linear_bias;
    char n[96];
    memset(w, 0, sizeof *w);
    w->tok_embd.f = take(&L, "token_embd.weight", D, c->vocab_size, 1);
    if (!strcmp(tm->pe.set.method, "learned")) {
        w->pos_embd = take(&L, "position_embd.weight", D, c->train_ctx, 1);
        w->pos_rows = c->train_ctx;
    }
    if (c->pe_family == PE_FAMILY_T5) w->rel_bias = take(&L, "dec.blk.0.attn_rel_b.weight", c->n_heads, tm->pe.set.t5_buckets, 0);
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *lw = &w->layers[l];
#define T(field, suffix, ne0, ne1, decay) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), lw->field = take(&L, n, ne0, ne1, decay))
        T(attn_norm, "attn_norm.weight", D, 0, 0);
        if (ln) T(attn_norm_b, "attn_norm.bias", D, 0, 0);
        T(wq.f, "attn_q.weight", D, qd, 1);
        T(wk.f, "attn_k.weight", D, kvd, 1);
        T(wv.f, "attn_v.weight", D, kvd, 1);
        T(wo.f, "attn_output.weight", qd, D, 1);
        if (bias) { T(bq, "attn_q.bias", qd, 0, 0); T(bk, "attn_k.bias", kvd, 0, 0); T(bv, "attn_v.bias", kvd, 0, 0); T(bo, "attn_output.bias", D, 0, 0); }
        T(ffn_norm, "ffn_norm.weight", D, 0, 0);
        if (ln) T(ffn_norm_b, "ffn_norm.bias", D, 0, 0);
        if (c->mlp == MLP_SWIGLU) {
            T(w_gate.f, "ffn_gate.weight", D, H, 1);
            if (bias) T(b_gate, "ffn_gate.bias", H, 0, 0);
        }
        T(w_up.f, "ffn_up.weight", D, H, 1);
        T(w_down.f, "ffn_down.weight", H, D, 1);
        if (bias) { T(b_up, "ffn_up.bias", H, 0, 0); T(b_down, "ffn_down.bias", D, 0, 0); }
#undef T
    }
    w->out_norm = take(&L, "output_norm.weight", D, 0, 0);
    if (ln) w->out_norm_b = take(&L, "output_norm.bias", D, 0, 0);
    w->output = c->tied_output ? w->tok_embd : (Mat){.f = take(&L, "output.weight", D, c->vocab_size, 1)};
    return L.off;
}

static double rng_normal(Rng *r) {   /* Box-Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((rng_u64(r) >> 11) + 1.0) / 9007199254740993.0, u2 = (rng_u64(r) >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* The encoding reads its tables (learned positions, T5 buckets) from the parameter array. */
static int setup_encoding(TrainModel *tm, const PeSettings *pe, int run_ctx, char *err) {
    const Config *c = &tm->c;
    Encoding *e = &tm->pe;
    memset(e, 0, sizeof *e);
    e->set = *pe;
    e->model = (PeModel){.dim = c->dim, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                         .train_ctx = c->train_ctx, .run_ctx = run_ctx, .pos_table = tm->w.pos_embd, .pos_rows = tm->w.pos_rows,
                         .rel_bias = tm->w.rel_bias};
    const EncodingMethod *m = encoding_find(e->set.method);
    if (m && m->ops->far_pos) return encoding_error(err, "-pe %s is inference only (its far view has no backward pass)", m->name);
    if (encoding_init(e, c->pe_family, err)) return -1;
    if (e->ops->retune) return encoding_error(err, "-pe %s adapts to the length at run time; train with a static method", e->method->name);
    return 0;
}

static int allocate(TrainModel *tm, const PeSettings *pe, char *err) {
    tm->n_tensors = 0;
    Weights tmp;
    tm->pe.set = *pe;   /* the layout depends on the method (learned table, T5 buckets) */
    if (tm->pe.set.t5_buckets <= 0) tm->pe.set.t5_buckets = 32;
    tm->n_params = layout(tm, NULL, &tmp, 1);
    tm->params = calloc(tm->n_params, sizeof(float));
    tm->grads = calloc(tm->n_params, sizeof(float));
    tm->adam_m = calloc(tm->n_params, sizeof(float));
    tm->adam_v = calloc(tm->n_params, sizeof(float));
    if (!tm->params || !tm->grads || !tm->adam_m || !tm->adam_v) return encoding_error(err, "out of memory for %zu parameters", tm->n_params);
    layout(tm, tm->params, &tm->w, 0);
    layout(tm, tm->grads, &tm->g, 0);
    return 0;
}

int trainmodel_init(TrainModel *tm, const Config *c, const PeSettings *pe, uint64_t seed, double init_std, double embd_std, char *err) {
    memset(tm, 0, sizeof *tm);
    tm->c = *c;
    if (allocate(tm, pe, err)) { trainmodel_free(tm); return -1; }
    /* see trainer.h */
    Rng rng;
    rng_seed(&rng, seed * 0x2545F4914F6CDD1Dull + 1);
    for (int i = 0; i < tm->n_tensors; i++) {
        ParamTensor *t = &tm->tensors[i];
        float *p = tm->params + t->offset;
        const char *suffix = strrchr(t->name, '.');
        if (strstr(t->name, "norm.weight")) for (size_t j = 0; j < t->n; j++) p[j] = 1;
        else if (!strcmp(suffix, ".bias") || strstr(t->name, "attn_rel_b")) continue;
        else {
            double sd = strstr(t->name, "embd") ? embd_std
                      : strstr(t->name, "attn_output") || strstr(t->name, "ffn_down") ? init_std / sqrt(2.0 * c->n_layers) : init_std;
            for (size_t j = 0; j < t->n; j++) p[j] = (float)(sd * rng_normal(&rng));
        }
    }
    if (setup_encoding(tm, pe, c->train_ctx, err)) { trainmodel_free(tm); return -1; }
    return 0;
}

int train_encoding_settings(const PeSettings *flags, const Model *init, PeSettings *out, char *err) {
    PeSettings s = {.rope_base = 10000, .yarn_ext = -1, .alibi_max_bias = 8, .t5_buckets = 32, .t5_max_distance = 128,
                    .sinusoid_scale = 1};
    snprintf(s.method, sizeof s.method, "rope");
    if (init) s = init->c.pe;
    if (flags->method[0] && encoding_select(&s, flags->method, init ? (int)init->c.pe_family : -1, "the -init model", err)) return -1;
    if (flags->rope_base > 0) s.rope_base = flags->rope_base;
    if (flags->scale > 0) s.scale = flags->scale;
    if (flags->orig_ctx > 0) s.orig_ctx = flags->orig_ctx;
    if (flags->alibi_max_bias > 0) s.alibi_max_bias = flags->alibi_max_bias;
    if (flags->sinusoid_scale > 0) s.sinusoid_scale = flags->sinusoid_scale;
    if (flags->t5_buckets > 0) s.t5_buckets = flags->t5_buckets;
    if (flags->t5_max_distance > 0) s.t5_max_distance = flags->t5_max_distance;
    *out = s;
    return 0;
}

int trainmodel_load(TrainModel *tm, const char *path, const PeSettings *pe, int run_ctx, char *err) {
    memset(tm, 0, sizeof *tm);
    Model m;
    if (model_open(&m, path, err)) return -1;
    if (m.c.arch != ARCH_PELAB) { model_close(&m); return encoding_error(err, "%s: only pelab models can be trained", path); }
    tm->c = m.c;
    PeSettings set = pe ? *pe : m.c.pe;   /* a copy: m is closed before the encoding is set up */
    int ok = allocate(tm, &set, err) == 0;
    char name[128];
    int64_t step = 0;
    for (int i = 0; ok && i < tm->n_tensors; i++) {
        ParamTensor *t = &tm->tensors[i];
        const char *prefix[3] = {"", "opt.m.", "opt.v."};
        float *dest[3] = {tm->params, tm->adam_m, tm->adam_v};
        for (int k = 0; k < 3 && ok; k++) {
            snprintf(name, sizeof name, "%s%s", prefix[k], t->name);
            const GgufTensor *gt = gguf_tensor(&m.gguf, name);
            if (!gt && k == 0) ok = encoding_error(err, "%s: missing tensor %s", path, name) == 0;
            else if (gt && (gt->type != GGML_F32 || gt->nbytes != t->n * sizeof(float)))
                ok = encoding_error(err, "%s: tensor %s is not F32 of %zu values", path, name, t->n) == 0;
            else if (gt) memcpy(dest[k] + t->offset, gt->data, t->n * sizeof(float));
        }
    }
    if (ok && gguf_get_int(&m.gguf, "pelab.train.optimizer_steps", 0, INT64_MAX, &step, err) >= 0) tm->step = (uint64_t)step;
    if (ok && tm->step && gguf_get_float(&m.gguf, "pelab.train.wall_seconds", &tm->wall_s, err) < 0) ok = 0;
    model_close(&m);
    if (!ok || setup_encoding(tm, &set, run_ctx, err)) { trainmodel_free(tm); return -1; }
    return 0;
}

void trainmodel_free(TrainModel *tm) {
    free(tm->params);
    free(tm->grads);
    free(tm->adam_m);
    free(tm->adam_v);
    memset(tm, 0, sizeof *tm);
}

/* ------------------------------------------------------------------------------------------ */
/* forward + backward over a batch */

int stream_init(TrainStream *st, const TrainModel *tm, int T, char *err) {
    memset(st, 0, sizeof *st);
    const Config *c = &tm->c;
    if (kv_init(&st->kv, c->n_layers, T, c->n_kv_heads * c->head_dim, KV_F32, 0, err) || runstate_init(&st->s, c, T, 1, 0, err)) return -1;
    size_t V = (size_t)c->vocab_size;
    st->logits = malloc((size_t)T * V * sizeof(float));
    st->dlogits = malloc((size_t)T * V * sizeof(float));
    st->scratch = malloc(runstate_backward_floats(c, T) * sizeof(float));
    st->grads = calloc(tm->n_params, sizeof(float));
    if (!st->logits || !st->dlogits || !st->scratch || !st->grads) return encoding_error(err, "out of memory for a training stream");
    layout((TrainModel *)tm, st->grads, &st->g, 0);
    return 0;
}

void stream_free(TrainStream *st) {
    kv_free(&st->kv);
    runstate_free(&st->s);
    free(st->logits);
    free(st->dlogits);
    free(st->scratch);
    free(st->grads);
    memset(st, 0, sizeof *st);
}

static double batch_pass(TrainModel *tm, TrainStream *streams, int n_streams, const int *inputs, const int *targets,
                         const float *weights, const int *pos0, int B, int T, int backward) {
    size_t V = (size_t)tm->c.vocab_size;
    double wsum = 0, parts[256] = {0};
    for (long i = 0; i < (long)B * T; i++) wsum += weights ? weights[i] : 1;
    if (wsum <= 0) return 0;
    if (n_streams > 256) n_streams = 256;
#ifdef _OPENMP
    omp_set_max_active_levels(1);   /* one level: each thread runs whole sequences, the ops inside run serially */
#endif
    /* sequence b goes to stream b % n_streams, and per-stream sums are added in stream order:
       the result depends on the thread count, never on timing */
    #pragma omp parallel for num_threads(n_streams) schedule(static, 1)
    for (int sid = 0; sid < n_streams; sid++) {
        TrainStream *st = &streams[sid];
        if (backward) memset(st->grads, 0, tm->n_params * sizeof(float));
        for (int b = sid; b < B; b += n_streams) {
            const int *in = inputs + (size_t)b * T, *tg = targets + (size_t)b * T;
            const float *wt = weights ? weights + (size_t)b * T : NULL;
            int p0 = pos0 ? pos0[b] : 0;
            st->kv.n_used = 0;
            transformer_forward(&tm->c, &tm->w, &tm->pe, &st->kv, &st->s, in, T, p0, st->logits, 1);
            parts[sid] += crossentropy_forward(st->logits, tg, wt, T, (int)V);
            if (!backward) continue;
            memset(st->dlogits, 0, (size_t)T * V * sizeof(float));
            crossentropy_backward(st->dlogits, st->logits, tg, wt, 1.0 / wsum, T, (int)V);
            transformer_backward(&tm->c, &tm->w, &tm->pe, &st->kv, &st->s, &st->g, st->dlogits, in, T, p0, st->scratch);
        }
    }
    if (backward) {
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < tm->n_params; i++) {
            float sum = 0;
            for (int sid = 0; sid < n_streams; sid++) sum += streams[sid].grads[i];
            tm->grads[i] = sum;
        }
    }
    double loss = 0;
    for (int sid = 0; sid < n_streams; sid++) loss += parts[sid];
    return loss / wsum;
}

double train_gradients(TrainModel *tm, TrainStream *streams, int n_streams, const int *inputs, const int *targets,
                       const float *weights, const int *pos0, int B, int T) {
    return batch_pass(tm, streams, n_streams, inputs, targets, weights, pos0, B, T, 1);
}

double train_loss(TrainModel *tm, TrainStream *streams, int n_streams, const int *inputs, const int *targets,
                  const float *weights, int B, int T) {
    return batch_pass(tm, streams, n_streams, inputs, targets, weights, NULL, B, T, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* AdamW */

double adamw_lr(const AdamW *opt, uint64_t step) {
    if ((int64_t)step < opt->warmup) return opt->lr * (step + 1) / opt->warmup;
    double progress = opt->steps > opt->warmup ? (double)(step - opt->warmup) / (opt->steps - opt->warmup) : 1;
    if (progress > 1) progress = 1;
    double min_lr = opt->lr * opt->min_lr_frac;
    return min_lr + 0.5 * (opt->lr - min_lr) * (1 + cos(M_PI * progress));   /* cosine from lr down to min_lr */
}

double adamw_step(TrainModel *tm, const AdamW *opt) {
    double norm2 = 0;
    for (size_t i = 0; i < tm->n_params; i++) norm2 += (double)tm->grads[i] * tm->grads[i];
    double norm = sqrt(norm2), clip = opt->grad_clip > 0 && norm > opt->grad_clip ? opt->grad_clip / norm : 1;
    double lr = adamw_lr(opt, tm->step);
    tm->step++;
    double c1 = 1 - pow(opt->beta1, (double)tm->step), c2 = 1 - pow(opt->beta2, (double)tm->step);
    for (int k = 0; k < tm->n_tensors; k++) {
        const ParamTensor *t = &tm->tensors[k];
        float wd = t->decay ? (float)opt->weight_decay : 0;
        float *p = tm->params + t->offset, *g = tm->grads + t->offset, *m = tm->adam_m + t->offset, *v = tm->adam_v + t->offset;
        for (size_t i = 0; i < t->n; i++) {
            float gi = (float)(g[i] * clip);
            m[i] = (float)(opt->beta1 * m[i] + (1 - opt->beta1) * gi);
            v[i] = (float)(opt->beta2 * v[i] + (1 - opt->beta2) * gi * gi);
            p[i] -= (float)(lr * ((m[i] / c1) / (sqrt(v[i] / c2) + opt->eps) + wd * p[i]));
        }
    }
    return norm;
}

/* ------------------------------------------------------------------------------------------ */
/* saving */

int trainmodel_save(const TrainModel *tm, const char *path, const TrainFacts *facts, int with_optimizer,
                    void (*write_tokenizer)(void *ctx, GgufWriter *w), void *tok_ctx, char *err) {
    const Config *c = &tm->c;
    const PeSettings *pe = &tm->pe.set;
    GgufWriter w;
    gguf_w_init(&w);
    static const char *pe_names[] = {"none", "learned", "rope", "alibi", "t5"};
    const char *pe_name = c->pe_family == PE_FAMILY_ABSOLUTE ? pe->method : pe_names[c->pe_family];
    gguf_w_str(&w, "general.architecture", "pelab");
    gguf_w_u32(&w, "pelab.context_length", c->train_ctx);
    gguf_w_u32(&w, "pelab.embedding_length", c->dim);
    gguf_w_u32(&w, "pelab.block_count", c->n_layers);
    gguf_w_u32(&w, "pelab.feed_forward_length", c->hidden_dim);
    gguf_w_u32(&w, "pelab.attention.head_count", c->n_heads);
    gguf_w_u32(&w, "pelab.attention.head_count_kv", c->n_kv_heads);
    gguf_w_u32(&w, "pelab.attention.key_length", c->head_dim);
    gguf_w_str(&w, "pelab.norm", c->norm == NORM_LAYER ? "layernorm" : "rmsnorm");
    gguf_w_f32(&w, "pelab.norm_epsilon", c->norm_eps);
    gguf_w_str(&w, "pelab.mlp", c->mlp == MLP_GELU ? "gelu" : "swiglu");
    gguf_w_bool(&w, "pelab.bias", c->linear_bias);
    gguf_w_str(&w, "pelab.pe", pe_name);
    if (c->pe_family == PE_FAMILY_ABSOLUTE) {
        gguf_w_str(&w, "pelab.pe.sinusoidal_variant", pe->sinusoid == SINUSOID_FAIRSEQ ? "fairseq" : "vaswani");
        gguf_w_f32(&w, "pelab.pe.sinusoidal_scale", (float)pe->sinusoid_scale);
    }
    if (c->pe_family == PE_FAMILY_ROPE) {
        gguf_w_f32(&w, "pelab.rope.freq_base", (float)pe->rope_base);
        gguf_w_u32(&w, "pelab.rope.dimension_count", pe->n_rot);
        gguf_w_str(&w, "pelab.rope.layout", pe->layout == ROPE_NEOX ? "neox" : "interleaved");
        if (strcmp(pe->method, "rope")) {   /* trained with a scaling method: the file says so */
            gguf_w_str(&w, "pelab.rope.scaling.type", pe->method);
            gguf_w_f32(&w, "pelab.rope.scaling.factor", (float)pe->scale);
            gguf_w_u32(&w, "pelab.rope.scaling.original_context_length", pe->orig_ctx);
        }
    }
    if (c->pe_family == PE_FAMILY_ALIBI) gguf_w_f32(&w, "pelab.attention.max_alibi_bias", (float)pe->alibi_max_bias);
    if (c->pe_family == PE_FAMILY_T5) {
        gguf_w_u32(&w, "pelab.attention.relative_buckets_count", pe->t5_buckets);
        gguf_w_u32(&w, "pelab.attention.relative_max_distance", pe->t5_max_distance);
    }
    if (facts) {
        gguf_w_u64(&w, "pelab.train.tokens", facts->tokens_seen);
        gguf_w_u64(&w, "pelab.train.seed", facts->seed);
        gguf_w_str(&w, "pelab.train.data", facts->data ? facts->data : "");
        gguf_w_str(&w, "pelab.train.recipe", facts->recipe ? facts->recipe : "");
        gguf_w_f32(&w, "pelab.train.wall_seconds", (float)facts->wall_s);
        if (facts->passkey_trials) {
            gguf_w_f32(&w, "pelab.train.heldout_loss", (float)facts->heldout_loss);
            gguf_w_f32(&w, "pelab.train.passkey_exact", (float)facts->passkey);
            gguf_w_u32(&w, "pelab.train.passkey_trials", (uint32_t)facts->passkey_trials);
        }
    }
    gguf_w_u64(&w, "pelab.train.optimizer_steps", tm->step);
    if (write_tokenizer) write_tokenizer(tok_ctx, &w);
    char name[128];
    for (int pass = 0; pass < (with_optimizer ? 3 : 1); pass++) {
        const char *prefix[3] = {"", "opt.m.", "opt.v."};
        const float *src[3] = {tm->params, tm->adam_m, tm->adam_v};
        for (int i = 0; i < tm->n_tensors; i++) {
            const ParamTensor *t = &tm->tensors[i];
            snprintf(name, sizeof name, "%s%s", prefix[pass], t->name);
            gguf_w_tensor(&w, name, t->n_dims, t->ne, GGML_F32, src[pass] + t->offset);
        }
    }
    int r = gguf_w_write(&w, path, err);
    gguf_w_free(&w);
    return r;
}
