"""``bitcell-sim load`` against real 7-node devnets (node processes + link emulator).

Each devnet runs from a copy of a shipped topology whose ports lie in a free block, with its
state folder under tmp, and is always taken down. First a devnet with rc3's 15 s rounds but a
500-transaction pool (so 100 TPS fills it in seconds, not minutes) shows "pool full"
rejections; then an rc3-fast devnet (3 s rounds, 400 funded accounts) takes 100 TPS for 60 s,
funded senders, two Locust workers, and the CLI's error paths. The 60 s run is longer than the
usual test bound on purpose: it is the acceptance run of the load test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.load import read_outputs
from bitcell_sim.topology import arrival_schedule, load_topology, parse_topology

pytestmark = [pytest.mark.real]

ROOT = Path(__file__).resolve().parent.parent
# Genesis 2 s after the nodes are up rather than the default 3 s.
QUICK_START = {"genesis_delay": "2 s"}


@pytest.fixture()
def devnet_of() -> Iterator[Any]:
    """Start devnets on demand; every one started is taken down at the end."""
    started: list[Path] = []

    def start(topology: Path, state_dir: Path) -> Devnet:
        started.append(state_dir)
        return up(topology, state_dir, timeout_s=60)

    try:
        yield start
    finally:
        for state_dir in started:
            down(state_dir)


def load_cli(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bitcell_sim", "load", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "COLUMNS": "200"},
        cwd=ROOT,
    )


@pytest.mark.timeout(240)
def test_small_pool_fills_at_100_tps_with_rc3_rounds(tmp_path: Path, devnet_of: Any) -> None:
    topology = relocated_copy(
        ROOT / "topologies" / "rc3.yaml", tmp_path / "rc3-small-pool.yaml",
        protocol={"tx_pool_capacity": 500}, devnet=QUICK_START,
    )  # fmt: skip
    devnet_of(topology, tmp_path / "state")
    result = load_cli(
        str(topology), "--state-dir", str(tmp_path / "state"), "--duration", "20",
        "--drain", "20 s", "--results-dir", str(tmp_path / "results"), "--run-id", "pool",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    records, summary, _ = read_outputs(tmp_path / "results" / "pool")
    frame = records.to_pandas()
    full = frame[frame.reject_reason == "pool full"]
    assert summary["rejected_by_reason"].get("pool full", 0) == len(full) > 0
    assert set(full.reject_code) == {-32603}
    assert summary["watch"]["pool_pending_max"] == 500
    # Every scheduled tx went out (one due just before the end may leave just after it).
    assert summary["submitted"] == summary["scheduled"] > 1800
    assert abs(summary["hold"]["submitted"] - summary["hold"]["scheduled"]) <= 2
    assert "pool full:" in result.stdout


@pytest.fixture(scope="module")
def fast_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """rc3-fast (3 s rounds) with 400 genesis-funded accounts, up for the tests below."""
    root = tmp_path_factory.mktemp("fast")
    topology = relocated_copy(
        ROOT / "topologies" / "rc3-fast.yaml", root / "rc3-fast.yaml",
        genesis={"funded_accounts": 400}, devnet=QUICK_START,
    )  # fmt: skip
    state_dir = root / "state"
    try:
        up(topology, state_dir, timeout_s=60)
        yield topology, state_dir
    finally:
        down(state_dir)


@pytest.mark.timeout(240)
def test_100_tps_for_60_s(tmp_path: Path, fast_devnet: tuple[Path, Path]) -> None:
    topology, state_dir = fast_devnet
    result = load_cli(
        str(topology), "--state-dir", str(state_dir), "--tps", "100", "--duration", "60",
        "--results-dir", str(tmp_path), "--run-id", "r100",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "r100"
    records, summary, meta = read_outputs(run_dir)
    hold = summary["hold"]
    assert summary["submitted"] == summary["scheduled"]  # every scheduled tx went out
    assert abs(hold["submitted"] - hold["scheduled"]) <= 2  # one due at the end may leave after
    assert abs(hold["scheduled"] - 6000) < 4 * 6000**0.5  # a Poisson schedule at 100 TPS
    assert summary["rejected"] == 0
    assert summary["confirmed"] >= 0.99 * summary["accepted"]
    assert meta["time_origin"] == "genesis"
    genesis_unix_s = Devnet.open(state_dir).meta.genesis_time_unix_s
    assert meta["origin_unix_s"] == pytest.approx(genesis_unix_s, abs=1e-5)
    # The summary's numbers are the records'.
    frame = records.to_pandas()
    start = summary["run_start_s"]
    in_hold = frame[(frame.submit_s >= start) & (frame.submit_s < start + 60)]
    assert summary["hold"]["submitted"] == len(in_hold)
    assert summary["submitted"] == len(frame)
    assert summary["accepted"] == int(frame.accepted.sum())
    assert summary["confirmed"] == int(frame.confirm_s.notna().sum())
    latency = (frame.confirm_s - frame.submit_s).dropna().to_numpy()
    for q in (50, 95, 99):
        assert summary["confirmation_latency_s"][f"p{q}"] == pytest.approx(
            np.percentile(latency, q)
        )
    assert set(frame.node) == set(parse_topology(topology.read_text()).nodes)
    assert (frame.height.dropna() > 0).all()
    # The model's schedule of the run folder's topology, tx for tx: same node, same gas price,
    # sent at its time since genesis (or whole rounds later), in the same phase of its round.
    replay = pq.read_table(run_dir / "load" / "replay.parquet").to_pandas()
    schedule = arrival_schedule(load_topology(run_dir / "topology.yaml"))
    assert replay["scheduled_s"].tolist() == schedule.submit_s.tolist()
    assert replay["gas_price"].tolist() == schedule.gas_price.tolist()
    sent = replay.merge(frame, on="tx_id", suffixes=("", "_record"))
    assert len(sent) == len(replay) and (sent["node"] == sent["node_record"]).all()
    assert (sent["submit_s"] - sent["due_s"]).quantile(0.99) < 0.05
    rounds = meta["replay_shift_s"] / 3.0
    assert rounds == pytest.approx(round(rounds), abs=1e-6) and rounds >= 0
    assert "achieved" in result.stdout and str(run_dir / "load") in result.stdout


@pytest.mark.timeout(120)
def test_funded_senders_track_nonces(tmp_path: Path, fast_devnet: tuple[Path, Path]) -> None:
    topology, state_dir = fast_devnet
    result = load_cli(
        str(topology), "--state-dir", str(state_dir), "--senders", "funded", "--tps", "40",
        "--duration", "15", "--results-dir", str(tmp_path), "--run-id", "funded",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    _, summary, _ = read_outputs(tmp_path / "funded")
    assert summary["rejected"] == 0 and summary["confirmed"] == summary["accepted"] > 500
    assert summary["not_submitted"] == {}


@pytest.mark.timeout(120)
def test_two_workers_via_the_cli(tmp_path: Path, fast_devnet: tuple[Path, Path]) -> None:
    topology, state_dir = fast_devnet
    result = load_cli(
        str(topology), "--state-dir", str(state_dir), "--workers", "2", "--tps", "50",
        "--duration", "10", "--results-dir", str(tmp_path), "--run-id", "two",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    records, summary, meta = read_outputs(tmp_path / "two")
    assert meta["mode"] == "master" and meta["processes"] == 2
    assert records.num_rows == summary["submitted"] == summary["scheduled"] > 400
    assert summary["end_reasons"] == {"drained": 2}


def test_cli_errors(tmp_path: Path, fast_devnet: tuple[Path, Path]) -> None:
    _, state_dir = fast_devnet
    result = load_cli(str(ROOT / "topologies" / "rc3-fast.yaml"), "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"no devnet in {tmp_path}" in result.stderr
    result = load_cli(str(ROOT / "topologies" / "rc3.yaml"), "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "runs network 'rc3-fast', not 'rc3'" in result.stderr


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_locust_ends_with_the_command(
    tmp_path: Path, fast_devnet: tuple[Path, Path], signum: int
) -> None:
    topology, state_dir = fast_devnet
    command = subprocess.Popen(
        [
            sys.executable, "-m", "bitcell_sim", "load", str(topology), "--state-dir",
            str(state_dir), "--workers", "1", "--tps", "20", "--duration", "60",
            "--results-dir", str(tmp_path), "--run-id", "signalled",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )  # fmt: skip
    locusts: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(locusts) < 2 and time.monotonic() < deadline:
            locusts = children_of(command.pid)
            time.sleep(0.2)
        assert len(locusts) == 2, "the master and its worker"
        time.sleep(3)  # under load
        os.kill(command.pid, signum)
        command.wait(30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in locusts) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in locusts)
    finally:
        if command.poll() is None:
            command.kill()
        for pid in locusts:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
