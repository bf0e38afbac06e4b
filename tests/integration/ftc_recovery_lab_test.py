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
  `ftc_recovery`).
"""

import ftclab
from ftclab import key_hex, replicas_of
# the phases of ftc_lab_test.py (fixtures only: its tests are not collected again here)
from ftc_lab_test import CHAIN, NFS, monitor_killed, steady  # noqa: F401

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
    assert a["released"] - b["released"] == steady.sink["packets"] > 0, (a, b, steady.sink)
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
    (ftclab.check_released_across_failure)."""
    ftclab.check_released_across_failure(CHAIN, monitor_killed)
