/* ./train: trains a pelab model with any positional encoding on a text corpus mixed with synthetic
   passkey examples, and writes a GGUF that ./run loads as is. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cli.h"
#include "data.h"
#include "tokenizer/bpe_train.h"
#include "trainer.h"

#define MAX_PHASES 8

typedef struct {
    const char *data, *heldout, *out, *ckpt, *resume, *init, *tokenizer, *mix, *recipe;
    int dim, layers, heads, kv_heads, hidden, ctx, bias, tied, layernorm, gelu;
    PeSettings pe;
    int batch, steps, warmup, threads, eval_every, eval_batches, ckpt_every, marker, by_depth, answer_only, passkey_trials;
    double lr, min_lr, wd, clip, beta1, beta2, answer_weight, p_filler, p_repeat_key, init_std, embd_std;
    uint64_t seed;
    int n_phases, phase_step[MAX_PHASES], phase_answer_only[MAX_PHASES], phase_split[MAX_PHASES];
    double phase_p[MAX_PHASES];
} Args;

static void usage(void) {
    printf("usage: ./train -data corpus.txt -o model.gguf [options]\n"
           "data:\n"
           "  -data FILE         training text (any UTF-8 file)\n"
           "  -heldout FILE      held-out text for the loss / perplexity and passkey haystacks (default: -data)\n"
           "  -tokenizer T       bytes | bpe:N (train an N-token BPE on -data) (default bytes)\n"
           "  -mix SPEC          passkey fraction by phase, 'STEP:P,STEP:P' from that step on; ':a' after P trains\n"
           "                     that phase's passkey rows on their answer only, ':xK' trains that phase on\n"
           "                     K times as many rows of L/K tokens (same tokens per step), each at a random\n"
           "                     offset in [0, L - L/K] (default 0:0.5)\n"
           "  -filler F          fraction of passkey rows with the repeated filler haystack, the rest corpus (0.5)\n"
           "  -answer-weight W   loss weight of the 5 answer tokens of a passkey row (4)\n"
           "  -answer-only 0|1   passkey rows train only on their answer (0)\n"
           "  -repeat-keys F     fraction of passkey rows whose key is drawn from two random digits, so that\n"
           "                     it repeats one (0)\n"
           "  -by-depth 0|1      needle depth uniform (1) or needle distance log-uniform (0) (0)\n"
           "  -marker 0|1        marker byte 0x01 before both keys (1)\n"
           "model (architecture pelab):\n"
           "  -dim N -layers N -heads N -kv-heads N -hidden N   (128, 4, 4, heads, 352)\n"
           "  -ctx N             training length L (256)\n"
           "  -norm rmsnorm|layernorm  -mlp swiglu|gelu  -bias 0|1  -tied 0|1   (rmsnorm, swiglu, 0, 1)\n"
           "  -pe NAME           none|learned|sinusoidal|rope|linear|ntk|yarn|llama3|alibi|t5 (rope)\n"
           "  -rope-base B -scale S -orig-ctx L -alibi-max-bias F -t5-buckets N -t5-max-distance N\n"
           "  -sinusoid-scale F  amplitude of the sinusoids (1)\n"
           "                     with -init, each unset one keeps the model's value\n"
           "optimisation:\n"
           "  -batch B -steps N  sequences per step, steps (16, 1000)\n"
           "  -lr F -min-lr F -warmup N   peak rate, final fraction of it, warm-up steps (3e-3, 0.1, 100)\n"
           "  -wd F -clip F -beta1 F -beta2 F   (0.1, 1.0, 0.9, 0.95)\n"
           "  -init-std F -embd-std F   initial std of matrices and of the embeddings (0.02, = -init-std)\n"
           "  -seed N -th N      seed, threads (1, all cores); runs are deterministic for a seed and -th\n"
           "  -init FILE         start from this pelab model (fine-tuning; -pe/-scale/-ctx may change)\n"
           "  -resume FILE       continue a checkpoint (same flags as the run that wrote it)\n"
           "  -ckpt FILE -ckpt-every N   write a resumable checkpoint every N steps\n"
           "  -eval-every N -eval-batches N   held-out loss every N steps over N batches (100, 8)\n"
           "  -passkey-trials N  final passkey check: N trials per depth and haystack (5)\n"
           "  -recipe TEXT       free text stored in the model's metadata\n");
}

static void parse_mix(Args *a, const char *spec) {
    a->n_phases = 0;
    const char *p = spec;
    while (*p) {
        char *end;
        long step = strtol(p, &end, 10);
        if (end == p || *end != ':' || step < 0 || a->n_phases == MAX_PHASES) die("-mix expects STEP:P[:a][:xK],STEP:P..., got '%s'", spec);
        double prob = strtod(end + 1, &end);
        int answer_only = !strncmp(end, ":a", 2);
        end += 2 * answer_only;
        long split = 1;
        if (!strncmp(end, ":x", 2)) split = strtol(end + 2, &end, 10);
        if (!(prob >= 0 && prob <= 1) || split < 1 || split > 64 || (*end && *end != ','))
            die("-mix expects STEP:P[:a][:xK] with P in [0,1] and K in 1..64, got '%s'", spec);
        if (a->n_phases && step <= a->phase_step[a->n_phases - 1]) die("-mix steps must increase, got '%s'", spec);
        a->phase_step[a->n_phases] = (int)step;
        a->phase_answer_only[a->n_phases] = answer_only;
        a->phase_split[a->n_phases] = (int)split;
        a->phase_p[a->n_phases++] = prob;
        p = *end ? end + 1 : end;
    }
    if (!a->n_phases || a->phase_step[0] != 0) die("-mix must start at step 0, got '%s'", spec);
}

static void parse_args(Args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->tokenizer = "bytes";
    a->dim = 128; a->layers = 4; a->heads = 4; a->hidden = 352; a->ctx = 256; a->tied = 1;
    a->pe.yarn_ext = -1;   /* a->pe holds the encoding flags given, 0 (unset) elsewhere: train_encoding_settings */
    a->batch = 16; a->steps = 1000; a->warmup = 100; a->eval_every = 100; a->eval_batches = 8; a->marker = 1; a->passkey_trials = 5;
    a->lr = 3e-3; a->min_lr = 0.1; a->wd = 0.1; a->clip = 1.0; a->beta1 = 0.9; a->beta2 = 0.95; a->answer_weight = 4; a->p_filler = 0.5;
    a->seed = 1;
    a->init_std = 0.02;
    parse_mix(a, "0:0.5");
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) { usage(); exit(0); }
        if (i + 1 >= argc) die("flag %s needs a value (see ./train -h)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "-data")) a->data = v;
        else if (!strcmp(f, "-heldout")) a->heldout = v;
        else if (!strcmp(f, "-o")) a->out = v;
        else if (!strcmp(f, "-tokenizer")) a->tokenizer = v;
        else if (!strcmp(f, "-mix")) { a->mix = v; parse_mix(a, v); }
        else if (!strcmp(f, "-filler")) a->p_filler = parse_num(f, v, 0, 1);
        else if (!strcmp(f, "-answer-weight")) a->answer_weight = parse_num(f, v, 0, 1000);
        else if (!strcmp(f, "-answer-only")) a->answer_only = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-repeat-keys")) a->p_repeat_key = parse_num(f, v, 0, 1);
        else if (!strcmp(f, "-by-depth")) a->by_depth = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-marker")) a->marker = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-dim")) a->dim = (int)parse_int(f, v, 2, 1 << 14);
        else if (!strcmp(f, "-layers")) a->layers = (int)parse_int(f, v, 1, MAX_LAYERS);
        else if (!strcmp(f, "-heads")) a->heads = (int)parse_int(f, v, 1, PE_MAX_HEADS);
        else if (!strcmp(f, "-kv-heads")) a->kv_heads = (int)parse_int(f, v, 1, PE_MAX_HEADS);
        else if (!strcmp(f, "-hidden")) a->hidden = (int)parse_int(f, v, 1, 1 << 16);
        else if (!strcmp(f, "-ctx")) a->ctx = (int)parse_int(f, v, 8, 1 << 20);
        else if (!strcmp(f, "-norm")) a->layernorm = !strcmp(v, "layernorm") ? 1 : !strcmp(v, "rmsnorm") ? 0 : (die("-norm expects rmsnorm or layernorm"), 0);
        else if (!strcmp(f, "-mlp")) a->gelu = !strcmp(v, "gelu") ? 1 : !strcmp(v, "swiglu") ? 0 : (die("-mlp expects swiglu or gelu"), 0);
        else if (!strcmp(f, "-bias")) a->bias = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-tied")) a->tied = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-pe")) snprintf(a->pe.method, sizeof a->pe.method, "%s", v);
        else if (!strcmp(f, "-rope-base")) a->pe.rope_base = parse_num(f, v, 1.0001, 1e12);
        else if (!strcmp(f, "-scale")) a->pe.scale = parse_num(f, v, 1e-3, 1e6);
        else if (!strcmp(f, "-orig-ctx")) a->pe.orig_ctx = (int)parse_int(f, v, 1, 1 << 30);
        else if (!strcmp(f, "-alibi-max-bias")) a->pe.alibi_max_bias = parse_num(f, v, 1e-6, 1e6);
        else if (!strcmp(f, "-sinusoid-scale")) a->pe.sinusoid_scale = parse_num(f, v, 1e-6, 1e6);
        else if (!strcmp(f, "-t5-buckets")) a->pe.t5_buckets = (int)parse_int(f, v, 4, 4096);
        else if (!strcmp(f, "-t5-max-distance")) a->pe.t5_max_distance = (int)parse_int(f, v, 3, 1 << 30);
        else if (!strcmp(f, "-batch")) a->batch = (int)parse_int(f, v, 1, 1 << 16);
        else if (!strcmp(f, "-steps")) a->steps = (int)parse_int(f, v, 1, INT_MAX);
        else if (!strcmp(f, "-lr")) a->lr = parse_num(f, v, 0, 10);
        else if (!strcmp(f, "-min-lr")) a->min_lr = parse_num(f, v, 0, 1);
        else if (!strcmp(f, "-warmup")) a->warmup = (int)parse_int(f, v, 1, INT_MAX);
        else if (!strcmp(f, "-wd")) a->wd = parse_num(f, v, 0, 10);
        else if (!strcmp(f, "-clip")) a->clip = parse_num(f, v, 0, 1e6);
        else if (!strcmp(f, "-beta1")) a->beta1 = parse_num(f, v, 0, 0.999999);
        else if (!strcmp(f, "-beta2")) a->beta2 = parse_num(f, v, 0, 0.999999);
        else if (!strcmp(f, "-init-std")) a->init_std = parse_num(f, v, 0, 10);
        else if (!strcmp(f, "-embd-std")) a->embd_std = parse_num(f, v, 0, 100);
        else if (!strcmp(f, "-seed")) a->seed = (uint64_t)parse_int(f, v, 0, LONG_MAX);
        else if (!strcmp(f, "-th")) a->threads = (int)parse_int(f, v, 1, 256);
        else if (!strcmp(f, "-init")) a->init = v;
        else if (!strcmp(f, "-resume")) a->resume = v;
        else if (!strcmp(f, "-ckpt")) a->ckpt = v;
        else if (!strcmp(f, "-ckpt-every")) a->ckpt_every = (int)parse_int(f, v, 1, INT_MAX);
        else if (!strcmp(f, "-eval-every")) a->eval_every = (int)parse_int(f, v, 1, INT_MAX);
        else if (!strcmp(f, "-eval-batches")) a->eval_batches = (int)parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "-passkey-trials")) a->passkey_trials = (int)parse_int(f, v, 0, 1 << 20);
        else if (!strcmp(f, "-recipe")) a->recipe = v;
        else die("unknown flag %s (see ./train -h)", f);
    }
    if (!a->data || !a->out) die("-data and -o are required (see ./train -h)");
    if (!a->heldout) a->heldout = a->data;
    if (!a->kv_heads) a->kv_heads = a->heads;
    if (!a->embd_std) a->embd_std = a->init_std;
    if (a->dim % a->heads || a->heads % a->kv_heads) die("-dim must be a multiple of -heads, and -heads of -kv-heads");
    if (a->init && a->resume) die("-init and -resume exclude each other");
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    Corpus train_text, heldout_text;
    Tokenizer tok;
    Tokens train, heldout;
    Passkey pk_train, pk_heldout;
} Data;

