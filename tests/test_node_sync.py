"""The P2P side of a real node, driven by a scripted peer speaking the wire protocol.

The scripted peer holds peer b's P2P key: it answers node a's dial and dials node a itself,
both with the authenticated handshake. It claims a far better tip, which puts node a in
"syncing" (/health 503, sync progress below 100) and makes it ask for blocks in batches of
``sync_batch``; since b never serves them, the claim stays a hint: after one request timeout
node a is healthy again and keeps producing, however often b repeats it. A request b sends is
answered on the connection it came from.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bitcell_sim.loopback import free_port
from bitcell_sim.node.harness import HOST, LocalNet, wait_for
from bitcell_sim.protocol.block import genesis_block
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.p2p import (
    Blocks,
    GetBlocks,
    Message,
    Ping,
    Pong,
    Status,
    encode_frame,
)
from tests.p2p_peer import FrameReader, handshake_as_dialer, handshake_as_listener

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]

NETWORK = "synctest"


def read_messages(sock: socket.socket, reader: FrameReader, out: queue.Queue[Message]) -> None:
    while True:
        try:
            message = reader.next()
        except (OSError, ConnectionError):
            return
        if isinstance(message, Ping):
            sock.sendall(encode_frame(Pong()))
        out.put(message)


class ScriptedPeer:
    """Listens where node a dials "b", with b's P2P key; records what node a sends."""

    def __init__(self, keypair: KeyPair, genesis_hash: bytes, port: int | None = None) -> None:
        self.keypair = keypair
        self.genesis_hash = genesis_hash
        self.port = port or free_port()
        self.received: queue.Queue[Message] = queue.Queue()
        self.connection: socket.socket | None = None
        self._server = socket.create_server((HOST, self.port))
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(conn)
            reader = FrameReader(conn)
            try:
                handshake_as_listener(conn, self.keypair, self.genesis_hash, reader)
            except (OSError, ConnectionError, AssertionError):
                continue
            self.connection = conn
            args = (conn, reader, self.received)
            threading.Thread(target=read_messages, args=args, daemon=True).start()

    def expect(self, kind: type, timeout_s: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                message = self.received.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(message, kind):
                return message
        raise AssertionError(f"node a sent no {kind.__name__}")

    def close(self) -> None:
        for s in self._sockets:
            s.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[LocalNet]:
    roles = {"a": "validator", "b": "validator"}
    protocol = {"sync_batch": 7}
    with LocalNet(tmp_path, roles, name=NETWORK, protocol=protocol, peers={}) as net:
        yield net


def health(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health", trust_env=False, timeout=5)


def test_far_better_claim_is_a_hint_until_served(net: LocalNet) -> None:
    peer = ScriptedPeer(net.p2p_keys["b"], net.genesis_hash)
    try:
        net.write_config("a", {"b": f"{HOST}:{peer.port}"})
        net.start("a")
        node = net.nodes["a"]
        status = peer.expect(Status)
        assert isinstance(status, Status)

        # b claims a tip 100 blocks ahead, on a's own connection to it (as an answer)
        assert peer.connection is not None
        claim = encode_frame(Status(status.height + 100, b"\x07" * 32))
        peer.connection.sendall(claim)
        request = peer.expect(GetBlocks)
        assert isinstance(request, GetBlocks)
        assert request.max_count == 7 and request.from_height == status.height + 1
        response = health(node.rpc_url)
        assert response.status_code == 503 and response.json()["status"] == "syncing"
        assert health(node.metrics_url).status_code == 503
        values = parse_prometheus(httpx.get(f"{node.metrics_url}/metrics").text)
        assert values["bitcell_best_peer_height"] == status.height + 100
        assert values["bitcell_sync_progress"] < 100

        # b never serves those blocks: after one request timeout the claim no longer counts,
        # even though b keeps repeating it, and a goes on producing
        wait_for(lambda: health(node.rpc_url).status_code == 200, 15, "healthy again")
        height = health(node.rpc_url).json()["chain_height"]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peer.connection.sendall(claim)
            assert health(node.rpc_url).status_code == 200
            time.sleep(0.2)
        assert health(node.rpc_url).json()["chain_height"] > height
    finally:
        peer.close()


def test_a_request_is_answered_on_the_connection_it_came_from(net: LocalNet) -> None:
    peer = ScriptedPeer(net.p2p_keys["b"], net.genesis_hash)
    try:
        net.write_config("a", {"b": f"{HOST}:{peer.port}"})
        net.start("a")
        peer.expect(Status)
        inbound = socket.create_connection((HOST, net.ports["a"][1]), timeout=10)
        try:
            reader = FrameReader(inbound)
            handshake_as_dialer(inbound, net.p2p_keys["b"], net.genesis_hash, reader)
            inbound.sendall(encode_frame(GetBlocks(0, 3)))
            answer = reader.next()
            while not isinstance(answer, Blocks):  # a's tip comes first
                answer = reader.next()
            funded = {funded_sender(NETWORK, i).public_key: 10**12 for i in range(8)}
            genesis = genesis_block(NETWORK, int(net.genesis_time_s), funded)
            assert 1 <= len(answer.blocks) <= 3
            assert answer.blocks[0].hash() == genesis.hash()
            # nothing of it went to b's other connection (the one a dialled)
            time.sleep(0.5)
            while not peer.received.empty():
                assert not isinstance(peer.received.get_nowait(), Blocks)
        finally:
            inbound.close()
    finally:
        peer.close()
