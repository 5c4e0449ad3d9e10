"""``bitcell-sim sweep TOPOLOGY --set PATH=VALUES ...``: model runs over a grid, on Dask.

Every combination of the ``--set`` axes runs ``--replications`` times (seeds ``seed``,
``seed+1``, ...), on a Dask LocalCluster of ``--workers`` processes, on an existing scheduler
(``--scheduler tcp://HOST:PORT``), or in this process (``--serial``). Every run is built and
validated first, so a bad path or value is an error before anything runs. Each finished run is
saved at once in the sweep's run folder; Ctrl-C or SIGTERM stops it and closes the cluster,
and the same command again (same grid, seeds, topology and software: the default run id is
their hash) resumes and runs only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bitcell_sim.cli.common import (
    NoPlotsOption,
    ResultsDirOption,
    console,
    err_console,
    raise_on_sigterm,
)
from bitcell_sim.model.sweep import parse_set, plan_sweep, point_intervals, sweep
from bitcell_sim.results import software_versions
from bitcell_sim.results.sweep_folder import SweepFolder
from bitcell_sim.topology import load_topology

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT = 130
#: Figures printed per point at the end (mean over replications), for at most MAX_ROWS points.
SHOWN = ("steady_confirmed_tps", "confirmation_p95_s", "rejection_rate", "forks")
MAX_ROWS = 40


@contextmanager
def _executor(
    scheduler: str | None, workers: int | None, serial: bool
) -> Iterator[Executor | None]:
    """A Dask executor: on the given scheduler, or on a LocalCluster closed on the way out."""
    if serial:
        yield None
        return
    from distributed import Client, LocalCluster  # only when a cluster is used (slow import)

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            message = f"cannot reach {scheduler}: {exc}"
            raise typer.BadParameter(message, param_hint="--scheduler") from None
        with client:
            yield client.get_executor()
        return
    count = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client.get_executor()


def sweep_command(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="A grid axis: PATH=a:b:step (range, ends included) or PATH=v1,v2. PATH is a "
            "dotted topology key (protocol.max_txs_per_block, workload.tps) or round, tps, "
            "duration. Repeat for more axes.",
            show_default=False,
        ),
    ],
    replications: Annotated[
        int, typer.Option(min=1, help="Runs per point, with seeds seed, seed+1, ...")
    ] = 1,
    seed: Annotated[
        int | None,
        typer.Option(min=0, help="First seed (default general.seed).", show_default=False),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of a running Dask scheduler.", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="LocalCluster worker processes (default: CPU count).", show_default=False
        ),
    ] = None,
    serial: Annotated[
        bool, typer.Option("--serial", help="Run in this process, no cluster.")
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Sweep folder name (default <topology>-sweep-<hash of the sweep>).",
            show_default=False,
        ),
    ] = None,
    results_dir: ResultsDirOption = Path("results"),
    no_plots: NoPlotsOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run the model over a grid of parameters (Dask), resumable, with a table and plots."""
    if scheduler is not None and (workers is not None or serial):
        raise typer.BadParameter("give --scheduler, or --workers/--serial, not both")
    base = load_topology(topology)
    grid: dict[str, list[Any]] = {}
    for axis in set_:
        key, values = parse_set(axis)
        if key in grid:
            raise typer.BadParameter(f"{key} is set twice", param_hint="--set")
        grid[key] = values
    first = base.general.seed if seed is None else seed
    seeds = list(range(first, first + replications))
    runs = plan_sweep(base, grid, seeds)  # every run validated before anything starts
    spec: dict[str, Any] = {"grid": grid, "seeds": seeds, "software": software_versions()}
    digest = hashlib.sha256(
        json.dumps({**spec, "base": sorted(r.key for r in runs)}, sort_keys=True).encode()
    ).hexdigest()[:10]
    try:
        folder, resumed = SweepFolder.open_or_create(
            results_dir,
            run_id or f"{base.general.name}-sweep-{digest}",
            base,
            {**spec, "topology_source": str(topology), "created_unix_s": time.time()},
        )
    except (ValueError, FileExistsError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--run-id") from None
    if resumed:
        err_console.print(
            f"resuming {folder.path}: {folder.finished_runs()} of {len(runs)} runs already done",
            highlight=False,
        )
    if all(folder.has(run.key) for run in runs):
        serial, scheduler = True, None  # nothing left to run: no cluster to start
    where = (
        "in this process"
        if serial
        else (scheduler or f"a LocalCluster of {workers or os.cpu_count()} workers")
    )
    points_count = len(runs) // len(seeds)
    err_console.print(
        f"sweep of {len(runs)} runs ({points_count} points x {len(seeds)} seeds) {where}",
        highlight=False,
    )
    show_progress = not quiet and err_console.is_terminal
    started = time.perf_counter()
    raise_on_sigterm()  # SIGTERM as Ctrl-C: save what is done, close the cluster
    try:
        with (
            _executor(scheduler, workers, serial) as executor,
            Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("runs"),
                TimeElapsedColumn(),
                console=err_console,
                disable=not show_progress,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task("sweep", total=len(runs))
            frame = sweep(
                base,
                grid,
                seeds,
                workers=1 if serial else None,
                executor=executor,
                progress=lambda done, total: progress.update(task, completed=done),
                store=folder,
            )
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: {folder.finished_runs()} of {len(runs)} runs saved in {folder.path}; "
            "run the same command again to resume",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None
    wall_s = time.perf_counter() - started
    points = point_intervals(frame, keys=list(grid))
    folder.write_tables(frame, points)
    if not no_plots:
        from bitcell_sim.results.sweep_plots import write_sweep_plots  # imports matplotlib

        write_sweep_plots(points, list(grid), folder.subfolder("plots"))
    console.print(_points_table(points, list(grid)))
    ran = len(runs) - frame.attrs["resumed"]
    console.print(
        f"{ran} runs in {wall_s:,.1f} s ({frame.attrs['resumed']} from an earlier attempt); "
        f"sweep folder: {folder.path}",
        highlight=False,
        soft_wrap=True,
    )


def _points_table(points: Any, keys: list[str]) -> Table:
    table = Table(title="sweep: mean over replications (95 % interval)")
    for key in keys:
        table.add_column(key)
    for name in SHOWN:
        table.add_column(name, justify="right")
    wide = points.pivot_table(
        index=["point", *keys], columns="figure", values=["mean", "ci_low", "ci_high"], sort=False
    )
    for count, (index, row) in enumerate(wide.iterrows()):
        if count == MAX_ROWS:
            table.caption = f"{len(wide) - MAX_ROWS} more points in points.parquet"
            break
        cells = [str(v) for v in index[1:]]
        for name in SHOWN:
            mean = row.get(("mean", name))
            if mean is None or mean != mean:
                cells.append("-")
                continue
            low, high = row.get(("ci_low", name)), row.get(("ci_high", name))
            band = f" ({low:,.3g}..{high:,.3g})" if low == low and high == high else ""
            cells.append(f"{mean:,.3g}{band}")
        table.add_row(*cells)
    return table
