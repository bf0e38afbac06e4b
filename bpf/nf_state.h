/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTC inside an NF's XDP program (docs/ftc.md Section 3): the NF's keyed state, read and written
 * inside a per-packet transaction on the packet's partition under the partition's bpf_spin_lock,
 * and the FTC hop around it: replicate the predecessors' logs in order, strip the logs this hop is
 * the tail of (with commit entries for returned ones), append the transaction's log, rebuild the
 * NSH. An NF program uses it as:
 *
 *	struct ac_ftc_hop hop;
 *	r = ac_ftc_hop_begin(ctx, &hop, now);     CONTINUE, PLAIN (not FTC), HOLD, DROP
 *	... read packet fields (no helper calls between begin and commit of a transaction) ...
 *	if (ac_st_begin(&hop, &tx, now) == 0) { ac_st_find / ac_st_put / ac_st_del; ac_st_commit(&hop, &tx); }
 *	r = ac_ftc_hop_finish(ctx, &hop);        (CONTINUE only)
 *
 * A PLAIN packet (MD type 1, or MD type 2 without the control TLV: a chain without FTC) still has
 * its partition (SPI/SI and the flow hash the classifier put in the NSH), so the NF's state API
 * works the same on it: transactions read and write the partition's record under its lock; the
 * commit advances the sequence but stages no log, and the NSH is left as it is (no
 * ac_ftc_hop_finish). An NF written on this API therefore runs unchanged when its chain turns
 * FTC on (docs/nf.md, "The state API").
 *
 * One header of about 830 lines, not split: the hop, the state API and the replication step
 * share the per-CPU scratch windows and the verifier-driven structure of Section 3.6 (global
 * functions, bpf_loop steps, masks); pieces in separate headers could only be read together.
 *
 * The maps are the NF object's own, unpinned (the NF model: they live and die with the process).
 * Everything the wire and the order rule need is in include/anychain/ftc.h, shared with the C++
 * library (agent/ftc/hop.cc does the same hop byte for byte).
 */
#ifndef AC_NF_STATE_H
#define AC_NF_STATE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AC_INLINE
#define AC_INLINE static __always_inline
#endif

#include <anychain/nsh.h>
#include <anychain/maps.h>
#include <anychain/ftc.h>
#include <anychain/nf.h>

#ifndef AC_NF_HEAD_MAX
#define AC_NF_HEAD_MAX 65536
#endif
#ifndef AC_NF_REPLICA_MAX
#define AC_NF_REPLICA_MAX (4 * 65536)
#endif
#define AC_NF_OVERFLOW_BYTES (64 * 1024)

enum ac_ftc_verdict {
	AC_FTC_CONTINUE = 0,     /* run the NF, then ac_ftc_hop_finish() */
	AC_FTC_PLAIN,            /* not an FTC packet (no control TLV, or MD type 1): no state */
	AC_FTC_HOLD,             /* a gap: ac_ftc_hold() */
	AC_FTC_DROP,             /* counted by reason */
};

/* What one packet's hop knows */
struct ac_ftc_hop {
	__u32 nsh_len;           /* received NSH length */
	__u32 spi_si;            /* host order: SPI << 8 | SI at this hop */
	__u32 hash;
	__u32 own_len;           /* value bytes of this hop's log, 0: none */
	__u16 id;                /* this instance */
	__u8 inc;
	__u8 f;
	__u8 stateful;
	__u8 propagating;        /* the packet arrived propagating: the NF must not run */
	__u8 filtered;           /* the NF filtered it: it leaves propagating, inner packet removed */
	__u8 verdict;            /* bpf_loop's result (enum ac_ftc_verdict) */
	__u8 plain;              /* not an FTC packet: transactions keep state, no log is staged */
	__u64 now;               /* jiffies */
};

/* Per-CPU working memory of one hop */
struct ac_ftc_scratch {
	__u8 old[AC_FTC_WIN];    /* the NSH as received (held counts and strip marks updated); at
				  * least 32 bytes follow it in this struct (ac_st_load_words) */
	struct ac_ftc_rebuild rb;
	__u8 eth_pad[2];
	__u8 eth[ETH_HLEN];      /* the frame's Ethernet header as it arrived (the NFs do not write
				  * it before ac_ftc_hop_finish; ac_nf_tx swaps the MACs after),
				  * right before the rebuilt NSH: one store writes both */
	__u8 nsh[AC_FTC_WIN];    /* the NSH rebuilt (8-byte aligned) */
	__u8 own[AC_FTC_WIN];    /* this hop's log value, zero after its end */
	struct ac_ftc_view view;
	struct ac_ftc_commits commits;
	struct ac_st_slot staged[AC_FTC_MAX_WRITES]; /* a log's writes, fixed size (key and value
						    * zero-padded), or the transaction's dirty slots */
	__u8 zero[sizeof(struct ac_st_rec)]; /* an empty record, the value new records are created
					      * from (bytes: a per-CPU map cannot hold a spin lock) */
	struct ac_ftc_hop hop;   /* the hop's parameters for the replicate callback */
	__u32 nwrites;           /* the writes ac_st_commit encodes (ac_ftc_encode_write) */
	struct ac_nf_overflow ovf; /* its eth is copied from eth when a record is written */
};
_Static_assert(__builtin_offsetof(struct ac_ftc_scratch, nsh) % 8 == 0 &&
		       __builtin_offsetof(struct ac_ftc_scratch, eth) + ETH_HLEN ==
			       __builtin_offsetof(struct ac_ftc_scratch, nsh),
	       "the rebuilt NSH follows the Ethernet header, 8-byte aligned");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AC_NF_HEAD_MAX);
	__type(key, struct ac_st_pkey);
	__type(value, struct ac_st_rec);
} nf_head SEC(".maps");

