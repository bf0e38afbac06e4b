#!/usr/bin/python3
"""anychaind on the paper's four-router topology (papers/000, Fig. 3) with real FRR.

Every router runs zebra + ospfd (-a) and anychaind (scripts/lab + scripts/lab-agent), VNF
instances run anychain-vnf, traffic goes from the source to the sink through the chain.
Checks, in order:
  1. every agent computes the expected instances and weights (bottleneck residual policy);
  2. the router costs its SPF gives match ospfd's own `show ip ospf route json`;
  3. traffic crosses the chain: every packet reaches the sink, served by an instance;
  4. an instance withdrawn on one node (its veth goes down) disappears from every node's maps,
     and comes back when the veth is up again;
  5. ospfd restarted on a node: its agent reconnects and its LSA is back everywhere;
  6. anychaind killed with -9: the fast path keeps forwarding from the pinned maps, and the
     restarted agent adopts them without flushing the flow cache.
Usage: agent_lab_test.py BUILD_DIR   (root; exits 77 when not root)
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from labkit import (ANYCHAIND, CLI, LAB, LAB_AGENT, TOOLS, TOPO, check, failures, finish, procs, run,  # noqa: E402
                    wait_for)

PREFIX = f"ag{os.getpid() % 100000}"
STATE = f"/run/anychain-lab/{PREFIX}"
ROUTERS = {"A": "10.255.0.1", "B": "10.255.0.2", "C": "10.255.0.3", "D": "10.255.0.4"}
LINK = {("A", "B"): 160, ("A", "C"): 160, ("A", "D"): 30}
VNFS = {"vnfB": ("B", 1), "vnfC": ("C", 2), "vnfD": ("D", 3)}
CAPACITY = 150






def cli(router, *args):
    r = run([CLI, "--socket", f"{STATE}/{router}/anychaind.sock", *args, "--json"], check_rc=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def pinned(router):
    return f"{STATE}/{router}/bpffs/anychain"




def instances_seen(router):
    t = cli(router, "topology")
    if not t:
        return {}
    return {i["id"]: i for s in t["services"] for i in s["instances"]}


def live_in_map(router, inst_id):
    """Is instance inst_id live in router's pinned ac_instances map (bpftool, as root)?"""
    r = run(["bpftool", "-j", "map", "lookup", "pinned", f"{pinned(router)}/ac_instances", "key",
             *[str(b) for b in inst_id.to_bytes(4, "little")]])
    v = json.loads(r.stdout)
    flags = v["formatted"]["value"]["flags"] if "formatted" in v else int(v["value"][10], 16)
    return bool(flags & 0x4)  # AC_INST_LIVE


def dist(a, b):
    if a == b:
        return 0, None
    hops = [(a, b)] if "A" in (a, b) else [(a, "A"), ("A", b)]
    costs = [LINK.get(h) or LINK[(h[1], h[0])] for h in hops]
    return sum(costs), min(costs)


def expected_weights(router):
    out = {}
    for name, (r, iid) in VNFS.items():
        d, bottleneck = dist(router, r)
        out[iid] = (d + CAPACITY, min(CAPACITY, bottleneck) if bottleneck else CAPACITY)
    return out


def start(ns, argv, log):
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def start_agent(router):
    # the same command the lab's hook runs, in the router's namespace with its bpffs
    return subprocess.Popen([LAB, "exec", "--prefix", PREFIX, router, "--", LAB_AGENT, "run", STATE, router,
                             f"{STATE}/{router}", ANYCHAIND],
                            stdout=open(f"{STATE}/{router}/agent.log", "a"), stderr=subprocess.STDOUT)


def agent_pid(router):
    with open(f"{STATE}/{router}/agent.pid") as f:
        pid = int(f.read())
    # the hook's pid is lab-agent, which exec()s anychaind: the same pid
    return pid


def traffic(seconds, flows_per_sec=10, rate=10, tag="t"):
    sink_json = f"{STATE}/sink-{tag}.json"
    sink = start(f"acl-{PREFIX}-dst", [f"{TOOLS}/anychain-sink", "--port", "9000", "--json", sink_json,
                                       "--duration", str(seconds + 4)], f"{STATE}/sink-{tag}.log")
    time.sleep(0.5)
    gen = run(["ip", "netns", "exec", f"acl-{PREFIX}-src", f"{TOOLS}/anychain-trafgen", "--dst", "10.234.0.30",
               "--dport", "9000", "--flows-per-sec", str(flows_per_sec), "--flow-duration", "1", "--flow-rate",
               str(rate), "--duration", str(seconds)], timeout=seconds + 20)
    sink.wait(timeout=seconds + 20)
    return json.loads(gen.stdout.strip().splitlines()[-1]), json.loads(open(sink_json).read())


