"""Shared state of the real built-in IDS (`anychain-nf --kind ids`, docs/state.md 4.1) replicated
by anychaind between three instances on three FRR nodes, under real traffic spread by WCMP
(pytest; docs/state.md 5 item 10 and 6). Root only (exit 77 otherwise).

The lab is scripts/topologies/nf-chain.toml (src -- A -- B -- C -- D -- dst), bare agents
configured through the CLI, a `state:` section in every agent's file (loaded with `anychain
reload`). Service `ids` has one instance on B, C and D (`--nf ids`, a one-day window so that no
window boundary falls inside a run, except at midnight UTC); A classifies UDP to the sink into a
one-hop chain, so its WCMP spreads the flows over the three; D classifies UDP from the sink to
the scanners' addresses (for the partition, where only C and D are reachable from dst). Traffic
is real UDP datagrams from sockets in the host namespaces, from extra source addresses
(198.51.100.0/24 on src: one per phase, so each phase's source has its own sketch cells):
1. join under load: ids1 (B) and ids2 (C) replicate; ids3 (D) is added while a source sends to
   a new port every 5 ms; it is not announced before it joined from a snapshot, and once the load
   stopped the three hold the same merged counts, ids3's mostly from the others' slots;
2. the scan: one source, THRESHOLD * 1.5 destination ports, one every SCAN_GAP_S; no instance
   sees THRESHOLD of them alone, every instance's set holds the source within DETECT_BOUND_S of the
   datagram that took the sum over the threshold, and every instance's packet path then counts
   its packets as a flagged source's (`ids_scan_packets`). Checked with `anychain state` and with
   bpftool's dumps of each instance's `ids_flagged` map;
3. partition: the B -- C link down; a scan from src reaches only B, a scan from dst only C and D;
   the two sides diverge (each side holds its own scanner's count, the other none); the link up:
   every instance holds the same merged counts again;
4. forged and replayed replication messages sent to C's instance from router A are refused and
   counted, and change none of its values;
5. leave: ids3 is deleted with the CLI while a source sends to new ports; it drains (its
   replica leaves D's status without a drain timeout) and what it counted stays in the others'
   merged estimate of that source;
6. crash: ids1's process is killed with SIGKILL; its agent drains the old incarnation from the
   maps it holds and restarts the NF as a new incarnation, which joins from a snapshot; ids2 folds
   the old one, and every merged estimate (flags included) equals what it was before the kill.
The delays measured are printed (pytest -s) and documented in docs/state.md 6.
"""
import json
import os
import threading
import time
from types import SimpleNamespace

import pytest

import labkit
import statekit
from statekit import build, lab  # noqa: F401 (fixtures)
from labkit import PYTHON, run, wait_until
from state_lab_test import KEY1, PORT, message
from statekit import finish, sender

LAB_KIND = "i"  # lab prefix acti<pid>
TOPO_FILE = os.path.join(labkit.TOPOS, "nf-chain.toml")
TOPO = labkit.resolved_topology(TOPO_FILE)
ROUTERS = sorted(TOPO["routers"])
SRC = [h for h in TOPO["hosts"] if h["kind"] == "source"][0]
SINK = [h for h in TOPO["hosts"] if h["kind"] == "sink"][0]
SINK_ADDR = SINK["host_addr"].split("/")[0]
SERVICE = ("ids", 1, "10.100.6.1/32")
SPI = 9
# name -> (router, instance id)
INSTANCES = {"ids1": ("B", 21), "ids2": ("C", 22), "ids3": ("D", 23)}
THRESHOLD = 120
WINDOW_S = 86400
SCANNERS = "198.51.100.0/24"
LOAD_SRC, SCAN_SRC, PART_SRC, DRAIN_SRC = "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"
SCAN_GAP_S = 0.004
# The bound of the detection delay: the agent's scan interval (1 ms) and a few RTTs between
# namespaces on this host are a few ms; what makes it long here is a 2-core host shared with
# other builds (the agents, three NFs and the CLI polling them compete for the CPUs) and the
# polling itself (one `anychain state` per instance in turn, 200-250 ms each measured there).
DETECT_BOUND_S = 1.5


