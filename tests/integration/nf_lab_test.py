"""A chain of built-in network functions under real traffic, with real FRR and anychaind
(pytest; docs/nf.md). Root only (exit 77 otherwise).

The lab is scripts/topologies/nf-chain.toml: src -- A -- B -- C -- D -- dst. The agents start
bare; everything goes through the anychain CLI: a firewall on B (drops UDP to port 9001), a
monitor on C and a NAT on D (192.0.2.10, ports 20000-20999), chain fw -> mon -> nat for UDP to
the sink. Three phases of anychain-trafgen traffic, each read back with `anychain state`, the
sink's per-flow sources (the NAT's mapping as the sink sees it) and the fast path's counters:
1. steady: every number of every NF agrees with what was sent and what the sink received;
2. the NAT's process is SIGKILLed mid-stream: its state (mappings, counters) is lost and nothing
   else; its node withdraws it at once (the fast path drops its packets as instance_gone
   instead of delivering them to a dead veth) and restarts it (restart: always);
3. the monitor's namespace is deleted mid-stream: the same for the monitor; the NAT keeps every
   mapping (each flow reaches the sink from one source).
Each phase is a fixture (module scope) that runs and records; the tests check, in file order.
"""
import json
import os
import re
import signal
from types import SimpleNamespace

import pytest

import labkit
from labkit import LAB_AGENT, run, wait_until

LAB_KIND = "n"  # lab prefix actn<pid>
TOPO_FILE = os.path.join(labkit.TOPOS, "nf-chain.toml")
TOPO = labkit.resolved_topology(TOPO_FILE)
ROUTERS = sorted(TOPO["routers"])
SRC = [h for h in TOPO["hosts"] if h["kind"] == "source"][0]
SINK = [h for h in TOPO["hosts"] if h["kind"] == "sink"][0]
SINK_ADDR = SINK["host_addr"].split("/")[0]
NAT_ADDR = "192.0.2.10"
# name -> (router, instance id, service, kind, extra `instance add` options)
NFS = {
    "fw1": ("B", 11, "fw", "firewall", ["--fw-rule", "drop proto udp dport 9001"]),
    "mon1": ("C", 12, "mon", "monitor", []),
    "nat1": ("D", 13, "nat", "nat", ["--nat-address", NAT_ADDR, "--nat-ports", "20000-20999"]),
}
SERVICES = [("fw", 1, "10.100.6.1/32"), ("mon", 2, "10.100.6.2/32"), ("nat", 3, "10.100.6.3/32")]
SPI = 9
# A flow whose packets were delivered to an NF's veth but never came back is one the kill caught
# in flight. The agent withdraws the instance as soon as it sees the death (pidfd, inotify), so
# the fast path stops delivering within a poll-loop turn: at most this many at the test's rate
# (250 packets/s: 20 packets are 80 ms).
MAX_IN_FLIGHT = 20


build = labkit.nf_build  # the fixture `build`, with anychain-nf


@pytest.fixture(scope="module")
def lab(request, build, module_procs):
    """nf-chain.toml up under actn<pid>, bare agents; down after the last test (kept after a
    failure with ANYCHAIN_KEEP=1)."""
    prefix = labkit.lab_prefix(LAB_KIND)
    labkit.lab("down", "--prefix", prefix)
    rc, _, err = labkit.lab("up", TOPO_FILE, "--prefix", prefix, "--agent-cmd",
                            f"{LAB_AGENT} run --bare {{labdir}} {{router}} {{statedir}} {build.anychaind}")
    if rc != 0:
        labkit.lab("down", "--prefix", prefix)
        pytest.fail(f"scripts/lab up failed ({rc}): {err.strip()[-2000:]}")
    state = f"{labkit.STATE_ROOT}/{prefix}"
    with open(f"{state}/lab.json") as f:
        silent = labkit.silent_agents(build.cli, state, sorted(json.load(f)["routers"]))
    if silent:
        labkit.lab("down", "--prefix", prefix)
        pytest.fail(f"anychaind does not answer on its socket 30 s after the lab came up on {', '.join(silent)}")
    yield SimpleNamespace(prefix=prefix, state=state, ns=lambda *parts: "-".join(("acl", prefix) + parts))
    module_procs.stop()
    failed = getattr(request.module, "ANYCHAIN_FAILED", False)
    if not (failed and os.environ.get("ANYCHAIN_KEEP")):
        labkit.lab("down", "--prefix", prefix)


