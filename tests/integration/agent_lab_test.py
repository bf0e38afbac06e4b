"""anychaind on the four-router topology of Fig. 3 of *Distributed Function Chaining with Anycast
Routing* (Wion et al.) with real FRR (pytest; fixtures in conftest.py).

Every router runs zebra + ospfd (-a) and anychaind (scripts/lab + scripts/lab-agent), VNF
instances run anychain-vnf, traffic goes from the source to the sink through the chain.
Checks, in file order (later ones change the lab: run them after the earlier ones):
  1. every agent computes the expected instances and weights (bottleneck residual policy);
  2. the router costs its SPF gives match ospfd's own `show ip ospf route json`;
  3. traffic crosses the chain: every packet reaches the sink, served by an instance;
  4. an instance withdrawn on one node (its veth goes down) disappears from every node's maps,
     and comes back when the veth is up again;
  5. ospfd restarted on a node: its agent reconnects and its LSA is back everywhere;
  6. anychaind killed with -9: the fast path keeps forwarding from the pinned maps, and the
     restarted agent adopts them without flushing the flow cache.
Root only (exit 77 otherwise).
"""
import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from labkit import LAB, LAB_AGENT, daemon_argv, run, wait_udp_bound, wait_until

LAB_KIND = "g"  # lab prefix actg<pid>
ROUTERS = {"A": "10.255.0.1", "B": "10.255.0.2", "C": "10.255.0.3", "D": "10.255.0.4"}
LINK = {("A", "B"): 160, ("A", "C"): 160, ("A", "D"): 30}
VNFS = {"vnfB": ("B", 1), "vnfC": ("C", 2), "vnfD": ("D", 3)}
CAPACITY = 150


def dist(a, b):
    if a == b:
        return 0, None
    hops = [(a, b)] if "A" in (a, b) else [(a, "A"), ("A", b)]
    costs = [LINK.get(h) or LINK[(h[1], h[0])] for h in hops]
    return sum(costs), min(costs)


def expected_weights(router):
    """instance id -> (path cost, weight) router must compute."""
    out = {}
    for r, iid in VNFS.values():
        d, bottleneck = dist(router, r)
        out[iid] = (d + CAPACITY, min(CAPACITY, bottleneck) if bottleneck else CAPACITY)
    return out


