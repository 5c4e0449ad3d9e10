"""The transaction plane: admission into every node's pool and tx gossip, advanced lazily.

:class:`TxPlane` owns the pools (membership, arrival order, size, peak), each tx's admission
outcome and the txs in flight between nodes. The block side calls :meth:`TxPlane.advance` before
it reads or changes a pool, then :meth:`select` (build a block), :meth:`apply_chain` (import or
reorg) or :meth:`clear_pool` (a node goes down).

Why lazy and vectorized: a tx accepted in batch window ``(k·I, (k+1)·I]`` leaves its node at
tick ``(k+1)·I`` at the earliest, so within one window every node's admissions depend only on
txs accepted before it; windows are processed whole, across all nodes, in one compiled step
(:func:`~bitcell_sim.model.admit.admit_step`). When every up pool is either full or has room
for everything that can reach it, a whole span between block events is processed in one step.
"""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np
import numpy.typing as npt

from bitcell_sim.model.admit import admit_step
from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import TickJitter
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.topology import Arrivals

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Admission outcomes, as stored in :attr:`TxPlane.outcome`.
ACCEPTED = 0
POOL_FULL = 1
UNREACHABLE = 2


class OfferQueue:
    """Gossip arrivals (time, node, tx) not processed yet, in buckets of one batch interval.

    Taking what is due by ``t_s`` costs what is taken, not what waits (a window step used to
    scan every offer in flight): buckets wholly before ``t_s``'s interval are taken whole, and
    only the bucket of ``t_s`` itself is cut by time, sorted once when it is first cut. The
    order of what is taken is of no consequence: the tx plane sorts it by node, time and tx.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._buckets: dict[int, list[tuple[FloatArray, IntArray, IntArray]]] = {}
        self._ticks: list[int] = []  # the buckets' keys, sorted
        self._sorted: set[int] = set()  # buckets that are one part sorted by time

    def push(self, time_s: FloatArray, node: IntArray, tx: IntArray) -> None:
        if not len(time_s):
            return
        bucket = np.floor(time_s / self.interval_s).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        bucket, time_s, node, tx = bucket[order], time_s[order], node[order], tx[order]
        bounds = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(bucket)]
        for start, end in itertools.pairwise(bounds):
            key = int(bucket[start])
            if key not in self._buckets:
                bisect.insort(self._ticks, key)
                self._buckets[key] = []
            self._buckets[key].append((time_s[start:end], node[start:end], tx[start:end]))

    def any_due(self, t_s: float) -> bool:
        if not self._ticks:
            return False
        first, last = self._ticks[0], math.floor(t_s / self.interval_s)
        if first != last:
            return first < last
        return bool(self._sorted_bucket(first)[0][0] <= t_s)

    def _sorted_bucket(self, key: int) -> tuple[FloatArray, IntArray, IntArray]:
        """The bucket as one part sorted by time (merged once, when it is first cut)."""
        parts = self._buckets[key]
        if len(parts) > 1 or key not in self._sorted:
            times, nodes, txs = (np.concatenate(p) for p in zip(*parts, strict=True))
            order = np.argsort(times, kind="stable")
            self._buckets[key] = parts = [(times[order], nodes[order], txs[order])]
            self._sorted.add(key)
        return parts[0]

    def _due(self, t_s: float, remove: bool) -> list[tuple[FloatArray, IntArray, IntArray]]:
        # Division is monotone, so time <= t_s puts a time in t_s's bucket or an earlier one.
        last = math.floor(t_s / self.interval_s)
        count = bisect.bisect_right(self._ticks, last)
        taken: list[tuple[FloatArray, IntArray, IntArray]] = []
        for key in self._ticks[:count]:
            if key < last:
                if remove:
                    taken.extend(self._buckets.pop(key))
                    self._sorted.discard(key)
                else:
                    taken.extend(self._buckets[key])
                continue
            times, nodes, txs = self._sorted_bucket(key)
            cut = int(np.searchsorted(times, t_s, side="right"))
            taken.append((times[:cut], nodes[:cut], txs[:cut]))
            if remove and cut < len(times):
                self._buckets[key] = [(times[cut:], nodes[cut:], txs[cut:])]
                count -= 1  # t_s's bucket stays, with what is not due yet
            elif remove:
                del self._buckets[key]
                self._sorted.discard(key)
        if remove:
            self._ticks = self._ticks[count:]
        return taken

    def due_nodes(self, t_s: float) -> IntArray:
        parts = [nodes for _, nodes, _ in self._due(t_s, remove=False)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def pop(self, t_s: float) -> tuple[FloatArray, IntArray, IntArray]:
        """Remove and return every offer due by ``t_s``."""
        taken = self._due(t_s, remove=True)
        if not taken:
            return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        times, nodes, txs = (np.concatenate(part) for part in zip(*taken, strict=True))
        return times, nodes, txs


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
        schedule: FaultSchedule,
        tx_frame_bytes: int,
        cpu_busy_s: FloatArray,
    ) -> None:
        count = len(arrivals)
        self.arrivals = arrivals
        self.node_count = node_count
        self.capacity = capacity
        self.validate_s = validate_s
        self.rpc_service_s = rpc_service_s
        self.interval_s = interval_s
        self.flood = flood
        self.ticks = ticks
        self.schedule = schedule
        self.tx_frame_bytes = tx_frame_bytes
        self.cpu_busy_s = cpu_busy_s  # shared with block imports: one CPU per node
        # Tx-major (txs x nodes): a step's arrivals are a few txs at many nodes, so what it
        # reads and writes is a few contiguous rows, not a cache miss per (node, tx).
        self.in_pool = np.zeros((count, node_count), dtype=np.bool_)
        self.in_chain = np.zeros((count, node_count), dtype=np.bool_)
        # Arrival order at each node (int32: half the memory of int64 on big runs).
        self.order = np.full((count, node_count), -1, dtype=np.int32)
        self._next_order = np.zeros(node_count, dtype=np.int64)
        self.pool_size = np.zeros(node_count, dtype=np.int64)
        self.pool_peak = np.zeros(node_count, dtype=np.int64)
        self.gossip_dropped_full = np.zeros(node_count, dtype=np.int64)
        self.outcome = np.full(count, ACCEPTED, dtype=np.int8)
        self.rpc_latency_s = np.full(count, np.nan)
        self._next_submit = 0
        self.done_s = -interval_s  # everything at or before this instant is processed
        self._offers = OfferQueue(interval_s)
        self._throttles = (
            np.array([w.node for w in schedule.throttles], dtype=np.int64),
            np.array([w.start_s for w in schedule.throttles], dtype=np.float64),
            np.array([w.end_s for w in schedule.throttles], dtype=np.float64),
            np.array([w.share for w in schedule.throttles], dtype=np.float64),
        )
        self.windows = 0  # exact window steps taken (a cost figure for the benchmark)
        self.spans = 0  # whole-span steps taken

    # ---- time ---------------------------------------------------------------------------

    def advance(self, t_s: float) -> None:
        """Process every submission and gossip arrival up to and including ``t_s``."""
        submit_s = self.arrivals.submit_s
        while self.done_s < t_s:
            end = int(np.searchsorted(submit_s, t_s, side="right"))
            if end == self._next_submit and not self._offers.any_due(t_s):
                self.done_s = t_s
                return
            room = self.capacity - self.pool_size
            bound = np.bincount(self._offers.due_nodes(t_s), minlength=self.node_count)
            bound += end - self._next_submit
            if np.all((room <= 0) | (room >= bound)):
                self.spans += 1
                self._step(t_s, end, whole_span=True)
            else:
                self.windows += 1
                window_end = min(t_s, self._next_tick(self.done_s))
                self._step(window_end, int(np.searchsorted(submit_s, window_end, "right")), False)

    def _next_tick(self, t_s: float) -> float:
        tick = (math.floor(t_s / self.interval_s) + 1) * self.interval_s
        return tick if tick > t_s else tick + self.interval_s

    def _step(self, end_s: float, end: int, whole_span: bool) -> None:
        """Admit submissions and gossip arrivals in ``(done_s, end_s]``.

        In a whole span every up pool is full or roomy, so admission does not depend on order
        and txs accepted in the span may reach other nodes within it. In a window (at most one
        batch interval) admission is first-come first-served and nothing accepted in it can
        arrive elsewhere before it ends.
        """
        first = self._next_submit
        sub_tx = np.arange(first, end, dtype=np.int64)
        sub_node = self.arrivals.node[first:end]
        sub_s = self.arrivals.submit_s[first:end]
        if self.schedule.down_windows and len(sub_tx):
            down = self.schedule.down_at(sub_node, sub_s)
            self.outcome[sub_tx[down]] = UNREACHABLE
            up = ~down
            sub_tx, sub_node, sub_s = sub_tx[up], sub_node[up], sub_s[up]
        full = self.pool_size >= self.capacity
        if whole_span:
            accepted = ~full[sub_node]
            self._propagate(sub_tx[accepted], sub_node[accepted], sub_s[accepted])

        off_s, off_node, off_tx = self._offers.pop(end_s)
        throttles = self._throttles
        mine = admit_step(
            sub_tx, sub_node, sub_s, off_tx, off_node, off_s, whole_span, self.capacity,
            self.validate_s, self.rpc_service_s, *throttles, self.in_pool, self.in_chain,
            self.order, self._next_order, self.pool_size, self.pool_peak, self.gossip_dropped_full,
            self.outcome, self.rpc_latency_s, self.cpu_busy_s,
        )  # fmt: skip
        if not whole_span:
            self._propagate(sub_tx[mine], sub_node[mine], sub_s[mine])
        self._next_submit = end
        self.done_s = end_s
        # Every later batch leaves after done_s (sends follow admissions, which follow it).
        self.ticks.forget_before(math.floor(end_s / self.interval_s))

    def _propagate(self, tx: IntArray, node: IntArray, submit_s: FloatArray) -> None:
        if len(tx) == 0:
            return
        heard = self.flood.spread_batched(
            node, submit_s, self.tx_frame_bytes, self.interval_s, self.validate_s, self.ticks
        )
        reached = np.isfinite(heard)  # nodes x txs
        reached[node, np.arange(len(tx))] = False
        nodes, rows = np.nonzero(reached)
        self._offers.push(heard[nodes, rows], nodes.astype(np.int64), tx[rows])

    # ---- what blocks do to pools ----------------------------------------------------------

    def select(self, node: int, limit: int) -> IntArray:
        """Up to ``limit`` pool txs of ``node``: highest gas price first, then arrival order."""
        candidates = np.flatnonzero(self.in_pool[:, node])
        if len(candidates) == 0:
            return candidates.astype(np.int64)
        # pool_priority(gas_price, arrival) = (-gas_price, arrival): lexsort's last key leads.
        order = np.lexsort((self.order[candidates, node], -self.arrivals.gas_price[candidates]))
        return candidates[order[:limit]].astype(np.int64)

    def apply_chain(self, node: int, adopted: IntArray, orphaned: IntArray) -> None:
        """The node's chain gained ``adopted`` txs and lost ``orphaned`` ones (a reorg).

        Adopted txs leave the pool; orphaned txs the new chain does not hold return to it,
        even past capacity (nothing accepted is lost).
        """
        if len(orphaned):
            self.in_chain[orphaned, node] = False
        if len(adopted):
            self.in_chain[adopted, node] = True
            removed = adopted[self.in_pool[adopted, node]]
            self.in_pool[removed, node] = False
            self.pool_size[node] -= len(removed)
        if len(orphaned):
            back = orphaned[~self.in_chain[orphaned, node] & ~self.in_pool[orphaned, node]]
            self.in_pool[back, node] = True
            fresh = back[self.order[back, node] < 0]
            self.order[fresh, node] = self._next_order[node] + np.arange(len(fresh))
            self._next_order[node] += len(fresh)
            self.pool_size[node] += len(back)
            self.pool_peak[node] = max(self.pool_peak[node], self.pool_size[node])

    def clear_pool(self, node: int) -> None:
        """The node stopped: its pool is gone (its chain is kept)."""
        self.in_pool[:, node] = False
        self.pool_size[node] = 0
