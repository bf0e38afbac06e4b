/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared-state objects inside an NF's XDP program (docs/state.md, Section 2): the update and
 * read helpers of the packet path, the change log the agent extracts deltas from, and the merge
 * program the agent runs (BPF_PROG_TEST_RUN) to apply remote records in place.
 *
 * An NF program includes this header once, declares its objects as maps (arrays of
 * struct ac_gcounter / ac_pncounter, hash maps of ac_gcounter / ac_pncounter / ac_awset_elem /
 * ac_register with BPF_F_NO_PREALLOC), writes one dispatch function from object id to map and
 * instantiates AC_CRDT_MERGE_PROGRAM(). Object ids and geometry must match the agent's schema.
 *
 * Concurrency: XDP on any CPU writes only slot 0 (atomic adds) and the touch words; the merge
 * program, run by one agent thread, writes everything else in place.
 *
 * Over 500 lines: each object's update, read and merge sit together so that the merge can be
 * checked against the update it must commute with.
 */
#ifndef NF_CRDT_H
#define NF_CRDT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include <anychain/crdt.h>

#ifndef AC_INLINE
#define AC_INLINE static __always_inline
#endif

#ifndef AC_CRDT_CHANGES_BYTES
#define AC_CRDT_CHANGES_BYTES (256 * 1024) /* change-log ring buffer */
#endif
#define AC_CRDT_SCRATCH (4096 + 256)       /* a batch, plus room for a record at any offset */

#define AC_CRDT_EEXIST 17

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_crdt_ctl);
	__uint(max_entries, 1);
} ac_crdt_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, AC_CRDT_CHANGES_BYTES);
} ac_crdt_changes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, AC_CRDT_STATS);
} ac_crdt_stats SEC(".maps");

/* Per add-wins set object (by object id): nonzero once an element was ever inserted, by the
 * packet path or a merge, set before the insert. A set that never held an element answers
 * "not present" without a hash lookup (the port-scan detector asks for every packet, and no
 * source is flagged most of the time: docs/performance.md "Shared state"). Never cleared: removed
 * elements stay in the map (their rm[] observed the adds), so the hint only ever saves the lookup
 * of a set that is empty. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 256);
} ac_crdt_sets SEC(".maps");

AC_INLINE void ac_crdt_set_hint(__u8 object)
{
	__u32 k = object;
	__u32 *h = bpf_map_lookup_elem(&ac_crdt_sets, &k);

	if (h && !*h)
		*h = 1;
}

/* The windows of the NF's windowed objects (include/anychain/crdt.h), written by its process. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_crdt_windows);
	__uint(max_entries, 1);
} ac_crdt_win SEC(".maps");

struct ac_crdt_scratch {
	__u8 b[AC_CRDT_SCRATCH];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ac_crdt_scratch);
	__uint(max_entries, 1);
} ac_crdt_scratch SEC(".maps");

AC_INLINE void ac_crdt_count(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&ac_crdt_stats, &stat);

	if (v)
		*v += n;
}

/* The scan epoch (0 while no agent scans: nothing is logged, its first scan reads everything). */
AC_INLINE __u32 ac_crdt_epoch(void)
{
	__u32 zero = 0;
	const struct ac_crdt_ctl *c = bpf_map_lookup_elem(&ac_crdt_ctl, &zero);

	return c ? c->epoch : 0;
}

/* The generation the packet path writes: 0 or 1, or -1 while no window is set up (the process
 * has not rolled one yet, or the current one is being reset: the packet is not counted). */
AC_INLINE int ac_crdt_win_gen(void)
{
	__u32 zero = 0;
	const struct ac_crdt_windows *w = bpf_map_lookup_elem(&ac_crdt_win, &zero);

	if (!w || !w->cur || ((w->cur & 1) ? w->gen[1] : w->gen[0]) != w->cur)
		return -1;
	return w->cur & 1;
}

/* Whether generation gen holds the window a record carries (its epoch): the merge's check. */
AC_INLINE int ac_crdt_win_holds(__u32 gen, __u16 epoch)
{
	__u32 zero = 0;
	const struct ac_crdt_windows *w = bpf_map_lookup_elem(&ac_crdt_win, &zero);

	if (!w || gen > 1)
		return 0;
	__u32 held = gen ? w->gen[1] : w->gen[0]; /* constant offsets: the verifier's bounds */

	return held && held != AC_CRDT_WIN_NONE && ac_crdt_win_epoch(held) == epoch;
}

