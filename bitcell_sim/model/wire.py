"""Wire sizes of the messages the model sends, measured from the protocol's own encoders.

:func:`wire_sizes` returns a :class:`WireSizes` (bytes on the wire, frame header included) for a
given transaction size: block bytes (:meth:`WireSizes.block_bytes`, the ``size_bytes`` of a
block record) and the frames of blocks, tx batches, commitments, reveals, status and sync
messages. The numbers come from :mod:`bitcell_sim.protocol.p2p`, so the model and the devnet
carry the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bitcell_sim.protocol import block as protocol_block
from bitcell_sim.protocol import p2p
from bitcell_sim.protocol.consensus import GLIDER_PATTERNS
from bitcell_sim.protocol.keys import KeyPair

#: Length prefix (u32) plus message variant (u32) in front of every P2P payload.
FRAME_OVERHEAD_BYTES = 8


@dataclass(frozen=True)
class WireSizes:
    """Sizes in bytes of everything the model puts on a link."""

    tx_bytes: int
    empty_block_bytes: int
    commitment_frame_bytes: int
    reveal_frame_bytes: int
    status_frame_bytes: int
    get_blocks_frame_bytes: int
    blocks_frame_overhead_bytes: int

    def block_bytes(self, tx_count: int) -> int:
        """Bincode size of a block holding ``tx_count`` transactions."""
        return self.empty_block_bytes + tx_count * self.tx_bytes

    def block_frame_bytes(self, tx_count: int) -> int:
        return FRAME_OVERHEAD_BYTES + self.block_bytes(tx_count)

    @property
    def tx_frame_bytes(self) -> int:
        return FRAME_OVERHEAD_BYTES + self.tx_bytes


@cache
def _protocol_sizes() -> tuple[int, int, int, int, int, int]:
    key = KeyPair.from_seed("bitcell-sim/wire-sizes")
    genesis = protocol_block.genesis_block("wire-sizes", 0)
    empty = protocol_block.make_block(key, genesis.header, [], bytes(32), 1)
    commitment = p2p.Commitment.create(key, 1, bytes(32), bytes(32))
    reveal = p2p.Reveal.create(key, 1, bytes(32), bytes(32), GLIDER_PATTERNS[0])
    return (
        empty.size_bytes,
        len(p2p.encode_frame(commitment)),
        len(p2p.encode_frame(reveal)),
        len(p2p.encode_frame(p2p.Status(1, bytes(32)))),
        len(p2p.encode_frame(p2p.GetBlocks(1, 100))),
        len(p2p.encode_frame(p2p.Blocks(()))),
    )


def wire_sizes(tx_size_bytes: int) -> WireSizes:
    """The message sizes for transactions of ``tx_size_bytes`` (194 + data length)."""
    empty, commitment, reveal, status, get_blocks, blocks = _protocol_sizes()
    return WireSizes(
        tx_bytes=tx_size_bytes,
        empty_block_bytes=empty,
        commitment_frame_bytes=commitment,
        reveal_frame_bytes=reveal,
        status_frame_bytes=status,
        get_blocks_frame_bytes=get_blocks,
        blocks_frame_overhead_bytes=blocks,
    )
