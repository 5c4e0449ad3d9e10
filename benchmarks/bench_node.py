"""What a devnet node costs and how fast it admits: real node processes, loopback, this machine.

1. ``max``: the highest rate one validator admits via ``eth_sendRawTransaction`` (pre-signed
   fresh-key txs, ``--clients`` concurrent closed-loop clients, a pool large enough to take all).
2. ``latency``: RPC latency p50/p99 of ``eth_sendRawTransaction`` at ``--tps`` open-loop (paced)
   against one node, and that node's CPU share over the window.
3. ``network``: ``--nodes`` nodes in a full mesh (direct, no emulator), ``--tps`` spread over
   them round-robin for ``--duration`` s: CPU share per node (from /proc/<pid>/stat), blocks,
   confirmed txs, and the CPU share of each node while idle (no load).
Prints a Markdown table per part. Run:
``.venv/bin/python benchmarks/bench_node.py [--parts max,latency,network] [--nodes 7] [--tps 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np

from bitcell_sim.node.harness import HOST, LocalNet
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import sign_transaction

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECIPIENT = KeyPair.from_seed("bench-recipient").public_key


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def presign(count: int, seed: int) -> list[str]:
    """``count`` raw txs from fresh keys (nonce 0, amount 0: each applies), as request bodies."""
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(count):
        tx = sign_transaction(KeyPair.generate(rng), RECIPIENT, 0, 21000, 10**9 + i % 1000)
        bodies.append(
            '{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0x'
            + tx.encode().hex()
            + f'"],"id":{i}}}'
        )
    return bodies


HEADERS = {"Content-Type": "application/json"}


async def closed_loop(host: str, port: int, bodies: list[str], clients: int) -> tuple[float, int]:
    """Send every body with ``clients`` keep-alive connections, one request in flight each.

    A bare HTTP/1.1 client on asyncio streams: a full HTTP client library costs more CPU per
    request than the node does, and would measure itself instead of the node.
    """
    accepted = 0
    queue = iter(bodies)

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, port)
        for body in queue:
            data = body.encode()
            writer.write(
                b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            reply = await reader.readexactly(length)
            accepted += b'"error":null' in reply
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - start, accepted


async def open_loop(urls: list[str], bodies: list[str], tps: float) -> list[float]:
    """Send ``bodies`` at ``tps`` (paced), round-robin over ``urls``; latencies in seconds."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(url: str, body: str) -> None:
            start = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
            latencies.append(time.perf_counter() - start)

        tasks = []
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = t0 + i / tps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(urls[i % len(urls)], body)))
        await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def part_max(root: Path, count: int, clients: int, seed: int) -> list[str]:
    bodies = presign(count, seed)
    protocol = {"tx_pool_capacity": count + 10, "max_txs_per_block": 1000}
    with LocalNet(root / "max", {"v": "validator"}, phase_s=5.0, protocol=protocol) as net:
        net.start()
        node = net.nodes["v"]
        cpu0 = cpu_seconds(node.pid)
        seconds, accepted = asyncio.run(closed_loop(HOST, node.rpc_port, bodies, clients))
        cpu = (cpu_seconds(node.pid) - cpu0) / seconds
    return [
        "| txs sent | clients | accepted | seconds | admitted tx/s | node CPU (cores) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {count} | {clients} | {accepted} | {seconds:.2f} | {accepted / seconds:.0f} "
        f"| {cpu:.2f} |",
    ]


