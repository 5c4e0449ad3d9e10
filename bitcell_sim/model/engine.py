"""The model engine: one SimPy run of a topology, from genesis to the end of its duration.

:class:`Simulation` wires the parts: rounds (commit, reveal, battle from
:class:`~bitcell_sim.protocol.consensus.RoundSchedule`), the winner rule at every validator,
block building, block gossip over :class:`~bitcell_sim.model.links.Link` objects, import and
fork choice, ancestor fetch and sync, faults, the lazily advanced
:class:`~bitcell_sim.model.txplane.TxPlane`, and a 1 s node timeline. :func:`simulate` runs it
and returns a :class:`ModelResult` holding the four record tables of
:mod:`bitcell_sim.results.records` and the model's own counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import simpy

from bitcell_sim.errors import ModelError
from bitcell_sim.model.chain import (
    Block,
    IntArray,
    chain_of,
    genesis_hash,
    is_better,
    make_block_hash,
    reorg_path,
)
from bitcell_sim.model.flood import Flood
from bitcell_sim.model.links import Link, MessageJitter, TickJitter
from bitcell_sim.model.schedule import FaultSchedule, PartitionWindow
from bitcell_sim.model.txplane import POOL_FULL, TxPlane
from bitcell_sim.model.wire import wire_sizes
from bitcell_sim.protocol.admission import POOL_ERROR_CODE
from bitcell_sim.protocol.consensus import RoundSchedule, fork_choice_key, is_syncing, ticket
from bitcell_sim.protocol.identity import node_keypair
from bitcell_sim.results.records import REJECT_POOL_FULL, REJECT_UNREACHABLE, to_table
from bitcell_sim.topology import SeedTree, Topology, arrival_schedule, link_params

#: Node timeline sampling period.
TIMELINE_INTERVAL_S = 1.0
#: How long a node waits for a sync answer that was lost before it gives up on that peer.
REQUEST_TIMEOUT_S = 2.0

# Relay modes of an imported block: to every peer but the sender (a node index), to every
# peer (a block the node built), or to nobody (a block fetched by sync).
RELAY_ALL = -1
NO_RELAY = -2

ProgressCallback = Callable[[float, float], None]


class _CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it schedules (a cost figure)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled = 0

    def schedule(self, event: simpy.Event, priority: int = 1, delay: float = 0) -> None:
        self.scheduled += 1
        super().schedule(event, priority, delay)  # type: ignore[arg-type]


@dataclass
class ModelResult:
    """A finished run: record tables by name, the model's counters, and timing."""

    tables: dict[str, pa.Table]
    stats: dict[str, Any] = field(default_factory=dict)
    simulated_s: float = 0.0
    wall_s: float = 0.0

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")


