/* Evaluation modes (eval.h): perplexity equals an independent log-softmax over model_forward's logits,
   non-overlapping and sliding, in process and through ./run's CSV; the needle grid's CSV equals a
   recomputation from passkey_at_depth and model_forward, cell by cell; the SVG charts are well-formed
   XML with one mark per cell; the new flags fail with clean one-line errors. Random-weight models
   only (tests/testmodel.h): nothing here needs a trained model. */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "eval.h"
#include "tests/test.h"
#include "tests/testmodel.h"

#define WINDOW 64   /* two position buckets of the test model's training length 32 */

static char model_path[600], learned_path[600], text_path[600], short_path[600];

static void tmp_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/eval-%ld-%s", test_tmp_dir, (long)getpid(), name); }

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    if (s) s[fread(s, 1, (size_t)n, f)] = 0;
    fclose(f);
    return s;
}

/* English-like sentences (sentence boundaries for the corpus haystack), no digits */
static void write_text(const char *path, int n_sentences, unsigned seed) {
    static const char *words[] = {"the", "jury", "said", "water", "green", "city", "report", "over", "a", "blue", "quiet", "election"};
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    for (int s = 0; s < n_sentences; s++) {
        fputs(s ? " The" : "The", f);
        int n = 3 + (int)(seed % 9);
        for (int w = 0; w < n; w++) {
            seed = seed * 1103515245u + 12345u;
            fprintf(f, " %s", words[(seed >> 16) % 12]);
        }
        fputc(s % 7 == 6 ? '?' : '.', f);
    }
    fclose(f);
}

static void setup(void) {
    static int done;
    if (done++) return;
    tmp_path(model_path, sizeof model_path, "rope &<\"x\">'.gguf");   /* the charts show the path: escaping */
    tmp_path(learned_path, sizeof learned_path, "learned.gguf");
    tmp_path(text_path, sizeof text_path, "text.txt");
    tmp_path(short_path, sizeof short_path, "short.txt");
    TestModelSpec rope = test_model_spec("rope"), learned = test_model_spec("learned");
    CHECK(test_model_write(model_path, &rope) == 0 && test_model_write(learned_path, &learned) == 0, "cannot write test models");
    write_text(text_path, 60, 7);
    FILE *f = fopen(short_path, "w");   /* shorter than a 65-token window and a 131-token haystack */
    CHECK(f && fputs("The jury said. It was quiet.", f) >= 0, "cannot write %s", short_path);
    if (f) fclose(f);
}

/* 1 if stderr holds nothing but progress lines (they appear when a run takes more than 3 s, as on a
   busy machine) */
static int only_progress(const char *err) {
    for (const char *line = err; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
        const char *s = line[0] == '\r' ? line + 1 : line;
        if (*s != '\n' && strncmp(s, "needle cells: ", 14) && strncmp(s, "ppl windows: ", 13)) return 0;
    }
    return 1;
}

static int open_model(Model *m, const char *path, int ctx, int chunk) {
    char err[GGUF_ERR] = "";
    int ok = model_open(m, path, err) == 0 && model_prepare(m, &m->c.pe, ctx, KV_F32, chunk, err) == 0;
    CHECK(ok, "cannot load %s: %s", path, err);
    return ok;
}

static int load_tokens(const Model *m, const char *path, Corpus *c, Tokens *t) {
    char err[256] = "";
    int ok = corpus_load(c, path, err) == 0 && corpus_tokenize(c, &m->tok, t, err) == 0;
    CHECK(ok, "cannot load %s: %s", path, err);
    return ok;
}

/* ---- a minimal ./run runner: argv, no shell, stdout and stderr into files ---- */

typedef struct { int status; char *out, *err; } Run;

static Run run_binary(const char *binary, const char *const *args) {
    static int seq;
    char out[700], err[700];
    snprintf(out, sizeof out, "%s/eval-%ld-%d.out", test_tmp_dir, (long)getpid(), seq);
    snprintf(err, sizeof err, "%s/eval-%ld-%d.err", test_tmp_dir, (long)getpid(), seq++);
    const char *argv[40] = {binary};
    for (int i = 0; args[i] && i < 38; i++) argv[i + 1] = args[i];
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    Run r = {-1, NULL, NULL};
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st)) r.status = WEXITSTATUS(st);
    r.out = slurp(out);
    r.err = slurp(err);
    if (!r.out) r.out = calloc(1, 1);
    if (!r.err) r.err = calloc(1, 1);
    unlink(out);
    unlink(err);
    return r;
}

static Run run(const char *const *args) { return run_binary(test_run_binary, args); }
static void run_free(Run *r) { free(r->out); free(r->err); }

/* ---- 1: perplexity ---- */

