/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in stateless firewall (docs/nf.md): an ordered rule list (first match decides,
 * else the default action) over the inner packet's family, prefixes, protocol and ports; every
 * rule counts the packets and bytes it decided. A dropped packet is counted; in an FTC chain it
 * leaves as a propagating packet instead (docs/ftc.md 5.3), so the logs it carries still reach
 * their tails. The firewall keeps no state: it is an FTC replica hop (nf_ftc_cfg without
 * AC_NF_STATEFUL).
 */
#include "nf_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_fw_cfg);
} nf_fw_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_NF_FW_RULES);
	__type(key, __u32);
	__type(value, struct ac_nf_fw_rule);
} nf_fw_rules SEC(".maps");

/* rule i's counter at i, the default action's at AC_NF_FW_RULES */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_NF_FW_RULES + 1);
	__type(key, __u32);
	__type(value, struct ac_nf_counter);
} nf_fw_hits SEC(".maps");

AC_INLINE int fw_addr_match(const __be32 *a, const __be32 *pfx, const __be32 *mask)
{
	return ((a[0] & mask[0]) == pfx[0]) & ((a[1] & mask[1]) == pfx[1]) & ((a[2] & mask[2]) == pfx[2]) &
	       ((a[3] & mask[3]) == pfx[3]);
}

AC_INLINE int fw_match(const struct ac_nf_fw_rule *r, const struct ac_nf_inner *in)
{
	__u16 sp = bpf_ntohs(in->sport), dp = bpf_ntohs(in->dport);

	if (r->family && r->family != in->family)
		return 0;
	if (r->proto && r->proto != in->proto)
		return 0;
	if (!fw_addr_match(in->src, r->src, r->src_mask) || !fw_addr_match(in->dst, r->dst, r->dst_mask))
		return 0;
	if (r->proto == IPPROTO_TCP || r->proto == IPPROTO_UDP) {
		/* a non-first fragment has no ports: only rules without port ranges match it */
		if (!in->l4 && (r->sport_lo || r->sport_hi != 0xffff || r->dport_lo || r->dport_hi != 0xffff))
			return 0;
		if (sp < r->sport_lo || sp > r->sport_hi || dp < r->dport_lo || dp > r->dport_hi)
			return 0;
	}
	return 1;
}

struct fw_walk {
	struct ac_nf_inner in;
	__u32 n;
	__u32 hit;               /* the deciding rule, AC_NF_FW_RULES: the default */
};

static long fw_rule_cb(__u32 i, void *ctx)
{
	struct fw_walk *w = ctx;
	struct ac_nf_fw_rule *r;
	__u32 k = i;

	if (i >= w->n)
		return 1;
	r = bpf_map_lookup_elem(&nf_fw_rules, &k);
	if (!r)
		return 1;
	if (fw_match(r, &w->in)) {
		w->hit = i;
		return 1;
	}
	return 0;
}

SEC("xdp")
int nf_firewall(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ac_nf_fw_cfg *cfg = bpf_map_lookup_elem(&nf_fw_cfg, &k0);
	struct ac_ftc_hop hop;
	enum ac_ftc_verdict v;
	struct fw_walk w;
	struct ac_nf_counter *c;
	int filtered = 0, action, r;

	r = ac_nf_begin(ctx, cfg != 0, &hop, &v, &w.in);
	if (r != AC_NF_WORK)
		return r;
	if (!w.in.family) {
		ac_nf_count(AC_NF_NOT_IP);
		return ac_nf_finish(ctx, &hop, v, 0);
	}
	w.n = cfg->nrules < AC_NF_FW_RULES ? cfg->nrules : AC_NF_FW_RULES;
	w.hit = AC_NF_FW_RULES;
	bpf_loop(AC_NF_FW_RULES, fw_rule_cb, &w, 0);
	action = cfg->default_action;
	if (w.hit < AC_NF_FW_RULES) {
		struct ac_nf_fw_rule *r = bpf_map_lookup_elem(&nf_fw_rules, &w.hit);

		if (r)
			action = r->action;
	}
	c = bpf_map_lookup_elem(&nf_fw_hits, &w.hit);
	if (c) {
		c->packets += 1;
		c->bytes += w.in.len;
	}
	if (action == AC_NF_FW_DROP) {
		ac_nf_count(AC_NF_FW_DROPPED);
		filtered = 1;
	} else {
		ac_nf_count(AC_NF_FW_PASSED);
	}
	return ac_nf_finish(ctx, &hop, v, filtered);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