/* ---- change log ---------------------------------------------------------------------------- */

/* key_len is a compile-time constant at every call site (the helpers are inlined). */
AC_INLINE void ac_crdt_emit(__u8 object, const void *key, __u32 key_len)
{
	struct ac_crdt_change rec = {};

	rec.object = object;
	rec.key_len = key_len;
	__builtin_memcpy(rec.key, key, key_len);
	if (bpf_ringbuf_output(&ac_crdt_changes, &rec, sizeof(rec), 0))
		ac_crdt_count(AC_CRDT_ST_LOST, 1);
	else
		ac_crdt_count(AC_CRDT_ST_LOGGED, 1);
}

/* Log a changed cell at most once per epoch (two CPUs racing log it twice: harmless). */
AC_INLINE void ac_crdt_log(__u32 *touch, __u32 epoch, __u8 object, const void *key, __u32 key_len)
{
	if (!epoch || *touch == epoch)
		return;
	*touch = epoch;
	ac_crdt_emit(object, key, key_len);
}

/* Create a cell: insert `init` unless the key exists (BPF_NOEXIST), and log it. Returns 1 when
 * inserted (the cell is `init`), 0 when another CPU or the merge created it first (look it up and
 * update that one), -1 when the map is full (counted). */
AC_INLINE int ac_crdt_insert(void *map, __u8 object, const void *key, __u32 key_len, const void *init, __u32 epoch)
{
	long err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);

	if (!err) {
		if (epoch)
			ac_crdt_emit(object, key, key_len);
		return 1;
	}
	if (err != -AC_CRDT_EEXIST) {
		ac_crdt_count(AC_CRDT_ST_FULL, 1);
		return -1;
	}
	ac_crdt_count(AC_CRDT_ST_INSERT_RACE, 1);
	return 0;
}

/* ---- packet path: counters ----------------------------------------------------------------- */

/* Array counter cell idx += n. */
AC_INLINE int ac_crdt_gc_add_idx(void *map, __u8 object, __u32 idx, __u64 n, __u32 epoch)
{
	struct ac_gcounter *c = bpf_map_lookup_elem(map, &idx);

	if (!c)
		return -1;
	ac_gc_add_own(c, n);
	ac_crdt_log(&c->touch, epoch, object, &idx, sizeof(idx));
	return 0;
}

AC_INLINE __u64 ac_crdt_gc_value_idx(void *map, __u32 idx)
{
	const struct ac_gcounter *c = bpf_map_lookup_elem(map, &idx);

	return c ? ac_gc_value(c) : 0;
}

/* Hash counter cell += n; a new key is created with BPF_NOEXIST (losing that race: add to the
 * winner's cell). Returns -1 when the map is full (counted). */
AC_INLINE int ac_crdt_gc_add_key(void *map, __u8 object, const void *key, __u32 key_len, __u64 n,
				 __u32 epoch)
{
	struct ac_gcounter *c = bpf_map_lookup_elem(map, key);

	if (!c) {
		struct ac_gcounter init = {};

		init.slot[0] = n;
		init.touch = epoch;
		int r = ac_crdt_insert(map, object, key, key_len, &init, epoch);

		if (r)
			return r > 0 ? 0 : -1;
		c = bpf_map_lookup_elem(map, key);
		if (!c)
			return -1;
	}
	ac_gc_add_own(c, n);
	ac_crdt_log(&c->touch, epoch, object, key, key_len);
	return 0;
}

AC_INLINE __u64 ac_crdt_gc_value_key(void *map, const void *key)
{
	const struct ac_gcounter *c = bpf_map_lookup_elem(map, key);

	return c ? ac_gc_value(c) : 0;
}

/* PN counter array cell += n (n < 0: the decrement side). The cell's touch is inc.touch. */
AC_INLINE int ac_crdt_pn_add_idx(void *map, __u8 object, __u32 idx, __s64 n, __u32 epoch)
{
	struct ac_pncounter *c = bpf_map_lookup_elem(map, &idx);

	if (!c)
		return -1;
	ac_pn_add_own(c, n);
	ac_crdt_log(&c->inc.touch, epoch, object, &idx, sizeof(idx));
	return 0;
}

AC_INLINE __s64 ac_crdt_pn_value_idx(void *map, __u32 idx)
{
	const struct ac_pncounter *c = bpf_map_lookup_elem(map, &idx);

	return c ? ac_pn_value(c) : 0;
}

