"""Liveness on the paper's lab as a user gets it (scripts/topologies/paper-fig3.toml, scripts/lab +
scripts/lab-agent, VNF programs started by hand: no pid_file in any agent's configuration).

1. kill -9 of a VNF program while traffic flows, and from then on ARP and IPv6 ND frames sent on
   its veth from the VNF's side (NOISE, scapy): its node finds it dead from the dataplane (packets
   handed to it, no chain traffic coming back; the noise is none) and announces it down; the
   ingress stops choosing it.
   Measured: the time from the kill until the ingress no longer lists the instance, and the
   packets lost. Bounds (docs/lab.md, "A VNF program dies"):
     - its node finds it dead within vnf_stall_s + 2 * monitor_interval_s (+ 0.5 s) = 4.5 s with
       the lab's timers, and the ingress drops it within 6 s more (10.5 s: ospfd may hold the
       down LSA up to 5 s, MinLSInterval, after the instance's previous update);
     - packets are lost only in flows the dead instance served, only while it was not yet
       detected: a flow that never reached the sink started between the kill and the detection,
       flows started after the detection lose nothing; in all, at most what the source offered
       during the detection time;
     - a flow moved off the dead instance moves once: every flow that changed instance went from
       the dead one to another and stayed (the sink's flows_moved_twice is 0).
2. ospfd restarted on the node of a healthy instance: while that node is reachable the instance
   never leaves the other routers' views nor their maps (their hold-down covers the restart),
   the agent reconnects within RECONNECT_BOUND_S of ospfd being back (it watches ospfd's pid
   file) and the instance is announced again by the end of the hold-down. Without graceful
   restart the adjacency re-forms, and in some runs SPF loses the node for a moment (0 to over
   0.5 s seen): its instances are no candidates then, as its IP routes are gone too. That is
   recorded and printed, not asserted (OSPF's, not the agent's; see the report of issue 12).
Root only (exit 77 otherwise). Alone:
  flock /tmp/anychain-ctest.lock /usr/bin/python3 -m pytest tests/integration/liveness_lab_test.py --build-dir build
"""
import json
import os
import signal
import subprocess
import time

import pytest

from labkit import daemon_argv, run, running, wait_udp_bound, wait_until

LAB_KIND = "d"  # lab prefix actd<pid>
ANYCHAIND_ARGS = ["--log-level", "debug"]  # every VNF LSA's arrival, timed, in agent.log
VNFS = {"vnfB": ("B", 1), "vnfC": ("C", 2), "vnfD": ("D", 3)}
SINK_ADDR = "10.234.0.30"
# the lab's timers (scripts/lab-agent): monitor_interval_s 1, vnf_stall_s 2 (the default)
MONITOR_S, STALL_S = 1, 2
LOCAL_BOUND_S = STALL_S + 2 * MONITOR_S + 0.5
# + the down LSA's origination, flooding and A's SPF. ospfd originates an update of an API client's
# LSA up to 5 s (MinLSInterval) after the previous one, the lab's `timers throttle lsa all 0`
# notwithstanding: measured, B's down LSA entered B's own LSDB 2.0 s after B's agent announced it,
# 5.0 s after the cost update before it (docs/lab.md)
ORIGINATION_S = 5
DETECTION_BOUND_S = LOCAL_BOUND_S + ORIGINATION_S + 1
HOLD_DOWN_S = 8  # wcmp.params.hold_down_ms, scripts/lab-agent
RECONNECT_BOUND_S = 2  # the pid file is watched; without it the backoff cap (hold-down / 3) would rule
HELD_MARGIN_S = 1.5
B_ID = "10.255.0.2"


