/* Training and evaluation data: a deterministic RNG, text corpora with a sentence index, token streams,
   passkey / needle-in-a-haystack examples and mixed training batches (study.md §9a, §9b, §11.3, §11.4).

   Passkey format (the study's compact format with the pilot's changes, §11.3 / §11.7), in tokens:

       [prefix] NEEDLE [suffix] QUESTION KEY
       NEEDLE   = " The pass key is " MARK KEY "."
       QUESTION = " What is the pass key? The pass key is " MARK

   * Mohtashami's needle also says "Remember it. K is the pass key."; the compact format drops that to
     fit L = 256 (the study's 25 + 45 = 70 bytes count the space after the needle, here the suffix's).
   * KEY is 5 digits drawn independently and uniformly (00000-99999; a leading 0 is allowed, so chance
     is exactly 10% per digit and 1e-5 per key), one token per digit.
   * MARK is the byte 0x01 (one token) when the marker is on, nothing when it is off. Nothing checks
     that a corpus lacks 0x01 (Brown has none); if it had some, the marker would not be unique.
   * prefix + suffix is the haystack: FILLER ("The grass is green. The sky is blue. The sun is yellow.
     Here we go. There and back again." repeated, passkey-style) or CORPUS (a span of a corpus token
     stream, NIAH-style). The needle is inserted into the haystack: prefix and suffix are one contiguous
     run of haystack text cut in two, and the cut is always a sentence boundary (below), so the prefix
     ends a sentence ("...blue.") and the suffix starts with its space. The ends of the run are cut
     anywhere. Each piece of fixed text carries its own leading space, as SentencePiece pieces do.
   * The example has exactly the requested number of tokens T; the haystack takes what the fixed parts
     leave: H = T - overhead, overhead = 69 byte tokens with the marker (18 + 5 + 1 + 40 + 5), 67 without.
   * The answer is the last 5 tokens (positions T-5 .. T-1). Under teacher forcing position i predicts
     token i+1, so the key is read off the logits at T-6 .. T-2.
   * Needle placement: by depth d in [0,1], the needle goes after P = floor(d*H) haystack tokens (0 = the
     needle starts the prompt, 1 = right before the question), or by distance D = answer - key (tokens
     from the needle's first key digit to the answer's first digit, the span attention must bridge),
     P = H - (D - D_min), D_min = 5 + 1 + 40 = 46 byte tokens with the marker (45 without).
     P is exact for both haystacks: a sentence boundary of the haystack source is drawn at random (any
     of the filler's five, any of the corpus's that leave room) and the run placed so that it falls at
     P. gkamradt's insert_needle instead trims the haystack and walks the needle back to the previous
     period, which at L = 256 (two Brown sentences) would turn depth 0.5 into 0.17 on average.
   * Sentence boundary: byte offset b with b = 0, or text[b] = '\n', or text[b] = ' ' right after a
     sentence end: '.', '?' or '!', optionally followed by one of `"` `'` `)`. The boundary sits before
     the space so that it is a token boundary for SentencePiece, whose pieces carry their leading space.

   Examples (byte tokenizer, T = 256, marker on, depth 0.5, rng seed 7; MARK shown as <0x01>; one line
   in reality, wrapped here at spaces). FILLER (test_data.c checks this exact text):

       ue. The sun is yellow. Here we go. There and back again. The grass is green. The sky is blue.
       The pass key is <0x01>46345. The sun is yellow. Here we go. There and back again. The grass is
       green. The sky is blue. The What is the pass key? The pass key is <0x01>46345

   CORPUS (brown-train.txt from models/fetch-brown.sh):

       hed them away from my hand. He couldn't afford to have anyone mess around with them, he said.
       The pass key is <0x01>46345. Each of those tickets was of great value to its rightful recipient.
       I withdrew my hand. Later What is the pass key? The pass key is <0x01>46345

   Both: H = 187, needle at P = 93 (= floor(0.5 * 187)), key at 111, question at 211, answer at 251
   (= T - 5), distance 140.

   Training batches (batch_fill): B rows of T+1 tokens; row r's inputs are tokens[r][0..T) and its
   targets tokens[r][1..T+1); weights[r][t] weights the loss of predicting tokens[r][t+1] at position t.
   With probability p_passkey a row is a passkey example of n tokens, n uniform from the shortest
   example its distance draw allows to T+1, followed by T+1-n tokens of haystack text of its kind (a
   random window of the filler or the corpus), so that its answer ends anywhere in the row; the answer's
   targets weigh answer_weight (weights[r][n-6..n-2]), the rest 1, or 0 when answer_only. Otherwise
   the row is a random T+1-token window of the corpus stream (weight 1 everywhere).
   With probability p_repeat_key a passkey row's key (both copies) is redrawn from two distinct random
   digits, so that it repeats a digit (e.g. 37733): a uniform key repeats one 70% of the time, and the
   models that copy by content rather than by offset miss those (README, "The model zoo"). Evaluation
   prompts always use uniform keys. */
#ifndef DATA_H
#define DATA_H
#include <stddef.h>
#include <stdint.h>
#include "tokenizer/tokenizer.h"

/* splitmix64: a 64-bit state, deterministic on every platform. Any seed is fine (0 too). */
typedef struct { uint64_t s; } Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);             /* [0, 1), 53 random bits */
uint64_t rng_below(Rng *r, uint64_t n); /* uniform in [0, n), unbiased; 0 when n = 0 */

/* A text file in memory with its sentence boundaries. Any bytes are accepted (a byte model can read
   anything); n_invalid counts bytes outside well-formed UTF-8 so a caller can warn about a wrong file. */
