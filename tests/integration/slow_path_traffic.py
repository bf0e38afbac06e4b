#!/usr/bin/python3
"""Traffic for tests/integration/slow_path_lab_test.py, run inside a namespace (ip netns exec);
scapy builds and decodes what our own tools would only assume.

  slow_path_traffic.py recv PORT[,PORT...] SECONDS
      receive UDP datagrams (IPv4 and IPv6) on the ports; print one JSON line per datagram:
      {"port", "family", "len", "intact"} (intact: the payload is the pattern `send` writes)
  slow_path_traffic.py send DST PORT SIZE df|nodf COUNT [SNIFF_SECONDS]
      send COUNT UDP datagrams of SIZE bytes of IP packet to DST:PORT through the kernel (DF set
      with IP_PMTUDISC_PROBE, clear with IP_PMTUDISC_OMIT: neither lets an earlier ICMP error
      change what is sent), capturing ICMP errors on eth0 with scapy meanwhile; print JSON:
      {"sent": n, "icmp": [{"type", "code", "mtu", "quoted": {...}}]}
  slow_path_traffic.py gpe IFACE DST_MAC SRC DST VNI SPI SI INNER_SRC INNER_DST PORT SIZE FRAGSIZE df|nodf
      build with scapy a VXLAN-GPE packet (NSH MD type 1, the inner UDP packet of SIZE bytes with
      the pattern, its DF set or clear), split it into IPv4 fragments of FRAGSIZE bytes of data and send them on IFACE;
      print JSON {"fragments": n, "outer_len": bytes}
"""
import json
import select
import socket
import sys
import time

IP_MTU_DISCOVER = 10  # <linux/in.h>; Python's socket module does not name these
IPV6_MTU_DISCOVER = 23
IP_PMTUDISC_PROBE = 3
IP_PMTUDISC_OMIT = 5
IPV6_PMTUDISC_PROBE = 3
IPV6_DONTFRAG = 62


def pattern(n, seq=0):
    return bytes(((i * 7 + seq) & 0xff) for i in range(n))


def recv(ports, seconds):
    socks = []
    for p in ports:
        for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, p))
            socks.append((s, fam, p))
    print(json.dumps({"ready": True}), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([s for s, _, _ in socks], [], [], 0.2)
        for s in r:
            data = s.recv(65536)
            fam, port = next((f, p) for x, f, p in socks if x is s)
            print(json.dumps({"port": port, "family": 6 if fam == socket.AF_INET6 else 4, "len": len(data),
                              "intact": data == pattern(len(data))}), flush=True)


def send(dst, port, size, df, count, sniff_s):
    from scapy.all import AsyncSniffer, ICMP, IPerror, UDPerror
    from scapy.layers.inet6 import ICMPv6PacketTooBig, IPerror6, UDPerror as UDPerror6  # noqa: F401
    v6 = ":" in dst
    sniffer = AsyncSniffer(iface="eth0", filter="icmp6" if v6 else "icmp", store=True)
    sniffer.start()
    time.sleep(0.5)
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        payload = size - 40 - 8
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE if df else IP_PMTUDISC_OMIT)
        payload = size - 20 - 8
    sent = 0
    for _ in range(count):
        s.sendto(pattern(payload), (dst, port))
        sent += 1
        time.sleep(0.05)
    time.sleep(sniff_s)
    pkts = sniffer.stop()
    out = []
    for p in pkts:
        if p.haslayer(ICMP) and p[ICMP].type == 3:
            q = p[IPerror]
            e = {"type": p[ICMP].type, "code": p[ICMP].code, "mtu": p[ICMP].nexthopmtu, "from": p["IP"].src,
                 "quoted": {"src": q.src, "dst": q.dst, "id": q.id, "len": q.len, "flags": int(q.flags),
                            "proto": q.proto, "quoted_bytes": len(bytes(q))}}
            if p.haslayer(UDPerror):
                e["quoted"].update(sport=p[UDPerror].sport, dport=p[UDPerror].dport)
            out.append(e)
        elif p.haslayer(ICMPv6PacketTooBig):
            q = p[IPerror6]
            e = {"type": 2, "code": p[ICMPv6PacketTooBig].code, "mtu": p[ICMPv6PacketTooBig].mtu,
                 "from": p["IPv6"].src,
                 "quoted": {"src": q.src, "dst": q.dst, "plen": q.plen, "nh": q.nh, "quoted_bytes": len(bytes(q))}}
            if q.haslayer(UDPerror6):
                e["quoted"].update(sport=q[UDPerror6].sport, dport=q[UDPerror6].dport)
            out.append(e)
    print(json.dumps({"sent": sent, "icmp": out}))


def gpe(iface, dst_mac, src, dst, vni, spi, si, inner_src, inner_dst, port, size, fragsize, df):
    from scapy.all import IP, UDP, Ether, fragment, sendp
    from scapy.contrib.nsh import NSH
    from scapy.layers.vxlan import VXLAN
    inner = IP(src=inner_src, dst=inner_dst, flags="DF" if df else 0) / UDP(sport=40000, dport=port) / \
        pattern(size - 28)
    nsh = NSH(mdtype=1, nextproto=1, spi=spi, si=si, ttl=63, length=6, context_header=b"\x12\x34\x56\x78" + bytes(12))
    outer = IP(src=src, dst=dst, id=0x4242) / UDP(sport=0xc123, dport=4790) / \
        VXLAN(flags=0x0C, NextProtocol=4, vni=vni) / nsh / inner
    outer = IP(bytes(outer))  # lengths and checksums computed once, before splitting
    frags = fragment(outer, fragsize=fragsize)
    sendp([Ether(dst=dst_mac) / f for f in frags], iface=iface, verbose=False)
    print(json.dumps({"fragments": len(frags), "outer_len": len(outer)}))


def main():
    a = sys.argv[1:]
    if a and a[0] == "recv" and len(a) == 3:
        recv([int(p) for p in a[1].split(",")], float(a[2]))
    elif a and a[0] == "send" and len(a) in (6, 7):
        send(a[1], int(a[2]), int(a[3]), a[4] == "df", int(a[5]), float(a[6]) if len(a) == 7 else 1.0)
    elif a and a[0] == "gpe" and len(a) == 14:
        gpe(a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), int(a[7]), a[8], a[9], int(a[10]), int(a[11]), int(a[12]),
            a[13] == "df")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
