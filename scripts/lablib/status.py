"""Health, OSPF convergence and the `status` report of a running lab."""

from __future__ import annotations

import time

from . import frr, programs
from .names import LabError, lab_dir, log, ns_name
from .netns import Journal, lab_namespaces, load_lab, netns_list
from .proc import alive, read_pid
from .topology import expected_neighbors


def health(lab) -> list[str]:
    """What is missing or dead of a running lab (namespaces or VMs, FRR daemons)."""
    if lab.kind != "netns":
        return lab.health()
    prefix, topo = lab.prefix, lab.topo
    problems = []
    have = set(netns_list())
    for rname in topo["routers"]:
        ns = ns_name(prefix, rname)
        if ns not in have:
            problems.append(f"namespace {ns} missing")
            continue
        for daemon in frr.DAEMONS:
            if not alive(frr.daemon_pid(prefix, rname, daemon), daemon):
                problems.append(f"{daemon} of router {rname} not running")
    for v in topo["vnfs"]:
        if ns_name(prefix, v["router"], v["name"]) not in have:
            problems.append(f"namespace of vnf {v['name']} missing")
    for h in topo["hosts"]:
        if ns_name(prefix, h["name"]) not in have:
            problems.append(f"namespace of {h['kind']} {h['name']} missing")
    return problems


def router_convergence(lab, rname: str) -> list[str]:
    """What router rname lacks: expected neighbours Full, OSPF routes to every loopback."""
    problems = []
    loopbacks = {f"{r['loopback']}/32": n for n, r in lab.topo["routers"].items()}
    try:
        nbrs = frr.neighbors(lab.prefix, rname, lab.vtysh)
    except LabError as e:
        return [str(e)]
    for rid, itf in expected_neighbors(lab.topo, rname).items():
        st = nbrs.get(rid)
        if st is None:
            problems.append(f"{rname}: no neighbour {rid} on {itf}")
        elif not st["state"].startswith("Full"):
            problems.append(f"{rname}: neighbour {rid} on {itf} is {st['state']}")
    try:
        routes = frr.ospf_routes(lab.prefix, rname, lab.vtysh)
    except LabError as e:
        return problems + [str(e)]
    for pfx, other in loopbacks.items():
        if other != rname and pfx not in routes:
            problems.append(f"{rname}: no OSPF route to {other}'s loopback {pfx}")
    return problems


def convergence_problems(lab) -> list[str]:
    return [p for r in lab.topo["routers"] for p in router_convergence(lab, r)]


