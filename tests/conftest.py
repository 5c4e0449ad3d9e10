"""Shared fixtures: paths of the shipped topologies."""

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
