"""Flood gossip over the peer graph, computed for many messages at once.

:class:`Flood` answers "when does each node first hear each message" for messages that every
node forwards to its peers on first receipt, with one label-setting search per message
(:mod:`bitcell_sim.model.relax`). :meth:`Flood.spread_messages` relays as soon as the node's CPU
gets to the message (commitments, reveals), with a jitter per message and link that is a pure
function of the run's seed, the message and the link; :meth:`Flood.spread_batched` relays txs in
batches at the next batch tick after the node validated them, with the jitter of that link at
that tick, and to ``fanout`` peers chosen by a hash of the tx and the link when fanout > 0 (as
the devnet does for txs). Faults apply as on single messages: added latency at departure, loss
if a partition or a down receiver overlaps the flight, no relay by a node that goes down before
its tick.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bitcell_sim.model.admit import TABLE_HORIZON_S, Spread
from bitcell_sim.model.links import TickJitter
from bitcell_sim.model.relax import (
    JITTER_CODES,
    FaultArrays,
    batch_arrivals,
    fanout_use,
    message_arrivals,
)
from bitcell_sim.model.schedule import FaultSchedule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def fault_arrays(schedule: FaultSchedule, link_src: IntArray, link_dst: IntArray) -> FaultArrays:
    """The schedule's windows as the flat arrays the kernel takes (per window and link)."""
    links = len(link_src)
    return FaultArrays(
        latency_start_s=np.array([w.start_s for w in schedule.latencies], dtype=np.float64),
        latency_end_s=np.array([w.end_s for w in schedule.latencies], dtype=np.float64),
        latency_extra_s=np.array([w.latency_s for w in schedule.latencies], dtype=np.float64),
        latency_touch=np.array(
            [w.links[link_src, link_dst] for w in schedule.latencies], dtype=np.bool_
        ).reshape(-1, links),
        cut_start_s=np.array([p.start_s for p in schedule.partitions], dtype=np.float64),
        cut_end_s=np.array([p.end_s for p in schedule.partitions], dtype=np.float64),
        cut_links=np.array(
            [p.cut[link_src, link_dst] for p in schedule.partitions], dtype=np.bool_
        ).reshape(-1, links),
        down_node=np.array([w.node for w in schedule.down_windows], dtype=np.int64),
        down_start_s=np.array([w.start_s for w in schedule.down_windows], dtype=np.float64),
        down_end_s=np.array([w.end_s for w in schedule.down_windows], dtype=np.float64),
        throttle_node=np.array([w.node for w in schedule.throttles], dtype=np.int64),
        throttle_start_s=np.array([w.start_s for w in schedule.throttles], dtype=np.float64),
        throttle_end_s=np.array([w.end_s for w in schedule.throttles], dtype=np.float64),
        throttle_share=np.array([w.share for w in schedule.throttles], dtype=np.float64),
    )


