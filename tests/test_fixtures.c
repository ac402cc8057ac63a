/* Every llama.cpp oracle case in the fixtures folder: every row of logits within the case's
   tolerance. The folder must exist and hold the cases: a missing fixture fails, never skips. */
#include <dirent.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "tests/test.h"

typedef struct {
    char dir[512], pe[32];
    int n_tokens, pos0, *tokens;
    double scale, tolerance;
    int orig_ctx, n_vocab;
} Case;

static int read_case(const char *dir, Case *c) {
    char path[600], key[64];
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fscanf(f, "%63s", key) == 1) {
        if (key[0] == '#') { int ch; while ((ch = fgetc(f)) != '\n' && ch != EOF) {} continue; }
        if (!strcmp(key, "n_tokens")) { if (fscanf(f, "%d", &c->n_tokens) != 1) break; }
        else if (!strcmp(key, "n_vocab")) { if (fscanf(f, "%d", &c->n_vocab) != 1) break; }
        else if (!strcmp(key, "pos0")) { if (fscanf(f, "%d", &c->pos0) != 1) break; }
        else if (!strcmp(key, "pe")) { if (fscanf(f, "%31s", c->pe) != 1) break; }
        else if (!strcmp(key, "rope_scale")) { if (fscanf(f, "%lf", &c->scale) != 1) break; }
        else if (!strcmp(key, "rope_orig_ctx")) { if (fscanf(f, "%d", &c->orig_ctx) != 1) break; }
        else if (!strcmp(key, "tolerance")) { if (fscanf(f, "%lf", &c->tolerance) != 1) break; }
        else if (!strcmp(key, "tokens")) {
            if (c->n_tokens <= 0) break;   /* n_tokens precedes tokens in every case file */
            c->tokens = malloc((size_t)c->n_tokens * sizeof *c->tokens);
            for (int i = 0; i < c->n_tokens; i++) if (fscanf(f, "%d", &c->tokens[i]) != 1) { fclose(f); return -1; }
        } else { int ch; while ((ch = fgetc(f)) != '\n' && ch != EOF) {} }
    }
    fclose(f);
    return c->tokens && c->tolerance > 0 && c->n_vocab > 0 && c->pe[0] ? 0 : -1;
}

static float *read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *p = malloc(n * sizeof *p);
    size_t got = fread(p, sizeof *p, n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) { free(p); return NULL; }
    return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;   /* NaN propagates as a failure */
    }
    return worst;
}

/* The logits [n_tokens][n_vocab] of a case run with the encoding named `pe` ("model-default" = the
   file's) and the cache stored as kv; NULL with err. */
static float *case_logits(const Case *c, const char *pe, KvType kv, char *err) {
    Model m;
    char path[600];
    snprintf(path, sizeof path, "%s/model.gguf", c->dir);
    if (model_open(&m, path, err)) return NULL;
    PeSettings s = m.c.pe;
    if (strcmp(pe, "model-default")) {
        snprintf(s.method, sizeof s.method, "%s", pe);
        if (c->scale > 0) s.scale = c->scale;
        if (c->orig_ctx > 0) s.orig_ctx = c->orig_ctx;
    }
    float *got = malloc((size_t)c->n_tokens * c->n_vocab * sizeof *got);
    int ok = 0;
    if (m.c.vocab_size != c->n_vocab) snprintf(err, 256, "vocab %d, case says %d", m.c.vocab_size, c->n_vocab);
    else ok = !model_prepare(&m, &s, c->n_tokens, kv, 512, err) && !model_forward(&m, c->tokens, c->n_tokens, c->pos0, got, 1, err);
    model_close(&m);
    if (!ok) { free(got); return NULL; }
    return got;
}

/* max |diff| from llama.cpp's logits of a case run with `pe` and an f32 cache, or -1 with err */
static double run_case(const Case *c, const char *pe, char *err) {
    char path[600];
    size_t n = (size_t)c->n_tokens * c->n_vocab;
    snprintf(path, sizeof path, "%s/logits.f32", c->dir);
    float *want = read_floats(path, n), *got = want ? case_logits(c, pe, KV_F32, err) : NULL;
    if (!want) snprintf(err, 256, "cannot read %.200s with the expected size", path);
    double worst = got ? max_abs_diff(got, want, n) : -1;
    free(got);
    free(want);
    return worst;
}

