"""The commands that build a router's own side of the lab, for both backends.

A router's node holds, besides its links: its loopback and sysctls, and the network namespaces
of its VNF instances and sources/sinks behind veths. The netns backend runs these commands on
this host (the router is namespace acl-<prefix>-<router>); the VM backend writes them into the
guest's node script (lablib.vm), where the router is the guest's own namespace (router_ns None).
Each step is (journal entry or None, argv): the netns backend journals the entry before it runs
the command. Pure: nothing here runs anything.
"""

from __future__ import annotations

from .names import ns_name

Step = tuple[dict | None, list[str]]

# Every router: forwarding on, reverse-path filter off; accept_local because a VXLAN-GPE packet
# the fast path hands to the stack while a neighbour is unresolved carries this router's own
# endpoint as source (docs/fastpath.md).
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1,
                  "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
                  "net.ipv4.conf.all.accept_local": 1}
# VNF namespaces: no forwarding, always. The VNF program is the only thing that sends traffic
# back; with forwarding on, the kernel also routed every bare-IP frame an NSH-unaware instance
# gets back to the router, unstamped: each packet arrived twice. Without a program the instance
# drops what it gets, as a dead VNF does (a new netns may inherit ip_forward, hence zeros).
VNF_SYSCTLS = {"net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 0,
               "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.eth0.rp_filter": 0}


def ip(ns: str | None, *args: str) -> list[str]:
    """`ip` in namespace ns (None: the caller's own)."""
    return ["ip", "-n", ns, *args] if ns else ["ip", *args]


def in_ns(ns: str | None, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


def sysctl(ns: str | None, pairs: dict[str, object]) -> list[str]:
    return in_ns(ns, "sysctl", "-q", "-w", *[f"{k}={v}" for k, v in pairs.items()])


def new_netns(ns: str) -> list[Step]:
    return [({"kind": "netns", "name": ns}, ["ip", "netns", "add", ns]),
            (None, ip(ns, "link", "set", "lo", "up"))]


def veth(ns_a: str | None, if_a: str, ns_b: str, if_b: str) -> Step:
    """A veth pair made inside ns_a with its peer inside ns_b: never visible in the host's
    namespace, so labs cannot collide there."""
    return ({"kind": "veth", "netns": ns_a, "name": if_a, "peer_netns": ns_b, "peer": if_b},
            ip(ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b))


def addr_up(ns: str | None, ifname: str, addr: str) -> list[Step]:
    return [(None, ip(ns, "addr", "add", addr, "dev", ifname)),
            (None, ip(ns, "link", "set", ifname, "up"))]


def router_steps(r: dict, rns: str | None) -> list[Step]:
    """The router's sysctls and loopback address (its namespace exists)."""
    return [(None, sysctl(rns, ROUTER_SYSCTLS)),
            (None, ip(rns, "addr", "add", f"{r['loopback']}/32", "dev", "lo"))]


def vnf_steps(prefix: str, v: dict, rns: str | None) -> list[Step]:
    """VNF instance v's namespace behind a veth from its router (namespace rns)."""
    vns = ns_name(prefix, v["router"], v["name"])
    steps = new_netns(vns)
    steps.append(veth(rns, v["router_if"], vns, v["vnf_if"]))
    # room for NSH on both ends (topology.py: [lab] / [[vnf]] mtu)
    steps.append((None, ip(rns, "link", "set", v["router_if"], "mtu", str(v["mtu"]))))
    steps.append((None, ip(vns, "link", "set", v["vnf_if"], "mtu", str(v["mtu"]))))
    steps += addr_up(rns, v["router_if"], v["router_addr"])
    steps += addr_up(vns, v["vnf_if"], v["vnf_addr"])
    # XDP_REDIRECT into a veth needs NAPI on the far end: GRO on gives it (kernel >= 5.13)
    steps.append((None, in_ns(vns, "ethtool", "-K", v["vnf_if"], "gro", "on")))
    steps.append((None, ip(vns, "route", "add", "default", "via", v["router_addr"].split("/")[0])))
    steps.append((None, sysctl(vns, VNF_SYSCTLS)))
    return steps


def host_steps(prefix: str, h: dict, rns: str | None) -> list[Step]:
    """Source or sink h's namespace behind a veth from its router (namespace rns)."""
    hns = ns_name(prefix, h["name"])
    steps = new_netns(hns)
    steps.append(veth(rns, h["router_if"], hns, h["host_if"]))
    steps += addr_up(rns, h["router_if"], h["router_addr"])
    steps += addr_up(hns, h["host_if"], h["host_addr"])
    steps.append((None, in_ns(hns, "ethtool", "-K", h["host_if"], "gro", "on")))
    # Complete checksums from the sending socket: a veth leaves UDP/TCP checksums partial for
    # the "hardware", and a frame that XDP redirects loses the skb's note that they are, so it
    # arrives with a wrong checksum and the receiver drops it (docs/tools.md).
    steps.append((None, in_ns(hns, "ethtool", "-K", h["host_if"], "tx", "off")))
    steps.append((None, ip(hns, "route", "add", "default", "via", h["gateway"])))
    return steps


def local_steps(topo: dict, prefix: str, rname: str, rns: str | None) -> list[Step]:
    """Everything behind router rname: its VNF instances, then its sources and sinks."""
    steps: list[Step] = []
    for v in topo["vnfs"]:
        if v["router"] == rname:
            steps += vnf_steps(prefix, v, rns)
    for h in topo["hosts"]:
        if h["router"] == rname:
            steps += host_steps(prefix, h, rns)
    return steps
