/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTC (docs/ftc.md): piggyback logs, commit entries and the control TLV carried as NSH MD2 TLVs of
 * anychain's class, the order rule replicas apply, the NF state records, and the helpers that walk
 * and rebuild an NSH. Written once for the BPF NF programs (bpf/nf_state.h) and the C++ library
 * (agent/ftc/), as flow_hash.h is.
 *
 * The walk and rebuild helpers work on a *window*: a buffer of AC_FTC_WIN bytes holding the NSH
 * from offset 0. Every access is masked with AC_FTC_WMASK, so the verifier sees each one inside
 * the buffer (a per-CPU map value in BPF, a std::array in C++) and every loop has a constant
 * bound.
 *
 * Wire fields are big-endian; record fields (maps) are host order.
 *
 * Over 500 lines: the wire format, the order rule and the walk/rebuild helpers must be one
 * definition shared by the verifier-checked C and the C++ twin; splitting it would only add
 * headers that are always included together.
 */
#ifndef ANYCHAIN_FTC_H
#define ANYCHAIN_FTC_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

#include "anychain/nsh.h"

#ifndef AC_INLINE
#define AC_INLINE static inline __attribute__((always_inline))
#endif

/* TLV types of class AC_MD_CLASS (AC_TLV_FLOW_HASH 0x01 and AC_TLV_FTC_LOG 0x02 are in nsh.h) */
#define AC_TLV_FTC_COMMIT 0x03 /* commit entries of tails of wrapped logs; always the last TLV */
#define AC_TLV_FTC_CTRL 0x04   /* marks an FTC packet: flags, f, ingress endpoint */
#define AC_TLV_FTC_STRIP 0xff  /* never on the wire: a TLV the hop marked for removal in its window */

#define AC_FTC_F_MIN 1
#define AC_FTC_F_MAX 4

/* Control TLV value (8 bytes) */
struct ac_ftc_ctrl {
	__u8 flags;
	__u8 f;
	__be16 reserved;         /* 0 */
	__be32 ingress;          /* NSH endpoint of the chain's ingress node (where returned logs go) */
} __attribute__((packed));
#define AC_FTC_CTRL_LEN 8
#define AC_FTC_CTRL_PROPAGATING 0x01 /* no inner packet: NFs do not run, replicas and tails do */

/* Log TLV value: header (12 bytes), then nwrites writes, then zero padding to 4 bytes */
struct ac_ftc_log_hdr {
	__u8 flags;              /* bits 7-6 version (0); AC_FTC_LOG_WRAPPED, AC_FTC_LOG_STUB */
	__u8 held;               /* copies holding the log once the sender forwarded it (1 = head) */
	__u8 nwrites;
	__u8 count;              /* transactions covered: 0 no-op, 1 one, > 1 coalesced */
	__be32 mbox;             /* middlebox word: AC_FTC_MBOX(instance id, incarnation, head SI) */
	__be32 seq;              /* the partition's sequence number after the last covered transaction */
} __attribute__((packed));
#define AC_FTC_LOG_HDR 12
#define AC_FTC_LOG_WRAPPED 0x01 /* returned by the buffer and re-sent by the forwarder */
#define AC_FTC_LOG_STUB 0x02    /* the writes travel whole in a propagating packet; nwrites 0 */
#define AC_FTC_LOG_VERSION_MASK 0xc0
#define AC_FTC_LOG_FLAGS (AC_FTC_LOG_WRAPPED | AC_FTC_LOG_STUB)

struct ac_ftc_write_hdr {
	__u8 table;
	__u8 flags;              /* AC_FTC_W_DELETE */
	__u8 klen;               /* 1..AC_FTC_KEY_MAX */
	__u8 vlen;               /* 0..AC_FTC_VAL_MAX; 0 with AC_FTC_W_DELETE */
} __attribute__((packed));
#define AC_FTC_WRITE_HDR 4
#define AC_FTC_W_DELETE 0x01

/* Commit TLV value: 1..AC_FTC_MAX_COMMITS entries */
struct ac_ftc_commit {
	__be32 mbox;
	__be32 seq;              /* the stripped log's sequence: held f + 1 times */
} __attribute__((packed));
#define AC_FTC_COMMIT_LEN 8

/* Limits */
#define AC_FTC_LOG_MAX 124       /* value bytes of one log TLV (one log is one TLV) */
#define AC_FTC_KEY_MAX 16
#define AC_FTC_VAL_MAX 32
#define AC_FTC_MAX_WRITES 4
#define AC_FTC_MAX_LOGS 8        /* logs one NSH may carry (the protocol needs at most f = 4) */
#define AC_FTC_MAX_COMMITS 8
#define AC_FTC_FIXED_LEN 28      /* NSH base 8 + flow hash TLV 8 + control TLV 12 */
#define AC_FTC_ROOM (AC_NSH_MAX_LEN - AC_FTC_FIXED_LEN) /* 224 bytes for logs and commits */

/* The middlebox word: instance id (16 bits), incarnation (8 bits), SI at the head (8 bits) */
#define AC_FTC_MBOX(id, inc, si) \
	((((__u32)(id) & 0xffff) << 16) | (((__u32)(inc) & 0xff) << 8) | ((__u32)(si) & 0xff))
