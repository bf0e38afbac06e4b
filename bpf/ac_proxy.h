/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* SFC proxy for NSH-unaware VNFs: hold the NSH while the VNF has the bare packet, restore it
 * (SI - 1) when the packet comes back on the VNF's veth. The key is the veth and a directional
 * hash of the inner 5-tuple, so the VNF must not rewrite the 5-tuple (NAT must be NSH-aware);
 * a fragment is keyed by its datagram (addresses, protocol, identification), so every fragment
 * of it finds the NSH whether or not it carries the ports. The proxy keeps the latest NSH of a
 * flow: per-packet MD2 metadata does not cross it. */
#ifndef AC_PROXY_H
#define AC_PROXY_H

#include "ac_nsh.h"
#include "ac_counters.h"
#include "ac_slow.h"

AC_INLINE int ac_proxy_key_of(struct xdp_md *ctx, __u32 off, __u16 eth_proto, __u32 ifindex,
			      struct ac_proxy_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_tuple t;
	__u64 frag_id = 0;

	if (ac_parse_tuple_frag(data, data_end, off, eth_proto, &t, &frag_id))
		return -1;
	if (frag_id) {
		t.sport = (__u16)frag_id;
		t.dport = (__u16)(frag_id >> 16);
	}
	key->ifindex = ifindex;
	/* another seed for fragments: a datagram's key never equals a flow's */
	key->hash = ac_flow_hash(&t, 0, frag_id ? AC_PROXY_FRAG_SEED : AC_PROXY_HASH_SEED);
	return 0;
}

/* A frame from the instance behind the VNF veth ifc, recognised as its chain's traffic (a held
 * flow's packet back to the proxy, or a valid NSH frame from an NSH-aware VNF): counted in
 * ac_inst_returned, the agent's sign that the instance answers. */
AC_INLINE void ac_inst_returned_add(struct xdp_md *ctx, const struct ac_iface *ifc)
{
	if ((ifc->flags & AC_IF_VNF) && ifc->instance_id)
		ac_counter_add(&ac_inst_returned, ifc->instance_id, ac_pkt_len(ctx));
}

enum ac_nsh_copy {
	AC_NSH_TO_HELD,    /* packet -> held copy (the proxy keeps it) */
	AC_NSH_TO_PACKET,  /* held copy -> packet (the proxy restores it) */
};

/* Copy the NSH (len bytes, a multiple of 4, at most AC_PROXY_NSH_MAX) between the packet, right
 * after its Ethernet header, and a held copy, a word at a time. A bounded loop with a packet
 * check per word keeps every access provably in range on every kernel: a variable-length
 * bpf_xdp_load/store_bytes() is rejected by 6.1's verifier when the compiler spills the checked
 * length and reloads it for the call. Returns 0, or -1 if the packet is shorter than len. */
AC_INLINE int ac_nsh_copy(struct xdp_md *ctx, __u8 *held, __u32 len, enum ac_nsh_copy dir)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	for (__u32 i = 0; i < AC_PROXY_NSH_MAX / 4; i++) {
		if (i * 4 >= len)
			break;
		__u32 *p = data + sizeof(struct ethhdr) + i * 4;

		if ((void *)(p + 1) > data_end)
			return -1;
		if (dir == AC_NSH_TO_PACKET)
			__builtin_memcpy(p, held + i * 4, 4);
		else
			__builtin_memcpy(held + i * 4, p, 4);
	}
	return 0;
}

/* Whether two held NSHs of len bytes (a multiple of 4, at most AC_PROXY_NSH_MAX) are equal. */
AC_INLINE int ac_nsh_same(const __u8 *a, const __u8 *b, __u32 len)
{
	for (__u32 i = 0; i < AC_PROXY_NSH_MAX / 4; i++) {
		if (i * 4 >= len)
			break;
		if (*(const __u32 *)(a + i * 4) != *(const __u32 *)(b + i * 4))
			return 0;
	}
	return 1;
}

/* Whether the NSH in the packet, right after its Ethernet header, equals the held copy of len
 * bytes (a multiple of 4, at most AC_PROXY_NSH_MAX): 1 if it does, 0 if not, -1 if the packet is
 * shorter than len. */
AC_INLINE int ac_nsh_same_as_held(struct xdp_md *ctx, const __u8 *held, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	for (__u32 i = 0; i < AC_PROXY_NSH_MAX / 4; i++) {
		if (i * 4 >= len)
			break;
		const __u32 *p = data + sizeof(struct ethhdr) + i * 4;

		if ((void *)(p + 1) > data_end)
			return -1;
		if (*p != *(const __u32 *)(held + i * 4))
			return 0;
	}
	return 1;
}

/* Deliver to an NSH-unaware local instance. A classified packet (NSH pending) is already bare:
 * the proxy holds the NSH the classifier assigned and only the MACs change. */
