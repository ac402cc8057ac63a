/* Tokenizer tests on small vocabularies built here. Expected ids are derived by hand from the merge
   rule (best score first, leftmost on ties); the derivations are in the comments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "test.h"
#include "tokenizer/tokenizer.h"

/* Test vocabulary: 0 <unk>, 1 <s>, 2 </s>, 3+b the byte token of b, then the pieces below. */
#define B(b) (3 + (b))
enum { SP = 259, T, H, E, A, Bc, C, SP_T, HE, SP_THE, SP_A, AB, ABC, TH, BA, LT_S, BAR, N_VOCAB };
static const struct { const char *piece; float score; int32_t type; } extra[] = {
    {"\xE2\x96\x81", 0, 1}, {"t", 0, 1}, {"h", 0, 1}, {"e", 0, 1}, {"a", 0, 1}, {"b", 0, 1}, {"c", 0, 1},
    {"\xE2\x96\x81t", -5, 1}, {"he", -3, 1}, {"\xE2\x96\x81the", -1, 1}, {"\xE2\x96\x81" "a", -4, 1},
    {"ab", -2, 1}, {"abc", -6, 1}, {"th", -3.5f, 1}, {"ba", -2, 1},
    {"<s", -1, 1},  /* "<s" + ">" spells the control piece "<s>", which must never be merged to */
    {"|", 0, 3},    /* a control piece: the text "|" must byte-fall-back */
};

static char byte_names[256][8];
static const char *v_pieces[N_VOCAB];
static uint64_t v_lens[N_VOCAB];
static float v_scores[N_VOCAB];
static int32_t v_types[N_VOCAB];

static void fill_vocab(void) {
    v_pieces[0] = "<unk>"; v_types[0] = 2;
    v_pieces[1] = "<s>"; v_types[1] = 3;
    v_pieces[2] = "</s>"; v_types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        v_pieces[B(b)] = byte_names[b];
        v_types[B(b)] = 6;
    }
    for (int i = SP; i < N_VOCAB; i++) {
        v_pieces[i] = extra[i - SP].piece;
        v_scores[i] = extra[i - SP].score;
        v_types[i] = extra[i - SP].type;
    }
    for (int i = 0; i < N_VOCAB; i++) v_lens[i] = strlen(v_pieces[i]);
}

static int make_spm(Tokenizer *t, int add_space_prefix) {
    char err[256] = "";
    fill_vocab();
    int r = tokenizer_init(t, TOK_SPM, N_VOCAB, v_pieces, v_lens, v_scores, v_types, 1, 2, 0, add_space_prefix, err);
    CHECK(r == 0, "init: %s", err);
    return r;
}

static void expect_ids(const Tokenizer *t, const char *text, size_t len, int add_bos, const int *want, int n_want) {
    int got[64];
    int n = tokenizer_encode(t, text, len, add_bos, got, 64);
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    CHECK(same, "encode \"%.*s\": got %d ids, want %d", (int)len, text, n, n_want);
    if (!same)
        for (int i = 0; i < n && i < 64; i++) fprintf(stderr, "    got[%d] = %d%s\n", i, got[i], i < n_want && got[i] == want[i] ? "" : " (differs)");
}
#define EXPECT(t, s, bos, ...) do { static const int w_[] = {__VA_ARGS__}; \
    expect_ids(t, s, sizeof(s) - 1, bos, w_, (int)(sizeof w_ / sizeof w_[0])); } while (0)

static void test_tok_merges(void) {
    Tokenizer t;
    if (make_spm(&t, 1)) return;
    /* "▁the": he(-3) beats th(-3.5) and ▁t(-5); then th is stale, ▁t merges, then ▁t+he = ▁the(-1) */
    EXPECT(&t, "the", 1, 1, SP_THE);
    EXPECT(&t, "the", 0, SP_THE);
    /* "▁th": th(-3.5) beats ▁t(-5) even though ▁t is further left; "▁th" is not a piece */
    EXPECT(&t, "th", 1, 1, SP, TH);
    /* "▁abc": ab(-2), then ab+c = abc(-6); ▁a is stale; "▁abc" is not a piece */
    EXPECT(&t, "abc", 1, 1, SP, ABC);
    /* "▁aba": ab and ba tie at -2, the leftmost (ab) wins, which kills ba and ▁a */
    EXPECT(&t, "aba", 1, 1, SP, AB, A);
    EXPECT(&t, "bab", 1, 1, SP, BA, Bc);
    /* "▁a▁b": only ▁a is a piece */
    EXPECT(&t, "a b", 1, 1, SP_A, SP, Bc);
    /* "▁the▁abc": ab, he, ▁t, ▁the, then abc */
    EXPECT(&t, "the abc", 1, 1, SP_THE, SP, ABC);
    EXPECT(&t, "a\nb", 1, 1, SP_A, B('\n'), Bc);
    EXPECT(&t, "  ", 1, 1, SP, SP, SP);
    EXPECT(&t, "", 1, 1);
    CHECK(tokenizer_encode(&t, "", 0, 0, NULL, 0) == 0, "empty text without BOS has no ids");
    tokenizer_free(&t);
}

