/* ./study: the extrapolation study of study.md §11 on the model zoo. For every variant (a zoo model and
   how it is run: its own encoding, a zero-shot RoPE scaling, or a shifting cache with sinks) it measures
   held-out perplexity by window length and position bucket and the passkey grid (lengths x depths x
   both haystacks), then writes results/: CSVs, one heatmap and one distance view per variant, the
   perplexity-by-length figures and README.md, the report with a verdict for every prediction of
   §11.5 computed from the numbers. Everything runs through eval.c, the same code as ./run -m ppl and
   -m needle; each variant's row can be reproduced with the ./run command the report prints. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cli.h"
#include "eval.h"

typedef struct {
    const char *name;       /* results/<name>-needle.svg ... */
    const char *file;       /* in the zoo folder */
    const char *pe;         /* -pe override; NULL: the file's encoding and settings */
    double scale;           /* scaling factor: -1 = max(1, N / L) at window length N (zero-shot); > 0 fixed (dynamic's alpha) */
    int sinks;              /* >= 0: a cache of L slots, shifted with this many sinks; -1: the cache holds the window */
    const char *label;
    int dyn_stale;          /* dynamic NTK with HF's cache (-dyn-kv stale) */
    int grp_n, grp_w;       /* self-extend: group size G and neighbour window W */
} Variant;

static const Variant VARIANTS[] = {
    {"rope", "rope.gguf", NULL, 0, -1, "RoPE", 0, 0, 0},
    {"rope-pi", "rope.gguf", "linear", -1, -1, "RoPE + PI, zero-shot", 0, 0, 0},
    {"rope-ntk", "rope.gguf", "ntk", -1, -1, "RoPE + NTK-aware, zero-shot", 0, 0, 0},
    {"rope-dynamic", "rope.gguf", "dynamic", 1, -1, "RoPE + dynamic NTK", 0, 0, 0},
    {"rope-dynamic-hf", "rope.gguf", "dynamic", 1, -1, "RoPE + dynamic NTK, HF cache (-dyn-kv stale)", 1, 0, 0},
    {"rope-yarn", "rope.gguf", "yarn", -1, -1, "RoPE + YaRN, zero-shot", 0, 0, 0},
    {"rope-selfextend-g4", "rope.gguf", "self-extend", 0, -1, "RoPE + Self-Extend, G 4, W 64", 0, 4, 64},
    {"rope-selfextend-g8", "rope.gguf", "self-extend", 0, -1, "RoPE + Self-Extend, G 8, W 64", 0, 8, 64},
    {"rope-sinks", "rope.gguf", NULL, 0, 4, "RoPE, 4 sinks + shifting cache of L", 0, 0, 0},
    {"rope-pi4", "rope-pi4.gguf", NULL, 0, -1, "RoPE, PI fine-tuned at 4L", 0, 0, 0},
    {"rope-yarn4", "rope-yarn4.gguf", NULL, 0, -1, "RoPE, YaRN fine-tuned at 4L", 0, 0, 0},
    {"alibi", "alibi.gguf", NULL, 0, -1, "ALiBi", 0, 0, 0},
    {"alibi-pi", "alibi.gguf", "alibi-pi", -1, -1, "ALiBi + PI, zero-shot", 0, 0, 0},
    {"t5", "t5.gguf", NULL, 0, -1, "T5 bias", 0, 0, 0},
    {"sinusoidal", "sinusoidal.gguf", NULL, 0, -1, "sinusoidal", 0, 0, 0},
    {"learned", "learned.gguf", NULL, 0, -1, "learned", 0, 0, 0},
    {"none", "none.gguf", NULL, 0, -1, "NoPE", 0, 0, 0},
    {"none-logn", "none.gguf", "none-logn", 0, -1, "NoPE + log-n attention temperature", 0, 0, 0},
};
enum { N_VARIANTS = sizeof VARIANTS / sizeof VARIANTS[0] };

/* multiples of L (study.md §11.4) */
static const double PPL_MULT[] = {0.5, 1, 1.25, 1.5, 2, 4, 8, 16, 32, 64};
static const double NEEDLE_MULT[] = {1, 1.5, 2, 4, 8, 16, 32, 64};
enum { N_PPL = sizeof PPL_MULT / sizeof PPL_MULT[0], N_NEEDLE = sizeof NEEDLE_MULT / sizeof NEEDLE_MULT[0] };

typedef struct {
    const char *zoo, *text, *out, *only;
    int depths, trials, max_mult, ppl_tokens, threads, jobs;
    unsigned long long seed;
} Args;

typedef struct {
    int L;                          /* the model's training length */
    int ppl_ok[N_PPL];              /* 0: refused (see ppl_err) */
    char ppl_err[N_PPL][GGUF_ERR];
    Ppl ppl[N_PPL];
    Needle grid;                    /* all needle lengths merged; cells of refused lengths have 0 trials */
    int needle_ok[N_NEEDLE];
    double seconds;
} Result;

static void usage(void) {
    printf("usage: ./study [options]   (make study)\n"
           "  -zoo DIR         the zoo models (default models/zoo)\n"
           "  -f FILE          held-out text: perplexity and the corpus haystack (default data/brown-heldout.txt)\n"
           "  -o DIR           results folder (default results)\n"
           "  -only A,B        run only these variants (names as in the report)\n"
           "  -max-mult M      longest length, in multiples of L (default 64)\n"
           "  -ppl-tokens N    tokens scored per perplexity length (default 65536)\n"
           "  -depths N        needle depths 0..100%% (default 11)\n"
           "  -trials N        needle trials per cell up to 4L, halved per doubling after (at least 1) (default 4)\n"
           "  -s SEED          needle seed (default 1)\n"
           "  -th N            threads (default: all cores)\n"
           "  -jobs N          variants run N at a time, each on one thread (default 1: one at a time, on all threads)\n");
}

