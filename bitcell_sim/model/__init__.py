"""The model: a discrete-event (SimPy) prediction of what a topology's network does.

:func:`simulate` runs a :class:`~bitcell_sim.topology.Topology` and returns a
:class:`ModelResult` with the shared record tables (blocks, block arrivals, transactions, node
timeline). :func:`apply_overrides` (from the topology layer) changes seed, duration or load
before a run. Node keys come from :mod:`bitcell_sim.protocol.identity`, as on the devnet.
docs/model.md explains what is simulated and what is left out.
"""

from bitcell_sim.model.engine import ModelResult, Simulation, simulate
from bitcell_sim.topology import Override, apply_overrides

__all__ = [
    "ModelResult",
    "Override",
    "Simulation",
    "apply_overrides",
    "simulate",
]
