#!/usr/bin/python3
"""Integration tests of scripts/lab (real network namespaces, real FRR).

  lab_test.py paper   paper-fig3: OSPF routes match the link costs, an opaque LSA originated
                      through the OSPF API on A (FRR's own ospfclient.py as an independent
                      client) reaches B, C and D and is flushed when the client leaves, the
                      agent hook runs in each router namespace with its bpffs, `up` twice is
                      harmless, `down` leaves nothing behind.
  lab_test.py crash   `up` killed with SIGKILL half-way; `down` still removes everything.
  lab_test.py bad     bad topology files and arguments: clear error, exit 2, nothing created.

Needs root and FRR (scripts/install-deps.sh).  Exit 77 (ctest: skipped) when not root.
Uses Debian's /usr/bin/python3 on purpose: ospfclient.py breaks on Python >= 3.11.5.
"""

import heapq
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "scripts", "lab")
TOPOS = os.path.join(ROOT, "scripts", "topologies")
STATE_ROOT = "/run/anychain-lab"
OSPFCLIENT = "/usr/lib/frr/ospfclient.py"
DEBIAN_PYTHON = "/usr/bin/python3"

failures = []


def check(cond, what):
    if cond:
        print(f"ok   {what}", flush=True)
    else:
        print(f"FAIL {what}", flush=True)
        failures.append(what)
    return cond


def lab(*args, timeout=120):
    p = subprocess.run([DEBIAN_PYTHON, LAB, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def vtysh_json(prefix, router, command):
    d = f"{STATE_ROOT}/{prefix}/{router}"
    out = subprocess.run(["vtysh", "--vty_socket", d, "--config_dir", d, "-c", command],
                         stdout=subprocess.PIPE, text=True, check=True, timeout=10).stdout
    return json.loads(out)


def namespaces(prefix):
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"acl-{prefix}-"))


def processes_mentioning(needles):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                c = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in c for n in needles):
            out.append((int(d), c.strip()))
    return out


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(path)]


