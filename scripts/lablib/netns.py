"""Namespaces, veths and mounts of a lab, the journal that records them, and teardown.

Everything the lab creates is appended to <statedir>/state.json (fsynced) *before* it is
created, so `down` removes exactly that even after `up` was killed at any point; and because a
prefix cannot contain '-', `down` also finds what a lost journal would have named
(acl-<prefix>-*, FRR command lines, mounts under the state dir).
"""

from __future__ import annotations

import json
import os
import shutil

from . import frr
from .names import FRR_RUN, LabError, lab_dir, lab_json_path, log, ns_name, router_dir
from .proc import alive, cmdline, kill_pids, nsexec, pids_in_netns, read_pid, run


class Journal:
    """<statedir>/state.json: every object the lab creates is appended here before it is
    created. `down` undoes the entries in reverse order."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.path = os.path.join(lab_dir(prefix), "state.json")
        self.data = {"prefix": prefix, "status": "creating", "created": []}

    @classmethod
    def load(cls, prefix: str) -> "Journal | None":
        j = cls(prefix)
        try:
            with open(j.path) as f:
                j.data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as e:
            log(f"warning: state file {j.path} is unreadable ({e}); cleaning up by prefix only")
            return None
        return j

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def record(self, **entry) -> None:
        self.data["created"].append(entry)
        self.save()

    def set(self, **kv) -> None:
        self.data.update(kv)
        self.save()


def write_lab(prefix: str, topo: dict) -> None:
    with open(lab_json_path(prefix), "w") as f:
        json.dump({"prefix": prefix, **topo}, f, indent=1)


def load_lab(prefix: str) -> dict:
    """The resolved topology of a lab that is up (<statedir>/lab.json)."""
    try:
        with open(lab_json_path(prefix)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabError(f"lab {prefix!r} is not up (no {lab_json_path(prefix)})") from None


def netns_list() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def lab_namespaces(prefix: str) -> list[str]:
    """Every namespace named acl-<prefix>-*: prefixes cannot contain '-', so a match can only
    belong to this lab."""
    head = ns_name(prefix) + "-"
    return [n for n in netns_list() if n.startswith(head)]


def netns_inode(ns: str) -> int | None:
    try:
        return os.stat(os.path.join("/run/netns", ns)).st_ino
    except FileNotFoundError:
        return None


def mounts_under(path: str) -> list[str]:
    out = []
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return sorted(out, key=len, reverse=True)


def create_netns(j: Journal, ns: str) -> None:
    j.record(kind="netns", name=ns)
    run(["ip", "netns", "add", ns])
    nsexec(ns, "ip", "link", "set", "lo", "up")


def veth(j: Journal, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    # Created directly inside ns_a with its peer inside ns_b: never visible in the host's
    # namespace, so labs cannot collide there.
    j.record(kind="veth", netns=ns_a, name=if_a, peer_netns=ns_b, peer=if_b)
    run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b,
         "netns", ns_b])


def set_mtu(ns: str, ifname: str, mtu: int) -> None:
    run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(mtu)])


def addr_up(ns: str, ifname: str, addr: str) -> None:
    run(["ip", "-n", ns, "addr", "add", addr, "dev", ifname])
    run(["ip", "-n", ns, "link", "set", ifname, "up"])


def mount_bpffs(j: Journal, path: str) -> None:
    os.makedirs(path)
    j.record(kind="mount", path=path)
    run(["mount", "-t", "bpf", "bpf", path])


def exec_prelude(prefix: str, rname: str) -> list[str]:
    """argv prefix that runs a command inside router rname's namespace with the router's own
    bpffs bound on /sys/fs/bpf (ip netns exec gives every command a fresh /sys)."""
    d = router_dir(prefix, rname)
    script = ('mount --bind "$1" /sys/fs/bpf || exit 125; shift; '
              'export ANYCHAIN_LAB_PREFIX="$1" ANYCHAIN_LAB_ROUTER="$2" ANYCHAIN_LAB_DIR="$3"; '
              'shift 3; exec "$@"')
    return ["ip", "netns", "exec", ns_name(prefix, rname), "sh", "-c", script, "lab-exec",
            f"{d}/bpffs", prefix, rname, d]


# Journal entries `down` acts on, by kind (every other kind is undone by what removes these):
#   statedir            the lab's state dir: removed last
#   netns               a namespace: its processes stopped, then deleted (with the veths, taps
#                       and bridges inside it: kinds veth, tap, bridge are only a record)
#   mount               a bpffs instance: unmounted
#   frr_rundir          FRR's /var/run/frr/<pathspace>: removed
#   daemon agent vnf    a process on this host, by its pid file (kept only while the process's
#   vm ssh              command line is the one started: cmdline_seen, or contains cmdline_has)
# The VM lab's agent and vnf entries name pid files inside their node (`node`): their
# processes go with the VM.
PROCESS_KINDS = ("daemon", "agent", "vnf", "vm", "ssh")


def journalled_pid(e: dict) -> int | None:
    """The live pid of a process entry, if it still runs what the lab started."""
    if e["kind"] not in PROCESS_KINDS or e.get("node"):
        return None
    pid = read_pid(e["pidfile"])
    if not alive(pid):
        return None
    c = cmdline(pid)
    if c == e.get("cmdline_seen") or (e.get("cmdline_has") and e["cmdline_has"] in c + " "):
        return pid
    return None


def vm_lab_processes(prefix: str) -> list[int]:
    """The VM lab's qemu, vm-tests/run, vng and SSH masters, wherever they run (lablib.vm)."""
    from .vm import lab_processes
    return lab_processes(prefix)


