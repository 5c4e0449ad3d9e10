"""The pool journal's file format: what a node writes and another process may read.

A node keeps ``JOURNAL_FILE`` in its data directory: one record per tx that entered its pool
(a 4-byte big-endian length, then the bincode tx), rewritten from the pool as blocks take txs.
:func:`read_journal` reads it, also while the node appends to it (a torn last record is
ignored), so the devnet can see what a live node's pool holds without asking the node.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: The journal's file name in a node's data directory.
JOURNAL_FILE = "pool.journal"
LENGTH = struct.Struct(">I")
#: A record longer than this is corruption (a tx is 194 bytes + its data; frames are <= 10 MB).
MAX_RECORD_BYTES = 10_000_000


def read_journal(path: Path) -> list[bytes]:
    """Every complete record of the journal at ``path``, oldest first (a torn last one is
    ignored); the file may be one a running node appends to."""
    data = path.read_bytes()
    out: list[bytes] = []
    pos = 0
    while pos + 4 <= len(data):
        (length,) = LENGTH.unpack_from(data, pos)
        end = pos + 4 + length
        if length > MAX_RECORD_BYTES or end > len(data):
            break
        out.append(data[pos + 4 : end])
        pos = end
    return out
