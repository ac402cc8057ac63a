/* The table of encodings: one row per -pe name. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "encodings/encoding.h"

static const EncodingMethod methods[] = {
    {"none",       PE_FAMILY_NONE,     &pe_none_ops,     pe_none_setup,       "no positional encoding (NoPE)"},
    {"none-logn",  PE_FAMILY_NONE,     &pe_logn_ops,     pe_logn_setup,       "NoPE, queries past L scaled by ln(p+1)/ln(L) (log-n attention temperature)"},
    {"learned",    PE_FAMILY_ABSOLUTE, &pe_learned_ops,  pe_learned_setup,    "learned absolute table (position_embd.weight)"},
    {"sinusoidal", PE_FAMILY_ABSOLUTE, &pe_sinusoidal_ops,pe_sinusoidal_setup, "fixed sinusoids added to the input (Vaswani)"},
    {"rope",       PE_FAMILY_ROPE,     &pe_rope_ops,     pe_rope_setup,       "rotary, no scaling"},
    {"linear",     PE_FAMILY_ROPE,     &pe_rope_ops,     pe_linear_setup,     "rotary, position interpolation: theta/s"},
    {"ntk",        PE_FAMILY_ROPE,     &pe_rope_ops,     pe_ntk_setup,        "rotary, NTK-aware base B*s^(n/(n-2))"},
    {"dynamic",    PE_FAMILY_ROPE,     &pe_dynamic_ops,  pe_dynamic_setup,    "rotary, dynamic NTK (base follows the length; cached keys re-rotated)"},
    {"yarn",       PE_FAMILY_ROPE,     &pe_rope_ops,     pe_yarn_setup,       "rotary, YaRN ramp + attention factor"},
    {"llama3",     PE_FAMILY_ROPE,     &pe_rope_ops,     pe_llama3_setup,     "rotary, Llama 3 frequency bands"},
    {"self-extend",PE_FAMILY_ROPE,     &pe_self_extend_ops,pe_self_extend_setup,"rotary; keys past the window -grp-w at grouped positions /-grp-n (Self-Extend)"},
    {"alibi",      PE_FAMILY_ALIBI,    &pe_alibi_ops,    pe_alibi_setup,      "linear attention biases"},
    {"alibi-pi",   PE_FAMILY_ALIBI,    &pe_alibi_ops,    pe_alibi_pi_setup,   "linear attention biases, position interpolation: distance/s"},
    {"t5",         PE_FAMILY_T5,       &pe_t5_ops,       pe_t5_setup,         "T5 relative position buckets"},
};
#define N_METHODS (int)(sizeof methods / sizeof methods[0])

int encoding_error(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, 256, fmt, ap);
    va_end(ap);
    return -1;
}

const EncodingMethod *encoding_find(const char *name) {
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(methods[i].name, name)) return &methods[i];
    return NULL;
}

const char *encoding_family_name(PeFamily f) {
    static const char *names[] = {"none", "absolute", "rope", "alibi", "t5"};
    return names[f];
}

void encoding_list(char *out, int cap) {
    int n = 0;
    out[0] = 0;
    for (int i = 0; i < N_METHODS && n < cap; i++) n += snprintf(out + n, cap - n, "%s%s", i ? "|" : "", methods[i].name);
}

const EncodingMethod *encoding_lookup(const char *name, int family, const char *which, char *err) {
    const EncodingMethod *m = encoding_find(name);
    char names[160];
    if (!m) {
        encoding_list(names, sizeof names);
        encoding_error(err, "unknown positional encoding '%s' (known: %s)", name, names);
        return NULL;
    }
    /* an override stays inside the family the model was trained with: the weights only make sense there */
    if (family >= 0 && m->family != (PeFamily)family) {
        encoding_error(err, "-pe %s does not apply to %s: its encoding family is %s", name, which, encoding_family_name((PeFamily)family));
        return NULL;
    }
    return m;
}

int encoding_select(PeSettings *s, const char *name, int family, const char *which, char *err) {
    if (!encoding_lookup(name, family, which, err)) return -1;
    snprintf(s->method, sizeof s->method, "%s", name);
    if (!strcmp(name, "rope")) s->scale = 0;   /* plain RoPE: no scaling, whatever the file says */
    return 0;
}

int encoding_init(Encoding *e, PeFamily model_family, char *err) {
    const EncodingMethod *m = encoding_lookup(e->set.method, (int)model_family, "this model", err);
    if (!m) return -1;
    e->method = m;
    e->ops = m->ops;
    e->max_pos = 0x7ffffffe;   /* so that the next position, max + 1, is still an int */
    e->mscale = 1.0;
    return m->setup(e, err);
}
