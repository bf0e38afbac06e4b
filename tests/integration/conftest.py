"""pytest fixtures of the lab tests (lab_test.py, agent_lab_test.py, cli_lab_test.py,
experiment_test.py): the root check (exit 77, ctest's "skipped"), the build directory, the
paper's lab brought up once per test file, and the processes a test starts.

ctest runs each file (lab_test.py: each class) as one test; pytest reports every check. One
check alone (see docs/testing.md):
  /usr/bin/python3 -m pytest tests/integration/agent_lab_test.py -k spf --build-dir build
"""
import os
import signal
import subprocess
from types import SimpleNamespace

import pytest

import labkit


def pytest_addoption(parser):
    parser.addoption("--build-dir", default=os.path.join(labkit.SRC, "build"),
                     help="the build directory (anychaind, anychain, the lab tools); default: build/")


def pytest_sessionstart(session):
    if os.geteuid() != 0:
        pytest.exit("skipped: the lab tests need root (network namespaces, FRR, XDP)", returncode=77)
    labkit.reap_stale_labs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember, per test file, that something failed (a lab is then kept with ANYCHAIN_KEEP=1)."""
    outcome = yield
    if outcome.get_result().failed:
        item.module.ANYCHAIN_FAILED = True


def keep_after_failure(request):
    return getattr(request.module, "ANYCHAIN_FAILED", False) and os.environ.get("ANYCHAIN_KEEP")


@pytest.fixture(scope="session")
def build(request):
    """Paths of the build: dir, anychaind, cli (anychain), tools (anychain-vnf, -trafgen, -sink)."""
    d = os.path.abspath(request.config.getoption("--build-dir"))
    b = SimpleNamespace(dir=d, anychaind=os.path.join(d, "agent", "daemon", "anychaind"),
                        cli=os.path.join(d, "agent", "cli", "anychain"), tools=os.path.join(d, "agent", "tools"))
    for exe in (b.anychaind, b.cli):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} not built (cmake --build {d})")
    return b


class Procs:
    """Processes a test starts; stop() terminates them (SIGKILL after 5 s)."""

    def __init__(self):
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def start(self, ns, argv, log):
        """argv inside network namespace ns, output (stdout and stderr) appended to log."""
        with open(log, "a") as out:
            return self.add(subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out,
                                             stderr=subprocess.STDOUT))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


@pytest.fixture
def procs():
    """Processes started by one test, stopped after it."""
    p = Procs()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def module_procs():
    """Processes that live as long as the test file's lab, stopped before it goes down."""
    p = Procs()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def paper_lab(request, build, module_procs):
    """The paper's topology (scripts/topologies/paper-fig3.toml; another with the file's
    LAB_TOPO) up under a prefix of this run (act<LAB_KIND><pid>, LAB_KIND set by the test file),
    anychaind on every router through scripts/lab-agent (`run` plus the file's LAB_AGENT_ARGS,
    e.g. --bare, and anychaind's own arguments from its ANYCHAIND_ARGS); taken down after the file's last test (kept after a failure with
    ANYCHAIN_KEEP=1)."""
    prefix = labkit.lab_prefix(request.module.LAB_KIND)
    agent_args = " ".join(getattr(request.module, "LAB_AGENT_ARGS", []))
    anychaind_args = " ".join(getattr(request.module, "ANYCHAIND_ARGS", []))  # e.g. --log-level debug
    topo_file = getattr(request.module, "LAB_TOPO", labkit.TOPO)
    labkit.lab("down", "--prefix", prefix)
    rc, out, err = labkit.lab("up", topo_file, "--prefix", prefix, "--agent-cmd",
                              f"{labkit.LAB_AGENT} run {agent_args} {{labdir}} {{router}} {{statedir}} "
                              f"{build.anychaind} {anychaind_args}".rstrip())
    if rc != 0:
        labkit.lab("down", "--prefix", prefix)
        pytest.fail(f"scripts/lab up failed ({rc}): {err.strip()[-2000:]}")
    state = f"{labkit.STATE_ROOT}/{prefix}"
    topo = labkit.resolved_topology(topo_file)
    silent = labkit.silent_agents(build.cli, state, sorted(topo["routers"]))
    if silent:
        module_procs.stop()
        labkit.lab("down", "--prefix", prefix)
        pytest.fail(f"anychaind does not answer on its socket 30 s after the lab came up on {', '.join(silent)}")
    yield SimpleNamespace(prefix=prefix, state=state, topo=topo, routers=sorted(topo["routers"]),
                          ns=lambda *parts: "-".join(("acl", prefix) + parts))
    module_procs.stop()
    if not keep_after_failure(request):
        labkit.lab("down", "--prefix", prefix)
