"""validate end to end on rc3-fast, bounded: a fresh devnet measured under load, the model on
what happened (the load where Locust ran it), and the comparison report with every metric of the
verdict table filled (the run is conftest's ``validation_run``, which the sim_vs_measured
notebook's test reads too)."""

from __future__ import annotations

import json
import socket

import pytest

from bitcell_sim.results.window import RunWindow
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


def test_validate_measures_and_predicts_the_load_where_locust_ran_it(
    validation_run: ValidationRun,
) -> None:
    """The case's load starts at genesis: Locust can only send that early because ``measure``
    gives it its start budget; late or not, the measured window is the one Locust ran and the
    model's load starts then too."""
    case = validation_run.root / "none"
    summary = json.loads((case / "measured" / "load" / "summary.json").read_text())
    meta = json.loads((case / "measured" / "meta.json").read_text())
    start_s = summary["run_start_s"]
    assert summary["time_origin"] == "genesis"
    assert meta["load_window_s"] == [start_s, start_s + summary["duration_s"]]
    planned = load_topology(case / "measured" / "topology.yaml")
    assert planned.workload.start_s == 0.0
    assert meta["load_shift_s"] == pytest.approx(start_s, abs=1e-6)
    seeds = sorted((case / "model").glob("seed-*"))
    assert len(seeds) == 2
    for seed in seeds:
        model = load_topology(seed / "topology.yaml")
        assert RunWindow.of_topology(model).load_s == pytest.approx(meta["load_window_s"], abs=1e-6)
