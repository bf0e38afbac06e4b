#!/usr/bin/python3
"""Build NSH and VXLAN-GPE/NSH frames with scapy for anychain's fast path, write them to a pcap
and print one scenario name per frame, in order. interop_test.cc holds what the fast path must
do with each name (it mirrors the constants below) and fails on unknown or missing names.

Addresses are those of the fast-path fixture (tests/bpf/fastpath_fixture.h). Where scapy 2.5
would build a wrong header (MD2 length, VXLAN next protocol; see anychain_scapy.py) the field
is set explicitly, except in 'gpe_scapy_default_next_proto', which keeps scapy's default.
Usage: scapy_build.py OUT.pcap
"""
import struct
import sys

from scapy.utils import wrpcap

from anychain_scapy import IP, IPv6, NSH, NSHTLV, UDP, VXLAN, Ether, Raw

VNF0_HOST, VNF0_PEER = "02:00:00:00:a0:01", "02:00:00:00:a0:02"
CORE0, CORE0_PEER = "02:00:00:00:c0:01", "02:00:00:00:c0:02"
LOCAL_ENDPOINT, REMOTE_ENDPOINT = "192.0.2.1", "192.0.2.2"
HASH_V4, HASH_V6, HASH_MD2 = 0x1234ABCD, 0x0BADF00D, 0xFEEDFACE
AC_MD_CLASS, AC_TLV_FLOW_HASH = 0xFFF6, 0x01


def inner(v6):
    l4 = UDP(sport=1000, dport=2000) / Raw(b"\xab" * 32)
    if v6:
        return IPv6(src="2001:db8:5::10", dst="2001:db8:99::10", hlim=64) / l4
    return IP(src="192.168.1.10", dst="203.0.113.10", ttl=64, id=0x1234) / l4


def md1(v6, si, ttl):
    h = HASH_V6 if v6 else HASH_V4
    return NSH(mdtype=1, nextproto=2 if v6 else 1, spi=100, si=si, ttl=ttl,
               context_header=struct.pack("!IIII", h, 0, 0, 0))


def tlv(cls, typ, value):
    pad = b"\0" * (-len(value) % 4)
    return NSHTLV(class_=cls, type=typ, length=len(value)) / Raw(value + pad)


def md2(v6, si, ttl, tlvs=None):
    if tlvs is None:
        tlvs = [tlv(0x0123, 0x45, bytes([1, 2, 3, 4, 5, 6])),       # someone else's TLV
                tlv(AC_MD_CLASS, AC_TLV_FLOW_HASH, struct.pack("!I", HASH_MD2))]
    words = 2 + sum(len(bytes(t)) for t in tlvs) // 4  # scapy would count TLVs instead
    return NSH(mdtype=2, nextproto=2 if v6 else 1, spi=100, si=si, ttl=ttl, length=words, vlch=tlvs)


def gpe(nsh, next_proto=4):
    vx = VXLAN(flags=0x0C, vni=7) if next_proto is None else VXLAN(flags=0x0C, NextProtocol=next_proto, vni=7)
    return (Ether(dst=CORE0, src=CORE0_PEER) / IP(src=REMOTE_ENDPOINT, dst=LOCAL_ENDPOINT, id=0)
            / UDP(sport=0xC123, dport=4790) / vx / nsh)


def from_vnf(nsh):
    return Ether(dst=VNF0_HOST, src=VNF0_PEER) / nsh


def scenarios():
    for v6, fam in ((False, "v4"), (True, "v6")):
        yield "nsh_md1_%s_from_vnf" % fam, from_vnf(md1(v6, 254, 62) / inner(v6))
        yield "nsh_md2_%s_from_vnf" % fam, from_vnf(md2(v6, 254, 62) / inner(v6))
        yield "gpe_md1_%s_last_hop" % fam, gpe(md1(v6, 253, 60) / inner(v6))
        yield "gpe_md2_%s_to_vnf" % fam, gpe(md2(v6, 255, 50) / inner(v6))
    # RFC 8300 Type is 8 bits: type 0x81 in our class is not our flow-hash TLV (0x01), so the
    # fast path must hash the inner packet instead of using this value
    yield "nsh_md2_v4_type_0x81_from_vnf", from_vnf(
        md2(False, 254, 62, [tlv(AC_MD_CLASS, 0x80 | AC_TLV_FLOW_HASH, struct.pack("!I", HASH_MD2))])
        / inner(False))
    # scapy's own default for VXLAN()/NSH(): NextProtocol stays 0, which the fast path drops
    yield "gpe_scapy_default_next_proto", gpe(md1(False, 255, 50) / inner(False), next_proto=None)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    names, frames = [], []
    for name, pkt in scenarios():
        names.append(name)
        frames.append(Ether(bytes(pkt)))  # frozen: checksums and lengths computed by scapy
    wrpcap(sys.argv[1], frames)
    print("\n".join(names))


if __name__ == "__main__":
    main()