class Cli:
    def __init__(self, lab, build):
        self.lab, self.build = lab, build

    def __call__(self, router, *args):
        r = run([self.build.cli, "--socket", f"{self.lab.state}/{router}/anychaind.sock", *args], check=False)
        return SimpleNamespace(args=args, rc=r.returncode, out=r.stdout, err=r.stderr.strip())

    def json(self, router, *args):
        r = self(router, *args, "--json")
        if r.rc != 0:
            raise RuntimeError(f"anychain {' '.join(r.args)} on {router}: exit {r.rc}: {r.err}")
        return json.loads(r.out)

    def state(self, name):
        return self.json(NFS[name][0], "state", name)

    def nf_status(self, name):
        """The instance's entry in its agent's status (KeyError while the agent does not know it)."""
        for e in self.json(NFS[name][0], "status")["nf"]:
            if e["name"] == name:
                return e
        raise KeyError(name)

    def dp(self, router):
        """The router's fast-path counters: reason -> packets, and the last hop's packets of SPI."""
        j = json.loads(run([self.build.cli, "stats", "--json", "--pin-root",
                            f"{self.lab.state}/{router}/bpffs/anychain"]).stdout)
        reasons = {x["reason"]: x["packets"] for k in ("verdicts", "drops", "notes") for x in j[k]}
        last = sum(p["packets"] for p in j["paths"] if p["spi"] == SPI and p["last_hop"])
        return SimpleNamespace(reasons=reasons, last_hop=last)


def delta(after, before, key):
    return after.reasons.get(key, 0) - before.reasons.get(key, 0)


@pytest.fixture(scope="module")
def cli(lab, build):
    return Cli(lab, build)


@pytest.fixture(scope="module")
def configured(cli, lab):
    """Interfaces attached (src's classifying), services, chain, policy on every router; the NF
    instances on B, C, D; every agent learns all three instances from OSPF."""
    calls = []
    for r in ROUTERS:
        for i in TOPO["routers"][r]["interfaces"]:
            calls.append(cli(r, "attach", i["name"], "--mode", "native",
                             *(["--classify"] if i["name"] == SRC["router_if"] else [])))
        for name, sid, anycast in SERVICES:
            calls.append(cli(r, "service", "add", name, "--id", str(sid), "--anycast", anycast))
        calls.append(cli(r, "chain", "add", "nfchain", "--spi", str(SPI), "--services", "fw,mon,nat"))
        calls.append(cli(r, "policy", "add", "to-sink", "--chain", "nfchain", "--dst", SINK["subnet"],
                         "--proto", "udp"))
    for name, (r, iid, svc, kind, extra) in NFS.items():
        calls.append(cli(r, "instance", "add", name, "--id", str(iid), "--service", svc, "--veth", f"nf-{name}",
                         "--capacity", "100000", "--nf", kind, *extra))
    ids = {v[1] for v in NFS.values()}

    def learnt():
        return all(ids <= {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]}
                   for r in ROUTERS)
    running = wait_until(lambda: all(cli.nf_status(n)["alive"] for n in NFS), 20)
    return SimpleNamespace(calls=calls, learnt=wait_until(learnt, 45), running=running)


def test_configured_with_the_cli(configured):
    bad = [f"{' '.join(c.args)}: exit {c.rc}: {c.err}" for c in configured.calls if c.rc != 0]
    assert not bad, bad


