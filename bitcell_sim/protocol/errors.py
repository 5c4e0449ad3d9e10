"""Errors of the protocol library: values that do not follow the BitCell wire contract.

``ProtocolError`` (a ``BitcellSimError`` and a ``ValueError``) is raised for bad hex, bad
arguments and broken rules; ``DecodeError`` for bytes that do not decode, carrying bincode's own
wording ("io error: unexpected end of file", "Invalid public key length", ...) so a node can
put it in its JSON-RPC answer unchanged.
"""

from __future__ import annotations

from bitcell_sim.errors import BitcellSimError


class ProtocolError(BitcellSimError, ValueError):
    """A value that breaks the BitCell wire contract (bad hex, out-of-range field, ...)."""


class DecodeError(ProtocolError):
    """Bytes that do not decode; the message is the one bincode 1.3 would give."""
