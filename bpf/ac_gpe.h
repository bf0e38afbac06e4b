/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN-GPE over IPv4/UDP between nodes, next protocol NSH. */
#ifndef AC_GPE_H
#define AC_GPE_H

#include "ac_fib.h"
#include "ac_slow.h"

/* Move the frame's start by delta bytes (bpf_xdp_adjust_head()) and write eth as the Ethernet
 * header there: AC_DROP_NONE, or the reason it could not. */
AC_INLINE enum ac_drop_reason ac_move_head_eth(struct xdp_md *ctx, int delta, const struct ethhdr *eth)
{
	if (bpf_xdp_adjust_head(ctx, delta))
		return AC_DROP_NO_ROOM;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + sizeof(*eth) > data_end)
		return AC_DROP_TRUNCATED;
	__builtin_memcpy(data, eth, sizeof(*eth));
	return AC_DROP_NONE;
}

/* [eth][outer bytes][NSH] -> [eth][NSH]: the outer headers removed, the Ethernet header kept
 * with EtherType NSH. Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_decap_eth(struct xdp_md *ctx, __u32 outer)
{
	struct ethhdr eth;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + sizeof(eth) > data_end)
		return AC_DROP_TRUNCATED;
	__builtin_memcpy(&eth, data, sizeof(eth));
	eth.h_proto = bpf_htons(AC_ETH_P_NSH);
	return ac_move_head_eth(ctx, (int)outer, &eth);
}

/* [eth][IPv4][UDP][GPE][NSH] addressed to us -> [eth][NSH]. ip is the validated outer IPv4
 * header; the UDP destination port was checked by the caller. Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_gpe_decap(struct xdp_md *ctx, struct iphdr *ip, void *data_end, __u32 *vni)
{
	__u32 ihl = ip->ihl * 4;
	struct ac_vxlan_gpe *gpe = (void *)ip + ihl + sizeof(struct udphdr);

	if (ihl > 60 || (void *)(gpe + 1) > data_end)
		return AC_DROP_TRUNCATED;
	if (!(gpe->flags & AC_GPE_FLAG_P) || (gpe->flags & AC_GPE_VER_MASK))
		return AC_DROP_GPE_FLAGS;
	if (gpe->next_proto != AC_GPE_NP_NSH)
		return AC_DROP_GPE_NEXT_PROTO;
	*vni = (gpe->flags & AC_GPE_FLAG_I) ? bpf_ntohl(ac_get32(&gpe->vni_res)) >> 8 : 0;
	return ac_decap_eth(ctx, ihl + sizeof(struct udphdr) + sizeof(*gpe));
}

/* Outer headers still in front of the NSH (ni->outer, VXLAN-GPE in transit) come off: before
 * the forwarder delivers, pops or hands the packet to the stack; only a packet leaving over
 * VXLAN-GPE again keeps them, written over (ac_gpe_encap_fwd()). Nothing to do (and nothing
 * emitted where the compiler sees ni->outer 0) for every other packet. */
AC_INLINE enum ac_drop_reason ac_outer_off(struct xdp_md *ctx, const struct ac_nsh_info *ni)
{
	return ni->outer ? ac_decap_eth(ctx, ni->outer) : AC_DROP_NONE;
}

