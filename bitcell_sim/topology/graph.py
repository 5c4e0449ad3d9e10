"""The latency-weighted peer graph of a topology, as networkx.

:func:`peer_graph` returns an undirected ``networkx.Graph``: one vertex per node (attributes
``region``, ``role``) and one edge per peer link with ``latency_s`` (one-way, RTT/2), ``rtt_s``,
``bandwidth_bps``, ``jitter_s`` and ``jitter_distribution``, the numbers of
:func:`~bitcell_sim.topology.links.link_params` (the model and the link emulator read the same).
"""

from __future__ import annotations

import networkx as nx

from bitcell_sim.topology.links import link_params
from bitcell_sim.topology.schema import Topology


def peer_graph(topology: Topology) -> nx.Graph:
    graph = nx.Graph(name=topology.general.name)
    for name, node in topology.nodes.items():
        graph.add_node(name, region=node.region, role=node.role)
    for a, b in topology.peer_edges:
        link = link_params(topology, a, b)
        graph.add_edge(
            a,
            b,
            latency_s=link.latency_s,
            rtt_s=2 * link.latency_s,
            bandwidth_bps=link.bandwidth_bps,
            jitter_s=link.jitter_s,
            jitter_distribution=link.jitter_distribution,
        )
    return graph


def network_diameter_s(topology: Topology) -> float:
    """The largest shortest-path one-way latency between any two nodes over the peer graph."""
    lengths = dict(nx.all_pairs_dijkstra_path_length(peer_graph(topology), weight="latency_s"))
    return max(max(row.values()) for row in lengths.values())
