/* Data module tests: RNG, corpus loading and sentence index, token streams, passkey examples (exact
   lengths, layout, depth / distance placement, sentence boundaries, determinism, key uniformity),
   training batches, and clean errors. Corpora are synthesised here; nothing outside the repo is read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "data.h"

/* ---- fixtures ---- */

static char byte_names[256][8];

static int make_bytes(Tokenizer *t) {
    static const char *pieces[256];
    static uint64_t lens[256];
    char err[256] = "";
    for (int i = 0; i < 256; i++) {
        snprintf(byte_names[i], sizeof byte_names[i], "<0x%02X>", i);
        pieces[i] = byte_names[i];
        lens[i] = 6;
    }
    int r = tokenizer_init(t, TOK_BYTES, 256, pieces, lens, NULL, NULL, -1, -1, -1, 0, err);
    CHECK(r == 0, "bytes tokenizer: %s", err);
    return r;
}

/* A small SentencePiece vocabulary: <unk> <s> </s>, optionally the 256 byte tokens, single characters
   (no 'z', no newline: those byte-fall-back), digits except `skip_digit`, and a few merges so that
   tokens are 1-5 bytes long. `extra` adds one more piece (to test the digit rule). */
#define SP "\xE2\x96\x81"
static const char *const spm_words[] = {
    SP, ".", "?", "!", ",", "\"", "'", "he", SP "t", SP "T", SP "the", SP "The", "is", SP "is", "ss", "pa",
    "pass", SP "pass", "ke", "key", SP "key", "ra", "gra", SP "gra", SP "a", SP "s", "ky", SP "sky",
};
static int make_spm(Tokenizer *t, int with_bytes, int skip_digit, const char *extra) {
    static char chars[80][2];
    const char *pieces[600];
    uint64_t lens[600];
    float scores[600];
    int32_t types[600];
    int n = 0;
    char err[256] = "";
    pieces[n] = "<unk>"; types[n++] = 2;
    pieces[n] = "<s>"; types[n++] = 3;
    pieces[n] = "</s>"; types[n++] = 3;
    for (int b = 0; with_bytes && b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        pieces[n] = byte_names[b]; types[n++] = 6;
    }
    int nc = 0;
    for (int c = 'a'; c <= 'y'; c++) chars[nc++][0] = (char)c;
    for (int c = 'A'; c <= 'Z'; c++) chars[nc++][0] = (char)c;
    for (int c = '0'; c <= '9'; c++)
        if (c - '0' != skip_digit) chars[nc++][0] = (char)c;
    for (int i = 0; i < nc; i++) { pieces[n] = chars[i]; types[n++] = 1; }
    for (size_t i = 0; i < sizeof spm_words / sizeof spm_words[0]; i++) { pieces[n] = spm_words[i]; types[n++] = 1; }
    if (extra) { pieces[n] = extra; types[n++] = 1; }
    for (int i = 0; i < n; i++) {
        lens[i] = strlen(pieces[i]);
        scores[i] = -(float)lens[i]; /* shorter merges first: the way up to longer pieces exists */
    }
    int r = tokenizer_init(t, TOK_SPM, n, pieces, lens, scores, types, 1, 2, 0, 1, err);
    CHECK(r == 0, "spm tokenizer: %s", err);
    return r;
}

static uint64_t xs_state;
static uint32_t xs(void) {
    xs_state ^= xs_state << 13; xs_state ^= xs_state >> 7; xs_state ^= xs_state << 17;
    return (uint32_t)(xs_state >> 32);
}

/* About n bytes of English-like text without digits or control bytes other than '\n': sentences of
   1-60 words ending in . ? ! ." or .) and paragraphs separated by a blank line. Returns the length. */
static size_t make_text(char *buf, size_t n, uint64_t seed) {
    static const char *words[] = {"the", "sky", "grass", "jury", "said", "election", "report", "quiz", "water",
                                  "over", "under", "city", "and", "of", "a", "is", "was", "green", "blue",
                                  "Atlanta", "man", "woman", "house", "e.g.", "it's", "keys", "pass", "lazy"};
    static const char *ends[] = {". ", ". ", ". ", "? ", "! ", ".\" ", ".) ", ".\n\n", ", "};
    xs_state = seed * 2654435761u + 1;
    size_t len = 0;
    while (len + 600 < n) {
        int nw = 1 + (int)(xs() % (xs() % 4 ? 15 : 60));
        for (int w = 0; w < nw; w++) {
            const char *s = words[xs() % (sizeof words / sizeof words[0])];
            len += (size_t)sprintf(buf + len, "%s%c%s", w ? " " : "", w ? s[0] : (char)(s[0] & ~0x20), s + 1);
        }
        len += (size_t)sprintf(buf + len, "%s", ends[xs() % (sizeof ends / sizeof ends[0])]);
    }
    return len;
}

/* Everything one needs for examples: a tokenizer, a corpus of about `bytes` bytes, its stream, a Passkey. */
typedef struct { Tokenizer tok; Corpus c; Tokens s; Passkey pk; } Setup;

static int setup(Setup *u, int spm, int marker, size_t bytes) {
    char err[256] = "";
    memset(u, 0, sizeof *u);
    if (spm ? make_spm(&u->tok, 1, -1, NULL) : make_bytes(&u->tok)) return -1;
    char *text = malloc(bytes);
    size_t len = make_text(text, bytes, 42);
    int r = corpus_init(&u->c, text, len, err) || corpus_tokenize(&u->c, &u->tok, &u->s, err) ||
            passkey_init(&u->pk, &u->tok, &u->s, marker, err);
    free(text);
    CHECK(r == 0, "setup: %s", err);
    return r ? -1 : 0;
}

