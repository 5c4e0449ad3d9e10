"""The netem benchmark script runs end to end (tiny sizes; its figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_netem.py"


@pytest.mark.real
@pytest.mark.timeout(60)
def test_bench_netem_smoke() -> None:
    args = ["--mb", "2", "--messages", "200", "--round-trips", "20", "--samples", "5"]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    ).stdout
    assert "| path | bulk MB/s | 256 B messages/s | 64 B round trips/s | one-way delay ms |" in out
    assert "| direct (no emulator) |" in out and "| through the emulator |" in out
    assert "added one-way delay at latency 0:" in out
    assert "bulk through a 50 ms link:" in out
    assert "one-way delay through a 40 ms link:" in out
