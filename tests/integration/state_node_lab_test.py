"""A whole node of a shared-state service dies (docs/state.md 3.13), with real FRR: the built-in
IDS (`anychain-nf --kind ids`) has one instance on B, C and D of scripts/topologies/nf-chain.toml
(src -- A -- B -- C -- D -- dst), replicated by anychaind; a scan from src is spread over the three
by A's WCMP until every instance holds the same merged counts. Then D fails as a whole
(`scripts/lab kill-node D`: ospfd, anychaind and the IDS SIGKILLed, its links down): nobody is
left to withdraw its VNF LSA, which stays in B's and C's LSDBs; their SPF no longer reaches D, so
their agents list ids3 lost, declare its origin gone after `state.node_gone_grace_s` (4 s here,
not before) and fold it: ids1 and ids2 keep the same merged counts as before the kill (nothing
lost, nothing counted twice), no longer announce it, and count it `gone_node_lost`. Then D boots
again (`scripts/lab revive-node D`: same router id, FRR and the agent hook as `up` started them,
nothing of its memory left) and is provisioned again with the CLI: ids3 comes back as a new
incarnation with empty maps, joins from a snapshot of ids1 or ids2 that names its old incarnation
folded, and holds the same merged counts as the others, equal to those before the kill (the old
incarnation counted once, in the retired totals); a second scan spread over the three is
flagged by every instance, and the merged count of source-port pairs grows by exactly the pairs
the three saw. Root only (exit 77 otherwise). The delay from the kill to the fold is printed
(pytest -s)."""
import time
from types import SimpleNamespace

import pytest
import yaml

import labkit
import statekit
from statekit import build, lab  # noqa: F401 (fixtures)
from labkit import run, wait_until
from statekit import finish, sender
# the same lab, service and instances as the IDS's other phases
from state_lab_test import KEY1, set_state_section
from state_nf_lab_test import (INSTANCES, LOAD_SRC, ROUTERS, SCAN_SRC, SERVICE, SINK, SINK_ADDR, SRC, THRESHOLD,  # noqa: F401
                               TOPO, TOPO_FILE, add_instance, announced, cli)

LAB_KIND = "n"  # lab prefix actn<pid>
NODE_GRACE_S = 4
RESCAN_SRC = LOAD_SRC  # the second scan's source, after D came back
CHAINS = [("scan", 9)]
POLICIES = [("to-sink", "scan", SINK["subnet"])]

LAB_TOPO = TOPO_FILE
LAB_AGENT_ARGS = ["--bare"]


def ids_of(st):
    d = st["ids"]
    return d["pairs"]["merged"], {f["source"]: f for f in d["flagged"]}


def counts(cli, names):
    """The instances' (merged pairs, scanner's estimate), if equal in all, else None."""
    seen = []
    for n in names:
        merged, fl = ids_of(cli.state(n))
        seen.append((merged, fl.get(SCAN_SRC, {}).get("ports_in_window")))
    return seen[0] if all(s == seen[0] for s in seen) else None


def set_node_grace(lab, cli, router):
    path = f"{lab.state}/{router}/anychaind.yaml"
    with open(path) as f:
        c = yaml.safe_load(f)
    c["state"]["node_gone_grace_s"] = NODE_GRACE_S
    with open(path, "w") as f:
        yaml.safe_dump(c, f)
    return cli(router, "reload")


@pytest.fixture(scope="module")
def setup(cli, lab):
    calls = statekit.configure(cli, lab, TOPO, SERVICE, CHAINS, POLICIES)
    calls += [set_node_grace(lab, cli, r) for r in ROUTERS]
    for a in (SCAN_SRC, RESCAN_SRC):
        run(["ip", "netns", "exec", lab.ns(SRC["name"]), "ip", "addr", "add", f"{a}/32", "dev", SRC["host_if"]])
    for n in ("ids1", "ids2", "ids3"):
        calls.append(add_instance(cli, n))
        assert wait_until(lambda: (cli.replica(n) or {}).get("state") == "ready", 30), cli.replica(n)
    learnt = wait_until(lambda: all(announced(cli, i) for _, i in INSTANCES.values()), 45)
    scan = sender(lab, SRC["name"], SCAN_SRC, SINK_ADDR, 20000, 200, 0.004)
    finish(scan)
    same = wait_until(lambda: counts(cli, INSTANCES) is not None, 20, 0.2)
    own = {n: cli.state(n)["counters"].get("ids_new_pair", 0) for n in INSTANCES}
    return SimpleNamespace(calls=calls, learnt=learnt, same=same, before=counts(cli, INSTANCES), own=own,
                           ids3_incarnation=cli.replica("ids3")["incarnation"])


