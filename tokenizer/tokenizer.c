/* Tokenizer: SentencePiece-style BPE (llama2.c's encode() with GGUF "llama" conventions) and plain bytes.

   SPM encoding, as in llama2.c / llama.cpp:
     1. spaces become U+2581 ("▁"), and one "▁" is prepended when add_space_prefix is set;
     2. the text is cut into UTF-8 codepoints (each byte of an invalid sequence is its own symbol);
     3. the adjacent pair whose concatenation is a vocabulary piece with the highest score is merged,
        leftmost first on ties, until no pair is in the vocabulary;
     4. each remaining symbol becomes its piece, or its bytes as <0xXX> byte tokens.
   llama2.c rescans the whole token array for every merge (O(n^2)); here the candidate pairs sit in a
   max-heap, as in SentencePiece, which picks the same pair each step (the best score, leftmost on
   ties) in O(n log n): a 1 MB prompt encodes in well under a second.

   Round trip: decoding every id of an encoding gives the input back, with two caveats.
   - With add_space_prefix and add_bos, the first piece after BOS drops the dummy-prefix space. Without
     BOS nothing knows it is the first piece, so the decoded text starts with the prefix space.
   - A literal U+2581 in the input is indistinguishable from a space (SentencePiece has the same loss),
     and a vocabulary with no "▁" piece byte-falls-back spaces to E2 96 81, which decode as "▁". */
#include "tokenizer.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIECE_LEN 4096
#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_UNUSED = 5, TYPE_BYTE = 6 };

/* "<0xXX>" (upper-case hex, as SentencePiece writes them) -> XX, else -1 */
static int byte_piece_value(const char *s, int len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
        else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
        else return -1;
    }
    return v;
}

/* Only ordinary pieces may come out of a lookup or a merge: the text "<s>" must not become BOS, and the
   text "<0x41>" must not become the byte token for 'A'. */
static int mergeable(int32_t type) {
    return type != TYPE_UNKNOWN && type != TYPE_CONTROL && type != TYPE_UNUSED && type != TYPE_BYTE;
}

/* Sort key: piece bytes, then mergeable pieces before others with the same text, then id. A lookup
   then only has to check the first entry of a run of equal pieces. */
typedef struct { const char *str; int len, ok, id; } SortEntry;

static int cmp_bytes(const char *a, int alen, const char *b, int blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    return c ? c : (alen > blen) - (alen < blen);
}

static int cmp_entry(const void *pa, const void *pb) {
    const SortEntry *a = pa, *b = pb;
    int c = cmp_bytes(a->str, a->len, b->str, b->len);
    if (c) return c;
    if (a->ok != b->ok) return b->ok - a->ok;
    return (a->id > b->id) - (a->id < b->id);
}

/* id of the mergeable piece equal to s[0..len), or -1 */
static int lookup(const Tokenizer *t, const char *s, int len) {
    int lo = 0, hi = t->n_vocab; /* lower bound: first entry >= s */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, id = t->sorted[mid];
        if (cmp_bytes(t->pieces[id], t->piece_len[id], s, len) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == t->n_vocab) return -1;
    int id = t->sorted[lo];
    return cmp_bytes(t->pieces[id], t->piece_len[id], s, len) == 0 && mergeable(t->types[id]) ? id : -1;
}

static int fail(char *err, const char *msg, int arg) {
    if (err) snprintf(err, 256, msg, arg);
    return -1;
}

