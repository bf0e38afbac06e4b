"""The built-in NAT's shared reply table (`nat_shared`, docs/state.md 4.3) between two instances on
two FRR nodes: a flow's replies that reach the instance which did not map it are translated like
on the one that did (asymmetric routes, papers/002 Fig. 3.2). pytest; root only (exit 77 otherwise).

The lab is scripts/topologies/nf-chain.toml (src -- A -- B -- C -- D -- dst), bare agents
configured through the CLI and a `state:` section. Service `nat` has an instance on B (nat1) and
on C (nat2), one pool (192.0.2.10, ports 20000-20999, each instance its own block). A classifies
UDP to the sink into a one-hop chain (outbound: A's WCMP picks nat1 or nat2 per flow); D
classifies UDP to the NAT's external address into another one-hop chain of the same service
(the replies: D's WCMP picks per reply flow, whose hash has nothing to do with the outbound one's).
So about half of the replies reach the instance that did not make the mapping. The client in src
sends one datagram on each of FLOWS sockets; the server in dst records where each came from (the
NAT's external address and port); once every mapping is in both replicas' shared table, the server
answers each; the client's sockets must get every answer, from the sink's address and port, with
the payload answered (the kernel's UDP stack checks addresses and checksums), and tshark in src
sees the same. The instance that did not map a flow counts its reply as `nat_in_shared`.
"""
import json
import os
import subprocess
import time
from types import SimpleNamespace

import pytest

import labkit
import statekit
from statekit import build, lab  # noqa: F401 (fixtures)
from labkit import PYTHON, run, wait_until

LAB_KIND = "j"  # lab prefix actj<pid>
LAB_TOPO = os.path.join(labkit.TOPOS, "nf-chain.toml")
LAB_AGENT_ARGS = ["--bare"]
TOPO = labkit.resolved_topology(LAB_TOPO)
ROUTERS = sorted(TOPO["routers"])
SRC = [h for h in TOPO["hosts"] if h["kind"] == "source"][0]
SINK = [h for h in TOPO["hosts"] if h["kind"] == "sink"][0]
SRC_ADDR = SRC["host_addr"].split("/")[0]
SINK_ADDR = SINK["host_addr"].split("/")[0]
SERVICE = ("nat", 3, "10.100.6.3/32")
NAT_ADDR = "192.0.2.10"
# name -> (router, instance id, its block of the pool: instances of one service use disjoint
# blocks, docs/state.md 4.3; the default block per instance is not built, see there)
INSTANCES = {"nat1": ("B", 31, "20000-20499"), "nat2": ("C", 32, "20500-20999")}
FLOWS = 16
SINK_PORT = 9000


@pytest.fixture(scope="module")
def cli(lab, build):
    return statekit.Cli(lab, build, INSTANCES)


@pytest.fixture(scope="module")
def setup(cli, lab):
    calls = statekit.configure(cli, lab, TOPO, SERVICE, [("out", 11), ("back", 12)],
                               [("to-sink", "out", SINK["subnet"]), ("replies", "back", f"{NAT_ADDR}/32")])
    for n, (r, iid, ports) in INSTANCES.items():
        calls.append(cli(r, "instance", "add", n, "--id", str(iid), "--service", SERVICE[0], "--veth", f"nf-{n}",
                         "--capacity", "100000", "--nf", "nat", "--nat-address", NAT_ADDR, "--nat-ports", ports))
    ready = wait_until(lambda: all((cli.replica(n) or {}).get("state") == "ready" for n in INSTANCES), 30)

    def learnt():
        return all({31, 32} <= {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]}
                   for r in ROUTERS)
    return SimpleNamespace(calls=calls, ready=ready, learnt=wait_until(learnt, 45))


def test_configured_with_the_cli(setup, cli):
    bad = statekit.failed_calls(setup.calls)
    assert not bad, bad
    assert setup.ready, {n: cli.replica(n) for n in INSTANCES}
    assert setup.learnt


# The server: records the source of FLOWS datagrams, prints them, answers each on "go".
SERVER = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(30)
got = []
while len(got) < int(sys.argv[2]):
    data, peer = s.recvfrom(2048)
    got.append((peer, data))
print(json.dumps([[p[0], p[1], d.decode()] for p, d in got]), flush=True)
sys.stdin.readline()
for peer, data in got:
    s.sendto(b"re:" + data, peer)
print("sent", flush=True)
"""

# The client: FLOWS sockets, one datagram each ("<prefix><i>"); prints their ports; then what each
# received. With a fifth argument (ports, comma separated) socket i is bound to the i-th port: the
# same flows again.
CLIENT = """
import json, socket, sys
dst, port, n, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bind = [int(x) for x in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0] * n
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", bind[i]))
    s.sendto(f"{prefix}{i}".encode(), (dst, port))
    socks.append(s)
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
out = {}
for i, s in enumerate(socks):
    s.settimeout(10)
    try:
        data, peer = s.recvfrom(2048)
        out[i] = [peer[0], peer[1], data.decode()]
    except socket.timeout:
        out[i] = None
