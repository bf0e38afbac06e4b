"""A netns lab with real FRR driven only through the `anychain` CLI (pytest; fixtures in
conftest.py).

The agents start with a bare config (node and OSPF only). Everything else goes through the CLI:
attach the interfaces, add a service, an instance, a chain and a policy, send traffic, read
flows and stats as JSON, then detach everything, stop the agents and flush: no XDP program is
left on any interface and no pin under the routers' bpffs. Bad input is refused with the exit
codes scripts rely on (1 runtime error, 2 usage, 3 daemon not running).
Each step is a fixture that runs the CLI commands and keeps what they returned; the tests check
it, in file order (a later step builds on the earlier ones). Root only (exit 77 otherwise).
"""
import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from labkit import LAB, LAB_AGENT, resolved_topology, run, wait_udp_bound, wait_until

LAB_KIND = "c"  # lab prefix actc<pid>
LAB_AGENT_ARGS = ["--bare"]
TOPO = resolved_topology()
ROUTERS = sorted(TOPO["routers"])
SINK = [h for h in TOPO["hosts"] if h["kind"] == "sink"][0]
SRC = [h for h in TOPO["hosts"] if h["kind"] == "source"][0]
VNF = [v for v in TOPO["vnfs"] if v["router"] == "B"][0]
# every attach the test makes, (router, interface, classify): each interface of each router (links,
# source and sink; not the VNF veths: anychaind attaches its instances' veths itself), then the
# source's interface again, classifying
ATTACHES = [(r, i["name"], False) for r in ROUTERS for i in TOPO["routers"][r]["interfaces"] if i["kind"] != "vnf"] + \
    [(SRC["router"], SRC["router_if"], True)]
ATTACHED = sorted({(r, i) for r, i, _ in ATTACHES})


class Cli:
    """`anychain` against a router's daemon (or, in_ns, inside its namespace with its bpffs);
    every call is kept as (args, exit status, stdout, stderr)."""

    def __init__(self, lab, build):
        self.lab, self.build = lab, build

    def sock(self, router):
        return f"{self.lab.state}/{router}/anychaind.sock"

    def __call__(self, router, *args, in_ns=False):
        cmd = [self.build.cli, "--socket", self.sock(router), *args]
        if in_ns:
            cmd = [LAB, "exec", "--prefix", self.lab.prefix, router, "--", *cmd]
        r = run(cmd, check=False)
        return SimpleNamespace(args=args, rc=r.returncode, out=r.stdout, err=r.stderr.strip())

    def json(self, router, *args):
        r = self(router, *args, "--json")
        return json.loads(r.out) if r.rc == 0 else None


def ran(r, rc=0):
    """Assert a kept CLI call exited with rc (its stderr in the message)."""
    assert r.rc == rc, f"anychain {' '.join(r.args)} -> exit {r.rc} (want {rc}): {r.err}"


@pytest.fixture(scope="module")
def cli(paper_lab, build):
    return Cli(paper_lab, build)


# usage and runtime errors, with the exit codes scripts rely on

@pytest.mark.parametrize("args,rc", [(("attach",), 2), (("frobnicate",), 2), (("attach", "nosuch0"), 1)],
                         ids=["attach-without-interface", "unknown-command", "attach-missing-interface"])
def test_exit_codes(cli, args, rc):
    ran(cli("A", *args), rc)


def test_status_without_a_daemon_exits_3(cli):
    r = run([cli.build.cli, "--socket", f"{cli.lab.state}/nobody.sock", "status"], check=False)
    assert r.returncode == 3


# attach every link and VNF interface, and the source's interface as classifying

@pytest.fixture(scope="module")
def attached(cli):
    calls = {(r, i, c): cli(r, "attach", i, "--mode", "native", *(["--classify"] if c else []))
             for r, i, c in ATTACHES}
    return SimpleNamespace(calls=calls, status={name: cli.json(name, "status") for name in ROUTERS})


@pytest.mark.parametrize("router,ifname,classify", ATTACHES)
def test_attach(attached, router, ifname, classify):
    ran(attached.calls[(router, ifname, classify)])


