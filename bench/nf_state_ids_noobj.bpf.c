// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark only (anychain-bench-nf-state): the port-scan detector with its objects left out (no
 * flag lookup, no filter, no sketch), everything else the same. */
#define AC_NF_BENCH_LOOP 1
#define AC_NF_BENCH_NO_OBJECTS 1
#include "nf_ids.bpf.c"
