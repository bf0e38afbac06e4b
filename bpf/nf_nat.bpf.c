/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in NAT (docs/nf.md): NAPT44 of TCP, UDP and ICMP echo onto one external address and
 * a pool of ports.
 *   - Outbound (anything not addressed to the external address): the flow's
 *     mapping is its per-flow state (bpf/nf_state.h: table AC_NF_TABLE_FLOW, key the 13-byte
 *     5-tuple, value external address and port), read by every packet and written by the first
 *     one (FTC logs that write; every other packet is a no-op transaction). The source address
 *     and port (ICMP: the echo id) are rewritten, checksums updated incrementally.
 *   - Inbound (to the external address): nf_nat_rev names the flow the reply belongs to (a port
 *     of our pool), else nat_shared (another instance's port); the destination is rewritten
 *     back. No mapping: dropped, counted.
 *   - The port pool is a bitmap (nf_nat_ports, one bit per port, mmapable): a port is taken with
 *     an atomic test-and-set before the transaction that creates the mapping and given back if
 *     another CPU created it first. The bitmap and nf_nat_rev are derived state (rebuilt from
 *     the mappings, never replicated; anychain-nf gives back the ports of reclaimed records).
 *   - nat_shared (docs/state.md 4.3): every mapping is also written to a deterministic-winner
 *     map replicated between the service's NAT instances (bpf/nf_crdt.h, the merge program
 *     nf_nat_merge), so that a reply reaching an instance that did not make the mapping (an
 *     asymmetric route) is translated all the same (nat_in_shared). Instances of one service
 *     use disjoint pools; should two map the same external port, the larger mapping wins on
 *     every replica. Its `seen` (CLOCK_TAI) moves with the flow's packets; the replicating agent
 *     (and anychain-nf) deletes the entries whose merged `seen` is older than the idle timeout
 *     plus 30 s.
 *   - nat_fwd: the same mappings keyed by the inside flow (struct ac_nf_nat_fkey), replicated
 *     alike, so that an outbound packet of a flow another instance mapped (the flow moved, or
 *     another ingress node's WCMP sent it here) leaves with that instance's external port
 *     (nat_out_shared) instead of getting a second mapping. An instance's own mapping comes first.
 * IPv6 passes untranslated (counted); other protocols and non-first fragments are dropped
 * (counted).
 */
#include "nf_common.h"
#include "nf_crdt.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_nat_cfg);
} nf_nat_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AC_NF_NAT_POOL_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} nf_nat_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AC_NF_HEAD_MAX);
	__type(key, struct ac_nf_nat_rkey);
	__type(value, struct ac_nf_nat_rval);
} nf_nat_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ac_nf_nat_rkey);
	__type(value, struct ac_register);
} nat_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ac_nf_nat_fkey);
	__type(value, struct ac_register);
} nat_fwd SEC(".maps");

/* The shared entry of a mapping was used now: its seen moves (replicated at most once a second). */
AC_INLINE void nat_shared_seen(struct ac_register *r, const struct ac_nf_nat_rkey *rk)
{
	ac_crdt_reg_seen(r, AC_NF_NAT_OBJ_SHARED, rk, sizeof(*rk), bpf_ktime_get_tai_ns(),
			 AC_NF_NAT_SHARED_SEEN_NS, ac_crdt_epoch());
}

/* The index of the one bit set in b (b a power of two) */
AC_INLINE __u32 nat_bit_index(__u64 b)
{
	__u32 n = 0;

	if (!(b & 0xffffffffULL)) {
		n += 32;
		b >>= 32;
	}
	if (!(b & 0xffff)) {
		n += 16;
		b >>= 16;
	}
	if (!(b & 0xff)) {
		n += 8;
		b >>= 8;
	}
	if (!(b & 0xf)) {
		n += 4;
		b >>= 4;
	}
	if (!(b & 0x3)) {
		n += 2;
		b >>= 2;
	}
	if (!(b & 0x1))
		n += 1;
	return n;
}

struct nat_alloc {
	__u32 first;             /* the pool's first word */
	__u32 nwords;
	__u32 start;             /* where the search starts (from the flow hash) */
	__u32 port;              /* out: the port taken, 0 = none */
};

