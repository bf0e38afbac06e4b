"""What anychain's default WCMP policy predicts on a lab topology (docs/wcmp-policy.md): the
shares a service's instances settle at for a steady offered load. Pure; used by
scripts/experiment for the expected shares of a phase it has no fixed figure for (a node failed).

weight = min(VNF cost, narrowest link cost on the path from the ingress), VNF cost = the
instance's remaining capacity normalised to the largest link cost of the lab; each instance's
load is its share of the offered load. The fixed point of "shares proportional to the weights
those shares produce" is found by damped iteration.
"""

from __future__ import annotations

import math


def bottleneck(links: list[dict], src: str, dst: str, dead: frozenset[str] = frozenset()) -> float:
    """The narrowest link cost on the shortest path src -> dst over the lab's directed costs
    (`links`: resolved [[link]]s with a, b, cost_ab, cost_ba), the widest such minimum over
    equal-cost paths, routers in `dead` left out; infinite for src == dst, None if unreachable."""
    edges: dict[str, list[tuple[str, int]]] = {}
    for l in links:
        if l["a"] in dead or l["b"] in dead:
            continue
        edges.setdefault(l["a"], []).append((l["b"], l["cost_ab"]))
        edges.setdefault(l["b"], []).append((l["a"], l["cost_ba"]))
    best = {src: (0, math.inf)}
    todo = {src}
    while todo:
        u = min(todo, key=lambda x: best[x][0])
        todo.discard(u)
        for v, c in edges.get(u, []):
            d, b = best[u][0] + c, min(best[u][1], c)
            if v not in best or d < best[v][0] or (d == best[v][0] and b > best[v][1]):
                best[v] = (d, b)
                todo.add(v)
    return best[dst][1] if dst in best else None


def fixed_point(topo: dict, names: list[str], offered: float, capacity: float,
                dead: frozenset[str] = frozenset()) -> dict[str, float]:
    """The shares (percent, one decimal) the policy settles at over the VNF instances `names` of the
    resolved topology `topo`, traffic entering at the source's router, `offered` load units per
    second, every instance of `capacity`; instances unreachable from the ingress get 0."""
    links = topo["links"]
    range_max = max(max(l["cost_ab"], l["cost_ba"]) for l in links)
    ingress = next(h for h in topo["hosts"] if h["kind"] == "source")["router"]
    router = {v["name"]: v["router"] for v in topo["vnfs"]}
    bott = {n: bottleneck(links, ingress, router[n], dead) for n in names}
    share = {n: 1.0 / len(names) for n in names}
    for _ in range(20000):
        w = {n: 0.0 if bott[n] is None else max(0.0, min(range_max * (capacity - offered * share[n]) / capacity,
                                                        bott[n]))
             for n in names}
        total = sum(w.values()) or 1.0
        share = {n: 0.99 * share[n] + 0.01 * w[n] / total for n in names}
    return {n: round(100.0 * share[n], 1) for n in names}
