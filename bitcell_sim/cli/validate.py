"""``bitcell-sim validate TOPOLOGY``: measure on a fresh devnet, predict what happened, compare.

For each case (every ``--tps`` × every ``--scenario``; default: the workload's rate with the
topology's faults) the command, bounded and step by step: starts a fresh devnet in the case's
folder, plays the case's faults on schedule while Locust runs the workload, waits for the last
confirmations, collects the measured run folder (records, fault journal, load window) and
stops the devnet (also on Ctrl-C, SIGTERM or any failure). Then it runs the model over
``--seeds`` seeds on what actually happened (the faults at the times the journal recorded, the
load window as run) and writes the comparison report into the case folder. With ``--check`` it
exits 2 unless every case is PASS.

The measured case and the prediction are ``cli.measured_case`` (shared with ``chaos``); the
comparison itself is ``results.compare``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
from bitcell_sim.cli.compare import print_comparison
from bitcell_sim.cli.measured_case import measure, predict, say
from bitcell_sim.model import apply_overrides
from bitcell_sim.results import PASS, Comparison, compare
from bitcell_sim.results.report import write_report
from bitcell_sim.results.runs import read_runs
from bitcell_sim.topology import Fault, Topology, dump_topology, load_topology, parse_topology
from bitcell_sim.topology.units import parse_duration_arg

#: Exit status of ``--check`` when a case is not PASS.
NOT_PASSED_EXIT = 2
#: Scenario name of the case without faults.
NO_FAULTS = "none"
#: Scenario name of the case with every fault of the topology.
ALL_FAULTS = "all"


@dataclass(frozen=True)
class Case:
    """One measured run and its prediction: a rate and the faults played."""

    name: str
    tps: float | None
    faults: tuple[Fault, ...]


def scenario_key(text: str) -> str:
    """Labels compare loosely: "Node failure", "node-failure" and "node_failure" are one."""
    return re.sub(r"[\s_-]+", "-", text.strip().lower())


def select_faults(topology: Topology, scenario: str) -> tuple[Fault, ...]:
    """The faults a scenario name selects: all, none, or those whose label or kind match."""
    key = scenario_key(scenario)
    if key == ALL_FAULTS:
        return topology.faults
    if key == NO_FAULTS:
        return ()
    chosen = tuple(
        f for f in topology.faults if key in (scenario_key(f.label), scenario_key(f.kind))
    )
    if not chosen:
        names = sorted({scenario_key(f.label or f.kind) for f in topology.faults})
        raise typer.BadParameter(
            f"no fault of the topology is labelled {scenario!r} "
            f"(scenarios: {', '.join([ALL_FAULTS, NO_FAULTS, *names])})",
            param_hint="--scenario",
        )
    return chosen


def plan_cases(topology: Topology, tps: Sequence[float], scenarios: Sequence[str]) -> list[Case]:
    rates: list[float | None] = list(tps) or [None]
    chosen = list(scenarios) or [ALL_FAULTS if topology.faults else NO_FAULTS]
    cases = []
    for rate in rates:
        for scenario in chosen:
            label = scenario_key(scenario)
            name = label if rate is None else f"{rate:g}tps-{label}"
            cases.append(Case(name, rate, select_faults(topology, scenario)))
    return cases


def case_topology(topology: Topology, case: Case, duration_s: float | None) -> Topology:
    """The topology the case runs: its faults, and the rate and duration overrides."""
    faulted = topology.model_copy(update={"faults": case.faults})
    # Through the loader again so that the fault references are checked as for a file.
    changed, _ = apply_overrides(
        parse_topology(dump_topology(faulted)), duration_s=duration_s, tps=case.tps
    )
    return changed


def validate_case(
    topology: Topology, case: Case, folder: Path, seeds: int, duration_s: float | None
) -> Comparison:
    scenario = case_topology(topology, case, duration_s)
    measured_path = measure(scenario, folder)
    say("model", f"{seeds} seed(s) on what the devnet ran")
    measured = read_runs(measured_path)
    predicted = predict(measured[0], seeds, folder / "model")
    comparison = compare(predicted, measured)
    files = write_report(
        comparison, predicted, measured, folder, title=f"{topology.general.name} · {case.name}"
    )
    say("report", str(files.html))
    return comparison


def validate_command(
    topology: Annotated[Path, typer.Argument(help="Topology YAML file.", show_default=False)],
    tps: Annotated[
        list[float] | None,
        typer.Option(help="Rate of a case (repeatable; default: the workload's).", min=0),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Faults of a case by label or kind, 'all' or 'none' (repeatable; default all)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Model runs per case.", min=1)] = 5,
    duration: Annotated[
        str | None, typer.Option(help="Override general.duration (bounds each case).")
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="Where the validation folder goes.")] = Path(
        "results"
    ),
    run_id: Annotated[
        str | None, typer.Option(help="Folder name (default <topology>-validate-<UTC time>).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 2 unless every case's verdict is PASS.")
    ] = False,
) -> None:
    """Measure TOPOLOGY on a fresh devnet, predict what happened, and compare the two."""
    base = load_topology(topology)
    duration_s = None if duration is None else parse_duration_arg(duration)
    cases = plan_cases(base, tps or [], scenario or [])
    root = results_dir / (
        run_id or f"{base.general.name}-validate-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if root.exists() and any(root.iterdir()):
        raise typer.BadParameter(f"{root} exists and is not empty", param_hint="--run-id")
    raise_on_sigterm()
    verdicts: dict[str, Comparison] = {}
    for i, case in enumerate(cases, 1):
        say(f"case {i}/{len(cases)}", f"{case.name}: {len(case.faults)} fault(s)")
        try:
            verdicts[case.name] = validate_case(base, case, root / case.name, seeds, duration_s)
        except KeyboardInterrupt:
            err_console.print("interrupted: the devnet of this case was stopped")
            raise typer.Exit(130) from None
        print_comparison(verdicts[case.name])
    table = Table(title=f"validation of {base.general.name} ({root})")
    for column in ("case", "verdict", "PASS", "FAIL", "UNKNOWN", "report"):
        table.add_column(column)
    for name, comparison in verdicts.items():
        counts = comparison.counts()
        table.add_row(
            name,
            comparison.verdict,
            *(str(counts[v]) for v in ("PASS", "FAIL", "UNKNOWN")),
            str(root / name / "report.html"),
        )
    console.print(table)
    if check and any(c.verdict != PASS for c in verdicts.values()):
        raise typer.Exit(NOT_PASSED_EXIT)
