"""The VM lab's life cycle on a topology other than the paper's (pytest; fixtures in conftest.py):
scripts/topologies/two-services.toml with `scripts/lab up --vm` (one VM per router, anychaind on each,
the two VNF programs run by the lab), then the commands an operator uses on it, and `up` killed
half-way. Checks:
  - `up` twice: the second only waits; status shows every VM, FRR, agent and VNF program up;
  - the programs run in their nodes' instance namespaces (mode, slot, pid file the agent watches,
    forwarding off there);
  - every packet from the source (on A's VM) reaches the sink (on B's VM) exactly once through the
    firewall on B and the NAT on C, stamped by both: three kernels, four virtio-net crossings;
  - `vnf stop` withdraws the NAT on every router, `vnf start` brings it back; `agent restart`;
  - `kill-node C`: A and B drop C's instance, A's OSPF loses C, status shows C's VM down;
  - `down` leaves nothing; after `up --vm` is SIGKILLed while the VMs boot and while OSPF
    converges, `up` asks for `down` and `down` leaves nothing.
Root only (exit 77 otherwise). 249-516 s measured on the 2-core TCG host (ctest budget 1800 s).
"""
import json
import os
import re
import signal
import subprocess
import time
import tomllib

import pytest

from labkit import LAB, LAB_AGENT, PYTHON, STATE_ROOT, TOPOS, lab, lab_prefix, leftovers, run, wait_until

TOPO = os.path.join(TOPOS, "two-services.toml")
with open(TOPO, "rb") as f:
    FILE = tomllib.load(f)  # the topology as written


def on(prefix, target, *argv, check=True, timeout=120):
    """scripts/lab exec on a node of a VM lab."""
    return run([LAB, "exec", "--prefix", prefix, target, "--", *argv], check=check, timeout=timeout)


