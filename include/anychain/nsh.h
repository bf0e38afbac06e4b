/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Wire formats carried by anychain: NSH (RFC 8300), MD type 2 TLVs and VXLAN-GPE
 * (draft-ietf-nvo3-vxlan-gpe). Shared by the BPF fast path and the C++ side.
 * All multi-byte fields are in network byte order on the wire.
 */
#ifndef ANYCHAIN_NSH_H
#define ANYCHAIN_NSH_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <linux/types.h>
#include <stdint.h>
#endif

#define AC_ETH_P_NSH 0x894F  /* NSH over Ethernet / GRE protocol type */
#define AC_VXLAN_GPE_PORT 4790

/* NSH base header, 4 bytes:
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * |Ver|O|U|    TTL    |   Length  |U|U|U|U|MD Type| Next Protocol |
 */
struct ac_nsh_base {
	__be16 ver_flags_ttl_len; /* ver:2 O:1 U:1 TTL:6 Length:6 (4-byte words) */
	__u8 md_type;             /* low 4 bits */
	__u8 next_proto;
} __attribute__((packed));

/* Service path header: SPI (24 bits) | SI (8 bits) */
struct ac_nsh_sp {
	__be32 spi_si;
} __attribute__((packed));

/* MD type 1 fixed context: four 32-bit words. anychain puts the flow hash in word 0. */
struct ac_nsh_md1 {
	__be32 ctx[4];
} __attribute__((packed));

/* MD type 2 context header (one TLV header; value follows, padded to 4 bytes):
 * |          Metadata Class       |      Type     |U|    Length   |
 */
struct ac_nsh_tlv {
	__be16 md_class;
	__u8 type;    /* all 8 bits are the type (RFC 8300 has no critical bit) */
	__u8 len;     /* top bit unassigned (U), low 7 bits: value length in bytes, unpadded */
} __attribute__((packed));

#define AC_NSH_VERSION 0
#define AC_NSH_MD_TYPE1 0x1
#define AC_NSH_MD_TYPE2 0x2
#define AC_NSH_NP_IPV4 0x1
#define AC_NSH_NP_IPV6 0x2
#define AC_NSH_NP_ETH 0x3

#define AC_NSH_BASE_LEN 8     /* base + service path header */
#define AC_NSH_MD1_LEN 24     /* base + sp + 16 bytes context */
#define AC_NSH_MAX_LEN 252    /* 63 words */
#define AC_NSH_DEFAULT_TTL 63 /* RFC 8300 default */
#define AC_NSH_TTL_MAX 63

/* anychain's MD2 class (RFC 9263 "experimental" range 0xFFF6..0xFFFE) and its types */
#define AC_MD_CLASS 0xFFF6
#define AC_TLV_FLOW_HASH 0x01 /* 4-byte flow hash, same value MD1 keeps in ctx[0] */
#define AC_TLV_FTC_LOG 0x02   /* FTC piggyback log (state updates) */

/* Helpers to build/parse the first 16-bit word of the base header (host order value). */
#define AC_NSH_W0(ver, ttl, len_words)                                                      \
	((__u16)((((ver) & 0x3) << 14) | (((ttl) & 0x3f) << 6) | ((len_words) & 0x3f)))
#define AC_NSH_W0_VER(w) (((w) >> 14) & 0x3)
#define AC_NSH_W0_OAM(w) (((w) >> 13) & 0x1)
#define AC_NSH_W0_TTL(w) (((w) >> 6) & 0x3f)
#define AC_NSH_W0_LEN(w) ((w) & 0x3f)
/* w with its TTL decremented by one, modulo 64 (RFC 8300 sec. 2.2: 0 becomes 63) */
#define AC_NSH_W0_DEC_TTL(w) ((__u16)(((w) & ~(0x3f << 6)) | ((((w) >> 6) - 1) & 0x3f) << 6))
#define AC_SPI_SI(spi, si) ((((__u32)(spi)) << 8) | ((__u32)(si) & 0xff))

/* VXLAN-GPE header, 8 bytes:
 * |R|R|Ver|I|P|B|O|       Reserved                |Next Protocol |
 * |                VXLAN Network Identifier (VNI) |   Reserved    |
 */
struct ac_vxlan_gpe {
	__u8 flags;       /* 0x0C: I and P set, version 0 */
	__u8 reserved[2];
	__u8 next_proto;  /* 0x04 = NSH */
	__be32 vni_res;   /* VNI << 8 */
} __attribute__((packed));

#define AC_GPE_FLAG_I 0x08
#define AC_GPE_FLAG_P 0x04
#define AC_GPE_FLAG_O 0x01
#define AC_GPE_VER_MASK 0x30
#define AC_GPE_NP_IPV4 0x01
#define AC_GPE_NP_IPV6 0x02
#define AC_GPE_NP_ETH 0x03
#define AC_GPE_NP_NSH 0x04

#endif /* ANYCHAIN_NSH_H */
