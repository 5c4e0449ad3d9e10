"""Topology: the one validated description of a network and its scenario, and what it resolves to.

:func:`load_topology` gives a :class:`Topology` (errors with field paths). Everything world-neutral
is resolved here once, for the model and the devnet alike: :func:`link_params` and the jitter law,
the :class:`SeedTree`, the :func:`arrival_schedule`, what each fault touches (:func:`fault_scope`),
the latency graph (:func:`peer_graph`) and command-line overrides (:func:`apply_overrides`).
"""

from bitcell_sim.topology.generate import generate_topology
from bitcell_sim.topology.gml import to_gml
from bitcell_sim.topology.graph import network_diameter_s, peer_graph
from bitcell_sim.topology.jitter import JITTER_DISTRIBUTIONS, JitterDistribution, standard_jitter
from bitcell_sim.topology.links import LinkParams, link_params
from bitcell_sim.topology.loader import dump_topology, load_topology, parse_topology
from bitcell_sim.topology.overrides import Override, apply_overrides
from bitcell_sim.topology.schedule import (
    Arrivals,
    RateProfile,
    RateStage,
    TargetRegion,
    Workload,
    arrival_schedule,
)
from bitcell_sim.topology.schema import (
    ARRIVAL_PROCESSES,
    AddedLatency,
    ArrivalProcess,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
)
from bitcell_sim.topology.scope import (
    DirectedLink,
    FaultScope,
    boundary_links,
    fault_scope,
    partition_links,
    partition_sides,
    resolve_targets,
)
from bitcell_sim.topology.seeds import SeedTree

__all__ = [
    "ARRIVAL_PROCESSES",
    "JITTER_DISTRIBUTIONS",
    "AddedLatency",
    "ArrivalProcess",
    "Arrivals",
    "CpuThrottle",
    "DirectedLink",
    "Fault",
    "FaultScope",
    "JitterDistribution",
    "LinkParams",
    "NodeDown",
    "Override",
    "Partition",
    "RateProfile",
    "RateStage",
    "RegionDown",
    "SeedTree",
    "TargetRegion",
    "Topology",
    "Workload",
    "apply_overrides",
    "arrival_schedule",
    "boundary_links",
    "dump_topology",
    "fault_scope",
    "generate_topology",
    "link_params",
    "load_topology",
    "network_diameter_s",
    "parse_topology",
    "partition_links",
    "partition_sides",
    "peer_graph",
    "resolve_targets",
    "standard_jitter",
    "to_gml",
]
