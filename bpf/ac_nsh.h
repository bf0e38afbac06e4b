/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* NSH (RFC 8300): validate and read, push, pop. The packet layout these helpers work on is
 * always [Ethernet][NSH][inner]; VXLAN-GPE decap restores that layout before calling them. */
#ifndef AC_NSH_H
#define AC_NSH_H

#include "ac_common.h"
#include "ac_parse.h"

#define AC_NSH_MAX_TLVS 61 /* (252 - 8) / 4 */

/* Walk MD type 2 TLVs (bounded), verifying none overruns the header, and pick up anychain's
 * flow hash TLV. nsh points at the base header; len is the validated NSH length. */
AC_INLINE enum ac_drop_reason ac_nsh_md2_walk(void *nsh, void *data_end, __u32 len, struct ac_nsh_info *ni)
{
	__u32 off = AC_NSH_BASE_LEN;

	for (int i = 0; i < AC_NSH_MAX_TLVS; i++) {
		if (off >= len)
			break;
		if (off > AC_NSH_MAX_LEN - sizeof(struct ac_nsh_tlv))
			return AC_DROP_NSH_TLV;
		struct ac_nsh_tlv *tlv = nsh + off;

		if ((void *)(tlv + 1) > data_end)
			return AC_DROP_NSH_TRUNCATED;
		__u32 vlen = tlv->len & 0x7f;
		__u32 next = off + sizeof(*tlv) + ((vlen + 3) & ~3u);

		if (next > len)
			return AC_DROP_NSH_TLV;
		/* RFC 8300 Type is all 8 bits (the "critical" top bit was dropped after the drafts) */
		if (ac_get16(tlv) == bpf_htons(AC_MD_CLASS) && tlv->type == AC_TLV_FLOW_HASH &&
		    vlen == 4) {
			__be32 *v = (void *)(tlv + 1);

			if ((void *)(v + 1) > data_end)
				return AC_DROP_NSH_TRUNCATED;
			ni->hash = bpf_ntohl(*v);
			ni->has_hash = 1;
		}
		off = next;
	}
	if (off != len)
		return AC_DROP_NSH_TLV;
	return AC_DROP_NONE;
}

/* The checks of an NSH's base and service path headers (w0: the first word in host order, md_type
 * and next_proto as in the header, spi_si in network order), in this order: version, MD type
 * against the length, whether the header's length fits (fits: the caller's answer), next
 * protocol, TTL, OAM, SI. Returns 0, or the drop reason. */
AC_INLINE enum ac_drop_reason ac_nsh_check(__u16 w0, __u8 md_type, int fits, __u8 next_proto,
					   __be32 spi_si, __u32 cfg_flags)
{
	__u32 len = AC_NSH_W0_LEN(w0) * 4;
	__u8 md = md_type & 0x0f;

	if (AC_NSH_W0_VER(w0) != AC_NSH_VERSION)
		return AC_DROP_NSH_VERSION;
	if (md == AC_NSH_MD_TYPE1) {
		if (len != AC_NSH_MD1_LEN)
			return AC_DROP_NSH_MD_TYPE;
	} else if (md == AC_NSH_MD_TYPE2) {
		if (len < AC_NSH_BASE_LEN)
			return AC_DROP_NSH_MD_TYPE;
	} else {
		return AC_DROP_NSH_MD_TYPE;
	}
	if (!fits)
		return AC_DROP_NSH_TRUNCATED;
	if (next_proto < AC_NSH_NP_IPV4 || next_proto > AC_NSH_NP_ETH)
		return AC_DROP_NSH_NEXT_PROTO;
	if (AC_NSH_W0_TTL(w0) == 1)
		return AC_DROP_TTL;
	if (AC_NSH_W0_OAM(w0) && !(cfg_flags & AC_CFG_OAM_FORWARD))
		return AC_DROP_OAM;
	if ((spi_si & bpf_htonl(0xff)) == 0)
		return AC_DROP_SI_ZERO;
	return AC_DROP_NONE;
}

/* Validate the NSH after the Ethernet header, decrement its TTL in place (RFC 8300 sec. 2.2:
 * before the forwarding lookup; 0 decrements to 63, and what reaches 0 is not forwarded) and
 * fill ni. cfg_flags: ac_config.flags (OAM handling). Returns 0, or the drop reason. */
AC_INLINE enum ac_drop_reason ac_nsh_read(struct xdp_md *ctx, __u32 cfg_flags,
					  struct ac_nsh_info *ni)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_nsh_base *nb = data + sizeof(struct ethhdr);
	struct ac_nsh_sp *sp = (void *)(nb + 1);

	if ((void *)(sp + 1) > data_end)
		return AC_DROP_NSH_TRUNCATED;
	__u16 w0 = bpf_ntohs(ac_get16(nb));
	__u32 len = AC_NSH_W0_LEN(w0) * 4;
	__u8 md = nb->md_type & 0x0f;
	__be32 spi_si = ac_get32(sp);
	enum ac_drop_reason r0 = ac_nsh_check(w0, nb->md_type, (void *)nb + len <= data_end,
					       nb->next_proto, spi_si, cfg_flags);

	if (r0)
		return r0;

	ni->spsi = spi_si;
	ni->len = len;
	ni->np = nb->next_proto;
	ni->md = md;
	ni->has_hash = 0;
	ni->pending = 0;
	ni->hash = 0;
	ni->outer = 0;
	if (md == AC_NSH_MD_TYPE1) {
		struct ac_nsh_md1 *m1 = (void *)(sp + 1);

		if ((void *)(m1 + 1) > data_end)
			return AC_DROP_NSH_TRUNCATED;
		ni->hash = bpf_ntohl(ac_get32(m1));
		ni->has_hash = 1;
	} else {
		enum ac_drop_reason r = ac_nsh_md2_walk(nb, data_end, len, ni);

		if (r)
			return r;
	}
	ac_put16(nb, bpf_htons(AC_NSH_W0_DEC_TTL(w0)));
	return AC_DROP_NONE;
}