static void make_tokenizer(Data *d, const Args *a, const Model *init) {
    char err[256];
    if (init) {   /* fine-tuning keeps the model's tokenizer */
        if (!init->has_tok) die("-init model has no tokenizer: %s", init->tok_err);
        const Tokenizer *t = &init->tok;
        uint64_t *lens = malloc((size_t)t->n_vocab * sizeof *lens);
        for (int i = 0; i < t->n_vocab; i++) lens[i] = (uint64_t)t->piece_len[i];
        if (tokenizer_init(&d->tok, t->kind, t->n_vocab, (const char *const *)t->pieces, lens, t->scores, t->types, t->bos, t->eos, t->unk,
                           t->add_space_prefix, err))
            die("%s", err);
        free(lens);
    } else if (!strcmp(a->tokenizer, "bytes")) {
        char names[256][8];
        const char *pieces[256];
        uint64_t lens[256];
        for (int i = 0; i < 256; i++) { snprintf(names[i], 8, "<0x%02X>", i); pieces[i] = names[i]; lens[i] = 6; }
        if (tokenizer_init(&d->tok, TOK_BYTES, 256, pieces, lens, NULL, NULL, -1, -1, -1, 0, err)) die("%s", err);
    } else if (!strncmp(a->tokenizer, "bpe:", 4)) {
        BpeVocab v;
        int n = (int)parse_int("-tokenizer bpe:N", a->tokenizer + 4, BPE_N_FIXED, 1 << 16);
        if (bpe_train(d->train_text.text, d->train_text.len, n, &v, err) || bpe_tokenizer(&v, &d->tok, err)) die("%s", err);
        bpe_free(&v);
    } else {
        die("-tokenizer expects bytes or bpe:N, got '%s'", a->tokenizer);
    }
}

