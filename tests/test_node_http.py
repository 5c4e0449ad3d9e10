"""The node's HTTP/1.1 server over real loopback sockets, in-process, with short limits.

Keep-alive and pipelining, HEAD, 404/405, Expect: 100-continue, one body limit for chunked and
Content-Length bodies, and every bound: slow headers, slow bodies and idle connections are
closed, connections beyond the cap get 503, malformed requests get 400 and one WARNING per
client address. (The real node process is checked with its real limits in test_node_rpc.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from bitcell_sim.node.http import HttpLimits, HttpServer, Request, Response, Route

LIMITS = HttpLimits(
    max_connections=3,
    max_body_bytes=100,
    header_timeout_s=0.3,
    body_timeout_s=0.3,
    idle_timeout_s=0.5,
    too_large_text="too large",
)


def echo(request: Request) -> Response:
    return Response(200, request.body, "application/octet-stream")


ROUTES = [
    Route("POST", "/echo", echo),
    Route("GET", "/hello", lambda _: Response.text(200, "hi")),
    Route(
        "POST",
        "/typed",
        echo,
        precheck=lambda h: None if h.get("content-type") == "x/y" else Response.text(415, "no"),
    ),
]


@asynccontextmanager
async def serving(limits: HttpLimits = LIMITS) -> AsyncIterator[tuple[HttpServer, int]]:
    server = HttpServer("test", ROUTES, limits)
    await server.start("127.0.0.1", 0)
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        await server.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


async def read_response(
    reader: asyncio.StreamReader, *, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    body = b"" if head else await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed(reader: asyncio.StreamReader, within_s: float) -> float:
    """Seconds until the server closes the connection (AssertionError after ``within_s``)."""
    start = time.monotonic()
    while True:
        data = await asyncio.wait_for(reader.read(65536), within_s)
        if not data:
            return time.monotonic() - start


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_keep_alive_pipelining_head_404_405() -> None:
    async def test() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post("/echo", b"one") + post("/echo", b"two"))
            assert (await read_response(reader))[2] == b"one"
            assert (await read_response(reader))[2] == b"two"
            writer.write(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await read_response(reader, head=True)
            assert status == 200 and headers["content-length"] == "2"
            writer.write(b"GET /nope HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 404
            writer.write(b"GET /echo HTTP/1.1\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 405 and headers["allow"] == "POST"
            writer.write(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, body, headers["connection"]) == (200, b"hi", "close")
            assert await closed(reader, 2) < 1
            writer.close()

    run(test)


def test_one_body_limit_for_content_length_and_chunked() -> None:
    async def chunked(port: int, body: bytes, size: int = 7) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        chunks = b"".join(
            f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
            for i in range(0, len(body), size)
        )
        head = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + chunks + b"0\r\n\r\n")
        status, _, answer = await read_response(reader)
        writer.close()
        return status, answer

    async def plain(port: int, body: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post("/echo", body))
        status, _, answer = await read_response(reader)
        writer.close()
        return status, answer

    async def test() -> None:
        async with serving() as (_, port):
            exact, over = b"x" * 100, b"x" * 101
            assert await chunked(port, exact) == (200, exact)
            assert await plain(port, exact) == (200, exact)
            assert await chunked(port, over) == (413, b"too large")
            assert await plain(port, over) == (413, b"too large")

    run(test)


def test_precheck_refuses_before_the_body_and_expect_continue() -> None:
    async def test() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /typed HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
            assert (await read_response(reader))[0] == 415  # before the 413 of the size
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            expect = "Content-Type: x/y\r\nExpect: 100-continue\r\n"
            writer.write(f"POST /typed HTTP/1.1\r\nContent-Length: 2\r\n{expect}\r\n".encode())
            assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert await reader.readline() == b"\r\n"
            writer.write(b"ok")
            assert (await read_response(reader))[2] == b"ok"
            writer.close()

    run(test)


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # nothing at all
        b"POST /echo HTTP/1.1\r\nHost: x\r\n",  # headers never finished
        b"POST /echo HTTP/1.1\r\nContent-Length: 50\r\n\r\nonly part",  # body never finished
    ],
    ids=["silent", "slow-header", "slow-body"],
)
def test_slow_requests_are_closed(partial: bytes) -> None:
    async def test() -> None:
        async with serving() as (server, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(partial)
            assert await closed(reader, 3) < 1.5
            assert server.timed_out == 1 and not server.connections
            writer.close()

    run(test)


def test_an_idle_kept_alive_connection_is_closed() -> None:
    async def test() -> None:
        async with serving() as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            waited_s = await closed(reader, 3)
            assert 0.4 < waited_s < 1.5
            writer.close()

    run(test)


def test_connections_beyond_the_cap_get_503() -> None:
    async def test() -> None:
        async with serving() as (server, port):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status, headers, _ = await read_response(reader)
            assert status == 503 and headers["connection"] == "close"
            assert server.refused == 1
            writer.close()
            for _, held_writer in held:
                held_writer.close()
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            writer.close()

    run(test)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # a TLS hello
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nbad header\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_requests_get_4xx_and_one_warning(
    garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        async with serving() as (server, port):
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(garbage)
                status, headers, _ = await read_response(reader)
                assert status in (400, 431) and headers["connection"] == "close"
                writer.close()
            assert server.malformed == 3

    with caplog.at_level(logging.DEBUG, logger="bitcell_sim.node.http"):
        run(test)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "malformed HTTP request from 127.0.0.1" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