static void test_tok_no_prefix(void) {
    Tokenizer t;
    if (make_spm(&t, 0)) return;
    EXPECT(&t, "the", 1, 1, T, HE);     /* "the": he, and "the" is not a piece */
    EXPECT(&t, " the", 1, 1, SP_THE);   /* the input's own space */
    char out[16];
    int n = tokenizer_decode(&t, 1, SP_THE, out, sizeof out);
    CHECK(n == 4 && !memcmp(out, " the", 4), "without a dummy prefix the space after BOS is kept (%d)", n);
    tokenizer_free(&t);
}

static void test_tok_byte_fallback(void) {
    Tokenizer t;
    if (make_spm(&t, 1)) return;
    EXPECT(&t, "\xC3\xA9", 1, 1, SP, B(0xC3), B(0xA9));                             /* é */
    EXPECT(&t, "\xF0\x9F\x98\x80", 1, 1, SP, B(0xF0), B(0x9F), B(0x98), B(0x80));   /* 😀 */
    EXPECT(&t, "|", 1, 1, SP, B('|'));               /* control pieces are not looked up */
    EXPECT(&t, "<s>", 1, 1, SP, LT_S, B('>'));       /* nor merged to: the text "<s>" is not BOS */
    EXPECT(&t, "<0x41>", 0, SP, B('<'), B('0'), B('x'), B('4'), B('1'), B('>'));
    /* invalid UTF-8: each bad byte on its own */
    EXPECT(&t, "\xC3", 1, 1, SP, B(0xC3));                                  /* truncated */
    EXPECT(&t, "\xC0\xAF" "a", 1, 1, SP, B(0xC0), B(0xAF), A);              /* overlong */
    EXPECT(&t, "\xA9\xFF\xF8", 1, 1, SP, B(0xA9), B(0xFF), B(0xF8));        /* stray continuation, F8-FF */
    EXPECT(&t, "\xE2\x96" "a", 1, 1, SP, B(0xE2), B(0x96), A);              /* truncated ▁ */
    EXPECT(&t, "\xED\xA0\x80", 1, 1, SP, B(0xED), B(0xA0), B(0x80));        /* surrogate */
    tokenizer_free(&t);
}

static void test_tok_decode(void) {
    Tokenizer t;
    if (make_spm(&t, 1)) return;
    char out[16];
    int n = tokenizer_decode(&t, 1, SP_THE, out, sizeof out);
    CHECK(n == 3 && !memcmp(out, "the", 3), "after BOS the prefix space goes (%d)", n);
    n = tokenizer_decode(&t, SP, SP_THE, out, sizeof out);
    CHECK(n == 4 && !memcmp(out, " the", 4), "elsewhere it stays (%d)", n);
    CHECK(tokenizer_decode(&t, 1, SP, out, sizeof out) == 0, "a lone prefix after BOS is empty");
    n = tokenizer_decode(&t, 1, B(0xC3), out, sizeof out);
    CHECK(n == 1 && (unsigned char)out[0] == 0xC3, "byte token -> raw byte (%d)", n);
    CHECK(tokenizer_decode(&t, 5, 0, out, sizeof out) == 0, "unk decodes to nothing");
    CHECK(tokenizer_decode(&t, 5, 1, out, sizeof out) == 0, "bos decodes to nothing");
    CHECK(tokenizer_decode(&t, 5, BAR, out, sizeof out) == 0, "control decodes to nothing");
    CHECK(tokenizer_decode(&t, 5, -1, out, sizeof out) == 0, "negative id");
    CHECK(tokenizer_decode(&t, 5, N_VOCAB, out, sizeof out) == 0, "id past the vocabulary");
    for (int cap = 0; cap <= 5; cap++) {
        memset(out, '#', sizeof out);
        n = tokenizer_decode(&t, SP, SP_THE, out, cap);
        int want = cap < 4 ? cap : 4;
        CHECK(n == want && !memcmp(out, " the", (size_t)n) && out[n] == '#' && out[cap] == '#',
              "cap %d: got %d", cap, n);
        memset(out, '#', sizeof out);
        n = tokenizer_decode(&t, 5, B(0x41), out, cap);
        CHECK(n == (cap > 0) && out[cap] == '#', "byte token, cap %d: got %d", cap, n);
    }
    tokenizer_free(&t);
}

