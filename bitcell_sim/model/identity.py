"""Node identities: the deterministic key of every node of a topology.

:func:`node_key_seed` names the seed a node's secret is derived from
(secret = SHA-256(``"bitcell-sim/<network>/<node>"``)), so the model and the devnet give a node
the same key; :func:`node_keypair` and :func:`node_public_key` build it.
"""

from __future__ import annotations

from functools import cache

from bitcell_sim.protocol.keys import KeyPair


def node_key_seed(network: str, node: str) -> str:
    """The key seed of ``node`` in the network named ``network`` (the topology's name)."""
    return f"bitcell-sim/{network}/{node}"


def node_keypair(network: str, node: str) -> KeyPair:
    """The node's secp256k1 key pair: secret = SHA-256(:func:`node_key_seed`)."""
    return KeyPair.from_seed(node_key_seed(network, node))


@cache
def node_public_key(network: str, node: str) -> bytes:
    """The node's 33-byte compressed public key (its revealer key in the winner rule)."""
    return node_keypair(network, node).public_key
