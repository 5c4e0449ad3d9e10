"""The locustfile in real Locust processes against a real JSON-RPC sink process.

Each test starts ``python -m bitcell_sim.load.sink`` on a free port and Locust as subprocesses,
bounded in time, and stops exactly those processes by pid: an open-loop rate held against a slow
node, the topology's schedule replayed per node with one node slow, Locust's ``-t``/``-u``/``-r``,
a stalled chain ending the run with exit 3, master + worker records reaching one run folder, an
unreachable node's rejections, the web UI starting a run, and staged load.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from bitcell_sim.load import LocustProcess, locust_argv, read_outputs
from bitcell_sim.load.sink import READY_PREFIX
from bitcell_sim.loopback import free_port
from bitcell_sim.topology import arrival_schedule, load_topology

pytestmark = [pytest.mark.real]


@contextmanager
def sink(*args: str) -> Iterator[str]:
    """A sink process on a free port; yields its URL and stops it by pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bitcell_sim.load.sink", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(READY_PREFIX), line
        yield line[len(READY_PREFIX) :].strip()
    finally:
        process.terminate()
        process.wait(10)


def run(argv: list[str], log: Path, timeout_s: float) -> tuple[int, str]:
    process = LocustProcess(argv, log)
    try:
        status = process.wait(timeout_s)
    finally:
        process.stop()
    return status, log.read_text()


def test_open_loop_rate_holds_against_a_slow_node(tmp_path: Path) -> None:
    """Every submission is answered 0.3 s late; every scheduled tx still goes out on time."""
    run_dir = tmp_path / "run"
    with sink("--round", "1", "--delay", "0.3") as url:
        argv = locust_argv(run_dir, host=url, tps=50.0, duration_s=12.0, extra=["--round", "1"])
        status, output = run(argv, tmp_path / "locust.log", 60)
    assert status == 0, output
    records, summary, meta = read_outputs(run_dir)
    hold = summary["hold"]
    assert summary["submitted"] == summary["scheduled"]  # every scheduled tx went out
    assert abs(hold["submitted"] - hold["scheduled"]) <= 2  # one due at the end may leave after
    assert abs(hold["scheduled"] - 600) <= 4 * 600**0.5  # a Poisson schedule at 50 TPS
    assert summary["schedule_lag_s"]["p99"] < 0.05
    assert summary["rpc_latency_s"]["p50"] >= 0.3
    assert summary["accepted"] == summary["submitted"] == records.num_rows
    assert summary["confirmed"] >= 0.99 * summary["accepted"]
    assert meta["mode"] == "local" and meta["time_origin"] == "run_start"
    # Published numbers come from the raw records.
    frame = records.to_pandas()
    latency = (frame.confirm_s - frame.submit_s).dropna().to_numpy()
    assert summary["confirmation_latency_s"]["p95"] == pytest.approx(np.percentile(latency, 95))
    assert summary["confirmed"] == int(frame.confirm_s.notna().sum())
    load_dir = run_dir / "load"
    assert (load_dir / "locust_stats.csv").exists() and (load_dir / "locust.html").exists()
    stats = (load_dir / "locust_stats.csv").read_text()
    assert "eth_sendRawTransaction" in stats and "bitcell_getPendingBlockInfo" in stats


def test_stalled_chain_ends_the_run_with_exit_3(tmp_path: Path) -> None:
    """A node that freezes at its first transaction (a real node at HEAD) is a stall."""
    run_dir = tmp_path / "run"
    with sink("--round", "1", "--mode", "freeze") as url:
        argv = locust_argv(
            run_dir,
            host=url,
            tps=20.0,
            duration_s=30.0,
            extra=["--round", "1", "--stall-rounds", "3"],
        )
        started = time.monotonic()
        status, output = run(argv, tmp_path / "locust.log", 60)
        elapsed = time.monotonic() - started
    assert status == 3, output
    assert elapsed < 20  # ended by the stall, not by the 30 s schedule
    _, summary, _ = read_outputs(run_dir)
    stall = summary["stall"]
    assert stall["height"] == stall["heights"][-1][1] and stall["pending"] > 0
    assert stall["window_s"] == 3.0
    assert "STALL: chain stalled: height stayed at" in output
    assert summary["unconfirmed"] == summary["accepted"] > 0


