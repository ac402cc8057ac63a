/* Positional encodings behind one interface.
   An encoding touches the model in at most four places, each an optional hook:
     add_input  - absolute encodings add a vector to the token embedding at position p
     rotate     - rotary encodings rotate q and k at position p before k is cached
     add_bias   - relative encodings add a bias(p_q, p_k) to a tile of attention scores
     move_key   - re-encode a cached key when its position changes (context shift) or when the
                  encoding's own parameters change (dynamic NTK); absent = keys hold no position
   plus retune/uniform_until for encodings whose parameters depend on the sequence length, and
   input_grad/bias_grad for the trainer. One more, optional, for Self-Extend:
     far_pos    - a second ("far") view of attention: q and k are also rotated at far_pos(p), the keys
                  cached twice, and a key at distance >= far_window from its query is scored in the far
                  view; the attention loop does no extra work for encodings without it
   The attention loop knows nothing else about positions: adding an encoding is a file with its
   hooks and a row in registry.c. Every position reaching a hook is a stored position, never a
   KV slot index. */
#ifndef ENCODING_H
#define ENCODING_H

#include <stddef.h>

#define PE_MAX_PAIRS 256
#define PE_MAX_HEAD_DIM (2 * PE_MAX_PAIRS)
#define PE_MAX_HEADS 256
#define PE_T5_TABLE 512   /* distances with a precomputed T5 bucket; farther ones compute theirs */

typedef enum { PE_FAMILY_NONE, PE_FAMILY_ABSOLUTE, PE_FAMILY_ROPE, PE_FAMILY_ALIBI, PE_FAMILY_T5 } PeFamily;
typedef enum { ROPE_INTERLEAVED = 0, ROPE_NEOX = 1 } RopeLayout;
typedef enum { SINUSOID_VASWANI = 0, SINUSOID_FAIRSEQ = 1 } SinusoidVariant;

/* Settings: what the model file says, overridden by flags. 0 means "unset" unless noted. */
typedef struct {
    char method[16];          /* a registry name: none learned sinusoidal rope linear ntk dynamic yarn llama3 alibi alibi-pi t5 */
    double rope_base;         /* B (default 10000) */
    int n_rot;                /* rotary dims n (default head_dim) */
    RopeLayout layout;
    double scale;             /* s: -scale, else rope.scaling.factor, else max(1, ctx/L) */
    int orig_ctx;             /* L: -orig-ctx, else rope.scaling.original_context_length, else context_length */
    double beta_fast, beta_slow;  /* YaRN ramp (32, 1; 0 = unset as in HF) */
    double yarn_attn;         /* YaRN total magnitude m on cos/sin (unset: 0.1 ln s + 1) */
    double yarn_ext;          /* YaRN extrapolation mix (< 0 = unset: 1) */
    double attn_factor;       /* rope.scaling.attn_factor, multiplies m (1 when unset) */
    double llama3_low, llama3_high;   /* Llama 3 low/high frequency factors (1, 4) */
    double alibi_max_bias;    /* ALiBi maximum bias (8) */
    int t5_buckets, t5_max_distance;  /* T5 (32, 128) */
    SinusoidVariant sinusoid;
    double sinusoid_scale;    /* amplitude of the sinusoids (0 = unset: 1, as in the paper and llama.cpp) */
    int dyn_stale;            /* dynamic: cached keys keep the base they were rotated with (-dyn-kv stale,
                                 HF's behaviour); 0: re-rotated whenever the base changes (exact) */
    int group_n, group_w;     /* self-extend: group size G and neighbour window W (-grp-n, -grp-w; required) */
} PeSettings;

/* What the encoding may read from the model. */
typedef struct {
    int dim, n_heads, n_kv_heads, head_dim;
    int train_ctx;            /* {arch}.context_length */
    int run_ctx;              /* -ctx */
    const float *pos_table; int pos_rows;    /* position_embd.weight, [pos_rows][dim] */
    const float *freq_div;  int n_freq_div;  /* rope_freqs.weight: per-pair divisors, [n_rot/2] */
    const float *rel_bias;                   /* T5 bias table, [t5_buckets][n_heads] */
} PeModel;

typedef struct Encoding Encoding;

typedef struct {
    void (*add_input)(const Encoding *e, float *x, int pos);
    void (*rotate)(const Encoding *e, int pos, float *q, int n_q, float *k, int n_k);
    void (*add_bias)(const Encoding *e, int head, int pos_q, const int *pos_k, int n, float *scores);
    /* n_rows rows of n_vecs head vectors, row r at k + r * row_stride (a cached key's rows in every layer) */
    void (*move_key)(const Encoding *to, const Encoding *from, float *k, int n_rows, size_t row_stride, int n_vecs, int pos_from,
                     int pos_to);
    int (*retune)(Encoding *e, int seq_len);              /* returns 1 if parameters changed */
    /* training: gradients of the encoding's own parameters (the learned table, the T5 table).
       The adjoint of rotate at p is rotate at -p (a rotation's transpose, times the same m). */
    void (*input_grad)(const Encoding *e, const float *dx, int pos, float *dtable);
    void (*bias_grad)(const Encoding *e, int head, int pos_q, const int *pos_k, int n, const float *dscores, float *dtable);
    int (*uniform_until)(const Encoding *e, int pos);     /* last position sharing pos's parameters */
    int (*far_pos)(const Encoding *e, int pos, int is_query);   /* the position q (is_query) or k is rotated
                                                                   at in the far view */
    int shiftable;            /* cached state can follow a position change (0: absolute encodings) */
} EncodingOps;

