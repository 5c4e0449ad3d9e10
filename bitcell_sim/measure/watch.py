"""Watching a deployment from outside: each node's tip polled, its new blocks fetched, its state.

:class:`Watch` reads each node's height (``eth_blockNumber``) every ``poll_interval_s``; when it
moves, the new tip's blocks are fetched down to one the node was seen to hold, so no height is
skipped, and each new block's arrival at that node is bracketed by the last read that did not
show it and the read that did (:class:`Arrival`). Once a second (genesis clock) it samples each
node's metrics (or RPC) for the node timeline. Traffic goes only to the endpoints it is given.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bitcell_sim.errors import BitcellSimError, DeployError
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.rpc_client import AsyncRpcClient, RpcClient
from bitcell_sim.topology.endpoints import Endpoints

#: Default tip poll interval: the arrival-time error is at most about half of it.
DEFAULT_POLL_INTERVAL_S = 0.1
TIMELINE_INTERVAL_S = 1.0
#: A node that has not answered within this is taken as not answering (down).
ANSWER_TIMEOUT_S = 0.5
PROPAGATION = "bitcell_block_propagation_seconds"


@dataclass(frozen=True)
class SeenBlock:
    """A block as ``eth_getBlockByNumber`` gave it (hashes lower-case hex without 0x)."""

    block_hash: str
    height: int
    parent_hash: str
    miner: str
    timestamp: int
    size_bytes: int
    tx_ids: tuple[str, ...]

    @classmethod
    def of_rpc(cls, data: Mapping[str, Any]) -> SeenBlock:
        try:
            return cls(
                block_hash=_hex(data["hash"]),
                height=int(str(data["number"]), 16),
                parent_hash=_hex(data["parentHash"]),
                miner=_hex(data["miner"]),
                timestamp=int(str(data["timestamp"]), 16),
                size_bytes=int(str(data["size"]), 16),
                tx_ids=tuple(_hex(t) for t in data["transactions"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(f"not a block object ({exc!r}): {str(dict(data))[:200]}") from None


def _hex(value: Any) -> str:
    text = str(value)
    if not text.startswith("0x"):
        raise ValueError(f"{text!r} is not 0x-hex")
    return text[2:].lower()


@dataclass(frozen=True)
class Arrival:
    """A block's arrival at a node, known to lie in ``(earliest_unix_s, latest_unix_s]``: after
    the node's last read that did not show it was sent, before the read that did was answered."""

    block_hash: str
    node: str
    earliest_unix_s: float
    latest_unix_s: float

    @property
    def estimate_unix_s(self) -> float:
        """The middle of the bracket: off by at most :attr:`half_width_s`."""
        return (self.earliest_unix_s + self.latest_unix_s) / 2

    @property
    def half_width_s(self) -> float:
        return (self.latest_unix_s - self.earliest_unix_s) / 2


@dataclass(frozen=True)
class TimelineRow:
    """One node at one timeline tick (``time_unix_s``); ``up``: it answered in time."""

    time_unix_s: float
    node: str
    up: bool
    height: int
    tip_hash: str
    pool_size: int
    peers: int
    sync_progress: float | None  # None: not exported; derived from the heights


@dataclass
class NodeChain:
    """What the polls saw of one node: the blocks it was seen to hold and its tip."""

    seen: set[str] = field(default_factory=set)
    #: Height of the first tip seen: the node held it and its ancestors before the watch began.
    floor: int | None = None
    tip_height: int = 0
    tip_hash: str = ""
    #: When the last read that answered was sent (the earliest a new block can have come).
    last_read_unix_s: float | None = None
    reads: int = 0
    failed_reads: int = 0
    last_error: str = ""


@dataclass
class Histogram:
    """A node's ``bitcell_block_propagation_seconds`` count and sum, first and last scrape."""

    first: tuple[float, float] | None = None
    last: tuple[float, float] | None = None

    def add(self, metrics: Mapping[str, float]) -> None:
        count, total = metrics.get(f"{PROPAGATION}_count"), metrics.get(f"{PROPAGATION}_sum")
        if count is None or total is None:
            return
        if self.first is None:
            self.first = (count, total)
        self.last = (count, total)

    def delta(self) -> dict[str, float | None] | None:
        """Blocks counted and their mean propagation between the first and last scrape."""
        if self.first is None or self.last is None:
            return None
        count, total = self.last[0] - self.first[0], self.last[1] - self.first[1]
        return {"blocks": count, "mean_s": total / count if count > 0 else None}


