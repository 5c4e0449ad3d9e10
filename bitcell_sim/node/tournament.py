"""One node's view of the tournament: commitments and reveals received in time, per round.

``Tournament(schedule, validator_keys, keypair)`` makes this validator's signed ``Commitment``
and ``Reveal`` for a round (``own_messages``; the nonce is derived from the key, round and
parent, so a restart reproduces it), and files gossiped ones with ``offer_commitment`` /
``offer_reveal``: a commitment counts if it arrived before the end of its commit phase, a reveal
if it arrived before the end of its reveal phase and opens a counted commitment.
``participants(round)`` is the set ``consensus.winner`` chooses from (PROTOCOL.md §3).
"""

from __future__ import annotations

import hashlib
import struct
from enum import StrEnum

from bitcell_sim.protocol.consensus import RoundSchedule, commitment_hash
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.p2p import Commitment, Reveal

PATTERN = "Standard"
#: Rounds of commitments/reveals kept behind the current one.
KEEP_ROUNDS = 4


class Offer(StrEnum):
    """What became of a gossiped commitment or reveal."""

    COUNTED = "counted"  # new and in time: it counts (and is forwarded)
    LATE = "late"  # new but after its window: forwarded, does not count here
    DUPLICATE = "duplicate"  # seen before: dropped
    STALE = "stale"  # for a round long gone (or not yet begun): dropped
    REJECTED = "rejected"  # not a validator, bad signature, or does not open its commitment


class Tournament:
    """Commitments and reveals per round, judged against this node's clock."""

    def __init__(
        self, schedule: RoundSchedule, validator_keys: frozenset[bytes], keypair: KeyPair | None
    ) -> None:
        self.schedule = schedule
        self.validator_keys = validator_keys
        self.keypair = keypair
        self._commitments: dict[int, dict[bytes, Commitment]] = {}
        self._reveals: dict[int, dict[bytes, Reveal]] = {}
        self._seen: set[tuple[int, int, bytes, bytes]] = set()

    def own_messages(self, round_index: int, prev_hash: bytes) -> tuple[Commitment, Reveal]:
        """This validator's commitment and the reveal that opens it, for ``round_index``."""
        if self.keypair is None:
            raise ValueError("a node without a validator key makes no commitments")
        nonce = hashlib.sha256(
            self.keypair.secret + struct.pack("<Q", round_index) + prev_hash
        ).digest()[:16]
        value = commitment_hash(self.keypair.public_key, nonce, PATTERN)
        commitment = Commitment.create(self.keypair, round_index, prev_hash, value)
        reveal = Reveal.create(self.keypair, round_index, prev_hash, nonce, PATTERN)
        return commitment, reveal

    def _fresh(
        self, kind: int, round_index: int, miner: bytes, signature: bytes, now_s: float
    ) -> Offer | None:
        key = (kind, round_index, miner, signature)
        if key in self._seen:
            return Offer.DUPLICATE
        current = self.schedule.round_at(now_s)
        if not current - KEEP_ROUNDS <= round_index <= current + 1:
            return Offer.STALE
        if miner not in self.validator_keys:
            return Offer.REJECTED
        return None

    def offer_commitment(self, msg: Commitment, now_s: float, *, verified: bool = False) -> Offer:
        """File a commitment received at ``now_s`` (``verified``: our own, skip the check)."""
        outcome = self._fresh(0, msg.round_index, msg.miner, msg.signature, now_s)
        if outcome is not None:
            return outcome
        if not verified and not msg.verify():
            return Offer.REJECTED
        # Only a verified message is remembered: a forgery must not shadow the real one.
        self._seen.add((0, msg.round_index, msg.miner, msg.signature))
        commit_end = self.schedule.round_start(msg.round_index) + self.schedule.commit_s
        if now_s >= commit_end:
            return Offer.LATE
        self._commitments.setdefault(msg.round_index, {}).setdefault(msg.miner, msg)
        return Offer.COUNTED

    def offer_reveal(self, msg: Reveal, now_s: float, *, verified: bool = False) -> Offer:
        """File a reveal received at ``now_s``; it counts only if it opens a counted commitment."""
        outcome = self._fresh(1, msg.round_index, msg.miner, msg.signature, now_s)
        if outcome is not None:
            return outcome
        if not verified and not msg.verify():
            return Offer.REJECTED
        self._seen.add((1, msg.round_index, msg.miner, msg.signature))
        if now_s >= self.schedule.reveal_deadline(msg.round_index):
            return Offer.LATE
        commitment = self._commitments.get(msg.round_index, {}).get(msg.miner)
        if commitment is None or not msg.matches(commitment):
            # Forwarded anyway: a peer may hold the commitment we missed.
            return Offer.LATE
        self._reveals.setdefault(msg.round_index, {}).setdefault(msg.miner, msg)
        return Offer.COUNTED

    def participants(self, round_index: int) -> frozenset[bytes]:
        """Keys whose commitment and reveal for ``round_index`` both arrived in time."""
        return frozenset(self._reveals.get(round_index, {}))

    def prune(self, current_round: int) -> None:
        """Forget rounds older than ``KEEP_ROUNDS`` behind ``current_round``."""
        horizon = current_round - KEEP_ROUNDS
        for table in (self._commitments, self._reveals):
            for r in [r for r in table if r < horizon]:
                del table[r]
        self._seen = {k for k in self._seen if k[1] >= horizon}
