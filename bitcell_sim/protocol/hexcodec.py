"""Hex text of the BitCell JSON-RPC: quantities and byte strings.

Outputs follow the node exactly: ``quantity(n)`` is ``"0x%x"`` (zero is ``"0x0"``) and
``hexbytes(b)`` is ``"0x"`` + lower-case hex. Inputs (``parse_quantity``, ``parse_hexbytes``)
accept an optional literal ``"0x"`` prefix (not ``"0X"``) and either letter case, like the node.
"""

from __future__ import annotations

from bitcell_sim.protocol.errors import ProtocolError

U64_MAX = (1 << 64) - 1

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def quantity(n: int) -> str:
    """Return ``n`` as a JSON-RPC quantity: ``"0x%x"``, no leading zeros."""
    if n < 0:
        raise ProtocolError(f"quantity(n={n}) must be >= 0")
    return f"0x{n:x}"


def hexbytes(b: bytes) -> str:
    """Return ``b`` as ``"0x"`` + lower-case hex (``"0x"`` for empty bytes)."""
    return "0x" + b.hex()


def strip_prefix(s: str) -> str:
    """Drop one literal ``"0x"`` prefix if present (``"0X"`` is not a prefix, as in the node)."""
    return s[2:] if s.startswith("0x") else s


def parse_quantity(s: str, *, max_value: int = U64_MAX) -> int:
    """Parse a hex quantity with or without ``"0x"``; it must fit in ``max_value`` (u64)."""
    if not isinstance(s, str):
        raise ProtocolError(f"quantity must be a string, got {type(s).__name__}: {s!r}")
    digits = strip_prefix(s)
    if not digits or not _HEX_DIGITS.issuperset(digits):
        raise ProtocolError(f"invalid hex quantity {s!r}")
    value = int(digits, 16)
    if value > max_value:
        raise ProtocolError(f"hex quantity {s!r} exceeds maximum {max_value}")
    return value


def parse_hexbytes(s: str, *, length: int | None = None) -> bytes:
    """Parse a hex byte string with or without ``"0x"``; optionally require ``length`` bytes."""
    if not isinstance(s, str):
        raise ProtocolError(f"hex bytes must be a string, got {type(s).__name__}: {s!r}")
    digits = strip_prefix(s)
    if len(digits) % 2:
        raise ProtocolError(f"invalid hex bytes {s!r}: odd number of digits ({len(digits)})")
    # bytes.fromhex tolerates spaces; the node's hex decoder does not.
    if not _HEX_DIGITS.issuperset(digits):
        raise ProtocolError(f"invalid hex bytes {s!r}: non-hex character")
    out = bytes.fromhex(digits)
    if length is not None and len(out) != length:
        raise ProtocolError(f"hex bytes {s!r} are {len(out)} bytes, expected {length}")
    return out
