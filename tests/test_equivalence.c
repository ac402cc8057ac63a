/* The KV cache and the single forward pass: chunked, odd-chunked and token-by-token runs agree for
   every encoding and scaling method past the training length; dynamic NTK is exact; a context
   shift leaves the cache as a fresh run of the kept tokens would; positions, not slots, count; an
   f16 cache (-kv f16) takes half the memory and stays within half rounding of f32. */
#include <stdlib.h>
#include <string.h>
#include "f16.h"
#include "model.h"
#include "ops.h"
#include "tests/test.h"
#include "tests/testmodel.h"

typedef struct { const char *family, *method; double scale; int grp_n, grp_w; } Variant;   /* grp_*: self-extend's G, W */

static const Variant variants[] = {
    {"none", "none", 0, 0, 0}, {"learned", "learned", 0, 0, 0}, {"sinusoidal", "sinusoidal", 0, 0, 0}, {"rope", "rope", 0, 0, 0},
    {"rope", "linear", 4, 0, 0}, {"rope", "ntk", 4, 0, 0}, {"rope", "dynamic", 4, 0, 0}, {"rope", "yarn", 4, 0, 0}, {"rope", "llama3", 4, 0, 0},
    {"rope", "self-extend", 0, 4, 8}, {"alibi", "alibi", 0, 0, 0}, {"t5", "t5", 0, 0, 0}, {"none", "none-logn", 0, 0, 0},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

static int open_variant(Model *m, const TestModelSpec *spec, const Variant *v, int n_slots, int max_chunk, double rope_base, KvType kv) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/equiv-%s-%d-%d-%d.gguf", test_tmp_dir, spec->pe, spec->n_layers, spec->layernorm, spec->ctx);
    if (test_model_write(path, spec) || model_open(m, path, err)) { CHECK(0, "cannot build model %s", path); return -1; }
    PeSettings s = m->c.pe;
    snprintf(s.method, sizeof s.method, "%s", v->method);
    s.scale = v->scale;
    s.group_n = v->grp_n;
    s.group_w = v->grp_w;
    if (rope_base > 0) s.rope_base = rope_base;
    if (model_prepare(m, &s, n_slots, kv, max_chunk, err)) { CHECK(0, "%s: %s", v->method, err); model_close(m); return -1; }
    return 0;
}