def test_master_and_worker_records_reach_one_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    port = free_port()
    with sink("--round", "1") as url:
        master = LocustProcess(
            locust_argv(
                run_dir,
                host=url,
                tps=30.0,
                duration_s=8.0,
                role="master",
                master_port=port,
                expect_workers=1,
                extra=["--round", "1"],
            ),
            tmp_path / "master.log",
        )
        worker = LocustProcess(
            locust_argv(run_dir, host=url, role="worker", master_port=port),
            tmp_path / "worker.log",
        )
        try:
            status = master.wait(60)
            worker.wait(20)
        finally:
            master.stop()
            worker.stop()
    assert status == 0, (tmp_path / "master.log").read_text()
    records, summary, meta = read_outputs(run_dir)
    assert meta["mode"] == "master" and meta["processes"] == 1
    assert records.num_rows == summary["submitted"] == summary["scheduled"]
    assert summary["confirmed"] == summary["accepted"] == records.num_rows > 150
    assert "worker rank 0 of 1 got the load plan" in (tmp_path / "worker.log").read_text()


def test_unreachable_node_rejections_are_counted(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}"
    argv = locust_argv(run_dir, host=url, tps=20.0, duration_s=3.0, extra=["--round", "1"])
    status, output = run(argv, tmp_path / "locust.log", 40)
    assert status == 0, output
    _, summary, _ = read_outputs(run_dir)
    n = summary["scheduled"]
    assert summary["rejected_by_reason"] == {"unreachable": n} and n > 30
    assert summary["accepted"] == 0 and summary["stall"] is None
    assert summary["watch"]["errors"] > 0
    assert f"rejected {n} (unreachable: {n})" in output