/* Encodes with or without BOS and decodes every id; the result must be the input (after BOS) or the
   input behind the dummy-prefix space (without BOS). Returns 1 on success. */
static int round_trip(const Tokenizer *t, const char *text, size_t len, int add_bos) {
    int n = tokenizer_encode(t, text, len, add_bos, NULL, 0);
    if (n < 0) return 0;
    int *ids = malloc(((size_t)n + 1) * sizeof *ids);
    size_t cap = len + 8;
    char *out = malloc(cap + 1);
    int ok = ids && out && tokenizer_encode(t, text, len, add_bos, ids, n) == n;
    size_t got = 0;
    for (int i = 0; ok && i < n; i++)
        got += (size_t)tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], out + got, (int)(cap - got));
    const char *want_prefix = t->kind == TOK_SPM && t->add_space_prefix && !(add_bos && t->bos >= 0) && len ? " " : "";
    size_t np = strlen(want_prefix);
    ok = ok && got == np + len && !memcmp(out, want_prefix, np) && !memcmp(out + np, text, len);
    free(ids); free(out);
    return ok;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t xorshift(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static void test_tok_round_trip(void) {
    Tokenizer t, tn;
    if (make_spm(&t, 1)) return;
    if (make_spm(&tn, 0)) { tokenizer_free(&t); return; }
    static const char *fixed[] = {"", " ", "   ", "\n", "\n\n a", "the", " the abc ", "<s>", "</s>", "<unk>",
                                  "|", "\xC3\xA9t\xC3\xA9", "\xF0\x9F\x98\x80!", "\xC3", "\xFF\xFE", "a\0b"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t len = i == sizeof fixed / sizeof fixed[0] - 1 ? 3 : strlen(fixed[i]);
        for (int bos = 0; bos < 2; bos++) {
            CHECK(round_trip(&t, fixed[i], len, bos), "round trip \"%s\" bos %d", fixed[i], bos);
            CHECK(round_trip(&tn, fixed[i], len, bos), "no-prefix round trip \"%s\" bos %d", fixed[i], bos);
        }
    }
    /* random strings mixing pieces, spaces, UTF-8 fragments and arbitrary bytes */
    static const char *frags[] = {"a", "b", "c", "t", "h", "e", " ", "\n", "<s>", "|", "\xC3\xA9", "\xC3",
                                  "\xF0\x9F\x98\x80", "\xF0\x9F", "\xE2\x96", "\x80", "\xED\xA0\x80"};
    int failures = 0;
    for (int c = 0; c < 5000; c++) {
        char buf[128];
        size_t len = 0, target = xorshift() % 40;
        while (len < target) {
            uint32_t r = xorshift();
            if (r % 4 == 0) { buf[len++] = (char)(r >> 8); continue; }
            const char *f = frags[(r >> 8) % (sizeof frags / sizeof frags[0])];
            size_t fl = strlen(f);
            memcpy(buf + len, f, fl);
            len += fl;
        }
        /* a literal U+2581 reads back as a space (see tokenizer.c): break any that formed */
        for (size_t i = 0; i + 2 < len; i++)
            if (!memcmp(buf + i, "\xE2\x96\x81", 3)) buf[i + 2] = 'x';
        int bos = c & 1;
        if (!round_trip(&t, buf, len, bos) || !round_trip(&tn, buf, len, bos)) failures++;
    }
    CHECK(failures == 0, "%d of 5000 random strings did not round-trip", failures);
    tokenizer_free(&t);
    tokenizer_free(&tn);
}

static void test_tok_max_ids(void) {
    Tokenizer t;
    if (make_spm(&t, 1)) return;
    static const int want[] = {1, SP_THE, SP, ABC};  /* see test_tok_merges */
    for (int max = 0; max <= 5; max++) {
        int ids[8];
        for (int i = 0; i < 8; i++) ids[i] = -7;
        int n = tokenizer_encode(&t, "the abc", 7, 1, ids, max);
        CHECK(n == 4, "max_ids %d: returns the full count, got %d", max, n);
        for (int i = 0; i < 8; i++)
            CHECK(ids[i] == (i < max && i < 4 ? want[i] : -7), "max_ids %d: ids[%d] = %d", max, i, ids[i]);
    }
    tokenizer_free(&t);
}

static void test_tok_bytes(void) {
    static const char *pieces[258];
    uint64_t lens[258];
    char names[258][8];
    for (int i = 0; i < 258; i++) {
        snprintf(names[i], sizeof names[i], i < 256 ? "<0x%02X>" : "<s%d>", i);
        pieces[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    Tokenizer t;
    char err[256] = "";
    int r = tokenizer_init(&t, TOK_BYTES, 258, pieces, lens, NULL, NULL, 256, 257, -1, 1, err);
    CHECK(r == 0, "init bytes: %s", err);
    if (r) return;
    int ids[8];
    int n = tokenizer_encode(&t, "h i\0\xFF", 5, 1, ids, 8);
    CHECK(n == 6 && ids[0] == 256 && ids[1] == 'h' && ids[2] == ' ' && ids[3] == 'i' && ids[4] == 0 && ids[5] == 255,
          "bytes encode: %d ids", n);
    CHECK(tokenizer_encode(&t, "ab", 2, 0, ids, 1) == 2 && ids[0] == 'a', "bytes max_ids");
    char out[4] = "###";
    CHECK(tokenizer_decode(&t, 256, 'h', out, 4) == 1 && out[0] == 'h', "bytes decode after BOS keeps the byte");
    CHECK(tokenizer_decode(&t, 5, 256, out, 4) == 0, "BOS decodes to nothing");
    CHECK(tokenizer_decode(&t, 5, 'x', out, 0) == 0 && out[0] == 'h', "cap 0 writes nothing");
    int failures = 0;
    for (int c = 0; c < 500; c++) {
        char buf[64];
        size_t len = xorshift() % 64;
        for (size_t i = 0; i < len; i++) buf[i] = (char)xorshift();
        failures += !round_trip(&t, buf, len, c & 1);
    }
    CHECK(failures == 0, "%d bytes round trips failed", failures);
    tokenizer_free(&t);
}

static void test_tok_init_errors(void) {
    fill_vocab();
    Tokenizer t;
    char err[256];
#define EXPECT_FAIL(call, what) do { err[0] = '\0'; int r_ = (call); \
    CHECK(r_ == -1 && err[0] && !strchr(err, '\n'), "%s: r %d, err \"%s\"", what, r_, err); } while (0)
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, v_pieces, v_lens, v_scores, v_types, N_VOCAB, 2, 0, 1, err), "bos = n_vocab");
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, v_pieces, v_lens, v_scores, v_types, 1, -2, 0, 1, err), "eos = -2");
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, v_pieces, v_lens, v_scores, v_types, 1, 2, 9999, 1, err), "unk too big");
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, 0, v_pieces, v_lens, v_scores, v_types, -1, -1, -1, 1, err), "n_vocab 0");
    EXPECT_FAIL(tokenizer_init(&t, TOK_BYTES, 100, v_pieces, v_lens, NULL, NULL, -1, -1, -1, 1, err), "bytes, n_vocab < 256");
    EXPECT_FAIL(tokenizer_init(&t, (TokKind)7, N_VOCAB, v_pieces, v_lens, v_scores, v_types, 1, 2, 0, 1, err), "bad kind");
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, NULL, v_lens, v_scores, v_types, 1, 2, 0, 1, err), "no pieces");
    /* a NUL inside a piece, and an overlong piece, both late in the vocabulary (ASan checks the cleanup) */
    const char *with_nul[N_VOCAB];
    uint64_t lens[N_VOCAB];
    memcpy(with_nul, v_pieces, sizeof with_nul);
    memcpy(lens, v_lens, sizeof lens);
    with_nul[N_VOCAB - 1] = "a\0b";
    lens[N_VOCAB - 1] = 3;
    EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, with_nul, lens, v_scores, v_types, 1, 2, 0, 1, err), "NUL in a piece");
    char *big = malloc(5000);
    if (big) {
        memset(big, 'x', 5000);
        with_nul[N_VOCAB - 1] = big;
        lens[N_VOCAB - 1] = 5000;
        EXPECT_FAIL(tokenizer_init(&t, TOK_SPM, N_VOCAB, with_nul, lens, v_scores, v_types, 1, 2, 0, 1, err), "piece > 4096 bytes");
        lens[N_VOCAB - 1] = 4096;   /* the limit itself is fine */
        CHECK(tokenizer_init(&t, TOK_SPM, N_VOCAB, with_nul, lens, v_scores, v_types, 1, 2, 0, 1, err) == 0, "4096: %s", err);
        tokenizer_free(&t);
        free(big);
    }
