"""The consensus rules the model and the devnet share (PROTOCOL.md §3), all pure functions.

``RoundSchedule`` maps wall time to (round, phase); ``winner(prev_hash, revealers)`` is the key
minimising SHA-256(prev_hash ‖ key); ``fork_choice_key`` orders tips (longest, then lowest hash);
``pool_priority`` orders the pool; ``commitment_hash`` binds a reveal to its commitment;
``is_syncing`` is the lag (``SYNCING_LAG_BLOCKS``) at which a node stops committing and building.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from bitcell_sim.protocol.errors import ProtocolError

#: Glider patterns a reveal may name, in the node's enum order (``bitcell_submitReveal``).
GLIDER_PATTERNS = ("Standard", "Lightweight", "Middleweight", "Heavyweight")
#: A node more than this many blocks behind the best height it has heard of is syncing: it
#: makes no commitment, builds no block and answers /health with 503.
SYNCING_LAG_BLOCKS = 2


class Phase(StrEnum):
    """Tournament phases as ``bitcell_getTournamentState`` names them."""

    IDLE = "idle"
    COMMIT = "commit"
    REVEAL = "reveal"
    BATTLE = "battle"


class PhaseWindow(NamedTuple):
    """The phase holding a given instant: ``[start_s, end_s)`` of ``phase`` in ``round_index``."""

    round_index: int
    phase: Phase
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class RoundSchedule:
    """Rounds of commit, reveal and battle phases starting at ``genesis_time_s`` (Unix s).

    Round ``i`` starts at ``genesis_time_s + i * round_s``; before genesis the phase is idle.
    Nodes on one machine agree on phases without talking because this is all they use.
    """

    genesis_time_s: float
    commit_s: float = 5.0
    reveal_s: float = 5.0
    battle_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("commit_s", "reveal_s", "battle_s"):
            value = getattr(self, name)
            if not value > 0 or not math.isfinite(value):
                raise ProtocolError(f"RoundSchedule {name}(={value}) must be > 0")
        if not math.isfinite(self.genesis_time_s):
            raise ProtocolError(
                f"RoundSchedule genesis_time_s(={self.genesis_time_s}) is not finite"
            )

    @property
    def round_s(self) -> float:
        return self.commit_s + self.reveal_s + self.battle_s

    def round_start(self, round_index: int) -> float:
        if round_index < 0:
            raise ProtocolError(f"round_index(={round_index}) must be >= 0")
        return self.genesis_time_s + round_index * self.round_s

    def round_at(self, t_s: float) -> int:
        """Index of the round holding ``t_s`` (-1 before genesis)."""
        if t_s < self.genesis_time_s:
            return -1
        i = math.floor((t_s - self.genesis_time_s) / self.round_s)
        # Division can land one off at exact boundaries; settle on round_start(i) <= t < next.
        if self.round_start(i) > t_s:
            i -= 1
        elif self.round_start(i + 1) <= t_s:
            i += 1
        return i

    def phase_at(self, t_s: float) -> PhaseWindow:
        """The round, phase and phase bounds at ``t_s``."""
        i = self.round_at(t_s)
        if i < 0:
            return PhaseWindow(-1, Phase.IDLE, -math.inf, self.genesis_time_s)
        start = self.round_start(i)
        commit_end = start + self.commit_s
        reveal_end = commit_end + self.reveal_s
        if t_s < commit_end:
            return PhaseWindow(i, Phase.COMMIT, start, commit_end)
        if t_s < reveal_end:
            return PhaseWindow(i, Phase.REVEAL, commit_end, reveal_end)
        return PhaseWindow(i, Phase.BATTLE, reveal_end, self.round_start(i + 1))

    def reveal_deadline(self, round_index: int) -> float:
        """End of the reveal phase of ``round_index``: reveals after it do not count."""
        return self.round_start(round_index) + self.commit_s + self.reveal_s


def ticket(prev_hash: bytes, key: bytes) -> bytes:
    """A revealer's ticket for the round on top of ``prev_hash``: SHA-256(prev_hash ‖ key)."""
    return hashlib.sha256(prev_hash + key).digest()


def winner(prev_hash: bytes, revealer_keys: Iterable[bytes]) -> bytes:
    """The proposer among ``revealer_keys``: the key with the lowest ``ticket`` (then lowest key).

    Nodes holding different reveal sets may pick different winners: that is how forks arise.
    """
    best: tuple[bytes, bytes] | None = None
    for key in revealer_keys:
        candidate = (ticket(prev_hash, key), key)
        if best is None or candidate < best:
            best = candidate
    if best is None:
        raise ProtocolError("winner() needs at least one revealer key")
    return best[1]


class ChainTip(NamedTuple):
    height: int
    block_hash: bytes


def fork_choice_key(height: int, block_hash: bytes) -> tuple[int, bytes]:
    """Sort key of a tip: the preferred tip has the smallest key (longest, then lowest hash)."""
    return (-height, block_hash)


def is_better(candidate: ChainTip, current: ChainTip) -> bool:
    """True if ``candidate`` should replace ``current`` as the best tip."""
    return fork_choice_key(*candidate) < fork_choice_key(*current)


def prefer(tip_a: ChainTip, tip_b: ChainTip) -> ChainTip:
    """The preferred of two tips: longest chain, ties to the lower block hash."""
    return tip_b if is_better(tip_b, tip_a) else tip_a


def is_syncing(height: int, best_known_height: int) -> bool:
    """True if a node at ``height`` is more than ``SYNCING_LAG_BLOCKS`` behind the best height."""
    return height < best_known_height - SYNCING_LAG_BLOCKS


def pool_priority(gas_price: int, arrival_seq: int) -> tuple[int, int]:
    """Sort key of a pool entry: highest gas price first, then earliest arrival; never equal."""
    return (-gas_price, arrival_seq)


def commitment_hash(miner: bytes, nonce: bytes, pattern: str) -> bytes:
    """The commitment a reveal must match: SHA-256(nonce ‖ miner ‖ pattern index as one byte)."""
    try:
        index = GLIDER_PATTERNS.index(pattern)
    except ValueError:
        raise ProtocolError(f"unknown glider pattern {pattern!r}") from None
    return hashlib.sha256(nonce + miner + bytes((index,))).digest()
