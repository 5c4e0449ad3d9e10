"""Shared fixtures (paths of the shipped topologies) and the rerun policy of real-process tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


@pytest.fixture(scope="session")
def rc3_path() -> Path:
    return TOPOLOGIES / "rc3.yaml"


@pytest.fixture(scope="session")
def rc3_fast_path() -> Path:
    return TOPOLOGIES / "rc3-fast.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-process tests measure time on a shared 2-core machine: give each one rerun.

    A rerun shows as RERUN in the report, so a test that needs it is visible; a test that fails
    twice fails the suite. Pure unit tests get no rerun: for them a failure is always a bug.
    """
    for item in items:
        if item.get_closest_marker("real") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))
