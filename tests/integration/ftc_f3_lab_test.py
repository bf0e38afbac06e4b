"""FTC with f = 3 and a replica hop, end to end (docs/ftc.md 5.4; pytest, issue 13: "extra
replica hops when the chain is shorter than f + 1", "f is configurable, 1 to 4"). Root only
(exit 77 otherwise).

The four nodes of ftc_lab_test.py with the channel keyed, and the chain fw (B) -> mon (C) -> nat
(D) -> rep (D): three NFs hold four copies only with a fourth hop, so the chain lists a replica
service whose instance runs `nf: replica` (no state of its own: it applies, holds and strips
the others' logs). Every update is on four stores when its packet leaves: the monitor's at the
NAT, the replica and the firewall; the NAT's at the replica, the firewall and the monitor, so a
packet carries up to three logs in its NSH. The egress buffer runs on the replica's veth, the
chain's last hop.
"""
from types import SimpleNamespace

import pytest

import ftclab
from ftclab import key_hex, replicas_of
from labkit import wait_until

LAB_KIND = "u"  # lab prefix actu<pid>
CHANNEL_KEYED = True
CHAIN = ftclab.Chain({
    "fw1": ("B", 11, "fw", "firewall", ftclab.FW_RULE),
    "mon1": ("C", 12, "mon", "monitor", {}),
    "nat1": ("D", 13, "nat", "nat", ftclab.nat_section("20000-20999")),
    "rep1": ("D", 14, "rep", "replica", {}),
}, f=3, services=ftclab.SERVICES + [("rep", 4, "10.100.6.4/32")])
NFS = CHAIN.nfs
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured


def snapshot(cli):
    return SimpleNamespace(state={n: cli.state(n) for n in NFS}, buffer=cli.buffer("D"))


def run_phase(cli, lab, build, procs, streams):
    before = snapshot(cli)
    gen, sink, _ = ftclab.send(lab, build, procs, streams, sink_s=5)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-rep1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(gen=gen, sink=sink, before=before, after=snapshot(cli), settled=settled)


@pytest.fixture(scope="module")
def steady(cli, lab, build, module_procs, configured):
    """10 flows of 20 packets, 64-byte payloads, then 8 of 1,472-byte payloads (1,500-byte
    packets)."""
    return (run_phase(cli, lab, build, module_procs, [(9000, 5, 1, 20, 2)]),
            run_phase(cli, lab, build, module_procs, [(9000, 4, 1, 20, 2, 1472)]))


def test_nfs_run_with_f_3_and_the_replica_hop(configured):
    """anychaind writes f = 3 and the other three hops as peers into every control file, the
    replica's included."""
    assert configured.running and configured.learnt
    assert configured.control, configured.wrong


@pytest.mark.parametrize("phase", [0, 1], ids=["64-byte", "full-size"])
def test_every_update_is_on_four_stores_when_released(steady, phase):
    k = steady[phase]
    assert k.settled
    b, a = k.before.buffer["ports"]["nf-rep1"], k.after.buffer["ports"]["nf-rep1"]
    sent = k.gen[9000]["packets_sent"]
    assert ftclab.left(a) - ftclab.left(b) == k.sink["packets"] == sent > 0, (a, b, k.sink["packets"], sent)
    assert k.gen[9000]["send_errors"] == 0, k.gen
    bad = ftclab.f_plus_one_violations(CHAIN, k.sink, k.after.state)
    assert not bad, bad


def test_each_holder_equals_the_head(steady):
    """The monitor's records at the NAT, the replica and the firewall, the NAT's at the replica,
    the firewall and the monitor, each equal to its head's; the replica holds no state of its own
    and appends nothing."""
    st = steady[1].after.state
    head = {key_hex(f): (f["packets"], f["packets"]) for f in st["mon1"]["monitor"]["flows"]}
    for holder in ("nat1", "rep1", "fw1"):
        rep = {k: (int(v[:16], 16), seq) for k, (v, seq) in replicas_of(st[holder], NFS["mon1"][1]).items()}
        assert rep == head, (holder, rep, head)
    nat = {key_hex(m): ftclab.mapping_hex(m) for m in st["nat1"]["nat"]["mappings"]}
    for holder in ("rep1", "fw1", "mon1"):
        rep = replicas_of(st[holder], NFS["nat1"][1])
        assert set(rep) == set(nat) and all(rep[k][0].startswith(v) for k, v in nat.items()), (holder, rep, nat)
    assert st["rep1"]["ftc"]["counters"].get("ftc_log_appended", 0) == 0, st["rep1"]["ftc"]["counters"]
