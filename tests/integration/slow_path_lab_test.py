"""Full-size packets on links without room for NSH, and the slow path that keeps them from
vanishing (docs/slow-path.md), on a lab with real FRR (tests/integration/slow_path.toml):

  src --- A ===(MTU 1500)=== B --- rb (NSH-aware, remote)
  dst --/ |  \\
         la   pa    la: NSH-aware, veth MTU 1500; pa: behind the SFC proxy, veth MTU 1400

The agents start bare: the test adds services, instances (anychaind attaches their veths itself:
the test never attaches a VNF veth), chains and policies with the CLI, then sends 1500-byte UDP
datagrams from the source's kernel (DF set or clear, IPv4 and IPv6) into three chains, one per
VNF. Each is either delivered intact (fragmented by the slow path: IPv4 without DF) or answered
with ICMP "fragmentation needed" / ICMPv6 "packet too big" carrying the MTU of the hop that was
too small, captured by scapy at the source; the fast path counts each one as handed to the slow
path (fwd_slow_path), never as sent (fwd_local_nsh / fwd_remote) or as a routing drop
(drop_fib). tshark decodes the VXLAN-GPE that A's agent sends to B: every packet fits the link.
A VXLAN-GPE packet split into IPv4 fragments by scapy reaches the sink through the chain.

TestLateVeth: `anychain instance add --veth X` for an X that does not exist yet: status says so,
X gets the program when it appears (ip -d link), again after someone removes it, status warns
about an MTU without room for the NSH, and the program goes when the instance is removed.

Root only (conftest.py exits 77 otherwise). Alone:
  flock /tmp/anychain-ctest.lock /usr/bin/python3 -m pytest tests/integration/slow_path_lab_test.py --build-dir build
"""
import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from labkit import LAB, LAB_AGENT, PYTHON, STATE_ROOT, lab, lab_prefix, run, silent_agents, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TOPO = os.path.join(HERE, "slow_path.toml")
TRAFFIC = os.path.join(HERE, "slow_path_traffic.py")
COUNT = 3  # datagrams per case (the agent's ICMP rate limit lets a burst of this size through)

# IPv6 on the hosts and the link (the lab is IPv4 only; OSPFv2 routes IPv4)
V6 = {"src": ("fd11:1::2/64", "fd11:1::1"), "dst": ("fd11:2::2/64", "fd11:2::1")}
V6_A = {"h-src": "fd11:1::1/64", "h-dst": "fd11:2::1/64", "to-B": "fd11:3::1/64"}
V6_B = {"to-A": "fd11:3::2/64"}
DST4, DST6 = "10.234.0.22", "fd11:2::2"
# one chain per VNF: (service, SPI, ports of its policy, the largest inner packet its next hop takes)
#   la: veth MTU 1500 - 24 bytes of NSH; rb: link MTU 1500 - 36 outer - 24 NSH; pa: veth MTU 1400
CHAINS = {"la": ("loc", 11, (9100, 9199), 1476), "rb": ("rem", 12, (9200, 9299), 1440),
          "pa": ("prx", 13, (9300, 9399), 1400)}
SERVICES = [("loc", 1, "10.100.7.1/32"), ("rem", 2, "10.100.7.2/32"), ("prx", 3, "10.100.7.3/32")]
INSTANCES = {"A": [("la", 71, "loc", "vnf-la", "yes"), ("pa", 73, "prx", "vnf-pa", "no")],
             "B": [("rb", 72, "rem", "vnf-rb", "yes")]}


class Lab:
    def __init__(self, prefix, build):
        self.prefix, self.build, self.state = prefix, build, f"{STATE_ROOT}/{prefix}"

    def ns(self, *parts):
        return "-".join(("acl", self.prefix) + parts)

    def cli(self, router, *args, in_ns=False, check=True):
        cmd = [self.build.cli, "--socket", f"{self.state}/{router}/anychaind.sock", *args]
        if in_ns:  # stats and flows read the pinned maps: the router's bpffs
            cmd = [LAB, "exec", "--prefix", self.prefix, router, "--", *cmd]
        return run(cmd, check=check)

    def json(self, router, *args, in_ns=False):
        return json.loads(self.cli(router, *args, "--json", in_ns=in_ns).stdout)

    def reasons(self, router):
        st = self.json(router, "stats", in_ns=True)
        return {x["reason"]: x["packets"] for k in ("verdicts", "drops", "notes") for x in st[k]}

    def slow(self, router):
        sp = self.json(router, "status")["slow_path"]
        return {**sp["handed_over"], **sp["notes"], **sp["vxlan_gpe"]}

    def ip(self, ns, *args):
        return run(["ip", "-n", self.ns(ns), *args])

    def xdp_prog(self, router, ifname):
        link = json.loads(run(["ip", "-n", self.ns(router), "-j", "-d", "link", "show", ifname]).stdout)[0]
        return (link.get("xdp") or {}).get("prog", {}).get("id")


