// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Counts the packets it sees and passes them: a stand-in for "another XDP program" sharing an
 * interface with anychain through libxdp's dispatcher (tests/vm). Under the dispatcher a
 * component runs as an freplace (BPF_PROG_TYPE_EXT) program, whose run_cnt the kernel does
 * not account, so the count lives in a map: xdp_count_pkts[0]. Priority 50 runs it after
 * anychain (10); it continues the chain on XDP_PASS. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xdp_count_pkts SEC(".maps");

struct {
	__uint(priority, 50);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdp_count);

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&xdp_count_pkts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