def running(pid):
    """True for a live process (a zombie waiting for init to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def assert_nothing_left(prefix, extra_pids=()):
    sd = f"{STATE_ROOT}/{prefix}"
    check(namespaces(prefix) == [], f"no namespace acl-{prefix}-* left ({namespaces(prefix)})")
    procs = processes_mentioning([f"acl-{prefix}-", sd + "/"])
    check(procs == [], f"no process mentioning the lab left ({procs})")
    live = [p for p in extra_pids if running(p)]
    check(live == [], f"recorded pids are gone ({live})")
    check(not os.path.exists(sd), f"state dir {sd} removed")
    check(mounts_under(sd) == [], f"no mount left under {sd}")
    rundirs = [n for n in os.listdir("/var/run/frr") if n.startswith(f"acl-{prefix}-")]
    check(rundirs == [], f"no /var/run/frr/acl-{prefix}-* left ({rundirs})")


def unique_prefix(tag):
    return f"{tag}{os.getpid() % 100000}"


# ---------------------------------------------------------------------------------------------


def spf(topo, src):
    """Independent Dijkstra over the topology file: router -> cost from src."""
    adj = {r["name"]: [] for r in topo["router"]}
    for l in topo["link"]:
        adj[l["a"]].append((l["b"], l["cost"]))
        adj[l["b"]].append((l["a"], l["cost"]))
    dist = {src: 0}
    first_hop = {src: None}
    heap = [(0, src, None)]
    while heap:
        d, u, fh = heapq.heappop(heap)
        if d > dist.get(u, 1 << 30):
            continue
        for v, c in adj[u]:
            nd = d + c
            if nd < dist.get(v, 1 << 30):
                dist[v] = nd
                first_hop[v] = fh or v
                heapq.heappush(heap, (nd, v, fh or v))
    return dist, first_hop


def test_routes(prefix, topo):
    rid = {r["name"]: r["router_id"] for r in topo["router"]}
    st = json.loads(lab("status", "--prefix", prefix, "--json")[1])
    for r in topo["router"]:
        me = r["name"]
        routes = vtysh_json(prefix, me, "show ip ospf route json")
        dist, first_hop = spf(topo, me)
        for other, cost in dist.items():
            if other == me:
                continue
            pfx = f"{rid[other]}/32"
            got = routes.get(pfx)
            if not check(got is not None, f"{me}: OSPF route to {other}'s loopback {pfx}"):
                continue
            check(got["cost"] == cost, f"{me}: cost to {other} is {cost} (got {got['cost']})")
            vias = sorted(n.get("via", "") for n in got["nexthops"])
            check(vias == [f"to-{first_hop[other]}"],
                  f"{me}: {other} reached via to-{first_hop[other]} (got {vias})")
        # Source and sink subnets are passive OSPF interfaces with cost 10 by default.
        for h in st["hosts"]:
            want = dist[h["router"]] + h["cost"]
            got = routes.get(h["subnet"])
            check(got is not None and got["cost"] == want,
                  f"{me}: route to {h['kind']} {h['name']} subnet {h['subnet']} cost {want} "
                  f"(got {got and got['cost']})")
        # And the kernel FIB got them from zebra.
        fib = subprocess.run(["ip", "-n", f"acl-{prefix}-{me}", "-4", "route", "show",
                              "proto", "ospf"], stdout=subprocess.PIPE, text=True).stdout
        for other in dist:
            if other != me:
                check(re.search(rf"^{re.escape(rid[other])} .*dev to-{first_hop[other]}", fib,
                                re.M) is not None,
                      f"{me}: kernel route to {rid[other]} via to-{first_hop[other]}")


def opaque_lsas(prefix, router):
    data = vtysh_json(prefix, router, "show ip ospf database opaque-area json")
    return [l for l in data.get("areaLocalOpaqueLsa", {}).get("areas", {}).get("0.0.0.0", [])]


def test_opaque(prefix, topo, origin="A"):
    rid = {r["name"]: r["router_id"] for r in topo["router"]}
    payload = "a1c5000100000096"  # arbitrary 8 bytes
    otype, oid = 200, 7
    lsid = f"{otype}.0.0.{oid}"
    client = subprocess.Popen(
        ["ip", "netns", "exec", f"acl-{prefix}-{origin}", DEBIAN_PYTHON, OSPFCLIENT,
         "--server", "127.0.0.1", f"add,10,0.0.0.0,{otype},{oid},{payload}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        others = [r["name"] for r in topo["router"] if r["name"] != origin]
        seen = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(seen) < len(others):
            for o in others:
                for l in opaque_lsas(prefix, o):
                    if (l["linkStateId"] == lsid and l["advertisingRouter"] == rid[origin]
                            and l.get("lsaAge", 0) < 3600):
                        seen[o] = l
            time.sleep(0.2)
        check(client.poll() is None, "ospfclient.py still connected")
        for o in others:
            l = seen.get(o)
            check(l is not None, f"type-10 opaque LSA {lsid} from {origin} in {o}'s LSDB")
            if l:
                check(l["opaqueData"] == payload,
                      f"{o}: opaque payload is {payload} (got {l['opaqueData']})")
    finally:
        client.send_signal(signal.SIGTERM)
        try:
            out, _ = client.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            client.kill()
            out, _ = client.communicate()
    if failures:
        print(out[-3000:])
    # FRR flushes the LSAs of a client that disconnects (design/frr-ospf-api.md).
    deadline = time.monotonic() + 15
    gone = False
    while time.monotonic() < deadline and not gone:
        gone = all(not any(l["linkStateId"] == lsid and l.get("lsaAge", 0) < 3600
                           for l in opaque_lsas(prefix, o)) for o in others)
        time.sleep(0.2)
    check(gone, f"opaque LSA {lsid} flushed everywhere after the client left")


def test_paper():
    prefix = unique_prefix("t")
    topo_path = os.path.join(TOPOS, "paper-fig3.toml")
    with open(topo_path, "rb") as f:
        topo = tomllib.load(f)
    hook = ("sh -c 'echo {router} {ns} {router_id} {prefix} > {statedir}/hook.out; "
            "stat -f -c %T /sys/fs/bpf >> {statedir}/hook.out; "
            "ip -o -4 addr show dev lo >> {statedir}/hook.out; exec sleep 600'")
    agent_pids = []
    t0 = time.monotonic()
    try:
        rc, out, err = lab("up", topo_path, "--prefix", prefix, "--timeout", "30",
                           "--agent-cmd", hook)
        print(err, end="")
        if not check(rc == 0, f"lab up paper-fig3 (rc {rc})"):
            return
        check(time.monotonic() - t0 < 30, f"up took {time.monotonic() - t0:.1f}s < 30s")

        rc, out, _ = lab("status", "--prefix", prefix, "--json")
        st = json.loads(out)
        check(rc == 0 and st["status"] == "up", "status --json says up")
        want_ns = sorted([f"acl-{prefix}-{r['name']}" for r in topo["router"]]
                         + [f"acl-{prefix}-{v['router']}-{v['name']}" for v in topo["vnf"]]
                         + [f"acl-{prefix}-{h['name']}" for h in topo["source"] + topo["sink"]])
        check(st["namespaces"] == want_ns, f"namespaces {want_ns} (got {st['namespaces']})")
        for name, rs in st["routers"].items():
            check(all(d["alive"] for d in rs["daemons"].values()), f"{name}: zebra, ospfd alive")
            check(all(rs["neighbors"].get(n, {}).get("state", "").startswith("Full")
                      for n in rs["expected_neighbors"]) and rs["expected_neighbors"],
                  f"{name}: neighbours {rs['expected_neighbors']} Full")
            check(rs["agent"] and rs["agent"]["alive"], f"{name}: agent hook alive")
            if rs["agent"]:
                agent_pids.append(rs["agent"]["pid"])
            with open(f"{STATE_ROOT}/{prefix}/{name}/hook.out") as f:
                hook_out = f.read()
            check(hook_out.startswith(f"{name} acl-{prefix}-{name} {rs['router_id']} {prefix}\n"),
                  f"{name}: hook placeholders expanded ({hook_out.splitlines()[:1]})")
            check("\nbpf_fs\n" in hook_out, f"{name}: hook sees a bpffs on /sys/fs/bpf")
            check(f"inet {rs['loopback']}/32" in hook_out,
                  f"{name}: hook runs in the router namespace (lo has {rs['loopback']})")
            fwd = subprocess.run(["ip", "netns", "exec", f"acl-{prefix}-{name}", "sysctl", "-n",
                                  "net.ipv4.ip_forward"], stdout=subprocess.PIPE,
                                 text=True).stdout.strip()
            check(fwd == "1", f"{name}: ip_forward=1")

        test_routes(prefix, topo)
        test_opaque(prefix, topo)

        # Traffic from the source reaches the far routers' loopbacks through the lab.
        ping = subprocess.run(["ip", "netns", "exec", f"acl-{prefix}-src", "ping", "-c1", "-W2",
                               topo["router"][1]["router_id"]], stdout=subprocess.PIPE)
        check(ping.returncode == 0, "source pings B's loopback")

        rc, out, err = lab("up", topo_path, "--prefix", prefix)
        check(rc == 0 and "already up" in out, f"second up is harmless (rc {rc}: {out}{err})")
        rc, _, _ = lab("wait-converged", "--prefix", prefix, "--timeout", "10")
        check(rc == 0, "wait-converged")

        # A dead daemon is reported, and `up` refuses to paper over it.
        d_pid = st["routers"]["D"]["daemons"]["ospfd"]["pid"]
        os.kill(d_pid, signal.SIGKILL)
        time.sleep(0.3)
        st = json.loads(lab("status", "--prefix", prefix, "--json")[1])
        check(not st["routers"]["D"]["daemons"]["ospfd"]["alive"], "status shows D's ospfd dead")
        rc, _, err = lab("up", topo_path, "--prefix", prefix)
        check(rc == 2 and "ospfd of router D not running" in err,
              f"up on an unhealthy lab fails clearly (rc {rc}: {err.strip()})")
        rc, _, err = lab("wait-converged", "--prefix", prefix, "--timeout", "1")
        check(rc == 2 and "did not converge" in err, "wait-converged times out with an error")
    finally:
        rc, out, err = lab("down", "--prefix", prefix)
        check(rc == 0, f"lab down (rc {rc}: {err.strip()[-500:]})")
    assert_nothing_left(prefix, agent_pids)
    check(time.monotonic() - t0 < 90, f"whole test took {time.monotonic() - t0:.1f}s < 90s")


def test_crash():
    prefix = unique_prefix("c")
    topo_path = os.path.join(TOPOS, "paper-fig3.toml")
    # Kill `up` at several points of the build; `down` must always clean up.
    for delay in (0.15, 0.5, 0.9):
        p = subprocess.Popen([DEBIAN_PYTHON, LAB, "up", topo_path, "--prefix", prefix],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.kill()
        p.wait()
        left = namespaces(prefix)
        print(f"     killed up after {delay}s: {len(left)} namespaces existed")
        rc, out, err = lab("up", topo_path, "--prefix", prefix)
        if left or os.path.exists(f"{STATE_ROOT}/{prefix}"):
            check(rc == 2 and "down --prefix" in err,
                  f"up after a crash asks for down (rc {rc}: {err.strip()[:200]})")
        rc, out, err = lab("down", "--prefix", prefix)
        check(rc == 0, f"down after crash at {delay}s (rc {rc}: {err.strip()[-300:]})")
        assert_nothing_left(prefix)
    # Journal lost (state dir wiped by hand): down still finds everything by prefix.
    rc, _, err = lab("up", os.path.join(TOPOS, "two-routers.toml"), "--prefix", prefix)
    check(rc == 0, f"up two-routers (rc {rc}: {err.strip()[-300:]})")
    subprocess.run(["umount", "-l", f"{STATE_ROOT}/{prefix}/R1/bpffs",
                    f"{STATE_ROOT}/{prefix}/R2/bpffs"], check=False)
    subprocess.run(["rm", "-rf", f"{STATE_ROOT}/{prefix}"], check=True)
    rc, _, err = lab("down", "--prefix", prefix)
    check(rc == 0, f"down without a state file (rc {rc}: {err.strip()[-300:]})")
    assert_nothing_left(prefix)
    # A router namespace deleted by hand: its FRR keeps running in an anonymous namespace and
    # is found by its command line.
    rc, _, err = lab("up", os.path.join(TOPOS, "two-routers.toml"), "--prefix", prefix)
    check(rc == 0, f"up two-routers again (rc {rc}: {err.strip()[-300:]})")
    frr_r1 = [pid for pid, c in processes_mentioning([f"-N acl-{prefix}-R1 "])]
    check(len(frr_r1) == 2, f"zebra and ospfd of R1 found ({frr_r1})")
    subprocess.run(["ip", "netns", "del", f"acl-{prefix}-R1"], check=True)
    check(all(running(p) for p in frr_r1), "R1's FRR outlives its deleted namespace")
    rc, _, err = lab("down", "--prefix", prefix)
    check(rc == 0, f"down with a namespace deleted by hand (rc {rc}: {err.strip()[-300:]})")
    assert_nothing_left(prefix, frr_r1)


BAD = [
    ("unknown router in a link",
     '[[router]]\nname="A"\nrouter_id="10.0.0.1"\n[[link]]\na="A"\nb="Z"\ncost=5\n',
     "unknown router 'Z'"),
    ("duplicate router name",
     '[[router]]\nname="A"\nrouter_id="10.0.0.1"\n[[router]]\nname="A"\nrouter_id="10.0.0.2"\n',
     "duplicate name 'A'"),
    ("duplicate router id",
     '[[router]]\nname="A"\nrouter_id="10.0.0.1"\n[[router]]\nname="B"\nrouter_id="10.0.0.1"\n',
     "duplicate router_id 10.0.0.1"),
    ("cost 0", 'ROUTERS[[link]]\na="A"\nb="B"\ncost=0\n', "link A-B cost: 0 must be"),
    ("cost too big", 'ROUTERS[[link]]\na="A"\nb="B"\ncost=70000\n', "cost: 70000 must be"),
    ("cost not a number", 'ROUTERS[[link]]\na="A"\nb="B"\ncost="x"\n', "cost: 'x' must be"),
    ("missing cost", 'ROUTERS[[link]]\na="A"\nb="B"\n', "missing key(s) cost"),
    ("self link", 'ROUTERS[[link]]\na="A"\nb="A"\ncost=1\n', "two different routers"),
    ("duplicate link", 'ROUTERS[[link]]\na="A"\nb="B"\ncost=1\n[[link]]\na="B"\nb="A"\ncost=2\n',
     "duplicate link between B and A"),
    ("bad router id", '[[router]]\nname="A"\nrouter_id="10.0.0.300"\n',
     "'10.0.0.300' is not an IPv4 address"),
    ("bad name", '[[router]]\nname="A-1"\nrouter_id="10.0.0.1"\n', "name 'A-1' must match"),
    ("name too long", '[[router]]\nname="Averyveryverylong"\nrouter_id="10.0.0.1"\n',
     "longer than 12"),
    ("unknown key", '[[router]]\nname="A"\nrouter_id="10.0.0.1"\ncolour="red"\n',
     "unknown key(s) colour"),
    ("no routers", '[lab]\nname="x"\n', "missing key(s) router"),
    ("not TOML", '[[router]\nname=\n', "not valid TOML"),
    ("unknown service", 'ROUTERS[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\n'
     'instance_id=1\n', "unknown service 'fw'"),
    ("vnf on unknown router", 'ROUTERS[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\n'
     'name="v"\nrouter="Q"\nservice="fw"\ncapacity=1\ninstance_id=1\n', "unknown router 'Q'"),
    ("duplicate instance id", 'ROUTERS[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
     '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n'
     '[[vnf]]\nname="w"\nrouter="B"\nservice="fw"\ncapacity=1\ninstance_id=1\n',
     "instance_id 1 already used by vnf 'v'"),
    ("nsh_aware not bool", 'ROUTERS[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
     '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\nnsh_aware="yes"\n',
     "nsh_aware must be true or false"),
    ("overlapping subnets", 'ROUTERS[[router]]\nname="C"\nrouter_id="10.0.0.3"\n'
     '[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.1.0.0/30"\n'
     '[[link]]\na="A"\nb="C"\ncost=1\nsubnet="10.1.0.0/31"\n', "overlaps 10.1.0.0/30"),
    ("subnet with host bits", 'ROUTERS[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.1.0.1/30"\n',
     "is not an IPv4 subnet"),
    ("anycast inside a link subnet", 'ROUTERS[[link]]\na="A"\nb="B"\ncost=1\n'
     'subnet="10.1.0.0/30"\n[[service]]\nname="fw"\nanycast="10.1.0.1"\n',
     "anycast 10.1.0.1 lies in subnet 10.1.0.0/30 of link A-B"),
    ("source and router share a name", 'ROUTERS[[source]]\nname="A"\nrouter="B"\n',
     "duplicate name 'A'"),
]
ROUTERS = ('[[router]]\nname="A"\nrouter_id="10.0.0.1"\n'
           '[[router]]\nname="B"\nrouter_id="10.0.0.2"\n')


def test_bad():
    prefix = unique_prefix("b")
    with tempfile.TemporaryDirectory() as tmp:
        for what, text, msg in BAD:
            path = os.path.join(tmp, re.sub(r"\W+", "_", what) + ".toml")
            with open(path, "w") as f:
                f.write(text.replace("ROUTERS", ROUTERS))
            for cmd in (["check", path], ["up", path, "--prefix", prefix]):
                rc, out, err = lab(*cmd)
                check(rc == 2 and msg in err and path in err,
                      f"{what}: `{cmd[0]}` exits 2 naming the file and {msg!r} "
                      f"(rc {rc}: {err.strip()})")
            check(namespaces(prefix) == [] and not os.path.exists(f"{STATE_ROOT}/{prefix}"),
                  f"{what}: nothing created")
        rc, _, err = lab("check", os.path.join(tmp, "nope.toml"))
        check(rc == 2 and "no such topology file" in err, "missing file: clear error")
    good = os.path.join(TOPOS, "two-routers.toml")
    rc, _, err = lab("up", good, "--prefix", "a-b")
    check(rc == 2 and "--prefix 'a-b'" in err, f"bad prefix rejected ({err.strip()})")
    rc, _, err = lab("up", good, "--prefix", prefix, "--agent-cmd", "agent {nope}")
    check(rc == 2 and "unknown placeholder {nope}" in err,
          f"bad --agent-cmd placeholder rejected ({err.strip()})")
    check(namespaces(prefix) == [] and not os.path.exists(f"{STATE_ROOT}/{prefix}"),
          "bad arguments: nothing created")
    rc, out, _ = lab("--help")
    check(rc == 0 and "topology" in out.lower() and "--agent-cmd" in out, "--help teaches")
    rc, out, _ = lab("status", "--prefix", prefix)
    check(rc == 3 and "not up" in out, "status of an absent lab: exit 3, 'not up'")
    for name in ("paper-fig3.toml", "two-routers.toml"):
        rc, _, err = lab("check", os.path.join(TOPOS, name))
        check(rc == 0, f"shipped {name} is valid ({err.strip()})")


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("paper", "crash", "bad"):
        sys.exit(f"usage: {sys.argv[0]} paper|crash|bad")
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces, FRR)")
        sys.exit(77)
    for exe in ("/usr/lib/frr/zebra", "/usr/lib/frr/ospfd", "/usr/bin/vtysh", OSPFCLIENT):
        if not os.path.exists(exe):
            print(f"FAIL {exe} missing: run scripts/install-deps.sh")
            sys.exit(1)
    {"paper": test_paper, "crash": test_crash, "bad": test_bad}[sys.argv[1]]()
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
