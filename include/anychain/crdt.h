/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Convergent replicated objects (delta-state CRDTs with per-origin slots), written once for the
 * NF programs (BPF) and the agent's C++ twin (docs/state.md, Sections 1-2).
 *
 * A counter cell holds one slot per origin. Slot 0 is always this replica's own and only XDP
 * writes it (an atomic add); slots 1..AC_CRDT_SLOTS-1 hold remote origins (numbered locally by
 * the agent) and only merges write them, taking the maximum. Merges are therefore idempotent,
 * commutative and associative, and a read is slot[0] + others, where `others` is the sum of the
 * remote slots and of the retired total, kept up to date by the merge.
 *
 * Every loop is bounded by a compile-time constant, so the verifier accepts these in XDP.
 */
#ifndef ANYCHAIN_CRDT_H
#define ANYCHAIN_CRDT_H

#include <linux/types.h>

#include "flow_hash.h"

#ifndef AC_INLINE
#define AC_INLINE static inline __attribute__((always_inline))
#endif

#define AC_CRDT_SLOTS 16         /* origins a replica holds at once; slot 0 = itself */
#define AC_CRDT_SLOT_RETIRED 0xff /* wire/merge "slot" of a cell's retired total */
#define AC_CRDT_KEY_MAX 40       /* largest key of a hash-map object (a 5-tuple is 37) */
#define AC_CRDT_REG_DATA 48      /* bytes of a deterministic-winner map value */
#define AC_CRDT_MAX_ROWS 8       /* count-min rows, counting Bloom filter hashes */

enum ac_crdt_kind {
	AC_CRDT_GCOUNTER = 1,    /* grow-only counter cells (array or hash map) */
	AC_CRDT_PNCOUNTER = 2,   /* increment/decrement counter cells */
	AC_CRDT_CMS = 3,         /* count-min sketch: rows x width counter cells (array) */
	AC_CRDT_CBF = 4,         /* counting Bloom filter: m counter cells, k hashes (array) */
	AC_CRDT_AWSET = 5,       /* add-wins set (hash map: element -> ac_awset_elem) */
	AC_CRDT_REGMAP = 6,      /* map with a deterministic winner (hash map -> ac_register) */
};

/* One counter cell. Hot fields (touch, others, slot[0]) share the first cache line. */
struct ac_gcounter {
	__u32 touch;             /* scan epoch of this cell's last change-log entry */
	__u32 pad;
	__u64 others;            /* sum of slot[1..] + retired, maintained by the merge */
	__u64 slot[AC_CRDT_SLOTS]; /* per-origin totals; slot[0] is this replica's */
	__u64 retired;           /* folded totals of origins that left */
};

struct ac_pncounter {
	struct ac_gcounter inc;
	struct ac_gcounter dec;
};

/* One element of an add-wins set: add[s] counts origin s's adds ("dots" (s, 1..add[s])),
 * rm[s] is the highest of them a remove observed. Present iff some add[s] > rm[s]. */
struct ac_awset_elem {
	__u32 touch;
	__u32 pad;
	__u32 add[AC_CRDT_SLOTS];
	__u32 rm[AC_CRDT_SLOTS];
};

/* The replicated part of a deterministic-winner map entry. */
struct ac_reg_value {
	__u64 seen;              /* max register: last use on any instance (expiry) */
	__u32 writer;            /* instance id that wrote data */
	__u32 pad;
	__u8 data[AC_CRDT_REG_DATA]; /* larger data (byte-wise) wins; rank in the first bytes */
};

struct ac_register {
	__u32 touch;
	__u32 flags;
	struct ac_reg_value v;
};

/* ---- indexes of sketches and filters ------------------------------------------------------ */