int tokenizer_init(Tokenizer *t, TokKind kind, int n_vocab, const char *const *pieces, const uint64_t *lens,
                   const float *scores, const int32_t *types, int bos, int eos, int unk, int add_space_prefix,
                   char *err) {
    memset(t, 0, sizeof *t);
    t->bos = t->eos = t->unk = -1;
    if (kind != TOK_SPM && kind != TOK_BYTES) return fail(err, "tokenizer: unknown kind %d", (int)kind);
    if (n_vocab < 1) return fail(err, "tokenizer: n_vocab %d < 1", n_vocab);
    if (kind == TOK_BYTES && n_vocab < 256) return fail(err, "tokenizer: bytes vocabulary of %d < 256 tokens", n_vocab);
    if (!pieces || !lens) return fail(err, "tokenizer: no pieces (n_vocab %d)", n_vocab);
    const int special[3] = {bos, eos, unk};
    for (int i = 0; i < 3; i++)
        if (special[i] < -1 || special[i] >= n_vocab)
            return fail(err, "tokenizer: special token id %d out of range", special[i]);
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = bos; t->eos = eos; t->unk = unk;
    t->add_space_prefix = add_space_prefix;
    t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
    t->piece_len = malloc((size_t)n_vocab * sizeof *t->piece_len);
    t->scores = malloc((size_t)n_vocab * sizeof *t->scores);
    t->types = malloc((size_t)n_vocab * sizeof *t->types);
    t->sorted = malloc((size_t)n_vocab * sizeof *t->sorted);
    SortEntry *entries = malloc((size_t)n_vocab * sizeof *entries);
    if (!t->pieces || !t->piece_len || !t->scores || !t->types || !t->sorted || !entries) {
        free(entries); tokenizer_free(t);
        return fail(err, "tokenizer: out of memory (n_vocab %d)", n_vocab);
    }
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (int i = 0; i < n_vocab; i++) {
        const char *msg = NULL;
        if (!pieces[i] && lens[i]) msg = "tokenizer: piece %d is NULL";
        else if (lens[i] > MAX_PIECE_LEN) msg = "tokenizer: piece %d is longer than 4096 bytes";
        else if (lens[i] && memchr(pieces[i], 0, (size_t)lens[i])) msg = "tokenizer: piece %d contains a NUL byte";
        else if (!(t->pieces[i] = malloc((size_t)lens[i] + 1))) msg = "tokenizer: out of memory at piece %d";
        if (msg) { free(entries); tokenizer_free(t); return fail(err, msg, i); }
        int len = (int)lens[i];
        if (len) memcpy(t->pieces[i], pieces[i], (size_t)len);
        t->pieces[i][len] = '\0';
        t->piece_len[i] = len;
        t->scores[i] = scores ? scores[i] : 0.0f;
        int b = byte_piece_value(t->pieces[i], len);
        /* without types, <0xXX> pieces are still the byte tokens */
        t->types[i] = types ? types[i] : (b >= 0 ? TYPE_BYTE : TYPE_NORMAL);
        if (t->types[i] == TYPE_BYTE && b >= 0 && t->byte_id[b] < 0) t->byte_id[b] = i;
        entries[i] = (SortEntry){t->pieces[i], len, mergeable(t->types[i]), i};
    }
    qsort(entries, (size_t)n_vocab, sizeof *entries, cmp_entry);
    for (int i = 0; i < n_vocab; i++) t->sorted[i] = entries[i].id;
    free(entries);
    return 0;
}

void tokenizer_free(Tokenizer *t) {
    if (t->pieces)
        for (int i = 0; i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces); free(t->piece_len); free(t->scores); free(t->types); free(t->sorted);
    memset(t, 0, sizeof *t);
    t->bos = t->eos = t->unk = -1;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 1 for an invalid byte: stray
   continuation bytes, C0/C1/F5-FF, overlongs, surrogates, > U+10FFFF and truncated sequences. */
int tokenizer_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 1;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return len;
}

/* A symbol is a run of the working text; merged-away symbols have len 0. */
typedef struct { int start, len, prev, next, id; } Symbol;
/* A candidate merge of symbols left and right into piece id. */
typedef struct { float score; int left, right, id; } Pair;
typedef struct { Pair *a; int n, cap; } Heap;

static int pair_before(const Pair *x, const Pair *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(Heap *h, Pair p) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 256;
        Pair *a = realloc(h->a, (size_t)cap * sizeof *a);
        if (!a) return -1;
        h->a = a; h->cap = cap;
    }
    int i = h->n++;
    for (; i > 0 && pair_before(&p, &h->a[(i - 1) / 2]); i = (i - 1) / 2) h->a[i] = h->a[(i - 1) / 2];
    h->a[i] = p;
    return 0;
}

