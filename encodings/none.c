/* NoPE: no positional signal at all; order comes only from the causal mask. Nothing to shift. */
#include "encodings/encoding.h"

int pe_none_setup(Encoding *e, char *err) { return 0; }

const EncodingOps pe_none_ops = {.shiftable = 1};
