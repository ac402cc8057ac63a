/* The KV cache: per-layer key/value rows plus one position per slot. Position edits rotate the
   cached keys through the encoding's move_key hook, computed from stored positions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

int kv_init(KVCache *kv, int n_layers, int n_slots, int kv_dim, char *err) {
    memset(kv, 0, sizeof *kv);
    size_t rows;
    if (n_slots < 1 || __builtin_mul_overflow((size_t)n_layers * (size_t)n_slots, (size_t)kv_dim, &rows))
        return encoding_error(err, "bad KV cache size (%d slots)", n_slots);
    kv->n_slots = n_slots;
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    /* calloc: pages are only touched as slots fill, so memory grows with use, linear in ctx */
    kv->pos = calloc((size_t)n_slots, sizeof *kv->pos);
    kv->k = calloc(rows, sizeof *kv->k);
    kv->v = calloc(rows, sizeof *kv->v);
    if (!kv->pos || !kv->k || !kv->v) {
        kv_free(kv);
        return encoding_error(err, "out of memory for a KV cache of %d slots (%.1f MiB)", n_slots, 2.0 * rows * 4 / 1048576);
    }
    return 0;
}

void kv_free(KVCache *kv) {
    free(kv->pos);
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

int kv_max_pos(const KVCache *kv) {
    int mx = -1;
    for (int i = 0; i < kv->n_used; i++) mx = kv->pos[i] > mx ? kv->pos[i] : mx;
    return mx;
}

/* Re-encodes the keys of slots [first, first+n) from (`from`, stored position) to (`to`, stored
   position + delta), in every layer, and stores the new positions. */
void kv_move_keys(KVCache *kv, const Encoding *to, const Encoding *from, int first, int n, int delta) {
    int n_k = kv->kv_dim / to->model.head_dim;
    if (to->ops->move_key) {
        #pragma omp parallel for collapse(2)
        for (int l = 0; l < kv->n_layers; l++)
            for (int i = first; i < first + n; i++)
                to->ops->move_key(to, from, kv->k + ((size_t)l * kv->n_slots + i) * kv->kv_dim, n_k, kv->pos[i], kv->pos[i] + delta);
    }
    for (int i = first; i < first + n; i++) kv->pos[i] += delta;
}

int kv_shift(KVCache *kv, const Encoding *e, int keep, int discard, char *err) {
    if (!e->ops->shiftable)
        return encoding_error(err, "-pe %s cannot shift the context: positions are baked into the cached keys and values", e->method->name);
    if (keep < 0 || discard < 1 || keep + discard > kv->n_used)
        return encoding_error(err, "bad context shift: keep %d, discard %d of %d cached tokens", keep, discard, kv->n_used);
    int rest = kv->n_used - keep - discard;
    for (int l = 0; l < kv->n_layers; l++) {
        size_t base = (size_t)l * kv->n_slots;
        memmove(kv->k + (base + keep) * kv->kv_dim, kv->k + (base + keep + discard) * kv->kv_dim, (size_t)rest * kv->kv_dim * sizeof(float));
        memmove(kv->v + (base + keep) * kv->kv_dim, kv->v + (base + keep + discard) * kv->kv_dim, (size_t)rest * kv->kv_dim * sizeof(float));
    }
    memmove(kv->pos + keep, kv->pos + keep + discard, (size_t)rest * sizeof *kv->pos);
    kv->n_used -= discard;
    kv_move_keys(kv, e, e, keep, rest, -discard);
    return 0;
}
