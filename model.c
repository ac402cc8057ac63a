/* Model loading (llama, gpt2, bloom and the project's own self-describing `pelab` architecture)
   and the forward pass. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "f16.h"
#include "model.h"
#include "ops.h"


/* ------------------------------------------------------------------------------------------ */
/* loading */

typedef struct {
    Model *m;
    const char *arch;     /* key prefix */
    char *err;
    int failed;
} Loader;

static int load_fail(Loader *L, const char *fmt, const char *a, const char *b) {
    if (!L->failed) { snprintf(L->err, GGUF_ERR, fmt, a, b); gguf_one_line(L->err); }
    L->failed = 1;
    return -1;
}

/* {arch}.suffix as an int in [lo, hi]; returns def when missing */
static int meta_int(Loader *L, const char *suffix, int64_t lo, int64_t hi, int64_t def, int required) {
    char key[128];
    int64_t v = def;
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int r = gguf_get_int(&L->m->gguf, key, lo, hi, &v, L->err);
    if (r < 0) L->failed = 1;
    if (r == 0 && required) load_fail(L, "missing key '%s'%s", key, "");
    return (int)v;
}

static double meta_float(Loader *L, const char *suffix, double def) {
    char key[128];
    double v = def;
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    if (gguf_get_float(&L->m->gguf, key, &v, L->err) < 0) L->failed = 1;
    if (!isfinite(v)) load_fail(L, "key '%s' is not finite%s", key, "");
    return v;
}

static int meta_bool(Loader *L, const char *suffix, int def) {
    char key[128];
    int v = def;
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    if (gguf_get_bool(&L->m->gguf, key, &v, L->err) < 0) L->failed = 1;
    return v;
}

/* {arch}.suffix as one of `choices` (NULL-terminated); returns the index, or def when missing */
static int meta_choice(Loader *L, const char *suffix, const char *const *choices, int def) {
    char key[128], list[160] = "";
    GgufStr s;
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int r = gguf_get_str(&L->m->gguf, key, &s, L->err);
    if (r < 0) L->failed = 1;
    if (r <= 0) return def;
    for (int i = 0; choices[i]; i++) {
        if (gguf_str_eq(s, choices[i])) return i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", choices[i]);
    }
    load_fail(L, "key '%s' has an unsupported value (supported: %s)", key, list);
    return def;
}

static void *own(Model *m, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    void **list = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *list);
    if (!p || !list) { free(p); if (list) m->owned = list; return NULL; }
    m->owned = list;
    m->owned[m->n_owned++] = p;
    return p;
}

/* The tensor `name` if it has shape [ne1][ne0] (ne1 = 0: one-dimensional). Missing: NULL, an error if required. */
static const GgufTensor *shaped_tensor(Loader *L, const char *name, int64_t ne0, int64_t ne1, int required) {
    const GgufTensor *t = gguf_tensor(&L->m->gguf, name);
    if (!t) {
        if (required) load_fail(L, "missing tensor '%s'%s", name, "");
        return NULL;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if ((int64_t)t->ne[0] != ne0 || (int64_t)t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1 || (!ne1 && t->n_dims != 1)) {
        char want[64];
        snprintf(want, sizeof want, ne1 ? "[%lld, %lld]" : "[%lld]", (long long)ne0, (long long)ne1);
        char msg[GGUF_ERR];
        snprintf(msg, sizeof msg, "tensor '%%s' has shape [%llu, %llu, %llu, %llu], expected %%s", (unsigned long long)t->ne[0],
                 (unsigned long long)t->ne[1], (unsigned long long)t->ne[2], (unsigned long long)t->ne[3]);
        load_fail(L, msg, name, want);
        return NULL;
    }
    return t;
}

/* t's data where reads of its type are aligned: in the read-only map (never written), or, for a
   file with general.alignment below the type's, an aligned copy */
static const void *aligned_data(Loader *L, const GgufTensor *t, size_t align) {
    if ((uintptr_t)t->data % align == 0) return t->data;
    void *copy = own(L->m, t->nbytes);
    if (!copy) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        load_fail(L, "out of memory copying '%s'%s", name, "");
        return NULL;
    }
    memcpy(copy, t->data, t->nbytes);
    return copy;
}

/* A weight matrix [ne1][ne0], used as stored (F32, F16 or Q8_0) by linear_forward. 1 if found. */
static int matrix(Loader *L, Mat *M, const char *name, int64_t ne0, int64_t ne1, int required) {
    const GgufTensor *t = shaped_tensor(L, name, ne0, ne1, required);
    memset(M, 0, sizeof *M);
    if (!t) return 0;
    M->type = (int)t->type;
    const void *data = aligned_data(L, t, t->type == GGML_F32 ? _Alignof(float) : _Alignof(uint16_t));   /* F16 and Q8_0: halves */
    if (t->type == GGML_F32) M->f = (float *)data;
    else M->q = data;
    return data != NULL;
}

