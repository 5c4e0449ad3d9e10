"""The observable state of a running link: its counters and a snapshot of it.

``LinkCounters`` are the running totals the emulator keeps per link (bytes, chunks and
connections); ``LinkState`` is a snapshot of one link (address, configured and current
``LinkParams``, counters) as the control API returns it, with JSON conversion both ways.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.linksfile import check_keys, params_from_dict, params_to_dict
from bitcell_sim.topology.links import LinkParams


@dataclass
class LinkCounters:
    """Running totals of one link since the emulator started.

    "forward" is the direction from the connecting side to the target; "reverse" is the answer
    path on the same connections. Bytes and chunks count what has been delivered.
    """

    bytes_forward: int = 0
    bytes_reverse: int = 0
    chunks_forward: int = 0
    chunks_reverse: int = 0
    queued_bytes: int = 0  # accepted from a socket, not yet delivered (both directions)
    connections_total: int = 0  # accepted and forwarded to the target
    connections_active: int = 0
    connections_refused: int = 0  # accepted while partitioned and reset at once
    connections_dropped: int = 0  # open when a partition came, reset by it
    upstream_failures: int = 0  # the target could not be reached

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> LinkCounters:
        if not isinstance(data, dict):
            raise NetemError(f"counters: expected an object, got {type(data).__name__}")
        check_keys(data, {f.name for f in dataclasses.fields(cls)}, where="counters")
        return cls(**{key: int(value) for key, value in data.items()})


@dataclass(frozen=True)
class LinkState:
    """A snapshot of one link: where it listens and forwards, its parameters, its counters.

    ``configured`` is the ``LinkParams`` from the links file; ``current`` is what is in force now
    (faults applied). ``listen_port`` is the port actually bound.
    """

    name: str
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    configured: LinkParams
    current: LinkParams
    counters: LinkCounters

    @property
    def partitioned(self) -> bool:
        return self.current.partitioned

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen_host": self.listen_host,
            "listen_port": self.listen_port,
            "target_host": self.target_host,
            "target_port": self.target_port,
            "configured": params_to_dict(self.configured),
            "current": params_to_dict(self.current),
            "counters": self.counters.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> LinkState:
        if not isinstance(data, dict):
            raise NetemError(f"link state: expected an object, got {type(data).__name__}")
        try:
            return cls(
                name=str(data["name"]),
                listen_host=str(data["listen_host"]),
                listen_port=int(data["listen_port"]),
                target_host=str(data["target_host"]),
                target_port=int(data["target_port"]),
                configured=params_from_dict(data["configured"], "configured"),
                current=params_from_dict(data["current"], "current"),
                counters=LinkCounters.from_dict(data["counters"]),
            )
        except KeyError as exc:
            raise NetemError(f"link state: missing key {exc.args[0]!r}") from None