static void load_data(Data *d, const Args *a, const Model *init) {
    char err[256];
    if (corpus_load(&d->train_text, a->data, err) || corpus_load(&d->heldout_text, a->heldout, err)) die("%s", err);
    make_tokenizer(d, a, init);
    if (corpus_tokenize(&d->train_text, &d->tok, &d->train, err) || corpus_tokenize(&d->heldout_text, &d->tok, &d->heldout, err)) die("%s", err);
    if (passkey_init(&d->pk_train, &d->tok, &d->train, a->marker, err) || passkey_init(&d->pk_heldout, &d->tok, &d->heldout, a->marker, err))
        die("%s", err);
    if (d->train.n < (size_t)a->ctx + 1 || d->heldout.n < (size_t)a->ctx + 1) die("the corpus is shorter than one training window of %d tokens", a->ctx + 1);
}

static void write_tokenizer(void *ctx, GgufWriter *w) { tokenizer_write_gguf((const Tokenizer *)ctx, w); }

/* rows[B][T+1] -> inputs[B][T] (tokens 0..T-1) and targets[B][T] (tokens 1..T) */
static void split_rows(const int *rows, int B, int T, int *in, int *tg) {
    for (int b = 0; b < B; b++) {
        memcpy(in + (size_t)b * T, rows + (size_t)b * (T + 1), (size_t)T * sizeof *in);
        memcpy(tg + (size_t)b * T, rows + (size_t)b * (T + 1) + 1, (size_t)T * sizeof *tg);
    }
}

