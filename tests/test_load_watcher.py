"""Records, rejection reasons, the chain watcher (confirmations, reorgs, stalls), real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bitcell_sim.errors import RpcError
from bitcell_sim.load import (
    ChainWatcher,
    StallDetector,
    TxLog,
    TxRecord,
    reject_category,
    reject_reason,
)
from bitcell_sim.load.sink import Sink, start
from bitcell_sim.load.txlog import FIELDS
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.rpc_client import RpcClient
from bitcell_sim.protocol.transaction import sign_transaction
from bitcell_sim.results.records import TRANSACTIONS


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _hash(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


class FakeChain:
    """An in-memory node: blocks of tx ids, replaceable to make a fork (test seam)."""

    def __init__(self) -> None:
        self.blocks = [{"hash": _hash("g"), "parentHash": "0x" + "0" * 64, "transactions": []}]
        self.pool = 0
        self.fail: str | None = None

    def add(self, tx_ids: list[str], salt: str = "") -> None:
        parent = self.blocks[-1]["hash"]
        self.blocks.append(
            {
                "hash": _hash(f"{len(self.blocks)}{salt}{tx_ids}"),
                "parentHash": parent,
                "transactions": ["0x" + t for t in tx_ids],
            }
        )

    def block_number(self) -> int:
        if self.fail:
            raise RpcError(None, self.fail)
        return len(self.blocks) - 1

    def get_block_by_number(self, tag: int | str = "latest", full: bool = False) -> Any:
        number = len(self.blocks) - 1 if tag == "latest" else int(tag)
        if number >= len(self.blocks):
            return None
        return {**self.blocks[number], "number": hex(number)}

    def get_pending_block_info(self) -> dict[str, Any]:
        return {"pendingTransactions": self.pool}


def accepted(tx_id: str, submit_s: float = 0.0) -> TxRecord:
    return TxRecord(tx_id, "n1", submit_s, 0.001, True)


def test_record_fields_are_the_shared_schema() -> None:
    assert tuple(TRANSACTIONS.names) == FIELDS
    log = TxLog()
    log.add(accepted("aa"))
    log.add(TxRecord("bb", "n2", 1.0, None, False, None, "unreachable"))
    table = log.table()
    assert table.schema.equals(TRANSACTIONS)
    assert table.column("accepted").to_pylist() == [True, False]
    assert TxRecord.from_tuple(log.records[1].as_tuple()) == log.records[1]


@pytest.mark.parametrize(
    ("code", "message", "status", "reason", "category"),
    [
        (
            -32603,
            "Failed to add transaction to pool: Transaction pool full",
            None,
            "pool full",
            "pool full",
        ),
        (
            -32603,
            "Failed to add transaction to pool: Transaction already in pool",
            None,
            "already in pool",
            "already in pool",
        ),
        (
            -32602,
            "Invalid nonce: expected 3, got 2",
            None,
            "Invalid nonce: expected 3, got 2",
            "nonce",
        ),
        (
            -32602,
            "Invalid transaction signature",
            None,
            "Invalid transaction signature",
            "signature",
        ),
        (-32602, "Insufficient balance", None, "Insufficient balance", "balance"),
        (
            -32602,
            "Gas price 99 exceeds maximum allowed 10000000000000",
            None,
            "Gas price 99 exceeds maximum allowed 10000000000000",
            "gas",
        ),
        (
            -32602,
            "Failed to deserialize transaction: io error: unexpected end of file",
            None,
            "Failed to deserialize transaction: io error: unexpected end of file",
            "encoding",
        ),
        (None, "cannot connect to http://127.0.0.1:1/rpc", 0, "unreachable", "unreachable"),
        (None, "timeout after 10 s calling x", None, "timeout", "timeout"),
        (None, "HTTP 503 from http://x: busy", 503, "http 503", "http"),
        (-32000, "something new", None, "something new", "other"),
    ],
)
def test_rejection_reasons_and_categories(
    code: int | None, message: str, status: int | None, reason: str, category: str
) -> None:
    assert reject_reason(code, message, status) == reason
    assert reject_category(reason) == category


def test_watcher_confirms_at_the_time_it_saw_the_block() -> None:
    chain, clock, log = FakeChain(), Clock(), TxLog()
    watcher = ChainWatcher(chain, log, "n1", clock, stall_window_s=10)
    assert watcher.start() == 0
    log.add(accepted("aa"))
    log.add(accepted("bb"))
    log.add(TxRecord("cc", "n1", 0.0, 0.001, False, -32603, "pool full"))
    chain.add(["aa", "zz"])  # zz is someone else's
    chain.add([])
    clock.t = 2.5
    assert watcher.poll() is None
    record = log.records[0]
    assert (record.confirm_s, record.height) == (2.5, 1)
    assert record.block_hash == chain.blocks[1]["hash"][2:]
    assert list(log.pending) == ["bb"]
    chain.add(["bb"])
    clock.t = 4.0
    watcher.poll()
    assert log.records[1].confirm_s == 4.0 and log.records[1].height == 3
    assert not log.pending and log.records[2].confirm_s is None
    assert watcher.stats.blocks == 3 and watcher.stats.height == 3


def test_watcher_follows_a_reorg_and_reconfirms() -> None:
    chain, clock, log = FakeChain(), Clock(), TxLog()
    confirmed: list[str] = []
    reverted: list[str] = []
    watcher = ChainWatcher(
        chain,
        log,
        "n1",
        clock,
        10,
        on_confirmed=lambda r: confirmed.append(r.tx_id),
        on_reverted=lambda r: reverted.append(r.tx_id),
    )
    watcher.start()
    log.add(accepted("aa"))
    log.add(accepted("bb"))
    chain.add(["aa"])
    chain.add(["bb"])
    clock.t = 1.0
    watcher.poll()
    assert not log.pending
    # A longer fork replaces heights 1-2: bb was orphaned and lands at height 3 instead.
    del chain.blocks[1:]
    chain.add(["aa"], salt="fork")
    chain.add([], salt="fork")
    chain.add(["bb"], salt="fork")
    clock.t = 2.0
    watcher.poll()
    aa, bb = log.records
    assert (aa.confirm_s, aa.height) == (2.0, 1)  # re-seen in the new block at height 1
    assert (bb.confirm_s, bb.height) == (2.0, 3)
    assert sorted(reverted) == ["aa", "bb"] and confirmed.count("bb") == 2
    assert watcher.stats.reorgs == 1 and watcher.stats.orphaned_blocks == 2


def test_stall_detected_with_heights_after_the_window() -> None:
    chain, clock, log = FakeChain(), Clock(), TxLog()
    watcher = ChainWatcher(chain, log, "n1", clock, stall_window_s=6)
    watcher.start()
    chain.add([])
    clock.t = 1.0
    watcher.poll()
    log.add(accepted("aa"))
    for t in (2.0, 5.0, 6.9):
        clock.t = t
        assert watcher.poll() is None
    clock.t = 8.0
    stall = watcher.poll()
    assert stall is not None
    assert stall.height == 1 and stall.pending == 1 and stall.since_s == 2.0
    assert [h.height for h in stall.heights] == [0, 1]
    assert stall.message().startswith(
        "chain stalled: height stayed at 1 on n1 for 6.0 s (limit 6.0 s) while 1 accepted "
        "transactions were unconfirmed; heights seen: 0 @ 0.0 s, 1 @ 1.0 s"
    )


def test_no_stall_without_pending_and_errors_count_as_no_progress() -> None:
    detector = StallDetector(5)
    assert not detector.observe(0.0, 3, 0)
    assert not detector.observe(100.0, 3, 0)  # idle chain, nothing pending
    assert not detector.observe(101.0, 3, 4)  # pending only now: a full window from here
    assert not detector.observe(105.0, None, 4)
    assert detector.observe(106.0, None, 4)
    chain, clock, log = FakeChain(), Clock(), TxLog()
    watcher = ChainWatcher(chain, log, "n1", clock, stall_window_s=3)
    watcher.start()
    log.add(accepted("aa"))
    chain.fail = "cannot connect to http://127.0.0.1:9/rpc"
    clock.t = 1.0
    watcher.poll()
    clock.t = 4.5
    stall = watcher.poll()
    assert stall is not None and watcher.stats.errors == 2
    assert "last watcher error: cannot connect" in stall.message()


@pytest.fixture()
def sink_url() -> Iterator[tuple[str, Sink]]:
    """A real sink on a free port, served from a thread; it makes blocks only when told."""
    sink = Sink(round_s=3600, pool_capacity=3)
    loop = asyncio.new_event_loop()
    server = asyncio.run_coroutine_threadsafe(start(sink), loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = server.result(5).url
    try:
        yield url, sink
    finally:
        asyncio.run_coroutine_threadsafe(server.result().close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_sink_over_real_sockets_admits_pools_and_confirms(sink_url: tuple[str, Sink]) -> None:
    url, sink = sink_url
    recipient = KeyPair.from_seed("r").public_key
    txs = [sign_transaction(KeyPair.generate(), recipient, 0, 21_000, 1_000 + i) for i in range(4)]
    log, clock = TxLog(), Clock()
    with RpcClient(url) as client:
        watcher = ChainWatcher(client, log, "sink", clock, 10)
        assert watcher.start() == 0
        for tx in txs[:3]:
            tx_id = client.send_raw_transaction(tx)
            assert tx_id == "0x" + tx.tx_id().hex()
            log.add(accepted(tx_id[2:]))
        with pytest.raises(RpcError, match="Transaction pool full"):
            client.send_raw_transaction(txs[3])
        assert client.get_pending_block_info()["pendingTransactions"] == 3
        sink.make_block()
        clock.t = 1.5
        assert watcher.poll() is None
        assert not log.pending and {r.height for r in log.records} == {1}
        assert watcher.stats.pool_pending_last == 0 and watcher.stats.pool_pending_max == 0
        client.send_raw_transaction(txs[3])
        with pytest.raises(RpcError, match="Transaction already in pool"):
            client.send_raw_transaction(txs[3])