/* Any other tensor (norms, biases, position and bias tables: small, or read a row at a time), as
   F32: in place, or converted from F16 / Q8_0 at load. */
static float *tensor(Loader *L, const char *name, int64_t ne0, int64_t ne1, int required) {
    const GgufTensor *t = shaped_tensor(L, name, ne0, ne1, required);
    if (!t) return NULL;
    if (t->type == GGML_F32) return (float *)aligned_data(L, t, _Alignof(float));
    size_t n = (size_t)ne0 * (size_t)(ne1 ? ne1 : 1);
    float *out = own(L->m, n * sizeof *out);
    if (!out) { load_fail(L, "out of memory converting '%s'%s", name, ""); return NULL; }
    dequantize_row(out, t->data, (int)t->type, n);
    return out;
}

/* rope.scaling.type (llama.cpp: missing means "linear", which with no factor means no scaling) */
static void load_rope_settings(Loader *L, PeSettings *pe, int head_dim) {
    static const char *types[] = {"none", "linear", "yarn", "ntk", "dynamic", "llama3", NULL};
    static const char *layouts[] = {"interleaved", "neox", NULL};
    pe->rope_base = meta_float(L, "rope.freq_base", 10000.0);
    pe->n_rot = meta_int(L, "rope.dimension_count", 2, PE_MAX_HEAD_DIM, head_dim, 0);
    pe->layout = (RopeLayout)meta_choice(L, "rope.layout", layouts, ROPE_INTERLEAVED);
    pe->scale = meta_float(L, "rope.scaling.factor", meta_float(L, "rope.scale_linear", 0));
    pe->orig_ctx = meta_int(L, "rope.scaling.original_context_length", 1, 1 << 30, 0, 0);
    pe->attn_factor = meta_float(L, "rope.scaling.attn_factor", 0);
    pe->yarn_attn = meta_float(L, "rope.scaling.yarn_attn_factor", 0);
    pe->yarn_ext = meta_float(L, "rope.scaling.yarn_ext_factor", -1);
    pe->beta_fast = meta_float(L, "rope.scaling.yarn_beta_fast", 0);
    pe->beta_slow = meta_float(L, "rope.scaling.yarn_beta_slow", 0);
    pe->llama3_low = meta_float(L, "rope.scaling.low_freq_factor", 0);
    pe->llama3_high = meta_float(L, "rope.scaling.high_freq_factor", 0);
    int type = meta_choice(L, "rope.scaling.type", types, 1);
    if (type == 1 && !(pe->scale > 0 && pe->scale != 1)) type = 0;
    snprintf(pe->method, sizeof pe->method, "%s", type == 0 ? "rope" : types[type]);
    if (type == 0) pe->scale = 0;
}

