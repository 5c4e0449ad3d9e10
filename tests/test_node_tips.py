"""Claimed tips are hints: when a peer's claim counts, and whom to ask for blocks.

Pure ``PeerTips`` bookkeeping with an explicit clock; the real node is driven by a scripted
peer in test_node_sync.
"""

from __future__ import annotations

from bitcell_sim.node.tips import BENEFIT_S, MEMORY_S, PeerTips
from bitcell_sim.protocol.consensus import ChainTip

HELD = {b"\x01" * 32}
FAR = ChainTip(1000, b"\x07" * 32)
NEAR = ChainTip(12, b"\x08" * 32)
OURS = ChainTip(10, b"\x01" * 32)


def holds(block_hash: bytes) -> bool:
    return block_hash in HELD


def test_a_fresh_claim_is_believed_for_one_request_timeout() -> None:
    tips = PeerTips()
    tips.claim("b", FAR, now_s=100.0)
    assert tips.heard == {"b"}
    assert tips.best_height(100.0 + BENEFIT_S - 0.1, holds) == 1000
    assert tips.best_height(100.0 + BENEFIT_S + 0.1, holds) == 0  # never served: a hint only
    assert tips.sync_target(OURS, 200.0, holds, ["b"]) == ("b", FAR)  # still whom to ask


def test_a_failed_request_takes_the_benefit_of_the_doubt_away() -> None:
    tips = PeerTips()
    tips.claim("b", FAR, now_s=100.0)
    tips.failed("b", now_s=101.0)
    assert tips.tip("b") is None
    tips.claim("b", FAR, now_s=102.0)  # the same lie again, fresh
    assert tips.best_height(102.5, holds) == 0
    tips.served("b", now_s=103.0)  # until it serves blocks
    assert tips.best_height(103.5, holds) == 1000
    assert tips.best_height(103.0 + MEMORY_S + 1, holds) == 0
    tips.claim("b", FAR, now_s=103.0 + MEMORY_S + 1)  # the failure is forgotten too
    assert tips.best_height(103.0 + MEMORY_S + 2, holds) == 1000


def test_a_held_tip_always_counts_and_is_never_asked_for() -> None:
    tips = PeerTips()
    tips.claim("b", OURS, now_s=0.0)
    tips.failed("c", now_s=0.0)
    assert tips.best_height(1e6, holds) == 10
    assert tips.sync_target(ChainTip(5, b"\x02" * 32), 1e6, holds, ["b"]) is None


def test_credible_claims_are_asked_first_then_the_best() -> None:
    tips = PeerTips()
    tips.claim("liar", FAR, now_s=0.0)
    tips.failed("liar", now_s=1.0)
    tips.claim("liar", FAR, now_s=2.0)
    tips.claim("honest", NEAR, now_s=2.0)
    assert tips.sync_target(OURS, 2.5, holds, ["liar", "honest"]) == ("honest", NEAR)
    assert tips.sync_target(OURS, 2.5, holds, ["liar"]) == ("liar", FAR)
    assert tips.sync_target(OURS, 2.5, holds, []) is None
    tips.claim("honest", ChainTip(9, b"\x09" * 32), now_s=3.0)  # worse than ours
    assert tips.sync_target(OURS, 3.0, holds, ["honest"]) is None


def test_a_flooded_block_only_raises_a_claim() -> None:
    tips = PeerTips()
    tips.claim("b", NEAR, now_s=0.0)
    tips.claim("b", ChainTip(11, b"\x0a" * 32), now_s=0.0, replace=False)
    assert tips.tip("b") == NEAR
    tips.claim("b", ChainTip(11, b"\x0a" * 32), now_s=0.0)  # a Status replaces
    assert tips.tip("b") == ChainTip(11, b"\x0a" * 32)
