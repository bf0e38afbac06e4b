"""FTC recovery run by anychaind (docs/ftc.md 7.3-7.5), end to end on four nodes with real FRR
and the built-in NFs (pytest, issue 13). Root only (exit 77 otherwise).

The lab and the chain are ftc_lab_test.py's (fw on B -> mon on C -> nat on D, f = 1, traffic and
the kill from its fixtures), with one difference: every agent has the FTC channel's key
(`ftc.key_file`), so the channel opens between the agents. Then
- the egress buffer's FEEDBACK reaches A's forwarder, the NAT's log comes round the chain to fw1
  and packets are released, each with its updates on f + 1 stores (the sink check);
- when the monitor's process is SIGKILLed mid-stream, C's anychaind restarts it as incarnation + 1
  and, before announcing it, recovers its head records over the channel from the holders the
  plane names (the NAT, its successor: with f = 1 the only other copy), installs them into the
  new process's maps, and times detection, transfer and rerouting (`anychain status`'s
  `ftc_recovery`);
- the sink check holds across that failure, flows that spanned it included;
- flows sent from two CPUs at once (two_cpu_sender.py) lose no update;
- the NAT's namespace deleted mid-stream: D's anychaind recovers its mappings from fw1 (its
  successor round the chain), every flow keeps its external port, the sink check holds;
- the NAT withdrawn while its process lives (veth down), then the monitor killed: D still answers
  from the NAT's maps and the monitor gets every record back;
- the same once the NAT has left C's plane altogether (its recovery hold over): no instance in
  the plane names D as the monitor's holder any more, C's memory of recent holders
  (FtcHolderMemory) still asks D, and the monitor gets every record back.
"""

import json
import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

import ftclab
import labkit
from ftclab import key_hex, replicas_of
from labkit import wait_until
# the phases of ftc_lab_test.py (fixtures only: its tests are not collected again here)
from ftc_lab_test import CHAIN, NFS, monitor_killed, snapshot, steady  # noqa: F401

LAB_KIND = "r"  # lab prefix actr<pid>
CHANNEL_KEYED = True
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured


def test_the_channel_is_open_on_every_agent(configured, cli):
    for r in ("A", "B", "C", "D"):
        ch = cli.json(r, "status").get("ftc_channel")
        assert ch and "error" not in ch, (r, ch)


def test_released_packets_had_their_updates_on_f_plus_one_stores(steady):
    """The NAT's log came round to fw1 through the buffer's FEEDBACK and A's forwarder: packets
    were released, every one the sink received, each with its flow's monitor count and NAT
    mapping held twice."""
    assert replicas_of(steady.after.state["fw1"], NFS["nat1"][1]), "the NAT's log reached its replica fw1"
    b, a = steady.before.buffer["ports"]["nf-nat1"], steady.after.buffer["ports"]["nf-nat1"]
    assert ftclab.left(a) - ftclab.left(b) == steady.sink["packets"] > 0, (a, b, steady.sink)
    assert not ftclab.f_plus_one_violations(CHAIN, steady.sink, steady.after.state)


def test_the_restarted_monitor_recovered_its_records_before_it_was_announced(monitor_killed):
    """Every record the NAT held for the monitor when it died is at the restarted monitor with at
    least that count (without recovery it starts empty and those counts are lost); the recovery
    installed them with nothing lost and no error, and its phases are in C's status."""
    k = monitor_killed
    assert k.back, k.status["mon1"]
    assert k.killed.rep, "the NAT held the monitor's records when it died"
    head = {key_hex(f): f["packets"] for f in k.after.state["mon1"]["monitor"]["flows"]}
    for key, (value, _seq) in k.killed.rep.items():
        assert key in head and head[key] >= int(value[:16], 16), (key, value, head.get(key))
    rec = k.recovery
    assert rec and rec["started"] == 1 and rec["without_state"] == 0 and rec["conflicts"] == 0, rec
    last = rec["last"][str(NFS["mon1"][1])]
    assert last["incarnation"] == k.after.state["mon1"]["ftc"]["control"]["incarnation"], (last, k.after.state["mon1"]["ftc"])
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last
    assert last["detection_ms"] > 0 and last["transfer_ms"] > 0 and last["rerouting_ms"] > 0, last