/* A sketch of `hashes` x (mask + 1) counter cells (ac_sketch_cell()): key hash h += n in each
 * hash's cell. A count-min sketch has a row per hash (stride mask + 1), a counting Bloom filter
 * one array for all its hashes (stride 0). */
AC_INLINE void ac_crdt_sketch_add(void *map, __u8 object, __u64 h, __u32 hashes, __u32 mask, __u32 stride,
				  __u64 n, __u32 epoch)
{
	for (__u32 i = 0; i < AC_CRDT_MAX_ROWS; i++) {
		if (i >= hashes)
			break;
		ac_crdt_gc_add_idx(map, object, ac_sketch_cell(h, i, mask, stride), n, epoch);
	}
}

/* The estimate: the smallest of the key's cells (merged values). */
AC_INLINE __u64 ac_crdt_sketch_min(void *map, __u64 h, __u32 hashes, __u32 mask, __u32 stride)
{
	__u64 best = ~0ULL;

	for (__u32 i = 0; i < AC_CRDT_MAX_ROWS; i++) {
		if (i >= hashes)
			break;
		__u64 v = ac_crdt_gc_value_idx(map, ac_sketch_cell(h, i, mask, stride));

		if (v < best)
			best = v;
	}
	return best;
}

/* Whether the key's estimate (the smallest of its cells, merged values) reaches `bound`: every
 * cell holds at least `bound`. Reads cells only until one is below, where the answer is no: a key
 * under the bound costs one cell read when its first cell is under it, not `hashes` (the IDS's
 * threshold test on every packet, docs/performance.md "Per-packet cost"). The same answer as
 * comparing ac_crdt_sketch_min() with the bound, for any cell values. */
AC_INLINE int ac_crdt_sketch_reaches(void *map, __u64 h, __u32 hashes, __u32 mask, __u32 stride, __u64 bound)
{
	for (__u32 i = 0; i < AC_CRDT_MAX_ROWS; i++) {
		if (i >= hashes)
			break;
		if (ac_crdt_gc_value_idx(map, ac_sketch_cell(h, i, mask, stride)) < bound)
			return 0;
	}
	return 1;
}

AC_INLINE void ac_crdt_cms_add(void *map, __u8 object, __u64 h, __u32 rows, __u32 mask, __u64 n, __u32 epoch)
{
	ac_crdt_sketch_add(map, object, h, rows, mask, mask + 1, n, epoch);
}
AC_INLINE __u64 ac_crdt_cms_estimate(void *map, __u64 h, __u32 rows, __u32 mask)
{
	return ac_crdt_sketch_min(map, h, rows, mask, mask + 1);
}
AC_INLINE void ac_crdt_cbf_add(void *map, __u8 object, __u64 h, __u32 k, __u32 mask, __u64 n, __u32 epoch)
{
	ac_crdt_sketch_add(map, object, h, k, mask, 0, n, epoch);
}
AC_INLINE __u64 ac_crdt_cbf_value(void *map, __u64 h, __u32 k, __u32 mask)
{
	return ac_crdt_sketch_min(map, h, k, mask, 0);
}
/* Whether the estimate of h reaches bound (ac_crdt_sketch_reaches()): the count-min sketch's
 * threshold test, and the filter's membership test (bound 1: value != 0, stops at a zero cell). */
AC_INLINE int ac_crdt_cms_reaches(void *map, __u64 h, __u32 rows, __u32 mask, __u64 bound)
{
	return ac_crdt_sketch_reaches(map, h, rows, mask, mask + 1, bound);
}
AC_INLINE int ac_crdt_cbf_contains(void *map, __u64 h, __u32 k, __u32 mask)
{
	return ac_crdt_sketch_reaches(map, h, k, mask, 0, 1);
}

/* ---- packet path: add-wins set, deterministic-winner map ----------------------------------- */

AC_INLINE int ac_crdt_set_add(void *map, __u8 object, const void *key, __u32 key_len, __u32 epoch)
{
	struct ac_awset_elem *e = bpf_map_lookup_elem(map, key);

	if (!e) {
		struct ac_awset_elem init = {};

		init.add[0] = 1;
		init.touch = epoch;
		ac_crdt_set_hint(object);
		int r = ac_crdt_insert(map, object, key, key_len, &init, epoch);

		if (r)
			return r > 0 ? 0 : -1;
		e = bpf_map_lookup_elem(map, key);
		if (!e)
			return -1;
	}
	ac_set_add_own(e);
	ac_crdt_log(&e->touch, epoch, object, key, key_len);
	return 0;
}