/* Not preallocated: sized for the largest f times a head's partitions (anychain-nf's default), it
 * takes memory for the records in use only (a replica holds the partitions that cross it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, AC_NF_REPLICA_MAX);
	__type(key, struct ac_st_rkey);
	__type(value, struct ac_st_rec);
} nf_replica SEC(".maps");

/* instance id -> its known incarnation + 1; 0: not an FTC instance (its logs are refused) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_MAX_INSTANCES);
	__type(key, __u32);
	__type(value, __u32);
} nf_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_ftc_cfg);
} nf_ftc_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_ftc_scratch);
} nf_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_FTC_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} nf_ftc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, AC_NF_OVERFLOW_BYTES);
} nf_overflow SEC(".maps");

/* packets held for a gap go to anychain-nf's AF_XDP socket in slot 0 (the NF's veth has one RX
 * queue: the socket is bound to queue 0) */
/* anychain-nf's own counters (enum ac_nf_proc_stat): written by the process, never by XDP; in the
 * object so that `anychain state` reads them by id like every other counter */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_NF_PROC_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} nf_proc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nf_hold SEC(".maps");

/* A transaction on the packet's partition: between ac_st_begin() and ac_st_commit() the
 * record's lock is held, so no helper or function may be called (the verifier refuses it). */
struct ac_st_tx {
	struct ac_st_rec *rec;
	struct ac_ftc_scratch *s;   /* looked up before the lock: no call may run under it */
	__u32 wbytes;            /* the log's value bytes so far */
	__u32 dirty;             /* slots written */
};

AC_INLINE void ac_ftc_count(__u32 stat)
{
	__u64 *c = bpf_map_lookup_elem(&nf_ftc_stats, &stat);

	if (c)
		*c += 1;
}

AC_INLINE struct ac_ftc_scratch *ac_ftc_scratch(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&nf_scratch, &k);
}

AC_INLINE int ac_st_key_eq(const struct ac_st_slot *a, const struct ac_st_slot *b)
{
	const __u64 *x = (const __u64 *)a->key, *y = (const __u64 *)b->key;

	return a->table == b->table && a->klen == b->klen && x[0] == y[0] && x[1] == y[1];
}

AC_INLINE void ac_st_copy_val(struct ac_st_slot *d, const struct ac_st_slot *s)
{
	__u64 *x = (__u64 *)d->val;
	const __u64 *y = (const __u64 *)s->val;

	x[0] = y[0];
	x[1] = y[1];
	x[2] = y[2];
	x[3] = y[3];
	d->vlen = s->vlen;
}

AC_INLINE void ac_st_copy_slot(struct ac_st_slot *d, const struct ac_st_slot *s)
{
	__u64 *x = (__u64 *)d;
	const __u64 *y = (const __u64 *)s;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*d) / 8); i++)
		x[i] = y[i];
}

AC_INLINE void ac_st_clear_slot(struct ac_st_slot *d)
{
	__u64 *x = (__u64 *)d;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*d) / 8); i++)
		x[i] = 0;
}

/* Apply the n staged writes to rec (lock held): deletes first, then puts, so the slots never
 * need to hold more keys than the result (docs/ftc.md 3.5). Returns -1 if a put finds no slot. */
AC_INLINE int ac_st_apply_staged(struct ac_st_rec *rec, struct ac_ftc_scratch *s, __u32 n)
{
	int err = 0;

	for (__u32 pass = 0; pass < 2; pass++) {
		for (__u32 i = 0; i < AC_FTC_MAX_WRITES; i++) {
			struct ac_st_slot *w = &s->staged[i], *hit = 0, *free = 0;
			int del;

			if (i >= n)
				break;
			del = w->flags & AC_FTC_W_DELETE;
			if ((pass == 0) != (del != 0))
				continue;
			for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
				struct ac_st_slot *sl = &rec->slot[j];

				if ((sl->flags & AC_ST_USED) && ac_st_key_eq(sl, w))
					hit = sl;
				else if (!(sl->flags & AC_ST_USED) && !free)
					free = sl;
			}
			if (del) {
				if (hit)
					ac_st_clear_slot(hit);
				continue;
			}
			if (!hit && free) {
				hit = free;
				ac_st_clear_slot(hit);
				hit->table = w->table;
				hit->klen = w->klen;
				((__u64 *)hit->key)[0] = ((__u64 *)w->key)[0];
				((__u64 *)hit->key)[1] = ((__u64 *)w->key)[1];
				hit->flags = AC_ST_USED;
			}
			if (!hit) {
				err = -1;
				continue;
			}
			ac_st_copy_val(hit, w);
		}
	}
	return err;
}

/* ac_st_tail_mask[len - 8 q + 24]: the bytes of word q (little-endian) that lie below len
 * (len <= 63, q <= 3): 24 empty masks, the masks of 0..7 low bytes, then full ones. */
#define AC_ST_M0x4 0, 0, 0, 0
#define AC_ST_M1x4 ~0ULL, ~0ULL, ~0ULL, ~0ULL
#define AC_ST_M1x16 AC_ST_M1x4, AC_ST_M1x4, AC_ST_M1x4, AC_ST_M1x4
static const __u64 ac_st_tail_mask[128] = {
	AC_ST_M0x4, AC_ST_M0x4, AC_ST_M0x4, AC_ST_M0x4, AC_ST_M0x4, AC_ST_M0x4,
	0, 0xffULL, 0xffffULL, 0xffffffULL, 0xffffffffULL, 0xffffffffffULL, 0xffffffffffffULL,
	0xffffffffffffffULL,
	AC_ST_M1x16, AC_ST_M1x16, AC_ST_M1x16, AC_ST_M1x16, AC_ST_M1x16, AC_ST_M1x16,
};