LAB_TOPO = TOPO_FILE
LAB_AGENT_ARGS = ["--bare"]


@pytest.fixture(scope="module")
def cli(lab, build):
    return statekit.Cli(lab, build, INSTANCES)


def add_instance(cli, name):
    r, iid = INSTANCES[name]
    return cli(r, "instance", "add", name, "--id", str(iid), "--service", SERVICE[0], "--veth", f"nf-{name}",
               "--capacity", "100000", "--nf", "ids", "--ids-threshold", str(THRESHOLD), "--window", str(WINDOW_S))


def announced(cli, iid):
    return all(iid in {i["id"] for s in cli.json(r, "topology")["services"] for i in s["instances"]} for r in ROUTERS)


def ids_of(st):
    """(merged pairs, own pairs, {source: flagged entry}) of an `anychain state --json`."""
    d = st["ids"]
    return d["pairs"]["merged"], d["pairs"]["own"], {f["source"]: f for f in d["flagged"]}


@pytest.fixture(scope="module")
def setup(cli, lab):
    """Interfaces, service, chain and policies on every router; the state: section; ids1 and ids2."""
    calls = statekit.configure(cli, lab, TOPO, SERVICE, [("scan", SPI)],
                               [("to-sink", "scan", SINK["subnet"]), ("to-scanners", "scan", SCANNERS)])
    for a in (LOAD_SRC, SCAN_SRC, PART_SRC, DRAIN_SRC):
        run(["ip", "netns", "exec", lab.ns(SRC["name"]), "ip", "addr", "add", f"{a}/32", "dev", SRC["host_if"]])
    for n in ("ids1", "ids2"):
        calls.append(add_instance(cli, n))
    ready = wait_until(lambda: all((cli.replica(n) or {}).get("state") == "ready" for n in ("ids1", "ids2")), 30)
    learnt = wait_until(lambda: announced(cli, 21) and announced(cli, 22), 45)
    return SimpleNamespace(calls=calls, ready=ready, learnt=learnt)


def test_configured_with_the_cli(setup):
    bad = statekit.failed_calls(setup.calls)
    assert not bad, bad


def test_two_instances_replicate(setup, cli):
    assert setup.ready, {n: cli.replica(n) for n in ("ids1", "ids2")}
    assert setup.learnt


def same_counts(cli, names, sources):
    """The instances' merged pairs and each source's estimate, if they are all equal, else None."""
    seen = []
    for n in names:
        merged, _, fl = ids_of(cli.state(n))
        seen.append((merged, tuple(fl.get(s, {}).get("ports_in_window") for s in sources)))
    return seen[0] if all(s == seen[0] for s in seen) else None


# 1. an instance joins under load

@pytest.fixture(scope="module")
def joined(setup, cli, lab):
    load = sender(lab, SRC["name"], LOAD_SRC, SINK_ADDR, 10000, 1600, 0.005)  # 8 s
    # load on the two before the third comes
    assert wait_until(lambda: ids_of(cli.state("ids1"))[0] > 0 and ids_of(cli.state("ids2"))[0] > 0, 5, 0.05)
    was_announced = []
    res = add_instance(cli, "ids3")
    t0 = time.monotonic()

    def ready():
        was_announced.append(announced(cli, 23))
        return (cli.replica("ids3") or {}).get("state") == "ready"
    ok = wait_until(ready, 30, 0.1)
    t_ready = time.monotonic() - t0
    # the moment it is ready it may be announced; before, never
    before_ready = was_announced[:-1]
    learnt = wait_until(lambda: announced(cli, 23), 45)
    sent = finish(load)
    equal = None
    if wait_until(lambda: same_counts(cli, INSTANCES, [LOAD_SRC]) is not None, 20):
        equal = same_counts(cli, INSTANCES, [LOAD_SRC])
    print(f"\njoin under load: ready {t_ready:.2f} s after `instance add`; {len(sent)} ports sent")
    return SimpleNamespace(res=res, ok=ok, before_ready=before_ready, learnt=learnt, sent=sent, equal=equal,
                           replica=cli.replica("ids3"), state={n: cli.state(n) for n in INSTANCES})


