"""lablib.topology: a TOML topology -> the resolved topology (what lab.json holds).

Expected addresses are worked out by hand from the allocation rule in docs/lab.md (explicit
subnets first; then the pool's /30s in file order links, VNF instances, sources, sinks, skipping
any /30 that overlaps a claimed subnet or holds a loopback or anycast address)."""
import os
import tomllib

import pytest

from lablib.names import LabError
from lablib.topology import expected_neighbors, load_topology, resolve_topology
from sample import ROUTERS

TOPOS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "scripts", "topologies")



def resolve(text: str, path: str = "t.toml") -> dict:
    return resolve_topology(tomllib.loads(text), path)


def test_paper_fig3_addresses():
    t = load_topology(os.path.join(TOPOS, "paper-fig3.toml"))
    # 8 items, none with an explicit subnet; loopbacks (10.255/16) and the anycast (10.100/16)
    # are outside the pool 10.234.0.0/16, so the k-th item gets 10.234.0.4k/30.
    assert [(l["a"], l["b"], l["subnet"], l["a_addr"], l["b_addr"], l["cost_ab"], l["cost_ba"])
            for l in t["links"]] == [
        ("A", "B", "10.234.0.0/30", "10.234.0.1", "10.234.0.2", 160, 160),
        ("A", "C", "10.234.0.4/30", "10.234.0.5", "10.234.0.6", 160, 160),
        ("A", "D", "10.234.0.8/30", "10.234.0.9", "10.234.0.10", 30, 30),
    ]
    assert [(v["name"], v["subnet"], v["router_addr"], v["vnf_addr"], v["router_if"]) for v in t["vnfs"]] == [
        ("vnfB", "10.234.0.12/30", "10.234.0.13/30", "10.234.0.14/30", "vnf-vnfB"),
        ("vnfC", "10.234.0.16/30", "10.234.0.17/30", "10.234.0.18/30", "vnf-vnfC"),
        ("vnfD", "10.234.0.20/30", "10.234.0.21/30", "10.234.0.22/30", "vnf-vnfD"),
    ]
    assert [(h["kind"], h["name"], h["subnet"], h["router_addr"], h["host_addr"], h["gateway"])
            for h in t["hosts"]] == [
        ("source", "src", "10.234.0.24/30", "10.234.0.25/30", "10.234.0.26/30", "10.234.0.25"),
        ("sink", "dst", "10.234.0.28/30", "10.234.0.29/30", "10.234.0.30/30", "10.234.0.29"),
    ]
    assert [i["name"] for i in t["routers"]["A"]["interfaces"]] == ["to-B", "to-C", "to-D", "h-src", "h-dst"]
    assert [i["name"] for i in t["routers"]["D"]["interfaces"]] == ["to-A", "vnf-vnfD"]
    assert t["routers"]["D"]["interfaces"][0]["address"] == "10.234.0.10/30"
    assert t["name"] == "paper-fig3" and t["area"] == "0.0.0.0"
    assert (t["hello_interval"], t["dead_interval"]) == (1, 4)
    assert t["services"] == {"generic": {"name": "generic", "anycast": "10.100.0.1"}}
    assert [v["start_after"] for v in t["vnfs"]] == [0, 0, 150]
    assert expected_neighbors(t, "A") == {"10.255.0.2": "to-B", "10.255.0.3": "to-C", "10.255.0.4": "to-D"}
    assert expected_neighbors(t, "C") == {"10.255.0.1": "to-A"}
    # MTU headroom for 1500-byte inner packets: NSH and, between routers, 36 bytes of outer headers
    assert t["mtu"] == 1600
    assert [l["mtu"] for l in t["links"]] == [1600] * 3 and [v["mtu"] for v in t["vnfs"]] == [1600] * 3


def test_mtu_per_lab_link_and_vnf():
    t = resolve(ROUTERS + '[lab]\nmtu=1560\n[[link]]\na="A"\nb="B"\ncost=1\nmtu=1500\n'
                '[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
                '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n'
                '[[vnf]]\nname="w"\nrouter="B"\nservice="fw"\ncapacity=1\ninstance_id=2\nmtu=1400\n')
    assert t["mtu"] == 1560
    assert t["links"][0]["mtu"] == 1500
    assert [(v["name"], v["mtu"]) for v in t["vnfs"]] == [("v", 1560), ("w", 1400)]


