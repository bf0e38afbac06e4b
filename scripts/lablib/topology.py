"""The topology file: TOML -> a validated, resolved topology (a plain dict, written to
<statedir>/lab.json, which scripts/lab-agent and the tests read).

Pure: no root, no FRR, no namespaces. Every error names the item (`[[link]] #2`, `router 'A'`)
and load_topology() prefixes the file, so a user can find the line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib

from .addresses import AddressPlan, endpoints
from .names import LabError

DEFAULT_POOL = "10.234.0.0/16"
DEFAULT_AREA = "0.0.0.0"
DEFAULT_HOST_COST = 10
# Links and VNF veths: 1500-byte inner packets plus NSH (anychain builds 24 bytes for MD type 1,
# 16 for its MD type 2) plus 36 bytes of outer IPv4/UDP/VXLAN-GPE between routers: 1560; 1600
# leaves room for 40 more bytes of NSH metadata. Sources and sinks keep 1500 (the inner packet).
DEFAULT_MTU = 1600
MIN_MTU = 576
MAX_MTU = 3500  # native XDP on a veth takes frames of one page (a 4 KiB page holds ~3.5 KB)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
IFNAMSIZ = 15  # usable characters of a Linux interface name
# Names become parts of interface names: to-<router>, vnf-<vnf>, h-<host>.
ROUTER_IF, VNF_IF, HOST_IF = "to-", "vnf-", "h-"
SLOTS = 4  # served_by slots of the lab payload (include/anychain/lab_payload.h)
# anychain-vnf options the lab sets itself for a VNF it runs (run = true)
VNF_LAB_OPTIONS = ("--iface", "--mode", "--instance-id", "--slot", "--stats-json")


def _ip(value, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        raise LabError(f"{where}: {value!r} is not an IPv4 address") from None


def _net(value, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except (ValueError, TypeError) as e:
        raise LabError(f"{where}: {value!r} is not an IPv4 subnet ({e})") from None


def _name(value, where: str, maxlen: int) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise LabError(f"{where}: name {value!r} must match {NAME_RE.pattern}")
    if len(value) > maxlen:
        raise LabError(f"{where}: name {value!r} is longer than {maxlen} characters")
    return value


def _int(value, where: str, lo: int, hi: int) -> int:
    # bool is an int in Python; `cost = true` is a typo, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise LabError(f"{where}: {value!r} must be an integer in {lo}..{hi}")
    return value


def _check_keys(table, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise LabError(f"{where}: expected a table, got {type(table).__name__}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise LabError(f"{where}: unknown key(s) {', '.join(unknown)} "
                       f"(allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(table))
    if missing:
        raise LabError(f"{where}: missing key(s) {', '.join(missing)}")


def _array(raw: dict, key: str) -> list:
    items = raw.get(key, [])
    if not isinstance(items, list):
        raise LabError(f"[[{key}]] must be an array of tables")
    return items


def _link_costs(link: dict, where: str) -> tuple[int, int]:
    """(a -> b, b -> a): `cost` for both directions, `cost_ab`/`cost_ba` for one each; a
    direction without its own key takes `cost`."""
    if "cost" in link and "cost_ab" in link and "cost_ba" in link:
        raise LabError(f"{where}: cost is unused when cost_ab and cost_ba are both given; "
                       "remove one")
    costs = []
    for key in ("cost_ab", "cost_ba"):
        if key in link:
            costs.append(_int(link[key], f"{where} {key}", 1, 65535))
        elif "cost" in link:
            costs.append(_int(link["cost"], f"{where} cost", 1, 65535))
        else:
            raise LabError(f"{where}: missing key(s) cost (or both cost_ab and cost_ba)")
    return costs[0], costs[1]


def _vnf_program(v: dict, where: str, position: int) -> dict:
    """run, run_args and slot of a [[vnf]]. The default slot is the service's position in the
    topology: scripts/lab-agent's chain runs through every service in file order."""
    run = v.get("run", False)
    if not isinstance(run, bool):
        raise LabError(f"{where}: run must be true or false")
    args = v.get("run_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise LabError(f"{where}: run_args must be a list of strings (anychain-vnf options)")
    for a in args:
        if a.split("=", 1)[0] in VNF_LAB_OPTIONS:
            raise LabError(f"{where}: run_args: {a.split('=', 1)[0]} is set by the lab "
                           f"({', '.join(VNF_LAB_OPTIONS)} are)")
    if "slot" in v:
        slot = _int(v["slot"], f"{where} slot", 0, SLOTS - 1)
    else:
        slot = position
        if run and slot >= SLOTS:
            raise LabError(f"{where}: its service is number {slot + 1} of the chain, but "
                           f"anychain-vnf stamps only {SLOTS} slots: give `slot` (0..{SLOTS - 1})")
    return {"run": run, "run_args": args, "slot": slot}


def load_topology(path: str) -> dict:
    """Parse and validate a topology file; returns the resolved topology."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise LabError(f"{path}: no such topology file") from None
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"{path}: not valid TOML: {e}") from None
    try:
        return resolve_topology(raw, path)
    except LabError as e:
        raise LabError(f"{path}: {e}") from None


def resolve_topology(raw: dict, path: str) -> dict:
    """raw: the parsed TOML; path: only for the default lab name."""
    _check_keys(raw, {"lab", "router", "link", "service", "vnf", "source", "sink"},
                {"router"}, "top level")
    lab = raw.get("lab", {})
    _check_keys(lab, {"name", "pool", "area", "hello_interval", "dead_interval", "mtu"}, set(), "[lab]")
    lab_name = lab.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(lab_name, str):
        raise LabError(f"[lab] name: {lab_name!r} must be a string")
    pool = _net(lab.get("pool", DEFAULT_POOL), "[lab] pool")
    area = str(_ip(lab.get("area", DEFAULT_AREA), "[lab] area"))
    hello = _int(lab.get("hello_interval", 1), "[lab] hello_interval", 1, 65535)
    dead = _int(lab.get("dead_interval", 4), "[lab] dead_interval", 1, 65535)
    if dead <= hello:
        raise LabError(f"[lab] dead_interval {dead} must be larger than hello_interval {hello}")
    # MTU of links and VNF veths: room for 1500-byte inner packets with NSH (24 to 64 bytes as
    # anychain builds it, up to 252) and, between routers, 36 bytes of outer headers. At most
    # what native XDP on a veth accepts (one page per frame).
    mtu = _int(lab.get("mtu", DEFAULT_MTU), "[lab] mtu", MIN_MTU, MAX_MTU)

    plan = AddressPlan(pool)
    names: dict[str, str] = {}  # router, vnf, source and sink names share the netns name space

    def claim(name: str, what: str) -> None:
        if name in names:
            raise LabError(f"{what}: duplicate name {name!r} (already used by {names[name]})")
        names[name] = what

    def subnet_for(item: dict, what: str):
        if "subnet" not in item:
            return None
        net = _net(item["subnet"], f"{what} subnet")
        plan.claim_subnet(net, what)
        return net

    # Routers
    routers: dict[str, dict] = {}
    if not isinstance(raw["router"], list) or not raw["router"]:
        raise LabError("[[router]]: at least one router is needed")
    for i, r in enumerate(raw["router"]):
        where = f"[[router]] #{i + 1}"
        _check_keys(r, {"name", "router_id", "loopback"}, {"name", "router_id"}, where)
        name = _name(r["name"], where, IFNAMSIZ - len(ROUTER_IF))
        where = f"router {name!r}"
        claim(name, where)
        rid = _ip(r["router_id"], f"{where} router_id")
        lo = _ip(r.get("loopback", str(rid)), f"{where} loopback")
        if any(str(rid) == x["router_id"] for x in routers.values()):
            raise LabError(f"{where}: duplicate router_id {rid}")
        plan.claim_addr(lo, f"{where} loopback")
        routers[name] = {"name": name, "router_id": str(rid), "loopback": str(lo),
                         "interfaces": []}

    def router_ref(value, what: str) -> str:
        if value not in routers:
            raise LabError(f"{what}: unknown router {value!r} (routers: "
                           f"{', '.join(routers)})")
        return value

    # Links. Explicit subnets of every kind are claimed before any automatic one is taken, so
    # items are read first and addressed at the end.
    pairs = set()
    link_pending = []
    for i, l in enumerate(_array(raw, "link")):
        where = f"[[link]] #{i + 1}"
        _check_keys(l, {"a", "b", "cost", "cost_ab", "cost_ba", "subnet", "mtu"}, {"a", "b"}, where)
        a = router_ref(l["a"], f"{where} a")
        b = router_ref(l["b"], f"{where} b")
        where = f"link {a}-{b}"
        if a == b:
            raise LabError(f"{where}: a link needs two different routers")
        if frozenset((a, b)) in pairs:
            raise LabError(f"{where}: duplicate link between {a} and {b} "
                           "(parallel links are not supported)")
        pairs.add(frozenset((a, b)))
        cost_ab, cost_ba = _link_costs(l, where)
        link_mtu = _int(l.get("mtu", mtu), f"{where} mtu", MIN_MTU, MAX_MTU)
        link_pending.append((where, a, b, cost_ab, cost_ba, subnet_for(l, where), link_mtu))

    # Services
    services: dict[str, dict] = {}
    for i, s in enumerate(_array(raw, "service")):
        where = f"[[service]] #{i + 1}"
        _check_keys(s, {"name", "anycast"}, {"name", "anycast"}, where)
        sname = _name(s["name"], where, 32)
        where = f"service {sname!r}"
        if sname in services:
            raise LabError(f"{where}: duplicate service name")
        anycast = _ip(s["anycast"], f"{where} anycast")
        inside = plan.subnet_containing(anycast)
        if inside:
            raise LabError(f"{where}: anycast {anycast} lies in subnet {inside[0]} of {inside[1]}")
        plan.claim_addr(anycast, f"{where} anycast")
        services[sname] = {"name": sname, "anycast": str(anycast)}

    # VNF instances
    vnf_pending = []
    ids: dict[int, str] = {}
    for i, v in enumerate(_array(raw, "vnf")):
        where = f"[[vnf]] #{i + 1}"
        _check_keys(v, {"name", "router", "service", "capacity", "nsh_aware", "instance_id",
                        "start_after", "subnet", "run", "run_args", "slot", "mtu"},
                    {"name", "router", "service", "capacity", "instance_id"}, where)
        vname = _name(v["name"], where, IFNAMSIZ - len(VNF_IF))
        where = f"vnf {vname!r}"
        claim(vname, where)
        rname = router_ref(v["router"], f"{where} router")
        if v["service"] not in services:
            raise LabError(f"{where}: unknown service {v['service']!r} (declare it in "
                           f"[[service]]; known: {', '.join(services) or 'none'})")
        capacity = _int(v["capacity"], f"{where} capacity", 1, 65535)
        iid = _int(v["instance_id"], f"{where} instance_id", 1, 0xFFFFFF)
        if iid in ids:
            raise LabError(f"{where}: instance_id {iid} already used by vnf {ids[iid]!r}")
        ids[iid] = vname
        nsh = v.get("nsh_aware", True)
        if not isinstance(nsh, bool):
            raise LabError(f"{where}: nsh_aware must be true or false")
        start_after = _int(v.get("start_after", 0), f"{where} start_after", 0, 86400)
        program = _vnf_program(v, where, list(services).index(v["service"]))
        vnf_mtu = _int(v.get("mtu", mtu), f"{where} mtu", MIN_MTU, MAX_MTU)
        vnf_pending.append((where, vname, rname, v["service"], capacity, iid, nsh,
                            start_after, program, subnet_for(v, where), vnf_mtu))

    # Sources and sinks
    host_pending = []
    for kind in ("source", "sink"):
        for i, h in enumerate(_array(raw, kind)):
            where = f"[[{kind}]] #{i + 1}"
            _check_keys(h, {"name", "router", "cost", "subnet"}, {"name", "router"}, where)
            hname = _name(h["name"], where, IFNAMSIZ - len(HOST_IF))
            where = f"{kind} {hname!r}"
            claim(hname, where)
            rname = router_ref(h["router"], f"{where} router")
            cost = _int(h.get("cost", DEFAULT_HOST_COST), f"{where} cost", 1, 65535)
            host_pending.append((where, kind, hname, rname, cost, subnet_for(h, where)))

    # Addresses, in file order: links, VNF instances, hosts.
    links = []
    for where, a, b, cost_ab, cost_ba, net, link_mtu in link_pending:
        net = net or plan.allocate(where)
        addr_a, addr_b = endpoints(net)
        plen = net.prefixlen
        a_if, b_if = f"{ROUTER_IF}{b}", f"{ROUTER_IF}{a}"
        links.append({"a": a, "b": b, "cost_ab": cost_ab, "cost_ba": cost_ba,
                      "subnet": str(net), "a_if": a_if, "b_if": b_if,
                      "a_addr": addr_a, "b_addr": addr_b, "mtu": link_mtu})
        # An OSPF cost belongs to the outgoing interface: a's interface carries a -> b.
        routers[a]["interfaces"].append({"name": a_if, "kind": "link", "peer": b,
                                         "address": f"{addr_a}/{plen}", "cost": cost_ab})
        routers[b]["interfaces"].append({"name": b_if, "kind": "link", "peer": a,
                                         "address": f"{addr_b}/{plen}", "cost": cost_ba})

    vnfs = []
    for where, vname, rname, service, capacity, iid, nsh, start_after, program, net, vnf_mtu in vnf_pending:
        net = net or plan.allocate(where)
        r_addr, v_addr = endpoints(net)
        plen = net.prefixlen
        vnfs.append({"name": vname, "router": rname, "service": service, "capacity": capacity,
                     "instance_id": iid, "nsh_aware": nsh, "start_after": start_after,
                     **program, "subnet": str(net), "router_if": f"{VNF_IF}{vname}",
                     "router_addr": f"{r_addr}/{plen}", "vnf_if": "eth0",
                     "vnf_addr": f"{v_addr}/{plen}", "mtu": vnf_mtu})
        routers[rname]["interfaces"].append({"name": f"{VNF_IF}{vname}", "kind": "vnf",
                                             "vnf": vname, "address": f"{r_addr}/{plen}"})

    hosts = []
    for where, kind, hname, rname, cost, net in host_pending:
        net = net or plan.allocate(where)
        r_addr, h_addr = endpoints(net)
        plen = net.prefixlen
        hosts.append({"name": hname, "kind": kind, "router": rname, "cost": cost,
                      "subnet": str(net), "router_if": f"{HOST_IF}{hname}",
                      "router_addr": f"{r_addr}/{plen}", "host_if": "eth0",
                      "host_addr": f"{h_addr}/{plen}", "gateway": r_addr})
        routers[rname]["interfaces"].append({"name": f"{HOST_IF}{hname}", "kind": kind,
                                             "host": hname, "address": f"{r_addr}/{plen}",
                                             "cost": cost})

    return {"name": lab_name, "area": area, "pool": str(pool), "hello_interval": hello,
            "dead_interval": dead, "mtu": mtu, "routers": routers, "links": links, "services": services,
            "vnfs": vnfs, "hosts": hosts}


def expected_neighbors(topo: dict, rname: str) -> dict[str, str]:
    """router-id -> interface, for every OSPF neighbour rname must have."""
    out = {}
    for l in topo["links"]:
        if l["a"] == rname:
            out[topo["routers"][l["b"]]["router_id"]] = l["a_if"]
        elif l["b"] == rname:
            out[topo["routers"][l["a"]]["router_id"]] = l["b_if"]
    return out