/* The i-th index (row or hash function) of a key hash h, in a power-of-two width (mask + 1 cells,
 * at most 2^32). h must be a well-mixed 64-bit hash (the NFs hash their keys with flow_hash.h's
 * mixer): it is cut into fields, of 16 bits for widths up to 65536 cells, else of 32 bits, and
 * index i is field i; the fields past those of h come from ac_mix64(h + j * AC_HASH_M1), word j.
 * One key's indexes are disjoint bits of one hash, as independent as those bits are, and the
 * usual geometries (up to 4 rows or hashes of up to 65536 cells) need no mixing per index: the
 * packet path's cost (docs/performance.md "Shared state"). */
AC_INLINE __u32 ac_crdt_index(__u64 h, __u32 i, __u32 mask)
{
	__u32 wide = mask > 0xffff;             /* 32-bit fields, two per word */
	__u32 j = i >> (wide ? 1 : 2);          /* the word */
	__u32 f = i & (wide ? 1 : 3);           /* the field in it */
	__u64 w = j ? ac_mix64(h + (__u64)j * AC_HASH_M1) : h;

	return (__u32)(w >> (f << (wide ? 5 : 4))) & mask;
}

/* The cell of hash i of a key hash in a sketch whose hashes index (mask + 1) cells each, `stride`
 * cells apart: a count-min sketch gives every hash its own row (stride mask + 1), a counting
 * Bloom filter shares one array among its hashes (stride 0). */
AC_INLINE __u32 ac_sketch_cell(__u64 h, __u32 i, __u32 mask, __u32 stride)
{
	return i * stride + ac_crdt_index(h, i, mask);
}

/* Cell of row r of a count-min sketch of rows x (mask + 1) cells. */
AC_INLINE __u32 ac_cms_cell(__u64 h, __u32 r, __u32 mask)
{
	return ac_sketch_cell(h, r, mask, mask + 1);
}

/* ---- grow-only counter cell --------------------------------------------------------------- */

/* This replica adds n: the only write to slot 0, atomic (lock xadd), so no CPU loses one. */
AC_INLINE void ac_gc_add_own(struct ac_gcounter *c, __u64 n)
{
	__sync_fetch_and_add(&c->slot[0], n);
}

AC_INLINE __u64 ac_gc_value(const struct ac_gcounter *c)
{
	return c->slot[0] + c->others;
}

/* Merge remote slot s (1..SLOTS-1) with value v: max. Slot 0 is never merged (only this
 * replica increments it). Returns 1 if the cell changed. */
AC_INLINE int ac_gc_merge_slot(struct ac_gcounter *c, __u32 s, __u64 v)
{
	if (s == 0 || s >= AC_CRDT_SLOTS)
		return 0;
	__u64 old = c->slot[s];

	if (v <= old)
		return 0;
	c->slot[s] = v;
	c->others += v - old;
	return 1;
}

/* Merge a retired total (from a snapshot): max. */
AC_INLINE int ac_gc_merge_retired(struct ac_gcounter *c, __u64 v)
{
	__u64 old = c->retired;

	if (v <= old)
		return 0;
	c->retired = v;
	c->others += v - old;
	return 1;
}

/* Fold a departed origin's slot into the retired total: the value does not change. */
AC_INLINE void ac_gc_fold(struct ac_gcounter *c, __u32 s)
{
	if (s == 0 || s >= AC_CRDT_SLOTS)
		return;
	c->retired += c->slot[s];
	c->slot[s] = 0;
}

/* Forget remote slot s (a window being reset, or a slot that must be reused empty). */
AC_INLINE void ac_gc_clear_slot(struct ac_gcounter *c, __u32 s)
{
	if (s == 0 || s >= AC_CRDT_SLOTS)
		return;
	c->others -= c->slot[s];
	c->slot[s] = 0;
}

/* Lattice join of two whole cells numbered alike (slot 0 included): per slot max, retired max,
 * others recomputed. For tests and states that share a numbering; never on a live map cell. */
