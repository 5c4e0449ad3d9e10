"""The public names of the model and results packages."""

from __future__ import annotations

import bitcell_sim.model
import bitcell_sim.results


def test_model_public_api() -> None:
    assert bitcell_sim.model.__all__ == [
        "ModelResult",
        "Override",
        "Simulation",
        "apply_overrides",
        "simulate",
    ]


def test_results_public_api() -> None:
    assert bitcell_sim.results.__all__ == [
        "BLOCKS",
        "BLOCK_ARRIVALS",
        "NODE_TIMELINE",
        "TABLES",
        "TRANSACTIONS",
        "RunFolder",
        "failed_expectations",
        "new_run_id",
        "read_table",
        "software_versions",
        "summarize",
        "to_table",
        "write_table",
    ]