def part_latency(root: Path, tps: float, duration_s: float, seed: int) -> list[str]:
    bodies = presign(int(tps * duration_s), seed + 1)
    with LocalNet(root / "lat", {"v": "validator"}, phase_s=1.0) as net:
        started = time.perf_counter()
        net.start()
        ready_s = time.perf_counter() - started
        node = net.nodes["v"]
        cpu0, t0 = cpu_seconds(node.pid), time.perf_counter()
        latencies = asyncio.run(open_loop([f"{node.rpc_url}/rpc"], bodies, tps))
        cpu = (cpu_seconds(node.pid) - cpu0) / (time.perf_counter() - t0)
        rss = rss_mb(node.pid)
    ms = [x * 1000 for x in latencies]
    return [
        "| target tx/s | requests | p50 ms | p90 ms | p99 ms | max ms | node CPU (cores) "
        "| RSS MB | start to /health s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {tps:.0f} | {len(ms)} | {pct(ms, 50):.2f} | {pct(ms, 90):.2f} | {pct(ms, 99):.2f} "
        f"| {max(ms):.2f} | {cpu:.3f} | {rss:.0f} | {ready_s:.2f} |",
    ]


def part_network(root: Path, nodes: int, tps: float, duration_s: float, seed: int) -> list[str]:
    roles = {f"n{i}": "validator" for i in range(nodes)}
    bodies = presign(int(tps * duration_s), seed + 2)
    with LocalNet(root / "net", roles, phase_s=1.0, genesis_delay_s=3.0) as net:
        net.start()
        time.sleep(max(0.0, net.genesis_time_s - time.time()) + 3.0)
        pids = {name: node.pid for name, node in net.nodes.items()}
        idle0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.perf_counter()
        time.sleep(10.0)
        idle_s = time.perf_counter() - t0
        idle = {name: (cpu_seconds(pid) - idle0[name]) / idle_s for name, pid in pids.items()}
        first = next(iter(net.nodes.values()))
        height0 = httpx.post(
            f"{first.rpc_url}/rpc",
            json={"jsonrpc": "2.0", "method": "eth_blockNumber", "id": 1},
            trust_env=False,
        ).json()["result"]
        load0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.perf_counter()
        urls = [f"{node.rpc_url}/rpc" for node in net.nodes.values()]
        latencies = asyncio.run(open_loop(urls, bodies, tps))
        time.sleep(4.0)  # let the last blocks land
        load_s = time.perf_counter() - t0
        load = {name: (cpu_seconds(pid) - load0[name]) / load_s for name, pid in pids.items()}
        rss = {name: rss_mb(pid) for name, pid in pids.items()}
        metrics = httpx.get(f"{first.metrics_url}/metrics", trust_env=False).text
        processed = next(
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("bitcell_txs_processed_total ")
        )
        height1 = httpx.post(
            f"{first.rpc_url}/rpc",
            json={"jsonrpc": "2.0", "method": "eth_blockNumber", "id": 1},
            trust_env=False,
        ).json()["result"]
    ms = [x * 1000 for x in latencies]
    lines = [
        f"{nodes} validators, full mesh, 1 s phases; {tps:.0f} tx/s for {duration_s:.0f} s "
        f"round-robin; blocks {int(height0, 16)}->{int(height1, 16)}; "
        f"txs confirmed (node n0) {processed:.0f} of {len(bodies)}; "
        f"RPC p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms",
        "",
        "| node | CPU idle (cores) | CPU under load (cores) | RSS MB |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {idle[name]:.3f} | {load[name]:.3f} | {rss[name]:.0f} |" for name in pids
    ]
    lines.append(
        f"| **sum** | {sum(idle.values()):.3f} | {sum(load.values()):.3f} "
        f"| {sum(rss.values()):.0f} |"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="max,latency,network")
    parser.add_argument("--count", type=int, default=20000, help="txs for the max part")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--nodes", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    parts = args.parts.split(",")
    print(f"# bench_node on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        root = Path(tmp)
        if "max" in parts:
            print("## Admission rate, one node\n")
            print("\n".join(part_max(root, args.count, args.clients, args.seed)) + "\n")
        if "latency" in parts:
            print(f"## RPC latency at {args.tps:.0f} tx/s, one node\n")
            lines = part_latency(root, args.tps, args.duration, args.seed)
            print("\n".join(lines) + "\n")
        if "network" in parts:
            print("## CPU per node\n")
            lines = part_network(root, args.nodes, args.tps, args.duration, args.seed)
            print("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
