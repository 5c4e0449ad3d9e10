"""The node's P2P connections: one outbound ``PeerLink`` per peer, inbound ones to receive.

Every connection starts with the authenticated handshake (``protocol.p2p.Hello``/``HelloProof``);
only the topology's P2P keys pass. Every message this node sends to peer P goes over its own
outbound connection to P (dialled at the address the config gives, usually the link emulator's
port for this node -> P), so the bytes cross the directed link of the emulator. ``PeerLink``
dials a peer, keeps it alive with ``Ping``, reconnects with exponential back-off (the topology's
``protocol.peering``), cut short by ``redial_now`` when the peer dials us (it is back), and hands
the peer's answers to the node; its send buffer is bounded, so a stuck peer costs at most
``MAX_SEND_BUFFER_BYTES``. ``P2PServer`` accepts connections and hands frames over with a
``reply`` on the same connection. ``ConnectionLimits`` bound what a connection may cost (node.md
lists them).

The keepalive Pings also measure the round-trip time (``PeerLink.rtt``, an ``RttTracker``): the
Pong comes back on the same connection, so through the emulator a Ping -> Pong is one full round
trip over the link this node -> peer (forward, then its reverse direction, with the same
parameters). Ping and Pong carry no nonce (they are the real node's frames), so at most one Ping
is in flight per connection and the next Pong on it is its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from bitcell_sim.node.ratelimit import OncePer
from bitcell_sim.node.rtt import RttTracker
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.p2p import (
    MAX_FRAME_BYTES,
    MAX_HANDSHAKE_FRAME_BYTES,
    Handshake,
    Hello,
    HelloProof,
    Message,
    Ping,
    Pong,
    Role,
    decode_message,
    encode_frame,
    prove,
    verify_proof,
)

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_VARIANT = struct.Struct("<I")

#: Keepalive and RTT: a Ping every PING_INTERVAL_S (one in flight at most); a link silent, or
#: whose Ping is unanswered, for DEAD_AFTER_S is dropped.
PING_INTERVAL_S = 1.0
DEAD_AFTER_S = 6.0
HANDSHAKE_TIMEOUT_S = 3.0
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0
#: Bytes queued in one connection beyond which new frames to it are dropped.
MAX_SEND_BUFFER_BYTES = 16 * 1024 * 1024
#: Inbound connections still in their handshake at once; more are closed at accept.
MAX_PENDING_CONNECTIONS = 64
#: A partial frame must complete within FRAME_GRACE_S + length / FRAME_MIN_RATE_BYTES_S.
FRAME_GRACE_S = 5.0
FRAME_MIN_RATE_BYTES_S = 125_000.0
SWEEP_INTERVAL_S = 0.5
#: Refused handshakes and bad frames are logged at WARNING once per source per this long.
WARN_INTERVAL_S = 60.0

PING_FRAME = encode_frame(Ping())
PONG_FRAME = encode_frame(Pong())
PING_INDEX = Ping.INDEX
PONG_INDEX = Pong.INDEX
_HANDSHAKE_INDICES = frozenset((Handshake.INDEX, Hello.INDEX, HelloProof.INDEX))

#: Writes one frame on the connection a message came from; False if it was dropped.
Reply = Callable[[bytes], bool]


def payload_variant(payload: bytes) -> int:
    """The message variant index at the start of a frame payload (-1 if too short)."""
    return _VARIANT.unpack_from(payload)[0] if len(payload) >= 4 else -1


@dataclass
class Traffic:
    """Byte and message counters of all P2P connections (frames incl. their length prefix)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    frames_dropped: int = 0
    handshakes_refused: int = 0
    connections_dropped: int = 0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one P2P connection may cost (see the module docstring); tests shrink them."""

    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    idle_timeout_s: float = DEAD_AFTER_S
    max_pending: int = MAX_PENDING_CONNECTIONS
    frame_grace_s: float = FRAME_GRACE_S
    frame_min_rate_bytes_s: float = FRAME_MIN_RATE_BYTES_S


class Framer:
    """Splits a byte stream into frame payloads (4-byte big-endian length, then payload) and
    remembers since when an incomplete frame is waiting (``overdue``).

    ``push`` appends bytes and ``next`` takes one payload at a time, so a caller can raise
    ``max_frame_bytes`` between two frames of one read (after the handshake)."""

    __slots__ = ("_buffer", "_max", "_now_s", "_pos", "partial_length", "partial_since_s")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._now_s = 0.0
        self._max = max_frame_bytes
        #: When the first byte of the incomplete frame arrived (None: nothing incomplete).
        self.partial_since_s: float | None = None
        #: Its announced payload length (0 while the length itself is incomplete).
        self.partial_length = 0

    @property
    def max_frame_bytes(self) -> int:
        return self._max

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        self._max = value

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._pos

    def push(self, data: bytes, now_s: float = 0.0) -> None:
        if self._pos:
            del self._buffer[: self._pos]  # once per read, not once per frame
            self._pos = 0
        self._buffer += data
        self._now_s = now_s
        if self.partial_since_s is None and data:
            self.partial_since_s = now_s

    def next(self) -> bytes | None:
        """The next complete payload, or None; ``DecodeError`` for a length over the maximum."""
        buf, pos = self._buffer, self._pos
        if len(buf) - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length > self._max:
                raise DecodeError(f"frame length {length} exceeds maximum {self._max}")
            end = pos + 4 + length
            if len(buf) >= end:
                self._pos = end
                payload = bytes(buf[pos + 4 : end])
                self._note_partial()
                return payload
            self.partial_length = length
        return None

    def _note_partial(self) -> None:
        """After a frame: what is left starts a new frame now (or nothing is left)."""
        left = len(self._buffer) - self._pos
        if left == 0:
            self.partial_since_s, self.partial_length = None, 0
        else:
            self.partial_since_s = self._now_s
            self.partial_length = (
                _LENGTH.unpack_from(self._buffer, self._pos)[0] if left >= 4 else 0
            )

    def feed(self, data: bytes, now_s: float = 0.0) -> list[bytes]:
        """``push`` then every complete payload."""
        self.push(data, now_s)
        out = []
        while (payload := self.next()) is not None:
            out.append(payload)
        return out

    def overdue(self, now_s: float, limits: ConnectionLimits) -> bool:
        """True if the incomplete frame missed its deadline (grace + length at the min rate)."""
        if self.partial_since_s is None:
            return False
        allowed_s = limits.frame_grace_s + self.partial_length / limits.frame_min_rate_bytes_s
        return now_s - self.partial_since_s > allowed_s


@dataclass(frozen=True)
class P2PIdentity:
    """This node's P2P key, the network's genesis hash, and the keys it accepts by name."""

    keypair: KeyPair
    genesis_hash: bytes
    names_by_key: Mapping[bytes, str]

    def hello(self) -> Hello:
        return Hello.fresh(self.keypair.public_key, self.genesis_hash)

    def check_hello(self, message: Message) -> Hello:
        """The peer's Hello, checked for the network; ``ProtocolError`` says what is wrong."""
        if isinstance(message, Handshake):
            raise ProtocolError(
                "the peer sent a bare Handshake (a key it does not prove, as a real BitCell "
                "node does); this network needs the authenticated Hello handshake"
            )
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected a Hello first, got {type(message).__name__}")
        if message.genesis_hash != self.genesis_hash:
            raise ProtocolError(
                f"the peer runs another network (genesis {message.genesis_hash.hex()[:16]}, "
                f"ours {self.genesis_hash.hex()[:16]})"
            )
        return message


