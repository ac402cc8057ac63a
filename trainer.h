/* The trainer's model: the project's own `pelab` architecture with every parameter in one array,
   the same Weights view the runtime uses pointing into it, a training step (data-parallel over the
   sequences of a batch, deterministic for a seed and thread count), AdamW, and GGUF save / load.
   The forward and backward passes are the runtime's (model.c, ops.c). */
#ifndef TRAINER_H
#define TRAINER_H
#include <stdint.h>
#include "model.h"

typedef struct {
    char name[96];
    int n_dims;
    uint64_t ne[2];
    size_t offset, n;
    int decay;          /* AdamW weight decay applies (matrices) */
} ParamTensor;

typedef struct {
    Config c;
    Encoding pe;
    ParamTensor tensors[16 * MAX_LAYERS + 16];
    int n_tensors;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v;
    Weights w, g;       /* views into params / grads */
    uint64_t step;      /* optimizer steps taken */
    double wall_s;      /* training seconds behind them (a checkpoint's), so a resumed run reports its whole time */
} TrainModel;

/* Hyperparameters of one training run */
typedef struct {
    double lr, min_lr_frac, beta1, beta2, eps, weight_decay, grad_clip;
    int warmup, steps;
} AdamW;

/* Lays out the parameters of config c (arch pelab) and initialises them from seed: matrices
   N(0, init_std) (residual output projections / sqrt(2 layers)), embeddings N(0, embd_std), norms 1,
   biases and the T5 table 0. GPT-2 uses 0.02 for both. */
int trainmodel_init(TrainModel *tm, const Config *c, const PeSettings *pe, uint64_t seed, double init_std, double embd_std, char *err);
/* The encoding settings of a run: the init model's (a fine-tune keeps its base, amplitude, buckets), or
   for a new model (init NULL) the defaults (rope, base 10000), with the flags given applied on top: the
   method if flags->method is set, every field > 0. -1 with a one-line err for an unknown method or one
   of another family than the init model's. */
int train_encoding_settings(const PeSettings *flags, const Model *init, PeSettings *out, char *err);
/* Loads a pelab GGUF written by trainmodel_save (a checkpoint, or a model to fine-tune): its
   config, parameters and, when present, the optimizer state and step. pe: settings to train with
   (NULL: the file's). */
int trainmodel_load(TrainModel *tm, const char *path, const PeSettings *pe, int run_ctx, char *err);
void trainmodel_free(TrainModel *tm);

/* Per-thread state for forward + backward of one sequence of up to T tokens */
typedef struct {
    KVCache kv;
    RunState s;
    float *logits, *dlogits, *scratch, *grads;
    Weights g;
} TrainStream;

int stream_init(TrainStream *st, const TrainModel *tm, int T, char *err);
void stream_free(TrainStream *st);

/* Loss and gradients of B sequences: inputs [B][T], targets [B][T], weights [B][T] (NULL = 1), sequence
   b at positions pos0[b].. (NULL: all from 0; rows shorter than the training length can sit anywhere in
   it, so an absolute encoding trains every position). Leaves the gradient of the weighted mean loss in
   tm->grads; returns that loss. */
double train_gradients(TrainModel *tm, TrainStream *streams, int n_streams, const int *inputs, const int *targets,
                       const float *weights, const int *pos0, int B, int T);
/* Weighted mean loss without gradients (held-out evaluation) */
double train_loss(TrainModel *tm, TrainStream *streams, int n_streams, const int *inputs, const int *targets,
                  const float *weights, int B, int T);
/* Clips the gradient norm, applies one AdamW step at the scheduled rate; returns the norm before clipping. */
double adamw_step(TrainModel *tm, const AdamW *opt);
double adamw_lr(const AdamW *opt, uint64_t step);

/* Key-value facts written into the GGUF (pelab.train.*) */
typedef struct {
    uint64_t tokens_seen, seed;
    const char *data, *recipe;
    double wall_s;
    double heldout_loss;       /* nats per token at the training length (0: not measured) */
    double passkey;            /* exact-match rate at the training length, over passkey_trials */
    int passkey_trials;
} TrainFacts;
/* Writes the model (and, with_optimizer, the AdamW state: a resumable checkpoint). The tokenizer
   metadata is written by write_tokenizer(ctx, w). */
int trainmodel_save(const TrainModel *tm, const char *path, const TrainFacts *facts, int with_optimizer,
                    void (*write_tokenizer)(void *ctx, GgufWriter *w), void *tok_ctx, char *err);

#endif
