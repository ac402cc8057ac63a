/* ./run: load a GGUF model, choose how positions are encoded, and generate text, dump logits, or
   evaluate (perplexity, needle grid: eval.h). Every bad input ends in one line on stderr naming the
   problem and exit status 1. */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "eval.h"
#include "cli.h"
#include "model.h"

static void usage(void) {
    char names[160];
    encoding_list(names, sizeof names);
    printf("usage: ./run model.gguf [options]\n"
           "  -m MODE            generate (default) | logits | ppl | needle | info (the file's metadata)\n"
           "  -i TEXT            prompt (generate)\n"
           "  -n N               tokens to generate (default 256)\n"
           "  -t T               temperature, 0 = greedy (default 1.0)\n"
           "  -p P               top-p in (0,1], 1 = off (default 0.9)\n"
           "  -s SEED            random seed (default: time)\n"
           "  -ctx N             KV cache slots: the longest context (default: the model's training length)\n"
           "  -chunk N           prefill chunk size in tokens (default 512)\n"
           "  -th N              threads (default: all cores)\n"
           "  -kv TYPE           KV cache storage: f32 (default) | f16 (IEEE half: half the memory)\n"
           "  -pos0 P            position of the first token (default 0), from an empty cache\n"
           "  -keep N            when the cache is full, keep the first N tokens as sinks, drop half of\n"
           "                     the rest and re-rotate the kept keys (default: stop when full)\n"
           "positional encoding (default: what the model file says):\n"
           "  -pe NAME           %s\n"
           "  -scale S           scaling factor s of a RoPE scaling or alibi-pi (default: the file's, else\n"
           "                     ctx / original context)\n"
           "  -orig-ctx L        original (training) context for scaling (default: the file's)\n"
           "  -rope-base B       rotary base (default: the file's, else 10000)\n"
           "  -rope-dims N       rotary dimensions (default: the file's, else the head dim)\n"
           "  -rope-layout L     interleaved | neox (default: the file's / the architecture's)\n"
           "  -yarn-beta-fast F  YaRN ramp start, in rotations over L (default 32)\n"
           "  -yarn-beta-slow F  YaRN ramp end (default 1)\n"
           "  -yarn-attn F       YaRN magnitude m on cos/sin (default 0.1 ln s + 1)\n"
           "  -yarn-ext F        YaRN extrapolation mix (default 1)\n"
           "  -llama3-low F      Llama 3 low frequency factor (default 1)\n"
           "  -llama3-high F     Llama 3 high frequency factor (default 4)\n"
           "  -dyn-kv MODE       dynamic NTK's cached keys: exact (default: re-rotated whenever the base\n"
           "                     changes) | stale (HF: rotated once, with the base of their call)\n"
           "  -grp-n G           -pe self-extend: group size G (required; llama.cpp's --grp-attn-n)\n"
           "  -grp-w W           -pe self-extend: neighbour window W, a multiple of G (required; --grp-attn-w)\n"
           "  -alibi-max-bias F  ALiBi maximum bias (default: the file's, else 8)\n"
           "logits mode:\n"
           "  -tokens A,B,C      token ids to run\n"
           "  -dump FILE         write T rows of n_vocab little-endian float32 logits\n"
           "ppl mode (perplexity over a text, windows of -ctx tokens):\n"
           "  -f FILE            the text (ppl), the corpus haystack (needle)\n"
           "  -window N          window length in tokens (default -ctx; longer only with -keep, which\n"
           "                     streams each window through the shifting cache)\n"
           "  -stride S          sliding window: each window after the first scores its last S tokens\n"
           "                     (default: -ctx, non-overlapping)\n"
           "  -max-tokens M      score at most the first M tokens of the text (default: all)\n"
           "  -bucket L          position bucket unit: [0,L), [L,2L), [2L,4L), ... (default: training length)\n"
           "  -csv FILE          write the table as CSV (ppl and needle)\n"
           "needle mode (passkey grid: lengths x depths x trials x haystacks):\n"
           "  -lengths A,B,C     prompt lengths in tokens (default: L, 2L, 4L; with -ctx: L, 2L, ... up to -ctx)\n"
           "  -depths N          needle depths evenly spaced over 0..100%% (default 11)\n"
           "  -trials N          prompts per cell (default 5)\n"
           "  -haystack H        filler | corpus | both (default both; corpus needs -f)\n"
           "  -marker 0|1        marker byte 0x01 before the keys (default 1)\n"
           "  -svg FILE          heatmap of accuracy by length and depth\n"
           "  -distance-svg FILE accuracy by needle-to-question distance, one curve per length\n"
           "  -distance-csv FILE the distance view as CSV\n", names);
}

