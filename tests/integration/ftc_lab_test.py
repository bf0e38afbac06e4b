"""FTC (docs/ftc.md) end to end on four nodes with real FRR, anychaind and the built-in NFs
(pytest, issue 13). Root only (exit 77 otherwise).

The lab is scripts/topologies/nf-chain.toml: src -- A -- B -- C -- D -- dst. A classifies; the
chain fw -> mon -> nat is an FTC chain with f = 1 (`ftc: true` in each agent's file, policy
`md_type: 2`): a firewall on B (drops UDP to port 9001), a monitor on C, a NAT on D, each its own
anychain-nf process in its own namespace, each hop over VXLAN-GPE. D's anychaind runs the egress
buffer on the NAT's veth. Each anychaind writes its NFs' FTC control files (`<run_dir>/ftc/
<name>.json`, docs/nf.md "FTC control": f, the peers within f hops either way, the successors)
from the config and the LSDB; the NFs apply them.

What the packets show, read back with `anychain state` (the NFs' head and replica stores),
`anychain status` (the egress buffer) and the sink (anychain-sink: per flow, the packets, the
highest sequence number and the NAT's external address as the source):
- the monitor's log is applied by the NAT (its successor, the tail): every flow's counters are
  held twice, at mon1 (head) and at nat1 (replica), with the same value and sequence;
- the NAT maps each flow once (head); the firewall is a stateless replica hop and appends
  nothing; a packet the firewall filters goes on as a propagating packet and the buffer
  consumes it;
- the sink check: every packet the sink received left the chain with its updates held f + 1
  times, i.e. its flow's monitor count (at least the packet's sequence number) at mon1 and nat1
  and its NAT mapping (the source the sink saw) at nat1 and at its replica fw1 (the NAT's log
  wraps round the chain through the buffer and the ingress forwarder);
- the buffer accounts for every FTC packet it took: released, consumed, still held, or dropped
  by reason; it never releases a packet whose NAT log is held once.
"""
import os
import signal
from types import SimpleNamespace

import pytest

import ftclab
from ftclab import HOLD_TIMEOUT_MS, NAT_ADDR, SRC_ADDR, key_hex, replicas_of
from labkit import wait_until

LAB_KIND = "l"  # lab prefix actl<pid>
CHAIN = ftclab.Chain({
    "fw1": ("B", 11, "fw", "firewall", ftclab.FW_RULE),
    "mon1": ("C", 12, "mon", "monitor", {}),
    "nat1": ("D", 13, "nat", "nat", ftclab.nat_section("20000-20999")),
})
NFS = CHAIN.nfs
# the lab's fixtures (ftclab.py), for CHAIN and LAB_KIND
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured


def test_nfs_run_with_the_control_files_anychaind_writes(configured, cli):
    assert configured.running, {n: cli.nf_status(n) for n in NFS}
    assert configured.control, configured.wrong


def test_every_agent_learns_the_instances_from_ospf(configured):
    assert configured.learnt


def test_the_egress_node_runs_the_buffer_on_the_nats_veth(configured, cli):
    b = cli.buffer("D")
    assert b is not None and "nf-nat1" in b["ports"], b
    assert b["limits"]["hold_timeout_ms"] == HOLD_TIMEOUT_MS
    assert not b["unbound"], b


def snapshot(cli):
    return SimpleNamespace(state={n: cli.state(n) for n in NFS}, buffer=cli.buffer("D"),
                           dp={r: cli.dp(r, ("drops",)) for r in CHAIN.routers})


# Steady state: traffic through the FTC chain, no failure

STREAMS = [(9000, 5, 1, 20, 2), (9001, 2, 1, 10, 1)]  # 10 flows of 20 packets; 2 filtered flows of 10


@pytest.fixture(scope="module")
def steady(cli, lab, build, module_procs, configured):
    before = snapshot(cli)
    gen, sink, _ = ftclab.send(lab, build, module_procs, STREAMS, sink_s=5)
    # held packets are released or expire within the hold timeout
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(gen=gen, sink=sink, before=before, after=snapshot(cli), settled=settled)


def test_traffic_was_sent(steady):
    assert steady.gen[9000]["packets_sent"] == 200 and steady.gen[9000]["flows_started"] == 10
    assert steady.gen[9001]["packets_sent"] == 20


def test_monitor_counts_every_passed_packet_at_its_head(steady):
    mon = steady.after.state["mon1"]
    flows = mon["monitor"]["flows"]
    assert len(flows) == steady.gen[9000]["flows_started"]
    assert all(f["dport"] == 9000 and f["packets"] == steady.gen[9000]["packets_per_flow"] for f in flows), flows
    c = mon["ftc"]["counters"]
    assert c["ftc_log_appended"] == steady.gen[9000]["packets_sent"], c
    assert c.get("ftc_bad_tlv", 0) == c.get("ftc_unknown_mbox", 0) == c.get("ftc_no_ctrl", 0) == 0, c


