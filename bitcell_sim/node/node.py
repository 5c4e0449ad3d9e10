"""The devnet node: one asyncio process that serves RPC, runs the tournament and gossips.

``Node(settings)`` opens its chain from ``data_dir`` (``Chain`` over a ``ChainStore``) and its
pool from the pool journal, and ``start()`` binds the P2P, RPC and metrics ports, dials every
peer (``PeerLink``) and runs the round clock: commit and reveal at the start of their phases,
the winner chosen at the end of the reveal phase (``consensus.winner`` over the reveals received
in time), and the winner's block at the end of the round. Blocks, commitments and reveals are
flooded; transactions go out in batches every ``gossip.tx_batch_interval_s``; after every block
the pool drops what can no longer apply; a node behind its peers syncs with ``GetBlocks``.
``health()`` is what ``/health`` says. ``stop()`` closes everything and checkpoints the database.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import math
import struct
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bitcell_sim.errors import DevnetError, RpcError
from bitcell_sim.node.chain import Chain, ImportResult, ImportStatus
from bitcell_sim.node.config import NodeSettings
from bitcell_sim.node.http import HttpServer
from bitcell_sim.node.journal import PoolJournal
from bitcell_sim.node.metrics import NodeMetrics
from bitcell_sim.node.peers import (
    P2PIdentity,
    P2PServer,
    PeerLink,
    Reply,
    Traffic,
    payload_variant,
)
from bitcell_sim.node.pool import TxPool
from bitcell_sim.node.rpc import metrics_server, rpc_server
from bitcell_sim.node.sigcache import SignatureCache
from bitcell_sim.node.store import ChainStore
from bitcell_sim.node.tips import PeerTips
from bitcell_sim.node.tournament import Offer, Tournament
from bitcell_sim.protocol import admission
from bitcell_sim.protocol.arrivals import VIA_GOSSIP, VIA_ORPHAN, VIA_OWN, VIA_SYNC
from bitcell_sim.protocol.bincode import Reader
from bitcell_sim.protocol.block import Block, BlockHeader, genesis_block
from bitcell_sim.protocol.consensus import (
    ChainTip,
    Phase,
    PhaseWindow,
    RoundSchedule,
    is_better,
    is_syncing,
)
from bitcell_sim.protocol.consensus import winner as choose_winner
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.hexcodec import hexbytes
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.p2p import (
    BlockMessage,
    Blocks,
    Commitment,
    GetBlocks,
    GetPeers,
    Peers,
    Reveal,
    Status,
    TransactionMessage,
    decode_message,
    encode_frame,
)
from bitcell_sim.protocol.pool_journal import JOURNAL_FILE
from bitcell_sim.protocol.transaction import Transaction

log = logging.getLogger("bitcell_sim.node")

_LENGTH = struct.Struct(">I")
#: A node that started less than this long ago and has not heard every peer's tip yet reports
#: "starting" (503): over twice a peer's longest reconnect back-off (2 s) plus a WAN round trip.
STARTUP_TIMEOUT_S = 5.0
SYNC_TIMEOUT_S = 5.0
SYNC_WATCH_INTERVAL_S = 1.0
#: Bytes of blocks put in one ``Blocks`` answer (frames are capped at 10 MB).
SYNC_MAX_BYTES = 8_000_000
MAX_ORPHANS = 256
MAX_UNCOUNTED = 100_000
#: A gossiped tx may be this many nonces ahead of its sender's confirmed nonce here.
GOSSIP_NONCE_AHEAD = 64
MAX_REJECTED = 4096
#: The journal is rewritten from the pool once it holds this many records more than the pool.
JOURNAL_SLACK_RECORDS = 1024

#: What ``/health`` answers (200 only for OK); see ``Node.health``.
HEALTH_OK = "ok"
HEALTH_STARTING = "starting"
HEALTH_SYNCING = "syncing"
HEALTH_ISOLATED = "isolated"

_PHASE_GAUGE = {Phase.IDLE: 0, Phase.COMMIT: 1, Phase.REVEAL: 2, Phase.BATTLE: 3}


def short(block_hash: bytes) -> str:
    return block_hash.hex()[:12]


def approx_block_size(block: Block) -> int:
    """Encoded size of ``block`` without encoding it (header + signature ~ 300 bytes)."""
    return 300 + sum(tx.size_bytes for tx in block.transactions)


def production_time_s(schedule: RoundSchedule, timestamp: int) -> float:
    """When a block stamped ``timestamp`` (whole Unix seconds) was made: blocks are made at
    round ends, so the round end at or less than a second after it; else the timestamp."""
    k = math.ceil((timestamp - schedule.genesis_time_s) / schedule.round_s)
    boundary = schedule.genesis_time_s + k * schedule.round_s
    return boundary if k >= 1 and 0 <= boundary - timestamp < 1.0 else float(timestamp)


def genesis_allocations(settings: NodeSettings) -> dict[bytes, int]:
    """Balances at genesis: the topology's funded senders, then its listed accounts."""
    genesis = settings.topology.genesis
    allocations = {
        funded_sender(settings.network, i).public_key: genesis.balance
        for i in range(genesis.funded_accounts)
    }
    allocations.update(genesis.accounts_by_key)
    return allocations


