"""What a block costs a node on this machine: back to back, after an idle pause, in a network.

1. ``idle``: the node code's block build and import (``calibrate``'s measurement,
   ``bitcell_sim.node.calibrate.measure_blocks``) timed back to back, as ``calibrate`` does, and
   after each of ``--idle`` pauses before every timed step, as a node idles between rounds; the
   fitted cost of a 300-tx block for each.
2. ``hold``: ``--nodes`` validators (default ``1,7``) in a full mesh on loopback (real node
   processes, no link emulator), 1 s phases (3 s rounds); one client paces ``--tps``
   pre-signed fresh-sender transfers into the first node for ``--rounds`` rounds. For each
   block with at least ``--min-txs`` txs, the delay from its round's end to its producer's own
   arrival record (build, import and any wait for the CPU) is read from the producer's arrival
   log. Beside the medians, the model's figure for the median block: ``block_build +
   block_import`` and their per-tx parts times its txs, from ``--topology``'s
   ``protocol.processing``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_block_hold.py [--parts idle,hold] [--idle 0,1,3]
        [--nodes 1,7] [--tps 100] [--rounds 8]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bitcell_sim.cli.common import raise_on_sigterm
from bitcell_sim.node.calibrate import measure_blocks
from bitcell_sim.node.harness import LocalNet
from bitcell_sim.protocol.arrivals import read_arrivals
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import sign_transaction
from bitcell_sim.topology import load_topology

NETWORK = "bench-hold"
PHASE_S = 1.0
ROUND_S = 3 * PHASE_S
BLOCK_TXS = 300


def own_delays_ms(nodes: int, tps: float, rounds: int, min_txs: int) -> list[tuple[int, float]]:
    """(txs, ms from round end to the producer's own arrival) of every block of ``min_txs``+."""
    count = int(tps * ROUND_S * rounds)
    senders = [funded_sender(NETWORK, i) for i in range(count)]
    recipient = node_keypair(NETWORK, "sink").public_key
    txs = [sign_transaction(s, recipient, 1, 21_000, 1_000_000_000) for s in senders]
    roles = {f"n{i}": "validator" for i in range(nodes)}
    accounts = {s.public_key: 10**15 for s in senders}
    out: list[tuple[int, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalNet(
            Path(tmp), roles, name=NETWORK, phase_s=PHASE_S, genesis_delay_s=3, accounts=accounts
        ) as net,
    ):
        for name in roles:
            net.start(name)
        for name in roles:
            net.nodes[name].wait_ready(30)
        with RpcClient(net.nodes["n0"].rpc_url) as client:
            started = time.time()
            for i, tx in enumerate(txs):
                wait_s = started + i / tps - time.time()
                if wait_s > 0:
                    time.sleep(wait_s)
                client.send_raw_transaction(tx)
        time.sleep(2 * ROUND_S)  # the last blocks
        for name in roles:
            for arrival in read_arrivals(net.data_dir(name)):
                if arrival.producer == name and arrival.tx_count >= min_txs:
                    delay_ms = (arrival.arrival_unix_s - arrival.produced_unix_s) * 1e3
                    out.append((arrival.tx_count, delay_ms))
    return out


def idle_part(pauses: list[float]) -> None:
    print(f"block build and import of {BLOCK_TXS} txs, after a pause before each step")
    print("| pause | build | import | build + import |")
    print("|---:|---:|---:|---:|")
    for idle_s in pauses:
        costs = measure_blocks(idle_s=idle_s)
        build_ms = 1e3 * (costs.build_s + BLOCK_TXS * costs.build_per_tx_s)
        import_ms = 1e3 * (costs.import_s + BLOCK_TXS * costs.import_per_tx_s)
        print(
            f"| {idle_s:g} s | {build_ms:.1f} ms | {import_ms:.1f} ms "
            f"| {build_ms + import_ms:.1f} ms |"
        )


def hold_part(sizes: list[int], tps: float, rounds: int, min_txs: int, topology: Path) -> None:
    processing = load_topology(topology).protocol.processing
    print(f"own-block hold time, {tps:g} TPS, 3 s rounds")
    print("| validators | blocks | txs (median) | hold, median | hold, max | model |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nodes in sizes:
        samples = own_delays_ms(nodes, tps, rounds, min_txs)
        if not samples:
            print(f"| {nodes} | 0 | — | — | — | — |")
            continue
        txs = round(statistics.median(t for t, _ in samples))
        model_ms = 1e3 * (processing.block_build_cost_s(txs) + processing.block_import_cost_s(txs))
        delays = [d for _, d in samples]
        print(
            f"| {nodes} | {len(samples)} | {txs:.0f} | {statistics.median(delays):.1f} ms "
            f"| {max(delays):.1f} ms | {model_ms:.1f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="idle,hold", help="comma-separated: idle, hold")
    parser.add_argument("--idle", default="0,1,3", help="pauses in seconds, comma-separated")
    parser.add_argument("--nodes", default="1,7", help="comma-separated network sizes")
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--min-txs", type=int, default=200, help="blocks at least this full")
    parser.add_argument("--topology", type=Path, default=Path("topologies/rc3-fast.yaml"))
    args = parser.parse_args()
    raise_on_sigterm()  # the nodes are stopped on SIGTERM as on Ctrl-C
    parts = args.parts.split(",")
    print(f"Python {platform.python_version()}, {platform.machine()}")
    if "idle" in parts:
        idle_part([float(p) for p in args.idle.split(",")])
    if "hold" in parts:
        sizes = [int(n) for n in args.nodes.split(",")]
        hold_part(sizes, args.tps, args.rounds, args.min_txs, args.topology)


if __name__ == "__main__":
    main()