/* the sum of -log p(next token) over the scored rows, from one all-rows forward per window */
static double reference_nll(Model *m, const int *ids, size_t n, int N, int S, long long *tokens, long long bucket0[2]) {
    int V = m->c.vocab_size;
    float *logits = malloc((size_t)N * V * sizeof *logits);
    char err[GGUF_ERR];
    double total = 0;
    *tokens = bucket0[0] = bucket0[1] = 0;
    for (size_t s = 0; s + N + 1 <= n; s += S) {
        model_reset(m);
        CHECK(model_forward(m, ids + s, N, 0, logits, 1, err) == 0, "forward: %s", err);
        for (int r = s ? N - S : 0; r < N; r++) {
            const float *row = logits + (size_t)r * V;
            double mx = -INFINITY, z = 0;
            for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
            total += mx + log(z) - row[ids[s + r + 1]];
            ++*tokens;
            bucket0[r >= 32]++;
        }
    }
    free(logits);
    return total;
}

static void test_eval_ppl_matches_logits(void) {
    setup();
    Model m;
    Corpus c;
    Tokens t;
    if (!open_model(&m, model_path, WINDOW, WINDOW)) return;
    if (!load_tokens(&m, text_path, &c, &t)) { model_close(&m); return; }
    int strides[] = {WINDOW, 20, 1};
    for (int i = 0; i < 3; i++) {
        int S = strides[i];
        long long want_tokens, want_b[2];
        size_t n = S == 1 ? 300 : t.n;   /* stride 1 runs a window per token */
        double want = reference_nll(&m, t.ids, n, WINDOW, S, &want_tokens, want_b);
        Ppl p = {.window = WINDOW, .stride = S, .bucket = 32, .chunk = 24};   /* chunks of 24: rows cross calls */
        char err[GGUF_ERR] = "";
        CHECK(eval_ppl(&m, t.ids, n, &p, err) == 0, "stride %d: %s", S, err);
        CHECK(p.tokens == want_tokens && p.bytes == want_tokens, "stride %d: %lld tokens, %lld bytes scored, want %lld", S, p.tokens, p.bytes,
              want_tokens);
        CHECK(S != WINDOW || p.tokens == (long long)((n - 1) / WINDOW) * WINDOW, "non-overlapping: %lld tokens", p.tokens);
        CHECK(S == WINDOW || p.tokens == (long long)n - 1 - (long long)((n - WINDOW - 1) % S), "sliding: %lld tokens, every token once", p.tokens);
        CHECK_NEAR(p.nll, want, 1e-5 * want, "summed NLL");
        CHECK(p.n_buckets == 2 && p.b_tokens[0] == want_b[0] && p.b_tokens[1] == want_b[1] && p.b_tokens[0] + p.b_tokens[1] == p.tokens,
              "stride %d: buckets [0,32) %lld, [32,64) %lld, want %lld and %lld", S, p.b_tokens[0], p.b_tokens[1], want_b[0], want_b[1]);
        CHECK_NEAR(p.b_nll[0] + p.b_nll[1], p.nll, 1e-9 * p.nll, "bucket NLLs add up");
    }

    /* the CLI's CSV total row, sliding with -max-tokens */
    char csv[700];
    tmp_path(csv, sizeof csv, "ppl.csv");
    const char *args[] = {model_path, "-m", "ppl", "-f", text_path, "-ctx", "64", "-stride", "20", "-max-tokens", "300", "-csv", csv, NULL};
    Run r = run(args);
    CHECK(r.status == 0 && only_progress(r.err), "ppl CLI: exit %d, stderr %s", r.status, r.err);
    CHECK(strstr(r.out, "bits/byte") && strstr(r.out, "[32, 64)"), "ppl CLI output: %s", r.out);
    long long want_tokens, want_b[2];
    double want = reference_nll(&m, t.ids, 300, WINDOW, 20, &want_tokens, want_b);
    char *text = slurp(csv), *line = text ? strstr(text, "\n64,20,total,") : NULL;
    long long tokens = -1;
    double mean = NAN, bpt = NAN, bpb = NAN;
    CHECK(line && sscanf(line + 1, "%*d,%*d,total,%*d,%*d,%lld,%*d,%lf,%lf,%*f,%lf", &tokens, &mean, &bpt, &bpb) == 4, "CSV: %s", text ? text : "(none)");
    CHECK(tokens == want_tokens, "CSV tokens %lld, want %lld", tokens, want_tokens);
    CHECK_NEAR(mean, want / want_tokens, 1e-5 * mean, "CSV mean NLL");
    CHECK_NEAR(bpt, mean / log(2), 1e-6 * bpt, "bits/token");
    CHECK_NEAR(bpb, bpt, 1e-6 * bpt, "bits/byte = bits/token for a byte tokenizer");
    int rows = 0;
    for (char *s = text; s && (s = strchr(s, '\n')); s++) rows++;
    CHECK(rows == 4, "CSV: header, 2 buckets and the total: %d lines", rows);
    free(text);
    run_free(&r);
    unlink(csv);
    tokens_free(&t);
    corpus_free(&c);
    model_close(&m);
}

/* A window longer than the cache streams through it (Ppl.shift): each row's NLL equals a fresh run of
   the tokens the shifted cache holds at that moment (sinks + the newest kept half, re-indexed from 0),
   simulated here without the cache: shift when full, keep K, drop half of the rest, oldest first. One
   layer, where a cached key and value depend only on the token and its position (deeper layers keep
   what the dropped tokens contributed, as in llama.cpp and StreamingLLM). */
