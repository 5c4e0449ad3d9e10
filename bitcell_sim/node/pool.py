"""The node's transaction pool: bounded, ordered by gas price then arrival, never poisoned.

``TxPool(capacity)`` refuses a duplicate (same id, or same sender and nonce) or a full pool with
the node's -32603 errors; ``restore`` puts back txs of orphaned blocks past capacity;
``ordered()`` is block-building order; ``evict`` removes after a block what can no longer apply
(``EVICTION_REASONS``); ``applicable`` is what the next block could include.
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

#: Why a pool tx was evicted (the ``reason`` label of ``bitcell_pool_evicted_total``).
STALE_NONCE = "stale_nonce"
INSUFFICIENT_BALANCE = "insufficient_balance"
NONCE_GAP = "nonce_gap"
EVICTION_REASONS = (STALE_NONCE, INSUFFICIENT_BALANCE, NONCE_GAP)
#: Blocks a tx whose predecessor (same sender, nonce - 1) is missing may wait for it: a peer
#: admits it right after a block this node may not have imported yet.
NONCE_GAP_GRACE_BLOCKS = 4

Lookup = Callable[[bytes], Account | None]


@dataclass(frozen=True, slots=True)
class PoolEntry:
    tx: Transaction
    tx_id: bytes
    arrival_seq: int
    #: The node's chain height when the tx arrived.
    arrival_height: int = 0

    @property
    def priority(self) -> tuple[int, int]:
        return pool_priority(self.tx.gas_price, self.arrival_seq)


class TxPool:
    """Pending transactions by id, with a per-sender index by nonce."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"pool capacity(={capacity}) must be >= 1")
        self.capacity = capacity
        self._entries: dict[bytes, PoolEntry] = {}
        self._by_sender: dict[bytes, dict[int, bytes]] = {}
        #: Senders with a tx waiting behind a nonce gap: re-checked after every block.
        self._waiting: set[bytes] = set()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._entries

    def get(self, tx_id: bytes) -> PoolEntry | None:
        return self._entries.get(tx_id)

    def check_room(self, tx: Transaction, tx_id: bytes) -> RpcError | None:
        """The error ``add`` would raise for ``tx``, or None (duplicates are checked first)."""
        if tx_id in self._entries or tx.nonce in self._by_sender.get(tx.sender, ()):
            return pool_error(ALREADY_IN_POOL)
        if len(self._entries) >= self.capacity:
            return pool_error(POOL_FULL)
        return None

    def add(
        self, tx: Transaction, tx_id: bytes, height: int = 0, *, waiting: bool = False
    ) -> PoolEntry:
        """Admit ``tx`` (``RpcError`` -32603 if already in or the pool is full); ``waiting``
        says its nonce is ahead of its sender's (it waits for its predecessor)."""
        error = self.check_room(tx, tx_id)
        if error is not None:
            raise error
        if waiting:
            self._waiting.add(tx.sender)
        return self._insert(tx, tx_id, height)

    def restore(self, tx: Transaction, tx_id: bytes, height: int = 0) -> bool:
        """Put back a tx of an orphaned block (capacity not enforced); False if the id, or the
        sender's nonce, is already in."""
        if tx_id in self._entries or tx.nonce in self._by_sender.get(tx.sender, ()):
            return False
        self._insert(tx, tx_id, height)
        return True

    def _insert(self, tx: Transaction, tx_id: bytes, height: int) -> PoolEntry:
        entry = PoolEntry(tx, tx_id, next(self._seq), height)
        self._entries[tx_id] = entry
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx_id
        return entry

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        removed = 0
        for tx_id in tx_ids:
            entry = self._entries.pop(tx_id, None)
            if entry is None:
                continue
            removed += 1
            nonces = self._by_sender[entry.tx.sender]
            if nonces.get(entry.tx.nonce) == tx_id:
                del nonces[entry.tx.nonce]
            if not nonces:
                del self._by_sender[entry.tx.sender]
                self._waiting.discard(entry.tx.sender)
        return removed

    def ordered(self) -> list[PoolEntry]:
        """All entries in block-building order."""
        return sorted(self._entries.values(), key=lambda e: (-e.tx.gas_price, e.arrival_seq))

    def entries(self) -> list[PoolEntry]:
        return list(self._entries.values())

    def _classify(
        self, sender: bytes, account: Account | None
    ) -> tuple[list[PoolEntry], list[tuple[PoolEntry, str]]]:
        """A sender's entries that apply in nonce order on ``account`` (each paying its amount
        from what is left), and the others with the reason they do not."""
        nonces = self._by_sender.get(sender, {})
        expected = account.nonce if account is not None else 0
        left = account.balance if account is not None else 0
        chain: list[PoolEntry] = []
        others: list[tuple[PoolEntry, str]] = []
        broken = False
        for nonce in sorted(nonces):
            entry = self._entries[nonces[nonce]]
            if nonce < expected:
                others.append((entry, STALE_NONCE))
            elif not broken and nonce == expected and entry.tx.amount <= left:
                chain.append(entry)
                left -= entry.tx.amount
                expected += 1
            elif not broken and nonce == expected:
                others.append((entry, INSUFFICIENT_BALANCE))
                broken = True
            else:
                others.append((entry, NONCE_GAP))
                broken = True
        return chain, others

    def evict(
        self, lookup: Lookup, height: int, senders: Iterable[bytes] | None = None
    ) -> dict[str, list[bytes]]:
        """Remove the txs of ``senders`` (all if None; senders with a tx behind a nonce gap
        always) that can no longer apply to the state of ``lookup`` at chain height ``height``;
        return their ids by reason. A tx behind a gap waits ``NONCE_GAP_GRACE_BLOCKS`` blocks
        after its arrival for its predecessor."""
        chosen = list(self._by_sender) if senders is None else set(senders) | self._waiting
        evicted: dict[str, list[bytes]] = {}
        for sender in chosen:
            if sender not in self._by_sender:
                continue
            waits = False
            for entry, reason in self._classify(sender, lookup(sender))[1]:
                if reason == NONCE_GAP and height - entry.arrival_height <= NONCE_GAP_GRACE_BLOCKS:
                    waits = True
                    continue
                evicted.setdefault(reason, []).append(entry.tx_id)
            if waits:
                self._waiting.add(sender)
            else:
                self._waiting.discard(sender)
        for ids in evicted.values():
            self.remove(ids)
        return evicted

    def applicable(self, lookup: Lookup, senders: Iterable[bytes] | None = None) -> list[PoolEntry]:
        """The entries (of ``senders``, all if None) that apply in nonce order now."""
        out: list[PoolEntry] = []
        for sender in list(self._by_sender) if senders is None else senders:
            if sender in self._by_sender:
                out.extend(self._classify(sender, lookup(sender))[0])
        return out

    def can_apply(self, entry: PoolEntry, lookup: Lookup) -> bool:
        """True if ``entry`` applies now, after the sender's pool txs of lower nonces."""
        chain, _ = self._classify(entry.tx.sender, lookup(entry.tx.sender))
        return any(e.tx_id == entry.tx_id for e in chain)
