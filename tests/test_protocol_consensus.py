"""Shared consensus rules: round schedule, winner, fork choice, pool order, commitments."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcell_sim.protocol.consensus import (
    GLIDER_PATTERNS,
    ChainTip,
    Phase,
    RoundSchedule,
    commitment_hash,
    fork_choice_key,
    is_better,
    pool_priority,
    prefer,
    ticket,
    winner,
)
from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.keys import KeyPair

KEYS = [KeyPair.from_seed(f"v{i}").public_key for i in range(7)]


def test_phases_of_default_round() -> None:
    s = RoundSchedule(genesis_time_s=1000.0)
    assert s.round_s == 15.0
    assert s.phase_at(999.9) == (-1, Phase.IDLE, -math.inf, 1000.0)
    assert s.phase_at(1000.0) == (0, Phase.COMMIT, 1000.0, 1005.0)
    assert s.phase_at(1004.999) == (0, Phase.COMMIT, 1000.0, 1005.0)
    assert s.phase_at(1005.0) == (0, Phase.REVEAL, 1005.0, 1010.0)
    assert s.phase_at(1010.0) == (0, Phase.BATTLE, 1010.0, 1015.0)
    assert s.phase_at(1015.0) == (1, Phase.COMMIT, 1015.0, 1020.0)
    assert s.round_start(4) == 1060.0
    assert s.reveal_deadline(4) == 1070.0


def test_unequal_phases() -> None:
    s = RoundSchedule(0.0, commit_s=1.0, reveal_s=0.5, battle_s=0.25)
    assert s.phase_at(1.6).phase is Phase.BATTLE
    assert s.phase_at(1.75) == (1, Phase.COMMIT, 1.75, 2.75)


@given(
    st.floats(0, 1e9, allow_nan=False),
    st.floats(0.01, 100),
    st.floats(0.01, 100),
    st.floats(0.01, 100),
    st.floats(0, 1e6),
)
def test_phase_window_contains_t(g: float, c: float, r: float, b: float, dt: float) -> None:
    s = RoundSchedule(g, c, r, b)
    t = g + dt
    w = s.phase_at(t)
    assert w.start_s <= t < w.end_s
    assert w.round_index >= 0
    assert s.round_start(w.round_index) <= t


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"commit_s": 0.0}, r"commit_s\(=0.0\) must be > 0"),
        ({"reveal_s": -1.0}, r"reveal_s\(=-1.0\) must be > 0"),
        ({"battle_s": math.nan}, r"battle_s\(=nan\) must be > 0"),
        ({"genesis_time_s": math.inf}, "genesis_time_s"),
    ],
)
def test_schedule_validation(kwargs: dict[str, float], message: str) -> None:
    args = {"genesis_time_s": 0.0, **kwargs}
    with pytest.raises(ProtocolError, match=message):
        RoundSchedule(**args)


def test_round_start_negative() -> None:
    with pytest.raises(ProtocolError, match=r"round_index\(=-1\) must be >= 0"):
        RoundSchedule(0.0).round_start(-1)


def test_winner_is_min_ticket_and_order_free() -> None:
    prev = hashlib.sha256(b"block").digest()
    expected = min(KEYS, key=lambda k: hashlib.sha256(prev + k).digest())
    assert winner(prev, KEYS) == expected
    assert winner(prev, reversed(KEYS)) == expected
    assert ticket(prev, expected) == hashlib.sha256(prev + expected).digest()


def test_winner_changes_with_parent_and_reveal_set() -> None:
    winners = {winner(hashlib.sha256(bytes([i])).digest(), KEYS) for i in range(40)}
    assert len(winners) > 3  # the role rotates among validators
    prev = hashlib.sha256(b"x").digest()
    w = winner(prev, KEYS)
    assert winner(prev, [k for k in KEYS if k != w]) != w  # a late reveal changes the winner
    assert winner(prev, [KEYS[3]]) == KEYS[3]


def test_winner_needs_someone() -> None:
    with pytest.raises(ProtocolError, match="at least one revealer"):
        winner(bytes(32), [])


def test_fork_choice() -> None:
    low = ChainTip(5, b"\x01" * 32)
    high = ChainTip(5, b"\x02" * 32)
    longer = ChainTip(6, b"\xff" * 32)
    assert prefer(low, high) == low
    assert prefer(high, low) == low
    assert prefer(low, longer) == longer
    assert is_better(longer, low)
    assert not is_better(high, low)
    assert not is_better(low, low)
    assert min([high, longer, low], key=lambda t: fork_choice_key(*t)) == longer


def test_pool_priority_never_drops_ties() -> None:
    entries = [(5, 0), (9, 1), (5, 2), (9, 3), (5, 4)]
    ordered = sorted(entries, key=lambda e: pool_priority(*e))
    assert ordered == [(9, 1), (9, 3), (5, 0), (5, 2), (5, 4)]
    assert len({pool_priority(*e) for e in entries}) == len(entries)


def test_commitment_hash() -> None:
    miner = KEYS[0]
    h = commitment_hash(miner, b"\x01\x02", "Middleweight")
    assert h == hashlib.sha256(b"\x01\x02" + miner + b"\x02").digest()
    assert {commitment_hash(miner, b"", p) for p in GLIDER_PATTERNS}.__len__() == 4
    with pytest.raises(ProtocolError, match="unknown glider pattern 'Glider'"):
        commitment_hash(miner, b"", "Glider")