static int load_config(Loader *L) {
    Model *m = L->m;
    Config *c = &m->c;
    GgufStr arch;
    static const char *archs[] = {"llama", "gpt2", "bloom", "pelab", NULL};
    int r = gguf_get_str(&m->gguf, "general.architecture", &arch, L->err);
    if (r < 0) return -1;
    if (r == 0) return load_fail(L, "missing key 'general.architecture'%s%s", "", "");
    int a = 0;
    while (archs[a] && !gguf_str_eq(arch, archs[a])) a++;
    if (!archs[a]) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(arch.len < 40 ? arch.len : 40), arch.ptr);
        return load_fail(L, "unknown architecture '%s' (supported: %s)", name, "llama, gpt2, bloom, pelab");
    }
    c->arch = (Arch)a;
    L->arch = archs[a];
    c->train_ctx = meta_int(L, "context_length", 1, 1 << 30, 0, 1);
    c->dim = meta_int(L, "embedding_length", 1, 1 << 16, 0, 1);
    c->n_layers = meta_int(L, "block_count", 1, MAX_LAYERS, 0, 1);
    c->hidden_dim = meta_int(L, "feed_forward_length", 1, 1 << 20, 0, 1);
    c->n_heads = meta_int(L, "attention.head_count", 1, PE_MAX_HEADS, 0, 1);
    if (L->failed) return -1;
    c->n_kv_heads = meta_int(L, "attention.head_count_kv", 1, c->n_heads, c->n_heads, 0);
    c->head_dim = meta_int(L, "attention.key_length", 1, PE_MAX_HEAD_DIM, 0, 0);
    if (L->failed) return -1;
    if (c->n_heads % c->n_kv_heads) return load_fail(L, "head count must be a multiple of the KV head count%s%s", "", "");
    if (!c->head_dim) {   /* no key_length: the heads split the embedding */
        if (c->dim % c->n_heads || c->dim / c->n_heads > PE_MAX_HEAD_DIM)
            return load_fail(L, "embedding length is not a multiple of the head count, and no attention.key_length is given%s%s", "", "");
        c->head_dim = c->dim / c->n_heads;
    }

    PeSettings *pe = &c->pe;
    memset(pe, 0, sizeof *pe);
    pe->yarn_ext = -1;
    switch (c->arch) {
    case ARCH_LLAMA:
        c->norm = NORM_RMS; c->mlp = MLP_SWIGLU;
        c->norm_eps = (float)meta_float(L, "attention.layer_norm_rms_epsilon", 1e-5);
        c->pe_family = PE_FAMILY_ROPE;
        load_rope_settings(L, pe, c->head_dim);
        pe->layout = ROPE_INTERLEAVED;   /* llama.cpp fixes the layout by architecture */
        break;
    case ARCH_GPT2:
    case ARCH_BLOOM:
        c->norm = NORM_LAYER; c->mlp = MLP_GELU; c->linear_bias = 1;
        c->norm_eps = (float)meta_float(L, "attention.layer_norm_epsilon", 1e-5);
        c->embd_norm = c->arch == ARCH_BLOOM;
        c->pe_family = c->arch == ARCH_BLOOM ? PE_FAMILY_ALIBI : PE_FAMILY_ABSOLUTE;
        snprintf(pe->method, sizeof pe->method, "%s", c->arch == ARCH_BLOOM ? "alibi" : "learned");
        pe->alibi_max_bias = meta_float(L, "attention.max_alibi_bias", 8.0);
        break;
    case ARCH_PELAB: {
        static const char *norms[] = {"rmsnorm", "layernorm", NULL}, *mlps[] = {"swiglu", "gelu", NULL};
        static const char *pes[] = {"none", "learned", "sinusoidal", "rope", "alibi", "t5", NULL};
        static const char *variants[] = {"vaswani", "fairseq", NULL};
        static const PeFamily fam[] = {PE_FAMILY_NONE, PE_FAMILY_ABSOLUTE, PE_FAMILY_ABSOLUTE, PE_FAMILY_ROPE, PE_FAMILY_ALIBI, PE_FAMILY_T5};
        c->norm = (NormKind)meta_choice(L, "norm", norms, NORM_RMS);
        c->norm_eps = (float)meta_float(L, "norm_epsilon", 1e-5);
        c->mlp = (MlpKind)meta_choice(L, "mlp", mlps, MLP_SWIGLU);
        c->linear_bias = meta_bool(L, "bias", 0);
        int p = meta_choice(L, "pe", pes, -1);
        if (p < 0) return load_fail(L, "missing key 'pelab.pe'%s%s", "", "");
        c->pe_family = fam[p];
        if (c->pe_family == PE_FAMILY_ROPE) load_rope_settings(L, pe, c->head_dim);
        else snprintf(pe->method, sizeof pe->method, "%s", pes[p]);
        pe->sinusoid = (SinusoidVariant)meta_choice(L, "pe.sinusoidal_variant", variants, SINUSOID_VASWANI);
        pe->sinusoid_scale = meta_float(L, "pe.sinusoidal_scale", 1.0);
        pe->alibi_max_bias = meta_float(L, "attention.max_alibi_bias", 8.0);
        pe->t5_buckets = meta_int(L, "attention.relative_buckets_count", 4, 4096, 32, 0);
        pe->t5_max_distance = meta_int(L, "attention.relative_max_distance", 3, 1 << 30, 128, 0);
        break;
    }
    }
    if (!(c->norm_eps > 0)) return load_fail(L, "norm epsilon must be positive%s%s", "", "");
    return L->failed ? -1 : 0;
}