def test_nfs_run_in_their_namespaces(configured, cli, lab):
    assert configured.running, {n: cli.nf_status(n) for n in NFS}
    for name, (r, *_rest) in NFS.items():
        st = cli.nf_status(name)
        assert st["netns"] == lab.ns(r, name) and st["state"] == "running" and st["starts"] == 1, st
        assert os.path.exists(f"/run/netns/{st['netns']}")


def test_every_agent_learns_the_instances_from_ospf(configured):
    assert configured.learnt


def send(cli, lab, build, module_procs, streams, during=None, sink_s=None):
    """labkit.send_streams from src to dst; the sink runs until 4 s after the longest stream
    unless sink_s says otherwise."""
    longest = max(s[4] + s[2] for s in streams)
    return labkit.send_streams(lab, build, module_procs, SRC, SINK, streams, sink_s or longest + 4, during)


def flow_key(f):
    return (f["src"], f["sport"], f["dst"], f["dport"], f["proto"])


def snapshot(cli):
    return SimpleNamespace(state={n: cli.state(n) for n in NFS}, status={n: cli.nf_status(n) for n in NFS},
                           dp={r: cli.dp(r) for r in ("C", "D")})


# Phase 1: steady traffic, every count agrees

@pytest.fixture(scope="module")
def steady(cli, lab, build, module_procs, configured):
    gen, sink, _ = send(cli, lab, build, module_procs, [(9000, 5, 1, 20, 2), (9001, 2, 1, 10, 1)])
    return SimpleNamespace(gen=gen, sink=sink, after=snapshot(cli))


def test_sink_gets_every_packet_the_firewall_passes(steady):
    assert steady.gen[9000]["packets_sent"] == 200 and steady.gen[9001]["packets_sent"] == 20
    assert steady.sink["packets"] == steady.gen[9000]["packets_sent"]
    assert steady.sink["flows"] == steady.gen[9000]["flows_started"]


def test_firewall_rule_drops_are_counted(steady):
    fw = steady.after.state["fw1"]
    rule = fw["firewall"]["rules"][0]
    assert rule["rule"] == "drop proto udp dport 9001"
    assert rule["packets"] == steady.gen[9001]["packets_sent"]
    assert fw["firewall"]["default_hits"]["packets"] == steady.gen[9000]["packets_sent"]
    assert fw["counters"]["fw_dropped"] == fw["counters"]["drop_filtered"] == steady.gen[9001]["packets_sent"]
    assert fw["counters"]["tx"] == steady.gen[9000]["packets_sent"]


def test_monitor_counts_every_flow_that_passed(steady):
    mon = steady.after.state["mon1"]["monitor"]
    flows = mon["flows"]
    assert len(flows) == steady.gen[9000]["flows_started"]
    assert all(f["dport"] == 9000 and f["packets"] == steady.gen[9000]["packets_per_flow"] for f in flows), flows
    assert mon["total"]["packets"] == steady.gen[9000]["packets_sent"]
    assert sum(f["bytes"] for f in flows) == mon["total"]["bytes"]


def test_nat_maps_each_flow_once_and_the_sink_sees_the_mappings(steady):
    nat = steady.after.state["nat1"]
    maps = nat["nat"]["mappings"]
    assert nat["counters"]["nat_new"] == len(maps) == steady.gen[9000]["flows_started"]
    assert nat["counters"]["nat_out"] == steady.sink["packets"]
    assert nat["nat"]["pool"]["used"] == len(maps)
    externals = {f"{m['external']}:{m['external_port']}" for m in maps}
    assert len(externals) == len(maps), "one port per flow"
    assert all(m["external"] == NAT_ADDR and 20000 <= m["external_port"] <= 20999 for m in maps)
    seen = [s for f in steady.sink["per_flow"] for s in f["sources"]]
    assert sorted(seen) == sorted(externals), "each sink flow comes from exactly one NAT mapping"


