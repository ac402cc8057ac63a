#include "tests/test.h"
/* placeholder: being written */
void suite_encodings(void) {}
