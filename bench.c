/* ./bench (make bench): speed of the runtime on this machine, for the zoo's RoPE model and for random
   models of the llama2.c stories15M and stories110M shapes, in F32 and as Q8_0 (quantize_gguf):
   prefill tokens/s (256 and 4096-token prompts), decode tokens/s from an empty cache and after 4096
   tokens, the time of a 32768-token prefill (zoo model), and peak RSS at -ctx 32768 and 131072, and
   at 131072 with -kv f16 (each in a child process that fills 32768 slots). Each figure is the median
   of -runs runs; "spread" is (max - min) / median, the machine's noise. Prints a markdown table. Not
   a test: nothing here passes or fails. -quick: the 256-token prefill and empty-cache decode only, a
   smoke run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cli.h"
#include "trainer.h"

typedef struct {
    const char *name, *path;
    int dim, layers, heads, hidden, vocab;   /* for the random models (dim 0: a file) */
    const char *q8_0_of;                     /* the file this one is the Q8_0 copy of */
} Shape;

static const Shape SHAPES[] = {
    {"zoo rope", "models/zoo/rope.gguf", 0, 0, 0, 0, 0, NULL},
    {"stories15M shape", "/tmp/pelab-bench-15M.gguf", 288, 6, 6, 768, 32000, NULL},
    {"stories15M shape, Q8_0", "/tmp/pelab-bench-15M-q8_0.gguf", 0, 0, 0, 0, 0, "/tmp/pelab-bench-15M.gguf"},
    {"stories110M shape", "/tmp/pelab-bench-110M.gguf", 768, 12, 12, 2048, 32000, NULL},
    {"stories110M shape, Q8_0", "/tmp/pelab-bench-110M-q8_0.gguf", 0, 0, 0, 0, 0, "/tmp/pelab-bench-110M.gguf"},
};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0], DECODE_STEPS = 64, LONG = 32768 };

static int runs = 5, threads = 2, quick = 0;

/* a random-weight pelab model of the shape (GPT-2 initialisation, RoPE, tied output), written once */
static void write_random(const Shape *s) {
    if (!access(s->path, R_OK)) return;
    Config c = {0};
    c.arch = ARCH_PELAB;
    c.dim = s->dim; c.hidden_dim = s->hidden; c.n_layers = s->layers; c.n_heads = c.n_kv_heads = s->heads;
    c.head_dim = s->dim / s->heads; c.vocab_size = s->vocab; c.train_ctx = 1024; c.norm_eps = 1e-5f;
    c.norm = NORM_RMS; c.mlp = MLP_SWIGLU; c.tied_output = 1; c.pe_family = PE_FAMILY_ROPE;
    PeSettings pe = {0};
    snprintf(pe.method, sizeof pe.method, "rope");
    pe.rope_base = 10000; pe.yarn_ext = -1;
    TrainModel tm;
    char err[GGUF_ERR];
    if (trainmodel_init(&tm, &c, &pe, 1, 0.02, 0.02, err) || trainmodel_save(&tm, s->path, NULL, 0, NULL, NULL, err)) die("%s", err);
    trainmodel_free(&tm);
}

static void write_q8_0(const Shape *s) {
    char err[GGUF_ERR];
    if (access(s->path, R_OK) && quantize_gguf(s->q8_0_of, s->path, GGML_Q8_0, -1, err)) die("%s", err);
}

static void open_at(Model *m, const char *path, int ctx, KvType kv) {
    char err[GGUF_ERR];
    if (model_open(m, path, err) || model_prepare(m, &m->c.pe, ctx, kv, 512, err)) die("%s", err);
}

static int *random_tokens(int n, int vocab) {
    int *t = malloc((size_t)n * sizeof *t);
    if (!t) die("out of memory");
    for (int i = 0; i < n; i++) t[i] = (int)((i * 2654435761u) % (unsigned)vocab);
    return t;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

typedef struct { double median, spread; } Stat;

static Stat stat_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (Stat){med, med > 0 ? (v[n - 1] - v[0]) / med : 0};
}

/* tokens/s over `runs` runs from an empty cache: of the prompt ids[0..n) itself (steps = 0: prefill, logits
   of the last row only), or of `steps` single-token decoding steps after it */
static Stat throughput(Model *m, const int *ids, int n, int steps) {
    double v[32];
    char err[GGUF_ERR];
    float *logits = malloc((size_t)m->c.vocab_size * sizeof *logits);
    for (int r = 0; r < runs; r++) {
        model_reset(m);
        double t0 = now_s();
        if (n && model_forward(m, ids, n, 0, logits, 0, err)) die("%s", err);
        if (steps) t0 = now_s();   /* decoding: the prompt is not timed */
        for (int i = 0; i < steps; i++)
            if (model_forward(m, ids + n + i, 1, n + i, logits, 0, err)) die("%s", err);
        v[r] = (steps ? steps : n) / (now_s() - t0);
    }
    free(logits);
    return stat_of(v, runs);
}

/* peak RSS (MB) of a fresh process (this program, re-executed: an OpenMP runtime does not survive a
   fork) that opens the model with a cache of ctx slots stored as kv and prefills `fill` tokens */
static const char *self_path;