def test_monitor_and_sink_agree_per_flow_through_the_nat_mapping(steady):
    """sink flow -> its source (the NAT's external port) -> the NAT mapping's inside flow ->
    the monitor's counters of that flow."""
    by_ext = {f"{m['external']}:{m['external_port']}": m for m in steady.after.state["nat1"]["nat"]["mappings"]}
    mon = {flow_key(f): f for f in steady.after.state["mon1"]["monitor"]["flows"]}
    for f in steady.sink["per_flow"]:
        (src, n), = f["sources"].items()
        m = by_ext[src]
        assert m["src"] == SRC["host_addr"].split("/")[0] and m["dst"] == SINK_ADDR
        assert mon[flow_key(m)]["packets"] == f["packets"] == n


def test_state_has_a_human_form(cli):
    for name, (r, *_rest) in NFS.items():
        out = cli(r, "state", name)
        assert out.rc == 0 and out.out.startswith(f"{name} ("), out.err
    assert "drop proto udp dport 9001" in cli("B", "state", "fw1").out
    assert f"{NAT_ADDR}:" in cli("D", "state", "nat1").out


# Phase 1b: the firewall drops every packet it gets for longer than the stall window. It answers
# none of them by design: a built-in NF's own drops are its answers (docs/agent.md, "Liveness"),
# so its node must not take it for a dead VNF (before: "answered none of N packets", withdrawn,
# announced down, its flows moved).

@pytest.fixture(scope="module")
def fw_drops_everything(cli, lab, build, module_procs, steady):
    before = snapshot(cli)
    log_at = log_size(lab, "B")
    gen, _sink, _ = send(cli, lab, build, module_procs, [(9001, 4, 1, 20, 4)], sink_s=6)
    return SimpleNamespace(gen=gen, before=before, after=snapshot(cli), log=log_since(lab, "B", log_at))


def test_a_firewall_dropping_all_it_gets_stays_up(fw_drops_everything, cli):
    d = fw_drops_everything
    sent = d.gen[9001]["packets_sent"]
    assert sent >= 200
    fw_after, fw_before = d.after.state["fw1"]["counters"], d.before.state["fw1"]["counters"]
    assert fw_after["fw_dropped"] - fw_before["fw_dropped"] == sent, "every packet reached it and was dropped"
    assert "fw1 (11) is down" not in d.log, d.log
    assert d.after.status["fw1"]["pid"] == d.before.status["fw1"]["pid"]
    for r in ROUTERS:
        ids = {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]}
        assert 11 in ids, (r, ids)


# Phase 2: the NAT's process is SIGKILLed mid-stream

def log_size(lab, router):
    return os.path.getsize(f"{lab.state}/{router}/agent.log")


def log_since(lab, router, offset):
    with open(f"{lab.state}/{router}/agent.log") as f:
        f.seek(offset)
        return f.read()


@pytest.fixture(scope="module")
def nat_killed(cli, lab, build, module_procs, steady):
    before = snapshot(cli)
    log_at = log_size(lab, "D")

    def kill():
        pid = cli.nf_status("nat1")["pid"]
        os.kill(pid, signal.SIGKILL)
        return pid
    # 4 flows/s of 2 s at 50 packets/s for 4 s: about 400 packets/s; the kill 1.5 s in
    gen, sink, killed = send(cli, lab, build, module_procs, [(9000, 4, 2, 50, 4)], during=(1.5, kill))
    back = wait_until(lambda: cli.nf_status("nat1")["alive"], 15)
    return SimpleNamespace(before=before, after=snapshot(cli), gen=gen[9000], sink=sink, killed=killed, back=back,
                           log=log_since(lab, "D", log_at))


def test_nat_is_restarted_after_sigkill(nat_killed):
    st = nat_killed.after.status["nat1"]
    assert nat_killed.back, st
    assert st["deaths"] == 1 and st["starts"] == 2 and "signal 9" in st["last_exit"], st
    assert st["pid"] not in (0, nat_killed.killed)


def test_nat_death_is_withdrawn_at_once_then_announced(nat_killed):
    log = nat_killed.log
    died = log.find("nf nat1: killed by signal 9")
    down = log.find("instance nat1 (13) is down: its NF process is not running; withdrawn here")
    up = log.find("instance nat1 (13) is up")
    assert 0 <= died < up and 0 <= down < up, log
    assert "announced down and withdrawn" not in log, "back within the restart grace: peers keep sending, no LSA change"


