"""The port plan of a devnet: which process listens where, and how peer links are wired.

``plan_devnet(topology)`` gives a ``DevnetPlan``: every node's three ports (from the topology),
one emulator listener per directed peer link (``LinkPlan`` named ``link_name(a, b)``, ports from
``devnet.netem_port_base`` upward) and the emulator's control port. ``check_ports_free`` binds
every port once and raises DevnetError naming each owner whose port is taken; ``link_specs`` and
``node_peers`` turn the plan into the emulator's links file and each node's dial addresses.
Links are in ``Topology.directed_links`` order, the model's link indexes.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass

from bitcell_sim.errors import DevnetError
from bitcell_sim.netem import LinkSpec
from bitcell_sim.topology import LinkParams, SeedTree, Topology, link_params


def link_name(source: str, target: str) -> str:
    """The emulator's name for the directed link ``source`` → ``target``."""
    return f"{source}->{target}"


@dataclass(frozen=True)
class LinkPlan:
    """One directed peer link: the emulator listens on ``listen_port`` and forwards to the
    target node's P2P port, shaping the bytes ``source`` sends with ``params``."""

    name: str
    source: str
    target: str
    listen_port: int
    target_port: int
    params: LinkParams


@dataclass(frozen=True)
class NodePorts:
    """Where one node listens."""

    rpc_port: int
    p2p_port: int
    metrics_port: int


@dataclass(frozen=True)
class DevnetPlan:
    """Every port of a devnet on ``host``: nodes, emulator links and the control API."""

    host: str
    nodes: dict[str, NodePorts]
    links: tuple[LinkPlan, ...]
    control_port: int
    #: (owner, port) of further processes (the monitoring stack), when they are started.
    services: tuple[tuple[str, int], ...] = ()

    def ports(self) -> list[tuple[str, int]]:
        """Every (owner, port) the devnet will listen on, owners named for error messages."""
        owners: list[tuple[str, int]] = []
        for name, ports in self.nodes.items():
            owners += [
                (f"node {name} rpc_port", ports.rpc_port),
                (f"node {name} p2p_port", ports.p2p_port),
                (f"node {name} metrics_port", ports.metrics_port),
            ]
        owners += [(f"emulator link {link.name}", link.listen_port) for link in self.links]
        owners.append(("emulator control API", self.control_port))
        return owners + list(self.services)

    def link(self, source: str, target: str) -> LinkPlan:
        name = link_name(source, target)
        for plan in self.links:
            if plan.name == name:
                return plan
        raise DevnetError(f"no peer link {name!r} in this devnet")


def plan_devnet(
    topology: Topology,
    host: str | None = None,
    services: tuple[tuple[str, int], ...] = (),
) -> DevnetPlan:
    """The port plan of ``topology`` (plus the ``services`` ports); DevnetError if two owners
    would share a port."""
    host = host or topology.devnet.host
    nodes = {
        name: NodePorts(node.rpc_port, node.p2p_port, node.metrics_port)
        for name, node in topology.nodes.items()
    }
    port = topology.devnet.netem_port_base
    links = [
        LinkPlan(
            name=link_name(source, target),
            source=source,
            target=target,
            listen_port=port + index,
            target_port=topology.nodes[target].p2p_port,
            params=link_params(topology, source, target),
        )
        for index, (source, target) in enumerate(topology.directed_links)
    ]
    if links and links[-1].listen_port > 65535:
        raise DevnetError(
            f"devnet.netem_port_base={topology.devnet.netem_port_base} leaves no room for "
            f"{len(links)} link listeners (the last would be port {links[-1].listen_port})"
        )
    plan = DevnetPlan(host, nodes, tuple(links), topology.devnet.netem_control_port, services)
    seen: dict[int, str] = {}
    for owner, owned in plan.ports():
        if owned in seen:
            raise DevnetError(f"port {owned} is planned twice: for {seen[owned]} and for {owner}")
        seen[owned] = owner
    return plan


def _port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None if it can."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The same option the emulator and the node use: a port left in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1)
    except OSError as exc:
        return "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return None


def check_ports_free(plan: DevnetPlan) -> None:
    """Raise DevnetError listing every planned port that cannot be listened on."""
    taken = []
    for owner, port in plan.ports():
        reason = _port_taken(plan.host, port)
        if reason is not None:
            taken.append(f"{owner}: {plan.host}:{port} {reason}")
    if taken:
        raise DevnetError(
            "cannot start the devnet, planned port(s) not free (nothing was started):\n  "
            + "\n  ".join(taken)
        )


def link_specs(plan: DevnetPlan, topology_seed: int) -> list[LinkSpec]:
    """The emulator's links: one ``LinkSpec`` per planned link, shaped as the topology says,
    its jitter seeded from the link's place in the seed tree (the model's link index)."""
    seeds = SeedTree(topology_seed)
    return [
        LinkSpec(
            name=link.name,
            listen_host=plan.host,
            listen_port=link.listen_port,
            target_host=plan.host,
            target_port=link.target_port,
            seed=seeds.emulator_seed(index),
            params=link.params,
        )
        for index, link in enumerate(plan.links)
    ]


def node_peers(plan: DevnetPlan, node: str) -> dict[str, str]:
    """Where ``node`` dials each peer: the emulator listener of the link ``node`` → peer."""
    return {
        link.target: f"{plan.host}:{link.listen_port}" for link in plan.links if link.source == node
    }
