"""The command line of scripts/lab: one function per command, the parser, main()."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import frr, netns, programs, status
from .backend import open_lab
from .names import STATE_ROOT, LabError, check_prefix, log
from .topology import load_topology
from .up import up

# scripts/lab sits in <repo>/scripts; anychain-vnf is looked for in <repo>/build by default
DEFAULT_BUILD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build")


def cmd_up(args) -> int:
    vm = None
    if args.vm:
        from .vm import DEFAULTS
        vm = {**DEFAULTS, "cpus": args.vm_cpus or DEFAULTS["cpus"],
              "memory": args.vm_memory or DEFAULTS["memory"],
              "boot_timeout": args.vm_boot_timeout or DEFAULTS["boot_timeout"]}
    elif args.vm_cpus or args.vm_memory or args.vm_boot_timeout:
        raise LabError("--vm-cpus, --vm-memory and --vm-boot-timeout need --vm")
    print(up(args.topology, check_prefix(args.prefix), args.timeout, args.agent_cmd, args.build,
             vm))
    return 0


def cmd_down(args) -> int:
    prefix = check_prefix(args.prefix)
    if os.geteuid() != 0:
        raise LabError("must run as root")
    found = netns.teardown(prefix)
    print(f"lab {prefix!r} down" if found else f"lab {prefix!r} was not up")
    return 0


def cmd_status(args) -> int:
    prefix = check_prefix(args.prefix)
    st = status.gather_status(prefix)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0 if st["status"] != "absent" or st["namespaces"] else 3
    if st["status"] == "absent" and not st["namespaces"]:
        print(f"lab {prefix!r}: not up (no state in {st['statedir']}, no namespaces)")
        return 3
    print(status.format_status(st))
    return 0


def cmd_wait(args) -> int:
    prefix = check_prefix(args.prefix)
    status.wait_converged(open_lab(prefix), args.timeout)
    print(f"lab {prefix!r} converged")
    return 0


def _start_stop(action: str, names: list[str], what: str, find, stop, start) -> None:
    """stop, start or restart each program; start leaves a running one alone."""
    for n in names:
        if action in ("stop", "restart"):
            pid = stop(n)
            print(f"{what} {n}: stopped (pid {pid})" if pid else f"{what} {n}: not running")
        if action in ("start", "restart"):
            pid, _ = find(n)
            if pid is not None:
                print(f"{what} {n}: already running (pid {pid})")
            else:
                print(f"{what} {n}: started ({start(n)})")


def _running_lab(args, kind: str, known: list[str]):
    prefix = check_prefix(args.prefix)
    if os.geteuid() != 0:
        raise LabError("must run as root")
    lab = open_lab(prefix)
    for n in args.names:
        if n not in known(lab.topo):
            raise LabError(f"unknown {kind} {n!r} ({kind}s: {', '.join(known(lab.topo)) or 'none'})")
    return prefix, lab, netns.Journal.load(prefix)


def cmd_agent(args) -> int:
    prefix, lab, j = _running_lab(args, "router", lambda t: list(t["routers"]))
    topo = lab.topo
    template = args.agent_cmd or (j.data.get("agent_cmd") if j else None)
    if args.action != "stop":
        if not template:
            raise LabError(f"lab {prefix!r} was brought up without --agent-cmd: give "
                           f"`agent {args.action} --agent-cmd CMD`")
        for r in args.names:
            programs.agent_argv(template, topo, prefix, r)  # check before stopping anything
    _start_stop(args.action, args.names, "agent of", lab.find_agent, lab.stop_agent,
                lambda r: f"pid {lab.start_agent(j, r, template)}")
    return 0


def cmd_vnf(args) -> int:
    prefix, lab, j = _running_lab(args, "vnf", lambda t: [v["name"] for v in t["vnfs"]])
    vnfs = {v["name"]: v for v in lab.topo["vnfs"]}
    binary = None
    if args.action != "stop":
        binary = programs.vnf_binary(args.build or (j.data.get("build") if j else None)
                                     or DEFAULT_BUILD)
    _start_stop(args.action, args.names, "vnf",
                lambda n: lab.find_vnf(vnfs[n]),
                lambda n: lab.stop_vnf(vnfs[n]),
                lambda n: f"pid {lab.start_vnf(j, vnfs[n], binary)}, slot {vnfs[n]['slot']}")
    return 0


def _node_command(args):
    """(prefix, lab, journal or None) of kill-node and revive-node, the router checked."""
    prefix = check_prefix(args.prefix)
    if os.geteuid() != 0:
        raise LabError("must run as root")
    lab = open_lab(prefix)
    lab.check_router(args.router)
    return prefix, lab, netns.Journal.load(prefix)


def cmd_kill_node(args) -> int:
    prefix, lab, j = _node_command(args)
    if j is not None:  # before the kill: revive-node knows a node killed by an interrupted one
        j.set(killed=sorted(set(j.data.get("killed", [])) | {args.router}))
    print(lab.kill_node(args.router))
    return 0


def cmd_revive_node(args) -> int:
    prefix, lab, j = _node_command(args)
    if j is None:
        raise LabError(f"lab {prefix!r} has no state file: cannot tell how `up` made its nodes")
    killed = j.data.get("killed", [])
    if args.router not in killed:
        raise LabError(f"router {args.router} is not killed (killed: {', '.join(killed) or 'none'}): "
                       f"revive-node brings back a node `scripts/lab kill-node --prefix {prefix} "
                       f"{args.router}` killed; for one program use `agent` or `vnf` restart")
    vnf_bin = None
    if any(v["run"] and v["router"] == args.router for v in lab.topo["vnfs"]):
        vnf_bin = programs.vnf_binary(args.build or j.data.get("build") or DEFAULT_BUILD)
    print(lab.revive_node(args.router, j, vnf_bin, j.data.get("agent_cmd"), args.timeout))
    j.set(killed=[r for r in killed if r != args.router])
    return 0


def cmd_check(args) -> int:
    topo = load_topology(args.topology)
    if args.json:
        print(json.dumps(topo, indent=1))
    else:
        print(f"{args.topology}: ok: {len(topo['routers'])} routers, {len(topo['links'])} "
              f"links, {len(topo['vnfs'])} VNF instances, {len(topo['hosts'])} sources/sinks")
    return 0


def cmd_exec(args) -> int:
    prefix = check_prefix(args.prefix)
    lab = open_lab(prefix)
    lab.target_ns(args.target)  # an unknown target is an error
    argv = args.command
    if argv and argv[0] == "--":
        argv = argv[1:]
    interactive = not argv or sys.stdin.isatty()
    if not argv:
        argv = [os.environ.get("SHELL", "/bin/sh")] if lab.kind == "netns" else ["/bin/bash"]
    full = lab.exec_argv(args.target, argv, interactive=interactive)
    os.execvp(full[0], full)


def cmd_vtysh(args) -> int:
    prefix = check_prefix(args.prefix)
    lab = open_lab(prefix)
    lab.check_router(args.router)
    argv = frr.vtysh_argv(prefix, args.router)
    for c in args.c or []:
        argv += ["-c", c]
    if lab.kind != "netns":
        argv = lab.exec_argv(args.router, argv, interactive=not args.c and sys.stdin.isatty())
    os.execvp(argv[0], argv)


REVIVE_HELP = """\
Boot a node again after `scripts/lab kill-node` (a box that lost power comes back).

