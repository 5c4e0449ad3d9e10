"""Topology copies on free loopback ports, for devnets started beside others (tests, benchmarks).

``relocate_ports`` moves every port of a topology document into a block of free ports
(``bitcell_sim.loopback.free_port_block``) and ``relocated_copy`` writes that copy of a topology
file.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from bitcell_sim.loopback import free_port_block
from bitcell_sim.topology import parse_topology
from bitcell_sim.topology.schema import MONITORING_PORT_FIELDS


def block_size(data: Mapping[str, Any]) -> int:
    """How many ports ``relocate_ports`` uses for the topology document ``data``: three per
    node, the monitoring stack's, the emulator's control port and one per directed link of a
    full mesh (the most any peer graph needs)."""
    nodes = len(data["nodes"])
    return 3 * nodes + len(MONITORING_PORT_FIELDS) + 1 + nodes * (nodes - 1)


def relocate_ports(data: Mapping[str, Any], base: int) -> dict[str, Any]:
    """A copy of the topology document ``data`` with every port in ``base ..``: each node's
    rpc, p2p and metrics ports in turn, then the ``monitoring`` ports, then
    ``devnet.netem_control_port`` and ``devnet.netem_port_base`` (the emulator's link listeners
    count up from there)."""
    moved = copy.deepcopy(dict(data))
    for index, spec in enumerate(moved["nodes"].values()):
        spec["rpc_port"] = base + 3 * index
        spec["p2p_port"] = base + 3 * index + 1
        spec["metrics_port"] = base + 3 * index + 2
    after_nodes = base + 3 * len(moved["nodes"])
    moved["monitoring"] = {
        **moved.get("monitoring", {}),
        **{field: after_nodes + i for i, field in enumerate(MONITORING_PORT_FIELDS)},
    }
    after_nodes += len(MONITORING_PORT_FIELDS)
    moved["devnet"] = {
        **moved.get("devnet", {}),
        "netem_control_port": after_nodes,
        "netem_port_base": after_nodes + 1,
    }
    return moved


def relocated_copy(
    source: Path,
    target: Path,
    *,
    keep: Collection[str] | None = None,
    rng: random.Random | None = None,
    **sections: Mapping[str, Any],
) -> Path:
    """Write to ``target`` the topology file ``source`` with every port moved into a fresh free
    block (so it can run beside another devnet), each of ``sections`` merged into the section
    of that name, and, if ``keep`` is given, only those nodes, peered as a full mesh (the file's
    peer list may name the others). The copy is parsed once so a bad change raises
    TopologyError here, not at ``up``. Returns ``target``."""
    data = yaml.safe_load(source.read_text())
    if keep is not None:
        data["nodes"] = {name: spec for name, spec in data["nodes"].items() if name in keep}
        data["peers"] = "full_mesh"
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    data = relocate_ports(data, free_port_block(block_size(data), rng=rng))
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    parse_topology(target.read_text())
    return target
