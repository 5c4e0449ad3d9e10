"""The parameters of one directed link: the one type the model and the link emulator apply.

:class:`LinkParams` holds a link's shaping (one-way latency, jitter and its law, bandwidth) and its
live faults (extra latency, partition); :func:`link_params` gives the topology's parameters of the
link ``source -> target``. The link emulator builds the same type from its links file and control
API, which is why a bad value raises :class:`~bitcell_sim.errors.NetemError` (the emulator refuses
such a link); a validated topology always gives good ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from bitcell_sim.errors import NetemError
from bitcell_sim.topology.jitter import JITTER_DISTRIBUTIONS, JitterDistribution
from bitcell_sim.topology.schema import Topology


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NetemError(f"{name}={value!r} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise NetemError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


@dataclass(frozen=True)
class LinkParams:
    """Shaping and faults of one directed link.

    ``latency_s`` is the one-way propagation delay (RTT/2 of the two regions). ``jitter_s`` is
    the scale of a random delay drawn per message (model) or per chunk (emulator) from the law
    ``jitter_distribution`` names (see :mod:`bitcell_sim.topology.jitter`):

    - ``"none"``: no jitter (``jitter_s`` must then be 0);
    - ``"normal"``: a draw from Normal(0, ``jitter_s``), so ``jitter_s`` is the standard deviation;
    - ``"uniform"``: a draw from Uniform(-``jitter_s``, +``jitter_s``);
    - ``"pareto"``: a non-negative, heavy-tailed draw: ``2 * jitter_s * X`` with X ~ Lomax
      (Pareto II) of shape 3, so the mean added delay is ``jitter_s``.

    The delay is ``max(0, latency_s + extra_latency_s + jitter)``: never negative.
    ``bandwidth_bps`` is in bits per second; None or 0 means unlimited (stored as None).
    ``extra_latency_s`` and ``partitioned`` are faults (added latency, a cut).
    """

    latency_s: float = 0.0
    jitter_s: float = 0.0
    jitter_distribution: JitterDistribution = "none"
    bandwidth_bps: float | None = None
    extra_latency_s: float = 0.0
    partitioned: bool = False

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ so equal links compare equal.
        object.__setattr__(self, "latency_s", _check_seconds("latency_s", self.latency_s))
        object.__setattr__(self, "jitter_s", _check_seconds("jitter_s", self.jitter_s))
        object.__setattr__(
            self, "extra_latency_s", _check_seconds("extra_latency_s", self.extra_latency_s)
        )
        if self.jitter_distribution not in JITTER_DISTRIBUTIONS:
            raise NetemError(
                f"jitter_distribution={self.jitter_distribution!r} must be one of "
                f"{', '.join(JITTER_DISTRIBUTIONS)}"
            )
        if self.jitter_distribution == "none" and self.jitter_s != 0:
            raise NetemError(
                f"jitter_s={self.jitter_s!r} needs a jitter_distribution other than 'none'"
            )
        bandwidth = self.bandwidth_bps
        if bandwidth is not None:
            if isinstance(bandwidth, bool) or not isinstance(bandwidth, int | float):
                raise NetemError(f"bandwidth_bps={bandwidth!r} must be a number of bits/s or null")
            if not math.isfinite(bandwidth) or bandwidth < 0:
                raise NetemError(f"bandwidth_bps={bandwidth!r} must be a finite number >= 0")
            object.__setattr__(self, "bandwidth_bps", None if bandwidth == 0 else float(bandwidth))
        if not isinstance(self.partitioned, bool):
            raise NetemError(f"partitioned={self.partitioned!r} must be true or false")

    @property
    def base_delay_s(self) -> float:
        """One-way delay before jitter: propagation plus any injected extra latency."""
        return self.latency_s + self.extra_latency_s

    def replace(self, **changes: object) -> LinkParams:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def link_params(topology: Topology, source: str, target: str) -> LinkParams:
    """The topology's shaping of the directed link ``source -> target`` (no faults)."""
    jitter = topology.links.jitter
    scaled = jitter.distribution != "none" and jitter.scale_s > 0
    return LinkParams(
        latency_s=topology.one_way_latency_s(source, target),
        jitter_s=jitter.scale_s if scaled else 0.0,
        jitter_distribution=jitter.distribution if scaled else "none",
        bandwidth_bps=topology.links.bandwidth_bps,
    )
