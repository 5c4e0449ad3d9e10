"""secp256k1 keys and ECDSA signatures exactly as the BitCell node (k256) makes and checks them.

``KeyPair`` holds a 32-byte secret and its 33-byte compressed ``public_key``; build one with
``from_secret``, ``from_seed`` (secret = SHA-256 of the UTF-8 seed, like ``--key-seed``) or
``generate``. ``KeyPair.sign(message)`` is RFC 6979 over SHA-256(message), 64 bytes r‖s, low-S;
``verify(public_key, message, signature)`` rejects high-S, r or s of 0 or >= n, and bad points.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol

from coincurve import PrivateKey, PublicKey

from bitcell_sim.protocol.errors import ProtocolError

#: Order n of the secp256k1 group.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_ORDER = CURVE_ORDER // 2

SECRET_SIZE_BYTES = 32
PUBLIC_KEY_SIZE_BYTES = 33
SIGNATURE_SIZE_BYTES = 64


class RandomBytes(Protocol):
    """Anything with numpy ``Generator.bytes(n)``; used so key streams can be seeded."""

    def bytes(self, length: int) -> bytes: ...


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class KeyPair:
    """A secp256k1 key pair: ``secret`` (32 bytes) and ``public_key`` (33 bytes, compressed)."""

    __slots__ = ("_private", "public_key", "secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_SIZE_BYTES:
            raise ProtocolError(f"secret key must be 32 bytes, got {len(secret)}")
        value = int.from_bytes(secret, "big")
        if not 0 < value < CURVE_ORDER:
            raise ProtocolError(f"secret key {secret.hex()} is not in 1..n-1")
        self.secret = bytes(secret)
        self._private = PrivateKey(self.secret)
        self.public_key: bytes = self._private.public_key.format(compressed=True)

    @classmethod
    def from_secret(cls, secret: bytes) -> KeyPair:
        return cls(secret)

    @classmethod
    def from_seed(cls, seed: str) -> KeyPair:
        """The node's ``--key-seed``: secret = SHA-256(seed as UTF-8)."""
        return cls(_sha256(seed.encode("utf-8")))

    @classmethod
    def generate(cls, rng: RandomBytes | None = None) -> KeyPair:
        """A fresh key from ``rng`` (a numpy ``Generator``, reproducible) or, if None, the OS."""
        while True:
            secret = rng.bytes(SECRET_SIZE_BYTES) if rng is not None else secrets.token_bytes(32)
            # Out-of-range secrets have probability ~2^-128; redraw rather than reduce mod n.
            if 0 < int.from_bytes(secret, "big") < CURVE_ORDER:
                return cls(secret)

    def sign(self, message: bytes) -> bytes:
        """RFC 6979 ECDSA over SHA-256(message); 64 bytes r‖s with low S (as k256 signs)."""
        sig = self._private.sign_recoverable(message, hasher=_sha256)[:SIGNATURE_SIZE_BYTES]
        # libsecp256k1 always normalises; a high S here would be rejected by every node.
        if int.from_bytes(sig[32:], "big") > HALF_ORDER:
            raise ProtocolError(f"signer produced a high-S signature {sig.hex()}")
        return sig

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key.hex()})"


def _der_integer(value: bytes) -> bytes:
    stripped = value.lstrip(b"\x00") or b"\x00"
    if stripped[0] & 0x80:
        stripped = b"\x00" + stripped
    return b"\x02" + bytes((len(stripped),)) + stripped


def compact_to_der(signature: bytes) -> bytes:
    """Convert a 64-byte r‖s signature to DER (what coincurve's ``verify`` takes)."""
    if len(signature) != SIGNATURE_SIZE_BYTES:
        raise ProtocolError(f"signature must be 64 bytes, got {len(signature)}")
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return b"\x30" + bytes((len(body),)) + body


def is_low_s(signature: bytes) -> bool:
    """True if the S half of r‖s is at most n/2 (the only form k256 accepts)."""
    return int.from_bytes(signature[32:64], "big") <= HALF_ORDER


def is_valid_public_key(public_key: bytes) -> bool:
    """True if ``public_key`` is a 33-byte SEC1 compressed point on secp256k1."""
    if len(public_key) != PUBLIC_KEY_SIZE_BYTES or public_key[0] not in (2, 3):
        return False
    try:
        PublicKey(bytes(public_key))
    except ValueError:
        return False
    return True


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Check a BitCell signature: ECDSA over SHA-256(message), r‖s, low-S, valid point."""
    if len(signature) != SIGNATURE_SIZE_BYTES or len(public_key) != PUBLIC_KEY_SIZE_BYTES:
        return False
    if public_key[0] not in (2, 3):
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    # k256 rejects these explicitly; check them here rather than trust the DER path to.
    if not (0 < r < CURVE_ORDER and 0 < s <= HALF_ORDER):
        return False
    try:
        key = PublicKey(bytes(public_key))
        return bool(key.verify(compact_to_der(signature), message, hasher=_sha256))
    except ValueError:
        return False