/* What ac_nsh_read() makes of a valid MD1 NSH with this SPI/SI word (network order), flow hash
 * and next protocol, for the callers that read it elsewhere (behind outer headers, or held by
 * the proxy); pending: the NSH is not (or no longer) in the packet. */
AC_INLINE struct ac_nsh_info ac_nsh_md1_info(__u32 spsi, __u32 hash, __u8 np, __u8 pending)
{
	struct ac_nsh_info ni = {
		.spsi = spsi,
		.hash = hash,
		.len = AC_NSH_MD1_LEN,
		.np = np,
		.md = AC_NSH_MD_TYPE1,
		.has_hash = 1,
		.pending = pending,
	};

	return ni;
}

/* An MD2 packet from elsewhere without our hash TLV: hash its inner packet once here. */
AC_INLINE void ac_nsh_hash_inner(struct xdp_md *ctx, struct ac_nsh_info *ni, int symmetric)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_tuple t;
	__u16 proto = ni->np == AC_NSH_NP_IPV4 ? ETH_P_IP : ETH_P_IPV6;

	if (ni->np == AC_NSH_NP_ETH)
		return; /* hash 0: one bucket for all Ethernet payloads of the path */
	if (ac_parse_tuple(data, data_end, sizeof(struct ethhdr) + ni->len, proto, &t) == 0)
		ni->hash = ac_flow_hash(&t, symmetric, AC_HASH_SEED);
}

/* The NSH the classifier assigns to a packet of the L3 protocol eth_proto: SPI spi, SI 255.
 * md2: one TLV (anychain class, flow hash). ni->hash is already set. Nothing is written into the
 * packet here: delivery does it (ac_nsh_build), after the outer headers if any, so a classified
 * packet pays one bpf_xdp_adjust_head() whatever its destination. */
AC_INLINE void ac_nsh_classified(struct ac_nsh_info *ni, __u32 spi, __u16 eth_proto, int md2)
{
	ni->np = eth_proto == ETH_P_IP ? AC_NSH_NP_IPV4 : AC_NSH_NP_IPV6;
	ni->md = md2 ? AC_NSH_MD_TYPE2 : AC_NSH_MD_TYPE1;
	ni->len = md2 ? AC_NSH_BASE_LEN + sizeof(struct ac_nsh_tlv) + 4 : AC_NSH_MD1_LEN;
	ni->spsi = bpf_htonl(AC_SPI_SI(spi, 255));
	ni->has_hash = 1;
	ni->pending = 1;
}

/* Write the NSH that ni describes (from ac_nsh_classified) at 'at', in the packet or in a held
 * copy; end bounds the space. Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_nsh_build(void *at, void *end, const struct ac_nsh_info *ni, __u8 ttl)
{
	struct ac_nsh_base *nb = at;
	struct ac_nsh_sp *sp = (void *)(nb + 1);
	__be32 *w = (void *)(sp + 1);

	if ((void *)(w + 4) > end)
		return AC_DROP_TRUNCATED;
	ac_put16(nb, bpf_htons(AC_NSH_W0(AC_NSH_VERSION, ttl, ni->len / 4)));
	nb->md_type = ni->md;
	nb->next_proto = ni->np;
	ac_put32(sp, ni->spsi);
	if (ni->md == AC_NSH_MD_TYPE2) {
		struct ac_nsh_tlv *tlv = (void *)w;

		ac_put16(tlv, bpf_htons(AC_MD_CLASS));
		tlv->type = AC_TLV_FLOW_HASH;
		tlv->len = 4;
		w[1] = bpf_htonl(ni->hash);
	} else {
		w[0] = bpf_htonl(ni->hash);
		w[1] = 0;
		w[2] = 0;
		w[3] = 0;
	}
	return AC_DROP_NONE;
}

/* Remove the NSH: [eth][nsh][L3] -> [eth'][L3] with the given MACs and EtherType.
 * Returns 0 or the drop reason. */
AC_INLINE enum ac_drop_reason ac_nsh_pop(struct xdp_md *ctx, __u32 len, const __u8 *dmac, const __u8 *smac,
			 __u16 eth_proto)
{
	struct ethhdr eth;

	ac_copy_mac(eth.h_dest, dmac);
	ac_copy_mac(eth.h_source, smac);
	eth.h_proto = bpf_htons(eth_proto);
	if (len > AC_NSH_MAX_LEN)
		return AC_DROP_NSH_TRUNCATED;
	if (bpf_xdp_adjust_head(ctx, (int)len))
		return AC_DROP_NO_ROOM;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + sizeof(eth) > data_end)
		return AC_DROP_NSH_TRUNCATED;
	__builtin_memcpy(data, &eth, sizeof(eth));
	return AC_DROP_NONE;
}

AC_INLINE __u16 ac_np_to_ethertype(__u8 np)
{
	return np == AC_NSH_NP_IPV4 ? ETH_P_IP : ETH_P_IPV6;
}

#endif
