// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * anychain's XDP fast path: one entry program for every interface of an NFV node.
 * What it does with each frame: ac_main.h.
 */
#include "ac_main.h"
#include <xdp/xdp_helpers.h>

struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(anychain_xdp);

SEC("xdp")
int anychain_xdp(struct xdp_md *ctx)
{
	return ac_main(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
