"""The record types shared by predictions and measurements.

Four flat tables, the same whether the model predicted them or the devnet and load test measured
them: :data:`BLOCKS`, :data:`BLOCK_ARRIVALS`, :data:`TRANSACTIONS` and :data:`NODE_TIMELINE`.
Times are seconds since genesis (the start of round 0). :func:`write_table` and
:func:`read_table` store them as Parquet with a fixed schema, so equal records give equal bytes.
The meaning of every field is in docs/results.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from bitcell_sim.errors import ResultsError

BLOCKS = pa.schema(
    [
        pa.field("block_hash", pa.string(), nullable=False),
        pa.field("height", pa.int64(), nullable=False),
        pa.field("parent_hash", pa.string(), nullable=False),
        pa.field("producer", pa.string(), nullable=False),
        pa.field("produced_s", pa.float64(), nullable=False),
        pa.field("tx_count", pa.int64(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("orphaned", pa.bool_(), nullable=False),
    ]
)

BLOCK_ARRIVALS = pa.schema(
    [
        pa.field("block_hash", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("arrival_s", pa.float64(), nullable=False),
    ]
)

TRANSACTIONS = pa.schema(
    [
        pa.field("tx_id", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("submit_s", pa.float64(), nullable=False),
        pa.field("rpc_latency_s", pa.float64()),
        pa.field("accepted", pa.bool_(), nullable=False),
        pa.field("reject_code", pa.int64()),
        pa.field("reject_reason", pa.string()),
        pa.field("confirm_s", pa.float64()),
        pa.field("height", pa.int64()),
        pa.field("block_hash", pa.string()),
    ]
)

NODE_TIMELINE = pa.schema(
    [
        pa.field("time_s", pa.float64(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("up", pa.bool_(), nullable=False),
        pa.field("height", pa.int64(), nullable=False),
        pa.field("tip_hash", pa.string(), nullable=False),
        pa.field("pool_size", pa.int64(), nullable=False),
        pa.field("peers", pa.int64(), nullable=False),
        pa.field("sync_progress", pa.float64(), nullable=False),
    ]
)

TABLES: Mapping[str, pa.Schema] = {
    "blocks": BLOCKS,
    "block_arrivals": BLOCK_ARRIVALS,
    "transactions": TRANSACTIONS,
    "node_timeline": NODE_TIMELINE,
}

# Reasons a transaction is not accepted, as written in TRANSACTIONS.reject_reason. Node answers
# keep their JSON-RPC message; these names cover the common cases the summaries count.
REJECT_POOL_FULL = "pool full"
REJECT_DUPLICATE = "already in pool"
REJECT_UNREACHABLE = "unreachable"


#: A column as ``to_table`` takes it: a list, a numpy array, or an Arrow array (nulls masked).
ColumnData: TypeAlias = Sequence[Any] | npt.NDArray[Any] | pa.Array


def to_table(name: str, columns: Mapping[str, ColumnData]) -> pa.Table:
    """A table of the named record type from column lists, checked against its schema."""
    schema = schema_of(name)
    missing = [f.name for f in schema if f.name not in columns]
    extra = [c for c in columns if c not in schema.names]
    if missing or extra:
        raise ResultsError(f"{name}: missing columns {missing}, unknown columns {extra}")
    arrays = {}
    for f in schema:
        try:
            arrays[f.name] = pa.array(columns[f.name], type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ResultsError(f"{name}.{f.name}: not {f.type}: {exc}") from None
    try:
        table = pa.table(arrays, schema=schema)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise ResultsError(f"{name}: {exc}") from None
    check_table(name, table)
    return table


def schema_of(name: str) -> pa.Schema:
    if name not in TABLES:
        raise ResultsError(f"unknown record type {name!r} (one of {', '.join(TABLES)})")
    return TABLES[name]


def check_table(name: str, table: pa.Table) -> None:
    """ResultsError unless ``table`` has the schema of ``name`` and no null where none may be."""
    schema = schema_of(name)
    if not table.schema.equals(schema, check_metadata=False):
        raise ResultsError(f"does not hold {name} records (schema differs)")
    nulls = [f.name for f in schema if not f.nullable and table.column(f.name).null_count]
    if nulls:
        raise ResultsError(f"{name}: null values in non-nullable column(s) {', '.join(nulls)}")


def write_table(table: pa.Table, path: Path) -> None:
    """Write one record table as Parquet; same rows, same bytes (no timestamps in the file)."""
    pq.write_table(table, path, compression="zstd", write_statistics=False, store_schema=True)


def read_table(path: Path, name: str) -> pa.Table:
    """One record table, checked against its schema (ResultsError: missing, unreadable, other)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such record file") from None
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{path}: cannot read Parquet: {exc}") from None
    try:
        check_table(name, table)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return table