def test_two_routers_explicit_31_and_pool():
    t = load_topology(os.path.join(TOPOS, "two-routers.toml"))
    (l,) = t["links"]
    assert (l["subnet"], l["a_addr"], l["b_addr"]) == ("10.234.100.0/31", "10.234.100.0", "10.234.100.1")
    assert t["routers"]["R1"]["interfaces"][0]["address"] == "10.234.100.0/31"
    # the explicit /31 is far from the pool's start: automatic /30s start at 10.234.0.0
    assert [v["subnet"] for v in t["vnfs"]] == ["10.234.0.0/30"]
    assert [h["subnet"] for h in t["hosts"]] == ["10.234.0.4/30", "10.234.0.8/30"]
    assert t["vnfs"][0]["nsh_aware"] is False
    assert t["name"] == "two-routers"


def test_two_services():
    t = load_topology(os.path.join(TOPOS, "two-services.toml"))
    assert [(l["a"], l["b"], l["cost_ab"], l["cost_ba"]) for l in t["links"]] == [
        ("A", "B", 10, 100), ("B", "C", 10, 10), ("A", "C", 50, 50)]
    assert [(v["name"], v["run"], v["nsh_aware"], v["slot"], v["instance_id"]) for v in t["vnfs"]] == [
        ("fw1", True, True, 0, 11), ("nat1", True, False, 1, 21)]
    assert [(v["name"], v["subnet"]) for v in t["vnfs"]] == [("fw1", "10.234.0.12/30"), ("nat1", "10.234.0.16/30")]


def test_explicit_subnets_of_later_items_are_avoided_by_earlier_automatic_ones():
    t = resolve(ROUTERS + """
[lab]
pool = "10.9.0.0/24"
[[link]]
a = "A"
b = "B"
cost = 1
[[source]]
name = "s"
router = "A"
subnet = "10.9.0.0/30"
[[sink]]
name = "d"
router = "B"
""")
    assert t["links"][0]["subnet"] == "10.9.0.4/30"        # .0/30 is the source's
    assert [h["subnet"] for h in t["hosts"]] == ["10.9.0.0/30", "10.9.0.8/30"]


def test_loopbacks_and_anycasts_inside_the_pool_are_skipped():
    t = resolve("""
[lab]
pool = "10.9.0.0/24"
[[router]]
name = "A"
router_id = "10.9.0.1"
[[router]]
name = "B"
router_id = "10.0.0.2"
loopback = "10.9.0.6"
[[link]]
a = "A"
b = "B"
cost = 1
[[service]]
name = "fw"
anycast = "10.9.0.9"
[[vnf]]
name = "v"
router = "B"
service = "fw"
capacity = 5
instance_id = 7
""")
    # .0/30 holds A's loopback, .4/30 B's, .8/30 the anycast
    assert t["links"][0]["subnet"] == "10.9.0.12/30"
    assert t["vnfs"][0]["subnet"] == "10.9.0.16/30"
    assert t["routers"]["B"]["loopback"] == "10.9.0.6" and t["routers"]["B"]["router_id"] == "10.0.0.2"


@pytest.mark.parametrize("keys,ab,ba", [
    ("cost = 7", 7, 7),
    ("cost_ab = 5\ncost_ba = 50", 5, 50),
    ("cost = 7\ncost_ba = 50", 7, 50),      # the direction without its own key takes cost
    ("cost = 7\ncost_ab = 1", 1, 7),
])
def test_one_way_costs_go_to_the_outgoing_interface(keys, ab, ba):
    t = resolve(ROUTERS + f'[[link]]\na = "A"\nb = "B"\n{keys}\n')
    (l,) = t["links"]
    assert (l["cost_ab"], l["cost_ba"]) == (ab, ba)
    # A's interface to B carries A -> B; B's interface to A carries B -> A
    assert [(i["name"], i["cost"]) for i in t["routers"]["A"]["interfaces"]] == [("to-B", ab)]
    assert [(i["name"], i["cost"]) for i in t["routers"]["B"]["interfaces"]] == [("to-A", ba)]


SERVICES = ROUTERS + "".join(f'[[service]]\nname="s{i}"\nanycast="10.100.0.{i}"\n' for i in range(6))


def vnf(name, service, iid, extra=""):
    return (f'[[vnf]]\nname="{name}"\nrouter="A"\nservice="{service}"\ncapacity=1\n'
            f'instance_id={iid}\n{extra}')


