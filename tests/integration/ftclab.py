"""Helpers of the FTC lab tests (ftc_lab_test.py, ftc_wcmp_lab_test.py; docs/ftc.md): the lab
scripts/topologies/nf-chain.toml (src -- A -- B -- C -- D -- dst) with each anychaind's file made
of lab-agent's bare one plus an FTC chain fw -> mon -> nat (f = 1, `ftc: true`, policy
`md_type: 2`) and the router's built-in NF instances; the FTC control files anychaind writes
(docs/nf.md "FTC control") checked against the chain; traffic from src to the sink; reading the NFs' head
and replica stores back from `anychain state`, and the check every packet the sink received
must pass: its flow's updates held f + 1 times."""
import os
import shlex
import shutil
import tempfile
from types import SimpleNamespace

import pytest
import yaml

import labkit
from labkit import wait_until

TOPO_FILE = os.path.join(labkit.TOPOS, "nf-chain.toml")
TOPO = labkit.resolved_topology(TOPO_FILE)
ROUTERS = sorted(TOPO["routers"])
SRC = [h for h in TOPO["hosts"] if h["kind"] == "source"][0]
SINK = [h for h in TOPO["hosts"] if h["kind"] == "sink"][0]
SRC_ADDR = SRC["host_addr"].split("/")[0]
SINK_ADDR = SINK["host_addr"].split("/")[0]
NAT_ADDR = "192.0.2.10"
F = 1
SPI = 9
HOLD_TIMEOUT_MS = 1000
SERVICES = [("fw", 1, "10.100.6.1/32"), ("mon", 2, "10.100.6.2/32"), ("nat", 3, "10.100.6.3/32")]
FW_RULE = {"firewall": {"default": "pass", "rules": [{"action": "drop", "proto": "udp", "dport": "9001"}]}}



def left(port):
    """Packets that left the chain at an egress buffer's port (anychain status, ftc_egress.ports):
    those the buffer released and those the chain's end released itself because the buffer's
    commit vector already covered their logs (docs/ftc.md 5.1)."""
    return port["released"] + port["released_at_chain_end"]

def nat_section(ports):
    return {"nat": {"address": NAT_ADDR, "ports": ports}}