print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def exchanged(setup, cli, lab):
    ns = lab.ns
    capture = f"{lab.state}/nat-client.pcap"
    tshark = subprocess.Popen(["ip", "netns", "exec", ns(SRC["name"]), "tshark", "-q", "-i", SRC["host_if"], "-c",
                               str(FLOWS), "-f", f"udp and src port {SINK_PORT}", "-w", capture], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    # tshark says "Capturing on" once it listens
    line = ""
    while "Capturing on" not in line and tshark.poll() is None:
        line = tshark.stderr.readline()
    server = subprocess.Popen(["ip", "netns", "exec", ns(SINK["name"]), PYTHON, "-c", SERVER, str(SINK_PORT),
                               str(FLOWS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # the server binds; a datagram before that is refused (the client's wait then fails)
    client = subprocess.Popen(["ip", "netns", "exec", ns(SRC["name"]), PYTHON, "-c", CLIENT, SINK_ADDR,
                               str(SINK_PORT), str(FLOWS), "flow"], stdout=subprocess.PIPE, text=True)
    ports = json.loads(client.stdout.readline())
    seen = json.loads(server.stdout.readline())
    # every mapping in both replicas' shared tables before the replies go
    externals = {(a, p) for a, p, _ in seen}

    def shared_everywhere():
        return all(externals <= {(e["external"], e["external_port"]) for e in cli.state(n)["nat"]["shared"]}
                   for n in INSTANCES)
    t0 = time.monotonic()
    replicated = wait_until(shared_everywhere, 10, 0.05)
    t_rep = time.monotonic() - t0
    before = {n: cli.state(n) for n in INSTANCES}
    server.stdin.write("go\n")
    server.stdin.flush()
    got = json.loads(client.stdout.read().strip().splitlines()[-1])
    server.communicate(timeout=10)
    client.wait(timeout=10)
    try:  # it exits after FLOWS packets (once it read them from the kernel's capture buffer)
        tshark.wait(timeout=15)
    except subprocess.TimeoutExpired:
        tshark.terminate()
        tshark.wait(timeout=10)
    pkts = run(["tshark", "-r", capture, "-T", "fields", "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst",
                "-e", "udp.dstport", "-e", "data.data"]).stdout
    after = {n: cli.state(n) for n in INSTANCES}
    crossed = {n: after[n]["counters"].get("nat_in_shared", 0) - before[n]["counters"].get("nat_in_shared", 0)
               for n in INSTANCES}
    print(f"\nnat: {len(externals)} mappings in both replicas {t_rep * 1000:.0f} ms after the server had them; "
          f"replies translated from the other's mapping: {crossed}")
    return SimpleNamespace(ports=ports, seen=seen, replicated=replicated, before=before, got=got, after=after,
                           tshark=line, pkts=pkts.splitlines())


def test_outbound_is_translated_by_both_instances(exchanged):
    assert len(exchanged.seen) == FLOWS
    assert all(a == NAT_ADDR and 20000 <= p <= 20999 for a, p, _ in exchanged.seen), exchanged.seen
    assert len({p for _, p, _ in exchanged.seen}) == FLOWS
    new = {n: exchanged.after[n]["counters"].get("nat_new", 0) for n in INSTANCES}
    assert sum(new.values()) == FLOWS and all(v > 0 for v in new.values()), new
    for n, (_, _, ports) in INSTANCES.items():
        lo, hi = map(int, ports.split("-"))
        assert all(lo <= m["external_port"] <= hi for m in exchanged.after[n]["nat"]["mappings"]), n


def test_mappings_replicate_to_the_other_instance(exchanged):
    assert exchanged.replicated, {n: exchanged.before[n]["nat"]["shared"] for n in INSTANCES}


def test_every_reply_is_untranslated_at_either_instance(exchanged):
    bad = {i: r for i, r in exchanged.got.items() if r != [SINK_ADDR, SINK_PORT, f"re:flow{i}"]}
    assert not bad, bad
    # the capture at the client (tshark): every reply to one of its ports, from the sink, the
    # payload answered to that port's datagram
    rows = [p.split("\t") for p in exchanged.pkts]
    assert len(rows) == FLOWS, (exchanged.tshark, exchanged.pkts)
    by_port = {int(r[3]): r for r in rows}
    for i, port in enumerate(exchanged.ports):
        r = by_port[port]
        assert r[:3] == [SINK_ADDR, str(SINK_PORT), SRC_ADDR], r
        assert bytes.fromhex(r[4]) == f"re:flow{i}".encode(), r


def test_replies_crossed_to_the_instance_that_did_not_map_them(exchanged):
    def delta(n, k):
        return exchanged.after[n]["counters"].get(k, 0) - exchanged.before[n]["counters"].get(k, 0)
    crossed = {n: delta(n, "nat_in_shared") for n in INSTANCES}
    inbound = {n: delta(n, "nat_in") for n in INSTANCES}  # nat_in_shared is a part of nat_in
    assert sum(inbound.values()) == FLOWS, (crossed, inbound)
    assert sum(crossed.values()) > 0, (crossed, inbound)
    assert all(delta(n, "nat_rev_miss") == 0 for n in INSTANCES)


def test_disjoint_blocks_are_not_reported_as_overlapping(exchanged, cli):
    # each agent reads its NAT's block from the NF's own map and checks the other's mappings in
    # its replica of nat_shared once a second (docs/state.md 4.3): both blocks' mappings are in
    # both replicas by now, and none of the other instance's lies inside one's own block
    pools = {}

    def swept():
        pools.update({n: (cli.replica(n) or {}).get("nat_pool") or {} for n in INSTANCES})
        return all(p.get("sweeps", 0) >= 2 for p in pools.values())
    assert wait_until(swept, 10), pools
    for n, (_, _, ports) in INSTANCES.items():
        assert pools[n]["block"] == ports, pools
        assert pools[n]["overlaps"] == [], pools


@pytest.fixture(scope="module")
def moved(exchanged, cli, lab):
    """nat1 deleted on B (`anychain instance del`): A's placements of its flows go to nat2 by WCMP.
    The same FLOWS flows again (the client's sockets bound to the same source ports), then the
    server's answers: nat2 has no mapping of its own for nat1's flows, only nat1's entries in its
    replicas of the shared tables (docs/state.md 4.3: `nat_fwd` outbound, `nat_shared` inbound)."""
    ns = lab.ns
    of_nat1 = {(m["external"], m["external_port"]) for m in exchanged.after["nat1"]["nat"]["mappings"]}
    deleted = cli("B", "instance", "del", "nat1")

    def gone_at_a():
        return all(i["id"] != 31 for s in cli.json("A", "topology")["services"] for i in s["instances"])
    withdrawn = wait_until(gone_at_a, 20)
    before = cli.state("nat2")
    server = subprocess.Popen(["ip", "netns", "exec", ns(SINK["name"]), PYTHON, "-c", SERVER, str(SINK_PORT),
                               str(FLOWS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    labkit.wait_udp_bound(ns(SINK["name"]), SINK_PORT)
    client = subprocess.Popen(["ip", "netns", "exec", ns(SRC["name"]), PYTHON, "-c", CLIENT, SINK_ADDR,
                               str(SINK_PORT), str(FLOWS), "again", ",".join(map(str, exchanged.ports))],
                              stdout=subprocess.PIPE, text=True)
    ports = json.loads(client.stdout.readline())
    seen = json.loads(server.stdout.readline())
    server.stdin.write("go\n")
    server.stdin.flush()
    got = json.loads(client.stdout.read().strip().splitlines()[-1])
    server.communicate(timeout=10)
    client.wait(timeout=10)
    return SimpleNamespace(of_nat1=of_nat1, deleted=deleted, withdrawn=withdrawn, ports=ports, seen=seen, got=got,
                           before=before, after=cli.state("nat2"))


def test_a_flow_moved_to_the_other_instance_leaves_with_the_first_ones_mapping(moved, exchanged):
    """Every flow sends again from the same source port; the server sees each from the external
    address and port it saw the first time, whichever instance made the mapping: nat2 translated
    nat1's flows with nat1's bytes from its replica (`nat_out_shared`), taking no port or mapping of
    its own, and their replies through nat2 reach the client untranslated."""
    k = moved
    assert not statekit.failed_calls([k.deleted]), k.deleted
    assert k.withdrawn, "A still places flows on nat1"
    assert k.of_nat1, "nat1 had mapped some of the flows"
    assert k.ports == exchanged.ports
    first = {d: (a, p) for a, p, d in exchanged.seen}
    again = {d: (a, p) for a, p, d in k.seen}
    assert len(again) == FLOWS
    moved_from = {d.replace("flow", "again"): ext for d, ext in first.items()}
    assert again == moved_from, (again, moved_from)
    out_shared = k.after["counters"].get("nat_out_shared", 0) - k.before["counters"].get("nat_out_shared", 0)
    new = k.after["counters"].get("nat_new", 0) - k.before["counters"].get("nat_new", 0)
    assert out_shared == len(k.of_nat1) and new == 0, (out_shared, new, len(k.of_nat1))
    assert len(k.after["nat"]["mappings"]) == len(k.before["nat"]["mappings"]), "nat2 made no mapping of its own"
    bad = {i: r for i, r in k.got.items() if r != [SINK_ADDR, SINK_PORT, f"re:again{i}"]}
    assert not bad, bad
