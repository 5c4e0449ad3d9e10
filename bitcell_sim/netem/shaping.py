"""The shaping arithmetic of a link: serialization at a bandwidth, then a delay, in byte order.

``Serializer`` is one link direction's transmitter: a chunk finishes transmitting only after the
previous one has. ``JitterSampler`` draws a link's jitter from its seeded Generator.
``InOrderClock`` keeps one connection direction's delivery times non-decreasing, so bytes never
overtake each other. ``schedule_chunk`` combines them into ``Piece`` delivery times. No sockets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bitcell_sim.errors import NetemError
from bitcell_sim.topology.jitter import JITTER_DISTRIBUTIONS, standard_jitter
from bitcell_sim.topology.links import LinkParams

# A chunk read from a socket is split into pieces of about this much transmission time, so a
# slow link delivers a large read progressively (as a real link would) instead of in one lump.
PIECE_TIME_S = 0.001
MIN_PIECE_BYTES = 1460  # one Ethernet-sized TCP segment: smaller pieces only add overhead
MAX_PIECE_BYTES = 65536


def transmission_time_s(size_bytes: int, bandwidth_bps: float | None) -> float:
    """Seconds to put ``size_bytes`` on a link of ``bandwidth_bps`` (0 when unlimited)."""
    if size_bytes < 0:
        raise NetemError(f"size_bytes={size_bytes!r} must be >= 0")
    if bandwidth_bps is None or bandwidth_bps == 0:
        return 0.0
    if bandwidth_bps < 0:
        raise NetemError(f"bandwidth_bps={bandwidth_bps!r} must be >= 0")
    return size_bytes * 8.0 / bandwidth_bps


def piece_size_bytes(bandwidth_bps: float | None) -> int:
    """How many bytes of a chunk are scheduled together on a link of ``bandwidth_bps``."""
    if bandwidth_bps is None or bandwidth_bps == 0:
        return MAX_PIECE_BYTES
    wanted = int(bandwidth_bps * PIECE_TIME_S / 8.0)
    return max(MIN_PIECE_BYTES, min(MAX_PIECE_BYTES, wanted))


class Serializer:
    """The transmitter of one link direction, shared by every connection on it.

    ``busy_until_s`` is when the last scheduled byte finishes transmitting; a new chunk starts at
    ``max(now_s, busy_until_s)`` and finishes ``transmission_time_s`` later.
    """

    def __init__(self) -> None:
        self.busy_until_s = -math.inf

    def depart_s(self, now_s: float, size_bytes: int, bandwidth_bps: float | None) -> float:
        """Reserve the link for ``size_bytes`` arriving at ``now_s``; return its departure."""
        start_s = max(now_s, self.busy_until_s)
        done_s = start_s + transmission_time_s(size_bytes, bandwidth_bps)
        self.busy_until_s = done_s
        return done_s


class JitterSampler:
    """Jitter draws of one link, from its own seeded Generator (the topology's jitter law).

    Standardised draws (``standard_jitter``) are made in blocks (one numpy call per ``block``
    chunks) and scaled by the ``jitter_s`` in force at each chunk, so a live change of scale
    takes effect immediately.
    """

    def __init__(self, distribution: str, rng: np.random.Generator, block: int = 256) -> None:
        if distribution not in JITTER_DISTRIBUTIONS:
            raise NetemError(
                f"jitter_distribution={distribution!r} must be one of "
                f"{', '.join(JITTER_DISTRIBUTIONS)}"
            )
        if block < 1:
            raise NetemError(f"block={block!r} must be >= 1")
        self.distribution = distribution
        self._rng = rng
        self._block = block
        self._draws: list[float] = []

    def _refill(self) -> None:
        draws = standard_jitter(self.distribution, self._rng, self._block)
        # Reversed so pop() hands them out in the order the Generator produced them.
        self._draws = draws[::-1].tolist()

    def sample_s(self, jitter_s: float) -> float:
        """One jitter draw in seconds at scale ``jitter_s`` (0.0 for "none" or a zero scale)."""
        if self.distribution == "none" or jitter_s == 0:
            return 0.0
        if not self._draws:
            self._refill()
        return self._draws.pop() * jitter_s


def one_way_delay_s(params: LinkParams, jitter_sample_s: float) -> float:
    """The delay after departure: latency + extra latency + jitter, never negative."""
    return max(0.0, params.base_delay_s + jitter_sample_s)


class InOrderClock:
    """Delivery times of one connection direction: never earlier than the previous one."""

    def __init__(self) -> None:
        self.last_s = -math.inf

    def deliver_at_s(self, earliest_s: float) -> float:
        """The delivery time of a piece that could arrive at ``earliest_s``."""
        self.last_s = max(self.last_s, earliest_s)
        return self.last_s


@dataclass(frozen=True)
class Piece:
    """A slice ``[start, end)`` of a chunk, when it finished transmitting, when it is delivered."""

    start: int
    end: int
    departure_s: float
    delivery_s: float

    @property
    def size_bytes(self) -> int:
        return self.end - self.start


def schedule_chunk(
    now_s: float,
    size_bytes: int,
    params: LinkParams,
    serializer: Serializer,
    clock: InOrderClock,
    jitter_sample_s: float,
) -> list[Piece]:
    """Schedule a chunk read at ``now_s``: serialize each piece, then delay it, in order.

    One jitter draw applies to the whole chunk (all its pieces): it models the delay variation
    of that stretch of the path, and drawing per piece would only inflate the in-order maximum.
    """
    if size_bytes <= 0:
        raise NetemError(f"size_bytes={size_bytes!r} must be > 0")
    delay_s = one_way_delay_s(params, jitter_sample_s)
    step = piece_size_bytes(params.bandwidth_bps)
    pieces: list[Piece] = []
    for start in range(0, size_bytes, step):
        end = min(size_bytes, start + step)
        departure_s = serializer.depart_s(now_s, end - start, params.bandwidth_bps)
        delivery_s = clock.deliver_at_s(departure_s + delay_s)
        pieces.append(Piece(start, end, departure_s, delivery_s))
    return pieces


def schedule_eof(
    now_s: float,
    params: LinkParams,
    serializer: Serializer,
    clock: InOrderClock,
    jitter_sample_s: float,
) -> float:
    """When a half-close (FIN) sent at ``now_s`` arrives: after all data before it."""
    departure_s = max(now_s, serializer.busy_until_s)
    return clock.deliver_at_s(departure_s + one_way_delay_s(params, jitter_sample_s))