static int load_weights(Loader *L) {
    Model *m = L->m;
    Config *c = &m->c;
    Weights *w = &m->w;
    const GgufTensor *te = gguf_tensor(&m->gguf, "token_embd.weight");
    if (!te) return load_fail(L, "missing tensor '%s'%s", "token_embd.weight", "");
    if (te->ne[1] < 1 || te->ne[1] > (1 << 24)) return load_fail(L, "token_embd.weight: bad vocabulary size%s%s", "", "");
    c->vocab_size = (int)te->ne[1];
    int D = c->dim, H = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int layer_norm = c->norm == NORM_LAYER, bias = c->linear_bias;
    char n[96];
    matrix(L, &w->tok_embd, "token_embd.weight", D, c->vocab_size, 1);
    if (c->embd_norm) {
        w->embd_norm = tensor(L, "token_embd_norm.weight", D, 0, 1);
        w->embd_norm_b = tensor(L, "token_embd_norm.bias", D, 0, 1);
    }
    const GgufTensor *tp = gguf_tensor(&m->gguf, "position_embd.weight");
    if (tp) {
        w->pos_rows = tp->ne[1] > (1u << 30) ? 0 : (int)tp->ne[1];
        w->pos_embd = tensor(L, "position_embd.weight", D, w->pos_rows, 1);
    } else if (c->arch == ARCH_GPT2) {
        return load_fail(L, "missing tensor '%s'%s", "position_embd.weight", "");
    }
    const GgufTensor *tf = gguf_tensor(&m->gguf, "rope_freqs.weight");
    if (tf && c->pe_family == PE_FAMILY_ROPE) w->rope_freqs = tensor(L, "rope_freqs.weight", c->pe.n_rot > 0 ? c->pe.n_rot / 2 : c->head_dim / 2, 0, 1);
    if (c->pe_family == PE_FAMILY_T5) w->rel_bias = tensor(L, "dec.blk.0.attn_rel_b.weight", c->n_heads, c->pe.t5_buckets, 1);
    for (int l = 0; l < c->n_layers && !L->failed; l++) {
        LayerWeights *lw = &w->layers[l];
#define T1(field, suffix, ne0, need) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), lw->field = tensor(L, n, ne0, 0, need))
#define M2(field, suffix, ne0, ne1) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), matrix(L, &lw->field, n, ne0, ne1, 1))
        T1(attn_norm, "attn_norm.weight", D, 1);
        T1(attn_norm_b, "attn_norm.bias", D, layer_norm);
        snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
        if (gguf_tensor(&m->gguf, n)) {   /* fused [Q | K | V] rows (gpt2, bloom): split into views */
            Mat wqkv;
            if (matrix(L, &wqkv, n, D, qd + 2 * kvd, 1)) {
                lw->wq = wqkv;
                lw->wk = mat_rows(wqkv, (size_t)qd, D);
                lw->wv = mat_rows(wqkv, (size_t)qd + kvd, D);
            }
            snprintf(n, sizeof n, "blk.%d.attn_qkv.bias", l);
            float *bqkv = tensor(L, n, qd + 2 * kvd, 0, bias);
            if (bqkv) { lw->bq = bqkv; lw->bk = bqkv + qd; lw->bv = bqkv + qd + kvd; }
        } else {
            M2(wq, "attn_q.weight", D, qd);
            M2(wk, "attn_k.weight", D, kvd);
            M2(wv, "attn_v.weight", D, kvd);
            T1(bq, "attn_q.bias", qd, bias);
            T1(bk, "attn_k.bias", kvd, bias);
            T1(bv, "attn_v.bias", kvd, bias);
        }
        M2(wo, "attn_output.weight", qd, D);
        T1(bo, "attn_output.bias", D, bias);
        T1(ffn_norm, "ffn_norm.weight", D, 1);
        T1(ffn_norm_b, "ffn_norm.bias", D, layer_norm);
        if (c->mlp == MLP_SWIGLU) {
            M2(w_gate, "ffn_gate.weight", D, H);
            T1(b_gate, "ffn_gate.bias", H, bias);
        }
        M2(w_up, "ffn_up.weight", D, H);
        T1(b_up, "ffn_up.bias", H, bias);
        M2(w_down, "ffn_down.weight", H, D);
        T1(b_down, "ffn_down.bias", D, bias);
#undef T1
#undef M2
    }
    w->out_norm = tensor(L, "output_norm.weight", D, 0, 1);
    w->out_norm_b = tensor(L, "output_norm.bias", D, 0, layer_norm);
    if (!matrix(L, &w->output, "output.weight", D, c->vocab_size, 0) && !L->failed) {   /* as llama.cpp: no output.weight = tied */
        w->output = w->tok_embd;
        c->tied_output = 1;
    }
    return L->failed ? -1 : 0;
}

