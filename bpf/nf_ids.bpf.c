/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in port-scan detector (docs/state.md 4.1, docs/nf.md): counts the distinct
 * (protocol, destination port) pairs each source host touches in a window, over every instance
 * of the service, and flags a source whose count reaches the threshold.
 *   - ids_pairs<g>: a counting Bloom filter over (source, protocol, port) pairs, k hashes over m
 *     cells; ids_ports<g>: a count-min sketch over sources (rows x width), the distinct pairs
 *     each source opened. Both windowed (generation g = window & 1, include/anychain/crdt.h).
 *   - A pair whose filter value is 0 (no replica has seen it, as far as this one knows) adds 1
 *     to the pair's cells and 1 to the source's sketch cells: every instance reads the sum of
 *     every instance's share of the scanner's ports (slot 0 + others, merged by the agent).
 *   - ids_flagged: an add-wins set of flagged sources (not windowed; removing a flag is a local
 *     remove through the merge program). A flagged source's packets are counted and, with action
 *     drop, dropped (DROP_FILTERED; in an FTC chain they leave as propagating packets).
 * Stateless as far as FTC goes (no per-flow state): an FTC replica hop like the firewall.
 */
#include "nf_common.h"
#include "nf_crdt.h"

/* The geometry is set by anychain-nf from its parameters (max_entries before load, nf_ids_cfg);
 * these are the defaults. */
#define IDS_PAIRS_CELLS 65536
#define IDS_PORTS_CELLS (4 * 4096)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_ids_cfg);
} nf_ids_cfg SEC(".maps");

#define IDS_ARRAY(name, cells)                                                                   \
	struct {                                                                                 \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                \
		__uint(max_entries, cells);                                                      \
		__type(key, __u32);                                                              \
		__type(value, struct ac_gcounter);                                               \
	} name SEC(".maps")

IDS_ARRAY(ids_pairs0, IDS_PAIRS_CELLS);
IDS_ARRAY(ids_pairs1, IDS_PAIRS_CELLS);
IDS_ARRAY(ids_ports0, IDS_PORTS_CELLS);
IDS_ARRAY(ids_ports1, IDS_PORTS_CELLS);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ac_nf_ids_src);
	__type(value, struct ac_awset_elem);
} ids_flagged SEC(".maps");

/* Count the pair in this generation if it is new; with `check`, whether the source's estimate
 * reaches the threshold. The estimate (the smallest of the source's rows) reaches it only if every
 * row does, so the first row under it answers: one cell read for a source under the threshold
 * whose first row is (almost every packet), the other rows only past it (counted FULL_ESTIMATE).
 * The answer is the one the whole estimate gives, on every packet: a count merged from another
 * instance is seen by the source's next packet, a known pair's too (docs/state.md 4.1). */
AC_INLINE int ids_count(const struct ac_nf_ids_cfg *cfg, void *pairs, __u8 pairs_obj, void *ports, __u8 ports_obj,
			__u64 hs, __u64 hp, int check)
{
	if (!ac_crdt_cbf_contains(pairs, hp, cfg->pairs_hashes, cfg->pairs_mask)) {
		__u32 epoch = ac_crdt_epoch();

		ac_crdt_cbf_add(pairs, pairs_obj, hp, cfg->pairs_hashes, cfg->pairs_mask, 1, epoch);
		ac_crdt_cms_add(ports, ports_obj, hs, cfg->ports_rows, cfg->ports_mask, 1, epoch);
		ac_nf_count(AC_NF_IDS_NEW_PAIR);
	}
	if (!check || ac_crdt_gc_value_idx(ports, ac_cms_cell(hs, 0, cfg->ports_mask)) < cfg->threshold)
		return 0;
	ac_nf_count(AC_NF_IDS_FULL_ESTIMATE);
	return ac_crdt_cms_reaches(ports, hs, cfg->ports_rows, cfg->ports_mask, cfg->threshold);
}

