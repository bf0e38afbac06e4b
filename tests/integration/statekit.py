"""What the shared-state lab tests of the built-in NFs (state_nf_lab_test.py,
state_nat_lab_test.py) have in common: the CLI against a lab's agents for a set of instances,
the fast path attached with the source's and the sink's interfaces classifying, the `state:`
section, and the datagram senders run in the lab's hosts."""
import json
import subprocess
from types import SimpleNamespace

import pytest

import labkit
from labkit import PYTHON
from state_lab_test import KEY1, set_state_section


# The fixtures of both files: import them into the test module (`from statekit import build, lab`).
build = labkit.nf_build  # the fixture `build`, with anychain-nf


@pytest.fixture(scope="module")
def lab(paper_lab):
    """The test module's LAB_TOPO up with its LAB_AGENT_ARGS (conftest's paper_lab)."""
    return paper_lab


class Cli:
    """The anychain CLI on the lab's routers; `instances` maps an instance name to (router, ...)."""

    def __init__(self, lab, build, instances):
        self.lab, self.build, self.instances = lab, build, instances

    def __call__(self, router, *args):
        rc, out, err = labkit.anychain(self.build.cli, self.lab.state, router, *args)
        return SimpleNamespace(args=args, rc=rc, out=out, err=err)

    def json(self, router, *args):
        return labkit.anychain_json(self.build.cli, self.lab.state, router, *args)

    def state(self, name):
        return self.json(self.instances[name][0], "state", name)

    def replica(self, name):
        """The instance's replication in its agent's status (None while it does not replicate)."""
        for e in self.json(self.instances[name][0], "status").get("state", {}).get("instances", []):
            if e["name"] == name:
                return e
        return None


def configure(cli, lab, topo, service, chains, policies, routers=None):
    """Every router (or those named): every interface attached (the source's and the sink's
    classifying), the service, the chains (name, spi) of that one service, the policies (name,
    chain, dst) of UDP, the state: section with KEY1. Returns the CLI calls."""
    src = [h for h in topo["hosts"] if h["kind"] == "source"][0]
    sink = [h for h in topo["hosts"] if h["kind"] == "sink"][0]
    edges = ((src["router"], src["router_if"]), (sink["router"], sink["router_if"]))
    calls = []
    for r in sorted(routers or topo["routers"]):
        for i in topo["routers"][r]["interfaces"]:
            calls.append(cli(r, "attach", i["name"], "--mode", "native",
                             *(["--classify"] if (r, i["name"]) in edges else [])))
        calls.append(cli(r, "service", "add", service[0], "--id", str(service[1]), "--anycast", service[2]))
        for name, spi in chains:
            calls.append(cli(r, "chain", "add", name, "--spi", str(spi), "--services", service[0]))
        for name, chain, dst in policies:
            calls.append(cli(r, "policy", "add", name, "--chain", chain, "--dst", dst, "--proto", "udp"))
        calls.append(set_state_section(lab, cli, r, [(1, KEY1)], 1))
    return calls


def failed_calls(calls):
    return [f"{' '.join(c.args)}: exit {c.rc}: {c.err}" for c in calls if c.rc != 0]


# One UDP datagram per destination port from a bound source address, GAP seconds apart; prints
# the CLOCK_REALTIME send time of each.
SENDER = """
import json, socket, sys, time
src, dst, first, count, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
times = []
t = time.monotonic()
for p in range(first, first + count):
    s.sendto(b"x" * 64, (dst, p))
    times.append(time.time())
    t += gap
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
print(json.dumps(times))
"""


def sender(lab, host, src, dst, first, count, gap):
    """SENDER in the lab's host namespace: ports first .. first + count - 1."""
    return subprocess.Popen(["ip", "netns", "exec", lab.ns(host), PYTHON, "-c", SENDER, src, dst, str(first),
                             str(count), str(gap)], stdout=subprocess.PIPE, text=True)


def finish(p):
    """The send times of a sender, once it is done."""
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    return json.loads(out)
