/* Self-Extend (group attention; Jin et al., datamllab/LongLM, pe-spec §14.3), the exact form: a query at
   i sees its last W keys with plain RoPE (q at i, k at j) and every older key at grouped positions
   (q at ⌊i/G⌋ + W − W/G, k at ⌊j/G⌋), one softmax over both. Grouped distances grow G times slower, so
   a model trained at L reaches about (L − W)·G + W tokens without leaving its trained distances.
   Both key positions depend on j alone, so the cache keeps each key rotated both ways (the far view of
   encoding.h) and the attention loop picks the score by distance; no pre-RoPE keys are needed.
   LongLM adds the query offset W − W/G only once the largest query position is >= W; here it is always
   added, which changes nothing: while i < W every key is a neighbour (i − j <= i < W). */
#include "encodings/encoding.h"

static int group_q(int i, int G, int W) { return i / G + W - W / G; }

int pe_self_extend(int i, int j, int G, int W, int *q_pos, int *k_pos) {
    int grouped = i - j >= W;
    *q_pos = grouped ? group_q(i, G, W) : i;
    *k_pos = grouped ? j / G : j;
    return grouped;
}

int pe_self_extend_far_pos(const Encoding *e, int pos, int is_query) {
    return is_query ? group_q(pos, e->set.group_n, e->set.group_w) : pos / e->set.group_n;
}

int pe_self_extend_setup(Encoding *e, char *err) {
    int G = e->set.group_n, W = e->set.group_w;
    if (G < 1 || W < 1)
        return encoding_error(err, "-pe self-extend needs a group size -grp-n G >= 1 and a neighbour window -grp-w W >= 1 (got %d and %d)", G, W);
    /* LongLM's two code paths divide W/G as float and as integer: they agree only when G | W */
    if (W % G) return encoding_error(err, "-grp-w %d must be a multiple of -grp-n %d (Self-Extend's query offset W - W/G)", W, G);
    if (pe_rope_setup(e, err)) return -1;
    e->far_window = W;
    return 0;
}