class Agents:
    """The lab's agents as the tests see them: the CLI against each control socket, the pinned
    maps, traffic from the source to the sink."""

    def __init__(self, lab, build, procs):
        self.lab, self.build, self.procs = lab, build, procs

    def cli(self, router, *args):
        r = run([self.build.cli, "--socket", f"{self.lab.state}/{router}/anychaind.sock", *args, "--json"],
                check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def pinned(self, router):
        return f"{self.lab.state}/{router}/bpffs/anychain"

    def instances_seen(self, router):
        t = self.cli(router, "topology")
        if not t:
            return {}
        return {i["id"]: i for s in t["services"] for i in s["instances"]}

    def live_in_map(self, router, inst_id):
        """Is instance inst_id live in router's pinned ac_instances map (bpftool, as root)?"""
        r = run(["bpftool", "-j", "map", "lookup", "pinned", f"{self.pinned(router)}/ac_instances", "key",
                 *[str(b) for b in inst_id.to_bytes(4, "little")]])
        v = json.loads(r.stdout)
        flags = v["formatted"]["value"]["flags"] if "formatted" in v else int(v["value"][10], 16)
        return bool(flags & 0x4)  # AC_INST_LIVE

    def flows(self, router):
        return {(f["spi"], f["si"], f["hash"]) for f in
                json.loads(run([self.build.cli, "flows", "--pin-root", self.pinned(router), "--json"]).stdout)}

    def agent_pid(self, router):
        # the hook's pid is lab-agent, which exec()s anychaind: the same pid
        with open(f"{self.lab.state}/{router}/agent.pid") as f:
            return int(f.read())

    def start_agent(self, router):
        """The command the lab's hook runs, in the router's namespace with its bpffs."""
        s = self.lab.state
        with open(f"{s}/{router}/agent.log", "a") as log:
            return self.procs.add(subprocess.Popen(
                [LAB, "exec", "--prefix", self.lab.prefix, router, "--", LAB_AGENT, "run", s, router, f"{s}/{router}",
                 self.build.anychaind], stdout=log, stderr=subprocess.STDOUT))

    def traffic(self, seconds, tag, flows_per_sec=10, rate=10):
        """(trafgen's summary, the sink's final JSON) of `seconds` of flows through the chain."""
        s, tools = self.lab.state, self.build.tools
        sink_json = f"{s}/sink-{tag}.json"
        sink = self.procs.start(self.lab.ns("dst"), [f"{tools}/anychain-sink", "--port", "9000", "--json", sink_json,
                                                     "--duration", str(seconds + 4)], f"{s}/sink-{tag}.log")
        wait_udp_bound(self.lab.ns("dst"), 9000)
        gen = run(["ip", "netns", "exec", self.lab.ns("src"), f"{tools}/anychain-trafgen", "--dst", "10.234.0.30",
                   "--dport", "9000", "--flows-per-sec", str(flows_per_sec), "--flow-duration", "1", "--flow-rate",
                   str(rate), "--duration", str(seconds)], timeout=seconds + 20)
        sink.wait(timeout=seconds + 20)
        with open(sink_json) as f:
            return json.loads(gen.stdout.strip().splitlines()[-1]), json.load(f)


@pytest.fixture(scope="module")
def agents(paper_lab, build, module_procs):
    for name, (r, iid) in VNFS.items():
        module_procs.start(paper_lab.ns(r, name), [f"{build.tools}/anychain-vnf", "--iface", "eth0", "--mode", "nsh",
                                                  "--instance-id", str(iid)], f"{paper_lab.state}/{name}.log")
    return Agents(paper_lab, build, module_procs)


# 1. instances and weights on every router

@pytest.fixture(scope="module")
def converged(agents):
    """router -> the instances it sees once it sees all three (within 30 s), or what it saw."""
    seen = {}
    for r in ROUTERS:
        wait_until(lambda r=r: len(agents.instances_seen(r)) == 3, 30)
        seen[r] = agents.instances_seen(r)
    return seen


@pytest.mark.parametrize("router", ROUTERS)
def test_router_sees_the_three_instances(converged, router):
    assert len(converged[router]) == 3, f"{router} sees {sorted(converged[router])} within 30 s"


@pytest.mark.parametrize("router,iid", [(r, iid) for r in ROUTERS for _, iid in VNFS.values()])
def test_instance_path_cost_and_weight(converged, router, iid):
    cost, weight = expected_weights(router)[iid]
    got = converged[router].get(iid, {})
    assert (got.get("path_cost"), got.get("weight")) == (cost, weight), f"{router}: instance {iid}"


@pytest.mark.parametrize("router,iid", [(r, iid) for r in ROUTERS for _, iid in VNFS.values()])
def test_instance_is_local_only_on_its_router(converged, router, iid):
    vnf_router = [r for r, i in VNFS.values() if i == iid][0]
    assert converged[router].get(iid, {}).get("local") == (vnf_router == router)


# 2. SPF costs against ospfd's routing table

@pytest.mark.parametrize("router,other", [(r, o) for r in ROUTERS for o in ROUTERS if o != r])
def test_spf_cost_matches_ospfd(agents, converged, router, other):
    spf = {x["router_id"]: x.get("cost") for x in agents.cli(router, "topology")["routers"]}
    routes = json.loads(run([LAB, "vtysh", "--prefix", agents.lab.prefix, router, "-c",
                             "show ip ospf route json"]).stdout)
    ospfd_cost = routes.get(f"{ROUTERS[other]}/32", {}).get("cost")
    assert ospfd_cost is not None, f"{router}: ospfd has no route to {other}"
    assert spf.get(ROUTERS[other]) == ospfd_cost, f"{router}: SPF cost to {other}"


# 3. traffic through the chain

@pytest.fixture(scope="module")
def first_traffic(agents, converged):
    return agents.traffic(3, tag="1")


def test_every_packet_reaches_the_sink(first_traffic):
    gen, sink = first_traffic
    assert gen["packets_sent"] > 0
    assert sink["packets"] == gen["packets_sent"]


def test_every_packet_is_served_by_an_instance(first_traffic):
    _, sink = first_traffic
    served = sink["per_slot"][0]["instances"]
    assert sink["per_slot"][0]["unserved"] == 0
    assert sum(served.values()) == sink["packets"], served


# 4. withdraw on one node, seen everywhere; and back

@pytest.fixture(scope="module")
def withdrawn(agents, first_traffic):
    run(["ip", "-n", agents.lab.ns("C"), "link", "set", "vnf-vnfC", "down"])
    return agents


@pytest.mark.parametrize("router", ROUTERS)
def test_withdrawn_instance_leaves_topology_and_maps(withdrawn, router):
    assert wait_until(lambda: 2 not in withdrawn.instances_seen(router) and not withdrawn.live_in_map(router, 2), 15)


@pytest.fixture(scope="module")
def restored(withdrawn):
    run(["ip", "-n", withdrawn.lab.ns("C"), "link", "set", "vnf-vnfC", "up"])
    return withdrawn


@pytest.mark.parametrize("router", ROUTERS)
def test_instance_comes_back(restored, router):
    assert wait_until(lambda: 2 in restored.instances_seen(router) and restored.live_in_map(router, 2), 15)


# 5. ospfd restarted on B

@pytest.fixture(scope="module")
def ospfd_restarted(restored):
    a = restored
    pid, cmdline = daemon_argv(f"{a.lab.state}/B", "ospfd")
    connects = a.cli("B", "status")["ospf"]["connects"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    run(["ip", "netns", "exec", a.lab.ns("B"), *cmdline])
    return SimpleNamespace(agents=a, connects_before=connects)


def test_agent_reconnects_to_restarted_ospfd(ospfd_restarted):
    a = ospfd_restarted.agents
    assert wait_until(lambda: a.cli("B", "status")["ospf"]["connects"] > ospfd_restarted.connects_before
                      and a.cli("B", "status")["ospf"]["ready"], 30)


def test_instance_back_in_other_views_after_ospfd_restart(ospfd_restarted):
    a = ospfd_restarted.agents
    assert wait_until(lambda: 1 in a.instances_seen("A") and not a.instances_seen("A")[1]["held"], 30)


def test_instance_live_in_maps_after_ospfd_restart(ospfd_restarted):
    a = ospfd_restarted.agents
    wait_until(lambda: 1 in a.instances_seen("A") and not a.instances_seen("A")[1]["held"], 30)
    assert a.live_in_map("A", 1)


# 6. kill -9 the agent on A: forwarding goes on; the restarted agent adopts the maps

@pytest.fixture(scope="module")
def agent_killed(ospfd_restarted):
    a = ospfd_restarted.agents
    a.traffic(2, tag="warm")  # fill A's flow cache
    before = a.flows("A")
    os.kill(a.agent_pid("A"), signal.SIGKILL)
    time.sleep(0.5)
    gen, sink = a.traffic(3, tag="dead")
    return SimpleNamespace(agents=a, flows_before=before, gen=gen, sink=sink)


def test_fast_path_forwards_while_the_agent_is_dead(agent_killed):
    assert agent_killed.gen["packets_sent"] > 0
    assert agent_killed.sink["packets"] == agent_killed.gen["packets_sent"]


@pytest.fixture(scope="module")
def agent_restarted(agent_killed):
    a = agent_killed.agents
    a.start_agent("A")
    back = wait_until(lambda: (a.cli("A", "status") or {}).get("ospf", {}).get("lsdb_trusted"), 30)
    return SimpleNamespace(agents=a, back=back, flows_before=agent_killed.flows_before, flows_after=a.flows("A"))


def test_restarted_agent_comes_back(agent_restarted):
    assert agent_restarted.back, "A's agent trusts its LSDB again within 30 s"


def test_restarted_agent_keeps_the_flow_cache(agent_restarted):
    before, after = agent_restarted.flows_before, agent_restarted.flows_after
    assert len(before) > 0
    assert before <= after, f"{len(before & after)} of {len(before)} entries kept"


def test_restarted_agent_adopts_the_pinned_maps(agent_restarted):
    with open(f"{agent_restarted.agents.lab.state}/A/agent.log") as f:
        assert "adopted" in f.read()


def test_traffic_after_the_agent_restart(agent_restarted):
    gen, sink = agent_restarted.agents.traffic(2, tag="after")
    assert sink["packets"] == gen["packets_sent"]