static int forward_rows(Model *m, const int *tokens, int T, int pos0, float *logits, int one_by_one) {
    char err[256];
    size_t V = (size_t)m->c.vocab_size;
    for (int i = 0; i < T; i += one_by_one ? 1 : T) {
        if (model_forward(m, tokens + i, one_by_one ? 1 : T, pos0 + i, logits + i * V, 1, err)) {
            CHECK(0, "forward failed: %s", err);
            return -1;
        }
    }
    return 0;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static void make_tokens(int *t, int n, unsigned seed) {
    for (int i = 0; i < n; i++) t[i] = (int)((seed * 2654435761u + (unsigned)i * 40503u) >> 8) % 256;
}

/* one pass vs chunks of 7 vs one token at a time, for two model flavours and both cache types (a
   chunk's own keys are read back from the cache, so an f16 cache rounds them as decoding does) */
static void test_chunked_equals_token_by_token(void) {
    enum { T = 100, POS0 = 20, SLOTS = 128 };
    int tokens[T];
    make_tokens(tokens, T, 3);
    for (int run = 0; run < 4; run++) {
        int flavour = run % 2;
        KvType kv = run < 2 ? KV_F32 : KV_F16;
        for (int vi = 0; vi < N_VARIANTS; vi++) {
            const Variant *v = &variants[vi];
            if (kv == KV_F16 && !strcmp(v->method, "dynamic")) continue;   /* refused: test_f16_cache_refuses_dynamic_ntk */
            TestModelSpec spec = test_model_spec(v->family);
            spec.layernorm = spec.gelu = spec.bias = flavour;
            spec.tied = !flavour;
            int learned = !strcmp(v->method, "learned");
            int n = learned ? spec.ctx : T, pos0 = learned ? 0 : POS0;   /* a learned table ends at its training length */
            size_t V = (size_t)spec.vocab, rows = (size_t)n * V;
            float *ref = malloc(rows * sizeof(float)), *got = malloc(rows * sizeof(float));
            Model m;
            const char *kvn = kv_type_names[kv];
            /* single rows and chunks take different float paths to k and v (dot products, blocked
               products); a value that lands by a half's rounding boundary may round either way */
            double tol = kv == KV_F16 ? 2e-4 : 1e-5;
            if (!open_variant(&m, &spec, v, SLOTS, 512, 0, kv)) {
                forward_rows(&m, tokens, n, pos0, ref, 0);
                model_reset(&m);
                forward_rows(&m, tokens, n, pos0, got, 1);
                double d1 = max_diff(ref, got, rows);
                model_close(&m);
                CHECK(d1 <= tol, "%s flavour %d -kv %s: token-by-token differs from one pass by %.3g", v->method, flavour, kvn, d1);
            }
            if (!open_variant(&m, &spec, v, SLOTS, 7, 0, kv)) {
                forward_rows(&m, tokens, n, pos0, got, 0);
                double d2 = max_diff(ref, got, rows);
                model_close(&m);
                CHECK(d2 <= tol, "%s flavour %d -kv %s: chunks of 7 differ from one pass by %.3g", v->method, flavour, kvn, d2);
            }
            free(ref);
            free(got);
        }
    }
}

/* Dynamic NTK, exact mode: the row for the token at position p equals plain RoPE run with the base
   B'(p+1) for the whole prefix: every cached key agrees with the current base. */
static void test_dynamic_ntk_is_exact(void) {
    enum { T = 60 };
    int tokens[T];
    make_tokens(tokens, T, 5);
    TestModelSpec spec = test_model_spec("rope");
    spec.ctx = 16;
    size_t V = (size_t)spec.vocab;
    float *dyn = malloc(T * V * sizeof(float)), *plain = malloc(T * V * sizeof(float));
    Variant dynamic = {"rope", "dynamic", 4, 0, 0}, rope = {"rope", "rope", 0, 0, 0};
    Model m;
    if (open_variant(&m, &spec, &dynamic, T, 512, 0, KV_F32)) return;
    forward_rows(&m, tokens, T, 0, dyn, 0);
    int n_rot = m.c.head_dim;
    model_close(&m);
    int rows[] = {5, 15, 16, 17, 30, T - 1};
    for (int r = 0; r < 6; r++) {
        int p = rows[r], n = p + 1;
        double base = pe_dynamic_base(10000, 4, n, spec.ctx, n_rot);
        if (open_variant(&m, &spec, &rope, T, 512, base, KV_F32)) return;
        forward_rows(&m, tokens, n, 0, plain, 0);
        model_close(&m);
        double d = max_diff(dyn + (size_t)p * V, plain + (size_t)p * V, V);
        CHECK(d <= 1e-4, "dynamic row %d (base %.1f) differs from plain RoPE at that base by %.3g", p, base, d);
    }
    free(dyn);
    free(plain);
}

/* Dynamic NTK, stale mode (-dyn-kv stale, HF): a call's tokens all take the base of its last position,
   so one call of T tokens is plain RoPE at B'(T) on every row; run token by token, each cached key
   keeps the base it was written with, B'(max(p + 1, L)) (one layer: the keys of layer 0 depend on
   their own token only, so a plain-RoPE run at that base must have written the same key); the base
   only grows, and returns to B once the sequence is back within L (HF's reset rule). */
static void test_dynamic_ntk_stale(void) {
    enum { T = 40 };
    int tokens[T];
    make_tokens(tokens, T, 7);
    TestModelSpec spec = test_model_spec("rope");
    spec.ctx = 16;
    spec.n_layers = 1;
    size_t V = (size_t)spec.vocab;
    float *stale = malloc(T * V * sizeof(float)), *plain = malloc(T * V * sizeof(float));
    Variant dynamic = {"rope", "dynamic", 4, 0, 0}, rope = {"rope", "rope", 0, 0, 0};
    Model m, ref;
    if (open_variant(&m, &spec, &dynamic, T, 512, 0, KV_F32)) goto done;
    m.pe.set.dyn_stale = 1;
    forward_rows(&m, tokens, T, 0, stale, 0);
    int n_rot = m.c.head_dim, kv_dim = m.kv.kv_dim;
    double base_T = pe_dynamic_base(10000, 4, T, spec.ctx, n_rot);
    if (open_variant(&ref, &spec, &rope, T, 512, base_T, KV_F32)) { model_close(&m); goto done; }
    forward_rows(&ref, tokens, T, 0, plain, 0);
    model_close(&ref);
    double d = max_diff(stale, plain, T * V);
    CHECK(d <= 1e-4, "stale, one call of %d: differs from plain RoPE at B'(%d) = %.1f by %.3g", T, T, base_T, d);

    model_reset(&m);
    forward_rows(&m, tokens, T, 0, stale, 1);
    int ps[] = {3, 15, 16, 25, T - 1};
    for (int i = 0; i < 5; i++) {
        int p = ps[i];
        double base = pe_dynamic_base(10000, 4, p + 1, spec.ctx, n_rot);
        if (open_variant(&ref, &spec, &rope, T, 512, base, KV_F32)) break;
        forward_rows(&ref, tokens, p + 1, 0, plain, 0);
        d = max_diff(kv_row(&m.kv, m.kv.k, 0, p), kv_row(&ref.kv, ref.kv.k, 0, p), kv_dim);
        CHECK(d <= 1e-5, "stale, token by token: the key at %d differs from one rotated with B'(%d) = %.1f by %.3g", p, p + 1, base, d);
        model_close(&ref);
    }
    double grown = m.pe.base_eff;
    char err[256];
    CHECK(model_shift(&m, 0, err) == T / 2 && m.pe.base_eff == grown,
          "stale: after a shift to %d tokens (> L) the base should stay %.1f, is %.1f", m.kv.n_used, grown, m.pe.base_eff);
    CHECK(model_shift(&m, 0, err) == T / 4 && m.pe.base_eff == 10000,
          "stale: back within L (%d tokens) the base should reset to 10000, is %.1f", m.kv.n_used, m.pe.base_eff);
    model_close(&m);
done:
    free(stale);
    free(plain);
}

/* pe-spec §14.1: n_ctx 16, keep 4, full -> 6 dropped, positions 0..3,4..9, n_past 10. With one layer,
   the cached keys and the next logits must equal a fresh run of the kept tokens at their new
   positions; shifting twice checks that position deltas accumulate. */
static void test_context_shift_matches_fresh_run(void) {
    const char *methods[][2] = {{"rope", "rope"}, {"rope", "linear"}, {"rope", "yarn"}, {"rope", "dynamic"}, {"rope", "llama3"},
                                {"rope", "self-extend"}, {"alibi", "alibi"}, {"t5", "t5"}, {"none", "none"},
                                {"none", "none-logn"}};
    enum { SLOTS = 16, KEEP = 4 };
    int text[64];
    make_tokens(text, 64, 9);
    for (int mi = 0; mi < (int)(sizeof methods / sizeof methods[0]); mi++) {
        int se = !strcmp(methods[mi][1], "self-extend");   /* G 2, W 4: most kept keys are in the far view */
        Variant v = {methods[mi][0], methods[mi][1], !strcmp(methods[mi][0], "rope") && strcmp(methods[mi][1], "rope") && !se ? 2 : 0,
                     se ? 2 : 0, se ? 4 : 0};
        TestModelSpec spec = test_model_spec(v.family);
        spec.n_layers = 1;
        spec.ctx = 6;   /* positions pass the training length, so dynamic NTK is really dynamic */
        size_t V = (size_t)spec.vocab;
        float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
        Model m, fresh;
        char err[256];
        if (open_variant(&m, &spec, &v, SLOTS, 512, 0, KV_F32)) continue;
        if (open_variant(&fresh, &spec, &v, SLOTS, 512, 0, KV_F32)) { model_close(&m); continue; }
        int kept[SLOTS], n_kept = 0, next = 0, ok = 1;   /* kept: the text indices the cache should hold */
        for (int round = 0; round < 2 && ok; round++) {
            while (m.kv.n_used < SLOTS) {   /* fill the cache */
                ok &= model_forward(&m, &text[next], 1, model_next_pos(&m), a, 0, err) == 0;
                kept[n_kept++] = next++;
            }
            int dropped = model_shift(&m, KEEP, err);
            CHECK(dropped == 6, "%s round %d: dropped %d, expected (16-4)/2 = 6 (%s)", v.method, round, dropped, err);
            if (dropped != 6) { ok = 0; break; }
            memmove(kept + KEEP, kept + KEEP + dropped, (size_t)(n_kept - KEEP - dropped) * sizeof *kept);
            n_kept -= dropped;
            for (int i = 0; i < m.kv.n_used; i++) CHECK(m.kv.pos[i] == i, "%s: slot %d holds position %d", v.method, i, m.kv.pos[i]);
            CHECK(model_next_pos(&m) == 10, "%s: n_past %d after the shift, expected 10", v.method, model_next_pos(&m));
            /* the fresh run: the kept tokens at positions 0..9, then the next token at 10 */
            model_reset(&fresh);
            int ids[SLOTS];
            for (int i = 0; i < n_kept; i++) ids[i] = text[kept[i]];
            ok &= model_forward(&fresh, ids, n_kept, 0, NULL, 0, err) == 0;
            double kd = max_diff(m.kv.k, fresh.kv.k, (size_t)n_kept * m.kv.kv_dim);
            CHECK(kd <= 1e-5, "%s round %d: cached keys after the shift differ from a fresh run by %.3g", v.method, round, kd);
            CHECK(!m.kv.k_far == !se, "%s: far-view keys %s", v.method, m.kv.k_far ? "cached" : "missing");
            if (m.kv.k_far) {   /* the far view follows the new positions too: ⌊p/G⌋ of the shifted p */
                kd = max_diff(m.kv.k_far, fresh.kv.k_far, (size_t)n_kept * m.kv.kv_dim);
                CHECK(kd <= 1e-5, "%s round %d: far-view keys after the shift differ from a fresh run by %.3g", v.method, round, kd);
            }
            ok &= model_forward(&m, &text[next], 1, 10, a, 0, err) == 0;
            ok &= model_forward(&fresh, &text[next], 1, 10, b, 0, err) == 0;
            kept[n_kept++] = next++;
            double d = max_diff(a, b, V);
            CHECK(ok && d <= 1e-4, "%s round %d: logits after the shift differ from a fresh run by %.3g (%s)", v.method, round, d, ok ? "" : err);
        }
        model_close(&m);
        model_close(&fresh);
        free(a);
        free(b);
    }
}

/* pe-spec §14.2, StreamingLLM: 4 sinks + recent 8 after 20 tokens: text positions 0..3,12..19 sit at
   cache positions 0..11, the recent keys rotated by -8, and the next query goes to 12. */
static void test_streaming_llm_eviction(void) {
    Variant v = {"rope", "yarn", 2, 0, 0};
    TestModelSpec spec = test_model_spec("rope");
    spec.n_layers = 1;
    int text[21], kept[12];
    make_tokens(text, 21, 17);
    for (int i = 0; i < 12; i++) kept[i] = text[i < 4 ? i : i + 8];
    Model m, fresh;
    char err[256] = "";
    if (open_variant(&m, &spec, &v, 20, 512, 0, KV_F32)) return;
    if (open_variant(&fresh, &spec, &v, 20, 512, 0, KV_F32)) { model_close(&m); return; }
    size_t V = (size_t)spec.vocab;
    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
    CHECK(model_forward(&m, text, 20, 0, NULL, 0, err) == 0, "fill: %s", err);
    CHECK(kv_shift(&m.kv, &m.pe, 4, 8, err) == 0, "evict: %s", err);
    for (int i = 0; i < 12; i++) CHECK(m.kv.pos[i] == i, "slot %d holds position %d, expected %d", i, m.kv.pos[i], i);
    CHECK(model_next_pos(&m) == 12, "next query position %d, expected 12", model_next_pos(&m));
    CHECK(model_forward(&fresh, kept, 12, 0, NULL, 0, err) == 0, "fresh: %s", err);
    double kd = max_diff(m.kv.k, fresh.kv.k, (size_t)12 * m.kv.kv_dim);
    CHECK(kd <= 1e-5, "cached keys after eviction differ from a fresh run by %.3g", kd);
    CHECK(model_forward(&m, &text[20], 1, 12, a, 0, err) == 0 && model_forward(&fresh, &text[20], 1, 12, b, 0, err) == 0, "next: %s", err);
    CHECK(max_diff(a, b, V) <= 1e-4, "logits after eviction differ from a fresh run by %.3g", max_diff(a, b, V));
    model_close(&m);
    model_close(&fresh);
    free(a);
    free(b);
}

/* A context shift with an f16 cache (each half key rotated in float and rounded back once) gives the
   logits of the same shifts with an f32 cache, within the half rounding: three shifts in a row, so
   the kept keys are re-rounded three times. */
#define SHIFT_F16_TOLERANCE 5e-4
static void test_context_shift_f16_matches_f32(void) {
    const Variant vs[] = {{"rope", "rope", 0, 0, 0}, {"rope", "yarn", 2, 0, 0}, {"rope", "llama3", 2, 0, 0}, {"alibi", "alibi", 0, 0, 0}, {"t5", "t5", 0, 0, 0}};
    enum { SLOTS = 48, KEEP = 4, N_VS = sizeof vs / sizeof vs[0] };
    int text[200];
    make_tokens(text, 200, 21);
    for (int vi = 0; vi < N_VS; vi++) {
        TestModelSpec spec = test_model_spec(vs[vi].family);
        spec.ctx = 16;
        size_t V = (size_t)spec.vocab;
        float *logits[2] = {malloc(V * sizeof(float)), malloc(V * sizeof(float))};
        Model m[2];
        char err[256] = "";
        if (open_variant(&m[0], &spec, &vs[vi], SLOTS, 512, 0, KV_F32)) continue;
        if (open_variant(&m[1], &spec, &vs[vi], SLOTS, 512, 0, KV_F16)) { model_close(&m[0]); continue; }
        double worst = 0, worst_key = 0;
        int next = 0, ok = 1;
        for (int round = 0; round < 3 && ok; round++) {
            int fill = SLOTS - m[0].kv.n_used;
            for (int c = 0; c < 2; c++) {
                ok &= model_forward(&m[c], text + next, fill, model_next_pos(&m[c]), NULL, 0, err) == 0;
                ok &= model_shift(&m[c], KEEP, err) > 0;
                ok &= model_forward(&m[c], text + next + fill, 1, model_next_pos(&m[c]), logits[c], 0, err) == 0;
            }
            next += fill + 1;
            worst = fmax(worst, max_diff(logits[0], logits[1], V));
            double scale = 0, d = 0;   /* every layer's cached keys, relative to their scale */
            for (int l = 0; l < m[0].kv.n_layers; l++) {
                const float *k32 = kv_row(&m[0].kv, m[0].kv.k, l, 0);
                const uint16_t *k16 = kv_row(&m[1].kv, m[1].kv.k, l, 0);
                for (size_t i = 0; i < (size_t)m[0].kv.n_used * m[0].kv.kv_dim; i++) {
                    scale = fmax(scale, fabs(k32[i]));
                    d = fmax(d, fabs(k32[i] - f16_to_f32(k16[i])));
                }
            }
            worst_key = fmax(worst_key, d / scale);
        }
        CHECK(ok, "%s: %s", vs[vi].method, err);
        CHECK(worst <= SHIFT_F16_TOLERANCE, "%s: logits after shifts with -kv f16 differ from f32 by %.3g", vs[vi].method, worst);
        CHECK(worst_key <= 2e-3, "%s: cached keys after shifts with -kv f16 differ from f32 by %.3g of their scale", vs[vi].method, worst_key);
        printf("     %-8s shifts, -kv f16 vs f32: logits %.2e, keys %.2e of their scale\n", vs[vi].method, worst, worst_key);
        model_close(&m[0]);
        model_close(&m[1]);
        free(logits[0]);
        free(logits[1]);
    }
}

static void test_absolute_encodings_refuse_to_shift(void) {
    const char *pes[] = {"learned", "sinusoidal"};
    for (int i = 0; i < 2; i++) {
        Variant v = {pes[i], pes[i], 0, 0, 0};
        TestModelSpec spec = test_model_spec(pes[i]);
        Model m;
        char err[256] = "";
        int tokens[8];
        make_tokens(tokens, 8, 1);
        if (open_variant(&m, &spec, &v, 8, 512, 0, KV_F32)) continue;
        CHECK(model_forward(&m, tokens, 8, 0, NULL, 0, err) == 0, "%s forward: %s", pes[i], err);
        CHECK(model_shift(&m, 2, err) < 0 && strstr(err, "cannot shift"), "%s: a shift must be refused, got '%s'", pes[i], err);
        CHECK(m.kv.n_used == 8, "%s: a refused shift must leave the cache alone", pes[i]);
        model_close(&m);
    }
}

/* Relative encodings see only p_q - p_k: a sequence started at P from an empty cache gives the
   logits it gives at 0. Masking by stored position, not slot, is what makes this hold. */
static void test_relative_encodings_start_anywhere(void) {
    const Variant rel[] = {{"rope", "rope", 0, 0, 0}, {"alibi", "alibi", 0, 0, 0}, {"t5", "t5", 0, 0, 0}, {"none", "none", 0, 0, 0}};
    enum { T = 40 };
    int tokens[T];
    make_tokens(tokens, T, 11);
    for (int i = 0; i < 4; i++) {
        TestModelSpec spec = test_model_spec(rel[i].family);
        size_t V = (size_t)spec.vocab;
        float *at0 = malloc(T * V * sizeof(float)), *atP = malloc(T * V * sizeof(float));
        Model m;
        if (open_variant(&m, &spec, &rel[i], T, 512, 0, KV_F32)) continue;
        forward_rows(&m, tokens, T, 0, at0, 0);
        model_reset(&m);
        forward_rows(&m, tokens, T, 5000, atP, 0);
        double d = max_diff(at0, atP, T * V);
        /* RoPE angles at 5000 carry float rounding of the rotated q/k (~1e-6 relative) */
        CHECK(d <= 1e-4, "%s: logits at positions 5000.. differ from 0.. by %.3g", rel[i].method, d);
        model_close(&m);
        free(at0);
        free(atP);
    }
}

/* -ctx 131072 works with memory linear in ctx: the cache is allocated, and a chunk far out runs;
   -kv f16 stores it in half the bytes. */
static void test_context_131072(void) {
    const Variant v[] = {{"rope", "yarn", 0, 0, 0}, {"alibi", "alibi", 0, 0, 0}};
    enum { T = 300 };
    int tokens[T];
    make_tokens(tokens, T, 13);
    for (int run = 0; run < 4; run++) {
        int i = run % 2;
        KvType kv = run < 2 ? KV_F32 : KV_F16;
        TestModelSpec spec = test_model_spec(v[i].family);
        Model m;
        char err[256];
        float *logits = malloc((size_t)spec.vocab * sizeof(float));
        if (open_variant(&m, &spec, &v[i], 131072, 512, 0, kv)) continue;
        CHECK(m.kv.n_slots == 131072, "%s: cache has %d slots", v[i].method, m.kv.n_slots);
        size_t per_slot = 2 * (size_t)spec.n_layers * m.kv.kv_dim * (kv == KV_F16 ? 2 : 4);
        CHECK(kv_bytes(&m.kv) == 131072 * per_slot, "-kv %s: %zu bytes of keys and values, expected %zu", kv_type_names[kv],
              kv_bytes(&m.kv), 131072 * per_slot);
        int ok = model_forward(&m, tokens, T, 131072 - T, logits, 0, err) == 0;
        CHECK(ok, "%s: forward at positions up to 131071 failed: %s", v[i].method, err);
        int finite = 1;
        for (int j = 0; j < spec.vocab; j++) finite &= isfinite(logits[j]) != 0;
        CHECK(finite, "%s: non-finite logits at position 131071", v[i].method);
        CHECK(v[i].method[0] != 'y' || fabs(m.pe.set.scale - 131072.0 / spec.ctx) < 1e-9, "yarn without -scale: s = %g, expected ctx/L = %g",
              m.pe.set.scale, 131072.0 / spec.ctx);
        model_close(&m);
        free(logits);
    }
}

/* Dynamic NTK re-rotates every cached key at each position past the original context: with half
   keys the rounding would build up (0.34 in the logits of a llama.cpp fixture after 450 positions),
   so model_prepare refuses the pair. */
static void test_f16_cache_refuses_dynamic_ntk(void) {
    Variant v = {"rope", "dynamic", 4, 0, 0};
    TestModelSpec spec = test_model_spec("rope");
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/equiv-f16-dynamic.gguf", test_tmp_dir);
    Model m;
    if (test_model_write(path, &spec) || model_open(&m, path, err)) { CHECK(0, "cannot build model %s", path); return; }
    PeSettings s = m.c.pe;
    snprintf(s.method, sizeof s.method, "%s", v.method);
    s.scale = v.scale;
    CHECK(model_prepare(&m, &s, 64, KV_F16, 512, err) < 0 && strstr(err, "-kv f16") && strstr(err, "dynamic"),
          "-pe dynamic with -kv f16 should be refused, got '%s'", err);
    CHECK(model_prepare(&m, &s, 64, KV_F32, 512, err) == 0, "-pe dynamic with -kv f32: %s", err);
    s.dyn_stale = 1;   /* stale keys are written once: nothing builds up */
    CHECK(model_prepare(&m, &s, 64, KV_F16, 512, err) == 0, "-pe dynamic -dyn-kv stale with -kv f16: %s", err);
    model_close(&m);
}

/* kv_init: -kv f16 allocates exactly half the bytes of f32 for the same slots */
static void test_f16_cache_halves_memory(void) {
    KVCache a, b;
    char err[256] = "";
    CHECK(kv_init(&a, 4, 1000, 96, KV_F32, 0, err) == 0 && kv_init(&b, 4, 1000, 96, KV_F16, 0, err) == 0, "kv_init: %s", err);
    CHECK(kv_bytes(&a) == 2 * 4 * 1000 * 96 * sizeof(float), "f32 cache: %zu bytes", kv_bytes(&a));
    CHECK(2 * kv_bytes(&b) == kv_bytes(&a), "f16 cache: %zu bytes, f32: %zu", kv_bytes(&b), kv_bytes(&a));
    CHECK((char *)kv_row(&b, b.k, 1, 2) - (char *)b.k == (1 * 1000 + 2) * 96 * 2, "f16 rows are not 2-byte elements");
    kv_free(&a);
    kv_free(&b);
}

/* The half conversions of f16.h: round to nearest even at the edges (ties, overflow, subnormals,
   NaN); the portable versions equal the F16C ones when the build has them (every half, a sweep of
   floats); whole rows equal element by element (vector bodies and tails). */
static void test_half_conversions(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000}, {65504.0f, 0x7bff}, {65519.99f, 0x7bff},
        {65520.0f, 0x7c00}, {1e9f, 0x7c00}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {1.0f + 0x1p-11f, 0x3c00},          /* a tie: to the even 1.0 */
        {1.0f + 3 * 0x1p-11f, 0x3c02},      /* a tie: to the even 1 + 2^-9 */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},
        {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001}, {3 * 0x1p-25f, 0x0002},   /* subnormal ties */
        {0x1p-14f, 0x0400}, {0x1p-14f - 0x1p-25f, 0x0400}, {0x1p-14f - 0x1p-24f, 0x03ff},     /* the normal boundary */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(f32_to_f16(cases[i].f) == cases[i].h, "%a -> %04x, expected %04x", cases[i].f, f32_to_f16(cases[i].f), cases[i].h);
        CHECK(f32_to_f16_soft(cases[i].f) == cases[i].h, "soft: %a -> %04x, expected %04x", cases[i].f, f32_to_f16_soft(cases[i].f), cases[i].h);
    }
    CHECK(isnan(f16_to_f32(f32_to_f16(NAN))), "NaN does not survive a round trip");
    int bad_half = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = f16_to_f32((uint16_t)h), b = f16_to_f32_soft((uint16_t)h);
        bad_half += memcmp(&a, &b, sizeof a) != 0 || (!isnan(a) && f32_to_f16(a) != h);
    }
    CHECK(bad_half == 0, "%d halves convert differently in software or do not round-trip", bad_half);
    int bad_float = 0;
    for (uint64_t x = 0; x < (1ull << 32); x += 4093) {   /* ~1M bit patterns: every exponent, NaNs included */
        uint32_t bits = (uint32_t)x;
        float f;
        memcpy(&f, &bits, sizeof f);
        bad_float += f32_to_f16(f) != f32_to_f16_soft(f);
    }
    CHECK(bad_float == 0, "%d floats convert differently in software", bad_float);
    enum { N = 45 };   /* 2 x 16 + 8 + 5: every loop of the row conversions */
    float f[N], back[N];
    uint16_t h[N];
    for (int i = 0; i < N; i++) f[i] = (float)(i - 20) * 0.337f + 1e-6f * i;
    f32_to_f16_row(h, f, N);
    f16_to_f32_row(back, h, N);
    for (int i = 0; i < N; i++) {
        CHECK(h[i] == f32_to_f16(f[i]), "row element %d: %04x, alone %04x", i, h[i], f32_to_f16(f[i]));
        CHECK(back[i] == f16_to_f32(h[i]), "row element %d back: %g, alone %g", i, back[i], f16_to_f32(h[i]));
    }
}