/* Zero the bytes of words[0..n) from byte len on (len <= 32), from the table: arithmetic clamps
 * would become conditional jumps (BPF has no conditional move) that the verifier walks path by
 * path. */
AC_INLINE void ac_st_zero_tail(__u64 *words, __u32 n, __u32 len)
{
	__u32 l = ac_ftc_mask(len, 63);

#pragma unroll
	for (__u32 q = 0; q < 4; q++) {
		if (q >= n)
			break;
		words[q] &= ac_st_tail_mask[(l + 24 - 8 * q) & 127];
	}
}

/* n words from window offset o (masked into the window; the scratch continues after it) */
AC_INLINE void ac_st_load_words(__u64 *dst, const __u8 *win, __u32 o, __u32 n)
{
	const __u8 *p = win + ac_ftc_mask(o, AC_FTC_WMASK);

#pragma unroll
	for (__u32 q = 0; q < 4; q++) {
		if (q >= n)
			break;
		dst[q] = *(const __u64 *)(p + 8 * q);
	}
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nf_state.h assumes little-endian BPF (the key and value word masks)"
#endif

/* Stage the writes of the log at TLV offset off (checked by ac_ftc_walk) as fixed slots, key and
 * value zero after their lengths (fixed-size copies: no data-dependent loop exit). */
AC_INLINE __u32 ac_ftc_stage(struct ac_ftc_scratch *s, __u32 off)
{
	__u32 nw = AC_FTC_B(s->old, AC_FTC_LOG_NW_AT(off)), o = AC_FTC_LOG_WRITES_AT(off);

	for (__u32 i = 0; i < AC_FTC_MAX_WRITES; i++) {
		struct ac_st_slot *w = &s->staged[i];
		__u32 klen, vlen;

		if (i >= nw)
			break;
		w->table = AC_FTC_B(s->old, o);
		w->flags = AC_FTC_B(s->old, o + 1);
		klen = AC_FTC_B(s->old, o + 2);
		vlen = AC_FTC_B(s->old, o + 3);
		w->klen = (__u8)klen;
		w->vlen = (__u8)vlen;
		o += AC_FTC_WRITE_HDR;
		/* whole arrays as 64-bit words (unaligned loads inside the map value: the window is
		 * followed by the rest of the scratch), then the bytes past the length zeroed by word
		 * masks: no loop and no branch per byte, which the verifier would walk path by path */
		ac_st_load_words((__u64 *)w->key, s->old, o, AC_FTC_KEY_MAX / 8);
		o += klen;
		ac_st_load_words((__u64 *)w->val, s->old, o, AC_FTC_VAL_MAX / 8);
		o += vlen;
		ac_st_zero_tail((__u64 *)w->key, AC_FTC_KEY_MAX / 8, klen);
		ac_st_zero_tail((__u64 *)w->val, AC_FTC_VAL_MAX / 8, vlen);
	}
	return nw;
}

/* One predecessor's log (index k). A global function with a scalar argument: the verifier checks
 * it once, on its own, whatever the callers' states (a static function or a bpf_loop callback
 * would be checked again for each of them). It takes and releases its record's lock itself.
 * Returns 1 to stop (the verdict is in the scratch's hop), 0 to go on. */
__attribute__((noinline)) int ac_ftc_replicate(__u32 k)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	struct ac_ftc_hop *hop;
	struct ac_st_rkey rk;
	struct ac_st_rec *rec;
	__u32 off, mbox, seq, count, flags, held, nw, *peer, pid;
	enum ac_ftc_order ord = AC_FTC_GAP;
	int have, wrapped, err = 0;

	if (!s)
		return 1;
	hop = &s->hop; /* the hop's parameters (a global function takes scalars only) */
	if (k >= s->view.nlogs || k >= AC_FTC_MAX_LOGS)
		return 1;
	off = s->view.log[ac_ftc_mask(k, AC_FTC_MAX_LOGS - 1)];
	mbox = ac_ftc_rd32(s->old, AC_FTC_LOG_MBOX_AT(off));
	seq = ac_ftc_rd32(s->old, AC_FTC_LOG_SEQ_AT(off));
	flags = AC_FTC_B(s->old, AC_FTC_LOG_FLAGS_AT(off));
	held = AC_FTC_B(s->old, AC_FTC_LOG_HELD_AT(off));
	count = AC_FTC_B(s->old, AC_FTC_LOG_COUNT_AT(off));
	wrapped = flags & AC_FTC_LOG_WRAPPED;
	if (AC_FTC_MBOX_ID(mbox) == hop->id) {
		ac_ftc_count(AC_FTC_ST_OWN_LOG);
		hop->verdict = AC_FTC_DROP;
		return 1;
	}
	pid = AC_FTC_MBOX_ID(mbox);
	peer = bpf_map_lookup_elem(&nf_peers, &pid);
	if (!peer || !*peer) {
		ac_ftc_count(AC_FTC_ST_UNKNOWN_MBOX);
		hop->verdict = AC_FTC_DROP;
		return 1;
	}
	nw = ac_ftc_stage(s, off);
	rk.id = pid;
	rk.spi_si = (hop->spi_si & 0xffffff00u) | AC_FTC_MBOX_SI(mbox);
	rk.hash = hop->hash;
	rec = bpf_map_lookup_elem(&nf_replica, &rk);
	if (!rec) {
		ord = ac_ftc_order(0, 0, 0, AC_FTC_MBOX_INC(mbox), seq, count, flags & AC_FTC_LOG_STUB);
		if (ord == AC_FTC_APPLY) {
			long e = bpf_map_update_elem(&nf_replica, &rk, s->zero, BPF_NOEXIST);

			rec = bpf_map_lookup_elem(&nf_replica, &rk);
			if (!rec) {
				(void)e;
				ac_ftc_count(AC_FTC_ST_REPLICA_FULL);
				hop->verdict = AC_FTC_DROP;
				return 1;
			}
		}
	}
	if (rec) {
		bpf_spin_lock(&rec->lock);
		have = rec->flags & AC_ST_REC_VALID;
		ord = ac_ftc_order(have, rec->inc, rec->seq, AC_FTC_MBOX_INC(mbox), seq, count,
				   flags & AC_FTC_LOG_STUB);
		if (ord == AC_FTC_APPLY) {
			err = ac_st_apply_staged(rec, s, nw);
			rec->seq = seq;
			rec->inc = AC_FTC_MBOX_INC(mbox);
			rec->held = (__u8)(held + 1);
			rec->flags |= AC_ST_REC_VALID;
			rec->last_used = hop->now;
		} else if (ord == AC_FTC_SATISFIED && have &&
			   !ac_ftc_inc_older(AC_FTC_MBOX_INC(mbox), rec->inc)) {
			rec->inc = AC_FTC_MBOX_INC(mbox);
			rec->last_used = hop->now; /* a live partition (no-ops, duplicates) is not idle:
						    * anychain-nf reclaims by last_used (6.2) */
		}
		bpf_spin_unlock(&rec->lock);
	}
	if (err) {
		ac_ftc_count(AC_FTC_ST_REPLICA_FULL);
		hop->verdict = AC_FTC_DROP;
		return 1;
	}
	switch (ord) {
	case AC_FTC_GAP:
		ac_ftc_count(AC_FTC_ST_GAP);
		hop->verdict = AC_FTC_HOLD;
		return 1;
	case AC_FTC_STALE:
		ac_ftc_count(AC_FTC_ST_STALE);
		if (!wrapped) {
			hop->verdict = AC_FTC_DROP;
			return 1;
		}
		AC_FTC_B(s->old, off + 2) = AC_TLV_FTC_STRIP; /* an earlier packet's returned log */
		return 0;
	case AC_FTC_APPLY:
		ac_ftc_count(AC_FTC_ST_APPLIED);
		break;
	case AC_FTC_SATISFIED:
		ac_ftc_count(AC_FTC_ST_SATISFIED);
		break;
	}
	held += 1;
	AC_FTC_B(s->old, AC_FTC_LOG_HELD_AT(off)) = (__u8)held;
	if (held == (__u32)hop->f + 1) {
		AC_FTC_B(s->old, off + 2) = AC_TLV_FTC_STRIP;
		ac_ftc_count(AC_FTC_ST_TAIL_STRIPPED);
		if (wrapped) {
			if (ac_ftc_commit_add(&s->commits, mbox, seq))
				goto drop_bad;
			ac_ftc_count(AC_FTC_ST_COMMITS);
		}
	}
	return 0;
drop_bad:
	ac_ftc_count(AC_FTC_ST_BAD_TLV);
	hop->verdict = AC_FTC_DROP;
	return 1;
}

