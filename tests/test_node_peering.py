"""How a real node keeps up with peers: it tells a peer that dials in its tip on that
connection, redials a peer that dials in, and resolves a fork below a sync batch by fetching only
the blocks below it.

A scripted peer holding peer b's P2P key stands in for b (see test_node_sync): it answers node
a's dial, and dials a itself, with the authenticated handshake; so every check is a message on the
wire, not a timing race.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bitcell_sim.node.harness import HOST, LocalNet
from bitcell_sim.protocol.block import Block, BlockHeader
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.p2p import Blocks, GetBlocks, Status, encode_frame
from tests.p2p_peer import FrameReader, handshake_as_dialer
from tests.test_node_sync import NETWORK, ScriptedPeer

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]


def dial_as_b(net: LocalNet) -> tuple[socket.socket, FrameReader]:
    inbound = socket.create_connection((HOST, net.ports["a"][1]), timeout=10)
    reader = FrameReader(inbound)
    handshake_as_dialer(inbound, net.p2p_keys["b"], net.genesis_hash, reader)
    return inbound, reader


def test_a_peer_that_dials_in_hears_the_tip_on_that_connection(tmp_path: Path) -> None:
    with LocalNet(tmp_path, {"a": "validator", "b": "validator"}, name=NETWORK, peers={}) as net:
        peer = ScriptedPeer(net.p2p_keys["b"], net.genesis_hash)
        try:
            net.write_config("a", {"b": f"{HOST}:{peer.port}"})
            net.start("a")
            first = peer.expect(Status)  # sent when a's connection to b came up
            assert isinstance(first, Status)
            inbound, reader = dial_as_b(net)
            try:
                # a restarted b learns a's tip within a round trip of dialling a
                answer = reader.next()
                assert isinstance(answer, Status)
                assert answer.height >= first.height
            finally:
                inbound.close()
        finally:
            peer.close()


def test_a_peer_that_dials_in_is_redialled_at_once(tmp_path: Path) -> None:
    # A back-off of 8 s between dials: without the redial, a would not dial b again for 8 s.
    protocol = {"peering": {"reconnect_min": "8 s", "reconnect_max": "8 s"}}
    with socket.socket() as placeholder:
        placeholder.bind((HOST, 0))  # reserve a port nobody listens on yet
        port = placeholder.getsockname()[1]
    with LocalNet(
        tmp_path, {"a": "validator", "b": "validator"}, name=NETWORK, protocol=protocol, peers={}
    ) as net:
        net.write_config("a", {"b": f"{HOST}:{port}"})
        net.start("a")  # a's first dial of b is refused: it backs off 8 s
        time.sleep(0.5)
        peer = ScriptedPeer(net.p2p_keys["b"], net.genesis_hash, port)
        try:
            started = time.monotonic()
            inbound, _ = dial_as_b(net)
            try:
                peer.expect(Status, timeout_s=3.0)  # a dialled b back and told it its tip
                assert time.monotonic() - started < 3.0
            finally:
                inbound.close()
        finally:
            peer.close()


def unconnected_block(height: int) -> Block:
    """A decodable block at ``height`` whose parent nobody has (a fork below it)."""
    proposer = KeyPair.from_seed("fork-test")
    header = BlockHeader(
        height=height,
        prev_hash=bytes([height % 256]) * 32,
        tx_root=b"\x00" * 32,
        state_root=b"\x00" * 32,
        timestamp=int(time.time()),
        proposer=proposer.public_key,
        vrf_output=b"\x00" * 32,
        vrf_proof=b"",
        work=0,
    )
    return Block(header, (), proposer.sign(header.hash()))


def test_a_fork_below_the_batch_fetches_only_the_blocks_below_it(tmp_path: Path) -> None:
    protocol = {"sync_batch": 50, "sync_step_back": 4}
    with LocalNet(
        tmp_path, {"a": "validator", "b": "validator"}, name=NETWORK, protocol=protocol, peers={}
    ) as net:
        peer = ScriptedPeer(net.p2p_keys["b"], net.genesis_hash)
        try:
            net.write_config("a", {"b": f"{HOST}:{peer.port}"})
            net.start("a")
            status = peer.expect(Status)
            while isinstance(status, Status) and status.height < 6:  # a few blocks above genesis
                status = peer.expect(Status, timeout_s=15.0)
            assert isinstance(status, Status)
            # b answers on a's own connection to it, as a real peer answers a's requests
            answers = peer.connection
            assert answers is not None
            target = status.height + 40
            answers.sendall(encode_frame(Status(target, b"\x01" * 32)))
            ask = peer.expect(GetBlocks)
            assert isinstance(ask, GetBlocks)
            start = ask.from_height
            assert ask.max_count == 50
            # the answer does not connect: a keeps it and asks the 4 blocks below it
            answers.sendall(encode_frame(Blocks((unconnected_block(start),))))
            below = peer.expect(GetBlocks)
            assert isinstance(below, GetBlocks)
            assert (below.from_height, below.max_count) == (
                max(1, start - 4),
                start - max(1, start - 4),
            )
            # still no connection: twice as far, only what lies below
            lower = below.from_height
            if lower > 1:
                answers.sendall(encode_frame(Blocks((unconnected_block(lower),))))
                further = peer.expect(GetBlocks)
                assert isinstance(further, GetBlocks)
                expected_from = max(1, lower - 8)
                assert (further.from_height, further.max_count) == (
                    expected_from,
                    lower - expected_from,
                )
        finally:
            peer.close()