#define AC_FTC_MBOX_ID(m) ((__u16)((m) >> 16))
#define AC_FTC_MBOX_INC(m) ((__u8)((m) >> 8))
#define AC_FTC_MBOX_SI(m) ((__u8)(m))
#define AC_FTC_MBOX_SAME(a, b) (((a) & 0xffff00ffu) == ((b) & 0xffff00ffu)) /* id and SI */

/* The window: the NSH at offset 0 of a buffer of AC_FTC_WIN bytes */
#define AC_FTC_WIN 512
#define AC_FTC_WMASK (AC_FTC_WIN - 1)
#ifdef __BPF__
/* The mask must reach the verifier: clang drops it where it can prove the offset small, and
 * then may bounds-check one copy of the offset and use another. The empty asm hides the value. */
AC_INLINE __u32 ac_ftc_mask(__u32 v, __u32 m)
{
	asm volatile("" : "+r"(v));
	return v & m;
}
#else
AC_INLINE __u32 ac_ftc_mask(__u32 v, __u32 m)
{
	return v & m;
}
#endif
#define AC_FTC_B(b, o) ((b)[ac_ftc_mask((o), AC_FTC_WMASK)])

#if defined(__BPF__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* In BPF one (unaligned) load and a byte swap instead of a masked load per byte: b is a window of
 * AC_FTC_WIN bytes followed by at least 3 more inside the same map value (bpf/nf_state.h's
 * scratch), so o & AC_FTC_WMASK plus 4 stays inside it. x86-64 and arm64 BPF take unaligned
 * loads from map values. */
AC_INLINE __u32 ac_ftc_rd16(const __u8 *b, __u32 o)
{
	return __builtin_bswap16(*(const __u16 *)&AC_FTC_B(b, o));
}

AC_INLINE __u32 ac_ftc_rd32(const __u8 *b, __u32 o)
{
	return __builtin_bswap32(*(const __u32 *)&AC_FTC_B(b, o));
}
#else
AC_INLINE __u32 ac_ftc_rd16(const __u8 *b, __u32 o)
{
	return ((__u32)AC_FTC_B(b, o) << 8) | AC_FTC_B(b, o + 1);
}

AC_INLINE __u32 ac_ftc_rd32(const __u8 *b, __u32 o)
{
	return ((__u32)AC_FTC_B(b, o) << 24) | ((__u32)AC_FTC_B(b, o + 1) << 16) |
	       ((__u32)AC_FTC_B(b, o + 2) << 8) | AC_FTC_B(b, o + 3);
}
#endif

AC_INLINE void ac_ftc_wr16(__u8 *b, __u32 o, __u32 v)
{
	AC_FTC_B(b, o) = (__u8)(v >> 8);
	AC_FTC_B(b, o + 1) = (__u8)v;
}

AC_INLINE void ac_ftc_wr32(__u8 *b, __u32 o, __u32 v)
{
	AC_FTC_B(b, o) = (__u8)(v >> 24);
	AC_FTC_B(b, o + 1) = (__u8)(v >> 16);
	AC_FTC_B(b, o + 2) = (__u8)(v >> 8);
	AC_FTC_B(b, o + 3) = (__u8)v;
}

AC_INLINE __u32 ac_ftc_pad4(__u32 n)
{
	return (n + 3) & ~3u;
}

/* Log TLV fields by the offset of its TLV header */
#define AC_FTC_LOG_FLAGS_AT(o) ((o) + 4)
#define AC_FTC_LOG_HELD_AT(o) ((o) + 5)
#define AC_FTC_LOG_NW_AT(o) ((o) + 6)
#define AC_FTC_LOG_COUNT_AT(o) ((o) + 7)
#define AC_FTC_LOG_MBOX_AT(o) ((o) + 8)
#define AC_FTC_LOG_SEQ_AT(o) ((o) + 12)
#define AC_FTC_LOG_WRITES_AT(o) ((o) + 16)

/* RFC 1982 serial arithmetic: sequence numbers (32 bits) and incarnations (8 bits) wrap */
AC_INLINE int ac_ftc_seq_le(__u32 a, __u32 b)
{
	return (__s32)(a - b) <= 0;
}

AC_INLINE int ac_ftc_inc_older(__u8 a, __u8 b)
{
	return (__s8)(__u8)(a - b) < 0;
}

/* The largest log TLV (header included) one hop may append for a chain with f: f logs and f
 * commit entries always fit in AC_FTC_ROOM (docs/ftc.md 2.6). */
AC_INLINE __u32 ac_ftc_share(__u32 f)
{
	__u32 s;

	if (f < AC_FTC_F_MIN)
		f = AC_FTC_F_MIN;
	if (f > AC_FTC_F_MAX)
		f = AC_FTC_F_MAX;
	s = ((AC_FTC_ROOM - 4 - AC_FTC_COMMIT_LEN * f) / f) & ~3u;
	return s > 4 + AC_FTC_LOG_MAX ? 4 + AC_FTC_LOG_MAX : s;
}

/* The order rule (docs/ftc.md 3.4): what a replica does with a log (incarnation inc, sequence
 * seq, count transactions, stub) given its record (have, its incarnation rinc, its MAX). */