class Lab:
    def __init__(self, lab, build, procs):
        self.lab, self.build, self.procs = lab, build, procs
        self.vnf = {}

    def cli(self, router, *args):
        r = run([self.build.cli, "--socket", f"{self.lab.state}/{router}/anychaind.sock", *args, "--json"],
                check=False, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def seen(self, router):
        t = self.cli(router, "topology")
        return {i["id"]: i for s in t["services"] for i in s["instances"]} if t else None

    def live_in_map(self, router, inst_id):
        r = run(["bpftool", "-j", "map", "lookup", "pinned", f"{self.lab.state}/{router}/bpffs/anychain/ac_instances",
                 "key", *[str(b) for b in inst_id.to_bytes(4, "little")]], check=False)
        if r.returncode != 0:
            return False
        v = json.loads(r.stdout)
        flags = v["formatted"]["value"]["flags"] if "formatted" in v else int(v["value"][10], 16)
        return bool(flags & 0x4)  # AC_INST_LIVE

    def start_vnf(self, name):
        router, iid = VNFS[name]
        self.vnf[name] = self.procs.start(
            self.lab.ns(router, name), [f"{self.build.tools}/anychain-vnf", "--iface", "eth0", "--mode", "nsh",
                                        "--instance-id", str(iid)], f"{self.lab.state}/{name}.log")


@pytest.fixture(scope="module")
def lab(paper_lab, build, module_procs):
    lab = Lab(paper_lab, build, module_procs)
    for name in VNFS:
        lab.start_vnf(name)
    for r in paper_lab.routers:
        if not wait_until(lambda r=r: len(lab.seen(r) or {}) == 3, 30):
            pytest.fail(f"{r} sees {sorted(lab.seen(r) or {})} within 30 s, not the three instances")
    return lab


def test_lab_config_has_no_pid_file(lab):
    """The scenario of the issue: nothing but the dataplane (and the veth) can tell."""
    for r in lab.lab.routers:
        with open(f"{lab.lab.state}/{r}/anychaind.yaml") as f:
            conf = f.read()
        assert "instances:" in conf
        assert not any("pid_file" in line for line in conf.split("instances:")[1].splitlines()), r


# flows long enough to outlive the detection: those on vnfB when it dies are still running when
# they move (a flow started at 0 s ends at FLOW_S, after the kill + DETECTION_BOUND_S = 13.5 s)
FLOWS_PER_SEC, FLOW_S, FLOW_RATE, GEN_S = 5, 15, 10, 6
KILL_AFTER_S = 3.0


def local_state(lab, router, iid):
    st = lab.cli(router, "status") or {}
    return next((i for i in st.get("local_instances", []) if i["id"] == iid), None)


# What the dead VNF's side of its veth keeps sending (its kernel, a neighbour cache, a daemon): a
# unicast ARP reply and an IPv6 neighbour advertisement to the router's side, a gratuitous ARP,
# every 100 ms, with scapy. The veth's rx_packets counts them all: the agent's liveness signal was
# that counter, and such noise kept a dead VNF "answering" (docs/lab.md, "A VNF program dies").
NOISE = """
import sys, time
from scapy.all import ARP, Ether, ICMPv6ND_NA, IPv6, sendp, conf
conf.verb = 0
to = sys.argv[1]
me = open("/sys/class/net/eth0/address").read().strip()
frames = [Ether(dst=to, src=me) / ARP(op=2, hwsrc=me, psrc="10.99.0.2", hwdst=to, pdst="10.99.0.1"),
          Ether(dst="ff:ff:ff:ff:ff:ff", src=me) / ARP(op=2, hwsrc=me, psrc="10.99.0.2", pdst="10.99.0.2"),
          Ether(dst=to, src=me) / IPv6(src="fe80::2", dst="fe80::1") / ICMPv6ND_NA(tgt="fe80::2", R=0)]
while True:
    sendp(frames, iface="eth0")
    time.sleep(0.1)
"""


def router_side_mac(lab, router, vnf):
    """The MAC of the router's side of the VNF's veth."""
    links = json.loads(run(["ip", "netns", "exec", lab.lab.ns(router), "ip", "-j", "link"]).stdout)
    return next(link["address"] for link in links if link["ifname"].endswith(vnf))


@pytest.fixture(scope="module")
def killed(lab):
    """Traffic for GEN_S s (flows of FLOW_S s), vnfB killed -9 KILL_AFTER_S s in; B's own status and
    the ingress's view polled until B says vnfB is down and A no longer lists it."""
    s, tools = lab.lab.state, lab.build.tools
    sink_json = f"{s}/sink-kill.json"
    sink = lab.procs.start(lab.lab.ns("dst"), [f"{tools}/anychain-sink", "--port", "9000", "--json", sink_json,
                                                "--duration", str(GEN_S + FLOW_S + 4)], f"{s}/sink-kill.log")
    wait_udp_bound(lab.lab.ns("dst"), 9000)
    t0 = time.monotonic()
    gen = subprocess.Popen(["ip", "netns", "exec", lab.lab.ns("src"), f"{tools}/anychain-trafgen", "--dst", SINK_ADDR,
                            "--dport", "9000", "--flows-per-sec", str(FLOWS_PER_SEC), "--flow-duration", str(FLOW_S),
                            "--flow-rate", str(FLOW_RATE), "--duration", str(GEN_S)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(KILL_AFTER_S)
    lab.vnf["vnfB"].send_signal(signal.SIGKILL)
    t_kill, wall_kill = time.monotonic(), time.time()
    noise = lab.procs.start(lab.lab.ns("B", "vnfB"), ["/usr/bin/python3", "-c", NOISE, router_side_mac(lab, "B", "vnfB")],
                            f"{s}/noise-vnfB.log")
    local = detected = None
    reason = ""
    while time.monotonic() - t_kill < 15 and (local is None or detected is None):
        now = time.monotonic() - t_kill
        if local is None:
            b = local_state(lab, "B", 1)
            if b is not None and not b["alive"]:
                local, reason = now, b.get("down_reason", "")
        if detected is None:
            seen = lab.seen("A")
            if seen is not None and 1 not in seen:
                detected = now
        time.sleep(0.05)
    noise.terminate()
    noise.wait(timeout=5)
    out, err = gen.communicate(timeout=GEN_S + FLOW_S + 20)
    assert gen.returncode == 0, err
    sink.wait(timeout=GEN_S + FLOW_S + 20)
    with open(sink_json) as f:
        got = json.load(f)
    summary = json.loads(out.strip().splitlines()[-1])
    # where the time went (in the failure messages): B's verdict and A's view of vnfB's LSA, timed
    timeline = []
    for router, keys in (("B", ("is down", "is up", "VNF LSA 1 ")), ("A", ("VNF LSA 1 ",))):
        with open(f"{s}/{router}/agent.log") as f:
            timeline += [f"{router}: {line.rstrip()}" for line in f if any(k in line for k in keys)]
    print("\n".join(timeline))
    lost = summary["packets_sent"] - got["packets"]
    print(f"vnfB killed {t_kill - t0:.2f} s into the traffic (at {time.strftime('%H:%M:%S', time.localtime(wall_kill))}"
          f".{int(wall_kill * 1000) % 1000:03d}); B found it down after {local} s ({reason!r}); "
          f"gone from A's view after {detected} s; {lost} of {summary['packets_sent']} packets lost; "
          f"flows_switched {got['flows_switched']}, flows_moved_twice {got['flows_moved_twice']}")
    timeline.append(f"vnfB killed at {time.strftime('%H:%M:%S', time.localtime(wall_kill))}."
                    f"{int(wall_kill * 1000) % 1000:03d}")
    return {"gen": summary, "sink": got, "local": local, "reason": reason, "detected": detected,
            "kill_at": t_kill - t0, "lost": lost, "timeline": "\n".join(timeline)}


def test_dead_vnf_found_by_its_node_from_the_dataplane(killed):
    assert killed["local"] is not None, "B still has vnfB alive 15 s after kill -9"
    assert "(dataplane)" in killed["reason"], killed["reason"]
    assert killed["local"] <= LOCAL_BOUND_S


def test_dead_vnf_gone_from_the_ingress_within_the_bound(killed):
    assert killed["detected"] is not None, f"vnfB still in A's view 15 s after kill -9\n{killed['timeline']}"
    assert killed["detected"] <= DETECTION_BOUND_S, killed["timeline"]


def test_loss_is_bounded_by_the_detection_time(killed):
    offered_pps = FLOWS_PER_SEC * FLOW_S * FLOW_RATE  # at most this many packets per second in flight
    assert 0 <= killed["lost"] <= offered_pps * killed["detected"], killed["lost"]


def start_of(flow_id, gen):
    return (flow_id - gen["first_flow_id"]) / FLOWS_PER_SEC


def test_only_flows_of_the_dead_instance_lose_packets_and_only_until_detection(killed):
    gen, sink = killed["gen"], killed["sink"]
    ppf, kill, detect = gen["packets_per_flow"], killed["kill_at"], killed["kill_at"] + killed["detected"]
    per_flow = {f["flow_id"]: f for f in sink["per_flow"]}
    for i in range(gen["first_flow_id"], gen["first_flow_id"] + gen["flows_started"]):
        f, start = per_flow.get(i), start_of(i, gen)
        assert f is not None, f"flow {i} (started {start:.1f} s) never reached the sink"
        if start > detect + 0.5:
            assert f["packets"] == ppf and 1 not in f["served_by"][0], f"flow {i} started after detection: {f}"
        elif f["packets"] < ppf:
            # placed on vnfB: before the kill (vnfB served its first packets), or after it (its
            # first packets were lost); either way every packet after the move arrived
            assert f["sequence"][0][0] == 1 or start >= kill - 0.5, f"flow {i} lost packets, not on vnfB: {f}"
            assert f["max_seq"] == ppf - 1, f"flow {i}: its packets after the move are lost too: {f}\n{killed['timeline']}"


def test_flows_moved_off_the_dead_instance_move_once(killed):
    sink = killed["sink"]
    assert sink["flows_moved_twice"] == 0
    moved = [f for f in sink["per_flow"] if f["changes"][0] > 0]
    assert moved, f"flows served by vnfB when it died outlive the detection and move\n{killed['timeline']}"
    for f in moved:
        seq = f["sequence"][0]
        assert len(seq) == 2 and seq[0] == 1 and seq[1] in (2, 3) and f["changes"][0] == 1, f
    assert sink["flows_switched"] == len(moved)


def test_restarted_vnf_is_taken_back(lab, killed):
    lab.start_vnf("vnfB")
    assert wait_until(lambda: 1 in (lab.seen("A") or {}) and lab.live_in_map("A", 1), 30), \
        "vnfB back in A's view and maps within 30 s of its program's restart"


@pytest.fixture(scope="module")
def ospfd_restart(lab, killed):
    """ospfd on B killed -9 and started again 1 s later, while A's and C's views of vnfB (on B) are
    polled every 0.1 s."""
    assert wait_until(lambda: 1 in (lab.seen("A") or {}) and not lab.seen("A")[1]["held"], 30)
    pid, argv = daemon_argv(f"{lab.lab.state}/B", "ospfd")
    connects = lab.cli("B", "status")["ospf"]["connects"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not running(pid), 5)
    t_kill, wall_kill = time.monotonic(), time.time()
    time.sleep(1)
    run(["ip", "netns", "exec", lab.lab.ns("B"), *argv])
    t_back = time.monotonic()
    missing, unreachable, unlive, reconnected, held_at, unheld = [], [], [], None, None, None
    while time.monotonic() - t_kill < 3 * HOLD_DOWN_S:
        now = time.monotonic() - t_kill
        for r in ("A", "C"):
            t = lab.cli(r, "topology")
            seen = {i["id"]: i for sv in t["services"] for i in sv["instances"]} if t else None
            b_reachable = t is not None and any(x["router_id"] == B_ID and "cost" in x for x in t["routers"])
            if seen is None or 1 not in seen:
                (missing if b_reachable else unreachable).append((r, round(now, 2)))
                continue  # not in the view: not in the maps either
            elif r == "A" and seen[1]["held"] and held_at is None:
                held_at = now
            elif r == "A" and not seen[1]["held"] and held_at is not None and unheld is None:
                unheld = now
            if not lab.live_in_map(r, 1):
                unlive.append((r, round(now, 2)))
        if reconnected is None:
            ospf = (lab.cli("B", "status") or {}).get("ospf", {})
            if ospf.get("connects", 0) > connects and ospf.get("ready"):
                reconnected = time.monotonic() - t_back
        if reconnected is not None and (unheld is not None or (held_at is None and now > HOLD_DOWN_S + 2)):
            break  # back after a hold, or never held (the new copy replaced the old one in place)
        time.sleep(0.1)
    print(f"ospfd on B back 1 s after its kill: B's agent reconnected {reconnected} s later; vnfB held at A "
          f"from {held_at} s to {unheld} s after the kill; missing {missing[:5]}, not live {unlive[:5]}, "
          f"B unreachable (adjacency re-forming) {unreachable[:10]}")
    return {"missing": missing, "unreachable": unreachable, "unlive": unlive, "reconnected": reconnected, "held_at": held_at,
            "unheld": unheld}


def test_healthy_instance_stays_in_every_view_through_an_ospfd_restart(ospfd_restart):
    """While B is reachable, vnfB is in every view: its LSA vanishes when the restarted ospfd flushes
    its predecessor's copy, and the hold-down keeps it until B's agent's new copy arrives.
    `topology` reports routers and services from the same recomputation: it used to take the
    routers from the LSDB of the moment and the services from the last (throttled) run, so for one
    or two polls right after the adjacency re-formed B looked reachable while the services were
    still those computed while it was not (vnfB missing in 4 of 5 runs). No poll may show that."""
    assert ospfd_restart["missing"] == [], \
        f"vnfB missing from a view while B was reachable (router, s after the kill): {ospfd_restart['missing']}"


def test_healthy_instance_stays_live_in_the_maps_through_an_ospfd_restart(ospfd_restart):
    assert ospfd_restart["unlive"] == [], "vnfB not live in a map (router, s after the kill)"


def test_agent_reconnects_promptly_once_ospfd_is_back(ospfd_restart):
    assert ospfd_restart["reconnected"] is not None and ospfd_restart["reconnected"] <= RECONNECT_BOUND_S


def test_instance_announced_again_by_the_end_of_the_hold_down(ospfd_restart):
    """Held from when the restarted ospfd flushed its predecessor's copy of B's LSA until B's agent's
    new copy arrived: back by the end of the hold-down (no gap: the views are polled throughout,
    test_healthy_instance_stays_in_every_view_...). Measured: held about 8 s, i.e. the new copy
    arrives close to the hold-down's end (docs/agent.md, "Restarts and outages")."""
    r = ospfd_restart
    if r["held_at"] is not None:  # never held: the best case, nothing vanished
        assert r["unheld"] is not None, f"vnfB still held at A {3 * HOLD_DOWN_S} s after the kill"
        assert r["unheld"] - r["held_at"] <= HOLD_DOWN_S + HELD_MARGIN_S
