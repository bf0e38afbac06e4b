#!/usr/bin/python3
"""scripts/lab running the instances' programs, on scripts/topologies/two-services.toml (three
routers, one-way costs, an NSH-aware VNF and an NSH-unaware one, anychaind on every router).

- the lab runs anychain-vnf for `run = true` instances, in their namespaces, with the mode their
  NSH awareness needs and the slot of their service; forwarding is off in VNF namespaces;
- every packet reaches the sink exactly once, counted by the sink and by tcpdump on the sink's
  interface (an NSH-unaware VNF used to let the kernel forward a second, unstamped copy);
- UDP that no VNF rewrites arrives with a valid checksum (TX offload off on the sources);
- one-way costs are in each router's LSA and in the routes, also after ospfd restarts;
- `scripts/lab agent stop|start|restart`; an agent restarted by hand is found, not reported DOWN;
- a killed VNF program is noticed through the pid file the lab gives the agent;
  `scripts/lab vnf stop|start|restart`.

Root (conftest.py exits 77, ctest's "skipped", otherwise). Alone:
  flock /tmp/anychain-ctest.lock /usr/bin/python3 -m pytest tests/integration/lab_vnf_test.py --build-dir build
"""
import heapq
import json
import os
import re
import signal
import subprocess
import time
import tomllib

import pytest

from labkit import LAB, LAB_AGENT, STATE_ROOT, TOPOS, dp_counters, lab_prefix, namespaces, running, wait_udp_bound, wait_until
from labkit import vtysh_json as labkit_vtysh_json

TOPO = os.path.join(TOPOS, "two-services.toml")
PREFIX = lab_prefix("v")
STATE = f"{STATE_ROOT}/{PREFIX}"
CLI = None  # the build's anychain: the lab fixture sets it from conftest's build

with open(TOPO, "rb") as f:
    FILE = tomllib.load(f)  # the topology as written, for expectations the lab did not compute


def ns(*parts):
    return "-".join(("acl", PREFIX) + parts)