static void parse_args(Args *a, int argc, char **argv) {
    *a = (Args){"models/zoo", "data/brown-heldout.txt", "results", NULL, 11, 4, 64, 65536, 0, 1, 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) { usage(); exit(0); }
        if (i + 1 >= argc) die("flag %s needs a value (see ./study -h)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "-zoo")) a->zoo = v;
        else if (!strcmp(f, "-f")) a->text = v;
        else if (!strcmp(f, "-o")) a->out = v;
        else if (!strcmp(f, "-only")) a->only = v;
        else if (!strcmp(f, "-max-mult")) a->max_mult = (int)parse_int(f, v, 1, 64);
        else if (!strcmp(f, "-ppl-tokens")) a->ppl_tokens = (int)parse_int(f, v, 1, 1 << 26);
        else if (!strcmp(f, "-depths")) a->depths = (int)parse_int(f, v, 1, NEEDLE_MAX_DEPTHS);
        else if (!strcmp(f, "-trials")) a->trials = (int)parse_int(f, v, 1, 10000);
        else if (!strcmp(f, "-s")) a->seed = (unsigned long long)parse_int(f, v, 0, LONG_MAX);
        else if (!strcmp(f, "-th")) a->threads = (int)parse_int(f, v, 1, 1024);
        else if (!strcmp(f, "-jobs")) a->jobs = (int)parse_int(f, v, 1, N_VARIANTS);
        else die("unknown flag %s (see ./study -h)", f);
    }
}

