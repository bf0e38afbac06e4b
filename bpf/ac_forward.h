/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The service function forwarder: (SPI, SI) -> service -> instance -> deliver; last hop. */
#ifndef AC_FORWARD_H
#define AC_FORWARD_H

#include "ac_nsh.h"
#include "ac_gpe.h"
#include "ac_select.h"
#include "ac_proxy.h"
#include "ac_slow.h"
#include "ac_ftc.h"

/* Route the frame at ctx->data, whose inner packet has these addresses (four words for both
 * families: an IPv4 address is word 0 and three zero words), TOS, protocol and length and came in
 * on the ingress interface: from the last-hop cache when it holds the answer, else through the
 * FIB, keeping a success for the next packets (see struct ac_lasthop). A hit reads the packet's
 * fields as they are and touches no FIB parameters. *out_ifindex gets the egress interface.
 * Returns what ac_fib_resolve() returns, or -2 without FIB parameters. */
AC_INLINE long ac_last_hop_route(struct xdp_md *ctx, const struct ac_config *cfg, const __be32 *src,
				 const __be32 *dst, __u8 family, __u8 tos, __u8 l4_protocol,
				 __u16 tot_len, const __u8 *rx_dmac, __u64 now, __u32 *out_ifindex)
{
	__u64 ttl = cfg->nexthop_ttl_jiffies;
	/* read before the FIB is asked: a change after this read makes the entry stale */
	__u16 gen = AC_READ_ONCE(cfg->fib_gen);
	__u32 in_ifindex = ctx->ingress_ifindex;
	__u32 slot = ac_lasthop_slot(src, dst, in_ifindex);
	struct ac_lasthop *lh = ttl ? bpf_map_lookup_elem(&ac_lasthop, &slot) : NULL;

	if (lh && now < lh->expires && lh->fib_gen == gen && lh->in_ifindex == in_ifindex &&
	    lh->family == family &&
	    lh->tos == tos && lh->l4_protocol == l4_protocol && tot_len <= lh->mtu &&
	    lh->src[0] == src[0] && lh->dst[0] == dst[0] && lh->src[1] == src[1] &&
	    lh->dst[1] == dst[1] && lh->src[2] == src[2] && lh->dst[2] == dst[2] &&
	    lh->src[3] == src[3] && lh->dst[3] == dst[3]) {
		void *data = (void *)(long)ctx->data;
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
			return -1;
		ac_copy_mac_w(eth->h_dest, lh->dmac);
		ac_copy_mac_w(eth->h_source, lh->smac);
		*out_ifindex = lh->ifindex;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	struct bpf_fib_lookup *p = ac_fib_params();

	if (!p)
		return -2;
	p->family = family;
	p->tos = tos;
	p->l4_protocol = l4_protocol;
	p->tot_len = tot_len;
	p->ifindex = in_ifindex;
	__builtin_memcpy(p->ipv6_src, src, sizeof(p->ipv6_src));
	__builtin_memcpy(p->ipv6_dst, dst, sizeof(p->ipv6_dst));
	/* the key before the lookup: on success the FIB writes the gateway into the destination */
	if (lh) {
		lh->expires = 0; /* valid again only after a successful lookup */
		__builtin_memcpy(lh->src, src, sizeof(lh->src));
		__builtin_memcpy(lh->dst, dst, sizeof(lh->dst));
		lh->in_ifindex = in_ifindex;
		lh->family = family;
		lh->tos = tos;
		lh->l4_protocol = l4_protocol;
		lh->fib_gen = gen;
	}
	long rc = ac_fib_resolve(ctx, p, rx_dmac, NULL);

	*out_ifindex = p->ifindex;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || !lh)
		return rc;
	lh->ifindex = p->ifindex;
	ac_copy_mac_w(lh->smac, p->smac);
	ac_copy_mac_w(lh->dmac, p->dmac);
	lh->mtu = p->mtu_result; /* output on success since Linux 5.12 */
	lh->expires = now + ttl;
	return rc;
}

