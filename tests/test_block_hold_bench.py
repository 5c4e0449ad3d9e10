"""The block-hold benchmark script runs end to end (tiny sizes; its figures are not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_block_hold.py"


@pytest.mark.real
@pytest.mark.timeout(120)
def test_bench_block_hold_smoke() -> None:
    args = ["--idle", "0", "--nodes", "1", "--rounds", "3", "--min-txs", "100"]
    topology = ["--topology", str(ROOT / "topologies" / "rc3-fast.yaml")]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, *topology],
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    ).stdout
    assert re.search(r"^\| 0 s \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \|$", out, re.M), out
    # The lone validator made blocks of at least 100 txs and held each after its round's end.
    row = re.search(
        r"^\| 1 \| (\d+) \| (\d+) \| ([\d.]+) ms \| [\d.]+ ms \| ([\d.]+) ms \|$", out, re.M
    )
    assert row is not None, out
    assert int(row[1]) >= 1 and int(row[2]) >= 100 and float(row[3]) > 0 and float(row[4]) > 0
