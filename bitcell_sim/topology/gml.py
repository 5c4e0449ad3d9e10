"""Export a topology as a Shadow-style GML network graph.

Shadow describes the network as GML: one vertex per network location with
``host_bandwidth_up``/``host_bandwidth_down``, and edges with ``latency`` (one-way, a unit string
with a whole magnitude, as Shadow parses it: ``45750 us``),
``jitter`` and ``packet_loss`` (0..1), self-loops for traffic inside a location. We export one
vertex per region (labelled with the region), which is how Shadow configs attach hosts
(``network_node_id``); :func:`host_vertices` says which node sits on which vertex.
"""

from __future__ import annotations

import itertools

from bitcell_sim.topology.schema import Topology
from bitcell_sim.topology.units import format_bandwidth, format_integer_duration


def host_vertices(topology: Topology) -> dict[str, int]:
    """The GML vertex id (Shadow's ``network_node_id``) of every node."""
    index = _region_index(topology)
    return {name: index[node.region] for name, node in topology.nodes.items()}


def _region_index(topology: Topology) -> dict[str, int]:
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    return {r: i for i, r in enumerate(regions)}


def to_gml(topology: Topology) -> str:
    index = _region_index(topology)
    regions = list(index)
    bandwidth = format_bandwidth(topology.links.bandwidth_bps)
    jitter = topology.links.jitter
    jitter_text = (
        format_integer_duration(jitter.scale_s) if jitter.distribution != "none" else "0 ms"
    )
    lines = ["graph [", "  directed 0"]
    for region in regions:
        lines += [
            "  node [",
            f"    id {index[region]}",
            f'    label "{region}"',
            f'    host_bandwidth_up "{bandwidth}"',
            f'    host_bandwidth_down "{bandwidth}"',
            "  ]",
        ]
    for a, b in itertools.combinations_with_replacement(regions, 2):
        latency = format_integer_duration(topology.rtt_matrix_s[(a, b)] / 2)
        lines += [
            "  edge [",
            f"    source {index[a]}",
            f"    target {index[b]}",
            f'    latency "{latency}"',
            f'    jitter "{jitter_text}"',
            "    packet_loss 0.0",
            "  ]",
        ]
    lines.append("]")
    return "\n".join(lines) + "\n"
