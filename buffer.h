/* A work buffer kept between calls: it grows to the largest size asked of it and is never shrunk or
   freed, so that operations run per token (a decoding step, a key moved at every position) do not
   allocate. The caller owns the pointer and capacity, usually _Thread_local statics (one buffer per
   thread). Out of memory ends the program with a one-line error. */
#ifndef BUFFER_H
#define BUFFER_H
#include <stdio.h>
#include <stdlib.h>

static inline void *buffer_reserve(void **buf, size_t *cap, size_t bytes, const char *what) {
    if (bytes > *cap) {
        free(*buf);
        *buf = malloc(bytes);
        *cap = *buf ? bytes : 0;
        if (!*buf) { fprintf(stderr, "error: out of memory %s\n", what); exit(1); }
    }
    return *buf;
}

#endif
