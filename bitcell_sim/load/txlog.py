"""The per-transaction records of one load process, and how blocks confirm them.

:class:`TxRecord` is one row of the shared ``TRANSACTIONS`` table (times in the run's time
origin, seconds). :class:`TxLog` appends records, keeps the accepted-but-unconfirmed ones by tx
id, ``confirm``\\ s the transactions of a block the watcher saw and ``revert``\\ s those of an
orphaned block; ``columns()`` / ``table()`` give the records in the shared schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from typing import Any

import pyarrow as pa

from bitcell_sim.results.records import TRANSACTIONS, to_table

FIELDS = tuple(TRANSACTIONS.names)


@dataclass(slots=True)
class TxRecord:
    """One submitted transaction; ``tx_id``/``block_hash`` are lower-case hex without 0x."""

    tx_id: str
    node: str
    submit_s: float
    rpc_latency_s: float | None
    accepted: bool
    reject_code: int | None = None
    reject_reason: str | None = None
    confirm_s: float | None = None
    height: int | None = None
    block_hash: str | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_tuple(cls, values: Sequence[Any]) -> TxRecord:
        if len(values) != len(FIELDS):
            raise ValueError(f"a transaction record has {len(FIELDS)} fields, got {len(values)}")
        return cls(*values)


def strip_hex(value: str) -> str:
    """Lower-case hex without the ``0x`` prefix (how records store ids and hashes)."""
    return (value[2:] if value[:2] in ("0x", "0X") else value).lower()


class TxLog:
    """Records in submission order; accepted ones are matched to blocks by tx id."""

    def __init__(self) -> None:
        self.records: list[TxRecord] = []
        self._by_id: dict[str, TxRecord] = {}
        self.pending: dict[str, TxRecord] = {}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: TxRecord) -> None:
        self.records.append(record)
        if record.accepted:
            self._by_id[record.tx_id] = record
            if record.confirm_s is None:
                self.pending[record.tx_id] = record

    def confirm(
        self,
        tx_ids: Iterable[str],
        seen_s: float,
        height: int,
        block_hash: str,
        node: str | None = None,
    ) -> list[TxRecord]:
        """Mark our transactions among ``tx_ids`` confirmed at ``seen_s``; return them.

        With ``node``, only those submitted to that node (the block was seen there).
        """
        done = []
        for tx_id in tx_ids:
            record = self.pending.get(tx_id)
            if record is None or (node is not None and record.node != node):
                continue
            del self.pending[tx_id]
            record.confirm_s = seen_s
            record.height = height
            record.block_hash = block_hash
            done.append(record)
        return done

    def revert(
        self, tx_ids: Iterable[str], block_hash: str, node: str | None = None
    ) -> list[TxRecord]:
        """Our transactions confirmed in the orphaned ``block_hash`` (at ``node``, if given)
        become pending again."""
        back = []
        for tx_id in tx_ids:
            record = self._by_id.get(tx_id)
            if record is None or record.block_hash != block_hash:
                continue
            if node is not None and record.node != node:
                continue
            record.confirm_s = record.height = record.block_hash = None
            self.pending[tx_id] = record
            back.append(record)
        return back

    def columns(self) -> dict[str, list[Any]]:
        return columns_of(self.records)

    def table(self) -> pa.Table:
        return to_table("transactions", self.columns())


def columns_of(records: Iterable[TxRecord]) -> dict[str, list[Any]]:
    rows = [r.as_tuple() for r in records]
    return {name: [row[i] for row in rows] for i, name in enumerate(FIELDS)}