static long nat_alloc_cb(__u32 i, void *ctx)
{
	struct nat_alloc *a = ctx;
	__u32 w;
	__u64 *word;

	if (i >= a->nwords || !a->nwords)
		return 1;
	w = a->first + (a->start + i) % a->nwords;
	word = bpf_map_lookup_elem(&nf_nat_ports, &w);
	if (!word)
		return 1;
	for (int tries = 0; tries < 4; tries++) {
		__u64 v = *word, b, old;

		if (v == ~0ULL)
			return 0;
		b = ~v & (v + 1); /* the lowest free port of the word */
		old = __sync_fetch_and_or(word, b);
		if (!(old & b)) {
			a->port = w * 64 + nat_bit_index(b);
			return 1;
		}
	}
	return 0;
}

/* A free port of the pool, taken (0: the pool is full). */
AC_INLINE __u32 nat_take_port(const struct ac_nf_nat_cfg *cfg, __u32 hash)
{
	struct nat_alloc a = {};

	if (cfg->port_lo == 0 || cfg->port_hi < cfg->port_lo)
		return 0;
	a.first = cfg->port_lo / 64;
	a.nwords = cfg->port_hi / 64 - a.first + 1;
	a.start = hash % a.nwords;
	bpf_loop(AC_NF_NAT_POOL_WORDS, nat_alloc_cb, &a, 0);
	return a.port;
}

AC_INLINE void nat_give_port(__u32 port)
{
	__u32 w = (port / 64) & (AC_NF_NAT_POOL_WORDS - 1);
	__u64 *word = bpf_map_lookup_elem(&nf_nat_ports, &w);

	if (word)
		__sync_fetch_and_and(word, ~(1ULL << (port % 64)));
}

/* Is there a live mapping for key in the packet's partition? Read without the lock (a hint: the
 * transaction decides); a record idle past the timeout will be reset by the transaction. */
AC_INLINE int nat_peek(const struct ac_ftc_hop *hop, const __u8 *key, __u64 idle)
{
	struct ac_st_pkey pk = {.spi_si = hop->spi_si, .hash = hop->hash};
	struct ac_st_rec *rec = bpf_map_lookup_elem(&nf_head, &pk);
	const __u64 *k = (const __u64 *)key;

	if (!rec)
		return 0;
	if (idle && rec->last_used && hop->now - rec->last_used > idle)
		return 0;
	for (__u32 j = 0; j < AC_ST_SLOTS; j++) {
		struct ac_st_slot *sl = &rec->slot[j];

		if ((sl->flags & AC_ST_USED) && sl->table == AC_NF_TABLE_FLOW && sl->klen == AC_NF_KEY4_LEN &&
		    ((__u64 *)sl->key)[0] == k[0] && ((__u64 *)sl->key)[1] == k[1])
			return 1;
	}
	return 0;
}

enum { NAT_FOUND = 0, NAT_CREATED, NAT_NEED_PORT, NAT_REFUSED };

/* What nat_tx() works on: a per-CPU copy of the packet's hop and flow key (a global function
 * takes scalars only). */
struct nat_scratch {
	struct ac_ftc_hop hop;
	__u8 key[AC_FTC_KEY_MAX];
	__u64 idle;
	__be32 address;
	__u32 ext;               /* out: the mapping's port, host order */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_scratch);
} nf_nat_scratch SEC(".maps");

/* The flow's mapping in one transaction: read it, or create it with port (0: none taken); the
 * mapping's port in the scratch. A global function: the verifier checks the transaction once,
 * whatever the callers' states (the NAT may run it twice). */
__attribute__((noinline)) int nat_tx(__u32 port)
{
	__u32 k0 = 0;
	struct nat_scratch *ns = bpf_map_lookup_elem(&nf_nat_scratch, &k0);
	struct ac_st_tx tx;
	struct ac_st_slot *sl;
	__u8 val[AC_FTC_VAL_MAX] = {};
	__be32 address;
	int r;

	if (!ns)
		return NAT_REFUSED;
	address = ns->address;
	if (ac_st_begin(&ns->hop, &tx, ns->idle))
		return NAT_REFUSED;
	sl = ac_st_find(&tx, AC_NF_TABLE_FLOW, ns->key, AC_NF_KEY4_LEN);
	if (sl) {
		ns->ext = ((__u32)sl->val[4] << 8) | sl->val[5];
		r = NAT_FOUND;
	} else if (port) {
		__builtin_memcpy(val, &address, 4);
		val[4] = (__u8)(port >> 8);
		val[5] = (__u8)port;
		r = ac_st_put(&tx, AC_NF_TABLE_FLOW, ns->key, AC_NF_KEY4_LEN, val, AC_NF_NAT_VAL_LEN) ? NAT_REFUSED
												 : NAT_CREATED;
		ns->ext = port;
	} else {
		r = NAT_NEED_PORT;
	}
	ac_st_commit(&ns->hop, &tx);
	return r;
}

