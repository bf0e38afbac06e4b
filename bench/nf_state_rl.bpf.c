// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark only (anychain-bench-nf-state): the rate limiter as built, plus the SI rewind both
 * bench builds share (bpf/nf_crdt.h, ac_nf_bench_rewind). */
#define AC_NF_BENCH_LOOP 1
#include "nf_ratelimit.bpf.c"