static void rss_child(const char *path, int ctx, int fill, KvType kv) {
    Model m;
    open_at(&m, path, ctx, kv);
    int *ids = random_tokens(fill, m.c.vocab_size);
    char err[GGUF_ERR];
    if (model_forward(&m, ids, fill, 0, NULL, 0, err)) die("%s", err);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.1f\n", ru.ru_maxrss / 1024.0);
}

static double peak_rss(const char *path, int ctx, int fill, KvType kv) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -rss-child '%s' %d %d %s -th %d", self_path, path, ctx, fill, kv_type_names[kv], threads);
    FILE *p = popen(cmd, "r");
    double mb = -1;
    if (!p || fscanf(p, "%lf", &mb) != 1) mb = -1;
    if (p) pclose(p);
    return mb;
}

static void cell(Stat s) { printf(" %.0f (±%.0f%%) |", s.median, 100 * s.spread / 2); }

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc >= 6 && !strcmp(argv[1], "-rss-child")) {   /* the child of peak_rss: PATH CTX FILL KV [-th N] */
#ifdef _OPENMP
        if (argc >= 8) omp_set_num_threads((int)parse_int("-th", argv[7], 1, 1024));
#endif
        rss_child(argv[2], (int)parse_int("ctx", argv[3], 1, 1 << 24), (int)parse_int("fill", argv[4], 1, 1 << 24),
                  (KvType)parse_choice("kv", argv[5], kv_type_names));
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h")) {
            printf("usage: ./bench [-runs N] [-th N] [-quick]   (make bench; defaults 5 runs, 2 threads; -quick: a smoke run,\n"
                   "       256-token prefill and empty-cache decode only)\n");
            return 0;
        }
        if (!strcmp(argv[i], "-quick")) { quick = 1; continue; }
        if (i + 1 >= argc) die("flag %s needs a value", argv[i]);
        if (!strcmp(argv[i], "-runs")) runs = (int)parse_int(argv[i], argv[i + 1], 1, 32);
        else if (!strcmp(argv[i], "-th")) threads = (int)parse_int(argv[i], argv[i + 1], 1, 1024);
        else die("unknown flag %s", argv[i]);
        i++;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    printf("%d threads, median of %d runs (± half the max-min spread)\n\n", threads, runs);
    printf("| model | params | prefill 256 tok/s | prefill 4096 tok/s | decode tok/s, empty cache | decode tok/s after 4096 |\n"
           "|---|---|---|---|---|---|\n");
    for (int s = 0; s < N_SHAPES; s++) {
        if (SHAPES[s].dim) write_random(&SHAPES[s]);
        if (SHAPES[s].q8_0_of) write_q8_0(&SHAPES[s]);
        Model m;
        open_at(&m, SHAPES[s].path, 4096 + DECODE_STEPS, KV_F32);
        size_t params = 0;
        for (uint64_t i = 0; i < m.gguf.n_tensors; i++) {
            const GgufTensor *t = &m.gguf.tensors[i];
            params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        }
        int *ids = random_tokens(4096 + DECODE_STEPS, m.c.vocab_size);
        printf("| %s | %.2fM |", SHAPES[s].name, params / 1e6);
        cell(throughput(&m, ids, 256, 0));
        if (quick) printf(" - |");
        else cell(throughput(&m, ids, 4096, 0));
        cell(throughput(&m, ids, 0, DECODE_STEPS));
        if (quick) printf(" - |");
        else cell(throughput(&m, ids, 4096, DECODE_STEPS));
        printf("\n");
        fflush(stdout);
        free(ids);
        model_close(&m);
    }
    if (quick) return 0;
    /* the zoo model at long context */
    Model m;
    open_at(&m, SHAPES[0].path, LONG, KV_F32);
    int *ids = random_tokens(LONG, m.c.vocab_size);
    char err[GGUF_ERR];
    double t0 = now_s();
    if (model_forward(&m, ids, LONG, 0, NULL, 0, err)) die("%s", err);
    printf("\n32768-token prefill of the zoo model: %.1f s (%.0f tok/s)\n", now_s() - t0, LONG / (now_s() - t0));
    size_t weights = 0;
    for (uint64_t i = 0; i < m.gguf.n_tensors; i++) weights += m.gguf.tensors[i].nbytes;
    int kvd = m.c.n_kv_heads * m.c.head_dim, layers = m.c.n_layers;
    free(ids);
    model_close(&m);
    static const struct { int ctx; KvType kv; } rss[] = {{LONG, KV_F32}, {4 * LONG, KV_F32}, {4 * LONG, KV_F16}};
    for (int r = 0; r < 3; r++) {
        int ctx = rss[r].ctx;
        double kv = 2.0 * layers * ctx * kvd * (rss[r].kv == KV_F16 ? sizeof(uint16_t) : sizeof(float)) / 1048576, w = weights / 1048576.0;
        printf("peak RSS at -ctx %d -kv %s after a %d-token prefill: %.1f MB (weights %.1f MB + full KV cache %.1f MB = %.1f MB)\n", ctx,
               kv_type_names[rss[r].kv], LONG, peak_rss(SHAPES[0].path, ctx, LONG, rss[r].kv), w, kv, w + kv);
    }
    return 0;
}
