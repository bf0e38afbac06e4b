"""How a lab's nodes are reached: one interface, two implementations.

A lab runs on one of two backends, recorded in its journal (`backend`):
  netns  every router is a network namespace of this host (lablib.netns, lablib.up)
  vm     every router is a VM with its own kernel (lablib.vm): `scripts/lab up --vm`
Everything that runs a command on a node, asks its FRR, starts or finds a program there or
reads what it wrote goes through Lab, so scripts/lab's commands, scripts/experiment and the
tests work unchanged on both. A target is a router, a VNF instance or a source/sink name.

  exec(target, argv)        run argv there, wait: CompletedProcess (text)
  exec_argv(target, argv)   the host argv that runs argv there (for os.execvp, Popen)
  spawn(target, argv, log)  start argv there, output to the host file log: a Proc
  vtysh(router, command)    vtysh -c command on the router's FRR: its output
  set_link(router, ifname, up)
  shared_dir(router)        a directory the router's programs write and the host reads, at
                            the same path on both sides
  kill_node(router)         a whole node failing at once
  revive_node(router, j, vnf_bin, agent_cmd, timeout)
                            a killed node booting again: empty RAM, FRR, the lab's programs
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

from . import frr, programs
from .names import LabError, log, ns_name, router_dir
from .proc import alive, pids_in_netns, run


class Proc:
    """A program started on a node: the subset of subprocess.Popen the callers use."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout=None):
        return self.popen.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.popen.kill()


class Lab:
    """Base: what both backends share (the resolved topology, target names)."""

    kind = "?"

    def __init__(self, prefix: str, topo: dict):
        self.prefix = prefix
        self.topo = topo

    # ---- targets ---------------------------------------------------------------------------
    def router_of(self, target: str) -> str:
        """The router a target runs on."""
        if target in self.topo["routers"]:
            return target
        for v in self.topo["vnfs"]:
            if v["name"] == target:
                return v["router"]
        for h in self.topo["hosts"]:
            if h["name"] == target:
                return h["router"]
        raise LabError(f"unknown router, vnf, source or sink {target!r} in lab {self.prefix!r}")

    def target_ns(self, target: str) -> str | None:
        """The network namespace of a VNF instance or source/sink (on its router's node); None
        for a router itself."""
        if target in self.topo["routers"]:
            return None
        for v in self.topo["vnfs"]:
            if v["name"] == target:
                return ns_name(self.prefix, v["router"], v["name"])
        for h in self.topo["hosts"]:
            if h["name"] == target:
                return ns_name(self.prefix, h["name"])
        raise LabError(f"unknown router, vnf, source or sink {target!r} in lab {self.prefix!r}")

    def check_router(self, router: str) -> None:
        if router not in self.topo["routers"]:
            raise LabError(f"unknown router {router!r} (routers: {', '.join(self.topo['routers'])})")

    # ---- the interface ---------------------------------------------------------------------
    def exec_argv(self, target: str, argv: list[str], interactive: bool = False) -> list[str]:
        raise NotImplementedError

    def exec(self, target: str, argv: list[str], check: bool = True,
             timeout: float = 30) -> subprocess.CompletedProcess:
        return run(self.exec_argv(target, argv), check=check, timeout=timeout)

    def spawn(self, target: str, argv: list[str], log: str) -> Proc:
        raise NotImplementedError

    def vtysh(self, router: str, command: str, timeout: float = 10) -> str:
        raise NotImplementedError

    def vtysh_argv(self, router: str) -> list[str]:
        raise NotImplementedError

    def set_link(self, router: str, ifname: str, up: bool) -> None:
        self.exec(router, ["ip", "link", "set", ifname, "up" if up else "down"])

    def shared_dir(self, router: str) -> str:
        raise NotImplementedError

    def kill_node(self, router: str) -> str:
        raise NotImplementedError

    def revive_node(self, router: str, j, vnf_bin: str | None, agent_cmd: str | None,
                    timeout: float) -> str:
        raise NotImplementedError

    # programs the lab runs on a node (scripts/lab agent|vnf): start (journalled in j), find
    # (pid, how it was found), stop (the pid stopped, or None)
    def start_agent(self, j, router: str, template: str) -> int:
        raise NotImplementedError

    def find_agent(self, router: str) -> tuple[int | None, str | None]:
        raise NotImplementedError

    def stop_agent(self, router: str) -> int | None:
        raise NotImplementedError

    def start_vnf(self, j, v: dict, binary: str) -> int:
        raise NotImplementedError

    def find_vnf(self, v: dict) -> tuple[int | None, str | None]:
        raise NotImplementedError

    def stop_vnf(self, v: dict) -> int | None:
        raise NotImplementedError

    def start_programs(self, j, vnf_bin: str, agent_cmd: str | None) -> None:
        """What `up` starts once OSPF converged: the VNF programs of instances with `run = true`,
        then the agent on every router (an agent watching a pid file that does not exist yet
        would withdraw the instance at once)."""
        for v in self.topo["vnfs"]:
            if v["run"]:
                self.start_vnf(j, v, vnf_bin)
        idle = [v["name"] for v in self.topo["vnfs"] if not v["run"]]
        if idle:
            log(f"note: no program runs for vnf {', '.join(idle)} (no `run = true`): packets "
                "steered to them are lost until one does (`scripts/lab vnf start --prefix "
                f"{self.prefix} NAME`, or your own; docs/lab.md)")
        if agent_cmd:
            for rname in self.topo["routers"]:
                self.start_agent(j, rname, agent_cmd)

    # pacing of polls that ask every router (convergence): a VM answers slower
    poll_interval = 0.3