class Chain:
    """nfs: name -> (router, instance id, service, kind, the instance's section in the file);
    f: the chain's FTC f (each update held f + 1 times); services: the chain's (name, id,
    anycast) in order, fw -> mon -> nat and any replica services after them; standbys: name ->
    (router, the instance id it stands by for, service, kind, its section), entries with
    `standby_for` (docs/ftc.md 7.3); topo_file: the lab's topology (nf-chain.toml unless
    given), with one source and one sink."""

    def __init__(self, nfs, f=F, services=SERVICES, standbys=None, topo_file=TOPO_FILE):
        self.nfs, self.f, self.services = nfs, f, services
        self.svcs = [s[0] for s in services]
        self.standbys = standbys or {}
        self.topo_file = topo_file
        self.topo = TOPO if topo_file == TOPO_FILE else labkit.resolved_topology(topo_file)
        self.routers = sorted(self.topo["routers"])
        self.src = [h for h in self.topo["hosts"] if h["kind"] == "source"][0]
        self.sink = [h for h in self.topo["hosts"] if h["kind"] == "sink"][0]

    def egress(self):
        """The NF whose veth the egress buffer runs on: the chain's last hop."""
        last, = self.of_service(self.svcs[-1])
        return last

    def path(self, nat):
        """service -> the instance of a flow's path, for a flow that the NAT `nat` served."""
        return {svc: nat if svc == "nat" else self.of_service(svc)[0] for svc in self.svcs}

    def holders(self, path, head):
        """The instances after `head` on a flow's path (`path()`) that hold its records: the next
        f hops round the chain."""
        i = self.svcs.index(self.nfs[head][2])
        return [path[self.svcs[(i + k) % len(self.svcs)]] for k in range(1, self.f + 1)]

    def of_service(self, svc):
        return [n for n, v in self.nfs.items() if v[2] == svc]

    def router_config(self, router, key_file=None):
        """What is added to lab-agent's bare file of `router`: the fast path on every interface
        (the source's classifying), services, the FTC chain, its MD2 policy, the router's NFs;
        with key_file, the FTC channel's key (without one the agents open no channel: the
        buffer's FEEDBACK never reaches the forwarder and nothing is released)."""
        ifs = [{"name": i["name"], "mode": "native",
                **({"classify": True} if router == self.src["router"] and i["name"] == self.src["router_if"] else {})}
               for i in self.topo["routers"][router]["interfaces"]]
        insts = [{"name": n, "id": iid, "service": svc, "veth": f"nf-{n}", "capacity": 100000, "nf": kind, **extra}
                 for n, (r, iid, svc, kind, extra) in self.nfs.items() if r == router]
        insts += [{"name": n, "standby_for": of, "service": svc, "veth": f"nf-{n}", "capacity": 100000, "nf": kind,
                   **extra} for n, (r, of, svc, kind, extra) in self.standbys.items() if r == router]
        return {
            "interfaces": ifs,
            "services": [{"name": n, "id": i, "anycast": a} for n, i, a in self.services],
            "ftc": {"f": self.f, "hold_timeout_ms": HOLD_TIMEOUT_MS, **({"key_file": key_file} if key_file else {})},
            "chains": [{"name": "ftcchain", "spi": SPI, "services": self.svcs, "ftc": True}],
            "policies": [{"name": "to-sink", "chain": "ftcchain", "dst": self.sink["subnet"], "proto": "udp",
                          "md_type": 2}],
            "instances": insts,
        }

    def control(self, name):
        """What anychaind must write into an instance's FTC control file (daemon/ftc_peers.h):
        f, as peers every instance of the services within f hops either way round the chain,
        as successors the instances of the next f services (nearest first, then by id)."""
        svcs = self.svcs
        i = svcs.index(self.nfs[name][2])
        ids = lambda svc: sorted(self.nfs[n][1] for n in self.of_service(svc))  # noqa: E731
        succ = [x for k in range(1, self.f + 1) for x in ids(svcs[(i + k) % len(svcs)])]
        pred = [x for k in range(1, self.f + 1) for x in ids(svcs[(i - k) % len(svcs)])]
        return {"f": self.f, "peers": sorted(set(succ + pred) - {self.nfs[name][1]}), "successors": succ}


