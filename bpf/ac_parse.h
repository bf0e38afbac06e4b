/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bounded parsing of IPv4/IPv6 + L4 ports into an ac_tuple. */
#ifndef AC_PARSE_H
#define AC_PARSE_H

#include "ac_common.h"

#define AC_IP_DF 0x4000
#define AC_IP_MF 0x2000
#define AC_IP_OFFSET 0x1fff

struct ac_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

/* Parse the L3 packet at data + off (eth_proto: ETH_P_IP or ETH_P_IPV6, host order).
 * Returns 0 and fills t, or -1 if the headers are truncated. frag_id (may be NULL): set to the
 * datagram's fragment identification | 1 << 32 when the packet is a fragment, else 0. */
AC_INLINE int ac_parse_tuple_frag(void *data, void *data_end, __u64 off, __u16 eth_proto,
				  struct ac_tuple *t, __u64 *frag_id)
{
	__u64 l4off;

	__builtin_memset(t, 0, sizeof(*t));
	if (off > 14 + AC_NSH_MAX_LEN)
		return -1;
	off &= 0x1ff;
	if (eth_proto == ETH_P_IP) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > data_end)
			return -1;
		if (ip->ihl < 5)
			return -1;
		t->family = 4;
		t->proto = ip->protocol;
		t->src[0] = ip->saddr;
		t->dst[0] = ip->daddr;
		if (ip->frag_off & bpf_htons(AC_IP_MF | AC_IP_OFFSET)) {
			if (frag_id)
				*frag_id = (1ULL << 32) | ip->id;
			return 0; /* fragments hash on addresses and protocol only */
		}
		l4off = off + (__u64)(ip->ihl & 0xf) * 4;
	} else if (eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		t->family = 6;
		t->proto = ip6->nexthdr;
		__builtin_memcpy(t->src, &ip6->saddr, 16);
		__builtin_memcpy(t->dst, &ip6->daddr, 16);
		l4off = off + sizeof(*ip6);
		if (ip6->nexthdr == IPPROTO_FRAGMENT) {
			struct ac_ipv6_frag *fh = (void *)(ip6 + 1);

			if ((void *)(fh + 1) > data_end)
				return -1;
			if (frag_id)
				*frag_id = (1ULL << 32) | fh->id;
			return 0;
		}
	} else {
		return -1;
	}
	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP || t->proto == IPPROTO_SCTP) {
		if (l4off > 14 + AC_NSH_MAX_LEN + 60)
			return -1;
		l4off &= 0x1ff; /* keeps the bound visible to the verifier */
		__u16 *ports = data + l4off;

		if ((void *)(ports + 2) > data_end)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
	}
	return 0;
}

AC_INLINE int ac_parse_tuple(void *data, void *data_end, __u64 off, __u16 eth_proto,
			     struct ac_tuple *t)
{
	return ac_parse_tuple_frag(data, data_end, off, eth_proto, t, NULL);
}

#endif
