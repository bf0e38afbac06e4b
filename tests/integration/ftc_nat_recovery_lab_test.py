"""Two NATs behind WCMP with FTC recovery (docs/ftc.md 7; issue 13: "two instances of the NAT
behind WCMP, one killed: its flows keep their mappings on the replacement; the other instance's
flows are untouched"), four nodes with real FRR and anychaind (pytest). Root only (exit 77
otherwise).

The lab and the chain are ftc_wcmp_lab_test.py's (fw1 on B -> mon1 on C -> nat1 on D or nat2 on
A, f = 1, C's WCMP spreading flows over the two NATs), with every agent holding the FTC channel's
key (`ftc.key_file`), so the channel opens: packets are released, each NAT's mapping comes round
to fw1 (its successor), and A's anychaind recovers nat2 when its process dies. Then nat2's process
is SIGKILLed mid-stream; A's supervisor restarts it as incarnation + 1 and, before it is announced,
A's anychaind recovers its head records (the mappings) from fw1 and its replicas of the monitor's
records from mon1 over the channel, rebuilds the NAT's port bitmap and reply index, and makes it
live. Checked:
- with tshark at the sink: every flow left the chain from one external address and port; each
  flow of nat2 that reached the sink before the kill did so from the port that is its mapping at
  the restarted nat2; flows that start on nat2 after the recovery get fresh ports of its block
  (none a recovered mapping's: the port bitmap was rebuilt) and reach the sink whole;
- from `anychain state`: every mapping nat2 held at the kill that fw1 held too is nat2's again
  with the same port, its reply entry rebuilt and its port taken in the pool's bitmap; the
  recovery's result in A's status (records installed, nothing lost, no error, phase times) and
  the holders' answers (B fenced nat2's mappings, C sent the monitor's records);
- replies: each recovered mapping's reply (built by scapy: NSH, IPv4, UDP from the sink to the
  external address and port) run through the restarted nat2's live program with `bpftool prog
  run` comes out translated back to the flow's inside address and port (XDP_TX);
- nat1 untouched: same process, every mapping kept, every packet of its flows of the phase at the
  sink; the buffers released exactly what the sink received.
- every packet the buffers released reached the sink with its updates on f + 1 stores (ftclab's
  check), across the failure too.
Reported, not asserted: nat2's flows that spanned the failure mostly do not resume (the monitor's logs
of their packets dropped while nat2 was frozen leave a gap at the recovered nat2 that only the
re-request of 4.3 would close; docs/ftc.md 7.7).
"""
import os
import signal
import subprocess
import tempfile
import time
from types import SimpleNamespace

import pytest

import ftclab
import labkit
from ftclab import flow_key, key_hex, replicas_of
# the chain and the steady phase of ftc_wcmp_lab_test.py (fixtures only: its tests are not
# collected again here)
from ftc_wcmp_lab_test import CHAIN, NATS, NFS, snapshot, steady  # noqa: F401

LAB_KIND = "w"  # lab prefix actw<pid>
CHANNEL_KEYED = True
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured
NAT2 = NFS["nat2"][1]
BLOCKS = {"nat1": range(20000, 21000), "nat2": range(21000, 22000)}
# 5 flows/s for 5 s, each flow 3 s at 10 packets/s: the flows of the first 1.5 s run across the
# kill (1.5 s in); those of the last 2 s start after the recovery (about a second on this lab)
STREAM = (9000, 5, 3, 10, 5)


class SinkCapture:
    """tshark on the sink host's interface: the lab payload's flow id, sequence and send time
    (the sender's wall clock), the time and the source port of every UDP datagram to the sink."""

    def __init__(self, lab):
        self.file = tempfile.mktemp(prefix="anychain-ftc-nat-", suffix=".pcap")
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(ftclab.SINK["name"]), "tshark", "-q", "-i",
                                      ftclab.SINK["host_if"], "-f", "udp dst port 9000", "-w", self.file],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = ""
        while "Capturing on" not in line and self.proc.poll() is None:
            line = self.proc.stderr.readline()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = labkit.run(["tshark", "-r", self.file, "-d", "udp.port==9000,data", "-T", "fields", "-e",
                          "frame.time_epoch", "-e", "ip.src", "-e", "udp.srcport", "-e", "data.data"]).stdout
        os.unlink(self.file)
        pkts = []
        for row in out.splitlines():
            t, src, sport, data = row.split("\t")
            payload = bytes.fromhex(data)
            if payload[:4] != b"ACLB":
                continue
            pkts.append(SimpleNamespace(t=float(t), src=src, sport=int(sport),
                                        flow=int.from_bytes(payload[4:8], "big"), seq=int.from_bytes(payload[8:12], "big"),
                                        sent=int.from_bytes(payload[12:20], "big") / 1e9))
        return pkts


