"""validate end to end on rc3-fast, bounded: a fresh devnet measured under load, the model on
what happened, and the comparison report with every metric of the verdict table filled (the
run is conftest's ``validation_run``, which the sim_vs_measured notebook's test reads too)."""

from __future__ import annotations

import json
import socket

import pytest

from bitcell_sim.topology import load_topology
from tests.conftest import ValidationRun

pytestmark = [pytest.mark.real, pytest.mark.timeout(420)]


def test_validate_rc3_fast_writes_both_reports_with_every_metric_filled(
    validation_run: ValidationRun,
) -> None:
    case = validation_run.root / "none"
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
    for spec in load_topology(validation_run.topology).nodes.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", spec.rpc_port), timeout=2).close()
