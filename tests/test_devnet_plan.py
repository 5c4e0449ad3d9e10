"""The devnet's port plan, state folder and process records (real sockets and processes)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitcell_sim.devnet import (
    ProcessRecord,
    StateDir,
    check_ports_free,
    cpu_seconds,
    is_running,
    link_specs,
    node_peers,
    plan_devnet,
    spawn,
    stop_processes,
)
from bitcell_sim.devnet.processes import start_ticks, tail_lines
from bitcell_sim.devnet.state import DevnetMeta
from bitcell_sim.errors import DevnetError
from bitcell_sim.topology import load_topology, parse_topology

TWO_REGIONS = """
general: {name: t, seed: 7}
regions:
  a: {rtt: {a: 2 ms, b: 100 ms}}
  b: {rtt: {b: 4 ms}}
links: {bandwidth: 10 Mbit}
nodes:
  n1: {region: a, rpc_port: 31001, p2p_port: 31002, metrics_port: 31003}
  n2: {region: a, rpc_port: 31004, p2p_port: 31005, metrics_port: 31006}
  n3: {region: b, rpc_port: 31007, p2p_port: 31008, metrics_port: 31009}
peers: [[n1, n2], [n2, n3]]
devnet: {netem_port_base: 31100, netem_control_port: 31099}
"""


def test_plan_has_one_listener_per_directed_link(rc3_fast_path: Path) -> None:
    topology = load_topology(rc3_fast_path)
    plan = plan_devnet(topology)
    assert len(plan.links) == 2 * len(topology.peer_edges) == 42
    ports = [link.listen_port for link in plan.links]
    assert ports == list(range(24000, 24042))
    link = plan.link("us-east-1", "ap-southeast-1")
    assert link.target_port == 9006
    assert link.params.latency_s == pytest.approx(0.212 / 2)
    assert plan.control_port == 23999
    peers = node_peers(plan, "us-east-1")
    assert set(peers) == set(topology.peer_map["us-east-1"])
    assert peers["ap-southeast-1"] == f"127.0.0.1:{link.listen_port}"


def test_links_file_specs_carry_the_topology_shaping() -> None:
    topology = parse_topology(TWO_REGIONS)
    plan = plan_devnet(topology)
    specs = {spec.name: spec for spec in link_specs(plan, topology.general.seed)}
    assert set(specs) == {"n1->n2", "n2->n1", "n2->n3", "n3->n2"}
    assert specs["n2->n3"].params.latency_s == pytest.approx(0.050)
    assert specs["n2->n3"].params.bandwidth_bps == 10e6
    assert specs["n2->n3"].target_port == 31008
    # One seed drives the jitter streams: same topology, same seeds; every link its own.
    again = {spec.name: spec.seed for spec in link_specs(plan, topology.general.seed)}
    assert again == {name: spec.seed for name, spec in specs.items()}
    assert len(set(again.values())) == 4
    other = {spec.name: spec.seed for spec in link_specs(plan, topology.general.seed + 1)}
    assert other != again


def test_plan_refuses_link_ports_that_hit_a_node_port() -> None:
    text = TWO_REGIONS.replace("netem_port_base: 31100", "netem_port_base: 31000")
    with pytest.raises(
        DevnetError,
        match=r"port 31001 is planned twice: for node n1 rpc_port and for emulator link n2->n1",
    ):
        plan_devnet(parse_topology(text))


def test_taken_port_is_named_with_its_owner() -> None:
    plan = plan_devnet(parse_topology(TWO_REGIONS))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 31008))
        blocker.listen(1)
        with pytest.raises(
            DevnetError, match=r"node n3 p2p_port: 127\.0\.0\.1:31008 already in use"
        ):
            check_ports_free(plan)
    check_ports_free(plan)


def test_state_folder_token_is_private_and_meta_round_trips(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "s")
    state.create()
    token = state.write_token()
    mode = stat.S_IMODE(state.token_path.stat().st_mode)
    assert mode == 0o600
    assert state.read_token() == token and len(token) >= 32
    assert state.write_token() != token  # a new devnet gets a new token
    meta = DevnetMeta(
        "x", "/t.yaml", "127.0.0.1", 12.5, "http://127.0.0.1:1", 3.0, "py", ("a", "b")
    )
    state.write_meta(meta)
    assert state.read_meta() == meta
    with state.lock(), state.lock():  # re-entrant on one object
        pass


def test_missing_devnet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match=r"no devnet in .*devnet up TOPOLOGY --state-dir"):
        StateDir(tmp_path).read_meta()


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[ProcessRecord]:
    record = spawn("sleeper", ["/bin/sleep", "30"], tmp_path / "sleeper.log")
    try:
        yield record
    finally:
        stop_processes([record], grace_s=1.0)


@pytest.mark.real
@pytest.mark.timeout(30)
def test_spawned_process_is_detached_and_recorded(sleeper: ProcessRecord) -> None:
    assert is_running(sleeper)
    assert os.getsid(sleeper.pid) == sleeper.pid  # its own session and process group
    assert os.getpgid(sleeper.pid) == sleeper.pid
    assert start_ticks(sleeper.pid) == sleeper.start_ticks
    assert cpu_seconds(sleeper) is not None
    assert ProcessRecord.from_dict(sleeper.to_dict()) == sleeper


@pytest.mark.real
@pytest.mark.timeout(30)
def test_a_reused_pid_is_never_signalled(sleeper: ProcessRecord) -> None:
    impostor = ProcessRecord(
        "old", sleeper.pid, sleeper.start_ticks - 1, (), "", time.time()
    )  # same pid, other start time: another program
    assert not is_running(impostor)
    assert stop_processes([impostor], grace_s=0.1) == []
    assert is_running(sleeper)


@pytest.mark.real
@pytest.mark.timeout(30)
def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    record = spawn("stubborn", [sys.executable, "-c", code], log)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in "".join(tail_lines(log)) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        assert stop_processes([record], grace_s=0.5) == [record]
        assert 0.4 < time.monotonic() - started < 5
        assert not is_running(record)
    finally:
        if is_running(record):
            os.kill(record.pid, signal.SIGKILL)


@pytest.mark.real
@pytest.mark.timeout(30)
def test_output_goes_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    record = spawn(
        "echo",
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        log,
    )
    deadline = time.monotonic() + 10
    while is_running(record) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tail_lines(log) == ["out", "err"]
    assert not is_running(record)


def test_spawning_a_missing_program_names_it(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match=r"ghost: cannot start /nonexistent/prog"):
        spawn("ghost", ["/nonexistent/prog"], tmp_path / "g.log")


def test_orchestration_does_not_load_the_node() -> None:
    code = (
        "import sys, bitcell_sim.devnet, bitcell_sim.faults; "
        "print([m for m in sys.modules if m.startswith('bitcell_sim.node')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out
