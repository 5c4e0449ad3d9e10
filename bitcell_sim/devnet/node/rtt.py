"""Round-trip time to each peer, as the node itself measures it with Ping and Pong.

``RttTracker`` keeps one peer's samples: the last, an exponentially weighted mean (``ewma_s``),
the minimum over the last ``window`` samples, and a count and sum. ``render_peer_rtts`` writes
them as the labelled ``bitcell_peer_rtt_*`` series appended to ``GET /metrics``;
``parse_peer_rtts`` reads them back into ``RttReading`` per peer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from bitcell_sim.protocol.metrics import (
    MetricSpec,
    MetricType,
    parse_prometheus_samples,
    render_metric,
)

#: Weight of a new sample in the smoothed RTT. Higher than TCP's 1/8 so that a step (an added
#: latency) shows within ~8 samples, i.e. ~8 s at one Ping per second.
RTT_EWMA_ALPHA = 0.25
#: Samples the minimum is taken over (~16 s at one Ping per second).
RTT_WINDOW = 16

RTT_SECONDS = "bitcell_peer_rtt_seconds"
RTT_LAST = "bitcell_peer_rtt_last_seconds"
RTT_MIN = "bitcell_peer_rtt_min_seconds"
RTT_SAMPLES = "bitcell_peer_rtt_samples_total"
RTT_SUM = "bitcell_peer_rtt_sum_seconds_total"

_G, _C, _PEER = MetricType.GAUGE, MetricType.COUNTER, ("peer",)
_FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec(
        RTT_SECONDS,
        _G,
        "Smoothed round-trip time to a peer (EWMA of Ping to Pong on this node's connection)",
        _PEER,
    ),
    MetricSpec(RTT_LAST, _G, "Last measured round-trip time to a peer", _PEER),
    MetricSpec(
        RTT_MIN, _G, f"Minimum round-trip time to a peer over its last {RTT_WINDOW} samples", _PEER
    ),
    MetricSpec(RTT_SAMPLES, _C, "Round-trip samples taken for a peer", _PEER),
    MetricSpec(RTT_SUM, _C, "Sum of the round-trip samples of a peer, in seconds", _PEER),
)


class RttTracker:
    """RTT samples of one peer (seconds); not thread-safe, fed by the node's event loop."""

    __slots__ = ("_window", "alpha", "ewma_s", "last_s", "samples", "sum_s")

    def __init__(self, window: int = RTT_WINDOW, alpha: float = RTT_EWMA_ALPHA) -> None:
        if window < 1:
            raise ValueError(f"RTT window={window} must be at least 1 sample")
        if not 0 < alpha <= 1:
            raise ValueError(f"RTT EWMA alpha={alpha} must be in (0, 1]")
        self.alpha = alpha
        self._window: deque[float] = deque(maxlen=window)
        self.last_s: float | None = None
        self.ewma_s: float | None = None
        self.samples = 0
        self.sum_s = 0.0

    def observe(self, rtt_s: float) -> None:
        """Record one round trip of ``rtt_s`` seconds (finite, >= 0)."""
        if not math.isfinite(rtt_s) or rtt_s < 0:
            raise ValueError(f"RTT sample {rtt_s!r} s must be a finite number >= 0")
        self.last_s = rtt_s
        # The first sample seeds the mean, so it is not dragged up from 0.
        previous = self.ewma_s
        self.ewma_s = rtt_s if previous is None else previous + self.alpha * (rtt_s - previous)
        self._window.append(rtt_s)
        self.samples += 1
        self.sum_s += rtt_s

    @property
    def min_s(self) -> float | None:
        """The smallest of the last ``window`` samples (None before the first)."""
        return min(self._window) if self._window else None

    @property
    def window(self) -> tuple[float, ...]:
        """The last ``window`` samples, oldest first."""
        return tuple(self._window)


@dataclass(frozen=True)
class RttReading:
    """One peer's RTT as a node exports it (seconds)."""

    ewma_s: float
    last_s: float
    min_s: float
    samples: int
    sum_s: float

    @property
    def mean_s(self) -> float:
        """Mean of every sample since the node started."""
        return self.sum_s / self.samples if self.samples else math.nan


def render_peer_rtts(trackers: Mapping[str, RttTracker]) -> str:
    """The ``bitcell_peer_rtt_*`` families (HELP, TYPE, one sample per peer with a sample yet),
    blank-line separated and newline-terminated like the rest of the node's text."""
    measured = [
        (peer, t) for peer, t in sorted(trackers.items()) if t.samples and t.last_s is not None
    ]
    values: dict[str, list[tuple[str, float | None]]] = {
        RTT_SECONDS: [(p, t.ewma_s) for p, t in measured],
        RTT_LAST: [(p, t.last_s) for p, t in measured],
        RTT_MIN: [(p, t.min_s) for p, t in measured],
        RTT_SAMPLES: [(p, t.samples) for p, t in measured],
        RTT_SUM: [(p, t.sum_s) for p, t in measured],
    }
    blocks = [
        render_metric(spec, {(p,): v for p, v in values[spec.name] if v is not None})
        for spec in _FAMILIES
    ]
    return "\n\n".join(blocks) + "\n"


def parse_peer_rtts(text: str) -> dict[str, RttReading]:
    """Each peer's ``RttReading`` from a node's Prometheus text (peers without samples absent)."""
    by_peer: dict[str, dict[str, float]] = {}
    for sample in parse_prometheus_samples(text):
        if not sample.name.startswith("bitcell_peer_rtt_"):
            continue
        labels = dict(sample.labels)
        if "peer" in labels:
            by_peer.setdefault(labels["peer"], {})[sample.name] = sample.value
    readings = {}
    for peer, v in by_peer.items():
        if all(spec.name in v for spec in _FAMILIES):
            readings[peer] = RttReading(
                ewma_s=v[RTT_SECONDS],
                last_s=v[RTT_LAST],
                min_s=v[RTT_MIN],
                samples=int(v[RTT_SAMPLES]),
                sum_s=v[RTT_SUM],
            )
    return readings