@pytest.fixture(scope="class")
def lab_up(request, build):
    """The lab (slow_path.toml) under a prefix of this run and class, agents bare; down after the
    class (kept after a failure with ANYCHAIN_KEEP=1)."""
    prefix = lab_prefix(LAB_KIND_OF[request.cls.__name__])
    lab("down", "--prefix", prefix)
    rc, _, err = lab("up", TOPO, "--prefix", prefix, "--build", build.dir, "--agent-cmd",
                     f"{LAB_AGENT} run --bare {{labdir}} {{router}} {{statedir}} {build.anychaind}", timeout=300)
    if rc != 0:
        lab("down", "--prefix", prefix)
        pytest.fail(f"scripts/lab up failed ({rc}): {err.strip()[-2000:]}")
    lab_ = Lab(prefix, build)
    assert silent_agents(build.cli, lab_.state, ["A", "B"]) == [], "anychaind answers within 30 s"
    yield lab_
    if not (getattr(request.module, "ANYCHAIN_FAILED", False) and os.environ.get("ANYCHAIN_KEEP")):
        lab("down", "--prefix", prefix)


LAB_KIND_OF = {"TestFullSize": "s", "TestLateVeth": "l"}  # lab prefixes acts<pid>, actl<pid>


def configure(lab_, policies):
    """Services everywhere; the links and the source's interface attached; the routers' instances
    added (their veths attached by anychaind); with policies, the chains and their policies."""
    for r in ("A", "B"):
        for name, sid, anycast in SERVICES:
            lab_.cli(r, "service", "add", name, "--id", str(sid), "--anycast", anycast)
    attaches = (("A", "to-B", False), ("A", "h-src", True), ("A", "h-dst", False), ("B", "to-A", False))
    for r, ifname, classify in attaches:
        lab_.cli(r, "attach", ifname, "--mode", "native", *(["--classify"] if classify else []))
    for r, insts in INSTANCES.items():
        for name, iid, svc, veth, aware in insts:
            lab_.cli(r, "instance", "add", name, "--id", str(iid), "--service", svc, "--veth", veth,
                     "--capacity", "10000", "--nsh-aware", aware)
    if not policies:
        return
    for r in ("A", "B"):
        for svc, spi, (lo, hi), _ in CHAINS.values():
            lab_.cli(r, "chain", "add", f"c-{svc}", "--spi", str(spi), "--services", svc)
            for fam, dst in (("4", "10.234.0.20/30"), ("6", "fd11:2::/64")):
                lab_.cli(r, "policy", "add", f"p{fam}-{svc}", "--chain", f"c-{svc}", "--dst", dst, "--proto", "udp",
                         "--dport", f"{lo}-{hi}")


