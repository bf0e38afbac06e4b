#!/usr/bin/python3
"""A netns lab with real FRR driven only through the `anychain` CLI.

The agents start with a bare config (node and OSPF only). Everything else goes through the CLI:
attach the interfaces, add a service, an instance, a chain and a policy, send traffic, read
flows and stats as JSON, then detach everything, stop the agents and flush: no XDP program is
left on any interface and no pin under the routers' bpffs. Bad input is refused with the exit
codes scripts rely on (1 runtime error, 2 usage, 3 daemon not running).
Usage: cli_lab_test.py BUILD_DIR   (root; exits 77 when not root)
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

PREFIX = f"cl{os.getpid() % 100000}"
STATE = f"/run/anychain-lab/{PREFIX}"






def cli(router, *args, rc=0, in_ns=False):
    """anychain against router's daemon (or, in_ns, inside its namespace with its bpffs)."""
    cmd = [CLI, "--socket", f"{STATE}/{router}/anychaind.sock", *args]
    if in_ns:
        cmd = [LAB, "exec", "--prefix", PREFIX, router, "--", *cmd]
    r = run(cmd, check_rc=False)
    check(r.returncode == rc, f"{router}: anychain {' '.join(args)} -> exit {r.returncode} (want {rc})"
          + (f": {r.stderr.strip()}" if r.returncode != rc else ""))
    return r


