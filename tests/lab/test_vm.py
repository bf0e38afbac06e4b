"""lablib.vm and lablib.plumbing: the VM lab's plan of NICs, taps and bridges, the management
addresses, the node script a guest runs, and the commands both backends build a router's side with.
Expected values worked out by hand from the rules in docs/lab.md ("VM lab")."""
import os
import shlex
import subprocess
import tomllib

import pytest

from lablib import plumbing, vm
from lablib.names import LabError, router_dir
from lablib.topology import resolve_topology

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def paper():
    with open(os.path.join(SRC, "scripts", "topologies", "paper-fig3.toml"), "rb") as f:
        return resolve_topology(tomllib.load(f), "paper-fig3.toml")


def test_link_local_is_the_kernels_eui64():
    # fe80:: + MAC with ff:fe in the middle and the universal/local bit flipped (RFC 4291 App. A)
    assert vm.link_local("02:ac:02:00:00:00") == "fe80::ac:2ff:fe00:0"
    assert vm.link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"
    assert vm.link_local("02:ac:02:0a:00:00") == "fe80::ac:2ff:fe0a:0"


def test_nic_plan_of_the_paper_topology():
    plan = vm.nic_plan(paper())
    assert list(plan) == ["A", "B", "C", "D"]
    # A is link a of all three links: taps l0a l1a l2a on bridges l0 l1 l2, NICs in link order
    assert [(n["name"], n["tap"], n["bridge"], n["mac"], n["address"]) for n in plan["A"]["nics"]] == [
        ("to-B", "l0a", "l0", "02:ac:01:00:00:00", "10.234.0.1/30"),
        ("to-C", "l1a", "l1", "02:ac:01:00:01:00", "10.234.0.5/30"),
        ("to-D", "l2a", "l2", "02:ac:01:00:02:00", "10.234.0.9/30")]
    assert [(n["name"], n["tap"], n["mac"], n["address"]) for n in plan["D"]["nics"]] == [
        ("to-A", "l2b", "02:ac:01:03:00:00", "10.234.0.10/30")]
    assert plan["C"]["mgmt"] == {"tap": "m2", "mac": "02:ac:02:02:00:00", "addr": "fe80::ac:2ff:fe02:0"}
    macs = [n["mac"] for p in plan.values() for n in p["nics"]] + [p["mgmt"]["mac"] for p in plan.values()]
    assert len(macs) == len(set(macs)) and all(int(m[:2], 16) & 0x02 and not int(m[:2], 16) & 0x01 for m in macs), \
        "unique, locally administered, unicast"
    taps = [n["tap"] for p in plan.values() for n in p["nics"]] + [p["mgmt"]["tap"] for p in plan.values()]
    assert all(len(t) <= 15 for t in taps) and len(taps) == len(set(taps))


def test_too_many_routers_for_the_mac_plan():
    topo = {"routers": {f"R{i}": {} for i in range(vm.MAX_ROUTERS + 1)}, "links": []}
    with pytest.raises(LabError, match="at most 200 routers"):
        vm.nic_plan(topo)


def node_script(rname):
    t = paper()
    return vm.node_script(t, "p", rname, vm.nic_plan(t))


def test_node_script_is_valid_bash_with_the_nodes_settings():
    s = node_script("B")
    r = subprocess.run(["bash", "-n"], input=s, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["bash", "-c", s + '\necho "$NODE_ROUTER|$NODE_STATEDIR|$NODE_SHARE|${NODE_NICS[*]}|'
                          '$NODE_MGMT_ADDR"'], capture_output=True, text=True, check=True).stdout.strip()
    assert out == (f"B|{router_dir('p', 'B')}|{router_dir('p', 'B')}/share|02:ac:01:01:00:00 to-A|"
                   "fe80::ac:2ff:fe01:0")


def function_body(script, name):
    lines = script.splitlines()
    i = lines.index(f"{name}() {{")
    j = lines.index("}", i)
    return [shlex.split(l.strip()) for l in lines[i + 1:j]]