def test_vnf_program_settings():
    t = resolve(SERVICES + vnf("v0", "s0", 1) + vnf("v2", "s2", 2, 'run=true\nnsh_aware=false\n')
                + vnf("v5", "s5", 3, 'run=true\nslot=3\nrun_args=["--capacity", "150", "--burst=20"]\n')
                + vnf("w2", "s2", 4, "slot=0\n"))
    got = {v["name"]: (v["run"], v["slot"], v["run_args"]) for v in t["vnfs"]}
    # the default slot is the service's position among the [[service]]s: s2 is the third
    assert got == {"v0": (False, 0, []), "v2": (True, 2, []),
                   "v5": (True, 3, ["--capacity", "150", "--burst=20"]), "w2": (False, 0, [])}


def test_defaults():
    t = resolve(ROUTERS + """
[[service]]
name = "fw"
anycast = "10.100.0.1"
[[vnf]]
name = "v"
router = "A"
service = "fw"
capacity = 5
instance_id = 1
[[sink]]
name = "d"
router = "B"
""", path="/somewhere/my-lab.toml")
    assert t["name"] == "my-lab" and t["pool"] == "10.234.0.0/16" and t["area"] == "0.0.0.0"
    assert t["vnfs"][0]["nsh_aware"] is True and t["vnfs"][0]["start_after"] == 0
    assert t["hosts"][0]["cost"] == 10
    assert t["routers"]["A"]["loopback"] == "10.0.0.1"


# Interface names are made of a fixed head and the item's name and must fit in 15 characters.
@pytest.mark.parametrize("kind,head,maxlen", [("router", "to-", 12), ("vnf", "vnf-", 11), ("source", "h-", 13)])
def test_longest_names_make_15_character_interfaces(kind, head, maxlen):
    assert len(head) + maxlen == 15
    name = "N" * maxlen
    body = ROUTERS + '[[service]]\nname="fw"\nanycast="10.100.0.1"\n'
    if kind == "router":
        body += f'[[router]]\nname="{name}"\nrouter_id="10.0.0.3"\n[[link]]\na="A"\nb="{name}"\ncost=1\n'
    elif kind == "vnf":
        body += f'[[vnf]]\nname="{name}"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n'
    else:
        body += f'[[source]]\nname="{name}"\nrouter="A"\n'
    t = resolve(body)
    ifnames = [i["name"] for r in t["routers"].values() for i in r["interfaces"]]
    assert head + name in ifnames
    with pytest.raises(LabError, match=f"name '{name}N' is longer than {maxlen} characters"):
        resolve(body.replace(f'"{name}"', f'"{name}N"'))


