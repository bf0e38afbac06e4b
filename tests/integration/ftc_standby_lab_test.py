"""A standby takes over an FTC NAT whose node failed, and the node that comes back stands down
(docs/ftc.md 7.3), end to end on five nodes with real FRR and the built-in NFs (pytest, issue
13). Root only (exit 77 otherwise).

The lab is scripts/topologies/nf-standby.toml: src -- A -- B -- C -- D, with E beside C and D
hosting the sink. The FTC chain fw (B) -> mon (C) -> nat (D), f = 1, the FTC channel keyed on
every agent; E's file has a standby for the NAT (`standby_for`, same service, address and port
block), announced as a standby LSA. Then, under traffic:
- D fails as a whole (`scripts/lab kill-node`: FRR, anychaind and the NAT's process SIGKILLed,
  its links down) while fw1 holds the NAT's mappings (with f = 1 their only other copy);
- E's anychaind finds the NAT failed (its router lost), its standby acts: it runs as the NAT
  with the next incarnation, recovers the mappings from fw1 over the channel before it is
  announced, and the frozen flows resume on it: every flow that spanned the failure leaves the
  chain from the same external port as before it (the sink sees one source per flow), every
  mapping fw1 held is at E's NAT, and traffic reaches the sink again;
- D comes back (links up, zebra, ospfd and anychaind started again as the lab did): its agent
  sees instance 23 live on E with a newer incarnation and stands down: its own NAT is not run or
  announced, it announces a standby for it instead; E keeps the NAT and its flows, and new
  traffic still goes through E with the recovered mappings;
- D's agent restarts (a flap): it stands down again; then E's agent is SIGKILLed while its standby
  runs as the NAT and started again: the new agent knows its standby acts, runs it as the next
  incarnation and recovers the mappings from fw1 before announcing it.
"""
import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

import ftclab
import labkit
from ftclab import key_hex, mapping_hex, replicas_of
from labkit import wait_until

LAB_KIND = "sb"  # lab prefix actsb<pid>
CHANNEL_KEYED = True
NAT_ID = 23
NAT_PORTS = ftclab.nat_section("21000-21999")
CHAIN = ftclab.Chain({
    "fw1": ("B", 21, "fw", "firewall", ftclab.FW_RULE),
    "mon1": ("C", 22, "mon", "monitor", {}),
    "nat1": ("D", NAT_ID, "nat", "nat", NAT_PORTS),
}, standbys={"natsb": ("E", NAT_ID, "nat", "nat", NAT_PORTS)},
    topo_file=os.path.join(labkit.TOPOS, "nf-standby.toml"))
E_ID = CHAIN.topo["routers"]["E"]["router_id"]
D_ID = CHAIN.topo["routers"]["D"]["router_id"]
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured


def standby_status(cli, router):
    """`anychain status`'s ftc_standby on `router`; empty while its agent does not answer."""
    try:
        return (cli.json(router, "status") or {}).get("ftc_standby") or {}
    except RuntimeError:
        return {}


def nat_on_e(cli):
    """`anychain state` of the standby's NF on E (it runs under the standby entry's name)."""
    return cli.json("E", "state", "natsb")


def drop_ttl(cli):
    """Packets whose TTL ran out at D and E (a loop between them), from their pinned counters."""
    return sum(ftclab.Cli.dp(cli, r).get("drop_ttl", 0) for r in ("D", "E"))


def sink_sources(sink):
    return {f["flow_id"]: f["sources"] for f in sink["per_flow"]}


def test_the_standby_is_announced_and_stands_by(configured, cli):
    assert configured.running and configured.learnt, configured
    sb = standby_status(cli, "E")
    assert sb.get("replacements_started") == 0 and sb["running_as"] == [], sb
    assert [s["id"] for s in sb["standbys"]] == [NAT_ID] and sb["standbys"][0]["state"] == "standing by", sb
    # every router sees E's standby LSA for the NAT, and only D's instance as a candidate
    for r in CHAIN.routers:
        t = cli.json(r, "topology")
        nat = [i for s in t["services"] for i in s["instances"] if i["id"] == NAT_ID]
        assert len(nat) == 1 and nat[0]["router"] == D_ID, (r, nat)


