"""Benchmark of the model: simulated seconds per wall-clock second (median of repeats).

Cases: rc3 at 100 TPS over one simulated hour (the goal is at least 500x real time on one
core) and global-56 (56 nodes, degree-8 peer graph) at 100 TPS over ten simulated minutes.
Run from the repository root::

    .venv/bin/python benchmarks/bench_model.py [--repeats 3] [--json out.json]

Each repeat builds a fresh Simulation and runs it to the end, record tables included; the
topology is loaded once, outside the timing. CPU time (this process) is reported beside wall
time: on a shared machine the wall figure includes time other processes held the core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parent.parent
CASES = (
    ("rc3, 100 TPS, 1 h", "rc3.yaml", 3600.0),
    ("global-56, 100 TPS, 10 min", "global-56.yaml", 600.0),
)


def case_topology(file: str, duration_s: float) -> Topology:
    topology, _ = apply_overrides(
        load_topology(ROOT / "topologies" / file), duration_s=duration_s, tps=100.0
    )
    return topology


def measure(topology: Topology, repeats: int) -> dict[str, float | int]:
    walls, cpus = [], []
    stats: dict[str, object] = {}
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = simulate(topology)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
        stats = result.stats
    wall_s = statistics.median(walls)
    cpu_s = statistics.median(cpus)
    return {
        "simulated_s": topology.general.duration_s,
        "wall_s_median": wall_s,
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "speedup": topology.general.duration_s / wall_s,
        "cpu_s_median": cpu_s,
        "cpu_speedup": topology.general.duration_s / cpu_s,
        "nodes": len(topology.nodes),
        "blocks": int(stats.get("blocks_produced", 0)),  # type: ignore[call-overload]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    rows = {}
    for name, file, duration_s in CASES:
        rows[name] = measure(case_topology(file, duration_s), args.repeats)
    print(
        f"model benchmark, median of {args.repeats} ({platform.python_version()}, "
        f"{platform.machine()})"
    )
    print("| case | simulated | wall (median) | sim s / wall s | CPU (median) | sim s / CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['simulated_s']:,.0f} s | {row['wall_s_median']:.2f} s "
            f"| {row['speedup']:,.0f}x | {row['cpu_s_median']:.2f} s "
            f"| {row['cpu_speedup']:,.0f}x |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
