"""Shared pieces of the Python lab tests (agent_lab_test.py, cli_lab_test.py): paths, command
running, checks that are counted, polling, and the teardown of what a test started."""
import os
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(SRC, "scripts", "lab")
LAB_AGENT = os.path.join(SRC, "scripts", "lab-agent")
TOPO = os.path.join(SRC, "scripts", "topologies", "paper-fig3.toml")
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build")
ANYCHAIND = os.path.join(BUILD, "agent", "daemon", "anychaind")
CLI = os.path.join(BUILD, "agent", "cli", "anychain")
TOOLS = os.path.join(BUILD, "agent", "tools")

failures = []  # what check() found wrong
procs = []     # what finish() stops


def run(cmd, check_rc=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return r


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for(pred, timeout, what):
    """Poll pred until true; a timeout is a failed check."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return True
        except (RuntimeError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.25)
    check(False, f"{what} (within {timeout} s)")
    return False


def finish(main, prefix):
    """Run main(), then stop what the test started and take its lab down (kept after a failure
    with ANYCHAIN_KEEP=1); exit with main's status (77: skipped, not root)."""
    rc = 1
    try:
        rc = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        if not (failures and os.environ.get("ANYCHAIN_KEEP")):
            run([LAB, "down", "--prefix", prefix], check_rc=False)
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
        rc = rc or 1
    sys.exit(rc)
