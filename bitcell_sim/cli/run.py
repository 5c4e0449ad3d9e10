"""``bitcell-sim run TOPOLOGY``: predict a network with the model and write a run folder.

Overrides (``--seed``, ``--duration``, ``--tps``) are printed and written into the run's
resolved topology. The run folder gets the records, ``summary.json``, ``meta.json`` and plots;
the summary is printed as tables. Exit 0 when the run completed; with ``--check``, exit 2 if an
expectation FAILed.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bitcell_sim.cli.common import NoPlotsOption, ResultsDirOption, console, err_console
from bitcell_sim.errors import ResultsError
from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.results import RunFolder, RunWindow, new_run_id, software_versions
from bitcell_sim.results.summary import failed_expectations, summarize
from bitcell_sim.results.table import summary_tables
from bitcell_sim.topology import load_topology
from bitcell_sim.topology.units import parse_duration_arg

#: Exit status of ``run --check`` when an expectation failed.
EXPECTATION_FAILED_EXIT = 2


def run(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    seed: Annotated[
        int | None, typer.Option(min=0, help="Override general.seed.", show_default=False)
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            help="Override general.duration, e.g. '5min', '90 s' or 90 (seconds).",
            show_default=False,
        ),
    ] = None,
    tps: Annotated[
        float | None,
        typer.Option(min=0, help="Override the workload with a constant rate.", show_default=False),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Run folder name (default <topology>-model-<UTC time>).", show_default=False
        ),
    ] = None,
    results_dir: ResultsDirOption = Path("results"),
    no_plots: NoPlotsOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar, no override notes.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 2 if an expectation of the topology FAILs.")
    ] = False,
) -> None:
    """Predict sync, failover and throughput of TOPOLOGY with the discrete-event model."""
    base = load_topology(topology)
    duration_s = None
    if duration is not None:
        try:
            duration_s = parse_duration_arg(duration)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--duration") from None
    topo, changes = apply_overrides(base, seed=seed, duration_s=duration_s, tps=tps)
    if not quiet:
        for change in changes:
            err_console.print(f"override {change}", highlight=False)
    try:
        folder = RunFolder.create(results_dir, run_id or new_run_id(topo, "model"), topo)
    except ResultsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run-id") from None

    started = time.time()
    show_progress = not quiet and err_console.is_terminal
    with Progress(
        TextColumn("simulating {task.fields[name]}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} / {task.total:,.0f} s simulated"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task("model", total=topo.general.duration_s, name=topo.general.name)

        def advance(now_s: float, total_s: float) -> None:
            progress.update(task, completed=now_s)

        try:
            result = simulate(topo, progress=advance if show_progress else None)
        except BaseException:
            # Leave no half-made run behind (the folder holds only the topology so far).
            shutil.rmtree(folder.path)
            raise

    for name, table in result.tables.items():
        folder.write_records(name, table)
    summary = summarize(topo, result.tables, extras=result.stats)
    folder.write_json("summary.json", summary)
    folder.write_json(
        "meta.json",
        {
            "kind": "model",
            "topology_source": str(topology),
            "seed": topo.general.seed,
            "overrides": [str(c) for c in changes],
            "simulated_s": result.simulated_s,
            "wall_s": result.wall_s,
            "sim_seconds_per_wall_second": result.speedup,
            "created_unix_s": started,
            "software": software_versions(),
            **RunWindow.of_topology(topo).to_meta(),
        },
    )
    if not no_plots:
        # matplotlib only when plots are drawn: it is most of this command's start-up time.
        from bitcell_sim.results.plots import write_plots

        write_plots(topo, result.tables, folder.subfolder("plots"))

    for table in summary_tables(summary):
        console.print(table)
    console.print(
        f"simulated {result.simulated_s:,.0f} s in {result.wall_s:,.2f} s "
        f"({result.speedup:,.0f}x real time); run folder: {folder.path}",
        highlight=False,
        soft_wrap=True,
    )
    failed = failed_expectations(summary)
    if check and failed:
        names = ", ".join(e["name"] for e in failed)
        err_console.print(f"[bold red]expectations failed:[/] {names}", highlight=False)
        raise typer.Exit(EXPECTATION_FAILED_EXIT)
