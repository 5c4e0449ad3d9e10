"""Benchmark of ``bitcell-sim sweep``: a 200-run sweep serially and on a 2-worker LocalCluster.

The sweep: rc3 for 5 simulated minutes, ``workload`` at 10 to 200 TPS in steps of 10 against
500 and 1000 txs per block, 5 replications (20 x 2 x 5 = 200 runs). It runs once with
``--serial`` (this process) and once on a Dask LocalCluster of ``--workers`` processes, each
into a fresh folder, and reports both wall times (cluster start-up included), the speed-up, and
whether the two tables are equal (they must be). Run from the repository root::

    .venv/bin/python benchmarks/bench_sweep.py [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "bitcell-sim"
GRID = [
    "--set", "duration=5 min",
    "--set", "workload.tps=10:200:10",
    "--set", "protocol.max_txs_per_block=500,1000",
    "--replications", "5",
]  # fmt: skip


def timed_sweep(
    folder: Path, *where: str, topology: str = "rc3", grid: list[str] = GRID
) -> tuple[float, pd.DataFrame]:
    """Wall time of one sweep through the command (start-up included) and its table."""
    command = [str(BIN), "sweep", str(ROOT / "topologies" / f"{topology}.yaml"), *grid]
    command += ["--run-id", "bench", "--results-dir", str(folder), "--no-plots", "--quiet", *where]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    return wall_s, pd.read_parquet(folder / "bench" / "sweep.parquet")


def compare(workers: int, **sweep: Any) -> dict[str, Any]:
    """The same sweep serially and on a LocalCluster of ``workers``."""
    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial = timed_sweep(Path(tmp) / "serial", "--serial", **sweep)
        cluster_s, cluster = timed_sweep(Path(tmp) / "cluster", "--workers", str(workers), **sweep)
    return {
        "runs": len(serial),
        "serial_wall_s": serial_s,
        "cluster_wall_s": cluster_s,
        "workers": workers,
        "speedup": serial_s / cluster_s,
        "tables_equal": bool(serial.equals(cluster)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    row = compare(args.workers)
    serial_s, cluster_s = row["serial_wall_s"], row["cluster_wall_s"]
    print(f"| runs | serial | LocalCluster of {args.workers} | speed-up | same table |")
    print("|---:|---:|---:|---:|---|")
    print(
        f"| {row['runs']} | {serial_s:.1f} s | {cluster_s:.1f} s | {row['speedup']:.2f}x "
        f"| {'yes' if row['tables_equal'] else 'NO'} |"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
