#!/usr/bin/python3
"""Decode a pcap of anychain's emitted frames with scapy and print, per frame, one line of
space-separated key=value fields (the keys interop_test.cc compares):

  eth.type nsh.ver nsh.oam nsh.u (the unassigned bit after O) nsh.ttl nsh.len
  nsh.md (the whole MD type byte, its 4 unassigned bits included) nsh.np nsh.spi nsh.si
  nsh.ctx (MD1: four 32-bit words, hex, comma-separated)
  nsh.tlvs (MD2: class:type:U:len:value-hex per TLV, comma-separated)
  gpe.flags (whole byte) gpe.ver gpe.np gpe.vni gpe.reserved (16-bit:8-bit reserved fields)
  udp.sport udp.dport outer.src outer.dst outer.csum inner.src inner.dst

Numbers are decimal. Exits non-zero with a message on anything scapy cannot make sense of.
Usage: scapy_decode.py FILE.pcap
"""
import sys

from scapy.utils import rdpcap

from anychain_scapy import IP, IPv6, NSH, UDP, VXLAN, Ether, NshMd2, Raw, dissect_nsh


def fail(i, msg):
    sys.exit("scapy_decode: frame %d: %s" % (i, msg))


def ipv4_csum_ok(ip):
    raw = bytes(ip)[: ip.ihl * 4]
    s = 0
    for j in range(0, len(raw), 2):
        s += raw[j] << 8 | raw[j + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def nsh_fields(i, n, out):
    out["nsh.ver"] = n.ver
    out["nsh.oam"] = n.oam
    out["nsh.u"] = n.unused1
    out["nsh.ttl"] = n.ttl
    out["nsh.len"] = n.length
    out["nsh.md"] = n.unused2 << 4 | n.mdtype
    out["nsh.np"] = n.nextproto
    out["nsh.spi"] = n.spi
    out["nsh.si"] = n.si
    if n.mdtype == 1:
        if not isinstance(n, NSH):
            fail(i, "MD type 1 not dissected by scapy's NSH")
        ctx = bytes(n.context_header)
        if len(ctx) != 16:
            fail(i, "MD1 context is %d bytes" % len(ctx))
        out["nsh.ctx"] = ",".join(ctx[k:k + 4].hex() for k in range(0, 16, 4))
    elif n.mdtype == 2:
        tlvs = []
        for t in n.vlch:
            tlvs.append("%d:%d:%d:%d:%s" % (t.class_, t.type, t.reserved, t.length,
                                            bytes(t.value)[: t.length].hex()))
        out["nsh.tlvs"] = ",".join(tlvs)
    else:
        fail(i, "MD type %d" % n.mdtype)


def inner_fields(i, layer, out):
    if isinstance(layer, IP):
        out["inner.src"], out["inner.dst"] = layer.src, layer.dst
    elif isinstance(layer, IPv6):
        out["inner.src"], out["inner.dst"] = layer.src, layer.dst
    else:
        fail(i, "NSH payload dissected as %s, not IPv4/IPv6" % type(layer).__name__)


def decode(i, frame):
    out = {}
    eth = Ether(frame)
    out["eth.type"] = eth.type
    if eth.type == 0x894F:
        n = dissect_nsh(bytes(eth.payload))
    elif eth.type == 0x0800:
        ip = eth.payload
        if not isinstance(ip, IP) or not isinstance(ip.payload, UDP):
            fail(i, "IPv4 frame that is not IPv4/UDP")
        udp = ip.payload
        vx = udp.payload
        if not isinstance(vx, VXLAN):
            fail(i, "UDP port %d not dissected as VXLAN by scapy" % udp.dport)
        out["outer.src"], out["outer.dst"] = ip.src, ip.dst
        out["outer.csum"] = "good" if ipv4_csum_ok(ip) else "bad"
        out["udp.sport"], out["udp.dport"] = udp.sport, udp.dport
        flags = int(vx.flags)
        out["gpe.flags"] = flags
        out["gpe.ver"] = (flags >> 4) & 3
        if not vx.flags.NextProtocol:
            fail(i, "VXLAN without the P (next protocol) flag")
        out["gpe.np"] = vx.NextProtocol
        out["gpe.vni"] = vx.vni
        out["gpe.reserved"] = "%d:%d" % (vx.reserved0, vx.reserved2)
        if vx.NextProtocol != 4:
            fail(i, "VXLAN-GPE next protocol %d is not NSH (4)" % vx.NextProtocol)
        n = vx.payload
        if not isinstance(n, NSH):
            n = dissect_nsh(bytes(n))
    else:
        fail(i, "EtherType 0x%04x" % eth.type)
    if not isinstance(n, (NSH, NshMd2)):
        fail(i, "no NSH")
    nsh_fields(i, n, out)
    inner_fields(i, n.payload, out)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    frames = rdpcap(sys.argv[1])
    if len(frames) == 0:
        sys.exit("scapy_decode: no frames in " + sys.argv[1])
    for i, f in enumerate(frames):
        d = decode(i, bytes(f))
        print(" ".join("%s=%s" % (k, d[k]) for k in sorted(d)))


if __name__ == "__main__":
    main()
