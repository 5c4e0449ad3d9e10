"""The compiled core of flooding: earliest arrival of each message at every node (numba).

:func:`earliest_arrivals` runs one label-setting search (Dijkstra with a binary heap) per
message over the directed links, so every (message, node) pair is settled once and relays once:
the work is messages x links, with no re-sends when a shorter path is found later. Relay times
are either "on receipt plus the node's CPU backlog" (consensus messages) or "the first batch tick
after validation" (txs). Jitter is drawn per (message, link) from a counter-based hash
(:func:`message_jitter_s`) or looked up per (link, tick) in a table. Faults come as flat arrays
(:class:`FaultArrays`); the semantics are those of :mod:`bitcell_sim.model.flood`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from bitcell_sim.topology.jitter import PARETO_SHAPE

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The topology's jitter laws (:mod:`bitcell_sim.topology.jitter`) by the code the kernels take.
JITTER_CODES = {"none": 0, "normal": 1, "uniform": 2, "pareto": 3}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


class FaultArrays(NamedTuple):
    """The fault windows a flood needs, as arrays indexed by window and link or node (a tuple,
    so that the kernels take it as one argument)."""

    latency_start_s: FloatArray
    latency_end_s: FloatArray
    latency_extra_s: FloatArray
    latency_touch: BoolArray  # (windows, links): the window slows the link
    cut_start_s: FloatArray
    cut_end_s: FloatArray
    cut_links: BoolArray  # (partitions, links): the link crosses the cut
    down_node: IntArray
    down_start_s: FloatArray
    down_end_s: FloatArray
    throttle_node: IntArray
    throttle_start_s: FloatArray
    throttle_end_s: FloatArray
    throttle_share: FloatArray


@njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    """SplitMix64's finalizer: a bijection of 64-bit words that scatters every input bit."""
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def message_jitter_s(kind: int, scale_s: float, key: np.uint64, message: int, link: int) -> float:
    """The jitter of ``message`` on ``link``: a pure function of (key, message, link)."""
    if kind == 0 or scale_s == 0.0:
        return 0.0
    word = _mix(key ^ _mix(np.uint64(message) ^ _mix(np.uint64(link) + _GOLDEN)))
    u1 = (float(word >> np.uint64(11)) + 0.5) * _TO_UNIT  # in (0, 1)
    if kind == 2:
        return scale_s * (2.0 * u1 - 1.0)
    if kind == 3:
        return scale_s * (u1 ** (-1.0 / PARETO_SHAPE) - 1.0) * (PARETO_SHAPE - 1.0)
    u2 = (float(_mix(word + _GOLDEN) >> np.uint64(11)) + 0.5) * _TO_UNIT
    return scale_s * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, inline="always")
def _push(heap_t: FloatArray, heap_v: IntArray, size: int, t: float, v: int) -> int:
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap_t[parent] <= t:
            break
        heap_t[i] = heap_t[parent]
        heap_v[i] = heap_v[parent]
        i = parent
    heap_t[i] = t
    heap_v[i] = v
    return size + 1


