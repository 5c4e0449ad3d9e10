"""What the link emulator costs: one link's throughput and the delay it adds at latency 0.

Starts the real emulator process with unshaped links (latency 0, unlimited bandwidth) in front
of ``ProbeServer`` sinks and measures, directly and through the emulator: bulk MB/s, small
one-way messages/s, ping-pong round trips/s, median one-way delay; and bulk MB/s over a 50 ms
link, which the per-direction queue bound limits; and the delay measured on a 40 ms link.
Median of ``--repeats``.
Run: ``.venv/bin/python benchmarks/bench_netem.py [--mb 64] [--messages 20000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bitcell_sim.netem import (
    DEFAULT_MAX_QUEUED_BYTES,
    EmulatorProcess,
    LinkParams,
    LinkSpec,
    ProbeServer,
    measure_delays,
    write_links_file,
)


def bulk_mb_per_s(sink: ProbeServer, port: int, size_mb: int) -> float:
    """Push ``size_mb`` MB through ``port`` to a non-echoing sink; MB/s until the last byte."""
    block = b"b" * (1 << 20)
    index = sink.accepted
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start_s = time.monotonic()
        for _ in range(size_mb):
            sock.sendall(block)
        done_s = sink.wait_for(size_mb << 20, 120.0, index)
    return size_mb * (1 << 20) / 1e6 / (done_s - start_s)


def messages_per_s(sink: ProbeServer, port: int, count: int, size_bytes: int = 256) -> float:
    """``count`` one-way messages of ``size_bytes``, one send() each; delivered per second."""
    message = b"m" * size_bytes
    index = sink.accepted
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start_s = time.monotonic()
        for _ in range(count):
            sock.sendall(message)
        done_s = sink.wait_for(count * size_bytes, 120.0, index)
    return count / (done_s - start_s)


def round_trips_per_s(port: int, count: int, size_bytes: int = 64) -> float:
    """Ping-pong with an echo server, one message outstanding; round trips per second."""
    message = b"r" * size_bytes
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start_s = time.monotonic()
        for _ in range(count):
            sock.sendall(message)
            got = 0
            while got < size_bytes:
                got += len(sock.recv(size_bytes - got))
    return count / (time.monotonic() - start_s)


def one_way_ms(echo: ProbeServer, port: int, samples: int) -> float:
    """Median one-way delay of 64-byte messages, in ms."""
    delays = measure_delays(echo, port, samples=samples, gap_s=0.001)
    return statistics.median(d.one_way_s for d in delays) * 1e3


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    measure()  # warm-up: connection setup paths, caches
    return statistics.median(measure() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="MB per bulk transfer")
    parser.add_argument("--messages", type=int, default=20000, help="messages per run")
    parser.add_argument("--round-trips", type=int, default=2000, help="round trips per run")
    parser.add_argument("--samples", type=int, default=200, help="delay samples per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure")
    args = parser.parse_args()

    with (
        ProbeServer(echo=False) as sink,
        ProbeServer(echo=True) as echo,
        tempfile.TemporaryDirectory() as directory,
    ):
        links = write_links_file(
            Path(directory) / "links.json",
            [
                LinkSpec(name="to-sink", listen_port=0, target_port=sink.port),
                LinkSpec(name="to-echo", listen_port=0, target_port=echo.port),
                LinkSpec(
                    name="to-sink-50ms",
                    listen_port=0,
                    target_port=sink.port,
                    params=LinkParams(latency_s=0.05),
                ),
                LinkSpec(
                    name="to-echo-40ms",
                    listen_port=0,
                    target_port=echo.port,
                    params=LinkParams(latency_s=0.04),
                ),
            ],
        )
        token = Path(directory) / "token"
        token.write_text(os.urandom(16).hex())
        with EmulatorProcess.start(links, token) as emulator:
            ports = emulator.listen_ports
            rows = []
            for label, sink_port, echo_port in (
                ("direct (no emulator)", sink.port, echo.port),
                ("through the emulator", ports["to-sink"], ports["to-echo"]),
            ):
                rows.append(
                    (
                        label,
                        median_of(
                            args.repeats, lambda p=sink_port: bulk_mb_per_s(sink, p, args.mb)
                        ),
                        median_of(
                            args.repeats,
                            lambda p=sink_port: messages_per_s(sink, p, args.messages),
                        ),
                        median_of(
                            args.repeats, lambda p=echo_port: round_trips_per_s(p, args.round_trips)
                        ),
                        median_of(
                            args.repeats, lambda p=echo_port: one_way_ms(echo, p, args.samples)
                        ),
                    )
                )
            far_port = ports["to-sink-50ms"]
            far_mb_s = median_of(args.repeats, lambda: bulk_mb_per_s(sink, far_port, args.mb))
            slow_port = ports["to-echo-40ms"]
            slow_samples = max(5, args.samples // 10)
            slow_ms = median_of(args.repeats, lambda: one_way_ms(echo, slow_port, slow_samples))

    print(
        f"netem benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, median of {args.repeats} runs "
        f"({args.mb} MB bulk, {args.messages} x 256 B messages, {args.round_trips} x 64 B "
        f"round trips, {args.samples} delay samples)"
    )
    print()
    print("| path | bulk MB/s | 256 B messages/s | 64 B round trips/s | one-way delay ms |")
    print("|---|---:|---:|---:|---:|")
    for label, mb_s, msg_s, rtt_s, delay_ms in rows:
        print(f"| {label} | {mb_s:.0f} | {msg_s:.0f} | {rtt_s:.0f} | {delay_ms:.3f} |")
    overhead_ms = rows[1][4] - rows[0][4]
    print()
    print(f"added one-way delay at latency 0: {overhead_ms:.3f} ms")
    print(f"one-way delay through a 40 ms link: {slow_ms:.3f} ms ({slow_ms - 40:+.3f} ms)")
    window_mb_s = DEFAULT_MAX_QUEUED_BYTES / 0.05 / 1e6
    print(
        f"bulk through a 50 ms link: {far_mb_s:.0f} MB/s "
        f"(bound: {DEFAULT_MAX_QUEUED_BYTES >> 20} MiB queue / 50 ms = {window_mb_s:.0f} MB/s)"
    )


if __name__ == "__main__":
    main()
