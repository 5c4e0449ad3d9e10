"""Accuracy of ``bitcell-sim measure``: its block arrivals against the devnet's own records.

Starts a fresh rc3-fast devnet on free ports, runs ``bitcell-sim measure`` on it for
``--duration`` at each ``--interval``, collects the devnet's records of the same window
(``devnet.collect``: every node logs each import) and prints, per interval, the median and
maximum of |measured - logged| over the final chain's arrivals and the bound meta.json gives.
Run from the repository root (under the CPU lock)::

    .venv/bin/python benchmarks/bench_measure.py [--duration 60] [--interval 0.05 0.1 0.25]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bitcell_sim.devnet import down, up
from bitcell_sim.devnet.collect import collect
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.results import RunFolder

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per interval")
    parser.add_argument("--interval", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-measure-") as tmp:
        root = Path(tmp)
        topology = relocated_copy(
            ROOT / "topologies" / "rc3-fast.yaml", root / "rc3-fast.yaml",
            devnet={"genesis_delay": "2 s"},
        )  # fmt: skip
        devnet = up(topology, root / "state", timeout_s=60)
        try:
            nodes = {n: {"rpc": e.rpc_url, "metrics": e.metrics_url}
                     for n, e in devnet.endpoints.items()}  # fmt: skip
            endpoints = root / "endpoints.yaml"
            endpoints.write_text(yaml.safe_dump(
                {"genesis_time_unix_s": devnet.meta.genesis_time_unix_s, "nodes": nodes}
            ))  # fmt: skip
            for interval in args.interval:
                run_id = f"i{interval:g}"
                subprocess.run(
                    [sys.executable, "-m", "bitcell_sim", "measure", str(topology),
                     "--endpoints", str(endpoints), "--duration", f"{args.duration:g}",
                     "--interval", f"{interval:g}", "--results-dir", str(root),
                     "--run-id", run_id, "--no-plots"],
                    check=True, capture_output=True, cwd=ROOT,
                )  # fmt: skip
                measured = RunFolder.open(root / run_id)
                meta = measured.read_json("meta.json")
                since_s, until_s = meta["window_s"]
                truth = RunFolder.create(root, f"{run_id}-truth", devnet.topology)
                collect(devnet, truth, since_s=since_s, until_s=until_s)
                final = truth.read_records("blocks").to_pandas()
                final = set(final[~final.orphaned].block_hash)

                def arrivals(folder: RunFolder, final: set[str] = final) -> object:
                    table = folder.read_records("block_arrivals").to_pandas()
                    table = table[table.block_hash.isin(final)]
                    return table.set_index(["block_hash", "node"]).arrival_s

                ours, theirs = arrivals(measured), arrivals(truth)
                both = ours.index.intersection(theirs.index)  # type: ignore[attr-defined]
                error = (ours[both] - theirs[both]).abs()  # type: ignore[index]
                timing = meta["arrival_timing"]
                rows.append(
                    {
                        "interval_s": interval,
                        "arrivals": len(error),
                        "missing": len(theirs) - len(both),  # type: ignore[arg-type]
                        "error_median_ms": 1e3 * float(error.median()),
                        "error_max_ms": 1e3 * float(error.max()),
                        "bound_median_ms": 1e3 * timing["error_bound_median_s"],
                        "bound_max_ms": 1e3 * timing["error_bound_max_s"],
                        "read_median_ms": 1e3 * timing["read_round_trip_median_s"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        finally:
            down(root / "state")
    print("| poll interval | arrivals | error median | error max | bound median | bound max |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['interval_s'] * 1e3:g} ms | {r['arrivals']} | {r['error_median_ms']:.1f} ms"
              f" | {r['error_max_ms']:.1f} ms | ±{r['bound_median_ms']:.0f} ms"
              f" | ±{r['bound_max_ms']:.0f} ms |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