def test_fast_path_stopped_delivering_to_the_dead_nat_at_once(nat_killed):
    """At D every packet of the phase arrived (gpe_decap) and was either delivered to the NAT's
    veth or dropped because the instance was gone; of those delivered, all but the few the kill
    caught in flight came back and left the chain to the sink."""
    b, a = nat_killed.before.dp["D"], nat_killed.after.dp["D"]
    sent = nat_killed.gen["packets_sent"]
    assert delta(a, b, "gpe_decap") == sent
    delivered, gone = delta(a, b, "fwd_local_nsh"), delta(a, b, "drop_instance_gone")
    assert delivered + gone == sent
    assert gone > 0, "the NAT was down while packets came"
    returned = a.last_hop - b.last_hop
    assert returned == nat_killed.sink["packets"]
    assert 0 <= delivered - returned <= MAX_IN_FLIGHT, (delivered, returned)


def test_nat_lost_exactly_its_own_state(nat_killed):
    old, new = nat_killed.before.state["nat1"], nat_killed.after.state["nat1"]
    assert new["incarnation"] != old["incarnation"] and new["pid"] != old["pid"]
    old_inside = {flow_key(m) for m in old["nat"]["mappings"]}
    maps = new["nat"]["mappings"]
    assert maps and not old_inside & {flow_key(m) for m in maps}, "no mapping of phase 1 survives"
    assert new["counters"]["nat_new"] == len(maps) == new["nat"]["pool"]["used"]
    # what the new NAT translated reached the sink from its mappings' addresses
    externals = {f"{m['external']}:{m['external_port']}" for m in maps}
    from_new = sum(n for f in nat_killed.sink["per_flow"] for s, n in f["sources"].items() if s in externals)
    assert new["counters"]["nat_out"] <= from_new


@pytest.mark.parametrize("name", ["fw1", "mon1"])
def test_the_other_nfs_keep_their_process_and_state(nat_killed, name):
    b, a = nat_killed.before, nat_killed.after
    assert a.status[name]["pid"] == b.status[name]["pid"] and a.status[name]["deaths"] == 0
    assert a.state[name]["incarnation"] == b.state[name]["incarnation"]
    sent = nat_killed.gen["packets_sent"]
    if name == "fw1":
        hits = lambda s: s["firewall"]["default_hits"]["packets"]  # noqa: E731
        assert hits(a.state[name]) - hits(b.state[name]) == sent
        assert a.state[name]["firewall"]["rules"][0]["packets"] == b.state[name]["firewall"]["rules"][0]["packets"]
    else:
        # the monitor is before the NAT: it counted every packet, and its phase-1 flows are kept
        total = lambda s: s["monitor"]["total"]["packets"]  # noqa: E731
        assert total(a.state[name]) - total(b.state[name]) == sent
        flows = {flow_key(f): f["packets"] for f in a.state[name]["monitor"]["flows"]}
        for f in b.state[name]["monitor"]["flows"]:
            assert flows.get(flow_key(f)) == f["packets"]


# Phase 3: the monitor's namespace is deleted mid-stream

@pytest.fixture(scope="module")
def monitor_ns_deleted(cli, lab, build, module_procs, nat_killed):
    before = snapshot(cli)
    log_at = log_size(lab, "C")
    ns = lab.ns("C", "mon1")
    gen, sink, rc = send(cli, lab, build, module_procs, [(9000, 4, 2, 50, 4)],
                         during=(1.5, lambda: run(["ip", "netns", "del", ns], check=False).returncode))
    back = wait_until(lambda: cli.nf_status("mon1")["alive"], 15)
    return SimpleNamespace(before=before, after=snapshot(cli), gen=gen[9000], sink=sink, del_rc=rc, back=back,
                           log=log_since(lab, "C", log_at), ns=ns)


