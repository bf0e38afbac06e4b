"""What the lab runs besides FRR: the agent hook, one per router, and VNF programs.

A running program is found by what runs, not only by its pid file: the pid in the pid file if
that process still runs in the program's namespace, else (agents only) the process in the
router's namespace serving the router's control socket (scripts/lab-agent's
STATEDIR/anychaind.sock), else one whose command line is one the lab started there. So an agent
restarted by hand (`scripts/lab exec P A -- scripts/lab-agent run ...`) is not reported dead.

VNF programs: the lab runs anychain-vnf for an instance with `run = true` (and for any instance
on `scripts/lab vnf start`), in the instance's namespace on its eth0, in the mode its NSH
awareness needs (NSH frames, or the SFC proxy's bare IP), stamping its chain slot. Its pid goes
to a pid file that scripts/lab-agent gives anychaind as the instance's `pid_file`, so the
instance is withdrawn when the program dies.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from typing import Callable

from .names import LabError, lab_dir, log, ns_name, router_dir
from .netns import Journal, exec_prelude, netns_inode
from .proc import alive, cmdline, kill_pids, pids_in_netns, read_pid, tail

AGENT_SOCKET = "anychaind.sock"  # scripts/lab-agent's control socket in the router's state dir
SO_ACCEPTCON = 0x10000           # "listening" in /proc/net/unix's Flags column
VNF_BINARY = os.path.join("agent", "tools", "anychain-vnf")  # in a build directory


# ---- starting, finding and stopping a program ---------------------------------------------


def _spawn(argv: list[str], shown: list[str], pidfile: str, logpath: str, what: str,
           exit_ok: bool) -> int:
    """Run argv in its own session, output appended to logpath, pid to pidfile (argv starts
    with `ip netns exec`, which execs the program: the same pid). An exit within 0.2 s fails,
    unless it is a clean one and exit_ok."""
    with open(logpath, "ab") as logf:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, start_new_session=True)
    with open(pidfile, "w") as f:
        f.write(f"{p.pid}\n")
    time.sleep(0.2)
    if p.poll() is not None and not (exit_ok and p.returncode == 0):
        raise LabError(f"{what} exited at once with {p.returncode}: {shlex.join(shown)}\n"
                       f"  log tail:\n{tail(logpath)}")
    log(f"{what}: pid {p.pid}: {shlex.join(shown)} (log {logpath})")
    return p.pid


def _find(prefix: str, netns: str, pidfile: str, kind: str, match: dict,
          serving: Callable[[list[int]], int | None] | None = None) -> tuple[int | None, str | None]:
    """(pid, "pid_file" | "control_socket" | "command_line") of the program the lab started
    as journal entries of `kind` matching `match`, running in netns; (None, None) if none."""
    inode = netns_inode(netns)
    if inode is None:
        return None, None
    in_ns = sorted(p for p in pids_in_netns({inode}) if alive(p))
    pid = read_pid(pidfile)
    if pid in in_ns:
        return pid, "pid_file"
    if serving and (pid := serving(in_ns)) is not None:
        return pid, "control_socket"
    j = Journal.load(prefix)
    started = {e.get("cmdline_seen") for e in (j.data["created"] if j else [])
               if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())}
    return next(((p, "command_line") for p in in_ns if cmdline(p) in started), (None, None))


def _stop(pid: int | None, what: str, grace: float) -> int | None:
    if pid is not None:
        kill_pids([pid], what, grace=grace)
        if alive(pid):
            raise LabError(f"{what} (pid {pid}) did not stop")
    return pid


# ---- the agent hook -----------------------------------------------------------------------


def agent_argv(template: str, topo: dict, prefix: str, rname: str) -> list[str]:
    """--agent-cmd split like a shell would, each word formatted with the router's fields."""
    r = topo["routers"][rname]
    fields = {"router": rname, "ns": ns_name(prefix, rname), "statedir": router_dir(prefix, rname),
              "labdir": lab_dir(prefix), "prefix": prefix, "router_id": r["router_id"],
              "loopback": r["loopback"]}
    try:
        argv = [tok.format(**fields) for tok in shlex.split(template)]
    except KeyError as e:
        raise LabError(f"--agent-cmd: unknown placeholder {{{e.args[0]}}} (known: "
                       + ", ".join("{" + k + "}" for k in fields) + ")") from None
    except (ValueError, IndexError) as e:
        raise LabError(f"--agent-cmd: bad template {template!r}: {e}") from None
    if not argv:
        raise LabError("--agent-cmd is empty")
    return argv