def test_three_instances_share_the_scan(setup):
    bad = statekit.failed_calls(setup.calls)
    assert not bad, bad
    assert setup.learnt
    assert setup.same, setup.before
    merged, est = setup.before
    assert est is not None and est >= THRESHOLD, setup.before
    assert all(v > 0 for v in setup.own.values()), setup.own  # WCMP spread the scan over the three


@pytest.fixture(scope="module")
def killed(setup, cli, lab):
    rc, out, err = labkit.lab("kill-node", "D", "--prefix", lab.prefix)
    assert rc == 0, err
    t0 = time.monotonic()
    folded_before = {n: cli.replica(n)["counters"]["folded_gone"] for n in ("ids1", "ids2")}
    timeline = []
    text = {}

    def peer23(n):
        for p in (cli.replica(n) or {}).get("peers", []):
            if p["id"] == 23:
                return p
        return None

    def folded():
        done = True
        for n in ("ids1", "ids2"):
            r = cli.replica(n) or {}
            p = peer23(n) or {}
            c = r.get("counters", {})
            timeline.append((round(time.monotonic() - t0, 2), n, p.get("member"), p.get("node_lost"),
                             c.get("gone"), c.get("gone_node_lost"), c.get("folded_gone")))
            if p.get("node_lost") and n not in text:  # what an operator reads meanwhile
                text[n] = cli(INSTANCES[n][0], "state", n).out
            done &= c.get("folded_gone", 0) > folded_before[n] and not r.get("gone")
        return done
    done = wait_until(folded, NODE_GRACE_S + 40, 0.3)
    t_fold = time.monotonic() - t0
    print(f"\nnode: D killed, ids3 folded by ids1 and ids2 {t_fold:.1f} s later (node grace {NODE_GRACE_S} s)")
    same = wait_until(lambda: counts(cli, ("ids1", "ids2")) is not None, 10, 0.2)
    return SimpleNamespace(done=done, t_fold=t_fold, timeline=timeline, same=same, text=text,
                           after=counts(cli, ("ids1", "ids2")),
                           replicas={n: cli.replica(n) for n in ("ids1", "ids2")},
                           topology={r: cli.json(r, "topology") for r in ("A", "B", "C")})


def test_dead_node_instance_is_lost_then_folded(killed):
    assert killed.done, killed.timeline[-12:]
    # lost, not a member, before it was declared gone: the node grace ran, not the 2-s one
    lost = [t for t in killed.timeline if t[2] is False and t[3] is True]
    assert lost, killed.timeline[-12:]
    assert any("instance 23: its node is not reached in the LSDB" in t for t in killed.text.values()), killed.text
    declared = [t[0] for t in killed.timeline if t[4]]
    assert declared and min(declared) >= NODE_GRACE_S, killed.timeline
    # each declared it on its own or adopted the other's declaration; at least one on its own
    for n, r in killed.replicas.items():
        assert r["counters"]["gone_node_lost"] >= 1 or r["counters"]["gone_adopted"] >= 1, (n, r["counters"])
    assert sum(r["counters"]["gone_node_lost"] for r in killed.replicas.values()) >= 1, killed.replicas
    for n, r in killed.replicas.items():
        assert not [p for p in r["peers"] if p["id"] == 23 and p["member"]], (n, r["peers"])


def test_dead_node_counts_stay_counted_once(setup, killed):
    """The merged counts of the survivors equal what all three held before the kill: the dead
    origin's slots moved into the retired totals once (a count-min sketch and the pair filter
    would show a loss or a double count)."""
    assert killed.same, killed.after
    assert killed.after == setup.before, (setup.before, killed.after)


