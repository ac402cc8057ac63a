/* The committed model zoo (models/zoo, trained by models/make-zoo.sh): for every model there, the
   runtime's logits equal the trainer's forward pass on held-out text; the RoPE model retrieves the
   passkey (>= 95% exact) on a small grid at its training length. Needs the held-out Brown text
   (`make test` fetches it with models/fetch-brown.sh). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "eval.h"
#include "tests/test.h"
#include "trainer.h"

#define ZOO "models/zoo"
#define HELDOUT "data/brown-heldout.txt"

static int load_heldout(const Model *m, Corpus *c, Tokens *t) {
    char err[256] = "";
    int ok = corpus_load(c, HELDOUT, err) == 0 && corpus_tokenize(c, &m->tok, t, err) == 0;
    CHECK(ok, "%s (sh models/fetch-brown.sh data fetches it)", err);
    return ok;
}

static void test_zoo_runtime_equals_trainer(void) {
    DIR *dir = opendir(ZOO);
    CHECK(dir != NULL, "no %s folder: the zoo is committed there", ZOO);
    if (!dir) return;
    int n_models = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        char path[600], err[GGUF_ERR] = "";
        snprintf(path, sizeof path, "%s/%s", ZOO, e->d_name);
        Model m;
        TrainModel tm;
        TrainStream st;
        Corpus c;
        Tokens t;
        if (model_open(&m, path, err)) { CHECK(0, "%s", err); continue; }
        int L = m.c.train_ctx, V = m.c.vocab_size;
        PeSettings pe = m.c.pe;
        if (!load_heldout(&m, &c, &t)) { model_close(&m); break; }
        int ok = model_prepare(&m, &pe, L, KV_F32, 512, err) == 0 && trainmodel_load(&tm, path, &pe, L, err) == 0;
        CHECK(ok, "%s: %s", e->d_name, err);
        if (ok && stream_init(&st, &tm, L, err) == 0) {
            float *rt = malloc((size_t)L * V * sizeof *rt);
            const int *ids = t.ids + 1000;   /* a held-out window, away from the start */
            CHECK(model_forward(&m, ids, L, 0, rt, 1, err) == 0, "%s: runtime: %s", e->d_name, err);
            st.kv.n_used = 0;
            transformer_forward(&tm.c, &tm.w, &tm.pe, &st.kv, &st.s, ids, L, 0, st.logits, 1);
            double worst = 0;
            for (size_t j = 0; j < (size_t)L * V; j++) worst = fmax(worst, fabs((double)rt[j] - st.logits[j]));
            CHECK(worst <= 1e-5, "%s: runtime logits differ from the trainer's by %.3g", e->d_name, worst);
            free(rt);
            stream_free(&st);
            n_models++;
        }
        if (ok) trainmodel_free(&tm);
        tokens_free(&t);
        corpus_free(&c);
        model_close(&m);
    }
    closedir(dir);
    CHECK(n_models >= 1, "no model checked in %s", ZOO);
}

static void test_zoo_rope_retrieves(void) {
    char err[GGUF_ERR] = "";
    Model m;
    Corpus c;
    Tokens t;
    Passkey pk;
    if (model_open(&m, ZOO "/rope.gguf", err)) { CHECK(0, "%s", err); return; }
    int L = m.c.train_ctx;
    if (model_prepare(&m, &m.c.pe, L, KV_F32, 512, err) || !load_heldout(&m, &c, &t)) { CHECK(0, "%s", err); model_close(&m); return; }
    CHECK(passkey_init(&pk, &m.tok, &t, 1, err) == 0, "%s", err);
    Needle g = {.model = "rope", .n_lengths = 1, .lengths = {L}, .n_depths = 11, .trials = 3, .n_hay = 2, .hay = {HAY_FILLER, HAY_CORPUS}, .seed = 7};
    if (eval_needle(&m, &pk, &g, err) == 0) {
        NeedleStat all = {0};
        for (int i = 0; i < 2 * 11; i++) needle_stat_add(&all, &g.cell[i]);
        int exact = all.exact, trials = all.trials, repeats = all.repeats, repeats_exact = all.repeats_exact;
        CHECK(trials == 66 && exact >= 0.95 * trials, "RoPE zoo model at L = %d: %d/%d exact, want >= 95%%", L, exact, trials);
        /* the split of a model that retrieves: both kinds drawn, and the exact ones counted on each side
           (test_eval checks which keys repeat, on a model that retrieves nothing) */
        CHECK(repeats > 0 && repeats < trials && repeats_exact <= repeats && exact - repeats_exact <= trials - repeats
              && repeats_exact >= 0.9 * repeats && exact - repeats_exact >= 0.9 * (trials - repeats),
              "keys that repeat a digit: %d/%d exact; the others %d/%d", repeats_exact, repeats, exact - repeats_exact, trials - repeats);
        needle_free(&g);
    } else CHECK(0, "needle grid: %s", err);
    passkey_free(&pk);
    tokens_free(&t);
    corpus_free(&c);
    model_close(&m);
}

void suite_zoo(void) {
    RUN(test_zoo_runtime_equals_trainer);
    RUN(test_zoo_rope_retrieves);
}
