"""One measured case and its prediction: the machinery ``validate`` and ``chaos`` share.

:func:`measure` runs a topology (its workload and faults) on a fresh devnet on free ports,
bounded and step by step: the faults on schedule while Locust runs the workload, the last
confirmations settled, an optional watch for recovery, the measured run folder collected (its
load window the one Locust ran), an optional look at the devnet's end state, the devnet stopped
(also on Ctrl-C, SIGTERM or any failure). :func:`predict` runs the model over seeds on what the
devnet ran (:func:`as_it_happened`). It wires model, devnet, faults and load, so it lives with
the CLI.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bitcell_sim.cli.common import err_console
from bitcell_sim.devnet import Devnet, down, up
from bitcell_sim.devnet.collect import Collected, collect, settled_until_s
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.errors import DevnetError, LoadError
from bitcell_sim.faults import ChaosScheduler, DevnetFaults, describe
from bitcell_sim.load.output import LOAD_DIR, SUMMARY_FILE, read_outputs
from bitcell_sim.load.plan import plan_from_topology
from bitcell_sim.load.runner import STARTUP_MARGIN_S, LocustProcess, locust_argv
from bitcell_sim.model import apply_overrides, simulate
from bitcell_sim.results import RunFolder
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.results.summary import summarize
from bitcell_sim.topology import Topology, dump_topology, load_topology

#: After the load, the settle time before collecting: the last blocks reach every node.
SETTLE_ROUNDS = 2

#: Called on the running devnet after the load settled, before the records are collected.
BeforeCollect = Callable[[Devnet, Topology], None]
#: Called on the running devnet with what was collected, before the devnet stops.
AfterCollect = Callable[[Devnet, Collected], None]


#: How long the monitoring stack may take to start after the nodes (measured: 20-40 s on a
#: busy 2-core machine), added to the genesis delay when it runs.
MONITORING_START_BUDGET_S = 60.0
#: How long after genesis (default genesis delay) Locust may first send: 3.1-6.0 s measured on
#: a quiet 2-core machine (docs/validation.md). The workload's own start counts towards it, the
#: rest is added to the genesis delay; without it the load starts a round late (the schedule
#: keeps its place in the rounds). When Locust is later still, the run records the shift and
#: the prediction follows it.
LOCUST_START_BUDGET_S = 6.0


def say(step: str, detail: str = "") -> None:
    stamp = time.strftime("%H:%M:%S")
    err_console.print(f"[dim]{stamp}[/] {step} {detail}", highlight=False, soft_wrap=True)


def measure(
    topology: Topology,
    folder: Path,
    before_collect: BeforeCollect | None = None,
    after_collect: AfterCollect | None = None,
    monitoring: bool = False,
) -> Path:
    """Run ``topology`` (workload and faults) on a fresh devnet, with the monitoring stack if
    asked; the measured run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    planned = folder / "planned.yaml"
    planned.write_text(dump_topology(topology))
    # Fresh free ports, so the case runs beside any other devnet on this machine.
    topology_path = relocated_copy(planned, folder / "topology.yaml")
    topology = load_topology(topology_path)
    state_dir = folder / "devnet-state"
    say("devnet", f"starting {len(topology.nodes)} nodes and the link emulator")
    # The stack starts once the nodes are ready, Locust after it; genesis (time 0 of the load and
    # the faults) must leave them that time, or the scenario's first seconds would be gone (the
    # load a round late) before it is played.
    delay_s = (
        topology.devnet.genesis_delay_s
        + (MONITORING_START_BUDGET_S if monitoring else 0.0)
        + max(LOCUST_START_BUDGET_S - topology.workload.start_s, 0.0)
    )
    devnet = up(topology_path, state_dir, monitoring=monitoring, genesis_delay_s=delay_s)
    late_s = time.time() - devnet.meta.genesis_time_unix_s
    if monitoring and late_s > 0:
        down(state_dir, purge=False)
        raise DevnetError(
            f"the devnet and its monitoring stack took {late_s:.1f} s past the genesis delay "
            f"of {delay_s:g} s to start: the load and faults would start late (is the machine "
            "busy?)"
        )
    try:
        return _measure_on(devnet, topology, folder, before_collect, after_collect)
    finally:
        say("devnet", "stopping")
        down(state_dir, purge=False)


