"""Following the chain: which block confirmed each accepted transaction, and whether it stalled.

:class:`ChainWatcher` polls one node (``eth_blockNumber``, ``eth_getBlockByNumber`` per new height,
``bitcell_getPendingBlockInfo``) and confirms the matching records of a ``TxLog`` (with
``own_records_only``: those sent to that node) when it first sees their block; a block whose
parent is not the block it saw below is a reorg, whose orphaned transactions go back to pending.
:class:`StallDetector` reports a :class:`Stall`: no new height for a window while txs are pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bitcell_sim.errors import RpcError
from bitcell_sim.load.txlog import TxLog, TxRecord, strip_hex
from bitcell_sim.protocol.hexcodec import parse_quantity

#: How many recent heights the watcher remembers to follow a reorg back.
KEEP_BLOCKS = 256
#: How many height changes a stall report lists.
REPORTED_HEIGHTS = 12


class ChainReader(Protocol):
    """The three calls the watcher makes (``RpcClient`` has them)."""

    def block_number(self) -> int: ...

    def get_block_by_number(
        self, tag: int | str = ..., full: bool = ...
    ) -> dict[str, Any] | None: ...

    def get_pending_block_info(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class HeightSeen:
    time_s: float
    height: int


@dataclass(frozen=True)
class Stall:
    """The chain at ``node`` stayed at ``height`` from ``since_s`` to ``detected_s``."""

    node: str
    height: int | None
    since_s: float
    detected_s: float
    window_s: float
    pending: int
    heights: tuple[HeightSeen, ...]
    last_error: str | None = None

    def message(self) -> str:
        seen = ", ".join(f"{h.height} @ {h.time_s:.1f} s" for h in self.heights) or "none"
        where = (
            f"height stayed at {self.height} on {self.node}"
            if self.height is not None
            else f"no height could be read from {self.node}"
        )
        text = (
            f"chain stalled: {where} for "
            f"{self.detected_s - self.since_s:.1f} s (limit {self.window_s:.1f} s) while "
            f"{self.pending} accepted transactions were unconfirmed; heights seen: {seen}"
        )
        if self.last_error:
            text += f"; last watcher error: {self.last_error}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "height": self.height,
            "since_s": self.since_s,
            "detected_s": self.detected_s,
            "window_s": self.window_s,
            "pending": self.pending,
            "heights": [[h.time_s, h.height] for h in self.heights],
            "last_error": self.last_error,
            "message": self.message(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stall:
        return cls(
            node=data["node"],
            height=None if data["height"] is None else int(data["height"]),
            since_s=float(data["since_s"]),
            detected_s=float(data["detected_s"]),
            window_s=float(data["window_s"]),
            pending=int(data["pending"]),
            heights=tuple(HeightSeen(float(t), int(h)) for t, h in data["heights"]),
            last_error=data.get("last_error"),
        )


class StallDetector:
    """No height change for ``window_s`` while something is pending is a stall.

    The clock starts at the later of the last height change and the moment transactions became
    pending, so an idle chain that gets its first transaction is given a full window.
    """

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"stall window(={window_s} s) must be > 0")
        self.window_s = window_s
        self.height: int | None = None
        self.progress_s: float | None = None
        self._was_pending = False

    def observe(self, now_s: float, height: int | None, pending: int) -> bool:
        """Feed one poll (height None: the node did not answer); True once stalled."""
        if height is not None and height != self.height:
            self.height = height
            self.progress_s = now_s
        if pending > 0 and not self._was_pending:
            self.progress_s = now_s if self.progress_s is None else max(self.progress_s, now_s)
        self._was_pending = pending > 0
        if self.progress_s is None:
            self.progress_s = now_s
        return pending > 0 and now_s - self.progress_s >= self.window_s


@dataclass
class _Seen:
    hash: str
    tx_ids: list[str]


@dataclass
class WatchStats:
    """What the watcher saw, for the summary."""

    polls: int = 0
    errors: int = 0
    last_error: str | None = None
    blocks: int = 0
    reorgs: int = 0
    orphaned_blocks: int = 0
    first_height: int | None = None
    height: int | None = None
    pool_pending_max: int | None = None
    pool_pending_last: int | None = None
    heights: list[HeightSeen] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "errors": self.errors,
            "last_error": self.last_error,
            "blocks": self.blocks,
            "reorgs": self.reorgs,
            "orphaned_blocks": self.orphaned_blocks,
            "first_height": self.first_height,
            "height": self.height,
            "pool_pending_max": self.pool_pending_max,
            "pool_pending_last": self.pool_pending_last,
        }


class ChainWatcher:
    """Polls ``client`` (the node named ``node``) and confirms ``log``'s transactions."""

    def __init__(
        self,
        client: ChainReader,
        log: TxLog,
        node: str,
        clock: Callable[[], float],
        stall_window_s: float,
        on_confirmed: Callable[[TxRecord], None] | None = None,
        on_reverted: Callable[[TxRecord], None] | None = None,
        own_records_only: bool = False,
        read_pool: bool = True,
    ) -> None:
        self.client = client
        # Confirm only the transactions submitted to this node (one watcher per node).
        self.only = node if own_records_only else None
        self.read_pool = read_pool
        self.log = log
        self.node = node
        self.clock = clock
        self.detector = StallDetector(stall_window_s)
        self.on_confirmed = on_confirmed
        self.on_reverted = on_reverted
        self.stats = WatchStats()
        self.stall: Stall | None = None
        self._chain: dict[int, _Seen] = {}
        self._height: int | None = None

    def start(self) -> int:
        """Take the current height as the baseline (our transactions come after it)."""
        height = self.client.block_number()
        now = self.clock()
        self._height = height
        block = self.client.get_block_by_number(height, False)
        if block is not None:
            self._chain[height] = _Seen(strip_hex(block["hash"]), [])
        self.stats.first_height = self.stats.height = height
        self.stats.heights.append(HeightSeen(now, height))
        self.detector.observe(now, height, 0)
        return height

    def poll(self) -> Stall | None:
        """One poll: follow new blocks, read the pool size, check for a stall (None: none)."""
        self.stats.polls += 1
        height: int | None
        try:
            if self._height is None:
                self.start()
            height = self.client.block_number()
            now = self.clock()
            if self._height is not None and height > self._height:
                self._follow(height, now)
            if self.read_pool:
                self._read_pool()
        except (RpcError, KeyError, TypeError, ValueError) as exc:
            # A node that does not answer, or answers something malformed, makes no progress.
            now = self.clock()
            height = None
            self.stats.errors += 1
            self.stats.last_error = str(exc) or type(exc).__name__
        self.stall = None
        if self.detector.observe(
            now, self._height if height is not None else None, len(self.log.pending)
        ):
            assert self.detector.progress_s is not None
            self.stall = Stall(
                node=self.node,
                height=self.detector.height,
                since_s=self.detector.progress_s,
                detected_s=now,
                window_s=self.detector.window_s,
                pending=len(self.log.pending),
                heights=tuple(self.stats.heights[-REPORTED_HEIGHTS:]),
                last_error=self.stats.last_error,
            )
        return self.stall

    def _read_pool(self) -> None:
        info = self.client.get_pending_block_info()
        pending = info.get("pendingTransactions")
        if isinstance(pending, int):
            self.stats.pool_pending_last = pending
            if self.stats.pool_pending_max is None or pending > self.stats.pool_pending_max:
                self.stats.pool_pending_max = pending

    def _follow(self, tip: int, now: float) -> None:
        assert self._height is not None
        h = self._height + 1
        walking_back = False
        while h <= tip:
            block = self.client.get_block_by_number(h, False)
            if block is None:
                break  # the node's tip moved back under us; pick up again next poll
            parent = strip_hex(block["parentHash"])
            below = self._chain.get(h - 1)
            if below is not None and below.hash != parent and h - 1 > self._lowest_kept():
                # The block we saw below is not this one's parent: a reorg; walk back.
                if not walking_back:
                    self.stats.reorgs += 1
                    walking_back = True
                self._orphan(h - 1)
                h -= 1
                continue
            walking_back = False
            self._accept(h, block, now)
            h += 1

    def _lowest_kept(self) -> int:
        return min(self._chain) if self._chain else 0

    def _accept(self, height: int, block: dict[str, Any], now: float) -> None:
        block_hash = strip_hex(block["hash"])
        tx_ids = [strip_hex(t if isinstance(t, str) else t["hash"]) for t in block["transactions"]]
        number = block.get("number")
        if isinstance(number, str) and parse_quantity(number) != height:
            raise RpcError(None, f"asked for block {height}, got block {number}")
        self._chain[height] = _Seen(block_hash, tx_ids)
        self._chain.pop(height - KEEP_BLOCKS, None)
        self._height = height
        self.stats.blocks += 1
        self.stats.height = height
        self.stats.heights.append(HeightSeen(now, height))
        for record in self.log.confirm(tx_ids, now, height, block_hash, self.only):
            if self.on_confirmed is not None:
                self.on_confirmed(record)

    def _orphan(self, height: int) -> None:
        seen = self._chain.pop(height)
        self.stats.orphaned_blocks += 1
        self._height = height - 1
        for record in self.log.revert(seen.tx_ids, seen.hash, self.only):
            if self.on_reverted is not None:
                self.on_reverted(record)
