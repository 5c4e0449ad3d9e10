"""The Python client of the emulator's control API (synchronous, httpx).

``NetemClient(control_url, token)`` has one method per endpoint: ``health``, ``links``, ``link``,
``partition``, ``heal``, ``set_extra_latency``, ``add_extra_latency``, ``set_bandwidth`` and
``reset``. Changes return the new ``LinkState`` of the links changed. Any failure (refused token,
unknown link, unreachable emulator) raises NetemError carrying the server's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.state import LinkState


def _selector(names: Iterable[str] | None) -> list[str] | str:
    if names is None:
        return "all"
    if isinstance(names, str):
        raise NetemError(f"links={names!r} must be a list of link names, not a string")
    return list(names)


class NetemClient:
    """Talks to one emulator's control API at ``control_url`` with bearer ``token``."""

    def __init__(
        self,
        control_url: str,
        token: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.control_url = control_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.control_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
            trust_env=False,  # never route loopback control traffic through a proxy
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NetemClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise NetemError(
                f"netem control API at {self.control_url} unreachable ({method} {path}): {exc}"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise NetemError(
                f"netem {method} {path} failed with HTTP {response.status_code}: "
                f"{message or response.text.strip() or response.reason_phrase}"
            )
        return payload

    def _states(self, path: str, body: dict[str, Any]) -> list[LinkState]:
        payload = self._call("POST", path, body)
        return [LinkState.from_dict(item) for item in payload["links"]]

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "links": n, "partitioned": [names]}``."""
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def links(self) -> list[LinkState]:
        """The state of every link."""
        payload = self._call("GET", "/links")
        return [LinkState.from_dict(item) for item in payload["links"]]

    def link(self, name: str) -> LinkState:
        """The state of one link; NetemError if there is no such link."""
        states = self.links()
        for state in states:
            if state.name == name:
                return state
        known = ", ".join(sorted(state.name for state in states)) or "none"
        raise NetemError(f"unknown link {name!r}; known links: {known}")

    def partition(self, names: Iterable[str] | None) -> list[LinkState]:
        """Cut the named links (None: all)."""
        return self._states("/links/partition", {"links": _selector(names)})

    def heal(self, names: Iterable[str] | None = None) -> list[LinkState]:
        """Undo the partition of the named links (None: all)."""
        return self._states("/links/heal", {"links": _selector(names)})

    def set_extra_latency(
        self, names: Iterable[str] | None, extra_latency_s: float
    ) -> list[LinkState]:
        """Set the injected one-way latency of the named links (0 removes it)."""
        body = {"links": _selector(names), "extra_latency_s": extra_latency_s}
        return self._states("/links/latency", body)

    def add_extra_latency(self, names: Iterable[str] | None, delta_s: float) -> list[LinkState]:
        """Add ``delta_s`` seconds (may be negative) to the injected latency."""
        return self._states("/links/latency", {"links": _selector(names), "add_latency_s": delta_s})

    def set_bandwidth(
        self, names: Iterable[str] | None, bandwidth_bps: float | None
    ) -> list[LinkState]:
        """Set the bandwidth in bits/s (None or 0: unlimited)."""
        body = {"links": _selector(names), "bandwidth_bps": bandwidth_bps}
        return self._states("/links/bandwidth", body)

    def reset(self, names: Iterable[str] | None = None) -> list[LinkState]:
        """Put the links file's parameters back on the named links (None: all)."""
        return self._states("/links/reset", {"links": _selector(names)})
