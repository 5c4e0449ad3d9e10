"""``bitcell-sim chaos`` on real devnets, bounded (about a minute a run): node_failure-fast
passes its expectations and the ledger and its verdict page renders in Chromium; a partition
with an impossible reconvergence limit FAILs with the measured value and exit 1; SIGTERM during
a fault stops every process the run started and undoes the fault."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.topology import load_topology
from tests.conftest import ROOT, TOPOLOGIES
from tests.test_results_browser import CHROMIUM, chromium

pytestmark = [pytest.mark.real, pytest.mark.timeout(300)]
SCENARIOS = TOPOLOGIES / "scenarios"


def _chaos(tmp_path: Path, scenario: Path, run_id: str) -> tuple[int, str, Path]:
    result = CliRunner().invoke(app, [
        "chaos", str(scenario), "--seeds", "1", "--results-dir", str(tmp_path),
        "--run-id", run_id])  # fmt: skip
    return result.exit_code, result.output, tmp_path / run_id / "chaos" / scenario.stem


def _processes_under(folder: Path) -> list[str]:
    """Command lines of the processes that name a path inside ``folder`` (the run's nodes,
    emulator and load all take their config or state from there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in argv:
            found.append(argv)
    return found


def _assert_stopped(folder: Path) -> None:
    """No process of the run is left, and no node answers on its RPC port."""
    assert (folder / "devnet-state" / "devnet.json").is_file(), "no devnet ran"
    assert _processes_under(folder) == []
    for spec in load_topology(folder / "topology.yaml").nodes.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", spec.rpc_port), timeout=2).close()


def test_node_failure_fast_passes_with_a_clean_ledger(tmp_path: Path) -> None:
    code, output, folder = _chaos(tmp_path, SCENARIOS / "node_failure-fast.yaml", "n")
    assert code == 0, output
    data = json.loads((folder / "verdict.json").read_text())
    assert data["verdict"] == "PASS"
    names = {e["name"]: e for e in data["expectations"]}
    assert {"recovery_max", "ledger.lost", "one_tip_at_end", "chain_survived_restart"} <= set(names)
    recovery = names["recovery_max"]
    assert 0 < recovery["measured"] <= 60 and recovery["predicted"] is not None
    ledger = data["ledger"]["measured"]
    assert ledger["complete"] and ledger["counts"]["confirmed"] > 500
    assert ledger["counts"]["lost"] == ledger["counts"]["duplicated"] == 0
    assert [f["kind"] for f in data["faults"]] == ["node_down"]
    assert (folder / "compare" / "report.html").is_file()
    assert (folder / "measured" / "endstate.json").is_file()
    _assert_stopped(folder)
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the page was not rendered")
    dom = chromium(tmp_path / "profile", "--dump-dom", (folder / "verdict.html").as_uri()).stdout
    assert 'id="overall-verdict"' in dom and ">PASS</span>" in dom
    assert '<tr data-name="recovery_max">' in dom and dom.count("data:image/png;base64,") == 2


def test_an_impossible_reconvergence_fails_with_exit_1(tmp_path: Path) -> None:
    text = (SCENARIOS / "network_partition-fast.yaml").read_text()
    assert "reconvergence_max: 120 s" in text
    scenario = tmp_path / "network_partition-impossible.yaml"
    scenario.write_text(text.replace("reconvergence_max: 120 s", "reconvergence_max: 10 ms"))
    code, output, folder = _chaos(tmp_path, scenario, "p")
    assert code == 1, output
    data = json.loads((folder / "verdict.json").read_text())
    assert data["verdict"] == "FAIL"
    row = next(e for e in data["expectations"] if e["name"] == "reconvergence_max")
    assert row["verdict"] == "FAIL" and row["measured"] > 0.01
    assert row["message"].startswith(f"{row['measured']:.3g} s") and "0.01 s" in row["message"]
    # Everything else of the scenario held: the failure is the impossible limit alone.
    others = [e for e in data["expectations"] if e["name"] != "reconvergence_max"]
    assert {e["verdict"] for e in others} == {"PASS"}, others
    _assert_stopped(folder)


def test_sigterm_during_a_fault_stops_everything(tmp_path: Path) -> None:
    scenario = SCENARIOS / "partition_minority-fast.yaml"
    argv = [sys.executable, "-m", "bitcell_sim", "chaos", str(scenario), "--seeds", "1",
            "--results-dir", str(tmp_path), "--run-id", "t"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    seen = ""
    try:
        deadline = time.monotonic() + 90
        assert process.stderr is not None
        while "apply partition" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1.0)
            if ready:
                seen += process.stderr.readline()
        assert "apply partition" in seen, seen
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 130, seen
    _assert_stopped(tmp_path / "t" / "chaos" / scenario.stem)
