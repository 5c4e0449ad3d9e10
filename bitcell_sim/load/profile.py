"""The rate profile of a load run: target transactions per second as a function of run time.

:class:`RateProfile` is a sequence of :class:`RateStage` (start_s, end_s, tps_from, tps_to) on
the load timeline (0 = the run starts), linear within a stage. ``count_until(t)`` is the expected
number of transactions by ``t`` (the integral of the rate) and ``time_of_count(x)`` its inverse;
the pacer places arrivals with them. Build one with :meth:`RateProfile.from_topology` or
:meth:`RateProfile.constant`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bitcell_sim.errors import LoadError
from bitcell_sim.topology import Topology


@dataclass(frozen=True, slots=True)
class RateStage:
    """``tps_from`` at ``start_s`` changing linearly to ``tps_to`` at ``end_s`` (load seconds)."""

    start_s: float
    end_s: float
    tps_from: float
    tps_to: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_hold(self) -> bool:
        """A constant, non-zero rate: the phase over which the achieved rate is judged."""
        return self.tps_from == self.tps_to and self.tps_from > 0

    @property
    def count(self) -> float:
        """Expected transactions in the stage (the area under the rate)."""
        return self.duration_s * (self.tps_from + self.tps_to) / 2

    def rate_at(self, t_s: float) -> float:
        if self.duration_s <= 0:
            return self.tps_to
        fraction = (t_s - self.start_s) / self.duration_s
        return self.tps_from + (self.tps_to - self.tps_from) * fraction

    def count_after(self, tau_s: float) -> float:
        """Expected transactions in the first ``tau_s`` seconds of the stage."""
        slope = (self.tps_to - self.tps_from) / self.duration_s
        return self.tps_from * tau_s + slope * tau_s * tau_s / 2

    def time_for_count(self, count: float) -> float:
        """Seconds into the stage at which ``count`` transactions are expected."""
        if count <= 0:
            return 0.0
        slope = (self.tps_to - self.tps_from) / self.duration_s
        a = self.tps_from
        # Root of slope/2·τ² + a·τ − count = 0 in the form that is stable as slope → 0 and
        # also right for a ramp starting at zero (a = 0).
        root = math.sqrt(max(a * a + 2 * slope * count, 0.0))
        denominator = a + root
        if denominator <= 0:
            return self.duration_s
        return min(2 * count / denominator, self.duration_s)


@dataclass(frozen=True)
class RateProfile:
    """Contiguous stages from 0 to ``duration_s``; the rate is linear within each stage."""

    stages: tuple[RateStage, ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stages:
            raise LoadError("a rate profile needs at least one stage")
        t = 0.0
        for i, stage in enumerate(self.stages):
            if abs(stage.start_s - t) > 1e-9:
                raise LoadError(f"stage {i} starts at {stage.start_s} s, expected {t} s")
            if stage.duration_s <= 0:
                raise LoadError(f"stage {i} has duration {stage.duration_s} s, must be > 0")
            if stage.tps_from < 0 or stage.tps_to < 0:
                raise LoadError(
                    f"stage {i} has a negative rate ({stage.tps_from} -> {stage.tps_to} TPS)"
                )
            t = stage.end_s
        starts = [0.0]
        for stage in self.stages:
            starts.append(starts[-1] + stage.count)
        # Expected count at each stage start, for count_until/time_of_count.
        object.__setattr__(self, "_starts", tuple(starts))

    @classmethod
    def constant(cls, tps: float, duration_s: float) -> RateProfile:
        if tps < 0:
            raise LoadError(f"tps(={tps}) must be >= 0")
        if duration_s <= 0:
            raise LoadError(f"duration(={duration_s} s) must be > 0")
        return cls((RateStage(0.0, duration_s, tps, tps),))

    @classmethod
    def from_stages(cls, stages: Sequence[tuple[float, float, float, float]]) -> RateProfile:
        """From ``(start_s, end_s, tps_from, tps_to)`` tuples, shifted so the first starts at 0."""
        if not stages:
            raise LoadError("a rate profile needs at least one stage")
        offset = stages[0][0]
        return cls(tuple(RateStage(a - offset, b - offset, f, t) for a, b, f, t in stages))

    @classmethod
    def from_topology(
        cls, topology: Topology, tps: float | None = None, duration_s: float | None = None
    ) -> RateProfile:
        """The workload of ``topology`` on the load timeline.

        The workload's ``start`` (its offset from genesis in the model) is dropped: a load run
        begins its first stage when it starts. ``tps`` replaces the profile by one constant stage
        (over ``duration_s`` or the workload's length); ``duration_s`` alone cuts the profile
        short or holds its last rate until then.
        """
        profile = cls.from_stages(topology.workload_stages())
        if tps is not None:
            return cls.constant(tps, duration_s if duration_s is not None else profile.duration_s)
        if duration_s is not None:
            return profile.truncated(duration_s)
        return profile

    def truncated(self, duration_s: float) -> RateProfile:
        """This profile cut at ``duration_s``, or extended at its last rate up to it."""
        if duration_s <= 0:
            raise LoadError(f"duration(={duration_s} s) must be > 0")
        if duration_s >= self.duration_s:
            if duration_s == self.duration_s:
                return self
            last = self.stages[-1].tps_to
            extra = RateStage(self.duration_s, duration_s, last, last)
            return RateProfile((*self.stages, extra))
        kept: list[RateStage] = []
        for stage in self.stages:
            if stage.start_s >= duration_s:
                break
            if stage.end_s <= duration_s:
                kept.append(stage)
            else:
                kept.append(
                    RateStage(stage.start_s, duration_s, stage.tps_from, stage.rate_at(duration_s))
                )
        return RateProfile(tuple(kept))

    @property
    def duration_s(self) -> float:
        return self.stages[-1].end_s

    @property
    def total_count(self) -> float:
        """Expected transactions over the whole profile."""
        return self._starts[-1]

    @property
    def mean_tps(self) -> float:
        return self.total_count / self.duration_s

    @property
    def peak_tps(self) -> float:
        return max(max(s.tps_from, s.tps_to) for s in self.stages)

    def _stage_index(self, t_s: float) -> int:
        ends = [s.end_s for s in self.stages]
        return min(bisect.bisect_right(ends, t_s), len(self.stages) - 1)

    def rate_at(self, t_s: float) -> float:
        """Target TPS at load time ``t_s`` (0 outside the profile)."""
        if t_s < 0 or t_s >= self.duration_s:
            return 0.0
        return self.stages[self._stage_index(t_s)].rate_at(t_s)

    def peak_between(self, t0_s: float, t1_s: float) -> float:
        """The highest target rate in [t0_s, t1_s] (rates are linear, so ends and stage edges)."""
        points = [t0_s, min(t1_s, self.duration_s - 1e-9)]
        points += [s.start_s for s in self.stages if t0_s <= s.start_s <= t1_s]
        points += [s.end_s - 1e-9 for s in self.stages if t0_s <= s.end_s - 1e-9 <= t1_s]
        return max(self.rate_at(p) for p in points)

    def count_until(self, t_s: float) -> float:
        """Expected transactions in [0, t_s]."""
        if t_s <= 0:
            return 0.0
        if t_s >= self.duration_s:
            return self.total_count
        i = self._stage_index(t_s)
        stage = self.stages[i]
        return self._starts[i] + stage.count_after(t_s - stage.start_s)

    def time_of_count(self, count: float) -> float:
        """The earliest load time by which ``count`` transactions are expected."""
        if count <= 0:
            return 0.0
        if count >= self.total_count:
            return self.duration_s
        i = bisect.bisect_right(self._starts, count) - 1
        i = min(max(i, 0), len(self.stages) - 1)
        stage = self.stages[i]
        return stage.start_s + stage.time_for_count(count - self._starts[i])

    def hold_stages(self) -> tuple[RateStage, ...]:
        return tuple(s for s in self.stages if s.is_hold)

    def windows(self, window_s: float) -> list[tuple[float, float]]:
        """The profile cut into windows of at most ``window_s``, aligned to stage edges."""
        if window_s <= 0:
            raise LoadError(f"window(={window_s} s) must be > 0")
        out = []
        for stage in self.stages:
            n = max(1, math.ceil(stage.duration_s / window_s - 1e-9))
            step = stage.duration_s / n
            out += [(stage.start_s + k * step, stage.start_s + (k + 1) * step) for k in range(n)]
        out[-1] = (out[-1][0], self.duration_s)
        return out