def cli_json(router, *args):
    r = cli(router, *args, "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def xdp_on(ns):
    links = json.loads(run(["ip", "-n", ns, "-j", "-d", "link", "show"]).stdout)
    return [l["ifname"] for l in links if l.get("xdp")]




def main():
    if os.geteuid() != 0:
        print("cli_lab_test: needs root (network namespaces, XDP)")
        return 77
    lab = None
    run([LAB, "down", "--prefix", PREFIX], check_rc=False)
    run([LAB, "up", TOPO, "--prefix", PREFIX, "--agent-cmd",
         f"{LAB_AGENT} run --bare {{labdir}} {{router}} {{statedir}} {ANYCHAIND}"], timeout=120)
    with open(f"{STATE}/lab.json") as f:
        lab = json.load(f)
    sink = [h for h in lab["hosts"] if h["kind"] == "sink"][0]
    src = [h for h in lab["hosts"] if h["kind"] == "source"][0]
    routers = sorted(lab["routers"])

    # usage and runtime errors, with the exit codes scripts rely on
    cli("A", "attach", rc=2)
    cli("A", "frobnicate", rc=2)
    cli("A", "attach", "nosuch0", rc=1)
    r = run([CLI, "--socket", f"{STATE}/nobody.sock", "status"], check_rc=False)
    check(r.returncode == 3, f"status without a daemon -> exit {r.returncode} (want 3)")

    # attach every link and VNF interface, and the source's interface as classifying
    for name in routers:
        for i in lab["routers"][name]["interfaces"]:
            cli(name, "attach", i["name"], "--mode", "native")
    cli(src["router"], "attach", src["router_if"], "--mode", "native", "--classify")
    for name in routers:
        st = cli_json(name, "status")
        want = {i["name"] for i in lab["routers"][name]["interfaces"]}
        if name == src["router"]:
            want.add(src["router_if"])
        got = {i["name"] for i in st["interfaces"]}
        check(got == want and all(i["mode"] == "native" for i in st["interfaces"]),
              f"{name}: status shows {sorted(got)} attached natively")
        check(all(isinstance(i.get("dispatcher"), bool) for i in st["interfaces"]),
              f"{name}: status says whether each attachment is behind libxdp's dispatcher")

    # service, instance (on B), chain and policy: through the daemons, persisted in their config
    for name in routers:
        cli(name, "service", "add", "generic", "--id", "1", "--anycast", "10.100.0.1/32")
        cli(name, "chain", "add", "main", "--spi", "7", "--services", "generic")
        cli(name, "policy", "add", "to-sink", "--chain", "main", "--dst", f"{sink['subnet']}", "--proto", "udp")
    vnf = [v for v in lab["vnfs"] if v["router"] == "B"][0]
    cli("B", "instance", "add", vnf["name"], "--id", str(vnf["instance_id"]), "--service", "generic", "--veth",
        vnf["router_if"], "--capacity", "1000")
    cli("A", "chain", "add", "main", "--spi", "8", "--services", "generic", rc=1)  # duplicate name
    conf = open(f"{STATE}/B/anychaind.yaml").read()
    check("main" in conf and vnf["name"] in conf and "to-sink" in conf, "B's config file holds the CLI's changes")
    chains = cli_json("A", "chain", "list")
    check(chains and chains[0]["name"] == "main" and chains[0]["spi"] == 7, f"chain list: {chains}")

    wait_for(lambda: any(i["id"] == vnf["instance_id"] for s in cli_json("A", "topology")["services"]
                         for i in s["instances"]), 30, "A learns B's instance from OSPF")

    # traffic through the chain
    p = subprocess.Popen(["ip", "netns", "exec", f"acl-{PREFIX}-B-{vnf['name']}", f"{TOOLS}/anychain-vnf",
                          "--iface", "eth0", "--mode", "nsh", "--instance-id", str(vnf["instance_id"])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    sp = subprocess.Popen(["ip", "netns", "exec", f"acl-{PREFIX}-{sink['name']}", f"{TOOLS}/anychain-sink",
                           "--port", "9000", "--json", f"{STATE}/sink.json", "--duration", "6"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sp)
    time.sleep(0.5)
    gen = json.loads(run(["ip", "netns", "exec", f"acl-{PREFIX}-{src['name']}", f"{TOOLS}/anychain-trafgen",
                          "--dst", sink["host_addr"].split("/")[0], "--dport", "9000", "--flows-per-sec", "10",
                          "--flow-duration", "1", "--flow-rate", "10", "--duration", "2"]).stdout.splitlines()[-1])
    sp.wait(timeout=20)
    got = json.load(open(f"{STATE}/sink.json"))
    check(got["packets"] == gen["packets_sent"] > 0, f"sink got {got['packets']} of {gen['packets_sent']}")

    # flows and stats as JSON, from A's pinned maps
    flows = json.loads(cli("A", "flows", "--spi", "7", "--json", in_ns=True).stdout)
    check(len(flows) == gen["flows_started"] and all(f["instance"] == vnf["instance_id"] for f in flows),
          f"flows: {len(flows)} entries of chain 7, all to instance {vnf['instance_id']}")
    stats = json.loads(cli("A", "stats", "--json", in_ns=True).stdout)
    reasons = {x["reason"]: x["packets"] for x in stats["reasons"]}
    check(reasons.get("classified") == gen["packets_sent"] and reasons.get("fwd_remote") == gen["packets_sent"],
          f"A's stats: classified {reasons.get('classified')}, fwd_remote {reasons.get('fwd_remote')}")
    paths = {(x["spi"], x["si"]): x["packets"] for x in stats["paths"]}
    check(paths.get((7, 255)) == gen["packets_sent"], f"A's (7, 255) counter {paths.get((7, 255))}")

    # SIGHUP re-reads the config file
    with open(f"{STATE}/A/agent.pid") as f:
        os.kill(int(f.read()), signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in open(f"{STATE}/A/agent.log").read(), 10, "A reloads on SIGHUP")
    check(cli_json("A", "chain", "list")[0]["name"] == "main", "A still has its chain after the reload")

    # detach everything, stop the agents, flush: nothing left behind
    for name in routers:
        for i in cli_json(name, "status")["interfaces"]:
            cli(name, "detach", i["name"])
    for name in routers:
        check(not xdp_on(f"acl-{PREFIX}-{name}"), f"{name}: no XDP program left ({xdp_on(f'acl-{PREFIX}-{name}')})")
        cli(name, "flush", in_ns=True, rc=1)  # refused while the daemon runs
        with open(f"{STATE}/{name}/agent.pid") as f:
            os.kill(int(f.read()), signal.SIGTERM)
    for name in routers:
        wait_for(lambda name=name: run([CLI, "--socket", f"{STATE}/{name}/anychaind.sock", "status"],
                                        check_rc=False).returncode == 3, 10, f"{name}: agent stopped")
        if name == "D":
            # D: a new agent with --flush-on-exit removes the pins itself when stopped
            agent = subprocess.Popen([LAB, "exec", "--prefix", PREFIX, "D", "--", LAB_AGENT, "run", "--bare", STATE,
                                      "D", f"{STATE}/D", ANYCHAIND, "--flush-on-exit"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(agent)
            wait_for(lambda: run([CLI, "--socket", f"{STATE}/D/anychaind.sock", "status"],
                                 check_rc=False).returncode == 0, 15, "D: agent with --flush-on-exit up")
            check(os.path.exists(f"{STATE}/D/bpffs/anychain/ac_config"), "D: maps pinned while it runs")
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=15)
        else:
            cli(name, "flush", in_ns=True)
        left = []
        top = f"{STATE}/{name}/bpffs"
        for root, dirs, files in os.walk(top):
            # maps.debug and progs.debug at a bpffs root are the kernel's own (BPF preload)
            left += [os.path.join(root, x) for x in files
                     if not (root == top and x in ("maps.debug", "progs.debug"))]
        check(not left, f"{name}: no pins left under its bpffs ({left[:4]})")
    return 1 if failures else 0


if __name__ == "__main__":
    finish(main, PREFIX)
