"""The node's confirmed account state, with undo logs and an incrementally kept state root.

``LedgerState`` is a ``MutableMapping[bytes, Account]`` so the protocol's own transition
(``account.apply_transaction``) runs on it unchanged; every write is recorded in the current
``Undo`` so a block can be reverted on a reorg. ``root()`` equals ``account.state_root`` of
the same accounts but keeps the state tree between blocks: a write marks its leaf, and only
marked leaves and their paths are hashed again (a block costs the same with 100 accounts or a
million).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager

from bitcell_sim.protocol.account import (
    EMPTY_DIGEST,
    HALVING_INTERVAL_BLOCKS,
    STATE_TREE_DEPTH,
    Account,
    account_entry,
    apply_transaction,
    leaf_digest,
    node_digest,
    state_leaf,
)
from bitcell_sim.protocol.transaction import Transaction

_U64_MAX = (1 << 64) - 1

#: (key, value before the write or None if the key did not exist), in write order.
Undo = list[tuple[bytes, Account | None]]


class BlockNotApplicable(Exception):
    """A block whose transaction ``index`` does not apply to the parent state."""

    def __init__(self, index: int, tx: Transaction) -> None:
        self.index = index
        self.tx = tx
        super().__init__(
            f"tx {index} ({tx.tx_id().hex()[:16]}) does not apply: nonce {tx.nonce}, "
            f"amount {tx.amount}"
        )


def reward_at(base_reward: int, height: int) -> int:
    """The proposer reward at ``height``: the topology's reward, halved every 210,000 blocks."""
    halvings = height // HALVING_INTERVAL_BLOCKS
    return base_reward >> halvings if halvings < 64 else 0


class LedgerState(MutableMapping[bytes, Account]):
    """Accounts by 33-byte key; writes are journalled while a ``begin()``/``end()`` is open."""

    def __init__(self) -> None:
        self._accounts: dict[bytes, Account] = {}
        self._entries: dict[bytes, bytes] = {}
        #: The keys of each non-empty leaf, sorted; leaves written since the last root().
        self._leaf_keys: dict[int, list[bytes]] = {}
        self._dirty: set[int] = set()
        #: The 16 child digests of every non-empty tree node, by depth (1 = parents of leaves).
        self._children: list[dict[int, list[bytes]]] = [{} for _ in range(STATE_TREE_DEPTH + 1)]
        self._root = EMPTY_DIGEST
        self._journal: Undo | None = None

    # ---- mapping protocol -----------------------------------------------------------------

    def __getitem__(self, key: bytes) -> Account:
        return self._accounts[key]

    def get(self, key: bytes, default: Account | None = None) -> Account | None:  # type: ignore[override]
        return self._accounts.get(key, default)

    def __setitem__(self, key: bytes, value: Account) -> None:
        previous = self._accounts.get(key)
        if self._journal is not None:
            self._journal.append((key, previous))
        leaf = state_leaf(key)
        if previous is None:
            bisect.insort(self._leaf_keys.setdefault(leaf, []), key)
        self._accounts[key] = value
        self._entries[key] = account_entry(key, value)
        self._dirty.add(leaf)

    def __delitem__(self, key: bytes) -> None:
        previous = self._accounts.pop(key)
        if self._journal is not None:
            self._journal.append((key, previous))
        del self._entries[key]
        leaf = state_leaf(key)
        keys = self._leaf_keys[leaf]
        del keys[bisect.bisect_left(keys, key)]
        if not keys:
            del self._leaf_keys[leaf]
        self._dirty.add(leaf)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def __contains__(self, key: object) -> bool:
        return key in self._accounts

    # ---- state root and journal -----------------------------------------------------------

    def root(self) -> bytes:
        """``account.state_root`` of the current accounts (only changed paths are hashed)."""
        if not self._dirty:
            return self._root
        entries = self._entries
        changed = {
            leaf: leaf_digest([entries[k] for k in self._leaf_keys.get(leaf, ())])
            for leaf in self._dirty
        }
        self._dirty = set()
        for depth in range(1, STATE_TREE_DEPTH + 1):
            nodes = self._children[depth]
            for index, digest in changed.items():
                slots = nodes.get(index >> 4)
                if slots is None:
                    slots = nodes[index >> 4] = [EMPTY_DIGEST] * 16
                slots[index & 15] = digest
            changed = {parent: node_digest(nodes[parent]) for parent in {i >> 4 for i in changed}}
            for parent, digest in changed.items():
                if digest == EMPTY_DIGEST:
                    del nodes[parent]
        self._root = changed.get(0, self._root)
        return self._root

    def credit(self, key: bytes, amount: int) -> None:
        current = self._accounts.get(key) or Account()
        self[key] = Account(min(current.balance + amount, _U64_MAX), current.nonce)

    @contextmanager
    def journal(self, undo: Undo) -> Iterator[Undo]:
        """Record every write made inside the ``with`` block into ``undo``."""
        self._journal = undo
        try:
            yield undo
        finally:
            self._journal = None

    def apply_block(
        self, transactions: Sequence[Transaction], proposer: bytes, reward: int
    ) -> Undo:
        """Apply every tx (each must apply) then the reward; on failure nothing is changed."""
        undo: Undo = []
        try:
            with self.journal(undo):
                for index, tx in enumerate(transactions):
                    if not apply_transaction(self, tx):
                        raise BlockNotApplicable(index, tx)
                if reward:
                    self.credit(proposer, reward)
        except BaseException:
            self.revert(undo)
            raise
        return undo

    def revert(self, undo: Undo) -> None:
        """Undo the writes of ``undo`` (newest first)."""
        for key, previous in reversed(undo):
            if previous is None:
                if key in self._accounts:
                    del self[key]
            else:
                self[key] = previous
