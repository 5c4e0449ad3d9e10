"""The devnet: real node processes on loopback, wired through the link emulator.

``up`` starts one from a topology (state folder, emulator, nodes, readiness), ``Devnet.open``
finds a running one by its state folder, ``down`` stops exactly what it started,
``devnet_status`` takes a snapshot, ``read_peer_rtts`` the node-to-node RTTs the nodes
measure. The node process itself lives in ``devnet.node`` and is only ever started as a
separate process (``python -m bitcell_sim.devnet.node --config node.json``).

Names are imported lazily: the node process lives under ``bitcell_sim.devnet.node`` and would
otherwise pay for the whole orchestration (emulator client, networkx) at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bitcell_sim.devnet.cluster import (
        Devnet,
        DownResult,
        Health,
        NodeEndpoint,
        ReadyProgress,
        down,
    )
    from bitcell_sim.devnet.launch import UpEvent, default_node_command, up
    from bitcell_sim.devnet.plan import (
        DevnetPlan,
        LinkPlan,
        NodePorts,
        check_ports_free,
        link_name,
        link_specs,
        node_peers,
        plan_devnet,
    )
    from bitcell_sim.devnet.processes import (
        ProcessRecord,
        cpu_seconds,
        is_running,
        spawn,
        stop_processes,
    )
    from bitcell_sim.devnet.rtt import PeerRtt, read_peer_rtts, wait_for_peer_rtts
    from bitcell_sim.devnet.state import DevnetMeta, StateDir
    from bitcell_sim.devnet.status import DevnetStatus, LinkFault, NodeStatus, devnet_status

_MODULE_OF = {
    "Devnet": "bitcell_sim.devnet.cluster",
    "DevnetMeta": "bitcell_sim.devnet.state",
    "DevnetPlan": "bitcell_sim.devnet.plan",
    "DevnetStatus": "bitcell_sim.devnet.status",
    "DownResult": "bitcell_sim.devnet.cluster",
    "Health": "bitcell_sim.devnet.cluster",
    "LinkFault": "bitcell_sim.devnet.status",
    "LinkPlan": "bitcell_sim.devnet.plan",
    "NodeEndpoint": "bitcell_sim.devnet.cluster",
    "NodePorts": "bitcell_sim.devnet.plan",
    "NodeStatus": "bitcell_sim.devnet.status",
    "PeerRtt": "bitcell_sim.devnet.rtt",
    "ProcessRecord": "bitcell_sim.devnet.processes",
    "ReadyProgress": "bitcell_sim.devnet.cluster",
    "StateDir": "bitcell_sim.devnet.state",
    "UpEvent": "bitcell_sim.devnet.launch",
    "check_ports_free": "bitcell_sim.devnet.plan",
    "cpu_seconds": "bitcell_sim.devnet.processes",
    "default_node_command": "bitcell_sim.devnet.launch",
    "devnet_status": "bitcell_sim.devnet.status",
    "down": "bitcell_sim.devnet.cluster",
    "is_running": "bitcell_sim.devnet.processes",
    "link_name": "bitcell_sim.devnet.plan",
    "link_specs": "bitcell_sim.devnet.plan",
    "node_peers": "bitcell_sim.devnet.plan",
    "plan_devnet": "bitcell_sim.devnet.plan",
    "read_peer_rtts": "bitcell_sim.devnet.rtt",
    "spawn": "bitcell_sim.devnet.processes",
    "stop_processes": "bitcell_sim.devnet.processes",
    "up": "bitcell_sim.devnet.launch",
    "wait_for_peer_rtts": "bitcell_sim.devnet.rtt",
}

__all__ = [
    "Devnet",
    "DevnetMeta",
    "DevnetPlan",
    "DevnetStatus",
    "DownResult",
    "Health",
    "LinkFault",
    "LinkPlan",
    "NodeEndpoint",
    "NodePorts",
    "NodeStatus",
    "PeerRtt",
    "ProcessRecord",
    "ReadyProgress",
    "StateDir",
    "UpEvent",
    "check_ports_free",
    "cpu_seconds",
    "default_node_command",
    "devnet_status",
    "down",
    "is_running",
    "link_name",
    "link_specs",
    "node_peers",
    "plan_devnet",
    "read_peer_rtts",
    "spawn",
    "stop_processes",
    "up",
    "wait_for_peer_rtts",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bitcell_sim.devnet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
