"""What a devnet holds at the end of a chaos scenario, for the ledger and the end checks.

:func:`end_state` reads every block any node imported up to ``until_s`` (final chain and
orphans, with their tx ids), every running node's pool (its pool journal: the pool as of its
last block plus what it took since), each node's tip over RPC (read again while a block is
in flight) and whether its process runs, and for each node the scenario killed, its block at
its pre-kill height now.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence

import pyarrow as pa

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.devnet.collect import ArrivalLogs
from bitcell_sim.errors import BitcellSimError
from bitcell_sim.protocol.pool_journal import JOURNAL_FILE, read_journal
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.results.ledger import EndState, Restart, tx_inclusions


def _strip(block_hash: object) -> str:
    return str(block_hash).removeprefix("0x")


def _block_hash(devnet: Devnet, node: str, tag: int | str, timeout_s: float) -> str | None:
    try:
        with RpcClient(devnet.endpoints[node].rpc_url, timeout_s=timeout_s) as rpc:
            block = rpc.get_block_by_number(tag)
    except BitcellSimError:
        return None
    return None if block is None else _strip(block["hash"])


def _pre_kill_tip(timeline: pa.Table, node: str, before_s: float) -> tuple[int, str] | None:
    """The node's last sampled tip before ``before_s`` while it was up."""
    best: tuple[float, int, str] | None = None
    for row in timeline.to_pylist():
        taken = row["node"] == node and row["up"] and row["time_s"] < before_s
        if taken and (best is None or row["time_s"] > best[0]):
            best = (row["time_s"], row["height"], row["tip_hash"])
    return None if best is None else (best[1], best[2])


def _settled_tips(
    devnet: Devnet, running: Mapping[str, bool], timeout_s: float
) -> dict[str, str | None]:
    """Each running node's tip, read again (for at most two rounds) while a block is still on
    its way to some of them: a block in flight is not a split."""
    deadline_s = time.monotonic() + 2 * devnet.topology.protocol.round_s
    while True:
        tips = {
            node: _block_hash(devnet, node, "latest", timeout_s) if alive else None
            for node, alive in running.items()
        }
        live = {tips[n] for n, alive in running.items() if alive}
        if len(live) <= 1 or time.monotonic() >= deadline_s:
            return tips
        time.sleep(0.2)


def end_state(
    devnet: Devnet,
    until_s: float,
    timeline: pa.Table,
    down: Mapping[str, Sequence[tuple[float, float]]],
    timeout_s: float = 3.0,
) -> EndState:
    """The :class:`EndState` of ``devnet`` now, its chain as of ``until_s`` (genesis seconds);
    ``down`` holds the scenario's kills per node, ``timeline`` the sampled node timeline."""
    logs = ArrivalLogs(devnet, until_s, [])
    blocks = list(logs.blocks.values())
    by_block = logs.tx_ids(blocks)
    final_counts, orphaned = tx_inclusions(
        (block.block_hash in logs.final, [t.hex() for t in by_block.get(block.block_hash, [])])
        for block in blocks
    )
    running = {node: devnet.is_running(node) for node in devnet.node_names}
    pooled: set[str] = set()
    for node, alive in running.items():
        path = devnet.state.node_data_dir(node) / JOURNAL_FILE
        if alive and path.is_file():
            pooled.update(hashlib.sha256(raw).hexdigest() for raw in read_journal(path))
    tips = _settled_tips(devnet, running, timeout_s)
    final_hashes = {h.hex() for h in logs.final}
    known = {h.hex() for h in logs.blocks}
    restarts = []
    for node, windows in down.items():
        if not windows or not running.get(node):
            continue
        before = _pre_kill_tip(timeline, node, min(start_s for start_s, _ in windows))
        if before is None or before[0] == 0:
            continue  # killed before it held a block: nothing to keep
        height, tip = before
        restarts.append(
            Restart(
                node=node,
                pre_kill_height=height,
                pre_kill_tip=tip,
                after_hash=_block_hash(devnet, node, height, timeout_s),
                pre_kill_tip_orphaned=tip in known and tip not in final_hashes,
            )
        )
    return EndState(
        final_counts=final_counts,
        orphaned=orphaned,
        pooled=frozenset(pooled),
        tips=tips,
        running=running,
        restarts=tuple(restarts),
    )
