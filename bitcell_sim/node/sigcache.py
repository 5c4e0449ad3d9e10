"""Signature checks done once per node: a bounded cache of transaction ids already verified.

``SignatureCache.verify(tx, tx_id=None)`` checks ``tx``'s signature over its signing hash the
first time it sees its id and answers from memory afterwards, so a tx admitted by RPC, received
by gossip and then included in a block costs one ECDSA verification on this node.
"""

from __future__ import annotations

from bitcell_sim.protocol.transaction import Transaction


class SignatureCache:
    """Ids of transactions whose signatures verified; the oldest are forgotten past ``limit``."""

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self._ok: dict[bytes, None] = {}
        self.verifications = 0

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._ok

    def verify(self, tx: Transaction, tx_id: bytes | None = None) -> bool:
        """``tx.verify_signature()``, once per id (``tx_id`` saves hashing ``tx`` again); fits
        the ``verify`` seam of ``protocol.block.validate_block`` and ``protocol.admission``."""
        if tx_id is None:
            tx_id = tx.tx_id()
        if tx_id in self._ok:
            return True
        self.verifications += 1
        if not tx.verify_signature():
            return False
        self._ok[tx_id] = None
        if len(self._ok) > self.limit:
            # dicts keep insertion order: drop the oldest tenth in one go.
            for old in list(self._ok)[: self.limit // 10]:
                del self._ok[old]
        return True
