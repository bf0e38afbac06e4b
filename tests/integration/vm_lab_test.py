"""The paper's experiment on the VM lab: one VM per router (scripts/lab up --vm, docs/lab.md "VM lab"),
then one of them failing as a whole (pytest; fixtures in conftest.py).

scripts/experiment --vm brings paper-fig3 up as four VMs (prefix actv<pid>: own kernel, FRR, anychaind
and XDP on virtio-net each, linked by host bridges), runs three runs time-compressed x3 (pooled) and,
in the third, SIGKILLs node D's qemu at the end of phase 2 and keeps the traffic on (phase 3).
Judged against the WCMP policy's own fixed point (--expect policy: 50/50, then 41.4/41.4/17.3), over
three pooled runs, where paper_experiment_quick judges two against the paper's 40/40/20: on this
backend each run's shares spread wider (vnfD's phase-2 run means 11.7 to 23.3 %, standard deviation
3 points over thirteen runs, mean 17.1 %, the policy's 17.3 %), so the paper's 20 % left vnfD's median
about 2 standard deviations of two pooled runs above the 15 % limit and it fell under once (14.6 %);
docs/experiment.md, "How often the acceptance passes". Checks:
  - the experiment's acceptance: every steady-state median within 5 points of the policy's fixed
    point, at least 20 samples each, nothing on vnfD before it starts;
  - the failure: every surviving agent (A, B, C) drops vnfD within the bound (20 s), the sink receives
    nothing vnfD served after the kill, and phase 3 settles at the WCMP policy's fixed point over the
    survivors (vnfB and vnfC: 50/50) within 5 points;
  - the nodes are separate machines: each answers with its own kernel (the guest's 6.1, not the host's)
    and boot id, its own bpffs (a pin made on one is absent on the others), anychain attached in native
    mode on virtio-net NICs whose XDP counters show the traffic crossed them;
  - status, exec and vtysh work over the VM backend (exit codes, the dead node shown DOWN);
  - `down` leaves nothing: no namespace, process, tap, state dir.
Root only (exit 77 otherwise). 420-463 s on the 2-core TCG host under other sessions' load with two
runs and the earlier 150/K-second phase 3, about 50 s more since and about 110 s more for the third run;
the experiment is given 1000 s, ctest's budget is 1500 s.
"""
import csv
import json
import os
import subprocess
from types import SimpleNamespace

import pytest

from labkit import LAB, PYTHON, SRC, STATE_ROOT, lab, lab_prefix, leftovers, run, steady_samples_missing

FAILED = "D"
RUNS = 3  # the last one goes on into phase 3 with node D dead
LAST = str(RUNS)
PHASES = (("1", ["vnfB", "vnfC"]), ("2", ["vnfB", "vnfC", "vnfD"]), ("3", ["vnfB", "vnfC"]))


@pytest.fixture(scope="module")
def experiment(build):
    prefix = lab_prefix("v")
    out = os.path.join(build.dir, "experiment-vm")
    lab("down", "--prefix", prefix)
    try:
        rc = subprocess.run([PYTHON, os.path.join(SRC, "scripts", "experiment"), "--vm", "--compress", "3",
                             "--runs", str(RUNS), "--expect", "policy", "--fail-node", FAILED, "--keep", "--prefix", prefix,
                             "--build", build.dir, "--out", out], timeout=1000).returncode
    except subprocess.TimeoutExpired:
        rc = "timed out after 1000 s"  # the tests fail on it; the lab still goes down below
    summary = None
    if os.path.exists(os.path.join(out, "summary.json")):
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
    rows = []
    if os.path.exists(os.path.join(out, "shares.csv")):
        with open(os.path.join(out, "shares.csv")) as f:
            rows = list(csv.DictReader(f))
    yield SimpleNamespace(rc=rc, summary=summary, rows=rows, prefix=prefix, build=build)
    if not os.environ.get("ANYCHAIN_KEEP"):
        lab("down", "--prefix", prefix, timeout=300)


def on(ex, target, *argv, check=True, timeout=120):
    """scripts/lab exec on a node of the experiment's lab."""
    return run([LAB, "exec", "--prefix", ex.prefix, target, "--", *argv], check=check, timeout=timeout)


ALIVE = ["A", "B", "C"]


def test_experiment_accepts(experiment):
    assert experiment.rc == 0, f"exit status {experiment.rc}: {experiment.summary and experiment.summary['misses']}"


def test_summary_accepts_on_the_vm_backend(experiment):
    assert experiment.summary is not None, "summary.json written"
    assert experiment.summary["backend"] == "vm"
    assert experiment.summary["accepted"] and not experiment.summary["misses"], experiment.summary["misses"]


@pytest.mark.parametrize("phase,vnf", [(ph, n) for ph, names in PHASES for n in names])
def test_steady_samples(experiment, phase, vnf):
    missing = steady_samples_missing(experiment.summary, phase, vnf)
    assert missing is None, missing


def test_phases_1_and_2_expect_the_policys_fixed_point(experiment):
    """--expect policy: 50/50, then the fixed point worked out in docs/wcmp-policy.md (41.4/41.4/17.3)."""
    e = experiment.summary["expected"]
    assert e["1"] == {"vnfB": 50.0, "vnfC": 50.0}, e
    assert e["2"]["vnfB"] == e["2"]["vnfC"] and abs(e["2"]["vnfB"] - 41.4) <= 0.1 and abs(e["2"]["vnfD"] - 17.3) <= 0.1, e


def test_phase_3_expects_the_survivors_50_50(experiment):
    assert experiment.summary["expected"]["3"] == {"vnfB": 50.0, "vnfC": 50.0}


