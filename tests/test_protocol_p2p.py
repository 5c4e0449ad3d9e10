"""Peer frames: the node's seven messages byte for byte, the devnet's extras, framing, and the
authenticated handshake's proofs."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from bitcell_sim.protocol.bincode import UNEXPECTED_EOF
from bitcell_sim.protocol.block import genesis_block, make_block
from bitcell_sim.protocol.consensus import commitment_hash
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.p2p import (
    MAX_FRAME_BYTES,
    BlockMessage,
    Blocks,
    Commitment,
    FrameDecoder,
    GetBlocks,
    GetPeers,
    Handshake,
    Hello,
    HelloProof,
    Message,
    Peers,
    Ping,
    Pong,
    Reveal,
    Role,
    Status,
    TransactionMessage,
    decode_message,
    encode_frame,
    encode_message,
    prove,
    read_message,
    verify_proof,
    write_message,
)
from bitcell_sim.protocol.transaction import sign_transaction

KEY = KeyPair.from_seed("test-seed")
GOLDEN_TX = sign_transaction(KEY, KeyPair.from_seed("recipient").public_key, 1000, 21000, 10**9)
GENESIS = genesis_block("net", 100)
B1 = make_block(KEY, GENESIS.header, [GOLDEN_TX], bytes(32), 115)
PREV = GENESIS.hash()

ALL: list[Message] = [
    Handshake(KEY.public_key),
    Ping(),
    Pong(),
    BlockMessage(B1),
    TransactionMessage(GOLDEN_TX),
    GetPeers(),
    Peers(("127.0.0.1:30333", "127.0.0.1:40000")),
    Commitment.create(KEY, 3, PREV, commitment_hash(KEY.public_key, b"n", "Standard")),
    Reveal.create(KEY, 3, PREV, b"n", "Standard"),
    GetBlocks(from_height=5, max_count=100),
    Blocks((GENESIS, B1)),
    Status(height=1, tip_hash=B1.hash()),
    Hello(KEY.public_key, PREV, b"\x05" * 32),
    HelloProof(b"\x06" * 64),
]


def test_node_messages_byte_exact() -> None:
    hs = encode_message(Handshake(KEY.public_key))
    assert len(hs) == 45
    assert hs == bytes(4) + (33).to_bytes(8, "little") + KEY.public_key
    assert encode_message(Ping()).hex() == "01000000"
    assert encode_message(Pong()).hex() == "02000000"
    assert encode_message(GetPeers()).hex() == "05000000"
    tx = encode_message(TransactionMessage(GOLDEN_TX))
    assert len(tx) == 4 + 194
    assert tx == bytes.fromhex("04000000") + GOLDEN_TX.encode()
    assert encode_message(BlockMessage(B1)) == bytes.fromhex("03000000") + B1.encode()
    peers = encode_message(Peers(("a:1",)))
    assert peers.hex() == "06000000" + "0100000000000000" + "0300000000000000" + b"a:1".hex()


@pytest.mark.parametrize("message", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    payload = encode_message(message)
    assert payload[:4] == message.INDEX.to_bytes(4, "little")
    assert decode_message(payload) == message
    assert decode_message(payload + b"junk") == message
    frame = encode_frame(message)
    assert frame[:4] == len(payload).to_bytes(4, "big")


def test_extra_indices() -> None:
    indices = [type(m).INDEX for m in ALL]
    assert indices == list(range(14))


def test_signed_consensus_messages() -> None:
    commit = ALL[7]
    reveal = ALL[8]
    assert isinstance(commit, Commitment) and isinstance(reveal, Reveal)
    assert commit.verify() and reveal.verify()
    assert reveal.matches(commit)
    other = Reveal.create(KEY, 3, PREV, b"m", "Standard")
    assert other.verify() and not other.matches(commit)
    assert not Reveal.create(KEY, 4, PREV, b"n", "Standard").matches(commit)
    forged = Reveal(3, PREV, KeyPair.from_seed("x").public_key, b"n", "Standard", reveal.signature)
    assert not forged.verify()


def test_unknown_variant_and_truncation() -> None:
    with pytest.raises(DecodeError, match=r"integer `14`, expected variant index 0 <= i < 14"):
        decode_message((14).to_bytes(4, "little"))
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        decode_message(encode_message(TransactionMessage(GOLDEN_TX))[:100])
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        decode_message(b"")
    bad_pattern = bytearray(encode_message(ALL[8]))
    pos = 4 + 8 + 32 + 41 + 8 + 1  # after round, prev, miner, nonce(len 1)
    bad_pattern[pos : pos + 4] = (9).to_bytes(4, "little")
    with pytest.raises(DecodeError, match="expected variant index 0 <= i < 4"):
        decode_message(bytes(bad_pattern))


def test_field_checks() -> None:
    with pytest.raises(ProtocolError, match="tip_hash must be 32 bytes, got 3"):
        encode_message(Status(1, b"abc"))
    with pytest.raises(ProtocolError, match="unknown glider pattern 'Glider'"):
        Reveal.create(KEY, 1, PREV, b"", "Glider")


def test_frame_limit() -> None:
    big = Peers(("x" * 1000,) * 20)
    with pytest.raises(ProtocolError, match=r"frame of 20\d+ bytes exceeds maximum 1000"):
        encode_frame(big, max_frame_bytes=1000)
    decoder = FrameDecoder()
    with pytest.raises(DecodeError, match=f"frame length {MAX_FRAME_BYTES + 1} exceeds maximum"):
        decoder.feed((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))


def test_frame_decoder_byte_by_byte() -> None:
    stream = b"".join(encode_frame(m) for m in ALL)
    decoder = FrameDecoder()
    got: list[Message] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == ALL
    assert decoder.buffered_bytes == 0
    assert FrameDecoder().feed(stream) == ALL


@pytest.mark.real
@pytest.mark.timeout(20)
def test_frames_over_a_real_socket() -> None:
    async def scenario() -> list[Message]:
        received: list[Message] = []
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Both sides send Handshake first, then read the other's, as the node does.
            await write_message(writer, Handshake(KeyPair.from_seed("server").public_key))
            while (msg := await read_message(reader)) is not None:
                received.append(msg)
                if isinstance(msg, Ping):
                    await write_message(writer, Pong())
            writer.close()
            done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await write_message(writer, Handshake(KEY.public_key))
            first = await read_message(reader)
            assert first == Handshake(KeyPair.from_seed("server").public_key)
            for m in ALL[1:]:
                await write_message(writer, m)
            assert await read_message(reader) == Pong()
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(done.wait(), 10)
        finally:
            server.close()
            await server.wait_closed()
        return received

    received = asyncio.run(scenario())
    assert received == [Handshake(KEY.public_key), *ALL[1:]]


@pytest.mark.real
@pytest.mark.timeout(20)
def test_truncated_frame_on_socket_is_eof_error() -> None:
    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(encode_frame(Ping())[:3])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
                await read_message(reader)
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_block_hash_survives_gossip() -> None:
    decoded = decode_message(encode_message(BlockMessage(B1)))
    assert isinstance(decoded, BlockMessage)
    assert decoded.block.hash() == B1.hash() == hashlib.sha256(B1.header.encode()).digest()


DIALER = KeyPair.from_seed("dialer")
LISTENER = KeyPair.from_seed("listener")


def test_handshake_frames_are_small() -> None:
    hello = Hello.fresh(DIALER.public_key, PREV)
    assert len(encode_frame(hello)) == 113 and len(hello.challenge) == 32
    assert Hello.fresh(DIALER.public_key, PREV).challenge != hello.challenge  # fresh each time
    assert len(encode_frame(HelloProof(bytes(64)))) == 80


def test_a_proof_holds_for_its_role_and_its_handshake_only() -> None:
    ours, theirs = Hello.fresh(DIALER.public_key, PREV), Hello.fresh(LISTENER.public_key, PREV)
    from_listener = prove(LISTENER, Role.LISTENER, ours, theirs)
    from_dialer = prove(DIALER, Role.DIALER, ours, theirs)
    assert verify_proof(from_listener, Role.LISTENER, ours, theirs)
    assert verify_proof(from_dialer, Role.DIALER, ours, theirs)
    # not as the other role (a listener's proof relayed to someone expecting a dialer's)
    assert not verify_proof(from_listener, Role.DIALER, theirs, ours)
    assert not verify_proof(from_dialer, Role.LISTENER, ours, theirs)
    # not in another handshake (another challenge, another network)
    again = Hello.fresh(DIALER.public_key, PREV)
    assert not verify_proof(from_listener, Role.LISTENER, again, theirs)
    other_net = Hello(DIALER.public_key, bytes(32), ours.challenge)
    assert not verify_proof(from_listener, Role.LISTENER, other_net, theirs)
    # not by a key that did not sign it
    impostor = Hello(KEY.public_key, PREV, theirs.challenge)
    assert not verify_proof(from_listener, Role.LISTENER, ours, impostor)
