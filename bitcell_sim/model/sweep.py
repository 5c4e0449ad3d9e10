"""Parameter sweeps of the model: one run per grid point and seed, headline figures as a table.

:func:`sweep` expands a grid of topology keys (dotted YAML paths such as
``protocol.max_txs_per_block``, and the shortcuts ``round``, ``tps`` and ``duration``) into
re-validated topologies, runs :func:`~bitcell_sim.model.simulate` on each, in local worker
processes or on any ``concurrent.futures.Executor`` (a Dask client's), and returns a pandas
DataFrame with one row per (point, seed) and the columns of :data:`FIGURES`. A
:class:`RunStore` keeps finished runs by :func:`run_key` so that a sweep resumes.
:func:`parse_set` reads ``path=a:b:step`` and ``path=v1,v2``; :func:`expand_grid` lists the
points, :func:`point_topology` builds one, :func:`per_point` folds the seeds into one row per
point.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from pydantic import ValidationError

from bitcell_sim.errors import ModelError, TopologyError
from bitcell_sim.model.engine import simulate
from bitcell_sim.results.records import REJECT_POOL_FULL, REJECT_UNREACHABLE
from bitcell_sim.results.summary import summarize
from bitcell_sim.topology import Topology, apply_overrides
from bitcell_sim.topology.units import format_duration, parse_duration, parse_rate

#: Grid keys that are not paths in the topology file. ``round`` splits a round length into
#: three equal phases (BitCell's 5 s + 5 s + 5 s is a 15 s round); ``tps`` and ``duration``
#: act as the run command's ``--tps`` and ``--duration`` (see :func:`apply_overrides`);
#: ``rtt_scale`` multiplies every RTT of the region matrix (2 = every link twice as slow).
SHORTCUTS = ("round", "tps", "duration", "rtt_scale")

#: The figure columns of a sweep row, each with the direction that is worse for capacity
#: planning ("min": less is worse, "max": more is worse); :func:`per_point` uses it.
FIGURES: dict[str, Literal["min", "max", "same"]] = {
    "round_s": "same",
    "max_txs_per_block": "same",
    "tx_pool_capacity": "same",
    "capacity_tps": "same",
    "target_tps": "same",
    "offered_tps": "same",
    "steady_offered_tps": "same",
    "confirmed_tps": "min",
    "steady_confirmed_tps": "min",
    "confirmation_p50_s": "max",
    "confirmation_p95_s": "max",
    "confirmation_p99_s": "max",
    "submitted": "same",
    "rejected": "max",
    "rejection_rate": "max",
    "rejected_pool_full": "max",
    "rejected_unreachable": "max",
    "accepted_unconfirmed": "max",
    "first_pool_full_s": "min",
    "pool_peak": "max",
    "blocks": "same",
    "forks": "max",
    "orphaned": "max",
    "reorgs": "max",
    "block_propagation_p95_s": "max",
    "recovery_s": "max",
    "reconvergence_s": "max",
    "expectations_failed": "max",
}

SweepProgress = Callable[[int, int], None]
Scalar = str | int | float | bool | None


class RunStore(Protocol):
    """Where a sweep keeps finished runs' figures, by :func:`run_key` (to resume)."""

    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, figures: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class SweepPoint:
    """One point of a grid: ``labels`` go into the table, ``values`` into the topology."""

    index: int
    labels: dict[str, Scalar]
    values: dict[str, Any]


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a point with one seed, its resolved topology and its key."""

    point: SweepPoint
    seed: int
    topology: Topology
    key: str


def _grid_problem(key: str, message: str) -> TopologyError:
    return TopologyError([(key, message)], "sweep grid")


def _scalar(text: str) -> Scalar | list[Any] | dict[str, Any]:
    """``text`` read as YAML reads a scalar; text YAML cannot read stays text."""
    try:
        value: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value


def _number(text: str) -> int | float:
    value = _scalar(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(text)
    return value


def parse_set(spec: str) -> tuple[str, list[Scalar]]:
    """One grid axis from ``path=a:b:step`` or ``path=v1,v2,...``.

    A range runs from ``a`` to ``b`` inclusive in steps of ``step`` (numbers only; integers
    stay integers). A list takes each value as a YAML scalar, as a topology file would: ``500``
    is a number, ``12 s`` a duration string, ``true`` a boolean.
    """
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise _grid_problem(
            spec, "expected PATH=a:b:step or PATH=v1,v2 (e.g. workload.tps=20:200:10)"
        )
    text = text.strip()
    if not text:
        raise _grid_problem(key, "no values after '='")
    parts = text.split(":")
    if len(parts) == 3 and "," not in text:
        try:
            start, stop, step = (_number(p.strip()) for p in parts)
        except ValueError as exc:
            raise _grid_problem(key, f"range bound {exc} is not a number (a:b:step)") from None
        if not step > 0:
            raise _grid_problem(key, f"range step {step} must be > 0")
        if stop < start:
            raise _grid_problem(key, f"range end {stop} is below its start {start}")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > 10_000:
            raise _grid_problem(key, f"the range has {count:,} values (at most 10,000)")
        whole = all(isinstance(v, int) for v in (start, stop, step))
        values: list[Scalar] = [
            start + i * step if whole else round(start + i * step, 12) for i in range(count)
        ]
        return key, values
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise _grid_problem(key, f"empty value in {text!r}")
    parsed: list[Scalar] = []
    for item in items:
        value = _scalar(item)
        if not isinstance(value, str | int | float | bool) or item.startswith(("[", "{")):
            raise _grid_problem(key, f"value {item!r} is not a scalar")
        parsed.append(value)
    return key, parsed


def run_key(topology: Topology) -> str:
    """A hash of a run's resolved topology (grid values and seed applied): its file name."""
    data = topology.model_dump(mode="json", by_alias=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _plain(value: Any) -> Any:
    """numpy scalars (``np.arange`` values, a DataFrame's cells) as the Python ones."""
    return value.item() if isinstance(value, np.generic) else value


def expand_grid(grid: Mapping[str, Sequence[Scalar] | Mapping[str, Any]]) -> list[SweepPoint]:
    """Every combination of the grid's values, the first key varying slowest.

    A key's values are a list of scalars (numbers, unit strings such as ``"12 s"``) or a
    mapping ``label -> value`` for values that are not scalars (a list of faults): the label is
    what the table shows.
    """
    if not grid:
        raise _grid_problem("", "the grid is empty: give at least one key and its values")
    axes: list[list[tuple[Scalar, Any]]] = []
    for key, values in grid.items():
        if key == "general.seed":
            raise _grid_problem(key, "sweep seeds with the seeds argument, not in the grid")
        axis: list[tuple[Scalar, Any]] = []
        if isinstance(values, Mapping):
            axis = [(str(label), _plain(value)) for label, value in values.items()]
        elif isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
            raise _grid_problem(
                key, f"values must be a list or a mapping label -> value, not {values!r}"
            )
        else:
            for value in map(_plain, values):
                if not isinstance(value, str | int | float | bool | None):
                    raise _grid_problem(
                        key,
                        f"value {value!r} is not a scalar; give such values as a mapping "
                        "label -> value",
                    )
                axis.append((value, value))
        if not axis:
            raise _grid_problem(key, "no values to sweep")
        axes.append(axis)
    keys = list(grid)
    return [
        SweepPoint(
            index=i,
            labels={k: label for k, (label, _) in zip(keys, combo, strict=True)},
            values={k: value for k, (_, value) in zip(keys, combo, strict=True)},
        )
        for i, combo in enumerate(itertools.product(*axes))
    ]


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted path of the topology's YAML form; every part must already exist."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the topology"
        last = depth == len(parts) - 1
        if isinstance(node, dict):
            if part not in node:
                allowed = ", ".join(map(str, node)) or "none"
                raise _grid_problem(key, f"unknown key '{part}' in {where} (allowed: {allowed})")
            if last:
                node[part] = value
            else:
                node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise _grid_problem(
                    key, f"'{part}' is not an index of {where} (it has {len(node)} entries)"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            raise _grid_problem(key, f"{where} is a value ({node!r}), not a section")


def _seconds(key: str, value: Any) -> float:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return parse_duration(value)
    except ValueError as exc:
        raise _grid_problem(key, str(exc)) from None


def point_topology(topology: Topology, values: Mapping[str, Any], seed: int) -> Topology:
    """``topology`` with one grid point's values and ``seed`` applied, validated again.

    The shortcuts ``duration`` and ``tps`` go through :func:`apply_overrides` first; then
    ``round`` sets the three phases to a third of it each and ``rtt_scale`` multiplies the RTT
    matrix; then the dotted paths are set as they are. Numbers are SI (seconds, TPS); strings
    carry units as in a topology file.
    """
    values = {key: _plain(value) for key, value in values.items()}
    duration_s = _seconds("duration", values["duration"]) if "duration" in values else None
    tps: float | None = None
    if "tps" in values:
        try:
            tps = parse_rate(values["tps"])
        except ValueError as exc:
            raise _grid_problem("tps", str(exc)) from None
    base, _ = apply_overrides(topology, seed=seed, duration_s=duration_s, tps=tps)
    data: dict[str, Any] = base.model_dump(mode="json", by_alias=True)
    if "round" in values:
        round_s = _seconds("round", values["round"])
        if not round_s > 0:
            raise _grid_problem("round", f"round {values['round']!r} must be > 0")
        for phase in ("commit", "reveal", "battle"):
            data["protocol"][phase] = round_s / 3
    if "rtt_scale" in values:
        scale = values["rtt_scale"]
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise _grid_problem("rtt_scale", f"rtt_scale {scale!r} must be a number > 0")
        for region in data["regions"].values():
            region["rtt"] = {
                other: format_duration(parse_duration(rtt) * scale)
                for other, rtt in region["rtt"].items()
            }
    for key, value in values.items():
        if key not in SHORTCUTS:
            _set_path(data, key, value)
    source = "sweep point " + ", ".join(f"{k}={v!r}" for k, v in values.items())
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise TopologyError(problems, source) from None
    except TopologyError as exc:
        raise TopologyError(exc.problems, source) from None


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def sweep_figures(
    topology: Topology, tables: Mapping[str, pa.Table], summary: Mapping[str, Any]
) -> dict[str, Any]:
    """One sweep row's figures (:data:`FIGURES`) from a run's topology, tables and summary.

    ``steady_offered_tps`` is the rate submitted in the steady-state window (the second half of
    the load), the one ``steady_confirmed_tps`` is counted over: with Poisson arrivals it
    differs from the whole run's rate by a fraction of a TPS, and a network that keeps up
    confirms about what was offered in the same window.
    ``first_pool_full_s`` is NaN when no tx was rejected for a full pool; ``recovery_s`` and
    ``reconvergence_s`` are the worst over the faults, NaN without faults and infinite when a
    fault's nodes never recovered within the run.
    """
    protocol = topology.protocol
    txs = summary["transactions"]
    put = summary["throughput"]
    latency = summary["confirmation_latency_s"]
    by_reason = txs["rejected_by_reason"]
    model = summary.get("model", {})
    peaks = model.get("pool_peak_by_node") or summary["pool"]["peak_by_node"]
    half_s, end_s = put["steady_state_window_s"]
    submit_s = tables["transactions"].column("submit_s").to_numpy(zero_copy_only=False)
    in_window = int(((submit_s >= half_s) & (submit_s < end_s)).sum())

    def worst(field: str) -> float:
        values = [f[field] for f in summary["faults"]]
        if not values:
            return math.nan
        return math.inf if any(v is None for v in values) else float(max(values))

    return {
        "round_s": protocol.round_s,
        "max_txs_per_block": protocol.max_txs_per_block,
        "tx_pool_capacity": protocol.tx_pool_capacity,
        "capacity_tps": protocol.capacity_tps,
        "target_tps": max(max(s[2], s[3]) for s in topology.workload_stages()),
        "offered_tps": put["offered_tps"],
        "steady_offered_tps": in_window / (end_s - half_s) if end_s > half_s else 0.0,
        "confirmed_tps": put["confirmed_tps"],
        "steady_confirmed_tps": put["steady_state_confirmed_tps"],
        "confirmation_p50_s": _nan(latency["p50"]),
        "confirmation_p95_s": _nan(latency["p95"]),
        "confirmation_p99_s": _nan(latency["p99"]),
        "submitted": txs["submitted"],
        "rejected": txs["rejected"],
        "rejection_rate": txs["rejection_rate"],
        "rejected_pool_full": by_reason.get(REJECT_POOL_FULL, 0),
        "rejected_unreachable": by_reason.get(REJECT_UNREACHABLE, 0),
        "accepted_unconfirmed": txs["accepted_unconfirmed"],
        "first_pool_full_s": _nan(summary["pool"]["first_rejection_s"]),
        "pool_peak": max(peaks.values(), default=0),
        "blocks": summary["blocks"]["produced"],
        "forks": summary["blocks"]["forks"],
        "orphaned": summary["blocks"]["orphaned"],
        "reorgs": model.get("reorgs", 0),
        "block_propagation_p95_s": _nan(summary["block_propagation_s"]["p95"]),
        "recovery_s": worst("recovery_s"),
        "reconvergence_s": worst("reconvergence_s"),
        "expectations_failed": sum(e["status"] == "FAIL" for e in summary["expectations"]),
    }


def run_point(topology: Topology) -> dict[str, Any]:
    """Simulate one topology and return its sweep figures (what a worker process runs)."""
    result = simulate(topology)
    summary = summarize(topology, result.tables, extras=result.stats)
    return sweep_figures(topology, result.tables, summary)


def plan_sweep(
    topology: Topology,
    grid: Mapping[str, Sequence[Scalar] | Mapping[str, Any]],
    seeds: Sequence[int] | None = None,
) -> list[SweepRun]:
    """Every run of a sweep, built and validated: a bad key or value raises here, naming it."""
    points = expand_grid(grid)
    seed_list = list(seeds) if seeds is not None else [topology.general.seed]
    if not seed_list:
        raise _grid_problem("seeds", "no seeds: give at least one")
    runs = []
    for point in points:
        for seed in seed_list:
            topo = point_topology(topology, point.values, seed)
            runs.append(SweepRun(point, seed, topo, run_key(topo)))
    return runs


def sweep(
    topology: Topology,
    grid: Mapping[str, Sequence[Scalar] | Mapping[str, Any]],
    seeds: Sequence[int] | None = None,
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: SweepProgress | None = None,
    store: RunStore | None = None,
) -> pd.DataFrame:
    """Run the model at every point of ``grid`` for every seed; one row per (point, seed).

    The columns are ``point`` (the point's index), one per grid key (its value or label),
    ``seed``, then :data:`FIGURES`, then ``run`` (:func:`run_key`). Rows are ordered by point,
    then seed, whatever order the runs finish in, so the same topology, grid and seeds give the
    same table. Every point is built and validated before any run starts: a bad key or value
    raises :class:`~bitcell_sim.errors.TopologyError` naming it.

    Runs go to ``executor`` if given (any ``concurrent.futures.Executor``, e.g. a Dask
    client's ``get_executor()``; it is not shut down), else to a local process pool of
    ``workers`` processes (default: the CPU count), or run in this process with
    ``workers=1``. ``progress(done, total)`` is called in this process after each run. With a
    ``store``, runs it already holds are not run again and each finished run is saved to it as
    soon as it is back, so an interrupted sweep loses only the runs in progress.
    """
    runs = plan_sweep(topology, grid, seeds)
    started = time.perf_counter()
    rows: list[dict[str, Any] | None] = [
        store.load(run.key) if store is not None else None for run in runs
    ]
    resumed = sum(r is not None for r in rows)
    todo = [i for i, row in enumerate(rows) if row is None]

    def finished(i: int, figures: dict[str, Any]) -> None:
        rows[i] = figures
        if store is not None:
            store.save(runs[i].key, figures)
        if progress is not None:
            progress(sum(r is not None for r in rows), len(runs))

    if progress is not None and resumed:
        progress(resumed, len(runs))
    if executor is None and (workers == 1 or len(todo) <= 1):
        for i in todo:
            finished(i, run_point(runs[i].topology))
    elif executor is not None:
        _collect(executor, runs, todo, finished)
    else:
        count = min(workers or os.cpu_count() or 1, len(todo))
        with ProcessPoolExecutor(max_workers=count) as pool:
            _collect(pool, runs, todo, finished)

    records = []
    for run, figures in zip(runs, rows, strict=True):
        assert figures is not None  # every run finished or _collect raised
        records.append(
            {"point": run.point.index, **run.point.labels, "seed": run.seed, **figures}
            | {"run": run.key}
        )
    frame = pd.DataFrame.from_records(records)
    frame.attrs = {
        "topology": topology.general.name,
        "grid_keys": list(grid),
        "seeds": list(dict.fromkeys(run.seed for run in runs)),
        "wall_s": time.perf_counter() - started,
        "resumed": resumed,
    }
    return frame


def _collect(
    executor: Executor,
    runs: list[SweepRun],
    todo: list[int],
    finished: Callable[[int, dict[str, Any]], None],
) -> None:
    futures: dict[Future[dict[str, Any]], int] = {
        executor.submit(run_point, runs[i].topology): i for i in todo
    }
    try:
        for future in as_completed(futures):
            i = futures[future]
            try:
                figures = future.result()
            except Exception as exc:
                run = runs[i]
                exc.add_note(
                    f"in sweep point {run.point.index} {run.point.labels}, seed {run.seed}"
                )
                raise
            finished(i, figures)
    finally:
        for future in futures:
            future.cancel()


def per_point(
    frame: pd.DataFrame,
    how: Literal["worst", "mean"] = "worst",
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per grid point: the seeds folded, worst case or mean.

    ``worst`` takes, per figure, the seed that is worse for capacity (the lowest confirmed
    TPS, the highest latency, rejections and forks, the earliest pool-full time); ``mean``
    averages (NaN skipped). ``keys`` default to the grid keys :func:`sweep` stored in
    ``frame.attrs``; the ``seeds`` column counts the runs folded.
    """
    group = list(keys) if keys is not None else list(frame.attrs.get("grid_keys", []))
    if not group:
        raise ModelError("no grid keys: pass keys=, or a frame made by sweep()")
    missing = [k for k in [*group, "point", "seed"] if k not in frame.columns]
    if missing:
        raise ModelError(f"the frame has no column {missing[0]!r} (columns: {list(frame)})")
    figures = [c for c in FIGURES if c in frame.columns]
    if how == "mean":
        agg: dict[str, Any] = {c: "mean" for c in figures}
    elif how == "worst":
        agg = {c: {"min": "min", "max": "max", "same": "mean"}[FIGURES[c]] for c in figures}
    else:
        raise ModelError(f"how={how!r} must be 'worst' or 'mean'")
    agg["point"] = "first"
    agg["seed"] = "count"
    out = frame.groupby(group, sort=False, dropna=False).agg(agg).reset_index()
    out = out.rename(columns={"seed": "seeds"})
    return out[["point", *group, "seeds", *figures]]


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(runs: int) -> float:
    """The factor of a 95 % confidence interval of a mean over ``runs`` replications."""
    return _T95[runs - 2] if runs - 2 < len(_T95) else 1.96


def point_intervals(
    frame: pd.DataFrame, figures: Sequence[str] | None = None, keys: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per grid point and figure: runs, mean, standard deviation and a 95 % interval.

    One row per (point, figure) (a tidy table): ``mean ± t95(runs)·std/√runs`` over the
    replications, NaN and infinite values left out (a figure a run did not reach), the
    interval NaN with a single run.
    """
    group = list(keys) if keys is not None else list(frame.attrs.get("grid_keys", []))
    if not group:
        raise ModelError("no grid keys: pass keys=, or a frame made by sweep()")
    names = [c for c in (figures or FIGURES) if c in frame.columns]
    long = frame.melt(id_vars=["point", *group], value_vars=names, var_name="figure")
    long = long[np.isfinite(long["value"].astype(float))]
    stats = (
        long.groupby(["point", *group, "figure"], sort=False, dropna=False)["value"]
        .agg(runs="count", mean="mean", std="std")
        .reset_index()
    )
    half = (
        stats["std"]
        / np.sqrt(stats["runs"])
        * stats["runs"].map(lambda n: t95(n) if n > 1 else math.nan)
    )
    stats["ci_low"] = stats["mean"] - half
    stats["ci_high"] = stats["mean"] + half
    order = {name: i for i, name in enumerate(names)}
    stats = stats.sort_values(
        ["point", "figure"], key=lambda c: c.map(order) if c.name == "figure" else c
    )
    return stats.reset_index(drop=True)
