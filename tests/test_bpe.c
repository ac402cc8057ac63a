/* BPE trainer tests. The central property: the runtime tokenizer (greedy by best score, leftmost on
   ties) loaded with a trained vocabulary segments text exactly as applying the learned merges one
   after another, in order, left to right (ref_encode below). Everything runs on text built into this
   file or generated here, so no test needs the network or files outside the repository. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test.h"
#include "gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/bpe_train.h"

static const char corpus[] =
    "The old lighthouse stood at the end of the northern pier, and the keeper walked out to it every "
    "evening before the sun went down. He carried a lantern, a notebook and a thermos of strong tea. "
    "The notebook held the weather of every night for the last thirty years: the wind, the waves, the "
    "ships that passed and the ones that did not. On the first page he had written the rules of the "
    "station, and on the last page he had written nothing at all.\n"
    "In the winter the storms came from the west. The waves climbed the rocks and broke against the "
    "tower, and the whole building shook like a tree in the wind. The keeper listened to the sea and "
    "counted the seconds between the flashes of the lamp. Twelve seconds, always twelve, because the "
    "ships knew the lighthouse by its rhythm, and a wrong rhythm would send them onto the rocks.\n"
    "The village behind the pier was small. There was a bakery, a post office, a church with a green "
    "door and a school with forty children. The children learned to read and to write, to count and to "
    "draw maps of the coast. Every spring the teacher took them out to the lighthouse, and the keeper "
    "showed them the lamp, the lenses and the long spiral stairs. The children asked him whether he was "
    "lonely, and he answered that the sea was better company than most people he had met.\n"
    "One night in March the lamp went dark. The keeper climbed the stairs in the dark, found the broken "
    "part by touch and replaced it with the spare he kept in a wooden box. It took him eleven minutes. "
    "In his notebook he wrote: lamp dark at nine forty, restored at nine fifty one, no ships in sight. "
    "Then he sat by the window and watched the beam turn over the water until the morning came.\n"
    "Years later the lighthouse was automated. A machine now turns the lamp and a computer in the city "
    "counts the seconds. The keeper moved into a house in the village, close to the bakery, and every "
    "evening he still walks to the end of the pier. He does not carry a lantern any more, but he still "
    "writes the weather in his notebook, because the sea has not stopped talking and somebody should "
    "listen. The children of the school read his notebooks now, and they learn the names of the winds.\n"
    "Reading, writing and counting were the three things the teacher believed in. She told the children "
    "that a map is a story about a place, and that a story is a map of a time. The children drew the "
    "pier, the tower and the rocks, and they wrote the keeper's rules on the walls of the classroom: "
    "keep the lamp clean, keep the rhythm true, write down what the sea says, and never leave the "
    "light without a reason. The rules were simple, and the children remembered them for the rest of "
    "their lives, long after the lighthouse had become a museum with a small shop and a cafe.\n";

/* text that is not in the corpus: other words, digits, Unicode, tabs, a NUL, invalid UTF-8 */
static const char heldout[] =
    "The pass key is 48213. What is the pass key? The pass key is 48213\n"
    "A na\xC3\xAFve caf\xC3\xA9 owner \xE2\x80\x94 in 1987 \xE2\x80\x94 painted the harbour walls blue;\tthe fishermen laughed.\n"
    "  Two leading spaces, trailing spaces  \n\n\xE2\x82\xAC 12,50 for a \xF0\x9F\x90\x9F and a lone \xC3 byte, "
    "a NUL \0 and the literal <s> and <0x41> text.";

/* ---- helpers ---- */

static int vocab_ok(BpeVocab *v, int vocab_size, const char *text, size_t len) {
    char err[256] = "";
    int r = bpe_train(text, len, vocab_size, v, err);
    CHECK(r == 0, "bpe_train(%d): %s", vocab_size, err);
    return r == 0;
}

static int load(Tokenizer *t, const BpeVocab *v) {
    char err[256] = "";
    int r = bpe_tokenizer(v, t, err);
    CHECK(r == 0, "bpe_tokenizer: %s", err);
    return r == 0;
}

