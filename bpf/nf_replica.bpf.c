/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The replica-only hop (docs/ftc.md 5.4, docs/nf.md): an instance of a replica service that an
 * FTC chain shorter than f + 1 hops appends before its end. It has no function and no state of
 * its own: it applies the logs its packets carry to its replica store in order, strips those it
 * is the tail of (committing returned ones) and forwards the packet, inner packet untouched; a gap
 * goes to anychain-nf's hold queue like at any NF. A packet without FTC's control TLV (a chain
 * without FTC) is returned as it came (SI - 1). nf_ftc_cfg without AC_NF_STATEFUL: it appends
 * no log.
 */
#include "nf_common.h"

SEC("xdp")
int nf_replica_hop(struct xdp_md *ctx)
{
	struct ac_ftc_hop hop;
	enum ac_ftc_verdict v;

	if (ac_nf_rx(ctx)) {
		ac_nf_count(AC_NF_DROP_BAD_NSH);
		return XDP_DROP;
	}
	v = ac_ftc_hop_begin(ctx, &hop, bpf_jiffies64());
	if (v == AC_FTC_HOLD) {
		ac_nf_count(AC_NF_HOLD);
		return ac_ftc_hold();
	}
	if (v == AC_FTC_DROP) {
		ac_nf_count(AC_NF_DROP_FTC);
		return XDP_DROP;
	}
	/* PLAIN: nothing to replicate; CONTINUE: the NSH rebuilt without the stripped logs */
	return ac_nf_finish(ctx, &hop, v, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
