"""Peer-to-peer frames: a 4-byte big-endian length, then a bincode ``NetworkMessage``.

Variants 0-6 are the node's (Handshake, Ping, Pong, Block, Transaction, GetPeers, Peers); 7-13
the devnet's (Commitment, Reveal, GetBlocks, Blocks, Status, and the authenticated handshake
``Hello``/``HelloProof`` with ``prove``/``verify_proof``). ``encode_frame``, ``decode_message``,
``FrameDecoder``, ``read_message``/``write_message`` carry them, at most ``MAX_FRAME_BYTES``.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from bitcell_sim.protocol import keys
from bitcell_sim.protocol.bincode import Reader, Writer, write_public_key, write_signature
from bitcell_sim.protocol.block import Block
from bitcell_sim.protocol.consensus import GLIDER_PATTERNS, commitment_hash
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.transaction import Transaction

MAX_FRAME_BYTES = 10_000_000
#: Largest frame accepted before a connection is authenticated (a Hello is 113 bytes).
MAX_HANDSHAKE_FRAME_BYTES = 512
CHALLENGE_BYTES = 32
_LENGTH = struct.Struct(">I")

_COMMITMENT_DOMAIN = b"bitcell-sim/commitment/v1"
_REVEAL_DOMAIN = b"bitcell-sim/reveal/v1"
_HANDSHAKE_DOMAIN = b"bitcell-sim/handshake/v1"


@dataclass(frozen=True, slots=True)
class Handshake:
    """The real node's first message, both ways: the sender's 33-byte key. It proves nothing
    (anyone can claim a public key), so the devnet node refuses it and uses ``Hello``."""

    INDEX: ClassVar[int] = 0
    peer_id: bytes

    def write(self, w: Writer) -> None:
        write_public_key(w, self.peer_id)


@dataclass(frozen=True, slots=True)
class Ping:
    INDEX: ClassVar[int] = 1

    def write(self, w: Writer) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Pong:
    INDEX: ClassVar[int] = 2

    def write(self, w: Writer) -> None:
        pass


@dataclass(frozen=True, slots=True)
class BlockMessage:
    """A full block, gossiped to every peer."""

    INDEX: ClassVar[int] = 3
    block: Block

    def write(self, w: Writer) -> None:
        self.block.write(w)


@dataclass(frozen=True, slots=True)
class TransactionMessage:
    """A transaction, gossiped to every peer."""

    INDEX: ClassVar[int] = 4
    transaction: Transaction

    def write(self, w: Writer) -> None:
        w.raw(self.transaction.encode())


@dataclass(frozen=True, slots=True)
class GetPeers:
    INDEX: ClassVar[int] = 5

    def write(self, w: Writer) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Peers:
    """Known peer addresses, ``"ip:port"`` strings."""

    INDEX: ClassVar[int] = 6
    addresses: tuple[str, ...]

    def write(self, w: Writer) -> None:
        w.seq_len(len(self.addresses))
        for address in self.addresses:
            w.string(address)


@dataclass(frozen=True, slots=True)
class Commitment:
    """Devnet: a validator's commitment for the round on top of ``prev_hash``, signed."""

    INDEX: ClassVar[int] = 7
    round_index: int
    prev_hash: bytes
    miner: bytes
    commitment: bytes
    signature: bytes

    @staticmethod
    def signing_hash_of(
        round_index: int, prev_hash: bytes, miner: bytes, commitment: bytes
    ) -> bytes:
        return hashlib.sha256(
            _COMMITMENT_DOMAIN + struct.pack("<Q", round_index) + prev_hash + miner + commitment
        ).digest()

    @classmethod
    def create(
        cls, keypair: keys.KeyPair, round_index: int, prev_hash: bytes, commitment: bytes
    ) -> Commitment:
        msg = cls.signing_hash_of(round_index, prev_hash, keypair.public_key, commitment)
        return cls(round_index, prev_hash, keypair.public_key, commitment, keypair.sign(msg))

    def verify(self) -> bool:
        msg = self.signing_hash_of(self.round_index, self.prev_hash, self.miner, self.commitment)
        return keys.verify(self.miner, msg, self.signature)

    def write(self, w: Writer) -> None:
        w.u64(self.round_index).raw(_len(self.prev_hash, 32, "prev_hash"))
        write_public_key(w, self.miner)
        w.raw(_len(self.commitment, 32, "commitment"))
        write_signature(w, self.signature)


