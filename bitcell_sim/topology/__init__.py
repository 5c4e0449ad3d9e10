"""Topology: the one validated description of a network and its scenario.

Load a file with :func:`load_topology` (errors as :class:`~bitcell_sim.errors.TopologyError`
with field paths), read it through :class:`Topology`, get the latency graph with
:func:`peer_graph` and one link's parameters with :func:`link_params`.
"""

from bitcell_sim.topology.generate import generate_topology
from bitcell_sim.topology.gml import to_gml
from bitcell_sim.topology.graph import LinkSpecs, link_params, network_diameter_s, peer_graph
from bitcell_sim.topology.loader import dump_topology, load_topology, parse_topology
from bitcell_sim.topology.schema import (
    AddedLatency,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
)

__all__ = [
    "AddedLatency",
    "CpuThrottle",
    "Fault",
    "LinkSpecs",
    "NodeDown",
    "Partition",
    "RegionDown",
    "Topology",
    "dump_topology",
    "generate_topology",
    "link_params",
    "load_topology",
    "network_diameter_s",
    "parse_topology",
    "peer_graph",
    "to_gml",
]
