"""Benchmark of the model: simulated seconds per wall-clock second, events and peak memory.

Speed cases: rc3 at 100 TPS over one simulated hour (goal: at least 1,500x real time on one
core), global-56 (56 nodes, degree-8 peer graph) at 100 TPS over one hour (goal 500x), and the
1,000-node generated topology (``bitcell-sim topology generate --nodes-per-region 125``) at
100 TPS over one hour (goal: under 5 minutes, peak memory under 4 GB). ``--cost-curve`` runs the
generated 8-region topologies of 7, 56, 200, 504 and 1,000 nodes for ten simulated minutes.
Run from the repository root::

    .venv/bin/python benchmarks/bench_model.py [--repeats 3] [--cases rc3,global-56,gen-1000]
    .venv/bin/python benchmarks/bench_model.py --cost-curve [--repeats 3]

Each repeat runs in a fresh process (so its peak RSS is its own), builds the Simulation and
runs it to the end, record tables included; topology loading and loading the compiled kernels
(a 5 s run first) are outside the timing. CPU time
(that process) is reported beside wall time: on a shared machine the wall figure includes time
other processes held the core. Figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.topology import (
    Topology,
    dump_topology,
    generate_topology,
    load_topology,
    parse_topology,
)
from bitcell_sim.topology.generate import DEFAULT_REGIONS

ROOT = Path(__file__).resolve().parent.parent
HOUR_S, TEN_MIN_S = 3600.0, 600.0
#: name -> (topology, simulated seconds)
CASES = {
    "rc3": ("rc3", HOUR_S),
    "global-56": ("global-56", HOUR_S),
    "gen-1000": ("gen-125", HOUR_S),
}
#: nodes -> generated topology (8 AWS regions x nodes per region; 7 nodes is one per region
#: of the first 7)
COST_CURVE = {7: "gen-1x7", 56: "gen-7", 200: "gen-25", 504: "gen-63", 1000: "gen-125"}


def case_topology(name: str, duration_s: float) -> Topology:
    """A shipped topology (``rc3``) or a generated one (``gen-<nodes per region>``) at 100 TPS."""
    if name.startswith("gen-"):
        spec = name.removeprefix("gen-")
        if "x" in spec:  # gen-1x7: one node in each of the first 7 regions
            per_region, regions = (int(p) for p in spec.split("x"))
            data = generate_topology(
                name=name, nodes_per_region=per_region, regions=DEFAULT_REGIONS[:regions],
                peer_degree=min(8, regions * per_region - 1),
            )  # fmt: skip
        else:
            data = generate_topology(name=name, nodes_per_region=int(spec))
        base = parse_topology(yaml.safe_dump(data, sort_keys=False))
    else:
        base = load_topology(ROOT / "topologies" / f"{name}.yaml")
    topology, _ = apply_overrides(base, duration_s=duration_s, tps=100.0)
    return topology


def measure_once(topology: Topology) -> dict[str, Any]:
    """One run in this process: wall, CPU, events, peak RSS."""
    simulate(case_topology("rc3-fast", 5.0))  # load the compiled kernels outside the timing
    started, cpu_started = time.perf_counter(), time.process_time()
    result = simulate(topology)
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "events": int(result.stats["events"]),
        "blocks": int(result.stats["blocks_produced"]),
        "txs": result.tables["transactions"].num_rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(topology: Topology, repeats: int) -> dict[str, Any]:
    """Median of ``repeats`` runs, each in a fresh process."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, __file__, "--one"],
            input=dump_topology(topology),
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout))
    simulated_s = topology.general.duration_s
    wall_s = statistics.median(r["wall_s"] for r in runs)
    cpu_s = statistics.median(r["cpu_s"] for r in runs)
    return {
        "nodes": len(topology.nodes),
        "links": 2 * len(topology.peer_edges),
        "simulated_s": simulated_s,
        "wall_s_median": wall_s,
        "wall_s_min": min(r["wall_s"] for r in runs),
        "wall_s_max": max(r["wall_s"] for r in runs),
        "speedup": simulated_s / wall_s,
        "cpu_s_median": cpu_s,
        "cpu_speedup": simulated_s / cpu_s,
        "events": runs[0]["events"],
        "blocks": runs[0]["blocks"],
        "txs": runs[0]["txs"],
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="Comma-separated case names.")
    parser.add_argument("--cost-curve", action="store_true", help="Nodes 7 to 1,000, 10 min.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: the topology on stdin, one measurement on stdout
        print(json.dumps(measure_once(parse_topology(sys.stdin.read()))))
        return
    if args.cost_curve:
        plan = {f"{n} nodes": (name, TEN_MIN_S) for n, name in COST_CURVE.items()}
    else:
        plan = {name: CASES[name] for name in args.cases.split(",")}
    rows = {}
    for label, (name, duration_s) in plan.items():
        rows[label] = measure(case_topology(name, duration_s), args.repeats)
        print(f"{label}: {json.dumps(rows[label])}", file=sys.stderr, flush=True)
    print(
        f"model benchmark, median of {args.repeats} ({platform.python_version()}, "
        f"{platform.machine()})"
    )
    print(
        "| case | nodes | links | simulated | wall (median) | sim s / wall s | CPU (median) "
        "| sim s / CPU s | events | peak RSS |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, row in rows.items():
        print(
            f"| {label} | {row['nodes']:,} | {row['links']:,} | {row['simulated_s']:,.0f} s "
            f"| {row['wall_s_median']:.1f} s | {row['speedup']:,.0f}x "
            f"| {row['cpu_s_median']:.1f} s | {row['cpu_speedup']:,.0f}x "
            f"| {row['events']:,} | {row['peak_rss_mb']:,.0f} MB |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