static long ac_ftc_walk_cb(__u32 i, void *unused)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();

	return s ? ac_ftc_walk_step(s->old, &s->view) : 1;
}

/* The received commit entries into the hop's commit set (ac_ftc_commits_load, one per step) */
static long ac_ftc_commit_cb(__u32 i, void *unused)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	__u32 o;

	if (!s || i >= s->view.ncommit)
		return 1;
	o = s->view.commit + 4 + ac_ftc_mask(i, AC_FTC_MAX_COMMITS - 1) * AC_FTC_COMMIT_LEN;
	ac_ftc_commit_add(&s->commits, ac_ftc_rd32(s->old, o), ac_ftc_rd32(s->old, o + 4));
	return 0;
}

/* Write i of the transaction (staged by ac_st_commit) into the own log, at s->rb.out */
AC_INLINE long ac_ftc_encode_write(struct ac_ftc_scratch *s, __u32 i)
{
	struct ac_st_slot *w;
	__u32 o, klen, vlen;
	__u8 *p;

	if (i >= s->nwrites || i >= AC_FTC_MAX_WRITES)
		return 1;
	w = &s->staged[ac_ftc_mask(i, AC_FTC_MAX_WRITES - 1)];
	/* the bytes of ac_ftc_put_write (ftc.h), in words: the header, the key's 16 bytes, then the
	 * value's 32 from the key's end (both zero after their lengths) */
	o = ac_ftc_mask(s->rb.out, 0xff);
	klen = w->klen & 0x1f;
	vlen = w->flags ? 0 : w->vlen & 0x3f;
	p = s->own + o;
	p[0] = w->table;
	p[1] = w->flags;
	p[2] = (__u8)klen;
	p[3] = (__u8)vlen;
	*(__u64 *)(p + 4) = ((__u64 *)w->key)[0];
	*(__u64 *)(p + 12) = ((__u64 *)w->key)[1];
	p += AC_FTC_WRITE_HDR + klen;
#pragma unroll
	for (__u32 q = 0; q < AC_FTC_VAL_MAX / 8; q++)
		((__u64 *)p)[q] = ((__u64 *)w->val)[q];
	s->rb.out = o + AC_FTC_WRITE_HDR + klen + vlen;
	return 0;
}

/* Writes 1.. of the transaction (the first is encoded in line) */
static long ac_ftc_encode_next_cb(__u32 i, void *unused)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();

	return s ? ac_ftc_encode_write(s, i + 1) : 1;
}

/* One TLV of the received NSH into the rebuilt one (ac_ftc_rebuild_step, include/anychain/ftc.h) */
static long ac_ftc_rebuild_cb(__u32 i, void *unused)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();

	return s ? ac_ftc_rebuild_step(s->old, &s->view, s->nsh, &s->rb) : 1;
}

