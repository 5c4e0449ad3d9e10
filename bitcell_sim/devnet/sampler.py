"""The timeline sampler: every node's state once a second, down or up, while the devnet runs.

:class:`Sampler` reads at each tick (genesis + k s) whether each node's process runs (its pid
record) and, within 0.5 s, its tip and ``/metrics``; a silent or down node keeps its last height
and tip (a down one with pool and peers 0), as in the model. Rows go to :class:`TimelineStore`
(``timeline.sqlite3``); ``devnet up`` starts ``python -m bitcell_sim.devnet.sampler``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import httpx

from bitcell_sim.devnet.cluster import Devnet
from bitcell_sim.devnet.processes import is_running
from bitcell_sim.errors import BitcellSimError, DevnetError
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.rpc_client import AsyncRpcClient

SAMPLE_INTERVAL_S = 1.0
#: A node that has not answered within this is sampled with its last known state.
ANSWER_TIMEOUT_S = 0.5
READY_LINE = "SAMPLER READY"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timeline (
    time_s REAL NOT NULL,
    node TEXT NOT NULL,
    up INTEGER NOT NULL,
    height INTEGER NOT NULL,
    tip_hash TEXT NOT NULL,
    pool_size INTEGER NOT NULL,
    peers INTEGER NOT NULL,
    sync_progress REAL NOT NULL,
    PRIMARY KEY (time_s, node)
);
"""


@dataclass(frozen=True, slots=True)
class Sample:
    """One row of the node timeline (``time_s`` in seconds since genesis)."""

    time_s: float
    node: str
    up: bool
    height: int
    tip_hash: str
    pool_size: int
    peers: int
    sync_progress: float


class TimelineStore:
    """The samples in SQLite (WAL): appended by the sampler, read by the collector."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise DevnetError(f"cannot open the timeline {path}: {exc}") from None

    def append(self, samples: Sequence[Sample]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [astuple(s) for s in samples],
            )

    def read(self, since_s: float = -float("inf"), until_s: float = float("inf")) -> list[Sample]:
        """The samples with ``since_s <= time_s <= until_s``, by time, then node."""
        rows = self._db.execute(
            "SELECT * FROM timeline WHERE time_s BETWEEN ? AND ? ORDER BY time_s, node",
            (since_s, until_s),
        ).fetchall()
        return [Sample(float(t), n, bool(u), int(h), tip, int(p), int(c), float(s))
                for t, n, u, h, tip, p, c, s in rows]  # fmt: skip

    def close(self) -> None:
        self._db.close()


class Sampler:
    """Samples ``devnet``'s nodes into ``store`` every ``interval_s`` on the genesis clock."""

    def __init__(
        self,
        devnet: Devnet,
        store: TimelineStore,
        interval_s: float = SAMPLE_INTERVAL_S,
        timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        self.devnet = devnet
        self.store = store
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.genesis_unix_s = devnet.meta.genesis_time_unix_s
        # Before a node's first answer: genesis, as every node starts there.
        self.last = {n: Sample(0.0, n, False, 0, "", 0, 0, 100.0) for n in devnet.node_names}
        self.samples = 0

    async def _read_node(
        self, node: str, rpc: AsyncRpcClient, http: httpx.AsyncClient
    ) -> Sample | None:
        """The node's state now, or None if it does not answer in time."""
        endpoint = self.devnet.endpoints[node]
        try:
            block, response = await asyncio.wait_for(
                asyncio.gather(rpc.get_block_by_number("latest"), http.get(endpoint.metrics_url)),
                self.timeout_s,
            )
            metrics = parse_prometheus(response.text)
            return Sample(
                time_s=0.0,
                node=node,
                up=True,
                height=int(str(block["number"]), 16),
                tip_hash=str(block["hash"]).removeprefix("0x"),
                pool_size=int(metrics["bitcell_pending_txs"]),
                peers=int(metrics["bitcell_peer_count"]),
                sync_progress=float(metrics["bitcell_sync_progress"]),
            )
        except (TimeoutError, httpx.HTTPError, BitcellSimError, KeyError, TypeError, ValueError):
            return None

    async def sample(
        self, time_s: float, clients: dict[str, AsyncRpcClient], http: httpx.AsyncClient
    ) -> list[Sample]:
        """One tick: a sample of every node, written to the store."""
        running = {}
        for node in self.devnet.node_names:
            record = self.devnet.record(node)
            running[node] = record is not None and is_running(record)
        answers = await asyncio.gather(
            *(
                self._read_node(node, clients[node], http)
                if running[node]
                else asyncio.sleep(0, None)
                for node in self.devnet.node_names
            )
        )
        rows = []
        for node, answer in zip(self.devnet.node_names, answers, strict=True):
            last = self.last[node]
            if answer is not None:
                row = replace(answer, time_s=time_s)
            elif running[node]:
                row = replace(last, time_s=time_s, up=True)
            else:
                row = replace(last, time_s=time_s, up=False, pool_size=0, peers=0)
            self.last[node] = row
            rows.append(row)
        self.store.append(rows)
        self.samples += 1
        return rows

    async def run(self, stop: asyncio.Event) -> None:
        """Sample at every tick from genesis until ``stop`` is set (missed ticks are skipped)."""
        clients = {
            node: AsyncRpcClient(e.rpc_url, timeout_s=self.timeout_s)
            for node, e in self.devnet.endpoints.items()
        }
        async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as http:
            try:
                tick = 0
                while not stop.is_set():
                    now_s = time.time() - self.genesis_unix_s
                    tick = max(tick, int(-(-now_s // self.interval_s)))  # next tick at or after
                    try:
                        await asyncio.wait_for(
                            stop.wait(), max(tick * self.interval_s - now_s, 0.0)
                        )
                        break
                    except TimeoutError:
                        pass
                    await self.sample(tick * self.interval_s, clients, http)
                    tick += 1
            finally:
                for client in clients.values():
                    await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bitcell_sim.devnet.sampler",
        description="Record every devnet node's state once a second into the state folder.",
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=SAMPLE_INTERVAL_S, help="seconds")
    args = parser.parse_args(argv)
    if not args.interval > 0:
        print(f"error: --interval {args.interval} must be > 0", file=sys.stderr)
        return 1
    try:
        devnet = Devnet.open(args.state_dir)
        store = TimelineStore(devnet.state.timeline_path)
    except BitcellSimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"{READY_LINE} {store.path}", flush=True)
        await Sampler(devnet, store, args.interval).run(stop)

    try:
        asyncio.run(run())
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
