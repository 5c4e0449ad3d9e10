"""The Emulator inside this process: faults by name, binding, back-pressure, broken targets.

These use real loopback sockets but start no process; the emulator process is tested in
test_netem_process.py.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from bitcell_sim.errors import NetemError
from bitcell_sim.loopback import free_port
from bitcell_sim.netem import Emulator, LinkParams, LinkSpec, UnknownLinkError


def _emulator() -> Emulator:
    return Emulator(
        [
            LinkSpec(
                name="a->b",
                listen_port=0,
                target_port=9,
                params=LinkParams(latency_s=0.02, bandwidth_bps=1e7),
            ),
            LinkSpec(name="b->a", listen_port=0, target_port=9),
        ]
    )


def test_faults_change_state_and_reset_restores() -> None:
    emulator = _emulator()
    (state,) = emulator.partition(["a->b"])
    assert state.partitioned and state.current.latency_s == 0.02
    assert not emulator.state(["b->a"])[0].partitioned

    states = emulator.set_extra_latency(None, 0.1)
    assert [s.current.extra_latency_s for s in states] == [0.1, 0.1]
    (state,) = emulator.add_extra_latency(["a->b"], 0.05)
    assert state.current.extra_latency_s == pytest.approx(0.15)
    assert state.current.base_delay_s == pytest.approx(0.17)
    (state,) = emulator.set_bandwidth(["a->b"], 5e6)
    assert state.current.bandwidth_bps == 5e6
    (state,) = emulator.set_bandwidth(["a->b"], 0)
    assert state.current.bandwidth_bps is None

    (state,) = emulator.heal(["a->b"])
    assert not state.partitioned and state.current.extra_latency_s == pytest.approx(0.15)
    states = emulator.reset()
    assert [s.current for s in states] == [s.configured for s in states]
    assert states[0].current == LinkParams(latency_s=0.02, bandwidth_bps=1e7)


def test_unknown_names_change_nothing() -> None:
    emulator = _emulator()
    with pytest.raises(
        UnknownLinkError, match=r"unknown link\(s\) 'nope'; known links: a->b, b->a"
    ):
        emulator.partition(["a->b", "nope"])
    assert not emulator.state(["a->b"])[0].partitioned
    with pytest.raises(NetemError, match=r"links=\[\] names no link"):
        emulator.heal([])
    with pytest.raises(NetemError, match=r"links='a->b' must be a list of link names"):
        emulator.partition("a->b")


def test_bad_changes_change_nothing() -> None:
    emulator = _emulator()
    emulator.set_extra_latency(["a->b"], 0.01)
    with pytest.raises(NetemError, match=r"link 'b->a': adding delta_s=-0\.005 .* negative"):
        emulator.add_extra_latency(None, -0.005)
    assert [s.current.extra_latency_s for s in emulator.state()] == [0.01, 0.0]
    with pytest.raises(NetemError, match=r"extra_latency_s=-1 must be a finite number >= 0"):
        emulator.set_extra_latency(None, -1)
    with pytest.raises(NetemError, match=r"bandwidth_bps=-3 must be a finite number >= 0"):
        emulator.set_bandwidth(["a->b"], -3)
    assert emulator.state(["a->b"])[0].current.bandwidth_bps == 1e7


@pytest.mark.timeout(20)
def test_port_in_use_names_link_and_port_and_releases_the_rest() -> None:
    first_port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy_port = squatter.getsockname()[1]
        emulator = Emulator(
            [
                LinkSpec(name="ok", listen_port=first_port, target_port=9),
                LinkSpec(name="clash", listen_port=busy_port, target_port=9),
            ]
        )
        message = (
            rf"link 'clash': cannot listen on 127\.0\.0\.1:{busy_port}: Address already in use"
        )
        with pytest.raises(NetemError, match=message):
            emulator.bind()
    # The first link's port was released: we can bind it ourselves.
    with socket.socket() as again:
        again.bind(("127.0.0.1", first_port))


async def _pump_without_reader(emulator: Emulator) -> tuple[int, int, int]:
    """Write as fast as possible through the link to a target that never reads."""
    await emulator.start()
    port = emulator.listen_ports()["slow"]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    block = b"x" * 65536
    written = 0
    max_queued = 0

    async def pump() -> None:
        nonlocal written
        while True:
            writer.write(block)
            await writer.drain()
            written += len(block)

    task = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while loop.time() < deadline:
        max_queued = max(max_queued, emulator.state()[0].counters.queued_bytes)
        await asyncio.sleep(0.002)
    task.cancel()
    delivered = emulator.state()[0].counters.bytes_forward
    writer.transport.abort()
    await emulator.stop()
    return written, max_queued, delivered


@pytest.mark.timeout(30)
def test_back_pressure_bounds_the_queue() -> None:
    limit = 256 * 1024
    with socket.socket() as target:  # listens, never accepts nor reads
        target.bind(("127.0.0.1", 0))
        target.listen(1)
        emulator = Emulator(
            [
                LinkSpec(
                    name="slow",
                    listen_port=0,
                    target_port=target.getsockname()[1],
                    params=LinkParams(latency_s=0.1, bandwidth_bps=40e6),
                )
            ],
            max_queued_bytes=limit,
        )
        written, max_queued, delivered = asyncio.run(_pump_without_reader(emulator))
    # One socket read (at most 256 KiB) can land on top of the limit before reading pauses.
    assert 0 < max_queued <= limit + 256 * 1024
    # 40 Mbit/s for 2 s is 10 MB at most; kernel buffers add a few MB. Without back-pressure
    # the writer would have pushed hundreds of MB into the emulator in that time.
    assert delivered <= 10_000_000
    assert written < 40_000_000


async def _connect_and_read(port: int) -> bytes | str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(100), timeout=5.0)
    except ConnectionResetError:
        return "reset"
    finally:
        writer.close()


async def _unreachable_target() -> tuple[bytes | str, int]:
    emulator = Emulator([LinkSpec(name="dead", listen_port=0, target_port=free_port())])
    await emulator.start()
    try:
        outcome = await _connect_and_read(emulator.listen_ports()["dead"])
        await asyncio.sleep(0.05)
        return outcome, emulator.state()[0].counters.upstream_failures
    finally:
        await emulator.stop()


@pytest.mark.timeout(20)
def test_unreachable_target_resets_the_client() -> None:
    outcome, failures = asyncio.run(_unreachable_target())
    assert outcome in ("reset", b"")
    assert failures == 1