typedef struct {
    const char *name;
    PeFamily family;
    const EncodingOps *ops;
    int (*setup)(Encoding *e, char *err);   /* derive tables from e->set and e->model */
    const char *help;
} EncodingMethod;

struct Encoding {
    const EncodingMethod *method;
    const EncodingOps *ops;
    PeSettings set;
    PeModel model;
    int max_pos;              /* largest position the encoding can represent */
    int far_window;           /* with far_pos: keys at distance >= far_window are scored in the far view */
    /* rotary */
    int n_pairs;
    double theta[PE_MAX_PAIRS];   /* θ'_i after scaling and divisors */
    double mscale;                /* m, multiplied into cos and sin */
    double base_eff;              /* effective base (ntk, dynamic) for reports */
    int seq_len;                  /* dynamic: the sequence length θ' was computed for */
    /* relative biases */
    float slopes[PE_MAX_HEADS];
    int t5_bucket[PE_T5_TABLE];   /* T5: the bucket of each distance below PE_T5_TABLE, computed once: two
                                     logs per score and head made a T5 training step ~1.6x a RoPE step */
};

/* registry.c */
const EncodingMethod *encoding_find(const char *name);
const char *encoding_family_name(PeFamily f);
void encoding_list(char *out, int cap);   /* "none|learned|..." */
/* The method called name, for a model of the given family (-1: any, a model being created); NULL and
   err naming the problem if there is none or it is of another family ("does not apply to <which>"). */
const EncodingMethod *encoding_lookup(const char *name, int family, const char *which, char *err);
/* -pe name over the settings s (plain "rope" drops the file's scaling); 0 or -1 + err as above. */
int encoding_select(PeSettings *s, const char *name, int family, const char *which, char *err);
/* Applies the method named in e->set.method to a model of family `model_family`; 0 or -1 + err. */
int encoding_init(Encoding *e, PeFamily model_family, char *err);

/* Shared by the setups */
int encoding_error(char *err, const char *fmt, ...);
extern const EncodingOps pe_none_ops, pe_learned_ops, pe_sinusoidal_ops, pe_rope_ops, pe_dynamic_ops, pe_self_extend_ops, pe_alibi_ops,
    pe_t5_ops, pe_logn_ops;
int pe_none_setup(Encoding *e, char *err);
int pe_logn_setup(Encoding *e, char *err);
int pe_learned_setup(Encoding *e, char *err);
int pe_sinusoidal_setup(Encoding *e, char *err);
int pe_rope_setup(Encoding *e, char *err);
int pe_linear_setup(Encoding *e, char *err);
int pe_ntk_setup(Encoding *e, char *err);
int pe_dynamic_setup(Encoding *e, char *err);
int pe_yarn_setup(Encoding *e, char *err);
int pe_llama3_setup(Encoding *e, char *err);
int pe_self_extend_setup(Encoding *e, char *err);
int pe_self_extend_far_pos(const Encoding *e, int pos, int is_query);
int pe_alibi_setup(Encoding *e, char *err);
int pe_alibi_pi_setup(Encoding *e, char *err);
/* The settings every scaling method shares: the original context (default: the training length) known,
   the scale not negative; 0 or -1 + err. */
int pe_scaling_check(Encoding *e, char *err);
/* The scale s of a scaling method: the flag, else the file's factor (both already in set.scale), else
   run ctx / set.orig_ctx, at least 1. */
double pe_resolve_scale(const Encoding *e);
int pe_t5_setup(Encoding *e, char *err);

/* Pure formulas, exposed for tests (pe-spec test vectors). */
double pe_sinusoid(int pos, int j, int dim, SinusoidVariant v);
void pe_alibi_slopes(int n_heads, double max_bias, float *slopes);
int pe_t5_bucket(int rel, int bidirectional, int n_buckets, int max_distance);
double pe_yarn_corr_dim(int n_rot, int orig_ctx, double beta, double base);
double pe_ntk_base(double base, double alpha, int n_rot);
double pe_dynamic_base(double base, double scale, int seq, int orig_ctx, int n_rot);
double pe_yarn_mscale(double s);
double pe_logn_factor(int pos, int train_ctx);   /* max(1, ln(pos+1) / ln(train_ctx)) */
/* Self-Extend's rule for query i and key j (pe-spec §14.3): 1 (grouped) with *q_pos, *k_pos the positions
   q and k are rotated at, or 0 (neighbour: i and j) */
int pe_self_extend(int i, int j, int G, int W, int *q_pos, int *k_pos);
/* rope.c: c + i s = the rotation from pos_from θ_from to pos_to θ_to, per pair (vectorised cos and sin) */
void pe_rotation(double *c, double *s, int n, const double *theta_to, int pos_to, const double *theta_from, int pos_from);
void pe_rope_apply(const Encoding *e, float *v, int n_vecs, const double *cos_m, const double *sin_m);

#endif
