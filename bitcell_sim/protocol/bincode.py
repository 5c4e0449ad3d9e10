"""bincode 1.x legacy encoding, the byte format of every BitCell structure.

Legacy config: little-endian, fixed-width integers, u64 length prefixes for ``Vec``/``String``,
u32 variant indices for enums, no size limit, trailing bytes allowed. ``Writer`` appends,
``Reader`` consumes; a ``Reader`` raises ``DecodeError`` with bincode 1.3's own wording, e.g.
"io error: unexpected end of file" when the input is short.
"""

from __future__ import annotations

import struct

from bitcell_sim.protocol.errors import DecodeError, ProtocolError

UNEXPECTED_EOF = "io error: unexpected end of file"
INVALID_PUBLIC_KEY_LENGTH = "Invalid public key length"
INVALID_SIGNATURE_LENGTH = "Invalid signature length"

PUBLIC_KEY_SIZE_BYTES = 33
SIGNATURE_SIZE_BYTES = 64
HASH_SIZE_BYTES = 32

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


class Writer:
    """Append-only bincode writer; ``getvalue()`` returns the bytes written so far."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        if not 0 <= value <= 0xFF:
            raise ProtocolError(f"u8 value {value} out of range 0..255")
        self._parts.append(bytes((value,)))
        return self

    def bool(self, value: bool) -> Writer:
        self._parts.append(b"\x01" if value else b"\x00")
        return self

    def u32(self, value: int) -> Writer:
        if not 0 <= value <= _U32_MAX:
            raise ProtocolError(f"u32 value {value} out of range 0..{_U32_MAX}")
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        if not 0 <= value <= _U64_MAX:
            raise ProtocolError(f"u64 value {value} out of range 0..{_U64_MAX}")
        self._parts.append(_U64.pack(value))
        return self

    def raw(self, data: bytes) -> Writer:
        """Fixed-size array (``[u8; N]``): the bytes with no length."""
        self._parts.append(bytes(data))
        return self

    def var_bytes(self, data: bytes) -> Writer:
        """``Vec<u8>`` (and serde ``serialize_bytes``): u64 length, then the bytes."""
        self._parts.append(_U64.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def string(self, text: str) -> Writer:
        return self.var_bytes(text.encode("utf-8"))

    def seq_len(self, count: int) -> Writer:
        """The u64 element count in front of a ``Vec<T>``."""
        return self.u64(count)

    def variant(self, index: int) -> Writer:
        """The u32 variant index in front of an enum payload."""
        return self.u32(index)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Sequential bincode reader over ``data``; ``offset`` is the next byte to read."""

    __slots__ = ("_data", "offset")

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = data
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    @property
    def data(self) -> bytes:
        """The whole buffer (for a caller that parses a fixed layout at ``offset`` itself)."""
        return self._data

    def _take(self, n: int) -> bytes:
        end = self.offset + n
        if end > len(self._data):
            raise DecodeError(UNEXPECTED_EOF)
        out = self._data[self.offset : end]
        self.offset = end
        return bytes(out)

    def u8(self) -> int:
        return self._take(1)[0]

    def bool(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError(f"invalid u8 while decoding bool, expected 0 or 1, found {value}")
        return value == 1

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self._take(8))[0]
        return value

    def raw(self, n: int) -> bytes:
        return self._take(n)

    def var_bytes(self) -> bytes:
        # bincode reads the declared length, then exactly that many bytes: a huge length on a
        # short input is an end-of-file error, not an allocation.
        return self._take(self.u64())

    def string(self) -> str:
        raw = self.var_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid utf8: {exc}") from None

    def seq_len(self) -> int:
        return self.u64()

    def variant(self, count: int) -> int:
        """Read a u32 enum index and check it names one of ``count`` variants."""
        index = self.u32()
        if index >= count:
            raise DecodeError(
                f"invalid value: integer `{index}`, expected variant index 0 <= i < {count}"
            )
        return index

    def public_key(self) -> bytes:
        """A BitCell ``PublicKey``: read as ``Vec<u8>``, then the length must be 33."""
        key = self.var_bytes()
        if len(key) != PUBLIC_KEY_SIZE_BYTES:
            raise DecodeError(INVALID_PUBLIC_KEY_LENGTH)
        return key

    def signature(self) -> bytes:
        """A BitCell ``Signature`` (r‖s): read as ``Vec<u8>``, then the length must be 64."""
        sig = self.var_bytes()
        if len(sig) != SIGNATURE_SIZE_BYTES:
            raise DecodeError(INVALID_SIGNATURE_LENGTH)
        return sig

    def hash32(self) -> bytes:
        return self._take(HASH_SIZE_BYTES)


def write_public_key(writer: Writer, key: bytes) -> Writer:
    """A BitCell ``PublicKey`` on the wire: u64 length 33, then the compressed point."""
    if len(key) != PUBLIC_KEY_SIZE_BYTES:
        raise ProtocolError(f"public key must be 33 bytes, got {len(key)}")
    return writer.var_bytes(key)


def write_signature(writer: Writer, sig: bytes) -> Writer:
    """A BitCell ``Signature`` on the wire: u64 length 64, then r‖s."""
    if len(sig) != SIGNATURE_SIZE_BYTES:
        raise ProtocolError(f"signature must be 64 bytes, got {len(sig)}")
    return writer.var_bytes(sig)
