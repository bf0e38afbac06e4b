/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Classifier: ordered policy rules (prefixes, protocol, port ranges) -> SPI. */
#ifndef AC_CLASSIFY_H
#define AC_CLASSIFY_H

#include "ac_maps.h"

AC_INLINE int ac_prefix_match(const __u32 *addr, const __u32 *pfx, __u32 len, int words)
{
	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		int bits = (int)len - 32 * i;

		if (bits <= 0)
			break;
		__u32 mask = bits >= 32 ? 0xffffffffu : bpf_htonl(~0u << (32 - bits));

		if ((addr[i] & mask) != pfx[i])
			return 0;
	}
	return 1;
}

AC_INLINE int ac_policy_match(const struct ac_policy *p, const struct ac_tuple *t)
{
	int words = t->family == 6 ? 4 : 1;

	if (p->family != t->family)
		return 0;
	if (p->proto && p->proto != t->proto)
		return 0;
	__u16 sport = bpf_ntohs(t->sport), dport = bpf_ntohs(t->dport);

	if (sport < p->sport_lo || sport > p->sport_hi || dport < p->dport_lo || dport > p->dport_hi)
		return 0;
	return ac_prefix_match(t->dst, p->dst, p->dst_len, words) &&
	       ac_prefix_match(t->src, p->src, p->src_len, words);
}

/* First rule that matches, or NULL */
AC_INLINE const struct ac_policy *ac_classify(const struct ac_config *cfg, const struct ac_tuple *t)
{
	__u32 word = cfg->policies;
	__u32 n = AC_POLICY_COUNT(word);
	__u32 base = AC_POLICY_BANK(word) * AC_MAX_POLICIES;

	for (__u32 i = 0; i < AC_MAX_POLICIES; i++) {
		if (i >= n)
			break;
		__u32 idx = base + i;
		const struct ac_policy *p = bpf_map_lookup_elem(&ac_policies, &idx);

		if (!p)
			break;
		if (ac_policy_match(p, t))
			return p;
	}
	return NULL;
}

#endif
