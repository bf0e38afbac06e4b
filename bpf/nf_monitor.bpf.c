/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The built-in traffic monitor (docs/nf.md): per-flow packet and byte counters, written by
 * every packet in a transaction on the flow's partition (bpf/nf_state.h: the FTC per-flow state,
 * table AC_NF_TABLE_FLOW, key the flow, value packets and bytes, big-endian), and the instance's
 * totals (a per-CPU counter). It never filters: a packet whose flow cannot be recorded (the
 * partition's slots or the store full) is passed and counted as uncounted.
 */
#include "nf_common.h"

/* the instance's totals: packets and inner bytes of every IP packet it saw */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ac_nf_counter);
} nf_mon_total SEC(".maps");

/* IPv6 flows by their digest key, for `anychain state` */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u8[AC_NF_KEY6_LEN]);
	__type(value, struct ac_nf_flow6);
} nf_mon_v6 SEC(".maps");

AC_INLINE __u64 be64_load(const __u8 *p)
{
	return __builtin_bswap64(*(const __u64 *)p);
}

SEC("xdp")
int nf_monitor(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ac_nf_ftc_cfg *fc = bpf_map_lookup_elem(&nf_ftc_cfg, &k0);
	struct ac_nf_counter *tot;
	struct ac_ftc_hop hop;
	struct ac_nf_inner in;
	struct ac_st_tx tx;
	enum ac_ftc_verdict v;
	__u8 key[AC_FTC_KEY_MAX] = {}, val[AC_FTC_VAL_MAX] = {};
	__u32 klen = AC_NF_KEY4_LEN, len;
	__u64 idle;
	int fresh = 0, counted = 0, r;

	r = ac_nf_begin(ctx, fc != 0, &hop, &v, &in);
	if (r != AC_NF_WORK)
		return r;
	idle = fc->idle_jiffies;
	if (!in.family) {
		ac_nf_count(AC_NF_NOT_IP);
		return ac_nf_finish(ctx, &hop, v, 0);
	}
	len = in.len;
	tot = bpf_map_lookup_elem(&nf_mon_total, &k0);
	if (tot) {
		tot->packets += 1;
		tot->bytes += len;
	}
	if (in.family == 4) {
		ac_nf_key4(key, in.src[0], in.dst[0], in.proto, in.sport, in.dport);
	} else {
		ac_nf_digest6(in.src, in.dst, in.proto, in.sport, in.dport, key);
		klen = AC_NF_KEY6_LEN;
	}
	/* the flow's counters: one transaction on its partition (FTC logs the write) */
	if (ac_st_begin(&hop, &tx, idle) == 0) {
		struct ac_st_slot *sl = ac_st_find(&tx, AC_NF_TABLE_FLOW, key, klen);
		__u64 pk = 1, by = len;

		if (sl) {
			pk += be64_load(sl->val);
			by += be64_load(sl->val + 8);
		} else {
			fresh = 1;
		}
		*(__u64 *)val = __builtin_bswap64(pk);
		*(__u64 *)(val + 8) = __builtin_bswap64(by);
		counted = ac_st_put(&tx, AC_NF_TABLE_FLOW, key, klen, val, AC_NF_MON_VAL_LEN) == 0;
		ac_st_commit(&hop, &tx);
	}
	if (counted) {
		ac_nf_count(AC_NF_MON_COUNTED);
		if (fresh) {
			ac_nf_count(AC_NF_MON_NEW_FLOW);
			if (in.family == 6) {
				struct ac_nf_flow6 f = {};

				__builtin_memcpy(f.src, in.src, 16);
				__builtin_memcpy(f.dst, in.dst, 16);
				f.sport = bpf_ntohs(in.sport);
				f.dport = bpf_ntohs(in.dport);
				f.proto = in.proto;
				bpf_map_update_elem(&nf_mon_v6, key, &f, BPF_ANY);
			}
		}
	} else {
		ac_nf_count(AC_NF_MON_UNCOUNTED);
	}
	return ac_nf_finish(ctx, &hop, v, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
