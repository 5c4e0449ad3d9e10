"""The replayed schedule of a load run: which transaction carried each scheduled arrival.

:func:`replay_table` joins the topology's :class:`~bitcell_sim.topology.Arrivals` (tx *i*: the
model's ``sim-<i>``) with the ``(index, tx_id)`` pairs the processes sent, and
:func:`write_replay` stores it as ``load/replay.parquet``: per scheduled tx its index, scheduled
time (seconds since genesis, as the model has it), due time in the records' clock, node, gas
price and the tx id it went out as (null if it was not sent). A per-tx comparison is a join.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from bitcell_sim.results.records import write_table
from bitcell_sim.topology import Arrivals

REPLAY_FILE = "replay.parquet"

REPLAY = pa.schema(
    [
        pa.field("index", pa.int64(), nullable=False),
        pa.field("scheduled_s", pa.float64(), nullable=False),
        pa.field("due_s", pa.float64(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("gas_price", pa.int64(), nullable=False),
        pa.field("tx_id", pa.string()),
    ]
)


def replay_table(arrivals: Arrivals, shift_s: float, sent: Iterable[tuple[int, str]]) -> pa.Table:
    """Every scheduled tx; ``shift_s`` takes a scheduled time to the records' clock."""
    tx_ids: list[str | None] = [None] * len(arrivals)
    for index, tx_id in sent:
        tx_ids[index] = tx_id
    return pa.table(
        {
            "index": np.arange(len(arrivals), dtype=np.int64),
            "scheduled_s": arrivals.submit_s,
            "due_s": arrivals.submit_s + shift_s,
            "node": arrivals.node_names(),
            "gas_price": arrivals.gas_price,
            "tx_id": pa.array(tx_ids, type=pa.string()),
        },
        schema=REPLAY,
    )


def write_replay(load_dir: Path, table: pa.Table) -> Path:
    path = load_dir / REPLAY_FILE
    write_table(table, path)
    return path
