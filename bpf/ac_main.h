/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fast path's dispatch on what arrives (anychain.bpf.c's entry program is this, inlined).
 * Only frames addressed to the receiving interface's own unicast MAC are acted on; others
 * (another host's, broadcast, multicast) go to the stack untouched, so a bridge port or a
 * promiscuous NIC keeps its L2 behaviour and no node forwards another node's copy.
 *   NSH over Ethernet (0x894F)       -> forwarder (from a local NSH-aware VNF or a neighbour)
 *   IPv4/UDP 4790 to our endpoint     -> VXLAN-GPE decap -> forwarder (fragments: the stack
 *                                        reassembles them for the agent, which re-injects them)
 *   IP on a VNF veth                  -> SFC proxy restores the held NSH -> forwarder
 *   IPv4/UDP state port to our endpoint -> the agent's AF_XDP socket of the RX queue
 *                                        (ac_state_xsk), or the stack when it has none
 *   IP on a classifying interface     -> classifier assigns NSH (SI 255) -> forwarder, which
 *                                        writes it at delivery (with any outer headers); an
 *                                        FTC chain's with the control TLV and returned logs
 *   anything else                     -> XDP_PASS, counted
 */
#ifndef AC_MAIN_H
#define AC_MAIN_H

#include "ac_common.h"
#include "ac_maps.h"
#include "ac_counters.h"
#include "ac_classify.h"
#include "ac_forward.h"

/* An interface with an ifindex of AC_IFACE_DIRECT or more (rare): a hash lookup, kept out of
 * line so that the compiler cannot merge it with the array lookup into one call with a variable
 * map, which the verifier could not inline. */
static __noinline const struct ac_iface *ac_iface_hi(__u32 ifindex)
{
	return bpf_map_lookup_elem(&ac_ifaces_hi, &ifindex);
}

/* State replication to our endpoint (docs/state.md 3.10): to the agent's AF_XDP socket of the
 * receiving interface and queue; a queue without one (or beyond the map's slots) passes the
 * datagram to the stack, where the agent's UDP socket on the same port receives it. Either way
 * counted. */
AC_INLINE int ac_state_rx(struct xdp_md *ctx)
{
	__u64 len = ac_pkt_len(ctx);
	__u32 ifindex = ctx->ingress_ifindex, queue = ctx->rx_queue_index;
	int verdict = XDP_PASS;

	if (ifindex < AC_XSK_IFS && queue < AC_XSK_QUEUES)
		verdict = bpf_redirect_map(&ac_state_xsk, AC_XSK_SLOT(ifindex, queue), XDP_PASS);
	ac_counter_add(&ac_stats, verdict == XDP_REDIRECT ? AC_FWD_STATE_XSK : AC_PASS_STATE_NO_XSK,
		       len);
	return verdict;
}

/* A packet of an FTC chain (docs/ftc.md 2.1, 5.2): its NSH (MD2: flow hash, control TLV, the
 * partition's pending logs) is written at once, so the forwarder takes it as an NSH packet
 * (the subprogram every received NSH packet goes through) and the classified path of other
 * chains stays as it is. */
AC_INLINE int ac_ftc_classified_rx(struct xdp_md *ctx, const struct ac_config *cfg,
				   const struct ac_policy *pol, struct ac_nsh_info *ni,
				   const __u8 *rx_dmac)
{
	struct ac_ftc_staged *s = NULL;
	__u32 extra = ac_ftc_stage(cfg, pol, ni->hash, &s);

	if (!s || extra < AC_FTC_CTRL_TLV_LEN || extra > sizeof(s->tlvs))
		return ac_drop(ctx, AC_DROP_NO_ROOM);
	__u32 len = AC_NSH_BASE_LEN + sizeof(struct ac_nsh_tlv) + 4 + extra;

	if (bpf_xdp_adjust_head(ctx, -(int)len)) {
		/* too little headroom for the returned logs (a frame redirected into a veth keeps
		 * about 216 bytes of it): the packet goes with the control TLV only and the logs stay
		 * pending, for the next packet or the forwarder's propagating packet (docs/ftc.md
		 * 5.2); a data packet is not dropped for them */
		if (extra == AC_FTC_CTRL_TLV_LEN)
			return ac_drop(ctx, AC_DROP_NO_ROOM);
		extra = AC_FTC_CTRL_TLV_LEN;
		len = AC_FTC_FIXED_LEN;
		if (bpf_xdp_adjust_head(ctx, -(int)len))
			return ac_drop(ctx, AC_DROP_NO_ROOM);
		ac_note(ctx, AC_NOTE_FTC_PENDING_NO_ROOM);
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *t = data + sizeof(struct ethhdr) + AC_NSH_BASE_LEN + sizeof(struct ac_nsh_tlv) + 4;

	if (extra == AC_FTC_CTRL_TLV_LEN) {
		/* the control TLV alone (nothing pending, the steady state): written in place, not
		 * by a helper call */
		if ((void *)(t + AC_FTC_CTRL_TLV_LEN) > data_end)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		*(__u64 *)t = *(const __u64 *)s->tlvs;
		*(__u32 *)(t + 8) = *(const __u32 *)(s->tlvs + 8);
	} else if (bpf_xdp_store_bytes(ctx, sizeof(struct ethhdr) + AC_NSH_BASE_LEN + sizeof(struct ac_nsh_tlv) + 4,
				       s->tlvs, extra)) {
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct ethhdr *old = data + len;

	if ((void *)(eth + 1) > data_end || (void *)(old + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	ac_copy_mac(eth->h_dest, old->h_dest);
	ac_copy_mac(eth->h_source, old->h_source);
	eth->h_proto = bpf_htons(AC_ETH_P_NSH);
	ni->len = len;
	if (ac_nsh_build(eth + 1, data_end, ni, ac_classified_ttl(cfg)))
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	ni->pending = 0;
	return ac_forward(ctx, cfg, ni, rx_dmac, NULL);
}

/* Plain IPv4/IPv6 that is not VXLAN-GPE for us: proxy return or classification. */
AC_INLINE int ac_ip_rx(struct xdp_md *ctx, const struct ac_config *cfg,
		       const struct ac_iface *ifc, __u16 eth_proto, const __u8 *rx_dmac)
{
	if (ifc->flags & AC_IF_VNF) {
		struct ac_proxy_entry *e = NULL;
		enum ac_drop_reason r = ac_proxy_held(ctx, eth_proto, &e);

		if (r)
			return ac_drop(ctx, r);
		if (!e)
			return ac_pass(ctx, AC_PASS_PROXY_MISS);
		ac_inst_returned_add(ctx, ifc);  /* the VNF answers (liveness) */
		int verdict = ac_proxy_last_hop(ctx, cfg, e, eth_proto, rx_dmac);

		if (verdict >= 0)
			return verdict;
		r = ac_proxy_restore(ctx, eth_proto, e);
		if (r)
			return ac_drop(ctx, r);
		ac_note(ctx, AC_NOTE_PROXY_RETURN);
		return ac_nsh_restored_rx(ctx, cfg, rx_dmac, 0);
	}
	if (!(ifc->flags & AC_IF_CLASSIFY))
		return ac_pass(ctx, AC_PASS_NOT_OURS);

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_tuple t;

	if (ac_parse_tuple(data, data_end, sizeof(struct ethhdr), eth_proto, &t))
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	const struct ac_policy *pol = ac_classify(cfg, &t);

	if (!pol)
		return ac_pass(ctx, AC_PASS_NOT_OURS);

	struct ac_nsh_info ni = {};
	int symmetric = (pol->flags & AC_POL_SYMMETRIC) || (cfg->flags & AC_CFG_SYMMETRIC_HASH);

	ni.hash = ac_flow_hash(&t, symmetric, AC_HASH_SEED);
	ac_nsh_classified(&ni, pol->spi, eth_proto, pol->flags & (AC_POL_MD2 | AC_POL_FTC));
	ac_note(ctx, AC_NOTE_CLASSIFIED);
	if (pol->flags & AC_POL_FTC)
		return ac_ftc_classified_rx(ctx, cfg, pol, &ni, rx_dmac);
	return ac_forward_body(ctx, cfg, &ni, rx_dmac, NULL);
}

/* The whole fast path for one frame: the verdict, every outcome counted in ac_stats. */
AC_INLINE int ac_main(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u32 ifindex = ctx->ingress_ifindex;
	__u8 rx_dmac[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return ac_pass(ctx, AC_PASS_NOT_OURS);
	const struct ac_config *cfg = bpf_map_lookup_elem(&ac_config, &zero);

	if (!cfg || !cfg->gpe_port)
		return ac_pass(ctx, AC_PASS_NO_CONFIG);
	const struct ac_iface *ifc = ifindex < AC_IFACE_DIRECT ?
					     bpf_map_lookup_elem(&ac_ifaces, &ifindex) :
					     ac_iface_hi(ifindex);

	if (!ifc || !(ifc->flags & AC_IF_ATTACHED))
		return ac_pass(ctx, AC_PASS_NO_IFACE);
	if (eth->h_dest[0] & 1)
		return ac_pass(ctx, AC_PASS_MULTICAST);
	if (!ac_mac_eq(eth->h_dest, ifc->mac))
		return ac_pass(ctx, AC_PASS_OTHER_HOST);
	ac_copy_mac(rx_dmac, eth->h_dest);
	if (ifc->flags & AC_IF_SLOW_PATH)
		ac_note(ctx, AC_NOTE_FROM_SLOW_PATH);

	if (eth->h_proto == bpf_htons(AC_ETH_P_NSH))
		return ac_nsh_eth_rx(ctx, cfg, ifc, rx_dmac);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return ac_ip_rx(ctx, cfg, ifc, ETH_P_IPV6, rx_dmac);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return ac_pass(ctx, AC_PASS_NOT_OURS);

	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (ip->protocol == IPPROTO_UDP && ip->daddr == cfg->local_endpoint) {
		if (ip->frag_off & bpf_htons(AC_IP_MF | AC_IP_OFFSET))
			return ac_pass(ctx, AC_PASS_GPE_FRAGMENT);
		struct udphdr *udp = (void *)ip + ip->ihl * 4;

		if (ip->ihl < 5 || (void *)(udp + 1) > data_end)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		if (udp->dest == bpf_htons(cfg->gpe_port)) {
			int verdict = ac_gpe_rx(ctx, cfg, ip, rx_dmac);

			if (verdict >= 0)
				return verdict;
			/* the frame is as it came (the verifier cannot tell: the pointers again) */
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			ip = data + sizeof(struct ethhdr);
			if ((void *)(ip + 1) > data_end)
				return ac_drop(ctx, AC_DROP_TRUNCATED);
			__u32 vni = 0;
			enum ac_drop_reason r = ac_gpe_decap(ctx, ip, data_end, &vni);

			if (r)
				return ac_drop(ctx, r);
			ac_note(ctx, AC_NOTE_GPE_DECAP);
			return ac_nsh_restored_rx(ctx, cfg, rx_dmac, vni);
		}
		if (cfg->state_port && udp->dest == bpf_htons(cfg->state_port))
			return ac_state_rx(ctx);
	}
	return ac_ip_rx(ctx, cfg, ifc, ETH_P_IP, rx_dmac);
}

#endif
