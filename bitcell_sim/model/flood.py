"""Flood gossip over the peer graph, computed for many messages at once.

:class:`Flood` answers "when does each node first hear each message" for messages that every
node forwards to its peers (or to ``fanout`` random peers) on first receipt: an earliest-arrival
(Bellman-Ford) relaxation over the directed links, vectorized over messages. Two relay styles:
:meth:`Flood.spread_messages` relays at once (commitments, reveals), with one jitter draw per
message and link; :meth:`Flood.spread_batched` relays in tx batches at the next batch tick after
the node has validated the tx, with the jitter of that link at that tick. Faults apply as on
single messages: added latency at departure, loss if a partition or a down receiver overlaps the
flight, no relay by a node that goes down before its tick.
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

SendTimes = Callable[[FloatArray], FloatArray]
JitterOf = Callable[[FloatArray, BoolArray], FloatArray]


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
        # Links sorted by receiver so one minimum.reduceat gives each node's earliest arrival.
        order = np.argsort(link_dst, kind="stable")
        self.link = order.astype(np.int64)  # position -> link index (for jitter streams)
        self.src = link_src[order]
        self.dst = link_dst[order]
        self.latency_s = latency_s[order]
        self.bandwidth_bps = bandwidth_bps
        self.schedule = schedule
        counts = np.bincount(self.dst, minlength=node_count)
        self.has_links = len(self.dst) > 0 and bool(np.all(counts > 0))
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.fanout = fanout
        self.node_rngs = node_rngs
        self._out_positions = [np.flatnonzero(self.src == n) for n in range(node_count)]
        self._touch = [w.nodes[self.src] | w.nodes[self.dst] for w in schedule.latencies]
        self._cut = [p.side[self.src] != p.side[self.dst] for p in schedule.partitions]
        self._into = [self.dst == w.node for w in schedule.down_windows]

    # ---- the two relay styles --------------------------------------------------------------

    def spread_messages(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        jitters: list[MessageJitter],
    ) -> FloatArray:
        """Heard times (messages x nodes) of messages relayed on receipt; inf = never."""
        m = len(origin)
        if m == 0 or not self.has_links:
            return self._origin_only(origin, start_s)
        # One draw per (message, link), in link order, from each link's message stream.
        drawn = np.stack([jitters[link].take_s(m) for link in range(len(self.link))], axis=1)
        per_message = drawn[:, self.link]

        def jitter(send_s: FloatArray, finite: BoolArray) -> FloatArray:
            return per_message

        return self._spread(origin, start_s, frame_bytes, lambda heard: heard, jitter)

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
        if len(origin) == 0 or not self.has_links:
            return self._origin_only(origin, start_s)
        schedule = self.schedule
        nodes = np.arange(self.node_count)

        def send_times(heard: FloatArray) -> FloatArray:
            ready = heard + validate_s
            if schedule.throttles:
                finite = np.isfinite(heard)
                shares = np.ones(heard.shape)
                cols = np.broadcast_to(nodes, heard.shape)
                shares[finite] = schedule.cpu_share_at(cols[finite], heard[finite])
                ready = heard + validate_s / shares
            with np.errstate(invalid="ignore"):
                tick = np.ceil(ready / interval_s)
                send = tick * interval_s
                send = np.where(send < ready, send + interval_s, send)
            for window in schedule.down_windows:
                column = send[:, window.node]
                lost = (heard[:, window.node] < window.end_s) & (column >= window.start_s)
                column[lost] = np.inf
            return send

        def jitter(send_s: FloatArray, finite: BoolArray) -> FloatArray:
            out = np.zeros(send_s.shape)
            if ticks.active and finite.any():
                tick = np.rint(send_s[finite] / interval_s).astype(np.int64)
                links = np.broadcast_to(self.link, send_s.shape)[finite]
                out[finite] = ticks.lookup_s(links, tick)
            return out

        return self._spread(origin, start_s, frame_bytes, send_times, jitter)

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
        for node, positions in enumerate(self._out_positions):
            if len(positions) <= self.fanout:
                continue
            if mask is None:
                mask = np.ones((m, len(self.src)), dtype=np.bool_)
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
    ) -> FloatArray:
        schedule = self.schedule
        heard = self._origin_only(origin, start_s)
        send = send_times(heard)
        serialize_s = frame_bytes * 8.0 / self.bandwidth_bps
        use = self._fanout_mask(len(origin))
        for _ in range(self.node_count):
            depart = send[:, self.src]
            finite = np.isfinite(depart)
            delay = self.latency_s + jitter(depart, finite)
            if schedule.latencies:
                for extra, touch in zip(schedule.latencies, self._touch, strict=True):
                    hit = touch & (depart >= extra.start_s) & (depart < extra.end_s)
                    delay = delay + np.where(hit, extra.latency_s, 0.0)
            np.maximum(delay, 0.0, out=delay)
            arrive = depart + serialize_s + delay
            if schedule.partitions:
                for partition, cut in zip(schedule.partitions, self._cut, strict=True):
                    lost = cut & (depart < partition.end_s) & (arrive >= partition.start_s)
                    arrive[lost] = np.inf
            if schedule.down_windows:
                for down, into in zip(schedule.down_windows, self._into, strict=True):
                    lost = into & (depart < down.end_s) & (arrive >= down.start_s)
                    arrive[lost] = np.inf
            if use is not None:
                arrive[~use] = np.inf
            earliest = np.minimum.reduceat(arrive, self.starts, axis=1)
            better = earliest < heard
            if not better.any():
                break
            heard = np.where(better, earliest, heard)
            send = np.where(better, send_times(heard), send)
        return heard
