"""The VM lab (`scripts/lab up --vm`): every router is a VM with its own kernel.

Each router boots through vm-tests/run (virtme-ng, or its qemu fallback; the host root
read-only, TCG here) as a node: its link NICs are virtio-net on host taps, one bridge per
[[link]] joins the two ends; inside, the node runs zebra, ospfd, the agent and the VNF programs,
with its VNF instances and sources/sinks in network namespaces behind veths, as the netns lab
builds them (lablib.plumbing). Nothing is shared between nodes but the wires: each has its own
kernel, maps, bpffs and clock. The host reaches a node over SSH (dropbear in the guest) on a
management NIC with an IPv6 link-local address only, through one multiplexed connection per
node (OpenSSH's ControlMaster), so every `exec` is a channel of it.

On the host (S = /run/anychain-lab/<prefix>):
  netns acl-<prefix>-wire   bridges l<k> (one per link, ageing 0, no IPv6), taps l<k>a / l<k>b
                            (multi-queue), bridge mgmt with taps m<i>; qemu, vm-tests/run and
                            the SSH masters run in it, so `down` finds them there
  S/keys/                   the lab's SSH client key and known_hosts (one host key per node)
  S/<router>/share/         the node's 9p share (read-write, same path in the guest): node.sh,
                            lab.json, FRR configs, host key; logs, ready, programs' output
  S/<router>/vm/            vm-tests/run's run directory: console.log (live), vng's log
  S/<router>/vm.log         vm-tests/run's output and the node's (node-init)
  S/<router>/ssh.ctl        the SSH master's control socket
In the guest, S/<router>/ is the guest's own directory (pid files, vty sockets, zserv.api, the
agent's control socket, anychaind.yaml) with share/ mounted in it, and S/lab.json is a copy.

One file over 500 lines: building the nodes (NIC plan, node script, wire, keys, boot) and
reaching them (VmLab: SSH, programs, status, kill) share the same names and paths above; the
netns backend is in netns.py and backend.py, the guest's side in guest/.
"""

from __future__ import annotations

import concurrent.futures
import grp
import ipaddress
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time

from . import frr, plumbing, programs
from .backend import Lab, Proc
from .names import LabError, lab_dir, log, ns_name, router_dir
from .netns import Journal, create_netns, netns_inode
from .proc import alive, all_pids, cmdline, pids_in_netns, read_pid, run, tail
from .topology import expected_neighbors

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_RUN = os.path.join(SRC, "vm-tests", "run")
GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
NODE_INIT = os.path.join(GUEST, "node-init")
NODE_CTL = os.path.join(GUEST, "node-ctl")

# Defaults of `up --vm`, measured on a 2-core TCG host (docs/lab.md, "VM lab"): 1 vCPU, 256 MiB
# and a 64 MiB translation cache per guest; booting takes 30-40 s of one core per guest.
DEFAULTS = {"cpus": 1, "memory": "256M", "tb_size": 64, "boot_timeout": 900}
MGMT_BRIDGE = "mgmt"
MGMT_BRIDGE_MAC = "02:ac:03:00:00:00"
MAX_ROUTERS = 200  # MACs carry the router's index in one byte


# ---- names, addresses, the plan of NICs ------------------------------------------------------


def wire_ns(prefix: str) -> str:
    return ns_name(prefix, "wire")


def keys_dir(prefix: str) -> str:
    return os.path.join(lab_dir(prefix), "keys")


def share_dir(prefix: str, rname: str) -> str:
    return os.path.join(router_dir(prefix, rname), "share")


def vm_dir(prefix: str, rname: str) -> str:
    return os.path.join(router_dir(prefix, rname), "vm")


def control_path(prefix: str, rname: str) -> str:
    return os.path.join(router_dir(prefix, rname), "ssh.ctl")


