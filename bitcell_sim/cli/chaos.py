"""``bitcell-sim chaos SCENARIO.yaml|--all``: a failure scenario predicted, run under load, judged.

Per scenario (a topology with a ``scenario`` section, docs/chaos.md), in
``results/<run-id>/chaos/<scenario>/``: on a fresh devnet (``cli.measured_case``, shared with
``validate``) a loaded baseline, the faults on schedule, the recovery watched until every live
node holds one tip (bounded by ``scenario.recovery_timeout``), the measured run folder and the
devnet's end state (chain, pools, tips, processes) collected; then the model over ``--seeds``
seeds on the faults as they happened, the comparison report (``compare/``), the expectations
and the transaction ledger judged (``verdict.json``, ``verdict.md``, ``verdict.html``). With
``--predict-only`` only the model runs and its values are judged. Exit 1 when a verdict FAILs,
2 when one is UNKNOWN and none FAILs; a scenario that cannot be run (an error) counts as a
FAIL, and the next ones still run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bitcell_sim.cli.common import console, err_console, raise_on_sigterm
from bitcell_sim.cli.measured_case import measure, predict, predict_topology, say
from bitcell_sim.devnet import Devnet
from bitcell_sim.devnet.collect import Collected
from bitcell_sim.devnet.endstate import end_state
from bitcell_sim.errors import BitcellSimError, FaultError, TopologyError
from bitcell_sim.faults.measure import wait_for_common_tip
from bitcell_sim.results import FAIL, PASS, compare
from bitcell_sim.results.chaos import judge_scenario
from bitcell_sim.results.chaos_report import ChaosResult, verdict_cells, write_verdict
from bitcell_sim.results.ledger import CLASSES, ENDSTATE_FILE, EndState, ledger
from bitcell_sim.results.report import write_report
from bitcell_sim.results.runs import RunRecords, read_runs
from bitcell_sim.topology import Topology, load_topology

#: Where ``--all`` finds the scenarios.
SCENARIOS_DIR = Path("topologies/scenarios")
FAILED_EXIT, UNKNOWN_EXIT = 1, 2
#: The verdict column of a scenario that could not be run.
ERROR = "ERROR"
_TIMELINE_PLOTS = ("height_lag.png", "tps.png")


def scenario_files(paths: list[Path], run_all: bool, fast: bool, directory: Path) -> list[Path]:
    """The scenario files to run: those given, or with ``--all`` every file of ``directory``
    (the ``-fast`` variants with ``--fast``, else the others)."""
    if run_all == bool(paths):
        raise typer.BadParameter("give scenario files or --all (not both)", param_hint="SCENARIO")
    if paths:
        return paths
    found = sorted(p for p in directory.glob("*.yaml") if p.stem.endswith("-fast") == fast)
    if not found:
        raise typer.BadParameter(f"no scenario files in {directory}", param_hint="--all")
    return found


def load_scenario(path: Path) -> Topology:
    topology = load_topology(path)
    if topology.scenario is None:
        raise TopologyError([("scenario", f"{path} has no scenario section (docs/chaos.md)")])
    return topology


def _watch_recovery(devnet: Devnet, topology: Topology) -> None:
    """Wait, bounded by ``scenario.recovery_timeout`` after the last fault's end, until every
    running node holds one tip (a scenario that never reconverges is judged, not waited on)."""
    assert topology.scenario is not None
    last_end_s = max(f.end_s for f in topology.faults)
    deadline_unix_s = (
        devnet.meta.genesis_time_unix_s + last_end_s + topology.scenario.recovery_timeout_s
    )
    urls = {n: e.rpc_url for n, e in devnet.endpoints.items() if devnet.is_running(n)}
    timeout_s = max(deadline_unix_s - time.time(), 0.5)
    say("recovery", f"waiting up to {timeout_s:.0f} s for one tip on {len(urls)} nodes")
    try:
        converged = wait_for_common_tip(urls, timeout_s=timeout_s, poll_s=0.5)
        say("recovery", f"one tip at height {converged.tip.height}")
    except FaultError as exc:
        say("recovery", f"not reconverged: {exc}")


def _save_end_state(devnet: Devnet, collected: Collected) -> None:
    say("ledger", "final chain, pools, tips and processes of every node")
    window = collected.window
    timeline = collected.folder.read_records("node_timeline")
    down = window.down_windows(devnet.node_names)
    state = end_state(devnet, window.end_s, timeline, down)
    collected.folder.write_json(ENDSTATE_FILE, state.to_json())


def _mean_ledger(runs: list[RunRecords]) -> dict[str, float]:
    counts = [ledger(run.tables["transactions"], None).counts for run in runs]
    return {
        c: sum(k[c] for k in counts) / len(counts) for c in ("confirmed", "pending", "rejected")
    }


def alert_rows(measured: RunRecords) -> tuple[dict[str, Any], ...]:
    """The pages the webhook got beside the predicted ones, when the monitoring ran."""
    if measured.path is None or not (measured.path / "alerts.jsonl").is_file():
        return ()
    from bitcell_sim.monitoring.timing import (
        measured_pages_of_run,
        pages_side_by_side,
        predict_run,
    )

    rows = pages_side_by_side(
        predict_run(measured.path).alerts, measured_pages_of_run(measured.path)
    )
    return tuple(
        {
            "alert": r.alert,
            "labels": r.labels,
            "predicted": None if r.predicted is None else r.predicted.fires,
            "paged_s": None if r.measured is None else r.measured.paged_s,
            "resolved_s": None if r.measured is None else r.measured.resolved_s,
        }
        for r in rows
    )


def run_scenario(
    topology: Topology, name: str, folder: Path, seeds: int, predict_only: bool, monitoring: bool
) -> ChaosResult:
    """One scenario end to end (see the module docstring); its verdict files in ``folder``."""
    assert topology.scenario is not None
    if predict_only:
        say("model", f"{seeds} seed(s) on the scenario as written")
        predicted = predict_topology(topology, seeds, folder / "model")
        verdicts = judge_scenario(topology.scenario, None, predicted)
        result = ChaosResult(
            name, tuple(verdicts), None, _mean_ledger(predicted), predict_only=True
        )
        write_verdict(result, folder)
        return result
    measured_path = measure(topology, folder, _watch_recovery, _save_end_state, monitoring)
    measured = read_runs(measured_path)
    say("model", f"{seeds} seed(s) on the faults as they happened")
    predicted = predict(measured[0], seeds, folder / "model")
    files = write_report(
        compare(predicted, measured),
        predicted,
        measured,
        folder / "compare",
        title=f"chaos · {name}",
    )
    run = measured[0]
    end = EndState.read(measured_path)
    measured_ledger = ledger(
        run.tables["transactions"], end, run.window.down_windows(run.topology.node_names)
    )
    verdicts = judge_scenario(topology.scenario, run, predicted, measured_ledger, end)
    result = ChaosResult(
        name,
        tuple(verdicts),
        measured_ledger,
        _mean_ledger(predicted),
        faults=tuple(f.to_dict() for f in run.window.faults),
        alerts=alert_rows(run),
        plots=tuple(p for p in files.plots if p.name in _TIMELINE_PLOTS),
    )
    write_verdict(result, folder)
    return result


def print_result(result: ChaosResult) -> None:
    table = Table(title=f"chaos {result.scenario}: {result.verdict}", title_justify="left")
    for column in ("expectation", "measured", "predicted", "verdict", "detail"):
        table.add_column(column)
    colour = {PASS: "green", FAIL: "red"}
    for v in result.verdicts:
        cells = verdict_cells(v)
        style = colour.get(v.verdict, "yellow")
        table.add_row(cells[0], cells[1], cells[2], f"[{style}]{v.verdict}[/]", cells[5])
    console.print(table)
    if result.measured_ledger is not None:
        counts = result.measured_ledger.counts
        shown = ", ".join(f"{c} {counts[c]}" for c in CLASSES if counts[c])
        console.print(f"ledger: {shown or 'no transactions'}", highlight=False)


def chaos_command(
    scenarios: Annotated[
        list[Path] | None,
        typer.Argument(help="Scenario topology files (docs/chaos.md).", show_default=False),
    ] = None,
    run_all: Annotated[
        bool, typer.Option("--all", help="Every scenario of --scenarios-dir.")
    ] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="With --all: the -fast variants (1 s phases).")
    ] = False,
    predict_only: Annotated[
        bool, typer.Option("--predict-only", help="Only the model: judge its prediction.")
    ] = False,
    seeds: Annotated[int, typer.Option(help="Model runs per scenario.", min=1)] = 3,
    monitoring: Annotated[
        bool, typer.Option("--monitoring", help="Run Prometheus, Alertmanager and HAProxy too.")
    ] = False,
    scenarios_dir: Annotated[Path, typer.Option(help="Where --all looks.")] = SCENARIOS_DIR,
    results_dir: Annotated[Path, typer.Option(help="Where the run folder goes.")] = Path("results"),
    run_id: Annotated[
        str | None, typer.Option(help="Folder name (default chaos-<UTC time>).")
    ] = None,
) -> None:
    """Predict each failure scenario, run it on a fresh devnet under load, and judge it."""
    files = scenario_files(list(scenarios or []), run_all, fast, scenarios_dir)
    topologies = [(path.stem, load_scenario(path)) for path in files]  # every file checked first
    root = results_dir / (run_id or f"chaos-{time.strftime('%Y%m%d-%H%M%S')}") / "chaos"
    if root.exists() and any(root.iterdir()):
        raise typer.BadParameter(f"{root} exists and is not empty", param_hint="--run-id")
    raise_on_sigterm()
    outcomes: list[tuple[str, str, Path]] = []  # scenario, verdict (or ERROR), folder
    for i, (name, topology) in enumerate(topologies, 1):
        say(f"scenario {i}/{len(topologies)}", f"{name}: {len(topology.faults)} fault(s)")
        folder = root / name
        try:
            result = run_scenario(topology, name, folder, seeds, predict_only, monitoring)
        except KeyboardInterrupt:
            err_console.print("interrupted: the devnet of this scenario was stopped")
            raise typer.Exit(130) from None
        except BitcellSimError as exc:  # the next scenarios still run; the exit says it
            err_console.print(f"[bold red]{name}: error:[/] {exc}", highlight=False)
            outcomes.append((name, ERROR, folder))
            continue
        print_result(result)
        outcomes.append((name, result.verdict, folder))
    summary = Table(title=f"chaos ({root})")
    for column in ("scenario", "verdict", "verdict file"):
        summary.add_column(column)
    for name, verdict, folder in outcomes:
        summary.add_row(name, verdict, str(folder / "verdict.html"))
    console.print(summary)
    verdicts = {verdict for _, verdict, _ in outcomes}
    if FAIL in verdicts or ERROR in verdicts:
        raise typer.Exit(FAILED_EXIT)
    if verdicts != {PASS}:
        raise typer.Exit(UNKNOWN_EXIT)
