"""The node's chain: validation, fork choice (longest, then lower hash), reorgs, reloading."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bitcell_sim.errors import DevnetError
from bitcell_sim.node.chain import Chain, ImportStatus
from bitcell_sim.node.pool import PoolEntry
from bitcell_sim.node.sigcache import SignatureCache
from bitcell_sim.node.store import ChainStore
from bitcell_sim.protocol.account import Account
from bitcell_sim.protocol.arrivals import (
    VIA_GOSSIP,
    VIA_ORPHAN,
    VIA_SYNC,
    BlockArrival,
    read_arrivals,
    read_tx_ids,
)
from bitcell_sim.protocol.block import Block, genesis_block, make_block
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import Transaction, sign_transaction

NETWORK = "chaintest"
REWARD = 1000
ALICE, BOB = KeyPair.from_seed("alice"), KeyPair.from_seed("bob")
V1, V2 = KeyPair.from_seed("v1"), KeyPair.from_seed("v2")
ALLOC = {ALICE.public_key: 10_000, BOB.public_key: 10_000}


def open_chain(path: Path, timestamp: int = 1000, max_txs: int = 10) -> Chain:
    genesis = genesis_block(NETWORK, timestamp, ALLOC)
    return Chain(ChainStore(path), genesis, ALLOC, REWARD, max_txs, SignatureCache())


def entries(*txs: Transaction) -> list[PoolEntry]:
    return [PoolEntry(t, t.tx_id(), i) for i, t in enumerate(txs)]


def pay(sender: KeyPair, amount: int, nonce: int, gas_price: int = 10**9) -> Transaction:
    return sign_transaction(
        sender, KeyPair.from_seed("carol").public_key, amount, 21000, gas_price, nonce=nonce
    )


def grow(chain: Chain, proposer: KeyPair, *txs: Transaction, timestamp: int = 2000) -> Block:
    block = chain.build_block(proposer, entries(*txs), timestamp)
    result = chain.import_block(block)
    assert result.status is ImportStatus.CANONICAL, result.error
    return block


def test_extend_applies_txs_and_reward(tmp_path: Path) -> None:
    chain = open_chain(tmp_path / "a")
    block = grow(chain, V1, pay(ALICE, 100, 0))
    assert chain.height == 1 and chain.tip_hash == block.hash()
    assert chain.account(ALICE.public_key) == Account(9_900, 1)
    assert chain.account(V1.public_key) == Account(REWARD, 0)
    assert chain.find_transaction(block.transactions[0].tx_id()) == (block, 0)
    assert chain.import_block(block).status is ImportStatus.KNOWN


def test_build_skips_txs_that_do_not_apply_and_takes_later_nonces(tmp_path: Path) -> None:
    chain = open_chain(tmp_path / "a", max_txs=10)
    second, first = pay(ALICE, 1, 1, gas_price=9), pay(ALICE, 1, 0, gas_price=1)
    broke = pay(KeyPair.from_seed("nobody"), 5, 0)
    block = chain.build_block(V1, entries(second, first, broke), 2000)
    assert block.transactions == (first, second)
    assert chain.height == 0  # building leaves the state alone


def test_build_respects_max_txs(tmp_path: Path) -> None:
    chain = open_chain(tmp_path / "a", max_txs=2)
    txs = [pay(KeyPair.from_seed(f"z{i}"), 0, 0) for i in range(5)]
    assert len(chain.build_block(V1, entries(*txs), 2000).transactions) == 2


def test_invalid_blocks_are_refused(tmp_path: Path) -> None:
    chain = open_chain(tmp_path / "a")
    tip = chain.tip.header
    overspend = make_block(V1, tip, [pay(ALICE, 10**9, 0)], bytes(32), 2000)
    result = chain.import_block(overspend)
    assert result.status is ImportStatus.INVALID
    assert "does not apply" in result.error and chain.height == 0
    wrong_root = make_block(V1, tip, [pay(ALICE, 1, 0)], bytes(32), 2000)
    result = chain.import_block(wrong_root)
    assert result.status is ImportStatus.INVALID and "state_root" in result.error
    good = chain.build_block(V1, [], 2000)
    forged = Block(good.header, good.transactions, V2.sign(good.hash()))
    result = chain.import_block(forged)
    assert result.status is ImportStatus.INVALID and "proposer signature" in result.error
    orphan = make_block(V1, good.header, [], bytes(32), 2001)
    assert chain.import_block(orphan).status is ImportStatus.ORPHAN


def test_tx_signatures_are_verified_once_per_node(tmp_path: Path) -> None:
    chain = open_chain(tmp_path / "a")
    txs = (pay(ALICE, 1, 0), pay(BOB, 1, 0))
    assert chain.sigcache.verify(txs[0])  # as if admitted by RPC first
    assert chain.sigcache.verifications == 1
    grow(chain, V1, *txs)
    assert chain.sigcache.verifications == 2
    forged = replace(pay(ALICE, 1, 1), amount=2)
    bad = make_block(V1, chain.tip.header, [forged], bytes(32), 2001)
    result = chain.import_block(bad)
    assert result.status is ImportStatus.INVALID
    assert result.error == f"block 2 tx 0 ({forged.tx_id().hex()}) has an invalid signature"


def test_longer_branch_wins_and_reports_orphaned_blocks(tmp_path: Path) -> None:
    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    a1 = grow(a, V1, pay(ALICE, 100, 0))
    b1 = grow(b, V2, pay(BOB, 7, 0))
    b2 = grow(b, V2)
    first = a.import_block(b1)  # a tie at height 1: the lower hash wins
    assert first.status in (ImportStatus.SIDE, ImportStatus.CANONICAL)
    result = a.import_block(b2)
    assert result.status is ImportStatus.CANONICAL
    # a1 is orphaned by whichever import made b's branch canonical
    switched = result if first.status is ImportStatus.SIDE else first
    assert switched.is_reorg and [blk.hash() for blk in switched.disconnected] == [a1.hash()]
    assert a.canonical == b.canonical
    assert a.account(ALICE.public_key) == Account(10_000, 0)
    assert a.account(BOB.public_key) == Account(9_993, 1)
    assert a.find_transaction(a1.transactions[0].tx_id()) is None
    assert a.state.root() == b.state.root()


def test_equal_height_tie_goes_to_lower_hash(tmp_path: Path) -> None:
    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    a1, b1 = grow(a, V1), grow(b, V2)
    low, high = sorted((a1, b1), key=lambda blk: blk.hash())
    for chain in (a, b):
        chain.import_block(a1 if chain is b else b1)
        assert chain.tip_hash == low.hash()
    assert high.hash() in a.records and high.hash() in b.records


def test_reload_from_disk_restores_chain_state_and_side_blocks(tmp_path: Path) -> None:
    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    grow(a, V1, pay(ALICE, 100, 0))
    grow(a, V1, pay(ALICE, 50, 1))
    side = grow(b, V2)
    a.import_block(side)
    canonical, root = list(a.canonical), a.state.root()
    a.store.close()
    again = open_chain(tmp_path / "a")
    assert again.canonical == canonical and again.state.root() == root
    assert side.hash() in again.records
    assert again.account(ALICE.public_key) == Account(9_850, 2)


def test_data_dir_of_another_genesis_is_refused(tmp_path: Path) -> None:
    open_chain(tmp_path / "a", timestamp=1000).store.close()
    with pytest.raises(
        DevnetError, match=r"holds a chain with genesis [0-9a-f]{16}.*empty data_dir"
    ):
        open_chain(tmp_path / "a", timestamp=1001)


def test_failed_switch_restores_the_old_branch(tmp_path: Path) -> None:
    a, b = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    grow(a, V1, pay(ALICE, 100, 0))
    b1 = grow(b, V2)
    # A child of b1 that is structurally fine but lies about its state root.
    bad = make_block(V2, b1.header, [], bytes(32), 3000)
    a.import_block(b1)
    before = (list(a.canonical), a.state.root())
    result = a.import_block(bad)
    assert result.status is ImportStatus.INVALID and "state_root" in result.error
    assert (a.canonical, a.state.root()) == before
    child = make_block(V2, bad.header, [], bytes(32), 3001)
    assert a.import_block(child).status is ImportStatus.ORPHAN  # bad was never stored


def test_every_stored_block_gets_one_arrival_record_in_its_own_commit(tmp_path: Path) -> None:
    """Canonical, side and reorging imports are recorded (with their tx ids and how they came);
    known, orphan and invalid ones are not; the record is in the database the block is in."""
    times = iter(float(t) for t in range(100, 200))
    names = {V1.public_key: "v1"}
    a = Chain(
        ChainStore(tmp_path / "a"), genesis_block(NETWORK, 1000, ALLOC), ALLOC, REWARD, 10,
        SignatureCache(), producer_name=lambda key: names.get(key, key.hex()),
        produced_unix_s=lambda header: header.timestamp + 0.5, clock=lambda: next(times),
    )  # fmt: skip
    b = open_chain(tmp_path / "b")
    a1 = grow(a, V1, pay(ALICE, 100, 0), timestamp=2000)
    b1 = grow(b, V2, pay(BOB, 7, 0), timestamp=2001)
    b2 = grow(b, V2, timestamp=2004)
    assert a.import_block(b2, via=VIA_ORPHAN).status is ImportStatus.ORPHAN
    side = a.import_block(b1, via=VIA_SYNC)
    reorg = a.import_block(b2, via=VIA_SYNC)
    assert a.import_block(b2).status is ImportStatus.KNOWN
    forged = replace(pay(ALICE, 1, 1), signature=bytes(64))
    bad = make_block(V1, a.tip.header, [forged], bytes(32), 2005)
    assert a.import_block(bad).status is ImportStatus.INVALID
    a.store.close()

    records = read_arrivals(tmp_path / "a")
    hashes = [r.block_hash for r in records]
    assert hashes == [a1.hash(), b1.hash(), b2.hash()]  # in arrival order
    own, first, second = records
    assert (side.arrival_unix_s, reorg.arrival_unix_s) == (first.arrival_unix_s, 102.0)
    assert own == BlockArrival(
        a1.hash(), 1, a1.header.prev_hash, "v1", 2000.5, 1, len(a1.encode()), VIA_GOSSIP, 100.0
    )
    assert (first.producer, first.via, first.height) == (V2.public_key.hex(), VIA_SYNC, 1)
    assert (second.parent_hash, second.tx_count) == (b1.hash(), 0)
    tx_ids = read_tx_ids(tmp_path / "a", [b1.hash(), b2.hash(), bytes(32)])
    assert tx_ids == {b1.hash(): [b1.transactions[0].tx_id()], b2.hash(): []}
    with pytest.raises(ProtocolError, match="no chain database"):
        read_arrivals(tmp_path / "absent")
