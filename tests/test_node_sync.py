"""The P2P side of a real node, driven by a scripted peer speaking the wire protocol.

The scripted peer holds peer b's (public, derived) key: it answers node a's dial and dials
node a itself. It announces a far better tip, which must put node a in "syncing" (/health
503, sync progress below 100) and make it ask for blocks in batches of ``sync_batch``; it asks
node a for blocks and gets them back over node a's own outbound connection.
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
from bitcell_sim.node.harness import HOST, LocalNet
from bitcell_sim.node.peers import Framer
from bitcell_sim.protocol.block import genesis_block
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.p2p import (
    Blocks,
    GetBlocks,
    Handshake,
    Message,
    Ping,
    Pong,
    Status,
    decode_message,
    encode_frame,
)

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]

NETWORK = "synctest"
B_KEY = node_keypair(NETWORK, "b").public_key


def read_messages(sock: socket.socket, out: queue.Queue[Message]) -> None:
    framer = Framer()
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        for payload in framer.feed(data):
            message = decode_message(payload)
            if isinstance(message, Ping):
                sock.sendall(encode_frame(Pong()))
            out.put(message)


class ScriptedPeer:
    """Listens where node a dials "b"; records what node a sends on that connection."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: queue.Queue[Message] = queue.Queue()
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
            conn.sendall(encode_frame(Handshake(B_KEY)))
            threading.Thread(target=read_messages, args=(conn, self.received), daemon=True).start()

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
def peer() -> Iterator[ScriptedPeer]:
    scripted = ScriptedPeer()
    yield scripted
    scripted.close()


def test_far_better_peer_tip_means_syncing_and_batched_requests(
    tmp_path: Path, peer: ScriptedPeer
) -> None:
    roles = {"a": "validator", "b": "validator"}
    protocol = {"sync_batch": 7}
    with LocalNet(tmp_path, roles, name=NETWORK, protocol=protocol, peers={}) as net:
        net.write_config("a", {"b": f"{HOST}:{peer.port}"})
        net.start("a")
        node = net.nodes["a"]
        hello = peer.expect(Handshake)
        assert isinstance(hello, Handshake)
        assert hello.peer_id == node_keypair(NETWORK, "a").public_key
        status = peer.expect(Status)
        assert isinstance(status, Status)

        # dial node a as b and announce a tip 100 blocks ahead
        inbound = socket.create_connection((HOST, net.ports["a"][1]))
        try:
            inbound.sendall(encode_frame(Handshake(B_KEY)))
            inbound.sendall(encode_frame(Status(status.height + 100, b"\x07" * 32)))
            request = peer.expect(GetBlocks)
            assert isinstance(request, GetBlocks)
            assert request.max_count == 7 and request.from_height == status.height + 1

            health = httpx.get(f"{node.rpc_url}/health", trust_env=False)
            assert health.status_code == 503 and health.json()["status"] == "syncing"
            assert httpx.get(f"{node.metrics_url}/health", trust_env=False).status_code == 503
            values = parse_prometheus(httpx.get(f"{node.metrics_url}/metrics").text)
            assert values["bitcell_best_peer_height"] == status.height + 100
            assert values["bitcell_sync_progress"] < 100

            # node a serves blocks over its own connection to b
            inbound.sendall(encode_frame(GetBlocks(0, 3)))
            answer = peer.expect(Blocks)
            assert isinstance(answer, Blocks)
            funded = {funded_sender(NETWORK, i).public_key: 10**12 for i in range(8)}
            genesis = genesis_block(NETWORK, int(net.genesis_time_s), funded)
            assert 1 <= len(answer.blocks) <= 3
            assert answer.blocks[0].hash() == genesis.hash()

            # the peer takes its claim back: node a is healthy again
            inbound.sendall(encode_frame(Status(0, answer.blocks[0].hash())))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if httpx.get(f"{node.rpc_url}/health", trust_env=False).status_code == 200:
                    break
                time.sleep(0.05)
            assert httpx.get(f"{node.rpc_url}/health", trust_env=False).json()["status"] == "ok"
        finally:
            inbound.close()