What lived in the node's memory is gone, as after a reboot: the namespaces its agent made for
built-in NFs (acl-<prefix>-<router>-*, except the lab's own VNF namespaces), the XDP programs on
the interfaces of its namespaces, every pin in its bpffs, the run files in its state dir (pid
files, vty and zserv sockets, the agent's control socket, the NFs' published files in nf/).
What is on its disk stays: zebra.conf and ospfd.conf, so it has the same router id, and its logs.
Then, as `up` made it: its links up, zebra and ospfd started, the lab waits until it converged
(every router: its neighbours Full, routes to every loopback), the VNF programs of its instances
with `run = true`, and the agent hook `up` was given (--agent-cmd): scripts/lab-agent writes
the agent's config afresh, so services, instances and settings added with the anychain CLI
after `up` must be added again, as on a node whose provisioning runs at boot.

Its programs are new processes: a built-in NF comes back as a new incarnation with empty maps
(shared state: it joins from a snapshot of a live instance, docs/state.md 3.13).

Errors: an unknown router; a router that is not killed (only a node `kill-node` killed can be
revived; a program is restarted with `agent restart` or `vnf restart`); a killed node with a
process still running in its namespaces; the VM lab (not supported: its VM is not booted again).

example:
  scripts/lab kill-node --prefix fig3 C
  scripts/lab revive-node --prefix fig3 C
"""

EPILOG = """\
examples:
  scripts/lab check scripts/topologies/paper-fig3.toml      validate, print the summary
  scripts/lab up scripts/topologies/paper-fig3.toml --prefix fig3
  scripts/lab status --prefix fig3                          namespaces, FRR, neighbours, routes
  scripts/lab vtysh --prefix fig3 A -c 'show ip ospf database'
  scripts/lab exec --prefix fig3 src -- ping -c1 10.255.0.2  run in a namespace
  scripts/lab agent restart --prefix fig3 A                 stop and start A's agent hook
  scripts/lab vnf start --prefix fig3 vnfD                  run anychain-vnf for an instance
  scripts/lab kill-node --prefix fig3 C                     a whole router fails at once
  scripts/lab revive-node --prefix fig3 C                   ... and boots again
  scripts/lab down --prefix fig3                            remove everything the lab created
  scripts/lab up scripts/topologies/paper-fig3.toml --prefix fig3vm --vm   the same as VMs

namespaces: acl-<prefix>-<router>, acl-<prefix>-<router>-<vnf>, acl-<prefix>-<source|sink>
state:      /run/anychain-lab/<prefix>/ (state.json journal, lab.json resolved topology,
            <router>/ with FRR configs, pid files, vty sockets, logs, bpffs)
agent hook: up --agent-cmd 'CMD {router} {ns} {statedir}' runs CMD once per router, inside
            its namespace (with its bpffs on /sys/fs/bpf) after convergence;
            placeholders {router} {ns} {statedir} {labdir} {prefix} {router_id} {loopback}.
VNF programs: the lab runs no VNF unless the topology says `run = true` for the instance:
            then anychain-vnf (from --build) runs in the instance's namespace, --mode nsh or
            plain after its nsh_aware, --slot = its service's position in the chain, its pid
            in <router>/vnf-<name>.pid (the agent's pid_file for liveness). An instance
            without a program is still announced, and what is steered to it is lost:
            `scripts/lab vnf start --prefix P NAME` runs one later.
VM lab:     up --vm boots one VM per router (vm-tests/run; 1 vCPU, 256 MiB, its own kernel,
            FRR, agent, bpffs and clock; XDP native on virtio-net), links are host
            bridges in netns acl-<prefix>-wire; exec, vtysh, agent, vnf, status reach a
            node over SSH. `kill-node` SIGKILLs a node's qemu.
Topology format and guarantees: docs/lab.md.
"""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="scripts/lab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build an anychain lab: routers as network namespaces running FRR zebra "
                    "and ospfd (with the opaque-LSA API), veth links with OSPF costs, VNF "
                    "instance and source/sink namespaces.", epilog=EPILOG)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add_prefix(p):
        p.add_argument("--prefix", default="lab",
                       help="lab name: namespaces are acl-PREFIX-*, state in "
                            f"{STATE_ROOT}/PREFIX (default: lab)")

    p = sub.add_parser("up", help="build the topology, start FRR, wait for convergence",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("topology", help="topology file (TOML, see docs/lab.md)")
    add_prefix(p)
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds to wait for OSPF convergence (default 60)")
    p.add_argument("--agent-cmd", metavar="CMD",
                   help="command started in every router namespace after convergence; "
                        "placeholders {router} {ns} {statedir} {labdir} {prefix} "
                        "{router_id} {loopback}")
    p.add_argument("--build", metavar="DIR", default=DEFAULT_BUILD,
                   help="build directory whose agent/tools/anychain-vnf runs the VNF "
                        "instances with `run = true` (default: %(default)s)")
    p.add_argument("--vm", action="store_true",
                   help="every router a VM (vm-tests/run: virtme-ng or qemu, its own kernel, "
                        "FRR, agent and XDP on virtio-net), linked by taps and bridges; see "
                        "docs/lab.md, 'VM lab'")
    p.add_argument("--vm-cpus", type=int, metavar="N", help="vCPUs per VM (default 1)")
    p.add_argument("--vm-memory", metavar="SIZE", help="memory per VM (default 256M)")
    p.add_argument("--vm-boot-timeout", type=float, metavar="SEC",
                   help="seconds for every VM to boot and set its node up (default 900)")
    p.set_defaults(fn=cmd_up)

    p = sub.add_parser("down", help="stop and remove everything the lab created")
    add_prefix(p)
    p.set_defaults(fn=cmd_down)

    p = sub.add_parser("status", help="namespaces, FRR processes, OSPF neighbours and routes")
    add_prefix(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("wait-converged",
                       help="wait until all expected OSPF neighbours are Full and every "
                            "router has a route to every loopback")
    add_prefix(p)
    p.add_argument("--timeout", type=float, default=60, help="seconds (default 60)")
    p.set_defaults(fn=cmd_wait)

    p = sub.add_parser("agent", help="start, stop or restart the agent hook of routers")
    p.add_argument("action", choices=("start", "stop", "restart"))
    add_prefix(p)
    p.add_argument("names", nargs="+", metavar="ROUTER")
    p.add_argument("--agent-cmd", metavar="CMD",
                   help="hook template for start/restart (default: the one `up` was given)")
    p.set_defaults(fn=cmd_agent)

    p = sub.add_parser("vnf", help="start, stop or restart the anychain-vnf program of VNF "
                                   "instances")
    p.add_argument("action", choices=("start", "stop", "restart"))
    add_prefix(p)
    p.add_argument("names", nargs="+", metavar="VNF")
    p.add_argument("--build", metavar="DIR",
                   help="build directory with agent/tools/anychain-vnf (default: the one `up` "
                        "was given)")
    p.set_defaults(fn=cmd_vnf)

    p = sub.add_parser("kill-node", help="make a router fail as a whole: VM lab: SIGKILL its "
                                         "qemu; netns lab: SIGKILL every process of its "
                                         "namespaces and take its links down")
    add_prefix(p)
    p.add_argument("router")
    p.set_defaults(fn=cmd_kill_node)

    p = sub.add_parser("revive-node", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="boot a node `kill-node` killed again (netns lab): same router id, "
                            "FRR, its VNF programs and agent hook as `up` started them",
                       description=REVIVE_HELP)
    add_prefix(p)
    p.add_argument("router", help="a router `kill-node` killed")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds to wait for OSPF to converge again (default 60)")
    p.add_argument("--build", metavar="DIR",
                   help="build directory with agent/tools/anychain-vnf for instances with "
                        "`run = true` (default: the one `up` was given)")
    p.set_defaults(fn=cmd_revive_node)

    p = sub.add_parser("check", help="validate a topology file without building anything")
    p.add_argument("topology")
    p.add_argument("--json", action="store_true", help="print the resolved topology")
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser("exec", help="run a command in a router, vnf, source or sink namespace "
                                    "(routers: with their bpffs on /sys/fs/bpf)")
    add_prefix(p)
    p.add_argument("target", help="router, vnf, source or sink name")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command (default: a shell)")
    p.set_defaults(fn=cmd_exec)

    p = sub.add_parser("vtysh", help="vtysh connected to a router's FRR")
    add_prefix(p)
    p.add_argument("router")
    p.add_argument("-c", action="append", metavar="CMD", help="vtysh command (repeatable)")
    p.set_defaults(fn=cmd_vtysh)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except LabError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except BrokenPipeError:  # `scripts/lab status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
