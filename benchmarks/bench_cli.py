"""Benchmark of the command's start-up: wall time of ``bitcell-sim`` commands (median of repeats).

Cases: ``run --help`` (import and argument parsing only) and a one-second ``run`` of rc3-fast
without plots (start-up plus a trivial simulation). Run from the repository root::

    .venv/bin/python benchmarks/bench_cli.py [--repeats 9] [--source DIR] [--json out.json]

``--source`` runs the command from another checkout (its ``bitcell_sim`` first on the path),
so two versions are timed with the same interpreter. Each case is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Modules ``run`` has no use for: the load side (Locust, gevent), the devnet and emulator, and
# matplotlib's window machinery.
UNUSED = ("locust", "gevent", "bitcell_sim.devnet", "bitcell_sim.netem", "bitcell_sim.load",
          "aiohttp", "matplotlib.backend_bases", "matplotlib.pyplot")  # fmt: skip


def command(*args: str) -> list[str]:
    code = f"import sys; sys.argv = ['bitcell-sim', *{list(args)!r}]; " + (
        "from bitcell_sim.cli import main; main()"
    )
    return [sys.executable, "-c", code]


def cases(source: Path, out_dir: Path) -> dict[str, list[str]]:
    topology = str(source / "topologies" / "rc3-fast.yaml")
    short_run = ["run", topology, "--duration", "1", "--no-plots", "--quiet"]
    return {
        "run --help": command("run", "--help"),
        "run rc3-fast 1 s, no plots": command(*short_run, "--results-dir", str(out_dir)),
    }


def run_in(source: Path, argv: list[str], cwd: Path) -> str:
    """Run ``argv`` with ``source``'s package first on the path (not the current directory's)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, text=True).stderr


def time_case(argv: list[str], source: Path, cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_in(source, argv, cwd)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def unused_modules(source: Path, cwd: Path) -> list[str]:
    """The modules of ``UNUSED`` that ``run --help`` imports."""
    code = (
        "import sys; sys.argv = ['bitcell-sim', 'run', '--help']\n"
        "from bitcell_sim.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {UNUSED!r} if m in sys.modules), file=sys.stderr)"
    )
    out = run_in(source, [sys.executable, "-c", code], cwd)
    return [m for m in out.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    source = args.source.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        out_dir = Path(folder)
        for name, argv in cases(source, out_dir).items():
            median_s = time_case(argv, source, out_dir, args.repeats)
            rows.append({"case": name, "wall_s_median": median_s, "repeats": args.repeats})
            print(f"{name:32} {median_s * 1000:8.0f} ms (median of {args.repeats})")
        unused = unused_modules(source, out_dir)
    print(f"unused modules imported by run: {', '.join(unused) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"source": str(source), "cases": rows, "unused": unused}))


if __name__ == "__main__":
    main()