static void test_forward_rejects_bad_input(void) {
    Variant v = {"learned", "learned", 0, 0, 0};
    TestModelSpec spec = test_model_spec("learned");
    Model m;
    char err[256] = "";
    int tokens[41];
    make_tokens(tokens, 41, 2);
    if (open_variant(&m, &spec, &v, 40, 512, 0, KV_F32)) return;
    int bad = 256;
    CHECK(model_forward(&m, &bad, 1, 0, NULL, 0, err) < 0 && strstr(err, "vocabulary"), "token 256 accepted: '%s'", err);
    CHECK(model_forward(&m, tokens, 2, spec.ctx - 1, NULL, 0, err) < 0 && strstr(err, "learned"), "position past the table accepted: '%s'", err);
    CHECK(m.kv.n_used == 0, "a refused forward must not append to the cache");
    CHECK(model_forward(&m, tokens, 41, 0, NULL, 0, err) < 0 && strstr(err, "context full"), "41 tokens in 40 slots accepted: '%s'", err);
    CHECK(model_forward(&m, tokens, 5, 3, NULL, 0, err) == 0, "valid forward failed: %s", err);
    CHECK(model_forward(&m, tokens, 1, 7, NULL, 0, err) < 0 && strstr(err, "not after"), "a position already cached accepted: '%s'", err);
    model_close(&m);
}

