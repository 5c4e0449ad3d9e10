"""Who may talk to a node's P2P port, and what a connection may cost.

In-process: ``Framer`` deadlines and ``P2PServer`` sweeps with short limits. Against a real
two-node network (a and b; x is a third node of the topology that never runs, so a test can
hold its key): a bare real-node Handshake, a key outside the topology and a stolen public key
without its secret are all refused, and a forged Status or GetBlocks from them changes
nothing; handshakes pending at once are capped, a silent handshake times out, 20 connections
announcing 9.9 MB frames cost nothing, and a second connection of one peer replaces the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bitcell_sim.node.harness import HOST, LocalNet
from bitcell_sim.node.peers import ConnectionLimits, Framer, P2PIdentity, P2PServer, Traffic
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.p2p import (
    MAX_HANDSHAKE_FRAME_BYTES,
    GetBlocks,
    Handshake,
    Hello,
    HelloProof,
    Message,
    Role,
    Status,
    encode_frame,
    prove,
    read_message,
)
from tests.p2p_peer import FrameReader, handshake_as_dialer, pair_with_x

NETWORK = "p2ptest"
LIMITS = ConnectionLimits(
    handshake_timeout_s=0.3, idle_timeout_s=0.5, max_pending=2, frame_grace_s=0.3
)


def test_a_partial_frame_has_a_deadline_by_its_length() -> None:
    framer = Framer()
    assert framer.feed(b"\x00\x00\x00\x05ab", now_s=10.0) == []
    assert framer.partial_since_s == 10.0 and framer.partial_length == 5
    limits = ConnectionLimits(frame_grace_s=1.0, frame_min_rate_bytes_s=5.0)
    assert not framer.overdue(11.9, limits) and framer.overdue(12.1, limits)  # 1 s + 5 B / 5 B/s
    assert framer.feed(b"cde\x00\x00", now_s=20.0) == [b"abcde"]
    assert framer.partial_since_s == 20.0 and framer.partial_length == 0  # a new partial header
    assert framer.feed(b"\x00\x00", now_s=21.0) == [b""]
    assert framer.partial_since_s is None and not framer.overdue(1e9, limits)


def test_the_limit_can_be_raised_between_two_frames_of_one_read() -> None:
    framer = Framer(MAX_HANDSHAKE_FRAME_BYTES)
    big = b"x" * 5000
    framer.push(encode_frame(Status(1, bytes(32))) + len(big).to_bytes(4, "big") + big)
    assert framer.next() is not None  # the handshake's last frame ...
    framer.max_frame_bytes = 10_000  # ... raises the limit before the next one is read
    assert framer.next() == big and framer.next() is None and framer.buffered_bytes == 0


def test_the_server_sweeps_slow_silent_and_excess_connections() -> None:
    async def run() -> tuple[list[bytes], Traffic]:
        key = KeyPair.from_seed("p2p-unit")
        traffic = Traffic()
        identity = P2PIdentity(key, b"\x01" * 32, {KeyPair.from_seed("other").public_key: "o"})
        server = P2PServer(identity, traffic, lambda *a: None, limits=LIMITS)
        await server.start(HOST, 0)
        assert server._server is not None
        port = server._server.sockets[0].getsockname()[1]
        streams = [await asyncio.open_connection(HOST, port) for _ in range(3)]
        results = []
        for reader, _ in streams:  # the third was over max_pending: closed at once
            results.append(await asyncio.wait_for(reader.read(100), 3))
        server.close()
        return results, traffic

    results, traffic = asyncio.run(run())
    assert results == [b"", b"", b""]  # two by the handshake deadline, one at accept
    assert traffic.handshakes_refused == 3


def test_authenticated_connections_are_swept_when_idle_or_slow() -> None:
    ours, theirs = KeyPair.from_seed("p2p-unit"), KeyPair.from_seed("other")
    genesis = b"\x01" * 32

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(HOST, port)
        hello = Hello.fresh(theirs.public_key, genesis)
        writer.write(encode_frame(hello))
        their_hello = await read_message(reader)
        assert isinstance(their_hello, Hello)
        assert isinstance(await read_message(reader), HelloProof)
        writer.write(encode_frame(prove(theirs, Role.DIALER, hello, their_hello)))
        return reader, writer

    async def closed_after_s(limits: ConnectionLimits, partial: bytes) -> float:
        identity = P2PIdentity(ours, genesis, {theirs.public_key: "o"})
        server = P2PServer(identity, Traffic(), lambda *a: None, limits=limits)
        await server.start(HOST, 0)
        assert server._server is not None
        reader, writer = await connect(server._server.sockets[0].getsockname()[1])
        await asyncio.sleep(0.05)
        assert len(server.by_key) == 1  # authenticated
        writer.write(partial)
        start = time.monotonic()
        try:
            assert await asyncio.wait_for(reader.read(100), 5) == b""
            return time.monotonic() - start
        finally:
            writer.close()
            server.close()

    idle_s = asyncio.run(closed_after_s(LIMITS, b""))
    assert 0.4 < idle_s < 1.5  # idle_timeout_s 0.5, plus up to one sweep
    patient = ConnectionLimits(idle_timeout_s=30, frame_grace_s=0.3)
    slow_s = asyncio.run(closed_after_s(patient, (1000).to_bytes(4, "big") + b"x" * 10))
    assert 0.25 < slow_s < 1.5  # 0.3 s of grace + 1000 B at 125 kB/s, not the idle timeout


def hello_frame(key: bytes, genesis: bytes) -> bytes:
    return encode_frame(Hello.fresh(key, genesis))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    with pair_with_x(tmp_path_factory.mktemp("p2p"), NETWORK) as net:
        yield net


def health(net: LocalNet, node: str = "a") -> httpx.Response:
    return httpx.get(f"{net.nodes[node].rpc_url}/health", trust_env=False, timeout=5)


def refused(net: LocalNet) -> float:
    text = httpx.get(f"{net.nodes['a'].metrics_url}/metrics", trust_env=False).text
    return parse_prometheus(text)["bitcell_p2p_handshakes_refused_total"]


def dial_a(net: LocalNet) -> socket.socket:
    return socket.create_connection((HOST, net.ports["a"][1]), timeout=5)


def is_closed(sock: socket.socket, within_s: float = 5.0) -> bool:
    """True if the node closes (or resets) the connection within ``within_s``."""
    deadline = time.monotonic() + within_s
    try:
        while (left_s := deadline - time.monotonic()) > 0:
            sock.settimeout(left_s)
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send, ignoring that the node may already have closed the connection."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


@pytest.mark.real
@pytest.mark.timeout(60)
def test_unproven_keys_are_refused_and_their_messages_change_nothing(net: LocalNet) -> None:
    b_key = net.p2p_keys["b"].public_key
    forged: list[Message] = [Status(10**9, b"\x07" * 32), GetBlocks(0, 100)]
    before = health(net).json()
    before_refused = refused(net)
    before_lines = net.nodes["a"].log_text().count("P2P connection from 127.0.0.1")
    attempts = {
        "bare handshake": encode_frame(Handshake(b_key)),
        "stranger": hello_frame(KeyPair.generate().public_key, net.genesis_hash),
        "stolen public key": hello_frame(b_key, net.genesis_hash),
        "other network": hello_frame(b_key, b"\x00" * 32),
    }
    for name, first in attempts.items():
        with dial_a(net) as sock:
            sock.sendall(first)
            if name == "stolen public key":
                # a answers with its Hello and proof; we cannot sign as b
                reader = FrameReader(sock)
                assert isinstance(reader.next(), Hello)
                assert isinstance(reader.next(), HelloProof)
                sock.sendall(encode_frame(HelloProof(b"\x01" * 64)))
            for message in forged:
                send_quietly(sock, encode_frame(message))
            assert is_closed(sock), name
    time.sleep(0.5)
    after = health(net)
    assert after.status_code == 200 and after.json()["status"] == "ok"
    assert after.json()["peer_count"] == before["peer_count"] == 1
    after_refused = refused(net)
    assert after_refused - before_refused == len(attempts)
    # what an outsider provokes is logged once per address per minute, never as an ERROR
    text = net.nodes["a"].log_text()
    assert text.count("P2P connection from 127.0.0.1") - before_lines <= 1
    assert " ERROR " not in text


@pytest.mark.real
@pytest.mark.timeout(60)
def test_what_a_connection_may_cost_is_bounded(net: LocalNet) -> None:
    pid = net.nodes["a"].pid

    def rss_mb() -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    before_mb = rss_mb()
    # 20 connections announcing 9.9 MB frames: dropped at the length, nothing buffered
    socks = [dial_a(net) for _ in range(20)]
    for sock in socks:
        send_quietly(sock, (9_900_000).to_bytes(4, "big") + b"\x00" * 60_000)
    assert all(is_closed(sock) for sock in socks)
    for sock in socks:
        sock.close()
    assert rss_mb() < before_mb + 20
    # a frame just over the handshake limit is refused too; one under it is read
    with dial_a(net) as sock:
        send_quietly(sock, (MAX_HANDSHAKE_FRAME_BYTES + 1).to_bytes(4, "big"))
        assert is_closed(sock)
    # silent connections: at most 64 wait for their handshake, each at most 3 s
    start = time.monotonic()
    silent = [dial_a(net) for _ in range(70)]
    closed_at_once = sum(is_closed(sock, 0.5) for sock in silent[64:])
    assert closed_at_once == 6
    assert all(is_closed(sock, 6) for sock in silent[:64])
    assert time.monotonic() - start < 8
    for sock in silent:
        sock.close()
    assert health(net).json()["peer_count"] == 1


@pytest.mark.real
@pytest.mark.timeout(60)
def test_one_connection_per_peer_the_newest_wins(net: LocalNet) -> None:
    x = net.p2p_keys["x"]
    first = dial_a(net)
    reader = FrameReader(first)
    handshake_as_dialer(first, x, net.genesis_hash, reader)
    assert isinstance(reader.next(), Status)  # a tells a new peer its tip at once
    second = dial_a(net)
    reader = FrameReader(second)
    handshake_as_dialer(second, x, net.genesis_hash, reader)
    assert is_closed(first)
    second.sendall(encode_frame(GetBlocks(0, 1)))
    assert isinstance(reader.next(), Status)
    # and an authenticated connection that goes silent is closed after 6 s
    start = time.monotonic()
    assert is_closed(second, 10)
    assert 5 < time.monotonic() - start < 9
    first.close()
    second.close()
