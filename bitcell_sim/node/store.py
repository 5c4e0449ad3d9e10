"""The node's chain on disk: every imported block, the canonical chain and the arrival log.

``ChainStore(path)`` opens (or creates) ``chain.sqlite3`` in WAL mode with
``synchronous=NORMAL``: a commit is in the write-ahead log before ``commit_import`` returns,
so a killed process (SIGKILL) loses nothing it imported; only an OS crash or power loss can
drop the last commits. ``commit_import`` writes a block, the canonical-chain change and the
block's arrival record (``protocol.arrivals``) in one transaction;
``canonical_hashes``/``all_blocks`` read the chain back on restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from bitcell_sim.errors import DevnetError
from bitcell_sim.protocol.arrivals import ARRIVALS_DDL, DB_FILE, INSERT_ARRIVAL

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    parent BLOB NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS canonical (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
"""
    + ARRIVALS_DDL
)


class ChainStore:
    """SQLite block store of one node (one connection, used from the node's event loop)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_FILE
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: commits reach the WAL file (OS page cache) at once, so a
            # process kill cannot lose them; only an OS crash could lose the newest ones.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise DevnetError(f"cannot open chain database {self.path}: {exc}") from None

    def get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def commit_import(
        self,
        new_blocks: Sequence[tuple[bytes, int, bytes, bytes]],
        canonical_from: int | None = None,
        canonical_hashes: Sequence[bytes] = (),
        arrival: tuple[object, ...] | None = None,
    ) -> None:
        """Store ``(hash, height, parent, raw)`` blocks, the ``arrival`` row
        (``BlockArrival.row``) and, if ``canonical_from`` is given, make ``canonical_hashes``
        the chain from that height up, all in one transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO blocks (hash, height, parent, raw) VALUES (?, ?, ?, ?)",
                new_blocks,
            )
            if arrival is not None:
                db.execute(INSERT_ARRIVAL, arrival)
            if canonical_from is not None:
                db.execute("DELETE FROM canonical WHERE height >= ?", (canonical_from,))
                db.executemany(
                    "INSERT INTO canonical (height, hash) VALUES (?, ?)",
                    [(canonical_from + i, h) for i, h in enumerate(canonical_hashes)],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def block_raw(self, block_hash: bytes) -> bytes | None:
        row = self._db.execute("SELECT raw FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else bytes(row[0])

    def canonical_hashes(self) -> list[bytes]:
        rows = self._db.execute("SELECT height, hash FROM canonical ORDER BY height").fetchall()
        hashes = [bytes(h) for _, h in rows]
        for expected, (height, _) in enumerate(rows):
            if height != expected:
                raise DevnetError(
                    f"chain database {self.path}: canonical height {expected} missing"
                )
        return hashes

    def all_blocks(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored block as (hash, raw), parents before children (height order)."""
        for block_hash, raw in self._db.execute("SELECT hash, raw FROM blocks ORDER BY height"):
            yield bytes(block_hash), bytes(raw)

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
