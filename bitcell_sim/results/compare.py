"""Predicted vs measured: the metrics of two sets of run folders, their error and a verdict.

:func:`compare` takes the runs of each side (a prediction over several seeds, one or more
measurements, or any two sets of run folders of the shared format) and, per metric, gives each
side's mean and 90 % band, the relative error, the tolerance of the topology's ``validation``
section and a three-valued verdict: PASS, FAIL, or UNKNOWN when a side has no data. The overall
verdict is FAIL if any metric FAILs, else UNKNOWN if any is UNKNOWN, else PASS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bitcell_sim.results.metrics import Metric, run_metrics
from bitcell_sim.results.runs import RunRecords
from bitcell_sim.results.summary import summarize
from bitcell_sim.topology.schema import ToleranceSpec, ValidationSpec

PASS, FAIL, UNKNOWN = "PASS", "FAIL", "UNKNOWN"
VERDICTS = (PASS, FAIL, UNKNOWN)
BAND = (5.0, 95.0)  # percentiles over the runs of a side: the 90 % band
NEVER = math.inf  # a recovery that did not happen within the run


@dataclass(frozen=True)
class SideStats:
    """One side's value of a metric over its runs: mean, 90 % band, and how many had data."""

    mean: float | None
    low: float | None
    high: float | None
    runs_with_data: int
    runs: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> SideStats:
        present = [v for v in values if v is not None]
        if not present:
            return cls(None, None, None, 0, len(values))
        if any(math.isinf(v) for v in present):
            # Any run that never got there makes the side's figure "never", not an average.
            return cls(NEVER, min(present), NEVER, len(present), len(values))
        array = np.asarray(present, dtype=np.float64)
        low, high = (float(x) for x in np.percentile(array, BAND))
        return cls(float(array.mean()), low, high, len(present), len(values))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SideStats:
        low, high = (_number(v) for v in data["band"])
        return cls(_number(data["mean"]), low, high, data["runs_with_data"], data["runs"])