def link_local(mac: str) -> str:
    """The IPv6 link-local address the kernel gives a NIC with this MAC (EUI-64)."""
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def nic_plan(topo: dict) -> dict[str, dict]:
    """router -> {"index", "mgmt": {tap, mac, addr}, "nics": [{name, mac, tap, bridge, address}]}.
    Link k's ends are taps l<k>a and l<k>b on bridge l<k>; a NIC's MAC is 02:ac:01:<router
    index>:<NIC index>:00 (locally administered), the management NIC's 02:ac:02:<index>:00:00."""
    routers = list(topo["routers"])
    if len(routers) > MAX_ROUTERS:
        raise LabError(f"the VM lab takes at most {MAX_ROUTERS} routers ({len(routers)} given)")
    plan = {}
    for i, r in enumerate(routers):
        mac = f"02:ac:02:{i:02x}:00:00"
        plan[r] = {"index": i, "mgmt": {"tap": f"m{i}", "mac": mac, "addr": link_local(mac)},
                   "nics": []}
    for k, l in enumerate(topo["links"]):
        plen = l["subnet"].split("/")[1]
        for end in ("a", "b"):
            r = l[end]
            nics = plan[r]["nics"]
            nics.append({"name": l[f"{end}_if"], "tap": f"l{k}{end}", "bridge": f"l{k}",
                         "mac": f"02:ac:01:{plan[r]['index']:02x}:{len(nics):02x}:00",
                         "address": f"{l[f'{end}_addr']}/{plen}"})
    return plan


# ---- the node's script -----------------------------------------------------------------------


def _function(name: str, steps: list[list[str]]) -> list[str]:
    body = [f"\tstep {shlex.join(argv)}" for argv in steps] or ["\t:"]
    return [f"{name}() {{", *body, "}"]


def node_script(topo: dict, prefix: str, rname: str, plan: dict) -> str:
    """SHARE/node.sh of router rname: the settings and functions guest/node-init runs."""
    q = shlex.quote
    p = plan[rname]
    d = router_dir(prefix, rname)
    share = share_dir(prefix, rname)
    lines = [f"# generated by scripts/lab for lab {prefix}, router {rname} (VM node); run by "
             "scripts/lablib/guest/node-init",
             f"NODE_PREFIX={q(prefix)}", f"NODE_ROUTER={q(rname)}", f"NODE_STATEDIR={q(d)}",
             f"NODE_LABDIR={q(lab_dir(prefix))}", f"NODE_SHARE={q(share)}",
             f"NODE_MGMT_MAC={q(p['mgmt']['mac'])}", f"NODE_MGMT_ADDR={q(p['mgmt']['addr'])}",
             "NODE_NICS=(" + " ".join(q(f"{n['mac']} {n['name']}") for n in p["nics"]) + ")"]
    links = []
    for n in p["nics"]:
        links += [argv for _, argv in plumbing.addr_up(None, n["name"], n["address"])]
    lines += _function("node_links", links)
    steps = plumbing.router_steps(topo["routers"][rname], None)
    steps += plumbing.local_steps(topo, prefix, rname, None)
    lines += _function("node_plumb", [argv for _, argv in steps])
    frr_lines = []
    for daemon in frr.DAEMONS:
        frr_lines.append(["install", "-o", "frr", "-g", "frr", "-m", "0644",
                          f"{share}/{daemon}.conf", f"{d}/{daemon}.conf"])
    lines += _function("node_frr_configs", frr_lines)
    lines += ["node_frr() {", "\tnode_frr_configs"]
    for daemon in frr.DAEMONS:
        lines.append("\tnode_daemon " + shlex.join([daemon, f"{d}/{daemon}.pid", f"{d}/{daemon}.vty",
                                                     *frr.frr_cmd(prefix, rname, daemon)]))
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- checks before anything is created -------------------------------------------------------


def preflight(topo: dict, vm: dict) -> None:
    nic_plan(topo)
    for exe, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("dropbear", "dropbear-bin"),
                     ("dropbearkey", "dropbear-bin"), ("ssh", "openssh-client"),
                     ("ssh-keygen", "openssh-client")):
        if shutil.which(exe) is None and not os.access(f"/usr/sbin/{exe}", os.X_OK):
            raise LabError(f"{exe} not found: install {pkg} (scripts/install-deps.sh)")
    if not os.access(VM_RUN, os.X_OK):
        raise LabError(f"{VM_RUN} missing")
    if not os.path.exists("/dev/net/tun"):
        raise LabError("/dev/net/tun missing: the VM lab's NICs are taps")
    if not re.match(r"^[A-Za-z0-9_./+-]+$", lab_dir("x")):
        raise LabError(f"the state root {os.path.dirname(lab_dir('x'))} has characters vng "
                       "cannot pass to qemu (only A-Z a-z 0-9 _ . / + -)")
    if not isinstance(vm.get("cpus"), int) or not 1 <= vm["cpus"] <= 64:
        raise LabError(f"--vm-cpus {vm.get('cpus')!r}: 1..64")
    if not re.match(r"^[1-9][0-9]*[KMGkmg]?$", str(vm.get("memory"))):
        raise LabError(f"--vm-memory {vm.get('memory')!r} is not a size like 256M or 1G")