/* End of chain: pop NSH and route the inner packet (the last-hop cache, else the FIB). */
AC_INLINE int ac_last_hop(struct xdp_md *ctx, const struct ac_config *cfg,
			  const struct ac_nsh_info *ni, const __u8 *rx_dmac, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (ni->np == AC_NSH_NP_ETH) {
		/* the inner frame is the packet: hand it to the stack as received here */
		if (bpf_xdp_adjust_head(ctx, (int)(sizeof(*eth) + (ni->len & 0xff))))
			return ac_drop(ctx, AC_DROP_NO_ROOM);
		return ac_pass(ctx, AC_PASS_LAST_HOP);
	}
	__u16 proto = ac_np_to_ethertype(ni->np);
	long rc;

	/* a classified packet whose chain ends here has no NSH yet: route it as it came */
	if (!ni->pending) {
		int r = ac_nsh_pop(ctx, ni->len, rx_dmac, eth->h_source, proto);

		if (r)
			return ac_drop(ctx, r);
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	__u32 out_ifindex = 0;

	if (proto == ETH_P_IP) {
		struct iphdr *ip = data + sizeof(struct ethhdr);

		if ((void *)(ip + 1) > data_end)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		if (ip->ttl <= 1)
			return ac_pass(ctx, AC_PASS_LAST_HOP); /* the stack sends time exceeded */
		__be32 src[4] = { ip->saddr }, dst[4] = { ip->daddr };

		rc = ac_last_hop_route(ctx, cfg, src, dst, AF_INET, ip->tos, ip->protocol,
				       bpf_ntohs(ip->tot_len), rx_dmac, now, &out_ifindex);
		if (rc == -2)
			return ac_drop(ctx, AC_DROP_NO_ROOM);
		if (rc < 0)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return ac_pass(ctx, AC_PASS_LAST_HOP);
		ip = (void *)(long)ctx->data + sizeof(struct ethhdr);
		if ((void *)(ip + 1) > (void *)(long)ctx->data_end)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		ac_ipv4_dec_ttl(ip);
		return ac_redirect(ctx, AC_FWD_LAST_HOP, out_ifindex);
	}
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	if ((void *)(ip6 + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (ip6->hop_limit <= 1)
		return ac_pass(ctx, AC_PASS_LAST_HOP);
	__be32 src6[4], dst6[4];

	__builtin_memcpy(src6, &ip6->saddr, sizeof(src6));
	__builtin_memcpy(dst6, &ip6->daddr, sizeof(dst6));
	rc = ac_last_hop_route(ctx, cfg, src6, dst6, AF_INET6, 0, ip6->nexthdr,
			       bpf_ntohs(ip6->payload_len) + sizeof(*ip6), rx_dmac, now, &out_ifindex);
	if (rc == -2)
		return ac_drop(ctx, AC_DROP_NO_ROOM);
	if (rc < 0)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ac_pass(ctx, AC_PASS_LAST_HOP);
	ip6 = (void *)(long)ctx->data + sizeof(struct ethhdr);
	if ((void *)(ip6 + 1) > (void *)(long)ctx->data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	ip6->hop_limit--;
	return ac_redirect(ctx, AC_FWD_LAST_HOP, out_ifindex);
}

/* Proxy return at the end of a chain (a proxied VNF last, the common case): when the held NSH e
 * is an MD1 header that the forwarder would accept after SI - 1, and this CPU's flow cache
 * already knows that (SPI, SI - 1) of the flow as a last hop of the current path epoch, the
 * packet is routed as the VNF sent it back: the NSH is neither put back nor popped again (two
 * bpf_xdp_adjust_head() calls and the forwarder's call fewer). Everything the forwarder does for
 * it is done here as it would do it (the note, the path counter with the NSH's bytes, the way's
 * last use, the last hop); every other case (another SI, a miss, MD2, an NSH the forwarder
 * would drop) returns -1 and takes the full restore, so the forwarder decides and counts it. */
AC_INLINE int ac_proxy_last_hop(struct xdp_md *ctx, const struct ac_config *cfg,
				const struct ac_proxy_entry *e, __u16 eth_proto, const __u8 *rx_dmac)
{
	if (e->len != AC_NSH_MD1_LEN)
		return -1;
	const struct ac_nsh_base *nb = (const void *)e->nsh;
	const struct ac_nsh_sp *sp = (const void *)(nb + 1);
	const struct ac_nsh_md1 *m1 = (const void *)(sp + 1);
	__u16 w0 = bpf_ntohs(ac_get16(nb));
	__be32 spi_si = ac_get32(sp);
	__u32 spsi = bpf_ntohl(spi_si);

	/* ac_nsh_read()'s checks, on the NSH as the restore would write it (with SI - 1) */
	if ((nb->md_type & 0x0f) != AC_NSH_MD_TYPE1 || (spsi & 0xff) < 2 ||
	    ac_nsh_check(w0, nb->md_type, 1, nb->next_proto, spi_si, cfg->flags))
		return -1;
	__u32 epoch = AC_READ_ONCE(cfg->path_epoch);
	__u32 next = bpf_htonl(spsi - 1);
	__u32 hash = bpf_ntohl(ac_get32(m1));
	struct ac_flow_set *set = ac_flow_set_get(cfg, ac_flow_set_of(next, hash, cfg->flow_set_mask));
	struct ac_flow *f = set ? ac_flow_find(set, next, hash) : NULL;

	if (!f || f->path_epoch != epoch || f->service_id)
		return -1;
	/* pending: not in the packet, ac_last_hop() routes the packet as it is */
	struct ac_nsh_info ni = ac_nsh_md1_info(next, hash,
						eth_proto == ETH_P_IP ? AC_NSH_NP_IPV4 : AC_NSH_NP_IPV6, 1);
	__u64 now = bpf_jiffies64();
	__u64 bytes = ac_pkt_len(ctx) + AC_NSH_MD1_LEN; /* as counted with the NSH restored */

	ac_counter_add(&ac_stats, AC_NOTE_PROXY_RETURN, bytes);
	ac_counter_add(&ac_path_stats, f->path_slot, bytes);
	f->last_seen = now;
	return ac_last_hop(ctx, cfg, &ni, rx_dmac, now);
}

/* The last hop of a VXLAN-GPE packet (ac_gpe_rx()): the outer headers (outer bytes behind the
 * Ethernet header) and the MD1 NSH go in one bpf_xdp_adjust_head(), the inner packet (np, behind
 * the NSH, checked by the caller) is routed. f: the flow's way, a last hop of the current epoch. */
AC_INLINE int ac_gpe_pop_last_hop(struct xdp_md *ctx, const struct ac_config *cfg, __u32 outer,
				  __u8 np, __u32 spsi, __u32 hash, struct ac_flow *f,
				  const __u8 *rx_dmac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	/* the frame as the full path counts it: [eth][NSH][inner] */
	__u64 bytes = ac_pkt_len(ctx) - outer;
	struct ethhdr neth;

	/* ac_nsh_pop()'s header: to our MAC from the sender's */
	ac_copy_mac(neth.h_dest, rx_dmac);
	ac_copy_mac(neth.h_source, eth->h_source);
	neth.h_proto = bpf_htons(ac_np_to_ethertype(np));
	/* cannot fail (the inner L3 header is behind) */
	enum ac_drop_reason why = ac_move_head_eth(ctx, (int)(outer + AC_NSH_MD1_LEN), &neth);

	if (why)
		return ac_drop(ctx, why);

	/* pending: popped already, ac_last_hop() routes the packet as it is */
	struct ac_nsh_info ni = ac_nsh_md1_info(spsi, hash, np, 1);
	__u64 now = bpf_jiffies64();

	ac_counter_add(&ac_stats, AC_NOTE_GPE_DECAP, bytes);
	ac_counter_add(&ac_path_stats, f->path_slot, bytes);
	f->last_seen = now;
	return ac_last_hop(ctx, cfg, &ni, rx_dmac, now);
}

/* Forward a packet laid out [eth][NSH][inner] whose NSH is described by ni; at: the flow-cache
 * lookup already made for it (struct ac_flow_at), or NULL to make it here. */
AC_INLINE int ac_forward_body(struct xdp_md *ctx, const struct ac_config *cfg,
			      const struct ac_nsh_info *ni, const __u8 *rx_dmac,
			      const struct ac_flow_at *at)
{
	/* the clock of the flow cache (LRU order, idle timeout) and the next-hop cache: jiffies,
	 * which the verifier inlines (one load, no helper call) */
	__u64 now = bpf_jiffies64();
	struct ac_fwd_path path;
	struct ac_flow *f;
	int cached;
	/* the frame as counted, [eth][NSH][inner] ([eth][inner] with the NSH pending): without the
	 * outer headers of VXLAN-GPE in transit (ni->outer), which come off (ac_outer_off()) only
	 * once the packet is known not to leave over VXLAN-GPE again */
	__u64 frame = ac_pkt_len(ctx) - ni->outer;
	enum ac_drop_reason why;

	if (ac_flow_path(cfg, ni, now, at, &f, &path, &cached))
		return ac_drop_bytes(AC_DROP_NO_PATH, frame);
	/* the packet as delivered: with the classifier's NSH when it is still to be written */
	__u64 bytes = frame + (ni->pending ? ni->len : 0);

	ac_counter_add(&ac_path_stats, path.slot, bytes);
	if (!path.service_id) {
		if (f)
			f->last_seen = now;
		why = ac_outer_off(ctx, ni);
		if (why)
			return ac_drop(ctx, why);
		/* an FTC packet leaves the chain through the egress buffer, or here when its logs
		 * are committed already */
		if (ni->md == AC_NSH_MD_TYPE2 && !ni->pending && ac_ftc_marked(ctx)) {
			if (!ac_ftc_committed(ctx, bpf_ntohl(ni->spsi) >> 8, ni->hash))
				return ac_ftc_to_buffer(ctx);
			ac_ftc_count_end(ctx);
		}
		return ac_last_hop(ctx, cfg, ni, rx_dmac, now);
	}

	__u32 id = 0;
	const struct ac_instance *inst = NULL;

	/* From another node: the sending SFF chose the instance and named it in the VNI; it owns
	 * that choice. Deliver to it when it is ours, and when it is ours but gone, drop: the owner
	 * places the flow again once, where re-placing it here too would move it twice (and nodes
	 * re-balancing each other's choices could loop). */
	if (ni->vni) {
		__u32 vni = ni->vni;
		const struct ac_instance *named = bpf_map_lookup_elem(&ac_instances, &vni);

		if (named && (named->flags & AC_INST_LOCAL) && named->service_id == path.service_id) {
			if (!(named->flags & AC_INST_LIVE))
				return ac_drop_bytes((named->flags & AC_INST_RECOVERING) ?
							     AC_DROP_FTC_RECOVERING :
							     AC_DROP_INSTANCE_GONE,
						     frame);
			inst = named;
			id = vni;
		}
	}
	if (!inst)
		inst = ac_select(frame, cfg, path.service_id, ni->spsi, ni->hash, f, cached, now, &id);

	if (!inst)
		return ac_drop_bytes(id == AC_FTC_FROZEN_ID ? AC_DROP_FTC_RECOVERING : AC_DROP_NO_INSTANCE,
				     frame);
	ac_counter_add(&ac_inst_stats, id, bytes);
	if (!(inst->flags & AC_INST_LOCAL))
		return ac_gpe_encap_fwd(ctx, cfg, inst, id, ni, now, rx_dmac);
	why = ac_outer_off(ctx, ni);
	if (why)
		return ac_drop(ctx, why);
	if (!(inst->flags & AC_INST_NSH_AWARE)) {
		if (ni->md == AC_NSH_MD_TYPE2 && !ni->pending && ac_ftc_marked(ctx))
			return ac_drop(ctx, AC_DROP_FTC_PROXY);
		return ac_proxy_deliver(ctx, cfg, ni, inst);
	}

	if (ni->pending && bpf_xdp_adjust_head(ctx, -(int)ni->len))
		return ac_drop(ctx, AC_DROP_NO_ROOM);

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (ni->pending) {
		if (ac_nsh_build(eth + 1, data_end, ni, ac_classified_ttl(cfg)))
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		eth->h_proto = bpf_htons(AC_ETH_P_NSH);
	}
	ac_copy_mac_w(eth->h_dest, inst->mac);
	ac_copy_mac_w(eth->h_source, inst->if_mac);
	/* the veth carries NSH + inner after the Ethernet header */
	if (inst->mtu && data_end - (void *)(eth + 1) > inst->mtu)
		return ac_slow_too_big(ctx, cfg->slow_ifindex, inst->ifindex,
				       inst->mtu > ni->len ? inst->mtu - ni->len : 0,
				       sizeof(*eth) + ni->len);
	return ac_redirect(ctx, AC_FWD_LOCAL_NSH, inst->ifindex);
}

/* The forwarder as one BPF subprogram, verified and JIT-ed once for the entry points that call
 * it (VXLAN-GPE decap, proxy return); NSH over Ethernet and the classifier inline it, which
 * saves the call and return (each several ns with the SRSO return thunk). at: as for
 * ac_forward_body(). */
static __noinline int ac_forward(struct xdp_md *ctx, const struct ac_config *cfg,
				 const struct ac_nsh_info *ni, const __u8 *rx_dmac,
				 const struct ac_flow_at *at)
{
	return ac_forward_body(ctx, cfg, ni, rx_dmac, at);
}

/* Validate the NSH at ctx->data + 14 (decrementing its TTL) and describe it in ni; vni: see
 * struct ac_nsh_info. Returns 0 or the drop reason. */
AC_INLINE int ac_nsh_accept(struct xdp_md *ctx, const struct ac_config *cfg, __u32 vni,
			    struct ac_nsh_info *ni)
{
	int r = ac_nsh_read(ctx, cfg->flags, ni);

	if (r)
		return r;
	ni->vni = vni;
	if (!ni->has_hash)
		ac_nsh_hash_inner(ctx, ni, cfg->flags & AC_CFG_SYMMETRIC_HASH);
	return 0;
}

/* NSH over Ethernet (from a neighbour or a local NSH-aware VNF, received on ifc): the forwarder
 * inlined. A valid NSH from a VNF's veth is its instance answering (liveness). */
AC_INLINE int ac_nsh_eth_rx(struct xdp_md *ctx, const struct ac_config *cfg, const struct ac_iface *ifc,
			    const __u8 *rx_dmac)
{
	struct ac_nsh_info ni;
	int r = ac_nsh_accept(ctx, cfg, 0, &ni);

	if (r)
		return ac_drop(ctx, r);
	ac_inst_returned_add(ctx, ifc);
	return ac_forward_body(ctx, cfg, &ni, rx_dmac, NULL);
}

/* NSH that VXLAN-GPE decap (vni) or the proxy (vni 0) has just put at ctx->data + 14: the
 * forwarder called as a subprogram. */
AC_INLINE int ac_nsh_restored_rx(struct xdp_md *ctx, const struct ac_config *cfg,
				 const __u8 *rx_dmac, __u32 vni)
{
	struct ac_nsh_info ni;
	int r = ac_nsh_accept(ctx, cfg, vni, &ni);

	if (r)
		return ac_drop(ctx, r);
	return ac_forward(ctx, cfg, &ni, rx_dmac, NULL);
}

/* VXLAN-GPE to our endpoint (ip: the outer IPv4 header, its UDP destination port checked by the
 * caller) carrying an MD1 NSH the forwarder would accept, the common case: the NSH is read where
 * it is, behind the outer headers, and the flow is looked up once in this CPU's flow cache.
 * - At its last hop (the way knows the flow's (SPI, SI) as a last hop of the current path epoch,
 *   an inner IPv4/IPv6 header behind the NSH): ac_gpe_pop_last_hop(), one move for the outer
 *   headers and the NSH where the full path makes two and a subprogram call.
 * - Anywhere else (a local VNF, another node, a miss, a stale way): the NSH's TTL decremented
 *   as ac_nsh_read() does, and the forwarder is handed the NSH as read here, the lookup's result
 *   (so neither is done twice) and the outer headers' length (ni.outer): it writes the new outer
 *   headers over the old ones when the packet leaves over VXLAN-GPE again (no move at all), and
 *   removes them (ac_outer_off()) before anything else it does with the packet.
 * Counted as on the full path (the decap note with the frame as decapsulated). Any other packet
 * (MD2, a header the full path would drop) returns -1 untouched: the full path (ac_gpe_decap(),
 * then the forwarder) decides and counts. */
AC_INLINE int ac_gpe_rx(struct xdp_md *ctx, const struct ac_config *cfg, struct iphdr *ip,
			const __u8 *rx_dmac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 ihl = ip->ihl * 4;
	struct ac_vxlan_gpe *gpe = (void *)ip + ihl + sizeof(struct udphdr);
	struct ac_nsh_base *nb = (void *)(gpe + 1);
	struct ac_nsh_sp *sp = (void *)(nb + 1);
	struct ac_nsh_md1 *m1 = (void *)(sp + 1);

	if (ihl > 60 || (void *)(eth + 1) > data_end || (void *)(m1 + 1) > data_end)
		return -1;
	if (!(gpe->flags & AC_GPE_FLAG_P) || (gpe->flags & AC_GPE_VER_MASK) ||
	    gpe->next_proto != AC_GPE_NP_NSH)
		return -1;
	__u16 w0 = bpf_ntohs(ac_get16(nb));
	__u8 np = nb->next_proto;
	__u32 spsi = ac_get32(sp);

	if ((nb->md_type & 0x0f) != AC_NSH_MD_TYPE1 ||
	    ac_nsh_check(w0, nb->md_type, 1, np, spsi, cfg->flags))
		return -1;
	__u32 epoch = AC_READ_ONCE(cfg->path_epoch);
	__u32 hash = bpf_ntohl(ac_get32(m1));
	__u32 outer = ihl + sizeof(struct udphdr) + sizeof(*gpe);
	struct ac_flow_at at;

	at.set = ac_flow_set_get(cfg, ac_flow_set_of(spsi, hash, cfg->flow_set_mask));
	at.way = at.set ? ac_flow_find(at.set, spsi, hash) : NULL;
	if (at.way && at.way->path_epoch == epoch && !at.way->service_id && np != AC_NSH_NP_ETH &&
	    (void *)(m1 + 1) + (np == AC_NSH_NP_IPV4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) <=
		    data_end)
		return ac_gpe_pop_last_hop(ctx, cfg, outer, np, spsi, hash, at.way, rx_dmac);

	/* ac_nsh_read()'s TTL decrement; the outer headers stay where they are (ni.outer): the
	 * forwarder writes over them if the packet leaves over VXLAN-GPE again, else removes them */
	struct ac_nsh_info ni = ac_nsh_md1_info(spsi, hash, np, 0);

	ni.vni = (gpe->flags & AC_GPE_FLAG_I) ? bpf_ntohl(ac_get32(&gpe->vni_res)) >> 8 : 0;
	ni.outer = outer;
	ac_put16(nb, bpf_htons(AC_NSH_W0_DEC_TTL(w0)));
	/* the frame as decapsulated, as the full path counts it */
	ac_counter_add(&ac_stats, AC_NOTE_GPE_DECAP, ac_pkt_len(ctx) - outer);
	return ac_forward(ctx, cfg, &ni, rx_dmac, &at);
}

#endif