@dataclass(frozen=True)
class MetricComparison:
    """One row of the verdict table."""

    name: str
    family: str
    group: str
    unit: str
    description: str
    predicted: SideStats
    measured: SideStats
    tolerance: ToleranceSpec
    verdict: str
    note: str = ""

    @property
    def error(self) -> float | None:
        """Predicted mean minus measured mean (None when either is missing or never)."""
        p, m = self.predicted.mean, self.measured.mean
        if p is None or m is None or math.isinf(p) or math.isinf(m):
            return None
        return p - m

    @property
    def relative_error(self) -> float | None:
        """``error / |measured|``; 0 when both are 0, None when undefined."""
        error, m = self.error, self.measured.mean
        if error is None or m is None:
            return None
        if m == 0:
            return 0.0 if error == 0 else None
        return error / abs(m)

    @property
    def allowed(self) -> float | None:
        """The largest error the tolerance allows for this measurement."""
        m = self.measured.mean
        if m is None or math.isinf(m):
            return None
        return self.tolerance.allowed(m)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricComparison:
        """A row as ``to_json`` wrote it (``comparison.json``)."""
        tolerance = data["tolerance"]
        return cls(
            name=data["name"],
            family=data["family"],
            group=data["group"],
            unit=data["unit"],
            description=data["description"],
            predicted=SideStats.from_json(data["predicted"]),
            measured=SideStats.from_json(data["measured"]),
            tolerance=ToleranceSpec(relative=tolerance["relative"], absolute=tolerance["absolute"]),
            verdict=data["verdict"],
            note=data["note"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "group": self.group,
            "unit": self.unit,
            "description": self.description,
            "predicted": _side_json(self.predicted),
            "measured": _side_json(self.measured),
            "error": self.error,
            "relative_error": self.relative_error,
            "tolerance": {
                "relative": self.tolerance.relative,
                "absolute": self.tolerance.absolute,
                "allowed": self.allowed,
            },
            "verdict": self.verdict,
            "note": self.note,
        }


@dataclass(frozen=True)
class Comparison:
    """Every metric compared, and the overall verdict."""

    rows: tuple[MetricComparison, ...]
    predicted_runs: tuple[str, ...]
    measured_runs: tuple[str, ...]
    faults: tuple[dict[str, Any], ...] = field(default=())

    @property
    def verdict(self) -> str:
        return overall_verdict(row.verdict for row in self.rows)

    def counts(self) -> dict[str, int]:
        return {v: sum(row.verdict == v for row in self.rows) for v in VERDICTS}

    def row(self, name: str) -> MetricComparison:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def groups(self) -> Iterator[tuple[str, list[MetricComparison]]]:
        """The rows by group, groups in the order they first appear."""
        order: dict[str, list[MetricComparison]] = {}
        for row in self.rows:
            order.setdefault(row.group, []).append(row)
        yield from order.items()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        """A comparison as ``to_json`` wrote it (``comparison.json``)."""
        return cls(
            rows=tuple(MetricComparison.from_json(row) for row in data["metrics"]),
            predicted_runs=tuple(data["predicted_runs"]),
            measured_runs=tuple(data["measured_runs"]),
            faults=tuple(data["faults"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "counts": self.counts(),
            "predicted_runs": list(self.predicted_runs),
            "measured_runs": list(self.measured_runs),
            "faults": list(self.faults),
            "metrics": [row.to_json() for row in self.rows],
        }


def overall_verdict(verdicts: Sequence[str] | Iterator[str]) -> str:
    """FAIL if any FAIL, else UNKNOWN if any UNKNOWN (or none at all), else PASS."""
    seen = set(verdicts)
    if FAIL in seen:
        return FAIL
    if UNKNOWN in seen or not seen:
        return UNKNOWN
    return PASS


def judge(predicted: SideStats, measured: SideStats, tolerance: ToleranceSpec) -> tuple[str, str]:
    """The verdict on one metric and a note saying why when it is not a plain comparison."""
    p, m = predicted.mean, measured.mean
    if p is None and m is None:
        return UNKNOWN, "no data on either side"
    if p is None:
        return UNKNOWN, "no predicted data"
    if m is None:
        return UNKNOWN, "no measured data"
    if math.isinf(p) and math.isinf(m):
        return UNKNOWN, "neither side got there within the run"
    if math.isinf(p):
        return FAIL, "predicted: never within the run"
    if math.isinf(m):
        return FAIL, "measured: never within the run"
    # A hair of slack so that a figure exactly on the bound is not failed by rounding.
    ok = abs(p - m) <= tolerance.allowed(m) * (1 + 1e-9) + 1e-12
    return (PASS if ok else FAIL), ""


def compare(
    predicted: Sequence[RunRecords],
    measured: Sequence[RunRecords],
    validation: ValidationSpec | None = None,
) -> Comparison:
    """Compare the runs of two sides metric by metric.

    The tolerances are ``validation`` when given, else the ``validation`` section of the first
    measured run's topology (the scenario that was run). Metrics one side does not have at all
    (a fault only one side ran, a region pair only one side saw) are rows with UNKNOWN.
    """
    if not predicted or not measured:
        raise ValueError("compare needs at least one run on each side")
    tolerances = validation or measured[0].topology.validation
    predicted_metrics = [run_metrics(run) for run in predicted]
    measured_metrics = [run_metrics(run) for run in measured]
    catalogue: dict[str, Metric] = {}
    for metrics in (*predicted_metrics, *measured_metrics):
        for metric in metrics.values():
            catalogue.setdefault(metric.name, metric)

    rows = []
    for name, metric in catalogue.items():
        p_values = [_value(m, name) for m in predicted_metrics]
        m_values = [_value(m, name) for m in measured_metrics]
        if metric.optional and all(v is None or math.isinf(v) for v in p_values + m_values):
            continue  # it happened on no run of either side: nothing to compare
        p, m = SideStats.of(p_values), SideStats.of(m_values)
        tolerance = tolerances.tolerance(metric.family)
        verdict, note = judge(p, m, tolerance)
        rows.append(
            MetricComparison(
                name=name,
                family=metric.family,
                group=metric.group,
                unit=metric.unit,
                description=metric.description,
                predicted=p,
                measured=m,
                tolerance=tolerance,
                verdict=verdict,
                note=note,
            )
        )
    return Comparison(
        rows=tuple(rows),
        predicted_runs=tuple(run.name for run in predicted),
        measured_runs=tuple(run.name for run in measured),
        faults=tuple(_fault_legend(measured[0])),
    )


def _value(metrics: Mapping[str, Metric], name: str) -> float | None:
    metric = metrics.get(name)
    return None if metric is None else metric.value


def _fault_legend(run: RunRecords) -> Iterator[dict[str, Any]]:
    """The faults of a run as they held (its summary's), numbered as the metrics name them."""
    summary = summarize(run.topology, run.tables, window=run.window)
    for i, entry in enumerate(summary["faults"], start=1):
        yield {
            "id": f"fault {i}",
            "kind": entry["kind"],
            "target": entry["target"],
            "start_s": entry["start_s"],
            "end_s": entry["end_s"],
            "label": entry["label"],
        }


def _number(value: float | str | None) -> float | None:
    return NEVER if value == "never" else (None if value is None else float(value))


def _side_json(side: SideStats) -> dict[str, Any]:
    def number(value: float | None) -> float | str | None:
        return "never" if value is not None and math.isinf(value) else value

    return {
        "mean": number(side.mean),
        "band": [number(side.low), number(side.high)],
        "runs_with_data": side.runs_with_data,
        "runs": side.runs,
    }
