// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark-only programs (never loaded by anychaind or the CLI): the fast path (ac_main, the
 * very code of bpf/anychain.bpf.c's entry, inlined) and the empty program, each wrapped so that
 * the frame is put back as it came in after every run.
 *
 * Why: non-live BPF_PROG_TEST_RUN runs the program `repeat` times on one buffer and restores
 * nothing between iterations, so a path that pushes or pops headers sees its own output from the
 * second iteration on and takes another path. The wrapper saves the frame's bytes, runs the
 * body, moves the start of the frame back where it was (bpf_xdp_adjust_head, called on every
 * run, with delta 0 when nothing moved) and writes the bytes back, so every iteration of a large
 * repeat count takes the same path, with warm caches like a NIC polling a batch. The fast path
 * only ever moves the start of the frame (never its end) and the frames it is benchmarked with
 * are at most AC_LOOP_WORDS * 8 bytes long. The wrapper's own cost is measured with the empty
 * body on the same frame and subtracted (docs/performance.md); the benchmark checks that each
 * call's output frame equals its input.
 *
 * The maps are the fast path's own: libbpf reuses the ones the benchmark's node pinned.
 */
#include "ac_main.h"

#define AC_LOOP_WORDS 32 /* frames up to 256 bytes */

struct ac_loop_saved {
	__u64 w[AC_LOOP_WORDS];
	__u64 len;   /* frame length before the run */
	__u64 words; /* words saved */
	__u32 flow;  /* many flows: this run's flow, 0 .. ac_loop_flows - 1 */
	__u32 pad;
};

/* Many flows (set by the benchmark between phases; 0 = off): after the frame is saved, the
 * 32-bit word at ac_loop_hash_off (an NSH MD1 context header's flow hash) is replaced by the
 * hash of flow 0, 1, ..., ac_loop_flows - 1, 0, ... in turn, one per run, in both wrappers
 * alike. The hashes are i * an odd constant: distinct in their low bits, so up to as many flows
 * as the cache has sets each take a set of its own (no conflict misses), in no memory order. */
volatile __u32 ac_loop_flows;
volatile __u32 ac_loop_hash_off;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_loop_saved);
} ac_loop_saved SEC(".maps");

/* Nothing of the wrapper lives on the stack or in registers across the body (the fast path
 * uses nearly all of the 512-byte stack): the saved state is in the per-CPU map. */
AC_INLINE int ac_loop_save(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct ac_loop_saved *s = bpf_map_lookup_elem(&ac_loop_saved, &zero);

	if (!s)
		return -1;
	s->len = data_end - data;
	s->words = 0;
#pragma unroll
	for (int i = 0; i < AC_LOOP_WORDS; i++) {
		__u64 *p = data + i * 8;

		if ((void *)(p + 1) > data_end)
			break;
		s->w[i] = *p;
		s->words = i + 1;
	}
	__u32 flows = ac_loop_flows;

	if (flows) {
		__u32 off = ac_loop_hash_off & 0xff;
		__u32 *h = data + off;

		if ((void *)(h + 1) > data_end)
			return -1;
		*h = bpf_htonl(s->flow * 0x9e3779b1u + 0x5bd1e995u);
		s->flow = s->flow + 1 >= flows ? 0 : s->flow + 1;
	}
	return 0;
}

AC_INLINE int ac_loop_restore(struct xdp_md *ctx, int verdict)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct ac_loop_saved *s = bpf_map_lookup_elem(&ac_loop_saved, &zero);

	if (!s)
		return XDP_ABORTED;
	__s64 cur = data_end - data;

	/* keep clang from folding the saved length into packet pointer arithmetic */
	asm volatile("" : "+r"(cur));
	__s64 delta = cur - (__s64)s->len;

	if (bpf_xdp_adjust_head(ctx, (int)delta))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	__u64 n = s->words;
#pragma unroll
	for (int i = 0; i < AC_LOOP_WORDS; i++) {
		__u64 *p = data + i * 8;

		if ((__u64)i >= n || (void *)(p + 1) > data_end)
			break;
		*p = s->w[i];
	}
	return verdict;
}

SEC("xdp")
int loop_anychain(struct xdp_md *ctx)
{
	if (ac_loop_save(ctx))
		return XDP_ABORTED;
	return ac_loop_restore(ctx, ac_main(ctx));
}

SEC("xdp")
int loop_empty(struct xdp_md *ctx)
{
	if (ac_loop_save(ctx))
		return XDP_ABORTED;
	return ac_loop_restore(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