@pytest.mark.usefixtures("lab_up")
class TestFullSize:
    @pytest.fixture(scope="class")
    def net(self, lab_up):
        lab_ = lab_up
        configure(lab_, policies=True)
        for host, (addr, gw) in V6.items():
            lab_.ip(host, "addr", "add", addr, "dev", "eth0", "nodad")
            lab_.ip(host, "-6", "route", "add", "default", "via", gw)
        for r, addrs in (("A", V6_A), ("B", V6_B)):
            for ifname, addr in addrs.items():
                lab_.ip(r, "addr", "add", addr, "dev", ifname, "nodad")
        lab_.ip("B", "-6", "route", "add", "fd11:2::/64", "via", "fd11:3::1")
        assert wait_until(lambda: {i["id"] for s in lab_.json("A", "topology")["services"] for i in s["instances"]}
                          >= {71, 72, 73}, 30), "A learns B's instance from OSPF"
        st = {i["name"]: i for i in lab_.json("A", "status")["interfaces"]}
        for veth in ("vnf-la", "vnf-pa"):
            assert st[veth]["attached"] and lab_.xdp_prog("A", veth) == st[veth]["prog_id"], \
                f"anychaind attached {veth} itself: {st[veth]}"
        return lab_

    def exchange(self, lab_, dst, port, size, df, sniff=1.0):
        """Receiver at the sink, COUNT datagrams from the source; (received, icmp, deltas of A's
        fast-path reasons, deltas of A's slow-path counters)."""
        before, slow_before = lab_.reasons("A"), lab_.slow("A")
        recv = subprocess.Popen(["ip", "netns", "exec", lab_.ns("dst"), PYTHON, TRAFFIC, "recv", str(port), "8"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert json.loads(recv.stdout.readline()).get("ready")
            out = run(["ip", "netns", "exec", lab_.ns("src"), PYTHON, TRAFFIC, "send", dst, str(port), str(size),
                       "df" if df else "nodf", str(COUNT), str(sniff)], timeout=60).stdout
            sent = json.loads(out.strip().splitlines()[-1])
        finally:
            recv.terminate()
            got = [json.loads(x) for x in recv.communicate(timeout=10)[0].splitlines() if x.strip()]
        after, slow_after = lab_.reasons("A"), lab_.slow("A")
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        ds = {k: slow_after[k] - slow_before[k] for k in slow_after}
        assert sent["sent"] == COUNT
        return SimpleNamespace(got=[g for g in got if g.get("port") == port], icmp=sent["icmp"], d=d, ds=ds)

    @pytest.mark.parametrize("vnf", CHAINS)
    def test_ipv4_without_df_is_fragmented_and_delivered(self, net, vnf):
        _, _, (port, _), mtu = CHAINS[vnf]
        x = self.exchange(net, DST4, port, 1500, df=False)
        assert [g["len"] for g in x.got] == [1472] * COUNT, "every datagram reassembled at the sink"
        assert all(g["intact"] for g in x.got)
        assert x.icmp == []
        assert x.d["fwd_slow_path"] == COUNT, x.d
        assert x.ds["fragmented"] == COUNT and x.ds["fragments_sent"] == 2 * COUNT, x.ds
        assert x.d.get("fwd_local_nsh", 0) == 0 and x.d.get("fwd_remote", 0) == 0, "not counted as sent"
        assert x.d.get("drop_fib", 0) == 0 and x.d.get("drop_too_big", 0) == 0

    @pytest.mark.parametrize("vnf", CHAINS)
    def test_ipv4_with_df_gets_fragmentation_needed(self, net, vnf):
        _, _, (lo, _), mtu = CHAINS[vnf]
        x = self.exchange(net, DST4, lo + 1, 1500, df=True)
        assert x.got == [], "nothing delivered"
        assert len(x.icmp) == COUNT, x.icmp
        for e in x.icmp:
            assert (e["type"], e["code"], e["mtu"]) == (3, 4, mtu), e
            assert e["from"] == "10.234.0.17", "from the router the source sent to"
            q = e["quoted"]
            assert (q["dst"], q["dport"], q["len"], q["flags"] & 2) == (DST4, lo + 1, 1500, 2), q
        assert x.d["fwd_slow_path"] == COUNT and x.ds["icmp_sent"] == COUNT, (x.d, x.ds)
        assert x.d.get("fwd_local_nsh", 0) == 0 and x.d.get("fwd_remote", 0) == 0
        assert x.d.get("drop_fib", 0) == 0

    @pytest.mark.parametrize("vnf", CHAINS)
    @pytest.mark.parametrize("dst,port_off,headers", [(DST4, 2, 28), (DST6, 4, 48)], ids=["ipv4", "ipv6"])
    def test_packet_that_fits_takes_the_fast_path(self, net, vnf, dst, port_off, headers):
        """A packet of exactly the room the next hop has: delivered, no ICMP, no slow path."""
        _, _, (lo, _), mtu = CHAINS[vnf]
        x = self.exchange(net, dst, lo + port_off, mtu, df=True, sniff=0.5)
        assert [g["len"] for g in x.got] == [mtu - headers] * COUNT and x.icmp == []
        assert x.d.get("fwd_slow_path", 0) == 0, x.d

    @pytest.mark.parametrize("vnf", CHAINS)
    def test_ipv6_gets_packet_too_big(self, net, vnf):
        _, _, (lo, _), mtu = CHAINS[vnf]
        x = self.exchange(net, DST6, lo + 3, 1500, df=True)
        assert x.got == []
        assert len(x.icmp) == COUNT, x.icmp
        for e in x.icmp:
            assert (e["type"], e["code"], e["mtu"]) == (2, 0, mtu), e
            q = e["quoted"]
            assert (q["dst"], q["dport"], q["plen"]) == (DST6, lo + 3, 1460), q
            assert q["quoted_bytes"] <= 1280 - 48, "the error fits the IPv6 minimum MTU (RFC 4443 sec. 2.4)"
        assert x.d["fwd_slow_path"] == COUNT and x.ds["icmp_sent"] == COUNT, (x.d, x.ds)

    def test_vxlan_gpe_to_the_remote_node_fits_the_link(self, net):
        """tshark on A's link: what A sends to B for a 1500-byte datagram without DF is VXLAN-GPE
        (decoded by tshark: NSH of chain 12) carrying inner fragments, each within the link's MTU."""
        lo = CHAINS["rb"][2][0]
        fields = ["ip.len", "ip.flags.df", "nsh.spi", "nsh.si", "ip.flags.mf"]
        cap = subprocess.Popen(["ip", "netns", "exec", net.ns("A"), "tshark", "-l", "-n", "-i", "to-B", "-a",
                                "duration:30", "-f", "udp dst port 4790", "-T", "fields", "-E", "separator=;",
                                "-E", "occurrence=a", "-E", "aggregator=,", *sum((["-e", f] for f in fields), [])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        x = self.exchange(net, DST4, lo + 5, 1500, df=False, sniff=0.5)
        time.sleep(0.5)
        cap.send_signal(signal.SIGINT)
        out, err = cap.communicate(timeout=30)
        rows = [dict(zip(fields, line.split(";"))) for line in out.splitlines() if line.strip()]
        assert len(x.got) == COUNT
        assert len(rows) == 2 * COUNT, (out, err)
        for r in rows:
            outer_len, inner_len = (int(v) for v in r["ip.len"].split(","))
            assert outer_len <= 1500 and inner_len <= 1440, r
            assert r["nsh.spi"] == "12" and r["nsh.si"] == "255", r
            assert r["ip.flags.df"].split(",")[0] in ("1", "True"), "outer DF set (docs/slow-path.md)"
        assert sorted(r["ip.flags.mf"].split(",")[1] in ("1", "True") for r in rows) == [False] * COUNT + [True] * COUNT

    @pytest.mark.parametrize("df", [True, False], ids=["inner-df", "inner-nodf"])
    def test_fragmented_vxlan_gpe_reaches_the_chain(self, net, df):
        """scapy sends B -> A a VXLAN-GPE packet (chain 11, instance la) in three IPv4 fragments; A
        reassembles it for the agent, which feeds it back to the fast path: it reaches la and the
        sink. Inner 1500 bytes without DF: re-injected, then too big for la, fragmented."""
        lo = CHAINS["la"][2][0]
        port, size = (lo + 6, 1400) if df else (lo + 7, 1500)
        mac = json.loads(run(["ip", "-n", net.ns("A"), "-j", "link", "show", "to-B"]).stdout)[0]["address"]
        before, slow_before = net.reasons("A"), net.slow("A")
        recv = subprocess.Popen(["ip", "netns", "exec", net.ns("dst"), PYTHON, TRAFFIC, "recv", str(port), "5"],
                                stdout=subprocess.PIPE, text=True)
        assert json.loads(recv.stdout.readline()).get("ready")
        out = run(["ip", "netns", "exec", net.ns("B"), PYTHON, TRAFFIC, "gpe", "to-A", mac, "10.255.7.2",
                   "10.255.7.1", "71", "11", "255", "10.234.0.18", DST4, str(port), str(size), "600",
                   "df" if df else "nodf"]).stdout
        sent = json.loads(out.strip().splitlines()[-1])
        got = [json.loads(x) for x in recv.communicate(timeout=15)[0].splitlines() if x.strip()]
        after, slow_after = net.reasons("A"), net.slow("A")
        assert sent["fragments"] == 3
        assert got == [{"port": port, "family": 4, "len": size - 28, "intact": True}]
        assert after["pass_gpe_fragment"] - before.get("pass_gpe_fragment", 0) == 3
        assert slow_after["gpe_reinjected"] - slow_before["gpe_reinjected"] == 1
        assert slow_after["gpe_rejected"] == slow_before["gpe_rejected"]
        assert after["from_slow_path"] - before.get("from_slow_path", 0) == 1
        if not df:
            assert slow_after["fragmented"] - slow_before["fragmented"] == 1


    def test_config_changes_log_changes_not_state(self, net):
        """About twenty CLI changes (services, instances, chains, policies) reload the config each
        time; each interface's attachment is logged once, not once per change."""
        with open(f"{net.state}/A/agent.log") as f:
            log = f.read()
        for ifname in ("to-B", "h-src", "vnf-la", "vnf-pa"):
            assert log.count(f"attached to {ifname} ") == 1, ifname
            assert log.count(f"{ifname}: libxdp's dispatcher is not available") <= 1, ifname


@pytest.mark.usefixtures("lab_up")
class TestLateVeth:
    """The daemon attaches an instance's veth itself, also one that appears after the instance
    was added, and says when it cannot."""

    @pytest.fixture(scope="class")
    def added(self, lab_up):
        configure(lab_up, policies=False)
        lab_up.cli("A", "instance", "add", "late", "--id", "77", "--service", "loc", "--veth", "vlate",
                   "--capacity", "100")
        return lab_up

    @staticmethod
    def warnings(lab_):
        return [w for w in lab_.json("A", "status")["warnings"] if "vlate" in w]

    def test_missing_veth_is_a_warning(self, added):
        assert any("does not exist" in w for w in self.warnings(added)), self.warnings(added)

    def test_veth_created_later_gets_the_program(self, added):
        # the VNF's end in a namespace of its own, like a container's
        added.ip("A", "link", "add", "vlate", "mtu", "1600", "type", "veth", "peer", "name", "late0", "mtu", "1600",
                 "netns", added.ns("A", "la"))
        added.ip("A", "link", "set", "vlate", "up")
        assert wait_until(lambda: added.xdp_prog("A", "vlate"), 10), "anychaind attaches vlate within 10 s"
        port = next(i for i in added.json("A", "status")["interfaces"] if i["name"] == "vlate")
        assert port["attached"] and port["prog_id"] == added.xdp_prog("A", "vlate")
        assert self.warnings(added) == []

    def test_removed_program_is_reported_and_put_back(self, added):
        assert added.xdp_prog("A", "vlate")
        added.ip("A", "link", "set", "vlate", "xdp", "off")
        assert added.xdp_prog("A", "vlate") is None
        w = self.warnings(added)  # before the daemon's next check (monitor interval)
        assert w == [] or any("has no anychain XDP program" in x for x in w), w
        # attached again: where libxdp has no dispatcher (this kernel) it is the program the agent
        # already loaded, the same id (docs/fastpath.md); with a dispatcher a new one
        assert wait_until(lambda: added.xdp_prog("A", "vlate") is not None, 15), "attached again"
        port = next(i for i in added.json("A", "status")["interfaces"] if i["name"] == "vlate")
        assert port["attached"] and port["prog_id"] == added.xdp_prog("A", "vlate"), port
        with open(f"{added.state}/A/agent.log") as f:
            assert "vlate (veth of instance late): anychain's program was removed from it by someone else" in f.read()
        assert wait_until(lambda: self.warnings(added) == [], 5)

    def test_mtu_without_room_for_nsh_is_a_warning(self, added):
        run(["ip", "-n", added.ns("A", "la"), "link", "set", "late0", "mtu", "1500"])
        want = "leaves room for inner packets of 1476"
        assert wait_until(lambda: any(want in w for w in self.warnings(added)), 15), self.warnings(added)

    def test_program_goes_with_the_instance(self, added):
        added.cli("A", "instance", "remove", "late")
        assert wait_until(lambda: added.xdp_prog("A", "vlate") is None, 10)
        assert not any(i["name"] == "vlate" for i in added.json("A", "status")["interfaces"])
