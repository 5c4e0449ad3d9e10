"""Hex quantities and byte strings as the BitCell JSON-RPC writes and reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcell_sim.protocol.errors import ProtocolError
from bitcell_sim.protocol.hexcodec import hexbytes, parse_hexbytes, parse_quantity, quantity


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0x0"),
        (1, "0x1"),
        (255, "0xff"),
        (1_000_000_000, "0x3b9aca00"),
        (2**64 - 1, "0x" + "f" * 16),
    ],
)
def test_quantity_is_lowercase_without_leading_zeros(n: int, text: str) -> None:
    assert quantity(n) == text


def test_quantity_rejects_negative() -> None:
    with pytest.raises(ProtocolError, match=r"quantity\(n=-1\) must be >= 0"):
        quantity(-1)


def test_hexbytes() -> None:
    assert hexbytes(b"") == "0x"
    assert hexbytes(bytes([0xDE, 0xAD, 0xBE, 0xEF])) == "0xdeadbeef"


@pytest.mark.parametrize("text", ["0x3b9aca00", "3b9aca00", "0x3B9ACA00", "3B9aCa00"])
def test_parse_quantity_accepts_optional_prefix_and_any_case(text: str) -> None:
    assert parse_quantity(text) == 1_000_000_000


@pytest.mark.parametrize("text", ["0X10", "", "0x", "0xg1", "-0x1", "0x 1", "1 "])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ProtocolError, match="invalid hex quantity"):
        parse_quantity(text)


def test_parse_quantity_overflow_names_value() -> None:
    with pytest.raises(ProtocolError, match=r"'0x10000000000000000' exceeds maximum"):
        parse_quantity("0x1" + "0" * 16)


def test_parse_quantity_rejects_non_string() -> None:
    with pytest.raises(ProtocolError, match="must be a string, got int"):
        parse_quantity(5)  # type: ignore[arg-type]


def test_parse_hexbytes() -> None:
    assert parse_hexbytes("0xDeadBeef") == bytes.fromhex("deadbeef")
    assert parse_hexbytes("deadbeef") == bytes.fromhex("deadbeef")
    assert parse_hexbytes("0x") == b""
    assert parse_hexbytes("") == b""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0xabc", "odd number of digits"),
        ("0X00", "non-hex character"),
        ("0xzz", "non-hex character"),
        ("0x00 11", "odd number|non-hex"),
        ("00 11 ", "non-hex character"),
    ],
)
def test_parse_hexbytes_rejects(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_hexbytes(text)


def test_parse_hexbytes_length() -> None:
    assert parse_hexbytes("0x" + "00" * 32, length=32) == bytes(32)
    with pytest.raises(ProtocolError, match="are 31 bytes, expected 32"):
        parse_hexbytes("00" * 31, length=32)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_quantity_round_trip(n: int) -> None:
    assert parse_quantity(quantity(n)) == n


@given(st.binary(max_size=64))
def test_hexbytes_round_trip(b: bytes) -> None:
    assert parse_hexbytes(hexbytes(b)) == b
    assert parse_hexbytes(hexbytes(b).upper()[2:]) == b
