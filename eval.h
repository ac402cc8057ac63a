/* Evaluation modes of ./run (study.md §9a, §9b, §11.4): perplexity over a held-out text and the passkey /
   needle-in-a-haystack grid. Both run the model through model_forward from an empty cache (model_reset),
   one window or prompt at a time, at positions 0..N-1, and never hold more than one chunk of logits.

   Perplexity: the text's token stream ids[0..n) is cut into windows of N input tokens; the window
   starting at s feeds ids[s..s+N) and predicts ids[s+1..s+N+1) (fairseq's source/target shift, as in
   the ALiBi paper), so row p of the window predicts from p+1 tokens of context. Windows start at
   s = 0, S, 2S, ... (stride S, S = N: non-overlapping) as long as a full window fits; the first window
   scores all N predictions, each later one only its last S, so every predicted token is scored exactly
   once and with stride S < N each gets at least N-S tokens of context (ALiBi App. B). Position buckets
   are over p: [0,L), [L,2L), [2L,4L), ...

   Needle: for every haystack, total length T and depth, `trials` prompts built by passkey_at_depth, each
   from its own RNG (needle_seed), so any cell can be recomputed alone. One pass over ids[0..T-1) (the
   last key digit is never an input) gives the logits at T-6..T-2, which predict the 5 answer digits
   from the true previous digits (teacher forcing). Exact match under teacher forcing equals exact
   match under greedy decoding, because each digit is one token: greedy decoding reproduces the key iff
   the argmax at every answer position, given the true digits before it, is the true digit. Per-digit
   accuracy is the teacher-forced one (after a wrong digit greedy decoding would see its own digit). */
#ifndef EVAL_H
#define EVAL_H
#include <stdint.h>
#include <stdio.h>
#include "data.h"
#include "model.h"

/* "PATH, -pe METHOD[, s = S], ctx N, trained at L": what a result was measured on, for tables and charts */
void eval_describe(const Model *m, const char *path, char *out, size_t cap);

#define PPL_MAX_BUCKETS 40

typedef struct {
    /* set by the caller */
    const char *model;      /* eval_describe's text */
    const char *tag;        /* NULL, or a name that starts each progress line, then whole lines even on a terminal
                               (runs side by side: ./study -jobs) */
    int window, stride;     /* N and S, in tokens; stride = window: non-overlapping */
    int bucket;             /* bucket unit L (the training length by default) */
    int chunk;              /* rows of logits computed at a time */
    int shift, keep;        /* shift = 0: a window must fit the cache; 1: a longer one streams through it, the full
                               cache shifted with keep sinks (llama.cpp's context shift, StreamingLLM) */
    /* results */
    long long windows, tokens, bytes;   /* scored predictions; the bytes their target tokens decode to */
    double nll;                         /* summed, nats */
    int n_buckets;
    long long b_tokens[PPL_MAX_BUCKETS], b_bytes[PPL_MAX_BUCKETS];
    double b_nll[PPL_MAX_BUCKETS];
} Ppl;

/* Scores text (n tokens) with m; 0, or -1 with a one-line err before anything ran: text shorter than
   one window plus the token it predicts, a window longer than the cache or past the positions the
   encoding can represent. */
int eval_ppl(Model *m, const int *text, size_t n, Ppl *p, char *err);
void ppl_print(const Ppl *p, const char *source, FILE *out);
void ppl_csv(const Ppl *p, FILE *f);

#define NEEDLE_MAX_LENGTHS 64
#define NEEDLE_MAX_DEPTHS 101
#define NEEDLE_BINS 32      /* distance bins [2^k, 2^(k+1)) */

/* digits: right digits of 5*trials; logp: summed key log-probs; repeats: trials whose key repeats a digit
   (70% of uniform keys; the keys small models miss, README "What I found"), repeats_exact: those exact */
typedef struct { int trials, exact, digits, repeats, repeats_exact; double logp; } NeedleStat;
void needle_stat_add(NeedleStat *to, const NeedleStat *s);

typedef struct {
    /* set by the caller */
    const char *model;      /* eval_describe's text */
    const char *tag;        /* as in Ppl */
    int n_lengths, lengths[NEEDLE_MAX_LENGTHS];
    int n_depths;           /* depth i is i/(n_depths-1) (0 when n_depths = 1) */
    int trials;
    int n_hay, hay[2];      /* HAY_FILLER and/or HAY_CORPUS */
    int shift, keep;        /* as in Ppl, for prompts */
    uint64_t seed;
    /* results, allocated by eval_needle: cell[(h*n_lengths + l)*n_depths + d], dist[(h*n_lengths + l)*NEEDLE_BINS + k] */
    NeedleStat *cell, *dist;
} Needle;

double needle_depth(const Needle *g, int d);
/* The seed of one trial: a hash of the run's seed and the cell's values (not indices), so that a grid
   holding the cell recomputes it. */
uint64_t needle_seed(uint64_t seed, int hay, int length, double depth, int trial);
/* Runs the grid; 0, or -1 with a one-line err (checked before any forward pass: lengths shorter than
   the needle and question, longer than the cache or than the positions the encoding can represent, a
   corpus too short for the haystack). */
int eval_needle(Model *m, const Passkey *pk, Needle *g, char *err);
void needle_free(Needle *g);
void needle_print(const Needle *g, FILE *out);
void needle_csv(const Needle *g, FILE *f);
void needle_heatmap_svg(const Needle *g, FILE *f);
void needle_distance_csv(const Needle *g, FILE *f);
void needle_distance_svg(const Needle *g, FILE *f);

/* A line chart with a log2 x axis, one line per series (the study's perplexity-by-length figure); points
   with a non-finite y are left out. */
typedef struct { const char *label; int n; const double *x, *y; } Series;
void lines_svg(FILE *f, const char *title, const char *model, const char *xlabel, const char *ylabel, const Series *series, int n);

#endif
