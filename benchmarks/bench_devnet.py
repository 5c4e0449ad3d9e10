"""Benchmark: the 7-node devnet under 100 TPS of eth_sendRawTransaction, on this machine.

Starts the devnet of a topology (default rc3-fast; ports shifted to a free block, state in a
temporary folder), sends pre-signed fresh-key transactions open loop at ``--tps`` for
``--duration`` seconds spread round-robin over the nodes, and reports RPC latency p50/p99/max,
the admitted and rejected counts, CPU per node and for the emulator (from /proc) and per
admitted tx, then the highest rate one node admits (closed loop, ``--concurrency`` clients,
``--burst`` seconds). The client is a bare asyncio HTTP/1.1 keep-alive client: a full HTTP
client library costs more CPU per request than a node does and would measure itself.

    .venv/bin/python benchmarks/bench_devnet.py [--topology topologies/rc3-fast.yaml]
        [--tps 100] [--duration 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bitcell_sim.devnet import Devnet, cpu_seconds, down, up
from bitcell_sim.devnet.ports import relocated_copy
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus_samples
from bitcell_sim.protocol.transaction import sign_transaction

ROOT = Path(__file__).resolve().parent.parent
RECIPIENT = KeyPair.from_seed("recipient").public_key


def presign(count: int, seed: int) -> list[bytes]:
    """``count`` fresh-key txs (nonce 0, amount 0, distinct gas prices), signed up front."""
    rng = np.random.default_rng(seed)
    return [
        sign_transaction(KeyPair.generate(rng), RECIPIENT, 0, 21000, 1_000_000_000 + i).encode()
        for i in range(count)
    ]


@dataclass
class Outcome:
    latencies_s: list[float] = field(default_factory=list)
    admitted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    late_starts: int = 0

    def add(self, latency_s: float, error: str | None) -> None:
        self.latencies_s.append(latency_s)
        if error is None:
            self.admitted += 1
        else:
            key = error.split(":", 1)[-1].strip()[:60]
            self.rejected[key] = self.rejected.get(key, 0) + 1


class BareClient:
    """``eth_sendRawTransaction`` over kept-alive connections to one node (one request in
    flight per connection; a new connection when all are busy)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def send(self, raw: bytes) -> str | None:
        """The error message of the answer, or None if the tx was admitted."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._all.append(writer)
        body = b'{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0x%s"],"id":1}' % (
            raw.hex().encode()
        )
        writer.write(
            b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
        self._idle.append((reader, writer))
        error = answer.get("error")
        return None if error is None else str(error.get("message"))

    async def close(self) -> None:
        for writer in self._all:
            writer.close()


async def _send(client: BareClient, raw: bytes, outcome: Outcome) -> None:
    start = time.perf_counter()
    try:
        error = await client.send(raw)
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        error = f"transport: {exc}"
    outcome.add(time.perf_counter() - start, error)


async def open_loop(urls: list[str], raws: list[bytes], tps: float) -> Outcome:
    """Send ``raws`` at ``tps`` on schedule whatever the answers (round-robin over nodes)."""
    outcome = Outcome()
    clients = [BareClient(url) for url in urls]
    tasks = []
    start = time.perf_counter()
    try:
        for index, raw in enumerate(raws):
            due = start + index / tps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.01:
                outcome.late_starts += 1
            client = clients[index % len(clients)]
            tasks.append(asyncio.ensure_future(_send(client, raw, outcome)))
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.close()
    return outcome


async def closed_loop(url: str, raws: list[bytes], concurrency: int, seconds: float) -> Outcome:
    """``concurrency`` clients each send back to back to one node for ``seconds``."""
    outcome = Outcome()
    queue = iter(raws)
    deadline = time.perf_counter() + seconds
    clients = [BareClient(url) for _ in range(concurrency)]

    async def worker(client: BareClient) -> None:
        while time.perf_counter() < deadline:
            raw = next(queue, None)
            if raw is None:
                return
            await _send(client, raw, outcome)

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client in clients:
            await client.close()
    return outcome


def cpu_snapshot(devnet: Devnet) -> dict[str, float]:
    out = {}
    for name, record in devnet.state.records().items():
        value = cpu_seconds(record)
        if value is not None:
            out[name] = value
    return out


def rpc_buckets(devnet: Devnet) -> dict[float, float]:
    """The nodes' server-side RPC latency histograms summed over nodes and methods:
    {upper bound s: count <= it}."""
    total: dict[float, float] = {}
    for endpoint in devnet.endpoints.values():
        text = httpx.get(endpoint.metrics_url, timeout=5.0, trust_env=False).text
        for sample in parse_prometheus_samples(text):
            if sample.name == "bitcell_rpc_request_duration_seconds_bucket":
                bound = float(dict(sample.labels)["le"])
                total[bound] = total.get(bound, 0.0) + sample.value
    return total


def bucket_quantile_ms(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The histogram bucket holding quantile ``q`` of the requests between two snapshots."""
    delta = sorted((b, after[b] - before.get(b, 0.0)) for b in after)
    count = delta[-1][1] if delta else 0.0
    previous = 0.0
    for bound, cumulative in delta:
        if count and cumulative >= q * count:
            return f"{previous * 1e3:g}-{bound * 1e3:g} ms"
        previous = bound
    return "n/a"


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q) * 1e3) if values else float("nan")