# ---- building --------------------------------------------------------------------------------


def _keys(j: Journal, prefix: str, topo: dict) -> None:
    """The lab's SSH client key, one dropbear host key per node, known_hosts with them."""
    kd = keys_dir(prefix)
    os.makedirs(kd, mode=0o700)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"anychain-lab-{prefix}",
         "-f", os.path.join(kd, "id_ed25519")])
    with open(os.path.join(kd, "id_ed25519.pub")) as f:
        client_pub = f.read()
    known = []
    for rname in topo["routers"]:
        share = share_dir(prefix, rname)
        key = os.path.join(share, "hostkey")
        run(["dropbearkey", "-t", "ed25519", "-f", key])
        pub = run(["dropbearkey", "-y", "-f", key]).stdout
        line = next((l for l in pub.splitlines() if l.startswith("ssh-")), None)
        if line is None:
            raise LabError(f"dropbearkey -y printed no public key for {key}: {pub!r}")
        known.append(f"{ns_name(prefix, rname)} {' '.join(line.split()[:2])}")
        with open(os.path.join(share, "authorized_keys"), "w") as f:
            f.write(client_pub)
    with open(os.path.join(kd, "known_hosts"), "w") as f:
        f.write("\n".join(known) + "\n")


def _wire(j: Journal, prefix: str, plan: dict) -> None:
    """The wire namespace: a bridge per link with its two taps, the management bridge."""
    w = wire_ns(prefix)
    create_netns(j, w)
    # The data wires carry only what the guests send: no IPv6 of the host's bridges/taps there
    # (DAD, router solicitations, MLD). The management bridge has it: that is its only address.
    run(["ip", "netns", "exec", w, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1",
         "net.ipv6.conf.all.disable_ipv6=0"])
    bridges = sorted({n["bridge"] for p in plan.values() for n in p["nics"]})
    for br in bridges:
        j.record(kind="bridge", netns=w, name=br)
        run(["ip", "-n", w, "link", "add", br, "type", "bridge", "ageing_time", "0"])
        run(["ip", "-n", w, "link", "set", br, "up"])
    for p in plan.values():
        for n in p["nics"]:
            j.record(kind="tap", netns=w, name=n["tap"])
            run(["ip", "-n", w, "tuntap", "add", n["tap"], "mode", "tap", "multi_queue"])
            run(["ip", "-n", w, "link", "set", n["tap"], "master", n["bridge"]])
            run(["ip", "-n", w, "link", "set", n["tap"], "up"])
    j.record(kind="bridge", netns=w, name=MGMT_BRIDGE)
    run(["ip", "-n", w, "link", "add", MGMT_BRIDGE, "address", MGMT_BRIDGE_MAC, "type", "bridge"])
    run(["ip", "netns", "exec", w, "sysctl", "-qw", f"net.ipv6.conf.{MGMT_BRIDGE}.disable_ipv6=0",
         f"net.ipv6.conf.{MGMT_BRIDGE}.accept_dad=0"])
    run(["ip", "-n", w, "link", "set", MGMT_BRIDGE, "up"])
    for p in plan.values():
        tap = p["mgmt"]["tap"]
        j.record(kind="tap", netns=w, name=tap)
        run(["ip", "-n", w, "tuntap", "add", tap, "mode", "tap", "multi_queue"])
        run(["ip", "-n", w, "link", "set", tap, "master", MGMT_BRIDGE])
        run(["ip", "-n", w, "link", "set", tap, "up"])


def vm_argv(prefix: str, rname: str, plan: dict, vm: dict) -> list[str]:
    """vm-tests/run for node rname (run inside the wire namespace)."""
    p = plan[rname]
    argv = [VM_RUN, "--cpus", str(vm["cpus"]), "--memory", str(vm["memory"]), "--timeout", "0",
            "--boot-timeout", "180", "--rundir", vm_dir(prefix, rname),
            "--rwdir", share_dir(prefix, rname)]
    if vm.get("tb_size"):
        argv += ["--tcg-tb-size", str(vm["tb_size"])]
    for n in p["nics"]:
        argv += ["--tap", f"{n['tap']},mac={n['mac']}"]
    argv += ["--tap", f"{p['mgmt']['tap']},mac={p['mgmt']['mac']}"]
    return argv + ["--", "/bin/bash", NODE_INIT, os.path.join(share_dir(prefix, rname), "node.sh")]