#undef EXPECT_FAIL
}

/* No scores or types: <0xXX> pieces are still the byte tokens, everything else is normal. A vocabulary
   without byte tokens cannot encode text outside it. */
static void test_tok_defaults(void) {
    fill_vocab();
    Tokenizer t;
    char err[256] = "";
    int r = tokenizer_init(&t, TOK_SPM, N_VOCAB, v_pieces, v_lens, NULL, NULL, 1, 2, 0, 1, err);
    CHECK(r == 0, "init without scores/types: %s", err);
    if (r) return;
    CHECK(t.byte_id[0x41] == B(0x41) && t.types[B(0x41)] == 6 && t.types[SP] == 1, "byte tokens found by name");
    EXPECT(&t, "\xC3\xA9", 0, SP, B(0xC3), B(0xA9));
    tokenizer_free(&t);
    static const char *small[] = {"<s>", "\xE2\x96\x81", "a", ("\xE2\x96\x81" "a")};
    static const uint64_t small_lens[] = {3, 3, 1, 4};
    r = tokenizer_init(&t, TOK_SPM, 4, small, small_lens, NULL, NULL, 0, -1, -1, 1, err);
    CHECK(r == 0, "init small: %s", err);
    if (r) return;
    EXPECT(&t, "a", 1, 0, 3);
    CHECK(tokenizer_encode(&t, "z", 1, 1, NULL, 0) == -1, "no byte token for 'z' -> -1");
    tokenizer_free(&t);
}