/* comma-separated non-negative integers (-tokens, -lengths) */
static int *parse_list(const char *flag, const char *what, const char *s, int *n) {
    int cap = 16, count = 0;
    int *ids = malloc(cap * sizeof *ids);
    const char *p = s;
    while (ids) {
        char *end;
        errno = 0;
        long v = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;   /* digits only: no sign, no spaces */
        if (errno || v < 0 || v > INT_MAX) die("%s expects comma-separated %s, got '%s'", flag, what, s);
        if (count == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        if (!ids) break;
        ids[count++] = (int)v;
        if (!*end) break;
        if (*end != ',') die("%s expects comma-separated %s, got '%s'", flag, what, s);
        p = end + 1;
    }
    if (!ids) die("out of memory parsing %s", flag);
    *n = count;
    return ids;
}

static const char *const dyn_kv_names[] = {"exact", "stale", NULL};

typedef struct {
    const char *model_path, *mode, *prompt, *tokens, *dump;
    int steps, ctx, chunk, threads, keep, pos0;
    KvType kv;
    float temperature, topp;
    unsigned long long seed;
    /* encoding flags, applied over the file's settings */
    const char *pe, *rope_layout;
    double scale, rope_base, beta_fast, beta_slow, yarn_attn, yarn_ext, llama3_low, llama3_high, alibi_max_bias;
    int orig_ctx, rope_dims, grp_n, grp_w;
    const char *rope_flag_name;   /* the first RoPE-only flag given, for the error on non-RoPE models */
    const char *scale_flag_name;  /* -scale or -orig-ctx: for the RoPE scalings and alibi-pi */
    int dyn_kv;       /* -dyn-kv: 0 not given, else 1 + its index in dyn_kv_names */
    /* evaluation modes; the first flag given of each group, for the error in another mode */
    const char *text, *csv, *lengths, *haystack, *svg, *dist_svg, *dist_csv;
    int window, stride, bucket, depths, trials, marker;
    long max_tokens;
    const char *eval_flag, *ppl_flag, *needle_flag, *gen_flag, *pos_flag;   /* the first flag of each mode-bound group given */
} Args;

static int one_of(const char *f, const char *const *list) {
    while (*list && strcmp(*list, f)) list++;
    return *list != NULL;
}

static void parse_args(Args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->mode = "generate";
    a->steps = 256;
    a->chunk = 512;
    a->keep = -1;
    a->temperature = 1.0f;
    a->topp = 0.9f;
    a->seed = (unsigned long long)time(NULL);
    a->yarn_ext = -1;
    a->depths = 11;
    a->trials = 5;
    a->marker = 1;
    a->haystack = "both";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { usage(); exit(0); }
    if (argc < 2 || argv[1][0] == '-') die("the first argument must be a model file (see ./run -h)");
    a->model_path = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) { usage(); exit(0); }
        static const char *const known[] = {"-m", "-s", "-ctx", "-chunk", "-th", "-kv", "-keep", "-tokens",
            "-dump", "-pe", "-alibi-max-bias", "-scale", "-orig-ctx", "-rope-base", "-rope-dims", "-rope-layout", "-yarn-beta-fast",
            "-yarn-beta-slow", "-yarn-attn", "-yarn-ext", "-llama3-low", "-llama3-high", "-dyn-kv", "-grp-n", "-grp-w", NULL};
        static const char *const eval_flags[] = {"-f", "-csv", NULL}, *const ppl_flags[] = {"-window", "-stride", "-max-tokens", "-bucket", NULL},
            *const needle_flags[] = {"-lengths", "-depths", "-trials", "-haystack", "-marker", "-svg", "-distance-svg", "-distance-csv", NULL},
            *const gen_flags[] = {"-i", "-n", "-t", "-p", NULL}, *const pos_flags[] = {"-pos0", NULL};
        const char **group = one_of(f, eval_flags) ? &a->eval_flag : one_of(f, ppl_flags) ? &a->ppl_flag
                           : one_of(f, needle_flags) ? &a->needle_flag : one_of(f, gen_flags) ? &a->gen_flag
                           : one_of(f, pos_flags) ? &a->pos_flag : NULL;
        if (f[0] != '-') die("unexpected argument '%s' (flags start with '-', see ./run -h)", f);
        if (!group && !one_of(f, known)) die("unknown flag %s (see ./run -h)", f);
        if (i + 1 >= argc) die("flag %s needs a value", f);
        const char *v = argv[++i];
        int rope_only = 0, scaling = 0;
        if (group && !*group) *group = f;
        if (!strcmp(f, "-m")) a->mode = v;
        else if (!strcmp(f, "-i")) a->prompt = v;
        else if (!strcmp(f, "-n")) a->steps = (int)parse_int(f, v, 0, INT_MAX);
        else if (!strcmp(f, "-t")) a->temperature = (float)parse_num(f, v, 0, 100);
        else if (!strcmp(f, "-p")) a->topp = (float)parse_num(f, v, 1e-6, 1);
        else if (!strcmp(f, "-s")) a->seed = (unsigned long long)parse_int(f, v, 0, LONG_MAX);
        else if (!strcmp(f, "-ctx")) a->ctx = (int)parse_int(f, v, 1, 1 << 24);
        else if (!strcmp(f, "-chunk")) a->chunk = (int)parse_int(f, v, 1, 1 << 16);
        else if (!strcmp(f, "-th")) a->threads = (int)parse_int(f, v, 1, 1024);
        else if (!strcmp(f, "-kv")) a->kv = (KvType)parse_choice(f, v, kv_type_names);
        else if (!strcmp(f, "-keep")) a->keep = (int)parse_int(f, v, 0, 1 << 24);
        else if (!strcmp(f, "-tokens")) a->tokens = v;
        else if (!strcmp(f, "-pos0")) a->pos0 = (int)parse_int(f, v, 0, INT_MAX - 1);
        else if (!strcmp(f, "-dump")) a->dump = v;
        else if (!strcmp(f, "-pe")) a->pe = v;
        else if (!strcmp(f, "-alibi-max-bias")) a->alibi_max_bias = parse_num(f, v, 1e-6, 1e6);
        else if (!strcmp(f, "-f")) a->text = v;
        else if (!strcmp(f, "-csv")) a->csv = v;
        else if (!strcmp(f, "-window")) a->window = (int)parse_int(f, v, 1, 1 << 24);
        else if (!strcmp(f, "-stride")) a->stride = (int)parse_int(f, v, 1, 1 << 24);
        else if (!strcmp(f, "-max-tokens")) a->max_tokens = parse_int(f, v, 1, LONG_MAX);
        else if (!strcmp(f, "-bucket")) a->bucket = (int)parse_int(f, v, 1, 1 << 24);
        else if (!strcmp(f, "-lengths")) a->lengths = v;
        else if (!strcmp(f, "-depths")) a->depths = (int)parse_int(f, v, 1, NEEDLE_MAX_DEPTHS);
        else if (!strcmp(f, "-trials")) a->trials = (int)parse_int(f, v, 1, 1000000);
        else if (!strcmp(f, "-haystack")) a->haystack = v;
        else if (!strcmp(f, "-marker")) a->marker = (int)parse_int(f, v, 0, 1);
        else if (!strcmp(f, "-svg")) a->svg = v;
        else if (!strcmp(f, "-distance-svg")) a->dist_svg = v;
        else if (!strcmp(f, "-distance-csv")) a->dist_csv = v;
        else if (!strcmp(f, "-scale")) a->scale = parse_num(f, v, 1e-6, 1e6), scaling = 1;
        else if (!strcmp(f, "-orig-ctx")) a->orig_ctx = (int)parse_int(f, v, 1, 1 << 30), scaling = 1;
        else {
            rope_only = 1;
            if (!strcmp(f, "-rope-base")) a->rope_base = parse_num(f, v, 1.0 + 1e-9, 1e12);
            else if (!strcmp(f, "-rope-dims")) a->rope_dims = (int)parse_int(f, v, 2, 2 * PE_MAX_PAIRS);
            else if (!strcmp(f, "-rope-layout")) {
                if (strcmp(v, "interleaved") && strcmp(v, "neox")) die("-rope-layout expects interleaved or neox, got '%s'", v);
                a->rope_layout = v;
            }
            else if (!strcmp(f, "-yarn-beta-fast")) a->beta_fast = parse_num(f, v, 1e-6, 1e6);
            else if (!strcmp(f, "-yarn-beta-slow")) a->beta_slow = parse_num(f, v, 1e-6, 1e6);
            else if (!strcmp(f, "-yarn-attn")) a->yarn_attn = parse_num(f, v, 1e-6, 1e3);
            else if (!strcmp(f, "-yarn-ext")) a->yarn_ext = parse_num(f, v, 0, 1);
            else if (!strcmp(f, "-llama3-low")) a->llama3_low = parse_num(f, v, 1e-6, 1e6);
            else if (!strcmp(f, "-llama3-high")) a->llama3_high = parse_num(f, v, 1e-6, 1e6);
            else if (!strcmp(f, "-dyn-kv")) a->dyn_kv = 1 + parse_choice(f, v, dyn_kv_names);
            else if (!strcmp(f, "-grp-n")) a->grp_n = (int)parse_int(f, v, 1, 1 << 24);
            else if (!strcmp(f, "-grp-w")) a->grp_w = (int)parse_int(f, v, 1, 1 << 24);
            else die("unknown flag %s (see ./run -h)", f);
        }
        if (rope_only && !a->rope_flag_name) a->rope_flag_name = f;
        if (scaling && !a->scale_flag_name) a->scale_flag_name = f;
    }
    int ppl = !strcmp(a->mode, "ppl"), needle = !strcmp(a->mode, "needle");
    if (strcmp(a->mode, "generate") && strcmp(a->mode, "logits") && strcmp(a->mode, "info") && !ppl && !needle)
        die("unknown mode '%s' (generate, logits, ppl, needle, info)", a->mode);
    if (a->eval_flag && !ppl && !needle) die("%s belongs to -m ppl and -m needle", a->eval_flag);
    if (a->ppl_flag && !ppl) die("%s belongs to -m ppl", a->ppl_flag);
    if (a->needle_flag && !needle) die("%s belongs to -m needle", a->needle_flag);
    if (a->gen_flag && strcmp(a->mode, "generate")) die("%s belongs to -m generate", a->gen_flag);
    if (a->pos_flag && (ppl || needle)) die("%s belongs to -m generate and -m logits", a->pos_flag);
    if (ppl && !a->text) die("-m ppl needs -f FILE, the text to score");
    if (strcmp(a->haystack, "filler") && strcmp(a->haystack, "corpus") && strcmp(a->haystack, "both"))
        die("-haystack expects filler, corpus or both, got '%s'", a->haystack);
    if (needle && strcmp(a->haystack, "filler") && !a->text) die("-haystack %s needs -f FILE, the corpus text", a->haystack);
    if (!strcmp(a->mode, "logits") && (!a->tokens || !a->dump)) die("-m logits needs -tokens and -dump");
    if (strcmp(a->mode, "logits") && (a->tokens || a->dump)) die("-tokens and -dump belong to -m logits");
}

