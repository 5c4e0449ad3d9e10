"""This machine's real costs of the node code, as the topology's ``protocol.processing`` values.

:func:`calibrate` measures, on the node's own code: RPC admission of a signed transaction
(decode, signature, account rules: ``tx_validate``), a block's import from gossip (decode,
validation with the signatures already verified by tx gossip, storage, pool clean-up: a fixed
part, ``block_import``, and a part per transaction, ``block_import_per_tx``, fitted over blocks of
several sizes), a producer's build of its block (``block_build``, ``block_build_per_tx``: pick
and execute the txs, sign, encode), and on real node processes the
service time of a trivial JSON-RPC request over loopback HTTP (``rpc_service``) and the time
from process start to serving RPC with a chain on disk (``startup``). Each figure is the
median of repeated measurements.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitcell_sim.errors import DevnetError
from bitcell_sim.node.chain import Chain
from bitcell_sim.node.harness import LocalNet
from bitcell_sim.node.pool import TxPool
from bitcell_sim.node.sigcache import SignatureCache
from bitcell_sim.node.store import ChainStore
from bitcell_sim.protocol import admission
from bitcell_sim.protocol.block import genesis_block
from bitcell_sim.protocol.identity import funded_sender, node_keypair
from bitcell_sim.protocol.p2p import BlockMessage, decode_message, encode_frame
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import Transaction, sign_transaction

NETWORK = "calibrate"
BALANCE = 10**15
GAS_PRICE = 1_000_000_000
BLOCK_SIZES = (0, 50, 150, 300)

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """Measured costs in seconds, named as the ``protocol.processing`` keys."""

    tx_validate_s: float
    block_import_s: float
    block_import_per_tx_s: float
    block_build_s: float
    block_build_per_tx_s: float
    rpc_service_s: float
    startup_s: float

    def processing(self) -> dict[str, float]:
        """The values by ``protocol.processing`` key (file aliases), in seconds."""
        return {
            "tx_validate": self.tx_validate_s,
            "block_import": self.block_import_s,
            "block_import_per_tx": self.block_import_per_tx_s,
            "block_build": self.block_build_s,
            "block_build_per_tx": self.block_build_per_tx_s,
            "rpc_service": self.rpc_service_s,
            "startup": self.startup_s,
        }


def _signed(count: int, first_sender: int = 0) -> list[Transaction]:
    """One transfer from each of ``count`` funded senders, nonce 0."""
    recipient = node_keypair(NETWORK, "sink").public_key
    return [
        sign_transaction(funded_sender(NETWORK, first_sender + i), recipient, 1, 21_000, GAS_PRICE)
        for i in range(count)
    ]


def _chain(root: Path, name: str, senders: int) -> Chain:
    allocations = {funded_sender(NETWORK, i).public_key: BALANCE for i in range(senders)}
    store = ChainStore(root / name)
    return Chain(
        store, genesis_block(NETWORK, 0, allocations), allocations, 0, 10_000, SignatureCache()
    )


def measure_tx_validate(count: int = 300) -> float:
    """Median seconds of RPC admission (decode, signature, account rules) of one tx."""
    with tempfile.TemporaryDirectory() as tmp:
        chain = _chain(Path(tmp), "admit", count)
        params = [["0x" + tx.encode().hex()] for tx in _signed(count)]
        samples = []
        for p in params:
            started = time.perf_counter()
            admission.admit_raw_transaction(p, chain.account)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@dataclass(frozen=True)
class BlockCosts:
    """Seconds of a block's build at its producer and of its import at each node it reaches."""

    build_s: float
    build_per_tx_s: float
    import_s: float
    import_per_tx_s: float


def _line(sizes: tuple[int, ...], samples: dict[int, list[float]]) -> tuple[float, float]:
    """(fixed, per-tx) of the least-squares line through the medians per block size."""
    medians = [statistics.median(samples[size]) for size in sizes]
    per_tx, fixed = np.polyfit(np.asarray(sizes, dtype=float), np.asarray(medians), 1)
    return max(float(fixed), 0.0), max(float(per_tx), 0.0)