static int selected(const Args *a, const char *name) {
    if (!a->only) return 1;
    size_t n = strlen(name);
    for (const char *p = a->only; (p = strstr(p, name)); p += n)
        if ((p == a->only || p[-1] == ',') && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

static int trials_at(const Args *a, double mult) {
    int t = a->trials;
    for (double m = 8; m <= mult; m *= 2) t = t > 1 ? t / 2 : 1;
    return t;
}

/* Opens the variant's model with a cache for `length` tokens (or L slots when it streams). */
static int open_variant(Model *m, const Args *a, const Variant *v, int length, char *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", a->zoo, v->file);
    if (model_open(m, path, err)) return -1;
    PeSettings pe = m->c.pe;
    if (v->pe) {
        snprintf(pe.method, sizeof pe.method, "%s", v->pe);
        pe.scale = v->scale < 0 ? fmax(1.0, (double)length / m->c.train_ctx) : v->scale;
        pe.orig_ctx = m->c.train_ctx;
        pe.dyn_stale = v->dyn_stale;
        pe.group_n = v->grp_n;
        pe.group_w = v->grp_w;
    }
    int slots = v->sinks >= 0 ? m->c.train_ctx : length;
    if (model_prepare(m, &pe, slots, KV_F32, 512, err)) { model_close(m); return -1; }
    return 0;
}

static void run_variant(const Args *a, const Variant *v, Result *r, const Tokens *text, const Passkey *pk) {
    int side_by_side = a->jobs > 1;   /* progress lines then carry the variant's name */
    char err[GGUF_ERR], desc[600];
    double t0 = now_s();
    Model m;
    if (open_variant(&m, a, v, 1, err)) die("%s: %s", v->name, err);
    /* lengths are multiples of the pre-training length: a model fine-tuned at 4L carries L as
       rope.scaling.original_context_length and is scored at the same lengths as its base */
    r->L = m.c.pe.orig_ctx > 0 ? m.c.pe.orig_ctx : m.c.train_ctx;
    model_close(&m);
    for (int i = 0; i < N_PPL; i++) {
        int N = (int)(PPL_MULT[i] * r->L);
        if (PPL_MULT[i] > a->max_mult) continue;
        fprintf(stderr, "%s: perplexity at %d\n", v->name, N);
        if (open_variant(&m, a, v, N, err)) { snprintf(r->ppl_err[i], sizeof r->ppl_err[i], "%s", err); continue; }
        eval_describe(&m, v->file, desc, sizeof desc);
        Ppl *p = &r->ppl[i];
        *p = (Ppl){.model = v->label, .tag = side_by_side ? v->name : NULL, .window = N, .stride = N, .bucket = r->L, .chunk = 512, .shift = v->sinks >= 0, .keep = v->sinks};
        size_t n = (size_t)a->ppl_tokens + 1 < text->n ? (size_t)a->ppl_tokens + 1 : text->n;
        if (n < (size_t)N + 1) n = (size_t)N + 1 <= text->n ? (size_t)N + 1 : text->n;
        r->ppl_ok[i] = eval_ppl(&m, text->ids, n, p, err) == 0;
        if (!r->ppl_ok[i]) snprintf(r->ppl_err[i], sizeof r->ppl_err[i], "%s", err);
        model_close(&m);
    }
    /* the needle grid, one length at a time (a zero-shot scaling's s follows the length), merged */
    Needle *g = &r->grid;
    memset(g, 0, sizeof *g);
    g->model = v->label;
    g->tag = side_by_side ? v->name : NULL;
    g->n_depths = a->depths;
    g->n_hay = 2;
    g->hay[0] = HAY_FILLER;
    g->hay[1] = HAY_CORPUS;
    g->seed = a->seed;
    for (int l = 0; l < N_NEEDLE && NEEDLE_MULT[l] <= a->max_mult; l++) g->lengths[g->n_lengths++] = (int)(NEEDLE_MULT[l] * r->L);
    g->trials = trials_at(a, 1);
    g->cell = calloc((size_t)2 * g->n_lengths * g->n_depths, sizeof *g->cell);
    g->dist = calloc((size_t)2 * g->n_lengths * NEEDLE_BINS, sizeof *g->dist);
    if (!g->cell || !g->dist) die("out of memory for the needle grid");
    for (int l = 0; l < g->n_lengths; l++) {
        int T = g->lengths[l];
        fprintf(stderr, "%s: needle grid at %d\n", v->name, T);
        if (open_variant(&m, a, v, T, err)) continue;
        Needle one = *g;
        one.n_lengths = 1;
        one.lengths[0] = T;
        one.trials = trials_at(a, NEEDLE_MULT[l]);
        one.shift = v->sinks >= 0;
        one.keep = v->sinks;
        r->needle_ok[l] = eval_needle(&m, pk, &one, err) == 0;
        model_close(&m);
        if (!r->needle_ok[l]) continue;
        for (int h = 0; h < 2; h++) {
            memcpy(g->cell + ((size_t)h * g->n_lengths + l) * g->n_depths, one.cell + (size_t)h * g->n_depths, (size_t)g->n_depths * sizeof *g->cell);
            memcpy(g->dist + ((size_t)h * g->n_lengths + l) * NEEDLE_BINS, one.dist + (size_t)h * NEEDLE_BINS, NEEDLE_BINS * sizeof *g->dist);
        }
        needle_free(&one);
    }
    r->seconds = now_s() - t0;
}

/* ---- numbers the report reads ---- */

static double bpb(const Ppl *p) { return p->nll / log(2) / (double)p->bytes; }
static double bucket_bpb(const Ppl *p, int k) { return p->b_bytes[k] ? p->b_nll[k] / log(2) / (double)p->b_bytes[k] : NAN; }
static int ppl_index(double mult) {
    for (int i = 0; i < N_PPL; i++) if (PPL_MULT[i] == mult) return i;
    return -1;
}
static int needle_index(const Needle *g, int L, double mult) {
    for (int l = 0; l < g->n_lengths; l++) if (g->lengths[l] == (int)(mult * L)) return l;
    return -1;
}
/* window-average bits/byte at mult x L; NAN if not run or refused */
static double avg_at(const Result *r, double mult) {
    int i = ppl_index(mult);
    return i >= 0 && r->ppl_ok[i] ? bpb(&r->ppl[i]) : NAN;
}
/* bits/byte of the window's last bucket (positions [mult*L/2, mult*L) for mult >= 2) */
static double last_bucket_at(const Result *r, double mult) {
    int i = ppl_index(mult);
    return i >= 0 && r->ppl_ok[i] ? bucket_bpb(&r->ppl[i], r->ppl[i].n_buckets - 1) : NAN;
}
static NeedleStat needle_at(const Result *r, double mult, int max_distance) {   /* both haystacks, all depths; distance filter (0: all) */
    NeedleStat s = {0};
    const Needle *g = &r->grid;
    int l = needle_index(g, r->L, mult);
    if (l < 0 || !r->needle_ok[l]) return s;
    for (int h = 0; h < g->n_hay; h++)
        if (!max_distance) {
            for (int d = 0; d < g->n_depths; d++) {
                const NeedleStat *c = &g->cell[((size_t)h * g->n_lengths + l) * g->n_depths + d];
                needle_stat_add(&s, c);
            }
        } else {
            for (int k = 0; k < NEEDLE_BINS && (1LL << k) < max_distance; k++) {   /* bins [2^k, 2^(k+1)) that start below it */
                const NeedleStat *c = &g->dist[((size_t)h * g->n_lengths + l) * NEEDLE_BINS + k];
                needle_stat_add(&s, c);
            }
        }
    return s;
}
static double share(long part, long whole) { return whole ? (double)part / whole : NAN; }   /* NAN: nothing counted */
static double exact_at(const Result *r, double mult) {
    NeedleStat s = needle_at(r, mult, 0);
    return share(s.exact, s.trials);
}
/* exact match of needles closer than `distance` to the question, at mult x L */
static double near_at(const Result *r, double mult, int distance) {
    NeedleStat s = needle_at(r, mult, distance);
    return share(s.exact, s.trials);
}
/* exact match of needles at least `distance` from the question, pooled over the lengths lo..hi x L */
static double far_between(const Result *r, double lo, double hi, int distance) {
    long exact = 0, trials = 0;
    for (int l = 0; l < N_NEEDLE; l++) {
        if (NEEDLE_MULT[l] < lo || NEEDLE_MULT[l] > hi) continue;
        NeedleStat all = needle_at(r, NEEDLE_MULT[l], 0), near = needle_at(r, NEEDLE_MULT[l], distance);
        exact += all.exact - near.exact;
        trials += all.trials - near.trials;
    }
    return share(exact, trials);
}
static double passkey_context(const Result *r) {   /* YaRN's: the longest length with exact >= 80% */
    double best = 0;
    for (int l = 0; l < N_NEEDLE; l++) if (exact_at(r, NEEDLE_MULT[l]) >= 0.8) best = NEEDLE_MULT[l];
    return best;
}

/* ---- output ---- */

static FILE *open_in(const Args *a, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", a->out, name);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write %s: %s", path, strerror(errno));
    return f;
}

static void close_checked(FILE *f, const char *name) {
    if (ferror(f) | fclose(f)) die("error writing %s", name);
}

static void write_csvs(const Args *a, const Result *res, const int *run) {
    FILE *f = open_in(a, "ppl.csv");
    fprintf(f, "variant,window,bucket_lo,bucket_hi,tokens,bytes,bits_per_byte,status\n");
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v]) continue;
        const Result *r = &res[v];
        for (int i = 0; i < N_PPL && PPL_MULT[i] <= a->max_mult; i++) {
            int N = (int)(PPL_MULT[i] * r->L);
            const Ppl *p = &r->ppl[i];
            if (!r->ppl_ok[i]) { fprintf(f, "%s,%d,0,%d,0,0,,refused\n", VARIANTS[v].name, N, N); continue; }
            for (int k = 0; k < p->n_buckets; k++) {
                long long lo = k ? (long long)r->L << (k - 1) : 0, hi = (long long)r->L << k;
                fprintf(f, "%s,%d,%lld,%lld,%lld,%lld,%.6f,ok\n", VARIANTS[v].name, N, lo, hi < N ? hi : N, p->b_tokens[k], p->b_bytes[k],
                        bucket_bpb(p, k));
            }
            fprintf(f, "%s,%d,0,%d,%lld,%lld,%.6f,ok\n", VARIANTS[v].name, N, N, p->tokens, p->bytes, bpb(p));
        }
    }
    close_checked(f, "ppl.csv");
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v]) continue;
        char name[300];
        const char *kinds[] = {"needle.csv", "needle.svg", "distance.csv", "distance.svg"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s-%s", VARIANTS[v].name, kinds[k]);
            f = open_in(a, name);
            if (k == 0) needle_csv(&res[v].grid, f);
            if (k == 1) needle_heatmap_svg(&res[v].grid, f);
            if (k == 2) needle_distance_csv(&res[v].grid, f);
            if (k == 3) needle_distance_svg(&res[v].grid, f);
            close_checked(f, name);
        }
    }
}

