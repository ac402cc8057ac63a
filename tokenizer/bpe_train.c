/* BPE trainer (see bpe_train.h for what it produces and why).

   Shape of the work: the text is normalised once, cut into words and the unique words counted in a
   hash map (Brown, 5.4 MB: 0.92M words, 84k unique). Each unique word becomes an array of symbol ids.
   Every adjacent pair has a count (summed over words, weighted by word frequency) and a list of the
   words it occurs in. A merge of (a, b) into z only touches the words on (a, b)'s list: their pairs
   are subtracted, the word is rewritten left to right, and its pairs added back. Only pairs with z are
   new, and only their counts can go up (every other adjacency after the merge existed before it), so
   a max-heap with lazy entries finds the best pair: an entry whose count is out of date is pushed
   again with the current count, and the new pairs are pushed once at the end of each merge. */
#include "tokenizer/bpe_train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#define SPACE_MARK "\xE2\x96\x81"

/* ---- hash map from byte strings (not owned) to a count and an id ---- */
typedef struct { const char *s; int len, id; long long count; } Slot;
typedef struct { Slot *a; size_t cap, n; } StrMap;

static uint64_t hash_bytes(const char *s, int len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The slot of s, created (count 0, id -1) when add is set; NULL when absent or out of memory. */
static Slot *map_find(StrMap *m, const char *s, int len, int add) {
    if (add && 2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        Slot *a = calloc(cap, sizeof *a);
        if (!a) return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->a[i].s) continue;
            size_t j = hash_bytes(m->a[i].s, m->a[i].len) & (cap - 1);
            while (a[j].s) j = (j + 1) & (cap - 1);
            a[j] = m->a[i];
        }
        free(m->a);
        m->a = a; m->cap = cap;
    }
    if (!m->cap) return NULL;
    size_t i = hash_bytes(s, len) & (m->cap - 1);
    for (; m->a[i].s; i = (i + 1) & (m->cap - 1))
        if (m->a[i].len == len && memcmp(m->a[i].s, s, (size_t)len) == 0) return &m->a[i];
    if (!add) return NULL;
    m->n++;
    m->a[i] = (Slot){s, len, -1, 0};
    return &m->a[i];
}

/* Characters that never join a merge: digits (numbers stay one token per digit) and C0/DEL/C1
   controls (a piece never holds '\n' with anything else). */
static int never_merges(const char *s, int len) {
    unsigned char c = (unsigned char)s[0];
    if (len == 1) return (c >= '0' && c <= '9') || c < 0x20 || c == 0x7F;
    return len == 2 && c == 0xC2 && (unsigned char)s[1] < 0xA0;
}

/* ---- trainer state ---- */
typedef struct { int *sym; int n; long long count; } Word;
typedef struct { int a, b; long long count; int *words, nw, cw; unsigned char banned, dirty; } Pair;
typedef struct { long long count; int pair; } Entry;
typedef struct { uint64_t key; int val; } PairSlot; /* key 0: empty */

typedef struct {
    struct { char *s; int len; } *sym; int n_sym, cap_sym; /* characters, then merged pieces */
    int32_t (*merges)[2]; int n_merges, cap_merges;
    StrMap pieces;                              /* every piece string, to refuse duplicates */
    Word *words; int n_words; int *stamp;
    Pair *pairs; int n_pairs, cap_pairs;
    PairSlot *pmap; size_t pcap, pn;            /* (a, b) -> pair index */
    Entry *heap; int nh, ch;
    int *dirty; int nd, cd;
    int oom;
} Trainer;

/* Room for need elements of elem bytes in the array whose pointer is at pp (capacity *cap); 0 or -1.
   The pointer goes through memcpy so that one helper serves every element type without aliasing it. */
static int grow(void *pp, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p;
    memcpy(&p, pp, sizeof p);
    if (!(p = realloc(p, (size_t)c * elem))) return -1;
    memcpy(pp, &p, sizeof p);
    *cap = c;
    return 0;
}