/* The file's encoding settings with the flags applied on top. */
static PeSettings encoding_settings(const Model *m, const Args *a) {
    PeSettings s = m->c.pe;
    char err[GGUF_ERR];
    if (a->pe && encoding_select(&s, a->pe, (int)m->c.pe_family, "this model", err)) die("%s", err);
    if (a->rope_flag_name && m->c.pe_family != PE_FAMILY_ROPE)
        die("%s applies to RoPE encodings only, and this model uses %s", a->rope_flag_name, encoding_family_name(m->c.pe_family));
    if (a->alibi_max_bias > 0 && m->c.pe_family != PE_FAMILY_ALIBI)
        die("-alibi-max-bias applies to ALiBi only, and this model uses %s", encoding_family_name(m->c.pe_family));
    if (a->scale_flag_name && m->c.pe_family != PE_FAMILY_ROPE && m->c.pe_family != PE_FAMILY_ALIBI)
        die("%s applies to RoPE and ALiBi encodings only, and this model uses %s", a->scale_flag_name, encoding_family_name(m->c.pe_family));
    if (a->scale_flag_name && !strcmp(s.method, "alibi")) die("%s needs a scaling method: -pe alibi-pi", a->scale_flag_name);
    if (a->scale_flag_name && (!strcmp(s.method, "rope") || !strcmp(s.method, "self-extend")))   /* neither reads s or L */
        die("%s needs a scaling method: -pe linear|ntk|dynamic|yarn|llama3 (-pe %s has no scale)", a->scale_flag_name, s.method);
    if (a->scale > 0) s.scale = a->scale;
    if (a->orig_ctx > 0) s.orig_ctx = a->orig_ctx;
    if (a->rope_base > 0) s.rope_base = a->rope_base;
    if (a->rope_dims > 0) s.n_rot = a->rope_dims;
    if (a->rope_layout) s.layout = strcmp(a->rope_layout, "neox") ? ROPE_INTERLEAVED : ROPE_NEOX;
    if (a->beta_fast > 0) s.beta_fast = a->beta_fast;
    if (a->beta_slow > 0) s.beta_slow = a->beta_slow;
    if (a->yarn_attn > 0) s.yarn_attn = a->yarn_attn;
    if (a->yarn_ext >= 0) s.yarn_ext = a->yarn_ext;
    if (a->llama3_low > 0) s.llama3_low = a->llama3_low;
    if (a->llama3_high > 0) s.llama3_high = a->llama3_high;
    if (a->alibi_max_bias > 0) s.alibi_max_bias = a->alibi_max_bias;
    if (a->dyn_kv && strcmp(s.method, "dynamic")) die("-dyn-kv applies to -pe dynamic only (this run uses -pe %s)", s.method);
    if (a->dyn_kv) s.dyn_stale = !strcmp(dyn_kv_names[a->dyn_kv - 1], "stale");
    if ((a->grp_n || a->grp_w) && strcmp(s.method, "self-extend"))
        die("%s applies to -pe self-extend only (this run uses -pe %s)", a->grp_n ? "-grp-n" : "-grp-w", s.method);
    if (a->grp_n) s.group_n = a->grp_n;
    if (a->grp_w) s.group_w = a->grp_w;
    return s;
}

