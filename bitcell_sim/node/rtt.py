"""Round-trip time to each peer, as the node itself measures it with Ping and Pong.

``RttTracker`` keeps one peer's samples: the last, an exponentially weighted mean (``ewma_s``),
the minimum over the last ``window`` samples, and a count and sum. ``render_peer_rtts`` writes
them as the labelled ``protocol.metrics.PEER_RTT_METRICS`` appended to ``GET /metrics``
(``devnet.rtt.parse_peer_rtts`` reads them back).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from bitcell_sim.protocol.metrics import PEER_RTT_METRICS, render_metric

#: Weight of a new sample in the smoothed RTT. Higher than TCP's 1/8 so that a step (an added
#: latency) shows within ~8 samples, i.e. ~8 s at one Ping per second.
RTT_EWMA_ALPHA = 0.25
#: Samples the minimum is taken over (~16 s at one Ping per second; the HELP text says 16).
RTT_WINDOW = 16


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


def render_peer_rtts(trackers: Mapping[str, RttTracker]) -> str:
    """The ``PEER_RTT_METRICS`` families (HELP, TYPE, one sample per peer with a sample yet),
    blank-line separated and newline-terminated like the rest of the node's text."""
    values: list[dict[tuple[str, ...], float]] = [{}, {}, {}, {}, {}]
    for peer, t in trackers.items():
        if t.ewma_s is None or t.last_s is None or t.min_s is None:
            continue  # no sample yet: absent rather than a made-up value
        row = (t.ewma_s, t.last_s, t.min_s, t.samples, t.sum_s)
        for family, value in zip(values, row, strict=True):
            family[(peer,)] = value
    blocks = [render_metric(spec, v) for spec, v in zip(PEER_RTT_METRICS, values, strict=True)]
    return "\n\n".join(blocks) + "\n"