static int cp_len(const unsigned char *s, size_t n) { /* enough UTF-8 for valid text; else 1 */
    int l = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 1;
    if ((size_t)l > n) return 1;
    for (int i = 1; i < l; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return l;
}

/* Reference BPE: the text as the runtime sees it ("▁" prefix, spaces as "▁"), cut into characters,
   then merge k of the learned list applied left to right over the whole sequence, k = 0, 1, ...;
   symbols without a piece become byte tokens. Returns the id count (ids holds at most max). */
static int ref_encode(const BpeVocab *v, const char *text, size_t len, int *ids, int max) {
    char *buf = malloc(3 * len + 3);
    int n = 0, ns = 0, count = 0;
    int (*sym)[3] = malloc((3 * len + 3) * sizeof *sym); /* id, start, length */
    if (len) { memcpy(buf, "\xE2\x96\x81", 3); n = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(buf + n, "\xE2\x96\x81", 3); n += 3; }
        else buf[n++] = text[i];
    }
    for (int i = 0, l; i < n; i += l) {
        l = cp_len((const unsigned char *)buf + i, (size_t)(n - i));
        int id = -1;
        for (int c = BPE_N_FIXED; c < BPE_N_FIXED + v->n_chars && id < 0; c++)
            if ((int)strlen(v->pieces[c]) == l && !memcmp(v->pieces[c], buf + i, (size_t)l)) id = c;
        sym[ns][0] = id; sym[ns][1] = i; sym[ns][2] = l; ns++;
    }
    for (int k = 0; k < v->n_merges; k++) {
        int a = v->merges[k][0], b = v->merges[k][1], z = BPE_N_FIXED + v->n_chars + k, m = 0;
        for (int i = 0; i < ns; i++) {
            if (i + 1 < ns && sym[i][0] == a && sym[i + 1][0] == b) {
                sym[m][0] = z; sym[m][1] = sym[i][1]; sym[m][2] = sym[i][2] + sym[i + 1][2]; m++; i++;
            } else memmove(sym[m++], sym[i], sizeof sym[i]);
        }
        ns = m;
    }
    for (int i = 0; i < ns; i++) {
        if (sym[i][0] >= 0) { if (count < max) ids[count] = sym[i][0]; count++; continue; }
        for (int j = 0; j < sym[i][2]; j++, count++)
            if (count < max) ids[count] = 3 + (unsigned char)buf[sym[i][1] + j];
    }
    free(buf); free(sym);
    return count;
}

/* Runtime and reference on text[0..len): 1 when they give the same ids. */
static int same_as_ref(const Tokenizer *t, const BpeVocab *v, const char *text, size_t len) {
    int cap = (int)(3 * len + 8);
    int *a = malloc((size_t)cap * sizeof *a), *b = malloc((size_t)cap * sizeof *b);
    int na = tokenizer_encode(t, text, len, 0, a, cap), nb = ref_encode(v, text, len, b, cap);
    int same = na == nb && !memcmp(a, b, (size_t)(na > 0 ? na : 0) * sizeof *a);
    if (!same) {
        fprintf(stderr, "    \"%.*s\": runtime %d ids, reference %d\n", (int)(len < 60 ? len : 60), text, na, nb);
        for (int i = 0; i < na && i < nb && i < 40; i++)
            if (a[i] != b[i]) { fprintf(stderr, "    first difference at %d: %s vs %s\n", i, t->pieces[a[i]], t->pieces[b[i]]); break; }
    }
    free(a); free(b);
    return same;
}