/* What the file holds: size, encoding, and every metadata key (the trainer's facts are pelab.train.*),
   one "key = value" per line so that scripts can read it (models/make-zoo.sh writes the card from it). */
static void run_info(const Model *m, const char *path) {
    unsigned long long params = 0;
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        const GgufTensor *t = &m->gguf.tensors[i];
        params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];   /* unused dims are 1 */
    }
    printf("file = %s\ngguf.version = %u\ngguf.tensors = %llu\nparameters = %llu\nencoding = %s (%s family)\n", path,
           m->gguf.version, (unsigned long long)m->gguf.n_tensors, params, m->c.pe.method, encoding_family_name(m->c.pe_family));
    for (uint64_t i = 0; i < m->gguf.n_kv; i++) {
        const GgufKV *kv = &m->gguf.kv[i];
        char key[256], val[1024];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < sizeof key ? kv->key.len : sizeof key - 1), kv->key.ptr);
        gguf_one_line(key);
        gguf_format_value(kv, val, sizeof val);
        printf("%s = %s\n", key, val);
    }
}

static void run_logits(Model *m, const Args *a) {
    int n;
    char err[GGUF_ERR];
    FILE *f = fopen(a->dump, "wb");
    if (!f) die("cannot write %s: %s", a->dump, strerror(errno));
    int *ids = parse_list("-tokens", "token ids", a->tokens, &n);
    size_t V = (size_t)m->c.vocab_size;
    float *logits = malloc((size_t)n * V * sizeof *logits);
    int ok = logits && model_forward(m, ids, n, a->pos0, logits, 1, err) == 0;
    if (!logits) snprintf(err, sizeof err, "out of memory for %d rows of logits", n);
    size_t wrote = ok ? fwrite(logits, sizeof(float), (size_t)n * V, f) : 0;
    free(logits);
    free(ids);
    if (fclose(f) || !ok || wrote != (size_t)n * V) {
        remove(a->dump);
        die("%s", ok ? "error writing the -dump file" : err);
    }
}