class Flood:
    """Earliest-arrival flooding over directed links ``link_src[i] -> link_dst[i]``.

    ``jitter`` (distribution, scale in seconds) and ``jitter_key`` (a 64-bit word from the run's
    seed) define the jitter of consensus messages: message ``k`` on link ``l`` always gets the
    same value, however many other messages are flooded with it or in which order.
    ``fanout_key`` (another such word) picks the peers of each tx when ``fanout`` > 0.
    """

    def __init__(
        self,
        node_count: int,
        link_src: IntArray,
        link_dst: IntArray,
        latency_s: FloatArray,
        bandwidth_bps: float,
        schedule: FaultSchedule,
        fanout: int,
        jitter: tuple[str, float] = ("none", 0.0),
        jitter_key: int = 0,
        fanout_key: int = 0,
    ) -> None:
        self.node_count = node_count
        self.src = link_src.astype(np.int64)
        self.dst = link_dst.astype(np.int64)
        self.link_count = len(self.src)
        self.latency_s = latency_s.astype(np.float64)
        self.bandwidth_bps = bandwidth_bps
        self.schedule = schedule
        # Outgoing links of every node, contiguous (CSR), to expand a settled node.
        self.out_order = np.argsort(self.src, kind="stable").astype(np.int64)
        self.degree = np.bincount(self.src, minlength=node_count).astype(np.int64)
        self.out_start = np.concatenate([[0], np.cumsum(self.degree)]).astype(np.int64)
        self.fanout = fanout
        self.fanout_key = np.uint64(fanout_key % 2**64)
        self.jitter_code = JITTER_CODES[jitter[0]]
        self.jitter_scale_s = float(jitter[1]) if jitter[0] != "none" else 0.0
        self.jitter_key = np.uint64(jitter_key % 2**64)
        self.faults = fault_arrays(schedule, self.src, self.dst)
        self._no_backlog = np.zeros(node_count)
        self._no_use = np.zeros((0, 0), dtype=np.bool_)
        self._no_table = np.zeros((0, self.link_count))

    # ---- the two relay styles --------------------------------------------------------------

    def spread_messages(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        message_ids: IntArray,
        backlog_s: FloatArray | None = None,
    ) -> FloatArray:
        """Heard times (messages x nodes) of messages relayed on receipt; inf = never.

        ``message_ids`` name the messages for their jitter (unique within a run).
        ``backlog_s[n]`` is how long node n's CPU takes to get to a message (its queue of
        earlier work): a message leaves its origin, and every relay, that much later.
        """
        heard = np.empty((len(origin), self.node_count))
        if len(origin) == 0:
            return heard
        message_arrivals(
            np.asarray(origin, dtype=np.int64),
            np.asarray(start_s, dtype=np.float64),
            heard,
            self.out_start,
            self.out_order,
            self.dst,
            self.latency_s,
            frame_bytes * 8.0 / self.bandwidth_bps,
            self._no_backlog if backlog_s is None else backlog_s.astype(np.float64),
            np.asarray(message_ids, dtype=np.int64),
            self.jitter_code,
            self.jitter_scale_s,
            self.jitter_key,
            self.faults,
        )
        return heard

    def spread_batched(
        self,
        origin: IntArray,
        start_s: FloatArray,
        frame_bytes: int,
        interval_s: float,
        validate_s: float,
        ticks: TickJitter,
        tx_ids: IntArray | None = None,
    ) -> FloatArray:
        """Heard times (nodes x txs) of txs relayed in batches every ``interval_s``.

        ``tx_ids`` name the txs for the fanout choice (default: 0, 1, ...). The tx plane runs
        the same flood inside its compiled loop (:meth:`batched_view`).
        """
        m = len(origin)
        heard = np.empty((self.node_count, m))
        if m == 0:
            return heard
        ids = np.arange(m, dtype=np.int64) if tx_ids is None else np.asarray(tx_ids, np.int64)
        use = (
            fanout_use(
                ids, self.out_start, self.out_order, self.link_count, self.fanout,
                self.fanout_key,
            )
            if self.fanout > 0
            else self._no_use
        )  # fmt: skip
        table, base = self._no_table, 0
        first = math.floor(float(start_s.min()) / interval_s)
        last = math.ceil((float(start_s.max()) + TABLE_HORIZON_S) / interval_s)
        while True:
            if ticks.active:
                table, base = ticks.table(first, last)
            missing = batch_arrivals(
                np.asarray(origin, dtype=np.int64),
                np.asarray(start_s, dtype=np.float64),
                heard,
                self.out_start,
                self.out_order,
                self.dst,
                self.latency_s,
                frame_bytes * 8.0 / self.bandwidth_bps,
                float(interval_s),
                float(validate_s),
                table,
                base,
                use,
                self.faults,
            )
            if missing < 0:
                return heard
            last = max(missing, 2 * last - first)

    def batched_view(self, frame_bytes: int) -> Spread:
        """The arrays of a batched tx flood, for the tx plane's compiled loop."""
        return Spread(
            out_start=self.out_start,
            out_link=self.out_order,
            link_dst=self.dst,
            latency_s=self.latency_s,
            serialize_s=frame_bytes * 8.0 / self.bandwidth_bps,
            fanout=self.fanout,
            fanout_key=self.fanout_key,
            faults=self.faults,
        )
