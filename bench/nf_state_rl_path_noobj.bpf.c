// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark only (anychain-bench-nf-state --path): bpf/nf_ratelimit.bpf.c without its shared
 * objects, everything else as built (no SI rewind: the frame goes on along the chain). */
#define AC_NF_BENCH_NO_OBJECTS 1
#include "nf_ratelimit.bpf.c"
