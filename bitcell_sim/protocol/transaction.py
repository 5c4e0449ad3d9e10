"""The BitCell transaction: fields, bincode encoding, signing hash, id and signature.

``Transaction`` is frozen; ``encode()`` gives the 194 + len(data) byte raw form and
``Transaction.decode`` reads it back (trailing bytes ignored, as by bincode); both the encoding
and ``tx_id()`` (SHA-256 of it) are computed once per object. ``signing_hash()`` is what the
sender signs; ``sign_transaction`` builds and signs one in a single call.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from bitcell_sim.protocol import keys
from bitcell_sim.protocol.bincode import (
    PUBLIC_KEY_SIZE_BYTES,
    SIGNATURE_SIZE_BYTES,
    Reader,
    Writer,
    write_public_key,
    write_signature,
)
from bitcell_sim.protocol.errors import ProtocolError

#: Encoded size of a transaction with empty ``data``.
BASE_SIZE_BYTES = 194

_U64_MAX = (1 << 64) - 1
# nonce | len 33 | from | len 33 | to | amount | gas_limit | gas_price | len data
_HEAD = struct.Struct("<QQ33sQ33sQQQQ")
_SIG_PREFIX = struct.pack("<Q", SIGNATURE_SIZE_BYTES)
# nonce | from | to | amount | gas_limit | gas_price (no length prefixes)
_SIGNING_HEAD = struct.Struct("<Q33s33sQQQ")


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed transfer: ``sender``/``recipient`` are 33-byte keys, ``signature`` r‖s."""

    nonce: int
    sender: bytes
    recipient: bytes
    amount: int
    gas_limit: int
    gas_price: int
    data: bytes
    signature: bytes
    # Caches (not fields of the transaction): the encoding and the id, set when first needed.
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("nonce", "amount", "gas_limit", "gas_price"):
            value = getattr(self, name)
            if not 0 <= value <= _U64_MAX:
                raise ProtocolError(f"transaction {name}={value} is not a u64")
        if len(self.sender) != PUBLIC_KEY_SIZE_BYTES:
            raise ProtocolError(f"transaction sender must be 33 bytes, got {len(self.sender)}")
        if len(self.recipient) != PUBLIC_KEY_SIZE_BYTES:
            raise ProtocolError(
                f"transaction recipient must be 33 bytes, got {len(self.recipient)}"
            )
        if len(self.signature) != SIGNATURE_SIZE_BYTES:
            raise ProtocolError(
                f"transaction signature must be 64 bytes, got {len(self.signature)}"
            )

    @property
    def size_bytes(self) -> int:
        return BASE_SIZE_BYTES + len(self.data)

    def encode(self) -> bytes:
        """The bincode 1.x legacy encoding (what ``eth_sendRawTransaction`` takes)."""
        if self._raw is not None:
            return self._raw
        head = _HEAD.pack(
            self.nonce,
            PUBLIC_KEY_SIZE_BYTES,
            self.sender,
            PUBLIC_KEY_SIZE_BYTES,
            self.recipient,
            self.amount,
            self.gas_limit,
            self.gas_price,
            len(self.data),
        )
        raw = head + self.data + _SIG_PREFIX + self.signature
        object.__setattr__(self, "_raw", raw)
        return raw

    def write(self, writer: Writer) -> Writer:
        """Append this transaction to a bincode ``writer`` (inside a block or a message)."""
        writer.u64(self.nonce)
        write_public_key(writer, self.sender)
        write_public_key(writer, self.recipient)
        writer.u64(self.amount).u64(self.gas_limit).u64(self.gas_price)
        writer.var_bytes(self.data)
        return write_signature(writer, self.signature)

    @classmethod
    def read(cls, reader: Reader) -> Transaction:
        """Read one transaction from ``reader``; raises ``DecodeError`` with bincode's wording."""
        data, start = reader.data, reader.offset
        if len(data) - start >= BASE_SIZE_BYTES:
            # The usual case in one struct call; anything unusual takes the field-by-field
            # path below, which raises bincode's exact errors.
            nonce, len_from, sender, len_to, recipient, amount, gas_limit, gas_price, size = (
                _HEAD.unpack_from(data, start)
            )
            body = start + _HEAD.size
            end = body + size + len(_SIG_PREFIX) + SIGNATURE_SIZE_BYTES
            if (
                len_from == len_to == PUBLIC_KEY_SIZE_BYTES
                and end <= len(data)
                and data[end - SIGNATURE_SIZE_BYTES - len(_SIG_PREFIX) : end - SIGNATURE_SIZE_BYTES]
                == _SIG_PREFIX
            ):
                tx = cls(
                    nonce,
                    sender,
                    recipient,
                    amount,
                    gas_limit,
                    gas_price,
                    bytes(data[body : body + size]),
                    bytes(data[end - SIGNATURE_SIZE_BYTES : end]),
                )
                object.__setattr__(tx, "_raw", bytes(data[start:end]))
                reader.offset = end
                return tx
        nonce = reader.u64()
        sender = reader.public_key()
        recipient = reader.public_key()
        amount = reader.u64()
        gas_limit = reader.u64()
        gas_price = reader.u64()
        data = reader.var_bytes()
        signature = reader.signature()
        return cls(nonce, sender, recipient, amount, gas_limit, gas_price, data, signature)

    @classmethod
    def decode(cls, raw: bytes) -> Transaction:
        """Decode a raw transaction; bytes after a complete transaction are ignored."""
        return cls.read(Reader(raw))

    def signing_preimage(self) -> bytes:
        """nonce LE ‖ from ‖ to ‖ amount LE ‖ gas_limit LE ‖ gas_price LE ‖ data (98 + L)."""
        return (
            _SIGNING_HEAD.pack(
                self.nonce,
                self.sender,
                self.recipient,
                self.amount,
                self.gas_limit,
                self.gas_price,
            )
            + self.data
        )

    def signing_hash(self) -> bytes:
        """SHA-256 of the signing preimage: the message the sender's key signs."""
        return hashlib.sha256(self.signing_preimage()).digest()

    def tx_id(self) -> bytes:
        """SHA-256 of the whole encoding, signature included (the pool and index key)."""
        if self._id is None:
            object.__setattr__(self, "_id", hashlib.sha256(self.encode()).digest())
        assert self._id is not None
        return self._id

    def verify_signature(self) -> bool:
        """True if ``signature`` is the sender's low-S signature over ``signing_hash()``."""
        return keys.verify(self.sender, self.signing_hash(), self.signature)


def sign_transaction(
    keypair: keys.KeyPair,
    recipient: bytes,
    amount: int,
    gas_limit: int,
    gas_price: int,
    nonce: int = 0,
    data: bytes = b"",
) -> Transaction:
    """Build a transaction from ``keypair`` to ``recipient`` and sign it."""
    unsigned = Transaction(
        nonce=nonce,
        sender=keypair.public_key,
        recipient=recipient,
        amount=amount,
        gas_limit=gas_limit,
        gas_price=gas_price,
        data=bytes(data),
        signature=bytes(SIGNATURE_SIZE_BYTES),
    )
    signature = keypair.sign(unsigned.signing_hash())
    return Transaction(
        nonce, keypair.public_key, recipient, amount, gas_limit, gas_price, bytes(data), signature
    )
