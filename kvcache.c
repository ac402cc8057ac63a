/* The KV cache: per-layer key/value rows plus one position per slot. Position edits rotate the
   cached keys through the encoding's move_key hook, computed from stored positions. Rows are float
   or IEEE half (-kv f16): half rows are converted on the way in and out, and rotated in float. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buffer.h"
#include "f16.h"
#include "model.h"

const char *const kv_type_names[] = {"f32", "f16", NULL};

static size_t elem_size(KvType type) { return type == KV_F16 ? sizeof(uint16_t) : sizeof(float); }

int kv_init(KVCache *kv, int n_layers, int n_slots, int kv_dim, KvType type, int far_keys, char *err) {
    memset(kv, 0, sizeof *kv);
    size_t rows;
    if (n_slots < 1 || __builtin_mul_overflow((size_t)n_layers * (size_t)n_slots, (size_t)kv_dim, &rows))
        return encoding_error(err, "bad KV cache size (%d slots)", n_slots);
    kv->n_slots = n_slots;
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    kv->type = type;
    /* calloc: pages are only touched as slots fill, so memory grows with use, linear in ctx */
    kv->pos = calloc((size_t)n_slots, sizeof *kv->pos);
    kv->k = calloc(rows, elem_size(type));
    kv->v = calloc(rows, elem_size(type));
    kv->k_far = far_keys ? calloc(rows, elem_size(type)) : NULL;
    if (!kv->pos || !kv->k || !kv->v || (far_keys && !kv->k_far)) {
        kv_free(kv);
        return encoding_error(err, "out of memory for a KV cache of %d slots (%.1f MiB)", n_slots, (2.0 + !!far_keys) * rows * elem_size(type) / 1048576);
    }
    return 0;
}

void kv_free(KVCache *kv) {
    free(kv->pos);
    free(kv->k);
    free(kv->v);
    free(kv->k_far);
    memset(kv, 0, sizeof *kv);
}

size_t kv_bytes(const KVCache *kv) { return (kv->k_far ? 3 : 2) * (size_t)kv->n_layers * kv->n_slots * kv->kv_dim * elem_size(kv->type); }

void *kv_row(const KVCache *kv, void *base, int layer, int slot) {
    return (char *)base + ((size_t)layer * kv->n_slots + slot) * kv->kv_dim * elem_size(kv->type);
}

static void store_rows(KVCache *kv, void *base, int layer, int slot0, const float *x, size_t n) {
    if (kv->type == KV_F16) f32_to_f16_row(kv_row(kv, base, layer, slot0), x, n);
    else memcpy(kv_row(kv, base, layer, slot0), x, n * sizeof(float));
}

void kv_store(KVCache *kv, int layer, int slot0, const float *k, const float *k_far, const float *v, int T) {
    size_t n = (size_t)T * kv->kv_dim;
    store_rows(kv, kv->k, layer, slot0, k, n);
    store_rows(kv, kv->v, layer, slot0, v, n);
    if (kv->k_far) store_rows(kv, kv->k_far, layer, slot0, k_far, n);
}

int kv_max_pos(const KVCache *kv) {
    int mx = -1;
    for (int i = 0; i < kv->n_used; i++) mx = kv->pos[i] > mx ? kv->pos[i] : mx;
    return mx;
}

/* One slot's key rows of every layer in `base` (kv->k or kv->k_far), moved in one call from position
   pos_from to pos_to, so that the rotation's sines and cosines (most of dynamic NTK's time) are computed
   once for all layers. A float cache is rotated where it lies; half rows go through `keys` (scratch)
   and are rounded once. */
static void move_slot(KVCache *kv, void *base, const Encoding *to, const Encoding *from, int slot, int pos_from, int pos_to, float *keys) {
    int n_vecs = kv->kv_dim / to->model.head_dim;
    if (kv->type == KV_F32) {
        to->ops->move_key(to, from, kv_row(kv, base, 0, slot), kv->n_layers, (size_t)kv->n_slots * kv->kv_dim, n_vecs, pos_from, pos_to);
        return;
    }
    for (int l = 0; l < kv->n_layers; l++) f16_to_f32_row(keys + (size_t)l * kv->kv_dim, kv_row(kv, base, l, slot), (size_t)kv->kv_dim);
    to->ops->move_key(to, from, keys, kv->n_layers, (size_t)kv->kv_dim, n_vecs, pos_from, pos_to);
    for (int l = 0; l < kv->n_layers; l++) store_rows(kv, base, l, slot, keys + (size_t)l * kv->kv_dim, (size_t)kv->kv_dim);
}

/* Re-encodes the keys of slots [first, first+n) from (`from`, stored position) to (`to`, stored
   position + delta), in every layer, and stores the new positions. The far view's keys (Self-Extend)
   follow their own positions, far_pos of the old and the new. */
void kv_move_keys(KVCache *kv, const Encoding *to, const Encoding *from, int first, int n, int delta) {
    if (to->ops->move_key) {
        size_t per_key = (size_t)kv->n_layers * kv->kv_dim;
        #pragma omp parallel
        {
            static _Thread_local void *buf;
            static _Thread_local size_t cap;
            /* scratch only for half rows: a float cache is rotated where it lies */
            float *keys = kv->type == KV_F16 ? buffer_reserve(&buf, &cap, per_key * sizeof *keys, "moving the cached keys") : NULL;
            #pragma omp for schedule(static)
            for (int i = first; i < first + n; i++) {
                int p = kv->pos[i];
                move_slot(kv, kv->k, to, from, i, p, p + delta, keys);
                if (kv->k_far) move_slot(kv, kv->k_far, to, from, i, from->ops->far_pos(from, p, 0), to->ops->far_pos(to, p + delta, 0), keys);
            }
        }
    }
    for (int i = first; i < first + n; i++) kv->pos[i] += delta;
}

int kv_shift(KVCache *kv, const Encoding *e, int keep, int discard, char *err) {
    if (!e->ops->shiftable)
        return encoding_error(err, "-pe %s cannot shift the context: positions are baked into the cached keys and values", e->method->name);
    if (keep < 0 || discard < 1 || keep + discard > kv->n_used)
        return encoding_error(err, "bad context shift: keep %d, discard %d of %d cached tokens", keep, discard, kv->n_used);
    int rest = kv->n_used - keep - discard;
    size_t bytes = (size_t)rest * kv->kv_dim * elem_size(kv->type);
    for (int l = 0; l < kv->n_layers; l++) {
        memmove(kv_row(kv, kv->k, l, keep), kv_row(kv, kv->k, l, keep + discard), bytes);
        memmove(kv_row(kv, kv->v, l, keep), kv_row(kv, kv->v, l, keep + discard), bytes);
        if (kv->k_far) memmove(kv_row(kv, kv->k_far, l, keep), kv_row(kv, kv->k_far, l, keep + discard), bytes);
    }
    memmove(kv->pos + keep, kv->pos + keep + discard, (size_t)rest * sizeof *kv->pos);
    kv->n_used -= discard;
    kv_move_keys(kv, e, e, keep, rest, -discard);
    return 0;
}