/* Reads every case of the fixtures folder into cases[] (at most max); returns how many. */
static int read_cases(Case *cases, int max) {
    DIR *d = opendir(test_fixtures_dir);
    CHECK(d != NULL, "fixtures folder %s is missing", test_fixtures_dir);
    if (!d) return 0;
    struct dirent *ent;
    int n = 0;
    while ((ent = readdir(d)) && n < max) {
        char dir[512];
        struct stat st;
        snprintf(dir, sizeof dir, "%s/%s", test_fixtures_dir, ent->d_name);
        if (ent->d_name[0] == '.' || stat(dir, &st) || !S_ISDIR(st.st_mode)) continue;   /* the folder's README */
        if (read_case(dir, &cases[n])) { CHECK(0, "%s: unreadable case.txt", ent->d_name); continue; }
        n++;
    }
    closedir(d);
    CHECK(n >= 13, "expected the 13 fixture cases, found %d", n);
    return n;
}

static void free_cases(Case *cases, int n) {
    for (int i = 0; i < n; i++) free(cases[i].tokens);
}

enum { MAX_CASES = 64 };

static void test_every_fixture_case(void) {
    static Case cases[MAX_CASES];
    int n = read_cases(cases, MAX_CASES);
    for (int i = 0; i < n; i++) {
        const Case *c = &cases[i];
        char err[256] = "";
        const char *name = strrchr(c->dir, '/') + 1;
        double worst = run_case(c, c->pe, err);
        CHECK(worst >= 0 && worst <= c->tolerance, "%s (pe %s): max |diff| %.3g, tolerance %g %s", name, c->pe, worst, c->tolerance, err);
        printf("     %-24s pe %-14s max |diff| %.2e (tolerance %g)\n", name, c->pe, worst, c->tolerance);
    }
    free_cases(cases, n);
}

/* -kv f16 against -kv f32 on every case: the logits move by at most KV_F16_TOLERANCE (test.h; the
   measured worst is in the README). llama.cpp's own default cache is f16, so this is the gap users
   see between the two settings. */
static void test_f16_cache_matches_f32(void) {
    static Case cases[MAX_CASES];
    int n = read_cases(cases, MAX_CASES);
    double all = 0;
    for (int i = 0; i < n; i++) {
        const Case *c = &cases[i];
        char err[256] = "";
        const char *name = strrchr(c->dir, '/') + 1;
        float *f32 = case_logits(c, c->pe, KV_F32, err), *f16 = f32 ? case_logits(c, c->pe, KV_F16, err) : NULL;
        double worst = f16 ? max_abs_diff(f16, f32, (size_t)c->n_tokens * c->n_vocab) : -1;
        CHECK(worst >= 0 && worst <= KV_F16_TOLERANCE, "%s (pe %s): -kv f16 differs from f32 by %.3g %s", name, c->pe, worst, err);
        printf("     %-24s -kv f16 vs f32: max |diff| %.2e\n", name, worst);
        all = worst > all ? worst : all;
        free(f32);
        free(f16);
    }
    printf("     worst over the cases: %.2e (tolerance %g)\n", all, KV_F16_TOLERANCE);
    free_cases(cases, n);
}

/* gpt2-sinusoidal's position table holds Vaswani sinusoids: computing them instead of reading
   the table (-pe sinusoidal) must reproduce llama.cpp's logits too. */
static void test_sinusoidal_matches_table(void) {
    char dir[512], err[256] = "";
    Case c;
    snprintf(dir, sizeof dir, "%s/gpt2-sinusoidal", test_fixtures_dir);
    CHECK(read_case(dir, &c) == 0, "cannot read %s", dir);
    if (!c.tokens) return;
    double worst = run_case(&c, "sinusoidal", err);
    CHECK(worst >= 0 && worst <= c.tolerance, "computed sinusoids: max |diff| %.3g > %g %s", worst, c.tolerance, err);
    free(c.tokens);
}

void suite_fixtures(void) {
    RUN(test_every_fixture_case);
    RUN(test_sinusoidal_matches_table);
    RUN(test_f16_cache_matches_f32);
}
