"""``bitcell-sim validate TOPOLOGY``: measure on a fresh devnet, predict what happened, compare.

For each case (every ``--tps`` × every ``--scenario``; default: the workload's rate with the
topology's faults) the command, bounded and step by step: starts a fresh devnet in the case's
folder, plays the case's faults on schedule while Locust runs the workload, waits for the last
confirmations, collects the measured run folder (records, fault journal, load window) and
stops the devnet (also on Ctrl-C, SIGTERM or any failure). Then it runs the model over
``--seeds`` seeds on what actually happened (the faults at the times the journal recorded, the
load window as run) and writes the comparison report into the case folder. With ``--check`` it
exits 2 unless every case is PASS.

This is the one place that wires model, devnet, faults and load together for a comparison, so
it lives with the CLI (docs/architecture.md); the comparison itself is ``results.compare``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
from bitcell_sim.cli.compare import print_comparison
from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.collect import collect, settled_until_s
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.errors import LoadError
from bitcell_sim.faults import ChaosScheduler, DevnetFaults, describe
from bitcell_sim.load.output import LOAD_DIR, SUMMARY_FILE, read_outputs
from bitcell_sim.load.plan import plan_from_topology
from bitcell_sim.load.runner import STARTUP_MARGIN_S, LocustProcess, locust_argv
from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.results import PASS, Comparison, RunFolder, compare
from bitcell_sim.results.report import write_report
from bitcell_sim.results.runs import RunRecords, read_runs
from bitcell_sim.results.summary import summarize
from bitcell_sim.topology import Fault, Topology, dump_topology, load_topology, parse_topology
from bitcell_sim.topology.units import parse_duration_arg

#: Exit status of ``--check`` when a case is not PASS.
NOT_PASSED_EXIT = 2
#: Scenario name of the case without faults.
NO_FAULTS = "none"
#: Scenario name of the case with every fault of the topology.
ALL_FAULTS = "all"
#: After the load, the settle time before collecting: the last blocks reach every node.
SETTLE_ROUNDS = 2


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


def _say(step: str, detail: str = "") -> None:
    stamp = time.strftime("%H:%M:%S")
    err_console.print(f"[dim]{stamp}[/] {step} {detail}", highlight=False, soft_wrap=True)


def measure(topology: Topology, folder: Path) -> Path:
    """Run ``topology`` (workload and faults) on a fresh devnet; the measured run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    planned = folder / "planned.yaml"
    planned.write_text(dump_topology(topology))
    # Fresh free ports, so the case runs beside any other devnet on this machine.
    topology_path = relocated_copy(planned, folder / "topology.yaml")
    topology = load_topology(topology_path)
    state_dir = folder / "devnet-state"
    _say("devnet", f"starting {len(topology.nodes)} nodes and the link emulator")
    devnet = up(topology_path, state_dir)
    try:
        return _measure_on(devnet, topology, topology_path, folder)
    finally:
        _say("devnet", "stopping")
        down(state_dir, purge=False)


