/* The model: configuration, weights, a position-tracking KV cache, run state and the forward pass.
   One forward pass serves generation, evaluation and (later) training: it takes a chunk of T tokens
   at positions pos0 .. pos0+T-1, appends their keys/values to the cache, and returns logits. */
#ifndef MODEL_H
#define MODEL_H
#include "gguf.h"
#include "quant.h"
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

/* Weight pointers (or, in the trainer, gradient pointers with the same layout). The runtime
   never writes through them: they may point into the read-only mapped file. The matrices (Mat)
   are used as the file stores them, F32, F16 or Q8_0; everything else is F32 (small tensors in
   other types are converted at load). The trainer's weights and gradients are all F32. */
typedef struct {
    float *attn_norm, *attn_norm_b;
    Mat wq, wk, wv, wo;              /* [out][in]; fused QKV files are split views */
    float *bq, *bk, *bv, *bo;
    float *ffn_norm, *ffn_norm_b;
    Mat w_gate, w_up, w_down;
    float *b_gate, *b_up, *b_down;
} LayerWeights;

typedef struct {
    Mat tok_embd;                    /* [vocab][dim] */
    float *embd_norm, *embd_norm_b;
    float *pos_embd; int pos_rows;   /* learned positions [pos_rows][dim] */
    float *rope_freqs;               /* per-pair divisors [n_rot/2] */
    float *rel_bias;                 /* T5 buckets [n_buckets][n_heads] */
    LayerWeights layers[MAX_LAYERS];
    float *out_norm, *out_norm_b;
    Mat output;                      /* [vocab][dim]; tied: tok_embd */
} Weights;

/* How cached keys and values are stored (-kv): float, or IEEE half (half the memory). */
typedef enum { KV_F32, KV_F16 } KvType;
extern const char *const kv_type_names[];   /* by KvType, NULL-terminated: "f32", "f16" */

/* Every slot stores the position of the token in it; slot order is never read as position. */
typedef struct {
    int n_slots, n_used;
    int n_layers, kv_dim;
    KvType type;
    int *pos;            /* [n_slots] */
    void *k, *v;         /* [n_layers][n_slots][kv_dim] float or uint16_t (half) by type; keys as the encoding
                            left them (rotated for RoPE) */
    void *k_far;         /* the same keys in the encoding's far view (rotated at far_pos: Self-Extend); NULL
                            for every other encoding */
} KVCache;

/* What one layer's forward produces, [T] rows each. Inference points every layer at one set of
   buffers (and x, x_mid, the next layer's x at one residual buffer, updated in place); training
   keeps every layer's, since the backward pass reads them. */
typedef struct {
    float *x;                     /* [T][dim] the layer's input, the residual stream */
    float *xn, *mean, *rstd;      /* attention norm: output [T][dim], statistics [T] (mean: LayerNorm only) */
    float *q, *k, *v;             /* [T][q_dim], [T][kv_dim] x2, after the encoding's rotation */
    float *att, *lse;             /* attention output [T][q_dim], row log-sum-exp [T][n_heads] */
    float *x_mid;                 /* residual after attention */
    float *xn2, *mean2, *rstd2;   /* MLP norm */
    float *up, *gate, *h;         /* [T][hidden] pre-activations and the activation (swiglu: silu(gate)*up) */
} LayerActs;

typedef struct {
    int max_T;                    /* chunk capacity */
    int keep_layers;              /* 1: every layer has its own LayerActs (training) */
    LayerActs layer[MAX_LAYERS];
    float *x_out, *xn_out, *mean_out, *rstd_out;   /* after the last layer; the final norm */
    float *proj;                  /* scratch [T][dim] for output projections */
    float *q_far, *k_far;         /* [T][q_dim], [T][kv_dim]: q and k in the encoding's far view (Self-Extend) */
    float *block;                 /* the one allocation behind every buffer */
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
    void **owned; int n_owned;    /* tensors converted to F32 or copied to aligned memory at load */
} Model;

/* far_view: room for q and k in the encoding's far view (encodings with far_pos) */
int runstate_init(RunState *s, const Config *c, int max_T, int keep_layers, int far_view, char *err);
void runstate_free(RunState *s);
/* The forward pass of one chunk whose positions pos0.. share the encoding's parameters (T <= max_T,
   T free slots): embeds, runs every layer appending k/v to the cache, writes logits of every row
   ([T][vocab]) or the last ([vocab]); logits may be NULL. */
void transformer_forward(const Config *c, const Weights *w, const Encoding *e, KVCache *kv, RunState *s, const int *tokens,
                         int T, int pos0, float *logits, int all_rows);
/* Its backward, after a forward of all rows from an empty cache with keep_layers: accumulates the
   gradients of dlogits [T][vocab] into g (same layout as w). scratch: runstate_backward_floats(). */
void transformer_backward(const Config *c, const Weights *w, const Encoding *e, const KVCache *kv, const RunState *s,
                          const Weights *g, const float *dlogits, const int *tokens, int T, int pos0, float *scratch);
size_t runstate_backward_floats(const Config *c, int T);

/* Opens and validates a GGUF model: config, weights, tokenizer. 0 or -1 with err. */
int model_open(Model *m, const char *path, char *err);
/* Sets the encoding (settings: the file's, with flags applied), allocates a cache of n_slots stored
   as kv_type and a run state for chunks of up to max_chunk tokens. */
int model_prepare(Model *m, const PeSettings *pe, int n_slots, KvType kv_type, int max_chunk, char *err);
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
/* far_keys: also hold every key in the encoding's far view (k_far) */
int kv_init(KVCache *kv, int n_layers, int n_slots, int kv_dim, KvType type, int far_keys, char *err);
void kv_free(KVCache *kv);
size_t kv_bytes(const KVCache *kv);   /* the storage of every key and value slot */
/* the row of slot `slot` in layer `layer` of kv->k or kv->v (`base`) */
void *kv_row(const KVCache *kv, void *base, int layer, int slot);
/* stores T rows of keys, far-view keys (read only when the cache holds them) and values, [T][kv_dim] floats,
   in layer `layer` from slot `slot0`, converted to the cache's type */
void kv_store(KVCache *kv, int layer, int slot0, const float *k, const float *k_far, const float *v, int T);
int kv_max_pos(const KVCache *kv);
void kv_move_keys(KVCache *kv, const Encoding *to, const Encoding *from, int first, int n, int delta);
int kv_shift(KVCache *kv, const Encoding *e, int keep, int discard, char *err);

/* sampler.c */
typedef struct { float temperature, topp; unsigned long long rng; int *idx; float *prob; int n; } Sampler;
void sampler_init(Sampler *s, int vocab, float temperature, float topp, unsigned long long seed);
void sampler_free(Sampler *s);
int sample(Sampler *s, float *logits);

#endif