def lab(*args, check=True, timeout=180):
    r = subprocess.run(["/usr/bin/python3", LAB, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"scripts/lab {' '.join(args)}: {r.returncode}: {r.stderr[-2000:]}"
    return r


def status():
    return json.loads(lab("status", "--prefix", PREFIX, "--json").stdout)


def cli(router, *args):
    """anychain --json against router's agent; None when it does not answer."""
    r = subprocess.run([CLI, "--socket", f"{STATE}/{router}/anychaind.sock", *args, "--json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_for(pred, timeout, what):
    if not wait_until(pred, timeout):
        pytest.fail(f"timed out after {timeout} s: {what}")


def instances_seen(router):
    t = cli(router, "topology") or {}
    return {i["id"] for s in t.get("services", []) for i in s["instances"]}


def sysctl(namespace, key):
    return subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-n", key],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def topo(build):
    global CLI
    CLI = build.cli
    if not os.access(os.path.join(build.tools, "anychain-vnf"), os.X_OK):
        pytest.fail(f"anychain-vnf not built (cmake --build {build.dir})")
    lab("down", "--prefix", PREFIX, check=False)
    r = lab("up", TOPO, "--prefix", PREFIX, "--build", build.dir, "--agent-cmd",
            f"{LAB_AGENT} run {{labdir}} {{router}} {{statedir}} {build.anychaind}", check=False)
    if r.returncode != 0:
        lab("down", "--prefix", PREFIX, check=False)
        pytest.fail(f"scripts/lab up failed ({r.returncode}): {r.stderr[-2000:]}")
    with open(f"{STATE}/lab.json") as f:
        t = json.load(f)
    yield t
    if not os.environ.get("ANYCHAIN_KEEP"):
        lab("down", "--prefix", PREFIX, check=False)


def test_programs_run_with_mode_slot_and_pid_file(topo, build):
    st = status()
    services = [s["name"] for s in FILE["service"]]
    for want in FILE["vnf"]:
        v = next(x for x in st["vnfs"] if x["name"] == want["name"])
        p = v["program"]
        assert p and p["alive"] and p["found_by"] == "pid_file", f"{want['name']}: {p}"
        with open(f"/proc/{p['pid']}/cmdline", "rb") as f:
            argv = f.read().decode().split("\0")[:-1]
        opt = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--")}
        assert argv[0] == os.path.join(build.tools, "anychain-vnf")
        assert opt["--mode"] == ("nsh" if want.get("nsh_aware", True) else "plain")
        assert opt["--slot"] == str(services.index(want["service"]))
        assert opt["--instance-id"] == str(want["instance_id"])
        assert opt["--iface"] == "eth0"
        vns = ns(want["router"], want["name"])
        assert os.stat(f"/proc/{p['pid']}/ns/net").st_ino == os.stat(f"/run/netns/{vns}").st_ino, \
            "runs in the instance's namespace"
        pid_file = f"{STATE}/{want['router']}/vnf-{want['name']}.pid"
        assert open(pid_file).read().strip() == str(p["pid"])
        conf = open(f"{STATE}/{want['router']}/anychaind.yaml").read()
        assert re.search(rf"name: {want['name']},.*pid_file: {re.escape(pid_file)}\}}", conf), \
            "the agent watches the program's pid file"
        assert sysctl(vns, "net.ipv4.ip_forward") == "0"
        assert sysctl(vns, "net.ipv6.conf.all.forwarding") == "0"
    text = lab("status", "--prefix", PREFIX).stdout
    assert len(re.findall(r"^  program up \(pid \d+\)$", text, re.M)) == len(FILE["vnf"])


def test_every_packet_reaches_the_sink_once(topo, build):
    ids = {v["instance_id"] for v in FILE["vnf"]}
    # the routers that choose instances (A the firewall, B the NAT) know them; C, where the NAT
    # runs, may not trust its LSDB yet (the agents started a moment ago): it must deliver anyway
    # what B sends to its instance, as the agent writes a local instance before announcing it
    wait_for(lambda: instances_seen("A") >= ids and instances_seen("B") >= ids, 30, f"A and B see instances {ids}")
    sink = next(h for h in topo["hosts"] if h["kind"] == "sink")
    dst = sink["host_addr"].split("/")[0]
    pcap = f"{STATE}/sink.pcap"
    # tcpdump on the sink's interface counts what arrives, independently of anychain-sink
    dump = subprocess.Popen(["ip", "netns", "exec", ns(sink["name"]), "tcpdump", "-i", "eth0", "-n",
                             "-U", "-w", pcap, "udp", "and", "dst", "port", "9000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert "listening on" in dump.stderr.readline()
    sp = subprocess.Popen(["ip", "netns", "exec", ns(sink["name"]), f"{build.tools}/anychain-sink", "--port", "9000",
                           "--json", f"{STATE}/sink.json", "--duration", "6"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_udp_bound(ns(sink["name"]), 9000)
        out = subprocess.run(["ip", "netns", "exec", ns("src"), f"{build.tools}/anychain-trafgen", "--dst", dst,
                              "--dport", "9000", "--flows-per-sec", "10", "--flow-duration", "1",
                              "--flow-rate", "20", "--duration", "2"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        gen = json.loads(out.strip().splitlines()[-1])
        sp.wait(timeout=20)
    finally:
        for p in (sp, dump):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=10)
    sent, ppf = gen["packets_sent"], gen["packets_per_flow"]
    assert sent == gen["flows_started"] * ppf and sent > 0
    got = json.load(open(f"{STATE}/sink.json"))
    drops = {r: {k: n for k, n in dp_counters(CLI, STATE, r, ("drops",)).items() if n} for r in ("A", "B", "C")}
    assert drops == {"A": {}, "B": {}, "C": {}}, "no router dropped a packet of the chain"
    on_wire = subprocess.run(["tcpdump", "-r", pcap, "-n"], capture_output=True, text=True).stdout
    short = [f for f in got["per_flow"] if f["packets"] != ppf]
    assert got["packets"] == sent, \
        f"sink got {got['packets']} of {sent}, tcpdump {len(on_wire.splitlines())}; flows short: {short}"
    assert got["flows"] == gen["flows_started"]
    assert all(f["packets"] == ppf and f["max_seq"] == ppf - 1 for f in got["per_flow"]), \
        "each flow: every packet once"
    fw, nat = (next(v["instance_id"] for v in FILE["vnf"] if v["service"] == s) for s in ("fw", "nat"))
    assert got["per_slot"][0] == {"slot": 0, "instances": {str(fw): sent}, "unserved": 0}
    assert got["per_slot"][1] == {"slot": 1, "instances": {str(nat): sent}, "unserved": 0}
    assert len(on_wire.splitlines()) == sent, "tcpdump: one copy of each packet on the sink's wire"

    # the README tour: the ingress's flow cache read from the host with --pin-root
    flows = json.loads(subprocess.run([CLI, "flows", "--pin-root", f"{STATE}/A/bpffs/anychain", "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    assert len({f["hash"] for f in flows}) >= gen["flows_started"]
    assert {f["instance"] for f in flows} == {fw}, "A chooses the first service only"


def udp_csum_errors(namespace):
    snmp = subprocess.run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout
    head, values = [l.split() for l in snmp.splitlines() if l.startswith("Udp:")][:2]
    return int(values[head.index("InCsumErrors")])


def test_udp_that_no_vnf_rewrites_keeps_a_valid_checksum(topo, build):
    sink = next(h for h in topo["hosts"] if h["kind"] == "sink")
    for h in topo["hosts"]:
        k = subprocess.run(["ip", "netns", "exec", ns(h["name"]), "ethtool", "-k", "eth0"],
                           capture_output=True, text=True, check=True).stdout
        assert re.search(r"^tx-checksumming: off", k, re.M), f"{h['name']}: TX checksum offload off"
    before = udp_csum_errors(ns(sink["name"]))
    sp = subprocess.Popen(["ip", "netns", "exec", ns(sink["name"]), f"{build.tools}/anychain-sink", "--port", "9000",
                           "--json", f"{STATE}/sink2.json", "--duration", "3"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_udp_bound(ns(sink["name"]), 9000)
    # not a lab payload: the VNFs forward it as it came, so its checksum is the sender's
    send = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for i in range(50): s.sendto(b'plain datagram %d ' % i + bytes(80), (sys.argv[1], 9000))\n")
    subprocess.run(["ip", "netns", "exec", ns("src"), "/usr/bin/python3", "-c", send,
                    sink["host_addr"].split("/")[0]], check=True, timeout=30)
    sp.wait(timeout=20)
    got = json.load(open(f"{STATE}/sink2.json"))
    assert got["non_lab"] == 50 and udp_csum_errors(ns(sink["name"])) == before


def directed_costs():
    """(u, v) -> cost of u's interface toward v, read from the file as a user would."""
    out = {}
    for l in FILE["link"]:
        out[(l["a"], l["b"])] = l.get("cost_ab", l.get("cost"))
        out[(l["b"], l["a"])] = l.get("cost_ba", l.get("cost"))
    return out


def dijkstra(src):
    cost = directed_costs()
    dist, first = {src: 0}, {}
    heap = [(0, src, None)]
    while heap:
        d, u, hop = heapq.heappop(heap)
        if d > dist.get(u, 1 << 30):
            continue
        for (a, b), c in cost.items():
            if a == u and d + c < dist.get(b, 1 << 30):
                dist[b] = d + c
                first[b] = hop or b
                heapq.heappush(heap, (d + c, b, hop or b))
    return dist, first


def vtysh_json(router, command):
    return labkit_vtysh_json(PREFIX, router, command)


def lsa_metrics(seen_by):
    """advertising router id -> {neighbour router id: metric} from seen_by's LSDB."""
    data = vtysh_json(seen_by, "show ip ospf database router json")
    out = {}
    for lsa in data["routerLinkStates"]["areas"]["0.0.0.0"]:
        out[lsa["advertisingRouter"]] = {l["neighborRouterId"]: l["tos0Metric"]
                                         for l in lsa["routerLinks"].values() if "neighborRouterId" in l}
    return out


def check_one_way_costs():
    rid = {r["name"]: r["router_id"] for r in FILE["router"]}
    for me in rid:
        metrics = lsa_metrics(me)
        for (a, b), c in directed_costs().items():
            assert metrics[rid[a]][rid[b]] == c, f"{me}'s LSDB: {a}'s metric to {b}"
        routes = vtysh_json(me, "show ip ospf route json")
        dist, first = dijkstra(me)
        for other, d in dist.items():
            if other != me:
                r = routes[f"{rid[other]}/32"]
                assert r["cost"] == d, f"{me} -> {other}"
                assert [n["via"] for n in r["nexthops"]] == [f"to-{first[other]}"], f"{me} -> {other}"


def test_one_way_costs_in_lsas_and_routes(topo):
    check_one_way_costs()
    # the asymmetry this file is about: A -> B direct, B -> A around through C
    assert dijkstra("A")[1]["B"] == "B" and dijkstra("B")[1]["A"] == "C"


def agent_of(router):
    return status()["routers"][router]["agent"]


def test_agent_stop_start_restart(topo, build):
    pid0 = agent_of("A")["pid"]
    r = lab("agent", "stop", "--prefix", PREFIX, "A")
    assert f"stopped (pid {pid0})" in r.stdout and not running(pid0)
    assert agent_of("A")["alive"] is False
    assert " agent DOWN " in lab("status", "--prefix", PREFIX).stdout
    assert cli("A", "status") is None

    lab("agent", "start", "--prefix", PREFIX, "A")
    a = agent_of("A")
    assert a["alive"] and a["found_by"] == "pid_file" and a["pid"] != pid0
    wait_for(lambda: cli("A", "status"), 15, "A's agent answers")
    r = lab("agent", "start", "--prefix", PREFIX, "A")
    assert f"already running (pid {a['pid']})" in r.stdout and agent_of("A")["pid"] == a["pid"]

    lab("agent", "restart", "--prefix", PREFIX, "A")
    b = agent_of("A")
    assert b["alive"] and b["pid"] != a["pid"] and not running(a["pid"])

    # kill -9 and a restart by hand: found by its control socket, not reported DOWN
    os.kill(b["pid"], signal.SIGKILL)
    wait_for(lambda: not running(b["pid"]), 5, "agent killed")
    with open(f"{STATE}/A/agent.log", "a") as log:
        hand = subprocess.Popen([LAB, "exec", "--prefix", PREFIX, "A", "--", LAB_AGENT, "run", STATE, "A",
                                 f"{STATE}/A", build.anychaind], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: cli("A", "status"), 15, "hand-started agent answers")
    c = agent_of("A")
    assert c == {"pid": hand.pid, "alive": True, "found_by": "control_socket"}
    assert re.search(rf"agent up \(pid {hand.pid}, found by its control socket\)",
                     lab("status", "--prefix", PREFIX).stdout)
    # restart stops the hand-started agent and puts a new one under the pid file
    lab("agent", "restart", "--prefix", PREFIX, "A")
    hand.wait(timeout=15)
    d = agent_of("A")
    assert d["alive"] and d["found_by"] == "pid_file" and d["pid"] != hand.pid
    wait_for(lambda: cli("A", "status"), 15, "A's agent answers again")

    r = lab("agent", "stop", "--prefix", PREFIX, "Z", check=False)
    assert r.returncode == 2 and "unknown router 'Z'" in r.stderr


def program_of(vnf):
    return next(v for v in status()["vnfs"] if v["name"] == vnf)["program"]


def test_killed_vnf_is_withdrawn_and_vnf_commands(topo):
    nat = next(v for v in FILE["vnf"] if v["name"] == "nat1")
    wait_for(lambda: nat["instance_id"] in instances_seen("A"), 30, "A sees nat1")
    pid = program_of("nat1")["pid"]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: nat["instance_id"] not in instances_seen("A"), 15,
             "nat1's instance withdrawn after its program was killed")
    print(f"nat1 gone from A's view {time.monotonic() - t0:.1f} s after kill -9")
    assert program_of("nat1") is None
    assert "  program DOWN: packets steered here are lost" in lab("status", "--prefix", PREFIX).stdout

    r = lab("vnf", "start", "--prefix", PREFIX, "nat1")
    assert "started" in r.stdout and "slot 1" in r.stdout
    wait_for(lambda: nat["instance_id"] in instances_seen("A"), 30, "nat1 back in A's view")

    fw0 = program_of("fw1")["pid"]
    lab("vnf", "restart", "--prefix", PREFIX, "fw1")
    fw1 = program_of("fw1")
    assert fw1["pid"] != fw0 and not running(fw0) and fw1["found_by"] == "pid_file"
    lab("vnf", "stop", "--prefix", PREFIX, "fw1")
    assert program_of("fw1") is None and not running(fw1["pid"])
    r = lab("vnf", "start", "--prefix", PREFIX, "fw1")
    assert "started" in r.stdout and program_of("fw1")["alive"]
    r = lab("vnf", "start", "--prefix", PREFIX, "nosuch", check=False)
    assert r.returncode == 2 and "unknown vnf 'nosuch'" in r.stderr


def test_one_way_costs_survive_an_ospfd_restart(topo):
    pid = int(open(f"{STATE}/A/ospfd.pid").read())
    argv = open(f"/proc/{pid}/cmdline").read().split("\0")[:-1]
    seq = {l["advertisingRouter"]: int(l["lsaSeqNumber"], 16) for l in
           vtysh_json("B", "show ip ospf database router json")["routerLinkStates"]["areas"]["0.0.0.0"]}
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not running(pid), 5, "ospfd killed")
    subprocess.run(["ip", "netns", "exec", ns("A"), *argv], check=True, timeout=30)
    lab("wait-converged", "--prefix", PREFIX, "--timeout", "60")
    rid_a = next(r["router_id"] for r in FILE["router"] if r["name"] == "A")

    def fresh():
        lsas = vtysh_json("B", "show ip ospf database router json")["routerLinkStates"]["areas"]["0.0.0.0"]
        return any(l["advertisingRouter"] == rid_a and int(l["lsaSeqNumber"], 16) > seq[rid_a] for l in lsas)
    wait_for(fresh, 30, "B has A's router LSA from the restarted ospfd")
    check_one_way_costs()


def test_up_refuses_run_true_without_the_vnf_program():
    prefix = lab_prefix("w")
    r = lab("up", TOPO, "--prefix", prefix, "--build", "/nonexistent", check=False)
    assert r.returncode == 2 and "/nonexistent/agent/tools/anychain-vnf not found" in r.stderr
    assert not os.path.exists(f"{STATE_ROOT}/{prefix}") and namespaces(prefix) == []