def main():
    if os.geteuid() != 0:
        print("agent_lab_test: needs root (network namespaces, XDP)")
        return 77
    run([LAB, "down", "--prefix", PREFIX], check_rc=False)
    run([LAB, "up", TOPO, "--prefix", PREFIX, "--agent-cmd",
         f"{LAB_AGENT} run {{labdir}} {{router}} {{statedir}} {ANYCHAIND}"], timeout=120)
    for name, (r, iid) in VNFS.items():
        start(f"acl-{PREFIX}-{r}-{name}", [f"{TOOLS}/anychain-vnf", "--iface", "eth0", "--mode", "nsh",
                                          "--instance-id", str(iid)], f"{STATE}/{name}.log")

    # 1. instances and weights on every router
    for r in ROUTERS:
        wait_for(lambda r=r: len(instances_seen(r)) == 3, 30, f"{r} sees the 3 instances")
        seen = instances_seen(r)
        exp = expected_weights(r)
        for iid, (cost, weight) in exp.items():
            got = seen.get(iid, {})
            check(got.get("path_cost") == cost and got.get("weight") == weight,
                  f"{r}: instance {iid} path cost {got.get('path_cost')} weight {got.get('weight')} "
                  f"(expected {cost}, {weight})")
            vnf_router = [v[0] for v in VNFS.values() if v[1] == iid][0]
            check(got.get("local") == (vnf_router == r), f"{r}: instance {iid} local={got.get('local')}")

    # 2. SPF costs against ospfd's routing table
    for r in ROUTERS:
        topo = cli(r, "topology")
        spf = {x["router_id"]: x.get("cost") for x in topo["routers"]}
        routes = json.loads(run([LAB, "vtysh", "--prefix", PREFIX, r, "-c", "show ip ospf route json"]).stdout)
        for other, rid in ROUTERS.items():
            if other == r:
                continue
            ospfd_cost = routes.get(f"{rid}/32", {}).get("cost")
            check(spf.get(rid) == ospfd_cost and ospfd_cost is not None,
                  f"{r}: SPF cost to {other} {spf.get(rid)} == ospfd's {ospfd_cost}")

    # 3. traffic through the chain
    gen, sink = traffic(3, tag="1")
    served = sink["per_slot"][0]["instances"]
    check(sink["packets"] == gen["packets_sent"] and gen["packets_sent"] > 0,
          f"sink got {sink['packets']} of {gen['packets_sent']} packets")
    check(sink["per_slot"][0]["unserved"] == 0 and sum(served.values()) == sink["packets"],
          f"every packet served by an instance: {served}")

    # 4. withdraw on one node, seen everywhere; and back
    run(["ip", "-n", f"acl-{PREFIX}-C", "link", "set", "vnf-vnfC", "down"])
    for r in ROUTERS:
        wait_for(lambda r=r: 2 not in instances_seen(r) and not live_in_map(r, 2), 15,
                 f"{r}: withdrawn instance 2 gone from its topology and its maps")
    run(["ip", "-n", f"acl-{PREFIX}-C", "link", "set", "vnf-vnfC", "up"])
    for r in ROUTERS:
        wait_for(lambda r=r: 2 in instances_seen(r) and live_in_map(r, 2), 15, f"{r}: instance 2 back")

    # 5. ospfd restarted on B
    with open(f"{STATE}/B/ospfd.pid") as f:
        pid = int(f.read())
    cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")[:-1]
    connects = cli("B", "status")["ospf"]["connects"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    run(["ip", "netns", "exec", f"acl-{PREFIX}-B", *cmdline])
    wait_for(lambda: cli("B", "status")["ospf"]["connects"] > connects and cli("B", "status")["ospf"]["ready"],
             30, "B's agent reconnected to the restarted ospfd")
    wait_for(lambda: 1 in instances_seen("A") and not instances_seen("A")[1]["held"], 30,
             "B's instance is back in A's view after B's ospfd restart")
    check(live_in_map("A", 1), "instance 1 live in A's map after B's ospfd restart")

    # 6. kill -9 the agent on A: forwarding goes on; the restarted agent adopts the maps
    traffic(2, tag="warm")  # fill A's flow cache
    before = {(f["spi"], f["si"], f["hash"]) for f in
              json.loads(run([CLI, "flows", "--pin-root", pinned("A"), "--json"]).stdout)}
    os.kill(agent_pid("A"), signal.SIGKILL)
    time.sleep(0.5)
    gen, sink = traffic(3, tag="dead")
    check(sink["packets"] == gen["packets_sent"] and gen["packets_sent"] > 0,
          f"agent on A dead: the fast path still delivered {sink['packets']} of {gen['packets_sent']}")
    agent = start_agent("A")
    procs.append(agent)
    wait_for(lambda: (cli("A", "status") or {}).get("ospf", {}).get("lsdb_trusted"), 30, "A's agent back")
    after = {(f["spi"], f["si"], f["hash"]) for f in
             json.loads(run([CLI, "flows", "--pin-root", pinned("A"), "--json"]).stdout)}
    check(len(before) > 0 and before <= after,
          f"flow cache kept across the agent restart ({len(before & after)} of {len(before)} entries)")
    log = open(f"{STATE}/A/agent.log").read()
    check("adopted" in log, "restarted agent adopted the live instances from the pinned maps")
    gen, sink = traffic(2, tag="after")
    check(sink["packets"] == gen["packets_sent"], f"after the restart: {sink['packets']} of {gen['packets_sent']}")
    return 1 if failures else 0


if __name__ == "__main__":
    finish(main, PREFIX)
