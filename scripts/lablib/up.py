"""`up`: build a lab from a resolved topology, start FRR, wait for convergence, start hooks."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import time

from . import frr, netns, plumbing, programs
from .names import FRR_DIR, STATE_ROOT, VTYSH, LabError, lab_dir, log, ns_name, router_dir
from .proc import run
from .backend import NetnsLab, open_lab
from .status import health, wait_converged
from .topology import load_topology


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("must run as root (network namespaces, mounts, FRR)")
    for exe in (f"{FRR_DIR}/zebra", f"{FRR_DIR}/ospfd", VTYSH):
        if not os.access(exe, os.X_OK):
            raise LabError(f"{exe} not found: install FRR (scripts/install-deps.sh)")
    if shutil.which("ip") is None:
        raise LabError("ip (iproute2) not found")


def topo_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def up(topology: str, prefix: str, timeout: float, agent_cmd: str | None, build_dir: str,
       vm: dict | None = None) -> str:
    """Bring lab prefix up from the file topology; returns the line to print. A lab already up
    with the same file and backend and healthy is only waited for. build_dir: the build
    directory whose anychain-vnf runs the instances with `run = true`. vm: None for the netns
    backend, else the VM backend's settings (lablib.vm.build)."""
    from . import vm as vmlab  # the VM backend only when asked for
    topo = load_topology(topology)
    if agent_cmd:
        for rname in topo["routers"]:
            programs.agent_argv(agent_cmd, topo, prefix, rname)  # before anything is created
    vnf_bin = programs.vnf_binary(build_dir) if any(v["run"] for v in topo["vnfs"]) else None
    preflight()
    if vm is not None:
        vmlab.preflight(topo, vm)
    backend = "vm" if vm is not None else "netns"
    digest = topo_digest(topology)
    j = netns.Journal.load(prefix)
    leftovers = netns.lab_namespaces(prefix)
    if j is not None:
        was = j.data.get("backend") or "netns"
        if j.data.get("status") == "up" and j.data.get("topology_sha256") == digest and was == backend:
            lab = open_lab(prefix)
            problems = health(lab)
            if not problems:
                log(f"lab {prefix!r} is already up with this topology; waiting for convergence")
                wait_converged(lab, timeout)
                return f"lab {prefix!r} already up"
            raise LabError(f"lab {prefix!r} is up but unhealthy: {'; '.join(problems)}; "
                           f"run `scripts/lab down --prefix {prefix}` first")
        if j.data.get("status") == "up" and was != backend:
            raise LabError(f"lab {prefix!r} is already up on the {was} backend; run "
                           f"`scripts/lab down --prefix {prefix}` first or use another --prefix")
        if j.data.get("status") == "up":
            raise LabError(f"lab {prefix!r} is already up with a different topology "
                           f"({j.data.get('topology')}); run `scripts/lab down --prefix "
                           f"{prefix}` first or use another --prefix")
        raise LabError(f"lab {prefix!r} was left half-built (state {j.path}, status "
                       f"{j.data.get('status')!r}); run `scripts/lab down --prefix {prefix}`")
    if leftovers or os.path.exists(lab_dir(prefix)):
        raise LabError(f"leftovers of lab {prefix!r} exist without a state file "
                       f"({', '.join(leftovers) or lab_dir(prefix)}); run "
                       f"`scripts/lab down --prefix {prefix}` first")

    os.makedirs(STATE_ROOT, exist_ok=True)
    try:
        os.mkdir(lab_dir(prefix))  # atomic: two `up` of one prefix cannot both get here
    except FileExistsError:
        raise LabError(f"{lab_dir(prefix)} appeared meanwhile: is another `up --prefix "
                       f"{prefix}` running?") from None
    j = netns.Journal(prefix)
    j.data.update(topology=os.path.abspath(topology), topology_sha256=digest,
                  agent_cmd=agent_cmd, build=os.path.abspath(build_dir), backend=backend,
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if vm is not None:
        j.data["vm"] = vm
    j.record(kind="statedir", path=lab_dir(prefix))
    for v in topo["vnfs"]:
        v["pid_file"] = programs.vnf_file(prefix, v, "pid")  # where a running program's pid is
    netns.write_lab(prefix, topo)
    try:
        if vm is not None:
            vmlab.build(j, topo, prefix, timeout, agent_cmd, vnf_bin, vm)
        else:
            build(j, topo, prefix, timeout, agent_cmd, vnf_bin)
    except BaseException:
        log(f"up failed; the partial lab stays for inspection: `scripts/lab status --prefix "
            f"{prefix}`, then `scripts/lab down --prefix {prefix}`")
        raise
    return (f"lab {prefix!r} up{' (VMs)' if vm is not None else ''}: {len(topo['routers'])} "
            f"routers, {len(topo['links'])} links, "
            f"{len(topo['vnfs'])} VNF instances, {len(topo['hosts'])} sources/sinks; "
            f"state in {lab_dir(prefix)}")


def run_steps(j: netns.Journal, steps: list[plumbing.Step]) -> None:
    """Run plumbing steps on this host, each journal entry recorded before its command."""
    for entry, argv in steps:
        if entry is not None:
            j.record(**entry)
        run(argv)


def build(j: netns.Journal, topo: dict, prefix: str, timeout: float,
          agent_cmd: str | None, vnf_bin: str | None) -> None:
    try:
        frr_uid, frr_gid = pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        raise LabError("user/group 'frr' missing: is the frr package installed?") from None

    for rname, r in topo["routers"].items():
        d = router_dir(prefix, rname)
        os.makedirs(d)
        os.chown(d, frr_uid, frr_gid)  # FRR drops to user frr; it writes pid, vty, logs here
        zconf, oconf = frr.frr_configs(topo, prefix, rname)
        for fname, text in (("zebra.conf", zconf), ("ospfd.conf", oconf), ("vtysh.conf", "")):
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)
        ns = ns_name(prefix, rname)
        netns.create_netns(j, ns)
        run_steps(j, plumbing.router_steps(r, ns))
        netns.mount_bpffs(j, f"{d}/bpffs")

    for l in topo["links"]:
        a, b = ns_name(prefix, l["a"]), ns_name(prefix, l["b"])
        netns.veth(j, a, l["a_if"], b, l["b_if"])
        netns.set_mtu(a, l["a_if"], l["mtu"])
        netns.set_mtu(b, l["b_if"], l["mtu"])
        plen = l["subnet"].split("/")[1]
        netns.addr_up(a, l["a_if"], f"{l['a_addr']}/{plen}")
        netns.addr_up(b, l["b_if"], f"{l['b_addr']}/{plen}")

    for v in topo["vnfs"]:
        run_steps(j, plumbing.vnf_steps(prefix, v, ns_name(prefix, v["router"])))

    for h in topo["hosts"]:
        run_steps(j, plumbing.host_steps(prefix, h, ns_name(prefix, h["router"])))

    for rname in topo["routers"]:
        for daemon in frr.DAEMONS:
            frr.start_daemon(j, prefix, rname, daemon)

    j.set(status="converging")
    lab = NetnsLab(prefix, topo)
    wait_converged(lab, timeout)
    lab.start_programs(j, vnf_bin, agent_cmd)
    j.set(status="up")
