"""Collecting a measured run: a devnet's records of an interval, as one run folder.

:func:`collect` turns every node's arrival log, the sampler's timeline and the fault journal
(:func:`fault_windows`) into the four record tables and ``meta.json`` of a ``RunFolder``, on the
genesis clock, with a load's transactions confirmed by their final-chain block's arrival at their
node. :func:`settled_until_s` and :func:`wait_for_round_end` give an end whose blocks are settled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.devnet.journal import FaultEvent, read_events
from bitcell_sim.devnet.sampler import TimelineStore
from bitcell_sim.errors import BitcellSimError, DevnetError
from bitcell_sim.protocol.arrivals import BlockArrival, read_arrivals, read_tx_ids
from bitcell_sim.protocol.consensus import fork_choice_key
from bitcell_sim.results import TABLES, FaultWindow, RunFolder, RunWindow, to_table
from bitcell_sim.results.run_folder import software_versions
from bitcell_sim.topology import Topology

#: How long before ``until`` a block must have been produced to be sure of its arrivals: blocks
#: come at round ends, so the default end stops just short of the last one.
_BEFORE_BOUNDARY_S = 1e-3


def settled_until_s(devnet: Devnet, now_unix_s: float | None = None) -> float:
    """The default end of a collection: just before the latest round end, so the newest block
    in the records has had a whole round to reach every node."""
    now_s = (time.time() if now_unix_s is None else now_unix_s) - devnet.meta.genesis_time_unix_s
    round_s = devnet.topology.protocol.round_s
    return max(math.floor(now_s / round_s) * round_s - _BEFORE_BOUNDARY_S, 0.0)


def wait_for_round_end(devnet: Devnet) -> float:
    """Sleep until the next round end has passed; return :func:`settled_until_s` then, which
    covers every block made up to now (a load's last confirmations included)."""
    genesis_unix_s = devnet.meta.genesis_time_unix_s
    round_s = devnet.topology.protocol.round_s
    now_s = time.time() - genesis_unix_s
    time.sleep(max(math.ceil(now_s / round_s) * round_s - now_s, 0.0) + 10 * _BEFORE_BOUNDARY_S)
    return settled_until_s(devnet)


def fault_windows(
    topology: Topology, events: Sequence[FaultEvent], since_s: float, until_s: float
) -> tuple[FaultWindow, ...]:
    """The faults of the journal that held inside ``[since_s, until_s]``, as windows.

    Apply and revert events are paired by fault id; a node or region outage ends per node (a
    region's nodes may be restarted one by one), and the fault ends with its last node. A
    revert after ``until_s`` leaves the fault open (``end_s`` None) in this interval.
    """
    applied = {e.fault_id: e for e in events if e.action == "apply"}
    released: dict[int, dict[str, float]] = {}
    ended: dict[int, float] = {}
    for event in events:
        if event.action != "revert" or event.since_genesis_s > until_s:
            continue
        ended[event.fault_id] = event.since_genesis_s
        for node in event.detail.get("nodes", ()):
            released.setdefault(event.fault_id, {})[str(node)] = event.since_genesis_s
    windows = []
    for fault_id, event in sorted(applied.items()):
        start_s = event.since_genesis_s
        if start_s > until_s:
            continue
        down = event.kind in ("node_down", "region_down")
        nodes = (
            topology.node_names
            if event.kind == "partition"
            else tuple(str(n) for n in event.detail.get("nodes", ()))
        )
        per_node = released.get(fault_id, {})
        if down:
            ends = [per_node.get(n) for n in nodes]
            end_s = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        else:
            end_s = ended.get(fault_id)
        if end_s is not None and end_s < since_s:
            continue
        detail = event.detail
        windows.append(
            FaultWindow(
                kind=event.kind,
                target=event.target,
                start_s=start_s,
                end_s=end_s,
                nodes=nodes,
                label=event.label,
                latency_s=detail.get("latency_s") if event.kind == "added_latency" else None,
                share=detail.get("share") if event.kind == "cpu_throttle" else None,
                down=tuple((n, start_s, per_node.get(n)) for n in nodes) if down else (),
            )
        )
    return tuple(windows)


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` wrote: the folder, the window and the row count of each table."""

    folder: RunFolder
    window: RunWindow
    rows: Mapping[str, int]
    warnings: tuple[str, ...] = ()
    attached: tuple[str, ...] = ()


class ArrivalLogs:
    """Every node's arrival log up to ``until_s``, on the genesis clock, and the final chain:
    the chain of the best block any node holds then (longest, then lowest hash)."""

    def __init__(self, devnet: Devnet, until_s: float, warnings: list[str]) -> None:
        self.devnet = devnet
        self.genesis_unix_s = devnet.meta.genesis_time_unix_s
        until_unix_s = self.genesis_unix_s + until_s
        self.logs: dict[str, list[BlockArrival]] = {}
        for node in devnet.node_names:
            try:
                log = read_arrivals(devnet.state.node_data_dir(node))
            except BitcellSimError as exc:
                warnings.append(f"{node}: no arrival log ({exc})")
                log = []
            self.logs[node] = [a for a in log if a.arrival_unix_s <= until_unix_s]
        self.blocks: dict[bytes, BlockArrival] = {}
        self.holder: dict[bytes, str] = {}  # a node that has the block (its tx ids)
        for node, log in self.logs.items():
            for arrival in log:
                self.blocks.setdefault(arrival.block_hash, arrival)
                self.holder.setdefault(arrival.block_hash, node)
        self.final: set[bytes] = set()
        tips = sorted(self.blocks.values(), key=lambda a: fork_choice_key(a.height, a.block_hash))
        cursor = tips[0] if tips else None
        while cursor is not None and cursor.block_hash not in self.final:
            self.final.add(cursor.block_hash)
            cursor = self.blocks.get(cursor.parent_hash)

    def produced_in(self, since_s: float, until_s: float) -> list[BlockArrival]:
        """The blocks produced in ``[since_s, until_s]``, by height."""
        return sorted(
            (
                a
                for a in self.blocks.values()
                if since_s <= a.produced_unix_s - self.genesis_unix_s <= until_s
            ),
            key=lambda a: (a.height, a.block_hash),
        )

    def arrivals_of(self, blocks: Sequence[BlockArrival]) -> list[tuple[float, bytes, str]]:
        """(arrival_s, block hash, node) of every node's import of ``blocks``, by time."""
        chosen = {a.block_hash for a in blocks}
        return sorted(
            (a.arrival_unix_s - self.genesis_unix_s, a.block_hash, node)
            for node, log in self.logs.items()
            for a in log
            if a.block_hash in chosen
        )

    def tx_ids(self, blocks: Sequence[BlockArrival]) -> dict[bytes, list[bytes]]:
        """block hash -> the tx ids of each of ``blocks``, from a node that holds it."""
        by_holder: dict[str, list[bytes]] = {}
        for block in blocks:
            by_holder.setdefault(self.holder[block.block_hash], []).append(block.block_hash)
        found: dict[bytes, list[bytes]] = {}
        for node, hashes in by_holder.items():
            found.update(read_tx_ids(self.devnet.state.node_data_dir(node), hashes))
        return found

    def tx_blocks(self, blocks: Sequence[BlockArrival]) -> dict[str, bytes]:
        """tx id (hex) -> the block of ``blocks`` holding it, from the nodes' logs."""
        return {
            tx_id.hex(): block_hash
            for block_hash, tx_ids in self.tx_ids(blocks).items()
            for tx_id in tx_ids
        }


def _confirm(
    transactions: pa.Table,
    final_blocks: Mapping[bytes, BlockArrival],
    tx_block: Mapping[str, bytes],
    arrival_at: Mapping[tuple[bytes, str], float],
) -> pa.Table:
    """``transactions`` with confirm_s, height and block_hash from the records: the final-chain
    block holding each tx, as it arrived at the node the tx was sent to."""
    columns = {name: transactions.column(name).to_pylist() for name in TABLES["transactions"].names}
    confirm: list[float | None] = []
    heights: list[int | None] = []
    hashes: list[str | None] = []
    for tx_id, node in zip(columns["tx_id"], columns["node"], strict=True):
        block_hash = tx_block.get(tx_id)
        confirm.append(None if block_hash is None else arrival_at.get((block_hash, node)))
        heights.append(None if block_hash is None else final_blocks[block_hash].height)
        hashes.append(None if block_hash is None else block_hash.hex())
    columns.update(confirm_s=confirm, height=heights, block_hash=hashes)
    return to_table("transactions", columns)


def _timeline(devnet: Devnet, since_s: float, until_s: float, warnings: list[str]) -> pa.Table:
    samples = []
    if devnet.state.timeline_path.is_file():
        store = TimelineStore(devnet.state.timeline_path)
        try:
            samples = store.read(since_s, until_s)
        finally:
            store.close()
    else:
        warnings.append(f"no node timeline: {devnet.state.timeline_path} is missing (no sampler)")
    return to_table(
        "node_timeline",
        {name: [getattr(s, name) for s in samples] for name in TABLES["node_timeline"].names},
    )


def collect(
    devnet: Devnet,
    folder: RunFolder,
    *,
    since_s: float = 0.0,
    until_s: float | None = None,
    transactions: pa.Table | None = None,
    load_s: tuple[float, float] | None = None,
    peak_tps: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Collected:
    """Write the records of ``devnet`` in ``[since_s, until_s]`` (seconds since genesis;
    ``until_s`` default :func:`settled_until_s`) into ``folder``; see the module docstring.

    ``transactions`` (the load's, in genesis seconds) get their confirmations from the records;
    ``load_s``/``peak_tps`` describe the load; ``meta`` is merged into ``meta.json``.
    """
    genesis_unix_s = devnet.meta.genesis_time_unix_s
    until_s = settled_until_s(devnet) if until_s is None else until_s
    if until_s < since_s:
        raise DevnetError(f"collect: until {until_s:.3f} s is before since {since_s:.3f} s")
    warnings: list[str] = []
    logs = ArrivalLogs(devnet, until_s, warnings)
    blocks = logs.produced_in(since_s, until_s)
    arrivals = logs.arrivals_of(blocks)
    tables = {
        "blocks": to_table(
            "blocks",
            {
                "block_hash": [a.block_hash.hex() for a in blocks],
                "height": [a.height for a in blocks],
                "parent_hash": [a.parent_hash.hex() for a in blocks],
                "producer": [a.producer for a in blocks],
                "produced_s": [a.produced_unix_s - genesis_unix_s for a in blocks],
                "tx_count": [a.tx_count for a in blocks],
                "size_bytes": [a.size_bytes for a in blocks],
                "orphaned": [a.block_hash not in logs.final for a in blocks],
            },
        ),
        "block_arrivals": to_table(
            "block_arrivals",
            {
                "block_hash": [h.hex() for _, h, _ in arrivals],
                "node": [n for _, _, n in arrivals],
                "arrival_s": [t for t, _, _ in arrivals],
            },
        ),
        "transactions": TABLES["transactions"].empty_table(),
        "node_timeline": _timeline(devnet, since_s, until_s, warnings),
    }
    if transactions is not None:
        final = {a.block_hash: a for a in blocks if a.block_hash in logs.final}
        arrival_at = {(h, n): t for t, h, n in arrivals}
        tx_block = logs.tx_blocks(list(final.values()))
        tables["transactions"] = _confirm(transactions, final, tx_block, arrival_at)

    events = read_events(devnet.state.faults_log_path)
    window = RunWindow(
        start_s=since_s,
        end_s=until_s,
        load_s=load_s,
        peak_tps=peak_tps,
        faults=fault_windows(devnet.topology, events, since_s, until_s),
    )
    for name, table in tables.items():
        folder.write_records(name, table)
    attached = tuple(_attach_run_files(folder, devnet.state.run_files_dir))
    rows = {name: table.num_rows for name, table in tables.items()}
    folder.write_json(
        "meta.json",
        {
            "kind": "measured",
            "source": "devnet",
            "network": devnet.meta.name,
            "topology_source": devnet.meta.topology_source,
            "devnet_state_dir": str(devnet.state.root),
            "genesis_time_unix_s": genesis_unix_s,
            "collected_unix_s": time.time(),
            **window.to_meta(),
            "fault_journal": [
                e.to_dict() for e in events if since_s <= e.since_genesis_s <= until_s
            ],
            "records": rows,
            "attached": list(attached),
            "warnings": warnings,
            "software": software_versions(),
            **(meta or {}),
        },
    )
    return Collected(folder, window, rows, tuple(warnings), attached)


def _attach_run_files(folder: RunFolder, source: Path) -> list[str]:
    if not source.is_dir():
        return []
    names = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        name = path.relative_to(source).as_posix()
        folder.attach(path, name)
        names.append(name)
    return names
