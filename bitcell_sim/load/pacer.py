"""Open-loop pacing: the topology's arrival schedule, handed out in due order.

A :class:`Pacer` holds one process's share of the :class:`~bitcell_sim.topology.Arrivals` (rank
*i* of *n* takes txs *i*, *i* + *n*, ...) as :class:`Slot`\\ s (schedule index, due time on the load
timeline, target node, gas price). Any user takes the next due slot (``take``) and sends it to
the slot's node, so a slow node delays the users busy with it, never the schedule nor another
node's share; a user stopped before sending gives its slot back (``give_back``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from bitcell_sim.errors import LoadError
from bitcell_sim.topology import Arrivals


@dataclass(frozen=True, order=True, slots=True)
class Slot:
    """Scheduled tx ``index``: due ``due_s`` load seconds after the run starts, to ``node``."""

    due_s: float
    index: int
    node: str
    gas_price: int


class Pacer:
    """The slots of the process of ``rank`` among ``count``; ``origin_s`` is load time 0 on the
    schedule's clock (the workload's start, in seconds since genesis)."""

    def __init__(self, arrivals: Arrivals, origin_s: float, rank: int = 0, count: int = 1) -> None:
        if count < 1 or not 0 <= rank < count:
            raise LoadError(f"process rank {rank} of {count} is out of range")
        self._arrivals = arrivals
        self._origin_s = origin_s
        self._mine = range(rank, len(arrivals), count)
        self._next = 0
        self._returned: list[Slot] = []
        self.taken = 0

    def __len__(self) -> int:
        """Slots in this process's share."""
        return len(self._mine)

    def due_s(self) -> list[float]:
        """Every slot's due time (load seconds), in order."""
        return (
            self._arrivals.submit_s[self._mine.start :: self._mine.step] - self._origin_s
        ).tolist()

    def _slot(self, position: int) -> Slot:
        i = self._mine[position]
        a = self._arrivals
        return Slot(
            float(a.submit_s[i]) - self._origin_s, i, a.nodes[a.node[i]], int(a.gas_price[i])
        )

    def take(self) -> Slot | None:
        """The next due slot, or None when the share is exhausted."""
        upcoming = self._slot(self._next) if self._next < len(self._mine) else None
        if self._returned and (upcoming is None or self._returned[0] <= upcoming):
            slot = heapq.heappop(self._returned)
        elif upcoming is None:
            return None
        else:
            slot = upcoming
            self._next += 1
        self.taken += 1
        return slot

    def give_back(self, slot: Slot) -> None:
        """Return an unused slot; the next ``take`` hands it out first."""
        heapq.heappush(self._returned, slot)
        self.taken -= 1

    def exhausted(self) -> bool:
        return self._next >= len(self._mine) and not self._returned