def test_the_nat_answered_as_the_holder(monitor_killed, cli):
    """D's agent answered the recovery's requests from the NAT's maps and fenced the monitor's
    records with the new incarnation first (docs/ftc.md 7.5)."""
    rec = cli.json("D", "status")["ftc_recovery"]
    assert rec["requests_answered"] >= 1 and rec["records_sent"] >= len(monitor_killed.killed.rep), rec
    assert rec["records_fenced"] >= len(monitor_killed.killed.rep) and rec["answer_errors"] == 0, rec



def test_packets_released_across_the_failure_had_their_updates_on_f_plus_one_stores(monitor_killed):
    """The sink check over the phase with the kill, flows that spanned it included
    (ftclab.check_released_across_failure), and traffic through the chain after the recovery."""
    ftclab.check_released_across_failure(CHAIN, monitor_killed)
    ftclab.check_delivered_after_recovery(monitor_killed)


@pytest.fixture(scope="module")
def two_cpus(cli, lab, build, module_procs, monitor_killed):
    """Each of 8 flows sent from CPU 0 and CPU 1 at once (two_cpu_sender.py: one socket per
    flow and CPU on the same source port), 1,000 packets per second per flow for 0.4 s: the
    same partitions' transactions on two CPUs of every hop, their packets free to overtake each
    other on the way."""
    before = snapshot(cli)
    receiver = labkit.sink_start(lab, build, module_procs, ftclab.SINK, 6)
    r = labkit.run(["ip", "netns", "exec", lab.ns(ftclab.SRC["name"]), sys.executable,
                    os.path.join(os.path.dirname(__file__), "two_cpu_sender.py"), "--dst", ftclab.SINK_ADDR,
                    "--flows", "8", "--packets", "400", "--rate", "1000", "--flow-id-base", "50001"])
    sent = json.loads(r.stdout.splitlines()[-1])
    sink = labkit.sink_report(receiver)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(sent=sent, sink=sink, before=before, after=snapshot(cli), settled=settled)


def test_flows_sent_from_two_cpus_at_once_lose_no_update(two_cpus):
    """Every packet sent from both CPUs is released and received (none dropped, none expired in
    a hold), and each flow's count at the monitor and at its replica is exactly the packets the
    sink received, with the replica at the head's sequence number: no update lost or applied
    twice whatever the interleaving."""
    k = two_cpus
    assert k.settled and k.sent["send_errors"] == 0 and min(k.sent["per_cpu"]) > 0, k.sent
    assert k.sink["packets"] == k.sent["packets_sent"] == 8 * 400, (k.sent, k.sink["packets"])
    b, a = k.before.buffer["ports"]["nf-nat1"], k.after.buffer["ports"]["nf-nat1"]
    assert ftclab.left(a) - ftclab.left(b) == k.sink["packets"], (a, b)
    bad = ftclab.f_plus_one_violations(CHAIN, k.sink, k.after.state)
    assert not bad, bad
    by_ext = {f"{m['external']}:{m['external_port']}": key_hex(m) for m in k.after.state["nat1"]["nat"]["mappings"]}
    head = {key_hex(f): f["packets"] for f in k.after.state["mon1"]["monitor"]["flows"]}
    rep = replicas_of(k.after.state["nat1"], NFS["mon1"][1])
    # counted in this phase: a flow of an earlier phase may have had the same 5-tuple
    was = {key_hex(f): f["packets"] for f in k.before.state["mon1"]["monitor"]["flows"]}
    for f in k.sink["per_flow"]:
        (src,) = f["sources"]
        kh = by_ext[src]
        assert head[kh] == int(rep[kh][0][:16], 16) == rep[kh][1], (f, head[kh], rep[kh])
        assert head[kh] - was.get(kh, 0) == f["packets"] == 400, (f, head[kh], was.get(kh))