static void teardown(Setup *u) {
    passkey_free(&u->pk);
    tokens_free(&u->s);
    corpus_free(&u->c);
    tokenizer_free(&u->tok);
}

static int is_sent(const Tokens *s, size_t b) {
    size_t lo = 0, hi = s->n_sent;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->sent[mid] < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n_sent && s->sent[lo] == b;
}

/* Checks one example against the format: lengths, fixed parts, the key twice and nowhere else, the
   haystack equal to the source stream. Returns 1 if it passed (failures are reported). */
static int check_layout(const Passkey *pk, const int *ids, int T, const PasskeyInfo *in, const char *what) {
    int saved = test_current_failed;
    test_current_failed = 0;
    int H = T - pk->overhead, P = in->needle;
    CHECK(in->len == T && in->hay_len == H && in->answer == T - 5, "%s: len %d hay %d answer %d", what, in->len, in->hay_len, in->answer);
    CHECK(P >= 0 && P <= H, "%s: needle %d outside [0, %d]", what, P, H);
    if (test_current_failed) { test_current_failed = 1; return 0; }
    CHECK(in->key == P + pk->n_needle && in->question == in->key + 5 + pk->n_dot + (H - P) &&
          in->question + pk->n_question == in->answer, "%s: key %d question %d", what, in->key, in->question);
    CHECK(!memcmp(ids + P, pk->needle, (size_t)pk->n_needle * sizeof *ids), "%s: needle text", what);
    CHECK(!memcmp(ids + in->key + 5, pk->dot, (size_t)pk->n_dot * sizeof *ids), "%s: dot", what);
    CHECK(!memcmp(ids + in->question, pk->question, (size_t)pk->n_question * sizeof *ids), "%s: question", what);
    int key[5];
    for (int k = 0; k < 5; k++) {
        int d = in->digits[k] - '0';
        CHECK(d >= 0 && d <= 9, "%s: digit '%c'", what, in->digits[k]);
        key[k] = pk->digit[d < 0 || d > 9 ? 0 : d];
    }
    CHECK(in->digits[5] == '\0', "%s: digits not terminated", what);
    CHECK(!memcmp(ids + in->key, key, sizeof key) && !memcmp(ids + T - 5, key, sizeof key), "%s: key %s", what, in->digits);
    int count = 0; /* the key appears exactly twice */
    for (int i = 0; i + 5 <= T; i++) count += !memcmp(ids + i, key, sizeof key);
    CHECK(count == 2, "%s: the key occurs %d times", what, count);
    int gap = pk->n_needle + 5 + pk->n_dot, bad = -1;
    for (int j = 0; j < H && bad < 0; j++) {
        int got = ids[j < P ? j : j + gap];
        int want = in->haystack == HAY_FILLER ? pk->filler.ids[(in->hay_start + (size_t)j) % pk->filler.n]
                                              : pk->corpus->ids[in->hay_start + (size_t)j];
        if (got != want) bad = j;
    }
    CHECK(bad < 0, "%s: haystack token %d differs from its source", what, bad);
    const Tokens *src = in->haystack == HAY_FILLER ? &pk->filler : pk->corpus;
    size_t cut = in->haystack == HAY_FILLER ? (in->hay_start + (size_t)P) % pk->filler.n : in->hay_start + (size_t)P;
    CHECK(is_sent(src, cut), "%s: the needle at %d is not at a sentence boundary", what, P);
    int ok = !test_current_failed;
    test_current_failed = saved || !ok;
    return ok;
}

/* ---- tests ---- */

static void test_data_rng(void) {
    Rng a, b;
    rng_seed(&a, 123);
    rng_seed(&b, 123);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= rng_u64(&a) == rng_u64(&b);
    CHECK(same, "same seed, same stream");
    rng_seed(&b, 124);
    CHECK(rng_u64(&a) != rng_u64(&b), "neighbouring seeds differ");
    rng_seed(&a, 0);
    CHECK(rng_u64(&a) == 0xE220A8397B1DCDAFull, "splitmix64 reference value for seed 0");
    double sum = 0;
    int in_range = 1;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&a);
        in_range &= u >= 0 && u < 1;
        sum += u;
    }
    CHECK(in_range, "uniform outside [0, 1)");
    CHECK_NEAR(sum / 100000, 0.5, 0.005, "uniform mean");
    static const uint64_t ns[] = {1, 2, 3, 10, 1000003, (1ull << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int ok = 1;
        for (int i = 0; i < 1000; i++) ok &= rng_below(&a, ns[k]) < ns[k];
        CHECK(ok, "rng_below(%llu) out of range", (unsigned long long)ns[k]);
    }
    CHECK(rng_below(&a, 0) == 0, "rng_below(0)");
    int seen[3] = {0};
    for (int i = 0; i < 3000; i++) seen[rng_below(&a, 3)]++;
    CHECK(seen[0] > 900 && seen[1] > 900 && seen[2] > 900, "rng_below(3): %d %d %d", seen[0], seen[1], seen[2]);
}

