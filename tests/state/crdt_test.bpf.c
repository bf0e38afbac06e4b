/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test-only XDP programs over bpf/nf_crdt.h (docs/state.md, Section 2): one object of each kind,
 * an update program driven by a test operation carried in the frame, and the merge program.
 * The real NF programs (phase B) use the same header the same way.
 *
 * crdt_update: the frame is [14 bytes of Ethernet][struct crdt_test_op]; the program performs
 * the operation, writes any read result back into the op's result fields and returns XDP_PASS
 * (XDP_DROP for an operation it does not know, XDP_ABORTED when an update failed).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define AC_CRDT_CHANGES_BYTES (16 * 1024) /* small, so a test can fill it */
#include "nf_crdt.h"

#include "crdt_test.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_gcounter);
	__uint(max_entries, CT_GC_CELLS);
} t_gc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct ac_gcounter);
	__uint(max_entries, CT_GCK_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} t_gck SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_pncounter);
	__uint(max_entries, CT_PN_CELLS);
} t_pn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_gcounter);
	__uint(max_entries, CT_CMS_ROWS * CT_CMS_WIDTH);
} t_cms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_gcounter);
	__uint(max_entries, CT_CBF_CELLS);
} t_cbf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ct_key16);
	__type(value, struct ac_awset_elem);
	__uint(max_entries, CT_SET_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} t_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ct_key16);
	__type(value, struct ac_register);
	__uint(max_entries, CT_REG_KEYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} t_reg SEC(".maps");

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define OP_OFF 14

SEC("xdp")
int crdt_update(struct xdp_md *ctx)
{
	struct crdt_test_op op;
	__u32 epoch = ac_crdt_epoch();
	int err = 0;

	if (bpf_xdp_load_bytes(ctx, OP_OFF, &op, sizeof(op)))
		return XDP_DROP;
	switch (op.code) {
	case CT_GC_ADD:
		err = ac_crdt_gc_add_idx(&t_gc, CT_OBJ_GC, op.index, op.amount, epoch);
		op.result = ac_crdt_gc_value_idx(&t_gc, op.index);
		break;
	case CT_GCK_ADD:
		err = ac_crdt_gc_add_key(&t_gck, CT_OBJ_GCK, &op.hash, sizeof(op.hash), op.amount, epoch);
		op.result = ac_crdt_gc_value_key(&t_gck, &op.hash);
		break;
	case CT_PN_ADD:
		err = ac_crdt_pn_add_idx(&t_pn, CT_OBJ_PN, op.index, (__s64)op.amount, epoch);
		op.result = (__u64)ac_crdt_pn_value_idx(&t_pn, op.index);
		break;
	case CT_CMS_ADD:
		ac_crdt_cms_add(&t_cms, CT_OBJ_CMS, op.hash, CT_CMS_ROWS, CT_CMS_WIDTH - 1, op.amount, epoch);
		op.result = ac_crdt_cms_estimate(&t_cms, op.hash, CT_CMS_ROWS, CT_CMS_WIDTH - 1);
		break;
	case CT_CBF_ADD:
		ac_crdt_cbf_add(&t_cbf, CT_OBJ_CBF, op.hash, CT_CBF_HASHES, CT_CBF_CELLS - 1, op.amount, epoch);
		op.result = ac_crdt_cbf_value(&t_cbf, op.hash, CT_CBF_HASHES, CT_CBF_CELLS - 1);
		break;
	case CT_SET_ADD:
		err = ac_crdt_set_add(&t_set, CT_OBJ_SET, &op.key, sizeof(op.key), epoch);
		op.result = ac_crdt_set_contains(&t_set, CT_OBJ_SET, &op.key);
		break;
	case CT_SET_CONTAINS:
		op.result = ac_crdt_set_contains(&t_set, CT_OBJ_SET, &op.key);
		break;
	case CT_CMS_REACHES:
		op.result = ac_crdt_cms_reaches(&t_cms, op.hash, CT_CMS_ROWS, CT_CMS_WIDTH - 1, op.amount);
		break;
	case CT_CBF_CONTAINS:
		op.result = ac_crdt_cbf_contains(&t_cbf, op.hash, CT_CBF_HASHES, CT_CBF_CELLS - 1);
		break;
	case CT_REG_INSERT: {
		struct ac_register *r = ac_crdt_reg_insert(&t_reg, CT_OBJ_REG, &op.key, sizeof(op.key), &op.reg, epoch);

		if (!r) {
			err = -1;
			break;
		}
		__builtin_memcpy(&op.reg, &r->v, sizeof(op.reg)); /* the value held */
		op.result = r->v.writer;
		break;
	}
	case CT_REG_SEEN: {
		struct ac_register *r = bpf_map_lookup_elem(&t_reg, &op.key);

		if (!r) {
			err = -1;
			break;
		}
		ac_crdt_reg_seen(r, CT_OBJ_REG, &op.key, sizeof(op.key), op.amount, op.index, epoch);
		op.result = r->v.seen;
		break;
	}
	default:
		return XDP_DROP;
	}
	if (bpf_xdp_store_bytes(ctx, OP_OFF, &op, sizeof(op)))
		return XDP_ABORTED;
	return err ? XDP_ABORTED : XDP_PASS;
}

AC_INLINE int crdt_test_apply(const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	switch (op->object) {
	case CT_OBJ_GC:
		return ac_crdt_apply_gc_idx(&t_gc, op, key, val);
	case CT_OBJ_GCK:
		return ac_crdt_apply_gc_key(&t_gck, op, key, val, sizeof(__u64));
	case CT_OBJ_PN:
		return ac_crdt_apply_pn_idx(&t_pn, op, key, val);
	case CT_OBJ_CMS:
		return ac_crdt_apply_gc_idx(&t_cms, op, key, val);
	case CT_OBJ_CBF:
		return ac_crdt_apply_gc_idx(&t_cbf, op, key, val);
	case CT_OBJ_SET:
		return ac_crdt_apply_set(&t_set, op, key, val, sizeof(struct ct_key16));
	case CT_OBJ_REG:
		return ac_crdt_apply_reg(&t_reg, op, key, val, sizeof(struct ct_key16));
	}
	return AC_CRDT_APPLY_BAD;
}

AC_INLINE int crdt_test_fold(__u8 object, struct ac_crdt_fold_ctx *f)
{
	if (f->op == AC_CRDT_OP_RESET)
		return -1; /* no windowed objects here */
	switch (object) {
	case CT_OBJ_GC:
		ac_crdt_fold_object(&t_gc, AC_CRDT_GCOUNTER, f);
		return 0;
	case CT_OBJ_GCK:
		ac_crdt_fold_object(&t_gck, AC_CRDT_GCOUNTER, f);
		return 0;
	case CT_OBJ_PN:
		ac_crdt_fold_object(&t_pn, AC_CRDT_PNCOUNTER, f);
		return 0;
	case CT_OBJ_CMS:
		ac_crdt_fold_object(&t_cms, AC_CRDT_CMS, f);
		return 0;
	case CT_OBJ_CBF:
		ac_crdt_fold_object(&t_cbf, AC_CRDT_CBF, f);
		return 0;
	case CT_OBJ_SET:
		ac_crdt_fold_object(&t_set, AC_CRDT_AWSET, f);
		return 0;
	case CT_OBJ_REG:
		return 0;
	}
	return -1;
}

AC_CRDT_MERGE_PROGRAM(crdt_merge, crdt_test_apply, crdt_test_fold)