@pytest.mark.parametrize("router", ROUTERS)
def test_status_shows_the_attachments_native(attached, router):
    st = attached.status[router]
    want = {i for r, i in ATTACHED if r == router}
    got = {i["name"] for i in st["interfaces"] if i["kind"] == "interface"}
    assert got == want
    assert all(i["mode"] == "native" for i in st["interfaces"] if i["kind"] == "interface")


@pytest.mark.parametrize("router", ROUTERS)
def test_status_shows_the_slow_path_port(attached, router):
    slow = [i for i in attached.status[router]["interfaces"] if i["kind"] == "slow path"]
    assert [(i["name"], i["mode"], i["attached"]) for i in slow] == [("ac-slow", "generic", True)]


@pytest.mark.parametrize("router", ROUTERS)
def test_status_says_whether_behind_the_dispatcher(attached, router):
    assert all(isinstance(i.get("dispatcher"), bool) for i in attached.status[router]["interfaces"])


# service, instance (on B), chain and policy: through the daemons, persisted in their config

@pytest.fixture(scope="module")
def configured(cli, attached):
    calls = {}
    for name in ROUTERS:
        calls[(name, "service")] = cli(name, "service", "add", "generic", "--id", "1", "--anycast", "10.100.0.1/32")
        calls[(name, "chain")] = cli(name, "chain", "add", "main", "--spi", "7", "--services", "generic")
        calls[(name, "policy")] = cli(name, "policy", "add", "to-sink", "--chain", "main", "--dst", SINK["subnet"],
                                      "--proto", "udp")
    calls[("B", "instance")] = cli("B", "instance", "add", VNF["name"], "--id", str(VNF["instance_id"]), "--service",
                                   "generic", "--veth", VNF["router_if"], "--capacity", "1000")
    duplicate = cli("A", "chain", "add", "main", "--spi", "8", "--services", "generic")
    with open(f"{cli.lab.state}/B/anychaind.yaml") as f:
        conf = f.read()
    return SimpleNamespace(calls=calls, duplicate=duplicate, conf_b=conf, chains=cli.json("A", "chain", "list"))


@pytest.mark.parametrize("router,what", [(r, w) for r in ROUTERS for w in ("service", "chain", "policy")]
                         + [("B", "instance")])
def test_config_command(configured, router, what):
    ran(configured.calls[(router, what)])


def test_duplicate_chain_name_is_refused(configured):
    ran(configured.duplicate, 1)


def test_config_file_holds_the_cli_changes(configured):
    for word in ("main", VNF["name"], "to-sink"):
        assert word in configured.conf_b


def test_chain_list(configured):
    chains = configured.chains
    assert chains and chains[0]["name"] == "main" and chains[0]["spi"] == 7, chains


def test_instance_veth_attached_by_the_daemon(cli, configured):
    """No `anychain attach` for the VNF's veth: `instance add` is enough."""
    assert wait_until(lambda: VNF["router_if"] in xdp_on(cli.lab.ns("B")), 10)
    port = next(i for i in cli.json("B", "status")["interfaces"] if i["name"] == VNF["router_if"])
    assert port["kind"] == "instance veth" and port["attached"], port


def test_instance_learned_from_ospf(cli, configured):
    assert wait_until(lambda: any(i["id"] == VNF["instance_id"] for s in cli.json("A", "topology")["services"]
                                  for i in s["instances"]), 30), "A learns B's instance from OSPF"


# traffic through the chain, then flows and stats as JSON from A's pinned maps