static void test_data_corpus_index(void) {
    static const char text[] = "Hi there. Yes? \"Go.\" Ok!\nNext line\n\nEnd. x.y e.g. z";
    static const size_t want[] = {0, 9, 14, 20, 24, 34, 35, 40, 49};
    Corpus c;
    char err[256] = "";
    if (corpus_init(&c, text, sizeof text - 1, err)) { CHECK(0, "init: %s", err); return; }
    int same = c.n_sent == sizeof want / sizeof want[0] && c.len == sizeof text - 1 && c.text[c.len] == '\0';
    for (size_t i = 0; same && i < c.n_sent; i++) same = c.sent[i] == want[i];
    CHECK(same, "sentence boundaries: got %zu", c.n_sent);
    for (size_t i = 0; !same && i < c.n_sent; i++) fprintf(stderr, "    sent[%zu] = %zu\n", i, c.sent[i]);
    CHECK(c.n_invalid == 0, "ASCII has no invalid bytes (%zu)", c.n_invalid);
    corpus_free(&c);
    /* é, then a stray continuation byte, 0xFF, a truncated sequence at the end */
    static const char bad[] = "\xC3\xA9 ok \x80\xFF ok \xE2\x96";
    if (corpus_init(&c, bad, sizeof bad - 1, err)) { CHECK(0, "init: %s", err); return; }
    CHECK(c.n_invalid == 4, "invalid UTF-8 bytes: got %zu want 4", c.n_invalid);
    corpus_free(&c);
    CHECK(corpus_init(&c, "", 0, err) == -1 && strstr(err, "empty"), "empty text: %s", err);
}

static void test_data_corpus_load(void) {
    char path[512], err[256];
    mkdir(test_tmp_dir, 0755);
    long pid = (long)getpid();
    snprintf(path, sizeof path, "%s/data-%ld.txt", test_tmp_dir, pid);
    /* a file larger than one read chunk, so the growing read loop runs */
    size_t n = 200000;
    char *text = malloc(n);
    size_t len = make_text(text, n, 3);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(text, 1, len, f) == len, "write %s", path);
    if (f) fclose(f);
    Corpus c, ref;
    int r = corpus_load(&c, path, err);
    CHECK(r == 0, "load: %s", err);
    if (!r && !corpus_init(&ref, text, len, err)) {
        CHECK(c.len == len && !memcmp(c.text, text, len), "loaded text differs");
        CHECK(c.n_sent == ref.n_sent && !memcmp(c.sent, ref.sent, c.n_sent * sizeof *c.sent), "index differs");
        CHECK(c.n_sent > 100, "only %zu sentences", c.n_sent);
        corpus_free(&ref);
    }
    if (!r) corpus_free(&c);
    remove(path);
    free(text);
    /* errors: one line each */
    char empty[512], dir[512], odd[512];
    snprintf(empty, sizeof empty, "%s/data-%ld-empty.txt", test_tmp_dir, pid);
    snprintf(dir, sizeof dir, "%s/data-%ld-dir", test_tmp_dir, pid);
    snprintf(odd, sizeof odd, "%s/data-%ld-no\nsuch\x1b[31m", test_tmp_dir, pid);
    f = fopen(empty, "wb");
    if (f) fclose(f);
    mkdir(dir, 0755);
    struct { const char *path, *want; } cases[] = {
        {"/nonexistent/brown.txt", "cannot open /nonexistent/brown.txt: No such file"},
        {empty, "is empty"}, {dir, "cannot read"}, {odd, "cannot open"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err, 0, sizeof err);
        memset(&c, 0x5A, sizeof c);
        r = corpus_load(&c, cases[i].path, err);
        CHECK(r == -1 && strstr(err, cases[i].want) && !strchr(err, '\n') && !strchr(err, '\x1b') &&
              c.text == NULL && c.sent == NULL, "case %zu: r %d, err \"%s\"", i, r, err);
        corpus_free(&c); /* safe after a failed load */
    }
    remove(empty);
    rmdir(dir);
}

static void test_data_tokenize(void) {
    Setup u;
    if (setup(&u, 0, 1, 20000)) return;
    int same = u.s.n == u.c.len && u.s.n_sent == u.c.n_sent;
    for (size_t i = 0; same && i < u.s.n; i++) same = u.s.ids[i] == (unsigned char)u.c.text[i];
    CHECK(same && !memcmp(u.s.sent, u.c.sent, u.c.n_sent * sizeof *u.s.sent), "bytes: identity");
    teardown(&u);
    /* SPM: every sentence decodes to exactly its text, and the stream decodes to the corpus */
    if (setup(&u, 1, 1, 20000)) return;
    CHECK(u.s.n_sent == u.c.n_sent && u.s.n < u.c.len && u.s.n > u.c.len / 5, "spm: %zu tokens, %zu sentences for %zu bytes",
          u.s.n, u.s.n_sent, u.c.len);
    char *out = malloc(u.c.len + 1);
    size_t got = 0;
    int bad = -1;
    for (size_t i = 0; i < u.s.n_sent && i < u.c.n_sent; i++) {
        size_t end = i + 1 < u.s.n_sent ? u.s.sent[i + 1] : u.s.n, start = got;
        got += tokens_render(&u.tok, u.s.ids + u.s.sent[i], end - u.s.sent[i], out + got, u.c.len + 1 - got);
        size_t want_end = i + 1 < u.c.n_sent ? u.c.sent[i + 1] : u.c.len;
        if (bad < 0 && (start != u.c.sent[i] || got != want_end)) bad = (int)i;
    }
    CHECK(bad < 0 && got == u.c.len && !memcmp(out, u.c.text, u.c.len), "spm: sentence %d decodes wrongly", bad);
    free(out);
    teardown(&u);
}