def test_nat_replicates_the_monitor_log_with_the_same_values_and_sequence(steady):
    """f = 1: the monitor's successor holds the second copy of every flow's counters, equal to
    the head's, at the sequence number of the flow's last packet, and strips the log (tail)."""
    mon, nat = steady.after.state["mon1"], steady.after.state["nat1"]
    rep = replicas_of(nat, NFS["mon1"][1])
    per_flow = steady.gen[9000]["packets_per_flow"]
    assert len(rep) == len(mon["monitor"]["flows"])
    for f in mon["monitor"]["flows"]:
        value, seq = rep[key_hex(f)]
        assert int(value[:16], 16) == f["packets"] == per_flow and int(value[16:32], 16) == f["bytes"], (f, value)
        assert seq == per_flow, (f, seq)
    c = nat["ftc"]["counters"]
    assert c["ftc_applied"] == steady.gen[9000]["packets_sent"], c
    assert c["ftc_tail_stripped"] >= steady.gen[9000]["packets_sent"], c
    assert c.get("ftc_gap", 0) == c.get("ftc_stale", 0) == c.get("ftc_unknown_mbox", 0) == 0, c


def test_nat_maps_each_flow_once_as_its_head(steady):
    nat = steady.after.state["nat1"]
    maps = nat["nat"]["mappings"]
    assert nat["counters"]["nat_new"] == len(maps) == steady.gen[9000]["flows_started"]
    assert {m["src"] for m in maps} == {SRC_ADDR} and {m["dport"] for m in maps} == {9000}
    assert len({m["external_port"] for m in maps}) == len(maps)
    assert all(m["external"] == NAT_ADDR and 20000 <= m["external_port"] <= 20999 for m in maps), maps


def test_firewall_appends_nothing_and_filtered_packets_propagate(steady):
    fw = steady.after.state["fw1"]
    c = fw["ftc"]["counters"]
    assert c.get("ftc_log_appended", 0) == c.get("ftc_noop_appended", 0) == 0, c
    assert fw["ftc"]["records"] == 0
    assert c["ftc_filtered"] == steady.gen[9001]["packets_sent"], c
    assert fw["firewall"]["rules"][0]["packets"] == steady.gen[9001]["packets_sent"]


def test_buffer_accounts_for_every_packet(steady):
    """Each packet of the chain reaches D's buffer: the 200 passed ones are held, released or
    dropped by reason; the 20 filtered ones arrive as propagating packets and are consumed (as
    are the forwarder's propagating packets, once the FTC channel brings it feedback)."""
    assert steady.settled, steady.after.buffer
    b, a = steady.before.buffer["ports"]["nf-nat1"], steady.after.buffer["ports"]["nf-nat1"]
    d = {k: a[k] - b[k] for k in a if k != "held_bytes"}
    # consumed: the filtered packets, and any propagating packet of the ingress forwarder
    assert d["consumed"] >= steady.gen[9001]["packets_sent"], d
    assert d["drop_bad_nsh"] == d["drop_not_ftc"] == d["release_failed"] == d["drop_fenced"] == 0, d
    # every data packet reached the buffer's socket or was released by the chain's end itself
    assert d["rx"] - d["consumed"] + d["released_at_chain_end"] == steady.gen[9000]["packets_sent"], d
    assert d["rx"] == d["released"] + d["consumed"] + d["held"] + d["drop_full"] + d["drop_expired"], d
    assert d["released"] + d["released_at_chain_end"] == steady.sink["packets"], (d, steady.sink["packets"])


def test_every_packet_the_sink_received_was_held_f_plus_one_times(steady):
    assert not ftclab.f_plus_one_violations(CHAIN, steady.sink, steady.after.state)


def test_no_packet_leaves_while_the_nats_log_is_held_once(steady):
    """The NAT is the last hop: its log (the mapping, then no-ops) reaches the buffer held once.
    Only the ingress forwarder can take it round the chain to fw1, the second copy; until a
    packet brings back its commit, nothing of the flow is released."""
    nat_rep = replicas_of(steady.after.state["fw1"], NFS["nat1"][1])
    b, a = steady.before.buffer["ports"]["nf-nat1"], steady.after.buffer["ports"]["nf-nat1"]
    released = ftclab.left(a) - ftclab.left(b)
    if not nat_rep:
        # no NAT log ever came round to fw1: nothing could commit, every packet expired
        assert released == 0 and steady.sink["packets"] == 0, (released, steady.sink)
        assert a["drop_expired"] - b["drop_expired"] == steady.gen[9000]["packets_sent"]
    else:
        assert released == steady.sink["packets"] > 0


