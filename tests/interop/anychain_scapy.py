"""Scapy layers used by anychain's interop tests, and workarounds for two bugs of scapy 2.5's
contrib NSH / VXLAN layers (both are scapy's, not anychain's; see docs/testing.md):

1. scapy.contrib.nsh cannot dissect MD type 2: NSH.vlch and NSHTLV.metadata are PacketListFields
   with count_from='length' (a str, not a callable), so dissection raises TypeError (and scapy
   silently falls back to Raw unless conf.debug_dissector is set). When building, NSH.length of
   MD type 2 is computed as (number of TLVs + 2) instead of 2 + the TLV words.
   -> NshMd2 below reuses scapy's own base-header fields (ver ... si, the bit layout under test)
      and NSHTLV's class/type/U/length fields, and only replaces the list-length logic.
2. scapy.layers.vxlan binds NSH with the key 'nextproto' while the VXLAN field is 'NextProtocol',
   so VXLAN-GPE with next protocol 4 is dissected as Raw, and VXLAN()/NSH() is built with
   NextProtocol 0. -> we bind NextProtocol=4 for dissection; builders set it explicitly.
"""
import sys

from scapy.config import conf
from scapy.fields import PacketListField, StrLenField
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw, bind_bottom_up, bind_layers

from scapy.contrib.nsh import NSH, NSHTLV

# scapy's NSH fields up to and including 'si' (ver, oam, unused1, ttl, length, unused2,
# mdtype, nextproto, spi, si), and NSHTLV's header fields (class_, type, reserved, length).
_NSH_BASE = [f for f in NSH.fields_desc if f.name not in ("context_header", "vlch")]
_TLV_HEAD = [f for f in NSHTLV.fields_desc if f.name != "metadata"]
assert [f.name for f in _NSH_BASE][-2:] == ["spi", "si"], "unexpected scapy NSH layout"
assert [f.name for f in _TLV_HEAD] == ["class_", "type", "reserved", "length"], \
    "unexpected scapy NSHTLV layout"


class NshTlv(Packet):
    """One MD type 2 context header: scapy's NSHTLV header fields, value padded to 4 bytes."""
    name = "NSH TLV (scapy NSHTLV header)"
    fields_desc = _TLV_HEAD + [
        StrLenField("value", b"", length_from=lambda p: (p.length + 3) & ~3),
    ]

    def extract_padding(self, s):
        return b"", s


class NshMd2(Packet):
    """NSH MD type 2: scapy's NSH base header fields, TLVs bounded by the length field."""
    name = "NSH (MD type 2)"
    fields_desc = _NSH_BASE + [
        PacketListField("vlch", [], NshTlv, length_from=lambda p: p.length * 4 - 8),
    ]


for cls in (NSH, NshMd2):
    bind_layers(cls, IP, nextproto=1)
    bind_layers(cls, IPv6, nextproto=2)
    bind_layers(cls, Ether, nextproto=3)
bind_bottom_up(VXLAN, NSH, NextProtocol=4)


def dissect_nsh(raw):
    """NSH with its payload from raw bytes: scapy's own NSH when it can, NshMd2 otherwise."""
    saved = conf.debug_dissector
    conf.debug_dissector = True
    try:
        return NSH(raw)
    except TypeError:
        note("scapy.contrib.nsh cannot dissect this NSH (MD type 2 bug); using NshMd2")
        return NshMd2(raw)
    finally:
        conf.debug_dissector = saved


_noted = set()


def note(msg):
    if msg not in _noted:
        _noted.add(msg)
        print("note: " + msg, file=sys.stderr)


__all__ = ["Ether", "IP", "IPv6", "UDP", "VXLAN", "NSH", "NSHTLV", "NshMd2", "NshTlv", "Raw",
           "dissect_nsh", "note"]
