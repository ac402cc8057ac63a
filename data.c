/* Data for training and evaluation: RNG, corpus with sentence index, token streams, passkey examples,
   training batches. The format is documented in data.h. */
#include "data.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Passkey-style filler (Mohtashami & Jaggi), one period. Repetitions are joined by spaces, so each
   period starts with the space that separates it from the previous one. */
static const char FILLER[] = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

static int fail(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, 256, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- RNG: splitmix64 (Steele, Lea, Flood 2014), the seeding generator of xoshiro ---- */

void rng_seed(Rng *r, uint64_t seed) { r->s = seed; }

uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(Rng *r, uint64_t n) {
    if (!n) return 0;
    uint64_t lim = -n % n; /* 2^64 mod n: rejecting draws below it leaves a multiple of n values */
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x >= lim) return x % n;
    }
}

/* ---- Corpus ---- */

/* Bytes outside well-formed UTF-8 (the tokenizer's own rule). */
static size_t utf8_invalid(const unsigned char *s, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        int len = tokenizer_utf8_len(s + i, n - i);
        bad += len == 1 && s[i] >= 0x80;
        i += (size_t)len;
    }
    return bad;
}

/* See data.h. The boundary is the space, not the letter after it, because SentencePiece pieces carry
   their leading space: "▁The" starts at the space. */
static int is_boundary(const char *t, size_t b) {
    if (b == 0 || t[b] == '\n') return 1;
    if (t[b] != ' ') return 0;
    char p = t[b - 1];
    if (b >= 2 && (p == '"' || p == '\'' || p == ')')) p = t[b - 2];
    return p == '.' || p == '?' || p == '!';
}

/* Takes ownership of buf (len bytes + room for a NUL) and indexes it. */
static int corpus_take(Corpus *c, char *buf, size_t len, char *err) {
    buf[len] = '\0';
    c->text = buf;
    c->len = len;
    size_t n = 0;
    for (size_t b = 0; b < len; b++) n += (size_t)is_boundary(buf, b);
    if (!(c->sent = malloc(n * sizeof *c->sent))) { corpus_free(c); return fail(err, "corpus: out of memory"); }
    for (size_t b = 0; b < len; b++)
        if (is_boundary(buf, b)) c->sent[c->n_sent++] = b;
    c->n_invalid = utf8_invalid((const unsigned char *)buf, len);
    return 0;
}

int corpus_init(Corpus *c, const char *text, size_t len, char *err) {
    memset(c, 0, sizeof *c);
    if (!len) return fail(err, "corpus: empty text");
    char *buf = malloc(len + 1);
    if (!buf) return fail(err, "corpus: out of memory (%zu bytes)", len);
    memcpy(buf, text, len);
    return corpus_take(c, buf, len, err);
}

int corpus_load(Corpus *c, const char *path, char *err) {
    memset(c, 0, sizeof *c);
    char name[160]; /* the path for messages: shortened, control characters shown as '?' (one line) */
    snprintf(name, sizeof name, "%s", path);
    for (char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F) *p = '?';
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, "corpus: cannot open %s: %s", name, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int e = 0;
    for (;;) { /* read to EOF in growing chunks: no seeking, so pipes work too */
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : (size_t)1 << 16;
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) { free(buf); fclose(f); return fail(err, "corpus: out of memory reading %s", name); }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (!got) { e = ferror(f) ? errno : 0; break; }
    }
    fclose(f);
    if (e) { free(buf); return fail(err, "corpus: cannot read %s: %s", name, strerror(e)); }
    if (!len) { free(buf); return fail(err, "corpus: %s is empty", name); }
    return corpus_take(c, buf, len, err); /* len < cap: the loop only stops after a read with room */
}

void corpus_free(Corpus *c) {
    free(c->text);
    free(c->sent);
    memset(c, 0, sizeof *c);
}

/* ---- Token streams ---- */

