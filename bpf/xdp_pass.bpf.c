// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The empty XDP program: baseline of the benchmarks, and the program put on the far end of a
 * veth so that XDP_REDIRECT into that veth has a NAPI context to land in. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

struct {
	__uint(priority, 50);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdp_pass);

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
