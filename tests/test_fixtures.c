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

/* Runs a case with the encoding named `pe` ("model-default" = the file's); returns max |diff|, or -1. */
static double run_case(const Case *c, const char *pe, char *err) {
    Model m;
    char path[600];
    snprintf(path, sizeof path, "%s/model.gguf", c->dir);
    if (model_open(&m, path, err)) return -1;
    PeSettings s = m.c.pe;
    if (strcmp(pe, "model-default")) {
        snprintf(s.method, sizeof s.method, "%s", pe);
        if (c->scale > 0) s.scale = c->scale;
        if (c->orig_ctx > 0) s.orig_ctx = c->orig_ctx;
    }
    double worst = -1;
    size_t V = (size_t)c->n_vocab;
    float *got = malloc((size_t)c->n_tokens * V * sizeof *got), *want = NULL;
    snprintf(path, sizeof path, "%s/logits.f32", c->dir);
    if (m.c.vocab_size != c->n_vocab) snprintf(err, 256, "vocab %d, case says %d", m.c.vocab_size, c->n_vocab);
    else if (!(want = read_floats(path, (size_t)c->n_tokens * V))) snprintf(err, 256, "cannot read %.200s with the expected size", path);
    else if (!model_prepare(&m, &s, c->n_tokens, 512, err) && !model_forward(&m, c->tokens, c->n_tokens, c->pos0, got, 1, err)) {
        worst = 0;
        for (size_t i = 0; i < (size_t)c->n_tokens * V; i++) {
            double d = fabs((double)got[i] - want[i]);
            if (!(d <= worst)) worst = d;   /* NaN propagates as a failure */
        }
    }
    free(got);
    free(want);
    model_close(&m);
    return worst;
}

static int n_cases;

static void test_every_fixture_case(void) {
    DIR *d = opendir(test_fixtures_dir);
    CHECK(d != NULL, "fixtures folder %s is missing", test_fixtures_dir);
    if (!d) return;
    struct dirent *ent;
    n_cases = 0;
    while ((ent = readdir(d))) {
        char dir[512], err[256] = "";
        struct stat st;
        Case c;
        snprintf(dir, sizeof dir, "%s/%s", test_fixtures_dir, ent->d_name);
        if (ent->d_name[0] == '.' || stat(dir, &st) || !S_ISDIR(st.st_mode)) continue;   /* the folder's README */
        if (read_case(dir, &c)) { CHECK(0, "%s: unreadable case.txt", ent->d_name); continue; }
        double worst = run_case(&c, c.pe, err);
        CHECK(worst >= 0 && worst <= c.tolerance, "%s (pe %s): max |diff| %.3g, tolerance %g %s", ent->d_name, c.pe, worst, c.tolerance, err);
        printf("     %-24s pe %-14s max |diff| %.2e (tolerance %g)\n", ent->d_name, c.pe, worst, c.tolerance);
        n_cases++;
        free(c.tokens);
    }
    closedir(d);
    CHECK(n_cases >= 13, "expected the 13 fixture cases, found %d", n_cases);
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
}