@njit(cache=True, inline="always")
def _pop(heap_t: FloatArray, heap_v: IntArray, size: int) -> int:
    """Remove the root (the caller read it); returns the new size."""
    size -= 1
    t = heap_t[size]
    v = heap_v[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap_t[child + 1] < heap_t[child]:
            child += 1
        if heap_t[child] >= t:
            break
        heap_t[i] = heap_t[child]
        heap_v[i] = heap_v[child]
        i = child
    heap_t[i] = t
    heap_v[i] = v
    return size


@njit(cache=True, inline="always")
def _extra_latency_s(
    link: int,
    depart_s: float,
    latency_start_s: FloatArray,
    latency_end_s: FloatArray,
    latency_extra_s: FloatArray,
    latency_touch: BoolArray,
) -> float:
    extra = 0.0
    for w in range(len(latency_start_s)):
        if latency_touch[w, link] and latency_start_s[w] <= depart_s < latency_end_s[w]:
            extra += latency_extra_s[w]
    return extra


@njit(cache=True, inline="always")
def _lost(
    link: int,
    v: int,
    depart_s: float,
    arrive_s: float,
    cut_start_s: FloatArray,
    cut_end_s: FloatArray,
    cut_links: BoolArray,
    down_node: IntArray,
    down_start_s: FloatArray,
    down_end_s: FloatArray,
) -> bool:
    """A partition across the link, or the receiver down, at any instant of the flight."""
    for w in range(len(cut_start_s)):
        if cut_links[w, link] and depart_s < cut_end_s[w] and arrive_s >= cut_start_s[w]:
            return True
    for w in range(len(down_node)):
        if down_node[w] == v and depart_s < down_end_s[w] and arrive_s >= down_start_s[w]:
            return True
    return False


@njit(cache=True)
def message_arrivals(
    origin: IntArray,
    start_s: FloatArray,
    heard: FloatArray,
    out_start: IntArray,
    out_link: IntArray,
    link_dst: IntArray,
    latency_s: FloatArray,
    serialize_s: float,
    backlog_s: FloatArray,
    message_ids: IntArray,
    jitter_kind: int,
    jitter_scale_s: float,
    jitter_key: np.uint64,
    faults: FaultArrays,
) -> None:
    """Fill ``heard`` (messages x nodes, inf = never): relay on receipt plus the CPU backlog.

    One Dijkstra search per message: a node's heard time is final when it is the smallest
    not yet settled, since every relay arrives after its sender heard the message.
    """
    (
        latency_start_s,
        latency_end_s,
        latency_extra_s,
        latency_touch,
        cut_start_s,
        cut_end_s,
        cut_links,
        down_node,
        down_start_s,
        down_end_s,
    ) = faults[:10]  # throttles do not delay consensus relays
    n = heard.shape[1]
    link_count = len(link_dst)
    heap_t = np.empty(link_count + 1)
    heap_v = np.empty(link_count + 1, dtype=np.int64)
    settled = np.zeros(n, dtype=np.bool_)
    # Helpers that take arrays cost reference counting per call: call them only when needed.
    any_extra = len(latency_start_s) > 0
    any_loss = len(cut_start_s) > 0 or len(down_node) > 0
    for i in range(len(origin)):
        row = heard[i]
        row[:] = math.inf
        settled[:] = False
        row[origin[i]] = start_s[i]
        size = _push(heap_t, heap_v, 0, start_s[i], origin[i])
        while size > 0:
            t = heap_t[0]
            u = heap_v[0]
            size = _pop(heap_t, heap_v, size)
            if settled[u]:
                continue
            settled[u] = True
            depart = t + backlog_s[u]
            for j in range(out_start[u], out_start[u + 1]):
                link = out_link[j]
                v = link_dst[link]
                if settled[v]:
                    continue
                delay = latency_s[link] + message_jitter_s(
                    jitter_kind, jitter_scale_s, jitter_key, message_ids[i], link
                )
                if any_extra:
                    delay += _extra_latency_s(
                        link, depart, latency_start_s, latency_end_s, latency_extra_s,
                        latency_touch,
                    )  # fmt: skip
                if delay < 0.0:
                    delay = 0.0
                arrive = depart + serialize_s + delay
                if arrive < row[v] and not (any_loss and _lost(
                    link, v, depart, arrive, cut_start_s, cut_end_s, cut_links,
                    down_node, down_start_s, down_end_s,
                )):  # fmt: skip
                    row[v] = arrive
                    size = _push(heap_t, heap_v, size, arrive, v)


@njit(cache=True, inline="always")
def _send_tick(
    v: int,
    heard_s: float,
    interval_s: float,
    validate_s: float,
    throttle_node: IntArray,
    throttle_start_s: FloatArray,
    throttle_end_s: FloatArray,
    throttle_share: FloatArray,
    down_node: IntArray,
    down_start_s: FloatArray,
    down_end_s: FloatArray,
) -> int:
    """The batch tick at which node ``v``, which heard a tx at ``heard_s``, relays it (-1:
    never, as it goes down first)."""
    share = 1.0
    for w in range(len(throttle_node)):
        if throttle_node[w] == v and throttle_start_s[w] <= heard_s < throttle_end_s[w]:
            share = min(share, throttle_share[w])
    ready = heard_s + validate_s if share == 1.0 else heard_s + validate_s / share
    tick = math.ceil(ready / interval_s)
    if tick * interval_s < ready:
        tick += 1
    for w in range(len(down_node)):
        if down_node[w] == v and heard_s < down_end_s[w] and tick * interval_s >= down_start_s[w]:
            return -1
    return tick


@njit(cache=True)
def batch_arrivals(
    origin: IntArray,
    start_s: FloatArray,
    heard: FloatArray,
    out_start: IntArray,
    out_link: IntArray,
    link_dst: IntArray,
    latency_s: FloatArray,
    serialize_s: float,
    interval_s: float,
    validate_s: float,
    ring_ticks: int,
    tick_table: FloatArray,
    tick_base: int,
    use: BoolArray,
    faults: FaultArrays,
) -> int:
    """Fill ``heard`` (nodes x txs, inf = never) for txs relayed in batches at ticks.

    Tick by tick, each node sends one batch per link: the txs it settled for that tick. The
    batch's arrival (latency, the link's jitter at that tick from ``tick_table[tick -
    tick_base, link]``, faults) is worked out once per (node, tick, link) and applied to every
    tx in it, so the per-tx work is one comparison per link (``heard`` is node-major: the txs
    of a batch, mostly neighbours in submission order, share cache lines). A (tx, node) is
    settled when its tick comes: anything sent at that tick or later arrives after the node
    heard it. With no table rows there is no jitter. ``use`` (txs x links, or empty) limits
    relays (fanout). ``ring_ticks`` (a power of two) must exceed the largest hop in ticks.
    Returns -1, or the largest tick past the table's end that a batch needed (the result is
    then incomplete).
    """
    (
        latency_start_s, latency_end_s, latency_extra_s, latency_touch,
        cut_start_s, cut_end_s, cut_links,
        down_node, down_start_s, down_end_s,
        throttle_node, throttle_start_s, throttle_end_s, throttle_share,
    ) = faults  # fmt: skip
    n, m = heard.shape
    has_use = use.shape[0] > 0
    table_ticks = tick_table.shape[0]
    missing_tick = -1
    mask = ring_ticks - 1
    heard[:, :] = math.inf
    scheduled = np.full((n, m), -1, dtype=np.int64)  # the tick a (tx, node) relays at; -1 none
    capacity = m * n + m + 16
    entry_tx = np.empty(capacity, dtype=np.int64)
    entry_node = np.empty(capacity, dtype=np.int64)
    entry_next = np.empty(capacity, dtype=np.int64)
    entries = 0
    ring = np.full(ring_ticks, -1, dtype=np.int64)
    pending = 0
    first_tick = -1
    for i in range(m):
        u = origin[i]
        heard[u, i] = start_s[i]
        tick = _send_tick(
            u, start_s[i], interval_s, validate_s, throttle_node, throttle_start_s,
            throttle_end_s, throttle_share, down_node, down_start_s, down_end_s,
        )  # fmt: skip
        if tick < 0:
            continue
        if first_tick < 0 or tick < first_tick:
            first_tick = tick
        scheduled[u, i] = tick
        entry_tx[entries], entry_node[entries] = i, u
        entry_next[entries] = ring[tick & mask]
        ring[tick & mask] = entries
        entries += 1
        pending += 1
    # Entries of one tick, grouped by node (linked lists through entry_next).
    node_head = np.full(n, -1, dtype=np.int64)
    group_next = np.empty(capacity, dtype=np.int64)
    touched = np.empty(n, dtype=np.int64)
    batch = np.empty(m, dtype=np.int64)
    # Helpers that take arrays cost reference counting per call: call them only when needed.
    any_extra = len(latency_start_s) > 0
    any_loss = len(cut_start_s) > 0 or len(down_node) > 0
    plain_relay = len(throttle_node) == 0 and len(down_node) == 0
    k = first_tick
    while pending > 0:
        slot = k & mask
        while ring[slot] != -1:
            e = ring[slot]
            ring[slot] = -1
            count = 0
            while e != -1:
                following = entry_next[e]
                pending -= 1
                tx, u = entry_tx[e], entry_node[e]
                if scheduled[u, tx] == k:
                    scheduled[u, tx] = -1
                    if node_head[u] == -1:
                        touched[count] = u
                        count += 1
                    group_next[e] = node_head[u]
                    node_head[u] = e
                e = following
            for c in range(count):
                u = touched[c]
                size = 0
                e = node_head[u]
                while e != -1:
                    batch[size] = entry_tx[e]
                    size += 1
                    e = group_next[e]
                node_head[u] = -1
                depart = k * interval_s
                row = k - tick_base
                if table_ticks > 0 and row >= table_ticks:
                    missing_tick = max(missing_tick, k)
                    continue
                for j in range(out_start[u], out_start[u + 1]):
                    link = out_link[j]
                    v = link_dst[link]
                    delay = latency_s[link]
                    if table_ticks > 0:
                        delay += tick_table[row, link]
                    if any_extra:
                        delay += _extra_latency_s(
                            link, depart, latency_start_s, latency_end_s, latency_extra_s,
                            latency_touch,
                        )  # fmt: skip
                    if delay < 0.0:
                        delay = 0.0
                    arrive = depart + serialize_s + delay
                    if any_loss and _lost(
                        link, v, depart, arrive, cut_start_s, cut_end_s, cut_links,
                        down_node, down_start_s, down_end_s,
                    ):  # fmt: skip
                        continue
                    relay = -2  # the tick v relays at after hearing at `arrive` (lazily)
                    for b in range(size):
                        tx = batch[b]
                        if arrive >= heard[v, tx] or (has_use and not use[tx, link]):
                            continue
                        heard[v, tx] = arrive
                        if relay == -2 and plain_relay:
                            ready = arrive + validate_s
                            relay = math.ceil(ready / interval_s)
                            if relay * interval_s < ready:
                                relay += 1
                        elif relay == -2:
                            relay = _send_tick(
                                v, arrive, interval_s, validate_s, throttle_node,
                                throttle_start_s, throttle_end_s, throttle_share, down_node,
                                down_start_s, down_end_s,
                            )  # fmt: skip
                        if relay - k >= ring_ticks:
                            raise ValueError("a tx batch hop is longer than the tick ring")
                        if relay == scheduled[v, tx]:
                            continue
                        scheduled[v, tx] = relay
                        if relay >= 0:
                            if entries == capacity:
                                capacity *= 2
                                entry_tx = _grown(entry_tx, capacity)
                                entry_node = _grown(entry_node, capacity)
                                entry_next = _grown(entry_next, capacity)
                                group_next = _grown(group_next, capacity)
                            entry_tx[entries], entry_node[entries] = tx, v
                            entry_next[entries] = ring[relay & mask]
                            ring[relay & mask] = entries
                            entries += 1
                            pending += 1
        k += 1
    return missing_tick


@njit(cache=True)
def _grown(values: IntArray, capacity: int) -> IntArray:
    bigger = np.empty(capacity, dtype=values.dtype)
    bigger[: len(values)] = values
    return bigger