@pytest.fixture(scope="module")
def revived(setup, killed, cli, lab):
    """D boots again and is provisioned again as at setup; ids3 joins; then a second scan."""
    assert killed.done, killed.timeline[-12:]
    t0 = time.monotonic()
    rc, out, err = labkit.lab("revive-node", "D", "--prefix", lab.prefix)
    t_boot = time.monotonic() - t0
    assert rc == 0, err
    # the agent hook is started, not waited for (as by `up`): provision once it serves its socket
    assert wait_until(lambda: cli("D", "status").rc == 0, 30, 0.2), "D's agent does not answer"
    again = labkit.lab("revive-node", "D", "--prefix", lab.prefix)  # D is no longer killed
    calls = statekit.configure(cli, lab, TOPO, SERVICE, CHAINS, POLICIES, routers=["D"])
    calls.append(set_node_grace(lab, cli, "D"))
    calls.append(add_instance(cli, "ids3"))
    bad = statekit.failed_calls(calls)
    assert not bad, bad
    ready = wait_until(lambda: (cli.replica("ids3") or {}).get("state") == "ready", 60)
    t_ready = time.monotonic() - t0
    learnt = wait_until(lambda: announced(cli, 23), 45)
    same = wait_until(lambda: counts(cli, INSTANCES) is not None, 20, 0.2)
    rejoined = counts(cli, INSTANCES)
    replica3 = cli.replica("ids3")
    print(f"\nnode: D revived in {t_boot:.1f} s (FRR converged), ids3 ready {t_ready:.1f} s after the revive")
    own0 = {n: cli.state(n)["counters"].get("ids_new_pair", 0) for n in INSTANCES}
    merged0 = {n: ids_of(cli.state(n))[0] for n in INSTANCES}
    finish(sender(lab, SRC["name"], RESCAN_SRC, SINK_ADDR, 30000, 200, 0.004))

    def flagged_everywhere():
        return all(RESCAN_SRC in ids_of(cli.state(n))[1] for n in INSTANCES) and counts(cli, INSTANCES) is not None
    rescan_flagged = wait_until(flagged_everywhere, 20, 0.2)
    states = {n: cli.state(n) for n in INSTANCES}
    own1 = {n: st["counters"].get("ids_new_pair", 0) for n, st in states.items()}
    return SimpleNamespace(rc=rc, out=out, err=err, again=again, calls=calls, ready=ready, learnt=learnt, same=same,
                           rejoined=rejoined, replica3=replica3, merged0=merged0, rescan_flagged=rescan_flagged,
                           states=states, own_delta={n: own1[n] - own0[n] for n in INSTANCES})


def test_revived_node_rejoins_from_a_snapshot_naming_its_old_incarnation_folded(setup, revived):
    assert revived.rc == 0, revived.err
    assert "booted again" in revived.out, revived.out
    rc, _, err = revived.again
    assert rc == 2 and "router D is not killed" in err, revived.again
    bad = statekit.failed_calls(revived.calls)
    assert not bad, bad
    assert revived.ready, revived.replica3
    assert revived.learnt
    r = revived.replica3
    assert r["ready_how"] == "joined from a snapshot", r
    assert r["incarnation"] != setup.ids3_incarnation, r  # a new process: a new incarnation
    assert {"id": 23, "incarnation": setup.ids3_incarnation} in r["folded"], r["folded"]
    # its old incarnation is not a peer any more; it keeps a slot only for the live set adds it
    # made (its flag of the first scan), held reserved until removes make them dead (docs/state.md
    # 3.6); its counts are in the retired totals (test_revived_node_counts_nothing_twice)
    assert all(p["incarnation"] != setup.ids3_incarnation for p in r["peers"]), r["peers"]
    old = [s for s, o in r["slots"].items() if o["incarnation"] == setup.ids3_incarnation]
    assert len(old) <= 1, r["slots"]
    if old:
        assert SCAN_SRC in ids_of(revived.states["ids3"])[1], (r["slots"], ids_of(revived.states["ids3"])[1])


def test_revived_node_counts_nothing_twice(setup, revived):
    """Right after the join, the three hold the counts all three held before the kill: the old
    incarnation's pairs and ports are in the retired totals once, not again in a slot."""
    assert revived.same, revived.rejoined
    assert revived.rejoined == setup.before, (setup.before, revived.rejoined)


def test_every_instance_flags_the_second_scan(setup, revived):
    assert revived.rescan_flagged, {n: ids_of(st)[1] for n, st in revived.states.items()}
    assert all(d > 0 for d in revived.own_delta.values()), revived.own_delta  # WCMP reached ids3 again
    merged = {n: ids_of(st)[0] for n, st in revived.states.items()}
    assert len(set(merged.values())) == 1, merged
    # the merged count grew by exactly the pairs the three saw, once each
    assert all(merged[n] - revived.merged0[n] == sum(revived.own_delta.values()) for n in INSTANCES), \
        (revived.merged0, merged, revived.own_delta)
    for n, st in revived.states.items():
        fl = ids_of(st)[1]
        assert fl[RESCAN_SRC]["ports_in_window"] >= THRESHOLD, (n, fl[RESCAN_SRC])
        assert fl[SCAN_SRC]["ports_in_window"] == setup.before[1], (n, fl[SCAN_SRC], setup.before)
