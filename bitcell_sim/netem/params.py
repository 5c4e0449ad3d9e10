"""What one emulated link is: its shaping parameters and where it listens and forwards.

``LinkParams`` (the topology layer's one link type: latency, jitter, bandwidth, live faults) is
what the emulator applies; ``LinkSpec`` names a link and binds it to a loopback listen port and a
target. Both are frozen and validated on construction; ``check_loopback`` enforces that the
emulator never listens on nor sends to anything outside 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from bitcell_sim.errors import NetemError
from bitcell_sim.topology.links import LinkParams

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


def _check_port(name: str, value: object, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise NetemError(f"{name}={value!r} must be an integer port in {low}..65535")
    return value


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """One directed link: accept on ``listen_host:listen_port``, forward to the target.

    ``listen_port`` 0 lets the OS choose (the running emulator reports the port it got).
    ``seed`` seeds the link's numpy Generator, from which all its jitter is drawn.
    """

    name: str
    listen_port: int
    target_port: int
    params: LinkParams = field(default_factory=LinkParams)
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
