"""Shared-state replication between instances on different nodes through their anychaind, with
real FRR (pytest; docs/state.md, docs/agent.md "Shared state replication"). Root only (exit 77
otherwise).

The lab is scripts/topologies/nf-chain.toml (A -- B -- C -- D), bare agents configured through the
CLI, plus a `state:` section written into each agent's file and loaded with `anychain reload`.
One instance of service `ids` on each of B, C and D; the stateful program behind each is the test
XDP program (tests/state/crdt_test.bpf.c) run by anychain-crdt-test-nf in the router's namespace,
which publishes its maps in the agent's nf.run_dir the way anychain-nf does. Every agent learns
the members from OSPF (the VNF LSAs), so nothing names the peers:
1. B and C replicate; D's instance starts later and joins from a snapshot before it is announced;
2. a value added by one instance's packet path shows in the others' merged cells within 1 s;
3. a message signed with a key nobody holds (forged) and a genuine message sent twice (replayed),
   built here by hand after docs/state.md 3.8 and sent from router A, are refused and counted in
   the receiver's status, and do not change its cells;
4. the keyring rotates without a restart (reload), replication goes on with the new key.
"""
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import time
from types import SimpleNamespace

import pytest
import yaml

import labkit
from labkit import run, wait_until

LAB_KIND = "r"  # lab prefix actr<pid>
LAB_TOPO = os.path.join(labkit.TOPOS, "nf-chain.toml")
LAB_AGENT_ARGS = ["--bare"]
TOPO = labkit.resolved_topology(LAB_TOPO)
ROUTERS = sorted(TOPO["routers"])
SERVICE = ("ids", 1, "10.100.6.1/32")
# name -> (router, instance id)
INSTANCES = {"ids1": ("B", 21), "ids2": ("C", 22), "ids3": ("D", 23)}
# The interface each router runs the fast path on, towards the others.
# C's datagrams from D arrive on to-D, which has no XDP: the stack gives them to the UDP socket.
XSK_IF = {"B": "to-C", "C": "to-B", "D": "to-C"}
KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 148))
PORT = 4795
DELAY_BOUND_S = 1.0


@pytest.fixture(scope="module")
def build(build):
    helper = os.path.join(build.dir, "tests", "state", "anychain-crdt-test-nf")
    if not os.access(helper, os.X_OK):
        pytest.fail(f"{helper} not built")
    return SimpleNamespace(**vars(build), helper=helper)


@pytest.fixture(scope="module")
def lab(paper_lab):
    """nf-chain.toml (LAB_TOPO) up with bare agents (conftest's paper_lab)."""
    return paper_lab


class Cli:
    def __init__(self, lab, build):
        self.lab, self.build = lab, build

    def __call__(self, router, *args):
        rc, out, err = labkit.anychain(self.build.cli, self.lab.state, router, *args)
        return SimpleNamespace(args=args, rc=rc, out=out, err=err)

    def json(self, router, *args):
        return labkit.anychain_json(self.build.cli, self.lab.state, router, *args)

    def replica(self, name):
        """The instance's replication in its agent's status (None while it does not replicate)."""
        st = self.json(INSTANCES[name][0], "status").get("state", {})
        for e in st.get("instances", []):
            if e["name"] == name:
                return e
        return None


def set_state_section(lab, cli, router, keys, send_key):
    """Write the state: section into the router's config file and reload it."""
    path = f"{lab.state}/{router}/anychaind.yaml"
    with open(path) as f:
        c = yaml.safe_load(f)
    c["state"] = {"port": PORT, "keys": [{"id": i, "key": k.hex()} for i, k in keys], "send_key": send_key}
    with open(path, "w") as f:
        yaml.safe_dump(c, f)
    return cli(router, "reload")