class Simulation:
    """One model run of ``topology``; call :meth:`run` once."""

    def __init__(self, topology: Topology, progress: ProgressCallback | None = None) -> None:
        protocol = topology.protocol
        if protocol.gossip.tx_batch_interval_s <= 0:
            raise ModelError(
                f"protocol.gossip.tx_batch_interval (={protocol.gossip.tx_batch_interval_s} s) "
                "must be > 0: the model gossips txs in batches"
            )
        self.topology = topology
        self.progress = progress
        self.names = topology.node_names
        self.node_count = n = len(self.names)
        index = {name: i for i, name in enumerate(self.names)}
        self.duration_s = topology.general.duration_s
        self.rounds = RoundSchedule(0.0, protocol.commit_s, protocol.reveal_s, protocol.battle_s)
        self.max_txs = protocol.max_txs_per_block
        self.sync_batch = protocol.sync_batch_blocks
        self.processing = protocol.processing
        self.sync_step_back = protocol.sync_step_back_blocks
        self.wire = wire_sizes(protocol.tx_size_bytes)
        self.schedule = FaultSchedule(topology, index)

        self.peers = [tuple(index[p] for p in topology.peer_map[name]) for name in self.names]
        self.adjacency = np.zeros((n, n), dtype=np.bool_)
        for node, peers in enumerate(self.peers):
            self.adjacency[node, list(peers)] = True
        directed = [(index[a], index[b]) for a, b in topology.directed_links]
        params = [link_params(topology, a, b) for a, b in topology.directed_links]
        seeds = SeedTree(topology.general.seed)
        self.jitters = [
            MessageJitter(p.jitter_distribution, p.jitter_s, seeds.link_messages(i))
            for i, p in enumerate(params)
        ]
        latency = np.array([p.latency_s for p in params])
        bandwidth = topology.links.bandwidth_bps
        self.links: dict[tuple[int, int], Link] = {
            (a, b): Link(a, b, float(latency[i]), bandwidth, self.jitters[i], self.schedule)
            for i, (a, b) in enumerate(directed)
        }
        self.flood = Flood(
            n,
            np.array([a for a, _ in directed], dtype=np.int64),
            np.array([b for _, b in directed], dtype=np.int64),
            latency,
            bandwidth,
            self.schedule,
            protocol.gossip.fanout,
            jitter=(topology.links.jitter.distribution, topology.links.jitter.scale_s),
            jitter_key=seeds.consensus_key(),
            fanout_key=seeds.fanout_key(),
        )
        self.validators = [index[v] for v in topology.validators]
        self.keys = {
            v: node_keypair(topology.general.name, self.names[v]).public_key
            for v in self.validators
        }
        self._rankings: dict[bytes, list[int]] = {}

        self.arrivals = arrival_schedule(topology)
        self.cpu_busy_s = np.zeros(n)
        self.txs = TxPlane(
            self.arrivals,
            n,
            protocol.tx_pool_capacity,
            protocol.processing.tx_validate_s,
            protocol.processing.rpc_service_s,
            protocol.gossip.tx_batch_interval_s,
            self.flood,
            TickJitter(
                topology.links.jitter.distribution,
                topology.links.jitter.scale_s,
                [seeds.link_batches(i) for i in range(len(directed))],
            ),
            self.wire.tx_frame_bytes,
            self.cpu_busy_s,
        )

        genesis = Block(
            block_hash=genesis_hash(topology.general.name, topology.general.seed),
            parent=None,
            producer=-1,
            round_index=-1,
            produced_s=0.0,
            txs=np.empty(0, dtype=np.int64),
            size_bytes=self.wire.block_bytes(0),
            index=0,
        )
        self.genesis = genesis
        self.blocks: list[Block] = [genesis]
        self.up = [True] * n
        self.incarnation = [0] * n
        self.tip = [genesis] * n
        self.imported: list[set[bytes]] = [{genesis.hash} for _ in range(n)]
        self.importing: list[set[bytes]] = [{genesis.hash} for _ in range(n)]
        self.seen: list[set[bytes]] = [{genesis.hash} for _ in range(n)]
        self.pending: list[dict[bytes, list[tuple[Block, int]]]] = [{} for _ in range(n)]
        self.syncing = [False] * n
        self.wanted: list[tuple[Block, int] | None] = [None] * n
        self.best_known_height = [0] * n

        self._arrival_block: list[int] = []
        self._arrival_node: list[int] = []
        self._arrival_s: list[float] = []
        # One entry per sample: time, then per node up, height, tip block index, pool size,
        # reachable peers and sync progress.
        self._samples: list[tuple[float, *tuple[npt.NDArray[Any], ...]]] = []
        self.counters = {"reorgs": 0, "reorged_blocks": 0, "syncs": 0, "sync_failures": 0}
        self.env = _CountingEnvironment()
        self._ran = False

    # ---- running --------------------------------------------------------------------------

    def run(self) -> ModelResult:
        if self._ran:
            raise ModelError("a Simulation runs once; make a new one")
        self._ran = True
        started = time.perf_counter()
        # Fault events are scheduled first so that, at equal times, they happen first.
        for window in self.schedule.down_windows:
            self._at(window.start_s, self._go_down, window.node)
            if window.end_s < self.duration_s:
                self._at(window.end_s, self._go_up, window.node)
        for partition in self.schedule.partitions:
            if partition.end_s < self.duration_s:
                self._at(partition.end_s, self._heal, partition)
        self.env.process(self._round_loop())
        self.env.process(self._timeline_loop())
        self.env.run(until=self.duration_s)
        self.txs.advance(self.duration_s)
        last = self._samples[-1][0] if self._samples else -1.0
        if last < self.duration_s:
            self._sample(self.duration_s)
        tables = self._tables()
        wall_s = time.perf_counter() - started
        return ModelResult(tables, self._stats(), self.duration_s, wall_s)

    def _at(self, t_s: float, action: Callable[..., None], *args: Any) -> None:
        event = self.env.timeout(t_s - self.env.now)
        event.callbacks.append(lambda _event: action(*args))

    # ---- rounds -----------------------------------------------------------------------------

    def _round_loop(self) -> Generator[simpy.Event, Any, None]:
        r = 0
        while True:
            start_s = self.rounds.round_start(r)
            deadline_s = self.rounds.reveal_deadline(r)
            end_s = self.rounds.round_start(r + 1)
            if deadline_s >= self.duration_s:
                return
            yield self.env.timeout(start_s - self.env.now)
            # As on the devnet, a validator that is syncing makes no commitment this round.
            committing = [v for v in self.validators if self.up[v] and not self._syncing(v)]
            commit_backlog = self._cpu_backlog_s()
            yield self.env.timeout(start_s + self.rounds.commit_s - self.env.now)
            reveal_backlog = self._cpu_backlog_s()
            yield self.env.timeout(deadline_s - self.env.now)
            believers = self._decide(
                r, start_s, deadline_s, committing, commit_backlog, reveal_backlog
            )
            if end_s >= self.duration_s:
                return
            yield self.env.timeout(end_s - self.env.now)
            for node, incarnation in believers:
                self._build(node, r, incarnation)
            r += 1

    def _syncing(self, node: int) -> bool:
        """Behind the best height it has heard of by more than the protocol's syncing lag."""
        return is_syncing(self.tip[node].height, self.best_known_height[node])

    def _cpu_backlog_s(self) -> npt.NDArray[np.float64]:
        """How far behind now each node's CPU is (0 for an idle one)."""
        now = self.env.now
        self.txs.advance(now)
        return np.maximum(self.cpu_busy_s - now, 0.0)

    def _decide(
        self,
        r: int,
        start_s: float,
        deadline_s: float,
        committing: list[int],
        commit_backlog_s: npt.NDArray[np.float64],
        reveal_backlog_s: npt.NDArray[np.float64],
    ) -> list[tuple[int, int]]:
        """At the end of round ``r``'s reveal phase: which validators believe they won.

        A validator believes it won when the first validator of its tip's ranking whose
        commitment and reveal it held in time is itself. A node judges a commitment or reveal
        when its CPU gets to it, so a node with a backlog sends its own late and counts others'
        late: a starved validator drops out of rounds. Only the messages a decision needs are
        flooded, best-ranked first (usually one sender's); their jitter does not depend on which
        others are flooded, so the outcome is the one of flooding every sender's.
        """
        commit_end_s = start_s + self.rounds.commit_s
        schedule = self.schedule
        senders = {v for v in committing if not schedule.down_between(v, start_s, commit_end_s)}
        if not senders:
            return []
        n = self.node_count
        heard: dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}

        def heard_from(sender: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
            if sender not in heard:
                origin = np.array([sender], dtype=np.int64)
                commits = self.flood.spread_messages(
                    origin,
                    np.array([start_s]),
                    self.wire.commitment_frame_bytes,
                    np.array([2 * r * n + sender]),
                    commit_backlog_s,
                )
                reveals = self.flood.spread_messages(
                    origin,
                    np.array([commit_end_s]),
                    self.wire.reveal_frame_bytes,
                    np.array([(2 * r + 1) * n + sender]),
                    reveal_backlog_s,
                )
                heard[sender] = (commits[0], reveals[0])
            return heard[sender]

        believers = []
        for v in self.validators:
            if not schedule.is_up(v, deadline_s):
                continue
            since = schedule.up_since(v, deadline_s)  # a restart forgets what came before
            for candidate in self._ranking(self.tip[v].hash):
                if candidate in senders:
                    commits, reveals = heard_from(candidate)
                    c, rv = commits[v], reveals[v]
                    if (
                        c + commit_backlog_s[v] < commit_end_s
                        and c >= since
                        and rv + reveal_backlog_s[v] < deadline_s
                        and rv >= since
                    ):
                        if candidate == v:
                            believers.append((v, self.incarnation[v]))
                        break
                if candidate == v:
                    break  # v did not hold its own messages: it is not eligible
        return believers

    def _ranking(self, prev_hash: bytes) -> list[int]:
        """Validators in ``consensus.winner`` order for a tip (lowest ticket first), cached."""
        ranking = self._rankings.get(prev_hash)
        if ranking is None:
            if len(self._rankings) > 1024:
                self._rankings.clear()
            ranking = sorted(
                self.validators,
                key=lambda v: (ticket(prev_hash, self.keys[v]), self.keys[v]),
            )
            self._rankings[prev_hash] = ranking
        return ranking

    def _build(self, node: int, r: int, incarnation: int, queued: bool = False) -> None:
        if not self.up[node] or self.incarnation[node] != incarnation or self._syncing(node):
            return
        now = self.env.now
        self.txs.advance(now)
        busy_s = float(self.cpu_busy_s[node])
        if busy_s > now and not queued:  # built when the CPU gets to it (its place in line)
            self._at(busy_s, self._build, node, r, incarnation, True)
            return
        parent = self.tip[node]
        chosen = self.txs.select(node, self.max_txs)
        # As on the devnet, the producer builds its block (picks and executes the txs, signs,
        # encodes) and imports it before it holds the block or floods it.
        processing, txs = self.processing, len(chosen)
        cost_s = processing.block_build_cost_s(txs) + processing.block_import_cost_s(txs)
        done_s = self._charge_cpu(node, now, cost_s)
        if done_s <= now:
            self._produced(node, r, parent, chosen, incarnation)
        else:
            self._at(done_s, self._produced, node, r, parent, chosen, incarnation)

    def _produced(
        self, node: int, r: int, parent: Block, chosen: IntArray, incarnation: int
    ) -> None:
        if not self.up[node] or self.incarnation[node] != incarnation:
            return  # the node went down while building: no block
        now = self.env.now
        block = Block(
            block_hash=make_block_hash(parent.hash, self.keys[node], r),
            parent=parent,
            producer=node,
            round_index=r,
            # Produced at its round's end, as the devnet dates a block (propagation counts the
            # build, the import and any wait for the CPU).
            produced_s=self.rounds.round_start(r + 1),
            txs=chosen,
            size_bytes=self.wire.block_bytes(len(chosen)),
            index=len(self.blocks),
        )
        self.blocks.append(block)
        for known in (self.seen, self.importing, self.imported):
            known[node].add(block.hash)
        self._record_arrival(block, node, now)
        self._adopt(node, block)
        self._gossip(node, block, RELAY_ALL)

    # ---- blocks over the network -----------------------------------------------------------

    def _gossip(self, node: int, block: Block, exclude: int) -> None:
        now = self.env.now
        size = self.wire.block_frame_bytes(len(block.txs))
        # Blocks go to every peer (fanout limits tx gossip only, as on the devnet).
        for peer in self.peers[node]:
            if peer == exclude:
                continue
            # The frame occupies the link (and takes its jitter) whoever receives it, but a
            # peer that already imported the block ignores it on arrival (``seen`` always holds
            # what is imported): no event for it.
            arrival = self.links[(node, peer)].transmit(now, size)
            if arrival is not None and block.hash not in self.imported[peer]:
                self._at(arrival, self._on_block, peer, block, node)

    def _on_block(self, node: int, block: Block, sender: int) -> None:
        if not self.up[node] or block.hash in self.seen[node]:
            return
        self.seen[node].add(block.hash)
        self._heard_height(node, block.height)
        parent = block.parent
        assert parent is not None  # genesis is never gossiped
        if parent.hash not in self.imported[node]:
            self.pending[node].setdefault(parent.hash, []).append((block, sender))
            if parent.hash not in self.importing[node]:
                self._want_sync(node, sender, parent)
            return
        self._import(node, block, sender)

    def _import(self, node: int, block: Block, relay: int) -> float:
        """Validate ``block`` on the node's CPU (after its backlog); returns when it is done."""
        now = self.env.now
        if block.hash in self.importing[node]:
            return now
        self.importing[node].add(block.hash)
        self.txs.advance(now)
        done_s = self._charge_cpu(node, now, self.processing.block_import_cost_s(len(block.txs)))
        if done_s <= now:
            self._apply(node, block, relay, self.incarnation[node])
        else:
            self._at(done_s, self._apply, node, block, relay, self.incarnation[node])
        return done_s

    def _charge_cpu(self, node: int, now: float, cost_s: float) -> float:
        """Queue ``cost_s`` of work on the node's CPU (after its backlog); when it is done."""
        if cost_s and self.schedule.throttles:
            cost_s /= self.schedule.cpu_share(node, now)
        busy = float(self.cpu_busy_s[node])
        done_s = (now if now > busy else busy) + cost_s
        self.cpu_busy_s[node] = done_s
        return done_s

    def _apply(self, node: int, block: Block, relay: int, incarnation: int) -> None:
        if self.incarnation[node] != incarnation:
            return  # the node went down while importing
        now = self.env.now
        self.imported[node].add(block.hash)
        self.seen[node].add(block.hash)
        self._record_arrival(block, node, now)
        if is_better(block, self.tip[node]):
            self._adopt(node, block)
        if relay != NO_RELAY:
            self._gossip(node, block, relay)
        for child, sender in self.pending[node].pop(block.hash, ()):
            self._import(node, child, sender)

    def _adopt(self, node: int, block: Block) -> None:
        """Make ``block`` the node's tip; a reorg moves txs between chain and pool."""
        self.txs.advance(self.env.now)
        left, joined = reorg_path(self.tip[node], block)
        if left:
            self.counters["reorgs"] += 1
            self.counters["reorged_blocks"] += len(left)
        empty = np.empty(0, dtype=np.int64)
        adopted = np.concatenate([b.txs for b in joined]) if joined else empty
        orphaned = np.concatenate([b.txs for b in left]) if left else empty
        self.txs.apply_chain(node, adopted, orphaned)
        self.tip[node] = block

    def _record_arrival(self, block: Block, node: int, t_s: float) -> None:
        self._arrival_block.append(block.index)
        self._arrival_node.append(node)
        self._arrival_s.append(t_s)

    def _heard_height(self, node: int, height: int) -> None:
        if height > self.best_known_height[node]:
            self.best_known_height[node] = height

    # ---- sync ------------------------------------------------------------------------------

    def _want_sync(self, node: int, peer: int, target: Block) -> None:
        """Fetch ``target`` and its missing ancestors from ``peer`` (queued if busy)."""
        if target.hash in self.importing[node]:
            return
        if self.syncing[node]:
            wanted = self.wanted[node]
            if wanted is None or is_better(target, wanted[0]):
                self.wanted[node] = (target, peer)
            return
        self.syncing[node] = True
        self.env.process(self._sync(node, peer, target, self.incarnation[node]))

    def _sync(
        self, node: int, peer: int, target: Block, incarnation: int
    ) -> Generator[simpy.Event, Any, None]:
        """Batches of ``sync_batch`` blocks: request, response (size/bandwidth), import.

        As on the devnet, the node asks from its own height + 1; when the chains fork below
        that, the answer does not connect and the node steps back (``sync_step_back`` blocks
        below it, then twice as many, ...), keeping what it fetched, until an answer connects.
        """
        env = self.env
        first_ask = True
        failed = False
        while True:
            missing: list[Block] = []
            block: Block | None = target
            while block is not None and block.hash not in self.importing[node]:
                missing.append(block)
                block = block.parent
            if not missing:
                break
            missing.reverse()
            own_next = self.tip[node].height + 1
            if first_ask and missing[0].height < own_next <= target.height:
                asks = self._step_back_asks(target, missing[0].height, own_next)
            else:
                top = missing[0].height + self.sync_batch - 1
                asks = [[b for b in missing if b.height <= top]]
            first_ask = False
            for blocks in asks:
                ok = yield from self._fetch(node, peer, blocks, incarnation)
                if self.incarnation[node] != incarnation:
                    return
                if not ok:
                    failed = True
                    break
            if failed:
                break
            batch = [b for blocks in asks for b in blocks]
            batch.sort(key=lambda b: b.height)
            last_s = env.now
            for block in batch:
                if block.hash not in self.importing[node]:
                    self.seen[node].add(block.hash)
                    self._heard_height(node, block.height)
                    last_s = max(last_s, self._import(node, block, NO_RELAY))
            if last_s > env.now:
                yield env.timeout(last_s - env.now)
            if self.incarnation[node] != incarnation:
                return
        if self.incarnation[node] != incarnation:
            return
        self.counters["sync_failures" if failed else "syncs"] += 1
        self.syncing[node] = False
        self._after_sync(node)

    def _step_back_asks(self, target: Block, fork_height: int, own_next: int) -> list[list[Block]]:
        """The answers a forked node gets: from its height + 1, then step-backs to the fork."""
        by_height = {b.height: b for b in chain_of(target)}
        top = min(own_next + self.sync_batch - 1, target.height)
        asks = [[by_height[h] for h in range(own_next, top + 1)]]
        upper, step = own_next, self.sync_step_back
        while upper > fork_height:
            lower = max(1, upper - step)
            asks.append([by_height[h] for h in range(lower, upper)])
            upper, step = lower, 2 * step
        return asks

    def _fetch(
        self, node: int, peer: int, blocks: list[Block], incarnation: int
    ) -> Generator[simpy.Event, Any, bool]:
        """One GetBlocks and its Blocks answer over the links; False if either was lost."""
        env = self.env
        arrival = self.links[(node, peer)].transmit(env.now, self.wire.get_blocks_frame_bytes)
        if arrival is not None:
            yield env.timeout(arrival - env.now)
            if self.incarnation[node] != incarnation:
                return False
            size = self.wire.blocks_frame_overhead_bytes + sum(b.size_bytes for b in blocks)
            arrival = self.links[(peer, node)].transmit(env.now, size)
        if arrival is None:
            yield env.timeout(REQUEST_TIMEOUT_S)
            return False
        yield env.timeout(arrival - env.now)
        return True

    def _after_sync(self, node: int) -> None:
        if not self.up[node]:
            return
        wanted, self.wanted[node] = self.wanted[node], None
        if (
            wanted is not None
            and wanted[0].hash not in self.importing[node]
            and is_better(wanted[0], self.tip[node])
        ):
            self._want_sync(node, wanted[1], wanted[0])
            return
        # The newest orphan first: its sender is the peer most likely still reachable.
        for parent_hash, waiting in reversed(self.pending[node].items()):
            if parent_hash not in self.importing[node]:
                child, sender = waiting[-1]
                assert child.parent is not None
                self._want_sync(node, sender, child.parent)
                return

    def _send_status(self, node: int, peer: int) -> None:
        if not self.up[node]:
            return
        arrival = self.links[(node, peer)].transmit(self.env.now, self.wire.status_frame_bytes)
        if arrival is not None:
            self._at(arrival, self._on_status, peer, node, self.tip[node])

    def _on_status(self, node: int, sender: int, tip: Block) -> None:
        if not self.up[node]:
            return
        self._heard_height(node, tip.height)
        if is_better(self.tip[node], tip):
            # As the devnet node does: answer a peer that is behind with our tip.
            self._send_status(node, sender)
        elif tip.hash not in self.importing[node] and is_better(tip, self.tip[node]):
            self._want_sync(node, sender, tip)

    # ---- faults ----------------------------------------------------------------------------

    def _go_down(self, node: int) -> None:
        self.txs.advance(self.env.now)
        self.up[node] = False
        self.incarnation[node] += 1
        self.txs.clear_pool(node)
        self.pending[node].clear()
        self.seen[node] = set(self.imported[node])
        self.importing[node] = set(self.imported[node])
        self.syncing[node] = False
        self.wanted[node] = None

    def _go_up(self, node: int) -> None:
        """Restart (start-up time already passed): the chain is kept; tips are exchanged.

        The node dials every peer at once; its ``Status`` leaves when a connection's handshake
        is done (one round trip). A peer that hears it dial in dials back at once (its
        back-off cut short) and sends its ``Status`` when that handshake is done.
        """
        now = self.env.now
        self.up[node] = True
        self.cpu_busy_s[node] = now
        for peer in self.peers[node]:
            rtt_s = 2 * self.links[(node, peer)].latency_s
            self._at(now + rtt_s, self._send_status, node, peer)
            self._at(now + 1.5 * rtt_s, self._send_status, peer, node)

    def _heal(self, partition: PartitionWindow) -> None:
        """Connections across a healed cut are back (redialled): tips follow the handshake.

        ``partition.end_s`` is already the first redial after the heal (see
        :func:`~bitcell_sim.model.schedule.next_redial_s`); each side's ``Status`` leaves when
        its connection's handshake is done, one round trip later.
        """
        now = self.env.now
        for a in range(self.node_count):
            for b in self.peers[a]:
                if partition.cut[a, b]:
                    rtt_s = 2 * self.links[(a, b)].latency_s
                    self._at(now + rtt_s, self._send_status, a, b)

    # ---- timeline ----------------------------------------------------------------------------

    def _timeline_loop(self) -> Generator[simpy.Event, Any, None]:
        k = 0
        while (t_s := k * TIMELINE_INTERVAL_S) < self.duration_s:
            yield self.env.timeout(t_s - self.env.now)
            self._sample(t_s)
            if self.progress is not None:
                self.progress(t_s, self.duration_s)
            k += 1

    def _sample(self, t_s: float) -> None:
        self.txs.advance(t_s)
        schedule = self.schedule
        n = self.node_count
        up = ~schedule.down_at(np.arange(n), np.full(n, t_s))
        # Peers a node can reach now: up, over a link no active partition cuts.
        reachable = self.adjacency & up[None, :] & up[:, None]
        for partition in schedule.partitions:
            if partition.start_s <= t_s < partition.end_s:
                reachable &= ~partition.cut
        height = np.array([tip.height for tip in self.tip], dtype=np.int64)
        best = np.maximum(np.array(self.best_known_height, dtype=np.int64), height)
        with np.errstate(divide="ignore", invalid="ignore"):
            progress = np.where(best > 0, 100.0 * height / best, 100.0)
        self._samples.append(
            (
                t_s,
                up,
                height,
                np.array([tip.index for tip in self.tip], dtype=np.int64),
                self.txs.pool_size.copy(),
                reachable.sum(axis=1).astype(np.int64),
                progress,
            )
        )

    def _timeline_columns(self) -> dict[str, Any]:
        times, up, height, tip, pool, peers, progress = zip(*self._samples, strict=True)
        hashes = np.array([b.hash_hex for b in self.blocks], dtype=object)
        return {
            "time_s": np.repeat(np.array(times, dtype=np.float64), self.node_count),
            "node": np.tile(np.array(self.names, dtype=object), len(times)),
            "up": np.concatenate(up),
            "height": np.concatenate(height),
            "tip_hash": hashes[np.concatenate(tip)],
            "pool_size": np.concatenate(pool),
            "peers": np.concatenate(peers),
            "sync_progress": np.concatenate(progress),
        }

    # ---- records -----------------------------------------------------------------------------

    def final_tip(self) -> Block:
        """The best tip any node holds at the end: its chain is the final chain."""
        return min(self.tip, key=lambda b: fork_choice_key(b.height, b.hash))

    def _tables(self) -> dict[str, pa.Table]:
        final = chain_of(self.final_tip())
        in_final = np.zeros(len(self.blocks), dtype=np.bool_)
        in_final[[b.index for b in final]] = True
        produced = self.blocks[1:]
        blocks = to_table(
            "blocks",
            {
                "block_hash": [b.hash_hex for b in produced],
                "height": [b.height for b in produced],
                "parent_hash": [b.parent.hash_hex if b.parent else "" for b in produced],
                "producer": [self.names[b.producer] for b in produced],
                "produced_s": [b.produced_s for b in produced],
                "tx_count": [len(b.txs) for b in produced],
                "size_bytes": [b.size_bytes for b in produced],
                "orphaned": [not in_final[b.index] for b in produced],
            },
        )
        block_index = np.array(self._arrival_block, dtype=np.int64)
        arrival_node = np.array(self._arrival_node, dtype=np.int64)
        arrival_s = np.array(self._arrival_s, dtype=np.float64)
        arrivals = to_table(
            "block_arrivals",
            {
                "block_hash": [self.blocks[i].hash_hex for i in self._arrival_block],
                "node": [self.names[i] for i in self._arrival_node],
                "arrival_s": arrival_s,
            },
        )
        # Confirmation: the final-chain block holding a tx, as it arrives at the tx's node.
        arrived = np.full((len(self.blocks), self.node_count), np.nan)
        arrived[block_index, arrival_node] = arrival_s
        count = len(self.arrivals)
        holder = np.full(count, -1, dtype=np.int64)
        for block in final[1:]:
            holder[block.txs] = block.index
        confirmed = holder >= 0
        confirm_s = np.full(count, np.nan)
        confirm_s[confirmed] = arrived[holder[confirmed], self.arrivals.node[confirmed]]
        heights = np.array([b.height for b in self.blocks], dtype=np.int64)
        hashes = np.array([b.hash_hex for b in self.blocks], dtype=object)
        outcome = self.txs.outcome
        reasons = np.array([None, REJECT_POOL_FULL, REJECT_UNREACHABLE], dtype=object)
        codes = np.where(outcome == POOL_FULL, POOL_ERROR_CODE, 0)
        rpc = self.txs.rpc_latency_s
        transactions = to_table(
            "transactions",
            {
                "tx_id": _tx_ids(count),
                "node": np.array(self.names, dtype=object)[self.arrivals.node],
                "submit_s": self.arrivals.submit_s,
                "rpc_latency_s": pa.array(rpc, mask=np.isnan(rpc), type=pa.float64()),
                "accepted": outcome == 0,
                "reject_code": pa.array(codes, mask=outcome != POOL_FULL, type=pa.int64()),
                "reject_reason": pa.array(reasons[outcome], type=pa.string()),
                "confirm_s": pa.array(confirm_s, mask=np.isnan(confirm_s), type=pa.float64()),
                "height": pa.array(
                    heights[np.maximum(holder, 0)], mask=~confirmed, type=pa.int64()
                ),
                "block_hash": pa.array(
                    hashes[np.maximum(holder, 0)], mask=~confirmed, type=pa.string()
                ),
            },
        )
        timeline = to_table("node_timeline", self._timeline_columns())
        return {
            "blocks": blocks,
            "block_arrivals": arrivals,
            "transactions": transactions,
            "node_timeline": timeline,
        }

    def _stats(self) -> dict[str, Any]:
        """The model's own counters (not part of the shared records)."""
        return {
            "blocks_produced": len(self.blocks) - 1,
            "gossip_dropped_pool_full": int(self.txs.gossip_dropped_full.sum()),
            "gossip_dropped_pool_full_by_node": {
                self.names[i]: int(c) for i, c in enumerate(self.txs.gossip_dropped_full)
            },
            "pool_peak_by_node": {self.names[i]: int(c) for i, c in enumerate(self.txs.pool_peak)},
            "txs_left_in_pools": int(np.any(self.txs.in_pool, axis=0).sum()),
            "tx_plane_windows": self.txs.windows,
            "tx_plane_spans": self.txs.spans,
            "events": self.env.scheduled,
            **self.counters,
        }


def simulate(topology: Topology, progress: ProgressCallback | None = None) -> ModelResult:
    """Run the model on ``topology`` (seed, duration and faults as the topology says)."""
    return Simulation(topology, progress).run()


def _tx_ids(count: int) -> pa.Array:
    """``sim-0000000``, ``sim-0000001``, ...: the model's tx ids, made by Arrow (a Python loop
    took a third of a second per 360,000 txs)."""
    digits = pc.utf8_lpad(pa.array(np.arange(count, dtype=np.int64)).cast(pa.string()), 7, "0")
    return pc.binary_join_element_wise("sim-", digits, "")
