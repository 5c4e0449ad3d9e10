"""What a run's records cover: its interval, its load window and its faults, as windows in time.

:class:`RunWindow` (with one :class:`FaultWindow` per fault, seconds since genesis) is the part
of ``meta.json`` that ``summarize`` reads besides the tables. A prediction takes it from its
topology (:meth:`RunWindow.of_topology`); a measurement from what happened (the load's schedule,
the devnet's fault journal), so one summary serves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bitcell_sim.errors import ResultsError
from bitcell_sim.topology import (
    AddedLatency,
    CpuThrottle,
    Fault,
    NodeDown,
    Partition,
    RegionDown,
    Topology,
)

#: Fault kinds that take their nodes down (they have per-node down windows).
DOWN_KINDS = ("node_down", "region_down")

#: One node's down window: (node, start_s, end_s); end_s None = still down at the run's end.
DownWindow = tuple[str, float, float | None]


@dataclass(frozen=True)
class FaultWindow:
    """One fault as it held: ``end_s`` None means it was still in force when the run ended.

    ``nodes`` are the nodes it touches (every node for a partition: all of them reconverge);
    ``down`` the per-node down windows of a node or region outage (a region's nodes may come
    back one by one on the devnet).
    """

    kind: str
    target: str
    start_s: float
    end_s: float | None
    nodes: tuple[str, ...]
    label: str = ""
    latency_s: float | None = None
    share: float | None = None
    down: tuple[DownWindow, ...] = ()

    @classmethod
    def of_fault(cls, topology: Topology, fault: Fault) -> FaultWindow:
        """The window of one fault of ``topology`` (a prediction holds it exactly as written)."""
        if isinstance(fault, Partition):
            target = " | ".join(",".join(group) for group in fault.groups)
            nodes = topology.node_names
        else:
            target = fault.target
            nodes = topology.fault_nodes(fault)
        down: tuple[DownWindow, ...] = ()
        if isinstance(fault, NodeDown | RegionDown):
            down = tuple((n, fault.start_s, fault.end_s) for n in nodes)
        return cls(
            kind=fault.kind,
            target=target,
            start_s=fault.start_s,
            end_s=fault.end_s,
            nodes=nodes,
            label=fault.label,
            latency_s=fault.latency_s if isinstance(fault, AddedLatency) else None,
            share=fault.share if isinstance(fault, CpuThrottle) else None,
            down=down,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "label": self.label,
            "target": self.target,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "nodes": list(self.nodes),
        }
        if self.latency_s is not None:
            data["latency_s"] = self.latency_s
        if self.share is not None:
            data["share"] = self.share
        if self.kind in DOWN_KINDS:
            data["down"] = [list(d) for d in self.down]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultWindow:
        try:
            end = data["end_s"]
            return cls(
                kind=str(data["kind"]),
                target=str(data["target"]),
                start_s=float(data["start_s"]),
                end_s=None if end is None else float(end),
                nodes=tuple(str(n) for n in data["nodes"]),
                label=str(data.get("label", "")),
                latency_s=_optional_float(data.get("latency_s")),
                share=_optional_float(data.get("share")),
                down=tuple(
                    (str(n), float(s), _optional_float(e)) for n, s, e in data.get("down", ())
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"bad fault window {dict(data)!r}: {exc}") from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class RunWindow:
    """The interval ``[start_s, end_s]`` a run's records cover, its load and its faults."""

    start_s: float
    end_s: float
    load_s: tuple[float, float] | None = None
    peak_tps: float | None = None
    faults: tuple[FaultWindow, ...] = ()

    def __post_init__(self) -> None:
        if not self.end_s >= self.start_s:
            raise ResultsError(
                f"run window end {self.end_s} s is before its start {self.start_s} s"
            )

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @classmethod
    def of_topology(cls, topology: Topology) -> RunWindow:
        """A prediction's window: genesis to the run's duration, the workload as written."""
        duration_s = topology.general.duration_s
        stages = topology.workload_stages()
        return cls(
            start_s=0.0,
            end_s=duration_s,
            load_s=(stages[0][0], min(stages[-1][1], duration_s)),
            peak_tps=max(max(s[2], s[3]) for s in stages),
            faults=tuple(FaultWindow.of_fault(topology, f) for f in topology.faults),
        )

    def to_meta(self) -> dict[str, Any]:
        """The ``meta.json`` keys of this window (docs/results.md)."""
        return {
            "window_s": [self.start_s, self.end_s],
            "load_window_s": None if self.load_s is None else list(self.load_s),
            "offered_peak_tps": self.peak_tps,
            "faults": [f.to_dict() for f in self.faults],
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> RunWindow:
        """The window written by :meth:`to_meta` (ResultsError if ``meta`` has none)."""
        if "window_s" not in meta:
            raise ResultsError("meta.json has no window_s (written before run windows existed)")
        try:
            start_s, end_s = (float(t) for t in meta["window_s"])
            load = meta.get("load_window_s")
            peak = meta.get("offered_peak_tps")
            return cls(
                start_s=start_s,
                end_s=end_s,
                load_s=None if load is None else (float(load[0]), float(load[1])),
                peak_tps=None if peak is None else float(peak),
                faults=tuple(FaultWindow.from_dict(f) for f in meta.get("faults", ())),
            )
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"meta.json: bad run window: {exc}") from None

    def down_windows(self, nodes: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
        """Each node's down windows (one still open ends at the run's end)."""
        windows: dict[str, list[tuple[float, float]]] = {n: [] for n in nodes}
        for fault in self.faults:
            for node, start_s, end_s in fault.down:
                if node in windows:
                    windows[node].append((start_s, self.end_s if end_s is None else end_s))
        return windows