def published(lab, name):
    """What the NF process published (agent/nf/published.h): its program id and maps."""
    import json
    with open(f"{lab.state}/{CHAIN.nfs[name][0]}/nf/{name}.json") as f:
        return json.load(f)


def reply_through(prog_id, m):
    """The reply to mapping m (sink -> external address and port) in an NSH (MD type 1, no FTC
    control: processed plainly) run once through the NF program prog_id with BPF_PROG_TEST_RUN
    (bpftool): (XDP verdict, the inner packet that came out, as scapy parsed it)."""
    from scapy.contrib.nsh import NSH
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    pkt = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / NSH(mdtype=1, nextproto=1, spi=ftclab.SPI, si=253)
           / IP(src=m["dst"], dst=m["external"]) / UDP(sport=m["dport"], dport=m["external_port"]) / (b"reply" * 8))
    d = tempfile.mkdtemp(prefix="anychain-ftc-nat-reply-")
    with open(f"{d}/in", "wb") as f:
        f.write(pkt.build())
    r = labkit.run(["bpftool", "prog", "run", "id", str(prog_id), "data_in", f"{d}/in", "data_out", f"{d}/out"])
    with open(f"{d}/out", "rb") as f:
        out = Ether(f.read())
    for n in ("in", "out"):
        os.unlink(f"{d}/{n}")
    os.rmdir(d)
    verdict = int(r.stdout.split("Return value:")[1].split()[0].rstrip(","))
    return verdict, (out[IP] if IP in out else None)


