"""``bitcell-sim measure TOPOLOGY --endpoints FILE``: record a running deployment from outside.

Polls every node of the endpoints file (its tip every ``--interval``, fetching each new tip's
blocks; its metrics once a second) for ``--duration`` or until Ctrl-C/SIGTERM, then writes a
measured run folder (blocks, block arrivals, node timeline) that ``compare`` reads like a devnet
run, and prints its summary and the arrival-time error bound.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from bitcell_sim.cli.common import console, err_console
from bitcell_sim.cli.report import report_run
from bitcell_sim.errors import DeployError
from bitcell_sim.load.plan import parse_seconds
from bitcell_sim.measure import (
    DEFAULT_POLL_INTERVAL_S,
    Measured,
    Watch,
    genesis_clock,
    write_measured_run,
)
from bitcell_sim.results import RunFolder, new_run_id
from bitcell_sim.topology import Topology, load_topology
from bitcell_sim.topology.endpoints import Endpoints, load_endpoints

#: Longest measurement one command takes (a day): bounded, like every run.
MAX_DURATION_S = 86_400.0


async def watch_until_signal(watch: Watch, deadline_unix_s: float) -> bool:
    """Watch until the deadline or until Ctrl-C/SIGTERM; True if a signal ended it.

    The signals set a flag the watch checks, rather than raising KeyboardInterrupt wherever the
    event loop happens to be (inside a request, a task's cleanup), which could end the command
    with a traceback and exit 1 instead of writing what it recorded.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await watch.run_until(deadline_unix_s, done=stop.is_set)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return stop.is_set()


def watch_options(
    endpoints_file: Path, topology: Topology, interval: str, genesis_unix: float | None
) -> tuple[Endpoints, Watch, str]:
    """The endpoints, a watch on them and where its genesis came from (``measure``, ``load``)."""
    endpoints = load_endpoints(endpoints_file, topology)
    interval_s = parse_seconds(interval)
    if not 0 < interval_s <= 10:
        raise DeployError(f"--interval {interval!r} must be > 0 and at most 10 s")
    genesis_unix_s, source = genesis_clock(endpoints, genesis_unix)
    return endpoints, Watch(endpoints, genesis_unix_s, poll_interval_s=interval_s), source


def print_measured(measured: Measured, genesis_source: str) -> None:
    if measured.half_width_max_s is None or measured.half_width_median_s is None:
        err_console.print("[yellow]warning:[/] no block arrived while the deployment was watched")
        return
    trip_ms = (measured.read_round_trip_median_s or 0.0) * 1e3
    console.print(
        f"arrival times: each within ±{measured.half_width_median_s * 1e3:.0f} ms (median), "
        f"±{measured.half_width_max_s * 1e3:.0f} ms (max) of the truth: half the time from "
        "a node's last read without the block to its first read with it, i.e. the poll "
        f"interval plus that read's round trip ({trip_ms:.0f} ms median); genesis from "
        f"{genesis_source}",
        highlight=False,
    )


def measure_command(
    topology: Annotated[Path, typer.Argument(help="The deployed topology's YAML.")],
    endpoints_file: Annotated[
        Path,
        typer.Option(
            "--endpoints",
            help="YAML/JSON: each node's rpc and metrics URL (deploy export writes a template).",
        ),
    ],
    duration: Annotated[str, typer.Option(help="How long to watch, e.g. 60, '5 min'.")] = "60",
    interval: Annotated[
        str,
        typer.Option(help="Tip poll interval; it bounds the arrival-time error (e.g. '100 ms')."),
    ] = f"{DEFAULT_POLL_INTERVAL_S:g}",
    genesis_unix: Annotated[
        float | None,
        typer.Option(help="Genesis, Unix s (default: the endpoints file's, else block 0's)."),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Run folder name.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("results"),
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw the plots.")] = False,
) -> None:
    """Watch a running deployment through its endpoints; write a measured run folder."""
    wanted = load_topology(topology)
    duration_s = parse_seconds(duration)
    if not 0 < duration_s <= MAX_DURATION_S:
        raise DeployError(f"--duration {duration!r} must be > 0 and at most a day")
    endpoints, watch, genesis_source = watch_options(endpoints_file, wanted, interval, genesis_unix)
    folder = RunFolder.create(results_dir, run_id or new_run_id(wanted, "measure"), wanted)
    console.print(
        f"measure: {len(endpoints.nodes)} nodes of {wanted.general.name} for {duration_s:g} s, "
        f"tips every {watch.poll_interval_s * 1e3:g} ms; run folder {folder.path}"
    )
    interrupted = asyncio.run(watch_until_signal(watch, time.time() + duration_s))
    if interrupted:
        err_console.print("interrupted: writing what was recorded")
    measured = write_measured_run(
        wanted,
        watch,
        folder,
        meta={"endpoints_file": str(endpoints_file), "genesis_source": genesis_source,
              "interrupted": interrupted},
    )  # fmt: skip
    report_run(folder, plots=not no_plots)
    print_measured(measured, genesis_source)
    console.print(f"run folder: {folder.path}")