enum ac_ftc_order {
	AC_FTC_APPLY = 0,        /* apply the writes, MAX = seq */
	AC_FTC_SATISFIED,        /* nothing to apply: a duplicate, or a no-op/stub already covered */
	AC_FTC_GAP,              /* an earlier transaction is missing: hold, then re-request */
	AC_FTC_STALE,            /* a fenced incarnation: drop the packet */
};

AC_INLINE enum ac_ftc_order ac_ftc_order(int have, __u8 rinc, __u32 max, __u8 inc, __u32 seq,
					 __u32 count, int stub)
{
	if (!have) {
		if (count == 0 || stub)
			return seq == 0 ? AC_FTC_SATISFIED : AC_FTC_GAP;
		return seq == count ? AC_FTC_APPLY : AC_FTC_GAP;
	}
	if (ac_ftc_inc_older(inc, rinc))
		return AC_FTC_STALE;
	if (count == 0 || stub)
		return ac_ftc_seq_le(seq, max) ? AC_FTC_SATISFIED : AC_FTC_GAP;
	if (ac_ftc_seq_le(seq, max))
		return AC_FTC_SATISFIED;
	if (ac_ftc_seq_le(seq - count + 1, max + 1))
		return AC_FTC_APPLY;
	return AC_FTC_GAP;
}

/* Why an NSH's FTC TLVs are refused (0: they are not) */
enum ac_ftc_err {
	AC_FTC_OK = 0,
	AC_FTC_E_MD,             /* not MD type 2, or a length that is not 8..252 in words */
	AC_FTC_E_LEN,            /* a TLV overruns the NSH */
	AC_FTC_E_CTRL,           /* control TLV: bad length, f, flags or reserved bits; logs without it */
	AC_FTC_E_CTRL_DUP,       /* two control TLVs */
	AC_FTC_E_COMMIT,         /* commit TLV: bad length, two of them, or entries over the limit */
	AC_FTC_E_LOG_LEN,        /* log value shorter than its header or over AC_FTC_LOG_MAX */
	AC_FTC_E_LOG_VERSION,    /* log version bits not 0 */
	AC_FTC_E_LOG_FLAGS,      /* unknown log flags */
	AC_FTC_E_LOG_HELD,       /* held 0, or not below f + 1 */
	AC_FTC_E_LOG_COUNT,      /* no-op or stub with writes, a transaction without any */
	AC_FTC_E_WRITE,          /* a write's key or value length, flags, or too many writes */
	AC_FTC_E_WRITE_OVERRUN,  /* writes overrun the log value */
	AC_FTC_E_PAD,            /* bytes after the last write, or non-zero padding */
	AC_FTC_E_TOO_MANY_LOGS,  /* more than AC_FTC_MAX_LOGS logs */
	AC_FTC_E_TOO_BIG,        /* a rebuilt NSH would exceed 252 bytes */
	AC_FTC_E_END
};

/* Check one log value at vo (vlen bytes) in window b. */
AC_INLINE enum ac_ftc_err ac_ftc_log_check(const __u8 *b, __u32 vo, __u32 vlen)
{
	__u32 flags, held, nw, count, o, end;

	if (vlen < AC_FTC_LOG_HDR || vlen > AC_FTC_LOG_MAX)
		return AC_FTC_E_LOG_LEN;
	flags = AC_FTC_B(b, vo);
	held = AC_FTC_B(b, vo + 1);
	nw = AC_FTC_B(b, vo + 2);
	count = AC_FTC_B(b, vo + 3);
	if (flags & AC_FTC_LOG_VERSION_MASK)
		return AC_FTC_E_LOG_VERSION;
	if (flags & ~(__u32)(AC_FTC_LOG_FLAGS | AC_FTC_LOG_VERSION_MASK))
		return AC_FTC_E_LOG_FLAGS;
	if (held == 0)
		return AC_FTC_E_LOG_HELD;
	if ((count == 0 || (flags & AC_FTC_LOG_STUB)) ? nw != 0 : nw == 0)
		return AC_FTC_E_LOG_COUNT;
	if (nw > AC_FTC_MAX_WRITES)
		return AC_FTC_E_WRITE;
	o = vo + AC_FTC_LOG_HDR;
	end = vo + vlen;
	for (__u32 i = 0; i < AC_FTC_MAX_WRITES; i++) {
		__u32 wf, klen, wv;

		if (i >= nw)
			break;
		if (o + AC_FTC_WRITE_HDR > end)
			return AC_FTC_E_WRITE_OVERRUN;
		wf = AC_FTC_B(b, o + 1);
		klen = AC_FTC_B(b, o + 2);
		wv = AC_FTC_B(b, o + 3);
		if (klen == 0 || klen > AC_FTC_KEY_MAX || wv > AC_FTC_VAL_MAX ||
		    (wf & ~(__u32)AC_FTC_W_DELETE) || ((wf & AC_FTC_W_DELETE) && wv))
			return AC_FTC_E_WRITE;
		o += AC_FTC_WRITE_HDR + klen + wv;
		if (o > end)
			return AC_FTC_E_WRITE_OVERRUN;
	}
	if (o != end)
		return AC_FTC_E_PAD;
	for (__u32 i = 0; i < 3; i++) {
		if (end + i >= vo + ac_ftc_pad4(vlen))
			break;
		if (AC_FTC_B(b, end + i))
			return AC_FTC_E_PAD;
	}
	return AC_FTC_OK;
}

