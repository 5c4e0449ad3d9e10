"""Random streams: one seed, spawned into independent streams per workload, node and link.

:class:`Streams` turns ``general.seed`` into a numpy ``SeedSequence`` and spawns, in a fixed
order, the ``workload`` Generator, one Generator per node (``nodes``, for fanout choices), two
per directed link (``link_messages`` for blocks, sync and status messages; ``link_batches`` for
tx batches, indexed by batch tick) and ``consensus_key``, the 64-bit key of the counter-based
jitter of commitments and reveals. No stream is shared, so adding draws to one part of the
model never shifts another's.
"""

from __future__ import annotations

import numpy as np


def _generator(seed_sequence: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed_sequence))


class Streams:
    """The model's random streams for ``node_count`` nodes and ``link_count`` directed links."""

    def __init__(self, seed: int, node_count: int, link_count: int) -> None:
        root = np.random.SeedSequence(seed)
        # Spawned children depend only on their position: a fourth leaves the first three as
        # they were.
        workload, nodes, links, consensus = root.spawn(4)
        self.workload = _generator(workload)
        self.nodes = [_generator(s) for s in nodes.spawn(node_count)]
        per_link = [s.spawn(2) for s in links.spawn(link_count)]
        self.link_messages = [_generator(pair[0]) for pair in per_link]
        self.link_batches = [_generator(pair[1]) for pair in per_link]
        self.consensus_key = int(consensus.generate_state(1, np.uint64)[0])
