"""Results: the record types shared by predictions and measurements, and run folders.

:mod:`~bitcell_sim.results.records` defines the tables (blocks, block arrivals, transactions,
node timeline); :class:`RunFolder` lays them out under ``results/<run-id>/``; a :class:`RunWindow`
(one :class:`FaultWindow` per fault) says what they cover; :func:`summarize` and
:func:`summarize_run` compute a run's headline figures and judge its expectations. The terminal
tables (:mod:`~bitcell_sim.results.table`) and plots (:mod:`~bitcell_sim.results.plots`, which
imports matplotlib) are imported from their modules.
"""

from bitcell_sim.results.records import (
    BLOCK_ARRIVALS,
    BLOCKS,
    NODE_TIMELINE,
    TABLES,
    TRANSACTIONS,
    check_table,
    read_table,
    to_table,
    write_table,
)
from bitcell_sim.results.run_folder import RunFolder, new_run_id, software_versions
from bitcell_sim.results.summary import failed_expectations, summarize, summarize_run
from bitcell_sim.results.window import FaultWindow, RunWindow

__all__ = [
    "BLOCKS",
    "BLOCK_ARRIVALS",
    "NODE_TIMELINE",
    "TABLES",
    "TRANSACTIONS",
    "FaultWindow",
    "RunFolder",
    "RunWindow",
    "check_table",
    "failed_expectations",
    "new_run_id",
    "read_table",
    "software_versions",
    "summarize",
    "summarize_run",
    "to_table",
    "write_table",
]
