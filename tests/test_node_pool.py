"""The node's pool: capacity without eviction, duplicates, priority order, stale pruning."""

from __future__ import annotations

import pytest

from bitcell_sim.devnet.node.pool import TxPool
from bitcell_sim.errors import RpcError
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.admission import MSG_ALREADY_IN_POOL, MSG_POOL_FULL
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
