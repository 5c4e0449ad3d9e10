"""A watched deployment's records as a measured run folder, the same four tables as a devnet run.

:func:`write_measured_run` turns a finished :class:`~bitcell_sim.measure.watch.Watch` into
blocks (dated from their headers as the node dates them, orphaned off the final chain), block
arrivals (the middle of each polled bracket), the node timeline and, given a load's
transactions, their confirmations; ``meta.json`` says how wide the arrival brackets were.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bitcell_sim.errors import DeployError
from bitcell_sim.measure.watch import Watch
from bitcell_sim.protocol.consensus import RoundSchedule, fork_choice_key, production_time_s
from bitcell_sim.results import TABLES, RunFolder, RunWindow, to_table
from bitcell_sim.results.records import confirm_transactions
from bitcell_sim.results.run_folder import software_versions
from bitcell_sim.topology import Topology

#: Blocks come at round ends; the records stop this far before the last one the watch could
#: have seen reach every node (as ``devnet collect`` does).
_BEFORE_BOUNDARY_S = 1e-3


@dataclass(frozen=True)
class Measured:
    """What :func:`write_measured_run` wrote: the folder, its window, the row counts and the
    arrival brackets' half-widths (the arrival-time error bound), median and max."""

    folder: RunFolder
    window: RunWindow
    rows: Mapping[str, int]
    half_width_median_s: float | None
    half_width_max_s: float | None
    read_round_trip_median_s: float | None
    warnings: tuple[str, ...] = ()


def settled_end_s(topology: Topology, watch: Watch) -> float:
    """The records' end, seconds since genesis: just before the last round end at least one
    poll interval before the watch stopped, so each block in them had time to be seen."""
    if watch.stopped_unix_s is None:
        raise DeployError("the watch has not run")
    round_s = topology.protocol.round_s
    seen_s = watch.stopped_unix_s - watch.genesis_unix_s - watch.poll_interval_s
    return max(math.floor(seen_s / round_s) * round_s - _BEFORE_BOUNDARY_S, 0.0)


def _final_chain(watch: Watch) -> set[str]:
    """The chain of the best tip any node showed last (longest, then lowest hash)."""
    tips = [c.tip_hash for c in watch.chains.values() if c.tip_hash]
    if not tips:
        return set()
    best = min(tips, key=lambda h: fork_choice_key(watch.blocks[h].height, bytes.fromhex(h)))
    final: set[str] = set()
    cursor = watch.blocks.get(best)
    while cursor is not None and cursor.block_hash not in final:
        final.add(cursor.block_hash)
        cursor = watch.blocks.get(cursor.parent_hash)
    return final


