"""Benchmark: time-to-page and failover through the real monitoring stack, measured against the
prediction.

Starts a devnet of a topology (default rc3-fast, 7 nodes; ports shifted to a free block) with
Prometheus, Alertmanager, the webhook receiver and HAProxy, and the monitoring timings given
(default: 1 s scrape and evaluation, NodeDown for 5 s, group_wait 1 s, HAProxy inter 500 ms, fall
3, rise 2), kills and restarts one node ``--repeat`` times (``measure_node_failover``), and prints
each figure's median and range with the window ``monitoring.timing`` predicts for it.

    .venv/bin/python benchmarks/bench_monitoring.py [--repeat 5] [--node us-west-2]
        [--scrape "1 s"] [--inter "500 ms"] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bitcell_sim.devnet import down, up
from bitcell_sim.devnet.monitor import measure_node_failover, prometheus_alerts
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.faults import DevnetFaults
from bitcell_sim.topology.units import parse_duration_arg

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", type=Path, default=ROOT / "topologies" / "rc3-fast.yaml")
    parser.add_argument("--node", default="us-west-2")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scrape", default="1 s", help="scrape and evaluation interval")
    parser.add_argument("--node-down-for", default="5 s")
    parser.add_argument("--group-wait", default="1 s")
    parser.add_argument("--inter", default="500 ms", help="HAProxy check interval")
    parser.add_argument("--fall", type=int, default=3)
    parser.add_argument("--rise", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    scrape_s = parse_duration_arg(options.scrape)
    inter_s = parse_duration_arg(options.inter)
    for_s = parse_duration_arg(options.node_down_for)
    group_wait_s = parse_duration_arg(options.group_wait)
    monitoring = {
        "scrape_interval": options.scrape,
        "evaluation_interval": options.scrape,
        "group_wait": options.group_wait,
        "group_interval": "2 s",
        "alert_for": {"NodeDown": options.node_down_for, "RegionDown": options.scrape},
        "health_check": {"inter": options.inter, "fall": options.fall, "rise": options.rise},
    }
    predicted = {
        "kill -> HAProxy DOWN": ((options.fall - 1) * inter_s, options.fall * inter_s),
        "kill -> last failed call sent": (0.0, options.fall * inter_s),
        "kill -> NodeDown firing": (for_s, for_s + 2 * scrape_s),
        "kill -> NodeDown at the webhook": (
            for_s + group_wait_s,
            for_s + 2 * scrape_s + group_wait_s,
        ),
        "/health 200 -> HAProxy UP": ((options.rise - 1) * inter_s, options.rise * inter_s),
        "/health 200 -> NodeDown resolved": (0.0, 2 * scrape_s),
        "/health 200 -> resolved at the webhook": (0.0, 2 * scrape_s + 2.0),
    }
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        topology = relocated_copy(
            options.topology,
            Path(tmp) / "topology.yaml",
            devnet={"genesis_delay": "2 s"},
            monitoring=monitoring,
        )
        devnet = up(topology, Path(tmp) / "state", monitoring=True, timeout_s=120)
        try:
            faults = DevnetFaults(devnet)
            for index in range(options.repeat):
                while prometheus_alerts(devnet):
                    time.sleep(0.2)
                run = measure_node_failover(devnet, options.node, faults.kill, faults.restart)
                runs.append(run.relative() | {"front-door errors": float(len(run.errors)),
                                              "front-door calls": float(run.requests)})  # fmt: skip
                print(f"run {index + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()),
                      file=sys.stderr)  # fmt: skip
        finally:
            down(Path(tmp) / "state", grace_s=2.0)
    print(f"{options.repeat} runs, node {options.node}")
    print("| figure | median s | range s | predicted s |")
    print("|---|---:|---:|---:|")
    table = {}
    for name in runs[0]:
        values = [r[name] for r in runs]
        median, low, high = statistics.median(values), min(values), max(values)
        window = predicted.get(name)
        bounds = "" if window is None else f"{window[0]:.2f}-{window[1]:.2f}"
        table[name] = {"median": median, "min": low, "max": high, "predicted": window}
        print(f"| {name} | {median:.2f} | {low:.2f}-{high:.2f} | {bounds} |")
    if options.json:
        settings = {k: str(v) for k, v in vars(options).items()}
        options.json.write_text(
            json.dumps({"options": settings, "figures": table, "runs": runs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
