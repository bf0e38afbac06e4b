// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark only (anychain-bench-nf-state): the rate limiter with its shared counter left out
 * (no window lookup, no merged read, no atomic add, no change log), everything else the same. */
#define AC_NF_BENCH_LOOP 1
#define AC_NF_BENCH_NO_OBJECTS 1
#include "nf_ratelimit.bpf.c"
