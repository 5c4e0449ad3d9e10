"""The transaction wire format, pinned by the golden vector of PROTOCOL.md §1."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcell_sim.protocol.bincode import UNEXPECTED_EOF
from bitcell_sim.protocol.errors import DecodeError, ProtocolError
from bitcell_sim.protocol.keys import CURVE_ORDER, KeyPair
from bitcell_sim.protocol.transaction import BASE_SIZE_BYTES, Transaction, sign_transaction

FROM = "02823309f96dddd66318015051c121a051774200608364bc3209ba70e6526dc55a"
TO = "02befb68703f3927062d65dd0139fd2b2c6be2fdf31a1adeb3a5e9c7e2cae0b6f1"
SIGNING_HASH = "894330f967a9f0adafcf203a027ee7b783f6fb85b11088e7c8b7a0403f06a437"
SIGNATURE = (
    "e18d43a87e26297d5ae81e4c4f60c683d18f499492b6235048d9564f9ae3a310"
    "0ea23c89ddf91783ca8c2cc85f089213359f94eb3f48af24badfddb27d1dd263"
)
RAW = (
    "0000000000000000"
    + "2100000000000000"
    + FROM
    + "2100000000000000"
    + TO
    + "e803000000000000"
    + "0852000000000000"
    + "00ca9a3b00000000"
    + "0000000000000000"
    + "4000000000000000"
    + SIGNATURE
)
TX_ID = "746f184b90bdbfc41b8d46dcd311ed75fd44131029190c2cf4e3dbb6b6d409ed"
PREIMAGE = (
    "0000000000000000" + FROM + TO + "e803000000000000" + "0852000000000000" + "00ca9a3b00000000"
)


@pytest.fixture
def golden() -> Transaction:
    return sign_transaction(
        KeyPair.from_seed("test-seed"),
        recipient=KeyPair.from_seed("recipient").public_key,
        amount=1000,
        gas_limit=21000,
        gas_price=1_000_000_000,
    )


def test_golden_vector_every_byte(golden: Transaction) -> None:
    assert golden.sender.hex() == FROM
    assert golden.recipient.hex() == TO
    assert golden.signing_preimage().hex() == PREIMAGE
    assert len(golden.signing_preimage()) == 98
    assert golden.signing_hash().hex() == SIGNING_HASH
    assert hashlib.sha256(golden.signing_hash()).hexdigest() == (
        "5d200bfd5d4f6259175a71f47bd470fa13916b243b55adf13754d340f7d7c3ac"
    )
    assert golden.signature.hex() == SIGNATURE
    raw = golden.encode()
    assert len(raw) == 194 == golden.size_bytes == BASE_SIZE_BYTES
    assert raw.hex() == RAW
    assert golden.tx_id().hex() == TX_ID
    assert golden.verify_signature()


def test_golden_decodes(golden: Transaction) -> None:
    assert Transaction.decode(bytes.fromhex(RAW)) == golden


def test_write_matches_encode(golden: Transaction) -> None:
    from bitcell_sim.protocol.bincode import Writer

    assert golden.write(Writer()).getvalue() == golden.encode()


def test_trailing_junk_is_ignored(golden: Transaction) -> None:
    tx = Transaction.decode(bytes.fromhex(RAW) + b"\x01\x02\x03")
    assert tx == golden
    assert tx.tx_id().hex() == TX_ID  # the id is over the re-encoded tx, without the junk


def test_deadbeef_data_variant() -> None:
    tx = sign_transaction(
        KeyPair.from_seed("test-seed"),
        KeyPair.from_seed("recipient").public_key,
        1000,
        21000,
        1_000_000_000,
        data=bytes.fromhex("deadbeef"),
    )
    raw = tx.encode().hex()
    assert len(tx.encode()) == 198 == tx.size_bytes
    assert raw[: 114 * 2] == RAW[: 114 * 2]
    assert raw[114 * 2 : 126 * 2] == "0400000000000000deadbeef"
    assert raw[126 * 2 : 134 * 2] == "4000000000000000"
    assert tx.signature.hex() != SIGNATURE  # the signature covers the data
    assert tx.verify_signature()
    assert Transaction.decode(tx.encode()) == tx


@pytest.mark.parametrize("cut", [0, 1, 8, 50, 121, 129, 193])
def test_truncation_is_eof(cut: int) -> None:
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        Transaction.decode(bytes.fromhex(RAW)[:cut])


def test_bad_key_length_prefix() -> None:
    raw = bytearray(bytes.fromhex(RAW))
    raw[8] = 32
    with pytest.raises(DecodeError, match=r"^Invalid public key length$"):
        Transaction.decode(bytes(raw))


def test_bad_signature_length_prefix() -> None:
    raw = bytearray(bytes.fromhex(RAW))
    raw[122] = 63
    with pytest.raises(DecodeError, match=r"^Invalid signature length$"):
        Transaction.decode(bytes(raw))


def test_tampering_breaks_signature(golden: Transaction) -> None:
    from dataclasses import replace

    assert not replace(golden, amount=1001).verify_signature()
    assert not replace(golden, data=b"x").verify_signature()
    s = int.from_bytes(golden.signature[32:], "big")
    high = golden.signature[:32] + (CURVE_ORDER - s).to_bytes(32, "big")
    assert not replace(golden, signature=high).verify_signature()


def test_decode_does_not_check_points() -> None:
    raw = bytearray(bytes.fromhex(RAW))
    raw[16:49] = b"\x02" + bytes(32)
    tx = Transaction.decode(bytes(raw))
    assert tx.sender == b"\x02" + bytes(32)
    assert not tx.verify_signature()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nonce", -1, "nonce=-1 is not a u64"),
        ("amount", 2**64, "amount=18446744073709551616 is not a u64"),
        ("sender", bytes(32), "sender must be 33 bytes, got 32"),
        ("recipient", bytes(34), "recipient must be 33 bytes, got 34"),
        ("signature", bytes(65), "signature must be 64 bytes, got 65"),
    ],
)
def test_field_validation(golden: Transaction, field: str, value: Any, message: str) -> None:
    from dataclasses import replace

    with pytest.raises(ProtocolError, match=message):
        replace(golden, **{field: value})


@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=300),
)
def test_round_trip(nonce: int, amount: int, gas_limit: int, gas_price: int, data: bytes) -> None:
    tx = Transaction(
        nonce, b"\x02" * 33, b"\x03" * 33, amount, gas_limit, gas_price, data, b"\x05" * 64
    )
    raw = tx.encode()
    assert len(raw) == 194 + len(data)
    assert Transaction.decode(raw) == tx


def test_fresh_keys_sign_valid_transactions() -> None:
    rng = np.random.default_rng(3)
    to = KeyPair.from_seed("recipient").public_key
    for i in range(50):
        tx = sign_transaction(KeyPair.generate(rng), to, 0, 21000, 1 + i)
        assert Transaction.decode(tx.encode()).verify_signature()