def _timeline(watch: Watch, since_s: float, until_s: float) -> pa.Table:
    genesis = watch.genesis_unix_s
    rows = [r for r in watch.timeline if since_s <= r.time_unix_s - genesis <= until_s]
    best: dict[float, int] = {}
    for row in rows:
        best[row.time_unix_s] = max(best.get(row.time_unix_s, 0), row.height)

    def sync(row: Any) -> float:
        if row.sync_progress is not None:
            return float(row.sync_progress)
        top = best[row.time_unix_s]
        return 100.0 if top == 0 else 100.0 * row.height / top

    return to_table(
        "node_timeline",
        {
            "time_s": [r.time_unix_s - genesis for r in rows],
            "node": [r.node for r in rows],
            "up": [r.up for r in rows],
            "height": [r.height for r in rows],
            "tip_hash": [r.tip_hash for r in rows],
            "pool_size": [r.pool_size for r in rows],
            "peers": [r.peers for r in rows],
            "sync_progress": [sync(r) for r in rows],
        },
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def write_measured_run(
    topology: Topology,
    watch: Watch,
    folder: RunFolder,
    *,
    since_s: float | None = None,
    until_s: float | None = None,
    transactions: pa.Table | None = None,
    load_s: tuple[float, float] | None = None,
    peak_tps: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Measured:
    """Write ``watch``'s records of ``[since_s, until_s]`` (seconds since genesis; default:
    from the watch's start to :func:`settled_end_s`) into ``folder``."""
    if watch.started_unix_s is None:
        raise DeployError("the watch has not run")
    genesis = watch.genesis_unix_s
    since_s = watch.started_unix_s - genesis if since_s is None else since_s
    until_s = settled_end_s(topology, watch) if until_s is None else until_s
    until_s = max(until_s, since_s)
    protocol = topology.protocol
    schedule = RoundSchedule(genesis, protocol.commit_s, protocol.reveal_s, protocol.battle_s)
    warnings: list[str] = []

    def produced_s(timestamp: int) -> float:
        return production_time_s(schedule, timestamp) - genesis

    blocks = sorted(
        (b for b in watch.blocks.values() if since_s <= produced_s(b.timestamp) <= until_s),
        key=lambda b: (b.height, b.block_hash),
    )
    chosen = {b.block_hash for b in blocks}
    final = _final_chain(watch)
    # As devnet collect: the arrivals of those blocks up to the end.
    arrivals = sorted(
        (
            a
            for a in watch.arrivals.values()
            if a.block_hash in chosen and a.estimate_unix_s - genesis <= until_s
        ),
        key=lambda a: (a.estimate_unix_s, a.block_hash, a.node),
    )
    unknown = sorted({b.miner for b in blocks} - set(watch.node_of_key))
    if unknown:
        warnings.append(
            f"{len(unknown)} proposer key(s) answered by no node's bitcell_getNodeInfo: "
            "their blocks name the key as producer"
        )
    tables = {
        "blocks": to_table(
            "blocks",
            {
                "block_hash": [b.block_hash for b in blocks],
                "height": [b.height for b in blocks],
                "parent_hash": [b.parent_hash for b in blocks],
                "producer": [watch.node_of_key.get(b.miner, b.miner) for b in blocks],
                "produced_s": [produced_s(b.timestamp) for b in blocks],
                "tx_count": [len(b.tx_ids) for b in blocks],
                "size_bytes": [b.size_bytes for b in blocks],
                "orphaned": [b.block_hash not in final for b in blocks],
            },
        ),
        "block_arrivals": to_table(
            "block_arrivals",
            {
                "block_hash": [a.block_hash for a in arrivals],
                "node": [a.node for a in arrivals],
                "arrival_s": [a.estimate_unix_s - genesis for a in arrivals],
            },
        ),
        "transactions": TABLES["transactions"].empty_table(),
        "node_timeline": _timeline(watch, since_s, until_s),
    }
    if transactions is not None:
        in_final = [b for b in blocks if b.block_hash in final]
        tables["transactions"] = confirm_transactions(
            transactions,
            {tx_id: b.block_hash for b in in_final for tx_id in b.tx_ids},
            {b.block_hash: b.height for b in in_final},
            {(a.block_hash, a.node): a.estimate_unix_s - genesis for a in arrivals},
        )
    for node, chain in watch.chains.items():
        if chain.reads == 0:
            warnings.append(f"{node}: never answered ({chain.last_error or 'no read'})")
    window = RunWindow(start_s=since_s, end_s=until_s, load_s=load_s, peak_tps=peak_tps)
    for name, table in tables.items():
        folder.write_records(name, table)
    widths = [a.half_width_s for a in arrivals]
    median, largest = _median(widths), max(widths, default=None)
    rows = {name: table.num_rows for name, table in tables.items()}
    folder.write_json(
        "meta.json",
        {
            "kind": "measured",
            "source": "endpoints",
            "network": topology.general.name,
            "genesis_time_unix_s": genesis,
            "collected_unix_s": time.time(),
            **window.to_meta(),
            "arrival_timing": {
                "method": "tip polling: each arrival is the middle of the bracket between the "
                "node's last read without the block and the first read with it",
                "poll_interval_s": watch.poll_interval_s,
                "timeline_interval_s": watch.timeline_interval_s,
                "error_bound_median_s": median,
                "error_bound_max_s": largest,
                "read_round_trip_median_s": _median(watch.read_round_trips_s),
                "read_round_trip_max_s": max(watch.read_round_trips_s, default=None),
            },
            "node_propagation_histogram": {
                node: h.delta() for node, h in watch.histograms.items() if h.delta() is not None
            },
            "reads": {
                node: {"answered": c.reads, "failed": c.failed_reads}
                for node, c in watch.chains.items()
            },
            "records": rows,
            "warnings": warnings,
            "software": software_versions(),
            **(meta or {}),
        },
    )
    return Measured(
        folder, window, rows, median, largest, _median(watch.read_round_trips_s), tuple(warnings)
    )