def test_join_under_load_from_a_snapshot_before_it_is_announced(joined):
    assert joined.res.rc == 0, joined.res.err
    assert joined.ok, joined.replica
    assert joined.replica["ready_how"] == "joined from a snapshot", joined.replica
    assert not any(joined.before_ready), "announced before it had joined"
    assert joined.learnt


def test_joined_instance_holds_the_others_values(joined):
    assert joined.equal is not None, {n: ids_of(s)[:2] for n, s in joined.state.items()}
    merged, own, _ = ids_of(joined.state["ids3"])
    assert merged > 0 and merged > own, (merged, own)
    # the load's source touched 1600 ports: every instance's merged estimate has (nearly) all of them
    # (a count-min sketch never under-estimates; pairs first seen by two instances at once overcount)
    est = joined.equal[1][0]
    assert est is not None and est >= len(joined.sent) * 0.97, joined.equal


# 2. the scan, flagged by every instance

@pytest.fixture(scope="module")
def scanned(joined, cli, lab):
    before = {n: cli.state(n)["counters"] for n in INSTANCES}
    first = {}
    stop = threading.Event()

    calls = []

    def poll(n):
        # the flag was there by the end of the first call that saw it: that end is the time taken
        while not stop.is_set() and n not in first:
            t = time.time()
            try:
                if SCAN_SRC in ids_of(cli.state(n))[2]:
                    first[n] = time.time()
            except (RuntimeError, KeyError, ValueError):
                pass
            calls.append(time.time() - t)
    pollers = [threading.Thread(target=poll, args=(n,)) for n in INSTANCES]
    for t in pollers:
        t.start()
    count = int(THRESHOLD * 1.5)
    times = finish(sender(lab, SRC["name"], SCAN_SRC, SINK_ADDR, 40000, count, SCAN_GAP_S))
    done = wait_until(lambda: len(first) == len(INSTANCES), 10, 0.05)
    stop.set()
    for t in pollers:
        t.join()
    crossed = times[THRESHOLD - 1]
    delays = {n: first[n] - crossed for n in first}
    calls.sort()
    print(f"\nscan: {count} ports at {SCAN_GAP_S * 1000:.0f} ms; flag seen after the {THRESHOLD}th port: "
          + ", ".join(f"{n} {d * 1000:.0f} ms" for n, d in sorted(delays.items()))
          + f" (one `anychain state` poll: median {calls[len(calls) // 2] * 1000:.0f} ms, max {calls[-1] * 1000:.0f} ms)")
    after = {n: cli.state(n) for n in INSTANCES}
    return SimpleNamespace(done=done, delays=delays, count=count, before=before, after=after)


def test_scan_is_flagged_by_every_instance_within_the_bound(scanned):
    assert scanned.done, scanned.delays
    for n, d in scanned.delays.items():
        assert d <= DETECT_BOUND_S, scanned.delays
    for n, st in scanned.after.items():
        f = ids_of(st)[2][SCAN_SRC]
        assert f["flagged"], (n, f)
        assert f["ports_in_window"] >= THRESHOLD, (n, f)


def test_no_instance_saw_the_threshold_alone(scanned):
    """Each instance counted a share of the scan's pairs (WCMP spread it) and the scan was flagged
    by at least one of them: every share below the threshold means merging did it."""
    news = {n: scanned.after[n]["counters"].get("ids_new_pair", 0) - scanned.before[n].get("ids_new_pair", 0)
            for n in INSTANCES}
    assert all(0 < v < THRESHOLD for v in news.values()), news
    assert sum(news.values()) >= scanned.count * 0.97, news


