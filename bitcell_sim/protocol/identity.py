"""Who is who in a bitcell-sim network: the keys every part derives the same way.

:func:`node_keypair` is a node's validator key, :func:`funded_sender` the i-th genesis-funded
account; both are pure functions of the network name, so the model, the devnet and the load
test agree on public keys (and so on tournament winners) without exchanging anything. These keys
are public knowledge by construction: they are for simulation networks, never for real funds.
"""

from __future__ import annotations

from functools import cache

from bitcell_sim.protocol.keys import KeyPair


def node_key_seed(network: str, node: str) -> str:
    return f"bitcell-sim/{network}/node/{node}"


@cache
def node_keypair(network: str, node: str) -> KeyPair:
    """The validator key of ``node`` in ``network`` (secret = SHA-256 of its key seed)."""
    return KeyPair.from_seed(node_key_seed(network, node))


@cache
def funded_sender(network: str, index: int) -> KeyPair:
    """The ``index``-th account funded at genesis (see ``genesis.funded_accounts``)."""
    if index < 0:
        raise ValueError(f"sender index {index} must be >= 0")
    return KeyPair.from_seed(f"bitcell-sim/{network}/sender/{index}")
