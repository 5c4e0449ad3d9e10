"""Account state: deterministic state root, the intended transfer rule, block rewards."""

from __future__ import annotations

import hashlib

from bitcell_sim.protocol.account import (
    INITIAL_BLOCK_REWARD,
    Account,
    apply_block,
    apply_transaction,
    block_reward,
    state_root,
)
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import sign_transaction

A = KeyPair.from_seed("a")
B = KeyPair.from_seed("b")


def test_state_root_empty_is_zero() -> None:
    assert state_root({}) == bytes(32)


def test_state_root_is_the_merkle_root_of_the_accounts_by_leaf() -> None:
    accounts = {B.public_key: Account(5, 1), A.public_key: Account(7, 0)}
    reordered = dict(reversed(list(accounts.items())))
    assert state_root(accounts) == state_root(reordered)

    def entry(key: bytes) -> bytes:
        account = accounts[key]
        return key + account.balance.to_bytes(8, "little") + account.nonce.to_bytes(8, "little")

    # Built by hand: each key in the leaf of its bytes 1-2, then four 16-ary levels up.
    level = {int.from_bytes(k[1:3], "big"): b"\x00" + entry(k) for k in sorted(accounts)}
    digests = {i: hashlib.sha256(body).digest() for i, body in level.items()}
    assert len(digests) == 2  # A and B fall in different leaves
    for _ in range(4):
        parents = {i >> 4 for i in digests}
        digests = {
            p: hashlib.sha256(
                b"\x01" + b"".join(digests.get(p * 16 + c, bytes(32)) for c in range(16))
            ).digest()
            for p in parents
        }
    assert state_root(accounts) == digests[0]
    assert state_root({A.public_key: Account(7, 1)}) != state_root({A.public_key: Account(7, 0)})
    assert state_root({}) == bytes(32)


def test_transfer_debits_credits_and_bumps_nonce() -> None:
    accounts = {A.public_key: Account(100, 0)}
    t = sign_transaction(A, B.public_key, 40, 21000, 1)
    assert apply_transaction(accounts, t)
    assert accounts == {A.public_key: Account(60, 1), B.public_key: Account(40, 0)}
    # Replaying the same nonce no longer applies.
    assert not apply_transaction(accounts, t)


def test_skips_unpayable_and_wrong_nonce() -> None:
    accounts = {A.public_key: Account(10, 0)}
    assert not apply_transaction(accounts, sign_transaction(A, B.public_key, 11, 21000, 1))
    assert not apply_transaction(accounts, sign_transaction(A, B.public_key, 1, 21000, 1, nonce=1))
    assert accounts == {A.public_key: Account(10, 0)}


def test_new_sender_with_zero_amount_applies() -> None:
    accounts: dict[bytes, Account] = {}
    assert apply_transaction(accounts, sign_transaction(A, B.public_key, 0, 21000, 1))
    assert accounts == {A.public_key: Account(0, 1), B.public_key: Account(0, 0)}


def test_self_transfer_bumps_nonce_only() -> None:
    accounts = {A.public_key: Account(10, 0)}
    assert apply_transaction(accounts, sign_transaction(A, A.public_key, 10, 21000, 1))
    assert accounts == {A.public_key: Account(10, 1)}


def test_block_reward_halves() -> None:
    assert block_reward(1) == INITIAL_BLOCK_REWARD == 5_000_000_000
    assert block_reward(209_999) == 5_000_000_000
    assert block_reward(210_000) == 2_500_000_000
    assert block_reward(210_000 * 64) == 0


def test_apply_block_rewards_proposer_after_txs() -> None:
    accounts = {A.public_key: Account(100, 0)}
    txs = [
        sign_transaction(A, B.public_key, 60, 21000, 1),
        sign_transaction(A, B.public_key, 60, 21000, 1, nonce=1),  # cannot pay any more
    ]
    applied = apply_block(accounts, txs, proposer=A.public_key, height=1)
    assert applied == [True, False]
    assert accounts[A.public_key] == Account(40 + INITIAL_BLOCK_REWARD, 1)
    assert accounts[B.public_key] == Account(60, 0)