/* Self-Extend with a window wider than every distance is plain RoPE, to the bit (no key is in the far
   view, so no far score is computed); with a narrow window it is not (the control) */
static void test_self_extend_wide_window_is_rope(void) {
    enum { T = 100, POS0 = 20, SLOTS = 128 };
    int tokens[T];
    make_tokens(tokens, T, 5);
    TestModelSpec spec = test_model_spec("rope");
    size_t rows = (size_t)T * spec.vocab;
    float *ref = malloc(rows * sizeof(float)), *got = malloc(rows * sizeof(float));
    Model m;
    const Variant rope = {"rope", "rope", 0, 0, 0}, wide = {"rope", "self-extend", 0, 4, T}, narrow = {"rope", "self-extend", 0, 4, 16};
    if (!open_variant(&m, &spec, &rope, SLOTS, 512, 0, KV_F32)) {
        forward_rows(&m, tokens, T, POS0, ref, 0);
        model_close(&m);
    }
    for (int one_by_one = 0; one_by_one < 2; one_by_one++)
        if (!open_variant(&m, &spec, &wide, SLOTS, 512, 0, KV_F32)) {
            forward_rows(&m, tokens, T, POS0, got, one_by_one);
            model_close(&m);
            double d = max_diff(ref, got, rows);
            CHECK(d <= (one_by_one ? 1e-5 : 0), "W %d >= every distance%s: differs from RoPE by %.3g", T, one_by_one ? ", token by token" : "", d);
        }
    if (!open_variant(&m, &spec, &narrow, SLOTS, 512, 0, KV_F32)) {
        forward_rows(&m, tokens, T, POS0, got, 0);
        model_close(&m);
        double d = max_diff(ref, got, rows);
        CHECK(d > 1e-3, "W 16: should differ from RoPE, differs by %.3g", d);
    }
    free(ref);
    free(got);
}