@pytest.fixture(scope="module")
def node_lost(cli, lab, build, module_procs, configured):
    """New flows for 6 s (4 per second, each 20 packets/s for 3 s); 1.5 s in, D fails as a whole.
    What fw1 held of the NAT at that moment is its mappings' only other copy."""
    argv = {d: labkit.daemon_argv(f"{lab.state}/D", d)[1] for d in ("zebra", "ospfd")}

    timeline = []

    def watch(t0):
        # what E and A show of the NAT every 0.5 s after the kill (the assertions' context)
        while time.monotonic() - t0 < 30 and not (timeline and timeline[-1][1] == "live"):
            row = [round(time.monotonic() - t0, 1)]
            try:
                for r in ("E", "A"):
                    st = cli.json(r, "status")
                    nat = [(i["router"], i["recovering"]) for s in cli.json(r, "topology")["services"]
                           for i in s["instances"] if i["id"] == NAT_ID]
                    row += [r, st["recompute"]["count"], st["ospf"]["lsdb_trusted"], nat]
                row.insert(1, "live" if (E_ID, False) in row[-1] else "")
            except RuntimeError as e:
                row.append(str(e))
            timeline.append(row)
            time.sleep(0.5)

    def kill():
        rep = replicas_of(cli.state("fw1"), NAT_ID)
        t = time.monotonic()
        r = labkit.lab("kill-node", "D", "--prefix", lab.prefix)
        threading.Thread(target=watch, args=(t,), daemon=True).start()
        return SimpleNamespace(rep=rep, rc=r[0], out=r[1] + r[2], t=t)
    gen, sink, killed = ftclab.send(lab, build, module_procs, [(9000, 4, 3, 20, 6)], sink_s=12,
                                    during=(1.5, kill), chain=CHAIN)
    acted = wait_until(lambda: standby_status(cli, "E").get("running_as") == [NAT_ID], 20)
    live = wait_until(lambda: any(i["id"] == NAT_ID and i["router"] == E_ID and not i.get("recovering")
                                  for s in cli.json("A", "topology")["services"] for i in s["instances"]), 20)
    return SimpleNamespace(argv=argv, timeline=timeline, gen=gen[9000], sink=sink, killed=killed, acted=acted, live=live,
                           standby=standby_status(cli, "E"), recovery=cli.json("E", "status").get("ftc_recovery"),
                           holder=cli.json("B", "status").get("ftc_recovery"), nat=nat_on_e(cli),
                           nat_seen={r: [i for s in cli.json(r, "topology")["services"] for i in s["instances"]
                                         if i["id"] == NAT_ID] for r in ("A", "B", "C", "E")})


def test_the_standby_on_e_acts_and_recovers_the_nat(node_lost):
    k = node_lost
    assert k.killed.rc == 0, k.killed.out
    assert k.killed.rep, "fw1 held the NAT's mappings when D failed"
    assert k.acted and k.live, "\n".join(str(x) for x in [*k.timeline, k.standby, k.nat_seen, k.recovery])
    assert k.standby["replacements_started"] == 1, k.standby
    last = k.recovery["last"][str(NAT_ID)]
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last
    assert last["incarnation"] == k.nat["ftc"]["control"]["incarnation"], (last, k.nat["ftc"])
    assert k.holder["requests_answered"] >= 1 and k.holder["answer_errors"] == 0, k.holder


def test_every_mapping_fw1_held_is_at_the_standby(node_lost):
    now = {key_hex(m): mapping_hex(m) for m in node_lost.nat["nat"]["mappings"]}
    for key, (value, _seq) in node_lost.killed.rep.items():
        assert key in now and value.startswith(now[key]), (key, value, now.get(key))
    assert len(set(now.values())) == len(now), "no two flows share an external port"


def test_flows_that_spanned_the_failure_keep_their_external_port(node_lost):
    """The sink saw each flow from one external address and port: the flows that crossed D's
    failure and reached the sink after it left E's NAT from the port D's NAT had given them (a
    flow re-mapped without its state would show a second source)."""
    k = node_lost
    by_ext = {f"{m['external']}:{m['external_port']}": key_hex(m) for m in k.nat["nat"]["mappings"]}
    spanning = [f for f in k.sink["per_flow"] if any(by_ext.get(s) in k.killed.rep for s in f["sources"])]
    assert spanning, "some flows were running when D failed"
    assert all(len(f["sources"]) == 1 for f in k.sink["per_flow"]), \
        [(f["flow_id"], f["sources"]) for f in k.sink["per_flow"] if len(f["sources"]) != 1]
    # (whether they resume after the takeover is not asserted: in 1 of 3 runs none did, the
    # replacement holding gaps of the monitor's logs, docs/ftc.md 7.7 "Found by
    # ftc_nat_recovery_lab"; the flows that start after the recovery are checked below)


