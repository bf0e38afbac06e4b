"""What the lab runs besides FRR: the agent hook, one per router."""

from __future__ import annotations

import shlex
import subprocess
import time

from .names import LabError, lab_dir, log, ns_name, router_dir
from .netns import exec_prelude
from .proc import tail

AGENT_FIELDS = ("router", "ns", "statedir", "labdir", "prefix", "router_id", "loopback")


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


def start_agent(j, topo: dict, prefix: str, rname: str, template: str) -> None:
    d = router_dir(prefix, rname)
    argv = agent_argv(template, topo, prefix, rname)
    pidfile = f"{d}/agent.pid"
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
