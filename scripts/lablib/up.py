"""`up`: build a lab from a resolved topology, start FRR, wait for convergence, start hooks."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import time

from . import frr, netns, programs
from .names import FRR_DIR, STATE_ROOT, VTYSH, LabError, lab_dir, log, ns_name, router_dir
from .proc import nsexec, run
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


def up(topology: str, prefix: str, timeout: float, agent_cmd: str | None, build_dir: str) -> str:
    """Bring lab prefix up from the file topology; returns the line to print. A lab already up
    with the same file and healthy is only waited for. build_dir: the build directory whose
    anychain-vnf runs the instances with `run = true`."""
    topo = load_topology(topology)
    if agent_cmd:
        for rname in topo["routers"]:
            programs.agent_argv(agent_cmd, topo, prefix, rname)  # before anything is created
    vnf_bin = programs.vnf_binary(build_dir) if any(v["run"] for v in topo["vnfs"]) else None
    preflight()
    digest = topo_digest(topology)
    j = netns.Journal.load(prefix)
    leftovers = netns.lab_namespaces(prefix)
    if j is not None:
        if j.data.get("status") == "up" and j.data.get("topology_sha256") == digest:
            problems = health(prefix, netns.load_lab(prefix))
            if not problems:
                log(f"lab {prefix!r} is already up with this topology; waiting for convergence")
                wait_converged(prefix, netns.load_lab(prefix), timeout)
                return f"lab {prefix!r} already up"
            raise LabError(f"lab {prefix!r} is up but unhealthy: {'; '.join(problems)}; "
                           f"run `scripts/lab down --prefix {prefix}` first")
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
                  agent_cmd=agent_cmd, build=os.path.abspath(build_dir),
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    j.record(kind="statedir", path=lab_dir(prefix))
    for v in topo["vnfs"]:
        v["pid_file"] = programs.vnf_file(prefix, v, "pid")  # where a running program's pid is
    netns.write_lab(prefix, topo)
    try:
        build(j, topo, prefix, timeout, agent_cmd, vnf_bin)
    except BaseException:
        log(f"up failed; the partial lab stays for inspection: `scripts/lab status --prefix "
            f"{prefix}`, then `scripts/lab down --prefix {prefix}`")
        raise
    return (f"lab {prefix!r} up: {len(topo['routers'])} routers, {len(topo['links'])} links, "
            f"{len(topo['vnfs'])} VNF instances, {len(topo['hosts'])} sources/sinks; "
            f"state in {lab_dir(prefix)}")


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
        # accept_local: a VXLAN-GPE packet the fast path hands to the stack while a neighbour
        # is unresolved carries this router's own endpoint as source (docs/fastpath.md)
        netns.sysctls(ns, {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1,
                           "net.ipv4.conf.all.rp_filter": 0,
                           "net.ipv4.conf.default.rp_filter": 0,
                           "net.ipv4.conf.all.accept_local": 1})
        run(["ip", "-n", ns, "addr", "add", f"{r['loopback']}/32", "dev", "lo"])
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
        rns, vns = ns_name(prefix, v["router"]), ns_name(prefix, v["router"], v["name"])
        netns.create_netns(j, vns)
        netns.veth(j, rns, v["router_if"], vns, v["vnf_if"])
        netns.set_mtu(rns, v["router_if"], v["mtu"])
        netns.set_mtu(vns, v["vnf_if"], v["mtu"])
        netns.addr_up(rns, v["router_if"], v["router_addr"])
        netns.addr_up(vns, v["vnf_if"], v["vnf_addr"])
        # XDP_REDIRECT into a veth needs NAPI on the far end: GRO on gives it (kernel >= 5.13)
        nsexec(vns, "ethtool", "-K", v["vnf_if"], "gro", "on")
        run(["ip", "-n", vns, "route", "add", "default", "via",
             v["router_addr"].split("/")[0]])
        # No forwarding: the VNF program is the only thing that sends traffic back. With
        # forwarding on, the kernel also routed every bare-IP frame an NSH-unaware instance gets
        # back to the router, unstamped: each packet arrived twice. Without a program the
        # instance now drops what it gets, as a dead VNF does (a new netns may inherit the
        # host's ip_forward, hence explicit zeros).
        netns.sysctls(vns, {"net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 0,
                            "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.eth0.rp_filter": 0})

    for h in topo["hosts"]:
        rns, hns = ns_name(prefix, h["router"]), ns_name(prefix, h["name"])
        netns.create_netns(j, hns)
        netns.veth(j, rns, h["router_if"], hns, h["host_if"])
        netns.addr_up(rns, h["router_if"], h["router_addr"])
        netns.addr_up(hns, h["host_if"], h["host_addr"])
        nsexec(hns, "ethtool", "-K", h["host_if"], "gro", "on")
        # Complete checksums from the sending socket: a veth leaves UDP/TCP checksums partial
        # for the "hardware", and a frame that XDP redirects loses the skb's note that they
        # are, so it arrives with a wrong checksum and the receiver drops it (docs/tools.md).
        nsexec(hns, "ethtool", "-K", h["host_if"], "tx", "off")
        run(["ip", "-n", hns, "route", "add", "default", "via", h["gateway"]])

    for rname in topo["routers"]:
        for daemon in frr.DAEMONS:
            frr.start_daemon(j, prefix, rname, daemon)

    j.set(status="converging")
    wait_converged(prefix, topo, timeout)
    # VNF programs before the agents: an agent watching a pid file that does not exist yet
    # would withdraw the instance at once.
    for v in topo["vnfs"]:
        if v["run"]:
            programs.start_vnf(j, prefix, v, vnf_bin)
    idle = [v["name"] for v in topo["vnfs"] if not v["run"]]
    if idle:
        log(f"note: no program runs for vnf {', '.join(idle)} (no `run = true`): packets "
            "steered to them are lost until one does (`scripts/lab vnf start --prefix "
            f"{prefix} NAME`, or your own; docs/lab.md)")
    if agent_cmd:
        for rname in topo["routers"]:
            programs.start_agent(j, topo, prefix, rname, agent_cmd)
    j.set(status="up")
