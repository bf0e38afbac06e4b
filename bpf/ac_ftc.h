/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fast path's part of FTC (docs/ftc.md 2.1, 5.1, 5.2, 7.2): the classifier marks a packet of
 * an FTC chain with the control TLV and piggybacks the partition's returned logs
 * (ac_ftc_pending); a chain's last hop hands FTC packets, NSH kept, to the egress buffer's
 * AF_XDP socket (ac_ftc_xsk), or releases them itself when the buffer's commit vector already
 * covers their logs (ac_ftc_egress); flows placed on a recovering instance are held back. The NF hops
 * themselves are bpf/nf_state.h's.
 */
#ifndef AC_FTC_H
#define AC_FTC_H

#include "ac_counters.h"
#include "ac_nsh.h"
#include <anychain/ftc.h>

#define AC_FTC_CTRL_TLV_LEN (sizeof(struct ac_nsh_tlv) + AC_FTC_CTRL_LEN)
AC_STATIC_ASSERT(AC_NSH_BASE_LEN + sizeof(struct ac_nsh_tlv) + 4 + AC_FTC_CTRL_TLV_LEN == AC_FTC_FIXED_LEN,
		 "the FTC NSH starts with base, flow hash and control TLVs");
AC_STATIC_ASSERT(AC_FTC_PENDING_MAX == AC_FTC_ROOM, "pending logs fill the room after them");

/* The classifier's FTC TLVs for a packet of policy pol (AC_POL_FTC) in flow hash's partition,
 * staged in the per-CPU ac_ftc_staged: the control TLV (f, this node's endpoint), then the
 * partition's pending logs. A pending blob whose length is not whole words within the room is
 * not used (the agent writes none such: agent/dataplane). Returns the staged length (12..236),
 * or 0 without scratch. */
AC_INLINE __u32 ac_ftc_stage(const struct ac_config *cfg, const struct ac_policy *pol, __u32 hash,
			     struct ac_ftc_staged **out)
{
	__u32 zero = 0;
	struct ac_ftc_staged *s = bpf_map_lookup_elem(&ac_ftc_staged, &zero);

	if (!s)
		return 0;
	struct ac_nsh_tlv *tlv = (void *)s->tlvs;
	struct ac_ftc_ctrl *c = (void *)(tlv + 1);

	tlv->md_class = bpf_htons(AC_MD_CLASS);
	tlv->type = AC_TLV_FTC_CTRL;
	tlv->len = AC_FTC_CTRL_LEN;
	c->flags = 0;
	c->f = pol->ftc_f;
	c->reserved = 0;
	c->ingress = cfg->local_endpoint;

	struct ac_ftc_pending_key key = {.spi = pol->spi, .hash = hash};
	const struct ac_ftc_pending *p = bpf_map_lookup_elem(&ac_ftc_pending, &key);
	__u32 plen = 0;

	if (p) {
		plen = p->len;
		if (plen > AC_FTC_PENDING_MAX || (plen & 3))
			plen = 0;
		else
			__builtin_memcpy(s->tlvs + AC_FTC_CTRL_TLV_LEN, p->tlvs, AC_FTC_PENDING_MAX);
	}
	s->len = AC_FTC_CTRL_TLV_LEN + plen;
	*out = s;
	return s->len;
}

/* Does the NSH at ctx->data + 14 (validated by ac_nsh_read) carry the FTC control TLV? A global
 * function: the verifier checks its TLV walk once, on its own, instead of once per caller state;
 * only chain ends and NSH-unaware deliveries of MD2 packets ask. */
__noinline int ac_ftc_marked(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_nsh_base *nb = data + sizeof(struct ethhdr);

	if (!ctx || (void *)(nb + 1) > data_end)
		return 0;
	__u32 len = AC_NSH_W0_LEN(bpf_ntohs(nb->ver_flags_ttl_len)) * 4;
	__u32 off = AC_NSH_BASE_LEN;

	for (int i = 0; i < AC_NSH_MAX_TLVS; i++) {
		if (off + sizeof(struct ac_nsh_tlv) > len || off > AC_NSH_MAX_LEN)
			break;
		struct ac_nsh_tlv *tlv = (void *)nb + off;

		if ((void *)(tlv + 1) > data_end)
			return 0;
		if (tlv->md_class == bpf_htons(AC_MD_CLASS) && tlv->type == AC_TLV_FTC_CTRL)
			return 1;
		off += sizeof(*tlv) + (((tlv->len & 0x7f) + 3) & ~3u);
	}
	return 0;
}

