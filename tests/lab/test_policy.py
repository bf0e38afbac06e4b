"""lablib.policy: the WCMP policy's fixed point on a lab topology, checked against the shares
worked out by hand in docs/wcmp-policy.md and against the experiment's fixed expectations."""
import math
import os
import tomllib

from lablib import policy
from lablib.topology import resolve_topology

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFERED, CAPACITY = 200.0, 150.0  # scripts/experiment's load: 2 flows/s x 50 s x 2 pps; capacity 150


def paper():
    with open(os.path.join(SRC, "scripts", "topologies", "paper-fig3.toml"), "rb") as f:
        return resolve_topology(tomllib.load(f), "paper-fig3.toml")


def test_bottleneck_is_the_narrowest_link_on_the_shortest_path():
    links = paper()["links"]
    assert policy.bottleneck(links, "A", "B") == 160
    assert policy.bottleneck(links, "A", "D") == 30
    assert policy.bottleneck(links, "A", "A") == math.inf
    assert policy.bottleneck(links, "A", "D", dead=frozenset({"D"})) is None


def test_bottleneck_prefers_the_widest_of_equal_cost_paths():
    links = [{"a": "S", "b": "X", "cost_ab": 10, "cost_ba": 10}, {"a": "X", "b": "T", "cost_ab": 10, "cost_ba": 10},
             {"a": "S", "b": "Y", "cost_ab": 15, "cost_ba": 15}, {"a": "Y", "b": "T", "cost_ab": 5, "cost_ba": 5}]
    assert policy.bottleneck(links, "S", "T") == 10          # via X (min 10), not via Y (min 5)
    assert policy.bottleneck(links, "S", "T", dead=frozenset({"X"})) == 5


def test_phase_1_is_50_50():
    assert policy.fixed_point(paper(), ["vnfB", "vnfC"], OFFERED, CAPACITY) == {"vnfB": 50.0, "vnfC": 50.0}


def test_phase_2_is_the_papers_40_40_20_within_the_acceptance():
    s = policy.fixed_point(paper(), ["vnfB", "vnfC", "vnfD"], OFFERED, CAPACITY)
    # by hand (VNF cost normalised to the largest link, 160): s = (160 - 213.3 s) / (2 (160 - 213.3 s) + 30)
    assert s["vnfB"] == s["vnfC"] and abs(s["vnfB"] - 41.4) <= 0.1, s
    assert abs(s["vnfD"] - 17.3) <= 0.1, s


def test_d_failing_leaves_b_and_c_at_50_50():
    assert policy.fixed_point(paper(), ["vnfB", "vnfC"], OFFERED, CAPACITY, dead=frozenset({"D"})) == \
        {"vnfB": 50.0, "vnfC": 50.0}


def test_b_failing_leaves_c_and_d_where_d_is_capped_by_its_link():
    # C: 160 - 213.3 s, D: min(residual, 30) = 30  ->  213.3 s^2 - 403.3 s + 160 = 0, s = 0.566
    s = policy.fixed_point(paper(), ["vnfC", "vnfD"], OFFERED, CAPACITY, dead=frozenset({"B"}))
    assert s == {"vnfC": 56.6, "vnfD": 43.4}