def wait_converged(lab, timeout: float) -> None:
    """Until every router has all its OSPF neighbours Full and routes to every loopback."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while True:
        problems = health(lab)
        if not problems:
            problems = convergence_problems(lab)
        if not problems:
            log(f"converged after {time.monotonic() - start:.1f}s: every router has all its "
                "OSPF neighbours Full and routes to every loopback")
            return
        if time.monotonic() >= deadline:
            raise LabError(f"lab {lab.prefix!r} did not converge within {timeout:.0f}s:\n  "
                           + "\n  ".join(problems))
        time.sleep(lab.poll_interval)


def gather_status(prefix: str) -> dict:
    """Everything `status` shows (also its --json); a lab without lab.json shows only its
    journal and namespaces."""
    j = Journal.load(prefix)
    try:
        topo = load_lab(prefix)
    except LabError:
        topo = None
    st = {"prefix": prefix, "statedir": lab_dir(prefix),
          "status": j.data.get("status") if j else "absent",
          "topology": j.data.get("topology") if j else None,
          "namespaces": lab_namespaces(prefix), "routers": {}, "vnfs": [], "hosts": []}
    if topo is None:
        return st
    st["backend"] = (j.data.get("backend") if j else None) or "netns"
    if st["backend"] == "vm":
        from .vm import VmLab
        return VmLab(prefix, topo).gather_status(st)
    have = set(st["namespaces"])
    for rname, r in topo["routers"].items():
        ns = ns_name(prefix, rname)
        rs = {"netns": ns, "netns_exists": ns in have, "router_id": r["router_id"],
              "loopback": r["loopback"], "daemons": {}, "agent": None,
              "expected_neighbors": sorted(expected_neighbors(topo, rname)),
              "neighbors": {}, "routes": {}, "errors": []}
        for daemon in frr.DAEMONS:
            pid = frr.daemon_pid(prefix, rname, daemon)
            rs["daemons"][daemon] = {"pid": pid, "alive": alive(pid, daemon)}
        pid, how = programs.find_agent(prefix, rname)
        if pid is not None:
            rs["agent"] = {"pid": pid, "alive": True, "found_by": how}
        elif (apid := read_pid(programs.agent_pidfile(prefix, rname))) is not None:
            rs["agent"] = {"pid": apid, "alive": False, "found_by": None}
        if rs["daemons"]["ospfd"]["alive"]:
            for key, fn in (("neighbors", frr.neighbors), ("routes", frr.ospf_routes)):
                try:
                    rs[key] = fn(prefix, rname)
                except LabError as e:
                    rs["errors"].append(str(e))
        st["routers"][rname] = rs
    for v in topo["vnfs"]:
        ns = ns_name(prefix, v["router"], v["name"])
        pid, how = programs.find_vnf(prefix, v)
        program = {"pid": pid, "alive": True, "found_by": how} if pid is not None else None
        st["vnfs"].append({**v, "netns": ns, "netns_exists": ns in have, "program": program})
    for h in topo["hosts"]:
        ns = ns_name(prefix, h["name"])
        st["hosts"].append({**h, "netns": ns, "netns_exists": ns in have})
    return st


def format_status(st: dict) -> str:
    prefix = st["prefix"]
    out = [f"lab {prefix!r}: status {st['status']}, state {st['statedir']}, "
           f"topology {st['topology']}"
           + (f", backend {st['backend']}" if st.get("backend", "netns") != "netns" else ""),
           f"namespaces ({len(st['namespaces'])}): {' '.join(st['namespaces'])}"]
    if (boot := st.get("boot")) and boot.get("wall_s"):
        out.append(f"VMs booted and nodes ready in {boot['wall_s']} s")
    for rname, rs in st["routers"].items():
        dm = ", ".join(f"{k} {'up' if v['alive'] else 'DOWN'} (pid {v['pid']})"
                       for k, v in rs["daemons"].items())
        if a := rs["agent"]:
            how = {"control_socket": ", found by its control socket",
                   "command_line": ", found by its command line"}.get(a["found_by"], "")
            dm += f", agent {'up' if a['alive'] else 'DOWN'} (pid {a['pid']}{how})"
        if vm := rs.get("vm"):
            where = (f"VM up (qemu pid {vm['qemu_pid']})" if vm["alive"] else "VM DOWN")
            if vm.get("ready"):
                where += f", node ready {vm['ready']['wall_s']} s after boot start"
            out += ["", f"router {rname}  {where}  router-id {rs['router_id']}  "
                        f"loopback {rs['loopback']}", f"  console {vm['console_log']}, share "
                        f"{vm['share']}"]
            if vm["alive"]:
                out.append(f"  {dm}")
        else:
            out += ["", f"router {rname}  ns {rs['netns']}{'' if rs['netns_exists'] else ' MISSING'}  "
                        f"router-id {rs['router_id']}  loopback {rs['loopback']}", f"  {dm}"]
        for rid in rs["expected_neighbors"]:
            n = rs["neighbors"].get(rid)
            out.append(f"  neighbour {rid:<15} " + (f"{n['state']:<12} on {n['interface']}" if n
                                                     else "MISSING"))
        for pfx, r in sorted(rs["routes"].items()):
            hops = ", ".join(h["ip"] + (f" via {h['via']}" if h["via"] else "")
                             if h["ip"] and h["ip"] != " " else f"direct {h['via']}"
                             for h in r["nexthops"])
            out.append(f"  route {pfx:<18} cost {r['cost']:<5} {hops}")
        out += [f"  error: {e}" for e in rs["errors"]]
    if st["vnfs"] or st["hosts"]:
        out.append("")
    for v in st["vnfs"]:
        out.append(f"vnf {v['name']} (service {v['service']}, id {v['instance_id']}, capacity "
                   f"{v['capacity']}, {'NSH-aware' if v['nsh_aware'] else 'proxied'}"
                   f"{', start_after ' + str(v['start_after']) + 's' if v['start_after'] else ''}) "
                   f"on {v['router']}: {v['router_if']} {v['router_addr']} <-> {v['netns']} "
                   f"{v['vnf_if']} {v['vnf_addr']}{'' if v['netns_exists'] else ' MISSING'}")
        p = v["program"]
        if p:
            out.append(f"  program up (pid {p['pid']}"
                       + (", started by hand: not under its pid file)" if p["found_by"] != "pid_file"
                          else ")"))
        else:
            out.append("  program DOWN: packets steered here are lost" if v["run"] else
                       "  no program (run = false): start one with `scripts/lab vnf start`")
    for h in st["hosts"]:
        out.append(f"{h['kind']} {h['name']} on {h['router']}: {h['router_if']} "
                   f"{h['router_addr']} <-> {h['netns']} {h['host_if']} {h['host_addr']}"
                   f"{'' if h['netns_exists'] else ' MISSING'}")
    return "\n".join(out)