/* ac_ftc_egress (docs/ftc.md 5.1): what the egress buffer of a chain end knows of a partition,
 * written by the agent after every packet the buffer got, read by the fast path at the chain's
 * end to release a packet at once whose logs are all committed. An LRU map: an entry the kernel
 * evicts makes the partition's packets go to the buffer again, which writes it anew. */
#define AC_FTC_EGRESS_MBOXES 4   /* commit entries per ac_ftc_egress value (at most f <= 4 logs
				  * reach a chain's end) */

struct ac_ftc_egress_key {
	__u32 ifindex;           /* the interface the chain ends on (the buffer's port) */
	__u32 spi;               /* host order, 24 bits */
	__u32 hash;              /* flow hash */
};

struct ac_ftc_egress {
	__u32 slow;              /* nonzero: every packet of the partition to the buffer (packets of
				  * it are held there, or its commit vector has more entries than
				  * this value holds) */
	__u32 n;                 /* entries in use, <= AC_FTC_EGRESS_MBOXES */
	__u32 mbox[AC_FTC_EGRESS_MBOXES]; /* middlebox words (AC_FTC_MBOX), host order */
	__u32 seq[AC_FTC_EGRESS_MBOXES];  /* the highest committed sequence of each */
};

/* The fast path's release at a chain's end (docs/ftc.md 5.1): does the partition's entry e (NULL:
 * none) cover a log of middlebox word mbox at seq, as the egress buffer's commit vector would
 * (agent/ftc/buffer.cc covered())? The same word, incarnation included, committed up to seq or
 * beyond; with no entry for the middlebox, only seq 0 (it never wrote for this partition). Another
 * incarnation of the same middlebox is never covered here: the buffer decides (it fences older
 * incarnations). */
AC_INLINE int ac_ftc_egress_covers(const struct ac_ftc_egress *e, __u32 mbox, __u32 seq)
{
	int other_inc = 0;

	if (e) {
		for (__u32 i = 0; i < AC_FTC_EGRESS_MBOXES; i++) {
			if (i >= e->n)
				break;
			if (e->mbox[i] == mbox)
				return ac_ftc_seq_le(seq, e->seq[i]);
			if (AC_FTC_MBOX_SAME(e->mbox[i], mbox))
				other_inc = 1;
		}
	}
	return seq == 0 && !other_inc;
}

/* What a walk found in an NSH */
struct ac_ftc_view {
	__u32 len;               /* NSH length, bytes */
	__u32 ingress;           /* control TLV's ingress endpoint, host order */
	__u32 hash;              /* the flow hash TLV's value */
	__u16 ctrl;              /* offset of the control TLV's header, 0: none */
	__u16 commit;            /* offset of the commit TLV's header, 0: none */
	__u8 ncommit;
	__u8 nlogs;
	__u8 f;                  /* from the control TLV */
	__u8 cflags;             /* control TLV flags */
	__u8 other;              /* TLVs that are not FTC's: the flow hash, foreign classes */
	__u8 has_hash;           /* the flow hash TLV was found (hash) */
	__u16 err_off;           /* where a walk that failed stopped (the offending TLV's offset) */
	__u16 log[AC_FTC_MAX_LOGS]; /* offsets of the log TLVs' headers, in order */
	__u32 cur;               /* walk in progress: the next TLV's offset */
	__u32 err;               /* walk in progress: enum ac_ftc_err so far */
};
#define AC_FTC_WALK_STEPS ((AC_NSH_MAX_LEN - AC_NSH_BASE_LEN) / 4) /* at most 61 TLVs */

/* Walk the MD2 TLVs of the NSH in window b (len bytes): every FTC TLV is checked (docs/ftc.md 2),
 * others are counted and left alone. In three parts so that BPF can run the steps with
 * bpf_loop() (the verifier then checks one step, not 61): ac_ftc_walk_begin(), then
 * ac_ftc_walk_step() until it returns 1 (at most AC_FTC_WALK_STEPS times), then
 * ac_ftc_walk_end(). ac_ftc_walk() does all three. */
AC_INLINE enum ac_ftc_err ac_ftc_walk_begin(const __u8 *b, __u32 len, struct ac_ftc_view *v)
{
	__builtin_memset(v, 0, sizeof(*v));
	v->len = len;
	v->cur = AC_NSH_BASE_LEN;
	if (len < AC_NSH_BASE_LEN || len > AC_NSH_MAX_LEN || (len & 3) ||
	    (AC_FTC_B(b, 2) & 0x0f) != AC_NSH_MD_TYPE2 || (AC_FTC_B(b, 1) & 0x3f) * 4 != len)
		v->err = AC_FTC_E_MD;
	return (enum ac_ftc_err)v->err;
}

