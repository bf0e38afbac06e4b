/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test-only stand-in for what the node's fast path does in phase B (docs/state.md 3.10):
 * IPv4/UDP frames to our address and replication port go to the AF_XDP socket of their RX queue;
 * a queue without a socket passes them to the stack (where the UDP socket gets them). Counted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define XR_REDIRECTED 0 /* into the socket of the queue */
#define XR_NO_SOCKET 1  /* ours, but no socket on this queue: to the stack */
#define XR_OTHER 2      /* not ours */

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 3);
} xr_stats SEC(".maps");

const volatile __be32 xr_addr = 0;
const volatile __u16 xr_port = 0;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&xr_stats, &what);

	if (v)
		(*v)++;
}

SEC("xdp")
int xsk_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || ip->daddr != xr_addr || (ip->frag_off & bpf_htons(0x3fff)) ||
	    udp->dest != bpf_htons(xr_port)) {
		count(XR_OTHER);
		return XDP_PASS;
	}
	long r = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	count(r == XDP_REDIRECT ? XR_REDIRECTED : XR_NO_SOCKET);
	return r;
}