/* The walk and the rebuild take the first AC_FTC_INLINE_TLVS TLVs in line and only the rest
 * through bpf_loop: an FTC packet carries 2 to 5 TLVs (the flow hash, the control TLV, f logs or
 * fewer, a commit TLV), and a bpf_loop step is a call into a callback that must look its scratch
 * up again (in the hop bench's profile the callbacks' entries, lookups and the loops around them
 * were a quarter of the firewall's time as a replica). The verifier checks each inline step on its
 * own path: the steps write their results into the scratch (map memory it does not track), so
 * their states meet again after each step. */
#define AC_FTC_INLINE_TLVS 4

AC_INLINE void ac_ftc_walk_tlvs(struct ac_ftc_scratch *s)
{
#pragma unroll
	for (__u32 i = 0; i < AC_FTC_INLINE_TLVS; i++)
		if (ac_ftc_walk_step(s->old, &s->view))
			return;
	bpf_loop(AC_FTC_WALK_STEPS - AC_FTC_INLINE_TLVS, ac_ftc_walk_cb, 0, 0);
}

AC_INLINE void ac_ftc_rebuild_tlvs(struct ac_ftc_scratch *s)
{
#pragma unroll
	for (__u32 i = 0; i < AC_FTC_INLINE_TLVS; i++)
		if (ac_ftc_rebuild_step(s->old, &s->view, s->nsh, &s->rb))
			return;
	bpf_loop(AC_FTC_WALK_STEPS - AC_FTC_INLINE_TLVS, ac_ftc_rebuild_cb, 0, 0);
}

/* The received NSH (len bytes, a multiple of 4, checked inside the frame's linear part by the
 * caller) into the scratch's window, read in place in 8-byte words (the last one 4 bytes when len
 * is not a multiple of 8) instead of through bpf_xdp_load_bytes (a helper call and a memcpy per
 * packet). Every access has its own check against data_end (the verifier does not carry the
 * caller's check of len over to constant offsets), and each check is a branch with its own packet
 * range: inline, those ranges split the caller's states and the NAT went past the verifier's
 * 1,000,000 instructions. A global function is checked once, on its own, and leaves the caller one
 * state. Bytes of the window past len are left as they were. Returns 0, -1 without a scratch. */
__attribute__((noinline)) int ac_ftc_read_nsh(struct xdp_md *ctx, __u32 len)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	const __u8 *nb = (const __u8 *)(long)ctx->data + ETH_HLEN;
	void *data_end = (void *)(long)ctx->data_end;

	if (!s)
		return -1;
#pragma unroll
	for (__u32 q = 0; q < (AC_NSH_MAX_LEN + 7) / 8; q++) {
		if (8 * q >= len)
			break;
		if (8 * q + 8 <= len) {
			if ((void *)(nb + 8 * q + 8) > data_end)
				break;
			((__u64 *)s->old)[q] = *(const __u64 *)(nb + 8 * q);
		} else {
			if ((void *)(nb + 8 * q + 4) > data_end)
				break;
			((__u32 *)s->old)[2 * q] = *(const __u32 *)(nb + 8 * q);
		}
	}
	return 0;
}

/* The rebuilt NSH (len bytes, a multiple of 4) into the frame after its Ethernet header, written
 * in place as ac_ftc_read_nsh reads, and the Ethernet header kept in the scratch before it when
 * with_eth (the frame's head moved). Returns 0, or -1 when the frame is shorter than what is
 * written (nothing would be left consistent: the caller drops the packet). */
__attribute__((noinline)) int ac_ftc_write_nsh(struct xdp_md *ctx, __u32 len, __u32 with_eth)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	__u8 *p = (__u8 *)(long)ctx->data, *nb = p + ETH_HLEN;
	void *data_end = (void *)(long)ctx->data_end;

	if (!s || (void *)nb > data_end)
		return -1;
	if (with_eth) {
		*(__u64 *)p = *(const __u64 *)s->eth;
		*(__u32 *)(p + 8) = *(const __u32 *)(s->eth + 8);
		*(__u16 *)(p + 12) = *(const __u16 *)(s->eth + 12);
	}
#pragma unroll
	for (__u32 q = 0; q < (AC_NSH_MAX_LEN + 7) / 8; q++) {
		if (8 * q >= len)
			return 0;
		if (8 * q + 8 <= len) {
			if ((void *)(nb + 8 * q + 8) > data_end)
				return -1;
			*(__u64 *)(nb + 8 * q) = ((const __u64 *)s->nsh)[q];
		} else {
			if ((void *)(nb + 8 * q + 4) > data_end)
				return -1;
			*(__u32 *)(nb + 8 * q) = ((const __u32 *)s->nsh)[2 * q];
		}
	}
	return 0;
}

/* Parse the NSH after the Ethernet header and replicate its logs (docs/ftc.md 3.5 steps 1-3).
 * now: jiffies (read here, before any lock). */