static void load_tokenizer(Model *m) {
    Gguf *g = &m->gguf;
    GgufStr kind;
    uint64_t n = 0;
    const void *elems = NULL, *scores = NULL, *types = NULL;
    uint64_t ns = 0, nt = 0;
    char *err = m->tok_err;
    if (gguf_get_str(g, "tokenizer.ggml.model", &kind, err) <= 0) {
        if (!err[0]) snprintf(err, GGUF_ERR, "the model has no tokenizer (tokenizer.ggml.model is missing)");
        return;
    }
    TokKind tk;
    if (gguf_str_eq(kind, "llama")) tk = TOK_SPM;
    else if (gguf_str_eq(kind, "bytes")) tk = TOK_BYTES;
    else { snprintf(err, GGUF_ERR, "tokenizer '%.*s' is not supported (llama, bytes are)", (int)(kind.len < 40 ? kind.len : 40), kind.ptr); return; }
    if (gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, &n, &elems, err) <= 0) {
        if (!err[0]) snprintf(err, GGUF_ERR, "the model has no tokenizer.ggml.tokens");
        return;
    }
    if (gguf_get_array(g, "tokenizer.ggml.scores", GGUF_F32, &ns, &scores, err) < 0) return;
    if (gguf_get_array(g, "tokenizer.ggml.token_type", GGUF_I32, &nt, &types, err) < 0) return;
    if (n == 0 || n > (uint64_t)m->c.vocab_size || (scores && ns != n) || (types && nt != n)) {
        snprintf(err, GGUF_ERR, "tokenizer arrays disagree: %llu tokens, %llu scores, %llu types, vocabulary %d",
                 (unsigned long long)n, (unsigned long long)ns, (unsigned long long)nt, m->c.vocab_size);
        return;
    }
    int64_t bos = -1, eos = -1, unk = -1;
    int add_prefix = 1;
    if (gguf_get_int(g, "tokenizer.ggml.bos_token_id", 0, (int64_t)n - 1, &bos, err) < 0 ||
        gguf_get_int(g, "tokenizer.ggml.eos_token_id", 0, (int64_t)n - 1, &eos, err) < 0 ||
        gguf_get_int(g, "tokenizer.ggml.unknown_token_id", 0, (int64_t)n - 1, &unk, err) < 0 ||
        gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &add_prefix, err) < 0)
        return;
    const char **ptrs = malloc(n * sizeof *ptrs);
    uint64_t *lens = malloc(n * sizeof *lens);
    /* scores and types are packed little-endian arrays inside the map: copy for alignment */
    float *sc = scores ? malloc(n * sizeof *sc) : NULL;
    int32_t *ty = types ? malloc(n * sizeof *ty) : NULL;
    if (!ptrs || !lens || (scores && !sc) || (types && !ty)) snprintf(err, GGUF_ERR, "out of memory loading the tokenizer");
    else {
        gguf_string_array(elems, n, ptrs, lens);
        if (sc) memcpy(sc, scores, n * sizeof *sc);
        if (ty) memcpy(ty, types, n * sizeof *ty);
        m->has_tok = tokenizer_init(&m->tok, tk, (int)n, ptrs, lens, sc, ty, (int)bos, (int)eos, (int)unk, add_prefix, err) == 0;
    }
    free(ptrs); free(lens); free(sc); free(ty);
}

int model_open(Model *m, const char *path, char *err) {
    memset(m, 0, sizeof *m);
    if (gguf_open(&m->gguf, path, err)) return -1;
    Loader L = {.m = m, .err = err};
    if (load_config(&L) || load_weights(&L)) {
        char inner[GGUF_ERR];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, GGUF_ERR, "%.80s: %.170s", path, inner);
        model_close(m);
        return -1;
    }
    load_tokenizer(m);
    return 0;
}

int model_prepare(Model *m, const PeSettings *pe, int n_slots, KvType kv_type, int max_chunk, char *err) {
    Config *c = &m->c;
    Encoding *e = &m->pe;
    memset(e, 0, sizeof *e);
    e->set = *pe;
    e->model = (PeModel){.dim = c->dim, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                         .train_ctx = c->train_ctx, .run_ctx = n_slots, .pos_table = m->w.pos_embd, .pos_rows = m->w.pos_rows,
                         .freq_div = m->w.rope_freqs, .n_freq_div = m->w.rope_freqs ? (int)gguf_tensor(&m->gguf, "rope_freqs.weight")->ne[0] : 0,
                         .rel_bias = m->w.rel_bias};
    if (encoding_init(e, c->pe_family, err)) return -1;
    if (max_chunk < 1) return encoding_error(err, "chunk size must be at least 1");
    if (kv_type == KV_F16 && e->ops->retune && !e->set.dyn_stale)   /* measured: logits off by 0.34 after 450 retunes on a llama.cpp fixture */
        return encoding_error(err, "-kv f16 does not combine with -pe %s: every new position re-rotates every cached key, and the "
                                   "half rounding would build up; use -kv f32 (or -dyn-kv stale)", e->method->name);
    kv_free(&m->kv);
    if (kv_init(&m->kv, c->n_layers, n_slots, c->n_kv_heads * c->head_dim, kv_type, e->ops->far_pos != NULL, err)) return -1;
    runstate_free(&m->s);
    return runstate_init(&m->s, c, max_chunk, 0, e->ops->far_pos != NULL, err);
}

void model_reset(Model *m) {
    m->kv.n_used = 0;
    if (m->pe.ops && m->pe.ops->retune) m->pe.ops->retune(&m->pe, 0);   /* back to the original base; no key to re-rotate */
}

void model_close(Model *m) {
    kv_free(&m->kv);
    runstate_free(&m->s);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->has_tok) tokenizer_free(&m->tok);
    gguf_close(&m->gguf);
    memset(m, 0, sizeof *m);
}

int model_next_pos(const Model *m) { return kv_max_pos(&m->kv) + 1; }

/* ------------------------------------------------------------------------------------------ */
/* run state */

/* Buffer sizes of one layer's activations and of the rest, in floats, for T rows */
static void layer_sizes(const Config *c, size_t T, size_t sz[15]) {
    size_t D = c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, H = c->hidden_dim;
    size_t gate = c->mlp == MLP_SWIGLU ? T * H : 0;
    size_t v[15] = {T * D, T * D, T, T, T * qd, T * kvd, T * kvd, T * qd, T * c->n_heads, T * D, T * D, T, T, T * H, gate};
    memcpy(sz, v, sizeof v);
}

