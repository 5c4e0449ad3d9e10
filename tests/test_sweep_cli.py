"""``bitcell-sim sweep`` end to end: errors before any run, the folder, resume after Ctrl-C.

The resume test runs the real command on a Dask LocalCluster of 2 worker processes, interrupts
it with SIGINT once some runs are saved, checks that its worker processes are gone, runs the
same command again and compares the final table with a one-shot serial sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app

runner = CliRunner()
BIN = Path(sys.executable).parent / "bitcell-sim"
# 2 x 4 points x 2 seeds of rc3-fast over 90 s: about half a second each.
GRID = [
    "--set",
    "duration=90 s",
    "--set",
    "tps=60:150:30",
    "--set",
    "protocol.max_txs_per_block=200,400",
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_a_bad_path_is_an_error_before_anything_runs(tmp_path: Path, rc3_fast_path: Path) -> None:
    set_ = "protocol.max_tx_per_block=1,2"
    result = _cli("sweep", str(rc3_fast_path), "--set", set_, "--results-dir", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "protocol.max_tx_per_block: unknown key 'max_tx_per_block' in protocol" in result.stderr
    assert not any(tmp_path.iterdir())  # no folder, nothing ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "tps=10:1:1"], "tps: range end 1 is below its start 10"),
        (["--set", "protocol.tx_pool_capacity=100,0"], "sweep point protocol.tx_pool_capacity=0"),
        (["--set", "tps=1,2", "--set", "tps=3"], "tps is set twice"),
    ],
)
def test_bad_values_are_errors(
    tmp_path: Path, rc3_fast_path: Path, args: list[str], message: str
) -> None:
    result = _cli("sweep", str(rc3_fast_path), *args, "--results-dir", str(tmp_path), "--serial")
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert message in " ".join(result.stderr.split())
    assert not any(tmp_path.iterdir())


def _sweep(rc3_fast_path: Path, results: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        *("sweep", str(rc3_fast_path), *GRID, "--replications", "2", "--run-id", "s"),
        *("--results-dir", str(results), "--no-plots", *extra),
    )


@pytest.mark.real
def test_resume_after_sigint_runs_only_the_missing_points(
    tmp_path: Path, rc3_fast_path: Path
) -> None:
    results = tmp_path / "results"
    command = [str(BIN), "sweep", str(rc3_fast_path), *GRID, "--replications", "2", "--run-id", "s"]
    command += ["--results-dir", str(results), "--no-plots", "--workers", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    runs = results / "s" / "runs"
    try:
        deadline = time.monotonic() + 120
        while len(list(runs.glob("*.parquet"))) < 4:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no runs saved in 120 s"
            time.sleep(0.05)
        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 2  # the LocalCluster's worker processes
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    saved = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.parquet")}
    assert 4 <= len(saved) < 16, stderr
    assert f"interrupted: {len(saved)} of 16 runs saved" in " ".join(stderr.split())
    assert not list(runs.glob("*.partial"))
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes left running: {[p.pid for p in alive]}"

    again = _sweep(rc3_fast_path, results, "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert f"resuming {results / 's'}: {len(saved)} of 16 runs already done" in again.stderr
    ran = 16 - len(saved)
    assert (
        f"{ran} runs in" in again.stdout
        and f"({len(saved)} from an earlier attempt)" in again.stdout
    )
    after = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.parquet")}
    assert len(after) == 16 and all(after[name] == mtime for name, mtime in saved.items())

    once = _sweep(rc3_fast_path, tmp_path / "once", "--serial")
    assert once.returncode == 0, once.stderr
    resumed = pd.read_parquet(results / "s" / "sweep.parquet")
    pd.testing.assert_frame_equal(
        resumed, pd.read_parquet(tmp_path / "once" / "s" / "sweep.parquet")
    )
    spec = json.loads((results / "s" / "sweep.json").read_text())
    assert spec["seeds"] == [1, 2] and spec["grid"]["tps"] == [60, 90, 120, 150]
    assert {"bitcell-sim", "numpy", "dask", "distributed", "python"} <= set(spec["software"])


def test_the_folder_holds_grid_table_points_and_plots(tmp_path: Path, rc3_fast_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sweep",
            str(rc3_fast_path),
            "--set",
            "duration=30 s",
            "--set",
            "tps=50,150",
            "--replications",
            "3",
            "--run-id",
            "p",
            "--results-dir",
            str(tmp_path),
            "--serial",
        ],
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "p"
    table = pd.read_parquet(folder / "sweep.parquet")
    assert len(table) == 6 and table["seed"].tolist() == [1, 2, 3] * 2
    assert len(list((folder / "runs").glob("*.parquet"))) == 6
    points = pd.read_parquet(folder / "points.parquet")
    rate = points[points["figure"] == "steady_confirmed_tps"]
    assert rate["runs"].tolist() == [3, 3] and (rate["ci_low"] <= rate["mean"]).all()
    plots = sorted(p.name for p in (folder / "plots").iterdir())
    assert "steady_confirmed_tps.png" in plots and "confirmation_p95_s.png" in plots
    assert "sweep: mean over replications" in result.output
    # The same command again has nothing left to run.
    again = runner.invoke(
        app,
        [
            "sweep",
            str(rc3_fast_path),
            "--set",
            "duration=30 s",
            "--set",
            "tps=50,150",
            "--replications",
            "3",
            "--run-id",
            "p",
            "--results-dir",
            str(tmp_path),
            "--serial",
        ],
    )
    assert again.exit_code == 0 and "0 runs in" in again.output
    other = runner.invoke(
        app,
        [
            "sweep",
            str(rc3_fast_path),
            "--set",
            "tps=50",
            "--run-id",
            "p",
            "--results-dir",
            str(tmp_path),
            "--serial",
        ],
    )
    said = " ".join(other.output.replace("│", " ").split())
    assert other.exit_code == 2 and "holds another sweep" in said


@pytest.mark.real
def test_sigterm_saves_what_is_done_and_stops_the_cluster(
    tmp_path: Path, rc3_fast_path: Path
) -> None:
    command = [str(BIN), "sweep", str(rc3_fast_path), *GRID, "--replications", "2"]
    command += ["--run-id", "t", "--results-dir", str(tmp_path), "--no-plots", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "t" / "runs"
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no run saved in 120 s"
            time.sleep(0.05)
        workers = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and "interrupted:" in stderr, stderr
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes left running: {[p.pid for p in alive]}"
