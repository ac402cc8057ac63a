/* Minimal test harness: a test is a void function; CHECK records failures without stopping it.
   Every suite file exports one `void suite_NAME(void)` that calls RUN() for each of its tests. */
#ifndef TEST_H
#define TEST_H
#include <stdio.h>
#include <math.h>

extern int test_current_failed;
extern const char *test_fixtures_dir;   /* ../shared/fixtures/llamacpp or $FIXTURES */
extern const char *test_run_binary;     /* the ./run under test ($RUN_BINARY) */
extern const char *test_study_binary;   /* the ./study under test ($STUDY_BINARY) */
extern const char *test_quantize_binary; /* the ./quantize under test ($QUANTIZE_BINARY) */
extern const char *test_tmp_dir;        /* a scratch directory for files tests write */
void test_record(const char *name, int failed);

/* -kv f16 against -kv f32: the largest logit difference allowed (measured on the llama.cpp fixtures by
   test_fixtures.c, with margin; the README states both) */
#define KV_F16_TOLERANCE 1.5e-2

#define CHECK(cond, ...) do { if (!(cond)) { test_current_failed = 1; \
    fprintf(stderr, "  check failed %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* |a-b| <= tol, with the values in the message */
#define CHECK_NEAR(a, b, tol, what) do { double a_ = (a), b_ = (b); \
    CHECK(fabs(a_ - b_) <= (tol), "%s: got %.12g want %.12g (tol %g)", (what), a_, b_, (double)(tol)); } while (0)

#define RUN(fn) do { test_current_failed = 0; fn(); test_record(#fn, test_current_failed); } while (0)

#endif