/* One TLV at v->cur. Returns 1 when the walk is over (the end, or an error in v->err). */
AC_INLINE int ac_ftc_walk_step(const __u8 *b, struct ac_ftc_view *v)
{
	__u32 off = v->cur, cls, type, vlen, next;

	if (v->err || off >= v->len || off >= AC_NSH_MAX_LEN)
		return 1;
	v->err_off = (__u16)off;
	cls = ac_ftc_rd16(b, off);
	type = AC_FTC_B(b, off + 2);
	vlen = AC_FTC_B(b, off + 3) & 0x7f;
	next = off + 4 + ac_ftc_pad4(vlen);
	if (next > v->len) {
		v->err = AC_FTC_E_LEN;
		return 1;
	}
	if (cls != AC_MD_CLASS) {
		v->other++;
	} else if (type == AC_TLV_FLOW_HASH) {
		v->other++;
		if (vlen == 4 && !v->has_hash) {
			v->has_hash = 1;
			v->hash = ac_ftc_rd32(b, off + 4);
		}
	} else if (type == AC_TLV_FTC_LOG) {
		enum ac_ftc_err e;

		if (v->nlogs >= AC_FTC_MAX_LOGS) {
			v->err = AC_FTC_E_TOO_MANY_LOGS;
			return 1;
		}
		e = ac_ftc_log_check(b, off + 4, vlen);
		if (e) {
			v->err = e;
			return 1;
		}
		v->log[ac_ftc_mask(v->nlogs, AC_FTC_MAX_LOGS - 1)] = (__u16)off;
		v->nlogs++;
	} else if (type == AC_TLV_FTC_COMMIT) {
		if (v->commit || vlen == 0 || vlen % AC_FTC_COMMIT_LEN ||
		    vlen > AC_FTC_COMMIT_LEN * AC_FTC_MAX_COMMITS) {
			v->err = AC_FTC_E_COMMIT;
			return 1;
		}
		v->commit = (__u16)off;
		v->ncommit = (__u8)(vlen / AC_FTC_COMMIT_LEN);
	} else if (type == AC_TLV_FTC_CTRL) {
		__u32 f = AC_FTC_B(b, off + 5);

		if (v->ctrl) {
			v->err = AC_FTC_E_CTRL_DUP;
			return 1;
		}
		if (vlen != AC_FTC_CTRL_LEN || f < AC_FTC_F_MIN || f > AC_FTC_F_MAX ||
		    (AC_FTC_B(b, off + 4) & ~(__u32)AC_FTC_CTRL_PROPAGATING) || ac_ftc_rd16(b, off + 6)) {
			v->err = AC_FTC_E_CTRL;
			return 1;
		}
		v->ctrl = (__u16)off;
		v->f = (__u8)f;
		v->cflags = AC_FTC_B(b, off + 4);
		v->ingress = ac_ftc_rd32(b, off + 8);
	} else {
		v->other++;
	}
	v->cur = next;
	return next >= v->len;
}

AC_INLINE enum ac_ftc_err ac_ftc_walk_end(const __u8 *b, struct ac_ftc_view *v)
{
	if (v->err)
		return (enum ac_ftc_err)v->err;
	if (v->cur != v->len) {
		v->err = AC_FTC_E_LEN;
		return AC_FTC_E_LEN;
	}
	if (v->nlogs && !v->ctrl) {
		v->err_off = v->log[0];
		v->err = AC_FTC_E_CTRL;
		return AC_FTC_E_CTRL;
	}
	for (__u32 k = 0; k < AC_FTC_MAX_LOGS; k++) {
		if (k >= v->nlogs)
			break;
		v->err_off = v->log[ac_ftc_mask(k, AC_FTC_MAX_LOGS - 1)];
		if (AC_FTC_B(b, AC_FTC_LOG_HELD_AT(v->err_off)) > v->f) {
			v->err = AC_FTC_E_LOG_HELD;
			return AC_FTC_E_LOG_HELD;
		}
	}
	v->err_off = 0;
	return AC_FTC_OK;
}

AC_INLINE enum ac_ftc_err ac_ftc_walk(const __u8 *b, __u32 len, struct ac_ftc_view *v)
{
	if (ac_ftc_walk_begin(b, len, v))
		return (enum ac_ftc_err)v->err;
	for (__u32 i = 0; i < AC_FTC_WALK_STEPS; i++)
		if (ac_ftc_walk_step(b, v))
			break;
	return ac_ftc_walk_end(b, v);
}

/* Commit entries a hop carries on (host order): the received ones plus its own. */
struct ac_ftc_commits {
	__u32 n;
	__u32 mbox[AC_FTC_MAX_COMMITS];
	__u32 seq[AC_FTC_MAX_COMMITS];
};

/* Add (mbox, seq): an entry for the same instance and head SI merges (a newer incarnation
 * replaces an older one, the same one keeps the higher sequence). -1 when full. */
