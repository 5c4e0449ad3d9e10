"""The headline figures of a run, computed from its record tables and its topology alone.

:func:`summarize` turns the four record tables (predicted or measured) and the run's
:class:`~bitcell_sim.results.window.RunWindow` into the dict written as ``summary.json``: block
interval, block propagation and confirmation latency percentiles, confirmed TPS, rejections,
pool peak and first rejection, forks, per-fault recovery and reconvergence, and every
expectation of the topology judged PASS, FAIL or N/A; :func:`summarize_run` does it for a run
folder.
:func:`tip_history` replays block arrivals into each node's tip over time (the basis of the
recovery figures). docs/results.md lists every field.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from bitcell_sim.results.records import REJECT_POOL_FULL
from bitcell_sim.results.run_folder import RunFolder
from bitcell_sim.results.window import FaultWindow, RunWindow
from bitcell_sim.topology import Topology

PERCENTILES = (50, 95, 99)
PASS, FAIL, NOT_APPLICABLE = "PASS", "FAIL", "N/A"

Tip = tuple[int, str]  # (height, block hash hex); genesis is (0, "")
GENESIS_TIP: Tip = (0, "")


def distribution(values: Sequence[float] | npt.NDArray[np.float64]) -> dict[str, Any]:
    """count, mean, p50/p95/p99 and max of raw values (numpy's linear percentiles)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    out: dict[str, Any] = {"count": int(array.size), "mean": float(array.mean())}
    for q in PERCENTILES:
        out[f"p{q}"] = float(np.percentile(array, q))
    out["max"] = float(array.max())
    return out


def _better(a: Tip, b: Tip) -> bool:
    """Fork choice on records: longer, then the lower hash (hex order is byte order)."""
    return (-a[0], a[1]) < (-b[0], b[1])


def tip_history(
    blocks: pa.Table, arrivals: pa.Table, nodes: Sequence[str]
) -> list[tuple[float, tuple[Tip, ...]]]:
    """Every node's tip after each instant at which a block arrived somewhere.

    A node's tip is the best block (fork choice) among those that arrived at it; arrival means
    imported, so its ancestors are there too. The first entry is genesis at time 0.
    """
    height = dict(
        zip(
            blocks.column("block_hash").to_pylist(),
            blocks.column("height").to_pylist(),
            strict=True,
        )
    )
    index = {n: i for i, n in enumerate(nodes)}
    times = np.asarray(arrivals.column("arrival_s").to_numpy(zero_copy_only=False))
    hashes = arrivals.column("block_hash").to_pylist()
    where = arrivals.column("node").to_pylist()
    tips = [GENESIS_TIP] * len(nodes)
    history: list[tuple[float, tuple[Tip, ...]]] = [(0.0, tuple(tips))]
    for i in np.argsort(times, kind="stable"):
        node = index.get(where[i])
        if node is None or hashes[i] not in height:
            continue
        candidate = (int(height[hashes[i]]), str(hashes[i]))
        if _better(candidate, tips[node]):
            tips[node] = candidate
            t = float(times[i])
            if history[-1][0] == t:
                history[-1] = (t, tuple(tips))
            else:
                history.append((t, tuple(tips)))
    return history


def _fault_recovery(
    nodes: Sequence[str],
    fault: FaultWindow,
    history: list[tuple[float, tuple[Tip, ...]]],
    down: dict[str, list[tuple[float, float]]],
    end_of_run_s: float,
) -> dict[str, Any]:
    """Seconds from the fault's end until its nodes hold the best tip, and until one tip."""
    end_s = fault.end_s
    back: dict[str, float | None] = {n: None for n in fault.nodes}
    converged: float | None = None
    if end_s is not None and end_s <= end_of_run_s:
        first = max(bisect_right([t for t, _ in history], end_s) - 1, 0)
        for t, tips in history[first:]:
            at = max(t, end_s)
            if at > end_of_run_s:
                break
            up = [i for i, n in enumerate(nodes) if not any(s <= at < e for s, e in down[n])]
            if not up:
                continue
            best = tips[up[0]]
            for i in up[1:]:
                if _better(tips[i], best):
                    best = tips[i]
            for i, n in enumerate(nodes):
                if n in back and back[n] is None and i in up and tips[i] == best:
                    back[n] = at - end_s
            if converged is None and all(tips[i] == best for i in up):
                converged = at - end_s
            if converged is not None and all(v is not None for v in back.values()):
                break
    times = list(back.values())
    recovery = None if any(v is None for v in times) else max(v for v in times if v is not None)
    entry: dict[str, Any] = {
        "kind": fault.kind,
        "label": fault.label,
        "target": fault.target,
        "start_s": fault.start_s,
        "end_s": end_s,
        "nodes": list(fault.nodes),
        "recovery_s": recovery,
        "recovery_by_node_s": back,
        "reconvergence_s": converged,
    }
    if fault.latency_s is not None:
        entry["latency_s"] = fault.latency_s
    if fault.share is not None:
        entry["share"] = fault.share
    return entry


def _touches(windows: list[tuple[float, float]], begin_s: float, end_s: float) -> bool:
    """Whether [begin_s, end_s] overlaps any of the (start, end) windows."""
    return any(start < end_s and begin_s < end for start, end in windows)


def _column(table: pa.Table, name: str) -> npt.NDArray[Any]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def _floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    """A float column with nulls as NaN."""
    column = table.column(name)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _throughput(
    load_s: tuple[float, float] | None,
    submit_s: npt.NDArray[np.float64],
    confirm_s: npt.NDArray[np.float64],
    confirmed: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    """Offered and confirmed TPS over the load window and its second half (None: no load)."""
    if load_s is None:
        return {
            "load_window_s": None,
            "offered_tps": None,
            "confirmed_tps": None,
            "steady_state_window_s": None,
            "steady_state_confirmed_tps": None,
        }
    load_start_s, load_end_s = load_s
    window_s = max(load_end_s - load_start_s, 0.0)
    in_window = confirmed & (confirm_s >= load_start_s) & (confirm_s <= load_end_s)
    half_s = load_start_s + window_s / 2
    in_second_half = confirmed & (confirm_s >= half_s) & (confirm_s <= load_end_s)
    offered = (submit_s >= load_start_s) & (submit_s < load_end_s)
    return {
        "load_window_s": [load_start_s, load_end_s],
        "offered_tps": float(offered.sum() / window_s) if window_s else 0.0,
        "confirmed_tps": float(in_window.sum() / window_s) if window_s else 0.0,
        "steady_state_window_s": [half_s, load_end_s],
        "steady_state_confirmed_tps": (
            float(in_second_half.sum() / (load_end_s - half_s)) if window_s else 0.0
        ),
    }


def propagation_samples(
    topology: Topology, blocks: pa.Table, arrivals: pa.Table, window: RunWindow | None = None
) -> list[tuple[str, str, float, bool]]:
    """(producer, node, arrival − production, clear) for every arrival but the producer's.

    ``clear`` marks blocks produced more than one round away from every fault window of
    ``window`` (default the topology's): a fault just before production still delays a block
    (sync after it), so a round either side.
    """
    window = window or RunWindow.of_topology(topology)
    round_s = topology.protocol.round_s
    produced_at = dict(
        zip(
            blocks.column("block_hash").to_pylist(),
            blocks.column("produced_s").to_pylist(),
            strict=True,
        )
    )
    producer_of = dict(
        zip(
            blocks.column("block_hash").to_pylist(),
            blocks.column("producer").to_pylist(),
            strict=True,
        )
    )
    fault_windows = [
        (f.start_s, window.end_s if f.end_s is None else f.end_s) for f in window.faults
    ]
    out = []
    for h, n, t in zip(
        arrivals.column("block_hash").to_pylist(),
        arrivals.column("node").to_pylist(),
        arrivals.column("arrival_s").to_pylist(),
        strict=True,
    ):
        if h not in produced_at or producer_of[h] == n:
            continue
        produced = produced_at[h]
        clear = not _touches(fault_windows, produced - round_s, produced + round_s)
        out.append((producer_of[h], n, t - produced, clear))
    return out


def summarize(
    topology: Topology,
    tables: Mapping[str, pa.Table],
    extras: Mapping[str, Any] | None = None,
    window: RunWindow | None = None,
) -> dict[str, Any]:
    """The summary of a run: see the module docstring and docs/results.md.

    ``window`` is what the records cover (a measured run's ``meta.json``); without it, the
    topology's duration, workload and faults as a prediction holds them.
    """
    window = window or RunWindow.of_topology(topology)
    blocks, arrivals = tables["blocks"], tables["block_arrivals"]
    transactions, timeline = tables["transactions"], tables["node_timeline"]
    protocol = topology.protocol

    # ---- blocks --------------------------------------------------------------------------
    heights = _column(blocks, "height").astype(np.int64)
    orphaned = _column(blocks, "orphaned").astype(bool)
    produced_s = _floats(blocks, "produced_s")
    final_order = np.argsort(heights[~orphaned], kind="stable")
    final_times = produced_s[~orphaned][final_order]
    # Gaps between consecutive final blocks; block 1's is from genesis (produced at 0 s).
    starts_at_genesis = (~orphaned).any() and int(heights[~orphaned].min()) == 1
    intervals = np.diff(np.concatenate([[0.0], final_times]) if starts_at_genesis else final_times)
    _, per_height = np.unique(heights, return_counts=True)
    block_summary = {
        "produced": len(heights),
        "final_height": int(heights[~orphaned].max()) if (~orphaned).any() else 0,
        "orphaned": int(orphaned.sum()),
        "forks": int((per_height > 1).sum()),
        "interval_s": distribution(intervals),
        "round_s": protocol.round_s,
    }

    # ---- propagation: arrival at each node other than the producer, minus production ---
    samples = propagation_samples(topology, blocks, arrivals, window)
    delays = [d for _, _, d, _ in samples]
    clear_delays = [d for _, _, d, clear in samples if clear]

    # ---- transactions ------------------------------------------------------------------
    submit_s = _floats(transactions, "submit_s")
    accepted = _column(transactions, "accepted").astype(bool)
    confirm_s = _floats(transactions, "confirm_s")
    reasons = transactions.column("reject_reason").to_pylist()
    confirmed = ~np.isnan(confirm_s)
    by_reason: dict[str, int] = {}
    for reason, ok in zip(reasons, accepted.tolist(), strict=True):
        if not ok:
            key = reason or "unknown"
            by_reason[key] = by_reason.get(key, 0) + 1
    submitted = len(submit_s)
    rejected = int((~accepted).sum())
    pool_full = np.array([r == REJECT_POOL_FULL for r in reasons], dtype=bool)
    first_rejection = float(submit_s[pool_full].min()) if pool_full.any() else None

    throughput = _throughput(window.load_s, submit_s, confirm_s, confirmed)
    throughput["capacity_tps"] = protocol.capacity_tps
    load_start_s = None if window.load_s is None else window.load_s[0]

    # ---- pools ---------------------------------------------------------------------------
    timeline_nodes = timeline.column("node").to_pylist()
    pool_sizes = _column(timeline, "pool_size").astype(np.int64)
    peak_by_node = {n: 0 for n in topology.node_names}
    for node, size in zip(timeline_nodes, pool_sizes.tolist(), strict=True):
        if node in peak_by_node and size > peak_by_node[node]:
            peak_by_node[node] = size
    peak_node = max(peak_by_node, key=lambda n: peak_by_node[n]) if peak_by_node else None
    excess_tps = (window.peak_tps or 0.0) - protocol.capacity_tps
    pool = {
        "capacity": protocol.tx_pool_capacity,
        "peak": peak_by_node[peak_node] if peak_node else 0,
        "peak_node": peak_node,
        "peak_by_node": peak_by_node,
        "first_rejection_s": first_rejection,
        "first_rejection_after_load_start_s": (
            first_rejection - load_start_s
            if first_rejection is not None and load_start_s is not None
            else None
        ),
        # Fluid estimate: the pool grows at (offered - capacity) TPS once blocks are full.
        "fill_estimate_s": protocol.tx_pool_capacity / excess_tps if excess_tps > 0 else None,
    }

    # ---- faults ------------------------------------------------------------------------------
    history = tip_history(blocks, arrivals, topology.node_names)
    down = window.down_windows(topology.node_names)
    faults = [
        _fault_recovery(topology.node_names, f, history, down, window.end_s) for f in window.faults
    ]

    latency = confirm_s[confirmed] - submit_s[confirmed]
    summary: dict[str, Any] = {
        "topology": topology.general.name,
        "seed": topology.general.seed,
        "duration_s": window.duration_s,
        "window_s": [window.start_s, window.end_s],
        "blocks": block_summary,
        "block_propagation_s": distribution(delays),
        "block_propagation_clear_s": distribution(clear_delays),
        "confirmation_latency_s": distribution(latency),
        "throughput": throughput,
        "transactions": {
            "submitted": submitted,
            "accepted": int(accepted.sum()),
            "rejected": rejected,
            "rejection_rate": rejected / submitted if submitted else 0.0,
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "confirmed": int(confirmed.sum()),
            "accepted_unconfirmed": int((accepted & ~confirmed).sum()),
        },
        "pool": pool,
        "faults": faults,
    }
    summary["expectations"] = judge_expectations(topology, summary)
    if extras:
        summary["model"] = dict(extras)
    return summary


def summarize_run(folder: RunFolder, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary of the run in ``folder``, predicted or measured: its topology, its four
    tables and the window of its ``meta.json``."""
    return summarize(folder.topology(), folder.read_tables(), extras, folder.window())


def _worst(values: list[float | None]) -> tuple[float | None, bool]:
    """The largest value, and whether any is missing (never recovered)."""
    present = [v for v in values if v is not None]
    return (max(present) if present else None), len(present) < len(values)


def judge_expectations(topology: Topology, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each expectation set in the topology, with its measured value and PASS/FAIL/N/A."""
    expect = topology.expectations
    faults = summary["faults"]
    out: list[dict[str, Any]] = []

    def add(name: str, limit: float | None, value: float | None, kind: str, unit: str) -> None:
        if limit is None:
            return
        if value is None or (isinstance(value, float) and math.isnan(value)):
            status = FAIL if kind.endswith("!") else NOT_APPLICABLE
        elif kind.startswith("max"):
            status = PASS if value <= limit else FAIL
        else:
            status = PASS if value >= limit else FAIL
        out.append({"name": name, "limit": limit, "value": value, "unit": unit, "status": status})

    def recovery(kinds: tuple[str, ...], field: str) -> tuple[float | None, str]:
        chosen = [f for f in faults if f["kind"] in kinds]
        if not chosen:
            return None, "max"
        worst, missing = _worst([f[field] for f in chosen])
        # A fault whose nodes never came back fails the expectation (no value to compare).
        return (None, "max!") if missing else (worst, "max")

    value, kind = recovery(("node_down",), "recovery_s")
    add("node_recovery_max", expect.node_recovery_max_s, value, kind, "s")
    value, kind = recovery(("region_down",), "recovery_s")
    add("region_recovery_max", expect.region_recovery_max_s, value, kind, "s")
    value, kind = recovery(("partition",), "reconvergence_s")
    add("partition_reconvergence_max", expect.partition_reconvergence_max_s, value, kind, "s")
    # Judged at steady state: the first round's confirmations lag the load's start.
    add(
        "confirmed_tps_min",
        expect.confirmed_tps_min,
        summary["throughput"]["steady_state_confirmed_tps"],
        "min",
        "TPS",
    )
    add(
        "block_propagation_p95_max",
        expect.block_propagation_p95_max_s,
        summary["block_propagation_clear_s"]["p95"],
        "max",
        "s",
    )
    add(
        "confirmation_latency_p95_max",
        expect.confirmation_latency_p95_max_s,
        summary["confirmation_latency_s"]["p95"],
        "max",
        "s",
    )
    add(
        "rejection_rate_max",
        expect.rejection_rate_max,
        summary["transactions"]["rejection_rate"],
        "max",
        "",
    )
    return out


def failed_expectations(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The expectations of a summary that FAILed."""
    return [e for e in summary.get("expectations", []) if e["status"] == FAIL]
