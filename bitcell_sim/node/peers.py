"""The node's P2P connections: one outbound ``PeerLink`` per peer to send, inbound to receive.

Every message this node sends to peer P goes over its own outbound connection to P (dialled at
the address the config gives, usually the link emulator's port for this node -> P), so the
bytes cross the directed link of the emulator. ``PeerLink`` dials, exchanges ``Handshake``s,
keeps the connection alive with ``Ping`` (the peer answers ``Pong`` on the same connection) and
reconnects with exponential back-off (the topology's ``protocol.peering``), cut short by
``redial_now`` when the peer dials us (it is back); its send buffer is bounded, so a stuck peer
costs at most ``MAX_SEND_BUFFER_BYTES``. ``P2PServer`` accepts inbound connections, answers
the handshake and pings on them, and hands every other frame payload to the node.

The keepalive Pings also measure the round-trip time (``PeerLink.rtt``, an ``RttTracker``): the
Pong comes back on the same connection, so through the emulator a Ping -> Pong is one full round
trip over the link this node -> peer (forward, then its reverse direction, with the same
parameters). Ping and Pong carry no nonce (they are the real node's frames), so at most one Ping
is in flight per connection and the next Pong on it is its answer.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from bitcell_sim.node.rtt import RttTracker
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.p2p import (
    MAX_FRAME_BYTES,
    Handshake,
    Ping,
    Pong,
    decode_message,
    encode_frame,
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
#: Bytes queued in one outbound connection beyond which new frames to it are dropped.
MAX_SEND_BUFFER_BYTES = 16 * 1024 * 1024

PING_FRAME = encode_frame(Ping())
PONG_FRAME = encode_frame(Pong())
PING_INDEX = Ping.INDEX
PONG_INDEX = Pong.INDEX
HANDSHAKE_INDEX = Handshake.INDEX


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


class Framer:
    """Splits a byte stream into frame payloads (4-byte big-endian length, then payload)."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length > self._max:
                raise DecodeError(f"frame length {length} exceeds maximum {self._max}")
            end = pos + 4 + length
            if len(buf) < end:
                break
            out.append(bytes(buf[pos + 4 : end]))
            pos = end
        if pos:
            del buf[:pos]
        return out


def _handshake_key(payload: bytes) -> bytes:
    message = decode_message(payload)
    if not isinstance(message, Handshake):
        raise ProtocolError(f"expected a Handshake first, got {type(message).__name__}")
    return message.peer_id


class _OutboundProtocol(asyncio.Protocol):
    def __init__(self, link: PeerLink) -> None:
        self.link = link
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()
        self.last_rx_s = time.monotonic()
        #: When the Ping now in flight was written (None: none in flight).
        self.ping_sent_s: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        frame = encode_frame(Handshake(self.link.our_key))
        transport.write(frame)
        self.link.traffic.bytes_sent += len(frame)
        self.link.traffic.messages_sent += 1

    def data_received(self, data: bytes) -> None:
        now_s = self.last_rx_s = time.monotonic()
        try:
            payloads = self.framer.feed(data)
            for payload in payloads:
                self.link.traffic.bytes_received += len(payload) + 4
                self.link.traffic.messages_received += 1
                if not self.handshake.done():
                    self.handshake.set_result(_handshake_key(payload))
                elif payload_variant(payload) == PONG_INDEX and self.ping_sent_s is not None:
                    self.link.rtt.observe(now_s - self.ping_sent_s)
                    self.ping_sent_s = None
                # Anything else on our own outbound connection is ignored.
        except (DecodeError, ProtocolError) as exc:
            log.warning("peer %s sent a bad frame on our connection: %s", self.link.name, exc)
            if not self.handshake.done():
                self.handshake.set_exception(exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed before handshake: {exc}"))
        self.lost.set()


class PeerLink:
    """This node's outbound connection to peer ``name`` at ``host:port``, kept up by ``run``."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        our_key: bytes,
        expected_key: bytes | None,
        traffic: Traffic,
        on_up: Callable[[PeerLink], None],
        on_down: Callable[[PeerLink], None],
        ping_interval_s: float = PING_INTERVAL_S,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.our_key = our_key
        self.expected_key = expected_key
        self.traffic = traffic
        self._on_up = on_up
        self._on_down = on_down
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
        loop = asyncio.get_running_loop()
        backoff_s = self.reconnect_min_s
        while not self._closed:
            protocol: _OutboundProtocol | None = None
            try:
                _, connected = await asyncio.wait_for(
                    loop.create_connection(lambda: _OutboundProtocol(self), self.host, self.port),
                    HANDSHAKE_TIMEOUT_S,
                )
                protocol = connected
                key = await asyncio.wait_for(
                    asyncio.shield(protocol.handshake), HANDSHAKE_TIMEOUT_S
                )
                if self.expected_key is not None and key != self.expected_key:
                    raise ProtocolError(
                        f"handshake key {key.hex()[:16]} is not {self.name}'s "
                        f"{self.expected_key.hex()[:16]}"
                    )
            except (OSError, TimeoutError, ConnectionError, ProtocolError) as exc:
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.abort()
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
            assert protocol is not None
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
            if now_s - protocol.last_rx_s > DEAD_AFTER_S or (
                sent_s is not None and now_s - sent_s > DEAD_AFTER_S
            ):
                log.info("peer %s silent for %.0f s: reconnecting", self.name, DEAD_AFTER_S)
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
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def _reply(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)
            self.server.traffic.bytes_sent += len(frame)
            self.server.traffic.messages_sent += 1

    def data_received(self, data: bytes) -> None:
        traffic = self.server.traffic
        try:
            for payload in self.framer.feed(data):
                traffic.bytes_received += len(payload) + 4
                traffic.messages_received += 1
                variant = payload_variant(payload)
                if self.peer is None:
                    key = _handshake_key(payload)
                    self.peer = self.server.identify(key)
                    self._reply(self.server.handshake_frame)
                    self.server.on_hello(self.peer)
                elif variant == PING_INDEX:
                    self._reply(PONG_FRAME)
                elif variant != HANDSHAKE_INDEX:
                    self.server.deliver(self.peer, payload)
        except (DecodeError, ProtocolError) as exc:
            log.warning("bad frame from %s: %s; closing", self.peer or "unidentified peer", exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)


class P2PServer:
    """Accepts inbound P2P connections and delivers their frames as ``(peer, payload)``."""

    def __init__(
        self,
        our_key: bytes,
        names_by_key: dict[bytes, str],
        traffic: Traffic,
        deliver: Callable[[str, bytes], None],
        on_hello: Callable[[str], None] = lambda peer: None,
    ) -> None:
        self.handshake_frame = encode_frame(Handshake(our_key))
        #: Called with the peer's name when an inbound connection completes its handshake.
        self.on_hello = on_hello
        self.names_by_key = names_by_key
        self.traffic = traffic
        self.deliver = deliver
        self.connections: set[_InboundProtocol] = set()
        self._server: asyncio.Server | None = None

    def identify(self, key: bytes) -> str:
        return self.names_by_key.get(key, f"key:{key.hex()[:16]}")

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _InboundProtocol(self), host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
