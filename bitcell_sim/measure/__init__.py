"""Measure: a deployment recorded from outside, through its nodes' RPC and metrics endpoints.

:class:`Watch` polls every node's tip (fetching each new tip's blocks) and samples its state;
:func:`write_measured_run` writes what it saw as a measured run folder in the shared format, so
``compare`` reads a cloud deployment like a devnet run. It imports no other world.
"""

from bitcell_sim.measure.record import Measured, settled_end_s, write_measured_run
from bitcell_sim.measure.watch import (
    DEFAULT_POLL_INTERVAL_S,
    TIMELINE_INTERVAL_S,
    Arrival,
    SeenBlock,
    Watch,
    genesis_clock,
)

__all__ = [
    "DEFAULT_POLL_INTERVAL_S",
    "TIMELINE_INTERVAL_S",
    "Arrival",
    "Measured",
    "SeenBlock",
    "Watch",
    "genesis_clock",
    "settled_end_s",
    "write_measured_run",
]