/* What the detector does with one inner packet: 1 to filter it (a flagged source, action drop). */
AC_INLINE int ids_work(const struct ac_nf_ids_cfg *cfg, const struct ac_nf_inner *in)
{
	struct ac_nf_ids_src src = {};
	int flagged, gen, check, reaches;
	__u64 hs, hp;

#ifdef AC_NF_BENCH_NO_OBJECTS
	/* benchmark ablation only (bench/nf_state_ablation_*.bpf.c): the same NF without its objects */
	return 0;
#endif
	src.family = in->family;
	src.addr[0] = in->src[0];
	if (in->family == 6) {
		src.addr[1] = in->src[1];
		src.addr[2] = in->src[2];
		src.addr[3] = in->src[3];
	}
	flagged = ac_crdt_set_contains(&ids_flagged, AC_NF_IDS_OBJ_FLAGGED, &src);
	if (flagged)
		ac_nf_count(AC_NF_IDS_SCAN_PACKETS);
	if (!in->l4 || (in->proto != IPPROTO_TCP && in->proto != IPPROTO_UDP)) {
		ac_nf_count(AC_NF_IDS_NO_PORTS);
		return flagged && cfg->action == AC_NF_IDS_DROP;
	}
	gen = ac_crdt_win_gen();
	if (gen < 0) {
		ac_nf_count(AC_NF_IDS_NO_WINDOW);
		return flagged && cfg->action == AC_NF_IDS_DROP;
	}
	hs = ac_nf_ids_src_hash(&src);
	hp = ac_nf_ids_pair_hash(hs, in->proto, bpf_ntohs(in->dport));
	check = !flagged && cfg->threshold; /* a flagged source's estimate decides nothing */
	if (gen)
		reaches = ids_count(cfg, &ids_pairs1, AC_NF_IDS_OBJ_PAIRS1, &ids_ports1, AC_NF_IDS_OBJ_PORTS1, hs, hp, check);
	else
		reaches = ids_count(cfg, &ids_pairs0, AC_NF_IDS_OBJ_PAIRS0, &ids_ports0, AC_NF_IDS_OBJ_PORTS0, hs, hp, check);
	if (reaches) {
		if (ac_crdt_set_add(&ids_flagged, AC_NF_IDS_OBJ_FLAGGED, &src, sizeof(src), ac_crdt_epoch())) {
			ac_nf_count(AC_NF_IDS_FLAG_FULL);
		} else {
			ac_nf_count(AC_NF_IDS_SCAN_FLAGGED);
			ac_nf_count(AC_NF_IDS_SCAN_PACKETS);
			flagged = 1;
		}
	}
	return flagged && cfg->action == AC_NF_IDS_DROP;
}

SEC("xdp")
int nf_ids(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ac_nf_ids_cfg *cfg = bpf_map_lookup_elem(&nf_ids_cfg, &k0);
	struct ac_ftc_hop hop;
	struct ac_nf_inner in;
	enum ac_ftc_verdict v;
	int r;

	ac_nf_bench_rewind(ctx);
	r = ac_nf_begin(ctx, cfg != 0, &hop, &v, &in);
	if (r != AC_NF_WORK)
		return r;
	if (!in.family) {
		ac_nf_count(AC_NF_NOT_IP);
		return ac_nf_finish(ctx, &hop, v, 0);
	}
	return ac_nf_finish(ctx, &hop, v, ids_work(cfg, &in));
}

/* ---- the merge program (docs/state.md 2.2): windowed objects check the record's window ---- */

AC_INLINE int ids_apply(const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	switch (op->object) {
	case AC_NF_IDS_OBJ_PAIRS0:
	case AC_NF_IDS_OBJ_PAIRS1: {
		__u32 gen = op->object - AC_NF_IDS_OBJ_PAIRS0;

		if (!ac_crdt_win_holds(gen, op->epoch))
			return AC_CRDT_APPLY_STALE;
		return ac_crdt_apply_gc_idx(gen ? (void *)&ids_pairs1 : (void *)&ids_pairs0, op, key, val);
	}
	case AC_NF_IDS_OBJ_PORTS0:
	case AC_NF_IDS_OBJ_PORTS1: {
		__u32 gen = op->object - AC_NF_IDS_OBJ_PORTS0;

		if (!ac_crdt_win_holds(gen, op->epoch))
			return AC_CRDT_APPLY_STALE;
		return ac_crdt_apply_gc_idx(gen ? (void *)&ids_ports1 : (void *)&ids_ports0, op, key, val);
	}
	case AC_NF_IDS_OBJ_FLAGGED:
		return ac_crdt_apply_set(&ids_flagged, op, key, val, sizeof(struct ac_nf_ids_src));
	}
	return AC_CRDT_APPLY_BAD;
}

AC_INLINE int ids_fold(__u8 object, struct ac_crdt_fold_ctx *f)
{
	switch (object) {
	case AC_NF_IDS_OBJ_PAIRS0:
		ac_crdt_fold_object(&ids_pairs0, AC_CRDT_CBF, f);
		return 0;
	case AC_NF_IDS_OBJ_PAIRS1:
		ac_crdt_fold_object(&ids_pairs1, AC_CRDT_CBF, f);
		return 0;
	case AC_NF_IDS_OBJ_PORTS0:
		ac_crdt_fold_object(&ids_ports0, AC_CRDT_CMS, f);
		return 0;
	case AC_NF_IDS_OBJ_PORTS1:
		ac_crdt_fold_object(&ids_ports1, AC_CRDT_CMS, f);
		return 0;
	case AC_NF_IDS_OBJ_FLAGGED:
		if (f->op == AC_CRDT_OP_RESET)
			return -1; /* not windowed */
		ac_crdt_fold_object(&ids_flagged, AC_CRDT_AWSET, f);
		return 0;
	}
	return -1;
}

AC_CRDT_MERGE_PROGRAM(nf_ids_merge, ids_apply, ids_fold)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