@pytest.fixture(scope="module")
def traffic(cli, configured, module_procs, build):
    lab = cli.lab
    wait_until(lambda: any(i["id"] == VNF["instance_id"] for s in cli.json("A", "topology")["services"]
                           for i in s["instances"]), 30)
    module_procs.start(lab.ns("B", VNF["name"]), [f"{build.tools}/anychain-vnf", "--iface", "eth0", "--mode",
                                                  "nsh", "--instance-id", str(VNF["instance_id"])], os.devnull)
    sink = module_procs.start(lab.ns(SINK["name"]), [f"{build.tools}/anychain-sink", "--port", "9000", "--json",
                                                     f"{lab.state}/sink.json", "--duration", "6"], os.devnull)
    wait_udp_bound(lab.ns(SINK["name"]), 9000)
    gen = json.loads(run(["ip", "netns", "exec", lab.ns(SRC["name"]), f"{build.tools}/anychain-trafgen", "--dst",
                          SINK["host_addr"].split("/")[0], "--dport", "9000", "--flows-per-sec", "10",
                          "--flow-duration", "1", "--flow-rate", "10", "--duration", "2"]).stdout.splitlines()[-1])
    sink.wait(timeout=20)
    with open(f"{lab.state}/sink.json") as f:
        got = json.load(f)
    flows = cli("A", "flows", "--spi", "7", "--json", in_ns=True)
    stats = cli("A", "stats", "--json", in_ns=True)
    return SimpleNamespace(gen=gen, sink=got, flows=flows, stats=stats)


def test_sink_gets_every_packet(traffic):
    assert traffic.gen["packets_sent"] > 0
    assert traffic.sink["packets"] == traffic.gen["packets_sent"]


def test_flows_json(traffic):
    ran(traffic.flows)
    flows = json.loads(traffic.flows.out)
    assert len(flows) == traffic.gen["flows_started"], "one entry per flow of chain 7"
    assert all(f["instance"] == VNF["instance_id"] for f in flows)


def test_stats_json_reasons(traffic):
    ran(traffic.stats)
    st = json.loads(traffic.stats.out)
    reasons = {x["reason"]: x["packets"] for k in ("verdicts", "drops", "notes") for x in st[k]}
    assert reasons.get("classified") == traffic.gen["packets_sent"]
    assert reasons.get("fwd_remote") == traffic.gen["packets_sent"]


def test_stats_json_path_counter(traffic):
    paths = {(x["spi"], x["si"]): x["packets"] for x in json.loads(traffic.stats.out)["paths"]}
    assert paths.get((7, 255)) == traffic.gen["packets_sent"]


# SIGHUP re-reads the config file

@pytest.fixture(scope="module")
def reloaded(cli, traffic):
    state = cli.lab.state
    with open(f"{state}/A/agent.pid") as f:
        os.kill(int(f.read()), signal.SIGHUP)

    def logged():
        with open(f"{state}/A/agent.log") as f:
            return "configuration reloaded" in f.read()
    return SimpleNamespace(logged=wait_until(logged, 10), chains=cli.json("A", "chain", "list"))


def test_sighup_reloads(reloaded):
    assert reloaded.logged, "A logs 'configuration reloaded' within 10 s"


def test_chain_kept_across_the_reload(reloaded):
    assert reloaded.chains[0]["name"] == "main"


# detach everything, stop the agents, flush: nothing left behind

def xdp_on(ns):
    links = json.loads(run(["ip", "-n", ns, "-j", "-d", "link", "show"]).stdout)
    return [link["ifname"] for link in links if link.get("xdp")]


@pytest.fixture(scope="module")
def detached(cli, reloaded):
    """Detach every configured interface; the ports anychaind owns (an instance's veth, the slow
    path's end) are refused; the instance's veth is detached when the instance is removed."""
    calls = {}
    for name in ROUTERS:
        for i in cli.json(name, "status")["interfaces"]:
            if i["kind"] == "interface":
                calls[(name, i["name"])] = cli(name, "detach", i["name"])
    refused = {"veth": cli("B", "detach", VNF["router_if"]), "slow": cli("A", "detach", "ac-slow")}
    removed = cli("B", "instance", "del", VNF["name"])
    wait_until(lambda: VNF["router_if"] not in xdp_on(cli.lab.ns("B")), 10)
    return SimpleNamespace(calls=calls, refused=refused, removed=removed,
                           xdp={name: xdp_on(cli.lab.ns(name)) for name in ROUTERS})


