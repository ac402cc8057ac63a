/* ops.c in double precision, names suffixed _f64, for the finite-difference gradient checks */
#define REAL double
#define OPS_DOUBLE
#define OPS(name) name##_f64
#include "ops.c"