/* An FTC packet at its chain's end (docs/ftc.md 5.1; ac_ftc_marked; NSH at ctx->data + 14,
 * validated by ac_nsh_read; spi and hash from it): may it leave here, without the egress buffer?
 * Only a data packet (not PROPAGATING) without a commit TLV (the buffer must learn commits: it
 * prunes the forwarder by them) and without returned (WRAPPED) logs, whose every log the
 * partition's ac_ftc_egress entry covers (ac_ftc_egress_covers), with nothing of the partition
 * held in the buffer (the entry's slow). The buffer would release such a packet at once,
 * untouched but for the FTC TLVs its release strips, which the chain's end pops here with the
 * rest of the NSH. Every reason to go to the buffer returns at once: the verifier then follows
 * only the walk's offset. A global function: the verifier checks its walk once. */
__noinline int ac_ftc_committed(struct xdp_md *ctx, __u32 spi, __u32 hash)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_nsh_base *nb = data + sizeof(struct ethhdr);
	struct ac_ftc_egress_key key = {.ifindex = ctx->ingress_ifindex, .spi = spi, .hash = hash};
	const struct ac_ftc_egress *e = bpf_map_lookup_elem(&ac_ftc_egress, &key);

	if ((e && e->slow) || (void *)(nb + 1) > data_end)
		return 0;
	__u32 len = AC_NSH_W0_LEN(bpf_ntohs(nb->ver_flags_ttl_len)) * 4;
	__u32 off = AC_NSH_BASE_LEN;

	for (int i = 0; i < AC_NSH_MAX_TLVS; i++) {
		if (off + sizeof(struct ac_nsh_tlv) > len || off > AC_NSH_MAX_LEN)
			break;
		struct ac_nsh_tlv *tlv = (void *)nb + off;

		if ((void *)(tlv + 1) > data_end)
			return 0;
		__u32 vlen = tlv->len & 0x7f;
		__u8 *v = (void *)(tlv + 1);

		if (tlv->md_class == bpf_htons(AC_MD_CLASS)) {
			if (tlv->type == AC_TLV_FTC_COMMIT)
				return 0;
			if (tlv->type == AC_TLV_FTC_CTRL &&
			    ((void *)(v + 1) > data_end || (*v & AC_FTC_CTRL_PROPAGATING)))
				return 0;
			if (tlv->type == AC_TLV_FTC_LOG &&
			    (vlen < AC_FTC_LOG_HDR || (void *)(v + AC_FTC_LOG_HDR) > data_end ||
			     (v[0] & AC_FTC_LOG_WRAPPED) ||
			     !ac_ftc_egress_covers(e, bpf_ntohl(*(__be32 *)(v + 4)), bpf_ntohl(*(__be32 *)(v + 8)))))
				return 0;
		}
		off += sizeof(*tlv) + ((vlen + 3) & ~3u);
	}
	return 1;
}

/* A packet ac_ftc_committed() let leave at the chain's end: counted, node-wide and by the
 * interface it arrived on (ac_ftc_end_stats, what the buffer's port of that interface reports) */
AC_INLINE void ac_ftc_count_end(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u64 *n = bpf_map_lookup_elem(&ac_ftc_end_stats, &ifindex);

	if (n)
		(*n)++;
	ac_note(ctx, AC_NOTE_FTC_COMMITTED);
}

/* An FTC packet at its chain's end (docs/ftc.md 5.1): to the buffer's socket of the interface
 * and RX queue it arrived on, NSH and all; without one it is dropped, because a packet the
 * buffer cannot hold must not leave the chain before its updates are held f + 1 times. */
AC_INLINE int ac_ftc_to_buffer(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex, queue = ctx->rx_queue_index;
	__u64 len = ac_pkt_len(ctx);

	if (ifindex < AC_XSK_IFS && queue < AC_XSK_QUEUES &&
	    bpf_redirect_map(&ac_ftc_xsk, AC_XSK_SLOT(ifindex, queue), 0) == XDP_REDIRECT) {
		ac_counter_add(&ac_stats, AC_FWD_FTC_BUFFER, len);
		return XDP_REDIRECT;
	}
	return ac_drop(ctx, AC_DROP_FTC_NO_BUFFER);
}

/* What ac_select() reports in *id when it found no instance because the flow's placement (or,
 * for a new flow, its WCMP bucket) names an instance under FTC recovery: never an instance id */
#define AC_FTC_FROZEN_ID 0xffffffffu

/* Instance id under FTC recovery that still serves service_id (and, with any_gen 0, has this
 * generation, or the next one: a placement the agent already re-pointed to the replacement it is
 * about to make live, docs/ftc.md 7.5): its flows wait for the replacement (docs/ftc.md 7.2) */
AC_INLINE int ac_ftc_frozen(__u32 id, __u32 generation, __u32 service_id, int any_gen)
{
	const struct ac_instance *inst = bpf_map_lookup_elem(&ac_instances, &id);

	return inst && (inst->flags & AC_INST_RECOVERING) && inst->service_id == service_id &&
	       (any_gen || inst->generation == generation || inst->generation + 1 == generation);
}

#endif