AC_INLINE enum ac_ftc_verdict ac_ftc_hop_begin(struct xdp_md *ctx, struct ac_ftc_hop *hop, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	__u32 k0 = 0, len;
	struct ac_nf_ftc_cfg *cfg = bpf_map_lookup_elem(&nf_ftc_cfg, &k0);
	struct ethhdr *eth = data;
	__u8 *nb = data + ETH_HLEN;

	__builtin_memset(hop, 0, sizeof(*hop));
	hop->now = now;
	if (!s || !cfg)
		return AC_FTC_DROP;
	hop->id = cfg->instance;
	hop->inc = cfg->inc;
	hop->stateful = (cfg->flags & AC_NF_STATEFUL) != 0;
	if ((void *)(nb + AC_NSH_BASE_LEN) > data_end || eth->h_proto != bpf_htons(AC_ETH_P_NSH)) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	if ((nb[2] & 0x0f) == AC_NSH_MD_TYPE1) {
		/* not FTC: the partition is the SPI/SI and the flow hash of context word 0 */
		if ((nb[1] & 0x3f) * 4 != AC_NSH_MD1_LEN || (void *)(nb + AC_NSH_MD1_LEN) > data_end) {
			ac_ftc_count(AC_FTC_ST_BAD_TLV);
			return AC_FTC_DROP;
		}
		ac_ftc_count(AC_FTC_ST_NO_CTRL);
		hop->nsh_len = AC_NSH_MD1_LEN;
		hop->spi_si = bpf_ntohl(*(__be32 *)(nb + 4));
		hop->hash = bpf_ntohl(*(__be32 *)(nb + 8));
		hop->plain = 1;
		return AC_FTC_PLAIN;
	}
	if ((nb[2] & 0x0f) != AC_NSH_MD_TYPE2) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	len = (nb[1] & 0x3f) * 4;
	if (len < AC_NSH_BASE_LEN || (void *)(nb + len) > data_end) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	if (ac_ftc_read_nsh(ctx, len))
		return AC_FTC_DROP; /* no scratch, as above */
	hop->nsh_len = len;
	if (ac_ftc_walk_begin(s->old, len, &s->view) == AC_FTC_OK)
		ac_ftc_walk_tlvs(s);
	if (ac_ftc_walk_end(s->old, &s->view)) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	if (!s->view.ctrl) {
		/* not FTC: the partition is the SPI/SI and the flow hash TLV (0 without one) */
		ac_ftc_count(AC_FTC_ST_NO_CTRL);
		hop->spi_si = ac_ftc_rd32(s->old, 4);
		hop->hash = s->view.has_hash ? s->view.hash : 0;
		hop->plain = 1;
		return AC_FTC_PLAIN;
	}
	if (!s->view.has_hash) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	hop->spi_si = ac_ftc_rd32(s->old, 4);
	hop->hash = s->view.hash;
	hop->f = s->view.f;
	/* the Ethernet header, for the rebuild and for where a propagating packet of this
	 * partition goes (an overflow record, ac_st_commit): read in place, not by a helper */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN > data_end)
		return AC_FTC_DROP;
	*(__u64 *)s->eth = *(const __u64 *)data;
	*(__u32 *)(s->eth + 8) = *(const __u32 *)(data + 8);
	*(__u16 *)(s->eth + 12) = *(const __u16 *)(data + 12);
	hop->propagating = (s->view.cflags & AC_FTC_CTRL_PROPAGATING) != 0;
	s->commits.n = 0;
	if (s->view.ncommit && bpf_loop(AC_FTC_MAX_COMMITS, ac_ftc_commit_cb, 0, 0) < 0) {
		ac_ftc_count(AC_FTC_ST_BAD_TLV);
		return AC_FTC_DROP;
	}
	hop->verdict = AC_FTC_CONTINUE;
	s->hop = *hop;
	for (__u32 k = 0; k < AC_FTC_MAX_LOGS; k++) {
		if (k >= s->view.nlogs || ac_ftc_replicate(k))
			break;
	}
	hop->verdict = s->hop.verdict;
	if (hop->propagating)
		ac_ftc_count(AC_FTC_ST_PROPAGATING);
	return (enum ac_ftc_verdict)hop->verdict;
}

/* A held packet to anychain-nf's socket (docs/ftc.md 4.2); dropped and counted without one. */
AC_INLINE int ac_ftc_hold(void)
{
	long r = bpf_redirect_map(&nf_hold, 0, XDP_DROP);

	if (r != XDP_REDIRECT)
		ac_ftc_count(AC_FTC_ST_HOLD_UNAVAILABLE);
	return (int)r;
}

/* Begin a transaction on the packet's partition: its record (created empty if absent) locked.
 * -1 (counted) when nf_head is full: the NF must refuse the flow. A record idle longer than the
 * NF's idle time is reset inside this transaction: its keys are deleted (logged writes). */
AC_INLINE int ac_st_begin(struct ac_ftc_hop *hop, struct ac_st_tx *tx, __u64 idle)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	struct ac_st_pkey key = {.spi_si = hop->spi_si, .hash = hop->hash};
	struct ac_st_rec *rec;

	if (!s)
		return -1;
	rec = bpf_map_lookup_elem(&nf_head, &key);
	if (!rec) {
		bpf_map_update_elem(&nf_head, &key, s->zero, BPF_NOEXIST);
		rec = bpf_map_lookup_elem(&nf_head, &key);
		if (!rec) {
			ac_ftc_count(AC_FTC_ST_STORE_FULL);
			return -1;
		}
	}
	tx->rec = rec;
	tx->s = s;
	tx->wbytes = AC_FTC_LOG_HDR;
	tx->dirty = 0;
	bpf_spin_lock(&rec->lock);
	if (idle && rec->last_used && hop->now - rec->last_used > idle) {
		for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
			struct ac_st_slot *sl = &rec->slot[j];

			if (!(sl->flags & AC_ST_USED))
				continue;
			sl->flags = AC_ST_DIRTY; /* a delete */
			tx->wbytes += AC_FTC_WRITE_HDR + sl->klen;
			tx->dirty++;
		}
	}
	rec->last_used = hop->now;
	return 0;
}

/* The slot holding (table, key) in the transaction's partition, or NULL (lock held). key is
 * AC_FTC_KEY_MAX bytes, zero after klen. */