def _measure_on(
    devnet: Devnet,
    topology: Topology,
    folder: Path,
    before_collect: BeforeCollect | None,
    after_collect: AfterCollect | None,
) -> Path:
    genesis_unix_s = devnet.meta.genesis_time_unix_s
    chaos_errors: list[str] = []
    chaos: threading.Thread | None = None
    if topology.faults:
        scheduler = ChaosScheduler(DevnetFaults(devnet), topology.faults)

        def play() -> None:
            report = scheduler.run(
                on_step=lambda at_s, step: say(
                    "fault", f"t={at_s:.2f} s {step.action} {describe(step.fault)}"
                )
            )
            chaos_errors.extend(report.errors)
            chaos_errors.extend(
                f"skipped {describe(step.fault)}: it ended before the devnet was up"
                for step in report.skipped
            )

        chaos = threading.Thread(target=play, name="chaos", daemon=True)
        chaos.start()

    measured = RunFolder.create(folder, "measured", topology)
    plan = plan_from_topology(topology)
    stages = topology.workload_stages()
    say("load", f"{plan.profile.mean_tps:.1f} TPS for {plan.duration_s:.0f} s (Locust)")
    argv = locust_argv(
        measured.path,
        topology=measured.path / "topology.yaml",
        genesis_unix_s=genesis_unix_s,
    )
    process = LocustProcess(argv, measured.path / LOAD_DIR / "locust.log")
    try:
        # Counted from genesis, which may still be ahead (the start budgets of measure).
        to_genesis_s = max(genesis_unix_s - time.time(), 0.0)
        status = process.wait(to_genesis_s + stages[-1][1] + plan.drain_s + STARTUP_MARGIN_S)
    finally:
        process.stop()
    if not (measured.path / SUMMARY_FILE).exists():
        raise LoadError(
            f"Locust exited with status {status} and wrote no records: {process.log_tail()}"
        )
    transactions, summary, _ = read_outputs(measured.path)
    load_s, shift_s = locust_window(topology, summary)
    if shift_s:
        say("load", f"Locust started {shift_s:g} s late, at {load_s[0]:g} s; the model follows")
    if chaos is not None:
        last_end_s = max(f.end_s for f in topology.faults)
        chaos.join(max(genesis_unix_s + last_end_s - time.time(), 0.0) + 30.0)
    round_s = topology.protocol.round_s
    faults_end_s = max((f.end_s for f in topology.faults), default=0.0)
    settle_s = max(load_s[1], min(topology.general.duration_s, faults_end_s))
    while (wait_s := genesis_unix_s + settle_s + SETTLE_ROUNDS * round_s - time.time()) > 0:
        time.sleep(min(wait_s, 1.0))
    if before_collect is not None:
        before_collect(devnet, topology)
    say("collect", "blocks, arrivals, node timelines, fault journal")
    collected = collect(
        devnet,
        measured,
        until_s=settled_until_s(devnet),
        transactions=transactions,
        load_s=load_s,
        peak_tps=max(max(s[2], s[3]) for s in stages),
        meta={"kind": "measured", "chaos_errors": chaos_errors, "load_shift_s": shift_s},
    )
    if after_collect is not None:
        after_collect(devnet, collected)
    return measured.path


def locust_window(
    topology: Topology, summary: Mapping[str, Any]
) -> tuple[tuple[float, float], float]:
    """The window (seconds since genesis) Locust ran ``topology``'s load in, from its summary,
    and how much later than planned it started (a whole number of rounds; 0 on time).

    The schedule is drawn to the end of the run (``general.duration``), so sends stop there
    shifted: the window ends there at the latest, as a prediction's does.
    """
    start_s = float(summary["run_start_s"])
    # Rounded: load time 0 is genesis + start + k rounds, less float noise from Unix seconds.
    shift_s = round(start_s - topology.workload.start_s, 6)
    end_s = min(start_s + float(summary["duration_s"]), topology.general.duration_s + shift_s)
    return (start_s, end_s), shift_s