@pytest.fixture(scope="module")
def nat2_recovered(cli, lab, build, module_procs, steady):
    before = snapshot(cli)
    cap = SinkCapture(lab)

    def kill():
        # what nat2 held the moment it died, and which of those mappings fw1 (its successor) held;
        # a flow whose first packet reached the sink before held_at has its mapping in `held` (a
        # flow that starts between held_at and the kill may not)
        held_at = time.time()
        held = {flow_key(m): m["external_port"] for m in cli.state("nat2")["nat"]["mappings"]}
        at_fw1 = set(replicas_of(cli.state("fw1"), NAT2))
        pid = cli.nf_status("nat2")["pid"]
        t = time.time()
        os.kill(pid, signal.SIGKILL)
        return SimpleNamespace(pid=pid, held=held, held_at=held_at, at_fw1=at_fw1, t=t)
    gen, sink, killed = ftclab.send(lab, build, module_procs, [STREAM], sink_s=10, during=(1.5, kill))
    pkts = cap.stop()
    back = ftclab.wait_until(lambda: cli.nf_status("nat2")["alive"], 15)
    # the result is in A's status once installed; its rerouting time once the plane made nat2 live
    recovered = ftclab.wait_until(
        lambda: cli.json("A", "status")["ftc_recovery"]["last"][str(NAT2)]["rerouting_ms"] > 0, 15)
    settled = ftclab.wait_until(lambda: all(cli.buffer(r)["ports"][f"nf-{n}"]["held"] == 0 for n, r in NATS.items()),
                                ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(before=before, after=snapshot(cli), gen=gen[9000], sink=sink, pkts=pkts, killed=killed,
                           back=back, recovered=recovered, settled=settled,
                           status={n: cli.nf_status(n) for n in NFS},
                           recovery=cli.json("A", "status")["ftc_recovery"],
                           holder={r: cli.json(r, "status")["ftc_recovery"] for r in ("B", "C")})


def test_the_channel_is_open_and_packets_are_released(configured, cli, steady):
    for r in ("A", "B", "C", "D"):
        ch = cli.json(r, "status").get("ftc_channel")
        assert ch and "error" not in ch, (r, ch)
    released = sum(ftclab.left(steady.after.buffer[n]) - ftclab.left(steady.before.buffer[n]) for n in NATS)
    assert released == steady.sink["packets"] > 0
    # each NAT's mapping came round to fw1, its successor (through its node's buffer and A's forwarder)
    for n in NATS:
        maps = {key_hex(m) for m in steady.after.state[n]["nat"]["mappings"]}
        assert maps and maps <= set(replicas_of(steady.after.state["fw1"], NFS[n][1])), n
    assert not ftclab.f_plus_one_violations(CHAIN, steady.sink, steady.after.state)


def test_nat2_died_serving_flows_and_was_recovered_before_it_was_announced(nat2_recovered):
    k = nat2_recovered
    assert replicated_at_kill(k), ("nat2 served flows when it died, their mappings at fw1", k.killed)
    assert k.back and k.status["nat2"]["deaths"] == 1 and k.status["nat2"]["pid"] != k.killed.pid, k.status["nat2"]
    assert k.recovered, k.recovery
    rec = k.recovery
    assert rec["started"] == 1 and rec["without_state"] == 0 and rec["conflicts"] == 0, rec
    last = rec["last"][str(NAT2)]
    assert last["incarnation"] == k.after.state["nat2"]["ftc"]["control"]["incarnation"] >= 1, last
    assert last["heads"] >= len(k.killed.at_fw1) and last["replicas"] > 0, last
    assert last["lost"] == 0 and not last["errors"], last
    assert last["detection_ms"] > 0 and last["transfer_ms"] > 0 and last["rerouting_ms"] > 0, last
    # fw1's node answered round 1 (nat2's mappings, fenced), mon1's round 2 (the monitor's records)
    assert k.holder["B"]["requests_answered"] >= 1 and k.holder["B"]["records_fenced"] >= len(k.killed.at_fw1)
    assert k.holder["C"]["requests_answered"] >= 1 and k.holder["C"]["records_sent"] > 0, k.holder["C"]


def replicated_at_kill(k):
    """nat2's mappings at the kill that fw1 held too: the ones whose packets may have left."""
    return {f: p for f, p in k.killed.held.items()
            if key_hex(dict(zip(("src", "sport", "dst", "dport", "proto"), f))) in k.killed.at_fw1}


def test_nat2_keeps_each_mapping_its_reply_entry_and_its_port(nat2_recovered):
    k = nat2_recovered
    now = {flow_key(m): m for m in k.after.state["nat2"]["nat"]["mappings"]}
    for f, port in replicated_at_kill(k).items():
        assert f in now and now[f]["external_port"] == port, (f, port, now.get(f))
        assert now[f]["reply_path"], now[f]
    pool = k.after.state["nat2"]["nat"]["pool"]
    assert pool["used"] == len(now), pool
    # no port of nat2's block is mapped twice, none mapped by nat1
    ports = [m["external_port"] for m in now.values()]
    assert len(ports) == len(set(ports)) and all(p in BLOCKS["nat2"] for p in ports)
    at_nat1 = {flow_key(m) for m in k.after.state["nat1"]["nat"]["mappings"]}
    assert not at_nat1 & now.keys()


def flows_at_sink(k):
    """flow id -> its packets as tshark saw them at the sink."""
    flows = {}
    for p in k.pkts:
        flows.setdefault(p.flow, []).append(p)
    return flows


def test_the_sink_sees_each_flow_from_one_port_and_nat2s_is_its_recovered_mapping(nat2_recovered):
    """From the packets (tshark at the sink): every flow left the chain from one external address
    and port; a flow of nat2 that reached the sink before the kill did so from the port that is
    its mapping at the restarted nat2 (and was at the kill). Packets of such a flow after the
    recovery (if any, see the next test) come from the same port, as every flow's do."""
    k = nat2_recovered
    by_port = {m["external_port"]: m for m in k.after.state["nat2"]["nat"]["mappings"]}
    before_kill = 0
    for fid, ps in flows_at_sink(k).items():
        ports = {(p.src, p.sport) for p in ps}
        assert len(ports) == 1, (fid, ports)
        (src, port), = ports
        assert src == ftclab.NAT_ADDR
        if port in BLOCKS["nat2"] and ps[0].t < k.killed.held_at:
            before_kill += 1
            m = by_port.get(port)
            assert m and k.killed.held.get(flow_key(m)) == port, (fid, port, m)
    assert before_kill, "flows of nat2 reached the sink before the kill"
    # the sink's own report agrees: one source per flow
    assert all(len(f["sources"]) == 1 for f in k.sink["per_flow"]), [f for f in k.sink["per_flow"]
                                                                     if len(f["sources"]) != 1]


def test_flows_new_on_nat2_after_the_recovery_are_whole_on_fresh_ports(nat2_recovered):
    """Flows that start once nat2 is back get new ports of its block, none of them a recovered
    mapping's (the port bitmap was rebuilt), and every one of their packets reaches the sink.

    "Once nat2 is back" is by the sender's clock: a flow's start is the send time of its packet 0
    (each packet carries its send time; the flow's packets are 1/rate apart), after the moment
    nat2 became live in A's maps as A's agent reports it (`live_at`). Neither the arrival of a
    flow's first packet at the sink (a flow that starts while nat2 is frozen loses its first
    packets, dropped at A, and its first packet to arrive is a later one; a released packet also
    waits in the buffer for its commit) nor the kill time plus the phase times (detection counts
    from when A's agent noticed the death, not from the kill) says when a flow started against
    when nat2 was live (CI failed on a flow started 0.1 s after the kill, during the freeze)."""
    k = nat2_recovered
    recovered = set(k.killed.held.values())
    live_at = k.recovery["last"][str(NAT2)]["live_at"]
    assert live_at > k.killed.t, k.recovery["last"][str(NAT2)]

    def start(ps):
        return ps[0].sent - ps[0].seq / STREAM[3]
    new = [ps for ps in flows_at_sink(k).values() if ps[0].sport in BLOCKS["nat2"] and start(ps) > live_at]
    assert new, "flows started on nat2 after its recovery"
    for ps in new:
        assert ps[0].sport not in recovered, ps[0]
        assert len(ps) == k.gen["packets_per_flow"], (ps[0].flow, len(ps), [p.seq for p in ps][:5],
                                                      f"started {start(ps) - live_at:.3f} s after live_at")


def test_report_nat2s_flows_that_spanned_the_failure(nat2_recovered):
    """Not asserted (a known gap, docs/ftc.md 7.7): the packets of nat2's flows that passed mon1
    while nat2 was frozen were dropped at C after mon1 had logged them, so at the recovered nat2
    the next log of such a flow is a gap (its replica of mon1 is at the recovered sequence), held
    and never closed without the re-request of a gap (4.3, not in yet): those flows reach the
    sink again only once re-requests exist (in 3 of 4 runs none did; in one, all). Printed: how
    many resumed."""
    k = nat2_recovered
    spanning = [ps for ps in flows_at_sink(k).values() if ps[0].sport in BLOCKS["nat2"] and ps[0].t < k.killed.t]
    resumed = [ps for ps in spanning if ps[-1].t > k.killed.t]
    st = k.after.state["nat2"]["ftc"]["counters"]
    print(f"nat2's flows spanning the failure: {len(spanning)}, resumed at the sink after it: {len(resumed)}; "
          f"restarted nat2 ftc_gap {st['ftc_gap']}, applied {st['ftc_applied']}")


def test_replies_are_translated_back_by_the_restarted_nat2(nat2_recovered, lab):
    k = nat2_recovered
    prog = published(lab, "nat2")["prog_id"]
    mappings = [m for m in k.after.state["nat2"]["nat"]["mappings"] if flow_key(m) in replicated_at_kill(k)]
    assert mappings
    for m in mappings:
        verdict, ip = reply_through(prog, m)
        assert verdict == 3, (m, verdict)  # XDP_TX: back to the fast path
        assert ip is not None and (ip.src, ip.dst) == (m["dst"], m["src"]), (m, ip and ip.summary())
        assert (ip.payload.sport, ip.payload.dport) == (m["dport"], m["sport"]), (m, ip.summary())


def test_nat1_and_its_flows_are_untouched(nat2_recovered):
    k = nat2_recovered
    assert k.status["nat1"]["deaths"] == 0 and k.status["nat1"]["pid"] == k.before.state["nat1"]["pid"]
    kept = {flow_key(m): m["external_port"] for m in k.after.state["nat1"]["nat"]["mappings"]}
    for m in k.before.state["nat1"]["nat"]["mappings"]:
        assert kept.get(flow_key(m)) == m["external_port"], m
    # every packet of nat1's flows of the phase reached the sink (nat1's ports)
    ours = [f for f in k.sink["per_flow"] if all(int(s.split(":")[1]) in BLOCKS["nat1"] for s in f["sources"])]
    assert ours, k.sink["per_flow"]
    for f in ours:
        assert f["packets"] == k.gen["packets_per_flow"], f


def test_every_packet_released_across_the_failure_had_its_updates_on_f_plus_one_stores(nat2_recovered):
    """Every packet the buffers released in the phase is one the sink received, and each had its
    flow's monitor count (bounded by the packets received, ftclab) and its NAT's mapping on
    f + 1 stores, the flows that spanned the failure included."""
    k = nat2_recovered
    assert k.settled
    released = sum(ftclab.left(k.after.buffer[n]) - ftclab.left(k.before.buffer[n]) for n in NATS)
    assert released == k.sink["packets"]
    assert not ftclab.f_plus_one_violations(CHAIN, k.sink, k.after.state)