static void run_generate(Model *m, const Args *a) {
    char err[GGUF_ERR];
    if (!m->has_tok) die("-m generate needs a tokenizer: %s", m->tok_err);
    const char *text = a->prompt ? a->prompt : "";
    int bos = m->tok.bos >= 0;
    int n = tokenizer_encode(&m->tok, text, strlen(text), bos, NULL, 0);
    if (n < 0) die("the prompt cannot be encoded with this vocabulary (no byte fallback tokens)");
    if (n == 0) die("empty prompt, and the model has no BOS token to start from: give -i");
    if (n > m->kv.n_slots) die("the prompt is %d tokens, longer than the context of %d (raise -ctx)", n, m->kv.n_slots);
    /* without a shift, positions run to pos0 + min(ctx, prompt + steps) - 1; a shift keeps them below ctx */
    long long reach = (long long)a->pos0 + (n + (long long)a->steps < m->kv.n_slots ? n + a->steps : m->kv.n_slots) - 1;
    if (reach > m->pe.max_pos)
        die("generation would reach position %lld, past what -pe %s can represent (0..%d): lower -ctx, -n or -pos0",
            reach, m->pe.method->name, m->pe.max_pos);
    int *ids = malloc((size_t)n * sizeof *ids);
    float *logits = malloc((size_t)m->c.vocab_size * sizeof *logits);
    if (!ids || !logits) die("out of memory");
    tokenizer_encode(&m->tok, text, strlen(text), bos, ids, n);
    char piece[512];
    for (int i = 0; i < n; i++) fwrite(piece, 1, tokenizer_decode(&m->tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece), stdout);
    fflush(stdout);

    double t0 = now_s();
    int ok = model_forward(m, ids, n, a->pos0, logits, 0, err) == 0, prev = ids[n - 1];
    free(ids);
    if (!ok) { free(logits); die("%s", err); }
    double t1 = now_s();
    Sampler sampler;
    sampler_init(&sampler, m->c.vocab_size, a->temperature, a->topp, a->seed);
    int generated = 0, shifts = 0, failed = 0;
    while (generated < a->steps) {
        int next = sample(&sampler, logits);
        if (next == m->tok.eos) break;
        fwrite(piece, 1, tokenizer_decode(&m->tok, prev, next, piece, sizeof piece), stdout);
        fflush(stdout);
        prev = next;
        if (++generated == a->steps) break;
        if (m->kv.n_used == m->kv.n_slots) {
            if (a->keep < 0) { fprintf(stderr, "\n[context full at %d tokens; -keep N shifts it]\n", m->kv.n_slots); break; }
            if ((failed = model_shift(m, a->keep, err) < 0)) break;
            shifts++;
        }
        if ((failed = model_forward(m, &next, 1, model_next_pos(m), logits, 0, err) != 0)) break;
    }
    if (failed) { sampler_free(&sampler); free(logits); die("%s", err); }
    double t2 = now_s();
    printf("\n");
    fprintf(stderr, "prefill: %d tokens, %.1f tok/s; generate: %d tokens, %.1f tok/s%s\n", n, n / (t1 - t0), generated,
            generated / (t2 - t1 > 0 ? t2 - t1 : 1e-9), shifts ? " (with context shifts)" : "");
    sampler_free(&sampler);
    free(logits);
}