static void test_eval_ppl_streaming(void) {
    setup();
    enum { C = 32, N = 80, K = 4 };
    char path[600];
    tmp_path(path, sizeof path, "one-layer.gguf");
    TestModelSpec spec = test_model_spec("rope");
    spec.n_layers = 1;
    CHECK(test_model_write(path, &spec) == 0, "cannot write %s", path);
    Model m, fresh;
    Corpus c;
    Tokens t;
    if (!open_model(&m, path, C, 24)) return;
    if (!open_model(&fresh, path, C, 24)) { model_close(&m); return; }
    if (!load_tokens(&m, text_path, &c, &t)) { model_close(&m); model_close(&fresh); return; }
    int V = m.c.vocab_size, held[C + 1], n_held = 0;
    float *last = malloc((size_t)V * sizeof *last);
    double want = 0;
    char err[GGUF_ERR] = "";
    for (int r = 0; r < N; r++) {
        if (n_held == C) {
            int drop = (n_held - K) / 2;
            memmove(held + K, held + K + drop, (size_t)(n_held - K - drop) * sizeof *held);
            n_held -= drop;
        }
        held[n_held++] = t.ids[r];
        model_reset(&fresh);
        CHECK(model_forward(&fresh, held, n_held, 0, last, 0, err) == 0, "fresh run: %s", err);
        double mx = last[0], z = 0;
        for (int v = 0; v < V; v++) mx = last[v] > mx ? last[v] : mx;
        for (int v = 0; v < V; v++) z += exp((double)last[v] - mx);
        want += mx + log(z) - last[t.ids[r + 1]];
    }
    Ppl p = {.window = N, .stride = N, .bucket = 32, .chunk = 24, .shift = 1, .keep = K};
    CHECK(eval_ppl(&m, t.ids, N + 1, &p, err) == 0 && p.tokens == N, "streaming ppl: %s (%lld tokens)", err, p.tokens);
    CHECK_NEAR(p.nll, want, 1e-5 * want, "streamed NLL = fresh runs of the shifted cache's tokens");
    Ppl q = {.window = N, .stride = N, .bucket = 32, .chunk = 24};
    CHECK(eval_ppl(&m, t.ids, N + 1, &q, err) == -1 && strstr(err, "does not fit in the context of 32"), "without shift: %s", err);
    free(last);
    tokens_free(&t);
    corpus_free(&c);
    model_close(&m);
    model_close(&fresh);
    unlink(path);
}

/* ---- 2 and 3: the needle grid, recomputed; its SVG charts ---- */

/* 1 if s is well-formed XML: optional <?xml ...?> prolog and comments, one root element, tags balanced
   and nested, attributes name="v" or name='v' without '<', text and attributes with valid entities. */
static int xml_name(const char **p) {
    const char *s = *p;
    if (!isalpha((unsigned char)*s) && *s != '_' && *s != ':') return 0;
    while (isalnum((unsigned char)*s) || (*s && strchr("_:.-", *s))) s++;
    *p = s;
    return 1;
}

static int xml_entity(const char **p) {
    static const char *const names[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (!strncmp(*p, names[i], strlen(names[i]))) { *p += strlen(names[i]); return 1; }
    const char *s = *p + 1, *d;
    if (*s++ != '#') return 0;
    int hex = *s == 'x';
    for (d = s += hex; hex ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s); s++) {}
    if (s == d || *s != ';') return 0;
    *p = s + 1;
    return 1;
}

static int xml_ok(const char *p) {
    const char *open[64];
    size_t len[64];
    int depth = 0, roots = 0;
    if (!strncmp(p, "<?xml", 5) && !(p = strstr(p, "?>"))) return 0;
    if (!strncmp(p, "?>", 2)) p += 2;
    while (*p) {
        if (!strncmp(p, "<!--", 4)) {
            if (!(p = strstr(p + 4, "-->"))) return 0;
            p += 3;
        } else if (p[0] == '<' && p[1] == '/') {
            const char *n = p += 2;
            if (!xml_name(&p) || !depth || (size_t)(p - n) != len[depth - 1] || strncmp(n, open[depth - 1], len[depth - 1])) return 0;
            while (isspace((unsigned char)*p)) p++;
            if (*p++ != '>') return 0;
            depth--;
        } else if (*p == '<') {
            const char *n = ++p;
            if (!xml_name(&p)) return 0;
            size_t nl = (size_t)(p - n);
            for (;;) {
                const char *before = p;
                while (isspace((unsigned char)*p)) p++;
                if (*p == '>' || !strncmp(p, "/>", 2)) break;
                if (p == before || !xml_name(&p)) return 0;   /* attributes are separated by space */
                while (isspace((unsigned char)*p)) p++;
                if (*p++ != '=') return 0;
                while (isspace((unsigned char)*p)) p++;
                char q = *p++;
                if (q != '"' && q != '\'') return 0;
                while (*p != q) {
                    if (!*p || *p == '<' || (*p == '&' && !xml_entity(&p))) return 0;
                    if (*p != '&' && *p != q) p++;
                }
                p++;
            }
            if (!depth) roots++;
            if (*p == '>') {
                if (depth == 64) return 0;
                open[depth] = n;
                len[depth++] = nl;
                p++;
            } else p += 2;
        } else if (*p == '&') {
            if (!xml_entity(&p)) return 0;
        } else {
            if (!depth && !isspace((unsigned char)*p)) return 0;   /* text outside the root */
            p++;
        }
    }
    return depth == 0 && roots == 1;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (; s && (s = strstr(s, what)); s++) n++;
    return n;
}

