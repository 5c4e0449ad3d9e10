"""secp256k1 keys and low-S ECDSA over SHA-256, checked against the node's rules."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from coincurve import PrivateKey

from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.keys import (
    CURVE_ORDER,
    HALF_ORDER,
    KeyPair,
    compact_to_der,
    is_low_s,
    is_valid_public_key,
    verify,
)

SIGNING_HASH = bytes.fromhex("894330f967a9f0adafcf203a027ee7b783f6fb85b11088e7c8b7a0403f06a437")
GOLDEN_SIG = bytes.fromhex(
    "e18d43a87e26297d5ae81e4c4f60c683d18f499492b6235048d9564f9ae3a310"
    "0ea23c89ddf91783ca8c2cc85f089213359f94eb3f48af24badfddb27d1dd263"
)


def _flip_s(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:], "big")
    return sig[:32] + (CURVE_ORDER - s).to_bytes(32, "big")


def test_from_seed_is_sha256_of_seed() -> None:
    kp = KeyPair.from_seed("test-seed")
    assert kp.secret == hashlib.sha256(b"test-seed").digest()
    assert kp.secret.hex() == "d63cd08d82aa4eb48e0cc64fb466e909bfc3879664c5caa8d8cdeda73c044190"
    assert kp.public_key.hex() == (
        "02823309f96dddd66318015051c121a051774200608364bc3209ba70e6526dc55a"
    )


def test_golden_signature_is_rfc6979_low_s() -> None:
    kp = KeyPair.from_seed("test-seed")
    sig = kp.sign(SIGNING_HASH)
    assert sig == GOLDEN_SIG
    assert is_low_s(sig)
    assert verify(kp.public_key, SIGNING_HASH, sig)


def test_sign_hashes_the_message_again() -> None:
    # The ECDSA digest is SHA-256(signing hash): a signature over the raw hash must not verify.
    kp = KeyPair.from_seed("test-seed")
    raw_sig = PrivateKey(kp.secret).sign_recoverable(SIGNING_HASH, hasher=None)[:64]
    assert not verify(kp.public_key, SIGNING_HASH, raw_sig)


def test_high_s_is_rejected() -> None:
    kp = KeyPair.from_seed("test-seed")
    high = _flip_s(GOLDEN_SIG)
    assert not is_low_s(high)
    assert not verify(kp.public_key, SIGNING_HASH, high)


@pytest.mark.parametrize(
    "sig",
    [
        bytes(32) + GOLDEN_SIG[32:],  # r = 0
        GOLDEN_SIG[:32] + bytes(32),  # s = 0
        CURVE_ORDER.to_bytes(32, "big") + GOLDEN_SIG[32:],  # r = n
        (CURVE_ORDER + 1).to_bytes(32, "big") + GOLDEN_SIG[32:],  # r > n
        GOLDEN_SIG[:32] + (HALF_ORDER + 1).to_bytes(32, "big"),  # s just above n/2
        GOLDEN_SIG[:63],  # short
        GOLDEN_SIG + b"\x00",  # long
    ],
)
def test_malformed_signatures_are_rejected(sig: bytes) -> None:
    assert not verify(KeyPair.from_seed("test-seed").public_key, SIGNING_HASH, sig)


def test_wrong_key_or_message_is_rejected() -> None:
    other = KeyPair.from_seed("recipient")
    assert not verify(other.public_key, SIGNING_HASH, GOLDEN_SIG)
    assert not verify(KeyPair.from_seed("test-seed").public_key, bytes(32), GOLDEN_SIG)


@pytest.mark.parametrize(
    "key",
    [
        b"\x02" + bytes(32),  # x = 0 is not on the curve
        b"\x04" + bytes(32),  # wrong prefix for 33 bytes
        b"\x02" + b"\xff" * 32,  # x >= p
        bytes(32),
    ],
)
def test_invalid_points(key: bytes) -> None:
    assert not is_valid_public_key(key)
    assert not verify(key, SIGNING_HASH, GOLDEN_SIG)


def test_valid_point() -> None:
    assert is_valid_public_key(KeyPair.from_seed("x").public_key)


def test_generate_with_seeded_rng_is_reproducible() -> None:
    a = [KeyPair.generate(np.random.default_rng(7)).public_key for _ in range(2)]
    assert a[0] == a[1]
    stream = np.random.default_rng(7)
    keys = {KeyPair.generate(stream).public_key for _ in range(50)}
    assert len(keys) == 50


def test_generate_from_os() -> None:
    kp = KeyPair.generate()
    msg = hashlib.sha256(b"m").digest()
    assert verify(kp.public_key, msg, kp.sign(msg))


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (bytes(31), "must be 32 bytes, got 31"),
        (bytes(32), "is not in 1..n-1"),
        (CURVE_ORDER.to_bytes(32, "big"), "is not in 1..n-1"),
    ],
)
def test_bad_secrets(secret: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        KeyPair.from_secret(secret)


def test_sign_many_always_low_s_and_verifies() -> None:
    rng = np.random.default_rng(1)
    for i in range(200):
        kp = KeyPair.generate(rng)
        msg = hashlib.sha256(i.to_bytes(4, "little")).digest()
        sig = kp.sign(msg)
        assert is_low_s(sig)
        assert verify(kp.public_key, msg, sig)


def test_der_encoding_pads_high_bit() -> None:
    der = compact_to_der(b"\x80" + bytes(31) + b"\x00" * 31 + b"\x01")
    assert der.hex() == "3026" + "022100" + "80" + "00" * 31 + "020101"
    with pytest.raises(ProtocolError, match="must be 64 bytes, got 3"):
        compact_to_der(b"abc")