def test_web_ui_starts_a_run(tmp_path: Path) -> None:
    """Plain ``locust -f loadtests/rpc.py --host URL`` with its web UI (no --headless)."""
    run_dir = tmp_path / "run"
    web_port = free_port()
    with sink("--round", "1") as url:
        argv = [
            sys.executable, "-m", "locust", "-f", str(locust_argv(run_dir)[4]),
            "--host", url, "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--tps", "20", "--duration", "3", "--round", "1", "--run-dir", str(run_dir),
        ]  # fmt: skip
        process = LocustProcess(argv, tmp_path / "locust.log")
        try:
            page = None
            for _ in range(100):
                try:
                    page = httpx.get(f"http://127.0.0.1:{web_port}/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert page is not None and page.status_code == 200
            swarm = httpx.post(
                f"http://127.0.0.1:{web_port}/swarm",
                data={"user_count": 1, "spawn_rate": 1, "host": url},
                timeout=5,
            )
            assert swarm.status_code == 200, swarm.text
            deadline = time.monotonic() + 30
            while not (run_dir / "load" / "summary.json").exists():
                assert time.monotonic() < deadline, (tmp_path / "locust.log").read_text()
                time.sleep(0.2)
        finally:
            process.stop()
    _, summary, _ = read_outputs(run_dir)
    assert summary["submitted"] == summary["confirmed"] == summary["scheduled"] > 30


def test_ramp_hold_spike_stages_from_the_topology(tmp_path: Path, rc3_fast_path: Path) -> None:
    """The workload's stages drive both the user count (shape) and the rate (pacer)."""
    data = yaml.safe_load(rc3_fast_path.read_text())
    data["workload"] = {
        "arrival": "poisson",
        "stages": [
            {"duration": "4 s", "tps": "40 TPS", "ramp": True},
            {"duration": "4 s", "tps": "40 TPS"},
            {"duration": "2 s", "tps": "200 TPS"},
        ],
    }
    topology = tmp_path / "staged.yaml"
    topology.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    with sink("--round", "1") as url:
        argv = locust_argv(run_dir, host=url, topology=topology)
        status, output = run(argv, tmp_path / "locust.log", 60)
    assert status == 0, output
    _, summary, _ = read_outputs(run_dir)
    targets = [80, 160, 400]  # ramp 0→40 over 4 s, 40 for 4 s, 200 for 2 s
    assert [s["target_txs"] for s in summary["stages"]] == targets
    for stage, target in zip(summary["stages"], targets, strict=True):
        # The schedule, tx for tx (one due just before a stage's end may leave just after it).
        assert abs(stage["submitted"] - stage["scheduled"]) <= 2
        assert abs(stage["scheduled"] - target) <= 4 * target**0.5  # Poisson around the target
    assert summary["hold"]["target_tps"] == pytest.approx((160 + 400) / 6)
    # The shape grew the users ahead of the spike: 200 TPS × 0.5 s + 2 = 102.
    assert "Shape test updating to 102 users" in output


def test_locust_common_options_bound_and_size_a_host_run(tmp_path: Path) -> None:
    """The headline command: ``-u 20 -r 20 -t 10s`` against one node is honoured, not ignored."""
    run_dir = tmp_path / "run"
    with sink("--round", "1") as url:
        argv = [
            sys.executable, "-m", "locust", "-f", str(locust_argv(run_dir)[4]),
            "--host", url, "--headless", "-u", "20", "-r", "20", "-t", "10s",
            "--tps", "40", "--round", "1", "--run-dir", str(run_dir),
        ]  # fmt: skip
        started = time.monotonic()
        status, output = run(argv, tmp_path / "locust.log", 60)
        elapsed = time.monotonic() - started
    assert status == 0, output
    assert elapsed < 20, output  # 10 s, plus Locust's start-up and stop
    assert "will be ignored" not in output and "have no impact" not in output
    assert "Shape test updating to 20 users at 20.00 spawn rate" in output
    _, summary, _ = read_outputs(run_dir)
    assert summary["duration_s"] == 10.0  # the load lasts -t when --duration is not given
    assert summary["submitted"] > 0.9 * summary["scheduled"] > 300


def two_sink_topology(tmp_path: Path, fast_url: str, slow_url: str, rc3_fast_path: Path) -> Path:
    """rc3-fast cut to two nodes of one region, their RPC ports those of two sinks."""
    data = yaml.safe_load(rc3_fast_path.read_text())
    us_east = data["regions"]["us-east"]
    data["regions"] = {"us-east": {**us_east, "rtt": {"us-east": us_east["rtt"]["us-east"]}}}
    ports = [int(url.rsplit(":", 1)[1]) for url in (fast_url, slow_url)]
    data["nodes"] = {
        name: {"region": "us-east", "rpc_port": port}
        for name, port in zip(("fast", "slow"), ports, strict=True)
    }
    data["faults"] = []
    data["workload"] = {"tps": "40 TPS", "start": "5 s", "duration": "12 s", "arrival": "poisson"}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_schedule_is_replayed_per_node_while_one_node_is_slow(
    tmp_path: Path, rc3_fast_path: Path
) -> None:
    """Node "slow" answers after 1.5 s: both nodes still get exactly their scheduled txs, at
    their scheduled times, and "fast" does not wait for "slow" (open loop per node)."""
    run_dir = tmp_path / "run"
    with sink("--round", "1") as fast, sink("--round", "1", "--delay", "1.5") as slow:
        topology_path = two_sink_topology(tmp_path, fast, slow, rc3_fast_path)
        argv = locust_argv(run_dir, topology=topology_path)
        status, output = run(argv, tmp_path / "locust.log", 90)
    assert status == 0, output
    records, summary, meta = read_outputs(run_dir)
    replay = pq.read_table(run_dir / "load" / "replay.parquet").to_pandas()
    schedule = arrival_schedule(load_topology(run_dir / "topology.yaml"))
    # The replay is the model's schedule, tx for tx, and every scheduled tx went out.
    assert replay["scheduled_s"].tolist() == schedule.submit_s.tolist()
    assert replay["node"].tolist() == schedule.node_names().tolist()
    assert replay["gas_price"].tolist() == schedule.gas_price.tolist()
    assert replay["tx_id"].notna().all()
    sent = replay.merge(records.to_pandas(), on="tx_id", suffixes=("", "_record"))
    assert len(sent) == len(replay) == summary["submitted"]
    assert (sent["node"] == sent["node_record"]).all()
    counts = sent.groupby("node").size().to_dict()
    assert counts == {n: int((schedule.node_names() == n).sum()) for n in ("fast", "slow")}
    lag = sent["submit_s"] - sent["due_s"]
    by_node = lag.groupby(sent["node"])
    print("\nper node: scheduled txs", counts, "lag p50/p99/max (ms)")
    print(
        (by_node.quantile([0.5, 0.99]).unstack() * 1000).round(2), (by_node.max() * 1000).round(2)
    )
    assert lag.min() >= -0.005
    assert lag[sent["node"] == "fast"].quantile(0.99) < 0.1, lag.describe()
    assert lag[sent["node"] == "slow"].quantile(0.99) < 0.1, lag.describe()
    slow_latency = sent.loc[sent["node"] == "slow", "rpc_latency_s"]
    assert slow_latency.median() >= 1.5
    assert meta["replay_shift_s"] == pytest.approx(-5.0)  # run-start clock: workload.start off
