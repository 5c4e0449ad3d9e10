"""The emulator process, measured from both ends: latency, bandwidth, order, faults, shutdown.

A module fixture starts one ``python -m bitcell_sim.netem`` child (by pid, stopped in teardown)
in front of an echoing ``ProbeServer``; each test uses its own link so faults do not leak.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bitcell_sim.errors import NetemError
from bitcell_sim.netem import (
    DelayProbe,
    EmulatorProcess,
    LinkParams,
    LinkSpec,
    NetemClient,
    ProbeServer,
    measure_delays,
    write_links_file,
)

pytestmark = [pytest.mark.real, pytest.mark.timeout(60)]

TOKEN = "test-token-3f9c2a"

LINKS = {
    "lat40": LinkParams(latency_s=0.040),
    "lat100": LinkParams(latency_s=0.100),
    "bw10m": LinkParams(bandwidth_bps=10e6),
    "jitter": LinkParams(latency_s=0.020, jitter_s=0.010, jitter_distribution="normal"),
    "cut": LinkParams(latency_s=0.005),
    "live": LinkParams(latency_s=0.010),
    "authz": LinkParams(latency_s=0.001),
    "eof": LinkParams(latency_s=0.030),
    "slowed": LinkParams(latency_s=0.010, bandwidth_bps=100e6),
}


@dataclass
class Running:
    probe: ProbeServer
    emulator: EmulatorProcess
    client: NetemClient

    def port(self, name: str) -> int:
        return self.emulator.listen_ports[name]


def _within(measured_s: float, expected_s: float) -> bool:
    """The brief's accuracy: 10 % of the configured value or 5 ms, whichever is larger."""
    return abs(measured_s - expected_s) <= max(0.10 * expected_s, 0.005)


def _write_token(directory: Path, token: str = TOKEN) -> Path:
    path = directory / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("netem")
    with ProbeServer(echo=True, keep_data=True) as probe:
        specs = [
            LinkSpec(name=name, listen_port=0, target_port=probe.port, params=params, seed=i)
            for i, (name, params) in enumerate(LINKS.items())
        ]
        links_file = write_links_file(directory / "links.json", specs)
        emulator = EmulatorProcess.start(
            links_file, _write_token(directory), log_file=directory / "netem.log"
        )
        try:
            with NetemClient(emulator.control_url, TOKEN) as client:
                yield Running(probe, emulator, client)
        finally:
            assert emulator.stop() == 0


def test_ready_line_and_health(running: Running) -> None:
    assert set(running.emulator.listen_ports) == set(LINKS)
    assert all(port > 0 for port in running.emulator.listen_ports.values())
    health = running.client.health()
    assert health["status"] == "ok" and health["links"] == len(LINKS)
    state = running.client.link("lat40")
    assert state.listen_port == running.port("lat40")
    assert state.target_port == running.probe.port
    assert state.configured == state.current == LINKS["lat40"]


@pytest.mark.parametrize(("name", "latency_s"), [("lat40", 0.040), ("lat100", 0.100)])
def test_one_way_latency_matches_configuration(
    running: Running, name: str, latency_s: float
) -> None:
    samples = measure_delays(running.probe, running.port(name), samples=8)
    one_way_s = statistics.median(s.one_way_s for s in samples)
    round_trip_s = statistics.median(s.round_trip_s for s in samples)
    assert _within(one_way_s, latency_s), one_way_s
    # The answer comes back over the same link, with the same parameters.
    assert _within(round_trip_s, 2 * latency_s), round_trip_s
    counters = running.client.link(name).counters
    assert counters.bytes_forward >= 8 * 64 and counters.chunks_forward >= 8