/* Self-Extend written out (pe-spec §14.3): for every query i and key j <= i, the kind and positions
   from pe_self_extend, q and k rotated there afresh, the score in double, one softmax per row in
   double. The rest of the layer uses the runtime's norm, matmul and SwiGLU (flavour 0: RMSNorm,
   SwiGLU, no biases, tied output). */
static void reference_forward(const Model *m, const int *tokens, int T, int pos0, int G, int W, float *logits) {
    const Config *c = &m->c;
    const Encoding *e = &m->pe;
    int D = c->dim, hd = c->head_dim, H = c->n_heads, Hkv = c->n_kv_heads, qd = H * hd, kvd = Hkv * hd, F = c->hidden_dim;
    float *x = malloc((size_t)T * D * sizeof(float)), *xn = malloc((size_t)T * D * sizeof(float)), *rstd = malloc((size_t)T * sizeof(float));
    float *q = malloc((size_t)T * qd * sizeof(float)), *k = malloc((size_t)T * kvd * sizeof(float)), *v = malloc((size_t)T * kvd * sizeof(float));
    float *att = malloc((size_t)T * qd * sizeof(float)), *proj = malloc((size_t)T * D * sizeof(float));
    float *up = malloc((size_t)T * F * sizeof(float)), *gate = malloc((size_t)T * F * sizeof(float)), *h_ = malloc((size_t)T * F * sizeof(float));
    double *p = malloc((size_t)T * sizeof(double));
    for (int t = 0; t < T; t++) mat_row(x + (size_t)t * D, &m->w.tok_embd, (size_t)tokens[t], D);
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *lw = &m->w.layers[l];
        norm_forward(xn, NULL, rstd, x, lw->attn_norm, NULL, T, D, c->norm_eps);
        linear_forward(q, xn, &lw->wq, NULL, T, D, qd);
        linear_forward(k, xn, &lw->wk, NULL, T, D, kvd);
        linear_forward(v, xn, &lw->wv, NULL, T, D, kvd);
        for (int i = 0; i < T; i++)
            for (int h = 0; h < H; h++) {
                int g = h / (H / Hkv);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    float qq[PE_MAX_HEAD_DIM], kk[PE_MAX_HEAD_DIM];
                    int qp, kp;
                    pe_self_extend(pos0 + i, pos0 + j, G, W, &qp, &kp);
                    memcpy(qq, q + (size_t)i * qd + (size_t)h * hd, (size_t)hd * sizeof(float));
                    memcpy(kk, k + (size_t)j * kvd + (size_t)g * hd, (size_t)hd * sizeof(float));
                    e->ops->rotate(e, qp, qq, 1, NULL, 0);
                    e->ops->rotate(e, kp, NULL, 0, kk, 1);
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += (double)qq[d] * kk[d];
                    p[j] = dot / sqrt((double)hd);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += p[j] * v[(size_t)j * kvd + (size_t)g * hd + d];
                    att[(size_t)i * qd + (size_t)h * hd + d] = (float)(o / sum);
                }
            }
        linear_forward(proj, att, &lw->wo, NULL, T, qd, D);
        for (size_t i = 0; i < (size_t)T * D; i++) x[i] += proj[i];
        norm_forward(xn, NULL, rstd, x, lw->ffn_norm, NULL, T, D, c->norm_eps);
        linear_forward(up, xn, &lw->w_up, NULL, T, D, F);
        linear_forward(gate, xn, &lw->w_gate, NULL, T, D, F);
        swiglu_forward(h_, gate, up, (long)T * F);
        linear_forward(proj, h_, &lw->w_down, NULL, T, F, D);
        for (size_t i = 0; i < (size_t)T * D; i++) x[i] += proj[i];
    }
    norm_forward(xn, NULL, rstd, x, m->w.out_norm, NULL, T, D, c->norm_eps);
    linear_forward(logits, xn, &m->w.output, NULL, T, D, c->vocab_size);
    free(x); free(xn); free(rstd); free(q); free(k); free(v); free(att); free(proj); free(up); free(gate); free(h_); free(p);
}

