#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "tests/testmodel.h"

TestModelSpec test_model_spec(const char *pe) {
    return (TestModelSpec){.pe = pe, .n_layers = 2, .dim = 32, .n_heads = 4, .n_kv_heads = 2, .hidden = 48,
                           .vocab = 256, .ctx = 32, .seed = 1};
}

static float *random_tensor(size_t n, float scale, uint64_t *rng) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *rng ^= *rng << 13; *rng ^= *rng >> 7; *rng ^= *rng << 17;
        p[i] = ((float)(*rng >> 40) / 16777216.0f * 2 - 1) * scale;
    }
    return p;
}

int test_model_write(const char *path, const TestModelSpec *s) {
    GgufWriter w;
    gguf_w_init(&w);
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ s->seed;
    float *owned[256];
    int n_owned = 0;
    char name[96];
    int D = s->dim, H = s->hidden, hd = s->dim / s->n_heads, kvd = s->n_kv_heads * hd;
#define ADD(nm, n0, n1, scale) do { uint64_t ne_[2] = {(uint64_t)(n0), (uint64_t)(n1)}; \
        float *t_ = owned[n_owned++] = random_tensor((size_t)(n0) * (n1), (scale), &rng); \
        gguf_w_tensor(&w, (nm), (n1) > 1 ? 2 : 1, ne_, GGML_F32, t_); } while (0)
#define ONES(nm, n0) do { uint64_t ne_[1] = {(uint64_t)(n0)}; float *t_ = owned[n_owned++] = malloc((n0) * sizeof(float)); \
        for (int i_ = 0; i_ < (n0); i_++) t_[i_] = 1.0f + 0.1f * (float)(i_ % 7) / 7; \
        gguf_w_tensor(&w, (nm), 1, ne_, GGML_F32, t_); } while (0)

    gguf_w_str(&w, "general.architecture", "pelab");
    gguf_w_u32(&w, "pelab.context_length", s->ctx);
    gguf_w_u32(&w, "pelab.embedding_length", D);
    gguf_w_u32(&w, "pelab.block_count", s->n_layers);
    gguf_w_u32(&w, "pelab.feed_forward_length", H);
    gguf_w_u32(&w, "pelab.attention.head_count", s->n_heads);
    gguf_w_u32(&w, "pelab.attention.head_count_kv", s->n_kv_heads);
    gguf_w_str(&w, "pelab.norm", s->layernorm ? "layernorm" : "rmsnorm");
    gguf_w_f32(&w, "pelab.norm_epsilon", 1e-5f);
    gguf_w_str(&w, "pelab.mlp", s->gelu ? "gelu" : "swiglu");
    gguf_w_bool(&w, "pelab.bias", s->bias);
    gguf_w_str(&w, "pelab.pe", s->pe);
    if (s->rope_scaling) {
        gguf_w_str(&w, "pelab.rope.scaling.type", s->rope_scaling);
        gguf_w_f32(&w, "pelab.rope.scaling.factor", s->rope_factor);
    }
    /* bytes tokenizer: ids 0..255 are bytes, 256 is BOS */
    const char *pieces[257];
    char storage[257][8];
    for (int i = 0; i < 256; i++) { snprintf(storage[i], 8, "<0x%02X>", i); pieces[i] = storage[i]; }
    pieces[256] = "<s>";
    int vocab_tok = s->vocab >= 257 ? 257 : 256;
    gguf_w_str(&w, "tokenizer.ggml.model", "bytes");
    gguf_w_str_array(&w, "tokenizer.ggml.tokens", pieces, vocab_tok);
    if (vocab_tok == 257) gguf_w_u32(&w, "tokenizer.ggml.bos_token_id", 256);

    ADD("token_embd.weight", D, s->vocab, 1.0f);
    if (!strcmp(s->pe, "learned")) ADD("position_embd.weight", D, s->ctx, 0.5f);
    if (!strcmp(s->pe, "t5")) ADD("dec.blk.0.attn_rel_b.weight", s->n_heads, 32, 1.0f);
    float ws = 1.0f / (float)D, hs = 1.0f / (float)H;
    for (int l = 0; l < s->n_layers; l++) {
#define NM(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        ONES(NM("attn_norm.weight"), D);
        if (s->layernorm) ADD(NM("attn_norm.bias"), D, 1, 0.1f);
        ADD(NM("attn_q.weight"), D, D, 4 * ws);
        ADD(NM("attn_k.weight"), D, kvd, 4 * ws);
        ADD(NM("attn_v.weight"), D, kvd, 4 * ws);
        ADD(NM("attn_output.weight"), D, D, 2 * ws);
        if (s->bias) { ADD(NM("attn_q.bias"), D, 1, 0.1f); ADD(NM("attn_k.bias"), kvd, 1, 0.1f); ADD(NM("attn_v.bias"), kvd, 1, 0.1f); ADD(NM("attn_output.bias"), D, 1, 0.1f); }
        ONES(NM("ffn_norm.weight"), D);
        if (s->layernorm) ADD(NM("ffn_norm.bias"), D, 1, 0.1f);
        if (!s->gelu) { ADD(NM("ffn_gate.weight"), D, H, 2 * ws); if (s->bias) ADD(NM("ffn_gate.bias"), H, 1, 0.1f); }
        ADD(NM("ffn_up.weight"), D, H, 2 * ws);
        ADD(NM("ffn_down.weight"), H, D, 2 * hs);
        if (s->bias) { ADD(NM("ffn_up.bias"), H, 1, 0.1f); ADD(NM("ffn_down.bias"), D, 1, 0.1f); }
#undef NM
    }
    ONES("output_norm.weight", D);
    if (s->layernorm) ADD("output_norm.bias", D, 1, 0.1f);
    if (!s->tied) ADD("output.weight", D, s->vocab, 1.0f);
    char err[GGUF_ERR];
    int r = gguf_w_write(&w, path, err);
    if (r) fprintf(stderr, "%s\n", err);
    gguf_w_free(&w);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    return r;
#undef ADD
#undef ONES
}