/* Held-out loss (nats per token) over n batches of LM windows drawn from a fixed seed. */
static double heldout_loss(TrainModel *tm, TrainStream *st, int n_st, const Data *d, int B, int T, int n) {
    Rng rng;
    rng_seed(&rng, 0xE7A1);
    int *rows = malloc((size_t)B * (T + 1) * sizeof *rows), *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    double total = 0;
    for (int k = 0; k < n; k++) {
        for (int b = 0; b < B; b++) tokens_window(&d->heldout, (size_t)T + 1, &rng, rows + (size_t)b * (T + 1));
        split_rows(rows, B, T, in, tg);
        total += train_loss(tm, st, n_st, in, tg, NULL, B, T);
    }
    free(rows); free(in); free(tg);
    return total / n;
}

/* Passkey exact match at length T over 11 depths x 2 held-out haystacks x trials, teacher forced. */
static double passkey_accuracy(TrainModel *tm, TrainStream *st, int n_st, const Data *d, int T, int trials) {
    int n = 11 * 2 * trials, hits = 0, V = tm->c.vocab_size;
    if (!n) return 0;
    #pragma omp parallel for num_threads(n_st) schedule(static, 1) reduction(+ : hits)
    for (int sid = 0; sid < n_st; sid++) {
        int *ids = malloc((size_t)T * sizeof *ids);
        char err[256];
        for (int i = sid; i < n; i += n_st) {
            Rng rng;
            rng_seed(&rng, 0x9A55 + (uint64_t)i);
            PasskeyInfo info;
            double depth = (i / 2 / trials) / 10.0;
            if (passkey_at_depth(&d->pk_heldout, i % 2 ? HAY_CORPUS : HAY_FILLER, T, depth, &rng, ids, &info, err)) continue;
            st[sid].kv.n_used = 0;
            transformer_forward(&tm->c, &tm->w, &tm->pe, &st[sid].kv, &st[sid].s, ids, T, 0, st[sid].logits, 1);
            int ok = 1;
            for (int k = 0; k < 5; k++) {   /* the logits at answer-1+k predict answer digit k */
                const float *l = st[sid].logits + (size_t)(info.answer - 1 + k) * V;
                int best = 0;
                for (int v = 1; v < V; v++) best = l[v] > l[best] ? v : best;
                ok &= best == ids[info.answer + k];
            }
            hits += ok;
        }
        free(ids);
    }
    return (double)hits / n;
}

