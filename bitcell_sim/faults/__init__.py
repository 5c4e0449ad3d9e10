"""Faults on a running devnet, applied for real and reverted, and the measurements they need.

``DevnetFaults`` kills/restarts nodes and regions, partitions and heals, adds latency and
throttles CPU (each an ``ActiveFault``, journaled as ``FaultEvent`` in faults.jsonl);
``ChaosScheduler`` plays a topology's ``faults`` list on the genesis clock (which nodes and links
a fault touches is ``topology.fault_scope``, shared with the model); ``wait_for_common_tip`` and
``wait_until_caught_up`` time recovery; ``read_peer_rtts`` and ``wait_for_peer_rtts`` (from
``devnet.rtt``) read the node-to-node RTTs the nodes measure, e.g. around an added latency.
"""

from bitcell_sim.devnet.journal import FaultEvent, append_event, read_events
from bitcell_sim.devnet.rtt import PeerRtt, read_peer_rtts, wait_for_peer_rtts
from bitcell_sim.faults.injector import ActiveFault, DevnetFaults
from bitcell_sim.faults.measure import (
    Convergence,
    Tip,
    common_tip,
    read_tip,
    read_tips,
    wait_for_common_tip,
    wait_until_caught_up,
)
from bitcell_sim.faults.scheduler import (
    ChaosReport,
    ChaosScheduler,
    TimelineStep,
    describe,
    fault_timeline,
)
from bitcell_sim.faults.throttle import (
    BACKENDS,
    ThrottleHandle,
    apply_throttle,
    detect_backend,
    release_throttle,
)

__all__ = [
    "BACKENDS",
    "ActiveFault",
    "ChaosReport",
    "ChaosScheduler",
    "Convergence",
    "DevnetFaults",
    "FaultEvent",
    "PeerRtt",
    "ThrottleHandle",
    "TimelineStep",
    "Tip",
    "append_event",
    "apply_throttle",
    "common_tip",
    "describe",
    "detect_backend",
    "fault_timeline",
    "read_events",
    "read_peer_rtts",
    "read_tip",
    "read_tips",
    "release_throttle",
    "wait_for_common_tip",
    "wait_for_peer_rtts",
    "wait_until_caught_up",
]
