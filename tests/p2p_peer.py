"""A scripted P2P peer for tests: the authenticated handshake over a plain blocking socket.

``handshake_as_dialer(sock, keypair, genesis_hash)`` and ``handshake_as_listener(...)`` run the
``Hello``/``HelloProof`` exchange of ``protocol.p2p`` with the given P2P key and return the
other side's Hello; ``FrameReader`` reads whole frames. A test holding a node's P2P key (from
``LocalNet.p2p_keys``) can so play that node; with any other key it plays an outsider.
``pair_with_x`` starts nodes a and b peered together, x being a node that never runs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bitcell_sim.node.harness import HOST, LocalNet, wait_for
from bitcell_sim.node.peers import Framer
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.p2p import (
    Hello,
    HelloProof,
    Message,
    Role,
    decode_message,
    encode_frame,
    prove,
    read_message,
    verify_proof,
)


class FrameReader:
    """Whole frames from a blocking socket (``next()`` waits up to the socket's timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.framer = Framer()
        self._ready: list[bytes] = []

    def next_payload(self) -> bytes:
        while not self._ready:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the node")
            self._ready.extend(self.framer.feed(data))
        return self._ready.pop(0)

    def next(self) -> Message:
        return decode_message(self.next_payload())


def handshake_as_dialer(
    sock: socket.socket, keypair: KeyPair, genesis_hash: bytes, reader: FrameReader | None = None
) -> Hello:
    """We dialled: send our Hello, check the listener's Hello and proof, send our proof."""
    reader = reader or FrameReader(sock)
    ours = Hello.fresh(keypair.public_key, genesis_hash)
    sock.sendall(encode_frame(ours))
    theirs = reader.next()
    assert isinstance(theirs, Hello), theirs
    proof = reader.next()
    assert isinstance(proof, HelloProof) and verify_proof(proof, Role.LISTENER, ours, theirs)
    sock.sendall(encode_frame(prove(keypair, Role.DIALER, ours, theirs)))
    return theirs


def handshake_as_listener(
    sock: socket.socket, keypair: KeyPair, genesis_hash: bytes, reader: FrameReader | None = None
) -> Hello:
    """We accepted: read the dialer's Hello, answer with ours and our proof, check its proof."""
    reader = reader or FrameReader(sock)
    theirs = reader.next()
    assert isinstance(theirs, Hello), theirs
    ours = Hello.fresh(keypair.public_key, genesis_hash)
    sock.sendall(encode_frame(ours) + encode_frame(prove(keypair, Role.LISTENER, theirs, ours)))
    proof = reader.next()
    assert isinstance(proof, HelloProof) and verify_proof(proof, Role.DIALER, theirs, ours)
    return theirs


async def async_handshake_as_listener(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    keypair: KeyPair,
    genesis_hash: bytes,
) -> Hello:
    """``handshake_as_listener`` over asyncio streams."""
    theirs = await read_message(reader)
    assert isinstance(theirs, Hello), theirs
    ours = Hello.fresh(keypair.public_key, genesis_hash)
    writer.write(encode_frame(ours) + encode_frame(prove(keypair, Role.LISTENER, theirs, ours)))
    proof = await read_message(reader)
    assert isinstance(proof, HelloProof) and verify_proof(proof, Role.DIALER, theirs, ours)
    return theirs


def peer_count(net: LocalNet, node: str = "a") -> int:
    url = net.nodes[node].rpc_url
    return int(httpx.get(f"{url}/health", trust_env=False, timeout=5).json()["peer_count"])


@contextmanager
def pair_with_x(root: Path, name: str) -> Iterator[LocalNet]:
    """Validators a and b peered with each other; x is in the topology but never runs, so a
    test can hold its P2P key (``net.p2p_keys["x"]``) and speak as an authenticated peer."""
    roles = {"a": "validator", "b": "validator", "x": "full"}
    with LocalNet(root, roles, name=name, phase_s=0.4) as net:
        for node, other in (("a", "b"), ("b", "a")):
            net.write_config(node, {other: f"{HOST}:{net.ports[other][1]}"})
        net.start("a", "b")
        wait_for(lambda: peer_count(net, "a") == peer_count(net, "b") == 1, what="a-b peering")
        yield net