def teardown(prefix: str) -> bool:
    """Remove everything of lab prefix; True if there was anything to remove. Raises LabError
    naming what could not be removed."""
    d = lab_dir(prefix)
    j = Journal.load(prefix)
    entries = list(reversed(j.data["created"])) if j else []
    found_anything = bool(j) or os.path.exists(d)

    # 1. Processes: the ones the journal names, every process inside any of the lab's
    #    namespaces, and any FRR daemon whose command line names the lab's namespaces or state
    #    directory (e.g. one whose namespace was deleted by hand).
    #    A pid from a pid file is only trusted if that process still looks like what the lab
    #    started (its command line), so a pid reused after a reboot is never signalled.
    pids = [pid for e in entries if (pid := journalled_pid(e)) is not None]
    namespaces = set(lab_namespaces(prefix))
    namespaces |= {e["name"] for e in entries if e["kind"] == "netns"}
    inodes = {i for i in (netns_inode(n) for n in namespaces) if i is not None}
    pids += pids_in_netns(inodes)
    pids += frr.frr_pids_of_lab(prefix)
    pids += vm_lab_processes(prefix)
    if pids:
        found_anything = True
    kill_pids(pids, f"lab {prefix}")

    # 2. bpffs mounts under the state dir.
    mps = set(e["path"] for e in entries if e["kind"] == "mount")
    if os.path.exists(d):
        mps |= set(mounts_under(d))
    for mp in sorted(mps, key=len, reverse=True):
        if mp in mounts_under(mp):
            log(f"umount {mp}")
            run(["umount", "-l", mp], check=False)

    # 3. Namespaces (their veths go with them).
    for ns in sorted(namespaces, key=len, reverse=True):
        if ns in netns_list():
            found_anything = True
            log(f"delete netns {ns}")
            p = run(["ip", "netns", "del", ns], check=False)
            if p.returncode != 0:
                log(f"warning: ip netns del {ns}: {p.stderr.strip()}")

    # 4. The per-pathspace directories FRR made for `-N acl-<prefix>-...`.
    rundirs = {e["path"] for e in entries if e["kind"] == "frr_rundir"}
    try:
        head = ns_name(prefix) + "-"
        rundirs |= {os.path.join(FRR_RUN, n) for n in os.listdir(FRR_RUN) if n.startswith(head)}
    except FileNotFoundError:
        pass
    for rd in sorted(rundirs):
        if os.path.isdir(rd):
            found_anything = True
            shutil.rmtree(rd, ignore_errors=True)

    # 5. State directory.
    if os.path.exists(d):
        if mounts_under(d):
            raise LabError(f"{d} still has mounts {mounts_under(d)}; not removing it")
        shutil.rmtree(d)
        log(f"removed {d}")

    left = lab_namespaces(prefix) + [str(p) for p in pids_in_netns(inodes) if alive(p)]
    if left:
        raise LabError(f"lab {prefix!r}: could not remove {', '.join(left)}")
    return found_anything