def test_monitor_is_restarted_in_a_new_namespace(monitor_ns_deleted):
    m = monitor_ns_deleted
    assert m.del_rc == 0
    st = m.after.status["mon1"]
    assert m.back and st["deaths"] == 1 and st["starts"] == 2, st
    assert os.path.exists(f"/run/netns/{m.ns}")
    assert f"namespace {m.ns} was deleted" in m.log, m.log
    assert re.search(r"instance mon1 \(12\) is down: .*; withdrawn here", m.log), m.log
    assert "announced down and withdrawn" not in m.log, "back within the restart grace: no LSA change"


def test_fast_path_stopped_delivering_to_the_dead_monitor_at_once(monitor_ns_deleted):
    m = monitor_ns_deleted
    b, a = m.before.dp, m.after.dp
    sent = m.gen["packets_sent"]
    delivered, gone = delta(a["C"], b["C"], "fwd_local_nsh"), delta(a["C"], b["C"], "drop_instance_gone")
    assert delivered + gone == sent and gone > 0
    # what the monitor returned went on to D (over VXLAN-GPE) and through the NAT to the sink
    returned = delta(a["D"], b["D"], "gpe_decap")
    assert 0 <= delivered - returned <= MAX_IN_FLIGHT, (delivered, returned)
    assert a["D"].last_hop - b["D"].last_hop == m.sink["packets"] == returned


def test_monitor_lost_exactly_its_own_state(monitor_ns_deleted):
    m = monitor_ns_deleted
    old, new = m.before.state["mon1"], m.after.state["mon1"]
    assert new["incarnation"] != old["incarnation"]
    old_flows = {flow_key(f) for f in old["monitor"]["flows"]}
    flows = new["monitor"]["flows"]
    assert flows and not old_flows & {flow_key(f) for f in flows}
    assert new["monitor"]["total"]["packets"] == sum(f["packets"] for f in flows) == new["counters"]["mon_counted"]


def test_nat_kept_every_mapping_while_the_monitor_died(monitor_ns_deleted):
    m = monitor_ns_deleted
    b, a = m.before.state["nat1"], m.after.state["nat1"]
    assert a["incarnation"] == b["incarnation"] and m.after.status["nat1"]["pid"] == m.before.status["nat1"]["pid"]
    kept = {flow_key(x): x["external_port"] for x in a["nat"]["mappings"]}
    for x in b["nat"]["mappings"]:
        assert kept.get(flow_key(x)) == x["external_port"]
    assert a["counters"]["nat_out"] - b["counters"]["nat_out"] == m.sink["packets"]
    # one mapping per flow all along: each flow reached the sink from one source
    assert all(len(f["sources"]) == 1 for f in m.sink["per_flow"]), m.sink["per_flow"]


def test_new_monitor_and_sink_agree_through_the_nat(monitor_ns_deleted):
    """A flow the new monitor counted reached the sink with at least as many packets (the part
    before the deletion was counted by the lost monitor); a flow that started after it came back
    has every packet at the sink and in the monitor."""
    m = monitor_ns_deleted
    by_inside = {flow_key(x): f"{x['external']}:{x['external_port']}" for x in m.after.state["nat1"]["nat"]["mappings"]}
    at_sink = {s: n for f in m.sink["per_flow"] for s, n in f["sources"].items()}
    per_flow = m.gen["packets_per_flow"]
    complete = 0
    for f in m.after.state["mon1"]["monitor"]["flows"]:
        got = at_sink[by_inside[flow_key(f)]]
        assert got >= f["packets"], f
        if got == per_flow:
            assert f["packets"] == per_flow, f
            complete += 1
    assert complete > 0, "flows started after the monitor came back are counted whole"


@pytest.mark.parametrize("name", ["fw1", "nat1"])
def test_the_other_nfs_were_not_restarted(monitor_ns_deleted, name):
    b, a = monitor_ns_deleted.before.status[name], monitor_ns_deleted.after.status[name]
    assert a["pid"] == b["pid"] and a["deaths"] == b["deaths"] and a["starts"] == b["starts"]
