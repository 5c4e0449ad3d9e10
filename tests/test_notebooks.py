"""The notebooks: each runs from a clean kernel without an error, and its conclusion holds.

Every ``notebooks/*.ipynb`` is executed by nbclient in a fresh IPython kernel (a real process,
stopped by nbclient when done), from the notebooks folder as a reader would open it, with
``BITCELL_NOTEBOOK_QUICK=1`` (one seed per grid point: the same grids and conclusions, in less
time). The stored copy has no outputs (git keeps the code; the figures come from running it),
and each notebook's conclusion record must make sense. ``sim_vs_measured`` looks for the newest
validation in the folder ``BITCELL_RESULTS`` names: here the one conftest's
``validation_run`` made (a real devnet, so that notebook's tests are marked ``real``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from bitcell_sim.results.overlay import PLOTS
from tests.conftest import ValidationRun

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
SIM_VS_MEASURED = NOTEBOOKS / "sim_vs_measured.ipynb"
PLANNING = [p for p in ALL if p != SIM_VS_MEASURED]


def _conclusion(notebook: Any) -> dict[str, Any]:
    """The JSON record printed by the cell tagged ``conclusion``."""
    cells = [c for c in notebook.cells if "conclusion" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "the notebook needs exactly one cell tagged 'conclusion'"
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    record, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(record, dict)
    return record


_EXECUTED: dict[Path, Any] = {}


def _execute(path: Path, env: dict[str, str] | None = None) -> Any:
    """The notebook at ``path`` run from a clean kernel with ``env`` added to its environment
    (once per test session)."""
    if path in _EXECUTED:
        return _EXECUTED[path]
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("BITCELL_")}
    kernel_env["BITCELL_NOTEBOOK_QUICK"] = "1"
    client.execute(env={**kernel_env, **(env or {})})  # raises CellExecutionError on a failure
    _EXECUTED[path] = notebook
    return notebook


def _sim_vs_measured(validation_run: ValidationRun) -> Any:
    return _execute(SIM_VS_MEASURED, {"BITCELL_RESULTS": str(validation_run.root.parent)})


def _stream_text(notebook: Any) -> str:
    return "".join(
        o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )


def test_there_are_notebooks() -> None:
    assert [p.name for p in ALL] == [
        "capacity_100tps.ipynb",
        "failover.ipynb",
        "latency_budget.ipynb",
        "sim_vs_measured.ipynb",
    ]


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_stored_notebook_has_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for index, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, (
            f"code cell {index} of {path.name} has outputs: strip them before committing"
        )
        assert "execution" not in cell.metadata


def _ran_clean(notebook: Any) -> None:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", PLANNING, ids=[p.stem for p in PLANNING])
def test_notebook_runs_from_a_clean_kernel(path: Path) -> None:
    _ran_clean(_execute(path))


@pytest.mark.slow
@pytest.mark.real
def test_sim_vs_measured_notebook_runs_from_a_clean_kernel(validation_run: ValidationRun) -> None:
    _ran_clean(_sim_vs_measured(validation_run))


@pytest.fixture(scope="module")
def capacity() -> Any:
    return _execute(NOTEBOOKS / "capacity_100tps.ipynb")


@pytest.mark.slow
def test_capacity_notebook_conclusion_holds(capacity: Any) -> None:
    c = _conclusion(capacity)
    # The defaults cannot carry 100 TPS: the ceiling, the pools filling near the fluid
    # estimate (10,000 / (100 - 66.7) = 300 s) and the rejections that follow.
    assert c["default_capacity_tps"] == 66.7
    assert c["default_confirmed_tps_at_100"] <= 66.7
    assert 200 < c["default_first_pool_full_s"] < 330
    assert c["default_rejection_rate_at_100"] > 0.1
    # The chosen setting has capacity for 100 TPS and the 120 TPS headroom, and keeps up.
    assert c["chosen_capacity_tps"] >= 120
    capacity_tps = c["chosen_max_txs_per_block"] / c["chosen_round_s"]
    assert round(capacity_tps, 1) == c["chosen_capacity_tps"]
    for load in (100, 120):
        assert c[f"chosen_confirmed_tps_at_{load}"] >= 0.99 * c[f"chosen_offered_tps_at_{load}"]
        assert 0 < c[f"chosen_p95_s_at_{load}"] <= 30
    assert c["at_15s_capacity_tps"] >= c["chosen_capacity_tps"]
    # Under the outage no pool fills; the refused txs are those sent to the down region.
    assert c["outage_rejected_pool_full"] == 0
    assert 1000 < c["outage_rejected_unreachable"] < 2500  # about 2/7 of 60 s at 100 TPS
    assert 0 <= c["outage_recovery_s"] < 60
    assert c["slow_ap_forks"] == 0
    assert c["slow_ap_propagation_p95_s"] > c["clean_propagation_p95_s"]


@pytest.mark.slow
def test_failover_notebook_conclusion_holds() -> None:
    c = _conclusion(_execute(NOTEBOOKS / "failover.ipynb"))
    # Healing takes longer on a slower network, within the topology's expectations.
    assert 0 < c["region_recovery_s_max"] < 60 and 0 < c["partition_reconvergence_s_max"] < 120
    # One round trip per sync batch: batches of 1 block are the slowest, and once a batch holds
    # every missed block a larger one changes nothing.
    by_batch = {int(k): v for k, v in c["sync_batch_recovery_s_at_4x"].items()}
    assert by_batch[1] > 2 * by_batch[20] and by_batch[20] == by_batch[100]
    assert list(by_batch.values()) == sorted(by_batch.values(), reverse=True)
    # No quorum: production stops only when every validator is down.
    assert c["production_stops_with_nodes_down"] == 7
    assert c["regions_down_blocks_lost"]["4 regions"] >= 10
    assert c["regions_down_blocks_lost"]["3 regions"] < 5


@pytest.mark.slow
def test_latency_budget_notebook_conclusion_holds() -> None:
    c = _conclusion(_execute(NOTEBOOKS / "latency_budget.ipynb"))
    assert set(c["budget_s"]) == {"us-east", "us-west", "eu-central", "ap-southeast"}
    for region, budget in c["budget_s"].items():
        # Forks start within one grid step above the budget, and below one reveal phase.
        first = c["first_fork_s"][region]
        assert budget is not None and first is not None and budget < first <= c["reveal_phase_s"]
        steps = c["added_s"]
        assert steps.index(first) == steps.index(budget) + 1
    assert c["tightest_budget_s"] == min(c["budget_s"].values())


@pytest.mark.slow
@pytest.mark.real
def test_sim_vs_measured_notebook_shows_the_newest_validation(
    validation_run: ValidationRun,
) -> None:
    notebook = _sim_vs_measured(validation_run)
    c = _conclusion(notebook)
    # Found as the newest validation where validate wrote it, loaded rather than run again.
    assert c["source"] == "loaded" and c["validation"] == str(validation_run.root)
    assert c["case"] == "none" and c["cases"] == {"none": c["verdict"]}
    data = json.loads((validation_run.root / "none" / "comparison.json").read_text())
    verdicts = {m["name"]: m["verdict"] for m in data["metrics"]}
    # The notebook's figures are validate's, verdict for verdict.
    assert c["verdict"] == data["verdict"] and c["counts"] == data["counts"]
    assert c["failing"] == [name for name, v in verdicts.items() if v == "FAIL"]
    assert c["unknown"] == [name for name, v in verdicts.items() if v == "UNKNOWN"]
    headline = {m["name"]: m["verdict"] for m in data["metrics"] if m["group"] == "headline"}
    assert c["headline"] == headline and "confirmation_latency_p95" in headline
    assert c["predicted_runs"] == 2 and c["measured_runs"] == 1
    assert sorted(c["plots"]) == sorted(PLOTS)
    # Never PASS without data on both sides.
    for m in data["metrics"]:
        if m["verdict"] == "PASS":
            assert None not in (m["predicted"]["mean"], m["measured"]["mean"]), m["name"]
    # Each plot's sentence counts the verdicts it speaks of.
    passed = sum(verdicts[f"confirmation_latency_p{q}"] == "PASS" for q in (50, 95, 99))
    text = _stream_text(notebook)
    assert f"Confirmation latency: the model is within tolerance on {passed} of 3" in text
    assert "Block propagation p50 per region pair: the model is within tolerance on" in text
