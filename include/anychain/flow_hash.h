/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash: computed once by the classifier from the inner 5-tuple and carried in NSH
 * (MD1 context word 0, or the AC_TLV_FLOW_HASH TLV in MD2), so later nodes never parse the
 * inner packet again. Same code in BPF and C++ (tests recompute it to check exact bytes).
 * Words are taken as they lie in memory and mixed with 64-bit multiplies and SplitMix64's
 * finalizer (few dependent multiplies: the classifier pays for this hash on every packet).
 */
#ifndef ANYCHAIN_FLOW_HASH_H
#define ANYCHAIN_FLOW_HASH_H

#include <linux/types.h>

#ifndef AC_INLINE
#define AC_INLINE static inline __attribute__((always_inline))
#endif

#define AC_HASH_SEED 0x9e3779b9u
#define AC_PROXY_HASH_SEED 0x85ebca6bu
#define AC_PROXY_FRAG_SEED 0xc2b2ae35u

struct ac_tuple {
	__u32 src[4];            /* as on the wire; IPv4 in [0], rest 0 */
	__u32 dst[4];
	__u16 sport;             /* as on the wire; 0 when the protocol has none or a fragment */
	__u16 dport;
	__u8 proto;
	__u8 family;             /* 4 or 6 */
	__u8 pad[2];
};

#define AC_HASH_M1 0x9e3779b97f4a7c15ULL /* odd 64-bit multipliers (golden ratio, SplitMix64) */
#define AC_HASH_M2 0xbf58476d1ce4e5b9ULL
#define AC_HASH_M3 0x94d049bb133111ebULL

AC_INLINE __u64 ac_rotl64(__u64 x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* SplitMix64's finalizer: a bijection in which every input bit flips every output bit with
 * probability close to 1/2. */
AC_INLINE __u64 ac_mix64(__u64 x)
{
	x ^= x >> 30;
	x *= AC_HASH_M2;
	x ^= x >> 27;
	x *= AC_HASH_M3;
	x ^= x >> 31;
	return x;
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
	/* two 64-bit words: the addresses (IPv6: folded word pair by word pair) and ports, protocol
	 * and family. The second is multiplied (a bijection) and rotated before they are combined,
	 * so no simple swap of bits between them collides; then one finalizer. For IPv4 that is
	 * three dependent multiplies, against ten for MurmurHash3 over the same words. */
	__u64 x = ((__u64)a[0] << 32) | b[0];

	for (int i = 1; i < 4; i++) {
		if (i >= words)
			break;
		x = x * AC_HASH_M1 ^ (((__u64)a[i] << 32) | b[i]);
	}
	__u64 y = ((__u64)(((__u32)pa << 16) | pb) << 32) | ((__u32)t->proto << 8) | t->family;

	return (__u32)ac_mix64(x ^ ac_rotl64(y * AC_HASH_M1, 29) ^ ((__u64)seed * AC_HASH_M3));
}

#endif /* ANYCHAIN_FLOW_HASH_H */
