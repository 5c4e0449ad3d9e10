"""The node's ledger state: the incremental root equals the protocol's, blocks apply and revert."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitcell_sim.node.state import BlockNotApplicable, LedgerState, reward_at
from bitcell_sim.protocol.account import Account, state_root
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import sign_transaction

KEYS = [KeyPair.from_seed(f"state-{i}") for i in range(4)]


def funded(balance: int = 1000) -> LedgerState:
    state = LedgerState()
    for key in KEYS[:2]:
        state[key.public_key] = Account(balance, 0)
    return state


def test_empty_root_is_zero() -> None:
    assert LedgerState().root() == bytes(32) == state_root({})


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.binary(min_size=33, max_size=33),
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
        max_size=30,
    ),
    st.data(),
)
def test_root_matches_protocol_state_root(
    entries: dict[bytes, tuple[int, int]], data: st.DataObject
) -> None:
    state = LedgerState()
    for key, (balance, nonce) in entries.items():
        state[key] = Account(balance, nonce)
    if entries:
        for key in data.draw(st.lists(st.sampled_from(sorted(entries)), unique=True)):
            del state[key]
            del entries[key]
    expected = {k: Account(b, n) for k, (b, n) in entries.items()}
    assert state.root() == state_root(expected)
    assert dict(state.items()) == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=1), st.binary(min_size=30, max_size=30)),
        min_size=1,
        max_size=20,
        unique=True,
    ),
    st.integers(0, 2**64 - 1),
)
def test_root_tracks_writes_and_deletes_within_one_leaf(
    suffixes: list[tuple[bytes, bytes]], balance: int
) -> None:
    # Every key in the same leaf (equal bytes 1-2): the leaf's sorted entries must stay exact.
    keys = [parity + b"\xab\xcd" + rest for parity, rest in suffixes]
    state, expected = LedgerState(), {}
    for i, key in enumerate(keys):
        state[key] = expected[key] = Account(balance, i)
        assert state.root() == state_root(expected)
    for key in keys[::2]:
        del state[key]
        del expected[key]
        assert state.root() == state_root(expected)


def test_apply_block_moves_funds_and_credits_reward() -> None:
    state = funded()
    tx = sign_transaction(KEYS[0], KEYS[2].public_key, 300, 21000, 10**9, nonce=0)
    undo = state.apply_block([tx], KEYS[3].public_key, 50)
    assert state[KEYS[0].public_key] == Account(700, 1)
    assert state[KEYS[2].public_key] == Account(300, 0)
    assert state[KEYS[3].public_key] == Account(50, 0)
    before = funded()
    state.revert(undo)
    assert dict(state.items()) == dict(before.items())
    assert state.root() == before.root()


def test_block_with_an_inapplicable_tx_leaves_state_unchanged() -> None:
    state = funded()
    good = sign_transaction(KEYS[0], KEYS[2].public_key, 300, 21000, 10**9, nonce=0)
    replay = sign_transaction(KEYS[0], KEYS[2].public_key, 1, 21000, 10**9, nonce=0)
    root = state.root()
    with pytest.raises(BlockNotApplicable, match=r"tx 1 .* does not apply: nonce 0"):
        state.apply_block([good, replay], KEYS[3].public_key, 50)
    assert state.root() == root
    assert KEYS[2].public_key not in state


def test_reward_halves_every_210000_blocks() -> None:
    assert reward_at(5_000_000_000, 1) == 5_000_000_000
    assert reward_at(5_000_000_000, 210_000) == 2_500_000_000
    assert reward_at(7, 210_000 * 70) == 0