static void write_figures(const Args *a, const Result *res, const int *run) {
    Series avg[N_VARIANTS], last[N_VARIANTS];
    double x[N_VARIANTS][N_PPL], y[N_VARIANTS][N_PPL], z[N_VARIANTS][N_PPL];
    int n = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v]) continue;
        int k = 0;
        for (int i = 0; i < N_PPL && PPL_MULT[i] <= a->max_mult; i++, k++) {
            x[v][k] = PPL_MULT[i];
            y[v][k] = avg_at(&res[v], PPL_MULT[i]);
            z[v][k] = PPL_MULT[i] >= 2 ? last_bucket_at(&res[v], PPL_MULT[i]) : y[v][k];
        }
        avg[n] = (Series){VARIANTS[v].label, k, x[v], y[v]};
        last[n++] = (Series){VARIANTS[v].label, k, x[v], z[v]};
    }
    const char *source = "held-out Brown, non-overlapping windows of N tokens", *xlabel = "Window length N, in multiples of the training length L";
    FILE *f = open_in(a, "ppl-by-length.svg");
    lines_svg(f, "Perplexity by window length (window average)", source, xlabel, "bits per byte", avg, n);
    close_checked(f, "ppl-by-length.svg");
    f = open_in(a, "ppl-last-bucket.svg");
    lines_svg(f, "Bits per byte of the window's last position bucket [N/2, N)", source, xlabel, "bits per byte", last, n);
    close_checked(f, "ppl-last-bucket.svg");
}

static int variant_index(const char *name) {
    for (int v = 0; v < N_VARIANTS; v++) if (!strcmp(VARIANTS[v].name, name)) return v;
    return -1;
}

static const Result *find(const Result *res, const int *run, const char *name) {
    int v = variant_index(name);
    return v >= 0 && run[v] ? &res[v] : NULL;
}

/* a zoo model run as trained: no encoding override, no sinks, not one of the 4x fine-tunes */
static int pretrained_as_is(int v) { return !VARIANTS[v].pe && VARIANTS[v].sinks < 0 && !strstr(VARIANTS[v].name, "4"); }

static const char *pct(double v, char *buf) {
    if (isnan(v)) return "n/a";
    snprintf(buf, 16, "%.0f%%", 100 * v);
    return buf;
}
static const char *num(double v, char *buf) {
    if (isnan(v)) return "n/a";
    snprintf(buf, 16, "%.3f", v);
    return buf;
}

/* study.md §11.5's predictions, by number: the claim, the variants a verdict needs (NULL: not
   implemented, or decided by any of several), and the figures that show it (files in the results folder) */
static const struct { const char *claim, *needs, *figures; } PREDICTIONS[14] = {
    {NULL, NULL, NULL},
    {"learned APE cannot run past L; the runtime refuses", "the variant learned", "learned-needle.svg"},
    {"sinusoidal: perplexity of positions >= L >= 1.5x the 1x value by 2x; passkey ~0 at >= 2x", "the variant sinusoidal",
     "ppl-last-bucket.svg sinusoidal-needle.svg"},
    {"RoPE unscaled: bucket perplexity past L rises steeply; passkey <= 30% at 2x, ~0 at >= 4x even for needles within L", "the variant rope",
     "ppl-last-bucket.svg rope-needle.svg rope-distance.svg"},
    {"ALiBi: window-average bits/byte non-increasing 1x-64x; passkey >= 80% when the needle is within ~L at any length, decaying with distance", "the variant alibi",
     "ppl-by-length.svg alibi-needle.svg alibi-distance.svg"},
    {"perplexity != retrieval: a variant with flat perplexity to 16x (within 5%) has mean passkey < 50% at >= 4x", NULL,
     "ppl-by-length.svg alibi-needle.svg rope-sinks-needle.svg rope-yarn-needle.svg"},
    {"StreamingLLM on RoPE (4 sinks + shifting cache of L): perplexity flat to 64x; passkey only while the needle is in the cache", "the variant rope-sinks",
     "ppl-by-length.svg rope-sinks-needle.svg rope-sinks-distance.svg"},
    {"PI zero-shot: no explosion but worse than 1x; PI fine-tuned at s=4: ~in-distribution perplexity and passkey >= 80% up to 4x", "the variants rope-pi and rope-pi4",
     "ppl-by-length.svg rope-pi-needle.svg rope-pi4-needle.svg"},
    {"NTK-aware zero-shot beats PI zero-shot at 2-4x; dynamic NTK = RoPE up to 1x and degrades gracefully", "the variants rope-ntk, rope-pi and rope-dynamic",
     "ppl-by-length.svg rope-ntk-needle.svg rope-dynamic-needle.svg"},
    {"YaRN zero-shot: best zero-shot perplexity among the RoPE scalings at 2-8x; fine-tuned at s=4: passkey >= 80% up to 4x, better than PI-FT at 8x",
     "the variants rope-yarn, rope-yarn4, rope-pi, rope-ntk, rope-dynamic and rope-pi4", "ppl-by-length.svg rope-yarn-needle.svg rope-yarn4-needle.svg"},
    {"Self-Extend on RoPE: passkey >= 80% up to its reach (L - W)G + W, far needles included, where plain RoPE is at 0; perplexity bounded",
     "the variants rope, rope-selfextend-g4 and rope-selfextend-g8", "ppl-by-length.svg rope-selfextend-g4-needle.svg rope-selfextend-g8-needle.svg rope-selfextend-g8-distance.svg"},
    {"NoPE: degrades more gracefully than RoPE (some passkey at 1.5-2x) but fails by 4x; an attention temperature extends it somewhat", "the variants none and rope",
     "none-needle.svg none-logn-needle.svg ppl-by-length.svg"},
    {"T5 bias: perplexity roughly flat to ~2-3x, slowly rising; passkey beyond L partial", "the variant t5", "ppl-by-length.svg t5-needle.svg"},
    {"ALiBi + PI: more passkey success than plain ALiBi for needles farther than L, at some perplexity cost", "the variants alibi and alibi-pi",
     "alibi-distance.svg alibi-pi-distance.svg ppl-by-length.svg"},
};

