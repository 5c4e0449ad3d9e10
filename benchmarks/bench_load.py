"""How many signed transactions per second one Locust process builds and submits.

One local Locust process runs ``loadtests/rpc.py`` (transactions plus its read tasks) against
the minimal JSON-RPC sink (``python -m bitcell_sim.load.sink``: answers at once, a block every
second) at increasing target rates; per level: achieved TPS over the hold phase, reads per tx,
schedule lag p99, RPC latency p50, the Locust process's CPU share and CPU per transaction
(reads included), and the bare cost of building one transaction, as Markdown.
Run: ``.venv/bin/python benchmarks/bench_load.py [--levels 250,500,1000] [--duration 10]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bitcell_sim.load import (
    FreshSenders,
    LocustProcess,
    TxFactory,
    locust_argv,
    read_outputs,
    recipient_key,
)
from bitcell_sim.load.sink import READY_PREFIX


def build_rate(n: int) -> float:
    """Fresh key + sign + encode + hex of one transaction, per second (no I/O)."""
    factory = TxFactory(recipient_key("bench"))
    senders = FreshSenders()
    start = time.perf_counter()
    for i in range(n):
        lease = senders.acquire()
        "0x" + factory.build(lease.keypair, 0, 0, 10**9 + i).encode().hex()
    return n / (time.perf_counter() - start)


def start_sink() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "bitcell_sim.load.sink", "--round", "1",
            "--pool", str(10**9), "--max-txs", str(10**6),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        raise SystemExit(f"sink did not start: {line}")
    return process, line[len(READY_PREFIX) :].strip()


def reads_per_tx(stats_csv: Path) -> float:
    """Read requests per transaction sent, from Locust's request counts."""
    counts = {}
    with stats_csv.open() as f:
        for row in csv.DictReader(f):
            counts[row["Name"]] = int(row["Request Count"])
    sent = counts.pop("eth_sendRawTransaction", 0)
    reads = sum(n for name, n in counts.items() if name != "Aggregated")
    return reads / sent if sent else float("nan")


def run_level(url: str, tps: float, duration_s: float, arrival: str, root: Path) -> list[str]:
    run_dir = root / f"tps-{tps:g}"
    argv = locust_argv(
        run_dir, host=url, tps=tps, duration_s=duration_s, arrival=arrival, extra=["--round", "1"]
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = LocustProcess(argv, root / f"locust-{tps:g}.log")
    try:
        status = process.wait(duration_s + 120)
    finally:
        process.stop()
    wall_s = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if status != 0:
        raise SystemExit(f"Locust exited {status} at {tps:g} TPS:\n{process.log_tail()}")
    _, summary, _ = read_outputs(run_dir)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    hold = summary["hold"]
    return [
        f"{tps:,.0f}",
        f"{hold['scheduled'] / hold['duration_s']:,.1f}",
        f"{hold['achieved_tps']:,.1f}",
        f"{hold['schedule_error_pct']:+.2f}%",
        f"{reads_per_tx(run_dir / 'load' / 'locust_stats.csv'):.2f}",
        f"{summary['schedule_lag_s']['p99'] * 1000:.1f}",
        f"{summary['rpc_latency_s']['p50'] * 1000:.2f}",
        f"{cpu_s / wall_s:.0%}",
        f"{cpu_s / max(summary['submitted'], 1) * 1e6:,.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", default="250,500,1000,1500,2000", help="target TPS levels")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--arrival", default="poisson", choices=("poisson", "constant"))
    parser.add_argument("--n", type=int, default=5000, help="transactions for the build rate")
    args = parser.parse_args()
    levels = [float(x) for x in args.levels.split(",")]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.duration:g} s per level, {args.arrival} arrivals\n"
    )
    print(f"build one fresh signed tx (no I/O): {build_rate(args.n):,.0f} tx/s\n")
    print(
        "| target TPS | scheduled TPS | achieved TPS | error vs schedule | reads per tx "
        "| lag p99 ms | rpc p50 ms | Locust CPU | Locust CPU µs per tx |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sink, url = start_sink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for tps in levels:
                row = run_level(url, tps, args.duration, args.arrival, Path(tmp))
                print("| " + " | ".join(row) + " |", flush=True)
    finally:
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    main()
