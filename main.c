#include <stdio.h>
#include "tests/test.h"
int test_current_failed; const char *test_fixtures_dir, *test_run_binary, *test_tmp_dir;
static int np, nf;
void test_record(const char *name, int failed) { if (failed) { nf++; printf("FAIL %s\n", name); } else np++; }
void suite_encodings(void);
int main(void) { suite_encodings(); printf("%d passed %d failed\n", np, nf); return 0; }
