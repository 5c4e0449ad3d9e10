"""Gossip arrivals not processed yet, (time, node, tx), in a compiled calendar queue (numba).

An :class:`OfferQueue` is flat arrays: entries in singly linked lists, one list per slot of a
ring of buckets one tx-batch interval wide (bucket ``floor(time / interval)``, slot ``bucket mod
slots``), and a free list. Taking what is due by ``t`` visits only the buckets from the last
taken up to ``t``'s and keeps, in ``t``'s own bucket, what comes later; a slot may also hold
entries of buckets a whole ring later (they are skipped by time), so no horizon is ever too
short. The order in which entries are taken is of no consequence: admission sorts them by node,
time and tx. The queue never grows inside the kernels: :func:`with_room` makes a bigger one.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Slots of the ring (a power of two): 4,096 intervals of 50 ms is 205 s before slots are shared.
SLOTS = 4096
#: Positions in ``OfferQueue.meta``.
FREE_HEAD, FREE_COUNT, LOW_BUCKET = 0, 1, 2


class OfferQueue(NamedTuple):
    """The queue's arrays (a tuple, so that the kernels take it as one argument)."""

    time_s: FloatArray
    node: IntArray
    tx: IntArray
    next: IntArray  # the next entry in the same list (slot or free list), -1 at the end
    head: IntArray  # per slot, the first entry, -1 if empty
    meta: IntArray  # free-list head, free entries, lowest bucket that may hold an entry
    interval_s: float


def offer_queue(interval_s: float, capacity: int = 4096) -> OfferQueue:
    """An empty queue with room for ``capacity`` entries."""
    return OfferQueue(
        np.empty(capacity),
        np.empty(capacity, dtype=np.int64),
        np.empty(capacity, dtype=np.int64),
        np.append(np.arange(1, capacity, dtype=np.int64), -1),
        np.full(SLOTS, -1, dtype=np.int64),
        np.array([0, capacity, -1], dtype=np.int64),  # nothing is due before t = 0
        float(interval_s),
    )


def with_room(queue: OfferQueue, free: int) -> OfferQueue:
    """``queue`` itself if it has ``free`` free entries, else a copy with at least that many."""
    if queue.meta[FREE_COUNT] >= free:
        return queue
    old = len(queue.time_s)
    capacity = max(2 * old, old - int(queue.meta[FREE_COUNT]) + free)
    extra = capacity - old

    def grown(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        bigger = np.empty(capacity, dtype=values.dtype)
        bigger[:old] = values
        return bigger

    following = grown(queue.next)
    # The new entries go in front of the free list.
    following[old:] = np.arange(old + 1, capacity + 1, dtype=np.int64)
    following[capacity - 1] = queue.meta[FREE_HEAD]
    meta = queue.meta.copy()
    meta[FREE_HEAD] = old
    meta[FREE_COUNT] += extra
    return OfferQueue(
        grown(queue.time_s),
        grown(queue.node),
        grown(queue.tx),
        following,
        queue.head,
        meta,
        queue.interval_s,
    )


@njit(cache=True)
def push_floods(queue: OfferQueue, heard: FloatArray, tx: IntArray, origin: IntArray) -> None:
    """Add the arrival of each flooded tx (column of ``heard``, nodes x txs, inf = never) at
    every node it reaches but its origin (the caller made sure there is room:
    :func:`with_room`)."""
    times, nodes, txs, following, head, meta = queue[:6]  # locals: no reference counting
    for v in range(heard.shape[0]):
        for c in range(heard.shape[1]):
            if v == origin[c] or heard[v, c] == math.inf:
                continue
            entry = meta[FREE_HEAD]
            meta[FREE_HEAD] = following[entry]
            meta[FREE_COUNT] -= 1
            times[entry], nodes[entry], txs[entry] = heard[v, c], v, tx[c]
            bucket = math.floor(heard[v, c] / queue.interval_s)
            if bucket < meta[LOW_BUCKET]:  # earlier than the last take (never in the tx plane)
                meta[LOW_BUCKET] = bucket
            slot = bucket & (SLOTS - 1)
            following[entry] = head[slot]
            head[slot] = entry


@njit(cache=True)
def any_due(queue: OfferQueue, t_s: float) -> bool:
    """Whether an entry is due by ``t_s``."""
    times, _, _, following, head, meta = queue[:6]  # locals: no reference counting
    low, last = meta[LOW_BUCKET], math.floor(t_s / queue.interval_s)
    for bucket in range(low, min(last, low + SLOTS - 1) + 1):
        entry = head[bucket & (SLOTS - 1)]
        while entry != -1:
            if times[entry] <= t_s:
                return True
            entry = following[entry]
    return False


@njit(cache=True)
def overflows(queue: OfferQueue, t_s: float, room: IntArray, extra: int) -> bool:
    """Whether some node with room (``room[v] > 0``) has fewer than ``extra`` plus its entries
    due by ``t_s``.

    Only the nodes whose room is below everything queued plus ``extra`` are counted, and the
    count stops at the first node found short, so most calls read few entries or none.
    """
    times, nodes, _, following, head, meta = queue[:6]
    pending = len(times) - meta[FREE_COUNT]
    left = np.full(len(room), -1, dtype=np.int64)  # entries that overflow the node; -1: none can
    tight = False
    for v in range(len(room)):
        if 0 < room[v] < pending + extra:
            if room[v] < extra:
                return True
            left[v] = room[v] - extra + 1
            tight = True
    if not tight:
        return False
    low, last = meta[LOW_BUCKET], math.floor(t_s / queue.interval_s)
    for bucket in range(low, min(last, low + SLOTS - 1) + 1):
        entry = head[bucket & (SLOTS - 1)]
        while entry != -1:
            v = nodes[entry]
            if left[v] > 0 and times[entry] <= t_s:
                left[v] -= 1
                if left[v] == 0:
                    return True
            entry = following[entry]
    return False


@njit(cache=True)
def pop_due(queue: OfferQueue, t_s: float) -> tuple[FloatArray, IntArray, IntArray]:
    """Remove and return (times, nodes, txs) of every entry due by ``t_s``."""
    times, nodes, txs, following, head, meta = queue[:6]  # locals: no reference counting
    low, last = meta[LOW_BUCKET], math.floor(t_s / queue.interval_s)
    if last < low:
        return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pending = len(times) - meta[FREE_COUNT]  # room for all: one pass down the lists
    out_s = np.empty(pending)
    out_node = np.empty(pending, dtype=np.int64)
    out_tx = np.empty(pending, dtype=np.int64)
    buckets = range(low, min(last, low + SLOTS - 1) + 1)
    taken = 0
    for bucket in buckets:
        slot = bucket & (SLOTS - 1)
        previous, entry = -1, head[slot]
        while entry != -1:
            after = following[entry]
            if times[entry] <= t_s:
                out_s[taken], out_node[taken] = times[entry], nodes[entry]
                out_tx[taken] = txs[entry]
                taken += 1
                if previous == -1:
                    head[slot] = after
                else:
                    following[previous] = after
                following[entry] = meta[FREE_HEAD]
                meta[FREE_HEAD] = entry
                meta[FREE_COUNT] += 1
            else:
                previous = entry
            entry = after
    meta[LOW_BUCKET] = last  # every entry of an earlier bucket is taken
    return out_s[:taken], out_node[:taken], out_tx[:taken]
