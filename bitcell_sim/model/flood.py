"""Flood gossip over the peer graph, computed for many messages at once.

:class:`Flood` answers "when does each node first hear each message" for messages that every
node forwards to its peers on first receipt: an earliest-arrival relaxation over the directed
links from a frontier of nodes that just heard, vectorized over messages.
:meth:`Flood.spread_messages` relays as soon as the node's CPU gets to the message (commitments,
reveals), with one jitter draw per message and link; :meth:`Flood.spread_batched` relays txs in
batches at the next batch tick after the node validated them, with the jitter of that link at
that tick, and to ``fanout`` random peers only when fanout > 0 (as the devnet does for txs).
Faults apply as on single messages: added latency at departure, loss if a partition or a down
receiver overlaps the flight, no relay by a node that goes down before its tick.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from bitcell_sim.model.links import MessageJitter, TickJitter
from bitcell_sim.model.schedule import FaultSchedule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SendTimes = Callable[[FloatArray, IntArray], FloatArray]
JitterOf = Callable[[IntArray, IntArray, FloatArray], FloatArray]


class Flood:
    """Earliest-arrival flooding over directed links ``link_src[i] -> link_dst[i]``."""

    def __init__(
        self,
        node_count: int,
        link_src: IntArray,
        link_dst: IntArray,
        latency_s: FloatArray,
        bandwidth_bps: float,
        schedule: FaultSchedule,
        fanout: int,
        node_rngs: list[np.random.Generator],
    ) -> None:
        self.node_count = node_count
        self.src = link_src.astype(np.int64)
        self.dst = link_dst.astype(np.int64)
        self.link_count = len(self.src)
        self.latency_s = latency_s.astype(np.float64)
        self.bandwidth_bps = bandwidth_bps
        self.schedule = schedule
        # Outgoing links of every node, contiguous (CSR), to expand a frontier of senders.
        self.out_order = np.argsort(self.src, kind="stable").astype(np.int64)
        self.degree = np.bincount(self.src, minlength=node_count).astype(np.int64)
        self.out_start = np.concatenate([[0], np.cumsum(self.degree)[:-1]]).astype(np.int64)
        self.fanout = fanout
        self.node_rngs = node_rngs
        self._touch = [w.links[self.src, self.dst] for w in schedule.latencies]
        self._cut = [p.cut[self.src, self.dst] for p in schedule.partitions]
        self._into = [self.dst == w.node for w in schedule.down_windows]

    # ---- the two relay styles --------------------------------------------------------------

    def spread_messages(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        jitters: list[MessageJitter],
        backlog_s: FloatArray | None = None,
    ) -> FloatArray:
        """Heard times (messages x nodes) of messages relayed on receipt; inf = never.

        ``backlog_s[n]`` is how long node n's CPU takes to get to a message (its queue of
        earlier work): a message leaves its origin, and every relay, that much later.
        """
        m = len(origin)
        if m == 0 or self.link_count == 0:
            return self._origin_only(origin, start_s)
        # One draw per (message, link), in link order, from each link's message stream.
        drawn = np.stack([jitters[link].take_s(m) for link in range(self.link_count)], axis=1)

        def jitter(rows: IntArray, links: IntArray, depart_s: FloatArray) -> FloatArray:
            return drawn[rows, links]

        def send_times(heard_s: FloatArray, nodes: IntArray) -> FloatArray:
            return heard_s if backlog_s is None else heard_s + backlog_s[nodes]

        return self._spread(origin, start_s, frame_bytes, send_times, jitter, fanout=False)

    def spread_batched(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        interval_s: float,
        validate_s: float,
        ticks: TickJitter,
    ) -> FloatArray:
        """Heard times (txs x nodes) of txs relayed in batches every ``interval_s``."""
        if len(origin) == 0 or self.link_count == 0:
            return self._origin_only(origin, start_s)
        schedule = self.schedule

        def send_times(heard_s: FloatArray, nodes: IntArray) -> FloatArray:
            ready = heard_s + validate_s
            if schedule.throttles:
                ready = heard_s + validate_s / schedule.cpu_share_at(nodes, heard_s)
            send = np.ceil(ready / interval_s) * interval_s
            send = np.where(send < ready, send + interval_s, send)
            # A node that goes down before its batch leaves never sends it.
            for window in schedule.down_windows:
                lost = (nodes == window.node) & (heard_s < window.end_s)
                send[lost & (send >= window.start_s)] = np.inf
            return send

        def jitter(rows: IntArray, links: IntArray, depart_s: FloatArray) -> FloatArray:
            if not ticks.active:
                return np.zeros(len(links))
            return ticks.lookup_s(links, np.rint(depart_s / interval_s).astype(np.int64))

        return self._spread(origin, start_s, frame_bytes, send_times, jitter, fanout=True)

    # ---- the relaxation --------------------------------------------------------------------

    def _origin_only(self, origin: IntArray, start_s: FloatArray) -> FloatArray:
        heard = np.full((len(origin), self.node_count), np.inf)
        heard[np.arange(len(origin)), origin] = start_s
        return heard

    def _fanout_mask(self, m: int) -> BoolArray | None:
        """Which (message, link) pairs a relay uses when it forwards to ``fanout`` peers."""
        if self.fanout <= 0:
            return None
        mask: BoolArray | None = None
        for node in range(self.node_count):
            if self.degree[node] <= self.fanout:
                continue
            if mask is None:
                mask = np.ones((m, self.link_count), dtype=np.bool_)
            first = self.out_start[node]
            positions = self.out_order[first : first + self.degree[node]]
            keys = self.node_rngs[node].random((m, len(positions)))
            dropped = np.argsort(keys, axis=1)[:, self.fanout :]
            mask[np.arange(m)[:, None], positions[dropped]] = False
        return mask

    def _spread(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        send_times: SendTimes,
        jitter: JitterOf,
        fanout: bool,
    ) -> FloatArray:
        """Relax from a frontier: only entries whose heard time just improved send again."""
        schedule = self.schedule
        n = self.node_count
        m = len(origin)
        heard = self._origin_only(origin, start_s)
        send = np.full((m, n), np.inf)
        rows = np.arange(m, dtype=np.int64)
        nodes = origin.astype(np.int64)
        send[rows, nodes] = send_times(start_s.astype(np.float64), nodes)
        serialize_s = frame_bytes * 8.0 / self.bandwidth_bps
        use = self._fanout_mask(m) if fanout else None
        flat_heard = heard.reshape(-1)
        while len(rows):
            leaving = send[rows, nodes]
            keep = np.isfinite(leaving)
            rows, nodes, leaving = rows[keep], nodes[keep], leaving[keep]
            if not len(rows):
                break
            degree = self.degree[nodes]
            pairs = int(degree.sum())
            ends = np.cumsum(degree)
            offset = np.arange(pairs) - np.repeat(ends - degree, degree)
            links = self.out_order[np.repeat(self.out_start[nodes], degree) + offset]
            row = np.repeat(rows, degree)
            depart = np.repeat(leaving, degree)
            delay = self.latency_s[links] + jitter(row, links, depart)
            for extra, touch in zip(schedule.latencies, self._touch, strict=True):
                hit = touch[links] & (depart >= extra.start_s) & (depart < extra.end_s)
                delay = delay + np.where(hit, extra.latency_s, 0.0)
            np.maximum(delay, 0.0, out=delay)
            arrive = depart + serialize_s + delay
            for partition, cut in zip(schedule.partitions, self._cut, strict=True):
                lost = cut[links] & (depart < partition.end_s) & (arrive >= partition.start_s)
                arrive[lost] = np.inf
            for down, into in zip(schedule.down_windows, self._into, strict=True):
                lost = into[links] & (depart < down.end_s) & (arrive >= down.start_s)
                arrive[lost] = np.inf
            if use is not None:
                arrive[~use[row, links]] = np.inf
            target = row * n + self.dst[links]
            improves = arrive < flat_heard[target]
            if not improves.any():
                break
            target, arrive = target[improves], arrive[improves]
            np.minimum.at(flat_heard, target, arrive)
            # Mark-and-scan is cheaper than np.unique for these small, dense frontiers.
            marked = np.zeros(m * n, dtype=np.bool_)
            marked[target] = True
            changed = np.flatnonzero(marked)
            rows, nodes = changed // n, changed % n
            send[rows, nodes] = send_times(flat_heard[changed], nodes)
        return heard