@pytest.fixture(scope="module")
def agent_killed(cli, lab, build, module_procs, two_cpus):
    """C's anychaind SIGKILLed mid-stream (its NFs die with it: the monitor's process goes), and
    started again 0.5 s later, as a service manager would."""
    before = snapshot(cli)
    inc_before = before.state["mon1"]["ftc"]["control"]["incarnation"]

    def kill():
        rep = replicas_of(cli.state("nat1"), NFS["mon1"][1])
        with open(f"{lab.state}/C/agent.pid") as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        rc = labkit.lab("agent", "start", "C", "--prefix", lab.prefix)[0]
        return SimpleNamespace(rep=rep, pid=pid, rc=rc)
    # the agent's own start (maps, ospfd, its NFs) comes before the recovery: new flows for 6 s
    gen, sink, killed = ftclab.send(lab, build, module_procs, [(9000, 4, 3, 20, 6)], sink_s=12, during=(1.5, kill))
    back = wait_until(lambda: cli.nf_status("mon1")["alive"], 20)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    after = snapshot(cli)
    return SimpleNamespace(before=before, after=after, gen=gen[9000], sink=sink, killed=killed, back=back,
                           settled=settled, inc_before=inc_before, recovery=cli.json("C", "status").get("ftc_recovery"))


def test_a_killed_agent_recovers_its_nfs_when_it_starts_again(agent_killed):
    """The monitor died with its agent; the new agent runs it as the next incarnation and
    recovers its records from the NAT before announcing it: every record the NAT held at the
    kill is at the new monitor with at least that count."""
    k = agent_killed
    assert k.killed.rc == 0 and k.killed.rep and k.back, (k.killed, k.back)
    inc = k.after.state["mon1"]["ftc"]["control"]["incarnation"]
    assert inc == (k.inc_before + 1) % 256, (k.inc_before, inc)
    head = {key_hex(f): f["packets"] for f in k.after.state["mon1"]["monitor"]["flows"]}
    for key, (value, _seq) in k.killed.rep.items():
        assert key in head and head[key] >= int(value[:16], 16), (key, value, head.get(key))
    last = k.recovery["last"][str(NFS["mon1"][1])]
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last


def test_packets_released_across_the_agents_failure_had_their_updates_on_f_plus_one_stores(agent_killed):
    ftclab.check_released_across_failure(CHAIN, agent_killed)
    ftclab.check_delivered_after_recovery(agent_killed)


@pytest.fixture(scope="module")
def nat_ns_deleted(cli, lab, build, module_procs, agent_killed):
    """The NAT's namespace deleted mid-stream (the issue's kill: its process, maps and veth go
    with it). With f = 1 its mappings' only other copy is at fw1, its successor round the chain;
    D's anychaind restarts it and recovers them from B before announcing it."""
    before = snapshot(cli)

    def kill():
        rep = replicas_of(cli.state("fw1"), NFS["nat1"][1])
        rc = labkit.run(["ip", "netns", "del", lab.ns("D", "nat1")], check=False).returncode
        return SimpleNamespace(rep=rep, rc=rc)
    gen, sink, killed = ftclab.send(lab, build, module_procs, [(9000, 4, 3, 20, 3)], sink_s=8, during=(1.5, kill))
    back = wait_until(lambda: cli.nf_status("nat1")["alive"], 15)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(before=before, after=snapshot(cli), gen=gen[9000], sink=sink, killed=killed, back=back,
                           settled=settled, status=cli.nf_status("nat1"),
                           recovery=cli.json("D", "status").get("ftc_recovery"),
                           holder=cli.json("B", "status").get("ftc_recovery"))


def test_the_nat_is_recovered_after_its_namespace_is_deleted(nat_ns_deleted):
    k = nat_ns_deleted
    assert k.killed.rc == 0 and k.killed.rep, "the namespace was deleted while fw1 held the NAT's mappings"
    assert k.back and k.status["deaths"] == 1 and k.status["starts"] == 2, k.status
    last = k.recovery["last"][str(NFS["nat1"][1])]
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last
    assert last["incarnation"] == k.after.state["nat1"]["ftc"]["control"]["incarnation"], last
    assert k.holder["requests_answered"] >= 1 and k.holder["answer_errors"] == 0, k.holder


def test_every_mapping_survives_the_nats_failure(nat_ns_deleted):
    """Every mapping fw1 held when the NAT died is at the restarted NAT with the same external
    address and port; every flow of the phase reached the sink from one external port (the
    flows that spanned the failure kept theirs); no two flows share a port."""
    k = nat_ns_deleted
    now = {key_hex(m): ftclab.mapping_hex(m) for m in k.after.state["nat1"]["nat"]["mappings"]}
    for key, (value, _seq) in k.killed.rep.items():
        assert key in now and value.startswith(now[key]), (key, value, now.get(key))
    assert all(len(f["sources"]) == 1 for f in k.sink["per_flow"]), [f["sources"] for f in k.sink["per_flow"]]
    assert len(set(now.values())) == len(now)