def boot(j: Journal, prefix: str, rname: str, plan: dict, vm: dict) -> subprocess.Popen:
    d = router_dir(prefix, rname)
    argv = vm_argv(prefix, rname, plan, vm)
    pidfile = os.path.join(d, "vm.pid")
    j.record(kind="vm", router=rname, pidfile=pidfile, cmdline_has=f" --rundir {vm_dir(prefix, rname)} ")
    with open(os.path.join(d, "vm.log"), "ab") as out:
        p = subprocess.Popen(["ip", "netns", "exec", wire_ns(prefix), *argv], cwd=SRC,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    with open(pidfile, "w") as f:
        f.write(f"{p.pid}\n")
    log(f"node {rname}: booting (pid {p.pid}; console {vm_dir(prefix, rname)}/console.log)")
    return p


def wait_ready(prefix: str, procs: dict[str, subprocess.Popen], timeout: float) -> dict:
    """Until every node wrote SHARE/ready; the nodes' ready records (boot times)."""
    start = time.monotonic()
    ready: dict[str, dict] = {}
    while len(ready) < len(procs):
        for rname, p in procs.items():
            if rname in ready:
                continue
            share = share_dir(prefix, rname)
            if os.path.exists(os.path.join(share, "ready")):
                with open(os.path.join(share, "ready")) as f:
                    ready[rname] = {**json.load(f), "wall_s": round(time.monotonic() - start, 1)}
                log(f"node {rname}: ready after {ready[rname]['wall_s']} s "
                    f"(guest uptime {ready[rname]['uptime_at_ready']} s)")
                continue
            failed = os.path.join(share, "failed")
            if os.path.exists(failed) or p.poll() is not None:
                why = open(failed).read().strip() if os.path.exists(failed) else \
                    f"its VM ended (vm-tests/run exit {p.returncode})"
                raise LabError(f"node {rname} did not come up: {why}\n  "
                               f"{router_dir(prefix, rname)}/vm.log, last lines:\n"
                               f"{tail(os.path.join(router_dir(prefix, rname), 'vm.log'), 25)}")
        if time.monotonic() - start > timeout:
            late = [r for r in procs if r not in ready]
            raise LabError(f"nodes {', '.join(late)} not ready within {timeout:.0f} s (console "
                           f"logs: {', '.join(vm_dir(prefix, r) + '/console.log' for r in late)})")
        time.sleep(0.5)
    return ready


def build(j: Journal, topo: dict, prefix: str, timeout: float, agent_cmd: str | None,
          vnf_bin: str | None, vm: dict) -> None:
    from .status import wait_converged
    try:
        frr_uid, frr_gid = pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        raise LabError("user/group 'frr' missing: is the frr package installed?") from None
    plan = nic_plan(topo)
    with open(os.path.join(lab_dir(prefix), "lab.json")) as f:
        lab_json = f.read()
    for rname in topo["routers"]:
        share = share_dir(prefix, rname)
        os.makedirs(share)
        os.chown(share, frr_uid, frr_gid)  # FRR in the guest (user frr) logs here
        zconf, oconf = frr.frr_configs(topo, prefix, rname, logdir=share)
        for fname, text in (("zebra.conf", zconf), ("ospfd.conf", oconf), ("lab.json", lab_json),
                            ("node.sh", node_script(topo, prefix, rname, plan))):
            with open(os.path.join(share, fname), "w") as f:
                f.write(text)
    _keys(j, prefix, topo)
    _wire(j, prefix, plan)
    t0 = time.monotonic()
    procs = {rname: boot(j, prefix, rname, plan, vm) for rname in topo["routers"]}
    ready = wait_ready(prefix, procs, vm["boot_timeout"])
    j.set(status="booted", boot={"wall_s": round(time.monotonic() - t0, 1), "nodes": ready})
    lab = VmLab(prefix, topo)
    for rname in topo["routers"]:
        lab.start_master(j, rname)
    j.set(status="converging")
    wait_converged(lab, timeout)
    lab.start_programs(j, vnf_bin, agent_cmd)
    j.set(status="up")


# ---- reaching a node ------------------------------------------------------------------------


class RemoteProc(Proc):
    """A program spawned on a node over SSH: the local ssh client is the Popen (it ends when
    the program does, with its exit status); signals go to the program in the guest."""

    def __init__(self, lab: "VmLab", router: str, popen: subprocess.Popen, pidfile: str):
        super().__init__(popen)
        self.lab, self.router, self.pidfile = lab, router, pidfile
        self.remote_pid: int | None = None

    def _pid(self) -> int | None:
        if self.remote_pid is None:
            r = self.lab.exec(self.router, ["cat", self.pidfile], check=False, timeout=20)
            if r.returncode == 0 and r.stdout.strip().isdigit():
                self.remote_pid = int(r.stdout.strip())
        return self.remote_pid

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is not None:
            return
        pid = self._pid()
        if pid is not None:
            self.lab.exec(self.router, ["kill", f"-{int(sig)}", str(pid)], check=False, timeout=20)
        else:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.kill()


class VmLab(Lab):
    kind = "vm"
    poll_interval = 1.0

    def __init__(self, prefix: str, topo: dict):
        super().__init__(prefix, topo)
        self.plan = nic_plan(topo)
        self._spawned = 0

    # ---- SSH ------------------------------------------------------------------------------
    def ssh_opts(self, rname: str) -> list[str]:
        kd = keys_dir(self.prefix)
        return ["-F", "/dev/null", "-i", os.path.join(kd, "id_ed25519"),
                "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={kd}/known_hosts",
                "-o", f"HostKeyAlias={ns_name(self.prefix, rname)}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", f"ControlPath={control_path(self.prefix, rname)}", "-o", "ConnectTimeout=10"]

    def ssh_dest(self, rname: str) -> str:
        return f"root@{self.plan[rname]['mgmt']['addr']}%{MGMT_BRIDGE}"

    def start_master(self, j: Journal | None, rname: str, timeout: float = 60) -> None:
        """The node's SSH connection every exec runs over (in the wire namespace)."""
        d = router_dir(self.prefix, rname)
        pidfile = os.path.join(d, "ssh.pid")
        argv = ["ssh", *self.ssh_opts(rname), "-M", "-N", "-o", "ControlPersist=no",
                "-o", "ServerAliveInterval=3", "-o", "ServerAliveCountMax=10", self.ssh_dest(rname)]
        if j is not None:
            j.record(kind="ssh", router=rname, pidfile=pidfile,
                     cmdline_has=f"ControlPath={control_path(self.prefix, rname)} ")
        with open(os.path.join(d, "ssh.log"), "ab") as out:
            p = subprocess.Popen(["ip", "netns", "exec", wire_ns(self.prefix), *argv],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        with open(pidfile, "w") as f:
            f.write(f"{p.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise LabError(f"SSH to node {rname} failed (exit {p.returncode}): "
                               f"{tail(os.path.join(d, 'ssh.log'), 5).strip()}")
            if run(["ssh", *self.ssh_opts(rname), "-O", "check", self.ssh_dest(rname)],
                   check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError(f"SSH to node {rname}: no connection within {timeout:.0f} s")

    def _remote(self, target: str, argv: list[str]) -> tuple[str, str]:
        """(router, the command line for the node's /bin/sh) of argv on target."""
        router = self.router_of(target)
        ns = self.target_ns(target)
        if ns is None:
            cmd = ["env", f"ANYCHAIN_LAB_PREFIX={self.prefix}", f"ANYCHAIN_LAB_ROUTER={router}",
                   f"ANYCHAIN_LAB_DIR={router_dir(self.prefix, router)}", *argv]
        else:
            cmd = ["ip", "netns", "exec", ns, *argv]
        # the host's working directory, which the guest sees too (read-only), as netns exec keeps it
        return router, f"cd {shlex.quote(os.getcwd())} 2>/dev/null || cd /; exec {shlex.join(cmd)}"

    def exec_argv(self, target, argv, interactive=False):
        if not argv:
            argv = ["/bin/bash"]
        router, remote = self._remote(target, argv)
        return ["ssh", *self.ssh_opts(router), "-t" if interactive else "-T",
                self.ssh_dest(router), remote]

    def exec(self, target, argv, check=True, timeout=30):
        router = self.router_of(target)
        if not os.path.exists(control_path(self.prefix, router)):
            self.reconnect(router)
        argv_host = self.exec_argv(target, argv)
        try:
            p = subprocess.run(argv_host, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"node {router}: command timed out after {timeout}s: "
                           f"{shlex.join(argv)}") from None
        if p.returncode == 255 and not os.path.exists(control_path(self.prefix, router)):
            raise LabError(f"node {router} does not answer (its SSH connection is gone: is the "
                           f"VM down? `scripts/lab status --prefix {self.prefix}`)")
        if check and p.returncode != 0:
            err = (p.stderr or "").strip()
            raise LabError(f"command failed on node {router} ({p.returncode}): {shlex.join(argv)}"
                           + (f"\n  {err}" if err else ""))
        return p

    def reconnect(self, router: str) -> None:
        """Start the node's SSH master again (it died, e.g. with a network hiccup)."""
        if not self.vm_alive(router):
            raise LabError(f"node {router}: its VM is not running")
        self.start_master(Journal.load(self.prefix), router, timeout=30)

    def spawn(self, target, argv, log):
        router = self.router_of(target)
        self._spawned += 1
        pidfile = os.path.join(router_dir(self.prefix, router), "spawn",
                               f"{os.getpid()}-{self._spawned}.pid")
        _, remote = self._remote(target, argv)
        remote = (f"mkdir -p {shlex.quote(os.path.dirname(pidfile))} && "
                  f"echo $$ > {shlex.quote(pidfile)} && {remote}")
        with open(log, "ab") as out:
            p = subprocess.Popen(["ssh", *self.ssh_opts(router), "-T", self.ssh_dest(router), remote],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        return RemoteProc(self, router, p, pidfile)

    def vtysh(self, router, command, timeout=20):
        p = self.exec(router, frr.vtysh_argv(self.prefix, router) + ["-c", command], check=False,
                      timeout=timeout)
        if p.returncode != 0:
            raise LabError(f"vtysh on router {router} failed for {command!r}: "
                           f"{(p.stderr or p.stdout).strip()}")
        return p.stdout

    def vtysh_argv(self, router):
        return self.exec_argv(router, frr.vtysh_argv(self.prefix, router), interactive=True)

    def shared_dir(self, router):
        return share_dir(self.prefix, router)

    # ---- the VMs ----------------------------------------------------------------------------
    def qemu_pid(self, router: str) -> int | None:
        """qemu of node router: the process in the wire namespace whose command line shares the
        node's run directory."""
        inode = netns_inode(wire_ns(self.prefix))
        if inode is None:
            return None
        mark = vm_dir(self.prefix, router) + "/"
        for pid in pids_in_netns({inode}):
            c = cmdline(pid)
            if os.path.basename(c.split(" ", 1)[0]).startswith("qemu-system") and mark in c:
                return pid if alive(pid) else None
        return None

    def vm_alive(self, router: str) -> bool:
        return self.qemu_pid(router) is not None

    def kill_node(self, router):
        """SIGKILL the node's qemu: the whole router fails at once, as a box losing power."""
        self.check_router(router)
        pid = self.qemu_pid(router)
        if pid is None:
            raise LabError(f"node {router}: its VM is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"router {router}: SIGKILLed its qemu (pid {pid})"

    def revive_node(self, router, j, vnf_bin, agent_cmd, timeout):
        raise LabError(f"revive-node {router}: the VM lab cannot boot a killed node's VM again "
                       f"yet; `scripts/lab down --prefix {self.prefix}` and `up` again (the netns "
                       "lab can: docs/lab.md)")

    # ---- programs ---------------------------------------------------------------------------
    def _ctl(self, router: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.exec(router, ["/bin/bash", NODE_CTL, *args], check=False, timeout=timeout)

    def start_agent(self, j: Journal | None, router: str, template: str) -> int:
        argv = programs.agent_argv(template, self.topo, self.prefix, router)
        pidfile = programs.agent_pidfile(self.prefix, router)
        if j is not None:
            j.record(kind="agent", router=router, pidfile=pidfile, cmdline_seen=" ".join(argv),
                     node=router)
        logf = os.path.join(share_dir(self.prefix, router), "agent.log")
        p = self._ctl(router, "start", pidfile, logf, "1", "--",
                      "env", f"ANYCHAIN_LAB_PREFIX={self.prefix}", f"ANYCHAIN_LAB_ROUTER={router}",
                      f"ANYCHAIN_LAB_DIR={router_dir(self.prefix, router)}", *argv)
        if p.returncode != 0:
            raise LabError(f"agent on {router} did not start: {shlex.join(argv)}\n"
                           f"  {p.stderr.strip()}")
        log(f"agent on {router}: pid {p.stdout.strip()} in the guest: {shlex.join(argv)} "
            f"(log {logf})")
        return int(p.stdout.strip())

    def find_agent(self, router: str) -> tuple[int | None, str | None]:
        j = Journal.load(self.prefix)
        started = sorted({e.get("cmdline_seen") for e in (j.data["created"] if j else [])
                          if e["kind"] == "agent" and e.get("router") == router})
        sock = os.path.join(router_dir(self.prefix, router), programs.AGENT_SOCKET)
        p = self._ctl(router, "find-agent", programs.agent_pidfile(self.prefix, router), sock,
                      *started)
        if p.returncode != 0 or not p.stdout.strip():
            return None, None
        pid, how = p.stdout.split()[:2]
        return int(pid), how

    def _stop(self, router: str, pid: int | None, what: str, grace: int) -> int | None:
        if pid is not None:
            log(f"stopping pid {pid} ({what}) in node {router}")
            if self._ctl(router, "stop", str(pid), str(grace)).returncode != 0:
                raise LabError(f"{what} (pid {pid}) did not stop")
        return pid

    def stop_agent(self, router: str) -> int | None:
        return self._stop(router, self.find_agent(router)[0], f"agent of router {router}", 10)

    def vnf_argv(self, binary: str, v: dict) -> list[str]:
        json_path = os.path.join(share_dir(self.prefix, v["router"]), f"{v['router_if']}.json")
        return programs.vnf_argv(binary, self.prefix, v, stats_json=json_path)

    def start_vnf(self, j: Journal | None, v: dict, binary: str) -> int:
        argv = self.vnf_argv(binary, v)
        pidfile = programs.vnf_file(self.prefix, v, "pid")  # lab.json's pid_file: the guest's
        if j is not None:
            j.record(kind="vnf", vnf=v["name"], pidfile=pidfile, cmdline_seen=" ".join(argv),
                     node=v["router"])
        logf = os.path.join(share_dir(self.prefix, v["router"]), f"{v['router_if']}.log")
        p = self._ctl(v["router"], "start", pidfile, logf, "0", "--", "ip", "netns", "exec",
                      programs.vnf_ns(self.prefix, v), *argv)
        if p.returncode != 0:
            raise LabError(f"vnf {v['name']} exited at once: {shlex.join(argv)}\n  {p.stderr.strip()}")
        log(f"vnf {v['name']}: pid {p.stdout.strip()} in node {v['router']}: {shlex.join(argv)} "
            f"(log {logf})")
        return int(p.stdout.strip())

    def find_vnf(self, v: dict) -> tuple[int | None, str | None]:
        p = self._ctl(v["router"], "pid", programs.vnf_file(self.prefix, v, "pid"))
        if p.returncode != 0 or not p.stdout.strip():
            return None, None
        return int(p.stdout.strip()), "pid_file"

    def stop_vnf(self, v: dict) -> int | None:
        return self._stop(v["router"], self.find_vnf(v)[0], f"vnf {v['name']}", 5)

    # ---- health and status ------------------------------------------------------------------
    def node_facts(self, router: str) -> dict:
        """The node's pid files, control sockets and namespaces (node-ctl status)."""
        p = self._ctl(router, "status", router_dir(self.prefix, router), timeout=30)
        facts = {"pidfiles": {}, "sockets": {}, "netns": []}
        if p.returncode != 0:
            raise LabError(f"node {router}: node-ctl status failed: {p.stderr.strip()}")
        for line in p.stdout.splitlines():
            w = line.split()
            if len(w) == 4 and w[0] == "pidfile":
                facts["pidfiles"][w[1]] = {"pid": int(w[2]) if w[2].isdigit() else None,
                                           "alive": w[3] == "alive"}
            elif len(w) == 3 and w[0] == "socket":
                facts["sockets"][w[1]] = int(w[2]) if w[2].isdigit() else None
            elif len(w) == 2 and w[0] == "netns":
                facts["netns"].append(w[1])
        return facts

    def health(self) -> list[str]:
        problems = []
        for rname in self.topo["routers"]:
            if not self.vm_alive(rname):
                problems.append(f"VM of router {rname} not running")
                continue
            try:
                facts = self.node_facts(rname)
            except LabError as e:
                problems.append(str(e))
                continue
            for daemon in frr.DAEMONS:
                if not facts["pidfiles"].get(f"{daemon}.pid", {}).get("alive"):
                    problems.append(f"{daemon} of router {rname} not running")
        return problems

    def gather_status(self, st: dict) -> dict:
        j = Journal.load(self.prefix)
        boot = (j.data.get("boot") or {}) if j else {}

        def one(rname: str) -> dict:
            r = self.topo["routers"][rname]
            qpid = self.qemu_pid(rname)
            rs = {"netns": None, "netns_exists": qpid is not None, "router_id": r["router_id"],
                  "loopback": r["loopback"], "daemons": {}, "agent": None,
                  "vm": {"alive": qpid is not None, "qemu_pid": qpid,
                         "launcher_pid": read_pid(os.path.join(router_dir(self.prefix, rname), "vm.pid")),
                         "console_log": os.path.join(vm_dir(self.prefix, rname), "console.log"),
                         "share": share_dir(self.prefix, rname),
                         "ready": (boot.get("nodes") or {}).get(rname)},
                  "expected_neighbors": sorted(expected_neighbors(self.topo, rname)),
                  "neighbors": {}, "routes": {}, "errors": [], "node_netns": []}
            facts = None
            if qpid is not None:
                try:
                    facts = self.node_facts(rname)
                except LabError as e:
                    rs["errors"].append(str(e))
            for daemon in frr.DAEMONS:
                f = (facts or {}).get("pidfiles", {}).get(f"{daemon}.pid", {})
                rs["daemons"][daemon] = {"pid": f.get("pid"), "alive": bool(f.get("alive"))}
            if facts:
                rs["node_netns"] = facts["netns"]
                a = facts["pidfiles"].get("agent.pid")
                sock = os.path.join(router_dir(self.prefix, rname), programs.AGENT_SOCKET)
                if a and a["alive"]:
                    rs["agent"] = {"pid": a["pid"], "alive": True, "found_by": "pid_file"}
                elif facts["sockets"].get(sock):
                    rs["agent"] = {"pid": facts["sockets"][sock], "alive": True,
                                   "found_by": "control_socket"}
                elif a:
                    rs["agent"] = {"pid": a["pid"], "alive": False, "found_by": None}
                rs["vnf_pidfiles"] = facts["pidfiles"]
            if rs["daemons"]["ospfd"]["alive"]:
                for key, fn in (("neighbors", frr.neighbors), ("routes", frr.ospf_routes)):
                    try:
                        rs[key] = fn(self.prefix, rname, self.vtysh)
                    except LabError as e:
                        rs["errors"].append(str(e))
            return rs

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.topo["routers"])) as ex:
            results = dict(zip(self.topo["routers"], ex.map(one, self.topo["routers"])))
        st["routers"] = results
        st["boot"] = boot
        for v in self.topo["vnfs"]:
            rs = results[v["router"]]
            ns = ns_name(self.prefix, v["router"], v["name"])
            pf = (rs.get("vnf_pidfiles") or {}).get(f"{v['router_if']}.pid")
            program = ({"pid": pf["pid"], "alive": True, "found_by": "pid_file"}
                       if pf and pf["alive"] else None)
            st["vnfs"].append({**v, "netns": ns, "netns_exists": ns in rs["node_netns"],
                               "program": program})
        for h in self.topo["hosts"]:
            ns = ns_name(self.prefix, h["name"])
            st["hosts"].append({**h, "netns": ns,
                                "netns_exists": ns in results[h["router"]]["node_netns"]})
        for rs in results.values():
            rs.pop("vnf_pidfiles", None)
        return st


def lab_processes(prefix: str) -> list[int]:
    """Processes of VM lab prefix wherever they run (e.g. after its wire namespace was deleted
    by hand): qemu, vm-tests/run, vng and the SSH masters name the lab's state dir."""
    mark = lab_dir(prefix) + "/"
    out = []
    for pid in all_pids():
        c = cmdline(pid)
        if mark not in c:
            continue
        exe = os.path.basename(c.split(" ", 1)[0])
        if (exe.startswith("qemu-system") or exe in ("ssh", "timeout", "unshare")
                or " " + VM_RUN + " " in f" {c} " or "/vng " in f"{c} " or "virtme" in c):
            out.append(pid)
    return out
