"""The verdicts of a chaos scenario: each expectation of ``scenario.expect`` judged on a run.

:func:`scenario_values` computes, from any run's records and window (a prediction's or a
measurement's, by the same code), the figures the expectations limit: recovery and
reconvergence, the chain's progress gap during the faults, confirmed TPS during and after them,
confirmation p95, rejections, and the block interval, confirmation p95, RPC p99 and fork rate
during the faults against the baseline before them. :func:`judge_scenario` judges the measured
run against the limits (the model's value beside each), plus the ledger and the end-state
checks: PASS, FAIL, or UNKNOWN when there is no data (never PASS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bitcell_sim.results.compare import FAIL, PASS, UNKNOWN, overall_verdict
from bitcell_sim.results.ledger import EndState, Ledger
from bitcell_sim.results.metrics import run_metrics
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.topology.schema import ScenarioSpec


@dataclass(frozen=True)
class Expectation:
    """One figure a scenario may limit: its key in ``scenario.expect``, unit and direction."""

    key: str
    field: str
    unit: str
    kind: str  # "max" or "min"
    description: str


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("recovery_max", "recovery_max_s", "s", "max",
                "fault end to each affected node holding the best tip (worst)"),
    Expectation("reconvergence_max", "reconvergence_max_s", "s", "max",
                "fault end to one tip on every up node (worst)"),
    Expectation("progress_gap_max", "progress_gap_max_rounds", "rounds", "max",
                "longest gap between final-chain blocks across the faults"),
    Expectation("confirmed_tps_min_during", "confirmed_tps_min_during", "TPS", "min",
                "confirmations per second during the faults"),
    Expectation("confirmed_tps_min_after", "confirmed_tps_min_after", "TPS", "min",
                "confirmations per second from the last fault's end to the load's end"),
    Expectation("confirmation_p95_max", "confirmation_p95_max_s", "s", "max",
                "submission to confirmation p95, whole run"),
    Expectation("rejection_rate_max", "rejection_rate_max", "", "max",
                "rejected / submitted, whole run"),
    Expectation("block_interval_increase_max", "block_interval_increase_max", "%", "max",
                "block interval during the faults vs the baseline"),
    Expectation("confirmation_p95_increase_max", "confirmation_p95_increase_max", "%", "max",
                "confirmation p95 of txs sent during the faults vs the baseline"),
    Expectation("rpc_latency_p99_increase_max", "rpc_latency_p99_increase_max", "%", "max",
                "RPC p99 at nodes no fault touches, during the faults vs the baseline"),
    Expectation("fork_rate_max", "fork_rate_max", "", "max",
                "heights with more than one block / heights, during the faults"),
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One judged expectation: measured and predicted values, the limit, PASS/FAIL/UNKNOWN."""

    name: str
    description: str
    unit: str
    limit: float | str
    measured: float | str | None
    predicted: float | None
    verdict: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in self.__dict__.items()}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def _fault_spans(run: RunRecords) -> list[tuple[float, float]]:
    window = run.window
    return [(f.start_s, window.end_s if f.end_s is None else f.end_s) for f in window.faults]