/* [eth][NSH] -> [eth][IPv4][UDP][GPE][NSH] to the instance's node, routed by FIB. */
AC_INLINE int ac_gpe_encap_fwd(struct xdp_md *ctx, const struct ac_config *cfg,
			       const struct ac_instance *inst, __u32 id,
			       const struct ac_nsh_info *ni, __u64 now, const __u8 *rx_dmac)
{
	__u32 hash = ni->hash;
	/* [eth][NSH][L3] -> [eth][IPv4][UDP][GPE][NSH][L3]: the old Ethernet header is overwritten;
	 * a classified packet ([eth][L3], NSH pending) gets its NSH in the same move. VXLAN-GPE in
	 * transit ([eth][outer][NSH][L3], ni->outer) keeps its outer headers' room: every byte of
	 * the new Ethernet, IPv4, UDP and VXLAN-GPE headers is written below, so those of the old
	 * ones are written over, and the frame does not move unless the old IPv4 header had options. */
	int delta = (int)ni->outer - (int)(AC_GPE_OUTER_LEN + (ni->pending ? ni->len : 0));

	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return ac_drop(ctx, AC_DROP_NO_ROOM);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct ac_vxlan_gpe *gpe = (void *)(udp + 1);

	if ((void *)(gpe + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (ni->pending && ac_nsh_build(gpe + 1, data_end, ni, ac_classified_ttl(cfg)))
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	__u16 ip_len = (__u16)(data_end - (void *)ip);

	__be32 saddr = cfg->local_endpoint, daddr = inst->endpoint;
	/* version 4, IHL 5, TOS 0 | total length; ID 0 | DF; TTL 64 | UDP | checksum. DF: the
	 * fast path never fragments and checks the size against the route's MTU, so the datagram
	 * is atomic and RFC 6864 sec. 4.1 lets its ID be 0; an underlay hop with a smaller MTU
	 * answers ICMP, which the kernel turns into a path MTU that bpf_fib_lookup() then reports
	 * (docs/slow-path.md). */
	__u32 csum = bpf_htons(0x4500) + bpf_htons(ip_len) + bpf_htons(AC_IP_DF) +
		     bpf_htons(64 << 8 | IPPROTO_UDP) + (saddr & 0xffff) + (saddr >> 16) +
		     (daddr & 0xffff) + (daddr >> 16);

	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	eth->h_proto = bpf_htons(ETH_P_IP);
	/* whole words (the header's bytes in network order), no bitfield read-modify-write */
	__be32 *ipw = (__be32 *)ip;

	ipw[0] = bpf_htonl(0x45000000u | ip_len);
	ipw[1] = bpf_htonl(AC_IP_DF);
	ipw[2] = bpf_htonl(64u << 24 | IPPROTO_UDP << 16);
	ip->check = (__u16)~csum; /* summed as loaded, so stored as is */
	ip->saddr = saddr;
	ip->daddr = daddr;
	/* source port from the flow hash so ECMP in the underlay keeps a flow on one path */
	udp->source = bpf_htons(0xc000 | (hash & 0x3fff));
	udp->dest = bpf_htons(cfg->gpe_port);
	udp->len = bpf_htons(ip_len - sizeof(*ip));
	udp->check = 0;
	/* flags I|P, reserved; reserved, next protocol NSH; VNI, reserved */
	__be32 *gw = (__be32 *)gpe;

	gw[0] = bpf_htonl((__u32)(AC_GPE_FLAG_I | AC_GPE_FLAG_P) << 24 | AC_GPE_NP_NSH);
	gw[1] = bpf_htonl(inst->vni << 8);

	/* Next-hop cache: a FIB result for this instance, asked for the same ingress interface and
	 * source, is used until it expires or the instance's generation changes. */
	__u64 nh_ttl = cfg->nexthop_ttl_jiffies;
	/* read before the FIB is asked: a change after this read makes the entry stale */
	__u16 fib_gen = AC_READ_ONCE(cfg->fib_gen);
	__u32 in_ifindex = ctx->ingress_ifindex;
	__u32 slot = ac_nexthop_slot(id, in_ifindex);
	struct ac_nexthop *nh = nh_ttl ? bpf_map_lookup_elem(&ac_nexthop, &slot) : NULL;

	if (nh && now < nh->expires && nh->instance_id == id && nh->fib_gen == fib_gen &&
	    nh->generation == inst->generation && nh->in_ifindex == in_ifindex &&
	    nh->saddr == saddr && ip_len <= nh->mtu) {
		ac_copy_mac_w(eth->h_dest, nh->dmac);
		ac_copy_mac_w(eth->h_source, nh->smac);
		return ac_redirect(ctx, AC_FWD_REMOTE, nh->ifindex);
	}

	struct bpf_fib_lookup *p = ac_fib_params();

	if (!p)
		return ac_drop(ctx, AC_DROP_NO_ROOM);

	/* the new Ethernet header's source, should the FIB hand the packet to the stack */
	ac_copy_mac(eth->h_source, rx_dmac);
	p->family = AF_INET;
	p->l4_protocol = IPPROTO_UDP;
	p->tot_len = ip_len;
	p->ipv4_src = saddr;
	p->ipv4_dst = ip->daddr;
	p->ifindex = in_ifindex;
	if (nh) {
		nh->expires = 0; /* valid again only after a successful lookup */
		nh->instance_id = id;
		nh->generation = inst->generation;
		nh->fib_gen = fib_gen;
		nh->in_ifindex = in_ifindex;
		nh->saddr = saddr;
	}
	long rc = ac_fib_resolve(ctx, p, rx_dmac, nh);

	if (rc < 0)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return ac_pass(ctx, AC_PASS_NO_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* the FIB's MTU for the route (p->mtu_result) minus the outer headers and the NSH */
		__u32 room = AC_GPE_OUTER_LEN + (ni->len & 0xff);

		return ac_slow_too_big(ctx, cfg->slow_ifindex, 0,
				       p->mtu_result > room ? p->mtu_result - room : 0,
				       sizeof(struct ethhdr) + room);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ac_drop(ctx, AC_DROP_FIB);
	if (nh)
		nh->expires = now + nh_ttl;
	return ac_redirect(ctx, AC_FWD_REMOTE, p->ifindex);
}

#endif