AC_INLINE int ac_crdt_set_contains(void *map, __u8 object, const void *key)
{
	__u32 k = object;
	const __u32 *h = bpf_map_lookup_elem(&ac_crdt_sets, &k);

	if (!h || !*h)
		return 0; /* never held an element */
	const struct ac_awset_elem *e = bpf_map_lookup_elem(map, key);

	return e ? ac_set_contains(e) : 0;
}

/* Insert key -> v unless the key exists; returns the entry held (ours or the first writer's). */
AC_INLINE struct ac_register *ac_crdt_reg_insert(void *map, __u8 object, const void *key, __u32 key_len,
						 const struct ac_reg_value *v, __u32 epoch)
{
	struct ac_register *r = bpf_map_lookup_elem(map, key);

	if (r)
		return r;
	struct ac_register init = {};

	init.touch = epoch;
	__builtin_memcpy(&init.v, v, sizeof(init.v));
	if (ac_crdt_insert(map, object, key, key_len, &init, epoch) < 0)
		return 0;
	return bpf_map_lookup_elem(map, key);
}

/* The entry was used at `now`: advance seen (and replicate it) when it moved by more than
 * `granularity`, so a busy flow does not log a change per packet. */
AC_INLINE void ac_crdt_reg_seen(struct ac_register *r, __u8 object, const void *key, __u32 key_len,
				__u64 now, __u64 granularity, __u32 epoch)
{
	if (now <= r->v.seen + granularity)
		return;
	r->v.seen = now;
	ac_crdt_log(&r->touch, epoch, object, key, key_len);
}

/* ---- merge program: applying one record ---------------------------------------------------- */

#define AC_CRDT_APPLY_STALE (-2) /* refused: a windowed object's record for a window not held */
#define AC_CRDT_APPLY_BAD (-1)   /* refused: counted, skipped */
#define AC_CRDT_APPLY_NOOP 0     /* valid, changed nothing (a duplicate or an older value) */
#define AC_CRDT_APPLY_CHANGED 1

AC_INLINE int ac_crdt_apply_gc_cell(struct ac_gcounter *c, const struct ac_crdt_op *op, const __u64 *v)
{
	if (op->slot == AC_CRDT_SLOT_RETIRED)
		return ac_gc_merge_retired(c, *v);
	if (op->slot == 0 || op->slot >= AC_CRDT_SLOTS)
		return AC_CRDT_APPLY_BAD;
	return ac_gc_merge_slot(c, op->slot, *v);
}

AC_INLINE int ac_crdt_apply_pn_cell(struct ac_pncounter *c, const struct ac_crdt_op *op,
				    const struct ac_crdt_pn_value *v)
{
	if (op->slot == AC_CRDT_SLOT_RETIRED)
		return ac_pn_merge_retired(c, v->inc, v->dec);
	if (op->slot == 0 || op->slot >= AC_CRDT_SLOTS)
		return AC_CRDT_APPLY_BAD;
	return ac_pn_merge_slot(c, op->slot, v->inc, v->dec);
}

/* Array counter (G-counter, count-min sketch, Bloom filter): key is the __u32 index. */
AC_INLINE int ac_crdt_apply_gc_idx(void *map, const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	if (op->op != AC_CRDT_OP_MERGE || op->key_len != 4 || op->value_len != 8)
		return AC_CRDT_APPLY_BAD;
	struct ac_gcounter *c = bpf_map_lookup_elem(map, key);

	if (!c)
		return AC_CRDT_APPLY_BAD;
	return ac_crdt_apply_gc_cell(c, op, val);
}

AC_INLINE int ac_crdt_apply_pn_idx(void *map, const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	if (op->op != AC_CRDT_OP_MERGE || op->key_len != 4 || op->value_len != 16)
		return AC_CRDT_APPLY_BAD;
	struct ac_pncounter *c = bpf_map_lookup_elem(map, key);

	if (!c)
		return AC_CRDT_APPLY_BAD;
	return ac_crdt_apply_pn_cell(c, op, val);
}