def test_every_packet_path_treats_the_scanner_as_flagged(scanned):
    got = {n: scanned.after[n]["counters"].get("ids_scan_packets", 0)
           - scanned.before[n].get("ids_scan_packets", 0) for n in INSTANCES}
    assert all(v > 0 for v in got.values()), got
    assert sum(scanned.after[n]["counters"].get("ids_scan_flagged", 0) for n in INSTANCES) >= 1


def flagged_in_bpftool(lab, name):
    """The sources in the instance's ids_flagged map as bpftool dumps it (map id from the NF's
    <run_dir>/<name>.json), with their add and remove slot counters."""
    r = INSTANCES[name][0]
    path = [os.path.join(d, f"{name}.json") for d, _, fs in os.walk(f"{lab.state}/{r}") if f"{name}.json" in fs
            and "ftc" not in d]
    assert path, f"no {name}.json under {lab.state}/{r}"
    with open(path[0]) as f:
        pub = json.load(f)
    mid = pub["maps"]["ids_flagged"]
    dump = json.loads(run(["bpftool", "-j", "map", "dump", "id", str(mid)]).stdout)
    out = {}
    for e in dump:
        key = bytes(int(b, 16) for b in e["key"])
        val = bytes(int(b, 16) for b in e["value"])
        if key[16] != 4:
            continue
        addr = ".".join(str(b) for b in key[:4])
        add = [int.from_bytes(val[8 + 4 * i:12 + 4 * i], "little") for i in range(16)]
        rm = [int.from_bytes(val[72 + 4 * i:76 + 4 * i], "little") for i in range(16)]
        out[addr] = (add, rm)
    return out


def test_bpftool_sees_the_flag_in_every_instance(scanned, lab):
    for n in INSTANCES:
        fl = flagged_in_bpftool(lab, n)
        assert SCAN_SRC in fl, (n, fl)
        add, rm = fl[SCAN_SRC]
        assert any(a > r for a, r in zip(add, rm)), (n, add, rm)


# 3. partition and heal

def link(lab, up):
    for r, other in (("B", "C"), ("C", "B")):
        run(["ip", "netns", "exec", lab.ns(r), "ip", "link", "set", f"to-{other}", "up" if up else "down"])


@pytest.fixture(scope="module")
def partitioned(scanned, cli, lab):
    link(lab, False)
    try:
        # 300 ports each: whatever goes to the far side's instances until the routers' OSPF and
        # WCMP tables took the link out is lost, the rest still crosses the threshold
        a = sender(lab, SRC["name"], PART_SRC, SINK_ADDR, 50000, 300, 0.004)
        b = sender(lab, SINK["name"], SINK_ADDR, PART_SRC, 51000, 300, 0.004)
        finish(a), finish(b)

        def diverged():
            _, _, b1 = ids_of(cli.state("ids1"))
            _, _, c1 = ids_of(cli.state("ids2"))
            _, _, d1 = ids_of(cli.state("ids3"))
            return (PART_SRC in b1 and PART_SRC not in c1 and PART_SRC not in d1
                    and SINK_ADDR in c1 and SINK_ADDR in d1 and SINK_ADDR not in b1
                    and c1[SINK_ADDR]["ports_in_window"] == d1[SINK_ADDR]["ports_in_window"])
        div = wait_until(diverged, 15)
        during = {n: ids_of(cli.state(n)) for n in INSTANCES}
    finally:
        link(lab, True)
    t0 = time.monotonic()
    sources = [LOAD_SRC, SCAN_SRC, PART_SRC, SINK_ADDR]
    healed = wait_until(lambda: same_counts(cli, INSTANCES, sources) is not None, 90, 0.2)
    t_heal = time.monotonic() - t0
    print(f"\npartition: converged {t_heal:.1f} s after the link came back up")
    return SimpleNamespace(div=div, during=during, healed=healed, equal=same_counts(cli, INSTANCES, sources),
                           after={n: ids_of(cli.state(n)) for n in INSTANCES})


def test_partitioned_instances_diverge(partitioned):
    assert partitioned.div, {n: (m, sorted(f)) for n, (m, _, f) in partitioned.during.items()}