class NetnsLab(Lab):
    """Routers are network namespaces of this host (scripts/lab up)."""

    kind = "netns"

    def exec_argv(self, target, argv, interactive=False):
        from .netns import exec_prelude
        ns = self.target_ns(target)
        if ns is None:
            return exec_prelude(self.prefix, target) + list(argv)
        return ["ip", "netns", "exec", ns, *argv]

    def spawn(self, target, argv, log):
        with open(log, "ab") as out:
            return Proc(subprocess.Popen(self.exec_argv(target, argv), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True))

    def vtysh(self, router, command, timeout=10):
        return frr.vtysh(self.prefix, router, command, timeout=timeout)

    def vtysh_argv(self, router):
        return frr.vtysh_argv(self.prefix, router)

    def set_link(self, router, ifname, up):
        run(["ip", "-n", ns_name(self.prefix, router), "link", "set", ifname,
             "up" if up else "down"])

    def shared_dir(self, router):
        return router_dir(self.prefix, router)

    def start_agent(self, j, router, template):
        return programs.start_agent(j, self.topo, self.prefix, router, template)

    def find_agent(self, router):
        return programs.find_agent(self.prefix, router)

    def stop_agent(self, router):
        return programs.stop_agent(self.prefix, router)

    def start_vnf(self, j, v, binary):
        return programs.start_vnf(j, self.prefix, v, binary)

    def find_vnf(self, v):
        return programs.find_vnf(self.prefix, v)

    def stop_vnf(self, v):
        return programs.stop_vnf(self.prefix, v)

    def node_namespaces(self, router: str) -> list[str]:
        """Every namespace of the node: the router's, its VNF instances' (the lab's, and those
        its agent made for built-in NFs: acl-<prefix>-<router>-*), its sources'/sinks'."""
        from .netns import lab_namespaces
        own = ns_name(self.prefix, router)
        spaces = [own] + [n for n in lab_namespaces(self.prefix) if n.startswith(own + "-")]
        spaces += [ns_name(self.prefix, h["name"]) for h in self.topo["hosts"]
                   if h["router"] == router]
        return spaces

    def node_pids(self, router: str) -> list[int]:
        from .netns import netns_inode
        inodes = {i for i in (netns_inode(n) for n in self.node_namespaces(router)) if i is not None}
        return [p for p in pids_in_netns(inodes) if alive(p)]

    def kill_node(self, router):
        """SIGKILL every process of the node's namespaces (FRR, agent, the lab's VNF programs
        and the NF processes its agent runs), and take its links down, as a box that loses
        power: its neighbours see the carrier go."""
        self.check_router(router)
        pids = self.node_pids(router)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        for itf in self.topo["routers"][router]["interfaces"]:
            if itf["kind"] == "link":
                run(["ip", "-n", ns_name(self.prefix, router), "link", "set", itf["name"], "down"],
                    check=False)
        return f"router {router}: SIGKILLed {len(pids)} processes, links down"

    def revive_node(self, router, j, vnf_bin, agent_cmd, timeout):
        """A killed node boots again. What lived in its memory is gone: the namespaces its agent
        made for built-in NFs, the XDP programs on its interfaces, its bpffs pins, the run files
        of its daemons (pid files, sockets, the NFs' published files). What is on its disk
        stays: the router's FRR configs. Then, as `up` made it: links up, zebra and ospfd (same
        router id), the lab converges, the VNF programs with `run = true`, the agent hook (which
        writes the agent's config afresh: what was added with the CLI must be added again)."""
        from .netns import lab_namespaces
        self.check_router(router)
        if (left := self.node_pids(router)):
            raise LabError(f"router {router}: {len(left)} processes still run in its namespaces "
                           f"(pids {', '.join(map(str, left[:8]))}): kill it first")
        own = ns_name(self.prefix, router)
        lab_vnfs = {ns_name(self.prefix, router, v["name"]) for v in self.topo["vnfs"]
                    if v["router"] == router}
        made = [n for n in lab_namespaces(self.prefix) if n.startswith(own + "-") and n not in lab_vnfs]
        for n in made:
            run(["ip", "netns", "del", n])
        for n in self.node_namespaces(router):
            links = json.loads(run(["ip", "-j", "-n", n, "link", "show"]).stdout or "[]")
            for itf in links:
                if "xdp" in itf:
                    for mode in ("xdpgeneric", "xdpdrv"):
                        run(["ip", "-n", n, "link", "set", "dev", itf["ifname"], mode, "off"],
                            check=False)
        d = router_dir(self.prefix, router)
        bpffs = os.path.join(d, "bpffs")
        for top in os.listdir(bpffs):
            if top in ("maps.debug", "progs.debug"):  # the kernel's own (bpf_preload), not pins
                continue
            path = os.path.join(bpffs, top)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if name.endswith((".pid", ".vty")) or name in ("zserv.api", programs.AGENT_SOCKET):
                os.unlink(path)
            elif name == "nf" and os.path.isdir(path):
                shutil.rmtree(path)
        for itf in self.topo["routers"][router]["interfaces"]:
            if itf["kind"] == "link":
                run(["ip", "-n", own, "link", "set", itf["name"], "up"])
        for daemon in frr.DAEMONS:
            frr.start_daemon(j, self.prefix, router, daemon)
        from .status import wait_converged
        wait_converged(self, timeout)
        started = []
        for v in self.topo["vnfs"]:
            if v["router"] == router and v["run"]:
                started.append(f"vnf {v['name']} pid {self.start_vnf(j, v, vnf_bin)}")
        if agent_cmd:
            started.append(f"agent pid {self.start_agent(j, router, agent_cmd)}")
        return (f"router {router}: booted again ({len(made)} NF namespaces of its agent, XDP "
                f"programs and bpffs pins cleared), FRR up, lab converged"
                + (f"; {', '.join(started)}" if started else ""))


def backend_of(prefix: str) -> str:
    """The backend a lab was brought up with (its journal), netns if it has none."""
    from .netns import Journal
    j = Journal.load(prefix)
    return (j.data.get("backend") if j else None) or "netns"


def open_lab(prefix: str) -> Lab:
    """The running lab prefix, on its backend."""
    from .netns import load_lab
    topo = load_lab(prefix)
    if backend_of(prefix) == "vm":
        from .vm import VmLab
        return VmLab(prefix, topo)
    return NetnsLab(prefix, topo)


