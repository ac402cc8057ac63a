/* ./quantize in.gguf out.gguf TYPE [-fallback TYPE]: the model with its weight matrices stored as
   Q8_0, F16 or F32 (quant.h: quantize_gguf). Every bad input ends in one line on stderr naming the
   problem and exit status 1. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "gguf.h"
#include "quant.h"

static void usage(void) {
    printf("usage: ./quantize in.gguf out.gguf TYPE [-fallback TYPE]\n"
           "  TYPE               q8_0 | f16 | f32: the type of the weight matrices (attention, MLP, token\n"
           "                     embedding, output); norms, biases and position tables keep theirs (f32: all F32)\n"
           "  -fallback TYPE     f16 | f32: q8_0 only, the type of matrices whose rows are not a multiple of\n"
           "                     32 values (default: such a matrix is an error)\n"
           "  -h                 this list\n");
}

static int parse_type(const char *flag, const char *s) {
    if (!strcmp(s, "q8_0")) return GGML_Q8_0;
    if (!strcmp(s, "f16")) return GGML_F16;
    if (!strcmp(s, "f32")) return GGML_F32;
    die("unknown %s '%s' (q8_0, f16 or f32)", flag, s);
}

static double megabytes(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : st.st_size / 1e6;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
    if (argc != 4 && argc != 6) die("expected in.gguf out.gguf TYPE [-fallback TYPE], got %d arguments (see ./quantize -h)", argc - 1);
    int type = parse_type("type", argv[3]), fallback = -1;
    if (argc == 6) {
        if (strcmp(argv[4], "-fallback")) die("unknown flag %s (see ./quantize -h)", argv[4]);
        fallback = parse_type("-fallback type", argv[5]);
        if (type != GGML_Q8_0 || fallback == GGML_Q8_0) die("-fallback applies to q8_0 and takes f16 or f32");
    }
    char err[GGUF_ERR];
    if (quantize_gguf(argv[1], argv[2], type, fallback, err)) die("%s", err);
    printf("%s: %s, %.2f MB (from %.2f MB)\n", argv[2], argv[3], megabytes(argv[2]), megabytes(argv[1]));
    return 0;
}