def test_no_traffic_on_vnfd_before_it_starts(experiment):
    assert all(r["share_vnfD"] in ("", "0.00") for r in experiment.rows if r["phase"] == "1" and r["steady"])


def test_no_traffic_on_vnfd_after_its_node_died(experiment):
    """The sink's last vnfD packet lies in the second of the kill (one sink interval, plus the ~1 s to
    which the sink's clock in A's VM is aligned with the host's); nothing it served arrives later."""
    fo = experiment.summary["failover"]
    assert fo["sink_last_dead_packet_after_s"] is not None and fo["sink_last_dead_packet_after_s"] <= 2.0, fo
    late = [r for r in experiment.rows if r["run"] == LAST and float(r["t"]) > fo["killed_at_s"] + 2.0]
    assert late and all(r["pkts_vnfD"] == "0" for r in late)


@pytest.mark.parametrize("router", ALIVE)
def test_surviving_agents_drop_the_dead_instance_in_bounded_time(experiment, router):
    fo = experiment.summary["failover"]
    dt = fo["agents_dropped_after_s"].get(router)
    assert dt is not None and dt <= fo["bound_s"], fo


def test_traffic_flows_again_after_the_failure(experiment):
    """In phase 3's steady window the sink gets what the generator offers (B and C have room)."""
    lo, hi = experiment.summary["steady_windows_s"]["3"]
    rates = [float(r["offered_pps"]) for r in experiment.rows if r["run"] == LAST and lo <= float(r["t"]) < hi]
    assert rates and sorted(rates)[len(rates) // 2] >= 180, rates


def test_the_dead_node_is_down_in_status(experiment):
    st = json.loads(run([LAB, "status", "--prefix", experiment.prefix, "--json"], timeout=180).stdout)
    assert st["backend"] == "vm"
    assert not st["routers"][FAILED]["vm"]["alive"]
    for r in ALIVE:
        rs = st["routers"][r]
        assert rs["vm"]["alive"] and rs["daemons"]["zebra"]["alive"] and rs["daemons"]["ospfd"]["alive"], rs
        assert rs["agent"] and rs["agent"]["alive"], rs


def test_each_node_is_its_own_kernel(experiment):
    host = os.uname().release
    seen = {}
    for r in ALIVE:
        out = on(experiment, r, "sh", "-c", "uname -r; cat /proc/sys/kernel/random/boot_id").stdout.split()
        assert out[0] != host or host.startswith("6.1."), f"{r} runs the host's kernel {host}"
        seen[r] = out[1]
    assert len(set(seen.values())) == len(ALIVE), seen


def test_each_node_has_its_own_bpffs(experiment):
    mark = f"/sys/fs/bpf/vm-lab-test-{os.getpid()}"
    on(experiment, "A", "mkdir", mark)
    for r in ("B", "C"):
        assert on(experiment, r, "test", "-e", mark, check=False).returncode == 1
    assert not os.path.exists(mark)
    # every node pins its own fast path
    for r in ALIVE:
        assert on(experiment, r, "test", "-d", "/sys/fs/bpf/anychain").returncode == 0


@pytest.mark.parametrize("router", ALIVE)
def test_fast_path_native_on_virtio_net(experiment, router):
    st = json.loads(on(experiment, router, experiment.build.cli, "--socket",
                       f"{STATE_ROOT}/{experiment.prefix}/{router}/anychaind.sock", "status", "--json").stdout)
    links = [i for i in st["interfaces"] if i["name"].startswith("to-")]
    assert links and all(i["mode"] == "native" for i in links), st["interfaces"]
    for i in links:
        drv = on(experiment, router, "ethtool", "-i", i["name"]).stdout
        assert "driver: virtio_net" in drv, drv
        link = json.loads(on(experiment, router, "ip", "-d", "-j", "link", "show", i["name"]).stdout)[0]
        assert link["xdp"]["mode"] == 1, link["xdp"]  # XDP_ATTACHED_DRV


@pytest.mark.parametrize("router", ["B", "C"])
def test_traffic_crossed_the_virtio_nics_through_xdp(experiment, router):
    """B's and C's instances were fed through their to-A NIC: virtio-net's own XDP counters, which
    only the driver's XDP path moves, count the redirects into the VNF veth."""
    stats = on(experiment, router, "ethtool", "-S", "to-A").stdout
    redirects = sum(int(l.split(":")[1]) for l in stats.splitlines() if "xdp_redirects" in l)
    assert redirects > 1000, stats


def test_exec_returns_the_exit_status(experiment):
    assert on(experiment, "A", "sh", "-c", "exit 7", check=False).returncode == 7
    assert on(experiment, "src", "sh", "-c", "exit 3", check=False).returncode == 3


def test_vtysh_sees_the_dead_neighbour_gone(experiment):
    out = run([LAB, "vtysh", "--prefix", experiment.prefix, "A", "-c", "show ip ospf neighbor json"]).stdout
    nbrs = json.loads(out)["neighbors"]
    assert set(nbrs) == {"10.255.0.2", "10.255.0.3"}, nbrs


def test_down_leaves_nothing(experiment):
    rc, _, err = lab("down", "--prefix", experiment.prefix, timeout=300)
    assert rc == 0, err
    left = leftovers(experiment.prefix)
    assert all(v == [] for v in left.values()), left
    taps = run(["ip", "-j", "link", "show", "type", "tun"], check=False).stdout
    assert f"{experiment.prefix}" not in taps
    assert not os.path.exists(f"{STATE_ROOT}/{experiment.prefix}")
