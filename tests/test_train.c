/* The trainer: the loss falls, runs are deterministic, a checkpoint resumes exactly, and the model
   it writes gives the runtime the trainer's own logits. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "tests/test.h"
#include "trainer.h"

enum { B = 4, T = 32 };

static Config small_config(PeFamily fam) {
    Config c = {0};
    c.arch = ARCH_PELAB;
    c.dim = 32; c.hidden_dim = 64; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.head_dim = 8;
    c.vocab_size = 256; c.train_ctx = T; c.norm_eps = 1e-5f; c.norm = NORM_RMS; c.mlp = MLP_SWIGLU; c.tied_output = 1;
    c.pe_family = fam;
    return c;
}

static PeSettings settings(const char *method) {
    PeSettings pe = {0};
    snprintf(pe.method, sizeof pe.method, "%s", method);
    pe.rope_base = 10000; pe.yarn_ext = -1; pe.alibi_max_bias = 8; pe.t5_buckets = 32; pe.t5_max_distance = 128;
    return pe;
}

/* a learnable stream: text that repeats with period 7, shifted per row and step */
static void batch(int step, int *in, int *tg) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= T; t++) {
            int tok = 'a' + (t + b + step) % 7;
            if (t < T) in[b * T + t] = tok;
            if (t > 0) tg[b * T + t - 1] = tok;
        }
}

static const AdamW opt = {3e-3, 0.1, 0.9, 0.95, 1e-8, 0.1, 1.0, 5, 60};

static void train_steps(TrainModel *tm, TrainStream *st, int n_st, int from, int to, double *first, double *last) {
    int in[B * T], tg[B * T];
    for (int s = from; s < to; s++) {
        batch(s, in, tg);
        double loss = train_gradients(tm, st, n_st, in, tg, NULL, NULL, B, T);
        adamw_step(tm, &opt);
        if (first && s == from) *first = loss;
        if (last) *last = loss;
    }
}

static void test_loss_falls_every_encoding(void) {
    const struct { const char *m; PeFamily f; } encs[] = {{"none", PE_FAMILY_NONE}, {"learned", PE_FAMILY_ABSOLUTE}, {"sinusoidal", PE_FAMILY_ABSOLUTE},
                                                         {"rope", PE_FAMILY_ROPE}, {"alibi", PE_FAMILY_ALIBI}, {"t5", PE_FAMILY_T5}};
    for (int i = 0; i < 6; i++) {
        Config c = small_config(encs[i].f);
        PeSettings pe = settings(encs[i].m);
        TrainModel tm;
        TrainStream st;
        char err[256];
        if (trainmodel_init(&tm, &c, &pe, 1, 0.02, 0.02, err) || stream_init(&st, &tm, T, err)) { CHECK(0, "%s: %s", encs[i].m, err); continue; }
        double first = 0, last = 0;
        train_steps(&tm, &st, 1, 0, 60, &first, &last);
        CHECK(last < 0.5 * first, "%s: loss %.3f -> %.3f after 60 steps on a periodic text", encs[i].m, first, last);
        stream_free(&st);
        trainmodel_free(&tm);
    }
}

static void test_deterministic_for_seed_and_threads(void) {
    Config c = small_config(PE_FAMILY_ROPE);
    PeSettings pe = settings("rope");
    TrainModel a, b;
    TrainStream sa[2], sb[2];
    char err[256];
    if (trainmodel_init(&a, &c, &pe, 5, 0.02, 0.02, err) || trainmodel_init(&b, &c, &pe, 5, 0.02, 0.02, err)) { CHECK(0, "%s", err); return; }
    for (int i = 0; i < 2; i++) { stream_init(&sa[i], &a, T, err); stream_init(&sb[i], &b, T, err); }
    train_steps(&a, sa, 2, 0, 10, NULL, NULL);
    train_steps(&b, sb, 2, 0, 10, NULL, NULL);
    CHECK(!memcmp(a.params, b.params, a.n_params * sizeof(float)), "two runs with the same seed and 2 streams differ");
    TrainModel c3;
    trainmodel_init(&c3, &c, &pe, 6, 0.02, 0.02, err);
    CHECK(memcmp(a.params, c3.params, a.n_params * sizeof(float)), "a different seed gives the same initialisation");
    trainmodel_free(&c3);
    for (int i = 0; i < 2; i++) { stream_free(&sa[i]); stream_free(&sb[i]); }
    trainmodel_free(&a);
    trainmodel_free(&b);
}

