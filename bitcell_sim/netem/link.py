"""A running link: its listening socket, the parameters in force, its connections and counters.

``Link`` binds the listener of one ``LinkSpec`` (``bind``, synchronous, so a busy port fails
before anything is served), accepts connections (``accept``: forward them, or reset them while
partitioned), applies new ``LinkParams`` live (``apply``: a new bandwidth also re-books the
bytes still waiting for the transmitter) and reports a ``LinkState``.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import numpy as np

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.connection import (
    ClientProtocol,
    Connection,
    Direction,
    Queued,
    reset_transport,
)
from bitcell_sim.netem.params import LinkSpec
from bitcell_sim.netem.shaping import JitterSampler, Serializer
from bitcell_sim.netem.state import LinkCounters, LinkState
from bitcell_sim.topology.links import LinkParams

log = logging.getLogger(__name__)

_LISTEN_BACKLOG = 128


class Link:
    """One directed link of a running emulator.

    The two ``Serializer`` are shared by every connection on the link, so connections compete
    for ``bandwidth_bps`` as they would on one physical path. Jitter is drawn from one
    Generator seeded with ``spec.seed``.
    """

    def __init__(self, spec: LinkSpec, *, max_queued_bytes: int) -> None:
        if max_queued_bytes < 1:
            raise NetemError(f"max_queued_bytes={max_queued_bytes!r} must be >= 1")
        self.spec = spec
        self.params: LinkParams = spec.params
        self.max_queued_bytes = max_queued_bytes
        self.counters = LinkCounters()
        self.forward_serializer = Serializer()
        self.reverse_serializer = Serializer()
        self.jitter = JitterSampler(
            spec.params.jitter_distribution, np.random.default_rng(spec.seed)
        )
        self.connections: set[Connection] = set()
        self.listen_port = spec.listen_port
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self) -> None:
        """Bind and listen on the link's address; raise NetemError naming the link and port."""
        if self._sock is not None:
            return
        host, port = self.spec.listen_host, self.spec.listen_port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Lets a restarted emulator reuse ports still in TIME_WAIT; never a port in use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(_LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise NetemError(
                f"link {self.name!r}: cannot listen on {host}:{port}: {reason}"
            ) from None
        self._sock = sock
        self.listen_port = sock.getsockname()[1]

    def close_unserved(self) -> None:
        """Release a socket bound by ``bind`` that is not being served yet."""
        if self._server is None and self._sock is not None:
            self._sock.close()
            self._sock = None

    async def serve(self) -> None:
        """Start accepting connections on the bound socket."""
        self.bind()
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ClientProtocol(self), sock=self._sock)

    def accept(self, transport: asyncio.Transport) -> Connection | None:
        """Take a freshly accepted socket: forward it, or reset it if the link is partitioned."""
        if self.params.partitioned:
            self.counters.connections_refused += 1
            reset_transport(transport)
            return None
        connection = Connection(self, transport, self.max_queued_bytes)
        self.connections.add(connection)
        self.counters.connections_total += 1
        self.counters.connections_active += 1
        return connection

    def forget(self, connection: Connection) -> None:
        """Called by a connection once it has ended."""
        if connection in self.connections:
            self.connections.discard(connection)
            self.counters.connections_active -= 1

    def apply(self, params: LinkParams) -> None:
        """Put ``params`` in force now; a partition resets every open connection."""
        if params.jitter_distribution != self.spec.params.jitter_distribution:
            raise NetemError(
                f"link {self.name!r}: jitter_distribution cannot change live "
                f"({self.spec.params.jitter_distribution!r} -> {params.jitter_distribution!r})"
            )
        starts_partition = params.partitioned and not self.params.partitioned
        new_bandwidth = params.bandwidth_bps != self.params.bandwidth_bps
        self.params = params
        if starts_partition:
            dropped = len(self.connections)
            for connection in list(self.connections):
                connection.abort(reset=True)
            self.counters.connections_dropped += dropped
            # What was queued is gone with the connections: the wire is idle again.
            self.forward_serializer = Serializer()
            self.reverse_serializer = Serializer()
            log.info("link %s: partitioned, %d connection(s) reset", self.name, dropped)
        elif new_bandwidth:
            self._rebook()

    def _rebook(self) -> None:
        """Serialize again, at the bandwidth now in force, every byte that has not left the
        transmitter yet (a slowed link restores at once), keeping the order in which the
        transmitter would have sent them across connections."""
        if not self.connections:
            # Nothing waits: the transmitter is free (bytes booked for closed connections
            # must not hold up the next one).
            self.forward_serializer = Serializer()
            self.reverse_serializer = Serializer()
            return
        now_s = asyncio.get_running_loop().time()
        for forward in (True, False):
            serializer = Serializer()
            waiting: list[tuple[float, int, Direction, Queued]] = []
            for connection in self.connections:
                direction = connection.forward if forward else connection.reverse
                for piece in direction.take_untransmitted(now_s):
                    waiting.append((piece.departure_s, len(waiting), direction, piece))
            waiting.sort(key=lambda item: (item[0], item[1]))
            for _, _, direction, piece in waiting:
                size = 0 if piece.data is None else len(piece.data)
                direction.rebook(piece, serializer.depart_s(now_s, size, self.params.bandwidth_bps))
            if forward:
                self.forward_serializer = serializer
            else:
                self.reverse_serializer = serializer
            for connection in self.connections:
                (connection.forward if forward else connection.reverse).rearm()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
        self._sock = None
        for connection in list(self.connections):
            connection.abort(reset=False)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def state(self) -> LinkState:
        """A snapshot of the link now."""
        spec = self.spec
        return LinkState(
            name=spec.name,
            listen_host=spec.listen_host,
            listen_port=self.listen_port,
            target_host=spec.target_host,
            target_port=spec.target_port,
            configured=spec.params,
            current=self.params,
            counters=LinkCounters(**self.counters.to_dict()),
        )