/* Rewrite the source (outbound) or the destination (inbound) address and port of the inner
 * IPv4 packet; checksums updated incrementally. */
AC_INLINE int nat_rewrite(struct xdp_md *ctx, const struct ac_nf_inner *in, int outbound, __be32 addr, __be16 port)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + (in->l3 & 0x1ff);
	__be32 old_addr;
	__be16 old_port;

	if ((void *)(ip + 1) > data_end)
		return -1;
	old_addr = outbound ? ip->saddr : ip->daddr;
	if (outbound)
		ip->saddr = addr;
	else
		ip->daddr = addr;
	ip->check = ac_nf_csum_replace4(ip->check, old_addr, addr);
	if (in->proto == IPPROTO_TCP) {
		struct tcphdr *t = data + (in->l4 & 0x3ff);

		if ((void *)(t + 1) > data_end)
			return -1;
		old_port = outbound ? t->source : t->dest;
		if (outbound)
			t->source = port;
		else
			t->dest = port;
		t->check = ac_nf_csum_replace4(t->check, old_addr, addr);
		t->check = ac_nf_csum_replace2(t->check, old_port, port);
	} else if (in->proto == IPPROTO_UDP) {
		struct udphdr *u = data + (in->l4 & 0x3ff);

		if ((void *)(u + 1) > data_end)
			return -1;
		old_port = outbound ? u->source : u->dest;
		if (outbound)
			u->source = port;
		else
			u->dest = port;
		if (u->check) { /* 0: the sender computed none */
			u->check = ac_nf_csum_replace4(u->check, old_addr, addr);
			u->check = ac_nf_csum_replace2(u->check, old_port, port);
			if (!u->check)
				u->check = 0xffff;
		}
	} else {
		struct ac_nf_icmp *ic = data + (in->l4 & 0x3ff);

		if ((void *)(ic + 1) > data_end)
			return -1;
		old_port = ic->id;
		ic->id = port;
		ic->checksum = ac_nf_csum_replace2(ic->checksum, old_port, port);
	}
	return 0;
}

/* A new mapping into the shared table (an entry there already, another instance's for the same
 * external port and remote: the larger wins, as the merge decides). A global function (scalars
 * only: remote, remote port << 16 | external port, protocol << 16 | inside port, all but the
 * protocol as on the wire): its stack is its own, not added to the NAT's. */
__attribute__((noinline)) int nat_share(__u32 remote, __u32 ports, __u32 proto_iport, __u32 external, __u32 inside)
{
	__u32 k0 = 0;
	const struct ac_nf_ftc_cfg *fc = bpf_map_lookup_elem(&nf_ftc_cfg, &k0);
	/* one stack slot for both keys: the NAT's stack and this function's share the 512 bytes */
	union {
		struct ac_nf_nat_rkey rk;
		struct ac_nf_nat_fkey fk;
	} k;
	struct ac_reg_value v = {};
	struct ac_nf_nat_shared *m = (void *)v.data;

	__builtin_memset(&k, 0, sizeof(k));
	k.rk.remote = remote;
	k.rk.remote_port = (__be16)(ports >> 16);
	k.rk.port = (__be16)ports;
	k.rk.proto = (__u8)(proto_iport >> 16);
	m->external = external;
	m->external_port = (__be16)ports;
	m->inside = inside;
	m->inside_port = (__be16)proto_iport;
	v.writer = fc ? fc->instance : 0;
	v.seen = bpf_ktime_get_tai_ns();
	if (!ac_crdt_reg_insert(&nat_shared, AC_NF_NAT_OBJ_SHARED, &k.rk, sizeof(k.rk), &v, ac_crdt_epoch())) {
		ac_nf_count(AC_NF_NAT_SHARED_FULL);
		return -1;
	}
	/* the same mapping by its inside flow, for outbound packets reaching another instance */
	__builtin_memset(&k, 0, sizeof(k));
	k.fk.inside = inside;
	k.fk.remote = remote;
	k.fk.inside_port = (__be16)proto_iport;
	k.fk.remote_port = (__be16)(ports >> 16);
	k.fk.proto = (__u8)(proto_iport >> 16);
	if (!ac_crdt_reg_insert(&nat_fwd, AC_NF_NAT_OBJ_FWD, &k.fk, sizeof(k.fk), &v, ac_crdt_epoch())) {
		ac_nf_count(AC_NF_NAT_SHARED_FULL);
		return -1;
	}
	return 0;
}