def test_200kb_over_10mbit_takes_160ms(running: Running) -> None:
    size = 200_000
    durations_s = []
    for _ in range(3):
        index = running.probe.accepted  # the probe's record of the connection made next
        with socket.create_connection(("127.0.0.1", running.port("bw10m"))) as sock:
            # Let the connection through the emulator first: time the transfer only.
            sock.sendall(b"h")
            running.probe.wait_for(1, 5.0, index)
            sock.recv(1)
            start_s = time.monotonic()
            sock.sendall(b"x" * size)
            arrived_s = running.probe.wait_for(size + 1, 10.0, index)
            durations_s.append(arrived_s - start_s)
            sock.shutdown(socket.SHUT_WR)
        time.sleep(0.4)  # the echo drains over the same 10 Mbit link before the next round
    median_s = statistics.median(durations_s)
    assert 0.160 * 0.85 <= median_s <= 0.160 * 1.15, durations_s


def test_byte_order_is_preserved_under_jitter(running: Running) -> None:
    port = running.port("jitter")
    # Jitter is really on: one-way delays vary by milliseconds.
    spread_s = statistics.pstdev(
        s.one_way_s for s in measure_delays(running.probe, port, samples=30)
    )
    assert spread_s > 0.003, spread_s

    stream = np.arange(100_000, dtype=">u4").tobytes()  # 400 kB of numbered words
    echoed = bytearray()
    rng = np.random.default_rng(11)
    index = running.probe.accepted
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def read_echo() -> None:
            while len(echoed) < len(stream):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                echoed.extend(chunk)

        reader = threading.Thread(target=read_echo, daemon=True)
        reader.start()
        offset = 0
        while offset < len(stream):
            size = int(rng.integers(1, 3000))  # many small sends: many jitter draws
            sock.sendall(stream[offset : offset + size])
            offset += size
            if rng.random() < 0.05:
                time.sleep(0.002)
        running.probe.wait_for(len(stream), 20.0, index)
        reader.join(timeout=20)
    received = bytes(running.probe.connections[index].data)
    assert received == stream
    assert bytes(echoed) == stream
    assert running.client.link("jitter").counters.chunks_forward > 30


def _is_cut(sock: socket.socket) -> bool:
    """True when the peer closed or reset the connection within a few seconds."""
    sock.settimeout(5.0)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _fresh_connection_is_cut(port: int) -> bool:
    """A refused connection: reset during connect() (the reset can beat the handshake's return
    on loopback) or right after it."""
    try:
        fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return True
    with fresh:
        return _is_cut(fresh)


def test_partition_drops_refuses_and_heals(running: Running) -> None:
    port = running.port("cut")
    running.client.heal(["cut"])  # a rerun starts healed; the emulator is shared by the module
    before = running.client.link("cut").counters
    with DelayProbe(running.probe, port) as probe:
        assert len(probe.measure(2)) == 2
        accepted = running.probe.accepted
        (state,) = running.client.partition(["cut"])
        assert state.partitioned
        assert _is_cut(probe.sock)

    assert _fresh_connection_is_cut(port)
    time.sleep(0.1)
    assert running.probe.accepted == accepted  # nothing reached the target
    state = running.client.link("cut")
    assert state.partitioned
    assert state.counters.connections_dropped == before.connections_dropped + 1
    assert state.counters.connections_refused == before.connections_refused + 1
    assert running.client.health()["partitioned"] == ["cut"]
    other = running.client.link("lat40")
    assert not other.partitioned

    (state,) = running.client.heal(["cut"])
    assert not state.partitioned
    # The median, as elsewhere: one sample can catch a busy machine's scheduling delay.
    samples = measure_delays(running.probe, port, samples=5)
    assert _within(statistics.median(s.one_way_s for s in samples), 0.005)
    assert running.client.health()["partitioned"] == []


def _median_one_way_s(probe: DelayProbe) -> float:
    return statistics.median(s.one_way_s for s in probe.measure(5))


