#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "gguf.h"

void die(const char *fmt, ...) {
    va_list ap;
    char msg[1024];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gguf_one_line(msg);   /* text from a file or the command line must not break the one-line rule */
    fprintf(stderr, "error: %s\n", msg);
    exit(1);
}

long parse_int(const char *flag, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die("%s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
    return v;
}

double parse_num(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) die("%s expects a number in [%g, %g], got '%s'", flag, lo, hi, s);
    return v;
}

int parse_choice(const char *flag, const char *s, const char *const *choices) {
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(s, choices[i])) return i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " or " : "", choices[i]);
    }
    die("%s expects %s, got '%s'", flag, list, s);
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
