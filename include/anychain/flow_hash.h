/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash: computed once by the classifier from the inner 5-tuple and carried in NSH
 * (MD1 context word 0, or the AC_TLV_FLOW_HASH TLV in MD2), so later nodes never parse the
 * inner packet again. Same code in BPF and C++ (tests recompute it to check exact bytes).
 * Mixing is MurmurHash3's 32-bit block and finalizer; words are taken as they lie in memory.
 */
#ifndef ANYCHAIN_FLOW_HASH_H
#define ANYCHAIN_FLOW_HASH_H

#include <linux/types.h>

#ifndef AC_INLINE
#define AC_INLINE static inline __attribute__((always_inline))
#endif

#define AC_HASH_SEED 0x9e3779b9u
#define AC_PROXY_HASH_SEED 0x85ebca6bu

struct ac_tuple {
	__u32 src[4];            /* as on the wire; IPv4 in [0], rest 0 */
	__u32 dst[4];
	__u16 sport;             /* as on the wire; 0 when the protocol has none or a fragment */
	__u16 dport;
	__u8 proto;
	__u8 family;             /* 4 or 6 */
	__u8 pad[2];
};

AC_INLINE __u32 ac_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

AC_INLINE __u32 ac_hash_step(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = ac_rotl32(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = ac_rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

AC_INLINE __u32 ac_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* a < b for two addresses of the family (word-wise compare of network-order words) */
AC_INLINE int ac_addr_less(const __u32 *a, const __u32 *b, int words)
{
	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		if (a[i] != b[i])
			return a[i] < b[i];
	}
	return 0;
}

/* Hash of a 5-tuple. symmetric: both directions of a flow give the same value. */
AC_INLINE __u32 ac_flow_hash(const struct ac_tuple *t, int symmetric, __u32 seed)
{
	const __u32 *a = t->src, *b = t->dst;
	__u16 pa = t->sport, pb = t->dport;
	int words = t->family == 6 ? 4 : 1;

	if (symmetric && (ac_addr_less(b, a, words) ||
			  (!ac_addr_less(a, b, words) && pb < pa))) {
		a = t->dst;
		b = t->src;
		pa = t->dport;
		pb = t->sport;
	}
	__u32 h = seed ^ t->family;
	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		h = ac_hash_step(h, a[i]);
		h = ac_hash_step(h, b[i]);
	}
	h = ac_hash_step(h, ((__u32)pa << 16) | pb);
	h = ac_hash_step(h, t->proto);
	return ac_hash_final(h ^ (__u32)(words * 8 + 5));
}

#endif /* ANYCHAIN_FLOW_HASH_H */
