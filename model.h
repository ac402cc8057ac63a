/* The model: configuration, weights, a position-tracking KV cache, run state and the forward pass.
   One forward pass serves generation, evaluation and (later) training: it takes a chunk of T tokens
   at positions pos0 .. pos0+T-1, appends their keys/values to the cache, and returns logits. */
#ifndef MODEL_H
#define MODEL_H
#include "gguf.h"
#include "encodings/encoding.h"
#include "tokenizer/tokenizer.h"

typedef enum { ARCH_LLAMA, ARCH_GPT2, ARCH_BLOOM, ARCH_PELAB } Arch;
typedef enum { NORM_RMS, NORM_LAYER } NormKind;
typedef enum { MLP_SWIGLU, MLP_GELU } MlpKind;

#define MAX_LAYERS 256

typedef struct {
    Arch arch;
    int dim;             /* residual width (n_embd) */
    int hidden_dim;      /* MLP width */
    int n_layers, n_heads, n_kv_heads, head_dim;
    int vocab_size;
    int train_ctx;       /* {arch}.context_length: the training length */
    NormKind norm;
    float norm_eps;
    MlpKind mlp;
    int linear_bias;     /* every linear layer has a bias */
    int embd_norm;       /* LayerNorm right after the token embedding (bloom) */
    int tied_output;     /* the output projection is token_embd */
    PeFamily pe_family;  /* what the model was trained with */
    PeSettings pe;       /* the file's encoding settings (flags override a copy) */
} Config;

typedef struct {
    const float *attn_norm, *attn_norm_b;
    const float *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo;   /* [out][in]; fused QKV files are split views */
    const float *ffn_norm, *ffn_norm_b;
    const float *w_gate, *w_up, *w_down, *b_gate, *b_up, *b_down;
} LayerWeights;

typedef struct {
    const float *tok_embd;                 /* [vocab][dim] */
    const float *embd_norm, *embd_norm_b;
    const float *pos_embd; int pos_rows;   /* learned positions [pos_rows][dim] */
    const float *rope_freqs;               /* per-pair divisors [n_rot/2] */
    const float *rel_bias;                 /* T5 buckets [n_buckets][n_heads] */
    LayerWeights layers[MAX_LAYERS];
    const float *out_norm, *out_norm_b;
    const float *output;                   /* [vocab][dim] */
} Weights;

/* Every slot stores the position of the token in it; slot order is never read as position. */
typedef struct {
    int n_slots, n_used;
    int n_layers, kv_dim;
    int *pos;            /* [n_slots] */
    float *k, *v;        /* [n_layers][n_slots][kv_dim]; keys as the encoding left them (rotated for RoPE) */
} KVCache;

typedef struct {
    int max_T;                    /* chunk capacity */
    float *x, *xn;                /* [T][dim] residual stream, normed copy */
    float *q, *k, *v, *att;       /* [T][q_dim], [T][kv_dim] x2, [T][q_dim] */
    float *hb, *hb2;              /* [T][hidden_dim] */
} RunState;

typedef struct {
    Config c;
    Weights w;
    Encoding pe;
    KVCache kv;
    RunState s;
    Gguf gguf;
    Tokenizer tok;
    int has_tok;
    char tok_err[GGUF_ERR];       /* why there is no tokenizer, for modes that need one */
    float **owned; int n_owned;   /* F16 tensors converted to F32 at load */
} Model;

/* Opens and validates a GGUF model: config, weights, tokenizer. 0 or -1 with err. */
int model_open(Model *m, const char *path, char *err);
/* Sets the encoding (settings: the file's, with flags applied), allocates a cache of n_slots and a
   run state for chunks of up to max_chunk tokens. */
int model_prepare(Model *m, const PeSettings *pe, int n_slots, int max_chunk, char *err);
/* Runs tokens[0..T) at positions pos0.. (after every cached position). Writes the logits of every
   row ([T][vocab]) or only of the last ([vocab]). 0, or -1 with err (nothing is appended then). */
int model_forward(Model *m, const int *tokens, int T, int pos0, float *logits, int all_rows, char *err);
/* Context shift (llama.cpp's rule): keeps the first `keep` slots as sinks, drops half of the others,
   the oldest, and moves the rest back by that many positions, re-encoding their cached keys.
   Returns the number of tokens dropped, or -1 with err. */
int model_shift(Model *m, int keep, char *err);
void model_reset(Model *m);
void model_close(Model *m);
/* n_past: the position the next token takes (largest stored position + 1, or 0) */
int model_next_pos(const Model *m);

/* kvcache.c */
int kv_init(KVCache *kv, int n_layers, int n_slots, int kv_dim, char *err);
void kv_free(KVCache *kv);
int kv_max_pos(const KVCache *kv);
void kv_move_keys(KVCache *kv, const Encoding *to, const Encoding *from, int first, int n, int delta);
int kv_shift(KVCache *kv, const Encoding *e, int keep, int discard, char *err);

/* sampler.c */
typedef struct { float temperature, topp; unsigned long long rng; int *idx; float *prob; int n; } Sampler;
void sampler_init(Sampler *s, int vocab, float temperature, float topp, unsigned long long seed);
void sampler_free(Sampler *s);
int sample(Sampler *s, float *logits);

#endif
