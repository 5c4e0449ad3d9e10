"""The node's pool: capacity, duplicates, priority order, and eviction of what cannot apply.

The same rules are then checked on real node processes: a small pool refusing when full, a
pool that fresh unfunded senders can no longer fill, txs behind a nonce gap evicted after the
grace blocks (counted in a metric), only applicable txs re-sent to a peer, and blocks taking
the highest gas price first, then arrival order.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from bitcell_sim.errors import RpcError
from bitcell_sim.node.harness import HOST, LocalNet, wait_for
from bitcell_sim.node.pool import (
    INSUFFICIENT_BALANCE,
    NONCE_GAP,
    NONCE_GAP_GRACE_BLOCKS,
    STALE_NONCE,
    TxPool,
)
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.admission import (
    MSG_ALREADY_IN_POOL,
    MSG_INSUFFICIENT_BALANCE,
    MSG_POOL_FULL,
)
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.jsonrpc import INTERNAL_ERROR
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.metrics import parse_prometheus
from bitcell_sim.protocol.p2p import TransactionMessage, encode_frame
from bitcell_sim.protocol.transaction import Transaction, sign_transaction
from tests.p2p_peer import handshake_as_dialer

TO = KeyPair.from_seed("pool-to").public_key


def tx(seed: str, gas_price: int, nonce: int = 0) -> Transaction:
    return sign_transaction(KeyPair.from_seed(seed), TO, 0, 21000, gas_price, nonce=nonce)


def test_capacity_refuses_without_eviction() -> None:
    pool = TxPool(2)
    a, b, c = tx("a", 1), tx("b", 2), tx("c", 99)
    pool.add(a, a.tx_id())
    pool.add(b, b.tx_id())
    with pytest.raises(RpcError, match=f"^{INTERNAL_ERROR}: {MSG_POOL_FULL}$"):
        pool.add(c, c.tx_id())
    assert len(pool) == 2 and a.tx_id() in pool and c.tx_id() not in pool


def test_duplicate_is_reported_before_full() -> None:
    pool = TxPool(1)
    a = tx("a", 1)
    pool.add(a, a.tx_id())
    with pytest.raises(RpcError, match=f"^{INTERNAL_ERROR}: {MSG_ALREADY_IN_POOL}$"):
        pool.add(a, a.tx_id())


def test_order_is_gas_price_then_arrival_and_nothing_is_dropped() -> None:
    pool = TxPool(100)
    txs = [tx("a", 5), tx("b", 7), tx("c", 5), tx("d", 7), tx("e", 1), tx("f", 5)]
    for t in txs:
        pool.add(t, t.tx_id())
    order = [e.tx for e in pool.ordered()]
    assert order == [txs[1], txs[3], txs[0], txs[2], txs[5], txs[4]]
    assert len(pool) == len(txs)


def test_restore_ignores_capacity() -> None:
    pool = TxPool(1)
    a, b = tx("a", 1), tx("b", 1)
    pool.add(a, a.tx_id())
    assert pool.restore(b, b.tx_id())
    assert not pool.restore(b, b.tx_id())
    assert len(pool) == 2


def test_a_second_tx_of_the_same_sender_and_nonce_is_already_in_pool() -> None:
    pool = TxPool(10)
    first, second = tx("s", 1), tx("s", 2)  # same sender, nonce 0, different ids
    pool.add(first, first.tx_id())
    with pytest.raises(RpcError, match=f"^{INTERNAL_ERROR}: {MSG_ALREADY_IN_POOL}$"):
        pool.add(second, second.tx_id())
    assert not pool.restore(second, second.tx_id())
    assert len(pool) == 1


def pay(seed: str, amount: int, nonce: int) -> Transaction:
    return sign_transaction(KeyPair.from_seed(seed), TO, amount, 21000, 1, nonce=nonce)


def test_evict_removes_what_can_no_longer_apply_by_reason() -> None:
    pool = TxPool(100)
    passed, current = pay("s", 1, 0), pay("s", 1, 1)  # s has confirmed nonce 1
    spends, overspends = pay("r", 8, 0), pay("r", 5, 1)  # r has 10: 8 then 5 cannot both pay
    broke = pay("u", 3, 0)  # u is unknown: balance 0
    gap = pay("g", 0, 2)  # g's confirmed nonce is 0: nonces 0 and 1 are missing
    free = pay("z", 0, 0)
    for t in (passed, current, spends, overspends, broke, gap, free):
        pool.restore(t, t.tx_id(), height=10)
    accounts = {passed.sender: Account(10, 1), spends.sender: Account(10, 0)}
    evicted = pool.evict(accounts.get, height=11)
    assert evicted == {
        STALE_NONCE: [passed.tx_id()],
        INSUFFICIENT_BALANCE: [overspends.tx_id(), broke.tx_id()],
    }
    assert {e.tx_id for e in pool.applicable(accounts.get)} == {
        current.tx_id(),
        spends.tx_id(),
        free.tx_id(),
    }
    # the gap waits NONCE_GAP_GRACE_BLOCKS blocks for its predecessors, then goes
    assert gap.tx_id() in pool
    assert pool.evict(accounts.get, 10 + NONCE_GAP_GRACE_BLOCKS, senders=[]) == {}
    later = pool.evict(accounts.get, 11 + NONCE_GAP_GRACE_BLOCKS, senders=[])
    assert later == {NONCE_GAP: [gap.tx_id()]}
    assert len(pool) == 3


def test_a_gap_filled_in_time_stays() -> None:
    pool = TxPool(10)
    second = pay("s", 0, 1)
    pool.add(second, second.tx_id(), height=5, waiting=True)
    first = pay("s", 0, 0)
    pool.add(first, first.tx_id(), height=6)
    assert pool.evict({}.get, height=50, senders=[]) == {}
    assert [e.tx.nonce for e in pool.applicable({}.get)] == [0, 1]
    entry = pool.get(second.tx_id())
    assert entry is not None and pool.can_apply(entry, {}.get)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"pool capacity\(=0\)"):
        TxPool(0)


# ---- against real node processes -------------------------------------------------------------


def _rpc(url: str, method: str, params: list[object]) -> dict[str, object]:
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    return dict(httpx.post(f"{url}/rpc", json=body, trust_env=False).json())


def _raw(t: Transaction) -> str:
    return "0x" + t.encode().hex()


@pytest.mark.real
@pytest.mark.timeout(60)
def test_small_pool_on_a_real_node_refuses_when_full(tmp_path: Path) -> None:
    roles = {"v": "validator", "f": "full"}
    protocol = {"tx_pool_capacity": 3}
    with LocalNet(tmp_path, roles, name="pooltest", protocol=protocol) as net:
        net.start("f")  # a full node alone never produces, so its pool only fills
        url = net.nodes["f"].rpc_url
        txs = [sign_transaction(KeyPair.from_seed(f"p{i}"), TO, 0, 21000, 10**9) for i in range(4)]
        for t in txs[:3]:
            assert (
                _rpc(url, "eth_sendRawTransaction", [_raw(t)])["result"] == "0x" + t.tx_id().hex()
            )
        full = _rpc(url, "eth_sendRawTransaction", [_raw(txs[3])])
        assert full["error"] == {"code": INTERNAL_ERROR, "message": MSG_POOL_FULL, "data": None}
        dup = _rpc(url, "eth_sendRawTransaction", [_raw(txs[0])])
        assert dup["error"] == {
            "code": INTERNAL_ERROR,
            "message": MSG_ALREADY_IN_POOL,
            "data": None,
        }
        info = _rpc(url, "bitcell_getPendingBlockInfo", [])["result"]
        assert isinstance(info, dict) and info["pendingTransactions"] == 3


@pytest.mark.real
@pytest.mark.timeout(60)
def test_blocks_take_highest_gas_price_then_arrival(tmp_path: Path) -> None:
    protocol = {"max_txs_per_block": 3}
    with LocalNet(
        tmp_path, {"v": "validator"}, name="ordertest", phase_s=0.7, protocol=protocol
    ) as net:
        net.start()
        url = net.nodes["v"].rpc_url

        def height() -> int:
            return int(str(_rpc(url, "eth_blockNumber", [])["result"]), 16)

        start = height()
        deadline = time.monotonic() + 20
        while height() == start and time.monotonic() < deadline:
            time.sleep(0.02)
        # just after a block: all six land in the pool before the next one is built
        prices = [5, 7, 5, 7, 1, 5]
        txs = [
            sign_transaction(funded_sender("ordertest", i), TO, 1, 21000, p * 10**9)
            for i, p in enumerate(prices)
        ]
        for t in txs:
            assert _rpc(url, "eth_sendRawTransaction", [_raw(t)])["error"] is None
        first = height() + 1
        while height() < first + 1 and time.monotonic() < deadline + 20:
            time.sleep(0.05)
        blocks = [_rpc(url, "eth_getBlockByNumber", [hex(h)])["result"] for h in (first, first + 1)]
        got = [tx_hash for b in blocks if isinstance(b, dict) for tx_hash in b["transactions"]]
        want = [txs[i] for i in (1, 3, 0, 2, 5, 4)]
        assert got == ["0x" + t.tx_id().hex() for t in want]


def _pending(url: str) -> int:
    info = _rpc(url, "bitcell_getPendingBlockInfo", [])["result"]
    assert isinstance(info, dict)
    return int(info["pendingTransactions"])


@pytest.mark.real
@pytest.mark.timeout(60)
def test_unfunded_value_transfers_cannot_fill_a_pool(tmp_path: Path) -> None:
    roles = {"v": "validator", "f": "full"}
    with LocalNet(tmp_path, roles, name="poisontest", protocol={"tx_pool_capacity": 20}) as net:
        net.start("f")  # alone, f never produces: what enters its pool stays there
        url = net.nodes["f"].rpc_url
        for i in range(30):  # fresh keys moving value: free to make, never applicable
            poison = sign_transaction(KeyPair.from_seed(f"poison-{i}"), TO, 1 + i, 21000, 10**9)
            answer = _rpc(url, "eth_sendRawTransaction", [_raw(poison)])
            assert answer["error"] == {
                "code": -32602,
                "message": MSG_INSUFFICIENT_BALANCE,
                "data": None,
            }
        assert _pending(url) == 0
        for i in range(20):  # the pool is all there for valid txs
            good = sign_transaction(KeyPair.from_seed(f"good-{i}"), TO, 0, 21000, 10**9)
            assert _rpc(url, "eth_sendRawTransaction", [_raw(good)])["error"] is None
        assert _pending(url) == 20


def _evictions(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", trust_env=False).text
    return {
        k.split('"')[1]: v
        for k, v in parse_prometheus(text).items()
        if k.startswith("bitcell_pool_evicted_total")
    }


def _gossip(net: LocalNet, node: str, txs: list[Transaction]) -> socket.socket:
    """Send ``txs`` to ``node`` as x, a node of the topology that never runs."""
    sock = socket.create_connection((HOST, net.ports[node][1]), timeout=5)
    handshake_as_dialer(sock, net.p2p_keys["x"], net.genesis_hash)
    sock.sendall(b"".join(encode_frame(TransactionMessage(t)) for t in txs))
    return sock


@pytest.mark.real
@pytest.mark.timeout(60)
def test_txs_behind_a_nonce_gap_are_evicted_and_counted(tmp_path: Path) -> None:
    roles = {"v": "validator", "x": "full"}
    protocol = {"tx_pool_capacity": 10}
    with LocalNet(tmp_path, roles, name="gaptest", phase_s=0.3, protocol=protocol) as net:
        net.write_config("v", {})
        net.start("v")
        url, metrics = net.nodes["v"].rpc_url, net.nodes["v"].metrics_url
        # nonce 1 of senders whose nonce 0 never comes: taken as a little ahead, then evicted
        gapped = [
            sign_transaction(KeyPair.from_seed(f"gap-{i}"), TO, 0, 21000, 10**9, nonce=1)
            for i in range(10)
        ]
        with _gossip(net, "v", gapped):
            wait_for(lambda: _pending(url) == 10, 10, "the gap txs pooled")
            late = sign_transaction(KeyPair.from_seed("late"), TO, 0, 21000, 10**9)
            full = _rpc(url, "eth_sendRawTransaction", [_raw(late)])["error"]
            assert isinstance(full, dict) and full["message"] == MSG_POOL_FULL
            wait_for(lambda: _pending(url) == 0, 20, "the gap txs evicted")
        assert _evictions(metrics) == {"insufficient_balance": 0, "nonce_gap": 10, "stale_nonce": 0}
        assert _rpc(url, "eth_sendRawTransaction", [_raw(late)])["error"] is None


@pytest.mark.real
@pytest.mark.timeout(60)
def test_only_txs_that_apply_are_sent_on_to_a_peer(tmp_path: Path) -> None:
    roles = {"w": "validator", "f": "full", "g": "full", "x": "full"}
    with LocalNet(tmp_path, roles, name="resendtest", phase_s=0.3) as net:
        net.write_config("f", {"g": f"{HOST}:{net.ports['g'][1]}"})
        net.write_config("g", {"f": f"{HOST}:{net.ports['f'][1]}"})
        net.start("f")
        ahead = [
            sign_transaction(KeyPair.from_seed(f"ahead-{i}"), TO, 0, 21000, 10**9, nonce=2)
            for i in range(5)
        ]
        ready = [
            sign_transaction(KeyPair.from_seed(f"ready-{i}"), TO, 0, 21000, 10**9) for i in range(5)
        ]
        with _gossip(net, "f", ahead + ready):
            wait_for(lambda: _pending(net.nodes["f"].rpc_url) == 10, 10, "f pooled all ten")
        net.start("g")  # f sends g its pool when their link comes up: only what can apply
        wait_for(lambda: _pending(net.nodes["g"].rpc_url) == 5, 10, "g got the five")
        time.sleep(1.0)
        assert _pending(net.nodes["g"].rpc_url) == 5