/* A mapping was used (a packet either way, on any instance): the seen of its entries in nat_fwd
 * and nat_shared move. A global function (scalars only: inside, remote, inside port << 16 |
 * remote port, protocol, external port; ports as on the wire). */
__attribute__((noinline)) int nat_used(__u32 inside, __u32 remote, __u32 ports, __u32 proto, __u32 ext_port)
{
	struct ac_nf_nat_fkey fk;
	struct ac_nf_nat_rkey rk;
	struct ac_register *r;

	__builtin_memset(&fk, 0, sizeof(fk));
	fk.inside = inside;
	fk.remote = remote;
	fk.inside_port = (__be16)(ports >> 16);
	fk.remote_port = (__be16)ports;
	fk.proto = (__u8)proto;
	r = bpf_map_lookup_elem(&nat_fwd, &fk);
	if (r)
		ac_crdt_reg_seen(r, AC_NF_NAT_OBJ_FWD, &fk, sizeof(fk), bpf_ktime_get_tai_ns(), AC_NF_NAT_SHARED_SEEN_NS,
				 ac_crdt_epoch());
	__builtin_memset(&rk, 0, sizeof(rk));
	rk.remote = remote;
	rk.remote_port = (__be16)ports;
	rk.port = (__be16)ext_port;
	rk.proto = (__u8)proto;
	r = bpf_map_lookup_elem(&nat_shared, &rk);
	if (r)
		nat_shared_seen(r, &rk);
	return 0;
}

/* Another instance's mapping of an outbound flow (nat_fwd, merged): its external port (network
 * order, in the low 16 bits), 0 when there is none for our external address or the entry is our
 * own (a mapping of ours whose record went away gets a new one, as without sharing; the caller moves
 * the entries' seen with nat_used()). A global function (scalars only: inside, remote, inside port << 16 | remote
 * port and the protocol, ports as on the wire): its stack is its own. */
__attribute__((noinline)) int nat_out_shared(__u32 inside, __u32 remote, __u32 ports, __u32 proto, __u32 address)
{
	__u32 k0 = 0;
	const struct ac_nf_ftc_cfg *fc = bpf_map_lookup_elem(&nf_ftc_cfg, &k0);
	struct ac_nf_nat_fkey fk;
	struct ac_register *fr;
	const struct ac_nf_nat_shared *m;
	__u32 ext;

	__builtin_memset(&fk, 0, sizeof(fk));
	fk.inside = inside;
	fk.remote = remote;
	fk.inside_port = (__be16)(ports >> 16);
	fk.remote_port = (__be16)ports;
	fk.proto = (__u8)proto;
	fr = bpf_map_lookup_elem(&nat_fwd, &fk);
	if (!fr)
		return 0;
	m = (const void *)fr->v.data;
	/* our own mapping whose record went away (reclaimed, idle): the flow gets a new one */
	if (m->external != address || !m->external_port || (fc && fr->v.writer == fc->instance))
		return 0;
	ext = m->external_port;
	return ext;
}