class _Stage(Enum):
    HELLO = "hello"
    PROOF = "proof"
    READY = "ready"


def _expect_proof(message: Message) -> HelloProof:
    if not isinstance(message, HelloProof):
        raise ProtocolError(f"expected a HelloProof, got {type(message).__name__}")
    return message


class _OutboundProtocol(asyncio.Protocol):
    def __init__(self, link: PeerLink) -> None:
        self.link = link
        self.framer = Framer(MAX_HANDSHAKE_FRAME_BYTES)
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Its failure is reported by PeerLink.run; retrieve it even if nobody waits any more.
        self.handshake.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.lost = asyncio.Event()
        self.last_rx_s = time.monotonic()
        #: When the Ping now in flight was written (None: none in flight).
        self.ping_sent_s: float | None = None
        self.stage = _Stage.HELLO
        self.our_hello = link.identity.hello()
        self.their_hello: Hello | None = None

    def _write(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame)
        self.link.traffic.bytes_sent += len(frame)
        self.link.traffic.messages_sent += 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._write(encode_frame(self.our_hello))

    def _handshake_step(self, payload: bytes) -> None:
        link = self.link
        message = decode_message(payload)
        if self.stage is _Stage.HELLO:
            hello = link.identity.check_hello(message)
            if hello.peer_id != link.expected_key:
                raise ProtocolError(
                    f"handshake key {hello.peer_id.hex()[:16]} is not {link.name}'s "
                    f"{link.expected_key.hex()[:16]}"
                )
            self.their_hello = hello
            self.stage = _Stage.PROOF
            return
        assert self.their_hello is not None
        if not verify_proof(
            _expect_proof(message), Role.LISTENER, self.our_hello, self.their_hello
        ):
            raise ProtocolError(f"{link.name}'s handshake proof does not verify")
        self._write(
            encode_frame(
                prove(link.identity.keypair, Role.DIALER, self.our_hello, self.their_hello)
            )
        )
        self.stage = _Stage.READY
        self.framer.max_frame_bytes = MAX_FRAME_BYTES
        self.handshake.set_result(None)

    def data_received(self, data: bytes) -> None:
        now_s = self.last_rx_s = time.monotonic()
        traffic = self.link.traffic
        framer = self.framer
        framer.push(data, now_s)
        try:
            while (payload := framer.next()) is not None:
                traffic.bytes_received += len(payload) + 4
                traffic.messages_received += 1
                if self.stage is not _Stage.READY:
                    self._handshake_step(payload)
                elif payload_variant(payload) == PONG_INDEX:
                    if self.ping_sent_s is not None:
                        self.link.rtt.observe(now_s - self.ping_sent_s)
                        self.ping_sent_s = None
                else:
                    self.link.on_answer(self.link.name, payload)
        except (DecodeError, ProtocolError, KeyError) as exc:
            if not self.handshake.done():
                self.handshake.set_exception(ProtocolError(str(exc)))
            else:
                log.warning("peer %s sent a bad frame on our connection: %s", self.link.name, exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed before handshake: {exc}"))
        self.lost.set()


class PeerLink:
    """This node's outbound connection to peer ``name`` at ``host:port``, kept up by ``run``.

    ``expected_key`` is the peer's P2P key: a peer that cannot prove it is refused.
    ``on_answer(name, payload)`` receives the frames the peer sends back on this connection.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        identity: P2PIdentity,
        expected_key: bytes,
        traffic: Traffic,
        on_up: Callable[[PeerLink], None],
        on_down: Callable[[PeerLink], None],
        on_answer: Callable[[str, bytes], None] = lambda name, payload: None,
        ping_interval_s: float = PING_INTERVAL_S,
        limits: ConnectionLimits = ConnectionLimits(),
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.identity = identity
        self.expected_key = expected_key
        self.traffic = traffic
        self._on_up = on_up
        self._on_down = on_down
        self.on_answer = on_answer
        self.limits = limits
        self._protocol: _OutboundProtocol | None = None
        self._closed = False
        self.up = False
        self.connects = 0
        self._last_warning = ""
        self.ping_interval_s = ping_interval_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._wake = asyncio.Event()
        #: Ping -> Pong round trips on this link, kept across reconnections.
        self.rtt = RttTracker()

    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` on the connection; False (and counted) if down or backed up."""
        return self._write(frame, 1)

    def send_many(self, frames: list[bytes]) -> bool:
        """Queue several frames in one write (a gossip batch)."""
        return self._write(b"".join(frames), len(frames)) if frames else True

    def _write(self, data: bytes, messages: int) -> bool:
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        if not self.up or transport is None or transport.is_closing():
            self.traffic.frames_dropped += messages
            return False
        if transport.get_write_buffer_size() > MAX_SEND_BUFFER_BYTES:
            self.traffic.frames_dropped += messages
            return False
        transport.write(data)
        self.traffic.bytes_sent += len(data)
        self.traffic.messages_sent += messages
        return True

    async def _dial(self) -> _OutboundProtocol:
        loop = asyncio.get_running_loop()
        timeout_s = self.limits.handshake_timeout_s
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _OutboundProtocol(self), self.host, self.port),
            timeout_s,
        )
        try:
            await asyncio.wait_for(asyncio.shield(protocol.handshake), timeout_s)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.abort()
            with contextlib.suppress(BaseException):
                protocol.handshake.exception()  # retrieved: no "never retrieved" warning
            raise
        return protocol

    def redial_now(self) -> None:
        """Cut the current back-off short: the peer just dialled us, so it is reachable."""
        if not self.up:
            self._wake.set()

    async def _back_off(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` unless woken by ``redial_now``; True if woken."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), delay_s)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Dial, handshake, keep alive; on any loss wait (back-off) and dial again."""
        backoff_s = self.reconnect_min_s
        while not self._closed:
            try:
                protocol = await self._dial()
            except (OSError, TimeoutError, ConnectionError, ProtocolError) as exc:
                message = f"dial {self.name} at {self.host}:{self.port} failed: {exc}"
                # A wrong peer is worth a warning (once per distinct reason); an absent one not.
                if isinstance(exc, ProtocolError) and message != self._last_warning:
                    log.warning("%s", message)
                    self._last_warning = message
                else:
                    log.debug("%s", message)
                woken = await self._back_off(backoff_s)
                backoff_s = (
                    self.reconnect_min_s if woken else min(backoff_s * 2, self.reconnect_max_s)
                )
                continue
            backoff_s = self.reconnect_min_s
            self._protocol = protocol
            self.up = True
            self.connects += 1
            self._on_up(self)
            try:
                await self._keepalive(protocol)
            finally:
                self.up = False
                self._protocol = None
                if protocol.transport is not None:
                    protocol.transport.abort()
                self._on_down(self)
            if not self._closed:
                await self._back_off(self.reconnect_min_s)

    async def _keepalive(self, protocol: _OutboundProtocol) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(protocol.lost.wait(), self.ping_interval_s)
                return
            except TimeoutError:
                pass
            now_s = time.monotonic()
            sent_s = protocol.ping_sent_s
            idle_s = self.limits.idle_timeout_s
            if now_s - protocol.last_rx_s > idle_s or (
                sent_s is not None and now_s - sent_s > idle_s
            ):
                log.info("peer %s silent for %.0f s: reconnecting", self.name, idle_s)
                return
            if protocol.framer.overdue(now_s, self.limits):
                log.warning("peer %s: a frame is arriving too slowly: reconnecting", self.name)
                self.traffic.connections_dropped += 1
                return
            # One Ping in flight: the next Pong on this connection then answers exactly it.
            if sent_s is None and self.send(PING_FRAME):
                protocol.ping_sent_s = time.monotonic()

    def close(self) -> None:
        self._closed = True
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()


class _InboundProtocol(asyncio.Protocol):
    def __init__(self, server: P2PServer) -> None:
        self.server = server
        self.framer = Framer(MAX_HANDSHAKE_FRAME_BYTES)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.peer_key = b""
        self.source = "?"
        self.stage = _Stage.HELLO
        self.opened_s = self.last_rx_s = time.monotonic()
        self.their_hello: Hello | None = None
        self.our_hello: Hello | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.source = f"{peername[0]}:{peername[1]}" if peername else "?"
        self.server.accepted(self)

    def reply(self, frame: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > MAX_SEND_BUFFER_BYTES:
            self.server.traffic.frames_dropped += 1
            return False
        transport.write(frame)
        self.server.traffic.bytes_sent += len(frame)
        self.server.traffic.messages_sent += 1
        return True

    def _handshake_step(self, payload: bytes) -> None:
        server = self.server
        identity = server.identity
        message = decode_message(payload)
        if self.stage is _Stage.HELLO:
            hello = identity.check_hello(message)
            name = identity.names_by_key.get(hello.peer_id)
            if name is None or hello.peer_id == identity.keypair.public_key:
                raise ProtocolError(
                    f"key {hello.peer_id.hex()[:16]} is not the P2P key of a node of this topology"
                )
            self.their_hello, self.our_hello = hello, identity.hello()
            self.reply(encode_frame(self.our_hello))
            self.reply(encode_frame(prove(identity.keypair, Role.LISTENER, hello, self.our_hello)))
            self.peer_key, self.stage = hello.peer_id, _Stage.PROOF
            self.peer = name
            return
        assert self.their_hello is not None and self.our_hello is not None
        if not verify_proof(_expect_proof(message), Role.DIALER, self.their_hello, self.our_hello):
            raise ProtocolError(f"the handshake proof of {self.peer} does not verify")
        self.stage = _Stage.READY
        self.framer.max_frame_bytes = MAX_FRAME_BYTES
        server.authenticated(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        traffic = server.traffic
        now_s = self.last_rx_s = time.monotonic()
        framer = self.framer
        framer.push(data, now_s)
        try:
            while (payload := framer.next()) is not None:
                traffic.bytes_received += len(payload) + 4
                traffic.messages_received += 1
                if self.stage is not _Stage.READY:
                    self._handshake_step(payload)
                    continue
                variant = payload_variant(payload)
                if variant == PING_INDEX:
                    self.reply(PONG_FRAME)
                elif variant in _HANDSHAKE_INDICES:
                    raise ProtocolError("a second handshake on an authenticated connection")
                else:
                    assert self.peer is not None
                    server.deliver(self.peer, payload, self.reply)
                if self.transport is None or self.transport.is_closing():
                    return  # dropped while delivering (e.g. replaced by a newer connection)
        except (DecodeError, ProtocolError, KeyError) as exc:
            self.drop(f"{exc}", refused=self.stage is not _Stage.READY)

    def drop(self, reason: str, *, refused: bool = False) -> None:
        """Close this connection, saying why (at WARNING once per source per interval)."""
        server = self.server
        who = self.peer or "unidentified peer"
        if refused:
            server.traffic.handshakes_refused += 1
        server.traffic.connections_dropped += 1
        if server.warnings.allow(self.source.rsplit(":", 1)[0], time.monotonic()):
            log.warning("P2P connection from %s (%s) dropped: %s", self.source, who, reason)
        else:
            log.debug("P2P connection from %s (%s) dropped: %s", self.source, who, reason)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)


class P2PServer:
    """Accepts inbound P2P connections; frames of authenticated ones go to ``deliver(peer,
    payload, reply)``, and ``on_authenticated(peer, reply)`` runs once per new connection."""

    def __init__(
        self,
        identity: P2PIdentity,
        traffic: Traffic,
        deliver: Callable[[str, bytes, Reply], None],
        on_authenticated: Callable[[str, Reply], None] = lambda peer, reply: None,
        limits: ConnectionLimits = ConnectionLimits(),
    ) -> None:
        self.identity = identity
        self.traffic = traffic
        self.deliver = deliver
        self.on_authenticated = on_authenticated
        self.limits = limits
        self.connections: set[_InboundProtocol] = set()
        #: The authenticated connection of each peer key (at most one).
        self.by_key: dict[bytes, _InboundProtocol] = {}
        self.warnings = OncePer(WARN_INTERVAL_S)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return sum(1 for c in self.connections if c.stage is not _Stage.READY)

    def accepted(self, connection: _InboundProtocol) -> None:
        if self.pending >= self.limits.max_pending:
            connection.drop(f"more than {self.limits.max_pending} handshakes pending", refused=True)
            return
        self.connections.add(connection)

    def authenticated(self, connection: _InboundProtocol) -> None:
        older = self.by_key.get(connection.peer_key)
        self.by_key[connection.peer_key] = connection
        if older is not None and older is not connection:
            # One connection per peer: the newer one wins (the peer reconnected).
            older.drop("replaced by a newer connection of the same peer")
        assert connection.peer is not None
        self.on_authenticated(connection.peer, connection.reply)

    def forget(self, connection: _InboundProtocol) -> None:
        self.connections.discard(connection)
        if self.by_key.get(connection.peer_key) is connection:
            del self.by_key[connection.peer_key]

    def sweep(self, now_s: float) -> None:
        """Close connections past their handshake, idle or partial-frame deadline."""
        limits = self.limits
        for connection in list(self.connections):
            if connection.stage is not _Stage.READY:
                if now_s - connection.opened_s > limits.handshake_timeout_s:
                    connection.drop("no handshake in time", refused=True)
            elif now_s - connection.last_rx_s > limits.idle_timeout_s:
                connection.drop(f"silent for {limits.idle_timeout_s:g} s")
            elif connection.framer.overdue(now_s, limits):
                connection.drop(
                    f"a frame of {connection.framer.partial_length} bytes arrives too slowly"
                )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep(time.monotonic())

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _InboundProtocol(self), host, port)
        self._sweeper = loop.create_task(self._sweep_forever(), name="p2p-sweeper")

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