AC_INLINE int ac_ftc_commit_add(struct ac_ftc_commits *c, __u32 mbox, __u32 seq)
{
	for (__u32 i = 0; i < AC_FTC_MAX_COMMITS; i++) {
		__u32 j = ac_ftc_mask(i, AC_FTC_MAX_COMMITS - 1);

		if (i >= c->n)
			break;
		if (!AC_FTC_MBOX_SAME(c->mbox[j], mbox))
			continue;
		if (ac_ftc_inc_older(AC_FTC_MBOX_INC(mbox), AC_FTC_MBOX_INC(c->mbox[j])))
			return 0;
		if (AC_FTC_MBOX_INC(mbox) != AC_FTC_MBOX_INC(c->mbox[j]) || !ac_ftc_seq_le(seq, c->seq[j])) {
			c->mbox[j] = mbox;
			c->seq[j] = seq;
		}
		return 0;
	}
	if (c->n >= AC_FTC_MAX_COMMITS)
		return -1;
	c->mbox[ac_ftc_mask(c->n, AC_FTC_MAX_COMMITS - 1)] = mbox;
	c->seq[ac_ftc_mask(c->n, AC_FTC_MAX_COMMITS - 1)] = seq;
	c->n++;
	return 0;
}

/* The commit TLV's entries of a walked NSH into c */
AC_INLINE void ac_ftc_commits_load(const __u8 *b, const struct ac_ftc_view *v,
				   struct ac_ftc_commits *c)
{
	c->n = 0;
	for (__u32 i = 0; i < AC_FTC_MAX_COMMITS; i++) {
		__u32 o = v->commit + 4 + i * AC_FTC_COMMIT_LEN;

		if (i >= v->ncommit)
			break;
		ac_ftc_commit_add(c, ac_ftc_rd32(b, o), ac_ftc_rd32(b, o + 4));
	}
}

/* A log header at value offset o of window b */
AC_INLINE void ac_ftc_put_log_hdr(__u8 *b, __u32 o, __u32 flags, __u32 held, __u32 nwrites,
				  __u32 count, __u32 mbox, __u32 seq)
{
	AC_FTC_B(b, o) = (__u8)flags;
	AC_FTC_B(b, o + 1) = (__u8)held;
	AC_FTC_B(b, o + 2) = (__u8)nwrites;
	AC_FTC_B(b, o + 3) = (__u8)count;
	ac_ftc_wr32(b, o + 4, mbox);
	ac_ftc_wr32(b, o + 8, seq);
}

/* One write at o of window b (key and value from fixed arrays of AC_FTC_KEY_MAX and
 * AC_FTC_VAL_MAX bytes, zero after klen and vlen); returns the offset after it. The arrays are
 * copied whole: the value overwrites the key's zero tail and the next write the value's, so the
 * bytes after the last write are zero (the loops have no data-dependent exit, which the verifier
 * would otherwise explore once per length). */
AC_INLINE __u32 ac_ftc_put_write(__u8 *b, __u32 o, __u32 table, __u32 wflags, const __u8 *key,
				 __u32 klen, const __u8 *val, __u32 vlen)
{
	AC_FTC_B(b, o) = (__u8)table;
	AC_FTC_B(b, o + 1) = (__u8)wflags;
	AC_FTC_B(b, o + 2) = (__u8)klen;
	AC_FTC_B(b, o + 3) = (__u8)vlen;
	o += AC_FTC_WRITE_HDR;
	for (__u32 i = 0; i < AC_FTC_KEY_MAX; i++)
		AC_FTC_B(b, o + i) = key[i];
	o += klen;
	for (__u32 i = 0; i < AC_FTC_VAL_MAX; i++)
		AC_FTC_B(b, o + i) = val[i];
	return o + vlen;
}

AC_INLINE void ac_ftc_copy4(__u8 *nb, __u32 no, const __u8 *ob, __u32 oo)
{
	AC_FTC_B(nb, no) = AC_FTC_B(ob, oo);
	AC_FTC_B(nb, no + 1) = AC_FTC_B(ob, oo + 1);
	AC_FTC_B(nb, no + 2) = AC_FTC_B(ob, oo + 2);
	AC_FTC_B(nb, no + 3) = AC_FTC_B(ob, oo + 3);
}

/* n bytes (n <= 136) from src to dst, both at most 0xff into windows of AC_FTC_WIN bytes. In BPF
 * 64-bit words, not bytes: the bytes past n up to the next multiple of 8 are written too (they
 * are overwritten by what follows them, or lie past the NSH's end). */
AC_INLINE void ac_ftc_copy_words(__u8 *dst, const __u8 *src, __u32 n)
{
#ifdef __BPF__
#pragma unroll
	for (__u32 q = 0; q < 17; q++)
		if (8 * q < n)
			((__u64 *)dst)[q] = ((const __u64 *)src)[q];
#else
	__builtin_memcpy(dst, src, n);
#endif
}

/* Rebuild the NSH of window ob (walked into v) into window nb (docs/ftc.md 2.4): the base header,
 * every TLV in received order except the commit TLV and those marked AC_TLV_FTC_STRIP, then the
 * log value own (own_len bytes, 0: none; own is a window whose bytes up to the next multiple of
 * 4 are zero), then the commit TLV of c if it has entries. The length field is set. Returns the
 * new length, or 0 if it would exceed AC_NSH_MAX_LEN. In steps for bpf_loop() as the walk:
 * ac_ftc_rebuild_begin(), ac_ftc_rebuild_step() per TLV of the old NSH (at most
 * AC_FTC_REBUILD_STEPS), ac_ftc_rebuild_end(). */
