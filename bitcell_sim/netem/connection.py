"""One proxied TCP connection through a link: two shaped directions between two sockets.

``Connection`` pairs the accepted socket with one it opens to the target. Each ``Direction``
schedules the chunks it reads (``shaping.schedule_chunk``), keeps them in a FIFO of ``Queued``
pieces and delivers them with one ``loop.call_at`` timer at a time, pausing its source socket
when too much is queued or the destination cannot keep up. No task per chunk: callbacks only.
``Direction.take_untransmitted``/``rebook`` let the link re-serialize pieces that have not left
its transmitter yet when its bandwidth changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from bitcell_sim.netem.shaping import InOrderClock, Serializer, schedule_chunk, schedule_eof

if TYPE_CHECKING:
    from bitcell_sim.netem.link import Link

log = logging.getLogger(__name__)

# The selector waits in whole milliseconds, rounded up, so a timer fires 0-1 ms late. Arming it
# half a millisecond early and delivering what is due within half a millisecond centres that
# error on zero (+-0.5 ms) instead of adding 0.5 ms on average to every delay.
_TIMER_LEAD_S = 0.0005
_LINGER_RESET = struct.pack("ii", 1, 0)


class Queued(NamedTuple):
    """A scheduled piece: delivered at ``delivery_s``; it leaves the link's transmitter at
    ``departure_s`` and then travels ``delay_s``. ``data`` None is the half-close (EOF)."""

    delivery_s: float
    data: memoryview | None
    departure_s: float
    delay_s: float


def reset_transport(transport: asyncio.Transport) -> None:
    """Close ``transport`` with a TCP RST (SO_LINGER 0), as a broken path would look to a peer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class Direction:
    """One direction of a connection: read from ``src``, shape, write to ``dst`` in order.

    Reading from ``src`` is paused while any reason holds: "setup" (no target socket yet),
    "queue" (``high_water_bytes`` or more queued here) and "dst" (``dst``'s write buffer is full).
    """

    def __init__(self, connection: Connection, *, forward: bool, high_water_bytes: int) -> None:
        self.connection = connection
        self.forward = forward
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.clock = InOrderClock()
        self.queue: deque[Queued] = deque()
        self.queued_bytes = 0
        self.high_water_bytes = high_water_bytes
        self.low_water_bytes = high_water_bytes // 2
        self.eof_received = False
        self.eof_delivered = False
        self._timer: asyncio.TimerHandle | None = None
        self._pause_reasons: set[str] = set()

    @property
    def link(self) -> Link:
        return self.connection.link

    @property
    def serializer(self) -> Serializer:
        link = self.link
        return link.forward_serializer if self.forward else link.reverse_serializer

    def pause(self, reason: str) -> None:
        if not self._pause_reasons and self.src is not None and not self.src.is_closing():
            self.src.pause_reading()
        self._pause_reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.src is not None and not self.src.is_closing():
            self.src.resume_reading()

    def feed(self, data: bytes) -> None:
        """Schedule a chunk just read from ``src``."""
        if self.connection.closed or self.eof_received or not data:
            return
        link = self.link
        loop = self.connection.loop
        params = link.params
        pieces = schedule_chunk(
            loop.time(),
            len(data),
            params,
            self.serializer,
            self.clock,
            link.jitter.sample_s(params.jitter_s),
        )
        view = memoryview(data)
        delay_s = pieces[0].delivery_s - pieces[0].departure_s if pieces else 0.0
        for piece in pieces:
            self.queue.append(
                Queued(piece.delivery_s, view[piece.start : piece.end], piece.departure_s, delay_s)
            )
        self.queued_bytes += len(data)
        link.counters.queued_bytes += len(data)
        if self.forward:
            link.counters.chunks_forward += 1
        else:
            link.counters.chunks_reverse += 1
        self._arm()
        if self.queued_bytes >= self.high_water_bytes:
            self.pause("queue")

    def feed_eof(self) -> None:
        """Schedule the half-close the source sent, behind every byte before it."""
        if self.connection.closed or self.eof_received:
            return
        self.eof_received = True
        params = self.link.params
        now_s = self.connection.loop.time()
        departure_s = max(now_s, self.serializer.busy_until_s)
        delivery_s = schedule_eof(
            now_s,
            params,
            self.serializer,
            self.clock,
            self.link.jitter.sample_s(params.jitter_s),
        )
        self.queue.append(Queued(delivery_s, None, departure_s, delivery_s - departure_s))
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and self.queue and self.dst is not None:
            when_s = self.queue[0][0] - _TIMER_LEAD_S
            self._timer = self.connection.loop.call_at(when_s, self._flush)

    def _flush(self) -> None:
        self._timer = None
        dst = self.dst
        if self.connection.closed or dst is None:
            return
        due_s = self.connection.loop.time() + _TIMER_LEAD_S
        counters = self.link.counters
        delivered = 0
        while self.queue and self.queue[0].delivery_s <= due_s:
            data = self.queue.popleft().data
            if data is None:
                self.eof_delivered = True
                if not dst.is_closing() and dst.can_write_eof():
                    dst.write_eof()
                continue
            if not dst.is_closing():
                dst.write(data)
            delivered += len(data)
        self.queued_bytes -= delivered
        counters.queued_bytes -= delivered
        if self.forward:
            counters.bytes_forward += delivered
        else:
            counters.bytes_reverse += delivered
        if self.queued_bytes < self.low_water_bytes:
            self.resume("queue")
        if self.eof_delivered:
            self.connection.on_eof_delivered()
            return
        self._arm()

    def take_untransmitted(self, now_s: float) -> list[Queued]:
        """Remove and return the queued pieces that have not left the transmitter by
        ``now_s`` (a suffix of the FIFO); the in-order clock restarts from what stays."""
        kept = list(self.queue)
        split = next((i for i, q in enumerate(kept) if q.departure_s > now_s), len(kept))
        self.queue = deque(kept[:split])
        self.clock = InOrderClock()
        if self.queue:
            self.clock.deliver_at_s(self.queue[-1].delivery_s)
        return kept[split:]

    def rebook(self, piece: Queued, departure_s: float) -> None:
        """Queue ``piece`` again, now leaving the transmitter at ``departure_s``."""
        delivery_s = self.clock.deliver_at_s(departure_s + piece.delay_s)
        self.queue.append(Queued(delivery_s, piece.data, departure_s, piece.delay_s))

    def rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._arm()

    def discard(self) -> None:
        """Drop everything still queued (the path broke) and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.link.counters.queued_bytes -= self.queued_bytes
        self.queued_bytes = 0
        self.queue.clear()


class ClientProtocol(asyncio.Protocol):
    """The socket accepted on the link's listener."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.connection: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.connection = self.link.accept(transport)

    def data_received(self, data: bytes) -> None:
        if self.connection is not None:
            self.connection.forward.feed(data)

    def eof_received(self) -> bool:
        if self.connection is not None:
            self.connection.forward.feed_eof()
        return True  # keep the half-open socket: the answer may still be on its way

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.reverse.pause("dst")

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.reverse.resume("dst")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.side_lost(exc)