def cli(lab_, router, *args):
    r = on(lab_.prefix, router, lab_.build.cli, "--socket", f"{lab_.state}/{router}/anychaind.sock", *args,
           "--json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def instances_seen(lab_, router):
    t = cli(lab_, router, "topology") or {}
    return {i["id"] for s in t.get("services", []) for i in s["instances"]}


def status(prefix):
    return json.loads(run([LAB, "status", "--prefix", prefix, "--json"], timeout=180).stdout)


def wait_for(pred, timeout, what):
    if not wait_until(pred, timeout, interval=1.0):
        pytest.fail(f"timed out after {timeout} s: {what}")


class Lab:
    def __init__(self, prefix, build):
        self.prefix, self.build = prefix, build
        self.state = f"{STATE_ROOT}/{prefix}"

    def up(self, timeout=1800):
        return lab("up", TOPO, "--vm", "--prefix", self.prefix, "--build", self.build.dir, "--agent-cmd",
                   f"{LAB_AGENT} run {{labdir}} {{router}} {{statedir}} {self.build.anychaind}", timeout=timeout)


@pytest.fixture(scope="module")
def vmlab(build):
    lab_ = Lab(lab_prefix("w"), build)
    lab("down", "--prefix", lab_.prefix)
    rc, out, err = lab_.up()
    if rc != 0:
        lab("down", "--prefix", lab_.prefix, timeout=300)
        pytest.fail(f"scripts/lab up --vm failed ({rc}): {err[-3000:]}")
    yield lab_
    if not os.environ.get("ANYCHAIN_KEEP"):
        lab("down", "--prefix", lab_.prefix, timeout=300)


def test_up_again_only_waits(vmlab):
    rc, out, err = vmlab.up(timeout=300)
    assert rc == 0 and "already up" in out, err[-1000:]


def test_status_shows_every_node_up(vmlab):
    st = status(vmlab.prefix)
    assert st["backend"] == "vm" and st["status"] == "up"
    assert st["namespaces"] == [f"acl-{vmlab.prefix}-wire"], "the host holds only the wire namespace"
    for r, rs in st["routers"].items():
        assert rs["vm"]["alive"], r
        assert all(d["alive"] for d in rs["daemons"].values()), (r, rs["daemons"])
        assert rs["agent"] and rs["agent"]["alive"] and rs["agent"]["found_by"] == "pid_file", (r, rs["agent"])
        assert all(n["state"].startswith("Full") for n in rs["neighbors"].values()) and \
            len(rs["neighbors"]) == len(rs["expected_neighbors"]), (r, rs["neighbors"])
    for v in st["vnfs"]:
        assert v["netns_exists"] and v["program"] and v["program"]["alive"], v
    assert all(h["netns_exists"] for h in st["hosts"])


@pytest.mark.parametrize("vnf", [v["name"] for v in FILE["vnf"]])
def test_program_runs_in_its_node(vmlab, vnf):
    want = next(v for v in FILE["vnf"] if v["name"] == vnf)
    services = [s["name"] for s in FILE["service"]]
    v = next(x for x in status(vmlab.prefix)["vnfs"] if x["name"] == vnf)
    pid = v["program"]["pid"]
    argv = on(vmlab.prefix, want["router"], "cat", f"/proc/{pid}/cmdline").stdout.split("\0")[:-1]
    opt = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--")}
    assert argv[0] == os.path.join(vmlab.build.tools, "anychain-vnf")
    assert opt["--mode"] == ("nsh" if want.get("nsh_aware", True) else "plain")
    assert opt["--slot"] == str(services.index(want["service"]))
    # in the instance's namespace, inside the node
    assert on(vmlab.prefix, vnf, "sh", "-c", f"[ $(stat -L -c %i /proc/{pid}/ns/net) = "
              "$(stat -L -c %i /proc/self/ns/net) ]", check=False).returncode == 0
    pid_file = f"{vmlab.state}/{want['router']}/vnf-{vnf}.pid"
    assert on(vmlab.prefix, want["router"], "cat", pid_file).stdout.strip() == str(pid)
    conf = on(vmlab.prefix, want["router"], "cat", f"{vmlab.state}/{want['router']}/anychaind.yaml").stdout
    assert re.search(rf"name: {vnf},.*pid_file: {re.escape(pid_file)}\}}", conf)
    assert on(vmlab.prefix, vnf, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def test_every_packet_crosses_three_kernels_once(vmlab):
    ids = {v["instance_id"] for v in FILE["vnf"]}
    wait_for(lambda: instances_seen(vmlab, "A") >= ids, 120, f"A sees instances {ids}")
    topo = vmlab_topology(vmlab)
    sink = next(h for h in topo["hosts"] if h["kind"] == "sink")
    share = f"{vmlab.state}/{sink['router']}/share"
    out = f"{share}/sink-test.json"
    if os.path.exists(out):
        os.unlink(out)
    sp = subprocess.Popen([LAB, "exec", "--prefix", vmlab.prefix, sink["name"], "--",
                           f"{vmlab.build.tools}/anychain-sink", "--port", "9000", "--json", out,
                           "--duration", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(out), 60, "the sink runs")
        gen = on(vmlab.prefix, "src", f"{vmlab.build.tools}/anychain-trafgen", "--dst",
                 sink["host_addr"].split("/")[0], "--dport", "9000", "--flows-per-sec", "10",
                 "--flow-duration", "1", "--flow-rate", "20", "--duration", "2").stdout
        gen = json.loads(gen.strip().splitlines()[-1])
        sp.wait(timeout=120)
    finally:
        if sp.poll() is None:
            sp.kill()
    sent, ppf = gen["packets_sent"], gen["packets_per_flow"]
    assert sent == gen["flows_started"] * ppf and sent > 0
    with open(out) as f:
        got = json.load(f)
    assert got["packets"] == sent, f"sink got {got['packets']} of {sent}"
    fw, nat = (next(v["instance_id"] for v in FILE["vnf"] if v["service"] == s) for s in ("fw", "nat"))
    assert got["per_slot"][0] == {"slot": 0, "instances": {str(fw): sent}, "unserved": 0}
    assert got["per_slot"][1] == {"slot": 1, "instances": {str(nat): sent}, "unserved": 0}


def vmlab_topology(vmlab):
    with open(f"{vmlab.state}/lab.json") as f:
        return json.load(f)


def test_vnf_stop_and_start_reach_every_router(vmlab):
    nat = next(v for v in FILE["vnf"] if v["service"] == "nat")
    run([LAB, "vnf", "stop", "--prefix", vmlab.prefix, nat["name"]], timeout=120)
    wait_for(lambda: nat["instance_id"] not in instances_seen(vmlab, "A"), 60, "A withdraws the NAT")
    run([LAB, "vnf", "start", "--prefix", vmlab.prefix, nat["name"]], timeout=120)
    wait_for(lambda: nat["instance_id"] in instances_seen(vmlab, "A"), 60, "A sees the NAT again")


def test_agent_restart(vmlab):
    before = status(vmlab.prefix)["routers"]["B"]["agent"]["pid"]
    out = run([LAB, "agent", "restart", "--prefix", vmlab.prefix, "B"], timeout=180).stdout
    assert "stopped" in out and "started" in out, out
    wait_for(lambda: cli(vmlab, "B", "status") is not None, 300, "B's agent answers again")
    after = status(vmlab.prefix)["routers"]["B"]["agent"]
    assert after["alive"] and after["pid"] != before


def test_kill_node(vmlab):
    nat = next(v for v in FILE["vnf"] if v["service"] == "nat")
    out = run([LAB, "kill-node", "--prefix", vmlab.prefix, nat["router"]], timeout=60).stdout
    assert "SIGKILL" in out
    for r in ("A", "B"):
        wait_for(lambda r=r: nat["instance_id"] not in instances_seen(vmlab, r), 30,
                 f"{r} drops the NAT of the dead node")
    nbrs = json.loads(run([LAB, "vtysh", "--prefix", vmlab.prefix, "A", "-c", "show ip ospf neighbor json"]).stdout)
    assert "10.255.2.3" not in nbrs["neighbors"]
    st = status(vmlab.prefix)
    assert not st["routers"][nat["router"]]["vm"]["alive"]
    assert st["routers"]["A"]["vm"]["alive"] and st["routers"]["B"]["vm"]["alive"]


def test_down_leaves_nothing(vmlab):
    rc, _, err = lab("down", "--prefix", vmlab.prefix, timeout=300)
    assert rc == 0, err
    left = leftovers(vmlab.prefix)
    assert all(v == [] for v in left.values()), left


# ---- `up --vm` killed half-way ----------------------------------------------------------------


def up_killed_when(prefix, build, ready, timeout=900):
    """Start `scripts/lab up --vm` (two-routers.toml), SIGKILL it once ready(prefix) holds."""
    p = subprocess.Popen([PYTHON, LAB, "up", os.path.join(TOPOS, "two-routers.toml"), "--vm", "--prefix", prefix,
                          "--agent-cmd", f"{LAB_AGENT} run {{labdir}} {{router}} {{statedir}} {build.anychaind}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: ready(prefix) or p.poll() is not None, timeout, interval=0.2)
        assert p.poll() is None, f"up ended ({p.returncode}) before the point to kill it"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def booting(prefix):
    return os.path.exists(f"{STATE_ROOT}/{prefix}/R2/vm.pid")


def converging(prefix):
    try:
        with open(f"{STATE_ROOT}/{prefix}/state.json") as f:
            return json.load(f)["status"] == "converging"
    except (OSError, ValueError, KeyError):
        return False


@pytest.mark.parametrize("point", ["booting", "converging"])
def test_up_killed_then_down_leaves_nothing(build, point):
    prefix = lab_prefix("y" if point == "booting" else "z")
    lab("down", "--prefix", prefix)
    up_killed_when(prefix, build, booting if point == "booting" else converging)
    time.sleep(1)
    rc, _, err = lab("up", os.path.join(TOPOS, "two-routers.toml"), "--vm", "--prefix", prefix)
    assert rc == 2 and "down --prefix" in err, err[-500:]
    rc, _, err = lab("down", "--prefix", prefix, timeout=300)
    assert rc == 0, err
    left = leftovers(prefix)
    assert all(v == [] for v in left.values()), left