static void test_data_window(void) {
    Setup u;
    if (setup(&u, 0, 1, 5000)) return;
    Rng r;
    rng_seed(&r, 5);
    int buf[300], bad = 0;
    long long lo = -1, hi = -1;
    size_t n = u.s.n - 290; /* 291 possible starts */
    for (int i = 0; i < 20000; i++) {
        long long s = tokens_window(&u.s, 290, &r, buf);
        if (s < 0 || (size_t)s > n || memcmp(buf, u.s.ids + s, 290 * sizeof *buf)) bad++;
        if (s >= 0 && (lo < 0 || s < lo)) lo = s;
        if (s > hi) hi = s;
    }
    CHECK(bad == 0, "%d windows are not substreams", bad);
    CHECK(lo == 0 && hi == (long long)n, "starts cover [0, %zu]: saw [%lld, %lld]", n, lo, hi);
    int *all = malloc(u.s.n * sizeof *all);
    CHECK(tokens_window(&u.s, u.s.n, &r, all) == 0, "a window of the whole stream starts at 0");
    CHECK(tokens_window(&u.s, u.s.n + 1, &r, all) == -1, "a window longer than the stream is refused");
    free(all);
    teardown(&u);
}

/* T from tiny to 20000: exact lengths and layout for every tokenizer, marker setting and haystack. */
static void test_data_exact_length(void) {
    static const int Ts[] = {70, 71, 100, 255, 256, 257, 300, 513, 1000, 1024, 2048, 4096, 5000, 16384, 20000};
    static const double depths[] = {0, 0.1, 0.33, 0.5, 0.9, 1};
    for (int variant = 0; variant < 3; variant++) {
        Setup u;
        if (setup(&u, variant == 2, variant != 1, 60000)) return;
        CHECK(variant == 2 || u.pk.overhead == (variant ? 67 : 69), "overhead %d", u.pk.overhead);
        int *ids = malloc((20000 + 1) * sizeof *ids);
        Rng r;
        rng_seed(&r, 11);
        char what[96];
        int n_ok = 0, n = 0;
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            int T = Ts[i];
            if (T < u.pk.overhead) continue;
            for (int hay = 0; hay < 2; hay++)
                for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
                    PasskeyInfo in;
                    char err[256] = "";
                    ids[T] = -77; /* canary */
                    snprintf(what, sizeof what, "variant %d T %d hay %d depth %g", variant, T, hay, depths[d]);
                    int rc = passkey_at_depth(&u.pk, hay, T, depths[d], &r, ids, &in, err);
                    CHECK(rc == 0, "%s: %s", what, err);
                    n++;
                    if (!rc && check_layout(&u.pk, ids, T, &in, what) && ids[T] == -77) n_ok++;
                }
        }
        CHECK(n_ok == n && n > 100, "variant %d: %d of %d examples well formed", variant, n_ok, n);
        free(ids);
        teardown(&u);
    }
}

static void test_data_depth(void) {
    for (int spm = 0; spm < 2; spm++) {
        Setup u;
        if (setup(&u, spm, 1, 60000)) return;
        int *ids = malloc(5000 * sizeof *ids);
        Rng r;
        rng_seed(&r, 99);
        int bad = 0, n = 0;
        for (int T = 256; T <= 4096; T *= 2)
            for (int k = 0; k <= 20; k++) {
                double depth = k / 20.0;
                int H = T - u.pk.overhead, want = (int)(depth * H);
                for (int trial = 0; trial < 10; trial++, n++) {
                    PasskeyInfo in;
                    char err[256];
                    int hay = trial & 1;
                    if (passkey_at_depth(&u.pk, hay, T, depth, &r, ids, &in, err) ||
                        !check_layout(&u.pk, ids, T, &in, "depth") || in.needle != want) {
                        bad++;
                        continue;
                    }
                    /* independent of the index (bytes: the text itself): the prefix ends a sentence and
                       the suffix starts with its whitespace */
                    if (!spm && in.needle > 0) {
                        int a = ids[in.needle - 1], a2 = in.needle > 1 ? ids[in.needle - 2] : 0;
                        int b = ids[in.key + 5 + u.pk.n_dot];
                        int end = a == '.' || a == '?' || a == '!' ||
                                  ((a == '"' || a == ')' || a == '\'') && (a2 == '.' || a2 == '?' || a2 == '!'));
                        if (!(b == '\n' || (b == ' ' && end))) bad++;
                    }
                }
            }
        CHECK(bad == 0, "spm %d: %d of %d needles not at floor(depth * H) after a sentence end", spm, bad, n);
        free(ids);
        teardown(&u);
    }
}

static void test_data_distance(void) {
    for (int spm = 0; spm < 2; spm++) {
        Setup u;
        if (setup(&u, spm, 1, 60000)) return;
        int *ids = malloc(3000 * sizeof *ids);
        Rng r;
        rng_seed(&r, 3);
        int bad = 0, n = 0;
        for (int T = 100; T <= 3000; T += 290) {
            int H = T - u.pk.overhead;
            for (int D = u.pk.min_distance; D <= u.pk.min_distance + H; D += 1 + H / 40, n++) {
                PasskeyInfo in;
                char err[256];
                if (passkey_at_distance(&u.pk, HAY_FILLER, T, D, &r, ids, &in, err) ||
                    !check_layout(&u.pk, ids, T, &in, "filler") || in.answer - in.key != D)
                    bad++;
                if (passkey_at_distance(&u.pk, HAY_CORPUS, T, D, &r, ids, &in, err) ||
                    !check_layout(&u.pk, ids, T, &in, "corpus") || in.answer - in.key != D)
                    bad++;
            }
        }
        CHECK(bad == 0 && n > 200, "spm %d: %d of %d distances not honoured", spm, bad, 2 * n);
        free(ids);
        teardown(&u);
    }
}