static Pair heap_pop(Heap *h) {
    Pair top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Queue the merge of adjacent symbols l and r if their text is a piece. Adjacent symbols are
   contiguous in the working text, so the concatenation needs no copy. */
static int try_pair(const Tokenizer *t, const char *text, const Symbol *sym, int l, int r, Heap *h) {
    if (l < 0 || r < 0) return 0;
    int id = lookup(t, text + sym[l].start, sym[l].len + sym[r].len);
    return id < 0 ? 0 : heap_push(h, (Pair){t->scores[id], l, r, id});
}

static void emit(int *ids, int max_ids, int *n, int id) {
    if (*n < max_ids) ids[*n] = id;
    (*n)++;
}

static int encode_spm(const Tokenizer *t, const char *text, size_t len, int add_bos, int *ids, int max_ids) {
    if (len > (size_t)(INT_MAX - 4) / 3) return -1; /* the id count must fit an int */
    int n = 0, n_sym = 0, result = -1;
    char *buf = malloc(3 * len + 3);
    Symbol *sym = NULL;
    Heap heap = {0};
    if (!buf) goto done;
    if (t->add_space_prefix && len > 0) { memcpy(buf, SPACE_MARK, 3); n = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(buf + n, SPACE_MARK, 3); n += 3; }
        else buf[n++] = text[i];
    }
    if (!(sym = malloc(((size_t)n + 1) * sizeof *sym))) goto done;
    for (int i = 0; i < n; n_sym++) {
        int l = tokenizer_utf8_len((const unsigned char *)buf + i, (size_t)(n - i));
        sym[n_sym] = (Symbol){i, l, n_sym - 1, n_sym + 1, lookup(t, buf + i, l)};
        i += l;
    }
    if (n_sym) sym[n_sym - 1].next = -1;
    for (int i = 0; i + 1 < n_sym; i++)
        if (try_pair(t, buf, sym, i, i + 1, &heap)) goto done;
    while (heap.n) {
        Pair p = heap_pop(&heap);
        Symbol *l = &sym[p.left], *r = &sym[p.right];
        /* stale: one side was merged away, or the right one grew since the pair was queued */
        if (!l->len || !r->len || l->len + r->len != t->piece_len[p.id]) continue;
        l->len += r->len;
        l->id = p.id;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        r->len = 0;
        if (try_pair(t, buf, sym, l->prev, p.left, &heap) || try_pair(t, buf, sym, p.left, l->next, &heap)) goto done;
    }
    int count = 0;
    if (add_bos && t->bos >= 0) emit(ids, max_ids, &count, t->bos);
    for (int s = n_sym ? 0 : -1; s >= 0; s = sym[s].next) {
        if (sym[s].id >= 0) { emit(ids, max_ids, &count, sym[s].id); continue; }
        for (int i = 0; i < sym[s].len; i++) { /* byte fallback */
            int id = t->byte_id[(unsigned char)buf[sym[s].start + i]];
            if (id < 0) goto done;
            emit(ids, max_ids, &count, id);
        }
    }
    result = count;
done:
    free(buf); free(sym); free(heap.a);
    return result;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int *ids, int max_ids) {
    if (!text && len) return -1;
    if (max_ids < 0 || !ids) max_ids = 0;
    if (t->kind == TOK_SPM) return encode_spm(t, text, len, add_bos, ids, max_ids);
    if (len > (size_t)INT_MAX - 1) return -1;
    int count = 0;
    if (add_bos && t->bos >= 0) emit(ids, max_ids, &count, t->bos);
    for (size_t i = 0; i < len; i++) emit(ids, max_ids, &count, (unsigned char)text[i]);
    return count;
}

int tokenizer_decode(const Tokenizer *t, int prev, int id, char *out, int cap) {
    if (id < 0 || id >= t->n_vocab || cap <= 0) return 0;
    if (t->kind == TOK_BYTES) {
        if (id >= 256) return 0;
        out[0] = (char)id;
        return 1;
    }
    const char *p = t->pieces[id];
    int len = t->piece_len[id], type = t->types[id];
    if (type == TYPE_UNKNOWN || type == TYPE_CONTROL) return 0;
    if (type == TYPE_BYTE) {
        int b = byte_piece_value(p, len);
        if (b < 0) return 0;
        out[0] = (char)b;
        return 1;
    }
    /* llama2.c: the piece after BOS drops its leading space, which is the dummy prefix */
    int drop_space = t->add_space_prefix && t->bos >= 0 && prev == t->bos;
    int n = 0;
    for (int i = 0; i < len && n < cap;) {
        char c;
        if (i + 3 <= len && memcmp(p + i, SPACE_MARK, 3) == 0) { c = ' '; i += 3; }
        else c = p[i++];
        if (drop_space && c == ' ') { drop_space = 0; continue; }
        drop_space = 0;
        out[n++] = c;
    }
    return n;
}

void tokenizer_write_gguf(const Tokenizer *t, GgufWriter *w) {
    uint64_t n = (uint64_t)t->n_vocab;
    gguf_w_str(w, "tokenizer.ggml.model", t->kind == TOK_BYTES ? "bytes" : "llama");
    gguf_w_str_array(w, "tokenizer.ggml.tokens", (const char *const *)t->pieces, n);
    gguf_w_array(w, "tokenizer.ggml.scores", GGUF_F32, t->scores, n);
    gguf_w_array(w, "tokenizer.ggml.token_type", GGUF_I32, t->types, n);
    if (t->bos >= 0) gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->eos >= 0) gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    if (t->unk >= 0) gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
    gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
}