/* Hash counter: a missing key is created (racing XDP's insert: merge into the winner). */
AC_INLINE int ac_crdt_apply_gc_key(void *map, const struct ac_crdt_op *op, const __u8 *key, const void *val,
				   __u32 key_size)
{
	if (op->op != AC_CRDT_OP_MERGE || op->key_len != key_size || op->value_len != 8)
		return AC_CRDT_APPLY_BAD;
	struct ac_gcounter *c = bpf_map_lookup_elem(map, key);

	if (!c) {
		struct ac_gcounter init = {};

		if (bpf_map_update_elem(map, key, &init, BPF_NOEXIST) &&
		    bpf_map_lookup_elem(map, key) == 0) {
			ac_crdt_count(AC_CRDT_ST_FULL, 1);
			return AC_CRDT_APPLY_BAD;
		}
		c = bpf_map_lookup_elem(map, key);
		if (!c)
			return AC_CRDT_APPLY_BAD;
	}
	return ac_crdt_apply_gc_cell(c, op, val);
}

AC_INLINE int ac_crdt_apply_set(void *map, const struct ac_crdt_op *op, const __u8 *key, const void *val,
				__u32 key_size)
{
	if (op->key_len != key_size)
		return AC_CRDT_APPLY_BAD;
	struct ac_awset_elem *e = bpf_map_lookup_elem(map, key);

	if (op->op == AC_CRDT_OP_REMOVE) {
		if (!e)
			return AC_CRDT_APPLY_BAD;
		ac_set_remove(e);
		return AC_CRDT_APPLY_CHANGED;
	}
	if (op->op != AC_CRDT_OP_MERGE || op->value_len != 8 || op->slot >= AC_CRDT_SLOTS)
		return AC_CRDT_APPLY_BAD;
	if (!e) {
		struct ac_awset_elem init = {};

		ac_crdt_set_hint(op->object);
		if (bpf_map_update_elem(map, key, &init, BPF_NOEXIST) &&
		    bpf_map_lookup_elem(map, key) == 0) {
			ac_crdt_count(AC_CRDT_ST_FULL, 1);
			return AC_CRDT_APPLY_BAD;
		}
		e = bpf_map_lookup_elem(map, key);
		if (!e)
			return AC_CRDT_APPLY_BAD;
	}
	const struct ac_crdt_set_value *sv = val;

	return ac_set_merge_slot(e, op->slot, sv->add, sv->rm);
}

/* A register that loses stays; one that wins replaces the entry whole (readers of the old
 * element keep a consistent copy until their RCU section ends: the map has no prealloc). */
AC_INLINE int ac_crdt_apply_reg(void *map, const struct ac_crdt_op *op, const __u8 *key, const void *val,
				__u32 key_size)
{
	if (op->op != AC_CRDT_OP_MERGE || op->key_len != key_size ||
	    op->value_len != sizeof(struct ac_reg_value))
		return AC_CRDT_APPLY_BAD;
	struct ac_register cur = {};
	struct ac_register *r = bpf_map_lookup_elem(map, key);

	if (!r) {
		__builtin_memcpy(&cur.v, val, sizeof(cur.v));
		if (!bpf_map_update_elem(map, key, &cur, BPF_NOEXIST))
			return AC_CRDT_APPLY_CHANGED;
		r = bpf_map_lookup_elem(map, key); /* XDP inserted it meanwhile */
		if (!r) {
			ac_crdt_count(AC_CRDT_ST_FULL, 1);
			return AC_CRDT_APPLY_BAD;
		}
	}
	__builtin_memcpy(&cur, r, sizeof(cur));
	int ch = ac_reg_merge(&cur.v, val);

	if (ch & AC_REG_WINNER_CHANGED) {
		if (bpf_map_update_elem(map, key, &cur, BPF_EXIST))
			return AC_CRDT_APPLY_BAD;
		return AC_CRDT_APPLY_CHANGED;
	}
	if (ch & AC_REG_SEEN_CHANGED) {
		r->v.seen = cur.v.seen;
		return AC_CRDT_APPLY_CHANGED;
	}
	return AC_CRDT_APPLY_NOOP;
}

/* ---- merge program: whole-object operations (fold, clear) ---------------------------------- */

struct ac_crdt_fold_ctx {
	__u32 slot;
	__u32 op;                /* AC_CRDT_OP_FOLD, AC_CRDT_OP_CLEAR or AC_CRDT_OP_RESET */
	__u32 cells;             /* cells visited */
	__u32 live;              /* set elements whose slot still has a live add */
};

