"""The transaction plane: admission into every node's pool and tx gossip, advanced lazily.

:class:`TxPlane` owns the pools (membership, arrival order, size, peak), each tx's admission
outcome and the txs in flight between nodes. The block side calls :meth:`TxPlane.advance` before
it reads or changes a pool, then :meth:`select` (build a block), :meth:`apply_chain` (import or
reorg) or :meth:`clear_pool` (a node goes down).

Why lazy and compiled: a tx accepted in batch window ``(k·I, (k+1)·I]`` leaves its node at
tick ``(k+1)·I`` at the earliest, so within one window every node's admissions depend only on
txs accepted before it; windows are processed whole, across all nodes. When every up pool is
either full or has room for everything that can reach it, a whole span between block events is
one step. The steps, their floods and the offer queue run in one compiled loop
(:func:`~bitcell_sim.model.admit.advance_pools`); this class feeds it the tick jitter and the
queue room it asks for.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from bitcell_sim.model.admit import (
    ACCEPTED,
    NEED_ROOM,
    NEED_TICKS,
    POOL_FULL,
    SPANS,
    TABLE_HORIZON_S,
    UNREACHABLE,
    WINDOWS,
    Clock,
    Pools,
    Submissions,
    advance_pools,
    change_chain,
)
from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import TickJitter
from bitcell_sim.model.offers import offer_queue, with_room
from bitcell_sim.topology import Arrivals

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

__all__ = ["ACCEPTED", "POOL_FULL", "UNREACHABLE", "TxPlane"]


class _Compiled:
    """A numba function called through the compiled code for its arguments' types.

    Numba's dispatcher works out the type of every argument on each call: about 25 µs for the
    tx plane's forty arrays in tuples, more than a typical step. Their types never change in a
    run, so after the first call (through the dispatcher, which compiles or loads the code)
    the entry point compiled for those types is called directly; if this numba keeps no such
    entry point, every call goes through the dispatcher.
    """

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self._entry: Any = None

    def __call__(self, *args: Any) -> Any:
        if self._entry is not None:
            return self._entry(*args)
        result = self.dispatcher(*args)
        types = tuple(numba.typeof(a) for a in args)
        compiled = getattr(self.dispatcher, "overloads", {}).get(types)
        self._entry = getattr(compiled, "entry_point", None)
        return result


class TxPlane:
    """Pools and tx gossip of ``node_count`` nodes for the txs of ``arrivals``."""

    def __init__(
        self,
        arrivals: Arrivals,
        node_count: int,
        capacity: int,
        validate_s: float,
        rpc_service_s: float,
        interval_s: float,
        flood: Flood,
        ticks: TickJitter,
        tx_frame_bytes: int,
        cpu_busy_s: FloatArray,
    ) -> None:
        count = len(arrivals)
        self.arrivals = arrivals
        self.interval_s = interval_s
        self.ticks = ticks
        # Node-major (nodes x txs): a block reads and changes one node's row (a contiguous
        # scan, not one cache line per tx), and a step's arrivals at a node are recent txs,
        # neighbours in its row.
        self.pools = Pools(
            in_pool=np.zeros((node_count, count), dtype=np.bool_),
            in_chain=np.zeros((node_count, count), dtype=np.bool_),
            # Arrival order at each node (int32: half the memory of int64 on big runs).
            order=np.full((node_count, count), -1, dtype=np.int32),
            next_order=np.zeros(node_count, dtype=np.int64),
            size=np.zeros(node_count, dtype=np.int64),
            peak=np.zeros(node_count, dtype=np.int64),
            gossip_dropped=np.zeros(node_count, dtype=np.int64),
            outcome=np.full(count, ACCEPTED, dtype=np.int8),
            rpc_latency_s=np.full(count, np.nan),
            cpu_busy_s=cpu_busy_s,
        )
        self.in_pool, self.in_chain, self.order = self.pools[:3]
        self.pool_size, self.pool_peak = self.pools.size, self.pools.peak
        self.gossip_dropped_full = self.pools.gossip_dropped
        self.outcome, self.rpc_latency_s = self.pools.outcome, self.pools.rpc_latency_s
        self._subs = Submissions(
            arrivals.submit_s, arrivals.node, capacity, validate_s, rpc_service_s, interval_s
        )
        self._spread = flood.batched_view(tx_frame_bytes)
        self._clock = Clock(np.array([-interval_s]), np.zeros(3, dtype=np.int64))
        self._queue = offer_queue(interval_s)
        self._advance = _Compiled(advance_pools)
        self._table_last = -1  # the last tick the tick-jitter table has to reach

    @property
    def done_s(self) -> float:
        """Everything at or before this instant is processed."""
        return float(self._clock.done_s[0])

    @property
    def windows(self) -> int:
        """Exact window steps taken (a cost figure for the benchmark)."""
        return int(self._clock.counts[WINDOWS])

    @property
    def spans(self) -> int:
        """Whole-span steps taken."""
        return int(self._clock.counts[SPANS])

    # ---- time ---------------------------------------------------------------------------

    def advance(self, t_s: float) -> None:
        """Process every submission and gossip arrival up to and including ``t_s``."""
        if t_s <= self.done_s:
            return
        interval_s = self.interval_s
        first = max(0, math.floor(self.done_s / interval_s))  # no batch leaves before it
        last = max(self._table_last, math.ceil((t_s + TABLE_HORIZON_S) / interval_s))
        while True:
            if self.ticks.active:
                table, base = self.ticks.table(first, last)
            else:
                table, base = np.zeros((0, 0)), 0
            code, value = self._advance(
                t_s, self._subs, self.pools, self._spread, table, base, self._queue, self._clock
            )
            if code == NEED_TICKS:
                last = max(value, 2 * last - first)
            elif code == NEED_ROOM:
                self._queue = with_room(self._queue, value)
            else:
                break
        self._table_last = last
        # Every later batch leaves after done_s (sends follow admissions, which follow it).
        self.ticks.forget_before(math.floor(self.done_s / interval_s))

    # ---- what blocks do to pools ----------------------------------------------------------

    def select(self, node: int, limit: int) -> IntArray:
        """Up to ``limit`` pool txs of ``node``: highest gas price first, then arrival order."""
        candidates = np.flatnonzero(self.in_pool[node])
        if len(candidates) == 0:
            return candidates
        # pool_priority(gas_price, arrival) = (-gas_price, arrival): lexsort's last key leads.
        order = np.lexsort((self.order[node, candidates], -self.arrivals.gas_price[candidates]))
        return candidates[order[:limit]]

    def apply_chain(self, node: int, adopted: IntArray, orphaned: IntArray) -> None:
        """The node's chain gained ``adopted`` txs and lost ``orphaned`` ones (a reorg).

        Adopted txs leave the pool; orphaned txs the new chain does not hold return to it,
        even past capacity (nothing accepted is lost).
        """
        pools = self.pools
        change_chain(
            pools.in_pool, pools.in_chain, pools.order, pools.next_order, pools.size,
            pools.peak, node, adopted.astype(np.int64), orphaned.astype(np.int64),
        )  # fmt: skip

    def clear_pool(self, node: int) -> None:
        """The node stopped: its pool is gone (its chain is kept)."""
        self.in_pool[node] = False
        self.pool_size[node] = 0