AC_INLINE int ac_proxy_deliver(struct xdp_md *ctx, const struct ac_config *cfg,
			       const struct ac_nsh_info *ni, const struct ac_instance *inst)
{
	struct ac_proxy_key key;
	__u32 zero = 0;
	__u32 len = ni->len;
	__u16 proto;

	if (ni->np == AC_NSH_NP_ETH)
		return ac_drop(ctx, AC_DROP_NSH_NEXT_PROTO); /* proxy serves IP payloads only */
	proto = ac_np_to_ethertype(ni->np);
	if (ac_proxy_key_of(ctx, sizeof(struct ethhdr) + (ni->pending ? 0 : len), proto, inst->ifindex,
			    &key))
		return ac_drop(ctx, AC_DROP_TRUNCATED);
	if (len < AC_NSH_BASE_LEN || len > AC_PROXY_NSH_MAX)
		return ac_drop(ctx, AC_DROP_NSH_TRUNCATED);
	/* A flow's packets mostly carry the same NSH: then the held copy stays as it is (the
	 * lookup refreshes its LRU age), which saves replacing a 272-byte element per packet. The
	 * NSH in the packet is compared with the held copy where it is; only a new or changed one
	 * is copied out (the packet holds all len bytes: ac_nsh_read() checked them). */
	struct ac_proxy_entry *held = bpf_map_lookup_elem(&ac_proxy, &key);
	int same = held && held->len == len && !ni->pending;

	if (same) {
		same = ac_nsh_same_as_held(ctx, held->nsh, len);
		if (same < 0)
			return ac_drop(ctx, AC_DROP_NSH_TRUNCATED);
	}
	if (!same) {
		struct ac_proxy_entry *e = bpf_map_lookup_elem(&ac_scratch, &zero);

		if (!e)
			return ac_drop(ctx, AC_DROP_NSH_TRUNCATED);
		if (ni->pending) {
			if (ac_nsh_build(e->nsh, e->nsh + sizeof(e->nsh), ni, ac_classified_ttl(cfg)))
				return ac_drop(ctx, AC_DROP_NSH_TRUNCATED);
		} else if (ac_nsh_copy(ctx, e->nsh, len, AC_NSH_TO_HELD)) {
			return ac_drop(ctx, AC_DROP_NSH_TRUNCATED);
		}
		e->len = len;
		/* a forwarded NSH was already found different in place; a classified one is
		 * built here and may equal the held copy */
		if (!held || held->len != len || !ni->pending || !ac_nsh_same(held->nsh, e->nsh, len))
			bpf_map_update_elem(&ac_proxy, &key, e, BPF_ANY);
	}

	if (ni->pending) {
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > data_end)
			return ac_drop(ctx, AC_DROP_TRUNCATED);
		ac_copy_mac_w(eth->h_dest, inst->mac);
		ac_copy_mac_w(eth->h_source, inst->if_mac);
	} else {
		enum ac_drop_reason r = ac_nsh_pop(ctx, len, inst->mac, inst->if_mac, proto);

		if (r)
			return ac_drop(ctx, r);
	}
	/* the veth carries the bare inner packet */
	if (inst->mtu && ac_pkt_len(ctx) - sizeof(struct ethhdr) > inst->mtu)
		return ac_slow_too_big(ctx, cfg->slow_ifindex, inst->ifindex, inst->mtu,
				       sizeof(struct ethhdr));
	return ac_redirect(ctx, AC_FWD_LOCAL_PROXY, inst->ifindex);
}

/* The NSH held for a bare IP packet back from the VNF on its veth (ctx->ingress_ifindex): *ep is
 * set when one is held (else the packet is not chain traffic). Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_proxy_held(struct xdp_md *ctx, __u16 eth_proto,
					    struct ac_proxy_entry **ep)
{
	struct ac_proxy_key key;

	*ep = NULL;
	if (ac_proxy_key_of(ctx, sizeof(struct ethhdr), eth_proto, ctx->ingress_ifindex, &key))
		return AC_DROP_TRUNCATED;
	struct ac_proxy_entry *e = bpf_map_lookup_elem(&ac_proxy, &key);

	if (e && e->len >= AC_NSH_BASE_LEN && e->len <= AC_PROXY_NSH_MAX)
		*ep = e;
	return AC_DROP_NONE;
}

/* Put the held NSH e (from ac_proxy_held) back with SI - 1, making the packet [eth][NSH][L3].
 * Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_proxy_restore(struct xdp_md *ctx, __u16 eth_proto,
					       const struct ac_proxy_entry *e)
{
	struct ethhdr eth;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = e->len;

	if (len < AC_NSH_BASE_LEN || len > AC_PROXY_NSH_MAX)
		return AC_DROP_NSH_TRUNCATED;
	if (data + sizeof(eth) > data_end)
		return AC_DROP_TRUNCATED;
	__builtin_memcpy(&eth, data, sizeof(eth));
	eth.h_proto = bpf_htons(AC_ETH_P_NSH);
	if (bpf_xdp_adjust_head(ctx, -(int)len))
		return AC_DROP_NO_ROOM;
	if (ac_nsh_copy(ctx, (__u8 *)e->nsh, len, AC_NSH_TO_PACKET))
		return AC_DROP_NO_ROOM;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ac_nsh_base *nb = data + sizeof(eth);
	struct ac_nsh_sp *sp = (void *)(nb + 1);

	if ((void *)(sp + 1) > data_end)
		return AC_DROP_TRUNCATED;
	__builtin_memcpy(data, &eth, sizeof(eth));
	nb->next_proto = eth_proto == ETH_P_IP ? AC_NSH_NP_IPV4 : AC_NSH_NP_IPV6;
	/* the proxy acts for the VNF: SI - 1 (SI 0 is then dropped by the forwarder) */
	__u32 spsi = bpf_ntohl(ac_get32(sp));

	if (spsi & 0xff)
		ac_put32(sp, bpf_htonl(spsi - 1));
	return AC_DROP_NONE;
}

#endif
