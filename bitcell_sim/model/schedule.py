"""The fault schedule: the topology's faults as time windows the model can query.

:class:`FaultSchedule` turns each fault's :class:`~bitcell_sim.topology.scope.FaultScope` (the
nodes and directed links it touches, as the devnet applies them) into windows over node
indexes: node_down and region_down into merged down windows per node, partitions and
added_latency into masks of the directed links they cut or slow, cpu_throttle into shares.
Windows are half-open ``[start_s, end_s)``; a message is lost if a window that affects it
overlaps the closed interval from its departure to its arrival. Scalar queries (``is_up``,
``down_between``, ``cut_between``, ``extra_latency_s``, ``cpu_share``) serve single messages;
``down_at`` and ``cpu_share_at`` take numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bitcell_sim.topology import (
    AddedLatency,
    CpuThrottle,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
    fault_scope,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class DownWindow:
    node: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PartitionWindow:
    start_s: float
    end_s: float
    cut: BoolArray  # cut[a, b]: the directed link a -> b delivers nothing


@dataclass(frozen=True)
class LatencyWindow:
    start_s: float
    end_s: float
    links: BoolArray  # links[a, b]: the directed link a -> b gets the extra latency
    latency_s: float


@dataclass(frozen=True)
class ThrottleWindow:
    node: int
    start_s: float
    end_s: float
    share: float


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def next_redial_s(lost_s: float, after_s: float, min_s: float, max_s: float) -> float:
    """The first redial at or after ``after_s`` of a connection lost at ``lost_s``.

    As the devnet node's link does: wait ``min_s``, dial; each failed dial doubles the wait, up
    to ``max_s``. A partition resets its connections at the cut and refuses redials until it
    heals, so its links come back at this instant, not at the heal.
    """
    wait_s = min_s
    t_s = lost_s + wait_s
    while t_s < after_s:
        t_s += wait_s
        wait_s = min(2 * wait_s, max_s)
    return t_s


class FaultSchedule:
    """Every fault of a topology as windows over node indexes (``index`` maps names to them)."""

    def __init__(self, topology: Topology, index: dict[str, int]) -> None:
        self.node_count = len(index)
        startup_s = topology.protocol.processing.startup_s
        raw_down: list[list[tuple[float, float]]] = [[] for _ in range(self.node_count)]
        self.partitions: list[PartitionWindow] = []
        self.latencies: list[LatencyWindow] = []
        self.throttles: list[ThrottleWindow] = []
        for fault in topology.faults:
            scope = fault_scope(topology, fault)
            if isinstance(fault, NodeDown | RegionDown):
                # The process restarts at the fault's end and serves after its start-up time.
                back_s = fault.end_s + startup_s
                for name in scope.nodes:
                    raw_down[index[name]].append((fault.start_s, back_s))
            elif isinstance(fault, Partition):
                cut = self._link_mask(index, scope.links)
                # The cut reset every connection across it: they carry nothing until redialled.
                peering = topology.protocol.peering
                back_s = next_redial_s(
                    fault.start_s, fault.end_s, peering.reconnect_min_s, peering.reconnect_max_s
                )
                self.partitions.append(PartitionWindow(fault.start_s, back_s, cut))
            elif isinstance(fault, AddedLatency):
                links = self._link_mask(index, scope.links)
                self.latencies.append(
                    LatencyWindow(fault.start_s, fault.end_s, links, fault.latency_s)
                )
            elif isinstance(fault, CpuThrottle):
                for name in scope.nodes:
                    self.throttles.append(
                        ThrottleWindow(index[name], fault.start_s, fault.end_s, fault.share)
                    )
        self.down: list[list[tuple[float, float]]] = [_merge(w) for w in raw_down]
        self.down_windows: list[DownWindow] = sorted(
            (DownWindow(n, s, e) for n, windows in enumerate(self.down) for s, e in windows),
            key=lambda w: (w.start_s, w.node),
        )

    def _link_mask(self, index: dict[str, int], links: Iterable[tuple[str, str]]) -> BoolArray:
        mask = np.zeros((self.node_count, self.node_count), dtype=np.bool_)
        for a, b in links:
            mask[index[a], index[b]] = True
        return mask

    # ---- single messages and nodes ------------------------------------------------------

    def is_up(self, node: int, t_s: float) -> bool:
        return not any(s <= t_s < e for s, e in self.down[node])

    def down_between(self, node: int, t0_s: float, t1_s: float) -> bool:
        """True if the node is down at any instant of ``[t0_s, t1_s]``."""
        return any(s <= t1_s and e > t0_s for s, e in self.down[node])

    def up_since(self, node: int, t_s: float) -> float:
        """When the node's current up period began (-inf if never down before ``t_s``)."""
        since = -math.inf
        for s, e in self.down[node]:
            if e <= t_s:
                since = e
            elif s <= t_s:
                return math.inf  # down right now
        return since

    def cut(self, a: int, b: int, t_s: float) -> bool:
        return any(p.start_s <= t_s < p.end_s and p.cut[a, b] for p in self.partitions)

    def cut_between(self, a: int, b: int, t0_s: float, t1_s: float) -> bool:
        """True if a partition cuts ``a -> b`` at any instant of ``[t0_s, t1_s]``."""
        return any(p.start_s <= t1_s and p.end_s > t0_s and p.cut[a, b] for p in self.partitions)

    def extra_latency_s(self, a: int, b: int, t_s: float) -> float:
        return sum(
            w.latency_s for w in self.latencies if w.start_s <= t_s < w.end_s and w.links[a, b]
        )

    def cpu_share(self, node: int, t_s: float) -> float:
        """The node's share of its CPU at ``t_s`` (1.0 unthrottled; overlaps take the lowest)."""
        share = 1.0
        for w in self.throttles:
            if w.node == node and w.start_s <= t_s < w.end_s:
                share = min(share, w.share)
        return share

    # ---- many at once ----------------------------------------------------------------

    def down_at(self, nodes: IntArray, times_s: FloatArray) -> BoolArray:
        down = np.zeros(len(nodes), dtype=np.bool_)
        for w in self.down_windows:
            down |= (nodes == w.node) & (times_s >= w.start_s) & (times_s < w.end_s)
        return down

    def cpu_share_at(self, nodes: IntArray, times_s: FloatArray) -> FloatArray:
        share = np.ones(len(nodes), dtype=np.float64)
        for w in self.throttles:
            hit = (nodes == w.node) & (times_s >= w.start_s) & (times_s < w.end_s)
            share = np.where(hit, np.minimum(share, w.share), share)
        return share

    @property
    def has_throttles(self) -> bool:
        return bool(self.throttles)