def lab_up(chain, kind, build, keyed=False):
    """nf-chain.toml up under act<kind><pid>; each agent's file is lab-agent's bare one plus
    chain.router_config(), with one FTC channel key for every agent when keyed. Returns
    (lab, None) or (None, why)."""
    prefix = labkit.lab_prefix(kind)
    labkit.lab("down", "--prefix", prefix)
    frag = tempfile.mkdtemp(prefix="anychain-ftc-lab-")
    key_file = None
    if keyed:
        key_file = f"{frag}/ftc.key"
        with open(key_file, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    for r in chain.routers:
        with open(f"{frag}/{r}.yaml", "w") as f:
            yaml.safe_dump(chain.router_config(r, key_file), f)
    script = (f"{labkit.LAB_AGENT} config --bare {{labdir}} {{router}} > {{statedir}}/anychaind.yaml && "
              f"cat {frag}/{{router}}.yaml >> {{statedir}}/anychaind.yaml && "
              f"exec {build.anychaind} --config {{statedir}}/anychaind.yaml --socket {{statedir}}/anychaind.sock")
    rc, _, err = labkit.lab("up", chain.topo_file, "--prefix", prefix, "--agent-cmd", f"/bin/sh -c {shlex.quote(script)}")
    lab = SimpleNamespace(prefix=prefix, state=f"{labkit.STATE_ROOT}/{prefix}", frag=frag,
                          ns=lambda *parts: "-".join(("acl", prefix) + parts))
    if rc != 0:
        lab_down(lab)
        return None, f"scripts/lab up failed ({rc}): {err.strip()[-2000:]}"
    silent = labkit.silent_agents(build.cli, lab.state, chain.routers)
    if silent:
        lab_down(lab)
        return None, f"anychaind does not answer on its socket 30 s after the lab came up on {', '.join(silent)}"
    return lab, None


def lab_down(lab):
    """The lab down, and the directory of its agents' file fragments and key (which they read
    again when they restart, so it lives as long as the lab) removed."""
    labkit.lab("down", "--prefix", lab.prefix)
    shutil.rmtree(lab.frag, ignore_errors=True)


class Cli:
    def __init__(self, lab, build, chain):
        self.lab, self.build, self.chain = lab, build, chain

    def json(self, router, *args):
        return labkit.anychain_json(self.build.cli, self.lab.state, router, *args)

    def state(self, name):
        return self.json(self.chain.nfs[name][0], "state", name)

    def nf_status(self, name):
        for e in self.json(self.chain.nfs[name][0], "status")["nf"]:
            if e["name"] == name:
                return e
        raise KeyError(name)

    def buffer(self, router):
        return self.json(router, "status")["ftc_buffer"]

    def dp(self, router, kinds=("verdicts", "drops", "notes")):
        """The router's fast-path counters: reason -> packets (`kinds`: labkit.dp_counters's)."""
        return labkit.dp_counters(self.build.cli, self.lab.state, router, kinds)


def configure(cli, lab, chain):
    """The NFs running, the control files anychaind wrote for them (from the config and the
    LSDB) applied by each NF (the peers in its nf_peers), every agent knowing every instance
    from OSPF. Returns what the NFs show as their control when it is not what it must be."""
    running = wait_until(lambda: all(cli.nf_status(n)["alive"] for n in chain.nfs), 30)
    ids = {v[1] for v in chain.nfs.values()}

    def learnt():
        return all(ids <= {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]}
                   for r in chain.routers)
    learnt = wait_until(learnt, 45)

    def want(name):
        # and the incarnation its agent announces for it (status ftc_control), in the NF's nf_ftc_cfg
        incs = cli.json(chain.nfs[name][0], "status")["ftc_control"]["incarnations"]
        return {**chain.control(name), "incarnation": incs.get(str(chain.nfs[name][1]), 0)}

    def shown(name):
        f = cli.state(name)["ftc"]
        c = f.get("control", {})
        return {"f": c.get("f"), "incarnation": f.get("incarnation"),
                "peers": sorted(int(p) for p in f.get("peers", {})), "successors": c.get("successors")}
    control = wait_until(lambda: all(shown(n) == want(n) for n in chain.nfs), 20)
    wrong = {} if control else {n: (shown(n), want(n)) for n in chain.nfs if shown(n) != want(n)}
    return SimpleNamespace(running=running, learnt=learnt, control=control, wrong=wrong)


def send(lab, build, procs, streams, sink_s, during=None, chain=None):
    """labkit.send_streams from src to dst (those of chain's topology when given), each stream's
    flows numbered from its own base."""
    src, sink = (chain.src, chain.sink) if chain else (SRC, SINK)
    return labkit.send_streams(lab, build, procs, src, sink, streams, sink_s, during, distinct_flow_ids=True)


def flow_key(f):
    return (f["src"], f["sport"], f["dst"], f["dport"], f["proto"])


def key_hex(f):
    """The NFs' 13-byte flow key (docs/ftc.md 2.5) of a flow in `anychain state`'s form."""
    def ip(a):
        return bytes(int(x) for x in a.split("."))
    proto = {"udp": 17, "tcp": 6}[f["proto"]]
    return (ip(f["src"]) + ip(f["dst"]) + bytes([proto]) + f["sport"].to_bytes(2, "big")
            + f["dport"].to_bytes(2, "big")).hex()


def replicas_of(state, middlebox):
    """key hex -> (value hex, seq) of the replica records `state` holds of `middlebox`."""
    out = {}
    for r in state["ftc"]["replicas"]:
        if r["middlebox"] == middlebox:
            for s in r["slots"]:
                out[s["key"]] = (s["value"], r["seq"])
    return out


