/* Sampling as in llama2.c: greedy at temperature 0, else softmax with temperature and top-p. */
#include <math.h>
#include <stdlib.h>
#include "model.h"

void sampler_init(Sampler *s, int vocab, float temperature, float topp, unsigned long long seed) {
    s->temperature = temperature;
    s->topp = topp;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    s->n = vocab;
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    if (!s->idx || !s->prob) abort();
}

void sampler_free(Sampler *s) {
    free(s->idx);
    free(s->prob);
}

static float random_f32(unsigned long long *state) {   /* xorshift64*, as llama2.c */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return ((*state * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

static const float *sort_probs;
static int by_prob_desc(const void *a, const void *b) {
    float pa = sort_probs[*(const int *)a], pb = sort_probs[*(const int *)b];
    return (pa < pb) - (pa > pb);
}

int sample(Sampler *s, float *logits) {
    if (s->temperature == 0) return argmax(logits, s->n);
    float mx = logits[argmax(logits, s->n)], sum = 0;
    for (int i = 0; i < s->n; i++) sum += s->prob[i] = expf((logits[i] - mx) / s->temperature);
    for (int i = 0; i < s->n; i++) s->prob[i] /= sum;
    float r = random_f32(&s->rng);
    if (s->topp <= 0 || s->topp >= 1) {
        float cdf = 0;
        for (int i = 0; i < s->n; i++) if (r < (cdf += s->prob[i])) return i;
        return s->n - 1;
    }
    /* top-p: keep the smallest set of most likely tokens whose mass exceeds topp; the candidates
       below (1-topp)/(n-1) can never be in it and are skipped before sorting (llama2.c's trick) */
    int n = 0;
    float cutoff = (1.0f - s->topp) / (s->n - 1), mass = 0;
    for (int i = 0; i < s->n; i++) if (s->prob[i] >= cutoff) s->idx[n++] = i;
    sort_probs = s->prob;
    qsort(s->idx, n, sizeof *s->idx, by_prob_desc);
    int last = n - 1;
    for (int i = 0; i < n; i++) if ((mass += s->prob[s->idx[i]]) > s->topp) { last = i; break; }
    float target = r * mass, cdf = 0;
    for (int i = 0; i <= last; i++) if (target < (cdf += s->prob[s->idx[i]])) return s->idx[i];
    return s->idx[last];
}
