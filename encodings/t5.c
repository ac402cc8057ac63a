/* T5 relative position buckets (decoder form): a learned bias per (bucket, head), shared by all
   layers, added to the scores. Distances past max_distance share the last bucket. */
#include <math.h>
#include "encodings/encoding.h"

int pe_t5_bucket(int rel, int bidirectional, int n_buckets, int max_distance) {
    int bucket = 0, dist;
    if (bidirectional) {
        n_buckets /= 2;
        if (rel > 0) bucket += n_buckets;
        dist = rel < 0 ? -rel : rel;
    } else {
        dist = rel < 0 ? -rel : 0;   /* future keys fall in bucket 0; the causal mask hides them */
    }
    int exact = n_buckets / 2;
    if (dist < exact) return bucket + dist;   /* the log branch only for dist >= exact (no log(0)) */
    if (dist >= max_distance) return bucket + n_buckets - 1;   /* where the log branch reaches the last bucket */
    int b = exact + (int)(log((double)dist / exact) / log((double)max_distance / exact) * (n_buckets - exact));
    return bucket + (b < n_buckets - 1 ? b : n_buckets - 1);
}

static int t5_bucket_of(const Encoding *e, int rel) {   /* rel = p_k - p_q */
    int dist = rel < 0 ? -rel : 0;
    return dist < PE_T5_TABLE ? e->t5_bucket[dist] : pe_t5_bucket(rel, 0, e->set.t5_buckets, e->set.t5_max_distance);
}

static void t5_bias(const Encoding *e, int head, int pos_q, const int *pos_k, int n, float *scores) {
    int H = e->model.n_heads;
    for (int j = 0; j < n; j++) scores[j] += e->model.rel_bias[t5_bucket_of(e, pos_k[j] - pos_q) * H + head];
}

static void t5_bias_grad(const Encoding *e, int head, int pos_q, const int *pos_k, int n, const float *dscores, float *dtable) {
    int H = e->model.n_heads;
    for (int j = 0; j < n; j++) dtable[t5_bucket_of(e, pos_k[j] - pos_q) * H + head] += dscores[j];
}

int pe_t5_setup(Encoding *e, char *err) {
    if (e->set.t5_buckets <= 0) e->set.t5_buckets = 32;
    if (e->set.t5_max_distance <= 0) e->set.t5_max_distance = 128;
    if (e->set.t5_buckets < 4 || e->set.t5_max_distance <= e->set.t5_buckets / 2)
        return encoding_error(err, "T5 needs >= 4 buckets and max distance > buckets/2 (got %d, %d)", e->set.t5_buckets, e->set.t5_max_distance);
    if (!e->model.rel_bias) return encoding_error(err, "-pe t5 needs a relative bias table (dec.blk.0.attn_rel_b.weight), and the model has none");
    for (int d = 0; d < PE_T5_TABLE; d++) e->t5_bucket[d] = pe_t5_bucket(-d, 0, e->set.t5_buckets, e->set.t5_max_distance);
    return 0;
}

const EncodingOps pe_t5_ops = {.add_bias = t5_bias, .bias_grad = t5_bias_grad, .shiftable = 1};