class Watch:
    """Polls the nodes of ``endpoints`` until stopped; see the module docstring."""

    def __init__(
        self,
        endpoints: Endpoints,
        genesis_unix_s: float,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        timeline_interval_s: float = TIMELINE_INTERVAL_S,
        timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        if not poll_interval_s > 0 or not timeline_interval_s > 0 or not timeout_s > 0:
            raise DeployError("poll interval, timeline interval and timeout must be > 0")
        self.endpoints = endpoints
        self.genesis_unix_s = genesis_unix_s
        self.poll_interval_s = poll_interval_s
        self.timeline_interval_s = timeline_interval_s
        self.timeout_s = timeout_s
        self.blocks: dict[str, SeenBlock] = {}
        self.arrivals: dict[tuple[str, str], Arrival] = {}
        self.chains = {node: NodeChain() for node in endpoints.nodes}
        self.timeline: list[TimelineRow] = []
        self.histograms = {node: Histogram() for node in endpoints.nodes}
        #: Proposer key (hex) -> node name, from each node's ``bitcell_getNodeInfo``.
        self.node_of_key: dict[str, str] = {}
        #: Round trip of every tip read that answered (what widens a bracket past the interval).
        self.read_round_trips_s: list[float] = []
        self.started_unix_s: float | None = None
        self.stopped_unix_s: float | None = None

    # ---- the chain --------------------------------------------------------------------------
    async def _fetch(self, client: AsyncRpcClient, tag: int | str) -> SeenBlock | None:
        data = await client.get_block_by_number(tag)
        return None if data is None else SeenBlock.of_rpc(data)

    async def _read_tip(self, node: str, client: AsyncRpcClient) -> None:
        chain = self.chains[node]
        sent = time.time()
        try:
            # eth_blockNumber costs the node (and us) far less than a whole block at every
            # poll; the block is fetched when the height moves. A tip replaced at the same
            # height is seen when the height next moves (its blocks are fetched then).
            height = await asyncio.wait_for(client.block_number(), self.timeout_s)
            received = time.time()
            self.read_round_trips_s.append(received - sent)
            if height != chain.tip_height or chain.floor is None:
                tip = await asyncio.wait_for(self._fetch(client, height), self.timeout_s)
                if tip is None or tip.height != height:
                    return  # the chain moved under the read: the next read retries
                if not await self._take(node, client, tip, received):
                    return  # the chain moved while its blocks were fetched: the next read retries
        except (TimeoutError, BitcellSimError) as exc:
            chain.failed_reads += 1
            chain.last_error = str(exc) or type(exc).__name__
            return
        chain.reads += 1
        chain.last_read_unix_s = sent

    async def _take(
        self, node: str, client: AsyncRpcClient, tip: SeenBlock, received_unix_s: float
    ) -> bool:
        """Record ``tip`` and the ancestors the node was not yet seen to hold; False if the
        node's chain changed under the walk."""
        chain = self.chains[node]
        new = [tip]
        if chain.floor is None:
            chain.floor = tip.height  # held before the watch began: no arrival to record
            new_arrivals = False
        else:
            new_arrivals = True
            cursor = tip
            while cursor.height > chain.floor and cursor.parent_hash not in chain.seen:
                parent = await asyncio.wait_for(
                    self._fetch(client, cursor.height - 1), self.timeout_s
                )
                if parent is None or parent.block_hash != cursor.parent_hash:
                    return False
                new.append(parent)
                cursor = parent
        for block in new:
            self.blocks.setdefault(block.block_hash, block)
            chain.seen.add(block.block_hash)
            key = (block.block_hash, node)
            if new_arrivals and chain.last_read_unix_s is not None and key not in self.arrivals:
                self.arrivals[key] = Arrival(
                    block.block_hash, node, chain.last_read_unix_s, received_unix_s
                )
        chain.tip_height, chain.tip_hash = tip.height, tip.block_hash
        return True

    # ---- the timeline -----------------------------------------------------------------------
    async def _sample(
        self, node: str, tick_unix_s: float, client: AsyncRpcClient, http: httpx.AsyncClient
    ) -> TimelineRow:
        chain, metrics_url = self.chains[node], self.endpoints.nodes[node].metrics_url
        try:
            if node not in self.node_of_key.values():
                info = await asyncio.wait_for(client.get_node_info(), self.timeout_s)
                self.node_of_key[str(info["node_id"]).lower().removeprefix("0x")] = node
            if metrics_url is not None:
                response = await asyncio.wait_for(http.get(metrics_url), self.timeout_s)
                response.raise_for_status()
                metrics = parse_prometheus(response.text)
                self.histograms[node].add(metrics)
                pool = int(metrics["bitcell_pending_txs"])
                peers = int(metrics["bitcell_peer_count"])
                sync: float | None = metrics.get("bitcell_sync_progress")
            else:
                peers, pending = await asyncio.wait_for(
                    asyncio.gather(client.get_peer_count(), client.get_pending_block_info()),
                    self.timeout_s,
                )
                pool, sync = int(pending["pendingTransactions"]), None
        except (TimeoutError, BitcellSimError, httpx.HTTPError, KeyError, TypeError, ValueError):
            return TimelineRow(
                tick_unix_s, node, False, chain.tip_height, chain.tip_hash, 0, 0, None
            )
        return TimelineRow(
            tick_unix_s, node, True, chain.tip_height, chain.tip_hash, pool, peers, sync
        )

    # ---- running ----------------------------------------------------------------------------
    async def _every(self, interval_s: float, stop: asyncio.Event, step: Any) -> None:
        """Call ``step(tick_unix_s)`` at every ``genesis + k * interval_s`` until ``stop``
        (ticks missed while a step ran are skipped)."""
        tick = 0
        while not stop.is_set():
            now_s = time.time() - self.genesis_unix_s
            tick = max(tick, math.ceil(now_s / interval_s))
            try:
                await asyncio.wait_for(stop.wait(), max(tick * interval_s - now_s, 0.0))
                return
            except TimeoutError:
                pass
            await step(self.genesis_unix_s + tick * interval_s)
            tick += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set; the tables are then in :attr:`blocks`,
        :attr:`arrivals` and :attr:`timeline`."""
        # One client per node for the tips and one for the timeline, so neither waits on the other.
        tips = {
            n: AsyncRpcClient(u.rpc_url, timeout_s=self.timeout_s)
            for n, u in self.endpoints.nodes.items()
        }
        samplers = {
            n: AsyncRpcClient(u.rpc_url, timeout_s=self.timeout_s)
            for n, u in self.endpoints.nodes.items()
        }

        async def sample(tick_unix_s: float) -> None:
            rows = await asyncio.gather(
                *(self._sample(n, tick_unix_s, samplers[n], http) for n in self.endpoints.nodes)
            )
            self.timeline.extend(rows)

        def poller(node: str) -> Any:
            return lambda _tick: self._read_tip(node, tips[node])

        self.started_unix_s = time.time()
        async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as http:
            try:
                await asyncio.gather(
                    self._every(self.timeline_interval_s, stop, sample),
                    *(self._every(self.poll_interval_s, stop, poller(n)) for n in tips),
                )
            finally:
                self.stopped_unix_s = time.time()
                for client in (*tips.values(), *samplers.values()):
                    await client.aclose()

    async def run_until(
        self, deadline_unix_s: float, done: Callable[[], bool] = lambda: False
    ) -> None:
        """Watch until ``deadline_unix_s`` or until ``done()`` (checked a few times a second)."""
        stop = asyncio.Event()

        async def stopper() -> None:
            while time.time() < deadline_unix_s and not done():
                await asyncio.sleep(min(0.2, max(deadline_unix_s - time.time(), 0.0)))
            stop.set()

        await asyncio.gather(self.run(stop), stopper())


def genesis_clock(endpoints: Endpoints, given_unix_s: float | None = None) -> tuple[float, str]:
    """The genesis time the records count from, and where it came from: ``given_unix_s``, else
    the endpoints file's, else block 0's timestamp from the first node that answers (whole
    seconds only: times are then off by up to a second, the same for every node)."""
    if given_unix_s is not None:
        return given_unix_s, "given"
    if endpoints.genesis_time_unix_s is not None:
        return endpoints.genesis_time_unix_s, "endpoints file"
    errors = []
    for node, urls in endpoints.nodes.items():
        try:
            with RpcClient(urls.rpc_url, timeout_s=2.0) as client:
                block = client.get_block_by_number(0)
            if block is not None:
                return float(
                    SeenBlock.of_rpc(block).timestamp
                ), f"block 0 of {node} (whole seconds)"
        except BitcellSimError as exc:
            errors.append(f"{node}: {exc}")
    raise DeployError(
        "cannot date the genesis: no node answered block 0 "
        f"({'; '.join(errors) or 'none had it'}); give --genesis-unix"
    )
