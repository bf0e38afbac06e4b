// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The end-to-end benchmark's own XDP programs (bench/e2e_bench.cc; never installed, never
 * loaded by anychaind or the CLI). One object is loaded per network namespace that needs one,
 * so each namespace has its own counters and tables.
 *
 *   e2e_gen  the traffic generator: run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES,
 *            it writes the frame's headers from a template (live frames are recycled pages
 *            whose bytes are whatever the last user left), gives each packet the source port
 *            of its flow (round robin over `flows`) and redirects it into the source veth; paced
 *            (ns_per_pkt), it drops the frames that come before their time instead (per CPU).
 *   e2e_fwd  the reference "bare XDP redirect": egress interface and both MACs by ingress
 *            ifindex, MACs rewritten, bpf_redirect(). Nothing else.
 *   e2e_vnf  a VNF that is never the bottleneck: NSH over Ethernet gets SI - 1 (what an
 *            NSH-aware VNF does to the service path header), every frame gets its MACs
 *            swapped and goes back with XDP_TX; with e2e_vnf_drop set it is the counting
 *            receiver instead (XDP_DROP). Both count packets and bytes per CPU.
 *   e2e_pass XDP_PASS, see below.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "anychain/nsh.h"

#include "e2e_maps.h"

/* [0]: frames handled (generated, forwarded, reflected or received); [1]: frames the forwarder
 * had no entry for (passed) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct e2e_count);
} e2e_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct e2e_gen_cfg);
} e2e_gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);   /* [0]: frames sent, [1]: paced, when the next one may go (ns) */
	__type(key, __u32);
	__type(value, __u64);
} e2e_gen_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, E2E_FWD_SLOTS);
	__type(key, __u32);
	__type(value, struct e2e_fwd_entry);
} e2e_fwd_table SEC(".maps");

/* set before load: 1 = count and drop (the receiver), 0 = reflect (the VNF) */
const volatile __u32 e2e_vnf_drop = 0;

static __always_inline void e2e_count(struct xdp_md *ctx, __u32 slot)
{
	struct e2e_count *c = bpf_map_lookup_elem(&e2e_counts, &slot);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
}

SEC("xdp")
int e2e_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, one = 1;
	const struct e2e_gen_cfg *cfg = bpf_map_lookup_elem(&e2e_gen_cfg, &zero);
	__u64 *seq = bpf_map_lookup_elem(&e2e_gen_seq, &zero);
	__u64 *next = bpf_map_lookup_elem(&e2e_gen_seq, &one);

	if (!cfg || !seq || !next || data + E2E_HDR_LEN > data_end)
		return XDP_ABORTED;
	if (cfg->ns_per_pkt) {
		__u64 now = bpf_ktime_get_ns(), n = *next;

		if (now < n)
			return XDP_DROP;
		n += cfg->ns_per_pkt;
		if (n + 64 * cfg->ns_per_pkt < now)
			n = now;  /* far behind (the start, or the CPU was away): no catching up */
		*next = n;
	}
	__builtin_memcpy(data, cfg->hdr, E2E_HDR_LEN);
	__u32 flow = cfg->flows > 1 ? (__u32)(*seq % cfg->flows) : 0;
	__be16 *sport = data + E2E_SPORT_OFF;

	*sport = bpf_htons((__u16)(cfg->base_port + flow));
	(*seq)++;
	e2e_count(ctx, 0);
	return bpf_redirect(cfg->ifindex, 0);
}

SEC("xdp")
int e2e_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 in = ctx->ingress_ifindex;
	const struct e2e_fwd_entry *f;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	f = bpf_map_lookup_elem(&e2e_fwd_table, &in);
	if (!f || !f->ifindex) {
		e2e_count(ctx, 1);
		return XDP_PASS;
	}
	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	e2e_count(ctx, 0);
	return bpf_redirect(f->ifindex, 0);
}

SEC("xdp")
int e2e_vnf(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];

	e2e_count(ctx, 0);
	if (e2e_vnf_drop)
		return XDP_DROP;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(AC_ETH_P_NSH)) {
		struct ac_nsh_sp *sp = (void *)(eth + 1) + sizeof(struct ac_nsh_base);

		if ((void *)(sp + 1) > data_end)
			return XDP_DROP;
		__u32 w = bpf_ntohl(sp->spi_si);

		sp->spi_si = bpf_htonl((w & ~0xffu) | ((w - 1) & 0xff));
	}
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return XDP_TX;
}

/* Linux forwarding and OVS with AF_PACKET ports: put on the router's interfaces towards the VNFs.
 * A veth whose peer sends frames back with XDP_TX is only woken up for them when it has an XDP
 * program (veth_xdp_flush() skips the wake-up otherwise); this one passes every frame to the
 * stack, where a GRO-only veth would have delivered it too. */
SEC("xdp")
int e2e_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