/* What the NAT does with one inner IPv4 packet: 0 translated, 1 filtered (counted), -1 bad. */
AC_INLINE int nat_work(struct xdp_md *ctx, struct ac_ftc_hop *hop, const struct ac_nf_nat_cfg *cfg, __u64 idle,
		       const struct ac_nf_inner *in)
{
	int icmp = in->proto == IPPROTO_ICMP;
	__u16 sport = bpf_ntohs(in->sport), dport = bpf_ntohs(in->dport);
	__u16 pool_port = icmp ? sport : dport;

	if (!in->l4 || (!icmp && in->proto != IPPROTO_TCP && in->proto != IPPROTO_UDP)) {
		ac_nf_count(AC_NF_NAT_UNSUPPORTED);
		return 1;
	}
	if (icmp) {
		/* only echo request and reply carry an id (sport); other ICMP is not translated */
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		struct ac_nf_icmp *ic = data + (in->l4 & 0x3ff);

		if ((void *)(ic + 1) > data_end)
			return -1;
		if (ic->type != AC_NF_ICMP_ECHO && ic->type != AC_NF_ICMP_ECHOREPLY) {
			ac_nf_count(AC_NF_NAT_UNSUPPORTED);
			return 1;
		}
	}
	/* field by field on a zeroed key: with the ternaries in one initialiser clang may spill a
	 * pointer with a 16-bit store on one path, which the verifier refuses ("invalid size of
	 * register spill") */
	struct ac_nf_nat_rkey rk;

	__builtin_memset(&rk, 0, sizeof(rk));
	rk.remote = in->src[0];
	rk.proto = in->proto;
	if (icmp) {
		rk.port = in->sport;
	} else {
		rk.remote_port = in->sport;
		rk.port = in->dport;
	}

	/* inbound: to the external address, a reply to a mapping: ours (a port of our pool, the
	 * reverse index) or another instance's (any port of the service's pools: the shared table) */
	if (in->dst[0] == cfg->address) {
		struct ac_nf_nat_rval *rv = pool_port >= cfg->port_lo && pool_port <= cfg->port_hi
						    ? bpf_map_lookup_elem(&nf_nat_rev, &rk) : 0;

		if (!rv) {
			/* another instance's mapping, merged into our replica of the shared table */
			struct ac_register *sr = bpf_map_lookup_elem(&nat_shared, &rk);
			const struct ac_nf_nat_shared *m = sr ? (const void *)sr->v.data : 0;

			if (!m || m->external != cfg->address || m->external_port != rk.port) {
				ac_nf_count(AC_NF_NAT_REV_MISS);
				return 1;
			}
			__be32 inside = m->inside;
			__be16 inside_port = m->inside_port;

			nat_used(inside, rk.remote, ((__u32)inside_port << 16) | rk.remote_port, rk.proto, rk.port);
			if (nat_rewrite(ctx, in, 0, inside, inside_port))
				return -1;
			ac_nf_count(AC_NF_NAT_IN);
			ac_nf_count(AC_NF_NAT_IN_SHARED);
			return 0;
		}
		nat_used(rv->inside, rk.remote, ((__u32)rv->inside_port << 16) | rk.remote_port, rk.proto, rk.port);
		if (nat_rewrite(ctx, in, 0, rv->inside, rv->inside_port))
			return -1;
		ac_nf_count(AC_NF_NAT_IN);
		return 0;
	}
	/* outbound: the flow's mapping */
	__u32 k0 = 0, port = 0, ext;
	struct nat_scratch *ns = bpf_map_lookup_elem(&nf_nat_scratch, &k0);
	int r;

	if (!ns)
		return -1;
	__builtin_memset(ns->key, 0, sizeof(ns->key));
	ac_nf_key4(ns->key, in->src[0], in->dst[0], in->proto, in->sport, icmp ? 0 : in->dport);
	ns->hop = *hop;
	ns->idle = idle;
	ns->address = cfg->address;
	if (!nat_peek(hop, ns->key, idle)) {
		/* no mapping of ours: another instance's, merged into nat_fwd? */
		__u32 shared = nat_out_shared(in->src[0], in->dst[0], ((__u32)in->sport << 16) | (icmp ? 0 : in->dport),
					      in->proto, cfg->address);

		if (shared) {
			nat_used(in->src[0], in->dst[0], ((__u32)in->sport << 16) | (icmp ? 0 : in->dport), in->proto,
				 shared);
			if (nat_rewrite(ctx, in, 1, cfg->address, (__be16)shared))
				return -1;
			ac_nf_count(AC_NF_NAT_OUT);
			ac_nf_count(AC_NF_NAT_OUT_SHARED);
			return 0;
		}
		port = nat_take_port(cfg, hop->hash ^ sport);
		if (!port) {
			ac_nf_count(AC_NF_NAT_NO_PORT);
			return 1;
		}
	}
	r = nat_tx(port);
	if (r == NAT_NEED_PORT) {
		/* the mapping went away between the hint and the transaction (reclaimed) */
		port = nat_take_port(cfg, hop->hash ^ sport);
		if (!port) {
			ac_nf_count(AC_NF_NAT_NO_PORT);
			return 1;
		}
		r = nat_tx(port);
	}
	*hop = ns->hop; /* the transaction's log for ac_ftc_hop_finish */
	ext = ns->ext;
	if (port && r != NAT_CREATED) {
		nat_give_port(port);
		if (r == NAT_FOUND)
			ac_nf_count(AC_NF_NAT_PORT_RACE);
	}
	if (r == NAT_REFUSED || r == NAT_NEED_PORT) {
		ac_nf_count(AC_NF_NAT_STORE_FULL);
		return 1;
	}
	if (r == NAT_CREATED) {
		struct ac_nf_nat_rkey rk = {.remote = in->dst[0], .remote_port = icmp ? 0 : in->dport,
					    .port = bpf_htons((__u16)ext), .proto = in->proto};
		struct ac_nf_nat_rval rv = {.inside = in->src[0], .inside_port = in->sport,
					    .spi_si = hop->spi_si, .hash = hop->hash};

		bpf_map_update_elem(&nf_nat_rev, &rk, &rv, BPF_ANY);
		ac_nf_count(AC_NF_NAT_NEW);
		nat_share(rk.remote, ((__u32)rk.remote_port << 16) | rk.port, ((__u32)rk.proto << 16) | in->sport,
			  cfg->address, in->src[0]);
	} else {
		nat_used(in->src[0], in->dst[0], ((__u32)in->sport << 16) | (icmp ? 0 : in->dport), in->proto,
			 bpf_htons((__u16)ext));
	}
	if (nat_rewrite(ctx, in, 1, cfg->address, bpf_htons((__u16)ext)))
		return -1;
	ac_nf_count(AC_NF_NAT_OUT);
	return 0;
}