/* Deterministic pseudo-English: words from syllables, Zipf-ish by squaring a uniform draw. */
static char *gen_text(uint32_t seed, size_t n_words, size_t *len_out) {
    static const char *syl[] = {"th", "e", "an", "re", "in", "on", "er", "st", "ing", "at", "ou", "al", "ed",
                                "qu", "ly", "tion", "s", "ch", "ow", "ar", "is", "to", "ma", "ri", "ve", "ck"};
    const int n_syl = (int)(sizeof syl / sizeof syl[0]);
    char (*lex)[24] = malloc(600 * sizeof *lex);
    for (int w = 0; w < 600; w++) {
        lex[w][0] = 0;
        int k = 1 + (int)((seed = seed * 1664525u + 1013904223u) >> 30);
        for (int j = 0; j < k; j++) strcat(lex[w], syl[((seed = seed * 1664525u + 1013904223u) >> 16) % (uint32_t)n_syl]);
    }
    char *s = malloc(n_words * 26 + 1);
    size_t n = 0;
    for (size_t i = 0; i < n_words; i++) {
        double u = ((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0;
        const char *w = lex[(int)(u * u * 600)];
        if (i) s[n++] = i % 97 == 0 ? '\n' : ' ';
        if (i % 31 == 5) n += (size_t)sprintf(s + n, "%u", (unsigned)(seed % 100000)); /* numbers */
        else { memcpy(s + n, w, strlen(w)); n += strlen(w); }
    }
    s[n] = 0;
    free(lex);
    *len_out = n;
    return s;
}

static int has_digit(const char *s) { for (; *s; s++) if (*s >= '0' && *s <= '9') return 1; return 0; }

/* ---- tests ---- */

/* Hand-derived: "ab ab ab" is the word "▁ab" three times. Characters a, b, ▁ (count 3 each, ties by
   bytes). Pairs (▁,a) and (a,b) tie at 3: "ab" < "▁a" bytewise, so ab first, then ▁+ab. */
static void test_bpe_tiny(void) {
    BpeVocab v;
    if (!vocab_ok(&v, 1000, "ab ab ab", 8)) return;
    CHECK(v.n_vocab == BPE_N_FIXED + 5 && v.n_chars == 3 && v.n_merges == 2, "n_vocab %d chars %d merges %d", v.n_vocab, v.n_chars, v.n_merges);
    if (v.n_vocab == BPE_N_FIXED + 5) {
        const char *want[5] = {"a", "b", "\xE2\x96\x81", "ab", "\342\226\201ab"};
        for (int i = 0; i < 5; i++) CHECK(!strcmp(v.pieces[BPE_N_FIXED + i], want[i]), "piece %d is %s", i, v.pieces[BPE_N_FIXED + i]);
        CHECK(v.merges[0][0] == 259 && v.merges[0][1] == 260 && v.merges[1][0] == 261 && v.merges[1][1] == 262, "merge ids");
        CHECK(v.scores[262] > v.scores[263] && v.scores[263] > v.scores[261] && v.scores[261] < v.scores[259], "scores: merges first");
    }
    bpe_free(&v);
}

static void test_bpe_layout(void) {
    BpeVocab v;
    if (!vocab_ok(&v, 520, corpus, sizeof corpus - 1)) return;
    CHECK(v.n_vocab == 520, "n_vocab %d, want exactly 520", v.n_vocab);
    CHECK(v.bos == 1 && v.eos == 2 && v.unk == 0, "specials %d %d %d", v.bos, v.eos, v.unk);
    CHECK(!strcmp(v.pieces[0], "<unk>") && v.types[0] == 2, "id 0");
    CHECK(!strcmp(v.pieces[1], "<s>") && v.types[1] == 3 && !strcmp(v.pieces[2], "</s>") && v.types[2] == 3, "ids 1, 2");
    int bad_bytes = 0, bad_chars = 0, bad_merges = 0, dups = 0;
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        bad_bytes += strcmp(v.pieces[3 + b], want) || v.types[3 + b] != 6 || v.scores[3 + b] != 0;
    }
    CHECK(!bad_bytes, "%d byte tokens wrong", bad_bytes);
    int first_merge = BPE_N_FIXED + v.n_chars;
    CHECK(v.n_chars > 20 && v.n_merges == v.n_vocab - first_merge, "chars %d merges %d", v.n_chars, v.n_merges);
    for (int i = BPE_N_FIXED; i < first_merge; i++) {
        int l = (int)strlen(v.pieces[i]);
        bad_chars += v.types[i] != 1 || l < 1 || l != cp_len((const unsigned char *)v.pieces[i], (size_t)l) || v.scores[i] >= v.scores[v.n_vocab - 1];
    }
    CHECK(!bad_chars, "%d single-character pieces wrong (type 1, one codepoint, below every merge)", bad_chars);
    for (int i = first_merge; i < v.n_vocab; i++) {
        const char *p = v.pieces[i], *sp = strstr(p + 1, "\xE2\x96\x81");
        char cat[600];
        snprintf(cat, sizeof cat, "%s%s", v.pieces[v.merges[i - first_merge][0]], v.pieces[v.merges[i - first_merge][1]]);
        int wrong = v.types[i] != 1 || has_digit(p) || strchr(p, '\n') || sp || strcmp(cat, p) ||
                    (i > first_merge && !(v.scores[i] < v.scores[i - 1])) || v.merges[i - first_merge][0] >= i || v.merges[i - first_merge][1] >= i;
        if (wrong && bad_merges++ < 5) fprintf(stderr, "    bad merged piece %d \"%s\"\n", i, p);
    }
    CHECK(!bad_merges, "%d merged pieces break a rule (digit, newline, inner ▁, order, spelling)", bad_merges);
    for (int i = 0; i < v.n_vocab; i++)
        for (int j = i + 1; j < v.n_vocab; j++) dups += !strcmp(v.pieces[i], v.pieces[j]);
    CHECK(!dups, "%d duplicate pieces", dups);
    int nl = 0, the = 0;
    for (int i = BPE_N_FIXED; i < v.n_vocab; i++) {
        nl += !strcmp(v.pieces[i], "\n");
        the += !strcmp(v.pieces[i], "\xE2\x96\x81the");
    }
    CHECK(nl == 1 && the == 1, "\"\\n\" (%d) and \"▁the\" (%d) should be pieces", nl, the);
    bpe_free(&v);
}

/* The main property, on the built-in corpus and on generated text, for several vocabulary sizes. */
static void test_bpe_runtime_reproduces_merges(void) {
    size_t glen;
    char *gen = gen_text(12345, 20000, &glen);
    struct { const char *text; size_t len; int vocab; } cases[] = {
        {corpus, sizeof corpus - 1, 400}, {corpus, sizeof corpus - 1, 4096} /* all pairs seen twice */, {gen, glen, 600}, {gen, glen, 1500},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        BpeVocab v;
        Tokenizer t;
        if (!vocab_ok(&v, cases[c].vocab, cases[c].text, cases[c].len)) continue;
        if (!load(&t, &v)) { bpe_free(&v); continue; }
        CHECK(v.n_merges > 50, "case %zu: only %d merges", c, v.n_merges);
        /* every line on its own, the whole text at once, and the held-out text */
        int lines = 0, differ = 0;
        for (const char *p = cases[c].text, *end = p + cases[c].len; p < end; lines++) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            differ += !same_as_ref(&t, &v, p, n);
            p += n + 1;
        }
        CHECK(!differ, "case %zu: %d of %d lines segment differently", c, differ, lines);
        CHECK(same_as_ref(&t, &v, cases[c].text, cases[c].len), "case %zu: whole text", c);
        CHECK(same_as_ref(&t, &v, heldout, sizeof heldout - 1), "case %zu: held-out text", c);
        size_t g2len;
        char *g2 = gen_text(777, 3000, &g2len); /* same lexicon size, other words drawn */
        CHECK(same_as_ref(&t, &v, g2, g2len), "case %zu: other generated text", c);
        free(g2);
        tokenizer_free(&t);
        bpe_free(&v);
    }
    free(gen);
}

