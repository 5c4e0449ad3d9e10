"""Shared fixtures (paths of the shipped topologies, one validation run) and the rerun policy
of real-process tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


@pytest.fixture(scope="session")
def rc3_path() -> Path:
    return TOPOLOGIES / "rc3.yaml"


@pytest.fixture(scope="session")
def rc3_fast_path() -> Path:
    return TOPOLOGIES / "rc3-fast.yaml"


@dataclass(frozen=True)
class ValidationRun:
    """A ``bitcell-sim validate`` output folder that exited 0, and the topology it ran."""

    root: Path
    topology: Path


@pytest.fixture(scope="session")
def validation_run(tmp_path_factory: pytest.TempPathFactory, rc3_fast_path: Path) -> ValidationRun:
    """``bitcell-sim validate`` on rc3-fast on free ports for 12 s, 50 TPS for three rounds from
    genesis (which ``measure`` puts late enough for Locust to be running), 2 model seeds: run
    once (about 35 s) for every test that reads a validation folder. Only tests marked ``real``
    may use it."""
    # Imported here: every test session reads this file, and most never start a devnet.
    from bitcell_sim.cli import app
    from bitcell_sim.devnet.ports import relocated_copy

    folder = tmp_path_factory.mktemp("validation")
    topology = relocated_copy(
        rc3_fast_path,
        folder / "rc3-fast-short.yaml",
        general={"duration": "12 s"},
        workload={"tps": "50 TPS", "start": "0 s", "duration": "9 s"},
    )
    result = CliRunner().invoke(
        app,
        ["validate", str(topology), "--seeds", "2", "--results-dir", str(folder), "--run-id", "v"],
    )
    if result.exit_code != 0:
        # A failed fixture is run again when its test is rerun; a returned result would not be.
        pytest.fail(f"validate exited with {result.exit_code}:\n{result.output}")
    return ValidationRun(folder / "v", topology)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-process tests measure time on a shared 2-core machine: give each one rerun.

    A rerun shows as RERUN in the report, so a test that needs it is visible; a test that fails
    twice fails the suite. Pure unit tests get no rerun: for them a failure is always a bug.
    """
    for item in items:
        if item.get_closest_marker("real") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))