static void test_data_determinism(void) {
    Setup u;
    if (setup(&u, 0, 1, 60000)) return;
    int a[1000], b[1000];
    PasskeyInfo ia, ib;
    char err[256];
    for (int hay = 0; hay < 2; hay++) {
        Rng r1, r2;
        rng_seed(&r1, 2024);
        rng_seed(&r2, 2024);
        int same = 1;
        for (int i = 0; i < 20; i++) {
            passkey_at_depth(&u.pk, hay, 1000, 0.37, &r1, a, &ia, err);
            passkey_at_depth(&u.pk, hay, 1000, 0.37, &r2, b, &ib, err);
            same &= !memcmp(a, b, sizeof a) && ia.needle == ib.needle && ia.hay_start == ib.hay_start &&
                    !strcmp(ia.digits, ib.digits);
        }
        CHECK(same, "hay %d: same seed, different examples", hay);
        /* 50 seeds: keys and corpus offsets all (nearly) distinct, filler phases vary */
        char keys[50][6];
        size_t starts[50];
        int dup_keys = 0, distinct_starts = 0;
        for (int s = 0; s < 50; s++) {
            Rng r;
            rng_seed(&r, (uint64_t)s);
            passkey_at_depth(&u.pk, hay, 1000, 0.37, &r, a, &ia, err);
            memcpy(keys[s], ia.digits, 6);
            starts[s] = ia.hay_start;
            int seen = 0;
            for (int t = 0; t < s; t++) {
                dup_keys += !strcmp(keys[s], keys[t]);
                seen |= starts[s] == starts[t];
            }
            distinct_starts += !seen;
        }
        CHECK(dup_keys <= 1, "hay %d: %d repeated keys over 50 seeds", hay, dup_keys);
        /* a start per sentence boundary that can sit at the needle: the filler has 5, the test corpus
           ~600 (50 draws from 600 repeat ~2 times) */
        CHECK(distinct_starts >= (hay == HAY_FILLER ? 5 : 45), "hay %d: %d distinct offsets", hay, distinct_starts);
    }
    teardown(&u);
}

static void test_data_key_uniform(void) {
    Setup u;
    if (setup(&u, 0, 0, 5000)) return;
    int ids[300], count[10] = {0}, first[10] = {0};
    Rng r;
    rng_seed(&r, 77);
    for (int i = 0; i < 2000; i++) {
        PasskeyInfo in;
        char err[256];
        passkey_at_depth(&u.pk, i & 1, 256, 0.5, &r, ids, &in, err);
        for (int k = 0; k < 5; k++) count[in.digits[k] - '0']++;
        first[in.digits[0] - '0']++;
    }
    double chi = 0, chi_first = 0;
    for (int d = 0; d < 10; d++) {
        chi += (count[d] - 1000.0) * (count[d] - 1000.0) / 1000.0;
        chi_first += (first[d] - 200.0) * (first[d] - 200.0) / 200.0;
    }
    /* 9 degrees of freedom: P(chi2 > 30) ~ 4e-4 */
    CHECK(chi < 30, "digit counts chi2 %.1f", chi);
    CHECK(chi_first < 30 && first[0] > 0, "first digits chi2 %.1f, %d leading zeros", chi_first, first[0]);
    teardown(&u);
}

