// OpenBLAS's CBLAS interface (with openblas_set_num_threads) and LAPACKE.
// Debian: libopenblas-dev, liblapacke-dev. pkg-config "openblas" adds the include path.
#include <cblas.h>
#include <lapacke.h>