def mapping_hex(m):
    """A NAT mapping's value as its log carries it: external address, port (docs/ftc.md 6.1)."""
    return bytes(int(x) for x in m["external"].split(".")).hex() + m["external_port"].to_bytes(2, "big").hex()


def f_plus_one_violations(chain, sink, state):
    """Every packet the sink received must have left the chain with its updates held f + 1
    times: for its flow (found through the NAT mapping whose external address and port the sink
    saw as its source), the monitor's packet count at least the number of the flow's packets the
    sink received, at the monitor (head) and at the next f hops of the flow's path after it (with
    f = 1 the NAT that served the flow), and the mapping at that NAT (head) and at the next f hops
    after it round the chain (with f = 1 the firewall, reached through the buffer and the ingress
    forwarder). What is wrong, per flow (empty: nothing).

    The bound is the count received, not the highest sequence number the sink saw: packets
    dropped before the monitor (frozen while it recovers, docs/ftc.md 7.2) were never counted,
    so a flow that spans a failure has fewer counted packets than its sequence numbers say,
    while every packet that left the chain was counted and replicated before it left. A packet
    received twice would let the count pass with fewer updates, so duplicates are a violation."""
    mon, = chain.of_service("mon")
    mon_head = {flow_key(f): f["packets"] for f in state[mon]["monitor"]["flows"]}
    by_ext = {}
    for nat in chain.of_service("nat"):
        for m in state[nat]["nat"]["mappings"]:
            by_ext[f"{m['external']}:{m['external_port']}"] = (nat, m)
    bad = []
    for f in sink["per_flow"]:
        need = f["packets"]
        if need > f["max_seq"] + 1:  # the flow's packets are numbered from 0
            bad.append((f["flow_id"], "more packets received than sent: duplicates", need, f["max_seq"] + 1))
        for src in f["sources"]:
            if src not in by_ext:
                bad.append((f["flow_id"], src, "no NAT mapping at any NAT"))
                continue
            nat, m = by_ext[src]
            k, path = key_hex(m), chain.path(nat)
            if mon_head.get(flow_key(m), 0) < need:
                bad.append((f["flow_id"], "monitor count at its head", mon_head.get(flow_key(m)), need))
            for h in chain.holders(path, mon):
                rep = replicas_of(state[h], chain.nfs[mon][1]).get(k)
                if rep is None or int(rep[0][:16], 16) < need:
                    bad.append((f["flow_id"], f"monitor count replica at {h}", rep, need))
            for h in chain.holders(path, nat):
                nr = replicas_of(state[h], chain.nfs[nat][1]).get(k)
                if nr is None or not nr[0].startswith(mapping_hex(m)):
                    bad.append((f["flow_id"], f"{nat}'s mapping replica at {h}", nr, mapping_hex(m)))
    return bad


def phase_drops(k):
    """What was dropped during phase `k` (its snapshots `before` and `after`, with `dp` the
    routers' drop counters): every router's fast-path drops and every NF's own drop counters that
    moved, for a failure message."""
    moved = {}
    for r, a in getattr(k.after, "dp", {}).items():
        b = k.before.dp.get(r, {})
        moved.update({f"{r}:{c}": a[c] - b.get(c, 0) for c in a if a[c] != b.get(c, 0)})
    for n, a in k.after.state.items():
        b = k.before.state.get(n, {}).get("counters", {})
        moved.update({f"{n}:{c}": v - b.get(c, 0) for c, v in a.get("counters", {}).items()
                      if v != b.get(c, 0) and "drop" in c})
    return moved


