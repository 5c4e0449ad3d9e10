"""The node's pool: capacity without eviction, duplicates, priority order, stale pruning.

The same rules are then checked on real node processes: a small pool refusing when full,
and blocks taking the highest gas price first, then arrival order.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bitcell_sim.errors import RpcError
from bitcell_sim.node.harness import LocalNet
from bitcell_sim.node.pool import TxPool
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.admission import MSG_ALREADY_IN_POOL, MSG_POOL_FULL
from bitcell_sim.protocol.identity import funded_sender
from bitcell_sim.protocol.jsonrpc import INTERNAL_ERROR
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import Transaction, sign_transaction

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


def test_drop_stale_removes_passed_nonces_only() -> None:
    pool = TxPool(10)
    old, current, other = tx("s", 1, nonce=0), tx("s", 2, nonce=1), tx("t", 1, nonce=0)
    for t in (old, current, other):
        pool.add(t, t.tx_id())
    accounts = {old.sender: Account(10, 1)}
    dropped = pool.drop_stale(accounts.get)
    assert dropped == [old.tx_id()]
    assert current.tx_id() in pool and other.tx_id() in pool
    assert pool.remove([current.tx_id(), current.tx_id()]) == 1
    assert len(pool) == 1


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
        # fresh senders with an amount and no funds: admitted, never includable
        txs = [sign_transaction(KeyPair.from_seed(f"p{i}"), TO, 5, 21000, 10**9) for i in range(4)]
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
