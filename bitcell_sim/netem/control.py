"""The control API of a running emulator: HTTP JSON on loopback, behind a bearer token.

``build_app`` makes the aiohttp application over an ``Emulator`` (routes: GET /health,
GET /links, POST /links/{partition,heal,latency,bandwidth,reset}); ``ControlServer`` binds it to
127.0.0.1. Every request needs ``Authorization: Bearer <token>``; without it the answer is 401
and nothing changes. Errors are JSON ``{"error": message}`` (400 bad request, 404 unknown link).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.emulator import Emulator, LinkNames, UnknownLinkError
from bitcell_sim.netem.linksfile import check_keys
from bitcell_sim.netem.params import check_loopback
from bitcell_sim.netem.state import LinkState

log = logging.getLogger(__name__)

_EMULATOR_KEY = web.AppKey("emulator", Emulator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_token(token: str) -> str:
    """Return ``token`` if usable as a bearer token (non-empty, no whitespace)."""
    if not token or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise NetemError("the control token must be non-empty, without spaces or control chars")
    return token


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("control API: refused %s %s (bad token)", request.method, request.path)
            response = _error(401, "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="netem"'
            return response
        try:
            return await handler(request)
        except UnknownLinkError as exc:
            return _error(404, str(exc))
        except NetemError as exc:
            return _error(400, str(exc))

    return middleware


#: Control requests are a few hundred bytes; anything much larger is refused with 413.
MAX_BODY_BYTES = 1024 * 1024


async def _body(request: web.Request, allowed: set[str], required: set[str]) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise NetemError(f"request body over {MAX_BODY_BYTES} bytes") from None
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except UnicodeDecodeError as exc:
        raise NetemError(f"request body is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NetemError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise NetemError("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise NetemError(f"request body must be a JSON object, got {type(body).__name__}")
    check_keys(body, allowed, required)
    return body


def _names(body: dict[str, Any]) -> LinkNames:
    """``links`` is a list of link names or the string "all"."""
    links = body["links"]
    if links == "all":
        return None
    if not isinstance(links, list) or not all(isinstance(name, str) for name in links):
        raise NetemError(f'links={links!r} must be a list of link names or "all"')
    return links


def _number(body: dict[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise NetemError(f"{key}={value!r} must be a finite number")
    return float(value)


def _states(states: list[LinkState]) -> web.Response:
    return web.json_response({"links": [state.to_dict() for state in states]})


async def _health(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    states = emulator.state()
    return web.json_response(
        {
            "status": "ok",
            "links": len(states),
            "partitioned": [state.name for state in states if state.partitioned],
        }
    )


async def _links(request: web.Request) -> web.Response:
    return _states(request.app[_EMULATOR_KEY].state())


async def _partition(request: web.Request) -> web.Response:
    body = await _body(request, {"links"}, {"links"})
    return _states(request.app[_EMULATOR_KEY].partition(_names(body)))


async def _heal(request: web.Request) -> web.Response:
    body = await _body(request, {"links"}, {"links"})
    return _states(request.app[_EMULATOR_KEY].heal(_names(body)))


async def _reset(request: web.Request) -> web.Response:
    body = await _body(request, {"links"}, {"links"})
    return _states(request.app[_EMULATOR_KEY].reset(_names(body)))


async def _latency(request: web.Request) -> web.Response:
    body = await _body(request, {"links", "extra_latency_s", "add_latency_s"}, {"links"})
    emulator = request.app[_EMULATOR_KEY]
    if ("extra_latency_s" in body) == ("add_latency_s" in body):
        raise NetemError("give exactly one of extra_latency_s (set) or add_latency_s (add)")
    if "extra_latency_s" in body:
        return _states(emulator.set_extra_latency(_names(body), _number(body, "extra_latency_s")))
    return _states(emulator.add_extra_latency(_names(body), _number(body, "add_latency_s")))


async def _bandwidth(request: web.Request) -> web.Response:
    body = await _body(request, {"links", "bandwidth_bps"}, {"links", "bandwidth_bps"})
    bandwidth = None if body["bandwidth_bps"] is None else _number(body, "bandwidth_bps")
    return _states(request.app[_EMULATOR_KEY].set_bandwidth(_names(body), bandwidth))


def build_app(emulator: Emulator, token: str) -> web.Application:
    """The aiohttp application of the control API over ``emulator``."""
    app = web.Application(
        middlewares=[_auth_middleware(check_token(token))], client_max_size=MAX_BODY_BYTES
    )
    app[_EMULATOR_KEY] = emulator
    app.router.add_get("/health", _health)
    app.router.add_get("/links", _links)
    app.router.add_post("/links/partition", _partition)
    app.router.add_post("/links/heal", _heal)
    app.router.add_post("/links/latency", _latency)
    app.router.add_post("/links/bandwidth", _bandwidth)
    app.router.add_post("/links/reset", _reset)
    return app


class ControlServer:
    """Serves the control API of ``emulator`` on ``host:port`` (port 0: the OS chooses)."""

    def __init__(
        self, emulator: Emulator, token: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = check_loopback(host, "control host")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise NetemError(f"control port={port!r} must be an integer in 0..65535")
        self.port = port
        self._app = build_app(emulator, token)
        self._sock: socket.socket | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> None:
        """Bind the API's socket; raise NetemError naming the port if that fails."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise NetemError(
                f"control API: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._sock = sock
        self.port = sock.getsockname()[1]

    def close_unserved(self) -> None:
        """Release a socket bound by ``bind`` that is not being served yet."""
        if self._runner is None and self._sock is not None:
            self._sock.close()
            self._sock = None

    async def start(self) -> None:
        self.bind()
        assert self._sock is not None
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.close_unserved()