/* Index of pair (a, b), created when add is set; -1 when absent or out of memory. */
static int pair_find(Trainer *t, int a, int b, int add) {
    if (add && 2 * (t->pn + 1) > t->pcap) {
        size_t cap = t->pcap ? 2 * t->pcap : 4096;
        PairSlot *m = calloc(cap, sizeof *m);
        if (!m) return t->oom = 1, -1;
        for (size_t i = 0; i < t->pcap; i++) {
            if (!t->pmap[i].key) continue;
            size_t j = hash_bytes((const char *)&t->pmap[i].key, 8) & (cap - 1);
            while (m[j].key) j = (j + 1) & (cap - 1);
            m[j] = t->pmap[i];
        }
        free(t->pmap);
        t->pmap = m; t->pcap = cap;
    }
    if (!t->pcap) return -1;
    uint64_t key = (uint64_t)(a + 1) << 32 | (uint32_t)b; /* never 0, which marks an empty slot */
    size_t i = hash_bytes((const char *)&key, 8) & (t->pcap - 1);
    for (; t->pmap[i].key; i = (i + 1) & (t->pcap - 1))
        if (t->pmap[i].key == key) return t->pmap[i].val;
    if (!add) return -1;
    if (grow(&t->pairs, &t->cap_pairs, t->n_pairs + 1, sizeof *t->pairs)) return t->oom = 1, -1;
    t->pairs[t->n_pairs] = (Pair){.a = a, .b = b};
    t->pmap[i].key = key; t->pmap[i].val = t->n_pairs; t->pn++;
    return t->n_pairs++;
}

/* Adds delta occurrences of (a, b) in word w. A pair with the new symbol z (every pair when z < 0)
   records w in its word list and is queued for the heap. */
static void pair_add(Trainer *t, int a, int b, long long delta, int w, int z) {
    int p = pair_find(t, a, b, delta > 0);
    if (p < 0) return;
    Pair *P = &t->pairs[p];
    P->count += delta;
    if (delta <= 0 || (z >= 0 && a != z && b != z)) return;
    if (!P->nw || P->words[P->nw - 1] != w) {
        if (grow(&P->words, &P->cw, P->nw + 1, sizeof *P->words)) { t->oom = 1; return; }
        P->words[P->nw++] = w;
    }
    if (!P->dirty) {
        if (grow(&t->dirty, &t->cd, t->nd + 1, sizeof *t->dirty)) { t->oom = 1; return; }
        P->dirty = 1;
        t->dirty[t->nd++] = p;
    }
}

static void word_pairs(Trainer *t, int w, int sign, int z) {
    Word *W = &t->words[w];
    for (int i = 0; i + 1 < W->n; i++) pair_add(t, W->sym[i], W->sym[i + 1], sign * W->count, w, z);
}

/* Byte i of the concatenation of symbols a and b, or -1 past its end. */
static int concat_byte(const Trainer *t, int a, int b, int i) {
    if (i < t->sym[a].len) return (unsigned char)t->sym[a].s[i];
    i -= t->sym[a].len;
    return i < t->sym[b].len ? (unsigned char)t->sym[b].s[i] : -1;
}

/* Heap order: higher count first, then the lexicographically smaller concatenation, then the lower
   pair index (two pairs can spell the same string), so the merge order is fully deterministic. */
static int before(const Trainer *t, Entry x, Entry y) {
    if (x.count != y.count) return x.count > y.count;
    const Pair *p = &t->pairs[x.pair], *q = &t->pairs[y.pair];
    for (int i = 0;; i++) {
        int c = concat_byte(t, p->a, p->b, i), d = concat_byte(t, q->a, q->b, i);
        if (c != d) return c < d;
        if (c < 0) return x.pair < y.pair;
    }
}

static void heap_push(Trainer *t, long long count, int pair) {
    if (grow(&t->heap, &t->ch, t->nh + 1, sizeof *t->heap)) { t->oom = 1; return; }
    Entry e = {count, pair};
    int i = t->nh++;
    for (; i > 0 && before(t, e, t->heap[(i - 1) / 2]); i = (i - 1) / 2) t->heap[i] = t->heap[(i - 1) / 2];
    t->heap[i] = e;
}