def test_healed_instances_converge(partitioned):
    assert partitioned.healed, {n: (m, {s: f["ports_in_window"] for s, f in fl.items()})
                                for n, (m, _, fl) in partitioned.after.items()}
    merged, ests = partitioned.equal
    # each side's scanner: flagged everywhere, with the same count
    assert ests[2] >= THRESHOLD and ests[3] >= THRESHOLD, partitioned.equal
    for n, (_, _, fl) in partitioned.after.items():
        assert fl[PART_SRC]["flagged"] and fl[SINK_ADDR]["flagged"], (n, fl)


# 4. forged and replayed messages

def test_forged_and_replayed_messages_are_refused_and_counted(partitioned, cli, lab):
    r = cli.replica("ids2")
    before = r["rejected"]
    values = ids_of(cli.state("ids2"))[0]
    endpoint = cli.json("C", "status")["agent"]["nsh_endpoint"]
    forged = message(1, b"\x55" * 32, SERVICE[1], r["schema_digest"], 99, 1, 22, 1)
    genuine = message(1, KEY1, SERVICE[1], r["schema_digest"], 99, 1, 22, 2)
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for h in sys.argv[3:]: s.sendto(bytes.fromhex(h),(sys.argv[1],int(sys.argv[2])))\n")
    run(["ip", "netns", "exec", lab.ns("A"), PYTHON, "-c", code, endpoint, str(PORT), forged.hex(), genuine.hex(),
         genuine.hex()])

    def counted():
        rej = cli.replica("ids2")["rejected"]
        return rej["bad_tag"] >= before["bad_tag"] + 1 and rej["replay"] >= before["replay"] + 1
    assert wait_until(counted, 5), cli.replica("ids2")["rejected"]
    assert ids_of(cli.state("ids2"))[0] == values


# 5. leave and drain

def new_pairs(cli):
    return {n: cli.state(n)["counters"].get("ids_new_pair", 0) for n in INSTANCES}


@pytest.fixture(scope="module")
def left(partitioned, cli, lab):
    """ids3 is deleted while a source sends to new ports: what it counted (its ids_new_pair, read
    just before) stays in the others' merged estimate of that source."""
    log_at = os.path.getsize(f"{lab.state}/D/agent.log")
    before = new_pairs(cli)
    load = sender(lab, SRC["name"], DRAIN_SRC, SINK_ADDR, 60000, 400, 0.004)  # 1.6 s
    share3 = 0

    def ids3_counted():
        nonlocal share3
        share3 = cli.state("ids3")["counters"].get("ids_new_pair", 0) - before["ids3"]
        return share3 >= 20
    counted = wait_until(ids3_counted, 10, 0.02)
    res = cli("D", "instance", "del", "ids3")
    sent = finish(load)
    # the leaving replica shows in D's status until it drained (or its drain timed out: logged)
    drained = wait_until(lambda: cli.replica("ids3") is None, 30)
    with open(f"{lab.state}/D/agent.log") as f:
        f.seek(log_at)
        log = f.read()
    gone = wait_until(lambda: not any(23 in {i["id"] for s in cli.json(r, "topology")["services"]
                                             for i in s["instances"]} for r in ("A", "B", "C")), 45)
    equal = wait_until(lambda: same_counts(cli, ("ids1", "ids2"), [DRAIN_SRC]) is not None, 20)
    after = {n: cli.state(n) for n in ("ids1", "ids2")}
    return SimpleNamespace(res=res, counted=counted, share3=share3, sent=sent, drained=drained, log=log, gone=gone,
                           equal=equal, before=before, after=after)


def test_left_instance_drains_and_is_withdrawn(left):
    assert left.counted, left.share3
    assert left.res.rc == 0, left.res.err
    assert "instance ids3 (23) leaves: draining" in left.log, left.log
    assert left.drained
    assert "ids3 (23): drain timed out" not in left.log, left.log
    assert left.gone