def as_it_happened(measured: RunRecords) -> Topology:
    """The measured run's topology with the load where Locust ran it and each fault at the
    times the devnet's journal recorded.

    The workload moves by the run's ``load_shift_s`` (none in a run folder written before it
    was recorded): Locust replayed the schedule that much later, tx for tx. A fault the journal
    saw open at the end of the records keeps its planned end.
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
    topology = measured.topology.model_copy(update={"faults": tuple(faults)})
    shift_s = float(measured.meta.get("load_shift_s") or 0.0)
    if shift_s:
        topology = _load_moved(topology, shift_s)
    window = measured.meta.get("window_s")
    return _cut(topology, float(window[1])) if window else topology


def _cut(topology: Topology, end_s: float) -> Topology:
    """``topology`` run only as long as the records cover (the devnet stops a few rounds after
    the load and the faults, often before ``general.duration``): a prediction over the whole
    duration would add the idle rounds the measurement never had, empty blocks among them."""
    # To the millisecond below, so that the stored topology reads back the same.
    end_s = math.floor(end_s * 1e3) / 1e3
    general, workload = topology.general, topology.workload
    if end_s >= general.duration_s or end_s <= workload.start_s:
        return topology
    update: dict[str, Any] = {"general": general.model_copy(update={"duration_s": end_s})}
    if pinned := _pinned_length(topology):
        update["workload"] = workload.model_copy(update=pinned)
    return topology.model_copy(update=update)


def _pinned_length(topology: Topology) -> dict[str, Any]:
    """The workload's length, when it runs to the end of the run, as a ``duration_s`` update
    (so that moving its start or the run's end keeps the length it was sent for); else {}."""
    workload = topology.workload
    if workload.stages is None and workload.duration_s is None:
        return {"duration_s": topology.general.duration_s - workload.start_s}
    return {}


def _load_moved(topology: Topology, shift_s: float) -> Topology:
    """``topology`` with its workload ``shift_s`` later, the same txs at the same rates."""
    workload, general, scenario = topology.workload, topology.general, topology.scenario
    moved: dict[str, Any] = {"start_s": workload.start_s + shift_s, **_pinned_length(topology)}
    # The schedule ends with the run (no arrival at or after it): that end moves too.
    load_end_s = min(topology.workload_stages()[-1][1], general.duration_s) + shift_s
    if load_end_s > general.duration_s:
        general = general.model_copy(update={"duration_s": load_end_s})
    start_s = moved["start_s"]
    if scenario is not None and topology.faults:
        first_s = min(f.start_s for f in topology.faults)
        if first_s - start_s < scenario.baseline_s:
            # The baseline is the loaded time before the first fault, as the measured run had
            # it; a millisecond short, so that the stored topology still reads back (validated)
            # after its times are rounded.
            baseline_s = math.floor((first_s - start_s - 1e-3) * 1e3) / 1e3
            if baseline_s <= 0:
                raise LoadError(
                    f"the load started at {start_s:g} s, {shift_s:g} s late, not before the "
                    f"first fault at {first_s:g} s: no baseline to judge the scenario by (is the "
                    "machine busy?)"
                )
            scenario = scenario.model_copy(update={"baseline_s": baseline_s})
    return topology.model_copy(
        update={
            "workload": workload.model_copy(update=moved),
            "general": general,
            "scenario": scenario,
        }
    )


def predict(measured: RunRecords, seeds: int, folder: Path) -> list[RunRecords]:
    """The model over ``seeds`` seeds on what happened: see :func:`as_it_happened`."""
    return predict_topology(as_it_happened(measured), seeds, folder)


def predict_topology(base: Topology, seeds: int, folder: Path) -> list[RunRecords]:
    """The model over ``seeds`` seeds (the topology's, then the next ones), one run folder
    each in ``folder``."""
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