AC_INLINE struct ac_st_slot *ac_st_find(struct ac_st_tx *tx, __u8 table, const __u8 *key, __u32 klen)
{
	const __u64 *k = (const __u64 *)key;

	for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
		struct ac_st_slot *sl = &tx->rec->slot[j];

		if ((sl->flags & AC_ST_USED) && sl->table == table && sl->klen == klen &&
		    ((__u64 *)sl->key)[0] == k[0] && ((__u64 *)sl->key)[1] == k[1])
			return sl;
	}
	return 0;
}

/* Write (table, key) = val in the transaction (lock held). val is AC_FTC_VAL_MAX bytes, zero
 * after vlen. Refused (-1, nothing written, counted) when the partition has no free slot or the
 * log would exceed AC_FTC_LOG_MAX. */
AC_INLINE int ac_st_put(struct ac_st_tx *tx, __u8 table, const __u8 *key, __u32 klen, const __u8 *val,
			__u32 vlen)
{
	const __u64 *k = (const __u64 *)key;
	struct ac_st_slot *hit = 0, *free = 0;
	__u32 bytes;

	if (klen == 0 || klen > AC_FTC_KEY_MAX || vlen > AC_FTC_VAL_MAX)
		goto refuse;
	for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
		struct ac_st_slot *sl = &tx->rec->slot[j];

		if ((sl->flags & (AC_ST_USED | AC_ST_DIRTY)) && sl->table == table && sl->klen == klen &&
		    ((__u64 *)sl->key)[0] == k[0] && ((__u64 *)sl->key)[1] == k[1])
			hit = sl;
		else if (!sl->flags && !free)
			free = sl;
	}
	if (hit && (hit->flags & AC_ST_DIRTY))
		bytes = tx->wbytes - (hit->flags & AC_ST_USED ? hit->vlen : 0) + vlen;
	else
		bytes = tx->wbytes + AC_FTC_WRITE_HDR + klen + vlen;
	if ((!hit && !free) || bytes > AC_FTC_LOG_MAX)
		goto refuse;
	if (!hit) {
		hit = free;
		hit->table = table;
		hit->klen = (__u8)klen;
		((__u64 *)hit->key)[0] = k[0];
		((__u64 *)hit->key)[1] = k[1];
	}
	if (!(hit->flags & AC_ST_DIRTY))
		tx->dirty++;
	tx->wbytes = bytes;
	hit->flags = AC_ST_USED | AC_ST_DIRTY;
	((__u64 *)hit->val)[0] = ((const __u64 *)val)[0];
	((__u64 *)hit->val)[1] = ((const __u64 *)val)[1];
	((__u64 *)hit->val)[2] = ((const __u64 *)val)[2];
	((__u64 *)hit->val)[3] = ((const __u64 *)val)[3];
	hit->vlen = (__u8)vlen;
	return 0;
refuse:
	tx->dirty |= 0x100; /* counted after the unlock */
	return -1;
}

/* Delete the key of slot sl (from ac_st_find) in the transaction (lock held). */
AC_INLINE int ac_st_del(struct ac_st_tx *tx, struct ac_st_slot *sl)
{
	__u32 bytes;

	if (!sl || !(sl->flags & AC_ST_USED))
		return 0;
	if (sl->flags & AC_ST_DIRTY)
		bytes = tx->wbytes - sl->vlen;
	else
		bytes = tx->wbytes + AC_FTC_WRITE_HDR + sl->klen;
	if (bytes > AC_FTC_LOG_MAX) {
		tx->dirty |= 0x100;
		return -1;
	}
	if (!(sl->flags & AC_ST_DIRTY))
		tx->dirty++;
	tx->wbytes = bytes;
	sl->flags = AC_ST_DIRTY;
	sl->vlen = 0;
	((__u64 *)sl->val)[0] = 0;
	((__u64 *)sl->val)[1] = 0;
	((__u64 *)sl->val)[2] = 0;
	((__u64 *)sl->val)[3] = 0;
	return 0;
}

/* Commit: the sequence advances if anything was written, the dirty slots are copied out, the
 * lock is released, and this hop's log (or no-op log, or stub) is staged for the rebuild. */
AC_INLINE void ac_st_commit(struct ac_ftc_hop *hop, struct ac_st_tx *tx)
{
	struct ac_ftc_scratch *s = tx->s;
	struct ac_st_rec *rec = tx->rec;
	__u32 n = 0, seq, o;

	if (tx->dirty & 0xff) {
		rec->seq += 1;
		rec->inc = hop->inc;
		rec->flags |= AC_ST_REC_VALID;
	}
	seq = rec->seq;
	for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
		struct ac_st_slot *sl = &rec->slot[j];

		if (!(sl->flags & AC_ST_DIRTY))
			continue;
		ac_st_copy_slot(&s->staged[ac_ftc_mask(n, AC_FTC_MAX_WRITES - 1)], sl);
		s->staged[ac_ftc_mask(n, AC_FTC_MAX_WRITES - 1)].flags = sl->flags & AC_ST_USED ? 0 : AC_FTC_W_DELETE;
		n++;
		if (sl->flags & AC_ST_USED)
			sl->flags = AC_ST_USED;
		else
			ac_st_clear_slot(sl);
	}
	bpf_spin_unlock(&rec->lock);
	if (tx->dirty & 0x100)
		ac_ftc_count(AC_FTC_ST_WRITE_REFUSED);
	if (hop->plain)
		return; /* not an FTC packet: no log */

