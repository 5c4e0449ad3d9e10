"""The model: a discrete-event (SimPy) prediction of what a topology's network does.

:func:`simulate` runs a :class:`~bitcell_sim.topology.Topology` and returns a
:class:`ModelResult` with the shared record tables (blocks, block arrivals, transactions, node
timeline). :func:`apply_overrides` changes seed, duration or load before a run;
:func:`node_key_seed` is the key derivation the devnet shares. docs/model.md explains what is
simulated and what is left out.
"""

from bitcell_sim.model.engine import ModelResult, Simulation, simulate
from bitcell_sim.model.identity import node_key_seed, node_keypair, node_public_key
from bitcell_sim.model.overrides import Override, apply_overrides

__all__ = [
    "ModelResult",
    "Override",
    "Simulation",
    "apply_overrides",
    "node_key_seed",
    "node_keypair",
    "node_public_key",
    "simulate",
]