def agent_pidfile(prefix: str, rname: str) -> str:
    return os.path.join(router_dir(prefix, rname), "agent.pid")


def start_agent(j: Journal, topo: dict, prefix: str, rname: str, template: str) -> int:
    argv = agent_argv(template, topo, prefix, rname)
    pidfile = agent_pidfile(prefix, rname)
    j.record(kind="agent", router=rname, pidfile=pidfile, cmdline_seen=" ".join(argv))
    return _spawn(exec_prelude(prefix, rname) + argv, argv, pidfile,
                  os.path.join(router_dir(prefix, rname), "agent.log"), f"agent on {rname}",
                  exit_ok=True)


def _unix_listeners(pid: int, path: str) -> set[int]:
    """Inodes of the listening unix sockets bound to path, in pid's network namespace (each
    namespace has its own /proc/net/unix)."""
    out = set()
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f, None)
            for line in f:
                # Num RefCount Protocol Flags Type St Inode Path
                parts = line.split()
                if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & SO_ACCEPTCON:
                    out.add(int(parts[6]))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def _holds_socket(pid: int, inodes: set[int]) -> bool:
    want = {f"socket:[{i}]" for i in inodes}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in want:
                    return True
            except OSError:
                pass
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return False


def find_agent(prefix: str, rname: str) -> tuple[int | None, str | None]:
    """(pid, how it was found) of the agent running for router rname, or (None, None)."""
    sock = os.path.join(router_dir(prefix, rname), AGENT_SOCKET)

    def serving(pids: list[int]) -> int | None:
        listeners = _unix_listeners(pids[0], sock) if pids else set()
        return next((p for p in pids if listeners and _holds_socket(p, listeners)), None)

    return _find(prefix, ns_name(prefix, rname), agent_pidfile(prefix, rname), "agent",
                 {"router": rname}, serving)


def stop_agent(prefix: str, rname: str) -> int | None:
    """Stop router rname's agent (SIGTERM, SIGKILL after 10 s); its pid, or None if none ran."""
    return _stop(find_agent(prefix, rname)[0], f"agent of router {rname}", 10.0)


# ---- VNF programs -------------------------------------------------------------------------


def vnf_binary(build: str) -> str:
    path = os.path.join(os.path.abspath(build), VNF_BINARY)
    if not os.access(path, os.X_OK):
        raise LabError(f"{path} not found: build it (cmake --build {build} --target "
                       "anychain-vnf) or give --build DIR")
    return path


def vnf_file(prefix: str, v: dict, ext: str) -> str:
    """S/<router>/vnf-<name>.<ext>: named after the router-side interface, so that no VNF name
    can collide with the router's own files (zebra.pid, agent.log ...)."""
    return os.path.join(router_dir(prefix, v["router"]), f"{v['router_if']}.{ext}")


def vnf_ns(prefix: str, v: dict) -> str:
    return ns_name(prefix, v["router"], v["name"])


def vnf_argv(binary: str, prefix: str, v: dict, stats_json: str | None = None) -> list[str]:
    return [binary, "--iface", v["vnf_if"], "--mode", "nsh" if v["nsh_aware"] else "plain",
            "--instance-id", str(v["instance_id"]), "--slot", str(v["slot"]),
            "--stats-json", stats_json or vnf_file(prefix, v, "json"), *v["run_args"]]


def start_vnf(j: Journal, prefix: str, v: dict, binary: str) -> int:
    argv = vnf_argv(binary, prefix, v)
    pidfile = vnf_file(prefix, v, "pid")
    j.record(kind="vnf", vnf=v["name"], pidfile=pidfile, cmdline_seen=" ".join(argv))
    return _spawn(["ip", "netns", "exec", vnf_ns(prefix, v), *argv], argv, pidfile,
                  vnf_file(prefix, v, "log"), f"vnf {v['name']}", exit_ok=False)


def find_vnf(prefix: str, v: dict) -> tuple[int | None, str | None]:
    """(pid, "pid_file" or "command_line") of the program serving instance v, or (None, None).
    Only the pid file is what anychaind watches: a program found by its command line was
    started by hand, and `vnf restart` puts it back under the pid file."""
    return _find(prefix, vnf_ns(prefix, v), vnf_file(prefix, v, "pid"), "vnf", {"vnf": v["name"]})


def stop_vnf(prefix: str, v: dict) -> int | None:
    return _stop(find_vnf(prefix, v)[0], f"vnf {v['name']}", 5.0)
