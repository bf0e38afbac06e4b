/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The service function forwarder: (SPI, SI) -> service -> instance -> deliver; last hop. */
#ifndef AC_FORWARD_H
#define AC_FORWARD_H

#include "ac_nsh.h"
#include "ac_gpe.h"
#include "ac_select.h"
#include "ac_proxy.h"

/* End of chain: pop NSH and route the inner packet through the FIB. */
AC_INLINE int ac_last_hop(struct xdp_md *ctx, const struct ac_nsh_info *ni, const __u8 *rx_dmac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
	if (ni->np == AC_NSH_NP_ETH) {
		/* the inner frame is the packet: hand it to the stack as received here */
		if (bpf_xdp_adjust_head(ctx, (int)(sizeof(*eth) + (ni->len & 0xff))))
			return AC_DROP(ctx, AC_R_DROP_NO_ROOM);
		return AC_PASS(ctx, AC_R_PASS_LAST_HOP);
	}
	__u16 proto = ac_np_to_ethertype(ni->np);
	int r;

	/* a classified packet whose chain ends here has no NSH yet: route it as it came */
	if (!ni->pending) {
		r = ac_nsh_pop(ctx, ni->len, rx_dmac, eth->h_source, proto);
		if (r)
			return AC_DROP(ctx, r);
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	struct bpf_fib_lookup p = {};

	p.ifindex = ctx->ingress_ifindex;
	if (proto == ETH_P_IP) {
		struct iphdr *ip = data + sizeof(struct ethhdr);

		if ((void *)(ip + 1) > data_end)
			return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
		if (ip->ttl <= 1)
			return AC_PASS(ctx, AC_R_PASS_LAST_HOP); /* the stack sends time exceeded */
		p.family = AF_INET;
		p.tos = ip->tos;
		p.l4_protocol = ip->protocol;
		p.tot_len = bpf_ntohs(ip->tot_len);
		p.ipv4_src = ip->saddr;
		p.ipv4_dst = ip->daddr;
		r = ac_fib_redirect(ctx, &p, AC_R_FWD_LAST_HOP, AC_R_PASS_LAST_HOP,
				    AC_R_PASS_LAST_HOP, rx_dmac, NULL);
		if (r == XDP_REDIRECT) {
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			ip = data + sizeof(struct ethhdr);
			if ((void *)(ip + 1) <= data_end)
				ac_ipv4_dec_ttl(ip);
		}
		return r;
	}
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	if ((void *)(ip6 + 1) > data_end)
		return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
	if (ip6->hop_limit <= 1)
		return AC_PASS(ctx, AC_R_PASS_LAST_HOP);
	p.family = AF_INET6;
	p.l4_protocol = ip6->nexthdr;
	p.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	r = ac_fib_redirect(ctx, &p, AC_R_FWD_LAST_HOP, AC_R_PASS_LAST_HOP, AC_R_PASS_LAST_HOP,
			    rx_dmac, NULL);
	if (r == XDP_REDIRECT) {
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		ip6 = data + sizeof(struct ethhdr);
		if ((void *)(ip6 + 1) <= data_end)
			ip6->hop_limit--;
	}
	return r;
}

/* Forward a packet laid out [eth][NSH][inner] whose NSH is described by ni. */
AC_INLINE int ac_forward_body(struct xdp_md *ctx, const struct ac_config *cfg,
			      const struct ac_nsh_info *ni, const __u8 *rx_dmac)
{
	/* the clock of the flow cache (LRU order, idle timeout) and the next-hop cache: jiffies,
	 * which the verifier inlines (one load, no helper call) */
	__u64 now = bpf_jiffies64();
	struct ac_fwd_path path;
	struct ac_flow *f;
	int cached;

	if (ac_flow_path(cfg, ni, now, &f, &path, &cached))
		return AC_DROP(ctx, AC_R_DROP_NO_PATH);
	/* the packet as delivered: with the classifier's NSH when it is still to be written */
	__u64 bytes = ac_pkt_len(ctx) + (ni->pending ? ni->len : 0);

	ac_counter_add(&ac_path_stats, path.slot, bytes);
	if (!path.service_id) {
		if (f)
			f->last_seen = now;
		return ac_last_hop(ctx, ni, rx_dmac);
	}

	__u32 id = 0;
	const struct ac_instance *inst = NULL;

	/* From another node: the sending SFF chose the instance and named it in the VNI. Deliver
	 * to it when it is ours, so nodes never re-balance each other's choices (no loops). */
	if (ni->vni) {
		inst = ac_instance(ni->vni);
		if (inst && (inst->flags & AC_INST_LOCAL) && inst->service_id == path.service_id)
			id = ni->vni;
		else
			inst = NULL;
	}
	if (!inst)
		inst = ac_select(ctx, cfg, path.service_id, ni->hash, f, cached, now, &id);

	if (!inst)
		return AC_DROP(ctx, AC_R_DROP_NO_INSTANCE);
	ac_counter_add(&ac_inst_stats, id, bytes);
	if (!(inst->flags & AC_INST_LOCAL))
		return ac_gpe_encap_fwd(ctx, cfg, inst, id, ni, now, rx_dmac);
	if (!(inst->flags & AC_INST_NSH_AWARE))
		return ac_proxy_deliver(ctx, ni, inst, cfg->default_ttl);

	if (ni->pending && bpf_xdp_adjust_head(ctx, -(int)ni->len))
		return AC_DROP(ctx, AC_R_DROP_NO_ROOM);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
	if (ni->pending) {
		if (ac_nsh_build(eth + 1, data_end, ni, cfg->default_ttl))
			return AC_DROP(ctx, AC_R_DROP_TRUNCATED);
		eth->h_proto = bpf_htons(AC_ETH_P_NSH);
	}
	ac_copy_mac(eth->h_dest, inst->mac);
	ac_copy_mac(eth->h_source, inst->if_mac);
	return ac_verdict(ctx, AC_R_FWD_LOCAL_NSH, bpf_redirect(inst->ifindex, 0));
}

/* The forwarder as one BPF subprogram, verified and JIT-ed once for the entry points that call
 * it (VXLAN-GPE decap, proxy return); NSH over Ethernet and the classifier inline it. */
static __noinline int ac_forward(struct xdp_md *ctx, const struct ac_config *cfg,
			 const struct ac_nsh_info *ni, const __u8 *rx_dmac)
{
	return ac_forward_body(ctx, cfg, ni, rx_dmac);
}

/* Validate the NSH at ctx->data + 14 and forward it (vni: see struct ac_nsh_info). inline_fwd: the forwarder is inlined
 * (NSH over Ethernet: saves the subprogram call and return, which with the SRSO return thunk
 * cost several ns) instead of called. */
AC_INLINE int ac_nsh_rx(struct xdp_md *ctx, const struct ac_config *cfg, const __u8 *rx_dmac,
			__u32 vni, int inline_fwd)
{
	struct ac_nsh_info ni;
	int r = ac_nsh_read(ctx, &ni);

	if (r)
		return AC_DROP(ctx, r);
	ni.vni = vni;
	if (!ni.has_hash)
		ac_nsh_hash_inner(ctx, &ni, cfg->flags & AC_CFG_SYMMETRIC_HASH);
	if (inline_fwd)
		return ac_forward_body(ctx, cfg, &ni, rx_dmac);
	return ac_forward(ctx, cfg, &ni, rx_dmac);
}

#endif
