"""The seed tree: ``general.seed`` as one numpy ``SeedSequence`` with a fixed place per stream.

:class:`SeedTree` names each stream by its path under the seed: the workload ``(0,)``, per
directed link *l* ``(2, l, 0)`` messages, ``(2, l, 1)`` tx batches and ``(2, l, 2)`` the
emulator's jitter (``Topology.directed_links`` order), ``(3,)`` the key of the model's
counter-based consensus-message jitter and ``(4,)`` that of its tx fanout choice (``(1, n)``
was a per-node stream and stays unused). A stream depends only on its path, so adding draws to
one never shifts another, in the model or on the devnet.
"""

from __future__ import annotations

import numpy as np

WORKLOAD = 0
LINKS = 2
CONSENSUS = 3
FANOUT = 4
LINK_MESSAGES = 0
LINK_BATCHES = 1
LINK_EMULATOR = 2


class SeedTree:
    """The random streams of the scenario seeded with ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def sequence(self, *path: int) -> np.random.SeedSequence:
        """The ``SeedSequence`` at ``path`` (the ``spawn`` child of the same path)."""
        return np.random.SeedSequence(self.seed, spawn_key=path)

    def generator(self, *path: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(self.sequence(*path)))

    def workload(self) -> np.random.Generator:
        return self.generator(WORKLOAD)

    def link_messages(self, index: int) -> np.random.Generator:
        return self.generator(LINKS, index, LINK_MESSAGES)

    def link_batches(self, index: int) -> np.random.Generator:
        return self.generator(LINKS, index, LINK_BATCHES)

    def emulator_seed(self, index: int) -> int:
        """The integer seed of directed link ``index``'s jitter in the link emulator."""
        state = self.sequence(LINKS, index, LINK_EMULATOR).generate_state(2, dtype=np.uint32)
        return int(state[0]) << 32 | int(state[1])

    def consensus_key(self) -> int:
        """The 64-bit key of the jitter of commitments and reveals (a hash of message and link)."""
        return int(self.sequence(CONSENSUS).generate_state(1, dtype=np.uint64)[0])

    def fanout_key(self) -> int:
        """The 64-bit key of the model's choice of peers per tx (``gossip.fanout`` > 0)."""
        return int(self.sequence(FANOUT).generate_state(1, dtype=np.uint64)[0])