def check_released_across_failure(chain, k, killed="mon"):
    """The sink check over a phase in which the instance of service `killed` died and was
    recovered (`k`: the phase, as ftc_lab_test.py's monitor_killed fixture returns it, with
    `killed.rep` the records its successor held of it at the kill), the flows that spanned the
    failure included: every packet the buffer released in the phase is one the sink received,
    each with its updates on f + 1 stores.

    When the monitor was the one killed, the counts are exactly what the released packets imply:
    every replica of the monitor's records equals the head (value and sequence), and every packet
    it counted in this phase reached the sink or was dropped by the buffer (counted); a spanning
    flow lost the packets frozen while the monitor recovered (never counted, never released), and
    the ones released after the recovery count on from the recovered value. When a later hop was
    killed, the packets frozen before it had been counted by the monitor already and their logs
    went no further: the monitor's count and its replicas are then only bounded by the packets
    received (a flow that ended during the freeze keeps a head ahead of its replica by the
    packets that were never released)."""
    mon, = chain.of_service("mon")
    nat, = chain.of_service("nat")
    assert k.settled, k.after.buffer
    b, a = k.before.buffer["ports"][f"nf-{chain.egress()}"], k.after.buffer["ports"][f"nf-{chain.egress()}"]
    assert left(a) - left(b) == k.sink["packets"] > 0, (a, b, k.sink["packets"])
    by_ext = {f"{m['external']}:{m['external_port']}": key_hex(m) for m in k.after.state[nat]["nat"]["mappings"]}
    spanning = [f for f in k.sink["per_flow"] if any(by_ext.get(s) in k.killed.rep for s in f["sources"])]
    assert spanning, f"some flows were running when the {killed} died"
    bad = f_plus_one_violations(chain, k.sink, k.after.state)
    assert not bad, bad
    if killed != "mon":
        return
    head = {key_hex(f): f["packets"] for f in k.after.state[mon]["monitor"]["flows"]}
    keys = {by_ext[s] for f in k.sink["per_flow"] for s in f["sources"]}
    for h in chain.holders(chain.path(nat), mon):
        rep = replicas_of(k.after.state[h], chain.nfs[mon][1])
        assert all(int(rep[kh][0][:16], 16) == head[kh] == rep[kh][1] for kh in keys), \
            (h, [(kh, head[kh], rep.get(kh)) for kh in keys])
    dropped = sum(a[c] - b[c] for c in a if c.startswith("drop_") or c == "release_failed")
    # counted in this phase: a flow of an earlier phase may have had the same 5-tuple (trafgen's
    # flows take ephemeral source ports), its count then goes on from that flow's
    was = {key_hex(f): f["packets"] for f in k.before.state[mon]["monitor"]["flows"]}
    counted = {kh: head[kh] - was.get(kh, 0) for kh in keys}
    assert sum(counted.values()) == k.sink["packets"] + dropped, (counted, k.sink["packets"], a, b, phase_drops(k))


def check_delivered_after_recovery(k):
    """The chain carries traffic again after a failure: the flows that were still sending when
    the phase's last packets left (its last flows, which start 1.5 s or more after the kill and
    last 3 s) reached the sink up to their last packet. Without this a recovery that leaves a
    chain holding or dropping every packet would pass the sink check, which only bounds what was
    released."""
    ppf = k.gen["packets_per_flow"]
    whole = [f for f in k.sink["per_flow"] if f["max_seq"] == ppf - 1]
    assert whole, [(f["flow_id"], f["packets"], f["max_seq"]) for f in k.sink["per_flow"]]


# The fixtures of a test file that sets CHAIN (a Chain) and LAB_KIND (its lab prefix act<kind><pid>);
# it imports them from here.

build = labkit.nf_build  # the fixture `build`, with anychain-nf


@pytest.fixture(scope="module")
def lab(request, build, module_procs):
    """The file's lab; down after its last test (kept after a failure with ANYCHAIN_KEEP=1)."""
    lab, why = lab_up(request.module.CHAIN, request.module.LAB_KIND, build,
                      getattr(request.module, "CHANNEL_KEYED", False))
    if lab is None:
        pytest.fail(why)
    yield lab
    module_procs.stop()
    failed = getattr(request.module, "ANYCHAIN_FAILED", False)
    if not (failed and os.environ.get("ANYCHAIN_KEEP")):
        lab_down(lab)


@pytest.fixture(scope="module")
def cli(request, lab, build):
    return Cli(lab, build, request.module.CHAIN)


@pytest.fixture(scope="module")
def configured(request, cli, lab):
    return configure(cli, lab, request.module.CHAIN)