static void test_bpe_roundtrip(void) {
    BpeVocab v;
    Tokenizer t;
    if (!vocab_ok(&v, 4096, corpus, sizeof corpus - 1)) return;
    if (!load(&t, &v)) { bpe_free(&v); return; }
    const char *texts[] = {heldout, corpus, "x", " ", "\n", "1", "the the"};
    size_t lens[] = {sizeof heldout - 1, sizeof corpus - 1, 1, 1, 1, 1, 7};
    for (int k = 0; k < 7; k++) {
        int n = tokenizer_encode(&t, texts[k], lens[k], 1, NULL, 0);
        int *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
        char *back = malloc(lens[k] + 16);
        CHECK(n > 0 && tokenizer_encode(&t, texts[k], lens[k], 1, ids, n) == n, "text %d: encode %d", k, n);
        size_t m = 0;
        for (int i = 1; i < n; i++) {
            char piece[BPE_MAX_PIECE + 8];
            int l = tokenizer_decode(&t, ids[i - 1], ids[i], piece, sizeof piece);
            if (m + (size_t)l <= lens[k] + 8) memcpy(back + m, piece, (size_t)l);
            m += (size_t)l;
        }
        CHECK(m == lens[k] && !memcmp(back, texts[k], m), "text %d: decoded %zu bytes of %zu differ", k, m, lens[k]);
        if (k == 0) CHECK((double)n < 0.7 * (double)lens[k], "held-out text: %d tokens for %zu bytes", n, lens[k]);
        free(ids); free(back);
    }
    tokenizer_free(&t);
    bpe_free(&v);
}

