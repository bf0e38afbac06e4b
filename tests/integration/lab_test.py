"""Integration tests of scripts/lab (real network namespaces, real FRR; pytest, fixtures in
conftest.py). ctest runs each class as one test:

  TestPaperTopology  paper-fig3: OSPF routes match the link costs, an opaque LSA originated
                     through the OSPF API on A (FRR's own ospfclient.py as an independent
                     client) reaches B, C and D and is flushed when the client leaves, the
                     agent hook runs in each router namespace with its bpffs, `up` twice is
                     harmless, a dead ospfd is reported, `down` leaves nothing behind.
  TestCrashCleanup   `up` killed with SIGKILL half-way; `down` still removes everything, also
                     without its state file and with a namespace deleted by hand.
  TestBadInput       bad topology files and arguments: clear error, exit 2, nothing created.

Needs root (exit 77 otherwise) and FRR (scripts/install-deps.sh).
"""

import functools
import heapq
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import tomllib
from types import SimpleNamespace

import pytest

from labkit import (LAB, LEFTOVER_KINDS, PYTHON, STATE_ROOT, TOPOS, lab, lab_prefix, leftovers, namespaces,
                    processes_mentioning, running, vtysh_json)

OSPFCLIENT = "/usr/lib/frr/ospfclient.py"
PAPER = os.path.join(TOPOS, "paper-fig3.toml")
TWO_ROUTERS = os.path.join(TOPOS, "two-routers.toml")
with open(PAPER, "rb") as _f:
    TOPO = tomllib.load(_f)
NAMES = [r["name"] for r in TOPO["router"]]
RID = {r["name"]: r["router_id"] for r in TOPO["router"]}


@pytest.fixture(scope="module", autouse=True)
def frr_installed():
    for exe in ("/usr/lib/frr/zebra", "/usr/lib/frr/ospfd", "/usr/bin/vtysh", OSPFCLIENT):
        if not os.path.exists(exe):
            pytest.fail(f"{exe} missing: run scripts/install-deps.sh")


def spf(src):
    """Independent Dijkstra over the topology file: (router -> cost from src, first hops)."""
    adj = {r["name"]: [] for r in TOPO["router"]}
    for link in TOPO["link"]:
        adj[link["a"]].append((link["b"], link["cost"]))
        adj[link["b"]].append((link["a"], link["cost"]))
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


PAIRS = [(me, other) for me in NAMES for other in NAMES if other != me]


