"""The arrival log: one :class:`BlockArrival` per block a node stored, and how others read it.

Hash, height, parent, producer, production time, tx count, size, tx ids, ``via`` and when the
import completed, in table ``arrivals`` of the node's chain database (``DB_FILE``), written in
the block's own transaction, so it survives a SIGKILL exactly when the block does.
:func:`read_arrivals` and :func:`read_tx_ids` read it from another process, live or after death.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

from bitcell_sim.protocol.bincode import HASH_SIZE_BYTES
from bitcell_sim.protocol.errors import ProtocolError

#: The node's chain database, in its data dir.
DB_FILE = "chain.sqlite3"
#: How a block reached the node.
VIA_OWN, VIA_GOSSIP, VIA_SYNC, VIA_ORPHAN = "own", "gossip", "sync", "orphan"
VIAS = (VIA_OWN, VIA_GOSSIP, VIA_SYNC, VIA_ORPHAN)

ARRIVALS_DDL = """
CREATE TABLE IF NOT EXISTS arrivals (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    parent BLOB NOT NULL,
    producer TEXT NOT NULL,
    produced_unix_s REAL NOT NULL,
    tx_count INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    via TEXT NOT NULL,
    arrival_unix_s REAL NOT NULL,
    tx_ids BLOB NOT NULL
);
"""
INSERT_ARRIVAL = "INSERT OR IGNORE INTO arrivals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = (
    "hash, height, parent, producer, produced_unix_s, tx_count, size_bytes, via, arrival_unix_s"
)
#: How long a reader waits for the node's write lock before giving up.
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class BlockArrival:
    """One block as one node imported it (times are Unix seconds of the node's clock).

    ``producer`` is the producing node's name (its public key in hex if the key is unknown);
    ``produced_unix_s`` the production time the node infers from the header (the round end at
    or just after its whole-second timestamp), the same for every node.
    """

    block_hash: bytes
    height: int
    parent_hash: bytes
    producer: str
    produced_unix_s: float
    tx_count: int
    size_bytes: int
    via: str
    arrival_unix_s: float

    def row(self, tx_ids: Iterable[bytes]) -> tuple[object, ...]:
        """The SQL row of ``INSERT_ARRIVAL`` (tx ids concatenated, 32 bytes each)."""
        return (*astuple(self), b"".join(tx_ids))


@contextmanager
def _reader(data_dir: Path) -> Iterator[sqlite3.Connection]:
    db_path = data_dir / DB_FILE
    if not db_path.is_file():
        raise ProtocolError(f"{db_path}: no chain database")
    try:
        with closing(sqlite3.connect(db_path, timeout=READ_TIMEOUT_S)) as db:
            db.execute("PRAGMA query_only = 1")
            yield db
    except sqlite3.Error as exc:
        raise ProtocolError(f"{db_path}: cannot read the arrival log: {exc}") from None


def read_arrivals(data_dir: Path) -> list[BlockArrival]:
    """Every arrival recorded by the node with ``data_dir``, in arrival order ([] if its
    database predates the arrival log)."""
    with _reader(data_dir) as db:
        known = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'arrivals'"
        ).fetchone()
        if known is None:
            return []
        rows = db.execute(f"SELECT {_COLUMNS} FROM arrivals ORDER BY arrival_unix_s").fetchall()
    return [
        BlockArrival(bytes(h), int(height), bytes(p), str(prod), float(t0), int(n), int(size),
                     str(via), float(t1))
        for h, height, p, prod, t0, n, size, via, t1 in rows
    ]  # fmt: skip


def read_tx_ids(data_dir: Path, block_hashes: Iterable[bytes]) -> dict[bytes, list[bytes]]:
    """The tx ids of those of ``block_hashes`` the node with ``data_dir`` holds, in block
    order."""
    out: dict[bytes, list[bytes]] = {}
    with _reader(data_dir) as db:
        for block_hash in block_hashes:
            row = db.execute("SELECT tx_ids FROM arrivals WHERE hash = ?", (block_hash,)).fetchone()
            if row is None:
                continue
            blob = bytes(row[0])
            if len(blob) % HASH_SIZE_BYTES:
                raise ProtocolError(f"{data_dir}: block {block_hash.hex()}: tx ids are truncated")
            out[block_hash] = [
                blob[i : i + HASH_SIZE_BYTES] for i in range(0, len(blob), HASH_SIZE_BYTES)
            ]
    return out
