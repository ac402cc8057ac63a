/* BPE vocabulary trainer whose output the runtime tokenizer (TOK_SPM, tokenizer.ggml.model = "llama")
   reads and encodes with.

   Training sees the text as the runtime encodes it: one U+2581 ("▁") is prepended and every space
   becomes "▁". The stream is cut into words, each "▁" starting a new one, and merges never cross a
   word start, so a merged piece holds "▁" at most as its first character. Some characters never merge
   with anything: digits 0-9 (a 5-digit number is always 5 tokens), control characters such as '\n'
   and '\t', characters seen fewer than BPE_MIN_CHAR_COUNT times, and bytes of invalid UTF-8. They
   still get a single-character piece when frequent enough (except NUL), else byte fallback covers them.
   Then classic BPE over the unique words: repeatedly merge the most frequent adjacent pair (ties: the
   lexicographically smallest concatenation), with incremental pair counts. Training stops at
   vocab_size or when no pair occurs BPE_MIN_PAIR_COUNT times.

   Vocabulary layout:
     0 "<unk>" (type 2), 1 "<s>" (type 3, BOS), 2 "</s>" (type 3, EOS),
     3..258 the byte tokens "<0x00>".."<0xFF>" (type 6),
     then normal pieces (type 1): the single characters, most frequent first, then the merged pieces
     in merge order.
   Scores: merge i (0-based) scores -i, so the runtime's "best score first, leftmost on ties" replays
   the merges in the order they were learned; single characters score below every merge (the runtime
   only scores merge candidates, so their value is informational); bytes and specials score 0. */
#ifndef BPE_TRAIN_H
#define BPE_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "tokenizer/tokenizer.h"

#define BPE_N_FIXED 259        /* <unk>, <s>, </s> and the 256 byte tokens */
#define BPE_MIN_CHAR_COUNT 2   /* rarer characters get no piece (byte fallback) and never merge */
#define BPE_MIN_PAIR_COUNT 2   /* a pair seen once is not worth a piece */
#define BPE_MAX_PIECE 256      /* merged pieces stay at most this many bytes */

typedef struct {
    int n_vocab;
    char **pieces;      /* [n_vocab] NUL-terminated UTF-8 (no piece contains NUL) */
    float *scores;      /* [n_vocab] */
    int32_t *types;     /* [n_vocab] gguf token types: 1 normal, 2 unknown, 3 control, 6 byte */
    int bos, eos, unk;  /* 1, 2, 0 */
    int n_chars;        /* single-character pieces, ids BPE_N_FIXED .. BPE_N_FIXED + n_chars - 1 */
    int n_merges;       /* merged pieces, ids BPE_N_FIXED + n_chars .. n_vocab - 1 in merge order */
    int32_t (*merges)[2]; /* [n_merges] the two pieces (ids) each merge joined, left then right */
} BpeVocab;

/* Trains on len bytes of text (any bytes; NUL is allowed and byte-falls-back). The result has exactly
   vocab_size tokens unless the corpus runs out of pairs seen BPE_MIN_PAIR_COUNT times first (then
   fewer). Returns 0, or -1 with a one-line message in err (256 bytes): empty text, vocab_size too small
   for the fixed tokens plus the corpus's characters, out of memory. Deterministic: the same input
   gives the same vocabulary. */
int bpe_train(const char *text, size_t len, int vocab_size, BpeVocab *out, char *err);
void bpe_free(BpeVocab *v);

/* The runtime tokenizer (TOK_SPM, add_space_prefix) for a trained vocabulary; 0 or -1 + err. */
int bpe_tokenizer(const BpeVocab *v, Tokenizer *t, char *err);

#endif