AC_INLINE void ac_gc_join(struct ac_gcounter *a, const struct ac_gcounter *b)
{
	__u64 others = 0;

	for (int s = 0; s < AC_CRDT_SLOTS; s++) {
		if (b->slot[s] > a->slot[s])
			a->slot[s] = b->slot[s];
		if (s > 0)
			others += a->slot[s];
	}
	if (b->retired > a->retired)
		a->retired = b->retired;
	a->others = others + a->retired;
}

/* ---- PN counter cell ---------------------------------------------------------------------- */

AC_INLINE void ac_pn_add_own(struct ac_pncounter *c, __s64 n)
{
	if (n >= 0)
		ac_gc_add_own(&c->inc, (__u64)n);
	else
		ac_gc_add_own(&c->dec, (__u64)0 - (__u64)n);
}

AC_INLINE __s64 ac_pn_value(const struct ac_pncounter *c)
{
	return (__s64)(ac_gc_value(&c->inc) - ac_gc_value(&c->dec));
}

AC_INLINE int ac_pn_merge_slot(struct ac_pncounter *c, __u32 s, __u64 inc, __u64 dec)
{
	int a = ac_gc_merge_slot(&c->inc, s, inc);
	int b = ac_gc_merge_slot(&c->dec, s, dec);

	return a | b;
}

AC_INLINE int ac_pn_merge_retired(struct ac_pncounter *c, __u64 inc, __u64 dec)
{
	int a = ac_gc_merge_retired(&c->inc, inc);
	int b = ac_gc_merge_retired(&c->dec, dec);

	return a | b;
}

AC_INLINE void ac_pn_join(struct ac_pncounter *a, const struct ac_pncounter *b)
{
	ac_gc_join(&a->inc, &b->inc);
	ac_gc_join(&a->dec, &b->dec);
}

/* ---- add-wins set element ------------------------------------------------------------------ */

AC_INLINE void ac_set_add_own(struct ac_awset_elem *e)
{
	__sync_fetch_and_add(&e->add[0], 1);
}

AC_INLINE int ac_set_contains(const struct ac_awset_elem *e)
{
	for (int s = 0; s < AC_CRDT_SLOTS; s++)
		if (e->add[s] > e->rm[s])
			return 1;
	return 0;
}

/* A remove observes every add this replica holds: rm[s] = add[s]. An add concurrent with it (a
 * dot it did not see) survives: add wins. */
AC_INLINE void ac_set_remove(struct ac_awset_elem *e)
{
	for (int s = 0; s < AC_CRDT_SLOTS; s++) {
		__u32 a = e->add[s];

		if (e->rm[s] < a)
			e->rm[s] = a;
	}
}

/* Merge origin slot s: max of adds (never for slot 0, which only this replica adds to) and of
 * removes (any slot: a remote remove may have observed this replica's adds). */
AC_INLINE int ac_set_merge_slot(struct ac_awset_elem *e, __u32 s, __u32 add, __u32 rm)
{
	int changed = 0;

	if (s >= AC_CRDT_SLOTS)
		return 0;
	if (s > 0 && add > e->add[s]) {
		e->add[s] = add;
		changed = 1;
	}
	if (rm > e->rm[s]) {
		e->rm[s] = rm;
		changed = 1;
	}
	return changed;
}

/* Whether origin slot s still has an add no remove observed (it cannot be cleared then). */
AC_INLINE int ac_set_slot_live(const struct ac_awset_elem *e, __u32 s)
{
	if (s >= AC_CRDT_SLOTS)
		return 0;
	return e->add[s] > e->rm[s];
}

AC_INLINE void ac_set_clear_slot(struct ac_awset_elem *e, __u32 s)
{
	if (s == 0 || s >= AC_CRDT_SLOTS)
		return;
	e->add[s] = 0;
	e->rm[s] = 0;
}