class Nf:
    """anychain-crdt-test-nf in a router's namespace: add / value over its stdin."""

    def __init__(self, lab, build, router, name, iid):
        run_dir = f"{lab.state}/{router}/nf"
        os.makedirs(run_dir, exist_ok=True)
        self.p = subprocess.Popen(["ip", "netns", "exec", lab.ns(router), build.helper, run_dir, name, str(iid)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("published"), line

    def cmd(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def add(self, index, amount):
        assert self.cmd(f"add {index} {amount}") == "ok"

    def value(self, index):
        return int(self.cmd(f"value {index}"))

    def stop(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=10)


def message(key_id, key, service, digest, sender, incarnation, receiver, seq):
    """An empty DELTA (a keepalive: from = to = 0) after docs/state.md 3.8, signed with key."""
    now_us = int(time.time() * 1e6)
    body = struct.pack(">QQHHHH", 0, 0, 0, 0, 0, 0)
    hdr = struct.pack(">BBBBHHIIQIIQQQQQII", 1, 1, key_id, 0, service, len(body), digest, sender, incarnation,
                      receiver, 0, 0, seq, now_us, int(time.monotonic() * 1e6), 0, 0, 0)
    assert len(hdr) == 80
    tag = hmac.new(key, hdr + body, hashlib.sha256).digest()[:16]
    return hdr + body + tag


def add_instance(cli, lab, n):
    """The instance on its router: its veth a pair in the router's namespace, both ends up."""
    r, iid = INSTANCES[n]
    run(["ip", "netns", "exec", lab.ns(r), "ip", "link", "add", f"sa-{n}", "type", "veth", "peer", "name", f"sa-{n}p"])
    for dev in (f"sa-{n}", f"sa-{n}p"):
        run(["ip", "netns", "exec", lab.ns(r), "ip", "link", "set", dev, "up"])
    return cli(r, "instance", "add", n, "--id", str(iid), "--service", SERVICE[0], "--veth", f"sa-{n}",
               "--capacity", "1000")


def announced(cli, iid):
    return all(iid in {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]} for r in ROUTERS)


@pytest.fixture(scope="module")
def cli(lab, build):
    return Cli(lab, build)


@pytest.fixture(scope="module")
def setup(cli, lab, build):
    calls = []
    name, sid, anycast = SERVICE
    for r, i in XSK_IF.items():
        calls.append(cli(r, "attach", i, "--mode", "native"))
    for r in ROUTERS:
        calls.append(cli(r, "service", "add", name, "--id", str(sid), "--anycast", anycast))
        calls.append(set_state_section(lab, cli, r, [(1, KEY1)], 1))
    nfs = {}
    for n in ("ids1", "ids2"):
        nfs[n] = Nf(lab, build, INSTANCES[n][0], n, INSTANCES[n][1])
        calls.append(add_instance(cli, lab, n))
    ready = wait_until(lambda: all((cli.replica(n) or {}).get("state") == "ready" for n in ("ids1", "ids2")), 30)
    yield SimpleNamespace(calls=calls, nfs=nfs, ready=ready)
    for nf in nfs.values():
        nf.stop()


def test_configured(setup):
    bad = [f"{' '.join(c.args)}: exit {c.rc}: {c.err}" for c in setup.calls if c.rc != 0]
    assert not bad, bad


def test_two_instances_replicate(setup, cli):
    assert setup.ready, {n: cli.replica(n) for n in ("ids1", "ids2")}
    b, c = setup.nfs["ids1"], setup.nfs["ids2"]
    b.add(3, 5)
    t0 = time.monotonic()
    assert wait_until(lambda: c.value(3) == 5, 5, interval=0.01), c.value(3)
    assert time.monotonic() - t0 < DELAY_BOUND_S
    c.add(3, 7)
    t0 = time.monotonic()
    assert wait_until(lambda: b.value(3) == 12, 5, interval=0.01), b.value(3)
    assert time.monotonic() - t0 < DELAY_BOUND_S
    peers = cli.replica("ids1")["peers"]
    assert [p["id"] for p in peers if p["member"]] == [22], peers
    # lagging: an RTT above twice its minimum, which a loaded 2-core host gives any peer
    assert peers[0]["state"] in ("active", "lagging") and peers[0]["srtt_us"] > 0, peers
    # anychain state NAME: the replication as anychaind reports it (not a built-in NF here)
    st = cli.json("B", "state", "ids1")
    assert st["replication"]["state"] == "ready" and st["replication"]["peers"], st
    text = cli("B", "state", "ids1")
    assert text.rc == 0 and "replication: ready" in text.out and "10.255.6.3:4795" in text.out, text
    # AF_XDP on the one fast-path interface (copy mode on veth), both ways, and the fast path
    # redirected the replication port into it
    for r in ("B", "C"):
        st = cli.json(r, "status")["state"]
        t = st["transports"]
        assert len(t) == 1 and t[0]["interface"] == XSK_IF[r] and t[0]["mode"].startswith("afxdp"), st
        assert t[0]["rx_frames"] > 0 and t[0]["tx_frames"] > 0, t
        reasons = labkit.dp_counters(cli.build.cli, cli.lab.state, r)
        assert reasons.get("fwd_state_xsk", 0) > 0, reasons


def test_a_late_instance_joins_from_a_snapshot_before_it_is_announced(setup, cli, lab, build):
    # the process first (as anychain-nf publishes before its instance is alive), then the instance
    setup.nfs["ids3"] = d = Nf(lab, build, "D", "ids3", 23)
    res = add_instance(cli, lab, "ids3")
    assert res.rc == 0, res.err
    assert wait_until(lambda: (cli.replica("ids3") or {}).get("state") == "ready", 15), cli.replica("ids3")
    assert cli.replica("ids3")["ready_how"] == "joined from a snapshot", cli.replica("ids3")
    assert d.value(3) == 12
    # announced once joined: every agent learns it
    assert wait_until(lambda: announced(cli, 23), 30)
    d.add(4, 2)
    assert wait_until(lambda: setup.nfs["ids1"].value(4) == 2 and setup.nfs["ids2"].value(4) == 2, 5,
                      interval=0.01)


def test_forged_and_replayed_messages_are_refused_and_counted(setup, cli, lab):
    r = cli.replica("ids2")
    before = r["rejected"]
    endpoint = cli.json("C", "status")["agent"]["nsh_endpoint"]
    forged = message(1, b"\x55" * 32, SERVICE[1], r["schema_digest"], 99, 1, 22, 1)
    genuine = message(1, KEY1, SERVICE[1], r["schema_digest"], 99, 1, 22, 2)
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for h in sys.argv[3:]: s.sendto(bytes.fromhex(h),(sys.argv[1],int(sys.argv[2])))\n")
    run(["ip", "netns", "exec", lab.ns("A"), "python3", "-c", code, endpoint, str(PORT), forged.hex(), genuine.hex(),
         genuine.hex()])

    def counted():
        rej = cli.replica("ids2")["rejected"]
        return rej["bad_tag"] >= before["bad_tag"] + 1 and rej["replay"] >= before["replay"] + 1
    assert wait_until(counted, 5), cli.replica("ids2")["rejected"]
    assert cli.replica("ids2")["counters"]["not_member"] >= 1  # the genuine one: signed, not a member
    assert setup.nfs["ids2"].value(3) == 12


def test_key_rotation_without_restart(setup, cli, lab):
    for step in ([(1, KEY1), (2, KEY2)], 1), ([(1, KEY1), (2, KEY2)], 2), ([(2, KEY2)], 2):
        for r in ROUTERS:
            res = set_state_section(lab, cli, r, *step)
            assert res.rc == 0, res.err
    setup.nfs["ids1"].add(5, 9)
    assert wait_until(lambda: setup.nfs["ids2"].value(5) == 9 and setup.nfs["ids3"].value(5) == 9, 5, interval=0.01)
    assert cli.replica("ids2")["accepted_by_key"].get("2", 0) > 0
