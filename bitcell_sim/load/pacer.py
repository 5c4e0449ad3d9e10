"""Open-loop pacing: when each transaction is due, independent of how fast the node answers.

An :class:`ArrivalStream` yields the send times (load seconds) of one share of a
:class:`~bitcell_sim.load.profile.RateProfile`; a :class:`Pacer` holds one stream per region of a
process and hands the next due time to whichever user asks (``take``), so a slow answer delays
one user, never the schedule. Streams split exactly: a process of rank i among n takes share/n
with phase (i + ½)/n, and the n processes together give the whole rate.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import numpy as np

from bitcell_sim.errors import LoadError
from bitcell_sim.load.profile import RateProfile

Arrival = Literal["constant", "poisson"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson")

#: Poisson arrivals are drawn per window of at most this length, each window holding exactly
#: its expected count: the shape of a Poisson process, the rate of the target at 10 s scale.
WINDOW_S = 10.0

# spawn_key prefix of the load's random streams under the topology seed.
LOAD_STREAM_KEY = 0x10AD


def load_rng(seed: int, *keys: int) -> np.random.Generator:
    """The load's random stream ``keys`` under the topology ``seed`` (SeedSequence child)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(LOAD_STREAM_KEY, *keys)))


class ArrivalStream:
    """Send times of ``share`` of ``profile``'s rate, ``phase`` in [0, 1) placing them.

    ``constant``: the k-th time is where share·count_until(t) reaches k + phase.
    ``poisson``: each window holds floor(share·Λ(end) + phase) − floor(share·Λ(start) + phase)
    times, placed as a Poisson process conditioned on that count (uniform in Λ, sorted).
    """

    def __init__(
        self,
        profile: RateProfile,
        share: float,
        phase: float,
        arrival: Arrival,
        rng: np.random.Generator | None = None,
        window_s: float = WINDOW_S,
    ) -> None:
        if not 0 < share <= 1:
            raise LoadError(f"share(={share}) must be in (0, 1]")
        if not 0 <= phase < 1:
            raise LoadError(f"phase(={phase}) must be in [0, 1)")
        if arrival not in ARRIVALS:
            raise LoadError(f"arrival(={arrival!r}) must be one of {', '.join(ARRIVALS)}")
        if arrival == "poisson" and rng is None:
            raise LoadError("poisson arrivals need a random generator")
        self.profile = profile
        self.share = share
        self.phase = phase
        self.arrival = arrival
        self.rng = rng
        self.window_s = window_s

    def expected_count(self) -> int:
        """How many times the stream yields in total."""
        return math.floor(self.share * self.profile.total_count + self.phase)

    def __iter__(self) -> Iterator[float]:
        if self.arrival == "constant":
            return self._constant()
        return self._poisson()

    def _constant(self) -> Iterator[float]:
        for k in range(self.expected_count()):
            yield self.profile.time_of_count((k + self.phase) / self.share)

    def _poisson(self) -> Iterator[float]:
        assert self.rng is not None
        profile = self.profile
        for start_s, end_s in profile.windows(self.window_s):
            low, high = profile.count_until(start_s), profile.count_until(end_s)
            n = math.floor(self.share * high + self.phase) - math.floor(
                self.share * low + self.phase
            )
            if n <= 0:
                continue
            for count in np.sort(self.rng.uniform(low, high, n)):
                yield profile.time_of_count(float(count))


class Pacer:
    """The due times of one process, one stream per key (region); ``take`` the next one.

    A user that cannot use a time it took (it was stopped) gives it back with ``give_back``,
    and the next user takes it first, so stopping users does not lose transactions.
    """

    def __init__(self, streams: Mapping[str, Iterable[float]]) -> None:
        self._streams = {key: iter(stream) for key, stream in streams.items()}
        self._returned: dict[str, list[float]] = {key: [] for key in streams}
        self._peeked: dict[str, float | None] = {}
        self.taken = dict.fromkeys(streams, 0)

    @classmethod
    def split(
        cls,
        profile: RateProfile,
        weights: Mapping[str, float],
        arrival: Arrival,
        seed: int,
        rank: int = 0,
        count: int = 1,
        window_s: float = WINDOW_S,
    ) -> Pacer:
        """Streams for the process of ``rank`` among ``count``, one per weighted key."""
        if count < 1 or not 0 <= rank < count:
            raise LoadError(f"process rank {rank} of {count} is out of range")
        total = sum(weights.values())
        if total <= 0:
            raise LoadError(f"weights {dict(weights)} must have a positive sum")
        streams = {}
        for index, (key, weight) in enumerate(weights.items()):
            if weight <= 0:
                continue
            streams[key] = ArrivalStream(
                profile,
                share=weight / total / count,
                phase=(rank + 0.5) / count,
                arrival=arrival,
                rng=load_rng(seed, 1, index, rank),
                window_s=window_s,
            )
        return cls(streams)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._streams)

    def _peek(self, key: str) -> float | None:
        if key not in self._peeked:
            self._peeked[key] = next(self._streams[key], None)
        return self._peeked[key]

    def take(self, key: str) -> float | None:
        """The next due time of ``key`` (load seconds), or None when its stream is exhausted."""
        if key not in self._streams:
            raise LoadError(f"no stream {key!r} (streams: {', '.join(self._streams) or 'none'})")
        returned = self._returned[key]
        upcoming = self._peek(key)
        if returned and (upcoming is None or returned[0] <= upcoming):
            slot = heapq.heappop(returned)
        elif upcoming is None:
            return None
        else:
            slot = upcoming
            del self._peeked[key]
        self.taken[key] += 1
        return slot

    def give_back(self, key: str, slot: float) -> None:
        """Return an unused due time; the next ``take`` of ``key`` hands it out first."""
        heapq.heappush(self._returned[key], slot)
        self.taken[key] -= 1

    def exhausted(self) -> bool:
        return all(self._peek(k) is None and not self._returned[k] for k in self._streams)