#pragma unroll
	for (__u32 i = 0; i < (AC_FTC_LOG_MAX + 4 + AC_FTC_KEY_MAX + AC_FTC_VAL_MAX) / 8; i++)
		((__u64 *)s->own)[i] = 0;
	ac_ftc_put_log_hdr(s->own, 0, 0, 1, n, n ? 1 : 0, AC_FTC_MBOX(hop->id, hop->inc, hop->spi_si & 0xff), seq);
	/* the writes, one bpf_loop step each (s->rb is free until the rebuild) */
	s->rb.out = AC_FTC_LOG_HDR;
	s->nwrites = n;
	if (n)
		ac_ftc_encode_write(s, 0); /* the first in line: most transactions write one key */
	if (n > 1)
		bpf_loop(AC_FTC_MAX_WRITES - 1, ac_ftc_encode_next_cb, 0, 0);
	o = s->rb.out & 0xff;
	hop->own_len = o;
	if (4 + ac_ftc_pad4(o) > ac_ftc_share(hop->f)) {
		/* over the share: the whole log to anychain-nf, its stub on the packet */
		s->ovf.o.spi_si = hop->spi_si;
		s->ovf.o.hash = hop->hash;
		s->ovf.o.len = o;
		s->ovf.o.f = hop->f;
		s->ovf.ingress = s->view.ingress;
		s->ovf.next_proto = s->old[3];
		__builtin_memcpy(s->ovf.eth, s->eth, ETH_HLEN);
#pragma unroll
		for (__u32 i = 0; i < AC_FTC_LOG_MAX / 4; i++)
			((__u32 *)s->ovf.o.log)[i] = ((__u32 *)s->own)[i];
		if (bpf_ringbuf_output(&nf_overflow, &s->ovf, sizeof(s->ovf), 0))
			ac_ftc_count(AC_FTC_ST_RING_FULL);
#pragma unroll
		for (__u32 i = AC_FTC_LOG_HDR / 4; i < (AC_FTC_LOG_MAX + 4) / 4; i++)
			((__u32 *)s->own)[i] = 0;
		s->own[0] = AC_FTC_LOG_STUB;
		s->own[2] = 0;
		hop->own_len = AC_FTC_LOG_HDR;
		ac_ftc_count(AC_FTC_ST_STUB);
	} else {
		ac_ftc_count(n ? AC_FTC_ST_LOG_APPENDED : AC_FTC_ST_NOOP_APPENDED);
	}
}

/* The NF filtered the packet: it leaves as a propagating packet (docs/ftc.md 5.3). */
AC_INLINE void ac_ftc_propagate(struct ac_ftc_hop *hop)
{
	hop->filtered = 1;
}

/* Rebuild the NSH into the packet (docs/ftc.md 3.5 step 5). */
AC_INLINE enum ac_ftc_verdict ac_ftc_hop_finish(struct xdp_md *ctx, struct ac_ftc_hop *hop)
{
	struct ac_ftc_scratch *s = ac_ftc_scratch();
	__u32 len, pkt_len, own;
	int delta;

	if (!s)
		return AC_FTC_DROP;
	/* no log or commit arrived (nothing to count in held, strip or commit), none appended, not
	 * filtered: the rebuilt NSH would be the received one byte for byte (a stateless hop, such
	 * as the firewall, on a packet that carries no returned logs): leave it in place */
	if (!hop->filtered && !hop->own_len && !s->view.nlogs && !s->view.ncommit)
		return AC_FTC_CONTINUE;
	if (hop->filtered) {
		AC_FTC_B(s->old, s->view.ctrl + 4) |= AC_FTC_CTRL_PROPAGATING;
		ac_ftc_count(AC_FTC_ST_FILTERED);
		pkt_len = (__u32)(ctx->data_end - ctx->data);
		if (pkt_len > ETH_HLEN + hop->nsh_len &&
		    bpf_xdp_adjust_tail(ctx, -(int)(pkt_len - ETH_HLEN - hop->nsh_len))) {
			ac_ftc_count(AC_FTC_ST_OVERFLOW);
			return AC_FTC_DROP;
		}
	}
	ac_ftc_rebuild_begin(s->old, s->nsh, &s->rb);
	ac_ftc_rebuild_tlvs(s);
	own = hop->own_len;
	if (own) {
		/* this hop's log TLV, its value copied in words (s->own is zero after its end);
		 * then ac_ftc_rebuild_end adds the commits and the length as for any NSH */
		__u32 out = s->rb.out & 0xff;

		if (own > AC_FTC_LOG_MAX || out + 4 + ac_ftc_pad4(own) > AC_NSH_MAX_LEN) {
			ac_ftc_count(AC_FTC_ST_OVERFLOW);
			return AC_FTC_DROP;
		}
		ac_ftc_wr16(s->nsh, out, AC_MD_CLASS);
		AC_FTC_B(s->nsh, out + 2) = AC_TLV_FTC_LOG;
		AC_FTC_B(s->nsh, out + 3) = (__u8)own;
		ac_ftc_copy_words(s->nsh + out + 4, s->own, ac_ftc_pad4(own));
		s->rb.out = out + 4 + ac_ftc_pad4(own);
	}
	len = ac_ftc_rebuild_end(s->nsh, s->own, 0, &s->commits, &s->rb) & 0xfc;
	if (len < AC_NSH_BASE_LEN) {
		ac_ftc_count(AC_FTC_ST_OVERFLOW);
		return AC_FTC_DROP;
	}
	delta = (int)hop->nsh_len - (int)len;
	if (!delta) /* the frame's head did not move: the NSH alone is rewritten */
		return ac_ftc_write_nsh(ctx, len, 0) ? AC_FTC_DROP : AC_FTC_CONTINUE;
	if (bpf_xdp_adjust_head(ctx, delta)) {
		ac_ftc_count(AC_FTC_ST_OVERFLOW);
		return AC_FTC_DROP;
	}
	/* the Ethernet header (read by ac_ftc_hop_begin) before the NSH */
	return ac_ftc_write_nsh(ctx, len, 1) ? AC_FTC_DROP : AC_FTC_CONTINUE;
}

#endif /* AC_NF_STATE_H */
