"""``bitcell-sim run`` end to end on rc3-fast: run folder, summary, plots, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.results import TABLES, RunFolder
from bitcell_sim.topology import load_topology

runner = CliRunner()


def test_run_writes_the_folder_and_prints_the_summary(tmp_path: Path, rc3_fast_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            str(rc3_fast_path),
            "--duration",
            "40s",
            "--seed",
            "5",
            "--run-id",
            "r1",
            "--results-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = RunFolder.open(tmp_path / "r1")
    for name in TABLES:
        assert folder.read_records(name).num_rows > 0, name
    summary = folder.read_json("summary.json")
    assert summary["duration_s"] == 40.0 and summary["seed"] == 5
    assert summary["blocks"]["produced"] == 13  # rounds end every 3 s; 39 s is the last
    assert summary["model"]["blocks_produced"] == 13
    meta = json.loads((folder.path / "meta.json").read_text())
    assert meta["kind"] == "model" and meta["simulated_s"] == 40.0
    # The load (10-70 s) cannot keep its 50 s quiet time in 40 s: it is simply cut at 40 s.
    assert meta["overrides"] == ["general.seed: 1 -> 5", "general.duration: 2 min -> 40 s"]
    resolved = load_topology(folder.path / "topology.yaml")
    assert resolved.general.duration_s == 40.0 and resolved.general.seed == 5
    plots = sorted(p.name for p in (folder.path / "plots").iterdir())
    assert plots == ["confirmation_cdf.png", "height.png", "pool.png"]
    assert all((folder.path / "plots" / p).stat().st_size > 10_000 for p in plots)
    assert "headline figures" in result.output
    assert f"run folder: {tmp_path / 'r1'}" in result.output.replace("\n", "")


def test_check_exits_2_when_an_expectation_fails(tmp_path: Path, rc3_fast_path: Path) -> None:
    # rc3-fast expects at least 100 confirmed TPS; offer only 50.
    args = [
        "run",
        str(rc3_fast_path),
        "--duration",
        "30s",
        "--tps",
        "50",
        "--no-plots",
        "--quiet",
        "--results-dir",
        str(tmp_path),
    ]
    assert runner.invoke(app, [*args, "--run-id", "plain"]).exit_code == 0
    checked = runner.invoke(app, [*args, "--run-id", "checked", "--check"])
    assert checked.exit_code == 2
    assert "expectations failed: confirmed_tps_min" in checked.output
    assert not (tmp_path / "checked" / "plots").exists()


def _plain(output: str) -> str:
    """Output without rich's box and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_bad_options_are_usage_errors(tmp_path: Path, rc3_fast_path: Path) -> None:
    bad = runner.invoke(app, ["run", str(rc3_fast_path), "--duration", "5 parsecs"])
    assert bad.exit_code == 2 and "unknown unit 'parsecs'" in _plain(bad.output)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    taken = runner.invoke(
        app, ["run", str(rc3_fast_path), "--run-id", "taken", "--results-dir", str(tmp_path)]
    )
    assert taken.exit_code == 2 and "already exists" in _plain(taken.output)