def measure_blocks(rounds: int = 3, idle_s: float = 0.0) -> BlockCosts:
    """The node's two block paths, timed over blocks of each of :data:`BLOCK_SIZES` txs.

    ``idle_s`` sleeps that long before each timed build and import, as a node idles between
    rounds (``benchmarks/bench_block_hold.py``: on some machines work after a pause is several
    times slower than back to back); calibrate times them back to back.

    Build, as a producer does at its round's end: order its pool, pick and execute the txs,
    sign, and encode the frame it floods. Import, as a node does with a block from gossip: decode
    the frame, validate and store the block (signatures already cached by tx gossip), and drop
    its txs from the pool. Every tx comes from a fresh funded sender; producer and receiver are
    separate chains with their own SQLite stores.
    """
    senders = rounds * sum(BLOCK_SIZES)
    proposer = node_keypair(NETWORK, "producer")
    build: dict[int, list[float]] = {size: [] for size in BLOCK_SIZES}
    imports: dict[int, list[float]] = {size: [] for size in BLOCK_SIZES}
    with tempfile.TemporaryDirectory() as tmp:
        producer = _chain(Path(tmp), "producer", senders)
        receiver = _chain(Path(tmp), "receiver", senders)
        next_sender = 0
        for _ in range(rounds):
            for size in BLOCK_SIZES:
                pool, received = TxPool(10_000), TxPool(10_000)
                for tx in _signed(size, first_sender=next_sender):
                    tx_id = tx.tx_id()
                    for chain, held in ((producer, pool), (receiver, received)):
                        chain.sigcache.verify(tx, tx_id)  # as admission or gossip would have
                        held.add(tx, tx_id)
                next_sender += size
                if idle_s:
                    time.sleep(idle_s)
                started = time.perf_counter()
                block = producer.build_block(proposer, pool.ordered(), int(time.time()))
                frame = encode_frame(BlockMessage(block))
                build[size].append(time.perf_counter() - started)
                producer.import_block(block)
                if idle_s:
                    time.sleep(idle_s)
                started = time.perf_counter()
                message = decode_message(frame[4:])
                assert isinstance(message, BlockMessage)
                receiver.import_block(message.block, frame[4:])
                received.remove(tx.tx_id() for tx in message.block.transactions)
                imports[size].append(time.perf_counter() - started)
        producer.store.close()
        receiver.store.close()
    return BlockCosts(*_line(BLOCK_SIZES, build), *_line(BLOCK_SIZES, imports))


def measure_processes(requests: int = 300, restarts: int = 3) -> tuple[float, float]:
    """(RPC service, start-up) seconds measured on real node processes on loopback.

    RPC service is the round trip of ``eth_blockNumber`` (HTTP, JSON-RPC, the event loop: no
    validation); start-up is process start to ``/health`` answering, with a chain on disk.
    """
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalNet(Path(tmp), {"a": "validator"}, name=NETWORK, genesis_delay_s=0.5) as net,
    ):
        node = net.nodes["a"]
        net.start("a")
        with RpcClient(node.rpc_url) as client:
            deadline = time.monotonic() + 30
            while client.block_number() < 3:  # a chain on disk to load at each restart
                if time.monotonic() > deadline:
                    raise DevnetError("the calibration node made no 3 blocks in 30 s")
                time.sleep(0.2)
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                client.block_number()
                samples.append(time.perf_counter() - started)
        rpc_s = statistics.median(samples)
        starts = []
        for _ in range(restarts):
            node.kill()
            started = time.perf_counter()
            node.start()
            node.wait_ready(30)
            starts.append(time.perf_counter() - started)
    return rpc_s, statistics.median(starts)


def calibrate(progress: ProgressCallback | None = None) -> Calibration:
    """Every measurement of the module docstring; ``progress`` gets a line per step."""
    say = progress or (lambda line: None)
    say("tx admission (decode, signature, account rules)")
    tx_validate_s = measure_tx_validate()
    say("block build and import, blocks of " + ", ".join(map(str, BLOCK_SIZES)) + " txs")
    blocks = measure_blocks()
    say("RPC service and process start-up on a real node")
    rpc_s, startup_s = measure_processes()
    return Calibration(
        tx_validate_s,
        blocks.import_s,
        blocks.import_per_tx_s,
        blocks.build_s,
        blocks.build_per_tx_s,
        rpc_s,
        startup_s,
    )
