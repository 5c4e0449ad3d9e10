"""Generated topologies for scaling studies, from measured AWS round-trip times.

:func:`generate_topology` lays ``nodes_per_region`` nodes into each chosen AWS region, takes the
RTTs from the bundled CloudPing p50 grid (``data/aws_rtt_ms.csv``), and draws a connected random
peer graph of the given degree from the seed. It returns plain YAML-ready data;
:func:`aws_rtt_ms` exposes the grid.
"""

from __future__ import annotations

import csv
import itertools
from functools import cache
from importlib import resources
from typing import Any

import networkx as nx

from bitcell_sim.topology.units import format_duration

DEFAULT_REGIONS = (
    "us-east-1",
    "us-west-2",
    "eu-central-1",
    "eu-west-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "ap-south-1",
)


@cache
def aws_rtt_ms() -> dict[tuple[str, str], float]:
    """CloudPing p50 RTT in ms for every ordered pair of AWS regions (symmetrised by the mean)."""
    text = resources.files("bitcell_sim.topology").joinpath("data/aws_rtt_ms.csv").read_text()
    raw: dict[tuple[str, str], float] = {}
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    for row in rows:
        raw[(row["from"], row["to"])] = float(row["rtt_ms"])
    return {(a, b): (rtt + raw[(b, a)]) / 2 for (a, b), rtt in raw.items()}


def generate_topology(
    *,
    name: str,
    regions: tuple[str, ...] = DEFAULT_REGIONS,
    nodes_per_region: int = 7,
    peer_degree: int = 8,
    seed: int = 1,
    tps: float = 100.0,
) -> dict[str, Any]:
    """A topology (as YAML-ready data) of ``len(regions) * nodes_per_region`` nodes."""
    grid = aws_rtt_ms()
    unknown = [r for r in regions if (r, r) not in grid]
    if unknown:
        known = sorted({a for a, _ in grid})
        raise ValueError(f"unknown AWS region(s) {unknown}; known: {', '.join(known)}")
    node_names = [f"{r}-{i + 1}" for r in regions for i in range(nodes_per_region)]
    if not 1 <= peer_degree < len(node_names):
        raise ValueError(f"peer_degree={peer_degree} must be between 1 and {len(node_names) - 1}")
    region_rtt: dict[str, dict[str, str]] = {r: {} for r in regions}
    for a, b in itertools.combinations_with_replacement(regions, 2):
        region_rtt[a][b] = format_duration(grid[(a, b)] / 1000)
    return {
        "general": {
            "name": name,
            "description": (
                f"{len(node_names)} nodes in {len(regions)} AWS regions, random peer graph of "
                f"degree {peer_degree} (generated)"
            ),
            "seed": seed,
            "duration": "10 min",
        },
        "regions": {r: {"label": r, "rtt": region_rtt[r]} for r in regions},
        "links": {"bandwidth": "100 Mbit", "jitter": {"distribution": "normal", "scale": "2 ms"}},
        "nodes": {n: {"region": n.rsplit("-", 1)[0]} for n in node_names},
        "peers": [list(e) for e in _peer_edges(node_names, peer_degree, seed)],
        "workload": {"tps": f"{tps:g} TPS", "duration": "10 min", "arrival": "poisson"},
        "expectations": {
            "node_recovery_max": "60 s",
            "partition_reconvergence_max": "120 s",
            "confirmed_tps_min": f"{tps:g} TPS",
        },
    }


def _peer_edges(nodes: list[str], degree: int, seed: int) -> list[tuple[str, str]]:
    """A connected random graph where every node has ``degree`` peers (one more if n*d is odd)."""
    n = len(nodes)
    for attempt in range(100):
        if n * degree % 2 == 0:
            graph = nx.random_regular_graph(degree, n, seed=seed + attempt)
        else:
            graph = nx.random_regular_graph(degree + 1, n, seed=seed + attempt)
        if nx.is_connected(graph):
            return sorted((nodes[min(a, b)], nodes[max(a, b)]) for a, b in graph.edges)
    raise ValueError(f"no connected random graph of degree {degree} over {n} nodes")