static long ac_crdt_fold_gc_cb(void *map, const void *key, void *value, void *ctx)
{
	struct ac_crdt_fold_ctx *f = ctx;
	struct ac_gcounter *c = value;

	if (f->op == AC_CRDT_OP_RESET)
		__builtin_memset(c, 0, sizeof(*c));
	else if (f->op == AC_CRDT_OP_FOLD)
		ac_gc_fold(c, f->slot);
	else
		ac_gc_clear_slot(c, f->slot);
	f->cells++;
	return 0;
}

static long ac_crdt_fold_pn_cb(void *map, const void *key, void *value, void *ctx)
{
	struct ac_crdt_fold_ctx *f = ctx;
	struct ac_pncounter *c = value;

	if (f->op == AC_CRDT_OP_RESET) {
		__builtin_memset(c, 0, sizeof(*c));
	} else if (f->op == AC_CRDT_OP_FOLD) {
		ac_gc_fold(&c->inc, f->slot);
		ac_gc_fold(&c->dec, f->slot);
	} else {
		ac_gc_clear_slot(&c->inc, f->slot);
		ac_gc_clear_slot(&c->dec, f->slot);
	}
	f->cells++;
	return 0;
}

static long ac_crdt_fold_set_cb(void *map, const void *key, void *value, void *ctx)
{
	struct ac_crdt_fold_ctx *f = ctx;
	struct ac_awset_elem *e = value;

	if (ac_set_slot_live(e, f->slot))
		f->live++;
	else
		ac_set_clear_slot(e, f->slot);
	f->cells++;
	return 0;
}

/* Fold or clear slot f->slot in every cell of one object of the given kind; reset every cell of
 * a counter object (the NF's fold() allows RESET on its windowed objects only). */
AC_INLINE void ac_crdt_fold_object(void *map, __u32 kind, struct ac_crdt_fold_ctx *f)
{
	if (f->op == AC_CRDT_OP_RESET && (kind == AC_CRDT_AWSET || kind == AC_CRDT_REGMAP))
		return;
	if (kind == AC_CRDT_PNCOUNTER)
		bpf_for_each_map_elem(map, ac_crdt_fold_pn_cb, f, 0);
	else if (kind == AC_CRDT_AWSET)
		bpf_for_each_map_elem(map, ac_crdt_fold_set_cb, f, 0);
	else if (kind != AC_CRDT_REGMAP)
		bpf_for_each_map_elem(map, ac_crdt_fold_gc_cb, f, 0);
}

/* ---- merge program: the batch walk ---------------------------------------------------------- */

struct ac_crdt_walk {
	__u32 off;               /* next record in the scratch buffer */
	__u32 len;               /* batch bytes */
	__u16 applied, changed, rejected, stale;
};

/*
 * AC_CRDT_MERGE_PROGRAM(name, apply, fold): the merge program of an NF.
 *   int apply(const struct ac_crdt_op *op, const __u8 *key, const void *val): dispatch on
 *       op->object to ac_crdt_apply_*() with the object's map; AC_CRDT_APPLY_BAD if unknown.
 *   int fold(__u8 object, struct ac_crdt_fold_ctx *f): ac_crdt_fold_object() with the object's
 *       map and kind; -1 if unknown, and for RESET (f->op) on an object that is not windowed.
 * A windowed object's apply checks op->epoch with ac_crdt_win_holds() and returns
 * AC_CRDT_APPLY_STALE for a window its generation does not hold (counted apart, and rejected).
 * A batch whose first record is FOLD or CLEAR is that one whole-object operation (the agent
 * sends it alone); `changed` is then the number of cells visited and `rejected` the number of
 * set elements whose slot stays live.
 */