static void test_checkpoint_resumes_exactly(void) {
    Config c = small_config(PE_FAMILY_ALIBI);
    PeSettings pe = settings("alibi");
    TrainModel straight, first, resumed;
    TrainStream st;
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/ckpt.gguf", test_tmp_dir);
    if (trainmodel_init(&straight, &c, &pe, 3, 0.02, 0.02, err) || trainmodel_init(&first, &c, &pe, 3, 0.02, 0.02, err)) { CHECK(0, "%s", err); return; }
    stream_init(&st, &straight, T, err);
    train_steps(&straight, &st, 1, 0, 20, NULL, NULL);
    stream_free(&st);
    stream_init(&st, &first, T, err);
    train_steps(&first, &st, 1, 0, 10, NULL, NULL);
    stream_free(&st);
    TrainFacts facts = {.tokens_seen = 10 * B * T, .wall_s = 12.5};
    CHECK(trainmodel_save(&first, path, &facts, 1, NULL, NULL, err) == 0, "save: %s", err);
    if (trainmodel_load(&resumed, path, NULL, T, err)) {
        CHECK(0, "load: %s", err);
        trainmodel_free(&straight);
        trainmodel_free(&first);
        return;
    }
    CHECK(resumed.step == 10 && resumed.wall_s == 12.5, "resumed at step %llu after %g s, expected 10 and 12.5",
          (unsigned long long)resumed.step, resumed.wall_s);
    stream_init(&st, &resumed, T, err);
    train_steps(&resumed, &st, 1, 10, 20, NULL, NULL);
    stream_free(&st);
    CHECK(resumed.n_params == straight.n_params && !memcmp(resumed.params, straight.params, straight.n_params * sizeof(float)),
          "10 + 10 steps through a checkpoint differ from 20 straight steps");
    trainmodel_free(&straight);
    trainmodel_free(&first);
    trainmodel_free(&resumed);
}

/* the saved model, run by the runtime, gives the trainer's forward logits: for every encoding */
static void test_runtime_logits_equal_trainer(void) {
    const struct { const char *m; PeFamily f; } encs[] = {{"none", PE_FAMILY_NONE}, {"learned", PE_FAMILY_ABSOLUTE}, {"sinusoidal", PE_FAMILY_ABSOLUTE},
                                                         {"rope", PE_FAMILY_ROPE}, {"yarn", PE_FAMILY_ROPE}, {"alibi", PE_FAMILY_ALIBI}, {"t5", PE_FAMILY_T5}};
    for (int i = 0; i < 7; i++) {
        Config c = small_config(encs[i].f);
        c.norm = i % 2 ? NORM_LAYER : NORM_RMS;   /* both block variants along the way */
        c.mlp = i % 2 ? MLP_GELU : MLP_SWIGLU;
        c.linear_bias = i % 2;
        c.tied_output = !(i % 2);
        PeSettings pe = settings(encs[i].m);
        if (!strcmp(encs[i].m, "yarn")) { pe.scale = 4; pe.orig_ctx = 8; }
        TrainModel tm;
        TrainStream st;
        Model m;
        char err[256], path[512];
        snprintf(path, sizeof path, "%s/saved-%s.gguf", test_tmp_dir, encs[i].m);
        if (trainmodel_init(&tm, &c, &pe, 9, 0.02, 0.02, err) || stream_init(&st, &tm, T, err)) { CHECK(0, "%s: %s", encs[i].m, err); continue; }
        train_steps(&tm, &st, 1, 0, 5, NULL, NULL);
        int tokens[T];
        for (int t = 0; t < T; t++) tokens[t] = (t * 31 + 7) % 256;
        st.kv.n_used = 0;
        transformer_forward(&tm.c, &tm.w, &tm.pe, &st.kv, &st.s, tokens, T, 0, st.logits, 1);
        float *rt = malloc((size_t)T * 256 * sizeof(float));
        int ok = trainmodel_save(&tm, path, NULL, 0, NULL, NULL, err) == 0 && model_open(&m, path, err) == 0;
        CHECK(ok, "%s: %s", encs[i].m, err);
        if (ok) {
            CHECK(!strcmp(m.c.pe.method, encs[i].m), "%s: the file says -pe %s", encs[i].m, m.c.pe.method);
            ok = model_prepare(&m, &m.c.pe, T, KV_F32, 512, err) == 0 && model_forward(&m, tokens, T, 0, rt, 1, err) == 0;
            CHECK(ok, "%s: runtime: %s", encs[i].m, err);
            double worst = 0;
            for (int j = 0; ok && j < T * 256; j++) worst = fmax(worst, fabs((double)rt[j] - st.logits[j]));
            CHECK(ok && worst <= 1e-5, "%s: runtime logits differ from the trainer's by %.3g", encs[i].m, worst);
            model_close(&m);
        }
        free(rt);
        stream_free(&st);
        trainmodel_free(&tm);
    }
}

/* Rows shorter than the training length at an offset (train_gradients' pos0): a relative encoding's
   gradients do not depend on it (RoPE: up to rounding); a learned table trains exactly the rows used. */
