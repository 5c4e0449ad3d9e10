"""validate end to end on rc3-fast, bounded: a fresh devnet measured under load, the model on
what happened, and the comparison report with every metric of the verdict table filled."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitcell_sim.cli import app
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.topology import load_topology

pytestmark = [pytest.mark.real, pytest.mark.timeout(420)]


def short_rc3_fast(rc3_fast_path: Path, target: Path) -> Path:
    """rc3-fast on free ports for 45 s: 50 TPS from 5 s to 30 s (a few minutes in all)."""
    return relocated_copy(
        rc3_fast_path,
        target,
        general={"duration": "45 s"},
        workload={"tps": "50 TPS", "start": "5 s", "duration": "25 s"},
    )


def test_validate_rc3_fast_writes_both_reports_with_every_metric_filled(
    tmp_path: Path, rc3_fast_path: Path
) -> None:
    topology = short_rc3_fast(rc3_fast_path, tmp_path / "rc3-fast-short.yaml")
    result = CliRunner().invoke(
        app,
        ["validate", str(topology), "--seeds", "2", "--results-dir", str(tmp_path),
         "--run-id", "v"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    case = tmp_path / "v" / "none"
    assert (case / "report.html").stat().st_size > 10_000
    markdown = (case / "report.md").read_text()
    assert "| block_interval |" in markdown and "| rpc_latency_p99 |" in markdown
    data = json.loads((case / "comparison.json").read_text())
    headline = [m for m in data["metrics"] if m["group"] == "headline"]
    assert {m["name"] for m in headline} >= {
        "block_interval", "block_propagation_p95", "confirmation_latency_p50", "confirmed_tps",
        "forks", "orphaned", "rpc_latency_p50", "rpc_latency_p99",
    }  # fmt: skip
    for metric in headline:
        assert metric["predicted"]["mean"] is not None, metric["name"]
        assert metric["measured"]["mean"] is not None, metric["name"]
        assert metric["verdict"] in ("PASS", "FAIL"), metric["name"]
    assert data["predicted_runs"] == ["seed-1", "seed-2"]
    # The devnet was stopped: no node answers on its RPC port any more.
    for spec in load_topology(topology).nodes.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", spec.rpc_port), timeout=2).close()