typedef struct {
    char *text;        /* len bytes, plus a NUL after them */
    size_t len;
    size_t *sent;      /* sentence boundaries (see above), ascending, sent[0] = 0 */
    size_t n_sent;
    size_t n_invalid;
} Corpus;

/* Both return 0, or -1 with a one-line message in err (size >= 256): missing, unreadable or empty
   file, out of memory. corpus_init copies text. */
int corpus_load(Corpus *c, const char *path, char *err);
int corpus_init(Corpus *c, const char *text, size_t len, char *err);
void corpus_free(Corpus *c);

/* A corpus as token ids, with its sentence boundaries as token indices. */
typedef struct {
    int *ids;
    size_t n;
    size_t *sent;      /* ascending, sent[0] = 0 */
    size_t n_sent;
} Tokens;

/* TOK_BYTES: ids are the bytes. TOK_SPM: each sentence (boundary to boundary) is encoded on its own,
   without the dummy-prefix space, so every boundary is a token boundary and long corpora stay cheap.
   Returns 0, or -1 with a one-line message. */
int corpus_tokenize(const Corpus *c, const Tokenizer *tok, Tokens *out, char *err);
void tokens_free(Tokens *t);

/* Copies a uniformly placed window of n tokens of s to out; returns its start, or -1 if n > s->n. */
long long tokens_window(const Tokens *s, size_t n, Rng *rng, int *out);

/* Decodes ids to text for debugging and docs; bytes below 0x20 other than '\n' and '\t' are written
   as <0xXX> (so MARK shows). Writes at most cap bytes including a NUL; returns the full length, as
   snprintf does. */
size_t tokens_render(const Tokenizer *tok, const int *ids, size_t n, char *out, size_t cap);

enum { HAY_FILLER, HAY_CORPUS };
#define PK_FRAG_MAX 64

/* The fixed parts of the format, tokenized once for one tokenizer. Read-only after passkey_init, so
   threads may share one, each with its own Rng. */
typedef struct {
    const Tokens *corpus;  /* haystack for HAY_CORPUS and the LM rows of batches; may be NULL */
    Tokens filler;         /* one period of the filler */
    int marker;            /* 1: MARK before both keys */
    int digit[10];         /* token of each digit */
    int needle[PK_FRAG_MAX], n_needle;     /* " The pass key is " MARK */
    int dot[PK_FRAG_MAX], n_dot;           /* "." */
    int question[PK_FRAG_MAX], n_question; /* " What is the pass key? The pass key is " MARK */
    int overhead;          /* n_needle + 5 + n_dot + n_question + 5: every token but the haystack */
    int min_distance;      /* answer - key when the suffix is empty: 5 + n_dot + n_question */
} Passkey;

/* Fails (-1, one-line err) if a digit is not a single token or a vocabulary piece longer than one byte
   contains a digit (then a key's text would not encode to the 5 digit tokens used here). corpus is
   borrowed and must outlive pk. */
int passkey_init(Passkey *pk, const Tokenizer *tok, const Tokens *corpus, int marker, char *err);
void passkey_free(Passkey *pk);

/* Where the parts of one example are (token indices). distance = answer - key. */
typedef struct {
    int len;           /* T (the example's n in a batch row); 0 for an LM row of a batch */
    int haystack;      /* HAY_FILLER or HAY_CORPUS */
    int hay_len;       /* H = prefix + suffix */
    size_t hay_start;  /* first haystack token: index into the corpus stream or the filler period */
    int needle;        /* = P, the prefix length: first token of NEEDLE */
    int key;           /* first key digit in the needle */
    int question;      /* first token of QUESTION */
    int answer;        /* first answer digit = T - 5 */
    char digits[6];    /* the key as text */
} PasskeyInfo;

/* Build one example of exactly T tokens into ids[T] with the needle at depth in [0,1] or at a distance
   in [min_distance, min_distance + H]. Returns 0, or -1 with a one-line err (ids untouched): T <
   overhead, depth or distance out of range; for HAY_CORPUS no corpus, a corpus shorter than H, or no
   sentence boundary that can sit at P (a tiny corpus). */
int passkey_at_depth(const Passkey *pk, int haystack, int T, double depth, Rng *rng, int *ids,
                     PasskeyInfo *info, char *err);
int passkey_at_distance(const Passkey *pk, int haystack, int T, int distance, Rng *rng, int *ids,
                        PasskeyInfo *info, char *err);

typedef struct {
    double p_passkey;     /* probability that a row is a passkey example */
    double p_filler;      /* probability that a passkey row uses the filler haystack (else the corpus) */
    int by_depth;         /* 1: depth uniform in [0,1); 0: distance log-uniform in [min_distance, max] */
    int min_distance;     /* lower end of the distance draw, raised to pk->min_distance if smaller */
    float answer_weight;  /* weight of the 5 answer targets of a passkey row (the pilot used 4) */
    int answer_only;      /* 1: the other targets of a passkey row get weight 0 (LM rows keep 1) */
    double p_repeat_key;  /* probability that a passkey row's key is drawn from two random digits (below) */
} BatchSpec;

/* Fills tokens[B][T+1] and weights[B][T] (layout above) and, if info is not NULL, info[B] (len 0 for
   LM rows). Returns the number of passkey rows, or -1 with a one-line err (the batch is then partly
   written). */
int batch_fill(const Passkey *pk, const BatchSpec *spec, int B, int T, Rng *rng, int *tokens, float *weights,
               PasskeyInfo *info, char *err);

#endif