int main(int argc, char **argv) {
    Args a;
    parse_args(&a, argc, argv);
    char err[256];
#ifdef _OPENMP
    if (a.threads) omp_set_num_threads(a.threads);
    int n_streams = a.threads ? a.threads : omp_get_max_threads();
#else
    int n_streams = 1;
#endif
    if (n_streams > a.batch) n_streams = a.batch;
    Model init_model;
    const char *start = a.resume ? a.resume : a.init;
    if (start && model_open(&init_model, start, err)) die("%s", err);
    Data d;
    memset(&d, 0, sizeof d);
    load_data(&d, &a, start ? &init_model : NULL);

    TrainModel tm;
    if (start) {
        PeSettings pe = init_model.c.pe;   /* a checkpoint carries its own settings */
        if (a.init && train_encoding_settings(&a.pe, &init_model, &pe, err)) die("%s", err);
        if (trainmodel_load(&tm, start, &pe, a.ctx, err)) die("%s", err);
        if (tm.c.pe_family == PE_FAMILY_ABSOLUTE && a.ctx != tm.c.train_ctx) die("-ctx cannot change for an absolute-position model");
        tm.c.train_ctx = a.ctx;
        if (a.init) tm.step = 0, tm.wall_s = 0;   /* fine-tuning starts a new schedule and new optimizer moments */
        if (a.init) { memset(tm.adam_m, 0, tm.n_params * sizeof(float)); memset(tm.adam_v, 0, tm.n_params * sizeof(float)); }
        model_close(&init_model);
    } else {
        PeSettings pe;
        if (train_encoding_settings(&a.pe, NULL, &pe, err)) die("%s", err);
        const EncodingMethod *em = encoding_find(pe.method);
        Config c = {0};
        c.arch = ARCH_PELAB;
        c.dim = a.dim; c.hidden_dim = a.hidden; c.n_layers = a.layers; c.n_heads = a.heads; c.n_kv_heads = a.kv_heads;
        c.head_dim = a.dim / a.heads; c.vocab_size = d.tok.n_vocab; c.train_ctx = a.ctx; c.norm_eps = 1e-5f;
        c.norm = a.layernorm ? NORM_LAYER : NORM_RMS; c.mlp = a.gelu ? MLP_GELU : MLP_SWIGLU;
        c.linear_bias = a.bias; c.tied_output = a.tied; c.pe_family = em->family;
        if (trainmodel_init(&tm, &c, &pe, a.seed, a.init_std, a.embd_std, err)) die("%s", err);
    }
    int T = a.ctx, B = a.batch;
    TrainStream *streams = calloc((size_t)n_streams, sizeof *streams);
    for (int i = 0; i < n_streams; i++) if (stream_init(&streams[i], &tm, T, err)) die("%s", err);
    AdamW opt = {a.lr, a.min_lr, a.beta1, a.beta2, 1e-8, a.wd, a.clip, a.warmup, a.steps};
    fprintf(stderr, "model: %zu parameters, %s, L = %d, vocab %d (%s); batch %d x %d, %d steps, %d threads\n", tm.n_params,
            tm.pe.method->name, T, tm.c.vocab_size, a.tokenizer, B, T, a.steps, n_streams);

    /* a phase split K ways trains on K*B rows of T/K tokens: the same tokens per step, shorter rows (a
       sequence-length curriculum: retrieval forms sooner on short examples, README), each at a random
       offset in [0, T - T/K] so that absolute encodings train every position */
    int max_split = 1;
    for (int i = 0; i < a.n_phases; i++) max_split = a.phase_split[i] > max_split ? a.phase_split[i] : max_split;
    int *rows = malloc((size_t)B * max_split * (T + 1) * sizeof *rows), *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    float *wt = malloc((size_t)B * T * sizeof *wt);
    int *pos0 = malloc((size_t)B * max_split * sizeof *pos0);
    double t0 = now_s(), loss_avg = 0;
    uint64_t first_step = tm.step;
    for (int step = (int)tm.step; step < a.steps; step++) {
        int ph = 0;
        while (ph + 1 < a.n_phases && a.phase_step[ph + 1] <= step) ph++;
        int rows_n = B * a.phase_split[ph], row_T = T / a.phase_split[ph];
        BatchSpec spec = {a.phase_p[ph], a.p_filler, a.by_depth, 0, (float)a.answer_weight, a.answer_only || a.phase_answer_only[ph],
                          a.p_repeat_key};
        Rng rng;   /* per-step seed: a resumed run draws the batches an uninterrupted one would */
        rng_seed(&rng, a.seed * 1000003ull + (uint64_t)step);
        if (batch_fill(&d.pk_train, &spec, rows_n, row_T, &rng, rows, wt, NULL, err) < 0) die("%s", err);
        split_rows(rows, rows_n, row_T, in, tg);
        for (int r = 0; r < rows_n; r++) pos0[r] = (int)rng_below(&rng, (uint64_t)(T - row_T) + 1);
        double loss = train_gradients(&tm, streams, n_streams, in, tg, wt, pos0, rows_n, row_T);
        double gnorm = adamw_step(&tm, &opt);
        loss_avg = step == (int)first_step ? loss : 0.9 * loss_avg + 0.1 * loss;
        int done = step + 1 - (int)first_step;
        if (done % 10 == 0 || step + 1 == a.steps) {
            double el = now_s() - t0, tps = (double)done * B * T / el;
            fprintf(stderr, "step %d/%d | loss %.4f | lr %.2e | gnorm %.2f | p %.2f | %.0f tok/s | eta %.0fs\n", step + 1, a.steps,
                    loss_avg, adamw_lr(&opt, step), gnorm, a.phase_p[ph], tps, (a.steps - step - 1) * (el / done));
        }
        if ((step + 1) % a.eval_every == 0 && step + 1 < a.steps) {
            double hl = heldout_loss(&tm, streams, n_streams, &d, B, T, a.eval_batches);
            fprintf(stderr, "eval step %d | held-out loss %.4f (ppl %.3f) | passkey@%d %.2f\n", step + 1, hl, exp(hl), T,
                    passkey_accuracy(&tm, streams, n_streams, &d, T, 1));
        }
        if (a.ckpt && a.ckpt_every && (step + 1) % a.ckpt_every == 0) {
            char tmp[1100];
            snprintf(tmp, sizeof tmp, "%s.tmp", a.ckpt);
            TrainFacts f = {.tokens_seen = (uint64_t)(step + 1) * B * T, .seed = a.seed, .data = a.data, .recipe = a.recipe,
                            .wall_s = tm.wall_s + now_s() - t0};
            if (trainmodel_save(&tm, tmp, &f, 1, write_tokenizer, &d.tok, err) || rename(tmp, a.ckpt)) die("checkpoint: %s", err);
        }
    }
    double wall = now_s() - t0;   /* this run's; the model's facts add the time behind a resumed checkpoint */
    double hl = heldout_loss(&tm, streams, n_streams, &d, B, T, a.eval_batches * 4);
    double pk = passkey_accuracy(&tm, streams, n_streams, &d, T, a.passkey_trials);
    uint64_t tokens = (uint64_t)a.steps * B * T;
    TrainFacts f = {.tokens_seen = tokens, .seed = a.seed, .data = a.data, .recipe = a.recipe, .wall_s = tm.wall_s + wall,
                    .heldout_loss = hl, .passkey = pk, .passkey_trials = 22 * a.passkey_trials};
    if (trainmodel_save(&tm, a.out, &f, 0, write_tokenizer, &d.tok, err)) die("%s", err);
    printf("%s: %zu params, %llu tokens, %.1f s, %.0f tok/s, held-out loss %.4f ppl %.3f, passkey@%d %.3f (%d trials)\n", a.out,
           tm.n_params, (unsigned long long)tokens, tm.wall_s + wall, (a.steps - first_step) * (double)B * T / wall, hl, exp(hl), T, pk,
           22 * a.passkey_trials);
    for (int i = 0; i < n_streams; i++) stream_free(&streams[i]);
    free(streams); free(rows); free(in); free(tg); free(wt); free(pos0);
    trainmodel_free(&tm);
    return 0;
}