SEC("xdp")
int nf_nat(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ac_nf_nat_cfg *cfg = bpf_map_lookup_elem(&nf_nat_cfg, &k0);
	struct ac_nf_ftc_cfg *fc = bpf_map_lookup_elem(&nf_ftc_cfg, &k0);
	struct ac_ftc_hop hop;
	struct ac_nf_inner in;
	enum ac_ftc_verdict v;
	__u64 idle;
	int r;

	r = ac_nf_begin(ctx, cfg && fc, &hop, &v, &in);
	if (r != AC_NF_WORK)
		return r;
	idle = fc->idle_jiffies;
	if (in.family == 6) {
		ac_nf_count(AC_NF_NAT_NOT_IPV4);
		return ac_nf_finish(ctx, &hop, v, 0);
	}
	if (!in.family) {
		ac_nf_count(AC_NF_NOT_IP);
		return ac_nf_finish(ctx, &hop, v, 0);
	}
	r = nat_work(ctx, &hop, cfg, idle, &in);
	if (r < 0) {
		ac_nf_count(AC_NF_DROP_BAD_INNER);
		return XDP_DROP;
	}
	return ac_nf_finish(ctx, &hop, v, r);
}

/* ---- the merge program (docs/state.md 2.2): the shared table's records ---- */

AC_INLINE int nat_apply(const struct ac_crdt_op *op, const __u8 *key, const void *val)
{
	if (op->object == AC_NF_NAT_OBJ_SHARED)
		return ac_crdt_apply_reg(&nat_shared, op, key, val, sizeof(struct ac_nf_nat_rkey));
	if (op->object == AC_NF_NAT_OBJ_FWD)
		return ac_crdt_apply_reg(&nat_fwd, op, key, val, sizeof(struct ac_nf_nat_fkey));
	return AC_CRDT_APPLY_BAD;
}

AC_INLINE int nat_fold(__u8 object, struct ac_crdt_fold_ctx *f)
{
	/* a register's origin is its writer, not a slot: nothing to fold; not windowed */
	return (object == AC_NF_NAT_OBJ_SHARED || object == AC_NF_NAT_OBJ_FWD) && f->op != AC_CRDT_OP_RESET ? 0 : -1;
}

AC_CRDT_MERGE_PROGRAM(nf_nat_merge, nat_apply, nat_fold)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
