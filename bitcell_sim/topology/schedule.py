"""The workload's arrival schedule: every transaction's submit time, target node and gas price.

:class:`RateProfile` is the target rate over time (:class:`RateStage`\\ s, linear within each);
:class:`Workload` is what a schedule is drawn from (profile, ``constant`` or ``poisson``, target
regions and nodes, gas prices, seed, end of run) and :meth:`Workload.draw` the :class:`Arrivals`.
The model simulates exactly these and the load test replays them: tx *i* is one tx in both worlds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology.schema import ArrivalProcess, Topology
from bitcell_sim.topology.seeds import SeedTree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RateStage:
    """``tps_from`` at ``start_s`` changing linearly to ``tps_to`` at ``end_s``."""

    start_s: float
    end_s: float
    tps_from: float
    tps_to: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def slope(self) -> float:
        """Change of the rate, tx/s per s."""
        return (self.tps_to - self.tps_from) / self.duration_s

    @property
    def is_hold(self) -> bool:
        """A constant, non-zero rate: the phase over which the achieved rate is judged."""
        return self.tps_from == self.tps_to and self.tps_from > 0

    @property
    def count(self) -> float:
        """Expected transactions in the stage (the area under the rate)."""
        length_s = self.duration_s
        return self.tps_from * length_s + self.slope * length_s**2 / 2

    def rate_at(self, t_s: float) -> float:
        return self.tps_from + self.slope * (t_s - self.start_s)

    def times_of(self, counts: FloatArray) -> FloatArray:
        """When the stage's cumulative rate reaches each of ``counts`` (the one ramp inversion).

        Solves ``tps_from·x + slope·x²/2 = count`` in the form that is stable as the slope goes
        to 0 and right for a ramp that starts at 0.
        """
        root = np.sqrt(self.tps_from**2 + 2 * self.slope * counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = np.where(counts > 0, 2 * counts / (self.tps_from + root), 0.0)
        return self.start_s + offset


@dataclass(frozen=True)
class RateProfile:
    """Contiguous stages from ``start_s`` to ``end_s``; the rate is linear within each."""

    stages: tuple[RateStage, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise TopologyError([("workload", "a rate profile needs at least one stage")])
        t = self.stages[0].start_s
        for i, stage in enumerate(self.stages):
            where = f"workload.stages[{i}]"
            if abs(stage.start_s - t) > 1e-9:
                raise TopologyError([(where, f"starts at {stage.start_s} s, expected {t} s")])
            if stage.duration_s <= 0:
                raise TopologyError([(where, f"duration {stage.duration_s} s must be > 0")])
            if stage.tps_from < 0 or stage.tps_to < 0:
                raise TopologyError(
                    [(where, f"negative rate ({stage.tps_from} -> {stage.tps_to} TPS)")]
                )
            t = stage.end_s

    @classmethod
    def constant(cls, tps: float, duration_s: float, start_s: float = 0.0) -> RateProfile:
        return cls((RateStage(start_s, start_s + duration_s, tps, tps),))

    @classmethod
    def of(cls, topology: Topology) -> RateProfile:
        """The workload's profile in seconds since genesis (``workload.start`` included)."""
        return cls(tuple(RateStage(*stage) for stage in topology.workload_stages()))

    @property
    def start_s(self) -> float:
        return self.stages[0].start_s

    @property
    def end_s(self) -> float:
        return self.stages[-1].end_s

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def total_count(self) -> float:
        """Expected transactions over the whole profile."""
        return sum(stage.count for stage in self.stages)

    @property
    def mean_tps(self) -> float:
        return self.total_count / self.duration_s

    @property
    def peak_tps(self) -> float:
        return max(max(s.tps_from, s.tps_to) for s in self.stages)

    def rate_at(self, t_s: float) -> float:
        """Target TPS at ``t_s`` (0 outside the profile)."""
        for stage in self.stages:
            if stage.start_s <= t_s < stage.end_s:
                return stage.rate_at(t_s)
        return 0.0

    def peak_between(self, t0_s: float, t1_s: float) -> float:
        """The highest target rate in [t0_s, t1_s] (rates are linear, so ends and stage edges)."""
        points = [t0_s, min(t1_s, self.end_s - 1e-9)]
        points += [s.start_s for s in self.stages if t0_s <= s.start_s <= t1_s]
        points += [s.end_s - 1e-9 for s in self.stages if t0_s <= s.end_s - 1e-9 <= t1_s]
        return max(self.rate_at(p) for p in points)

    def hold_stages(self) -> tuple[RateStage, ...]:
        return tuple(s for s in self.stages if s.is_hold)

    def shifted(self, offset_s: float) -> RateProfile:
        """The same profile ``offset_s`` later (negative: earlier)."""
        return RateProfile(
            tuple(
                RateStage(s.start_s + offset_s, s.end_s + offset_s, s.tps_from, s.tps_to)
                for s in self.stages
            )
        )

    def truncated(self, duration_s: float) -> RateProfile:
        """This profile cut ``duration_s`` after its start, or held at its last rate up to it."""
        end_s = self.start_s + duration_s
        if end_s >= self.end_s:
            if end_s == self.end_s:
                return self
            last = self.stages[-1].tps_to
            return RateProfile((*self.stages, RateStage(self.end_s, end_s, last, last)))
        kept: list[RateStage] = []
        for stage in self.stages:
            if stage.start_s >= end_s:
                break
            if stage.end_s <= end_s:
                kept.append(stage)
            else:
                kept.append(RateStage(stage.start_s, end_s, stage.tps_from, stage.rate_at(end_s)))
        return RateProfile(tuple(kept))

    def to_list(self) -> list[list[float]]:
        return [[s.start_s, s.end_s, s.tps_from, s.tps_to] for s in self.stages]

    @classmethod
    def from_list(cls, stages: list[list[float]]) -> RateProfile:
        return cls(tuple(RateStage(*map(float, stage)) for stage in stages))


