"""The transaction plane: admission into every node's pool and tx gossip, advanced lazily.

:class:`TxPlane` owns the pools (membership, arrival order, size, peak), each tx's admission
outcome and the txs in flight between nodes. The block side calls :meth:`TxPlane.advance` before
it reads or changes a pool, then :meth:`select` (build a block), :meth:`apply_chain` (import or
reorg) or :meth:`clear_pool` (a node goes down).

Why lazy and vectorized: a tx accepted in batch window ``(k·I, (k+1)·I]`` leaves its node at
tick ``(k+1)·I`` at the earliest, so within one window every node's admissions depend only on
txs accepted before it; windows are processed whole, across all nodes, with numpy. When every
up pool is either full or has room for everything that can reach it, a whole span between
block events is processed in one step.
"""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np
import numpy.typing as npt

from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import TickJitter
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.model.workload import Arrivals

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
        self.interval_s = interval_s
        self.flood = flood
        self.ticks = ticks
        self.schedule = schedule
        self.tx_frame_bytes = tx_frame_bytes
        self.cpu_busy_s = cpu_busy_s  # shared with block imports: one CPU per node
        self.in_pool = np.zeros((node_count, count), dtype=np.bool_)
        self.in_chain = np.zeros((node_count, count), dtype=np.bool_)
        # Arrival order at each node (int32: half the memory of int64 on big runs).
        self.order = np.full((node_count, count), -1, dtype=np.int32)
        self._next_order = np.zeros(node_count, dtype=np.int64)
        self.pool_size = np.zeros(node_count, dtype=np.int64)
        self.pool_peak = np.zeros(node_count, dtype=np.int64)
        self.gossip_dropped_full = np.zeros(node_count, dtype=np.int64)
        self.outcome = np.full(count, ACCEPTED, dtype=np.int8)
        self.rpc_latency_s = np.full(count, np.nan)
        self._next_submit = 0
        self.done_s = -interval_s  # everything at or before this instant is processed
        self._offers = OfferQueue(interval_s)
        self._nodes = np.arange(node_count)
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
        if len(off_s):
            known = self.in_chain[off_node, off_tx] | self.in_pool[off_node, off_tx]
            off_s, off_node, off_tx = off_s[~known], off_node[~known], off_tx[~known]

        node = np.concatenate([sub_node, off_node])
        time_s = np.concatenate([sub_s, off_s])
        tx = np.concatenate([sub_tx, off_tx])
        local = np.zeros(len(node), dtype=np.bool_)
        local[: len(sub_node)] = True
        order = np.lexsort((tx, time_s, node))
        node, time_s, tx, local = node[order], time_s[order], tx[order], local[order]
        group_start = np.searchsorted(node, self._nodes, side="left")
        if whole_span:
            admit = ~full[node]
        else:
            rank = np.arange(len(node)) - group_start[node]
            admit = rank < (self.capacity - self.pool_size)[node]

        self._charge_cpu(node, time_s, tx, local, group_start)
        self.outcome[tx[local & ~admit]] = POOL_FULL
        self.gossip_dropped_full += np.bincount(node[~local & ~admit], minlength=self.node_count)
        in_node, in_tx = node[admit], tx[admit]
        if len(in_node):
            self.in_pool[in_node, in_tx] = True
            counts = np.bincount(in_node, minlength=self.node_count)
            starts = np.searchsorted(in_node, self._nodes, side="left")
            rank = np.arange(len(in_node)) - starts[in_node]
            self.order[in_node, in_tx] = self._next_order[in_node] + rank
            self._next_order += counts
            self.pool_size += counts
            np.maximum(self.pool_peak, self.pool_size, out=self.pool_peak)
        if not whole_span:
            mine = local & admit
            self._propagate(tx[mine], node[mine], time_s[mine])
        self._next_submit = end
        self.done_s = end_s
        # Every later batch leaves after done_s (sends follow admissions, which follow it).
        self.ticks.forget_before(math.floor(end_s / self.interval_s))

    def _charge_cpu(
        self,
        node: IntArray,
        time_s: FloatArray,
        tx: IntArray,
        local: BoolArray,
        group_start: IntArray,
    ) -> None:
        """Validation work of every tx a node looked at (sorted by node, then time).

        The node's CPU is busy until at least the end of its last validation and at least its
        earlier backlog plus all this work: exact when idle and when saturated, an estimate in
        between. A submission's RPC latency is its validation plus the backlog it found.
        """
        if len(node) == 0:
            return
        cost = np.full(len(node), self.validate_s)
        if self.schedule.throttles:
            cost = self.validate_s / self.schedule.cpu_share_at(node, time_s)
        busy = self.cpu_busy_s
        wait = np.maximum(busy[node] - time_s, 0.0)
        self.rpc_latency_s[tx[local]] = (cost + wait)[local]
        work = np.bincount(node, weights=cost, minlength=self.node_count)
        group_end = np.searchsorted(node, self._nodes, side="right") - 1
        has = group_end >= group_start
        last_done = np.where(has, time_s[group_end] + cost[group_end], -np.inf)
        busy[:] = np.where(has, np.maximum(busy + work, last_done), busy)

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
        candidates = np.flatnonzero(self.in_pool[node])
        if len(candidates) == 0:
            return candidates.astype(np.int64)
        # pool_priority(gas_price, arrival) = (-gas_price, arrival): lexsort's last key leads.
        order = np.lexsort((self.order[node, candidates], -self.arrivals.gas_price[candidates]))
        return candidates[order[:limit]].astype(np.int64)

    def apply_chain(self, node: int, adopted: IntArray, orphaned: IntArray) -> None:
        """The node's chain gained ``adopted`` txs and lost ``orphaned`` ones (a reorg).

        Adopted txs leave the pool; orphaned txs the new chain does not hold return to it,
        even past capacity (nothing accepted is lost).
        """
        if len(orphaned):
            self.in_chain[node, orphaned] = False
        if len(adopted):
            self.in_chain[node, adopted] = True
            removed = adopted[self.in_pool[node, adopted]]
            self.in_pool[node, removed] = False
            self.pool_size[node] -= len(removed)
        if len(orphaned):
            back = orphaned[~self.in_chain[node, orphaned] & ~self.in_pool[node, orphaned]]
            self.in_pool[node, back] = True
            fresh = back[self.order[node, back] < 0]
            self.order[node, fresh] = self._next_order[node] + np.arange(len(fresh))
            self._next_order[node] += len(fresh)
            self.pool_size[node] += len(back)
            self.pool_peak[node] = max(self.pool_peak[node], self.pool_size[node])

    def clear_pool(self, node: int) -> None:
        """The node stopped: its pool is gone (its chain is kept)."""
        self.in_pool[node] = False
        self.pool_size[node] = 0
