"""Running commands and finding, checking and stopping processes."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

from .names import LabError, log


def run(cmd: list[str], check: bool = True, capture: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE if capture else None, text=True,
                           timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"command not found: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout}s: {shlex.join(cmd)}") from None
    if check and p.returncode != 0:
        err = (p.stderr or "").strip()
        raise LabError(f"command failed ({p.returncode}): {shlex.join(cmd)}"
                       + (f"\n  {err}" if err else ""))
    return p


def nsexec(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", ns, *cmd], check=check)


def all_pids() -> list[int]:
    """Every pid in /proc except our own."""
    me = os.getpid()
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != me]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def pids_in_netns(inodes: set[int]) -> list[int]:
    out = []
    for pid in all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                out.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return out


def read_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int | None, expect: str | None = None) -> bool:
    """pid runs (zombies do not count) and, with expect, its command line contains expect."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return False
    except (FileNotFoundError, IndexError):
        return False
    return expect is None or expect in cmdline(pid)


def kill_pids(pids: list[int], what: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever is left after grace seconds."""
    pids = [p for p in set(pids) if alive(p)]
    for p in pids:
        log(f"stopping pid {p} ({what}): {cmdline(p)[:100]}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for p in pids if alive(p)]
        for p in left:
            if sig == signal.SIGKILL:
                log(f"pid {p} ignored SIGTERM; SIGKILL")
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in left):
            time.sleep(0.1)


def wait_for_path(path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def tail(path: str, n: int = 10) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except FileNotFoundError:
        return "(no log)"
