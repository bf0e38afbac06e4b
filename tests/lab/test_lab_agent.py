"""scripts/lab-agent's generated anychaind config: instances whose program the lab runs carry
its pid file (liveness), the others none (they are started by someone else)."""
import json
import os
import subprocess
import tomllib

from lablib.topology import resolve_topology
from sample import ROUTERS

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOPO = """
[[router]]
name = "A"
router_id = "10.0.0.1"
[[service]]
name = "fw"
anycast = "10.100.0.1"
[[vnf]]
name = "ran"
router = "A"
service = "fw"
capacity = 10
instance_id = 1
run = true
[[vnf]]
name = "byhand"
router = "A"
service = "fw"
capacity = 10
instance_id = 2
nsh_aware = false
"""


def test_pid_file_only_for_instances_the_lab_runs(tmp_path):
    t = resolve_topology(tomllib.loads(TOPO), "t.toml")
    for v in t["vnfs"]:  # what `up` adds before writing lab.json
        v["pid_file"] = f"/run/anychain-lab/p/A/vnf-{v['name']}.pid"
    (tmp_path / "lab.json").write_text(json.dumps({"prefix": "p", **t}))
    conf = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "lab-agent"), "config",
                           str(tmp_path), "A"], capture_output=True, text=True, check=True).stdout
    lines = {l.split("name: ")[1].split(",")[0]: l for l in conf.splitlines() if l.startswith("  - {name: ") and "veth:" in l}
    assert lines["ran"].endswith(", nsh_aware: true, pid_file: /run/anychain-lab/p/A/vnf-ran.pid}")
    assert lines["byhand"].endswith(", nsh_aware: false}")


ROUTED = ROUTERS + """
[[link]]
a = "A"
b = "B"
cost = 10
[[source]]
name = "src"
router = "A"
[[sink]]
name = "dst"
router = "B"
"""


def test_a_topology_without_services_gets_no_chain_and_no_policy(tmp_path):
    """A plain routed lab (vm-tests/lab-capacity's rings): anychaind refuses a chain without
    services, so none is written, nor a policy that would name it."""
    t = resolve_topology(tomllib.loads(ROUTED), "t.toml")
    (tmp_path / "lab.json").write_text(json.dumps({"prefix": "p", **t}))
    conf = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "lab-agent"), "config",
                           str(tmp_path), "A"], capture_output=True, text=True, check=True).stdout.splitlines()
    for key in ("services", "chains", "policies", "instances"):
        assert conf.count(f"{key}: []") == 1 and f"{key}:" not in conf, (key, conf)
    assert [l for l in conf if l.startswith("  - {name: ")] == ["  - {name: to-B, mode: native}",
                                                                "  - {name: h-src, mode: native, classify: true}"]


def lab_agent_config(tmp_path, *flags):
    t = resolve_topology(tomllib.loads(TOPO), "t.toml")
    for v in t["vnfs"]:
        v["pid_file"] = f"/run/anychain-lab/p/A/vnf-{v['name']}.pid"
    (tmp_path / "lab.json").write_text(json.dumps({"prefix": "p", **t}))
    return subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "lab-agent"), "config", *flags,
                           str(tmp_path), "A"], capture_output=True, text=True, check=True).stdout


def test_pid_files_for_every_instance_on_request(tmp_path):
    conf = lab_agent_config(tmp_path, "--pid-files")
    lines = [l for l in conf.splitlines() if l.startswith("  - {name: ") and "veth:" in l]
    assert len(lines) == 2
    for l in lines:
        name = l.split("name: ")[1].split(",")[0]
        assert l.endswith(f", pid_file: /run/anychain-lab/p/A/vnf-{name}.pid}}"), l


def test_the_agent_watches_ospfds_pid_file(tmp_path):
    conf = lab_agent_config(tmp_path)
    assert f"  pid_file: {tmp_path}/A/ospfd.pid" in conf.splitlines()