int runstate_init(RunState *s, const Config *c, int max_T, int keep_layers, int far_view, char *err) {
    memset(s, 0, sizeof *s);
    size_t T = (size_t)max_T, D = c->dim, sz[15], per_layer = 0;
    layer_sizes(c, T, sz);
    for (int i = 0; i < 15; i++) per_layer += sz[i];
    per_layer += T * c->hidden_dim;   /* h */
    int n_sets = keep_layers ? c->n_layers : 1;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t total = per_layer * n_sets + 4 * T * D + 2 * T + (far_view ? T * (qd + kvd) : 0);
    s->block = malloc(total * sizeof(float));
    if (!s->block) return encoding_error(err, "out of memory for a run state of %d-token chunks", max_T);
    float *p = s->block;
    for (int l = 0; l < n_sets; l++) {
        LayerActs *a = &s->layer[l];
        float **bufs[15] = {&a->x, &a->xn, &a->mean, &a->rstd, &a->q, &a->k, &a->v, &a->att, &a->lse, &a->x_mid, &a->xn2, &a->mean2,
                            &a->rstd2, &a->up, &a->gate};
        for (int i = 0; i < 15; i++) { *bufs[i] = sz[i] ? p : NULL; p += sz[i]; }
        a->h = p;
        p += T * c->hidden_dim;
    }
    s->x_out = p; p += T * D;
    s->xn_out = p; p += T * D;
    s->proj = p; p += T * D;
    s->mean_out = p; p += T;
    s->rstd_out = p; p += T;
    if (far_view) {
        s->q_far = p; p += T * qd;
        s->k_far = p; p += T * kvd;
    }
    if (!keep_layers) {   /* one residual buffer, updated in place through every layer */
        for (int l = 1; l < c->n_layers; l++) s->layer[l] = s->layer[0];
        for (int l = 0; l < c->n_layers; l++) s->layer[l].x_mid = s->layer[0].x;
        s->x_out = s->layer[0].x;
    }
    s->max_T = max_T;
    s->keep_layers = keep_layers;
    return 0;
}