def test_node_script_builds_what_the_netns_lab_builds():
    """The guest runs the netns lab's own plumbing, with the router as the guest's namespace."""
    t = paper()
    s = node_script("B")
    assert function_body(s, "node_links") == [
        ["step", "ip", "addr", "add", "10.234.0.2/30", "dev", "to-A"], ["step", "ip", "link", "set", "to-A", "up"]]
    plumb = function_body(s, "node_plumb")
    want = plumbing.router_steps(t["routers"]["B"], None) + plumbing.local_steps(t, "p", "B", None)
    assert plumb == [["step", *argv] for _, argv in want]
    assert ["step", "ip", "link", "add", "vnf-vnfB", "type", "veth", "peer", "name", "eth0", "netns",
            "acl-p-B-vnfB"] in plumb
    assert ["step", "ip", "netns", "exec", "acl-p-B-vnfB", "sysctl", "-q", "-w", "net.ipv4.ip_forward=0",
            "net.ipv6.conf.all.forwarding=0", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"] in plumb
    frr = function_body(s, "node_frr")
    d = router_dir("p", "B")
    assert frr[0] == ["node_frr_configs"]
    assert frr[1][:4] == ["node_daemon", "zebra", f"{d}/zebra.pid", f"{d}/zebra.vty"]
    assert frr[2][:2] == ["node_daemon", "ospfd"] and "-a" in frr[2]


def test_plumbing_commands_in_a_namespace_and_in_the_nodes_own():
    h = {"name": "src", "router": "A", "router_if": "h-src", "host_if": "eth0", "router_addr": "10.0.0.1/30",
         "host_addr": "10.0.0.2/30", "gateway": "10.0.0.1"}
    ns_steps = [argv for _, argv in plumbing.host_steps("p", h, "acl-p-A")]
    own = [argv for _, argv in plumbing.host_steps("p", h, None)]
    assert ["ip", "-n", "acl-p-A", "link", "add", "h-src", "type", "veth", "peer", "name", "eth0", "netns",
            "acl-p-src"] in ns_steps
    assert ["ip", "link", "add", "h-src", "type", "veth", "peer", "name", "eth0", "netns", "acl-p-src"] in own
    assert ["ip", "netns", "exec", "acl-p-src", "ethtool", "-K", "eth0", "tx", "off"] in own
    # the host side is the only difference
    assert len(ns_steps) == len(own)
    journal = [e for e, _ in plumbing.host_steps("p", h, "acl-p-A") if e]
    assert [e["kind"] for e in journal] == ["netns", "veth"]


def test_vm_argv_boots_the_node_on_its_taps():
    t = paper()
    plan = vm.nic_plan(t)
    argv = vm.vm_argv("p", "A", plan, vm.DEFAULTS)
    assert argv[0] == vm.VM_RUN
    taps = [argv[i + 1] for i, a in enumerate(argv) if a == "--tap"]
    assert taps == ["l0a,mac=02:ac:01:00:00:00", "l1a,mac=02:ac:01:00:01:00", "l2a,mac=02:ac:01:00:02:00",
                    "m0,mac=02:ac:02:00:00:00"]
    opt = dict(zip(argv[1:argv.index("--")], argv[2:argv.index("--")]))
    assert opt["--cpus"] == "1" and opt["--memory"] == "256M" and opt["--timeout"] == "0"
    assert opt["--rwdir"] == f"{router_dir('p', 'A')}/share" and opt["--rundir"] == f"{router_dir('p', 'A')}/vm"
    assert argv[argv.index("--") + 1:] == ["/bin/bash", vm.NODE_INIT, f"{router_dir('p', 'A')}/share/node.sh"]


@pytest.mark.parametrize("script", ["node-init", "node-ctl"])
def test_guest_scripts_parse(script):
    path = os.path.join(SRC, "scripts", "lablib", "guest", script)
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    assert os.access(path, os.X_OK)
