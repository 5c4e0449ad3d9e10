"""The devnet: real node processes on loopback, wired through the link emulator.

``up`` starts one from a topology (state folder, emulator, nodes, readiness), ``Devnet.open``
finds a running one by its state folder, ``down`` stops exactly what it started,
``devnet_status`` takes a snapshot, ``read_peer_rtts`` the node-to-node RTTs the nodes
measure. The node itself is the system under test in :mod:`bitcell_sim.node`; the devnet only
starts it as a separate process (``python -m bitcell_sim.node --config node.json``).
"""

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