def test_the_phases_flows_resume_after_the_nats_recovery(nat_ns_deleted):
    """Every flow of the phase (4 a second for 3 s, each 3 s long; the namespace deleted 1.5 s
    in) sends its last packet 3 s or more after the start, well after the NAT is live again
    (D restarts it 250 ms after its death and recovers it in milliseconds), so each one's last
    packet reaches the sink: the flows that spanned the deletion resume on the recovered NAT with
    their mappings, and those started during it are placed on it. Before, D's agent loop stalled
    for a second loading a fresh copy of the fast path's program for the NF's new veth, every
    peer's heartbeat detector declared D failed, C froze the NAT as its router's, and the flows
    ended before C placed them again (docs/ftc.md 7.7)."""
    k = nat_ns_deleted
    last = k.gen["packets_per_flow"] - 1
    assert k.sink["per_flow"] and len(k.sink["per_flow"]) == k.gen["flows_started"], (k.gen, k.sink["per_flow"])
    assert all(f["max_seq"] == last for f in k.sink["per_flow"]), \
        [(f["flow_id"], f["packets"], f["max_seq"]) for f in k.sink["per_flow"] if f["max_seq"] != last]


def test_packets_released_across_the_nats_failure_had_their_updates_on_f_plus_one_stores(nat_ns_deleted):
    ftclab.check_released_across_failure(CHAIN, nat_ns_deleted, killed="nat")


def test_traffic_reaches_the_sink_after_the_nats_recovery(nat_ns_deleted, cli, lab, build, module_procs):
    """The NAT's veth went with its namespace; the restarted NAT's is a new interface (new
    ifindex) under the same name. D's egress buffer binds it again (FtcEgress::ensure): before,
    its sockets stayed on the old interface's XSKMAP slot and every packet leaving the restarted
    NAT was dropped at the chain's end (drop_ftc_no_buffer), so nothing reached the sink. Flows
    sent once the recovery settled arrive whole. (Whether the phase's own last flows arrive whole
    depends on when C's plane makes the NAT live again, which can be after they end: reported in
    docs/ftc.md 7.7, not asserted.)"""
    buf = cli.buffer("D")
    assert buf["rebound"] >= 1 and buf["ports"]["nf-nat1"]["ifindex"] > 0, buf

    def nat_live(router):
        for svc in cli.json(router, "topology")["services"]:
            for i in svc["instances"]:
                if i["id"] == NFS["nat1"][1]:
                    return not i["recovering"]
        return False
    # every node that places the NAT's hop has made it live again (C may have frozen it on its
    # heartbeat detector's verdict, and waits for D's next LSA)
    assert wait_until(lambda: nat_live("C") and nat_live("D"), 30), cli.json("C", "status")["ftc_freeze"]
    before = ftclab.left(buf["ports"]["nf-nat1"])
    gen, sink, _ = ftclab.send(lab, build, module_procs, [(9000, 4, 1, 20, 2)], sink_s=6)
    flows = {f["flow_id"]: f for f in sink["per_flow"]}
    assert gen[9000]["flows_started"] > 0 and len(flows) == gen[9000]["flows_started"], (gen, flows.keys())
    assert all(f["packets"] == gen[9000]["packets_per_flow"] for f in flows.values()), \
        [(i, f["packets"]) for i, f in flows.items()]
    assert ftclab.left(cli.buffer("D")["ports"]["nf-nat1"]) - before >= sink["packets"] > 0