# The monitor's process is SIGKILLed mid-stream (its node's anychaind restarts it)

@pytest.fixture(scope="module")
def monitor_killed(cli, lab, build, module_procs, steady):
    before = snapshot(cli)
    dp_before = {r: cli.dp(r) for r in ("B", "C")}

    def kill():
        # the NAT's copy of the monitor's records the moment the monitor died
        rep = replicas_of(cli.state("nat1"), NFS["mon1"][1])
        pid = cli.nf_status("mon1")["pid"]
        os.kill(pid, signal.SIGKILL)
        return SimpleNamespace(pid=pid, rep=rep)
    # 4 flows/s of 3 s at 20 packets/s for 3 s; the kill 1.5 s in
    gen, sink, killed = ftclab.send(lab, build, module_procs, [(9000, 4, 3, 20, 3)], sink_s=8, during=(1.5, kill))
    back = wait_until(lambda: cli.nf_status("mon1")["alive"], 15)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(before=before, after=snapshot(cli), gen=gen[9000], sink=sink, killed=killed, back=back,
                           settled=settled, dp=(dp_before, {r: cli.dp(r) for r in ("B", "C")}),
                           status={n: cli.nf_status(n) for n in NFS},
                           recovery=cli.json(CHAIN.nfs["mon1"][0], "status").get("ftc_recovery"))


def test_monitor_died_mid_stream_and_is_restarted(monitor_killed):
    k = monitor_killed
    assert k.killed.rep, "the NAT held replicas of the monitor when it died"
    st = k.status["mon1"]
    assert k.back and st["deaths"] == 1 and st["pid"] != k.killed.pid, st


def test_monitors_packets_were_frozen_while_it_was_down(monitor_killed):
    """Packets for the dead monitor were dropped as drop_ftc_recovering (at C, its node, from the
    process's exit; at B, which places the monitor hop, if the LSDB said so first), never sent
    on without it."""
    b, a = monitor_killed.dp
    frozen = sum(a[r].get("drop_ftc_recovering", 0) - b[r].get("drop_ftc_recovering", 0) for r in a)
    assert frozen > 0, (b, a)


def test_the_nats_replicas_of_the_monitor_never_go_back(monitor_killed):
    """With f = 1 the NAT holds the only copy of the monitor's records once the monitor died:
    every record it held then is still there afterwards, at the same or a later sequence number
    (the order rule never moves a record backwards). Recovery (docs/ftc.md 7) is not run by the
    daemon yet: the restarted monitor starts empty, and its logs overwrite a partition's record
    once their sequence passes the old one, so the counts before the failure are lost; that the
    restarted monitor holds them is what this phase must check once recovery runs."""
    now = replicas_of(monitor_killed.after.state["nat1"], NFS["mon1"][1])
    for key, (value, seq) in monitor_killed.killed.rep.items():
        assert key in now and now[key][1] >= seq and int(now[key][0][:16], 16) >= int(value[:16], 16), key


def test_fw_and_nat_keep_their_processes_and_the_nats_mappings(monitor_killed):
    k = monitor_killed
    for n in ("fw1", "nat1"):
        assert k.status[n]["deaths"] == 0 and k.status[n]["pid"] == k.before.state[n]["pid"], k.status[n]
    kept = {key_hex(m): m["external_port"] for m in k.after.state["nat1"]["nat"]["mappings"]}
    for m in k.before.state["nat1"]["nat"]["mappings"]:
        assert kept.get(key_hex(m)) == m["external_port"], m


def test_flows_after_the_restart_are_counted_whole_and_replicated(monitor_killed):
    """A flow the restarted monitor saw from its first packet has every packet counted at the
    head and the same value and sequence at the NAT."""
    k = monitor_killed
    rep = replicas_of(k.after.state["nat1"], NFS["mon1"][1])
    whole = [f for f in k.after.state["mon1"]["monitor"]["flows"]
             if f["packets"] == k.gen["packets_per_flow"] and key_hex(f) not in k.killed.rep]
    assert whole, k.after.state["mon1"]["monitor"]["flows"]
    for f in whole:
        value, seq = rep[key_hex(f)]
        assert int(value[:16], 16) == f["packets"] == seq, (f, value, seq)


def test_buffer_released_nothing_uncommitted_during_the_failure(monitor_killed):
    k = monitor_killed
    assert k.settled
    b, a = k.before.buffer["ports"]["nf-nat1"], k.after.buffer["ports"]["nf-nat1"]
    assert ftclab.left(a) - ftclab.left(b) == k.sink["packets"]
    assert not ftclab.f_plus_one_violations(CHAIN, k.sink, k.after.state)