static Entry heap_pop(Trainer *t) {
    Entry top = t->heap[0], last = t->heap[--t->nh];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= t->nh) break;
        if (c + 1 < t->nh && before(t, t->heap[c + 1], t->heap[c])) c++;
        if (!before(t, t->heap[c], last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (t->nh) t->heap[i] = last;
    return top;
}

static void flush_dirty(Trainer *t) {
    for (int i = 0; i < t->nd; i++) {
        Pair *P = &t->pairs[t->dirty[i]];
        P->dirty = 0;
        if (P->count >= BPE_MIN_PAIR_COUNT) heap_push(t, P->count, t->dirty[i]);
    }
    t->nd = 0;
}

/* The most frequent pair, or -1 when none is left that occurs often enough. */
static int best_pair(Trainer *t) {
    while (t->nh && !t->oom) {
        Entry e = heap_pop(t);
        const Pair *P = &t->pairs[e.pair];
        if (P->banned || P->count < BPE_MIN_PAIR_COUNT) continue;
        if (P->count == e.count) return e.pair;
        heap_push(t, P->count, e.pair); /* out of date: counts only fell since it was pushed */
    }
    return -1;
}

static int add_symbol(Trainer *t, const char *s, int len) {
    char *copy = malloc((size_t)len + 1);
    if (copy) { memcpy(copy, s, (size_t)len); copy[len] = '\0'; }
    if (!copy || grow(&t->sym, &t->cap_sym, t->n_sym + 1, sizeof *t->sym) || !map_find(&t->pieces, copy, len, 1)) {
        free(copy);
        return t->oom = 1, -1;
    }
    t->sym[t->n_sym].s = copy;
    t->sym[t->n_sym].len = len;
    return t->n_sym++;
}

/* Merges (a, b) into a new symbol everywhere. 0 done, 1 refused (its string is already a piece or
   too long: the pair is banned for good), -1 out of memory. */
static int merge(Trainer *t, int p) {
    int a = t->pairs[p].a, b = t->pairs[p].b, la = t->sym[a].len, lb = t->sym[b].len;
    char buf[2 * BPE_MAX_PIECE];
    if (la + lb > BPE_MAX_PIECE) { t->pairs[p].banned = 1; return 1; }
    memcpy(buf, t->sym[a].s, (size_t)la);
    memcpy(buf + la, t->sym[b].s, (size_t)lb);
    if (map_find(&t->pieces, buf, la + lb, 0)) { t->pairs[p].banned = 1; return 1; }
    if (grow(&t->merges, &t->cap_merges, t->n_merges + 1, sizeof *t->merges)) return t->oom = 1, -1;
    int z = add_symbol(t, buf, la + lb);
    if (z < 0) return -1;
    t->merges[t->n_merges][0] = a; t->merges[t->n_merges][1] = b; t->n_merges++;
    /* the list of (a, b) does not change below: every pair added involves z */
    int *list = t->pairs[p].words, nw = t->pairs[p].nw;
    for (int k = 0; k < nw; k++) {
        int w = list[k];
        if (t->stamp[w] == z) continue; /* listed twice */
        t->stamp[w] = z;
        Word *W = &t->words[w];
        word_pairs(t, w, -1, z);
        int n = 0;
        for (int i = 0; i < W->n; i++) { /* left to right, like the runtime's leftmost-first ties */
            if (i + 1 < W->n && W->sym[i] == a && W->sym[i + 1] == b) { W->sym[n++] = z; i++; }
            else W->sym[n++] = W->sym[i];
        }
        W->n = n;
        word_pairs(t, w, +1, z);
    }
    free(t->pairs[p].words);
    t->pairs[p].words = NULL; t->pairs[p].nw = t->pairs[p].cw = 0;
    flush_dirty(t);
    return t->oom ? -1 : 0;
}

static void trainer_free(Trainer *t) {
    for (int i = 0; i < t->n_sym; i++) free(t->sym[i].s);
    for (int i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->sym); free(t->merges); free(t->pieces.a); free(t->stamp); free(t->pairs); free(t->pmap); free(t->heap); free(t->dirty);
    if (t->words) free(t->words[0].sym); /* the pool every word points into */
    free(t->words);
}

static int fail(char *err, const char *fmt, long long x, long long y, long long z) {
    if (err) snprintf(err, 256, fmt, x, y, z);
    return -1;
}

/* characters by falling count, then by bytes, so the layout is deterministic */
static int cmp_chars(const void *pa, const void *pb) {
    const Slot *a = *(Slot *const *)pa, *b = *(Slot *const *)pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    int c = memcmp(a->s, b->s, (size_t)(a->len < b->len ? a->len : b->len));
    return c ? c : a->len - b->len;
}

int bpe_train(const char *text, size_t len, int vocab_size, BpeVocab *out, char *err) {
    if (!out) return fail(err, "bpe_train: no output vocabulary", 0, 0, 0);
    memset(out, 0, sizeof *out);
    if (!text || !len) return fail(err, "bpe_train: the training text is empty", 0, 0, 0);
    if (len > INT_MAX / 3 - 1) return fail(err, "bpe_train: the training text (%lld bytes) is too long", (long long)len, 0, 0);
    if (vocab_size < BPE_N_FIXED)
        return fail(err, "bpe_train: vocab_size %lld is below the %lld fixed tokens (3 specials, 256 bytes)", vocab_size, BPE_N_FIXED, 0);
    Trainer t = {0};
    StrMap chars = {0}, wmap = {0};
    Slot **kept = NULL;
    char names[BPE_N_FIXED][8] = {"<unk>", "<s>", "</s>"};
    int n = 3, rc = -1;
    char *buf = malloc(3 * len + 3);
    if (!buf) goto oom;
    /* the runtime's view of the text: a dummy-prefix space, every space as U+2581 */
    memcpy(buf, SPACE_MARK, 3);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(buf + n, SPACE_MARK, 3); n += 3; }
        else buf[n++] = text[i];
    }
    for (int i = 0, l; i < n; i += l) {
        l = tokenizer_utf8_len((const unsigned char *)buf + i, (size_t)(n - i));
        Slot *s = map_find(&chars, buf + i, l, 1);
        if (!s) goto oom;
        s->count++;
    }
    /* characters with a piece: frequent, valid UTF-8 (a lone byte >= 0x80 is not) and not NUL */
    if (!(kept = malloc(chars.n * sizeof *kept))) goto oom;
    int nk = 0;
    for (size_t i = 0; i < chars.cap; i++) {
        Slot *s = &chars.a[i];
        unsigned char c = s->s ? (unsigned char)s->s[0] : 0;
        if (s->s && s->count >= BPE_MIN_CHAR_COUNT && !(s->len == 1 && (c >= 0x80 || c == 0))) kept[nk++] = s;
    }
    qsort(kept, (size_t)nk, sizeof *kept, cmp_chars);
    if (BPE_N_FIXED + nk > vocab_size) {
        fail(err, "bpe_train: vocab_size %lld is below %lld: 259 fixed tokens and %lld characters of the text",
             vocab_size, BPE_N_FIXED + nk, nk);
        goto done;
    }
    /* special and byte names are pieces too: no merge may spell one */
    for (int i = 0; i < BPE_N_FIXED; i++) {
        if (i >= 3) snprintf(names[i], sizeof names[i], "<0x%02X>", i - 3);
        if (!map_find(&t.pieces, names[i], (int)strlen(names[i]), 1)) goto oom;
    }
    for (int i = 0; i < nk; i++) {
        kept[i]->id = i;
        if (add_symbol(&t, kept[i]->s, kept[i]->len) < 0) goto oom;
    }
    /* words: maximal runs of characters that can merge, each "▁" starting a new one */
    for (int i = 0, ws = -1, l = 0;; i += l) {
        int joins = 0, space = 0;
        if (i < n) {
            l = tokenizer_utf8_len((const unsigned char *)buf + i, (size_t)(n - i));
            joins = map_find(&chars, buf + i, l, 0)->id >= 0 && !never_merges(buf + i, l);
            space = l == 3 && memcmp(buf + i, SPACE_MARK, 3) == 0;
        }
        if (ws >= 0 && (!joins || space || i == n)) {
            Slot *w = map_find(&wmap, buf + ws, i - ws, 1);
            if (!w) goto oom;
            w->count++;
            ws = -1;
        }
        if (i == n) break;
        if (joins && ws < 0) ws = i;
    }
    size_t pool_len = 1;
    for (size_t i = 0; i < wmap.cap; i++) pool_len += wmap.a[i].s ? (size_t)wmap.a[i].len : 0;
    t.stamp = malloc((wmap.n + 1) * sizeof *t.stamp);
    if (!t.stamp || !(t.words = calloc(wmap.n + 1, sizeof *t.words)) || !(t.words[0].sym = malloc(pool_len * sizeof(int))))
        goto oom;
    int *pool = t.words[0].sym;
    for (size_t i = 0; i < wmap.cap; i++) {
        const Slot *s = &wmap.a[i];
        if (!s->s) continue;
        Word *W = &t.words[t.n_words];
        *W = (Word){pool, 0, s->count};
        for (int j = 0, l; j < s->len; j += l) {
            l = tokenizer_utf8_len((const unsigned char *)s->s + j, (size_t)(s->len - j));
            W->sym[W->n++] = map_find(&chars, s->s + j, l, 0)->id;
        }
        pool += W->n;
        t.stamp[t.n_words++] = -1;
    }
    for (int w = 0; w < t.n_words; w++) word_pairs(&t, w, +1, -1);
    flush_dirty(&t);
    if (t.oom) goto oom;
    while (t.n_sym < vocab_size - BPE_N_FIXED) {
        int p = best_pair(&t);
        if (t.oom || (p >= 0 && merge(&t, p) < 0)) goto oom;
        if (p < 0) break;
    }
    /* the vocabulary: specials, bytes, characters, merges; symbol s is token BPE_N_FIXED + s */
    int nv = BPE_N_FIXED + t.n_sym;
    out->pieces = calloc((size_t)nv, sizeof *out->pieces);
    out->scores = calloc((size_t)nv, sizeof *out->scores);
    out->types = malloc((size_t)nv * sizeof *out->types);
    out->merges = malloc(((size_t)t.n_merges + 1) * sizeof *out->merges);
    out->n_vocab = nv;
    if (!out->pieces || !out->scores || !out->types || !out->merges) goto oom;
    for (int i = 0; i < BPE_N_FIXED; i++) {
        if (!(out->pieces[i] = malloc(8))) goto oom;
        memcpy(out->pieces[i], names[i], 8);
        out->types[i] = i == 0 ? 2 : i < 3 ? 3 : 6;
    }
    for (int s = 0; s < t.n_sym; s++) {
        out->pieces[BPE_N_FIXED + s] = t.sym[s].s;
        t.sym[s].s = NULL;
        out->types[BPE_N_FIXED + s] = 1;
        /* merge k scores -k; characters come after the last merge, most frequent first */
        out->scores[BPE_N_FIXED + s] = s < nk ? -(float)(t.n_merges + s) : -(float)(s - nk);
    }
    for (int k = 0; k < t.n_merges; k++)
        for (int j = 0; j < 2; j++) out->merges[k][j] = BPE_N_FIXED + t.merges[k][j];
    out->bos = 1; out->eos = 2; out->unk = 0;
    out->n_chars = nk; out->n_merges = t.n_merges;
    rc = 0;
    goto done;
oom:
    bpe_free(out);
    fail(err, "bpe_train: out of memory (text of %lld bytes, vocab_size %lld)", (long long)len, vocab_size, 0);
done:
    free(buf); free(chars.a); free(wmap.a); free(kept);
    trainer_free(&t);
    return rc;
}

void bpe_free(BpeVocab *v) {
    if (v->pieces)
        for (int i = 0; i < v->n_vocab; i++) free(v->pieces[i]);
    free(v->pieces); free(v->scores); free(v->types); free(v->merges);
    memset(v, 0, sizeof *v);
}

int bpe_tokenizer(const BpeVocab *v, Tokenizer *t, char *err) {
    uint64_t *lens = malloc((size_t)v->n_vocab * sizeof *lens);
    if (!lens) { snprintf(err, 256, "out of memory"); return -1; }
    for (int i = 0; i < v->n_vocab; i++) lens[i] = strlen(v->pieces[i]);
    int r = tokenizer_init(t, TOK_SPM, v->n_vocab, (const char *const *)v->pieces, lens, v->scores, v->types, v->bos, v->eos,
                           v->unk, 1, err);
    free(lens);
    return r;
}
