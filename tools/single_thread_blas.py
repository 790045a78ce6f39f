"""Imported first by the benchmark references, before numpy: one BLAS
thread, as in the benchmarks' budget. The BLAS pools read these variables
when numpy is first imported, so they must be set before that."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