/* The runtime's Self-Extend (the far view cached, the score picked by distance in the attention
   tiles) equals the reference, in one pass, in chunks of 7 and token by token; prompts long enough
   for several key tiles and query blocks, some mixing neighbour and grouped keys */
static void test_self_extend_matches_reference(void) {
    enum { T = 150, SLOTS = 160 };
    static const int settings[][3] = {{4, 16, 0}, {8, 64, 7}, {2, 2, 0}};   /* G, W, pos0 */
    int tokens[T];
    make_tokens(tokens, T, 11);
    TestModelSpec spec = test_model_spec("rope");
    size_t rows = (size_t)T * spec.vocab;
    float *ref = malloc(rows * sizeof(float)), *got = malloc(rows * sizeof(float));
    for (int si = 0; si < 3; si++) {
        int G = settings[si][0], W = settings[si][1], pos0 = settings[si][2];
        Variant v = {"rope", "self-extend", 0, G, W};
        for (int mode = 0; mode < 3; mode++) {   /* one pass, chunks of 7, token by token */
            Model m;
            if (open_variant(&m, &spec, &v, SLOTS, mode == 1 ? 7 : 512, 0, KV_F32)) continue;
            if (mode == 0) reference_forward(&m, tokens, T, pos0, G, W, ref);
            forward_rows(&m, tokens, T, pos0, got, mode == 2);
            model_close(&m);
            double d = max_diff(ref, got, rows);
            CHECK(d <= 1e-4, "G %d W %d pos0 %d (%s): differs from the reference by %.3g", G, W, pos0,
                  mode == 0 ? "one pass" : mode == 1 ? "chunks of 7" : "token by token", d);
        }
    }
    free(ref);
    free(got);
}

void suite_equivalence(void) {
    RUN(test_chunked_equals_token_by_token);
    RUN(test_dynamic_ntk_is_exact);
    RUN(test_dynamic_ntk_stale);
    RUN(test_context_shift_matches_fresh_run);
    RUN(test_streaming_llm_eviction);
    RUN(test_context_shift_f16_matches_f32);
    RUN(test_absolute_encodings_refuse_to_shift);
    RUN(test_relative_encodings_start_anywhere);
    RUN(test_context_131072);
    RUN(test_f16_cache_refuses_dynamic_ntk);
    RUN(test_f16_cache_halves_memory);
    RUN(test_half_conversions);
    RUN(test_forward_rejects_bad_input);
    RUN(test_self_extend_wide_window_is_rope);
    RUN(test_self_extend_matches_reference);
}