def test_extra_latency_applies_live_and_is_removed(running: Running) -> None:
    with DelayProbe(running.probe, running.port("live")) as probe:
        assert _within(_median_one_way_s(probe), 0.010)
        (state,) = running.client.set_extra_latency(["live"], 0.050)
        assert state.current.extra_latency_s == 0.05
        assert _within(_median_one_way_s(probe), 0.060)  # same, already open connection
        running.client.add_extra_latency(["live"], 0.030)
        assert _within(_median_one_way_s(probe), 0.090)
        (state,) = running.client.set_extra_latency(["live"], 0.0)
        assert state.current == state.configured
        assert _within(_median_one_way_s(probe), 0.010)


def test_bandwidth_changes_live_and_resets(running: Running) -> None:
    size = 100_000
    index = running.probe.accepted
    with socket.create_connection(("127.0.0.1", running.port("live"))) as sock:
        sock.sendall(b"h")
        running.probe.wait_for(1, 5.0, index)
        (state,) = running.client.set_bandwidth(["live"], 4e6)
        assert state.current.bandwidth_bps == 4e6
        start_s = time.monotonic()
        sock.sendall(b"y" * size)
        took_s = running.probe.wait_for(size + 1, 10.0, index) - start_s
        # 100 kB at 4 Mbit/s is 200 ms on the wire, plus 10 ms of latency.
        assert 0.21 * 0.85 <= took_s <= 0.21 * 1.15, took_s
        (state,) = running.client.reset(["live"])
        assert state.current.bandwidth_bps is None
        time.sleep(0.5)  # the echo drains at 4 Mbit/s; then the link is unlimited again
        start_s = time.monotonic()
        sock.sendall(b"z" * size)
        took_s = running.probe.wait_for(2 * size + 1, 10.0, index) - start_s
        assert took_s < 0.05, took_s


@pytest.mark.parametrize("restore", ["reset", "set_bandwidth"])
def test_restoring_a_slowed_link_delivers_what_waited_at_once(
    running: Running, restore: str
) -> None:
    size = 20_000
    index = running.probe.accepted
    with socket.create_connection(("127.0.0.1", running.port("slowed"))) as sock:
        sock.sendall(b"h")
        running.probe.wait_for(1, 5.0, index)
        running.client.set_bandwidth(["slowed"], 1)  # 1 bit/s: 20 kB would take 44 hours
        sock.sendall(b"y" * size)
        time.sleep(1.0)
        assert running.probe.connections[index].size_bytes == 1  # stuck in the transmitter
        start_s = time.monotonic()
        if restore == "reset":
            (state,) = running.client.reset(["slowed"])
        else:
            (state,) = running.client.set_bandwidth(["slowed"], 100e6)
        assert state.current == LINKS["slowed"]
        took_s = running.probe.wait_for(size + 1, 5.0, index) - start_s
        assert took_s < 0.25, took_s  # 10 ms of latency, 1.6 ms on the wire
        # and the link carries new bytes at its configured rate again
        start_s = time.monotonic()
        sock.sendall(b"z" * size)
        took_s = running.probe.wait_for(2 * size + 1, 5.0, index) - start_s
        assert took_s < 0.1, took_s


def test_half_close_is_delivered_after_the_data(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.port("eof")), timeout=5) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)  # the probe echoes, sees EOF and closes
        start_s = time.monotonic()
        echoed = b""
        while chunk := sock.recv(100):
            echoed += chunk
        took_s = time.monotonic() - start_s
    assert echoed == b"last words"
    assert _within(took_s, 0.060), took_s
    time.sleep(0.1)
    assert running.client.link("eof").counters.connections_active == 0


def test_control_api_requires_the_token(running: Running) -> None:
    import httpx

    url = running.emulator.control_url
    body = {"links": ["authz"]}
    with httpx.Client(base_url=url, trust_env=False, timeout=5) as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            assert http.get("/health", headers=headers).status_code == 401
            assert http.get("/links", headers=headers).status_code == 401
            response = http.post("/links/partition", json=body, headers=headers)
            assert response.status_code == 401
            assert response.json() == {"error": "missing or wrong bearer token"}
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            response = http.post(
                "/links/latency", json={**body, "extra_latency_s": 1.0}, headers=headers
            )
            assert response.status_code == 401
    state = running.client.link("authz")
    assert state.current == state.configured  # nothing changed

    with (
        NetemClient(url, "wrong") as intruder,
        pytest.raises(NetemError, match=r"GET /links failed with HTTP 401: missing or wrong"),
    ):
        intruder.links()