class TestPaperTopology:
    @pytest.fixture(scope="class")
    def paper(self):
        """paper-fig3 up with an agent hook that records what it sees; yields its status."""
        prefix = lab_prefix("p")
        hook = ("sh -c 'echo {router} {ns} {router_id} {prefix} > {statedir}/hook.out; "
                "stat -f -c %T /sys/fs/bpf >> {statedir}/hook.out; "
                "ip -o -4 addr show dev lo >> {statedir}/hook.out; exec sleep 600'")
        t0 = time.monotonic()
        rc, _, err = lab("up", PAPER, "--prefix", prefix, "--timeout", "30", "--agent-cmd", hook)
        up_time = time.monotonic() - t0
        st_rc, st_out, _ = lab("status", "--prefix", prefix, "--json")
        st = json.loads(st_out)
        p = SimpleNamespace(prefix=prefix, t0=t0, up_rc=rc, up_err=err, up_time=up_time, status_rc=st_rc, status=st,
                            agent_pids=[rs["agent"]["pid"] for rs in st["routers"].values() if rs["agent"]])
        yield p
        lab("down", "--prefix", prefix)

    def test_up(self, paper):
        assert paper.up_rc == 0, paper.up_err

    def test_up_takes_less_than_30s(self, paper):
        assert paper.up_time < 30

    def test_status_json_says_up(self, paper):
        assert paper.status_rc == 0 and paper.status["status"] == "up"

    def test_namespaces(self, paper):
        p = paper.prefix
        want = sorted([f"acl-{p}-{r['name']}" for r in TOPO["router"]]
                      + [f"acl-{p}-{v['router']}-{v['name']}" for v in TOPO["vnf"]]
                      + [f"acl-{p}-{h['name']}" for h in TOPO["source"] + TOPO["sink"]])
        assert paper.status["namespaces"] == want

    @pytest.mark.parametrize("name", NAMES)
    def test_zebra_and_ospfd_alive(self, paper, name):
        assert all(d["alive"] for d in paper.status["routers"][name]["daemons"].values())

    @pytest.mark.parametrize("name", NAMES)
    def test_neighbours_full(self, paper, name):
        rs = paper.status["routers"][name]
        assert rs["expected_neighbors"]
        for n in rs["expected_neighbors"]:
            assert rs["neighbors"].get(n, {}).get("state", "").startswith("Full"), n

    @pytest.mark.parametrize("name", NAMES)
    def test_agent_hook_alive(self, paper, name):
        agent = paper.status["routers"][name]["agent"]
        assert agent and agent["alive"]

    @staticmethod
    def hook_out(paper, name):
        with open(f"{STATE_ROOT}/{paper.prefix}/{name}/hook.out") as f:
            return f.read()

    @pytest.mark.parametrize("name", NAMES)
    def test_hook_placeholders_expanded(self, paper, name):
        rs = paper.status["routers"][name]
        out = self.hook_out(paper, name)
        assert out.startswith(f"{name} acl-{paper.prefix}-{name} {rs['router_id']} {paper.prefix}\n"), out

    @pytest.mark.parametrize("name", NAMES)
    def test_hook_sees_a_bpffs(self, paper, name):
        assert "\nbpf_fs\n" in self.hook_out(paper, name)

    @pytest.mark.parametrize("name", NAMES)
    def test_hook_runs_in_the_router_namespace(self, paper, name):
        assert f"inet {paper.status['routers'][name]['loopback']}/32" in self.hook_out(paper, name)

    @pytest.mark.parametrize("name", NAMES)
    def test_ip_forward(self, paper, name):
        fwd = subprocess.run(["ip", "netns", "exec", f"acl-{paper.prefix}-{name}", "sysctl", "-n",
                              "net.ipv4.ip_forward"], stdout=subprocess.PIPE, text=True).stdout.strip()
        assert fwd == "1"

    # OSPF routes (ospfd's and the kernel's) against an independent SPF over the topology file

    @pytest.mark.parametrize("me,other", PAIRS)
    def test_ospf_route_cost(self, paper, me, other):
        got = vtysh_json(paper.prefix, me, "show ip ospf route json").get(f"{RID[other]}/32")
        assert got is not None, f"{me}: OSPF route to {other}'s loopback"
        assert got["cost"] == spf(me)[0][other]

    @pytest.mark.parametrize("me,other", PAIRS)
    def test_ospf_route_next_hop(self, paper, me, other):
        got = vtysh_json(paper.prefix, me, "show ip ospf route json").get(f"{RID[other]}/32")
        assert got is not None, f"{me}: OSPF route to {other}'s loopback"
        assert sorted(n.get("via", "") for n in got["nexthops"]) == [f"to-{spf(me)[1][other]}"]

    @pytest.mark.parametrize("me,host", [(me, h["name"]) for me in NAMES for h in TOPO["source"] + TOPO["sink"]])
    def test_ospf_route_to_source_and_sink(self, paper, me, host):
        # source and sink subnets are passive OSPF interfaces with cost 10 by default
        h = [x for x in paper.status["hosts"] if x["name"] == host][0]
        got = vtysh_json(paper.prefix, me, "show ip ospf route json").get(h["subnet"])
        assert got is not None, f"{me}: route to {h['kind']} {host} subnet {h['subnet']}"
        assert got["cost"] == spf(me)[0][h["router"]] + h["cost"]

    @pytest.mark.parametrize("me,other", PAIRS)
    def test_kernel_route_from_zebra(self, paper, me, other):
        fib = subprocess.run(["ip", "-n", f"acl-{paper.prefix}-{me}", "-4", "route", "show", "proto", "ospf"],
                             stdout=subprocess.PIPE, text=True).stdout
        via = spf(me)[1][other]
        assert re.search(rf"^{re.escape(RID[other])} .*dev to-{via}", fib, re.M), fib

    # an opaque LSA through the OSPF API, with FRR's own client

    @pytest.fixture(scope="class")
    def opaque(self, paper):
        origin, prefix = "A", paper.prefix
        payload = "a1c5000100000096"  # arbitrary 8 bytes
        otype, oid = 200, 7
        lsid = f"{otype}.0.0.{oid}"
        others = [n for n in NAMES if n != origin]

        def lsas(router):
            data = vtysh_json(prefix, router, "show ip ospf database opaque-area json")
            return [lsa for lsa in data.get("areaLocalOpaqueLsa", {}).get("areas", {}).get("0.0.0.0", [])
                    if lsa["linkStateId"] == lsid and lsa.get("lsaAge", 0) < 3600]

        client = subprocess.Popen(
            ["ip", "netns", "exec", f"acl-{prefix}-{origin}", PYTHON, OSPFCLIENT,
             "--server", "127.0.0.1", f"add,10,0.0.0.0,{otype},{oid},{payload}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = {}
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and len(seen) < len(others):
                for o in others:
                    for lsa in lsas(o):
                        if lsa["advertisingRouter"] == RID[origin]:
                            seen[o] = lsa
                time.sleep(0.2)
            connected = client.poll() is None
        finally:
            client.send_signal(signal.SIGTERM)
            try:
                out, _ = client.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                client.kill()
                out, _ = client.communicate()
        # FRR flushes the LSAs of a client that disconnects (design/frr-ospf-api.md).
        deadline = time.monotonic() + 15
        gone = False
        while time.monotonic() < deadline and not gone:
            gone = all(not lsas(o) for o in others)
            time.sleep(0.2)
        return SimpleNamespace(payload=payload, seen=seen, connected=connected, client_out=out[-3000:], gone=gone)

    def test_ospfclient_stays_connected(self, opaque):
        assert opaque.connected, opaque.client_out

    @pytest.mark.parametrize("router", [n for n in NAMES if n != "A"])
    def test_opaque_lsa_reaches(self, opaque, router):
        assert router in opaque.seen, f"type-10 opaque LSA from A in {router}'s LSDB; client: {opaque.client_out}"

    @pytest.mark.parametrize("router", [n for n in NAMES if n != "A"])
    def test_opaque_payload(self, opaque, router):
        assert opaque.seen.get(router, {}).get("opaqueData") == opaque.payload

    def test_opaque_lsa_flushed_when_the_client_leaves(self, opaque):
        assert opaque.gone

    def test_source_pings_b(self, paper):
        ping = subprocess.run(["ip", "netns", "exec", f"acl-{paper.prefix}-src", "ping", "-c1", "-W2",
                               TOPO["router"][1]["router_id"]], stdout=subprocess.PIPE)
        assert ping.returncode == 0

    def test_second_up_is_harmless(self, paper):
        rc, out, err = lab("up", PAPER, "--prefix", paper.prefix)
        assert rc == 0 and "already up" in out, out + err

    def test_wait_converged(self, paper):
        assert lab("wait-converged", "--prefix", paper.prefix, "--timeout", "10")[0] == 0

    # a dead daemon is reported, and `up` refuses to paper over it

    @pytest.fixture(scope="class")
    def dead_ospfd(self, paper):
        os.kill(paper.status["routers"]["D"]["daemons"]["ospfd"]["pid"], signal.SIGKILL)
        time.sleep(0.3)
        return paper

    def test_status_shows_the_dead_ospfd(self, dead_ospfd):
        st = json.loads(lab("status", "--prefix", dead_ospfd.prefix, "--json")[1])
        assert not st["routers"]["D"]["daemons"]["ospfd"]["alive"]

    def test_up_on_an_unhealthy_lab_fails_clearly(self, dead_ospfd):
        rc, _, err = lab("up", PAPER, "--prefix", dead_ospfd.prefix)
        assert rc == 2 and "ospfd of router D not running" in err, err

    def test_wait_converged_times_out_with_an_error(self, dead_ospfd):
        rc, _, err = lab("wait-converged", "--prefix", dead_ospfd.prefix, "--timeout", "1")
        assert rc == 2 and "did not converge" in err, err

    # down leaves nothing behind

    @pytest.fixture(scope="class")
    def down(self, paper):
        rc, _, err = lab("down", "--prefix", paper.prefix)
        return SimpleNamespace(rc=rc, err=err, left=leftovers(paper.prefix, paper.agent_pids),
                               total=time.monotonic() - paper.t0)

    def test_down(self, down):
        assert down.rc == 0, down.err[-500:]

    @pytest.mark.parametrize("kind", LEFTOVER_KINDS)
    def test_nothing_left(self, down, kind):
        assert down.left[kind] == []

    def test_whole_class_takes_less_than_90s(self, down):
        assert down.total < 90


def killed_up(delay):
    """`up` killed with SIGKILL after `delay` s, `up` again, then `down`."""
    prefix = lab_prefix("k")
    p = subprocess.Popen([PYTHON, LAB, "up", PAPER, "--prefix", prefix], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.kill()
    p.wait()
    existed = namespaces(prefix) or os.path.exists(f"{STATE_ROOT}/{prefix}")
    up_rc, _, up_err = lab("up", PAPER, "--prefix", prefix)
    return SimpleNamespace(prefix=prefix, existed=existed, up_rc=up_rc, up_err=up_err, pids=[])


def journal_lost():
    """two-routers up, its state dir wiped by hand: `down` must find everything by prefix."""
    prefix = lab_prefix("j")
    up_rc, _, up_err = lab("up", TWO_ROUTERS, "--prefix", prefix)
    subprocess.run(["umount", "-l", f"{STATE_ROOT}/{prefix}/R1/bpffs", f"{STATE_ROOT}/{prefix}/R2/bpffs"],
                   check=False)
    subprocess.run(["rm", "-rf", f"{STATE_ROOT}/{prefix}"], check=True)
    return SimpleNamespace(prefix=prefix, up_rc=up_rc, up_err=up_err, pids=[])


def namespace_deleted():
    """A router namespace deleted by hand: its FRR keeps running in an anonymous namespace and
    `down` must find it by its command line."""
    prefix = lab_prefix("n")
    up_rc, _, up_err = lab("up", TWO_ROUTERS, "--prefix", prefix)
    frr_r1 = [pid for pid, _ in processes_mentioning([f"-N acl-{prefix}-R1 "])]
    subprocess.run(["ip", "netns", "del", f"acl-{prefix}-R1"], check=True)
    return SimpleNamespace(prefix=prefix, up_rc=up_rc, up_err=up_err, pids=frr_r1,
                           outlived=all(running(p) for p in frr_r1))


CRASHES = {f"killed-after-{d}s": functools.partial(killed_up, d) for d in (0.15, 0.5, 0.9)}
SCENARIOS = {**CRASHES, "journal-lost": journal_lost, "namespace-deleted": namespace_deleted}


@functools.cache
def cleaned(name):
    """Scenario `name`, then `down`: its record with down's status and what is left after it."""
    r = SCENARIOS[name]()
    r.down_rc, _, r.down_err = lab("down", "--prefix", r.prefix)
    r.left = leftovers(r.prefix, r.pids)
    return r


class TestCrashCleanup:
    @pytest.fixture(scope="class", autouse=True)
    def down_at_the_end(self):
        yield
        for kind in "kjn":
            lab("down", "--prefix", lab_prefix(kind))

    @pytest.mark.parametrize("name", CRASHES)
    def test_up_after_a_crash_asks_for_down(self, name):
        r = cleaned(name)
        if not r.existed:
            pytest.skip("killed before it created anything")
        assert r.up_rc == 2 and "down --prefix" in r.up_err, r.up_err[:200]

    @pytest.mark.parametrize("name", ["journal-lost", "namespace-deleted"])
    def test_up_two_routers(self, name):
        assert cleaned(name).up_rc == 0, cleaned(name).up_err[-300:]

    def test_zebra_and_ospfd_of_r1_found(self):
        assert len(cleaned("namespace-deleted").pids) == 2, cleaned("namespace-deleted").pids

    def test_frr_outlives_its_deleted_namespace(self):
        assert cleaned("namespace-deleted").outlived

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_down(self, name):
        assert cleaned(name).down_rc == 0, cleaned(name).down_err[-300:]

    @pytest.mark.parametrize("name,kind", [(n, k) for n in SCENARIOS for k in LEFTOVER_KINDS])
    def test_nothing_left(self, name, kind):
        assert cleaned(name).left[kind] == []


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


def nothing_created(prefix):
    return namespaces(prefix) == [] and not os.path.exists(f"{STATE_ROOT}/{prefix}")


class TestBadInput:
    @pytest.fixture(scope="class")
    def bad_files(self):
        """case -> path of its topology file."""
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for what, text, _ in BAD:
                paths[what] = os.path.join(tmp, re.sub(r"\W+", "_", what) + ".toml")
                with open(paths[what], "w") as f:
                    f.write(text.replace("ROUTERS", ROUTERS))
            yield paths

    @pytest.mark.parametrize("cmd", ["check", "up"])
    @pytest.mark.parametrize("what,msg", [(w, m) for w, _, m in BAD], ids=[w for w, _, _ in BAD])
    def test_bad_topology_exits_2_naming_file_and_error(self, bad_files, cmd, what, msg):
        path = bad_files[what]
        args = ["check", path] if cmd == "check" else ["up", path, "--prefix", lab_prefix("b")]
        rc, _, err = lab(*args)
        assert rc == 2 and msg in err and path in err, err.strip()

    @pytest.mark.parametrize("what", [w for w, _, _ in BAD])
    def test_bad_topology_creates_nothing(self, bad_files, what):
        prefix = lab_prefix("b")
        lab("up", bad_files[what], "--prefix", prefix)
        assert nothing_created(prefix)

    def test_missing_file(self):
        rc, _, err = lab("check", os.path.join(tempfile.gettempdir(), f"nope-{os.getpid()}.toml"))
        assert rc == 2 and "no such topology file" in err, err

    def test_bad_prefix_rejected(self):
        rc, _, err = lab("up", TWO_ROUTERS, "--prefix", "a-b")
        assert rc == 2 and "--prefix 'a-b'" in err, err

    def test_bad_agent_cmd_placeholder_rejected(self):
        rc, _, err = lab("up", TWO_ROUTERS, "--prefix", lab_prefix("b"), "--agent-cmd", "agent {nope}")
        assert rc == 2 and "unknown placeholder {nope}" in err, err

    def test_bad_arguments_create_nothing(self):
        prefix = lab_prefix("b")
        lab("up", TWO_ROUTERS, "--prefix", "a-b")
        lab("up", TWO_ROUTERS, "--prefix", prefix, "--agent-cmd", "agent {nope}")
        assert nothing_created(prefix)

    def test_help_teaches(self):
        rc, out, _ = lab("--help")
        assert rc == 0 and "topology" in out.lower() and "--agent-cmd" in out

    def test_status_of_an_absent_lab(self):
        rc, out, _ = lab("status", "--prefix", lab_prefix("b"))
        assert rc == 3 and "not up" in out, out

    @pytest.mark.parametrize("name", ["paper-fig3.toml", "two-routers.toml"])
    def test_shipped_topology_is_valid(self, name):
        rc, _, err = lab("check", os.path.join(TOPOS, name))
        assert rc == 0, err
