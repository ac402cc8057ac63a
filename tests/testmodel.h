/* Random-weight models of the project's own `pelab` architecture, written as GGUF, for tests that
   need a model with a given encoding (equivalence, context shift, CLI errors). */
#ifndef TESTMODEL_H
#define TESTMODEL_H

typedef struct {
    const char *pe;          /* pelab.pe: none learned sinusoidal rope alibi t5 */
    const char *rope_scaling;/* optional rope.scaling.type written to the file (NULL: none) */
    float rope_factor;       /* rope.scaling.factor when rope_scaling is set */
    int n_layers, dim, n_heads, n_kv_heads, hidden, vocab, ctx;
    int layernorm, gelu, bias, tied;
    unsigned seed;
} TestModelSpec;

/* defaults: 2 layers, dim 32, 4 heads / 2 KV heads, hidden 48, vocab 256 (bytes tokenizer), ctx 32 */
TestModelSpec test_model_spec(const char *pe);
/* writes the model to path; returns 0 or -1 (message on stderr) */
int test_model_write(const char *path, const TestModelSpec *spec);

#endif