def test_traffic_reaches_the_sink_through_the_standby(node_lost):
    ftclab.check_delivered_after_recovery(node_lost)


@pytest.fixture(scope="module")
def node_back(cli, lab, build, module_procs, node_lost):
    """D back: its links up, zebra and ospfd started again with their command lines, its
    anychaind started again by the lab (its file unchanged: it still configures nat1)."""
    ns = lab.ns("D")
    for itf in CHAIN.topo["routers"]["D"]["interfaces"]:
        if itf["kind"] == "link":
            labkit.run(["ip", "-n", ns, "link", "set", itf["name"], "up"])
    for d in ("zebra", "ospfd"):
        labkit.run(["ip", "netns", "exec", ns, *node_lost.argv[d]])
    rc = labkit.lab("agent", "start", "D", "--prefix", lab.prefix)[0]
    answers = not labkit.silent_agents(build.cli, lab.state, ["D"])

    def stood_down():
        sb = standby_status(cli, "D")
        return [x["id"] for x in sb.get("stood_down", [])] == [NAT_ID]
    down = wait_until(stood_down, 40)

    # new flows right after D stood down (its restarted ospfd re-floods the live LSA of instance 23
    # it had before the kill until its agent replaces it: every router keeps E's, the newer
    # incarnation, plane.keeps_instance), and again once D's return has settled
    ttl0 = drop_ttl(cli)
    gen0, sink0, _ = ftclab.send(lab, build, module_procs, [(9000, 4, 2, 20, 3)], sink_s=7, chain=CHAIN)
    ttl1 = drop_ttl(cli)
    time.sleep(10)
    gen, sink, _ = ftclab.send(lab, build, module_procs, [(9000, 4, 2, 20, 3)], sink_s=7, chain=CHAIN)
    time.sleep(1)
    return SimpleNamespace(rc=rc, answers=answers, down=down, gen=gen[9000], sink=sink, gen0=gen0[9000], sink0=sink0,
                           ttl=(ttl0, ttl1, drop_ttl(cli)), superseded={r: cli.json(r, "topology")["superseded"]
                                                                       for r in CHAIN.routers},
                           d=standby_status(cli, "D"), e=standby_status(cli, "E"),
                           d_nf=cli.json("D", "status").get("nf", []),
                           topo={r: cli.json(r, "topology") for r in CHAIN.routers}, nat=nat_on_e(cli))


def test_the_node_that_comes_back_stands_down(node_back):
    """D's agent does not run or announce its NAT: instance 23 is live on E; D stands by for it."""
    k = node_back
    assert k.rc == 0 and k.answers, k
    assert k.down, k.d
    assert k.d["stood_down"] == [{"id": NAT_ID, "live_on": E_ID}] and k.d["stand_downs"] == 1, k.d
    assert not any(n["name"] == "nat1" and n["alive"] for n in k.d_nf), k.d_nf
    assert [s["id"] for s in k.d["standbys"]] == [NAT_ID], k.d
    assert k.e["running_as"] == [NAT_ID] and k.e["replacements_started"] == 1, k.e
    for r, t in k.topo.items():
        nat = [i for s in t["services"] for i in s["instances"] if i["id"] == NAT_ID]
        assert [i["router"] for i in nat] == [E_ID], (r, nat)