/* Output files are opened before a long evaluation, so that a bad path fails at once. */
static FILE *open_out(const char *path) {
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && !f) die("cannot write %s: %s", path, strerror(errno));
    return f;
}

/* Closes them after a successful run (NULL entries skipped); dies on a write error. */
static void close_outs(FILE **f, const char *const *path, int n) {
    int bad = -1;
    for (int i = 0; i < n; i++)
        if (f[i] && (ferror(f[i]) | fclose(f[i])) && bad < 0) bad = i;
    if (bad >= 0) die("error writing %s", path[bad]);
}

/* ... or removes them when the evaluation fails */
static void discard_outs(FILE **f, const char *const *path, int n, const char *err) {
    for (int i = 0; i < n; i++)
        if (f[i]) { fclose(f[i]); remove(path[i]); }
    die("%s", err);
}

static void load_text(const Model *m, const char *path, Corpus *c, Tokens *t) {
    char err[GGUF_ERR];
    if (corpus_load(c, path, err) || corpus_tokenize(c, &m->tok, t, err)) die("%s", err);
}

static void run_ppl(Model *m, const Args *a) {
    char err[GGUF_ERR];
    Corpus c;
    Tokens t;
    if (!m->has_tok) die("-m ppl needs a tokenizer: %s", m->tok_err);
    load_text(m, a->text, &c, &t);
    size_t n = a->max_tokens > 0 && (size_t)a->max_tokens < t.n ? (size_t)a->max_tokens : t.n;
    char model[600];
    eval_describe(m, a->model_path, model, sizeof model);
    int window = a->window ? a->window : m->kv.n_slots;
    Ppl p = {.model = model, .window = window, .stride = a->stride ? a->stride : window,
             .bucket = a->bucket ? a->bucket : m->c.train_ctx, .chunk = a->chunk, .shift = a->keep >= 0, .keep = a->keep};
    FILE *csv = open_out(a->csv);
    if (eval_ppl(m, t.ids, n, &p, err)) discard_outs(&csv, &a->csv, 1, err);
    ppl_print(&p, a->text, stdout);
    if (csv) ppl_csv(&p, csv);
    close_outs(&csv, &a->csv, 1);
    tokens_free(&t);
    corpus_free(&c);
}