def _measure_on(devnet: Devnet, topology: Topology, topology_path: Path, folder: Path) -> Path:
    genesis_unix_s = devnet.meta.genesis_time_unix_s
    chaos_errors: list[str] = []
    chaos: threading.Thread | None = None
    if topology.faults:
        scheduler = ChaosScheduler(DevnetFaults(devnet), topology.faults)

        def play() -> None:
            report = scheduler.run(
                on_step=lambda at_s, step: _say(
                    "fault", f"t={at_s:.2f} s {step.action} {describe(step.fault)}"
                )
            )
            chaos_errors.extend(report.errors)

        chaos = threading.Thread(target=play, name="chaos", daemon=True)
        chaos.start()

    measured = RunFolder.create(folder, "measured", topology)
    plan = plan_from_topology(topology)
    _say("load", f"{plan.profile.mean_tps:.1f} TPS for {plan.duration_s:.0f} s (Locust)")
    argv = locust_argv(
        measured.path,
        topology=measured.path / "topology.yaml",
        genesis_unix_s=genesis_unix_s,
    )
    process = LocustProcess(argv, measured.path / LOAD_DIR / "locust.log")
    try:
        status = process.wait(topology.workload_stages()[-1][1] + plan.drain_s + STARTUP_MARGIN_S)
    finally:
        process.stop()
    if not (measured.path / SUMMARY_FILE).exists():
        raise LoadError(
            f"Locust exited with status {status} and wrote no records: {process.log_tail()}"
        )
    transactions, _, _ = read_outputs(measured.path)
    if chaos is not None:
        last_end_s = max(f.end_s for f in topology.faults)
        chaos.join(max(genesis_unix_s + last_end_s - time.time(), 0.0) + 30.0)
    round_s = topology.protocol.round_s
    settle_until = genesis_unix_s + min(topology.general.duration_s, _last_event_s(topology))
    while (wait_s := settle_until + SETTLE_ROUNDS * round_s - time.time()) > 0:
        time.sleep(min(wait_s, 1.0))
    _say("collect", "blocks, arrivals, node timelines, fault journal")
    stages = topology.workload_stages()
    collect(
        devnet,
        measured,
        until_s=settled_until_s(devnet),
        transactions=transactions,
        load_s=(stages[0][0], stages[-1][1]),
        peak_tps=max(max(s[2], s[3]) for s in stages),
        meta={"kind": "measured", "chaos_errors": chaos_errors},
    )
    return measured.path


def _last_event_s(topology: Topology) -> float:
    ends = [topology.workload_stages()[-1][1], *(f.end_s for f in topology.faults)]
    return max(ends)


def as_it_happened(measured: RunRecords) -> Topology:
    """The measured run's topology with each fault at the times the devnet's journal recorded.

    A fault the journal saw open at the end of the records keeps its planned end.
    """
    recorded = measured.meta.get("faults") or []
    faults = []
    for i, fault in enumerate(measured.topology.faults):
        held = recorded[i] if i < len(recorded) else None
        if held is None or held.get("kind") != fault.kind:
            faults.append(fault)
            continue
        start_s = float(held["start_s"])
        end_s = fault.end_s if held.get("end_s") is None else float(held["end_s"])
        faults.append(
            fault.model_copy(update={"start_s": start_s, "duration_s": max(end_s - start_s, 1e-3)})
        )
    return measured.topology.model_copy(update={"faults": tuple(faults)})


def predict(measured: RunRecords, seeds: int, folder: Path) -> list[RunRecords]:
    """The model over ``seeds`` seeds on what happened: see :func:`as_it_happened`."""
    base = as_it_happened(measured)
    runs = []
    for k in range(seeds):
        topology, _ = apply_overrides(base, seed=base.general.seed + k)
        result = simulate(topology)
        run = RunFolder.create(folder, f"seed-{topology.general.seed}", topology)
        for name, table in result.tables.items():
            run.write_records(name, table)
        run.write_json("summary.json", summarize(topology, result.tables, extras=result.stats))
        run.write_json("meta.json", {"kind": "model", "seed": topology.general.seed})
        runs.append(RunRecords.read(run.path))
    return runs


def validate_case(
    topology: Topology, case: Case, folder: Path, seeds: int, duration_s: float | None
) -> Comparison:
    scenario = case_topology(topology, case, duration_s)
    measured_path = measure(scenario, folder)
    _say("model", f"{seeds} seed(s) on what the devnet ran")
    measured = read_runs(measured_path)
    predicted = predict(measured[0], seeds, folder / "model")
    comparison = compare(predicted, measured)
    files = write_report(
        comparison, predicted, measured, folder, title=f"{topology.general.name} · {case.name}"
    )
    _say("report", str(files.html))
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
        _say(f"case {i}/{len(cases)}", f"{case.name}: {len(case.faults)} fault(s)")
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
