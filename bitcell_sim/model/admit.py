"""The compiled core of the tx plane: advancing every node's pool in time (numba).

:func:`advance_pools` is :meth:`TxPlane.advance <bitcell_sim.model.txplane.TxPlane.advance>`
whole: it cuts the time up to ``t`` into whole spans or batch windows, floods the txs each
step accepts (:func:`~bitcell_sim.model.relax.batch_arrivals`) into the offer queue
(:mod:`bitcell_sim.model.offers`) and admits each step with :func:`admit_step`, which takes a
step's submissions and gossip arrivals, drops arrivals a node already holds (pool or chain),
orders the rest by node, time and tx, admits them first come first served (or, in a whole span,
wherever the pool is not full), charges each node's CPU for the txs it looked at (validation; a
submission also its RPC service), and updates pools, arrival order, sizes and peaks. The
semantics are those of :class:`~bitcell_sim.model.txplane.TxPlane` (docs/model.md,
"Transactions and pools"); the loop is compiled because a run takes tens of thousands of steps
and each one is small.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from bitcell_sim.model.offers import (
    FREE_COUNT,
    OfferQueue,
    any_due,
    overflows,
    pop_due,
    push_floods,
)
from bitcell_sim.model.relax import FaultArrays, batch_arrivals, fanout_use

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Admission outcomes, as stored in ``Pools.outcome``.
ACCEPTED = 0
POOL_FULL = 1
UNREACHABLE = 2
#: What :func:`advance_pools` returns with: done, or it stopped before a step that needs the
#: tick-jitter table to reach a later tick, or more free entries in the offer queue.
DONE, NEED_TICKS, NEED_ROOM = 0, 1, 2
#: How far past the latest start the tick-jitter table reaches at first (it grows when a flood
#: needs more: floods over a slow, wide network take seconds).
TABLE_HORIZON_S = 4.0


class Pools(NamedTuple):
    """Every node's pool and every tx's admission outcome (arrays changed in place)."""

    in_pool: BoolArray  # nodes x txs
    in_chain: BoolArray  # nodes x txs
    order: npt.NDArray[np.int32]  # nodes x txs: arrival order at the node, -1 none
    next_order: IntArray
    size: IntArray
    peak: IntArray
    gossip_dropped: IntArray
    outcome: npt.NDArray[np.int8]
    rpc_latency_s: FloatArray
    cpu_busy_s: FloatArray  # shared with block imports: one CPU per node


class Spread(NamedTuple):
    """What a tx flood needs (:class:`~bitcell_sim.model.flood.Flood`'s batched view)."""

    out_start: IntArray
    out_link: IntArray
    link_dst: IntArray
    latency_s: FloatArray
    serialize_s: float
    fanout: int
    fanout_key: np.uint64
    faults: FaultArrays


class Submissions(NamedTuple):
    """The run's submissions (by time) and what admitting a tx costs."""

    submit_s: FloatArray
    node: IntArray
    capacity: int  # pool capacity
    validate_s: float
    rpc_service_s: float
    interval_s: float  # the tx batch interval


class Clock(NamedTuple):
    """The tx plane's progress (arrays of one or a few values, changed in place)."""

    done_s: FloatArray  # [0]: everything at or before this instant is processed
    counts: IntArray  # next submission, window steps, whole-span steps


@njit(cache=True)
def _by_node_time_tx(node: IntArray, time_s: FloatArray, tx: IntArray, n: int) -> IntArray:
    """The order of np.lexsort((tx, time_s, node)): a counting sort by node, then an insertion
    sort of each node's few entries by (time, tx)."""
    starts = np.zeros(n + 1, dtype=np.int64)
    for v in node:
        starts[v + 1] += 1
    for v in range(n):
        starts[v + 1] += starts[v]
    fill = starts[:-1].copy()
    index = np.empty(len(node), dtype=np.int64)
    for e in range(len(node)):
        index[fill[node[e]]] = e
        fill[node[e]] += 1
    for v in range(n):
        for a in range(starts[v] + 1, starts[v + 1]):
            e = index[a]
            b = a
            while b > starts[v] and (
                time_s[index[b - 1]] > time_s[e]
                or (time_s[index[b - 1]] == time_s[e] and tx[index[b - 1]] > tx[e])
            ):
                index[b] = index[b - 1]
                b -= 1
            index[b] = e
    return index


@njit(cache=True)
def admit_step(
    sub_tx: IntArray,
    sub_node: IntArray,
    sub_s: FloatArray,
    off_tx: IntArray,
    off_node: IntArray,
    off_s: FloatArray,
    whole_span: bool,
    subs: Submissions,
    faults: FaultArrays,
    pools: Pools,
) -> IntArray:
    """One step; returns the positions in ``sub_*`` of the submissions it admitted, in the
    step's order (node, time, tx)."""
    capacity, validate_s, rpc_service_s = subs.capacity, subs.validate_s, subs.rpc_service_s
    throttle_node, throttle_start_s = faults.throttle_node, faults.throttle_start_s
    throttle_end_s, throttle_share = faults.throttle_end_s, faults.throttle_share
    # Locals, not tuple fields, in the loops: no reference counting per access.
    in_pool, in_chain, order, next_order, pool_size, pool_peak = pools[:6]
    gossip_dropped, outcome, rpc_latency_s, cpu_busy_s = pools[6:]
    n = len(pool_size)
    full = pool_size >= capacity  # as the step starts
    room = capacity - pool_size
    # Arrivals a node already holds are ignored.
    k = len(sub_tx)
    node = np.empty(k + len(off_tx), dtype=np.int64)
    time_s = np.empty(k + len(off_tx))
    tx = np.empty(k + len(off_tx), dtype=np.int64)
    source = np.empty(k + len(off_tx), dtype=np.int64)  # position in sub_*, or -1: arrival
    node[:k], time_s[:k], tx[:k] = sub_node, sub_s, sub_tx
    source[:k] = np.arange(k)
    count = k
    for i in range(len(off_tx)):
        if not (in_chain[off_node[i], off_tx[i]] or in_pool[off_node[i], off_tx[i]]):
            node[count], time_s[count], tx[count], source[count] = (
                off_node[i],
                off_s[i],
                off_tx[i],
                -1,
            )
            count += 1
    node, time_s, tx, source = node[:count], time_s[:count], tx[:count], source[:count]
    index = _by_node_time_tx(node, time_s, tx, n)
    work = np.zeros(n)
    last_done = np.full(n, -np.inf)
    seen = np.zeros(n, dtype=np.int64)  # entries of each node so far (its rank)
    taken = np.zeros(n, dtype=np.int64)  # admitted so far
    mine = np.empty(k, dtype=np.int64)
    admitted_local = 0
    for position in range(count):
        e = index[position]
        v, t, x, s = node[e], time_s[e], tx[e], source[e]
        admit = not full[v] if whole_span else seen[v] < room[v]
        seen[v] += 1
        # The work: validation, and for a submission its service (HTTP and JSON-RPC handling,
        # on the same CPU). The CPU is busy until at least the end of the node's last piece of
        # work and at least its earlier backlog plus all this work; a submission's RPC latency
        # is the backlog it found plus its own work.
        share = 1.0
        for w in range(len(throttle_node)):
            if throttle_node[w] == v and throttle_start_s[w] <= t < throttle_end_s[w]:
                share = min(share, throttle_share[w])
        cost = validate_s + rpc_service_s if s >= 0 else validate_s
        if len(throttle_node):
            cost /= share
        if s >= 0:
            wait = cpu_busy_s[v] - t
            rpc_latency_s[x] = cost + (wait if wait > 0.0 else 0.0)
        work[v] += cost
        last_done[v] = t + cost
        if not admit:
            if s >= 0:
                outcome[x] = POOL_FULL
            else:
                gossip_dropped[v] += 1
            continue
        in_pool[v, x] = True
        order[v, x] = next_order[v] + taken[v]
        taken[v] += 1
        if s >= 0:
            mine[admitted_local] = s
            admitted_local += 1
    for v in range(n):
        if seen[v]:
            cpu_busy_s[v] = max(cpu_busy_s[v] + work[v], last_done[v])
        next_order[v] += taken[v]
        pool_size[v] += taken[v]
        if pool_size[v] > pool_peak[v]:
            pool_peak[v] = pool_size[v]
    return mine[:admitted_local]


#: Positions in ``Clock.counts``.
NEXT_SUBMIT, WINDOWS, SPANS = 0, 1, 2


@njit(cache=True)
def advance_pools(
    t_s: float,
    subs: Submissions,
    pools: Pools,
    spread: Spread,
    tick_table: FloatArray,
    tick_base: int,
    queue: OfferQueue,
    clock: Clock,
) -> tuple[int, int]:
    """Process every submission and gossip arrival up to and including ``t_s``.

    Returns ``(DONE, 0)``, or stops before a step it cannot take yet, with nothing of that step
    changed: ``(NEED_TICKS, tick)`` when a flood needs the jitter of a tick past the table, or
    ``(NEED_ROOM, entries)`` when the queue needs that many free entries. The caller provides
    them and calls again.
    """
    submit_s, interval_s = subs.submit_s, subs.interval_s
    while clock.done_s[0] < t_s:
        first = int(clock.counts[NEXT_SUBMIT])
        end = int(np.searchsorted(submit_s, t_s, side="right"))
        if end == first and not any_due(queue, t_s):
            clock.done_s[0] = t_s
            return DONE, 0
        # A whole span when every pool is full or has room for all that can reach it: each
        # new submission reaches each node at most once (itself or as gossip).
        whole_span = not overflows(queue, t_s, subs.capacity - pools.size, end - first)
        if whole_span:
            step_end_s = t_s
        else:
            done = clock.done_s[0]
            tick = (math.floor(done / interval_s) + 1) * interval_s
            step_end_s = min(t_s, tick if tick > done else tick + interval_s)
            end = int(np.searchsorted(submit_s, step_end_s, side="right"))
        code, value = _step(
            step_end_s, first, end, whole_span, subs, pools, spread, tick_table, tick_base, queue
        )
        if code != DONE:
            return code, value
        clock.counts[NEXT_SUBMIT] = end
        clock.counts[SPANS if whole_span else WINDOWS] += 1
        clock.done_s[0] = step_end_s
    return DONE, 0


@njit(cache=True)
def _step(
    end_s: float,
    first: int,
    end: int,
    whole_span: bool,
    subs: Submissions,
    pools: Pools,
    spread: Spread,
    tick_table: FloatArray,
    tick_base: int,
    queue: OfferQueue,
) -> tuple[int, int]:
    """Admit submissions ``first..end`` and the gossip arrivals due by ``end_s``.

    In a whole span every up pool is full or roomy, so admission does not depend on order and
    txs accepted in the span may reach other nodes within it. In a window (at most one batch
    interval) admission is first-come first-served and nothing accepted in it can arrive
    elsewhere before it ends. The flood of the step's candidates (submissions at a node up and
    not full) is worked out before anything changes, so the step can stop cleanly.
    """
    faults = spread.faults
    submit_s, submit_node, capacity = subs.submit_s, subs.node, subs.capacity
    validate_s, interval_s = subs.validate_s, subs.interval_s
    # Submissions to a node that is down are refused (marking them twice is harmless).
    down_node, down_start_s, down_end_s = faults.down_node, faults.down_start_s, faults.down_end_s
    outcome = pools.outcome
    up = np.ones(end - first, dtype=np.bool_)
    for i in range(first, end):
        for w in range(len(down_node)):
            if down_node[w] == submit_node[i] and down_start_s[w] <= submit_s[i] < down_end_s[w]:
                up[i - first] = False
                outcome[i] = UNREACHABLE
    sub_tx = np.flatnonzero(up) + first
    sub_node = submit_node[sub_tx]
    sub_s = submit_s[sub_tx]
    candidate = pools.size[sub_node] < capacity
    cand_pos = np.flatnonzero(candidate)  # positions in sub_*
    heard = np.empty((len(pools.size), len(cand_pos)))
    if len(cand_pos):
        origin, start_s = sub_node[cand_pos], sub_s[cand_pos]
        use = (
            fanout_use(
                sub_tx[cand_pos], spread.out_start, spread.out_link, len(spread.link_dst),
                spread.fanout, spread.fanout_key,
            )
            if spread.fanout > 0
            else np.zeros((0, 0), dtype=np.bool_)
        )  # fmt: skip
        missing = batch_arrivals(
            origin, start_s, heard, spread.out_start, spread.out_link, spread.link_dst,
            spread.latency_s, spread.serialize_s, interval_s, validate_s, tick_table, tick_base,
            use, faults,
        )  # fmt: skip
        if missing >= 0:
            return NEED_TICKS, missing
        if queue.meta[FREE_COUNT] < heard.size:  # at most one arrival per (node, tx)
            return NEED_ROOM, heard.size
    if whole_span:
        push_floods(queue, heard, sub_tx[cand_pos], sub_node[cand_pos])
    off_s, off_node, off_tx = pop_due(queue, end_s)
    mine = admit_step(
        sub_tx, sub_node, sub_s, off_tx, off_node, off_s, whole_span, subs, faults, pools
    )
    if not whole_span and len(mine):
        # The candidates admitted (mine is a subset of the candidates, in the step's order).
        column = np.full(len(sub_tx), -1, dtype=np.int64)
        column[cand_pos] = np.arange(len(cand_pos))
        columns = column[mine]
        push_floods(queue, heard[:, columns], sub_tx[mine], sub_node[mine])
    return DONE, 0


@njit(cache=True)
def change_chain(
    in_pool: BoolArray,
    in_chain: BoolArray,
    order: npt.NDArray[np.int32],
    next_order: IntArray,
    size: IntArray,
    peak: IntArray,
    node: int,
    adopted: IntArray,
    orphaned: IntArray,
) -> None:
    """``node``'s chain gained ``adopted`` txs and lost ``orphaned`` ones (a reorg).

    Adopted txs leave the pool; orphaned txs the new chain does not hold return to it, even
    past capacity (nothing accepted is lost), with a new arrival order if they never had one.
    Each phase reads the state the previous one left, as whole-array operations would.
    """
    for x in orphaned:
        in_chain[node, x] = False
    for x in adopted:
        in_chain[node, x] = True
    for x in adopted:
        if in_pool[node, x]:
            in_pool[node, x] = False
            size[node] -= 1
    back = np.array([not in_chain[node, x] and not in_pool[node, x] for x in orphaned])
    for i in range(len(orphaned)):
        if back[i]:
            x = orphaned[i]
            in_pool[node, x] = True
            if order[node, x] < 0:
                order[node, x] = next_order[node]
                next_order[node] += 1
            size[node] += 1
    if size[node] > peak[node]:
        peak[node] = size[node]
