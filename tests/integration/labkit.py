"""Plain helpers of the Python lab tests (tests/integration/*_test.py): paths, lab prefixes that
are unique to a run, running commands, polling, and what a lab can leave behind. The pytest
fixtures built on them (root check, build directory, labs, processes) are in conftest.py."""
import functools
import json
import os
import re
import subprocess
import time

import pytest

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(SRC, "scripts", "lab")
LAB_AGENT = os.path.join(SRC, "scripts", "lab-agent")
TOPOS = os.path.join(SRC, "scripts", "topologies")
TOPO = os.path.join(TOPOS, "paper-fig3.toml")
STATE_ROOT = "/run/anychain-lab"
# Debian's interpreter: FRR's ospfclient.py breaks on Python >= 3.11.5.
PYTHON = "/usr/bin/python3"

# Every lab a test brings up is named act<kind><pid> (kind: one letter per test file or case),
# so that runs from different worktrees on one machine never share a lab, and a run that was
# killed can be recognised and cleaned up by the next one (reap_stale_labs).
TEST_PREFIX_RE = re.compile(r"^act[a-z](\d+)$")


def lab_prefix(kind):
    return f"act{kind}{os.getpid()}"


def run(cmd, check=True, timeout=120, **kw):
    """Run cmd, capture its output as text; with check, a non-zero exit raises RuntimeError."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return r


def lab(*args, timeout=120):
    """scripts/lab ARGS: (exit status, stdout, stderr)."""
    r = run([PYTHON, LAB, *args], check=False, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def anychain(cli, state, router, *args):
    """The anychain CLI against a lab router's anychaind (its socket in the lab's state dir):
    (exit status, stdout, stderr)."""
    r = run([cli, "--socket", f"{state}/{router}/anychaind.sock", *args], check=False)
    return r.returncode, r.stdout, r.stderr.strip()


def anychain_json(cli, state, router, *args):
    """anychain ARGS --json on a lab router, parsed; a failure raises RuntimeError."""
    rc, out, err = anychain(cli, state, router, *args, "--json")
    if rc != 0:
        raise RuntimeError(f"anychain {' '.join(args)} on {router}: exit {rc}: {err}")
    return json.loads(out)


def vtysh_json(prefix, router, command):
    return json.loads(run([LAB, "vtysh", "--prefix", prefix, router, "-c", command]).stdout)


def dp_counters(cli, state, router, kinds=("verdicts", "drops", "notes")):
    """A lab router's fast-path counters, reason -> packets (`anychain stats --json` on its pinned
    maps under `state`/`router`/bpffs; `kinds`: which of its lists)."""
    j = json.loads(run([cli, "stats", "--json", "--pin-root", f"{state}/{router}/bpffs/anychain"]).stdout)
    return {x["reason"]: x["packets"] for k in kinds for x in j[k]}


def wait_udp_bound(namespace, port, timeout=15):
    """Until a UDP socket is bound to `port` in `namespace` (ss, iproute2's): a receiver started
    in the background is ready for the first packet only then, however loaded the machine is."""
    def bound():
        out = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-H", "-u", "-l", "-n", f"sport = :{port}"],
                             capture_output=True, text=True, check=True).stdout
        return bool(out.strip())
    if not wait_until(bound, timeout, 0.05):
        pytest.fail(f"nothing bound UDP port {port} in {namespace} within {timeout} s")


def wait_until(pred, timeout, interval=0.25):
    """Poll pred (exceptions count as not yet) until it is true or timeout seconds passed."""
    end = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return True
        except (RuntimeError, ValueError, KeyError, TypeError, OSError):
            pass
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def silent_agents(cli, state, routers, timeout=30):
    """The routers whose anychaind does not answer on STATE/<router>/anychaind.sock within timeout
    seconds. `scripts/lab up` returns once the agent hooks are started; anychaind listens only
    after it has loaded the fast path, attached its ports and opened the slow path."""
    def answers(r):
        return run([cli, "--socket", f"{state}/{r}/anychaind.sock", "status"], check=False).returncode == 0
    return [r for r in routers if not wait_until(lambda r=r: answers(r), timeout)]


@functools.cache
def resolved_topology(path=TOPO):
    """The topology as scripts/lab resolves it (interfaces, addresses, VNFs, hosts); no root needed,
    so tests can be parametrised with it when pytest collects them."""
    return json.loads(run([PYTHON, LAB, "check", path, "--json"]).stdout)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_argv(statedir, daemon):
    """(pid, command line) of a lab router's FRR daemon from its pid file in statedir (S/<router>),
    to kill it and start it again as the lab did."""
    with open(f"{statedir}/{daemon}.pid") as f:
        pid = int(f.read())
    with open(f"/proc/{pid}/cmdline") as f:
        return pid, f.read().split("\0")[:-1]


def running(pid):
    """True for a live process (a zombie waiting for init to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def reap_stale_labs():
    """Take down the labs of test runs that are gone: act<kind><pid> whose process no longer
    exists (or is this one: nothing of this run exists yet when pytest starts)."""
    prefixes = set()
    for d in os.listdir(STATE_ROOT) if os.path.isdir(STATE_ROOT) else []:
        prefixes.add(d)
    for n in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        parts = n.split("-")
        if parts[0] == "acl" and len(parts) > 2:
            prefixes.add(parts[1])
    for p in sorted(prefixes):
        m = TEST_PREFIX_RE.match(p)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            lab("down", "--prefix", p)


def namespaces(prefix):
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"acl-{prefix}-"))