@dataclass
class SyncRequest:
    peer: str
    from_height: int
    sent_s: float


@dataclass(frozen=True)
class Health:
    """One answer of ``/health``: ``status`` (``HEALTH_*``), height and connected peers."""

    status: str
    chain_height: int
    peer_count: int

    @property
    def ok(self) -> bool:
        return self.status == HEALTH_OK


class Node:
    """A BitCell-compatible devnet node (see the module docstring)."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.name = settings.name
        topo = settings.topology
        proto = topo.protocol
        config = settings.config
        self.schedule = RoundSchedule(
            genesis_time_s=config.genesis_time_unix_s,
            commit_s=proto.commit_s,
            reveal_s=proto.reveal_s,
            battle_s=proto.battle_s,
        )
        network = settings.network
        self.names_by_key = {node_keypair(network, n).public_key: n for n in topo.nodes}
        self.validator_keys = frozenset(
            node_keypair(network, n).public_key for n in topo.validators
        )
        self.own_key = settings.keypair.public_key
        self.tournament = Tournament(
            self.schedule, self.validator_keys, settings.keypair if settings.is_validator else None
        )
        self.metrics = NodeMetrics()
        self.traffic = Traffic()
        self.sigcache = SignatureCache()
        self.pool = TxPool(proto.tx_pool_capacity)
        allocations = genesis_allocations(settings)
        self.genesis = genesis_block(network, int(config.genesis_time_unix_s), allocations)
        self.store = ChainStore(config.data_dir)
        try:
            self.chain = Chain(
                self.store,
                self.genesis,
                allocations,
                proto.block_reward,
                proto.max_txs_per_block,
                self.sigcache,
                producer_name=lambda key: self.names_by_key.get(key, key.hex()),
                produced_unix_s=lambda header: production_time_s(self.schedule, header.timestamp),
            )
        except BaseException:
            self.store.close()
            raise
        self.journal = PoolJournal(config.data_dir / JOURNAL_FILE)
        self.gossip_interval_s = proto.gossip.tx_batch_interval_s
        self.fanout = proto.gossip.fanout
        # Txs are relayed only where some node is not a direct peer of every other.
        self.relay_txs = topo.peers != "full_mesh"
        self.sync_batch = proto.sync_batch_blocks
        self.sync_step_back = proto.sync_step_back_blocks

        self.links: dict[str, PeerLink] = {}
        self.identity = P2PIdentity(
            settings.p2p_keypair,
            self.genesis.hash(),
            {key: name for name, key in settings.p2p_keys.items()},
        )
        self.p2p = P2PServer(self.identity, self.traffic, self.on_payload, self._on_inbound_ready)
        self.tips = PeerTips()
        self.orphans: OrderedDict[bytes, Block] = OrderedDict()
        self.rejected: OrderedDict[bytes, None] = OrderedDict()
        self._tx_gossip: list[tuple[bytes, bytes, str | None]] = []
        self._gossip_handle: asyncio.TimerHandle | None = None
        self._status_handle: asyncio.Handle | None = None
        self._sync: SyncRequest | None = None
        self._sync_step: dict[str, int] = {}
        self._own_reveals: dict[int, Reveal] = {}
        self._winners: dict[int, bytes | None] = {}
        self._seen_consensus: OrderedDict[bytes, None] = OrderedDict()
        self._active_miners = 0
        # Ids of txs of orphaned blocks: already in bitcell_txs_processed_total.
        self._uncounted: dict[bytes, None] = {}
        self._blocks_by_proposer: dict[bytes, int] = {}
        for h in range(1, self.chain.height + 1):
            proposer = self.chain.records[self.chain.canonical[h]].header.proposer
            self._blocks_by_proposer[proposer] = self._blocks_by_proposer.get(proposer, 0) + 1
        # The chain loaded from disk counts as processed: every node reports its whole chain.
        self.metrics.txs_processed = len(self.chain.tx_index)
        self._tasks: list[asyncio.Task[None]] = []
        self._http: list[HttpServer] = []
        self._was_syncing = False
        self._started_s = time.monotonic()
        #: Since when no peer is connected (None while one is).
        self._alone_since_s: float | None = self._started_s
        #: Gossiped txs held back from relaying until they can apply here (id -> origin).
        self._unrelayed: dict[bytes, str] = {}
        self._restore_pool()

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the three ports (``DevnetError`` naming a busy one), then dial and tick."""
        spec = self.settings.spec
        host = self.settings.config.host
        proto_peering = self.settings.topology.protocol.peering
        await self._bind("p2p", spec.p2p_port, self.p2p.start(host, spec.p2p_port))
        for what, port, server in (
            ("rpc", spec.rpc_port, rpc_server(self)),
            ("metrics", spec.metrics_port, metrics_server(self)),
        ):
            await self._bind(what, port, server.start(host, port))
            self._http.append(server)
        for peer, (peer_host, peer_port) in self.settings.peers.items():
            link = PeerLink(
                peer,
                peer_host,
                peer_port,
                self.identity,
                self.settings.p2p_keys[peer],
                self.traffic,
                self._on_peer_up,
                self._on_peer_down,
                self.on_answer,
                reconnect_min_s=proto_peering.reconnect_min_s,
                reconnect_max_s=proto_peering.reconnect_max_s,
            )
            self.links[peer] = link
            self._spawn(link.run(), f"link-{peer}")
        self._spawn(self._round_loop(), "rounds")
        self._spawn(self._sync_watch(), "sync")
        wait_s = self.schedule.genesis_time_s - time.time()
        log.info(
            "started node=%s role=%s height=%d tip=%s rpc=%s:%d p2p=%d metrics=%d peers=%s%s",
            self.name,
            self.settings.spec.role,
            self.chain.height,
            short(self.chain.tip_hash),
            host,
            spec.rpc_port,
            spec.p2p_port,
            spec.metrics_port,
            ",".join(self.links) or "-",
            f" genesis_in_s={wait_s:.1f}" if wait_s > 0 else "",
        )

    async def _bind(self, what: str, port: int, start: Any) -> None:
        try:
            await start
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            reason = "is already in use" if busy else f"cannot be bound: {exc.strerror or exc}"
            raise DevnetError(f"node {self.name}: {what} port {port} {reason}") from None

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        """Close sockets, stop tasks and checkpoint the database (well within 2 s)."""
        for link in self.links.values():
            link.close()
        self.p2p.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._gossip_handle is not None:
            self._gossip_handle.cancel()
        for server in self._http:
            await server.close()
        self.journal.close()
        self.store.close()
        log.info("stopped node=%s height=%d", self.name, self.chain.height)

    def close_store(self) -> None:
        """Close the database when ``start`` failed (``stop`` does it otherwise)."""
        self.journal.close()
        self.store.close()

    # ---- views used by RPC and metrics ----------------------------------------------------

    @property
    def peer_count(self) -> int:
        return sum(1 for link in self.links.values() if link.up)

    def _holds(self, block_hash: bytes) -> bool:
        return block_hash in self.chain.records

    @property
    def best_peer_height(self) -> int:
        """The best height a peer claims credibly (see ``tips.PeerTips``)."""
        return self.tips.best_height(time.monotonic(), self._holds)

    @property
    def is_syncing(self) -> bool:
        return is_syncing(self.chain.height, self.best_peer_height)

    def health(self) -> Health:
        """``starting`` until every peer's tip was heard (at most ``STARTUP_TIMEOUT_S``),
        ``isolated`` when no peer has been connected for longer than a round, ``syncing``
        while more than ``SYNCING_LAG_BLOCKS`` behind a credible peer tip, else ``ok``."""
        now_s = time.monotonic()
        status = HEALTH_OK
        if now_s - self._started_s < STARTUP_TIMEOUT_S and not self.tips.heard >= set(self.links):
            status = HEALTH_STARTING
        elif (
            self.links
            and self._alone_since_s is not None
            and now_s - self._alone_since_s > self.schedule.round_s
        ):
            status = HEALTH_ISOLATED
        elif self.is_syncing:
            status = HEALTH_SYNCING
        return Health(status, self.chain.height, self.peer_count)

    def sync_progress(self) -> float:
        best = max(self.best_peer_height, self.chain.height)
        return 100.0 if best == 0 else 100.0 * self.chain.height / best

    def phase_now(self) -> PhaseWindow:
        return self.schedule.phase_at(time.time())

    def metric_values(self) -> dict[str, float | dict[tuple[str, ...], float]]:
        peers = self.peer_count
        t = self.traffic
        trusts = [
            (self._blocks_by_proposer.get(k, 0) + 0.8) / (self._blocks_by_proposer.get(k, 0) + 2)
            for k in self.validator_keys
        ]
        return {
            "bitcell_chain_height": self.chain.height,
            "bitcell_sync_progress": round(self.sync_progress(), 3),
            "bitcell_peer_count": peers,
            "bitcell_dht_peer_count": peers,
            "bitcell_bytes_sent_total": t.bytes_sent,
            "bitcell_bytes_received_total": t.bytes_received,
            "bitcell_messages_sent_total": t.messages_sent,
            "bitcell_messages_received_total": t.messages_received,
            "bitcell_pending_txs": len(self.pool),
            "bitcell_txs_processed_total": self.metrics.txs_processed,
            "bitcell_proofs_generated_total": 0,
            "bitcell_proofs_verified_total": 0,
            "bitcell_active_miners": self._active_miners,
            "bitcell_banned_miners": 0,
            "bitcell_average_trust_score": round(sum(trusts) / len(trusts), 3) if trusts else 0,
            "bitcell_slashing_events_total": 0,
            "bitcell_round_phase": _PHASE_GAUGE[self.phase_now().phase],
            "bitcell_best_peer_height": self.best_peer_height,
            "bitcell_reorgs_total": self.metrics.reorgs,
            "bitcell_txs_rejected_total": self.metrics.txs_rejected,
            "bitcell_proof_generation_seconds": self.metrics.proof_generation_s,
            "bitcell_pool_evicted_total": dict(self.metrics.evicted),
            "bitcell_p2p_handshakes_refused_total": t.handshakes_refused,
        }

    # ---- transactions ---------------------------------------------------------------------

    def submit_transaction(self, params: Any) -> str:
        """``eth_sendRawTransaction``: admission against the confirmed state (a tx that cannot
        apply is refused), the pool, the journal (before the answer), then gossip."""
        try:
            tx = admission.admit_raw_transaction(
                params, self.chain.account, verify=self.sigcache.verify
            )
            tx_id = tx.tx_id()
            self.pool.add(tx, tx_id, self.chain.height)
        except RpcError:
            self.metrics.txs_rejected += 1
            raise
        frame = encode_frame(TransactionMessage(tx))
        self.journal.append(frame[8:])
        self._queue_tx_gossip(tx_id, frame, None)
        return hexbytes(tx_id)

    def _on_gossip_tx(self, peer: str, tx: Transaction, payload: bytes) -> None:
        tx_id = tx.tx_id()
        if tx_id in self.pool or tx_id in self.chain.tx_index:
            return
        if not self.sigcache.verify(tx, tx_id):
            log.debug("tx %s from %s: invalid signature", tx_id.hex()[:12], peer)
            return
        admissible = self._admissible(tx)
        if admissible is None or self.pool.check_room(tx, tx_id) is not None:
            return
        waiting = not admissible
        self.pool.add(tx, tx_id, self.chain.height, waiting=waiting)
        self.journal.append(payload[4:])
        if not self.relay_txs:
            return
        if waiting:
            # It cannot apply here yet: relay it only once it can (after the missing block).
            self._unrelayed[tx_id] = peer
        else:
            self._queue_tx_gossip(tx_id, _LENGTH.pack(len(payload)) + payload, peer)

    def _admissible(self, tx: Transaction) -> bool | None:
        """True if ``tx`` applies to the confirmed state (the RPC rules), False if it is a
        little ahead (a peer admitted it after a block this node has not imported yet), None
        if it can never apply here."""
        account = self.chain.account(tx.sender)
        confirmed = account.nonce if account is not None else 0
        if tx.nonce == confirmed:
            try:
                admission.check_account_rules(tx, account)
            except RpcError:
                return None
            return True
        if confirmed < tx.nonce < confirmed + GOSSIP_NONCE_AHEAD:
            return False
        return None

    def _restore_pool(self) -> None:
        """Put the journal's txs back into the pool (those that still can or may apply), then
        rewrite the journal to exactly the pool."""
        restored = 0
        for raw in self.journal.load():
            try:
                tx = Transaction.decode(raw)
            except DecodeError:
                continue
            tx_id = tx.tx_id()
            if tx_id in self.chain.tx_index or not self.sigcache.verify(tx, tx_id):
                continue
            admissible = self._admissible(tx)
            if admissible is not None and self.pool.restore(tx, tx_id, self.chain.height):
                restored += 1
        self.pool.evict(self.chain.account, self.chain.height)
        self._rewrite_journal()
        if restored:
            log.info("pool restored from journal txs=%d pool=%d", restored, len(self.pool))

    def _rewrite_journal(self) -> None:
        self.journal.rewrite(entry.tx.encode() for entry in self.pool.entries())

    def _queue_tx_gossip(self, tx_id: bytes, frame: bytes, origin: str | None) -> None:
        self._tx_gossip.append((tx_id, frame, origin))
        if self._gossip_handle is None:
            loop = asyncio.get_running_loop()
            self._gossip_handle = loop.call_later(self.gossip_interval_s, self._flush_tx_gossip)

    def _fanout_peers(self, tx_id: bytes) -> set[str]:
        ranked = sorted(self.links, key=lambda n: hashlib.sha256(tx_id + n.encode()).digest())
        return set(ranked[: self.fanout])

    def _flush_tx_gossip(self) -> None:
        self._gossip_handle = None
        batch, self._tx_gossip = self._tx_gossip, []
        limited = 0 < self.fanout < len(self.links)
        chosen = {tx_id: self._fanout_peers(tx_id) for tx_id, _, _ in batch} if limited else {}
        for name, link in self.links.items():
            if not link.up:
                continue
            frames = [
                frame
                for tx_id, frame, origin in batch
                if origin != name and (not limited or name in chosen[tx_id])
            ]
            link.send_many(frames)

    # ---- peers ----------------------------------------------------------------------------

    def _on_peer_up(self, link: PeerLink) -> None:
        self._alone_since_s = None
        log.info(
            "peer connected peer=%s address=%s:%d peers=%d",
            link.name,
            link.host,
            link.port,
            self.peer_count,
        )
        link.send(self._status_frame())
        # Txs admitted while this peer was unreachable would otherwise never reach it; only
        # those that can apply (a peer would drop the others).
        entries = self.pool.applicable(self.chain.account)
        if entries:
            link.send_many([encode_frame(TransactionMessage(e.tx)) for e in entries])

    def _on_peer_down(self, link: PeerLink) -> None:
        log.info("peer disconnected peer=%s peers=%d", link.name, self.peer_count)
        if self.peer_count == 0 and self._alone_since_s is None:
            self._alone_since_s = time.monotonic()
        if self._sync is not None and self._sync.peer == link.name:
            self._sync = None

    def _status_frame(self) -> bytes:
        return encode_frame(Status(self.chain.height, self.chain.tip_hash))

    def _on_inbound_ready(self, peer: str, reply: Reply) -> None:
        """A peer's connection to us is authenticated: tell it our tip right away, on that
        connection, so a node that just (re)started hears every reachable peer's tip within a
        round trip of dialling it. It is up, so dial it back now instead of at the end of our
        back-off (grown during its outage)."""
        reply(self._status_frame())
        link = self.links.get(peer)
        if link is not None:
            link.redial_now()

    def _send_to(self, peer: str, frame: bytes) -> None:
        link = self.links.get(peer)
        if link is not None:
            link.send(frame)

    def _flood(self, frame: bytes, except_peer: str | None) -> None:
        for name, link in self.links.items():
            if name != except_peer and link.up:
                link.send(frame)

    def _note_tip(self, peer: str, height: int, block_hash: bytes, *, replace: bool) -> None:
        # Only configured peers count (and can be synced from).
        if peer in self.links:
            self.tips.claim(peer, ChainTip(height, block_hash), time.monotonic(), replace=replace)

    # ---- inbound messages -----------------------------------------------------------------

    def on_payload(self, peer: str, payload: bytes, reply: Reply) -> None:
        """One frame payload from ``peer`` on its (authenticated) connection to us; requests
        are answered with ``reply``, on that same connection."""
        try:
            if payload_variant(payload) == BlockMessage.INDEX and self._known_block(peer, payload):
                return
            message = decode_message(payload)
        except (DecodeError, ProtocolError, KeyError) as exc:
            log.warning("undecodable message from %s: %s", peer, exc)
            return
        if isinstance(message, TransactionMessage):
            self._on_gossip_tx(peer, message.transaction, payload)
        elif isinstance(message, BlockMessage):
            self._on_block(peer, message.block, payload)
        elif isinstance(message, Commitment | Reveal):
            self._on_consensus(peer, message, payload)
        elif isinstance(message, Status):
            self._note_tip(peer, message.height, message.tip_hash, replace=True)
            self._maybe_sync()
        elif isinstance(message, GetBlocks):
            self._serve_blocks(reply, message)
        elif isinstance(message, GetPeers):
            addresses = tuple(f"{link.host}:{link.port}" for link in self.links.values())
            reply(encode_frame(Peers(addresses)))
        else:
            log.debug("ignored %s from %s", type(message).__name__, peer)

    def on_answer(self, peer: str, payload: bytes) -> None:
        """A frame ``peer`` sent back on our own connection to it: its tip, blocks we asked
        for, or peer addresses."""
        try:
            message = decode_message(payload)
        except (DecodeError, ProtocolError, KeyError) as exc:
            log.warning("undecodable answer from %s: %s", peer, exc)
            return
        if isinstance(message, Status):
            self._note_tip(peer, message.height, message.tip_hash, replace=True)
            self._maybe_sync()
        elif isinstance(message, Blocks):
            self._on_blocks(peer, message.blocks)
        else:
            log.debug("ignored %s answered by %s", type(message).__name__, peer)

    def _known_block(self, peer: str, payload: bytes) -> bool:
        """Skip decoding a flooded block we already hold (only its header is read)."""
        header = BlockHeader.read(Reader(payload, 4))
        block_hash = header.hash()
        if block_hash in self.chain.records or block_hash in self.orphans:
            self._note_tip(peer, header.height, block_hash, replace=False)
            return True
        return block_hash in self.rejected

    def _on_consensus(self, peer: str, message: Commitment | Reveal, payload: bytes) -> None:
        digest = hashlib.sha256(payload).digest()
        if digest in self._seen_consensus:
            return
        self._seen_consensus[digest] = None
        if len(self._seen_consensus) > 4096:
            self._seen_consensus.popitem(last=False)
        now = time.time()
        if isinstance(message, Commitment):
            outcome = self.tournament.offer_commitment(message, now)
        else:
            outcome = self.tournament.offer_reveal(message, now)
        if outcome in (Offer.COUNTED, Offer.LATE):
            self._flood(_LENGTH.pack(len(payload)) + payload, peer)
        if outcome is Offer.LATE:
            log.debug(
                "late %s from %s round=%d miner=%s",
                type(message).__name__.lower(),
                peer,
                message.round_index,
                self._who(message.miner),
            )

    # ---- blocks ---------------------------------------------------------------------------

    def _who(self, key: bytes) -> str:
        return self.names_by_key.get(key, key.hex()[:16])

    def _on_block(self, peer: str, block: Block, payload: bytes) -> None:
        block_hash = block.hash()
        self._note_tip(peer, block.height, block_hash, replace=False)
        result = self._import(block, payload[4:], peer, VIA_GOSSIP)
        if result.status in (ImportStatus.CANONICAL, ImportStatus.SIDE):
            self.tips.served(peer, time.monotonic())
            self._flood(_LENGTH.pack(len(payload)) + payload, peer)
            self._connect_orphans(block_hash)
        elif result.status is ImportStatus.ORPHAN:
            self._add_orphan(block)
            self._maybe_sync()

    def _import(
        self, block: Block, raw: bytes | None, source: str | None, via: str
    ) -> ImportResult:
        result = self.chain.import_block(block, raw, via)
        status = result.status
        if status is ImportStatus.CANONICAL:
            self._on_canonical(result, block, source, via)
        elif status is ImportStatus.SIDE:
            log.info(
                "block stored on side branch height=%d hash=%s proposer=%s via=%s from=%s",
                block.height,
                short(result.block_hash),
                self._who(block.header.proposer),
                via,
                source or "-",
            )
        elif status is ImportStatus.INVALID:
            self.rejected[result.block_hash] = None
            if len(self.rejected) > MAX_REJECTED:
                self.rejected.popitem(last=False)
            log.warning(
                "block rejected height=%d hash=%s from=%s: %s",
                block.height,
                short(result.block_hash),
                source or "-",
                result.error,
            )
        return result

    def _on_canonical(
        self, result: ImportResult, block: Block, source: str | None, via: str
    ) -> None:
        chain = self.chain
        returned: list[tuple[bytes, Transaction]] = []
        for orphaned in result.disconnected:
            proposer = orphaned.header.proposer
            self._blocks_by_proposer[proposer] -= 1
            for tx in orphaned.transactions:
                tx_id = tx.tx_id()
                # Counted once already: not again if the new branch includes it too.
                self._uncounted[tx_id] = None
                if tx_id not in chain.tx_index and self.pool.restore(tx, tx_id, chain.height):
                    returned.append((tx_id, tx))
                    self.journal.append(tx.encode())
        included: list[bytes] = []
        for connected in result.connected:
            included.extend(chain.records[connected.hash()].tx_ids)
            proposer = connected.header.proposer
            self._blocks_by_proposer[proposer] = self._blocks_by_proposer.get(proposer, 0) + 1
        self.pool.remove(included)
        fresh = len(included)
        if self._uncounted:
            for tx_id in included:
                if tx_id in self._uncounted:
                    del self._uncounted[tx_id]
                    fresh -= 1
            while len(self._uncounted) > MAX_UNCOUNTED:
                del self._uncounted[next(iter(self._uncounted))]
        self.metrics.txs_processed += fresh
        # Only the senders of the new blocks' txs changed (credits never make a tx inapplicable);
        # after a reorg anything may have.
        senders = (
            None
            if result.disconnected
            else {tx.sender for connected in result.connected for tx in connected.transactions}
        )
        evicted = self.pool.evict(chain.account, chain.height, senders)
        self.metrics.count_evictions(evicted)
        for tx_id, tx in returned:
            # Gossip it again if it still applies: the new chain's proposers may never have seen it.
            entry = self.pool.get(tx_id)
            if entry is not None and self.pool.can_apply(entry, chain.account):
                self._queue_tx_gossip(tx_id, encode_frame(TransactionMessage(tx)), None)
        self._relay_now_applicable()
        if self.journal.appended > len(self.pool) + JOURNAL_SLACK_RECORDS:
            self._rewrite_journal()
        if result.disconnected:
            self.metrics.reorgs += 1
            log.info(
                "reorg depth=%d new_height=%d tip=%s old_tip=%s returned_txs=%d evicted_txs=%d",
                len(result.disconnected),
                chain.height,
                short(chain.tip_hash),
                short(result.disconnected[0].hash()),
                len(returned),
                sum(len(ids) for ids in evicted.values()),
            )
        delay = ""
        if via == VIA_GOSSIP and result.arrival_unix_s is not None:
            # The arrival record's time: the histogram and the records measure the same thing.
            delay_s = result.arrival_unix_s - production_time_s(
                self.schedule, block.header.timestamp
            )
            self.metrics.propagation.observe(max(delay_s, 0.0))
            delay = f" delay_s={delay_s:.3f}"
        if via != VIA_SYNC or result.height % 50 == 0 or result.height >= self.best_peer_height:
            log.info(
                "block %s height=%d hash=%s proposer=%s txs=%d via=%s from=%s pool=%d%s",
                "produced" if via == VIA_OWN else "imported",
                block.height,
                short(result.block_hash),
                self._who(block.header.proposer),
                len(block.transactions),
                via,
                source or "-",
                len(self.pool),
                delay,
            )
        if self._status_handle is None:
            # After the caller has flooded the block itself, so peers never see the tip first.
            self._status_handle = asyncio.get_running_loop().call_soon(self._flood_status)
        syncing = self.is_syncing
        if self._was_syncing and not syncing:
            log.info(
                "sync complete height=%d best_peer_height=%d", chain.height, self.best_peer_height
            )
        self._was_syncing = syncing

    def _relay_now_applicable(self) -> None:
        """Relay the held-back gossiped txs that apply since the last block; forget evicted."""
        if not self._unrelayed:
            return
        for tx_id, origin in list(self._unrelayed.items()):
            entry = self.pool.get(tx_id)
            if entry is None:
                del self._unrelayed[tx_id]
            elif self.pool.can_apply(entry, self.chain.account):
                del self._unrelayed[tx_id]
                self._queue_tx_gossip(tx_id, encode_frame(TransactionMessage(entry.tx)), origin)

    def _flood_status(self) -> None:
        self._status_handle = None
        self._flood(self._status_frame(), None)

    def _add_orphan(self, block: Block) -> None:
        self.orphans[block.hash()] = block
        while len(self.orphans) > MAX_ORPHANS:
            self.orphans.popitem(last=False)

    def _connect_orphans(self, parent_hash: bytes) -> None:
        """Import orphans whose parent just arrived (and their children, transitively)."""
        parents = [parent_hash]
        while parents and self.orphans:
            parent = parents.pop()
            children = [b for b in self.orphans.values() if b.header.prev_hash == parent]
            for child in children:
                del self.orphans[child.hash()]
                result = self._import(child, None, None, VIA_ORPHAN)
                if result.status in (ImportStatus.CANONICAL, ImportStatus.SIDE):
                    parents.append(child.hash())

    # ---- sync -----------------------------------------------------------------------------

    async def _sync_watch(self) -> None:
        while True:
            await asyncio.sleep(SYNC_WATCH_INTERVAL_S)
            self._maybe_sync()

    def _maybe_sync(self) -> None:
        """Ask the peer with the best unknown tip for blocks, one request at a time."""
        now_s = time.monotonic()
        if self._sync is not None:
            if now_s - self._sync.sent_s < SYNC_TIMEOUT_S:
                return
            log.info("sync request to %s timed out", self._sync.peer)
            self.tips.failed(self._sync.peer, now_s)
            self._sync = None
        reachable = [name for name, link in self.links.items() if link.up]
        target = self.tips.sync_target(self.chain.tip_key, now_s, self._holds, reachable)
        if target is not None:
            peer, tip = target
            self._request_blocks(peer, min(self.chain.height + 1, tip.height))

    def _request_blocks(self, peer: str, from_height: int, count: int | None = None) -> None:
        count = self.sync_batch if count is None else min(count, self.sync_batch)
        self._send_to(peer, encode_frame(GetBlocks(from_height, count)))
        self._sync = SyncRequest(peer, from_height, time.monotonic())
        log.debug("sync request peer=%s from_height=%d", peer, from_height)

    def _serve_blocks(self, reply: Reply, request: GetBlocks) -> None:
        count = min(request.max_count, self.sync_batch)
        blocks: list[Block] = []
        size = 0
        for block in self.chain.canonical_range(request.from_height, count):
            size += approx_block_size(block)
            if blocks and size > SYNC_MAX_BYTES:
                break
            blocks.append(block)
        reply(encode_frame(Blocks(tuple(blocks))))

    def _on_blocks(self, peer: str, blocks: Iterable[Block]) -> None:
        blocks = list(blocks)
        now_s = time.monotonic()
        if self._sync is not None and self._sync.peer == peer:
            self._sync = None
        if not blocks:
            # The peer has nothing there: its claimed tip is gone (it restarted) or never was.
            self.tips.failed(peer, now_s)
            return
        first = blocks[0]
        if first.header.prev_hash not in self.chain.records:
            if first.height <= 1:
                log.error("peer %s serves a chain with another genesis: not syncing from it", peer)
                self.tips.failed(peer, now_s)
                return
            # Our chains fork below this batch. Keep it (it connects once its ancestors are
            # here) and fetch only the blocks below it, twice as many each time.
            for block in blocks:
                self._add_orphan(block)
            step = self._sync_step.get(peer, self.sync_step_back)
            self._sync_step[peer] = step * 2
            start = max(1, first.height - step)
            self._request_blocks(peer, start, first.height - start)
            return
        self._sync_step.pop(peer, None)
        for block in blocks:
            result = self._import(block, None, peer, VIA_SYNC)
            if result.status is ImportStatus.INVALID:
                self.tips.failed(peer, now_s)
                return
            self.tips.served(peer, now_s)
            if result.status in (ImportStatus.CANONICAL, ImportStatus.SIDE):
                self._connect_orphans(result.block_hash)
        log.info(
            "sync progress peer=%s received=%d..%d height=%d best_peer_height=%d",
            peer,
            first.height,
            blocks[-1].height,
            self.chain.height,
            self.best_peer_height,
        )
        tip = self.tips.tip(peer)
        if (
            tip is not None
            and not self._holds(tip.block_hash)
            and is_better(tip, self.chain.tip_key)
        ):
            # Orphans kept from a step back may have connected: ask from past the chain's tip.
            self._request_blocks(peer, max(blocks[-1].height, self.chain.height) + 1)
        else:
            self._maybe_sync()

    # ---- rounds ---------------------------------------------------------------------------

    async def _round_loop(self) -> None:
        handled: tuple[int, Phase] | None = None
        while True:
            now = time.time()
            window = self.schedule.phase_at(now)
            key = (window.round_index, window.phase)
            if key == handled or now < window.end_s:
                # Sleep to the end of this phase (a hair past it, so we wake inside the next).
                await asyncio.sleep(max(window.end_s - now, 0.0) + 0.0005)
                if key == handled:
                    continue
            handled = key
            try:
                self._on_phase_end(window)
            except Exception:
                log.exception("round %d: %s end handling failed", *key)

    def _on_phase_end(self, window: PhaseWindow) -> None:
        r, phase = window.round_index, window.phase
        if phase is Phase.IDLE:
            self._commit(0)
        elif phase is Phase.COMMIT:
            self._reveal(r)
        elif phase is Phase.REVEAL:
            self._choose_winner(r)
        elif phase is Phase.BATTLE:
            if self._winners.pop(r, None) == self.own_key:
                self._produce(r)
            self._commit(r + 1)

    def _commit(self, round_index: int) -> None:
        self.tournament.prune(round_index)
        for old in [r for r in self._winners if r < round_index - 2]:
            del self._winners[old]
        self._own_reveals.clear()
        if not self.settings.is_validator or self.is_syncing:
            return
        commitment, reveal = self.tournament.own_messages(round_index, self.chain.tip_hash)
        self.tournament.offer_commitment(commitment, time.time(), verified=True)
        self._own_reveals[round_index] = reveal
        self._flood(encode_frame(commitment), None)

    def _reveal(self, round_index: int) -> None:
        reveal = self._own_reveals.pop(round_index, None)
        if reveal is None:
            return
        self.tournament.offer_reveal(reveal, time.time(), verified=True)
        self._flood(encode_frame(reveal), None)

    def _choose_winner(self, round_index: int) -> None:
        participants = self.tournament.participants(round_index)
        self._active_miners = len(participants)
        if not participants:
            self._winners[round_index] = None
            return
        chosen = choose_winner(self.chain.tip_hash, participants)
        self._winners[round_index] = chosen
        log.debug(
            "round=%d winner=%s participants=%d", round_index, self._who(chosen), len(participants)
        )

    def _produce(self, round_index: int) -> None:
        if self.is_syncing:
            log.info("round=%d won but syncing: no block", round_index)
            return
        started = time.perf_counter()
        block = self.chain.build_block(self.settings.keypair, self.pool.ordered(), int(time.time()))
        self.metrics.proof_generation_s = time.perf_counter() - started
        result = self._import(block, None, None, VIA_OWN)
        if result.status is ImportStatus.CANONICAL:
            self._flood(encode_frame(BlockMessage(block)), None)
        else:
            log.error(
                "own block for round %d not adopted: %s %s",
                round_index,
                result.status,
                result.error,
            )
