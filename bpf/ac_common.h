/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes and small helpers every fast-path header uses. */
#ifndef AC_COMMON_H
#define AC_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AC_INLINE static __always_inline
/* one load of a value another CPU or the agent may change, where it is written in the code */
#define AC_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

#include <anychain/nsh.h>
#include <anychain/maps.h>
#include <anychain/flow_hash.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define AC_GPE_OUTER_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct ac_vxlan_gpe))

/* What the program knows about a packet's NSH once parsed (or pushed by the classifier). */
struct ac_nsh_info {
	__u32 spsi;      /* SPI/SI word, network order */
	__u32 hash;      /* flow hash (MD1 ctx[0] or the anychain MD2 TLV) */
	__u32 len;       /* NSH header length in bytes, 8..252 */
	__u8 np;         /* next protocol */
	__u8 md;         /* MD type */
	__u8 has_hash;
	__u8 pending;    /* the classifier's NSH, not in the packet yet: the packet is [eth][L3] and
			  * delivery writes the NSH together with any outer headers (one
			  * bpf_xdp_adjust_head() per packet) */
	__u32 vni;       /* VXLAN-GPE VNI the packet arrived with (0: not from another node) */
	__u32 outer;     /* bytes of outer headers (IPv4, UDP, VXLAN-GPE) still between the Ethernet
			  * header and the NSH: VXLAN-GPE in transit (ac_gpe_rx()), whose outer
			  * headers are written over if it leaves over VXLAN-GPE again and removed
			  * (ac_outer_off()) before anything else; 0 everywhere else */
};

AC_INLINE void ac_copy_mac(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

/* A 16- or 32-bit field of a packed header (NSH, VXLAN-GPE) read or written as one access, in
 * network order: clang splits every access to a field of a packed struct into single bytes on
 * BPF (four loads and the shifts and ORs that join them for a 32-bit field). A packet's headers
 * are not naturally aligned; the verifier accepts such an access wherever the kernel has
 * efficient unaligned access (no BPF_F_STRICT_ALIGNMENT), as ac_mac_eq() and the proxy's word
 * copies of the NSH already do. */
AC_INLINE __u32 ac_get32(const void *p)
{
	return *(const __u32 *)p;
}

AC_INLINE __u16 ac_get16(const void *p)
{
	return *(const __u16 *)p;
}

AC_INLINE void ac_put32(void *p, __u32 v)
{
	*(__u32 *)p = v;
}

AC_INLINE void ac_put16(void *p, __u16 v)
{
	*(__u16 *)p = v;
}

/* ac_copy_mac() as one 4-byte and one 2-byte access (clang copies a MAC byte by byte: six loads
 * and six stores), for copies between the packet and map values only: the verifier wants every
 * stack access aligned, whereas packet and map value accesses need not be (see ac_get32()). */
AC_INLINE void ac_copy_mac_w(__u8 *dst, const __u8 *src)
{
	ac_put32(dst, ac_get32(src));
	ac_put16(dst + 4, ac_get16(src + 4));
}

AC_INLINE int ac_mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* The TTL of the NSH the classifier assigns, as it leaves this node: the configured initial
 * value, decremented once by this node's own SFF before its forwarding lookup (RFC 8300
 * sec. 2.2: every SFF decrements; the loader keeps default_ttl >= 2). */
AC_INLINE __u8 ac_classified_ttl(const struct ac_config *cfg)
{
	return cfg->default_ttl - 1;
}

#endif