def test_control_api_errors_are_clear(running: Running) -> None:
    client = running.client
    with pytest.raises(NetemError, match=r"HTTP 404: unknown link\(s\) 'nope'; known links: "):
        client.partition(["authz", "nope"])
    assert not client.link("authz").partitioned  # all names are checked before any change
    with pytest.raises(NetemError, match=r"unknown link 'nope'; known links: authz, bw10m"):
        client.link("nope")
    with pytest.raises(NetemError, match=r"HTTP 400: extra_latency_s=-0\.5 must be a finite"):
        client.set_extra_latency(["authz"], -0.5)
    with pytest.raises(NetemError, match=r"HTTP 400: bandwidth_bps='fast' must be a finite"):
        client.set_bandwidth(["authz"], "fast")  # type: ignore[arg-type]
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=client.control_url, trust_env=False, timeout=5) as http:
        response = http.post(
            "/links/latency",
            json={"links": ["authz"], "extra_latency_s": 0.1, "add_latency_s": 0.1},
            headers=headers,
        )
        assert response.status_code == 400
        assert "exactly one of extra_latency_s (set) or add_latency_s" in response.json()["error"]
        response = http.post("/links/heal", content=b"{oops", headers=headers)
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["error"]
        response = http.post("/links/heal", json={"links": "authz"}, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] == "links='authz' must be a list of link names or \"all\""
        # never a 500: bytes that are not UTF-8, nesting deeper than the parser, infinities
        for body, message in (
            (b'{"links": ["\xff\xfe"]}', "not UTF-8"),
            (b'{"links": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
            (b'{"links": ["authz"], "extra_latency_s": 1e400}', "must be a finite number"),
            (b'{"links": ["authz"], "extra_latency_s": NaN}', "must be a finite number"),
            (b" " * (2 * 1024 * 1024), "request body over"),
        ):
            response = http.post("/links/latency", content=body, headers=headers)
            assert response.status_code == 400, body[:40]
            assert message in response.json()["error"]
    assert client.link("authz").current == LINKS["authz"]


def test_a_token_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    with ProbeServer() as probe:
        links = write_links_file(
            tmp_path / "links.json", [LinkSpec(name="x", listen_port=0, target_port=probe.port)]
        )
        token = _write_token(tmp_path)
        token.chmod(0o644)
        emulator = EmulatorProcess.start(links, token, log_file=tmp_path / "netem.log")
        assert emulator.stop() == 0
    log = (tmp_path / "netem.log").read_text()
    assert "WARNING" in log and "is readable by others (mode 0644)" in log


def test_client_reports_an_unreachable_emulator() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        NetemClient(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2) as client,
        pytest.raises(NetemError, match=rf"control API at http://127\.0\.0\.1:{port} unreachable"),
    ):
        client.health()


def test_sigterm_closes_connections_and_exits_zero(tmp_path: Path) -> None:
    with ProbeServer() as probe:
        links = write_links_file(
            tmp_path / "links.json",
            [LinkSpec(name="x", listen_port=0, target_port=probe.port)],
        )
        emulator = EmulatorProcess.start(links, _write_token(tmp_path))
        try:
            sock = socket.create_connection(("127.0.0.1", emulator.listen_ports["x"]), timeout=5)
            with sock:
                sock.sendall(b"ping")
                assert sock.recv(4) == b"ping"
                os.kill(emulator.pid, signal.SIGTERM)
                assert emulator.process.wait(timeout=10) == 0
                assert _is_cut(sock)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", emulator.listen_ports["x"]), timeout=5)
        finally:
            emulator.stop()