def withdraw_nat_then_kill_monitor(cli, lab, build, module_procs, out_of_c):
    """Traffic (the NAT then holds the monitor's records of its flows), the NAT's veth on D set
    down (D's agent takes it for dead at once, withdraws it and announces it down, while its
    process and maps live on), wait until out_of_c(nat, C's topology) holds, SIGKILL the monitor
    and wait for its recovery; the veth is set up again at the end. Returns what the checks read."""
    mon, nat = NFS["mon1"][1], NFS["nat1"][1]
    ftclab.send(lab, build, module_procs, [(9000, 4, 1, 20, 2)], sink_s=5)
    rep = replicas_of(cli.state("nat1"), mon)
    answered = cli.json("D", "status")["ftc_recovery"]["requests_answered"]

    def recovered(pid):
        st = cli.nf_status("mon1")
        if not st["alive"] or st["pid"] == pid:
            return False
        last = (cli.json("C", "status").get("ftc_recovery") or {}).get("last", {}).get(str(mon))
        inc = cli.state("mon1")["ftc"]["control"]["incarnation"]
        return bool(last) and last["incarnation"] == inc
    labkit.run(["ip", "-n", lab.ns("D"), "link", "set", "nf-nat1", "down"])
    try:
        gone = wait_until(lambda: out_of_c(nat, cli.json("C", "topology")), 45)
        pid = cli.nf_status("mon1")["pid"]
        os.kill(pid, signal.SIGKILL)
        back = wait_until(lambda: recovered(pid), 20)
        after = cli.state("mon1")
        recovery = cli.json("C", "status").get("ftc_recovery")
        holder = cli.json("D", "status").get("ftc_recovery")
    finally:
        labkit.run(["ip", "-n", lab.ns("D"), "link", "set", "nf-nat1", "up"])
    return SimpleNamespace(rep=rep, gone=gone, back=back, after=after, recovery=recovery, holder=holder,
                           answered=answered)


def check_monitor_got_every_record(k):
    """Every record the NAT held for the monitor is at the restarted monitor with at least that
    count; the recovery asked D, which answered, and lost nothing."""
    assert k.rep, "the NAT held the monitor's records before it was withdrawn"
    assert k.gone, "C's plane lost the NAT"
    assert k.back, k.recovery
    last = k.recovery["last"][str(NFS["mon1"][1])]
    assert last["heads"] >= len(k.rep) and last["lost"] == 0 and not last["errors"], last
    head = {key_hex(f): f["packets"] for f in k.after["monitor"]["flows"]}
    missing = [key for key, (value, _seq) in k.rep.items() if key not in head or head[key] < int(value[:16], 16)]
    assert not missing, (len(missing), len(k.rep), last)
    assert k.holder["requests_answered"] > k.answered and k.holder["answer_errors"] == 0, k.holder


@pytest.fixture(scope="module")
def holder_withdrawn(cli, lab, build, module_procs, nat_ns_deleted):
    """The monitor's only holder withdrawn while it lives, then the monitor killed. With f = 1 the
    NAT holds the only other copy of the monitor's records. C's agent asks D, which must answer
    from the NAT's maps: it answered "no record" for an NF that was not alive as an instance (veth
    down), and the monitor came back empty with nothing counted lost (the "recovered nothing"
    class of failures, docs/performance.md). C still names D here: the frozen NAT stays in C's
    plane, unusable, through its recovery hold."""
    def unusable(nat, t):
        """a withdrawn FTC instance stays listed, frozen or held down"""
        return not any(i["id"] == nat and not i["recovering"] and not i["held"]
                       for s in t["services"] for i in s["instances"])
    return withdraw_nat_then_kill_monitor(cli, lab, build, module_procs, unusable)


def test_a_withdrawn_holder_still_gives_the_killed_monitor_its_records(holder_withdrawn):
    check_monitor_got_every_record(holder_withdrawn)


@pytest.fixture(scope="module")
def holder_gone(cli, lab, build, module_procs, holder_withdrawn):
    """The same once the NAT has left C's plane altogether: its recovery hold (30 s, ftc.md 7.2)
    over, C's agent places its flows again and no instance of the plane is the monitor's
    successor. The holders C computes from the plane are none; only its memory of the holders it
    named recently (FtcHolderMemory, kept for the NFs' idle timeout plus 30 s while the holder's
    router is reachable) still names D."""
    def unlisted(nat, t):
        return not any(i["id"] == nat for s in t["services"] for i in s["instances"])
    return withdraw_nat_then_kill_monitor(cli, lab, build, module_procs, unlisted)


def test_a_holder_gone_from_the_plane_is_still_asked_from_memory(holder_gone):
    check_monitor_got_every_record(holder_gone)
