"""The node's transaction pool: bounded, no eviction, ordered by gas price then arrival.

``TxPool(capacity)`` holds admitted transactions by id. ``add`` refuses a duplicate or a full
pool with the node's -32603 errors; ``restore`` puts back txs of orphaned blocks even past
capacity (nothing accepted is lost). ``ordered()`` is block-building order
(``consensus.pool_priority``: highest gas price, then arrival; never two equal keys), and
``drop_stale`` removes txs whose nonce the sender's confirmed nonce has passed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.admission import ALREADY_IN_POOL, POOL_FULL, pool_error
from bitcell_sim.protocol.consensus import pool_priority
from bitcell_sim.protocol.transaction import Transaction


@dataclass(frozen=True, slots=True)
class PoolEntry:
    tx: Transaction
    tx_id: bytes
    arrival_seq: int

    @property
    def priority(self) -> tuple[int, int]:
        return pool_priority(self.tx.gas_price, self.arrival_seq)


class TxPool:
    """Pending transactions by id, with a per-sender index for pruning."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"pool capacity(={capacity}) must be >= 1")
        self.capacity = capacity
        self._entries: dict[bytes, PoolEntry] = {}
        self._by_sender: dict[bytes, set[bytes]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._entries

    def check_room(self, tx_id: bytes) -> RpcError | None:
        """The error ``add`` would raise for ``tx_id``, or None (duplicate is checked first)."""
        if tx_id in self._entries:
            return pool_error(ALREADY_IN_POOL)
        if len(self._entries) >= self.capacity:
            return pool_error(POOL_FULL)
        return None

    def add(self, tx: Transaction, tx_id: bytes) -> None:
        """Admit ``tx``; raises ``RpcError`` -32603 if it is already in or the pool is full."""
        error = self.check_room(tx_id)
        if error is not None:
            raise error
        self._insert(tx, tx_id)

    def restore(self, tx: Transaction, tx_id: bytes) -> bool:
        """Put back a tx of an orphaned block (capacity not enforced); False if present."""
        if tx_id in self._entries:
            return False
        self._insert(tx, tx_id)
        return True

    def _insert(self, tx: Transaction, tx_id: bytes) -> None:
        self._entries[tx_id] = PoolEntry(tx, tx_id, next(self._seq))
        self._by_sender.setdefault(tx.sender, set()).add(tx_id)

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        removed = 0
        for tx_id in tx_ids:
            entry = self._entries.pop(tx_id, None)
            if entry is None:
                continue
            removed += 1
            ids = self._by_sender[entry.tx.sender]
            ids.discard(tx_id)
            if not ids:
                del self._by_sender[entry.tx.sender]
        return removed

    def ordered(self) -> list[PoolEntry]:
        """All entries in block-building order."""
        return sorted(self._entries.values(), key=lambda e: (-e.tx.gas_price, e.arrival_seq))

    def entries(self) -> list[PoolEntry]:
        return list(self._entries.values())

    def drop_stale(
        self, lookup: Callable[[bytes], Account | None], senders: Iterable[bytes] | None = None
    ) -> list[bytes]:
        """Remove txs whose nonce is below their sender's confirmed nonce; return their ids."""
        stale: list[bytes] = []
        for sender in list(self._by_sender) if senders is None else senders:
            ids = self._by_sender.get(sender)
            if not ids:
                continue
            account = lookup(sender)
            if account is None:
                continue
            stale.extend(i for i in ids if self._entries[i].tx.nonce < account.nonce)
        self.remove(stale)
        return stale
