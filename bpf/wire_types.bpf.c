// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Never loaded: anchors the wire structs the fast path only uses through packet pointers, so
 * that their BPF layout is in BTF for tests/bpf/btf_layout_test (map types are checked against
 * anychain.bpf.o itself). */
#include <linux/types.h>
#include <anychain/nsh.h>
#include <anychain/flow_hash.h>
#include <anychain/slowpath.h>

struct ac_nsh_base ac_btf_nsh_base;
struct ac_nsh_sp ac_btf_nsh_sp;
struct ac_nsh_md1 ac_btf_nsh_md1;
struct ac_nsh_tlv ac_btf_nsh_tlv;
struct ac_vxlan_gpe ac_btf_vxlan_gpe;
struct ac_tuple ac_btf_tuple;
struct ac_slow_hdr ac_btf_slow_hdr;

char LICENSE[] __attribute__((section("license"), used)) = "Dual BSD/GPL";