struct ac_ftc_rebuild {
	__u32 i;                 /* byte offset of the old NSH's next TLV */
	__u32 out;               /* bytes written to the new one */
};
#define AC_FTC_REBUILD_STEPS (AC_NSH_MAX_LEN / 4)

AC_INLINE void ac_ftc_rebuild_begin(const __u8 *ob, __u8 *nb, struct ac_ftc_rebuild *r)
{
	ac_ftc_copy4(nb, 0, ob, 0);
	ac_ftc_copy4(nb, 4, ob, 4);
	r->i = AC_NSH_BASE_LEN;
	r->out = AC_NSH_BASE_LEN;
}

/* One TLV, copied whole unless it is dropped. The walk checked every TLV's length against the
 * NSH's, so a TLV lies inside it. Returns 1 when the old NSH is done. */
AC_INLINE int ac_ftc_rebuild_step(const __u8 *ob, const struct ac_ftc_view *v, __u8 *nb,
				  struct ac_ftc_rebuild *r)
{
	__u32 off = r->i;

	if (off >= v->len || off >= AC_NSH_MAX_LEN)
		return 1;
	__u32 cls = ac_ftc_rd16(ob, off), type = AC_FTC_B(ob, off + 2);
	__u32 tl = 4 + ac_ftc_pad4(AC_FTC_B(ob, off + 3) & 0x7f);

	r->i = off + tl;
	if (cls == AC_MD_CLASS && (type == AC_TLV_FTC_COMMIT || type == AC_TLV_FTC_STRIP))
		return 0;
	ac_ftc_copy_words(nb + ac_ftc_mask(r->out, 0xff), ob + ac_ftc_mask(off, 0xff), tl);
	r->out += tl;
	return 0;
}

AC_INLINE __u32 ac_ftc_rebuild_end(__u8 *nb, const __u8 *own, __u32 own_len,
				   const struct ac_ftc_commits *c, struct ac_ftc_rebuild *r)
{
	__u32 out = r->out & 0x1ff;

	if (own_len) {
		if (own_len > AC_FTC_LOG_MAX || out + 4 + ac_ftc_pad4(own_len) > AC_NSH_MAX_LEN)
			return 0;
		ac_ftc_wr16(nb, out, AC_MD_CLASS);
		AC_FTC_B(nb, out + 2) = AC_TLV_FTC_LOG;
		AC_FTC_B(nb, out + 3) = (__u8)own_len;
		out += 4;
		for (__u32 i = 0; i < AC_FTC_LOG_MAX / 4; i++) {
			if (i * 4 >= own_len)
				break;
			ac_ftc_copy4(nb, out, own, i * 4);
			out += 4;
		}
	}
	if (c->n) {
		if (c->n > AC_FTC_MAX_COMMITS || out + 4 + c->n * AC_FTC_COMMIT_LEN > AC_NSH_MAX_LEN)
			return 0;
		ac_ftc_wr16(nb, out, AC_MD_CLASS);
		AC_FTC_B(nb, out + 2) = AC_TLV_FTC_COMMIT;
		AC_FTC_B(nb, out + 3) = (__u8)(c->n * AC_FTC_COMMIT_LEN);
		out += 4;
		for (__u32 i = 0; i < AC_FTC_MAX_COMMITS; i++) {
			if (i >= c->n)
				break;
			ac_ftc_wr32(nb, out, c->mbox[ac_ftc_mask(i, AC_FTC_MAX_COMMITS - 1)]);
			ac_ftc_wr32(nb, out + 4, c->seq[ac_ftc_mask(i, AC_FTC_MAX_COMMITS - 1)]);
			out += AC_FTC_COMMIT_LEN;
		}
	}
	if (out > AC_NSH_MAX_LEN)
		return 0;
	AC_FTC_B(nb, 1) = (__u8)((AC_FTC_B(nb, 1) & 0xc0) | (out / 4));
	return out;
}

AC_INLINE __u32 ac_ftc_rebuild(const __u8 *ob, const struct ac_ftc_view *v, __u8 *nb,
			       const __u8 *own, __u32 own_len, const struct ac_ftc_commits *c)
{
	struct ac_ftc_rebuild r;

	ac_ftc_rebuild_begin(ob, nb, &r);
	for (__u32 i = 0; i < AC_FTC_REBUILD_STEPS; i++)
		if (ac_ftc_rebuild_step(ob, v, nb, &r))
			break;
	return ac_ftc_rebuild_end(nb, own, own_len, c, &r);
}

/* ---- NF state records (bpf/nf_state.h's maps; the agent reads and writes them with
 * BPF_F_LOCK for re-requests and recovery). Host order. ---- */

#define AC_ST_SLOTS 4            /* keys per partition */
#define AC_ST_USED 0x01          /* slot flags: the slot holds a key */
#define AC_ST_DIRTY 0x02         /* written by the transaction in progress (head only); a dirty
				  * slot that is not used is a delete, and keeps its slot until the
				  * commit */
#define AC_ST_REC_VALID 0x01     /* record flags: the record holds a sequence (a record created
				  * empty by BPF_NOEXIST is "no record" to the order rule) */