@dataclass(frozen=True)
class Arrivals:
    """Every tx of a run, by submit time: index *i* is the tx's id in the run.

    ``node[i]`` indexes ``nodes`` (the topology's node names, in topology order).
    """

    submit_s: FloatArray
    node: IntArray
    gas_price: IntArray
    nodes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.submit_s)

    def node_names(self) -> npt.NDArray[np.object_]:
        return np.array(self.nodes, dtype=object)[self.node]


@dataclass(frozen=True)
class TargetRegion:
    """A region that receives a share ``weight`` of the txs, spread over ``nodes`` (indexes)."""

    name: str
    weight: float
    nodes: tuple[int, ...]


@dataclass(frozen=True)
class Workload:
    """What a schedule is drawn from: no arrival at or after ``until_s`` (the run's end)."""

    profile: RateProfile
    arrival: ArrivalProcess
    nodes: tuple[str, ...]
    regions: tuple[TargetRegion, ...]
    gas_price_min: int
    gas_price_max: int
    seed: int
    until_s: float

    @classmethod
    def of(cls, topology: Topology) -> Workload:
        """The topology's workload, to the end of its run (``general.duration``)."""
        index = {name: i for i, name in enumerate(topology.node_names)}
        regions = tuple(
            TargetRegion(region, weight, tuple(index[n] for n in topology.nodes_in_region(region)))
            for region, weight in topology.workload_region_weights().items()
            if weight > 0
        )
        w = topology.workload
        return cls(
            profile=RateProfile.of(topology),
            arrival=w.arrival,
            nodes=topology.node_names,
            regions=regions,
            gas_price_min=w.gas_price.min,
            gas_price_max=w.gas_price.max,
            seed=topology.general.seed,
            until_s=topology.general.duration_s,
        )

    def draw(self) -> Arrivals:
        """The arrivals, drawn from the seed tree's workload stream in a fixed order.

        ``constant``: the *k*-th tx of a stage is where the stage's cumulative rate reaches *k*
        (the first at its start); ``poisson``: where it reaches the *k*-th point of a unit-rate
        Poisson process, so gaps are exponential at the rate in force. Then each tx gets a
        region by the weights, one of its nodes uniformly, and a gas price uniform in
        ``[gas_price_min, gas_price_max]``, in that order.
        """
        rng = SeedTree(self.seed).workload()
        poisson = self.arrival == "poisson"
        parts = [
            _stage_times(stage, self.until_s, poisson, rng)
            for stage in self.profile.stages
            if stage.start_s < self.until_s
        ]
        submit_s = np.sort(np.concatenate(parts)) if parts else np.empty(0)
        count = len(submit_s)
        probabilities = np.array([r.weight for r in self.regions])
        region_of = rng.choice(len(self.regions), size=count, p=probabilities / probabilities.sum())
        pick = rng.random(count)
        node = np.empty(count, dtype=np.int64)
        for r, region in enumerate(self.regions):
            members = np.array(region.nodes)
            mine = region_of == r
            node[mine] = members[(pick[mine] * len(members)).astype(np.int64)]
        gas_price = rng.integers(self.gas_price_min, self.gas_price_max + 1, count, np.int64)
        return Arrivals(submit_s.astype(np.float64), node, gas_price, self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.to_list(),
            "arrival": self.arrival,
            "nodes": list(self.nodes),
            "regions": [[r.name, r.weight, list(r.nodes)] for r in self.regions],
            "gas_price_min": self.gas_price_min,
            "gas_price_max": self.gas_price_max,
            "seed": self.seed,
            "until_s": self.until_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        return cls(
            profile=RateProfile.from_list(data["profile"]),
            arrival=data["arrival"],
            nodes=tuple(data["nodes"]),
            regions=tuple(
                TargetRegion(name, float(weight), tuple(nodes))
                for name, weight, nodes in data["regions"]
            ),
            gas_price_min=int(data["gas_price_min"]),
            gas_price_max=int(data["gas_price_max"]),
            seed=int(data["seed"]),
            until_s=float(data["until_s"]),
        )


def _stage_times(
    stage: RateStage, until_s: float, poisson: bool, rng: np.random.Generator
) -> FloatArray:
    """Arrival times in ``[start_s, min(end_s, until_s))`` of one (possibly ramped) stage."""
    total = stage.count
    if total <= 0:
        return np.empty(0)
    if poisson:
        points = np.cumsum(rng.standard_exponential(int(total + 6 * math.sqrt(total) + 16)))
        while points[-1] < total:
            more = np.cumsum(rng.standard_exponential(int(6 * math.sqrt(total) + 16)))
            points = np.concatenate([points, points[-1] + more])
        points = points[points < total]
    else:
        points = np.arange(math.ceil(total), dtype=np.float64)
        points = points[points < total]
    times = stage.times_of(points)
    return times[times < min(stage.end_s, until_s)]


def arrival_schedule(topology: Topology) -> Arrivals:
    """Every tx the topology's workload submits before the end of its run."""
    return Workload.of(topology).draw()