@pytest.mark.parametrize("router,ifname", ATTACHED)
def test_detach(detached, router, ifname):
    ran(detached.calls[(router, ifname)])


def test_detach_refuses_the_ports_the_daemon_owns(detached):
    ran(detached.refused["veth"], 1)
    assert f"veth of instance '{VNF['name']}'" in detached.refused["veth"].err
    ran(detached.refused["slow"], 1)
    assert "slow path" in detached.refused["slow"].err


def test_instance_removal_detaches_its_veth(detached):
    ran(detached.removed)
    assert VNF["router_if"] not in detached.xdp["B"]


@pytest.mark.parametrize("router", ROUTERS)
def test_no_xdp_program_left(detached, router):
    assert detached.xdp[router] == ["ac-slow"], "only the slow path's end, while anychaind runs"


@pytest.fixture(scope="module")
def stopped(cli, detached, module_procs):
    """flush refused while the daemon runs; SIGTERM; then flush (D: a new agent with
    --flush-on-exit removes the pins itself when stopped); the pins left under each bpffs."""
    state = cli.lab.state
    r = SimpleNamespace(flush_running={}, stopped={}, flush={}, flush_slow={}, detach_slow={}, d_up=None,
                        d_pinned=None, left={})
    for name in ROUTERS:
        r.flush_running[name] = cli(name, "flush", in_ns=True)
        with open(f"{state}/{name}/agent.pid") as f:
            os.kill(int(f.read()), signal.SIGTERM)
    for name in ROUTERS:
        r.stopped[name] = wait_until(lambda name=name: run([cli.build.cli, "--socket", cli.sock(name), "status"],
                                                             check=False).returncode == 3, 10)
        if name == "D":
            agent = module_procs.add(subprocess.Popen(
                [LAB, "exec", "--prefix", cli.lab.prefix, "D", "--", LAB_AGENT, "run", "--bare", state, "D",
                 f"{state}/D", cli.build.anychaind, "--flush-on-exit"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            r.d_up = wait_until(lambda: run([cli.build.cli, "--socket", cli.sock("D"), "status"],
                                            check=False).returncode == 0, 15)
            r.d_pinned = os.path.exists(f"{state}/D/bpffs/anychain/ac_config")
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=15)
        else:
            # the slow path's end outlives the daemon (adopted at its next start): flush names it
            r.flush_slow[name] = cli(name, "flush", in_ns=True)
            r.detach_slow[name] = cli(name, "detach", "ac-slow", in_ns=True)
            r.flush[name] = cli(name, "flush", in_ns=True)
        top = f"{state}/{name}/bpffs"
        # maps.debug and progs.debug at a bpffs root are the kernel's own (BPF preload)
        r.left[name] = [os.path.join(root, x) for root, _, files in os.walk(top) for x in files
                        if not (root == top and x in ("maps.debug", "progs.debug"))]
    return r


@pytest.mark.parametrize("router", ROUTERS)
def test_flush_refused_while_the_daemon_runs(stopped, router):
    ran(stopped.flush_running[router], 1)


@pytest.mark.parametrize("router", ROUTERS)
def test_agent_stops_on_sigterm(stopped, router):
    assert stopped.stopped[router], f"{router}: status exits 3 within 10 s"


@pytest.mark.parametrize("router", [r for r in ROUTERS if r != "D"])
def test_flush_names_the_slow_path_left_attached(stopped, router):
    ran(stopped.flush_slow[router], 1)
    assert "ac-slow is anychaind's slow path" in stopped.flush_slow[router].err
    ran(stopped.detach_slow[router])


@pytest.mark.parametrize("router", [r for r in ROUTERS if r != "D"])
def test_flush(stopped, router):
    ran(stopped.flush[router])


def test_flush_on_exit_agent_comes_up(stopped):
    assert stopped.d_up, "D: agent with --flush-on-exit answers within 15 s"


def test_maps_pinned_while_the_agent_runs(stopped):
    assert stopped.d_pinned


@pytest.mark.parametrize("router", ROUTERS)
def test_no_pins_left(stopped, router):
    assert stopped.left[router] == []