def _inside(times: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(times.shape, dtype=bool)
    for start_s, end_s in spans:
        mask |= (times >= start_s) & (times <= end_s)
    return mask


def _column(run: RunRecords, table: str, name: str) -> np.ndarray:
    values = run.tables[table].column(name).to_pylist()
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _mean_interval(times: np.ndarray) -> float | None:
    return float(np.mean(np.diff(np.sort(times)))) if times.size >= 2 else None


def _percentile(values: np.ndarray, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else None


def _increase(during: float | None, baseline: float | None) -> float | None:
    if during is None or baseline is None or baseline <= 0:
        return None
    return during / baseline - 1.0


def baseline_span(run: RunRecords) -> tuple[float, float] | None:
    """The no-fault period right before the first fault, ``scenario.baseline`` long."""
    topology = run.topology
    spans = _fault_spans(run)
    if not spans:
        return None
    first_s = min(s for s, _ in spans)
    length_s = topology.scenario.baseline_s if topology.scenario else first_s
    load = run.window.load_s
    start_s = max(first_s - length_s, load[0] if load else 0.0)
    return (start_s, first_s) if first_s > start_s else None


def scenario_values(run: RunRecords) -> dict[str, float | None]:
    """Every figure of :data:`EXPECTATIONS` for ``run``; None when it has no data."""
    topology, window = run.topology, run.window
    round_s = topology.protocol.round_s
    spans = _fault_spans(run)
    baseline = baseline_span(run)
    metrics = run_metrics(run)
    out: dict[str, float | None] = {}

    def worst(family: str) -> float | None:
        values = [m.value for m in metrics.values() if m.family == family]
        present = [v for v in values if v is not None]
        return max(present) if present else None

    out["recovery_max"] = worst("recovery")
    out["reconvergence_max"] = worst("reconvergence")

    produced = _column(run, "blocks", "produced_s")
    orphaned = np.array(run.tables["blocks"].column("orphaned").to_pylist(), dtype=bool)
    heights = np.array(run.tables["blocks"].column("height").to_pylist(), dtype=np.int64)
    final = np.sort(produced[~orphaned])
    out["progress_gap_max"] = None
    if spans and final.size:
        first_s, last_s = min(s for s, _ in spans), max(e for _, e in spans)
        before = final[final <= first_s]
        after = final[final >= last_s]
        marks = np.concatenate(
            [before[-1:], final[(final > first_s) & (final < last_s)], after[:1]]
        )
        if not after.size:
            marks = np.append(marks, window.end_s)  # the chain never moved again
        if before.size and marks.size >= 2:
            out["progress_gap_max"] = float(np.max(np.diff(marks))) / round_s

    submit = _column(run, "transactions", "submit_s")
    confirm = _column(run, "transactions", "confirm_s")
    rpc = _column(run, "transactions", "rpc_latency_s")
    accepted = np.array(run.tables["transactions"].column("accepted").to_pylist(), dtype=bool)
    has_load = submit.size > 0
    during_s = sum(e - s for s, e in spans)
    out["confirmed_tps_min_during"] = (
        float(np.sum(_inside(confirm, spans))) / during_s if has_load and during_s > 0 else None
    )
    out["confirmed_tps_min_after"] = None
    if has_load and spans and window.load_s is not None:
        after_span = (max(e for _, e in spans), window.load_s[1])
        if after_span[1] > after_span[0]:
            count = float(np.sum(_inside(confirm, [after_span])))
            out["confirmed_tps_min_after"] = count / (after_span[1] - after_span[0])
    latency = confirm - submit
    out["confirmation_p95_max"] = _percentile(latency, 95)
    out["rejection_rate_max"] = float(np.mean(~accepted)) if has_load else None

    base = [baseline] if baseline else []
    out["block_interval_increase_max"] = _increase(
        _mean_interval(final[_inside(final, spans)]), _mean_interval(final[_inside(final, base)])
    )
    out["confirmation_p95_increase_max"] = _increase(
        _percentile(latency[_inside(submit, spans)], 95),
        _percentile(latency[_inside(submit, base)], 95),
    )
    touched = {n for f in window.faults for n in f.nodes}
    untouched = [n for n in topology.node_names if n not in touched] or list(topology.node_names)
    nodes = np.array(run.tables["transactions"].column("node").to_pylist(), dtype=object)
    quiet = np.isin(nodes, untouched) if nodes.size else np.zeros(0, dtype=bool)
    out["rpc_latency_p99_increase_max"] = _increase(
        _percentile(rpc[quiet & _inside(submit, spans)], 99),
        _percentile(rpc[quiet & _inside(submit, base)], 99),
    )
    in_faults = _inside(produced, spans)
    fault_heights = heights[in_faults]
    out["fork_rate_max"] = None
    if fault_heights.size:
        _, per_height = np.unique(fault_heights, return_counts=True)
        out["fork_rate_max"] = float(np.mean(per_height > 1))
    return out


def _judge(kind: str, limit: float, value: float | None) -> str:
    if value is None or math.isnan(value):
        return UNKNOWN
    ok = value <= limit if kind == "max" else value >= limit
    return PASS if ok else FAIL


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if math.isinf(value):
        return "never"
    if unit == "%":
        return f"{value * 100:+.1f} %"
    return f"{value:.3g} {unit}".strip()


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(present)) if present else None


def judge_scenario(
    scenario: ScenarioSpec,
    measured: RunRecords | None,
    predicted: Sequence[RunRecords],
    ledger: Ledger | None = None,
    end: EndState | None = None,
) -> list[Verdict]:
    """Every set expectation of ``scenario`` on ``measured`` (the model's mean beside it).

    Without a measurement (``--predict-only``) the model's mean is judged in its place and the
    ledger and end-state checks, which only a devnet has, are left out.
    """
    predicted_values = [scenario_values(run) for run in predicted]
    measured_values = scenario_values(measured) if measured is not None else None
    verdicts = []
    for exp in EXPECTATIONS:
        limit = getattr(scenario.expect, exp.field)
        if limit is None:
            continue
        model = _mean([v[exp.key] for v in predicted_values])
        value = model if measured_values is None else measured_values[exp.key]
        verdict = _judge(exp.kind, limit, value)
        sign = "≤" if exp.kind == "max" else "≥"
        whose = "predicted " if measured_values is None else ""
        message = f"{whose}{_shown(value, exp.unit)} (limit {sign} {_shown(limit, exp.unit)})"
        shown = None if measured_values is None else value
        verdicts.append(
            Verdict(exp.key, exp.description, exp.unit, limit, shown, model, verdict, message)
        )
    if measured is not None:
        verdicts += _ledger_verdicts(scenario, ledger)
        verdicts += _end_verdicts(end)
    return verdicts


def _ledger_verdicts(scenario: ScenarioSpec, ledger: Ledger | None) -> list[Verdict]:
    expect = scenario.expect
    limits = {"lost": expect.lost_max, "duplicated": expect.duplicated_max,
              "unexpected": expect.unexpected_max, "rejected_but_confirmed": 0}  # fmt: skip
    out = []
    for name, limit in limits.items():
        if ledger is None or not ledger.complete:
            out.append(Verdict(f"ledger.{name}", f"{name} txs", "txs", limit, None, None,
                               UNKNOWN, "no end state of the chain and pools"))  # fmt: skip
            continue
        count = ledger.counts[name]
        ids = ", ".join(ledger.ids[name])
        more = "" if count <= len(ledger.ids[name]) else f" (+{count - len(ledger.ids[name])})"
        message = f"{count} (limit ≤ {limit})" + (f": {ids}{more}" if count else "")
        out.append(Verdict(f"ledger.{name}", f"{name} txs", "txs", limit, count, None,
                           PASS if count <= limit else FAIL, message))  # fmt: skip
    return out


def _end_verdicts(end: EndState | None) -> list[Verdict]:
    if end is None:
        return [Verdict(name, what, "", "yes", None, None, UNKNOWN, "no end state recorded")
                for name, what in END_CHECKS.items()]  # fmt: skip
    live = [n for n, alive in end.running.items() if alive]
    tips = {end.tips.get(n) for n in live}
    silent = sorted(n for n in live if end.tips.get(n) is None)
    dead = sorted(n for n, alive in end.running.items() if not alive)
    broken = [r.node for r in end.restarts if not r.chain_kept]
    checks: dict[str, tuple[bool | None, str]] = {
        "one_tip_at_end": (
            None if silent or not live else len(tips) == 1,
            f"not answering: {silent}" if silent else f"{len(tips)} tip(s) on the live nodes",
        ),
        "no_unexpected_death": (not dead, f"not running at the end: {dead}" if dead else "all up"),
    }
    if end.restarts:  # nothing to check when the scenario killed no node
        checks["chain_survived_restart"] = (
            not broken,
            f"lost its chain: {broken}" if broken else f"{len(end.restarts)} restart(s), kept",
        )
    out = []
    for name, (ok, message) in checks.items():
        verdict, shown = (UNKNOWN, None) if ok is None else ((PASS, "yes") if ok else (FAIL, "no"))
        out.append(Verdict(name, END_CHECKS[name], "", "yes", shown, None, verdict, message))
    return out


END_CHECKS: Mapping[str, str] = {
    "one_tip_at_end": "every live node holds one tip at the end",
    "no_unexpected_death": "no node died that the scenario did not bring back",
    "chain_survived_restart": "a killed node kept its chain up to its pre-kill tip",
}


def scenario_verdict(verdicts: Sequence[Verdict]) -> str:
    """FAIL if any FAILs, else UNKNOWN if any is UNKNOWN (or there is none), else PASS."""
    return overall_verdict(v.verdict for v in verdicts)
