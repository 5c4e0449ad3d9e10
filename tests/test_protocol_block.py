"""Blocks: header layout and hash, full-block bincode, signing, validation, genesis, JSON."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import pytest

from bitcell_sim.protocol.bincode import UNEXPECTED_EOF, Writer
from bitcell_sim.protocol.block import (
    GAS_LIMIT,
    LOGS_BLOOM,
    RECEIPTS_ROOT,
    SHA3_UNCLES,
    BattleProof,
    Block,
    BlockHeader,
    FinalityStatus,
    FinalityVote,
    VoteType,
    block_json,
    genesis_block,
    make_block,
    transaction_json,
    tx_root,
    validate_block,
)
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import Transaction, sign_transaction
from bitcell_sim.protocol.vrf import vrf_input_for, vrf_prove, vrf_verify

PROPOSER = KeyPair.from_seed("validator-1")
OTHER = KeyPair.from_seed("validator-2")
TO = KeyPair.from_seed("recipient").public_key
GENESIS = genesis_block("bitcell-devnet", 1_700_000_000)


def txs(n: int) -> list[Transaction]:
    return [sign_transaction(KeyPair.from_seed(f"s{i}"), TO, 0, 21000, 10 + i) for i in range(n)]


def child(parent: BlockHeader, transactions: list[Transaction], ts: int = 1_700_000_015) -> Block:
    return make_block(PROPOSER, parent, transactions, state_root=b"\x07" * 32, timestamp=ts)


def test_header_layout_and_hash() -> None:
    h = BlockHeader(
        height=1,
        prev_hash=b"\x01" * 32,
        tx_root=b"\x02" * 32,
        state_root=b"\x03" * 32,
        timestamp=1234567890,
        proposer=PROPOSER.public_key,
        vrf_output=b"\x04" * 32,
        vrf_proof=b"\xaa\xbb",
        work=1000,
    )
    expected = (
        (1).to_bytes(8, "little")
        + b"\x01" * 32
        + b"\x02" * 32
        + b"\x03" * 32
        + (1234567890).to_bytes(8, "little")
        + (33).to_bytes(8, "little")
        + PROPOSER.public_key
        + b"\x04" * 32
        + (2).to_bytes(8, "little")
        + b"\xaa\xbb"
        + (1000).to_bytes(8, "little")
    )
    assert h.encode() == expected
    assert h.hash() == hashlib.sha256(expected).digest()


def test_empty_block_layout() -> None:
    raw = GENESIS.encode()
    header = GENESIS.header.encode()
    assert raw == (
        header
        + bytes(8)  # no transactions
        + bytes(8)  # no battle proofs
        + (64).to_bytes(8, "little")
        + GENESIS.signature
        + bytes(8)  # no finality votes
        + bytes(4)  # Pending
    )
    assert GENESIS.size_bytes == len(raw) == len(header) + 8 + 8 + 72 + 8 + 4


def test_block_round_trip_with_everything() -> None:
    vote = FinalityVote(b"\x09" * 32, 3, VoteType.PRECOMMIT, 2, OTHER.public_key, b"\x01" * 64)
    proof = BattleProof(PROPOSER.public_key, OTHER.public_key, OTHER.public_key, b"p", b"ii")
    block = replace(
        child(GENESIS.header, txs(3)),
        battle_proofs=(proof,),
        finality_votes=(vote,),
        finality_status=FinalityStatus.FINALIZED,
    )
    raw = block.encode()
    assert Block.decode(raw + b"junk") == block
    assert raw[-4:] == (2).to_bytes(4, "little")


def test_transactions_are_embedded_verbatim() -> None:
    t = txs(2)
    block = child(GENESIS.header, t)
    raw = block.encode()
    offset = len(block.header.encode())
    assert raw[offset : offset + 8] == (2).to_bytes(8, "little")
    assert raw[offset + 8 : offset + 8 + 2 * 194] == t[0].encode() + t[1].encode()
    w = Writer()
    block.write(w)
    assert w.getvalue() == raw


@pytest.mark.parametrize("cut", [0, 10, 200, 350, 400])
def test_truncated_block(cut: int) -> None:
    raw = child(GENESIS.header, txs(1)).encode()
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        Block.decode(raw[:cut])


def test_bad_finality_status() -> None:
    raw = GENESIS.encode()[:-4] + (3).to_bytes(4, "little")
    with pytest.raises(DecodeError, match=r"integer `3`, expected variant index 0 <= i < 3"):
        Block.decode(raw)


def test_huge_vec_count_is_eof_not_allocation() -> None:
    header = GENESIS.header.encode()
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        Block.decode(header + (2**60).to_bytes(8, "little"))


def test_tx_root() -> None:
    assert tx_root([]) == bytes(32)
    t = txs(3)
    assert tx_root(t) == hashlib.sha256(b"".join(x.tx_id() for x in t)).digest()


def test_genesis_is_shared_and_deterministic() -> None:
    again = genesis_block("bitcell-devnet", 1_700_000_000)
    assert again.encode() == GENESIS.encode()
    assert again.hash() == GENESIS.hash()
    assert GENESIS.height == 0
    assert GENESIS.header.prev_hash == bytes(32)
    assert GENESIS.verify_signature()
    assert genesis_block("other-net", 1_700_000_000).hash() != GENESIS.hash()
    assert genesis_block("bitcell-devnet", 1_700_000_001).hash() != GENESIS.hash()


def test_make_and_validate_chain() -> None:
    b1 = child(GENESIS.header, txs(2))
    validate_block(b1, GENESIS.header)
    assert b1.header.prev_hash == GENESIS.hash()
    assert vrf_input_for(GENESIS.header) == GENESIS.hash()
    b2 = make_block(OTHER, b1.header, [], bytes(32), 1_700_000_030)
    validate_block(b2, b1.header)
    assert vrf_input_for(b1.header) == b1.header.vrf_output
    assert b2.header.tx_root == bytes(32)


def _resign(block: Block, header: BlockHeader, key: KeyPair = PROPOSER) -> Block:
    return replace(block, header=header, signature=key.sign(header.hash()))


def test_validation_failures_name_the_fault() -> None:
    t = txs(2)
    b1 = child(GENESIS.header, t)
    cases: list[tuple[Block, str]] = [
        (_resign(b1, replace(b1.header, height=2)), "block height 2 does not follow parent 0"),
        (_resign(b1, replace(b1.header, prev_hash=b"\x01" * 32)), "prev_hash 0101"),
        (replace(b1, signature=OTHER.sign(b1.hash())), "invalid proposer signature"),
        (_resign(b1, replace(b1.header, vrf_output=b"\x05" * 32)), "invalid VRF output"),
        (_resign(b1, replace(b1.header, tx_root=bytes(32))), "does not match its txs"),
        (replace(b1, transactions=(t[0], replace(t[1], amount=5))), "tx_root"),
    ]
    bad_tx = replace(t[1], amount=5)
    forged = _resign(b1, replace(b1.header, tx_root=tx_root([t[0], bad_tx])))
    cases.append((replace(forged, transactions=(t[0], bad_tx)), "tx 1 .* invalid signature"))
    for block, message in cases:
        with pytest.raises(ProtocolError, match=message):
            validate_block(block, GENESIS.header)
    with pytest.raises(ProtocolError, match="has 2 transactions, max 1"):
        validate_block(b1, GENESIS.header, max_txs=1)


def test_validation_checks_tx_signatures_with_the_given_verifier() -> None:
    t = txs(2)
    b1 = child(GENESIS.header, t)
    seen: list[Transaction] = []

    def accept(tx: Transaction) -> bool:
        seen.append(tx)
        return True

    validate_block(b1, GENESIS.header, verify=accept)
    assert seen == t
    message = f"block 1 tx 0 ({t[0].tx_id().hex()}) has an invalid signature"
    with pytest.raises(ProtocolError, match=re.escape(message)):
        validate_block(b1, GENESIS.header, verify=lambda tx: False)


def test_vrf() -> None:
    out, proof = vrf_prove(PROPOSER, b"input")
    assert vrf_verify(PROPOSER.public_key, b"input", out, proof)
    assert not vrf_verify(OTHER.public_key, b"input", out, proof)
    assert not vrf_verify(PROPOSER.public_key, b"other", out, proof)
    assert not vrf_verify(PROPOSER.public_key, b"input", bytes(32), proof)
    assert not vrf_verify(PROPOSER.public_key, b"input", out, proof[:63])
    assert vrf_prove(PROPOSER, b"input") == (out, proof)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("height", -1, "height=-1 is not a u64"),
        ("prev_hash", bytes(31), "prev_hash must be 32 bytes, got 31"),
        ("proposer", bytes(32), "proposer must be 33 bytes, got 32"),
    ],
)
def test_header_field_checks(field: str, value: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        replace(GENESIS.header, **{field: value})  # type: ignore[arg-type]


def test_block_json_hash_only() -> None:
    t = txs(2)
    b = child(GENESIS.header, t)
    obj = block_json(b)
    assert list(obj) == sorted(obj)
    assert obj["number"] == "0x1"
    assert obj["hash"] == "0x" + b.hash().hex()
    assert obj["parentHash"] == "0x" + GENESIS.hash().hex()
    assert obj["nonce"] == "0x0000000000000000"
    assert obj["sha3Uncles"] == SHA3_UNCLES
    assert SHA3_UNCLES == "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
    assert obj["receiptsRoot"] == RECEIPTS_ROOT
    assert RECEIPTS_ROOT == "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    assert obj["logsBloom"] == LOGS_BLOOM == "0x" + "0" * 512
    assert obj["miner"] == "0x" + PROPOSER.public_key.hex()
    assert obj["difficulty"] == "0x1"
    assert obj["totalDifficulty"] == "0x1"
    assert obj["extraData"] == "0x"
    assert obj["size"] == hex(len(b.encode()))
    assert obj["gasLimit"] == GAS_LIMIT == "0x1fffffffffffff"
    assert obj["gasUsed"] == "0x0"
    assert obj["timestamp"] == hex(1_700_000_015)
    assert obj["transactions"] == ["0x" + x.tx_id().hex() for x in t]
    assert obj["uncles"] == []
    assert obj["vrfOutput"] == "0x" + b.header.vrf_output.hex()
    assert obj["battleProofsCount"] == 0
    assert obj["stateRoot"] == "0x" + "07" * 32
    assert obj["transactionsRoot"] == "0x" + tx_root(t).hex()
    assert len(obj) == 21


def test_block_json_full_and_tx_json() -> None:
    t = sign_transaction(
        KeyPair.from_seed("a"), TO, 1000, 21000, 1_000_000_000, nonce=7, data=b"\xde\xad"
    )
    b = replace(
        child(GENESIS.header, []), header=replace(child(GENESIS.header, []).header, work=255)
    )
    full = block_json(make_block(PROPOSER, b.header, [t], bytes(32), 1), full_transactions=True)
    assert block_json(b)["nonce"] == "0x00000000000000ff"
    (obj,) = full["transactions"]
    assert obj == {
        "blockHash": full["hash"],
        "blockNumber": "0x2",
        "from": "0x" + t.sender.hex(),
        "gas": "0x5208",
        "gasPrice": "0x3b9aca00",
        "hash": "0x" + t.tx_id().hex(),
        "input": "0xdead",
        "nonce": "0x7",
        "to": "0x" + TO.hex(),
        "transactionIndex": "0x0",
        "value": "0x3e8",
    }
    assert transaction_json(t, b"\x01" * 32, 9, 3)["transactionIndex"] == "0x3"


def test_genesis_allocations() -> None:
    from bitcell_sim.protocol.account import Account, state_root
    from bitcell_sim.protocol.block import genesis_accounts

    alloc = {KeyPair.from_seed("s0").public_key: 10**12, KeyPair.from_seed("s1").public_key: 5}
    funded = genesis_block("bitcell-devnet", 1_700_000_000, alloc)
    accounts = genesis_accounts(alloc)
    assert accounts == {k: Account(v, 0) for k, v in alloc.items()}
    assert funded.header.state_root == state_root(accounts) != bytes(32)
    assert funded.hash() != GENESIS.hash()
    assert genesis_block("bitcell-devnet", 1_700_000_000, dict(reversed(alloc.items()))) == funded
    assert genesis_block("bitcell-devnet", 1_700_000_000, {}).hash() == GENESIS.hash()
    with pytest.raises(ProtocolError, match="allocated key must be 33 bytes, got 3"):
        genesis_accounts({b"abc": 1})
    with pytest.raises(ProtocolError, match="allocated balance=-1 is not a u64"):
        genesis_accounts({PROPOSER.public_key: -1})