static void test_eval_xml_checker(void) {
    CHECK(xml_ok("<?xml version=\"1.0\"?>\n<svg a=\"1\" b='&amp;&#60;&#x3c;'><g><t>x &lt; y</t><r/></g></svg>\n"), "a good document");
    static const char *const bad[] = {"<a><b></a></b>", "<a x=1/>", "<a>&foo;</a>", "<a>x < y</a>", "<a x=\"<\"/>", "<a/><b/>", "<a>",
                                      "<a x=\"1\"y=\"2\"/>", "text<a/>", "<a>&#;</a>", "<a></b>", "<a x=\"&\"/>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(!xml_ok(bad[i]), "accepted %s", bad[i]);
}

static void test_eval_needle_grid(void) {
    setup();
    char csv[700], svg[700], dsvg[700], dcsv[700];
    tmp_path(csv, sizeof csv, "needle.csv");
    tmp_path(svg, sizeof svg, "needle.svg");
    tmp_path(dsvg, sizeof dsvg, "distance.svg");
    tmp_path(dcsv, sizeof dcsv, "distance.csv");
    const int lengths[] = {87, 120}, n_depths = 3, trials = 2;   /* 87 at depth 0: distance 64, a bin edge */
    const char *args[] = {model_path, "-m", "needle", "-f", text_path, "-lengths", "87,120", "-depths", "3", "-trials", "2", "-s", "7",
                          "-csv", csv, "-svg", svg, "-distance-svg", dsvg, "-distance-csv", dcsv, NULL};
    Run r = run(args);
    CHECK(r.status == 0 && only_progress(r.err), "needle CLI: exit %d, stderr %s", r.status, r.err);
    CHECK(strstr(r.out, "seed 7") && strstr(r.out, "filler haystack") && strstr(r.out, "corpus haystack") && count(r.out, "\nrepeated ") == 2
          && count(r.out, "\ndistinct ") == 2, "needle output: %s", r.out);

    Model m;
    Corpus c;
    Tokens t;
    Passkey pk;
    char err[GGUF_ERR] = "";
    if (!open_model(&m, model_path, 120, 512)) goto out;
    if (!load_tokens(&m, text_path, &c, &t)) { model_close(&m); goto out; }
    CHECK(passkey_init(&pk, &m.tok, &t, 1, err) == 0, "passkey_init: %s", err);
    int V = m.c.vocab_size, seen[2][2][3] = {{{0}}}, rows = 0, want_bins[2][2][NEEDLE_BINS] = {{{0}}};
    float *logits = malloc((size_t)120 * V * sizeof *logits);
    int ids[120];
    char *text = slurp(csv), *line = text ? strchr(text, '\n') : NULL;
    const char *header = "haystack,length,depth_pct,trials,exact,exact_acc,digit_acc,mean_logp_key,repeat_trials,repeat_exact,seed\n";
    int all_trials = 0, all_repeats = 0, col_repeats[2][2] = {{0}}, col_repeats_exact[2][2] = {{0}};
    CHECK(text && !strncmp(text, header, strlen(header)), "CSV header: %.100s", text ? text : "(none)");
    for (; line && line[1]; line = strchr(line + 1, '\n')) {
        char hay[16];
        int T, n, exact, repeats, repeats_exact, l, d, h;
        double pct, ea, da, lp;
        unsigned long long seed;
        if (!(sscanf(line + 1, "%15[^,],%d,%lf,%d,%d,%lf,%lf,%lf,%d,%d,%llu", hay, &T, &pct, &n, &exact, &ea, &da, &lp, &repeats, &repeats_exact,
                     &seed) == 11)) {
            CHECK(0, "bad CSV row %.80s", line + 1);
            break;
        }
        rows++;
        h = !strcmp(hay, "corpus");
        l = T == lengths[1];
        d = (int)lround(pct / 50);
        CHECK((h || !strcmp(hay, "filler")) && (T == lengths[0] || T == lengths[1]) && fabs(pct - 50 * d) < 1e-9 && d >= 0 && d < n_depths,
              "row %s,%d,%g is not in the grid", hay, T, pct);
        if (fabs(pct - 50 * d) > 1e-9 || d < 0 || d >= n_depths) continue;
        seen[h][l][d]++;
        CHECK(n == trials && seed == 7, "trials %d, seed %llu", n, seed);
        int want_exact = 0, want_digits = 0, want_repeats = 0, want_repeats_exact = 0;
        double want_lp = 0;
        for (int k = 0; k < trials; k++) {
            Rng rng;
            PasskeyInfo info;
            rng_seed(&rng, needle_seed(7, h ? HAY_CORPUS : HAY_FILLER, T, pct / 100, k));
            if (passkey_at_depth(&pk, h ? HAY_CORPUS : HAY_FILLER, T, pct / 100, &rng, ids, &info, err)) { CHECK(0, "%s", err); continue; }
            int H = T - pk.overhead, key_ok = 1, e;
            frexp(info.answer - info.key, &e);   /* distance in [2^(e-1), 2^e) */
            want_bins[h][l][e - 1]++;
            for (int i = 0; i < 5; i++) key_ok &= ids[info.key + i] == pk.digit[info.digits[i] - '0'] && ids[T - 5 + i] == ids[info.key + i];
            CHECK(info.len == T && info.needle == (int)floor(pct / 100 * H) && key_ok, "%s T %d depth %g: needle at %d of %d, key %s",
                  hay, T, pct, info.needle, H, info.digits);
            model_reset(&m);
            CHECK(model_forward(&m, ids, T - 1, 0, logits, 1, err) == 0, "forward: %s", err);
            int all = 1;
            for (int i = 0; i < 5; i++) {
                const float *row = logits + (size_t)(T - 6 + i) * V;
                int best = 0;
                double z = 0;
                for (int v = 1; v < V; v++) best = row[v] > row[best] ? v : best;
                for (int v = 0; v < V; v++) z += exp((double)row[v] - row[best]);
                want_lp += row[ids[T - 5 + i]] - row[best] - log(z);
                want_digits += best == ids[T - 5 + i];
                all &= best == ids[T - 5 + i];
            }
            want_exact += all;
            int repeat = 0;   /* from the key's text, not its tokens */
            for (int i = 0; i < 5; i++) repeat |= strchr(info.digits + i + 1, info.digits[i]) != NULL;
            want_repeats += repeat;
            want_repeats_exact += repeat && all;
        }
        all_trials += trials;
        all_repeats += want_repeats;
        col_repeats[h][l] += want_repeats;
        col_repeats_exact[h][l] += want_repeats_exact;
        CHECK(repeats == want_repeats && repeats_exact == want_repeats_exact, "%s T %d depth %g: %d/%d repeating keys exact, want %d/%d", hay, T,
              pct, repeats_exact, repeats, want_repeats_exact, want_repeats);
        CHECK(exact == want_exact && fabs(da - want_digits / (5.0 * trials)) < 1e-6, "%s T %d depth %g: exact %d digits %g, want %d and %g",
              hay, T, pct, exact, da, want_exact, want_digits / (5.0 * trials));
        CHECK_NEAR(lp, want_lp / trials, 1e-3, "mean log p(key)");
    }
    CHECK(rows == 2 * 2 * n_depths, "%d CSV rows, want %d", rows, 2 * 2 * n_depths);
    CHECK(all_repeats > 0 && all_repeats < all_trials, "%d of %d keys repeat a digit: the split is not exercised", all_repeats, all_trials);
    for (int h = 0; h < 2; h++) {   /* the printed row pools a column's depths */
        const char *sec = strstr(r.out, h ? "corpus haystack" : "filler haystack"), *row = sec ? strstr(sec, "\nrepeated ") : NULL;
        char got[2][16] = {"", ""};
        CHECK(row && sscanf(row, " repeated %15s %15s", got[0], got[1]) == 2, "%s: no repeated row", h ? "corpus" : "filler");
        for (int l = 0; l < 2; l++) {
            char want[16] = "-";
            if (col_repeats[h][l]) snprintf(want, sizeof want, "%.2f", (double)col_repeats_exact[h][l] / col_repeats[h][l]);
            CHECK(!strcmp(got[l], want), "%s %d: repeated row prints %s, want %s", h ? "corpus" : "filler", lengths[l], got[l], want);
        }
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < n_depths; d++) CHECK(seen[h][l][d] == 1, "cell %d/%d/%d appears %d times", h, l, d, seen[h][l][d]);
    free(text);

    /* distance view: every trial lands in one bin of its (haystack, length) */
    text = slurp(dcsv);
    int pooled[2][2] = {{0}}, bin_rows = 0;
    for (line = text ? strchr(text, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        char hay[16];
        int T, lo, hi, n;
        if (sscanf(line + 1, "%15[^,],%d,%d,%d,%d", hay, &T, &lo, &hi, &n) != 5) { CHECK(0, "bad distance row %.80s", line + 1); break; }
        int k = 0;
        while (k < 30 && 1 << k < lo) k++;
        CHECK(hi == 2 * lo && lo == 1 << k && lo < T, "bin [%d, %d) at length %d", lo, hi, T);
        CHECK(n == want_bins[!strcmp(hay, "corpus")][T == lengths[1]][k], "%s %d: bin [%d, %d) holds %d trials, want %d", hay, T, lo, hi, n,
              want_bins[!strcmp(hay, "corpus")][T == lengths[1]][k]);
        pooled[!strcmp(hay, "corpus")][T == lengths[1]] += n;
        bin_rows++;
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 2; l++) CHECK(pooled[h][l] == n_depths * trials, "distance bins of %d/%d hold %d trials", h, l, pooled[h][l]);
    CHECK(bin_rows > 4, "only %d distance bins", bin_rows);
    free(text);

    /* 3: the charts */
    char *heat = slurp(svg), *dist = slurp(dsvg);
    CHECK(heat && xml_ok(heat), "heatmap SVG is not well-formed XML");
    CHECK(dist && xml_ok(dist), "distance SVG is not well-formed XML");
    CHECK(count(heat, "<rect class=\"cell\"") == 2 * 2 * n_depths, "heatmap: %d cells", count(heat, "<rect class=\"cell\""));
    CHECK(count(heat, "<title>") == 2 * 2 * n_depths + 1, "heatmap: a title per cell and the document's");
    CHECK(count(heat, "#F0496E") && count(heat, "#0CD79F") && count(heat, "Depth %") && count(heat, "Context length"), "heatmap colour scale and axes");
    CHECK(count(dist, "<g class=\"curve\"") == 4, "distance chart: one curve per haystack and length");
    CHECK(count(heat, "rope &amp;&lt;&quot;x&quot;&gt;'.gguf") == 1 && count(dist, "rope &amp;&lt;&quot;x&quot;&gt;'.gguf") == 1,
          "the model's path, escaped, in both charts");
    free(heat);
    free(dist);
    free(logits);
    passkey_free(&pk);
    tokens_free(&t);
    corpus_free(&c);
    model_close(&m);
out:
    run_free(&r);
    unlink(csv); unlink(svg); unlink(dsvg); unlink(dcsv);
}

/* ---- 4: clean errors ---- */

/* ./study on a two-model zoo of random-weight models (L = 128): the report and CSVs come out, the
   perplexity it reports equals eval_ppl's on the same tokens, the learned model is refused past L
   (prediction 1 reads "reproduced"), predictions without their variants say "not run", and every SVG
   is well-formed. */
static void test_eval_study(void) {
    setup();
    char zoo[700], out[800], rope_path[800], learned[800], path[900];
    tmp_path(zoo, sizeof zoo, "zoo");
    snprintf(out, sizeof out, "%s/results", zoo);
    snprintf(rope_path, sizeof rope_path, "%s/rope.gguf", zoo);
    snprintf(learned, sizeof learned, "%s/learned.gguf", zoo);
    CHECK(mkdir(zoo, 0777) == 0, "cannot create %s", zoo);
    TestModelSpec rope = test_model_spec("rope"), abs = test_model_spec("learned");
    rope.ctx = abs.ctx = 128;
    CHECK(test_model_write(rope_path, &rope) == 0 && test_model_write(learned, &abs) == 0, "cannot write the zoo");
    const char *args[] = {"-zoo", zoo, "-f", text_path, "-o", out, "-only", "rope,rope-sinks,learned", "-max-mult", "2", "-ppl-tokens", "300",
                          "-depths", "2", "-trials", "1", NULL};
    Run r = run_binary(test_study_binary, args);
    CHECK(r.status == 0 && strstr(r.out, "wrote"), "study: exit %d, stdout %s, stderr %s", r.status, r.out, r.err);
    snprintf(path, sizeof path, "%s/README.md", out);
    char *report = slurp(path);
    CHECK(report && strstr(report, "| RoPE |") && strstr(report, "| RoPE, 4 sinks + shifting cache of L |") && strstr(report, "| learned |"),
          "report rows: %s", report ? report : "(none)");
    CHECK(report && strstr(report, "| 1 | learned APE cannot run past L; the runtime refuses | **reproduced**"), "prediction 1: %s",
          report ? report : "(none)");
    /* each verdict links the figures that show it, those that were written */
    CHECK(report && strstr(report, "(0..127) | [learned-needle.svg](learned-needle.svg) |\n"), "prediction 1's figure: %s", report ? report : "(none)");
    CHECK(report && strstr(report, "[ppl-last-bucket.svg](ppl-last-bucket.svg), [rope-needle.svg](rope-needle.svg), [rope-distance.svg](rope-distance.svg) |\n"),
          "prediction 3's figures: %s", report ? report : "(none)");
    /* a prediction whose variants were left out keeps its row, saying so */
    CHECK(report && strstr(report, "| 8 | NTK-aware") && strstr(report, "**not tested** | not run: needs the variants rope-ntk, rope-pi and rope-dynamic (see -only) | – |\n"),
          "prediction 8: %s", report ? report : "(none)");
    CHECK(report && strstr(report, "| 13 | ALiBi + PI") && strstr(report, "**not tested** | not run: needs the variants alibi and alibi-pi"),
          "prediction 13: %s", report ? report : "(none)");
    /* G1 names each model's exact match at L and over its keys that repeat a digit, from its needle CSV */
    snprintf(path, sizeof path, "%s/rope-needle.csv", out);
    char *needle = slurp(path), g1_want[64] = "";
    int at_l[4] = {0};   /* trials, exact, repeat_trials, repeat_exact */
    for (char *row = needle ? strchr(needle, '\n') : NULL; row && row[1]; row = strchr(row + 1, '\n')) {
        int T, n, e, rn, re;
        if (sscanf(row + 1, "%*[^,],%d,%*f,%d,%d,%*f,%*f,%*f,%d,%d", &T, &n, &e, &rn, &re) != 5) { CHECK(0, "rope-needle.csv row %.80s", row + 1); break; }
        if (T != 128) continue;
        at_l[0] += n, at_l[1] += e, at_l[2] += rn, at_l[3] += re;
    }
    char repeat_pct[16] = "n/a";
    if (at_l[2]) snprintf(repeat_pct, sizeof repeat_pct, "%.0f%%", 100.0 * at_l[3] / at_l[2]);
    snprintf(g1_want, sizeof g1_want, " RoPE %.0f%% (%s),", at_l[0] ? 100.0 * at_l[1] / at_l[0] : NAN, repeat_pct);
    CHECK(at_l[0] == 4 && report && strstr(report, "over the keys that repeat a digit:") && strstr(report, g1_want),
          "G1 at L: want \"%s\" from %d trials in %s", g1_want, at_l[0], report ? report : "(none)");
    free(needle);
    /* the window-128 total row of rope in ppl.csv, against eval_ppl on the first 301 tokens */
    snprintf(path, sizeof path, "%s/ppl.csv", out);
    char *csv = slurp(path), *line = csv ? strstr(csv, "\nrope,128,0,128,") : NULL;
    double got = NAN;
    CHECK(line && sscanf(line + 1, "rope,128,0,128,%*d,%*d,%lf", &got) == 1, "ppl.csv: %s", csv ? csv : "(none)");
    Model m;
    Corpus c;
    Tokens t;
    if (open_model(&m, rope_path, 128, 512) && load_tokens(&m, text_path, &c, &t)) {
        Ppl p = {.window = 128, .stride = 128, .bucket = 128, .chunk = 512};
        char err[GGUF_ERR] = "";
        CHECK(eval_ppl(&m, t.ids, 301, &p, err) == 0, "eval_ppl: %s", err);
        CHECK_NEAR(got, p.nll / log(2) / p.bytes, 1e-5, "study's bits/byte at 128 = eval_ppl's");
        tokens_free(&t);
        corpus_free(&c);
        model_close(&m);
    }
    const char *svgs[] = {"ppl-by-length.svg", "ppl-last-bucket.svg", "rope-needle.svg", "rope-distance.svg", "learned-needle.svg",
                          "rope-sinks-needle.svg"};
    for (size_t i = 0; i < sizeof svgs / sizeof *svgs; i++) {
        snprintf(path, sizeof path, "%s/%s", out, svgs[i]);
        char *svg = slurp(path);
        CHECK(svg && xml_ok(svg), "%s is not well-formed", svgs[i]);
        free(svg);
    }
    snprintf(path, sizeof path, "%s/learned-needle.svg", out);
    char *heat = slurp(path);
    CHECK(heat && strstr(heat, "length 256, depth 0%: not run"), "the learned heatmap marks 2L as not run");
    free(heat);
    /* -jobs 2 (variants side by side, one thread each) writes the same numbers */
    char out2[900];
    snprintf(out2, sizeof out2, "%s/results-jobs2", zoo);
    const char *args2[] = {"-zoo", zoo, "-f", text_path, "-o", out2, "-only", "rope,rope-sinks,learned", "-max-mult", "2", "-ppl-tokens", "300",
                           "-depths", "2", "-trials", "1", "-jobs", "2", NULL};
    Run r2 = run_binary(test_study_binary, args2);
    CHECK(r2.status == 0 && strstr(r2.out, "wrote"), "study -jobs 2: exit %d, stderr %s", r2.status, r2.err);
    const char *csvs[] = {"ppl.csv", "rope-needle.csv", "rope-sinks-needle.csv", "learned-needle.csv", "rope-distance.csv"};
    for (size_t i = 0; i < sizeof csvs / sizeof *csvs; i++) {
        char p1[1000], p2[1000];
        snprintf(p1, sizeof p1, "%s/%s", out, csvs[i]);
        snprintf(p2, sizeof p2, "%s/%s", out2, csvs[i]);
        char *a = slurp(p1), *b = slurp(p2);
        CHECK(a && b && !strcmp(a, b), "%s differs between -jobs 1 and -jobs 2", csvs[i]);
        free(a);
        free(b);
    }
    run_free(&r2);
    free(report);
    free(csv);
    run_free(&r);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", zoo);
    CHECK(system(cmd) == 0, "cannot remove %s", zoo);
}

static void test_eval_cli_errors(void) {
    setup();
    char missing_dir[700];
    snprintf(missing_dir, sizeof missing_dir, "%s/no-such-dir/x.csv", test_tmp_dir);
    const char *M = model_path, *T = text_path;
    static struct { const char *word; const char *args[16]; } cases[] = {
        {"-m ppl needs -f", {"@M", "-m", "ppl", NULL}},
        {"cannot open", {"@M", "-m", "ppl", "-f", "/nonexistent/text.txt", NULL}},
        {"fewer than one window", {"@M", "-m", "ppl", "-f", "@S", "-ctx", "64", NULL}},
        {"-stride expects", {"@M", "-m", "ppl", "-f", "@T", "-stride", "0", NULL}},
        {"-stride 65 must lie in [1, 64]", {"@M", "-m", "ppl", "-f", "@T", "-ctx", "64", "-stride", "65", NULL}},
        {"-max-tokens expects", {"@M", "-m", "ppl", "-f", "@T", "-max-tokens", "x", NULL}},
        {"-stride belongs to -m ppl", {"@M", "-stride", "4", NULL}},
        {"-bucket belongs to -m ppl", {"@M", "-m", "needle", "-bucket", "4", NULL}},
        {"-lengths belongs to -m needle", {"@M", "-m", "ppl", "-f", "@T", "-lengths", "80", NULL}},
        {"-f belongs to -m ppl and -m needle", {"@M", "-f", "@T", NULL}},
        {"-csv belongs", {"@M", "-m", "logits", "-tokens", "1", "-dump", "@X", "-csv", "@X", NULL}},
        {"-t belongs to -m generate", {"@M", "-m", "needle", "-t", "0", NULL}},
        {"-i belongs to -m generate", {"@M", "-m", "logits", "-tokens", "1", "-dump", "@X", "-i", "hi", NULL}},
        {"-pos0 belongs to -m generate and -m logits", {"@M", "-m", "ppl", "-f", "@T", "-pos0", "3", NULL}},
        {"learned can represent (0..31)", {"@L", "-m", "ppl", "-f", "@T", "-ctx", "64", NULL}},
        {"-haystack expects", {"@M", "-m", "needle", "-haystack", "hay", NULL}},
        {"-haystack both needs -f", {"@M", "-m", "needle", NULL}},
        {"-lengths expects", {"@M", "-m", "needle", "-haystack", "filler", "-lengths", "80,x", NULL}},
        {"-lengths expects positive", {"@M", "-m", "needle", "-haystack", "filler", "-lengths", "0,80", NULL}},
        {"does not fit in the context of 100", {"@M", "-m", "needle", "-haystack", "filler", "-lengths", "80,120", "-ctx", "100", NULL}},
        {"shorter than the needle", {"@M", "-m", "needle", "-haystack", "filler", "-lengths", "40", NULL}},
        {"learned can represent", {"@L", "-m", "needle", "-haystack", "filler", "-lengths", "80", NULL}},
        {"needs 131 tokens of text", {"@M", "-m", "needle", "-f", "@S", "-haystack", "corpus", "-lengths", "200", NULL}},
        {"-depths expects", {"@M", "-m", "needle", "-haystack", "filler", "-depths", "0", NULL}},
        {"-trials expects", {"@M", "-m", "needle", "-haystack", "filler", "-trials", "0", NULL}},
        {"-marker expects", {"@M", "-m", "needle", "-haystack", "filler", "-marker", "2", NULL}},
        {"cannot write", {"@M", "-m", "ppl", "-f", "@T", "-csv", "@D", NULL}},
        {"cannot write", {"@M", "-m", "needle", "-haystack", "filler", "-lengths", "80", "-svg", "@D", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[16];
        char line[300] = "";
        int k = 0;
        for (; cases[i].args[k]; k++) {
            const char *a = cases[i].args[k];
            argv[k] = !strcmp(a, "@M") ? M : !strcmp(a, "@L") ? learned_path : !strcmp(a, "@T") ? T : !strcmp(a, "@S") ? short_path
                    : !strcmp(a, "@D") ? missing_dir : !strcmp(a, "@X") ? "/dev/null" : a;
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s", a);
        }
        argv[k] = NULL;
        Run r = run(argv);
        const char *nl = strchr(r.err, '\n');
        int one_line = !strncmp(r.err, "error: ", 7) && nl && !nl[1];
        /* the words of the expected message, in order (the case text is a shorthand for it) */
        const char *at = r.err;
        char words[120];
        snprintf(words, sizeof words, "%s", cases[i].word);
        for (char *w = strtok(words, " "); w && at; w = strtok(NULL, " ")) at = (at = strstr(at, w)) ? at + strlen(w) : NULL;
        CHECK(r.status == 1 && one_line && at && !*r.out, "[%s] want one line 'error: ...%s...', exit 1, no stdout; got exit %d, stderr: %s",
              line, cases[i].word, r.status, r.err);
        run_free(&r);
    }
}

void suite_eval(void) {
    RUN(test_eval_ppl_matches_logits);
    RUN(test_eval_ppl_streaming);
    RUN(test_eval_xml_checker);
    RUN(test_eval_needle_grid);
    RUN(test_eval_cli_errors);
    RUN(test_eval_study);
    unlink(model_path);
    unlink(learned_path);
    unlink(text_path);
    unlink(short_path);
}