/* The report being written and its folder: a verdict links only figures that are there. */
typedef struct {
    FILE *f;
    const char *dir;
} Report;

/* One verdict line: reproduced / not reproduced / not tested, and the evidence in numbers. A number the
   run did not measure (a length left out with -max-mult or -only) shows as nan or n/a and makes the
   verdict "incomplete" rather than a failure. */
static void verdict(const Report *rep, int n, int tested, int holds, const char *fmt, ...) {
    char evidence[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(evidence, sizeof evidence, fmt, ap);
    va_end(ap);
    const char *v = !tested ? "not tested" : strstr(evidence, "nan") || strstr(evidence, "n/a") ? "incomplete" : holds ? "reproduced" : "not reproduced";
    FILE *f = rep->f;
    fprintf(f, "| %d | %s | **%s** | %s |", n, PREDICTIONS[n].claim, v, evidence);
    char names[400], path[1400];
    snprintf(names, sizeof names, "%s", PREDICTIONS[n].figures);
    int shown = 0;
    for (char *name = strtok(names, " "); name && tested; name = strtok(NULL, " ")) {
        snprintf(path, sizeof path, "%s/%s", rep->dir, name);
        if (access(path, R_OK)) continue;
        fprintf(f, "%s[%s](%s)", shown++ ? ", " : " ", name, name);
    }
    fprintf(f, "%s |\n", shown ? "" : " –");
}

/* the row of a prediction whose variants this run left out */
static void not_run(const Report *rep, int n) { verdict(rep, n, 0, 0, "not run: needs %s (see -only)", PREDICTIONS[n].needs); }

static void write_report(const Args *a, const Result *res, const int *run, double seconds, int argc, char **argv) {
    FILE *f = open_in(a, "README.md");
    const Report rep = {f, a->out};
    char b1[16], b2[16], b3[16], b4[16], b5[16], b6[16];
    fprintf(f, "# The extrapolation study on the zoo\n\nWritten by `./study` (`make study`) in %.0f s on this machine; the command:\n\n    ", seconds);
    for (int i = 0; i < argc; i++) fprintf(f, "%s%s", i ? " " : "", argv[i]);
    fprintf(f, "\n\nProtocol (study.md §11.4, scaled to one hour on 2 cores): perplexity over the held-out Brown text (`%s`), "
               "non-overlapping windows, %d tokens scored per length; the passkey grid at lengths 1-%dx L, %d depths, both haystacks, "
               "%d trials per cell up to 4L and half as many per doubling after (at least 1), seed %llu. Zero-shot RoPE scalings use "
               "s = max(1, N / L) at each length N. Every number below comes from the CSVs in this folder.\n\n",
            a->text, a->ppl_tokens, a->max_mult, a->depths, a->trials, a->seed);

    fprintf(f, "## Summary\n\nBits per byte (window average) and passkey exact match, both haystacks pooled.\n\n"
               "| variant | bpb 1x | bpb 2x | bpb 4x | bpb 16x | bpb 64x | passkey 1x | 2x | 4x | 16x | 64x | passkey context |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v]) continue;
        const Result *r = &res[v];
        fprintf(f, "| %s | %s | %s | %s | %s | %s |", VARIANTS[v].label, num(avg_at(r, 1), b1), num(avg_at(r, 2), b2), num(avg_at(r, 4), b3),
                num(avg_at(r, 16), b4), num(avg_at(r, 64), b5));
        fprintf(f, " %s | %s | %s | %s | %s |", pct(exact_at(r, 1), b1), pct(exact_at(r, 2), b2), pct(exact_at(r, 4), b3),
                pct(exact_at(r, 16), b4), pct(exact_at(r, 64), b5));
        double ctx = passkey_context(r);
        if (ctx > 0) fprintf(f, " %gL |\n", ctx);
        else fprintf(f, " none |\n");
    }
    fprintf(f, "\n\"n/a\": not run or refused (the learned table cannot represent positions past L).\n\n"
               "![perplexity by length](ppl-by-length.svg)\n\n![last position bucket](ppl-last-bucket.svg)\n\n");

    /* gates */
    fprintf(f, "## Gates\n\n");
    int g1 = 1, n_models = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v] || !pretrained_as_is(v)) continue;
        n_models++;
        g1 &= exact_at(&res[v], 1) >= 0.95;
        lo = fmin(lo, avg_at(&res[v], 1));
        hi = fmax(hi, avg_at(&res[v], 1));
    }
    fprintf(f, "- **G1 learnability** (every trained model >= 95%% exact at L): %s over %d models. Exact at L, and in brackets over the keys "
               "that repeat a digit:", g1 ? "passed" : "FAILED", n_models);
    for (int v = 0, first = 1; v < N_VARIANTS; v++) {
        if (!run[v] || !pretrained_as_is(v)) continue;
        NeedleStat at_l = needle_at(&res[v], 1, 0);
        fprintf(f, "%s %s %s (%s)", first ? "" : ",", VARIANTS[v].label, pct(share(at_l.exact, at_l.trials), b1),
                pct(share(at_l.repeats_exact, at_l.repeats), b2));
        first = 0;
    }
    fprintf(f, ".\n");
    fprintf(f, "- **G2 in-distribution parity** (bits/byte at L within ~5%%): spread %.3f to %.3f (%.1f%%).\n\n", lo, hi, 100 * (hi / lo - 1));

    /* predictions, study.md §11.5 */
    const Result *rope = find(res, run, "rope"), *pi = find(res, run, "rope-pi"), *ntk = find(res, run, "rope-ntk"),
                 *dyn = find(res, run, "rope-dynamic"), *yarn = find(res, run, "rope-yarn"), *sinks = find(res, run, "rope-sinks"),
                 *pi4 = find(res, run, "rope-pi4"), *yarn4 = find(res, run, "rope-yarn4"), *alibi = find(res, run, "alibi"),
                 *alibipi = find(res, run, "alibi-pi"),
                 *t5 = find(res, run, "t5"), *sin = find(res, run, "sinusoidal"), *learned = find(res, run, "learned"),
                 *nope = find(res, run, "none"), *nope_logn = find(res, run, "none-logn"), *se4 = find(res, run, "rope-selfextend-g4"), *se8 = find(res, run, "rope-selfextend-g8");
    fprintf(f, "## Predictions (study.md §11.5)\n\n| # | prediction | verdict | evidence | figures |\n|---|---|---|---|---|\n");
    if (learned) {
        int i2 = ppl_index(2);
        verdict(&rep, 1, 1, !learned->ppl_ok[i2] && isnan(exact_at(learned, 2)),
                "at 2L: %s", learned->ppl_ok[i2] ? "it ran" : learned->ppl_err[i2]);
    } else {
        not_run(&rep, 1);
    }
    if (sin) {
        double b1x = avg_at(sin, 1), past = last_bucket_at(sin, 2), ratio = exp2(past - b1x);
        int holds = ratio >= 1.5 && avg_at(sin, 4) > b1x && exact_at(sin, 2) < 0.05 && exact_at(sin, 4) < 0.05;
        verdict(&rep, 2, 1, holds,
                "positions [L,2L) at 2x: %.3f bpb vs %.3f at 1x (perplexity x%.2f); 4x window average %.3f; passkey 2x %s, 4x %s", past, b1x,
                ratio, avg_at(sin, 4), pct(exact_at(sin, 2), b1), pct(exact_at(sin, 4), b2));
    } else {
        not_run(&rep, 2);
    }
    if (rope) {
        int holds = exact_at(rope, 2) <= 0.3 && exact_at(rope, 4) < 0.05 && near_at(rope, 4, rope->L) < 0.05 &&
                    last_bucket_at(rope, 4) > last_bucket_at(rope, 2) && last_bucket_at(rope, 2) > avg_at(rope, 1);
        verdict(&rep, 3, 1,
                holds, "last bucket: %.3f (2x), %.3f (4x), %.3f (8x) vs %.3f at 1x; passkey 1.5x %s, 2x %s, 4x %s, 4x with needle within L %s",
                last_bucket_at(rope, 2), last_bucket_at(rope, 4), last_bucket_at(rope, 8), avg_at(rope, 1), pct(exact_at(rope, 1.5), b1),
                pct(exact_at(rope, 2), b2), pct(exact_at(rope, 4), b3), pct(near_at(rope, 4, rope->L), b4));
    } else {
        not_run(&rep, 3);
    }
    if (alibi) {
        int flat = 1;
        for (int i = ppl_index(1); i + 1 < N_PPL && PPL_MULT[i + 1] <= a->max_mult; i++) flat &= avg_at(alibi, PPL_MULT[i + 1]) <= avg_at(alibi, PPL_MULT[i]) * 1.01;
        double near16 = near_at(alibi, 16, alibi->L), near64 = near_at(alibi, a->max_mult, alibi->L);
        int holds = flat && near16 >= 0.8 && exact_at(alibi, a->max_mult) < near64;
        verdict(&rep, 4,
                1, holds, "window average %.3f (1x), %.3f (4x), %.3f (16x), %.3f (%dx)%s; needles within L: %s at 16x, %s at %dx; all needles %s at 16x",
                avg_at(alibi, 1), avg_at(alibi, 4), avg_at(alibi, 16), avg_at(alibi, a->max_mult), a->max_mult, flat ? "" : " (not monotone within 1%)",
                pct(near16, b1), pct(near64, b2), a->max_mult, pct(exact_at(alibi, 16), b3));
    } else {
        not_run(&rep, 4);
    }
    {
        const Result *cands[] = {alibi, sinks, yarn};
        const char *names[] = {"ALiBi", "RoPE + sinks", "YaRN zero-shot"};
        char ev[600] = "";
        int holds = 0, tested = 0;
        for (int i = 0; i < 3; i++) {
            if (!cands[i]) continue;
            tested = 1;
            double flat = avg_at(cands[i], 16) / avg_at(cands[i], 1), mean4 = 0;
            int n = 0;
            for (int l = 0; l < N_NEEDLE; l++) if (NEEDLE_MULT[l] >= 4 && !isnan(exact_at(cands[i], NEEDLE_MULT[l]))) { mean4 += exact_at(cands[i], NEEDLE_MULT[l]); n++; }
            mean4 = n ? mean4 / n : NAN;
            holds |= flat <= 1.05 && mean4 < 0.5;
            size_t len = strlen(ev);
            snprintf(ev + len, sizeof ev - len, "%s%s: bpb 16x/1x = %.3f, mean passkey at >= 4x %s", len ? "; " : "", names[i], flat, pct(mean4, b1));
        }
        verdict(&rep, 5, tested, holds, "%s", ev);
    }
    if (sinks) {
        int holds = avg_at(sinks, a->max_mult) <= avg_at(sinks, 1) * 1.05 && near_at(sinks, 16, sinks->L / 2) >= 0.8 && exact_at(sinks, 16) < 0.5;
        verdict(&rep, 6, 1,
                holds, "window average %.3f (1x), %.3f (%dx); at 16x: needles within L/2 %s, all %s", avg_at(sinks, 1), avg_at(sinks, a->max_mult),
                a->max_mult, pct(near_at(sinks, 16, sinks->L / 2), b1), pct(exact_at(sinks, 16), b2));
    } else {
        not_run(&rep, 6);
    }
    if (pi && pi4) {
        int zs = avg_at(pi, 2) > avg_at(rope, 1) && avg_at(pi, 16) < 2 * avg_at(pi, 2);
        int ft = exact_at(pi4, 1) >= 0.8 && exact_at(pi4, 2) >= 0.8 && exact_at(pi4, 4) >= 0.8 && avg_at(pi4, 4) <= avg_at(rope, 1) * 1.05;
        verdict(&rep, 7, 1,
                zs && ft, "zero-shot bpb %.3f (2x), %.3f (16x) vs plain RoPE %.3f at 1x and %.3f at 2x; fine-tuned: bpb %.3f at 4x, passkey %s / %s / %s at 1x / 2x / 4x, %s at 8x",
                avg_at(pi, 2), avg_at(pi, 16), avg_at(rope, 1), avg_at(rope, 2), avg_at(pi4, 4), pct(exact_at(pi4, 1), b1), pct(exact_at(pi4, 2), b2),
                pct(exact_at(pi4, 4), b3), pct(exact_at(pi4, 8), b4));
    } else {
        not_run(&rep, 7);
    }
    if (ntk && pi && dyn) {
        int holds = avg_at(ntk, 2) < avg_at(pi, 2) && avg_at(ntk, 4) < avg_at(pi, 4) && fabs(avg_at(dyn, 1) - avg_at(rope, 1)) < 1e-6 &&
                    avg_at(dyn, 8) < avg_at(rope, 8);
        verdict(&rep, 8, 1, holds,
                "NTK %.3f / %.3f vs PI %.3f / %.3f at 2x / 4x; dynamic %.3f at 1x (RoPE %.3f), %.3f at 8x (RoPE %.3f); passkey NTK 2x %s",
                avg_at(ntk, 2), avg_at(ntk, 4), avg_at(pi, 2), avg_at(pi, 4), avg_at(dyn, 1), avg_at(rope, 1), avg_at(dyn, 8), avg_at(rope, 8),
                pct(exact_at(ntk, 2), b1));
    } else {
        not_run(&rep, 8);
    }
    if (yarn && yarn4 && pi && ntk && dyn && pi4) {
        int best = 1;
        for (double m = 2; m <= 8; m *= 2)
            best &= avg_at(yarn, m) <= fmin(avg_at(pi, m), fmin(avg_at(ntk, m), avg_at(dyn, m)));
        int ft = exact_at(yarn4, 1) >= 0.8 && exact_at(yarn4, 2) >= 0.8 && exact_at(yarn4, 4) >= 0.8 && exact_at(yarn4, 8) > exact_at(pi4, 8);
        verdict(&rep, 9,
                1, best && ft, "zero-shot bpb at 2x / 4x / 8x: YaRN %.3f / %.3f / %.3f, PI %.3f / %.3f / %.3f, NTK %.3f / %.3f / %.3f, dynamic %.3f / %.3f / %.3f; "
                "fine-tuned passkey %s / %s / %s at 1x / 2x / 4x, %s at 8x (PI-FT %s)", avg_at(yarn, 2), avg_at(yarn, 4), avg_at(yarn, 8), avg_at(pi, 2),
                avg_at(pi, 4), avg_at(pi, 8), avg_at(ntk, 2), avg_at(ntk, 4), avg_at(ntk, 8), avg_at(dyn, 2), avg_at(dyn, 4), avg_at(dyn, 8),
                pct(exact_at(yarn4, 1), b1), pct(exact_at(yarn4, 2), b2), pct(exact_at(yarn4, 4), b3), pct(exact_at(yarn4, 8), b4), pct(exact_at(pi4, 8), b5));
    } else {
        not_run(&rep, 9);
    }
    if (rope && se4 && se8) {
        /* per variant: every needle length within the reach >= 80%, needles at least L from the question
           (lengths past L, within the reach) >= 80%, and bits/byte at every perplexity length within the
           reach at most 1.25x the 1x value (bounded: plain RoPE's grows without bound); plain RoPE at the
           widest variant's longest length within its reach < 5% */
        const Result *se[] = {se4, se8};
        const Variant *sv[] = {&VARIANTS[variant_index("rope-selfextend-g4")], &VARIANTS[variant_index("rope-selfextend-g8")]};
        char ev[1200] = "";
        int holds = 1;
        double longest = 0;
        for (int i = 0; i < 2; i++) {
            const Result *r = se[i];
            int reach = (r->L - sv[i]->grp_w) * sv[i]->grp_n + sv[i]->grp_w;
            double reach_mult = (double)reach / r->L, top = 0, worst_bpb = 0;
            size_t len = strlen(ev);
            len += snprintf(ev + len, sizeof ev - len, "%sG %d, W %d (reach %d = %.2fL): passkey", i ? "; " : "", sv[i]->grp_n, sv[i]->grp_w,
                            reach, reach_mult);
            for (int l = 0; l < N_NEEDLE && NEEDLE_MULT[l] <= reach_mult && NEEDLE_MULT[l] <= a->max_mult; l++) {
                holds &= exact_at(r, NEEDLE_MULT[l]) >= 0.8;
                top = NEEDLE_MULT[l];
                len += snprintf(ev + len, sizeof ev - len, " %s at %gx", pct(exact_at(r, NEEDLE_MULT[l]), b1), NEEDLE_MULT[l]);
            }
            double far = far_between(r, 1.5, top, r->L);
            holds &= far >= 0.8;
            for (int k = 0; k < N_PPL && PPL_MULT[k] <= reach_mult && PPL_MULT[k] <= a->max_mult; k++)
                worst_bpb = fmax(worst_bpb, avg_at(r, PPL_MULT[k]) / avg_at(r, 1));
            holds &= worst_bpb <= 1.25;
            longest = fmax(longest, top);
            snprintf(ev + len, sizeof ev - len, ", needles >= L away %s; bpb %.3f at 1x, %.3f at 4x, %.3f at 8x (worst within reach x%.2f)",
                     pct(far, b2), avg_at(r, 1), avg_at(r, 4), avg_at(r, 8), worst_bpb);
        }
        holds &= exact_at(rope, longest) < 0.05;
        size_t len = strlen(ev);
        snprintf(ev + len, sizeof ev - len, "; plain RoPE passkey %s at %gx, bpb %.3f / %.3f at 4x / 8x", pct(exact_at(rope, longest), b1), longest,
                 avg_at(rope, 4), avg_at(rope, 8));
        verdict(&rep, 10, 1, holds, "%s", ev);
    } else {
        not_run(&rep, 10);
    }
    if (nope && rope) {
        int holds = exact_at(nope, 1.5) > 0 && exact_at(nope, 4) < 0.05 && exact_at(nope, 1.5) >= exact_at(rope, 1.5);
        /* "extends it somewhat": more passkey over 1.5-4x with the temperature than without (NaN when not run) */
        double plain = exact_at(nope, 1.5) + exact_at(nope, 2) + exact_at(nope, 4);
        double tempered = nope_logn ? exact_at(nope_logn, 1.5) + exact_at(nope_logn, 2) + exact_at(nope_logn, 4) : NAN;
        char temp[160] = "not run (the variant none-logn)";
        if (nope_logn)
            snprintf(temp, sizeof temp, "passkey %s / %s / %s, bpb %.3f at 2x", pct(exact_at(nope_logn, 1.5), b1),
                     pct(exact_at(nope_logn, 2), b2), pct(exact_at(nope_logn, 4), b3), avg_at(nope_logn, 2));
        verdict(&rep, 11, 1, holds && tempered > plain,
                "NoPE passkey %s / %s / %s at 1.5x / 2x / 4x (RoPE %s / %s / %s); bpb %.3f / %.3f at 1x / 2x. With the log-n attention temperature: %s",
                pct(exact_at(nope, 1.5), b1), pct(exact_at(nope, 2), b2), pct(exact_at(nope, 4), b3), pct(exact_at(rope, 1.5), b4),
                pct(exact_at(rope, 2), b5), pct(exact_at(rope, 4), b6), avg_at(nope, 1), avg_at(nope, 2), temp);
    } else {
        not_run(&rep, 11);
    }
    if (t5) {
        int holds = avg_at(t5, 2) <= avg_at(t5, 1) * 1.1 && exact_at(t5, 2) > 0 && exact_at(t5, 2) < exact_at(t5, 1);
        verdict(&rep, 12, 1, holds,
                "bpb %.3f / %.3f / %.3f / %.3f at 1x / 2x / 4x / 16x; passkey %s / %s / %s at 1x / 2x / 4x", avg_at(t5, 1), avg_at(t5, 2), avg_at(t5, 4),
                avg_at(t5, 16), pct(exact_at(t5, 1), b1), pct(exact_at(t5, 2), b2), pct(exact_at(t5, 4), b3));
    } else {
        not_run(&rep, 12);
    }
    if (alibi && alibipi) {
        double far = far_between(alibi, 2, 8, alibi->L), far_pi = far_between(alibipi, 2, 8, alibi->L);
        int holds = far_pi > far && avg_at(alibipi, 4) > avg_at(alibi, 4);
        verdict(&rep, 13, 1, holds, "needles farther than L at 2-8x: %s with PI vs %s plain; bpb at 2x / 4x / 8x: %.3f / %.3f / %.3f with PI vs %.3f / %.3f / %.3f",
                pct(far_pi, b1), pct(far, b2), avg_at(alibipi, 2), avg_at(alibipi, 4), avg_at(alibipi, 8), avg_at(alibi, 2), avg_at(alibi, 4),
                avg_at(alibi, 8));
    } else {
        not_run(&rep, 13);
    }

    fprintf(f, "\n## Needle heatmaps (x = context length, y = depth; red 0 -> yellow -> green 1) and distance views\n\n");
    for (int v = 0; v < N_VARIANTS; v++) {
        if (!run[v]) continue;
        fprintf(f, "### %s (%.0f s)\n\n![%s heatmap](%s-needle.svg)\n\n![%s distance](%s-distance.svg)\n\n", VARIANTS[v].label, res[v].seconds,
                VARIANTS[v].name, VARIANTS[v].name, VARIANTS[v].name, VARIANTS[v].name);
    }
    close_checked(f, "README.md");
}

