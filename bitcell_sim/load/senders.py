"""Who signs the load's transactions, with which nonce, and how each transaction is built.

:class:`TxFactory` builds and signs one transaction (the gas price its schedule slot gives,
``data`` padding the size to the topology's ``tx_size``). :class:`FreshSenders` gives
a new key per transaction (nonce 0: always admitted, also by a real node);
:class:`FundedSenders` rotates genesis-funded accounts, one transaction in flight per account,
the next nonce once the previous transaction is confirmed. Both hand out a :class:`Lease`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from bitcell_sim.errors import LoadError
from bitcell_sim.protocol.keys import KeyPair
from bitcell_sim.protocol.transaction import BASE_SIZE_BYTES, Transaction, sign_transaction

GAS_LIMIT = 21_000
_EXPECTED_NONCE = re.compile(r"Invalid nonce: expected (\d+), got \d+")


class TxFactory:
    """Signs transfers to ``recipient``, padded to ``tx_size_bytes``."""

    def __init__(
        self,
        recipient: bytes,
        tx_size_bytes: int = BASE_SIZE_BYTES,
        gas_limit: int = GAS_LIMIT,
    ) -> None:
        if tx_size_bytes < BASE_SIZE_BYTES:
            raise LoadError(f"tx_size_bytes(={tx_size_bytes}) must be >= {BASE_SIZE_BYTES}")
        self.recipient = recipient
        self.gas_limit = gas_limit
        self.data = bytes(tx_size_bytes - BASE_SIZE_BYTES)

    def build(self, keypair: KeyPair, nonce: int, amount: int, gas_price: int) -> Transaction:
        """The signed tx; ``gas_price`` comes from the schedule (the model's for this tx), and
        varying it keeps a real node from dropping same-second txs."""
        if gas_price <= 0:
            raise LoadError(f"gas_price(={gas_price}) must be > 0")
        return sign_transaction(
            keypair,
            self.recipient,
            amount=amount,
            gas_limit=self.gas_limit,
            gas_price=gas_price,
            nonce=nonce,
            data=self.data,
        )


@dataclass(slots=True)
class Lease:
    """A sender for one transaction: ``keypair``, its ``nonce`` (None: ask the node first)."""

    keypair: KeyPair
    nonce: int | None
    amount: int
    index: int = -1


class FreshSenders:
    """A new random key per transaction: nonce 0, amount 0 (an unknown sender needs no funds)."""

    kind = "fresh"

    def acquire(self) -> Lease:
        return Lease(KeyPair.generate(), nonce=0, amount=0)

    def set_nonce(self, lease: Lease, nonce: int) -> None:
        lease.nonce = nonce

    def accepted(self, lease: Lease, tx_id: str) -> None:
        return None

    def rejected(self, lease: Lease, message: str | None) -> None:
        return None

    def confirmed(self, tx_id: str) -> None:
        return None

    def unconfirmed(self, tx_id: str) -> None:
        return None

    def busy(self) -> int:
        return 0


class FundedSenders:
    """Genesis-funded accounts, one transaction in flight each, nonces tracked locally.

    ``acquire`` returns an idle account (None if all are busy); its nonce is None until the
    caller has asked the node (``eth_getTransactionCount``) and called ``set_nonce``. An
    accepted transaction keeps the account busy until ``confirmed`` (nonce + 1); a rejection
    frees it at once, taking the node's expected nonce from an "Invalid nonce" answer.
    """

    kind = "funded"

    def __init__(self, keypairs: Sequence[KeyPair], amount: int = 1) -> None:
        if not keypairs:
            raise LoadError("funded senders need at least one genesis-funded account")
        self.keypairs = list(keypairs)
        self.amount = amount
        self._nonces: list[int | None] = [None] * len(keypairs)
        self._idle: deque[int] = deque(range(len(keypairs)))
        self._in_flight: dict[str, int] = {}
        self._leased: set[int] = set()

    def acquire(self) -> Lease | None:
        if not self._idle:
            return None
        index = self._idle.popleft()
        self._leased.add(index)
        return Lease(self.keypairs[index], self._nonces[index], self.amount, index)

    def set_nonce(self, lease: Lease, nonce: int) -> None:
        self._nonces[lease.index] = nonce
        lease.nonce = nonce

    def accepted(self, lease: Lease, tx_id: str) -> None:
        self._in_flight[tx_id] = lease.index

    def rejected(self, lease: Lease, message: str | None) -> None:
        """Free the account; an "Invalid nonce: expected n" answer sets its nonce to n.

        ``message`` None means the outcome is unknown (no answer): ask the node again.
        """
        if message is None:
            self._nonces[lease.index] = None
        elif match := _EXPECTED_NONCE.search(message):
            self._nonces[lease.index] = int(match.group(1))
        self._release(lease.index)

    def confirmed(self, tx_id: str) -> None:
        index = self._in_flight.pop(tx_id, None)
        if index is None:
            return
        nonce = self._nonces[index]
        self._nonces[index] = None if nonce is None else nonce + 1
        self._release(index)

    def unconfirmed(self, tx_id: str) -> None:
        """A confirmed transaction went back to pending (its block was orphaned)."""
        return None

    def _release(self, index: int) -> None:
        if index in self._leased:
            self._leased.discard(index)
            self._idle.append(index)

    def busy(self) -> int:
        return len(self._leased)