/* The grid from the flags; L is the training length, ctx the -ctx flag (0: not given). */
static void needle_grid(Needle *g, const Args *a, int L, int ctx) {
    memset(g, 0, sizeof *g);
    if (a->lengths) {
        int n, *v = parse_list("-lengths", "token counts", a->lengths, &n);
        for (int i = 0; i < n; i++)
            if (v[i] < 1 || n > NEEDLE_MAX_LENGTHS) {   /* freed first: the sanitizer build reports it as leaked otherwise */
                free(v);
                if (n > NEEDLE_MAX_LENGTHS) die("-lengths takes at most %d lengths, got %d", NEEDLE_MAX_LENGTHS, n);
                die("-lengths expects positive token counts, got '%s'", a->lengths);
            }
        memcpy(g->lengths, v, (size_t)n * sizeof *v);
        g->n_lengths = n;
        free(v);
    } else if (!ctx) {
        for (int i = 0; i < 3; i++) g->lengths[g->n_lengths++] = L << i;
    } else {
        for (long long T = L; T <= ctx && g->n_lengths < NEEDLE_MAX_LENGTHS; T *= 2) g->lengths[g->n_lengths++] = (int)T;
        if (!g->n_lengths) g->lengths[g->n_lengths++] = ctx;
    }
    g->n_depths = a->depths;
    g->trials = a->trials;
    if (strcmp(a->haystack, "corpus")) g->hay[g->n_hay++] = HAY_FILLER;
    if (strcmp(a->haystack, "filler")) g->hay[g->n_hay++] = HAY_CORPUS;
    g->seed = a->seed;
    g->shift = a->keep >= 0;
    g->keep = a->keep;
}