int main(int argc, char **argv) {
    Args a;
    parse_args(&a, argc, argv);
#ifdef _OPENMP
    if (a.threads) omp_set_num_threads(a.threads);
#endif
    if (mkdir(a.out, 0777) && errno != EEXIST) die("cannot create %s: %s", a.out, strerror(errno));
    int run[N_VARIANTS], any = 0;
    for (int v = 0; v < N_VARIANTS; v++) any |= run[v] = selected(&a, VARIANTS[v].name);
    if (!any) die("-only %s names no variant", a.only);
    /* the text, tokenized with the first model's tokenizer (the zoo shares one) */
    char err[GGUF_ERR];
    Model m;
    int first = 0;
    while (!run[first]) first++;
    if (open_variant(&m, &a, &VARIANTS[first], 1, err)) die("%s", err);
    if (!m.has_tok) die("%s has no tokenizer: %s", VARIANTS[first].file, m.tok_err);
    Corpus c;
    Tokens t;
    Passkey pk;
    if (corpus_load(&c, a.text, err) || corpus_tokenize(&c, &m.tok, &t, err) || passkey_init(&pk, &m.tok, &t, 1, err)) die("%s", err);
    Result *res = calloc(N_VARIANTS, sizeof *res);
    if (!res) die("out of memory");
    double t0 = now_s();
    /* -jobs 2 on 2 cores: dynamic NTK's exact cache re-reads every cached key at every position, bound
       by memory and gaining little from a second thread, so it runs beside the other variants, which
       are bound by arithmetic, instead of before them. Each job then runs its variant on one thread
       (nested regions serial); -jobs 1 runs them in order on all threads. */
#ifdef _OPENMP
    omp_set_max_active_levels(1);
#endif
    #pragma omp parallel for schedule(dynamic, 1) num_threads(a.jobs)
    for (int v = 0; v < N_VARIANTS; v++)
        if (run[v]) {
            run_variant(&a, &VARIANTS[v], &res[v], &t, &pk);
            fprintf(stderr, "%s: done in %.0f s (%.0f s so far)\n", VARIANTS[v].name, res[v].seconds, now_s() - t0);
        }
    write_csvs(&a, res, run);
    write_figures(&a, res, run);
    write_report(&a, res, run, now_s() - t0, argc, argv);
    printf("wrote %s/README.md, ppl.csv, the figures and one heatmap per variant in %.0f s\n", a.out, now_s() - t0);
    for (int v = 0; v < N_VARIANTS; v++) needle_free(&res[v].grid);
    free(res);
    passkey_free(&pk);
    tokens_free(&t);
    corpus_free(&c);
    model_close(&m);
    return 0;
}