class TargetProtocol(asyncio.Protocol):
    """The socket the emulator opened to the link's target."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def data_received(self, data: bytes) -> None:
        self.connection.reverse.feed(data)

    def eof_received(self) -> bool:
        self.connection.reverse.feed_eof()
        return True

    def pause_writing(self) -> None:
        self.connection.forward.pause("dst")

    def resume_writing(self) -> None:
        self.connection.forward.resume("dst")

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.side_lost(exc)


class Connection:
    """An accepted socket, the socket opened to the target for it, and the two directions.

    It ends gracefully once both directions have delivered their EOF, or at once with a reset
    when either socket breaks, the link is partitioned, or the emulator stops.
    """

    def __init__(self, link: Link, client: asyncio.Transport, high_water_bytes: int) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.target: asyncio.Transport | None = None
        self.closed = False
        self.forward = Direction(self, forward=True, high_water_bytes=high_water_bytes)
        self.reverse = Direction(self, forward=False, high_water_bytes=high_water_bytes)
        self.forward.src = client
        self.reverse.dst = client
        self.forward.pause("setup")
        self._connect_task: asyncio.Task[None] | None = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        spec = self.link.spec
        try:
            transport, _ = await self.loop.create_connection(
                lambda: TargetProtocol(self), spec.target_host, spec.target_port
            )
        except OSError as exc:
            self._connect_task = None  # done: nothing left to cancel
            self.link.counters.upstream_failures += 1
            log.warning(
                "link %s: cannot reach target %s:%d: %s",
                spec.name,
                spec.target_host,
                spec.target_port,
                exc,
            )
            self.abort(reset=True)
            return
        self._connect_task = None
        assert isinstance(transport, asyncio.Transport)
        if self.closed:  # dropped (partition, client reset) while the connect was in flight
            reset_transport(transport)
            return
        self.target = transport
        self.forward.dst = transport
        self.reverse.src = transport
        self.forward._arm()
        self.forward.resume("setup")

    def on_eof_delivered(self) -> None:
        if self.forward.eof_delivered and self.reverse.eof_delivered:
            self._finish(reset=False)

    def side_lost(self, exc: Exception | None) -> None:
        """One socket went away: the connection cannot continue, so end the other one too."""
        if not self.closed:
            self.abort(reset=exc is not None)

    def abort(self, *, reset: bool) -> None:
        """End now, discarding anything still queued; ``reset`` sends RST rather than FIN."""
        if self.closed:
            return
        self.forward.discard()
        self.reverse.discard()
        for transport in (self.client, self.target):
            if transport is not None and not transport.is_closing():
                if reset:
                    reset_transport(transport)
                else:
                    transport.abort()
        self._finish(reset=reset)

    def _finish(self, *, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if not reset:
            # Graceful: close() flushes what is still in the socket write buffers first.
            for transport in (self.client, self.target):
                if transport is not None and not transport.is_closing():
                    transport.close()
        self.link.forget(self)