def test_the_flows_stay_on_the_standby_after_the_node_is_back(node_back, node_lost):
    """Once D's return has settled, new flows go through E's NAT (its mappings grow, each flow from one port of the block),
    every one reaches the sink whole, and the flows recovered from fw1 keep their mappings."""
    k = node_back
    assert k.sink["per_flow"], (k.sink["packets"], k.ttl)
    assert k.ttl[2] == k.ttl[1], ("packets looped between D and E after the return settled", k.ttl)
    ppf = k.gen["packets_per_flow"]
    assert all(f["max_seq"] == ppf - 1 and len(f["sources"]) == 1 for f in k.sink["per_flow"]), \
        [(f["flow_id"], f["packets"], f["max_seq"], f["sources"]) for f in k.sink["per_flow"]]
    assert len(k.nat["nat"]["mappings"]) > len(node_lost.nat["nat"]["mappings"]), "new flows mapped at E"
    now = {key_hex(m): mapping_hex(m) for m in k.nat["nat"]["mappings"]}
    for key, (value, _seq) in node_lost.killed.rep.items():
        assert key in now and value.startswith(now[key]), (key, value, now.get(key))


def test_flows_right_after_the_node_is_back_reach_the_sink(node_back):
    """While D's restarted ospfd still re-floods the live LSA of the NAT it had before the kill, two
    routers announce instance 23 live: every router keeps E's (the newer incarnation), so the
    chain's packets reach exactly one NAT and do not loop between D and E (they did, until their
    TTL ran out, before the plane kept one announcement per instance id)."""
    k = node_back
    assert k.ttl[1] == k.ttl[0], ("packets looped between D and E right after D stood down", k.ttl)
    ppf = k.gen0["packets_per_flow"]
    assert k.sink0["per_flow"] and all(f["max_seq"] == ppf - 1 and len(f["sources"]) == 1
                                       for f in k.sink0["per_flow"]), \
        (k.sink0["packets"], k.ttl, [(f["flow_id"], f["packets"], f["max_seq"], f["sources"])
                                     for f in k.sink0["per_flow"]])
    assert len(k.sink0["per_flow"]) == k.gen0["flows_started"], (len(k.sink0["per_flow"]), k.gen0)
    # nobody keeps D's old announcement as the candidate once its agent replaced it
    for r, sup in k.superseded.items():
        assert all(x["kept_on"] == E_ID for x in sup if x["id"] == NAT_ID), (r, sup)


@pytest.fixture(scope="module")
def node_flaps(cli, lab, build, module_procs, node_back):
    """D's agent restarts (a flap) while new flows run through E: its new agent finds the NAT
    configured as its own instance again (its file is unchanged), stands down again from the LSDB
    before running or announcing it, and the flows never reach D's NAT or loop."""
    ttl0 = drop_ttl(cli)

    def restart():
        return labkit.lab("agent", "restart", "D", "--prefix", lab.prefix)
    gen, sink, restarted = ftclab.send(lab, build, module_procs, [(9000, 4, 2, 20, 6)], sink_s=10,
                                       during=(1.0, restart), chain=CHAIN)

    def stood_down():
        sb = standby_status(cli, "D")
        return [x["id"] for x in sb.get("stood_down", [])] == [NAT_ID]
    down = wait_until(stood_down, 40)
    return SimpleNamespace(rc=restarted[0], out=restarted[1] + restarted[2], down=down, gen=gen[9000], sink=sink,
                           ttl=(ttl0, drop_ttl(cli)), d=standby_status(cli, "D"), e=standby_status(cli, "E"),
                           d_nf=cli.json("D", "status").get("nf", []),
                           topo={r: cli.json(r, "topology") for r in CHAIN.routers}, nat=nat_on_e(cli))


def test_a_flap_of_the_node_that_stood_down_moves_nothing(node_flaps, node_lost):
    k = node_flaps
    assert k.rc == 0, k.out
    assert k.down, k.d
    assert k.d["stood_down"] == [{"id": NAT_ID, "live_on": E_ID}], k.d
    assert not any(n["name"] == "nat1" and n["alive"] for n in k.d_nf), k.d_nf
    assert k.e["running_as"] == [NAT_ID] and k.e["replacements_started"] == 1 and k.e["stand_downs"] == 0, k.e
    for r, t in k.topo.items():
        nat = [i for s in t["services"] for i in s["instances"] if i["id"] == NAT_ID]
        assert [i["router"] for i in nat] == [E_ID], (r, nat)
    assert k.ttl[1] == k.ttl[0], ("packets looped between D and E while D's agent restarted", k.ttl)
    # every flow sent across the restart reached the sink whole, from one external port
    ppf = k.gen["packets_per_flow"]
    assert len(k.sink["per_flow"]) == k.gen["flows_started"] and all(
        f["max_seq"] == ppf - 1 and len(f["sources"]) == 1 for f in k.sink["per_flow"]), \
        (k.gen["flows_started"], [(f["flow_id"], f["packets"], f["max_seq"], f["sources"]) for f in k.sink["per_flow"]])
    now = {key_hex(m): mapping_hex(m) for m in k.nat["nat"]["mappings"]}
    for key, (value, _seq) in node_lost.killed.rep.items():
        assert key in now and value.startswith(now[key]), (key, value, now.get(key))