void runstate_free(RunState *s) {
    free(s->block);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------------------ */
/* the forward pass, and beside it its backward */

static void add_rows(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void transformer_forward(const Config *c, const Weights *w, const Encoding *e, KVCache *kv, RunState *s, const int *tokens,
                         int T, int pos0, float *logits, int all_rows) {
    int D = c->dim, H = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = kv->kv_dim, slot0 = kv->n_used;
    int layer_norm = c->norm == NORM_LAYER;
    float *x0 = s->layer[0].x;
    for (int t = 0; t < T; t++) {
        mat_row(x0 + (size_t)t * D, &w->tok_embd, (size_t)tokens[t], D);
        if (e->ops->add_input) e->ops->add_input(e, x0 + (size_t)t * D, pos0 + t);
        kv->pos[slot0 + t] = pos0 + t;
    }
    if (c->embd_norm) {
        norm_forward(s->proj, s->layer[0].mean, s->layer[0].rstd, x0, w->embd_norm, w->embd_norm_b, T, D, c->norm_eps);
        memcpy(x0, s->proj, (size_t)T * D * sizeof(float));
    }
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &w->layers[l];
        LayerActs *a = &s->layer[l];
        float *x_next = l + 1 < c->n_layers ? s->layer[l + 1].x : s->x_out;
        /* attention block */
        norm_forward(a->xn, layer_norm ? a->mean : NULL, a->rstd, a->x, lw->attn_norm, lw->attn_norm_b, T, D, c->norm_eps);
        linear_forward(a->q, a->xn, &lw->wq, lw->bq, T, D, qd);
        linear_forward(a->k, a->xn, &lw->wk, lw->bk, T, D, kvd);
        linear_forward(a->v, a->xn, &lw->wv, lw->bv, T, D, kvd);
        if (e->ops->far_pos) {   /* the far view: the same q and k, rotated at the encoding's far positions */
            memcpy(s->q_far, a->q, (size_t)T * qd * sizeof(float));
            memcpy(s->k_far, a->k, (size_t)T * kvd * sizeof(float));
            for (int t = 0; t < T; t++) {
                e->ops->rotate(e, e->ops->far_pos(e, pos0 + t, 1), s->q_far + (size_t)t * qd, c->n_heads, NULL, 0);
                e->ops->rotate(e, e->ops->far_pos(e, pos0 + t, 0), NULL, 0, s->k_far + (size_t)t * kvd, c->n_kv_heads);
            }
        }
        if (e->ops->rotate)
            for (int t = 0; t < T; t++)
                e->ops->rotate(e, pos0 + t, a->q + (size_t)t * qd, c->n_heads, a->k + (size_t)t * kvd, c->n_kv_heads);
        kv_store(kv, l, slot0, a->k, s->k_far, a->v, T);
        int far = kv->k_far != NULL;
        attention_forward(a->att, a->lse, a->q, far ? s->q_far : NULL, kv_row(kv, kv->k, l, 0), far ? kv_row(kv, kv->k_far, l, 0) : NULL,
                          kv_row(kv, kv->v, l, 0), kv->type == KV_F16, kv->pos, slot0 + T, pos0, T, c->n_heads, c->n_kv_heads, c->head_dim, e);
        linear_forward(s->proj, a->att, &lw->wo, lw->bo, T, qd, D);
        add_rows(a->x_mid, a->x, s->proj, (size_t)T * D);
        /* MLP block */
        norm_forward(a->xn2, layer_norm ? a->mean2 : NULL, a->rstd2, a->x_mid, lw->ffn_norm, lw->ffn_norm_b, T, D, c->norm_eps);
        linear_forward(a->up, a->xn2, &lw->w_up, lw->b_up, T, D, H);
        if (c->mlp == MLP_SWIGLU) {
            linear_forward(a->gate, a->xn2, &lw->w_gate, lw->b_gate, T, D, H);
            swiglu_forward(a->h, a->gate, a->up, (long)T * H);
        } else {
            gelu_forward(a->h, a->up, (long)T * H);
        }
        linear_forward(s->proj, a->h, &lw->w_down, lw->b_down, T, H, D);
        add_rows(x_next, a->x_mid, s->proj, (size_t)T * D);
    }
    kv->n_used += T;
    if (!logits) return;
    int first = all_rows ? 0 : T - 1;
    norm_forward(s->xn_out, layer_norm ? s->mean_out : NULL, s->rstd_out, s->x_out + (size_t)first * D, w->out_norm, w->out_norm_b,
                 T - first, D, c->norm_eps);
    linear_forward(logits, s->xn_out, &w->output, NULL, T - first, D, c->vocab_size);
}

size_t runstate_backward_floats(const Config *c, int T) {
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    return (size_t)T * (2 * (size_t)c->dim + 2 * qd + 2 * kvd + 3 * (size_t)c->hidden_dim);
}

void transformer_backward(const Config *c, const Weights *w, const Encoding *e, const KVCache *kv, const RunState *s,
                          const Weights *g, const float *dlogits, const int *tokens, int T, int pos0, float *scratch) {
    int D = c->dim, H = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int layer_norm = c->norm == NORM_LAYER;
    size_t nD = (size_t)T * D, nH = (size_t)T * H;
    float *dx = scratch, *dxn = dx + nD, *datt = dxn + nD, *dq = datt + (size_t)T * qd, *dk = dq + (size_t)T * qd,
          *dv = dk + (size_t)T * kvd, *dh = dv + (size_t)T * kvd, *dup = dh + nH, *dgate = dup + nH;
    memset(scratch, 0, runstate_backward_floats(c, T) * sizeof(float));
    /* logits = norm(x_out) W_out^T */
    matmul_backward(dxn, g->output.f, NULL, dlogits, s->xn_out, w->output.f, T, D, c->vocab_size);
    norm_backward(dx, g->out_norm, g->out_norm_b, dxn, s->x_out, layer_norm ? s->mean_out : NULL, s->rstd_out, w->out_norm, T, D);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const LayerWeights *lw = &w->layers[l], *lg = &g->layers[l];
        const LayerActs *a = &s->layer[l];
        /* MLP block: x_next = x_mid + h W_down^T; dx flows through the residual unchanged */
        memset(dh, 0, (size_t)3 * nH * sizeof(float));
        matmul_backward(dh, lg->w_down.f, lg->b_down, dx, a->h, lw->w_down.f, T, H, D);
        if (c->mlp == MLP_SWIGLU) {
            swiglu_backward(dgate, dup, dh, a->gate, a->up, (long)nH);
            memset(dxn, 0, nD * sizeof(float));
            matmul_backward(dxn, lg->w_gate.f, lg->b_gate, dgate, a->xn2, lw->w_gate.f, T, D, H);
        } else {
            gelu_backward(dup, dh, a->up, (long)nH);
            memset(dxn, 0, nD * sizeof(float));
        }
        matmul_backward(dxn, lg->w_up.f, lg->b_up, dup, a->xn2, lw->w_up.f, T, D, H);
        norm_backward(dx, lg->ffn_norm, lg->ffn_norm_b, dxn, a->x_mid, layer_norm ? a->mean2 : NULL, a->rstd2, lw->ffn_norm, T, D);
        /* attention block: x_mid = x + att W_o^T */
        memset(datt, 0, ((size_t)2 * T * qd + (size_t)2 * T * kvd) * sizeof(float));
        matmul_backward(datt, lg->wo.f, lg->bo, dx, a->att, lw->wo.f, T, qd, D);
        attention_backward(dq, dk, dv, g->rel_bias, datt, a->att, a->lse, a->q, a->k, a->v, kv->pos, T, pos0, T, c->n_heads,
                           c->n_kv_heads, c->head_dim, e);
        if (e->ops->rotate)   /* the adjoint of a rotation at p is the rotation at -p */
            for (int t = 0; t < T; t++)
                e->ops->rotate(e, -(pos0 + t), dq + (size_t)t * qd, c->n_heads, dk + (size_t)t * kvd, c->n_kv_heads);
        memset(dxn, 0, nD * sizeof(float));
        matmul_backward(dxn, lg->wq.f, lg->bq, dq, a->xn, lw->wq.f, T, D, qd);
        matmul_backward(dxn, lg->wk.f, lg->bk, dk, a->xn, lw->wk.f, T, D, kvd);
        matmul_backward(dxn, lg->wv.f, lg->bv, dv, a->xn, lw->wv.f, T, D, kvd);
        norm_backward(dx, lg->attn_norm, lg->attn_norm_b, dxn, a->x, layer_norm ? a->mean : NULL, a->rstd, lw->attn_norm, T, D);
    }
    /* x0 = tok_embd[token] + the encoding's input vector (no embedding norm in trainable models) */
    for (int t = 0; t < T; t++) {
        float *row = g->tok_embd.f + (size_t)tokens[t] * D;
        for (int i = 0; i < D; i++) row[i] += dx[(size_t)t * D + i];
        if (e->ops->input_grad) e->ops->input_grad(e, dx + (size_t)t * D, pos0 + t, g->pos_embd);
    }
}

