/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every built-in NF program (bpf/nf_<kind>.bpf.c, docs/nf.md) shares: the NSH check on
 * arrival, the inner packet's headers, checksum updates, the counters, and the way a packet goes
 * back to the node's fast path (SI - 1, MACs swapped, XDP_TX). The FTC hop and the state API are
 * bpf/nf_state.h's; an NF's program is
 *
 *	ac_nf_rx(ctx)                             NSH checked, counted
 *	v = ac_ftc_hop_begin(ctx, &hop, now)      HOLD / DROP / PLAIN / CONTINUE
 *	... the NF's work on the inner packet (at ETH_HLEN + hop.nsh_len), transactions ...
 *	ac_nf_finish(ctx, &hop, v, filtered)      FTC: the NSH rebuilt (filtered: propagating);
 *	                                          plain: a filtered packet dropped; else returned
 */
#ifndef AC_NF_COMMON_H
#define AC_NF_COMMON_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "nf_state.h"
#include <anychain/nf.h>

/* ICMP echo (linux/icmp.h pulls in libc headers) */
struct ac_nf_icmp {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};
#define AC_NF_ICMP_ECHOREPLY 0
#define AC_NF_ICMP_ECHO 8

#define AC_NF_IP_MF 0x2000
#define AC_NF_IP_OFFSET 0x1fff

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_NF_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} nf_stats SEC(".maps");

AC_INLINE void ac_nf_count(enum ac_nf_stat st)
{
	__u32 k = st;
	__u64 *c = bpf_map_lookup_elem(&nf_stats, &k);

	if (c)
		*c += 1;
}

/* The NSH of an arriving frame, checked enough for the FTC hop and the NF: Ethernet type NSH,
 * version 0, MD type 1 (6 words) or 2, length inside the frame, SI > 0. 0 if good. */
AC_INLINE int ac_nf_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 *nb = data + ETH_HLEN;
	__u32 md, len;

	ac_nf_count(AC_NF_RX);
	if ((void *)(nb + AC_NSH_BASE_LEN) > data_end || eth->h_proto != bpf_htons(AC_ETH_P_NSH))
		return -1;
	md = nb[2] & 0x0f;
	len = (nb[1] & 0x3f) * 4;
	if ((nb[0] >> 6) != AC_NSH_VERSION || nb[7] == 0 || (void *)(nb + len) > data_end)
		return -1;
	if (md == AC_NSH_MD_TYPE1 ? len != AC_NSH_MD1_LEN : md != AC_NSH_MD_TYPE2 || len < AC_NSH_BASE_LEN)
		return -1;
	return 0;
}

/* Back to the fast path: SI - 1, MACs swapped, XDP_TX (the NF model: the veth's host side). */
AC_INLINE int ac_nf_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 *nsh = data + ETH_HLEN;
	__u8 mac[ETH_ALEN];

	if ((void *)(nsh + AC_NSH_BASE_LEN) > data_end) {
		ac_nf_count(AC_NF_DROP_BAD_NSH);
		return XDP_DROP;
	}
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	nsh[7] -= 1;
	ac_nf_count(AC_NF_TX);
	return XDP_TX;
}

/* The end of every NF program after its work: v is ac_ftc_hop_begin's verdict (PLAIN or
 * CONTINUE). An FTC packet is rebuilt (a filtered one leaves as a propagating packet, docs/ftc.md
 * 5.3); a plain filtered packet is dropped. */
AC_INLINE int ac_nf_finish(struct xdp_md *ctx, struct ac_ftc_hop *hop, enum ac_ftc_verdict v, int filtered)
{
	if (v == AC_FTC_CONTINUE) {
		if (filtered)
			ac_ftc_propagate(hop);
		if (ac_ftc_hop_finish(ctx, hop) != AC_FTC_CONTINUE) {
			ac_nf_count(AC_NF_DROP_FTC);
			return XDP_DROP;
		}
		if (hop->propagating)
			ac_nf_count(AC_NF_PROPAGATING);
	} else if (filtered) {
		ac_nf_count(AC_NF_DROP_FILTERED);
		return XDP_DROP;
	}
	return ac_nf_tx(ctx);
}

/* The inner packet's headers (IPv4 or IPv6) at offset off of the frame. */
struct ac_nf_inner {
	__u32 l3;                /* offset of the IP header */
	__u32 l4;                /* offset of the transport header (0: none, a non-first fragment) */
	__u32 len;               /* L3 bytes (the IP packet as it lies in the frame) */
	__u8 family;             /* 4 or 6; 0: not IP */
	__u8 proto;
	__u8 frag;               /* IPv4 fragment (MF or offset) */
	__u8 pad;
	__be32 src[4], dst[4];
	__be16 sport, dport;     /* TCP/UDP ports, ICMP echo id as sport (0 when none) */
};

/* Parse the inner packet after an NSH of nsh_len bytes; next protocol from the NSH. 0: parsed
 * (family 0 for a protocol that is not IP), -1: truncated or malformed. */
