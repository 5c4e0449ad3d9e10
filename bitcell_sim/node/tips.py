"""What peers say about their chains: a claimed tip is a hint until the peer serves blocks.

``PeerTips`` keeps each peer's last claimed tip; a claim is *credible* (counts for "syncing")
if this node holds that block, if the peer's last answer brought blocks, or if it is fresh and
the peer has not failed a request lately. ``sync_target`` picks whom to ask (credible claims
first); ``heard`` is the set of peers heard since start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bitcell_sim.protocol.consensus import ChainTip, is_better

#: How long a fresh claim is believed before its peer has served anything (a sync timeout).
BENEFIT_S = 5.0
#: How long a failed request, or served blocks, is remembered about a peer.
MEMORY_S = 30.0


@dataclass
class _Claim:
    tip: ChainTip
    claimed_s: float


class PeerTips:
    """Claimed tips of the peers, and how far to believe them (see the module docstring)."""

    def __init__(self, benefit_s: float = BENEFIT_S, memory_s: float = MEMORY_S) -> None:
        self.benefit_s = benefit_s
        self.memory_s = memory_s
        self._claims: dict[str, _Claim] = {}
        self._served_s: dict[str, float] = {}
        self._failed_s: dict[str, float] = {}
        self.heard: set[str] = set()

    def claim(self, peer: str, tip: ChainTip, now_s: float, *, replace: bool = True) -> None:
        """``peer`` says its best tip is ``tip`` (``replace`` False: only if it is better)."""
        self.heard.add(peer)
        current = self._claims.get(peer)
        if replace or current is None or is_better(tip, current.tip):
            self._claims[peer] = _Claim(tip, now_s)

    def served(self, peer: str, now_s: float) -> None:
        """``peer`` delivered blocks this node accepted."""
        self._served_s[peer] = now_s

    def failed(self, peer: str, now_s: float) -> None:
        """A request to ``peer`` brought nothing usable: drop its claim, doubt the next."""
        self._failed_s[peer] = now_s
        self._claims.pop(peer, None)

    def forget(self, peer: str) -> None:
        self._claims.pop(peer, None)

    def tip(self, peer: str) -> ChainTip | None:
        claim = self._claims.get(peer)
        return None if claim is None else claim.tip

    def credible(self, peer: str, now_s: float, holds: Callable[[bytes], bool]) -> bool:
        claim = self._claims.get(peer)
        if claim is None:
            return False
        if holds(claim.tip.block_hash):
            return True
        failed_s = self._failed_s.get(peer)
        served_s = self._served_s.get(peer)
        recent_failure = failed_s is not None and now_s - failed_s < self.memory_s
        if (
            served_s is not None
            and now_s - served_s < self.memory_s
            and (failed_s is None or served_s >= failed_s)
        ):
            return True
        return now_s - claim.claimed_s < self.benefit_s and not recent_failure

    def best_height(self, now_s: float, holds: Callable[[bytes], bool]) -> int:
        """The best credible claimed height (0 if none)."""
        return max(
            (c.tip.height for p, c in self._claims.items() if self.credible(p, now_s, holds)),
            default=0,
        )

    def sync_target(
        self,
        ours: ChainTip,
        now_s: float,
        holds: Callable[[bytes], bool],
        reachable: Iterable[str],
    ) -> tuple[str, ChainTip] | None:
        """The peer to ask for blocks: the best claim better than ``ours`` that this node does
        not hold, among ``reachable`` peers; credible claims first."""
        best: tuple[bool, str, ChainTip] | None = None
        for peer in reachable:
            claim = self._claims.get(peer)
            if claim is None or holds(claim.tip.block_hash) or not is_better(claim.tip, ours):
                continue
            credible = self.credible(peer, now_s, holds)
            if (
                best is None
                or (credible and not best[0])
                or (credible == best[0] and is_better(claim.tip, best[2]))
            ):
                best = (credible, peer, claim.tip)
        return None if best is None else (best[1], best[2])