#define AC_CRDT_MERGE_PROGRAM(name, apply, fold)                                                 \
	static long name##_walk(__u32 i, void *ctx)                                              \
	{                                                                                        \
		struct ac_crdt_walk *w = ctx;                                                    \
		__u32 zero = 0;                                                                  \
		struct ac_crdt_scratch *sb = bpf_map_lookup_elem(&ac_crdt_scratch, &zero);       \
		if (!sb || w->off + sizeof(struct ac_crdt_op) > w->len)                          \
			return 1;                                                                \
		__u32 off = w->off & 4095;                                                       \
		const struct ac_crdt_op *op = (const void *)&sb->b[off];                         \
		__u32 klen = AC_CRDT_PAD8(op->key_len), vlen = AC_CRDT_PAD8(op->value_len);      \
		if (op->key_len > AC_CRDT_KEY_MAX || op->value_len > 64 ||                       \
		    w->off + sizeof(*op) + klen + vlen > w->len)                                 \
			return 1;                                                                \
		const __u8 *key = &sb->b[off + sizeof(*op)];                                     \
		const void *val = key + (klen & 63);                                             \
		int r = apply(op, key, val);                                                     \
		if (r < 0)                                                                       \
			w->rejected++;                                                           \
		else                                                                             \
			w->applied++;                                                            \
		if (r == AC_CRDT_APPLY_STALE)                                                    \
			w->stale++;                                                              \
		if (r > 0)                                                                       \
			w->changed++;                                                            \
		w->off += sizeof(*op) + klen + vlen;                                             \
		return 0;                                                                        \
	}                                                                                        \
	SEC("xdp")                                                                               \
	int name(struct xdp_md *ctx)                                                             \
	{                                                                                        \
		__u32 zero = 0;                                                                  \
		struct ac_crdt_scratch *sb = bpf_map_lookup_elem(&ac_crdt_scratch, &zero);       \
		__u64 len = (__u64)ctx->data_end - (__u64)ctx->data;                             \
		if (!sb)                                                                         \
			return XDP_ABORTED;                                                      \
		if (len > AC_CRDT_BATCH_MAX)                                                     \
			return XDP_DROP;                                                         \
		barrier_var(len); /* two checks the verifier can follow, not one range test */   \
		if (len < sizeof(struct ac_crdt_batch_hdr))                                      \
			return XDP_DROP;                                                         \
		if (bpf_xdp_load_bytes(ctx, 0, sb->b, len))                                      \
			return XDP_DROP;                                                         \
		struct ac_crdt_batch_hdr *h = (void *)sb->b;                                     \
		if (h->magic != AC_CRDT_BATCH_MAGIC || h->version != AC_CRDT_BATCH_VERSION)      \
			return XDP_DROP;                                                         \
		struct ac_crdt_walk w = { .off = sizeof(*h), .len = len };                       \
		const struct ac_crdt_op *first = (const void *)&sb->b[sizeof(*h)];               \
		if (h->count == 1 && len >= sizeof(*h) + sizeof(*first) &&                       \
		    (first->op == AC_CRDT_OP_FOLD || first->op == AC_CRDT_OP_CLEAR ||            \
		     first->op == AC_CRDT_OP_RESET)) {                                           \
			struct ac_crdt_fold_ctx f = { .slot = first->slot, .op = first->op };   \
			if ((first->op != AC_CRDT_OP_RESET &&                                    \
			     (first->slot == 0 || first->slot >= AC_CRDT_SLOTS)) ||              \
			    fold(first->object, &f) < 0) {                                       \
				w.rejected = 1;                                                  \
			} else {                                                                 \
				w.applied = 1;                                                   \
				w.changed = f.cells;                                             \
				w.rejected = f.live;                                             \
			}                                                                        \
		} else {                                                                         \
			bpf_loop(h->count, name##_walk, &w, 0);                                  \
			ac_crdt_count(AC_CRDT_ST_MERGED, w.applied);                             \
			ac_crdt_count(AC_CRDT_ST_MERGE_NOOP, w.applied - w.changed);             \
			ac_crdt_count(AC_CRDT_ST_MERGE_BAD, w.rejected);                         \
			ac_crdt_count(AC_CRDT_ST_MERGE_STALE, w.stale);                          \
		}                                                                                \
		bpf_xdp_store_bytes(ctx, __builtin_offsetof(struct ac_crdt_batch_hdr, applied),  \
				    &w.applied, 6);                                              \
		return XDP_PASS;                                                                 \
	}

/* Benchmark only (bench/nf_state_*.bpf.c, anychain-bench-nf-state): BPF_PROG_TEST_RUN repeats a
 * program on one buffer and restores nothing, and an NF lowers the NSH SI on every run, so the
 * bench builds put it back at the start of every run (one byte, in both builds it compares). */
#ifdef AC_NF_BENCH_LOOP
AC_INLINE void ac_nf_bench_rewind(struct xdp_md *ctx)
{
	__u8 *si = (__u8 *)(long)ctx->data + 14 + 7;

	if ((void *)(si + 1) <= (void *)(long)ctx->data_end)
		*si = 255;
}
#else
#define ac_nf_bench_rewind(ctx) ((void)0)
#endif

#endif /* NF_CRDT_H */