AC_INLINE int ac_nf_parse_inner(struct xdp_md *ctx, __u32 nsh_len, struct ac_nf_inner *in)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *nb = data + ETH_HLEN;
	__u32 off = ETH_HLEN + (nsh_len & 0xff);
	void *l4p = 0;

	__builtin_memset(in, 0, sizeof(*in));
	if ((void *)(nb + AC_NSH_BASE_LEN) > data_end)
		return -1;
	in->l3 = off;
	in->len = (__u32)(data_end - data) - off;
	if (nb[3] == AC_NSH_NP_IPV4) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return -1;
		if (bpf_ntohs(ip->tot_len) < ip->ihl * 4 || bpf_ntohs(ip->tot_len) > in->len)
			return -1;
		in->family = 4;
		in->len = bpf_ntohs(ip->tot_len);
		in->proto = ip->protocol;
		in->src[0] = ip->saddr;
		in->dst[0] = ip->daddr;
		in->frag = (ip->frag_off & bpf_htons(AC_NF_IP_MF | AC_NF_IP_OFFSET)) != 0;
		if (ip->frag_off & bpf_htons(AC_NF_IP_OFFSET))
			return 0; /* a non-first fragment: no transport header */
		in->l4 = off + ip->ihl * 4;
		l4p = data + in->l4;
	} else if (nb[3] == AC_NSH_NP_IPV6) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return -1;
		if (sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > in->len)
			return -1;
		in->family = 6;
		in->len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		in->proto = ip6->nexthdr;
		__builtin_memcpy(in->src, &ip6->saddr, 16);
		__builtin_memcpy(in->dst, &ip6->daddr, 16);
		in->l4 = off + sizeof(*ip6); /* extension headers are not walked: their protocol counts */
		l4p = data + in->l4;
	} else {
		return 0;
	}
	if (in->proto == IPPROTO_TCP || in->proto == IPPROTO_UDP) {
		__be16 *ports = l4p;

		if ((void *)(ports + 2) > data_end)
			return -1;
		in->sport = ports[0];
		in->dport = ports[1];
	} else if (in->proto == IPPROTO_ICMP && in->family == 4) {
		struct ac_nf_icmp *ic = l4p;

		if ((void *)(ic + 1) > data_end)
			return -1;
		if (ic->type == AC_NF_ICMP_ECHO || ic->type == AC_NF_ICMP_ECHOREPLY)
			in->sport = ic->id;
	}
	return 0;
}

/* What every NF does before its own work: the NSH checked (cfg_ok: the NF's configuration maps
 * were found), the FTC hop begun (a gap handed to the hold queue, a bad log dropped), a
 * propagating packet forwarded without the NF, the inner packet parsed. Returns AC_NF_WORK when
 * the NF is to run on `in`, else the verdict to return (counted). */
#define AC_NF_WORK (-1)
AC_INLINE int ac_nf_begin(struct xdp_md *ctx, int cfg_ok, struct ac_ftc_hop *hop, enum ac_ftc_verdict *v,
			  struct ac_nf_inner *in)
{
	if (ac_nf_rx(ctx) || !cfg_ok) {
		ac_nf_count(AC_NF_DROP_BAD_NSH);
		return XDP_DROP;
	}
	*v = ac_ftc_hop_begin(ctx, hop, bpf_jiffies64());
	if (*v == AC_FTC_HOLD) {
		ac_nf_count(AC_NF_HOLD);
		return ac_ftc_hold();
	}
	if (*v == AC_FTC_DROP) {
		ac_nf_count(AC_NF_DROP_FTC);
		return XDP_DROP;
	}
	if (hop->propagating)
		return ac_nf_finish(ctx, hop, *v, 0);
	if (ac_nf_parse_inner(ctx, hop->nsh_len, in)) {
		ac_nf_count(AC_NF_DROP_BAD_INNER);
		return XDP_DROP;
	}
	return AC_NF_WORK;
}

/* The 13-byte IPv4 flow key of docs/ftc.md 2.5: src, dst, proto, sport, dport (big-endian), in
 * a zeroed AC_FTC_KEY_MAX buffer. */
AC_INLINE void ac_nf_key4(__u8 *key, __be32 src, __be32 dst, __u8 proto, __be16 sport, __be16 dport)
{
	__builtin_memcpy(key, &src, 4);
	__builtin_memcpy(key + 4, &dst, 4);
	key[8] = proto;
	__builtin_memcpy(key + 9, &sport, 2);
	__builtin_memcpy(key + 11, &dport, 2);
}

/* One's-complement checksum update for a 16- or 32-bit field (RFC 1624, eqn. 3). */
AC_INLINE __u16 ac_nf_csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

AC_INLINE __sum16 ac_nf_csum_replace2(__sum16 check, __be16 from, __be16 to)
{
	__u32 s = (__u16)~check + (__u16)~from + (__u16)to;

	return (__sum16)~ac_nf_csum_fold(s);
}

AC_INLINE __sum16 ac_nf_csum_replace4(__sum16 check, __be32 from, __be32 to)
{
	__u32 s = (__u16)~check;

	s += (__u16)~(__u16)from + (__u16)~(__u16)(from >> 16);
	s += (__u16)to + (__u16)(to >> 16);
	return (__sum16)~ac_nf_csum_fold(s);
}

#endif /* AC_NF_COMMON_H */