def test_left_instance_contributions_remain(left):
    """The source's merged estimate in the others (equal in both) holds their own new pairs and
    ids3's: a count-min sketch never under-estimates, so the sum is a lower bound."""
    assert left.equal, {n: ids_of(s)[2].get(DRAIN_SRC) for n, s in left.after.items()}
    own = sum(left.after[n]["counters"].get("ids_new_pair", 0) - left.before[n] for n in ("ids1", "ids2"))
    est = ids_of(left.after["ids1"])[2][DRAIN_SRC]["ports_in_window"]
    assert est >= own + left.share3, (est, own, left.share3)
    assert est <= len(left.sent) + 3, (est, len(left.sent))


# 6. a crashed instance is folded (docs/state.md 3.12)

@pytest.fixture(scope="module")
def crashed(left, cli, lab):
    """ids1's process is killed with SIGKILL: its agent still holds its maps, so it drains the old
    incarnation from them (a leave, as for a deleted instance) and restarts the NF as a new
    incarnation, which joins from ids2's snapshot; ids2 folds the old one (its slot stays reserved
    while the IDS's flags hold live adds of it). What the old incarnation counted is in the merged
    estimates once: equal before the kill and after, on both instances, flags included."""
    sources = [LOAD_SRC, SCAN_SRC, PART_SRC, SINK_ADDR, DRAIN_SRC]
    assert wait_until(lambda: same_counts(cli, ("ids1", "ids2"), sources) is not None, 20)
    before = same_counts(cli, ("ids1", "ids2"), sources)
    folded_before = cli.replica("ids2")["counters"]["folded"]
    st = cli.state("ids1")
    old = (21, st["incarnation"])
    os.kill(int(st["pid"]), 9)
    t0 = time.monotonic()

    def restarted():
        r = cli.replica("ids1")
        return r is not None and r["incarnation"] != old[1] and r["state"] == "ready"
    back = wait_until(restarted, 30, 0.1)

    def folded():
        r = cli.replica("ids2")
        return bool(r) and r["counters"]["folded"] > folded_before and not r["gone"]
    done = wait_until(folded, 60, 0.2)
    t_fold = time.monotonic() - t0
    print(f"\ncrash: ids1 back as a new incarnation and its old one folded {t_fold:.1f} s after SIGKILL")
    after = wait_until(lambda: same_counts(cli, ("ids1", "ids2"), sources) is not None, 10)
    after = same_counts(cli, ("ids1", "ids2"), sources)
    keys = ("gone", "gone_adopted", "folded_gone", "folded", "gone_sender", "declared_gone_self", "relayed_cells",
            "records_no_slot", "records_folded_origin")
    diag = {}
    for n in ("ids1", "ids2"):
        r = cli.replica(n) or {}
        merged, _, fl = ids_of(cli.state(n))
        diag[n] = dict(incarnation=r.get("incarnation"), ready_how=r.get("ready_how"), gone=r.get("gone"),
                       slots=r.get("slots"), peers=[(p["id"], p["incarnation"], p["member"], p["wire_version"])
                                                     for p in r.get("peers", [])], counters={k: r.get("counters", {}).get(k) for k in keys},
                       counts=(merged, tuple(fl.get(s, {}).get("ports_in_window") for s in sources)))
    print(f"crash: old incarnation {old}, before {before}; " + json.dumps(diag))
    return SimpleNamespace(before=before, after=after, back=back, done=done, old=old, diag=diag,
                           replicas={n: cli.replica(n) for n in ("ids1", "ids2")})


def test_crashed_instance_is_folded(crashed):
    assert crashed.back, crashed.diag
    assert crashed.done, crashed.diag
    r2 = crashed.replicas["ids2"]
    assert r2["rejected"]["version"] == 0, r2["rejected"]
    for p in r2["peers"]:
        if p["member"]:
            assert p["wire_version"] == 2, p


def test_crashed_instance_counts_stay_counted_once(crashed):
    """A count-min estimate held before the kill: neither lost (the dead slot folded into the
    retired totals) nor doubled (the new incarnation starts from zero, the old one's records are
    refused after the fold)."""
    assert crashed.before is not None
    assert crashed.after == crashed.before, (crashed.before, crashed.diag)
