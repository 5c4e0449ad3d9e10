"""The link emulator: every link of a links file served from one asyncio loop, faults applied live.

``Emulator`` binds all listeners first (``bind``), serves them (``start``/``stop``), and changes
links by name: ``partition``/``heal``, ``set_extra_latency``/``add_extra_latency``,
``set_bandwidth`` and ``reset`` (back to the links file). Every change validates all names before
touching any link, and returns the new ``LinkState`` of the links it changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from types import TracebackType

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.link import Link
from bitcell_sim.netem.linksfile import check_unique
from bitcell_sim.netem.params import LinkSpec
from bitcell_sim.netem.state import LinkState
from bitcell_sim.topology.links import LinkParams

log = logging.getLogger(__name__)

# Per connection direction: about 4 MiB in flight covers 100 Mbit/s at 320 ms one-way, like a
# large TCP window; beyond it the emulator stops reading the sender (back-pressure).
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024

LinkNames = Iterable[str] | None


class UnknownLinkError(NetemError):
    """A link name that the emulator does not serve."""


class Emulator:
    """Serves a set of ``LinkSpec`` and applies faults to them by link name."""

    def __init__(
        self, specs: Sequence[LinkSpec], *, max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    ) -> None:
        check_unique(specs)
        self._links: dict[str, Link] = {
            spec.name: Link(spec, max_queued_bytes=max_queued_bytes) for spec in specs
        }
        self._serving = False

    @property
    def link_names(self) -> list[str]:
        return list(self._links)

    def listen_ports(self) -> dict[str, int]:
        """The port each link listens on (known once bound)."""
        return {name: link.listen_port for name, link in self._links.items()}

    def bind(self) -> None:
        """Bind every listener; on any failure close those already bound, then raise."""
        try:
            for link in self._links.values():
                link.bind()
        except NetemError:
            for link in self._links.values():
                link.close_unserved()
            raise

    async def start(self) -> None:
        """Bind (if not done yet) and serve every link."""
        self.bind()
        for link in self._links.values():
            await link.serve()
        self._serving = True
        log.info("serving %d link(s)", len(self._links))

    async def stop(self) -> None:
        """Stop listening and close every connection of every link."""
        for link in self._links.values():
            await link.close()
        self._serving = False

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _resolve(self, names: LinkNames) -> list[Link]:
        if names is None:
            return list(self._links.values())
        if isinstance(names, str):
            raise NetemError(f"links={names!r} must be a list of link names, not a string")
        wanted = list(dict.fromkeys(names))
        if not wanted:
            raise NetemError("links=[] names no link; pass None (or 'all') for every link")
        unknown = [name for name in wanted if name not in self._links]
        if unknown:
            known = ", ".join(sorted(self._links)) or "none"
            raise UnknownLinkError(
                f"unknown link(s) {', '.join(map(repr, unknown))}; known links: {known}"
            )
        return [self._links[name] for name in wanted]

    def state(self, names: LinkNames = None) -> list[LinkState]:
        """Snapshots of the named links (all when ``names`` is None)."""
        return [link.state() for link in self._resolve(names)]

    def _apply(
        self, links: Sequence[Link], changes: Sequence[LinkParams], what: str
    ) -> list[LinkState]:
        # Every new LinkParams was built (and so validated) before the first link changes.
        for link, params in zip(links, changes, strict=True):
            link.apply(params)
            log.info("link %s: %s", link.name, what)
        return [link.state() for link in links]

    def partition(self, names: LinkNames) -> list[LinkState]:
        """Cut links: open connections are reset, new ones are accepted and reset at once."""
        links = self._resolve(names)
        return self._apply(
            links,
            [link.params.replace(partitioned=True) for link in links],
            "partitioned",
        )

    def heal(self, names: LinkNames = None) -> list[LinkState]:
        """Undo a partition (other faults stay)."""
        links = self._resolve(names)
        return self._apply(
            links,
            [link.params.replace(partitioned=False) for link in links],
            "healed",
        )

    def set_extra_latency(self, names: LinkNames, extra_latency_s: float) -> list[LinkState]:
        """Set the injected one-way latency (0 removes it); applies to bytes read from now on."""
        links = self._resolve(names)
        changes = [link.params.replace(extra_latency_s=extra_latency_s) for link in links]
        return self._apply(links, changes, f"extra latency {extra_latency_s} s")

    def add_extra_latency(self, names: LinkNames, delta_s: float) -> list[LinkState]:
        """Add ``delta_s`` (may be negative) to the injected latency; the result must be >= 0."""
        if isinstance(delta_s, bool) or not isinstance(delta_s, int | float):
            raise NetemError(f"delta_s={delta_s!r} must be a number of seconds")
        if not math.isfinite(delta_s):
            raise NetemError(f"delta_s={delta_s!r} must be finite")
        links = self._resolve(names)
        changes = []
        for link in links:
            total_s = link.params.extra_latency_s + delta_s
            if total_s < 0:
                raise NetemError(
                    f"link {link.name!r}: adding delta_s={delta_s!r} to extra_latency_s="
                    f"{link.params.extra_latency_s!r} would make it negative"
                )
            changes.append(link.params.replace(extra_latency_s=total_s))
        return self._apply(links, changes, f"extra latency {delta_s:+} s")

    def set_bandwidth(self, names: LinkNames, bandwidth_bps: float | None) -> list[LinkState]:
        """Set the bandwidth in bits/s (None or 0: unlimited); applies to bytes read from now on."""
        links = self._resolve(names)
        changes = [link.params.replace(bandwidth_bps=bandwidth_bps) for link in links]
        return self._apply(links, changes, f"bandwidth {bandwidth_bps} bit/s")

    def reset(self, names: LinkNames = None) -> list[LinkState]:
        """Put the links file's parameters back in force: heals and removes every fault."""
        links = self._resolve(names)
        return self._apply(links, [link.spec.params for link in links], "reset")