def table_rows(
    figures: dict[str, object], load: Outcome, burst: Outcome, args: argparse.Namespace
) -> list[str]:
    """The markdown table of the figures (what docs/devnet.md shows)."""
    lat = load.latencies_s
    rows = [
        "| figure | value |",
        "|---|---|",
        f"| topology | {args.topology.name}: 7 nodes + link emulator on this machine |",
        f"| offered load | {args.tps:g} TPS open loop for {args.duration:g} s, round-robin "
        f"over the nodes ({load.late_starts} sends started > 10 ms late) |",
        f"| sent / admitted | {len(lat)} / {load.admitted} |",
        f"| rejected | {load.rejected or 0} |",
        f"| RPC latency p50 / p90 / p99 / max | {percentile_ms(lat, 50):.1f} / "
        f"{percentile_ms(lat, 90):.1f} / {percentile_ms(lat, 99):.1f} / "
        f"{max(lat) * 1e3:.1f} ms |",
    ]
    server = figures["server_rpc_latency_bucket"]
    assert isinstance(server, dict)
    rows.append(
        f"| server-side RPC latency (node histograms), p50 / p99 bucket | {server['p50']} / "
        f"{server['p99']} |"
    )
    cpu = figures["cpu_pct_of_one_core"]
    assert isinstance(cpu, dict)
    for name, pct in cpu.items():
        rows.append(f"| CPU {name} | {pct:.1f} % of one core |")
    per_tx = figures["node_cpu_us_per_tx"]
    assert isinstance(per_tx, dict)
    rows.append(
        f"| node CPU per admitted tx (each node sees every tx) | {per_tx['median']:.0f} µs "
        f"median ({per_tx['min']:.0f}-{per_tx['max']:.0f}) per node |"
    )
    rows.append(
        f"| one node admits (closed loop, {args.concurrency} clients, {args.burst:g} s) | "
        f"{burst.admitted / args.burst:.0f} TPS (p50 {percentile_ms(burst.latencies_s, 50):.1f} "
        f"ms, p99 {percentile_ms(burst.latencies_s, 99):.1f} ms; rejected "
        f"{burst.rejected or 0}) |"
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", type=Path, default=ROOT / "topologies" / "rc3-fast.yaml")
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--burst", type=float, default=8.0, help="seconds of the one-node test")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    count = int(args.tps * args.duration)
    print(f"pre-signing {count} + burst transactions ...", file=sys.stderr)
    raws = presign(count, args.seed)
    burst_raws = presign(int(args.burst * 3000), args.seed + 1)

    with tempfile.TemporaryDirectory(prefix="bench-devnet-") as folder:
        # Every port moved to a free block, so a devnet already running is not hit.
        topology = relocated_copy(
            args.topology, Path(folder) / "topology.yaml", rng=random.Random(args.seed)
        )
        state_dir = Path(folder) / "state"
        try:
            devnet = up(topology, state_dir, timeout_s=120.0)
            time.sleep(max(0.0, devnet.meta.genesis_time_unix_s - time.time()) + 1.0)
            nodes = list(devnet.node_names)
            urls = [devnet.endpoints[n].rpc_url for n in nodes]
            print(f"devnet up; {args.tps:g} TPS for {args.duration:g} s ...", file=sys.stderr)
            buckets_before = rpc_buckets(devnet)
            cpu_before, wall_before = cpu_snapshot(devnet), time.monotonic()
            own_before = time.process_time()
            load = asyncio.run(open_loop(urls, raws, args.tps))
            wall_s = time.monotonic() - wall_before
            cpu_after = cpu_snapshot(devnet)
            own_pct = 100 * (time.process_time() - own_before) / wall_s
            buckets_after = rpc_buckets(devnet)
            cpu_pct = {
                name: 100 * (cpu_after[name] - cpu_before[name]) / wall_s
                for name in cpu_before
                if name in cpu_after
            }
            # Every node imports every tx (gossip, then in a block): CPU per admitted tx.
            per_tx_us = [
                1e6 * (cpu_after[name] - cpu_before[name]) / max(load.admitted, 1)
                for name in nodes
                if name in cpu_before and name in cpu_after
            ]
            heights = {}
            for name in nodes:
                health = devnet.health(name)
                heights[name] = health.chain_height
            print("one-node admission test ...", file=sys.stderr)
            burst = asyncio.run(closed_loop(urls[0], burst_raws, args.concurrency, args.burst))
        finally:
            down(state_dir, grace_s=5.0)

    figures = {
        "topology": str(args.topology.name),
        "tps_offered": args.tps,
        "duration_s": args.duration,
        "wall_s": wall_s,
        "sent": len(load.latencies_s),
        "admitted": load.admitted,
        "rejected": load.rejected,
        "late_starts": load.late_starts,
        "rpc_latency_ms": {
            "p50": percentile_ms(load.latencies_s, 50),
            "p90": percentile_ms(load.latencies_s, 90),
            "p99": percentile_ms(load.latencies_s, 99),
            "max": max(load.latencies_s) * 1e3 if load.latencies_s else float("nan"),
        },
        "cpu_pct_of_one_core": {**dict(sorted(cpu_pct.items())), "load generator": own_pct},
        "node_cpu_us_per_tx": {
            "median": float(np.median(per_tx_us)),
            "min": min(per_tx_us),
            "max": max(per_tx_us),
        },
        "server_rpc_latency_bucket": {
            "p50": bucket_quantile_ms(buckets_before, buckets_after, 0.50),
            "p99": bucket_quantile_ms(buckets_before, buckets_after, 0.99),
        },
        "final_heights": heights,
        "one_node": {
            "node": nodes[0],
            "concurrency": args.concurrency,
            "seconds": args.burst,
            "admitted_tps": burst.admitted / args.burst,
            "rejected": burst.rejected,
            "p50_ms": percentile_ms(burst.latencies_s, 50),
            "p99_ms": percentile_ms(burst.latencies_s, 99),
        },
    }
    for row in table_rows(figures, load, burst, args):
        print(row)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