BAD = [
    # (what, file body, message)
    ("unknown top-level key", ROUTERS + "[[switch]]\nname='x'\n", "top level: unknown key(s) switch"),
    ("unknown [lab] key", ROUTERS + "[lab]\njumbo=9000\n", "[lab]: unknown key(s) jumbo"),
    ("unknown router key", '[[router]]\nname="A"\nrouter_id="10.0.0.1"\ncolour="red"\n',
     "[[router]] #1: unknown key(s) colour (allowed: loopback, name, router_id)"),
    ("unknown link key", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\nspeed=1500\n', "[[link]] #1: unknown key(s) speed"),
    ("lab MTU too big for XDP on a veth", ROUTERS + "[lab]\nmtu=9000\n", "[lab] mtu: 9000 must be an integer in 576..3500"),
    ("link MTU too small", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\nmtu=500\n',
     "link A-B mtu: 500 must be an integer in 576..3500"),
    ("vnf MTU not a number", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="v"\n'
     'router="A"\nservice="fw"\ncapacity=1\ninstance_id=1\nmtu="big"\n', "vnf 'v' mtu: 'big' must be an integer"),
    ("unknown vnf key", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="v"\n'
     'router="A"\nservice="fw"\ncapacity=1\ninstance_id=1\ncpu=3\n', "[[vnf]] #1: unknown key(s) cpu"),
    ("unknown sink key", ROUTERS + '[[sink]]\nname="d"\nrouter="A"\nport=9000\n', "[[sink]] #1: unknown key(s) port"),
    ("no router", '[lab]\nname="x"\n', "missing key(s) router"),
    ("empty router list", 'router = []\n', "at least one router"),
    ("router not a table", 'router = ["A"]\n', "[[router]] #1: expected a table, got str"),
    ("links not an array", 'link = 3\n' + ROUTERS, "[[link]] must be an array of tables"),
    ("name with a dash", '[[router]]\nname="A-1"\nrouter_id="10.0.0.1"\n', "name 'A-1' must match"),
    ("name starting with a digit", '[[router]]\nname="1A"\nrouter_id="10.0.0.1"\n', "name '1A' must match"),
    ("name not a string", '[[router]]\nname=5\nrouter_id="10.0.0.1"\n', "name 5 must match"),
    ("lab name not a string", ROUTERS + '[lab]\nname=5\n', "[lab] name: 5 must be a string"),
    ("duplicate router name", ROUTERS + '[[router]]\nname="A"\nrouter_id="10.0.0.3"\n', "duplicate name 'A'"),
    ("vnf named like a router", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="B"\n'
     'router="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n', "duplicate name 'B' (already used by router 'B')"),
    ("duplicate router id", '[[router]]\nname="A"\nrouter_id="10.0.0.1"\n[[router]]\nname="B"\nrouter_id="10.0.0.1"\n',
     "duplicate router_id 10.0.0.1"),
    ("loopback used twice", '[[router]]\nname="A"\nrouter_id="10.0.0.1"\n[[router]]\nname="B"\n'
     'router_id="10.0.0.2"\nloopback="10.0.0.1"\n', "address 10.0.0.1 already used by router 'A' loopback"),
    ("bad router id", '[[router]]\nname="A"\nrouter_id="10.0.0.300"\n', "'10.0.0.300' is not an IPv4 address"),
    ("IPv6 router id", '[[router]]\nname="A"\nrouter_id="fe80::1"\n', "'fe80::1' is not an IPv4 address"),
    ("unknown router in a link", ROUTERS + '[[link]]\na="A"\nb="Z"\ncost=5\n',
     "[[link]] #1 b: unknown router 'Z' (routers: A, B)"),
    ("cost 0", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=0\n', "link A-B cost: 0 must be an integer in 1..65535"),
    ("cost too big", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=65536\n', "cost: 65536 must be"),
    ("cost true", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=true\n', "cost: True must be"),
    ("cost float", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1.5\n', "cost: 1.5 must be"),
    ("missing cost", ROUTERS + '[[link]]\na="A"\nb="B"\n', "missing key(s) cost"),
    ("one direction without a cost", ROUTERS + '[[link]]\na="A"\nb="B"\ncost_ab=3\n',
     "link A-B: missing key(s) cost (or both cost_ab and cost_ba)"),
    ("cost and both directions", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\ncost_ab=3\ncost_ba=4\n',
     "link A-B: cost is unused when cost_ab and cost_ba are both given"),
    ("one-way cost 0", ROUTERS + '[[link]]\na="A"\nb="B"\ncost_ab=0\ncost_ba=4\n',
     "link A-B cost_ab: 0 must be an integer in 1..65535"),
    ("one-way cost not a number", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=3\ncost_ba="x"\n',
     "link A-B cost_ba: 'x' must be"),
    ("self link", ROUTERS + '[[link]]\na="A"\nb="A"\ncost=1\n', "two different routers"),
    ("parallel link", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\n[[link]]\na="B"\nb="A"\ncost=2\n',
     "duplicate link between B and A"),
    ("dead not above hello", ROUTERS + '[lab]\nhello_interval=4\ndead_interval=4\n',
     "dead_interval 4 must be larger than hello_interval 4"),
    ("bad area", ROUTERS + '[lab]\narea="backbone"\n', "[lab] area: 'backbone' is not an IPv4 address"),
    ("bad pool", ROUTERS + '[lab]\npool="10.0.0.1/16"\n', "[lab] pool: '10.0.0.1/16' is not an IPv4 subnet"),
    ("pool exhausted", ROUTERS + '[[router]]\nname="C"\nrouter_id="10.0.0.3"\n[lab]\npool="10.7.0.0/30"\n'
     '[[link]]\na="A"\nb="B"\ncost=1\n[[link]]\na="A"\nb="C"\ncost=1\n',
     "link A-C: address pool 10.7.0.0/30 is exhausted"),
    ("overlapping subnets", ROUTERS + '[[router]]\nname="C"\nrouter_id="10.0.0.3"\n'
     '[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.1.0.0/30"\n'
     '[[link]]\na="A"\nb="C"\ncost=1\nsubnet="10.1.0.0/31"\n',
     "link A-C: subnet 10.1.0.0/31 overlaps 10.1.0.0/30 of link A-B"),
    ("vnf subnet overlapping a sink's", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="v"\n'
     'router="A"\nservice="fw"\ncapacity=1\ninstance_id=1\nsubnet="10.1.0.0/29"\n'
     '[[sink]]\nname="d"\nrouter="B"\nsubnet="10.1.0.4/30"\n', "sink 'd': subnet 10.1.0.4/30 overlaps 10.1.0.0/29 of vnf 'v'"),
    ("subnet holding a loopback", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.0.0.0/30"\n',
     "subnet 10.0.0.0/30 contains 10.0.0.1 (router 'A' loopback)"),
    ("subnet with host bits", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.1.0.1/30"\n',
     "is not an IPv4 subnet"),
    ("subnet /32", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\nsubnet="10.1.0.1/32"\n', "is too small"),
    ("anycast inside a link subnet", ROUTERS + '[[link]]\na="A"\nb="B"\ncost=1\n'
     'subnet="10.1.0.0/30"\n[[service]]\nname="fw"\nanycast="10.1.0.1"\n',
     "anycast 10.1.0.1 lies in subnet 10.1.0.0/30 of link A-B"),
    ("anycast equal to a loopback", ROUTERS + '[[service]]\nname="fw"\nanycast="10.0.0.2"\n',
     "address 10.0.0.2 already used by router 'B' loopback"),
    ("duplicate service", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
     '[[service]]\nname="fw"\nanycast="10.9.9.8"\n', "service 'fw': duplicate service name"),
    ("unknown service", ROUTERS + '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n',
     "unknown service 'fw'"),
    ("vnf on unknown router", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\n'
     'name="v"\nrouter="Q"\nservice="fw"\ncapacity=1\ninstance_id=1\n', "unknown router 'Q'"),
    ("instance id 0", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="v"\nrouter="A"\n'
     'service="fw"\ncapacity=1\ninstance_id=0\n', "instance_id: 0 must be an integer in 1..16777215"),
    ("instance id above 24 bits", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n[[vnf]]\nname="v"\n'
     'router="A"\nservice="fw"\ncapacity=1\ninstance_id=16777216\n', "instance_id: 16777216 must be"),
    ("duplicate instance id", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
     '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\n'
     '[[vnf]]\nname="w"\nrouter="B"\nservice="fw"\ncapacity=1\ninstance_id=1\n',
     "instance_id 1 already used by vnf 'v'"),
    ("nsh_aware not bool", ROUTERS + '[[service]]\nname="fw"\nanycast="10.9.9.9"\n'
     '[[vnf]]\nname="v"\nrouter="A"\nservice="fw"\ncapacity=1\ninstance_id=1\nnsh_aware="yes"\n',
     "nsh_aware must be true or false"),
    ("run not bool", SERVICES + vnf("v", "s0", 1, 'run="yes"\n'), "vnf 'v': run must be true or false"),
    ("run_args not a list", SERVICES + vnf("v", "s0", 1, 'run_args="--capacity 5"\n'),
     "run_args must be a list of strings"),
    ("run_args with a number", SERVICES + vnf("v", "s0", 1, 'run_args=["--capacity", 5]\n'),
     "run_args must be a list of strings"),
    ("run_args setting the slot", SERVICES + vnf("v", "s0", 1, 'run_args=["--slot", "2"]\n'),
     "run_args: --slot is set by the lab"),
    ("run_args setting the mode", SERVICES + vnf("v", "s0", 1, 'run_args=["--mode=plain"]\n'),
     "run_args: --mode is set by the lab"),
    ("slot out of range", SERVICES + vnf("v", "s0", 1, "slot=4\n"), "vnf 'v' slot: 4 must be an integer in 0..3"),
    ("fifth service run without a slot", SERVICES + vnf("v", "s4", 1, "run=true\n"),
     "its service is number 5 of the chain, but anychain-vnf stamps only 4 slots"),
    ("host cost 0", ROUTERS + '[[source]]\nname="s"\nrouter="A"\ncost=0\n', "source 's' cost: 0 must be"),
]


@pytest.mark.parametrize("what,body,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_topology(what, body, msg):
    with pytest.raises(LabError) as e:
        resolve(body)
    assert msg in str(e.value)


def test_errors_name_the_file(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text(ROUTERS + '[[link]]\na="A"\nb="Z"\ncost=5\n')
    with pytest.raises(LabError, match=rf"^{p}: \[\[link\]\] #1 b: unknown router 'Z'"):
        load_topology(str(p))
    p.write_text("[[router]\nname=\n")
    with pytest.raises(LabError, match=rf"^{p}: not valid TOML"):
        load_topology(str(p))
    with pytest.raises(LabError, match="no such topology file"):
        load_topology(str(tmp_path / "nope.toml"))
