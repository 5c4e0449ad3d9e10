"""P2P fuzzing against a real two-node network (beside the RPC fuzzing of test_node_fuzz).

Hypothesis sends node a random bytes and random frames, before the handshake (as anyone could)
and after it (as x, a node of the topology that never runs, so its key is ours): truncated and
oversized lengths, unknown variants, every message kind with arbitrary fields. Whatever it
sends, only that connection may be dropped: node a stays up, keeps its link to b, and a and b
keep building one chain together.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitcell_sim.node.harness import HOST, LocalNet, wait_for
from bitcell_sim.protocol.p2p import (
    MAX_FRAME_BYTES,
    Blocks,
    Commitment,
    GetBlocks,
    GetPeers,
    Hello,
    Peers,
    Reveal,
    Status,
    TransactionMessage,
    encode_frame,
)
from bitcell_sim.protocol.transaction import Transaction
from tests.p2p_peer import FrameReader, handshake_as_dialer, pair_with_x, peer_count

pytestmark = [pytest.mark.real, pytest.mark.timeout(300)]

NETWORK = "p2pfuzz"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
U64 = st.integers(0, 2**64 - 1)
BYTES32 = st.binary(min_size=32, max_size=32)
KEY = st.sampled_from([b"\x02" + b"\x11" * 32, b"\x03" * 33, bytes(33)]) | st.binary(
    min_size=33, max_size=33
)
SIG = st.binary(min_size=64, max_size=64)

transactions = st.builds(Transaction, U64, KEY, KEY, U64, U64, U64, st.binary(max_size=40), SIG)
messages = st.one_of(
    st.builds(TransactionMessage, transactions),
    st.builds(Status, U64, BYTES32),
    st.builds(GetBlocks, U64, U64),
    st.builds(GetPeers),
    st.builds(Peers, st.lists(st.text(max_size=20), max_size=3).map(tuple)),
    st.builds(Commitment, U64, BYTES32, KEY, BYTES32, SIG),
    st.builds(
        Reveal,
        U64,
        BYTES32,
        KEY,
        st.binary(max_size=40),
        st.sampled_from(["Standard", "Lightweight", "Middleweight", "Heavyweight"]),
        SIG,
    ),
    st.builds(Blocks, st.just(())),
    st.builds(Hello, KEY, BYTES32, BYTES32),
)
frames = st.one_of(
    messages.map(encode_frame),
    # a valid length around random payloads: unknown variants, garbage fields
    st.binary(max_size=300).map(lambda p: struct.pack(">I", len(p)) + p),
    # lengths that lie: truncated, oversized, at the limits
    st.tuples(
        st.sampled_from([0, 1, 3, 300, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 2**32 - 1]),
        st.binary(max_size=64),
    ).map(lambda t: struct.pack(">I", t[0]) + t[1]),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    with pair_with_x(tmp_path_factory.mktemp("p2pfuzz"), NETWORK) as net:
        yield net


def send_and_close(net: LocalNet, data: list[bytes], authenticate: bool) -> None:
    with socket.create_connection((HOST, net.ports["a"][1]), timeout=5) as sock:
        if authenticate:
            reader = FrameReader(sock)
            handshake_as_dialer(sock, net.p2p_keys["x"], net.genesis_hash, reader)
        with contextlib.suppress(OSError):
            for chunk in data:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(65536):
                pass


@FUZZ
@given(data=st.lists(frames, min_size=1, max_size=5))
def test_anything_before_the_handshake(net: LocalNet, data: list[bytes]) -> None:
    send_and_close(net, data, authenticate=False)
    assert net.nodes["a"].running()


@FUZZ
@given(data=st.lists(frames, min_size=1, max_size=5))
def test_anything_from_an_authenticated_peer(net: LocalNet, data: list[bytes]) -> None:
    send_and_close(net, data, authenticate=True)
    assert net.nodes["a"].running()


def test_the_node_kept_its_peer_and_its_chain(net: LocalNet) -> None:
    assert net.nodes["a"].running() and net.nodes["b"].running()
    assert peer_count(net) == 1

    def tips() -> tuple[dict[str, object], dict[str, object]] | None:
        answers = []
        for node in ("a", "b"):
            body = {"jsonrpc": "2.0", "method": "eth_getBlockByNumber", "params": ["latest"]}
            url = f"{net.nodes[node].rpc_url}/rpc"
            answers.append(httpx.post(url, json={**body, "id": 1}, trust_env=False).json())
        a, b = (answer["result"] for answer in answers)
        return (a, b) if a["hash"] == b["hash"] and int(a["number"], 16) >= 3 else None

    wait_for(tips, 20, "a and b on one tip")
    text = net.nodes["a"].log_text()
    assert " ERROR " not in text and "Traceback" not in text