/* Digits are never merged: a 5-digit passkey is exactly 5 tokens, one per digit. */
static void test_bpe_digits(void) {
    size_t glen;
    char *gen = gen_text(99, 20000, &glen); /* many numbers, so digit pairs are frequent */
    BpeVocab v;
    Tokenizer t;
    if (!vocab_ok(&v, 1000, gen, glen)) { free(gen); return; }
    if (load(&t, &v)) {
        const char *p = "The pass key is 48213. Remember 48213";
        int ids[64], n = tokenizer_encode(&t, p, strlen(p), 0, ids, 64), digits = 0, dig_ids = 0;
        for (int i = 0; i < n && i < 64; i++) {
            const char *s = t.pieces[ids[i]]; /* (byte tokens such as <0x2E> spell digits too) */
            if (t.types[ids[i]] == 1 && has_digit(s)) { digits++; dig_ids += strlen(s) == 1; }
        }
        CHECK(digits == 10 && dig_ids == 10, "%d digit tokens, %d single digits (want 10, 10)", digits, dig_ids);
        int merged_digits = 0;
        for (int i = BPE_N_FIXED + v.n_chars; i < v.n_vocab; i++) merged_digits += has_digit(v.pieces[i]);
        CHECK(!merged_digits, "%d merged pieces hold a digit", merged_digits);
        tokenizer_free(&t);
    }
    bpe_free(&v);
    free(gen);
}

static void test_bpe_deterministic(void) {
    BpeVocab a, b;
    if (!vocab_ok(&a, 540, corpus, sizeof corpus - 1)) return;
    if (!vocab_ok(&b, 540, corpus, sizeof corpus - 1)) { bpe_free(&a); return; }
    int same = a.n_vocab == b.n_vocab && a.n_merges == b.n_merges;
    for (int i = 0; same && i < a.n_vocab; i++)
        same = !strcmp(a.pieces[i], b.pieces[i]) && a.scores[i] == b.scores[i] && a.types[i] == b.types[i];
    CHECK(same, "two trainings differ");
    /* a smaller vocabulary is a prefix of a larger one: training only ever appends */
    BpeVocab c;
    if (vocab_ok(&c, 450, corpus, sizeof corpus - 1)) {
        int prefix = c.n_vocab == 450;
        for (int i = 0; prefix && i < 450; i++) prefix = !strcmp(a.pieces[i], c.pieces[i]) && (i < BPE_N_FIXED + a.n_chars || a.scores[i] == c.scores[i]);
        CHECK(prefix, "vocabulary 450 is not a prefix of vocabulary 540");
        bpe_free(&c);
    }
    bpe_free(&a); bpe_free(&b);
}