struct ac_st_slot {
	__u8 table;
	__u8 flags;              /* AC_ST_USED */
	__u8 klen;
	__u8 vlen;
	__u32 pad;
	__u8 key[AC_FTC_KEY_MAX];   /* zero beyond klen */
	__u8 val[AC_FTC_VAL_MAX];   /* zero beyond vlen */
};

struct ac_st_rec {
	struct bpf_spin_lock lock;
	__u32 seq;               /* head: sequence of the last transaction; replica: MAX */
	__u8 inc;                /* the middlebox's incarnation that last wrote the record */
	__u8 held;               /* copies up to this one (head 1, replicas 2..f + 1) */
	__u8 flags;              /* AC_ST_REC_VALID */
	__u8 pad;
	__u32 pad2;
	__u64 last_used;         /* jiffies of the last transaction or apply */
	struct ac_st_slot slot[AC_ST_SLOTS];
};

/* nf_head key: the partition (SPI << 8 | head SI, flow hash) */
struct ac_st_pkey {
	__u32 spi_si;
	__u32 hash;
};

/* nf_replica key: the middlebox (instance id, head SI) and its partition */
struct ac_st_rkey {
	__u32 id;                /* instance id */
	__u32 spi_si;            /* SPI << 8 | head SI */
	__u32 hash;
};

/* NF configuration (nf_ftc_cfg[0]) */
#define AC_NF_STATEFUL (1u << 0) /* the NF appends logs (a head); else a replica-only hop */
struct ac_nf_ftc_cfg {
	__u16 instance;
	__u8 inc;
	__u8 pad;
	__u32 flags;
	__u64 idle_jiffies;      /* a record idle longer is reset by its next transaction; 0 = never */
};

/* A whole log whose stub went on the packet (docs/ftc.md 2.6), for anychain-nf to send in a
 * propagating packet of the partition: a record of bpf/nf_state.h's ring buffer nf_overflow */
struct ac_ftc_overflow {
	__u32 spi_si;            /* SPI << 8 | SI at this hop */
	__u32 hash;
	__u32 len;               /* bytes of log (the value, unpadded) */
	__u8 f;
	__u8 pad[3];
	__u8 log[AC_FTC_LOG_MAX];
};

/* Per-instance FTC counters (nf_ftc_stats, per-CPU array of __u64) */
enum ac_ftc_stat {
	AC_FTC_ST_APPLIED = 0,   /* logs applied to a replica record */
	AC_FTC_ST_SATISFIED,     /* logs already covered (duplicates, replays, no-ops) */
	AC_FTC_ST_GAP,           /* packets held for a gap */
	AC_FTC_ST_STALE,         /* packets dropped: a log of a fenced incarnation */
	AC_FTC_ST_UNKNOWN_MBOX,  /* packets dropped: a log of an instance not in nf_peers */
	AC_FTC_ST_OWN_LOG,       /* packets dropped: a log of this instance came back (chain too short) */
	AC_FTC_ST_BAD_TLV,       /* packets dropped: malformed NSH or FTC TLVs */
	AC_FTC_ST_TAIL_STRIPPED, /* logs stripped by this hop as their tail */
	AC_FTC_ST_COMMITS,       /* commit entries added */
	AC_FTC_ST_LOG_APPENDED,  /* own logs with writes */
	AC_FTC_ST_NOOP_APPENDED, /* own no-op logs */
	AC_FTC_ST_STUB,          /* own logs over the share: stub on the packet, log to the ring buffer */
	AC_FTC_ST_OVERFLOW,      /* packets dropped: the rebuilt NSH would exceed 252 bytes */
	AC_FTC_ST_STORE_FULL,    /* transactions refused: nf_head full */
	AC_FTC_ST_REPLICA_FULL,  /* packets dropped: nf_replica full */
	AC_FTC_ST_WRITE_REFUSED, /* writes refused: slots or the share exhausted */
	AC_FTC_ST_NO_CTRL,       /* packets without a control TLV, processed without FTC */
	AC_FTC_ST_PROPAGATING,   /* propagating packets forwarded */
	AC_FTC_ST_FILTERED,      /* filtered packets turned into propagating packets */
	AC_FTC_ST_HOLD_UNAVAILABLE, /* held packets dropped: no socket in nf_hold */
	AC_FTC_ST_RING_FULL,     /* stubbed logs lost: the overflow ring buffer was full */
	AC_FTC_ST_END
};
#define AC_FTC_STAT_SLOTS 32

#ifdef __cplusplus
static_assert(AC_FTC_ST_END <= AC_FTC_STAT_SLOTS, "FTC counters overflow their map");
static_assert(sizeof(struct ac_ftc_log_hdr) == AC_FTC_LOG_HDR, "log header");
static_assert(sizeof(struct ac_st_slot) == 56 && sizeof(struct ac_st_rec) == 248, "record layout");
#else
_Static_assert(AC_FTC_ST_END <= AC_FTC_STAT_SLOTS, "FTC counters overflow their map");
_Static_assert(sizeof(struct ac_ftc_log_hdr) == AC_FTC_LOG_HDR, "log header");
_Static_assert(sizeof(struct ac_st_slot) == 56 && sizeof(struct ac_st_rec) == 248, "record layout");
#endif

#endif /* ANYCHAIN_FTC_H */
