"""What a fault touches: its nodes and its directed links, a pure function of the topology.

:func:`fault_scope` gives a fault's :class:`FaultScope`: ``node_down``, ``region_down`` and
``cpu_throttle`` hold nodes; a ``partition`` cuts every directed link between two of its sides
(:func:`partition_links`; one listed group is cut from all other nodes, bridges keep every
link); ``added_latency`` slows
the directed links with exactly one end in its node or region (:func:`boundary_links`: traffic
into and out of the target, not within it). The model and the devnet both apply exactly these.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bitcell_sim.errors import FaultError
from bitcell_sim.topology.schema import (
    AddedLatency,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
)

DirectedLink = tuple[str, str]


@dataclass(frozen=True)
class FaultScope:
    """The nodes a fault holds (down, throttled, or the target of added latency), the sides of
    a partition, and the directed links it cuts or slows, each in topology order."""

    nodes: tuple[str, ...] = ()
    sides: tuple[frozenset[str], ...] = ()
    links: tuple[DirectedLink, ...] = ()


def resolve_targets(topology: Topology, names: Sequence[str]) -> tuple[str, ...]:
    """The nodes named by node and region names, in topology order, each once."""
    wanted: set[str] = set()
    for name in names:
        try:
            wanted.update(topology.resolve(name))
        except KeyError:
            known = ", ".join([*topology.node_names, *topology.regions])
            raise FaultError(f"unknown node or region {name!r} (known: {known})") from None
    return tuple(n for n in topology.node_names if n in wanted)


def partition_sides(
    topology: Topology, groups: Sequence[Sequence[str]], bridges: Sequence[str] = ()
) -> tuple[frozenset[str], ...]:
    """The node sets of a partition of ``groups`` (node or region names); the nodes of no group
    but ``bridges`` form one more side (a bridge is on no side: its links stay up). FaultError
    for an empty group or a node in two groups."""
    if not groups or not all(groups):
        raise FaultError("a partition needs at least one non-empty group")
    sides = [frozenset(resolve_targets(topology, group)) for group in groups]
    seen: set[str] = set()
    for side in sides:
        overlap = seen & side
        if overlap:
            raise FaultError(f"node(s) {', '.join(sorted(overlap))} are in two groups")
        seen |= side
    rest = frozenset(topology.node_names) - seen - set(resolve_targets(topology, bridges))
    if rest:
        sides.append(rest)
    return tuple(sides)


def partition_links(
    topology: Topology, sides: Sequence[Collection[str]]
) -> tuple[DirectedLink, ...]:
    """Directed links crossing between two different ``sides`` (sets of node names)."""
    side_of: dict[str, int] = {}
    for index, side in enumerate(sides):
        for node in side:
            side_of[node] = index
    return tuple(
        (a, b)
        for a, b in topology.directed_links
        if a in side_of and b in side_of and side_of[a] != side_of[b]
    )


def boundary_links(topology: Topology, nodes: Collection[str]) -> tuple[DirectedLink, ...]:
    """Directed links with exactly one end in ``nodes`` (both directions)."""
    inside = set(nodes)
    return tuple((a, b) for a, b in topology.directed_links if (a in inside) != (b in inside))


def fault_scope(topology: Topology, fault: Fault) -> FaultScope:
    """The nodes, sides and directed links ``fault`` touches in ``topology``."""
    if isinstance(fault, Partition):
        sides = partition_sides(topology, fault.groups, fault.bridges)
        return FaultScope(sides=sides, links=partition_links(topology, sides))
    if isinstance(fault, AddedLatency):
        nodes = resolve_targets(topology, [fault.target])
        return FaultScope(nodes=nodes, links=boundary_links(topology, nodes))
    if isinstance(fault, NodeDown | RegionDown | CpuThrottle):
        return FaultScope(nodes=resolve_targets(topology, [fault.target]))
    raise FaultError(f"unknown fault {fault!r}")
