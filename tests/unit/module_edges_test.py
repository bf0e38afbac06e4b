#!/usr/bin/env python3
"""The agent's modules depend on each other one way (docs/agent.md, "Modules and their edges").

  module_edges_test.py check LINKS AGENT_DIR     fails on a forbidden edge
  module_edges_test.py selftest LINKS AGENT_DIR  fails unless planted edges are caught

LINKS is written by CMake (tests/unit/CMakeLists.txt): one line per target,
"target|direct link libraries|manually added dependencies". Two kinds of edge are checked:
the CMake link graph (direct and transitive, so a BPF build cannot sneak into a leaf's tests)
and the #include "module/..." lines of every file under agent/.
"""
import re
import shutil
import sys
import tempfile
from pathlib import Path

# module -> the modules it may use. Everything may use include/anychain/ (shared constants
# and structs, no code to link).
ALLOWED = {
    "common": set(),
    "config": {"common"},
    "ospf": {"common"},
    "plane": {"ospf", "common"},
    "dataplane": {"common"},
    "control": {"config", "common"},
    "slowpath": {"common"},
    "daemon": {"dataplane", "ospf", "plane", "slowpath", "config", "control", "nf", "ftc", "state", "common"},
    "cli": {"control", "config", "dataplane", "nf", "common"},
    "tools": {"common"},
    "ftc": {"state", "xsk", "common"},  # the channel authenticates with state's keyring (state/auth.h); the egress buffer's port on xsk::Socket
    "state": {"xsk", "common"},
    "nf": {"state", "xsk", "common"},  # an NF's shared objects opened as a state::BpfStore (nf/crdt.h)
    "xsk": {"common"},  # one AF_XDP socket (libxdp), shared by state, ftc and nf
}

TARGETS = {
    "anychain_common": "common",
    "anychain_config": "config",
    "anychain_ospf": "ospf",
    "anychain_plane": "plane",
    "anychain_dataplane": "dataplane",
    "anychain_wcmp": "dataplane",
    "anychain_control": "control",
    "anychain_slowpath": "slowpath",
    "anychain_agent": "daemon",
    "anychaind": "daemon",
    "anychain": "cli",
    "anychain_toolsupport": "tools",
    "anychain_ftc": "ftc",
    "anychain_ftc_xsk": "ftc",
    "anychain_ftc_channel": "ftc",
    "anychain_auth": "state",
    "anychain_state": "state",
    "anychain_xsk": "xsk",
    "anychain_nf": "nf",
    "anychain-nf": "nf",
}

# Modules that must build and link without the BPF object, libbpf or libxdp.
NO_BPF = {"common", "config", "ospf", "plane", "control", "tools", "slowpath"}
# Tests that must build without clang or a skeleton.
NO_BPF_TESTS = {"config_test", "control_test"}


def is_bpf(name):
    """A BPF object's target (bpf_<name>, with its skeleton), or libbpf/libxdp."""
    return (name.startswith(("bpf_", "anychain_bpf")) or "skel" in name
            or name in ("PkgConfig::LIBBPF", "PkgConfig::LIBXDP"))


def read_links(path):
    links, deps = {}, {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        target, libs, manual = line.split("|")
        links[target] = [x for x in libs.split(";") if x]
        deps[target] = [x for x in manual.split(";") if x]
    return links, deps


def closure(target, links, deps):
    seen, todo = set(), [target]
    while todo:
        t = todo.pop()
        for n in links.get(t, []) + deps.get(t, []):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def link_violations(links, deps):
    out = []
    for target, module in TARGETS.items():
        if target not in links:
            out.append(f"{target}: missing from the link list (renamed? update {Path(__file__).name})")
            continue
        for lib in links[target]:
            dep = TARGETS.get(lib)
            if dep and dep != module and dep not in ALLOWED[module]:
                out.append(f"{target} ({module}) links {lib} ({dep}): not an allowed edge")
        if module in NO_BPF:
            bad = sorted(n for n in closure(target, links, deps) if is_bpf(n))
            if bad:
                out.append(f"{target} ({module}) depends on the BPF build or libbpf/libxdp: {', '.join(bad)}")
    for test in NO_BPF_TESTS:
        bad = sorted(n for n in closure(test, links, deps) if is_bpf(n))
        if bad:
            out.append(f"{test} depends on the BPF build or libbpf/libxdp: {', '.join(bad)}")
    return out


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def include_violations(agent_dir):
    out = []
    for module, allowed in ALLOWED.items():
        for f in sorted((Path(agent_dir) / module).glob("*")):
            if f.suffix not in (".h", ".cc"):
                continue
            for inc in INCLUDE.findall(f.read_text()):
                head = inc.split("/")[0] if "/" in inc else None
                # the fast path's skeleton is dataplane/'s; the NF programs' (nf_<kind>.skel.h) nf/'s
                owner = "nf" if Path(inc).name.startswith("nf_") else "dataplane"
                if inc.endswith(".skel.h") and module != owner:
                    out.append(f"{f}: includes the BPF skeleton {inc} (only {owner}/ may)")
                if head in ALLOWED and head != module and head not in allowed:
                    out.append(f"{f}: includes {inc}: {module} may not use {head}")
    return out


def check(links_file, agent_dir):
    links, deps = read_links(links_file)
    return link_violations(links, deps) + include_violations(agent_dir)


def selftest(links_file, agent_dir):
    """Plant one forbidden include and two forbidden links; each must be reported."""
    links, deps = read_links(links_file)
    links["anychain_config"] = links["anychain_config"] + ["anychain_dataplane"]
    links["anychain_control"] = links["anychain_control"] + ["PkgConfig::LIBBPF"]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "agent"
        shutil.copytree(agent_dir, tree)
        victim = tree / "control" / "protocol.h"
        victim.write_text('#include "plane/wcmp_policy.h"\n' + victim.read_text())
        found = link_violations(links, deps) + include_violations(tree)
    want = ["anychain_config (config) links anychain_dataplane (dataplane)",
            "anychain_control (control) depends on the BPF build or libbpf/libxdp: PkgConfig::LIBBPF",
            "config_test depends on the BPF build",
            "includes plane/wcmp_policy.h: control may not use plane"]
    missed = [w for w in want if not any(w in f for f in found)]
    for m in missed:
        print(f"selftest: not reported: {m}")
    return missed


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("check", "selftest"):
        print(__doc__)
        return 2
    if sys.argv[1] == "selftest":
        return 1 if selftest(sys.argv[2], sys.argv[3]) else 0
    bad = check(sys.argv[2], sys.argv[3])
    for b in bad:
        print(b)
    print(f"{len(TARGETS)} targets and {len(ALLOWED)} module folders checked: "
          f"{len(bad)} forbidden edge{'s' if len(bad) != 1 else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