@pytest.fixture(scope="module")
def standby_agent_killed(cli, lab, build, module_procs, node_flaps):
    """E's anychaind SIGKILLed while its standby runs as the NAT (the NF dies with it) and started
    again 0.5 s later under new flows: the new agent must know its standby acts (E's file still
    says standby), run it as the NAT's next incarnation, recover the mappings from fw1 and announce
    it, while D stays stood down."""
    before = nat_on_e(cli)
    inc_before = before["ftc"]["control"]["incarnation"]

    def kill():
        rep = replicas_of(cli.state("fw1"), NAT_ID)
        with open(f"{lab.state}/E/agent.pid") as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        rc, out, err = labkit.lab("agent", "start", "E", "--prefix", lab.prefix)
        return SimpleNamespace(rep=rep, rc=rc, out=out + err)
    gen, sink, killed = ftclab.send(lab, build, module_procs, [(9000, 4, 2, 20, 6)], sink_s=12,
                                    during=(1.0, kill), chain=CHAIN)

    def live_on_e():
        return all(any(i["id"] == NAT_ID and i["router"] == E_ID and not i.get("recovering")
                       for s in cli.json(r, "topology")["services"] for i in s["instances"]) for r in CHAIN.routers)
    live = wait_until(live_on_e, 20)
    return SimpleNamespace(killed=killed, gen=gen[9000], sink=sink, live=live, inc_before=inc_before,
                           e=standby_status(cli, "E"), d=standby_status(cli, "D"), nat=nat_on_e(cli),
                           recovery=cli.json("E", "status").get("ftc_recovery"),
                           topo={r: cli.json(r, "topology") for r in CHAIN.routers})


def test_a_standby_acting_when_its_agent_dies_still_acts_after_the_restart(standby_agent_killed):
    """The new agent on E runs its standby as instance 23 again (its acting set outlives the agent,
    docs/ftc.md 7.3), as the next incarnation, its state recovered from fw1 before it is announced:
    every mapping fw1 held at the kill is at E's NAT; D stays stood down; no router sees the NAT
    anywhere but on E. Before, E's new agent took its entry for a standby again: nobody ran the
    NAT until D's stood-down copy acted."""
    k = standby_agent_killed
    assert k.killed.rc == 0 and k.killed.rep, k.killed
    assert k.live, (k.e, k.d, {r: [i for s in t["services"] for i in s["instances"] if i["id"] == NAT_ID]
                               for r, t in k.topo.items()})
    assert k.e["running_as"] == [NAT_ID], k.e
    assert k.d["stood_down"] == [{"id": NAT_ID, "live_on": E_ID}], k.d
    assert k.nat["ftc"]["control"]["incarnation"] == (k.inc_before + 1) % 256, (k.inc_before, k.nat["ftc"])
    last = k.recovery["last"][str(NAT_ID)]
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last
    now = {key_hex(m): mapping_hex(m) for m in k.nat["nat"]["mappings"]}
    for key, (value, _seq) in k.killed.rep.items():
        assert key in now and value.startswith(now[key]), (key, value, now.get(key))


def test_flows_after_the_standbys_agent_restarted_reach_the_sink(standby_agent_killed):
    """The chain carries traffic through E's NAT again: the last flows of the phase (started 1 s
    or more after the restart, 2 s long) reach the sink whole, each from one external port."""
    k = standby_agent_killed
    ppf = k.gen["packets_per_flow"]
    whole = [f for f in k.sink["per_flow"] if f["max_seq"] == ppf - 1 and len(f["sources"]) == 1]
    assert whole, [(f["flow_id"], f["packets"], f["max_seq"], f["sources"]) for f in k.sink["per_flow"]]
