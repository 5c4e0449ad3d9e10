"""Blocks of the model and the chain rules applied to them.

:class:`Block` is immutable once built: hash, parent, height, producer, round, production time
and the indexes of its txs. :func:`make_block_hash` derives a block's hash from its parent,
producer key and round. :func:`is_better` is fork choice (PROTOCOL.md §3: longest chain, ties to
the lower hash, from :mod:`bitcell_sim.protocol.consensus`); :func:`reorg_path` lists the blocks
a node leaves and joins when its tip moves.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import numpy.typing as npt

from bitcell_sim.protocol.consensus import fork_choice_key

IntArray = npt.NDArray[np.int64]


class Block:
    """One block; ``index`` is its position in the run's list of blocks (genesis is 0)."""

    __slots__ = (
        "hash",
        "hash_hex",
        "height",
        "index",
        "parent",
        "produced_s",
        "producer",
        "round_index",
        "size_bytes",
        "txs",
    )

    def __init__(
        self,
        *,
        block_hash: bytes,
        parent: Block | None,
        producer: int,
        round_index: int,
        produced_s: float,
        txs: IntArray,
        size_bytes: int,
        index: int,
    ) -> None:
        self.hash = block_hash
        self.hash_hex = block_hash.hex()
        self.parent = parent
        self.height: int = 0 if parent is None else parent.height + 1
        self.producer = producer
        self.round_index = round_index
        self.produced_s = produced_s
        self.txs = txs
        self.size_bytes = size_bytes
        self.index = index

    def __repr__(self) -> str:
        return f"Block(height={self.height}, hash={self.hash_hex[:12]}, producer={self.producer})"


def genesis_hash(network: str, seed: int) -> bytes:
    """The hash the model gives the genesis block of ``network`` in the run of ``seed``.

    The winner of every round follows from its parent's hash, so the seed must reach the
    genesis hash for seeds to vary who produces (on the devnet it is the genesis time's).
    """
    return hashlib.sha256(f"bitcell-sim/model-genesis/{network}/{seed}".encode()).digest()


def make_block_hash(parent_hash: bytes, producer_key: bytes, round_index: int) -> bytes:
    """A block's hash: SHA-256 of its parent hash, producer key and round (one per round)."""
    return hashlib.sha256(parent_hash + producer_key + struct.pack("<Q", round_index)).digest()


def is_better(candidate: Block, current: Block) -> bool:
    """Fork choice: ``candidate`` is the longer chain, or as long with the lower hash."""
    return fork_choice_key(candidate.height, candidate.hash) < fork_choice_key(
        current.height, current.hash
    )


def reorg_path(old_tip: Block, new_tip: Block) -> tuple[list[Block], list[Block]]:
    """The blocks left (old tip downwards) and joined (new tip downwards) above the fork."""
    left: list[Block] = []
    joined: list[Block] = []
    a: Block | None = old_tip
    b: Block | None = new_tip
    while a is not None and b is not None and b.height > a.height:
        joined.append(b)
        b = b.parent
    while a is not None and b is not None and a.height > b.height:
        left.append(a)
        a = a.parent
    while a is not None and b is not None and a is not b:
        left.append(a)
        joined.append(b)
        a, b = a.parent, b.parent
    return left, joined


def chain_of(tip: Block) -> list[Block]:
    """Every block from genesis to ``tip``, in height order."""
    blocks: list[Block] = []
    block: Block | None = tip
    while block is not None:
        blocks.append(block)
        block = block.parent
    blocks.reverse()
    return blocks
