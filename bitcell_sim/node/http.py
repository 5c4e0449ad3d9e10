"""The node's HTTP/1.1 server (RPC and metrics ports), with what a client can cost bounded.

``HttpServer(name, routes, limits)`` serves ``Route``s over asyncio protocols: keep-alive,
pipelining, HEAD, 100-continue, ``Content-Length`` or chunked bodies under one limit (413).
``HttpLimits`` caps connections (503), headers (431), the time to send headers and body (408) and
idle keep-alive; malformed requests get 400 and one WARNING per client address per minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from bitcell_sim.node.ratelimit import OncePer

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
#: Seconds for a client to send a request's headers (from its first byte, or from the
#: connection's opening for the first request) and then its body.
HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 10.0
#: Seconds a kept-alive connection may wait for its next request.
IDLE_TIMEOUT_S = 120.0
SWEEP_INTERVAL_S = 0.5
#: After an error answer, what the client still sends is read and dropped this long.
LINGER_S = 2.0
WARN_INTERVAL_S = 60.0
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class HttpLimits:
    """What one server accepts (see the module docstring)."""

    max_connections: int = 1024
    max_body_bytes: int = 2 * 1024 * 1024
    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    #: The body of a 413 (axum's words for the JSON-RPC port).
    too_large_text: str = "Failed to buffer the request body: length limit exceeded"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Sequence[tuple[str, str]] = ()

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """``handler`` answers ``method`` on ``path``; ``precheck`` (optional) may refuse a request
    on its headers alone, before the body is read."""

    method: str
    path: str
    handler: Handler
    precheck: Callable[[Mapping[str, str]], Response | None] | None = None


class BadRequest(Exception):
    """A request that breaks HTTP/1.1: answered ``status`` and the connection closed."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def render(response: Response, *, close: bool, head: bool = False) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.content_type is not None:
        lines.append(f"content-type: {response.content_type}")
    lines.append(f"content-length: {len(response.body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if close:
        lines.append("connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head else head_bytes + response.body


@dataclass
class _Head:
    method: str
    path: str
    keep_alive: bool
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    chunked: bool = False


def parse_head(raw: bytes) -> _Head:
    """Request line and header fields (without the final blank line); ``BadRequest`` if
    they are not HTTP/1.x."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest("undecodable header") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0].encode()) <= _TOKEN:
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"unsupported version {version[:20]!r}")
    if target.startswith(("http://", "https://")):
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    if not target.startswith("/"):
        raise BadRequest(f"bad request target {target[:80]!r}")
    headers: dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(f"more than {MAX_HEADERS} header fields", 431)
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name.encode()) <= _TOKEN:
            raise BadRequest(f"bad header line {line[:80]!r}")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    head = _Head(method, target.split("?", 1)[0], keep_alive, headers)
    encoding = headers.get("transfer-encoding")
    if encoding is not None:
        if encoding.lower() != "chunked":
            raise BadRequest(f"unsupported transfer-encoding {encoding[:40]!r}")
        if "content-length" in headers:
            raise BadRequest("both transfer-encoding and content-length")
        head.chunked = True
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or len(length) > 18:
            raise BadRequest(f"bad content-length {length[:40]!r}")
        head.length = int(length)
    return head


class _Chunked:
    """Incremental decoder of a chunked body, refusing more than ``limit`` bytes of data."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.body = bytearray()
        self.size: int | None = None  # data bytes still expected in the current chunk
        self.trailers = False
        self.done = False

    def feed(self, buf: bytearray) -> int:
        """Consume what it can of ``buf``; return the bytes consumed."""
        pos = 0
        while not self.done:
            if self.trailers:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    return pos
                if end == pos:
                    self.done = True
                pos = end + 2
                continue
            if self.size is None:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if len(buf) - pos > 1024:
                        raise BadRequest("chunk size line too long")
                    return pos
                text = bytes(buf[pos:end]).split(b";", 1)[0].strip()
                if (
                    not text
                    or len(text) > 16
                    or any(c not in b"0123456789abcdefABCDEF" for c in text)
                ):
                    raise BadRequest(f"bad chunk size {text[:20]!r}")
                size = int(text, 16)
                pos = end + 2
                if size == 0:
                    self.trailers = True
                    continue
                if len(self.body) + size > self.limit:
                    raise BadRequest("chunked body over the limit", 413)
                self.size = size
            need = self.size + 2
            if len(buf) - pos < need:
                return pos
            if buf[pos + self.size : pos + need] != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")
            self.body += buf[pos : pos + self.size]
            pos += need
            self.size = None
        return pos


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client = "?"
        self.buffer = bytearray()
        self.head: _Head | None = None
        self.chunked: _Chunked | None = None
        self.scanned = 0
        #: When the current stage must be over (idle, headers or body), monotonic seconds.
        self.deadline_s = 0.0
        self.stage = "idle"
        self.paused = False
        self.closing = False

    # ---- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        server = self.server
        if len(server.connections) >= server.limits.max_connections:
            server.refused += 1
            busy = Response.text(503, "too many connections")
            transport.write(render(busy, close=True))
            transport.close()
            return
        server.connections.add(self)
        # The first request has the header deadline from the start: a connection that sends
        # nothing is as slow as one that sends its headers byte by byte.
        self._set_stage("headers", server.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering after an error: what the client still sends is discarded
        if self.stage == "idle":
            self._set_stage("headers", self.server.limits.header_timeout_s)
        self.buffer += data
        self._process()

    # ---- parsing ------------------------------------------------------------------------
    def _set_stage(self, stage: str, timeout_s: float) -> None:
        self.stage = stage
        self.deadline_s = time.monotonic() + timeout_s

    def _process(self) -> None:
        try:
            while not self.closing and not self.paused and self._step():
                pass
        except BadRequest as exc:
            self._fail(exc)

    def _step(self) -> bool:
        """Advance by one stage; False when more bytes are needed."""
        limits = self.server.limits
        buf = self.buffer
        if self.head is None:
            while buf[:2] == b"\r\n":  # empty lines before a request are ignored
                del buf[:2]
            if not buf:
                return False
            end = buf.find(b"\r\n\r\n", max(0, self.scanned - 3))
            if end < 0:
                self.scanned = len(buf)
                if len(buf) > limits.max_header_bytes:
                    raise BadRequest("header section too large", 431)
                return False
            if end > limits.max_header_bytes:
                raise BadRequest("header section too large", 431)
            head = parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            self.scanned = 0
            early = self.server.precheck(head)
            if early is not None:
                # Refused on its headers alone (e.g. 415 before any body is read, as axum).
                self._write(render(early, close=True))
                self._close(linger=True)
                return False
            if head.length is not None and head.length > limits.max_body_bytes:
                raise BadRequest("body over the limit", 413)
            self.head = head
            if head.chunked:
                self.chunked = _Chunked(limits.max_body_bytes)
            expects_body = head.chunked or bool(head.length)
            if expects_body and head.headers.get("expect", "").lower() == "100-continue":
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._set_stage("body", limits.body_timeout_s)
            return True
        head = self.head
        if self.chunked is not None:
            consumed = self.chunked.feed(buf)
            del buf[:consumed]
            if not self.chunked.done:
                return False
            body = bytes(self.chunked.body)
        else:
            length = head.length or 0
            if len(buf) < length:
                return False
            body = bytes(buf[:length])
            del buf[:length]
        self.head, self.chunked = None, None
        self._dispatch(head, body)
        if buf:
            self._set_stage("headers", limits.header_timeout_s)
        else:
            self._set_stage("idle", limits.idle_timeout_s)
        return True

    def _dispatch(self, head: _Head, body: bytes) -> None:
        request = Request(head.method, head.path, head.headers, body, self.client)
        try:
            response = self.server.respond(request)
        except Exception:
            # A bug, not the client's doing: say so once, with the traceback.
            log.exception("%s: %s %s failed", self.server.name, head.method, head.path)
            response = Response.text(500, "Internal Server Error")
        close = not head.keep_alive
        self._write(render(response, close=close, head=head.method == "HEAD"))
        self.server.requests += 1
        if close:
            self._close()

    def _fail(self, exc: BadRequest) -> None:
        server = self.server
        server.malformed += 1
        if server.warnings.allow(self.client, time.monotonic()):
            suppressed = server.warnings.suppressed
            note = f" ({suppressed} more since not logged)" if suppressed else ""
            server.warnings.suppressed = 0
            log.warning(
                "%s: malformed HTTP request from %s: %s%s", server.name, self.client, exc, note
            )
        if exc.status == 413:
            response = Response.text(413, server.limits.too_large_text)
        else:
            response = Response.text(exc.status, HTTPStatus(exc.status).phrase)
        self._write(render(response, close=True))
        self._close(linger=True)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self, *, linger: bool = False) -> None:
        """Close; with ``linger``, first half-close and discard what the client still sends
        for ``LINGER_S``, so a client busy sending its body still reads our answer."""
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            transport.write_eof()
            self.stage, self.deadline_s = "linger", time.monotonic() + LINGER_S
            return
        transport.close()

    def expire(self, now_s: float) -> None:
        """Close the connection if its current stage is past its deadline."""
        if now_s <= self.deadline_s:
            return
        if self.stage == "linger":
            if self.transport is not None:
                self.transport.close()
            return
        if self.closing:
            return
        self.server.timed_out += 1
        if self.stage == "idle":
            log.debug("%s: closing idle connection from %s", self.server.name, self.client)
        elif self.server.warnings.allow(self.client, now_s):
            log.warning(
                "%s: connection from %s closed: request %s not received in time",
                self.server.name,
                self.client,
                self.stage,
            )
        if self.stage == "idle":
            self._close()
        else:
            self._write(render(Response.text(408, "Request Timeout"), close=True))
            self._close()


class HttpServer:
    """Serves ``routes`` (see the module docstring); ``start(host, port)``, ``close()``."""

    def __init__(self, name: str, routes: Sequence[Route], limits: HttpLimits) -> None:
        self.name = name
        self.limits = limits
        self._routes: dict[str, dict[str, Route]] = {}
        for route in routes:
            self._routes.setdefault(route.path, {})[route.method] = route
        self.connections: set[_Connection] = set()
        self.warnings = OncePer(WARN_INTERVAL_S)
        self.requests = 0
        self.refused = 0
        self.malformed = 0
        self.timed_out = 0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def _route(self, method: str, path: str) -> Route | Response:
        methods = self._routes.get(path)
        if methods is None:
            return Response(404)
        route = methods.get(method)
        if route is None and method == "HEAD":
            route = methods.get("GET")
        if route is None:
            return Response(405, headers=(("allow", ", ".join(sorted(methods))),))
        return route

    def precheck(self, head: _Head) -> Response | None:
        route = self._route(head.method, head.path)
        if isinstance(route, Response) or route.precheck is None:
            return None
        return route.precheck(head.headers)

    def respond(self, request: Request) -> Response:
        route = self._route(request.method, request.path)
        return route if isinstance(route, Response) else route.handler(request)

    def sweep(self, now_s: float) -> None:
        for connection in list(self.connections):
            connection.expire(now_s)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep(time.monotonic())

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        self._sweeper = loop.create_task(self._sweep_forever(), name=f"{self.name}-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
