/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The test XDP program's objects and operation (tests/state/crdt_test.bpf.c), shared with the
 * C++ fixtures. */
#ifndef CRDT_TEST_H
#define CRDT_TEST_H

#include <linux/types.h>

#include <anychain/crdt.h>

/* object ids (the agent's schema uses the same) */
#define CT_OBJ_GC 1
#define CT_OBJ_GCK 2
#define CT_OBJ_PN 3
#define CT_OBJ_CMS 4
#define CT_OBJ_CBF 5
#define CT_OBJ_SET 6
#define CT_OBJ_REG 7

#define CT_GC_CELLS 16
#define CT_GCK_KEYS 64
#define CT_PN_CELLS 4
#define CT_CMS_ROWS 4
#define CT_CMS_WIDTH 64
#define CT_CBF_CELLS 256
#define CT_CBF_HASHES 3
#define CT_SET_KEYS 64
#define CT_REG_KEYS 64

enum crdt_test_code {
	CT_GC_ADD = 1,      /* t_gc[index] += amount */
	CT_GCK_ADD,         /* t_gck[hash] += amount */
	CT_PN_ADD,          /* t_pn[index] += (s64)amount */
	CT_CMS_ADD,         /* t_cms: key hash `hash` += amount; result: estimate */
	CT_CBF_ADD,         /* t_cbf: key hash `hash` += amount; result: value */
	CT_SET_ADD,         /* t_set: add key; result: contains */
	CT_SET_CONTAINS,    /* result: contains */
	CT_REG_INSERT,      /* t_reg: insert key -> reg if absent; reg, result: the value held */
	CT_REG_SEEN,        /* t_reg[key].seen: amount = now, index = granularity; result: seen */
	CT_CMS_REACHES,     /* result: t_cms's estimate of `hash` reaches amount (ac_crdt_cms_reaches) */
	CT_CBF_CONTAINS,    /* result: t_cbf's value of `hash` is not 0 (ac_crdt_cbf_contains) */
};

struct ct_key16 {
	__u8 b[16];
};

struct crdt_test_op {
	__u32 code;
	__u32 index;
	__u64 amount;
	__u64 hash;
	struct ct_key16 key;
	struct ac_reg_value reg;
	__u64 result;
};

#endif