AC_INLINE void ac_set_join(struct ac_awset_elem *a, const struct ac_awset_elem *b)
{
	for (int s = 0; s < AC_CRDT_SLOTS; s++) {
		if (b->add[s] > a->add[s])
			a->add[s] = b->add[s];
		if (b->rm[s] > a->rm[s])
			a->rm[s] = b->rm[s];
	}
}

/* ---- deterministic-winner register -------------------------------------------------------- */

/* Order of two values: data byte-wise, then writer. <0, 0, >0 as memcmp. */
AC_INLINE int ac_reg_cmp(const struct ac_reg_value *a, const struct ac_reg_value *b)
{
	for (int i = 0; i < AC_CRDT_REG_DATA; i++)
		if (a->data[i] != b->data[i])
			return a->data[i] < b->data[i] ? -1 : 1;
	if (a->writer != b->writer)
		return a->writer < b->writer ? -1 : 1;
	return 0;
}

#define AC_REG_WINNER_CHANGED 1  /* data and writer replaced by the incoming value's */
#define AC_REG_SEEN_CHANGED 2    /* only seen advanced */

/* dst := dst join src. Returns AC_REG_* bits saying what changed. */
AC_INLINE int ac_reg_merge(struct ac_reg_value *dst, const struct ac_reg_value *src)
{
	int changed = 0;

	if (ac_reg_cmp(src, dst) > 0) {
		for (int i = 0; i < AC_CRDT_REG_DATA; i++)
			dst->data[i] = src->data[i];
		dst->writer = src->writer;
		changed |= AC_REG_WINNER_CHANGED;
	}
	if (src->seen > dst->seen) {
		dst->seen = src->seen;
		changed |= AC_REG_SEEN_CHANGED;
	}
	return changed;
}

/* ---- kernel <-> agent interface of an NF's objects (bpf/nf_crdt.h) ------------------------- */

/* ac_crdt_ctl[0], written by the agent */
struct ac_crdt_ctl {
	__u32 epoch;             /* scan epoch: a cell is logged once per epoch (touch) */
	__u32 pad;
};

/* One change-log record (ring buffer ac_crdt_changes): object and key of a changed cell. */
struct ac_crdt_change {
	__u8 object;
	__u8 key_len;
	__u16 pad;
	__u8 key[AC_CRDT_KEY_MAX]; /* array objects: the __u32 index, host order */
};

/* Merge batch: the packet data of one BPF_PROG_TEST_RUN of the merge program. Host order. */
#define AC_CRDT_BATCH_MAGIC 0xAC5E
#define AC_CRDT_BATCH_VERSION 1
#define AC_CRDT_BATCH_MAX 3072   /* fits the XDP test-run limit on 4 KB pages */
struct ac_crdt_batch_hdr {
	__u16 magic;
	__u8 version;
	__u8 pad;
	__u16 count;             /* records that follow */
	__u16 applied;           /* written back by the program: records applied */
	__u16 changed;           /* written back: records that changed a cell */
	__u16 rejected;          /* written back: records refused (bad object, length, key) */
};

enum ac_crdt_op_code {
	AC_CRDT_OP_MERGE = 1,    /* merge value into slot `slot` (AC_CRDT_SLOT_RETIRED: total) */
	AC_CRDT_OP_REMOVE = 2,   /* add-wins set: local remove of key (observes every add) */
	AC_CRDT_OP_FOLD = 3,     /* every cell of the object: fold slot into retired */
	AC_CRDT_OP_CLEAR = 4,    /* every cell of the object: slot := 0 (sets: if not live) */
	AC_CRDT_OP_RESET = 5,    /* every cell of a windowed object: all zero, own slot included
				  * (the instance's own process, before a generation takes a new window) */
};

/* A record: this header, key (key_len bytes), value (value_len bytes); each padded to 8. */
struct ac_crdt_op {
	__u8 op;
	__u8 object;
	__u8 slot;
	__u8 key_len;
	__u16 value_len;
	__u16 epoch;             /* window of a windowed object; 0 otherwise */
};