/* Encodings whose parameters follow the sequence length (dynamic NTK) are set for seq_len. Exact
   (default): every cached key is re-rotated, so the cache always agrees with the current parameters.
   Stale (-dyn-kv stale, HF's dynamic_rope_update; HF #25104): cached keys keep the base they were
   written with; the base only grows, except that it returns to the original once the sequence is
   back within L (HF's reset rule). */
static void retune(Model *m, int seq_len) {
    Encoding *e = &m->pe;
    if (!e->ops->retune) return;
    if (e->set.dyn_stale) {
        if (seq_len > e->seq_len || seq_len <= e->set.orig_ctx) e->ops->retune(e, seq_len);
        return;
    }
    Encoding old = *e;   /* the parameters the cached keys were rotated with */
    if (e->ops->retune(e, seq_len)) kv_move_keys(&m->kv, e, &old, 0, m->kv.n_used, 0);
}

int model_forward(Model *m, const int *tokens, int T, int pos0, float *logits, int all_rows, char *err) {
    Encoding *e = &m->pe;
    KVCache *kv = &m->kv;
    if (T < 1) return encoding_error(err, "nothing to run: no tokens");
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= m->c.vocab_size)
            return encoding_error(err, "token id %d is outside the vocabulary [0, %d)", tokens[t], m->c.vocab_size);
    if (T > kv->n_slots - kv->n_used)
        return encoding_error(err, "context full: %d tokens do not fit in the %d free of %d slots (raise -ctx)", T, kv->n_slots - kv->n_used, kv->n_slots);
    int next = model_next_pos(m);
    if (pos0 < next) return encoding_error(err, "position %d is not after the cached positions (next is %d)", pos0, next);
    if ((long long)pos0 + T - 1 > e->max_pos)
        return encoding_error(err, "position %lld is past what -pe %s can represent (positions 0..%d): %s", (long long)pos0 + T - 1,
                              e->method->name, e->max_pos, e->ops->add_input ? "a learned table cannot extrapolate" : "position overflow");
    for (int a = 0; a < T;) {
        int b = T - a > m->s.max_T ? a + m->s.max_T : T;
        if (e->ops->uniform_until && !e->set.dyn_stale) {
            long long last = e->ops->uniform_until(e, pos0 + a);
            if (last - pos0 + 1 < b) b = (int)(last - pos0 + 1);
        }
        retune(m, e->set.dyn_stale ? pos0 + T : pos0 + b);   /* stale: as HF, one base per call, from its last position */
        int last_segment = b == T;
        float *out = all_rows ? logits + (size_t)a * m->c.vocab_size : last_segment ? logits : NULL;
        transformer_forward(&m->c, &m->w, e, kv, &m->s, tokens + a, b - a, pos0 + a, logits ? out : NULL, all_rows);
        a = b;
    }
    return 0;
}

int model_shift(Model *m, int keep, char *err) {
    int discard = (m->kv.n_used - keep) / 2;
    if (kv_shift(&m->kv, &m->pe, keep, discard, err)) return -1;
    retune(m, model_next_pos(m));   /* the sequence got shorter: dynamic parameters follow (HF's reset rule) */
    return discard;
}
