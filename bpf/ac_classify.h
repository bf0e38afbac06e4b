/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Classifier: ordered policy rules (prefixes, protocol, port ranges) -> SPI. */
#ifndef AC_CLASSIFY_H
#define AC_CLASSIFY_H

#include "ac_maps.h"

/* sport, dport: the tuple's ports in host order. The masks come with the rule (the loader
 * computes them from the prefix lengths); IPv4 compares one word per address. The addresses are
 * checked first, with one branch: most rules a packet meets differ in them. */
AC_INLINE int ac_policy_match(const struct ac_policy *p, const struct ac_tuple *t, __u16 sport,
			      __u16 dport)
{
	if ((((t->dst[0] & p->dst_mask[0]) ^ p->dst[0]) | ((t->src[0] & p->src_mask[0]) ^ p->src[0])) ||
	    p->family != t->family)
		return 0;
	if (p->proto && p->proto != t->proto)
		return 0;
	/* lo <= port <= hi as one unsigned compare each */
	if ((__u32)(sport - p->sport_lo) > (__u32)(p->sport_hi - p->sport_lo) ||
	    (__u32)(dport - p->dport_lo) > (__u32)(p->dport_hi - p->dport_lo))
		return 0;
	if (t->family == 6) {
#pragma unroll
		for (int i = 1; i < 4; i++)
			if ((t->dst[i] & p->dst_mask[i]) != p->dst[i] ||
			    (t->src[i] & p->src_mask[i]) != p->src[i])
				return 0;
	}
	return 1;
}

/* First rule that matches, or NULL */
AC_INLINE const struct ac_policy *ac_classify(const struct ac_config *cfg, const struct ac_tuple *t)
{
	__u32 word = cfg->policies;
	__u32 n = AC_POLICY_COUNT(word);
	__u32 bank_idx = AC_POLICY_BANK(word);
	const struct ac_policy_bank *bank = bpf_map_lookup_elem(&ac_policies, &bank_idx);
	__u16 sport = bpf_ntohs(t->sport), dport = bpf_ntohs(t->dport);

	if (!bank)
		return NULL;
	for (__u32 i = 0; i < AC_MAX_POLICIES; i++) {
		if (i >= n)
			break;
		const struct ac_policy *p = &bank->rule[i];

		if (ac_policy_match(p, t, sport, dport))
			return p;
	}
	return NULL;
}

#endif