#define AC_CRDT_PAD8(n) (((n) + 7u) & ~7u)

/* Merge values by kind (host order) */
struct ac_crdt_pn_value {
	__u64 inc;
	__u64 dec;
};
struct ac_crdt_set_value {
	__u32 add;
	__u32 rm;
};

/* ---- windowed objects (docs/state.md 4.1, 4.2) ---------------------------------------------- */

/* A windowed object has two generations, two maps: window n lives in generation n & 1. The NF's
 * own process (anychain-nf) rolls the windows from the wall clock (every node runs NTP): before
 * the packet path moves to window n, generation n & 1 was reset and given window n; right after,
 * the other generation is marked AC_CRDT_WIN_NONE, reset, and given window n + 1, so that a
 * replica holds the current and the next window (a peer whose clock is slightly ahead) and a
 * late record for a past window is refused by the merge (op->epoch, ac_crdt_win_epoch()). */
#define AC_CRDT_WIN_NONE 0xffffffffu
struct ac_crdt_windows {         /* ac_crdt_win[0], written by the NF's process only */
	__u32 cur;               /* the window the packet path writes (0: none yet) */
	__u32 pad;
	__u32 gen[2];            /* the window each generation holds (AC_CRDT_WIN_NONE: resetting) */
};

/* A window as it travels in a record's epoch: 1..65535 (0 is a plain object's). */
AC_INLINE __u16 ac_crdt_win_epoch(__u32 window)
{
	return (__u16)(window % 65535u + 1u);
}

/* ac_crdt_stats: per-CPU counters of an NF's objects */
enum ac_crdt_stat {
	AC_CRDT_ST_LOGGED = 0,   /* change-log records written */
	AC_CRDT_ST_LOST,         /* change-log records lost (ring full): the agent rescans */
	AC_CRDT_ST_INSERT_RACE,  /* a key another CPU or the merge created first */
	AC_CRDT_ST_FULL,         /* a hash map object full: update not recorded */
	AC_CRDT_ST_MERGED,       /* merge records applied */
	AC_CRDT_ST_MERGE_NOOP,   /* merge records that changed nothing (duplicates, old) */
	AC_CRDT_ST_MERGE_BAD,    /* merge records refused (stale ones included) */
	AC_CRDT_ST_MERGE_STALE,  /* records of a windowed object for a window this replica no longer
				  * (or not yet) holds: refused */
	AC_CRDT_ST_END
};
#define AC_CRDT_STATS 16

#ifdef __cplusplus
#define AC_CRDT_ASSERT static_assert
#else
#define AC_CRDT_ASSERT _Static_assert
#endif
AC_CRDT_ASSERT(sizeof(struct ac_gcounter) == 152, "ac_gcounter layout");
AC_CRDT_ASSERT(sizeof(struct ac_pncounter) == 304, "ac_pncounter layout");
AC_CRDT_ASSERT(sizeof(struct ac_awset_elem) == 136, "ac_awset_elem layout");
AC_CRDT_ASSERT(sizeof(struct ac_reg_value) == 64, "ac_reg_value layout");
AC_CRDT_ASSERT(sizeof(struct ac_register) == 72, "ac_register layout");
AC_CRDT_ASSERT(sizeof(struct ac_crdt_change) == 44, "ac_crdt_change layout");
AC_CRDT_ASSERT(sizeof(struct ac_crdt_op) == 8, "ac_crdt_op layout");
AC_CRDT_ASSERT(sizeof(struct ac_crdt_batch_hdr) == 12, "ac_crdt_batch_hdr layout");
AC_CRDT_ASSERT(sizeof(struct ac_crdt_windows) == 16, "ac_crdt_windows layout");
AC_CRDT_ASSERT(AC_CRDT_ST_END <= AC_CRDT_STATS, "crdt stats overflow");

#endif /* ANYCHAIN_CRDT_H */
