"""The compiled core of flooding: earliest arrival of each message at every node (numba).

:func:`message_arrivals` and :func:`batch_arrivals` run one label-setting search per message
over the directed links, so every (message, node) pair is settled once and relays once: the
work is messages x links, with no re-sends when a shorter path is found later. Relay times are
either "on receipt plus the node's CPU backlog" (consensus messages: a binary heap) or "the
first batch tick after validation" (txs: a bucket queue of ticks). Jitter is drawn per
(message, link) from a counter-based hash (:func:`message_jitter_s`) or looked up per (link,
tick) in a table. Faults come as flat arrays (:class:`FaultArrays`); the semantics are those of
:mod:`bitcell_sim.model.flood`.
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


@njit(cache=True)
def fanout_use(
    tx_ids: IntArray,
    out_start: IntArray,
    out_link: IntArray,
    link_count: int,
    fanout: int,
    key: np.uint64,
) -> BoolArray:
    """Which (tx, link) pairs a relay uses when it forwards each tx to ``fanout`` peers.

    A node with more peers than ``fanout`` sends tx ``x`` on the ``fanout`` links of smallest
    hash (key, x, link): a pure function of the run's key, the tx and the link, so the choice
    does not depend on which txs are flooded together (the devnet ranks peers by a hash of
    tx id and peer name, the same idea).
    """
    m = len(tx_ids)
    use = np.ones((m, link_count), dtype=np.bool_)
    n = len(out_start) - 1
    for u in range(n):
        degree = out_start[u + 1] - out_start[u]
        if degree <= fanout:
            continue
        keys = np.empty(degree, dtype=np.uint64)
        for i in range(m):
            word = _mix(key ^ _mix(np.uint64(tx_ids[i]) + _GOLDEN))
            for j in range(degree):
                keys[j] = _mix(word ^ np.uint64(out_link[out_start[u] + j]))
            dropped = np.argsort(keys)[fanout:]
            for j in dropped:
                use[i, out_link[out_start[u] + j]] = False
    return use


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
    tick_table: FloatArray,
    tick_base: int,
    use: BoolArray,
    faults: FaultArrays,
) -> int:
    """Fill ``heard`` (nodes x txs, inf = never) for txs relayed in batches at ticks.

    One search per tx, tick by tick: a node that heard the tx relays it in its batch of the
    first tick after validating it (``_send_tick``), and that batch's arrival over each link is
    the tick plus serialization plus the link's latency, jitter at that tick
    (``tick_table[tick - tick_base, link]``) and faults. A node's heard time is final when its
    tick comes, since anything sent then or later arrives after it; so the search is a bucket
    queue of ticks (a ring of per-tick lists), not a heap. With no table rows there is no
    jitter. ``use`` (txs x links, or empty) limits relays (fanout). Returns -1, or the largest
    tick past the table's end that a relay needed (the result is then incomplete).
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
    row = np.empty(n)  # this tx's heard times (heard's column, contiguous)
    scheduled = np.empty(n, dtype=np.int64)  # the tick each node relays at; -1 none or done
    # Entries (node, tick) in per-tick lists; a node rescheduled earlier leaves a stale entry.
    # A node settles once (a later batch cannot arrive before it heard the tx), so each link
    # improves a heard time at most once: one entry per link and one for the origin.
    capacity = len(link_dst) + 1
    entry_node = np.empty(capacity, dtype=np.int64)
    entry_tick = np.empty(capacity, dtype=np.int64)
    entry_next = np.empty(capacity, dtype=np.int64)
    ring = np.full(64, -1, dtype=np.int64)
    # Helpers that take arrays cost reference counting per call: call them only when needed.
    any_extra = len(latency_start_s) > 0
    any_loss = len(cut_start_s) > 0 or len(down_node) > 0
    plain_relay = len(throttle_node) == 0 and len(down_node) == 0
    for i in range(m):
        row[:] = math.inf
        scheduled[:] = -1
        u = origin[i]
        row[u] = start_s[i]
        k = _send_tick(
            u, start_s[i], interval_s, validate_s, throttle_node, throttle_start_s,
            throttle_end_s, throttle_share, down_node, down_start_s, down_end_s,
        )  # fmt: skip
        if k >= 0:
            scheduled[u] = k
            entry_node[0], entry_tick[0], entry_next[0] = u, k, -1
            ring[k & (len(ring) - 1)] = 0
            entries, pending = 1, 1
        else:
            pending = 0
        while pending > 0:
            slot = k & (len(ring) - 1)
            while ring[slot] != -1:  # relays at tick k may schedule more at tick k
                e = ring[slot]
                ring[slot] = -1
                while e != -1:
                    following = entry_next[e]
                    pending -= 1
                    u = entry_node[e]
                    e = following
                    if scheduled[u] != k:
                        continue  # stale: rescheduled
                    scheduled[u] = -1
                    table_row = k - tick_base
                    if table_ticks > 0 and table_row >= table_ticks:
                        missing_tick = max(missing_tick, k)
                        continue
                    depart = k * interval_s
                    for j in range(out_start[u], out_start[u + 1]):
                        link = out_link[j]
                        v = link_dst[link]
                        if has_use and not use[i, link]:
                            continue
                        delay = latency_s[link]
                        if table_ticks > 0:
                            delay += tick_table[table_row, link]
                        if any_extra:
                            delay += _extra_latency_s(
                                link, depart, latency_start_s, latency_end_s, latency_extra_s,
                                latency_touch,
                            )  # fmt: skip
                        if delay < 0.0:
                            delay = 0.0
                        arrive = depart + serialize_s + delay
                        if arrive >= row[v] or (any_loss and _lost(
                            link, v, depart, arrive, cut_start_s, cut_end_s, cut_links,
                            down_node, down_start_s, down_end_s,
                        )):  # fmt: skip
                            continue
                        row[v] = arrive
                        if plain_relay:
                            ready = arrive + validate_s
                            relay = math.ceil(ready / interval_s)
                            if relay * interval_s < ready:
                                relay += 1
                        else:
                            relay = _send_tick(
                                v, arrive, interval_s, validate_s, throttle_node,
                                throttle_start_s, throttle_end_s, throttle_share, down_node,
                                down_start_s, down_end_s,
                            )  # fmt: skip
                        if relay == scheduled[v]:
                            continue
                        scheduled[v] = relay
                        if relay < 0:
                            continue
                        if relay - k >= len(ring):  # a hop longer than the ring: widen it
                            ring = _wider_ring(ring, relay - k, entry_tick, entry_next, k)
                            slot = k & (len(ring) - 1)
                        target = relay & (len(ring) - 1)
                        entry_node[entries], entry_tick[entries] = v, relay
                        entry_next[entries] = ring[target]
                        ring[target] = entries
                        entries += 1
                        pending += 1
            k += 1
        entries = 0
        heard[:, i] = row
    return missing_tick


@njit(cache=True)
def _wider_ring(
    ring: IntArray, span: int, entry_tick: IntArray, entry_next: IntArray, k: int
) -> IntArray:
    """A ring of ticks longer than ``span`` holding the same lists (each entry by its tick)."""
    size = len(ring)
    while size <= span:
        size *= 2
    wider = np.full(size, -1, dtype=np.int64)
    for slot in range(len(ring)):
        e = ring[slot]
        while e != -1:
            following = entry_next[e]
            target = entry_tick[e] & (size - 1)
            entry_next[e] = wider[target]
            wider[target] = e
            e = following
    return wider
