"""The node's block tree, canonical chain and state: import, fork choice and reorgs.

``Chain`` keeps every known block (``BlockRecord``: header and tx ids) and the canonical chain
from genesis to the best tip (``consensus.is_better``: longest, ties to the lower hash), with
the ``LedgerState`` at that tip. ``import_block`` validates a block against its parent, stores
it, and switches branches when it makes a better tip, reverting to the common ancestor and
applying the new branch (``ImportResult`` lists what was disconnected and connected).
``build_block`` makes this node's block from pool entries. Everything is persisted in a
``ChainStore`` before it becomes visible, with the block's arrival record (``BlockArrival``:
producer, production time, size, how it came and when its import completed), and ``Chain``
reloads itself from it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bitcell_sim.errors import DevnetError
from bitcell_sim.node.pool import PoolEntry
from bitcell_sim.node.sigcache import SignatureCache
from bitcell_sim.node.state import BlockNotApplicable, LedgerState, Undo, reward_at
from bitcell_sim.node.store import ChainStore
from bitcell_sim.protocol.account import Account, apply_transaction
from bitcell_sim.protocol.arrivals import VIA_GOSSIP, BlockArrival
from bitcell_sim.protocol.block import (
    Block,
    BlockHeader,
    genesis_accounts,
    make_block,
    validate_block,
)
from bitcell_sim.protocol.consensus import ChainTip, is_better
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import Transaction

log = logging.getLogger(__name__)

#: Canonical blocks whose undo logs are kept; a deeper reorg rebuilds the state from genesis.
MAX_UNDO_BLOCKS = 2000
#: Decoded blocks kept in memory (the rest are read back from the store on demand).
BLOCK_CACHE_SIZE = 64
#: Passes over the pool when building a block (a later pass can take a tx whose
#: predecessor from the same sender came later in priority order).
BUILD_PASSES = 3


class ImportStatus(StrEnum):
    KNOWN = "known"
    ORPHAN = "orphan"
    INVALID = "invalid"
    SIDE = "side"
    CANONICAL = "canonical"


@dataclass(slots=True)
class BlockRecord:
    """What the chain keeps in memory of a block: its header and its tx ids."""

    block_hash: bytes
    header: BlockHeader
    tx_ids: tuple[bytes, ...]
    invalid: bool = False

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def parent(self) -> bytes:
        return self.header.prev_hash


@dataclass
class ImportResult:
    """The outcome of ``import_block``: ``connected`` and ``disconnected`` canonical blocks."""

    status: ImportStatus
    block_hash: bytes
    height: int
    connected: list[Block] = field(default_factory=list)
    disconnected: list[Block] = field(default_factory=list)
    error: str = ""
    #: When the import completed (Unix s): set when the block was stored (canonical or side).
    arrival_unix_s: float | None = None

    @property
    def is_reorg(self) -> bool:
        return bool(self.disconnected)


class Chain:
    """Block tree + canonical chain + state of one node, persisted in ``store``.

    ``producer_name`` names a proposer key in the arrival records, ``produced_unix_s`` infers a
    block's production time from its header, ``clock`` stamps import completion.
    """

    def __init__(
        self,
        store: ChainStore,
        genesis: Block,
        allocations: Mapping[bytes, int],
        base_reward: int,
        max_txs_per_block: int,
        sigcache: SignatureCache,
        *,
        producer_name: Callable[[bytes], str] = bytes.hex,
        produced_unix_s: Callable[[BlockHeader], float] = lambda header: float(header.timestamp),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.producer_name = producer_name
        self.produced_unix_s = produced_unix_s
        self.clock = clock
        self.genesis = genesis
        self.allocations = dict(allocations)
        self.base_reward = base_reward
        self.max_txs_per_block = max_txs_per_block
        self.sigcache = sigcache
        self.records: dict[bytes, BlockRecord] = {}
        self.canonical: list[bytes] = []
        self.state = LedgerState()
        self.undos: dict[bytes, Undo] = {}
        self.tx_index: dict[bytes, tuple[bytes, int]] = {}
        self._cache: OrderedDict[bytes, Block] = OrderedDict()
        self._load()

    # ---- loading --------------------------------------------------------------------------

    def _load(self) -> None:
        genesis_hash = self.genesis.hash()
        stored = self.store.get_meta("genesis_hash")
        if stored is None:
            self.store.commit_import(
                [(genesis_hash, 0, self.genesis.header.prev_hash, self.genesis.encode())],
                0,
                [genesis_hash],
            )
            self.store.set_meta("genesis_hash", genesis_hash)
        elif stored != genesis_hash:
            raise DevnetError(
                f"data_dir {self.store.path.parent} holds a chain with genesis "
                f"{stored.hex()[:16]}, but this network's genesis is {genesis_hash.hex()[:16]} "
                "(another network or genesis time): use an empty data_dir"
            )
        self.records[genesis_hash] = BlockRecord(genesis_hash, self.genesis.header, ())
        loaded: dict[bytes, Block] = {genesis_hash: self.genesis}
        for block_hash, raw in self.store.all_blocks():
            if block_hash == genesis_hash:
                continue
            try:
                block = Block.decode(raw)
            except DecodeError as exc:
                raise DevnetError(
                    f"chain database {self.store.path}: block {block_hash.hex()} unreadable: {exc}"
                ) from None
            loaded[block_hash] = block
            self.records[block_hash] = BlockRecord(
                block_hash, block.header, tuple(tx.tx_id() for tx in block.transactions)
            )
        canonical = self.store.canonical_hashes()
        if not canonical or canonical[0] != genesis_hash:
            raise DevnetError(f"chain database {self.store.path}: canonical chain lacks genesis")
        for height, block_hash in enumerate(canonical[1:], start=1):
            record = self.records.get(block_hash)
            if record is None or record.parent != canonical[height - 1]:
                raise DevnetError(
                    f"chain database {self.store.path}: canonical block {height} is broken"
                )
        self.canonical = canonical
        self._rebuild_state(len(canonical) - 1, loaded)
        for block_hash in canonical[-BLOCK_CACHE_SIZE:]:
            self._remember(loaded[block_hash])

    def _rebuild_state(self, upto_height: int, blocks: Mapping[bytes, Block] | None = None) -> None:
        """Replay canonical blocks 1..upto_height on the genesis allocations (trusted: ours)."""
        self.state = LedgerState()
        for key, account in genesis_accounts(self.allocations).items():
            self.state[key] = account
        self.undos.clear()
        self.tx_index.clear()
        keep_from = upto_height - MAX_UNDO_BLOCKS
        for height in range(1, upto_height + 1):
            block_hash = self.canonical[height]
            block = (blocks or {}).get(block_hash) or self.get_block(block_hash)
            try:
                undo = self.state.apply_block(
                    block.transactions,
                    block.header.proposer,
                    reward_at(self.base_reward, height),
                )
            except BlockNotApplicable as exc:
                raise DevnetError(
                    f"stored canonical block {height} does not apply: {exc}"
                ) from None
            if height > keep_from:
                self.undos[block_hash] = undo
            self._index_txs(self.records[block_hash])

    # ---- queries --------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return len(self.canonical) - 1

    @property
    def tip_hash(self) -> bytes:
        return self.canonical[-1]

    @property
    def tip(self) -> BlockRecord:
        return self.records[self.canonical[-1]]

    @property
    def tip_key(self) -> ChainTip:
        return ChainTip(self.height, self.tip_hash)

    def account(self, key: bytes) -> Account | None:
        return self.state.get(key)

    def is_canonical(self, record: BlockRecord) -> bool:
        h = record.height
        return h < len(self.canonical) and self.canonical[h] == record.block_hash

    def _remember(self, block: Block) -> None:
        self._cache[block.hash()] = block
        self._cache.move_to_end(block.hash())
        while len(self._cache) > BLOCK_CACHE_SIZE:
            self._cache.popitem(last=False)

    def get_block(self, block_hash: bytes) -> Block:
        """A known block, from memory or from the store."""
        block = self._cache.get(block_hash)
        if block is not None:
            return block
        raw = self.store.block_raw(block_hash)
        if raw is None:
            raise DevnetError(f"block {block_hash.hex()} is not in the store")
        block = Block.decode(raw)
        self._remember(block)
        return block

    def block_at(self, height: int) -> Block | None:
        if not 0 <= height < len(self.canonical):
            return None
        return self.get_block(self.canonical[height])

    def canonical_range(self, from_height: int, count: int) -> list[Block]:
        end = min(len(self.canonical), from_height + count)
        return [self.get_block(self.canonical[h]) for h in range(max(from_height, 0), end)]

    def find_transaction(self, tx_id: bytes) -> tuple[Block, int] | None:
        """The canonical block holding ``tx_id`` and its index, or None."""
        where = self.tx_index.get(tx_id)
        if where is None:
            return None
        return self.get_block(where[0]), where[1]

    # ---- import and fork choice -----------------------------------------------------------

    def import_block(
        self, block: Block, raw: bytes | None = None, via: str = VIA_GOSSIP
    ) -> ImportResult:
        """Validate, store and maybe adopt ``block`` (``via``: how it came, for its arrival
        record); never raises for a bad block."""
        block_hash = block.hash()
        height = block.header.height
        if block_hash in self.records:
            return ImportResult(ImportStatus.KNOWN, block_hash, height)
        parent = self.records.get(block.header.prev_hash)
        if parent is None:
            return ImportResult(ImportStatus.ORPHAN, block_hash, height)
        if parent.invalid:
            return ImportResult(
                ImportStatus.INVALID, block_hash, height, error="its parent is invalid"
            )
        try:
            # State rules (nonces, balances, reward, state root) are checked when the block
            # joins the canonical chain; each tx signature is checked once per node (cached).
            validate_block(
                block, parent.header, self.max_txs_per_block, verify=self.sigcache.verify
            )
        except ProtocolError as exc:
            return ImportResult(ImportStatus.INVALID, block_hash, height, error=str(exc))
        tx_ids = tuple(tx.tx_id() for tx in block.transactions)
        record = BlockRecord(block_hash, block.header, tx_ids)
        raw = raw if raw is not None else block.encode()
        row = (block_hash, height, block.header.prev_hash, raw)
        if not is_better(ChainTip(height, block_hash), self.tip_key):
            arrival_unix_s = self._commit(record, row, via)
            self.records[block_hash] = record
            self._remember(block)
            return ImportResult(
                ImportStatus.SIDE, block_hash, height, arrival_unix_s=arrival_unix_s
            )
        return self._switch_to(record, block, row, via)

    def _commit(
        self,
        record: BlockRecord,
        row: tuple[bytes, int, bytes, bytes],
        via: str,
        canonical_from: int | None = None,
        canonical_hashes: Sequence[bytes] = (),
    ) -> float:
        """Persist ``record``'s block with its arrival record; return the arrival time (taken
        once validation and state are done: only the commit itself comes after it)."""
        header = record.header
        arrival_unix_s = self.clock()
        arrival = BlockArrival(
            block_hash=record.block_hash,
            height=header.height,
            parent_hash=header.prev_hash,
            producer=self.producer_name(header.proposer),
            produced_unix_s=self.produced_unix_s(header),
            tx_count=len(record.tx_ids),
            size_bytes=len(row[3]),
            via=via,
            arrival_unix_s=arrival_unix_s,
        )
        self.store.commit_import(
            [row], canonical_from, canonical_hashes, arrival=arrival.row(record.tx_ids)
        )
        return arrival_unix_s

    def _switch_to(
        self,
        record: BlockRecord,
        block: Block,
        row: tuple[bytes, int, bytes, bytes],
        via: str,
    ) -> ImportResult:
        """Make ``record`` (a better tip) canonical: revert to the fork point, apply, persist."""
        path = [record]
        cursor = self.records[record.parent]
        while not self.is_canonical(cursor):
            if cursor.invalid:
                return ImportResult(
                    ImportStatus.INVALID, record.block_hash, record.height,
                    error="an ancestor is invalid",
                )  # fmt: skip
            path.append(cursor)
            cursor = self.records[cursor.parent]
        path.reverse()
        fork_height = cursor.height
        old_branch = self.canonical[fork_height + 1 :]
        disconnected = [self.get_block(h) for h in reversed(old_branch)]
        self._revert_to(fork_height)

        connected: list[Block] = []
        new_undos: list[Undo] = []
        failure: tuple[int, str] | None = None
        for i, rec in enumerate(path):
            blk = block if rec is record else self.get_block(rec.block_hash)
            try:
                undo = self.state.apply_block(
                    blk.transactions, rec.header.proposer, reward_at(self.base_reward, rec.height)
                )
            except BlockNotApplicable as exc:
                failure = (i, str(exc))
                break
            if self.state.root() != rec.header.state_root:
                self.state.revert(undo)
                failure = (i, "its state_root does not match the state after its transactions")
                break
            connected.append(blk)
            new_undos.append(undo)

        if failure is not None:
            index, reason = failure
            for undo in reversed(new_undos):
                self.state.revert(undo)
            for rec in path[index:]:
                rec.invalid = True
            self._reapply(old_branch, fork_height)
            bad = path[index]
            return ImportResult(
                ImportStatus.INVALID,
                record.block_hash,
                record.height,
                error=f"block {bad.height} ({bad.block_hash.hex()[:12]}): {reason}",
            )

        # Persist first: a kill after this line finds the new chain on disk.
        arrival_unix_s = self._commit(
            record, row, via, fork_height + 1, [rec.block_hash for rec in path]
        )
        self.records[record.block_hash] = record
        self._remember(block)
        for old_hash in old_branch:
            self.undos.pop(old_hash, None)
            for tx_id in self.records[old_hash].tx_ids:
                self.tx_index.pop(tx_id, None)
        del self.canonical[fork_height + 1 :]
        for rec, undo in zip(path, new_undos, strict=True):
            self.canonical.append(rec.block_hash)
            self.undos[rec.block_hash] = undo
            self._index_txs(rec)
        prune_below = self.height - MAX_UNDO_BLOCKS
        if prune_below > 0:
            for h in range(max(1, prune_below - len(path) - 1), prune_below + 1):
                self.undos.pop(self.canonical[h], None)
        return ImportResult(
            ImportStatus.CANONICAL,
            record.block_hash,
            record.height,
            connected=connected,
            disconnected=disconnected,
            arrival_unix_s=arrival_unix_s,
        )

    def _index_txs(self, record: BlockRecord) -> None:
        for index, tx_id in enumerate(record.tx_ids):
            self.tx_index[tx_id] = (record.block_hash, index)

    def _revert_to(self, fork_height: int) -> None:
        """Bring the state back to canonical height ``fork_height`` (canonical list unchanged)."""
        for block_hash in reversed(self.canonical[fork_height + 1 :]):
            undo = self.undos.get(block_hash)
            if undo is None:
                log.warning("reorg deeper than the undo logs: replaying from genesis")
                saved = self.canonical
                self.canonical = saved[: fork_height + 1]
                self._rebuild_state(fork_height)
                self.canonical = saved
                return
            self.state.revert(undo)

    def _reapply(self, branch: Sequence[bytes], fork_height: int) -> None:
        """Re-apply the old canonical ``branch`` after a failed switch (it applied before)."""
        for offset, block_hash in enumerate(branch, start=1):
            blk = self.get_block(block_hash)
            self.undos[block_hash] = self.state.apply_block(
                blk.transactions,
                blk.header.proposer,
                reward_at(self.base_reward, fork_height + offset),
            )

    # ---- production -----------------------------------------------------------------------

    def build_block(self, proposer: KeyPair, entries: Sequence[PoolEntry], timestamp: int) -> Block:
        """This node's block on the tip: pool entries (in the given order) that apply cleanly,
        up to ``max_txs_per_block``, then the reward; the state is left unchanged."""
        parent = self.tip.header
        chosen: list[Transaction] = []
        undo: Undo = []
        with self.state.journal(undo):
            remaining = list(entries)
            for _ in range(BUILD_PASSES):
                skipped: list[PoolEntry] = []
                for entry in remaining:
                    if len(chosen) >= self.max_txs_per_block:
                        break
                    if apply_transaction(self.state, entry.tx):
                        chosen.append(entry.tx)
                    else:
                        skipped.append(entry)
                if len(skipped) == len(remaining) or len(chosen) >= self.max_txs_per_block:
                    break
                remaining = skipped
            reward = reward_at(self.base_reward, parent.height + 1)
            if reward:
                self.state.credit(proposer.public_key, reward)
        root = self.state.root()
        self.state.revert(undo)
        return make_block(proposer, parent, chosen, root, timestamp)