static void run_needle(Model *m, const Args *a, Needle *g) {
    char err[GGUF_ERR];
    Corpus c = {0};
    Tokens t = {0};
    Passkey pk;
    if (!m->has_tok) die("-m needle needs a tokenizer: %s", m->tok_err);
    int corpus = g->hay[g->n_hay - 1] == HAY_CORPUS;
    if (corpus) load_text(m, a->text, &c, &t);
    if (passkey_init(&pk, &m->tok, corpus ? &t : NULL, a->marker, err)) die("%s", err);
    const char *paths[4] = {a->csv, a->svg, a->dist_csv, a->dist_svg};
    FILE *f[4];
    for (int i = 0; i < 4; i++) f[i] = open_out(paths[i]);
    char model[600];
    eval_describe(m, a->model_path, model, sizeof model);
    g->model = model;
    if (eval_needle(m, &pk, g, err)) discard_outs(f, paths, 4, err);
    needle_print(g, stdout);
    if (f[0]) needle_csv(g, f[0]);
    if (f[1]) needle_heatmap_svg(g, f[1]);
    if (f[2]) needle_distance_csv(g, f[2]);
    if (f[3]) needle_distance_svg(g, f[3]);
    close_outs(f, paths, 4);
    needle_free(g);
    passkey_free(&pk);
    tokens_free(&t);
    corpus_free(&c);
}

int main(int argc, char **argv) {
    Args a;
    parse_args(&a, argc, argv);
#ifdef _OPENMP
    if (a.threads > 0) omp_set_num_threads(a.threads);
#endif
    Model m;
    char err[GGUF_ERR];
    if (model_open(&m, a.model_path, err)) die("%s", err);
    PeSettings pe = encoding_settings(&m, &a);
    if (!strcmp(a.mode, "info")) {
        run_info(&m, a.model_path);
        model_close(&m);
        return 0;
    }
    int ctx = a.ctx > 0 ? a.ctx : m.c.train_ctx;
    Needle g;
    if (!strcmp(a.mode, "needle")) {   /* without -ctx, the cache fits the longest prompt */
        needle_grid(&g, &a, m.c.train_ctx, a.ctx);
        if (a.ctx <= 0)
            for (int l = ctx = 0; l < g.n_lengths; l++) ctx = g.lengths[l] > ctx ? g.lengths[l] : ctx;
    }
    if (model_prepare(&m, &pe, ctx, a.kv, a.chunk, err)) die("%s", err);
    if (a.keep >= 0 && !m.pe.ops->shiftable)
        die("-keep: -pe %s cannot shift the context (positions are baked into the cached keys and values)", m.pe.method->name);
    if (a.keep > ctx - 2) die("-keep %d leaves nothing to drop in a context of %d (at most ctx - 2)", a.keep, ctx);
    if (!strcmp(a.mode, "logits")) run_logits(&m, &a);
    else if (!strcmp(a.mode, "ppl")) run_ppl(&m, &a);
    else if (!strcmp(a.mode, "needle")) run_needle(&m, &a, &g);
    else run_generate(&m, &a);
    model_close(&m);
    return 0;
}
