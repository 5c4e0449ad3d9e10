"""The pool journal: every transaction that enters the pool, on disk before it is answered.

``PoolJournal(path)`` appends one record per tx (``protocol.pool_journal``) with one ``write(2)``,
so an answered tx survives a crash of the node process (not of the machine: no fsync per tx).
``load()`` (:func:`read_journal`) reads the records back (a torn last one ignored);
``rewrite(raws)`` replaces the file atomically with the pool's contents.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bitcell_sim.protocol.pool_journal import LENGTH, read_journal


class PoolJournal:
    """Append-only file of raw transactions (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        #: Records written since the last rewrite (what a rewrite would drop, at most).
        self.appended = 0

    def append(self, raw: bytes) -> None:
        os.write(self._fd, LENGTH.pack(len(raw)) + raw)
        self.appended += 1

    def load(self) -> list[bytes]:
        """Every complete record, oldest first."""
        return read_journal(self.path)

    def rewrite(self, raws: Iterable[bytes]) -> None:
        """Replace the journal with exactly ``raws`` (a temp file renamed over it)."""
        temp = self.path.with_name(self.path.name + ".tmp")
        body = b"".join(LENGTH.pack(len(raw)) + raw for raw in raws)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.appended = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
