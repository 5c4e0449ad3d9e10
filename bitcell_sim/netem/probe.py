"""Probes that measure what an emulated link does, from both of its ends, on one host.

``ProbeServer`` is a loopback TCP server placed at a link's target: it timestamps every arrival
(``time.monotonic``, one clock for every process on the host) and can echo. ``measure_delays``
sends small messages through a link to it and returns one-way and round-trip delays; the
benchmark, the tests and a devnet self-check use them.
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
    """Send ``samples`` messages through the link at ``link_port`` to an echoing ``server``.

    Each message waits for its echo before the next is sent, so the server sees exactly one
    arrival per message and one-way delay is its arrival time minus the send time.
    """
    check_loopback(link_host, "link host")
    if samples < 1 or size_bytes < 1:
        raise NetemError(f"samples={samples!r} and size_bytes={size_bytes!r} must be >= 1")
    if not server.echo:
        raise NetemError("measure_delays needs an echoing probe server (echo=True)")
    before = server.accepted
    result: list[DelaySample] = []
    payload = b"p" * size_bytes
    with socket.create_connection((link_host, link_port), timeout=timeout_s) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        received_total = 0
        for _ in range(samples):
            sent_s = time.monotonic()
            sock.sendall(payload)
            got = 0
            while got < size_bytes:
                chunk = sock.recv(size_bytes - got)
                if not chunk:
                    raise NetemError("probe: the link closed the connection during a measurement")
                got += len(chunk)
            back_s = time.monotonic()
            received_total += size_bytes
            arrived_s = server.wait_for(received_total, timeout_s, connection=before)
            result.append(DelaySample(sent_s, arrived_s - sent_s, back_s - sent_s))
            if gap_s > 0:
                time.sleep(gap_s)
    return result
