"""FTC with f = 2 end to end (docs/ftc.md), on the same four nodes, chain and phases as
ftc_recovery_lab_test.py (fw on B -> mon on C -> nat on D, the FTC channel keyed), with every
update held three times instead of two (pytest, issue 13: "f is configurable, 1 to 4"). Root only
(exit 77 otherwise).

With three services and f = 2 every hop replicates both others: the monitor's log is applied by
the NAT and, after the buffer returns it and A's forwarder piggybacks it, by the firewall (its
tail); the NAT's log by the firewall and the monitor (its tail), so it goes round the chain once
more than with f = 1. The firewall is stateless and holds both others' records. A packet leaves
the chain only once its updates are on three stores (the sink check with f = 2). When the monitor
dies, C's anychaind recovers its head records from two holders (NAT and firewall) and takes for
each the newest (docs/ftc.md 7.4).
"""

from types import SimpleNamespace

import pytest

import ftclab
import labkit
from ftclab import key_hex, replicas_of
from labkit import wait_until
# the phases of ftc_lab_test.py (fixtures only: its tests are not collected again here)
from ftc_lab_test import NFS, monitor_killed, snapshot, steady  # noqa: F401

LAB_KIND = "t"  # lab prefix actt<pid>
CHANNEL_KEYED = True
CHAIN = ftclab.Chain(NFS, f=2)
build, lab, cli, configured = ftclab.build, ftclab.lab, ftclab.cli, ftclab.configured


def test_nfs_run_with_f_2_and_every_other_hop_as_peer(configured):
    """anychaind writes f = 2 into each NF's control file; its peers and successors are both
    other hops (ftclab.Chain.control)."""
    assert configured.running and configured.learnt
    assert configured.control, configured.wrong


def test_every_update_is_on_three_stores_when_released(steady):
    """The monitor's records at the NAT and the firewall, the NAT's at the firewall and the
    monitor, each equal to its head's, and every packet the sink received left with its updates
    on three stores."""
    st = steady.after.state
    assert steady.settled
    head = {key_hex(f): (f["packets"], f["packets"]) for f in st["mon1"]["monitor"]["flows"]}
    for holder in ("nat1", "fw1"):
        rep = {k: (int(v[:16], 16), seq) for k, (v, seq) in replicas_of(st[holder], NFS["mon1"][1]).items()}
        assert rep == head, (holder, rep, head)
    nat = {key_hex(m): ftclab.mapping_hex(m) for m in st["nat1"]["nat"]["mappings"]}
    for holder in ("fw1", "mon1"):
        rep = replicas_of(st[holder], NFS["nat1"][1])
        assert set(rep) == set(nat) and all(rep[k][0].startswith(v) for k, v in nat.items()), (holder, rep, nat)
    b, a = steady.before.buffer["ports"]["nf-nat1"], steady.after.buffer["ports"]["nf-nat1"]
    assert ftclab.left(a) - ftclab.left(b) == steady.sink["packets"] > 0, (a, b, steady.sink)
    bad = ftclab.f_plus_one_violations(CHAIN, steady.sink, st)
    assert not bad, bad


def test_the_monitor_is_recovered_from_two_holders(monitor_killed, cli):
    """The restarted monitor holds every record its two holders had when it died, with at least
    that count; both holders' agents answered."""
    k = monitor_killed
    assert k.back, k.status["mon1"]
    head = {key_hex(f): f["packets"] for f in k.after.state["mon1"]["monitor"]["flows"]}
    assert k.killed.rep
    for key, (value, _seq) in k.killed.rep.items():
        assert key in head and head[key] >= int(value[:16], 16), (key, value, head.get(key))
    last = k.recovery["last"][str(NFS["mon1"][1])]
    assert last["heads"] >= len(k.killed.rep) and last["lost"] == 0 and not last["errors"], last
    for r in ("B", "D"):
        rec = cli.json(r, "status")["ftc_recovery"]
        assert rec["requests_answered"] >= 1 and rec["answer_errors"] == 0, (r, rec)


def test_packets_released_across_the_failure_had_their_updates_on_three_stores(monitor_killed):
    ftclab.check_released_across_failure(CHAIN, monitor_killed)


@pytest.fixture(scope="module")
def full_size(cli, lab, build, module_procs, monitor_killed):
    """Full-size datagrams (1,472-byte UDP payloads: 1,500-byte IP packets, as from a host on a
    1,500-byte network) through the FTC chain, after the failure. The lab's links have room for
    them with the largest NSH (nf-chain.toml: mtu 1788)."""
    before = snapshot(cli)
    gen, sink, _ = ftclab.send(lab, build, module_procs, [(9000, 4, 1, 20, 1, 1472)], sink_s=4)
    settled = wait_until(lambda: cli.buffer("D")["ports"]["nf-nat1"]["held"] == 0, ftclab.HOLD_TIMEOUT_MS / 1000 + 5)
    return SimpleNamespace(gen=gen[9000], sink=sink, before=before, after=snapshot(cli), settled=settled)


def test_full_size_packets_cross_the_ftc_chain_whole(full_size):
    """Every 1,500-byte packet reaches the sink whole (none fragmented, refused or dropped), each
    with its updates on three stores."""
    k = full_size
    assert k.settled
    assert k.gen["send_errors"] == 0, k.gen
    assert k.sink["packets"] == k.gen["packets_sent"] == 80, (k.gen, k.sink["packets"])
    assert k.sink["bytes"] == 80 * 1472, k.sink["bytes"]
    bad = ftclab.f_plus_one_violations(CHAIN, k.sink, k.after.state)
    assert not bad, bad


def test_a_link_without_room_for_ftcs_nsh_is_a_warning(full_size, cli, lab):
    """On a node with an FTC chain, `anychain status` counts the largest NSH (252 bytes), not MD
    type 1's 24, in the room a link must have: 1,600 bytes leave 1,312 for inner packets."""
    def warned():
        return [w for w in cli.json("D", "status")["warnings"] if "to-C: MTU 1600 leaves room for inner packets of 1312" in w]
    labkit.run(["ip", "-n", lab.ns("D"), "link", "set", "to-C", "mtu", "1600"])
    try:
        assert wait_until(warned, 15), cli.json("D", "status")["warnings"]
    finally:
        labkit.run(["ip", "-n", lab.ns("D"), "link", "set", "to-C", "mtu", "1788"])
    assert wait_until(lambda: not warned(), 15)
