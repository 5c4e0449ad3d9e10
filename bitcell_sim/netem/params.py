"""What one emulated link is: its shaping parameters and where it listens and forwards.

``LinkParams`` holds a directed link's shaping (one-way latency, jitter, bandwidth) and its live
faults (extra latency, partition); ``LinkSpec`` names the link and binds it to a loopback listen
port and a target. Both are frozen and validated on construction; ``check_loopback`` enforces
that the emulator never listens on nor sends to anything outside 127.0.0.0/8.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass
from typing import Literal, get_args

from bitcell_sim.errors import NetemError

JitterDistribution = Literal["none", "normal", "uniform", "pareto"]
JITTER_DISTRIBUTIONS: tuple[str, ...] = get_args(JitterDistribution)

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_MAX_NAME_CHARS = 200


def check_loopback(host: str, what: str) -> str:
    """Return ``host`` if it is a literal IPv4 address in 127.0.0.0/8, else raise NetemError.

    Names such as ``localhost`` are refused too: they may resolve to ::1 or, worse, elsewhere.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NetemError(
            f"{what}={host!r} is not an IPv4 address; the emulator only uses loopback "
            f"addresses in 127.0.0.0/8 (e.g. 127.0.0.1)"
        ) from None
    if address.version != 4 or address not in _LOOPBACK:
        raise NetemError(f"{what}={host!r} is outside 127.0.0.0/8; the emulator is loopback-only")
    return host


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NetemError(f"{name}={value!r} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise NetemError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def _check_port(name: str, value: object, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise NetemError(f"{name}={value!r} must be an integer port in {low}..65535")
    return value


@dataclass(frozen=True)
class LinkParams:
    """Shaping and faults of one directed link.

    ``latency_s`` is the one-way propagation delay (the devnet passes RTT/2). ``jitter_s`` is the
    scale of a random per-chunk delay whose shape ``jitter_distribution`` names:

    - ``"none"``: no jitter (``jitter_s`` must then be 0);
    - ``"normal"``: a draw from Normal(0, ``jitter_s``), so ``jitter_s`` is the standard deviation;
    - ``"uniform"``: a draw from Uniform(-``jitter_s``, +``jitter_s``);
    - ``"pareto"``: a non-negative, heavy-tailed draw: ``2 * jitter_s * X`` with X ~ Lomax
      (Pareto II) of shape 3, so the mean added delay is ``jitter_s``.

    The delay of a chunk is ``max(0, latency_s + extra_latency_s + jitter)``: never negative.
    ``bandwidth_bps`` is in bits per second; None or 0 means unlimited (stored as None).
    ``extra_latency_s`` and ``partitioned`` are faults, normally set live through the control API.
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


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """One directed link: accept on ``listen_host:listen_port``, forward to the target.

    ``listen_port`` 0 lets the OS choose (the running emulator reports the port it got).
    ``seed`` seeds the link's numpy Generator, from which all its jitter is drawn.
    """

    name: str
    listen_port: int
    target_port: int
    params: LinkParams = LinkParams()
    seed: int = 0
    listen_host: str = "127.0.0.1"
    target_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME_CHARS:
            raise NetemError(f"link name={name!r} must be a non-empty string of at most 200 chars")
        if any(not ch.isprintable() or ch.isspace() for ch in name):
            raise NetemError(f"link name={name!r} must not contain spaces or control characters")
        _check_port(f"link {name!r}: listen_port", self.listen_port, allow_zero=True)
        _check_port(f"link {name!r}: target_port", self.target_port, allow_zero=False)
        check_loopback(self.listen_host, f"link {name!r}: listen_host")
        check_loopback(self.target_host, f"link {name!r}: target_host")
        if not isinstance(self.params, LinkParams):
            raise NetemError(f"link {name!r}: params={self.params!r} must be a LinkParams")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise NetemError(f"link {name!r}: seed={self.seed!r} must be an integer >= 0")
