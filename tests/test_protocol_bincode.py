"""bincode 1.x legacy writer and reader: layout, errors in bincode's wording."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitcell_sim.protocol.bincode import (
    INVALID_PUBLIC_KEY_LENGTH,
    INVALID_SIGNATURE_LENGTH,
    UNEXPECTED_EOF,
    Reader,
    Writer,
    write_public_key,
    write_signature,
)
from bitcell_sim.protocol.errors import DecodeError, ProtocolError


def test_fixed_width_little_endian() -> None:
    w = Writer().u8(7).u32(1).u64(0x0102030405060708).bool(True).bool(False)
    assert w.getvalue().hex() == "07" + "01000000" + "0807060504030201" + "01" + "00"


def test_vec_has_u64_length_prefix() -> None:
    assert Writer().var_bytes(b"\xde\xad\xbe\xef").getvalue().hex() == "0400000000000000deadbeef"
    assert Writer().string("ab").getvalue().hex() == "02000000000000006162"


def test_public_key_and_signature_prefixes() -> None:
    w = Writer()
    write_public_key(w, b"\x02" * 33)
    write_signature(w, b"\x01" * 64)
    raw = w.getvalue()
    assert raw[:8].hex() == "2100000000000000"
    assert raw[41:49].hex() == "4000000000000000"
    assert len(raw) == 8 + 33 + 8 + 64
    r = Reader(raw)
    assert r.public_key() == b"\x02" * 33
    assert r.signature() == b"\x01" * 64
    assert r.remaining == 0


def test_writer_range_errors_name_value() -> None:
    with pytest.raises(ProtocolError, match="u64 value -1 out of range"):
        Writer().u64(-1)
    with pytest.raises(ProtocolError, match="u32 value 4294967296 out of range"):
        Writer().u32(2**32)
    with pytest.raises(ProtocolError, match="u8 value 256 out of range"):
        Writer().u8(256)
    with pytest.raises(ProtocolError, match="public key must be 33 bytes, got 32"):
        write_public_key(Writer(), bytes(32))
    with pytest.raises(ProtocolError, match="signature must be 64 bytes, got 65"):
        write_signature(Writer(), bytes(65))


@pytest.mark.parametrize("raw", [b"", b"\x01", b"\x00" * 7])
def test_truncated_is_unexpected_eof(raw: bytes) -> None:
    with pytest.raises(DecodeError, match=f"^{UNEXPECTED_EOF}$"):
        Reader(raw).u64()


def test_huge_length_on_short_input_is_eof() -> None:
    raw = Writer().u64(2**63).getvalue() + b"abc"
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        Reader(raw).var_bytes()


def test_bad_key_length_reads_vec_then_fails() -> None:
    raw = Writer().var_bytes(b"\x02" * 32).getvalue()
    with pytest.raises(DecodeError, match=f"^{INVALID_PUBLIC_KEY_LENGTH}$"):
        Reader(raw).public_key()
    # A key length longer than the input is an end-of-file error first, as in bincode.
    raw = Writer().u64(34).getvalue() + b"\x02" * 33
    with pytest.raises(DecodeError, match=UNEXPECTED_EOF):
        Reader(raw).public_key()


def test_bad_signature_length() -> None:
    raw = Writer().var_bytes(bytes(63)).getvalue()
    with pytest.raises(DecodeError, match=f"^{INVALID_SIGNATURE_LENGTH}$"):
        Reader(raw).signature()


def test_variant_and_bool_errors() -> None:
    with pytest.raises(DecodeError, match=r"integer `7`, expected variant index 0 <= i < 7"):
        Reader(Writer().u32(7).getvalue()).variant(7)
    assert Reader(Writer().u32(6).getvalue()).variant(7) == 6
    with pytest.raises(DecodeError, match="expected 0 or 1, found 2"):
        Reader(b"\x02").bool()


def test_invalid_utf8_string() -> None:
    with pytest.raises(DecodeError, match="string is not valid utf8"):
        Reader(Writer().var_bytes(b"\xff").getvalue()).string()


@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=100),
    st.text(max_size=20),
    st.binary(min_size=32, max_size=32),
)
def test_round_trip(a: int, b: int, data: bytes, text: str, h: bytes) -> None:
    raw = Writer().u64(a).u32(b).var_bytes(data).string(text).raw(h).getvalue()
    r = Reader(raw + b"trailing")
    assert (r.u64(), r.u32(), r.var_bytes(), r.string(), r.hash32()) == (a, b, data, text, h)
    assert r.remaining == len(b"trailing")