/* Requests that cannot be met fail with one line and leave the output alone. */
static void test_data_errors(void) {
    Setup u;
    if (setup(&u, 0, 1, 3000)) return;
    int ids[4000];
    Rng r;
    rng_seed(&r, 1);
    PasskeyInfo in;
    int ov = u.pk.overhead, H = 300 - ov, lo = u.pk.min_distance;
    struct { int hay, T, by_distance, distance; double depth; const char *want; } cases[] = {
        {HAY_FILLER, ov - 1, 0, 0, 0.5, "shorter than the needle"},
        {HAY_CORPUS, 64, 0, 0, 0.5, "shorter than the needle"},
        {HAY_FILLER, 0, 0, 0, 0.5, "shorter"},
        {HAY_FILLER, -5, 1, 50, 0, "shorter"},
        {HAY_FILLER, 300, 0, 0, -0.01, "outside [0, 1]"},
        {HAY_FILLER, 300, 0, 0, 1.01, "outside [0, 1]"},
        {HAY_CORPUS, 300, 0, 0, NAN, "outside [0, 1]"},
        {HAY_FILLER, 300, 1, lo - 1, 0, "outside"},
        {HAY_CORPUS, 300, 1, lo + H + 1, 0, "outside"},
        {2, 300, 0, 0, 0.5, "unknown haystack"},
        {HAY_CORPUS, 4000, 0, 0, 0.5, "the corpus has"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        for (int k = 0; k < 4000; k++) ids[k] = -7;
        int rc = cases[i].by_distance
                     ? passkey_at_distance(&u.pk, cases[i].hay, cases[i].T, cases[i].distance, &r, ids, &in, err)
                     : passkey_at_depth(&u.pk, cases[i].hay, cases[i].T, cases[i].depth, &r, ids, &in, err);
        int untouched = 1;
        for (int k = 0; k < 4000; k++) untouched &= ids[k] == -7;
        CHECK(rc == -1 && strstr(err, cases[i].want) && !strchr(err, '\n') && untouched, "case %zu: rc %d, err \"%s\"", i, rc, err);
    }
    /* the boundary case works: T = overhead leaves an empty haystack */
    char err[256] = "";
    CHECK(passkey_at_depth(&u.pk, HAY_CORPUS, ov, 1, &r, ids, &in, err) == 0 && check_layout(&u.pk, ids, ov, &in, "T = overhead"),
          "T = overhead: %s", err);
    CHECK(passkey_at_distance(&u.pk, HAY_FILLER, ov, lo, &r, ids, &in, err) == 0 && in.answer - in.key == lo, "minimum distance: %s", err);
    /* a corpus without sentence ends has a boundary only at 0: a needle can only start the haystack */
    {
        static const char flat[] = "no sentence ends here at all just words and words and words and more words";
        Corpus fc;
        Tokens fs;
        Passkey fp;
        int T = ov + 20;
        CHECK(corpus_init(&fc, flat, sizeof flat - 1, err) == 0 && corpus_tokenize(&fc, &u.tok, &fs, err) == 0 &&
              passkey_init(&fp, &u.tok, &fs, 1, err) == 0 && fs.n_sent == 1, "flat corpus: %s", err);
        for (int k = 0; k < 4000; k++) ids[k] = -7;
        CHECK(passkey_at_depth(&fp, HAY_CORPUS, T, 0.5, &r, ids, &in, err) == -1 && strstr(err, "no sentence boundary") &&
              ids[0] == -7 && ids[T - 1] == -7, "flat corpus, depth 0.5: %s", err);
        CHECK(passkey_at_depth(&fp, HAY_CORPUS, T, 0, &r, ids, &in, err) == 0 && in.hay_start == 0 &&
              check_layout(&fp, ids, T, &in, "flat, depth 0"), "flat corpus, depth 0: %s", err);
        passkey_free(&fp);
        tokens_free(&fs);
        corpus_free(&fc);
    }
    /* a corpus exactly as long as the haystack: start 0, so only P at one of its boundaries works */
    {
        static const char tight[] = "One. Two three. Four five six.";
        Corpus tc;
        Tokens tt;
        Passkey tp;
        int n = (int)sizeof tight - 1, T = ov + n, wrong = 0;
        CHECK(corpus_init(&tc, tight, (size_t)n, err) == 0 && corpus_tokenize(&tc, &u.tok, &tt, err) == 0 &&
              passkey_init(&tp, &u.tok, &tt, 1, err) == 0, "tight corpus: %s", err);
        for (int P = 0; P <= n; P++) {
            int rc = passkey_at_distance(&tp, HAY_CORPUS, T, lo + n - P, &r, ids, &in, err);
            int want = P == 0 || P == 4 || P == 15;
            wrong += want ? rc != 0 || in.needle != P || in.hay_start != 0 || !check_layout(&tp, ids, T, &in, "tight") : rc != -1;
        }
        CHECK(wrong == 0, "tight corpus: %d of %d placements wrong", wrong, n + 1);
        passkey_free(&tp);
        tokens_free(&tt);
        corpus_free(&tc);
    }
    /* no corpus */
    Passkey bare;
    CHECK(passkey_init(&bare, &u.tok, NULL, 1, err) == 0, "init without corpus: %s", err);
    CHECK(passkey_at_depth(&bare, HAY_FILLER, 300, 0.5, &r, ids, &in, err) == 0, "filler without corpus: %s", err);
    CHECK(passkey_at_depth(&bare, HAY_CORPUS, 300, 0.5, &r, ids, &in, err) == -1 && strstr(err, "corpus has 0"), "corpus haystack without corpus: %s", err);
    /* batches */
    float w[4000];
    BatchSpec ok = {0.5, 0.5, 0, 0, 4.0f, 0, 0}, spec;
    struct { const Passkey *pk; int B, T; double p, pf; int min_d; const char *want; } bc[] = {
        {&u.pk, 0, 100, 0.5, 0.5, 0, "out of range"},
        {&u.pk, 2, 0, 0.5, 0.5, 0, "out of range"},
        {&u.pk, 2, 100, 1.5, 0.5, 0, "must lie in [0, 1]"},
        {&u.pk, 2, 100, 0.5, NAN, 0, "must lie in [0, 1]"},
        {&bare, 2, 100, 0.5, 0.5, 0, "need a corpus"},
        {&u.pk, 2, 60, 0.5, 0.5, 0, "shorter than the needle"},
        {&u.pk, 2, 100, 0.5, 0.5, 200, "exceeds the largest distance"},
    };
    for (size_t i = 0; i < sizeof bc / sizeof bc[0]; i++) {
        spec = ok;
        spec.p_passkey = bc[i].p;
        spec.p_filler = bc[i].pf;
        spec.min_distance = bc[i].min_d;
        err[0] = '\0';
        int rc = batch_fill(bc[i].pk, &spec, bc[i].B, bc[i].T, &r, ids, w, NULL, err);
        CHECK(rc == -1 && strstr(err, bc[i].want) && !strchr(err, '\n'), "batch case %zu: rc %d, err \"%s\"", i, rc, err);
    }
    spec = ok;
    spec.p_passkey = 1;
    spec.p_filler = 0;
    CHECK(batch_fill(&bare, &spec, 2, 100, &r, ids, w, NULL, err) == -1 && strstr(err, "corpus has 0"),
          "passkey-only batch without corpus needs p_filler = 1: %s", err);
    spec.p_filler = 1;
    CHECK(batch_fill(&bare, &spec, 2, 100, &r, ids, w, NULL, err) == 2, "filler-only batch without corpus: %s", err);
    passkey_free(&bare);
    teardown(&u);
}

static void test_data_batch(void) {
    Setup u;
    if (setup(&u, 0, 1, 60000)) return;
    enum { B = 64, T = 256, N = 300 };
    int *tok = malloc((size_t)B * (T + 1) * sizeof *tok);
    float *w = malloc((size_t)B * T * sizeof *w);
    PasskeyInfo info[B];
    Rng r;
    rng_seed(&r, 8);
    char err[256] = "";
    for (int mode = 0; mode < 4; mode++) { /* distance, depth, answer only, distance with half the keys repeating */
        BatchSpec spec = {0.3, 0.5, mode == 1, 60, 4.0f, mode == 2, mode == 3 ? 0.5 : 0};
        long n_pk = 0, n_filler = 0, n_rows = 0, bad_rows = 0, below_mid = 0, n_full = 0, n_two_digits = 0;
        int n_min = mode == 1 ? u.pk.overhead : u.pk.overhead + 60 - u.pk.min_distance, shortest = T + 1;
        double len_sum = 0;
        for (int it = 0; it < N; it++) {
            int got = batch_fill(&u.pk, &spec, B, T, &r, tok, w, info, err), counted = 0;
            CHECK(got >= 0, "batch: %s", err);
            if (got < 0) break;
            for (int b = 0; b < B; b++, n_rows++) {
                const int *row = tok + (size_t)b * (T + 1);
                const float *wr = w + (size_t)b * T;
                int ok = 1;
                if (info[b].len == 0) { /* LM row: weight 1, and (a few batches: slow search) a corpus window */
                    for (int t = 0; t < T; t++) ok &= wr[t] == 1.0f;
                    int found = it >= 3;
                    for (size_t s = 0; !found && s + T + 1 <= u.s.n; s++) found = !memcmp(row, u.s.ids + s, (T + 1) * sizeof *row);
                    bad_rows += !(ok && found);
                    continue;
                }
                counted++;
                int n = info[b].len; /* the example, then haystack text of its kind to the row's end */
                ok = n >= n_min && n <= T + 1 && check_layout(&u.pk, row, n, &info[b], "batch row");
                if (!ok) { bad_rows++; continue; }
                if (info[b].haystack == HAY_FILLER) {
                    int fits = 0;
                    for (size_t s0 = 0; s0 < u.pk.filler.n && !fits; s0++) {
                        fits = 1;
                        for (int j = n; j <= T && fits; j++) fits = row[j] == u.pk.filler.ids[(s0 + (size_t)(j - n)) % u.pk.filler.n];
                    }
                    ok &= fits;
                } else if (it < 3 && n <= T) {
                    int found = 0;
                    for (size_t s0 = 0; !found && s0 + (size_t)(T + 1 - n) <= u.s.n; s0++)
                        found = !memcmp(row + n, u.s.ids + s0, (size_t)(T + 1 - n) * sizeof *row);
                    ok &= found;
                }
                for (int t = 0; t < T; t++) /* the weight marks exactly the targets that are answer tokens */
                    ok &= wr[t] == (t + 1 >= info[b].answer && t + 1 < n ? 4.0f : mode == 2 ? 0.0f : 1.0f);
                int d = info[b].answer - info[b].key, hi = u.pk.min_distance + n - u.pk.overhead;
                n_filler += info[b].haystack == HAY_FILLER;
                ok &= mode == 1 || d >= 60;
                below_mid += d < sqrt(60.0 * (hi + 1));
                len_sum += (double)(n - n_min) / (T + 1 - n_min);
                n_full += n == T + 1;
                shortest = n < shortest ? n : shortest;
                int seen[10] = {0}, distinct = 0;
                for (int k = 0; k < 5; k++) distinct += !seen[info[b].digits[k] - '0']++;
                n_two_digits += distinct <= 2;
                bad_rows += !ok;
            }
            CHECK(got == counted, "returned %d passkey rows, info says %d", got, counted);
            n_pk += got;
        }
        CHECK(bad_rows == 0, "mode %d: %ld of %ld rows malformed", mode, bad_rows, n_rows);
        CHECK_NEAR((double)n_pk / n_rows, 0.3, 0.02, "passkey fraction");
        CHECK_NEAR((double)n_filler / n_pk, 0.5, 0.03, "filler share of passkey rows");
        if (mode != 1) /* log-uniform: half the distances below the geometric mean of their range */
            CHECK_NEAR((double)below_mid / n_pk, 0.5, 0.03, "distances below the geometric mean");
        /* example lengths uniform over [n_min, T + 1]: the answer ends anywhere from the shortest to the full row */
        CHECK_NEAR(len_sum / n_pk, 0.5, 0.02, "mean example length");
        CHECK(shortest <= n_min + 2 && n_full > 0, "example lengths reach both ends: shortest %d (n_min %d), %ld full rows",
              shortest, n_min, n_full);
        /* a uniform key has at most two distinct digits with p = (10 + 45 * 30) / 1e5 = 0.0136; a repeating one always */
        double two = (10 + 45 * 30) / 1e5, want = mode == 3 ? 0.5 + 0.5 * two : two;
        CHECK_NEAR((double)n_two_digits / n_pk, want, mode == 3 ? 0.03 : 0.008, "keys of at most two digits");
    }
    /* p = 0 and p = 1 */
    BatchSpec spec = {0, 0.5, 0, 0, 4.0f, 0, 0};
    CHECK(batch_fill(&u.pk, &spec, B, T, &r, tok, w, info, err) == 0, "p = 0");
    spec.p_passkey = 1;
    CHECK(batch_fill(&u.pk, &spec, B, T, &r, tok, w, info, err) == B, "p = 1");
    free(tok);
    free(w);
    teardown(&u);
}

static void test_data_spm(void) {
    Setup u;
    if (setup(&u, 1, 1, 60000)) return;
    CHECK(u.pk.n_needle < 18 && u.pk.n_question < 40, "merges shorten the fixed parts: %d %d", u.pk.n_needle, u.pk.n_question);
    int *ids = malloc(3000 * sizeof *ids);
    char *text = malloc(30000);
    Rng r;
    rng_seed(&r, 4);
    PasskeyInfo in;
    char err[256] = "";
    for (int hay = 0; hay < 2; hay++) {
        int rc = passkey_at_depth(&u.pk, hay, 2500, 0.6, &r, ids, &in, err);
        CHECK(rc == 0 && check_layout(&u.pk, ids, 2500, &in, "spm"), "spm hay %d: %s", hay, err);
        size_t n = tokens_render(&u.tok, ids, 2500, text, 30000);
        char needle[64], tail[64];
        snprintf(needle, sizeof needle, " The pass key is <0x01>%s.", in.digits);
        snprintf(tail, sizeof tail, " What is the pass key? The pass key is <0x01>%s", in.digits);
        CHECK(n > 2500 && n < 30000 && strstr(text, needle) && !strcmp(text + n - strlen(tail), tail),
              "spm hay %d: rendered text lacks the needle or the question", hay);
    }
    free(ids);
    free(text);
    teardown(&u);
    /* digits: a missing digit piece falls back to its byte token (still one token)... */
    Tokenizer t;
    Passkey pk;
    if (make_spm(&t, 1, 7, NULL)) return;
    CHECK(passkey_init(&pk, &t, NULL, 1, err) == 0 && pk.digit[7] == 3 + '7', "digit 7 by byte fallback: %s", err);
    passkey_free(&pk);
    tokenizer_free(&t);
    /* ... without byte tokens it cannot be encoded at all; a piece joining digits breaks the key */
    if (make_spm(&t, 0, 7, NULL)) return;
    CHECK(passkey_init(&pk, &t, NULL, 1, err) == -1 && strstr(err, "digit 7 is not a single token"), "no digit 7: %s", err);
    tokenizer_free(&t);
    static const char *joins[] = {"12", SP "4", "x9"};
    for (int i = 0; i < 3; i++) {
        if (make_spm(&t, 1, -1, joins[i])) return;
        CHECK(passkey_init(&pk, &t, NULL, 1, err) == -1 && strstr(err, "one token per digit"), "piece \"%s\": %s", joins[i], err);
        tokenizer_free(&t);
    }
    /* the marker needs a byte token for 0x01 */
    if (make_spm(&t, 0, -1, NULL)) return;
    CHECK(passkey_init(&pk, &t, NULL, 1, err) == -1 && strstr(err, "marker"), "no <0x01>: %s", err);
    CHECK(passkey_init(&pk, &t, NULL, 0, err) == 0, "no marker, no bytes needed: %s", err);
    passkey_free(&pk);
    tokenizer_free(&t);
}

/* The example in data.h, exactly. */
static void test_data_doc_example(void) {
    Tokenizer t;
    Passkey pk;
    char err[256] = "";
    if (make_bytes(&t)) return;
    if (passkey_init(&pk, &t, NULL, 1, err)) { CHECK(0, "init: %s", err); tokenizer_free(&t); return; }
    int ids[256];
    PasskeyInfo in;
    Rng r;
    rng_seed(&r, 7);
    CHECK(passkey_at_depth(&pk, HAY_FILLER, 256, 0.5, &r, ids, &in, err) == 0, "%s", err);
    static const char want[] =
        "ue. The sun is yellow. Here we go. There and back again. The grass is green. The sky is blue."
        " The pass key is <0x01>46345. The sun is yellow. Here we go. There and back again. The grass is"
        " green. The sky is blue. The What is the pass key? The pass key is <0x01>46345";
    char out[400];
    size_t n = tokens_render(&t, ids, 256, out, sizeof out);
    CHECK(n == sizeof want - 1 && !strcmp(out, want), "rendered:\n%s", out);
    CHECK(in.hay_len == 187 && in.needle == 93 && in.key == 111 && in.question == 211 && in.answer == 251 &&
          in.answer - in.key == 140 && pk.overhead == 69 && pk.min_distance == 46, "positions in data.h");
    /* tokens_render truncates like snprintf */
    char small[10];
    memset(small, '#', sizeof small);
    CHECK(tokens_render(&t, ids + 250, 6, small, 8) == 11 && !strcmp(small, "<0x01>4") && small[8] == '#',
          "truncated render: \"%s\"", small);
    passkey_free(&pk);
    tokenizer_free(&t);
}

void suite_data(void) {
    RUN(test_data_rng);
    RUN(test_data_corpus_index);
    RUN(test_data_corpus_load);
    RUN(test_data_tokenize);
    RUN(test_data_window);
    RUN(test_data_exact_length);
    RUN(test_data_depth);
    RUN(test_data_distance);
    RUN(test_data_determinism);
    RUN(test_data_key_uniform);
    RUN(test_data_errors);
    RUN(test_data_batch);
    RUN(test_data_spm);
    RUN(test_data_doc_example);
}
