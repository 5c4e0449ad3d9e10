"""Links: how one message crosses one directed peer link, and the jitter it gets there.

A message is serialized at the link's bandwidth after the previous one on the same link
(:class:`Link`, ``busy_until_s``), then delayed by ``max(0, latency + added latency + jitter)``
and delivered in order (never before the previous delivery), as the devnet's link emulator
does. Jitter follows the topology's law (:func:`~bitcell_sim.topology.jitter.standard_jitter`,
the emulator's too) at the link's scale.
:class:`MessageJitter` draws a link's jitter for single messages in sequence;
:class:`TickJitter` holds the jitter of every link at every tx-batch tick, drawn chunk by chunk.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bitcell_sim.errors import ModelError
from bitcell_sim.model.schedule import FaultSchedule
from bitcell_sim.topology.jitter import standard_jitter

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class MessageJitter:
    """The jitter of one link's messages, drawn in blocks from the link's own Generator."""

    __slots__ = ("_block", "_buffer", "_position", "_rng", "distribution", "scale_s")

    def __init__(
        self, distribution: str, scale_s: float, rng: np.random.Generator, block: int = 256
    ) -> None:
        self.distribution = distribution
        self.scale_s = scale_s if distribution != "none" else 0.0
        self._rng = rng
        self._block = block
        self._buffer: list[float] = []
        self._position = 0

    def _refill(self) -> None:
        draws = standard_jitter(self.distribution, self._rng, self._block)
        self._buffer = (draws * self.scale_s).tolist()
        self._position = 0

    def sample_s(self) -> float:
        if self.scale_s == 0.0:
            return 0.0
        if self._position >= len(self._buffer):
            self._refill()
        value = self._buffer[self._position]
        self._position += 1
        return value


class TickJitter:
    """Jitter of every link at every tx-batch tick k (the batch sent at k x interval).

    Values are drawn per link in chunks of ``chunk_ticks`` ticks, always in increasing chunk
    order, so the jitter of (link, tick) does not depend on when it is first asked for.
    """

    def __init__(
        self,
        distribution: str,
        scale_s: float,
        rngs: list[np.random.Generator],
        chunk_ticks: int = 1024,
    ) -> None:
        self.distribution = distribution
        self.scale_s = scale_s if distribution != "none" else 0.0
        self._rngs = rngs
        self._chunk = chunk_ticks
        self._chunks: dict[int, FloatArray] = {}
        self._next_chunk = 0
        self._window: tuple[int, int, FloatArray] | None = None

    @property
    def active(self) -> bool:
        return self.scale_s != 0.0 and bool(self._rngs)

    def table(self, first_tick: int, last_tick: int) -> tuple[FloatArray, int]:
        """Jitter of every link at ticks ``first_tick..last_tick`` at least, and the first
        tick the table holds: ``table[tick - base, link]``."""
        first, last = first_tick // self._chunk, last_tick // self._chunk
        while self._next_chunk <= last:
            # Tick-major (ticks x links): a node's batch reads one row for all its links.
            draws = [standard_jitter(self.distribution, rng, self._chunk) for rng in self._rngs]
            self._chunks[self._next_chunk] = self.scale_s * np.stack(draws, axis=1)
            self._next_chunk += 1
        if first not in self._chunks:
            raise ModelError(f"tx-batch jitter of tick chunk {first} was already forgotten")
        if self._window is None or self._window[0] != first or self._window[1] < last:
            parts = [self._chunks[c] for c in range(first, last + 1)]
            table = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            self._window = (first, last, table)
        return self._window[2], first * self._chunk

    def forget_before(self, tick: int) -> None:
        """Free the chunks wholly before ``tick``: no batch will leave before it any more."""
        for old in [c for c in self._chunks if (c + 1) * self._chunk <= tick]:
            del self._chunks[old]
        if self._window is not None and self._window[0] not in self._chunks:
            self._window = None

    def lookup_s(self, links: IntArray, ticks: IntArray) -> FloatArray:
        """Jitter of ``links[i]`` at ``ticks[i]`` (same shapes; ticks >= 0)."""
        if not self.active or ticks.size == 0:
            return np.zeros(ticks.shape)
        table, base = self.table(int(ticks.min()), int(ticks.max()))
        return table[ticks - base, links]


class Link:
    """One directed peer link as single messages (blocks, sync, status) see it."""

    __slots__ = (
        "bandwidth_bps",
        "busy_until_s",
        "dst",
        "jitter",
        "last_arrival_s",
        "latency_s",
        "schedule",
        "src",
    )

    def __init__(
        self,
        src: int,
        dst: int,
        latency_s: float,
        bandwidth_bps: float,
        jitter: MessageJitter,
        schedule: FaultSchedule,
    ) -> None:
        self.src = src
        self.dst = dst
        self.latency_s = latency_s
        self.bandwidth_bps = bandwidth_bps
        self.jitter = jitter
        self.schedule = schedule
        self.busy_until_s = 0.0
        self.last_arrival_s = 0.0

    def transmit(self, now_s: float, size_bytes: int) -> float | None:
        """Send ``size_bytes`` at ``now_s``: the arrival time, or None if the message is lost.

        A message is lost if a partition separates the ends, or the receiver is down, at any
        instant between departure and arrival. It occupies the link either way.
        """
        start_s = now_s if now_s > self.busy_until_s else self.busy_until_s
        sent_s = start_s + size_bytes * 8.0 / self.bandwidth_bps
        self.busy_until_s = sent_s
        delay_s = self.latency_s + self.jitter.sample_s()
        if self.schedule.latencies:
            delay_s += self.schedule.extra_latency_s(self.src, self.dst, now_s)
        arrival_s = sent_s + (delay_s if delay_s > 0.0 else 0.0)
        if arrival_s < self.last_arrival_s:
            arrival_s = self.last_arrival_s
        self.last_arrival_s = arrival_s
        schedule = self.schedule
        if schedule.partitions and schedule.cut_between(self.src, self.dst, now_s, arrival_s):
            return None
        if schedule.down_windows and schedule.down_between(self.dst, now_s, arrival_s):
            return None
        return arrival_s