static void test_bpe_errors(void) {
    BpeVocab v;
    char err[256];
    struct { const char *text; size_t len; int vocab; } bad[] = {
        {"", 0, 1000}, {NULL, 5, 1000}, {corpus, sizeof corpus - 1, 258}, {corpus, sizeof corpus - 1, -1},
        {"abcabc", 6, 261}, /* 3 characters need 262 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(err, 0, sizeof err);
        memset(&v, 0x5A, sizeof v);
        int r = bpe_train(bad[i].text, bad[i].len, bad[i].vocab, &v, err);
        CHECK(r == -1 && err[0] && !strchr(err, '\n') && v.pieces == NULL && v.n_vocab == 0, "case %zu: r %d, err \"%s\"", i, r, err);
    }
    CHECK(bpe_train("x", 1, 1000, NULL, err) == -1, "no output");
    /* exactly the fixed tokens plus the characters: no room for merges, still fine */
    CHECK(bpe_train("abcabc", 6, 262, &v, err) == 0 && v.n_vocab == 262 && v.n_merges == 0, "vocab 262: %d", v.n_vocab);
    bpe_free(&v);
    /* the corpus runs out of pairs seen twice: fewer tokens than asked for */
    CHECK(bpe_train("abab abab", 9, 4096, &v, err) == 0 && v.n_vocab > 262 && v.n_vocab < 4096, "small corpus: %d", v.n_vocab);
    bpe_free(&v);
    /* rare characters, NUL, invalid UTF-8 and text that spells special pieces: no piece for them */
    static const char odd[] = "<s> <s> <0x41> <0x41> \0\0 \xC3\xC3 \xC3\xA9\xC3\xA9 <s> <0x41>\n<s>\n<s>\n<unk>\n<unk>\n</s>\n</s>";
    CHECK(bpe_train(odd, sizeof odd - 1, 4096, &v, err) == 0, "odd text: %s", err);
    int bad_piece = 0;
    for (int i = BPE_N_FIXED; i < v.n_vocab; i++)
        bad_piece += !strcmp(v.pieces[i], "<s>") || !strcmp(v.pieces[i], "</s>") || !strcmp(v.pieces[i], "<unk>") || !v.pieces[i][0] ||
                     ((unsigned char)v.pieces[i][0] == 0xC3 && v.pieces[i][1] != (char)0xA9);
    CHECK(!bad_piece, "%d pieces spell a special, are empty or hold invalid UTF-8", bad_piece);
    bpe_free(&v);
}

static void test_bpe_gguf(void) {
    BpeVocab v;
    if (!vocab_ok(&v, 520, corpus, sizeof corpus - 1)) return;
    char path[512], err[GGUF_ERR] = "";
    snprintf(path, sizeof path, "%s/bpe-%ld.gguf", test_tmp_dir, (long)getpid());
    GgufWriter w;
    gguf_w_init(&w);
    Tokenizer written;
    if (!load(&written, &v)) { gguf_w_free(&w); bpe_free(&v); return; }
    tokenizer_write_gguf(&written, &w);
    tokenizer_free(&written);
    int r = gguf_w_write(&w, path, err);
    gguf_w_free(&w);
    CHECK(r == 0, "write: %s", err);
    Gguf g;
    if (r || gguf_open(&g, path, err)) { CHECK(0, "open: %s", err); bpe_free(&v); return; }
    /* the keys and calls of model.c's load_tokenizer */
    GgufStr kind = {0};
    uint64_t n = 0, ns = 0, nt = 0;
    const void *elems = NULL, *scores = NULL, *types = NULL;
    int64_t bos = -1, eos = -1, unk = -1;
    int prefix = 0;
    CHECK(gguf_get_str(&g, "tokenizer.ggml.model", &kind, err) == 1 && gguf_str_eq(kind, "llama"), "model");
    CHECK(gguf_get_array(&g, "tokenizer.ggml.tokens", GGUF_STRING, &n, &elems, err) == 1 && n == 520, "tokens %llu", (unsigned long long)n);
    CHECK(gguf_get_array(&g, "tokenizer.ggml.scores", GGUF_F32, &ns, &scores, err) == 1 && ns == n, "scores");
    CHECK(gguf_get_array(&g, "tokenizer.ggml.token_type", GGUF_I32, &nt, &types, err) == 1 && nt == n, "types");
    CHECK(gguf_get_int(&g, "tokenizer.ggml.bos_token_id", 0, 519, &bos, err) == 1 && bos == 1, "bos");
    CHECK(gguf_get_int(&g, "tokenizer.ggml.eos_token_id", 0, 519, &eos, err) == 1 && eos == 2, "eos");
    CHECK(gguf_get_int(&g, "tokenizer.ggml.unknown_token_id", 0, 519, &unk, err) == 1 && unk == 0, "unk");
    CHECK(gguf_get_bool(&g, "tokenizer.ggml.add_space_prefix", &prefix, err) == 1 && prefix == 1, "add_space_prefix");
    if (n == 520 && ns == n && nt == n) {
        const char *ptrs[520];
        uint64_t lens[520];
        float sc[520];
        int32_t ty[520];
        gguf_string_array(elems, n, ptrs, lens);
        memcpy(sc, scores, sizeof sc);
        memcpy(ty, types, sizeof ty);
        int same = 1;
        for (int i = 0; i < 520; i++)
            same &= lens[i] == strlen(v.pieces[i]) && !memcmp(ptrs[i], v.pieces[i], lens[i]) && sc[i] == v.scores[i] && ty[i] == v.types[i];
        CHECK(same, "read-back vocabulary differs");
        Tokenizer t, direct;
        CHECK(tokenizer_init(&t, TOK_SPM, (int)n, ptrs, lens, sc, ty, (int)bos, (int)eos, (int)unk, prefix, err) == 0, "init: %s", err);
        if (load(&direct, &v)) {
            int a[2048], b[2048];
            int na = tokenizer_encode(&t, heldout, sizeof heldout - 1, 1, a, 2048);
            int nb = tokenizer_encode(&direct, heldout, sizeof heldout - 1, 1, b, 2048);
            CHECK(na == nb && na > 0 && na <= 2048 && !memcmp(a, b, (size_t)na * sizeof *a), "encodings differ: %d vs %d", na, nb);
            tokenizer_free(&direct);
        }
        tokenizer_free(&t);
    }
    gguf_close(&g);
    unlink(path);
    bpe_free(&v);
}

void suite_bpe(void) {
    RUN(test_bpe_tiny);
    RUN(test_bpe_layout);
    RUN(test_bpe_runtime_reproduces_merges);
    RUN(test_bpe_roundtrip);
    RUN(test_bpe_digits);
    RUN(test_bpe_deterministic);
    RUN(test_bpe_errors);
    RUN(test_bpe_gguf);
}
