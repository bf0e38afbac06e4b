/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test-only NF for the FTC fixtures (tests/bpf/ftc_bpf_test.cc): bpf/nf_state.h driven by a tiny
 * configurable network function. Modes:
 *   COUNTER   table 1, key "c": a 4-byte big-endian packet counter, written per packet
 *   READ      reads key "c", writes nothing (no-op logs)
 *   TRANSFER  keys "A" and "B": moves 1 from A (initially 1000000) to B, both written
 *   BIG       like COUNTER with a 29-byte value (over the share at f = 4: stubs)
 * ftc_test_cfg.filter makes the NF filter every packet (it becomes a propagating packet).
 * The NF returns the packet as the NF model says: SI - 1, MACs swapped, XDP_TX.
 */
#include "nf_state.h"

enum { MODE_COUNTER = 0, MODE_READ, MODE_TRANSFER, MODE_BIG };

struct ftc_test_cfg {
	__u32 mode;
	__u32 filter;
	__u64 idle;              /* jiffies; 0 = records never idle */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ftc_test_cfg);
} ftc_test SEC(".maps");

AC_INLINE __u32 be32_at(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

AC_INLINE void put_be32(__u8 *b, __u32 v)
{
	b[0] = (__u8)(v >> 24);
	b[1] = (__u8)(v >> 16);
	b[2] = (__u8)(v >> 8);
	b[3] = (__u8)v;
}

SEC("xdp")
int ftc_test_nf(struct xdp_md *ctx)
{
	__u32 k0 = 0;
	struct ftc_test_cfg *tc = bpf_map_lookup_elem(&ftc_test, &k0);
	struct ac_ftc_hop hop;
	enum ac_ftc_verdict v;
	__u64 now = bpf_jiffies64();
	__u32 mode, filter;
	__u64 idle;

	if (!tc)
		return XDP_ABORTED;
	mode = tc->mode;
	filter = tc->filter;
	idle = tc->idle;
	v = ac_ftc_hop_begin(ctx, &hop, now);
	if (v == AC_FTC_HOLD)
		return ac_ftc_hold();
	if (v == AC_FTC_DROP)
		return XDP_DROP;
	if (v == AC_FTC_CONTINUE && hop.stateful && !hop.propagating) {
		struct ac_st_tx tx;
		__u8 key[AC_FTC_KEY_MAX] = {}, val[AC_FTC_VAL_MAX] = {};

		if (ac_st_begin(&hop, &tx, idle) == 0) {
			struct ac_st_slot *sl;
			__u32 n;

			switch (mode) {
			case MODE_COUNTER:
			case MODE_BIG:
				key[0] = 'c';
				sl = ac_st_find(&tx, 1, key, 1);
				n = sl ? be32_at(sl->val) : 0;
				put_be32(val, n + 1);
				ac_st_put(&tx, 1, key, 1, val, mode == MODE_BIG ? 29 : 4);
				break;
			case MODE_READ:
				key[0] = 'c';
				sl = ac_st_find(&tx, 1, key, 1);
				(void)sl;
				break;
			case MODE_TRANSFER: {
				__u32 a, b;

				key[0] = 'A';
				sl = ac_st_find(&tx, 1, key, 1);
				a = sl ? be32_at(sl->val) : 1000000;
				key[0] = 'B';
				sl = ac_st_find(&tx, 1, key, 1);
				b = sl ? be32_at(sl->val) : 0;
				key[0] = 'A';
				put_be32(val, a - 1);
				ac_st_put(&tx, 1, key, 1, val, 4);
				key[0] = 'B';
				put_be32(val, b + 1);
				ac_st_put(&tx, 1, key, 1, val, 4);
				break;
			}
			}
			ac_st_commit(&hop, &tx);
		} else {
			filter = 1; /* no store: the NF refuses the flow */
		}
	}
	if (v == AC_FTC_CONTINUE) {
		if (filter)
			ac_ftc_propagate(&hop);
		if (ac_ftc_hop_finish(ctx, &hop) != AC_FTC_CONTINUE)
			return XDP_DROP;
	}

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 *nsh = data + ETH_HLEN;
	__u8 mac[ETH_ALEN];

	if ((void *)(nsh + AC_NSH_BASE_LEN) > data_end)
		return XDP_DROP;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	nsh[7] -= 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
