"""What the lab runs besides FRR: the agent hook, one per router, and VNF programs.

A running agent is found by what runs, not only by its pid file, so an agent restarted by hand
(`scripts/lab exec P A -- scripts/lab-agent run ...`) is not reported dead: the pid in
agent.pid if that process still runs in the router's namespace, else the process in that
namespace serving the router's control socket (scripts/lab-agent's STATEDIR/anychaind.sock),
else one whose command line is a hook command the lab started there.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time

from .names import LabError, lab_dir, log, ns_name, router_dir
from .netns import Journal, exec_prelude, netns_inode
from .proc import alive, cmdline, kill_pids, pids_in_netns, read_pid, tail

AGENT_FIELDS = ("router", "ns", "statedir", "labdir", "prefix", "router_id", "loopback")
AGENT_SOCKET = "anychaind.sock"  # scripts/lab-agent's control socket in the router's state dir
SO_ACCEPTCON = 0x10000           # "listening" in /proc/net/unix's Flags column


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
    d = router_dir(prefix, rname)
    argv = agent_argv(template, topo, prefix, rname)
    pidfile = agent_pidfile(prefix, rname)
    j.record(kind="agent", router=rname, pidfile=pidfile, cmdline_seen=" ".join(argv))
    logf = open(f"{d}/agent.log", "ab")
    p = subprocess.Popen(exec_prelude(prefix, rname) + argv, stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    logf.close()
    with open(pidfile, "w") as f:
        f.write(f"{p.pid}\n")
    time.sleep(0.2)
    if p.poll() is not None and p.returncode != 0:
        raise LabError(f"agent on router {rname} exited at once with {p.returncode}: "
                       f"{shlex.join(argv)}\n  log tail:\n{tail(f'{d}/agent.log')}")
    log(f"agent on {rname}: pid {p.pid}: {shlex.join(argv)} (log {d}/agent.log)")
    return p.pid


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
    """(pid, how it was found: "pid_file", "control_socket" or "command_line") of the agent
    running for router rname, or (None, None)."""
    inode = netns_inode(ns_name(prefix, rname))
    if inode is None:
        return None, None
    in_ns = sorted(pids_in_netns({inode}))
    pid = read_pid(agent_pidfile(prefix, rname))
    if pid in in_ns and alive(pid):
        return pid, "pid_file"
    sock = os.path.join(router_dir(prefix, rname), AGENT_SOCKET)
    listeners = _unix_listeners(in_ns[0], sock) if in_ns else set()
    if listeners:
        for p in in_ns:
            if alive(p) and _holds_socket(p, listeners):
                return p, "control_socket"
    j = Journal.load(prefix)
    started = {e.get("cmdline_seen") for e in (j.data["created"] if j else [])
               if e["kind"] == "agent" and e.get("router") == rname}
    for p in in_ns:
        if alive(p) and cmdline(p) in started:
            return p, "command_line"
    return None, None


def stop_agent(prefix: str, rname: str) -> int | None:
    """Stop router rname's agent (SIGTERM, SIGKILL after 10 s); its pid, or None if none ran."""
    pid, _ = find_agent(prefix, rname)
    if pid is not None:
        kill_pids([pid], f"agent of router {rname}", grace=10.0)
        if alive(pid):
            raise LabError(f"agent of router {rname} (pid {pid}) did not stop")
    return pid


# ---- VNF programs -------------------------------------------------------------------------
# The lab runs anychain-vnf for an instance with `run = true` (and for any instance on
# `scripts/lab vnf start`), in the instance's namespace on its eth0, in the mode its NSH
# awareness needs (NSH frames or the SFC proxy's bare IP), stamping its chain slot. Its pid goes
# to a pid file that scripts/lab-agent gives anychaind as the instance's `pid_file`, so the
# instance is withdrawn when the program dies.

VNF_BINARY = os.path.join("agent", "tools", "anychain-vnf")  # in a build directory


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


def vnf_argv(binary: str, prefix: str, v: dict) -> list[str]:
    return [binary, "--iface", v["vnf_if"], "--mode", "nsh" if v["nsh_aware"] else "plain",
            "--instance-id", str(v["instance_id"]), "--slot", str(v["slot"]),
            "--stats-json", vnf_file(prefix, v, "json"), *v["run_args"]]


def start_vnf(j: Journal, prefix: str, v: dict, binary: str) -> int:
    argv = vnf_argv(binary, prefix, v)
    pidfile, logpath = vnf_file(prefix, v, "pid"), vnf_file(prefix, v, "log")
    j.record(kind="vnf", vnf=v["name"], pidfile=pidfile, cmdline_seen=" ".join(argv))
    logf = open(logpath, "ab")
    p = subprocess.Popen(["ip", "netns", "exec", vnf_ns(prefix, v), *argv],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True)
    logf.close()
    with open(pidfile, "w") as f:  # ip netns exec execs the program: the same pid
        f.write(f"{p.pid}\n")
    time.sleep(0.2)
    if p.poll() is not None:
        raise LabError(f"vnf {v['name']}: {shlex.join(argv)} exited at once with "
                       f"{p.returncode}\n  log tail:\n{tail(logpath)}")
    log(f"vnf {v['name']}: pid {p.pid}: {shlex.join(argv)} (log {logpath})")
    return p.pid


def find_vnf(prefix: str, v: dict) -> tuple[int | None, str | None]:
    """(pid, "pid_file" or "command_line") of the program serving instance v, or (None, None).
    Only the pid file is what anychaind watches: a program found by its command line was
    started by hand, and `vnf restart` puts it back under the pid file."""
    inode = netns_inode(vnf_ns(prefix, v))
    if inode is None:
        return None, None
    in_ns = sorted(pids_in_netns({inode}))
    pid = read_pid(vnf_file(prefix, v, "pid"))
    if pid in in_ns and alive(pid):
        return pid, "pid_file"
    j = Journal.load(prefix)
    started = {e.get("cmdline_seen") for e in (j.data["created"] if j else [])
               if e["kind"] == "vnf" and e.get("vnf") == v["name"]}
    for p in in_ns:
        if alive(p) and cmdline(p) in started:
            return p, "command_line"
    return None, None


def stop_vnf(prefix: str, v: dict) -> int | None:
    pid, _ = find_vnf(prefix, v)
    if pid is not None:
        kill_pids([pid], f"vnf {v['name']}")
        if alive(pid):
            raise LabError(f"vnf {v['name']} (pid {pid}) did not stop")
    return pid
