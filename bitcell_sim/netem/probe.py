"""Probes that measure what an emulated link does, from both of its ends, on one host.

``ProbeServer`` is a loopback TCP server placed at a link's target: it timestamps every arrival
(``time.monotonic``, one clock for every process on the host) and can echo. ``DelayProbe`` and
``measure_delays`` send small messages through a link to it and return one-way and round-trip
delays (``DelaySample``); the benchmark, the tests and a devnet self-check use them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.params import check_loopback


@dataclass
class ProbeConnection:
    """What one accepted connection received: arrival times with sizes, and maybe the bytes."""

    arrivals: list[tuple[float, int]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False

    @property
    def size_bytes(self) -> int:
        return sum(size for _, size in self.arrivals)


class ProbeServer:
    """A threaded TCP server on ``host`` (port 0: the OS picks) recording what arrives.

    ``echo`` sends every byte back; ``keep_data`` keeps the received bytes (tests of ordering).
    """

    def __init__(
        self, *, host: str = "127.0.0.1", echo: bool = True, keep_data: bool = False
    ) -> None:
        self.host = check_loopback(host, "probe host")
        self.echo = echo
        self.keep_data = keep_data
        self.connections: list[ProbeConnection] = []
        self._lock = threading.Condition()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._peers: list[socket.socket] = []
        self._stopping = False

    @property
    def port(self) -> int:
        if self._sock is None:
            raise NetemError("probe server is not started")
        port: int = self._sock.getsockname()[1]
        return port

    def start(self) -> ProbeServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        sock.listen(64)
        self._sock = sock
        thread = threading.Thread(target=self._accept_loop, name="probe-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._sock is not None:
            # shutdown() wakes the accept() blocked in the other thread; close() alone does not.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with self._lock:
            peers = list(self._peers)
        for peer in peers:
            with contextlib.suppress(OSError):
                peer.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5.0)

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self.connections)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping:
            try:
                peer, _ = self._sock.accept()
            except OSError:
                return
            peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            record = ProbeConnection()
            with self._lock:
                self.connections.append(record)
                self._peers.append(peer)
                self._lock.notify_all()
            thread = threading.Thread(
                target=self._serve, args=(peer, record), name="probe-conn", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _serve(self, peer: socket.socket, record: ProbeConnection) -> None:
        with peer:
            while True:
                try:
                    data = peer.recv(262144)
                except OSError:
                    break
                now_s = time.monotonic()
                if not data:
                    break
                with self._lock:
                    record.arrivals.append((now_s, len(data)))
                    if self.keep_data:
                        record.data += data
                    self._lock.notify_all()
                if self.echo:
                    try:
                        peer.sendall(data)
                    except OSError:
                        break
        with self._lock:
            record.closed = True
            self._lock.notify_all()

    def wait_for(self, size_bytes: int, timeout_s: float, connection: int = -1) -> float:
        """When a connection had received ``size_bytes`` in all; NetemError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                count = len(self.connections)
                if -count <= connection < count:
                    record = self.connections[connection]
                    total = 0
                    for arrival_s, size in record.arrivals:
                        total += size
                        if total >= size_bytes:
                            return arrival_s
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    got = record.size_bytes if -count <= connection < count else 0
                    raise NetemError(
                        f"probe: {got} of {size_bytes} bytes arrived within {timeout_s} s"
                    )
                self._lock.wait(remaining_s)


@dataclass(frozen=True)
class DelaySample:
    """One probe message: when it was sent, its one-way and its round-trip delay in seconds."""

    sent_s: float
    one_way_s: float
    round_trip_s: float


class DelayProbe:
    """One connection through a link to an echoing ``ProbeServer``, measuring each message.

    Each message waits for its echo before the next is sent, so the server sees exactly one
    arrival per message and the one-way delay is that arrival time minus the send time.
    """

    def __init__(
        self,
        server: ProbeServer,
        link_port: int,
        *,
        link_host: str = "127.0.0.1",
        timeout_s: float = 10.0,
    ) -> None:
        check_loopback(link_host, "link host")
        if not server.echo:
            raise NetemError("a delay probe needs an echoing probe server (echo=True)")
        self.server = server
        self.timeout_s = timeout_s
        self._index = server.accepted
        self._sent_bytes = 0
        self._sock = socket.create_connection((link_host, link_port), timeout=timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def sock(self) -> socket.socket:
        """The probe's connection (e.g. to watch it being cut by a partition)."""
        return self._sock

    def measure(
        self, samples: int = 10, *, size_bytes: int = 64, gap_s: float = 0.0
    ) -> list[DelaySample]:
        """Send ``samples`` messages of ``size_bytes``, one at a time, ``gap_s`` apart."""
        if samples < 1 or size_bytes < 1:
            raise NetemError(f"samples={samples!r} and size_bytes={size_bytes!r} must be >= 1")
        payload = b"p" * size_bytes
        result: list[DelaySample] = []
        for _ in range(samples):
            sent_s = time.monotonic()
            self._sock.sendall(payload)
            got = 0
            while got < size_bytes:
                chunk = self._sock.recv(size_bytes - got)
                if not chunk:
                    raise NetemError("probe: the link closed the connection during a measurement")
                got += len(chunk)
            back_s = time.monotonic()
            self._sent_bytes += size_bytes
            arrived_s = self.server.wait_for(self._sent_bytes, self.timeout_s, self._index)
            result.append(DelaySample(sent_s, arrived_s - sent_s, back_s - sent_s))
            if gap_s > 0:
                time.sleep(gap_s)
        return result

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DelayProbe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def measure_delays(
    server: ProbeServer,
    link_port: int,
    *,
    samples: int = 10,
    size_bytes: int = 64,
    gap_s: float = 0.0,
    timeout_s: float = 10.0,
    link_host: str = "127.0.0.1",
) -> list[DelaySample]:
    """Send ``samples`` messages on a new connection through the link at ``link_port``."""
    with DelayProbe(server, link_port, link_host=link_host, timeout_s=timeout_s) as probe:
        return probe.measure(samples, size_bytes=size_bytes, gap_s=gap_s)