int corpus_tokenize(const Corpus *c, const Tokenizer *tok, Tokens *out, char *err) {
    memset(out, 0, sizeof *out);
    size_t cap = c->len;
    out->ids = malloc(cap * sizeof *out->ids);
    out->sent = malloc(c->n_sent * sizeof *out->sent);
    if (!out->ids || !out->sent) { tokens_free(out); return fail(err, "corpus: out of memory tokenizing"); }
    out->n_sent = c->n_sent;
    if (tok->kind == TOK_BYTES) {
        for (size_t i = 0; i < c->len; i++) out->ids[i] = (unsigned char)c->text[i];
        memcpy(out->sent, c->sent, c->n_sent * sizeof *out->sent);
        out->n = c->len;
        return 0;
    }
    Tokenizer raw = *tok; /* the dummy prefix belongs to a prompt's start, not to every sentence */
    raw.add_space_prefix = 0;
    for (size_t i = 0; i < c->n_sent; i++) {
        size_t start = c->sent[i], end = i + 1 < c->n_sent ? c->sent[i + 1] : c->len;
        for (;;) { /* a "▁" without a piece falls back to 3 byte tokens, so a sentence may outgrow cap */
            size_t room = cap - out->n;
            int k = tokenizer_encode(&raw, c->text + start, end - start, 0, out->ids + out->n,
                                     room > INT_MAX ? INT_MAX : (int)room);
            if (k < 0) { tokens_free(out); return fail(err, "corpus: the text at byte %zu cannot be encoded", start); }
            if ((size_t)k <= room) { out->sent[i] = out->n; out->n += (size_t)k; break; }
            size_t ncap = 2 * cap + (size_t)k;
            int *ids = realloc(out->ids, ncap * sizeof *ids);
            if (!ids) { tokens_free(out); return fail(err, "corpus: out of memory tokenizing"); }
            out->ids = ids;
            cap = ncap;
        }
    }
    return 0;
}

void tokens_free(Tokens *t) {
    free(t->ids);
    free(t->sent);
    memset(t, 0, sizeof *t);
}

long long tokens_window(const Tokens *s, size_t n, Rng *rng, int *out) {
    if (n > s->n) return -1;
    size_t start = (size_t)rng_below(rng, s->n - n + 1);
    if (n) memcpy(out, s->ids + start, n * sizeof *out);
    return (long long)start;
}

size_t tokens_render(const Tokenizer *tok, const int *ids, size_t n, char *out, size_t cap) {
    size_t len = 0;
    char piece[4100], esc[8];
    for (size_t i = 0; i < n; i++) {
        int k = tokenizer_decode(tok, i ? ids[i - 1] : -1, ids[i], piece, (int)sizeof piece);
        for (int j = 0; j < k; j++) {
            unsigned char b = (unsigned char)piece[j];
            int m = 1;
            if (b < 0x20 && b != '\n' && b != '\t') m = snprintf(esc, sizeof esc, "<0x%02X>", b);
            else esc[0] = (char)b;
            for (int q = 0; q < m; q++, len++)
                if (len + 1 < cap) out[len] = esc[q];
        }
    }
    if (cap) out[len < cap ? len : cap - 1] = '\0';
    return len;
}

/* ---- Passkey examples ---- */

/* Encodes a fixed piece of text, plus MARK on its own, without the dummy prefix. */
static int fragment(const Tokenizer *raw, const char *s, int marker, int *ids, int *n, char *err) {
    int k = tokenizer_encode(raw, s, strlen(s), 0, ids, PK_FRAG_MAX - 1);
    if (k < 0 || k > PK_FRAG_MAX - 1) return fail(err, "passkey: cannot encode \"%s\" in %d tokens", s, PK_FRAG_MAX - 1);
    if (marker && tokenizer_encode(raw, "\x01", 1, 0, ids + k++, 1) != 1)
        return fail(err, "passkey: the marker byte 0x01 is not a single token");
    *n = k;
    return 0;
}

int passkey_init(Passkey *pk, const Tokenizer *tok, const Tokens *corpus, int marker, char *err) {
    memset(pk, 0, sizeof *pk);
    pk->corpus = corpus;
    pk->marker = marker;
    Tokenizer raw = *tok;
    raw.add_space_prefix = 0;
    for (int d = 0; d < 10; d++) {
        char c = (char)('0' + d);
        if (tokenizer_encode(&raw, &c, 1, 0, &pk->digit[d], 1) != 1)
            return fail(err, "passkey: digit %d is not a single token", d);
    }
    /* Keys are built from digit tokens; if a piece could merge a digit with anything, the text of an
       example would encode differently from the ids used here. */
    for (int i = 0; tok->kind == TOK_SPM && i < tok->n_vocab; i++) {
        int t = tok->types[i];
        /* unknown, control, unused and byte pieces are never the result of a merge */
        if (t == 2 || t == 3 || t == 5 || t == 6 || tok->piece_len[i] < 2) continue;
        for (int j = 0; j < tok->piece_len[i]; j++)
            if (tok->pieces[i][j] >= '0' && tok->pieces[i][j] <= '9')
                return fail(err, "passkey: vocabulary piece %d has a digit and more: keys need one token per digit", i);
    }
    if (fragment(&raw, " The pass key is ", marker, pk->needle, &pk->n_needle, err) ||
        fragment(&raw, ".", 0, pk->dot, &pk->n_dot, err) ||
        fragment(&raw, " What is the pass key? The pass key is ", marker, pk->question, &pk->n_question, err))
        return -1;
    pk->overhead = pk->n_needle + 5 + pk->n_dot + pk->n_question + 5;
    pk->min_distance = 5 + pk->n_dot + pk->n_question;
    Corpus fc;
    if (corpus_init(&fc, FILLER, sizeof FILLER - 1, err)) return -1;
    int r = corpus_tokenize(&fc, tok, &pk->filler, err);
    corpus_free(&fc);
    return r;
}

