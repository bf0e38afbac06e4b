"""lablib.frr: the generated zebra/ospfd configs (pure text from the resolved topology)."""
import re
import tomllib

from lablib.frr import frr_configs, frr_cmd
from lablib.names import router_dir
from lablib.topology import resolve_topology
from sample import ROUTERS

TOPO = ROUTERS + """
[lab]
hello_interval = 2
dead_interval = 9
[[link]]
a = "A"
b = "B"
cost_ab = 5
cost_ba = 500
[[service]]
name = "fw"
anycast = "10.100.0.1"
[[vnf]]
name = "v"
router = "B"
service = "fw"
capacity = 10
instance_id = 1
[[source]]
name = "s"
router = "A"
cost = 33
"""


def interface_blocks(conf: str) -> dict[str, list[str]]:
    """interface name -> its indented lines, read from the config text."""
    out = {}
    for m in re.finditer(r"^interface (\S+)\n((?: .*\n)*)exit$", conf, re.M):
        out[m.group(1)] = [l.strip() for l in m.group(2).splitlines()]
    return out


def test_one_way_costs_are_in_each_routers_startup_config():
    t = resolve_topology(tomllib.loads(TOPO), "t.toml")
    _, conf_a = frr_configs(t, "p", "A")
    _, conf_b = frr_configs(t, "p", "B")
    a, b = interface_blocks(conf_a), interface_blocks(conf_b)
    assert "ip ospf cost 5" in a["to-B"] and "ip ospf cost 500" in b["to-A"]
    for blk in (a["to-B"], b["to-A"]):
        assert {"ip ospf network point-to-point", "ip ospf area 0.0.0.0", "ip ospf hello-interval 2",
                "ip ospf dead-interval 9"} <= set(blk)
    # the source's interface is passive with the host's cost; the VNF veth is not in OSPF
    assert "ip ospf cost 33" in a["h-s"] and " passive-interface h-s" in conf_a.splitlines()
    assert "vnf-v" not in conf_b
    # router ospf with the router-id and opaque capability is in the file ospfd starts with
    assert re.search(r"^router ospf\n ospf router-id 10.0.0.2\n capability opaque\n", conf_b, re.M)


def test_daemon_command_lines():
    d = router_dir("p", "A")
    assert frr_cmd("p", "A", "ospfd") == [
        "/usr/lib/frr/ospfd", "-N", "acl-p-A", "-f", f"{d}/ospfd.conf", "-i", f"{d}/ospfd.pid",
        "-z", f"{d}/zserv.api", "--vty_socket", d, "-P", "0", "-a", "-d"]
    assert "-a" not in frr_cmd("p", "A", "zebra")