static void test_rows_at_offsets(void) {
    enum { RT = 16, OFF = 10 };
    int in[B * RT], tg[B * RT], pos0[B];
    for (int b = 0; b < B; b++) pos0[b] = OFF;
    for (int i = 0; i < B * RT; i++) { in[i] = 'a' + (i * 7) % 26; tg[i] = 'a' + (i * 7 + 7) % 26; }
    const char *methods[] = {"rope", "learned"};
    for (int k = 0; k < 2; k++) {
        Config c = small_config(k ? PE_FAMILY_ABSOLUTE : PE_FAMILY_ROPE);
        PeSettings pe = settings(methods[k]);
        TrainModel tm;
        TrainStream st;
        char err[256];
        if (trainmodel_init(&tm, &c, &pe, 5, 0.02, 0.02, err) || stream_init(&st, &tm, T, err)) { CHECK(0, "%s: %s", methods[k], err); continue; }
        train_gradients(&tm, &st, 1, in, tg, NULL, NULL, B, RT);
        float *g0 = malloc(tm.n_params * sizeof *g0);
        memcpy(g0, tm.grads, tm.n_params * sizeof *g0);
        train_gradients(&tm, &st, 1, in, tg, NULL, pos0, B, RT);
        if (k == 0) {
            double worst = 0, big = 0;
            for (size_t i = 0; i < tm.n_params; i++) { worst = fmax(worst, fabs((double)tm.grads[i] - g0[i])); big = fmax(big, fabs(g0[i])); }
            CHECK(big > 0 && worst <= 1e-4 * big, "rope: gradients at offset %d differ from offset 0 by %.3g (largest %.3g)", OFF, worst, big);
        } else {
            const float *dt = tm.g.pos_embd;
            int used_ok = 1, unused_ok = 1;
            for (int p = 0; p < T; p++) {
                double n = 0;
                for (int j = 0; j < c.dim; j++) n += fabs(dt[p * c.dim + j]);
                if (p >= OFF && p < OFF + RT) used_ok &= n > 0;
                else unused_ok &= n == 0;
            }
            CHECK(used_ok && unused_ok, "learned: the table's gradient is nonzero exactly on rows %d..%d", OFF, OFF + RT - 1);
        }
        free(g0);
        stream_free(&st);
        trainmodel_free(&tm);
    }
}

/* a fine-tune (-init) keeps the model's encoding settings unless a flag is given: a sinusoidal model with
   amplitude 0.25 stays at 0.25 (the trainer's default of 1 once silently replaced it) */
static void test_init_keeps_encoding_settings(void) {
    Config c = small_config(PE_FAMILY_ABSOLUTE);
    PeSettings pe = settings("sinusoidal"), flags = {0}, got;
    pe.sinusoid_scale = 0.25;
    flags.yarn_ext = -1;
    TrainModel tm;
    Model m;
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/init-pe.gguf", test_tmp_dir);
    if (trainmodel_init(&tm, &c, &pe, 3, 0.02, 0.02, err)) { CHECK(0, "%s", err); return; }
    CHECK(trainmodel_save(&tm, path, NULL, 0, NULL, NULL, err) == 0, "save: %s", err);
    trainmodel_free(&tm);
    if (model_open(&m, path, err)) { CHECK(0, "open: %s", err); return; }
    CHECK(train_encoding_settings(&flags, &m, &got, err) == 0 && !strcmp(got.method, "sinusoidal") && got.sinusoid_scale == 0.25,
          "no flags: %s at amplitude %g (%s)", got.method, got.sinusoid_scale, err);
    flags.sinusoid_scale = 0.5;
    CHECK(train_encoding_settings(&flags, &m, &got, err) == 0 && got.sinusoid_scale == 0.5, "-sinusoid-scale 0.5 gave %g", got.sinusoid_scale);
    snprintf(flags.method, sizeof flags.method, "rope");
    CHECK(train_encoding_settings(&flags, &m, &got, err) == -1 && strstr(err, "encoding family is absolute") && !strchr(err, '\n'),
          "-pe rope on a sinusoidal model: %s", err);
    CHECK(train_encoding_settings(&flags, NULL, &got, err) == 0 && !strcmp(got.method, "rope") && got.rope_base == 10000,
          "a new model: %s, base %g", got.method, got.rope_base);
    snprintf(flags.method, sizeof flags.method, "bogus");
    CHECK(train_encoding_settings(&flags, NULL, &got, err) == -1 && strstr(err, "unknown positional encoding 'bogus'"), "-pe bogus: %s", err);
    model_close(&m);
}

void suite_train(void) {
    RUN(test_loss_falls_every_encoding);
    RUN(test_deterministic_for_seed_and_threads);
    RUN(test_checkpoint_resumes_exactly);
    RUN(test_runtime_logits_equal_trainer);
    RUN(test_rows_at_offsets);
    RUN(test_init_keeps_encoding_settings);
}