@dataclass(frozen=True, slots=True)
class Reveal:
    """Devnet: a validator's reveal (nonce and glider pattern) for a round, signed."""

    INDEX: ClassVar[int] = 8
    round_index: int
    prev_hash: bytes
    miner: bytes
    nonce: bytes
    pattern: str
    signature: bytes

    @staticmethod
    def signing_hash_of(
        round_index: int, prev_hash: bytes, miner: bytes, nonce: bytes, pattern: str
    ) -> bytes:
        body = struct.pack("<Q", round_index) + prev_hash + miner
        body += struct.pack("<Q", len(nonce)) + nonce + struct.pack("<I", _pattern_index(pattern))
        return hashlib.sha256(_REVEAL_DOMAIN + body).digest()

    @classmethod
    def create(
        cls, keypair: keys.KeyPair, round_index: int, prev_hash: bytes, nonce: bytes, pattern: str
    ) -> Reveal:
        msg = cls.signing_hash_of(round_index, prev_hash, keypair.public_key, nonce, pattern)
        return cls(round_index, prev_hash, keypair.public_key, nonce, pattern, keypair.sign(msg))

    def verify(self) -> bool:
        msg = self.signing_hash_of(
            self.round_index, self.prev_hash, self.miner, self.nonce, self.pattern
        )
        return keys.verify(self.miner, msg, self.signature)

    def matches(self, commitment: Commitment) -> bool:
        """True if this reveal opens ``commitment`` (same miner, round and parent)."""
        return (
            commitment.miner == self.miner
            and commitment.round_index == self.round_index
            and commitment.prev_hash == self.prev_hash
            and commitment.commitment == commitment_hash(self.miner, self.nonce, self.pattern)
        )

    def write(self, w: Writer) -> None:
        w.u64(self.round_index).raw(_len(self.prev_hash, 32, "prev_hash"))
        write_public_key(w, self.miner)
        w.var_bytes(self.nonce).variant(_pattern_index(self.pattern))
        write_signature(w, self.signature)


@dataclass(frozen=True, slots=True)
class GetBlocks:
    """Devnet sync: ask for up to ``max_count`` blocks from ``from_height`` upwards."""

    INDEX: ClassVar[int] = 9
    from_height: int
    max_count: int

    def write(self, w: Writer) -> None:
        w.u64(self.from_height).u64(self.max_count)


@dataclass(frozen=True, slots=True)
class Blocks:
    """Devnet sync: the answer to ``GetBlocks``, consecutive blocks in height order."""

    INDEX: ClassVar[int] = 10
    blocks: tuple[Block, ...]

    def write(self, w: Writer) -> None:
        w.seq_len(len(self.blocks))
        for block in self.blocks:
            block.write(w)


@dataclass(frozen=True, slots=True)
class Status:
    """Devnet: the sender's best tip, sent after the handshake and on every new tip."""

    INDEX: ClassVar[int] = 11
    height: int
    tip_hash: bytes

    def write(self, w: Writer) -> None:
        w.u64(self.height).raw(_len(self.tip_hash, 32, "tip_hash"))


@dataclass(frozen=True, slots=True)
class Hello:
    """Devnet handshake, first frame both ways: the sender's P2P key, the network's genesis
    hash and a fresh random challenge."""

    INDEX: ClassVar[int] = 12
    peer_id: bytes
    genesis_hash: bytes
    challenge: bytes

    @classmethod
    def fresh(cls, peer_id: bytes, genesis_hash: bytes) -> Hello:
        """A Hello with a new challenge from the OS's random source."""
        return cls(peer_id, genesis_hash, secrets.token_bytes(CHALLENGE_BYTES))

    def write(self, w: Writer) -> None:
        write_public_key(w, self.peer_id)
        w.raw(_len(self.genesis_hash, 32, "genesis_hash"))
        w.raw(_len(self.challenge, CHALLENGE_BYTES, "challenge"))


@dataclass(frozen=True, slots=True)
class HelloProof:
    """Devnet handshake: the sender's signature over ``handshake_digest`` of its role."""

    INDEX: ClassVar[int] = 13
    signature: bytes

    def write(self, w: Writer) -> None:
        write_signature(w, self.signature)


class Role(IntEnum):
    """Who signs a ``HelloProof``: the side that dialled, or the side that accepted."""

    DIALER = 0
    LISTENER = 1


def handshake_digest(role: Role, dialer: Hello, listener: Hello) -> bytes:
    """What ``role`` signs: SHA-256(domain ‖ role byte ‖ dialer's Hello ‖ listener's Hello).

    Both challenges are in it (so a proof is fresh and bound to this connection) and so is the
    role (so a listener's proof can never pass as a dialer's, which defeats relaying one side's
    proof to the other)."""
    body = bytes((int(role),)) + encode_message(dialer) + encode_message(listener)
    return hashlib.sha256(_HANDSHAKE_DOMAIN + body).digest()


