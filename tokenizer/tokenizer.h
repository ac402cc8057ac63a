/* Tokenizer read from GGUF metadata.
   Two kinds:
   - TOK_SPM   : SentencePiece-style BPE as llama / llama2.c use it (tokenizer.ggml.model = "llama"):
                 pieces with scores, U+2581 for spaces, a dummy-prefix space, greedy merges by best score,
                 byte fallback to the <0xXX> tokens for anything not in the vocabulary.
   - TOK_BYTES : plain bytes (tokenizer.ggml.model = "bytes"): token id b < 256 is byte b; ids >= 256
                 (specials such as BOS) decode to nothing. */
#ifndef TOKENIZER_H
#define TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

typedef enum { TOK_SPM, TOK_BYTES } TokKind;

typedef struct {
    TokKind kind;
    int n_vocab;
    char **pieces;          /* [n_vocab] NUL-terminated copies (a piece never contains NUL) */
    int *piece_len;         /* [n_vocab] */
    float *scores;          /* [n_vocab] merge priority, higher merges first */
    int32_t *types;         /* [n_vocab] gguf token types: 1 normal, 2 unknown, 3 control, 6 byte */
    int byte_id[256];       /* id of <0xXX> for each byte (SPM), -1 if missing */
    int bos, eos, unk;      /* -1 when the model has none */
    int add_space_prefix;   /* SPM: prepend one space before encoding (default 1) */
    int *sorted;            /* ids sorted by piece, for lookup */
} Tokenizer;

/* Piece strings as they come from GGUF (not NUL-terminated). Returns 0, or -1 with a one-line
   message in err (size >= 256): bad kind, negative ids, piece with NUL, missing byte tokens ... */
int tokenizer_init(Tokenizer *t, TokKind kind, int n_vocab, const char *const *pieces, const uint64_t *lens,
                   const float *scores, const int32_t *types, int bos, int eos, int unk, int add_space_prefix,
                   char *err);
void tokenizer_free(Tokenizer *t);

/* Encodes len bytes of text (any bytes: invalid UTF-8 goes through byte fallback). Writes at most
   max_ids ids; returns the number of ids the full encoding has (may exceed max_ids: call again with
   more room), or -1 if the text cannot be encoded (SPM vocabulary without byte tokens). */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int *ids, int max_ids);

/* The bytes token `id` stands for, after token `prev` (a piece right after BOS loses its
   dummy-prefix space). Writes at most cap bytes to out, returns the count. Unknown/control ids -> 0. */
int tokenizer_decode(const Tokenizer *t, int prev, int id, char *out, int cap);

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 1 for a byte that starts none:
   the rule by which the tokenizer falls back to bytes (shared by the BPE trainer and the corpus). */
int tokenizer_utf8_len(const unsigned char *s, size_t n);

/* Writes the tokenizer.ggml.* keys the model loader reads (model, tokens, scores, token_type,
   bos/eos/unknown ids, add_space_prefix). */
void tokenizer_write_gguf(const Tokenizer *t, GgufWriter *w);

#endif
