"""Senders and transaction building: fresh keys, funded accounts with nonce tracking, gas."""

from __future__ import annotations

import pytest

from bitcell_sim.errors import LoadError
from bitcell_sim.load import FreshSenders, FundedSenders, TxFactory, recipient_key
from bitcell_sim.protocol import decode_raw_transaction
from bitcell_sim.protocol.identity import funded_sender


def test_built_transactions_are_admissible_sized_and_carry_the_gas_price() -> None:
    f = TxFactory(recipient_key("net"), tx_size_bytes=250)
    lease = FreshSenders().acquire()
    tx = f.build(lease.keypair, lease.nonce or 0, lease.amount, gas_price=1_234_567)
    raw = tx.encode()
    assert len(raw) == 250 and tx.data == bytes(56) and tx.gas_price == 1_234_567
    again = decode_raw_transaction(raw)  # the node's own checks: decode + low-S signature
    assert again == tx and tx.nonce == 0 and tx.amount == 0 and tx.gas_limit == 21_000


def test_factory_errors() -> None:
    with pytest.raises(LoadError, match=r"tx_size_bytes\(=100\) must be >= 194"):
        TxFactory(recipient_key("net"), tx_size_bytes=100)
    with pytest.raises(LoadError, match=r"gas_price\(=0\) must be > 0"):
        TxFactory(recipient_key("net")).build(FreshSenders().acquire().keypair, 0, 0, 0)


def test_fresh_senders_are_new_keys_at_nonce_zero() -> None:
    senders = FreshSenders()
    leases = [senders.acquire() for _ in range(50)]
    assert len({lease.keypair.public_key for lease in leases}) == 50
    assert all(lease.nonce == 0 for lease in leases)


def test_funded_senders_one_in_flight_each_and_nonce_after_confirmation() -> None:
    keys = [funded_sender("net", i) for i in range(2)]
    senders = FundedSenders(keys)
    a, b = senders.acquire(), senders.acquire()
    assert a is not None and b is not None and senders.acquire() is None
    assert a.nonce is None  # unknown until the node is asked
    senders.set_nonce(a, 4)
    senders.set_nonce(b, 0)
    senders.accepted(a, "tx-a")
    senders.accepted(b, "tx-b")
    assert senders.acquire() is None and senders.busy() == 2
    senders.confirmed("tx-a")
    again = senders.acquire()
    assert again is not None and again.keypair is keys[0] and again.nonce == 5
    senders.confirmed("unknown-tx")  # someone else's tx: no effect
    assert senders.acquire() is None


def test_funded_senders_rejections_free_the_account() -> None:
    senders = FundedSenders([funded_sender("net", 0)])
    lease = senders.acquire()
    assert lease is not None
    senders.set_nonce(lease, 2)
    senders.rejected(lease, "Invalid nonce: expected 7, got 2")
    lease = senders.acquire()
    assert lease is not None and lease.nonce == 7
    senders.rejected(lease, "Failed to add transaction to pool: Transaction pool full")
    lease = senders.acquire()
    assert lease is not None and lease.nonce == 7
    senders.rejected(lease, None)  # no answer: the node may have it; ask again
    lease = senders.acquire()
    assert lease is not None and lease.nonce is None


def test_funded_senders_need_accounts() -> None:
    with pytest.raises(LoadError, match="at least one genesis-funded account"):
        FundedSenders([])
