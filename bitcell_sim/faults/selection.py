"""Which directed peer links a network fault touches: a pure function of the topology.

``partition_links(topology, sides)`` is every directed link whose ends lie on different sides of
a cut; ``boundary_links(topology, nodes)`` every directed link with exactly one end in ``nodes``
(added latency on a node or region: traffic in and out of it, not within it). Both read only
the topology, so the model and the devnet select the same links for the same fault.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bitcell_sim.errors import FaultError
from bitcell_sim.topology import Topology

DirectedLink = tuple[str, str]


def directed_links(topology: Topology) -> tuple[DirectedLink, ...]:
    """Every directed peer link, both directions of each peer edge."""
    out: list[DirectedLink] = []
    for a, b in topology.peer_edges:
        out += [(a, b), (b, a)]
    return tuple(out)


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
        for a, b in directed_links(topology)
        if a in side_of and b in side_of and side_of[a] != side_of[b]
    )


def boundary_links(topology: Topology, nodes: Collection[str]) -> tuple[DirectedLink, ...]:
    """Directed links with exactly one end in ``nodes`` (both directions)."""
    inside = set(nodes)
    return tuple((a, b) for a, b in directed_links(topology) if (a in inside) != (b in inside))


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