/* 1 MB of words: must encode in well under a few seconds and round-trip. */
static void test_tok_large(void) {
    Tokenizer t;
    if (make_spm(&t, 1)) return;
    static const char *words[] = {"the", "a", "abc", "ab", "ba", "he", "th", "tea", "h\xC3\xA9llo",
                                  "\xF0\x9F\x98\x80", "<s>", "|", "bababab", "the the"};
    size_t cap = (size_t)1 << 20, len = 0;
    char *text = malloc(cap + 32);
    if (!text) { CHECK(0, "out of memory"); tokenizer_free(&t); return; }
    while (len < cap) {
        uint32_t r = xorshift();
        const char *w = words[r % (sizeof words / sizeof words[0])];
        size_t wl = strlen(w);
        memcpy(text + len, w, wl);
        len += wl;
        text[len++] = (r >> 16) % 16 == 0 ? '\n' : ' ';
    }
    clock_t t0 = clock();
    int n = tokenizer_encode(&t, text, len, 1, NULL, 0);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  # 1 MB (%zu bytes) -> %d ids in %.3f s\n", len, n, secs);
    CHECK(n > 0 && secs < 3.0, "1 MB encode: %d ids in %.3f s", n, secs);
    CHECK(round_trip(&t, text, len, 1), "1 MB round trip");
    free(text);
    tokenizer_free(&t);
}

void suite_tokenizer(void) {
    RUN(test_tok_merges);
    RUN(test_tok_no_prefix);
    RUN(test_tok_byte_fallback);
    RUN(test_tok_decode);
    RUN(test_tok_round_trip);
    RUN(test_tok_max_ids);
    RUN(test_tok_bytes);
    RUN(test_tok_init_errors);
    RUN(test_tok_defaults);
    RUN(test_tok_large);
}