def processes_mentioning(needles):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                c = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in c for n in needles):
            out.append((int(d), c.strip()))
    return out


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


# What `scripts/lab down` must leave of a lab: each kind is checked by its own test.
LEFTOVER_KINDS = ("namespaces", "processes", "recorded_pids", "state_dir", "mounts", "frr_rundirs")


def leftovers(prefix, pids=()):
    """kind -> what of lab `prefix` is still there (empty: nothing)."""
    sd = f"{STATE_ROOT}/{prefix}"
    return {
        "namespaces": namespaces(prefix),
        "processes": processes_mentioning([f"acl-{prefix}-", sd + "/"]),
        "recorded_pids": [p for p in pids if running(p)],
        "state_dir": [sd] if os.path.exists(sd) else [],
        "mounts": mounts_under(sd),
        "frr_rundirs": [n for n in os.listdir("/var/run/frr") if n.startswith(f"acl-{prefix}-")],
    }


def steady_samples_missing(summary, phase, vnf, least=20):
    """Why the experiment's summary.json lacks `least` steady-state samples of vnf in phase, or None."""
    if summary is None:
        return "no summary.json written"
    s = summary["table"][phase][vnf]
    if s is None or s["samples"] < least:
        return f"phase {phase} {vnf}: {s and s['samples']} steady samples, fewer than {least}"
    return None


@pytest.fixture(scope="module", name="build")
def nf_build(build):
    """conftest's build, with anychain-nf (the built-in NFs' process) required: the labs of the
    built-in NFs import it into their module, where it stands for `build`."""
    nf = os.path.join(build.dir, "agent", "nf", "anychain-nf")
    if not os.access(nf, os.X_OK):
        pytest.fail(f"{nf} not built")
    return build


def send_streams(lab, build, procs, src, sink, streams, sink_s, during=None, distinct_flow_ids=False):
    """anychain-sink (UDP port 9000) on the topology's host `sink` for sink_s seconds and one
    anychain-trafgen per (dport, flows/s, flow duration, rate, duration[, UDP payload bytes])
    stream from host `src` to it; `during` (seconds, fn) runs fn that long after the traffic started. With
    distinct_flow_ids, each stream numbers its flows from its own base (1, 10001, ...). Returns the
    generators' reports by dport, the sink's report and what fn returned."""
    receiver = sink_start(lab, build, procs, sink, sink_s)
    dst = sink["host_addr"].split("/")[0]
    gens = {}
    for i, (dport, fps, fdur, rate, dur, *size) in enumerate(streams):
        base = ["--flow-id-base", str(1 + 10000 * i)] if distinct_flow_ids else []
        base += ["--payload-size", str(size[0])] if size else []
        gens[dport] = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns(src["name"]), f"{build.tools}/anychain-trafgen", "--dst", dst,
             "--dport", str(dport), "--flows-per-sec", str(fps), "--flow-duration", str(fdur), "--flow-rate",
             str(rate), "--duration", str(dur), *base], stdout=subprocess.PIPE, text=True)
    extra = None
    if during:
        time.sleep(during[0])
        extra = during[1]()
    reports = {d: json.loads(g.communicate(timeout=60)[0].splitlines()[-1]) for d, g in gens.items()}
    return reports, sink_report(receiver), extra


def sink_start(lab, build, procs, sink, sink_s):
    """anychain-sink on UDP port 9000 of the topology's host `sink` for sink_s seconds, ready
    when this returns; sink_report() waits for it and returns its JSON report."""
    out = f"{lab.state}/sink-{time.monotonic_ns()}.json"
    proc = procs.start(lab.ns(sink["name"]), [f"{build.tools}/anychain-sink", "--port", "9000", "--json", out,
                                              "--duration", str(sink_s)], os.devnull)
    wait_udp_bound(lab.ns(sink["name"]), 9000)
    return proc, out


def sink_report(receiver):
    proc, out = receiver
    proc.wait(timeout=60)
    with open(out) as f:
        return json.load(f)