def prove(keypair: keys.KeyPair, role: Role, dialer: Hello, listener: Hello) -> HelloProof:
    """This side's proof (``keypair`` must be the key its own Hello announced)."""
    return HelloProof(keypair.sign(handshake_digest(role, dialer, listener)))


def verify_proof(proof: HelloProof, role: Role, dialer: Hello, listener: Hello) -> bool:
    """True if ``proof`` was signed by the key of ``role``'s Hello over this handshake."""
    signer = dialer if role is Role.DIALER else listener
    return keys.verify(signer.peer_id, handshake_digest(role, dialer, listener), proof.signature)


Message = (
    Handshake
    | Ping
    | Pong
    | BlockMessage
    | TransactionMessage
    | GetPeers
    | Peers
    | Commitment
    | Reveal
    | GetBlocks
    | Blocks
    | Status
    | Hello
    | HelloProof
)


def _len(value: bytes, size: int, name: str) -> bytes:
    if len(value) != size:
        raise ProtocolError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def _pattern_index(pattern: str) -> int:
    try:
        return GLIDER_PATTERNS.index(pattern)
    except ValueError:
        raise ProtocolError(f"unknown glider pattern {pattern!r}") from None


def _read_count(r: Reader) -> int:
    count = r.seq_len()
    if count > r.remaining:  # every element is at least one byte
        raise DecodeError("io error: unexpected end of file")
    return count


_READERS: dict[int, Callable[[Reader], Message]] = {
    0: lambda r: Handshake(r.public_key()),
    1: lambda r: Ping(),
    2: lambda r: Pong(),
    3: lambda r: BlockMessage(Block.read(r)),
    4: lambda r: TransactionMessage(Transaction.read(r)),
    5: lambda r: GetPeers(),
    6: lambda r: Peers(tuple(r.string() for _ in range(_read_count(r)))),
    7: lambda r: Commitment(r.u64(), r.hash32(), r.public_key(), r.hash32(), r.signature()),
    8: lambda r: Reveal(
        r.u64(),
        r.hash32(),
        r.public_key(),
        r.var_bytes(),
        GLIDER_PATTERNS[r.variant(len(GLIDER_PATTERNS))],
        r.signature(),
    ),
    9: lambda r: GetBlocks(r.u64(), r.u64()),
    10: lambda r: Blocks(tuple(Block.read(r) for _ in range(_read_count(r)))),
    11: lambda r: Status(r.u64(), r.hash32()),
    12: lambda r: Hello(r.public_key(), r.hash32(), r.raw(CHALLENGE_BYTES)),
    13: lambda r: HelloProof(r.signature()),
}


def encode_message(message: Message) -> bytes:
    """The bincode payload of ``message``: u32 LE variant index, then its fields."""
    w = Writer().variant(message.INDEX)
    message.write(w)
    return w.getvalue()


def decode_message(payload: bytes) -> Message:
    """Decode one payload (trailing bytes ignored); ``DecodeError`` in bincode's words."""
    r = Reader(payload)
    return _READERS[r.variant(len(_READERS))](r)


def encode_frame(message: Message, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Length-prefixed frame of ``message``; refuses payloads over ``max_frame_bytes``."""
    payload = encode_message(message)
    if len(payload) > max_frame_bytes:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds maximum {max_frame_bytes}")
    return _LENGTH.pack(len(payload)) + payload


def _check_length(length: int, max_frame_bytes: int) -> None:
    if length > max_frame_bytes:
        raise DecodeError(f"frame length {length} exceeds maximum {max_frame_bytes}")


class FrameDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the messages completed by those bytes."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        while len(self._buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self._buffer)
            _check_length(length, self._max)
            if len(self._buffer) < 4 + length:
                break
            payload = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            out.append(decode_message(payload))
        return out


async def read_message(
    reader: asyncio.StreamReader, max_frame_bytes: int = MAX_FRAME_BYTES
) -> Message | None:
    """Read one framed message; None on a clean end of stream between frames."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise DecodeError("io error: unexpected end of file") from None
    (length,) = _LENGTH.unpack(head)
    _check_length(length, max_frame_bytes)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise DecodeError("io error: unexpected end of file") from None
    return decode_message(payload)


async def write_message(
    writer: asyncio.StreamWriter, message: Message, max_frame_bytes: int = MAX_FRAME_BYTES
) -> int:
    """Write one framed message and drain; returns the bytes written (frame included)."""
    frame = encode_frame(message, max_frame_bytes)
    writer.write(frame)
    await writer.drain()
    return len(frame)
