/* Test runner: runs every suite (or those named on the command line) and ends with
   the line `N passed, N failed`. */
#include <stdlib.h>
#include <string.h>
#include "test.h"

int test_current_failed;
const char *test_fixtures_dir;
const char *test_run_binary;
const char *test_study_binary;
const char *test_quantize_binary;
const char *test_tmp_dir;
static int n_passed, n_failed;

void test_record(const char *name, int failed) {
    if (failed) { n_failed++; printf("FAIL %s\n", name); }
    else { n_passed++; printf("ok   %s\n", name); }
    fflush(stdout);
}

#define SUITES(X) X(tokenizer) X(gguf) X(encodings) X(fixtures) X(equivalence) X(grad) X(train) X(data) X(bpe) X(cli) X(eval) X(zoo) X(quant)
#define DECLARE(s) void suite_##s(void);
SUITES(DECLARE)

/* no names: every suite */
static int named(int argc, char **argv, const char *suite) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], suite)) return 1;
    return argc < 2;
}

int main(int argc, char **argv) {
    test_fixtures_dir = getenv("FIXTURES") ? getenv("FIXTURES") : "../shared/fixtures/llamacpp";
    test_run_binary = getenv("RUN_BINARY") ? getenv("RUN_BINARY") : "./run";
    test_study_binary = getenv("STUDY_BINARY") ? getenv("STUDY_BINARY") : "./study";
    test_quantize_binary = getenv("QUANTIZE_BINARY") ? getenv("QUANTIZE_BINARY") : "./quantize";
    test_tmp_dir = getenv("TEST_TMP") ? getenv("TEST_TMP") : "build/test-tmp";
#define CALL(s) if (named(argc, argv, #s)) { printf("# suite %s\n", #s); suite_##s(); }
    SUITES(CALL)
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
