"""The compared metrics of one run, computed from its records and topology alone.

:func:`run_metrics` gives every figure compare judges, keyed by name: the headline figures of
:func:`~bitcell_sim.results.summary.summarize` (block interval, propagation and confirmation
percentiles, throughput, rejections, pool peak, forks, orphans), reorgs, block propagation per
region pair, per fault the recovery of each affected node, the network's reconvergence and the
time a degraded node spent behind, and RPC latency. A metric's family names its tolerance in
the topology's ``validation`` section. A figure with no samples is None; one that never
happened within the run (a recovery) is ``math.inf``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bitcell_sim.results.runs import RunRecords
from bitcell_sim.results.summary import (
    PERCENTILES,
    Tip,
    propagation_samples,
    summarize,
    tip_history,
)
from bitcell_sim.results.window import RunWindow
from bitcell_sim.topology import Partition, Topology, partition_sides

GROUP_HEADLINE = "headline"
GROUP_FAULTS = "faults"
GROUP_PAIRS = "block propagation by region pair"
#: Faults that take nodes down, and faults that leave them up but slower.
DEGRADING_KINDS = ("cpu_throttle", "added_latency")


@dataclass(frozen=True)
class Metric:
    name: str
    family: str
    group: str
    unit: str
    description: str
    value: float | None
    # When no run of either side has it (None, or "never": math.inf), nothing happened to
    # compare: the row is left out instead of UNKNOWN (no pool filled up, no block went from
    # a region that produced none).
    optional: bool = False


def run_metrics(run: RunRecords) -> dict[str, Metric]:
    """Every compared metric of a run, in report order."""
    topology, tables = run.topology, run.tables
    summary = summarize(topology, tables, window=run.window)
    out: dict[str, Metric] = {}

    def add(
        name: str,
        family: str,
        unit: str,
        description: str,
        value: float | None,
        group: str = GROUP_HEADLINE,
        optional: bool = False,
    ) -> None:
        out[name] = Metric(name, family, group, unit, description, value, optional)

    blocks = summary["blocks"]
    add(
        "block_interval",
        "block_interval",
        "s",
        "mean gap between final-chain blocks",
        blocks["interval_s"]["mean"],
    )
    for q in PERCENTILES:
        add(
            f"block_propagation_p{q}",
            f"block_propagation_p{q}",
            "s",
            f"block propagation p{q}, blocks away from faults",
            summary["block_propagation_clear_s"][f"p{q}"],
        )
    for q in PERCENTILES:
        add(
            f"confirmation_latency_p{q}",
            f"confirmation_latency_p{q}",
            "s",
            f"submission to confirmation p{q}",
            summary["confirmation_latency_s"][f"p{q}"],
        )
    throughput = summary["throughput"]
    has_load = summary["transactions"]["submitted"] > 0
    add(
        "confirmed_tps",
        "confirmed_tps",
        "TPS",
        "confirmations per second in the load window",
        throughput["confirmed_tps"] if has_load else None,
    )
    add(
        "steady_state_confirmed_tps",
        "steady_state_confirmed_tps",
        "TPS",
        "confirmations per second, second half of the load window",
        throughput["steady_state_confirmed_tps"] if has_load else None,
    )
    add(
        "rejection_rate",
        "rejection_rate",
        "",
        "rejected / submitted",
        summary["transactions"]["rejection_rate"] if has_load else None,
    )
    first = summary["pool"]["first_rejection_after_load_start_s"]
    add(
        "first_rejection",
        "first_rejection",
        "s",
        "first 'pool full' after the load's start",
        (math.inf if first is None else first) if has_load else None,
        optional=True,
    )
    add(
        "pool_peak",
        "pool_peak",
        "txs",
        "largest pool of any node (sampled timeline)",
        summary["pool"]["peak"] if tables["node_timeline"].num_rows else None,
    )
    has_blocks = tables["blocks"].num_rows > 0
    add(
        "forks",
        "forks",
        "blocks",
        "heights with more than one block",
        blocks["forks"] if has_blocks else None,
    )
    add(
        "orphaned",
        "orphaned",
        "blocks",
        "blocks not on the final chain",
        blocks["orphaned"] if has_blocks else None,
    )
    add(
        "reorgs",
        "reorgs",
        "",
        "tip switches to another branch, summed over nodes",
        count_reorgs(topology, tables) if has_blocks else None,
    )

    latencies = _floats(tables["transactions"], "rpc_latency_s")
    latencies = latencies[~np.isnan(latencies)]
    for q in (50, 99):
        add(
            f"rpc_latency_p{q}",
            f"rpc_latency_p{q}",
            "s",
            f"sendRawTransaction latency p{q}",
            float(np.percentile(latencies, q)) if latencies.size else None,
        )

    _fault_metrics(run, summary, add)
    _pair_metrics(topology, tables, run.window, add)
    return out


def _sides_race(topology: Topology, position: int) -> bool:
    """Whether fault ``position`` (from 1) is a partition with validators on two sides or more.

    Such sides each make a block a round, so at the heal which chain wins is a tie-break (the
    lower hash at equal height): a node's recovery is near 0 or the whole catch-up by the luck
    of the hashes, on either side, and only the slowest node's recovery (like the
    reconvergence) is a figure two runs share. With a bridge the sides still hear each other.
    """
    faults = topology.faults
    fault = faults[position - 1] if position <= len(faults) else None
    if not isinstance(fault, Partition) or fault.bridges:
        return False
    validators = set(topology.validators)
    sides = partition_sides(topology, fault.groups)
    return sum(1 for side in sides if side & validators) >= 2


def _fault_metrics(run: RunRecords, summary: Mapping[str, Any], add: Any) -> None:
    """Per fault of the summary (the faults as they held in this run), its recovery rows."""
    topology = run.topology
    history = (
        tip_history(run.tables["blocks"], run.tables["block_arrivals"], topology.node_names)
        if run.tables["blocks"].num_rows
        else None
    )
    window = run.window
    down = window.down_windows(topology.node_names)
    for i, (fault, entry) in enumerate(zip(window.faults, summary["faults"], strict=True), 1):
        tag, kind = f"fault {i}", fault.kind
        by_node = entry["recovery_by_node_s"]
        if _sides_race(topology, i):
            # Which nodes switch is luck (see _sides_race): one row, the slowest node.
            times = list(by_node.values())
            slowest = None if None in times else max(times, default=0.0)
            rows = [(f"recovery[{tag}]", "every node", slowest)]
        else:
            rows = [(f"recovery[{tag}, {node}]", node, value) for node, value in by_node.items()]
        for name, who, value in rows:
            add(
                name,
                "recovery",
                "s",
                f"{kind}: fault end to {who} holding the best tip",
                None if history is None else (math.inf if value is None else value),
                group=GROUP_FAULTS,
            )
        converged = entry["reconvergence_s"]
        add(
            f"reconvergence[{tag}]",
            "reconvergence",
            "s",
            f"{kind}: fault end to one tip on every up node",
            None if history is None else (math.inf if converged is None else converged),
            group=GROUP_FAULTS,
        )
        if kind in DEGRADING_KINDS:
            end_s = window.end_s if fault.end_s is None else fault.end_s
            for node in fault.nodes:
                add(
                    f"behind[{tag}, {node}]",
                    "behind",
                    "s",
                    f"{kind}: seconds {node} was ≥ 1 block behind during the fault",
                    None
                    if history is None
                    else seconds_behind(topology, history, down, node, fault.start_s, end_s),
                    group=GROUP_FAULTS,
                )


def _pair_metrics(
    topology: Topology, tables: Mapping[str, pa.Table], window: RunWindow, add: Any
) -> None:
    """Propagation percentiles per (producer region → receiving region), blocks away from faults."""
    by_pair: dict[tuple[str, str], list[float]] = {}
    region = {n: spec.region for n, spec in topology.nodes.items()}
    for producer, node, delay, clear in propagation_samples(
        topology, tables["blocks"], tables["block_arrivals"], window
    ):
        if clear and producer in region and node in region:
            by_pair.setdefault((region[producer], region[node]), []).append(delay)
    regions = [r for r in topology.regions if topology.nodes_in_region(r)]
    for a in regions:
        for b in regions:
            if a == b and len(topology.nodes_in_region(a)) < 2:
                continue  # a lone node's region has no pair with itself
            values = by_pair.get((a, b), [])
            for q in PERCENTILES:
                add(
                    f"block_propagation_p{q}[{a}→{b}]",
                    f"block_propagation_p{q}",
                    "s",
                    f"propagation p{q} of blocks from {a} to nodes in {b}",
                    float(np.percentile(values, q)) if values else None,
                    group=GROUP_PAIRS,
                    optional=True,
                )


def count_reorgs(topology: Topology, tables: Mapping[str, pa.Table]) -> int:
    """Tip switches, over all nodes, to a block that does not descend from the previous tip."""
    blocks = tables["blocks"]
    parent = dict(
        zip(
            blocks.column("block_hash").to_pylist(),
            blocks.column("parent_hash").to_pylist(),
            strict=True,
        )
    )
    height = dict(
        zip(
            blocks.column("block_hash").to_pylist(),
            blocks.column("height").to_pylist(),
            strict=True,
        )
    )
    history = tip_history(blocks, tables["block_arrivals"], topology.node_names)
    reorgs = 0
    previous = list(history[0][1])
    for _, tips in history[1:]:
        for i, tip in enumerate(tips):
            old = previous[i]
            if tip != old and old[0] > 0 and not _descends(tip, old, parent, height):
                reorgs += 1
        previous = list(tips)
    return reorgs


def _descends(tip: Tip, old: Tip, parent: Mapping[str, str], height: Mapping[str, int]) -> bool:
    block = tip[1]
    while block in height and height[block] > old[0]:
        block = parent[block]
    return block == old[1]


def seconds_behind(
    topology: Topology,
    history: list[tuple[float, tuple[Tip, ...]]],
    down: Mapping[str, Sequence[tuple[float, float]]],
    node: str,
    start_s: float,
    end_s: float,
) -> float:
    """Seconds in [start_s, end_s] that ``node`` was at least one block below the best up node."""
    nodes = topology.node_names
    me = nodes.index(node)
    total = 0.0
    for k, (t, tips) in enumerate(history):
        seg_end = history[k + 1][0] if k + 1 < len(history) else end_s
        lo, hi = max(t, start_s), min(seg_end, end_s)
        if hi <= lo:
            continue
        up = [i for i, n in enumerate(nodes) if not any(s <= lo < e for s, e in down.get(n, ()))]
        best = max((tips[i][0] for i in up), default=0)
        if tips[me][0] < best:
            total += hi - lo
    return total


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