void passkey_free(Passkey *pk) {
    tokens_free(&pk->filler);
    memset(pk, 0, sizeof *pk);
}

/* Haystack length H for T tokens, or -1 with err. */
static int hay_len(const Passkey *pk, int hay, int T, char *err) {
    if (hay != HAY_FILLER && hay != HAY_CORPUS) return fail(err, "passkey: unknown haystack %d", hay);
    if (T < pk->overhead)
        return fail(err, "passkey: T = %d is shorter than the needle and question (%d tokens)", T, pk->overhead);
    int H = T - pk->overhead;
    if (hay == HAY_CORPUS && (!pk->corpus || pk->corpus->n < (size_t)H))
        return fail(err, "passkey: the corpus haystack needs %d tokens, the corpus has %zu", H,
                    pk->corpus ? pk->corpus->n : (size_t)0);
    return H;
}

/* src[from + i] for i < n, wrapping at period (the filler) or not (period 0, a corpus span). */
static int *put_hay(int *dst, const int *src, size_t period, size_t from, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[period ? (from + i) % period : from + i];
    return dst + n;
}

static int *put(int *dst, const int *src, int n) {
    memcpy(dst, src, (size_t)n * sizeof *dst);
    return dst + n;
}

/* First index i with a[i] >= x (n if none). */
static size_t lower_bound(const size_t *a, size_t n, size_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* One example with the needle after exactly P of H haystack tokens. Rather than cutting a random span
   and walking the needle back to a sentence start (gkamradt), a sentence boundary is drawn first and
   the span placed so that the boundary falls at P: depth stays exact even when H is only a couple of
   sentences long (at L = 256, Brown's ~100-byte sentences would move a depth-0.5 needle to 0.17 on
   average and to the very start a third of the time). */
static int build(const Passkey *pk, int hay, int T, int H, int P, Rng *rng, int *ids, PasskeyInfo *info, char *err) {
    const Tokens *src = hay == HAY_FILLER ? &pk->filler : pk->corpus;
    size_t period = 0, start;
    if (hay == HAY_FILLER) { /* periodic: any of its boundaries, shifted back by P modulo the period */
        period = src->n;
        start = (src->sent[rng_below(rng, src->n_sent)] + period - (size_t)P % period) % period;
    } else { /* boundaries b with b - P >= 0 and b - P + H <= n */
        size_t lo = lower_bound(src->sent, src->n_sent, (size_t)P);
        size_t hi = lower_bound(src->sent, src->n_sent, src->n - (size_t)H + (size_t)P + 1);
        if (lo >= hi)
            return fail(err, "passkey: no sentence boundary of the corpus can sit after %d of %d haystack tokens", P, H);
        start = src->sent[lo + rng_below(rng, hi - lo)] - (size_t)P;
    }
    int key[5];
    for (int i = 0; i < 5; i++) {
        int d = (int)rng_below(rng, 10);
        key[i] = pk->digit[d];
        info->digits[i] = (char)('0' + d);
    }
    info->digits[5] = '\0';
    int *p = put_hay(ids, src->ids, period, start, (size_t)P);
    p = put(p, pk->needle, pk->n_needle);
    p = put(p, key, 5);
    p = put(p, pk->dot, pk->n_dot);
    p = put_hay(p, src->ids, period, start + (size_t)P, (size_t)(H - P));
    p = put(p, pk->question, pk->n_question);
    put(p, key, 5);
    info->len = T;
    info->haystack = hay;
    info->hay_len = H;
    info->hay_start = start;
    info->needle = P;
    info->key = P + pk->n_needle;
    info->question = T - 5 - pk->n_question;
    info->answer = T - 5;
    return 0;
}

int passkey_at_depth(const Passkey *pk, int hay, int T, double depth, Rng *rng, int *ids, PasskeyInfo *info,
                     char *err) {
    int H = hay_len(pk, hay, T, err);
    if (H < 0) return -1;
    if (!(depth >= 0 && depth <= 1)) return fail(err, "passkey: depth %g outside [0, 1]", depth);
    return build(pk, hay, T, H, (int)floor(depth * H), rng, ids, info, err);
}

int passkey_at_distance(const Passkey *pk, int hay, int T, int distance, Rng *rng, int *ids, PasskeyInfo *info,
                        char *err) {
    int H = hay_len(pk, hay, T, err);
    if (H < 0) return -1;
    if (distance < pk->min_distance || distance - pk->min_distance > H)
        return fail(err, "passkey: distance %d outside [%d, %d] at T = %d", distance, pk->min_distance,
                    pk->min_distance + H, T);
    return build(pk, hay, T, H, H - (distance - pk->min_distance), rng, ids, info, err);
}

/* ---- Training batches ---- */

/* Redraws both copies of an example's key from two distinct random digits. */
static void repeat_key(const Passkey *pk, int *ids, PasskeyInfo *info, Rng *rng) {
    int pair[2];
    pair[0] = (int)rng_below(rng, 10);
    pair[1] = (pair[0] + 1 + (int)rng_below(rng, 9)) % 10;
    for (int i = 0; i < 5; i++) {
        int d = pair[rng_below(rng, 2)];
        ids[info->key + i] = ids[info->answer + i] = pk->digit[d];
        info->digits[i] = (char)('0' + d);
    }
}

int batch_fill(const Passkey *pk, const BatchSpec *spec, int B, int T, Rng *rng, int *tokens, float *weights,
               PasskeyInfo *info, char *err) {
    if (B < 1 || T < 1 || T == INT_MAX) return fail(err, "batch: B = %d or T = %d out of range", B, T);
    if (!(spec->p_passkey >= 0 && spec->p_passkey <= 1) || !(spec->p_filler >= 0 && spec->p_filler <= 1))
        return fail(err, "batch: p_passkey %g and p_filler %g must lie in [0, 1]", spec->p_passkey, spec->p_filler);
    if (spec->p_passkey < 1 && (!pk->corpus || pk->corpus->n < (size_t)T + 1))
        return fail(err, "batch: language-model rows need a corpus of at least T + 1 = %d tokens", T + 1);
    int lo = 0, n_min = 0, n_pk = 0;
    if (spec->p_passkey > 0) {
        if (T + 1 < pk->overhead)
            return fail(err, "batch: T + 1 = %d is shorter than the needle and question (%d tokens)", T + 1, pk->overhead);
        lo = spec->min_distance > pk->min_distance ? spec->min_distance : pk->min_distance;
        n_min = spec->by_depth ? pk->overhead : pk->overhead + lo - pk->min_distance;   /* shortest example with distance lo */
        if (n_min > T + 1)
            return fail(err, "batch: min_distance %d exceeds the largest distance %d at T + 1 = %d", lo,
                        pk->min_distance + T + 1 - pk->overhead, T + 1);
    }
    for (int r = 0; r < B; r++) {
        int *row = tokens + (size_t)r * (size_t)(T + 1);
        float *w = weights + (size_t)r * (size_t)T;
        PasskeyInfo tmp, *in = info ? &info[r] : &tmp;
        memset(in, 0, sizeof *in);
        if (!(rng_uniform(rng) < spec->p_passkey)) {
            tokens_window(pk->corpus, (size_t)T + 1, rng, row);
            for (int t = 0; t < T; t++) w[t] = 1.0f;
            continue;
        }
        /* The example takes n tokens, n uniform in [n_min, T + 1], and haystack text of its kind fills the
           row after it: were every example the whole row, its question would always sit at the row's end
           and a model with absolute positions would learn to answer only there (README, "The recipe
           search": the first zoo's learned-table model scored 8% on prompts one token shorter than its
           rows and 70% on prompts of its rows' length). */
        int n = n_min + (int)rng_below(rng, (uint64_t)(T + 2 - n_min));
        int hay = rng_uniform(rng) < spec->p_filler ? HAY_FILLER : HAY_CORPUS, rc;
        if (spec->by_depth) {
            rc = passkey_at_depth(pk, hay, n, rng_uniform(rng), rng, row, in, err);
        } else { /* log-uniform on [lo, hi + 1), floored: each octave of distance equally often */
            int hi = pk->min_distance + n - pk->overhead;
            double d = floor(lo * exp(rng_uniform(rng) * log((hi + 1.0) / lo)));
            rc = passkey_at_distance(pk, hay, n, d > hi ? hi : (int)d, rng, row, in, err);
        }
        if (rc) return -1;
        if (spec->p_repeat_key > 0 && rng_uniform(rng) < spec->p_repeat_key) /* no draw at 0: older recipes' batches stay */
            repeat_key(pk, row, in, rng);
        if (hay == HAY_FILLER) put_hay(row + n, pk->filler.ids, pk->filler.n, rng_below(rng, pk->filler.n), (size_t)(T + 1 - n));
        else tokens_window(pk->corpus, (size_t)(T + 1 - n), rng, row + n);
        for (int t = 0; t < T; t++) /* target t + 1: an answer digit, or haystack text before or after the example */
            w[t] = t + 1 >= n - 5 && t + 1 < n ? spec->answer_weight : spec->answer_only ? 0.0f : 1.0f;
        n_pk++;
    }
    return n_pk;
}
